/* migrate.h - schema migrations (compiled in from sql/) and registration. */
#ifndef TASKERD_MIGRATE_H
#define TASKERD_MIGRATE_H

#include <stddef.h>
#include <libpq-fe.h>
#include "template.h"

struct migration {
	int		 version;
	const char	*name;
	const char	*sql;
};

extern const struct migration migrations[];
extern const int nmigrations;

/*
 * Apply every migration the database lacks, each in its own transaction,
 * under a session advisory lock so that several nodes starting at once
 * migrate exactly once.  Blocking: for start-up and --migrate only.
 * Returns the number applied, or -1 with a reason in err.
 */
int	migrate_run(PGconn *, char *err, size_t errlen);
/* From a stop signal's handler (async-signal-safe): ask the server to
 * cancel the migration statement running, if one is. */
void	migrate_cancel(void);

/*
 * Upsert every template of the registry (namespace, name, version,
 * definition) and set each one's db_id.  Blocking: start-up only; a reload
 * runs the same statement as a db job with the two helpers below.
 */
extern const char migrate_templates_sql[];
/* The statement's $1 for reg (malloc'd JSON). */
char	*migrate_templates_param(const struct tmpl_registry *);
/* Set db_ids from the statement's rows; -1 when one is missing. */
int	 migrate_templates_apply(struct tmpl_registry *, PGresult *);

int	migrate_register_templates(PGconn *, struct tmpl_registry *,
	    char *err, size_t errlen);

#endif
