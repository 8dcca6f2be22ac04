/*
 * proto.c - the supervisor <-> worker frame codec (see protocol.h).
 *
 * Encoding packs straight into a proto_buf through a msgpack write callback:
 * the 4-byte length is reserved first and patched once the payload is out,
 * so a frame is never copied.
 *
 * Decoding is deliberately unforgiving, because the bytes come from a worker
 * that may be running broken or hostile handler code.  A payload is first
 * walked without allocating anything (proto_scan) so that a short frame
 * cannot make msgpack-c reserve gigabytes for a container it announces but
 * does not contain.  Then each message type has one decode function that
 * reads its fields through a cursor of checked getters and ends with
 * cur_end(), which fails on anything left over (the mproc.c m_end() idea).
 * Any mismatch is reported as a short reason naming the field, and the
 * caller drops the peer.
 *
 * All strings on the wire are UTF-8 without NUL: they end up in PostgreSQL
 * text columns and in JSON API answers, which accept nothing else.  Since a
 * worker's error message may quote whatever a service sent, the encoder
 * repairs invalid UTF-8 (U+FFFD) instead of emitting a frame its peer would
 * have to reject.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "jsonmp.h"
#include "log.h"
#include "protocol.h"
#include "utf8.h"
#include "xmalloc.h"

#define PROTO_BUF_MINCAP	256

struct cursor;
typedef int	(*decode_fn)(struct cursor *, struct proto_msg *);

static int	decode_hello(struct cursor *, struct proto_msg *);
static int	decode_ping(struct cursor *, struct proto_msg *);
static int	decode_run_step(struct cursor *, struct proto_msg *);
static int	decode_outcome(struct cursor *, struct proto_msg *);

/*
 * Every message type once: its names, how many fields follow the type on
 * the wire (what the encoder announces) and its decoder.
 */
static const struct msgdef {
	enum proto_type	 type;
	const char	*name;		/* proto_type_name() */
	const char	*tag;		/* prefix of decode errors */
	uint32_t	 nfields;
	decode_fn	 decode;
} msgdefs[] = {
	{ PROTO_HELLO,		"hello",	"HELLO",	2, decode_hello },
	{ PROTO_PING,		"ping",		"PING",		1, decode_ping },
	{ PROTO_PONG,		"pong",		"PONG",		1, decode_ping },
	{ PROTO_RUN_STEP,	"run_step",	"RUN_STEP",	11,
	    decode_run_step },
	{ PROTO_STEP_OUTCOME,	"step_outcome",	"STEP_OUTCOME",	9,
	    decode_outcome },
};

static const struct msgdef *
msgdef_find(uint64_t type)
{
	size_t	 i;

	for (i = 0; i < sizeof(msgdefs) / sizeof(msgdefs[0]); i++)
		if ((uint64_t)msgdefs[i].type == type)
			return &msgdefs[i];
	return NULL;
}

const char *
proto_type_name(enum proto_type type)
{
	const struct msgdef	*d;

	if ((d = msgdef_find((uint64_t)type)) == NULL)
		return "unknown";
	return d->name;
}

const char *
proto_outcome_name(enum proto_outcome outcome)
{
	switch (outcome) {
	case OUTCOME_SUCCESS:
		return "success";
	case OUTCOME_RETRYABLE:
		return "retryable";
	case OUTCOME_PERMANENT:
		return "permanent";
	}
	return "unknown";
}

/*
 * Buffers and encoding.
 */

void
proto_buf_init(struct proto_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void
proto_buf_free(struct proto_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static void
buf_reserve(struct proto_buf *b, size_t more)
{
	size_t	 cap;

	if (more > SIZE_MAX - b->len)
		fatalx("proto_buf: %zu + %zu bytes overflows", b->len, more);
	if (b->len + more <= b->cap)
		return;
	cap = b->cap == 0 ? PROTO_BUF_MINCAP : b->cap;
	while (cap < b->len + more) {
		if (cap > SIZE_MAX / 2)
			fatalx("proto_buf: %zu bytes is too large",
			    b->len + more);
		cap *= 2;
	}
	b->data = xreallocarray(b->data, cap, 1);
	b->cap = cap;
}

/* msgpack_packer write callback; cannot fail since allocation is fatal. */
static int
buf_write(void *data, const char *p, size_t len)
{
	struct proto_buf	*b = data;

	buf_reserve(b, len);
	memcpy(b->data + b->len, p, len);
	b->len += len;
	return 0;
}

/* One frame being appended to a buffer. */
struct frame {
	struct proto_buf	*buf;
	size_t			 start;	/* offset of the length header */
	msgpack_packer		 pk;
};

static void
frame_begin(struct frame *f, struct proto_buf *b, enum proto_type type)
{
	const struct msgdef	*d;

	if ((d = msgdef_find((uint64_t)type)) == NULL)
		fatalx("proto: cannot encode unknown message type %d", type);
	f->buf = b;
	buf_reserve(b, PROTO_HEADER_LEN);
	f->start = b->len;
	b->len += PROTO_HEADER_LEN;
	msgpack_packer_init(&f->pk, b, buf_write);
	msgpack_pack_array(&f->pk, d->nfields + 1);
	msgpack_pack_uint32(&f->pk, (uint32_t)type);
}

static void
frame_end(struct frame *f)
{
	unsigned char	*h = f->buf->data + f->start;
	size_t		 len = f->buf->len - f->start - PROTO_HEADER_LEN;

	if (len > UINT32_MAX)
		fatalx("proto: %zu byte payload does not fit a frame", len);
	h[0] = (len >> 24) & 0xff;
	h[1] = (len >> 16) & 0xff;
	h[2] = (len >> 8) & 0xff;
	h[3] = len & 0xff;
}

/* A NULL here is a bug in the caller, not something to put on the wire. */
static void
pack_str(struct frame *f, const char *field, const char *s)
{
	char	*fixed;
	size_t	 len, fixedlen;

	if (s == NULL)
		fatalx("proto: required string %s is NULL", field);
	len = strlen(s);
	if (utf8_valid(s, len)) {
		msgpack_pack_str_with_body(&f->pk, s, len);
		return;
	}
	fixed = utf8_repair(s, len, &fixedlen);
	msgpack_pack_str_with_body(&f->pk, fixed, fixedlen);
	free(fixed);
}

static void
pack_str_or_nil(struct frame *f, const char *field, const char *s)
{
	if (s == NULL)
		msgpack_pack_nil(&f->pk);
	else
		pack_str(f, field, s);
}

void
proto_encode_hello(struct proto_buf *b, const struct proto_hello *h)
{
	struct frame	 f;

	frame_begin(&f, b, PROTO_HELLO);
	msgpack_pack_uint32(&f.pk, h->version);
	msgpack_pack_int64(&f.pk, h->pid);
	frame_end(&f);
}

void
proto_encode_ping(struct proto_buf *b, enum proto_type type, uint64_t seq)
{
	struct frame	 f;

	if (type != PROTO_PING && type != PROTO_PONG)
		fatalx("proto_encode_ping: type %d is not ping or pong", type);
	frame_begin(&f, b, type);
	msgpack_pack_uint64(&f.pk, seq);
	frame_end(&f);
}

void
proto_encode_run_step(struct proto_buf *b, const struct proto_run_step *r)
{
	struct frame	 f;

	frame_begin(&f, b, PROTO_RUN_STEP);
	msgpack_pack_int64(&f.pk, r->step_id);
	msgpack_pack_int64(&f.pk, r->task_id);
	msgpack_pack_int64(&f.pk, r->lease_token);
	msgpack_pack_uint32(&f.pk, r->attempt);
	pack_str(&f, "step_name", r->step_name);
	pack_str(&f, "handler", r->handler);
	jsonmp_pack(&f.pk, r->config);		/* NULL goes out as nil */
	jsonmp_pack(&f.pk, r->input);
	msgpack_pack_uint32(&f.pk, r->timeout_ms);
	pack_str(&f, "correlation_id", r->correlation_id);
	pack_str(&f, "idempotency_key", r->idempotency_key);
	frame_end(&f);
}

void
proto_encode_outcome(struct proto_buf *b, const struct proto_step_outcome *o)
{
	struct frame	 f;

	frame_begin(&f, b, PROTO_STEP_OUTCOME);
	msgpack_pack_int64(&f.pk, o->step_id);
	msgpack_pack_int64(&f.pk, o->lease_token);
	msgpack_pack_uint32(&f.pk, (uint32_t)o->outcome);
	/* NULL and json null both go out as nil and come back as NULL. */
	jsonmp_pack(&f.pk, o->results);
	pack_str_or_nil(&f, "error_code", o->error_code);
	pack_str_or_nil(&f, "error_message", o->error_message);
	msgpack_pack_int32(&f.pk, o->http_status);
	msgpack_pack_int64(&f.pk, o->retry_after_ms);
	msgpack_pack_int64(&f.pk, o->duration_us);
	frame_end(&f);
}

/*
 * Framing.
 */

int
proto_frame_peek(const unsigned char *data, size_t len, size_t max_frame,
    size_t *payload_len)
{
	size_t	 n;

	if (len < PROTO_HEADER_LEN)
		return 1;
	n = (size_t)data[0] << 24 | (size_t)data[1] << 16 |
	    (size_t)data[2] << 8 | (size_t)data[3];
	if (n == 0 || n > max_frame)
		return -1;
	if (len - PROTO_HEADER_LEN < n)
		return 1;
	*payload_len = n;
	return 0;
}

/*
 * Decoding.
 */

/* Big-endian unsigned integer of n (1, 2, 4 or 8) bytes. */
static uint64_t
be_uint(const unsigned char *p, size_t n)
{
	uint64_t	 v = 0;

	while (n-- > 0)
		v = v << 8 | *p++;
	return v;
}

/*
 * What decoding may cost, in bytes per msgpack value: msgpack-c's object
 * and the jansson value made of it; on top of that, per array or map,
 * jansson's table, and per member of a map, its entry; strings are copied
 * twice.  (Measured: a payload of 5 million empty maps, 5 MB, took 1.3 GB
 * to decode.)
 */
#define COST_VALUE	64
#define COST_CONTAINER	192
#define COST_MEMBER	64
#define COST_FLOOR	((uint64_t)128 << 20)

/*
 * Walk one msgpack object filling exactly len bytes, without building it.
 * msgpack-c allocates a container's elements as soon as it reads the count
 * (32 bytes each), so five bytes announcing 2^26 elements cost it 2 GB.
 * Every element takes at least one byte, so no more objects can still be
 * pending than there are bytes left; holding that at each step bounds what
 * msgpack-c may later allocate to about 32 bytes per payload byte.  Small
 * values cost jansson far more than their bytes, though: the cost of the
 * whole decoding is estimated (COST_*), and a payload that would take more
 * than 128 MiB, and more than four times its size (a long string takes
 * twice), is refused.  So is nesting deeper than msgpack-c unpacks (it
 * refuses more than PROTO_SCAN_DEPTH levels of containers): the
 * supervisor scans a frame before sending it, and a worker that cannot
 * unpack one exits.  Returns NULL when the payload is sound, else the
 * reason.
 */
#define PROTO_SCAN_DEPTH	32	/* msgpack-c's MSGPACK_EMBED_STACK_SIZE */

const char *
proto_scan(const unsigned char *p, size_t len)
{
	uint64_t	 pending = 1, count, cost = 0;
	uint64_t	 left[PROTO_SCAN_DEPTH + 1];	/* elements per level */
	size_t		 off = 0, lenbytes, body;
	int		 depth = 0;
	unsigned char	 c;

	while (pending > 0) {
		if (off >= len)
			return "truncated";
		c = p[off++];
		lenbytes = body = 0;
		count = 0;
		if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 ||
		    c == 0xc3)
			;			/* fixint, nil, bool */
		else if (c <= 0x8f)
			count = 2 * (uint64_t)(c & 0x0f);
		else if (c <= 0x9f)
			count = c & 0x0f;
		else if (c <= 0xbf)
			body = c & 0x1f;
		else if (c == 0xc1)
			return "malformed msgpack (0xc1)";
		else if (c <= 0xc6)		/* bin 8/16/32 */
			lenbytes = (size_t)1 << (c - 0xc4);
		else if (c <= 0xc9) {		/* ext 8/16/32: length, type */
			lenbytes = (size_t)1 << (c - 0xc7);
			body = 1;
		} else if (c <= 0xd3)		/* float, uint, int */
			body = (c == 0xca) ? 4 : (c == 0xcb) ? 8 :
			    (size_t)1 << ((c - 0xcc) & 3);
		else if (c <= 0xd8)		/* fixext: type + 2^k bytes */
			body = 1 + ((size_t)1 << (c - 0xd4));
		else if (c <= 0xdb)		/* str 8/16/32 */
			lenbytes = (size_t)1 << (c - 0xd9);
		else				/* array, map 16/32 */
			lenbytes = (c & 1) ? 4 : 2;

		if (lenbytes > 0) {
			if (len - off < lenbytes)
				return "truncated";
			count = be_uint(p + off, lenbytes);
			off += lenbytes;
			if (c <= 0xdb) {	/* a byte length, not a count */
				if (count > len - off)
					return "truncated";
				body += (size_t)count;
				count = 0;
			} else if (c >= 0xde)
				count *= 2;
		}
		if (body > len - off)
			return "truncated";
		off += body;
		pending--;
		if (pending + count > len - off)
			return "container announces more elements than the "
			    "payload holds";
		pending += count;
		/* The value is one of its container's; a container that
		 * holds any is a level until they are all read. */
		if (depth > 0)
			left[depth]--;
		if ((c >= 0x80 && c <= 0x9f) || (c >= 0xdc && c <= 0xdf)) {
			/* (An empty one takes a place on msgpack-c's stack
			 * too, for a moment.) */
			if (depth == PROTO_SCAN_DEPTH)
				return "nested too deeply: more than 32 levels";
			if (count > 0)
				left[++depth] = count;
		}
		while (depth > 0 && left[depth] == 0)
			depth--;
		cost += COST_VALUE + 2 * (uint64_t)body;
		if ((c >= 0x80 && c <= 0x9f) || (c >= 0xdc && c <= 0xdf))
			cost += COST_CONTAINER;
		if ((c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf)
			cost += count / 2 * COST_MEMBER;	/* (pairs) */
		if (cost > COST_FLOOR && cost > 4 * (uint64_t)len)
			return "too many values: decoded, they would take more "
			    "than 128 MiB";
	}
	if (off != len)
		return "trailing bytes after the message";
	return NULL;
}

/* Reads the elements of the message array one field at a time. */
struct cursor {
	const msgpack_object	*elem;
	uint32_t		 nelem;
	uint32_t		 next;	/* next element to read */
	uint32_t		 field;	/* element being read, for errors */
	const char		*tag;	/* "RUN_STEP" */
	char			*err;
	size_t			 errlen;
};

static int
cur_fail(struct cursor *c, const char *name, const char *reason)
{
	if (c->err != NULL && c->errlen > 0)
		snprintf(c->err, c->errlen, "%s: field %u (%s): %s",
		    c->tag, c->field, name, reason);
	return -1;
}

static const msgpack_object *
cur_take(struct cursor *c, const char *name)
{
	c->field = c->next;
	if (c->next >= c->nelem) {
		cur_fail(c, name, "missing");
		return NULL;
	}
	return &c->elem[c->next++];
}

/* msgpack-c reports any non-negative value as POSITIVE_INTEGER. */
static int
get_int(struct cursor *c, const char *name, int64_t min, int64_t max,
    int64_t *out)
{
	const msgpack_object	*o;

	if ((o = cur_take(c, name)) == NULL)
		return -1;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->via.u64 > (uint64_t)INT64_MAX ||
		    (int64_t)o->via.u64 > max || (int64_t)o->via.u64 < min)
			return cur_fail(c, name, "out of range");
		*out = (int64_t)o->via.u64;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		if (o->via.i64 < min || o->via.i64 > max)
			return cur_fail(c, name, "out of range");
		*out = o->via.i64;
		return 0;
	}
	return cur_fail(c, name, "expected int");
}

static int
get_uint(struct cursor *c, const char *name, uint64_t min, uint64_t max,
    uint64_t *out)
{
	const msgpack_object	*o;

	if ((o = cur_take(c, name)) == NULL)
		return -1;
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return cur_fail(c, name, "out of range");
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return cur_fail(c, name, "expected int");
	if (o->via.u64 < min || o->via.u64 > max)
		return cur_fail(c, name, "out of range");
	*out = o->via.u64;
	return 0;
}

/* Checks and copies a str the cursor has just taken. */
static int
str_copy(struct cursor *c, const char *name, const msgpack_object *o,
    char **out)
{
	const char	*s = o->via.str.ptr;
	size_t		 len = o->via.str.size;
	char		*copy;

	if (len > 0 && memchr(s, '\0', len) != NULL)
		return cur_fail(c, name, "str contains NUL");
	if (!utf8_valid(s, len))
		return cur_fail(c, name, "str is not UTF-8");
	copy = xmalloc(len + 1);
	if (len > 0)
		memcpy(copy, s, len);
	copy[len] = '\0';
	*out = copy;
	return 0;
}

static int
get_str(struct cursor *c, const char *name, char **out)
{
	const msgpack_object	*o;

	if ((o = cur_take(c, name)) == NULL)
		return -1;
	if (o->type != MSGPACK_OBJECT_STR)
		return cur_fail(c, name, "expected str");
	return str_copy(c, name, o, out);
}

static int
get_str_or_nil(struct cursor *c, const char *name, char **out)
{
	const msgpack_object	*o;

	if ((o = cur_take(c, name)) == NULL)
		return -1;
	if (o->type == MSGPACK_OBJECT_NIL) {
		*out = NULL;
		return 0;
	}
	if (o->type != MSGPACK_OBJECT_STR)
		return cur_fail(c, name, "expected str or nil");
	return str_copy(c, name, o, out);
}

/* A present JSON value; nil is json null, so *out is never NULL. */
static int
get_json(struct cursor *c, const char *name, json_t **out)
{
	const msgpack_object	*o;

	if ((o = cur_take(c, name)) == NULL)
		return -1;
	if ((*out = jsonmp_unpack(o)) == NULL)
		return cur_fail(c, name, "not a JSON value (bin, ext, "
		    "non-str key, bad UTF-8 or too deep)");
	return 0;
}

/* An optional JSON value: nil means none (NULL), not json null. */
static int
get_json_or_nil(struct cursor *c, const char *name, json_t **out)
{
	if (c->next < c->nelem && c->elem[c->next].type == MSGPACK_OBJECT_NIL) {
		c->field = c->next++;
		*out = NULL;
		return 0;
	}
	return get_json(c, name, out);
}

static int
cur_end(struct cursor *c)
{
	if (c->next == c->nelem)
		return 0;
	if (c->err != NULL && c->errlen > 0)
		snprintf(c->err, c->errlen, "%s: field %u: unexpected trailing "
		    "field", c->tag, c->next);
	return -1;
}

/*
 * One decoder per message type.  Fields are stored in msg as they are read,
 * so that on failure proto_msg_clear() releases whatever was already copied.
 */

static int
decode_hello(struct cursor *c, struct proto_msg *m)
{
	uint64_t	 version;

	if (get_uint(c, "version", 0, UINT32_MAX, &version) == -1 ||
	    get_int(c, "pid", 1, INT64_MAX, &m->u.hello.pid) == -1)
		return -1;
	m->u.hello.version = (uint32_t)version;
	return 0;
}

static int
decode_ping(struct cursor *c, struct proto_msg *m)
{
	return get_uint(c, "seq", 0, UINT64_MAX, &m->u.ping.seq);
}

static int
decode_run_step(struct cursor *c, struct proto_msg *m)
{
	struct proto_run_step	*r = &m->u.run;
	uint64_t		 attempt, timeout;

	if (get_int(c, "step_id", INT64_MIN, INT64_MAX, &r->step_id) == -1 ||
	    get_int(c, "task_id", INT64_MIN, INT64_MAX, &r->task_id) == -1 ||
	    get_int(c, "lease_token", INT64_MIN, INT64_MAX,
	    &r->lease_token) == -1 ||
	    get_uint(c, "attempt", 1, UINT32_MAX, &attempt) == -1 ||
	    get_str(c, "step_name", &r->step_name) == -1 ||
	    get_str(c, "handler", &r->handler) == -1 ||
	    get_json(c, "config", &r->config) == -1 ||
	    get_json(c, "input", &r->input) == -1 ||
	    get_uint(c, "timeout_ms", 0, UINT32_MAX, &timeout) == -1 ||
	    get_str(c, "correlation_id", &r->correlation_id) == -1 ||
	    get_str(c, "idempotency_key", &r->idempotency_key) == -1)
		return -1;
	r->attempt = (uint32_t)attempt;
	r->timeout_ms = (uint32_t)timeout;
	return 0;
}

static int
decode_outcome(struct cursor *c, struct proto_msg *m)
{
	struct proto_step_outcome	*o = &m->u.outcome;
	uint64_t			 outcome;
	int64_t				 status;

	if (get_int(c, "step_id", INT64_MIN, INT64_MAX, &o->step_id) == -1 ||
	    get_int(c, "lease_token", INT64_MIN, INT64_MAX,
	    &o->lease_token) == -1 ||
	    get_uint(c, "outcome", OUTCOME_SUCCESS, OUTCOME_PERMANENT,
	    &outcome) == -1 ||
	    get_json_or_nil(c, "results", &o->results) == -1 ||
	    get_str_or_nil(c, "error_code", &o->error_code) == -1 ||
	    get_str_or_nil(c, "error_message", &o->error_message) == -1 ||
	    get_int(c, "http_status", 0, 999, &status) == -1 ||
	    get_int(c, "retry_after_ms", -1, INT64_MAX,
	    &o->retry_after_ms) == -1 ||
	    get_int(c, "duration_us", 0, INT64_MAX, &o->duration_us) == -1)
		return -1;
	o->outcome = (enum proto_outcome)outcome;
	o->http_status = (int32_t)status;
	return 0;
}

static int
decode_fail(char *err, size_t errlen, const char *reason)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "payload: %s", reason);
	return -1;
}

/* Decodes an unpacked array: its type, then the type's own fields. */
static int
decode_array(const msgpack_object *root, struct proto_msg *msg, char *err,
    size_t errlen)
{
	struct cursor		 c;
	const struct msgdef	*d;
	uint64_t		 type;

	if (root->type != MSGPACK_OBJECT_ARRAY)
		return decode_fail(err, errlen, "not an array");
	if (root->via.array.size == 0)
		return decode_fail(err, errlen, "empty array");

	memset(&c, 0, sizeof(c));
	c.elem = root->via.array.ptr;
	c.nelem = root->via.array.size;
	c.tag = "message";
	c.err = err;
	c.errlen = errlen;
	if (get_uint(&c, "type", 0, UINT64_MAX, &type) == -1)
		return -1;
	if ((d = msgdef_find(type)) == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "message: unknown type %llu",
			    (unsigned long long)type);
		return -1;
	}
	c.tag = d->tag;
	msg->type = d->type;
	if (d->decode(&c, msg) == -1 || cur_end(&c) == -1)
		return -1;
	return 0;
}

int
proto_decode(const unsigned char *payload, size_t len, struct proto_msg *msg,
    char *err, size_t errlen)
{
	msgpack_unpacked	 up;
	const char		*reason;
	size_t			 off = 0;
	int			 rv;

	memset(msg, 0, sizeof(*msg));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((reason = proto_scan(payload, len)) != NULL)
		return decode_fail(err, errlen, reason);

	msgpack_unpacked_init(&up);
	switch (msgpack_unpack_next(&up, (const char *)payload, len, &off)) {
	case MSGPACK_UNPACK_SUCCESS:
		/* proto_scan saw to this; do not rely on it silently. */
		if (off != len)
			rv = decode_fail(err, errlen, "trailing bytes after "
			    "the message");
		else
			rv = decode_array(&up.data, msg, err, errlen);
		break;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		/* msgpack-c's fixed parse stack holds 32 nested containers. */
		rv = decode_fail(err, errlen, "nested too deeply or out of "
		    "memory");
		break;
	case MSGPACK_UNPACK_CONTINUE:
		rv = decode_fail(err, errlen, "truncated");
		break;
	default:
		rv = decode_fail(err, errlen, "malformed msgpack");
		break;
	}
	msgpack_unpacked_destroy(&up);
	if (rv == -1)
		proto_msg_clear(msg);
	return rv;
}

void
proto_msg_clear(struct proto_msg *msg)
{
	switch (msg->type) {
	case PROTO_RUN_STEP:
		free(msg->u.run.step_name);
		free(msg->u.run.handler);
		json_decref(msg->u.run.config);
		json_decref(msg->u.run.input);
		free(msg->u.run.correlation_id);
		free(msg->u.run.idempotency_key);
		break;
	case PROTO_STEP_OUTCOME:
		json_decref(msg->u.outcome.results);
		free(msg->u.outcome.error_code);
		free(msg->u.outcome.error_message);
		break;
	case PROTO_HELLO:
	case PROTO_PING:
	case PROTO_PONG:
		break;
	}
	memset(msg, 0, sizeof(*msg));
}

int
proto_json_depth(const json_t *v)
{
	const char	*key;
	json_t		*item;
	size_t		 i;
	int		 d, max = 0;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, item)
			if ((d = proto_json_depth(item)) > max)
				max = d;
		return max + 1;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, item)
			if ((d = proto_json_depth(item)) > max)
				max = d;
		return max + 1;
	}
	return 0;
}
