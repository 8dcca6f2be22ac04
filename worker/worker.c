/*
 * worker.c - taskerd-worker: runs one step at a time for the supervisor.
 *
 * The supervisor forks and execs this program with its end of a socketpair
 * on PROTO_WORKER_FD; stdin is /dev/null and stderr is the supervisor's.
 * The worker is deliberately simple and blocking: read a frame, run the
 * handler, write the answer.  All the cleverness (deadlines, retries,
 * fencing) is the supervisor's, which is why a handler that hangs or
 * crashes here costs one worker and never the daemon.
 *
 * A PING that arrives while a step runs is answered when the step is done;
 * the supervisor knows the worker is busy and judges it by the step's
 * deadline, not by the heartbeat.
 *
 * Exit status tells the supervisor what happened:
 *   0  the supervisor closed the socket (normal shutdown)
 *   1  an unexpected system error (fatal())
 *   2  cannot start (bad environment, handler init failed): do not respawn
 *      in a loop
 *   3  the supervisor sent something that is not the protocol
 *
 * Nothing is written to stdout: it is not ours.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "handler.h"
#include "log.h"
#include "protocol.h"
#include "xmalloc.h"

#define WORKER_EXIT_EOF		0
#define WORKER_EXIT_CANNOT_START 2
#define WORKER_EXIT_PROTOCOL	3

#define WORKER_READ_CHUNK	65536

/* Bytes read from the supervisor that do not yet form a whole frame. */
struct worker_inbuf {
	unsigned char	*data;
	size_t		 len;
	size_t		 cap;
};

static size_t	worker_max_frame = PROTO_DEFAULT_MAX_FRAME;

static void
worker_log_setup(void)
{
	enum log_level	 level = LOG_LVL_INFO;
	const char	*s;
	int		 bad = 0;

	if ((s = getenv("TASKERD_LOG_LEVEL")) != NULL &&
	    log_parse_level(s, &level) == -1) {
		level = LOG_LVL_INFO;
		bad = 1;
	}
	log_init("taskerd-worker", level);
	if (bad)
		log_warnx("ignoring bad TASKERD_LOG_LEVEL value=\"%s\"", s);
}

/* TASKERD_MAX_FRAME must match the supervisor's; refuse a garbled one
 * rather than guess. */
static int
worker_frame_setup(void)
{
	const char		*s;
	char			*end;
	unsigned long long	 v;

	if ((s = getenv("TASKERD_MAX_FRAME")) == NULL || *s == '\0')
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > SIZE_MAX / 2 ||
	    s[0] == '-') {
		log_warnx("bad TASKERD_MAX_FRAME value=\"%s\"", s);
		return -1;
	}
	worker_max_frame = (size_t)v;
	return 0;
}

/* Write all of buf; a vanished supervisor ends the worker quietly. */
static void
worker_write_all(const unsigned char *buf, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		n = write(PROTO_WORKER_FD, buf, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EPIPE || errno == ECONNRESET) {
				log_info("supervisor went away");
				exit(WORKER_EXIT_EOF);
			}
			fatal("write to supervisor");
		}
		buf += n;
		len -= (size_t)n;
	}
}

static void
worker_send(struct proto_buf *pb)
{
	worker_write_all(pb->data, pb->len);
	pb->len = 0;
}

static int64_t
worker_elapsed_us(const struct timespec *a, const struct timespec *b)
{
	return ((int64_t)b->tv_sec - (int64_t)a->tv_sec) * 1000000 +
	    ((int64_t)b->tv_nsec - (int64_t)a->tv_nsec) / 1000;
}

static void
worker_outcome_clear(struct proto_step_outcome *o)
{
	json_decref(o->results);
	free(o->error_code);
	free(o->error_message);
	memset(o, 0, sizeof(*o));
}

static void
worker_run_step(const struct proto_run_step *run, struct proto_buf *pb)
{
	struct proto_step_outcome	 o;
	const struct handler		*h;
	struct timespec			 t0, t1;

	memset(&o, 0, sizeof(o));
	o.retry_after_ms = -1;

	log_debug("step start step_id=%" PRId64 " task_id=%" PRId64
	    " step=%s handler=%s attempt=%u correlation_id=%s",
	    run->step_id, run->task_id, run->step_name, run->handler,
	    run->attempt, run->correlation_id);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((h = handler_find(run->handler)) == NULL)
		outcome_fail(&o, OUTCOME_PERMANENT, "unknown_handler",
		    "no handler named '%s' in this worker", run->handler);
	else
		h->run(run, &o);
	clock_gettime(CLOCK_MONOTONIC, &t1);

	/* The handler fills the verdict; identity and timing are ours so a
	 * handler cannot get the fencing token wrong. */
	o.step_id = run->step_id;
	o.lease_token = run->lease_token;
	o.duration_us = worker_elapsed_us(&t0, &t1);

	if (o.outcome == OUTCOME_SUCCESS)
		log_debug("step done step_id=%" PRId64 " task_id=%" PRId64
		    " step=%s outcome=%s http_status=%d duration_us=%" PRId64
		    " correlation_id=%s", run->step_id, run->task_id,
		    run->step_name, proto_outcome_name(o.outcome),
		    (int)o.http_status, o.duration_us, run->correlation_id);
	else
		log_info("step failed step_id=%" PRId64 " task_id=%" PRId64
		    " step=%s outcome=%s error_code=%s http_status=%d "
		    "duration_us=%" PRId64 " correlation_id=%s",
		    run->step_id, run->task_id, run->step_name,
		    proto_outcome_name(o.outcome),
		    o.error_code != NULL ? o.error_code : "-",
		    (int)o.http_status, o.duration_us, run->correlation_id);

	proto_encode_outcome(pb, &o);
	worker_outcome_clear(&o);
	worker_send(pb);
}

/* Handle one decoded message from the supervisor. */
static void
worker_dispatch(struct proto_msg *msg, struct proto_buf *pb)
{
	switch (msg->type) {
	case PROTO_PING:
		proto_encode_ping(pb, PROTO_PONG, msg->u.ping.seq);
		worker_send(pb);
		break;
	case PROTO_RUN_STEP:
		worker_run_step(&msg->u.run, pb);
		break;
	default:
		/* HELLO, PONG, STEP_OUTCOME only flow the other way. */
		log_warnx("protocol error: unexpected message type=%s(%d)",
		    proto_type_name(msg->type), (int)msg->type);
		exit(WORKER_EXIT_PROTOCOL);
	}
}

/* Consume every whole frame at the front of in. */
static void
worker_process(struct worker_inbuf *in, struct proto_buf *pb)
{
	struct proto_msg	 msg;
	char			 err[256];
	size_t			 off = 0, plen;
	int			 r;

	for (;;) {
		r = proto_frame_peek(in->data + off, in->len - off,
		    worker_max_frame, &plen);
		if (r == 1)
			break;
		if (r == -1) {
			log_warnx("protocol error: bad frame length "
			    "max_frame=%zu", worker_max_frame);
			exit(WORKER_EXIT_PROTOCOL);
		}
		if (proto_decode(in->data + off + PROTO_HEADER_LEN, plen, &msg,
		    err, sizeof(err)) == -1) {
			log_warnx("protocol error: cannot decode frame "
			    "reason=\"%s\"", err);
			exit(WORKER_EXIT_PROTOCOL);
		}
		worker_dispatch(&msg, pb);
		proto_msg_clear(&msg);
		off += PROTO_HEADER_LEN + plen;
	}
	if (off > 0) {
		memmove(in->data, in->data + off, in->len - off);
		in->len -= off;
	}
}

/* Read what is available; returns 0 at EOF. */
static size_t
worker_read(struct worker_inbuf *in)
{
	ssize_t	n;

	/* Grow by doubling so a large frame costs few copies; the buffer
	 * stays bounded because worker_process fails a frame announced
	 * larger than worker_max_frame as soon as its header is in. */
	if (in->cap - in->len < WORKER_READ_CHUNK) {
		if (in->cap == 0)
			in->cap = WORKER_READ_CHUNK;
		while (in->cap - in->len < WORKER_READ_CHUNK)
			in->cap *= 2;
		in->data = xreallocarray(in->data, in->cap, 1);
	}
	for (;;) {
		n = read(PROTO_WORKER_FD, in->data + in->len,
		    in->cap - in->len);
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == ECONNRESET)
			return 0;
		fatal("read from supervisor");
	}
	in->len += (size_t)n;
	return (size_t)n;
}

int
main(int argc, char *argv[])
{
	struct worker_inbuf	 in = { NULL, 0, 0 };
	struct proto_buf	 pb;
	struct proto_hello	 hello;
	struct stat		 st;
	int			 flags;

	(void)argc;
	(void)argv;

	worker_log_setup();
	/* A write to a dead supervisor must be an EPIPE we handle, not a
	 * silent death. */
	signal(SIGPIPE, SIG_IGN);

	if (worker_frame_setup() == -1)
		exit(WORKER_EXIT_CANNOT_START);
	if (handlers_init() == -1) {
		log_warnx("cannot start: handler initialisation failed");
		exit(WORKER_EXIT_CANNOT_START);
	}
	if (fstat(PROTO_WORKER_FD, &st) == -1 || !S_ISSOCK(st.st_mode)) {
		log_warnx("cannot start: fd %d is not a socket (run by taskerd, "
		    "not by hand)", PROTO_WORKER_FD);
		exit(WORKER_EXIT_CANNOT_START);
	}
	/* Programs a handler may spawn must not hold the supervisor's
	 * socket open past this worker's death. */
	if ((flags = fcntl(PROTO_WORKER_FD, F_GETFD)) != -1)
		(void)fcntl(PROTO_WORKER_FD, F_SETFD, flags | FD_CLOEXEC);

	proto_buf_init(&pb);
	hello.version = PROTO_VERSION;
	hello.pid = (int64_t)getpid();
	proto_encode_hello(&pb, &hello);
	worker_send(&pb);
	log_debug("worker ready version=%d max_frame=%zu", PROTO_VERSION,
	    worker_max_frame);

	while (worker_read(&in) > 0)
		worker_process(&in, &pb);

	if (in.len > 0)
		log_warnx("supervisor closed mid-frame pending_bytes=%zu",
		    in.len);
	else
		log_debug("supervisor closed the socket, exiting");
	free(in.data);
	proto_buf_free(&pb);
	return WORKER_EXIT_EOF;
}
