/* api.h - the HTTP API (evhttp) under /v1 and /health. */
#ifndef TASKERD_API_H
#define TASKERD_API_H

#include <event2/event.h>
#include <jansson.h>

#include "template.h"

/* Bind http.listen and start serving.  Returns 0, or -1 with a reason. */
int	api_init(struct event_base *, char *err, size_t errlen);
/* Stop accepting connections; requests in progress still get answers. */
void	api_stop_listening(void);
/* Close everything (after the loop has ended). */
void	api_free(void);

/* Every answer passes here (reply.c): the request's latency and status
 * go to the metrics. */
struct evhttp_request;
void	api_answered(struct evhttp_request *, int status);

/* The authorising token's name for the request being handled, or NULL
 * when the API is open (no tokens configured). */
const char *api_current_actor(void);

/*
 * What a task (row t) waits for while it cannot go on, which its steps'
 * states do not say ('pending', no error): {"waiting": {code, message,
 * ...}} while it runs, else {}.  ids: the parameter holding this node's
 * own template versions (node_template_ids()), which its next heartbeat
 * may not have told yet (a reload); breaking: the one holding the services
 * whose breaker is open or probing here (services_breaking()).
 * - template_unavailable: its template (any version of it: a node loads
 *   its task's as stored) left every running node's files, and it never
 *   goes on.  A node too old to tell (templates NULL) may have any.
 * - breaker_open: a step whose parents are done is of a service whose
 *   breaker is open (or probing) on this node: it waits, spending no
 *   attempts.  (Breakers are each node's own: another's may be closed.)
 */
#define SQL_TASK_WAITING(ids, breaking)					\
"CASE WHEN t.status NOT IN ('pending', 'in_progress') THEN '{}'::jsonb"	\
"  WHEN NOT EXISTS ("							\
"    SELECT 1 FROM templates tp JOIN templates x"			\
"      ON x.namespace_id = tp.namespace_id AND x.name = tp.name"	\
"    WHERE tp.id = t.template_id AND (x.id = ANY(" ids "::bigint[])"	\
"      OR EXISTS (SELECT 1 FROM nodes o WHERE o.lease_expires_at > now()" \
"        AND (o.templates IS NULL OR x.id = ANY(o.templates)))))"	\
"  THEN jsonb_build_object('waiting', jsonb_build_object("		\
"    'code', 'template_unavailable', 'message', 'no running node has"	\
" this template in its files: the task waits until one has (or is"	\
" cancelled)'))"							\
"  ELSE coalesce((SELECT jsonb_build_object('waiting',"			\
"    jsonb_build_object('code', 'breaker_open', 'service', s.service,"	\
"    'message', format('the breaker of service %s is open on this node:" \
" step %s waits, spending no attempts, until a call to the service"	\
" succeeds', s.service, s.name)))"					\
"    FROM steps s WHERE s.task_id = t.id"				\
"      AND s.status IN ('pending', 'waiting_for_retry')"		\
"      AND s.service = ANY(" breaking "::text[])"			\
"      AND s.remaining_parents = 0"					\
"    ORDER BY s.position LIMIT 1), '{}') END"

/* Every status a task may have, NULL-terminated (api_tasks.c). */
extern const char *const api_task_states[];

/* Task endpoints (api_tasks.c), called by the router. */
struct evhttp_request;

/* What creating a task takes, whichever way the request came. */
struct task_request {
	const struct tmpl	*t;
	json_t			*ctx;		/* borrowed; NULL: {} */
	json_t			*tags;		/* borrowed; NULL: [] */
	const char		*initiator;
	const char		*source_system;
	const char		*reason;
	const char		*ikey;
};
void	task_create(struct evhttp_request *, const struct task_request *,
	    const struct tmpl *route);
void	api_create_task(struct evhttp_request *);
void	api_list_tasks(struct evhttp_request *);
void	api_get_task(struct evhttp_request *, const char *id);
void	api_cancel_task(struct evhttp_request *, const char *id);
void	api_task_transitions(struct evhttp_request *, const char *id);
void	api_task_diagram(struct evhttp_request *, const char *id);
void	api_get_step(struct evhttp_request *, const char *id,
	    const char *step);
void	api_step_action(struct evhttp_request *, const char *id,
	    const char *step);
void	api_step_transitions(struct evhttp_request *, const char *id,
	    const char *step);

/* Routes published by templates (api_routes.c). */
void	api_route_create(struct evhttp_request *, const struct tmpl *);
void	api_route_status(struct evhttp_request *, const struct tmpl *,
	    const char *id);
void	api_route_results(struct evhttp_request *, const struct tmpl *,
	    const char *id);

#endif
