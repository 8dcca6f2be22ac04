/*
 * pool.h - the worker pool: taskerd-worker processes and their sockets.
 *
 * The pool owns each worker process, its socket and, while it runs a step,
 * that step's claim.  A claim leaves the pool exactly once: with the
 * worker's outcome, or with a synthesized failure when the worker dies or
 * times out (sched_outcome() takes it either way).
 */
#ifndef TASKERD_POOL_H
#define TASKERD_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <event2/event.h>

struct claim;

void	 pool_init(struct event_base *, int count, const char *path,
	    size_t max_frame, int64_t ping_interval_ms,
	    int64_t ping_timeout_ms, const char *user);
/* Stop every worker (SIGTERM) and reap them; claims are handed back. */
void	 pool_shutdown(void);
/* Workers ready for a step. */
int	 pool_idle(void);
/* Workers that completed the handshake (idle or busy). */
int	 pool_up(void);
/* Send the claim to an idle worker (pool_idle() must be > 0); the pool
 * owns the claim from here. */
void	 pool_dispatch(struct claim *);
/* Call fn with the lease token of each claim a worker holds. */
void	 pool_tokens(void (*fn)(int64_t, void *), void *arg);
/* {"workers": [...]} for the API. */
json_t	*pool_json(void);

/* This node's lease lapsed: kill the workers that run steps. */
void	pool_abandon_running(void);
/* A reload: replace every worker, one at a time, each once idle. */
void	pool_recycle(void);

#endif
