/*
 * handlers.c - the handler table and the outcome helpers.
 *
 * The table is the whole list of what a worker can run: adding a handler is
 * one extern in handler.h and one row here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"
#include "log.h"
#include "xmalloc.h"

static const struct handler *const handlers[] = {
	&handler_noop,
	&handler_http,
	&handler_exec,
	&handler_plugin,
};

#define HANDLERS_COUNT	(sizeof(handlers) / sizeof(handlers[0]))

const struct handler *
handler_find(const char *name)
{
	size_t	i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < HANDLERS_COUNT; i++) {
		if (strcmp(handlers[i]->name, name) == 0)
			return handlers[i];
	}
	return NULL;
}

int
handlers_init(void)
{
	size_t	i;

	for (i = 0; i < HANDLERS_COUNT; i++) {
		if (handlers[i]->init != NULL && handlers[i]->init() == -1) {
			log_warnx("handler init failed handler=%s",
			    handlers[i]->name);
			return -1;
		}
	}
	return 0;
}

/* Drop whatever an earlier helper call put there, so a handler may change
 * its mind (e.g. succeed, then fail on extracting results). */
static void
outcome_reset(struct proto_step_outcome *o)
{
	json_decref(o->results);
	o->results = NULL;
	free(o->error_code);
	o->error_code = NULL;
	free(o->error_message);
	o->error_message = NULL;
}

void
outcome_success(struct proto_step_outcome *o, json_t *results)
{
	outcome_reset(o);
	o->outcome = OUTCOME_SUCCESS;
	/* Results are always a value on success; {} when there is nothing,
	 * and when a program, a plugin or a service answered null (sent as
	 * nil, the supervisor would store no results: dependents would read
	 * null). */
	if (json_is_null(results)) {
		json_decref(results);
		results = NULL;
	}
	o->results = results != NULL ? results : json_object();
}

void
outcome_fail(struct proto_step_outcome *o, enum proto_outcome kind,
    const char *code, const char *fmt, ...)
{
	va_list	ap;

	outcome_reset(o);
	/* A failure that claims success would be applied as one. */
	o->outcome = kind == OUTCOME_SUCCESS ? OUTCOME_PERMANENT : kind;
	o->error_code = xstrdup(code);
	va_start(ap, fmt);
	if (vasprintf(&o->error_message, fmt, ap) == -1)
		fatal("outcome_fail");
	va_end(ap);
}
