/*
 * yamltree.c - YAML files as a checked tree, and typed key tables over it.
 *
 * A buffer is parsed twice.  The first pass reads libyaml events only to find
 * what the document API would hide: an alias is resolved into a second
 * reference to the anchored node, so by the time yaml_parser_load() returns,
 * the alias's own line is gone.  The events also give syntax errors, tags,
 * extra documents and the nesting depth (which bounds every recursive walk
 * below).  The second pass builds the node tree that callers walk.  Files are
 * small; clarity of errors is worth the second parse.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xmalloc.h"
#include "log.h"
#include "backoff.h"
#include "duration.h"
#include "yamltree.h"

struct yt_doc {
	yaml_document_t	 doc;
	char		*name;
	char		*text;		/* what it was read from */
	size_t		 textlen;
	char		*err;		/* the caller's buffer */
	size_t		 errlen;
};

static void
yt_verr(char *err, size_t errlen, const char *name, int line,
    const char *fmt, va_list ap)
{
	int	n;

	if (err == NULL || errlen == 0)
		return;
	if (line > 0)
		n = snprintf(err, errlen, "%s:%d: ", name, line);
	else
		n = snprintf(err, errlen, "%s: ", name);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
}

static void __attribute__((format(printf, 5, 6)))
yt_err(char *err, size_t errlen, const char *name, int line,
    const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	yt_verr(err, errlen, name, line, fmt, ap);
	va_end(ap);
}

int
yt_errorl(struct yt_doc *doc, int line, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	yt_verr(doc->err, doc->errlen, doc->name, line, fmt, ap);
	va_end(ap);
	return -1;
}

int
yt_error(struct yt_doc *doc, const yaml_node_t *node, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	yt_verr(doc->err, doc->errlen, doc->name, yt_line(node), fmt, ap);
	va_end(ap);
	return -1;
}

int
yt_line(const yaml_node_t *node)
{
	return node == NULL ? 1 : (int)node->start_mark.line + 1;
}

/* libyaml's own words, at the line of the problem. */
static void
yt_parser_error(const yaml_parser_t *p, const char *name, const char *buf,
    size_t len, char *err, size_t errlen)
{
	size_t	i, off;
	int	line;

	if (p->error == YAML_MEMORY_ERROR)
		fatalx("yaml: out of memory");
	if (p->error == YAML_READER_ERROR) {
		/* The reader reports a byte offset, not a mark. */
		off = p->problem_offset < len ? p->problem_offset : len;
		for (line = 1, i = 0; i < off; i++)
			if (buf[i] == '\n')
				line++;
		yt_err(err, errlen, name, line, "%s", p->problem != NULL ?
		    p->problem : "cannot read input");
		return;
	}
	line = (int)p->problem_mark.line + 1;
	if (p->context != NULL)
		yt_err(err, errlen, name, line, "%s (%s at line %d)",
		    p->problem, p->context, (int)p->context_mark.line + 1);
	else
		yt_err(err, errlen, name, line, "%s", p->problem != NULL ?
		    p->problem : "syntax error");
}

/* First pass: events only.  See the comment at the top of the file. */
static int
yt_prescan(const char *name, const char *buf, size_t len, char *err,
    size_t errlen)
{
	yaml_parser_t	 p;
	yaml_event_t	 ev;
	const char	*anchor, *tag;
	int		 depth = 0, ndocs = 0, line, rc = 1;

	if (!yaml_parser_initialize(&p))
		fatalx("yaml: cannot initialise parser");
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	while (rc > 0) {
		if (!yaml_parser_parse(&p, &ev)) {
			yt_parser_error(&p, name, buf, len, err, errlen);
			rc = -1;
			break;
		}
		line = (int)ev.start_mark.line + 1;
		anchor = tag = NULL;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			rc = 0;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++ndocs > 1) {
				yt_err(err, errlen, name, line,
				    "only one YAML document per file");
				rc = -1;
			}
			break;
		case YAML_ALIAS_EVENT:
			yt_err(err, errlen, name, line,
			    "aliases (*%s) are not supported",
			    (const char *)ev.data.alias.anchor);
			rc = -1;
			break;
		case YAML_SCALAR_EVENT:
			anchor = (const char *)ev.data.scalar.anchor;
			tag = (const char *)ev.data.scalar.tag;
			break;
		case YAML_SEQUENCE_START_EVENT:
			anchor = (const char *)ev.data.sequence_start.anchor;
			tag = (const char *)ev.data.sequence_start.tag;
			depth++;
			break;
		case YAML_MAPPING_START_EVENT:
			anchor = (const char *)ev.data.mapping_start.anchor;
			tag = (const char *)ev.data.mapping_start.tag;
			depth++;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		default:
			break;
		}
		if (rc > 0 && anchor != NULL) {
			yt_err(err, errlen, name, line,
			    "anchors (&%s) are not supported", anchor);
			rc = -1;
		} else if (rc > 0 && tag != NULL) {
			yt_err(err, errlen, name, line,
			    "tags (%s) are not supported", tag);
			rc = -1;
		} else if (rc > 0 && depth > YT_MAX_DEPTH) {
			yt_err(err, errlen, name, line,
			    "nested deeper than %d levels", YT_MAX_DEPTH);
			rc = -1;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	return rc;
}

static bool
yt_plain(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE &&
	    n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

struct yt_keyref {
	const char	*text;
	size_t		 idx;		/* in the mapping */
	yaml_node_t	*node;
};

static int
yt_keyref_cmp(const void *a, const void *b)
{
	const struct yt_keyref	*x = a, *y = b;
	int			 c = strcmp(x->text, y->text);

	if (c != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* A key of map n that repeats an earlier one: the repeat that comes first
 * in the mapping, its first occurrence in *first; NULL if none.  Sorted,
 * not pairwise: a reload runs this on the event loop, and a mapping of
 * 30,000 keys took seconds pairwise. */
static yaml_node_t *
yt_duplicate_key(struct yt_doc *doc, yaml_node_t *n, yaml_node_t **first)
{
	struct yt_keyref	*keys;
	yaml_node_t		*dup = NULL;
	size_t			 len = yt_len(n), i, run = 0, best = SIZE_MAX;

	if (len < 2)
		return NULL;
	keys = xcalloc(len, sizeof(*keys));
	for (i = 0; i < len; i++) {
		keys[i].node = yt_key(doc, n, i);
		keys[i].text = yt_text(keys[i].node);
		keys[i].idx = i;
	}
	qsort(keys, len, sizeof(*keys), yt_keyref_cmp);
	for (i = 1; i < len; i++) {
		if (strcmp(keys[i].text, keys[i - 1].text) != 0) {
			run = i;
			continue;
		}
		if (keys[i].idx < best) {
			best = keys[i].idx;
			dup = keys[i].node;
			*first = keys[run].node;
		}
	}
	free(keys);
	return dup;
}

/* Second pass's check: what libyaml accepts but a key table cannot use. */
static int
yt_check(struct yt_doc *doc)
{
	yaml_node_t	*n, *k, *first;
	size_t		 i;

	for (n = doc->doc.nodes.start; n < doc->doc.nodes.top; n++) {
		if (n->type == YAML_SCALAR_NODE &&
		    memchr(n->data.scalar.value, '\0',
		    n->data.scalar.length) != NULL)
			return yt_error(doc, n,
			    "NUL characters are not supported");
		if (n->type != YAML_MAPPING_NODE)
			continue;
		for (i = 0; i < yt_len(n); i++) {
			k = yt_key(doc, n, i);
			if (k->type != YAML_SCALAR_NODE)
				return yt_error(doc, k,
				    "mapping keys must be scalars, not %s",
				    yt_kind(k));
			if (yt_plain(k) && strcmp(yt_text(k), "<<") == 0)
				return yt_error(doc, k,
				    "merge keys (<<) are not supported");
		}
		if ((k = yt_duplicate_key(doc, n, &first)) != NULL)
			return yt_error(doc, k, "duplicate key '%s' (first at "
			    "line %d)", yt_text(k), yt_line(first));
	}
	return 0;
}

struct yt_doc *
yt_load_buffer(const char *name, const char *buf, size_t len, char *err,
    size_t errlen)
{
	struct yt_doc	*doc;
	yaml_parser_t	 p;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (buf == NULL)		/* libyaml asserts on a NULL input */
		buf = "";
	if (yt_prescan(name, buf, len, err, errlen) == -1)
		return NULL;

	doc = xcalloc(1, sizeof(*doc));
	doc->name = xstrdup(name);
	doc->text = xmalloc(len + 1);
	memcpy(doc->text, buf, len);
	doc->text[len] = '\0';
	doc->textlen = len;
	doc->err = err;
	doc->errlen = errlen;
	if (!yaml_parser_initialize(&p))
		fatalx("yaml: cannot initialise parser");
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&p, &doc->doc)) {
		/* The prescan parsed the same bytes; only memory can fail. */
		yt_parser_error(&p, name, buf, len, err, errlen);
		yaml_parser_delete(&p);
		free(doc->name);
		free(doc->text);
		free(doc);
		return NULL;
	}
	yaml_parser_delete(&p);
	if (yt_check(doc) == -1) {
		yt_free(doc);
		return NULL;
	}
	return doc;
}

struct yt_doc *
yt_load_file(const char *path, char *err, size_t errlen)
{
	struct yt_doc	*doc;
	struct stat	 st;
	char		*buf;
	size_t		 len = 0;
	ssize_t		 n;
	int		 fd;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		yt_err(err, errlen, path, 0, "cannot open: %s",
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		yt_err(err, errlen, path, 0, "not a regular file");
		close(fd);
		return NULL;
	}
	if (st.st_size > YT_MAX_FILE) {
		yt_err(err, errlen, path, 0, "larger than %d bytes",
		    YT_MAX_FILE);
		close(fd);
		return NULL;
	}
	/* One byte more than the size, to notice a file that grew. */
	buf = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size + 1) {
		n = read(fd, buf + len, (size_t)st.st_size + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			yt_err(err, errlen, path, 0, "cannot read: %s",
			    strerror(errno));
			free(buf);
			close(fd);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len > (size_t)st.st_size) {
		yt_err(err, errlen, path, 0, "changed while being read");
		free(buf);
		return NULL;
	}
	doc = yt_load_buffer(path, buf, len, err, errlen);
	free(buf);
	return doc;
}

void
yt_free(struct yt_doc *doc)
{
	if (doc == NULL)
		return;
	yaml_document_delete(&doc->doc);
	free(doc->name);
	free(doc->text);
	free(doc);
}

const char *
yt_name(const struct yt_doc *doc)
{
	return doc->name;
}

const char *
yt_source(const struct yt_doc *doc, size_t *len)
{
	*len = doc->textlen;
	return doc->text;
}

yaml_node_t *
yt_root(struct yt_doc *doc)
{
	yaml_node_t	*n;

	n = yaml_document_get_root_node(&doc->doc);
	if (n == NULL || yt_is_null(n))
		return NULL;
	return n;
}

/* Scalar resolution, YAML 1.2 core schema. */

static bool
yt_resolve_bool(const char *s, bool *b)
{
	if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 ||
	    strcmp(s, "TRUE") == 0)
		*b = true;
	else if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 ||
	    strcmp(s, "FALSE") == 0)
		*b = false;
	else
		return false;
	return true;
}

/* 0: an integer; -1: not one; -2: one that does not fit. */
static int
yt_resolve_int(const char *s, int64_t *out)
{
	unsigned	 base = 10, d;
	uint64_t	 v = 0, lim;
	bool		 neg = false;
	const char	*p = s;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'o')) {
		base = p[1] == 'x' ? 16 : 8;
		p += 2;
	} else if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (*p == '\0')
		return -1;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; *p != '\0'; p++) {
		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = (unsigned)(*p - 'A' + 10);
		else
			return -1;
		if (d >= base)
			return -1;
		if (v > (lim - d) / base) {
			/* Keep scanning: "99...9x" is a string, not an overflow. */
			for (p++; *p != '\0'; p++)
				if (!(*p >= '0' && *p <= '9') && !(base == 16 &&
				    ((*p >= 'a' && *p <= 'f') ||
				    (*p >= 'A' && *p <= 'F'))))
					return -1;
			return -2;
		}
		v = v * base + d;
	}
	if (neg)
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return 0;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool
yt_resolve_float(const char *s, double *out)
{
	const char	*p = s;
	size_t		 ni = 0, nf = 0, ne = 0;

	if (*p == '-' || *p == '+')
		p++;
	for (; *p >= '0' && *p <= '9'; p++)
		ni++;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			nf++;
	if (ni == 0 && nf == 0)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		for (; *p >= '0' && *p <= '9'; p++)
			ne++;
		if (ne == 0)
			return false;
	}
	if (*p != '\0')
		return false;
	*out = strtod(s, NULL);
	return true;
}

bool
yt_is_null(const yaml_node_t *n)
{
	const char	*s;

	if (n == NULL || !yt_plain(n))
		return false;
	s = (const char *)n->data.scalar.value;
	return *s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	    strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

const char *
yt_kind(const yaml_node_t *n)
{
	int64_t	i;
	double	d;
	bool	b;

	switch (n->type) {
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SEQUENCE_NODE:
		return "a sequence";
	case YAML_SCALAR_NODE:
		if (!yt_plain(n))
			return "a string";
		if (yt_is_null(n))
			return "null";
		if (yt_resolve_bool(yt_text(n), &b))
			return "a boolean";
		if (yt_resolve_int(yt_text(n), &i) != -1 ||
		    yt_resolve_float(yt_text(n), &d))
			return "a number";
		return "a string";
	default:
		return "nothing";
	}
}

const char *
yt_text(const yaml_node_t *n)
{
	if (n == NULL || n->type != YAML_SCALAR_NODE)
		return NULL;
	return (const char *)n->data.scalar.value;
}

size_t
yt_len(const yaml_node_t *n)
{
	if (n->type == YAML_MAPPING_NODE)
		return (size_t)(n->data.mapping.pairs.top -
		    n->data.mapping.pairs.start);
	if (n->type == YAML_SEQUENCE_NODE)
		return (size_t)(n->data.sequence.items.top -
		    n->data.sequence.items.start);
	return 0;
}

yaml_node_t *
yt_item(struct yt_doc *doc, const yaml_node_t *seq, size_t i)
{
	return yaml_document_get_node(&doc->doc,
	    seq->data.sequence.items.start[i]);
}

yaml_node_t *
yt_key(struct yt_doc *doc, const yaml_node_t *map, size_t i)
{
	return yaml_document_get_node(&doc->doc,
	    map->data.mapping.pairs.start[i].key);
}

yaml_node_t *
yt_value(struct yt_doc *doc, const yaml_node_t *map, size_t i)
{
	return yaml_document_get_node(&doc->doc,
	    map->data.mapping.pairs.start[i].value);
}

yaml_node_t *
yt_lookup(struct yt_doc *doc, const yaml_node_t *map, const char *key)
{
	size_t	i;

	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (i = 0; i < yt_len(map); i++)
		if (strcmp(yt_text(yt_key(doc, map, i)), key) == 0)
			return yt_value(doc, map, i);
	return NULL;
}

yaml_node_t *
yt_pointer(struct yt_doc *doc, yaml_node_t *node, const char *ptr)
{
	yaml_node_t	*next;
	const char	*end;
	char		*tok, *o;
	size_t		 i, n;

	while (node != NULL && *ptr == '/') {
		ptr++;
		end = ptr + strcspn(ptr, "/");
		/* Unescaped: "~1" is '/', "~0" is '~'. */
		tok = o = xstrndup(ptr, (size_t)(end - ptr));
		for (i = 0; tok[i] != '\0'; i++) {
			if (tok[i] == '~' && (tok[i + 1] == '0' ||
			    tok[i + 1] == '1'))
				*o++ = tok[++i] == '0' ? '~' : '/';
			else
				*o++ = tok[i];
		}
		*o = '\0';
		next = NULL;
		if (node->type == YAML_MAPPING_NODE)
			next = yt_lookup(doc, node, tok);
		else if (node->type == YAML_SEQUENCE_NODE &&
		    tok[0] >= '0' && tok[0] <= '9' &&
		    (n = strtoul(tok, NULL, 10)) < yt_len(node))
			next = yt_item(doc, node, n);
		free(tok);
		if (next == NULL)
			break;
		node = next;
		ptr = end;
	}
	return node;
}

/*
 * Text-level conversions, shared by node reads and table defaults so that a
 * default and a configured value can never be read differently.  On failure
 * they write the reason, without the key name, into why.
 */

/* "'abc'" or "the quoted string '5'", shortened: for "got ..." phrases. */
static const char *
yt_got(char *buf, size_t len, const char *s, bool plain)
{
	snprintf(buf, len, "%s'%.40s%s'", plain ? "" : "the quoted string ",
	    s, strlen(s) > 40 ? "..." : "");
	return buf;
}

static int
yt_conv_range(int64_t v, int64_t min, int64_t max, const char *unit,
    char *why, size_t len)
{
	/* An upper bound that is only the type's limit is not worth a
	 * "between": say what the user most likely got wrong. */
	bool	unbounded = max == INT64_MAX || max == INT_MAX;

	if (v >= min && v <= max)
		return 0;
	if (unbounded && v < min)
		snprintf(why, len, "must be at least %lld%s", (long long)min,
		    unit);
	else if (unbounded)
		snprintf(why, len, "must be at most %lld%s", (long long)max,
		    unit);
	else
		snprintf(why, len, "must be between %lld%s and %lld%s",
		    (long long)min, unit, (long long)max, unit);
	return -1;
}

static int
yt_conv_int(const char *s, bool plain, int64_t min, int64_t max,
    int64_t *out, char *why, size_t len)
{
	char	g[64];
	int64_t	v;
	int	rc;

	rc = plain ? yt_resolve_int(s, &v) : -1;
	if (rc == -2) {
		snprintf(why, len, "integer out of range");
		return -1;
	}
	if (rc == -1) {
		snprintf(why, len, "expected an integer, got %s",
		    yt_got(g, sizeof(g), s, plain));
		return -1;
	}
	if (yt_conv_range(v, min, max, "", why, len) == -1)
		return -1;
	*out = v;
	return 0;
}

static int
yt_conv_bool(const char *s, bool plain, bool *out, char *why, size_t len)
{
	char	g[64];

	if (!plain || !yt_resolve_bool(s, out)) {
		snprintf(why, len, "expected true or false, got %s",
		    yt_got(g, sizeof(g), s, plain));
		return -1;
	}
	return 0;
}

static int
yt_conv_duration(const char *s, int64_t min, int64_t max, int64_t *out,
    char *why, size_t len)
{
	int64_t	v;

	if (duration_parse_ms(s, &v) == -1) {
		snprintf(why, len, "invalid duration '%.40s' (use 250ms, 5s, "
		    "2m, 1h, 1d or a number of milliseconds)", s);
		return -1;
	}
	if (yt_conv_range(v, min, max, "ms", why, len) == -1)
		return -1;
	*out = v;
	return 0;
}

static int
yt_conv_size(const char *s, int64_t min, int64_t max, int64_t *out,
    char *why, size_t len)
{
	int64_t	v;

	if (size_parse(s, &v) == -1) {
		snprintf(why, len, "invalid size '%.40s' (use 512, 64KiB, "
		    "16MiB or 1GiB)", s);
		return -1;
	}
	if (yt_conv_range(v, min, max, " bytes", why, len) == -1)
		return -1;
	*out = v;
	return 0;
}

/* Store a scalar into a table row's field. */
static int
yt_conv_row(const struct yt_key *k, const char *s, bool plain, void *base,
    char *why, size_t len)
{
	void		*f = (char *)base + k->off;
	enum log_level	 lvl;
	enum backoff_jitter j;
	int64_t		 v;

	switch (k->type) {
	case YT_STRING:
		free(*(char **)f);
		*(char **)f = xstrdup(s);
		return 0;
	case YT_INT:
		if (yt_conv_int(s, plain, k->min, k->max, &v, why, len) == -1)
			return -1;
		*(int *)f = (int)v;
		return 0;
	case YT_BOOL:
		return yt_conv_bool(s, plain, (bool *)f, why, len);
	case YT_DURATION:
		return yt_conv_duration(s, k->min, k->max, (int64_t *)f, why,
		    len);
	case YT_SIZE:
		return yt_conv_size(s, k->min, k->max, (int64_t *)f, why, len);
	case YT_LOGLEVEL:
		if (log_parse_level(s, &lvl) == -1) {
			snprintf(why, len, "invalid log level '%.40s' (debug, "
			    "info, warn or error)", s);
			return -1;
		}
		*(enum log_level *)f = lvl;
		return 0;
	case YT_JITTER:
		if (backoff_parse_jitter(s, &j) == -1) {
			snprintf(why, len, "invalid jitter '%.40s' (full, "
			    "equal or none)", s);
			return -1;
		}
		*(enum backoff_jitter *)f = j;
		return 0;
	default:
		snprintf(why, len, "not a scalar key");
		return -1;
	}
}

bool
yt_same(const struct yt_key *k, const void *a, const void *b)
{
	const void	*fa = (const char *)a + k->off;
	const void	*fb = (const char *)b + k->off;
	const char	*sa, *sb;

	switch (k->type) {
	case YT_STRING:
		sa = *(char *const *)fa;
		sb = *(char *const *)fb;
		return sa == sb || (sa != NULL && sb != NULL &&
		    strcmp(sa, sb) == 0);
	case YT_INT:
		return *(const int *)fa == *(const int *)fb;
	case YT_BOOL:
		return *(const bool *)fa == *(const bool *)fb;
	case YT_DURATION:
	case YT_SIZE:
		return *(const int64_t *)fa == *(const int64_t *)fb;
	case YT_LOGLEVEL:
		return *(const enum log_level *)fa ==
		    *(const enum log_level *)fb;
	case YT_JITTER:
		return *(const enum backoff_jitter *)fa ==
		    *(const enum backoff_jitter *)fb;
	case YT_JSON:
		return json_equal(*(json_t *const *)fa, *(json_t *const *)fb);
	default:
		return true;
	}
}

static const char *
yt_expected(enum yt_type t)
{
	switch (t) {
	case YT_INT:
		return "an integer";
	case YT_BOOL:
		return "true or false";
	case YT_DURATION:
		return "a duration";
	case YT_SIZE:
		return "a size";
	case YT_LOGLEVEL:
		return "a log level";
	case YT_JITTER:
		return "a jitter name";
	case YT_JSON:
		return "a mapping";
	default:
		return "a string";
	}
}

/* Typed node reads. */

static int
yt_scalar(struct yt_doc *doc, const yaml_node_t *n, const char *what,
    const char *expected)
{
	if (n->type != YAML_SCALAR_NODE || yt_is_null(n))
		return yt_error(doc, n, "%s: expected %s, got %s", what,
		    expected, yt_kind(n));
	return 0;
}

int
yt_expect(struct yt_doc *doc, const yaml_node_t *n, yaml_node_type_t type,
    const char *what)
{
	const char	*expected;

	if (n->type == type && !(type == YAML_SCALAR_NODE && yt_is_null(n)))
		return 0;
	switch (type) {
	case YAML_MAPPING_NODE:
		expected = "a mapping";
		break;
	case YAML_SEQUENCE_NODE:
		expected = "a sequence";
		break;
	default:
		expected = "a scalar";
		break;
	}
	return yt_error(doc, n, "%s: expected %s, got %s", what, expected,
	    yt_kind(n));
}

int
yt_string(struct yt_doc *doc, const yaml_node_t *n, const char *what,
    char **out)
{
	if (yt_scalar(doc, n, what, "a string") == -1)
		return -1;
	*out = xstrdup(yt_text(n));
	return 0;
}

/* Depth is bounded by the prescan (YT_MAX_DEPTH), so recursion is safe. */
json_t *
yt_json(struct yt_doc *doc, const yaml_node_t *n)
{
	json_t		*j, *v;
	const char	*s;
	int64_t		 i;
	double		 d;
	bool		 b;
	size_t		 k;

	switch (n->type) {
	case YAML_MAPPING_NODE:
		j = json_object();
		for (k = 0; k < yt_len(n); k++) {
			if ((v = yt_json(doc, yt_value(doc, n, k))) == NULL) {
				json_decref(j);
				return NULL;
			}
			json_object_set_new(j, yt_text(yt_key(doc, n, k)), v);
		}
		return j;
	case YAML_SEQUENCE_NODE:
		j = json_array();
		for (k = 0; k < yt_len(n); k++) {
			if ((v = yt_json(doc, yt_item(doc, n, k))) == NULL) {
				json_decref(j);
				return NULL;
			}
			json_array_append_new(j, v);
		}
		return j;
	case YAML_SCALAR_NODE:
		s = yt_text(n);
		if (!yt_plain(n))
			break;
		if (yt_is_null(n))
			return json_null();
		if (yt_resolve_bool(s, &b))
			return json_boolean(b);
		switch (yt_resolve_int(s, &i)) {
		case 0:
			return json_integer((json_int_t)i);
		case -2:
			yt_error(doc, n, "integer out of range: %.40s", s);
			return NULL;
		}
		if (yt_resolve_float(s, &d)) {
			/* jansson refuses infinities, as JSON does. */
			if ((j = json_real(d)) == NULL)
				yt_error(doc, n, "number out of range: %.40s",
				    s);
			return j;
		}
		break;
	default:
		yt_error(doc, n, "empty node");
		return NULL;
	}
	if ((j = json_stringn(yt_text(n), n->data.scalar.length)) == NULL)
		yt_error(doc, n, "string is not valid UTF-8");
	return j;
}

/* Key tables. */

struct yt_walk {
	struct yt_doc		*doc;
	const struct yt_key	*keys;
	size_t			 nkeys;
	void			*base;
	void			*arg;
	const char		*what;
	bool			*seen;
};

/* Does some row live under path (is "path." a prefix of its name)? */
static bool
yt_has_children(const struct yt_walk *w, const char *path)
{
	size_t	i, len = strlen(path);

	for (i = 0; i < w->nkeys; i++)
		if (strncmp(w->keys[i].name, path, len) == 0 &&
		    w->keys[i].name[len] == '.')
			return true;
	return false;
}

/* "unknown step key 'retries' (valid: name, description, ...)": the valid
 * names are those one level below prefix, each once, foreign keys left out
 * since they are accepted only for porting. */
static int
yt_unknown(struct yt_walk *w, const yaml_node_t *k, const char *prefix,
    const char *path)
{
	char		 valid[512];
	const char	*name, *seg, *end, *prev;
	size_t		 i, j, plen = prefix != NULL ? strlen(prefix) + 1 : 0;
	size_t		 seglen, o = 0;
	bool		 dup;

	valid[0] = '\0';
	for (i = 0; i < w->nkeys; i++) {
		name = w->keys[i].name;
		if (w->keys[i].type == YT_IGNORE || (plen > 0 &&
		    (strncmp(name, prefix, plen - 1) != 0 ||
		    name[plen - 1] != '.')))
			continue;
		seg = name + plen;
		seglen = (end = strchr(seg, '.')) != NULL ?
		    (size_t)(end - seg) : strlen(seg);
		for (dup = false, j = 0; j < i && !dup; j++) {
			prev = w->keys[j].name;
			if (w->keys[j].type == YT_IGNORE || strncmp(prev, name,
			    plen + seglen) != 0)
				continue;
			dup = prev[plen + seglen] == '\0' ||
			    prev[plen + seglen] == '.';
		}
		if (dup || o >= sizeof(valid))
			continue;
		o += (size_t)snprintf(valid + o, sizeof(valid) - o, "%s%.*s",
		    o > 0 ? ", " : "", (int)seglen, seg);
	}
	return yt_error(w->doc, k, "unknown %s%skey '%s' (valid: %s)",
	    w->what != NULL ? w->what : "", w->what != NULL ? " " : "", path,
	    valid);
}

static int
yt_set(struct yt_walk *w, const struct yt_key *k, yaml_node_t *v)
{
	char	 why[256];
	void	*f = (char *)w->base + k->off;
	json_t	*j;

	switch (k->type) {
	case YT_IGNORE:
		return 0;
	case YT_FUNC:
		return k->fn(w->doc, k, v, w->base, w->arg);
	case YT_JSON:
		if (yt_expect(w->doc, v, YAML_MAPPING_NODE, k->name) == -1 ||
		    (j = yt_json(w->doc, v)) == NULL)
			return -1;
		json_decref(*(json_t **)f);
		*(json_t **)f = j;
		return 0;
	default:
		if (yt_scalar(w->doc, v, k->name, yt_expected(k->type)) == -1)
			return -1;
		if (yt_conv_row(k, yt_text(v), yt_plain(v), w->base, why,
		    sizeof(why)) == -1)
			return yt_error(w->doc, v, "%s: %s", k->name, why);
		return 0;
	}
}

static int
yt_walk_map(struct yt_walk *w, const yaml_node_t *map, const char *prefix)
{
	yaml_node_t	*k, *v;
	const char	*key;
	char		*path;
	size_t		 i, r;
	int		 rc = 0;

	for (i = 0; i < yt_len(map) && rc == 0; i++) {
		k = yt_key(w->doc, map, i);
		v = yt_value(w->doc, map, i);
		/* Non-scalar keys were refused before the walk. */
		if ((key = yt_text(k)) == NULL)
			continue;
		if (prefix != NULL)
			xasprintf(&path, "%s.%s", prefix, key);
		else
			path = xstrdup(key);
		/* A dotted key would reach a nested row by a second
		 * spelling, and dodge the duplicate key check: unknown. */
		r = w->nkeys;
		if (strchr(key, '.') == NULL)
			for (r = 0; r < w->nkeys; r++)
				if (strcmp(w->keys[r].name, path) == 0)
					break;
		if (r < w->nkeys && yt_is_null(v) &&
		    (w->keys[r].flags & YT_NOT_NULL))
			rc = yt_error(w->doc, v, "%s has no value: leave the "
			    "key out for its default%s%s%s", path,
			    w->keys[r].doc ? " (" : "", w->keys[r].doc ?
			    w->keys[r].doc : "", w->keys[r].doc ? ")" : "");
		else if (r < w->nkeys && w->keys[r].type != YT_SECTION) {
			if (!yt_is_null(v)) {
				w->seen[r] = true;
				rc = yt_set(w, &w->keys[r], v);
			}
		} else if (strchr(key, '.') == NULL &&
		    yt_has_children(w, path)) {
			if (!yt_is_null(v) && (rc = yt_expect(w->doc, v,
			    YAML_MAPPING_NODE, path)) == 0)
				rc = yt_walk_map(w, v, path);
		} else
			rc = yt_unknown(w, k, prefix, path);
		free(path);
	}
	return rc;
}

int
yt_decode(struct yt_doc *doc, const yaml_node_t *map,
    const struct yt_key *keys, size_t nkeys, void *base, void *arg,
    const char *what)
{
	struct yt_walk	 w;
	size_t		 i;
	int		 rc;

	if (yt_expect(doc, map, YAML_MAPPING_NODE,
	    what != NULL ? what : "top level") == -1)
		return -1;
	w.doc = doc;
	w.keys = keys;
	w.nkeys = nkeys;
	w.base = base;
	w.arg = arg;
	w.what = what;
	w.seen = xcalloc(nkeys, sizeof(*w.seen));
	rc = yt_walk_map(&w, map, NULL);
	for (i = 0; i < nkeys && rc == 0; i++)
		if ((keys[i].flags & YT_REQUIRED) && !w.seen[i])
			rc = yt_error(doc, map, "%s%smissing '%s'",
			    what != NULL ? what : "", what != NULL ? " is " : "",
			    keys[i].name);
	free(w.seen);
	return rc;
}

void
yt_defaults(const struct yt_key *keys, size_t nkeys, void *base)
{
	char	why[256];
	size_t	i;

	for (i = 0; i < nkeys; i++) {
		if (keys[i].def == NULL)
			continue;
		if (yt_conv_row(&keys[i], keys[i].def, true, base, why,
		    sizeof(why)) == -1)
			fatalx("default of %s: %s", keys[i].name, why);
	}
}

void
yt_release(const struct yt_key *keys, size_t nkeys, void *base)
{
	void	*f;
	size_t	 i;

	for (i = 0; i < nkeys; i++) {
		f = (char *)base + keys[i].off;
		/* Aliased rows share a field: clearing makes that safe. */
		if (keys[i].type == YT_STRING) {
			free(*(char **)f);
			*(char **)f = NULL;
		} else if (keys[i].type == YT_JSON) {
			json_decref(*(json_t **)f);
			*(json_t **)f = NULL;
		}
	}
}
