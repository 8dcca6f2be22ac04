/*
 * fuzz_template - the YAML loaders: templates (common/template.c over
 * common/yamltree.c, with schemas from common/schema.c) and the daemon's
 * configuration file (common/config.c), both fed the same input.
 *
 * A loaded template must hold what the rest of taskerd relies on without
 * checking again: unique step names, dependencies that resolve to earlier
 * loaded steps and form no cycle, handlers from the known set, a schema
 * that schema_check accepts, routes the registry can match.  A failed load
 * must say why.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "schema.h"
#include "template.h"
#include "fuzz.h"

#define TMPL_NAME	"fuzz.yaml"
#define CONFIG_NAME	"/etc/taskerd/taskerd.yaml"
#define TASK_ID_SEG	"{task_id}"

static const struct tmpl_defaults defaults = {
	.retry_limit = 3,
	.timeout_ms = 30000,
	.backoff = { .base_ms = 1000, .max_ms = 300000, .jitter = JITTER_FULL },
};

static int
known_handler(const char *h)
{
	return strcmp(h, "http") == 0 || strcmp(h, "exec") == 0 ||
	    strcmp(h, "plugin") == 0 || strcmp(h, "noop") == 0;
}

/* Kahn's algorithm over dep_idx: every step must come out. */
static void
check_acyclic(const struct tmpl *t)
{
	size_t	*pending, *order, n = 0, head = 0, i, k;

	pending = calloc(t->nsteps + 1, sizeof(*pending));
	order = calloc(t->nsteps + 1, sizeof(*order));
	if (pending == NULL || order == NULL)
		abort();
	for (i = 0; i < t->nsteps; i++) {
		pending[i] = t->steps[i].ndeps;
		if (pending[i] == 0)
			order[n++] = i;
	}
	while (head < n) {
		size_t done = order[head++];

		for (i = 0; i < t->nsteps; i++)
			for (k = 0; k < t->steps[i].ndeps; k++)
				if (t->steps[i].dep_idx[k] == done &&
				    --pending[i] == 0)
					order[n++] = i;
	}
	FUZZ_CHECK(n == t->nsteps, "dependency cycle: %zu of %zu steps "
	    "orderable", n, t->nsteps);
	free(pending);
	free(order);
}

static void
check_route(const struct tmpl_registry *reg, const struct tmpl *t,
    enum tmpl_route kind, const char *route)
{
	const struct tmpl	*found;
	const char		*id = NULL;
	char			*path;
	size_t			 len, slen = strlen(TASK_ID_SEG);

	if (route == NULL)
		return;
	if (kind == ROUTE_CREATE) {
		found = tmpl_registry_route(reg, kind, route, NULL);
		FUZZ_CHECK(found == t, "create route '%s' not found", route);
		return;
	}
	len = strlen(route);
	FUZZ_CHECK(len >= slen && strcmp(route + len - slen, TASK_ID_SEG) == 0,
	    "route '%s' does not end in " TASK_ID_SEG, route);
	if (asprintf(&path, "%.*s42", (int)(len - slen), route) == -1)
		abort();
	found = tmpl_registry_route(reg, kind, path, &id);
	FUZZ_CHECK(found == t && id != NULL && strcmp(id, "42") == 0,
	    "route '%s' does not match '%s'", route, path);
	free(path);
}

static void
check_tmpl(const struct tmpl *t)
{
	struct tmpl_registry	 reg;
	struct tmpl		*items[1];
	const struct tmpl_step	*st;
	json_t			*ctx, *viol;
	char			 err[512];
	size_t			 i, k;

	FUZZ_CHECK(t->name != NULL && t->namespace != NULL &&
	    t->version != NULL && *t->name != '\0' &&
	    *t->namespace != '\0' && *t->version != '\0',
	    "template without a name, namespace or version");
	FUZZ_CHECK(json_is_object(t->definition), "definition not an object");
	FUZZ_CHECK(tmpl_version_cmp(t->version, t->version) == 0,
	    "version '%s' differs from itself", t->version);
	FUZZ_CHECK(strcmp(tmpl_identity_name(t->identity), "") != 0,
	    "identity without a name");

	for (i = 0; i < t->nsteps; i++) {
		st = &t->steps[i];
		FUZZ_CHECK(st->name != NULL && st->handler != NULL,
		    "step %zu without name or handler", i);
		FUZZ_CHECK(tmpl_step_index(t, st->name) == (ssize_t)i,
		    "step name '%s' is not unique", st->name);
		FUZZ_CHECK(known_handler(st->handler), "handler '%s'",
		    st->handler);
		FUZZ_CHECK(st->retry_limit >= 1, "retry_limit %d",
		    st->retry_limit);
		FUZZ_CHECK(st->timeout_ms >= 1, "timeout %lld",
		    (long long)st->timeout_ms);
		FUZZ_CHECK(st->backoff.base_ms >= 0 && st->backoff.max_ms >= 0,
		    "negative backoff");
		FUZZ_CHECK(json_is_object(st->handler_config),
		    "handler_config is not an object");
		for (k = 0; k < st->ndeps; k++) {
			FUZZ_CHECK(st->dep_idx[k] < t->nsteps,
			    "dependency index out of range");
			FUZZ_CHECK(strcmp(t->steps[st->dep_idx[k]].name,
			    st->deps[k]) == 0, "dependency '%s' resolved "
			    "to another step", st->deps[k]);
			FUZZ_CHECK(st->dep_idx[k] != i, "step '%s' depends on "
			    "itself", st->name);
		}
	}
	check_acyclic(t);

	if (t->schema != NULL) {
		FUZZ_CHECK(schema_check(t->schema, err, sizeof(err)) == 0,
		    "loaded schema fails schema_check: %s", err);
		/* The context of a task created with an empty body. */
		ctx = json_object();
		viol = schema_validate(t->schema, ctx);
		FUZZ_CHECK(json_is_array(viol), "violations not an array");
		json_decref(viol);
		json_decref(ctx);
	}

	items[0] = (struct tmpl *)t;
	reg.items = items;
	reg.n = 1;
	FUZZ_CHECK(tmpl_registry_find(&reg, t->namespace, t->name, NULL) == t,
	    "template not found by name");
	FUZZ_CHECK(tmpl_registry_find(&reg, t->namespace, t->name,
	    t->version) == t, "template not found by version");
	check_route(&reg, t, ROUTE_CREATE, t->route_create);
	check_route(&reg, t, ROUTE_STATUS, t->route_status);
	check_route(&reg, t, ROUTE_RESULTS, t->route_results);
}

static void
check_config(const struct config *cfg)
{
	size_t	 i;

	FUZZ_CHECK(cfg->http_listen != NULL && cfg->templates_dir != NULL,
	    "config without listen or templates dir");
	FUZZ_CHECK(cfg->step_defaults.retry_limit >= 1,
	    "steps.retry_limit %d", cfg->step_defaults.retry_limit);
	for (i = 0; i < cfg->nservices; i++)
		FUZZ_CHECK(config_service(cfg, cfg->services[i].name) ==
		    &cfg->services[i], "service '%s' is not unique",
		    cfg->services[i].name);
}

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tmpl	*t;
	struct config	*cfg;
	char		 err[512];

	memset(err, 0, sizeof(err));
	t = tmpl_load_buffer(TMPL_NAME, (const char *)data, size, &defaults,
	    err, sizeof(err));
	if (t == NULL)
		FUZZ_CHECK(fuzz_err_ok(err, sizeof(err)) &&
		    strncmp(err, TMPL_NAME ":", strlen(TMPL_NAME) + 1) == 0,
		    "template failed without 'NAME:LINE: reason': '%.100s'",
		    err);
	else {
		check_tmpl(t);
		tmpl_free(t);
	}

	memset(err, 0, sizeof(err));
	cfg = config_load_buffer(CONFIG_NAME, (const char *)data, size, err,
	    sizeof(err));
	if (cfg == NULL)
		FUZZ_CHECK(fuzz_err_ok(err, sizeof(err)) &&
		    strncmp(err, CONFIG_NAME ":", strlen(CONFIG_NAME) + 1) == 0,
		    "config failed without 'NAME:LINE: reason': '%.100s'",
		    err);
	else {
		check_config(cfg);
		config_free(cfg);
	}
	return 0;
}
