/*
 * cmd_task.c - the `tasks` and `task` commands: list, show, create,
 * watch, cancel, history.
 *
 * Each command is one request (watch: one per poll) and, without --json,
 * a rendering of its answer.  Renderings read only the answer and
 * out_now(), so the same answer prints the same text.
 */
#include <sys/types.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "ctl.h"
#include "xmalloc.h"

#define LIST_PAGE_MAX		500	/* the API's largest page */
#define LIST_DEFAULT		50

/* ---- shared ------------------------------------------------------------- */

/* Who acts: --actor, else the login name (the API's default otherwise is
 * "anonymous", which helps no one reading the history). */
const char *
cmd_actor(const struct ctl_args *a)
{
	const char	*actor = ctl_opt(a, "actor");
	struct passwd	*pw;

	if (actor != NULL && *actor != '\0')
		return actor;
	/* Under sudo, the operator rather than root. */
	if (geteuid() == 0 && (actor = getenv("SUDO_USER")) != NULL &&
	    *actor != '\0')
		return actor;
	if ((pw = getpwuid(geteuid())) != NULL && pw->pw_name[0] != '\0')
		return pw->pw_name;
	return getenv("USER");
}

/* TIME [STEP] FROM TO DETAILS, oldest first as the API answers. */
void
cmd_print_history(const json_t *transitions, bool with_step)
{
	static const char *const h5[] = { "TIME", "STEP", "FROM", "TO",
	    "DETAILS" };
	static const char *const h4[] = { "TIME", "FROM", "TO", "DETAILS" };
	struct out_table *t;
	const json_t	*x;
	char		 when[48], *kv;
	size_t		 i;
	int		 c;

	t = with_step ? out_table_new(5, h5) : out_table_new(4, h4);
	json_array_foreach(transitions, i, x) {
		const char *to = out_str(x, "to_state", "?");

		c = 0;
		out_table_row(t);
		out_fmt_time(when, sizeof(when), out_json_time(x, "created_at"),
		    true);
		out_table_set(t, c++, NULL, "%s", when);
		if (with_step) {
			if (strcmp(out_str(x, "scope", "task"), "task") == 0)
				out_table_set(t, c++, NULL, "(task)");
			else
				out_table_set(t, c++, NULL, "%s",
				    out_str(x, "step", "?"));
		}
		out_table_set(t, c++, out_state_color(out_str(x,
		    "from_state", NULL)), "%s", out_str(x, "from_state", "-"));
		out_table_set(t, c++, out_state_color(to), "%s", to);
		kv = out_kv(json_object_get(x, "metadata"));
		out_table_set(t, c++, NULL, "%s", kv);
		free(kv);
	}
	out_table_print(t, stdout);
}

static char *
task_path(const char *id, const char *suffix)
{
	char	*e = client_escape(id), *p;

	xasprintf(&p, "/v1/tasks/%s%s", e, suffix);
	free(e);
	return p;
}

static bool
step_done(const char *status)
{
	return strcmp(status, "complete") == 0 ||
	    strcmp(status, "resolved_manually") == 0;
}

static void
count_done(const json_t *steps, int *done, int *total)
{
	const json_t	*s;
	size_t		 i;

	*done = 0;
	*total = (int)json_array_size(steps);
	json_array_foreach(steps, i, s)
		if (step_done(out_str(s, "status", "")))
			(*done)++;
}

/* ---- tasks list ----------------------------------------------------------- */

static void
list_add_query(char **q, const char *key, const char *value)
{
	char	*e, *next;

	if (value == NULL)
		return;
	e = client_escape(value);
	xasprintf(&next, "%s%c%s=%s", *q, **q ? '&' : '?', key, e);
	free(e);
	free(*q);
	*q = next;
}

int
cmd_tasks_list(struct ctl_args *a)
{
	static const char *const hdr[] = { "ID", "STATUS", "NAMESPACE/NAME",
	    "VERSION", "CREATED" };
	struct client_resp r;
	struct out_table *t;
	json_t		*all = json_array(), *cursor = json_null(), *x;
	char		*base = xstrdup(""), *path, when[48];
	char		 lim[24];
	int64_t		 limit, left;
	size_t		 i, n;
	int		 rc = 0, pages = 0;

	if ((limit = ctl_opt_int(a, "limit", LIST_DEFAULT, 1000000)) == -1) {
		rc = CTL_EXIT_USAGE;
		goto out;
	}
	list_add_query(&base, "status", ctl_opt(a, "status"));
	list_add_query(&base, "namespace", ctl_opt(a, "namespace"));
	list_add_query(&base, "name", ctl_opt(a, "name"));

	/* Pages until `limit` tasks or the last page. */
	for (left = limit; left > 0; pages++) {
		char *q = xstrdup(base);

		snprintf(lim, sizeof(lim), "%lld", (long long)(left <
		    LIST_PAGE_MAX ? left : LIST_PAGE_MAX));
		list_add_query(&q, "limit", lim);
		if (json_is_string(cursor))
			list_add_query(&q, "cursor", json_string_value(cursor));
		xasprintf(&path, "/v1/tasks%s", q);
		free(q);
		rc = client_call("GET", path, NULL, &r);
		free(path);
		if (rc != 0)
			goto out;
		if (ctl.json && pages == 0 && (json_is_null(json_object_get(
		    r.json, "next_cursor")) || json_array_size(json_object_get(
		    r.json, "tasks")) >= (size_t)left)) {
			/* One page holds the whole answer: print it as is. */
			client_print_raw(&r);
			client_resp_free(&r);
			goto out;
		}
		n = json_array_size(json_object_get(r.json, "tasks"));
		json_array_extend(all, json_object_get(r.json, "tasks"));
		json_decref(cursor);
		cursor = json_incref(json_object_get(r.json, "next_cursor"));
		if (cursor == NULL)
			cursor = json_null();
		left = limit - (int64_t)json_array_size(all);
		client_resp_free(&r);
		/* An empty page cannot move the cursor: stop rather than ask
		 * the same question forever. */
		if (!json_is_string(cursor) || n == 0)
			break;
	}
	if (ctl.json) {
		json_t *o = json_pack("{s:O, s:O}", "tasks", all,
		    "next_cursor", cursor);

		out_print_json(o);
		json_decref(o);
		goto out;
	}

	t = out_table_new(5, hdr);
	json_array_foreach(all, i, x) {
		const char *st = out_str(x, "status", "?");

		out_table_row(t);
		out_table_set(t, 0, NULL, "%lld", (long long)json_integer_value(
		    json_object_get(x, "task_id")));
		out_table_set(t, 1, out_state_color(st), "%s", st);
		out_table_set(t, 2, NULL, "%s/%s", out_str(x, "namespace", "?"),
		    out_str(x, "name", "?"));
		out_table_set(t, 3, NULL, "%s", out_str(x, "version", "?"));
		out_fmt_time(when, sizeof(when), out_json_time(x, "created_at"),
		    false);
		out_table_set(t, 4, NULL, "%s", when);
	}
	out_table_print(t, stdout);
	if (json_is_string(cursor))
		fprintf(stderr, "(more than %lld task%s: --limit shows more)\n",
		    (long long)limit, limit == 1 ? "" : "s");
out:
	json_decref(all);
	json_decref(cursor);
	free(base);
	return rc;
}

/* ---- task show ------------------------------------------------------------ */

/* The columns beside the tree for one step of a task. */
static void
show_step_cells(struct out_table *t, const json_t *s, void *arg)
{
	int64_t		 now = *(int64_t *)arg;
	const char	*st = out_str(s, "status", "?");
	int64_t		 started, ended, next;
	long long	 attempts;
	const json_t	*err;
	char		 buf[48];

	out_table_set(t, 1, out_state_color(st), "%s", st);
	/* attempts counts finished attempts; a running one is shown as the
	 * attempt it is, as the workers list and the history say. */
	attempts = json_integer_value(json_object_get(s, "attempts"));
	if (strcmp(st, "in_progress") == 0)
		attempts++;
	out_table_set(t, 2, NULL, "%lld/%lld", attempts,
	    (long long)json_integer_value(json_object_get(s, "retry_limit")));
	started = out_json_time(s, "started_at");
	ended = out_json_time(s, "completed_at");
	if (ended < 0 && strcmp(st, "in_progress") == 0)
		ended = now;
	if (started >= 0 && ended >= started) {
		out_fmt_duration(buf, sizeof(buf), (ended - started) / 1000);
		out_table_set(t, 3, NULL, "%s", buf);
	}
	next = out_json_time(s, "next_attempt_at");
	if (strcmp(st, "waiting_for_retry") == 0 && next >= 0) {
		if (next > now) {
			out_fmt_duration(buf, sizeof(buf), (next - now) / 1000);
			out_table_set(t, 4, NULL, "in %s", buf);
		} else
			out_table_set(t, 4, NULL, "due");
	}
	err = json_object_get(s, "last_error");
	if (json_is_object(err))
		out_table_set(t, 5, out_state_color("error"), "%s",
		    out_str(err, "code", "error"));
}

static void
show_header_line(const char *label, const char *value)
{
	printf("%-13s", label);
	out_text(stdout, value);
	putchar('\n');
}

static void
show_task(const json_t *task)
{
	static const char *const hdr[] = { "STEP", "STATE", "ATTEMPTS",
	    "DURATION", "NEXT ATTEMPT", "LAST ERROR" };
	const char	*st = out_str(task, "status", "?");
	const json_t	*steps = json_object_get(task, "steps"), *waiting;
	int64_t		 now = out_now(), created, completed;
	char		 buf[64], dur[32], line[128];
	int		 done, total;

	printf("task %lld  %s/%s@%s  ", (long long)json_integer_value(
	    json_object_get(task, "task_id")), out_str(task, "namespace", "?"),
	    out_str(task, "name", "?"), out_str(task, "version", "?"));
	out_colored(stdout, out_state_color(st), st);
	putchar('\n');
	created = out_json_time(task, "created_at");
	completed = out_json_time(task, "completed_at");
	out_fmt_time(buf, sizeof(buf), created, false);
	show_header_line("created", buf);
	if (completed >= 0) {
		out_fmt_time(buf, sizeof(buf), completed, false);
		out_fmt_duration(dur, sizeof(dur), (completed - created) / 1000);
		snprintf(line, sizeof(line), "%s (after %s)", buf, dur);
		show_header_line("completed", line);
	} else
		show_header_line("completed", "-");
	show_header_line("correlation", out_str(task, "correlation_id", "-"));
	if (out_str(task, "idempotency_key", NULL) != NULL)
		show_header_line("key", out_str(task, "idempotency_key", ""));
	if (out_str(task, "initiator", NULL) != NULL)
		show_header_line("initiator", out_str(task, "initiator", ""));
	if (out_str(task, "reason", NULL) != NULL)
		show_header_line("reason", out_str(task, "reason", ""));
	if ((waiting = json_object_get(task, "waiting")) != NULL)
		show_header_line("waiting", out_str(waiting, "message", "?"));
	count_done(steps, &done, &total);
	snprintf(line, sizeof(line), "%d/%d done", done, total);
	show_header_line("steps", line);
	putchar('\n');
	dag_print(stdout, steps, 6, hdr, show_step_cells, &now);
}

static void
render_task(const json_t *task, const void *unused)
{
	show_task(task);
}

int
cmd_task_show(struct ctl_args *a)
{
	char	*path = task_path(a->pos[0], "");
	int	 rc = client_show(path, render_task, NULL);

	free(path);
	return rc;
}

/* ---- task create ---------------------------------------------------------- */

int
cmd_task_create(struct ctl_args *a)
{
	struct client_resp r;
	const char	*spec = a->pos[0], *slash, *at, *v;
	char		*ns, *name, *version = NULL;
	json_t		*body, *ctx;
	int		 rc;

	slash = strchr(spec, '/');
	at = strrchr(spec, '@');	/* a version holds none */
	if (at != NULL && slash != NULL && at < slash)
		return ctl_usage_error(a, "\"%s\" is not NS/NAME[@VERSION]",
		    spec);
	if (slash != NULL) {
		ns = xstrndup(spec, (size_t)(slash - spec));
		spec = slash + 1;
	} else
		ns = xstrdup("default");
	if (at != NULL) {
		name = xstrndup(spec, (size_t)(at - spec));
		version = xstrdup(at + 1);
	} else
		name = xstrdup(spec);
	/* The namespace ends at the first '/'; a name may hold more. */
	if (*ns == '\0' || *name == '\0' ||
	    (version != NULL && *version == '\0')) {
		rc = ctl_usage_error(a, "\"%s\" is not NS/NAME[@VERSION]",
		    a->pos[0]);
		goto out;
	}
	if ((v = ctl_opt(a, "context")) != NULL) {
		if ((ctx = ctl_json_arg(a, "--context", v)) == NULL) {
			rc = CTL_EXIT_USAGE;
			goto out;
		}
	} else
		ctx = json_object();

	body = json_pack("{s:s, s:s, s:o}", "name", name, "namespace", ns,
	    "context", ctx);
	if (version != NULL)
		json_object_set_new(body, "version", json_string(version));
	if ((v = ctl_opt(a, "initiator")) != NULL)
		json_object_set_new(body, "initiator", json_string(v));
	if ((v = ctl_opt(a, "reason")) != NULL)
		json_object_set_new(body, "reason", json_string(v));
	if ((v = ctl_opt(a, "source-system")) != NULL)
		json_object_set_new(body, "source_system", json_string(v));
	if ((v = ctl_opt(a, "idempotency-key")) != NULL)
		json_object_set_new(body, "idempotency_key", json_string(v));

	rc = client_call("POST", "/v1/tasks", body, &r);
	json_decref(body);
	if (rc == 0) {
		if (ctl.json)
			client_print_raw(&r);
		else
			printf("%lld\n", (long long)json_integer_value(
			    json_object_get(r.json, "task_id")));
		client_resp_free(&r);
	}
out:
	free(ns);
	free(name);
	free(version);
	return rc;
}

/* ---- task watch ----------------------------------------------------------- */

/* The task's states in one string: a change in it is worth a line. */
static char *
watch_key(const json_t *task)
{
	const json_t	*s;
	char		*k, *next;
	size_t		 i;

	xasprintf(&k, "%s%s", out_str(task, "status", "?"),
	    json_object_get(task, "waiting") != NULL ? " waiting" : "");
	json_array_foreach(json_object_get(task, "steps"), i, s) {
		xasprintf(&next, "%s %s=%s/%lld", k, out_str(s, "name", "?"),
		    out_str(s, "status", "?"), (long long)json_integer_value(
		    json_object_get(s, "attempts")));
		free(k);
		k = next;
	}
	return k;
}

/* ", running: a, b" for the steps in one state, or "". */
static char *
watch_steps_in(const json_t *task, const char *state, const char *label)
{
	const json_t	*s;
	char		*out = xstrdup(""), *next;
	size_t		 i;

	json_array_foreach(json_object_get(task, "steps"), i, s) {
		if (strcmp(out_str(s, "status", ""), state) != 0)
			continue;
		xasprintf(&next, "%s%s%s", out, *out ? ", " : label,
		    out_str(s, "name", "?"));
		free(out);
		out = next;
	}
	return out;
}

static int
term_columns(void)
{
	struct winsize	ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
		return ws.ws_col;
	return 80;
}

static void
watch_draw(const json_t *task, bool tty)
{
	const char	*st = out_str(task, "status", "?");
	const json_t	*waiting = json_object_get(task, "waiting");
	char		*run, *wait, *err, *line;
	char		 when[48];
	int		 done, total, width = 24, fill, i, room;
	size_t		 cut;

	count_done(json_object_get(task, "steps"), &done, &total);
	run = watch_steps_in(task, "in_progress", ", running: ");
	wait = watch_steps_in(task, "waiting_for_retry", ", waiting: ");
	err = watch_steps_in(task, "error", ", failed: ");
	xasprintf(&line, "%d/%d steps done%s%s%s%s%s", done, total, run, wait,
	    err, waiting != NULL ? "; " : "", out_str(waiting, "message", ""));
	if (tty) {
		/* Redrawn in place: \r, the bar, clear to the end of line.
		 * All of it fits the terminal, or \r would come back to
		 * the last of the lines it wrapped to. */
		room = term_columns() - 4 - (int)strlen(st);
		if (width > room)
			width = room > 0 ? room : 0;
		room -= width;
		for (cut = room > 0 ? (size_t)room : 0;
		    cut > 0 && cut < strlen(line) &&
		    (line[cut] & 0xc0) == 0x80; cut--)
			;	/* not inside a UTF-8 character */
		fill = total > 0 ? done * width / total : 0;
		fputs("\r[", stdout);
		for (i = 0; i < width; i++)
			fputs(i < fill ? (ctl.utf8 ? "█" : "#") :
			    (ctl.utf8 ? "░" : "-"), stdout);
		fputs("] ", stdout);
		out_colored(stdout, out_state_color(st), st);
		printf(" %.*s\033[K", (int)cut, line);
	} else {
		out_fmt_time(when, sizeof(when), out_now(), false);
		printf("%s task %lld %s, %s\n", when, (long long)
		    json_integer_value(json_object_get(task, "task_id")), st,
		    line);
	}
	fflush(stdout);
	free(run);
	free(wait);
	free(err);
	free(line);
}

int
cmd_task_watch(struct ctl_args *a)
{
	struct client_resp r;
	struct timespec	 ts;
	char		*path = task_path(a->pos[0], ""), *key, *last = NULL;
	const char	*st;
	int64_t		 interval;
	int		 rc;
	bool		 tty = ctl.tty && !ctl.json, lost = false, away = false;

	if ((interval = ctl_opt_int(a, "interval", 1000, 3600000)) == -1) {
		free(path);
		return CTL_EXIT_USAGE;
	}
	for (;;) {
		/* Once the task was seen, an unreachable server is taskerd
		 * restarting, most likely: said once, and watched through. */
		client_quiet(last != NULL);
		rc = client_request("GET", path, NULL, &r);
		/* (Not reached at the first request: a wrong URL, most
		 * likely.  An answer too large is no restart either.) */
		if (rc != 0 && (last == NULL || rc != CTL_EXIT_UNREACHABLE))
			break;
		if (rc != 0) {
			if (!lost)
				fprintf(stderr, "%stasker-ctl: %s; still "
				    "watching task %s\n", tty ? "\n" : "",
				    client_failure(), a->pos[0]);
			lost = true;
			goto sleep;
		}
		lost = false;
		if (r.status == 503 && strcmp(out_str(json_object_get(r.json,
		    "error"), "code", ""), "database_unavailable") == 0) {
			/* The database is away for a moment: keep watching.
			 * (Only taskerd's 503 says so: a proxy's, with no
			 * taskerd behind it, is reported.) */
			if (!away)
				fprintf(stderr, "%stasker-ctl: the database is "
				    "unavailable; still watching task %s\n",
				    tty && last != NULL ? "\n" : "", a->pos[0]);
			away = true;
			client_resp_free(&r);
			goto sleep;
		}
		away = false;
		if (r.status != 200 || !json_is_object(r.json)) {
			if (tty && last != NULL)
				putchar('\n');
			rc = client_report(&r);
			client_resp_free(&r);
			break;
		}
		key = watch_key(r.json);
		if (tty || last == NULL || strcmp(key, last) != 0) {
			if (ctl.json)
				client_print_raw(&r);
			else
				watch_draw(r.json, tty);
		}
		free(last);
		last = key;
		st = out_str(r.json, "status", "");
		if (step_done(st) || strcmp(st, "error") == 0 ||
		    strcmp(st, "cancelled") == 0) {
			rc = step_done(st) ? CTL_EXIT_OK : CTL_EXIT_FAILED;
			if (tty)
				putchar('\n');
			client_resp_free(&r);
			break;
		}
		client_resp_free(&r);
sleep:
		fflush(stdout);
		ts.tv_sec = interval / 1000;
		ts.tv_nsec = (long)(interval % 1000) * 1000000;
		while (nanosleep(&ts, &ts) == -1)
			;
	}
	free(last);
	free(path);
	return rc;
}

/* ---- task cancel, task history ------------------------------------------- */

int
cmd_task_cancel(struct ctl_args *a)
{
	struct client_resp r;
	const char	*reason = ctl_opt(a, "reason"), *actor = cmd_actor(a);
	char		*path = task_path(a->pos[0], "");
	json_t		*body = json_object();
	int		 rc;

	if (reason != NULL)
		json_object_set_new(body, "reason", json_string(reason));
	if (actor != NULL)
		json_object_set_new(body, "actor", json_string(actor));
	rc = client_call("DELETE", path, body, &r);
	json_decref(body);
	free(path);
	if (rc != 0)
		return rc;
	if (ctl.json)
		client_print_raw(&r);
	else
		printf("task %lld: %s\n", (long long)json_integer_value(
		    json_object_get(r.json, "task_id")),
		    out_str(r.json, "status", "?"));
	client_resp_free(&r);
	return 0;
}

static void
render_task_history(const json_t *answer, const void *unused)
{
	cmd_print_history(json_object_get(answer, "transitions"), true);
}

int
cmd_task_history(struct ctl_args *a)
{
	char	*path = task_path(a->pos[0], "/transitions");
	int	 rc = client_show(path, render_task_history, NULL);

	free(path);
	return rc;
}
