/*
 * taskerd_plugin.h - a step handler written in C, as a shared object.
 *
 * A template's step names the object and the function:
 *
 *     - name: charge_card
 *       handler: plugin                 # or Tasker's handler_class: NAME
 *       handler_config:
 *         library: ./lib/libacme.so     # relative: the template's directory
 *         symbol: acme_charge_card      # default: the handler_class
 *         currency: EUR                 # the rest is the plugin's own
 *
 * and the object defines
 *
 *     int acme_charge_card(struct taskerd_step *step);
 *
 * A worker loads the object the first time one of its steps needs it
 * (dlopen, RTLD_NOW | RTLD_LOCAL) and keeps it loaded.  It calls the
 * function in its handler thread, one step at a time: the function may
 * block, and needs no locking against itself within one worker (several
 * workers are several processes).  A plugin that crashes takes down its
 * worker, never taskerd: the attempt then fails as retryable
 * (worker_died), as for any handler.  The step's timeout is enforced by
 * stopping the worker.  A process the function starts must be waited for
 * before it returns: the worker is a child subreaper and kills whatever
 * children it has after each exec step and when it exits, so a helper left
 * running outlives its step only by chance.
 *
 * The function answers:
 *   TASKERD_STEP_OK      success; step->results, if set, is the results
 *   TASKERD_STEP_RETRY   a retryable failure (75, like exec's EX_TEMPFAIL)
 *   anything else        a permanent failure
 * and may set step->error to say why.  results and error are malloc()ed
 * by the plugin and freed by the worker.
 */
#ifndef TASKERD_PLUGIN_H
#define TASKERD_PLUGIN_H

#define TASKERD_PLUGIN_API	1	/* step->api: this header's version */
#define TASKERD_STEP_OK		0
#define TASKERD_STEP_RETRY	75

struct taskerd_step {
	int		 api;		/* TASKERD_PLUGIN_API */
	/* {"context": ..., "steps": {"NAME": {"results": ...}},
	 *  "attempt": N}, as JSON text */
	const char	*input;
	const char	*config;	/* the step's handler_config, as JSON */
	long long	 task_id;
	const char	*step_name;
	unsigned int	 attempt;	/* 1 for the first */
	const char	*idempotency_key;	/* "<task_id>:<step_name>" */
	const char	*correlation_id;

	/* Set by the function, or left NULL. */
	char		*results;	/* JSON text; NULL is {} */
	char		*error;		/* a failure's message */
};

typedef int taskerd_step_fn(struct taskerd_step *);

#endif
