/*
 * handler.h - step handlers run inside taskerd-worker.
 *
 * A handler gets the decoded RUN_STEP and fills the outcome (step_id,
 * lease_token and duration are filled by the caller).  It runs in the
 * worker's own process: it may block, and if it crashes only this worker
 * dies.  It must never write to stdout/stderr except through log.h.
 */
#ifndef TASKERD_HANDLER_H
#define TASKERD_HANDLER_H

#include "protocol.h"

struct handler {
	const char	*name;
	/* Called once at worker start; 0 or -1 (worker exits "cannot start"). */
	int		(*init)(void);
	void		(*run)(const struct proto_run_step *,
			    struct proto_step_outcome *);
};

const struct handler *handler_find(const char *name);
int	handlers_init(void);

/* Helpers to fill an outcome (take ownership of results). */
void	outcome_success(struct proto_step_outcome *, json_t *results);
void	outcome_fail(struct proto_step_outcome *, enum proto_outcome,
	    const char *code, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

/* The most a handler may hand back: workers.max_frame. */
size_t	handler_max_output(void);

/* Kill the exec handler's running program, its whole group (the worker
 * is leaving mid-step).  Async-signal-safe. */
void	handler_exec_abort(void);

extern const struct handler handler_noop;
extern const struct handler handler_http;
extern const struct handler handler_exec;
extern const struct handler handler_plugin;

#endif
