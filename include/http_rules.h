/*
 * http_rules.h - what the http handler decides, without a network.
 *
 * The handler checks its whole config and renders every template in it
 * before the first byte leaves (a template error fails every attempt the
 * same way, so it must fail before a side effect, not after one).  When an
 * answer arrives, http_rules_decide() says what its status means, and
 * http_rules_match() / http_rules_results() turn a response document into
 * the step's results.  Everything here is a pure function of its arguments
 * (and of the environment, for {{env.NAME}}), so it is tested without HTTP.
 *
 * handler_config keys (all but url optional):
 *   method, url, headers, body, timeout	the request
 *   results	{name: dotted path in the response} ("" = the whole body)
 *   set	{name: value} rendered and merged over the results of a
 *		plain success (2xx with no rule of its own)
 *   on_status	{"409" | "4xx": rule}; an exact code beats a class, and
 *		without a rule the classes of httpclass_status() apply
 *   conflict	old spelling of on_status {"409": <string rule>}
 * A rule is "success" | "retryable" | "permanent", or
 *   {outcome: success|retryable|permanent, set: {..} (success only)}, or
 *   {lookup: {method (GET), url, headers, body, results, match, set}}:
 *   a second request; success when it answers 2xx and every match path of
 *   its body equals the rendered expected value.
 */
#ifndef TASKERD_HTTP_RULES_H
#define TASKERD_HTTP_RULES_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

enum http_action {
	HTTP_ACT_SUCCESS,	/* results from this response */
	HTTP_ACT_RETRYABLE,
	HTTP_ACT_PERMANENT,
	HTTP_ACT_LOOKUP,	/* ask rule.lookup; its answer decides */
};

/* What one status means.  Pointers are borrowed from the config. */
struct http_rule {
	enum http_action	 action;
	const char		*key;	  /* on_status key, "conflict", or
					   * NULL: the status classes */
	const json_t		*results; /* extraction map or NULL (whole
					   * body); for LOOKUP, the lookup's */
	const json_t		*set;	  /* template merged into results,
					   * or NULL; for LOOKUP, the lookup's */
	const json_t		*lookup;  /* the lookup object (LOOKUP only) */
};

/* The step's service, as the supervisor put it in input.service.
 * Pointers are borrowed from the input. */
struct http_service {
	const char	*name;		/* NULL: the step names no service */
	const char	*base_url;	/* NULL: none configured */
	int64_t		 timeout_ms;	/* 0: none */
};

/* Check the shape of a whole handler_config: 0, or -1 with a reason naming
 * the offending key in err.  Later calls assume a config that passed. */
int	http_rules_check(const json_t *cfg, char *err, size_t errlen);

/* Render every set and match of cfg against scope and throw the results
 * away: 0, or -1 with the key and the reason in err. */
int	http_rules_render_check(const json_t *cfg, const json_t *scope,
	    char *err, size_t errlen);

/* What status means under cfg (checked): on_status exact code, then the
 * old conflict key for 409, then on_status class, then httpclass. */
void	http_rules_decide(const json_t *cfg, long status, struct http_rule *);

/* Read input.service (absent is fine): 0, or -1 with a reason in err. */
int	http_rules_service(const json_t *input, struct http_service *,
	    char *err, size_t errlen);

/* The URL to call for a rendered url: "/..." joined to the service's
 * base_url, an absolute http(s) URL as is.  A new string, or NULL with a
 * reason in err (no base_url, not http/https). */
char	*http_rules_url(const char *url, const struct http_service *,
	    char *err, size_t errlen);

/* The first of cfg's urls (its own, then each on_status lookup's) that is
 * relative, which takes a service's base_url; its key ("url",
 * "on_status.409.lookup.url") in where.  NULL when none is. */
const char *http_rules_relative_url(const json_t *cfg, char *where,
	    size_t wherelen);

/* A service's base_url: absolute http(s) with a host, and no query,
 * fragment, space or control character (a step's path goes after it).
 * 0, or -1 with the reason in err. */
int	http_rules_base_url_check(const char *url, char *err, size_t errlen);

/* The curl timeout: the service's when it is set and shorter. */
int64_t	http_rules_timeout_ms(int64_t step_ms, const struct http_service *);

/* Apply an extraction map to doc: a new object, or NULL with the missing
 * path in err. */
json_t	*http_rules_extract(const json_t *map, const json_t *doc, char *err,
	    size_t errlen);

/* Does doc hold every path of match (rendered against scope) with an equal
 * value?  1 yes; 0 no, with the first mismatch in err; 2 none of its
 * paths is there (no record: an empty list), with the first in err; -1
 * render error. */
int	http_rules_match(const json_t *match, const json_t *doc,
	    const json_t *scope, char *err, size_t errlen);

/* A step's results from a response document (its reference is consumed):
 * the map applied, or the whole document, then set rendered and merged over
 * it.  NULL with *code ("extract_error", "render_error",
 * "response_too_deep") and a reason in err. */
json_t	*http_rules_results(json_t *doc, const json_t *map,
	    const json_t *set, const json_t *scope, const char **code,
	    char *err, size_t errlen);

/* JSON equality where 1 and 1.0 are the same number; strings exact. */
int	http_rules_json_equal(const json_t *, const json_t *);

#endif
