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
#include <strings.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "api.h"
#include "db.h"
#include "duration.h"
#include "template.h"
#include "pool.h"
#include "reply.h"
#include "protocol.h"
#include "sched.h"
#include "services.h"
#include "sha256.h"
#include "metrics.h"
#include "netaddr.h"
#include "node.h"
#include "supervisor.h"
#include "log.h"
#include "utf8.h"
#include "xmalloc.h"

/* The methods libevent 2.1 parses, and what it calls any other method
 * (EVHTTP_REQ_UNKNOWN_, a bit its public header does not name).  Were it
 * another method's in another version, that method would get the 501
 * too, which is what it gets without the bit. */
#define API_KNOWN_METHODS	(EVHTTP_REQ_GET | EVHTTP_REQ_POST | \
	EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_PUT | \
	EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | \
	EVHTTP_REQ_CONNECT)
#define API_REQ_UNKNOWN		(1 << 15)

/* The bytes of a path segment as sent: a name of TMPL_NAME_MAX bytes,
 * each percent-encoded, fits. */
#define API_SEG_MAX	(3 * TMPL_NAME_MAX + 1)

static struct evhttp	*http;
static struct evhttp_bound_socket *bound;	/* the listener */

/* Requests being answered: when each started and its route, for the
 * latency histogram.  Every request is answered (database jobs fail rather
 * than hang), and the answer removes its entry. */
struct pending {
	TAILQ_ENTRY(pending)	 entry;
	struct evhttp_request	*req;
	const char		*route;
	struct timespec		 start;
};
static TAILQ_HEAD(, pending) pendings = TAILQ_HEAD_INITIALIZER(pendings);

static struct pending *
pending_of(struct evhttp_request *req)
{
	struct pending	*p;

	TAILQ_FOREACH(p, &pendings, entry)
		if (p->req == req)
			return p;
	return NULL;
}

void
api_answered(struct evhttp_request *req, int status)
{
	struct pending	*p;
	struct timespec	 now;
	char		 code[8];

	if ((p = pending_of(req)) == NULL)
		return;
	TAILQ_REMOVE(&pendings, p, entry);
	clock_gettime(CLOCK_MONOTONIC, &now);
	snprintf(code, sizeof(code), "%d", status);
	metrics_inc(M_API_REQUESTS, 1, p->route, code, NULL);
	metrics_observe(M_API_DURATION, (double)(now.tv_sec -
	    p->start.tv_sec) + (now.tv_nsec - p->start.tv_nsec) / 1e9,
	    p->route, NULL, NULL);
	free(p);
}

/* The label of a request still being answered, once its handler knows
 * better than the path's shape (route_label). */
static void
api_relabel(struct evhttp_request *req, const char *route)
{
	struct pending	*p;

	if ((p = pending_of(req)) != NULL)
		p->route = route;
}

/* A bounded label for a path: ids and names from the path are not labels.
 * A path that names no resource is "other". */
static const char *
route_label(char seg[][API_SEG_MAX], int n)
{
	if (n == 2 && strcmp(seg[0], "health") == 0)
		return strcmp(seg[1], "live") == 0 ? "/health/live" :
		    strcmp(seg[1], "ready") == 0 ? "/health/ready" : "other";
	if (n == 1 && strcmp(seg[0], "metrics") == 0)
		return "/metrics";
	if (n < 2 || strcmp(seg[0], "v1") != 0)
		return "template_route";
	if (strcmp(seg[1], "tasks") == 0) {
		if (n == 2)
			return "/v1/tasks";
		if (n == 3)
			return "/v1/tasks/{id}";
		if (n == 4 && strcmp(seg[3], "diagram") == 0)
			return "/v1/tasks/{id}/diagram";
		if (n == 4 && strcmp(seg[3], "transitions") == 0)
			return "/v1/tasks/{id}/transitions";
		if (n == 5 && strcmp(seg[3], "steps") == 0)
			return "/v1/tasks/{id}/steps/{step}";
		if (n == 6 && strcmp(seg[3], "steps") == 0 &&
		    strcmp(seg[5], "transitions") == 0)
			return "/v1/tasks/{id}/steps/{step}/transitions";
		return "other";
	}
	if (strcmp(seg[1], "templates") == 0)
		return n == 2 ? "/v1/templates" : n == 4 ?
		    "/v1/templates/{ns}/{name}" : "other";
	if (n == 2 && strcmp(seg[1], "workers") == 0)
		return "/v1/workers";
	if (n == 2 && strcmp(seg[1], "services") == 0)
		return "/v1/services";
	if (n == 2 && strcmp(seg[1], "nodes") == 0)
		return "/v1/nodes";
	return "other";
}

static void
metrics_done(struct db_job *job, void *arg)
{
	struct evhttp_request	*req = arg;
	struct evbuffer		*buf = evbuffer_new();
	PGresult		*res;
	int			 i;

	/* The task gauge is read now, whole; without the database it is
	 * left out rather than stale.  A state no task is in reads 0 (a
	 * series that vanished would blank a dashboard, and an alert on
	 * "== 0" would never fire). */
	metrics_clear(M_TASKS);
	if ((res = db_job_result(job, 0)) != NULL) {
		for (i = 0; api_task_states[i] != NULL; i++)
			metrics_set(M_TASKS, 0, api_task_states[i], NULL,
			    NULL);
		for (i = 0; i < PQntuples(res); i++)
			metrics_set(M_TASKS, strtod(PQgetvalue(res, i, 1),
			    NULL), PQgetvalue(res, i, 0), NULL, NULL);
	}
	metrics_set(M_SCHED_QUEUED, sched_queued(), NULL, NULL, NULL);
	/* (sched_inflight counts the queued ones too.) */
	metrics_set(M_SCHED_INFLIGHT, sched_inflight() - sched_queued(), NULL,
	    NULL, NULL);
	metrics_set(M_SCHED_UNWRITTEN, sched_unwritten(), NULL, NULL, NULL);
	metrics_set(M_WORKERS_UP, pool_up(), NULL, NULL, NULL);
	services_metrics();
	metrics_render(buf);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4");
	api_answered(req, 200);
	reply_send(req, 200, buf);
	evbuffer_free(buf);
}

static void
api_metrics(struct evhttp_request *req)
{
	struct db_job	*job = db_job_new(metrics_done, req);

	db_job_add(job, "SELECT status, count(*) FROM tasks GROUP BY status",
	    0, NULL);
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

/* The nodes sharing the database: who holds claims, whose lease ran out
 * (lost) and who handed it back at a clean stop (stopped: the lease ended
 * with its last heartbeat, which a running node's never does). */
static const char sql_nodes[] =
"SELECT jsonb_build_object('nodes', coalesce(jsonb_agg(jsonb_build_object("
"  'node_id', n.id, 'host', n.host, 'pid', n.pid, 'version', n.version,"
"  'started_at', n.started_at, 'heartbeat_at', n.heartbeat_at,"
"  'lease_expires_at', n.lease_expires_at,"
"  'alive', n.lease_expires_at > now(), 'this_node', n.id = $1,"
"  'state', CASE WHEN n.lease_expires_at > now() THEN 'alive'"
"    WHEN n.lease_expires_at <= n.heartbeat_at THEN 'stopped'"
"    ELSE 'lost' END,"
"  'claimed_steps', (SELECT count(*) FROM steps s"
"    WHERE s.lease_owner = n.id AND s.status IN ('enqueued', 'in_progress')))"
"  ORDER BY n.id), '[]'))::text FROM nodes n";

static void
nodes_done(struct db_job *job, void *arg)
{
	struct evhttp_request	*req = arg;
	PGresult		*res;

	if (db_job_error(job) != NULL) {
		reply_db_error(req, job);
		return;
	}
	res = db_job_result(job, 0);
	reply_raw(req, 200, PQgetvalue(res, 0, 0),
	    (size_t)PQgetlength(res, 0, 0));
}

static void
api_list_nodes(struct evhttp_request *req)
{
	struct db_job	*job = db_job_new(nodes_done, req);
	const char	*params[1] = { sv.node_id };

	db_job_add(job, sql_nodes, 1, params);
	db_submit(job);
}

static void
api_ready(struct evhttp_request *req)
{
	int	 dbs = db_connected(), up = pool_up();
	bool	 lease = node_lease_ok();
	bool	 ok = dbs > 0 && up > 0 && lease;

	/* The lease too: until the first renewal this node is not in
	 * /v1/nodes and claims nothing, and one whose lease lapsed claims
	 * nothing until it is back. */
	reply_json(req, ok ? 200 : 503, json_pack("{s:s, s:s, s:s, s:i, s:i}",
	    "status", ok ? "ready" : "not_ready",
	    "database", dbs > 0 ? "ok" : "unavailable",
	    "lease", lease ? "held" : "not_held",
	    "workers_up", up, "workers", sv.conf->workers_count));
}

/* ---- routing ----------------------------------------------------------- */

/* Split "/a/b/c" into at most max segments (decoded); returns the count,
 * or -1 when there are more. */
static int
split_path(const char *path, char seg[][API_SEG_MAX], int max)
{
	const char	*p = path, *q;
	char		*dec;
	size_t		 len;
	int		 n = 0;

	while (*p == '/')
		p++;
	while (*p != '\0') {
		if (n == max)
			return -1;
		q = strchr(p, '/');
		if (q == NULL)
			q = p + strlen(p);
		if ((size_t)(q - p) >= API_SEG_MAX)
			return -1;
		memcpy(seg[n], p, (size_t)(q - p));
		seg[n][q - p] = '\0';
		dec = evhttp_uridecode(seg[n], 0, &len);
		/* A %00 would cut the segment short ("a%00b" is no step
		 * "a"): such a segment becomes a byte url_utf8() refuses. */
		snprintf(seg[n], API_SEG_MAX, "%s", dec != NULL &&
		    strlen(dec) == len ? dec : "\x80");
		free(dec);
		n++;
		p = q;
		while (*p == '/')
			p++;
	}
	return n;
}

/* Whether the decoded path segments and query are UTF-8: they end up in
 * error messages, JSON answers and text parameters, which take nothing
 * else. */
static bool
url_utf8(struct evhttp_request *req, char seg[][API_SEG_MAX], int n)
{
	const char	*query;
	char		*dec;
	size_t		 len;
	bool		 ok = true;
	int		 i;

	for (i = 0; i < n; i++)
		if (!utf8_valid(seg[i], strlen(seg[i])))
			return false;
	query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	if (query != NULL) {
		dec = evhttp_uridecode(query, 1, &len);
		ok = dec != NULL && strlen(dec) == len &&
		    utf8_valid(dec, len);
		free(dec);
	}
	return ok;
}

/* The name of the token that authorised the request being routed, for
 * audit metadata; NULL when the API is open.  Handlers read it before they
 * return to the loop, so one variable serves. */
static const char *api_actor;

const char *
api_current_actor(void)
{
	return api_actor;
}

/*
 * Bearer tokens: the configured SHA-256 of each token is compared with the
 * presented token's hash, in constant time and against every token, so
 * neither timing nor early exits tell which bytes or which token matched.
 * Reads need `read`, creating and cancelling `write`, an operator's step
 * actions `admin`; admin implies write, write implies read.  With no
 * tokens configured the API is open.  Returns false when it has answered.
 */
static bool
api_authorize(struct evhttp_request *req, enum evhttp_cmd_type m,
    char seg[][API_SEG_MAX], int n)
{
	const char		*h, *tok;
	unsigned char		 d[SHA256_LEN];
	const struct auth_token	*match = NULL;
	unsigned		 need, have;
	size_t			 i;

	api_actor = NULL;
	if (sv.conf->ntokens == 0)
		return true;
	h = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	tok = h != NULL && strncasecmp(h, "Bearer ", 7) == 0 ? h + 7 : NULL;
	if (tok != NULL) {
		sha256(tok, strlen(tok), d);
		for (i = 0; i < sv.conf->ntokens; i++)
			if (sha256_equal(d, sv.conf->tokens[i].sha256) &&
			    match == NULL)
				match = &sv.conf->tokens[i];
	}
	if (match == NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", "Bearer realm=\"taskerd\"");
		reply_error(req, 401, "unauthorized", tok == NULL ?
		    "a bearer token is required" : "unknown bearer token");
		return false;
	}
	if (m == EVHTTP_REQ_GET)		/* HEAD is routed as GET */
		need = SCOPE_READ;
	else if (m == EVHTTP_REQ_PATCH && n == 5 && strcmp(seg[0], "v1") == 0)
		need = SCOPE_ADMIN;
	else
		need = SCOPE_WRITE;
	have = match->scopes;
	if (have & SCOPE_ADMIN)
		have |= SCOPE_WRITE;
	if (have & SCOPE_WRITE)
		have |= SCOPE_READ;
	if ((have & need) == 0) {
		reply_error(req, 403, "forbidden", "token \"%s\" lacks the "
		    "\"%s\" scope", match->name, need == SCOPE_READ ? "read" :
		    need == SCOPE_WRITE ? "write" : "admin");
		return false;
	}
	api_actor = match->name;
	return true;
}

/* Paths outside /v1 and /health belong to templates' routes, which are
 * matched on the decoded path ("/r/status/%39" is "/r/status/9") without
 * empty segments, as template.c writes route paths.  A segment that
 * decodes to hold a '/' would match another shape of path: it matches
 * none. */
static void
api_template_route(struct evhttp_request *req, enum evhttp_cmd_type m,
    char seg[][API_SEG_MAX], int n)
{
	const struct tmpl	*t;
	const char		*id;
	char			 path[TMPL_PATH_SEGS * API_SEG_MAX + 1];
	size_t			 len = 0;
	bool			 get, post;
	int			 i;

	path[0] = '/';
	path[1] = '\0';
	for (i = 0; i < n; i++) {
		if (strchr(seg[i], '/') != NULL) {
			api_relabel(req, "other");
			reply_error(req, 404, "not_found", "no such resource");
			return;
		}
		len += (size_t)snprintf(path + len, sizeof(path) - len, "/%s",
		    seg[i]);
	}
	if (m == EVHTTP_REQ_POST && (t = tmpl_registry_route(sv.templates,
	    ROUTE_CREATE, path, NULL)) != NULL) {
		api_route_create(req, t);
		return;
	}
	if (m == EVHTTP_REQ_GET && (t = tmpl_registry_route(sv.templates,
	    ROUTE_STATUS, path, &id)) != NULL) {
		api_route_status(req, t, id);
		return;
	}
	if (m == EVHTTP_REQ_GET && (t = tmpl_registry_route(sv.templates,
	    ROUTE_RESULTS, path, &id)) != NULL) {
		api_route_results(req, t, id);
		return;
	}
	/* (A create route takes POST, the others GET: one path may be
	 * both.) */
	get = tmpl_registry_route(sv.templates, ROUTE_STATUS, path, &id) ||
	    tmpl_registry_route(sv.templates, ROUTE_RESULTS, path, &id);
	post = tmpl_registry_route(sv.templates, ROUTE_CREATE, path, NULL);
	if (!get && !post) {
		api_relabel(req, "other");	/* (no template's route) */
		reply_error(req, 404, "not_found", "no such resource");
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
	    get && post ? "GET, HEAD, POST" : get ? "GET, HEAD" : "POST");
	reply_error(req, 405, "method_not_allowed", "method not allowed here");
}

static void
api_route(struct evhttp_request *req, void *arg)
{
	enum evhttp_cmd_type	 m = evhttp_request_get_command(req);
	const char		*path;
	const char		*allow = "GET, HEAD";	/* for a 405 */
	char			 seg[TMPL_PATH_SEGS][API_SEG_MAX];
	struct pending		*pend;
	int			 n;

	/* Counted from here, whatever the answer (a label once the path is
	 * known). */
	pend = xcalloc(1, sizeof(*pend));
	pend->req = req;
	pend->route = "other";
	clock_gettime(CLOCK_MONOTONIC, &pend->start);
	TAILQ_INSERT_TAIL(&pendings, pend, entry);
	if (m == EVHTTP_REQ_CONNECT) {
		/* (libevent keeps a CONNECT's connection open whatever the
		 * headers say; reply_send gives the answer its length.) */
		reply_error(req, 501, "not_implemented", "CONNECT is not "
		    "supported: this is no proxy");
		return;
	}
	if ((m & API_KNOWN_METHODS) == 0) {
		/* A body it may have sent was not read: it would be taken
		 * for the next request. */
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Connection", "close");
		reply_error(req, 501, "not_implemented", "method not "
		    "recognized (methods are case-sensitive)");
		return;
	}
	/* libevent reads no body after a HEAD or a TRACE: one sent would be
	 * taken for the next request on the connection. */
	if ((m == EVHTTP_REQ_HEAD || m == EVHTTP_REQ_TRACE) &&
	    (evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Content-Length") != NULL ||
	    evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Transfer-Encoding") != NULL))
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Connection", "close");
	/* HEAD is GET without the body (reply_send leaves it out). */
	if (m == EVHTTP_REQ_HEAD)
		m = EVHTTP_REQ_GET;
	path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	if (path == NULL || (n = split_path(path, seg, TMPL_PATH_SEGS)) == -1)
		goto notfound;
	log_debug("api request method=%d path=%s", (int)m,
	    log_quote(path));
	pend->route = route_label(seg, n);

	if (!url_utf8(req, seg, n)) {
		reply_error(req, 400, "invalid_request", "the URL's path or "
		    "query is not valid UTF-8 once decoded, or holds %%00");
		return;
	}
	if (!(n == 2 && strcmp(seg[0], "health") == 0) && !api_authorize(req,
	    m, seg, n))
		return;

	if (n == 1 && strcmp(seg[0], "metrics") == 0) {
		if (m != EVHTTP_REQ_GET)
			goto method;
		api_metrics(req);
		return;
	}

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
	if (n < 1 || strcmp(seg[0], "v1") != 0) {
		api_template_route(req, m, seg, n);
		return;
	}
	if (n < 2)
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
		if (n == 3 && m == EVHTTP_REQ_DELETE) {
			api_cancel_task(req, seg[2]);
			return;
		}
		if (n <= 3) {
			allow = n == 2 ? "GET, HEAD, POST" :
			    "GET, HEAD, DELETE";
			goto method;
		}
		if (n == 4 && strcmp(seg[3], "transitions") == 0) {
			if (m != EVHTTP_REQ_GET)
				goto method;
			api_task_transitions(req, seg[2]);
			return;
		}
		if (n == 4 && strcmp(seg[3], "diagram") == 0) {
			if (m != EVHTTP_REQ_GET)
				goto method;
			api_task_diagram(req, seg[2]);
			return;
		}
		if (n == 5 && strcmp(seg[3], "steps") == 0) {
			if (m == EVHTTP_REQ_GET)
				api_get_step(req, seg[2], seg[4]);
			else if (m == EVHTTP_REQ_PATCH)
				api_step_action(req, seg[2], seg[4]);
			else {
				allow = "GET, HEAD, PATCH";
				goto method;
			}
			return;
		}
		if (n == 6 && strcmp(seg[3], "steps") == 0 &&
		    strcmp(seg[5], "transitions") == 0) {
			if (m != EVHTTP_REQ_GET)
				goto method;
			api_step_transitions(req, seg[2], seg[4]);
			return;
		}
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
	if (strcmp(seg[1], "services") == 0 && n == 2) {
		if (m != EVHTTP_REQ_GET)
			goto method;
		reply_json(req, 200, services_json());
		return;
	}
	if (strcmp(seg[1], "workers") == 0 && n == 2) {
		if (m != EVHTTP_REQ_GET)
			goto method;
		reply_json(req, 200, pool_json());
		return;
	}
	if (strcmp(seg[1], "nodes") == 0 && n == 2) {
		if (m != EVHTTP_REQ_GET)
			goto method;
		api_list_nodes(req);
		return;
	}
notfound:
	reply_error(req, 404, "not_found", "no such resource");
	return;
method:
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
	    allow);
	reply_error(req, 405, "method_not_allowed", "method not allowed "
	    "here");
}

/* ---- listening --------------------------------------------------------- */

/*
 * An accept() that fails for want of descriptors (EMFILE at the process's
 * limit, ENFILE at the system's) or memory leaves the connection in the
 * backlog, and libevent calls again at once: a loop at full CPU, printing
 * a warning each time (over 400,000 a second, measured).  Accepts pause
 * instead, ACCEPT_PAUSE_MS at a time, while the connections wait in the
 * backlog; the warning is said at most once per ACCEPT_WARN_S.
 */
#define ACCEPT_PAUSE_MS	100
#define ACCEPT_WARN_S	10

static struct event	*accept_resume;
static struct timespec	 accept_warned;
static unsigned		 accept_failures;	/* since the last warning */

static void
accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (bound != NULL)
		evconnlistener_enable(evhttp_bound_socket_get_listener(bound));
}

static void
accept_failed(struct evconnlistener *l, void *arg)
{
	const struct timeval	 pause = { 0, ACCEPT_PAUSE_MS * 1000 };
	int			 e = EVUTIL_SOCKET_ERROR();

	(void)arg;
	evconnlistener_disable(l);
	evtimer_add(accept_resume, &pause);
	accept_failures++;
	if (accept_warned.tv_sec != 0 &&
	    duration_ms_since(&accept_warned) < ACCEPT_WARN_S * 1000)
		return;
	log_warnx("cannot accept connections, pausing accepts %d ms at a "
	    "time error=%s failures=%u", ACCEPT_PAUSE_MS,
	    log_quote(strerror(e)), accept_failures);
	clock_gettime(CLOCK_MONOTONIC, &accept_warned);
	accept_failures = 0;
}

static int
bind_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct evconnlistener	*l;
	evutil_socket_t		 fd;
	mode_t			 mask;
	bool			 bound_ok;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "unix socket path too long: %s", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	/* A socket file left by an earlier run is replaced; one that a
	 * process still answers on is not taken from it. */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) != -1) {
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(fd);
			snprintf(err, errlen, "listen on unix:%s: in use by "
			    "another process", path);
			return -1;
		}
		close(fd);
	}
	unlink(path);
	/* Mode 0660: connecting takes write permission, and the group is how
	 * an operator is let in (the unit's UMask=0027 would leave the group
	 * none, a umask of 022 likewise).  Set by the umask at bind, not by a
	 * chmod of the path after it, which could follow a swapped link. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	mask = umask(0117);
	bound_ok = fd != -1 &&
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	umask(mask);
	if (!bound_ok || listen(fd, 128) == -1) {
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

/* Whether the listener takes connections from this host only. */
static bool
bound_to_loopback(void)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);

	return getsockname(evhttp_bound_socket_get_fd(bound),
	    (struct sockaddr *)&ss, &len) == 0 &&
	    sockaddr_is_loopback((struct sockaddr *)&ss);
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
	/* Every method reaches the router, which answers those a resource
	 * does not take with a JSON 405, and those libevent does not know
	 * with a JSON 501 (libevent's own answers are HTML 501s). */
	evhttp_set_allowed_methods(http, API_KNOWN_METHODS | API_REQ_UNKNOWN);
	evhttp_set_default_content_type(http, "application/json");
	evhttp_set_gencb(http, api_route, NULL);
	if (strncmp(listen, "unix:", 5) == 0)
		r = bind_unix(listen + 5, err, errlen);
	else
		r = bind_inet(listen, err, errlen);
	if (r == -1)
		return -1;
	accept_resume = evtimer_new(base, accept_resume_cb, NULL);
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(bound),
	    accept_failed);
	log_info("listening http=%s", listen);
	/* An API without tokens lets whoever reaches it create, cancel and
	 * complete tasks by hand: on loopback or a socket file that is the
	 * host's users; past them, say so. */
	if (sv.conf->ntokens == 0 && strncmp(listen, "unix:", 5) != 0 &&
	    !bound_to_loopback())
		log_warnx("the API is open to the network: no auth.tokens "
		    "are set and http.listen=%s is not a loopback address",
		    log_quote(listen));
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
	if (accept_resume != NULL)
		event_free(accept_resume);
	accept_resume = NULL;
	if (http != NULL)
		evhttp_free(http);
	http = NULL;
}
