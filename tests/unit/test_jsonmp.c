/* test_jsonmp.c - JSON <-> msgpack conversion. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>
#include <msgpack.h>

#include "jsonmp.h"

/* Packed bytes and their unpacked tree; the tree points into the zone. */
struct packed {
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	msgpack_unpacked	 up;
};

static void
packed_init(struct packed *p)
{
	msgpack_sbuffer_init(&p->sb);
	msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
	msgpack_unpacked_init(&p->up);
}

static void
packed_free(struct packed *p)
{
	msgpack_unpacked_destroy(&p->up);
	msgpack_sbuffer_destroy(&p->sb);
}

/* Unpacks what was packed, insisting on exactly one object. */
static const msgpack_object *
packed_object(struct packed *p)
{
	size_t	 off = 0;

	assert_int_equal(msgpack_unpack_next(&p->up, p->sb.data, p->sb.size,
	    &off), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, p->sb.size);
	return &p->up.data;
}

/* Unpacks raw msgpack bytes and converts them. */
static json_t *
from_bytes(const char *bytes, size_t len)
{
	msgpack_unpacked	 up;
	json_t			*j;
	size_t			 off = 0;

	msgpack_unpacked_init(&up);
	assert_int_equal(msgpack_unpack_next(&up, bytes, len, &off),
	    MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, len);
	j = jsonmp_unpack(&up.data);
	msgpack_unpacked_destroy(&up);
	return j;
}

/* Packs v, unpacks it and returns the JSON that came back. */
static json_t *
roundtrip(const json_t *v)
{
	struct packed	 p;
	json_t		*back;

	packed_init(&p);
	jsonmp_pack(&p.pk, v);
	back = jsonmp_unpack(packed_object(&p));
	packed_free(&p);
	return back;
}

static void
assert_roundtrip(const char *text)
{
	json_error_t	 jerr;
	json_t		*v, *back;

	v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	assert_non_null(v);
	back = roundtrip(v);
	assert_non_null(back);
	if (!json_equal(v, back))
		fail_msg("round trip changed %s", text);
	json_decref(back);
	json_decref(v);
}

static void
test_roundtrip_scalars(void **state)
{
	(void)state;
	assert_roundtrip("null");
	assert_roundtrip("true");
	assert_roundtrip("false");
	assert_roundtrip("0");
	assert_roundtrip("-1");
	assert_roundtrip("-33");
	assert_roundtrip("127");
	assert_roundtrip("9223372036854775807");
	assert_roundtrip("-9223372036854775808");
	assert_roundtrip("0.5");
	assert_roundtrip("-1.25e300");
	assert_roundtrip("\"\"");
	assert_roundtrip("\"plain\"");
	assert_roundtrip("\"caf\\u00e9 \\u65e5\\u672c \\ud83d\\ude80\"");
	assert_roundtrip("\"nul \\u0000 inside a value\"");
}

static void
test_roundtrip_nested(void **state)
{
	(void)state;
	assert_roundtrip("{}");
	assert_roundtrip("[]");
	assert_roundtrip("[1, \"two\", 3.5, null, true, [], {}]");
	assert_roundtrip("{\"method\": \"POST\", \"url\": \"/users\", "
	    "\"headers\": {\"X-A\": \"1\"}, \"body\": {\"user\": "
	    "{\"email\": \"{{context.email}}\", \"tags\": [\"a\", \"b\"], "
	    "\"n\": -7, \"ratio\": 0.25}}, \"\\u00fcml\\u00e4ut\": [[[[1]]]]}");
}

/* 5 and 5.0 must stay distinct kinds: templates compare them. */
static void
test_integer_and_real_kinds(void **state)
{
	json_t	*v, *back;

	(void)state;
	v = json_real(5.0);
	back = roundtrip(v);
	assert_true(json_is_real(back));
	assert_true(json_real_value(back) == 5.0);
	json_decref(back);
	json_decref(v);

	v = json_integer(5);
	back = roundtrip(v);
	assert_true(json_is_integer(back));
	assert_int_equal(json_integer_value(back), 5);
	json_decref(back);
	json_decref(v);
}

static void
test_null_pointer_packs_nil(void **state)
{
	struct packed	 p;
	json_t		*back;

	(void)state;
	packed_init(&p);
	jsonmp_pack(&p.pk, NULL);
	assert_int_equal(p.sb.size, 1);
	assert_int_equal((unsigned char)p.sb.data[0], 0xc0);
	back = jsonmp_unpack(packed_object(&p));
	assert_non_null(back);
	assert_true(json_is_null(back));
	json_decref(back);
	packed_free(&p);

	assert_null(jsonmp_unpack(NULL));
}

/* Other encoders pick other widths; all of them must be understood. */
static void
test_unpack_other_encodings(void **state)
{
	json_t	*j;

	(void)state;
	/* int8 holding a non-negative value. */
	j = from_bytes("\xd0\x05", 2);
	assert_true(json_is_integer(j));
	assert_int_equal(json_integer_value(j), 5);
	json_decref(j);

	/* uint64 just under the limit. */
	j = from_bytes("\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9);
	assert_true(json_is_integer(j));
	assert_true(json_integer_value(j) == INT64_MAX);
	json_decref(j);

	/* float32 1.5 */
	j = from_bytes("\xca\x3f\xc0\x00\x00", 5);
	assert_true(json_is_real(j));
	assert_true(json_real_value(j) == 1.5);
	json_decref(j);

	/* str8 "ab" */
	j = from_bytes("\xd9\x02" "ab", 4);
	assert_string_equal(json_string_value(j), "ab");
	json_decref(j);

	/* map16 {"k": nil} */
	j = from_bytes("\xde\x00\x01\xa1k\xc0", 6);
	assert_true(json_is_object(j));
	assert_true(json_is_null(json_object_get(j, "k")));
	json_decref(j);
}

static void
test_reject_values(void **state)
{
	(void)state;
	/* uint64 above INT64_MAX */
	assert_null(from_bytes("\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 9));
	assert_null(from_bytes("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9));
	/* bin 8 */
	assert_null(from_bytes("\xc4\x02" "ab", 4));
	/* fixext 1 and ext 8 */
	assert_null(from_bytes("\xd4\x01\x00", 3));
	assert_null(from_bytes("\xc7\x01\x05\x00", 4));
	/* NaN and infinity have no JSON form */
	assert_null(from_bytes("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 9));
	assert_null(from_bytes("\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", 9));
	/* invalid UTF-8: stray continuation, overlong '/', surrogate */
	assert_null(from_bytes("\xa2" "a\x80", 3));
	assert_null(from_bytes("\xa2\xc0\xaf", 3));
	assert_null(from_bytes("\xa3\xed\xa0\x80", 4));
	/* ... and also when nested */
	assert_null(from_bytes("\x92\x01\xa1\xff", 4));
	assert_null(from_bytes("\x81\xa1k\x91\xc4\x00", 6));
}

static void
test_reject_bad_keys(void **state)
{
	(void)state;
	/* {1: "a"} */
	assert_null(from_bytes("\x81\x01\xa1" "a", 4));
	/* {nil: 1}, {[]: 1} */
	assert_null(from_bytes("\x81\xc0\x01", 3));
	assert_null(from_bytes("\x81\x90\x01", 3));
	/* a key with NUL inside */
	assert_null(from_bytes("\x81\xa3" "a\0b" "\x01", 6));
	/* a key that is not UTF-8 */
	assert_null(from_bytes("\x81\xa1\xfe\x01", 4));
	/* the same key twice */
	assert_null(from_bytes("\x82\xa1k\x01\xa1k\x02", 7));
	/* a good map with a bad key deeper down */
	assert_null(from_bytes("\x81\xa1k\x81\x05\x01", 6));
	/* but an empty key is a key */
	json_decref(from_bytes("\x81\xa0\x01", 3));
}

/*
 * msgpack-c's parser stops at 32 nested containers, so trees deeper than
 * that can only reach jsonmp_unpack() hand-built; build one with n nested
 * arrays (or maps) around a nil.
 */
static void
build_nested(msgpack_object *o, msgpack_object_kv *kv, int n, int maps)
{
	int	 i;

	memset(o, 0, sizeof(*o) * (n + 1));
	for (i = 0; i < n; i++) {
		if (maps) {
			o[i].type = MSGPACK_OBJECT_MAP;
			o[i].via.map.size = 1;
			o[i].via.map.ptr = &kv[i];
			kv[i].key.type = MSGPACK_OBJECT_STR;
			kv[i].key.via.str.ptr = "k";
			kv[i].key.via.str.size = 1;
		} else {
			o[i].type = MSGPACK_OBJECT_ARRAY;
			o[i].via.array.size = 1;
			o[i].via.array.ptr = &o[i + 1];
		}
	}
	o[n].type = MSGPACK_OBJECT_NIL;
	/* A map's value is a copy, so fill them in innermost first. */
	if (maps)
		for (i = n - 1; i >= 0; i--)
			kv[i].val = o[i + 1];
}

static void
test_depth_cap(void **state)
{
	msgpack_object		 o[70];
	msgpack_object_kv	 kv[70];
	json_t			*j;
	int			 maps;

	(void)state;
	for (maps = 0; maps <= 1; maps++) {
		build_nested(o, kv, 64, maps);
		j = jsonmp_unpack(&o[0]);
		assert_non_null(j);
		json_decref(j);

		build_nested(o, kv, 65, maps);
		assert_null(jsonmp_unpack(&o[0]));

		build_nested(o, kv, 69, maps);
		assert_null(jsonmp_unpack(&o[0]));
	}
}

/* A big array of objects: nothing lost, nothing leaked on the way back. */
static void
test_roundtrip_large(void **state)
{
	json_t	*v, *back;
	int	 i;

	(void)state;
	v = json_array();
	for (i = 0; i < 70000; i++)
		json_array_append_new(v, json_pack("{s:i, s:s}", "i", i,
		    "s", "x"));
	back = roundtrip(v);
	assert_non_null(back);
	assert_true(json_equal(v, back));
	json_decref(back);
	json_decref(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_scalars),
		cmocka_unit_test(test_roundtrip_nested),
		cmocka_unit_test(test_integer_and_real_kinds),
		cmocka_unit_test(test_null_pointer_packs_nil),
		cmocka_unit_test(test_unpack_other_encodings),
		cmocka_unit_test(test_reject_values),
		cmocka_unit_test(test_reject_bad_keys),
		cmocka_unit_test(test_depth_cap),
		cmocka_unit_test(test_roundtrip_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
