/* create.h - task creation in batches (create.c). */
#ifndef TASKERD_CREATE_H
#define TASKERD_CREATE_H

#include <stdbool.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "template.h"

struct evhttp_request;

/* Create a task of t from rec (its checked fields: template_id, context,
 * initiator, source_system, reason, tags, correlation_id, ikey, identity;
 * taken over) and answer req: the API's dialect, or route's. */
void	create_submit(struct evhttp_request *, const struct tmpl *t,
	    const struct tmpl *route, json_t *rec);
/* At start, before the loop: read what the node needs from the database
 * (blocking). */
void	create_start(PGconn *);
/* Read the highest task id stored, below which no lost batch's tasks
 * are looked for (after each lease renewal: one probe of the primary
 * key). */
void	create_floor_read(void);
/* Creations not yet answered (the drain waits for them). */
bool	create_busy(void);
/* An error in the caller's dialect: the API's {"error": {code, message}}
 * or a template route's {"success": false, "error", "details"}. */
void	create_error(struct evhttp_request *, const struct tmpl *route,
	    int status, const char *code, const char *message, json_t *details);

#endif
