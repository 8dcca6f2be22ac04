/*
 * handler_http.c - the declarative HTTP call: one libcurl request per step.
 *
 * One easy handle lives for the whole worker and is curl_easy_reset() before
 * every step: reset clears the options but keeps the connection cache, so a
 * worker calling the same service step after step reuses its connection.
 *
 * Everything that varies per attempt comes from the RUN_STEP: the config is
 * rendered against the step input ({"context", "steps", "attempt"}) and
 * env.NAME.  Nothing here decides about retries beyond classifying the
 * answer; the supervisor owns the retry policy.
 *
 * Text that leaves the worker (results, error messages) may come from any
 * service, so it is cut to size and made valid UTF-8 without NUL bytes:
 * msgpack str and PostgreSQL text both depend on it.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "handler.h"
#include "httpclass.h"
#include "log.h"
#include "render.h"
#include "xmalloc.h"

#define HTTP_MAX_RESPONSE	(8u * 1024 * 1024)
#define HTTP_MAX_TEXT_RESULT	4096	/* non-JSON body kept as {"body"} */
#define HTTP_MAX_ERR_BODY	512	/* body excerpt in error_message */
/* Results travel inside the next steps' input: see PROTO_MAX_JSON_DEPTH. */
#define HTTP_MAX_RESULT_DEPTH	PROTO_MAX_JSON_DEPTH
#define HTTP_USER_AGENT		"taskerd-worker/0.1"

enum http_conflict {
	HTTP_CONFLICT_PERMANENT,
	HTTP_CONFLICT_RETRYABLE,
	HTTP_CONFLICT_SUCCESS,
};

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
	long			 timeout_ms;
	enum http_conflict	 conflict;
	const json_t		*extract;	/* results map or NULL */
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
		log_warnx("curl_global_init failed error=\"%s\"",
		    curl_easy_strerror(rc));
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

/* RFC 9110 token characters, for methods and header names. */
static int
http_is_token(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) &&
		    strchr("!#$%&'*+-.^_`|~", *s) == NULL)
			return 0;
	}
	return 1;
}

static void
http_header_add(struct http_req *req, const char *name, const char *value)
{
	struct curl_slist	*l;
	char			*line;

	/* "Name;" is how curl is told to send a header with no value. */
	if (*value == '\0')
		xasprintf(&line, "%s;", name);
	else
		xasprintf(&line, "%s: %s", name, value);
	if ((l = curl_slist_append(req->headers, line)) == NULL)
		fatalx("curl_slist_append: out of memory");
	req->headers = l;
	free(line);
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

/*
 * Build the request from config and step.  Returns 0, or -1 with the
 * outcome already set (bad config or render error; both permanent: the
 * same input would fail the same way on every attempt).
 */
static int
http_req_build(const struct proto_run_step *run, struct http_req *req,
    struct proto_step_outcome *o)
{
	const json_t	*cfg = run->config, *v, *hdrs;
	const char	*key, *s;
	json_t		*item, *body;
	struct curl_slist *l;
	char		 err[512], *val, *m;

	memset(req, 0, sizeof(*req));
	if (!json_is_object(cfg)) {
		outcome_fail(o, OUTCOME_PERMANENT, "bad_config",
		    "http handler_config must be an object");
		return -1;
	}

	if ((v = json_object_get(cfg, "method")) != NULL) {
		if (!json_is_string(v) || !http_is_token(json_string_value(v))) {
			outcome_fail(o, OUTCOME_PERMANENT, "bad_config",
			    "http method must be a method name");
			return -1;
		}
		/* Templates ported from Tasker write "post" as often as
		 * "POST"; the standard methods are all upper case. */
		req->method = xstrdup(json_string_value(v));
		for (m = req->method; *m != '\0'; m++)
			*m = (char)toupper((unsigned char)*m);
	} else
		req->method = xstrdup("GET");

	if ((s = json_string_value(json_object_get(cfg, "url"))) == NULL) {
		outcome_fail(o, OUTCOME_PERMANENT, "bad_config",
		    "http url is required and must be a string");
		return -1;
	}
	if ((req->url = render_string(s, run->input, RENDER_URL, err,
	    sizeof(err))) == NULL) {
		outcome_fail(o, OUTCOME_PERMANENT, "render_error", "url: %s",
		    err);
		return -1;
	}
	if (strncasecmp(req->url, "http://", 7) != 0 &&
	    strncasecmp(req->url, "https://", 8) != 0) {
		outcome_fail(o, OUTCOME_PERMANENT, "bad_config",
		    "http url must be absolute http:// or https://");
		return -1;
	}

	req->timeout_ms = (long)run->timeout_ms;
	if ((v = json_object_get(cfg, "timeout")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
		    json_integer_value(v) > 86400000) {
			outcome_fail(o, OUTCOME_PERMANENT, "bad_config",
			    "http timeout must be milliseconds in (0, 1 day]");
			return -1;
		}
		req->timeout_ms = (long)json_integer_value(v);
	}

	req->conflict = HTTP_CONFLICT_PERMANENT;
	if ((v = json_object_get(cfg, "conflict")) != NULL) {
		s = json_string_value(v);
		if (s != NULL && strcmp(s, "permanent") == 0)
			req->conflict = HTTP_CONFLICT_PERMANENT;
		else if (s != NULL && strcmp(s, "retryable") == 0)
			req->conflict = HTTP_CONFLICT_RETRYABLE;
		else if (s != NULL && strcmp(s, "success") == 0)
			req->conflict = HTTP_CONFLICT_SUCCESS;
		else {
			outcome_fail(o, OUTCOME_PERMANENT, "bad_config",
			    "http conflict must be \"retryable\", "
			    "\"permanent\" or \"success\"");
			return -1;
		}
	}

	if ((v = json_object_get(cfg, "results")) != NULL) {
		if (!json_is_object(v)) {
			outcome_fail(o, OUTCOME_PERMANENT, "bad_config",
			    "http results must map names to paths");
			return -1;
		}
		json_object_foreach((json_t *)v, key, item) {
			if (!json_is_string(item)) {
				outcome_fail(o, OUTCOME_PERMANENT, "bad_config",
				    "http results.%s must be a path string",
				    key);
				return -1;
			}
		}
		req->extract = v;
	}

	/* A JSON null body is the same as none: nothing to send. */
	if ((v = json_object_get(cfg, "body")) != NULL && !json_is_null(v)) {
		if ((body = render_json(v, run->input, err,
		    sizeof(err))) == NULL) {
			outcome_fail(o, OUTCOME_PERMANENT, "render_error",
			    "body: %s", err);
			return -1;
		}
		req->body = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(body);
		if (req->body == NULL)
			fatalx("json_dumps: out of memory");
	}

	/*
	 * Our defaults first, unless the template overrides them; the two
	 * keys that make at-least-once safe and traceable are always ours.
	 */
	hdrs = json_object_get(cfg, "headers");
	if (hdrs != NULL && !json_is_object(hdrs)) {
		outcome_fail(o, OUTCOME_PERMANENT, "bad_config",
		    "http headers must map names to strings");
		return -1;
	}
	if (!http_cfg_has_header(hdrs, "Accept"))
		http_header_add(req, "Accept", "application/json");
	if (!http_cfg_has_header(hdrs, "User-Agent"))
		http_header_add(req, "User-Agent", HTTP_USER_AGENT);
	if (req->body != NULL && !http_cfg_has_header(hdrs, "Content-Type"))
		http_header_add(req, "Content-Type", "application/json");
	/* "Expect:" with nothing after the colon removes curl's own
	 * Expect: 100-continue, which would stall large bodies a second. */
	if ((l = curl_slist_append(req->headers, "Expect:")) == NULL)
		fatalx("curl_slist_append: out of memory");
	req->headers = l;
	if (strpbrk(run->idempotency_key, "\r\n") != NULL ||
	    strpbrk(run->correlation_id, "\r\n") != NULL) {
		outcome_fail(o, OUTCOME_PERMANENT, "bad_request",
		    "idempotency key or correlation id contains a line break");
		return -1;
	}
	http_header_add(req, "Idempotency-Key", run->idempotency_key);
	http_header_add(req, "X-Correlation-ID", run->correlation_id);
	if (hdrs == NULL)
		return 0;
	json_object_foreach((json_t *)hdrs, key, item) {
		if (!http_is_token(key) || !json_is_string(item)) {
			outcome_fail(o, OUTCOME_PERMANENT, "bad_config",
			    "http header '%s' must be a token mapped to a "
			    "string", key);
			return -1;
		}
		if (strcasecmp(key, "Idempotency-Key") == 0 ||
		    strcasecmp(key, "X-Correlation-ID") == 0 ||
		    strcasecmp(key, "Expect") == 0)
			continue;
		if ((val = render_string(json_string_value(item), run->input,
		    RENDER_TEXT, err, sizeof(err))) == NULL) {
			outcome_fail(o, OUTCOME_PERMANENT, "render_error",
			    "header %s: %s", key, err);
			return -1;
		}
		/* A context value must not be able to add headers. */
		if (strpbrk(val, "\r\n") != NULL) {
			free(val);
			outcome_fail(o, OUTCOME_PERMANENT, "render_error",
			    "header %s: rendered value contains a line break",
			    key);
			return -1;
		}
		http_header_add(req, key, val);
		free(val);
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
	else if (strcmp(req->method, "POST") == 0) {
		/* An empty POST still says Content-Length: 0. */
		HTTP_SETOPT(CURLOPT_POSTFIELDS, "");
		HTTP_SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
	} else
		HTTP_SETOPT(CURLOPT_CUSTOMREQUEST, req->method);
#undef HTTP_SETOPT
	return bad ? -1 : 0;
}

/* The body as results: JSON as is, empty as {}, text as {"body": ...}. */
static json_t *
http_body_results(const struct http_resp *resp)
{
	json_t	*j;
	char	*text;
	size_t	 i, n;

	for (i = 0; i < resp->len; i++) {
		if (!isspace((unsigned char)resp->body[i]))
			break;
	}
	if (i == resp->len)
		return json_object();
	if ((j = json_loadb(resp->body, resp->len, JSON_DECODE_ANY, NULL)) !=
	    NULL)
		return j;
	text = xmalloc(HTTP_MAX_TEXT_RESULT + 1);
	n = http_clean_text(resp->body, resp->len, HTTP_MAX_TEXT_RESULT, text);
	j = json_pack("{s:s%}", "body", text, n);
	free(text);
	return j;
}

/* Apply the results map to the parsed body.  NULL with the missing path
 * in err when a field is absent. */
static json_t *
http_extract(const json_t *extract, const json_t *doc, char *err,
    size_t errlen)
{
	const json_t	*v;
	const char	*key, *path;
	json_t		*out, *item;

	out = json_object();
	json_object_foreach((json_t *)extract, key, item) {
		path = json_string_value(item);
		/* "" names the whole document. */
		v = *path == '\0' ? doc : render_lookup(doc, path);
		if (v == NULL) {
			snprintf(err, errlen, "response has no '%s' for "
			    "results.%s", path, key);
			json_decref(out);
			return NULL;
		}
		json_object_set_new(out, key, json_deep_copy(v));
	}
	return out;
}

static void
http_success(const struct http_req *req, const struct http_resp *resp,
    struct proto_step_outcome *o)
{
	json_t	*doc, *results;
	char	 err[512];

	doc = http_body_results(resp);
	if (req->extract != NULL) {
		results = http_extract(req->extract, doc, err, sizeof(err));
		json_decref(doc);
		if (results == NULL) {
			outcome_fail(o, OUTCOME_PERMANENT, "extract_error",
			    "%s", err);
			return;
		}
	} else
		results = doc;
	if (proto_json_depth(results) > HTTP_MAX_RESULT_DEPTH) {
		json_decref(results);
		outcome_fail(o, OUTCOME_PERMANENT, "response_too_deep",
		    "response JSON is nested deeper than %d levels",
		    HTTP_MAX_RESULT_DEPTH);
		return;
	}
	outcome_success(o, results);
}

static void
http_curl_fail(CURLcode rc, const char *errbuf, struct proto_step_outcome *o)
{
	const char	*why = *errbuf != '\0' ? errbuf : curl_easy_strerror(rc);

	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		outcome_fail(o, OUTCOME_RETRYABLE, "timeout", "%s", why);
		break;
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		outcome_fail(o, OUTCOME_RETRYABLE, "connect_error", "%s", why);
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		/* The rendered URL itself is wrong: no retry can fix it. */
		outcome_fail(o, OUTCOME_PERMANENT, "bad_url", "%s", why);
		break;
	default:
		outcome_fail(o, OUTCOME_RETRYABLE, "curl_error", "%s", why);
		free(o->error_code);
		xasprintf(&o->error_code, "curl_%d", (int)rc);
		break;
	}
}

static void
http_run(const struct proto_run_step *run, struct proto_step_outcome *o)
{
	struct http_req		 req;
	struct http_resp	 resp;
	char			 errbuf[CURL_ERROR_SIZE];
	char			 excerpt[HTTP_MAX_ERR_BODY + 1];
	enum proto_outcome	 cls;
	CURLcode		 rc;
	long			 status = 0;

	memset(&resp, 0, sizeof(resp));
	errbuf[0] = '\0';
	if (http_req_build(run, &req, o) == -1)
		goto done;
	if (http_setup(&req, &resp, errbuf) == -1) {
		outcome_fail(o, OUTCOME_PERMANENT, "curl_setup",
		    "libcurl refused an option");
		goto done;
	}
	log_debug("http request step_id=%lld task_id=%lld correlation_id=%s "
	    "method=%s url=\"%s\"", (long long)run->step_id,
	    (long long)run->task_id, run->correlation_id, req.method, req.url);

	rc = curl_easy_perform(http_curl);
	curl_easy_getinfo(http_curl, CURLINFO_RESPONSE_CODE, &status);
	if (resp.too_large) {
		o->http_status = (int32_t)status;
		outcome_fail(o, OUTCOME_PERMANENT, "response_too_large",
		    "response body exceeds %u bytes", HTTP_MAX_RESPONSE);
		goto done;
	}
	if (rc != CURLE_OK) {
		http_curl_fail(rc, errbuf, o);
		goto done;
	}

	o->http_status = (int32_t)status;
	if (status == 409 && req.conflict == HTTP_CONFLICT_SUCCESS)
		cls = OUTCOME_SUCCESS;
	else
		cls = httpclass_status(status,
		    req.conflict == HTTP_CONFLICT_RETRYABLE);
	if (cls == OUTCOME_SUCCESS) {
		http_success(&req, &resp, o);
		goto done;
	}

	http_clean_text(resp.body != NULL ? resp.body : "", resp.len,
	    HTTP_MAX_ERR_BODY, excerpt);
	outcome_fail(o, cls, "http", "HTTP %ld from %s: %s", status,
	    req.method, excerpt);
	free(o->error_code);
	xasprintf(&o->error_code, "http_%ld", status);
	if ((status == 429 || status == 503) && resp.retry_after[0] != '\0')
		o->retry_after_ms = httpclass_retry_after_ms(resp.retry_after,
		    time(NULL));
done:
	http_req_free(&req);
	free(resp.body);
}
