/* api.h - the HTTP API (evhttp) under /v1 and /health. */
#ifndef TASKERD_API_H
#define TASKERD_API_H

#include <event2/event.h>

/* Bind http.listen and start serving.  Returns 0, or -1 with a reason. */
int	api_init(struct event_base *, char *err, size_t errlen);
/* Stop accepting connections; requests in progress still get answers. */
void	api_stop_listening(void);
/* Close everything (after the loop has ended). */
void	api_free(void);

#endif
