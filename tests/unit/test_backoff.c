/* test_backoff.c - retry delay math. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "backoff.h"

static const struct backoff none = { 1000, 60000, JITTER_NONE };

static void
test_exponential_without_jitter(void **state)
{
	(void)state;
	assert_int_equal(backoff_delay_ms(&none, 1, -1, 0.5), 1000);
	assert_int_equal(backoff_delay_ms(&none, 2, -1, 0.5), 2000);
	assert_int_equal(backoff_delay_ms(&none, 3, -1, 0.5), 4000);
	assert_int_equal(backoff_delay_ms(&none, 6, -1, 0.5), 32000);
	assert_int_equal(backoff_delay_ms(&none, 7, -1, 0.5), 60000);
	/* No overflow however many attempts. */
	assert_int_equal(backoff_delay_ms(&none, 4000000000u, -1, 0.5), 60000);
	assert_int_equal(backoff_delay_ms(&none, 0, -1, 0.5), 1000);
}

static void
test_full_jitter_bounds(void **state)
{
	struct backoff	b = { 1000, 60000, JITTER_FULL };

	(void)state;
	assert_int_equal(backoff_delay_ms(&b, 3, -1, 0.0), 0);
	assert_in_range(backoff_delay_ms(&b, 3, -1, 0.999999), 3990, 4000);
	assert_in_range(backoff_delay_ms(&b, 3, -1, 0.5), 1900, 2100);
	assert_in_range(backoff_delay_ms(&b, 30, -1, 0.999999), 59000, 60000);
}

static void
test_equal_jitter_bounds(void **state)
{
	struct backoff	b = { 1000, 60000, JITTER_EQUAL };

	(void)state;
	assert_int_equal(backoff_delay_ms(&b, 2, -1, 0.0), 1000);
	assert_in_range(backoff_delay_ms(&b, 2, -1, 0.999999), 1990, 2000);
}

static void
test_retry_after_overrides_and_clips(void **state)
{
	(void)state;
	assert_int_equal(backoff_delay_ms(&none, 1, 2000, 0.5), 2000);
	assert_int_equal(backoff_delay_ms(&none, 5, 0, 0.5), RETRY_AFTER_MIN_MS);
	assert_int_equal(backoff_delay_ms(&none, 1, 400, 0.5), 1000);
	assert_int_equal(backoff_delay_ms(&none, 1, 90000000, 0.5),
	    RETRY_AFTER_MAX_MS);
}

static void
test_parse_jitter(void **state)
{
	enum backoff_jitter	j;

	(void)state;
	assert_int_equal(backoff_parse_jitter("full", &j), 0);
	assert_int_equal(j, JITTER_FULL);
	assert_int_equal(backoff_parse_jitter("equal", &j), 0);
	assert_int_equal(j, JITTER_EQUAL);
	assert_int_equal(backoff_parse_jitter("none", &j), 0);
	assert_int_equal(j, JITTER_NONE);
	assert_int_equal(backoff_parse_jitter("Full", &j), -1);
	assert_int_equal(backoff_parse_jitter("", &j), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exponential_without_jitter),
		cmocka_unit_test(test_full_jitter_bounds),
		cmocka_unit_test(test_equal_jitter_bounds),
		cmocka_unit_test(test_retry_after_overrides_and_clips),
		cmocka_unit_test(test_parse_jitter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
