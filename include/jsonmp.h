/* jsonmp.h - JSON (jansson) <-> msgpack conversion for protocol payloads. */
#ifndef TASKERD_JSONMP_H
#define TASKERD_JSONMP_H

#include <jansson.h>
#include <msgpack.h>

/* Pack a JSON value as native msgpack.  NULL packs as nil. */
void	 jsonmp_pack(msgpack_packer *, const json_t *);

/* Convert a msgpack object to a new JSON value.  Map keys must be strings,
 * depth is capped at 64; returns NULL on anything else (bin, ext, non-string
 * key, too deep).  A msgpack nil becomes json null (not NULL). */
json_t	*jsonmp_unpack(const msgpack_object *);

#endif
