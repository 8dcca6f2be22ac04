/*
 * client.c - the HTTP side of tasker-ctl: one libcurl easy handle, reused
 * for every request of a run (task watch polls through one connection).
 *
 * The base URL is http(s)://HOST[:PORT][/PREFIX] or unix:PATH, the latter
 * for a daemon listening on a Unix socket (http.listen: unix:PATH).
 *
 * Two kinds of failure are kept apart because scripts need to tell them
 * apart: no answer at all (exit 3, with the URL and curl's reason) and an
 * answer that is an API error (exit 1, with its code and message).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "autoconf.h"
#include "ctl.h"
#include "jsontext.h"
#include "xmalloc.h"

/* An answer larger than this is not one of taskerd's. */
#define CLIENT_MAX_BODY		(256u * 1024 * 1024)

static CURL	*curl;
static char	*base;		/* the URL requests are relative to */
static char	*unix_path;	/* non-NULL: connect through this socket */
static bool	 quiet;		/* an unreachable server is not reported */
static char	 failure[CURL_ERROR_SIZE + 256];	/* why, the last time */

void
client_init(void)
{
	size_t	n;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
	    (curl = curl_easy_init()) == NULL) {
		ctl_warnx("cannot initialise libcurl");
		exit(CTL_EXIT_UNREACHABLE);
	}
	if (strncmp(ctl.url, "unix:", 5) == 0) {
		unix_path = xstrdup(ctl.url + 5);
		base = xstrdup("http://localhost");
	} else
		base = xstrdup(ctl.url);
	/* "http://host:8080/" and "http://host:8080" are the same base. */
	n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		base[--n] = '\0';
}

void
client_cleanup(void)
{
	if (curl != NULL)
		curl_easy_cleanup(curl);
	curl = NULL;
	curl_global_cleanup();
	free(base);
	free(unix_path);
	base = unix_path = NULL;
}

char *
client_escape(const char *s)
{
	char	*e = curl_easy_escape(curl, s, 0), *out;

	if (e == NULL) {
		ctl_warnx("out of memory");
		exit(CTL_EXIT_API);
	}
	out = xstrdup(e);
	curl_free(e);
	return out;
}

struct sink {
	char	*buf;
	size_t	 len, cap;
	bool	 too_big;
};

static size_t
sink_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink	*s = arg;
	size_t		 n = size * nmemb;

	if (s->len + n + 1 > CLIENT_MAX_BODY) {
		s->too_big = true;
		return 0;
	}
	if (s->len + n + 1 > s->cap) {
		while (s->len + n + 1 > s->cap)
			s->cap = s->cap ? s->cap * 2 : 4096;
		s->buf = xreallocarray(s->buf, 1, s->cap);
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	s->buf[s->len] = '\0';
	return n;
}

int
client_request(const char *method, const char *path, const json_t *body,
    struct client_resp *r)
{
	struct curl_slist	*hdrs = NULL;
	struct sink		 sink;
	char			 errbuf[CURL_ERROR_SIZE], *url, *auth = NULL;
	char			*payload = NULL, *location = NULL;
	long			 sent = 0;
	curl_off_t		 ready = 0;
	bool			 sent_out;
	CURLcode		 cc;

	memset(r, 0, sizeof(*r));
	memset(&sink, 0, sizeof(sink));
	errbuf[0] = '\0';
	xasprintf(&url, "%s%s", base, path);

	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	/* An argument of "." or ".." is a name to look up, not a way to
	 * another endpoint ("step show 1 .." would show task 1). */
	curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 60000L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "tasker-ctl/" PACKAGE_VERSION);
	if (unix_path != NULL)
		curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, unix_path);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	/* evhttp answers a 100-continue, but one round trip less is better. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (ctl.token != NULL) {
		xasprintf(&auth, "Authorization: Bearer %s", ctl.token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	if (body != NULL) {
		payload = jsontext(body, 0);
		hdrs = curl_slist_append(hdrs,
		    "Content-Type: application/json");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE,
		    (long)strlen(payload));
	} else if (strcmp(method, "GET") == 0)
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);

	cc = curl_easy_perform(curl);
	curl_slist_free_all(hdrs);
	free(payload);
	if (auth != NULL) {
		/* The token is a secret: do not leave it in freed memory. */
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	if (cc != CURLE_OK && sink.too_big) {
		/* It answered, with more than a client takes. */
		ctl_warnx("%s: the answer is larger than %u bytes", url,
		    CLIENT_MAX_BODY);
		free(sink.buf);
		free(url);
		return CTL_EXIT_API;
	}
	/* Sent: the connection (through a proxy, TLS) was made, and the
	 * request went out on it. */
	sent_out = cc != CURLE_OK &&
	    curl_easy_getinfo(curl, CURLINFO_PRETRANSFER_TIME_T, &ready) ==
	    CURLE_OK && ready > 0 &&
	    curl_easy_getinfo(curl, CURLINFO_REQUEST_SIZE, &sent) ==
	    CURLE_OK && sent > 0;
	if (sent_out && strcmp(method, "GET") != 0) {
		/* Not "unreachable" (exit 3, safe to send again): the server
		 * may have carried it out before the answer was lost. */
		ctl_warnx("%s %s: sent, but the answer was lost (%s): it may "
		    "have been carried out; look before sending it again",
		    method, unix_path ? ctl.url : url, errbuf[0] ? errbuf :
		    curl_easy_strerror(cc));
		free(sink.buf);
		free(url);
		return CTL_EXIT_API;
	}
	if (cc != CURLE_OK) {
		/* A read is safe to send again (exit 3 either way); one that
		 * went out reached the server, which is slow or stuck, not
		 * away - unless it ends in a failed connect: curl sends again
		 * on a new connection what a reused one lost unanswered. */
		snprintf(failure, sizeof(failure), sent_out &&
		    cc != CURLE_COULDNT_CONNECT &&
		    cc != CURLE_COULDNT_RESOLVE_HOST &&
		    cc != CURLE_COULDNT_RESOLVE_PROXY ?
		    "no answer from %s, which was reached: %s" :
		    "cannot reach %s: %s", unix_path ? ctl.url : url,
		    errbuf[0] ? errbuf : curl_easy_strerror(cc));
		if (!quiet)
			ctl_warnx("%s", failure);
		free(sink.buf);
		free(url);
		return CTL_EXIT_UNREACHABLE;
	}
	free(url);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (curl_easy_getinfo(curl, CURLINFO_REDIRECT_URL, &location) ==
	    CURLE_OK && location != NULL)
		r->location = xstrdup(location);
	r->body = sink.buf ? sink.buf : xstrdup("");
	r->len = sink.len;
	r->json = jsontext_load(r->body, r->len, 0, NULL);
	return 0;
}

void
client_quiet(bool on)
{
	quiet = on;
}

const char *
client_failure(void)
{
	return failure;
}

void
client_resp_free(struct client_resp *r)
{
	free(r->body);
	free(r->location);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

void
client_print_raw(const struct client_resp *r)
{
	fwrite(r->body, 1, r->len, stdout);
	if (r->len == 0 || r->body[r->len - 1] != '\n')
		putchar('\n');
}

int
client_show(const char *path, void (*render)(const json_t *, const void *),
    const void *arg)
{
	struct client_resp	r;
	int			rc;

	if ((rc = client_call("GET", path, NULL, &r)) != 0)
		return rc;
	if (ctl.json)
		client_print_raw(&r);
	else
		render(r.json, arg);
	client_resp_free(&r);
	return 0;
}

int
client_report(const struct client_resp *r)
{
	const json_t	*err = json_object_get(r->json, "error");
	const json_t	*v, *tid;
	const char	*code, *msg;
	size_t		 i, n;

	/* (Only JSON goes to stdout, for a script's JSON parser.) */
	if (ctl.json && r->json != NULL)
		client_print_raw(r);
	if (r->location != NULL) {
		/* tasker-ctl follows no redirect: --url names the API. */
		ctl_warnx("HTTP %ld: redirected to %s; give --url as the API's "
		    "own address", r->status, r->location);
		return CTL_EXIT_API;
	}
	if (!json_is_object(err)) {
		/* Not taskerd's shape: a proxy's page, say.  Its first line. */
		n = strcspn(r->body, "\r\n");
		if (n > 200)
			n = 200;
		ctl_warnx("HTTP %ld%s%.*s", r->status, n ? ": " : "", (int)n,
		    r->body);
		return CTL_EXIT_API;
	}
	code = out_str(err, "code", "error");
	msg = out_str(err, "message", "");
	tid = json_object_get(err, "task_id");
	if (json_is_integer(tid))
		ctl_warnx("%s: %s (task %lld)", code, msg,
		    (long long)json_integer_value(tid));
	else
		ctl_warnx("%s: %s", code, msg);
	/* A schema's violations, one per line. */
	v = json_object_get(err, "violations");
	for (i = 0; i < json_array_size(v); i++) {
		const json_t *x = json_array_get(v, i);

		fprintf(stderr, "  %s: %s\n", out_str(x, "path", "?"),
		    out_str(x, "message", "?"));
	}
	return CTL_EXIT_API;
}

int
client_call(const char *method, const char *path, const json_t *body,
    struct client_resp *r)
{
	int	rc;

	if ((rc = client_request(method, path, body, r)) != 0)
		return rc;
	if (r->status < 200 || r->status > 299) {
		rc = client_report(r);
		client_resp_free(r);
		return rc;
	}
	if (r->json == NULL) {
		ctl_warnx("%s%s: the answer (HTTP %ld) is not JSON", ctl.url,
		    path, r->status);
		client_resp_free(r);
		return CTL_EXIT_API;
	}
	return 0;
}
