/* reply.h - JSON replies and request helpers for the HTTP API. */
#ifndef TASKERD_REPLY_H
#define TASKERD_REPLY_H

#include <stdint.h>
#include <jansson.h>
#include <event2/http.h>

#include "db.h"

/* Every answer goes out here: to a HEAD, without its body. */
void	 reply_send(struct evhttp_request *, int status, struct evbuffer *);
void	 reply_raw(struct evhttp_request *, int status, const char *json,
	    size_t len);
/* Takes the reference to body. */
void	 reply_json(struct evhttp_request *, int status, json_t *body);
void	 reply_error(struct evhttp_request *, int status, const char *code,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* An error in the dialect of a template's routes: {"success": false,
 * "error": message, "code": code, "details": details or null}.  Takes the
 * reference to details. */
void	 reply_route_error(struct evhttp_request *, int status,
	    const char *code, const char *message, json_t *details);
/* A failed db job: 503 with Retry-After when the database is away, else
 * 500 (logged). */
void	 reply_db_error(struct evhttp_request *, struct db_job *);
/* What reply_db_error answers, for a caller answering in a format of its
 * own (a template's routes): the status, its code and message (503, with
 * Retry-After set on the request, while the database is away). */
int	 reply_db_failure(struct evhttp_request *, struct db_job *,
	    const char **, char *, size_t);

/* The body as JSON; NULL when the reply (413/400) has been sent. */
json_t	*read_body(struct evhttp_request *);
/* -1 (400 sent) when body has a member not in known (NULL-terminated): a
 * misspelt field must not be ignored. */
int	 known_fields(struct evhttp_request *, json_t *body,
	    const char *const *known);
/* An optional string member; -1 when present but not a string (400 sent). */
int	 opt_string(struct evhttp_request *, json_t *body, const char *key,
	    const char **out);
/* A positive decimal id that fits an int64_t; -1 otherwise. */
int	 parse_id(const char *, int64_t *);

#endif
