/*
 * jsontext.c - see jsontext.h.
 *
 * Written out here, rather than with json_dumps(), for one reason: jansson
 * writes a real with 17 significant digits, so a context's 19.99 came back
 * from the API, went into the database and out to services as
 * 19.989999999999998 - the same double, but not what the client sent, and
 * a different amount to a service that reads decimals exactly.
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"
#include "log.h"
#include "xmalloc.h"

struct jt_buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};

static void
jt_put(struct jt_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		if (b->cap == 0)
			b->cap = 64;
		while (b->len + n + 1 > b->cap)
			b->cap *= 2;
		b->data = xreallocarray(b->data, b->cap, 1);
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static locale_t	jt_c;

static void
jt_c_init(void)
{
	if ((jt_c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0)) ==
	    (locale_t)0)
		fatal("newlocale");
}

static void
jt_real(double d, char *buf, size_t len)
{
	const char	*e;
	int		 prec;
	bool		 fixed;

	snprintf(buf, len, "%.17g", d);
	fixed = strchr(buf, 'e') == NULL;
	/*
	 * The fewest digits that read back as d.  For a normal double, if p <
	 * 15 digits do, %.15g writes those same p digits: they are within
	 * half an ulp of d (under 1.2e-16 of it), nearer than half a unit of
	 * the 15th digit (at least 5e-16 of it), so rounding to 15 digits
	 * lands on them and %g drops the zeros.  So start at 15: one or three
	 * tries instead of up to seventeen, which showed in every batch of
	 * outcomes.  A subnormal's ulp is relatively larger; it tries all.
	 */
	for (prec = fpclassify(d) == FP_NORMAL ? 15 : 1; prec < 17; prec++) {
		snprintf(buf, len, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	if (prec == 17)
		snprintf(buf, len, "%.17g", d);
	/* Fewer digits must not turn 100.0 into 1e+02: where jansson wrote
	 * the number out, so do we, with as many digits as that takes. */
	if (fixed && (e = strchr(buf, 'e')) != NULL)
		snprintf(buf, len, "%.*g", atoi(e + 1) + 1, d);
	/* Still a real when read back: 1.0, not 1. */
	if (strpbrk(buf, ".eEn") == NULL && strlen(buf) + 2 < len)
		strcat(buf, ".0");
}

void
jsontext_real(double d, char *buf, size_t len)
{
	static pthread_once_t	once = PTHREAD_ONCE_INIT;
	locale_t		old;

	/* JSON's decimal point whatever the program's locale says (tasker-ctl
	 * follows the user's: a comma in many). */
	pthread_once(&once, jt_c_init);
	old = uselocale(jt_c);
	jt_real(d, buf, len);
	uselocale(old);
}

/* The code point of the UTF-8 sequence at s (jansson's strings are valid
 * UTF-8); *n gets its length. */
static unsigned int
jt_utf8(const unsigned char *s, size_t *n)
{
	if (s[0] < 0xe0) {
		*n = 2;
		return ((s[0] & 0x1fu) << 6) | (s[1] & 0x3fu);
	}
	if (s[0] < 0xf0) {
		*n = 3;
		return ((s[0] & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) |
		    (s[2] & 0x3fu);
	}
	*n = 4;
	return ((s[0] & 0x07u) << 18) | ((s[1] & 0x3fu) << 12) |
	    ((s[2] & 0x3fu) << 6) | (s[3] & 0x3fu);
}

static void
jt_string(struct jt_buf *b, const char *str, size_t len, int flags)
{
	const unsigned char	*s = (const unsigned char *)str;
	size_t			 i, start, n;
	unsigned int		 cp;
	char			 esc[16];

	jt_put(b, "\"", 1);
	for (i = start = 0; i < len; ) {
		if (s[i] >= 0x20 && s[i] != '"' && s[i] != '\\' &&
		    (s[i] < 0x80 || !(flags & JSONTEXT_ASCII))) {
			i++;
			continue;
		}
		jt_put(b, str + start, i - start);
		n = 1;
		switch (s[i]) {
		case '"':  jt_put(b, "\\\"", 2); break;
		case '\\': jt_put(b, "\\\\", 2); break;
		case '\b': jt_put(b, "\\b", 2); break;
		case '\f': jt_put(b, "\\f", 2); break;
		case '\n': jt_put(b, "\\n", 2); break;
		case '\r': jt_put(b, "\\r", 2); break;
		case '\t': jt_put(b, "\\t", 2); break;
		default:
			cp = s[i] < 0x80 ? s[i] : jt_utf8(s + i, &n);
			if (cp < 0x10000)
				snprintf(esc, sizeof(esc), "\\u%04X", cp);
			else {
				cp -= 0x10000;
				snprintf(esc, sizeof(esc), "\\u%04X\\u%04X",
				    0xd800 | (cp >> 10), 0xdc00 | (cp & 0x3ff));
			}
			jt_put(b, esc, strlen(esc));
			break;
		}
		i += n;
		start = i;
	}
	jt_put(b, str + start, i - start);
	jt_put(b, "\"", 1);
}

static int
jt_keycmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void	jt_value(struct jt_buf *, const json_t *, int);

/* An object's members in byte order of their keys: the same text whatever
 * order they were added in. */
static void
jt_sorted_object(struct jt_buf *b, const json_t *v, int flags)
{
	const char	**keys, *key;
	json_t		 *item;
	size_t		  i, n = 0;

	keys = xreallocarray(NULL, json_object_size(v) + 1, sizeof(*keys));
	json_object_foreach((json_t *)v, key, item)
		keys[n++] = key;
	qsort(keys, n, sizeof(*keys), jt_keycmp);
	jt_put(b, "{", 1);
	for (i = 0; i < n; i++) {
		if (i > 0)
			jt_put(b, ",", 1);
		jt_string(b, keys[i], strlen(keys[i]), flags);
		jt_put(b, ":", 1);
		jt_value(b, json_object_get(v, keys[i]), flags);
	}
	jt_put(b, "}", 1);
	free(keys);
}

static void
jt_value(struct jt_buf *b, const json_t *v, int flags)
{
	const char	*key;
	json_t		*item;
	size_t		 i;
	char		 num[40];
	int		 first = 1;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (flags & JSONTEXT_SORTED) {
			jt_sorted_object(b, v, flags);
			break;
		}
		jt_put(b, "{", 1);
		json_object_foreach((json_t *)v, key, item) {
			if (!first)
				jt_put(b, ",", 1);
			first = 0;
			jt_string(b, key, strlen(key), flags);
			jt_put(b, ":", 1);
			jt_value(b, item, flags);
		}
		jt_put(b, "}", 1);
		break;
	case JSON_ARRAY:
		jt_put(b, "[", 1);
		json_array_foreach(v, i, item) {
			if (i > 0)
				jt_put(b, ",", 1);
			jt_value(b, item, flags);
		}
		jt_put(b, "]", 1);
		break;
	case JSON_STRING:
		jt_string(b, json_string_value(v), json_string_length(v),
		    flags);
		break;
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		jt_put(b, num, strlen(num));
		break;
	case JSON_REAL:
		jsontext_real(json_real_value(v), num, sizeof(num));
		jt_put(b, num, strlen(num));
		break;
	case JSON_TRUE:
		jt_put(b, "true", 4);
		break;
	case JSON_FALSE:
		jt_put(b, "false", 5);
		break;
	case JSON_NULL:
		jt_put(b, "null", 4);
		break;
	}
}

char *
jsontext(const json_t *v, int flags)
{
	struct jt_buf	b = { NULL, 0, 0 };

	if (v == NULL)
		return NULL;
	jt_value(&b, v, flags);
	return b.data;
}

/*
 * Reading back.  A real of 2^63 or more (1e19, sent by a client or a
 * handler) goes into jsonb as a numeric, and PostgreSQL prints it as the
 * integer 10000000000000000000, which jansson refuses: "too big integer".
 * Such an integer, and only such, is read as the real it was written as.
 *
 * The walk over text: the number of such integers, and with out, the text
 * again with "e0" after each (which makes it a real), or with each quoted
 * (a string of its digits).
 */
static size_t
jt_big_ints(const char *text, size_t len, struct jt_buf *out, bool quote)
{
	const char	*p, *end = text + len;
	char		*num;
	size_t		 n, found = 0;
	bool		 in_string = false, big;

	for (p = text; p < end; p += n) {
		n = 1;
		if (in_string) {
			if (*p == '\\' && p + 1 < end)
				n = 2;
			else if (*p == '"')
				in_string = false;
		} else if (*p == '"')
			in_string = true;
		else if (*p == '-' || (*p >= '0' && *p <= '9')) {
			for (n = 1; p + n < end &&
			    strchr("-+.eE0123456789", p[n]) != NULL &&
			    p[n] != '\0'; n++)
				;
			/* An integer (no fraction, no exponent) too big for
			 * json_int_t. */
			big = false;
			if (n > 18 && memchr(p, '.', n) == NULL &&
			    memchr(p, 'e', n) == NULL &&
			    memchr(p, 'E', n) == NULL) {
				num = xstrndup(p, n);
				errno = 0;
				strtoll(num, NULL, 10);
				big = errno == ERANGE;
				free(num);
			}
			found += big;
			if (out != NULL) {
				if (big && quote)
					jt_put(out, "\"", 1);
				jt_put(out, p, n);
				if (big && quote)
					jt_put(out, "\"", 1);
				else if (big)
					jt_put(out, "e0", 2);
			}
			continue;
		}
		if (out != NULL)
			jt_put(out, p, n);
	}
	return found;
}

char *
jsontext_big_ints_as_reals(const char *text, size_t len)
{
	struct jt_buf	b = { NULL, 0, 0 };

	if (jt_big_ints(text, len, NULL, false) == 0)
		return NULL;
	jt_big_ints(text, len, &b, false);
	return b.data;
}

static json_t *
jt_load(const char *text, size_t len, size_t flags, json_error_t *err,
    bool quote)
{
	struct jt_buf	 b = { NULL, 0, 0 };
	json_error_t	 e;
	json_t		*v;

	if ((v = json_loadb(text, len, flags, &e)) != NULL ||
	    json_error_code(&e) != json_error_numeric_overflow) {
		if (err != NULL)
			*err = e;
		return v;
	}
	jt_big_ints(text, len, &b, quote);
	v = json_loadb(b.data != NULL ? b.data : "", b.len, flags, &e);
	free(b.data);
	if (err != NULL)
		*err = e;
	return v;
}

json_t *
jsontext_load(const char *text, size_t len, size_t flags, json_error_t *err)
{
	return jt_load(text, len, flags, err, false);
}

json_t *
jsontext_load_exact(const char *text, size_t len, size_t flags,
    json_error_t *err)
{
	return jt_load(text, len, flags, err, true);
}
