/*
 * migrate.c - bring the schema up to date and register templates.
 *
 * Runs before the event loop starts (or for --migrate), so it uses plain
 * blocking libpq.  The advisory lock key is fixed: every taskerd node that
 * shares a database serialises here, and the one that comes second finds
 * nothing left to do.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "duration.h"
#include "migrate.h"
#include "sdnotify.h"
#include "jsontext.h"
#include "log.h"
#include "xmalloc.h"

#define MIGRATE_LOCK_KEY	"7317280215"	/* "taskerd" in spirit */

/*
 * The cancel request of the connection migrations run on, while they do.
 * A stop signal ends the process at once (stop_during_start), and the
 * server would not notice until the statement ended: a table rewrite ran
 * on to its end, then rolled back, keeping the migration lock all along,
 * and the next start waited for it.  PQcancel may be called from a signal
 * handler.
 */
static PGcancel *volatile migrate_running;
#define MIGRATE_CANCEL_S	2

void
migrate_cancel(void)
{
	PGcancel	*c = migrate_running;
	char		 errbuf[256];

	if (c == NULL)
		return;
	/* PQcancel connects anew, with no timeout: to a server gone from
	 * the network it would hold the stop for minutes.  SIGALRM's
	 * default action ends it then. */
	alarm(MIGRATE_CANCEL_S);
	(void)PQcancel(c, errbuf, sizeof(errbuf));
	alarm(0);
}

/* Forget the cancel request: out of the handler's sight before it is
 * freed (the handler never returns, and nothing else runs meanwhile). */
static void
migrate_cancel_clear(void)
{
	PGcancel	*c = migrate_running;

	migrate_running = NULL;
	PQfreeCancel(c);
}

static int
exec_ok(PGconn *pg, const char *sql, char *err, size_t errlen)
{
	PGresult	*res = PQexec(pg, sql);
	ExecStatusType	 st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", db_error(pg, res));
		err[strcspn(err, "\n")] = '\0';
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

static int
applied(PGconn *pg, int version, char *err, size_t errlen)
{
	char		 v[16];
	const char	*params[1] = { v };
	PGresult	*res;
	int		 n;

	snprintf(v, sizeof(v), "%d", version);
	res = PQexecParams(pg, "SELECT 1 FROM taskerd_migrations "
	    "WHERE version = $1", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", db_error(pg, res));
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	PQclear(res);
	return n > 0;
}

/*
 * Under systemd, a start that migrates tells it to wait: a migration may
 * rewrite a big table, and killed at the start timeout (90 s) it would
 * roll back, and be tried again at the next start, for ever.  The wait is
 * asked for MIGRATE_EXTEND_S at a time, again every MIGRATE_RENEW_MS while
 * migrations run (and no more often: nobody reads the datagrams of a
 * start that is not systemd's, and the eleventh would block).
 */
#define MIGRATE_EXTEND_S	180
#define MIGRATE_RENEW_MS	60000

static void
extend_start(const char *name, struct timespec *last)
{
	if (last->tv_sec != 0 && duration_ms_since(last) < MIGRATE_RENEW_MS)
		return;
	sd_notifyf(0, "STATUS=applying migration %s\nEXTEND_TIMEOUT_USEC=%llu",
	    name, (unsigned long long)MIGRATE_EXTEND_S * 1000000);
	clock_gettime(CLOCK_MONOTONIC, last);
}

/* Run a migration's statements, asking systemd for more time while they
 * take it. */
static int
exec_migration(PGconn *pg, const struct migration *m, struct timespec *last,
    char *err, size_t errlen)
{
	struct pollfd	 pfd;
	PGresult	*res;
	const char	*state;
	int		 rc = 0;

	extend_start(m->name, last);
	if (!PQsendQuery(pg, m->sql)) {
		snprintf(err, errlen, "%s", PQerrorMessage(pg));
		return -1;
	}
	for (;;) {
		while (PQisBusy(pg)) {
			/* (Whether or not the server sends anything meanwhile,
			 * a notice say: extend_start keeps to its pace.) */
			extend_start(m->name, last);
			pfd.fd = PQsocket(pg);
			pfd.events = POLLIN;
			if (poll(&pfd, 1, MIGRATE_RENEW_MS / 4) == 0)
				continue;
			if (!PQconsumeInput(pg)) {
				snprintf(err, errlen, "%s", PQerrorMessage(pg));
				goto out;
			}
		}
		if ((res = PQgetResult(pg)) == NULL)
			break;
		switch (PQresultStatus(res)) {
		case PGRES_COMMAND_OK:
		case PGRES_TUPLES_OK:
			break;
		case PGRES_COPY_IN:
		case PGRES_COPY_OUT:
			/* No migration copies; one that did would never end. */
			snprintf(err, errlen, "COPY is not for migrations");
			PQclear(res);
			goto out;
		default:
			if (rc == 0) {
				snprintf(err, errlen, "%s",
				    db_error(pg, res));
				if ((state = PQresultErrorField(res,
				    PG_DIAG_SQLSTATE)) != NULL &&
				    strcmp(state, "55P03") == 0)
					rc = -2;	/* lock_timeout */
			}
			if (rc == 0)
				rc = -1;
			break;
		}
		PQclear(res);
	}
	if (rc == 0)
		return 0;
out:
	/* One line: the log's. */
	err[strcspn(err, "\n")] = '\0';
	return rc == -2 ? -2 : -1;
}

static int
apply_one(PGconn *pg, const struct migration *m, struct timespec *last,
    char *err, size_t errlen)
{
	char		 v[16];
	const char	*params[2] = { v, m->name };
	PGresult	*res;
	int		 rc;

	if (exec_ok(pg, "BEGIN", err, errlen) == -1)
		return -1;
	if ((rc = exec_migration(pg, m, last, err, errlen)) != 0) {
		PQclear(PQexec(pg, "ROLLBACK"));
		return rc;
	}
	snprintf(v, sizeof(v), "%d", m->version);
	res = PQexecParams(pg, "INSERT INTO taskerd_migrations (version, name)"
	    " VALUES ($1, $2)", 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "%s", db_error(pg, res));
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	if (exec_ok(pg, "COMMIT", err, errlen) == -1)
		goto fail;
	log_info("migration applied version=%d name=%s", m->version, m->name);
	return 0;
fail:
	PQclear(PQexec(pg, "ROLLBACK"));
	return -1;
}

/* Migrations wait this long for a lock on a table (one that another
 * session's open transaction uses), then give way and try again: every
 * statement on the table queues behind a waiting ALTER, the running nodes'
 * heartbeats too, and their leases would lapse. */
#define MIGRATE_LOCK_WAIT_MS	"1000"

/* 1 when this session took the migration lock, 0 when another holds it,
 * -1 on error. */
static int
lock_taken(PGconn *pg, char *err, size_t errlen)
{
	PGresult	*res;
	int		 r;

	res = PQexec(pg, "SELECT pg_try_advisory_lock(" MIGRATE_LOCK_KEY ")");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", db_error(pg, res));
		PQclear(res);
		return -1;
	}
	r = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return r;
}

/* A schema a newer taskerd migrated (a rollback, or a node left behind
 * in a rolling deploy): this one may not know what it now holds.  Said,
 * not refused: during a rolling deploy that is how older nodes run. */
static void
newer_schema(PGconn *pg)
{
	PGresult	*res;
	int		 newest = migrations[nmigrations - 1].version, v;

	res = PQexec(pg, "SELECT max(version), (array_agg(name ORDER BY "
	    "version DESC))[1] FROM taskerd_migrations");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    !PQgetisnull(res, 0, 0) &&
	    (v = atoi(PQgetvalue(res, 0, 0))) > newest)
		log_warnx("the database schema is newer than this taskerd "
		    "knows; run the taskerd that migrated it, or a newer one "
		    "schema_version=%d migration=%s known=%d", v,
		    log_quote(PQgetvalue(res, 0, 1)), newest);
	PQclear(res);
}

int
migrate_run(PGconn *pg, char *err, size_t errlen)
{
	struct timespec	 extended = { 0, 0 };
	char		 why[512];
	int		 i, r, n = 0;

	/* Another node may be migrating: say so while waiting, and keep
	 * systemd's start timeout (90 s) from ending the wait. */
	for (i = 0; (r = lock_taken(pg, err, errlen)) == 0; i++) {
		if (i % 50 == 0) {
			log_warnx("waiting for the migration lock, held by "
			    "another session");
			sd_notifyf(0, "STATUS=waiting for the migration lock\n"
			    "EXTEND_TIMEOUT_USEC=%llu",
			    (unsigned long long)30 * 1000000);
		}
		usleep(100000);
	}
	if (r == -1)
		return -1;
	migrate_running = PQgetCancel(pg);
	/* (No statement_timeout meanwhile: one set on the role or the
	 * database, as managed services do, would cut a migration that
	 * rewrites a big table short at every start, and end its wait for a
	 * lock as a failure rather than giving way.) */
	if (exec_ok(pg, "SET client_min_messages = warning", err,
	    errlen) == -1 ||
	    exec_ok(pg, "SET lock_timeout = " MIGRATE_LOCK_WAIT_MS, err,
	    errlen) == -1 ||
	    exec_ok(pg, "SET statement_timeout = 0", err, errlen) == -1 ||
	    exec_ok(pg, "CREATE TABLE IF NOT EXISTS taskerd_migrations ("
	    "version int PRIMARY KEY, name text NOT NULL, "
	    "applied_at timestamptz NOT NULL DEFAULT now())", err,
	    errlen) == -1) {
		n = -1;
		goto out;
	}
	for (i = 0; i < nmigrations; i++) {
		if ((r = applied(pg, migrations[i].version, err, errlen)) == -1) {
			n = -1;
			goto out;
		}
		if (r == 1)
			continue;
		if ((r = apply_one(pg, &migrations[i], &extended, why,
		    sizeof(why))) == -2) {
			/* (Said each time: the operator has a session to
			 * end.) */
			log_warnx("migration waits for a lock that another "
			    "session holds (an open transaction?), trying again "
			    "migration=%s error=%s", migrations[i].name,
			    log_quote(why));
			sleep(1);
			i--;
			continue;
		}
		if (r == -1) {
			snprintf(err, errlen, "migration %s: %s",
			    migrations[i].name, why);
			n = -1;
			goto out;
		}
		n++;
	}
	newer_schema(pg);
out:
	migrate_cancel_clear();
	PQclear(PQexec(pg, "RESET lock_timeout"));
	PQclear(PQexec(pg, "RESET statement_timeout"));
	PQclear(PQexec(pg, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
	return n;
}

/*
 * Upsert every template of a registry in one statement ($1: [{i, ns, name,
 * version, definition}]), answering (i, id) rows.  Used blocking at start
 * and as a db job on reload.
 */
const char migrate_templates_sql[] =
"WITH x AS ("
"  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(i int, ns text,"
"    name text, version text, definition jsonb, source text)),"
" ns AS ("
"  INSERT INTO namespaces (name) SELECT DISTINCT ns FROM x"
"  ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name"
"  RETURNING id, name),"
" t AS ("
"  INSERT INTO templates (namespace_id, name, version, definition, source)"
"  SELECT ns.id, x.name, x.version, x.definition, x.source"
"  FROM x JOIN ns ON ns.name = x.ns"
"  ON CONFLICT (namespace_id, name, version) DO UPDATE"
"    SET definition = EXCLUDED.definition, source = EXCLUDED.source,"
"      loaded_at = now()"
"  RETURNING id, namespace_id, name, version)"
"SELECT x.i, t.id FROM x JOIN ns ON ns.name = x.ns"
"  JOIN t ON t.namespace_id = ns.id AND t.name = x.name"
"    AND t.version = x.version";

char *
migrate_templates_param(const struct tmpl_registry *reg)
{
	json_t	*arr = json_array();
	char	*s;
	size_t	 i;

	for (i = 0; i < reg->n; i++) {
		const struct tmpl *t = reg->items[i];

		/* (A source that is not UTF-8 goes as null: the definition
		 * stands in for it.) */
		json_array_append_new(arr, json_pack("{s:i, s:s, s:s, s:s, s:O, "
		    "s:o?}", "i", (int)i, "ns", t->namespace, "name", t->name,
		    "version", t->version, "definition", t->definition,
		    "source", t->source != NULL ? json_stringn(t->source,
		    t->sourcelen) : NULL));
	}
	s = jsontext(arr, 0);
	json_decref(arr);
	return s;
}

int
migrate_templates_apply(struct tmpl_registry *reg, PGresult *res)
{
	size_t	i, n = 0;
	int	r;

	for (r = 0; r < PQntuples(res); r++) {
		i = (size_t)strtoul(PQgetvalue(res, r, 0), NULL, 10);
		if (i < reg->n) {
			reg->items[i]->db_id = strtoll(PQgetvalue(res, r, 1),
			    NULL, 10);
			n++;
		}
	}
	return n == reg->n ? 0 : -1;
}

int
migrate_register_templates(PGconn *pg, struct tmpl_registry *reg,
    char *err, size_t errlen)
{
	const char	*params[1];
	PGresult	*res;
	char		*json;
	int		 rc;

	if (reg->n == 0)
		return 0;
	json = migrate_templates_param(reg);
	params[0] = json;
	res = PQexecParams(pg, migrate_templates_sql, 1, NULL, params, NULL,
	    NULL, 0);
	free(json);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "registering templates: %s",
		    db_error(pg, res));
		err[strcspn(err, "\n")] = '\0';
		PQclear(res);
		return -1;
	}
	rc = migrate_templates_apply(reg, res);
	PQclear(res);
	if (rc == -1)
		snprintf(err, errlen, "registering templates: ids missing");
	return rc;
}
