/* test_utf8.c - what counts as well-formed UTF-8, and the repair. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "utf8.h"

#define VALID(s)	utf8_valid((s), sizeof(s) - 1)

static void
test_valid(void **state)
{
	(void)state;
	assert_true(VALID(""));
	assert_true(VALID("plain ascii"));
	assert_true(VALID("\xc3\xa9"));			/* U+00E9 */
	assert_true(VALID("\xe2\x82\xac"));		/* U+20AC */
	assert_true(VALID("\xf0\x9f\x98\x80"));		/* U+1F600 */
	assert_true(VALID("\xf4\x8f\xbf\xbf"));		/* U+10FFFF */
	assert_true(VALID("\xed\x9f\xbf"));		/* U+D7FF */
	assert_true(VALID("\xee\x80\x80"));		/* U+E000 */
}

static void
test_invalid(void **state)
{
	(void)state;
	assert_false(VALID("\xff"));
	assert_false(VALID("\x80"));			/* stray continuation */
	assert_false(VALID("\xc3"));			/* cut after the lead */
	assert_false(VALID("a\xe2\x82"));		/* cut inside */
	assert_false(VALID("\xc3\x28"));		/* bad continuation */
	assert_false(VALID("\xc0\xaf"));		/* overlong '/' */
	assert_false(VALID("\xe0\x80\xaf"));		/* overlong, 3 bytes */
	assert_false(VALID("\xf0\x80\x80\xaf"));	/* overlong, 4 bytes */
	assert_false(VALID("\xed\xa0\x80"));		/* surrogate U+D800 */
	assert_false(VALID("\xed\xbf\xbf"));		/* surrogate U+DFFF */
	assert_false(VALID("\xf4\x90\x80\x80"));	/* past U+10FFFF */
	assert_false(VALID("\xf8\x88\x80\x80\x80"));	/* 5-byte form */
}

static void
check_repair(const char *in, size_t len, const char *want)
{
	size_t	 outlen;
	char	*out = utf8_repair(in, len, &outlen);

	assert_int_equal(outlen, strlen(want));
	assert_string_equal(out, want);		/* NUL-terminated */
	assert_true(utf8_valid(out, outlen));
	free(out);
}

static void
test_repair(void **state)
{
	(void)state;
	check_repair("", 0, "");
	check_repair("ok \xc3\xa9", 5, "ok \xc3\xa9");
	check_repair("a\xff" "b", 3, "a\xef\xbf\xbd" "b");
	/* A character cut at the end: each byte left becomes U+FFFD. */
	check_repair("x\xe2\x82", 3, "x\xef\xbf\xbd\xef\xbf\xbd");
	check_repair("\xed\xa0\x80", 3,
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	/* Embedded bytes are kept as they are when well-formed. */
	check_repair("\xf0\x9f\x98\x80!", 5, "\xf0\x9f\x98\x80!");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_repair),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
