/*
 * reply.c - JSON answers and request-body parsing shared by the API files.
 *
 * Every error is {"error": {"code", "message"}} with a 4xx/5xx status, so a
 * client (and tasker-ctl) handles failures one way.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "api.h"
#include "reply.h"
#include "supervisor.h"
#include "jsontext.h"
#include "log.h"
#include "utf8.h"
#include "xmalloc.h"

/*
 * Send buf as the answer.  To a HEAD: the length of the body a GET gets,
 * and no body.  libevent 2.1 writes the body anyway, without a length,
 * and a client on a kept-alive connection reads it as the start of its
 * next answer.  To a CONNECT (answered 501) it gives no length either.
 */
void
reply_send(struct evhttp_request *req, int status, struct evbuffer *buf)
{
	enum evhttp_cmd_type	m = evhttp_request_get_command(req);
	char			len[24];

	if (m == EVHTTP_REQ_HEAD || m == EVHTTP_REQ_CONNECT) {
		snprintf(len, sizeof(len), "%zu", evbuffer_get_length(buf));
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Length", len);
	}
	if (m == EVHTTP_REQ_HEAD)
		evbuffer_drain(buf, evbuffer_get_length(buf));
	evhttp_send_reply(req, status, NULL, buf);
}

void
reply_raw(struct evhttp_request *req, int status, const char *json,
    size_t len)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct evbuffer		*buf = evbuffer_new();
	char			*fixed;

	/* Text from the database may hold a real of 2^63 or more as
	 * PostgreSQL prints it, an integer (10000000000000000000) that
	 * strict clients refuse: it is written as the real it is. */
	if ((fixed = jsontext_big_ints_as_reals(json, len)) != NULL) {
		json = fixed;
		len = strlen(fixed);
	}
	api_answered(req, status);
	evhttp_add_header(h, "Content-Type", "application/json");
	evbuffer_add(buf, json, len);
	evbuffer_add(buf, "\n", 1);
	reply_send(req, status, buf);
	evbuffer_free(buf);
	free(fixed);
}

/* Takes body; NULL (a json_pack that failed) answers a plain 500, so a
 * request is answered whatever went wrong in building its answer. */
void
reply_json(struct evhttp_request *req, int status, json_t *body)
{
	static const char	 failed[] = "{\"error\":{\"code\":\"internal\","
	    "\"message\":\"the answer could not be built\"}}";
	char			*s;

	if (body == NULL || (s = jsontext(body, 0)) == NULL) {
		log_warnx("api answer could not be built status=%d", status);
		reply_raw(req, 500, failed, sizeof(failed) - 1);
		json_decref(body);
		return;
	}
	reply_raw(req, status, s, strlen(s));
	free(s);
	json_decref(body);
}

void
reply_error(struct evhttp_request *req, int status, const char *code,
    const char *fmt, ...)
{
	char	 msg[512], *fixed;
	size_t	 len;
	va_list	 ap;

	/* The message may quote the request (a path segment, a field name)
	 * and may be cut inside a character: JSON wants valid UTF-8. */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fixed = utf8_repair(msg, strlen(msg), &len);
	reply_json(req, status, json_pack("{s:{s:s, s:s%}}", "error",
	    "code", code, "message", fixed, len));
	free(fixed);
}

void
reply_route_error(struct evhttp_request *req, int status, const char *code,
    const char *message, json_t *details)
{
	reply_json(req, status, json_pack("{s:b, s:s, s:s, s:o}", "success", 0,
	    "error", message, "code", code,
	    "details", details ? details : json_null()));
}

/* A database job failed: say so honestly and suggest when to come back. */
int
reply_db_failure(struct evhttp_request *req, struct db_job *job,
    const char **code, char *msg, size_t msglen)
{
	const char	*state = db_job_sqlstate(job);

	/* An operator's open transaction on a task's row, not the database
	 * away: said as such, where an operator will look for it. */
	if (state != NULL && strcmp(state, "55P03") == 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Retry-After", "1");
		log_warnx("api request waited in vain for a lock another "
		    "session holds (database.lock_timeout) uri=%s",
		    log_quote(evhttp_request_get_uri(req)));
		*code = "locked";
		snprintf(msg, msglen, "a row this request needs is locked by "
		    "another session's open transaction; try again once it "
		    "ends");
		return 503;
	}
	if (db_unavailable(state)) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Retry-After", "1");
		*code = "database_unavailable";
		snprintf(msg, msglen, "the database is unavailable; try again "
		    "shortly");
		return 503;
	}
	log_warnx("api database error sqlstate=%s error=%s",
	    state ? state : "none", log_quote(db_job_error(job)));
	*code = "internal";
	snprintf(msg, msglen, "database error (%s)", state ? state : "unknown");
	return 500;
}

void
reply_db_error(struct evhttp_request *req, struct db_job *job)
{
	const char	*code;
	char		 msg[128];
	int		 status = reply_db_failure(req, job, &code, msg, sizeof(msg));

	reply_error(req, status, code, "%s", msg);
}

int
parse_id(const char *s, int64_t *id)
{
	size_t	 i, n = strlen(s);

	if (n == 0 || n > 19)
		return -1;
	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return -1;
	errno = 0;
	*id = strtoll(s, NULL, 10);
	return *id > 0 && errno != ERANGE ? 0 : -1;
}

/* The request body as JSON; on failure the reply has been sent. */
json_t *
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
	if (len == 0) {
		reply_error(req, 400, "bad_json", "the request body is empty; "
		    "a JSON object is expected");
		return NULL;
	}
	j = json_loadb((const char *)evbuffer_pullup(in, -1), len,
	    JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL && json_error_code(&jerr) == json_error_numeric_overflow)
		reply_error(req, 400, "invalid_request", "the integer at line "
		    "%d column %d does not fit in 64 bits: send it as a "
		    "string, or as a real (1e19)", jerr.line, jerr.column);
	else if (j == NULL)
		reply_error(req, 400, "bad_json", "malformed JSON at line %d "
		    "column %d: %s", jerr.line, jerr.column, jerr.text);
	return j;
}

int
known_fields(struct evhttp_request *req, json_t *body,
    const char *const *known)
{
	const char	*key;
	json_t		*v;
	int		 i;

	json_object_foreach(body, key, v) {
		for (i = 0; known[i] != NULL; i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (known[i] == NULL) {
			reply_error(req, 400, "invalid_request", "unknown "
			    "field \"%s\"", key);
			return -1;
		}
	}
	return 0;
}

/* An optional string field; -1 (reply sent) when present but not one. */
int
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
