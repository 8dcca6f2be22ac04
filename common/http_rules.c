/*
 * http_rules.c - what the http handler decides, without a network.
 *
 * The config check is strict on purpose: a misspelt key in a rule would
 * otherwise be ignored, and the step would quietly fall back to the status
 * classes, which is the very behaviour the rule was written to change.
 * Messages name the key the way a template author wrote it
 * ("on_status.409.lookup.match"), because they end up in a step's
 * error_message where that author reads them.
 *
 * A rendered URL or header is never echoed into a message: either may hold
 * a {{env.NAME}} secret.  The values a lookup compared are (cut short),
 * since saying what differed is the point of a mismatch; a match should
 * therefore not compare secrets.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpclass.h"
#include "http_rules.h"
#include "protocol.h"
#include "errbuf.h"
#include "render.h"
#include "jsontext.h"
#include "xmalloc.h"

#define HTTP_RULES_MAX_COMPONENT	255	/* render_lookup's limit */
#define HTTP_RULES_MAX_SHOWN		120	/* of a value in a message */
#define HTTP_RULES_MAX_TIMEOUT_MS	86400000	/* one day */

static const char *const http_rules_top_keys[] = {
	"method", "url", "headers", "body", "timeout", "results", "set",
	"on_status", "conflict", NULL
};
static const char *const http_rules_rule_keys[] = {
	"outcome", "set", "results", "lookup", NULL
};
static const char *const http_rules_lookup_keys[] = {
	"method", "url", "headers", "body", "results", "match", "set", NULL
};

/* RFC 9110 token characters, for methods and header names. */
static int
http_rules_is_token(const char *s)
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

/* A path render_lookup() can follow: "" (the whole document) or dotted
 * non-empty components. */
static int
http_rules_path_ok(const char *p)
{
	size_t	n;

	if (*p == '\0')
		return 1;
	for (;;) {
		n = strcspn(p, ".");
		if (n == 0 || n > HTTP_RULES_MAX_COMPONENT)
			return 0;
		if (p[n] == '\0')
			return 1;
		p += n + 1;
	}
}

/* "409" (100-599) or "4xx" (1xx-5xx). */
static int
http_rules_status_key(const char *k)
{
	if (strlen(k) != 3 || k[0] < '1' || k[0] > '5')
		return 0;
	if (k[1] == 'x' && k[2] == 'x')
		return 1;
	return isdigit((unsigned char)k[1]) && isdigit((unsigned char)k[2]);
}

static int
http_rules_outcome(const char *s, enum http_action *act)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "success") == 0)
		*act = HTTP_ACT_SUCCESS;
	else if (strcmp(s, "retryable") == 0)
		*act = HTTP_ACT_RETRYABLE;
	else if (strcmp(s, "permanent") == 0)
		*act = HTTP_ACT_PERMANENT;
	else
		return -1;
	return 0;
}

/* The first key of obj not in allowed, or NULL. */
static const char *
http_rules_unknown_key(const json_t *obj, const char *const *allowed)
{
	const char	*key;
	json_t		*v;
	size_t		 i;

	json_object_foreach((json_t *)obj, key, v) {
		for (i = 0; allowed[i] != NULL; i++) {
			if (strcmp(key, allowed[i]) == 0)
				break;
		}
		if (allowed[i] == NULL)
			return key;
	}
	return NULL;
}

/* obj's results map, if any: names to paths; where is "" or a rule's
 * "on_status.409." or "on_status.409.lookup.". */
static int
http_rules_check_results(const json_t *obj, const char *where, char *err,
    size_t errlen)
{
	const json_t	*v;
	const char	*key;
	json_t		*item;

	if ((v = json_object_get(obj, "results")) == NULL)
		return 0;
	if (!json_is_object(v)) {
		errbuf_set(err, errlen, "http %sresults must map names to "
		    "paths", where);
		return -1;
	}
	json_object_foreach((json_t *)v, key, item) {
		if (!json_is_string(item) ||
		    !http_rules_path_ok(json_string_value(item))) {
			errbuf_set(err, errlen, "http %sresults.%s must be a "
			    "path string", where, key);
			return -1;
		}
	}
	return 0;
}

/* The request keys the top level and a lookup share; where is "" or
 * "on_status.409.lookup.". */
static int
http_rules_check_request(const json_t *obj, const char *where, char *err,
    size_t errlen)
{
	const json_t	*v;
	const char	*key;
	json_t		*item;

	if ((v = json_object_get(obj, "method")) != NULL &&
	    (!json_is_string(v) || !http_rules_is_token(json_string_value(v)))) {
		errbuf_set(err, errlen, "http %smethod must be a method "
		    "name", where);
		return -1;
	}
	/* A HEAD's answer has no body, and curl would wait for the one a
	 * request with a body expects, until the step timed out. */
	if (v != NULL && strcasecmp(json_string_value(v), "HEAD") == 0 &&
	    (item = json_object_get(obj, "body")) != NULL &&
	    !json_is_null(item)) {
		errbuf_set(err, errlen, "http %sbody: a HEAD request has no "
		    "body", where);
		return -1;
	}
	if (!json_is_string(v = json_object_get(obj, "url"))) {
		errbuf_set(err, errlen, "http %surl is required and must "
		    "be a string", where);
		return -1;
	}
	/* What http_rules_url() takes, or a placeholder that may give it
	 * (a base URL from the environment): "example.com/x" never runs. */
	key = json_string_value(v);
	if (key[0] != '/' && strncmp(key, "{{", 2) != 0 &&
	    strncasecmp(key, "http://", 7) != 0 &&
	    strncasecmp(key, "https://", 8) != 0) {
		errbuf_set(err, errlen, "http %surl must be absolute http:// "
		    "or https://, or start with / (the service's base_url) "
		    "or with a placeholder", where);
		return -1;
	}
	/* Only {{env.NAME}} may give the scheme and host: any other value
	 * is percent-encoded in a URL ("http%3A%2F%2Fh/x"). */
	if (strncmp(key, "{{", 2) == 0 &&
	    strncmp(key + 2 + strspn(key + 2, " \t\n\v\f\r"), "env.",
	    4) != 0) {
		errbuf_set(err, errlen, "http %surl may start with a "
		    "placeholder only from env ({{env.NAME}}): any other is "
		    "percent-encoded in a URL; start it with / for the "
		    "service's base_url", where);
		return -1;
	}
	if ((v = json_object_get(obj, "headers")) != NULL) {
		if (!json_is_object(v)) {
			errbuf_set(err, errlen, "http %sheaders must map "
			    "names to strings", where);
			return -1;
		}
		json_object_foreach((json_t *)v, key, item) {
			if (!http_rules_is_token(key) || !json_is_string(item)) {
				errbuf_set(err, errlen, "http %sheader '%s' "
				    "must be a token mapped to a string", where,
				    key);
				return -1;
			}
		}
	}
	if (http_rules_check_results(obj, where, err, errlen) == -1)
		return -1;
	if ((v = json_object_get(obj, "set")) != NULL && !json_is_object(v)) {
		errbuf_set(err, errlen, "http %sset must be an object",
		    where);
		return -1;
	}
	return 0;
}

static int
http_rules_check_lookup(const char *where, const json_t *lk, char *err,
    size_t errlen)
{
	const json_t	*match;
	const char	*key;
	json_t		*v;
	char		 sub[64];

	if (!json_is_object(lk)) {
		errbuf_set(err, errlen, "http %s.lookup must be an object",
		    where);
		return -1;
	}
	if ((key = http_rules_unknown_key(lk, http_rules_lookup_keys)) !=
	    NULL) {
		errbuf_set(err, errlen, "http %s.lookup: unknown key '%s' "
		    "(method, url, headers, body, results, match, set)", where,
		    key);
		return -1;
	}
	snprintf(sub, sizeof(sub), "%s.lookup.", where);
	if (http_rules_check_request(lk, sub, err, errlen) == -1)
		return -1;
	if ((match = json_object_get(lk, "match")) == NULL)
		return 0;
	if (!json_is_object(match)) {
		errbuf_set(err, errlen, "http %s.lookup.match must map "
		    "paths to values", where);
		return -1;
	}
	json_object_foreach((json_t *)match, key, v) {
		if (!http_rules_path_ok(key)) {
			errbuf_set(err, errlen, "http %s.lookup.match: "
			    "'%s' is not a dotted path", where, key);
			return -1;
		}
	}
	return 0;
}

static int
http_rules_check_rule(const char *key, const json_t *rule, char *err,
    size_t errlen)
{
	const json_t		*outcome, *set, *lk;
	const char		*bad;
	enum http_action	 act;
	char			 where[32];

	snprintf(where, sizeof(where), "on_status.%s", key);
	if (json_is_string(rule) &&
	    http_rules_outcome(json_string_value(rule), &act) == 0)
		return 0;
	if (!json_is_object(rule)) {
		errbuf_set(err, errlen, "http %s must be \"success\", "
		    "\"retryable\", \"permanent\" or an object", where);
		return -1;
	}
	if ((bad = http_rules_unknown_key(rule, http_rules_rule_keys)) !=
	    NULL) {
		errbuf_set(err, errlen, "http %s: unknown key '%s' "
		    "(outcome, set, results, lookup)", where, bad);
		return -1;
	}
	outcome = json_object_get(rule, "outcome");
	set = json_object_get(rule, "set");
	if ((lk = json_object_get(rule, "lookup")) != NULL) {
		if (outcome != NULL) {
			errbuf_set(err, errlen, "http %s: a lookup decides "
			    "the outcome; remove outcome", where);
			return -1;
		}
		if (set != NULL || json_object_get(rule, "results") != NULL) {
			errbuf_set(err, errlen, "http %s: with a lookup, "
			    "set and results go inside the lookup", where);
			return -1;
		}
		return http_rules_check_lookup(where, lk, err, errlen);
	}
	if (outcome == NULL) {
		errbuf_set(err, errlen, "http %s needs outcome or lookup",
		    where);
		return -1;
	}
	if (http_rules_outcome(json_string_value(outcome), &act) == -1) {
		errbuf_set(err, errlen, "http %s.outcome must be "
		    "\"success\", \"retryable\" or \"permanent\"", where);
		return -1;
	}
	if ((set != NULL || json_object_get(rule, "results") != NULL) &&
	    act != HTTP_ACT_SUCCESS) {
		errbuf_set(err, errlen, "http %s.%s only applies to outcome "
		    "success", where, set != NULL ? "set" : "results");
		return -1;
	}
	if (set != NULL && !json_is_object(set)) {
		errbuf_set(err, errlen, "http %s.set must be an object",
		    where);
		return -1;
	}
	snprintf(where, sizeof(where), "on_status.%s.", key);
	return http_rules_check_results(rule, where, err, errlen);
}

int
http_rules_check(const json_t *cfg, char *err, size_t errlen)
{
	const json_t		*v, *on;
	const char		*key;
	json_t			*rule;
	enum http_action	 act;

	if (!json_is_object(cfg)) {
		errbuf_set(err, errlen, "http handler_config must be an "
		    "object");
		return -1;
	}
	if ((key = http_rules_unknown_key(cfg, http_rules_top_keys)) != NULL) {
		errbuf_set(err, errlen, "http handler_config: unknown key "
		    "'%s'", key);
		return -1;
	}
	if (http_rules_check_request(cfg, "", err, errlen) == -1)
		return -1;
	if ((v = json_object_get(cfg, "timeout")) != NULL &&
	    (!json_is_integer(v) || json_integer_value(v) <= 0 ||
	    json_integer_value(v) > HTTP_RULES_MAX_TIMEOUT_MS)) {
		errbuf_set(err, errlen, "http timeout must be milliseconds "
		    "in (0, 1 day]");
		return -1;
	}
	on = json_object_get(cfg, "on_status");
	if ((v = json_object_get(cfg, "conflict")) != NULL) {
		if (http_rules_outcome(json_string_value(v), &act) == -1) {
			errbuf_set(err, errlen, "http conflict must be "
			    "\"retryable\", \"permanent\" or \"success\"");
			return -1;
		}
		/* Two answers to one question: refuse rather than pick. */
		if (json_object_get(on, "409") != NULL) {
			errbuf_set(err, errlen, "http conflict and "
			    "on_status.409 both say what a 409 means; keep "
			    "on_status");
			return -1;
		}
	}
	if (on == NULL)
		return 0;
	if (!json_is_object(on)) {
		errbuf_set(err, errlen, "http on_status must map status "
		    "codes or classes to rules");
		return -1;
	}
	json_object_foreach((json_t *)on, key, rule) {
		if (!http_rules_status_key(key)) {
			errbuf_set(err, errlen, "http on_status: '%s' is "
			    "not a status code (100-599) or class (1xx-5xx)",
			    key);
			return -1;
		}
		if (http_rules_check_rule(key, rule, err, errlen) == -1)
			return -1;
	}
	return 0;
}

static int
http_rules_try_render(const json_t *tmpl, const json_t *scope,
    const char *name, char *err, size_t errlen)
{
	json_t	*v;
	char	 why[400];

	if (tmpl == NULL)
		return 0;
	if ((v = render_json(tmpl, scope, why, sizeof(why))) == NULL) {
		errbuf_set(err, errlen, "%s: %s", name, why);
		return -1;
	}
	json_decref(v);
	return 0;
}

int
http_rules_render_check(const json_t *cfg, const json_t *scope, char *err,
    size_t errlen)
{
	const json_t	*lk;
	const char	*key;
	json_t		*rule;
	char		 name[64];

	if (http_rules_try_render(json_object_get(cfg, "set"), scope, "set",
	    err, errlen) == -1)
		return -1;
	json_object_foreach(json_object_get(cfg, "on_status"), key, rule) {
		snprintf(name, sizeof(name), "on_status.%s.set", key);
		if (http_rules_try_render(json_object_get(rule, "set"), scope,
		    name, err, errlen) == -1)
			return -1;
		if ((lk = json_object_get(rule, "lookup")) == NULL)
			continue;
		snprintf(name, sizeof(name), "on_status.%s.lookup.set", key);
		if (http_rules_try_render(json_object_get(lk, "set"), scope,
		    name, err, errlen) == -1)
			return -1;
		snprintf(name, sizeof(name), "on_status.%s.lookup.match", key);
		if (http_rules_try_render(json_object_get(lk, "match"), scope,
		    name, err, errlen) == -1)
			return -1;
	}
	return 0;
}

void
http_rules_decide(const json_t *cfg, long status, struct http_rule *r)
{
	const json_t	*on, *rule = NULL, *lk;
	char		 code[8], cls[8];

	memset(r, 0, sizeof(*r));
	on = json_object_get(cfg, "on_status");
	if (status >= 100 && status <= 599) {
		snprintf(code, sizeof(code), "%ld", status);
		snprintf(cls, sizeof(cls), "%ldxx", status / 100);
		if ((rule = json_object_get(on, code)) != NULL)
			r->key = json_object_iter_key(json_object_iter_at(
			    (json_t *)on, code));
		else if (status == 409 &&
		    (rule = json_object_get(cfg, "conflict")) != NULL)
			r->key = "conflict";
		else if ((rule = json_object_get(on, cls)) != NULL)
			r->key = json_object_iter_key(json_object_iter_at(
			    (json_t *)on, cls));
	}

	if (rule == NULL) {
		switch (httpclass_status(status, 0)) {
		case OUTCOME_SUCCESS:
			/* A plain success: the only case for the top-level
			 * set, which describes what the call itself did. */
			r->action = HTTP_ACT_SUCCESS;
			r->results = json_object_get(cfg, "results");
			r->set = json_object_get(cfg, "set");
			break;
		case OUTCOME_RETRYABLE:
			r->action = HTTP_ACT_RETRYABLE;
			break;
		default:
			r->action = HTTP_ACT_PERMANENT;
			break;
		}
		return;
	}
	if ((lk = json_object_get(rule, "lookup")) != NULL) {
		r->action = HTTP_ACT_LOOKUP;
		r->lookup = lk;
		r->results = json_object_get(lk, "results");
		r->set = json_object_get(lk, "set");
		return;
	}
	if (json_is_string(rule))
		(void)http_rules_outcome(json_string_value(rule), &r->action);
	else {
		(void)http_rules_outcome(json_string_value(
		    json_object_get(rule, "outcome")), &r->action);
		r->set = json_object_get(rule, "set");
		r->results = json_object_get(rule, "results");
	}
	/* The top-level map, unless the rule has its own (a 409's or a
	 * 404's body is seldom the 2xx's shape: "results: {}" takes
	 * nothing from it). */
	if (r->action == HTTP_ACT_SUCCESS && r->results == NULL)
		r->results = json_object_get(cfg, "results");
}

int
http_rules_service(const json_t *input, struct http_service *svc, char *err,
    size_t errlen)
{
	const json_t	*s, *v;

	memset(svc, 0, sizeof(*svc));
	if ((s = json_object_get(input, "service")) == NULL || json_is_null(s))
		return 0;
	if (!json_is_object(s)) {
		errbuf_set(err, errlen, "input.service must be an object");
		return -1;
	}
	if ((v = json_object_get(s, "name")) != NULL) {
		if (!json_is_string(v)) {
			errbuf_set(err, errlen, "input.service.name must "
			    "be a string");
			return -1;
		}
		svc->name = json_string_value(v);
	}
	if ((v = json_object_get(s, "base_url")) != NULL && !json_is_null(v)) {
		if (!json_is_string(v) || json_string_length(v) == 0) {
			errbuf_set(err, errlen, "input.service.base_url "
			    "must be a non-empty string");
			return -1;
		}
		svc->base_url = json_string_value(v);
	}
	if ((v = json_object_get(s, "timeout_ms")) != NULL && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) <= 0) {
			errbuf_set(err, errlen, "input.service.timeout_ms "
			    "must be a positive integer");
			return -1;
		}
		svc->timeout_ms = (int64_t)json_integer_value(v);
	}
	return 0;
}

const char *
http_rules_relative_url(const json_t *cfg, char *where, size_t wherelen)
{
	const char	*url, *key;
	json_t		*rule;

	url = json_string_value(json_object_get(cfg, "url"));
	if (url != NULL && url[0] == '/') {
		snprintf(where, wherelen, "url");
		return url;
	}
	json_object_foreach(json_object_get(cfg, "on_status"), key, rule) {
		url = json_string_value(json_object_get(json_object_get(rule,
		    "lookup"), "url"));
		if (url != NULL && url[0] == '/') {
			snprintf(where, wherelen, "on_status.%s.lookup.url",
			    key);
			return url;
		}
	}
	return NULL;
}

int
http_rules_base_url_check(const char *url, char *err, size_t errlen)
{
	const char	*p;
	size_t		 scheme;

	if (strncasecmp(url, "http://", 7) == 0)
		scheme = 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		scheme = 8;
	else {
		errbuf_set(err, errlen, "must be absolute http:// or https://");
		return -1;
	}
	if (url[scheme] == '\0' || url[scheme] == '/') {
		errbuf_set(err, errlen, "has no host");
		return -1;
	}
	for (p = url; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			errbuf_set(err, errlen, "must not hold a space or a "
			    "control character");
			return -1;
		}
		if (*p == '?' || *p == '#') {
			errbuf_set(err, errlen, "must not have a %s: a "
			    "step's path goes after it", *p == '?' ? "query" :
			    "fragment");
			return -1;
		}
	}
	return 0;
}

char *
http_rules_url(const char *url, const struct http_service *svc, char *err,
    size_t errlen)
{
	char	*out;
	size_t	 n;

	if (url[0] == '/') {
		if (svc->base_url == NULL) {
			if (svc->name != NULL)
				errbuf_set(err, errlen, "a relative url "
				    "needs a base_url, and service '%s' has "
				    "none (services.%s.base_url)", svc->name,
				    svc->name);
			else
				errbuf_set(err, errlen, "a relative url "
				    "needs a base_url, and the step names no "
				    "service (dependent_system)");
			return NULL;
		}
		n = strlen(svc->base_url);
		while (n > 0 && svc->base_url[n - 1] == '/')
			n--;
		xasprintf(&out, "%.*s%s", (int)n, svc->base_url, url);
	} else
		out = xstrdup(url);
	/* The URL may hold rendered values (secrets too): not echoed. */
	if (strncasecmp(out, "http://", 7) != 0 &&
	    strncasecmp(out, "https://", 8) != 0) {
		if (url[0] == '/')
			errbuf_set(err, errlen, "service '%s' base_url "
			    "must be absolute http:// or https://", svc->name ?
			    svc->name : "");
		else
			errbuf_set(err, errlen, "http url must be absolute "
			    "http:// or https://, or start with /");
		free(out);
		return NULL;
	}
	return out;
}

int64_t
http_rules_timeout_ms(int64_t step_ms, const struct http_service *svc)
{
	/* 0 for the step means no limit of its own. */
	if (svc->timeout_ms > 0 && (step_ms <= 0 || svc->timeout_ms < step_ms))
		return svc->timeout_ms;
	return step_ms;
}

json_t *
http_rules_extract(const json_t *map, const json_t *doc, char *err,
    size_t errlen)
{
	const json_t	*v;
	const char	*key, *path;
	json_t		*out, *item;

	out = json_object();
	json_object_foreach((json_t *)map, key, item) {
		path = json_string_value(item);
		/* "" names the whole document. */
		v = *path == '\0' ? doc : render_lookup(doc, path);
		if (v == NULL) {
			errbuf_set(err, errlen, "response has no '%s' for "
			    "results.%s", path, key);
			json_decref(out);
			return NULL;
		}
		json_object_set_new(out, key, json_deep_copy(v));
	}
	return out;
}

int
http_rules_json_equal(const json_t *a, const json_t *b)
{
	const char	*key;
	json_t		*v;
	size_t		 i;

	if (json_is_number(a) && json_is_number(b)) {
		if (json_is_integer(a) && json_is_integer(b))
			return json_integer_value(a) == json_integer_value(b);
		return json_number_value(a) == json_number_value(b);
	}
	if (json_is_object(a) && json_is_object(b)) {
		if (json_object_size(a) != json_object_size(b))
			return 0;
		json_object_foreach((json_t *)a, key, v) {
			if (!http_rules_json_equal(v, json_object_get(b, key)))
				return 0;
		}
		return 1;
	}
	if (json_is_array(a) && json_is_array(b)) {
		if (json_array_size(a) != json_array_size(b))
			return 0;
		json_array_foreach(a, i, v) {
			if (!http_rules_json_equal(v, json_array_get(b, i)))
				return 0;
		}
		return 1;
	}
	/* Strings byte for byte, true/false/null, and unequal types. */
	return a != NULL && b != NULL && json_equal((json_t *)a, (json_t *)b);
}

/* Compact JSON of v for a message, cut to HTTP_RULES_MAX_SHOWN bytes.  ASCII
 * only, so the cut never splits a UTF-8 character. */
static void
http_rules_show(const json_t *v, char *out, size_t outlen)
{
	char	*s;

	s = jsontext(v, JSONTEXT_ASCII);
	if (s == NULL)
		snprintf(out, outlen, "?");
	else if (strlen(s) > HTTP_RULES_MAX_SHOWN)
		snprintf(out, outlen, "%.*s...", HTTP_RULES_MAX_SHOWN, s);
	else
		snprintf(out, outlen, "%s", s);
	free(s);
}

int
http_rules_match(const json_t *match, const json_t *doc, const json_t *scope,
    char *err, size_t errlen)
{
	const json_t	*got;
	const char	*path;
	json_t		*want, *v;
	char		 why[400];
	char		 ws[HTTP_RULES_MAX_SHOWN + 4], gs[HTTP_RULES_MAX_SHOWN + 4];

	if (match == NULL)
		return 1;
	if ((want = render_json(match, scope, why, sizeof(why))) == NULL) {
		errbuf_set(err, errlen, "match: %s", why);
		return -1;
	}
	/* jansson keeps insertion order: "first" is the template's first. */
	/* No path there at all is no record (a search answered with an
	 * empty list), which a later lookup may find; a path there with
	 * another value is a different record. */
	json_object_foreach(want, path, v) {
		if ((*path == '\0' ? doc : render_lookup(doc, path)) != NULL)
			break;
	}
	if (path == NULL && json_object_size(want) > 0) {
		errbuf_set(err, errlen, "match '%s': no such path",
		    json_object_iter_key(json_object_iter(want)));
		json_decref(want);
		return 2;
	}
	json_object_foreach(want, path, v) {
		got = *path == '\0' ? doc : render_lookup(doc, path);
		if (got != NULL && http_rules_json_equal(got, v))
			continue;
		http_rules_show(v, ws, sizeof(ws));
		if (got != NULL)
			http_rules_show(got, gs, sizeof(gs));
		errbuf_set(err, errlen, "match '%s': expected %s, got %s",
		    path, ws, got != NULL ? gs : "nothing (no such path)");
		json_decref(want);
		return 0;
	}
	json_decref(want);
	return 1;
}

json_t *
http_rules_results(json_t *doc, const json_t *map, const json_t *set,
    const json_t *scope, const char **code, char *err, size_t errlen)
{
	json_t	*out, *add;
	char	 why[400];

	if (map != NULL) {
		out = http_rules_extract(map, doc, err, errlen);
		json_decref(doc);
		if (out == NULL) {
			*code = "extract_error";
			return NULL;
		}
	} else
		out = doc;
	if (set != NULL) {
		if (!json_is_object(out)) {
			json_decref(out);
			*code = "extract_error";
			errbuf_set(err, errlen, "the response is not a JSON "
			    "object: set cannot be merged into it");
			return NULL;
		}
		if ((add = render_json(set, scope, why, sizeof(why))) == NULL) {
			json_decref(out);
			*code = "render_error";
			errbuf_set(err, errlen, "set: %s", why);
			return NULL;
		}
		json_object_update(out, add);
		json_decref(add);
	}
	if (proto_json_depth(out) > PROTO_MAX_JSON_DEPTH) {
		json_decref(out);
		*code = "response_too_deep";
		errbuf_set(err, errlen, "response JSON is nested deeper "
		    "than %d levels", PROTO_MAX_JSON_DEPTH);
		return NULL;
	}
	return out;
}
