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
