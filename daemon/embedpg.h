/*
 * embedpg.h - the embedded default database: with no database.dsn, taskerd
 * creates (first run) and supervises a private PostgreSQL under
 * state_dir/pgdata, reachable only through a Unix socket in state_dir.
 */
#ifndef TASKERD_EMBEDPG_H
#define TASKERD_EMBEDPG_H

#include <stdbool.h>
#include <sys/types.h>
#include <event2/event.h>

/* Before the loop: initdb when needed, start the server, wait until it
 * accepts connections.  Returns the DSN to use (malloc'd); fatal on error. */
char	*embedpg_start(const char *state_dir);
/* On the loop: restart the server if it dies. */
void	 embedpg_watch(struct event_base *);
/* A child was reaped: true if it was the server (then it is restarted). */
bool	 embedpg_reaped(pid_t, int status);
/* Whether pid is the server's (the postmaster's). */
bool	 embedpg_is_server(pid_t);
/* Stop the server (fast shutdown) and wait for it. */
void	 embedpg_stop(void);

#endif
