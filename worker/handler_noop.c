/*
 * handler_noop.c - the step that does nothing, for tests and benchmarks.
 *
 * Its config may ask it to be slow (sleep_ms), to answer given results, or
 * to fail; that is enough to drive timeouts, retries and result passing
 * through the whole engine without any service.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "handler.h"

static void	noop_run(const struct proto_run_step *,
		    struct proto_step_outcome *);

const struct handler handler_noop = {
	.name = "noop",
	.init = NULL,
	.run = noop_run,
};

/* Sleep the whole time even when a signal interrupts us. */
static void
noop_sleep(json_int_t ms)
{
	struct timespec	ts;

	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void
noop_run(const struct proto_run_step *run, struct proto_step_outcome *o)
{
	const json_t	*cfg = run->config, *v;
	const char	*fail;

	if (json_is_null(cfg)) {
		outcome_success(o, json_object());
		return;
	}
	if (!json_is_object(cfg)) {
		outcome_fail(o, OUTCOME_PERMANENT, "bad_config",
		    "noop handler_config must be an object");
		return;
	}

	if ((v = json_object_get(cfg, "sleep_ms")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			outcome_fail(o, OUTCOME_PERMANENT, "bad_config",
			    "noop sleep_ms must be an integer >= 0");
			return;
		}
		noop_sleep(json_integer_value(v));
	}

	if ((v = json_object_get(cfg, "fail")) != NULL) {
		fail = json_string_value(v);
		if (fail != NULL && strcmp(fail, "retryable") == 0) {
			outcome_fail(o, OUTCOME_RETRYABLE, "noop_fail",
			    "noop asked to fail (retryable)");
			return;
		}
		if (fail != NULL && strcmp(fail, "permanent") == 0) {
			outcome_fail(o, OUTCOME_PERMANENT, "noop_fail",
			    "noop asked to fail (permanent)");
			return;
		}
		outcome_fail(o, OUTCOME_PERMANENT, "bad_config",
		    "noop fail must be \"retryable\" or \"permanent\"");
		return;
	}

	if ((v = json_object_get(cfg, "results")) != NULL)
		outcome_success(o, json_deep_copy(v));
	else
		outcome_success(o, json_object());
}
