/*
 * render.c - fill {{...}} placeholders in handler config from step input.
 *
 * Rendering never evaluates anything: a placeholder is a dotted path looked
 * up in the scope (or env.NAME), and the text that replaces it is never
 * scanned again, so a value taken from a task's context cannot inject
 * further placeholders.  Every failure is reported with the path or offset
 * involved, because the reason ends up in the step's error_message where an
 * operator reads it.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include "errbuf.h"
#include "render.h"
#include "jsontext.h"
#include "xmalloc.h"

#define RENDER_OPEN		"{{"
#define RENDER_CLOSE		"}}"
#define RENDER_ENV_PREFIX	"env."

/* A growable string; always NUL-terminated once render_buf_put ran. */
struct render_buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};

static void
render_buf_put(struct render_buf *b, const char *s, size_t n)
{
	size_t	need;

	need = b->len + n + 1;
	if (need > b->cap) {
		if (b->cap == 0)
			b->cap = 64;
		while (b->cap < need)
			b->cap *= 2;
		b->data = xreallocarray(b->data, b->cap, 1);
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

const json_t *
render_lookup(const json_t *scope, const char *path)
{
	const json_t	*cur = scope;
	const char	*p, *dot;
	char		 key[256], *end;
	size_t		 n;
	unsigned long	 idx;

	if (scope == NULL || path == NULL || *path == '\0')
		return NULL;
	for (p = path; cur != NULL; p = dot + 1) {
		if ((dot = strchr(p, '.')) == NULL)
			dot = p + strlen(p);
		n = (size_t)(dot - p);
		/* An empty component ("a..b", "a.") names nothing. */
		if (n == 0)
			return NULL;
		/* (A key of any length: a context's may be long.) */
		if (json_is_object(cur))
			cur = json_object_getn(cur, p, n);
		else if (json_is_array(cur)) {
			if (n >= sizeof(key) || !isdigit((unsigned char)*p))
				return NULL;
			memcpy(key, p, n);
			key[n] = '\0';
			idx = strtoul(key, &end, 10);
			if (*end != '\0')
				return NULL;
			cur = json_array_get(cur, idx);
		} else
			return NULL;
		if (*dot == '\0')
			break;
	}
	return cur;
}

/*
 * Find the next placeholder in s at or after s.  Returns 1 and sets *start
 * (offset of "{{"), *end (offset just past "}}"), and the trimmed path in
 * path/pathlen; 0 when there is none; -1 with err set when malformed.
 */
static int
render_next(const char *s, size_t *start, size_t *end, const char **path,
    size_t *pathlen, char *err, size_t errlen)
{
	const char	*open, *close, *a, *b;

	if ((open = strstr(s, RENDER_OPEN)) == NULL)
		return 0;
	if ((close = strstr(open + 2, RENDER_CLOSE)) == NULL) {
		errbuf_set(err, errlen, "unterminated placeholder at offset %zu",
		    (size_t)(open - s));
		return -1;
	}
	a = open + 2;
	b = close;
	while (a < b && isspace((unsigned char)*a))
		a++;
	while (b > a && isspace((unsigned char)b[-1]))
		b--;
	if (a == b) {
		errbuf_set(err, errlen, "empty placeholder at offset %zu",
		    (size_t)(open - s));
		return -1;
	}
	/* "{{ a ? }}" would look up a key "a " that is never there. */
	if (b - a > 1 && b[-1] == '?' && isspace((unsigned char)b[-2])) {
		errbuf_set(err, errlen, "placeholder '%.*s' has a space before "
		    "its '?'", (int)(b - a > 200 ? 200 : b - a), a);
		return -1;
	}
	*start = (size_t)(open - s);
	*end = (size_t)(close + 2 - s);
	*path = a;
	*pathlen = (size_t)(b - a);
	return 1;
}

int
render_each_path(const char *s, int (*fn)(const char *, size_t, void *),
    void *arg, char *err, size_t errlen)
{
	const char	*path;
	size_t		 start, end, pathlen;
	int		 r;

	while ((r = render_next(s, &start, &end, &path, &pathlen, err,
	    errlen)) == 1) {
		if ((r = fn(path, pathlen, arg)) != 0)
			return r;
		s += end;
	}
	return r;
}

/*
 * Resolve one path.  Returns a new reference (env values are new strings,
 * scope values are deep copies so the caller may keep or change them), or
 * NULL with err set.
 */
static json_t *
render_resolve(const char *path, size_t pathlen, const json_t *scope,
    bool lenient, char *err, size_t errlen)
{
	const json_t	*v;
	const char	*env;
	char		*p;
	json_t		*out;
	size_t		 plen = strlen(RENDER_ENV_PREFIX);
	bool		 optional;

	/* "path?" is optional: a missing value is null, not an error. */
	optional = pathlen > 1 && path[pathlen - 1] == '?';
	p = xstrndup(path, optional ? pathlen - 1 : pathlen);
	optional = optional || lenient;
	if (strncmp(p, RENDER_ENV_PREFIX, plen) == 0) {
		if (p[plen] == '\0') {
			errbuf_set(err, errlen, "placeholder '%s' names no "
			    "environment variable", p);
			free(p);
			return NULL;
		}
		if ((env = getenv(p + plen)) == NULL && optional) {
			free(p);
			return json_null();
		}
		if (env == NULL) {
			errbuf_set(err, errlen, "missing environment variable "
			    "'%s'", p + plen);
			free(p);
			return NULL;
		}
		if ((out = json_string(env)) == NULL)
			errbuf_set(err, errlen, "environment variable '%s' is "
			    "not valid UTF-8", p + plen);
		free(p);
		return out;
	}
	if ((v = render_lookup(scope, p)) == NULL && optional) {
		free(p);
		return json_null();
	}
	if (v == NULL) {
		errbuf_set(err, errlen, "missing path '%s'", p);
		free(p);
		return NULL;
	}
	free(p);
	if ((out = json_deep_copy(v)) == NULL)
		errbuf_set(err, errlen, "out of memory copying value");
	return out;
}

/* Keep RFC 3986 unreserved characters, percent-encode every other byte.
 * A value of only dots is encoded too: "." or ".." alone would be a dot
 * segment, and /users/{{context.id}}/x with id ".." would name /x.  (In
 * the path, render_put_value refuses those two: a server or proxy that
 * normalizes decodes "%2E%2E" back to "..", as RFC 3986 lets it.) */
static void
render_put_url(struct render_buf *b, const char *s, size_t n)
{
	static const char	 hex[] = "0123456789ABCDEF";
	unsigned char		 c;
	char			 enc[3];
	size_t			 i;
	bool			 dots = n > 0 && strspn(s, ".") >= n;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (isalnum(c) || c == '-' || (c == '.' && !dots) ||
		    c == '_' || c == '~') {
			render_buf_put(b, (const char *)&s[i], 1);
			continue;
		}
		enc[0] = '%';
		enc[1] = hex[c >> 4];
		enc[2] = hex[c & 0x0f];
		render_buf_put(b, enc, 3);
	}
}

/* Append the text form of v: strings verbatim, anything else as JSON.
 * -1 for a value that may not go where it would. */
static int
render_put_value(struct render_buf *b, const json_t *v, enum render_mode mode,
    char *err, size_t errlen)
{
	const char	*s;
	char		*dump = NULL, real[32];
	size_t		 n;

	if (json_is_string(v)) {
		s = json_string_value(v);
		n = json_string_length(v);
	} else if (json_is_real(v)) {
		jsontext_real(json_real_value(v), real, sizeof(real));
		s = real;
		n = strlen(s);
	} else {
		dump = jsontext(v, 0);
		s = dump != NULL ? dump : "";
		n = strlen(s);
	}
	if (mode == RENDER_URL && n > 0 && n <= 2 && strspn(s, ".") >= n &&
	    strpbrk(b->data, "?#") == NULL) {
		errbuf_set(err, errlen, "a value of the URL's path is '%s', "
		    "which would name another path", s);
		free(dump);
		return -1;
	}
	if (mode == RENDER_URL)
		render_put_url(b, s, n);
	else
		render_buf_put(b, s, n);
	free(dump);
	return 0;
}

/* Is the placeholder path optional ("path?", or any when lenient) and its
 * value missing? */
static bool
render_missing_optional(const char *path, size_t pathlen,
    const json_t *scope, bool lenient)
{
	char	*p;
	bool	 absent, mark = pathlen > 1 && path[pathlen - 1] == '?';

	if (!mark && !lenient)
		return false;
	p = xstrndup(path, mark ? pathlen - 1 : pathlen);
	if (strncmp(p, RENDER_ENV_PREFIX, strlen(RENDER_ENV_PREFIX)) == 0)
		absent = getenv(p + strlen(RENDER_ENV_PREFIX)) == NULL;
	else
		absent = render_lookup(scope, p) == NULL;
	free(p);
	return absent;
}

static char *
render_text(const char *tmpl, const json_t *scope, enum render_mode mode,
    bool lenient, char *err, size_t errlen)
{
	struct render_buf	 b = { NULL, 0, 0 };
	const char		*s = tmpl, *path;
	size_t			 start, end, pathlen;
	json_t			*v;
	int			 r;

	render_buf_put(&b, "", 0);
	for (;;) {
		r = render_next(s, &start, &end, &path, &pathlen, err, errlen);
		if (r == 0)
			break;
		if (r == -1)
			goto fail;
		render_buf_put(&b, s, start);
		s += end;
		/* In text, a missing optional value is no text at all
		 * ("?ref={{context.ref?}}" is "?ref=", not "?ref=null"). */
		if (render_missing_optional(path, pathlen, scope, lenient))
			continue;
		if ((v = render_resolve(path, pathlen, scope, lenient, err,
		    errlen)) == NULL)
			goto fail;
		r = render_put_value(&b, v, b.len == 0 && strncmp(path,
		    RENDER_ENV_PREFIX, strlen(RENDER_ENV_PREFIX)) == 0 ?
		    RENDER_TEXT : mode, err, errlen);
		json_decref(v);
		if (r == -1)
			goto fail;
	}
	render_buf_put(&b, s, strlen(s));
	return b.data;
fail:
	free(b.data);
	return NULL;
}

char *
render_string(const char *tmpl, const json_t *scope, enum render_mode mode,
    char *err, size_t errlen)
{
	return render_text(tmpl, scope, mode, false, err, errlen);
}

/* Is s exactly one optional placeholder ("{{path?}}") whose value is
 * missing?  Such an object member is left out rather than sent as null. */
static bool
render_absent(const char *s, const json_t *scope)
{
	const char	*path;
	size_t		 start, end, pathlen;

	return render_next(s, &start, &end, &path, &pathlen, NULL, 0) == 1 &&
	    start == 0 && s[end] == '\0' &&
	    render_missing_optional(path, pathlen, scope, false);
}

/* A string that is exactly one placeholder becomes the value itself. */
static json_t *
render_json_string(const char *s, const json_t *scope, bool lenient,
    char *err, size_t errlen)
{
	const char	*path;
	size_t		 start, end, pathlen;
	char		*text;
	json_t		*out;
	int		 r;

	r = render_next(s, &start, &end, &path, &pathlen, err, errlen);
	if (r == -1)
		return NULL;
	if (r == 0) {
		if ((out = json_string(s)) == NULL)
			errbuf_set(err, errlen, "text is not valid UTF-8");
		return out;
	}
	if (start == 0 && s[end] == '\0')
		return render_resolve(path, pathlen, scope, lenient, err,
		    errlen);
	if ((text = render_text(s, scope, RENDER_TEXT, lenient, err,
	    errlen)) == NULL)
		return NULL;
	if ((out = json_string(text)) == NULL)
		errbuf_set(err, errlen, "rendered text is not valid UTF-8");
	free(text);
	return out;
}

static json_t *
render_value(const json_t *tmpl, const json_t *scope, bool lenient,
    char *err, size_t errlen)
{
	const char	*key;
	json_t		*out, *item, *r;
	size_t		 i;

	if (tmpl == NULL) {
		errbuf_set(err, errlen, "nothing to render");
		return NULL;
	}
	switch (json_typeof(tmpl)) {
	case JSON_STRING:
		return render_json_string(json_string_value(tmpl), scope,
		    lenient, err, errlen);
	case JSON_OBJECT:
		out = json_object();
		/* jansson's iteration macros take a non-const object. */
		json_object_foreach((json_t *)tmpl, key, item) {
			if (json_is_string(item) &&
			    render_absent(json_string_value(item), scope))
				continue;
			if ((r = render_value(item, scope, lenient, err,
			    errlen)) == NULL) {
				json_decref(out);
				return NULL;
			}
			json_object_set_new(out, key, r);
		}
		return out;
	case JSON_ARRAY:
		out = json_array();
		json_array_foreach(tmpl, i, item) {
			if ((r = render_value(item, scope, lenient, err,
			    errlen)) == NULL) {
				json_decref(out);
				return NULL;
			}
			json_array_append_new(out, r);
		}
		return out;
	default:
		return json_deep_copy(tmpl);
	}
}

json_t *
render_json(const json_t *tmpl, const json_t *scope, char *err,
    size_t errlen)
{
	return render_value(tmpl, scope, false, err, errlen);
}

json_t *
render_json_lenient(const json_t *tmpl, const json_t *scope, char *err,
    size_t errlen)
{
	return render_value(tmpl, scope, true, err, errlen);
}
