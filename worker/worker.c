/*
 * worker.c - taskerd-worker: runs one step at a time for the supervisor.
 *
 * The supervisor forks and execs this program with its end of a socketpair
 * on PROTO_WORKER_FD; stdin is /dev/null and stderr is the supervisor's.
 * All the cleverness (deadlines, retries, fencing) is the supervisor's,
 * which is why a handler that hangs or crashes here costs one worker and
 * never the daemon.
 *
 * The main thread reads the socket, blocked in read(), and runs each step
 * itself: a RUN_STEP is read, its handler called and its STEP_OUTCOME
 * written with one wake-up of one thread.  (Handing each step to a second
 * thread cost two more wake-ups and three futex calls per step, which on
 * a virtual machine took more CPU than a short step.)  Only the main
 * thread enters a handler (and the http handler's one curl handle).
 *
 * So that the heartbeat means something while a step runs, a second
 * thread, the watcher, looks in every WATCH_MS: when one step was running
 * at two looks in a row, it takes the socket over, answers PINGs and
 * notices a closed socket or a frame that breaks the protocol, until the
 * main thread wants the socket back (an eventfd wakes it).  Between steps,
 * and during short ones, it sleeps; after a second of looks that found no
 * step running it parks until the next step starts.  So a PING that comes
 * during a step is answered within two looks (40 ms), or when the step
 * ends if that is sooner.
 *
 * Whichever thread holds the socket owns worker_in and writes it, so a
 * PONG never lands inside an outcome; worker_wmu, held while a whole frame
 * is written, makes sure of it, and lets a leaving thread stop the other's
 * writes (worker_exit).
 *
 * A PONG therefore proves the process is scheduled and its loop alive, not
 * that the handler makes progress: a stopped or wholly deadlocked worker
 * stops answering, a slow step does not; the step's deadline, enforced by
 * the supervisor, covers a handler that never returns.
 *
 * Exit status tells the supervisor what happened:
 *   0  the supervisor closed the socket (normal shutdown), even mid-step
 *   1  an unexpected system error
 *   2  cannot start (bad environment, handler init failed): do not respawn
 *      in a loop
 *   3  the supervisor sent something that is not the protocol (including
 *      a RUN_STEP before the outcome of a step that runs long, which the
 *      watcher reads; one queued behind a short step is run after it)
 *
 * Nothing is written to stdout: it is not ours.
 */
#include <sys/types.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
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
#define WORKER_EXIT_FATAL	1
#define WORKER_EXIT_CANNOT_START 2
#define WORKER_EXIT_PROTOCOL	3

#define WORKER_READ_CHUNK	65536
#define WATCH_MS		20	/* between the watcher's looks */
#define WATCH_PARK		50	/* looks at no step, then it parks */

/* Bytes read from the supervisor: whole frames from off on, then perhaps
 * part of one.  The socket's holder owns it. */
struct worker_inbuf {
	unsigned char	*data;
	size_t		 off;
	size_t		 len;
	size_t		 cap;
};

/*
 * The step in flight, and who holds the socket.  All shared under mu.  The
 * main thread runs the step; it sets busy and msg when the step starts,
 * ending when its handler returned, and clears them once it holds the
 * socket again, just before it writes the outcome (the supervisor sends
 * the next RUN_STEP only once it has the outcome, so the main thread is
 * the one to read it).  The watcher reads msg's ids for a log line.
 * started, thread and wake are the main thread's; the watcher reads only
 * wake, made before it starts.
 */
struct worker_step {
	int			 busy;
	bool			 ending;	/* its handler returned */
	uint64_t		 seq;		/* steps started */
	bool			 watching;	/* the watcher holds the socket */
	bool			 parked;	/* the watcher waits for a step */
	struct proto_msg	 msg;		/* the RUN_STEP; owned */
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;		/* the watcher waits on it */
	pthread_cond_t		 back;		/* the socket was handed back */
	bool			 started;	/* the watcher runs */
	pthread_t		 thread;
	int			 wake;		/* eventfd: give the socket back */
};

static size_t			worker_max_frame = PROTO_DEFAULT_MAX_FRAME;
static struct worker_step	worker_step = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.back = PTHREAD_COND_INITIALIZER,
	.wake = -1,
};
static struct worker_inbuf	worker_in;
/* Held while a whole frame is written to the supervisor. */
static pthread_mutex_t		worker_wmu = PTHREAD_MUTEX_INITIALIZER;

static int
worker_busy(void)
{
	int	busy;

	pthread_mutex_lock(&worker_step.mu);
	busy = worker_step.busy;
	pthread_mutex_unlock(&worker_step.mu);
	return busy;
}

/*
 * Leave now.  While a step runs, the one leaving is the watcher, and the
 * main thread may be deep in libcurl or OpenSSL; exit() would run their
 * atexit cleanups under its feet (and a crash there would turn our status
 * into a signal), so a busy worker leaves with _exit().  Nothing is lost:
 * stdout is unused and every log line is flushed as it is written.  Never
 * called with worker_step.mu held.
 */
static void __attribute__((noreturn))
worker_exit(int status)
{
	if (worker_busy()) {
		/* Nothing a step started outlives its worker. */
		handler_exec_abort();
		_exit(status);
	}
	/* No frame may be half written, or meet EPIPE and _exit, while
	 * exit() runs.  Taken for good: a frame the other thread has to
	 * write waits for the lock, and exit() ends the thread. */
	pthread_mutex_lock(&worker_wmu);
	exit(status);
}

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
		log_warnx("ignoring bad TASKERD_LOG_LEVEL value=%s",
		    log_quote(s));
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
		log_warnx("bad TASKERD_MAX_FRAME value=%s", log_quote(s));
		return -1;
	}
	worker_max_frame = (size_t)v;
	return 0;
}

size_t
handler_max_output(void)
{
	return worker_max_frame;
}

/* Write all of buf; a vanished supervisor ends the worker quietly. */
static void
worker_write_all(const unsigned char *buf, size_t len)
{
	ssize_t	n;
	bool	gone;

	while (len > 0) {
		n = write(PROTO_WORKER_FD, buf, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			/* Either thread may be here, and the main thread may
			 * be leaving by itself: _exit() is the one way out
			 * that two threads may take at once (not fatal()). */
			if ((gone = errno == EPIPE || errno == ECONNRESET))
				log_info("supervisor went away");
			else
				log_warn("write to supervisor");
			handler_exec_abort();
			_exit(gone ? WORKER_EXIT_EOF : WORKER_EXIT_FATAL);
		}
		buf += n;
		len -= (size_t)n;
	}
}

/* Either thread: pb holds whole frames. */
static void
worker_send(struct proto_buf *pb)
{
	pthread_mutex_lock(&worker_wmu);
	worker_write_all(pb->data, pb->len);
	pthread_mutex_unlock(&worker_wmu);
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

/*
 * Encode the answer to run, the outcome o, into pb as one frame, and free
 * o.  Either thread, on a step it owns.
 */
static void
worker_outcome_frame(const struct proto_run_step *run,
    struct proto_step_outcome *o, struct proto_buf *pb)
{
	size_t		 start, frame;
	const char	*fault = NULL;
	int64_t		 duration;

	/* The handler fills the verdict; identity and timing are ours so a
	 * handler cannot get the fencing token wrong. */
	o->step_id = run->step_id;
	o->lease_token = run->lease_token;

	if (o->outcome == OUTCOME_SUCCESS)
		log_debug("step done step_id=%" PRId64 " task_id=%" PRId64
		    " step=%s outcome=%s http_status=%d duration_us=%" PRId64
		    " correlation_id=%s", run->step_id, run->task_id,
		    run->step_name, proto_outcome_name(o->outcome),
		    (int)o->http_status, o->duration_us, run->correlation_id);
	else
		log_info("step failed step_id=%" PRId64 " task_id=%" PRId64
		    " step=%s outcome=%s error_code=%s http_status=%d "
		    "duration_us=%" PRId64 " correlation_id=%s",
		    run->step_id, run->task_id, run->step_name,
		    proto_outcome_name(o->outcome),
		    log_quote(o->error_code),
		    (int)o->http_status, o->duration_us, run->correlation_id);

	start = pb->len;
	proto_encode_outcome(pb, o);
	frame = pb->len - start;
	if (frame > PROTO_HEADER_LEN + worker_max_frame ||
	    (fault = proto_scan(pb->data + start + PROTO_HEADER_LEN,
	    frame - PROTO_HEADER_LEN)) != NULL) {
		/* The supervisor would drop this worker and retry the step,
		 * repeating whatever the handler did.  The step did run: it
		 * fails for good, saying why. */
		log_warnx("step outcome too large step_id=%" PRId64 " step=%s "
		    "frame_bytes=%zu max_frame=%zu reason=%s "
		    "correlation_id=%s", run->step_id, run->step_name, frame,
		    worker_max_frame, log_quote(fault), run->correlation_id);
		pb->len = start;
		duration = o->duration_us;
		worker_outcome_clear(o);
		o->step_id = run->step_id;
		o->lease_token = run->lease_token;
		o->outcome = OUTCOME_PERMANENT;
		o->error_code = xstrdup("results_too_large");
		if (fault != NULL)
			xasprintf(&o->error_message, "the step's results "
			    "hold %s", fault);
		else
			xasprintf(&o->error_message, "the step's outcome "
			    "takes %zu bytes; workers.max_frame is %zu", frame,
			    worker_max_frame);
		o->retry_after_ms = -1;
		o->duration_us = duration;
		proto_encode_outcome(pb, o);
	}
	worker_outcome_clear(o);
}

static void	worker_process(struct proto_buf *);
static size_t	worker_read(void);

/* The supervisor closed the socket: leave, saying how.  Either thread. */
static void __attribute__((noreturn))
worker_eof(void)
{
	const struct proto_run_step	*run;

	pthread_mutex_lock(&worker_step.mu);
	if (worker_step.busy) {
		run = &worker_step.msg.u.run;
		/* Waiting would only delay the supervisor, which fails the
		 * step's lease itself. */
		log_info("supervisor closed the socket mid-step, exiting "
		    "step_id=%" PRId64 " task_id=%" PRId64 " correlation_id=%s",
		    run->step_id, run->task_id, run->correlation_id);
		pthread_mutex_unlock(&worker_step.mu);
		worker_exit(WORKER_EXIT_EOF);
	}
	pthread_mutex_unlock(&worker_step.mu);
	if (worker_in.len > worker_in.off)
		log_warnx("supervisor closed mid-frame pending_bytes=%zu",
		    worker_in.len - worker_in.off);
	else
		log_debug("supervisor closed the socket, exiting");
	worker_exit(WORKER_EXIT_EOF);
}

/* The watcher, holding the socket while a step runs: serve it until the
 * main thread asks for it back. */
static void
worker_watch(struct proto_buf *pb)
{
	struct pollfd	pfd[2];
	uint64_t	n;

	pfd[0].fd = PROTO_WORKER_FD;
	pfd[0].events = POLLIN;
	pfd[1].fd = worker_step.wake;
	pfd[1].events = POLLIN;
	for (;;) {
		/* First what came with the RUN_STEP, or after it. */
		worker_process(pb);
		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			worker_exit(WORKER_EXIT_FATAL);
		}
		if (pfd[1].revents != 0) {
			(void)read(worker_step.wake, &n, sizeof(n));
			return;
		}
		if (pfd[0].revents != 0 && worker_read() == 0)
			worker_eof();
	}
}

/*
 * The watcher thread.  It looks every WATCH_MS; when the same step was
 * running at two looks in a row, it takes the socket.  After WATCH_PARK
 * looks at an idle worker it waits untimed, and the next step wakes it.
 * A step whose handler returned is not taken again: the main thread,
 * slow to run after the socket came back, would wait for it for good.
 */
static void *
worker_watch_thread(void *arg)
{
	struct worker_step	*st = arg;
	struct proto_buf	 pb;
	struct timespec		 at;
	uint64_t		 seen = 0;
	int			 idle = 0;

	proto_buf_init(&pb);
	pthread_mutex_lock(&st->mu);
	for (;;) {
		if (st->busy && !st->ending && st->seq == seen) {
			st->watching = true;
			pthread_mutex_unlock(&st->mu);
			worker_watch(&pb);
			pthread_mutex_lock(&st->mu);
			st->watching = false;
			pthread_cond_signal(&st->back);
		} else if (st->busy) {
			seen = st->seq;
			idle = 0;
		} else if (++idle >= WATCH_PARK) {
			st->parked = true;
			while (!st->busy)
				pthread_cond_wait(&st->cv, &st->mu);
			st->parked = false;
			seen = st->seq;
			idle = 0;
		}
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_nsec += WATCH_MS * 1000000L;
		if (at.tv_nsec >= 1000000000L) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&st->cv, &st->mu, &at);
	}
	return NULL;
}

/* Start the watcher, with the eventfd that asks it for the socket back. */
static int
worker_watch_start(struct worker_step *st)
{
	int	rc;

	if ((st->wake = eventfd(0, EFD_CLOEXEC)) == -1)
		return errno;
	if ((rc = pthread_create(&st->thread, NULL, worker_watch_thread,
	    st)) != 0) {
		close(st->wake);
		st->wake = -1;
		return rc;
	}
	st->started = true;
	return 0;
}

/* Answer msg's step without running it; clears msg. */
static void
worker_step_refuse(struct proto_msg *msg, struct proto_step_outcome *o,
    struct proto_buf *pb)
{
	worker_outcome_frame(&msg->u.run, o, pb);
	proto_msg_clear(msg);
	worker_send(pb);
}

/* Run the RUN_STEP in msg and answer it; takes msg.  Main thread only: the
 * watcher, which meets a RUN_STEP only while a step runs, leaves. */
static void
worker_step_run(struct proto_msg *msg, struct proto_buf *pb)
{
	struct worker_step		*st = &worker_step;
	const struct proto_run_step	*run = &msg->u.run;
	const struct handler		*h;
	struct proto_step_outcome	 o;
	struct timespec			 t0, t1;
	uint64_t			 one = 1;
	bool				 parked;
	int				 rc;

	pthread_mutex_lock(&st->mu);
	if (st->busy) {
		log_warnx("protocol error: RUN_STEP while a step runs "
		    "step_id=%" PRId64 " running_step_id=%" PRId64
		    " correlation_id=%s", run->step_id,
		    st->msg.u.run.step_id, st->msg.u.run.correlation_id);
		pthread_mutex_unlock(&st->mu);
		worker_exit(WORKER_EXIT_PROTOCOL);
	}
	pthread_mutex_unlock(&st->mu);

	log_debug("step start step_id=%" PRId64 " task_id=%" PRId64
	    " step=%s handler=%s attempt=%u correlation_id=%s",
	    run->step_id, run->task_id, run->step_name, run->handler,
	    run->attempt, run->correlation_id);

	memset(&o, 0, sizeof(o));
	o.retry_after_ms = -1;
	if ((h = handler_find(run->handler)) == NULL) {
		outcome_fail(&o, OUTCOME_PERMANENT, "unknown_handler",
		    "no handler named '%s' in this worker", run->handler);
		worker_step_refuse(msg, &o, pb);
		return;
	}
	/* Not a crash of the step: a later attempt, maybe on a fresh worker,
	 * may well get its thread. */
	if (!st->started && (rc = worker_watch_start(st)) != 0) {
		log_warnx("cannot start watcher thread step_id=%" PRId64
		    " task_id=%" PRId64 " correlation_id=%s: %s", run->step_id,
		    run->task_id, run->correlation_id, strerror(rc));
		outcome_fail(&o, OUTCOME_RETRYABLE, "worker_thread",
		    "worker cannot start a watcher thread: %s", strerror(rc));
		worker_step_refuse(msg, &o, pb);
		return;
	}

	/* Ownership of the message's strings and JSON moves to the step. */
	pthread_mutex_lock(&st->mu);
	st->msg = *msg;
	memset(msg, 0, sizeof(*msg));
	st->busy = 1;
	st->seq++;
	parked = st->parked;
	pthread_mutex_unlock(&st->mu);
	/* After the unlock: woken while the lock is still held, the watcher
	 * would only wake to block on it. */
	if (parked)
		pthread_cond_signal(&st->cv);

	run = &st->msg.u.run;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	h->run(run, &o);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	o.duration_us = worker_elapsed_us(&t0, &t1);
	worker_outcome_frame(run, &o, pb);

	/* The socket back before the outcome goes: the next RUN_STEP, sent
	 * once the supervisor has it, is the main thread's to read. */
	pthread_mutex_lock(&st->mu);
	st->ending = true;
	if (st->watching) {
		if (write(st->wake, &one, sizeof(one)) == -1) {
			log_warn("wake the watcher");
			pthread_mutex_unlock(&st->mu);
			worker_exit(WORKER_EXIT_FATAL);
		}
		while (st->watching)
			pthread_cond_wait(&st->back, &st->mu);
	}
	st->busy = 0;
	st->ending = false;
	proto_msg_clear(&st->msg);
	pthread_mutex_unlock(&st->mu);
	worker_send(pb);
}

/* Handle one decoded message from the supervisor; takes msg (clears it or
 * hands it to the step). */
static void
worker_dispatch(struct proto_msg *msg, struct proto_buf *pb)
{
	switch (msg->type) {
	case PROTO_PING:
		/* Answered even mid-step (by the watcher): that is what
		 * tells the supervisor a busy worker is alive. */
		proto_encode_ping(pb, PROTO_PONG, msg->u.ping.seq);
		proto_msg_clear(msg);
		worker_send(pb);
		break;
	case PROTO_RUN_STEP:
		worker_step_run(msg, pb);
		break;
	default:
		/* HELLO, PONG, STEP_OUTCOME only flow the other way. */
		log_warnx("protocol error: unexpected message type=%s(%d)",
		    proto_type_name(msg->type), (int)msg->type);
		worker_exit(WORKER_EXIT_PROTOCOL);
	}
}

/* Consume every whole frame of worker_in, one at a time: a step run from
 * here lets the watcher consume those after it meanwhile. */
static void
worker_process(struct proto_buf *pb)
{
	struct worker_inbuf	*in = &worker_in;
	struct proto_msg	 msg;
	char			 err[256];
	size_t			 plen;
	int			 r;

	for (;;) {
		r = proto_frame_peek(in->data + in->off, in->len - in->off,
		    worker_max_frame, &plen);
		if (r == 1)
			break;
		if (r == -1) {
			log_warnx("protocol error: bad frame length "
			    "max_frame=%zu", worker_max_frame);
			worker_exit(WORKER_EXIT_PROTOCOL);
		}
		if (proto_decode(in->data + in->off + PROTO_HEADER_LEN, plen,
		    &msg, err, sizeof(err)) == -1) {
			log_warnx("protocol error: cannot decode frame "
			    "reason=%s", log_quote(err));
			worker_exit(WORKER_EXIT_PROTOCOL);
		}
		in->off += PROTO_HEADER_LEN + plen;
		worker_dispatch(&msg, pb);
	}
}

/* Read what is available into worker_in; returns 0 at EOF. */
static size_t
worker_read(void)
{
	struct worker_inbuf	*in = &worker_in;
	ssize_t			 n;

	if (in->off > 0) {
		memmove(in->data, in->data + in->off, in->len - in->off);
		in->len -= in->off;
		in->off = 0;
	}
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
		log_warn("read from supervisor");
		worker_exit(WORKER_EXIT_FATAL);
	}
	in->len += (size_t)n;
	return (size_t)n;
}

int
main(int argc, char *argv[])
{
	struct proto_buf	 pb;
	struct proto_hello	 hello;
	struct stat		 st;
	pthread_condattr_t	 ca;
	int			 flags;

	(void)argc;
	(void)argv;

	worker_log_setup();
	/* A write to a dead supervisor must be an EPIPE we handle, not a
	 * silent death. */
	signal(SIGPIPE, SIG_IGN);
	/* The watcher's looks are timed by the monotonic clock. */
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&worker_step.cv, &ca) != 0) {
		log_warnx("cannot start: pthread_cond_init");
		exit(WORKER_EXIT_CANNOT_START);
	}
	pthread_condattr_destroy(&ca);

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
	/* The main thread blocks in read(); it has nothing else to wait
	 * for (the watcher polls before it reads). */
	if ((flags = fcntl(PROTO_WORKER_FD, F_GETFL)) != -1 &&
	    (flags & O_NONBLOCK))
		(void)fcntl(PROTO_WORKER_FD, F_SETFL, flags & ~O_NONBLOCK);

	proto_buf_init(&pb);
	hello.version = PROTO_VERSION;
	hello.pid = (int64_t)getpid();
	proto_encode_hello(&pb, &hello);
	worker_send(&pb);
	log_debug("worker ready version=%d max_frame=%zu", PROTO_VERSION,
	    worker_max_frame);

	while (worker_read() > 0)
		worker_process(&pb);
	worker_eof();
}
