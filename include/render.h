/*
 * render.h - fill {{...}} placeholders in handler config from step input.
 *
 * A placeholder names a path in the scope object, e.g. {{context.user.email}}
 * or {{steps.create_user_account.results.id}}; array elements by index
 * ({{context.items.0}}).  A string that is exactly one placeholder is
 * replaced by the value itself, keeping its JSON type; placeholders inside a
 * longer string are interpolated as text (strings verbatim, other values as
 * compact JSON).  In RENDER_URL mode interpolated text is percent-encoded
 * (RFC 3986 unreserved characters kept).  {{env.NAME}} reads the worker's
 * environment (for secrets in headers; never in results); one that starts
 * a URL is its base ("{{env.API}}/users"), the operator's own text, put in
 * as it is.  A path ending
 * in '?' is optional: when missing it renders as null (as no text at all
 * inside a longer string), and an object member that is exactly such a
 * placeholder is left out altogether.
 */
#ifndef TASKERD_RENDER_H
#define TASKERD_RENDER_H

#include <stddef.h>
#include <jansson.h>

enum render_mode { RENDER_TEXT, RENDER_URL };

/* Render a whole JSON value (objects and arrays recursively, strings as
 * above).  Returns a new value, or NULL with a reason in err when a
 * placeholder names a missing path or is malformed. */
json_t	*render_json(const json_t *tmpl, const json_t *scope,
	    char *err, size_t errlen);

/* The same, every missing path rendering as an optional one does (null,
 * or no text inside a longer string): for what there is of the results
 * of a task an operator resolved by hand. */
json_t	*render_json_lenient(const json_t *tmpl, const json_t *scope,
	    char *err, size_t errlen);

/* Render one string as text (mode TEXT or URL).  Returns a malloc'd string
 * or NULL with a reason in err. */
char	*render_string(const char *tmpl, const json_t *scope,
	    enum render_mode, char *err, size_t errlen);

/* Call fn with each placeholder's path in s (as written, '?' included);
 * stops at fn's first non-zero answer and returns it.  -1 with a reason in
 * err when a placeholder is malformed. */
int	 render_each_path(const char *s,
	    int (*fn)(const char *path, size_t len, void *arg), void *arg,
	    char *err, size_t errlen);

/* Look up a dotted path in scope; NULL when absent.  Borrowed reference. */
const json_t *render_lookup(const json_t *scope, const char *path);

#endif
