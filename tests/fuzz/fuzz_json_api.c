/*
 * fuzz_json_api - what the API and the worker do with JSON from outside.
 *
 * The daemon's request handlers are not pure functions (they answer through
 * libevent and queue database work), so this harness runs the pure parts in
 * the order a request meets them:
 *  - the whole input is a request body: json_loadb with
 *    JSON_REJECT_DUPLICATES, the shape checks of POST /v1/tasks, the depth
 *    cap, the text form stored in PostgreSQL (json_dumps, reloaded equal),
 *    and the context inside a RUN_STEP frame (encoded, decoded, equal);
 *  - the input split at its first NUL byte is a handler-config template
 *    and a scope: render_string (text and URL mode) of the first part as
 *    raw text, render_json of it parsed, against the second part parsed;
 *  - every value parsed goes through jsonmp pack/unpack and must come back
 *    json_equal when its depth is within PROTO_MAX_JSON_DEPTH.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "jsonmp.h"
#include "protocol.h"
#include "render.h"
#include "fuzz.h"

/* jsonmp pack then unpack must give the value back. */
static void
jsonmp_roundtrip(const json_t *v)
{
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	msgpack_unpacked	 up;
	msgpack_unpack_return	 rc;
	json_t			*back;
	size_t			 off = 0;
	int			 depth;

	depth = proto_json_depth(v);
	FUZZ_CHECK(depth >= 0, "negative depth %d", depth);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	jsonmp_pack(&pk, v);
	msgpack_unpacked_init(&up);
	rc = msgpack_unpack_next(&up, sb.data, sb.size, &off);
	if (depth <= PROTO_MAX_JSON_DEPTH) {
		FUZZ_CHECK(rc == MSGPACK_UNPACK_SUCCESS && off == sb.size,
		    "packed JSON (depth %d) does not unpack: %d", depth, rc);
		back = jsonmp_unpack(&up.data);
		FUZZ_CHECK(back != NULL, "jsonmp_unpack refused a packed JSON "
		    "value of depth %d", depth);
		FUZZ_CHECK(json_equal((json_t *)v, back),
		    "jsonmp round trip changed the value");
		json_decref(back);
	} else if (rc == MSGPACK_UNPACK_SUCCESS) {
		/* Too deep to promise anything but a clean answer. */
		json_decref(jsonmp_unpack(&up.data));
	}
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

/* What PostgreSQL stores is json_dumps' text; it must read back equal. */
static void
text_roundtrip(const json_t *v)
{
	json_error_t	 jerr;
	json_t		*back;
	char		*s;

	s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	FUZZ_CHECK(s != NULL, "json_dumps failed");
	back = json_loads(s, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	FUZZ_CHECK(back != NULL, "dumped JSON does not reload: %s", jerr.text);
	FUZZ_CHECK(json_equal((json_t *)v, back),
	    "JSON text round trip changed the value");
	json_decref(back);
	free(s);
}

/* A context the API accepted, on its way to a worker as sched.c sends it. */
static void
run_step_roundtrip(json_t *ctx)
{
	struct proto_run_step	 r;
	struct proto_msg	 m;
	struct proto_buf	 b;
	char			 err[256];
	size_t			 plen = 0;

	memset(&r, 0, sizeof(r));
	r.step_id = 1;
	r.task_id = 2;
	r.lease_token = 3;
	r.attempt = 1;
	r.step_name = "step";
	r.handler = "noop";
	r.config = json_object();
	/* The step's results may be as deep as a context. */
	r.input = json_pack("{s:O, s:{s:{s:O}}, s:i}", "context", ctx,
	    "steps", "previous", "results", ctx, "attempt", 1);
	FUZZ_CHECK(r.input != NULL, "json_pack failed");
	r.timeout_ms = 1000;
	r.correlation_id = "c";
	r.idempotency_key = "k";

	proto_buf_init(&b);
	proto_encode_run_step(&b, &r);
	FUZZ_CHECK(proto_frame_peek(b.data, b.len, PROTO_DEFAULT_MAX_FRAME,
	    &plen) == 0, "RUN_STEP frame does not peek");
	FUZZ_CHECK(proto_decode(b.data + PROTO_HEADER_LEN, plen, &m, err,
	    sizeof(err)) == 0, "RUN_STEP with an accepted context (depth %d) "
	    "does not decode: %s", proto_json_depth(ctx), err);
	FUZZ_CHECK(json_equal(m.u.run.input, r.input),
	    "RUN_STEP changed the input");
	proto_msg_clear(&m);
	proto_buf_free(&b);
	json_decref(r.config);
	json_decref(r.input);
}

/* POST /v1/tasks (daemon/api_tasks.c): which bodies reach task_create. */
static void
request_body(const uint8_t *data, size_t size)
{
	static const char *const known[] = { "name", "namespace", "version",
	    "context", "initiator", "source_system", "reason", "tags",
	    "idempotency_key", NULL };
	static const char *const strings[] = { "name", "namespace", "version",
	    "initiator", "source_system", "reason", "idempotency_key", NULL };
	json_error_t	 jerr;
	json_t		*body, *ctx, *tags, *v;
	const char	*key;
	int		 i;

	body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES,
	    &jerr);
	if (body == NULL) {
		FUZZ_CHECK(memchr(jerr.text, '\0', sizeof(jerr.text)) != NULL &&
		    jerr.text[0] != '\0', "parse error without a reason");
		return;
	}
	FUZZ_CHECK(json_is_object(body) || json_is_array(body),
	    "json_loadb without JSON_DECODE_ANY gave a scalar");
	jsonmp_roundtrip(body);
	text_roundtrip(body);
	if (!json_is_object(body))
		goto out;
	json_object_foreach(body, key, v) {
		for (i = 0; known[i] != NULL; i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (known[i] == NULL)
			goto out;
	}
	for (i = 0; strings[i] != NULL; i++)
		if ((v = json_object_get(body, strings[i])) != NULL &&
		    !json_is_null(v) && !json_is_string(v))
			goto out;
	ctx = json_object_get(body, "context");
	if (ctx != NULL && !json_is_object(ctx))
		goto out;
	tags = json_object_get(body, "tags");
	if (tags != NULL && !json_is_array(tags) && !json_is_object(tags))
		goto out;
	/* task_create: the depth cap, then the context is stored and sent. */
	ctx = ctx != NULL ? json_incref(ctx) : json_object();
	if (proto_json_depth(ctx) <= PROTO_MAX_JSON_DEPTH) {
		text_roundtrip(ctx);
		run_step_roundtrip(ctx);
	}
	json_decref(ctx);
out:
	json_decref(body);
}

static int
has_placeholder(const json_t *v)
{
	const char	*key;
	json_t		*item;
	size_t		 i;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return strstr(json_string_value(v), "{{") != NULL;
	case JSON_OBJECT:
		json_object_foreach((json_t *)v, key, item)
			if (has_placeholder(item))
				return 1;
		return 0;
	case JSON_ARRAY:
		json_array_foreach(v, i, item)
			if (has_placeholder(item))
				return 1;
		return 0;
	default:
		return 0;
	}
}

/* Text without placeholders is copied as it is, in either mode. */
static void
check_plain(const char *tmpl, const char *out)
{
	if (strstr(tmpl, "{{") == NULL)
		FUZZ_CHECK(strcmp(tmpl, out) == 0, "text without placeholders "
		    "changed");
}

static void
render(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	json_error_t	 jerr;
	json_t		*scope, *tmpl, *out;
	char		*text, *s, err[256];
	int		 dt, ds;

	scope = json_loadb((const char *)b, blen,
	    JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (scope != NULL)
		jsonmp_roundtrip(scope);
	else
		scope = json_object();

	text = fuzz_strndup(a, alen);
	memset(err, 0, sizeof(err));
	if ((s = render_string(text, scope, RENDER_TEXT, err,
	    sizeof(err))) != NULL) {
		check_plain(text, s);
		free(s);
	} else
		FUZZ_CHECK(fuzz_err_ok(err, sizeof(err)),
		    "render_string failed without a reason");
	memset(err, 0, sizeof(err));
	if ((s = render_string(text, scope, RENDER_URL, err,
	    sizeof(err))) != NULL) {
		check_plain(text, s);
		free(s);
	} else
		FUZZ_CHECK(fuzz_err_ok(err, sizeof(err)),
		    "render_string (URL) failed without a reason");
	(void)render_lookup(scope, text);
	free(text);

	tmpl = json_loadb((const char *)a, alen,
	    JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (tmpl != NULL) {
		memset(err, 0, sizeof(err));
		if ((out = render_json(tmpl, scope, err, sizeof(err))) !=
		    NULL) {
			dt = proto_json_depth(tmpl);
			ds = proto_json_depth(scope);
			FUZZ_CHECK(proto_json_depth(out) <= dt + ds,
			    "rendered value deeper than template + scope");
			if (!has_placeholder(tmpl))
				FUZZ_CHECK(json_equal(tmpl, out),
				    "template without placeholders changed");
			jsonmp_roundtrip(out);
			json_decref(out);
		} else
			FUZZ_CHECK(fuzz_err_ok(err, sizeof(err)),
			    "render_json failed without a reason");
		json_decref(tmpl);
	}
	json_decref(scope);
}

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	/* A fixed environment for {{env.NAME}}, the same for every input. */
	setenv("TASKERD_FUZZ_SECRET", "s3cr&t/value", 1);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t	*a, *b;
	size_t		 alen, blen;

	request_body(data, size);
	fuzz_split(data, size, &a, &alen, &b, &blen);
	render(a, alen, b, blen);
	return 0;
}
