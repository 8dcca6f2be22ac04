/*
 * handler_plugin.c - a step run by a function in a shared object: the
 * contract is include/taskerd_plugin.h, the config handler_config.h's.
 *
 * Objects stay loaded for the worker's life: dlopen of one already loaded
 * only counts a reference, and unloading would drop a plugin's state (its
 * connections, its caches) between steps.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"
#include "handler_config.h"
#include "jsontext.h"
#include "log.h"
#include "taskerd_plugin.h"
#include "utf8.h"
#include "xmalloc.h"

static void	plugin_run(const struct proto_run_step *,
		    struct proto_step_outcome *);

const struct handler handler_plugin = {
	.name = "plugin",
	.init = NULL,
	.run = plugin_run,
};

#define PLUGIN_ERROR_KEEP	1024	/* bytes of a message kept, as exec */

/* The plugin's message, as text PostgreSQL takes, and short enough for a
 * step's last_error (a cut character becomes U+FFFD). */
static char *
plugin_text(const char *s)
{
	size_t	len = strlen(s);

	return utf8_repair(s, len > PLUGIN_ERROR_KEEP ? PLUGIN_ERROR_KEEP :
	    len, &len);
}

/* Turn the function's answer into the outcome. */
static void
plugin_outcome(const char *sym, int rc, const struct taskerd_step *step,
    struct proto_step_outcome *o)
{
	json_t		*results;
	json_error_t	 jerr;
	char		*why;

	if (rc != TASKERD_STEP_OK) {
		why = step->error != NULL ? plugin_text(step->error) : NULL;
		outcome_fail(o, rc == TASKERD_STEP_RETRY ? OUTCOME_RETRYABLE :
		    OUTCOME_PERMANENT, rc == TASKERD_STEP_RETRY ?
		    "plugin_retry" : "plugin_failed", "%s returned %d%s%s",
		    sym, rc, why != NULL ? ": " : "", why != NULL ? why : "");
		free(why);
		return;
	}
	if (step->results == NULL) {
		outcome_success(o, json_object());
		return;
	}
	if (strlen(step->results) > handler_max_output()) {
		outcome_fail(o, OUTCOME_PERMANENT, "results_too_large",
		    "%s returned %zu bytes of results; workers.max_frame is "
		    "%zu", sym, strlen(step->results), handler_max_output());
		return;
	}
	if ((results = json_loads(step->results, JSON_DECODE_ANY,
	    &jerr)) == NULL) {
		outcome_fail(o, OUTCOME_PERMANENT, "bad_output", "%s returned "
		    "results that are not JSON: %s%s", sym, jerr.text,
		    json_error_code(&jerr) == json_error_numeric_overflow ?
		    "; write integers beyond 64 bits as strings" : "");
		return;
	}
	if (proto_json_depth(results) > PROTO_MAX_JSON_DEPTH) {
		json_decref(results);
		outcome_fail(o, OUTCOME_PERMANENT, "bad_output", "%s returned "
		    "JSON nested deeper than %d levels", sym,
		    PROTO_MAX_JSON_DEPTH);
		return;
	}
	outcome_success(o, results);
}

static void
plugin_run(const struct proto_run_step *run, struct proto_step_outcome *o)
{
	struct taskerd_step	 step;
	taskerd_step_fn		*fn;
	const char		*lib, *sym;
	char			 why[256], *input, *config;
	void			*dl;
	int			 rc;

	/* Checked at load; a worker trusts nothing it is sent. */
	if (plugin_config_check((json_t *)run->config, NULL, NULL, why,
	    sizeof(why)) == -1) {
		outcome_fail(o, OUTCOME_PERMANENT, "bad_config", "%s", why);
		return;
	}
	lib = json_string_value(json_object_get(run->config, "library"));
	sym = json_string_value(json_object_get(run->config, "symbol"));
	/* A library that is not there, or a function it lacks, is a
	 * deployment to fix, not something a retry mends. */
	if ((dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		outcome_fail(o, OUTCOME_PERMANENT, "plugin_not_loaded",
		    "cannot load %s: %s", lib, dlerror());
		return;
	}
	dlerror();
	if ((fn = (taskerd_step_fn *)dlsym(dl, sym)) == NULL) {
		outcome_fail(o, OUTCOME_PERMANENT, "plugin_not_loaded",
		    "%s has no function %s", lib, sym);
		return;
	}

	if ((input = jsontext(run->input, 0)) == NULL ||
	    (config = jsontext(run->config, 0)) == NULL)
		fatalx("plugin: cannot encode the step");
	memset(&step, 0, sizeof(step));
	step.api = TASKERD_PLUGIN_API;
	step.input = input;
	step.config = config;
	step.task_id = (long long)run->task_id;
	step.step_name = run->step_name;
	step.attempt = run->attempt;
	step.idempotency_key = run->idempotency_key;
	step.correlation_id = run->correlation_id;
	rc = fn(&step);
	plugin_outcome(sym, rc, &step, o);
	free(step.results);
	free(step.error);
	free(input);
	free(config);
}
