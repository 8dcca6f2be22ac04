/*
 * api.c - the HTTP API.
 *
 * Every handler answers JSON; every error is {"error": {"code", "message"}}
 * with a 4xx/5xx status.  Nothing here blocks: database work goes through
 * db.c jobs and the reply is sent from the job's callback.  A client that
 * hangs up meanwhile is harmless: libevent keeps the request until we reply
 * to it and then frees it.
 *
 * Bodies: evhttp itself refuses bodies beyond a hard cap (twice
 * http.max_body plus 64 KiB) so no client can make us buffer without bound;
 * below that cap, a body over http.max_body gets our JSON 413.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/queue.h>
#include <sys/un.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "api.h"
#include "db.h"
#include "pool.h"
#include "protocol.h"
#include "sched.h"
#include "supervisor.h"
#include "log.h"
#include "xmalloc.h"

#define API_LIST_DEFAULT	50
#define API_LIST_MAX		500

static struct evhttp	*http;
static struct evhttp_bound_socket *bound;	/* the listener */

static const char *const task_states[] = { "pending", "in_progress",
	"complete", "error", "cancelled", "resolved_manually", NULL };

/* ---- replies ---------------------------------------------------------- */

static void
reply_raw(struct evhttp_request *req, int status, const char *json,
    size_t len)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct evbuffer		*buf = evbuffer_new();

	evhttp_add_header(h, "Content-Type", "application/json");
	evbuffer_add(buf, json, len);
	evbuffer_add(buf, "\n", 1);
	evhttp_send_reply(req, status, NULL, buf);
	evbuffer_free(buf);
}

static void
reply_json(struct evhttp_request *req, int status, json_t *body)
{
	char	*s = json_dumps(body, JSON_COMPACT);

	reply_raw(req, status, s, strlen(s));
	free(s);
	json_decref(body);
}

static void __attribute__((format(printf, 4, 5)))
reply_error(struct evhttp_request *req, int status, const char *code,
    const char *fmt, ...)
{
	char	 msg[512];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_json(req, status, json_pack("{s:{s:s, s:s}}", "error",
	    "code", code, "message", msg));
}

/* A database job failed: say so honestly and suggest when to come back. */
static void
reply_db_error(struct evhttp_request *req, struct db_job *job)
{
	const char	*state = db_job_sqlstate(job);

	if (state != NULL && strncmp(state, "08", 2) == 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Retry-After", "1");
		reply_error(req, 503, "database_unavailable",
		    "the database is unavailable; try again shortly");
		return;
	}
	log_warnx("api database error sqlstate=%s error=\"%s\"",
	    state ? state : "none", db_job_error(job));
	reply_error(req, 500, "internal", "database error (%s)",
	    state ? state : "unknown");
}

/* ---- helpers ---------------------------------------------------------- */

static int
parse_id(const char *s, int64_t *id)
{
	char	*end;
	size_t	 i, n = strlen(s);

	if (n == 0 || n > 18)
		return -1;
	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return -1;
	*id = strtoll(s, &end, 10);
	return *id > 0 ? 0 : -1;
}

static bool
valid_state(const char *s)
{
	int	i;

	for (i = 0; task_states[i] != NULL; i++)
		if (strcmp(s, task_states[i]) == 0)
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

/* The request body as JSON; on failure the reply has been sent. */
static json_t *
read_body(struct evhttp_request *req)
{
	struct evbuffer	*in = evhttp_request_get_input_buffer(req);
	size_t		 len = evbuffer_get_length(in);
	json_error_t	 jerr;
	json_t		*j;

	if ((int64_t)len > sv.conf->http_max_body) {
		reply_error(req, 413, "body_too_large", "request body is %zu "
		    "bytes; the limit is %lld", len,
		    (long long)sv.conf->http_max_body);
		return NULL;
	}
	j = json_loadb((const char *)evbuffer_pullup(in, -1), len,
	    JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		reply_error(req, 400, "bad_json", "malformed JSON at line %d "
		    "column %d: %s", jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	return j;
}

/* ---- POST /v1/tasks --------------------------------------------------- */

static const char sql_create[] =
"WITH t AS ("
"  INSERT INTO tasks (template_id, context, initiator, source_system,"
"    reason, tags, correlation_id)"
"  VALUES ($1, $2::jsonb, $3, $4, $5, $6::jsonb, $7) RETURNING *),"
" s AS ("
"  INSERT INTO steps (task_id, name, position, handler, retry_limit,"
"    retryable, timeout_ms, remaining_parents)"
"  SELECT t.id, x.name, x.position, x.handler, x.retry_limit,"
"    x.retryable, x.timeout_ms, x.nparents"
"  FROM t, jsonb_to_recordset($8::jsonb) AS x(name text, position int,"
"    handler text, retry_limit int, retryable boolean, timeout_ms int,"
"    nparents int)"
"  RETURNING id, task_id, name),"
" e AS ("
"  INSERT INTO step_edges (task_id, from_step_id, to_step_id)"
"  SELECT p.task_id, p.id, c.id"
"  FROM jsonb_to_recordset($9::jsonb) AS y(src text, dst text)"
"  JOIN s p ON p.name = y.src JOIN s c ON c.name = y.dst),"
" tt AS ("
"  INSERT INTO task_transitions (task_id, from_state, to_state, metadata)"
"  SELECT t.id, NULL, 'pending', jsonb_strip_nulls(jsonb_build_object("
"    'initiator', t.initiator, 'source_system', t.source_system,"
"    'reason', t.reason)) FROM t)"
"SELECT t.id FROM t";

static const char sql_task_after_create[] =
"SELECT taskerd_task_json(t, true)::text FROM tasks t"
" WHERE t.id = currval(pg_get_serial_sequence('tasks', 'id'))";

static void
create_done(struct db_job *job, void *arg)
{
	struct evhttp_request	*req = arg;
	PGresult		*res;

	if (db_job_error(job) != NULL) {
		reply_db_error(req, job);
		return;
	}
	res = db_job_result(job, 1);
	if (PQntuples(res) != 1) {
		reply_error(req, 500, "internal", "task vanished after creation");
		return;
	}
	reply_raw(req, 201, PQgetvalue(res, 0, 0),
	    (size_t)PQgetlength(res, 0, 0));
	sched_kick();
}

/* The template's steps and edges as the create statement wants them. */
static void
template_rows(const struct tmpl *t, char **steps, char **edges)
{
	json_t	*s = json_array(), *e = json_array();
	size_t	 i, j;

	for (i = 0; i < t->nsteps; i++) {
		const struct tmpl_step *st = &t->steps[i];

		json_array_append_new(s, json_pack("{s:s, s:i, s:s, s:i, s:b, "
		    "s:I, s:i}", "name", st->name, "position", (int)i,
		    "handler", st->handler, "retry_limit", st->retry_limit,
		    "retryable", st->retryable,
		    "timeout_ms", (json_int_t)st->timeout_ms,
		    "nparents", (int)st->ndeps));
		for (j = 0; j < st->ndeps; j++)
			json_array_append_new(e, json_pack("{s:s, s:s}",
			    "src", t->steps[st->dep_idx[j]].name,
			    "dst", st->name));
	}
	*steps = json_dumps(s, JSON_COMPACT);
	*edges = json_dumps(e, JSON_COMPACT);
	json_decref(s);
	json_decref(e);
}

/* An optional string field; -1 (reply sent) when present but not one. */
static int
opt_string(struct evhttp_request *req, json_t *body, const char *key,
    const char **out)
{
	json_t	*v = json_object_get(body, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		reply_error(req, 400, "invalid_request", "\"%s\" must be a "
		    "string", key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

static void
api_create_task(struct evhttp_request *req)
{
	static const char *const known[] = { "name", "namespace", "version",
	    "context", "initiator", "source_system", "reason", "tags",
	    "idempotency_key", NULL };
	json_t		*body, *ctx, *tags, *v;
	const char	*name, *ns, *version, *initiator, *source, *reason;
	const char	*ikey, *key;
	const struct tmpl *t;
	char		 tid[24], *ctxs, *tagss, *steps, *edges, *corr;
	const char	*params[9];
	struct db_job	*job;
	int		 i;

	if ((body = read_body(req)) == NULL)
		return;
	if (!json_is_object(body)) {
		reply_error(req, 400, "invalid_request", "the body must be a "
		    "JSON object");
		goto out;
	}
	json_object_foreach(body, key, v) {
		for (i = 0; known[i] != NULL; i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (known[i] == NULL) {
			reply_error(req, 400, "invalid_request", "unknown "
			    "field \"%s\"", key);
			goto out;
		}
	}
	if (opt_string(req, body, "name", &name) == -1 ||
	    opt_string(req, body, "namespace", &ns) == -1 ||
	    opt_string(req, body, "version", &version) == -1 ||
	    opt_string(req, body, "initiator", &initiator) == -1 ||
	    opt_string(req, body, "source_system", &source) == -1 ||
	    opt_string(req, body, "reason", &reason) == -1 ||
	    opt_string(req, body, "idempotency_key", &ikey) == -1)
		goto out;
	if (name == NULL || *name == '\0') {
		reply_error(req, 400, "invalid_request", "\"name\" (the "
		    "template's name) is required");
		goto out;
	}
	if (ns == NULL)
		ns = "default";
	ctx = json_object_get(body, "context");
	if (ctx != NULL && !json_is_object(ctx)) {
		reply_error(req, 400, "invalid_request", "\"context\" must be "
		    "a JSON object");
		goto out;
	}
	if (ctx != NULL && proto_json_depth(ctx) > PROTO_MAX_JSON_DEPTH) {
		reply_error(req, 400, "invalid_request", "\"context\" is "
		    "nested deeper than %d levels", PROTO_MAX_JSON_DEPTH);
		goto out;
	}
	tags = json_object_get(body, "tags");
	if (tags != NULL && !json_is_array(tags) && !json_is_object(tags)) {
		reply_error(req, 400, "invalid_request", "\"tags\" must be an "
		    "array or an object");
		goto out;
	}
	if ((t = tmpl_registry_find(sv.templates, ns, name, version)) ==
	    NULL) {
		reply_error(req, 404, "unknown_template", "no template "
		    "%s/%s%s%s", ns, name, version ? "@" : "",
		    version ? version : "");
		goto out;
	}

	snprintf(tid, sizeof(tid), "%lld", (long long)t->db_id);
	ctxs = ctx ? json_dumps(ctx, JSON_COMPACT) : xstrdup("{}");
	tagss = tags ? json_dumps(tags, JSON_COMPACT) : xstrdup("[]");
	corr = correlation_id(req);
	template_rows(t, &steps, &edges);
	params[0] = tid;
	params[1] = ctxs;
	params[2] = initiator;
	params[3] = source;
	params[4] = reason;
	params[5] = tagss;
	params[6] = corr;
	params[7] = steps;
	params[8] = edges;
	job = db_job_new(create_done, req);
	db_job_add(job, sql_create, 9, params);
	db_job_add(job, sql_task_after_create, 0, NULL);
	db_submit(job);
	free(ctxs);
	free(tagss);
	free(corr);
	free(steps);
	free(edges);
out:
	json_decref(body);
}

/* ---- GET /v1/tasks, /v1/tasks/{id} ------------------------------------ */

static const char sql_list[] =
"SELECT taskerd_task_json(t, false)::text, t.id FROM tasks t"
" JOIN templates tp ON tp.id = t.template_id"
" JOIN namespaces n ON n.id = tp.namespace_id"
" WHERE ($1::text IS NULL OR t.status = $1)"
"   AND ($2::text IS NULL OR n.name = $2)"
"   AND ($3::text IS NULL OR tp.name = $3)"
"   AND ($4::bigint IS NULL OR t.id < $4)"
" ORDER BY t.id DESC LIMIT $5";

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

static void
api_list_tasks(struct evhttp_request *req)
{
	struct evkeyvalq	 q;
	const char		*query, *status, *ns, *name, *cursor, *lim;
	const char		*params[5];
	struct list_req		*lr;
	struct db_job		*job;
	char			 limit[24];
	int64_t			 n;

	TAILQ_INIT(&q);
	query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	if (query != NULL && evhttp_parse_query_str(query, &q) == -1) {
		reply_error(req, 400, "invalid_request", "malformed query "
		    "string");
		return;
	}
	status = evhttp_find_header(&q, "status");
	ns = evhttp_find_header(&q, "namespace");
	name = evhttp_find_header(&q, "name");
	cursor = evhttp_find_header(&q, "cursor");
	lim = evhttp_find_header(&q, "limit");
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
	params[0] = status;
	params[1] = ns;
	params[2] = name;
	params[3] = cursor;
	params[4] = limit;
	lr = xcalloc(1, sizeof(*lr));
	lr->req = req;
	lr->limit = (int)n;
	job = db_job_new(list_done, lr);
	db_job_add(job, sql_list, 5, params);
	db_submit(job);
out:
	evhttp_clear_headers(&q);
}

static void
get_task_done(struct db_job *job, void *arg)
{
	struct evhttp_request	*req = arg;
	PGresult		*res;

	if (db_job_error(job) != NULL) {
		reply_db_error(req, job);
		return;
	}
	res = db_job_result(job, 0);
	if (PQntuples(res) == 0) {
		reply_error(req, 404, "not_found", "no such task");
		return;
	}
	reply_raw(req, 200, PQgetvalue(res, 0, 0),
	    (size_t)PQgetlength(res, 0, 0));
}

static void
api_get_task(struct evhttp_request *req, const char *idstr)
{
	struct db_job	*job;
	const char	*params[1] = { idstr };
	int64_t		 id;

	if (parse_id(idstr, &id) == -1) {
		reply_error(req, 404, "not_found", "no such task");
		return;
	}
	job = db_job_new(get_task_done, req);
	db_job_add(job, "SELECT taskerd_task_json(t, true)::text FROM tasks t"
	    " WHERE t.id = $1", 1, params);
	db_submit(job);
}

/* ---- templates, workers, health ---------------------------------------- */

static json_t *
template_json(const struct tmpl *t, bool full)
{
	json_t	*steps = json_array(), *deps, *o;
	size_t	 i, j;

	for (i = 0; i < t->nsteps; i++) {
		const struct tmpl_step *st = &t->steps[i];

		deps = json_array();
		for (j = 0; j < st->ndeps; j++)
			json_array_append_new(deps, json_string(st->deps[j]));
		json_array_append_new(steps, json_pack("{s:s, s:s, s:o, s:i, "
		    "s:b, s:I}", "name", st->name, "handler", st->handler,
		    "depends_on", deps, "retry_limit", st->retry_limit,
		    "retryable", st->retryable,
		    "timeout_ms", (json_int_t)st->timeout_ms));
	}
	o = json_pack("{s:s, s:s, s:s, s:s?, s:s, s:o}",
	    "namespace", t->namespace, "name", t->name, "version", t->version,
	    "description", t->description,
	    "identity_strategy", tmpl_identity_name(t->identity),
	    "steps", steps);
	if (full)
		json_object_set(o, "definition", t->definition);
	return o;
}

static void
api_list_templates(struct evhttp_request *req)
{
	json_t	*arr = json_array();
	size_t	 i;

	for (i = 0; i < sv.templates->n; i++)
		json_array_append_new(arr,
		    template_json(sv.templates->items[i], false));
	reply_json(req, 200, json_pack("{s:o}", "templates", arr));
}

static void
api_get_template(struct evhttp_request *req, const char *ns,
    const char *name)
{
	const struct tmpl *t = tmpl_registry_find(sv.templates, ns, name,
	    NULL);

	if (t == NULL) {
		reply_error(req, 404, "unknown_template", "no template %s/%s",
		    ns, name);
		return;
	}
	reply_json(req, 200, template_json(t, true));
}

static void
api_ready(struct evhttp_request *req)
{
	int	 dbs = db_connected(), up = pool_up();
	bool	 ok = dbs > 0 && up > 0;

	reply_json(req, ok ? 200 : 503, json_pack("{s:s, s:s, s:i, s:i}",
	    "status", ok ? "ready" : "not_ready",
	    "database", dbs > 0 ? "ok" : "unavailable",
	    "workers_up", up, "workers", sv.conf->workers_count));
}

/* ---- routing ----------------------------------------------------------- */

/* Split "/a/b/c" into at most max segments (decoded); returns the count,
 * or -1 when there are more. */
static int
split_path(const char *path, char seg[][128], int max)
{
	const char	*p = path, *q;
	char		*dec;
	int		 n = 0;

	while (*p == '/')
		p++;
	while (*p != '\0') {
		if (n == max)
			return -1;
		q = strchr(p, '/');
		if (q == NULL)
			q = p + strlen(p);
		if ((size_t)(q - p) >= 128)
			return -1;
		memcpy(seg[n], p, (size_t)(q - p));
		seg[n][q - p] = '\0';
		dec = evhttp_uridecode(seg[n], 0, NULL);
		snprintf(seg[n], 128, "%s", dec ? dec : "");
		free(dec);
		n++;
		p = q;
		while (*p == '/')
			p++;
	}
	return n;
}

static void
api_route(struct evhttp_request *req, void *arg)
{
	enum evhttp_cmd_type	 m = evhttp_request_get_command(req);
	const char		*path;
	char			 seg[6][128];
	int			 n;

	path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	if (path == NULL || (n = split_path(path, seg, 6)) == -1)
		goto notfound;
	log_debug("api request method=%d path=%s", (int)m, path);

	if (n == 2 && strcmp(seg[0], "health") == 0) {
		if (m != EVHTTP_REQ_GET)
			goto method;
		if (strcmp(seg[1], "live") == 0) {
			reply_json(req, 200, json_pack("{s:s}", "status",
			    "ok"));
			return;
		}
		if (strcmp(seg[1], "ready") == 0) {
			api_ready(req);
			return;
		}
		goto notfound;
	}
	if (n < 2 || strcmp(seg[0], "v1") != 0)
		goto notfound;

	if (strcmp(seg[1], "tasks") == 0) {
		if (n == 2 && m == EVHTTP_REQ_POST) {
			api_create_task(req);
			return;
		}
		if (n == 2 && m == EVHTTP_REQ_GET) {
			api_list_tasks(req);
			return;
		}
		if (n == 3 && m == EVHTTP_REQ_GET) {
			api_get_task(req, seg[2]);
			return;
		}
		if (n <= 3)
			goto method;
		goto notfound;
	}
	if (strcmp(seg[1], "templates") == 0) {
		if (m != EVHTTP_REQ_GET)
			goto method;
		if (n == 2) {
			api_list_templates(req);
			return;
		}
		if (n == 4) {
			api_get_template(req, seg[2], seg[3]);
			return;
		}
		goto notfound;
	}
	if (strcmp(seg[1], "workers") == 0 && n == 2) {
		if (m != EVHTTP_REQ_GET)
			goto method;
		reply_json(req, 200, pool_json());
		return;
	}
notfound:
	reply_error(req, 404, "not_found", "no such resource");
	return;
method:
	reply_error(req, 405, "method_not_allowed", "method not allowed "
	    "here");
}

/* ---- listening --------------------------------------------------------- */

static int
bind_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct evconnlistener	*l;
	evutil_socket_t		 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "unix socket path too long: %s", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fd, 128) == -1) {
		snprintf(err, errlen, "listen on unix:%s: %s", path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	l = evconnlistener_new(sv.base, NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (l == NULL || (bound = evhttp_bind_listener(http, l)) == NULL) {
		snprintf(err, errlen, "listen on unix:%s failed", path);
		return -1;
	}
	return 0;
}

static int
bind_inet(const char *listen, char *err, size_t errlen)
{
	char		 host[256];
	const char	*colon = strrchr(listen, ':');
	long		 port;
	char		*end;

	if (colon == NULL || (size_t)(colon - listen) >= sizeof(host)) {
		snprintf(err, errlen, "http.listen must be host:port or "
		    "unix:PATH, not \"%s\"", listen);
		return -1;
	}
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	/* [::1]:8080 */
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 0 || port > 65535) {
		snprintf(err, errlen, "bad port in http.listen \"%s\"", listen);
		return -1;
	}
	if ((bound = evhttp_bind_socket_with_handle(http, host,
	    (ev_uint16_t)port)) == NULL) {
		snprintf(err, errlen, "cannot listen on %s: %s", listen,
		    strerror(errno));
		return -1;
	}
	return 0;
}

int
api_init(struct event_base *base, char *err, size_t errlen)
{
	const char	*listen = sv.conf->http_listen;
	int		 r;

	http = evhttp_new(base);
	evhttp_set_max_body_size(http, sv.conf->http_max_body * 2 + 65536);
	evhttp_set_max_headers_size(http, sv.conf->http_max_headers);
	evhttp_set_timeout(http, (int)((sv.conf->http_timeout_ms + 999) /
	    1000));
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_PUT |
	    EVHTTP_REQ_HEAD);
	evhttp_set_default_content_type(http, "application/json");
	evhttp_set_gencb(http, api_route, NULL);
	if (strncmp(listen, "unix:", 5) == 0)
		r = bind_unix(listen + 5, err, errlen);
	else
		r = bind_inet(listen, err, errlen);
	if (r == -1)
		return -1;
	log_info("listening http=%s", listen);
	return 0;
}

void
api_stop_listening(void)
{
	if (bound != NULL)
		evhttp_del_accept_socket(http, bound);
	bound = NULL;
}

void
api_free(void)
{
	api_stop_listening();
	if (http != NULL)
		evhttp_free(http);
	http = NULL;
}
