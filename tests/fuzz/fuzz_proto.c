/*
 * fuzz_proto - the supervisor <-> worker frame codec (common/proto.c).
 *
 * The input is read twice: as a stream of frames (proto_frame_peek splits
 * it, each payload goes to proto_decode), and whole, as one payload.  A
 * payload that decodes is re-encoded with the matching proto_encode_*, the
 * new frame is split and decoded again, and the two messages must be equal
 * (json_equal for JSON members); re-encoding the second message must then
 * give the very same bytes (encoding is a function of the message).  A
 * payload that does not decode must leave the message cleared and a reason
 * in err.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "protocol.h"
#include "fuzz.h"

/* Small enough that a frame stream of a few KB exercises the cap. */
#define FUZZ_SMALL_MAX_FRAME	512

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
json_eq(const json_t *a, const json_t *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return json_equal((json_t *)a, (json_t *)b);
}

static void
msg_check_equal(const struct proto_msg *a, const struct proto_msg *b)
{
	const struct proto_run_step	*r1, *r2;
	const struct proto_step_outcome	*o1, *o2;

	FUZZ_CHECK(a->type == b->type, "type %d != %d", a->type, b->type);
	switch (a->type) {
	case PROTO_HELLO:
		FUZZ_CHECK(a->u.hello.version == b->u.hello.version &&
		    a->u.hello.pid == b->u.hello.pid, "HELLO differs");
		break;
	case PROTO_PING:
	case PROTO_PONG:
		FUZZ_CHECK(a->u.ping.seq == b->u.ping.seq, "PING seq differs");
		break;
	case PROTO_RUN_STEP:
		r1 = &a->u.run;
		r2 = &b->u.run;
		FUZZ_CHECK(r1->step_id == r2->step_id &&
		    r1->task_id == r2->task_id &&
		    r1->lease_token == r2->lease_token &&
		    r1->attempt == r2->attempt &&
		    r1->timeout_ms == r2->timeout_ms, "RUN_STEP ints differ");
		FUZZ_CHECK(str_eq(r1->step_name, r2->step_name) &&
		    str_eq(r1->handler, r2->handler) &&
		    str_eq(r1->correlation_id, r2->correlation_id) &&
		    str_eq(r1->idempotency_key, r2->idempotency_key),
		    "RUN_STEP strings differ");
		FUZZ_CHECK(r1->config != NULL && r1->input != NULL,
		    "RUN_STEP decoded a NULL JSON member");
		FUZZ_CHECK(json_eq(r1->config, r2->config), "config differs");
		FUZZ_CHECK(json_eq(r1->input, r2->input), "input differs");
		break;
	case PROTO_STEP_OUTCOME:
		o1 = &a->u.outcome;
		o2 = &b->u.outcome;
		FUZZ_CHECK(o1->step_id == o2->step_id &&
		    o1->lease_token == o2->lease_token &&
		    o1->outcome == o2->outcome &&
		    o1->http_status == o2->http_status &&
		    o1->retry_after_ms == o2->retry_after_ms &&
		    o1->duration_us == o2->duration_us,
		    "STEP_OUTCOME ints differ");
		FUZZ_CHECK(str_eq(o1->error_code, o2->error_code) &&
		    str_eq(o1->error_message, o2->error_message),
		    "STEP_OUTCOME strings differ");
		FUZZ_CHECK(o1->results == NULL || !json_is_null(o1->results),
		    "STEP_OUTCOME results is json null, not NULL");
		FUZZ_CHECK(json_eq(o1->results, o2->results),
		    "results differ");
		break;
	default:
		FUZZ_CHECK(0, "decoded unknown type %d", a->type);
	}
}

static void
encode(struct proto_buf *b, const struct proto_msg *m)
{
	switch (m->type) {
	case PROTO_HELLO:
		proto_encode_hello(b, &m->u.hello);
		break;
	case PROTO_PING:
	case PROTO_PONG:
		proto_encode_ping(b, m->type, m->u.ping.seq);
		break;
	case PROTO_RUN_STEP:
		proto_encode_run_step(b, &m->u.run);
		break;
	case PROTO_STEP_OUTCOME:
		proto_encode_outcome(b, &m->u.outcome);
		break;
	default:
		FUZZ_CHECK(0, "cannot encode type %d", m->type);
	}
}

/* Split an encoder's output, which must be exactly one well-formed frame,
 * and decode it into out. */
static void
decode_frame(const struct proto_buf *b, struct proto_msg *out)
{
	char	 err[256];
	size_t	 plen = 0;
	int	 rc;

	rc = proto_frame_peek(b->data, b->len, PROTO_DEFAULT_MAX_FRAME, &plen);
	FUZZ_CHECK(rc == 0, "encoded frame does not peek (%d)", rc);
	FUZZ_CHECK(plen + PROTO_HEADER_LEN == b->len,
	    "header says %zu, frame holds %zu", plen, b->len);
	rc = proto_decode(b->data + PROTO_HEADER_LEN, plen, out, err,
	    sizeof(err));
	FUZZ_CHECK(rc == 0, "re-encoded message does not decode: %s", err);
}

static void
roundtrip(const struct proto_msg *m1)
{
	struct proto_buf	 b1, b2;
	struct proto_msg	 m2;

	proto_buf_init(&b1);
	encode(&b1, m1);
	decode_frame(&b1, &m2);
	msg_check_equal(m1, &m2);

	proto_buf_init(&b2);
	encode(&b2, &m2);
	FUZZ_CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0,
	    "encoding is not stable (%zu vs %zu bytes)", b1.len, b2.len);

	/* Names are total functions. */
	FUZZ_CHECK(strcmp(proto_type_name(m1->type), "unknown") != 0,
	    "type %d has no name", m1->type);
	if (m1->type == PROTO_STEP_OUTCOME)
		FUZZ_CHECK(strcmp(proto_outcome_name(m1->u.outcome.outcome),
		    "unknown") != 0, "outcome has no name");

	proto_msg_clear(&m2);
	proto_buf_free(&b1);
	proto_buf_free(&b2);
}

static void
decode_one(const uint8_t *payload, size_t len)
{
	static const struct proto_msg	 zero;
	struct proto_msg		 m;
	char				 err[128];

	memset(err, 'x', sizeof(err));
	if (proto_decode(payload, len, &m, err, sizeof(err)) == -1) {
		FUZZ_CHECK(memcmp(&m, &zero, sizeof(m)) == 0,
		    "failed decode left the message set");
		FUZZ_CHECK(fuzz_err_ok(err, sizeof(err)),
		    "failed decode gave no reason");
		return;
	}
	roundtrip(&m);
	proto_msg_clear(&m);
	FUZZ_CHECK(memcmp(&m, &zero, sizeof(m)) == 0,
	    "proto_msg_clear left the message set");
}

/* Split data as the supervisor does its read buffer; the same buffer under
 * a smaller cap must give the same frames up to the first one too big. */
static void
frames(const uint8_t *data, size_t size)
{
	size_t	 off = 0, plen, small;
	int	 rc, rcs;

	for (;;) {
		plen = small = 0;
		rc = proto_frame_peek(data + off, size - off,
		    PROTO_DEFAULT_MAX_FRAME, &plen);
		rcs = proto_frame_peek(data + off, size - off,
		    FUZZ_SMALL_MAX_FRAME, &small);
		FUZZ_CHECK(rc >= -1 && rc <= 1, "peek returned %d", rc);
		if (rc != 0) {
			FUZZ_CHECK(rcs == rc || (rc == 1 && rcs == -1),
			    "peek: %d under the default cap, %d under %d",
			    rc, rcs, FUZZ_SMALL_MAX_FRAME);
			return;
		}
		FUZZ_CHECK(plen > 0 && plen <= PROTO_DEFAULT_MAX_FRAME &&
		    plen <= size - off - PROTO_HEADER_LEN,
		    "peek gave payload length %zu of %zu bytes", plen,
		    size - off);
		if (plen > FUZZ_SMALL_MAX_FRAME)
			FUZZ_CHECK(rcs == -1, "peek took a %zu byte frame "
			    "over a %d cap", plen, FUZZ_SMALL_MAX_FRAME);
		else
			FUZZ_CHECK(rcs == 0 && small == plen,
			    "peek disagrees under a smaller cap");
		decode_one(data + off + PROTO_HEADER_LEN, plen);
		off += PROTO_HEADER_LEN + plen;
	}
}

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	frames(data, size);
	decode_one(data, size);
	return 0;
}
