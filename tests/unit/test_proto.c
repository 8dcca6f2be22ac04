/* test_proto.c - frame codec: round trips, framing and hostile payloads. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>
#include <msgpack.h>

#include "protocol.h"

#define ERRLEN	256

/*
 * Helpers.
 */

static json_t *
load(const char *text)
{
	json_error_t	 jerr;
	json_t		*v;

	if ((v = json_loads(text, JSON_DECODE_ANY, &jerr)) == NULL)
		fail_msg("bad test JSON: %s", jerr.text);
	return v;
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static int
msg_is_zero(const struct proto_msg *m)
{
	static const struct proto_msg	 zero;

	return memcmp(m, &zero, sizeof(zero)) == 0;
}

/*
 * Checks that buf holds exactly one frame whose header is right, and decodes
 * its payload into m.
 */
static void
decode_only_frame(const struct proto_buf *b, struct proto_msg *m)
{
	char	 err[ERRLEN];
	size_t	 plen;

	assert_int_equal(proto_frame_peek(b->data, b->len,
	    PROTO_DEFAULT_MAX_FRAME, &plen), 0);
	assert_int_equal(plen, b->len - PROTO_HEADER_LEN);
	assert_int_equal(be32(b->data), plen);
	if (proto_decode(b->data + PROTO_HEADER_LEN, plen, m, err,
	    sizeof(err)) != 0)
		fail_msg("decode failed: %s", err);
}

/* Decoding must fail, leave m zeroed and give a reason starting so. */
static void
expect_error(const void *payload, size_t len, const char *prefix)
{
	struct proto_msg	 m;
	char			 err[ERRLEN];

	memset(&m, 0xa5, sizeof(m));
	if (proto_decode(payload, len, &m, err, sizeof(err)) != -1)
		fail_msg("decode succeeded; expected \"%s\"", prefix);
	assert_true(msg_is_zero(&m));
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("error \"%s\", expected \"%s...\"", err, prefix);
}

static void
expect_error_sb(const msgpack_sbuffer *sb, const char *prefix)
{
	expect_error(sb->data, sb->size, prefix);
}

/* A well-formed RUN_STEP with values that stress the encoding. */
static void
sample_run_step(struct proto_run_step *r)
{
	memset(r, 0, sizeof(*r));
	r->step_id = INT64_MAX;
	r->task_id = 42;
	r->lease_token = INT64_MIN;
	r->attempt = UINT32_MAX;
	r->step_name = "create_user_account";
	r->handler = "http";
	r->config = load("{\"method\": \"POST\", \"url\": \"/users\", "
	    "\"headers\": {\"X-Tr\\u00e4ce\": \"\\u65e5\\u672c\"}, "
	    "\"body\": {\"n\": -5, \"big\": 9223372036854775807, "
	    "\"r\": 0.125, \"list\": [1, [2, [3, {\"deep\": null}]]]}}");
	r->input = load("{\"context\": {\"email\": \"\\ud83d\\ude80@x\"}, "
	    "\"steps\": {}, \"attempt\": 1}");
	r->timeout_ms = 5000;
	r->correlation_id = "c0rr-\xc3\xa9";
	r->idempotency_key = "42:create_user_account";
}

static void
sample_run_step_free(struct proto_run_step *r)
{
	json_decref(r->config);
	json_decref(r->input);
}

static void
sample_outcome(struct proto_step_outcome *o)
{
	memset(o, 0, sizeof(*o));
	o->step_id = 7;
	o->lease_token = -3;
	o->outcome = OUTCOME_RETRYABLE;
	o->results = load("{\"id\": 12, \"tags\": [\"\\u00df\"]}");
	o->error_code = "http_503";
	o->error_message = "Service Unavailable \xe2\x80\x94 try later";
	o->http_status = 503;
	o->retry_after_ms = 120000;
	o->duration_us = INT64_MAX;
}

/*
 * Round trips.
 */

static void
test_hello_roundtrip(void **state)
{
	struct proto_buf	 b;
	struct proto_hello	 h = { PROTO_VERSION, 4194304 };
	struct proto_msg	 m;

	(void)state;
	proto_buf_init(&b);
	proto_encode_hello(&b, &h);
	decode_only_frame(&b, &m);
	assert_int_equal(m.type, PROTO_HELLO);
	assert_int_equal(m.u.hello.version, PROTO_VERSION);
	assert_int_equal(m.u.hello.pid, 4194304);
	proto_msg_clear(&m);
	proto_buf_free(&b);

	h.version = UINT32_MAX;
	h.pid = INT64_MAX;
	proto_encode_hello(&b, &h);
	decode_only_frame(&b, &m);
	assert_int_equal(m.u.hello.version, UINT32_MAX);
	assert_true(m.u.hello.pid == INT64_MAX);
	proto_msg_clear(&m);
	proto_buf_free(&b);
}

static void
test_ping_pong_roundtrip(void **state)
{
	static const uint64_t	 seqs[] = { 0, 1, 127, 128, UINT32_MAX,
				    (uint64_t)UINT32_MAX + 1, UINT64_MAX };
	struct proto_buf	 b;
	struct proto_msg	 m;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		proto_buf_init(&b);
		proto_encode_ping(&b, i % 2 ? PROTO_PONG : PROTO_PING,
		    seqs[i]);
		decode_only_frame(&b, &m);
		assert_int_equal(m.type, i % 2 ? PROTO_PONG : PROTO_PING);
		assert_true(m.u.ping.seq == seqs[i]);
		proto_msg_clear(&m);
		proto_buf_free(&b);
	}
}

static void
test_run_step_roundtrip(void **state)
{
	struct proto_buf	 b;
	struct proto_run_step	 r;
	struct proto_msg	 m;

	(void)state;
	sample_run_step(&r);
	proto_buf_init(&b);
	proto_encode_run_step(&b, &r);
	decode_only_frame(&b, &m);
	assert_int_equal(m.type, PROTO_RUN_STEP);
	assert_true(m.u.run.step_id == INT64_MAX);
	assert_int_equal(m.u.run.task_id, 42);
	assert_true(m.u.run.lease_token == INT64_MIN);
	assert_int_equal(m.u.run.attempt, UINT32_MAX);
	assert_string_equal(m.u.run.step_name, r.step_name);
	assert_string_equal(m.u.run.handler, "http");
	assert_true(json_equal(m.u.run.config, r.config));
	assert_true(json_equal(m.u.run.input, r.input));
	assert_int_equal(m.u.run.timeout_ms, 5000);
	assert_string_equal(m.u.run.correlation_id, r.correlation_id);
	assert_string_equal(m.u.run.idempotency_key, r.idempotency_key);
	proto_msg_clear(&m);
	proto_buf_free(&b);
	sample_run_step_free(&r);
}

/* No config (NULL) and an empty one must both arrive as real values. */
static void
test_run_step_null_config(void **state)
{
	struct proto_buf	 b;
	struct proto_run_step	 r;
	struct proto_msg	 m;

	(void)state;
	sample_run_step(&r);
	sample_run_step_free(&r);
	r.config = NULL;
	r.input = json_null();
	r.step_name = "";
	r.attempt = 1;
	r.timeout_ms = 0;
	proto_buf_init(&b);
	proto_encode_run_step(&b, &r);
	decode_only_frame(&b, &m);
	assert_non_null(m.u.run.config);
	assert_true(json_is_null(m.u.run.config));
	assert_non_null(m.u.run.input);
	assert_true(json_is_null(m.u.run.input));
	assert_string_equal(m.u.run.step_name, "");
	assert_int_equal(m.u.run.attempt, 1);
	assert_int_equal(m.u.run.timeout_ms, 0);
	proto_msg_clear(&m);
	proto_buf_free(&b);
}

/* 30 levels of config nesting get through msgpack-c's parser. */
static void
test_run_step_deep_config(void **state)
{
	struct proto_buf	 b;
	struct proto_run_step	 r;
	struct proto_msg	 m;
	json_t			*deep, *outer;
	int			 i;

	(void)state;
	sample_run_step(&r);
	deep = json_integer(1);
	for (i = 0; i < 30; i++) {
		outer = i % 2 ? json_array() : json_object();
		if (i % 2)
			json_array_append_new(outer, deep);
		else
			json_object_set_new(outer, "k", deep);
		deep = outer;
	}
	json_decref(r.config);
	r.config = deep;
	proto_buf_init(&b);
	proto_encode_run_step(&b, &r);
	decode_only_frame(&b, &m);
	assert_true(json_equal(m.u.run.config, deep));
	proto_msg_clear(&m);
	proto_buf_free(&b);
	sample_run_step_free(&r);
}

static void
test_outcome_roundtrip(void **state)
{
	struct proto_buf		 b;
	struct proto_step_outcome	 o;
	struct proto_msg		 m;

	(void)state;
	sample_outcome(&o);
	proto_buf_init(&b);
	proto_encode_outcome(&b, &o);
	decode_only_frame(&b, &m);
	assert_int_equal(m.type, PROTO_STEP_OUTCOME);
	assert_int_equal(m.u.outcome.step_id, 7);
	assert_int_equal(m.u.outcome.lease_token, -3);
	assert_int_equal(m.u.outcome.outcome, OUTCOME_RETRYABLE);
	assert_true(json_equal(m.u.outcome.results, o.results));
	assert_string_equal(m.u.outcome.error_code, "http_503");
	assert_string_equal(m.u.outcome.error_message, o.error_message);
	assert_int_equal(m.u.outcome.http_status, 503);
	assert_int_equal(m.u.outcome.retry_after_ms, 120000);
	assert_true(m.u.outcome.duration_us == INT64_MAX);
	proto_msg_clear(&m);
	proto_buf_free(&b);
	json_decref(o.results);
}

static void
test_outcome_nil_fields(void **state)
{
	struct proto_buf		 b;
	struct proto_step_outcome	 o;
	struct proto_msg		 m;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.step_id = 1;
	o.outcome = OUTCOME_PERMANENT;
	o.retry_after_ms = -1;
	proto_buf_init(&b);
	proto_encode_outcome(&b, &o);
	decode_only_frame(&b, &m);
	assert_int_equal(m.u.outcome.outcome, OUTCOME_PERMANENT);
	assert_null(m.u.outcome.results);
	assert_null(m.u.outcome.error_code);
	assert_null(m.u.outcome.error_message);
	assert_int_equal(m.u.outcome.http_status, 0);
	assert_int_equal(m.u.outcome.retry_after_ms, -1);
	assert_int_equal(m.u.outcome.duration_us, 0);
	proto_msg_clear(&m);
	proto_buf_free(&b);
}

/* A handler's error text may quote any bytes; the frame must stay valid. */
static void
test_outcome_repairs_utf8(void **state)
{
	struct proto_buf		 b;
	struct proto_step_outcome	 o;
	struct proto_msg		 m;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.error_message = "bad \xff byte, cut \xe2\x80";
	o.error_code = "ok \xc3\xa9";
	proto_buf_init(&b);
	proto_encode_outcome(&b, &o);
	decode_only_frame(&b, &m);
	assert_string_equal(m.u.outcome.error_message,
	    "bad \xef\xbf\xbd byte, cut \xef\xbf\xbd\xef\xbf\xbd");
	assert_string_equal(m.u.outcome.error_code, "ok \xc3\xa9");
	proto_msg_clear(&m);
	proto_buf_free(&b);
}

/* Frames queue up in one buffer, which grows past its first size. */
static void
test_buffer_holds_many_frames(void **state)
{
	struct proto_buf	 b;
	struct proto_run_step	 r;
	struct proto_msg	 m;
	char			*big;
	size_t			 off, plen;
	int			 i;

	(void)state;
	big = malloc(200000);
	assert_non_null(big);
	memset(big, 'x', 199999);
	big[199999] = '\0';
	sample_run_step(&r);
	r.handler = big;

	proto_buf_init(&b);
	for (i = 0; i < 100; i++)
		proto_encode_ping(&b, PROTO_PING, i);
	proto_encode_run_step(&b, &r);
	proto_encode_ping(&b, PROTO_PONG, 100);
	assert_true(b.cap >= b.len);

	for (off = 0, i = 0; off < b.len; i++) {
		assert_int_equal(proto_frame_peek(b.data + off, b.len - off,
		    PROTO_DEFAULT_MAX_FRAME, &plen), 0);
		assert_int_equal(proto_decode(b.data + off + PROTO_HEADER_LEN,
		    plen, &m, NULL, 0), 0);
		if (i < 100)
			assert_int_equal(m.u.ping.seq, i);
		else if (i == 100)
			assert_string_equal(m.u.run.handler, big);
		else
			assert_int_equal(m.type, PROTO_PONG);
		proto_msg_clear(&m);
		off += PROTO_HEADER_LEN + plen;
	}
	assert_int_equal(i, 102);
	assert_int_equal(off, b.len);
	proto_buf_free(&b);
	assert_null(b.data);
	proto_buf_free(&b);
	sample_run_step_free(&r);
	free(big);
}

/*
 * Framing.
 */

static void
test_frame_peek(void **state)
{
	unsigned char	 f[4 + 10];
	size_t		 plen, i;

	(void)state;
	memset(f, 0, sizeof(f));
	f[3] = 10;
	/* a partial header, then a partial payload */
	for (i = 0; i < sizeof(f); i++)
		assert_int_equal(proto_frame_peek(f, i, 100, &plen), 1);
	plen = 0;
	assert_int_equal(proto_frame_peek(f, sizeof(f), 100, &plen), 0);
	assert_int_equal(plen, 10);
	/* more than one frame's worth is fine */
	assert_int_equal(proto_frame_peek(f, sizeof(f), 10, &plen), 0);
	/* the cap is on the payload, not on the header */
	assert_int_equal(proto_frame_peek(f, sizeof(f), 9, &plen), -1);
	assert_int_equal(proto_frame_peek(f, 4, 9, &plen), -1);

	/* length 0 is never a frame */
	memset(f, 0, 4);
	assert_int_equal(proto_frame_peek(f, 4, 100, &plen), -1);
	assert_int_equal(proto_frame_peek(f, sizeof(f), 100, &plen), -1);

	/* a huge length is refused from the header alone */
	memset(f, 0xff, 4);
	assert_int_equal(proto_frame_peek(f, 4, PROTO_DEFAULT_MAX_FRAME,
	    &plen), -1);
	assert_int_equal(proto_frame_peek(f, 4, SIZE_MAX, &plen), 1);
	f[0] = 0x01;	/* PROTO_DEFAULT_MAX_FRAME + 0xffffff: over */
	assert_int_equal(proto_frame_peek(f, 4, PROTO_DEFAULT_MAX_FRAME,
	    &plen), -1);
	f[0] = 0x01; f[1] = f[2] = f[3] = 0;	/* exactly the cap */
	assert_int_equal(proto_frame_peek(f, 4, PROTO_DEFAULT_MAX_FRAME,
	    &plen), 1);
}

/*
 * Decode errors.  Payloads are built field by field so that one field at a
 * time can be wrong, missing or extra.
 */

enum kind { K_INT, K_UINT, K_STR, K_STR_NIL, K_JSON, K_JSON_NIL };

struct field {
	const char	*name;
	enum kind	 kind;
};

static const struct field run_fields[] = {
	{ "step_id", K_INT }, { "task_id", K_INT }, { "lease_token", K_INT },
	{ "attempt", K_UINT }, { "step_name", K_STR }, { "handler", K_STR },
	{ "config", K_JSON }, { "input", K_JSON }, { "timeout_ms", K_UINT },
	{ "correlation_id", K_STR }, { "idempotency_key", K_STR },
};

static const struct field outcome_fields[] = {
	{ "step_id", K_INT }, { "lease_token", K_INT }, { "outcome", K_UINT },
	{ "results", K_JSON_NIL }, { "error_code", K_STR_NIL },
	{ "error_message", K_STR_NIL }, { "http_status", K_INT },
	{ "retry_after_ms", K_INT }, { "duration_us", K_INT },
};

static const struct field hello_fields[] = {
	{ "version", K_UINT }, { "pid", K_INT },
};

static const struct field ping_fields[] = {
	{ "seq", K_UINT },
};

static const struct msgspec {
	enum proto_type		 type;
	const char		*tag;
	const struct field	*fields;
	size_t			 nfields;
} specs[] = {
	{ PROTO_HELLO, "HELLO", hello_fields, 2 },
	{ PROTO_PING, "PING", ping_fields, 1 },
	{ PROTO_PONG, "PONG", ping_fields, 1 },
	{ PROTO_RUN_STEP, "RUN_STEP", run_fields, 11 },
	{ PROTO_STEP_OUTCOME, "STEP_OUTCOME", outcome_fields, 9 },
};

#define NSPECS	(sizeof(specs) / sizeof(specs[0]))

/* A valid value for field i of a kind (1 for attempt/outcome/pid alike). */
static void
pack_good(msgpack_packer *pk, enum kind kind)
{
	switch (kind) {
	case K_INT:
	case K_UINT:
		msgpack_pack_uint8(pk, 1);
		break;
	case K_STR:
	case K_STR_NIL:
		msgpack_pack_str_with_body(pk, "s", 1);
		break;
	case K_JSON:
	case K_JSON_NIL:
		msgpack_pack_map(pk, 1);
		msgpack_pack_str_with_body(pk, "k", 1);
		msgpack_pack_array(pk, 2);
		msgpack_pack_int8(pk, -1);
		msgpack_pack_nil(pk);
		break;
	}
}

/* A bad value: what pack_bad_* below writes in place of a field. */
typedef void	(*packfn)(msgpack_packer *);

/*
 * Packs spec's message with nfields fields (fewer or more than it has),
 * field bad (1-based; 0 for none) replaced by badfn's output.
 */
static void
pack_message(msgpack_sbuffer *sb, const struct msgspec *s, size_t nfields,
    size_t bad, packfn badfn)
{
	msgpack_packer	 pk;
	size_t		 i;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, nfields + 1);
	msgpack_pack_uint32(&pk, s->type);
	for (i = 1; i <= nfields; i++) {
		if (i == bad)
			badfn(&pk);
		else if (i <= s->nfields)
			pack_good(&pk, s->fields[i - 1].kind);
		else
			msgpack_pack_nil(&pk);
	}
}

static void
pack_bad_str(msgpack_packer *pk)
{
	msgpack_pack_str_with_body(pk, "1", 1);
}

static void
pack_bad_float(msgpack_packer *pk)
{
	msgpack_pack_double(pk, 1.0);
}

static void
pack_bad_nil(msgpack_packer *pk)
{
	msgpack_pack_nil(pk);
}

static void
pack_bad_int(msgpack_packer *pk)
{
	msgpack_pack_int8(pk, 1);
}

static void
pack_bad_bool(msgpack_packer *pk)
{
	msgpack_pack_true(pk);
}

static void
pack_bad_bin(msgpack_packer *pk)
{
	msgpack_pack_bin_with_body(pk, "ab", 2);
}

static void
pack_bad_ext(msgpack_packer *pk)
{
	msgpack_pack_ext_with_body(pk, "ab", 2, 5);
}

static void
pack_bad_array(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 0);
}

/* A map with an integer key: JSON has no such thing. */
static void
pack_bad_intkey(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 1);
	msgpack_pack_str_with_body(pk, "ok", 2);
	msgpack_pack_map(pk, 1);
	msgpack_pack_int8(pk, 1);
	msgpack_pack_nil(pk);
}

static void
pack_bad_utf8(msgpack_packer *pk)
{
	msgpack_pack_str_with_body(pk, "a\xc3(", 3);
}

static void
pack_bad_utf8_deep(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 1);
	msgpack_pack_str_with_body(pk, "\xed\xa0\x80", 3);
}

static void
pack_bad_nul(msgpack_packer *pk)
{
	msgpack_pack_str_with_body(pk, "a\0b", 3);
}

static void
pack_bad_uint64(msgpack_packer *pk)
{
	msgpack_pack_uint64(pk, (uint64_t)INT64_MAX + 1);
}

static void
pack_bad_minus1(msgpack_packer *pk)
{
	msgpack_pack_int64(pk, -1);
}

/* What each kind of field must refuse, and how it says so. */
static const struct {
	enum kind	 kind;
	packfn		 fn;
	const char	*reason;
} wrong[] = {
	{ K_INT,	pack_bad_str,	"expected int" },
	{ K_INT,	pack_bad_float,	"expected int" },
	{ K_INT,	pack_bad_nil,	"expected int" },
	{ K_INT,	pack_bad_bool,	"expected int" },
	{ K_INT,	pack_bad_uint64, "out of range" },
	{ K_UINT,	pack_bad_str,	"expected int" },
	{ K_UINT,	pack_bad_nil,	"expected int" },
	{ K_UINT,	pack_bad_minus1, "out of range" },
	{ K_STR,	pack_bad_int,	"expected str" },
	{ K_STR,	pack_bad_nil,	"expected str" },
	{ K_STR,	pack_bad_bin,	"expected str" },
	{ K_STR,	pack_bad_utf8,	"str is not UTF-8" },
	{ K_STR,	pack_bad_nul,	"str contains NUL" },
	{ K_STR_NIL,	pack_bad_int,	"expected str or nil" },
	{ K_STR_NIL,	pack_bad_array,	"expected str or nil" },
	{ K_STR_NIL,	pack_bad_utf8,	"str is not UTF-8" },
	{ K_STR_NIL,	pack_bad_nul,	"str contains NUL" },
	{ K_JSON,	pack_bad_bin,	"not a JSON value" },
	{ K_JSON,	pack_bad_ext,	"not a JSON value" },
	{ K_JSON,	pack_bad_intkey, "not a JSON value" },
	{ K_JSON,	pack_bad_utf8,	"not a JSON value" },
	{ K_JSON,	pack_bad_utf8_deep, "not a JSON value" },
	{ K_JSON,	pack_bad_uint64, "not a JSON value" },
	{ K_JSON_NIL,	pack_bad_bin,	"not a JSON value" },
	{ K_JSON_NIL,	pack_bad_intkey, "not a JSON value" },
	{ K_JSON_NIL,	pack_bad_utf8,	"not a JSON value" },
};

/* The builder itself must make messages that decode, or nothing is shown. */
static void
test_builder_baseline(void **state)
{
	msgpack_sbuffer		 sb;
	struct proto_msg	 m;
	char			 err[ERRLEN];
	size_t			 i;

	(void)state;
	for (i = 0; i < NSPECS; i++) {
		pack_message(&sb, &specs[i], specs[i].nfields, 0, NULL);
		if (proto_decode((unsigned char *)sb.data, sb.size, &m, err,
		    sizeof(err)) != 0)
			fail_msg("%s: %s", specs[i].tag, err);
		assert_int_equal(m.type, specs[i].type);
		proto_msg_clear(&m);
		msgpack_sbuffer_destroy(&sb);
	}
}

static void
test_wrong_field_types(void **state)
{
	msgpack_sbuffer	 sb;
	char		 want[ERRLEN];
	size_t		 i, f, w, tried = 0;

	(void)state;
	for (i = 0; i < NSPECS; i++) {
		for (f = 1; f <= specs[i].nfields; f++) {
			for (w = 0; w < sizeof(wrong) / sizeof(wrong[0]); w++) {
				if (wrong[w].kind != specs[i].fields[f - 1].kind)
					continue;
				pack_message(&sb, &specs[i], specs[i].nfields,
				    f, wrong[w].fn);
				snprintf(want, sizeof(want), "%s: field %zu "
				    "(%s): %s", specs[i].tag, f,
				    specs[i].fields[f - 1].name,
				    wrong[w].reason);
				expect_error_sb(&sb, want);
				msgpack_sbuffer_destroy(&sb);
				tried++;
			}
		}
	}
	/* every field of every message met at least two wrong values */
	assert_true(tried >= 2 * (2 + 1 + 1 + 11 + 9));
}

static void
test_missing_and_trailing_fields(void **state)
{
	msgpack_sbuffer	 sb;
	char		 want[ERRLEN];
	size_t		 i, n;

	(void)state;
	for (i = 0; i < NSPECS; i++) {
		for (n = 0; n < specs[i].nfields; n++) {
			pack_message(&sb, &specs[i], n, 0, NULL);
			snprintf(want, sizeof(want), "%s: field %zu (%s): "
			    "missing", specs[i].tag, n + 1,
			    specs[i].fields[n].name);
			expect_error_sb(&sb, want);
			msgpack_sbuffer_destroy(&sb);
		}
		pack_message(&sb, &specs[i], specs[i].nfields + 1, 0, NULL);
		snprintf(want, sizeof(want), "%s: field %zu: unexpected "
		    "trailing field", specs[i].tag, specs[i].nfields + 1);
		expect_error_sb(&sb, want);
		msgpack_sbuffer_destroy(&sb);
	}
}

static int64_t	 range_value;	/* what pack_range_value() writes */

static void
pack_range_value(msgpack_packer *pk)
{
	msgpack_pack_int64(pk, range_value);
}

static const struct msgspec *
spec_for(enum proto_type type)
{
	size_t	 i;

	for (i = 0; i < NSPECS; i++)
		if (specs[i].type == type)
			return &specs[i];
	fail_msg("no spec for type %d", type);
	return NULL;
}

/* Values of the right msgpack type that the header rules out, and the
 * edges it allows. */
static void
test_field_ranges(void **state)
{
	static const struct {
		enum proto_type	 type;
		size_t		 field;
		int64_t		 value;
		int		 ok;
	} cases[] = {
		{ PROTO_HELLO, 1, UINT32_MAX, 1 },
		{ PROTO_HELLO, 1, (int64_t)UINT32_MAX + 1, 0 },
		{ PROTO_HELLO, 2, 1, 1 },
		{ PROTO_HELLO, 2, 0, 0 },
		{ PROTO_HELLO, 2, -5, 0 },
		{ PROTO_PING, 1, -1, 0 },
		{ PROTO_PONG, 1, INT64_MIN, 0 },
		{ PROTO_RUN_STEP, 1, INT64_MIN, 1 },
		{ PROTO_RUN_STEP, 4, 1, 1 },
		{ PROTO_RUN_STEP, 4, 0, 0 },
		{ PROTO_RUN_STEP, 4, (int64_t)UINT32_MAX + 1, 0 },
		{ PROTO_RUN_STEP, 9, UINT32_MAX, 1 },
		{ PROTO_RUN_STEP, 9, (int64_t)UINT32_MAX + 1, 0 },
		{ PROTO_STEP_OUTCOME, 3, 0, 1 },
		{ PROTO_STEP_OUTCOME, 3, 2, 1 },
		{ PROTO_STEP_OUTCOME, 3, 3, 0 },
		{ PROTO_STEP_OUTCOME, 3, -1, 0 },
		{ PROTO_STEP_OUTCOME, 7, 0, 1 },
		{ PROTO_STEP_OUTCOME, 7, 999, 1 },
		{ PROTO_STEP_OUTCOME, 7, 1000, 0 },
		{ PROTO_STEP_OUTCOME, 7, -1, 0 },
		{ PROTO_STEP_OUTCOME, 8, -1, 1 },
		{ PROTO_STEP_OUTCOME, 8, -2, 0 },
		{ PROTO_STEP_OUTCOME, 9, 0, 1 },
		{ PROTO_STEP_OUTCOME, 9, -1, 0 },
	};
	const struct msgspec	*sp;
	msgpack_sbuffer		 sb;
	struct proto_msg	 m;
	char			 want[ERRLEN];
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sp = spec_for(cases[i].type);
		range_value = cases[i].value;
		pack_message(&sb, sp, sp->nfields, cases[i].field,
		    pack_range_value);
		if (cases[i].ok) {
			assert_int_equal(proto_decode((unsigned char *)sb.data,
			    sb.size, &m, NULL, 0), 0);
			proto_msg_clear(&m);
		} else {
			snprintf(want, sizeof(want), "%s: field %zu (%s): "
			    "out of range", sp->tag, cases[i].field,
			    sp->fields[cases[i].field - 1].name);
			expect_error_sb(&sb, want);
		}
		msgpack_sbuffer_destroy(&sb);
	}
}

/* The one case the brief spells out, checked word for word. */
static void
test_error_text(void **state)
{
	msgpack_sbuffer		 sb;
	struct proto_msg	 m;
	char			 err[ERRLEN], tiny[8];

	(void)state;
	pack_message(&sb, spec_for(PROTO_RUN_STEP), 11, 6, pack_bad_int);
	assert_int_equal(proto_decode((unsigned char *)sb.data, sb.size, &m,
	    err, sizeof(err)), -1);
	assert_string_equal(err, "RUN_STEP: field 6 (handler): expected str");
	/* a short buffer is truncated, not overrun; none at all is fine */
	assert_int_equal(proto_decode((unsigned char *)sb.data, sb.size, &m,
	    tiny, sizeof(tiny)), -1);
	assert_string_equal(tiny, "RUN_STE");
	assert_int_equal(proto_decode((unsigned char *)sb.data, sb.size, &m,
	    NULL, 0), -1);
	assert_true(msg_is_zero(&m));
	msgpack_sbuffer_destroy(&sb);
}

/* Payloads that are wrong before any field is read. */
static void
test_bad_payloads(void **state)
{
	struct proto_buf	 b;
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	int			 i, d;

	(void)state;
	expect_error("", 0, "payload: truncated");
	/* not an array: an int, a map, a str */
	expect_error("\x05", 1, "payload: not an array");
	expect_error("\x81\xa1k\x01", 4, "payload: not an array");
	expect_error("\xa3" "abc", 4, "payload: not an array");
	expect_error("\x90", 1, "payload: empty array");
	/* unknown types, and a type that is not an int */
	expect_error("\x91\xcd\x03\xe7", 4, "message: unknown type 999");
	expect_error("\x91\x00", 2, "message: unknown type 0");
	expect_error("\x92\xcc\xca\x01", 4, "message: unknown type 202");
	expect_error("\x91\xff", 2, "message: field 0 (type): out of range");
	expect_error("\x91\xa4ping", 6, "message: field 0 (type): "
	    "expected int");
	expect_error("\x91\xc0", 2, "message: field 0 (type): expected int");
	/* a valid PING followed by a byte, and by a second message */
	expect_error("\x92\x65\x01\xc0", 4, "payload: trailing bytes");
	expect_error("\x92\x65\x01\x92\x65\x01", 6, "payload: trailing bytes");
	/* never-used byte 0xc1 */
	expect_error("\x92\x65\xc1", 3, "payload: malformed");
	/* a declared str longer than the payload */
	expect_error("\x93\x64\x01\xdb\xff\xff\xff\xff", 8,
	    "payload: truncated");
	/*
	 * Containers announcing far more elements than there are bytes:
	 * refused before msgpack-c would allocate them.
	 */
	expect_error("\xdd\xff\xff\xff\xff", 5, "payload: container");
	expect_error("\x91\xdf\x10\x00\x00\x00", 6, "payload: container");
	expect_error("\x93\x65\x01\xdc\x00\x03\x01\x01", 8,
	    "payload: container");

	/* 65 nested arrays in config: msgpack-c gives up at 32. */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 12);
	msgpack_pack_uint32(&pk, PROTO_RUN_STEP);
	for (i = 1; i <= 11; i++) {
		if (i == 7) {
			for (d = 0; d < 65; d++)
				msgpack_pack_array(&pk, 1);
			msgpack_pack_nil(&pk);
		} else
			pack_good(&pk, run_fields[i - 1].kind);
	}
	expect_error_sb(&sb, "payload: nested too deeply");
	msgpack_sbuffer_destroy(&sb);

	/* A frame with its header still on: the 0x00 reads as a lone int. */
	proto_buf_init(&b);
	proto_encode_ping(&b, PROTO_PING, 1);
	expect_error(b.data, b.len, "payload: trailing bytes");
	proto_buf_free(&b);
}

/*
 * Every proper prefix of a valid payload is an error, never a crash or a
 * partial message; run under ASan/valgrind this also proves no read past
 * len.  Each prefix is copied to a buffer of exactly its size for that.
 */
static void
test_every_truncation(void **state)
{
	struct proto_buf		 b;
	struct proto_run_step		 r;
	struct proto_step_outcome	 o;
	struct proto_hello		 h = { PROTO_VERSION, 99 };
	struct proto_msg		 m;
	unsigned char			*copy;
	size_t				 plen, len;
	int				 which;

	(void)state;
	sample_run_step(&r);
	sample_outcome(&o);
	for (which = 0; which < 3; which++) {
		proto_buf_init(&b);
		if (which == 0)
			proto_encode_run_step(&b, &r);
		else if (which == 1)
			proto_encode_outcome(&b, &o);
		else
			proto_encode_hello(&b, &h);
		plen = b.len - PROTO_HEADER_LEN;
		for (len = 0; len < plen; len++) {
			copy = malloc(len > 0 ? len : 1);
			assert_non_null(copy);
			memcpy(copy, b.data + PROTO_HEADER_LEN, len);
			memset(&m, 0x5a, sizeof(m));
			assert_int_equal(proto_decode(copy, len, &m, NULL, 0),
			    -1);
			assert_true(msg_is_zero(&m));
			free(copy);
		}
		proto_buf_free(&b);
	}
	sample_run_step_free(&r);
	json_decref(o.results);
}

/*
 * Every single-byte corruption of valid payloads: decode may accept or
 * refuse, but must not crash or leak (the point of running under ASan).
 */
static void
test_every_byte_flip(void **state)
{
	static const unsigned char	 vals[] = { 0x00, 0x7f, 0x80, 0x90,
					    0xa0, 0xc0, 0xc1, 0xc4, 0xca,
					    0xcf, 0xd4, 0xdb, 0xdd, 0xdf,
					    0xff };
	struct proto_buf		 b;
	struct proto_run_step		 r;
	struct proto_step_outcome	 o;
	struct proto_msg		 m;
	unsigned char			*p;
	size_t				 plen, i, v;
	int				 ok = 0, bad = 0;

	(void)state;
	sample_run_step(&r);
	sample_outcome(&o);
	proto_buf_init(&b);
	proto_encode_run_step(&b, &r);
	proto_encode_outcome(&b, &o);
	/* both frames back to back; treat each payload in turn */
	p = malloc(b.len);
	assert_non_null(p);
	for (i = 0; i < b.len; i++) {
		for (v = 0; v < sizeof(vals); v++) {
			size_t	 off, j;

			memcpy(p, b.data, b.len);
			p[i] = vals[v];
			for (off = 0; off < b.len; off += PROTO_HEADER_LEN +
			    plen) {
				plen = be32(b.data + off);
				j = off + PROTO_HEADER_LEN;
				if (proto_decode(p + j, plen, &m, NULL, 0) == 0) {
					ok++;
					proto_msg_clear(&m);
				} else
					bad++;
			}
		}
	}
	/* some corruptions still decode (a changed digit), most do not */
	assert_true(ok > 0);
	assert_true(bad > 0);
	free(p);
	proto_buf_free(&b);
	sample_run_step_free(&r);
	json_decref(o.results);
}

static void
test_msg_clear_is_idempotent(void **state)
{
	struct proto_buf	 b;
	struct proto_run_step	 r;
	struct proto_msg	 m;

	(void)state;
	memset(&m, 0, sizeof(m));
	proto_msg_clear(&m);
	assert_true(msg_is_zero(&m));

	sample_run_step(&r);
	proto_buf_init(&b);
	proto_encode_run_step(&b, &r);
	decode_only_frame(&b, &m);
	proto_msg_clear(&m);
	assert_true(msg_is_zero(&m));
	proto_msg_clear(&m);
	assert_true(msg_is_zero(&m));
	proto_buf_free(&b);
	sample_run_step_free(&r);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(proto_type_name(PROTO_HELLO), "hello");
	assert_string_equal(proto_type_name(PROTO_PING), "ping");
	assert_string_equal(proto_type_name(PROTO_PONG), "pong");
	assert_string_equal(proto_type_name(PROTO_RUN_STEP), "run_step");
	assert_string_equal(proto_type_name(PROTO_STEP_OUTCOME),
	    "step_outcome");
	assert_string_equal(proto_type_name((enum proto_type)0), "unknown");
	assert_string_equal(proto_type_name((enum proto_type)202), "unknown");
	assert_string_equal(proto_outcome_name(OUTCOME_SUCCESS), "success");
	assert_string_equal(proto_outcome_name(OUTCOME_RETRYABLE),
	    "retryable");
	assert_string_equal(proto_outcome_name(OUTCOME_PERMANENT),
	    "permanent");
	assert_string_equal(proto_outcome_name((enum proto_outcome)3),
	    "unknown");
	assert_string_equal(proto_outcome_name((enum proto_outcome)-1),
	    "unknown");
}

/*
 * Values that cost far more decoded than their bytes: an empty map is one
 * byte of payload and some 250 bytes as msgpack-c's object and jansson's.
 * A payload whose decoding would take over 128 MiB (and over four times
 * its size) is refused before anything is built; a long string is not.
 */
static unsigned	heavy_n;

static void
pack_heavy(msgpack_packer *pk)
{
	unsigned	i;

	msgpack_pack_array(pk, heavy_n);
	for (i = 0; i < heavy_n; i++)
		msgpack_pack_map(pk, 0);
}

static void
test_costly_values(void **state)
{
	const struct msgspec	*outcome = &specs[4];
	struct proto_msg	 m;
	msgpack_sbuffer		 sb;
	char			 err[ERRLEN];
	unsigned char		*p;
	size_t			 n;

	(void)state;
	assert_int_equal(outcome->type, PROTO_STEP_OUTCOME);
	heavy_n = 600000;		/* 600 KB: 150 MB */
	pack_message(&sb, outcome, outcome->nfields, 4, pack_heavy);
	expect_error_sb(&sb, "payload: too many values: decoded, they would "
	    "take more than 128 MiB");
	assert_non_null(proto_scan((unsigned char *)sb.data, sb.size));
	msgpack_sbuffer_destroy(&sb);

	heavy_n = 400000;		/* 100 MB: decoded */
	pack_message(&sb, outcome, outcome->nfields, 4, pack_heavy);
	assert_null(proto_scan((unsigned char *)sb.data, sb.size));
	if (proto_decode((unsigned char *)sb.data, sb.size, &m, err,
	    sizeof(err)) != 0)
		fail_msg("decode failed: %s", err);
	assert_int_equal(json_array_size(m.u.outcome.results), heavy_n);
	proto_msg_clear(&m);
	msgpack_sbuffer_destroy(&sb);

	/* 100 MB of string: twice that, but under four times its size. */
	n = 100u << 20;
	p = malloc(n + 5);
	assert_non_null(p);
	p[0] = 0xdb;			/* str 32 */
	p[1] = (unsigned char)(n >> 24);
	p[2] = (unsigned char)(n >> 16);
	p[3] = (unsigned char)(n >> 8);
	p[4] = (unsigned char)n;
	memset(p + 5, 'a', n);
	assert_null(proto_scan(p, n + 5));
	free(p);
}

/* proto_scan refuses the nesting msgpack-c refuses, and no other: n
 * levels of arrays of one element, the innermost empty or not, each level
 * also followed by siblings in one case. */
static void
test_scan_depth(void **state)
{
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	msgpack_unpacked	 u;
	msgpack_unpack_return	 rc;
	int			 n, i, shape;
	bool			 scan_ok, unpack_ok;

	(void)state;
	for (shape = 0; shape < 3; shape++) {
		for (n = 28; n <= 36; n++) {
			msgpack_sbuffer_init(&sb);
			msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
			for (i = 0; i < n; i++)
				msgpack_pack_array(&pk, shape == 2 ? 2 : 1);
			if (shape == 0)
				msgpack_pack_array(&pk, 0);
			else
				msgpack_pack_int(&pk, 7);
			for (i = 0; shape == 2 && i < n; i++)
				msgpack_pack_nil(&pk);
			scan_ok = proto_scan((unsigned char *)sb.data,
			    sb.size) == NULL;
			msgpack_unpacked_init(&u);
			rc = msgpack_unpack_next(&u, sb.data, sb.size, NULL);
			unpack_ok = rc == MSGPACK_UNPACK_SUCCESS;
			msgpack_unpacked_destroy(&u);
			msgpack_sbuffer_destroy(&sb);
			if (scan_ok != unpack_ok)
				fail_msg("shape %d, %d levels: scan %s, msgpack "
				    "%s", shape, n, scan_ok ? "takes" : "refuses",
				    unpack_ok ? "takes" : "refuses");
		}
	}
}

/* The depth cap that keeps every accepted value encodable (msgpack-c
 * refuses more than 32 levels): a value at the cap still round-trips inside
 * a RUN_STEP's input at its deepest position. */
static void
test_json_depth(void **state)
{
	json_t			*v = json_integer(1), *input;
	struct proto_run_step	 run;
	struct proto_buf	 buf;
	struct proto_msg	 m;
	size_t			 plen;
	char			 err[256];
	int			 i;

	(void)state;
	assert_int_equal(proto_json_depth(v), 0);
	for (i = 0; i < PROTO_MAX_JSON_DEPTH; i++)
		v = i % 2 ? json_pack("[o]", v) : json_pack("{s:o}", "k", v);
	assert_int_equal(proto_json_depth(v), PROTO_MAX_JSON_DEPTH);
	input = json_pack("{s:[]}", "a");
	assert_int_equal(proto_json_depth(input), 2);
	json_decref(input);

	input = json_pack("{s:{}, s:{s:{s:o}}, s:i}", "context", "steps",
	    "a", "results", v, "attempt", 1);
	memset(&run, 0, sizeof(run));
	run.step_id = run.task_id = run.lease_token = 1;
	run.attempt = 1;
	run.step_name = run.handler = run.correlation_id =
	    run.idempotency_key = "x";
	run.config = json_null();
	run.input = input;
	proto_buf_init(&buf);
	proto_encode_run_step(&buf, &run);
	assert_int_equal(proto_frame_peek(buf.data, buf.len,
	    PROTO_DEFAULT_MAX_FRAME, &plen), 0);
	assert_int_equal(proto_decode(buf.data + PROTO_HEADER_LEN, plen, &m,
	    err, sizeof(err)), 0);
	assert_true(json_equal(m.u.run.input, input));
	proto_msg_clear(&m);
	proto_buf_free(&buf);
	json_decref(input);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_roundtrip),
		cmocka_unit_test(test_ping_pong_roundtrip),
		cmocka_unit_test(test_run_step_roundtrip),
		cmocka_unit_test(test_run_step_null_config),
		cmocka_unit_test(test_run_step_deep_config),
		cmocka_unit_test(test_outcome_roundtrip),
		cmocka_unit_test(test_outcome_nil_fields),
		cmocka_unit_test(test_outcome_repairs_utf8),
		cmocka_unit_test(test_buffer_holds_many_frames),
		cmocka_unit_test(test_frame_peek),
		cmocka_unit_test(test_builder_baseline),
		cmocka_unit_test(test_wrong_field_types),
		cmocka_unit_test(test_missing_and_trailing_fields),
		cmocka_unit_test(test_field_ranges),
		cmocka_unit_test(test_error_text),
		cmocka_unit_test(test_bad_payloads),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_every_byte_flip),
		cmocka_unit_test(test_msg_clear_is_idempotent),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_json_depth),
		cmocka_unit_test(test_costly_values),
		cmocka_unit_test(test_scan_depth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
