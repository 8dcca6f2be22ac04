/*
 * metrics.c - the supervisor's metrics, rendered as Prometheus text.
 *
 * Families are a static table; each holds its series in a small array
 * searched linearly: label values are template, step, service, route or
 * status names, so the number of series is bounded by the configuration,
 * never by traffic.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "log.h"
#include "xmalloc.h"

#define MAX_LABELS	3

enum metric_kind { COUNTER, GAUGE, HISTOGRAM };

/* Seconds; chosen for steps and API calls from a millisecond to a minute. */
static const double buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
#define NBUCKETS	(sizeof(buckets) / sizeof(buckets[0]))

struct series {
	char		*labels[MAX_LABELS];
	double		 value;		/* counter, gauge; histogram sum */
	unsigned long	 count;		/* histogram */
	unsigned long	 bucket[NBUCKETS];
};

struct family {
	const char	*name;
	const char	*help;
	enum metric_kind kind;
	const char	*label[MAX_LABELS];	/* NULL: unused */
	struct series	*s;
	size_t		 n;
};

/* Step families: by template, whose name is unique within its namespace. */
#define STEP_LABELS	{ "namespace", "template", "step" }

static struct family families[M_NMETRICS] = {
	[M_STEPS_STARTED] = { "taskerd_steps_started_total",
	    "Step attempts started.", COUNTER, STEP_LABELS },
	[M_STEPS_COMPLETED] = { "taskerd_steps_completed_total",
	    "Step attempts that succeeded.", COUNTER, STEP_LABELS },
	[M_STEPS_FAILED] = { "taskerd_steps_failed_total",
	    "Steps that ended in error.", COUNTER, STEP_LABELS },
	[M_STEPS_RETRIED] = { "taskerd_steps_retried_total",
	    "Failed attempts that will be retried.", COUNTER, STEP_LABELS },
	[M_STEPS_TIMED_OUT] = { "taskerd_steps_timed_out_total",
	    "Attempts stopped at their timeout.", COUNTER, STEP_LABELS },
	[M_STEP_DURATION] = { "taskerd_step_duration_seconds",
	    "Duration of step attempts.", HISTOGRAM, STEP_LABELS },
	[M_WORKER_RESTARTS] = { "taskerd_worker_restarts_total",
	    "Worker processes started again after one ended.", COUNTER,
	    { NULL } },
	[M_WORKER_DEATHS] = { "taskerd_worker_deaths_total",
	    "Worker processes that ended, by signal or exit status.", COUNTER,
	    { "reason" } },
	[M_BREAKER_STATE] = { "taskerd_service_breaker_state",
	    "Circuit breaker: 0 closed, 1 open, 2 half-open.", GAUGE,
	    { "service" } },
	[M_SERVICE_INFLIGHT] = { "taskerd_service_inflight",
	    "Calls in flight to the service.", GAUGE, { "service" } },
	[M_API_REQUESTS] = { "taskerd_api_requests_total",
	    "HTTP API requests answered.", COUNTER, { "route", "status" } },
	[M_API_DURATION] = { "taskerd_api_request_duration_seconds",
	    "HTTP API latency, from routing to the answer.", HISTOGRAM,
	    { "route" } },
	[M_DB_ROUNDTRIP] = { "taskerd_db_roundtrip_seconds",
	    "Database jobs, from sending to the last result.", HISTOGRAM,
	    { NULL } },
	[M_SCHED_QUEUED] = { "taskerd_scheduler_queue_depth",
	    "Claimed steps waiting for a worker.", GAUGE, { NULL } },
	[M_SCHED_INFLIGHT] = { "taskerd_scheduler_inflight",
	    "Steps running on workers.", GAUGE, { NULL } },
	[M_SCHED_UNWRITTEN] = { "taskerd_scheduler_outcomes_unwritten",
	    "Step outcomes this node holds, not yet written to the "
	    "database (its trouble, or a task locked elsewhere).", GAUGE,
	    { NULL } },
	[M_WORKERS_UP] = { "taskerd_workers_up",
	    "Workers that completed their handshake.", GAUGE, { NULL } },
	[M_TASKS] = { "taskerd_tasks", "Tasks in the database by state.",
	    GAUGE, { "state" } },
};

static struct series *
series_get(struct family *f, const char *l0, const char *l1,
    const char *l2)
{
	const char	*want[MAX_LABELS] = { l0 ? l0 : "", l1 ? l1 : "",
			    l2 ? l2 : "" };
	struct series	*s;
	size_t		 i;
	int		 k;

	for (i = 0; i < f->n; i++) {
		for (k = 0; k < MAX_LABELS; k++)
			if (f->label[k] != NULL &&
			    strcmp(f->s[i].labels[k], want[k]) != 0)
				break;
		if (k == MAX_LABELS)
			return &f->s[i];
	}
	f->s = xreallocarray(f->s, f->n + 1, sizeof(*f->s));
	s = &f->s[f->n++];
	memset(s, 0, sizeof(*s));
	for (k = 0; k < MAX_LABELS; k++)
		s->labels[k] = xstrdup(f->label[k] != NULL ? want[k] : "");
	return s;
}

void
metrics_inc(enum metric_id id, double v, const char *l0, const char *l1,
    const char *l2)
{
	series_get(&families[id], l0, l1, l2)->value += v;
}

void
metrics_set(enum metric_id id, double v, const char *l0, const char *l1,
    const char *l2)
{
	series_get(&families[id], l0, l1, l2)->value = v;
}

void
metrics_observe(enum metric_id id, double v, const char *l0, const char *l1,
    const char *l2)
{
	struct series	*s = series_get(&families[id], l0, l1, l2);
	size_t		 i;

	s->value += v;
	s->count++;
	for (i = 0; i < NBUCKETS; i++)
		if (v <= buckets[i])
			s->bucket[i]++;
}

static void
series_free(struct family *f)
{
	size_t	i;
	int	k;

	for (i = 0; i < f->n; i++)
		for (k = 0; k < MAX_LABELS; k++)
			free(f->s[i].labels[k]);
	free(f->s);
	f->s = NULL;
	f->n = 0;
}

void
metrics_clear(enum metric_id id)
{
	series_free(&families[id]);
}

/* Label values escaped as the text format wants: \\, \" and \n. */
static void
put_labels(struct evbuffer *b, const struct family *f,
    const struct series *s, const char *le)
{
	const char	*c;
	int		 k, first = 1;

	if (f->label[0] == NULL && le == NULL)
		return;
	evbuffer_add(b, "{", 1);
	for (k = 0; k < MAX_LABELS && f->label[k] != NULL; k++) {
		evbuffer_add_printf(b, "%s%s=\"", first ? "" : ",",
		    f->label[k]);
		for (c = s->labels[k]; *c != '\0'; c++) {
			if (*c == '\\' || *c == '"')
				evbuffer_add_printf(b, "\\%c", *c);
			else if (*c == '\n')
				evbuffer_add(b, "\\n", 2);
			else
				evbuffer_add(b, c, 1);
		}
		evbuffer_add(b, "\"", 1);
		first = 0;
	}
	if (le != NULL)
		evbuffer_add_printf(b, "%sle=\"%s\"", first ? "" : ",", le);
	evbuffer_add(b, "}", 1);
}

void
metrics_render(struct evbuffer *b)
{
	static const char *const kinds[] = { "counter", "gauge", "histogram" };
	const struct family	*f;
	const struct series	*s;
	char			 le[32];
	size_t			 i, j;
	int			 id;

	for (id = 0; id < M_NMETRICS; id++) {
		f = &families[id];
		evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name,
		    f->help, f->name, kinds[f->kind]);
		for (i = 0; i < f->n; i++) {
			s = &f->s[i];
			if (f->kind != HISTOGRAM) {
				evbuffer_add_printf(b, "%s", f->name);
				put_labels(b, f, s, NULL);
				/* Counts exactly, however large (%g would
				 * round past ten digits). */
				if (s->value == floor(s->value) &&
				    fabs(s->value) < 9007199254740992.0)
					evbuffer_add_printf(b, " %.0f\n",
					    s->value);
				else
					evbuffer_add_printf(b, " %.10g\n",
					    s->value);
				continue;
			}
			for (j = 0; j < NBUCKETS; j++) {
				snprintf(le, sizeof(le), "%g", buckets[j]);
				evbuffer_add_printf(b, "%s_bucket", f->name);
				put_labels(b, f, s, le);
				evbuffer_add_printf(b, " %lu\n", s->bucket[j]);
			}
			evbuffer_add_printf(b, "%s_bucket", f->name);
			put_labels(b, f, s, "+Inf");
			evbuffer_add_printf(b, " %lu\n", s->count);
			evbuffer_add_printf(b, "%s_sum", f->name);
			put_labels(b, f, s, NULL);
			evbuffer_add_printf(b, " %.10g\n", s->value);
			evbuffer_add_printf(b, "%s_count", f->name);
			put_labels(b, f, s, NULL);
			evbuffer_add_printf(b, " %lu\n", s->count);
		}
	}
}

void
metrics_free(void)
{
	int	id;

	for (id = 0; id < M_NMETRICS; id++)
		series_free(&families[id]);
}
