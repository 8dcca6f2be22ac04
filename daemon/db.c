/*
 * db.c - asynchronous libpq connections driven by libevent.
 *
 * Each connection is a small state machine: CONNECTING (a thread of its own
 * makes it: see connect_thread), IDLE, BUSY (one job in flight: its
 * statements were sent in pipeline mode followed by one Sync), or DOWN
 * (waiting for a reconnect timer).  Jobs wait in one FIFO and go to the
 * first idle connection, so statements from different jobs never
 * interleave inside one pipeline.
 *
 * One connection beyond the pool is kept for urgent jobs (the heartbeat,
 * db_submit_first): with every pool connection held by slow statements -
 * heavy listings a dashboard polls, waits on a lock - the node's lease
 * would otherwise lapse and its running steps be stopped.  That spare is
 * also the one that LISTENs: the server delivers a notification only
 * between a session's statements, so a pool connection waiting on a lock
 * would hold back a cancel until its wait ended, and steps of the
 * cancelled task would start meanwhile.
 *
 * Statements are prepared: the first time a connection sends a statement
 * text, a Prepare goes ahead of it in the same pipeline, and from then on
 * the connection only executes it.  Planning our larger statements cost
 * about as much as running them.  Every statement taskerd sends is one of
 * its compiled-in texts (or, for a task listing, one of a few made from
 * them), so the set of names stays small; a reconnect starts with none
 * prepared.
 */
#include <sys/queue.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "db.h"
#include "jsontext.h"
#include "metrics.h"
#include "log.h"
#include "xmalloc.h"

#define DB_QUEUE_MAX_S	10	/* longest wait for a connection */
/* Each statement of a job stops at the server's statement_timeout; a
 * connection silent this much longer than all of them is dropped: the
 * server is wedged, or the network swallows what is sent (TCP may take
 * many minutes to say so). */
#define DB_ANSWER_GRACE_MS	5000

enum conn_state {
	CONN_DOWN,		/* broken or never started; reconnect timer set */
	CONN_CONNECTING,	/* its connect thread is at work */
	CONN_IDLE,		/* usable, no job */
	CONN_BUSY,		/* a job is in flight */
};

struct db_stmt {
	char		*sql;
	int		 reg;		/* index in the statement registry */
	bool		 prep;		/* a Prepare was sent ahead of it */
	int		 nparams;
	char	       **params;
};

struct db_job {
	TAILQ_ENTRY(db_job) entry;
	db_cb		 cb;
	void		*arg;
	struct db_stmt	 stmts[DB_MAX_STMTS];
	int		 nstmts;
	PGresult	*results[DB_MAX_STMTS];
	int		 cur;		/* statement whose results are arriving */
	struct timespec	 queued;	/* when it was submitted */
	struct timespec	 sent;		/* when it went to a connection */
	bool		 got;		/* cur has produced a result */
	bool		 inprep;	/* the results are cur's Prepare's */
	bool		 lost;		/* its connection broke under it */
	bool		 urgent;	/* db_submit_first: may take the spare */
	int64_t		 answer_ms;	/* db_job_deadline; 0: by its statements */
	int		 backend_pid;	/* the server process it went to */
	int64_t		 backend_start;	/* and when that process started */
	char		*error;
	char		*sqlstate;
};

struct db_conn {
	int		 id;
	enum conn_state	 state;
	PGconn		*pg;
	struct event	*ev;		/* socket readiness */
	struct event	*retry;		/* reconnect timer */
	unsigned	 attempt;	/* connect attempts made */
	int		 backoff_ms;
	struct db_job	*job;
	/* Its server process's start, in microseconds since the epoch (0
	 * until its first job has read it): with its pid, that process and
	 * no other, even after the pid is reused. */
	int64_t		 backend_start;
	/* Per registered statement: 0 not prepared, 1 prepared, 2 its
	 * Prepare is in flight. */
	unsigned char	*prepared;
	int		 nprepared;
};

TAILQ_HEAD(db_jobq, db_job);

static struct {
	struct event_base *base;
	char		*dsn;
	char		*options;	/* the DSN's and DB_SESSION_OPTIONS */
	struct db_conn	*conns;		/* the pool, then the spare */
	int		 nconns;
	int		 npool;
	struct db_jobq	 queue;
	int		 nqueued;
	struct event	*queue_timer;
	struct db_jobq	 finished;	/* failed within db_submit: */
	struct event	*finish_ev;	/* their callbacks run from here */
	int		 submitting;	/* db_submit on the stack */
	bool		 stopping;
	json_t		*registry;	/* statement text -> index */
	int64_t		 statement_timeout_ms;
	struct {			/* LISTENed to on the spare */
		char		*channel;
		db_notify_cb	 cb;
	}		 listen[DB_MAX_CHANNELS];
	int		 nlisten;
	void		(*on_connect)(void);
} db;

static void	conn_start(struct db_conn *);
static void	conn_arm(struct db_conn *, short);
static void	conn_fail(struct db_conn *, const char *);
static void	conn_ready(struct db_conn *);
static void	conn_event(evutil_socket_t, short, void *);
static void	db_dispatch(void);
static void	conn_send(struct db_conn *, struct db_job *);
static void	db_fail_queue(const char *why, const char *sqlstate,
		    bool all);
static bool	db_down_for(bool urgent);
static bool	conn_listens(const struct db_conn *);

static void
conn_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_start(arg);
}

/* What pg_stat_activity calls taskerd's sessions (application_name),
 * unless the DSN names them: the listener is the spare, which LISTENs. */
#define DB_NAME			"taskerd"
#define DB_NAME_LISTENER	"taskerd listener"

/*
 * Session settings for taskerd's own connections (appended to any options
 * the DSN sets).  Every statement taskerd sends reads rows by key, and its
 * prepared statements keep the generic plan made when they were first
 * planned - on a new database, when the steps table was a page or two and
 * a sequential scan looked cheapest.  Kept as the table grows, such a plan
 * cost more than all the rest of a batch.  Without sequential scans the
 * planner keeps to the indexes; without JIT, the huge costs it then puts
 * on the odd unavoidable scan do not trigger a compilation.  Read
 * committed whatever the database's default: a statement after a lock
 * (an advisory lock on tasks or idempotency keys) must see what the
 * lock's previous holder committed, which a snapshot taken before the
 * wait (repeatable read) does not.
 */
#define DB_SESSION_OPTIONS	"-c enable_seqscan=off -c jit=off " \
	"-c default_transaction_isolation=read\\ committed"

/* The server's notices (and errors on an idle connection, such as its
 * termination) as log events, not libpq's raw lines on stderr: the
 * pool's connections name themselves, once they are the pool's. */
static void
conn_notice(void *arg, const char *message)
{
	struct db_conn	*c = arg;

	log_info("database notice conn=%d message=%s", c->id,
	    log_quote(message));
}

static void
notice_logged(void *arg, const char *message)
{
	(void)arg;
	log_info("database notice message=%s", log_quote(message));
}

/*
 * PQconnectdbParams (expand_dbname), with notices logged from the start.
 * It hands the PGconn over only once the startup is over, and libpq
 * prints what came before on stderr: a server stopping as a startup ends
 * sends its FATAL right after the ReadyForQuery, read with it and printed
 * raw among the log's events.  The one blocking connect of a PGconn made
 * already is PQreset's, which keeps the notice processor and does all
 * else as PQconnectdbParams (connect_timeout per host, then the next
 * host); the attempt PQconnectStartParams began is closed before it sent
 * a byte, which a server ends without a word.
 */
static PGconn *
db_connect_params(const char *const *keys, const char *const *vals)
{
	PGconn	*pg = PQconnectStartParams(keys, vals, 1);

	if (pg == NULL || PQstatus(pg) == CONNECTION_BAD)
		return pg;	/* (a malformed DSN: PQreset would lose why) */
	PQsetNoticeProcessor(pg, notice_logged, NULL);
	PQreset(pg);
	return pg;
}

/*
 * Connections are made on threads: libpq looks a host name up with a
 * blocking getaddrinfo(), even in PQconnectStartParams and PQconnectPoll,
 * and a slow resolver would stall the loop - API, pings, step deadlines,
 * the heartbeat - at every reconnect.  A thread makes one connection,
 * blocking, and hands it over through a pipe; the loop takes it from
 * there.  The thread owns its request; the hand-over is under a lock, so
 * that once the loop has ended (db_shutdown) no request is left in the
 * pipe: a thread finishing later closes its connection itself.  None of
 * this is ever freed or zeroed: a thread may outlive db_shutdown.
 */
struct connect_req {
	LIST_ENTRY(connect_req) entry;
	int		 conn;		/* which connection */
	unsigned	 attempt;	/* which attempt of it */
	const char	*name;		/* its fallback_application_name */
	char		*dsn;
	char		*options;
	PGconn		*pg;		/* the result */
};

static struct {
	int		 pipe[2];
	struct event	*ev;
	pthread_mutex_t	 lock;
	bool		 closed;	/* the loop reads no more */
	/* Every request not yet freed: an exit before the loop reads the
	 * pipe (a start that fails) leaves none unaccounted for. */
	LIST_HEAD(, connect_req) reqs;
} connector = { { -1, -1 }, NULL, PTHREAD_MUTEX_INITIALIZER, false,
    LIST_HEAD_INITIALIZER(connector.reqs) };

static void
connect_req_free(struct connect_req *r)
{
	pthread_mutex_lock(&connector.lock);
	LIST_REMOVE(r, entry);
	pthread_mutex_unlock(&connector.lock);
	free(r->dsn);
	free(r->options);
	free(r);
}

static void *
connect_thread(void *arg)
{
	struct connect_req	*r = arg;
	/* A server that accepts and never answers must not keep the
	 * connection CONNECTING for ever; the DSN's own timeout wins, and
	 * so does PGCONNECT_TIMEOUT.  An idle connection whose server or
	 * network went silently away (a dropped NAT entry, a host that
	 * vanished) is noticed by TCP keepalives in about a minute, not the
	 * system's two hours: the listening one hears nothing meanwhile, and
	 * cancels are missed.  (The DSN's own keepalive settings win.)  The
	 * name tells taskerd's sessions apart in pg_stat_activity, unless
	 * the DSN names them. */
	const char		*keys[] = { "connect_timeout",
				    "keepalives_idle", "keepalives_interval",
				    "keepalives_count", "fallback_application_name",
				    "dbname", "options", NULL };
	const char		*vals[] = { "10", "30", "10", "3", r->name,
				    r->dsn, r->options, NULL };
	const char		*env = getenv("PGCONNECT_TIMEOUT");
	int			 ours = env == NULL || *env == '\0';
	bool			 sent = false;

	r->pg = db_connect_params(keys + !ours, vals + !ours);
	pthread_mutex_lock(&connector.lock);
	if (!connector.closed)
		while (!(sent = write(connector.pipe[1], &r, sizeof(r)) ==
		    sizeof(r)) && errno == EINTR)
			;
	pthread_mutex_unlock(&connector.lock);
	if (!sent) {
		PQfinish(r->pg);
		connect_req_free(r);
	}
	return NULL;
}

/* Connections made: each goes on if it is still awaited. */
static void
connect_done(evutil_socket_t fd, short what, void *arg)
{
	struct connect_req	*r;
	struct db_conn		*c;

	while (read(fd, &r, sizeof(r)) == sizeof(r)) {
		c = &db.conns[r->conn];
		if (db.stopping || c->state != CONN_CONNECTING ||
		    r->attempt != c->attempt) {
			PQfinish(r->pg);
		} else if (r->pg == NULL || PQstatus(r->pg) != CONNECTION_OK) {
			c->pg = r->pg;
			conn_fail(c, c->pg != NULL ? PQerrorMessage(c->pg) :
			    "out of memory");
		} else {
			c->pg = r->pg;
			PQsetNoticeProcessor(c->pg, conn_notice, c);
			conn_ready(c);
		}
		connect_req_free(r);
	}
}

static void
conn_start(struct db_conn *c)
{
	struct connect_req	*r;
	pthread_attr_t		 attr;
	pthread_t		 th;
	sigset_t		 all, old;
	int			 e;

	if (c->pg != NULL)
		PQfinish(c->pg);
	c->pg = NULL;
	if (c->nprepared > 0)
		memset(c->prepared, 0, (size_t)c->nprepared);
	c->state = CONN_CONNECTING;
	r = xcalloc(1, sizeof(*r));
	r->conn = c->id;
	r->attempt = ++c->attempt;
	r->name = conn_listens(c) ? DB_NAME_LISTENER : DB_NAME;
	r->dsn = xstrdup(db.dsn);
	r->options = xstrdup(db.options);
	pthread_mutex_lock(&connector.lock);
	LIST_INSERT_HEAD(&connector.reqs, r, entry);
	pthread_mutex_unlock(&connector.lock);
	/* Signals are the loop's: the thread starts with them blocked (but
	 * for those a fault raises, which must still end the process, with
	 * a report). */
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGABRT);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	e = pthread_create(&th, &attr, connect_thread, r);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		connect_req_free(r);
		conn_fail(c, strerror(e));
	}
}

/* (Re)arm the socket event of a connection made (connect_done). */
static void
conn_arm(struct db_conn *c, short what)
{
	if (c->ev != NULL)
		event_free(c->ev);
	c->ev = event_new(db.base, PQsocket(c->pg), what, conn_event, c);
	event_add(c->ev, NULL);
}

static void
job_finish(struct db_job *job)
{
	int	i, j;

	/* A job that fails within db_submit (no connection, a send that
	 * fails) is called back from the loop, not from inside its caller,
	 * who may be walking a list the callback changes. */
	if (db.submitting > 0 && db.finish_ev != NULL) {
		TAILQ_INSERT_TAIL(&db.finished, job, entry);
		event_active(db.finish_ev, EV_TIMEOUT, 0);
		return;
	}
	if (job->cb != NULL)
		job->cb(job, job->arg);
	for (i = 0; i < job->nstmts; i++) {
		free(job->stmts[i].sql);
		for (j = 0; j < job->stmts[i].nparams; j++)
			free(job->stmts[i].params[j]);
		free(job->stmts[i].params);
		PQclear(job->results[i]);
	}
	free(job->error);
	free(job->sqlstate);
	free(job);
}

static void
db_finished_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_job	*job;

	while ((job = TAILQ_FIRST(&db.finished)) != NULL) {
		TAILQ_REMOVE(&db.finished, job, entry);
		job_finish(job);
	}
}

static void
job_set_error(struct db_job *job, const char *msg, const char *sqlstate)
{
	size_t	len;

	if (job->error != NULL)
		return;
	job->error = xstrdup(msg != NULL && *msg != '\0' ? msg : "error");
	len = strlen(job->error);
	while (len > 0 && job->error[len - 1] == '\n')
		job->error[--len] = '\0';
	if (sqlstate != NULL)
		job->sqlstate = xstrdup(sqlstate);
}

static void
conn_fail(struct db_conn *c, const char *reason)
{
	struct db_job	*job = c->job;
	struct timeval	 tv;
	char		 why[256];
	int		 ms;

	/* reason is often PQerrorMessage(c->pg), which PQfinish frees. */
	snprintf(why, sizeof(why), "%s", reason);
	/* A connect that keeps failing is said at its first failure and
	 * then every tenth (about every 10 s): each connection tries each
	 * second. */
	if (c->state != CONN_DOWN && !db.stopping &&
	    (c->state != CONN_CONNECTING || c->backoff_ms < 1000 ||
	    c->attempt % 10 == 0))
		log_warnx("%s conn=%d reason=%s", c->state == CONN_CONNECTING ?
		    "cannot connect to the database" :
		    "database connection lost", c->id, log_quote(why));
	c->state = CONN_DOWN;
	c->job = NULL;
	if (c->ev != NULL) {
		event_free(c->ev);
		c->ev = NULL;
	}
	if (c->pg != NULL) {
		PQfinish(c->pg);
		c->pg = NULL;
	}
	if (job != NULL) {
		/* An error the server had already sent settles it: rolled
		 * back.  Otherwise the commit may have happened. */
		job->lost = job->error == NULL;
		job_set_error(job, why, "08006");
		job_finish(job);
	}
	if (c->nprepared > 0)
		memset(c->prepared, 0, (size_t)c->nprepared);
	if (db.stopping)
		return;
	/* Queued work no connection is left to take fails now rather than
	 * hanging its HTTP client until the database returns. */
	db_fail_queue("the database is unavailable", "08006", false);
	/* At most a second: the heartbeat waits for a connection, and a
	 * lease lasts a few of them (a restart of the server takes some). */
	c->backoff_ms = c->backoff_ms == 0 ? 100 :
	    (c->backoff_ms >= 500 ? 1000 : c->backoff_ms * 2);
	/* Up to a quarter less, at random: the connections of every node
	 * lost together do not all come back in the same instant. */
	ms = c->backoff_ms - (int)arc4random_uniform(
	    (uint32_t)c->backoff_ms / 4 + 1);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(c->retry, &tv);
}

/* The spare, which runs only the short urgent jobs, listens. */
static bool
conn_listens(const struct db_conn *c)
{
	return c->id == db.npool;
}

static const char sql_backend_start[] =
"SELECT (extract(epoch FROM backend_start) * 1000000)::bigint"
" FROM pg_stat_activity WHERE pid = pg_backend_pid()";

static void
conn_started(struct db_job *job, void *arg)
{
	struct db_conn	*c = arg;
	PGresult	*res;
	char		 why[256];
	int		 i;

	if (c->state == CONN_DOWN)
		return;		/* lost on the way: it connects again */
	if (db_job_error(job) != NULL) {
		/* A server that takes connections and fails them (a standby
		 * refuses LISTEN): not a connection to use, or to listen on
		 * for ever without hearing. */
		snprintf(why, sizeof(why), "its first statements failed: %s",
		    db_job_error(job));
		conn_fail(c, why);
		return;
	}
	c->backoff_ms = 0;
	if ((res = db_job_result(job, 0)) != NULL && PQntuples(res) == 1)
		c->backend_start = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	for (i = 0; conn_listens(c) && i < db.nlisten; i++)
		db.listen[i].cb(NULL);
	if (db.on_connect != NULL)
		db.on_connect();
}

static void
conn_ready(struct db_conn *c)
{
	struct db_job	*job;
	char		*sql;
	int		 i;

	if (PQsetnonblocking(c->pg, 1) != 0 ||
	    PQenterPipelineMode(c->pg) != 1) {
		conn_fail(c, PQerrorMessage(c->pg));
		return;
	}
	log_info("database connected conn=%d", c->id);
	c->state = CONN_IDLE;
	c->backend_start = 0;
	conn_arm(c, EV_READ | EV_PERSIST);
	/* The connection's own first job: which server process it has; and
	 * on the spare, LISTEN (one listening session is enough). */
	job = db_job_new(conn_started, c);
	db_job_add(job, sql_backend_start, 0, NULL);
	for (i = 0; conn_listens(c) && i < db.nlisten; i++) {
		xasprintf(&sql, "LISTEN %s", db.listen[i].channel);
		db_job_add(job, sql, 0, NULL);
		free(sql);
	}
	clock_gettime(CLOCK_MONOTONIC, &job->queued);
	conn_send(c, job);
}

/* Hand over the notifications that arrived with the last input. */
static void
conn_notifies(struct db_conn *c)
{
	PGnotify	*n;
	int		 i;

	while (c->pg != NULL && (n = PQnotifies(c->pg)) != NULL) {
		for (i = 0; i < db.nlisten; i++)
			if (strcmp(n->relname, db.listen[i].channel) == 0)
				db.listen[i].cb(n->extra);
		PQfreemem(n);
	}
}

bool
db_unavailable(const char *state)
{
	static const char *const transient[] = {
		"08",		/* connection exceptions */
		"57P01",	/* terminated (pg_terminate_backend, shutdown) */
		"57P02",	/* another backend crashed */
		"57P03",	/* still starting up */
		"57014",	/* statement_timeout: too busy, or a lock */
		"55P03",	/* lock_timeout */
		"40001",	/* serialization failure */
		"40P01",	/* deadlock: one side is cancelled */
		"25006",	/* read-only: a standby, or a failover under way */
		"53100",	/* disk full */
		"53200",	/* out of memory */
		"53300",	/* too many connections */
		"58030",	/* I/O error */
	};
	size_t	i;

	if (state == NULL)
		return false;
	for (i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
		if (strncmp(state, transient[i], strlen(transient[i])) == 0)
			return true;
	return false;
}

void
db_on_connect(void (*cb)(void))
{
	db.on_connect = cb;
}

void
db_listen(const char *channel, db_notify_cb cb)
{
	if (db.nlisten == DB_MAX_CHANNELS)
		fatalx("db_listen: more than %d channels", DB_MAX_CHANNELS);
	db.listen[db.nlisten].channel = xstrdup(channel);
	db.listen[db.nlisten++].cb = cb;
}

/* Send one job's statements (each preceded by its Prepare the first time
 * this connection sees it) and the Sync; the flush may need EV_WRITE. */
static void
conn_send(struct db_conn *c, struct db_job *job)
{
	struct db_stmt	*st;
	char		 name[16];
	int		 i, r;

	c->job = job;
	job->backend_pid = PQbackendPID(c->pg);
	job->backend_start = c->backend_start;
	c->state = CONN_BUSY;
	clock_gettime(CLOCK_MONOTONIC, &job->sent);
	if (c->nprepared < (int)json_object_size(db.registry)) {
		r = (int)json_object_size(db.registry);
		c->prepared = xreallocarray(c->prepared, (size_t)r, 1);
		memset(c->prepared + c->nprepared, 0,
		    (size_t)(r - c->nprepared));
		c->nprepared = r;
	}
	for (i = 0; i < job->nstmts; i++) {
		st = &job->stmts[i];
		snprintf(name, sizeof(name), "t%d", st->reg);
		if ((st->prep = c->prepared[st->reg] == 0)) {
			c->prepared[st->reg] = 2;
			if (!PQsendPrepare(c->pg, name, st->sql, st->nparams,
			    NULL)) {
				conn_fail(c, PQerrorMessage(c->pg));
				return;
			}
		}
		if (!PQsendQueryPrepared(c->pg, name, st->nparams,
		    (const char *const *)st->params, NULL, NULL, 0)) {
			conn_fail(c, PQerrorMessage(c->pg));
			return;
		}
	}
	job->inprep = job->nstmts > 0 && job->stmts[0].prep;
	if (!PQpipelineSync(c->pg)) {
		conn_fail(c, PQerrorMessage(c->pg));
		return;
	}
	if ((r = PQflush(c->pg)) == -1) {
		conn_fail(c, PQerrorMessage(c->pg));
		return;
	}
	conn_arm(c, EV_READ | EV_PERSIST | (r == 1 ? EV_WRITE : 0));
}

static void
db_observe(const struct db_job *job)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	metrics_observe(M_DB_ROUNDTRIP, (double)(now.tv_sec -
	    job->sent.tv_sec) + (now.tv_nsec - job->sent.tv_nsec) / 1e9,
	    NULL, NULL, NULL);
}

/* Prepares of this job still in flight at its Sync did not happen. */
static void
conn_prepared_settle(struct db_conn *c, struct db_job *job)
{
	int	i;

	for (i = 0; i < job->nstmts; i++)
		if (job->stmts[i].prep && c->prepared[job->stmts[i].reg] == 2)
			c->prepared[job->stmts[i].reg] = 0;
}

/* A FATAL ends the session before its transaction committed: the job's
 * trouble is the connection's, not its statements'. */
static const char *
res_sqlstate(const PGresult *res)
{
	const char	*sev = PQresultErrorField(res,
			    PG_DIAG_SEVERITY_NONLOCALIZED);

	if (sev != NULL && strcmp(sev, "FATAL") == 0)
		return "08006";
	return PQresultErrorField(res, PG_DIAG_SQLSTATE);
}

/* An error that settles nothing: the server's PANIC (it crashed, perhaps
 * while committing), or one libpq made itself (out of memory for a
 * result, a message it could not parse), which has no SQLSTATE.  Whether
 * the job's transaction committed is unknown, as when the connection
 * breaks, and the connection is given up as broken. */
static bool
res_unsettled(const PGresult *res)
{
	const char	*sev = PQresultErrorField(res,
			    PG_DIAG_SEVERITY_NONLOCALIZED);

	return PQresultErrorField(res, PG_DIAG_SQLSTATE) == NULL ||
	    (sev != NULL && strcmp(sev, "PANIC") == 0);
}

static const char *
res_message(const PGresult *res)
{
	const char	*m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	return m != NULL ? m : "error";
}

/* The session is not the one the statements were prepared on: a pooler
 * in transaction mode handed the connection another server process (or
 * a statement prepared there was deallocated).  Nothing ran; a fresh
 * session prepares them again. */
static bool
res_session_changed(const PGresult *res)
{
	const char	*state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return state != NULL && (strcmp(state, "26000") == 0 ||
	    strcmp(state, "42P05") == 0);
}

/* Collect whatever results are complete; finish the job at its Sync. */
static void
conn_read(struct db_conn *c)
{
	struct db_job	*job;
	PGresult	*res;
	char		 why[512];

	if (!PQconsumeInput(c->pg)) {
		conn_fail(c, PQerrorMessage(c->pg));
		return;
	}
	conn_notifies(c);
	while ((job = c->job) != NULL && !PQisBusy(c->pg)) {
		res = PQgetResult(c->pg);
		if (res == NULL) {
			/* End of one command's results: a Prepare's, then
			 * its statement's. */
			if (!job->got)
				break;
			job->got = false;
			if (job->inprep) {
				job->inprep = false;
				continue;
			}
			job->cur++;
			job->inprep = job->cur < job->nstmts &&
			    job->stmts[job->cur].prep;
			continue;
		}
		if ((PQresultStatus(res) == PGRES_FATAL_ERROR ||
		    PQresultStatus(res) == PGRES_BAD_RESPONSE) &&
		    res_unsettled(res)) {
			conn_fail(c, PQresultErrorMessage(res));
			PQclear(res);
			return;
		}
		if (PQresultStatus(res) == PGRES_FATAL_ERROR &&
		    res_session_changed(res)) {
			snprintf(why, sizeof(why), "%s (a pooler in transaction "
			    "mode? taskerd's prepared statements need a "
			    "session of their own)", res_message(res));
			PQclear(res);
			job_set_error(job, why, "08006");
			conn_fail(c, why);
			return;
		}
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			db_observe(job);
			/* A Prepare that did not succeed (an error, or skipped
			 * after one) is sent again next time. */
			conn_prepared_settle(c, job);
			c->job = NULL;
			c->state = CONN_IDLE;
			job_finish(job);
			continue;
		}
		if (job->inprep) {
			if (PQresultStatus(res) == PGRES_COMMAND_OK)
				c->prepared[job->stmts[job->cur].reg] = 1;
			else
				job_set_error(job, PQresultStatus(res) ==
				    PGRES_PIPELINE_ABORTED ? "statement skipped "
				    "after an error" : PQresultErrorMessage(res),
				    res_sqlstate(res));
			PQclear(res);
			job->got = true;
			continue;
		}
		switch (PQresultStatus(res)) {
		case PGRES_COMMAND_OK:
		case PGRES_TUPLES_OK:
			break;
		case PGRES_PIPELINE_ABORTED:
			job_set_error(job, "statement skipped after an error",
			    NULL);
			break;
		default:
			job_set_error(job, PQresultErrorMessage(res),
			    res_sqlstate(res));
			break;
		}
		if (job->cur < job->nstmts) {
			PQclear(job->results[job->cur]);
			job->results[job->cur] = res;
		} else
			PQclear(res);
		job->got = true;
	}
	/* Notifications that came in with the results were parsed with them:
	 * hand them over now, not at the connection's next input. */
	conn_notifies(c);
	if (c->pg != NULL && PQstatus(c->pg) == CONNECTION_BAD)
		conn_fail(c, PQerrorMessage(c->pg));
	else if (c->state == CONN_IDLE)
		db_dispatch();
}

static void
conn_event(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn	*c = arg;
	int		 r;

	switch (c->state) {
	case CONN_BUSY:
		if (what & EV_WRITE) {
			if ((r = PQflush(c->pg)) == -1) {
				conn_fail(c, PQerrorMessage(c->pg));
				return;
			}
			if (r == 0)
				conn_arm(c, EV_READ | EV_PERSIST);
		}
		if (what & EV_READ)
			conn_read(c);
		break;
	case CONN_IDLE:
		/* Only a notification, a notice or a server-side close can
		 * arrive now. */
		if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD)
			conn_fail(c, PQerrorMessage(c->pg));
		else
			conn_notifies(c);
		break;
	case CONN_CONNECTING:
	case CONN_DOWN:
	default:
		break;
	}
}

static void
db_dispatch(void)
{
	struct db_job	*job;
	int		 i;

	for (i = 0; i < db.nconns && !TAILQ_EMPTY(&db.queue); i++) {
		if (db.conns[i].state != CONN_IDLE)
			continue;
		/* (Urgent jobs are queued first: see db_submit_at.) */
		job = TAILQ_FIRST(&db.queue);
		if (i >= db.npool && !job->urgent)
			break;		/* the spare waits for urgent work */
		TAILQ_REMOVE(&db.queue, job, entry);
		db.nqueued--;
		conn_send(&db.conns[i], job);
	}
}

/* Fail the jobs set apart on q (off the queue, as a callback may submit
 * and change the queue). */
static void
jobs_fail(struct db_jobq *q, const char *why, const char *sqlstate)
{
	struct db_job	*job;

	while ((job = TAILQ_FIRST(q)) != NULL) {
		TAILQ_REMOVE(q, job, entry);
		job_set_error(job, why, sqlstate);
		job_finish(job);
	}
}

/* Whether no connection that may take such a job is up or on its way. */
static bool
db_down_for(bool urgent)
{
	int	i, n = urgent ? db.nconns : db.npool;

	for (i = 0; i < n; i++)
		if (db.conns[i].state != CONN_DOWN)
			return false;
	return true;
}

/* Fail the queued jobs: all of them, or those no connection can take. */
static void
db_fail_queue(const char *why, const char *sqlstate, bool all)
{
	struct db_jobq	 failed = TAILQ_HEAD_INITIALIZER(failed);
	struct db_job	*job, *next;

	for (job = TAILQ_FIRST(&db.queue); job != NULL; job = next) {
		next = TAILQ_NEXT(job, entry);
		if (!all && !db_down_for(job->urgent))
			continue;
		TAILQ_REMOVE(&db.queue, job, entry);
		db.nqueued--;
		TAILQ_INSERT_TAIL(&failed, job, entry);
	}
	jobs_fail(&failed, why, sqlstate);
}

/* Jobs may not wait for a connection longer than this (a connect that
 * hangs on an unreachable host, say). */
static int64_t
ms_between(const struct timespec *from, const struct timespec *to)
{
	return (int64_t)(to->tv_sec - from->tv_sec) * 1000 +
	    (to->tv_nsec - from->tv_nsec) / 1000000;
}

static void
db_queue_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_jobq	 expired = TAILQ_HEAD_INITIALIZER(expired);
	struct db_job	*job, *next;
	struct db_conn	*c;
	struct timespec	 now;
	int64_t		 max_ms;
	char		 why[64];
	int		 i;

	clock_gettime(CLOCK_MONOTONIC, &now);
	/* (Not in the order queued: db_submit_first.) */
	for (job = TAILQ_FIRST(&db.queue); job != NULL; job = next) {
		next = TAILQ_NEXT(job, entry);
		if (now.tv_sec - job->queued.tv_sec < DB_QUEUE_MAX_S)
			continue;
		TAILQ_REMOVE(&db.queue, job, entry);
		db.nqueued--;
		TAILQ_INSERT_TAIL(&expired, job, entry);
	}
	jobs_fail(&expired, "no database connection became available",
	    "08006");
	for (i = 0; i < db.nconns; i++) {
		c = &db.conns[i];
		if (c->state != CONN_BUSY || c->job == NULL)
			continue;
		max_ms = c->job->answer_ms > 0 ? c->job->answer_ms :
		    c->job->nstmts * db.statement_timeout_ms +
		    DB_ANSWER_GRACE_MS;
		if (ms_between(&c->job->sent, &now) < max_ms)
			continue;
		snprintf(why, sizeof(why), "no answer from the database in "
		    "%lld ms", (long long)max_ms);
		conn_fail(c, why);
	}
}

void
db_init(struct event_base *base, const char *dsn, int n,
    int64_t statement_timeout_ms, int64_t lock_timeout_ms)
{
	PQconninfoOption	*info, *o;
	const char		*dsn_options = "";
	int			 i;

	db.base = base;
	db.dsn = xstrdup(dsn);
	db.statement_timeout_ms = statement_timeout_ms;
	if ((info = PQconninfoParse(dsn, NULL)) != NULL) {
		for (o = info; o->keyword != NULL; o++)
			if (strcmp(o->keyword, "options") == 0 &&
			    o->val != NULL)
				dsn_options = o->val;
	}
	/* A lock held elsewhere (an operator's open transaction on a task's
	 * row) fails the statement after lock_timeout rather than holding a
	 * connection, and every job queued behind it, for statement_timeout;
	 * the failure is passing trouble (db_unavailable), tried again. */
	xasprintf(&db.options, "%s %s -c statement_timeout=%lld "
	    "-c lock_timeout=%lld", dsn_options, DB_SESSION_OPTIONS,
	    (long long)statement_timeout_ms, (long long)lock_timeout_ms);
	if (info != NULL)
		PQconninfoFree(info);
	if (connector.ev == NULL) {
		if (pipe2(connector.pipe, O_CLOEXEC) == -1 ||
		    fcntl(connector.pipe[0], F_SETFL, O_NONBLOCK) == -1)
			fatal("db: pipe");
		connector.ev = event_new(base, connector.pipe[0],
		    EV_READ | EV_PERSIST, connect_done, NULL);
		event_add(connector.ev, NULL);
	}
	pthread_mutex_lock(&connector.lock);
	connector.closed = false;
	pthread_mutex_unlock(&connector.lock);
	db.registry = json_object();
	db.npool = n;
	db.nconns = n + 1;
	db.conns = xcalloc((size_t)db.nconns, sizeof(*db.conns));
	TAILQ_INIT(&db.queue);
	TAILQ_INIT(&db.finished);
	db.finish_ev = event_new(base, -1, 0, db_finished_cb, NULL);
	db.queue_timer = event_new(base, -1, EV_PERSIST, db_queue_timer_cb,
	    NULL);
	{
		struct timeval tv = { 1, 0 };
		event_add(db.queue_timer, &tv);
	}
	for (i = 0; i < db.nconns; i++) {
		db.conns[i].id = i;
		db.conns[i].retry = evtimer_new(base, conn_retry_cb,
		    &db.conns[i]);
		conn_start(&db.conns[i]);
	}
}

/*
 * Every connection closed and every job failed, queued ones as "shutting
 * down" (57P01), ones in flight as a lost connection (08006: they may yet
 * commit), and none made again: their callbacks answer what waits on them
 * (an HTTP client) while the loop still runs to send the answers.
 */
void
db_stop(void)
{
	int	i;

	db.stopping = true;
	for (i = 0; i < db.nconns; i++) {
		evtimer_del(db.conns[i].retry);
		conn_fail(&db.conns[i], "shutting down");
	}
	db_fail_queue("shutting down", "57P01", true);
}

void
db_shutdown(void)
{
	int	i;

	db_stop();
	/* Connections made from now on are closed by their threads; those
	 * already handed over are closed here. */
	pthread_mutex_lock(&connector.lock);
	connector.closed = true;
	pthread_mutex_unlock(&connector.lock);
	if (connector.ev != NULL)
		connect_done(connector.pipe[0], EV_READ, NULL);
	/* The loop has ended: what waits to be called back is called now
	 * (and what those callbacks submit fails at once). */
	db.submitting = 0;
	db_finished_cb(-1, 0, NULL);
	event_free(db.finish_ev);
	db.finish_ev = NULL;
	event_free(db.queue_timer);
	for (i = 0; i < db.nconns; i++) {
		event_free(db.conns[i].retry);
		free(db.conns[i].prepared);
	}
	free(db.conns);
	free(db.dsn);
	free(db.options);
	while (db.nlisten > 0)
		free(db.listen[--db.nlisten].channel);
	json_decref(db.registry);
	memset(&db, 0, sizeof(db));
}

int
db_connected(void)
{
	int	i, n = 0;

	for (i = 0; i < db.npool; i++)
		if (db.conns[i].state == CONN_IDLE ||
		    db.conns[i].state == CONN_BUSY)
			n++;
	return n;
}

int
db_queued(void)
{
	return db.nqueued;
}

int
db_inflight(void)
{
	int	i, n = 0;

	for (i = 0; i < db.nconns; i++)
		if (db.conns[i].state == CONN_BUSY)
			n++;
	return n;
}

int64_t
db_oldest_sent_ms(void)
{
	struct timespec	 now;
	int64_t		 ms, oldest = 0;
	int		 i;

	clock_gettime(CLOCK_MONOTONIC, &now);
	for (i = 0; i < db.nconns; i++) {
		if (db.conns[i].state != CONN_BUSY || db.conns[i].job == NULL)
			continue;
		ms = ms_between(&db.conns[i].job->sent, &now);
		if (ms > oldest)
			oldest = ms;
	}
	return oldest;
}

struct db_job *
db_job_new(db_cb cb, void *arg)
{
	struct db_job	*job = xcalloc(1, sizeof(*job));

	job->cb = cb;
	job->arg = arg;
	return job;
}

void
db_job_add(struct db_job *job, const char *sql, int nparams,
    const char *const *params)
{
	struct db_stmt	*s;
	json_t		*reg;
	int		 i;

	if (job->nstmts == DB_MAX_STMTS)
		fatalx("db job has more than %d statements", DB_MAX_STMTS);
	s = &job->stmts[job->nstmts++];
	s->sql = xstrdup(sql);
	if ((reg = json_object_get(db.registry, sql)) == NULL) {
		reg = json_integer((json_int_t)json_object_size(db.registry));
		json_object_set_new(db.registry, sql, reg);
	}
	s->reg = (int)json_integer_value(reg);
	s->nparams = nparams;
	s->params = xcalloc((size_t)(nparams > 0 ? nparams : 1),
	    sizeof(char *));
	for (i = 0; i < nparams; i++)
		s->params[i] = params[i] ? xstrdup(params[i]) : NULL;
}

static void
db_submit_at(struct db_job *job, bool first)
{
	db.submitting++;
	job->urgent = first;
	if (db.stopping || db_down_for(first)) {
		job_set_error(job, db.stopping ? "shutting down" :
		    "the database is unavailable", db.stopping ? "57P01" :
		    "08006");
		job_finish(job);
	} else {
		clock_gettime(CLOCK_MONOTONIC, &job->queued);
		if (first)
			TAILQ_INSERT_HEAD(&db.queue, job, entry);
		else
			TAILQ_INSERT_TAIL(&db.queue, job, entry);
		db.nqueued++;
		db_dispatch();
	}
	db.submitting--;
}

void
db_submit(struct db_job *job)
{
	db_submit_at(job, false);
}

void
db_submit_first(struct db_job *job)
{
	db_submit_at(job, true);
}

void
db_job_deadline(struct db_job *job, int64_t ms)
{
	job->answer_ms = ms;
}

const char *
db_job_error(const struct db_job *job)
{
	return job->error;
}

bool
db_job_lost(const struct db_job *job)
{
	return job->lost;
}

void
db_job_backend(const struct db_job *job, int *pid, int64_t *start)
{
	*pid = job->backend_pid;
	*start = job->backend_start;
}

const char *
db_job_sqlstate(const struct db_job *job)
{
	return job->sqlstate;
}

const char *
db_error(PGconn *pg, const PGresult *res)
{
	const char	*m = res != NULL ? PQresultErrorMessage(res) : "";

	return *m != '\0' ? m : PQerrorMessage(pg);
}

PGresult *
db_job_result(const struct db_job *job, int i)
{
	if (job->error != NULL || i < 0 || i >= job->nstmts)
		return NULL;
	return job->results[i];
}

PGconn *
db_connect_blocking(const char *dsn, char *err, size_t errlen)
{
	/* A server that accepts and never answers must not hang the start;
	 * a connect_timeout in the DSN (read after this one) wins, and so
	 * does PGCONNECT_TIMEOUT, as for the pool's connections. */
	const char	*keys[] = { "connect_timeout",
			    "fallback_application_name", "dbname", NULL };
	const char	*vals[] = { "10", DB_NAME, dsn, NULL };
	const char	*env = getenv("PGCONNECT_TIMEOUT");
	int		 ours = env == NULL || *env == '\0';
	PGconn		*pg = db_connect_params(keys + !ours, vals + !ours);
	PGresult	*res = NULL;

	/* Read committed, as the pool's (DB_SESSION_OPTIONS): two nodes
	 * registering templates at once meet on the same rows.  (The other
	 * session options are for the daemon's statements, not these.)  Its
	 * failure is the connection's: one the server ended as it was made
	 * (a restart) is tried again, as one that was refused. */
	if (pg != NULL && PQstatus(pg) == CONNECTION_OK)
		res = PQexec(pg, "SET default_transaction_isolation = "
		    "'read committed'");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "%s", pg ? PQerrorMessage(pg) :
		    "out of memory");
		err[strcspn(err, "\n")] = '\0';
		PQclear(res);
		PQfinish(pg);
		return NULL;
	}
	PQclear(res);
	return pg;
}

json_t *
db_json(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return NULL;
	return jsontext_load(PQgetvalue(res, row, col),
	    (size_t)PQgetlength(res, row, col), JSON_DECODE_ANY, NULL);
}
