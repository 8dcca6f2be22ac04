/*
 * ctl.h - tasker-ctl, the operator's command-line tool.
 *
 * tasker-ctl speaks taskerd's HTTP API and nothing else: it has no database
 * access and keeps no state, so any node's API is as good as another's.
 * The one offline command, `template validate`, runs the daemon's own
 * template loader so an operator sees exactly what taskerd would say.
 *
 * Modules, each with its own prefix:
 *   ctl.c        main, global options, argument parsing, the command table
 *   client.c     client_*: one libcurl handle, requests, API errors
 *   output.c     out_*: colours, aligned tables, times and durations
 *   dag.c        dag_*: a template's or task's steps drawn as a tree
 *   cmd_task.c   the `tasks` and `task` commands
 *   cmd_step.c   the `step` commands
 *   cmd_admin.c  templates, workers, services, nodes, health
 */
#ifndef TASKER_CTL_H
#define TASKER_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

/* Exit codes (documented in tasker-ctl.1; scripts rely on them). */
#define CTL_EXIT_OK		0
#define CTL_EXIT_API		1	/* the API answered an error */
#define CTL_EXIT_USAGE		2
#define CTL_EXIT_UNREACHABLE	3	/* no answer from the server */
#define CTL_EXIT_FAILED		4	/* task watch: ended error/cancelled */

#define CTL_DEFAULT_URL		"http://127.0.0.1:8080"

/* Global settings, fixed once the command line is parsed. */
struct ctl_globals {
	const char	*url;		/* --url, TASKER_URL */
	const char	*token;		/* --token, TASKER_TOKEN; NULL: none */
	bool		 json;		/* --json: the API's JSON as is */
	bool		 color;		/* stdout is a terminal, colours wanted */
	bool		 tty;		/* stdout is a terminal */
	bool		 utf8;		/* the locale's charset is UTF-8 */
};
extern struct ctl_globals ctl;

/* ---- the command table (ctl.c) ----------------------------------------- */

struct ctl_opt {
	const char	*name;		/* long name without "--" */
	const char	*arg;		/* metavariable; NULL: a flag */
	const char	*help;
};

#define CTL_MAXOPTS	8

struct ctl_cmd;

/* A parsed command line.  val[i] belongs to cmd->opts[i]: NULL when not
 * given, "" for a flag that was. */
struct ctl_args {
	const struct ctl_cmd	*cmd;
	const char		*val[CTL_MAXOPTS];
	char			**pos;		/* positional arguments */
	int			 npos;
};

struct ctl_cmd {
	const char	*group;		/* "task", or NULL: one word */
	const char	*name;
	int		(*run)(struct ctl_args *);
	const char	*usage;		/* what follows the command words */
	const char	*summary;	/* one line, for the command list */
	const char	*help;		/* paragraphs for --help */
	int		 min_args;
	int		 max_args;	/* -1: no limit */
	struct ctl_opt	 opts[CTL_MAXOPTS];
};

/* The value of the command's option `name`, or NULL. */
const char	*ctl_opt(const struct ctl_args *, const char *name);
/* Print "tasker-ctl: MESSAGE" and the command's usage to stderr; returns
 * CTL_EXIT_USAGE for the caller to return. */
int		 ctl_usage_error(const struct ctl_args *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
/* "tasker-ctl: MESSAGE" on stderr. */
void		 ctl_warnx(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
/* A positive integer option, or -1 with a usage error printed. */
int64_t		 ctl_opt_int(const struct ctl_args *, const char *name,
		    int64_t dflt, int64_t max);
/* JSON from "TEXT", "@FILE" or "@-" (stdin); NULL with a usage error
 * printed. */
json_t		*ctl_json_arg(const struct ctl_args *, const char *what,
		    const char *value);

/* ---- HTTP (client.c) --------------------------------------------------- */

struct client_resp {
	long		 status;	/* HTTP status */
	char		*body;		/* NUL-terminated */
	size_t		 len;
	json_t		*json;		/* parsed body; NULL if not JSON */
	char		*location;	/* a redirect's target, or NULL */
};

void	 client_init(void);
void	 client_cleanup(void);
/*
 * One request; body (may be NULL) is sent as JSON.  Returns 0 with *r
 * filled when the server answered anything; CTL_EXIT_UNREACHABLE with the
 * URL and curl's reason printed when it did not; CTL_EXIT_API, said so,
 * when its answer is larger than a client takes.
 */
int	 client_request(const char *method, const char *path,
	    const json_t *body, struct client_resp *r);
/*
 * A request whose answer must be 2xx JSON.  Returns 0, or the exit code
 * after reporting: an API error prints "tasker-ctl: CODE: MESSAGE" (and
 * with --json the answer on stdout).
 */
int	 client_call(const char *method, const char *path,
	    const json_t *body, struct client_resp *r);
/* Whether client_request leaves an unreachable server unreported, for a
 * caller that tries again and says so itself, with client_failure(). */
void	 client_quiet(bool);
const char *client_failure(void);
/* Report a non-2xx answer as client_call does; returns CTL_EXIT_API. */
int	 client_report(const struct client_resp *);
void	 client_resp_free(struct client_resp *);
/* The answer's body as is, newline-terminated, on stdout. */
void	 client_print_raw(const struct client_resp *);
/* GET path: with --json print the answer as it came, else render it.
 * Returns an exit code. */
int	 client_show(const char *path,
	    void (*render)(const json_t *, const void *), const void *arg);
/* A path segment or query value, percent-encoded (caller frees). */
char	*client_escape(const char *);

/* ---- output (output.c) ------------------------------------------------- */

/* ANSI colours; out_color() gives "" for all when colours are off. */
#define OUT_RESET	"\033[0m"
#define OUT_BOLD	"\033[1m"
#define OUT_DIM		"\033[2m"
#define OUT_RED		"\033[31m"
#define OUT_GREEN	"\033[32m"
#define OUT_YELLOW	"\033[33m"
#define OUT_BLUE	"\033[34m"
#define OUT_MAGENTA	"\033[35m"
#define OUT_CYAN	"\033[36m"

/* The colour of a task, step, worker or breaker state; NULL: none. */
const char	*out_state_color(const char *state);
/* Write s in colour c (NULL: plain) when colours are on. */
void		 out_colored(FILE *, const char *c, const char *s);
/* s with control characters shown as spaces (written; in place). */
void		 out_text(FILE *, const char *s);
void		 out_clean(char *s);

/* Columns of text, aligned by display width. */
struct out_table;
struct out_table *out_table_new(int ncols, const char *const *headers);
/* Start a row; cells left unset print empty. */
void	 out_table_row(struct out_table *);
/* Set a cell of the current row. */
void	 out_table_set(struct out_table *, int col, const char *color,
	    const char *, ...) __attribute__((format(printf, 4, 5)));
/* Print (no trailing blanks on a line) and free. */
void	 out_table_print(struct out_table *, FILE *);

/* Display width of UTF-8 text (one column per code point). */
size_t	 out_width(const char *);

/* Microseconds since the epoch from an RFC 3339 timestamp; -1 if bad. */
int64_t	 out_parse_time(const char *);
/* A JSON member holding a timestamp, or -1. */
int64_t	 out_json_time(const json_t *obj, const char *key);
/* "now", from the clock or TASKER_CTL_NOW (for reproducible output). */
int64_t	 out_now(void);
/* "2026-11-25 12:00:00Z" (UTC); with ms, ".123" before the Z. */
void	 out_fmt_time(char *, size_t, int64_t us, bool ms);
/* "850ms", "4s", "4.2s", "3m07s", "2h05m", "3d04h" (truncated). */
void	 out_fmt_duration(char *, size_t, int64_t ms);
/* A string member, or dflt when absent or not a string. */
const char *out_str(const json_t *obj, const char *key, const char *dflt);
/* A JSON value in one line; "-" for null/absent (caller frees). */
char	*out_compact(const json_t *);
/* v as compact JSON on a line of stdout (--json). */
void	 out_print_json(const json_t *);
/* An object as "k=v k=v", logfmt style: strings quoted only when needed,
 * nested objects as "k.member=v" (caller frees). */
char	*out_kv(const json_t *);

/* ---- the DAG as a tree (dag.c) ----------------------------------------- */

/*
 * Fill the columns beside the tree (1 .. ncols-1) of the current row for
 * one step; column 0, the tree and the step's name, is dag.c's.  Reference
 * lines (a step drawn under another parent) get no call.
 */
typedef void (*dag_cells_fn)(struct out_table *, const json_t *step,
    void *arg);

/*
 * Draw steps (a JSON array of {name, depends_on: [names]}) as a tree:
 * roots first in array order, each step under its first parent, and a
 * reference line under each of its other parents.  Deterministic: the
 * output depends on the array only.
 */
void	 dag_print(FILE *, const json_t *steps, int ncols,
	    const char *const *headers, dag_cells_fn, void *arg);

/* ---- command handlers -------------------------------------------------- */

int	cmd_tasks_list(struct ctl_args *);
int	cmd_task_show(struct ctl_args *);
int	cmd_task_create(struct ctl_args *);
int	cmd_task_watch(struct ctl_args *);
int	cmd_task_cancel(struct ctl_args *);
int	cmd_task_history(struct ctl_args *);
int	cmd_step_action(struct ctl_args *);
int	cmd_step_show(struct ctl_args *);
int	cmd_step_history(struct ctl_args *);
int	cmd_templates_list(struct ctl_args *);
int	cmd_templates_show(struct ctl_args *);
int	cmd_template_validate(struct ctl_args *);
int	cmd_workers(struct ctl_args *);
int	cmd_services(struct ctl_args *);
int	cmd_nodes(struct ctl_args *);
int	cmd_health(struct ctl_args *);

/* Shared by the task and step commands (cmd_task.c). */
const char *cmd_actor(const struct ctl_args *);
void	 cmd_print_history(const json_t *transitions, bool with_step);

#endif
