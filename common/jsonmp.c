/*
 * jsonmp.c - JSON (jansson) <-> msgpack conversion for protocol payloads.
 *
 * Handler configs, step inputs and results cross the socketpair as native
 * msgpack rather than JSON text, so the peer's one msgpack parse covers them
 * and nothing is parsed twice.  Unpacking sees bytes from another process:
 * it accepts only what maps back onto JSON without loss (string keys,
 * UTF-8 strings, integers that fit json_int_t) and bounds its recursion.
 */
#include <stdint.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "jsonmp.h"

/* Containers nested deeper than this are refused, which bounds recursion. */
#define JSONMP_MAX_DEPTH	64

void
jsonmp_pack(msgpack_packer *pk, const json_t *v)
{
	const char	*key;
	json_t		*val;
	size_t		 keylen, i;

	if (v == NULL) {
		msgpack_pack_nil(pk);
		return;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		msgpack_pack_map(pk, json_object_size(v));
		/* The const is cast away only to iterate; nothing is changed. */
		json_object_keylen_foreach((json_t *)v, key, keylen, val) {
			msgpack_pack_str_with_body(pk, key, keylen);
			jsonmp_pack(pk, val);
		}
		break;
	case JSON_ARRAY:
		msgpack_pack_array(pk, json_array_size(v));
		for (i = 0; i < json_array_size(v); i++)
			jsonmp_pack(pk, json_array_get(v, i));
		break;
	case JSON_STRING:
		msgpack_pack_str_with_body(pk, json_string_value(v),
		    json_string_length(v));
		break;
	case JSON_INTEGER:
		msgpack_pack_int64(pk, json_integer_value(v));
		break;
	case JSON_REAL:
		msgpack_pack_double(pk, json_real_value(v));
		break;
	case JSON_TRUE:
		msgpack_pack_true(pk);
		break;
	case JSON_FALSE:
		msgpack_pack_false(pk);
		break;
	case JSON_NULL:
		msgpack_pack_nil(pk);
		break;
	}
}

static json_t	*unpack(const msgpack_object *, int);

static json_t *
unpack_array(const msgpack_object *o, int depth)
{
	json_t		*a, *v;
	uint32_t	 i;

	a = json_array();
	for (i = 0; i < o->via.array.size; i++) {
		if ((v = unpack(&o->via.array.ptr[i], depth + 1)) == NULL ||
		    json_array_append_new(a, v) == -1) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/*
 * Keys must be str without NUL (json_object_get() could not reach them
 * otherwise) and must be unique: a map that says two things about one key
 * is malformed, and "last one wins" would hide that.
 */
static json_t *
unpack_map(const msgpack_object *o, int depth)
{
	const msgpack_object_kv	*kv;
	const char		*key;
	size_t			 keylen;
	json_t			*m, *v;
	uint32_t		 i;

	m = json_object();
	for (i = 0; i < o->via.map.size; i++) {
		kv = &o->via.map.ptr[i];
		if (kv->key.type != MSGPACK_OBJECT_STR)
			goto fail;
		/* jansson refuses a NULL key even when it is empty. */
		keylen = kv->key.via.str.size;
		key = keylen > 0 ? kv->key.via.str.ptr : "";
		if (memchr(key, '\0', keylen) != NULL ||
		    json_object_getn(m, key, keylen) != NULL)
			goto fail;
		if ((v = unpack(&kv->val, depth + 1)) == NULL)
			goto fail;
		/* Checks the key's UTF-8; takes v even when it fails. */
		if (json_object_setn_new(m, key, keylen, v) == -1)
			goto fail;
	}
	return m;
fail:
	json_decref(m);
	return NULL;
}

/* depth is the nesting level of o: 1 for the value passed in. */
static json_t *
unpack(const msgpack_object *o, int depth)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > (uint64_t)INT64_MAX)
			return NULL;
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		/* NULL for NaN and infinities, which JSON cannot hold. */
		return json_real(o->via.f64);
	case MSGPACK_OBJECT_STR:
		/* json_stringn() refuses a NULL pointer even for "". */
		if (o->via.str.size == 0)
			return json_string("");
		/* NULL on invalid UTF-8. */
		return json_stringn(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_ARRAY:
		if (depth > JSONMP_MAX_DEPTH)
			return NULL;
		return unpack_array(o, depth);
	case MSGPACK_OBJECT_MAP:
		if (depth > JSONMP_MAX_DEPTH)
			return NULL;
		return unpack_map(o, depth);
	case MSGPACK_OBJECT_BIN:
	case MSGPACK_OBJECT_EXT:
		return NULL;
	}
	return NULL;
}

json_t *
jsonmp_unpack(const msgpack_object *o)
{
	if (o == NULL)
		return NULL;
	return unpack(o, 1);
}
