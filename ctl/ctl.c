/*
 * ctl.c - tasker-ctl's entry point: global options, the command table and
 * a small argument parser.
 *
 * Every command is one row of `commands` below: its words, handler, usage,
 * help and options.  Help text, usage errors and option parsing all come
 * from that row, so a command cannot forget its --help.
 *
 * Global options (--url, --token, --json, --no-color) are accepted before
 * the command words and among the command's own options, since operators
 * type `tasker-ctl task show 5 --json` as often as the other order.  A
 * usage error exits 2 before any request is made.
 */
#include <sys/stat.h>
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autoconf.h"
#include "ctl.h"
#include "utf8.h"
#include "log.h"
#include "xmalloc.h"

struct ctl_globals ctl;

static bool	opt_no_color;

static const struct ctl_opt global_opts[] = {
	{ "url", "URL", "the API's base URL, http://HOST:PORT or unix:PATH "
	    "(default $TASKER_URL, else " CTL_DEFAULT_URL ")" },
	{ "token", "TOKEN", "bearer token sent as Authorization "
	    "(default $TASKER_TOKEN)" },
	{ "json", NULL, "print the API's JSON answer as is" },
	{ "no-color", NULL, "no colours, even on a terminal" },
	{ "help", NULL, "show help and exit" },
	{ NULL, NULL, NULL }
};

#define STEP_ACTION_OPTS						\
	{ "reason", "TEXT", "why (required: the audit history keeps it)" }, \
	{ "actor", "NAME", "who acts (default: your login name)" }

static const struct ctl_cmd commands[] = {
	{ "tasks", "list", cmd_tasks_list,
	  "[--status S] [--namespace N] [--name T] [--limit K]",
	  "list tasks, newest first",
	  "Lists tasks newest first as a table: ID, STATUS, NAMESPACE/NAME, "
	  "VERSION and CREATED.  Pages are followed until K tasks are shown "
	  "(default 50).",
	  0, 0, {
	    { "status", "S", "only tasks in this state (pending, "
		"in_progress, complete, error, cancelled, resolved_manually)" },
	    { "namespace", "N", "only tasks of this namespace" },
	    { "name", "T", "only tasks of templates with this name" },
	    { "limit", "K", "show at most K tasks (default 50)" } } },
	{ "task", "show", cmd_task_show, "ID",
	  "a task and its steps drawn as a tree",
	  "Shows the task's header (template, status, times, correlation id) "
	  "and its steps as a tree: roots first, each step under its first "
	  "parent with its state, attempts out of its retry limit, duration, "
	  "next attempt (when waiting for a retry) and last error code.  A "
	  "step with several parents is drawn under the first and noted "
	  "\"(drawn under X)\" under the others.",
	  1, 1, { { NULL, NULL, NULL } } },
	{ "task", "create", cmd_task_create,
	  "NS/NAME[@VERSION] [--context JSON|@FILE] [--initiator X] "
	  "[--reason X] [--idempotency-key K] [--source-system X]",
	  "start a task of a template",
	  "Creates a task of the template NS/NAME (the highest version "
	  "unless @VERSION is given; NAME alone means namespace \"default\"; "
	  "the namespace ends at the first '/', a NAME may hold more) "
	  "and prints its id.  --context takes JSON text, @FILE or @- for "
	  "standard input (default {}).",
	  1, 1, {
	    { "context", "JSON|@FILE", "the task's context, a JSON object" },
	    { "initiator", "X", "who or what started the task" },
	    { "reason", "X", "why it was started" },
	    { "idempotency-key", "K", "the caller's key: the same key is the "
		"same task (caller_provided templates need one; strict ones "
		"go by the context)" },
	    { "source-system", "X", "the system the request came from" } } },
	{ "task", "watch", cmd_task_watch, "ID [--interval MS]",
	  "follow a task until it ends",
	  "Follows the task until it ends.  On a terminal a progress bar "
	  "(steps done out of all) is redrawn in place; otherwise one line is "
	  "printed per change (with --json: the task's JSON, one line per "
	  "change).  Exits 0 when the task ends complete or resolved "
	  "manually, 4 when it ends in error or cancelled.",
	  1, 1, {
	    { "interval", "MS", "poll every MS milliseconds (default 1000)" } } },
	{ "task", "cancel", cmd_task_cancel, "ID [--reason TEXT] [--actor NAME]",
	  "cancel a task",
	  "Cancels the task: steps that have not started never will, running "
	  "ones are not retried.",
	  1, 1, {
	    { "reason", "TEXT", "why, for the audit history" },
	    { "actor", "NAME", "who (default: your login name)" } } },
	{ "task", "history", cmd_task_history, "ID",
	  "the task's and its steps' state history",
	  "Prints every state transition of the task and its steps, oldest "
	  "first, with its metadata.",
	  1, 1, { { NULL, NULL, NULL } } },
	{ "step", "retry", cmd_step_action,
	  "TASK STEP --reason TEXT [--actor NAME]",
	  "retry a failed step with a fresh attempt budget",
	  "Moves a step in error back to waiting_for_retry with its whole "
	  "attempt budget; the task resumes.",
	  2, 2, { STEP_ACTION_OPTS } },
	{ "step", "resolve", cmd_step_action,
	  "TASK STEP --reason TEXT [--actor NAME]",
	  "mark a step resolved by hand",
	  "Marks a step (error, pending or waiting for a retry) "
	  "resolved_manually: its children may run, without results from "
	  "it.  A task whose steps all end complete, one or more resolved "
	  "by hand, ends resolved_manually.",
	  2, 2, { STEP_ACTION_OPTS } },
	{ "step", "complete", cmd_step_action,
	  "TASK STEP --reason TEXT [--actor NAME] [--results JSON|@FILE]",
	  "complete a step by hand, with results",
	  "Marks a step (error, pending or waiting for a retry) complete "
	  "with the given results (a JSON object, default {}), which its "
	  "children see as the step's results.",
	  2, 2, { STEP_ACTION_OPTS,
	    { "results", "JSON|@FILE", "the step's results, a JSON object" } } },
	{ "step", "show", cmd_step_show, "TASK STEP",
	  "one step in detail",
	  "Shows one step: state, attempts, times, next attempt, last error "
	  "and results.",
	  2, 2, { { NULL, NULL, NULL } } },
	{ "step", "history", cmd_step_history, "TASK STEP",
	  "a step's state history",
	  "Prints every state transition of the step, oldest first, with its "
	  "metadata (attempt, outcome, duration, operator actions).",
	  2, 2, { { NULL, NULL, NULL } } },
	{ "templates", "list", cmd_templates_list, "",
	  "the templates the daemon serves",
	  "Lists the loaded templates: NAMESPACE/NAME, VERSION, STEPS, "
	  "IDENTITY and DESCRIPTION.",
	  0, 0, { { NULL, NULL, NULL } } },
	{ "templates", "show", cmd_templates_show, "NS/NAME",
	  "a template and its steps drawn as a tree",
	  "Shows a loaded template (its highest version) and its steps as a "
	  "tree with handler, retry limit, timeout and service.",
	  1, 1, { { NULL, NULL, NULL } } },
	{ "template", "validate", cmd_template_validate,
	  "[--config FILE] FILE...",
	  "check template files offline",
	  "Loads each file with the loader taskerd uses, and against the "
	  "files before it as one templates directory (a name and version "
	  "or a route defined twice), and prints \"FILE: ok\" or "
	  "\"FILE:LINE: reason\".  Needs no server.  Exits 1 if any file is "
	  "bad.",
	  1, -1, { { "config", "FILE", "taskerd's config, whose steps: "
	    "defaults the files take (else the built-in ones)" } } },
	{ NULL, "workers", cmd_workers, "",
	  "the worker pool",
	  "Lists the worker processes: slot, pid, state, the task and step "
	  "each one runs, uptime and restarts.",
	  0, 0, { { NULL, NULL, NULL } } },
	{ NULL, "services", cmd_services, "",
	  "the services steps call, with their breakers",
	  "Lists each configured service: circuit breaker state, calls in "
	  "flight out of its limit, calls, failures, consecutive failures "
	  "and how often the breaker opened.",
	  0, 0, { { NULL, NULL, NULL } } },
	{ NULL, "nodes", cmd_nodes, "",
	  "the taskerd nodes sharing the database",
	  "Lists every node that shares the database: its id (this one "
	  "marked), host, pid, version, whether its lease runs (alive), was "
	  "handed back at a clean stop (stopped) or ran out (lost), the "
	  "steps it holds claimed, how long ago it "
	  "renewed its lease and when it started.",
	  0, 0, { { NULL, NULL, NULL } } },
	{ NULL, "health", cmd_health, "",
	  "is the daemon alive and ready",
	  "Asks /health/live and /health/ready.  Exits 0 when both answer "
	  "200, 1 when the daemon is alive but not ready.",
	  0, 0, { { NULL, NULL, NULL } } },
};

#define NCOMMANDS	(sizeof(commands) / sizeof(commands[0]))

/* ---- messages and help --------------------------------------------------- */

void
ctl_warnx(const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	fflush(stdout);
	fputs("tasker-ctl: ", stderr);
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		msg = NULL;
	va_end(ap);
	/* Messages quote the server's words. */
	out_text(stderr, msg != NULL ? msg : "out of memory");
	free(msg);
	fputc('\n', stderr);
}

static void
print_cmd_words(FILE *f, const struct ctl_cmd *c)
{
	if (c->group != NULL)
		fprintf(f, "%s %s", c->group, c->name);
	else
		fprintf(f, "%s", c->name);
}

static void
print_usage_line(FILE *f, const struct ctl_cmd *c)
{
	fputs("usage: tasker-ctl [global options] ", f);
	print_cmd_words(f, c);
	if (c->usage[0] != '\0')
		fprintf(f, " %s", c->usage);
	fputc('\n', f);
}

/* Words wrapped at 76 columns; continuation lines start at indent.  col
 * is where the cursor already is. */
static void
print_wrapped(FILE *f, const char *text, int indent, int col)
{
	const char	*p = text, *q;
	bool		 at_start = true;

	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		if ((q = strchr(p, ' ')) == NULL)
			q = p + strlen(p);
		if (!at_start && col + 1 + (q - p) > 76) {
			fprintf(f, "\n%*s", indent, "");
			col = indent;
		} else if (!at_start) {
			fputc(' ', f);
			col++;
		}
		fprintf(f, "%.*s", (int)(q - p), p);
		col += (int)(q - p);
		at_start = false;
		p = q;
	}
	fputc('\n', f);
}

static void
print_opts(FILE *f, const struct ctl_opt *o)
{
	char	 head[64];

	for (; o->name != NULL; o++) {
		snprintf(head, sizeof(head), "  --%s%s%s", o->name,
		    o->arg ? " " : "", o->arg ? o->arg : "");
		if (strlen(head) >= 26)
			fprintf(f, "%s\n%26s", head, "");
		else
			fprintf(f, "%-26s", head);
		print_wrapped(f, o->help, 26, 26);
	}
}

static void
cmd_help(FILE *f, const struct ctl_cmd *c)
{
	print_usage_line(f, c);
	fputc('\n', f);
	print_wrapped(f, c->help, 0, 0);
	if (c->opts[0].name != NULL) {
		fputs("\nOptions:\n", f);
		print_opts(f, c->opts);
	}
	fputs("\nGlobal options:\n", f);
	print_opts(f, global_opts);
}

static void
main_help(FILE *f)
{
	char	 words[64];
	size_t	 i;

	fputs("usage: tasker-ctl [global options] COMMAND [ARGS...]\n\n"
	    "The operator's tool for taskerd: it speaks the daemon's HTTP "
	    "API.\n\nCommands:\n", f);
	for (i = 0; i < NCOMMANDS; i++) {
		const struct ctl_cmd *c = &commands[i];

		if (c->group != NULL)
			snprintf(words, sizeof(words), "%s %s", c->group,
			    c->name);
		else
			snprintf(words, sizeof(words), "%s", c->name);
		fprintf(f, "  %-20s %s\n", words, c->summary);
	}
	fputs("\nGlobal options:\n", f);
	print_opts(f, global_opts);
	fputs("\n`tasker-ctl COMMAND --help` describes a command; see also "
	    "tasker-ctl(1).\nExit status: 0 ok, 1 the API answered an error, "
	    "2 usage error,\n3 the server cannot be reached, 4 (task watch) "
	    "the task ended in error\nor cancelled.\n", f);
}

int
ctl_usage_error(const struct ctl_args *a, const char *fmt, ...)
{
	va_list	ap;

	fflush(stdout);
	fputs("tasker-ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (a != NULL && a->cmd != NULL) {
		print_usage_line(stderr, a->cmd);
		fputs("Try 'tasker-ctl ", stderr);
		print_cmd_words(stderr, a->cmd);
		fputs(" --help'.\n", stderr);
	} else
		fputs("Try 'tasker-ctl --help'.\n", stderr);
	return CTL_EXIT_USAGE;
}

/* The commands of a group, one usage line each. */
static void
group_help(FILE *f, const char *group)
{
	size_t	i;

	for (i = 0; i < NCOMMANDS; i++)
		if (commands[i].group != NULL &&
		    strcmp(commands[i].group, group) == 0)
			print_usage_line(f, &commands[i]);
	fprintf(f, "Try 'tasker-ctl %s COMMAND --help'.\n", group);
}

/* ---- option values ------------------------------------------------------ */

const char *
ctl_opt(const struct ctl_args *a, const char *name)
{
	int	i;

	for (i = 0; i < CTL_MAXOPTS && a->cmd->opts[i].name != NULL; i++)
		if (strcmp(a->cmd->opts[i].name, name) == 0)
			return a->val[i];
	return NULL;
}

int64_t
ctl_opt_int(const struct ctl_args *a, const char *name, int64_t dflt,
    int64_t max)
{
	const char	*s = ctl_opt(a, name);
	char		*end;
	long long	 v;

	if (s == NULL)
		return dflt;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < 1 || v > max) {
		ctl_usage_error(a, "--%s must be an integer from 1 to %lld, "
		    "not \"%s\"", name, (long long)max, s);
		return -1;
	}
	return v;
}

json_t *
ctl_json_arg(const struct ctl_args *a, const char *what, const char *value)
{
	json_error_t	 e;
	json_t		*j;
	FILE		*f;

	if (value[0] == '@') {
		if (strcmp(value, "@-") == 0)
			j = json_loadf(stdin, 0, &e);
		else if ((f = fopen(value + 1, "r")) == NULL) {
			ctl_usage_error(a, "%s: cannot open %s: %s", what,
			    value + 1, strerror(errno));
			return NULL;
		} else {
			j = json_loadf(f, 0, &e);
			fclose(f);
		}
	} else
		j = json_loads(value, 0, &e);
	/* (Valid JSON, but taskerd holds integers in 64 bits, as jansson
	 * does: said as the server would.) */
	if (j == NULL && json_error_code(&e) == json_error_numeric_overflow) {
		ctl_usage_error(a, "%s has an integer that does not fit in 64 "
		    "bits (line %d, column %d): send it as a string, or as a "
		    "real (1e19)", what, e.line, e.column);
		return NULL;
	}
	if (j == NULL) {
		ctl_usage_error(a, "%s is not valid JSON (line %d, column %d): "
		    "%s", what, e.line, e.column, e.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		ctl_usage_error(a, "%s must be a JSON object", what);
		return NULL;
	}
	return j;
}

/* ---- parsing ------------------------------------------------------------ */

enum parsed { P_OK, P_HELP, P_ERROR };

/*
 * Match argv[*i] against the global options, then (when a != NULL) the
 * command's.  Returns 1 when it was an option (consumed, *i advanced past
 * its value), 0 when it is a positional word, -1 after a usage error.
 */
static int
parse_option(struct ctl_args *a, int argc, char **argv, int *i, bool *help)
{
	const char	*arg = argv[*i], *name, *eq, *value = NULL;
	const struct ctl_opt *o = NULL;
	size_t		 len;
	int		 k, idx = -1;

	if (arg[0] != '-' || arg[1] == '\0')
		return 0;
	if (strcmp(arg, "-h") == 0) {
		*help = true;
		(*i)++;
		return 1;
	}
	if (arg[1] != '-') {
		ctl_usage_error(a, "unknown option %s", arg);
		return -1;
	}
	name = arg + 2;
	eq = strchr(name, '=');
	len = eq ? (size_t)(eq - name) : strlen(name);
	for (k = 0; global_opts[k].name != NULL; k++)
		if (strlen(global_opts[k].name) == len &&
		    strncmp(global_opts[k].name, name, len) == 0) {
			o = &global_opts[k];
			break;
		}
	if (o == NULL && a != NULL && a->cmd != NULL)
		for (k = 0; k < CTL_MAXOPTS && a->cmd->opts[k].name != NULL;
		    k++)
			if (strlen(a->cmd->opts[k].name) == len &&
			    strncmp(a->cmd->opts[k].name, name, len) == 0) {
				o = &a->cmd->opts[k];
				idx = k;
				break;
			}
	if (o == NULL) {
		ctl_usage_error(a, "unknown option --%.*s", (int)len, name);
		return -1;
	}
	if (o->arg != NULL) {
		if (eq != NULL)
			value = eq + 1;
		else if (*i + 1 < argc)
			value = argv[++*i];
		else {
			ctl_usage_error(a, "--%s needs a value (%s)", o->name,
			    o->arg);
			return -1;
		}
	} else if (eq != NULL) {
		ctl_usage_error(a, "--%s takes no value", o->name);
		return -1;
	}
	(*i)++;

	if (idx >= 0) {
		a->val[idx] = value ? value : "";
		return 1;
	}
	if (strcmp(o->name, "url") == 0)
		ctl.url = value;
	else if (strcmp(o->name, "token") == 0)
		ctl.token = value;
	else if (strcmp(o->name, "json") == 0)
		ctl.json = true;
	else if (strcmp(o->name, "no-color") == 0)
		opt_no_color = true;
	else if (strcmp(o->name, "help") == 0)
		*help = true;
	return 1;
}

static const struct ctl_cmd *
find_command(const char *group, const char *name)
{
	size_t	i;

	for (i = 0; i < NCOMMANDS; i++) {
		const struct ctl_cmd *c = &commands[i];

		if (c->group == NULL && name == NULL &&
		    strcmp(c->name, group) == 0)
			return c;
		if (c->group != NULL && name != NULL &&
		    strcmp(c->group, group) == 0 && strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

static bool
is_group(const char *word)
{
	size_t	i;

	for (i = 0; i < NCOMMANDS; i++)
		if (commands[i].group != NULL &&
		    strcmp(commands[i].group, word) == 0)
			return true;
	return false;
}

/*
 * Global options first, then the command's words, then its options and
 * positional arguments in any order ("--" ends the options).
 */
static enum parsed
parse_command_line(int argc, char **argv, struct ctl_args *a)
{
	bool	 help = false, dashdash = false;
	int	 i = 1, r;
	const char *group;

	memset(a, 0, sizeof(*a));
	a->pos = xcalloc((size_t)argc + 1, sizeof(char *));
	while (i < argc && (r = parse_option(a, argc, argv, &i, &help)) != 0)
		if (r == -1)
			return P_ERROR;
	if (i == argc) {
		main_help(help ? stdout : stderr);
		return help ? P_HELP : P_ERROR;
	}
	if (strcmp(argv[i], "help") == 0) {
		/* `tasker-ctl help [COMMAND...]` is `COMMAND --help`. */
		help = true;
		if (++i == argc) {
			main_help(stdout);
			return P_HELP;
		}
	}
	group = argv[i++];
	if (is_group(group)) {
		while (i < argc && (r = parse_option(a, argc, argv, &i,
		    &help)) != 0)
			if (r == -1)
				return P_ERROR;
		if (i == argc) {
			if (help) {
				group_help(stdout, group);
				return P_HELP;
			}
			fprintf(stderr, "tasker-ctl: \"%s\" needs a command\n",
			    group);
			group_help(stderr, group);
			return P_ERROR;
		}
		if ((a->cmd = find_command(group, argv[i])) == NULL) {
			fprintf(stderr, "tasker-ctl: unknown command \"%s %s\"\n",
			    group, argv[i]);
			group_help(stderr, group);
			return P_ERROR;
		}
		i++;
	} else if ((a->cmd = find_command(group, NULL)) == NULL) {
		ctl_usage_error(NULL, "unknown command \"%s\"", group);
		return P_ERROR;
	}

	while (i < argc) {
		if (!dashdash && strcmp(argv[i], "--") == 0) {
			dashdash = true;
			i++;
			continue;
		}
		if (!dashdash) {
			r = parse_option(a, argc, argv, &i, &help);
			if (r == -1)
				return P_ERROR;
			if (r == 1)
				continue;
		}
		a->pos[a->npos++] = argv[i++];
	}
	if (help) {
		cmd_help(stdout, a->cmd);
		return P_HELP;
	}
	if (a->npos < a->cmd->min_args) {
		ctl_usage_error(a, "missing argument%s",
		    a->cmd->min_args - a->npos > 1 ? "s" : "");
		return P_ERROR;
	}
	if (a->cmd->max_args >= 0 && a->npos > a->cmd->max_args) {
		ctl_usage_error(a, "unexpected argument \"%s\"",
		    a->pos[a->cmd->max_args]);
		return P_ERROR;
	}
	/* No argument means anything empty: `task watch "$id"` with an id
	 * that a failed create left empty asked for the list of tasks (the
	 * server reads /v1/tasks/ as /v1/tasks), and waited for ever. */
	for (i = 0; i < a->npos; i++)
		if (a->pos[i][0] == '\0') {
			ctl_usage_error(a, "argument %d is empty", i + 1);
			return P_ERROR;
		}
	return P_OK;
}

/*
 * The config file keeps a token out of shell history and process lists:
 * $TASKER_CTL_CONFIG, else $XDG_CONFIG_HOME/tasker-ctl/config, else
 * ~/.config/tasker-ctl/config; lines "url = ..." and "token = ...", a
 * value up to the first blank, and lines starting with '#' comments (a
 * '#' inside a value is the value's: a token may hold one).  A missing
 * file is fine; a file others may read is refused when it holds a token.
 */
static void
ctl_read_config(void)
{
	const char	*home, *xdg, *env = getenv("TASKER_CTL_CONFIG");
	char		 path[1024], *line = NULL, *k, *v;
	size_t		 cap = 0;
	struct stat	 st;
	FILE		*f;

	if (env != NULL)
		snprintf(path, sizeof(path), "%s", env);
	else if ((xdg = getenv("XDG_CONFIG_HOME")) != NULL && *xdg != '\0')
		snprintf(path, sizeof(path), "%s/tasker-ctl/config", xdg);
	else if ((home = getenv("HOME")) != NULL)
		snprintf(path, sizeof(path), "%s/.config/tasker-ctl/config",
		    home);
	else
		return;
	if ((f = fopen(path, "r")) == NULL)
		return;
	/* Lines of any length: a cut token would be an unknown one. */
	while (getline(&line, &cap, f) != -1) {
		if (line[strspn(line, " \t")] == '#' ||
		    (v = strchr(line, '=')) == NULL)
			continue;
		*v++ = '\0';
		k = line + strspn(line, " \t");
		k[strcspn(k, " \t")] = '\0';
		v += strspn(v, " \t");
		v[strcspn(v, " \t\r\n")] = '\0';
		if (strcmp(k, "url") == 0)
			ctl.url = xstrdup(v);
		else if (strcmp(k, "token") == 0) {
			if (fstat(fileno(f), &st) == 0 &&
			    (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
				fprintf(stderr, "tasker-ctl: %s holds a token and "
				    "others may read it (chmod 600); ignored\n",
				    path);
				continue;
			}
			ctl.token = xstrdup(v);
		} else
			fprintf(stderr, "tasker-ctl: %s: unknown key \"%s\"\n",
			    path, k);
	}
	free(line);
	fclose(f);
}

/* A variable set but empty counts as unset: it leaves the file's value. */
static const char *
env_value(const char *name)
{
	const char	*v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

int
main(int argc, char **argv)
{
	struct ctl_args	 a;
	const char	*nc, *term;
	enum parsed	 p;
	int		 rc;

	setlocale(LC_ALL, "");
	log_init("tasker-ctl", LOG_LVL_WARN);
	ctl.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
	/* Precedence: options, then the environment, then the file. */
	ctl_read_config();
	if (env_value("TASKER_URL") != NULL)
		ctl.url = env_value("TASKER_URL");
	if (env_value("TASKER_TOKEN") != NULL)
		ctl.token = env_value("TASKER_TOKEN");
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("tasker-ctl %s\n", PACKAGE_VERSION);
		return 0;
	}

	/* Arguments become JSON, which holds UTF-8 only: a reason in
	 * Latin-1 would be dropped from the request without a word. */
	for (rc = 1; rc < argc; rc++)
		if (!utf8_valid(argv[rc], strlen(argv[rc]))) {
			ctl_warnx("argument %d is not valid UTF-8", rc);
			return CTL_EXIT_USAGE;
		}
	p = parse_command_line(argc, argv, &a);
	if (p != P_OK) {
		free(a.pos);
		return p == P_HELP ? CTL_EXIT_OK : CTL_EXIT_USAGE;
	}
	if (ctl.url == NULL || ctl.url[0] == '\0')
		ctl.url = CTL_DEFAULT_URL;
	if (ctl.token != NULL && ctl.token[0] == '\0')
		ctl.token = NULL;
	/* https://no-color.org: present and not empty disables colour. */
	nc = getenv("NO_COLOR");
	term = getenv("TERM");
	ctl.tty = isatty(STDOUT_FILENO) == 1;
	ctl.color = ctl.tty && !opt_no_color && (nc == NULL || *nc == '\0') &&
	    !(term != NULL && strcmp(term, "dumb") == 0);

	client_init();
	rc = a.cmd->run(&a);
	client_cleanup();
	free(a.pos);
	if (fflush(stdout) == EOF && rc == CTL_EXIT_OK) {
		ctl_warnx("write error: %s", strerror(errno));
		rc = CTL_EXIT_API;
	}
	return rc;
}
