/*
 * services.h - per-service protection: a concurrency limit across all
 * workers and a circuit breaker, from services.<name> in the config.
 *
 * The scheduler asks before it claims (blocked services' steps stay in the
 * database, spending no attempts) and before it dispatches; it reports each
 * attempt's start and end.  State is this node's own view.
 */
#ifndef TASKERD_SERVICES_H
#define TASKERD_SERVICES_H

#include <stdbool.h>
#include <jansson.h>

#include "protocol.h"

void	 services_init(void);
void	 services_shutdown(void);
/* May an attempt on this service start now?  NULL: no service. */
bool	 services_may_dispatch(const char *name);
/* Is the service's breaker open (its steps should wait)? */
bool	 services_open(const char *name);
/* How many more of its steps may start now: 0 when it may not dispatch,
 * INT_MAX without a limit. */
int	 services_room(const char *name);
void	 services_started(const char *name);
/* Returns true when the attempt was the half-open breaker's probe and it
 * failed: that attempt must not spend the step's budget, and its step
 * waits at least *wait_ms before its next (the next half-open probes with
 * another of the service's steps, if one waits). */
bool	 services_finished(const char *name, const struct proto_step_outcome *,
	    int64_t *wait_ms);
/* Services whose steps must not be claimed now, as a PostgreSQL text[]
 * literal (malloc'd; "{}" when none). */
char	*services_blocked(void);
/* Services whose breaker is open or half-open here, as services_blocked. */
char	*services_breaking(void);
/* The service's settings for the worker: {"name", "base_url"?,
 * "timeout_ms"?}, or NULL when name is NULL. */
json_t	*services_input(const char *name);
/* Set the breaker and in-flight gauges (at scrape time). */
void	 services_metrics(void);
/* {"services": [...]} for GET /v1/services. */
json_t	*services_json(void);

#endif
