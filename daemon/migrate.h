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

/*
 * Upsert every template of the registry (namespace, name, version,
 * definition) and set each one's db_id.  Blocking: start-up only.
 */
int	migrate_register_templates(PGconn *, struct tmpl_registry *,
	    char *err, size_t errlen);

#endif
