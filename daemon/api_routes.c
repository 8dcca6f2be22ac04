/*
 * api_routes.c - routes a template publishes beside /v1, so an application
 * keeps the endpoints it had (the seed's POST /user_onboarding,
 * GET /user_onboarding/status/{id}, GET /user_onboarding/results/{id}).
 *
 * They speak the application's dialect - {"success": ..., "error": ...,
 * "details": ...} - and are thin: creation goes through the same checks as
 * POST /v1/tasks, reads are one statement each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "api.h"
#include "db.h"
#include "node.h"
#include "render.h"
#include "reply.h"
#include "services.h"
#include "supervisor.h"
#include "log.h"
#include "utf8.h"
#include "xmalloc.h"

/* A failed statement, in the routes' format. */
static void
route_db_error(struct evhttp_request *req, struct db_job *job)
{
	const char	*code;
	char		 msg[128];
	int		 status = reply_db_failure(req, job, &code, msg, sizeof(msg));

	reply_route_error(req, status, code, msg, NULL);
}

void
api_route_create(struct evhttp_request *req, const struct tmpl *t)
{
	struct evbuffer		*in = evhttp_request_get_input_buffer(req);
	struct task_request	 tr;
	json_t			*body, *ctx;
	json_error_t		 jerr;
	size_t			 len = evbuffer_get_length(in);

	if ((int64_t)len > sv.conf->http_max_body) {
		reply_route_error(req, 413, "body_too_large",
		    "request body too large", json_pack(
		    "{s:I}", "limit", (json_int_t)sv.conf->http_max_body));
		return;
	}
	/* (An empty buffer has no bytes to pull up: NULL.) */
	body = json_loadb(len > 0 ? (const char *)evbuffer_pullup(in, -1) : "",
	    len, JSON_REJECT_DUPLICATES, &jerr);
	if (body == NULL) {
		/* (Valid JSON, but jansson holds integers in 64 bits.) */
		if (json_error_code(&jerr) == json_error_numeric_overflow)
			reply_route_error(req, 400, "invalid_request",
			    "integer out of range", json_pack("{s:s, s:i, "
			    "s:i}", "reason", "integers must fit in 64 bits: "
			    "send a bigger one as a string", "line", jerr.line,
			    "column", jerr.column));
		else
			reply_route_error(req, 400, "bad_json",
			    "malformed JSON", json_pack("{s:s, s:i, s:i}",
			    "reason", jerr.text, "line", jerr.line, "column",
			    jerr.column));
		return;
	}
	ctx = t->route_context_from != NULL ?
	    json_object_get(body, t->route_context_from) : body;
	if (!json_is_object(ctx)) {
		reply_route_error(req, 422, "invalid_context", "invalid data",
		    json_pack("[{s:s, s:s}]", "path", t->route_context_from ?
		    t->route_context_from : "$", "message",
		    "must be a JSON object"));
		json_decref(body);
		return;
	}
	memset(&tr, 0, sizeof(tr));
	tr.t = t;
	tr.ctx = ctx;
	tr.source_system = "route";
	tr.initiator = t->route_create;
	/* A route's body is the context: the key comes as a header. */
	tr.ikey = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Idempotency-Key");
	if (tr.ikey != NULL && !utf8_valid(tr.ikey, strlen(tr.ikey))) {
		reply_route_error(req, 400, "invalid_request",
		    "invalid Idempotency-Key header", json_pack(
		    "{s:s}", "reason", "not valid UTF-8"));
		json_decref(body);
		return;
	}
	task_create(req, &tr, t);
	json_decref(body);
}

/* The task must be one of this template's (any version). */
#define ROUTE_TASK_WHERE \
	" FROM tasks t JOIN templates tp ON tp.id = t.template_id" \
	" JOIN namespaces n ON n.id = tp.namespace_id" \
	" WHERE t.id = $1 AND n.name = $2 AND tp.name = $3"

/* $4, $5: as SQL_TASK_WAITING's. */
static const char sql_route_status[] =
"SELECT (jsonb_build_object('task_id', t.id, 'status', t.status,"
"  'started_at', t.created_at, 'completed_at', t.completed_at,"
"  'total_duration_ms', round(extract(epoch FROM"
"    t.completed_at - t.created_at) * 1000),"
"  'steps', (SELECT jsonb_agg(jsonb_build_object('name', s.name,"
"    'service', s.service, 'status', s.status, 'attempts', s.attempts,"
"    'started_at', s.started_at, 'completed_at', s.completed_at,"
"    'duration_ms', round(extract(epoch FROM"
"      s.completed_at - s.started_at) * 1000)) ORDER BY s.position)"
"    FROM steps s WHERE s.task_id = t.id)) || "
SQL_TASK_WAITING("$4", "$5") ")::text"
ROUTE_TASK_WHERE;

static const char sql_route_results[] =
"SELECT t.status, t.context::text,"
"  (SELECT coalesce(jsonb_object_agg(s.name, jsonb_build_object("
"     'results', s.results, 'status', s.status)), '{}')"
"   FROM steps s WHERE s.task_id = t.id)::text,"
"  (SELECT coalesce(jsonb_agg(DISTINCT s.service), '[]') FROM steps s"
"   WHERE s.task_id = t.id AND s.service IS NOT NULL"
"     AND s.status IN ('complete', 'resolved_manually'))::text"
ROUTE_TASK_WHERE;

struct route_req {
	struct evhttp_request	*req;
	const struct tmpl	*t;
	char			 id[24];
};

static void
route_status_done(struct db_job *job, void *arg)
{
	struct route_req	*rr = arg;
	PGresult		*res;

	if (db_job_error(job) != NULL)
		route_db_error(rr->req, job);
	else if (PQntuples(res = db_job_result(job, 0)) == 0)
		reply_route_error(rr->req, 404, "not_found",
		    "task not found", NULL);
	else
		reply_raw(rr->req, 200, PQgetvalue(res, 0, 0),
		    (size_t)PQgetlength(res, 0, 0));
	free(rr);
}

static void
route_results_done(struct db_job *job, void *arg)
{
	struct route_req	*rr = arg;
	PGresult		*res;
	json_t			*scope, *out;
	const char		*status;
	char			 err[256], *label;

	if (db_job_error(job) != NULL) {
		route_db_error(rr->req, job);
		goto done;
	}
	res = db_job_result(job, 0);
	if (PQntuples(res) == 0) {
		reply_route_error(rr->req, 404, "not_found",
		    "task not found", NULL);
		goto done;
	}
	/* (resolved_manually: complete, a step's results perhaps given by
	 * hand or left out; the body reads what there is, null for what is
	 * not.) */
	status = PQgetvalue(res, 0, 0);
	if (strcmp(status, "complete") != 0 &&
	    strcmp(status, "resolved_manually") != 0) {
		reply_route_error(rr->req, 409, "invalid_state",
		    strcmp(status, "pending") == 0 ||
		    strcmp(status, "in_progress") == 0 ?
		    "task is not complete yet" : "task ended without all its "
		    "results",
		    json_pack("{s:I, s:s}", "task_id",
		    (json_int_t)strtoll(rr->id, NULL, 10), "status",
		    PQgetvalue(res, 0, 0)));
		goto done;
	}
	if (rr->t->route_results_body == NULL) {
		reply_raw(rr->req, 200, PQgetvalue(res, 0, 2),
		    (size_t)PQgetlength(res, 0, 2));
		goto done;
	}
	scope = json_pack("{s:o, s:o, s:{s:I, s:s, s:o}}",
	    "context", db_json(res, 0, 1),
	    "steps", db_json(res, 0, 2),
	    "task", "id", (json_int_t)strtoll(rr->id, NULL, 10), "status",
	    PQgetvalue(res, 0, 0),
	    "services", db_json(res, 0, 3));
	if (scope == NULL)
		out = NULL;
	else if (strcmp(status, "complete") == 0)
		out = render_json(rr->t->route_results_body, scope, err,
		    sizeof(err));
	else
		out = render_json_lenient(rr->t->route_results_body, scope,
		    err, sizeof(err));
	if (out == NULL) {
		xasprintf(&label, "%s/%s", rr->t->namespace, rr->t->name);
		log_warnx("results route cannot render template=%s "
		    "task_id=%s reason=%s", log_quote(label), rr->id,
		    log_quote(scope ? err : "bad row"));
		free(label);
		reply_route_error(rr->req, 500, "internal",
		    "results cannot be rendered",
		    json_pack("{s:s}", "reason", scope ? err : "bad row"));
	} else
		reply_json(rr->req, 200, out);
	json_decref(scope);
done:
	free(rr);
}

/* Read task id of template t with sql ($1 id, $2 namespace, $3 name and,
 * with waiting, $4 and $5 as SQL_TASK_WAITING's). */
static void
route_read(struct evhttp_request *req, const struct tmpl *t,
    const char *id, const char *sql, db_cb cb, bool waiting)
{
	struct route_req	*rr;
	struct db_job		*job;
	const char		*params[5];
	char			*ids = NULL, *breaking = NULL;
	int64_t			 n;

	if (parse_id(id, &n) == -1) {
		reply_route_error(req, 404, "not_found", "task not found",
		    NULL);
		return;
	}
	rr = xcalloc(1, sizeof(*rr));
	rr->req = req;
	rr->t = t;
	snprintf(rr->id, sizeof(rr->id), "%lld", (long long)n);
	params[0] = rr->id;
	params[1] = t->namespace;
	params[2] = t->name;
	if (waiting) {
		params[3] = ids = node_template_ids();
		params[4] = breaking = services_breaking();
	}
	job = db_job_new(cb, rr);
	db_job_add(job, sql, waiting ? 5 : 3, params);
	db_submit(job);
	free(ids);
	free(breaking);
}

void
api_route_status(struct evhttp_request *req, const struct tmpl *t,
    const char *id)
{
	route_read(req, t, id, sql_route_status, route_status_done, true);
}

void
api_route_results(struct evhttp_request *req, const struct tmpl *t,
    const char *id)
{
	route_read(req, t, id, sql_route_results, route_results_done, false);
}
