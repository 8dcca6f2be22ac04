/*
 * cmd_step.c - the `step` commands: an operator's actions on one step
 * (retry, resolve, complete) and reading it (show, history).
 *
 * The actions map to PATCH /v1/tasks/{id}/steps/{step} with
 * {"action", "reason", "actor", "results"?}.  A reason is required here,
 * before any request, because the API requires it too: the audit history
 * must say why an operator stepped in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "xmalloc.h"

static const struct {
	const char	*cmd;
	const char	*action;
} step_actions[] = {
	{ "retry",	"retry" },
	{ "resolve",	"resolve_manually" },
	{ "complete",	"complete_manually" },
};

static char *
step_path(const char *task, const char *step, const char *suffix)
{
	char	*t = client_escape(task), *s = client_escape(step), *p;

	xasprintf(&p, "/v1/tasks/%s/steps/%s%s", t, s, suffix);
	free(t);
	free(s);
	return p;
}

int
cmd_step_action(struct ctl_args *a)
{
	struct client_resp r;
	const char	*action = NULL, *reason = ctl_opt(a, "reason");
	const char	*results = ctl_opt(a, "results"), *actor;
	json_t		*body, *res = NULL;
	char		*path;
	size_t		 i;
	int		 rc;

	for (i = 0; i < sizeof(step_actions) / sizeof(step_actions[0]); i++)
		if (strcmp(a->cmd->name, step_actions[i].cmd) == 0)
			action = step_actions[i].action;
	if (action == NULL)
		return ctl_usage_error(a, "unknown step action");
	if (reason == NULL || *reason == '\0')
		return ctl_usage_error(a, "--reason is required (the audit "
		    "history records why)");
	if (results != NULL &&
	    (res = ctl_json_arg(a, "--results", results)) == NULL)
		return CTL_EXIT_USAGE;

	body = json_pack("{s:s, s:s}", "action", action, "reason", reason);
	if ((actor = cmd_actor(a)) != NULL)
		json_object_set_new(body, "actor", json_string(actor));
	if (res != NULL)
		json_object_set_new(body, "results", res);
	path = step_path(a->pos[0], a->pos[1], "");
	rc = client_call("PATCH", path, body, &r);
	free(path);
	json_decref(body);
	if (rc != 0)
		return rc;
	if (ctl.json)
		client_print_raw(&r);
	else {
		const char *st = out_str(r.json, "status", "?");

		printf("task %s step %s: ", a->pos[0], out_str(r.json, "name",
		    a->pos[1]));
		out_colored(stdout, out_state_color(st), st);
		putchar('\n');
	}
	client_resp_free(&r);
	return 0;
}

static void
show_field(const char *label, const char *color, const char *value)
{
	printf("%-14s", label);
	out_colored(stdout, color, value);
	putchar('\n');
}

static void
show_step(const char *task, const json_t *s)
{
	const char	*st = out_str(s, "status", "?");
	const json_t	*deps = json_object_get(s, "depends_on"), *err;
	int64_t		 started, ended, next, now = out_now();
	long long	 attempts;
	char		 buf[64], dur[32], *text, *next_s;
	size_t		 i;

	printf("task %s step %s  (%s", task, out_str(s, "name", "?"),
	    out_str(s, "handler", "?"));
	if (out_str(s, "service", NULL) != NULL)
		printf(", service %s", out_str(s, "service", ""));
	printf(")\n");
	show_field("status", out_state_color(st), st);
	attempts = json_integer_value(json_object_get(s, "attempts"));
	snprintf(buf, sizeof(buf), "%lld/%lld%s", attempts +
	    (strcmp(st, "in_progress") == 0), (long long)json_integer_value(
	    json_object_get(s, "retry_limit")), json_is_false(
	    json_object_get(s, "retryable")) ? " (not retryable)" : "");
	show_field("attempts", NULL, buf);
	text = xstrdup("");
	for (i = 0; i < json_array_size(deps); i++) {
		xasprintf(&next_s, "%s%s%s", text, i ? ", " : "",
		    json_string_value(json_array_get(deps, i)));
		free(text);
		text = next_s;
	}
	show_field("depends on", NULL, *text ? text : "-");
	free(text);
	out_fmt_duration(buf, sizeof(buf), json_integer_value(
	    json_object_get(s, "timeout_ms")));
	show_field("timeout", NULL, buf);
	started = out_json_time(s, "started_at");
	ended = out_json_time(s, "completed_at");
	out_fmt_time(buf, sizeof(buf), started, true);
	show_field("started", NULL, buf);
	out_fmt_time(buf, sizeof(buf), ended, true);
	show_field("completed", NULL, buf);
	if (ended < 0 && strcmp(st, "in_progress") == 0)
		ended = now;
	if (started >= 0 && ended >= started) {
		out_fmt_duration(dur, sizeof(dur), (ended - started) / 1000);
		show_field("duration", NULL, dur);
	}
	next = out_json_time(s, "next_attempt_at");
	if (strcmp(st, "waiting_for_retry") == 0 && next >= 0) {
		out_fmt_time(buf, sizeof(buf), next, true);
		if (next > now) {
			out_fmt_duration(dur, sizeof(dur), (next - now) / 1000);
			xasprintf(&text, "%s (in %s)", buf, dur);
		} else
			xasprintf(&text, "%s (due)", buf);
		show_field("next attempt", NULL, text);
		free(text);
	}
	err = json_object_get(s, "last_error");
	if (json_is_object(err)) {
		xasprintf(&text, "%s: %s", out_str(err, "code", "error"),
		    out_str(err, "message", ""));
		show_field("last error", out_state_color("error"), text);
		free(text);
	} else
		show_field("last error", NULL, "-");
	text = out_compact(json_object_get(s, "results"));
	show_field("results", NULL, text);
	free(text);
}

static void
render_step(const json_t *step, const void *task_id)
{
	show_step(task_id, step);
}

int
cmd_step_show(struct ctl_args *a)
{
	char	*path = step_path(a->pos[0], a->pos[1], "");
	int	 rc = client_show(path, render_step, a->pos[0]);

	free(path);
	return rc;
}

static void
render_step_history(const json_t *answer, const void *unused)
{
	cmd_print_history(json_object_get(answer, "transitions"), false);
}

int
cmd_step_history(struct ctl_args *a)
{
	char	*path = step_path(a->pos[0], a->pos[1], "/transitions");
	int	 rc = client_show(path, render_step_history, NULL);

	free(path);
	return rc;
}
