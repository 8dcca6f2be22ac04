/*
 * schema.c - the JSON Schema subset (draft 7) that task contexts are
 * validated against.
 *
 * There are two moments.  schema_check() runs once, when a template loads,
 * and is strict: a keyword we do not implement ($ref, oneOf, ...) is an
 * error, because ignoring it would quietly accept contexts the author meant
 * to refuse.  schema_validate() runs for every task and never fails; it
 * reports every violation, each with a path into the instance that an
 * operator can read ("$.user_info.email", "$.items[2]").
 *
 * Keywords are rows of one table: the name, how its value is checked at
 * load time, and how it is asserted against an instance (NULL for
 * annotations).  Adding a keyword is adding a row.
 *
 * Defaults are inserted into the instance before it is validated (a pass of
 * their own, so that const and enum higher up see the filled-in values), and
 * the inserted values are validated like any other.  A default that does
 * not satisfy its own schema would therefore fail every task that omits the
 * property, so schema_check() refuses it up front.  This is where we depart
 * from the test suite's default.json, which treats default as inert.
 *
 * Limits: schemas nest at most SCHEMA_MAX_DEPTH levels, which bounds the
 * recursion of both passes whatever the instance looks like.  Patterns are
 * POSIX extended regular expressions, searched unanchored in the C.UTF-8
 * locale ("." matches a character, as maxLength counts them, and
 * [[:alpha:]] matches "é"); escapes such as \d, which ECMA 262 understands
 * and POSIX would silently read as a literal letter, are refused.
 */
#include <arpa/inet.h>
#include <locale.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include "log.h"
#include "schema.h"
#include "xmalloc.h"

#define SCHEMA_MAX_DEPTH	64	/* nested schemas */
#define SCHEMA_MAX_EQ_DEPTH	256	/* values compared by const and enum */

/* A JSON pointer into the schema, or a "$.a[2]" path into the instance. */
struct schema_path {
	char	*buf;
	size_t	 len;
	size_t	 cap;
};

struct schema_chk {
	struct schema_path	 path;		/* "/properties/email" */
	char			*err;
	size_t			 errlen;
	char			*where;		/* the path of the problem */
	size_t			 wherelen;
};

/* A context of a million wrong items would make as many violations,
 * each with its path, and a 422 of gigabytes: the first ones say enough. */
#define SCHEMA_MAX_VIOLATIONS	100

struct schema_val {
	struct schema_path	 path;		/* "$.user_info.email" */
	json_t			*violations;
	size_t			 more;		/* past SCHEMA_MAX_VIOLATIONS */
};

struct schema_kw {
	const char	*name;
	/* Check the keyword's value; 0, or -1 after chk_fail(). */
	int		(*check)(struct schema_chk *, const json_t *, int);
	/* Assert it: (ctx, schema object, keyword value, instance, depth). */
	void		(*validate)(struct schema_val *, const json_t *,
			    const json_t *, const json_t *, int);
};

static int	chk_node(struct schema_chk *, const json_t *, int);
static void	val_node(struct schema_val *, const json_t *, const json_t *,
		    int);
static void	chk_fail(struct schema_chk *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	val_fail(struct schema_val *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* Paths. */

static void
path_put(struct schema_path *p, const char *s, size_t n)
{
	size_t	need;

	need = p->len + n + 1;
	if (need > p->cap) {
		if (p->cap == 0)
			p->cap = 64;
		while (p->cap < need)
			p->cap *= 2;
		p->buf = xreallocarray(p->buf, p->cap, 1);
	}
	memcpy(p->buf + p->len, s, n);
	p->len += n;
	p->buf[p->len] = '\0';
}

static void
path_init(struct schema_path *p, const char *root)
{
	memset(p, 0, sizeof(*p));
	path_put(p, root, strlen(root));
}

/* Undo the pushes made since path_mark() returned mark. */
static size_t
path_mark(const struct schema_path *p)
{
	return p->len;
}

static void
path_pop(struct schema_path *p, size_t mark)
{
	p->len = mark;
	p->buf[mark] = '\0';
}

/* "[2]" or "/2". */
static void
path_index(struct schema_path *p, int bracket, size_t i)
{
	char	buf[32];
	int	n;

	n = snprintf(buf, sizeof(buf), bracket ? "[%zu]" : "/%zu", i);
	path_put(p, buf, (size_t)n);
}

/* RFC 6901: "~" is "~0" and "/" is "~1" inside a token. */
static size_t
path_ptr_key(struct schema_path *p, const char *key)
{
	size_t	mark = path_mark(p);

	path_put(p, "/", 1);
	for (; *key != '\0'; key++) {
		if (*key == '~')
			path_put(p, "~0", 2);
		else if (*key == '/')
			path_put(p, "~1", 2);
		else
			path_put(p, key, 1);
	}
	return mark;
}

static size_t
path_ptr_index(struct schema_path *p, size_t i)
{
	size_t	mark = path_mark(p);

	path_index(p, 0, i);
	return mark;
}

static int
path_is_ident(const char *key)
{
	const char	*s;

	if (*key == '\0' || (*key >= '0' && *key <= '9'))
		return 0;
	for (s = key; *s != '\0'; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '_'))
			return 0;
	}
	return 1;
}

/* "$.name" for identifiers, "$['odd key']" otherwise, so the path reads
 * back unambiguously whatever the key holds. */
static size_t
path_inst_key(struct schema_path *p, const char *key)
{
	size_t	mark = path_mark(p);
	char	esc[8];

	if (path_is_ident(key)) {
		path_put(p, ".", 1);
		path_put(p, key, strlen(key));
		return mark;
	}
	path_put(p, "['", 2);
	for (; *key != '\0'; key++) {
		if (*key == '\'' || *key == '\\') {
			esc[0] = '\\';
			esc[1] = *key;
			path_put(p, esc, 2);
		} else if ((unsigned char)*key < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x",
			    (unsigned int)(unsigned char)*key);
			path_put(p, esc, 6);
		} else
			path_put(p, key, 1);
	}
	path_put(p, "']", 2);
	return mark;
}

static size_t
path_inst_index(struct schema_path *p, size_t i)
{
	size_t	mark = path_mark(p);

	path_index(p, 1, i);
	return mark;
}

/* Reporting. */

static void
chk_fail(struct schema_chk *c, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;
	size_t	 avail, head;
	int	 n;

	if (c->where != NULL && c->wherelen > 0)
		snprintf(c->where, c->wherelen, "%s", c->path.len > 0 ?
		    c->path.buf : "");
	if (c->err == NULL || c->errlen == 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	msg = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(msg, (size_t)n + 1, fmt, ap);
	va_end(ap);
	/* Elide the middle of a path too long to leave room for the reason:
	 * both ends say where, the reason says what. */
	avail = c->errlen - 1 - 2 - (size_t)n;
	if (c->errlen > (size_t)n + 3 && avail >= 16 && c->path.len > avail) {
		head = (avail - 3) / 2;
		snprintf(c->err, c->errlen, "%.*s...%s: %s", (int)head,
		    c->path.buf, c->path.buf + c->path.len - (avail - 3 - head),
		    msg);
	} else
		snprintf(c->err, c->errlen, "%s: %s",
		    c->path.len > 0 ? c->path.buf : "(root)", msg);
	free(msg);
}

static void
val_fail(struct schema_val *v, const char *fmt, ...)
{
	va_list	 ap;
	json_t	*o;
	char	*msg;
	int	 n;

	if (json_array_size(v->violations) >= SCHEMA_MAX_VIOLATIONS) {
		v->more++;
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	msg = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(msg, (size_t)n + 1, fmt, ap);
	va_end(ap);
	o = json_pack("{s:s, s:s}", "path", v->path.buf, "message", msg);
	if (o == NULL || json_array_append_new(v->violations, o) == -1)
		fatalx("schema: cannot record a violation");
	free(msg);
}

/* Numbers.  jansson keeps integers and reals apart; JSON Schema does not,
 * so every comparison goes through here and is exact across the two. */

#define SCHEMA_TWO63	9223372036854775808.0

static int
real_is_integral(double d)
{
	/* Every double this large is an integer; below, the cast is exact. */
	if (d >= SCHEMA_TWO63 || d <= -SCHEMA_TWO63)
		return 1;
	return d == (double)(json_int_t)d;
}

static int
num_is_integral(const json_t *n)
{
	return json_is_integer(n) ||
	    (json_is_real(n) && real_is_integral(json_real_value(n)));
}

static int
int_real_cmp(json_int_t i, double d)
{
	json_int_t	t;

	if (d >= SCHEMA_TWO63)
		return -1;
	if (d < -SCHEMA_TWO63)
		return 1;
	t = (json_int_t)d;		/* truncates toward zero, exactly */
	if (i != t)
		return i < t ? -1 : 1;
	if (d > (double)t)
		return -1;
	return d < (double)t ? 1 : 0;
}

static int
num_cmp(const json_t *a, const json_t *b)
{
	json_int_t	x, y;
	double		dx, dy;

	if (json_is_integer(a) && json_is_integer(b)) {
		x = json_integer_value(a);
		y = json_integer_value(b);
		return x < y ? -1 : x > y;
	}
	if (json_is_real(a) && json_is_real(b)) {
		dx = json_real_value(a);
		dy = json_real_value(b);
		return dx < dy ? -1 : dx > dy;
	}
	if (json_is_integer(a))
		return int_real_cmp(json_integer_value(a), json_real_value(b));
	return -int_real_cmp(json_integer_value(b), json_real_value(a));
}

/* Shortest text that reads back as the same number. */
static void
num_str(const json_t *n, char *buf, size_t len)
{
	double	d;
	int	prec;

	if (json_is_integer(n)) {
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT,
		    json_integer_value(n));
		return;
	}
	d = json_number_value(n);
	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, len, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			return;
	}
	snprintf(buf, len, "%.17g", d);
}

/* A count keyword's value (checked to be a non-negative integer). */
static size_t
num_count(const json_t *n)
{
	double	d;

	if (json_is_integer(n))
		return json_integer_value(n) < 0 ? 0 :
		    (size_t)json_integer_value(n);
	d = json_number_value(n);
	if (d <= 0)
		return 0;
	if (d >= (double)SIZE_MAX)
		return SIZE_MAX;
	return (size_t)d;
}

/* JSON equality: numbers by value (1 == 1.0), objects by keys whatever
 * their order.  Beyond SCHEMA_MAX_EQ_DEPTH values count as different. */
static int
json_same(const json_t *a, const json_t *b, int depth)
{
	const json_t	*va;
	const char	*key;
	size_t		 i;

	if (depth > SCHEMA_MAX_EQ_DEPTH)
		return 0;
	if (json_is_number(a) && json_is_number(b))
		return num_cmp(a, b) == 0;
	if (json_typeof(a) != json_typeof(b))
		return 0;
	switch (json_typeof(a)) {
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		    memcmp(json_string_value(a), json_string_value(b),
		    json_string_length(a)) == 0;
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return 0;
		for (i = 0; i < json_array_size(a); i++)
			if (!json_same(json_array_get(a, i),
			    json_array_get(b, i), depth + 1))
				return 0;
		return 1;
	case JSON_OBJECT:
		if (json_object_size(a) != json_object_size(b))
			return 0;
		json_object_foreach((json_t *)a, key, va) {
			const json_t *vb = json_object_get(b, key);

			/* Same size, other keys: not the same object. */
			if (vb == NULL || !json_same(va, vb, depth + 1))
				return 0;
		}
		return 1;
	default:	/* true, false, null: the type says it all */
		return 1;
	}
}

static size_t
utf8_len(const char *s, size_t n)
{
	size_t	i, cp = 0;

	/* jansson holds valid UTF-8: count the bytes that start a code point */
	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			cp++;
	return cp;
}

/* Types. */

static const char *const schema_types[] = { "null", "boolean", "object",
    "array", "number", "string", "integer" };

static int
type_known(const char *t)
{
	size_t	i;

	for (i = 0; i < sizeof(schema_types) / sizeof(schema_types[0]); i++)
		if (strcmp(t, schema_types[i]) == 0)
			return 1;
	return 0;
}

static int
type_matches(const char *t, const json_t *inst)
{
	switch (json_typeof(inst)) {
	case JSON_NULL:
		return strcmp(t, "null") == 0;
	case JSON_TRUE:
	case JSON_FALSE:
		return strcmp(t, "boolean") == 0;
	case JSON_OBJECT:
		return strcmp(t, "object") == 0;
	case JSON_ARRAY:
		return strcmp(t, "array") == 0;
	case JSON_STRING:
		return strcmp(t, "string") == 0;
	case JSON_INTEGER:
	case JSON_REAL:
		/* draft 7: 1.0 is an integer */
		return strcmp(t, "number") == 0 ||
		    (strcmp(t, "integer") == 0 && num_is_integral(inst));
	}
	return 0;
}

static const char *
type_name(const json_t *inst)
{
	switch (json_typeof(inst)) {
	case JSON_NULL:
		return "null";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "number";
	}
	return "?";
}

/* Formats: only these three are asserted; any other name is accepted and
 * ignored, as draft 7 allows. */

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_hex(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* n ASCII digits at s, as a number; -1 if any is not a digit. */
static int
fmt_digits(const char *s, int n)
{
	int	i, v = 0;

	for (i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static int
fmt_mdays(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return days[m - 1];
}

/* RFC 3339 full-date: 1985-04-12, a day the month has. */
static int
fmt_date(const char *s, size_t len)
{
	int	y, mo, d;

	if (len != 10 || (y = fmt_digits(s, 4)) < 0 || s[4] != '-' ||
	    (mo = fmt_digits(s + 5, 2)) < 0 || s[7] != '-' ||
	    (d = fmt_digits(s + 8, 2)) < 0)
		return 0;
	return mo >= 1 && mo <= 12 && d >= 1 && d <= fmt_mdays(y, mo);
}

/* RFC 3339 full-time: 23:20:50.52Z, z in either case, offsets +hh:mm or
 * -hh:mm, and a leap second only when it is 23:59:60 UTC. */
static int
fmt_time(const char *s, size_t len)
{
	int	 h, mi, sec, oh = 0, om = 0, sign = 0, utc;
	size_t	 i;

	if (len < 9 || (h = fmt_digits(s, 2)) < 0 || s[2] != ':' ||
	    (mi = fmt_digits(s + 3, 2)) < 0 || s[5] != ':' ||
	    (sec = fmt_digits(s + 6, 2)) < 0)
		return 0;
	i = 8;
	if (s[i] == '.') {
		if (++i >= len || !is_digit(s[i]))
			return 0;
		while (i < len && is_digit(s[i]))
			i++;
	}
	if (i < len && (s[i] == 'Z' || s[i] == 'z'))
		i++;
	else if (i < len && (s[i] == '+' || s[i] == '-')) {
		sign = s[i] == '+' ? 1 : -1;
		if (len - i < 6 || (oh = fmt_digits(s + i + 1, 2)) < 0 ||
		    s[i + 3] != ':' || (om = fmt_digits(s + i + 4, 2)) < 0)
			return 0;
		i += 6;
	} else
		return 0;
	if (i != len || h > 23 || mi > 59 || sec > 60 || oh > 23 || om > 59)
		return 0;
	if (sec == 60) {
		utc = (h * 60 + mi - sign * (oh * 60 + om)) % 1440;
		if (utc < 0)
			utc += 1440;
		if (utc != 23 * 60 + 59)
			return 0;
	}
	return 1;
}

/* RFC 3339 date-time: 1985-04-12T23:20:50.52Z, t in either case. */
static int
fmt_date_time(const char *s, size_t len)
{
	return len > 11 && (s[10] == 'T' || s[10] == 't') &&
	    fmt_date(s, 10) && fmt_time(s + 11, len - 11);
}

/* Dotted-quad IPv4 and RFC 4291 IPv6 text, as inet_pton reads them (no
 * leading zeros in IPv4's parts, no zone). */
static int
fmt_ip(int af, const char *s, size_t len)
{
	unsigned char	buf[sizeof(struct in6_addr)];

	return strlen(s) == len && inet_pton(af, s, buf) == 1;
}

/* 8-4-4-4-12 hexadecimal digits (RFC 4122's text, any version). */
static int
fmt_uuid(const char *s, size_t len)
{
	size_t	i;

	if (len != 36)
		return 0;
	for (i = 0; i < len; i++)
		if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' :
		    !is_hex(s[i]))
			return 0;
	return 1;
}

static int
fmt_atext(int c)
{
	return is_alpha(c) || is_digit(c) ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Host name labels: letters, digits, inner hyphens, 1-63 each, dotted. */
static int
fmt_hostname(const char *s, size_t len)
{
	size_t	i, label = 0;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
		} else if (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '-') {
			if ((label == 0 && s[i] == '-') || ++label > 63)
				return 0;
		} else
			return 0;
	}
	return label > 0 && s[len - 1] != '-';
}

/* local@domain: a dot-atom local part (RFC 5322, no quoted strings) and a
 * host name, dotted or not. */
static int
fmt_email(const char *s, size_t len)
{
	const char	*at;
	size_t		 i, local;

	if ((at = memchr(s, '@', len)) == NULL)
		return 0;
	local = (size_t)(at - s);
	if (local == 0 || local > 64 || s[0] == '.' || s[local - 1] == '.')
		return 0;
	for (i = 0; i < local; i++) {
		if (s[i] == '.') {
			if (s[i + 1] == '.')
				return 0;
		} else if (!fmt_atext(s[i]))
			return 0;
	}
	return fmt_hostname(at + 1, len - local - 1);
}

static int
uri_unreserved(int c)
{
	return is_alpha(c) || is_digit(c) || c == '-' || c == '.' ||
	    c == '_' || c == '~';
}

static int
uri_subdelim(int c)
{
	return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

/* Skip characters of s[*i..end) that are unreserved, sub-delims,
 * percent-encoded, or in extra; 0 on a malformed %XX. */
static int
uri_span(const char *s, size_t *i, size_t end, const char *extra)
{
	while (*i < end) {
		if (s[*i] == '%') {
			if (end - *i < 3 || !is_hex(s[*i + 1]) ||
			    !is_hex(s[*i + 2]))
				return 0;
			*i += 3;
		} else if (uri_unreserved(s[*i]) || uri_subdelim(s[*i]) ||
		    (s[*i] != '\0' && strchr(extra, s[*i]) != NULL))
			(*i)++;
		else
			break;
	}
	return 1;
}

/* authority = [ userinfo "@" ] host [ ":" port ], host a reg-name or an
 * IP literal in brackets. */
static int
fmt_authority(const char *s, size_t len)
{
	const char	*at;
	size_t		 i = 0;

	if ((at = memchr(s, '@', len)) != NULL) {
		if (!uri_span(s, &i, (size_t)(at - s), ":") ||
		    i != (size_t)(at - s))
			return 0;
		i++;
	}
	if (i < len && s[i] == '[') {
		for (i++; i < len && s[i] != ']'; i++)
			if (!uri_unreserved(s[i]) && !uri_subdelim(s[i]) &&
			    s[i] != ':')
				return 0;
		if (i++ >= len)
			return 0;
	} else if (!uri_span(s, &i, len, ""))
		return 0;
	if (i < len && s[i] == ':')
		for (i++; i < len && is_digit(s[i]); i++)
			;
	return i == len;
}

/* RFC 3986 URI (absolute, fragment allowed): a scheme is required. */
static int
fmt_uri(const char *s, size_t len)
{
	size_t	 i, a;

	if (len == 0 || !is_alpha(s[0]))
		return 0;
	for (i = 1; i < len && (is_alpha(s[i]) || is_digit(s[i]) ||
	    s[i] == '+' || s[i] == '-' || s[i] == '.'); i++)
		;
	if (i >= len || s[i] != ':')
		return 0;
	i++;
	if (len - i >= 2 && s[i] == '/' && s[i + 1] == '/') {
		i += 2;
		for (a = i; a < len && s[a] != '/' && s[a] != '?' &&
		    s[a] != '#'; a++)
			;
		if (!fmt_authority(s + i, a - i))
			return 0;
		i = a;
	}
	if (!uri_span(s, &i, len, ":@/"))
		return 0;
	if (i < len && s[i] == '?' && (i++, !uri_span(s, &i, len, ":@/?")))
		return 0;
	if (i < len && s[i] == '#' && (i++, !uri_span(s, &i, len, ":@/?")))
		return 0;
	return i == len;
}

/* Keyword checks (load time). */

static int
chk_any(struct schema_chk *c, const json_t *v, int depth)
{
	(void)c;
	(void)v;
	(void)depth;
	return 0;
}

static int
chk_string(struct schema_chk *c, const json_t *v, int depth)
{
	(void)depth;
	if (!json_is_string(v)) {
		chk_fail(c, "must be a string");
		return -1;
	}
	return 0;
}

static int
chk_array(struct schema_chk *c, const json_t *v, int depth)
{
	(void)depth;
	if (!json_is_array(v)) {
		chk_fail(c, "must be an array");
		return -1;
	}
	return 0;
}

static int
chk_number(struct schema_chk *c, const json_t *v, int depth)
{
	(void)depth;
	if (!json_is_number(v)) {
		chk_fail(c, "must be a number");
		return -1;
	}
	return 0;
}

static int
chk_count(struct schema_chk *c, const json_t *v, int depth)
{
	(void)depth;
	if (!json_is_number(v) || !num_is_integral(v) ||
	    json_number_value(v) < 0) {
		chk_fail(c, "must be a non-negative integer");
		return -1;
	}
	return 0;
}

static int
chk_type(struct schema_chk *c, const json_t *v, int depth)
{
	const json_t	*t;
	size_t		 i, j, mark;

	(void)depth;
	if (json_is_string(v)) {
		if (!type_known(json_string_value(v))) {
			chk_fail(c, "unknown type \"%s\"",
			    json_string_value(v));
			return -1;
		}
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) == 0) {
		chk_fail(c, "must be a type name or a non-empty array of them");
		return -1;
	}
	json_array_foreach(v, i, t) {
		mark = path_ptr_index(&c->path, i);
		if (!json_is_string(t) || !type_known(json_string_value(t))) {
			chk_fail(c, "must be one of null, boolean, object, "
			    "array, number, string, integer");
			return -1;
		}
		for (j = 0; j < i; j++)
			if (json_same(json_array_get(v, j), t, 0)) {
				chk_fail(c, "type \"%s\" is listed twice",
				    json_string_value(t));
				return -1;
			}
		path_pop(&c->path, mark);
	}
	return 0;
}

/* required: unique property names. */
static int
chk_names(struct schema_chk *c, const json_t *v, int depth)
{
	const json_t	*n;
	size_t		 i, j, mark;

	(void)depth;
	if (!json_is_array(v)) {
		chk_fail(c, "must be an array of property names");
		return -1;
	}
	json_array_foreach(v, i, n) {
		mark = path_ptr_index(&c->path, i);
		if (!json_is_string(n)) {
			chk_fail(c, "must be a string");
			return -1;
		}
		for (j = 0; j < i; j++)
			if (json_same(json_array_get(v, j), n, 0)) {
				chk_fail(c, "\"%s\" is listed twice",
				    json_string_value(n));
				return -1;
			}
		path_pop(&c->path, mark);
	}
	return 0;
}

static int
chk_enum(struct schema_chk *c, const json_t *v, int depth)
{
	(void)depth;
	/* An empty enum admits nothing: certainly a mistake. */
	if (!json_is_array(v) || json_array_size(v) == 0) {
		chk_fail(c, "must be a non-empty array");
		return -1;
	}
	return 0;
}

/* Patterns match characters, not bytes: compiled and run in C.UTF-8
 * (glibc has it built in), or in the C locale where it is missing. */
static locale_t	pattern_loc = (locale_t)0;

static void
pattern_locale_init(void)
{
	pattern_loc = newlocale(LC_CTYPE_MASK | LC_COLLATE_MASK, "C.UTF-8",
	    (locale_t)0);
	if (pattern_loc == (locale_t)0) {
		log_warnx("no C.UTF-8 locale: schema patterns match bytes");
		pattern_loc = LC_GLOBAL_LOCALE;
	}
}

static locale_t
pattern_locale(void)
{
	static pthread_once_t	once = PTHREAD_ONCE_INIT;

	pthread_once(&once, pattern_locale_init);
	return pattern_loc;
}

static bool
beyond_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

static int
pattern_compile(regex_t *re, const char *text)
{
	locale_t	old;
	int		rc;

	old = uselocale(pattern_locale());
	rc = regcomp(re, text, REG_EXTENDED | REG_NOSUB);
	uselocale(old);
	return rc;
}

/* GNU regcomp reads an unknown escape such as \d as the letter itself, so an
 * ECMA 262 pattern would load and then match the wrong strings.  Refuse
 * every backslash before a letter or digit instead: \w, \s and back
 * references are not portable POSIX either. */
#define SCHEMA_MAX_PATTERN	1024
#define SCHEMA_MAX_REPEAT	100	/* bound of {m,n} */
#define SCHEMA_MAX_QNEST	4	/* repeated groups within each other */

/* The ']' that closes the bracket expression opening at q, or the end of
 * the string.  A ']' first in it ("[]a]", "[^]a]") is one of its
 * characters, and so is each one inside "[:alpha:]", "[.-.]" or "[=e=]";
 * nothing in it ('(', ')', '\\') means what it means outside. */
static const char *
bracket_end(const char *q)
{
	const char	*e;
	char		 close[3] = { 0, ']', '\0' };

	q++;
	if (*q == '^')
		q++;
	if (*q == ']')
		q++;
	for (; *q != '\0' && *q != ']'; q++) {
		if (*q == '[' && q[1] != '\0' && strchr(":.=", q[1]) != NULL) {
			close[0] = q[1];
			if ((e = strstr(q + 2, close)) == NULL)
				return q + strlen(q);
			q = e + 1;
		}
	}
	return q;
}

/*
 * glibc's regcomp expands repetition while compiling: stacked quantifiers
 * (a++++...) double its tree each time and large or nested {m,n} bounds
 * multiply it, so a pattern of a few dozen bytes can take gigabytes.  Such
 * patterns mean nothing a context check needs: refuse a quantifier right
 * after another one, bounds over SCHEMA_MAX_REPEAT, a bounded repetition
 * applied to a group that already holds one, and repeated groups nested
 * more than SCHEMA_MAX_QNEST deep (((a+)+)+... doubles at each level).
 */
static int
pattern_too_costly(const char *p, char *why, size_t whylen)
{
	const char	*q;
	bool		 after_quant = false;
	int		 depth = 0, i, inner;
	bool		 bounded[64] = { false };
	int		 qnest[64] = { 0 };	/* repeated groups inside */
	long		 n;
	char		*end;

	for (q = p; *q != '\0'; q++) {
		switch (*q) {
		case '\\':
			if (q[1] != '\0')
				q++;
			after_quant = false;
			continue;
		case '[':
			if (*(q = bracket_end(q)) == '\0')
				return 0;	/* regcomp says why */
			after_quant = false;
			continue;
		case '(':
			if (depth + 1 >= (int)(sizeof(bounded) /
			    sizeof(bounded[0]))) {
				snprintf(why, whylen, "pattern nests groups "
				    "too deeply");
				return 1;
			}
			bounded[++depth] = false;
			qnest[depth] = 0;
			after_quant = false;
			continue;
		case ')':
			if (depth > 0)
				depth--;
			inner = qnest[depth + 1] +
			    (strchr("*+?{", q[1]) != NULL && q[1] != '\0');
			if (inner > SCHEMA_MAX_QNEST) {
				snprintf(why, whylen, "pattern nests repeated "
				    "groups more than %d deep",
				    SCHEMA_MAX_QNEST);
				return 1;
			}
			if (inner > qnest[depth])
				qnest[depth] = inner;
			/* The group's bounded repetitions belong to the
			 * enclosing group too. */
			if (bounded[depth + 1])
				bounded[depth] = true;
			if (q[1] == '{' && bounded[depth + 1]) {
				snprintf(why, whylen, "pattern repeats a group "
				    "that holds a bounded repetition");
				return 1;
			}
			after_quant = false;
			continue;
		case '*':
		case '+':
		case '?':
		case '{':
			if (after_quant) {
				snprintf(why, whylen, "pattern stacks "
				    "quantifiers (as in a++)");
				return 1;
			}
			if (*q == '{') {
				for (i = 0; i < 2; i++) {
					n = strtol(q + 1, &end, 10);
					if (end != q + 1 && n > SCHEMA_MAX_REPEAT) {
						snprintf(why, whylen, "pattern "
						    "repeats more than %d times",
						    SCHEMA_MAX_REPEAT);
						return 1;
					}
					if (*end != ',')
						break;
					q = end;
				}
				if ((q = strchr(q, '}')) == NULL)
					return 0;	/* regcomp says why */
				bounded[depth] = true;
			}
			after_quant = true;
			continue;
		default:
			after_quant = false;
			continue;
		}
	}
	return 0;
}

static int
chk_pattern(struct schema_chk *c, const json_t *v, int depth)
{
	const char	*p;
	regex_t		 re;
	char		 why[128];
	int		 rc;

	(void)depth;
	if (!json_is_string(v)) {
		chk_fail(c, "must be a string");
		return -1;
	}
	p = json_string_value(v);
	if (strlen(p) != json_string_length(v)) {
		chk_fail(c, "pattern contains a NUL character");
		return -1;
	}
	if (strlen(p) > SCHEMA_MAX_PATTERN) {
		chk_fail(c, "pattern longer than %d characters",
		    SCHEMA_MAX_PATTERN);
		return -1;
	}
	if (pattern_too_costly(p, why, sizeof(why))) {
		chk_fail(c, "%s", why);
		return -1;
	}
	for (; *p != '\0'; p++) {
		if (*p != '\\')
			continue;
		if (is_alpha(p[1]) || is_digit(p[1])) {
			chk_fail(c, "escape \\%c is not POSIX extended "
			    "regular expression syntax (write a bracket "
			    "expression such as [0-9] or [[:space:]])", p[1]);
			return -1;
		}
		if (p[1] != '\0')
			p++;
	}
	if ((rc = pattern_compile(&re, json_string_value(v))) != 0) {
		regerror(rc, &re, why, sizeof(why));
		/* glibc takes a range only between ASCII ends. */
		chk_fail(c, "invalid regular expression: %s%s", why,
		    (rc == REG_ECOLLATE || rc == REG_ERANGE) &&
		    beyond_ascii(json_string_value(v)) ? " (a range with an "
		    "end past ASCII: write its characters out, [àáâ])" : "");
		regfree(&re);
		return -1;
	}
	regfree(&re);
	return 0;
}

static int
chk_subschema(struct schema_chk *c, const json_t *v, int depth)
{
	return chk_node(c, v, depth + 1);
}

static int
chk_schema_map(struct schema_chk *c, const json_t *v, int depth)
{
	const json_t	*sub;
	const char	*key;
	size_t		 mark;

	if (!json_is_object(v)) {
		chk_fail(c, "must be an object of schemas");
		return -1;
	}
	json_object_foreach((json_t *)v, key, sub) {
		mark = path_ptr_key(&c->path, key);
		if (chk_node(c, sub, depth + 1) == -1)
			return -1;
		path_pop(&c->path, mark);
	}
	return 0;
}

static int
chk_items(struct schema_chk *c, const json_t *v, int depth)
{
	const json_t	*sub;
	size_t		 i, mark;

	if (!json_is_array(v))
		return chk_node(c, v, depth + 1);
	json_array_foreach(v, i, sub) {
		mark = path_ptr_index(&c->path, i);
		if (chk_node(c, sub, depth + 1) == -1)
			return -1;
		path_pop(&c->path, mark);
	}
	return 0;
}

/* Keyword assertions (per instance).  Each applies to its own type of
 * instance only: minLength says nothing about a number. */

static void
val_type(struct schema_val *v, const json_t *schema, const json_t *kw,
    const json_t *inst, int depth)
{
	struct schema_path	 names;
	const json_t		*t;
	size_t			 i;

	(void)schema;
	(void)depth;
	if (json_is_string(kw)) {
		if (!type_matches(json_string_value(kw), inst))
			val_fail(v, "expected %s, got %s",
			    json_string_value(kw), type_name(inst));
		return;
	}
	if (!json_is_array(kw))
		return;
	json_array_foreach(kw, i, t) {
		if (json_is_string(t) &&
		    type_matches(json_string_value(t), inst))
			return;
	}
	path_init(&names, "");
	json_array_foreach(kw, i, t) {
		if (!json_is_string(t))
			continue;
		if (names.len > 0)
			path_put(&names, " or ", 4);
		path_put(&names, json_string_value(t),
		    strlen(json_string_value(t)));
	}
	val_fail(v, "expected %s, got %s", names.buf, type_name(inst));
	free(names.buf);
}

static void
val_enum(struct schema_val *v, const json_t *schema, const json_t *kw,
    const json_t *inst, int depth)
{
	const json_t	*e;
	size_t		 i;

	(void)schema;
	(void)depth;
	if (!json_is_array(kw))
		return;
	json_array_foreach(kw, i, e) {
		if (json_same(e, inst, 0))
			return;
	}
	val_fail(v, "value is not one of the allowed values");
}

static void
val_const(struct schema_val *v, const json_t *schema, const json_t *kw,
    const json_t *inst, int depth)
{
	(void)schema;
	(void)depth;
	if (!json_same(kw, inst, 0))
		val_fail(v, "value is not the constant the schema requires");
}

static void
val_min_length(struct schema_val *v, const json_t *schema, const json_t *kw,
    const json_t *inst, int depth)
{
	size_t	n;

	(void)schema;
	(void)depth;
	if (!json_is_string(inst) || !json_is_number(kw))
		return;
	n = num_count(kw);
	if (utf8_len(json_string_value(inst), json_string_length(inst)) < n)
		val_fail(v, "string is shorter than %zu characters", n);
}

static void
val_max_length(struct schema_val *v, const json_t *schema, const json_t *kw,
    const json_t *inst, int depth)
{
	size_t	n;

	(void)schema;
	(void)depth;
	if (!json_is_string(inst) || !json_is_number(kw))
		return;
	n = num_count(kw);
	if (utf8_len(json_string_value(inst), json_string_length(inst)) > n)
		val_fail(v, "string is longer than %zu characters", n);
}

/*
 * Compiled patterns, by their text.  Compiling one costs 5-30 us, matching
 * it well under one, and every task of a template is validated against the
 * same few.  Keyed by the text, not the schema node: a reload frees nodes
 * whose addresses may come back holding another pattern.  Past
 * PATTERN_CACHE_MAX patterns (reloads that keep changing them) the cache
 * is emptied and fills again.  Each process validates on one thread.
 */
#define PATTERN_CACHE_MAX	128

static struct {
	char	*text;
	regex_t	 re;
} pattern_cache[PATTERN_CACHE_MAX];
static size_t	pattern_cached;

static const regex_t *
pattern_compiled(const char *text)
{
	char	*wrapped;
	size_t	 i;
	int	 rc;

	for (i = 0; i < pattern_cached; i++)
		if (strcmp(pattern_cache[i].text, text) == 0)
			return &pattern_cache[i].re;
	if (pattern_cached == PATTERN_CACHE_MAX) {
		for (i = 0; i < pattern_cached; i++) {
			regfree(&pattern_cache[i].re);
			free(pattern_cache[i].text);
		}
		pattern_cached = 0;
	}
	/* A pattern finds a match anywhere; regexec looks for one from
	 * each position in turn, which costs the square of the length on a
	 * string that does not match ("[0-9]+-[0-9]+" against 40,000
	 * digits: 10 s of the supervisor's loop).  "^.*(p)" matches the
	 * same strings in one pass.  (Back references, whose numbers the
	 * group would shift, are refused at load; the text alone must
	 * compile, or "a)(b" would.) */
	i = pattern_cached;
	if (pattern_compile(&pattern_cache[i].re, text) != 0)
		return NULL;
	regfree(&pattern_cache[i].re);
	xasprintf(&wrapped, "^.*(%s)", text);
	rc = pattern_compile(&pattern_cache[i].re, wrapped);
	free(wrapped);
	if (rc != 0)
		return NULL;
	pattern_cache[i].text = xstrdup(text);
	pattern_cached++;
	return &pattern_cache[i].re;
}

static void
val_pattern(struct schema_val *v, const json_t *schema, const json_t *kw,
    const json_t *inst, int depth)
{
	regmatch_t	 m;
	const regex_t	*re;
	locale_t	 old;
	int		 rc, flags = 0;

	(void)schema;
	(void)depth;
	if (!json_is_string(inst) || !json_is_string(kw))
		return;
	if ((re = pattern_compiled(json_string_value(kw))) == NULL) {
		val_fail(v, "schema pattern does not compile");
		return;
	}
	m.rm_so = 0;
	m.rm_eo = (regoff_t)json_string_length(inst);
#ifdef REG_STARTEND
	flags = REG_STARTEND;	/* the whole string, NUL characters included */
#endif
	old = uselocale(pattern_locale());
	rc = regexec(re, json_string_value(inst), 1, &m, flags);
	uselocale(old);
	if (rc != 0)
		val_fail(v, "string does not match the pattern %s",
		    json_string_value(kw));
}

static void
val_format(struct schema_val *v, const json_t *schema, const json_t *kw,
    const json_t *inst, int depth)
{
	const char	*f, *s;
	size_t		 n;

	(void)schema;
	(void)depth;
	if (!json_is_string(inst) || !json_is_string(kw))
		return;
	f = json_string_value(kw);
	s = json_string_value(inst);
	n = json_string_length(inst);
	if (strcmp(f, "email") == 0 && !fmt_email(s, n))
		val_fail(v, "not a valid email address");
	else if (strcmp(f, "uri") == 0 && !fmt_uri(s, n))
		val_fail(v, "not a valid absolute URI (RFC 3986)");
	else if (strcmp(f, "date-time") == 0 && !fmt_date_time(s, n))
		val_fail(v, "not a valid RFC 3339 date-time");
	else if (strcmp(f, "date") == 0 && !fmt_date(s, n))
		val_fail(v, "not a valid RFC 3339 full-date (YYYY-MM-DD)");
	else if (strcmp(f, "time") == 0 && !fmt_time(s, n))
		val_fail(v, "not a valid RFC 3339 full-time");
	else if (strcmp(f, "hostname") == 0 && !fmt_hostname(s, n))
		val_fail(v, "not a valid host name");
	else if (strcmp(f, "ipv4") == 0 && !fmt_ip(AF_INET, s, n))
		val_fail(v, "not a valid IPv4 address");
	else if (strcmp(f, "ipv6") == 0 && !fmt_ip(AF_INET6, s, n))
		val_fail(v, "not a valid IPv6 address");
	else if (strcmp(f, "uuid") == 0 && !fmt_uuid(s, n))
		val_fail(v, "not a valid UUID");
}

/* minimum and friends: which comparison results are violations. */
static void
val_bound(struct schema_val *v, const json_t *kw, const json_t *inst,
    int bad, int bad_too, const char *what)
{
	char	num[40];
	int	cmp;

	if (!json_is_number(inst) || !json_is_number(kw))
		return;
	cmp = num_cmp(inst, kw);
	if (cmp == bad || cmp == bad_too) {
		num_str(kw, num, sizeof(num));
		val_fail(v, "value must be %s %s", what, num);
	}
}

static void
val_minimum(struct schema_val *v, const json_t *schema, const json_t *kw,
    const json_t *inst, int depth)
{
	(void)schema;
	(void)depth;
	val_bound(v, kw, inst, -1, -1, "at least");
}

static void
val_maximum(struct schema_val *v, const json_t *schema, const json_t *kw,
    const json_t *inst, int depth)
{
	(void)schema;
	(void)depth;
	val_bound(v, kw, inst, 1, 1, "at most");
}

static void
val_excl_minimum(struct schema_val *v, const json_t *schema,
    const json_t *kw, const json_t *inst, int depth)
{
	(void)schema;
	(void)depth;
	val_bound(v, kw, inst, -1, 0, "greater than");
}

static void
val_excl_maximum(struct schema_val *v, const json_t *schema,
    const json_t *kw, const json_t *inst, int depth)
{
	(void)schema;
	(void)depth;
	val_bound(v, kw, inst, 1, 0, "less than");
}

static void
val_min_items(struct schema_val *v, const json_t *schema, const json_t *kw,
    const json_t *inst, int depth)
{
	size_t	n;

	(void)schema;
	(void)depth;
	if (!json_is_array(inst) || !json_is_number(kw))
		return;
	if (json_array_size(inst) < (n = num_count(kw)))
		val_fail(v, "array has fewer than %zu items", n);
}

static void
val_max_items(struct schema_val *v, const json_t *schema, const json_t *kw,
    const json_t *inst, int depth)
{
	size_t	n;

	(void)schema;
	(void)depth;
	if (!json_is_array(inst) || !json_is_number(kw))
		return;
	if (json_array_size(inst) > (n = num_count(kw)))
		val_fail(v, "array has more than %zu items", n);
}

static void
val_items(struct schema_val *v, const json_t *schema, const json_t *kw,
    const json_t *inst, int depth)
{
	const json_t	*item;
	size_t		 i, mark;

	(void)schema;
	if (!json_is_array(inst))
		return;
	json_array_foreach(inst, i, item) {
		/* The array form constrains a prefix; the rest is free
		 * (additionalItems is not supported). */
		if (json_is_array(kw) && i >= json_array_size(kw))
			break;
		mark = path_inst_index(&v->path, i);
		val_node(v, json_is_array(kw) ? json_array_get(kw, i) : kw,
		    item, depth + 1);
		path_pop(&v->path, mark);
	}
}

static void
val_required(struct schema_val *v, const json_t *schema, const json_t *kw,
    const json_t *inst, int depth)
{
	const json_t	*n;
	size_t		 i, mark;

	(void)schema;
	(void)depth;
	if (!json_is_object(inst) || !json_is_array(kw))
		return;
	json_array_foreach(kw, i, n) {
		if (!json_is_string(n) ||
		    json_object_get(inst, json_string_value(n)) != NULL)
			continue;
		mark = path_inst_key(&v->path, json_string_value(n));
		val_fail(v, "required property is missing");
		path_pop(&v->path, mark);
	}
}

static void
val_properties(struct schema_val *v, const json_t *schema, const json_t *kw,
    const json_t *inst, int depth)
{
	const json_t	*sub, *child;
	const char	*key;
	size_t		 mark;

	(void)schema;
	if (!json_is_object(inst) || !json_is_object(kw))
		return;
	json_object_foreach((json_t *)kw, key, sub) {
		if ((child = json_object_get(inst, key)) == NULL)
			continue;
		mark = path_inst_key(&v->path, key);
		val_node(v, sub, child, depth + 1);
		path_pop(&v->path, mark);
	}
}

static void
val_additional(struct schema_val *v, const json_t *schema, const json_t *kw,
    const json_t *inst, int depth)
{
	const json_t	*props, *child;
	const char	*key;
	size_t		 mark;

	if (!json_is_object(inst) || json_is_true(kw))
		return;
	props = json_object_get(schema, "properties");
	json_object_foreach((json_t *)inst, key, child) {
		if (json_is_object(props) && json_object_get(props, key))
			continue;
		mark = path_inst_key(&v->path, key);
		if (json_is_false(kw))
			val_fail(v, "property is not allowed");
		else
			val_node(v, kw, child, depth + 1);
		path_pop(&v->path, mark);
	}
}

/* The keywords.  Assertions run in this order, so violations of one
 * instance come out in a stable order whatever the schema's key order. */
static const struct schema_kw schema_kws[] = {
	{ "type",			chk_type,	val_type },
	{ "enum",			chk_enum,	val_enum },
	{ "const",			chk_any,	val_const },
	{ "minLength",			chk_count,	val_min_length },
	{ "maxLength",			chk_count,	val_max_length },
	{ "pattern",			chk_pattern,	val_pattern },
	{ "format",			chk_string,	val_format },
	{ "minimum",			chk_number,	val_minimum },
	{ "maximum",			chk_number,	val_maximum },
	{ "exclusiveMinimum",		chk_number,	val_excl_minimum },
	{ "exclusiveMaximum",		chk_number,	val_excl_maximum },
	{ "minItems",			chk_count,	val_min_items },
	{ "maxItems",			chk_count,	val_max_items },
	{ "items",			chk_items,	val_items },
	{ "required",			chk_names,	val_required },
	{ "properties",			chk_schema_map,	val_properties },
	{ "additionalProperties",	chk_subschema,	val_additional },
	/* Annotations.  default is inserted by schema_fill() and checked
	 * against its schema by chk_node(). */
	{ "default",			chk_any,	NULL },
	{ "title",			chk_string,	NULL },
	{ "description",		chk_string,	NULL },
	{ "$comment",			chk_string,	NULL },
	{ "$schema",			chk_string,	NULL },
	{ "$id",			chk_string,	NULL },
	{ "examples",			chk_array,	NULL },
};

static const struct schema_kw *
kw_find(const char *name)
{
	size_t	i;

	for (i = 0; i < sizeof(schema_kws) / sizeof(schema_kws[0]); i++)
		if (strcmp(schema_kws[i].name, name) == 0)
			return &schema_kws[i];
	return NULL;
}

/* The walks. */

static int
chk_node(struct schema_chk *c, const json_t *schema, int depth)
{
	const struct schema_kw	*kw;
	const json_t		*val, *def, *first;
	json_t			*copy, *viol;
	const char		*key;
	size_t			 mark;
	int			 rc = 0;

	if (json_is_boolean(schema))
		return 0;
	if (!json_is_object(schema)) {
		chk_fail(c, "a schema must be an object or a boolean");
		return -1;
	}
	if (depth > SCHEMA_MAX_DEPTH) {
		chk_fail(c, "schemas nest more than %d levels deep",
		    SCHEMA_MAX_DEPTH);
		return -1;
	}
	json_object_foreach((json_t *)schema, key, val) {
		mark = path_ptr_key(&c->path, key);
		if ((kw = kw_find(key)) == NULL) {
			chk_fail(c, "unsupported keyword");
			return -1;
		}
		if (kw->check(c, val, depth) == -1)
			return -1;
		path_pop(&c->path, mark);
	}

	/* Only now is the node known good enough to validate against. */
	if ((def = json_object_get(schema, "default")) == NULL)
		return 0;
	if ((copy = json_deep_copy(def)) == NULL)
		fatalx("schema: cannot copy a default");
	viol = schema_validate(schema, copy);
	if (json_array_size(viol) > 0) {
		first = json_array_get(viol, 0);
		path_ptr_key(&c->path, "default");
		chk_fail(c, "the default does not satisfy its schema (%s: %s)",
		    json_string_value(json_object_get(first, "path")),
		    json_string_value(json_object_get(first, "message")));
		rc = -1;
	}
	json_decref(viol);
	json_decref(copy);
	return rc;
}

static void
val_node(struct schema_val *v, const json_t *schema, const json_t *inst,
    int depth)
{
	const json_t	*kwv;
	size_t		 i;

	if (schema == NULL || json_is_true(schema))
		return;
	if (json_is_false(schema)) {
		val_fail(v, "no value is allowed here");
		return;
	}
	if (!json_is_object(schema)) {
		val_fail(v, "invalid schema: not an object or a boolean");
		return;
	}
	if (depth > SCHEMA_MAX_DEPTH) {
		val_fail(v, "schemas nest too deep to validate");
		return;
	}
	for (i = 0; i < sizeof(schema_kws) / sizeof(schema_kws[0]); i++) {
		if (schema_kws[i].validate == NULL ||
		    (kwv = json_object_get(schema, schema_kws[i].name)) == NULL)
			continue;
		schema_kws[i].validate(v, schema, kwv, inst, depth);
	}
}

/* Insert defaults for absent properties, then descend into properties and
 * items; an inserted default is descended into too, so its own nested
 * defaults fill in. */
static void
schema_fill(const json_t *schema, json_t *inst, int depth)
{
	const json_t	*props, *items, *sub, *def;
	json_t		*child, *copy;
	const char	*key;
	size_t		 i;

	if (!json_is_object(schema) || depth > SCHEMA_MAX_DEPTH)
		return;
	props = json_object_get(schema, "properties");
	if (json_is_object(inst) && json_is_object(props)) {
		json_object_foreach((json_t *)props, key, sub) {
			child = json_object_get(inst, key);
			if (child == NULL && json_is_object(sub) &&
			    (def = json_object_get(sub, "default")) != NULL) {
				/* The instance owns a copy: the schema's value
				 * must not change when the context does. */
				if ((copy = json_deep_copy(def)) == NULL ||
				    json_object_set_new(inst, key, copy) == -1)
					fatalx("schema: cannot insert default");
				child = copy;
			}
			if (child != NULL)
				schema_fill(sub, child, depth + 1);
		}
	}
	items = json_object_get(schema, "items");
	if (json_is_array(inst) && items != NULL) {
		json_array_foreach(inst, i, child) {
			if (!json_is_array(items))
				schema_fill(items, child, depth + 1);
			else if (i < json_array_size(items))
				schema_fill(json_array_get(items, i), child,
				    depth + 1);
		}
	}
}

int
schema_check(const json_t *schema, char *err, size_t errlen)
{
	return schema_check_at(schema, err, errlen, NULL, 0);
}

int
schema_check_at(const json_t *schema, char *err, size_t errlen, char *where,
    size_t wherelen)
{
	struct schema_chk	c;
	int			rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (where != NULL && wherelen > 0)
		where[0] = '\0';
	memset(&c, 0, sizeof(c));
	path_init(&c.path, "");
	c.err = err;
	c.errlen = errlen;
	c.where = where;
	c.wherelen = wherelen;
	if (schema == NULL) {
		chk_fail(&c, "no schema");
		rc = -1;
	} else
		rc = chk_node(&c, schema, 0);
	free(c.path.buf);
	return rc;
}

/* A NULL schema constrains nothing, like true. */
json_t *
schema_validate(const json_t *schema, json_t *instance)
{
	struct schema_val	v;
	char			more[64];

	memset(&v, 0, sizeof(v));
	if ((v.violations = json_array()) == NULL)
		fatalx("schema: cannot allocate the violations");
	path_init(&v.path, "$");
	if (instance == NULL)
		val_fail(&v, "no value");
	else {
		schema_fill(schema, instance, 0);
		val_node(&v, schema, instance, 0);
	}
	if (v.more > 0) {
		snprintf(more, sizeof(more), "%zu more violation%s not "
		    "listed", v.more, v.more == 1 ? "" : "s");
		if (json_array_append_new(v.violations, json_pack("{s:s, s:s}",
		    "path", "$", "message", more)) == -1)
			fatalx("schema: cannot record a violation");
	}
	free(v.path.buf);
	return v.violations;
}
