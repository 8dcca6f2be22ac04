/*
 * sched.h - the scheduler: claims ready steps set-wise for this node, hands
 * them to idle workers, and applies outcomes in batches that also claim the
 * children they release.
 */
#ifndef TASKERD_SCHED_H
#define TASKERD_SCHED_H

#include <sys/queue.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "protocol.h"
#include "template.h"

/* One claimed attempt of one step. */
struct claim {
	int64_t			 step_id;
	int64_t			 task_id;
	int64_t			 lease_token;
	uint32_t		 attempt;	/* this attempt's number */
	int			 retry_limit;	/* total attempts */
	bool			 retryable;
	uint32_t		 timeout_ms;
	char			*step_name;
	char			*correlation_id;
	const struct tmpl	*tmpl;		/* borrowed from the registry */
	const struct tmpl_step	*tstep;
	json_t			*input;		/* owned */
	struct timespec		 started;	/* CLOCK_MONOTONIC at dispatch */
	struct timespec		 started_wall;	/* the same, for the audit */
	bool			 dispatched;	/* reached a worker */
	bool			 marked;	/* its 'in_progress' is written */
	bool			 unstarted;	/* marked, and never ran */
	TAILQ_ENTRY(claim)	 entry;		/* the queue, or running and
						 * not yet marked */
};

/* Recompute the status of the tasks in $1 (bigint[]) from their steps;
 * the transaction must have run sched_sql_lock_tasks on them first. */
extern const char sched_sql_finalize[];
extern const char sched_sql_lock_tasks[];

/* A cancel NOTIFYs this channel with the task's id: every node drops
 * the task's queued steps. */
#define SCHED_CANCEL_CHANNEL	"taskerd_cancel"

void	sched_init(void);
void	sched_shutdown(void);
/* Something may have become ready (a task was created, a timer fired):
 * claim as soon as a worker is idle. */
void	sched_kick(void);
/* As sched_kick, for the next time the scheduler runs (a worker becomes
 * idle, a batch commits): safe from within an outcome's handling. */
void	sched_want(void);
/* A worker became idle: hand it a queued claim or claim more. */
void	sched_worker_idle(void);
/* True while claims are out, or outcomes or hand-backs wait to be
 * written. */
bool	sched_busy(void);
/* Send again the hand-backs the database did not take (a connection came
 * up). */
void	sched_resend_handbacks(void);
/* The outcome of a claim's attempt; takes ownership of the claim.  Strings
 * and results in the outcome are copied. */
void	sched_outcome(struct claim *, const struct proto_step_outcome *);
/* An attempt that ended without an outcome from its handler. */
void	sched_fail(struct claim *, const char *code, const char *message);
void	claim_free(struct claim *);
/* Claims made by another statement (task creation): reserve room for at
 * most `most` of them, then hand over its rows (NULL: it failed) and the
 * reservation; returns how many were claimed. */
int	sched_claims_reserve(int most);
int	sched_claims_taken(PGresult *, int reserved, unsigned epoch);
/* This node's first renewal of its lease committed: recover what its
 * earlier run left, then claim. */
void	sched_lease_taken(void);
/* This node's lease was renewed after it lapsed: hand back queued claims
 * (another node may have taken them over) and claim afresh. */
void	sched_lease_regained(void);
/* Steps claimed and not yet applied, for /health and STATUS=. */
int	sched_inflight(void);
/* Claims whose hand-back the database has not taken yet. */
int	sched_unreleased(void);
/* Claimed steps waiting for a worker. */
int	sched_queued(void);
/* Outcomes this node holds that are not written yet: in the batch being
 * gathered (a task locked elsewhere keeps its own there) or in flight. */
int	sched_unwritten(void);

#endif
