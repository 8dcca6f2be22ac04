/*
 * pool.c - taskerd-worker processes.
 *
 * Each worker is forked and exec'd with its end of a socketpair on
 * PROTO_WORKER_FD, so it starts with a fresh address space: no libpq
 * connection, no event base, no heap of ours.  The supervisor talks to it in
 * msgpack frames over a bufferevent.  Whatever a handler does - crash, hang,
 * leak, speak garbage - costs one worker: the supervisor reaps it, writes one
 * obituary line, hands the step back to the scheduler as a retryable
 * failure, and starts a replacement (slowly, if it keeps dying at start).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <grp.h>
#include <pwd.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "pool.h"
#include "childenv.h"
#include "embedpg.h"
#include "fdlimit.h"
#include "sched.h"
#include "metrics.h"
#include "supervisor.h"
#include "protocol.h"
#include "duration.h"
#include "log.h"
#include "xmalloc.h"

#define WORKER_KILL_GRACE_MS	2000	/* SIGTERM -> SIGKILL */
#define WORKER_START_MIN_MS	100	/* first respawn delay after a bad start */
#define WORKER_START_MAX_MS	30000
#define WORKER_EXIT_CANNOT_START 2	/* the worker's "don't respawn me fast" */
#define POOL_KILLED		32	/* strays remembered as killed */

enum worker_state {
	W_EMPTY,	/* no process: waiting for the respawn timer */
	W_STARTING,	/* forked, waiting for HELLO */
	W_IDLE,		/* handshake done, no step */
	W_BUSY,		/* running w->claim */
	W_EXITING,	/* killed or socket closed, waiting to be reaped */
};

static const char *const worker_state_names[] = {
	"empty", "starting", "idle", "busy", "exiting"
};

struct worker {
	int			 slot;
	enum worker_state	 state;
	pid_t			 pid;
	struct bufferevent	*bev;
	struct claim		*claim;		/* owned while busy/exiting */
	struct event		*deadline;	/* step timeout, then kill grace */
	struct event		*respawn;
	bool			 timed_out;	/* the deadline fired */
	bool			 unresponsive;	/* stopped answering pings */
	bool			 abandoned;	/* the node's lease lapsed */
	bool			 reaped;	/* gone: its last frames are read,
						 * nothing is sent or signalled */
	bool			 hung_up;	/* its socket met EOF or an error */
	bool			 recycle;	/* to be replaced once idle */
	bool			 retired;	/* stopped to be replaced */
	bool			 replacing;	/* the slot's new worker for a
						 * retired one, before its hello */
	char			 broke[96];	/* the protocol error it made */
	bool			 said_hello;
	struct timespec		 last_heard;	/* any frame, or the spawn */
	uint64_t		 ping_seq;
	int			 restarts;
	int			 start_delay_ms;/* grows while starts fail */
	time_t			 started_at;
};

static struct {
	struct event_base	*base;
	struct worker		*w;
	int			 n;
	char			*path;
	size_t			 max_frame;
	int64_t			 ping_interval_ms;
	bool			 drop;		/* switch workers to uid/gid */
	uid_t			 uid;
	gid_t			 gid;
	int64_t			 ping_timeout_ms;
	struct event		*sigchld;
	struct event		*ping;
	struct event		*sweep;		/* for strays, after a death */
	pid_t			*elders;	/* children taskerd was execed */
	int			 nelders;	/* with: not strays */
	pid_t			 killed[POOL_KILLED];	/* strays lately killed, */
	unsigned		 nkilled;	/* logged and counted once */
	struct timespec		 last_tick;	/* of the ping timer */
	int			 replacing;	/* slots whose .replacing is set */
	bool			 stopping;
} pool;

static void	worker_spawn(struct worker *);
static void	worker_kill(struct worker *, int sig, const char *why);
static void	worker_retire(struct worker *);
static void	recycle_next(void);
static void	replaced(struct worker *, bool started);
static int	pool_kill_strays(int *);
static void	pool_sweep(void);

static struct worker *
worker_by_pid(pid_t pid)
{
	int	i;

	for (i = 0; i < pool.n; i++)
		if (pool.w[i].pid == pid && pool.w[i].state != W_EMPTY)
			return &pool.w[i];
	return NULL;
}

/*
 * A frame goes out at once when nothing waits before it.  Through the
 * bufferevent alone it waited for the loop's next turn, and the socket's
 * write event was switched on and off for it: two epoll_ctl calls per
 * step, and a worker idle meanwhile.  What the socket does not take, or an
 * error (which the bufferevent then meets and reports as ever), goes the
 * bufferevent's way, behind which later frames queue.
 */
static void
worker_send(struct worker *w, struct proto_buf *buf)
{
	ssize_t	n = 0;

	if (w->bev == NULL)
		goto out;
	if (evbuffer_get_length(bufferevent_get_output(w->bev)) == 0 &&
	    (n = send(bufferevent_getfd(w->bev), buf->data, buf->len,
	    MSG_DONTWAIT | MSG_NOSIGNAL)) == -1)
		n = 0;
	if ((size_t)n < buf->len)
		bufferevent_write(w->bev, buf->data + n, buf->len - (size_t)n);
out:
	proto_buf_free(buf);
}

static void
worker_close_socket(struct worker *w)
{
	if (w->bev != NULL) {
		/* bufferevent_free() may close the fd only on a later loop
		 * turn; shutting it down now gives the worker its EOF even
		 * when the loop has already ended. */
		shutdown(bufferevent_getfd(w->bev), SHUT_RDWR);
		bufferevent_free(w->bev);
		w->bev = NULL;
	}
}

/* A peer that broke the protocol is dropped, never trusted again. */
static void
worker_protocol_error(struct worker *w, const char *why)
{
	log_warnx("worker protocol error pid=%d slot=%d reason=%s",
	    (int)w->pid, w->slot, log_quote(why));
	snprintf(w->broke, sizeof(w->broke), "%s", why);
	worker_close_socket(w);
	worker_kill(w, SIGKILL, "protocol error");
}

static void
worker_handle(struct worker *w, struct proto_msg *m)
{
	struct claim	*c;

	switch (m->type) {
	case PROTO_HELLO:
		if (w->state != W_STARTING) {
			worker_protocol_error(w, "hello twice");
			return;
		}
		if (m->u.hello.version != PROTO_VERSION) {
			log_warnx("worker speaks another protocol pid=%d "
			    "version=%u expected=%d", (int)w->pid,
			    m->u.hello.version, PROTO_VERSION);
			worker_close_socket(w);
			worker_kill(w, SIGKILL, "version mismatch");
			return;
		}
		w->said_hello = true;
		w->start_delay_ms = 0;
		w->state = W_IDLE;
		log_debug("worker ready pid=%d slot=%d", (int)w->pid, w->slot);
		supervisor_check_ready();
		replaced(w, true);
		/* The next worker a reload replaces: this one, if it started
		 * before the reload. */
		recycle_next();
		if (w->state == W_IDLE)
			sched_worker_idle();
		break;
	case PROTO_PONG:
		break;
	case PROTO_STEP_OUTCOME:
		c = w->claim;
		if (w->state == W_EXITING && c != NULL &&
		    m->u.outcome.step_id == c->step_id &&
		    m->u.outcome.lease_token == c->lease_token) {
			/* Sent as its deadline (or the lease) stopped it: the
			 * stop stands, and the reaper ends the attempt. */
			log_info("outcome of a stopped worker ignored pid=%d "
			    "task_id=%lld step=%s", (int)w->pid,
			    (long long)c->task_id, log_quote(c->step_name));
			break;
		}
		if (w->state != W_BUSY || c == NULL ||
		    m->u.outcome.step_id != c->step_id ||
		    m->u.outcome.lease_token != c->lease_token) {
			worker_protocol_error(w, "outcome for a step it was "
			    "not running");
			return;
		}
		event_del(w->deadline);
		w->claim = NULL;
		/* A reaped worker's last outcome frees no worker to run the
		 * next step, nor does one a reload replaces now. */
		w->state = w->reaped ? W_EXITING : W_IDLE;
		if (w->recycle && !w->reaped && pool.replacing == 0 &&
		    !sv.stopping)
			worker_retire(w);
		sched_outcome(c, &m->u.outcome);
		if (w->state == W_IDLE)
			sched_worker_idle();
		break;
	default:
		worker_protocol_error(w, "unexpected message type");
		break;
	}
}

/* Handle every whole frame at the front of in. */
static void
worker_frames(struct worker *w, struct evbuffer *in)
{
	struct proto_msg	 m;
	unsigned char		*p;
	size_t			 have, plen;
	char			 err[256];
	int			 r;

	while (w->bev != NULL && (have = evbuffer_get_length(in)) >=
	    PROTO_HEADER_LEN) {
		/* Only the header is made contiguous to peek at; the frame
		 * is pulled up once it has fully arrived. */
		p = evbuffer_pullup(in, PROTO_HEADER_LEN);
		r = proto_frame_peek(p, have, pool.max_frame, &plen);
		if (r == -1) {
			worker_protocol_error(w, "bad frame length");
			return;
		}
		if (r == 1)
			return;
		p = evbuffer_pullup(in, (ev_ssize_t)(PROTO_HEADER_LEN + plen));
		if (proto_decode(p + PROTO_HEADER_LEN, plen, &m, err,
		    sizeof(err)) == -1) {
			worker_protocol_error(w, err);
			return;
		}
		evbuffer_drain(in, PROTO_HEADER_LEN + plen);
		clock_gettime(CLOCK_MONOTONIC, &w->last_heard);
		worker_handle(w, &m);
		proto_msg_clear(&m);
	}
}

static void
worker_read_cb(struct bufferevent *bev, void *arg)
{
	worker_frames(arg, bufferevent_get_input(bev));
}

static void
worker_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct worker	*w = arg;
	struct timeval	 tv = { WORKER_KILL_GRACE_MS / 1000,
	    (WORKER_KILL_GRACE_MS % 1000) * 1000 };

	/* EOF or error: the process is on its way out and SIGCHLD will reap
	 * it; one that closed its socket but lingers is killed after a grace.
	 * A busy one's socket is left as it is until the reaper reads it
	 * (worker_last_words): an error writing to it (a ping to the dead)
	 * may come while the outcome it wrote last is still unread. */
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	if (w->state != W_BUSY)
		worker_close_socket(w);
	if (w->hung_up || w->state == W_EXITING || w->state == W_EMPTY)
		return;
	w->hung_up = true;
	if (w->state != W_BUSY)
		w->state = W_EXITING;
	evtimer_add(w->deadline, &tv);
}

static void
worker_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct timeval	 tv = { WORKER_KILL_GRACE_MS / 1000,
	    (WORKER_KILL_GRACE_MS % 1000) * 1000 };

	if (w->state == W_BUSY && !w->hung_up) {
		/* The step's own timeout: ask nicely, then insist. */
		log_warnx("step timed out, stopping worker pid=%d slot=%d "
		    "task_id=%lld step=%s attempt=%u timeout_ms=%u "
		    "correlation_id=%s", (int)w->pid, w->slot,
		    (long long)w->claim->task_id, w->claim->step_name,
		    w->claim->attempt, w->claim->timeout_ms,
		    w->claim->correlation_id);
		w->timed_out = true;
		worker_kill(w, SIGTERM, "step timeout");
		evtimer_add(w->deadline, &tv);
		return;
	}
	if (w->pid > 0)
		worker_kill(w, SIGKILL, "did not exit");
}

static void
worker_kill(struct worker *w, int sig, const char *why)
{
	/* A reaped pid may already be another process's. */
	if (w->pid <= 0 || w->reaped)
		return;
	log_debug("signalling worker pid=%d slot=%d signal=%d reason=%s",
	    (int)w->pid, w->slot, sig, log_quote(why));
	kill(w->pid, sig);
	/* From here no outcome of this worker is accepted: the claim waits
	 * for the reaper. */
	if (w->state != W_EMPTY)
		w->state = W_EXITING;
}

static void
worker_respawn_cb(evutil_socket_t fd, short what, void *arg)
{
	worker_spawn(arg);
}

static void
worker_spawn(struct worker *w)
{
	int		 sp[2], devnull;
	pid_t		 pid;
	char		 frame[48], level[48], **env;
	char		*argv[] = { "taskerd-worker", NULL };
	const char	*set[] = { frame, NULL }, *deflt[] = { level, NULL };

	if (pool.stopping)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1) {
		log_warn("socketpair for worker slot=%d", w->slot);
		goto retry;
	}
	/* The supervisor's log level, unless the environment sets the
	 * workers' own; systemd's notification socket is the supervisor's
	 * alone (childenv). */
	snprintf(frame, sizeof(frame), "TASKERD_MAX_FRAME=%zu",
	    pool.max_frame);
	snprintf(level, sizeof(level), "TASKERD_LOG_LEVEL=%s",
	    log_level_name());
	env = childenv(set, deflt);
	switch ((pid = fork())) {
	case -1:
		log_warn("fork worker slot=%d", w->slot);
		childenv_free(env);
		close(sp[0]);
		close(sp[1]);
		goto retry;
	case 0:
		/* Child: only async-signal-safe calls until exec. */
		if (dup2(sp[1], PROTO_WORKER_FD) == -1)
			_exit(WORKER_EXIT_CANNOT_START);
		if (sp[1] == PROTO_WORKER_FD)
			fcntl(PROTO_WORKER_FD, F_SETFD, 0);
		if ((devnull = open("/dev/null", O_RDWR)) != -1) {
			dup2(devnull, STDIN_FILENO);
			dup2(devnull, STDOUT_FILENO);
		}
		close_range(PROTO_WORKER_FD + 1, ~0U, 0);
		/* A process group of its own: a terminal's Ctrl-C goes to the
		 * supervisor, which drains; the worker stops when told to, or
		 * when its socket closes. */
		setpgid(0, 0);
		{
			sigset_t all;
			sigemptyset(&all);
			sigprocmask(SIG_SETMASK, &all, NULL);
			signal(SIGPIPE, SIG_DFL);
		}
		/* Handlers never run with the supervisor's privileges, nor
		 * gain any through exec. */
		if (pool.drop && (setgroups(1, &pool.gid) == -1 ||
		    setgid(pool.gid) == -1 || setuid(pool.uid) == -1))
			_exit(WORKER_EXIT_CANNOT_START);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
			_exit(WORKER_EXIT_CANNOT_START);
		/* (Last: its own descriptors are opened under taskerd's.) */
		fdlimit_restore();
		execve(pool.path, argv, env);
		_exit(WORKER_EXIT_CANNOT_START);
	default:
		break;
	}
	childenv_free(env);
	close(sp[1]);
	evutil_make_socket_nonblocking(sp[0]);
	w->pid = pid;
	w->state = W_STARTING;
	w->said_hello = false;
	w->timed_out = false;
	w->unresponsive = false;
	w->abandoned = false;
	w->reaped = false;
	w->hung_up = false;
	w->recycle = false;
	w->retired = false;
	w->broke[0] = '\0';
	w->started_at = time(NULL);
	clock_gettime(CLOCK_MONOTONIC, &w->last_heard);
	w->bev = bufferevent_socket_new(pool.base, sp[0],
	    BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(w->bev, worker_read_cb, NULL, worker_event_cb, w);
	bufferevent_setwatermark(w->bev, EV_READ, 0,
	    pool.max_frame + PROTO_HEADER_LEN);
	bufferevent_enable(w->bev, EV_READ | EV_WRITE);
	log_info("worker started pid=%d slot=%d", (int)pid, w->slot);
	return;
retry:
	w->state = W_EMPTY;
	{
		struct timeval tv = { 1, 0 };
		evtimer_add(w->respawn, &tv);
	}
}

/* The signal that ended a process: "SIGSEGV". */
static const char *
sig_name(int status)
{
	static char	 name[16];
	const char	*abbrev = sigabbrev_np(WTERMSIG(status));

	snprintf(name, sizeof(name), "SIG%s", abbrev ? abbrev : "UNKNOWN");
	return name;
}

/* How a worker ended, for the log: "signal=SIGSEGV", "exit=2". */
static const char *
exit_how(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "signal=%s", sig_name(status));
	else
		snprintf(buf, len, "exit=%d", WEXITSTATUS(status));
	return buf;
}

/* One line per death: who, how, and what it was doing. */
static void
worker_obituary(struct worker *w, int status)
{
	char		 how[64];
	struct claim	*c = w->claim;

	exit_how(status, how, sizeof(how));

	if (c != NULL)
		log_warnx("worker died pid=%d slot=%d %s step=%s task_id=%lld "
		    "attempt=%u correlation_id=%s", (int)w->pid, w->slot, how,
		    c->step_name, (long long)c->task_id, c->attempt,
		    c->correlation_id);
	else if (pool.stopping)
		log_info("worker exited pid=%d slot=%d %s", (int)w->pid,
		    w->slot, how);
	else
		log_warnx("worker died pid=%d slot=%d %s step=none",
		    (int)w->pid, w->slot, how);
}

/*
 * Read what a reaped worker wrote before it died.  SIGCHLD may be handled
 * before its socket is read to the end: the socket is read a few kilobytes
 * per loop turn, and one SIGCHLD reaps every dead worker.  An outcome in
 * there is the step's, and must not be lost to a worker_died and a second
 * run.  A worker stopped on purpose (its step timed out, the lease lapsed)
 * is no longer busy: its outcome is not accepted, as when it lived.
 */
static void
worker_last_words(struct worker *w)
{
	struct evbuffer	*in;
	int		 fd;

	if (w->bev == NULL || w->state != W_BUSY)
		return;
	w->reaped = true;
	/* The bufferevent's own input only it may add to: what it has read
	 * moves to a buffer of our own, which the rest is read into. */
	if ((in = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	evbuffer_add_buffer(in, bufferevent_get_input(w->bev));
	fd = bufferevent_getfd(w->bev);
	/* The writer is gone: this ends at EOF, the socket's buffer at most
	 * (and the frame cap: a longer frame is a protocol error). */
	while (evbuffer_get_length(in) <= pool.max_frame + PROTO_HEADER_LEN &&
	    evbuffer_read(in, fd, 65536) > 0)
		;
	worker_frames(w, in);
	evbuffer_free(in);
}

/* What the step's error says of its worker's end: how it died, or the
 * protocol error it was stopped for. */
static const char *
death_text(const struct worker *w, int status, char *buf, size_t len)
{
	if (w->broke[0] != '\0')
		snprintf(buf, len, "the worker running the step was stopped: "
		    "protocol error: %s", w->broke);
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "the worker running the step died (%s)",
		    sig_name(status));
	else
		snprintf(buf, len, "the worker running the step died (exit "
		    "status %d)", WEXITSTATUS(status));
	return buf;
}

static void
worker_reaped(struct worker *w, int status)
{
	struct claim	*c;
	struct timeval	 tv = { 0, 0 };
	bool		 bad_start;
	char		 why[160];

	worker_last_words(w);
	w->reaped = true;
	c = w->claim;
	if (w->retired && c == NULL && !pool.stopping) {
		/* Told to stop, it exits 0 (or dies of the SIGTERM while a
		 * handler holds it); anything else is said. */
		if ((WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
		    (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM))
			log_info("worker replaced after a reload pid=%d slot=%d",
			    (int)w->pid, w->slot);
		else
			log_warnx("worker replaced after a reload died on its "
			    "way out pid=%d slot=%d %s", (int)w->pid, w->slot,
			    exit_how(status, why, sizeof(why)));
		worker_close_socket(w);
		event_del(w->deadline);
		w->pid = 0;
		w->state = W_EMPTY;
		w->replacing = true;
		evtimer_add(w->respawn, &tv);
		return;
	}
	/* A replacement that died before its hello stops the recycling. */
	replaced(w, false);
	worker_obituary(w, status);
	if (!pool.stopping) {
		char reason[32];

		if (WIFSIGNALED(status))
			snprintf(reason, sizeof(reason), "%s",
			    sig_name(status));
		else
			snprintf(reason, sizeof(reason), "exit_%d",
			    WEXITSTATUS(status));
		metrics_inc(M_WORKER_DEATHS, 1, reason, NULL, NULL);
	}
	worker_close_socket(w);
	event_del(w->deadline);
	w->claim = NULL;
	w->pid = 0;
	w->state = W_EMPTY;
	if (!pool.stopping) {
		struct timeval sweep = { 0, 100000 };

		evtimer_add(pool.sweep, &sweep);
	}

	if (c != NULL && pool.stopping) {
		/* Past the drain deadline: the lease stays with this node and
		 * its next start fails the attempt (sched_init). */
		claim_free(c);
		c = NULL;
	}
	if (c != NULL) {
		if (w->timed_out)
			sched_fail(c, "timeout", "step exceeded its timeout; "
			    "worker stopped");
		else if (w->unresponsive)
			sched_fail(c, "worker_unresponsive", "the worker running "
			    "the step stopped answering pings");
		else if (w->abandoned)
			sched_fail(c, "node_lease_lapsed", "this node lost its "
			    "lease while the step ran; another node may run it");
		else
			sched_fail(c, "worker_died", death_text(w, status,
			    why, sizeof(why)));
	}
	if (pool.stopping)
		return;

	/* A worker that cannot even start is not respawned in a loop.  (It
	 * exits WORKER_EXIT_CANNOT_START before its hello; after, an exit 2
	 * is a handler's.) */
	bad_start = !w->said_hello;
	if (bad_start) {
		w->start_delay_ms = w->start_delay_ms == 0 ?
		    WORKER_START_MIN_MS : w->start_delay_ms * 2;
		if (w->start_delay_ms > WORKER_START_MAX_MS)
			w->start_delay_ms = WORKER_START_MAX_MS;
		log_warnx("worker cannot start slot=%d path=%s "
		    "retry_in_ms=%d", w->slot, log_quote(pool.path),
		    w->start_delay_ms);
		tv.tv_sec = w->start_delay_ms / 1000;
		tv.tv_usec = (w->start_delay_ms % 1000) * 1000;
	}
	w->restarts++;
	metrics_inc(M_WORKER_RESTARTS, 1, NULL, NULL, NULL);
	evtimer_add(w->respawn, &tv);
	supervisor_check_ready();
}

/*
 * A reload replaces every worker, so that the new ones load plugins anew
 * (a worker keeps what it has dlopen()ed: a new version at the same path
 * is otherwise never seen) and log at the new level.  One at a time, each
 * once idle, so that the pool is never down more than one worker.
 */
void
pool_recycle(void)
{
	int	i;

	if (pool.stopping || sv.stopping)
		return;
	/* (One still starting was exec'd with the old level: it goes too,
	 * once it has said hello.  An empty slot's next worker is new.) */
	for (i = 0; i < pool.n; i++)
		if (pool.w[i].state == W_IDLE || pool.w[i].state == W_BUSY ||
		    pool.w[i].state == W_STARTING)
			pool.w[i].recycle = true;
	recycle_next();
}

/* Retire the next idle worker a reload is to replace, unless one is being
 * replaced already. */
static void
recycle_next(void)
{
	int	i;

	for (i = 0; i < pool.n && pool.replacing == 0 && !sv.stopping; i++)
		if (pool.w[i].recycle && pool.w[i].state == W_IDLE)
			worker_retire(&pool.w[i]);
}

static void
worker_retire(struct worker *w)
{
	struct timeval	tv = { WORKER_KILL_GRACE_MS / 1000,
	    (WORKER_KILL_GRACE_MS % 1000) * 1000 };

	w->recycle = false;
	w->retired = true;
	pool.replacing++;
	worker_kill(w, SIGTERM, "replaced after a reload");
	evtimer_add(w->deadline, &tv);
}

/* The slot's replacement said hello: on to the next one.  Or it died trying
 * (the worker binary changed and cannot start, say): the workers not yet
 * replaced are kept, rather than traded one by one for ones that fail. */
static void
replaced(struct worker *w, bool started)
{
	int	i;

	if (!w->replacing)
		return;
	w->replacing = false;
	pool.replacing--;
	if (started || pool.stopping)
		return;		/* (the hello goes on to the next one) */
	log_warnx("a worker replaced after a reload did not start; the "
	    "others are kept slot=%d", w->slot);
	for (i = 0; i < pool.n; i++)
		pool.w[i].recycle = false;
}

/*
 * Liveness: every worker, idle or busy, answers pings (a busy one from its
 * watcher thread while the handler runs).  One that stays silent - stopped,
 * wedged, or never finishing its start - is killed and replaced; the step
 * it held fails as retryable.
 */
static void
pool_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker		*w;
	struct proto_buf	 buf;
	struct timespec		 now;
	int64_t			 late;
	int			 i;

	/* This loop itself may have stalled (the VM paused, the host
	 * swapped): then no pings went out, and the workers' silence is
	 * ours.  Their clocks restart now. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	late = duration_ms_since(&pool.last_tick) - pool.ping_interval_ms;
	pool.last_tick = now;
	if (late > pool.ping_timeout_ms / 2) {
		log_warnx("supervisor loop stalled, not counting workers' "
		    "silence late_ms=%lld", (long long)late);
		for (i = 0; i < pool.n; i++)
			pool.w[i].last_heard = now;
	}
	for (i = 0; i < pool.n; i++) {
		w = &pool.w[i];
		if ((w->state != W_STARTING && w->state != W_IDLE &&
		    w->state != W_BUSY) || w->hung_up)
			continue;
		if (duration_ms_since(&w->last_heard) > pool.ping_timeout_ms) {
			log_warnx("worker not answering, killing pid=%d slot=%d "
			    "silent_ms=%lld step=%s", (int)w->pid, w->slot,
			    (long long)duration_ms_since(&w->last_heard),
			    w->claim ? w->claim->step_name : "none");
			w->unresponsive = true;
			worker_close_socket(w);
			worker_kill(w, SIGKILL, "unresponsive");
			continue;
		}
		if (w->state == W_STARTING)
			continue;
		proto_buf_init(&buf);
		proto_encode_ping(&buf, PROTO_PING, ++w->ping_seq);
		worker_send(w, &buf);
	}
	pool_sweep();
}

/* The first line of a small /proc file, or "" (buf holds size bytes). */
static char *
proc_read(const char *path, char *buf, size_t size)
{
	ssize_t	n;
	int	fd;

	buf[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return buf;
	n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/* The pids the kernel lists as our children (malloc'd, *n of them): all
 * of them, however many workers there are - a stray listed past a fixed
 * buffer, behind the workers that come first each time, was never met. */
static pid_t *
pool_children(int *n)
{
	char	 path[64], *buf, *p, *end;
	size_t	 size = 4096, len = 0;
	ssize_t	 r;
	pid_t	*pids;
	long	 v;
	int	 fd;

	*n = 0;
	snprintf(path, sizeof(path), "/proc/self/task/%d/children",
	    (int)getpid());
	buf = xmalloc(size);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) != -1) {
		while ((r = read(fd, buf + len, size - 1 - len)) > 0) {
			len += (size_t)r;
			if (len == size - 1)
				buf = xreallocarray(buf, 2, size *= 2);
		}
		close(fd);
	}
	buf[len] = '\0';
	/* Whole numbers only ("1" of a cut "1234" must not become kill(-1));
	 * each is followed by a space. */
	pids = xreallocarray(NULL, len / 2 + 1, sizeof(*pids));
	for (p = buf; (v = strtol(p, &end, 10)) > 1 && *end == ' '; p = end)
		pids[(*n)++] = (pid_t)v;
	free(buf);
	return pids;
}

/*
 * Strays.  The supervisor is a child subreaper: what a worker's program
 * started comes to us, not to init, when the worker is killed outright (the
 * OOM killer, a worker that stopped answering) and the program with it.
 * Any child that is neither a worker nor the embedded database's server,
 * nor one taskerd already had when it started (`helper & exec taskerd`),
 * is such a stray (or a backend the server left when it died): killed
 * with its group, or reaped if dead.  Returns how many strays are there,
 * dead or dying, and in *fresh how many of them this sweep met first:
 * each may leave children in other groups, which come to us when it
 * dies, so sweeps go on while any is left (pool_sweep, pool_shutdown).
 */
static int
pool_kill_strays(int *fresh)
{
	char	 path[64], comm[32], line[512], *state;
	pid_t	*pids;
	int	 i, j, n, found = 0, met = 0;

	pids = pool_children(&n);
	for (i = 0; i < n; i++) {
		if (worker_by_pid(pids[i]) != NULL ||
		    embedpg_is_server(pids[i]))
			continue;
		for (j = 0; j < pool.nelders; j++)
			if (pool.elders[j] == pids[i])
				break;
		if (j < pool.nelders)
			continue;
		found++;
		/* The state follows the last ')': comm may hold any byte.
		 * "Z" is also a process whose main thread has exited while
		 * others run: only what waitpid reaps was dead. */
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pids[i]);
		state = strrchr(proc_read(path, line, sizeof(line)), ')');
		if (state != NULL && strncmp(state, ") Z", 3) == 0 &&
		    waitpid(pids[i], NULL, WNOHANG) == pids[i])
			continue;
		/* Each is news once: one that outlives its SIGKILL a while
		 * (a big address space to free, stuck in the kernel) is
		 * killed again without a word. */
		for (j = 0; j < POOL_KILLED && pool.killed[j] != pids[i]; j++)
			;
		if (j == POOL_KILLED) {
			pool.killed[pool.nkilled++ % POOL_KILLED] = pids[i];
			met++;
			snprintf(path, sizeof(path), "/proc/%d/comm",
			    (int)pids[i]);
			log_warnx("killing a process orphaned to taskerd pid=%d "
			    "comm=%s", (int)pids[i], log_quote(proc_read(path,
			    comm, sizeof(comm))));
		}
		if (getpgid(pids[i]) == pids[i])
			kill(-pids[i], SIGKILL);
		kill(pids[i], SIGKILL);
	}
	free(pids);
	if (fresh != NULL)
		*fresh = met;
	return found;
}

/* Shortly after each worker's death and at each ping tick; again while
 * strays are left: 10 ms after one that met new ones, else 100 ms (one
 * stuck in the kernel is not polled hard). */
static void
pool_sweep(void)
{
	struct timeval	tv = { 0, 10000 };
	int		fresh;

	if (pool_kill_strays(&fresh) == 0)
		return;
	if (fresh == 0)
		tv.tv_usec = 100000;
	evtimer_add(pool.sweep, &tv);
}

static void
pool_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	pool_sweep();
}

static void
pool_sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct worker	*w;
	pid_t		 pid;
	int		 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if ((w = worker_by_pid(pid)) != NULL)
			worker_reaped(w, status);
		else if (!embedpg_reaped(pid, status))
			log_info("child reaped pid=%d status=%d", (int)pid,
			    status);
	}
}

void
pool_init(struct event_base *base, int count, const char *path,
    size_t max_frame, int64_t ping_interval_ms, int64_t ping_timeout_ms,
    const char *user)
{
	struct timeval	 tv;
	struct passwd	*pw;
	int		 i;

	if (user != NULL && geteuid() == 0) {
		/* Looked up now: getpwnam is not safe between fork and exec. */
		if ((pw = getpwnam(user)) == NULL)
			fatalx("workers.user: no such user \"%s\"", user);
		pool.drop = true;
		pool.uid = pw->pw_uid;
		pool.gid = pw->pw_gid;
		log_info("workers run as user=%s uid=%d gid=%d", log_quote(user),
		    (int)pool.uid, (int)pool.gid);
	} else if (user != NULL)
		log_warnx("workers.user=%s ignored: not started as root",
		    log_quote(user));
	else if (geteuid() == 0)
		log_warnx("workers run as root: exec programs and plugins may "
		    "do anything on this machine; set workers.user to a user "
		    "of their own");

	pool.base = base;
	pool.n = count;
	pool.path = xstrdup(path);
	pool.max_frame = max_frame;
	pool.w = xcalloc((size_t)count, sizeof(*pool.w));
	pool.ping_interval_ms = ping_interval_ms;
	pool.ping_timeout_ms = ping_timeout_ms;
	/* What a dead worker's programs leave comes to us (pool_kill_strays);
	 * the embedded database's orphans too. */
	pool.elders = pool_children(&pool.nelders);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
		log_warn("cannot become a child subreaper: the processes a "
		    "killed worker's programs started may outlive them");
	pool.sigchld = evsignal_new(base, SIGCHLD, pool_sigchld_cb, NULL);
	evsignal_add(pool.sigchld, NULL);
	/* A child that died before (the embedded server, during the start's
	 * migrations or lease wait) sent its SIGCHLD to no one: reaped now,
	 * the server is started again. */
	pool_sigchld_cb(SIGCHLD, 0, NULL);
	pool.sweep = evtimer_new(base, pool_sweep_cb, NULL);
	pool.ping = event_new(base, -1, EV_PERSIST, pool_ping_cb, NULL);
	tv.tv_sec = ping_interval_ms / 1000;
	tv.tv_usec = (ping_interval_ms % 1000) * 1000;
	event_add(pool.ping, &tv);
	clock_gettime(CLOCK_MONOTONIC, &pool.last_tick);
	for (i = 0; i < count; i++) {
		pool.w[i].slot = i;
		pool.w[i].deadline = evtimer_new(base, worker_deadline_cb,
		    &pool.w[i]);
		pool.w[i].respawn = evtimer_new(base, worker_respawn_cb,
		    &pool.w[i]);
		worker_spawn(&pool.w[i]);
	}
}

void
pool_shutdown(void)
{
	struct timespec	 deadline, now;
	struct worker	*w;
	int		 i, status, alive;

	pool.stopping = true;
	event_free(pool.ping);
	for (i = 0; i < pool.n; i++) {
		w = &pool.w[i];
		event_del(w->respawn);
		worker_close_socket(w);	/* EOF tells an idle worker to exit */
		if (w->pid > 0 && w->state == W_BUSY)
			kill(w->pid, SIGTERM);
	}
	/* Reap with a bounded wait; stragglers get SIGKILL. */
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += WORKER_KILL_GRACE_MS / 1000;
	for (;;) {
		/* Workers only: the embedded server is embedpg_stop's to reap. */
		alive = 0;
		for (i = 0; i < pool.n; i++) {
			w = &pool.w[i];
			if (w->pid > 0 && waitpid(w->pid, &status, WNOHANG) ==
			    w->pid)
				worker_reaped(w, status);
			if (w->pid > 0)
				alive++;
		}
		if (alive == 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > deadline.tv_sec ||
		    (now.tv_sec == deadline.tv_sec &&
		    now.tv_nsec >= deadline.tv_nsec)) {
			for (i = 0; i < pool.n; i++)
				if (pool.w[i].pid > 0)
					kill(pool.w[i].pid, SIGKILL);
			deadline.tv_sec += 10;
		}
		usleep(10000);
	}
	/* Sweep until a round finds nothing: each round's strays leave
	 * theirs to the next.  Bounded, for a stray that will not die. */
	for (i = 0; i < 100 && pool_kill_strays(NULL) > 0; i++)
		usleep(10000);
	for (i = 0; i < pool.n; i++) {
		event_free(pool.w[i].deadline);
		event_free(pool.w[i].respawn);
	}
	event_free(pool.sigchld);
	event_free(pool.sweep);
	free(pool.w);
	free(pool.path);
	free(pool.elders);
	memset(&pool, 0, sizeof(pool));
}

int
pool_idle(void)
{
	int	i, n = 0;

	for (i = 0; i < pool.n; i++)
		if (pool.w[i].state == W_IDLE)
			n++;
	return n;
}

void
pool_tokens(void (*fn)(int64_t, void *), void *arg)
{
	int	i;

	for (i = 0; i < pool.n; i++)
		if (pool.w[i].claim != NULL)
			fn(pool.w[i].claim->lease_token, arg);
}

/* Workers that can take a step, counting one a reload is replacing (on
 * purpose, for a moment: readiness does not flap at each reload). */
int
pool_up(void)
{
	const struct worker	*w;
	int			 i, n = 0;

	for (i = 0; i < pool.n; i++) {
		w = &pool.w[i];
		if (w->state == W_IDLE || w->state == W_BUSY ||
		    (w->retired && w->state == W_EXITING) || w->replacing)
			n++;
	}
	return n;
}

void
pool_dispatch(struct claim *c)
{
	struct proto_run_step	 run;
	struct proto_buf	 buf;
	struct worker		*w = NULL;
	struct timeval		 tv;
	const char		*fault = NULL;
	char			*ikey, why[256];
	int			 i;

	for (i = 0; i < pool.n; i++) {
		if (pool.w[i].state == W_IDLE) {
			w = &pool.w[i];
			break;
		}
	}
	if (w == NULL)
		fatalx("pool_dispatch with no idle worker");

	xasprintf(&ikey, "%lld:%s", (long long)c->task_id, c->step_name);
	memset(&run, 0, sizeof(run));
	run.step_id = c->step_id;
	run.task_id = c->task_id;
	run.lease_token = c->lease_token;
	run.attempt = c->attempt;
	run.step_name = c->step_name;
	run.handler = c->tstep->handler;
	run.config = c->tstep->handler_config;
	run.input = c->input;
	run.timeout_ms = c->timeout_ms;
	run.correlation_id = c->correlation_id;
	run.idempotency_key = ikey;

	proto_buf_init(&buf);
	proto_encode_run_step(&buf, &run);
	free(ikey);
	if (buf.len > PROTO_HEADER_LEN + pool.max_frame ||
	    (fault = proto_scan(buf.data + PROTO_HEADER_LEN,
	    buf.len - PROTO_HEADER_LEN)) != NULL) {
		/* The worker would refuse the frame and exit, and the step
		 * would fail as a crash, attempt after attempt. */
		log_warnx("step input too large task_id=%lld step=%s "
		    "frame_bytes=%zu max_frame=%zu reason=%s "
		    "correlation_id=%s", (long long)c->task_id,
		    log_quote(c->step_name), buf.len, pool.max_frame,
		    log_quote(fault), log_quote(c->correlation_id));
		if (fault != NULL)
			snprintf(why, sizeof(why), "the step's input (its "
			    "task's context and the results it reads) holds "
			    "%s", fault);
		else
			snprintf(why, sizeof(why), "the step's input (its "
			    "task's context and the results it reads) takes "
			    "%zu bytes; workers.max_frame is %zu", buf.len,
			    pool.max_frame);
		proto_buf_free(&buf);
		c->retryable = false;
		sched_fail(c, "input_too_large", why);
		return;
	}

	w->claim = c;			/* the worker owns the claim now */
	w->state = W_BUSY;
	w->timed_out = false;
	clock_gettime(CLOCK_MONOTONIC, &c->started);
	tv.tv_sec = c->timeout_ms / 1000;
	tv.tv_usec = (c->timeout_ms % 1000) * 1000;
	evtimer_add(w->deadline, &tv);
	worker_send(w, &buf);
	log_debug("step dispatched task_id=%lld step=%s attempt=%u "
	    "worker_pid=%d correlation_id=%s", (long long)c->task_id,
	    c->step_name, c->attempt, (int)w->pid, c->correlation_id);
}

/*
 * This node's lease lapsed: another node may take its claims over and run
 * them again, so no step may go on running here.  Busy workers are killed
 * (and replaced as after any death); their attempts end as failures whose
 * outcomes the lease token fences if the claims were taken over.
 */
void
pool_abandon_running(void)
{
	struct worker	*w;
	struct timeval	 tv = { WORKER_KILL_GRACE_MS / 1000,
	    (WORKER_KILL_GRACE_MS % 1000) * 1000 };
	int		 i;

	for (i = 0; i < pool.n; i++) {
		w = &pool.w[i];
		if (w->state != W_BUSY || w->claim == NULL || w->abandoned)
			continue;
		w->abandoned = true;
		log_warnx("node lease lapsed, stopping the step it ran pid=%d "
		    "task_id=%lld step=%s correlation_id=%s", (int)w->pid,
		    (long long)w->claim->task_id, w->claim->step_name,
		    w->claim->correlation_id);
		/* SIGTERM, as at a step's deadline: an exec step's worker
		 * stops the program's children too, which SIGKILL would
		 * leave running.  SIGKILL follows a worker that lingers. */
		worker_kill(w, SIGTERM, "node lease lapsed");
		evtimer_add(w->deadline, &tv);
	}
}

json_t *
pool_json(void)
{
	json_t		*arr = json_array(), *o;
	struct worker	*w;
	int		 i;

	for (i = 0; i < pool.n; i++) {
		w = &pool.w[i];
		o = json_pack("{s:i, s:I, s:s, s:i, s:I}",
		    "slot", w->slot, "pid", (json_int_t)w->pid,
		    "state", worker_state_names[w->state],
		    "restarts", w->restarts,
		    "uptime_s", w->pid > 0 ?
		    (json_int_t)(time(NULL) - w->started_at) : 0);
		if (w->claim != NULL) {
			json_object_set_new(o, "task_id",
			    json_integer(w->claim->task_id));
			json_object_set_new(o, "step",
			    json_string(w->claim->step_name));
			json_object_set_new(o, "attempt",
			    json_integer(w->claim->attempt));
		} else {
			json_object_set_new(o, "task_id", json_null());
			json_object_set_new(o, "step", json_null());
			json_object_set_new(o, "attempt", json_null());
		}
		json_array_append_new(arr, o);
	}
	return json_pack("{s:o}", "workers", arr);
}
