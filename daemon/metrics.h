/*
 * metrics.h - counters, gauges and histograms for GET /metrics, in the
 * Prometheus text format.  Every family is declared once, in metrics.c;
 * callers name it by id and give its label values in order.
 */
#ifndef TASKERD_METRICS_H
#define TASKERD_METRICS_H

#include <event2/buffer.h>

enum metric_id {
	M_STEPS_STARTED,	/* counter {namespace, template, step} */
	M_STEPS_COMPLETED,	/* counter {namespace, template, step} */
	M_STEPS_FAILED,		/* counter {namespace, template, step}: in error */
	M_STEPS_RETRIED,	/* counter {namespace, template, step} */
	M_STEPS_TIMED_OUT,	/* counter {namespace, template, step} */
	M_STEP_DURATION,	/* histogram {namespace, template, step}, seconds */
	M_WORKER_RESTARTS,	/* counter {} */
	M_WORKER_DEATHS,	/* counter {reason}: SIGKILL, exit_2, ... */
	M_BREAKER_STATE,	/* gauge {service}: 0 closed, 1 open, 2 half */
	M_SERVICE_INFLIGHT,	/* gauge {service} */
	M_API_REQUESTS,		/* counter {route, status} */
	M_API_DURATION,		/* histogram {route}, seconds */
	M_DB_ROUNDTRIP,		/* histogram {}, seconds per job */
	M_SCHED_QUEUED,		/* gauge {}: claimed, waiting for a worker */
	M_SCHED_INFLIGHT,	/* gauge {}: claims on workers */
	M_SCHED_UNWRITTEN,	/* gauge {}: outcomes not yet written */
	M_WORKERS_UP,		/* gauge {} */
	M_TASKS,		/* gauge {state}: rows, read at scrape time */
	M_NMETRICS
};

/* Label values in the family's order; missing trailing ones are "". */
void	metrics_inc(enum metric_id, double, const char *, const char *,
	    const char *);
void	metrics_set(enum metric_id, double, const char *, const char *,
	    const char *);
void	metrics_observe(enum metric_id, double, const char *, const char *,
	    const char *);
/* Drop a gauge family's series (before setting them afresh). */
void	metrics_clear(enum metric_id);
void	metrics_render(struct evbuffer *);
void	metrics_free(void);

#endif
