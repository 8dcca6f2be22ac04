/*
 * cmd_admin.c - the commands about the daemon rather than one task:
 * templates (list, show, validate), workers, services, nodes, health.
 *
 * `template validate` is the one command that needs no server: it runs
 * tmpl_load_file(), the loader taskerd itself uses, with the step
 * defaults of taskerd's config (--config; else the built-in ones), so a
 * file it passes is a file taskerd loads and a file it fails gets the
 * same FILE:LINE: reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "template.h"
#include "xmalloc.h"

/* ---- templates ----------------------------------------------------------- */

static void
render_templates_list(const json_t *body, const void *arg)
{
	static const char *const hdr[] = { "NAMESPACE/NAME", "VERSION",
	    "STEPS", "IDENTITY", "DESCRIPTION" };
	struct out_table *t;
	const json_t	*x;
	size_t		 i;

	(void)arg;
	t = out_table_new(5, hdr);
	json_array_foreach(json_object_get(body, "templates"), i, x) {
		out_table_row(t);
		out_table_set(t, 0, NULL, "%s/%s", out_str(x, "namespace", "?"),
		    out_str(x, "name", "?"));
		out_table_set(t, 1, NULL, "%s", out_str(x, "version", "?"));
		out_table_set(t, 2, NULL, "%zu",
		    json_array_size(json_object_get(x, "steps")));
		out_table_set(t, 3, NULL, "%s", out_str(x, "identity_strategy",
		    "?"));
		out_table_set(t, 4, NULL, "%s", out_str(x, "description", ""));
	}
	out_table_print(t, stdout);
}

int
cmd_templates_list(struct ctl_args *a)
{
	return client_show("/v1/templates", render_templates_list, NULL);
}

/* The columns beside the tree for one step of a template. */
static void
template_step_cells(struct out_table *t, const json_t *s, void *arg)
{
	const json_t	*def = arg, *d;
	const char	*service = NULL;
	char		 buf[32];
	size_t		 i;

	out_table_set(t, 1, NULL, "%s", out_str(s, "handler", "?"));
	out_table_set(t, 2, NULL, "%lld%s", (long long)json_integer_value(
	    json_object_get(s, "retry_limit")),
	    json_is_false(json_object_get(s, "retryable")) ? " (no retry)" :
	    "");
	out_fmt_duration(buf, sizeof(buf), json_integer_value(
	    json_object_get(s, "timeout_ms")));
	out_table_set(t, 3, NULL, "%s", buf);
	/* The service is in the definition, not the summary. */
	json_array_foreach(json_object_get(def, "step_templates"), i, d)
		if (strcmp(out_str(d, "name", ""), out_str(s, "name", "?")) ==
		    0)
			service = out_str(d, "dependent_system", NULL);
	if (service == NULL)
		service = out_str(def, "default_dependent_system", NULL);
	out_table_set(t, 4, NULL, "%s", service ? service : "");
}

int
cmd_templates_show(struct ctl_args *a)
{
	static const char *const hdr[] = { "STEP", "HANDLER", "ATTEMPTS",
	    "TIMEOUT", "SERVICE" };
	struct client_resp r;
	const char	*spec = a->pos[0], *slash = strchr(spec, '/');
	char		*ns, *name, *path;
	int		 rc;

	/* The namespace ends at the first '/'; a name may hold more. */
	if (slash == NULL || slash == spec || slash[1] == '\0')
		return ctl_usage_error(a, "\"%s\" is not NS/NAME", spec);
	ns = xstrndup(spec, (size_t)(slash - spec));
	name = client_escape(slash + 1);
	path = client_escape(ns);
	free(ns);
	ns = path;
	xasprintf(&path, "/v1/templates/%s/%s", ns, name);
	free(ns);
	free(name);
	rc = client_call("GET", path, NULL, &r);
	free(path);
	if (rc != 0)
		return rc;
	if (ctl.json) {
		client_print_raw(&r);
		client_resp_free(&r);
		return 0;
	}
	printf("%s/%s@%s  identity %s\n", out_str(r.json, "namespace", "?"),
	    out_str(r.json, "name", "?"), out_str(r.json, "version", "?"),
	    out_str(r.json, "identity_strategy", "?"));
	/* (Free text a template's author wrote: no escape sequence of its
	 * reaches the terminal.) */
	if (out_str(r.json, "description", NULL) != NULL) {
		out_text(stdout, out_str(r.json, "description", ""));
		putchar('\n');
	}
	putchar('\n');
	dag_print(stdout, json_object_get(r.json, "steps"), 5, hdr,
	    template_step_cells, json_object_get(r.json, "definition"));
	client_resp_free(&r);
	return 0;
}

/* Whether argument i names a file an earlier argument named too. */
static bool
given_before(const struct ctl_args *a, int i)
{
	char	*mine, *other;
	bool	 same = false;
	int	 j;

	if ((mine = realpath(a->pos[i], NULL)) == NULL)
		return false;
	for (j = 0; j < i && !same; j++) {
		if ((other = realpath(a->pos[j], NULL)) == NULL)
			continue;
		same = strcmp(mine, other) == 0;
		free(other);
	}
	free(mine);
	return same;
}

int
cmd_template_validate(struct ctl_args *a)
{
	const char	*path = ctl_opt(a, "config");
	struct config	*defaults;
	struct tmpl_registry *reg;
	struct tmpl	*t;
	json_t		*out;
	char		 err[2048], *warnings, *p, *line;
	int		 i, rc = 0;
	bool		 again;

	/* A config's steps: defaults change what a file means (a step's
	 * backoff.base past the config's backoff.max is refused). */
	if (path == NULL)
		defaults = config_default();
	else if ((defaults = config_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "tasker-ctl: %s\n", err);
		return CTL_EXIT_USAGE;
	}
	reg = tmpl_registry_new(&defaults->step_defaults);
	out = json_array();

	/* Each file on its own, and each against the ones before it, as a
	 * templates directory holding them all would load. */
	for (i = 0; i < a->npos; i++) {
		err[0] = '\0';
		t = tmpl_load_file(a->pos[i], &defaults->step_defaults, err,
		    sizeof(err));
		/* A file given twice (a glob and its name) is checked once
		 * against the others. */
		again = given_before(a, i);
		if (t != NULL && !again &&
		    tmpl_registry_add(reg, t, err, sizeof(err)) == -1) {
			tmpl_free(t);
			t = NULL;
		}
		if (ctl.json)
			json_array_append_new(out, t != NULL ?
			    json_pack("{s:s, s:b}", "file", a->pos[i], "ok", 1) :
			    json_pack("{s:s, s:b, s:s}", "file", a->pos[i], "ok",
			    0, "error", err));
		else if (t != NULL)
			printf("%s: ok\n", a->pos[i]);
		else {
			fflush(stdout);
			fprintf(stderr, "%s\n", err);
		}
		if (t == NULL)
			rc = CTL_EXIT_API;
		else if (again)
			tmpl_free(t);
	}
	if (ctl.json) {
		out_print_json(out);
	}
	/* What loads but cannot run here yet, as taskerd --check says it. */
	if ((warnings = tmpl_registry_warnings(reg)) != NULL) {
		fflush(stdout);
		for (p = warnings; (line = strsep(&p, "\n")) != NULL;)
			fprintf(stderr, "warning: %s\n", line);
		free(warnings);
	}
	json_decref(out);
	tmpl_registry_free(reg);
	config_free(defaults);
	return rc;
}

/* ---- workers, services, health ------------------------------------------- */

static void
render_workers(const json_t *body, const void *arg)
{
	static const char *const hdr[] = { "SLOT", "PID", "STATE",
	    "TASK/STEP", "ATTEMPT", "UPTIME", "RESTARTS" };
	struct out_table *t;
	const json_t	*w;
	char		 buf[32];
	size_t		 i;

	(void)arg;
	t = out_table_new(7, hdr);
	json_array_foreach(json_object_get(body, "workers"), i, w) {
		const char *st = out_str(w, "state", "?");

		out_table_row(t);
		out_table_set(t, 0, NULL, "%lld", (long long)json_integer_value(
		    json_object_get(w, "slot")));
		out_table_set(t, 1, NULL, "%lld", (long long)json_integer_value(
		    json_object_get(w, "pid")));
		out_table_set(t, 2, out_state_color(st), "%s", st);
		if (json_is_integer(json_object_get(w, "task_id"))) {
			out_table_set(t, 3, NULL, "%lld/%s", (long long)
			    json_integer_value(json_object_get(w, "task_id")),
			    out_str(w, "step", "?"));
			out_table_set(t, 4, NULL, "%lld", (long long)
			    json_integer_value(json_object_get(w, "attempt")));
		} else {
			out_table_set(t, 3, NULL, "-");
			out_table_set(t, 4, NULL, "-");
		}
		out_fmt_duration(buf, sizeof(buf), json_integer_value(
		    json_object_get(w, "uptime_s")) * 1000);
		out_table_set(t, 5, NULL, "%s", buf);
		out_table_set(t, 6, NULL, "%lld", (long long)json_integer_value(
		    json_object_get(w, "restarts")));
	}
	out_table_print(t, stdout);
}

int
cmd_workers(struct ctl_args *a)
{
	return client_show("/v1/workers", render_workers, NULL);
}

static void
render_services(const json_t *body, const void *arg)
{
	static const char *const hdr[] = { "NAME", "BREAKER", "INFLIGHT/LIMIT",
	    "CALLS", "FAILURES", "CONSECUTIVE", "OPENED", "BASE URL" };
	struct out_table *t;
	const json_t	*s;
	json_int_t	 limit;
	size_t		 i;

	(void)arg;
	t = out_table_new(8, hdr);
	json_array_foreach(json_object_get(body, "services"), i, s) {
		const char *b = out_str(s, "breaker", "?");

		out_table_row(t);
		out_table_set(t, 0, NULL, "%s", out_str(s, "name", "?"));
		if (json_is_integer(json_object_get(s, "reopens_in_s")))
			out_table_set(t, 1, out_state_color(b), "%s (probe in "
			    "%llds)", b, (long long)json_integer_value(
			    json_object_get(s, "reopens_in_s")));
		else
			out_table_set(t, 1, out_state_color(b), "%s", b);
		/* A limit of 0 is no limit. */
		limit = json_integer_value(json_object_get(s, "concurrency"));
		if (limit > 0)
			out_table_set(t, 2, NULL, "%lld/%lld", (long long)
			    json_integer_value(json_object_get(s, "inflight")),
			    (long long)limit);
		else
			out_table_set(t, 2, NULL, "%lld/-", (long long)
			    json_integer_value(json_object_get(s, "inflight")));
		out_table_set(t, 3, NULL, "%lld", (long long)json_integer_value(
		    json_object_get(s, "calls")));
		out_table_set(t, 4, NULL, "%lld", (long long)json_integer_value(
		    json_object_get(s, "failures")));
		out_table_set(t, 5, NULL, "%lld", (long long)json_integer_value(
		    json_object_get(s, "consecutive_failures")));
		out_table_set(t, 6, NULL, "%lld", (long long)json_integer_value(
		    json_object_get(s, "times_opened")));
		out_table_set(t, 7, NULL, "%s", out_str(s, "base_url", "-"));
	}
	out_table_print(t, stdout);
}

int
cmd_services(struct ctl_args *a)
{
	return client_show("/v1/services", render_services, NULL);
}

/*
 * The nodes sharing the database.  A node is alive while its lease runs,
 * stopped once it handed it back, lost when it ran out; HEARTBEAT is how
 * long ago it last renewed it.
 */
static void
render_nodes(const json_t *body, const void *arg)
{
	static const char *const hdr[] = { "NODE", "HOST", "PID", "VERSION",
	    "STATE", "CLAIMED", "HEARTBEAT", "STARTED" };
	struct out_table *t;
	const json_t	*n;
	const char	*st;
	char		 buf[48];
	int64_t		 now = out_now(), beat;
	size_t		 i;

	(void)arg;
	t = out_table_new(8, hdr);
	json_array_foreach(json_object_get(body, "nodes"), i, n) {
		/* (A taskerd before 0.1's state said only alive.) */
		st = json_is_string(json_object_get(n, "state")) ?
		    out_str(n, "state", "?") :
		    json_is_true(json_object_get(n, "alive")) ? "alive" :
		    "lost";
		out_table_row(t);
		out_table_set(t, 0, NULL, "%s%s", out_str(n, "node_id", "?"),
		    json_is_true(json_object_get(n, "this_node")) ?
		    " (this)" : "");
		out_table_set(t, 1, NULL, "%s", out_str(n, "host", "-"));
		out_table_set(t, 2, NULL, "%lld", (long long)json_integer_value(
		    json_object_get(n, "pid")));
		out_table_set(t, 3, NULL, "%s", out_str(n, "version", "-"));
		out_table_set(t, 4, out_state_color(st), "%s", st);
		out_table_set(t, 5, NULL, "%lld", (long long)json_integer_value(
		    json_object_get(n, "claimed_steps")));
		if ((beat = out_json_time(n, "heartbeat_at")) >= 0) {
			out_fmt_duration(buf, sizeof(buf), (now - beat) / 1000);
			out_table_set(t, 6, NULL, "%s ago", buf);
		} else
			out_table_set(t, 6, NULL, "-");
		out_fmt_time(buf, sizeof(buf), out_json_time(n, "started_at"),
		    false);
		out_table_set(t, 7, NULL, "%s", buf);
	}
	out_table_print(t, stdout);
}

int
cmd_nodes(struct ctl_args *a)
{
	return client_show("/v1/nodes", render_nodes, NULL);
}

/*
 * Both probes.  Not ready is an answer, not an error: its body is printed
 * like a ready one, and the exit code says 1.  With --json the two answers
 * are one object {"live": ..., "ready": ...}.
 */
int
cmd_health(struct ctl_args *a)
{
	struct client_resp live, ready;
	json_t		*o;
	int		 rc;

	if ((rc = client_request("GET", "/health/live", NULL, &live)) != 0)
		return rc;
	if ((rc = client_request("GET", "/health/ready", NULL, &ready)) != 0) {
		client_resp_free(&live);
		return rc;
	}
	/* Anything but 200 from /health/live is not taskerd's health (a URL
	 * with a wrong prefix answers 404): said as any API error is. */
	if (live.status != 200) {
		rc = client_report(&live);
		goto out;
	}
	if (live.json == NULL || ready.json == NULL) {
		ctl_warnx("%s: the health answers are not JSON (HTTP %ld, %ld)",
		    ctl.url, live.status, ready.status);
		rc = CTL_EXIT_API;
		goto out;
	}
	rc = live.status == 200 && ready.status == 200 ? 0 : CTL_EXIT_API;
	if (ctl.json) {
		o = json_pack("{s:O, s:O}", "live", live.json, "ready",
		    ready.json);
		out_print_json(o);
		json_decref(o);
		goto out;
	}
	printf("live   ");
	out_colored(stdout, live.status == 200 ? OUT_GREEN : OUT_RED,
	    out_str(live.json, "status", "?"));
	printf("\nready  ");
	out_colored(stdout, out_state_color(out_str(ready.json, "status",
	    NULL)), out_str(ready.json, "status", "?"));
	/* (An older taskerd says nothing of the lease.) */
	if (json_object_get(ready.json, "database") != NULL)
		printf(" (database %s%s%s, workers %lld/%lld up)",
		    out_str(ready.json, "database", "?"),
		    json_object_get(ready.json, "lease") ? ", lease " : "",
		    out_str(ready.json, "lease", ""),
		    (long long)json_integer_value(json_object_get(ready.json,
		    "workers_up")), (long long)json_integer_value(
		    json_object_get(ready.json, "workers")));
	putchar('\n');
out:
	client_resp_free(&live);
	client_resp_free(&ready);
	return rc;
}
