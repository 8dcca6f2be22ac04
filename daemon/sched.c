/*
 * sched.c - the scheduler.
 *
 * Readiness lives in the database (steps.remaining_parents and
 * next_attempt_at behind one partial index), so one statement finds and
 * claims ready steps set-wise, whatever the number of tasks.  A node claims
 * a little more than its workers run (the prefetch), so a worker that
 * finishes starts its next step without waiting for the database.
 *
 * Outcomes are not written one by one: they accumulate while the previous
 * batch is being applied, and each batch is one transaction that records
 * the attempts, fences stale leases, releases the children, finalises the
 * tasks and claims the released children for this node.  So a child is
 * claimed in the very commit that makes its parent's outcome durable, and
 * starts as soon as that commit returns - never before, and without a
 * claim round trip or a poll interval.
 *
 * Timers only wake the scheduler for work that becomes due later (a retry's
 * next_attempt_at), to write 'in_progress' for steps that run long enough
 * to be watched, and as a slow backstop for work created by other nodes.
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
#include "node.h"
#include "oldversions.h"
#include "supervisor.h"
#include "backoff.h"
#include "jsontext.h"
#include "log.h"
#include "xmalloc.h"

#define SCHED_BACKSTOP_MS	5000	/* claim anyway, for other nodes' work */
#define SCHED_CANCELLED_MS	10000	/* a cancel heard stays known */
#define SCHED_RETRY_APPLY_MS	500	/* database trouble: try the batch again */
#define SCHED_CONTENDED_MS	20	/* due rows were locked by someone else */
/* A task whose row is locked elsewhere (an operator's open transaction):
 * its records wait this long between tries, and a try waits on the lock
 * at most SCHED_PROBE_LOCK_MS_TEXT ms, so the others' batches go on. */
#define SCHED_HELD_MS		1000
#define SCHED_PROBE_LOCK_MS_TEXT "100"	/* (database.lock_timeout's least) */
#define SCHED_MARK_MS		100	/* write 'in_progress' for longer steps */
#define SCHED_SWEEP_LOCK	"7354"	/* advisory lock (7354, 1): one sweeper */
/* A claim this node does not hold is its orphan once no job in flight can
 * have written it, and this long besides: more than a job may wait for a
 * connection (db.c), so a job sent after the sweep was queued is not
 * mistaken for an old one. */
#define SCHED_ORPHAN_GRACE_MS	30000

/* Column 11 of a claim of step row s (of task t): the results of the
 * completed steps it depends on (directly or not), {"name": {"results":
 * ...}}, if the step may read them (readers: the parameter holding
 * results_readers()), else {}. */
#define SQL_RESULTS_FOR(s, readers)					\
	"CASE WHEN coalesce((" readers "::jsonb -> t.template_id::text)"	\
	"    ? " s ".name, false)"						\
	"  THEN (SELECT coalesce(jsonb_object_agg(p.name,"		\
	"      jsonb_build_object('results', p.results)), '{}')"		\
	"    FROM jsonb_array_elements_text(" readers "::jsonb"		\
	"        -> t.template_id::text -> " s ".name) a(name)"		\
	"    JOIN steps p ON p.task_id = " s ".task_id AND p.name = a.name"	\
	"      AND p.status IN ('complete', 'resolved_manually'))::text"	\
	"  ELSE '{}' END"

/* The task (id expression task) is of none of the templates ids (a
 * bigint[] parameter; empty: any template). */
#define SQL_NOT_OF_TEMPLATES(task, ids)					\
	"(cardinality(" ids "::bigint[]) = 0 OR NOT EXISTS (SELECT 1"	\
	"  FROM tasks t0 WHERE t0.id = " task				\
	"    AND t0.template_id = ANY(" ids "::bigint[])))"

/*
 * Claiming.  A claim makes a ready step this node's ('enqueued', with the
 * node as lease_owner and a fresh lease token) and answers what a worker
 * needs: the task's context and the results of its completed steps
 * (columns 0-11, as claim_from_row and sched_enqueue read them) - the
 * results only for steps whose handler may read them, and only of the
 * steps they depend on (the readers, a jsonb {"template_id": {"step":
 * [the steps it depends on]}}: see results_readers).  Steps are
 * claimed two ways:
 *  - the general claim takes the oldest ready steps of any task, those
 *    of tasks under way before the first steps of new ones ($1 limit, $2
 *    node, $3 services whose steps must wait, $4 readers, $5 templates
 *    this node does not have: see sched_unknown_template);
 *  - the transaction that applies a batch of outcomes claims the children
 *    it releases (sql_apply), so a child is claimed the moment its
 *    parent's outcome commits.
 * A claim writes no transition: the audit trail records when an attempt
 * started (below), not when a node reserved it.  The claimed rows and
 * their tasks are reached by key, whatever the limit, so that a generic
 * plan runs it as well as a custom one (see sql_generic_plans).
 */
static const char sql_claim[] =
"WITH c AS ("
"  SELECT s.id FROM steps s"
"  WHERE s.status IN ('pending', 'waiting_for_retry')"
"    AND s.remaining_parents = 0 AND s.next_attempt_at <= now()"
"    AND (s.service IS NULL OR s.service <> ALL($3::text[]))"
"    AND " SQL_NOT_OF_TEMPLATES("s.task_id", "$5")
"  ORDER BY (s.first_step AND s.attempts = 0), s.next_attempt_at"
"  LIMIT $1 FOR UPDATE SKIP LOCKED),"
" u AS ("
"  UPDATE steps s SET status = 'enqueued', lease_owner = $2,"
"    lease_token = nextval('step_lease_tokens'), updated_at = now()"
"  FROM c WHERE s.id = ANY(ARRAY(SELECT id FROM c)) AND s.id = c.id"
"  RETURNING s.id, s.task_id, s.name, s.attempts, s.retry_limit,"
"    s.retryable, s.timeout_ms, s.lease_token)"
"SELECT u.id, u.task_id, u.name, u.attempts, u.retry_limit, u.retryable,"
"  u.timeout_ms, u.lease_token, t.template_id, t.correlation_id,"
"  t.context::text, " SQL_RESULTS_FOR("u", "$4") " "
"FROM u CROSS JOIN LATERAL (SELECT t.template_id, t.correlation_id,"
"  t.context FROM tasks t WHERE t.id = u.task_id LIMIT 1) t";

/*
 * Generic plans for the rest of the transaction: the first statement of a
 * batch's job and of a claim's.  sql_apply, sched_sql_finalize and
 * sql_claim reach every row by key whatever their parameters, and
 * sql_next_due runs down the index either way, so a generic plan runs
 * them as fast as any.  Left to itself, PostgreSQL found custom plans
 * cheaper by its estimates and planned them anew for every call, and that
 * planning grows with the tables: with 60,000 tasks in the database it
 * took 18 s against 25 s of running sql_apply and the finalize (0.8 and
 * 0.3 ms a batch; 0.3 and 0.1 ms on a new database), and 0.3 ms against
 * 0.4 ms per claim.  (sql_claim once joined its claimed rows and their
 * tasks by hash: as a generic plan, which does not know the limit, that
 * read every row of both tables.)
 */
static const char sql_generic_plans[] =
"SELECT set_config('plan_cache_mode', 'force_generic_plan', true)";

/* Milliseconds until the next claimable step is due (<= 0: due now; NULL:
 * none); steps of blocked services ($1) wait for their breaker instead,
 * and steps of templates this node does not have ($2) for another node.
 * (The soonest of each kind the claim orders by, so that both lookups run
 * down the index in order.) */
static const char sql_next_due[] =
"SELECT (extract(epoch FROM min(d.at) - clock_timestamp()) * 1000)::bigint"
" FROM (VALUES (false), (true)) AS f(first) CROSS JOIN LATERAL ("
"  SELECT next_attempt_at AS at FROM steps"
"  WHERE status IN ('pending', 'waiting_for_retry') AND remaining_parents = 0"
"    AND (first_step AND attempts = 0) = f.first"
"    AND (service IS NULL OR service <> ALL($1::text[]))"
"    AND " SQL_NOT_OF_TEMPLATES("steps.task_id", "$2")
"  ORDER BY next_attempt_at LIMIT 1) d";

/*
 * Apply a batch of records ($1: [{step_id, token, status, free, delay_ms,
 * results, error, meta, started, smeta}]).  A record is an outcome (status
 * complete, waiting_for_retry or error; free: an attempt that is granted
 * back, a breaker probe's or one its node ended) or a start mark (status
 * in_progress).  started is when a worker took the step (epoch seconds): a
 * step that was still 'enqueued' gets its 'in_progress' transition at that
 * time, so a short step costs one row update, not two.  The transition
 * comes from the state before the claim (pending for a first attempt,
 * waiting_for_retry after that).  The lease token fences stale attempts:
 * only the current claim's records match (an applied outcome clears the
 * token).
 *
 * Completing a step releases its children; in the same update, up to $4
 * children that became ready are claimed for this node ($2; $3: services
 * whose steps must wait; $5: the readers of results, as for sql_claim).
 * The readiness test runs on the row being updated, so a child another
 * transaction changed meanwhile (a cancel, a parent completed elsewhere)
 * is left to the general claim.
 *
 * Every lookup goes through a primary key (a lateral lookup whose LIMIT
 * keeps the planner from turning it into a join, or "id = ANY(ARRAY(...))"
 * for the rows an UPDATE changes), whatever the planner's
 * statistics say: they lag behind a burst of new tasks, and a plan that
 * scans the steps table per batch is what made batches slow.
 *
 * Rows: applied records (column 12: their step id; 13: their task's
 * status as the batch found it; 14: the status the step was written
 * with; 15: false), records found written by an earlier batch whose
 * answer was lost (12, 14; 15: true), then claimed children (columns
 * 0-11; column 11: the results of the task's steps
 * completed before this batch - the batch's own are added by the caller -
 * or {} for a step that does not read them).
 */
static const char sql_apply[] =
"WITH o0 AS MATERIALIZED ("
"  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(step_id bigint,"
"    token bigint, status text, free boolean, delay_ms bigint,"
"    results jsonb, error jsonb, meta jsonb, started float8, smeta jsonb,"
"    lost boolean)),"
/* A cancelled task's steps are not retried. */
" o AS MATERIALIZED ("
"  SELECT o0.*, s0.task_id, t.status AS task_status, s0.status AS old,"
"    CASE WHEN s0.attempts = 0 THEN 'pending'"
"      ELSE 'waiting_for_retry' END AS before,"
"    CASE WHEN o0.status = 'waiting_for_retry' AND t.status = 'cancelled'"
"      THEN 'cancelled' ELSE o0.status END AS final"
"  FROM o0 CROSS JOIN LATERAL (SELECT * FROM steps s0"
"    WHERE s0.id = o0.step_id AND s0.lease_token = o0.token LIMIT 1) s0"
"  JOIN tasks t ON t.id = s0.task_id),"
" u AS ("
"  UPDATE steps s SET status = o.final,"
"    attempts = s.attempts + CASE WHEN o.final = 'in_progress' THEN 0"
"      ELSE 1 END,"
"    retry_limit = CASE WHEN o.free AND s.retry_limit < 2147483647"
"      THEN s.retry_limit + 1 ELSE s.retry_limit END,"
"    results = CASE WHEN o.final = 'complete' THEN o.results"
"      ELSE s.results END,"
"    last_error = coalesce(o.error, s.last_error),"
"    next_attempt_at = CASE WHEN o.final = 'waiting_for_retry'"
"      THEN clock_timestamp() + o.delay_ms * interval '1 millisecond'"
"      ELSE s.next_attempt_at END,"
"    lease_owner = CASE WHEN o.final = 'in_progress' THEN s.lease_owner END,"
"    lease_token = CASE WHEN o.final = 'in_progress' THEN s.lease_token END,"
"    started_at = coalesce(s.started_at, to_timestamp(o.started)),"
"    completed_at = CASE WHEN o.final IN ('complete', 'error', 'cancelled')"
"      THEN clock_timestamp() END,"
"    updated_at = now()"
"  FROM o WHERE s.id = ANY(ARRAY(SELECT step_id FROM o))"
"    AND s.id = o.step_id AND s.lease_token = o.token"
"  RETURNING s.id, s.task_id, s.status, s.children, o.old, o.before,"
"    o.meta, o.started, o.smeta, o.task_status),"
" st AS ("
"  INSERT INTO step_transitions (step_id, task_id, from_state, to_state,"
"    metadata, created_at)"
"  SELECT u.id, u.task_id, u.before, 'in_progress', u.smeta,"
"    to_timestamp(u.started) FROM u"
"  WHERE u.old = 'enqueued' AND u.started IS NOT NULL"
"  UNION ALL"
"  SELECT u.id, u.task_id, CASE WHEN u.old = 'in_progress'"
"    OR u.started IS NOT NULL THEN 'in_progress' ELSE u.before END,"
"    u.status, u.meta, clock_timestamp() FROM u"
"  WHERE u.status <> 'in_progress'),"
/* The released children, how many of their parents completed here, and
 * which of them to claim (as the snapshot sees them). */
" r AS MATERIALIZED ("
"  SELECT c.id, count(*) AS n FROM u CROSS JOIN LATERAL unnest(u.children)"
"    AS c(id)"
"  WHERE u.status = 'complete' GROUP BY c.id),"
" x AS ("
"  SELECT r.id, r.n, row_number() OVER (ORDER BY c0.ready DESC, r.id)"
"      <= $4 AND c0.ready AS pick"
"  FROM r CROSS JOIN LATERAL (SELECT c0.remaining_parents = r.n"
"      AND c0.status = 'pending' AND c0.next_attempt_at <= now()"
"      AND (c0.service IS NULL OR c0.service <> ALL($3::text[])) AS ready"
"    FROM steps c0 WHERE c0.id = r.id LIMIT 1) c0),"
" k AS ("
"  UPDATE steps c SET remaining_parents = c.remaining_parents - x.n,"
"    status = CASE WHEN x.pick AND c.status = 'pending'"
"      AND c.remaining_parents = x.n THEN 'enqueued' ELSE c.status END,"
"    lease_owner = CASE WHEN x.pick AND c.status = 'pending'"
"      AND c.remaining_parents = x.n THEN $2 ELSE c.lease_owner END,"
"    lease_token = CASE WHEN x.pick AND c.status = 'pending'"
"      AND c.remaining_parents = x.n THEN nextval('step_lease_tokens')"
"      ELSE c.lease_token END,"
"    updated_at = now()"
"  FROM x WHERE c.id = ANY(ARRAY(SELECT id FROM r)) AND c.id = x.id"
"  RETURNING c.id, c.task_id, c.name, c.attempts, c.retry_limit,"
"    c.retryable, c.timeout_ms, c.lease_token,"
"    x.pick AND c.status = 'enqueued' AND c.lease_owner = $2 AS claimed,"
"    c.remaining_parents = 0 AND c.status IN ('pending', 'enqueued')"
"      AS live),"
/* The tasks sched_sql_finalize must look at, for the statement after this
 * one in the same transaction (a transaction-local setting: that statement
 * must see this one's rows, so it cannot be a part of it): the ones that
 * start here, and the ones that may end here.  A task can only end with a
 * batch that completed or failed one of its steps and made none of its
 * steps ready; any other batch leaves it a live step. */
" f AS MATERIALIZED ("
"  SELECT set_config('taskerd.finalize', coalesce(array_agg(DISTINCT"
"      f.task_id)::text, '{}'), true) AS v FROM ("
"    SELECT o.task_id FROM o WHERE o.task_status = 'pending'"
"    UNION ALL"
"    SELECT u.task_id FROM u"
"    WHERE u.status IN ('complete', 'error', 'cancelled')"
"      AND u.task_id <> ALL(ARRAY(SELECT task_id FROM k WHERE live))) f) "
"SELECT NULL::bigint, NULL::bigint, NULL::text, NULL::int, NULL::int,"
"  NULL::boolean, NULL::int, NULL::bigint, NULL::bigint, NULL::text,"
"  NULL::text, NULL::text, u.id, u.task_status, u.status, false FROM u "
"UNION ALL "
"SELECT k.id, k.task_id, k.name, k.attempts, k.retry_limit, k.retryable,"
"  k.timeout_ms, k.lease_token, t.template_id, t.correlation_id,"
"  t.context::text, " SQL_RESULTS_FOR("k", "$5") ", NULL, NULL, NULL,"
"  NULL FROM k JOIN tasks t ON t.id = k.task_id WHERE k.claimed "
"UNION ALL "
/* Outcomes sent again after a batch's answer was lost that the lost batch
 * did write (their transition is there, metadata and all), with the status
 * it wrote.  Looked up through the transitions' key, (task_id, id): there
 * is no index on step_id, and a scan of the table took as long as the
 * table is big.  Only for the records flagged lost. */
"SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
"  NULL, o0.step_id, NULL, w.to_state, true FROM o0"
" CROSS JOIN LATERAL (SELECT st.to_state FROM steps s1"
"   JOIN step_transitions st ON st.task_id = s1.task_id"
"     AND st.step_id = s1.id"
"   WHERE s1.id = o0.step_id AND st.metadata = o0.meta"
"   ORDER BY st.id DESC LIMIT 1) w"
" WHERE o0.lost AND o0.step_id <> ALL(ARRAY(SELECT id FROM u)) "
"UNION ALL "
"SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
"  NULL, NULL, NULL, NULL, NULL FROM f WHERE f.v IS NULL";

/*
 * Finalise tasks ($1: bigint[]; NULL: the ones sql_apply chose, earlier in
 * the transaction) from their steps: complete when every step is complete
 * or resolved; error when a step failed and nothing else can run;
 * in_progress otherwise.  Runs after sql_apply in the same transaction,
 * which began with sched_sql_lock_tasks: two transactions finishing the
 * last two steps of a task (on two nodes, say) must not each see the other
 * step unfinished and leave the task in_progress for ever.  A task whose
 * status changed meanwhile (a cancel) is left alone.  One that ends in the
 * batch that started it (quick steps) is written in_progress on the way,
 * as its steps were: the audit trail has no jump from pending to the end.
 */
const char sched_sql_finalize[] =
"WITH a AS MATERIALIZED ("
"  SELECT i.id AS task_id, a.* FROM unnest(coalesce($1::bigint[],"
"      nullif(current_setting('taskerd.finalize', true), '')::bigint[]))"
"    AS i(id)"
"  CROSS JOIN LATERAL (SELECT"
"    bool_and(s.status IN ('complete', 'resolved_manually')) AS done,"
"    bool_or(s.status = 'resolved_manually') AS by_hand,"
"    bool_or(s.status = 'error') AS failed,"
"    bool_or(s.status IN ('enqueued', 'in_progress', 'waiting_for_retry')"
"      OR (s.status = 'pending' AND s.remaining_parents = 0)) AS live"
"    FROM steps s WHERE s.task_id = i.id) a),"
" n AS ("
"  SELECT t.id, t.status AS old,"
"    CASE WHEN a.done AND a.by_hand THEN 'resolved_manually'"
"         WHEN a.done THEN 'complete'"
"         WHEN a.failed AND NOT a.live THEN 'error'"
"         ELSE 'in_progress' END AS new"
"  FROM a CROSS JOIN LATERAL (SELECT * FROM tasks t"
"    WHERE t.id = a.task_id LIMIT 1) t"
"  WHERE t.status IN ('pending', 'in_progress', 'error')),"
" u AS ("
"  UPDATE tasks t SET status = n.new, updated_at = now(),"
"    completed_at = CASE WHEN n.new IN ('complete', 'resolved_manually')"
"      THEN clock_timestamp() END"
"  FROM n WHERE t.id = n.id AND n.old <> n.new AND t.status = n.old"
"  RETURNING t.id, n.old, n.new)"
"INSERT INTO task_transitions (task_id, from_state, to_state)"
"SELECT u.id, x.f, x.t FROM u CROSS JOIN LATERAL (VALUES"
"  (u.old, CASE WHEN u.old = 'pending' THEN 'in_progress' ELSE u.new END, 1),"
"  ('in_progress', u.new, 2)) x(f, t, k)"
"WHERE x.k = 1 OR (u.old = 'pending' AND u.new <> 'in_progress')"
"ORDER BY u.id, x.k";

/* Serialise the transactions that finalise the same tasks ($1: bigint[]):
 * transaction-scoped advisory locks on the task ids (the 64-bit key space;
 * the sweeper's lock uses the two-key one), taken in id order so two
 * batches never wait for each other in a circle.  The statements after it
 * see what the previous holder committed. */
const char sched_sql_lock_tasks[] =
"SELECT count(pg_advisory_xact_lock(id)) FROM"
" (SELECT DISTINCT unnest($1::bigint[]) AS id ORDER BY 1) x";

/*
 * Claims whose node is gone: at start, the ones this node ($1) held before
 * it restarted ($2 true); otherwise those of nodes whose lease ran out,
 * under an advisory lock so one node sweeps at a time.  The sweeper takes
 * each claim over (a new token fences the old holder), then fails the
 * attempt through the normal path, or hands back a claim still
 * 'enqueued' (column 11: the status).
 */
static const char sql_expired[] =
"WITH lk AS (SELECT $2::boolean OR pg_try_advisory_xact_lock("
    SCHED_SWEEP_LOCK ", 1) AS ok),"
" x AS ("
"  SELECT s.id, s.lease_owner AS owner, s.status FROM steps s"
"  WHERE s.status IN ('enqueued', 'in_progress') AND (SELECT ok FROM lk)"
"    AND CASE WHEN $2::boolean THEN s.lease_owner = $1"
"      ELSE s.lease_owner <> $1 AND NOT EXISTS (SELECT 1 FROM nodes n"
"        WHERE n.id = s.lease_owner AND n.lease_expires_at > now()) END"
"  LIMIT 1000 FOR UPDATE SKIP LOCKED),"
" u AS ("
"  UPDATE steps s SET lease_owner = $1,"
"    lease_token = nextval('step_lease_tokens'), updated_at = now()"
"  FROM x WHERE s.id = x.id"
"  RETURNING s.id, s.task_id, s.name, s.attempts, s.retry_limit,"
"    s.retryable, s.timeout_ms, s.lease_token, x.owner, x.status)"
"SELECT u.id, u.task_id, u.name, u.attempts, u.retry_limit, u.retryable,"
"  u.timeout_ms, u.lease_token, t.template_id, t.correlation_id, u.owner,"
"  u.status FROM u JOIN tasks t ON t.id = u.task_id";

/*
 * This node's own claims that it does not know about ($1 node, $2 the
 * lease tokens it holds, $3 milliseconds, $4 when the start-up sweep ran):
 * a transaction that claimed them committed, but its answer was lost with
 * the connection, so no worker will ever run them and no other node sweeps
 * them while this one lives.  Only rows last changed $3 ms ago or more are
 * taken: no job still in flight can have written them; or changed before
 * the start-up sweep, which this process's jobs all follow: a batch of its
 * killed predecessor that the server ran on and committed after that
 * sweep had passed over its locked rows.  Each is taken over with a new
 * token (a late answer can no longer match); the caller hands 'enqueued'
 * ones back (they never started) and fails 'in_progress' ones (a sweep
 * whose answer was lost took them from a node that may have run them).
 */
static const char sql_orphans[] =
"WITH x AS ("
"  SELECT s.id, s.status FROM steps s"
"  WHERE s.lease_owner = $1 AND s.status IN ('enqueued', 'in_progress')"
"    AND s.lease_token <> ALL($2::bigint[])"
"    AND (s.updated_at < now() - $3::bigint * interval '1 millisecond'"
"      OR s.updated_at < $4::timestamptz)"
"  LIMIT 1000 FOR UPDATE SKIP LOCKED),"
" u AS ("
"  UPDATE steps s SET lease_token = nextval('step_lease_tokens'),"
"    updated_at = now()"
"  FROM x WHERE s.id = x.id"
"  RETURNING s.id, s.task_id, s.name, s.attempts, s.retry_limit,"
"    s.retryable, s.timeout_ms, s.lease_token, x.status)"
"SELECT u.id, u.task_id, u.name, u.attempts, u.retry_limit, u.retryable,"
"  u.timeout_ms, u.lease_token, t.template_id, t.correlation_id, u.status"
" FROM u JOIN tasks t ON t.id = u.task_id";

/* Hand back claims that never reached a worker (shutdown, a breaker that
 * opened, a lapsed node lease).  Nothing happened that the audit trail
 * should show: the claim wrote no transition.  A step whose task was
 * cancelled meanwhile is not handed back but cancelled, as the cancel
 * would have done had the step not been claimed; the task's row is
 * share-locked first, so a cancel committing meanwhile is seen.  (Only
 * the tasks of claims still this node's: a hand-back sent again after
 * another node took them over waits on no lock of theirs.) */
static const char sql_release[] =
"WITH o AS ("
"  SELECT * FROM jsonb_to_recordset($1::jsonb) AS o(step_id bigint,"
"    token bigint)),"
" t AS ("
"  SELECT t.id, t.status FROM tasks t WHERE t.id IN (SELECT s.task_id"
"    FROM steps s JOIN o ON o.step_id = s.id AND s.lease_token = o.token"
"    WHERE s.status = 'enqueued') FOR SHARE),"
" u AS ("
"  UPDATE steps s SET status = CASE WHEN t.status = 'cancelled'"
"      THEN 'cancelled' WHEN s.attempts = 0 THEN 'pending'"
"      ELSE 'waiting_for_retry' END,"
"    completed_at = CASE WHEN t.status = 'cancelled' THEN clock_timestamp()"
"      END,"
"    lease_owner = NULL, lease_token = NULL, updated_at = now()"
"  FROM o, t WHERE s.id = o.step_id AND s.lease_token = o.token"
"    AND s.status = 'enqueued' AND t.id = s.task_id"
"  RETURNING s.id, s.task_id, s.status, s.attempts) "
"INSERT INTO step_transitions (step_id, task_id, from_state, to_state,"
"  metadata)"
"SELECT id, task_id, CASE WHEN attempts = 0 THEN 'pending'"
"  ELSE 'waiting_for_retry' END, 'cancelled',"
"  '{\"reason\": \"task cancelled before the step started\"}'"
" FROM u WHERE status = 'cancelled'";

TAILQ_HEAD(claimq, claim);

static struct {
	bool		 want;		/* ready steps may be left unclaimed */
	bool		 need_due;	/* ask when the next step is due */
	bool		 claiming;	/* a general claim is in flight */
	unsigned	 claim_epoch;	/* node_epoch() when it was sent */
	bool		 applying;	/* an apply job is in flight */
	bool		 sweeping;
	bool		 recovered;	/* start-up recovery done */
	char		 recovered_at[48];	/* its now(), database time */
	struct claimq	 queue;		/* claimed, waiting for a worker */
	int		 nqueued;
	struct claimq	 unmarked;	/* running, 'in_progress' not written */
	struct claimq	 marking;	/* must not run twice: waiting for
					 * their 'in_progress' to commit */
	int		 nmarking;
	int		 nmarked;	/* committed, queued (c->marked) */
	int		 ndispatched;	/* claims held by workers */
	int		 reserved;	/* limits of claims in flight */
	json_t		*batch;		/* {"step_id": record} not yet sent */
	json_t		*applying_recs;	/* the records of the batch in flight */
	int		 alone;		/* batches to send one record each */
	json_t		*held;		/* {"task_id": next try (ms)}: locked
					 * elsewhere, kept out of batches */
	json_t		*unknown_tmpls;	/* {"template_id": until (ms)} */
	json_t		*cancelled;	/* {"task_id": until (ms)}: tasks
					 * cancelled lately (sched_cancel_heard) */
	bool		 cancels_unheard; /* cancels since the LISTEN broke
					 * are not yet looked up */
	json_t		*unreleased;	/* [{step_id, token}]: hand-backs
					 * the database did not take */
	bool		 unreleased_told; /* logged, none written since */
	struct event	*wake;		/* next_attempt_at of the soonest step */
	struct timespec	 wake_at;
	struct event	*backstop;
	struct event	*sweep;
	struct event	*retry_apply;
	struct event	*held_due;	/* the first held task's next try */
	struct event	*mark;
	const struct tmpl_registry *readers_of;	/* registry readers is for */
	size_t		 readers_old;	/* and how many old versions */
	char		*readers;
} sc;

static void	sched_run(void);
static void	sched_flush(void);
static void	sched_cancel_heard(const char *);
static void	sched_release_send(json_t *);
static void	sched_unknown_template(long long, const struct claim *);
static void	sched_marks_done(json_t *, json_t *, unsigned);
static void	sched_unstarted(struct claim *, const char *);
static const char *claim_service(const struct claim *);
static char	*id_array(json_t *);

static void
readers_add(json_t *obj, const struct tmpl *t)
{
	json_t	*names = json_object();
	char	 key[24];
	size_t	 j;

	for (j = 0; j < t->nsteps; j++)
		if (t->steps[j].reads_results)
			json_object_set(names, t->steps[j].name,
			    t->steps[j].ancestors);
	snprintf(key, sizeof(key), "%lld", (long long)t->db_id);
	json_object_set_new(obj, key, names);
}

/*
 * The steps whose handler may read other steps' results, with the steps
 * whose results they get, as the claims' readers parameter:
 * {"template_id": {"step": [the steps it depends on]}}: those of the
 * template files and of the old versions loaded as stored.  Built again
 * when either changes (a reload replaces the registry, and never frees
 * the old one while the daemon runs, so the pointer identifies it; old
 * versions are only ever added).
 */
static const char *
results_readers(void)
{
	json_t	*obj;
	size_t	 i;

	if (sc.readers != NULL && sc.readers_of == sv.templates &&
	    sc.readers_old == oldversions_count())
		return sc.readers;
	obj = json_object();
	for (i = 0; i < sv.templates->n; i++)
		readers_add(obj, sv.templates->items[i]);
	for (i = 0; i < oldversions_count(); i++)
		readers_add(obj, oldversions_item(i));
	free(sc.readers);
	sc.readers = jsontext(obj, 0);
	sc.readers_of = sv.templates;
	sc.readers_old = oldversions_count();
	json_decref(obj);
	return sc.readers;
}

/* Into steps, the results in done ({"name": {"results": ...}}, of the
 * batch that released the step) of the steps that st depends on. */
static void
results_of_ancestors(json_t *steps, json_t *done, const struct tmpl_step *st)
{
	const char	*k;
	json_t		*v, *name;
	size_t		 i;

	json_object_foreach(done, k, v)
		json_array_foreach(st->ancestors, i, name)
			if (strcmp(json_string_value(name), k) == 0) {
				json_object_set(steps, k, v);
				break;
			}
}

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
sched_unwritten(void)
{
	return (int)(json_object_size(sc.batch) + (sc.applying_recs != NULL ?
	    json_object_size(sc.applying_recs) : 0));
}

int
sched_inflight(void)
{
	return sc.nqueued + sc.nmarking + sc.ndispatched;
}

int
sched_unreleased(void)
{
	return (int)json_array_size(sc.unreleased);
}

/* Whether claim c is of service (NULL: any). */
static bool
claim_of(const struct claim *c, const char *service)
{
	return service == NULL || (claim_service(c) != NULL &&
	    strcmp(claim_service(c), service) == 0);
}

/*
 * How many claims of service (NULL: any) are marked or being marked: the
 * workers and places of the service they will take when they start.
 * Without held, not those being marked for a task held aside (locked
 * elsewhere: that write may wait long, and no retryable claim waits with
 * it, nor any worker).
 */
static int
marks_of(const char *service, bool held)
{
	struct claim	*c;
	char		 key[24];
	int		 n = 0;

	TAILQ_FOREACH(c, &sc.marking, entry) {
		snprintf(key, sizeof(key), "%lld", (long long)c->task_id);
		if (claim_of(c, service) &&
		    (held || json_object_get(sc.held, key) == NULL))
			n++;
	}
	TAILQ_FOREACH(c, &sc.queue, entry)
		if (c->marked && claim_of(c, service))
			n++;
	return n;
}

/* Whether a claim of a step that must not run twice may be marked now:
 * an idle worker is there for it, and a place of its service, beside
 * those its marked elders wait for (sched_start). */
static bool
may_mark(const struct claim *c)
{
	const char	*service = claim_service(c);

	return pool_idle() - sc.nmarking - sc.nmarked > 0 &&
	    (service == NULL || services_room(service) >
	    marks_of(service, true));
}

/*
 * Whether a queued claim may start now, as far as its kind goes (the
 * callers check for an idle worker and the service's room).  A retryable
 * one leaves the workers and places of its service that marked claims
 * wait for: one that took the worker while a mark was being written left
 * the marked step 'in_progress' without running, and a crash then ended
 * its attempt - an error, for a step that must not run twice.
 */
static bool
may_start(const struct claim *c)
{
	const char	*service = claim_service(c);

	if (c->marked || sc.nmarking + sc.nmarked == 0)
		return true;
	if (!c->retryable)
		return may_mark(c);
	return pool_idle() > marks_of(NULL, false) && (service == NULL ||
	    services_room(service) > marks_of(service, false));
}

static void
ms_to_tv(int64_t ms, struct timeval *tv)
{
	if (ms < 0)
		ms = 0;
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

static int64_t
ms_since(const struct timespec *then, const struct timespec *now)
{
	return (now->tv_sec - then->tv_sec) * 1000 +
	    (now->tv_nsec - then->tv_nsec) / 1000000;
}

/* The monotonic clock in ms, for deadlines kept in JSON maps. */
static int64_t
mono_ms(void)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
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

/* A retry is due: claim, and learn when the next one is (the database's
 * next_attempt_at was set a moment after this timer). */
static void
sched_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	sc.need_due = true;
	sched_kick();
}

static void
sched_backstop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval	tv;

	ms_to_tv(SCHED_BACKSTOP_MS, &tv);
	evtimer_add(sc.backstop, &tv);
	sc.need_due = true;
	/* What the database missed: cancels while the LISTEN was down,
	 * hand-backs. */
	if (sc.cancels_unheard)
		sched_cancel_heard(NULL);
	sched_resend_handbacks();
	sched_kick();
}

/* Fill the identity and retry fields common to claims and swept rows:
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

/* The labels of a claim's step metrics. */
static const char *
claim_namespace(const struct claim *c)
{
	return c->tmpl != NULL ? c->tmpl->namespace : "unknown";
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

/*
 * How many more steps this node may claim.  It holds its running steps
 * plus a prefetch, so a worker that finishes finds its next step without a
 * round trip.  Claims waiting for their service's capacity do not count:
 * they must not hold back work for other services (their service's steps
 * are not claimed meanwhile).  The general claim fills only half the
 * prefetch, so the children of running steps always find room: a task that
 * has started finishes before new ones start, which keeps dispatch latency
 * low under a burst of creations.
 */
static int
sched_room(bool children)
{
	struct claim	*c;
	int		 held = sc.ndispatched + sc.nmarking + sc.reserved;
	int		 cap = sv.conf->workers_count;

	TAILQ_FOREACH(c, &sc.queue, entry)
		if (services_may_dispatch(claim_service(c)))
			held++;
	cap += children ? sv.conf->scheduler_prefetch :
	    sv.conf->scheduler_prefetch / 2;
	if (cap - held > sv.conf->scheduler_batch)
		return sv.conf->scheduler_batch;
	return cap - held;
}

/* Handed back: this node may claim them again (the hint does not wake
 * this node itself), at once rather than at the backstop - a lost node's
 * queued claims, with no other node to take them.  (sched_run claims
 * nothing while this node stops or has no lease, nor the steps of a
 * service whose breaker is open.)  A hand-back that never reached the
 * database, or whose connection broke (it was away, or only the spare
 * was back), goes again at the backstop, not after the orphan sweep's
 * grace: a cancelled task's steps, until then 'enqueued', read as
 * cancelled only once it is written.  (Sent twice, it changes nothing:
 * it names the claims' tokens.)  One the database refused (a lock held
 * elsewhere, a standby) is left to the sweep, rather than tried every
 * few seconds for as long as that lasts. */
static void
sched_released(struct db_job *job, void *arg)
{
	json_t		*arr = arg;
	const char	*state = db_job_sqlstate(job);

	if (db_job_error(job) == NULL) {
		sc.unreleased_told = false;
		sched_kick();
	} else if (db_job_lost(job) || (state != NULL &&
	    strncmp(state, "08", 2) == 0)) {
		/* Once per outage, not at every backstop it lasts. */
		if (!sc.unreleased_told)
			log_warnx("hand-back of claimed steps not written, sent "
			    "again when the database answers count=%zu "
			    "reason=%s", json_array_size(arr),
			    log_quote(db_job_error(job)));
		sc.unreleased_told = true;
		json_array_extend(sc.unreleased, arr);
	}
	json_decref(arr);
}

/* Send again the hand-backs that never reached the database: at the
 * backstop, and as soon as a connection is up (a node that stops waits for
 * them). */
void
sched_resend_handbacks(void)
{
	json_t	*arr;

	if (json_array_size(sc.unreleased) == 0)
		return;
	arr = sc.unreleased;
	sc.unreleased = json_array();
	sched_release_send(arr);
}

/* Send the hand-back of arr's claims ([{step_id, token}]); it takes arr. */
static void
sched_release_send(json_t *arr)
{
	struct db_job	*job;
	const char	*params[1];
	char		*s;

	s = jsontext(arr, 0);
	params[0] = s;
	job = db_job_new(sched_released, arr);
	db_job_add(job, sql_release, 1, params);
	db_submit(job);
	node_hint();
	free(s);
}

/* Hand back claims without counting an attempt (their service's breaker
 * opened, this node is stopping or its lease lapsed, a lost node's queued
 * ones); ownership of the claims ends here. */
static void
sched_release(struct claim **claims, size_t n)
{
	json_t		*arr;
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
	sched_release_send(arr);
}

static void
sched_mark_arm(void)
{
	struct claim	*c = TAILQ_FIRST(&sc.unmarked);
	struct timespec	 now;
	struct timeval	 tv;

	if (c == NULL || evtimer_pending(sc.mark, NULL))
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms_to_tv(SCHED_MARK_MS - ms_since(&c->started, &now) + 1, &tv);
	evtimer_add(sc.mark, &tv);
}

/* Put a record in the next batch; a later record of the same step (its
 * outcome after its start mark) replaces the earlier one.  The task and
 * step name are for us (sched_apply_done), the database ignores them. */
static void
batch_put(const struct claim *c, json_t *rec)
{
	char	key[24];

	json_object_set_new(rec, "task_id", json_integer(c->task_id));
	json_object_set_new(rec, "name", json_string(c->step_name));
	snprintf(key, sizeof(key), "%lld", (long long)c->step_id);
	json_object_set_new(sc.batch, key, rec);
}

/* The start of an attempt: when a worker took it, and who. */
static void
start_fields(const struct claim *c, json_t *rec)
{
	json_object_set_new(rec, "started", json_real(
	    (double)c->started_wall.tv_sec +
	    (double)c->started_wall.tv_nsec / 1e9));
	json_object_set_new(rec, "smeta", json_pack("{s:I, s:s}",
	    "attempt", (json_int_t)c->attempt, "node", sv.node_id));
}

/* Its 'in_progress' into the next batch. */
static void
mark_put(struct claim *c)
{
	json_t	*rec;

	c->marked = true;
	rec = json_pack("{s:I, s:I, s:s}", "step_id", (json_int_t)c->step_id,
	    "token", (json_int_t)c->lease_token, "status", "in_progress");
	start_fields(c, rec);
	batch_put(c, rec);
}

/*
 * Steps that have run for SCHED_MARK_MS get their 'in_progress' written
 * with the next batch.  Shorter ones never need it: their outcome carries
 * the start, and both transitions are written at once.
 */
static void
sched_mark_cb(evutil_socket_t fd, short what, void *arg)
{
	struct claim	*c;
	struct timespec	 now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	while ((c = TAILQ_FIRST(&sc.unmarked)) != NULL &&
	    ms_since(&c->started, &now) >= SCHED_MARK_MS) {
		TAILQ_REMOVE(&sc.unmarked, c, entry);
		mark_put(c);
	}
	sched_mark_arm();
	sched_flush();
}

/*
 * Give a claim to an idle worker (pool_idle() > 0).  A step that must not
 * run twice (retryable: false) goes to one only once its 'in_progress' has
 * committed: then it waits at the head of the queue (sched_marks_done).
 * Started first and marked later, as the others are, it would read
 * 'enqueued' if the node died in between, which a sweep takes for never
 * run and hands back: the step would run again.  No worker waits for the
 * mark (a task locked elsewhere can hold it back for long), nor does its
 * service's place; but only as many are marked as workers are idle
 * (may_mark): a mark says the step started, and a crash would end each
 * marked one's attempt.
 */
static void
sched_start(struct claim *c)
{
	if (!c->marked) {
		clock_gettime(CLOCK_MONOTONIC, &c->started);
		clock_gettime(CLOCK_REALTIME, &c->started_wall);
	}
	if (!c->retryable && !c->marked) {
		TAILQ_INSERT_TAIL(&sc.marking, c, entry);
		sc.nmarking++;
		mark_put(c);
		sched_flush();
		return;
	}
	sc.ndispatched++;
	c->dispatched = true;
	if (!c->marked)
		TAILQ_INSERT_TAIL(&sc.unmarked, c, entry);
	else
		sc.nmarked--;
	services_started(claim_service(c));
	metrics_inc(M_STEPS_STARTED, 1, claim_namespace(c), claim_template(c),
	    c->step_name);
	pool_dispatch(c);	/* the pool holds it until the outcome */
	sched_mark_arm();
}

/* Whether c's task was cancelled in the last SCHED_CANCELLED_MS. */
static bool
claim_cancelled(const struct claim *c)
{
	char	key[24];

	if (json_object_size(sc.cancelled) == 0)
		return false;
	snprintf(key, sizeof(key), "%lld", (long long)c->task_id);
	return json_object_get(sc.cancelled, key) != NULL;
}

/* Give queued claims to idle workers, as their services allow; hand back
 * those of a cancelled task (which the hand-back cancels) and of an open
 * breaker (a marked one's record does the same: sched_unstarted). */
static void
sched_dispatch_queued(void)
{
	struct claim	*c, *next;
	struct claim	*release[64];
	size_t		 nrelease = 0;
	const char	*service;

	if (!node_lease_ok())
		return;		/* the claims may be another node's by now */
	for (c = TAILQ_FIRST(&sc.queue); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		service = claim_service(c);
		if (services_open(service) || claim_cancelled(c)) {
			TAILQ_REMOVE(&sc.queue, c, entry);
			sc.nqueued--;
			if (c->marked) {
				sc.nmarked--;
				sched_unstarted(c, claim_cancelled(c) ?
				    "the task was cancelled before the step "
				    "started" : "its service's breaker opened "
				    "before the step started");
				continue;
			}
			release[nrelease++] = c;
			if (nrelease == 64) {
				sched_release(release, nrelease);
				nrelease = 0;
			}
			continue;
		}
		if (pool_idle() == 0 || !may_start(c) ||
		    !services_may_dispatch(service))
			continue;
		TAILQ_REMOVE(&sc.queue, c, entry);
		sc.nqueued--;
		sched_start(c);
	}
	sched_release(release, nrelease);
}

/* Queue the claims in a statement's rows (columns 0-11 as sql_claim's;
 * rows with a NULL first column are not claims).  done: results to add,
 * {"task_id": {"step": {"results": ...}}}, of steps whose completion the
 * statement itself wrote (its snapshot does not show them).  Children go
 * first: finishing started tasks comes before starting new ones. */
static int
sched_enqueue(PGresult *res, bool first, json_t *done, unsigned epoch)
{
	struct claim	*c, *last = NULL, **back = NULL;
	json_t		*ctx, *steps;
	int64_t		*unknown = NULL;	/* template ids not loaded */
	char		 key[24];
	int		 i, n = 0;
	size_t		 nback = 0, nunknown = 0, k;

	for (i = 0; i < PQntuples(res); i++) {
		if (PQgetisnull(res, i, 0))
			continue;
		n++;
		c = claim_from_row(res, i);
		/* Handed back, together below: claimed by a job that was in
		 * flight when the node began to stop (after it handed its
		 * queue back), or before its lease lapsed (another node may
		 * have taken the claim over and run the step since; then the
		 * hand-back is a no-op); or a step of another node's
		 * template (a rolling deploy: a version this node has not
		 * loaded yet). */
		if (sv.stopping || epoch != node_epoch() || c->tmpl == NULL) {
			if (c->tmpl == NULL) {
				unknown = xreallocarray(unknown, nunknown + 1,
				    sizeof(*unknown));
				unknown[nunknown] = strtoll(PQgetvalue(res, i,
				    8), NULL, 10);
				sched_unknown_template(unknown[nunknown++], c);
			}
			back = xreallocarray(back, nback + 1, sizeof(*back));
			back[nback++] = c;
			continue;
		}
		ctx = db_json(res, i, 10);
		steps = db_json(res, i, 11);
		if (ctx == NULL || steps == NULL)	/* not jsonb's text? */
			log_warnx("step input unreadable, running it with {} "
			    "task=%lld step=%s", (long long)c->task_id,
			    log_quote(c->step_name));
		snprintf(key, sizeof(key), "%lld", (long long)c->task_id);
		if (steps != NULL && done != NULL && c->tstep != NULL &&
		    c->tstep->reads_results)
			results_of_ancestors(steps, json_object_get(done, key),
			    c->tstep);
		c->input = json_pack("{s:o, s:o, s:I}",
		    "context", ctx ? ctx : json_object(),
		    "steps", steps ? steps : json_object(),
		    "attempt", (json_int_t)c->attempt);
		if (c->tstep != NULL && c->tstep->dependent_system != NULL)
			json_object_set_new(c->input, "service",
			    services_input(c->tstep->dependent_system));
		if (c->tstep == NULL) {
			/* The template was changed in place since the task
			 * was created: nothing can run this step. */
			log_warnx("step has no loaded template task_id=%lld "
			    "step=%s correlation_id=%s", (long long)c->task_id,
			    c->step_name, c->correlation_id);
			c->retryable = false;
			sched_fail(c, "unknown_template", "the step's template "
			    "is not loaded on this node");
			continue;
		}
		/* A worker is idle: nothing queued could start before this
		 * one, which need not wait for the rest of the rows. */
		if (pool_idle() > 0 && may_start(c) && node_lease_ok() &&
		    !services_open(claim_service(c)) &&
		    !claim_cancelled(c) &&
		    services_may_dispatch(claim_service(c))) {
			sched_start(c);
			continue;
		}
		if (!first)
			TAILQ_INSERT_TAIL(&sc.queue, c, entry);
		else if (last == NULL)
			TAILQ_INSERT_HEAD(&sc.queue, c, entry);
		else
			TAILQ_INSERT_AFTER(&sc.queue, last, c, entry);
		last = c;
		sc.nqueued++;
	}
	sched_release(back, nback);
	free(back);
	/* After the hand-back, so that the claim made once an old version
	 * is loaded finds its steps ready. */
	for (k = 0; k < nunknown; k++)
		oldversions_lookup(unknown[k]);
	free(unknown);
	return n;
}

static void
sched_claim_done(struct db_job *job, void *arg)
{
	int		 asked = (int)(intptr_t)arg;
	PGresult	*due;
	int64_t		 next_ms;
	int		 n;

	sc.claiming = false;
	sc.reserved -= asked;
	if (db_job_error(job) != NULL) {
		log_warnx("claim failed error=%s",
		    log_quote(db_job_error(job)));
		sc.want = true;
		sched_wake_in(SCHED_RETRY_APPLY_MS);
		return;
	}
	/* (After the plans' setting: sched_run.) */
	n = sched_enqueue(db_job_result(job, 1), false, NULL, sc.claim_epoch);
	if (n == asked) {
		sc.want = true;		/* there may be more */
		node_hint();		/* for nodes with room */
	}
	due = db_job_result(job, 2);
	if (due != NULL && PQntuples(due) == 1 && !PQgetisnull(due, 0, 0)) {
		next_ms = strtoll(PQgetvalue(due, 0, 0), NULL, 10);
		sched_wake_in(next_ms > 0 ? next_ms : SCHED_CONTENDED_MS);
	}
	sched_run();
}

/*
 * A step of a template this node has not loaded (another node created its
 * task, or its version left this node's files), which it claimed: the
 * general claim takes any task's.
 * The caller hands it back unstarted, and for a while this node's claims
 * pass over the template's steps, leaving them to a node that has it.
 * When no live node has it in its files and this node's files hold
 * another version of the template, oldversions.c loads it as stored, and
 * the steps are claimed again.  Otherwise the step waits, and every node
 * says so here each time it looks again.
 */
#define SCHED_UNKNOWN_TMPL_MS	60000

static void
sched_unknown_template(long long template_id, const struct claim *c)
{
	char		 key[24];

	log_warnx("step of a template this node does not have in its files, "
	    "handed back template_id=%lld task_id=%lld step=%s "
	    "correlation_id=%s", template_id, (long long)c->task_id,
	    c->step_name, c->correlation_id);
	snprintf(key, sizeof(key), "%lld", template_id);
	json_object_set_new(sc.unknown_tmpls, key, json_integer(
	    (json_int_t)(mono_ms() + SCHED_UNKNOWN_TMPL_MS)));
}

/* "{7,9}": the templates sched_unknown_template holds back from claims,
 * until they expire (by then this node may have loaded them). */
static char *
unknown_templates(void)
{
	const char	*k;
	json_t		*v;
	void		*tmp;
	int64_t		 ms = mono_ms();

	json_object_foreach_safe(sc.unknown_tmpls, tmp, k, v)
		if (json_integer_value(v) <= ms ||
		    supervisor_template(strtoll(k, NULL, 10)) != NULL)
			json_object_del(sc.unknown_tmpls, k);
	return id_array(sc.unknown_tmpls);
}

/* Claim ready steps for idle workers, and hand out claimed ones. */
static void
sched_run(void)
{
	struct db_job	*job;
	char		 limit[16], *blocked, *unknown;
	const char	*params[5];
	int		 want;

	sched_dispatch_queued();
	if (sv.stopping || !sc.recovered || sc.claiming || !sc.want ||
	    !node_lease_ok())
		return;
	want = sched_room(false);
	if (want <= 0 || db_connected() == 0)
		return;

	snprintf(limit, sizeof(limit), "%d", want);
	blocked = services_blocked();
	unknown = unknown_templates();
	params[0] = limit;
	params[1] = sv.node_id;
	params[2] = blocked;
	params[3] = results_readers();
	params[4] = unknown;
	job = db_job_new(sched_claim_done, (void *)(intptr_t)want);
	db_job_add(job, sql_generic_plans, 0, NULL);
	db_job_add(job, sql_claim, 5, params);
	if (sc.need_due) {
		params[3] = unknown;
		db_job_add(job, sql_next_due, 2, params + 2);
	}
	free(blocked);		/* db_job_add copied them */
	free(unknown);
	sc.claiming = true;
	sc.claim_epoch = node_epoch();
	sc.want = false;
	sc.need_due = false;
	sc.reserved += want;
	db_submit(job);
}

int
sched_claims_reserve(int most)
{
	int	room;

	/* Older ready steps may be waiting for room (sc.want): they go
	 * first, by age, through the general claim; new tasks wait. */
	if (sv.stopping || !sc.recovered || !node_lease_ok() || sc.want)
		return 0;
	if ((room = sched_room(false)) > most)
		room = most;
	if (room <= 0)
		return 0;
	sc.reserved += room;
	return room;
}

int
sched_claims_taken(PGresult *res, int reserved, unsigned epoch)
{
	int	n = 0;

	sc.reserved -= reserved;
	if (res != NULL)
		n = sched_enqueue(res, false, NULL, epoch);
	sched_run();
	return n;
}

void
sched_worker_idle(void)
{
	sched_run();
}

void
sched_want(void)
{
	sc.want = true;
}

void
sched_kick(void)
{
	sc.want = true;
	sched_run();
}

/* An attempt ended by its node, not by its step: the node died or
 * restarted (another node, or its next start, took the claim over), lost
 * its lease, or lost track of the claim. */
static bool
node_fault(const char *code)
{
	return strcmp(code, "node_lost") == 0 ||
	    strcmp(code, "node_restarted") == 0 ||
	    strcmp(code, "node_lease_lapsed") == 0 ||
	    strcmp(code, "claim_lost") == 0;
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
	bool		 probe = false, free_attempt;
	int64_t		 probe_wait = 0;

	if (c->dispatched) {
		sc.ndispatched--;
		if (!c->marked)
			TAILQ_REMOVE(&sc.unmarked, c, entry);
		/* (A step that must not run twice is not run again for
		 * the breaker's sake.) */
		probe = services_finished(claim_service(c), o,
		    &probe_wait) && c->retryable;
		metrics_observe(M_STEP_DURATION, (double)o->duration_us / 1e6,
		    claim_namespace(c), claim_template(c), c->step_name);
	}
	/* A failed breaker probe is recorded as an attempt but grants one
	 * more: waiting for a service to come back spends no budget.  Nor
	 * does a node that died, restarted or lost its lease under a step
	 * (DESIGN: "the step runs again"; a step with one attempt ended in
	 * error for a crash).  One that must not run twice is not. */
	free_attempt = probe || c->unstarted || (c->retryable &&
	    o->error_code != NULL && node_fault(o->error_code));
	status = free_attempt ? "waiting_for_retry" : outcome_status(c, o);
	if (strcmp(status, "waiting_for_retry") == 0) {
		delay = backoff_delay_ms(b, c->attempt, o->retry_after_ms,
		    rnd01());
		if (probe && delay < probe_wait)
			delay = probe_wait;
		sched_wake_in(delay);
	}
	meta = json_pack("{s:I, s:s, s:f}", "attempt", (json_int_t)c->attempt,
	    "outcome", proto_outcome_name(o->outcome),
	    "duration_ms", (double)o->duration_us / 1000.0);
	if (o->outcome != OUTCOME_SUCCESS) {
		err = json_pack("{s:s, s:s, s:I}",
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
		    log_quote(o->error_code ? o->error_code : "error"), status,
		    (long long)delay, c->correlation_id);
	}
	if (probe)
		json_object_set_new(meta, "breaker_probe", json_true());
	rec = json_pack("{s:I, s:I, s:s, s:b, s:I, s:O, s:o, s:o}",
	    "step_id", (json_int_t)c->step_id,
	    "token", (json_int_t)c->lease_token,
	    "status", status,
	    "free", free_attempt,
	    "delay_ms", (json_int_t)delay,
	    "results", o->results && o->outcome == OUTCOME_SUCCESS ?
	    o->results : json_null(),
	    "error", err,
	    "meta", meta);
	if (c->dispatched)
		start_fields(c, rec);
	/* The labels of the counters it moves once applied (outcome_counted);
	 * a hand-back of a step that never started moves none. */
	if (!c->unstarted)
		json_object_set_new(rec, "metric", json_pack("[s, s, s]",
		    claim_namespace(c), claim_template(c), c->step_name));
	batch_put(c, rec);
	claim_free(c);
	sched_flush();
}

/*
 * The step counters an outcome moves, counted once the database applied
 * it, by the status the step was written with (written): an outcome
 * discarded as stale (its attempt taken over by another node, which
 * counts its own) moves none, one the database refused counts as the
 * error it became, a failure in a cancelled task as none.
 */
static void
outcome_counted(json_t *rec, const char *status)
{
	json_t		*m = json_object_get(rec, "metric");
	const char	*ns, *tmpl, *step, *code;

	if (m == NULL || (strcmp(status, "complete") != 0 &&
	    strcmp(status, "error") != 0 &&
	    strcmp(status, "waiting_for_retry") != 0))
		return;
	ns = json_string_value(json_array_get(m, 0));
	tmpl = json_string_value(json_array_get(m, 1));
	step = json_string_value(json_array_get(m, 2));
	metrics_inc(strcmp(status, "complete") == 0 ? M_STEPS_COMPLETED :
	    strcmp(status, "error") == 0 ? M_STEPS_FAILED : M_STEPS_RETRIED,
	    1, ns, tmpl, step);
	code = json_string_value(json_object_get(json_object_get(rec, "error"),
	    "code"));
	if (code != NULL && strcmp(code, "timeout") == 0)
		metrics_inc(M_STEPS_TIMED_OUT, 1, ns, tmpl, step);
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

/* A batch in flight: its records (by step id), its tasks, and how many
 * children its transaction may claim. */
struct sent {
	json_t	*recs;
	json_t	*tasks;
	bool	 probe;		/* one held task's or one record: waits on
				 * locks briefly, meets one without a word */
	int	 limit;
	unsigned epoch;		/* node_epoch() when sent */
};

/*
 * The database refused a batch for another reason than a lost connection:
 * something in one record it cannot store, which would fail every batch
 * it is in, and with it every outcome of the node.  The records go one per
 * batch until that one is found; alone, it becomes a failure of its step
 * with nothing to store but the reason, and if even that is refused it is
 * dropped (the step stays claimed under a token the node no longer holds,
 * and the sweeper hands it back as an orphan).
 */
static void
apply_refused(json_t *recs, const char *why)
{
	struct claim	*c;
	const char	*k;
	json_t		*v, *err;

	if (json_object_size(recs) > 1) {
		log_warnx("applying outcomes one per batch to find the one "
		    "the database refuses count=%zu", json_object_size(recs));
		sc.alone += (int)json_object_size(recs);
		return;
	}
	json_object_foreach(recs, k, v) {
		/* A start mark: the outcome will carry the start as well. */
		if (json_is_true(json_object_get(v, "refused")) ||
		    strcmp(json_string_value(json_object_get(v, "status")),
		    "in_progress") == 0) {
			log_warnx("record dropped: the database refuses it "
			    "step_id=%s task_id=%lld step=%s", k,
			    (long long)json_integer_value(json_object_get(v,
			    "task_id")), json_string_value(json_object_get(v,
			    "name")));
			/* The mark of a step that must not run twice: no
			 * outcome follows, its claim goes (the sweeper hands
			 * the step back). */
			TAILQ_FOREACH(c, &sc.marking, entry)
				if (c->step_id == strtoll(k, NULL, 10))
					break;
			if (c != NULL) {
				TAILQ_REMOVE(&sc.marking, c, entry);
				sc.nmarking--;
				claim_free(c);	/* (nothing ran) */
			}
			json_object_del(recs, k);
			return;
		}
		log_warnx("outcome refused by the database, failing the step "
		    "step_id=%s task_id=%lld step=%s error=%s", k,
		    (long long)json_integer_value(json_object_get(v,
		    "task_id")), json_string_value(json_object_get(v, "name")),
		    log_quote(why));
		err = json_pack("{s:s, s:s%, s:i}", "code",
		    "outcome_not_stored", "message", why, strnlen(why, 300),
		    "http_status", 0);
		if (err == NULL)
			err = json_pack("{s:s, s:s, s:i}", "code",
			    "outcome_not_stored", "message", "", "http_status",
			    0);
		json_object_set_new(v, "status", json_string("error"));
		json_object_set_new(v, "free", json_false());
		json_object_set_new(v, "results", json_null());
		if (json_is_object(json_object_get(v, "meta")))
			json_object_set(json_object_get(v, "meta"), "error",
			    err);
		json_object_set_new(v, "error", err);
		json_object_set_new(v, "refused", json_true());
		return;
	}
}

/* A record's task id, as the key of completed, sc.held and sent->tasks. */
static const char *
rec_task_key(json_t *rec, char *key, size_t len)
{
	snprintf(key, len, "%lld", (long long)json_integer_value(
	    json_object_get(rec, "task_id")));
	return key;
}

/* The one task of sent is locked elsewhere: its records stay out of the
 * batches, tried again alone every SCHED_HELD_MS (sched_flush). */
static void
held_put(const struct sent *sent)
{
	const char	*k;
	json_t		*v;

	json_object_foreach(sent->tasks, k, v) {
		if (json_object_get(sc.held, k) == NULL)
			log_warnx("a task is locked elsewhere; its outcomes "
			    "wait, the others go on task_id=%s", k);
		json_object_set_new(sc.held, k,
		    json_integer((json_int_t)(mono_ms() + SCHED_HELD_MS)));
	}
}

static void
sched_apply_done(struct db_job *job, void *arg)
{
	struct sent	*sent = arg;
	PGresult	*res;
	const char	*k, *state;
	json_t		*v, *t, *applied, *completed;
	char		 key[24];
	int		 r, n;
	bool		 locked;
	struct timeval	 tv;

	sc.applying = false;
	sc.applying_recs = NULL;
	sc.reserved -= sent->limit;
	if (db_job_error(job) != NULL) {
		/* Put the batch back: applying it again is safe, the lease
		 * token check makes a second application a no-op.  A record
		 * that arrived since (an outcome after its start mark) is
		 * newer and stays. */
		state = db_job_sqlstate(job);
		locked = state != NULL && strcmp(state, "55P03") == 0;
		if (!sent->probe || !locked)
			log_warnx("applying outcomes failed count=%zu error=%s",
			    json_object_size(sent->recs),
			    log_quote(db_job_error(job)));
		if (!db_unavailable(state)) {
			/* Past the locks: its tasks are no longer held, and
			 * the search goes one record at a time. */
			json_object_foreach(sent->tasks, k, v)
				json_object_del(sc.held, k);
			apply_refused(sent->recs, db_job_error(job));
		} else if (locked && json_object_size(sent->tasks) == 1)
			held_put(sent);
		else if (locked) {
			/* A task of the batch is locked elsewhere (an open
			 * transaction on its row): one record per batch to
			 * find it, so that the others go on without it. */
			log_warnx("a task is locked elsewhere, applying "
			    "outcomes one per batch count=%zu",
			    json_object_size(sent->recs));
			sc.alone += (int)json_object_size(sent->recs);
		}
		json_object_foreach(sent->recs, k, v) {
			/* Written, perhaps: applied again, it will read as
			 * stale (below). */
			if (db_job_lost(job))
				json_object_set_new(v, "lost", json_true());
			if (json_object_get(sc.batch, k) == NULL)
				json_object_set(sc.batch, k, v);
		}
		/* The database itself is in trouble: a pause.  (A lock held
		 * elsewhere is no reason to keep back the other tasks.) */
		if (!locked) {
			ms_to_tv(SCHED_RETRY_APPLY_MS, &tv);
			evtimer_add(sc.retry_apply, &tv);
		}
		goto done;
	}
	json_object_foreach(sent->tasks, k, v)
		if (json_object_get(sc.held, k) != NULL) {
			log_info("outcomes of a task that was locked "
			    "elsewhere applied task_id=%s", k);
			json_object_del(sc.held, k);
		}
	/* Which records applied; the results of the steps they completed
	 * go into the input of the children claimed with them. */
	/* sql_apply's: after the plans' setting, the probe's lock timeout
	 * and the tasks' locks (sched_flush). */
	res = db_job_result(job, sent->probe ? 3 : 2);
	applied = json_object();
	completed = json_object();
	for (r = 0; r < PQntuples(res); r++) {
		if (PQgetisnull(res, r, 12))
			continue;
		k = PQgetvalue(res, r, 12);
		if (PQgetvalue(res, r, 15)[0] == 't') {
			log_info("outcome found written by a batch whose "
			    "answer was lost step_id=%s status=%s", k,
			    PQgetvalue(res, r, 14));
			if ((v = json_object_get(sent->recs, k)) != NULL)
				outcome_counted(v, PQgetvalue(res, r, 14));
			/* (Its retry's wake-up may have found it unwritten.) */
			if (v != NULL && strcmp(PQgetvalue(res, r, 14),
			    "waiting_for_retry") == 0)
				sched_wake_in(json_integer_value(
				    json_object_get(v, "delay_ms")));
			/* (No status: not stale, and no mark.) */
			json_object_set_new(applied, k, json_null());
			continue;
		}
		/* (With its task's status, as the batch found it.) */
		json_object_set_new(applied, k, json_string(PQgetvalue(res, r,
		    13)));
		v = json_object_get(sent->recs, k);
		if (v != NULL)
			outcome_counted(v, PQgetvalue(res, r, 14));
		/* The retry is due delay_ms after this commit: the wake-up
		 * armed with the outcome may have come before the commit and
		 * found nothing to claim. */
		if (v != NULL && strcmp(json_string_value(json_object_get(v,
		    "status")), "waiting_for_retry") == 0)
			sched_wake_in(json_integer_value(json_object_get(v,
			    "delay_ms")));
		if (v == NULL || strcmp(json_string_value(json_object_get(v,
		    "status")), "complete") != 0)
			continue;
		if ((t = json_object_get(completed, rec_task_key(v, key,
		    sizeof(key)))) == NULL)
			json_object_set_new(completed, key,
			    t = json_object());
		json_object_set_new(t, json_string_value(json_object_get(v,
		    "name")), json_pack("{s:O}", "results",
		    json_object_get(v, "results")));
	}
	sched_marks_done(sent->recs, applied, sent->epoch);
	json_object_foreach(sent->recs, k, v)
		if (json_object_get(applied, k) == NULL)
			log_warnx("stale outcome discarded step_id=%s "
			    "lease_token=%lld status=%s", k,
			    (long long)json_integer_value(json_object_get(v,
			    "token")), json_string_value(json_object_get(v,
			    "status")));
	n = sched_enqueue(res, true, completed, sent->epoch);
	/* Children left unclaimed (no room): the general claim takes them,
	 * here or on a node with room. */
	if (n == sent->limit && json_object_size(completed) > 0) {
		sc.want = true;
		node_hint();
	}
	json_decref(applied);
	json_decref(completed);
done:
	json_decref(sent->recs);
	json_decref(sent->tasks);
	free(sent);
	sched_run();
	sched_flush();
}

/*
 * A claim whose mark committed but that will not start here (the node's
 * lease lapsed meanwhile, it is stopping, the task was cancelled, the
 * service's breaker opened): the step never ran, and waits for another
 * attempt, which this one does not spend (in a cancelled task it is
 * cancelled).
 */
static void
sched_unstarted(struct claim *c, const char *why)
{
	struct proto_step_outcome o;

	memset(&o, 0, sizeof(o));
	o.step_id = c->step_id;
	o.lease_token = c->lease_token;
	o.outcome = OUTCOME_RETRYABLE;
	o.error_code = "not_started";
	o.error_message = (char *)why;
	o.retry_after_ms = -1;
	c->unstarted = true;
	sched_outcome(c, &o);
}

/* The marks of steps that must not run twice that were in a batch just
 * committed (recs; applied: those that applied): the claims go to the
 * head of the queue; a stale one is dropped. */
static void
sched_marks_done(json_t *recs, json_t *applied, unsigned epoch)
{
	struct claim	*c, *next;
	json_t		*rec;
	const char	*status;
	char		 key[24];

	for (c = TAILQ_FIRST(&sc.marking); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		snprintf(key, sizeof(key), "%lld", (long long)c->step_id);
		if ((rec = json_object_get(recs, key)) == NULL ||
		    strcmp(json_string_value(json_object_get(rec, "status")),
		    "in_progress") != 0)
			continue;
		TAILQ_REMOVE(&sc.marking, c, entry);
		sc.nmarking--;
		if ((status = json_string_value(json_object_get(applied,
		    key))) == NULL)
			claim_free(c);	/* (nothing ran) */
		else if (sv.stopping)
			sched_unstarted(c, "the node began to stop before the "
			    "step started");
		else if (!node_lease_ok() || epoch != node_epoch())
			sched_unstarted(c, "the node's lease lapsed before the "
			    "step started");
		else if (claim_cancelled(c) || strcmp(status, "cancelled") == 0)
			sched_unstarted(c, "the task was cancelled before the "
			    "step started");
		else {
			/* First for the next idle worker (sched_run). */
			TAILQ_INSERT_HEAD(&sc.queue, c, entry);
			sc.nqueued++;
			sc.nmarked++;
		}
	}
}

static void
sched_retry_apply_cb(evutil_socket_t fd, short what, void *arg)
{
	sched_flush();
}

/* How many of the records complete their step. */
static int
batch_completions(json_t *recs)
{
	const char	*k;
	json_t		*v;
	int		 n = 0;

	json_object_foreach(recs, k, v)
		if (strcmp(json_string_value(json_object_get(v, "status")),
		    "complete") == 0)
			n++;
	return n;
}

/* "{1,2,3}": a PostgreSQL array literal of the keys (ids) of an object. */
static char *
id_array(json_t *obj)
{
	const char	*k;
	json_t		*v;
	size_t		 len = 3;
	char		*ids, *p;

	json_object_foreach(obj, k, v)
		len += strlen(k) + 1;
	ids = p = xmalloc(len);
	*p++ = '{';
	json_object_foreach(obj, k, v)
		p += sprintf(p, "%s%s", p == ids + 1 ? "" : ",", k);
	*p++ = '}';
	*p = '\0';
	return ids;
}

/* For a try of one task or one record (sent.probe), in its transaction. */
static const char sql_probe_lock[] =
"SELECT set_config('lock_timeout', $1, true)";

/*
 * Which records go next, moved from sc.batch into sent: those of a held
 * task whose time has come (a probe); else, while looking for a record
 * the database refuses or a task locked elsewhere (sc.alone), one record
 * (a probe too); else all but those of held tasks.  0 when some were
 * picked; else the ms until the first held task is due.
 */
static int64_t
batch_pick(struct sent *sent)
{
	const char	*k;
	json_t		*v, *until;
	void		*tmp;
	json_t		*present;
	char		 key[24], probe[24] = "";
	int64_t		 now = mono_ms(), next = INT64_MAX;

	if (json_object_size(sc.held) == 0 && sc.alone == 0) {
		/* The usual case: the whole batch. */
		json_decref(sent->recs);
		sent->recs = sc.batch;
		sc.batch = json_object();
		json_object_foreach(sent->recs, k, v)
			json_object_set_new(sent->tasks,
			    rec_task_key(v, key, sizeof(key)), json_true());
		return 0;
	}
	present = json_object();	/* held tasks with records here */
	json_object_foreach(sc.batch, k, v) {
		rec_task_key(v, key, sizeof(key));
		if ((until = json_object_get(sc.held, key)) == NULL)
			continue;
		json_object_set_new(present, key, json_true());
		if (json_integer_value(until) <= now) {
			if (probe[0] == '\0')
				snprintf(probe, sizeof(probe), "%s", key);
		} else if (json_integer_value(until) - now < next)
			next = json_integer_value(until) - now;
	}
	/* A held task none of whose records is left (they were dropped) is
	 * held no more. */
	json_object_foreach_safe(sc.held, tmp, k, v)
		if (json_object_get(present, k) == NULL)
			json_object_del(sc.held, k);
	json_decref(present);
	json_object_foreach_safe(sc.batch, tmp, k, v) {
		rec_task_key(v, key, sizeof(key));
		if (probe[0] != '\0' ? strcmp(key, probe) != 0 :
		    json_object_get(sc.held, key) != NULL)
			continue;
		json_object_set(sent->recs, k, v);
		json_object_set_new(sent->tasks, key, json_true());
		json_object_del(sc.batch, k);
		if (probe[0] == '\0' && sc.alone > 0) {
			sc.alone--;
			sent->probe = true;
			break;
		}
	}
	if (probe[0] != '\0')
		sent->probe = true;
	else if (json_object_size(sent->recs) == 0)
		sc.alone = 0;	/* the records left are all held */
	return json_object_size(sent->recs) > 0 ? 0 : next;
}

/*
 * Send the accumulated records as one transaction, if none is in flight:
 * lock their tasks, apply them, claim the children they released as room
 * allows, and finalise the tasks - in one round trip.
 */
static void
sched_flush(void)
{
	struct db_job	*job;
	struct sent	*sent;
	json_t		*arr, *v;
	const char	*k;
	char		*outcomes, *tasks, limit[16], *blocked;
	const char	*params[5];
	int		 room, completions;
	int64_t		 wait;
	struct timeval	 tv;

	if (sc.applying || json_object_size(sc.batch) == 0 ||
	    evtimer_pending(sc.retry_apply, NULL))
		return;
	sent = xcalloc(1, sizeof(*sent));
	sent->recs = json_object();
	sent->tasks = json_object();
	if ((wait = batch_pick(sent)) > 0) {
		/* Only records of held tasks are left, none due yet. */
		json_decref(sent->recs);
		json_decref(sent->tasks);
		free(sent);
		ms_to_tv(wait, &tv);
		evtimer_add(sc.held_due, &tv);
		return;
	}
	arr = json_array();
	json_object_foreach(sent->recs, k, v)
		json_array_append(arr, v);
	outcomes = jsontext(arr, 0);
	json_decref(arr);
	tasks = id_array(sent->tasks);

	/* Room for the children this batch releases, and at least one per
	 * step it completes (which frees a place): a child left unclaimed
	 * waits for the general claim, which takes it before the first steps
	 * of new tasks but only when there is room again. */
	room = 0;
	if (!sv.stopping && node_lease_ok()) {
		if ((room = sched_room(true)) < 0)
			room = 0;
		if (room < (completions = batch_completions(sent->recs)))
			room = completions;
	}
	snprintf(limit, sizeof(limit), "%d", room);
	blocked = services_blocked();
	job = db_job_new(sched_apply_done, sent);
	db_job_add(job, sql_generic_plans, 0, NULL);
	if (sent->probe) {
		params[0] = SCHED_PROBE_LOCK_MS_TEXT;
		db_job_add(job, sql_probe_lock, 1, params);
	}
	params[0] = tasks;
	db_job_add(job, sched_sql_lock_tasks, 1, params);
	params[0] = outcomes;
	params[1] = sv.node_id;
	params[2] = blocked;
	params[3] = limit;
	params[4] = results_readers();
	db_job_add(job, sql_apply, 5, params);
	params[0] = NULL;
	db_job_add(job, sched_sql_finalize, 1, params);
	free(blocked);
	sent->limit = room;
	sent->epoch = node_epoch();
	sc.reserved += room;
	free(outcomes);
	free(tasks);
	sc.applying = true;
	sc.applying_recs = sent->recs;
	db_submit(job);
}

/*
 * Claims taken over from a holder that lost them: rows as claims, with the
 * status they had in column scol (and their old node in ncol, or -1).  One
 * still 'enqueued' was queued ahead and, but for a step its holder started
 * in its last SCHED_MARK_MS, never ran: it is handed back, costing no
 * attempt (one that did start runs again, as after any crash; one that
 * must not run twice never starts before its 'in_progress' commits).  A
 * started one has its attempt failed (code, why).
 */
static void
sched_taken_over(PGresult *res, int scol, int ncol, const char *whose,
    const char *code, const char *why)
{
	struct claim	*c, *release[64];
	size_t		 nrelease = 0;
	bool		 queued;
	int		 i;

	for (i = 0; i < PQntuples(res); i++) {
		c = claim_from_row(res, i);
		queued = strcmp(PQgetvalue(res, i, scol), "enqueued") == 0;
		log_warnx("%s, %s task_id=%lld step=%s attempt=%u status=%s "
		    "node=%s correlation_id=%s", whose, queued ? "handed back" :
		    "attempt abandoned", (long long)c->task_id,
		    log_quote(c->step_name), c->attempt,
		    PQgetvalue(res, i, scol), ncol < 0 ? "-" :
		    log_quote(PQgetvalue(res, i, ncol)),
		    log_quote(c->correlation_id));
		if (!queued) {
			sched_fail(c, code, why);
			continue;
		}
		release[nrelease++] = c;
		if (nrelease == 64) {
			sched_release(release, nrelease);
			nrelease = 0;
		}
	}
	sched_release(release, nrelease);
}

static void
sched_expired_done(struct db_job *job, void *arg)
{
	bool		 startup = (bool)(intptr_t)arg;
	PGresult	*res;

	sc.sweeping = false;
	if (db_job_error(job) != NULL) {
		log_warnx("lease sweep failed error=%s",
		    log_quote(db_job_error(job)));
		return;
	}
	if (!startup)	/* (sql_orphans: this node's own) */
		sched_taken_over(db_job_result(job, 0), 10, -1,
		    "claim this node had lost track of", "claim_lost",
		    "this node lost track of the attempt (a database answer "
		    "was lost)");
	if (startup)
		sched_taken_over(db_job_result(job, 0), 11, 10,
		    "claim of this node before it restarted", "node_restarted",
		    "the node running the attempt restarted");
	else
		sched_taken_over(db_job_result(job, 1), 11, 10,
		    "claim of a lost node taken over", "node_lost",
		    "the node running the attempt stopped renewing its lease");
	if (startup) {
		res = db_job_result(job, 1);
		snprintf(sc.recovered_at, sizeof(sc.recovered_at), "%s",
		    PQgetvalue(res, 0, 0));
		sc.recovered = true;
		sched_kick();
	}
}

static void
token_add(int64_t token, void *arg)
{
	json_array_append_new(arg, json_integer(token));
}

static void
record_tokens_add(json_t *recs, json_t *arr)
{
	const char	*k;
	json_t		*v;

	json_object_foreach(recs, k, v)
		json_array_append(arr, json_object_get(v, "token"));
}

/* "{1,2,3}": the lease tokens of every claim this node holds - queued,
 * running, or whose outcome waits to be written. */
static char *
held_tokens(void)
{
	struct claim	*c;
	json_t		*arr = json_array();
	char		*s, *p;

	TAILQ_FOREACH(c, &sc.queue, entry)
		token_add(c->lease_token, arr);
	pool_tokens(token_add, arr);
	record_tokens_add(sc.batch, arr);
	if (sc.applying_recs != NULL)
		record_tokens_add(sc.applying_recs, arr);
	s = jsontext(arr, 0);
	json_decref(arr);
	/* A JSON array of integers is a PostgreSQL array literal once its
	 * brackets are braces. */
	s[0] = '{';
	if ((p = strrchr(s, ']')) != NULL)
		*p = '}';
	return s;
}

/*
 * At start-up: fail the attempts this node held before it restarted.
 * Then, periodically: take over the claims of nodes whose lease ran out,
 * and first find this node's own claims that it lost track of - first,
 * because the takeover, in the same transaction, makes other nodes'
 * claims this node's own.
 */
static void
sched_sweep(bool startup)
{
	struct db_job	*job;
	const char	*params[4];
	char		*tokens, age[24];

	if (sc.sweeping)
		return;
	sc.sweeping = true;
	job = db_job_new(sched_expired_done, (void *)(intptr_t)startup);
	if (!startup) {
		tokens = held_tokens();
		snprintf(age, sizeof(age), "%lld", (long long)(
		    db_oldest_sent_ms() + SCHED_ORPHAN_GRACE_MS));
		params[0] = sv.node_id;
		params[1] = tokens;
		params[2] = age;
		params[3] = sc.recovered_at[0] != '\0' ? sc.recovered_at : NULL;
		db_job_add(job, sql_orphans, 4, params);
		free(tokens);
	}
	params[0] = sv.node_id;
	params[1] = startup ? "true" : "false";
	db_job_add(job, sql_expired, 2, params);
	if (startup)
		db_job_add(job, "SELECT now()::text", 0, NULL);
	db_submit(job);
}

static void
sched_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval	tv;

	ms_to_tv(sv.conf->node_lease_ms / 2, &tv);
	evtimer_add(sc.sweep, &tv);
	if (!sc.recovered && !node_lease_ok())
		return;		/* (sched_lease_taken sweeps) */
	sched_sweep(!sc.recovered);
}

void
sched_init(void)
{
	struct timeval	tv;

	TAILQ_INIT(&sc.queue);
	TAILQ_INIT(&sc.unmarked);
	TAILQ_INIT(&sc.marking);
	sc.batch = json_object();
	sc.held = json_object();
	sc.unknown_tmpls = json_object();
	sc.cancelled = json_object();
	sc.unreleased = json_array();
	db_listen(SCHED_CANCEL_CHANNEL, sched_cancel_heard);
	sc.want = true;
	sc.need_due = true;
	sc.wake = evtimer_new(sv.base, sched_wake_cb, NULL);
	sc.backstop = evtimer_new(sv.base, sched_backstop_cb, NULL);
	sc.sweep = evtimer_new(sv.base, sched_sweep_cb, NULL);
	sc.retry_apply = evtimer_new(sv.base, sched_retry_apply_cb, NULL);
	sc.held_due = evtimer_new(sv.base, sched_retry_apply_cb, NULL);
	sc.mark = evtimer_new(sv.base, sched_mark_cb, NULL);
	ms_to_tv(SCHED_BACKSTOP_MS, &tv);
	evtimer_add(sc.backstop, &tv);
	ms_to_tv(sv.conf->node_lease_ms / 2, &tv);
	evtimer_add(sc.sweep, &tv);
}

/*
 * The first renewal of this node's lease committed.  Attempts this node
 * held before it restarted are over: fail them now instead of waiting for
 * a lease to run out.  Not before: a second process started with this id
 * at the same moment found the id free too, and would take the claims the
 * first made meanwhile for its earlier run's, failing attempts that the
 * first's workers run, before its own renewal lost and it exited.  No
 * claim of this process's own comes before this sweep: claims wait for it
 * (sc.recovered).
 */
void
sched_lease_taken(void)
{
	if (!sc.recovered)
		sched_sweep(true);
}

/* Remember task id (text) as cancelled, for SCHED_CANCELLED_MS. */
static void
sched_cancelled_add(const char *id)
{
	const char	*k;
	json_t		*v;
	void		*tmp;
	int64_t		 now = mono_ms();

	json_object_foreach_safe(sc.cancelled, tmp, k, v)
		if (json_integer_value(v) <= now)
			json_object_del(sc.cancelled, k);
	json_object_set_new(sc.cancelled, id,
	    json_integer((json_int_t)(now + SCHED_CANCELLED_MS)));
}

/* Which tasks of the queued claims were cancelled, after a listening
 * connection came back: their cancels' notifications were lost. */
static const char sql_cancelled[] =
"SELECT t.id FROM jsonb_array_elements_text($1::jsonb) AS q(id)"
" JOIN tasks t ON t.id = q.id::bigint WHERE t.status = 'cancelled'";

static void
sched_cancelled_found(struct db_job *job, void *arg)
{
	PGresult	*res;
	int		 i;

	(void)arg;
	if (db_job_error(job) != NULL) {
		sc.cancels_unheard = true;	/* asked again at the backstop */
		return;
	}
	res = db_job_result(job, 0);
	for (i = 0; i < PQntuples(res); i++)
		sched_cancelled_add(PQgetvalue(res, i, 0));
	if (PQntuples(res) > 0)
		sched_dispatch_queued();
}

/*
 * A task was cancelled (the cancel's NOTIFY, from any node): its steps
 * queued here must not start, as the cancel promises ("steps that have
 * not started never will"); they are handed back, which cancels them.
 * The task is remembered a while, for a claim of it whose answer comes
 * after the notification.  Steps already running finish.  NULL: the
 * LISTEN is in place again after a broken connection, and the tasks of
 * the claims queued here are looked up instead.
 */
static void
sched_cancel_heard(const char *payload)
{
	struct claim	*c;
	struct db_job	*job;
	json_t		*ids;
	char		*arr;
	const char	*params[1];

	if (payload != NULL) {
		if (*payload == '\0')
			return;
		sched_cancelled_add(payload);
		sched_dispatch_queued();
		return;
	}
	sc.cancels_unheard = false;
	if (sc.nqueued == 0 && sc.nmarking == 0)
		return;
	ids = json_array();
	TAILQ_FOREACH(c, &sc.queue, entry)
		json_array_append_new(ids, json_integer(c->task_id));
	TAILQ_FOREACH(c, &sc.marking, entry)
		json_array_append_new(ids, json_integer(c->task_id));
	arr = jsontext(ids, 0);
	json_decref(ids);
	params[0] = arr;
	/* First, and so on the spare if need be: the listening connection
	 * may be back before any of the pool's, and a worker that comes free
	 * meanwhile would start a cancelled task's step. */
	job = db_job_new(sched_cancelled_found, NULL);
	db_job_add(job, sql_cancelled, 1, params);
	free(arr);
	db_submit_first(job);
}

/* Hand back every claim still waiting for a worker; a marked one (its
 * 'in_progress' written) ends its attempt unspent, for why. */
static void
sched_release_queue(const char *why)
{
	struct claim	*c, **claims;
	size_t		 n = 0;

	claims = xcalloc((size_t)sc.nqueued + 1, sizeof(*claims));
	while ((c = TAILQ_FIRST(&sc.queue)) != NULL) {
		TAILQ_REMOVE(&sc.queue, c, entry);
		if (c->marked) {	/* 'in_progress' already */
			sc.nmarked--;
			sched_unstarted(c, why);
		} else
			claims[n++] = c;
	}
	sc.nqueued = 0;
	sched_release(claims, n);
	free(claims);
}

/* Stop claiming; hand back what never reached a worker. */
void
sched_shutdown(void)
{
	sched_release_queue("the node began to stop before the step "
	    "started");
}

/*
 * The node's lease lapsed and was renewed: another node may have taken
 * over the claims queued here meanwhile.  Hand them back (the token makes
 * this a no-op for the ones taken over) and claim afresh.
 */
void
sched_lease_regained(void)
{
	sched_release_queue("the node's lease lapsed before the step "
	    "started");
	sched_kick();
}

/* True while outcomes or hand-backs wait to be written (shutdown waits
 * for this, up to its deadline: a node that stops while its database is
 * away leaves no step 'enqueued' under its name if the database is back
 * in time). */
bool
sched_busy(void)
{
	return sc.applying || json_object_size(sc.batch) > 0 ||
	    sc.ndispatched > 0 || sc.nmarking > 0 ||
	    json_array_size(sc.unreleased) > 0;
}
