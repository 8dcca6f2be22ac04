/*
 * httpd - the service of the bench's `http` scenario (tests/bench/run).
 *
 *   httpd PORT
 *
 * Listens on 127.0.0.1:PORT (0: a free port) and answers every request,
 * whatever its method and path, with 200 and {"ok":true} at once, keeping
 * HTTP/1.1 connections open.  The figures of the scenario then measure the
 * http handler and the scheduler, not a service.
 *
 * Prints the port it listens on as the first line of stdout once it
 * accepts connections, so a caller that passed 0 knows where to point.  On
 * SIGTERM or SIGINT it stops, prints {"requests": N} (the requests it
 * answered) as its last line and exits 0; 2 when it could not start.
 * libevent only, one loop, no threads: a request costs a few microseconds,
 * far less than the worker's side of it.
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#define BODY		"{\"ok\":true}"
#define MAX_BODY	(1024 * 1024)	/* evhttp answers 413 beyond */

static struct event_base	*base;
static struct evbuffer		*reply;		/* emptied by every send */
static unsigned long		 requests;

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list	 ap;

	fputs("httpd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	requests++;
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	/* evhttp_send_reply moves the bytes out, so the buffer is refilled
	 * for each answer rather than allocated. */
	if (evbuffer_add(reply, BODY, sizeof(BODY) - 1) == -1)
		die("out of memory");
	evhttp_send_reply(req, 200, "OK", reply);
}

static void
signal_cb(evutil_socket_t sig, short events, void *arg)
{
	(void)sig;
	(void)events;
	(void)arg;
	event_base_loopbreak(base);
}

int
main(int argc, char *argv[])
{
	struct evhttp_bound_socket	*bs;
	struct evhttp			*http;
	struct event			*sigterm, *sigint;
	struct sockaddr_in		 sin;
	socklen_t			 len = sizeof(sin);
	unsigned long			 port;
	char				*ep;

	if (argc != 2 || !isdigit((unsigned char)argv[1][0]))
		die("usage: httpd PORT (0: any free port)");
	errno = 0;
	port = strtoul(argv[1], &ep, 10);
	if (*ep != '\0' || errno != 0 || port > 65535)
		die("port %s: want a number from 0 to 65535", argv[1]);

	/* A client that hangs up must not kill us mid-write. */
	signal(SIGPIPE, SIG_IGN);
	if ((base = event_base_new()) == NULL || (http = evhttp_new(base)) ==
	    NULL || (reply = evbuffer_new()) == NULL)
		die("cannot set up libevent");
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_HEAD);
	evhttp_set_max_body_size(http, MAX_BODY);
	evhttp_set_gencb(http, request_cb, NULL);
	if ((bs = evhttp_bind_socket_with_handle(http, "127.0.0.1",
	    (ev_uint16_t)port)) == NULL)
		die("cannot listen on 127.0.0.1:%lu", port);
	if (getsockname(evhttp_bound_socket_get_fd(bs),
	    (struct sockaddr *)&sin, &len) == -1)
		die("getsockname: %s", strerror(errno));
	sigterm = evsignal_new(base, SIGTERM, signal_cb, NULL);
	sigint = evsignal_new(base, SIGINT, signal_cb, NULL);
	if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm,
	    NULL) == -1 || evsignal_add(sigint, NULL) == -1)
		die("cannot catch SIGTERM and SIGINT");
	/* Only now: a caller that read the port may connect at once. */
	printf("%d\n", ntohs(sin.sin_port));
	if (fflush(stdout) != 0)
		die("stdout: %s", strerror(errno));

	event_base_dispatch(base);

	printf("{\"requests\": %lu}\n", requests);
	/* Freed so that a sanitizer build (--enable-asan) exits quietly;
	 * evhttp_free closes every connection. */
	evhttp_free(http);
	evbuffer_free(reply);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(base);
	libevent_global_shutdown();
	return fflush(stdout) == 0 ? 0 : 2;
}
