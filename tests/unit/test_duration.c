/* test_duration.c - durations and sizes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "duration.h"

static int64_t
ms(const char *s)
{
	int64_t	v = -42;

	assert_int_equal(duration_parse_ms(s, &v), 0);
	return v;
}

static int64_t
bytes(const char *s)
{
	int64_t	v = -42;

	assert_int_equal(size_parse(s, &v), 0);
	return v;
}

static void
test_duration_units(void **state)
{
	(void)state;
	assert_int_equal(ms("250ms"), 250);
	assert_int_equal(ms("5s"), 5000);
	assert_int_equal(ms("2m"), 120000);
	assert_int_equal(ms("1h"), 3600000);
	assert_int_equal(ms("1d"), 86400000);
	assert_int_equal(ms("0s"), 0);
	assert_int_equal(ms("007s"), 7000);
}

static void
test_duration_bare(void **state)
{
	(void)state;
	/* Tasker writes `timeout: 5000`: milliseconds. */
	assert_int_equal(ms("5000"), 5000);
	assert_int_equal(ms("0"), 0);
	assert_int_equal(ms("9223372036854775807"), INT64_MAX);
}

static void
test_duration_garbage(void **state)
{
	static const char *const bad[] = { "", "s", "ms", "5x", "5 s", " 5s",
	    "5s ", "-5s", "+5s", "1.5s", "5S", "5M", "5sec", "5ss", "1h30m",
	    "0x10", "5e3" };
	int64_t	v = 77;
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (duration_parse_ms(bad[i], &v) != -1)
			fail_msg("accepted '%s'", bad[i]);
	}
	assert_int_equal(duration_parse_ms(NULL, &v), -1);
	assert_int_equal(v, 77);		/* untouched on error */
}

static void
test_duration_overflow(void **state)
{
	int64_t	v = 77;

	(void)state;
	assert_int_equal(duration_parse_ms("9223372036854775808", &v), -1);
	assert_int_equal(duration_parse_ms("99999999999999999999999s", &v),
	    -1);
	/* Fits as a number, not once multiplied. */
	assert_int_equal(duration_parse_ms("9223372036854776s", &v), -1);
	assert_int_equal(duration_parse_ms("106751991168d", &v), -1);
	assert_int_equal(ms("106751991167d"), 106751991167LL * 86400000);
	assert_int_equal(v, 77);
}

static void
test_size_units(void **state)
{
	(void)state;
	assert_int_equal(bytes("512"), 512);
	assert_int_equal(bytes("0"), 0);
	assert_int_equal(bytes("512b"), 512);
	assert_int_equal(bytes("64k"), 65536);
	assert_int_equal(bytes("64K"), 65536);
	assert_int_equal(bytes("64KB"), 65536);
	assert_int_equal(bytes("64KiB"), 65536);
	assert_int_equal(bytes("64kib"), 65536);
	assert_int_equal(bytes("1m"), 1048576);
	assert_int_equal(bytes("1MB"), 1048576);
	assert_int_equal(bytes("1MiB"), 1048576);
	assert_int_equal(bytes("16MiB"), 16777216);
	assert_int_equal(bytes("2g"), 2147483648LL);
	assert_int_equal(bytes("1GiB"), 1073741824);
	assert_int_equal(bytes("1TiB"), 1099511627776LL);
}

static void
test_size_garbage(void **state)
{
	static const char *const bad[] = { "", "k", "MiB", "1x", "1 KiB",
	    "-1", "+1", "1.5MiB", "1KiBs", "1iB", "1kk", " 1", "1 " };
	int64_t	v = 77;
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (size_parse(bad[i], &v) != -1)
			fail_msg("accepted '%s'", bad[i]);
	}
	assert_int_equal(size_parse(NULL, &v), -1);
	assert_int_equal(v, 77);
}

static void
test_size_overflow(void **state)
{
	int64_t	v = 77;

	(void)state;
	assert_int_equal(bytes("9223372036854775807"), INT64_MAX);
	assert_int_equal(size_parse("9223372036854775808", &v), -1);
	assert_int_equal(size_parse("8388608TiB", &v), -1);
	assert_int_equal(bytes("8388607TiB"), 8388607LL << 40);
	assert_int_equal(size_parse("9007199254740992KiB", &v), -1);
	assert_int_equal(v, 77);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_units),
		cmocka_unit_test(test_duration_bare),
		cmocka_unit_test(test_duration_garbage),
		cmocka_unit_test(test_duration_overflow),
		cmocka_unit_test(test_size_units),
		cmocka_unit_test(test_size_garbage),
		cmocka_unit_test(test_size_overflow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
