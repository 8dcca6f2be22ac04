/*
 * supervisor.c - taskerd, the supervisor process.
 *
 * What it does.  One libevent loop owns everything durable-adjacent: the
 * HTTP listener (api.c), the PostgreSQL connections (db.c), the scheduler
 * that decides what runs next (sched.c) and the worker processes that run
 * it (pool.c).  Every state change of a task or step is a transaction in
 * PostgreSQL before anything depends on it; the supervisor's memory is a
 * cache of the database plus the claims its workers currently hold.
 *
 * What it must never do.  Block: no blocking libpq call, no DNS lookup, no
 * service call, no sleep once the loop runs (start-up migration happens
 * before it).  Run handler code: handlers run in taskerd-worker processes,
 * so a crash, a hang or a leak costs one worker and one retryable attempt,
 * never the supervisor.  Trust a worker: every frame is decoded strictly and
 * an outcome must match the claim (step and lease token) the worker holds.
 *
 * Why it is safe to die at any moment.  Claims belong to a node whose
 * heartbeat renews its lease (node.c); outcomes are applied only while
 * their lease token still matches; a restarted node first fails the
 * attempts it held, and any node takes over the claims of a node whose
 * lease ran out.  So
 * a kill -9 of this process costs at most a repeat of the steps that were
 * running - which is why every attempt carries an idempotency key.
 */
#include <sys/stat.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "supervisor.h"
#include "api.h"
#include "create.h"
#include "db.h"
#include "embedpg.h"
#include "fdlimit.h"
#include "migrate.h"
#include "node.h"
#include "oldversions.h"
#include "pool.h"
#include "sched.h"
#include "metrics.h"
#include "services.h"
#include "sdnotify.h"
#include "log.h"
#include "xmalloc.h"

#define SUPERVISOR_DRAIN_MS	10000	/* SIGTERM: running steps may finish */
#define SUPERVISOR_DB_WAIT_S	30	/* start-up: wait this long for the db */

struct supervisor sv;

static struct event	*ev_term, *ev_int, *ev_hup, *ev_drain, *ev_status;
static struct timespec	 drain_deadline;
static bool		 lease_kept = true;	/* not handed back yet */

const struct tmpl *
supervisor_template(int64_t db_id)
{
	size_t	i;

	for (i = 0; i < sv.templates->n; i++)
		if (sv.templates->items[i]->db_id == db_id)
			return sv.templates->items[i];
	return oldversions_find(db_id);
}

void
supervisor_check_ready(void)
{
	if (sv.ready || sv.stopping)
		return;
	if (db_connected() == 0 || pool_up() < sv.conf->workers_count ||
	    !node_lease_ok())
		return;
	sv.ready = true;
	log_info("taskerd ready node=%s workers=%d listen=%s",
	    log_quote(sv.node_id), sv.conf->workers_count,
	    log_quote(sv.conf->http_listen));
	sd_notify(0, "READY=1");
}

/* libevent's own messages (a failed accept or epoll_ctl, say) as log
 * events, not raw "[warn] ..." lines among them on stderr. */
static void
libevent_log(int severity, const char *msg)
{
	switch (severity) {
	case EVENT_LOG_DEBUG:
		log_debug("libevent message=%s", log_quote(msg));
		break;
	case EVENT_LOG_MSG:
		log_info("libevent message=%s", log_quote(msg));
		break;
	default:
		log_warnx("libevent message=%s", log_quote(msg));
		break;
	}
}

/* A database connection came up. */
static void
db_up(void)
{
	supervisor_check_ready();
	node_db_up();
	sched_resend_handbacks();
}

/*
 * Every few seconds: STATUS= with live counters, and the watchdog ping -
 * sent whenever the loop turns (this callback runs), so systemd restarts a
 * node that is wedged.  Not tied to the database: taskerd reconnects by
 * itself, and a restart during an outage would only kill running steps and
 * drop the outcomes that wait for the database to come back.
 */
static void
status_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t	usec = 0;

	sd_notifyf(0, "STATUS=workers %d/%d up, %d steps running, %d "
	    "queued, database %s", pool_up(), sv.conf->workers_count,
	    sched_inflight() - sched_queued(), sched_queued(),
	    db_connected() > 0 ? "ok" : "unavailable");
	if (sd_watchdog_enabled(0, &usec) > 0)
		sd_notify(0, "WATCHDOG=1");
}

static void
status_start(void)
{
	struct timeval	tv = { 5, 0 };
	uint64_t	usec = 0;

	/* Half the watchdog interval, as sd_watchdog_enabled(3) advises. */
	if (sd_watchdog_enabled(0, &usec) > 0 && usec / 2 < 5000000) {
		tv.tv_sec = (time_t)(usec / 2 / 1000000);
		tv.tv_usec = (suseconds_t)(usec / 2 % 1000000);
	}
	ev_status = event_new(sv.base, -1, EV_PERSIST, status_cb, NULL);
	event_add(ev_status, &tv);
}

static bool
drained(void)
{
	/* Jobs in flight too: a claim whose answer comes in now is handed
	 * back (sched_enqueue), and a hand-back must reach the database. */
	return !sched_busy() && !create_busy() && db_queued() == 0 &&
	    db_inflight() == 0;
}

static void
drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timespec	now;
	struct timeval	tv = { 0, 50000 }, flush = { 0, 250000 };

	if (drained()) {
		/* Last, the lease: its hand-back is one more job to wait for
		 * (it waits for a renewal in flight). */
		if (lease_kept) {
			if (node_hand_back())
				lease_kept = false;
		} else {
			event_base_loopexit(sv.base, NULL);
			return;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec < drain_deadline.tv_sec ||
	    (now.tv_sec == drain_deadline.tv_sec &&
	    now.tv_nsec < drain_deadline.tv_nsec)) {
		evtimer_add(ev_drain, &tv);
		return;
	}
	log_warnx("drain deadline passed; running steps will be retried "
	    "after restart, claims not handed back are swept inflight=%d "
	    "unreleased=%d", sched_inflight(), sched_unreleased());
	/* What still waits on the database (a creation, a read) is answered
	 * now, and the loop runs a moment more to send the answers rather
	 * than close their connections unanswered. */
	db_stop();
	event_base_loopexit(sv.base, &flush);
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct timeval	tv = { 0, 0 };

	if (sv.stopping) {
		log_warnx("second stop signal; exiting now");
		event_base_loopexit(sv.base, NULL);
		return;
	}
	sd_notify(0, "STOPPING=1");
	log_info("stopping signal=%d inflight=%d", (int)sig,
	    sched_inflight());
	sv.stopping = true;
	api_stop_listening();
	sched_shutdown();
	clock_gettime(CLOCK_MONOTONIC, &drain_deadline);
	drain_deadline.tv_sec += SUPERVISOR_DRAIN_MS / 1000;
	ev_drain = evtimer_new(sv.base, drain_cb, NULL);
	evtimer_add(ev_drain, &tv);
}

/*
 * Registries replaced by a reload stay allocated until exit: claims in
 * flight point into them (tmpl, tstep), and a reload is rare enough that
 * keeping a few old registries is cheaper than counting references.
 */
static struct tmpl_registry	**retired;
static size_t			  nretired;
static bool			  reloading, reload_again;
/* The level of the reload in flight: applied with its templates, as the
 * workers that log at it start only then. */
static enum log_level		  reload_level;

static void	hup_cb(evutil_socket_t, short, void *);
static void	reload_notify(const char *);

static bool
defaults_equal(const struct tmpl_defaults *a, const struct tmpl_defaults *b)
{
	return a->retry_limit == b->retry_limit &&
	    a->timeout_ms == b->timeout_ms &&
	    a->backoff.base_ms == b->backoff.base_ms &&
	    a->backoff.max_ms == b->backoff.max_ms &&
	    a->backoff.jitter == b->backoff.jitter;
}

/* The steps' handler configs as loaded: a relative exec program or plugin
 * library is made absolute from its template's real directory, which a
 * release switch (a templates.dir symlink to a new copy) changes while
 * the definitions stay the same. */
static bool
handlers_equal(const struct tmpl_registry *a, const struct tmpl_registry *b)
{
	size_t	i, k;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++) {
		if (a->items[i]->nsteps != b->items[i]->nsteps)
			return false;
		for (k = 0; k < a->items[i]->nsteps; k++)
			if (!json_equal(a->items[i]->steps[k].handler_config,
			    b->items[i]->steps[k].handler_config))
				return false;
	}
	return true;
}

static void
reload_done(struct db_job *job, void *arg)
{
	struct tmpl_registry	*reg = arg;

	reloading = false;
	if (db_job_error(job) != NULL ||
	    migrate_templates_apply(reg, db_job_result(job, 0)) == -1) {
		log_warnx("reload failed, keeping the loaded templates "
		    "error=%s", log_quote(db_job_error(job) ?
		    db_job_error(job) : "template ids missing"));
		tmpl_registry_free(reg);
	} else {
		retired = xreallocarray(retired, nretired + 1,
		    sizeof(*retired));
		retired[nretired++] = sv.templates;
		sv.templates = reg;
		log_setlevel(reload_level);
		log_info("templates reloaded templates=%zu", reg->n);
		pool_recycle();
	}
	reload_notify("READY=1");
	if (reload_again) {
		reload_again = false;
		hup_cb(SIGHUP, 0, NULL);
	}
}

static bool
str_same(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* A reload applies templates and the log level; the rest is read at
 * start.  An operator who revokes a token or grows the pool with
 * `systemctl reload` must hear that it did not take. */
static void
restart_settings(const struct config *conf)
{
	const struct config	*cur = sv.conf;
	size_t			 i;
	bool			 same;
	char			*changed;

	if ((changed = config_restart_changes(conf, cur)) != NULL) {
		log_warnx("settings changed that a restart applies; the ones "
		    "read at start stay in force keys=%s", log_quote(changed));
		free(changed);
	}

	same = conf->ntokens == cur->ntokens;
	for (i = 0; same && i < conf->ntokens; i++)
		same = str_same(conf->tokens[i].name, cur->tokens[i].name) &&
		    memcmp(conf->tokens[i].sha256, cur->tokens[i].sha256,
		    sizeof(conf->tokens[i].sha256)) == 0 &&
		    conf->tokens[i].scopes == cur->tokens[i].scopes;
	if (!same)
		log_warnx("auth.tokens changed: a restart applies them; the "
		    "tokens read at start stay in force");
	same = conf->nservices == cur->nservices;
	for (i = 0; same && i < conf->nservices; i++)
		same = str_same(conf->services[i].name,
		    cur->services[i].name) &&
		    str_same(conf->services[i].base_url,
		    cur->services[i].base_url) &&
		    conf->services[i].timeout_ms ==
		    cur->services[i].timeout_ms &&
		    conf->services[i].concurrency ==
		    cur->services[i].concurrency &&
		    conf->services[i].breaker_failures ==
		    cur->services[i].breaker_failures &&
		    conf->services[i].breaker_cooldown_ms ==
		    cur->services[i].breaker_cooldown_ms;
	if (!same)
		log_warnx("services changed: a restart applies them; the "
		    "services read at start stay in force");
}

/* A reload's RELOADING=1 and READY=1, only once the start has said
 * READY=1: before, they would tell systemd the start is done. */
static void
reload_notify(const char *state)
{
	if (sv.ready && !sv.stopping)
		sd_notify(0, state);
}

/* Steps that load but cannot run as things stand here (see
 * tmpl_registry_warnings, config_service_warnings): said at start and at
 * each reload. */
static void
log_template_warnings(const struct tmpl_registry *reg)
{
	char	*warnings[2], *p, *line;
	size_t	 i;

	warnings[0] = tmpl_registry_warnings(reg);
	warnings[1] = config_service_warnings(sv.conf, reg);
	for (i = 0; i < 2; i++) {
		for (p = warnings[i]; p != NULL &&
		    (line = strsep(&p, "\n")) != NULL;)
			log_warnx("template step cannot run here yet "
			    "reason=%s", log_quote(line));
		free(warnings[i]);
	}
}

/* SIGHUP: validate the config and every template, then swap the templates
 * in, set the log level and replace the workers (new plugin objects, the
 * new level); anything broken is reported and nothing changes.  Other
 * settings (listen address, workers, database) need a restart. */
static void
hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct config		*conf;
	struct tmpl_registry	*reg;
	struct db_job		*job;
	const char		*params[1];
	char			 err[1024], *errs = NULL, *line, *p, *json, *cur;

	if (sv.stopping)
		return;
	if (reloading) {
		/* The files may have changed after the reload in flight read
		 * them: read them again once it is done. */
		log_info("reload requested during a reload, will follow it");
		reload_again = true;
		return;
	}
	reload_notify("RELOADING=1");
	log_info("reloading config=%s", log_quote(sv.conf->path));
	if ((conf = config_load(sv.conf->path, err, sizeof(err))) == NULL) {
		log_warnx("reload refused, keeping the loaded templates "
		    "reason=%s", log_quote(err));
		reload_notify("READY=1");
		return;
	}
	/* A refused reload changes nothing: the level too waits for the
	 * templates. */
	reload_level = conf->log_level;
	restart_settings(conf);
	reg = tmpl_registry_load(conf->templates_dir, &conf->step_defaults,
	    &errs);
	config_free(conf);
	if (reg == NULL) {
		for (p = errs; p != NULL && (line = strsep(&p, "\n")) != NULL;)
			if (*line != '\0')
				log_warnx("reload refused, keeping the loaded "
				    "templates reason=%s", log_quote(line));
		free(errs);
		reload_notify("READY=1");
		return;
	}
	free(errs);
	log_template_warnings(reg);
	json = migrate_templates_param(reg);
	/* Nothing changed (a periodic reload): keep the registry in force.
	 * A replaced one is kept until exit (see retired), so swapping an
	 * identical one would only cost memory. */
	cur = migrate_templates_param(sv.templates);
	if (strcmp(json, cur) == 0 && defaults_equal(&reg->defaults,
	    &sv.templates->defaults) && handlers_equal(reg, sv.templates)) {
		log_setlevel(reload_level);
		log_info("templates unchanged templates=%zu", reg->n);
		pool_recycle();
		tmpl_registry_free(reg);
		free(json);
		free(cur);
		reload_notify("READY=1");
		return;
	}
	free(cur);
	params[0] = json;
	job = db_job_new(reload_done, reg);
	db_job_add(job, migrate_templates_sql, 1, params);
	reloading = true;
	db_submit(job);
	free(json);
}

/* The worker binary: configured, next to us (build tree), or installed. */
static char *
find_worker(const char *argv0)
{
	char	 self[PATH_MAX], *dir, *path;
	ssize_t	 n;

	if (sv.conf->workers_path != NULL)
		return xstrdup(sv.conf->workers_path);
	if (getenv("TASKERD_WORKER") != NULL)
		return xstrdup(getenv("TASKERD_WORKER"));
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
		self[n] = '\0';
		dir = dirname(self);
		xasprintf(&path, "%s/taskerd-worker", dir);
		if (access(path, X_OK) == 0)
			return path;
		free(path);
	}
	(void)argv0;
	xasprintf(&path, "%s/taskerd-worker", TASKERD_LIBEXECDIR);
	return path;
}

/* Migrate and register templates before the loop: nothing is served until
 * the schema is right.  The database may still be starting: wait a while. */
static void
prepare_database(void)
{
	char	 err[1024];
	PGconn	*pg = NULL;
	time_t	 until = time(NULL) + SUPERVISOR_DB_WAIT_S;
	int	 n;

	/* (Each attempt may itself take up to its connect_timeout.) */
	while ((pg = db_connect_blocking(sv.dsn, err,
	    sizeof(err))) == NULL && time(NULL) < until) {
		log_warnx("database not reachable, retrying error=%s",
		    log_quote(err));
		sleep(1);
	}
	if (pg == NULL)
		fatalx("database unreachable for %ds error=%s",
		    SUPERVISOR_DB_WAIT_S, log_quote(err));
	if ((n = migrate_run(pg, err, sizeof(err))) == -1)
		fatalx("migration failed error=%s", log_quote(err));
	if (migrate_register_templates(pg, sv.templates, err,
	    sizeof(err)) == -1)
		fatalx("%s", err);
	node_check_id(pg);
	create_start(pg);
	PQfinish(pg);
}

/*
 * Until the loop handles them, SIGTERM and SIGINT end the start (and
 * --migrate) at once, as their default action does.  A container's pid 1
 * has no default action: it would wait out a node id's lease or a
 * database's recovery deaf to `docker stop`.  The embedded server follows
 * (PR_SET_PDEATHSIG); a migration's statement is cancelled.
 */
void
stop_during_start(int sig)
{
	sigset_t	set;

	migrate_cancel();
	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
	_exit(128 + sig);	/* (pid 1: the signal was ignored) */
}

int
supervisor_run(struct config *conf, struct tmpl_registry *reg,
    const char *argv0)
{
	char	err[512], host[256], *warning;

	signal(SIGTERM, stop_during_start);
	signal(SIGINT, stop_during_start);
	sv.conf = conf;
	sv.templates = reg;
	fdlimit_raise();
	/* systemd's StateDirectory= wins over the configured state_dir. */
	if (conf->database_dsn == NULL)
		sv.dsn = embedpg_start(getenv("STATE_DIRECTORY") != NULL ?
		    getenv("STATE_DIRECTORY") : conf->state_dir);
	else
		sv.dsn = xstrdup(conf->database_dsn);
	if (conf->node_id != NULL)
		sv.node_id = xstrdup(conf->node_id);
	else {
		if (gethostname(host, sizeof(host)) == -1)
			strcpy(host, "localhost");
		host[sizeof(host) - 1] = '\0';
		xasprintf(&sv.node_id, "%s/%s", host, conf->http_listen);
	}
	sv.worker_path = find_worker(argv0);
	if (access(sv.worker_path, X_OK) == -1)
		fatal("worker binary %s", sv.worker_path);

	log_template_warnings(reg);
	if ((warning = config_warnings(conf)) != NULL)
		log_warnx("config warning reason=%s", log_quote(warning));
	free(warning);
	prepare_database();

	signal(SIGPIPE, SIG_IGN);
	event_set_log_callback(libevent_log);
	if ((sv.base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	ev_term = evsignal_new(sv.base, SIGTERM, stop_cb, NULL);
	ev_int = evsignal_new(sv.base, SIGINT, stop_cb, NULL);
	ev_hup = evsignal_new(sv.base, SIGHUP, hup_cb, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_hup, NULL);

	embedpg_watch(sv.base);
	db_init(sv.base, sv.dsn, conf->database_pool,
	    conf->database_statement_timeout_ms,
	    config_lock_timeout_ms(conf));
	/* Ready once workers and the database both are, whichever is last. */
	db_on_connect(db_up);
	pool_init(sv.base, conf->workers_count, sv.worker_path,
	    (size_t)conf->workers_max_frame, conf->workers_ping_interval_ms,
	    conf->workers_ping_timeout_ms, conf->workers_user);
	services_init();
	node_init();
	sched_init();
	if (api_init(sv.base, err, sizeof(err)) == -1)
		fatalx("%s", err);
	status_start();
	log_info("taskerd started node=%s templates=%zu worker=%s "
	    "max_open_files=%llu", log_quote(sv.node_id), sv.templates->n,
	    log_quote(sv.worker_path),
	    (unsigned long long)fdlimit_current());

	event_base_dispatch(sv.base);

	pool_shutdown();
	db_shutdown();
	oldversions_free();
	embedpg_stop();
	services_shutdown();
	metrics_free();
	api_free();
	if (ev_drain != NULL)
		event_free(ev_drain);
	event_free(ev_status);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_base_free(sv.base);
	tmpl_registry_free(sv.templates);
	while (nretired > 0)
		tmpl_registry_free(retired[--nretired]);
	free(retired);
	config_free(sv.conf);
	free(sv.node_id);
	free(sv.dsn);
	free(sv.worker_path);
	log_info("taskerd stopped");
	return 0;
}
