/*
 * handler_http.c - the declarative HTTP call: one libcurl request per step,
 * and at most one more (a lookup) when a rule asks for it.
 *
 * One easy handle lives for the whole worker and is curl_easy_reset() before
 * every request: reset clears the options but keeps the connection cache, so
 * a worker calling the same service step after step reuses its connection.
 *
 * Everything that varies per attempt comes from the RUN_STEP: the config is
 * rendered against the step input ({"context", "steps", "attempt",
 * "service"}) and env.NAME.  Nothing here decides about retries beyond
 * classifying the answer; the supervisor owns the retry policy.  What a
 * status means, and how a response becomes results, is http_rules.c's:
 * this file sends requests and reports.
 *
 * The whole config is checked and every template in it rendered before the
 * first request leaves, so a template error fails the first attempt before
 * any side effect instead of after a POST that already created something.
 *
 * Text that leaves the worker (results, error messages) may come from any
 * service, so it is cut to size and made valid UTF-8 without NUL bytes:
 * msgpack str and PostgreSQL text both depend on it.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "handler.h"
#include "http_rules.h"
#include "httpclass.h"
#include "jsontext.h"
#include "log.h"
#include "render.h"
#include "xmalloc.h"

/* A URL as it may be shown: without user and password, and without its
 * query and fragment, which may carry a context value or an {{env.*}}
 * secret ("https://h/p?..."). */
static void
url_public(const char *u, char *buf, size_t len)
{
	const char	*auth, *at, *end;
	size_t		 n;

	auth = (auth = strstr(u, "://")) != NULL ? auth + 3 : u;
	n = strcspn(auth, "/?#");
	if ((at = memrchr(auth, '@', n)) != NULL)
		snprintf(buf, len, "%.*s%s", (int)(auth - u), u, at + 1);
	else
		snprintf(buf, len, "%s", u);
	if ((end = strpbrk(buf, "?#")) != NULL)
		snprintf((char *)end, len - (size_t)(end - buf), "%s",
		    "?...");
}

/* A URL for the log, as url_public shows it.  One per log call (a static
 * buffer). */
static const char *
url_logged(const char *u)
{
	static char	buf[1024];

	url_public(u, buf, sizeof(buf));
	return log_quote(buf);
}

#define HTTP_MAX_RESPONSE	(8u * 1024 * 1024)
#define HTTP_MAX_TEXT_RESULT	4096	/* non-JSON body kept as {"body"} */
#define HTTP_MAX_ERR_BODY	512	/* body excerpt in error_message */
#define HTTP_USER_AGENT		"taskerd-worker/0.1"
#define HTTP_DEADLINE_MARGIN_MS	1000	/* see http_req_build */

/* The response as it arrives. */
struct http_resp {
	char	*body;
	size_t	 len;
	size_t	 cap;
	int	 too_large;
	char	 retry_after[64];
};

/* One request, built from the config before anything is sent. */
struct http_req {
	char			*method;	/* upper case */
	char			*url;
	char			*body;		/* NULL: no body */
	struct curl_slist	*headers;
	long			 timeout_ms;	/* 0: none */
};

static int	http_init(void);
static void	http_run(const struct proto_run_step *,
		    struct proto_step_outcome *);

const struct handler handler_http = {
	.name = "http",
	.init = http_init,
	.run = http_run,
};

static CURL	*http_curl;

static int
http_init(void)
{
	CURLcode	rc;

	if ((rc = curl_global_init(CURL_GLOBAL_DEFAULT)) != CURLE_OK) {
		log_warnx("curl_global_init failed error=%s",
		    log_quote(curl_easy_strerror(rc)));
		return -1;
	}
	if ((http_curl = curl_easy_init()) == NULL) {
		log_warnx("curl_easy_init failed");
		return -1;
	}
	return 0;
}

/*
 * Append up to max bytes of s to out as valid UTF-8: invalid sequences and
 * control characters (NUL included) become '?' or a space, and a character
 * is never cut in half.  out must have room for max + 1 bytes.
 */
static size_t
http_clean_text(const char *s, size_t len, size_t max, char *out)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i = 0, o = 0, n, k;
	unsigned int		 cp;

	while (i < len && o < max) {
		if (u[i] < 0x80) {
			if (u[i] == '\n' || u[i] == '\t' || u[i] == '\r')
				out[o++] = u[i] == '\r' ? ' ' : (char)u[i];
			else if (u[i] < 0x20 || u[i] == 0x7f)
				out[o++] = '?';
			else
				out[o++] = (char)u[i];
			i++;
			continue;
		}
		if (u[i] >= 0xc2 && u[i] <= 0xdf) {
			n = 2;
			cp = u[i] & 0x1f;
		} else if (u[i] >= 0xe0 && u[i] <= 0xef) {
			n = 3;
			cp = u[i] & 0x0f;
		} else if (u[i] >= 0xf0 && u[i] <= 0xf4) {
			n = 4;
			cp = u[i] & 0x07;
		} else
			n = 0;
		if (n != 0 && i + n <= len) {
			for (k = 1; k < n && (u[i + k] & 0xc0) == 0x80; k++)
				cp = (cp << 6) | (u[i + k] & 0x3f);
			/* Reject overlongs, surrogates and > U+10FFFF. */
			if (k != n || (n == 3 && cp < 0x800) ||
			    (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
			    (cp >= 0xd800 && cp <= 0xdfff))
				n = 0;
		} else
			n = 0;
		if (n == 0) {
			out[o++] = '?';
			i++;
			continue;
		}
		if (o + n > max)
			break;
		memcpy(out + o, s + i, n);
		o += n;
		i += n;
	}
	out[o] = '\0';
	return o;
}

static size_t
http_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_resp	*r = arg;
	size_t			 n = size * nmemb, need;

	if (n > HTTP_MAX_RESPONSE - r->len) {
		r->too_large = 1;
		return 0;	/* makes curl stop with CURLE_WRITE_ERROR */
	}
	need = r->len + n + 1;
	if (need > r->cap) {
		if (r->cap == 0)
			r->cap = 16384;
		while (r->cap < need)
			r->cap *= 2;
		r->body = xreallocarray(r->body, r->cap, 1);
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/* Keep the Retry-After of the final response (not of a 100 Continue). */
static size_t
http_header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_resp	*r = arg;
	size_t			 n = size * nmemb, name = strlen("Retry-After:");
	size_t			 vlen;
	const char		*v;

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
		r->retry_after[0] = '\0';
	else if (n > name && strncasecmp(data, "Retry-After:", name) == 0) {
		v = data + name;
		vlen = n - name;
		while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
			vlen--;
		if (vlen >= sizeof(r->retry_after))
			vlen = sizeof(r->retry_after) - 1;
		memcpy(r->retry_after, v, vlen);
		r->retry_after[vlen] = '\0';
	}
	return n;
}

static void
http_header_line(struct http_req *req, char *line)
{
	struct curl_slist	*l;

	if ((l = curl_slist_append(req->headers, line)) == NULL)
		fatalx("curl_slist_append: out of memory");
	req->headers = l;
	free(line);
}

static void
http_header_add(struct http_req *req, const char *name, const char *value)
{
	char	*line;

	/* "Name;" is how curl is told to send a header with no value;
	 * "Name:" with nothing but blanks after it removes the header (and
	 * curl's own, for Accept, Host or User-Agent). */
	if (value[strspn(value, " \t")] == '\0')
		xasprintf(&line, "%s;", name);
	else
		xasprintf(&line, "%s: %s", name, value);
	http_header_line(req, line);
}

/* "Name:" with nothing after the colon: curl sends none of its own. */
static void
http_header_drop(struct http_req *req, const char *name)
{
	char	*line;

	xasprintf(&line, "%s:", name);
	http_header_line(req, line);
}

static void
http_req_free(struct http_req *req)
{
	free(req->method);
	free(req->url);
	free(req->body);
	curl_slist_free_all(req->headers);
}

/* Whether the config's headers give this one (case-insensitively). */
static int
http_cfg_has_header(const json_t *hdrs, const char *name)
{
	const char	*key;
	json_t		*v;

	if (!json_is_object(hdrs))
		return 0;
	json_object_foreach((json_t *)hdrs, key, v) {
		if (strcasecmp(key, name) == 0)
			return 1;
	}
	return 0;
}

/* What a rendered header value may not hold, or NULL: a line break (it
 * would start another header) or another control character but tab. */
static const char *
header_value_bad(const char *val)
{
	const unsigned char	*p;

	if (strpbrk(val, "\r\n") != NULL)
		return "a line break";
	for (p = (const unsigned char *)val; *p != '\0'; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return "a control character";
	return NULL;
}

/*
 * Build one request from spec (the handler_config itself, or one of its
 * lookups; where is "" or "on_status.409.lookup." for messages).  The config
 * passed http_rules_check().  Returns 0, or -1 with the outcome already set
 * (bad config or render error; both permanent: the same input would fail
 * the same way on every attempt).  req is freeable either way.
 */
static int
http_req_build(const struct proto_run_step *run,
    const struct http_service *svc, const json_t *spec, const char *where,
    struct http_req *req, struct proto_step_outcome *o)
{
	const json_t	*v, *hdrs;
	const char	*key, *bad;
	json_t		*item, *body, *rendered;
	char		 err[512], *val, *url, *m;
	int64_t		 timeout;

	memset(req, 0, sizeof(*req));
	if ((v = json_object_get(spec, "method")) != NULL) {
		/* Templates ported from Tasker write "post" as often as
		 * "POST"; the standard methods are all upper case. */
		req->method = xstrdup(json_string_value(v));
		for (m = req->method; *m != '\0'; m++)
			*m = (char)toupper((unsigned char)*m);
	} else
		req->method = xstrdup("GET");

	if ((url = render_string(json_string_value(json_object_get(spec,
	    "url")), run->input, RENDER_URL, err, sizeof(err))) == NULL) {
		outcome_fail(o, OUTCOME_PERMANENT, "render_error", "%surl: %s",
		    where, err);
		return -1;
	}
	req->url = http_rules_url(url, svc, err, sizeof(err));
	free(url);
	if (req->url == NULL) {
		outcome_fail(o, OUTCOME_PERMANENT, "bad_config", "%surl: %s",
		    where, err);
		return -1;
	}

	/* The step's timeout is the supervisor's to enforce (it stops the
	 * worker at the deadline): curl waits a little longer so the two never
	 * race.  An explicit config timeout serves its lookups too, and the
	 * service's wins when shorter; those are the request's own limits. */
	timeout = run->timeout_ms > 0 ? (int64_t)run->timeout_ms +
	    HTTP_DEADLINE_MARGIN_MS : 0;
	if ((v = json_object_get(run->config, "timeout")) != NULL)
		timeout = json_integer_value(v);
	req->timeout_ms = (long)http_rules_timeout_ms(timeout, svc);

	/* A JSON null body is the same as none: nothing to send. */
	if ((v = json_object_get(spec, "body")) != NULL && !json_is_null(v)) {
		if ((body = render_json(v, run->input, err,
		    sizeof(err))) == NULL) {
			outcome_fail(o, OUTCOME_PERMANENT, "render_error",
			    "%sbody: %s", where, err);
			return -1;
		}
		/* Keys sorted: a retry sends the same bytes under the same
		 * Idempotency-Key, though a parent's results come from the
		 * worker the first time and from the database (jsonb's key
		 * order) after.  A body that is a missing optional value
		 * ("{{context.payload?}}") is none, as a null one is. */
		if (!json_is_null(body))
			req->body = jsontext(body, JSONTEXT_SORTED);
		json_decref(body);
	}

	/* As a body is: a header that is exactly a missing optional value
	 * ("{{context.etag?}}") is left out, not sent empty. */
	rendered = NULL;
	if ((hdrs = json_object_get(spec, "headers")) != NULL &&
	    (rendered = render_json(hdrs, run->input, err,
	    sizeof(err))) == NULL) {
		outcome_fail(o, OUTCOME_PERMANENT, "render_error",
		    "%sheaders: %s", where, err);
		return -1;
	}
	/*
	 * Our defaults first, unless the rendered headers give them; the two
	 * keys that make at-least-once safe and traceable are always ours.
	 */
	if (!http_cfg_has_header(rendered, "Accept"))
		http_header_add(req, "Accept", "application/json");
	if (!http_cfg_has_header(rendered, "User-Agent"))
		http_header_add(req, "User-Agent", HTTP_USER_AGENT);
	/* Without a body, no Content-Type: not even the form type curl
	 * gives an empty POST. */
	if (!http_cfg_has_header(rendered, "Content-Type")) {
		if (req->body != NULL)
			http_header_add(req, "Content-Type",
			    "application/json");
		else
			http_header_drop(req, "Content-Type");
	}
	/* Nor curl's Expect: 100-continue, which stalls large bodies. */
	http_header_drop(req, "Expect");
	if (strpbrk(run->idempotency_key, "\r\n") != NULL ||
	    strpbrk(run->correlation_id, "\r\n") != NULL) {
		json_decref(rendered);
		outcome_fail(o, OUTCOME_PERMANENT, "bad_request",
		    "idempotency key or correlation id contains a line break");
		return -1;
	}
	http_header_add(req, "Idempotency-Key", run->idempotency_key);
	http_header_add(req, "X-Correlation-ID", run->correlation_id);
	json_object_foreach(rendered, key, item) {
		if (strcasecmp(key, "Idempotency-Key") == 0 ||
		    strcasecmp(key, "X-Correlation-ID") == 0 ||
		    strcasecmp(key, "Expect") == 0)
			continue;
		val = json_is_string(item) ? xstrdup(json_string_value(item)) :
		    jsontext(item, 0);
		/* A context value must not be able to add headers, nor put
		 * on the wire what RFC 9110 forbids in a field value. */
		if ((bad = header_value_bad(val)) != NULL) {
			/* (key is rendered's: said before it goes.) */
			outcome_fail(o, OUTCOME_PERMANENT, "render_error",
			    "%sheader %s: rendered value contains %s", where,
			    key, bad);
			free(val);
			json_decref(rendered);
			return -1;
		}
		http_header_add(req, key, val);
		free(val);
	}
	json_decref(rendered);
	return 0;
}

/*
 * Build every lookup request once and drop it, so a template error in a
 * lookup shows on the first attempt, before the first request is sent.
 */
static int
http_lookups_check(const struct proto_run_step *run,
    const struct http_service *svc, struct proto_step_outcome *o)
{
	struct http_req	 lreq;
	const json_t	*lk;
	const char	*key;
	json_t		*rule;
	char		 where[64];
	int		 r;

	json_object_foreach(json_object_get(run->config, "on_status"), key,
	    rule) {
		if ((lk = json_object_get(rule, "lookup")) == NULL)
			continue;
		snprintf(where, sizeof(where), "on_status.%s.lookup.", key);
		r = http_req_build(run, svc, lk, where, &lreq, o);
		http_req_free(&lreq);
		if (r == -1)
			return -1;
	}
	return 0;
}

/* Configure the reset easy handle for req; resp receives the answer. */
static int
http_setup(struct http_req *req, struct http_resp *resp, char *errbuf)
{
	CURL	*c = http_curl;
	int	 bad = 0;

#define HTTP_SETOPT(opt, val) \
	do { if (curl_easy_setopt(c, opt, val) != CURLE_OK) bad = 1; } while (0)
	curl_easy_reset(c);
	HTTP_SETOPT(CURLOPT_URL, req->url);
	/* The path as rendered: no dot segments squashed out of it. */
	HTTP_SETOPT(CURLOPT_PATH_AS_IS, 1L);
	HTTP_SETOPT(CURLOPT_NOSIGNAL, 1L);
	HTTP_SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	HTTP_SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
	HTTP_SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	HTTP_SETOPT(CURLOPT_TIMEOUT_MS, req->timeout_ms);
	HTTP_SETOPT(CURLOPT_HTTPHEADER, req->headers);
	/* Let servers compress; the size cap applies to the decoded bytes. */
	HTTP_SETOPT(CURLOPT_ACCEPT_ENCODING, "");
	HTTP_SETOPT(CURLOPT_WRITEFUNCTION, http_write_cb);
	HTTP_SETOPT(CURLOPT_WRITEDATA, resp);
	HTTP_SETOPT(CURLOPT_HEADERFUNCTION, http_header_cb);
	HTTP_SETOPT(CURLOPT_HEADERDATA, resp);
	HTTP_SETOPT(CURLOPT_ERRORBUFFER, errbuf);

	if (req->body != NULL) {
		HTTP_SETOPT(CURLOPT_POSTFIELDS, req->body);
		HTTP_SETOPT(CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)strlen(req->body));
		if (strcmp(req->method, "POST") != 0)
			HTTP_SETOPT(CURLOPT_CUSTOMREQUEST, req->method);
	} else if (strcmp(req->method, "GET") == 0)
		HTTP_SETOPT(CURLOPT_HTTPGET, 1L);
	else if (strcmp(req->method, "HEAD") == 0)
		HTTP_SETOPT(CURLOPT_NOBODY, 1L);
	else if (strcmp(req->method, "POST") == 0 ||
	    strcmp(req->method, "PUT") == 0 ||
	    strcmp(req->method, "PATCH") == 0) {
		/* Methods that define a body say Content-Length: 0 without
		 * one (RFC 9110 8.6; some front ends answer 411 otherwise). */
		HTTP_SETOPT(CURLOPT_POSTFIELDS, "");
		HTTP_SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
		if (strcmp(req->method, "POST") != 0)
			HTTP_SETOPT(CURLOPT_CUSTOMREQUEST, req->method);
	} else
		HTTP_SETOPT(CURLOPT_CUSTOMREQUEST, req->method);
#undef HTTP_SETOPT
	return bad ? -1 : 0;
}

/* The body as results: JSON as is (an integer past 64 bits as a string of
 * its digits), empty as {}, text as {"body": ...}.
 * A UTF-8 byte order mark before JSON (some frameworks write one) is no
 * part of it: jansson would take the whole for text. */
static json_t *
http_body_results(const struct http_resp *resp, bool *is_text)
{
	json_t	*j;
	char	*text;
	size_t	 i, n, bom = 0;

	*is_text = false;
	if (resp->len >= 3 && memcmp(resp->body, "\xef\xbb\xbf", 3) == 0)
		bom = 3;
	for (i = bom; i < resp->len; i++) {
		if (!isspace((unsigned char)resp->body[i]))
			break;
	}
	if (i == resp->len)
		return json_object();
	if ((j = jsontext_load_exact(resp->body + bom, resp->len - bom,
	    JSON_DECODE_ANY, NULL)) != NULL)
		return j;
	*is_text = true;
	text = xmalloc(HTTP_MAX_TEXT_RESULT + 1);
	n = http_clean_text(resp->body, resp->len, HTTP_MAX_TEXT_RESULT, text);
	j = json_pack("{s:s%}", "body", text, n);
	free(text);
	return j;
}

/* A transport failure; pfx says which request ("" or "lookup after ..."). */
static void
http_curl_fail(CURLcode rc, const char *errbuf, const char *pfx,
    struct proto_step_outcome *o)
{
	const char	*why = *errbuf != '\0' ? errbuf : curl_easy_strerror(rc);

	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		outcome_fail(o, OUTCOME_RETRYABLE, "timeout", "%s%s", pfx, why);
		break;
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		outcome_fail(o, OUTCOME_RETRYABLE, "connect_error", "%s%s", pfx,
		    why);
		break;
	case CURLE_URL_MALFORMAT:
		/* The rendered URL itself is wrong: no retry can fix it. */
		outcome_fail(o, OUTCOME_PERMANENT, "bad_url", "%s%s", pfx, why);
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
		/* The scheme was checked before the call: this is the peer
		 * answering something that is not HTTP ("Received HTTP/0.9"),
		 * a port held by the wrong process for a while. */
		outcome_fail(o, OUTCOME_RETRYABLE, "bad_response", "%s%s", pfx,
		    why);
		break;
	default:
		outcome_fail(o, OUTCOME_RETRYABLE, "curl_error", "%s%s", pfx,
		    why);
		free(o->error_code);
		xasprintf(&o->error_code, "curl_%d", (int)rc);
		break;
	}
}

/*
 * Send req and wait for the whole answer.  Returns 0 with *status, or -1
 * with the outcome set (transport failure, oversized answer), or 1 with
 * both: the status came but not all of the body.  For a status that fails
 * the step, the status decides (a 503's Retry-After holds with a body cut
 * short or too large); the caller overrides the outcome then.
 */
static int
http_perform(struct http_req *req, struct http_resp *resp, long *status,
    const char *pfx, struct proto_step_outcome *o)
{
	char		 errbuf[CURL_ERROR_SIZE];
	CURLcode	 rc;

	errbuf[0] = '\0';
	*status = 0;
	if (http_setup(req, resp, errbuf) == -1) {
		outcome_fail(o, OUTCOME_PERMANENT, "curl_setup",
		    "%slibcurl refused an option", pfx);
		return -1;
	}
	rc = curl_easy_perform(http_curl);
	curl_easy_getinfo(http_curl, CURLINFO_RESPONSE_CODE, status);
	/* errbuf dies with this frame: curl must not keep pointing at it. */
	curl_easy_setopt(http_curl, CURLOPT_ERRORBUFFER, NULL);
	if (resp->too_large) {
		o->http_status = (int32_t)*status;
		outcome_fail(o, OUTCOME_PERMANENT, "response_too_large",
		    "%sresponse body exceeds %u bytes", pfx, HTTP_MAX_RESPONSE);
		return *status >= 200 ? 1 : -1;
	}
	if (rc != CURLE_OK) {
		http_curl_fail(rc, errbuf, pfx, o);
		return *status >= 200 ? 1 : -1;
	}
	return 0;
}

/* A status that fails the step: code is "<prefix>_<status>", and the
 * message quotes the start of the body. */
static void
http_fail_status(struct proto_step_outcome *o, enum proto_outcome cls,
    const char *prefix, const char *pfx, long status,
    const struct http_req *req, const struct http_resp *resp)
{
	char	excerpt[HTTP_MAX_ERR_BODY + 1];

	char	*to = NULL, target[512];

	http_clean_text(resp->body != NULL ? resp->body : "", resp->len,
	    HTTP_MAX_ERR_BODY, excerpt);
	/* A redirect says where to (redirects are not followed). */
	if (status >= 300 && status <= 399 && curl_easy_getinfo(http_curl,
	    CURLINFO_REDIRECT_URL, &to) == CURLE_OK && to != NULL) {
		url_public(to, target, sizeof(target));
		outcome_fail(o, cls, "http", "%sHTTP %ld from %s, to %s: %s",
		    pfx, status, req->method, target, excerpt);
	} else
		outcome_fail(o, cls, "http", "%sHTTP %ld from %s: %s", pfx,
		    status, req->method, excerpt);
	free(o->error_code);
	xasprintf(&o->error_code, "%s_%ld", prefix, status);
	o->http_status = (int32_t)status;
	if (cls == OUTCOME_RETRYABLE && (status == 429 || status == 503) &&
	    resp->retry_after[0] != '\0') {
		struct timespec now;

		/* Not time(): it reads a clock that lags up to a tick behind,
		 * so across a second boundary a date came out a second
		 * further away than it is. */
		clock_gettime(CLOCK_REALTIME, &now);
		o->retry_after_ms = httpclass_retry_after_ms(resp->retry_after,
		    now.tv_sec);
	}
}

/* Success: results from doc (consumed) by the rule's map and set; doc
 * is_text when the answer was no JSON. */
static void
http_succeed(const struct proto_run_step *run, const struct http_rule *rule,
    json_t *doc, bool is_text, const char *pfx, struct proto_step_outcome *o)
{
	const char	*code = "extract_error";
	json_t		*results;
	char		 err[512];

	if ((results = http_rules_results(doc, rule->results, rule->set,
	    run->input, &code, err, sizeof(err))) == NULL) {
		/* "response has no 'id'" alone sends one looking for a
		 * misnamed field. */
		outcome_fail(o, OUTCOME_PERMANENT, code, "%s%s%s", pfx, err,
		    is_text ? " (the answer is not JSON: its text is "
		    "{\"body\": ...})" : "");
		return;
	}
	outcome_success(o, results);
}

static int64_t
http_elapsed_ms(const struct timespec *t0)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t0->tv_sec) * 1000 +
	    (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/*
 * The answer was `status` and its rule says: ask again.  The lookup carries
 * the same Idempotency-Key and X-Correlation-ID, and gets what is left of
 * the step's time.  http_status stays the first answer's unless the lookup
 * itself fails with a status, or with none (a 5xx there, or a refused
 * connection, must count against the service).
 */
static void
http_lookup(const struct proto_run_step *run, const struct http_service *svc,
    const struct http_rule *rule, const struct http_req *req, long status,
    const struct timespec *t0, struct proto_step_outcome *o)
{
	struct http_req		 lreq;
	struct http_resp	 lresp;
	json_t			*doc;
	char			 where[64], pfx[64], err[512];
	long			 lstatus;
	int64_t			 left;
	int			 rc;
	bool			 is_text;

	memset(&lresp, 0, sizeof(lresp));
	snprintf(where, sizeof(where), "on_status.%s.lookup.", rule->key);
	snprintf(pfx, sizeof(pfx), "lookup after HTTP %ld: ", status);
	if (http_req_build(run, svc, rule->lookup, where, &lreq, o) == -1)
		goto done;
	if (run->timeout_ms > 0) {
		left = (int64_t)run->timeout_ms - http_elapsed_ms(t0);
		if (left <= 0) {
			outcome_fail(o, OUTCOME_RETRYABLE, "timeout", "%sno "
			    "time left of the step's %u ms", pfx,
			    run->timeout_ms);
			goto done;
		}
		if (left < lreq.timeout_ms)
			lreq.timeout_ms = (long)left;
	}
	log_debug("http lookup step_id=%lld task_id=%lld correlation_id=%s "
	    "status=%ld method=%s url=%s", (long long)run->step_id,
	    (long long)run->task_id, run->correlation_id, status,
	    lreq.method, url_logged(lreq.url));

	if ((rc = http_perform(&lreq, &lresp, &lstatus, pfx, o)) == -1) {
		/* No answer this time: the service counts as down. */
		o->http_status = (int32_t)lstatus;
		goto done;
	}
	if (lstatus < 200 || lstatus > 299) {
		http_fail_status(o, httpclass_status(lstatus, 0), "lookup_http",
		    pfx, lstatus, &lreq, &lresp);
		goto done;
	}
	if (rc == 1) {		/* a 2xx, its body cut short or too large */
		if (!lresp.too_large)
			o->http_status = 0;	/* cut: as no answer */
		goto done;
	}
	doc = http_body_results(&lresp, &is_text);
	switch (http_rules_match(json_object_get(rule->lookup, "match"), doc,
	    run->input, err, sizeof(err))) {
	case 1:
		http_succeed(run, rule, doc, is_text, pfx, o);
		break;
	case 0:
		json_decref(doc);
		outcome_fail(o, OUTCOME_PERMANENT, "conflict_mismatch",
		    "HTTP %ld from %s, and the lookup %s found a different "
		    "record: %s", status, req->method, lreq.method, err);
		break;
	case 2:
		/* The service says it has the record and cannot show it yet
		 * (a search index, a replica behind): asked again later. */
		json_decref(doc);
		outcome_fail(o, OUTCOME_RETRYABLE, "conflict_not_found",
		    "HTTP %ld from %s, and the lookup %s found no record: %s",
		    status, req->method, lreq.method, err);
		break;
	default:
		json_decref(doc);
		outcome_fail(o, OUTCOME_PERMANENT, "render_error",
		    "on_status.%s.lookup.%s", rule->key, err);
		break;
	}
done:
	http_req_free(&lreq);
	free(lresp.body);
}

static const char *
http_action_name(enum http_action a)
{
	switch (a) {
	case HTTP_ACT_SUCCESS:
		return "success";
	case HTTP_ACT_RETRYABLE:
		return "retryable";
	case HTTP_ACT_PERMANENT:
		return "permanent";
	case HTTP_ACT_LOOKUP:
		return "lookup";
	}
	return "?";
}

static void
http_run(const struct proto_run_step *run, struct proto_step_outcome *o)
{
	struct http_service	 svc;
	struct http_req		 req;
	struct http_resp	 resp;
	struct http_rule	 rule;
	struct timespec		 t0;
	json_t			*doc;
	char			 err[512];
	long			 status;
	int			 rc;
	bool			 is_text;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));
	if (http_rules_check(run->config, err, sizeof(err)) == -1 ||
	    http_rules_service(run->input, &svc, err, sizeof(err)) == -1) {
		outcome_fail(o, OUTCOME_PERMANENT, "bad_config", "%s", err);
		goto done;
	}
	if (http_req_build(run, &svc, run->config, "", &req, o) == -1)
		goto done;
	if (http_rules_render_check(run->config, run->input, err,
	    sizeof(err)) == -1) {
		outcome_fail(o, OUTCOME_PERMANENT, "render_error", "%s", err);
		goto done;
	}
	if (http_lookups_check(run, &svc, o) == -1)
		goto done;
	log_debug("http request step_id=%lld task_id=%lld correlation_id=%s "
	    "method=%s url=%s", (long long)run->step_id,
	    (long long)run->task_id, run->correlation_id, req.method,
	    url_logged(req.url));

	if ((rc = http_perform(&req, &resp, &status, "", o)) == -1)
		goto done;
	http_rules_decide(run->config, status, &rule);
	/* The body was needed: the transfer's outcome, without the status,
	 * or the service's breaker would count a 200 cut short as up. */
	if (rc == 1 && (rule.action == HTTP_ACT_SUCCESS ||
	    rule.action == HTTP_ACT_LOOKUP))
		goto done;
	o->http_status = (int32_t)status;
	log_debug("http answer step_id=%lld task_id=%lld correlation_id=%s "
	    "status=%ld rule=%s action=%s", (long long)run->step_id,
	    (long long)run->task_id, run->correlation_id, status,
	    rule.key != NULL ? rule.key : "classes",
	    http_action_name(rule.action));
	switch (rule.action) {
	case HTTP_ACT_SUCCESS:
		doc = http_body_results(&resp, &is_text);
		http_succeed(run, &rule, doc, is_text, "", o);
		break;
	case HTTP_ACT_RETRYABLE:
		http_fail_status(o, OUTCOME_RETRYABLE, "http", "", status, &req,
		    &resp);
		break;
	case HTTP_ACT_PERMANENT:
		http_fail_status(o, OUTCOME_PERMANENT, "http", "", status, &req,
		    &resp);
		break;
	case HTTP_ACT_LOOKUP:
		http_lookup(run, &svc, &rule, &req, status, &t0, o);
		break;
	}
done:
	http_req_free(&req);
	free(resp.body);
}
