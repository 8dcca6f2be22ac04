/*
 * config.h - the daemon's configuration file (YAML).
 *
 * Every key is a row of one table in config.c (name, type, default, doc);
 * unknown keys are errors.  A reload parses into a fresh struct config and
 * the caller swaps it in only on success.
 */
#ifndef TASKERD_CONFIG_H
#define TASKERD_CONFIG_H

#include <stdint.h>
#include <stddef.h>
#include "log.h"
#include "template.h"

struct service_config {
	char		*name;
	char		*base_url;		/* NULL when absent */
	int64_t		 timeout_ms;		/* 0: the step's own */
	int		 concurrency;		/* 0: unlimited */
	int		 breaker_failures;	/* 0: no breaker */
	int64_t		 breaker_cooldown_ms;
};

enum auth_scope { SCOPE_READ = 1, SCOPE_WRITE = 2, SCOPE_ADMIN = 4 };

struct auth_token {
	char		*name;
	unsigned char	 sha256[32];		/* of the bearer token */
	unsigned	 scopes;		/* enum auth_scope bits */
};

struct config {
	char		*path;

	char		*database_dsn;		/* NULL: embedded default */
	int		 database_pool;		/* connections */
	int64_t		 database_statement_timeout_ms;
	int64_t		 database_lock_timeout_ms;

	char		*http_listen;		/* "host:port" or "unix:PATH" */
	int64_t		 http_max_body;		/* bytes */
	int64_t		 http_max_headers;	/* bytes */
	int64_t		 http_timeout_ms;

	int		 workers_count;
	char		*workers_path;		/* taskerd-worker binary */
	char		*workers_user;		/* NULL: the supervisor's */
	int64_t		 workers_max_frame;	/* bytes */
	int64_t		 workers_ping_interval_ms;
	int64_t		 workers_ping_timeout_ms;

	char		*templates_dir;

	int		 scheduler_batch;	/* max steps per claim */
	int		 scheduler_prefetch;	/* claims beyond running steps */
	int64_t		 node_lease_ms;		/* claims outlive heartbeats */

	struct tmpl_defaults step_defaults;	/* steps.retry_limit, ... */

	char		*state_dir;
	char		*node_id;		/* NULL: hostname-pid */
	enum log_level	 log_level;

	struct service_config *services;
	size_t		 nservices;

	struct auth_token *tokens;		/* none: the API is open */
	size_t		 ntokens;
};

/* Parse path.  On error returns NULL and writes "PATH:LINE: reason". */
struct config *config_load(const char *path, char *err, size_t errlen);
/* Same from a buffer (tests); name stands for the path in messages. */
struct config *config_load_buffer(const char *name, const char *buf,
	    size_t len, char *err, size_t errlen);
/* Built-in defaults only (no file). */
struct config *config_default(void);
void	config_free(struct config *);
/* The keys whose values differ between a and b that only a restart
 * applies (a reload applies templates.dir, steps.* and log.level), as
 * "workers.count, database.pool"; NULL when none.  Tokens and services
 * are not among them. */
char	*config_restart_changes(const struct config *a,
	    const struct config *b);

const struct service_config *config_service(const struct config *,
	    const char *name);
/* The lock timeout the database connections use: database.lock_timeout,
 * or half of database.statement_timeout when it is not shorter (a lock
 * wait must end as a lock timeout, which holds back the locked task's
 * outcomes only; as a statement timeout it held back every task's). */
int64_t	 config_lock_timeout_ms(const struct config *);
/* What the config sets that works otherwise than it reads, one line
 * each, or NULL. */
char	*config_warnings(const struct config *);
/* The http steps of reg whose relative url no configured base_url makes
 * whole (each attempt would fail), one line each as
 * "FILE:LINE: step ...", or NULL. */
char	*config_service_warnings(const struct config *,
	    const struct tmpl_registry *);

#endif
