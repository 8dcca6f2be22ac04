/*
 * jsontext.h - compact JSON text of a jansson value, reals written as the
 * shortest text that reads back as the same double (19.99, 0.1, 1.0), as
 * JSON users expect; otherwise what json_dumps(JSON_COMPACT |
 * JSON_ENCODE_ANY) writes, key order included.  Every JSON taskerd hands
 * to a client, the database, a worker or a service goes through here.
 */
#ifndef TASKERD_JSONTEXT_H
#define TASKERD_JSONTEXT_H

#include <stddef.h>
#include <jansson.h>

#define JSONTEXT_ASCII	0x1	/* \uXXXX for every non-ASCII character */
#define JSONTEXT_SORTED	0x2	/* object keys in byte order */

/* A new string (the caller frees it); NULL only for a NULL value. */
char	*jsontext(const json_t *, int flags);

/* A real's text into buf (32 bytes are enough). */
void	 jsontext_real(double, char *buf, size_t len);

/* json_loadb(), except that an integer too big for jansson (PostgreSQL's
 * text of a jsonb real of 2^63 or more: 1e19 comes back as
 * 10000000000000000000) is read as a real.  For JSON that was ours. */
json_t	*jsontext_load(const char *text, size_t len, size_t flags,
	    json_error_t *err);
/* text with each such integer made a real ("e0" after it), a new string;
 * NULL when it holds none (a quick walk, no parse).  Every other byte of
 * text is kept, so other numbers keep their digits. */
char	*jsontext_big_ints_as_reals(const char *text, size_t len);
/* json_loadb(), except that an integer too big for jansson becomes a
 * string of its digits, which keeps them all (a service's 128-bit id read
 * as a real would lose the last ones).  For JSON from elsewhere. */
json_t	*jsontext_load_exact(const char *text, size_t len, size_t flags,
	    json_error_t *err);

#endif
