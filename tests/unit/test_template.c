/*
 * test_template.c - template loading, validation and the registry.
 *
 * Error tests compare the whole message, line included: the message is the
 * interface an operator sees from `taskerd --check`.
 */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "template.h"

static const struct tmpl_defaults defs = {
	.retry_limit = 3,
	.timeout_ms = 30000,
	.backoff = { .base_ms = 1000, .max_ms = 300000, .jitter = JITTER_FULL },
};

static struct tmpl *
load(const char *yaml, char *err, size_t errlen)
{
	return tmpl_load_buffer("t.yaml", yaml, strlen(yaml), &defs, err,
	    errlen);
}

static void
expect_error(const char *yaml, const char *want)
{
	char		 err[1024];
	struct tmpl	*t;

	memset(err, 'X', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	t = load(yaml, err, sizeof(err));
	if (t != NULL) {
		tmpl_free(t);
		fail_msg("loaded, expected: %s", want);
	}
	assert_string_equal(err, want);
}

/* The seed's user registration workflow, written the way a Tasker user
 * would port it: Tasker's keys mixed with ours. */
static const char seed[] =
	"name: user_registration\n"			/* 1 */
	"namespace_name: blog_examples\n"
	"version: 1.0\n"
	"description: Orchestrated user registration\n"
	"default_dependent_system: user_service\n"	/* 5 */
	"identity_strategy: strict\n"
	"task_handler_class: BlogExamples::UserRegistrationHandler\n"
	"module_namespace: BlogExamples\n"
	"schema:\n"
	"  type: object\n"				/* 10 */
	"  required: [user_info]\n"
	"  properties:\n"
	"    user_info:\n"
	"      type: object\n"
	"step_templates:\n"				/* 15 */
	"  - name: validate_user_info\n"
	"    handler: noop\n"
	"    retry_limit: 2\n"
	"    timeout: 5000\n"
	"  - name: create_user_account\n"		/* 20 */
	"    depends_on_step: validate_user_info\n"
	"    handler_config:\n"
	"      method: POST\n"
	"      url: /users\n"
	"      body: {email: \"{{context.user_info.email}}\", n: 1}\n" /* 25 */
	"    timeout: 5s\n"
	"    backoff: {base: 2s, max: 1m, jitter: equal}\n"
	"  - name: setup_billing\n"
	"    dependent_system: billing_service\n"
	"    handler_config: {method: POST, url: /accounts}\n"	/* 30 */
	"    depends_on_steps: [create_user_account]\n"
	"    default_retry_limit: 5\n"
	"    timeout: 15000\n"
	"  - name: configure_preferences\n"
	"    dependent_system: preferences_service\n"	/* 35 */
	"    handler_config: {method: PUT, url: /preferences}\n"
	"    depends_on_steps: [create_user_account]\n"
	"    default_retryable: false\n"
	"  - name: send_welcome_sequence\n"
	"    handler_class: notify_welcome\n"		/* 40 */
	"    handler_config: {library: libwelcome.so}\n"
	"    depends_on_steps:\n"
	"      - setup_billing\n"
	"      - configure_preferences\n"
	"  - name: update_user_status\n"		/* 45 */
	"    depends_on_step: send_welcome_sequence\n"
	"    handler_config: {method: PATCH, url: /users/status}\n"
	"    custom_events: [{name: status_updated}]\n"
	"custom_events:\n"
	"  - name: service_call_started\n";

static void
test_seed_loads(void **state)
{
	char			 err[1024];
	struct tmpl		*t;
	const struct tmpl_step	*s;
	json_t			*hc;

	(void)state;
	t = load(seed, err, sizeof(err));
	if (t == NULL)
		fail_msg("%s", err);
	assert_string_equal(t->name, "user_registration");
	assert_string_equal(t->namespace, "blog_examples");
	assert_string_equal(t->version, "1.0");
	assert_string_equal(t->description, "Orchestrated user registration");
	assert_string_equal(t->default_dependent_system, "user_service");
	assert_int_equal(t->identity, IDENTITY_STRICT);
	assert_string_equal(t->path, "t.yaml");
	assert_int_equal(t->db_id, 0);
	assert_non_null(t->schema);
	assert_string_equal(json_string_value(json_object_get(t->schema,
	    "type")), "object");
	assert_string_equal(json_string_value(json_array_get(json_object_get(
	    t->schema, "required"), 0)), "user_info");

	/* The stored definition is the whole file, version kept as text. */
	assert_true(json_is_object(t->definition));
	assert_string_equal(json_string_value(json_object_get(t->definition,
	    "version")), "1.0");
	assert_int_equal(json_array_size(json_object_get(t->definition,
	    "step_templates")), 6);
	assert_non_null(json_object_get(t->definition, "custom_events"));

	assert_int_equal(t->nsteps, 6);
	assert_string_equal(t->steps[0].name, "validate_user_info");
	assert_string_equal(t->steps[1].name, "create_user_account");
	assert_string_equal(t->steps[2].name, "setup_billing");
	assert_string_equal(t->steps[3].name, "configure_preferences");
	assert_string_equal(t->steps[4].name, "send_welcome_sequence");
	assert_string_equal(t->steps[5].name, "update_user_status");

	s = &t->steps[0];
	assert_int_equal(s->line, 16);
	assert_string_equal(s->handler, "noop");
	assert_null(s->handler_class);
	assert_null(s->description);
	assert_string_equal(s->dependent_system, "user_service");
	assert_int_equal(s->ndeps, 0);
	assert_true(s->retryable);
	assert_int_equal(s->retry_limit, 2);
	assert_int_equal(s->timeout_ms, 5000);
	assert_int_equal(s->backoff.base_ms, 1000);
	assert_int_equal(s->backoff.max_ms, 300000);
	assert_int_equal(s->backoff.jitter, JITTER_FULL);
	assert_true(json_is_object(s->handler_config));
	assert_int_equal(json_object_size(s->handler_config), 0);

	s = &t->steps[1];
	assert_int_equal(s->line, 20);
	assert_string_equal(s->handler, "http");
	assert_int_equal(s->ndeps, 1);
	assert_string_equal(s->deps[0], "validate_user_info");
	assert_int_equal(s->dep_idx[0], 0);
	assert_int_equal(s->retry_limit, 3);
	assert_int_equal(s->timeout_ms, 5000);
	assert_int_equal(s->backoff.base_ms, 2000);
	assert_int_equal(s->backoff.max_ms, 60000);
	assert_int_equal(s->backoff.jitter, JITTER_EQUAL);
	hc = s->handler_config;
	assert_string_equal(json_string_value(json_object_get(hc, "method")),
	    "POST");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    hc, "body"), "email")), "{{context.user_info.email}}");
	assert_true(json_is_integer(json_object_get(json_object_get(hc, "body"),
	    "n")));

	s = &t->steps[2];
	assert_string_equal(s->dependent_system, "billing_service");
	assert_int_equal(s->ndeps, 1);
	assert_int_equal(s->dep_idx[0], 1);
	assert_int_equal(s->retry_limit, 5);
	assert_int_equal(s->timeout_ms, 15000);

	s = &t->steps[3];
	assert_string_equal(s->dependent_system, "preferences_service");
	assert_int_equal(s->dep_idx[0], 1);
	assert_false(s->retryable);
	assert_int_equal(s->timeout_ms, 30000);

	s = &t->steps[4];
	assert_string_equal(s->handler, "plugin");
	assert_string_equal(s->handler_class, "notify_welcome");
	/* The symbol a worker looks up: all it gets is the config. */
	hc = s->handler_config;
	assert_string_equal(json_string_value(json_object_get(hc, "symbol")),
	    "notify_welcome");
	assert_string_equal(json_string_value(json_object_get(hc, "library")),
	    "libwelcome.so");
	assert_int_equal(s->ndeps, 2);
	assert_string_equal(s->deps[0], "setup_billing");
	assert_string_equal(s->deps[1], "configure_preferences");
	assert_int_equal(s->dep_idx[0], 2);
	assert_int_equal(s->dep_idx[1], 3);

	s = &t->steps[5];
	assert_int_equal(s->line, 45);
	assert_int_equal(s->ndeps, 1);
	assert_int_equal(s->dep_idx[0], 4);

	assert_int_equal(tmpl_step_index(t, "setup_billing"), 2);
	assert_int_equal(tmpl_step_index(t, "update_user_status"), 5);
	assert_int_equal(tmpl_step_index(t, "nope"), -1);
	tmpl_free(t);
}

/* Tasker's own example file shape, with the keys we only tolerate. */
static void
test_tasker_keys(void **state)
{
	static const char y[] =
	    "---\n"
	    "name: api_task/integration_yaml_example\n"
	    "module_namespace: ApiTask\n"
	    "task_handler_class: IntegrationYamlExample\n"
	    "concurrent: true\n"
	    "namespace_name: api_tests\n"
	    "version: 0.1.0\n"
	    "default_dependent_system: ecommerce_system\n"
	    "named_steps:\n"
	    "  - fetch_cart\n"
	    "  - fetch_products\n"
	    "  - validate_products\n"
	    "step_templates:\n"
	    "  - name: fetch_cart\n"
	    "    description: Fetch cart details\n"
	    "    handler_class: ApiTask::StepHandler::CartFetchStepHandler\n"
	    "    default_retryable: true\n"
	    "    default_retry_limit: 3\n"
	    "    handler_config:\n"
	    "      library: libapitask.so\n"
	    "      symbol: cart_fetch\n"
	    "      type: api\n"
	    "      url: https://api.ecommerce.com/cart\n"
	    "      params:\n"
	    "        cart_id: 1\n"
	    "  - name: fetch_products\n"
	    "    handler_class: ApiTask::StepHandler::ProductsFetchStepHandler\n"
	    "    handler_config: {library: libapitask.so, symbol: products}\n"
	    "  - name: validate_products\n"
	    "    depends_on_steps:\n"
	    "      - fetch_products\n"
	    "      - fetch_cart\n"
	    "    depends_on_step: fetch_cart\n"
	    "    handler_class: ApiTask::StepHandler::ProductsValidate\n"
	    "    handler_config: {library: libapitask.so, symbol: validate}\n"
	    "    custom_events:\n"
	    "      - name: validated\n"
	    "environments:\n"
	    "  development:\n"
	    "    step_templates:\n"
	    "      - name: fetch_cart\n"
	    "        bogus_but_ignored: 1\n"
	    "custom_events:\n"
	    "  - name: service_call_started\n"
	    "    description: Fired when calling external service\n"
	    "handler_config:\n"
	    "  monitoring: {critical_workflow: true}\n";
	char		 err[1024];
	struct tmpl	*t;

	(void)state;
	if ((t = load(y, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	assert_string_equal(t->name, "api_task/integration_yaml_example");
	assert_string_equal(t->namespace, "api_tests");
	assert_string_equal(t->version, "0.1.0");
	assert_int_equal(t->identity, IDENTITY_ALWAYS_UNIQUE);
	assert_null(t->schema);
	assert_int_equal(t->nsteps, 3);
	assert_string_equal(t->steps[0].handler, "plugin");
	assert_string_equal(t->steps[0].handler_class,
	    "ApiTask::StepHandler::CartFetchStepHandler");
	assert_string_equal(t->steps[0].dependent_system, "ecommerce_system");
	assert_string_equal(t->steps[0].description, "Fetch cart details");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
	    t->steps[0].handler_config, "params"), "cart_id")), 1);
	/* Both dependency spellings merge; a repeated parent counts once. */
	assert_int_equal(t->steps[2].ndeps, 2);
	assert_string_equal(t->steps[2].deps[0], "fetch_products");
	assert_string_equal(t->steps[2].deps[1], "fetch_cart");
	assert_int_equal(t->steps[2].dep_idx[0], 1);
	assert_int_equal(t->steps[2].dep_idx[1], 0);
	tmpl_free(t);
}

static void
test_defaults(void **state)
{
	static const char y[] =
	    "name: minimal\n"
	    "step_templates:\n"
	    "  - name: only\n"
	    "    handler_config: {url: \"http://x/\"}\n";
	char		 err[1024];
	struct tmpl	*t;

	(void)state;
	if ((t = load(y, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	assert_string_equal(t->namespace, "default");
	assert_string_equal(t->version, "0.1.0");
	assert_null(t->description);
	assert_null(t->default_dependent_system);
	assert_int_equal(t->identity, IDENTITY_ALWAYS_UNIQUE);
	assert_null(t->schema);
	assert_string_equal(t->steps[0].handler, "http");
	assert_null(t->steps[0].dependent_system);
	assert_true(t->steps[0].retryable);
	assert_int_equal(t->steps[0].retry_limit, 3);
	assert_int_equal(t->steps[0].timeout_ms, 30000);
	assert_int_equal(t->steps[0].backoff.base_ms, 1000);
	assert_int_equal(t->steps[0].backoff.max_ms, 300000);
	assert_int_equal(t->steps[0].backoff.jitter, JITTER_FULL);
	assert_int_equal(t->steps[0].ndeps, 0);
	assert_int_equal(json_object_size(t->steps[0].handler_config), 1);
	/* No version key in the file: the definition is left as written. */
	assert_null(json_object_get(t->definition, "version"));
	tmpl_free(t);
}

/* Which steps are sent other steps' results: those whose handler may
 * read them. */
static void
test_reads_results(void **state)
{
	static const char y[] =
	    "name: readers\n"
	    "step_templates:\n"
	    "  - name: quiet\n"
	    "    handler: noop\n"
	    "    handler_config: {results: {steps: 1}}\n"
	    "  - name: context_only\n"
	    "    handler_config:\n"
	    "      url: http://x/{{context.id}}\n"
	    "      body: {a: \"{{context.a}}\"}\n"
	    "  - name: body_reader\n"
	    "    depends_on_step: quiet\n"
	    "    handler_config:\n"
	    "      url: http://x/\n"
	    "      body: {id: \"{{ steps.quiet.results.id }}\"}\n"
	    "  - name: header_reader\n"
	    "    depends_on_step: body_reader\n"
	    "    handler_config:\n"
	    "      url: http://x/\n"
	    "      headers: {X-Id: \"{{steps.quiet.results.id}}\"}\n"
	    "  - name: plugin\n"
	    "    handler_class: some_symbol\n"
	    "    handler_config: {library: ./libsome.so}\n";
	char		 err[1024];
	struct tmpl	*t;

	(void)state;
	if ((t = load(y, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	assert_false(t->steps[0].reads_results);	/* noop: never */
	assert_false(t->steps[1].reads_results);
	assert_true(t->steps[2].reads_results);
	assert_true(t->steps[3].reads_results);
	assert_string_equal(t->steps[4].handler, "plugin");
	assert_true(t->steps[4].reads_results);		/* may: unknown */
	tmpl_free(t);
}

/* Scalars: unquoted ones are typed, quoted ones stay strings. */
static void
test_scalar_json(void **state)
{
	static const char y[] =
	    "name: j\n"
	    "version: \"2.0\"\n"
	    "step_templates:\n"
	    "  - name: s\n"
	    "    handler: noop\n"
	    "    handler_config: {results: {a: \"true\", b: true, c: ~, "
	    "d: \"1\", e: 1.5, f: 0x10, g: null, h: \"\", i: '~', k: -7, "
	    "m: [1, \"2\"], n: 010, o: False, p: 1.0.0, q: NULL, r: Null, "
	    "s: TRUE, t: nULL}}\n";
	char		 err[1024];
	struct tmpl	*t;
	json_t		*h;

	(void)state;
	if ((t = load(y, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	assert_string_equal(t->version, "2.0");
	h = json_object_get(t->steps[0].handler_config, "results");
	assert_string_equal(json_string_value(json_object_get(h, "a")), "true");
	assert_true(json_is_true(json_object_get(h, "b")));
	assert_true(json_is_null(json_object_get(h, "c")));
	assert_string_equal(json_string_value(json_object_get(h, "d")), "1");
	assert_true(json_real_value(json_object_get(h, "e")) == 1.5);
	assert_int_equal(json_integer_value(json_object_get(h, "f")), 16);
	assert_true(json_is_null(json_object_get(h, "g")));
	assert_string_equal(json_string_value(json_object_get(h, "h")), "");
	assert_string_equal(json_string_value(json_object_get(h, "i")), "~");
	assert_int_equal(json_integer_value(json_object_get(h, "k")), -7);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(h,
	    "m"), 0)), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(h,
	    "m"), 1)), "2");
	assert_int_equal(json_integer_value(json_object_get(h, "n")), 10);
	assert_true(json_is_false(json_object_get(h, "o")));
	assert_string_equal(json_string_value(json_object_get(h, "p")),
	    "1.0.0");
	assert_true(json_is_null(json_object_get(h, "q")));
	assert_true(json_is_null(json_object_get(h, "r")));
	assert_true(json_is_true(json_object_get(h, "s")));
	assert_string_equal(json_string_value(json_object_get(h, "t")),
	    "nULL");
	tmpl_free(t);
}

#define HEAD	"name: t\nstep_templates:\n"	/* lines 1-2 */

static void
expect_loads(const char *yaml)
{
	char		 err[1024];
	struct tmpl	*t;

	if ((t = load(yaml, err, sizeof(err))) == NULL)
		fail_msg("refused: %s", err);
	tmpl_free(t);
}

/* An http step's placeholders name its input, the environment, or the
 * results of steps it depends on (directly or not). */
static void
test_err_placeholders(void **state)
{
	(void)state;
	expect_error(HEAD "  - name: a\n    handler: noop\n"
	    "  - name: b\n    handler_config:\n      url: http://x/\n"
	    "      body: {n: \"{{steps.a.results.n}}\"}\n",
	    "t.yaml:8: step 'b': placeholder reads step 'a', which it does "
	    "not depend on (depends_on_steps)");
	expect_error(HEAD "  - name: b\n    handler_config:\n"
	    "      url: \"http://x/{{steps.nosuch.results.n?}}\"\n",
	    "t.yaml:5: step 'b': placeholder names step 'nosuch', which is "
	    "not in this template");
	expect_error(HEAD "  - name: b\n    handler_config:\n"
	    "      url: http://x/\n      headers: {X-A: \"{{contxt.a}}\"}\n",
	    "t.yaml:6: step 'b': placeholder 'contxt.a' names none of "
	    "context, steps, attempt, service, env");
	/* At the string's own line, however its keys are spelt. */
	expect_error(HEAD "  - name: b\n    handler_config:\n"
	    "      url: http://x/\n      headers:\n        X-Ok: a\n"
	    "        \"X/Y~Z\": \"{{contxt.a}}\"\n",
	    "t.yaml:8: step 'b': placeholder 'contxt.a' names none of "
	    "context, steps, attempt, service, env");
	expect_error(HEAD "  - name: b\n    handler_config:\n"
	    "      url: \"http://x/{{context.a\"\n",
	    "t.yaml:5: step 'b': unterminated placeholder at offset 9");
	expect_error(HEAD "  - name: b\n    handler_config:\n"
	    "      url: \"http://x/{{ context.a ? }}\"\n",
	    "t.yaml:5: step 'b': placeholder 'context.a ?' has a space "
	    "before its '?'");
	/* Paths that name nothing, ever. */
	expect_error(HEAD "  - name: b\n    handler_config:\n"
	    "      url: \"http://x/{{context..a}}\"\n",
	    "t.yaml:5: step 'b': placeholder 'context..a' has an empty "
	    "segment");
	expect_error(HEAD "  - name: b\n    handler_config:\n"
	    "      url: \"http://x/{{context.?}}\"\n",
	    "t.yaml:5: step 'b': placeholder 'context.' has an empty "
	    "segment");
	expect_error(HEAD "  - name: b\n    handler_config:\n"
	    "      url: \"http://x/{{env.}}\"\n",
	    "t.yaml:5: step 'b': placeholder 'env.' has an empty segment");
	expect_error(HEAD "  - name: b\n    handler_config:\n"
	    "      url: \"http://x/{{env}}\"\n",
	    "t.yaml:5: step 'b': placeholder 'env' names no environment "
	    "variable (env.NAME)");
	expect_loads(HEAD "  - name: b\n    handler_config:\n"
	    "      url: \"http://x/{{env.HOME}}/{{context}}/{{context.first "
	    "name?}}\"\n");
	/* What a step's input holds: steps.NAME.results, a number for
	 * attempt, and a service only where the step names one.  Each of
	 * these failed every attempt with "missing path". */
	expect_error(HEAD "  - name: a\n    handler: noop\n"
	    "  - name: b\n    depends_on_step: a\n    handler_config:\n"
	    "      url: http://x/\n      body: {id: \"{{steps.a.result.id}}\"}\n",
	    "t.yaml:9: step 'b': placeholder 'steps.a.result.id': a step's "
	    "results are steps.a.results");
	expect_error(HEAD "  - name: b\n    handler_config:\n"
	    "      url: http://x/\n      body: {n: \"{{attempt.n}}\"}\n",
	    "t.yaml:6: step 'b': placeholder 'attempt.n': attempt is a "
	    "number, with no members");
	expect_error(HEAD "  - name: b\n    handler_config:\n"
	    "      url: http://x/\n      body: {s: \"{{service.name}}\"}\n",
	    "t.yaml:6: step 'b': placeholder 'service.name' reads the step's "
	    "service, and the step names none (dependent_system)");
	expect_error(HEAD "  - name: b\n    dependent_system: billing\n"
	    "    handler_config:\n      url: /x\n"
	    "      body: {s: \"{{service.url}}\"}\n",
	    "t.yaml:7: step 'b': placeholder 'service.url': a service has "
	    "name, base_url and timeout_ms");
	expect_loads(HEAD "  - name: a\n    handler: noop\n"
	    "  - name: b\n    depends_on_step: a\n"
	    "    dependent_system: billing\n    handler_config:\n"
	    "      url: /x\n      body: {a: \"{{steps.a}}\", "
	    "n: \"{{steps.a.results.n?}}\", t: \"{{attempt}}\", "
	    "s: \"{{service.name}}/{{service.base_url?}}/"
	    "{{service.timeout_ms?}}\"}\n");
	/* An optional one renders as nothing, as it always did. */
	expect_loads(HEAD "  - name: a\n    handler: noop\n"
	    "  - name: b\n    depends_on_step: a\n    handler_config:\n"
	    "      url: http://x/\n      headers: {X-S: \"{{service.name?}}\"}\n"
	    "      body: {a: \"{{steps.a.status?}}\", n: \"{{attempt.n?}}\"}\n");
}

/* An http step's config is checked when the template loads, not at its
 * first attempt: a step that cannot be called fails the load. */
static void
test_http_config(void **state)
{
	(void)state;
	expect_error(HEAD "  - name: a\n    handler: http\n",
	    "t.yaml:3: step \"a\": http url is required and must be a string");
	/* http is the default handler. */
	expect_error(HEAD "  - name: a\n    dependent_system: billing\n",
	    "t.yaml:3: step \"a\": http url is required and must be a string");
	expect_error(HEAD "  - name: a\n    handler_config:\n"
	    "      url: /x\n      timeout: 5s\n",
	    "t.yaml:6: step \"a\": http timeout must be milliseconds in "
	    "(0, 1 day]");
	expect_error(HEAD "  - name: a\n    handler_config:\n"
	    "      url: /x\n      on_status: {\"4xx\": maybe}\n",
	    "t.yaml:6: step \"a\": http on_status.4xx must be \"success\", "
	    "\"retryable\", \"permanent\" or an object");
	expect_error(HEAD "  - name: a\n    handler_config:\n"
	    "      url: /x\n      body_template: {}\n",
	    "t.yaml:6: step \"a\": http handler_config: unknown key "
	    "'body_template'");
	/* A relative url needs a service's base_url. */
	expect_error(HEAD "  - name: a\n    handler_config: {url: /x}\n",
	    "t.yaml:4: step \"a\": url \"/x\" is relative, and the step "
	    "names no service (dependent_system) whose base_url it would "
	    "follow");
	expect_loads(HEAD "  - name: a\n    dependent_system: billing\n"
	    "    handler_config: {url: /x}\n");
	/* A lookup's too: lookups are built before the first request, and
	 * every attempt failed, the service never called. */
	expect_error(HEAD "  - name: a\n    handler_config:\n"
	    "      url: http://127.0.0.1:9/x\n"
	    "      on_status: {\"409\": {lookup: {url: /users/x}}}\n",
	    "t.yaml:6: step \"a\": on_status.409.lookup.url \"/users/x\" is "
	    "relative, and the step names no service (dependent_system) "
	    "whose base_url it would follow");
	expect_loads("name: t\ndefault_dependent_system: billing\n"
	    "step_templates:\n  - name: a\n    handler_config: {url: /x}\n");
	/* A url from the context would be percent-encoded whole
	 * ("http%3A%2F%2F..."): only the environment may give a base. */
	expect_error("name: t\ndefault_dependent_system: billing\n"
	    "step_templates:\n  - name: a\n    handler_config: {url: /x}\n"
	    "  - name: b\n    handler_config: {url: \"{{context.u}}\"}\n",
	    "t.yaml:7: step \"b\": http url may start with a placeholder only "
	    "from env ({{env.NAME}}): any other is percent-encoded in a URL; "
	    "start it with / for the service's base_url");
	expect_loads(HEAD "  - name: a\n"
	    "    handler_config: {url: \"{{ env.BASE }}/x\"}\n");
	/* At the key the message names, not at the step's name. */
	expect_error(HEAD "  - name: a\n    dependent_system: b\n"
	    "    description: x\n    handler_config:\n      url: /x\n"
	    "      methd: POST\n",
	    "t.yaml:8: step \"a\": http handler_config: unknown key 'methd'");
	/* Not at a key the list of valid ones names, nor at a top-level
	 * key that a path below another ends with. */
	expect_error(HEAD "  - name: a\n    handler: exec\n"
	    "    handler_config:\n      command: [ls]\n      env: {A: b}\n"
	    "      cwd: /tmp\n",
	    "t.yaml:8: step \"a\": exec handler_config: unknown key 'cwd' "
	    "(command, env)");
	expect_error(HEAD "  - name: a\n    dependent_system: b\n"
	    "    handler_config:\n      url: /a\n      on_status:\n"
	    "        \"409\":\n          lookup: {url: \"{{context.n}}\"}\n",
	    "t.yaml:7: step \"a\": http on_status.409.lookup.url may start "
	    "with a placeholder only from env ({{env.NAME}}): any other is "
	    "percent-encoded in a URL; start it with / for the service's "
	    "base_url");
}

/* Tasker's step keys port over; one setting given two values under its
 * two names is refused (the later one won, silently). */
static void
test_step_key_spellings(void **state)
{
	(void)state;
	expect_loads(HEAD "  - name: a\n    handler: noop\n"
	    "    skippable: false\n    default_retryable: false\n"
	    "    default_retry_limit: 2\n");
	expect_error(HEAD "  - name: a\n    handler: noop\n"
	    "    retryable: false\n    default_retryable: true\n",
	    "t.yaml:5: step \"a\": default_retryable and retryable are one "
	    "setting (Tasker's name and ours), given two values: give one");
	expect_error(HEAD "  - name: a\n    handler: noop\n"
	    "    default_retry_limit: 2\n    retry_limit: 5\n",
	    "t.yaml:6: step \"a\": default_retry_limit and retry_limit are "
	    "one setting (Tasker's name and ours), given two values: give "
	    "one");
	/* The same value twice says one thing. */
	expect_loads(HEAD "  - name: a\n    handler: noop\n"
	    "    retryable: False\n    default_retryable: false\n"
	    "    retry_limit: 4\n    default_retry_limit: 4\n");
}

/* An exec step names its program as a list; a relative path with a slash
 * is the template directory's, whatever taskerd's working directory. */
static void
test_exec_config(void **state)
{
	char		 err[1024], cwd[PATH_MAX], *want;
	struct tmpl	*t;
	const json_t	*cmd;

	(void)state;
	t = load(HEAD "  - name: a\n    handler: exec\n    handler_config:\n"
	    "      command: [bin/send.py, --fast]\n"
	    "      env: {A: x}\n"
	    "  - name: b\n    handler: exec\n    handler_config:\n"
	    "      command: [/usr/bin/env, x]\n"
	    "  - name: c\n    handler: exec\n    handler_config:\n"
	    "      command: [python3]\n", err, sizeof(err));
	if (t == NULL)
		fail_msg("%s", err);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	if (asprintf(&want, "%s/bin/send.py", cwd) == -1)
		fail();
	cmd = json_object_get(t->steps[0].handler_config, "command");
	assert_string_equal(json_string_value(json_array_get(cmd, 0)), want);
	assert_string_equal(json_string_value(json_array_get(cmd, 1)),
	    "--fast");
	cmd = json_object_get(t->steps[1].handler_config, "command");
	assert_string_equal(json_string_value(json_array_get(cmd, 0)),
	    "/usr/bin/env");
	cmd = json_object_get(t->steps[2].handler_config, "command");
	assert_string_equal(json_string_value(json_array_get(cmd, 0)),
	    "python3");
	assert_true(t->steps[0].reads_results);		/* may: any program */
	free(want);
	tmpl_free(t);

	expect_error(HEAD "  - name: a\n    handler: exec\n",
	    "t.yaml:3: step \"a\": exec handler_config needs command, a list "
	    "of strings: [program, arg, ...]");
	expect_error(HEAD "  - name: a\n    handler: exec\n    handler_config:\n"
	    "      command: ls -l\n",
	    "t.yaml:6: step \"a\": exec handler_config needs command, a list "
	    "of strings: [program, arg, ...]");
	expect_error(HEAD "  - name: a\n    handler: exec\n    handler_config:\n"
	    "      command: []\n",
	    "t.yaml:6: step \"a\": exec handler_config needs command, a list "
	    "of strings: [program, arg, ...]");
	expect_error(HEAD "  - name: a\n    handler: exec\n    handler_config:\n"
	    "      command: [\"\", x]\n",
	    "t.yaml:6: step \"a\": exec command[0] must name a program");
	expect_error(HEAD "  - name: a\n    handler: exec\n    handler_config:\n"
	    "      command: [ls, [x]]\n",
	    "t.yaml:6: step \"a\": exec command[1] must be a string");
	expect_error(HEAD "  - name: a\n    handler: exec\n    handler_config:\n"
	    "      command: [ls]\n      env: {N: 3}\n",
	    "t.yaml:7: step \"a\": exec env.N must be a string: write \"3\", "
	    "in quotes");
	expect_error(HEAD "  - name: a\n    handler: exec\n    handler_config:\n"
	    "      command: [sleep, 5]\n",
	    "t.yaml:6: step \"a\": exec command[1] must be a string: write "
	    "\"5\", in quotes");
	expect_error(HEAD "  - name: a\n    handler: exec\n    handler_config:\n"
	    "      command: [ls]\n      env: [A=b]\n",
	    "t.yaml:7: step \"a\": exec env must be a map of names to strings");
	expect_error(HEAD "  - name: a\n    handler: exec\n    handler_config:\n"
	    "      command: [ls]\n      env: {\"A=B\": x}\n",
	    "t.yaml:7: step \"a\": exec env: 'A=B' is not a variable name");
	expect_error(HEAD "  - name: a\n    handler: exec\n    handler_config:\n"
	    "      command: [ls]\n      env: {TASKERD_TASK_ID: \"7\"}\n",
	    "t.yaml:7: step \"a\": exec env: TASKERD_TASK_ID: TASKERD_ "
	    "variables are the step's own");
	expect_error(HEAD "  - name: a\n    handler: exec\n    handler_config:\n"
	    "      command: [ls]\n      url: http://x/\n",
	    "t.yaml:7: step \"a\": exec handler_config: unknown key 'url' "
	    "(command, env)");
}

/* A plugin step names its shared object, and a C function: its symbol,
 * or its handler_class (Tasker's Ruby class names are not). */
static void
test_plugin_config(void **state)
{
	char		 err[1024], cwd[PATH_MAX], *want;
	struct tmpl	*t;
	const json_t	*hc;

	(void)state;
	t = load(HEAD "  - name: a\n    handler_class: send_mail\n"
	    "    handler_config: {library: lib/mail.so, retries: 2}\n"
	    "  - name: b\n    handler: plugin\n"
	    "    handler_config: {library: libx.so, symbol: _x1}\n",
	    err, sizeof(err));
	if (t == NULL)
		fail_msg("%s", err);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	if (asprintf(&want, "%s/lib/mail.so", cwd) == -1)
		fail();
	hc = t->steps[0].handler_config;
	assert_string_equal(t->steps[0].handler, "plugin");
	assert_string_equal(json_string_value(json_object_get(hc, "library")),
	    want);
	assert_string_equal(json_string_value(json_object_get(hc, "symbol")),
	    "send_mail");
	/* The rest is the plugin's own. */
	assert_int_equal(json_integer_value(json_object_get(hc, "retries")), 2);
	hc = t->steps[1].handler_config;
	assert_string_equal(json_string_value(json_object_get(hc, "library")),
	    "libx.so");
	assert_string_equal(json_string_value(json_object_get(hc, "symbol")),
	    "_x1");
	free(want);
	tmpl_free(t);

	expect_error(HEAD "  - name: a\n"
	    "    handler_class: Shop::StepHandler::Reserve\n",
	    "t.yaml:3: step \"a\": a plugin step needs handler_config.library, "
	    "the shared object to load (handler_class "
	    "'Shop::StepHandler::Reserve' makes it a plugin step)");
	expect_error(HEAD "  - name: a\n"
	    "    handler_class: Shop::StepHandler::Reserve\n"
	    "    handler_config: {library: libshop.so}\n",
	    "t.yaml:5: step \"a\": a plugin step needs a C function name: "
	    "handler_config.symbol, or a handler_class that is one "
	    "('Shop::StepHandler::Reserve' is not)");
	expect_error(HEAD "  - name: a\n    handler: plugin\n"
	    "    handler_config: {library: libshop.so}\n",
	    "t.yaml:5: step \"a\": a plugin step needs handler_config.symbol, "
	    "the C function to call");
	expect_error(HEAD "  - name: a\n    handler: plugin\n"
	    "    handler_config: {library: libshop.so, symbol: 2go}\n",
	    "t.yaml:5: step \"a\": plugin symbol must be a C function name");
	expect_error(HEAD "  - name: a\n    handler: plugin\n"
	    "    handler_config: {library: \"\", symbol: go}\n",
	    "t.yaml:5: step \"a\": a plugin step needs handler_config.library, "
	    "the shared object to load");
}

/* A step's timeout is an int column in the database. */
static void
test_err_timeout_too_long(void **state)
{
	char		 err[256];
	struct tmpl	*t;

	(void)state;
	t = load(HEAD "  - name: a\n    handler: noop\n    timeout: 24d\n",
	    err, sizeof(err));
	assert_non_null(t);
	tmpl_free(t);
	t = load(HEAD "  - name: a\n    handler: noop\n    timeout: 30d\n",
	    err, sizeof(err));
	assert_null(t);
	assert_non_null(strstr(err, "t.yaml:5: "));
	assert_non_null(strstr(err, "timeout"));
	assert_non_null(strstr(err, "must be at most 2147483647ms"));
}

/* handler_config travels in a worker message: 24 levels at most. */
static void
test_err_handler_config_depth(void **state)
{
	struct tmpl	*t;
	char		 yaml[512], err[256], *p;
	int		 i, j;

	(void)state;
	/* {results: {a: ... {a: 1}}}: 24 levels load, 25 do not. */
	for (i = 24; i <= 25; i++) {
		p = yaml + snprintf(yaml, sizeof(yaml), HEAD "  - name: deep\n"
		    "    handler: noop\n    handler_config: ");
		for (j = 0; j < i; j++)
			p += sprintf(p, j == 0 ? "{results: " : "{a: ");
		p += sprintf(p, "1");
		for (j = 0; j < i; j++)
			p += sprintf(p, "}");
		sprintf(p, "\n");
		if (i == 24) {
			t = load(yaml, err, sizeof(err));
			assert_non_null(t);
			tmpl_free(t);
		} else
			expect_error(yaml, "t.yaml:3: step \"deep\": "
			    "handler_config is nested deeper than 24 levels");
	}
}

static void
test_err_unknown_keys(void **state)
{
	(void)state;
	expect_error("name: t\nfoo: 1\nstep_templates:\n  - name: a\n",
	    "t.yaml:2: unknown template key 'foo' (valid: name, "
	    "namespace_name, version, description, default_dependent_system, "
	    "identity_strategy, schema, step_templates, named_steps, routes)");
	expect_error(HEAD "  - name: a\n    retries: 3\n",
	    "t.yaml:4: unknown step key 'retries' (valid: name, description, "
	    "handler, handler_class, dependent_system, depends_on_steps, "
	    "depends_on_step, default_retryable, retryable, "
	    "default_retry_limit, retry_limit, timeout, backoff, "
	    "handler_config)");
	expect_error(HEAD "  - name: a\n    backoff:\n      base: 1s\n"
	    "      bse: 2s\n",
	    "t.yaml:6: unknown step key 'backoff.bse' (valid: base, max, "
	    "jitter)");
	/* A dotted key must not reach a nested row by a second spelling. */
	expect_error(HEAD "  - name: a\n    backoff.base: 1s\n",
	    "t.yaml:4: unknown step key 'backoff.base' (valid: name, "
	    "description, handler, handler_class, dependent_system, "
	    "depends_on_steps, depends_on_step, default_retryable, retryable, "
	    "default_retry_limit, retry_limit, timeout, backoff, "
	    "handler_config)");
}

static void
test_err_types(void **state)
{
	(void)state;
	expect_error("name: t\nstep_templates: foo\n",
	    "t.yaml:2: step_templates: expected a sequence, got a string");
	expect_error("name: [t]\nstep_templates:\n  - name: a\n",
	    "t.yaml:1: name: expected a string, got a sequence");
	expect_error(HEAD "  - just_a_name\n",
	    "t.yaml:3: step: expected a mapping, got a string");
	expect_error(HEAD "  - name: a\n    retryable: yes\n",
	    "t.yaml:4: retryable: expected true or false, got 'yes'");
	expect_error(HEAD "  - name: a\n    default_retryable: \"true\"\n",
	    "t.yaml:4: default_retryable: expected true or false, got the "
	    "quoted string 'true'");
	expect_error(HEAD "  - name: a\n    retry_limit: \"3\"\n",
	    "t.yaml:4: retry_limit: expected an integer, got the quoted "
	    "string '3'");
	expect_error(HEAD "  - name: a\n    retry_limit: three\n",
	    "t.yaml:4: retry_limit: expected an integer, got 'three'");
	expect_error(HEAD "  - name: a\n    handler_config: [1]\n",
	    "t.yaml:4: handler_config: expected a mapping, got a sequence");
	expect_error(HEAD "  - name: a\n    timeout: {s: 5}\n",
	    "t.yaml:4: timeout: expected a duration, got a mapping");
	expect_error(HEAD "  - name: a\n  - name: b\n    depends_on_steps: a\n",
	    "t.yaml:5: depends_on_steps: expected a sequence, got a string");
	expect_error(HEAD "  - name: a\n  - name: b\n"
	    "    depends_on_steps: [[a]]\n",
	    "t.yaml:5: depends_on_steps: expected a string, got a sequence");
	expect_error("name: t\nschema: [1]\nstep_templates:\n  - name: a\n",
	    "t.yaml:2: schema: expected a mapping, got a sequence");
	expect_error("- name: t\n",
	    "t.yaml:1: template: expected a mapping, got a sequence");
	expect_error(HEAD "  - name: a\n    handler_config:\n"
	    "      big: 99999999999999999999\n",
	    "t.yaml:5: integer out of range: 99999999999999999999");
}

/* A chain of TMPL_MAX_STEPS exec steps (each reads its ancestors'
 * results) loads; one more step is refused. */
static void
expect_many_steps(void)
{
	char	*yaml;
	size_t	 len;
	FILE	*f = open_memstream(&yaml, &len);
	int	 i;

	assert_non_null(f);
	fprintf(f, "name: t\nstep_templates:\n");
	for (i = 0; i < TMPL_MAX_STEPS; i++) {
		fprintf(f, "  - name: s%d\n    handler: exec\n"
		    "    handler_config: {command: [/bin/true]}\n", i);
		if (i > 0)
			fprintf(f, "    depends_on_step: s%d\n", i - 1);
	}
	fflush(f);
	expect_loads(yaml);
	fprintf(f, "  - name: one_more\n    handler: noop\n");
	fclose(f);
	expect_error(yaml, "t.yaml:3: step_templates: 1001 steps; a template "
	    "has at most 1000");
	free(yaml);
}

static void
test_err_names(void **state)
{
	(void)state;
	expect_error("description: x\nstep_templates:\n  - name: a\n",
	    "t.yaml:1: template is missing 'name'");
	expect_error("name: ~\nstep_templates:\n  - name: a\n",
	    "t.yaml:1: template is missing 'name'");
	expect_error("name: t\n",
	    "t.yaml:1: template is missing 'step_templates'");
	expect_error("name: t\nstep_templates: []\n",
	    "t.yaml:2: step_templates: no steps");
	expect_many_steps();
	expect_error(HEAD "  - name: a\n  - description: b\n",
	    "t.yaml:4: step is missing 'name'");
	expect_error(HEAD "  - name: a\n  - name: b\n  - handler: noop\n"
	    "    name: a\n",
	    "t.yaml:6: duplicate step name 'a' (first at line 3)");
	/* Two repeats: the one met first in the file is reported. */
	expect_error(HEAD "  - name: b\n  - name: a\n  - name: a\n"
	    "  - name: b\n",
	    "t.yaml:5: duplicate step name 'a' (first at line 4)");
	expect_error("name: t\nversion: \"\"\nstep_templates:\n  - name: a\n",
	    "t.yaml:1: name, namespace_name and version must not be empty");
#define BAD_ID	"t.yaml:1: name, namespace_name and version may not hold " \
	"control characters, nor namespace_name '/' or '@', nor version a " \
	"space, '/' or '@'"
	expect_error("name: t\nnamespace_name: a/b\nstep_templates:\n"
	    "  - name: a\n", BAD_ID);
	expect_error("name: \"a\\x1b[2Jb\"\nstep_templates:\n"
	    "  - name: a\n", BAD_ID);
	expect_error("name: t\nversion: 1.0 beta\nstep_templates:\n"
	    "  - name: a\n", BAD_ID);
	expect_error("name: t\nversion: 1.0@x\nstep_templates:\n"
	    "  - name: a\n", BAD_ID);
#undef BAD_ID
	expect_error("name: t\nnamed_steps: [a]\nstep_templates:\n"
	    "  - name: a\n  - name: b\n",
	    "t.yaml:5: step 'b' is not listed in named_steps");
	expect_error("name: t\nnamed_steps:\n  - a\n  - b\n  - c\n"
	    "step_templates:\n  - name: a\n  - name: c\n",
	    "t.yaml:4: named_steps lists 'b', which no step template is");
	expect_error("", "t.yaml:1: empty template");
	expect_error(HEAD "  - name: f.g\n",
	    "t.yaml:3: step name 'f.g' may hold only letters, digits, '_' "
	    "and '-'");
	expect_error(HEAD "  - name: \"\"\n",
	    "t.yaml:3: step name '' may hold only letters, digits, '_' "
	    "and '-'");
	expect_error("# nothing here\n", "t.yaml:1: empty template");
}

/* Names and route paths are parts of API paths, which the API reads in
 * bounded segments: what could not be reached is refused at load. */
static void
test_err_name_lengths(void **state)
{
	char	 name[TMPL_NAME_MAX + 2], doc[1024], path[512];
	struct tmpl *t;
	int	 i;

	(void)state;
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';		/* one byte too many */
	snprintf(doc, sizeof(doc), HEAD "  - name: %s\n", name);
	snprintf(path, sizeof(path), "t.yaml:3: step name '%.32s...' is %d "
	    "bytes; at most %d (it is a part of API paths)", name,
	    TMPL_NAME_MAX + 1, TMPL_NAME_MAX);
	expect_error(doc, path);
	snprintf(doc, sizeof(doc), "name: %s\nstep_templates:\n"
	    "  - name: a\n", name);
	expect_error(doc, "t.yaml:1: name and namespace_name may be at most "
	    "128 bytes (they are parts of API paths)");
	snprintf(doc, sizeof(doc), "name: t\nnamespace_name: %s\n"
	    "step_templates:\n  - name: a\n", name);
	expect_error(doc, "t.yaml:1: name and namespace_name may be at most "
	    "128 bytes (they are parts of API paths)");
	snprintf(doc, sizeof(doc), "name: t\nroutes: { create: { path: "
	    "/%s } }\nstep_templates:\n  - name: a\n    handler: noop\n", name);
	expect_error(doc, "t.yaml:2: routes.create.path: at most 8 segments "
	    "of at most 128 bytes each");
	expect_error("name: t\nroutes: { status: { path: "
	    "\"/1/2/3/4/5/6/7/8/{task_id}\" } }\nstep_templates:\n"
	    "  - name: a\n    handler: noop\n", "t.yaml:2: routes.status.path: at most 8 "
	    "segments of at most 128 bytes each");

	/* At the limits: loaded. */
	name[TMPL_NAME_MAX] = '\0';
	snprintf(path, sizeof(path), "/%s", name);
	for (i = 0; i < TMPL_PATH_SEGS - 2; i++)
		strcat(path, "/x");
	snprintf(doc, sizeof(doc), "name: %s\nnamespace_name: %s\n"
	    "routes: { status: { path: \"%s/{task_id}\" } }\n"
	    "step_templates:\n  - name: %s\n    handler: noop\n", name, name, path,
	    name);
	t = load(doc, path, sizeof(path));
	if (t == NULL)
		fail_msg("not loaded: %s", path);
	assert_int_equal(strlen(t->steps[0].name), TMPL_NAME_MAX);
	tmpl_free(t);
}

static void
test_err_deps(void **state)
{
	(void)state;
	expect_error(HEAD
	    "  - name: a\n"
	    "  - name: b\n"
	    "    depends_on_steps:\n"
	    "      - a\n"
	    "      - zz\n",
	    "t.yaml:7: step 'b' depends on unknown step 'zz'");
	expect_error(HEAD "  - name: a\n  - name: b\n    depends_on_step: b\n",
	    "t.yaml:5: step 'b' depends on itself");
	/* Execution order, from the cycle's first step in the file. */
	expect_error(HEAD
	    "  - name: start\n"
	    "  - name: a\n"
	    "    depends_on_steps: [start, c]\n"
	    "  - name: b\n"
	    "    depends_on_step: a\n"
	    "  - name: c\n"
	    "    depends_on_step: b\n"
	    "  - name: end\n"
	    "    depends_on_step: c\n",
	    "t.yaml:4: cycle: a -> b -> c -> a");
	expect_error(HEAD
	    "  - name: x\n"
	    "    depends_on_step: y\n"
	    "  - name: y\n"
	    "    depends_on_step: x\n",
	    "t.yaml:3: cycle: x -> y -> x");
	/* The search enters the cycle at c, through start; the message
	 * still begins at a, the cycle's first step in the file. */
	expect_error(HEAD
	    "  - name: start\n"
	    "    depends_on_step: c\n"
	    "  - name: a\n"
	    "    depends_on_step: b\n"
	    "  - name: b\n"
	    "    depends_on_step: c\n"
	    "  - name: c\n"
	    "    depends_on_step: a\n",
	    "t.yaml:5: cycle: a -> c -> b -> a");
}

static void
test_err_values(void **state)
{
	(void)state;
	expect_error(HEAD "  - name: a\n    retry_limit: 0\n",
	    "t.yaml:4: retry_limit: must be at least 1");
	expect_error(HEAD "  - name: a\n    default_retry_limit: -2\n",
	    "t.yaml:4: default_retry_limit: must be at least 1");
	expect_error(HEAD "  - name: a\n    retry_limit: 3000000000\n",
	    "t.yaml:4: retry_limit: must be at most 2147483647");
	expect_error(HEAD "  - name: a\n    timeout: 5 parsecs\n",
	    "t.yaml:4: timeout: invalid duration '5 parsecs' (use 250ms, 5s, "
	    "2m, 1h, 1d or a number of milliseconds)");
	expect_error(HEAD "  - name: a\n    timeout: 0\n",
	    "t.yaml:4: timeout: must be at least 1ms");
	expect_error(HEAD "  - name: a\n    backoff: {base: 1x}\n",
	    "t.yaml:4: backoff.base: invalid duration '1x' (use 250ms, 5s, "
	    "2m, 1h, 1d or a number of milliseconds)");
	expect_error(HEAD "  - name: a\n    backoff: {jitter: wild}\n",
	    "t.yaml:4: backoff.jitter: invalid jitter 'wild' (full, equal or "
	    "none)");
	expect_error("name: t\nidentity_strategy: maybe\nstep_templates:\n"
	    "  - name: a\n",
	    "t.yaml:2: identity_strategy: invalid strategy 'maybe' (strict, "
	    "caller_provided or always_unique)");
	expect_error(HEAD "  - name: a\n    handler: grpc\n",
	    "t.yaml:4: handler: invalid handler 'grpc' (http, exec, plugin or "
	    "noop)");
}

static void
test_err_yaml(void **state)
{
	(void)state;
	expect_error("name: t\nname: u\nstep_templates:\n  - name: a\n",
	    "t.yaml:2: duplicate key 'name' (first at line 1)");
	expect_error(HEAD "  - name: a\n    handler_config: &cfg {x: 1}\n"
	    "  - name: b\n    handler_config: *cfg\n",
	    "t.yaml:4: anchors (&cfg) are not supported");
	expect_error(HEAD "  - name: a\n    handler_config: *cfg\n",
	    "t.yaml:4: aliases (*cfg) are not supported");
	expect_error(HEAD "  - <<: {name: a}\n",
	    "t.yaml:3: merge keys (<<) are not supported");
	expect_error("name: !!str t\nstep_templates:\n  - name: a\n",
	    "t.yaml:1: tags (tag:yaml.org,2002:str) are not supported");
	expect_error("name: t\n---\nname: u\n",
	    "t.yaml:2: only one YAML document per file");
	expect_error(HEAD "  - name: a\n   bad: [\n",
	    "t.yaml:4: did not find expected '-' indicator (while parsing a "
	    "block collection at line 3)");
	expect_error("name: t\n  x: 1\n",
	    "t.yaml:2: mapping values are not allowed in this context");
}

static void
test_version_cmp(void **state)
{
	(void)state;
	assert_int_equal(tmpl_version_cmp("1.10.0", "1.9.2"), 1);
	assert_int_equal(tmpl_version_cmp("1.9.2", "1.10.0"), -1);
	assert_int_equal(tmpl_version_cmp("1.0.0", "1.0.0"), 0);
	assert_int_equal(tmpl_version_cmp("1.0", "1.0.0"), 0);
	assert_int_equal(tmpl_version_cmp("01.2", "1.2"), 0);
	assert_int_equal(tmpl_version_cmp("2", "1.99.99"), 1);
	assert_int_equal(tmpl_version_cmp("1.0.1", "1.0"), 1);
	assert_int_equal(tmpl_version_cmp("1.123456789012345678901234567890",
	    "1.99"), 1);
	assert_int_equal(tmpl_version_cmp("1.0.beta", "1.0.alpha"), 1);
	assert_int_equal(tmpl_version_cmp("1.0.rc", "1.0.rc1"), -1);
	assert_int_equal(tmpl_version_cmp("", "0"), 0);
	/* Pre-releases come before their release; build metadata is no
	 * part of the order. */
	assert_int_equal(tmpl_version_cmp("1.0.0-rc1", "1.0.0"), -1);
	assert_int_equal(tmpl_version_cmp("1.0.0", "1.0.0-rc1"), 1);
	assert_int_equal(tmpl_version_cmp("1.0.0-rc2", "1.0.0-rc1"), 1);
	assert_int_equal(tmpl_version_cmp("1.0.0-rc.10", "1.0.0-rc.9"), 1);
	assert_int_equal(tmpl_version_cmp("1.0.1-alpha", "1.0.0"), 1);
	assert_int_equal(tmpl_version_cmp("1.0.0+build.7", "1.0.0"), 0);
	assert_int_equal(tmpl_version_cmp("1.0.0-beta+b1", "1.0.0-beta"), 0);
}

/* Registry tests work in a fresh directory each. */

static char *
mkdir_tmp(void)
{
	char	tmpl[] = "/tmp/test_template.XXXXXX";

	if (mkdtemp(tmpl) == NULL)
		fail_msg("mkdtemp: %s", strerror(errno));
	return strdup(tmpl);
}

static void
put(const char *dir, const char *name, const char *text)
{
	char	path[PATH_MAX];
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
}

static void
rmdir_tmp(char *dir)
{
	char	cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fail_msg("cannot remove %s", dir);
	free(dir);
}

static void
test_registry_versions(void **state)
{
	struct tmpl_registry	*reg;
	struct tmpl		*t;
	char			*dir, *errs = NULL, want[PATH_MAX];

	(void)state;
	dir = mkdir_tmp();
	put(dir, "b.yml", "name: reg\nnamespace_name: ns\nversion: 1.10.0\n"
	    "step_templates:\n  - name: s\n    handler: noop\n");
	put(dir, "a.yaml", "name: reg\nnamespace_name: ns\nversion: 1.9.2\n"
	    "step_templates:\n  - name: s\n    handler: noop\n");
	put(dir, "c.yaml", "name: reg\nversion: 9.0\n"
	    "step_templates:\n  - name: s\n    handler: noop\n");
	put(dir, "e.YAML", "name: upper\n"
	    "step_templates:\n  - name: s\n    handler: noop\n");
	/* Not templates: skipped without a word. */
	put(dir, "README.txt", "not yaml: [");
	put(dir, "c.yaml~", "not yaml: [");
	put(dir, ".#a.yaml", "not yaml: [");
	put(dir, "yaml", "not yaml: [");

	reg = tmpl_registry_load(dir, &defs, &errs);
	if (reg == NULL)
		fail_msg("%s", errs);
	assert_null(errs);
	assert_int_equal(reg->n, 4);
	snprintf(want, sizeof(want), "%s/a.yaml", dir);
	assert_string_equal(reg->items[0]->path, want);
	snprintf(want, sizeof(want), "%s/b.yml", dir);
	assert_string_equal(reg->items[1]->path, want);

	t = tmpl_registry_find(reg, "ns", "reg", NULL);
	assert_non_null(t);
	assert_string_equal(t->version, "1.10.0");
	t = tmpl_registry_find(reg, "ns", "reg", "1.9.2");
	assert_non_null(t);
	assert_string_equal(t->version, "1.9.2");
	assert_null(tmpl_registry_find(reg, "ns", "reg", "2.0"));
	assert_null(tmpl_registry_find(reg, "ns", "other", NULL));
	t = tmpl_registry_find(reg, "default", "reg", NULL);
	assert_non_null(t);
	assert_string_equal(t->version, "9.0");
	/* A version asked for as spelt otherwise, which the registry holds
	 * as the same (it refuses 9.0 and 9.0.0 together). */
	assert_ptr_equal(tmpl_registry_find(reg, "default", "reg", "9.0.0"),
	    t);
	assert_ptr_equal(tmpl_registry_find(reg, "ns", "reg", "1.9.2.0"),
	    tmpl_registry_find(reg, "ns", "reg", "1.9.2"));
	assert_ptr_equal(tmpl_registry_find(reg, NULL, "reg", NULL), t);
	t = tmpl_registry_find(reg, "default", "upper", NULL);
	assert_non_null(t);
	snprintf(want, sizeof(want), "%s/e.YAML", dir);
	assert_string_equal(t->path, want);
	tmpl_registry_free(reg);
	rmdir_tmp(dir);
}

static void
test_registry_duplicate(void **state)
{
	struct tmpl_registry	*reg;
	char			*dir, *errs = NULL, want[2 * PATH_MAX];

	(void)state;
	dir = mkdir_tmp();
	put(dir, "one.yaml", "name: dup\nversion: 1.0\n"
	    "step_templates:\n  - name: s\n    handler: noop\n");
	put(dir, "two.yaml", "name: dup\nversion: \"1.0\"\n"
	    "step_templates:\n  - name: s\n    handler: noop\n");
	reg = tmpl_registry_load(dir, &defs, &errs);
	assert_null(reg);
	snprintf(want, sizeof(want), "%s/two.yaml: template default/dup "
	    "version 1.0 is already defined in %s/one.yaml", dir, dir);
	assert_non_null(errs);
	assert_string_equal(errs, want);
	free(errs);
	errs = NULL;

	/* 1.0.0 ranks as 1.0: which of the two serves would be chance. */
	put(dir, "two.yaml", "name: dup\nversion: 1.0.0\n"
	    "step_templates:\n  - name: s\n    handler: noop\n");
	reg = tmpl_registry_load(dir, &defs, &errs);
	assert_null(reg);
	snprintf(want, sizeof(want), "%s/two.yaml: template default/dup "
	    "version 1.0.0 is already defined in %s/one.yaml, as 1.0", dir,
	    dir);
	assert_non_null(errs);
	assert_string_equal(errs, want);
	free(errs);
	rmdir_tmp(dir);
}

/* Two templates may not publish one route, be it as a status route of
 * one and a results route of the other (both are GETs). */
static void
test_registry_route_clash(void **state)
{
	struct tmpl_registry	*reg;
	char			*dir, *errs = NULL, want[2 * PATH_MAX];

	(void)state;
	dir = mkdir_tmp();
	put(dir, "a.yaml", "name: a\nroutes: { status: { path: "
	    "\"/x/{task_id}\" } }\nstep_templates:\n  - name: s\n"
	    "    handler: noop\n");
	put(dir, "b.yaml", "name: b\nroutes: { results: { path: "
	    "\"/x/{task_id}\" } }\nstep_templates:\n  - name: s\n"
	    "    handler: noop\n");
	reg = tmpl_registry_load(dir, &defs, &errs);
	assert_null(reg);
	snprintf(want, sizeof(want), "%s/b.yaml: a route of template "
	    "default/b is already published by %s/a.yaml", dir, dir);
	assert_non_null(errs);
	assert_string_equal(errs, want);
	free(errs);
	rmdir_tmp(dir);

	/* A url that no base or scheme makes whole would fail every run. */
	expect_error(HEAD "  - name: a\n    handler_config: { url: "
	    "example.com/users }\n", "t.yaml:4: step \"a\": http url must be "
	    "absolute http:// or https://, or start with / (the service's "
	    "base_url) or with a placeholder");
	/* A noop step's config is checked at load, not at its first run. */
	expect_error(HEAD "  - name: a\n    handler: noop\n"
	    "    handler_config: { fail: permanant }\n",
	    "t.yaml:5: step \"a\": noop fail must be \"retryable\" or "
	    "\"permanent\"");
	expect_error(HEAD "  - name: a\n    handler: noop\n"
	    "    handler_config: { sleep_ms: -1 }\n",
	    "t.yaml:5: step \"a\": noop sleep_ms must be an integer >= 0");
	expect_error(HEAD "  - name: a\n    handler: noop\n"
	    "    handler_config: { sleep: 5 }\n",
	    "t.yaml:5: step \"a\": noop handler_config: unknown key 'sleep' "
	    "(valid: sleep_ms, fail, results)");
	/* A results body names the finished task's context, steps, task. */
	expect_error("name: t\nroutes: { results: { path: \"/r/{task_id}\", "
	    "body: { a: \"{{contxt.a}}\" } } }\nstep_templates:\n"
	    "  - name: a\n    handler: noop\n", "t.yaml:2: routes.results."
	    "body: placeholder 'contxt.a' names none of context, steps, task");
	expect_error("name: t\nroutes: { results: { path: \"/r/{task_id}\", "
	    "body: { a: \"{{steps.b.results.x}}\" } } }\nstep_templates:\n"
	    "  - name: a\n    handler: noop\n", "t.yaml:2: routes.results."
	    "body: placeholder names step 'b', which is not in this template");
	expect_error("name: t\nroutes: { status: { path: \"/x/{task_id}\" }, "
	    "results: { path: \"/x/{task_id}\" } }\nstep_templates:\n"
	    "  - name: a\n    handler: noop\n", "t.yaml:2: routes.status.path "
	    "and routes.results.path are the same path");
}

static void
test_registry_errors(void **state)
{
	struct tmpl_registry	*reg;
	char			*dir, *errs = NULL, want[3 * PATH_MAX];

	(void)state;
	dir = mkdir_tmp();
	put(dir, "a.yaml", "name: a\nbogus: 1\nstep_templates:\n"
	    "  - name: s\n    handler: noop\n");
	put(dir, "b.yaml", "name: b\nstep_templates:\n  - name: s\n    handler: noop\n");
	put(dir, "c.yml", "name: c\nstep_templates:\n  - name: s\n"
	    "    depends_on_step: s\n");
	put(dir, "d.yaml", "name: d\nstep_templates: [\n");
	reg = tmpl_registry_load(dir, &defs, &errs);
	assert_null(reg);
	assert_non_null(errs);
	snprintf(want, sizeof(want),
	    "%s/a.yaml:2: unknown template key 'bogus' (valid: name, "
	    "namespace_name, version, description, default_dependent_system, "
	    "identity_strategy, schema, step_templates, named_steps, routes)\n"
	    "%s/c.yml:4: step 's' depends on itself\n"
	    "%s/d.yaml:3: did not find expected node content (while parsing "
	    "a flow node at line 3)", dir, dir, dir);
	assert_string_equal(errs, want);
	free(errs);
	rmdir_tmp(dir);
}

static void
test_registry_missing_dir(void **state)
{
	char	*errs = NULL;

	(void)state;
	assert_null(tmpl_registry_load("/nonexistent/templates", &defs,
	    &errs));
	assert_string_equal(errs, "/nonexistent/templates: cannot open "
	    "directory: No such file or directory");
	free(errs);
}

static void
test_registry_empty_dir(void **state)
{
	struct tmpl_registry	*reg;
	char			*dir, *errs = NULL;

	(void)state;
	dir = mkdir_tmp();
	reg = tmpl_registry_load(dir, &defs, &errs);
	assert_non_null(reg);
	assert_null(errs);
	assert_int_equal(reg->n, 0);
	assert_null(tmpl_registry_find(reg, "default", "x", NULL));
	tmpl_registry_free(reg);
	rmdir_tmp(dir);
}

static void
test_load_file(void **state)
{
	char		*dir, path[PATH_MAX], err[1024], want[PATH_MAX + 64];
	struct tmpl	*t;

	(void)state;
	dir = mkdir_tmp();
	put(dir, "seed.yaml", seed);
	snprintf(path, sizeof(path), "%s/seed.yaml", dir);
	t = tmpl_load_file(path, &defs, err, sizeof(err));
	if (t == NULL)
		fail_msg("%s", err);
	assert_string_equal(t->path, path);
	assert_int_equal(t->nsteps, 6);
	tmpl_free(t);

	snprintf(path, sizeof(path), "%s/missing.yaml", dir);
	assert_null(tmpl_load_file(path, &defs, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: cannot open: No such file or "
	    "directory", path);
	assert_string_equal(err, want);
	rmdir_tmp(dir);
}

static void
test_identity_name(void **state)
{
	(void)state;
	assert_string_equal(tmpl_identity_name(IDENTITY_STRICT), "strict");
	assert_string_equal(tmpl_identity_name(IDENTITY_CALLER_PROVIDED),
	    "caller_provided");
	assert_string_equal(tmpl_identity_name(IDENTITY_ALWAYS_UNIQUE),
	    "always_unique");
}

/* A long chain must neither overflow the stack nor be reported as a cycle;
 * closing it must be. */
static void
test_long_chain(void **state)
{
	enum { N = TMPL_MAX_STEPS };
	char		*y, *p, err[1024], want[2048];
	struct tmpl	*t;
	size_t		 i, cap = 64 + (size_t)N * 64;

	(void)state;
	p = y = malloc(cap);
	p += sprintf(p, "name: chain\nstep_templates:\n");
	for (i = 0; i < N; i++)
		p += sprintf(p, "  - name: s%zu\n    handler: noop\n"
		    "    depends_on_step: s%zu\n", i, (i + 1) % N);
	assert_null(load(y, err, sizeof(err)));
	/* The message is cut to the buffer, in execution order from s0. */
	p = want;
	p += sprintf(p, "t.yaml:3: cycle: s0");
	for (i = N - 1; i > 0 && p < want + sizeof(err); i--)
		p += sprintf(p, " -> s%zu", i);
	want[sizeof(err) - 1] = '\0';
	assert_string_equal(err, want);
	/* Break the cycle: the last step depends on nothing. */
	p = strrchr(y, '\n');
	*p = '\0';
	p = strrchr(y, '\n');
	p[1] = '\0';
	if ((t = load(y, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	assert_int_equal(t->nsteps, N);
	assert_int_equal(t->steps[N - 2].dep_idx[0], N - 1);
	tmpl_free(t);
	free(y);
}

#define ROUTES_HEAD \
	"name: onb\nstep_templates:\n  - name: a\n    handler: noop\n"

static void
test_routes(void **state)
{
	struct tmpl_registry	 reg;
	struct tmpl		*t, *items[1];
	const char		*id = NULL;
	char			 err[512];

	(void)state;
	t = load(ROUTES_HEAD "routes:\n"
	    "  create: {path: /user_onboarding, context_from: user_onboarding}\n"
	    "  status: {path: \"/user_onboarding/status/{task_id}\"}\n"
	    "  results:\n"
	    "    path: \"/user_onboarding/results/{task_id}\"\n"
	    "    body: {user_id: \"{{steps.a.results.id}}\"}\n", err,
	    sizeof(err));
	if (t == NULL)
		fail_msg("%s", err);
	assert_string_equal(t->route_create, "/user_onboarding");
	assert_string_equal(t->route_context_from, "user_onboarding");
	assert_non_null(json_object_get(t->route_results_body, "user_id"));

	items[0] = t;
	reg.items = items;
	reg.n = 1;
	assert_ptr_equal(tmpl_registry_route(&reg, ROUTE_CREATE,
	    "/user_onboarding", NULL), t);
	assert_null(tmpl_registry_route(&reg, ROUTE_CREATE,
	    "/user_onboarding/x", NULL));
	assert_ptr_equal(tmpl_registry_route(&reg, ROUTE_STATUS,
	    "/user_onboarding/status/42", &id), t);
	assert_string_equal(id, "42");
	assert_null(tmpl_registry_route(&reg, ROUTE_STATUS,
	    "/user_onboarding/status/", &id));
	assert_null(tmpl_registry_route(&reg, ROUTE_STATUS,
	    "/user_onboarding/status/4/2", &id));
	assert_null(tmpl_registry_route(&reg, ROUTE_RESULTS,
	    "/user_onboarding/status/42", &id));
	tmpl_free(t);

	expect_error(ROUTES_HEAD "routes:\n  create: {path: /v1/tasks}\n",
	    "t.yaml:6: routes.create.path: \"/v1/tasks\" must start with / "
	    "and stay outside /v1, /health and /metrics");
	expect_error(ROUTES_HEAD "routes:\n  status: {path: \"/s/{id}\"}\n",
	    "t.yaml:6: routes.status.path: \"/s/{id}\" must end in "
	    "/{task_id}");
	expect_error(ROUTES_HEAD "routes:\n  create: {path: \"/a/{task_id}\"}\n",
	    "t.yaml:6: routes.create.path: \"/a/{task_id}\" takes no "
	    "placeholder");
	expect_error(ROUTES_HEAD "routes:\n  results: {body: {a: 1}}\n",
	    "t.yaml:6: routes.results.body needs routes.results.path");

	/* Paths are matched without empty segments, and written so. */
	t = load(ROUTES_HEAD "routes:\n  create: {path: \"//sign ups//new/\"}\n"
	    "  status: {path: \"/s//{task_id}/\"}\n", err, sizeof(err));
	if (t == NULL)
		fail_msg("%s", err);
	assert_string_equal(t->route_create, "/sign ups/new");
	assert_string_equal(t->route_status, "/s/{task_id}");
	tmpl_free(t);
	/* ... and decoded, once: a request's "%20" and the template's are
	 * the same space. */
	t = load(ROUTES_HEAD "routes:\n  create: {path: \"/sign%20ups/%2541/"
	    "100%\"}\n  status: {path: \"/s%2fx/{task_id}\"}\n", err,
	    sizeof(err));
	if (t == NULL)
		fail_msg("%s", err);
	assert_string_equal(t->route_create, "/sign ups/%41/100%");
	assert_string_equal(t->route_status, "/s/x/{task_id}");
	tmpl_free(t);
	expect_error(ROUTES_HEAD "routes:\n  create: {path: \"/a%00b\"}\n",
	    "t.yaml:6: routes.create.path: decodes to a NUL or to bytes that "
	    "are not UTF-8");
	expect_error(ROUTES_HEAD "routes:\n  results: {path: \"/%ff/{task_id}\"}"
	    "\n", "t.yaml:6: routes.results.path: decodes to a NUL or to bytes "
	    "that are not UTF-8");
	t = load(ROUTES_HEAD "routes:\n  create: {path: \"/\"}\n", err,
	    sizeof(err));
	if (t == NULL)
		fail_msg("%s", err);
	assert_string_equal(t->route_create, "/");
	tmpl_free(t);
	expect_error(ROUTES_HEAD "routes:\n  create: {path: /v1/}\n",
	    "t.yaml:6: routes.create.path: \"/v1\" must start with / "
	    "and stay outside /v1, /health and /metrics");
	expect_error(ROUTES_HEAD "routes:\n  create: {path: //v1//tasks}\n",
	    "t.yaml:6: routes.create.path: \"/v1/tasks\" must start with / "
	    "and stay outside /v1, /health and /metrics");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seed_loads),
		cmocka_unit_test(test_tasker_keys),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_reads_results),
		cmocka_unit_test(test_scalar_json),
		cmocka_unit_test(test_err_unknown_keys),
		cmocka_unit_test(test_err_handler_config_depth),
		cmocka_unit_test(test_err_timeout_too_long),
		cmocka_unit_test(test_err_placeholders),
		cmocka_unit_test(test_err_types),
		cmocka_unit_test(test_err_names),
		cmocka_unit_test(test_err_name_lengths),
		cmocka_unit_test(test_err_deps),
		cmocka_unit_test(test_err_values),
		cmocka_unit_test(test_err_yaml),
		cmocka_unit_test(test_version_cmp),
		cmocka_unit_test(test_registry_versions),
		cmocka_unit_test(test_registry_duplicate),
		cmocka_unit_test(test_registry_route_clash),
		cmocka_unit_test(test_registry_errors),
		cmocka_unit_test(test_registry_missing_dir),
		cmocka_unit_test(test_registry_empty_dir),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_identity_name),
		cmocka_unit_test(test_long_chain),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_http_config),
		cmocka_unit_test(test_step_key_spellings),
		cmocka_unit_test(test_exec_config),
		cmocka_unit_test(test_plugin_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
