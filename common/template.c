/*
 * template.c - workflow templates: loading from YAML, validation, registry.
 *
 * A template is checked whole before anything uses it: keys and types by the
 * key tables below (through yamltree), then the names and the graph.  Step
 * order is file order; dep_idx points into it.  Tasker's keys are accepted
 * so its templates load unchanged, but only those that mean something here
 * are read.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <libgen.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "handler_config.h"
#include "http_rules.h"
#include "xmalloc.h"
#include "yamltree.h"
#include "errbuf.h"
#include "template.h"
#include "schema.h"
#include "render.h"
#include "protocol.h"
#include "utf8.h"

struct tmpl_byname {
	const char		*name;
	size_t			 idx;
};

/* Loader state that does not belong in struct tmpl. */
struct tmpl_parse {
	struct yt_doc		*doc;
	struct tmpl		*t;
	yaml_node_t		*steps_node;	/* step_templates */
	yaml_node_t		*named_node;	/* named_steps, or NULL */
	int			**dep_lines;	/* per step, per dep */
	struct tmpl_byname	*byname;	/* steps sorted by name */
	char			*dir;		/* the file's directory, or NULL */
};

static int	tmpl_key_identity(struct yt_doc *, const struct yt_key *,
		    yaml_node_t *, void *, void *);
static int	tmpl_key_steps(struct yt_doc *, const struct yt_key *,
		    yaml_node_t *, void *, void *);
static int	tmpl_key_named(struct yt_doc *, const struct yt_key *,
		    yaml_node_t *, void *, void *);
static int	tmpl_key_handler(struct yt_doc *, const struct yt_key *,
		    yaml_node_t *, void *, void *);
static int	tmpl_key_deps(struct yt_doc *, const struct yt_key *,
		    yaml_node_t *, void *, void *);
static int	tmpl_key_schema(struct yt_doc *, const struct yt_key *,
		    yaml_node_t *, void *, void *);

#define T(f)	offsetof(struct tmpl, f)
#define S(f)	offsetof(struct tmpl_step, f)

static const struct yt_key tmpl_keys[] = {
	{ "name", YT_STRING, T(name), NULL, 0, 0, YT_REQUIRED, NULL,
	    "unique with namespace_name and version" },
	{ "namespace_name", YT_STRING, T(namespace), "default", 0, 0, 0, NULL,
	    "groups templates; part of the API path" },
	{ "version", YT_STRING, T(version), "0.1.0", 0, 0, 0, NULL,
	    "dotted version, read as text (1.0 stays \"1.0\")" },
	{ "description", YT_STRING, T(description), NULL, 0, 0, 0, NULL,
	    "free text" },
	{ "default_dependent_system", YT_STRING, T(default_dependent_system),
	    NULL, 0, 0, 0, NULL, "service of steps that name none" },
	{ "identity_strategy", YT_FUNC, 0, NULL, 0, 0, 0, tmpl_key_identity,
	    "strict, caller_provided or always_unique" },
	{ "schema", YT_FUNC, 0, NULL, 0, 0, 0, tmpl_key_schema,
	    "JSON Schema of the task context (see schema.h)" },
	{ "step_templates", YT_FUNC, 0, NULL, 0, 0, YT_REQUIRED, tmpl_key_steps,
	    "the steps, in order" },
	{ "named_steps", YT_FUNC, 0, NULL, 0, 0, 0, tmpl_key_named,
	    "Tasker: if given, every step must be listed" },
	{ "routes.create.path", YT_STRING, T(route_create), NULL, 0, 0, 0,
	    NULL, "POST here creates a task of this template" },
	{ "routes.create.context_from", YT_STRING, T(route_context_from),
	    NULL, 0, 0, 0, NULL, "the body member that is the context" },
	{ "routes.status.path", YT_STRING, T(route_status), NULL, 0, 0, 0,
	    NULL, "GET here, ending in {task_id}: progress" },
	{ "routes.results.path", YT_STRING, T(route_results), NULL, 0, 0, 0,
	    NULL, "GET here, ending in {task_id}: the results" },
	{ "routes.results.body", YT_JSON, T(route_results_body), NULL, 0, 0, 0,
	    NULL, "the results answer, rendered from {context, steps, task}" },
	/* Tasker's, with no meaning here; accepted so its files port over. */
	{ "module_namespace", YT_IGNORE, 0, NULL, 0, 0, 0, NULL, "Tasker" },
	{ "task_handler_class", YT_IGNORE, 0, NULL, 0, 0, 0, NULL, "Tasker" },
	{ "environments", YT_IGNORE, 0, NULL, 0, 0, 0, NULL, "Tasker" },
	{ "custom_events", YT_IGNORE, 0, NULL, 0, 0, 0, NULL, "Tasker" },
	{ "concurrent", YT_IGNORE, 0, NULL, 0, 0, 0, NULL, "Tasker" },
	{ "handler_config", YT_IGNORE, 0, NULL, 0, 0, 0, NULL,
	    "Tasker: task handler's config" },
};

/*
 * Rows sharing a field are Tasker's spelling and ours of the same key
 * (step_spellings): a step may not give them two values.  Defaults come from
 * struct tmpl_defaults at load time, not from this table.
 */
static const struct yt_key step_keys[] = {
	{ "name", YT_STRING, S(name), NULL, 0, 0, YT_REQUIRED, NULL,
	    "unique in the template" },
	{ "description", YT_STRING, S(description), NULL, 0, 0, 0, NULL,
	    "free text" },
	{ "handler", YT_FUNC, 0, NULL, 0, 0, 0, tmpl_key_handler,
	    "http, exec, plugin or noop" },
	{ "handler_class", YT_STRING, S(handler_class), NULL, 0, 0, 0, NULL,
	    "plugin symbol; implies handler: plugin" },
	{ "dependent_system", YT_STRING, S(dependent_system), NULL, 0, 0, 0,
	    NULL, "the service called" },
	{ "depends_on_steps", YT_FUNC, 0, NULL, 0, 0, 0, tmpl_key_deps,
	    "parent step names" },
	{ "depends_on_step", YT_FUNC, 0, NULL, 0, 0, 0, tmpl_key_deps,
	    "one parent step name" },
	{ "default_retryable", YT_BOOL, S(retryable), NULL, 0, 0, 0, NULL,
	    "Tasker's name for retryable" },
	{ "retryable", YT_BOOL, S(retryable), NULL, 0, 0, 0, NULL,
	    "whether failures are retried" },
	{ "default_retry_limit", YT_INT, S(retry_limit), NULL, 1, INT_MAX, 0,
	    NULL, "Tasker's name for retry_limit" },
	{ "retry_limit", YT_INT, S(retry_limit), NULL, 1, INT_MAX, 0, NULL,
	    "total attempts" },
	/* At most 24.8 days (INT_MAX ms): the database keeps a step's timeout
	 * in an int column. */
	{ "timeout", YT_DURATION, S(timeout_ms), NULL, 1, INT_MAX, 0, NULL,
	    "per attempt; a bare number is milliseconds" },
	{ "backoff.base", YT_DURATION, S(backoff.base_ms), NULL, 0, INT_MAX,
	    0, NULL, "delay before attempt 2" },
	{ "backoff.max", YT_DURATION, S(backoff.max_ms), NULL, 0, INT_MAX,
	    0, NULL, "cap on the delay" },
	{ "backoff.jitter", YT_JITTER, S(backoff.jitter), NULL, 0, 0, 0, NULL,
	    "full, equal or none" },
	{ "handler_config", YT_JSON, S(handler_config), NULL, 0, 0, 0, NULL,
	    "handler specific" },
	{ "custom_events", YT_IGNORE, 0, NULL, 0, 0, 0, NULL, "Tasker" },
	/* (Nothing is skipped here: every step runs.) */
	{ "skippable", YT_IGNORE, 0, NULL, 0, 0, 0, NULL, "Tasker" },
};

/* Keys of step_keys that are one setting: a step may give only one. */
static const char *const step_spellings[][2] = {
	{ "default_retryable", "retryable" },
	{ "default_retry_limit", "retry_limit" },
};

/* Tasker's keys above that change what runs there: ignored here, they are
 * warned of (tmpl_registry_warnings), so that a ported file's
 * per-environment URLs do not go unnoticed. */
static const struct {
	const char	*key;
	const char	*why;
} tmpl_unheeded[] = {
	{ "environments", "Tasker's per-environment overrides are not read "
	    "here: every step runs with the handler_config it has" },
	{ "handler_config", "a task-level handler_config is Tasker's task "
	    "handler's, not read here: each step has its own" },
};

_Static_assert(YT_NELEM(tmpl_unheeded) ==
    sizeof(((struct tmpl *)0)->unheeded_line) / sizeof(int),
    "a line for each of tmpl_unheeded");

static const char *const tmpl_handlers[] = { "http", "exec", "plugin",
	"noop" };

static const char *const identity_names[] = {
	[IDENTITY_ALWAYS_UNIQUE] = "always_unique",
	[IDENTITY_STRICT] = "strict",
	[IDENTITY_CALLER_PROVIDED] = "caller_provided",
};

const char *
tmpl_identity_name(enum identity_strategy id)
{
	if ((size_t)id >= YT_NELEM(identity_names))
		return "unknown";
	return identity_names[id];
}

static int
tmpl_key_identity(struct yt_doc *doc, const struct yt_key *k, yaml_node_t *v,
    void *base, void *arg)
{
	struct tmpl	*t = base;
	char		*s;
	size_t		 i;

	(void)arg;
	if (yt_string(doc, v, k->name, &s) == -1)
		return -1;
	for (i = 0; i < YT_NELEM(identity_names); i++) {
		if (strcmp(s, identity_names[i]) == 0) {
			t->identity = (enum identity_strategy)i;
			free(s);
			return 0;
		}
	}
	yt_error(doc, v, "%s: invalid strategy '%s' (strict, caller_provided "
	    "or always_unique)", k->name, s);
	free(s);
	return -1;
}

/* The context schema is checked at load, so a task never meets a schema
 * the validator does not understand. */
static int
tmpl_key_schema(struct yt_doc *doc, const struct yt_key *k, yaml_node_t *v,
    void *base, void *arg)
{
	struct tmpl	*t = base;
	char		 why[512], where[256];

	(void)arg;
	if (yt_expect(doc, v, YAML_MAPPING_NODE, k->name) == -1)
		return -1;
	if ((t->schema = yt_json(doc, v)) == NULL)
		return -1;
	if (schema_check_at(t->schema, why, sizeof(why), where,
	    sizeof(where)) == -1)
		return yt_error(doc, yt_pointer(doc, v, where), "%s: %s",
		    k->name, why);
	return 0;
}

/* step_templates and named_steps are kept as nodes and read after the whole
 * top level, since steps take defaults from keys that may come later. */
static int
tmpl_key_steps(struct yt_doc *doc, const struct yt_key *k, yaml_node_t *v,
    void *base, void *arg)
{
	struct tmpl_parse	*p = arg;

	(void)base;
	if (yt_expect(doc, v, YAML_SEQUENCE_NODE, k->name) == -1)
		return -1;
	if (yt_len(v) == 0)
		return yt_error(doc, v, "%s: no steps", k->name);
	if (yt_len(v) > TMPL_MAX_STEPS)
		return yt_error(doc, v, "%s: %zu steps; a template has at "
		    "most %d", k->name, yt_len(v), TMPL_MAX_STEPS);
	p->steps_node = v;
	return 0;
}

static int
tmpl_key_named(struct yt_doc *doc, const struct yt_key *k, yaml_node_t *v,
    void *base, void *arg)
{
	struct tmpl_parse	*p = arg;
	size_t			 i;

	(void)base;
	if (yt_expect(doc, v, YAML_SEQUENCE_NODE, k->name) == -1)
		return -1;
	for (i = 0; i < yt_len(v); i++)
		if (yt_expect(doc, yt_item(doc, v, i), YAML_SCALAR_NODE,
		    k->name) == -1)
			return -1;
	p->named_node = v;
	return 0;
}

static int
tmpl_key_handler(struct yt_doc *doc, const struct yt_key *k, yaml_node_t *v,
    void *base, void *arg)
{
	struct tmpl_step	*st = base;
	char			*s;
	size_t			 i;

	(void)arg;
	if (yt_string(doc, v, k->name, &s) == -1)
		return -1;
	for (i = 0; i < YT_NELEM(tmpl_handlers); i++) {
		if (strcmp(s, tmpl_handlers[i]) == 0) {
			free(st->handler);
			st->handler = s;
			return 0;
		}
	}
	yt_error(doc, v, "%s: invalid handler '%s' (http, exec, plugin or "
	    "noop)", k->name, s);
	free(s);
	return -1;
}

/* Both spellings add to one list; a parent named twice counts once. */
static void
tmpl_add_dep(struct tmpl_parse *p, struct tmpl_step *st, char *name, int line)
{
	size_t	i, idx = (size_t)(st - p->t->steps);

	for (i = 0; i < st->ndeps; i++) {
		if (strcmp(st->deps[i], name) == 0) {
			free(name);
			return;
		}
	}
	st->deps = xreallocarray(st->deps, st->ndeps + 1, sizeof(*st->deps));
	p->dep_lines[idx] = xreallocarray(p->dep_lines[idx], st->ndeps + 1,
	    sizeof(**p->dep_lines));
	st->deps[st->ndeps] = name;
	p->dep_lines[idx][st->ndeps] = line;
	st->ndeps++;
}

static int
tmpl_key_deps(struct yt_doc *doc, const struct yt_key *k, yaml_node_t *v,
    void *base, void *arg)
{
	yaml_node_t	*item;
	char		*s;
	size_t		 i;

	if (strcmp(k->name, "depends_on_step") == 0) {
		if (yt_string(doc, v, k->name, &s) == -1)
			return -1;
		tmpl_add_dep(arg, base, s, yt_line(v));
		return 0;
	}
	if (yt_expect(doc, v, YAML_SEQUENCE_NODE, k->name) == -1)
		return -1;
	for (i = 0; i < yt_len(v); i++) {
		item = yt_item(doc, v, i);
		if (yt_string(doc, item, k->name, &s) == -1)
			return -1;
		tmpl_add_dep(arg, base, s, yt_line(item));
	}
	return 0;
}

/* Line of a step's `name` value, the most precise place to point at. */
static int
tmpl_name_line(struct tmpl_parse *p, size_t i)
{
	yaml_node_t	*n;

	n = yt_lookup(p->doc, yt_item(p->doc, p->steps_node, i), "name");
	return n != NULL ? yt_line(n) : p->t->steps[i].line;
}

/* Whether a step gives one setting under both its names, with two values
 * (the later one in the file won, without a word). */
static bool
tmpl_spelt_twice(struct tmpl_parse *p, yaml_node_t *item,
    const char *const names[2])
{
	yaml_node_t	*a = yt_lookup(p->doc, item, names[0]);
	yaml_node_t	*b = yt_lookup(p->doc, item, names[1]);
	json_t		*ja, *jb;
	bool		 differ;

	if (a == NULL || b == NULL)
		return false;
	ja = yt_json(p->doc, a);
	jb = yt_json(p->doc, b);
	differ = !json_equal(ja, jb);
	json_decref(ja);
	json_decref(jb);
	return differ;
}

/* Line of the key of a mapping named key, or 0. */
static int
tmpl_key_line(struct yt_doc *doc, const yaml_node_t *map, const char *key)
{
	const char	*text;
	size_t		 j;

	for (j = 0; j < yt_len(map); j++)
		if ((text = yt_text(yt_key(doc, map, j))) != NULL &&
		    strcmp(text, key) == 0)
			return yt_line(yt_key(doc, map, j));
	return 0;
}

/* Whether a message names key, a top-level key of a handler_config, as
 * a word of its own ("unknown key 'methd'", "http timeout must", "exec
 * env.N", "command[0]"): not in a path below another key
 * ("on_status.409.lookup.url"), nor in a list after "(" of the keys
 * there are. */
static bool
tmpl_names_key(const char *why, const char *key)
{
	const char	*at, *end = why + strcspn(why, "(");
	size_t		 n = strlen(key);

	for (at = strstr(why, key); n > 0 && at != NULL && at < end;
	    at = strstr(at + 1, key))
		if ((at == why || strchr(" '", at[-1]) != NULL) &&
		    strchr(" '.[,:)", at[n]) != NULL)	/* (or its NUL) */
			return true;
	return false;
}

/* Where a step's handler_config problem is: at the first key of it that
 * the message names, else at handler_config (a step's name may be many
 * lines above). */
static int
tmpl_config_line(struct tmpl_parse *p, size_t i, const char *why)
{
	yaml_node_t	*item = yt_item(p->doc, p->steps_node, i), *cfg;
	const char	*text;
	size_t		 j;
	int		 line;

	if ((line = tmpl_key_line(p->doc, item, "handler_config")) == 0)
		return tmpl_name_line(p, i);
	cfg = yt_lookup(p->doc, item, "handler_config");
	for (j = 0; cfg != NULL && j < yt_len(cfg); j++)
		if ((text = yt_text(yt_key(p->doc, cfg, j))) != NULL &&
		    tmpl_names_key(why, text))
			return yt_line(yt_key(p->doc, cfg, j));
	return line;
}

/*
 * Whether a step's handler may read other steps' results from its input,
 * so that a step that cannot is not sent them (the claim would otherwise
 * gather every completed step's results of its task).  noop never reads
 * its input; an http step reads results only through {{steps...}}
 * placeholders, so a config whose text never says "steps" cannot; any
 * other handler may.
 */
static bool
tmpl_reads_results(const struct tmpl_step *st)
{
	char	*text;
	bool	 reads;

	if (strcmp(st->handler, "noop") == 0)
		return false;
	if (strcmp(st->handler, "http") != 0)
		return true;
	if ((text = json_dumps(st->handler_config, JSON_COMPACT)) == NULL)
		return true;
	reads = strstr(text, "steps") != NULL;
	free(text);
	return reads;
}

/* Where a step's backoff is wrong: its base, else its max (the other
 * came from the defaults), else the step. */
static yaml_node_t *
tmpl_backoff_node(struct tmpl_parse *p, yaml_node_t *item)
{
	yaml_node_t	*bo = yt_lookup(p->doc, item, "backoff"), *node;

	if ((node = yt_lookup(p->doc, bo, "base")) == NULL &&
	    (node = yt_lookup(p->doc, bo, "max")) == NULL)
		node = item;
	return node;
}

static int
tmpl_load_steps(struct tmpl_parse *p, const struct tmpl_defaults *defs)
{
	struct tmpl		*t = p->t;
	struct tmpl_step	*st;
	yaml_node_t		*item;
	size_t			 i, k;

	t->nsteps = yt_len(p->steps_node);
	t->steps = xcalloc(t->nsteps, sizeof(*t->steps));
	p->dep_lines = xcalloc(t->nsteps, sizeof(*p->dep_lines));
	for (i = 0; i < t->nsteps; i++) {
		st = &t->steps[i];
		item = yt_item(p->doc, p->steps_node, i);
		st->line = yt_line(item);
		st->retryable = true;
		st->retry_limit = defs->retry_limit;
		st->timeout_ms = defs->timeout_ms;
		st->backoff = defs->backoff;
		if (yt_decode(p->doc, item, step_keys, YT_NELEM(step_keys), st,
		    p, "step") == -1)
			return -1;
		for (k = 0; k < YT_NELEM(step_spellings); k++)
			if (tmpl_spelt_twice(p, item, step_spellings[k]))
				return yt_errorl(p->doc, tmpl_key_line(p->doc,
				    item, step_spellings[k][1]), "step \"%s\": "
				    "%s and %s are one setting (Tasker's name "
				    "and ours), given two values: give one",
				    st->name, step_spellings[k][0],
				    step_spellings[k][1]);
		if (st->backoff.base_ms > st->backoff.max_ms)
			return yt_error(p->doc, tmpl_backoff_node(p, item),
			    "step \"%s\": backoff.base (%lld ms) is longer "
			    "than backoff.max (%lld ms), which caps every "
			    "delay", st->name, (long long)st->backoff.base_ms,
			    (long long)st->backoff.max_ms);
		if (st->handler == NULL)
			st->handler = xstrdup(st->handler_class != NULL ?
			    "plugin" : "http");
		if (st->dependent_system == NULL &&
		    t->default_dependent_system != NULL)
			st->dependent_system =
			    xstrdup(t->default_dependent_system);
		if (st->handler_config == NULL)
			st->handler_config = json_object();
		/* It travels to the worker inside a message, and its results
		 * (noop) inside the children's input: as deep as any other
		 * JSON taskerd takes in (protocol.h). */
		if (proto_json_depth(st->handler_config) >
		    PROTO_MAX_JSON_DEPTH)
			return yt_error(p->doc, item, "step \"%s\": "
			    "handler_config is nested deeper than %d levels",
			    st->name, PROTO_MAX_JSON_DEPTH);
		st->reads_results = tmpl_reads_results(st);
	}
	return 0;
}

/*
 * A handler_config its handler cannot run with would fail every attempt
 * of every task, so it fails the load instead: an http step without a
 * url, an exec step without a command, a plugin step without a library.
 */
static int
tmpl_check_handlers(struct tmpl_parse *p)
{
	struct tmpl_step	*st;
	const char		*url;
	size_t			 i;
	char			 why[256], where[64];
	int			 rc;

	for (i = 0; i < p->t->nsteps; i++) {
		st = &p->t->steps[i];
		if (strcmp(st->handler, "http") == 0) {
			rc = http_rules_check(st->handler_config, why,
			    sizeof(why));
			/* Every attempt would fail: say so now. */
			if (rc == 0 && st->dependent_system == NULL &&
			    (url = http_rules_relative_url(st->handler_config,
			    where, sizeof(where))) != NULL) {
				snprintf(why, sizeof(why), "%s \"%s\" is "
				    "relative, and the step names no service "
				    "(dependent_system) whose base_url it "
				    "would follow", where, url);
				rc = -1;
			}
		} else if (strcmp(st->handler, "exec") == 0)
			rc = exec_config_check(st->handler_config, p->dir, why,
			    sizeof(why));
		else if (strcmp(st->handler, "plugin") == 0)
			rc = plugin_config_check(st->handler_config,
			    st->handler_class, p->dir, why, sizeof(why));
		else if (strcmp(st->handler, "noop") == 0)
			rc = noop_config_check(st->handler_config, why,
			    sizeof(why));
		else
			rc = 0;
		if (rc == -1)
			return yt_errorl(p->doc, tmpl_config_line(p, i, why),
			    "step \"%s\": %s", st->name, why);
	}
	return 0;
}

static int
tmpl_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
tmpl_cmp_byname(const void *a, const void *b)
{
	const struct tmpl_byname	*x = a, *y = b;
	int				 c;

	if ((c = strcmp(x->name, y->name)) != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int
tmpl_cmp_name(const void *key, const void *elem)
{
	return strcmp(key, ((const struct tmpl_byname *)elem)->name);
}

static int
tmpl_cmp_str(const void *key, const void *elem)
{
	return strcmp(key, *(const char *const *)elem);
}

/*
 * Names are checked on a sorted copy, which tmpl_resolve then searches:
 * duplicates become neighbours and lookups a bsearch, so a template of many
 * steps costs n log n, not n squared.
 */
static int
tmpl_check_names(struct tmpl_parse *p)
{
	struct tmpl	*t = p->t;
	const char	**named;
	yaml_node_t	*item;
	size_t		 i, run = 0, dup = SIZE_MAX, first = 0, nnamed;
	int		 rc = 0;

	/* A step's name is a placeholder's path segment and a URL's
	 * (/v1/tasks/ID/steps/NAME): letters, digits, '_' and '-'. */
	for (i = 0; i < t->nsteps; i++) {
		if (t->steps[i].name[0] == '\0' ||
		    t->steps[i].name[strspn(t->steps[i].name,
		    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789_-")] != '\0')
			return yt_errorl(p->doc, tmpl_name_line(p, i),
			    "step name '%s' may hold only letters, digits, "
			    "'_' and '-'", t->steps[i].name);
		if (strlen(t->steps[i].name) > TMPL_NAME_MAX)
			return yt_errorl(p->doc, tmpl_name_line(p, i),
			    "step name '%.32s...' is %zu bytes; at most %d "
			    "(it is a part of API paths)", t->steps[i].name,
			    strlen(t->steps[i].name), TMPL_NAME_MAX);
	}
	p->byname = xcalloc(t->nsteps, sizeof(*p->byname));
	for (i = 0; i < t->nsteps; i++) {
		p->byname[i].name = t->steps[i].name;
		p->byname[i].idx = i;
	}
	qsort(p->byname, t->nsteps, sizeof(*p->byname), tmpl_cmp_byname);
	/* Report the repeat that comes first in the file. */
	for (i = 1; i < t->nsteps; i++) {
		if (strcmp(p->byname[i].name, p->byname[i - 1].name) != 0) {
			run = i;
			continue;
		}
		if (dup == SIZE_MAX || p->byname[i].idx < dup) {
			dup = p->byname[i].idx;
			first = p->byname[run].idx;
		}
	}
	if (dup != SIZE_MAX)
		return yt_errorl(p->doc, tmpl_name_line(p, dup),
		    "duplicate step name '%s' (first at line %d)",
		    t->steps[dup].name, tmpl_name_line(p, first));

	if (p->named_node == NULL)
		return 0;
	nnamed = yt_len(p->named_node);
	named = xcalloc(nnamed, sizeof(*named));
	for (i = 0; i < nnamed; i++)
		named[i] = yt_text(yt_item(p->doc, p->named_node, i));
	if (nnamed > 0)
		qsort(named, nnamed, sizeof(*named), tmpl_cmp_names);
	for (i = 0; i < t->nsteps && rc == 0; i++)
		if (nnamed == 0 || bsearch(t->steps[i].name, named, nnamed,
		    sizeof(*named), tmpl_cmp_str) == NULL)
			rc = yt_errorl(p->doc, tmpl_name_line(p, i),
			    "step '%s' is not listed in named_steps",
			    t->steps[i].name);
	/* And the other way: a name listed for a step that is not there
	 * (misspelt, or its step deleted) is a template out of step. */
	for (i = 0; i < nnamed && rc == 0; i++) {
		item = yt_item(p->doc, p->named_node, i);
		if (bsearch(yt_text(item), p->byname, t->nsteps,
		    sizeof(*p->byname), tmpl_cmp_name) == NULL)
			rc = yt_error(p->doc, item, "named_steps lists '%s', "
			    "which no step template is", yt_text(item));
	}
	free(named);
	return rc;
}

/*
 * What an http step's placeholders may name: the input a worker gets
 * (context, attempt, service), the environment, and the results of the
 * steps it depends on, directly or not - those and only those have
 * completed before it starts.  Anything else would render at one time and
 * fail at another, or never.
 */
struct tmpl_refs {
	struct tmpl_parse	*p;
	const struct tmpl_step	*step;		/* whose; NULL: the route's */
	bool			*ancestor;	/* by step index */
	bool			 route;		/* routes.results.body */
	char			 why[320];
	char			 at[256];	/* JSON pointer to the string
						 * being checked */
};

/* Append "/" and token (RFC 6901 escaped) to r->at; returns its old end. */
static size_t
tmpl_refs_push(struct tmpl_refs *r, const char *token)
{
	size_t	len = strlen(r->at), n = len;

	if (n + 1 < sizeof(r->at))
		r->at[n++] = '/';
	for (; *token != '\0' && n + 2 < sizeof(r->at); token++) {
		if (*token == '~' || *token == '/') {
			r->at[n++] = '~';
			r->at[n++] = *token == '~' ? '0' : '1';
		} else
			r->at[n++] = *token;
	}
	r->at[n] = '\0';
	return len;
}

/* Whether the n bytes at seg are name. */
static bool
tmpl_seg_is(const char *seg, size_t n, const char *name)
{
	return strlen(name) == n && strncmp(seg, name, n) == 0;
}

/* Whether the first segment of path (len bytes) is one of names. */
static bool
tmpl_path_is(const char *path, size_t len, const char *const *names)
{
	size_t	n = strcspn(path, ".");

	if (n > len)
		n = len;
	for (; *names != NULL; names++)
		if (tmpl_seg_is(path, n, *names))
			return true;
	return false;
}

/*
 * What a step's input holds (sched.c), under attempt: a number; service:
 * its dependent_system's name, base_url and timeout_ms; steps.NAME: its
 * results.  A placeholder past those can never render, and would fail
 * every attempt.  path (len bytes, its root known) is a step's.
 */
static int
tmpl_check_input(struct tmpl_refs *r, const char *path, size_t len)
{
	static const char *const service_members[] = { "name", "base_url",
	    "timeout_ms", NULL };
	static const char *const step_members[] = { "results", NULL };
	const char	*rest = path + strcspn(path, ".");
	size_t		 n = (size_t)(rest - path), m;
	int		 wlen = len > 200 ? 200 : (int)len;

	if (n >= len)
		rest = NULL;	/* the root alone */
	else {
		rest++;
		len -= n + 1;
	}
	if (tmpl_seg_is(path, n, "attempt") && rest != NULL)
		snprintf(r->why, sizeof(r->why), "placeholder '%.*s': attempt "
		    "is a number, with no members", wlen, path);
	else if (tmpl_seg_is(path, n, "service") &&
	    r->step->dependent_system == NULL)
		snprintf(r->why, sizeof(r->why), "placeholder '%.*s' reads the "
		    "step's service, and the step names none "
		    "(dependent_system)", wlen, path);
	else if (tmpl_seg_is(path, n, "service") && rest != NULL &&
	    !tmpl_path_is(rest, len, service_members))
		snprintf(r->why, sizeof(r->why), "placeholder '%.*s': a "
		    "service has name, base_url and timeout_ms", wlen, path);
	else if (tmpl_seg_is(path, n, "steps") && rest != NULL &&
	    (m = strcspn(rest, ".")) < len &&
	    !tmpl_path_is(rest + m + 1, len - m - 1, step_members))
		snprintf(r->why, sizeof(r->why), "placeholder '%.*s': a "
		    "step's results are steps.%.*s.results", wlen, path,
		    m > 100 ? 100 : (int)m, rest);
	else
		return 0;
	return -1;
}

static int
tmpl_check_path(const char *path, size_t len, void *arg)
{
	/* A step's; a results route's scope is the finished task's. */
	static const char *const step_roots[] = { "context", "steps",
	    "attempt", "service", "env", NULL };
	static const char *const route_roots[] = { "context", "steps",
	    "task", NULL };
	struct tmpl_refs	*r = arg;
	struct tmpl		*t = r->p->t;
	struct tmpl_byname	*found;
	const char *const	*roots = r->route ? route_roots : step_roots;
	size_t			 n, i;
	char			 name[256];
	bool			 optional = len > 0 && path[len - 1] == '?';

	if (optional)
		len--;
	/* "a..b", ".a" and "a." name nothing, ever. */
	if (len == 0 || path[0] == '.' || path[len - 1] == '.' ||
	    memmem(path, len, "..", 2) != NULL) {
		snprintf(r->why, sizeof(r->why), "placeholder '%.*s' has an "
		    "empty segment", (int)(len > 200 ? 200 : len), path);
		return -1;
	}
	n = strcspn(path, ".");
	if (n > len)
		n = len;
	for (i = 0; roots[i] != NULL; i++)
		if (tmpl_seg_is(path, n, roots[i]))
			break;
	if (roots[i] == NULL) {
		snprintf(r->why, sizeof(r->why), "placeholder '%.*s' names "
		    "none of %s", (int)(len > 200 ? 200 : len), path, r->route ?
		    "context, steps, task" :
		    "context, steps, attempt, service, env");
		return -1;
	}
	if (strcmp(roots[i], "env") == 0 && n == len) {
		snprintf(r->why, sizeof(r->why), "placeholder 'env' names no "
		    "environment variable (env.NAME)");
		return -1;
	}
	/* (An optional placeholder renders as nothing, as it always did.) */
	if (!optional && r->step != NULL &&
	    tmpl_check_input(r, path, len) == -1)
		return -1;
	if (strcmp(roots[i], "steps") != 0)
		return 0;
	/* steps.NAME... */
	path += n + 1;
	len = len > n ? len - n - 1 : 0;
	n = strcspn(path, ".");
	if (n > len)
		n = len;
	snprintf(name, sizeof(name), "%.*s", (int)n, path);
	found = bsearch(name, r->p->byname, t->nsteps, sizeof(*r->p->byname),
	    tmpl_cmp_name);
	if (found == NULL)
		snprintf(r->why, sizeof(r->why), "placeholder names step "
		    "'%.200s', which is not in this template", name);
	else if (!r->ancestor[found->idx])
		snprintf(r->why, sizeof(r->why), "placeholder reads step "
		    "'%.200s', which it does not depend on (depends_on_steps)",
		    name);
	else
		return 0;
	return -1;
}

static int
tmpl_check_refs_in(json_t *v, struct tmpl_refs *r)
{
	const char	*key;
	json_t		*item;
	size_t		 i, mark;
	char		 index[24];
	int		 rc;

	if (json_is_string(v)) {
		rc = render_each_path(json_string_value(v), tmpl_check_path, r,
		    r->why, sizeof(r->why));
		return rc == 0 ? 0 : -1;
	}
	if (json_is_object(v)) {
		json_object_foreach(v, key, item) {
			mark = tmpl_refs_push(r, key);
			if (tmpl_check_refs_in(item, r) == -1)
				return -1;	/* (r->at says where) */
			r->at[mark] = '\0';
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, item) {
			snprintf(index, sizeof(index), "%zu", i);
			mark = tmpl_refs_push(r, index);
			if (tmpl_check_refs_in(item, r) == -1)
				return -1;
			r->at[mark] = '\0';
		}
	}
	return 0;
}

static int
tmpl_check_refs(struct tmpl_parse *p)
{
	struct tmpl		*t = p->t;
	struct tmpl_refs	 r;
	yaml_node_t		*at;
	size_t			*stack, sp, i, k, v, w;
	int			 rc = 0;

	r.p = p;
	r.route = false;
	r.ancestor = xcalloc(t->nsteps, sizeof(*r.ancestor));
	stack = xcalloc(t->nsteps, sizeof(*stack));
	for (i = 0; i < t->nsteps && rc == 0; i++) {
		/* An http step's placeholders are checked, and a step that
		 * reads results gets those of its ancestors. */
		if (!t->steps[i].reads_results &&
		    strcmp(t->steps[i].handler, "http") != 0)
			continue;
		memset(r.ancestor, 0, t->nsteps * sizeof(*r.ancestor));
		sp = 0;
		stack[sp++] = i;
		while (sp > 0) {
			v = stack[--sp];
			for (k = 0; k < t->steps[v].ndeps; k++) {
				w = t->steps[v].dep_idx[k];
				if (!r.ancestor[w]) {
					r.ancestor[w] = true;
					stack[sp++] = w;
				}
			}
		}
		if (t->steps[i].reads_results) {
			t->steps[i].ancestors = json_array();
			for (w = 0; w < t->nsteps; w++)
				if (r.ancestor[w])
					json_array_append_new(
					    t->steps[i].ancestors,
					    json_string(t->steps[w].name));
		}
		if (strcmp(t->steps[i].handler, "http") != 0)
			continue;
		r.step = &t->steps[i];
		r.why[0] = r.at[0] = '\0';
		if (tmpl_check_refs_in(t->steps[i].handler_config, &r) == 0)
			continue;
		/* At the string's line, else the step's name. */
		if ((at = yt_pointer(p->doc, yt_lookup(p->doc, yt_item(p->doc,
		    p->steps_node, i), "handler_config"), r.at)) != NULL)
			rc = yt_error(p->doc, at, "step '%s': %s",
			    t->steps[i].name, r.why);
		else
			rc = yt_errorl(p->doc, tmpl_name_line(p, i), "step "
			    "'%s': %s", t->steps[i].name, r.why);
	}
	/* The results route answers once the task is complete: it may read
	 * any step. */
	if (rc == 0 && t->route_results_body != NULL) {
		r.route = true;
		r.step = NULL;
		r.why[0] = '\0';
		snprintf(r.at, sizeof(r.at), "/routes/results/body");
		for (i = 0; i < t->nsteps; i++)
			r.ancestor[i] = true;
		if (tmpl_check_refs_in(t->route_results_body, &r) == -1)
			rc = yt_error(p->doc, yt_pointer(p->doc, yt_root(p->doc),
			    r.at), "routes.results.body: %s", r.why);
	}
	free(stack);
	free(r.ancestor);
	return rc;
}

static int
tmpl_resolve(struct tmpl_parse *p)
{
	struct tmpl		*t = p->t;
	struct tmpl_step	*st;
	struct tmpl_byname	*found;
	size_t			 i, k;

	for (i = 0; i < t->nsteps; i++) {
		st = &t->steps[i];
		st->dep_idx = xcalloc(st->ndeps, sizeof(*st->dep_idx));
		for (k = 0; k < st->ndeps; k++) {
			found = bsearch(st->deps[k], p->byname, t->nsteps,
			    sizeof(*p->byname), tmpl_cmp_name);
			if (found == NULL)
				return yt_errorl(p->doc, p->dep_lines[i][k],
				    "step '%s' depends on unknown step '%s'",
				    st->name, st->deps[k]);
			if (found->idx == i)
				return yt_errorl(p->doc, p->dep_lines[i][k],
				    "step '%s' depends on itself", st->name);
			st->dep_idx[k] = found->idx;
		}
	}
	return 0;
}

/*
 * Depth-first search along dependencies, with an explicit stack so that a
 * long chain cannot exhaust the C stack.  On a back edge the stack holds the
 * cycle, each step depending on the next; it is printed the other way, in
 * execution order, starting from the step that comes first in the file.
 */
static int
tmpl_check_cycles(struct tmpl_parse *p)
{
	struct tmpl	*t = p->t;
	enum { WHITE, GREY, BLACK } *color;
	struct { size_t step, next; } *stack;
	size_t		 sp, root, v, w, c, len, first, i, size, o;
	char		*msg;
	int		 rc = 0, line;

	color = xcalloc(t->nsteps, sizeof(*color));
	stack = xcalloc(t->nsteps, sizeof(*stack));
	for (root = 0; root < t->nsteps && rc == 0; root++) {
		if (color[root] != WHITE)
			continue;
		sp = 0;
		stack[sp].step = root;
		stack[sp++].next = 0;
		color[root] = GREY;
		while (sp > 0 && rc == 0) {
			v = stack[sp - 1].step;
			if (stack[sp - 1].next == t->steps[v].ndeps) {
				color[v] = BLACK;
				sp--;
				continue;
			}
			w = t->steps[v].dep_idx[stack[sp - 1].next++];
			if (color[w] == WHITE) {
				color[w] = GREY;
				stack[sp].step = w;
				stack[sp++].next = 0;
				continue;
			}
			if (color[w] == BLACK)
				continue;
			/* w is grey: stack[c..sp-1] is the cycle. */
			for (c = 0; stack[c].step != w; c++)
				;
			len = sp - c;
			for (first = c, i = c; i < sp; i++)
				if (stack[i].step < stack[first].step)
					first = i;
			/* Sized first: a cycle may run through every step. */
			for (size = sizeof("cycle:"), i = 0; i <= len; i++)
				size += strlen(t->steps[stack[c + (first - c +
				    len - i % len) % len].step].name) + 4;
			msg = xmalloc(size);
			o = (size_t)snprintf(msg, size, "cycle:");
			for (i = 0; i <= len; i++) {
				v = stack[c + (first - c + len - i % len) %
				    len].step;
				o += (size_t)snprintf(msg + o, size - o,
				    "%s %s", i > 0 ? " ->" : "",
				    t->steps[v].name);
			}
			line = tmpl_name_line(p, stack[first].step);
			rc = yt_errorl(p->doc, line, "%s", msg);
			free(msg);
		}
	}
	free(stack);
	free(color);
	return rc;
}

#define ROUTE_ID	"/{task_id}"

/* A route path is absolute, outside the API's own namespaces, and (for
 * status and results) ends in the task id segment. */
static int
tmpl_check_route(struct tmpl_parse *p, const yaml_node_t *node,
    const char *path, bool with_id, const char *what)
{
	const char	*seg;
	size_t		 len;
	int		 n;

	if (path == NULL)
		return 0;
	len = strlen(path);
	if (path[0] != '/' || strcmp(path, "/v1") == 0 ||
	    strncmp(path, "/v1/", 4) == 0 || strcmp(path, "/metrics") == 0 ||
	    strncmp(path, "/health/", 8) == 0)
		return yt_error(p->doc, node, "routes.%s.path: \"%s\" must "
		    "start with / and stay outside /v1, /health and /metrics",
		    what, path);
	if (with_id && (len <= strlen(ROUTE_ID) ||
	    strcmp(path + len - strlen(ROUTE_ID), ROUTE_ID) != 0 ||
	    strchr(path, '{') != path + len - strlen(ROUTE_ID) + 1))
		return yt_error(p->doc, node, "routes.%s.path: \"%s\" must "
		    "end in /{task_id}", what, path);
	if (!with_id && strchr(path, '{') != NULL)
		return yt_error(p->doc, node, "routes.%s.path: \"%s\" takes "
		    "no placeholder", what, path);
	for (seg = path, n = 0; *seg != '\0'; seg += len) {
		seg += strspn(seg, "/");
		if ((len = strcspn(seg, "/")) > TMPL_NAME_MAX || (len > 0 &&
		    ++n > TMPL_PATH_SEGS))
			return yt_error(p->doc, node, "routes.%s.path: at most "
			    "%d segments of at most %d bytes each", what,
			    TMPL_PATH_SEGS, TMPL_NAME_MAX);
	}
	return 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A route path as requests' paths are matched (api.c): decoded ("%20" is
 * a space; a '%' without two hex digits stays), with no empty segment
 * ("/a//b/" is "/a/b"; "/" stays "/").  -1 when it decodes to a NUL or
 * to bytes that are not UTF-8, which no request's path matches. */
static int
route_canon(char *path)
{
	char	*r, *w, c;

	if (path == NULL)
		return 0;
	for (r = w = path; *r != '\0'; r++) {
		c = *r;
		if (c == '%' && hexval(r[1]) >= 0 && hexval(r[2]) >= 0) {
			c = (char)(hexval(r[1]) * 16 + hexval(r[2]));
			if (c == '\0')
				return -1;
			r += 2;
		}
		if (c != '/' || (w == path || w[-1] != '/'))
			*w++ = c;
	}
	if (w - path > 1 && w[-1] == '/')
		w--;
	*w = '\0';
	return utf8_valid(path, strlen(path)) ? 0 : -1;
}

/* routes.WHAT.KEY's node, where its errors point; the root's without. */
static const yaml_node_t *
route_node(struct tmpl_parse *p, const yaml_node_t *root, const char *what,
    const char *key)
{
	const yaml_node_t	*n;

	n = yt_lookup(p->doc, yt_lookup(p->doc, yt_lookup(p->doc, root,
	    "routes"), what), key);
	return n != NULL ? n : root;
}

static int
tmpl_check_routes(struct tmpl_parse *p, const yaml_node_t *root)
{
	struct tmpl	*t = p->t;
	char		*paths[] = { t->route_create, t->route_status,
			    t->route_results };
	const char	*what[] = { "create", "status", "results" };
	size_t		 i;

	for (i = 0; i < 3; i++) {
		if (route_canon(paths[i]) == -1)
			return yt_error(p->doc, route_node(p, root, what[i],
			    "path"), "routes.%s.path: decodes to a NUL or to "
			    "bytes that are not UTF-8", what[i]);
		if (tmpl_check_route(p, route_node(p, root, what[i], "path"),
		    paths[i], i > 0, what[i]) == -1)
			return -1;
	}
	if (t->route_results_body != NULL && t->route_results == NULL)
		return yt_error(p->doc, route_node(p, root, "results", "body"),
		    "routes.results.body needs routes.results.path");
	if (t->route_status != NULL && t->route_results != NULL &&
	    strcmp(t->route_status, t->route_results) == 0)
		return yt_error(p->doc, route_node(p, root, "results", "path"),
		    "routes.status.path and routes.results.path are the same "
		    "path");
	return 0;
}


/* The absolute directory of a template file, which relative programs of
 * its exec steps are found from; NULL when the name is no file's. */
static char *
tmpl_dir(const char *path)
{
	char	*copy, *dir;

	copy = xstrdup(path);
	dir = realpath(dirname(copy), NULL);
	free(copy);
	return dir;
}

/* Whether s holds a control character or one of bad. */
static bool
tmpl_id_bad(const char *s, const char *bad)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f ||
		    strchr(bad, *s) != NULL)
			return true;
	return false;
}

static struct tmpl *
tmpl_parse_doc(struct yt_doc *doc, const struct tmpl_defaults *defs)
{
	struct tmpl_parse	 p;
	struct tmpl		*t;
	yaml_node_t		*root, *node;
	const char		*text;
	size_t			 i, k;
	int			 rc = -1;

	if ((root = yt_root(doc)) == NULL) {
		yt_errorl(doc, 1, "empty template");
		return NULL;
	}
	memset(&p, 0, sizeof(p));
	p.doc = doc;
	p.t = t = xcalloc(1, sizeof(*t));
	t->path = xstrdup(yt_name(doc));
	text = yt_source(doc, &t->sourcelen);
	t->source = xmalloc(t->sourcelen + 1);
	memcpy(t->source, text, t->sourcelen + 1);
	p.dir = tmpl_dir(t->path);
	yt_defaults(tmpl_keys, YT_NELEM(tmpl_keys), t);

	if (yt_decode(doc, root, tmpl_keys, YT_NELEM(tmpl_keys), t, &p,
	    "template") == -1)
		goto done;
	/* Empty strings would make unaddressable or ambiguous templates. */
	if (*t->name == '\0' || *t->namespace == '\0' || *t->version == '\0') {
		yt_error(doc, root, "name, namespace_name and version must "
		    "not be empty");
		goto done;
	}
	if (strlen(t->name) > TMPL_NAME_MAX ||
	    strlen(t->namespace) > TMPL_NAME_MAX) {
		yt_error(doc, root, "name and namespace_name may be at most %d "
		    "bytes (they are parts of API paths)", TMPL_NAME_MAX);
		goto done;
	}
	/* tasker-ctl reads NAMESPACE/NAME@VERSION (a name may hold '/', as
	 * Tasker's "api_task/integration_yaml_example" does); a control
	 * character would reach logs and terminals. */
	if (tmpl_id_bad(t->name, "") || tmpl_id_bad(t->namespace, "/@") ||
	    tmpl_id_bad(t->version, " /@")) {
		yt_error(doc, root, "name, namespace_name and version may not "
		    "hold control characters, nor namespace_name '/' or '@', "
		    "nor version a space, '/' or '@'");
		goto done;
	}
	/* (The key's line: a value of several lines starts below it.) */
	for (i = 0; i < YT_NELEM(tmpl_unheeded); i++)
		for (k = 0; k < yt_len(root); k++)
			if ((node = yt_key(doc, root, k)) != NULL &&
			    yt_text(node) != NULL &&
			    strcmp(yt_text(node), tmpl_unheeded[i].key) == 0)
				t->unheeded_line[i] = yt_line(node);
	if (tmpl_load_steps(&p, defs) == -1 || tmpl_check_names(&p) == -1 ||
	    tmpl_resolve(&p) == -1 || tmpl_check_cycles(&p) == -1 ||
	    tmpl_check_refs(&p) == -1 || tmpl_check_handlers(&p) == -1 ||
	    tmpl_check_routes(&p, root) == -1)
		goto done;
	if ((t->definition = yt_json(doc, root)) == NULL)
		goto done;
	/* Keep the stored copy's version the text we index by: JSON would
	 * otherwise read `version: 1.0` as the number 1.0. */
	if (json_object_get(t->definition, "version") != NULL)
		json_object_set_new(t->definition, "version",
		    json_string(t->version));
	rc = 0;
done:
	if (p.dep_lines != NULL) {
		for (i = 0; i < t->nsteps; i++)
			free(p.dep_lines[i]);
		free(p.dep_lines);
	}
	free(p.byname);
	free(p.dir);
	if (rc == -1) {
		tmpl_free(t);
		return NULL;
	}
	return t;
}

struct tmpl *
tmpl_load_buffer(const char *name, const char *buf, size_t len,
    const struct tmpl_defaults *defs, char *err, size_t errlen)
{
	struct yt_doc	*doc;
	struct tmpl	*t;

	if ((doc = yt_load_buffer(name, buf, len, err, errlen)) == NULL)
		return NULL;
	t = tmpl_parse_doc(doc, defs);
	yt_free(doc);
	return t;
}

struct tmpl *
tmpl_load_file(const char *path, const struct tmpl_defaults *defs,
    char *err, size_t errlen)
{
	struct yt_doc	*doc;
	struct tmpl	*t;

	if ((doc = yt_load_file(path, err, errlen)) == NULL)
		return NULL;
	t = tmpl_parse_doc(doc, defs);
	yt_free(doc);
	return t;
}

void
tmpl_free(struct tmpl *t)
{
	struct tmpl_step	*st;
	size_t			 i, k;

	if (t == NULL)
		return;
	for (i = 0; i < t->nsteps; i++) {
		st = &t->steps[i];
		yt_release(step_keys, YT_NELEM(step_keys), st);
		free(st->handler);
		for (k = 0; k < st->ndeps; k++)
			free(st->deps[k]);
		free(st->deps);
		free(st->dep_idx);
		json_decref(st->ancestors);
	}
	free(t->steps);
	json_decref(t->schema);	/* read by tmpl_key_schema, not the table */
	yt_release(tmpl_keys, YT_NELEM(tmpl_keys), t);
	json_decref(t->definition);
	free(t->source);
	free(t->path);
	free(t);
}

ssize_t
tmpl_step_index(const struct tmpl *t, const char *name)
{
	size_t	i;

	for (i = 0; i < t->nsteps; i++)
		if (strcmp(t->steps[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

/* Registry. */

/* Why execve() would refuse path: NULL if it would not, "" if there is
 * no such program. */
static const char *
tmpl_not_runnable(const char *path)
{
	struct stat	 st;
	char		 head[4];
	ssize_t		 n;
	int		 fd;

	if (path == NULL || stat(path, &st) == -1 || access(path, X_OK) == -1)
		return "";
	if (!S_ISREG(st.st_mode))
		return "is not a file";
	/* A script needs its #! line: execve() does not fall back to sh. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;	/* execute-only: the kernel will judge */
	n = read(fd, head, sizeof(head));
	close(fd);
	if (n >= 2 && memcmp(head, "#!", 2) == 0)
		return NULL;
	if (n == 4 && memcmp(head, "\177ELF", 4) == 0)
		return NULL;
	return "is neither a binary nor a script starting with #!";
}

char *
tmpl_registry_warnings(const struct tmpl_registry *reg)
{
	const struct tmpl	*t;
	const struct tmpl_step	*st;
	const char		*name, *why;
	char			*found, *line, *out = NULL;
	size_t			 i, k;

	for (i = 0; i < reg->n; i++) {
		t = reg->items[i];
		for (k = 0; k < YT_NELEM(tmpl_unheeded); k++) {
			if (t->unheeded_line[k] == 0)
				continue;
			xasprintf(&line, "%s:%d: %s: %s", t->path,
			    t->unheeded_line[k], tmpl_unheeded[k].key,
			    tmpl_unheeded[k].why);
			errbuf_line(&out, line);
			free(line);
		}
		for (k = 0; k < t->nsteps; k++) {
			st = &t->steps[k];
			if (strcmp(st->handler, "exec") == 0) {
				name = json_string_value(json_array_get(
				    json_object_get(st->handler_config,
				    "command"), 0));
				found = exec_find_program(name,
				    json_object_get(st->handler_config,
				    "env"));
				if ((why = tmpl_not_runnable(found)) == NULL) {
					free(found);
					continue;
				}
				free(found);
				if (*why == '\0')
					xasprintf(&line, "%s:%d: step \"%s\": no "
					    "program %s to run%s%s", t->path,
					    st->line, st->name, name,
					    strchr(name, '/') ? "" : " in ",
					    strchr(name, '/') ? "" :
					    exec_path_name(json_object_get(
					    st->handler_config, "env")));
				else
					xasprintf(&line, "%s:%d: step \"%s\": "
					    "program %s %s", t->path, st->line,
					    st->name, name, why);
			} else if (strcmp(st->handler, "plugin") == 0) {
				/* A bare name is for the dynamic linker to
				 * find; only a path can be looked at. */
				name = json_string_value(json_object_get(
				    st->handler_config, "library"));
				if (strchr(name, '/') == NULL ||
				    access(name, R_OK) == 0)
					continue;
				xasprintf(&line, "%s:%d: step \"%s\": no "
				    "library %s to load", t->path, st->line,
				    st->name, name);
			} else
				continue;
			errbuf_line(&out, line);
			free(line);
		}
	}
	return out;
}

static int
tmpl_is_yaml(const char *name)
{
	size_t	len = strlen(name);

	/* Dot files are editor and VCS droppings, not templates.  Any case
	 * (a file saved as X.YAML was skipped without a word, though
	 * template validate loads it). */
	if (name[0] == '.')
		return 0;
	return (len > 5 && strcasecmp(name + len - 5, ".yaml") == 0) ||
	    (len > 4 && strcasecmp(name + len - 4, ".yml") == 0);
}

static bool
route_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* Another template publishing one of t's routes (versions of one template
 * may share them: the highest version serves). */
static struct tmpl *
tmpl_route_clash(struct tmpl_registry *reg, const struct tmpl *t)
{
	struct tmpl	*o;
	size_t		 i;

	for (i = 0; i < reg->n; i++) {
		o = reg->items[i];
		if (strcmp(o->namespace, t->namespace) == 0 &&
		    strcmp(o->name, t->name) == 0)
			continue;
		/* (A status and a results route are both GETs of
		 * /.../{task_id}: one path cannot be both.) */
		if (route_eq(o->route_create, t->route_create) ||
		    route_eq(o->route_status, t->route_status) ||
		    route_eq(o->route_results, t->route_results) ||
		    route_eq(o->route_status, t->route_results) ||
		    route_eq(o->route_results, t->route_status))
			return o;
	}
	return NULL;
}

static const char *
route_of(const struct tmpl *t, enum tmpl_route kind)
{
	switch (kind) {
	case ROUTE_CREATE:
		return t->route_create;
	case ROUTE_STATUS:
		return t->route_status;
	case ROUTE_RESULTS:
		return t->route_results;
	default:
		return NULL;
	}
}

struct tmpl *
tmpl_registry_route(const struct tmpl_registry *reg, enum tmpl_route kind,
    const char *path, const char **id)
{
	struct tmpl	*t, *best = NULL;
	const char	*r;
	size_t		 i, plen;

	for (i = 0; i < reg->n; i++) {
		t = reg->items[i];
		if ((r = route_of(t, kind)) == NULL)
			continue;
		if (kind == ROUTE_CREATE) {
			if (strcmp(r, path) != 0)
				continue;
		} else {
			/* ".../{task_id}": the prefix, then one segment. */
			plen = strlen(r) - strlen("{task_id}");
			if (strncmp(r, path, plen) != 0 ||
			    path[plen] == '\0' ||
			    strchr(path + plen, '/') != NULL)
				continue;
			if (id != NULL)
				*id = path + plen;
		}
		if (best == NULL || tmpl_version_cmp(t->version,
		    best->version) > 0)
			best = t;
	}
	return best;
}

struct tmpl_registry *
tmpl_registry_new(const struct tmpl_defaults *defs)
{
	struct tmpl_registry	*reg = xcalloc(1, sizeof(*reg));

	reg->defaults = *defs;
	return reg;
}

int
tmpl_registry_add(struct tmpl_registry *reg, struct tmpl *t, char *err,
    size_t errlen)
{
	struct tmpl	*o = NULL;
	size_t		 j;

	for (j = 0; j < reg->n; j++) {
		o = reg->items[j];
		if (strcmp(o->namespace, t->namespace) == 0 &&
		    strcmp(o->name, t->name) == 0 &&
		    tmpl_version_cmp(o->version, t->version) == 0)
			break;
	}
	if (j < reg->n) {
		/* 1.0 and 1.0.0 (or 1.0.0+a and 1.0.0+b) rank alike: which
		 * one serves would be chance. */
		if (strcmp(o->version, t->version) == 0)
			errbuf_set(err, errlen, "%s: template %s/%s version %s "
			    "is already defined in %s", t->path, t->namespace,
			    t->name, t->version, o->path);
		else
			errbuf_set(err, errlen, "%s: template %s/%s version %s "
			    "is already defined in %s, as %s", t->path,
			    t->namespace, t->name, t->version, o->path,
			    o->version);
		return -1;
	}
	if ((o = tmpl_route_clash(reg, t)) != NULL) {
		errbuf_set(err, errlen, "%s: a route of template %s/%s is "
		    "already published by %s", t->path, t->namespace, t->name,
		    o->path);
		return -1;
	}
	reg->items = xreallocarray(reg->items, reg->n + 1,
	    sizeof(*reg->items));
	reg->items[reg->n++] = t;
	return 0;
}

struct tmpl_registry *
tmpl_registry_load(const char *dir, const struct tmpl_defaults *defs,
    char **errs)
{
	struct tmpl_registry	*reg;
	struct tmpl		*t;
	struct dirent		*de;
	DIR			*d;
	char			**names = NULL, *path, *line, err[1024];
	size_t			 n = 0, i;
	bool			 failed = false;

	if ((d = opendir(dir)) == NULL) {
		xasprintf(&line, "%s: cannot open directory: %s", dir,
		    strerror(errno));
		errbuf_line(errs, line);
		free(line);
		return NULL;
	}
	while ((de = readdir(d)) != NULL) {
		if (!tmpl_is_yaml(de->d_name))
			continue;
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), tmpl_cmp_names);

	reg = tmpl_registry_new(defs);
	for (i = 0; i < n; i++) {
		xasprintf(&path, "%s%s%s", dir, dir[0] != '\0' &&
		    dir[strlen(dir) - 1] == '/' ? "" : "/", names[i]);
		free(names[i]);
		t = tmpl_load_file(path, defs, err, sizeof(err));
		free(path);
		if (t == NULL) {
			errbuf_line(errs, err);
			failed = true;
			continue;
		}
		if (tmpl_registry_add(reg, t, err, sizeof(err)) == -1) {
			errbuf_line(errs, err);
			tmpl_free(t);
			failed = true;
		}
	}
	free(names);
	if (failed) {
		tmpl_registry_free(reg);
		return NULL;
	}
	return reg;
}

void
tmpl_registry_free(struct tmpl_registry *reg)
{
	size_t	i;

	if (reg == NULL)
		return;
	for (i = 0; i < reg->n; i++)
		tmpl_free(reg->items[i]);
	free(reg->items);
	free(reg);
}

struct tmpl *
tmpl_registry_find(const struct tmpl_registry *reg, const char *namespace,
    const char *name, const char *version)
{
	struct tmpl	*t, *best = NULL;
	size_t		 i;

	if (namespace == NULL)
		namespace = "default";
	for (i = 0; i < reg->n; i++) {
		t = reg->items[i];
		if (strcmp(t->namespace, namespace) != 0 ||
		    strcmp(t->name, name) != 0)
			continue;
		/* A version as spelt, else one that ranks alike ("1.0" for
		 * 1.0.0): the registry holds no two of those. */
		if (version != NULL) {
			if (strcmp(t->version, version) == 0)
				return t;
			if (tmpl_version_cmp(t->version, version) == 0)
				best = t;
			continue;
		}
		if (best == NULL || tmpl_version_cmp(t->version,
		    best->version) > 0)
			best = t;
	}
	return best;
}

static bool
tmpl_all_digits(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return len > 0;
}

/*
 * Segment by segment: two numbers compare as numbers (by length once leading
 * zeros are gone, so any length works), anything else as bytes.  A missing
 * segment counts as "0": 1.0 equals 1.0.0.
 */
static int
tmpl_segments_cmp(const char *a, const char *b)
{
	const char	*sa, *sb;
	size_t		 la, lb;
	int		 c;

	while (*a != '\0' || *b != '\0') {
		sa = *a != '\0' ? a : "0";
		sb = *b != '\0' ? b : "0";
		la = strcspn(sa, ".");
		lb = strcspn(sb, ".");
		if (tmpl_all_digits(sa, la) && tmpl_all_digits(sb, lb)) {
			while (la > 1 && *sa == '0') {
				sa++;
				la--;
			}
			while (lb > 1 && *sb == '0') {
				sb++;
				lb--;
			}
			if (la != lb)
				return la < lb ? -1 : 1;
			c = memcmp(sa, sb, la);
		} else {
			c = memcmp(sa, sb, la < lb ? la : lb);
			if (c == 0 && la != lb)
				c = la < lb ? -1 : 1;
		}
		if (c != 0)
			return c < 0 ? -1 : 1;
		if (*a != '\0') {
			a += strcspn(a, ".");
			if (*a == '.')
				a++;
		}
		if (*b != '\0') {
			b += strcspn(b, ".");
			if (*b == '.')
				b++;
		}
	}
	return 0;
}

/*
 * As semantic versioning has it: the release before a hyphen compares
 * first (by segments), and a version with a pre-release part ("-rc1")
 * comes before the same release without one; build metadata ("+...") does
 * not count.
 */
int
tmpl_version_cmp(const char *a, const char *b)
{
	char	*ca = xstrdup(a), *cb = xstrdup(b), *pa, *pb;
	int	 c;

	ca[strcspn(ca, "+")] = '\0';
	cb[strcspn(cb, "+")] = '\0';
	if ((pa = strchr(ca, '-')) != NULL)
		*pa++ = '\0';
	if ((pb = strchr(cb, '-')) != NULL)
		*pb++ = '\0';
	if ((c = tmpl_segments_cmp(ca, cb)) == 0 && (pa != NULL ||
	    pb != NULL))
		c = pa == NULL ? 1 : pb == NULL ? -1 : tmpl_segments_cmp(pa, pb);
	free(ca);
	free(cb);
	return c;
}
