/*
 * mkseeds - writes the binary seeds of fuzz_proto's corpus: one frame of
 * each message type, as proto_encode_* makes them.  Rebuild and rerun it
 * after a protocol change (tests/fuzz/README.md):
 *
 *   clang -D_GNU_SOURCE -I include -I common -I . tests/fuzz/mkseeds.c \
 *     common/proto.c common/jsonmp.c common/xmalloc.c common/log.c \
 *     $(pkg-config --cflags --libs msgpack jansson yaml-0.1 libsystemd) \
 *     -o /tmp/mkseeds && /tmp/mkseeds tests/fuzz/corpus/fuzz_proto
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "protocol.h"

static void
put(const char *dir, const char *name, const struct proto_buf *b)
{
	char	 path[4096];
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL ||
	    fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	struct proto_hello		 h = { PROTO_VERSION, 4242 };
	struct proto_run_step		 r;
	struct proto_step_outcome	 o;
	struct proto_buf		 b;

	if (argc != 2) {
		fprintf(stderr, "usage: mkseeds DIR\n");
		return 2;
	}

	proto_buf_init(&b);
	proto_encode_hello(&b, &h);
	put(argv[1], "hello", &b);
	proto_buf_free(&b);

	proto_buf_init(&b);
	proto_encode_ping(&b, PROTO_PING, 7);
	proto_encode_ping(&b, PROTO_PONG, 7);
	put(argv[1], "ping_pong", &b);
	proto_buf_free(&b);

	memset(&r, 0, sizeof(r));
	r.step_id = 1234;
	r.task_id = 99;
	r.lease_token = -5;
	r.attempt = 2;
	r.step_name = "create_user_account";
	r.handler = "http";
	r.config = json_loads("{\"url\": \"http://127.0.0.1:8080/users\", "
	    "\"method\": \"POST\", \"body\": {\"email\": "
	    "\"{{context.user_info.email}}\"}, \"timeout\": 2.5, "
	    "\"retry\": [1, true, null]}", 0, NULL);
	r.input = json_loads("{\"context\": {\"user_info\": {\"email\": "
	    "\"a@example.com\", \"name\": \"\\u00e9l\\u00e8ve\"}}, \"steps\": "
	    "{\"validate\": {\"results\": {\"ok\": true, \"n\": -1e-3}}}, "
	    "\"attempt\": 2}", 0, NULL);
	r.timeout_ms = 30000;
	r.correlation_id = "corr-1";
	r.idempotency_key = "99:create_user_account";
	proto_buf_init(&b);
	proto_encode_run_step(&b, &r);
	put(argv[1], "run_step", &b);
	proto_buf_free(&b);
	json_decref(r.config);
	json_decref(r.input);

	memset(&o, 0, sizeof(o));
	o.step_id = 1234;
	o.lease_token = -5;
	o.outcome = OUTCOME_SUCCESS;
	o.results = json_loads("{\"id\": 17, \"tags\": [\"a\", \"b\"], "
	    "\"score\": 0.5}", 0, NULL);
	o.http_status = 201;
	o.retry_after_ms = -1;
	o.duration_us = 1500;
	proto_buf_init(&b);
	proto_encode_outcome(&b, &o);
	put(argv[1], "step_outcome", &b);
	proto_buf_free(&b);
	json_decref(o.results);

	memset(&o, 0, sizeof(o));
	o.step_id = 1235;
	o.lease_token = 8;
	o.outcome = OUTCOME_RETRYABLE;
	o.error_code = "http_503";
	o.error_message = "service unavailable \xff (repaired)";
	o.http_status = 503;
	o.retry_after_ms = 2000;
	o.duration_us = 42;
	proto_buf_init(&b);
	proto_encode_outcome(&b, &o);
	put(argv[1], "step_outcome_error", &b);
	proto_buf_free(&b);
	return 0;
}
