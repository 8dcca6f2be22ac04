/*
 * protocol.h - the supervisor <-> worker wire protocol.
 *
 * Transport: a SOCK_STREAM socketpair; the worker finds its end on fd
 * PROTO_WORKER_FD.  Each frame is a 4-byte big-endian payload length followed
 * by one msgpack array whose first element is the message type and whose
 * remaining elements are the fields listed below, in order.  A frame longer
 * than the receiver's cap, a payload that is not exactly one array, a wrong
 * field type, a missing field or a trailing field is a protocol error: the
 * receiver drops that peer (never itself).
 *
 * Message types are numbered in families: 1xx session, 2xx steps.
 * Bump PROTO_VERSION if any message below changes shape or meaning.
 */
#ifndef TASKERD_PROTOCOL_H
#define TASKERD_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define PROTO_VERSION		1
#define PROTO_WORKER_FD		3		/* worker's end of the socketpair */
#define PROTO_HEADER_LEN	4
#define PROTO_DEFAULT_MAX_FRAME	(16u * 1024 * 1024)
/*
 * msgpack-c refuses data nested deeper than 32 levels, and a JSON value
 * travels up to 5 levels down inside a RUN_STEP (message array, input,
 * "steps", step name, "results").  So every JSON value taskerd accepts from
 * outside - a task's context, a service's response - is capped here.
 */
#define PROTO_MAX_JSON_DEPTH	24

enum proto_type {
	/* worker -> supervisor, once, first: [100, version, pid] */
	PROTO_HELLO		= 100,
	/* supervisor -> worker: [101, seq]; answered at once, even while a
	 * step runs (a PONG proves the process lives, not that the step
	 * progresses: the step deadline covers that) */
	PROTO_PING		= 101,
	/* worker -> supervisor: [102, seq] */
	PROTO_PONG		= 102,
	/* supervisor -> worker: [200, step_id, task_id, lease_token, attempt,
	 *   step_name, handler, config, input, timeout_ms, correlation_id,
	 *   idempotency_key]; config and input are JSON values encoded as
	 *   native msgpack (map/array/str/int/float/bool/nil).  One step at a
	 *   time: the next RUN_STEP only after the STEP_OUTCOME. */
	PROTO_RUN_STEP		= 200,
	/* worker -> supervisor: [201, step_id, lease_token, outcome, results,
	 *   error_code, error_message, http_status, retry_after_ms,
	 *   duration_us]; results is a JSON value or nil, error_code and
	 *   error_message are str or nil, http_status 0 when none,
	 *   retry_after_ms -1 when the service gave none. */
	PROTO_STEP_OUTCOME	= 201,
};

/* What the attempt's handler decided.  The supervisor turns this, the
 * attempt count and the retry policy into the step's next state. */
enum proto_outcome {
	OUTCOME_SUCCESS		= 0,
	OUTCOME_RETRYABLE	= 1,	/* transient: try again if attempts remain */
	OUTCOME_PERMANENT	= 2,	/* never retried */
};

struct proto_hello {
	uint32_t	 version;
	int64_t		 pid;
};

struct proto_ping {
	uint64_t	 seq;
};

struct proto_run_step {
	int64_t		 step_id;
	int64_t		 task_id;
	int64_t		 lease_token;
	uint32_t	 attempt;	/* 1-based number of this attempt */
	char		*step_name;
	char		*handler;	/* "noop", "http", ... */
	json_t		*config;	/* handler_config; never NULL (json null) */
	json_t		*input;		/* {"context":..,"steps":{name:{results}},
					 *  "attempt":n}; never NULL */
	uint32_t	 timeout_ms;
	char		*correlation_id;
	char		*idempotency_key;
};

struct proto_step_outcome {
	int64_t		 step_id;
	int64_t		 lease_token;
	enum proto_outcome outcome;
	json_t		*results;	/* NULL when none */
	char		*error_code;	/* NULL when none; e.g. "http_500" */
	char		*error_message;	/* NULL when none */
	int32_t		 http_status;	/* 0 when none */
	int64_t		 retry_after_ms;/* -1 when none */
	int64_t		 duration_us;
};

/* A decoded message: type says which member is valid.  Owns its strings and
 * JSON values; release with proto_msg_clear(). */
struct proto_msg {
	enum proto_type	 type;
	union {
		struct proto_hello	 hello;
		struct proto_ping	 ping;	/* PING and PONG */
		struct proto_run_step	 run;
		struct proto_step_outcome outcome;
	} u;
};

/* Nesting depth of a JSON value (a scalar is 0, [] and {} are 1). */
int	proto_json_depth(const json_t *);

/* A growable byte buffer holding one or more complete frames to send. */
struct proto_buf {
	unsigned char	*data;
	size_t		 len;
	size_t		 cap;
};

void	proto_buf_init(struct proto_buf *);
void	proto_buf_free(struct proto_buf *);

/* Append one complete frame (header + payload) to buf.  Never fails
 * (allocation failure is fatal). */
void	proto_encode_hello(struct proto_buf *, const struct proto_hello *);
void	proto_encode_ping(struct proto_buf *, enum proto_type, uint64_t seq);
void	proto_encode_run_step(struct proto_buf *,
	    const struct proto_run_step *);
void	proto_encode_outcome(struct proto_buf *,
	    const struct proto_step_outcome *);

/*
 * Frame splitting.  Looks at the first len bytes of data:
 *  returns 0 and sets *payload_len when a whole frame is there
 *    (the frame occupies PROTO_HEADER_LEN + *payload_len bytes);
 *  returns 1 when more bytes are needed;
 *  returns -1 when the announced length is 0 or exceeds max_frame.
 */
int	proto_frame_peek(const unsigned char *data, size_t len,
	    size_t max_frame, size_t *payload_len);

/*
 * Decode one payload (without its header) into msg.  Returns 0 on success;
 * on a protocol error returns -1, leaves msg cleared and writes a short
 * human reason into err (errlen bytes, may be NULL).
 */
int	proto_decode(const unsigned char *payload, size_t len,
	    struct proto_msg *msg, char *err, size_t errlen);
/* What proto_decode() would refuse in the payload before decoding it (a
 * short reason), or NULL: a sender checks its own frames with it. */
const char *proto_scan(const unsigned char *payload, size_t len);
void	proto_msg_clear(struct proto_msg *);

const char *proto_type_name(enum proto_type);
const char *proto_outcome_name(enum proto_outcome);

#endif
