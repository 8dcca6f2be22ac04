/*
 * create.c - task creation, in batches.
 *
 * A task costs a handful of row inserts (the task, its steps - each with
 * the ids of its children - and a transition); a transaction per task
 * would cost a commit - a WAL flush - per task as well.  So creations that
 * arrive while a batch is being written wait for the next one, and each
 * batch is one statement in one transaction: under load, hundreds of tasks
 * share a commit; alone, a creation goes out at once.  The same statement
 * claims the tasks' first steps for this node as far as it has room, so
 * they start as soon as the commit returns.
 *
 * Each request keeps its own answer: 201 with the task, or 409 with the
 * task of the same identity (created earlier, concurrently, or earlier in
 * the same batch).  A batch that fails for another reason than a lost
 * connection is retried one task per batch, so one bad row cannot fail the
 * requests it happened to travel with.
 *
 * A batch whose connection broke before its answer came may or may not
 * have been stored.  Each creation carries a random request id, stored
 * with its task: the node looks for them among the tasks created since its
 * last answered batch, and answers 201 for those it finds and "try again"
 * for the others, rather than "try again" for all, which would store a
 * task twice when the client did.
 */
#include <sys/queue.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "create.h"
#include "db.h"
#include "reply.h"
#include "sched.h"
#include "services.h"
#include "supervisor.h"
#include "node.h"
#include "jsontext.h"
#include "duration.h"
#include "log.h"
#include "xmalloc.h"

#define CREATE_BATCH_MAX	500	/* tasks in one statement */
#define CREATE_INFLIGHT_MAX	2	/* batches being written at once */
#define CONFIRM_RETRY_MS	500	/* between lookups of a lost batch */
#define CONFIRM_MAX_MS		15000	/* then its requests hear "unknown" */

/*
 * $1: the tasks [{ord, template_id, context, initiator, source_system,
 * reason, tags, correlation_id, ikey, identity, request_id, icontext,
 * actor}] (icontext: what a strict identity hashes, when not the context;
 * actor: the name of the API token that asked, if any); $2: the
 * steps of their templates [{template_id, name, position, handler,
 * service, retry_limit, retryable, timeout_ms, nparents}]; $3: the edges [{template_id, src,
 * dst}]; $4: how many first steps to claim; $5: this node; $6: services
 * whose steps must wait (not claimed).
 *
 * Task ids are drawn before the insert so the answer can be matched to
 * each request; an insert skipped by ON CONFLICT (same identity) leaves a
 * gap in the sequence, as a rolled back one would.  Step ids are drawn
 * before theirs too, in task and template order, so that a step's row can
 * list its children's ids.  The sequences are named, not looked up per row
 * (pg_get_serial_sequence read the catalog for every row: a third of the
 * statement's buffer accesses).
 *
 * Rows: claims first (columns 0-11 as sched.c's claims, NULL on task
 * rows), then per request: ord, task id, created, status, created_at (JSON),
 * step ids and statuses in template order.
 */
static const char sql_create[] =
"WITH x AS ("
"  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(ord int,"
"    template_id bigint, context jsonb, initiator text, source_system text,"
"    reason text, tags jsonb, correlation_id text, ikey text,"
"    identity text, request_id bigint, icontext jsonb, actor text)),"
" h AS ("
"  SELECT x.*, nextval('tasks_id_seq') AS id,"
"    CASE x.identity"
"      WHEN 'strict' THEN 'sha256:' || encode(sha256(convert_to("
"        coalesce(x.icontext, x.context)::text, 'UTF8')), 'hex')"
"      ELSE 'key:' || x.ikey END AS hash"
"  FROM x),"
/* A key names one task of a template whatever its version: a retry that
 * comes after a new version was loaded finds the first task.  (Within a
 * version the unique index decides, concurrent requests included.)  The
 * tasks it finds are left out of the insert by an array test, not a
 * join: an anti-join made the planner expect one task per batch, and
 * plan the rest of the statement for one - ten times slower at 30. */
" p AS MATERIALIZED ("
"  SELECT h.ord, o.id, o.status FROM h"
"  JOIN templates tp ON tp.id = h.template_id"
"  CROSS JOIN LATERAL (SELECT o.id, o.status FROM templates v"
"    JOIN tasks o ON o.template_id = v.id AND o.identity_hash = h.hash"
"    WHERE v.namespace_id = tp.namespace_id AND v.name = tp.name"
"      AND v.id <> h.template_id LIMIT 1) o"
"  WHERE h.identity <> 'strict' AND h.hash IS NOT NULL),"
" t AS ("
"  INSERT INTO tasks (id, template_id, context, initiator, source_system,"
"    reason, tags, correlation_id, identity_hash, request_id)"
"  SELECT id, template_id, context, initiator, source_system, reason,"
"    coalesce(tags, '[]'), correlation_id, hash, request_id FROM h"
"  WHERE h.ord <> ALL (ARRAY(SELECT ord FROM p))"
"  ORDER BY ord"
"  ON CONFLICT (template_id, identity_hash)"
"    WHERE identity_hash IS NOT NULL DO NOTHING"
"  RETURNING *),"
" y AS ("
"  SELECT * FROM jsonb_to_recordset($2::jsonb) AS y(template_id bigint,"
"    name text, position int, handler text, service text,"
"    retry_limit int, retryable boolean, timeout_ms int, nparents int)),"
" sr AS MATERIALIZED ("
"  SELECT t.id AS task_id, y.*, nextval('steps_id_seq') AS id,"
"    y.nparents = 0 AND (y.service IS NULL"
"      OR y.service <> ALL($6::text[])) AS first"
"  FROM t JOIN y ON y.template_id = t.template_id"
"  ORDER BY t.id, y.position),"
" z AS ("
"  SELECT * FROM jsonb_to_recordset($3::jsonb) AS z(template_id bigint,"
"    src text, dst text)),"
" ch AS ("
"  SELECT p.id, array_agg(c.id ORDER BY c.position) AS ids"
"  FROM sr p JOIN z ON z.template_id = p.template_id AND z.src = p.name"
"  JOIN sr c ON c.task_id = p.task_id AND c.name = z.dst GROUP BY p.id),"
" sn AS ("
"  SELECT sr.*, sr.first AND row_number() OVER (PARTITION BY sr.first"
"      ORDER BY sr.task_id, sr.position) <= $4 AS claim FROM sr),"
" s AS ("
"  INSERT INTO steps (id, task_id, name, position, handler, service,"
"    retry_limit, attempt_budget, retryable, timeout_ms, remaining_parents,"
"    first_step, children, status, lease_owner, lease_token)"
"  SELECT sn.id, task_id, name, position, handler, service, retry_limit,"
"    retry_limit, retryable, timeout_ms, nparents, nparents = 0,"
"    coalesce(ch.ids, '{}'),"
"    CASE WHEN claim THEN 'enqueued' ELSE 'pending' END,"
"    CASE WHEN claim THEN $5 END,"
"    CASE WHEN claim THEN nextval('step_lease_tokens') END"
"  FROM sn LEFT JOIN ch ON ch.id = sn.id"
"  RETURNING id, task_id, name, position, status, attempts, retry_limit,"
"    retryable, timeout_ms, lease_token),"
" tt AS ("
"  INSERT INTO task_transitions (task_id, from_state, to_state, metadata)"
"  SELECT t.id, NULL, 'pending', jsonb_strip_nulls(jsonb_build_object("
"    'initiator', t.initiator, 'source_system', t.source_system,"
"    'reason', t.reason, 'actor', h.actor)) FROM t JOIN h ON h.id = t.id),"
" sa AS ("
"  SELECT task_id, array_agg(id ORDER BY position) AS ids,"
"    array_agg(status ORDER BY position) AS statuses FROM s"
"  GROUP BY task_id) "
"SELECT s.id, s.task_id, s.name, s.attempts, s.retry_limit, s.retryable,"
"  s.timeout_ms, s.lease_token, t.template_id, t.correlation_id,"
"  t.context::text, '{}', NULL::int, NULL::bigint, NULL::boolean,"
"  NULL::text, NULL::text, NULL::text, NULL::text"
" FROM s JOIN t ON t.id = s.task_id WHERE s.status = 'enqueued' "
"UNION ALL "
"SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
"  NULL, h.ord, coalesce(t.id, d.id), t.id IS NOT NULL,"
"  coalesce(t.status, d.status), to_jsonb(t.created_at)::text,"
"  sa.ids::text, sa.statuses::text"
" FROM h LEFT JOIN t ON t.id = h.id"
" LEFT JOIN sa ON sa.task_id = t.id"
" LEFT JOIN LATERAL ("
"   SELECT o.id, o.status FROM tasks o WHERE t.id IS NULL"
"     AND o.template_id = h.template_id AND o.identity_hash = h.hash"
"   UNION ALL"
"   SELECT o.id, o.status FROM t o WHERE t.id IS NULL"
"     AND o.template_id = h.template_id AND o.identity_hash = h.hash"
"   UNION ALL"
"   SELECT p.id, p.status FROM p WHERE t.id IS NULL AND p.ord = h.ord"
"   LIMIT 1) d ON true";

#define COL_ORD		12	/* first column of a request's row */

/*
 * Before sql_create, when requests of the batch carry an idempotency key
 * ($1: ["namespace\nname\nkey", ...]): a transaction-scoped advisory lock
 * per key (the two-key space, class 7355; the sweeper's is 7354), in
 * order, so two batches never wait for each other in a circle.  The
 * unique index decides only within a template version: two batches
 * creating one key under two versions (one loaded since, or on another
 * node) each saw no task of the other's and both inserted.  Held, the
 * lock makes the second wait for the first to commit; sql_create,
 * a statement after it, then sees the first's task (its snapshot is
 * taken after the wait).
 */
static const char sql_lock_keys[] =
"SELECT count(pg_advisory_xact_lock(7355, k)) FROM"
" (SELECT DISTINCT hashtext(x) AS k"
"  FROM jsonb_array_elements_text($1::jsonb) x ORDER BY 1) l";

/*
 * A connection that broke under a batch does not stop its server process,
 * which may not even have begun the statement yet, or may still be
 * writing it: a lookup now could see nothing and a commit follow.  So the
 * lookup first ends that process and waits for it to be gone, and with it
 * the batch's transaction, committed or not.  $1: its pid, $2: its start
 * (microseconds since the epoch; a process that took the pid over since
 * is another and left alone).  The count of processes still there after
 * 10 s: 0, or the lookup is tried again.
 */
static const char sql_confirm_end[] =
"SELECT count(*) FILTER (WHERE NOT pg_terminate_backend(pid, 10000))"
" FROM pg_stat_activity WHERE pid = $1::int"
"  AND (extract(epoch FROM backend_start) * 1000000)::bigint = $2::bigint";

/*
 * The tasks a lost batch did store: $1 [{ord, request_id}], $2 a task id
 * below all of the batch's (the highest this node had been answered when
 * it sent the batch), $3 this node.  Rows as sql_create's: the first steps
 * the batch claimed for this node (untouched since: their row is as old
 * as their task, so no claim of this node's has taken them since), taken
 * up again with their tokens; then a row per request whose task is there.
 */
static const char sql_confirm[] =
"WITH t AS ("
"  SELECT r.ord, t.* FROM jsonb_to_recordset($1::jsonb)"
"    AS r(ord int, request_id bigint)"
"  JOIN tasks t ON t.request_id = r.request_id AND t.id > $2::bigint) "
"SELECT s.id, s.task_id, s.name, s.attempts, s.retry_limit, s.retryable,"
"  s.timeout_ms, s.lease_token, t.template_id, t.correlation_id,"
"  t.context::text, '{}', NULL::int, NULL::bigint, NULL::boolean,"
"  NULL::text, NULL::text, NULL::text, NULL::text"
" FROM t JOIN steps s ON s.task_id = t.id"
" WHERE s.status = 'enqueued' AND s.lease_owner = $3"
"   AND s.updated_at = t.created_at "
"UNION ALL "
"SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
"  NULL, t.ord, t.id, true, t.status, to_jsonb(t.created_at)::text,"
"  sa.ids::text, sa.statuses::text"
" FROM t LEFT JOIN LATERAL ("
"   SELECT array_agg(s.id ORDER BY s.position) AS ids,"
"     array_agg(s.status ORDER BY s.position) AS statuses"
"   FROM steps s WHERE s.task_id = t.id) sa ON true";

struct create_req {
	TAILQ_ENTRY(create_req)	 entry;
	struct evhttp_request	*req;
	const struct tmpl	*t;
	const struct tmpl	*route;	/* answer as this template's route */
	json_t			*rec;	/* the task's row in $1 */
	int			 tries;
	bool			 alone;	/* its batch failed: one per batch */
};
TAILQ_HEAD(create_q, create_req);

struct batch {
	struct create_q		 reqs;
	int			 n;
	int			 stmt;		/* sql_create's in the job */
	int			 reserved;	/* first steps it may claim */
	unsigned		 epoch;		/* node_epoch() when sent */
	int64_t			 floor;		/* below all its task ids */
	int			 backend;	/* the server process it went to */
	int64_t			 backend_start;	/* and its start */
	struct timespec		 lost;		/* its answer was lost then */
	struct event		*retry;		/* the next lookup */
};

static struct {
	struct create_q	 waiting;
	int		 nwaiting;
	int		 inflight;
	int		 confirming;	/* lost batches being looked up */
	int64_t		 max_id;	/* highest task id answered, or
					 * seen stored (floor_read) */
	bool		 floor_reading;
} cq = { TAILQ_HEAD_INITIALIZER(cq.waiting), 0, 0, 0, 0, false };

static void	create_flush(void);
static void	create_confirm(struct batch *);

/* Steps of a template that depend on nothing: a new task's first steps. */
static int
nroots(const struct tmpl *t)
{
	size_t	i;
	int	n = 0;

	for (i = 0; i < t->nsteps; i++)
		if (t->steps[i].ndeps == 0)
			n++;
	return n;
}

static void
create_req_free(struct create_req *cr)
{
	json_decref(cr->rec);
	free(cr);
}

void
create_error(struct evhttp_request *req, const struct tmpl *route,
    int status, const char *code, const char *message, json_t *details)
{
	json_t	*body;

	if (route != NULL) {
		reply_route_error(req, status, code, message, details);
		return;
	}
	body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message",
	    message);
	if (details != NULL)
		json_object_update_new(json_object_get(body, "error"), details);
	reply_json(req, status, body);
}

/* "{1,2}" or "{enqueued,pending}": a one-dimensional array's elements. */
static json_t *
pg_array(const char *s, bool ints)
{
	json_t	*arr = json_array();
	char	*copy, *p, *tok, *save = NULL;

	if (s == NULL || *s != '{')
		return arr;
	copy = xstrdup(s + 1);
	if ((p = strrchr(copy, '}')) != NULL)
		*p = '\0';
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save))
		json_array_append_new(arr, ints ?
		    json_integer(strtoll(tok, NULL, 10)) : json_string(tok));
	free(copy);
	return arr;
}

/* The created task as GET /v1/tasks/{id} shows it (taskerd_task_json),
 * built from what the request sent and the statement answered. */
static json_t *
task_json(const struct create_req *cr, int64_t id, PGresult *res, int row)
{
	const struct tmpl	*t = cr->t;
	json_t			*created, *ids, *statuses, *steps, *deps;
	json_t			*rec = cr->rec, *task;
	const char		*status;
	size_t			 i, j;

	if ((created = db_json(res, row, COL_ORD + 4)) == NULL)
		created = json_null();
	ids = pg_array(PQgetvalue(res, row, COL_ORD + 5), true);
	statuses = pg_array(PQgetvalue(res, row, COL_ORD + 6), false);
	steps = json_array();
	for (i = 0; i < t->nsteps; i++) {
		const struct tmpl_step *st = &t->steps[i];

		status = json_string_value(json_array_get(statuses, i));
		if (status == NULL)
			status = "pending";
		deps = json_array();
		for (j = 0; j < st->ndeps; j++)
			json_array_append_new(deps,
			    json_string(t->steps[st->dep_idx[j]].name));
		json_array_append_new(steps, json_pack("{s:O, s:s, s:s, s:s, "
		    "s:s?, s:o, s:i, s:i, s:b, s:I, s:O, s:n, s:n, s:n, s:n}",
		    "step_id", json_array_get(ids, i),
		    "name", st->name, "status", status,
		    "handler", st->handler, "service", st->dependent_system,
		    "depends_on", deps, "attempts", 0,
		    "retry_limit", st->retry_limit,
		    "retryable", st->retryable,
		    "timeout_ms", (json_int_t)st->timeout_ms,
		    "next_attempt_at", strcmp(status, "pending") == 0 ?
		    created : json_null(),
		    "started_at", "completed_at", "results", "last_error"));
	}
	json_decref(ids);
	json_decref(statuses);
	task = json_pack("{s:I, s:s, s:s, s:s, s:s, s:O, s:O, s:O, s:O, "
	    "s:O, s:O, s:O, s:O, s:O, s:n, s:o}",
	    "task_id", (json_int_t)id, "namespace", t->namespace,
	    "name", t->name, "version", t->version,
	    "status", PQgetvalue(res, row, COL_ORD + 3),
	    "context", json_object_get(rec, "context"),
	    "initiator", json_object_get(rec, "initiator"),
	    "source_system", json_object_get(rec, "source_system"),
	    "reason", json_object_get(rec, "reason"),
	    "tags", json_object_get(rec, "tags"),
	    "correlation_id", json_object_get(rec, "correlation_id"),
	    "idempotency_key", json_object_get(rec, "ikey"),
	    "created_at", created, "updated_at", created,
	    "completed_at", "steps", steps);
	json_decref(created);
	return task;
}

/* Where the route's status page of task id is: its path (kept decoded,
 * "/sign ups/status/{task_id}") percent-encoded a segment at a time. */
static char *
monitor_url(const char *route, int64_t id)
{
	struct evbuffer	*b = evbuffer_new();
	const char	*p, *end, *slash;
	char		*seg, *url;
	size_t		 len;

	end = route + strlen(route) - strlen("{task_id}");
	for (p = route; p < end; p = slash + 1) {
		if ((slash = memchr(p, '/', (size_t)(end - p))) == NULL)
			slash = end;	/* (the placeholder follows a '/') */
		seg = evhttp_uriencode(p, slash - p, 0);
		evbuffer_add_printf(b, "%s/", seg);
		free(seg);
	}
	evbuffer_add_printf(b, "%lld", (long long)id);
	len = evbuffer_get_length(b);
	url = xmalloc(len + 1);
	evbuffer_remove(b, url, len);
	url[len] = '\0';
	evbuffer_free(b);
	return url;
}

/* Answer one request from its row of the statement's result. */
static void
create_answer(struct create_req *cr, PGresult *res, int row)
{
	struct evhttp_request	*req = cr->req;
	const char		*status;
	char			*monitor = NULL;
	int64_t			 id;

	if (PQgetisnull(res, row, COL_ORD + 1)) {
		/* A concurrent creation with the same identity committed
		 * after our snapshot: look again, once. */
		if (cr->tries++ == 0) {
			TAILQ_INSERT_TAIL(&cq.waiting, cr, entry);
			cq.nwaiting++;
			return;
		}
		create_error(req, cr->route, 409, "duplicate_task", "a task "
		    "with this identity is being created concurrently", NULL);
		goto done;
	}
	id = strtoll(PQgetvalue(res, row, COL_ORD + 1), NULL, 10);
	status = PQgetvalue(res, row, COL_ORD + 3);
	if (PQgetvalue(res, row, COL_ORD + 2)[0] != 't') {
		create_error(req, cr->route, 409, "duplicate_task", "a task "
		    "with the same identity exists", json_pack("{s:I, s:s}",
		    "task_id", (json_int_t)id, "status", status));
		goto done;
	}
	if (cr->route != NULL) {
		if (cr->route->route_status != NULL)
			monitor = monitor_url(cr->route->route_status, id);
		reply_json(req, 201, json_pack("{s:b, s:I, s:s, s:s?}",
		    "success", 1, "task_id", (json_int_t)id, "status", status,
		    "monitor_url", monitor));
		free(monitor);
	} else
		reply_json(req, 201, task_json(cr, id, res, row));
done:
	create_req_free(cr);
}

/* Keep the highest task id answered: tasks of later batches are above. */
static void
create_seen(PGresult *res, int row)
{
	int64_t	id;

	if (PQgetisnull(res, row, COL_ORD + 1))
		return;
	id = strtoll(PQgetvalue(res, row, COL_ORD + 1), NULL, 10);
	if (id > cq.max_id)
		cq.max_id = id;
}

/* The request whose ord the row names, taken off the batch; NULL if none. */
static struct create_req *
create_take(struct batch *b, PGresult *res, int row)
{
	struct create_req	*cr;
	int			 ord;

	if (PQgetisnull(res, row, COL_ORD))
		return NULL;
	ord = atoi(PQgetvalue(res, row, COL_ORD));
	TAILQ_FOREACH(cr, &b->reqs, entry)
		if (json_integer_value(json_object_get(cr->rec, "ord")) == ord)
			break;
	if (cr != NULL)
		TAILQ_REMOVE(&b->reqs, cr, entry);
	return cr;
}

static void
create_batch_free(struct batch *b)
{
	if (b->retry != NULL)
		event_free(b->retry);
	free(b);
}

static void
confirm_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	create_confirm(arg);
}

/* The lookup of a lost batch answered: 201 for the tasks it stored. */
static void
create_confirmed(struct db_job *job, void *arg)
{
	struct batch		*b = arg;
	struct create_req	*cr;
	struct timeval		 tv = { 0, CONFIRM_RETRY_MS * 1000 };
	PGresult		*res;
	const char		*why = db_job_error(job);
	int			 i, found = 0;

	/* The batch's server process would not end (or the database is
	 * away): not known yet. */
	res = db_job_result(job, 0);
	if (why == NULL && strcmp(PQgetvalue(res, 0, 0), "0") != 0)
		why = "the server process that had the batch is still there";
	if (why != NULL) {
		if (duration_ms_since(&b->lost) < CONFIRM_MAX_MS && !sv.stopping) {
			if (b->retry == NULL)
				b->retry = evtimer_new(sv.base,
				    confirm_retry_cb, b);
			evtimer_add(b->retry, &tv);
			return;
		}
		log_warnx("cannot tell whether a task batch was stored "
		    "count=%d error=%s", b->n, log_quote(why));
		while ((cr = TAILQ_FIRST(&b->reqs)) != NULL) {
			TAILQ_REMOVE(&b->reqs, cr, entry);
			evhttp_add_header(evhttp_request_get_output_headers(
			    cr->req), "Retry-After", "1");
			create_error(cr->req, cr->route, 503, "outcome_unknown",
			    "the database went away while the task was being "
			    "stored, and whether it was is not known: look for "
			    "it before creating it again", NULL);
			create_req_free(cr);
		}
		goto out;
	}
	res = db_job_result(job, 1);
	/* Its claims are ours again (unless the node's lease lapsed since:
	 * the epoch says so, and they are handed back). */
	sched_claims_taken(res, 0, b->epoch);
	for (i = 0; i < PQntuples(res); i++) {
		if ((cr = create_take(b, res, i)) == NULL)
			continue;
		found++;
		create_seen(res, i);
		create_answer(cr, res, i);
	}
	log_info("task batch answer lost: looked up stored=%d not_stored=%d",
	    found, b->n - found);
	/* Not stored: safe to send again, as the client will. */
	while ((cr = TAILQ_FIRST(&b->reqs)) != NULL) {
		TAILQ_REMOVE(&b->reqs, cr, entry);
		evhttp_add_header(evhttp_request_get_output_headers(cr->req),
		    "Retry-After", "1");
		create_error(cr->req, cr->route, 503, "database_unavailable",
		    "the database connection was lost before the task was "
		    "stored; nothing was created: try again", NULL);
		create_req_free(cr);
	}
	/* First steps it did not claim wait in the general claim. */
	if (found > 0) {
		sched_kick();
		node_hint();
	}
out:
	cq.confirming--;
	create_batch_free(b);
}

/* Look up which of a lost batch's tasks were stored. */
static void
create_confirm(struct batch *b)
{
	struct create_req	*cr;
	struct db_job		*job;
	json_t			*reqs = json_array();
	char			*p1, floor[24], pid[16], start[24];
	const char		*params[3];

	TAILQ_FOREACH(cr, &b->reqs, entry)
		json_array_append_new(reqs, json_pack("{s:O, s:O}",
		    "ord", json_object_get(cr->rec, "ord"),
		    "request_id", json_object_get(cr->rec, "request_id")));
	p1 = jsontext(reqs, 0);
	json_decref(reqs);
	snprintf(floor, sizeof(floor), "%lld", (long long)b->floor);
	snprintf(pid, sizeof(pid), "%d", b->backend);
	snprintf(start, sizeof(start), "%lld", (long long)b->backend_start);
	params[0] = pid;
	params[1] = start;
	job = db_job_new(create_confirmed, b);
	db_job_add(job, sql_confirm_end, 2, params);
	params[0] = p1;
	params[1] = floor;
	params[2] = sv.node_id;
	db_job_add(job, sql_confirm, 3, params);
	free(p1);
	db_submit(job);
}

void
create_start(PGconn *pg)
{
	PGresult	*res;

	/* Where this node's first lost batch is looked up from: any task it
	 * creates is above (the primary key's last entry: one index probe). */
	res = PQexec(pg, "SELECT coalesce(max(id), 0) FROM tasks");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		cq.max_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	else
		log_warnx("cannot read the highest task id error=%s",
		    log_quote(PQerrorMessage(pg)));
	PQclear(res);
}

/* The highest task id stored: the tasks of batches sent from now on are
 * above it, and a lost batch's are looked up only there (among every
 * node's tasks: a floor that moved only with this node's own creations
 * left a node that creates rarely scanning all the others' since its
 * start).  A failure leaves the floor where it was. */
static void
floor_read(struct db_job *job, void *arg)
{
	int64_t	id;

	(void)arg;
	cq.floor_reading = false;
	if (db_job_error(job) != NULL)
		return;
	id = strtoll(PQgetvalue(db_job_result(job, 0), 0, 0), NULL, 10);
	if (id > cq.max_id)
		cq.max_id = id;
}

void
create_floor_read(void)
{
	struct db_job	*job;

	/* (One at a time: a lock on tasks may hold it until lock_timeout.) */
	if (cq.floor_reading)
		return;
	cq.floor_reading = true;
	job = db_job_new(floor_read, NULL);
	db_job_add(job, "SELECT coalesce(max(id), 0) FROM tasks", 0, NULL);
	db_submit(job);
}

bool
create_busy(void)
{
	return cq.nwaiting > 0 || cq.inflight > 0 || cq.confirming > 0;
}

static void
create_done(struct db_job *job, void *arg)
{
	struct batch		*b = arg;
	struct create_req	*cr;
	PGresult		*res;
	const char		*state = db_job_sqlstate(job), *code;
	char			 msg[128];
	int			 i, n, claimed, roots = 0, status;

	cq.inflight--;
	if (db_job_error(job) != NULL) {
		sched_claims_taken(NULL, b->reserved, b->epoch);
		if (db_job_lost(job)) {
			/* Stored or not: find out before answering (and take
			 * up the claims it made, or the orphan sweep hands
			 * them back). */
			log_warnx("task batch answer lost, looking its tasks "
			    "up count=%d after_id=%lld error=%s", b->n,
			    (long long)b->floor, log_quote(db_job_error(job)));
			clock_gettime(CLOCK_MONOTONIC, &b->lost);
			db_job_backend(job, &b->backend, &b->backend_start);
			cq.confirming++;
			create_confirm(b);
			create_flush();
			return;
		}
		if (b->n > 1 && (!db_unavailable(state) ||
		    strcmp(state, "40P01") == 0 ||
		    strcmp(state, "40001") == 0)) {
			/* Not the database: perhaps one task's row, or two
			 * batches creating the same strict tasks in another
			 * order (a deadlock).  Try them one by one so the
			 * others are not held back. */
			log_warnx("task batch failed, retrying one by one "
			    "count=%d sqlstate=%s error=%s", b->n,
			    state ? state : "none",
			    log_quote(db_job_error(job)));
			while ((cr = TAILQ_FIRST(&b->reqs)) != NULL) {
				TAILQ_REMOVE(&b->reqs, cr, entry);
				cr->alone = true;
				TAILQ_INSERT_TAIL(&cq.waiting, cr, entry);
				cq.nwaiting++;
			}
		} else {
			while ((cr = TAILQ_FIRST(&b->reqs)) != NULL) {
				TAILQ_REMOVE(&b->reqs, cr, entry);
				/* (In the caller's format: a template's
				 * route answers {"success": false}.) */
				status = reply_db_failure(cr->req, job, &code,
				    msg, sizeof(msg));
				create_error(cr->req, cr->route, status, code,
				    msg, NULL);
				create_req_free(cr);
			}
		}
		goto out;
	}
	res = db_job_result(job, b->stmt);
	n = PQntuples(res);
	/* The claims first: their steps can start while we answer. */
	claimed = sched_claims_taken(res, b->reserved, b->epoch);
	for (i = 0; i < n; i++) {
		if ((cr = create_take(b, res, i)) == NULL)
			continue;
		if (PQgetvalue(res, i, COL_ORD + 2)[0] == 't')
			roots += nroots(cr->t);
		create_seen(res, i);
		create_answer(cr, res, i);
	}
	while ((cr = TAILQ_FIRST(&b->reqs)) != NULL) {
		TAILQ_REMOVE(&b->reqs, cr, entry);
		create_error(cr->req, cr->route, 500, "internal", "no answer "
		    "for the task in its batch", NULL);
		create_req_free(cr);
	}
	/* First steps that found no room (or whose service must wait) are
	 * left to the general claim. */
	if (roots > claimed) {
		sched_kick();
		node_hint();
	}
out:
	create_batch_free(b);
	create_flush();
}

/* The steps and edges of the batch's templates, for $2 and $3. */
static void
template_rows(struct batch *b, char **steps, char **edges)
{
	json_t			*s = json_array(), *e = json_array();
	json_t			*seen = json_object();
	struct create_req	*cr;
	const struct tmpl	*t;
	char			 key[24];
	size_t			 i, j;

	TAILQ_FOREACH(cr, &b->reqs, entry) {
		t = cr->t;
		snprintf(key, sizeof(key), "%lld", (long long)t->db_id);
		if (json_object_get(seen, key) != NULL)
			continue;
		json_object_set_new(seen, key, json_true());
		for (i = 0; i < t->nsteps; i++) {
			const struct tmpl_step *st = &t->steps[i];

			json_array_append_new(s, json_pack("{s:I, s:s, s:i, "
			    "s:s, s:s?, s:i, s:b, s:I, s:i}",
			    "template_id", (json_int_t)t->db_id,
			    "name", st->name, "position", (int)i,
			    "handler", st->handler,
			    "service", st->dependent_system,
			    "retry_limit", st->retry_limit,
			    "retryable", st->retryable,
			    "timeout_ms", (json_int_t)st->timeout_ms,
			    "nparents", (int)st->ndeps));
			for (j = 0; j < st->ndeps; j++)
				json_array_append_new(e, json_pack("{s:I, "
				    "s:s, s:s}", "template_id",
				    (json_int_t)t->db_id,
				    "src", t->steps[st->dep_idx[j]].name,
				    "dst", st->name));
		}
	}
	*steps = jsontext(s, 0);
	*edges = jsontext(e, 0);
	json_decref(s);
	json_decref(e);
	json_decref(seen);
}

/*
 * Whether cr may join the batch whose requests seen describes, noting it
 * there if so; its key's lock name goes into keys.  Two that one
 * statement would get wrong wait for the next batch: two definitions of
 * one stored template (a reload edited it in place: the steps are sent
 * once per template id), and one key under two versions (neither sees
 * the other's task, being in one statement).
 */
static bool
batch_admits(json_t *seen, const struct create_req *cr, json_t *keys)
{
	/* (No key for a strict identity: task_create leaves it out.) */
	const char	*ikey = json_string_value(json_object_get(cr->rec,
			    "ikey"));
	json_t		*had;
	char		 id[32], *k;

	snprintf(id, sizeof(id), "t%lld", (long long)cr->t->db_id);
	if ((had = json_object_get(seen, id)) != NULL &&
	    json_integer_value(had) != (json_int_t)(intptr_t)cr->t)
		return false;		/* another definition of it */
	if (ikey != NULL) {
		xasprintf(&k, "%s\n%s\n%s", cr->t->namespace, cr->t->name,
		    ikey);
		if ((had = json_object_get(seen, k)) != NULL &&
		    json_integer_value(had) != (json_int_t)cr->t->db_id) {
			free(k);
			return false;	/* the key under another version */
		}
		if (had == NULL) {
			json_array_append_new(keys, json_string(k));
			json_object_set_new(seen, k,
			    json_integer((json_int_t)cr->t->db_id));
		}
		free(k);
	}
	json_object_set_new(seen, id,
	    json_integer((json_int_t)(intptr_t)cr->t));
	return true;
}

/* Send what waits as one batch, if fewer than CREATE_INFLIGHT_MAX are
 * being written.  A request that failed in a batch goes alone. */
static void
create_flush(void)
{
	struct batch		*b;
	struct create_req	*cr;
	struct db_job		*job;
	json_t			*tasks, *seen, *keys;
	char			*p1, *p2, *p3, *blocked, *locks, room[16];
	const char		*params[6];
	int			 ord = 0, roots;

	while (cq.nwaiting > 0 && cq.inflight < CREATE_INFLIGHT_MAX) {
		b = xcalloc(1, sizeof(*b));
		TAILQ_INIT(&b->reqs);
		tasks = json_array();
		seen = json_object();
		keys = json_array();
		roots = 0;
		while ((cr = TAILQ_FIRST(&cq.waiting)) != NULL &&
		    b->n < CREATE_BATCH_MAX) {
			if (cr->alone && b->n > 0)
				break;
			if (!batch_admits(seen, cr, keys))
				break;	/* (never the first: seen was empty) */
			TAILQ_REMOVE(&cq.waiting, cr, entry);
			cq.nwaiting--;
			json_object_set_new(cr->rec, "ord", json_integer(ord++));
			json_array_append(tasks, cr->rec);
			TAILQ_INSERT_TAIL(&b->reqs, cr, entry);
			b->n++;
			roots += nroots(cr->t);
			if (cr->alone)
				break;
		}
		p1 = jsontext(tasks, 0);
		json_decref(tasks);
		template_rows(b, &p2, &p3);
		b->reserved = sched_claims_reserve(roots);
		b->epoch = node_epoch();
		b->floor = cq.max_id;
		snprintf(room, sizeof(room), "%d", b->reserved);
		blocked = services_blocked();
		params[0] = p1;
		params[1] = p2;
		params[2] = p3;
		params[3] = room;
		params[4] = sv.node_id;
		params[5] = blocked;
		job = db_job_new(create_done, b);
		if (json_array_size(keys) > 0) {
			locks = jsontext(keys, 0);
			db_job_add(job, sql_lock_keys, 1,
			    (const char **)&locks);
			free(locks);
			b->stmt = 1;
		}
		json_decref(seen);
		json_decref(keys);
		db_job_add(job, sql_create, 6, params);
		free(p1);
		free(p2);
		free(p3);
		free(blocked);
		cq.inflight++;
		db_submit(job);
	}
}

void
create_submit(struct evhttp_request *req, const struct tmpl *t,
    const struct tmpl *route, json_t *rec)
{
	struct create_req	*cr = xcalloc(1, sizeof(*cr));
	uint64_t		 id;

	/* 63 random bits: the lookup compares it only with the few tasks
	 * created since the batch's floor, so a clash is out of reach; and
	 * eight bytes on every task row cost less than text would. */
	arc4random_buf(&id, sizeof(id));
	json_object_set_new(rec, "request_id",
	    json_integer((json_int_t)(id >> 1)));
	cr->req = req;
	cr->t = t;
	cr->route = route;
	cr->rec = rec;
	TAILQ_INSERT_TAIL(&cq.waiting, cr, entry);
	cq.nwaiting++;
	create_flush();
}
