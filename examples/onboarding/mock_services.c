/*
 * mock_services.c - the three services of the onboarding example, faked.
 *
 * One process, one libevent loop, three evhttp listeners on 127.0.0.1: the
 * user service, the billing service and the notification service that the
 * seed's user-onboarding workflow coordinates.  They keep their state in
 * memory and behave as real services would where a workflow engine can
 * tell the difference: 409 on a duplicate email, 402 for a paid plan with
 * no payment method, 429 with Retry-After over a per-user rate, 404 for
 * unknown ids, idempotent replays for a repeated Idempotency-Key.
 *
 * What a request goes through, in this order (call_handle):
 *   1. /_admin routes skip everything below: they are the test harness's
 *      door, never faulted, never replayed, never in the call log.
 *   2. Faults: an outage answers 503; else with probability failure_rate
 *      the answer is the configured status.  Nothing else happens, as when
 *      a proxy in front of the service fails.
 *   3. The route table (404, 405), then the JSON body (400).
 *   4. Idempotency: a mutating call whose Idempotency-Key was seen before on
 *      the same method and path gets the stored answer back (422 if the
 *      body differs).  Only 2xx answers are stored: an error says nothing
 *      happened, so a retry must be evaluated afresh.
 *   5. The handler.
 * Latency is added to the *answer*: the state changes at once and the reply
 * waits on a timer.  That is the nasty case for a client - it times out
 * although the call took effect - and the one idempotency keys exist for.
 * The loop never sleeps, so a slow service never slows the others.
 * A black hole is the other way round: the request is read and held
 * before step 2, nothing happens and nothing is answered until the fault
 * is lifted (then a 503, to a client that may be long gone).
 *
 * Every answer is serialised when it is decided, so a delayed reply shows
 * the state of that moment, whatever happens meanwhile.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "log.h"
#include "xmalloc.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

#define CALLS_MAX	10000		/* the call log keeps the last ones */
#define MAX_BODY	(1024 * 1024)	/* evhttp answers 413 beyond */
#define MAX_SEGS	4		/* path segments a route may have */
#define SEG_LEN		128

/* ---- services, faults, calls ------------------------------------------- */

enum svc_id { SVC_USER, SVC_BILLING, SVC_NOTIFY, SVC_COUNT };

struct faults {
	double	 failure_rate;	/* 0..1: chance of answering `status` */
	int	 latency_ms;	/* added to every answer but /_admin ones */
	bool	 outage;	/* 503 to everything but /_admin */
	bool	 blackhole;	/* hold every call but /_admin, unanswered */
	int	 status;	/* what an injected failure answers */
};

struct service {
	enum svc_id	 id;
	const char	*name;
	int		 port;		/* as asked, then as bound */
	struct faults	 initial;	/* --faults, restored by a reset */
	struct faults	 faults;
	uint64_t	 rng;		/* one stream each: a service's failures
					 * depend only on its own calls */
	json_t		*idem;		/* "METHOD path key" ->
					 * {request, status, reply} */
	struct evhttp	*http;
	json_t		*draws;		/* idempotency key -> calls drawn */
};

static struct service services[SVC_COUNT] = {
	[SVC_USER] =	{ SVC_USER, "user", 3001, { .status = 503 },
			  { .status = 503 }, 0, NULL, NULL },
	[SVC_BILLING] =	{ SVC_BILLING, "billing", 3002, { .status = 503 },
			  { .status = 503 }, 0, NULL, NULL },
	[SVC_NOTIFY] =	{ SVC_NOTIFY, "notification", 3003, { .status = 503 },
			  { .status = 503 }, 0, NULL, NULL },
};

/* One HTTP exchange, from arrival to the reply being handed to evhttp. */
struct call {
	struct service		*svc;
	struct evhttp_request	*req;
	enum evhttp_cmd_type	 method;
	char			*path;		/* the URI path, as sent */
	struct evkeyvalq	 query;		/* decoded query parameters */
	char			 arg[SEG_LEN];	/* the route's ":id", decoded */
	json_t			*body;		/* the JSON object, or NULL */
	char			*correlation_id;	/* or NULL */
	char			*idem_key;	/* or NULL */
	bool			 admin;
	struct timespec		 start;

	int			 status;	/* the answer */
	char			*reply;		/* serialised JSON */
	int			 retry_after;	/* seconds; 0: no header */
	char			*allow;		/* for a 405 */
	bool			 replayed;	/* from the idempotency cache */
	const char		*fault;		/* "outage", "injected",
						 * "blackhole", NULL */

	struct event		*delay;		/* the latency fault's timer */
	struct event		*watch;		/* the client hanging up */
	int64_t			 gone_ms;	/* when it did, after start;
						 * -1: still there */
	TAILQ_ENTRY(call)	 entry;		/* in `delayed` or `held`
						 * meanwhile */
};

static TAILQ_HEAD(, call) delayed = TAILQ_HEAD_INITIALIZER(delayed);
/* Calls swallowed by a black hole, until it is lifted. */
static TAILQ_HEAD(, call) held = TAILQ_HEAD_INITIALIZER(held);

/* The call log, a ring: what tests read back through /_admin/calls. */
struct call_rec {
	enum svc_id	 svc;
	const char	*method;	/* static string */
	char		*path;
	int		 status;
	char		*correlation_id;	/* or NULL */
	char		*idem_key;		/* or NULL */
	char		 at[32];
};

static struct call_rec	*calls;		/* CALLS_MAX slots */
static size_t		 calls_next, calls_n;

static struct {
	const char	*port_file;
	uint64_t	 seed;
	int		 rate;		/* welcome calls per user per window */
	int		 rate_window_s;
} opt = { NULL, 0, 3, 10 };

static struct event_base	*base;

/* ---- the API: one row per route ---------------------------------------- */

#define ON_USER		(1u << SVC_USER)
#define ON_BILLING	(1u << SVC_BILLING)
#define ON_NOTIFY	(1u << SVC_NOTIFY)
#define ON_ALL		(ON_USER | ON_BILLING | ON_NOTIFY)

#define R_BODY		0x1	/* takes a JSON object body */

struct route {
	unsigned		 on;		/* services that serve it */
	enum evhttp_cmd_type	 method;
	const char		*pattern;	/* a ":id" segment: c->arg */
	int			 flags;
	void			(*fn)(struct call *);
};

static void	user_validate(struct call *);
static void	user_create(struct call *);
static void	user_list(struct call *);
static void	user_get(struct call *);
static void	user_patch(struct call *);
static void	user_put_preferences(struct call *);
static void	billing_create(struct call *);
static void	billing_list(struct call *);
static void	billing_get(struct call *);
static void	notify_welcome(struct call *);
static void	notify_list(struct call *);
static void	notify_get(struct call *);
static void	admin_get_faults(struct call *);
static void	admin_set_faults(struct call *);
static void	admin_clear_faults(struct call *);
static void	admin_get_calls(struct call *);
static void	admin_clear_calls(struct call *);
static void	admin_reset(struct call *);
static void	blackhole_release(const struct service *);

static const struct route routes[] = {
	{ ON_USER, EVHTTP_REQ_POST, "/users/validate", R_BODY, user_validate },
	{ ON_USER, EVHTTP_REQ_POST, "/users", R_BODY, user_create },
	{ ON_USER, EVHTTP_REQ_GET, "/users", 0, user_list },
	{ ON_USER, EVHTTP_REQ_GET, "/users/:id", 0, user_get },
	{ ON_USER, EVHTTP_REQ_PATCH, "/users/:id", R_BODY, user_patch },
	{ ON_USER, EVHTTP_REQ_PUT, "/users/:id/preferences", R_BODY,
	  user_put_preferences },

	{ ON_BILLING, EVHTTP_REQ_POST, "/billing/profiles", R_BODY,
	  billing_create },
	{ ON_BILLING, EVHTTP_REQ_GET, "/billing/profiles", 0, billing_list },
	{ ON_BILLING, EVHTTP_REQ_GET, "/billing/profiles/:id", 0,
	  billing_get },

	{ ON_NOTIFY, EVHTTP_REQ_POST, "/notifications/welcome", R_BODY,
	  notify_welcome },
	{ ON_NOTIFY, EVHTTP_REQ_GET, "/notifications", 0, notify_list },
	{ ON_NOTIFY, EVHTTP_REQ_GET, "/notifications/:id", 0, notify_get },

	{ ON_ALL, EVHTTP_REQ_GET, "/_admin/faults", 0, admin_get_faults },
	{ ON_ALL, EVHTTP_REQ_POST, "/_admin/faults", R_BODY,
	  admin_set_faults },
	{ ON_ALL, EVHTTP_REQ_DELETE, "/_admin/faults", 0,
	  admin_clear_faults },
	{ ON_ALL, EVHTTP_REQ_GET, "/_admin/calls", 0, admin_get_calls },
	{ ON_ALL, EVHTTP_REQ_DELETE, "/_admin/calls", 0, admin_clear_calls },
	{ ON_ALL, EVHTTP_REQ_POST, "/_admin/reset", 0, admin_reset },
};

/* ---- small helpers ------------------------------------------------------ */

static void	reply(struct call *, int, json_t *);
static void	reply_error(struct call *, int, json_t *, const char *, ...)
		    __attribute__((format(printf, 4, 5)));

/* splitmix64: small, good enough, and the same on every libc. */
static uint64_t
rng_next(uint64_t *state)
{
	uint64_t	z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double
rng_uniform(uint64_t *state)
{
	return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

static int64_t
mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Now, as 2026-11-25T12:00:00.123Z. */
static void
iso_now(char *buf, size_t len)
{
	struct timespec	ts;
	struct tm	tm;
	size_t		n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

static char *
lower_dup(const char *s)
{
	char	*d = xstrdup(s), *p;

	for (p = d; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

static bool
blank(const char *s)
{
	for (; *s != '\0'; s++)
		if (!isspace((unsigned char)*s))
			return false;
	return true;
}

static const char *
method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET:	return "GET";
	case EVHTTP_REQ_POST:	return "POST";
	case EVHTTP_REQ_PUT:	return "PUT";
	case EVHTTP_REQ_PATCH:	return "PATCH";
	case EVHTTP_REQ_DELETE:	return "DELETE";
	case EVHTTP_REQ_HEAD:	return "HEAD";
	default:		return "OTHER";
	}
}

static const char *
status_reason(int status)
{
	static const struct {
		int		 code;
		const char	*text;
	} reasons[] = {
		{ 200, "OK" }, { 201, "Created" }, { 202, "Accepted" },
		{ 400, "Bad Request" }, { 402, "Payment Required" },
		{ 404, "Not Found" }, { 405, "Method Not Allowed" },
		{ 408, "Request Timeout" }, { 409, "Conflict" },
		{ 422, "Unprocessable Entity" }, { 429, "Too Many Requests" },
		{ 500, "Internal Server Error" }, { 502, "Bad Gateway" },
		{ 503, "Service Unavailable" }, { 504, "Gateway Timeout" },
	};
	size_t	i;

	for (i = 0; i < nitems(reasons); i++)
		if (reasons[i].code == status)
			return reasons[i].text;
	return status < 500 ? "Client Error" : "Server Error";
}

/* A logfmt value: bare when it can be, else quoted, with \" and \\ and
 * bytes outside printable ASCII as \xNN, so the log stays ASCII text. */
static const char *
logfmt_value(char *buf, size_t len, const char *v)
{
	const unsigned char	*p;
	bool			 bare = v != NULL && *v != '\0';
	size_t			 o = 0;

	if (v == NULL)
		v = "";
	for (p = (const unsigned char *)v; *p != '\0'; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '=' ||
		    *p == '\\')
			bare = false;
	if (bare) {
		snprintf(buf, len, "%s", v);
		return buf;
	}
	buf[o++] = '"';
	for (p = (const unsigned char *)v; *p != '\0' && o + 6 < len; p++) {
		if (*p < ' ' || *p >= 0x7f)
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *p);
		else {
			if (*p == '"' || *p == '\\')
				buf[o++] = '\\';
			buf[o++] = (char)*p;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* s as a JSON string, or null.  What comes from a URL or a header need
 * not be UTF-8: then its non-ASCII bytes become '?'. */
static json_t *
json_text(const char *s)
{
	json_t	*j;
	char	*copy, *p;

	if (s == NULL)
		return json_null();
	if ((j = json_string(s)) != NULL)
		return j;
	copy = xstrdup(s);
	for (p = copy; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

/* ---- validation --------------------------------------------------------- */

static void
problem(json_t *problems, const char *field, const char *message)
{
	json_array_append_new(problems, json_pack("{s:s, s:s}",
	    "field", field, "message", message));
}

/* body[key] as a string; NULL when absent, null or of another type.  The
 * last is a problem, and so is absence when the field is required. */
static const char *
field_str(json_t *body, const char *key, bool required, json_t *problems)
{
	json_t	*v = json_object_get(body, key);

	if (v == NULL || json_is_null(v)) {
		if (required)
			problem(problems, key, "is required");
		return NULL;
	}
	if (!json_is_string(v)) {
		problem(problems, key, "must be a string");
		return NULL;
	}
	return json_string_value(v);
}

/* As field_str, and not blank. */
static const char *
field_text(json_t *body, const char *key, bool required, json_t *problems)
{
	const char	*s = field_str(body, key, required, problems);

	if (s != NULL && blank(s)) {
		problem(problems, key, "must not be empty");
		return NULL;
	}
	return s;
}

/* As field_str, and one of `allowed` (NULL-terminated). */
static const char *
field_enum(json_t *body, const char *key, bool required,
    const char *const *allowed, json_t *problems)
{
	const char	*s = field_str(body, key, required, problems);
	char		 msg[256];
	size_t		 i, o;

	if (s == NULL)
		return NULL;
	for (i = 0; allowed[i] != NULL; i++)
		if (strcmp(s, allowed[i]) == 0)
			return s;
	o = (size_t)snprintf(msg, sizeof(msg), "must be one of");
	for (i = 0; allowed[i] != NULL && o < sizeof(msg); i++)
		o += (size_t)snprintf(msg + o, sizeof(msg) - o, "%s %s",
		    i == 0 ? "" : ",", allowed[i]);
	problem(problems, key, msg);
	return NULL;
}

/* Looks like local@domain.tld: one @, no blanks, a dot-separated domain
 * with no empty label. */
static bool
email_ok(const char *s)
{
	const char	*at = strchr(s, '@'), *p;
	bool		 dot = false;

	if (at == NULL || at == s || strchr(at + 1, '@') != NULL ||
	    strlen(s) > 254)
		return false;
	for (p = s; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return false;
	for (p = at + 1; *p != '\0'; p++) {
		if (*p != '.')
			continue;
		if (p == at + 1 || p[1] == '\0' || p[1] == '.')
			return false;
		dot = true;
	}
	return dot;
}

/* ^\+?[0-9 ()-]{7,20}$ */
static bool
phone_ok(const char *s)
{
	size_t	n = 0;

	if (*s == '+')
		s++;
	for (; *s != '\0'; s++, n++)
		if (!isdigit((unsigned char)*s) && strchr(" ()-", *s) == NULL)
			return false;
	return n >= 7 && n <= 20;
}

/* ---- replies, idempotency and the call log ------------------------------ */

/* Decides the answer; `body` is consumed.  Serialising now freezes it. */
static void
reply(struct call *c, int status, json_t *body)
{
	if (body == NULL)
		fatalx("reply without a body status=%d path=%s", status,
		    c->path);
	if (c->reply != NULL)
		fatalx("second reply status=%d path=%s", status, c->path);
	c->status = status;
	if ((c->reply = json_dumps(body, JSON_COMPACT)) == NULL)
		fatalx("json_dumps failed status=%d path=%s", status, c->path);
	json_decref(body);
}

/* {"error": message, "details": details or null}; `details` is consumed. */
static void
reply_error(struct call *c, int status, json_t *details, const char *fmt,
    ...)
{
	char	msg[256];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply(c, status, json_pack("{s:s, s:o}", "error", msg,
	    "details", details != NULL ? details : json_null()));
}

static bool
method_mutates(enum evhttp_cmd_type m)
{
	return m == EVHTTP_REQ_POST || m == EVHTTP_REQ_PUT ||
	    m == EVHTTP_REQ_PATCH || m == EVHTTP_REQ_DELETE;
}

/* The idempotency slot: a key counts per method and path, as a client
 * may reuse one key for the different calls of one logical operation. */
static char *
idem_slot(const struct call *c)
{
	char	*slot;

	xasprintf(&slot, "%s %s %s", method_name(c->method), c->path,
	    c->idem_key);
	return slot;
}

/* Answers from the cache when this key was seen; true if it did. */
static bool
idem_replay(struct call *c)
{
	json_t	*hit, *body = c->body != NULL ? c->body : json_null();
	char	*slot;

	if (c->idem_key == NULL || !method_mutates(c->method))
		return false;
	slot = idem_slot(c);
	hit = json_object_get(c->svc->idem, slot);
	free(slot);
	if (hit == NULL)
		return false;
	if (!json_equal(json_object_get(hit, "request"), body)) {
		reply_error(c, 422, json_pack("{s:o}", "idempotency_key",
		    json_text(c->idem_key)),
		    "idempotency key reused with a different request");
		return true;
	}
	c->status = (int)json_integer_value(json_object_get(hit, "status"));
	c->reply = xstrdup(json_string_value(json_object_get(hit, "reply")));
	c->replayed = true;
	return true;
}

static void
idem_store(const struct call *c)
{
	char	*slot;

	if (c->idem_key == NULL || !method_mutates(c->method) ||
	    c->replayed || c->status < 200 || c->status > 299)
		return;
	slot = idem_slot(c);
	json_object_set_new_nocheck(c->svc->idem, slot, json_pack(
	    "{s:O, s:i, s:s}",
	    "request", c->body != NULL ? c->body : json_null(),
	    "status", c->status, "reply", c->reply));
	free(slot);
}

static void
calls_record(const struct call *c)
{
	struct call_rec	*r = &calls[calls_next];

	free(r->path);
	free(r->correlation_id);
	free(r->idem_key);
	r->svc = c->svc->id;
	r->method = method_name(c->method);
	r->path = xstrdup(c->path);
	r->status = c->status;
	r->correlation_id = c->correlation_id ? xstrdup(c->correlation_id) :
	    NULL;
	r->idem_key = c->idem_key ? xstrdup(c->idem_key) : NULL;
	iso_now(r->at, sizeof(r->at));
	calls_next = (calls_next + 1) % CALLS_MAX;
	if (calls_n < CALLS_MAX)
		calls_n++;
}

static void
calls_clear(void)
{
	size_t	i;

	for (i = 0; i < CALLS_MAX; i++) {
		free(calls[i].path);
		free(calls[i].correlation_id);
		free(calls[i].idem_key);
	}
	memset(calls, 0, CALLS_MAX * sizeof(*calls));
	calls_next = calls_n = 0;
}

/* ---- user service ------------------------------------------------------- */

static struct {
	json_t		*by_id;		/* "usr_1" -> user */
	json_t		*by_email;	/* lowercased email -> "usr_1" */
	json_t		*prefs;		/* "usr_1" -> {user_id, preferences,
					 * updated_at} */
	unsigned	 next_id;
} user_db;

static const char *const user_statuses[] =
    { "pending", "active", "suspended", NULL };
static const char *const user_pref_flags[] =
    { "newsletter_opt_in", "sms_notifications", "data_sharing_consent" };

/* Checks {email, first_name, last_name, phone?}; true when all is well. */
static bool
user_check(json_t *body, json_t *problems, const char **email)
{
	const char	*phone;

	*email = field_str(body, "email", true, problems);
	if (*email != NULL && !email_ok(*email)) {
		problem(problems, "email",
		    "must be an address like name@example.com");
		*email = NULL;
	}
	field_text(body, "first_name", true, problems);
	field_text(body, "last_name", true, problems);
	phone = field_str(body, "phone", false, problems);
	if (phone != NULL && !phone_ok(phone))
		problem(problems, "phone", "must be 7 to 20 digits, spaces, "
		    "dashes or parentheses, after an optional +");
	return json_array_size(problems) == 0;
}

static void
user_validate(struct call *c)
{
	json_t		*problems = json_array();
	const char	*email;

	if (!user_check(c->body, problems, &email)) {
		reply_error(c, 422, problems, "invalid user info");
		return;
	}
	json_decref(problems);
	reply(c, 200, json_pack("{s:b, s:s}", "valid", 1, "email", email));
}

static void
user_create(struct call *c)
{
	json_t		*problems = json_array(), *u, *existing;
	const char	*email;
	char		*key, *id, now[32];

	if (!user_check(c->body, problems, &email)) {
		reply_error(c, 422, problems, "invalid user info");
		return;
	}
	json_decref(problems);
	key = lower_dup(email);
	if ((existing = json_object_get(user_db.by_email, key)) != NULL) {
		reply(c, 409, json_pack("{s:s, s:s, s:{s:s, s:s}}",
		    "error", "email already exists",
		    "existing_user_id", json_string_value(existing),
		    "details", "email", email,
		    "existing_user_id", json_string_value(existing)));
		free(key);
		return;
	}
	xasprintf(&id, "usr_%u", user_db.next_id++);
	iso_now(now, sizeof(now));
	u = json_pack("{s:s, s:s, s:O, s:O, s:O?, s:s, s:s, s:s}",
	    "id", id, "email", email,
	    "first_name", json_object_get(c->body, "first_name"),
	    "last_name", json_object_get(c->body, "last_name"),
	    "phone", json_object_get(c->body, "phone"),
	    "status", "pending", "created_at", now, "updated_at", now);
	json_object_set_new(user_db.by_id, id, u);
	json_object_set_new(user_db.by_email, key, json_string(id));
	log_debug("user created user_id=%s", id);
	reply(c, 201, json_incref(u));
	free(key);
	free(id);
}

/* GET /users?email=E: the user with that email, if any (all without E). */
static void
user_list(struct call *c)
{
	const char	*email = evhttp_find_header(&c->query, "email");
	json_t		*users = json_array(), *id, *u;
	const char	*k;
	char		*key;

	if (email != NULL) {
		key = lower_dup(email);
		if ((id = json_object_get(user_db.by_email, key)) != NULL)
			json_array_append(users, json_object_get(
			    user_db.by_id, json_string_value(id)));
		free(key);
	} else {
		json_object_foreach(user_db.by_id, k, u)
			json_array_append(users, u);
	}
	reply(c, 200, json_pack("{s:o}", "users", users));
}

static json_t *
user_find(struct call *c)
{
	json_t	*u = json_object_get(user_db.by_id, c->arg);

	if (u == NULL)
		reply_error(c, 404, json_pack("{s:o}", "user_id",
		    json_text(c->arg)),
		    "user not found");
	return u;
}

static void
user_get(struct call *c)
{
	json_t	*u;

	if ((u = user_find(c)) != NULL)
		reply(c, 200, json_incref(u));
}

/* PATCH /users/{id} {"status": ...}: the only field that may change. */
static void
user_patch(struct call *c)
{
	json_t		*u, *problems, *v;
	const char	*status, *k;
	char		 now[32];

	if ((u = user_find(c)) == NULL)
		return;
	problems = json_array();
	status = field_enum(c->body, "status", true, user_statuses, problems);
	json_object_foreach(c->body, k, v)
		if (strcmp(k, "status") != 0)
			problem(problems, k, "cannot be changed");
	if (json_array_size(problems) > 0) {
		reply_error(c, 422, problems, "invalid user update");
		return;
	}
	json_decref(problems);
	if (strcmp(json_string_value(json_object_get(u, "status")),
	    status) != 0) {
		iso_now(now, sizeof(now));
		json_object_set_new(u, "status", json_string(status));
		json_object_set_new(u, "updated_at", json_string(now));
		log_debug("user status user_id=%s status=%s", c->arg, status);
	}
	reply(c, 200, json_incref(u));
}

/* PUT replaces the preferences.  Putting the same ones again changes
 * nothing, not even updated_at, so a retry gets the very same answer. */
static void
user_put_preferences(struct call *c)
{
	json_t	*problems, *prev, *p, *v;
	char	 now[32];
	size_t	 i;

	if (user_find(c) == NULL)
		return;
	problems = json_array();
	for (i = 0; i < nitems(user_pref_flags); i++) {
		v = json_object_get(c->body, user_pref_flags[i]);
		if (v != NULL && !json_is_boolean(v))
			problem(problems, user_pref_flags[i],
			    "must be true or false");
	}
	if (json_array_size(problems) > 0) {
		reply_error(c, 422, problems, "invalid preferences");
		return;
	}
	json_decref(problems);
	prev = json_object_get(user_db.prefs, c->arg);
	if (prev != NULL && json_equal(json_object_get(prev, "preferences"),
	    c->body)) {
		reply(c, 200, json_incref(prev));
		return;
	}
	iso_now(now, sizeof(now));
	p = json_pack("{s:s, s:o, s:s}", "user_id", c->arg,
	    "preferences", json_deep_copy(c->body), "updated_at", now);
	json_object_set_new(user_db.prefs, c->arg, p);
	reply(c, 200, json_incref(p));
}

/* ---- billing service ---------------------------------------------------- */

static struct {
	json_t		*by_id;		/* "bill_1" -> profile */
	json_t		*by_user;	/* user_id -> "bill_1" */
	unsigned	 next_id;
} billing_db;

static const char *const billing_plans[] =
    { "free", "premium", "enterprise", NULL };
static const char *const billing_methods[] =
    { "credit_card", "invoice", NULL };

/* One profile per user: asking again for a user who has one answers it
 * with 200, which is what makes the step safe to retry. */
static void
billing_create(struct call *c)
{
	json_t		*problems = json_array(), *addr, *existing, *p;
	const char	*user_id, *plan, *method;
	char		*id, now[32];

	user_id = field_text(c->body, "user_id", true, problems);
	plan = field_enum(c->body, "plan_type", true, billing_plans, problems);
	method = field_enum(c->body, "payment_method", false,
	    billing_methods, problems);
	addr = json_object_get(c->body, "billing_address");
	if (addr != NULL && !json_is_null(addr) && !json_is_string(addr) &&
	    !json_is_object(addr))
		problem(problems, "billing_address",
		    "must be a string or an object");
	if (json_array_size(problems) > 0) {
		reply_error(c, 422, problems, "invalid billing info");
		return;
	}
	json_decref(problems);
	if (method == NULL && strcmp(plan, "free") != 0) {
		reply_error(c, 402, json_pack("{s:s}", "plan_type", plan),
		    "payment method required for paid plan");
		return;
	}
	if ((existing = json_object_get(billing_db.by_user, user_id)) != NULL) {
		reply(c, 200, json_incref(json_object_get(billing_db.by_id,
		    json_string_value(existing))));
		return;
	}
	xasprintf(&id, "bill_%u", billing_db.next_id++);
	iso_now(now, sizeof(now));
	p = json_pack("{s:s, s:s, s:s, s:s?, s:o?, s:s, s:s}", "id", id,
	    "user_id", user_id, "plan_type", plan, "payment_method", method,
	    "billing_address", addr != NULL ? json_deep_copy(addr) : NULL,
	    "status", "active", "created_at", now);
	json_object_set_new(billing_db.by_id, id, p);
	json_object_set_new(billing_db.by_user, user_id, json_string(id));
	log_debug("billing profile created id=%s user_id=%s", id, user_id);
	reply(c, 201, json_incref(p));
	free(id);
}

/* GET /billing/profiles?user_id=U (all without U). */
static void
billing_list(struct call *c)
{
	const char	*user_id = evhttp_find_header(&c->query, "user_id");
	json_t		*out = json_array(), *p;
	const char	*k;

	json_object_foreach(billing_db.by_id, k, p)
		if (user_id == NULL || strcmp(user_id, json_string_value(
		    json_object_get(p, "user_id"))) == 0)
			json_array_append(out, p);
	reply(c, 200, json_pack("{s:o}", "profiles", out));
}

static void
billing_get(struct call *c)
{
	json_t	*p = json_object_get(billing_db.by_id, c->arg);

	if (p == NULL)
		reply_error(c, 404, json_pack("{s:o}", "id", json_text(c->arg)),
		    "billing profile not found");
	else
		reply(c, 200, json_incref(p));
}

/* ---- notification service ----------------------------------------------- */

struct notification {
	json_t	*json;
	int64_t	 at_ms;		/* monotonic: for the rate window */
};

static struct {
	struct notification	*v;	/* in arrival order */
	size_t			 n, cap;
	unsigned		 next_id;
} notify_db;

static const char *
notify_user(const struct notification *n)
{
	return json_string_value(json_object_get(n->json, "user_id"));
}

/* Seconds until user_id may have another welcome call, 0 if now.  At most
 * opt.rate calls are accepted per window; the newest are at the end. */
static int
notify_retry_after(const char *user_id, int64_t now)
{
	int64_t	window = (int64_t)opt.rate_window_s * 1000;
	size_t	i;
	int	seen = 0;

	for (i = notify_db.n; i > 0; i--) {
		const struct notification *n = &notify_db.v[i - 1];

		if (n->at_ms <= now - window)
			break;
		if (strcmp(notify_user(n), user_id) != 0 || ++seen < opt.rate)
			continue;
		/* The rate-th newest: once it leaves the window, one fits. */
		return (int)((n->at_ms + window - now + 999) / 1000);
	}
	return 0;
}

static void
notify_welcome(struct call *c)
{
	json_t			*problems = json_array();
	const char		*user_id, *email, *plan;
	struct notification	*n;
	int64_t			 now = mono_ms();
	int			 wait;
	char			*id, at[32];

	user_id = field_text(c->body, "user_id", true, problems);
	email = field_str(c->body, "email", true, problems);
	if (email != NULL && !email_ok(email))
		problem(problems, "email",
		    "must be an address like name@example.com");
	plan = field_str(c->body, "plan_type", false, problems);
	if (json_array_size(problems) > 0) {
		reply_error(c, 422, problems, "invalid notification request");
		return;
	}
	json_decref(problems);
	if ((wait = notify_retry_after(user_id, now)) > 0) {
		c->retry_after = wait;
		reply_error(c, 429, json_pack("{s:s, s:i, s:i, s:i}",
		    "user_id", user_id, "limit", opt.rate,
		    "window_s", opt.rate_window_s, "retry_after_s", wait),
		    "rate limited");
		return;
	}
	if (notify_db.n == notify_db.cap) {
		notify_db.cap = notify_db.cap ? notify_db.cap * 2 : 64;
		notify_db.v = xreallocarray(notify_db.v, notify_db.cap,
		    sizeof(*notify_db.v));
	}
	xasprintf(&id, "ntf_%u", notify_db.next_id++);
	iso_now(at, sizeof(at));
	n = &notify_db.v[notify_db.n++];
	n->at_ms = now;
	n->json = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:s}",
	    "id", id, "type", "welcome", "user_id", user_id, "email", email,
	    "plan_type", plan, "status", "queued", "created_at", at);
	log_debug("welcome queued id=%s user_id=%s", id, user_id);
	reply(c, 202, json_incref(n->json));
	free(id);
}

/* GET /notifications?user_id=U (all without U). */
static void
notify_list(struct call *c)
{
	const char	*user_id = evhttp_find_header(&c->query, "user_id");
	json_t		*out = json_array();
	size_t		 i;

	for (i = 0; i < notify_db.n; i++)
		if (user_id == NULL ||
		    strcmp(user_id, notify_user(&notify_db.v[i])) == 0)
			json_array_append(out, notify_db.v[i].json);
	reply(c, 200, json_pack("{s:o}", "notifications", out));
}

static void
notify_get(struct call *c)
{
	size_t	i;

	for (i = 0; i < notify_db.n; i++) {
		json_t *n = notify_db.v[i].json;

		if (strcmp(json_string_value(json_object_get(n, "id")),
		    c->arg) == 0) {
			reply(c, 200, json_incref(n));
			return;
		}
	}
	reply_error(c, 404, json_pack("{s:o}", "id", json_text(c->arg)),
	    "notification not found");
}

/* ---- state -------------------------------------------------------------- */

static void
state_init(void)
{
	size_t	i;

	user_db.by_id = json_object();
	user_db.by_email = json_object();
	user_db.prefs = json_object();
	user_db.next_id = 1;
	billing_db.by_id = json_object();
	billing_db.by_user = json_object();
	billing_db.next_id = 1;
	memset(&notify_db, 0, sizeof(notify_db));
	notify_db.next_id = 1;
	calls = xcalloc(CALLS_MAX, sizeof(*calls));
	calls_next = calls_n = 0;
	for (i = 0; i < SVC_COUNT; i++) {
		services[i].faults = services[i].initial;
		services[i].rng = opt.seed + i * 0x632be59bd9b4e019ULL;
		services[i].idem = json_object();
		services[i].draws = json_object();
	}
}

static void
state_free(void)
{
	size_t	i;

	json_decref(user_db.by_id);
	json_decref(user_db.by_email);
	json_decref(user_db.prefs);
	json_decref(billing_db.by_id);
	json_decref(billing_db.by_user);
	for (i = 0; i < notify_db.n; i++)
		json_decref(notify_db.v[i].json);
	free(notify_db.v);
	calls_clear();
	free(calls);
	for (i = 0; i < SVC_COUNT; i++) {
		json_decref(services[i].idem);
		json_decref(services[i].draws);
	}
}

/* ---- faults and the admin routes ---------------------------------------- */

static json_t *
faults_json(const struct service *svc)
{
	const struct faults	*f = &svc->faults;

	return json_pack("{s:s, s:f, s:i, s:b, s:b, s:i}", "service",
	    svc->name, "failure_rate", f->failure_rate, "latency_ms",
	    f->latency_ms, "outage", f->outage, "blackhole", f->blackhole,
	    "status", f->status);
}

/* Applies the keys present in `in` to *f, all or none: on a problem *f is
 * unchanged and `problems` says why.  Shared by --faults and the API. */
static bool
faults_update(struct faults *f, json_t *in, json_t *problems)
{
	struct faults	 n = *f;
	const char	*k;
	json_t		*v;

	json_object_foreach(in, k, v) {
		if (strcmp(k, "failure_rate") == 0) {
			if (!json_is_number(v) || json_number_value(v) < 0 ||
			    json_number_value(v) > 1)
				problem(problems, k,
				    "must be a number from 0 to 1");
			else
				n.failure_rate = json_number_value(v);
		} else if (strcmp(k, "latency_ms") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > 600000)
				problem(problems, k,
				    "must be an integer from 0 to 600000");
			else
				n.latency_ms = (int)json_integer_value(v);
		} else if (strcmp(k, "outage") == 0) {
			if (json_is_boolean(v))
				n.outage = json_is_true(v);
			else if (json_is_integer(v) &&
			    (json_integer_value(v) == 0 ||
			    json_integer_value(v) == 1))
				n.outage = json_integer_value(v) == 1;
			else
				problem(problems, k, "must be true or false");
		} else if (strcmp(k, "blackhole") == 0) {
			if (json_is_boolean(v))
				n.blackhole = json_is_true(v);
			else
				problem(problems, k, "must be true or false");
		} else if (strcmp(k, "status") == 0) {
			if (!json_is_integer(v) ||
			    json_integer_value(v) < 400 ||
			    json_integer_value(v) > 599)
				problem(problems, k,
				    "must be an HTTP status from 400 to 599");
			else
				n.status = (int)json_integer_value(v);
		} else
			problem(problems, k, "is not a fault setting");
	}
	if (json_array_size(problems) > 0)
		return false;
	*f = n;
	return true;
}

static void
admin_get_faults(struct call *c)
{
	reply(c, 200, faults_json(c->svc));
}

/* POST merges: {"outage": false} leaves failure_rate as it was. */
static void
admin_set_faults(struct call *c)
{
	json_t			*problems = json_array();
	const struct faults	*f = &c->svc->faults;

	if (!faults_update(&c->svc->faults, c->body, problems)) {
		reply_error(c, 422, problems, "invalid faults");
		return;
	}
	json_decref(problems);
	log_info("faults set service=%s failure_rate=%g latency_ms=%d "
	    "outage=%d blackhole=%d status=%d", c->svc->name, f->failure_rate,
	    f->latency_ms, f->outage, f->blackhole, f->status);
	if (!f->blackhole)
		blackhole_release(c->svc);
	reply(c, 200, faults_json(c->svc));
}

static void
admin_clear_faults(struct call *c)
{
	memset(&c->svc->faults, 0, sizeof(c->svc->faults));
	c->svc->faults.status = 503;
	log_info("faults cleared service=%s", c->svc->name);
	blackhole_release(c->svc);
	reply(c, 200, faults_json(c->svc));
}

/* Every service's calls, oldest first; ?service= and ?correlation_id=
 * narrow them. */
static void
admin_get_calls(struct call *c)
{
	const char	*svc = evhttp_find_header(&c->query, "service");
	const char	*cid = evhttp_find_header(&c->query, "correlation_id");
	json_t		*out = json_array();
	size_t		 i, first;

	first = (calls_next + CALLS_MAX - calls_n) % CALLS_MAX;
	for (i = 0; i < calls_n; i++) {
		const struct call_rec *r = &calls[(first + i) % CALLS_MAX];

		if (svc != NULL && strcmp(svc, services[r->svc].name) != 0)
			continue;
		if (cid != NULL && (r->correlation_id == NULL ||
		    strcmp(cid, r->correlation_id) != 0))
			continue;
		json_array_append_new(out, json_pack("{s:s, s:s, s:o, s:i, "
		    "s:o, s:o, s:s}", "service", services[r->svc].name,
		    "method", r->method, "path", json_text(r->path),
		    "status", r->status,
		    "correlation_id", json_text(r->correlation_id),
		    "idempotency_key", json_text(r->idem_key), "at", r->at));
	}
	reply(c, 200, json_pack("{s:o}", "calls", out));
}

static void
admin_clear_calls(struct call *c)
{
	size_t	n = calls_n;

	calls_clear();
	reply(c, 200, json_pack("{s:i}", "cleared", (int)n));
}

/* Back to the start: no data, no calls, no idempotency keys, the faults of
 * the command line, ids from 1 and the random streams from --seed. */
static void
admin_reset(struct call *c)
{
	blackhole_release(NULL);
	state_free();
	state_init();
	log_info("state reset");
	reply(c, 200, json_pack("{s:b}", "reset", 1));
}

/* ---- routing and the life of a call ------------------------------------- */

/* Splits "/a/b" into decoded segments; the count, or -1 if too many. */
static int
path_split(const char *path, char seg[][SEG_LEN], int max)
{
	const char	*p = path, *q;
	char		*dec, raw[SEG_LEN];
	int		 n = 0;

	for (;;) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			return n;
		q = strchrnul(p, '/');
		if (n == max || (size_t)(q - p) >= SEG_LEN)
			return -1;
		memcpy(raw, p, (size_t)(q - p));
		raw[q - p] = '\0';
		dec = evhttp_uridecode(raw, 0, NULL);
		snprintf(seg[n++], SEG_LEN, "%s", dec != NULL ? dec : "");
		free(dec);
		p = q;
	}
}

static bool
route_match(const char *pattern, char seg[][SEG_LEN], int nseg, char *arg)
{
	const char	*p = pattern, *q;
	size_t		 len;
	int		 i;

	for (i = 0;; i++) {
		while (*p == '/')
			p++;
		if (*p == '\0' || i == nseg)
			return *p == '\0' && i == nseg;
		q = strchrnul(p, '/');
		len = (size_t)(q - p);
		if (*p == ':')
			snprintf(arg, SEG_LEN, "%s", seg[i]);
		else if (strlen(seg[i]) != len || memcmp(seg[i], p, len) != 0)
			return false;
		p = q;
	}
}

/* The route for this call, or NULL after answering 404 or 405. */
static const struct route *
route_find(struct call *c)
{
	char	 seg[MAX_SEGS][SEG_LEN], allow[64] = "";
	int	 n = path_split(c->path, seg, MAX_SEGS);
	size_t	 i;

	for (i = 0; n >= 0 && i < nitems(routes); i++) {
		const struct route *r = &routes[i];

		if ((r->on & (1u << c->svc->id)) == 0 ||
		    !route_match(r->pattern, seg, n, c->arg))
			continue;
		if (r->method == c->method)
			return r;
		snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow),
		    "%s%s", allow[0] ? ", " : "", method_name(r->method));
	}
	if (allow[0] != '\0') {
		c->allow = xstrdup(allow);
		reply_error(c, 405, json_pack("{s:s}", "allow", allow),
		    "method not allowed");
	} else
		reply_error(c, 404, json_pack("{s:o}", "path",
		    json_text(c->path)),
		    "not found");
	return NULL;
}

/* Parses the JSON object a route takes; false after answering 400. */
static bool
call_read_body(struct call *c, const struct route *r)
{
	struct evbuffer	*in = evhttp_request_get_input_buffer(c->req);
	size_t		 len = evbuffer_get_length(in);
	const char	*text;
	json_error_t	 err;

	if ((r->flags & R_BODY) == 0)
		return true;
	text = (const char *)evbuffer_pullup(in, -1);
	if (len > 0 && (c->body = json_loadb(text, len,
	    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err)) == NULL) {
		reply_error(c, 400, json_pack("{s:i, s:i, s:s}",
		    "line", err.line, "column", err.column, "text", err.text),
		    "invalid JSON");
		return false;
	}
	if (!json_is_object(c->body)) {
		json_decref(c->body);
		c->body = NULL;
		reply_error(c, 400, NULL, "request body must be a JSON object");
		return false;
	}
	return true;
}

/*
 * A call's failure draw.  The nth call carrying an Idempotency-Key draws
 * from (seed, service, key, n), so which attempts of a step fail depends
 * only on the seed - not on how concurrent tasks interleave - and a test
 * with a fixed seed sees the same failures every run.  Calls without a key
 * draw from the service's stream.
 */
static double
fault_draw(struct call *c)
{
	struct service	*svc = c->svc;
	json_int_t	 n;
	uint64_t	 st;
	const char	*k;

	if (c->idem_key == NULL)
		return rng_uniform(&svc->rng);
	n = json_integer_value(json_object_get(svc->draws, c->idem_key));
	json_object_set_new(svc->draws, c->idem_key, json_integer(n + 1));
	st = opt.seed ^ ((uint64_t)svc->id << 56);
	for (k = c->idem_key; *k != '\0'; k++)
		st = (st ^ (unsigned char)*k) * 0x100000001b3ULL;
	st ^= (uint64_t)n * 0x9e3779b97f4a7c15ULL;
	return rng_uniform(&st);
}

/* Decides the answer (see the top of the file for the order). */
static void
call_handle(struct call *c)
{
	const struct faults	*f = &c->svc->faults;
	const struct route	*r;

	if (!c->admin && f->outage) {
		c->fault = "outage";
		reply_error(c, 503, json_pack("{s:s}", "service",
		    c->svc->name), "service unavailable");
		return;
	}
	if (!c->admin && f->failure_rate > 0 &&
	    fault_draw(c) < f->failure_rate) {
		c->fault = "injected";
		if (f->status == 429)
			c->retry_after = 1;
		reply_error(c, f->status, json_pack("{s:s, s:f}", "service",
		    c->svc->name, "failure_rate", f->failure_rate),
		    "injected failure");
		return;
	}
	if ((r = route_find(c)) == NULL || !call_read_body(c, r))
		return;
	if (!c->admin && idem_replay(c))
		return;
	r->fn(c);
	if (c->reply == NULL)
		fatalx("route gave no answer method=%s path=%s",
		    method_name(c->method), c->path);
	if (!c->admin)
		idem_store(c);
}

static struct call *
call_new(struct service *svc, struct evhttp_request *req)
{
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(req);
	struct evkeyvalq	*in = evhttp_request_get_input_headers(req);
	struct call		*c = xcalloc(1, sizeof(*c));
	const char		*path, *q, *h;

	c->svc = svc;
	c->req = req;
	c->method = evhttp_request_get_command(req);
	clock_gettime(CLOCK_MONOTONIC, &c->start);
	path = evhttp_uri_get_path(uri);
	c->path = xstrdup(path != NULL && *path != '\0' ? path : "/");
	TAILQ_INIT(&c->query);
	if ((q = evhttp_uri_get_query(uri)) != NULL &&
	    evhttp_parse_query_str(q, &c->query) == -1)
		evhttp_clear_headers(&c->query);
	if ((h = evhttp_find_header(in, "X-Correlation-ID")) != NULL &&
	    *h != '\0')
		c->correlation_id = xstrdup(h);
	if ((h = evhttp_find_header(in, "Idempotency-Key")) != NULL &&
	    *h != '\0')
		c->idem_key = xstrdup(h);
	c->admin = strncmp(c->path, "/_admin", 7) == 0 &&
	    (c->path[7] == '\0' || c->path[7] == '/');
	c->gone_ms = -1;
	return c;
}

static void
call_free(struct call *c)
{
	if (c->delay != NULL)
		event_free(c->delay);
	if (c->watch != NULL)
		event_free(c->watch);
	evhttp_clear_headers(&c->query);
	json_decref(c->body);
	free(c->path);
	free(c->correlation_id);
	free(c->idem_key);
	free(c->reply);
	free(c->allow);
	free(c);
}

static void
call_log(const struct call *c)
{
	struct timespec	now;
	char		path[256], cid[160], key[160], gone[40] = "";
	double		ms;

	if (c->gone_ms >= 0)
		snprintf(gone, sizeof(gone), " client_gone_ms=%lld",
		    (long long)c->gone_ms);
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (double)(now.tv_sec - c->start.tv_sec) * 1e3 +
	    (double)(now.tv_nsec - c->start.tv_nsec) / 1e6;
	log_info("request service=%s method=%s path=%s status=%d "
	    "correlation_id=%s idempotency_key=%s duration_ms=%.1f%s%s%s%s",
	    c->svc->name, method_name(c->method),
	    logfmt_value(path, sizeof(path), c->path), c->status,
	    logfmt_value(cid, sizeof(cid), c->correlation_id),
	    logfmt_value(key, sizeof(key), c->idem_key), ms,
	    c->fault != NULL ? " fault=" : "", c->fault != NULL ? c->fault : "",
	    c->replayed ? " replayed=true" : "", gone);
}

/* Sends the decided answer and frees the call.  evhttp owns the request
 * from here; if the client hung up meanwhile, evhttp frees it instead. */
static void
call_finish(struct call *c)
{
	struct evkeyvalq	*out;
	struct evbuffer		*buf = evbuffer_new();
	char			 n[16];

	/* The connection's socket is evhttp's again once we reply. */
	if (c->watch != NULL) {
		event_free(c->watch);
		c->watch = NULL;
	}
	out = evhttp_request_get_output_headers(c->req);
	if (buf == NULL)
		fatal("evbuffer_new");
	evhttp_add_header(out, "Content-Type", "application/json");
	if (c->correlation_id != NULL)
		evhttp_add_header(out, "X-Correlation-ID", c->correlation_id);
	if (c->retry_after > 0) {
		snprintf(n, sizeof(n), "%d", c->retry_after);
		evhttp_add_header(out, "Retry-After", n);
	}
	if (c->replayed)
		evhttp_add_header(out, "Idempotent-Replayed", "true");
	if (c->allow != NULL)
		evhttp_add_header(out, "Allow", c->allow);
	evbuffer_add(buf, c->reply, strlen(c->reply));
	if (!c->admin)
		calls_record(c);
	call_log(c);
	evhttp_send_reply(c->req, c->status, status_reason(c->status), buf);
	evbuffer_free(buf);
	call_free(c);
}

static void
call_delay_cb(evutil_socket_t fd, short events, void *arg)
{
	struct call	*c = arg;

	(void)fd;
	(void)events;
	TAILQ_REMOVE(&delayed, c, entry);
	call_finish(c);
}

/*
 * While a call waits (latency, black hole), notice its client hanging up:
 * evhttp reads nothing more from a connection whose request is being
 * answered, so we peek at the socket ourselves.  The log line then says
 * when the client went, which is when its attempt really ended.
 */
static void
call_watch_cb(evutil_socket_t fd, short events, void *arg)
{
	struct call	*c = arg;
	struct timespec	 now;
	char		 b;
	ssize_t		 n;

	(void)events;
	n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
		event_add(c->watch, NULL);
		return;
	}
	if (n <= 0) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		c->gone_ms = (int64_t)(now.tv_sec - c->start.tv_sec) * 1000 +
		    (now.tv_nsec - c->start.tv_nsec) / 1000000;
	}
	/* Else the client sent more (a pipelined request): stop looking. */
}

static void
call_watch(struct call *c)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(c->req);
	struct bufferevent	*bev;
	evutil_socket_t		 fd;

	if (evcon == NULL ||
	    (bev = evhttp_connection_get_bufferevent(evcon)) == NULL ||
	    (fd = bufferevent_getfd(bev)) == -1)
		return;
	if ((c->watch = event_new(base, fd, EV_READ, call_watch_cb, c)) ==
	    NULL)
		fatalx("event_new failed");
	event_add(c->watch, NULL);
}

/* Answer (503) the calls a black hole holds, of one service or of all. */
static void
blackhole_release(const struct service *svc)
{
	struct call	*c, *next;

	for (c = TAILQ_FIRST(&held); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (svc != NULL && c->svc != svc)
			continue;
		TAILQ_REMOVE(&held, c, entry);
		reply_error(c, 503, json_pack("{s:s}", "service",
		    c->svc->name), "black hole lifted");
		call_finish(c);
	}
}

static void
service_request_cb(struct evhttp_request *req, void *arg)
{
	struct service	*svc = arg;
	struct call	*c = call_new(svc, req);
	int		 ms = svc->faults.latency_ms;
	struct timeval	 tv;

	if (!c->admin && svc->faults.blackhole) {
		char	path[256], cid[160], key[160];

		c->fault = "blackhole";
		log_info("request held by a black hole service=%s method=%s "
		    "path=%s correlation_id=%s idempotency_key=%s",
		    svc->name, method_name(c->method),
		    logfmt_value(path, sizeof(path), c->path),
		    logfmt_value(cid, sizeof(cid), c->correlation_id),
		    logfmt_value(key, sizeof(key), c->idem_key));
		TAILQ_INSERT_TAIL(&held, c, entry);
		call_watch(c);
		return;
	}
	call_handle(c);
	if (c->admin || ms == 0) {
		call_finish(c);
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if ((c->delay = evtimer_new(base, call_delay_cb, c)) == NULL)
		fatalx("evtimer_new failed");
	TAILQ_INSERT_TAIL(&delayed, c, entry);
	evtimer_add(c->delay, &tv);
	call_watch(c);
}

/* ---- process ------------------------------------------------------------ */

static void
service_listen(struct service *svc)
{
	struct evhttp_bound_socket	*bs;
	struct sockaddr_in		 sin;
	socklen_t			 len = sizeof(sin);

	if ((svc->http = evhttp_new(base)) == NULL)
		fatalx("evhttp_new failed");
	evhttp_set_allowed_methods(svc->http, EVHTTP_REQ_GET |
	    EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH |
	    EVHTTP_REQ_DELETE);
	evhttp_set_max_body_size(svc->http, MAX_BODY);
	evhttp_set_gencb(svc->http, service_request_cb, svc);
	bs = evhttp_bind_socket_with_handle(svc->http, "127.0.0.1",
	    (ev_uint16_t)svc->port);
	if (bs == NULL)
		fatal("cannot listen service=%s port=%d", svc->name,
		    svc->port);
	if (getsockname(evhttp_bound_socket_get_fd(bs),
	    (struct sockaddr *)&sin, &len) == -1)
		fatal("getsockname service=%s", svc->name);
	svc->port = ntohs(sin.sin_port);
}

/* Written whole, then renamed: a reader never sees half of it. */
static void
port_file_write(const char *path)
{
	char	*tmp;
	FILE	*f;
	size_t	 i;

	xasprintf(&tmp, "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		fatal("cannot write port file path=%s", tmp);
	for (i = 0; i < SVC_COUNT; i++)
		fprintf(f, "%s=%d\n", services[i].name, services[i].port);
	if (fclose(f) != 0 || rename(tmp, path) == -1)
		fatal("cannot write port file path=%s", path);
	free(tmp);
}

static struct service *
service_by_name(const char *name, size_t len)
{
	size_t	i;

	for (i = 0; i < SVC_COUNT; i++)
		if (strlen(services[i].name) == len &&
		    strncmp(services[i].name, name, len) == 0)
			return &services[i];
	return NULL;
}

/* A command-line value as the JSON the admin API would have had. */
static json_t *
cli_value(const char *s)
{
	char		*end;
	long long	 ll;
	double		 d;

	if (strcmp(s, "true") == 0 || strcmp(s, "on") == 0)
		return json_true();
	if (strcmp(s, "false") == 0 || strcmp(s, "off") == 0)
		return json_false();
	errno = 0;
	ll = strtoll(s, &end, 10);
	if (*s != '\0' && *end == '\0' && errno == 0)
		return json_integer(ll);
	d = strtod(s, &end);
	if (*s != '\0' && *end == '\0')
		return json_real(d);
	return json_string(s);
}

/* --faults SERVICE:key=value,key=value */
static void
faults_option(const char *arg)
{
	const char	*colon = strchr(arg, ':');
	struct service	*svc;
	json_t		*in, *problems;
	char		*copy, *p, *kv, *eq, *s;

	if (colon == NULL ||
	    (svc = service_by_name(arg, (size_t)(colon - arg))) == NULL)
		fatalx("--faults wants user|billing|notification:key=value,... "
		    "value=%s", arg);
	in = json_object();
	p = copy = xstrdup(colon + 1);
	while ((kv = strsep(&p, ",")) != NULL) {
		if (*kv == '\0')
			continue;
		if ((eq = strchr(kv, '=')) == NULL)
			fatalx("--faults: no value for %s", kv);
		*eq = '\0';
		json_object_set_new(in, kv, cli_value(eq + 1));
	}
	problems = json_array();
	if (!faults_update(&svc->initial, in, problems)) {
		s = json_dumps(problems, JSON_COMPACT);
		fatalx("bad --faults value=%s problems=%s", arg, s);
	}
	json_decref(problems);
	json_decref(in);
	free(copy);
}

static long long
number_option(const char *name, const char *s, long long min, long long max)
{
	char		*end;
	long long	 v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		fatalx("--%s wants an integer from %lld to %lld value=%s",
		    name, min, max, s);
	return v;
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: mock-services [--user-port N] "
	    "[--billing-port N] [--notification-port N]\n"
	    "\t[--port-file FILE] [--faults SERVICE:key=value,...] "
	    "[--seed N]\n"
	    "\t[--rate N] [--rate-window SECONDS] [--log-level LEVEL]\n"
	    "Ports default to 3001, 3002, 3003; 0 picks a free one.\n"
	    "Fault keys: failure_rate, latency_ms, outage, blackhole, status.\n");
	exit(2);
}

static void
signal_cb(evutil_socket_t sig, short events, void *arg)
{
	(void)events;
	(void)arg;
	log_info("stopping signal=%d", (int)sig);
	event_base_loopbreak(base);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "user-port",		required_argument, NULL, 'u' },
		{ "billing-port",	required_argument, NULL, 'b' },
		{ "notification-port",	required_argument, NULL, 'n' },
		{ "port-file",		required_argument, NULL, 'p' },
		{ "faults",		required_argument, NULL, 'f' },
		{ "seed",		required_argument, NULL, 's' },
		{ "rate",		required_argument, NULL, 'r' },
		{ "rate-window",	required_argument, NULL, 'w' },
		{ "log-level",		required_argument, NULL, 'l' },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL,			0,		   NULL, 0 }
	};
	struct event	*sigterm, *sigint;
	enum log_level	 level;
	bool		 seeded = false;
	struct call	*c;
	int		 ch;
	size_t		 i;

	log_init("mock-services", LOG_LVL_INFO);
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'u':
			services[SVC_USER].port = (int)number_option(
			    "user-port", optarg, 0, 65535);
			break;
		case 'b':
			services[SVC_BILLING].port = (int)number_option(
			    "billing-port", optarg, 0, 65535);
			break;
		case 'n':
			services[SVC_NOTIFY].port = (int)number_option(
			    "notification-port", optarg, 0, 65535);
			break;
		case 'p':
			opt.port_file = optarg;
			break;
		case 'f':
			faults_option(optarg);
			break;
		case 's':
			opt.seed = (uint64_t)number_option("seed", optarg, 0,
			    INT64_MAX);
			seeded = true;
			break;
		case 'r':
			opt.rate = (int)number_option("rate", optarg, 1,
			    1000000);
			break;
		case 'w':
			opt.rate_window_s = (int)number_option("rate-window",
			    optarg, 1, 86400);
			break;
		case 'l':
			if (log_parse_level(optarg, &level) == -1)
				fatalx("unknown log level value=%s", optarg);
			log_setlevel(level);
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (!seeded)
		opt.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

	/* A client that hangs up must not kill us mid-write. */
	signal(SIGPIPE, SIG_IGN);
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	state_init();
	for (i = 0; i < SVC_COUNT; i++)
		service_listen(&services[i]);
	if (opt.port_file != NULL)
		port_file_write(opt.port_file);
	sigterm = evsignal_new(base, SIGTERM, signal_cb, NULL);
	sigint = evsignal_new(base, SIGINT, signal_cb, NULL);
	if (sigterm == NULL || sigint == NULL)
		fatalx("evsignal_new failed");
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	log_info("listening user=%d billing=%d notification=%d seed=%llu "
	    "rate=%d rate_window_s=%d", services[SVC_USER].port,
	    services[SVC_BILLING].port, services[SVC_NOTIFY].port,
	    (unsigned long long)opt.seed, opt.rate, opt.rate_window_s);

	event_base_dispatch(base);

	/* Answers still waiting on a latency fault or a black hole go out
	 * now; evhttp_free then closes every connection and frees its
	 * requests. */
	blackhole_release(NULL);
	while ((c = TAILQ_FIRST(&delayed)) != NULL) {
		TAILQ_REMOVE(&delayed, c, entry);
		call_finish(c);
	}
	for (i = 0; i < SVC_COUNT; i++)
		evhttp_free(services[i].http);
	event_free(sigterm);
	event_free(sigint);
	state_free();
	event_base_free(base);
	libevent_global_shutdown();
	return 0;
}
