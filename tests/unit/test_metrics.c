/* test_metrics.c - the Prometheus text a scrape reads. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "metrics.h"

/* The scrape's text, NUL-terminated; the caller frees it. */
static char *
scrape(void)
{
	struct evbuffer	*b = evbuffer_new();
	size_t		 n;
	char		*text;

	metrics_render(b);
	n = evbuffer_get_length(b);
	text = malloc(n + 1);
	assert_non_null(text);
	evbuffer_remove(b, text, n);
	text[n] = '\0';
	evbuffer_free(b);
	return text;
}

/* Counts print whole and exact, past the ten digits %g keeps; fractions
 * as before. */
static void
test_values(void **state)
{
	char	*text;

	(void)state;
	metrics_inc(M_STEPS_STARTED, 12345678901.0, "n", "t", "a");
	metrics_inc(M_STEPS_STARTED, 1.0, "n", "t", "a");
	metrics_set(M_WORKERS_UP, 4.0, NULL, NULL, NULL);
	metrics_set(M_SCHED_QUEUED, 0.5, NULL, NULL, NULL);
	text = scrape();
	assert_non_null(strstr(text, "{namespace=\"n\",template=\"t\",step=\"a\"} "
	    "12345678902\n"));
	assert_non_null(strstr(text, "\ntaskerd_workers_up 4\n"));
	assert_non_null(strstr(text, " 0.5\n"));
	free(text);
	metrics_free();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
