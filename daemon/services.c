/*
 * services.c - concurrency limits and circuit breakers per service.
 *
 * Breaker states (one transition function, breaker_set):
 *   CLOSED     calls flow; consecutive failures are counted
 *   OPEN       no calls: the service's steps wait in the database without
 *              spending attempts until the cooldown ends
 *   HALF_OPEN  one probe call decides: success closes, failure reopens
 * A failure here is what says the service is unwell - a 5xx, a timeout, a
 * refused connection - not a 4xx, which is the caller's problem and proves
 * the service answers.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "services.h"
#include "metrics.h"
#include "sched.h"
#include "supervisor.h"
#include "log.h"
#include "xmalloc.h"

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

static const char *const breaker_names[] = { "closed", "open", "half_open" };

struct service {
	char			*name;
	const struct service_config *conf;	/* NULL: not configured */
	enum breaker_state	 state;
	int			 inflight;
	int			 consecutive_failures;
	bool			 probing;	/* the half-open probe is out */
	time_t			 opened_at;
	time_t			 reopens_at;
	struct event		*cooldown;
	long long		 calls, failures, opened;
};

static struct {
	struct service	*s;
	size_t		 n;
} svc;

static struct service *
service_find(const char *name)
{
	size_t	i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < svc.n; i++)
		if (strcmp(svc.s[i].name, name) == 0)
			return &svc.s[i];
	return NULL;
}

static void
breaker_cooldown_cb(evutil_socket_t fd, short what, void *arg);

static struct service *
service_add(const char *name)
{
	struct service	*s;

	if ((s = service_find(name)) != NULL)
		return s;
	svc.s = xreallocarray(svc.s, svc.n + 1, sizeof(*svc.s));
	s = &svc.s[svc.n++];
	memset(s, 0, sizeof(*s));
	s->name = xstrdup(name);
	s->conf = config_service(sv.conf, name);
	return s;
}

static void
breaker_set(struct service *s, enum breaker_state to)
{
	struct timeval	tv;

	if (s->state == to)
		return;
	switch (to) {
	case BREAKER_OPEN:
		s->opened_at = time(NULL);
		s->reopens_at = s->opened_at +
		    (time_t)((s->conf->breaker_cooldown_ms + 999) / 1000);
		s->opened++;
		tv.tv_sec = s->conf->breaker_cooldown_ms / 1000;
		tv.tv_usec = (s->conf->breaker_cooldown_ms % 1000) * 1000;
		evtimer_add(s->cooldown, &tv);
		log_warnx("circuit opened service=%s consecutive_failures=%d "
		    "cooldown_ms=%lld", log_quote(s->name),
		    s->consecutive_failures,
		    (long long)s->conf->breaker_cooldown_ms);
		break;
	case BREAKER_HALF_OPEN:
		log_info("circuit half-open, probing service=%s",
		    log_quote(s->name));
		s->probing = false;
		break;
	case BREAKER_CLOSED:
		log_info("circuit closed service=%s", log_quote(s->name));
		s->consecutive_failures = 0;
		break;
	default:
		fatalx("breaker_set: bad state %d", (int)to);
	}
	s->state = to;
}

static void
breaker_cooldown_cb(evutil_socket_t fd, short what, void *arg)
{
	breaker_set(arg, BREAKER_HALF_OPEN);
	sched_kick();
}

void
services_init(void)
{
	size_t	 i, j;

	for (i = 0; i < sv.conf->nservices; i++)
		service_add(sv.conf->services[i].name);
	/* Services templates name without configuring them are listed too. */
	for (i = 0; i < sv.templates->n; i++)
		for (j = 0; j < sv.templates->items[i]->nsteps; j++)
			if (sv.templates->items[i]->steps[j].dependent_system)
				service_add(sv.templates->items[i]->steps[j].
				    dependent_system);
	for (i = 0; i < svc.n; i++)
		svc.s[i].cooldown = evtimer_new(sv.base, breaker_cooldown_cb,
		    &svc.s[i]);
}

void
services_shutdown(void)
{
	size_t	i;

	for (i = 0; i < svc.n; i++) {
		event_free(svc.s[i].cooldown);
		free(svc.s[i].name);
	}
	free(svc.s);
	memset(&svc, 0, sizeof(svc));
}

static bool
service_blocked(const struct service *s)
{
	if (s->state == BREAKER_OPEN)
		return true;
	if (s->state == BREAKER_HALF_OPEN && (s->probing || s->inflight > 0))
		return true;
	return s->conf != NULL && s->conf->concurrency > 0 &&
	    s->inflight >= s->conf->concurrency;
}

bool
services_may_dispatch(const char *name)
{
	struct service	*s = service_find(name);

	return s == NULL || !service_blocked(s);
}

int
services_room(const char *name)
{
	struct service	*s = service_find(name);

	if (s == NULL)
		return INT_MAX;
	if (service_blocked(s))
		return 0;
	if (s->state == BREAKER_HALF_OPEN)
		return 1;		/* the probe */
	if (s->conf != NULL && s->conf->concurrency > 0)
		return s->conf->concurrency - s->inflight;
	return INT_MAX;
}

bool
services_open(const char *name)
{
	struct service	*s = service_find(name);

	return s != NULL && s->state == BREAKER_OPEN;
}

void
services_started(const char *name)
{
	struct service	*s = service_find(name);

	if (s == NULL)
		return;
	s->inflight++;
	s->calls++;
	if (s->state == BREAKER_HALF_OPEN)
		s->probing = true;
}

enum verdict { SERVICE_UP, SERVICE_DOWN, SERVICE_UNKNOWN };

/*
 * What an outcome says of the service.  An answer below 500 (or success)
 * says it is up; a 5xx, a transport failure or a deadline, down.  A step
 * that failed without a status for reasons of its own or of taskerd's (its
 * config, its input, its worker died, the node lost its lease or the
 * claim) may never have reached it: that says nothing, and must neither
 * open a breaker nor close one.
 */
static enum verdict
service_verdict(const struct proto_step_outcome *o)
{
	static const char *const ours[] = { "worker_died",
	    "worker_unresponsive", "worker_thread", "node_lease_lapsed",
	    "node_lost", "node_restarted", "claim_lost", NULL };
	int	i;

	if (o->outcome == OUTCOME_SUCCESS || (o->http_status > 0 &&
	    o->http_status < 500))
		return SERVICE_UP;
	if (o->http_status >= 500)
		return o->outcome == OUTCOME_RETRYABLE ? SERVICE_DOWN :
		    SERVICE_UP;		/* (a 5xx its template calls final) */
	if (o->error_code == NULL)
		return SERVICE_UNKNOWN;
	/* A deadline is the service's slowness whatever the step's kind: the
	 * one a worker is stopped at is recorded as permanent for a step that
	 * must not run twice. */
	if (strcmp(o->error_code, "timeout") == 0)
		return SERVICE_DOWN;
	if (o->outcome != OUTCOME_RETRYABLE)
		return SERVICE_UNKNOWN;
	for (i = 0; ours[i] != NULL; i++)
		if (strcmp(o->error_code, ours[i]) == 0)
			return SERVICE_UNKNOWN;
	return SERVICE_DOWN;
}

bool
services_finished(const char *name, const struct proto_step_outcome *o,
    int64_t *wait_ms)
{
	struct service	*s = service_find(name);
	enum verdict	 v;
	bool		 failed, probe, blocked;
	int		 threshold;

	*wait_ms = 0;
	if (s == NULL)
		return false;
	/* Claims skip a blocked service's steps: once it has room again,
	 * the next claim must look for them (not the slow backstop). */
	blocked = service_blocked(s);
	if (s->inflight > 0)
		s->inflight--;
	v = service_verdict(o);
	failed = v == SERVICE_DOWN;
	if (failed)
		s->failures++;
	threshold = s->conf != NULL ? s->conf->breaker_failures : 0;
	probe = threshold > 0 && s->state == BREAKER_HALF_OPEN && s->probing;
	if (threshold > 0 && v == SERVICE_UNKNOWN) {
		/* A probe that told nothing: the next step probes. */
		if (probe)
			s->probing = false;
	} else if (threshold > 0 && !failed) {
		s->consecutive_failures = 0;
		if (s->state == BREAKER_HALF_OPEN)
			breaker_set(s, BREAKER_CLOSED);
	} else if (threshold > 0) {
		s->consecutive_failures++;
		if (s->state == BREAKER_HALF_OPEN ||
		    (s->state == BREAKER_CLOSED &&
		    s->consecutive_failures >= threshold))
			breaker_set(s, BREAKER_OPEN);
	}
	if (blocked && !service_blocked(s))
		sched_want();
	/* A failed probe asked on the step's behalf whether the service is
	 * back; its "no" is the breaker's, not the step's.  Its step sits
	 * out the next half-open: a step the service always fails (a bad
	 * record, answered 500) would otherwise be the probe at each one, as
	 * the oldest retry, for ever, and no other step would show that the
	 * service is back. */
	if (probe && failed)
		*wait_ms = 2 * s->conf->breaker_cooldown_ms;
	return probe && failed;
}

static bool
service_breaking(const struct service *s)
{
	return s->state != BREAKER_CLOSED;
}

/* The services pred holds for, as a PostgreSQL text[] literal. */
static char *
services_array(bool (*pred)(const struct service *))
{
	char	*out, *p;
	size_t	 i, len = 3;

	for (i = 0; i < svc.n; i++)
		if (pred(&svc.s[i]))
			len += strlen(svc.s[i].name) * 2 + 4;
	out = p = xmalloc(len);
	*p++ = '{';
	for (i = 0; i < svc.n; i++) {
		const char *c;

		if (!pred(&svc.s[i]))
			continue;
		if (p != out + 1)
			*p++ = ',';
		/* Quoted array element: names are config keys, but be
		 * exact about quotes and backslashes anyway. */
		*p++ = '"';
		for (c = svc.s[i].name; *c != '\0'; c++) {
			if (*c == '"' || *c == '\\')
				*p++ = '\\';
			*p++ = *c;
		}
		*p++ = '"';
	}
	*p++ = '}';
	*p = '\0';
	return out;
}

char *
services_blocked(void)
{
	return services_array(service_blocked);
}

char *
services_breaking(void)
{
	return services_array(service_breaking);
}

json_t *
services_input(const char *name)
{
	const struct service_config *c;
	json_t		*o;

	if (name == NULL)
		return NULL;
	o = json_pack("{s:s}", "name", name);
	if ((c = config_service(sv.conf, name)) != NULL) {
		if (c->base_url != NULL)
			json_object_set_new(o, "base_url",
			    json_string(c->base_url));
		if (c->timeout_ms > 0)
			json_object_set_new(o, "timeout_ms",
			    json_integer(c->timeout_ms));
	}
	return o;
}

json_t *
services_json(void)
{
	json_t			*arr = json_array(), *o;
	const struct service	*s;
	size_t			 i;

	for (i = 0; i < svc.n; i++) {
		s = &svc.s[i];
		o = json_pack("{s:s, s:s?, s:s, s:i, s:i, s:i, s:I, s:I, s:I}",
		    "name", s->name,
		    "base_url", s->conf ? s->conf->base_url : NULL,
		    "breaker", breaker_names[s->state],
		    "inflight", s->inflight,
		    "concurrency", s->conf ? s->conf->concurrency : 0,
		    "consecutive_failures", s->consecutive_failures,
		    "calls", (json_int_t)s->calls,
		    "failures", (json_int_t)s->failures,
		    "times_opened", (json_int_t)s->opened);
		if (s->state == BREAKER_OPEN)
			json_object_set_new(o, "reopens_in_s", json_integer(
			    s->reopens_at > time(NULL) ?
			    s->reopens_at - time(NULL) : 0));
		json_array_append_new(arr, o);
	}
	return json_pack("{s:o}", "services", arr);
}

void
services_metrics(void)
{
	size_t	i;

	for (i = 0; i < svc.n; i++) {
		metrics_set(M_BREAKER_STATE, svc.s[i].state, svc.s[i].name,
		    NULL, NULL);
		metrics_set(M_SERVICE_INFLIGHT, svc.s[i].inflight,
		    svc.s[i].name, NULL, NULL);
	}
}
