/*
 * yamltree.h - YAML files as a checked tree, and typed key tables over it.
 *
 * The config file and the templates are read through this one layer so that
 * both agree on what a scalar means and both report problems the same way:
 * "NAME:LINE: reason", LINE 1-based, pointing at the offending node.
 *
 * Loading parses the whole file with libyaml's document API and rejects, up
 * front, what would otherwise be read silently wrong: syntax errors, a second
 * document, anchors and aliases, merge keys (<<), explicit tags, mapping keys
 * that are not scalars or appear twice, NUL characters, and nesting deeper
 * than YT_MAX_DEPTH.  After a successful load every mapping key is a unique
 * scalar, so walkers need not check again.
 *
 * Scalars are resolved with YAML 1.2's core schema, and only when unquoted:
 * plain ~, null, empty -> null; true/false (also True, TRUE, ...) -> boolean;
 * 12, -3, 0x1f, 0o17 -> integer; 1.5, .5, 1e3 -> float.  A quoted scalar is
 * always a string, and the text of any scalar is available as written (so a
 * version `1.0` reads as "1.0", not 1).
 *
 * A key table (struct yt_key) describes one kind of mapping: a row per key,
 * with its type, where it is stored, its default and a line of doc.  Paths
 * may be dotted ("http.listen") to describe nested mappings in one table.
 * yt_decode() walks a mapping against a table; a key whose value is null is
 * treated as absent and keeps its default.
 */
#ifndef TASKERD_YAMLTREE_H
#define TASKERD_YAMLTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>
#include <jansson.h>

#define YT_MAX_DEPTH	64		/* nested collections */
#define YT_MAX_FILE	(16 << 20)	/* bytes read by yt_load_file */

struct yt_doc;

/* Load and check a file or a buffer.  On error return NULL and write
 * "NAME:LINE: reason" into err.  name is used in messages. */
struct yt_doc	*yt_load_file(const char *path, char *err, size_t errlen);
struct yt_doc	*yt_load_buffer(const char *name, const char *buf, size_t len,
		    char *err, size_t errlen);
void		 yt_free(struct yt_doc *);

const char	*yt_name(const struct yt_doc *);
/* The text the document was read from (NUL-terminated; len without it). */
const char	*yt_source(const struct yt_doc *, size_t *len);
/* The top node, or NULL when the document is empty. */
yaml_node_t	*yt_root(struct yt_doc *);

/*
 * Record an error at node (NULL: line 1) or line, into the err buffer given
 * at load.  Always returns -1 so that callers can `return yt_error(...)`.
 */
int		 yt_error(struct yt_doc *, const yaml_node_t *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
int		 yt_errorl(struct yt_doc *, int line, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

int		 yt_line(const yaml_node_t *);
/* "a mapping", "a sequence", "null", "a boolean", "a number", "a string":
 * for messages of the form "expected X, got Y". */
const char	*yt_kind(const yaml_node_t *);
bool		 yt_is_null(const yaml_node_t *);
/* A scalar's text as written; NULL for collections. */
const char	*yt_text(const yaml_node_t *);

/* Collections: pairs of a mapping, items of a sequence; 0 for scalars. */
size_t		 yt_len(const yaml_node_t *);
yaml_node_t	*yt_item(struct yt_doc *, const yaml_node_t *seq, size_t);
yaml_node_t	*yt_key(struct yt_doc *, const yaml_node_t *map, size_t);
yaml_node_t	*yt_value(struct yt_doc *, const yaml_node_t *map, size_t);
/* The value under key in map, or NULL. */
yaml_node_t	*yt_lookup(struct yt_doc *, const yaml_node_t *map,
		    const char *key);
/* The node a JSON pointer (RFC 6901, "/properties/email") names below
 * node, or the deepest one on its way that exists. */
yaml_node_t	*yt_pointer(struct yt_doc *, yaml_node_t *node,
		    const char *ptr);

/*
 * Typed reads.  Each returns 0, or records "WHAT: reason" at the node and
 * returns -1.  yt_string accepts any non-null scalar (its text).  Numbers,
 * booleans, durations and sizes are read through key tables (yt_decode).
 */
int		 yt_expect(struct yt_doc *, const yaml_node_t *,
		    yaml_node_type_t, const char *what);
int		 yt_string(struct yt_doc *, const yaml_node_t *,
		    const char *what, char **);

/* Any node as JSON (scalars resolved as above).  NULL and an error only for
 * an integer that does not fit in 64 bits. */
json_t		*yt_json(struct yt_doc *, const yaml_node_t *);

/* Key tables. */
enum yt_type {
	YT_STRING,	/* char *; replaced value is freed */
	YT_INT,		/* int, within [min, max] */
	YT_BOOL,	/* bool */
	YT_DURATION,	/* int64_t milliseconds, within [min, max] */
	YT_SIZE,	/* int64_t bytes, within [min, max] */
	YT_LOGLEVEL,	/* enum log_level */
	YT_JITTER,	/* enum backoff_jitter */
	YT_JSON,	/* json_t *: any mapping, as an object */
	YT_IGNORE,	/* accepted, not read: foreign keys kept for porting */
	YT_FUNC,	/* fn reads the value itself */
	YT_SECTION,	/* "outer": a mapping of rows "outer.key"; its own
			 * row only refuses it empty ("outer:"), with
			 * YT_NOT_NULL, where empty would be read wrong
			 * (not YT_REQUIRED: it is never marked seen) */
};

#define YT_REQUIRED	0x01	/* yt_decode fails when the key is absent */
#define YT_NOT_NULL	0x02	/* a null value (no value) is refused: it
				 * does not mean the default */

struct yt_key;
typedef int	(*yt_fn)(struct yt_doc *, const struct yt_key *, yaml_node_t *,
		    void *base, void *arg);

struct yt_key {
	const char	*name;		/* "key", or "outer.key" when nested */
	enum yt_type	 type;
	size_t		 off;		/* of the field in the filled struct */
	const char	*def;		/* default as YAML text; NULL: none */
	int64_t		 min, max;	/* for YT_INT, YT_DURATION, YT_SIZE */
	int		 flags;		/* YT_REQUIRED, YT_NOT_NULL */
	yt_fn		 fn;		/* for YT_FUNC */
	const char	*doc;		/* one line, for humans */
};

/*
 * Walk map against the table, storing into base; arg is passed to YT_FUNC
 * callbacks.  what names the mapping in messages ("step" gives "unknown step
 * key 'x' (valid: ...)" and "step is missing 'name'"); NULL for none.
 */
int		 yt_decode(struct yt_doc *, const yaml_node_t *map,
		    const struct yt_key *, size_t, void *base, void *arg,
		    const char *what);
/* Store every row's default into base.  A default that does not parse is a
 * bug in the table, hence fatal. */
void		 yt_defaults(const struct yt_key *, size_t, void *base);
/* Whether a table row's field holds the same value in a and b (a
 * YT_FUNC or YT_IGNORE row: always). */
bool		 yt_same(const struct yt_key *, const void *a, const void *b);
/* Free what the table's YT_STRING and YT_JSON rows own in base. */
void		 yt_release(const struct yt_key *, size_t, void *base);

#define YT_NELEM(a)	(sizeof(a) / sizeof((a)[0]))

#endif
