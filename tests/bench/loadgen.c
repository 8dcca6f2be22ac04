/*
 * loadgen - the HTTP/1.1 client of `make bench` (tests/bench/run).
 *
 *   loadgen -u http://HOST:PORT/PATH -c CONNS (-n COUNT | -d SECONDS)
 *       [-r RATE] -b BODYFILE [-H 'Name: value']...
 *
 * CONNS threads each hold one blocking keep-alive connection and POST the
 * same body in a closed loop until COUNT requests were sent in all or
 * SECONDS passed, whichever comes first.  It is C so that the figures
 * measure taskerd rather than the client: on a two-core machine a Python
 * client used up one core by itself.
 *
 * With -r, request i (from 0, across all threads) leaves no earlier than
 * i / RATE seconds after the start: a steady load rather than the most the
 * server takes.  A thread that fell behind sends at once, so a slow server
 * is caught up on only as fast as CONNS connections allow; latency is
 * still timed from the send, not from the request's slot.
 *
 * A request whose answer did not arrive whole is a transport error and is
 * never sent again, because a POST may have been applied; the connection is
 * opened again for the next request.  Latency is kept for answered requests
 * only, whatever their status.  Prints one JSON line; exits 2 only when the
 * run could not start.
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX	16384	/* longest response head accepted */
#define SNIP_MAX	200	/* body bytes kept for first_error */
#define IO_TIMEOUT_S	30	/* a server silent this long is an error */
#define NSTATUS		1000

struct conn {
	pthread_t	 thread;
	int		 fd;		/* -1: connect before next request */
	char		 buf[HEAD_MAX];
	size_t		 len;		/* unread bytes at the start of buf */
	double		*lat;		/* ms, one per answered request */
	size_t		 nlat, maxlat;
	unsigned long	 status[NSTATUS];
	unsigned long	 sent, terr;
};

static struct sockaddr_storage	 addr;		/* the address that answered */
static socklen_t		 addrlen;
static char			*request;	/* head and body, built once */
static size_t			 requestlen;
static unsigned long		 count;		/* 0: no limit */
static atomic_ulong		 issued;
static double			 deadline;	/* 0: none */
static double			 rate;		/* requests/s; 0: no limit */
static double			 start;		/* when the threads began */
static atomic_ulong		 slots;		/* requests paced so far */

/* The first error of the run, kept whole; read once the threads ended. */
static pthread_mutex_t		 errlock = PTHREAD_MUTEX_INITIALIZER;
static char			 errmsg[64 + SNIP_MAX];
static size_t			 errlen;

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list	 ap;

	fputs("loadgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static unsigned long
number(const char *s, unsigned long max, const char *what)
{
	unsigned long	 n;
	char		*ep;

	errno = 0;
	n = strtoul(s, &ep, 10);
	if (!isdigit((unsigned char)*s) || *ep != '\0' || errno != 0 ||
	    n < 1 || n > max)
		die("%s %s: want a number from 1 to %lu", what, s, max);
	return n;
}

static double
now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* msg may hold any bytes (a response body): it is escaped when printed. */
static void
note_error(const char *msg, size_t len)
{
	pthread_mutex_lock(&errlock);
	if (errlen == 0) {
		errlen = len < sizeof(errmsg) ? len : sizeof(errmsg);
		memcpy(errmsg, msg, errlen);
	}
	pthread_mutex_unlock(&errlock);
}

static void
conn_close(struct conn *c)
{
	close(c->fd);
	c->fd = -1;
	c->len = 0;
}

/* Notes a transport error and drops the connection; returns -1. */
static int __attribute__((format(printf, 2, 3)))
conn_fail(struct conn *c, const char *fmt, ...)
{
	char	 msg[sizeof(errmsg)];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	note_error(msg, strlen(msg));
	conn_close(c);
	return -1;
}

/* Waits for the next request's slot under -r; 0 when the run is over. */
static int
pace(void)
{
	struct timespec	 ts;
	double		 at;

	at = start + atomic_fetch_add(&slots, 1) / rate;
	if (deadline != 0 && at >= deadline)
		return 0;
	ts.tv_sec = (time_t)at;
	ts.tv_nsec = (long)((at - ts.tv_sec) * 1e9);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	    EINTR)
		;
	return 1;
}

static int
conn_open(const struct sockaddr *sa, socklen_t salen)
{
	struct timeval	 tv = { IO_TIMEOUT_S, 0 };
	int		 fd, on = 1, save;

	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1 ||
	    connect(fd, sa, salen) == -1) {
		save = errno;
		close(fd);
		errno = save;
		return -1;
	}
	return fd;
}

static int
send_all(int fd, const char *p, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = send(fd, p, len, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* Reads more into c->buf: 1 on data, 0 on EOF, -1 (dropped) on error. */
static int
conn_read(struct conn *c, const char *what)
{
	ssize_t	 n;

	do
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	while (n == -1 && errno == EINTR);
	if (n > 0)
		c->len += n;
	if (n >= 0)
		return n > 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return conn_fail(c, "no answer for %d s %s", IO_TIMEOUT_S,
		    what);
	return conn_fail(c, "recv %s: %s", what, strerror(errno));
}

/*
 * Reads one response: its status into *status and the first body bytes
 * into snip.  The connection stays open only when the server meant it to
 * and nothing followed the body.
 */
static int
conn_response(struct conn *c, int *status, char *snip, size_t *sniplen)
{
	char			*end, *line, *next, *v, *ep;
	unsigned long long	 left = 0;
	size_t			 head, take, keep;
	int			 r, haslen = 0, closing, toeof = 0;

	while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL) {
		if (c->len == sizeof(c->buf))
			return conn_fail(c, "response head over %d bytes",
			    HEAD_MAX);
		if ((r = conn_read(c, "before the response")) <= 0)
			return r == -1 ? -1 : conn_fail(c, "server closed "
			    "the connection before the response");
	}
	head = end - c->buf + 4;
	*end = '\0';
	if (strncmp(c->buf, "HTTP/1.", 7) != 0 || c->buf[8] != ' ' ||
	    !isdigit((unsigned char)c->buf[9]) ||
	    !isdigit((unsigned char)c->buf[10]) ||
	    !isdigit((unsigned char)c->buf[11]) ||
	    (c->buf[12] != ' ' && c->buf[12] != '\r' && c->buf[12] != '\0'))
		return conn_fail(c, "bad status line: %.40s", c->buf);
	*status = atoi(c->buf + 9);
	/* No Expect: was sent, so there is nothing to continue. */
	if (*status < 200)
		return conn_fail(c, "unexpected interim status %d", *status);
	closing = c->buf[7] == '0';
	for (line = strstr(c->buf, "\r\n"); line != NULL; line = next) {
		line += 2;
		if ((next = strstr(line, "\r\n")) != NULL)
			*next = '\0';
		if ((v = strchr(line, ':')) == NULL)
			return conn_fail(c, "bad header line: %.40s", line);
		*v++ = '\0';
		v += strspn(v, " \t");
		if (strcasecmp(line, "Content-Length") == 0) {
			errno = 0;
			left = strtoull(v, &ep, 10);
			if (haslen || !isdigit((unsigned char)*v) ||
			    errno != 0 || ep[strspn(ep, " \t")] != '\0')
				return conn_fail(c, "bad Content-Length: %.40s",
				    v);
			haslen = 1;
		} else if (strcasecmp(line, "Transfer-Encoding") == 0)
			return conn_fail(c, "Transfer-Encoding: %.40s is not "
			    "supported (only Content-Length bodies)", v);
		else if (strcasecmp(line, "Connection") == 0 &&
		    strcasestr(v, "close") != NULL)
			closing = 1;
	}
	if (*status == 204 || *status == 304)
		left = 0;
	else if (!haslen) {
		/* The body ends when the server closes. */
		toeof = closing = 1;
		left = ULLONG_MAX;
	}

	c->len -= head;
	memmove(c->buf, c->buf + head, c->len);
	*sniplen = 0;
	for (;;) {
		take = c->len < left ? c->len : left;
		keep = SNIP_MAX - *sniplen < take ? SNIP_MAX - *sniplen : take;
		memcpy(snip + *sniplen, c->buf, keep);
		*sniplen += keep;
		c->len -= take;
		memmove(c->buf, c->buf + take, c->len);
		if ((left -= take) == 0)
			break;
		if ((r = conn_read(c, "within the body")) == -1)
			return -1;
		if (r == 0 && toeof)
			break;
		if (r == 0)
			return conn_fail(c, "server closed the connection "
			    "within the body");
	}
	/* Bytes after the body answer nothing we sent: start afresh. */
	if (closing || c->len > 0)
		conn_close(c);
	return 0;
}

static void *
conn_run(void *arg)
{
	struct conn	*c = arg;
	char		 snip[SNIP_MAX], msg[sizeof(errmsg)];
	size_t		 sniplen = 0, off;
	double		 t0;
	int		 status = 0;

	for (;;) {
		if (deadline != 0 && now() >= deadline)
			break;
		if (count != 0 && atomic_fetch_add(&issued, 1) >= count)
			break;
		if (rate != 0 && !pace())
			break;
		c->sent++;
		if (c->fd == -1 && (c->fd = conn_open((struct sockaddr *)&addr,
		    addrlen)) == -1) {
			/* The server is gone: this thread is done. */
			off = snprintf(msg, sizeof(msg), "connect: %s",
			    strerror(errno));
			note_error(msg, off);
			c->terr++;
			break;
		}
		t0 = now();
		if (send_all(c->fd, request, requestlen) == -1) {
			conn_fail(c, "send: %s", strerror(errno));
			c->terr++;
			continue;
		}
		if (conn_response(c, &status, snip, &sniplen) == -1) {
			c->terr++;
			continue;
		}
		if (c->nlat == c->maxlat) {
			c->maxlat = c->maxlat ? c->maxlat * 2 : 4096;
			if ((c->lat = realloc(c->lat, c->maxlat *
			    sizeof(*c->lat))) == NULL)
				die("out of memory");
		}
		c->lat[c->nlat++] = (now() - t0) * 1000;
		c->status[status]++;
		if (status / 100 != 2) {
			off = snprintf(msg, sizeof(msg), "status %d: ", status);
			memcpy(msg + off, snip, sniplen);
			note_error(msg, off + sniplen);
		}
	}
	if (c->fd != -1)
		close(c->fd);
	return NULL;
}

static int
cmp_double(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest rank: the value at round(p% of n - 1), as the bench had. */
static void
print_pct(const char *name, const double *v, size_t n, double p)
{
	if (n == 0)
		printf(", \"%s\": null", name);
	else
		printf(", \"%s\": %.3f", name, v[(size_t)(p / 100 * (n - 1) +
		    0.5)]);
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: loadgen -u http://HOST[:PORT]/PATH -c conns "
	    "(-n count | -d seconds)\n"
	    "               [-r rate] -b bodyfile [-H 'Name: value']...\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	struct addrinfo	 hints, *res, *ai;
	struct conn	*conns;
	FILE		*f, *m;
	char		*url = NULL, *bodyfile = NULL, *authority, *host, *port;
	char		*path, *body = NULL, *ep, **hdr;
	size_t		 blen = 0, nlat = 0, i, k, nhdr = 0;
	double		*lat, seconds = 0, wall;
	unsigned long	 nconns = 0, sent = 0, terr = 0, ok = 0, st[NSTATUS];
	int		 ch, fd = -1, e, sep = 0;

	if ((hdr = calloc(argc, sizeof(*hdr))) == NULL)
		die("out of memory");
	while ((ch = getopt(argc, argv, "b:c:d:H:n:r:u:")) != -1) {
		switch (ch) {
		case 'b':
			bodyfile = optarg;
			break;
		case 'c':
			nconns = number(optarg, 1024, "-c");
			break;
		case 'd':
			seconds = strtod(optarg, &ep);
			if (*ep != '\0' || !(seconds > 0 && seconds < 1e9))
				die("-d %s: want a positive duration", optarg);
			break;
		case 'H':
			if (strpbrk(optarg, "\r\n") != NULL ||
			    strchr(optarg, ':') == NULL || *optarg == ':')
				die("-H %s: want 'Name: value'", optarg);
			hdr[nhdr++] = optarg;
			break;
		case 'n':
			count = number(optarg, ULONG_MAX, "-n");
			break;
		case 'r':
			rate = strtod(optarg, &ep);
			if (*ep != '\0' || !(rate > 0 && rate < 1e9))
				die("-r %s: want a positive rate", optarg);
			break;
		case 'u':
			url = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || url == NULL || bodyfile == NULL ||
	    nconns == 0 || (count == 0 && seconds == 0))
		usage();

	/* http://host[:port][/path]; IPv6 literals and userinfo are refused. */
	if (strncmp(url, "http://", 7) != 0)
		die("%s: only http:// URLs are supported", url);
	if ((authority = strndup(url + 7, strcspn(url + 7, "/"))) == NULL ||
	    (host = strdup(authority)) == NULL)
		die("out of memory");
	path = url + 7 + strlen(authority);
	if (*path == '\0')
		path = "/";
	if ((port = strchr(host, ':')) != NULL) {
		*port++ = '\0';
		number(port, 65535, "port");
	} else
		port = "80";
	if (*host == '\0' || strpbrk(host, "@[]") != NULL)
		die("%s: want http://HOST[:PORT]/PATH", url);

	if ((f = fopen(bodyfile, "rb")) == NULL ||
	    (m = open_memstream(&body, &blen)) == NULL)
		die("%s: %s", bodyfile, strerror(errno));
	while ((ch = getc(f)) != EOF)
		putc(ch, m);
	if (ferror(f) || fclose(m) != 0)
		die("%s: %s", bodyfile, strerror(errno));
	fclose(f);
	if ((m = open_memstream(&request, &requestlen)) == NULL)
		die("open_memstream: %s", strerror(errno));
	fprintf(m, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: "
	    "application/json\r\nContent-Length: %zu\r\n", path, authority,
	    blen);
	for (i = 0; i < nhdr; i++)
		fprintf(m, "%s\r\n", hdr[i]);
	fputs("\r\n", m);
	fwrite(body, 1, blen, m);
	if (fclose(m) != 0)
		die("building the request: %s", strerror(errno));
	free(body);
	free(hdr);

	/* Connect every thread now: a server not there is a setup error. */
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0)
		die("%s: %s", host, gai_strerror(e));
	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next)
		if ((fd = conn_open(ai->ai_addr, ai->ai_addrlen)) != -1) {
			memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
			addrlen = ai->ai_addrlen;
		}
	if (fd == -1)
		die("cannot connect to %s: %s", authority, strerror(errno));
	freeaddrinfo(res);
	free(host);
	if ((conns = calloc(nconns, sizeof(*conns))) == NULL)
		die("out of memory");
	conns[0].fd = fd;
	for (i = 1; i < nconns; i++)
		if ((conns[i].fd = conn_open((struct sockaddr *)&addr,
		    addrlen)) == -1)
			die("cannot connect to %s: %s", authority,
			    strerror(errno));
	free(authority);

	start = now();
	if (seconds > 0)
		deadline = start + seconds;
	for (i = 0; i < nconns; i++)
		if ((e = pthread_create(&conns[i].thread, NULL, conn_run,
		    &conns[i])) != 0)
			die("pthread_create: %s", strerror(e));
	for (i = 0; i < nconns; i++)
		pthread_join(conns[i].thread, NULL);
	wall = now() - start;

	memset(st, 0, sizeof(st));
	for (i = 0; i < nconns; i++) {
		sent += conns[i].sent;
		terr += conns[i].terr;
		nlat += conns[i].nlat;
		for (k = 0; k < NSTATUS; k++)
			st[k] += conns[i].status[k];
	}
	if ((lat = malloc((nlat ? nlat : 1) * sizeof(*lat))) == NULL)
		die("out of memory");
	for (i = 0, nlat = 0; i < nconns; i++) {
		if (conns[i].nlat > 0)
			memcpy(lat + nlat, conns[i].lat,
			    conns[i].nlat * sizeof(*lat));
		nlat += conns[i].nlat;
		free(conns[i].lat);
	}
	free(conns);
	qsort(lat, nlat, sizeof(*lat), cmp_double);
	for (k = 200; k < 300; k++)
		ok += st[k];

	printf("{\"requests\": %lu, \"ok\": %lu, \"status\": {", sent, ok);
	for (k = 0; k < NSTATUS; k++)
		if (st[k] != 0)
			printf("%s\"%zu\": %lu", sep++ ? ", " : "", k, st[k]);
	printf("}, \"transport_errors\": %lu, \"wall_s\": %.3f, "
	    "\"per_s\": %.1f", terr, wall, ok / wall);
	print_pct("p50_ms", lat, nlat, 50);
	print_pct("p99_ms", lat, nlat, 99);
	print_pct("max_ms", lat, nlat, 100);
	printf(", \"first_error\": %s", errlen ? "\"" : "null");
	/* Bytes JSON may not hold, and a cut UTF-8 sequence, as \xNN. */
	for (k = 0; k < errlen; k++) {
		ch = (unsigned char)errmsg[k];
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch > 0x7e)
			printf("\\\\x%02x", ch);
		else
			putchar(ch);
	}
	printf("%s}\n", errlen ? "\"" : "");
	/* Freed so that a sanitizer build (--enable-asan) exits quietly. */
	free(lat);
	free(request);
	return fflush(stdout) == 0 ? 0 : 2;
}
