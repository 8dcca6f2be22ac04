/*
 * api_tasks.c - the task endpoints: create, list, show, cancel, and the
 * operator's actions on steps.
 *
 * Each request is one db job (one transaction, one round trip), except
 * creations, which travel in batches (create.c); the JSON shapes come from
 * SQL functions (sql/002_api_views.sql) so the API and psql agree.  Nothing
 * is half-created: a failed statement rolls the whole job back.
 */
#include <sys/queue.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "api.h"
#include "create.h"
#include "node.h"
#include "db.h"
#include "protocol.h"
#include "reply.h"
#include "schema.h"
#include "sched.h"
#include "services.h"
#include "supervisor.h"
#include "jsontext.h"
#include "utf8.h"
#include "log.h"
#include "xmalloc.h"

#define API_LIST_DEFAULT	50
#define API_LIST_MAX		500
#define API_IKEY_MAX		255	/* bytes of an idempotency key */

const char *const api_task_states[] = { "pending", "in_progress",
	"complete", "error", "cancelled", "resolved_manually", NULL };

static bool
valid_state(const char *s)
{
	int	i;

	for (i = 0; api_task_states[i] != NULL; i++)
		if (strcmp(s, api_task_states[i]) == 0)
			return true;
	return false;
}

/* A caller's X-Correlation-ID is kept when it is short and plain. */
static char *
correlation_id(struct evhttp_request *req)
{
	const char	*in = evhttp_find_header(
	    evhttp_request_get_input_headers(req), "X-Correlation-ID");
	unsigned char	 rnd[16];
	char		*out;
	size_t		 i;

	if (in != NULL && strlen(in) > 0 && strlen(in) <= 64) {
		for (i = 0; in[i] != '\0'; i++)
			if (!isalnum((unsigned char)in[i]) &&
			    strchr("-_.:", in[i]) == NULL)
				break;
		if (in[i] == '\0')
			return xstrdup(in);
	}
	arc4random_buf(rnd, sizeof(rnd));
	out = xmalloc(33);
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(out + 2 * i, 3, "%02x", rnd[i]);
	return out;
}

/* ---- POST /v1/tasks --------------------------------------------------- */

/*
 * What a strict template's identity hashes, when it differs from the
 * context: every real that the context's text writes as "N.0" made the
 * integer N.  That is the database's taskerd_canonical() (migration 010:
 * each number at its least scale) done here, in one walk; there it cost
 * 50 us a value, and a large context ran into the statement timeout with
 * every creation batched with it.  The text writes an integral real below
 * 1e17 with ".0" (jsontext.c) and any other real without a trailing zero:
 * a fraction in the fewest digits, or an exponent.  NULL: no such real.
 */
static json_t *
identity_context(json_t *v)
{
	const char	*key;
	json_t		*item, *c, *out = NULL;
	size_t		 i;
	double		 d;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		json_object_foreach(v, key, item)
			if ((c = identity_context(item)) != NULL) {
				if (out == NULL)
					out = json_copy(v);
				json_object_set_new(out, key, c);
			}
		return out;
	case JSON_ARRAY:
		json_array_foreach(v, i, item)
			if ((c = identity_context(item)) != NULL) {
				if (out == NULL)
					out = json_copy(v);
				json_array_set_new(out, i, c);
			}
		return out;
	case JSON_REAL:
		d = json_real_value(v);
		if (d == trunc(d) && fabs(d) < 1e17)
			return json_integer((json_int_t)d);
		return NULL;
	default:
		return NULL;
	}
}

/*
 * Create a task of tr->t: the checks every way in shares (depth, schema
 * with defaults, identity), then the next batch of creations (create.c).
 * route: answer in that template route's dialect; NULL: the API's.
 */
void
task_create(struct evhttp_request *req, const struct task_request *tr,
    const struct tmpl *route)
{
	const struct tmpl	*t = tr->t;
	json_t			*ctx, *viol;
	const char		*ikey;
	char			 msg[128], *cid;

	ctx = tr->ctx != NULL ? json_incref(tr->ctx) : json_object();
	if (proto_json_depth(ctx) > PROTO_MAX_JSON_DEPTH) {
		snprintf(msg, sizeof(msg), "the context is nested deeper than "
		    "%d levels", PROTO_MAX_JSON_DEPTH);
		create_error(req, route, route ? 422 : 400, route ?
		    "invalid_context" : "invalid_request", msg, NULL);
		goto out;
	}
	if (t->schema != NULL) {
		/* Defaults are inserted into the context that is stored. */
		viol = schema_validate(t->schema, ctx);
		if (json_array_size(viol) > 0) {
			create_error(req, route, 422, "invalid_context",
			    "the context does not match the template's schema",
			    route ? viol : json_pack("{s:o}", "violations",
			    viol));
			goto out;
		}
		json_decref(viol);
		/* Defaults can nest deeper than the context sent: each step
		 * would fail to carry it to its worker. */
		if (proto_json_depth(ctx) > PROTO_MAX_JSON_DEPTH) {
			snprintf(msg, sizeof(msg), "the context with the "
			    "schema's defaults is nested deeper than %d levels",
			    PROTO_MAX_JSON_DEPTH);
			create_error(req, route, 422, "invalid_context", msg,
			    NULL);
			goto out;
		}
	}
	if (t->identity == IDENTITY_CALLER_PROVIDED &&
	    (tr->ikey == NULL || *tr->ikey == '\0')) {
		create_error(req, route, 422, "idempotency_key_required",
		    "this template uses caller_provided identity: an "
		    "idempotency_key is required", NULL);
		goto out;
	}
	/* The key is the identity unless the template's is its context:
	 * a client that sends one on an always_unique template is asking
	 * not to get two tasks, and does not (an empty key is none). */
	ikey = t->identity != IDENTITY_STRICT && tr->ikey != NULL &&
	    *tr->ikey != '\0' ? tr->ikey : NULL;
	/* It goes into a unique index, whose entries have a size limit: a
	 * longer key would fail its whole batch of creations. */
	if (ikey != NULL && strlen(ikey) > API_IKEY_MAX) {
		snprintf(msg, sizeof(msg), "the idempotency key is longer "
		    "than %d bytes", API_IKEY_MAX);
		create_error(req, route, 400, "invalid_request", msg, NULL);
		goto out;
	}
	cid = correlation_id(req);
	create_submit(req, t, route, json_pack("{s:I, s:O, s:s?, s:s?, s:s?, "
	    "s:o, s:s, s:s?, s:s, s:o*, s:s*}",
	    "template_id", (json_int_t)t->db_id, "context", ctx,
	    "initiator", tr->initiator, "source_system", tr->source_system,
	    "reason", tr->reason,
	    "tags", tr->tags != NULL ? json_incref(tr->tags) : json_array(),
	    "correlation_id", cid, "ikey", ikey,
	    "identity", tmpl_identity_name(t->identity),
	    "icontext", t->identity == IDENTITY_STRICT ?
	    identity_context(ctx) : NULL,
	    /* Who created it, for the audit: the token (none: open API). */
	    "actor", api_current_actor()));
	free(cid);
out:
	json_decref(ctx);
}

void
api_create_task(struct evhttp_request *req)
{
	static const char *const known[] = { "name", "namespace", "version",
	    "context", "initiator", "source_system", "reason", "tags",
	    "idempotency_key", NULL };
	json_t		*body, *ctx, *tags;
	const char	*name, *ns, *version, *initiator, *source, *reason;
	const char	*ikey, *hkey;
	const struct tmpl *t;
	struct task_request tr;

	if ((body = read_body(req)) == NULL)
		return;
	if (!json_is_object(body)) {
		reply_error(req, 400, "invalid_request", "the body must be a "
		    "JSON object");
		goto out;
	}
	if (known_fields(req, body, known) == -1 ||
	    opt_string(req, body, "name", &name) == -1 ||
	    opt_string(req, body, "namespace", &ns) == -1 ||
	    opt_string(req, body, "version", &version) == -1 ||
	    opt_string(req, body, "initiator", &initiator) == -1 ||
	    opt_string(req, body, "source_system", &source) == -1 ||
	    opt_string(req, body, "reason", &reason) == -1 ||
	    opt_string(req, body, "idempotency_key", &ikey) == -1)
		goto out;
	/* Without one in the body, the key may come as a header, as a
	 * route's does (clients and proxies that retry add one; a taskerd
	 * http step sends its own).  The body's is the caller's choice and
	 * wins - unless it is empty, which is no key. */
	hkey = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Idempotency-Key");
	if ((ikey == NULL || *ikey == '\0') && hkey != NULL) {
		if (!utf8_valid(hkey, strlen(hkey))) {
			reply_error(req, 400, "invalid_request", "the "
			    "Idempotency-Key header is not valid UTF-8");
			goto out;
		}
		ikey = hkey;
	}
	if (name == NULL || *name == '\0') {
		reply_error(req, 400, "invalid_request", "\"name\" (the "
		    "template's name) is required");
		goto out;
	}
	/* An empty string is absent, as null is (the key's rule). */
	if (ns == NULL || *ns == '\0')
		ns = "default";
	if (version != NULL && *version == '\0')
		version = NULL;
	/* null is absent, as for the string fields. */
	if (json_is_null(ctx = json_object_get(body, "context")))
		ctx = NULL;
	if (ctx != NULL && !json_is_object(ctx)) {
		reply_error(req, 400, "invalid_request", "\"context\" must be "
		    "a JSON object");
		goto out;
	}
	if (json_is_null(tags = json_object_get(body, "tags")))
		tags = NULL;
	if (tags != NULL && !json_is_array(tags) && !json_is_object(tags)) {
		reply_error(req, 400, "invalid_request", "\"tags\" must be an "
		    "array or an object");
		goto out;
	}
	/* Every listing carries them, nested a few levels more: JSON
	 * deeper than a client's parser takes would break the listing. */
	if (tags != NULL && proto_json_depth(tags) > PROTO_MAX_JSON_DEPTH) {
		reply_error(req, 400, "invalid_request", "\"tags\" is nested "
		    "deeper than %d levels", PROTO_MAX_JSON_DEPTH);
		goto out;
	}
	if ((t = tmpl_registry_find(sv.templates, ns, name, version)) ==
	    NULL) {
		reply_error(req, 404, "unknown_template", "no template "
		    "%s/%s%s%s", ns, name, version ? "@" : "",
		    version ? version : "");
		goto out;
	}

	memset(&tr, 0, sizeof(tr));
	tr.t = t;
	tr.ctx = ctx;
	tr.tags = tags;
	tr.initiator = initiator;
	tr.source_system = source;
	tr.reason = reason;
	tr.ikey = ikey;
	task_create(req, &tr, NULL);
out:
	json_decref(body);
}

/* ---- GET /v1/tasks, /v1/tasks/{id} ------------------------------------ */

/*
 * The statement for the filters given, each a plain condition the planner
 * can take to an index: "$n IS NULL OR ..." forms are left to a generic
 * plan's filter, which walks the whole table backwards for a rare status
 * or template.  $1 the cursor (below every id without one), $2 the limit,
 * then the status, namespace and name given.  By namespace or name, the
 * newest tasks of each matching template (tasks_template's order) are
 * merged.  A new string.
 */
static char *
list_sql(bool status, bool ns, bool name)
{
	char	*sql, cond[64] = "", tcond[96] = "";
	int	 n = 2;

	if (status)
		snprintf(cond, sizeof(cond), " AND t.status = $%d", ++n);
	if (ns)
		snprintf(tcond, sizeof(tcond), " AND n.name = $%d", ++n);
	if (name)
		snprintf(tcond + strlen(tcond), sizeof(tcond) - strlen(tcond),
		    " AND tp.name = $%d", ++n);
	if (!ns && !name) {
		xasprintf(&sql, "SELECT taskerd_task_json(t, false)::text, t.id"
		    " FROM tasks t WHERE t.id < $1::bigint%s"
		    " ORDER BY t.id DESC LIMIT $2::int", cond);
		return sql;
	}
	xasprintf(&sql, "SELECT taskerd_task_json(x.t, false)::text, x.id"
	    " FROM templates tp JOIN namespaces n ON n.id = tp.namespace_id,"
	    " LATERAL (SELECT t, t.id FROM tasks t WHERE t.template_id = tp.id"
	    "   AND t.id < $1::bigint%s ORDER BY t.id DESC LIMIT $2::int) x"
	    " WHERE true%s ORDER BY x.id DESC LIMIT $2::int", cond, tcond);
	return sql;
}

struct list_req {
	struct evhttp_request	*req;
	int			 limit;
};

static void
list_done(struct db_job *job, void *arg)
{
	struct list_req	*lr = arg;
	struct evbuffer	*buf;
	PGresult	*res;
	int		 i, n;

	if (db_job_error(job) != NULL) {
		reply_db_error(lr->req, job);
		free(lr);
		return;
	}
	res = db_job_result(job, 0);
	n = PQntuples(res);
	buf = evbuffer_new();
	evbuffer_add_printf(buf, "{\"tasks\":[");
	for (i = 0; i < n && i < lr->limit; i++)
		evbuffer_add_printf(buf, "%s%s", i ? "," : "",
		    PQgetvalue(res, i, 0));
	/* One row more than asked was fetched: it says a next page exists. */
	if (n > lr->limit)
		evbuffer_add_printf(buf, "],\"next_cursor\":\"%s\"}",
		    PQgetvalue(res, lr->limit - 1, 1));
	else
		evbuffer_add_printf(buf, "],\"next_cursor\":null}");
	reply_raw(lr->req, 200, (const char *)evbuffer_pullup(buf, -1),
	    evbuffer_get_length(buf));
	evbuffer_free(buf);
	free(lr);
}

void
api_list_tasks(struct evhttp_request *req)
{
	static const char *const known[] = { "status", "namespace", "name",
	    "cursor", "limit", NULL };
	struct evkeyvalq	 q;
	struct evkeyval		*kv;
	const char		*query, *status, *ns, *name, *cursor, *lim;
	const char		**slot[] = { &status, &ns, &name, &cursor,
				    &lim };
	char			*key;
	const char		*params[5];
	struct list_req		*lr;
	struct db_job		*job;
	char			 limit[24], *sql;
	int64_t			 n;
	int			 i, np;

	TAILQ_INIT(&q);
	query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	if (query != NULL && evhttp_parse_query_str(query, &q) == -1) {
		reply_error(req, 400, "invalid_request", "malformed query "
		    "string");
		return;
	}
	/* A misspelt filter would list every task.  libevent decodes the
	 * values, not the keys: "st%61tus" is "status". */
	status = ns = name = cursor = lim = NULL;
	TAILQ_FOREACH(kv, &q, next) {
		if ((key = evhttp_uridecode(kv->key, 1, NULL)) == NULL)
			fatal("evhttp_uridecode");
		for (i = 0; known[i] != NULL; i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (known[i] == NULL || *slot[i] != NULL) {
			reply_error(req, 400, "invalid_request", known[i] ==
			    NULL ? "unknown query parameter \"%s\" (known: "
			    "status, namespace, name, cursor, limit)" : "query "
			    "parameter \"%s\" given twice", key);
			free(key);
			goto out;
		}
		/* ("?namespace=$NS" with NS unset matched no namespace, and
		 * read as an empty list.) */
		if (*kv->value == '\0') {
			reply_error(req, 400, "invalid_request", "query "
			    "parameter \"%s\" is empty", key);
			free(key);
			goto out;
		}
		*slot[i] = kv->value;
		free(key);
	}
	n = API_LIST_DEFAULT;
	if (status != NULL && !valid_state(status)) {
		reply_error(req, 400, "invalid_request", "unknown status "
		    "\"%s\"", status);
		goto out;
	}
	if (lim != NULL && (parse_id(lim, &n) == -1 || n > API_LIST_MAX)) {
		reply_error(req, 400, "invalid_request", "limit must be an "
		    "integer from 1 to %d", API_LIST_MAX);
		goto out;
	}
	if (cursor != NULL && parse_id(cursor, &(int64_t){0}) == -1) {
		reply_error(req, 400, "invalid_request", "malformed cursor");
		goto out;
	}
	snprintf(limit, sizeof(limit), "%lld", (long long)n + 1);
	np = 0;
	params[np++] = cursor != NULL ? cursor : "9223372036854775807";
	params[np++] = limit;
	if (status != NULL)
		params[np++] = status;
	if (ns != NULL)
		params[np++] = ns;
	if (name != NULL)
		params[np++] = name;
	sql = list_sql(status != NULL, ns != NULL, name != NULL);
	lr = xcalloc(1, sizeof(*lr));
	lr->req = req;
	lr->limit = (int)n;
	job = db_job_new(list_done, lr);
	db_job_add(job, sql, np, params);
	free(sql);
	db_submit(job);
out:
	evhttp_clear_headers(&q);
}

/* ---- operator actions ------------------------------------------------- */

/* An operator's body: known fields only, and reason and actor strings
 * (the audit trail would drop anything else without a word). */
static int
action_fields(struct evhttp_request *req, json_t *body,
    const char *const *known)
{
	const char	*s;

	return known_fields(req, body, known) == -1 ||
	    opt_string(req, body, "reason", &s) == -1 ||
	    opt_string(req, body, "actor", &s) == -1 ? -1 : 0;
}

/*
 * Who asked and why, for the transition's metadata.  The actor is the
 * caller's word for now ("actor" in the body); with bearer tokens it will
 * be the token's name.
 */
static json_t *
action_meta(const char *action, json_t *body)
{
	json_t		*actor = json_object_get(body, "actor");
	json_t		*reason = json_object_get(body, "reason");
	const char	*token = api_current_actor();

	/* With tokens configured, who acted is the token, whatever the body
	 * says; the body's actor is kept beside it as the caller's word. */
	return json_pack("{s:s, s:s, s:s*, s:s?}", "action", action,
	    "actor", token != NULL ? token : json_is_string(actor) ?
	    json_string_value(actor) : "anonymous",
	    "on_behalf_of", token != NULL && json_is_string(actor) ?
	    json_string_value(actor) : NULL,
	    "reason", json_is_string(reason) ? json_string_value(reason) :
	    NULL);
}

/* Cancel: what no node has claimed never runs; a claimed attempt ('enqueued'
 * or 'in_progress') belongs to its node and is not retried: the node hands
 * back what it has not started yet (the NOTIFY, sched_cancel_heard), and
 * what runs finishes. */
static const char sql_cancel[] =
"WITH t0 AS (SELECT id, status FROM tasks WHERE id = $1 FOR UPDATE),"
" tu AS ("
"  UPDATE tasks t SET status = 'cancelled', updated_at = now(),"
"    completed_at = clock_timestamp()"
"  FROM t0 WHERE t.id = t0.id"
"    AND t0.status IN ('pending', 'in_progress', 'error')"
"  RETURNING t.id, t0.status AS old),"
" tt AS ("
"  INSERT INTO task_transitions (task_id, from_state, to_state, metadata)"
"  SELECT id, old, 'cancelled', $2::jsonb FROM tu),"
" s0 AS ("
"  SELECT s.id, s.task_id, s.status FROM steps s JOIN tu ON tu.id = s.task_id"
"  WHERE s.status IN ('pending', 'waiting_for_retry')"
"  FOR UPDATE OF s),"
" su AS ("
"  UPDATE steps s SET status = 'cancelled', updated_at = now(),"
"    completed_at = clock_timestamp()"
"  FROM s0 WHERE s.id = s0.id RETURNING s.id, s.task_id, s0.status AS old),"
" st AS ("
"  INSERT INTO step_transitions (step_id, task_id, from_state, to_state,"
"    metadata)"
"  SELECT id, task_id, old, 'cancelled', $2::jsonb FROM su),"
" n AS (SELECT pg_notify('" SCHED_CANCEL_CHANNEL "', id::text) FROM tu)"
"SELECT t0.status, (SELECT count(*) FROM tu), t0.status,"
"  (SELECT count(*) FROM n)"
" FROM t0";

/* The cancel's own statement reads the steps as they were when it began;
 * a node handing a claim back share-locks the task's row and makes its
 * step 'pending' again, which a cancel that waited for that lock would
 * not see: the step would stay claimable in a cancelled task.  Waiting
 * for the row in a statement of its own starts the cancel's statement
 * after the hand-back has committed. */
static const char sql_task_row_lock[] =
"SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE";

static const char sql_task_json[] =
"SELECT taskerd_task_json(t, true)::text FROM tasks t WHERE t.id = $1";

/* One action's answer: statement `first` says (old status, applied
 * count, what the status is called in a refusal), statement `show` has
 * the JSON to return. */
struct action_req {
	struct evhttp_request	*req;
	const char		*what;		/* "task" or "step" */
	int			 first;
	int			 show;
};

static void
action_done(struct db_job *job, void *arg)
{
	struct action_req	*ar = arg;
	struct evhttp_request	*req = ar->req;
	PGresult		*res;

	/* Sent, and the connection lost before its answer: it may have
	 * committed, and "try again" would meet a 409 if it did. */
	if (db_job_error(job) != NULL && db_job_lost(job)) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Retry-After", "1");
		reply_error(req, 503, "outcome_unknown", "the database "
		    "connection was lost before the action's answer came: it "
		    "may have been applied; read the %s before sending it "
		    "again", ar->what);
		goto done;
	}
	if (db_job_error(job) != NULL) {
		reply_db_error(req, job);
		goto done;
	}
	res = db_job_result(job, ar->first);
	/* No row: no such task; a row of nulls: the task has no such step. */
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
		reply_error(req, 404, "not_found", "no such %s",
		    PQntuples(res) == 0 ? "task" : ar->what);
		goto done;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "0") == 0) {
		reply_error(req, 409, "invalid_state", "the %s is %s; the "
		    "action does not apply", ar->what,
		    PQgetvalue(res, 0, 2));
		goto done;
	}
	res = db_job_result(job, ar->show);
	reply_raw(req, 200, PQgetvalue(res, 0, 0),
	    (size_t)PQgetlength(res, 0, 0));
	sched_kick();
	node_hint();
done:
	free(ar);
}

void
api_cancel_task(struct evhttp_request *req, const char *idstr)
{
	static const char *const known[] = { "reason", "actor", NULL };
	struct evbuffer		*in = evhttp_request_get_input_buffer(req);
	struct action_req	*ar;
	struct db_job		*job;
	json_t			*body = NULL, *meta;
	const char		*params[2];
	char			*metas, ids[32];
	int64_t			 id;

	if (parse_id(idstr, &id) == -1) {
		reply_error(req, 404, "not_found", "no such task");
		return;
	}
	/* The body is optional: {"reason": "...", "actor": "..."}. */
	if (evbuffer_get_length(in) > 0) {
		if ((body = read_body(req)) == NULL)
			return;
		if (!json_is_object(body)) {
			reply_error(req, 400, "invalid_request", "the body must "
			    "be a JSON object");
			json_decref(body);
			return;
		}
		if (action_fields(req, body, known) == -1) {
			json_decref(body);
			return;
		}
	}
	meta = action_meta("cancel", body);
	metas = jsontext(meta, 0);
	snprintf(ids, sizeof(ids), "{%lld}", (long long)id);
	ar = xcalloc(1, sizeof(*ar));
	ar->req = req;
	ar->what = "task";
	ar->first = 2;
	ar->show = 3;
	job = db_job_new(action_done, ar);
	/* In line with the scheduler's batches: they lock the task first. */
	params[0] = ids;
	db_job_add(job, sched_sql_lock_tasks, 1, params);
	params[0] = idstr;
	params[1] = metas;
	db_job_add(job, sql_task_row_lock, 1, params);
	db_job_add(job, sql_cancel, 2, params);
	db_job_add(job, sql_task_json, 1, params);
	db_submit(job);
	log_info("task cancel requested task_id=%s", idstr);
	free(metas);
	json_decref(meta);
	json_decref(body);
}

/*
 * An operator's action on one step ($1 task, $2 step name, $3 new status,
 * $4 results, $5 allowed current states, $6 metadata).  A retried step gets
 * its whole attempt budget again; completing or resolving releases the
 * children.
 */
static const char sql_step_action[] =
"WITH s0 AS ("
"  SELECT s.id, s.task_id, s.status, t.status AS task_status"
"  FROM steps s JOIN tasks t ON t.id = s.task_id"
"  WHERE s.task_id = $1 AND s.name = $2 FOR UPDATE OF s),"
" u AS ("
"  UPDATE steps s SET status = $3,"
"    retry_limit = CASE WHEN $3 = 'waiting_for_retry'"
"      THEN least(s.attempts::bigint + s.attempt_budget, 2147483647)::int"
"      ELSE s.retry_limit END,"
"    next_attempt_at = clock_timestamp(),"
"    results = CASE WHEN $3 = 'complete' THEN $4::jsonb ELSE s.results END,"
"    completed_at = CASE WHEN $3 IN ('complete', 'resolved_manually')"
"      THEN clock_timestamp() END,"
"    updated_at = now()"
"  FROM s0 WHERE s.id = s0.id AND s0.status = ANY($5::text[])"
"    AND s0.task_status IN ('pending', 'in_progress', 'error')"
"  RETURNING s.id, s.task_id, s0.status AS old, s.status, s.children),"
" st AS ("
"  INSERT INTO step_transitions (step_id, task_id, from_state, to_state,"
"    metadata)"
"  SELECT id, task_id, old, status, $6::jsonb FROM u),"
" k AS ("
"  UPDATE steps c SET remaining_parents = c.remaining_parents - 1,"
"    updated_at = now()"
"  FROM u WHERE c.id = ANY(u.children)"
"    AND u.status IN ('complete', 'resolved_manually'))"
"SELECT s0.status, (SELECT count(*) FROM u),"
"  CASE WHEN s0.task_status IN ('pending', 'in_progress', 'error')"
"    THEN s0.status ELSE 'in a ' || s0.task_status || ' task' END"
" FROM tasks t LEFT JOIN s0 ON true WHERE t.id = $1";

static const char sql_step_json[] =
"SELECT (SELECT taskerd_step_json(s)::text FROM steps s"
"  WHERE s.task_id = t.id AND s.name = $2)"
" FROM tasks t WHERE t.id = $1";

void
api_step_action(struct evhttp_request *req, const char *idstr,
    const char *step)
{
	static const char *const known[] = { "action", "reason", "actor",
	    NULL };
	static const char *const known_complete[] = { "action", "reason",
	    "actor", "results", NULL };
	struct action_req	*ar;
	struct db_job		*job;
	json_t			*body, *results, *meta;
	const char		*action, *status, *allowed, *params[6];
	char			 ids[32], *metas, *rs = NULL;
	int64_t			 id;

	if (parse_id(idstr, &id) == -1) {
		reply_error(req, 404, "not_found", "no such task");
		return;
	}
	if ((body = read_body(req)) == NULL)
		return;
	if (!json_is_object(body) ||
	    !json_is_string(json_object_get(body, "action"))) {
		reply_error(req, 400, "invalid_request", "the body must be "
		    "{\"action\": \"retry\" | \"resolve_manually\" | "
		    "\"complete_manually\", \"reason\": ...}");
		goto out;
	}
	if (action_fields(req, body, strcmp(json_string_value(
	    json_object_get(body, "action")), "complete_manually") == 0 ?
	    known_complete : known) == -1)
		goto out;
	if (!json_is_string(json_object_get(body, "reason")) ||
	    json_string_length(json_object_get(body, "reason")) == 0) {
		reply_error(req, 400, "invalid_request", "\"reason\" is "
		    "required: the audit history records why");
		goto out;
	}
	action = json_string_value(json_object_get(body, "action"));
	/* null is absent, as for the other fields. */
	if (json_is_null(results = json_object_get(body, "results")))
		results = NULL;
	if (strcmp(action, "retry") == 0) {
		status = "waiting_for_retry";
		allowed = "{error}";
	} else if (strcmp(action, "resolve_manually") == 0) {
		status = "resolved_manually";
		allowed = "{error,pending,waiting_for_retry}";
	} else if (strcmp(action, "complete_manually") == 0) {
		status = "complete";
		allowed = "{error,pending,waiting_for_retry}";
		if (results != NULL && !json_is_object(results)) {
			reply_error(req, 400, "invalid_request", "\"results\" "
			    "must be a JSON object");
			goto out;
		}
		/* As a handler's results: the children's input holds them
		 * three levels down (steps.<name>.results). */
		if (results != NULL &&
		    proto_json_depth(results) > PROTO_MAX_JSON_DEPTH) {
			reply_error(req, 400, "invalid_request", "\"results\" "
			    "is nested deeper than %d levels",
			    PROTO_MAX_JSON_DEPTH);
			goto out;
		}
		rs = results != NULL ? jsontext(results, 0) :
		    xstrdup("{}");
	} else {
		reply_error(req, 400, "invalid_request", "unknown action "
		    "\"%s\"", action);
		goto out;
	}

	snprintf(ids, sizeof(ids), "{%lld}", (long long)id);
	meta = action_meta(action, body);
	metas = jsontext(meta, 0);
	json_decref(meta);
	params[0] = idstr;
	params[1] = step;
	params[2] = status;
	params[3] = rs;
	params[4] = allowed;
	params[5] = metas;

	ar = xcalloc(1, sizeof(*ar));
	ar->req = req;
	ar->what = "step";
	ar->first = 1;
	ar->show = 3;
	job = db_job_new(action_done, ar);
	params[0] = ids;
	db_job_add(job, sched_sql_lock_tasks, 1, params);
	params[0] = idstr;
	db_job_add(job, sql_step_action, 6, params);
	params[0] = ids;
	db_job_add(job, sched_sql_finalize, 1, params);
	params[0] = idstr;
	db_job_add(job, sql_step_json, 2, params);
	db_submit(job);
	log_info("step action requested task_id=%s step=%s action=%s",
	    idstr, log_quote(step), log_quote(action));
	free(metas);
out:
	free(rs);
	json_decref(body);
}

/* ---- reading steps and history ----------------------------------------- */

static const char sql_step_transitions[] =
"SELECT coalesce(jsonb_agg(jsonb_build_object('from_state', tr.from_state,"
"  'to_state', tr.to_state, 'metadata', tr.metadata,"
"  'created_at', tr.created_at) ORDER BY tr.id)"
"  FILTER (WHERE tr.id IS NOT NULL), '[]')::text,"
"  count(s.id)"
" FROM tasks t LEFT JOIN steps s ON s.task_id = t.id AND s.name = $2"
" LEFT JOIN step_transitions tr ON tr.task_id = s.task_id"
"   AND tr.step_id = s.id"
" WHERE t.id = $1 GROUP BY t.id";

static const char sql_task_transitions[] =
"SELECT coalesce((SELECT jsonb_agg(x.j ORDER BY x.at, x.id) FROM ("
"  SELECT jsonb_build_object('scope', 'task', 'step', NULL,"
"    'from_state', tr.from_state, 'to_state', tr.to_state,"
"    'metadata', tr.metadata, 'created_at', tr.created_at) AS j,"
"    tr.created_at AS at, tr.id FROM task_transitions tr"
"  WHERE tr.task_id = t.id"
"  UNION ALL"
"  SELECT jsonb_build_object('scope', 'step', 'step', s.name,"
"    'from_state', tr.from_state, 'to_state', tr.to_state,"
"    'metadata', tr.metadata, 'created_at', tr.created_at),"
"    tr.created_at, tr.id FROM step_transitions tr"
"  JOIN steps s ON s.id = tr.step_id WHERE tr.task_id = t.id) x),"
"  '[]')::text FROM tasks t WHERE t.id = $1";

/* A read whose statement returns one JSON text, or no row for 404. */
struct read_req {
	struct evhttp_request	*req;
	const char		*wrap;	/* NULL, or the member to wrap it in */
	const char		*what;
	char			 id[24];
};

static void
read_done(struct db_job *job, void *arg)
{
	struct read_req		*rr = arg;
	PGresult		*res;
	struct evbuffer		*buf;

	if (db_job_error(job) != NULL) {
		reply_db_error(rr->req, job);
		goto done;
	}
	res = db_job_result(job, 0);
	/* No row: no such task.  A null, or a second column counting the
	 * rows found as 0: the task has no such step. */
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0) ||
	    (PQnfields(res) > 1 && strcmp(PQgetvalue(res, 0, 1), "0") == 0)) {
		reply_error(rr->req, 404, "not_found", "no such %s",
		    PQntuples(res) == 0 ? "task" : rr->what);
		goto done;
	}
	if (rr->wrap == NULL) {
		reply_raw(rr->req, 200, PQgetvalue(res, 0, 0),
		    (size_t)PQgetlength(res, 0, 0));
		goto done;
	}
	buf = evbuffer_new();
	evbuffer_add_printf(buf, "{\"%s\":%s}", rr->wrap,
	    PQgetvalue(res, 0, 0));
	reply_raw(rr->req, 200, (const char *)evbuffer_pullup(buf, -1),
	    evbuffer_get_length(buf));
	evbuffer_free(buf);
done:
	free(rr);
}

/* params[0] is the task id from the path: anything but digits is a 404. */
static void
read_submit(struct evhttp_request *req, const char *sql, int n,
    const char *const *params, const char *wrap, const char *what)
{
	struct read_req	*rr;
	struct db_job	*job;
	int64_t		 id;

	if (parse_id(params[0], &id) == -1) {
		reply_error(req, 404, "not_found", "no such task");
		return;
	}
	rr = xcalloc(1, sizeof(*rr));
	rr->req = req;
	rr->wrap = wrap;
	rr->what = what;
	job = db_job_new(read_done, rr);
	db_job_add(job, sql, n, params);
	db_submit(job);
}

void
api_get_step(struct evhttp_request *req, const char *idstr,
    const char *step)
{
	const char	*params[2] = { idstr, step };

	read_submit(req, sql_step_json, 2, params, NULL, "step");
}

void
api_step_transitions(struct evhttp_request *req, const char *idstr,
    const char *step)
{
	const char	*params[2] = { idstr, step };

	read_submit(req, sql_step_transitions, 2, params, "transitions",
	    "step");
}

void
api_task_transitions(struct evhttp_request *req, const char *idstr)
{
	const char	*params[1] = { idstr };

	read_submit(req, sql_task_transitions, 1, params, "transitions",
	    "task");
}

/* A task shown, with what it waits for (api.h). */
static const char sql_task_show[] =
"SELECT (taskerd_task_json(t, true) || "
SQL_TASK_WAITING("$2", "$3") ")::text FROM tasks t WHERE t.id = $1";

void
api_get_task(struct evhttp_request *req, const char *idstr)
{
	char		*ids = node_template_ids();
	char		*breaking = services_breaking();
	const char	*params[3] = { idstr, ids, breaking };

	read_submit(req, sql_task_show, 3, params, NULL, "task");
	free(ids);
	free(breaking);
}

/* ---- the DAG as Mermaid ------------------------------------------------ */

static const char sql_diagram[] =
"SELECT s.position, s.name, s.status, s.attempts,"
"  coalesce((SELECT string_agg(p.position::text, ',' ORDER BY p.position)"
"   FROM steps p WHERE p.task_id = s.task_id AND s.id = ANY(p.children)),"
"  '')"
" FROM steps s WHERE s.task_id = $1 ORDER BY s.position";

/* Mermaid labels are quoted; a quote inside becomes its entity. */
static void
mermaid_label(struct evbuffer *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '"')
			evbuffer_add_printf(b, "#quot;");
		else if (*s == '\n')
			evbuffer_add(b, " ", 1);
		else
			evbuffer_add(b, s, 1);
	}
}

static void
diagram_done(struct db_job *job, void *arg)
{
	static const char *const classes =
	    "  classDef pending fill:#eeeeee,stroke:#999999\n"
	    "  classDef in_progress fill:#cce5ff,stroke:#3377cc\n"
	    "  classDef enqueued fill:#cce5ff,stroke:#3377cc\n"
	    "  classDef waiting_for_retry fill:#fff3cd,stroke:#cc9900\n"
	    "  classDef complete fill:#d4edda,stroke:#339955\n"
	    "  classDef resolved_manually fill:#d4edda,stroke:#339955\n"
	    "  classDef error fill:#f8d7da,stroke:#cc3344\n"
	    "  classDef cancelled fill:#e2e3e5,stroke:#666666\n";
	struct read_req	*rr = arg;
	struct evbuffer	*b;
	PGresult	*res;
	json_t		*out;
	char		*parents, *p, *tok, *text;
	int		 i, n;

	if (db_job_error(job) != NULL) {
		reply_db_error(rr->req, job);
		goto done;
	}
	res = db_job_result(job, 0);
	if ((n = PQntuples(res)) == 0) {
		reply_error(rr->req, 404, "not_found", "no such task");
		goto done;
	}
	b = evbuffer_new();
	evbuffer_add_printf(b, "graph TD\n");
	for (i = 0; i < n; i++) {
		evbuffer_add_printf(b, "  s%s[\"", PQgetvalue(res, i, 0));
		mermaid_label(b, PQgetvalue(res, i, 1));
		evbuffer_add_printf(b, "<br/>%s (%s)\"]:::%s\n",
		    PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
		    PQgetvalue(res, i, 2));
	}
	for (i = 0; i < n; i++) {
		parents = xstrdup(PQgetvalue(res, i, 4));
		for (p = parents; (tok = strsep(&p, ",")) != NULL;)
			if (*tok != '\0')
				evbuffer_add_printf(b, "  s%s --> s%s\n", tok,
				    PQgetvalue(res, i, 0));
		free(parents);
	}
	evbuffer_add_printf(b, "%s", classes);
	text = xstrndup((const char *)evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	evbuffer_free(b);
	out = json_pack("{s:I, s:s}", "task_id",
	    (json_int_t)strtoll(rr->id, NULL, 10), "mermaid", text);
	free(text);
	reply_json(rr->req, 200, out);
done:
	free(rr);
}

void
api_task_diagram(struct evhttp_request *req, const char *idstr)
{
	struct read_req	*rr;
	struct db_job	*job;
	const char	*params[1] = { idstr };
	int64_t		 id;

	if (parse_id(idstr, &id) == -1) {
		reply_error(req, 404, "not_found", "no such task");
		return;
	}
	rr = xcalloc(1, sizeof(*rr));
	rr->req = req;
	snprintf(rr->id, sizeof(rr->id), "%lld", (long long)id);
	job = db_job_new(diagram_done, rr);
	db_job_add(job, sql_diagram, 1, params);
	db_submit(job);
}
