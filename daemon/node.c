/*
 * node.c - this node among others: its heartbeat and lease, and hints.
 *
 * Claims belong to a node (steps.lease_owner) and stay valid while the
 * node's row in `nodes` has its lease in the future; when it has run out,
 * any other node takes the claims over (sched.c's sweeper).  The heartbeat
 * renews the row every third of the lease.
 *
 * The node keeps its own, conservative view of the lease: a renewal counts
 * from the moment it was sent, which is never later than the database's
 * now() that sets the row's expiry.  Once that view has run out the node
 * starts none of the steps it queued - another node may already run them -
 * and stops the steps its workers run, at the moment its own view of the
 * lease runs out, which is before any other node can take the claims over
 * (as long as the nodes' clocks agree to well within a lease).  When a
 * renewal gets through again it hands the queued claims back and claims
 * afresh.
 *
 * Hints.  A node that leaves ready work unclaimed (no room for a batch's
 * first steps or children, claims handed back, an operator's retry) tells
 * the others with a NOTIFY, at most one per NODE_HINT_MS and never from
 * the transactions that carry steps' outcomes; a node that hears another's
 * hint claims at once.  Lost hints cost only time: every node also claims
 * on a timer.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "autoconf.h"
#include "node.h"
#include "create.h"
#include "db.h"
#include "pool.h"
#include "sched.h"
#include "supervisor.h"
#include "log.h"
#include "sdnotify.h"
#include "xmalloc.h"

#define NODE_HINT_CHANNEL	"taskerd_work"
#define NODE_HINT_MS		100
/* A renewal that failed is tried again this soon, not a third of a lease
 * later: two missed renewals would cost the lease. */
#define NODE_BEAT_RETRY_MS	250

/*
 * The renewal: the row is this process's (its instance), or its lease has
 * run out, or (the first renewal) it is the earlier run's that
 * node_check_id found gone ($9).  Another process's live lease is left
 * alone: two started with one id at once both found it free, and a node
 * cut off until its lease ran out may come back to a successor on its
 * id; each took the other's claims for its own lost ones, and ran their
 * steps a second time.  (The pid too: a taskerd older than migration 011
 * renews the row's pid and leaves its instance as it was; and where /proc
 * gives no instance, there is only the pid.)  Answers whether it renewed,
 * and else the row's holder (its host and pid, unless it committed after
 * this statement began).  (templates: the ids of the versions in its
 * files, which other nodes leave to it: oldversions.c.)  It reads no
 * other table: a lock on one (a migration's ALTER) must not hold it up.
 */
static const char sql_beat[] =
"WITH b AS ("
" INSERT INTO nodes (id, host, pid, version, lease_expires_at, instance,"
"   templates)"
" VALUES ($1, $2, $3, $4, now() + $5::bigint * interval '1 millisecond',"
"   $7, $8::bigint[])"
" ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,"
"   version = excluded.version, heartbeat_at = now(),"
"   instance = excluded.instance, templates = excluded.templates,"
"   lease_expires_at = excluded.lease_expires_at,"
"   started_at = CASE WHEN $6::boolean THEN now()"
"     ELSE nodes.started_at END"
" WHERE nodes.lease_expires_at <= now()"
"   OR (nodes.instance IS NOT DISTINCT FROM excluded.instance"
"     AND nodes.pid IS NOT DISTINCT FROM excluded.pid)"
"   OR nodes.instance = $9::text"
" RETURNING 1) "
"SELECT EXISTS (SELECT 1 FROM b),"
"  (SELECT host FROM nodes WHERE id = $1),"
"  (SELECT pid FROM nodes WHERE id = $1)";

/* The lease on this node's id, while it lasts: its expiry (epoch ms),
 * what is left of it (ms), and its holder's host, pid and instance. */
static const char sql_id_lease[] =
"SELECT (extract(epoch FROM lease_expires_at) * 1000)::bigint,"
"  (extract(epoch FROM lease_expires_at - now()) * 1000)::bigint,"
"  coalesce(host, ''), coalesce(pid, 0), coalesce(instance, '')"
" FROM nodes WHERE id = $1 AND lease_expires_at > now()";

/* A clean stop that left no claims behind ends its lease, so the next run
 * of this id (here, or in a restarted container) need not wait for it,
 * and /v1/nodes tells it from a lost node (a lease that ended no later
 * than its last heartbeat).  Only while the row is this process's: a
 * duplicate of this id started meanwhile keeps its lease. */
static const char sql_hand_back[] =
"UPDATE nodes SET lease_expires_at = now(), heartbeat_at = now()"
" WHERE id = $1"
" AND instance IS NOT DISTINCT FROM $2"
" AND NOT EXISTS (SELECT 1 FROM steps WHERE lease_owner = $1"
"   AND status IN ('enqueued', 'in_progress'))";

static const char sql_hint[] =
"SELECT pg_notify('" NODE_HINT_CHANNEL "', $1)";

static void	expiry_arm(void);

static struct {
	struct event	*timer;
	struct event	*expiry;	/* the lease runs out unless renewed */
	struct event	*hint;		/* a debounced hint waits */
	struct timespec	 hinted;	/* when the last one was sent */
	struct timespec	 valid_until;	/* CLOCK_MONOTONIC */
	unsigned	 epoch;		/* lapses so far */
	bool		 beating;	/* a renewal is in flight */
	bool		 failing;	/* the last renewal failed */
	bool		 started;	/* the first renewal got through */
	bool		 lapsed;	/* logged: the lease ran out */
	bool		 handed_back;	/* stopping: no more renewals */
	char		 instance[128];	/* pid, boot id, pid namespace */
	char		 gone[128];	/* the instance of an earlier run here,
					 * found gone at start ("": none) */
} nd;

static void
ts_add_ms(struct timespec *ts, int64_t ms)
{
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static bool
ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	    (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/*
 * Which process this is, where: its pid, the boot id and its pid
 * namespace, e.g. "812 5e0b...-9d1c pid:[4026531836]"; "" when /proc does
 * not say.  Two processes whose instances differ only in the pid see the
 * same pids.  The pid is there because a taskerd older than migration 011
 * renews the row's pid and leaves its instance as it was: an instance
 * whose pid is not the row's says nothing.
 */
static void
instance_read(char *buf, size_t len)
{
	char	 boot[64], ns[64];
	FILE	*f;
	ssize_t	 n;

	buf[0] = '\0';
	if ((f = fopen("/proc/sys/kernel/random/boot_id", "r")) == NULL)
		return;
	if (fgets(boot, sizeof(boot), f) == NULL)
		boot[0] = '\0';
	fclose(f);
	boot[strcspn(boot, "\n")] = '\0';
	if ((n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1)) <= 0 ||
	    boot[0] == '\0')
		return;
	ns[n] = '\0';
	snprintf(buf, len, "%d %s %s", (int)getpid(), boot, ns);
}

/* The lease on this node's id: 1 while leased (its expiry and what is
 * left, in ms; the holder's host, pid and instance), 0 free, -1 error. */
static int
id_lease(PGconn *pg, long long *until, long long *left, char *host,
    size_t hostlen, pid_t *pid, char *inst, size_t instlen)
{
	const char	*params[1] = { sv.node_id };
	PGresult	*res;
	int		 r;

	res = PQexecParams(pg, sql_id_lease, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("node id check failed error=%s",
		    log_quote(db_error(pg, res)));
		PQclear(res);
		return -1;
	}
	if ((r = PQntuples(res) > 0)) {
		*until = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		*left = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		snprintf(host, hostlen, "%s", PQgetvalue(res, 0, 2));
		*pid = (pid_t)strtol(PQgetvalue(res, 0, 3), NULL, 10);
		snprintf(inst, instlen, "%s", PQgetvalue(res, 0, 4));
	}
	PQclear(res);
	return r;
}

/* Whether the holder (instance inst, the row's pid) ran where we do: its
 * instance is ours but for the pid, which is the row's. */
static bool
holder_here(const char *inst, pid_t pid)
{
	const char	*where = strchr(nd.instance, ' ');
	char		 expect[160];

	if (where == NULL)
		return false;	/* (where we run is not known) */
	snprintf(expect, sizeof(expect), "%d%s", (int)pid, where);
	return strcmp(inst, expect) == 0;
}

void
node_check_id(PGconn *pg)
{
	long long	 until, left, again;
	char		 host[256], holder[256], me[256], inst[128];
	pid_t		 pid, pid2;

	instance_read(nd.instance, sizeof(nd.instance));
	if (id_lease(pg, &until, &left, holder, sizeof(holder), &pid,
	    inst, sizeof(inst)) != 1)
		return;
	/* The lease of an earlier run of this node, here, that is gone
	 * (crashed, or stopped with claims left): free.  "Here" is the same
	 * pid namespace since the same boot, where a pid means the same
	 * process: from another container with our hostname the holder is
	 * invisible, or has our own pid 1. */
	if (gethostname(me, sizeof(me)) == -1)
		me[0] = '\0';
	me[sizeof(me) - 1] = '\0';
	if (strcmp(holder, me) == 0 && holder_here(inst, pid) && pid > 0 &&
	    (pid == getpid() || (kill(pid, 0) == -1 && errno == ESRCH))) {
		/* (our own pid: a pid reused since) */
		snprintf(nd.gone, sizeof(nd.gone), "%s", inst);
		return;
	}
	/* Elsewhere, or alive: another node with this id renews its lease,
	 * an earlier run's runs out. */
	log_warnx("node id still leased, waiting for the lease to run out "
	    "node=%s host=%s pid=%d left_ms=%lld", log_quote(sv.node_id),
	    log_quote(holder), (int)pid, left);
	/* systemd's start timeout (90 s) may be shorter than a lease. */
	sd_notifyf(0, "STATUS=waiting for the lease on node id %s\n"
	    "EXTEND_TIMEOUT_USEC=%llu", sv.node_id,
	    (unsigned long long)(left + 30000) * 1000);
	for (again = 0; again < left + 500; again += 100)
		usleep(100000);
	if (id_lease(pg, &again, &left, host, sizeof(host), &pid2, inst,
	    sizeof(inst)) == 1 && again > until)
		fatalx("node id %s is in use by a live node (host %s, pid %d), "
		    "which renews its lease: give each node its own node_id",
		    sv.node_id, host, (int)pid2);
}

unsigned
node_epoch(void)
{
	return nd.epoch;
}

bool
node_lease_ok(void)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return nd.started && ts_before(&now, &nd.valid_until);
}

/* The lease ran out without a renewal: nothing may run here any more. */
static void
expiry_cb(evutil_socket_t fd, short what, void *arg)
{
	if (node_lease_ok()) {		/* renewed meanwhile */
		expiry_arm();
		return;
	}
	log_warnx("node lease lapsed node=%s", log_quote(sv.node_id));
	pool_abandon_running();
}

static void
expiry_arm(void)
{
	struct timespec	now;
	struct timeval	tv;
	int64_t		ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (nd.valid_until.tv_sec - now.tv_sec) * 1000 +
	    (nd.valid_until.tv_nsec - now.tv_nsec) / 1000000 + 1;
	if (ms < 0)
		ms = 0;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = ms % 1000 * 1000;
	evtimer_add(nd.expiry, &tv);
}

/* The next renewal in ms (at once: 0). */
static void
beat_in(int64_t ms)
{
	struct timeval	tv;

	if (nd.handed_back)
		return;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = ms % 1000 * 1000;
	evtimer_add(nd.timer, &tv);
}

static void
beat_done(struct db_job *job, void *arg)
{
	struct timespec	*sent = arg;
	PGresult	*res;
	char		 holder[320] = "";
	bool		 was_ok = node_lease_ok(), first = !nd.started;

	nd.beating = false;
	if (db_job_error(job) == NULL &&
	    strcmp(PQgetvalue(res = db_job_result(job, 0), 0, 0), "t") != 0) {
		if (!PQgetisnull(res, 0, 1))
			snprintf(holder, sizeof(holder), " (host %s, pid %s)",
			    PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
		free(sent);
		fatalx("node id %s is in use by another process%s, whose "
		    "lease is live: give each node its own node_id",
		    sv.node_id, holder);
	}
	if (db_job_error(job) != NULL) {
		if (!was_ok && !nd.lapsed) {
			nd.lapsed = true;
			log_warnx("node lease lapsed, queued steps held back "
			    "node=%s error=%s", log_quote(sv.node_id),
			    log_quote(db_job_error(job)));
		}
		nd.failing = true;
		beat_in(NODE_BEAT_RETRY_MS);
		free(sent);
		return;
	}
	nd.failing = false;
	nd.valid_until = *sent;
	ts_add_ms(&nd.valid_until, sv.conf->node_lease_ms);
	nd.started = true;
	free(sent);
	expiry_arm();
	if (!was_ok && !first) {
		log_warnx("node lease renewed after it lapsed, claiming afresh "
		    "node=%s", log_quote(sv.node_id));
		/* (The expiry timer may not have run yet, the loop late:
		 * what ran under the lapsed lease may run elsewhere now.) */
		pool_abandon_running();
		nd.lapsed = false;
		nd.epoch++;
		sched_lease_regained();
	} else if (first)
		sched_lease_taken();
	/* (Each time: a lease that lapsed during the start held it back.) */
	supervisor_check_ready();
	create_floor_read();
}

void
node_db_up(void)
{
	/* A renewal that failed for want of a connection goes now, rather
	 * than at its retry. */
	if (nd.failing && !nd.beating)
		beat_in(0);
}

/* How long a renewal sent now may wait for its answer. */
static int64_t
beat_deadline_ms(void)
{
	struct timespec	now;
	int64_t		left = 0, least = sv.conf->node_lease_ms / 3;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (nd.started)
		left = (nd.valid_until.tv_sec - now.tv_sec) * 1000 +
		    (nd.valid_until.tv_nsec - now.tv_nsec) / 1000000;
	return left / 2 > least ? left / 2 : least;
}

char *
node_template_ids(void)
{
	struct evbuffer	*b = evbuffer_new();
	char		*s;
	size_t		 i, n;

	evbuffer_add(b, "{", 1);
	for (i = 0; i < sv.templates->n; i++)
		evbuffer_add_printf(b, "%s%lld", i > 0 ? "," : "",
		    (long long)sv.templates->items[i]->db_id);
	evbuffer_add(b, "}", 2);	/* (and the NUL) */
	n = evbuffer_get_length(b);
	s = xmalloc(n);
	evbuffer_remove(b, s, n);
	evbuffer_free(b);
	return s;
}

static void
beat(evutil_socket_t fd, short what, void *arg)
{
	struct db_job	*job;
	struct timespec	*sent;
	char		 host[256], pid[16], lease[24], *ids;
	const char	*params[9];

	if (nd.handed_back)
		return;
	beat_in(sv.conf->node_lease_ms / 3);
	if (nd.beating)
		return;
	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	snprintf(lease, sizeof(lease), "%lld",
	    (long long)sv.conf->node_lease_ms);
	params[0] = sv.node_id;
	params[1] = host;
	params[2] = pid;
	params[3] = PACKAGE_VERSION;
	params[4] = lease;
	params[5] = nd.started ? "false" : "true";
	params[6] = nd.instance[0] != '\0' ? nd.instance : NULL;
	params[7] = ids = node_template_ids();
	params[8] = !nd.started && nd.gone[0] != '\0' ? nd.gone : NULL;
	sent = malloc(sizeof(*sent));
	if (sent == NULL) {
		free(ids);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, sent);
	job = db_job_new(beat_done, sent);
	db_job_add(job, sql_beat, 9, params);
	/* A connection that stalls (half-open, a NAT entry dropped) is
	 * given up in time for a retry on another within the lease: after
	 * half of what is left of it, and no sooner than a third of a
	 * lease, which a slow but healthy database may need. */
	db_job_deadline(job, beat_deadline_ms());
	free(ids);
	nd.beating = true;
	db_submit_first(job);
}

/*
 * Stopping, with nothing left to write: end the lease (unless claims are
 * left, which the lease must keep fenced until it runs out), so the next
 * run of this id starts at once, wherever it runs, and the others see this
 * node gone.  False while a renewal is in flight, which could extend the
 * lease again: call again.
 */
bool
node_hand_back(void)
{
	struct db_job	*job;
	const char	*params[2] = { sv.node_id,
	    nd.instance[0] != '\0' ? nd.instance : NULL };

	/* (A renewal whose connection was given up for lost may still
	 * commit after this: the lease then runs out a lease later.) */
	if (nd.beating)
		return false;
	nd.handed_back = true;
	evtimer_del(nd.timer);
	if (db_connected() == 0)
		return true;	/* not worth a wait: the lease runs out */
	job = db_job_new(NULL, NULL);
	db_job_add(job, sql_hand_back, 2, params);
	db_submit(job);
	return true;
}

static void
hint_send(evutil_socket_t fd, short what, void *arg)
{
	struct db_job	*job = db_job_new(NULL, NULL);
	const char	*params[1] = { sv.node_id };

	clock_gettime(CLOCK_MONOTONIC, &nd.hinted);
	db_job_add(job, sql_hint, 1, params);
	db_submit(job);
}

void
node_hint(void)
{
	struct timespec	now, next;
	struct timeval	tv;
	int64_t		ms;

	if (evtimer_pending(nd.hint, NULL))
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	next = nd.hinted;
	ts_add_ms(&next, NODE_HINT_MS);
	if (!ts_before(&now, &next)) {
		hint_send(-1, 0, NULL);
		return;
	}
	ms = (next.tv_sec - now.tv_sec) * 1000 +
	    (next.tv_nsec - now.tv_nsec) / 1000000 + 1;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = ms % 1000 * 1000;
	evtimer_add(nd.hint, &tv);
}

static void
hint_heard(const char *payload)
{
	if (payload == NULL || strcmp(payload, sv.node_id) != 0)
		sched_kick();
}

void
node_init(void)
{
	nd.timer = evtimer_new(sv.base, beat, NULL);
	nd.expiry = evtimer_new(sv.base, expiry_cb, NULL);
	nd.hint = evtimer_new(sv.base, hint_send, NULL);
	db_listen(NODE_HINT_CHANNEL, hint_heard);
	beat(-1, 0, NULL);
}
