/* test_httpclass.c - HTTP status classes and Retry-After parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "httpclass.h"

/* Sun, 06 Nov 1994 08:49:37 GMT, the RFC's own example date. */
#define RFC_DATE	((time_t)784111777)
/* Wed, 25 Nov 2026 12:00:00 GMT */
#define NOW_2026	((time_t)1795608000)

static void
check_class(long status, int conflict_retryable, enum proto_outcome want)
{
	enum proto_outcome	got;

	got = httpclass_status(status, conflict_retryable);
	if (got != want)
		fail_msg("status %ld (conflict_retryable %d): got %d want %d",
		    status, conflict_retryable, (int)got, (int)want);
}

static void
test_status_classes(void **state)
{
	(void)state;
	check_class(100, 0, OUTCOME_PERMANENT);
	check_class(199, 0, OUTCOME_PERMANENT);
	check_class(200, 0, OUTCOME_SUCCESS);
	check_class(201, 0, OUTCOME_SUCCESS);
	check_class(204, 0, OUTCOME_SUCCESS);
	check_class(299, 0, OUTCOME_SUCCESS);
	check_class(300, 0, OUTCOME_PERMANENT);
	check_class(302, 0, OUTCOME_PERMANENT);
	check_class(399, 0, OUTCOME_PERMANENT);
	check_class(400, 0, OUTCOME_PERMANENT);
	check_class(401, 0, OUTCOME_PERMANENT);
	check_class(403, 0, OUTCOME_PERMANENT);
	check_class(404, 0, OUTCOME_PERMANENT);
	/* Timeouts are retryable (DESIGN.md), the server's own too; and
	 * "too early" means later. */
	check_class(408, 0, OUTCOME_RETRYABLE);
	check_class(425, 0, OUTCOME_RETRYABLE);
	check_class(424, 0, OUTCOME_PERMANENT);
	check_class(426, 0, OUTCOME_PERMANENT);
	check_class(422, 0, OUTCOME_PERMANENT);
	check_class(428, 0, OUTCOME_PERMANENT);
	check_class(429, 0, OUTCOME_RETRYABLE);
	check_class(430, 0, OUTCOME_PERMANENT);
	check_class(499, 0, OUTCOME_PERMANENT);
	check_class(500, 0, OUTCOME_RETRYABLE);
	check_class(502, 0, OUTCOME_RETRYABLE);
	check_class(503, 0, OUTCOME_RETRYABLE);
	check_class(599, 0, OUTCOME_RETRYABLE);
	check_class(600, 0, OUTCOME_PERMANENT);
	check_class(0, 0, OUTCOME_PERMANENT);
	check_class(-1, 0, OUTCOME_PERMANENT);
}

static void
test_status_conflict(void **state)
{
	(void)state;
	check_class(409, 0, OUTCOME_PERMANENT);
	check_class(409, 1, OUTCOME_RETRYABLE);
	/* The setting changes 409 only. */
	check_class(400, 1, OUTCOME_PERMANENT);
	check_class(410, 1, OUTCOME_PERMANENT);
	check_class(200, 1, OUTCOME_SUCCESS);
	check_class(500, 1, OUTCOME_RETRYABLE);
}

static void
test_retry_after_delta(void **state)
{
	(void)state;
	assert_int_equal(httpclass_retry_after_ms("120", NOW_2026), 120000);
	assert_int_equal(httpclass_retry_after_ms("0", NOW_2026), 0);
	assert_int_equal(httpclass_retry_after_ms("1", NOW_2026), 1000);
	assert_int_equal(httpclass_retry_after_ms("007", NOW_2026), 7000);
	/* Optional whitespace around the value, as curl hands it over. */
	assert_int_equal(httpclass_retry_after_ms(" 30\r\n", NOW_2026), 30000);
	assert_int_equal(httpclass_retry_after_ms("\t5 ", NOW_2026), 5000);
	assert_int_equal(httpclass_retry_after_ms("86400", NOW_2026),
	    86400000);
	/* Absurdly large saturates instead of overflowing (backoff clips). */
	assert_true(httpclass_retry_after_ms("99999999999999999999999",
	    NOW_2026) > 86400000);
}

static void
test_retry_after_garbage(void **state)
{
	(void)state;
	assert_int_equal(httpclass_retry_after_ms(NULL, NOW_2026), -1);
	assert_int_equal(httpclass_retry_after_ms("", NOW_2026), -1);
	assert_int_equal(httpclass_retry_after_ms("   ", NOW_2026), -1);
	assert_int_equal(httpclass_retry_after_ms("-5", NOW_2026), -1);
	assert_int_equal(httpclass_retry_after_ms("-0", NOW_2026), -1);
	assert_int_equal(httpclass_retry_after_ms("+5", NOW_2026), -1);
	assert_int_equal(httpclass_retry_after_ms("1.5", NOW_2026), -1);
	assert_int_equal(httpclass_retry_after_ms("5s", NOW_2026), -1);
	assert_int_equal(httpclass_retry_after_ms("5 6", NOW_2026), -1);
	assert_int_equal(httpclass_retry_after_ms("soon", NOW_2026), -1);
	assert_int_equal(httpclass_retry_after_ms("0x10", NOW_2026), -1);
	/* Dates that are nearly right are still wrong. */
	assert_int_equal(httpclass_retry_after_ms(
	    "Sun, 06 Nov 1994 08:49:37 UTC", RFC_DATE), -1);
	assert_int_equal(httpclass_retry_after_ms(
	    "Sun, 06 Nov 1994 08:49:37", RFC_DATE), -1);
	assert_int_equal(httpclass_retry_after_ms(
	    "Sun, 6 Nov 1994 08:49:37 GMT", RFC_DATE), -1);
	assert_int_equal(httpclass_retry_after_ms(
	    "Sun, 06 Nov 1994 08:49:37 GMT trailing", RFC_DATE), -1);
	assert_int_equal(httpclass_retry_after_ms(
	    "Sun, 06 Foo 1994 08:49:37 GMT", RFC_DATE), -1);
	assert_int_equal(httpclass_retry_after_ms(
	    "Sun, 31 Nov 1994 08:49:37 GMT", RFC_DATE), -1);
	assert_int_equal(httpclass_retry_after_ms(
	    "Sun, 06 Nov 1994 24:00:00 GMT", RFC_DATE), -1);
	assert_int_equal(httpclass_retry_after_ms(
	    "Sun, 29 Feb 1995 00:00:00 GMT", RFC_DATE), -1);
	assert_int_equal(httpclass_retry_after_ms(
	    "Sunday, 06 Nov 1994 08:49:37 GMT", RFC_DATE), -1);
	assert_int_equal(httpclass_retry_after_ms(
	    "Sun Nov 6 08:49:37 1994", RFC_DATE), -1);
}

static void
test_retry_after_imf_fixdate(void **state)
{
	(void)state;
	/* Exactly now, two minutes ahead, one day ahead. */
	assert_int_equal(httpclass_retry_after_ms(
	    "Sun, 06 Nov 1994 08:49:37 GMT", RFC_DATE), 0);
	assert_int_equal(httpclass_retry_after_ms(
	    "Sun, 06 Nov 1994 08:49:37 GMT", RFC_DATE - 120), 120000);
	assert_int_equal(httpclass_retry_after_ms(
	    "Mon, 07 Nov 1994 08:49:37 GMT", RFC_DATE), 86400000);
	assert_int_equal(httpclass_retry_after_ms(
	    "Wed, 25 Nov 2026 12:00:05 GMT", NOW_2026), 5000);
	/* Leap day and year boundary. */
	assert_int_equal(httpclass_retry_after_ms(
	    "Thu, 29 Feb 2024 00:00:00 GMT", (time_t)1709164800 - 1), 1000);
	assert_int_equal(httpclass_retry_after_ms(
	    "Fri, 01 Jan 2027 00:00:00 GMT", NOW_2026), (int64_t)(1798761600 -
	    1795608000) * 1000);
}

static void
test_retry_after_rfc850(void **state)
{
	(void)state;
	assert_int_equal(httpclass_retry_after_ms(
	    "Sunday, 06-Nov-94 08:49:37 GMT", RFC_DATE - 60), 60000);
	/* From 2026, "94" is 1994: long past, so retry now. */
	assert_int_equal(httpclass_retry_after_ms(
	    "Sunday, 06-Nov-94 08:49:37 GMT", NOW_2026), 0);
	/* From 2026, "26" is 2026. */
	assert_int_equal(httpclass_retry_after_ms(
	    "Wednesday, 25-Nov-26 12:00:10 GMT", NOW_2026), 10000);
	assert_int_equal(httpclass_retry_after_ms(
	    "Sunday, 06-Nov-94 08:49:37 UTC", RFC_DATE), -1);
}

static void
test_retry_after_asctime(void **state)
{
	(void)state;
	assert_int_equal(httpclass_retry_after_ms(
	    "Sun Nov  6 08:49:37 1994", RFC_DATE - 3), 3000);
	assert_int_equal(httpclass_retry_after_ms(
	    "Wed Nov 25 12:01:00 2026", NOW_2026), 60000);
	assert_int_equal(httpclass_retry_after_ms(
	    "Sun Nov  6 08:49:37 1994", NOW_2026), 0);
}

static void
test_retry_after_past(void **state)
{
	(void)state;
	assert_int_equal(httpclass_retry_after_ms(
	    "Sun, 06 Nov 1994 08:49:37 GMT", NOW_2026), 0);
	assert_int_equal(httpclass_retry_after_ms(
	    "Wed, 25 Nov 2026 11:59:59 GMT", NOW_2026), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_classes),
		cmocka_unit_test(test_status_conflict),
		cmocka_unit_test(test_retry_after_delta),
		cmocka_unit_test(test_retry_after_garbage),
		cmocka_unit_test(test_retry_after_imf_fixdate),
		cmocka_unit_test(test_retry_after_rfc850),
		cmocka_unit_test(test_retry_after_asctime),
		cmocka_unit_test(test_retry_after_past),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
