/*
 * sched.c - the scheduler.
 *
 * Readiness lives in the database (steps.remaining_parents and
 * next_attempt_at behind one partial index), so one statement finds and
 * claims every ready step up to the number of idle workers, whatever the
 * number of tasks.  Outcomes are not written one by one: they accumulate
 * while the previous batch is being applied, and each batch is one
 * transaction that records the attempts, fences stale leases, releases the
 * children and finalises the tasks.  When it commits the scheduler claims
 * again at once, so a child starts one round trip after its parent's
 * outcome is durable - never before, and without a poll interval.
 *
 * Timers only wake the scheduler for work that becomes due later (a retry's
 * next_attempt_at) and as a slow backstop for work created by other nodes.
 */
#include <sys/queue.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"
#include "db.h"
#include "pool.h"
#include "services.h"
#include "metrics.h"
#include "supervisor.h"
#include "backoff.h"
#include "log.h"
#include "xmalloc.h"

#define SCHED_BACKSTOP_MS	5000	/* claim anyway, for other nodes' work */
#define SCHED_SWEEP_MS		5000	/* look for expired leases */
#define SCHED_RETRY_APPLY_MS	500	/* database trouble: try the batch again */
#define SCHED_CONTENDED_MS	20	/* due rows were locked by someone else */

/* Claim every ready step up to $1, leased to node $2 for timeout + $3 ms,
 * except steps of the services in $4 (breaker open or at their limit). */
static const char sql_claim[] =
"WITH c AS ("
"  SELECT s.id, s.status AS old FROM steps s"
"  WHERE s.status IN ('pending', 'waiting_for_retry')"
"    AND s.remaining_parents = 0 AND s.next_attempt_at <= now()"
"    AND (s.service IS NULL OR s.service <> ALL($4::text[]))"
"  ORDER BY s.next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED),"
" u AS ("
"  UPDATE steps s SET status = 'in_progress', lease_owner = $2,"
"    lease_token = nextval('step_lease_tokens'),"
"    lease_expires_at = clock_timestamp()"
"      + (s.timeout_ms + $3::bigint) * interval '1 millisecond',"
"    started_at = coalesce(s.started_at, clock_timestamp()),"
"    updated_at = now()"
"  FROM c WHERE s.id = c.id"
"  RETURNING s.id, s.task_id, s.name, s.attempts, s.retry_limit,"
"    s.retryable, s.timeout_ms, s.lease_token, c.old),"
" st AS ("
"  INSERT INTO step_transitions (step_id, task_id, from_state, to_state,"
"    metadata)"
"  SELECT u.id, u.task_id, u.old, 'in_progress',"
"    jsonb_build_object('attempt', u.attempts + 1, 'node', $2::text)"
"  FROM u),"
" tk AS ("
"  UPDATE tasks t SET status = 'in_progress', updated_at = now()"
"  WHERE t.id IN (SELECT task_id FROM u) AND t.status = 'pending'"
"  RETURNING t.id),"
" tt AS ("
"  INSERT INTO task_transitions (task_id, from_state, to_state)"
"  SELECT id, 'pending', 'in_progress' FROM tk)"
"SELECT u.id, u.task_id, u.name, u.attempts, u.retry_limit, u.retryable,"
"  u.timeout_ms, u.lease_token, t.template_id, t.correlation_id,"
"  t.context::text,"
"  (SELECT coalesce(jsonb_object_agg(p.name,"
"     jsonb_build_object('results', p.results)), '{}')"
"   FROM steps p WHERE p.task_id = u.task_id"
"     AND p.status IN ('complete', 'resolved_manually'))::text "
"FROM u JOIN tasks t ON t.id = u.task_id";

/* Milliseconds until the next claimable step is due (<= 0: due now; NULL:
 * none); steps of blocked services ($1) wait for their breaker instead. */
static const char sql_next_due[] =
"SELECT (extract(epoch FROM min(next_attempt_at) - clock_timestamp())"
"  * 1000)::bigint FROM steps"
" WHERE status IN ('pending', 'waiting_for_retry') AND remaining_parents = 0"
"   AND (service IS NULL OR service <> ALL($1::text[]))";

/*
 * Apply a batch of outcomes ($1: [{step_id, token, status, free, delay_ms,
 * results, error, meta}]; free: a breaker probe that grants its attempt
 * back).  The lease token fences stale attempts: only the
 * current claim's outcome matches.  Completing a step releases its children.
 */
static const char sql_apply[] =
"WITH o0 AS ("
"  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(step_id bigint,"
"    token bigint, status text, free boolean, delay_ms bigint,"
"    results jsonb, error jsonb, meta jsonb)),"
/* A cancelled task's steps are not retried. */
" o AS ("
"  SELECT o0.*, CASE WHEN o0.status = 'waiting_for_retry'"
"    AND t.status = 'cancelled' THEN 'cancelled' ELSE o0.status END AS final"
"  FROM o0 JOIN steps s0 ON s0.id = o0.step_id"
"  JOIN tasks t ON t.id = s0.task_id),"
" u AS ("
"  UPDATE steps s SET status = o.final, attempts = s.attempts + 1,"
"    retry_limit = s.retry_limit + CASE WHEN o.free THEN 1 ELSE 0 END,"
"    results = CASE WHEN o.final = 'complete' THEN o.results"
"      ELSE s.results END,"
"    last_error = coalesce(o.error, s.last_error),"
"    next_attempt_at = CASE WHEN o.final = 'waiting_for_retry'"
"      THEN clock_timestamp() + o.delay_ms * interval '1 millisecond'"
"      ELSE s.next_attempt_at END,"
"    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,"
"    completed_at = CASE WHEN o.final IN ('complete', 'error', 'cancelled')"
"      THEN clock_timestamp() END,"
"    updated_at = now()"
"  FROM o WHERE s.id = o.step_id AND s.lease_token = o.token"
"    AND s.status = 'in_progress'"
"  RETURNING s.id, s.task_id, s.status, o.meta),"
" st AS ("
"  INSERT INTO step_transitions (step_id, task_id, from_state, to_state,"
"    metadata)"
"  SELECT u.id, u.task_id, 'in_progress', u.status, u.meta FROM u),"
" k AS ("
"  UPDATE steps c SET remaining_parents = c.remaining_parents - x.n,"
"    updated_at = now()"
"  FROM (SELECT e.to_step_id, count(*) AS n FROM step_edges e"
"        JOIN u ON u.id = e.from_step_id WHERE u.status = 'complete'"
"        GROUP BY e.to_step_id) x"
"  WHERE c.id = x.to_step_id)"
"SELECT u.id FROM u";

/*
 * Finalise tasks ($1: bigint[]) from their steps: complete when every step
 * is complete or resolved; error when a step failed and nothing else can
 * run; in_progress otherwise.  Runs after sql_apply in the same transaction.
 */
const char sched_sql_finalize[] =
"WITH a AS ("
"  SELECT s.task_id,"
"    bool_and(s.status IN ('complete', 'resolved_manually')) AS done,"
"    bool_or(s.status = 'error') AS failed,"
"    bool_or(s.status IN ('enqueued', 'in_progress', 'waiting_for_retry')"
"      OR (s.status = 'pending' AND s.remaining_parents = 0)) AS live"
"  FROM steps s WHERE s.task_id = ANY($1::bigint[]) GROUP BY s.task_id),"
" n AS ("
"  SELECT t.id, t.status AS old,"
"    CASE WHEN a.done THEN 'complete'"
"         WHEN a.failed AND NOT a.live THEN 'error'"
"         ELSE 'in_progress' END AS new"
"  FROM tasks t JOIN a ON a.task_id = t.id"
"  WHERE t.status IN ('pending', 'in_progress', 'error')),"
" u AS ("
"  UPDATE tasks t SET status = n.new, updated_at = now(),"
"    completed_at = CASE WHEN n.new = 'complete' THEN clock_timestamp() END"
"  FROM n WHERE t.id = n.id AND n.old <> n.new"
"  RETURNING t.id, n.old, n.new)"
"INSERT INTO task_transitions (task_id, from_state, to_state)"
"SELECT id, old, new FROM u";

/* Claims whose lease ran out (or, at start, that this node held before it
 * restarted): they get a synthesized failure through the normal path. */
static const char sql_expired[] =
"SELECT s.id, s.task_id, s.name, s.attempts, s.retry_limit, s.retryable,"
"  s.timeout_ms, s.lease_token, t.template_id, t.correlation_id"
" FROM steps s JOIN tasks t ON t.id = s.task_id"
" WHERE s.status IN ('enqueued', 'in_progress')"
"   AND (s.lease_expires_at < clock_timestamp()"
"        OR ($2::boolean AND s.lease_owner = $1))"
" ORDER BY s.lease_expires_at LIMIT 1000";

/* Hand back claims that never reached a worker (shutdown). */
static const char sql_release[] =
"WITH o AS ("
"  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(step_id bigint,"
"    token bigint)),"
" u AS ("
"  UPDATE steps s SET status = CASE WHEN s.attempts = 0 THEN 'pending'"
"      ELSE 'waiting_for_retry' END,"
"    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,"
"    updated_at = now()"
"  FROM o WHERE s.id = o.step_id AND s.lease_token = o.token"
"    AND s.status = 'in_progress'"
"  RETURNING s.id, s.task_id, s.status)"
"INSERT INTO step_transitions (step_id, task_id, from_state, to_state,"
"  metadata)"
"SELECT id, task_id, 'in_progress', status, '{\"released\": true}'"
" FROM u";

TAILQ_HEAD(claimq, claim_entry);
struct claim_entry {
	TAILQ_ENTRY(claim_entry) entry;
	struct claim		*claim;
};

static struct {
	bool		 want;		/* steps may be ready: claim */
	bool		 claiming;	/* a claim job is in flight */
	bool		 applying;	/* an apply job is in flight */
	bool		 sweeping;
	bool		 recovered;	/* start-up recovery done */
	struct claimq	 queue;		/* claimed, waiting for a worker */
	int		 nqueued;
	int		 ndispatched;	/* claims held by workers */
	json_t		*batch;		/* outcomes not yet sent */
	json_t		*batch_tasks;	/* {"task_id": true} of the batch */
	struct event	*wake;		/* next_attempt_at of the soonest step */
	struct timespec	 wake_at;
	struct event	*backstop;
	struct event	*sweep;
	struct event	*retry_apply;
} sc;

static void	sched_run(void);
static void	sched_flush(void);

static double
rnd01(void)
{
	return (double)arc4random() / 4294967296.0;
}

void
claim_free(struct claim *c)
{
	if (c == NULL)
		return;
	free(c->step_name);
	free(c->correlation_id);
	json_decref(c->input);
	free(c);
}

int
sched_queued(void)
{
	return sc.nqueued;
}

int
sched_inflight(void)
{
	return sc.nqueued + sc.ndispatched;
}

static void
ms_to_tv(int64_t ms, struct timeval *tv)
{
	if (ms < 0)
		ms = 0;
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

/* Make sure the scheduler wakes within ms (keeps an earlier wake-up). */
static void
sched_wake_in(int64_t ms)
{
	struct timespec	now, at;
	struct timeval	tv;

	clock_gettime(CLOCK_MONOTONIC, &now);
	at.tv_sec = now.tv_sec + ms / 1000;
	at.tv_nsec = now.tv_nsec + (ms % 1000) * 1000000;
	if (at.tv_nsec >= 1000000000) {
		at.tv_sec++;
		at.tv_nsec -= 1000000000;
	}
	if (evtimer_pending(sc.wake, NULL) &&
	    (sc.wake_at.tv_sec < at.tv_sec || (sc.wake_at.tv_sec ==
	    at.tv_sec && sc.wake_at.tv_nsec <= at.tv_nsec)))
		return;
	sc.wake_at = at;
	ms_to_tv(ms, &tv);
	evtimer_add(sc.wake, &tv);
}

static void
sched_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	sched_kick();
}

static void
sched_backstop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval	tv;

	ms_to_tv(SCHED_BACKSTOP_MS, &tv);
	evtimer_add(sc.backstop, &tv);
	sched_kick();
}

/* Fill the identity and retry fields common to claims and expired rows:
 * id, task_id, name, attempts, retry_limit, retryable, timeout_ms,
 * lease_token, template_id, correlation_id. */
static struct claim *
claim_from_row(PGresult *res, int row)
{
	struct claim	*c = xcalloc(1, sizeof(*c));
	ssize_t		 idx;

	c->step_id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
	c->task_id = strtoll(PQgetvalue(res, row, 1), NULL, 10);
	c->step_name = xstrdup(PQgetvalue(res, row, 2));
	c->attempt = (uint32_t)strtoul(PQgetvalue(res, row, 3), NULL, 10) + 1;
	c->retry_limit = atoi(PQgetvalue(res, row, 4));
	c->retryable = PQgetvalue(res, row, 5)[0] == 't';
	c->timeout_ms = (uint32_t)strtoul(PQgetvalue(res, row, 6), NULL, 10);
	c->lease_token = strtoll(PQgetvalue(res, row, 7), NULL, 10);
	c->tmpl = supervisor_template(strtoll(PQgetvalue(res, row, 8), NULL,
	    10));
	c->correlation_id = xstrdup(PQgetvalue(res, row, 9));
	if (c->tmpl != NULL &&
	    (idx = tmpl_step_index(c->tmpl, c->step_name)) >= 0)
		c->tstep = &c->tmpl->steps[idx];
	return c;
}

static const char *
claim_template(const struct claim *c)
{
	return c->tmpl != NULL ? c->tmpl->name : "unknown";
}

static const char *
claim_service(const struct claim *c)
{
	return c->tstep != NULL ? c->tstep->dependent_system : NULL;
}

/* Hand back claims without counting an attempt (their service's breaker
 * opened, or this node is stopping); ownership of the claims ends here. */
static void
sched_release(struct claim **claims, size_t n)
{
	struct db_job	*job;
	json_t		*arr;
	const char	*params[1];
	char		*s;
	size_t		 i;

	if (n == 0)
		return;
	arr = json_array();
	for (i = 0; i < n; i++) {
		json_array_append_new(arr, json_pack("{s:I, s:I}",
		    "step_id", (json_int_t)claims[i]->step_id,
		    "token", (json_int_t)claims[i]->lease_token));
		claim_free(claims[i]);
	}
	s = json_dumps(arr, JSON_COMPACT);
	params[0] = s;
	job = db_job_new(NULL, NULL);
	db_job_add(job, sql_release, 1, params);
	db_submit(job);
	free(s);
	json_decref(arr);
}

/* Give queued claims to idle workers, as their services allow. */
static void
sched_dispatch_queued(void)
{
	struct claim_entry	*e, *next;
	struct claim		*release[64];
	size_t			 nrelease = 0;
	const char		*service;

	for (e = TAILQ_FIRST(&sc.queue); e != NULL; e = next) {
		next = TAILQ_NEXT(e, entry);
		service = claim_service(e->claim);
		if (services_open(service) && nrelease < 64) {
			TAILQ_REMOVE(&sc.queue, e, entry);
			sc.nqueued--;
			release[nrelease++] = e->claim;
			free(e);
			continue;
		}
		if (pool_idle() == 0 || !services_may_dispatch(service))
			continue;
		TAILQ_REMOVE(&sc.queue, e, entry);
		sc.nqueued--;
		sc.ndispatched++;
		e->claim->dispatched = true;
		services_started(service);
		metrics_inc(M_STEPS_STARTED, 1, claim_template(e->claim),
		    e->claim->step_name);
		pool_dispatch(e->claim);	/* the pool owns it now */
		free(e);
	}
	sched_release(release, nrelease);
}

static void
sched_claim_done(struct db_job *job, void *arg)
{
	int		 asked = (int)(intptr_t)arg;
	PGresult	*res, *due;
	struct claim	*c;
	struct claim_entry *e;
	json_t		*ctx, *steps;
	int		 i, n = 0;
	int64_t		 next_ms = -1;
	bool		 have_next = false;

	sc.claiming = false;
	if (db_job_error(job) != NULL) {
		log_warnx("claim failed error=\"%s\"", db_job_error(job));
		sc.want = true;
		sched_wake_in(SCHED_RETRY_APPLY_MS);
		return;
	}
	res = db_job_result(job, 0);
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		c = claim_from_row(res, i);
		ctx = json_loads(PQgetvalue(res, i, 10), 0, NULL);
		steps = json_loads(PQgetvalue(res, i, 11), 0, NULL);
		c->input = json_pack("{s:o, s:o, s:i}",
		    "context", ctx ? ctx : json_object(),
		    "steps", steps ? steps : json_object(),
		    "attempt", (json_int_t)c->attempt);
		if (c->tstep != NULL && c->tstep->dependent_system != NULL)
			json_object_set_new(c->input, "service",
			    services_input(c->tstep->dependent_system));
		if (c->tstep == NULL) {
			/* The template was removed or renamed since the task
			 * was created: nothing can run this step. */
			log_warnx("step has no loaded template task_id=%lld "
			    "step=%s correlation_id=%s", (long long)c->task_id,
			    c->step_name, c->correlation_id);
			c->retryable = false;
			sched_fail(c, "unknown_template", "the step's template "
			    "is not loaded on this node");
			continue;
		}
		e = xcalloc(1, sizeof(*e));
		e->claim = c;
		TAILQ_INSERT_TAIL(&sc.queue, e, entry);
		sc.nqueued++;
	}
	due = db_job_result(job, 1);
	if (due != NULL && PQntuples(due) == 1 && !PQgetisnull(due, 0, 0)) {
		next_ms = strtoll(PQgetvalue(due, 0, 0), NULL, 10);
		have_next = true;
	}
	if (n == asked)
		sc.want = true;		/* there may be more */
	else if (have_next && next_ms <= 0)
		sched_wake_in(SCHED_CONTENDED_MS);
	if (have_next && next_ms > 0)
		sched_wake_in(next_ms);
	sched_run();
}

/* Claim ready steps for idle workers, and hand out claimed ones. */
static void
sched_run(void)
{
	struct db_job		*job;
	struct claim_entry	*e;
	char			 limit[16], grace[24], *blocked;
	const char		*params[4];
	int			 want;

	sched_dispatch_queued();
	if (sv.stopping || !sc.recovered || sc.claiming || !sc.want)
		return;
	/* Claims waiting for their service's capacity do not hold back
	 * work for other services. */
	want = pool_idle();
	TAILQ_FOREACH(e, &sc.queue, entry)
		if (services_may_dispatch(claim_service(e->claim)))
			want--;
	if (want <= 0 || db_connected() == 0)
		return;
	if (want > sv.conf->scheduler_batch)
		want = sv.conf->scheduler_batch;

	snprintf(limit, sizeof(limit), "%d", want);
	snprintf(grace, sizeof(grace), "%lld",
	    (long long)sv.conf->lease_grace_ms);
	blocked = services_blocked();
	params[0] = limit;
	params[1] = sv.node_id;
	params[2] = grace;
	params[3] = blocked;
	job = db_job_new(sched_claim_done, (void *)(intptr_t)want);
	db_job_add(job, sql_claim, 4, params);
	db_job_add(job, sql_next_due, 1, params + 3);
	free(blocked);		/* db_job_add copied it */
	sc.claiming = true;
	sc.want = false;
	db_submit(job);
}

void
sched_worker_idle(void)
{
	sched_run();
}

void
sched_kick(void)
{
	sc.want = true;
	sched_run();
}

static const char *
outcome_status(const struct claim *c, const struct proto_step_outcome *o)
{
	switch (o->outcome) {
	case OUTCOME_SUCCESS:
		return "complete";
	case OUTCOME_RETRYABLE:
		if (c->retryable && (int)c->attempt < c->retry_limit)
			return "waiting_for_retry";
		return "error";
	case OUTCOME_PERMANENT:
	default:
		return "error";
	}
}

void
sched_outcome(struct claim *c, const struct proto_step_outcome *o)
{
	const struct backoff *b = c->tstep ? &c->tstep->backoff :
	    &sv.conf->step_defaults.backoff;
	const char	*status;
	json_t		*rec, *meta, *err = json_null();
	int64_t		 delay = 0;
	bool		 probe = false;
	char		 key[24];

	if (c->dispatched) {
		sc.ndispatched--;
		probe = services_finished(claim_service(c), o);
		metrics_observe(M_STEP_DURATION, (double)o->duration_us / 1e6,
		    claim_template(c), c->step_name);
	}
	/* A failed breaker probe is recorded as an attempt but grants one
	 * more: waiting for a service to come back spends no budget. */
	status = probe ? "waiting_for_retry" : outcome_status(c, o);
	metrics_inc(strcmp(status, "complete") == 0 ? M_STEPS_COMPLETED :
	    strcmp(status, "error") == 0 ? M_STEPS_FAILED : M_STEPS_RETRIED,
	    1, claim_template(c), c->step_name);
	if (o->error_code != NULL && strcmp(o->error_code, "timeout") == 0)
		metrics_inc(M_STEPS_TIMED_OUT, 1, claim_template(c),
		    c->step_name);
	if (strcmp(status, "waiting_for_retry") == 0) {
		delay = backoff_delay_ms(b, c->attempt, o->retry_after_ms,
		    rnd01());
		sched_wake_in(delay);
	}
	meta = json_pack("{s:i, s:s, s:f}", "attempt", (json_int_t)c->attempt,
	    "outcome", proto_outcome_name(o->outcome),
	    "duration_ms", (double)o->duration_us / 1000.0);
	if (o->outcome != OUTCOME_SUCCESS) {
		err = json_pack("{s:s, s:s, s:i}",
		    "code", o->error_code ? o->error_code : "error",
		    "message", o->error_message ? o->error_message : "",
		    "http_status", (json_int_t)o->http_status);
		json_object_set(meta, "error", err);
		if (o->retry_after_ms >= 0)
			json_object_set_new(meta, "retry_after_ms",
			    json_integer(o->retry_after_ms));
		if (strcmp(status, "waiting_for_retry") == 0)
			json_object_set_new(meta, "delay_ms",
			    json_integer(delay));
		log_info("step attempt failed task_id=%lld step=%s attempt=%u "
		    "outcome=%s code=%s next=%s delay_ms=%lld "
		    "correlation_id=%s", (long long)c->task_id, c->step_name,
		    c->attempt, proto_outcome_name(o->outcome),
		    o->error_code ? o->error_code : "error", status,
		    (long long)delay, c->correlation_id);
	}
	if (probe)
		json_object_set_new(meta, "breaker_probe", json_true());
	rec = json_pack("{s:I, s:I, s:s, s:b, s:I, s:O, s:o, s:o}",
	    "step_id", (json_int_t)c->step_id,
	    "token", (json_int_t)c->lease_token,
	    "status", status,
	    "free", probe,
	    "delay_ms", (json_int_t)delay,
	    "results", o->results && o->outcome == OUTCOME_SUCCESS ?
	    o->results : json_null(),
	    "error", err,
	    "meta", meta);
	json_array_append_new(sc.batch, rec);
	snprintf(key, sizeof(key), "%lld", (long long)c->task_id);
	json_object_set_new(sc.batch_tasks, key, json_true());
	claim_free(c);
	sched_flush();
}

void
sched_fail(struct claim *c, const char *code, const char *message)
{
	struct proto_step_outcome o;

	memset(&o, 0, sizeof(o));
	o.step_id = c->step_id;
	o.lease_token = c->lease_token;
	o.outcome = c->retryable ? OUTCOME_RETRYABLE : OUTCOME_PERMANENT;
	o.error_code = (char *)code;
	o.error_message = (char *)message;
	o.retry_after_ms = -1;
	if (c->dispatched) {
		struct timespec now;

		clock_gettime(CLOCK_MONOTONIC, &now);
		o.duration_us = (now.tv_sec - c->started.tv_sec) * 1000000 +
		    (now.tv_nsec - c->started.tv_nsec) / 1000;
	}
	sched_outcome(c, &o);
}

static void
sched_apply_done(struct db_job *job, void *arg)
{
	json_t		*sent = arg, *tasks = json_object_get(sent, "tasks");
	json_t		*recs = json_object_get(sent, "outcomes"), *rec;
	PGresult	*res;
	size_t		 i;
	const char	*k;
	json_t		*v;
	int		 r, nres;
	struct timeval	 tv;

	sc.applying = false;
	if (db_job_error(job) != NULL) {
		/* Put the batch back: applying it again is safe, the lease
		 * token check makes a second application a no-op. */
		log_warnx("applying outcomes failed count=%zu error=\"%s\"",
		    json_array_size(recs), db_job_error(job));
		json_array_extend(sc.batch, recs);
		json_object_foreach(tasks, k, v)
			json_object_set(sc.batch_tasks, k, v);
		json_decref(sent);
		ms_to_tv(SCHED_RETRY_APPLY_MS, &tv);
		evtimer_add(sc.retry_apply, &tv);
		return;
	}
	res = db_job_result(job, 0);
	nres = PQntuples(res);
	json_array_foreach(recs, i, rec) {
		json_int_t id = json_integer_value(json_object_get(rec,
		    "step_id"));
		bool found = false;

		for (r = 0; r < nres && !found; r++)
			found = strtoll(PQgetvalue(res, r, 0), NULL, 10) == id;
		if (!found)
			log_warnx("stale outcome discarded step_id=%lld "
			    "lease_token=%lld", (long long)id,
			    (long long)json_integer_value(json_object_get(rec,
			    "token")));
	}
	json_decref(sent);
	sc.want = true;
	sched_run();
	sched_flush();
}

static void
sched_retry_apply_cb(evutil_socket_t fd, short what, void *arg)
{
	sched_flush();
}

/* Send the accumulated outcomes as one transaction, if none is in flight. */
static void
sched_flush(void)
{
	struct db_job	*job;
	json_t		*sent;
	char		*outcomes, *ids, *p;
	const char	*k;
	json_t		*v;
	size_t		 len;
	const char	*params[1];

	if (sc.applying || json_array_size(sc.batch) == 0 ||
	    evtimer_pending(sc.retry_apply, NULL))
		return;
	sent = json_pack("{s:o, s:o}", "outcomes", sc.batch,
	    "tasks", sc.batch_tasks);
	sc.batch = json_array();
	sc.batch_tasks = json_object();

	outcomes = json_dumps(json_object_get(sent, "outcomes"), JSON_COMPACT);
	len = 3;
	json_object_foreach(json_object_get(sent, "tasks"), k, v)
		len += strlen(k) + 1;
	ids = p = xmalloc(len);
	*p++ = '{';
	json_object_foreach(json_object_get(sent, "tasks"), k, v)
		p += sprintf(p, "%s%s", p == ids + 1 ? "" : ",", k);
	*p++ = '}';
	*p = '\0';

	job = db_job_new(sched_apply_done, sent);
	params[0] = outcomes;
	db_job_add(job, sql_apply, 1, params);
	params[0] = ids;
	db_job_add(job, sched_sql_finalize, 1, params);
	free(outcomes);
	free(ids);
	sc.applying = true;
	db_submit(job);
}

static void
sched_expired_done(struct db_job *job, void *arg)
{
	bool		 startup = (bool)(intptr_t)arg;
	PGresult	*res;
	struct claim	*c;
	int		 i, n;

	sc.sweeping = false;
	if (db_job_error(job) != NULL) {
		log_warnx("lease sweep failed error=\"%s\"", db_job_error(job));
		return;
	}
	res = db_job_result(job, 0);
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		c = claim_from_row(res, i);
		log_warnx("lease expired, attempt abandoned task_id=%lld "
		    "step=%s attempt=%u correlation_id=%s",
		    (long long)c->task_id, c->step_name, c->attempt,
		    c->correlation_id);
		sched_fail(c, startup ? "node_restarted" : "lease_expired",
		    startup ? "the node running the attempt restarted" :
		    "the attempt's lease expired before an outcome arrived");
	}
	if (startup) {
		sc.recovered = true;
		sched_kick();
	}
}

static void
sched_sweep(bool startup)
{
	struct db_job	*job;
	const char	*params[2] = { sv.node_id, startup ? "true" : "false" };

	if (sc.sweeping)
		return;
	sc.sweeping = true;
	job = db_job_new(sched_expired_done, (void *)(intptr_t)startup);
	db_job_add(job, sql_expired, 2, params);
	db_submit(job);
}

static void
sched_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval	tv;

	ms_to_tv(SCHED_SWEEP_MS, &tv);
	evtimer_add(sc.sweep, &tv);
	sched_sweep(!sc.recovered);
}

void
sched_init(void)
{
	struct timeval	tv;

	TAILQ_INIT(&sc.queue);
	sc.batch = json_array();
	sc.batch_tasks = json_object();
	sc.want = true;
	sc.wake = evtimer_new(sv.base, sched_wake_cb, NULL);
	sc.backstop = evtimer_new(sv.base, sched_backstop_cb, NULL);
	sc.sweep = evtimer_new(sv.base, sched_sweep_cb, NULL);
	sc.retry_apply = evtimer_new(sv.base, sched_retry_apply_cb, NULL);
	ms_to_tv(SCHED_BACKSTOP_MS, &tv);
	evtimer_add(sc.backstop, &tv);
	ms_to_tv(SCHED_SWEEP_MS, &tv);
	evtimer_add(sc.sweep, &tv);
	/* Attempts this node held before it restarted are over: fail them
	 * now instead of waiting for their leases to run out. */
	sched_sweep(true);
}

/* Stop claiming; hand back what never reached a worker. */
void
sched_shutdown(void)
{
	struct claim_entry	*e;
	struct claim		**claims;
	size_t			 n = 0;

	claims = xcalloc((size_t)sc.nqueued + 1, sizeof(*claims));
	while ((e = TAILQ_FIRST(&sc.queue)) != NULL) {
		TAILQ_REMOVE(&sc.queue, e, entry);
		claims[n++] = e->claim;
		free(e);
	}
	sc.nqueued = 0;
	sched_release(claims, n);
	free(claims);
}

/* True while outcomes wait to be written (shutdown waits for this). */
bool
sched_busy(void)
{
	return sc.applying || json_array_size(sc.batch) > 0 ||
	    sc.ndispatched > 0;
}
