/*
 * node.c - this node's heartbeat.
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
 * and when a renewal gets through again it hands them back and claims
 * afresh.  Steps already running finish; their outcomes are fenced by the
 * lease token if their claims were taken over.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "autoconf.h"
#include "node.h"
#include "db.h"
#include "sched.h"
#include "supervisor.h"
#include "log.h"

static const char sql_beat[] =
"INSERT INTO nodes (id, host, pid, version, lease_expires_at)"
" VALUES ($1, $2, $3, $4, now() + $5::bigint * interval '1 millisecond')"
" ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,"
"   version = excluded.version, heartbeat_at = now(),"
"   lease_expires_at = excluded.lease_expires_at,"
"   started_at = CASE WHEN $6::boolean THEN now()"
"     ELSE nodes.started_at END";

static struct {
	struct event	*timer;
	struct timespec	 valid_until;	/* CLOCK_MONOTONIC */
	bool		 beating;	/* a renewal is in flight */
	bool		 started;	/* the first renewal got through */
	bool		 lapsed;	/* logged: the lease ran out */
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

bool
node_lease_ok(void)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return nd.started && ts_before(&now, &nd.valid_until);
}

static void
beat_done(struct db_job *job, void *arg)
{
	struct timespec	*sent = arg;
	bool		 was_ok = node_lease_ok(), first = !nd.started;

	nd.beating = false;
	if (db_job_error(job) != NULL) {
		if (!was_ok && !nd.lapsed) {
			nd.lapsed = true;
			log_warnx("node lease lapsed, queued steps held back "
			    "node=%s error=\"%s\"", sv.node_id,
			    db_job_error(job));
		}
		free(sent);
		return;
	}
	nd.valid_until = *sent;
	ts_add_ms(&nd.valid_until, sv.conf->node_lease_ms);
	nd.started = true;
	free(sent);
	if (!was_ok && !first) {
		log_warnx("node lease renewed after it lapsed, claiming afresh "
		    "node=%s", sv.node_id);
		nd.lapsed = false;
		sched_lease_regained();
	} else if (first)
		sched_kick();
}

static void
beat(evutil_socket_t fd, short what, void *arg)
{
	struct db_job	*job;
	struct timespec	*sent;
	struct timeval	 tv;
	char		 host[256], pid[16], lease[24];
	const char	*params[6];

	tv.tv_sec = sv.conf->node_lease_ms / 3 / 1000;
	tv.tv_usec = sv.conf->node_lease_ms / 3 % 1000 * 1000;
	evtimer_add(nd.timer, &tv);
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
	sent = malloc(sizeof(*sent));
	if (sent == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, sent);
	job = db_job_new(beat_done, sent);
	db_job_add(job, sql_beat, 6, params);
	nd.beating = true;
	db_submit(job);
}

void
node_init(void)
{
	nd.timer = evtimer_new(sv.base, beat, NULL);
	beat(-1, 0, NULL);
}
