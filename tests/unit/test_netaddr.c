/* test_netaddr.c - which listening addresses count as loopback. */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "netaddr.h"

/* The address text as a sockaddr, v4 or v6. */
static bool
loopback(const char *text)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*in6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &in4->sin_addr) == 1)
		in4->sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr),
		    1);
		in6->sin6_family = AF_INET6;
	}
	return sockaddr_is_loopback((struct sockaddr *)&ss);
}

static void
test_loopback(void **state)
{
	(void)state;
	assert_true(loopback("127.0.0.1"));
	assert_true(loopback("127.255.3.4"));
	assert_true(loopback("::1"));
	assert_true(loopback("::ffff:127.0.0.1"));
}

static void
test_not_loopback(void **state)
{
	struct sockaddr	sa;

	(void)state;
	assert_false(loopback("0.0.0.0"));
	assert_false(loopback("::"));
	assert_false(loopback("10.0.0.1"));
	assert_false(loopback("128.0.0.1"));
	assert_false(loopback("126.255.255.255"));
	assert_false(loopback("::2"));
	assert_false(loopback("::ffff:10.0.0.1"));
	assert_false(loopback("::ffff:0.0.0.0"));
	assert_false(loopback("fe80::1"));
	assert_false(loopback("::127.0.0.1"));	/* v4-compatible, not mapped */
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	assert_false(sockaddr_is_loopback(&sa));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_not_loopback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
