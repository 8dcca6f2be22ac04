/*
 * template.h - workflow templates: loading from YAML, validation, registry.
 *
 * A template file is validated whole: unknown keys, missing names, duplicate
 * step names, unknown dependencies and cycles are errors reported as
 * "FILE:LINE: reason".  The registry is immutable once built; reload builds a
 * new one and swaps it in only when every file loaded.
 */
#ifndef TASKERD_TEMPLATE_H
#define TASKERD_TEMPLATE_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <jansson.h>
#include "backoff.h"

/* Names and route paths are parts of API paths, which the API reads in
 * at most TMPL_PATH_SEGS segments of API_SEG_MAX bytes (api.c): a name
 * or a route path segment of TMPL_NAME_MAX bytes, percent-encoded, fits. */
#define TMPL_NAME_MAX	128
#define TMPL_PATH_SEGS	8

/* Each step that reads results carries the names of all the steps it
 * depends on, directly or not (tmpl_step.ancestors), and every claim
 * sends them all: in a chain that is quadratic in the steps (a 10,000
 * step one took 4.4 GB to load).  A template has at most this many. */
#define TMPL_MAX_STEPS	1000

enum identity_strategy { IDENTITY_ALWAYS_UNIQUE, IDENTITY_STRICT,
	IDENTITY_CALLER_PROVIDED };

/* Defaults applied to keys a template leaves out. */
struct tmpl_defaults {
	int		retry_limit;	/* total attempts */
	int64_t		timeout_ms;
	struct backoff	backoff;
};

struct tmpl_step {
	char		*name;
	char		*description;		/* NULL when absent */
	char		*handler;		/* "http", "noop", "exec", "plugin" */
	char		*handler_class;		/* plugin symbol; NULL when absent */
	char		*dependent_system;	/* NULL when absent */
	char	       **deps;			/* names, as written */
	size_t		 ndeps;
	size_t		*dep_idx;		/* indexes into tmpl->steps */
	bool		 retryable;
	int		 retry_limit;		/* total attempts, >= 1 */
	int64_t		 timeout_ms;
	struct backoff	 backoff;
	json_t		*handler_config;	/* object; {} when absent */
	/* The handler may read other steps' results from its input: not
	 * noop, and not an http step whose config names no "steps". */
	bool		 reads_results;
	/* Then the names of the steps whose results it gets: those it
	 * depends on, directly or through others (a JSON array; else NULL). */
	json_t		*ancestors;
	int		 line;			/* where the step starts */
};

struct tmpl {
	char		*name;
	char		*namespace;		/* "default" when absent */
	char		*version;		/* "0.1.0" when absent */
	char		*description;
	char		*default_dependent_system;
	enum identity_strategy identity;
	json_t		*schema;		/* NULL when absent */
	json_t		*definition;		/* the whole file as JSON */
	char		*source;		/* the file's text */
	size_t		 sourcelen;
	/* Routes the template publishes beside /v1 (NULL: none). */
	char		*route_create;		/* POST path */
	char		*route_context_from;	/* body member holding the
						 * context; NULL: whole body */
	char		*route_status;		/* GET ".../{task_id}" */
	char		*route_results;		/* GET ".../{task_id}" */
	json_t		*route_results_body;	/* rendered against {context,
						 * steps, task} once complete */
	struct tmpl_step *steps;		/* in file order */
	size_t		 nsteps;
	char		*path;
	/* Lines of Tasker's keys that would change what runs there and are
	 * not read here (tmpl_unheeded); 0: absent. */
	int		 unheeded_line[2];
	int64_t		 db_id;			/* set by the daemon; 0 until then */
};

/* Load and validate one file.  On error returns NULL and writes
 * "PATH:LINE: reason" (the first problem found) into err. */
struct tmpl *tmpl_load_file(const char *path, const struct tmpl_defaults *,
	    char *err, size_t errlen);
/* Same, from a buffer; name is used in messages in place of the path. */
struct tmpl *tmpl_load_buffer(const char *name, const char *buf, size_t len,
	    const struct tmpl_defaults *, char *err, size_t errlen);
void	tmpl_free(struct tmpl *);

/* Index of a step by name, or -1. */
ssize_t	tmpl_step_index(const struct tmpl *, const char *name);

/* A set of templates, normally one directory's *.yaml and *.yml files. */
struct tmpl_registry {
	struct tmpl	**items;
	size_t		  n;
	struct tmpl_defaults defaults;	/* the step defaults it was loaded with */
};

/*
 * Load every *.yaml / *.yml in dir (sorted by file name).  Returns NULL if
 * any file fails or two files declare the same namespace/name/version; every
 * error line is appended to *errs (a newline-separated string the caller
 * frees), so --check can report them all.
 */
struct tmpl_registry *tmpl_registry_load(const char *dir,
	    const struct tmpl_defaults *, char **errs);
void	tmpl_registry_free(struct tmpl_registry *);
/* An empty registry, and adding one template to it: 0, or -1 with the
 * reason in err (t stays the caller's) when t repeats another's namespace,
 * name and version (1.0 is 1.0.0) or takes one of its routes. */
struct tmpl_registry *tmpl_registry_new(const struct tmpl_defaults *);
int	tmpl_registry_add(struct tmpl_registry *, struct tmpl *, char *err,
	    size_t errlen);
/* What loads but will fail when it runs, as things stand on this machine:
 * an exec step whose program, or a plugin step whose library (a path), is
 * not there.  Not errors: a deployment may install them after the
 * templates.  NULL, or "FILE:LINE: reason" lines the caller frees. */
char	*tmpl_registry_warnings(const struct tmpl_registry *);

/* Find by namespace and name; version NULL picks the highest version
 * (dotted numeric comparison). */
struct tmpl *tmpl_registry_find(const struct tmpl_registry *,
	    const char *namespace, const char *name, const char *version);

/* The template whose route of this kind matches path, with the {task_id}
 * segment in *id (status/results); NULL when none. */
enum tmpl_route { ROUTE_CREATE, ROUTE_STATUS, ROUTE_RESULTS };
struct tmpl *tmpl_registry_route(const struct tmpl_registry *,
	    enum tmpl_route, const char *path, const char **id);

/* Compare dotted versions numerically ("1.10.0" > "1.9.2"). */
int	tmpl_version_cmp(const char *, const char *);

const char *tmpl_identity_name(enum identity_strategy);

#endif
