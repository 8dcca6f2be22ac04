/*
 * db.h - asynchronous PostgreSQL on the supervisor's event loop.
 *
 * Work is submitted as a job: a short list of statements that run in one
 * pipeline ending in a single Sync, so the server runs them as one implicit
 * transaction and answers in one round trip.  If any statement fails, the
 * rest are skipped and nothing of the job is committed.  The job's callback
 * runs on the loop once every result is in (or the job failed); the db
 * module frees the job after the callback returns.
 *
 * The db module owns its connections and reconnects with backoff; a job that
 * was on a connection when it broke fails with an error (it may or may not
 * have committed: every caller's statements are written to be safe to
 * repeat or to be found by the lease sweeper).
 */
#ifndef TASKERD_DB_H
#define TASKERD_DB_H

#include <stdbool.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <event2/event.h>

#define DB_MAX_STMTS	8

struct db_job;
typedef void (*db_cb)(struct db_job *, void *arg);

/* Start the pool: n connections to dsn, and a spare for urgent jobs,
 * connecting in the background. */
void	 db_init(struct event_base *, const char *dsn, int n,
	    int64_t statement_timeout_ms, int64_t lock_timeout_ms);
/* Close every connection and fail every job now (no reconnecting). */
void	 db_stop(void);
void	 db_shutdown(void);
/* Pool connections currently usable (not counting the spare). */
int	 db_connected(void);
/* Jobs queued but not yet on a connection. */
int	 db_queued(void);
/* Jobs on a connection, their answers not yet in. */
int	 db_inflight(void);
/* Milliseconds since the oldest job now on a connection was sent (0:
 * none): whatever it changes, it changes no earlier than that. */
int64_t	 db_oldest_sent_ms(void);

struct db_job *db_job_new(db_cb, void *arg);
/* Add a statement; params are copied (NULL entries are SQL NULL). */
void	 db_job_add(struct db_job *, const char *sql, int nparams,
	    const char *const *params);
/* Queue the job (ownership passes to the db module). */
void	 db_submit(struct db_job *);
/* The same, ahead of every job queued and on the spare connection too:
 * for the node's heartbeat, which must not wait behind requests held up
 * by the database. */
void	 db_submit_first(struct db_job *);
/* Before submitting: a job not answered ms after it was sent (checked
 * each second) takes its connection with it, which is made anew, and
 * fails as lost.  Without it, a job may take as long as its statements
 * may, and a few seconds more. */
void	 db_job_deadline(struct db_job *, int64_t ms);

/* In the callback: NULL when every statement succeeded, else the first
 * error's text. */
const char *db_job_error(const struct db_job *);
/* In the callback: the SQLSTATE of the first error, or NULL. */
const char *db_job_sqlstate(const struct db_job *);
/* The job failed because its connection broke after it was sent: what it
 * wrote may or may not have committed. */
bool	 db_job_lost(const struct db_job *);
/* The server process the job was sent to: its pid (0: never sent) and
 * its start in microseconds since the epoch (0: not known). */
void	 db_job_backend(const struct db_job *, int *pid, int64_t *start);
/* True for a SQLSTATE that says the database went away, is not back yet
 * or cannot take the statement for now (busy, read-only during a
 * failover, out of disk), not that the statement was wrong: worth the
 * same statement again later. */
bool	 db_unavailable(const char *sqlstate);
/* In the callback: the result of statement i (NULL on failure). */
PGresult *db_job_result(const struct db_job *, int i);
/* The json or jsonb in a row's column as a new value; NULL for SQL NULL
 * (or text that is not JSON).  Use it, not json_loads(): see
 * jsontext_load(). */
json_t	*db_json(const PGresult *, int row, int col);

/* Blocking helpers for start-up work done before the loop runs (migrations,
 * template registration) and never on a request path. */
/* LISTEN to channel (on one connection, from its next connect on: call
 * it before the loop runs) and call cb with each notification's payload;
 * and with NULL each time the LISTEN is in place (again): what was sent
 * while none was, a connection broken meanwhile, is lost, and cb looks at
 * what it may have missed. */
#define DB_MAX_CHANNELS	4
/* cb() each time a connection is ready for jobs (its first statements
 * done), so that what waits for the database can go on. */
void	 db_on_connect(void (*cb)(void));
typedef void (*db_notify_cb)(const char *payload);
void	 db_listen(const char *channel, db_notify_cb cb);

PGconn	*db_connect_blocking(const char *dsn, char *err, size_t errlen);
/* Why a blocking statement failed: res's message, or the connection's when
 * there is no result (PQexec on a connection that is gone answers NULL,
 * whose message is ""). */
const char *db_error(PGconn *, const PGresult *);

#endif
