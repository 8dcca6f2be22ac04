/* supervisor.h - the supervisor's process-wide state (see supervisor.c). */
#ifndef TASKERD_SUPERVISOR_H
#define TASKERD_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>
#include <event2/event.h>

#include "config.h"
#include "template.h"

struct supervisor {
	struct event_base	*base;
	struct config		*conf;		/* owned; replaced on reload */
	struct tmpl_registry	*templates;	/* owned; replaced on reload */
	char			*node_id;	/* lease owner name */
	char			*dsn;		/* the database's: the config's,
						 * or the embedded server's */
	char			*worker_path;	/* taskerd-worker to exec */
	bool			 stopping;	/* SIGTERM/SIGINT seen */
	bool			 ready;		/* READY=1 sent */
};

extern struct supervisor sv;

/* Run the daemon until SIGTERM/SIGINT.  Takes ownership of conf and reg. */
int	supervisor_run(struct config *, struct tmpl_registry *,
	    const char *argv0);

/* The loaded template with this database id (from the files, or an older
 * version loaded as stored: oldversions.c), or NULL. */
const struct tmpl *supervisor_template(int64_t db_id);

/* SIGTERM's and SIGINT's handler until the loop runs: the process ends
 * by the signal. */
void	stop_during_start(int);

/* Readiness changed (db, workers, listener): maybe tell systemd. */
void	supervisor_check_ready(void);

#endif
