/*
 * output.c - what tasker-ctl prints for people: colours, aligned tables,
 * times and durations.
 *
 * Output must be reproducible (golden tests compare it byte for byte), so
 * nothing here reads the clock except out_now(), which TASKER_CTL_NOW can
 * pin, and times are printed in UTC whatever the local zone.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "ctl.h"
#include "jsontext.h"
#include "xmalloc.h"

/* ---- colours ------------------------------------------------------------ */

static const struct {
	const char	*state;
	const char	*color;
} state_colors[] = {
	{ "complete",		OUT_GREEN },
	{ "resolved_manually",	OUT_GREEN },
	{ "in_progress",	OUT_CYAN },
	{ "enqueued",		OUT_CYAN },
	{ "waiting_for_retry",	OUT_YELLOW },
	{ "error",		OUT_RED },
	{ "cancelled",		OUT_MAGENTA },
	{ "pending",		OUT_DIM },
	/* workers */
	{ "busy",		OUT_CYAN },
	{ "idle",		OUT_GREEN },
	{ "starting",		OUT_YELLOW },
	/* breakers */
	{ "closed",		OUT_GREEN },
	{ "half_open",		OUT_YELLOW },
	{ "open",		OUT_RED },
	/* nodes */
	{ "alive",		OUT_GREEN },
	{ "lost",		OUT_RED },
	/* health */
	{ "ok",			OUT_GREEN },
	{ "ready",		OUT_GREEN },
	{ "not_ready",		OUT_RED },
};

const char *
out_state_color(const char *state)
{
	size_t	i;

	if (state == NULL)
		return NULL;
	for (i = 0; i < sizeof(state_colors) / sizeof(state_colors[0]); i++)
		if (strcmp(state_colors[i].state, state) == 0)
			return state_colors[i].color;
	return NULL;
}

void
out_colored(FILE *f, const char *c, const char *s)
{
	if (ctl.color && c != NULL)
		fputs(c, f);
	out_text(f, s);
	if (ctl.color && c != NULL)
		fputs(OUT_RESET, f);
}

/* Is s at a control character (C0, DEL, or C1 in UTF-8)?  Its length. */
static size_t
out_control(const unsigned char *s)
{
	if (*s < 0x20 || *s == 0x7f)
		return 1;
	if (*s == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f)
		return 2;
	return 0;
}

/* Text from the server (a reason, an error, a name any client chose) as
 * text: a control character, an escape sequence's ESC among them, would
 * act on the operator's terminal; each is shown as a space. */
void
out_text(FILE *f, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 n;

	for (; *p != '\0'; p += n) {
		if ((n = out_control(p)) > 0)
			fputc(' ', f);
		else {
			fputc(*p, f);
			n = 1;
		}
	}
}

void
out_clean(char *s)
{
	unsigned char	*p = (unsigned char *)s, *o = p;
	size_t		 n;

	for (; *p != '\0'; p += n) {
		if ((n = out_control(p)) > 0)
			*o++ = ' ';
		else {
			*o++ = *p;
			n = 1;
		}
	}
	*o = '\0';
}

/* ---- tables ------------------------------------------------------------- */

struct out_cell {
	char		*text;
	const char	*color;
};

struct out_table {
	int		 ncols;
	int		 nrows;		/* the header is row 0 */
	int		 cap;
	struct out_cell	*cells;		/* nrows * ncols */
};

size_t
out_width(const char *s)
{
	size_t	w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

struct out_table *
out_table_new(int ncols, const char *const *headers)
{
	struct out_table	*t = xcalloc(1, sizeof(*t));
	int			 i;

	t->ncols = ncols;
	out_table_row(t);
	for (i = 0; i < ncols; i++)
		out_table_set(t, i, NULL, "%s", headers[i]);
	return t;
}

void
out_table_row(struct out_table *t)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = xreallocarray(t->cells, (size_t)t->cap *
		    (size_t)t->ncols, sizeof(*t->cells));
	}
	memset(&t->cells[t->nrows * t->ncols], 0,
	    (size_t)t->ncols * sizeof(*t->cells));
	t->nrows++;
}

void
out_table_set(struct out_table *t, int col, const char *color,
    const char *fmt, ...)
{
	struct out_cell	*c = &t->cells[(t->nrows - 1) * t->ncols + col];
	va_list		 ap;

	free(c->text);
	va_start(ap, fmt);
	if (vasprintf(&c->text, fmt, ap) == -1) {
		ctl_warnx("out of memory");
		exit(CTL_EXIT_API);
	}
	va_end(ap);
	/* One cell, one line: a message with a newline would break the
	 * columns (and an escape sequence the terminal). */
	out_clean(c->text);
	c->color = color;
}

void
out_table_print(struct out_table *t, FILE *f)
{
	size_t	*w = xcalloc((size_t)t->ncols, sizeof(*w)), n;
	int	 r, c, last;

	for (r = 0; r < t->nrows; r++)
		for (c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c].text;

			if (s != NULL && (n = out_width(s)) > w[c])
				w[c] = n;
		}
	for (r = 0; r < t->nrows; r++) {
		struct out_cell *row = &t->cells[r * t->ncols];

		/* Trailing empty cells are not padded for. */
		for (last = t->ncols - 1; last > 0; last--)
			if (row[last].text != NULL && row[last].text[0] != '\0')
				break;
		for (c = 0; c <= last; c++) {
			const char *s = row[c].text ? row[c].text : "";

			if (r == 0 && ctl.color)
				fprintf(f, "%s%s%s", OUT_BOLD, s, OUT_RESET);
			else
				out_colored(f, row[c].color, s);
			if (c < last)
				fprintf(f, "%*s", (int)(w[c] - out_width(s) + 2),
				    "");
		}
		fputc('\n', f);
	}
	for (r = 0; r < t->nrows * t->ncols; r++)
		free(t->cells[r].text);
	free(t->cells);
	free(t);
	free(w);
}

/* ---- times -------------------------------------------------------------- */

/* "2026-11-26T01:01:16.60342+00:00", "...Z", " " for "T", no fraction. */
int64_t
out_parse_time(const char *s)
{
	struct tm	 tm;
	int64_t		 us = 0, scale = 100000, off = 0;
	int		 y, mo, d, h, mi, sec, oh, om, k, sign, n = 0;
	time_t		 t;
	const char	*p;

	if (s == NULL || sscanf(s, "%4d-%2d-%2d%*1[T ]%2d:%2d:%2d%n", &y, &mo,
	    &d, &h, &mi, &sec, &n) != 6 || n == 0)
		return -1;
	p = s + n;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++) {
			us += (*p - '0') * scale;
			scale /= 10;
		}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		om = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) == 2 && k == 5)
			p += 1 + k;
		else if (sscanf(p + 1, "%2d%n", &oh, &k) == 1 && k == 2)
			p += 1 + k;
		else
			return -1;
		off = sign * (oh * 3600 + om * 60);
	}
	if (*p != '\0')
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	return ((int64_t)t - off) * 1000000 + us;
}

int64_t
out_json_time(const json_t *obj, const char *key)
{
	const json_t	*v = json_object_get(obj, key);

	return json_is_string(v) ? out_parse_time(json_string_value(v)) : -1;
}

int64_t
out_now(void)
{
	const char	*pin = getenv("TASKER_CTL_NOW");
	struct timeval	 tv;
	int64_t		 t;

	if (pin != NULL && (t = out_parse_time(pin)) != -1)
		return t;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

void
out_fmt_time(char *buf, size_t len, int64_t us, bool ms)
{
	time_t		 t;
	struct tm	 tm;
	char		 day[32];

	if (us < 0) {
		snprintf(buf, len, "-");
		return;
	}
	t = (time_t)(us / 1000000);
	gmtime_r(&t, &tm);
	strftime(day, sizeof(day), "%Y-%m-%d %H:%M:%S", &tm);
	if (ms)
		snprintf(buf, len, "%s.%03dZ", day, (int)(us % 1000000 / 1000));
	else
		snprintf(buf, len, "%sZ", day);
}

/* Integer arithmetic only: a test can compute the same text. */
void
out_fmt_duration(char *buf, size_t len, int64_t ms)
{
	long long	v = ms < 0 ? 0 : ms;

	if (v < 1000)
		snprintf(buf, len, "%lldms", v);
	else if (v < 60000 && v % 1000 / 100 == 0)
		snprintf(buf, len, "%llds", v / 1000);
	else if (v < 60000)
		snprintf(buf, len, "%lld.%llds", v / 1000, v % 1000 / 100);
	else if (v < 3600000)
		snprintf(buf, len, "%lldm%02llds", v / 60000, v % 60000 / 1000);
	else if (v < 86400000)
		snprintf(buf, len, "%lldh%02lldm", v / 3600000,
		    v % 3600000 / 60000);
	else
		snprintf(buf, len, "%lldd%02lldh", v / 86400000,
		    v % 86400000 / 3600000);
}

/* ---- JSON as text ----------------------------------------------------- */

const char *
out_str(const json_t *obj, const char *key, const char *dflt)
{
	const json_t	*v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : dflt;
}

char *
out_compact(const json_t *v)
{
	char	*s;

	if (v == NULL || json_is_null(v))
		return xstrdup("-");
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	s = jsontext(v, 0);
	return s ? s : xstrdup("?");
}

/* A string that reads unambiguously without quotes. */
static bool
plain_word(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (isspace((unsigned char)*s) || *s == '"' || *s == '=' ||
		    (unsigned char)*s < 0x20)
			return false;
	return true;
}

/* Append " key=value" pairs of v to *out; an object's members become
 * key.member=value, as logfmt spells nesting. */
static void
kv_append(char **out, const char *key, const json_t *v)
{
	const char	*k;
	json_t		*m;
	char		*val, *next, *sub;

	if (json_is_object(v) && json_object_size(v) > 0) {
		json_object_foreach((json_t *)v, k, m) {
			xasprintf(&sub, "%s.%s", key, k);
			kv_append(out, sub, m);
			free(sub);
		}
		return;
	}
	if (json_is_string(v) && plain_word(json_string_value(v)))
		val = xstrdup(json_string_value(v));
	else if (json_is_real(v)) {
		/* The shortest text that is the same double, in the C
		 * locale: 1234567.891 as it is, not 1.23457e+06 (nor
		 * 1,23457e+06 under a comma locale). */
		val = xmalloc(32);
		jsontext_real(json_real_value(v), val, 32);
	} else
		val = jsontext(v, 0);
	xasprintf(&next, "%s%s%s=%s", *out, **out ? " " : "", key,
	    val ? val : "?");
	free(val);
	free(*out);
	*out = next;
}

char *
out_kv(const json_t *obj)
{
	const char	*key;
	json_t		*v;
	char		*out = xstrdup("");

	if (!json_is_object(obj))
		return out;
	json_object_foreach((json_t *)obj, key, v)
		kv_append(&out, key, v);
	return out;
}

void
out_print_json(const json_t *v)
{
	char	*s = jsontext(v, 0);

	printf("%s\n", s != NULL ? s : "null");
	free(s);
}
