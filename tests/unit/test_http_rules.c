/* test_http_rules.c - the http handler's decisions (worker/http_rules.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "http_rules.h"

static json_t *
parse(const char *text)
{
	json_t		*v;
	json_error_t	 e;

	if ((v = json_loads(text, JSON_DECODE_ANY, &e)) == NULL)
		fail_msg("bad test JSON (%s): %s", e.text, text);
	return v;
}

static json_t *
scope_new(void)
{
	return parse("{\"context\": {\"user_info\": {\"email\": "
	    "\"a@example.com\", \"first_name\": \"John\", \"last_name\": "
	    "\"Doe\", \"age\": 42}}, \"steps\": {\"v\": {\"results\": "
	    "{\"ok\": true}}}, \"attempt\": 1}");
}

/* The onboarding template's create_user_account, as the supervisor sends
 * it (YAML already turned into JSON). */
static const char *const onboarding_cfg =
    "{\"method\": \"POST\", \"url\": \"/users\","
    " \"body\": {\"email\": \"{{context.user_info.email}}\"},"
    " \"results\": {\"user_id\": \"id\", \"email\": \"email\"},"
    " \"set\": {\"outcome\": \"created\"},"
    " \"on_status\": {"
    "  \"409\": {\"lookup\": {"
    "    \"url\": \"/users?email={{context.user_info.email}}\","
    "    \"match\": {"
    "     \"users.0.first_name\": \"{{context.user_info.first_name}}\","
    "     \"users.0.last_name\": \"{{context.user_info.last_name}}\"},"
    "    \"results\": {\"user_id\": \"users.0.id\"},"
    "    \"set\": {\"outcome\": \"already_exists\"}}},"
    "  \"402\": \"permanent\"}}";

/* cfg must fail the check with a message containing want. */
static void
check_bad(const char *cfgtext, const char *want)
{
	json_t	*cfg = parse(cfgtext);
	char	 err[512];

	err[0] = '\0';
	if (http_rules_check(cfg, err, sizeof(err)) != -1)
		fail_msg("accepted: %s", cfgtext);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\" for %s", err, want,
		    cfgtext);
	json_decref(cfg);
}

static void
check_good(const char *cfgtext)
{
	json_t	*cfg = parse(cfgtext);
	char	 err[512];

	err[0] = '\0';
	if (http_rules_check(cfg, err, sizeof(err)) != 0)
		fail_msg("refused (%s): %s", err, cfgtext);
	json_decref(cfg);
}

static void
test_check_accepts(void **state)
{
	(void)state;
	check_good(onboarding_cfg);
	check_good("{\"url\": \"http://x/\"}");
	check_good("{\"url\": \"{{env.BASE}}/x\"}");
	check_good("{\"url\": \"{{ env.BASE }}/x\"}");
	/* (A GET with a body is unusual but defined: some search APIs.) */
	check_good("{\"url\": \"/a\", \"method\": \"GET\", \"body\": {}}");
	check_good("{\"url\": \"/a\", \"method\": \"HEAD\", \"body\": null}");
	check_good("{\"url\": \"/a\", \"conflict\": \"success\","
	    " \"on_status\": {\"4xx\": \"retryable\"}}");
	check_good("{\"url\": \"/a\", \"on_status\": {"
	    "\"200\": {\"outcome\": \"retryable\"},"
	    "\"5xx\": {\"outcome\": \"success\", \"set\": {\"a\": 1}},"
	    "\"404\": {\"lookup\": {\"url\": \"/b\", \"method\": \"post\","
	    " \"headers\": {\"X-A\": \"{{env.HOME}}\"}, \"body\": [1],"
	    " \"results\": {\"all\": \"\"}}}}}");
}

static void
test_check_refuses(void **state)
{
	(void)state;
	check_bad("[]", "must be an object");
	check_bad("{\"method\": \"POST\"}", "url is required");
	/* Percent-encoded, such a value never gives a scheme and host. */
	check_bad("{\"url\": \"{{context.base}}/x\"}",
	    "url may start with a placeholder only from env");
	check_bad("{\"url\": \"{{ service.base_url }}/x\"}",
	    "url may start with a placeholder only from env");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"409\": {\"lookup\":"
	    " {\"url\": \"{{steps.a.results.next}}\"}}}}",
	    "url may start with a placeholder only from env");
	check_bad("{\"url\": \"/a\", \"on_stauts\": {}}",
	    "unknown key 'on_stauts'");
	check_bad("{\"url\": \"/a\", \"set\": [1]}", "set must be an object");
	check_bad("{\"url\": \"/a\", \"method\": \"head\", \"body\": {}}",
	    "http body: a HEAD request has no body");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"409\":"
	    " {\"lookup\": {\"url\": \"/b\", \"method\": \"HEAD\","
	    " \"body\": \"x\"}}}}", "on_status.409.lookup.body: a HEAD");
	check_bad("{\"url\": \"/a\", \"timeout\": 0}", "timeout");
	check_bad("{\"url\": \"/a\", \"results\": {\"id\": \"a..b\"}}",
	    "results.id must be a path string");
	check_bad("{\"url\": \"/a\", \"headers\": {\"X-A\": 1}}",
	    "header 'X-A'");
	check_bad("{\"url\": \"/a\", \"conflict\": \"maybe\"}",
	    "http conflict must be");
	check_bad("{\"url\": \"/a\", \"conflict\": \"success\","
	    " \"on_status\": {\"409\": \"permanent\"}}",
	    "conflict and on_status.409");
	check_bad("{\"url\": \"/a\", \"on_status\": []}",
	    "on_status must map");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"40x\": \"permanent\"}}",
	    "'40x' is not a status code");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"600\": \"permanent\"}}",
	    "'600' is not a status code");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"4XX\": \"permanent\"}}",
	    "'4XX' is not");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"402\": \"fatal\"}}",
	    "on_status.402 must be");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"402\": 2}}",
	    "on_status.402 must be");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"402\":"
	    " {\"outcome\": \"permanent\", \"retry\": 1}}}",
	    "on_status.402: unknown key 'retry'");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"402\": {}}}",
	    "on_status.402 needs outcome or lookup");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"402\":"
	    " {\"outcome\": \"ok\"}}}", "on_status.402.outcome must be");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"402\":"
	    " {\"outcome\": \"permanent\", \"set\": {}}}}",
	    "on_status.402.set only applies to outcome success");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"402\":"
	    " {\"outcome\": \"success\", \"set\": 3}}}",
	    "on_status.402.set must be an object");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"409\":"
	    " {\"outcome\": \"success\", \"lookup\": {\"url\": \"/b\"}}}}",
	    "a lookup decides the outcome");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"409\":"
	    " {\"set\": {}, \"lookup\": {\"url\": \"/b\"}}}}",
	    "set and results go inside the lookup");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"409\":"
	    " {\"results\": {}, \"lookup\": {\"url\": \"/b\"}}}}",
	    "set and results go inside the lookup");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"404\":"
	    " {\"outcome\": \"permanent\", \"results\": {}}}}",
	    "on_status.404.results only applies to outcome success");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"404\":"
	    " {\"outcome\": \"success\", \"results\": {\"a\": 1}}}}",
	    "on_status.404.results.a must be a path string");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"404\":"
	    " {\"outcome\": \"success\", \"results\": []}}}",
	    "on_status.404.results must map names to paths");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"409\":"
	    " {\"lookup\": \"/b\"}}}", "on_status.409.lookup must be an object");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"409\":"
	    " {\"lookup\": {\"url\": \"/b\", \"matches\": {}}}}}",
	    "on_status.409.lookup: unknown key 'matches'");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"409\":"
	    " {\"lookup\": {\"method\": \"GET\"}}}}",
	    "on_status.409.lookup.url is required");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"409\":"
	    " {\"lookup\": {\"url\": \"/b\", \"method\": \"G T\"}}}}",
	    "on_status.409.lookup.method must be");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"409\":"
	    " {\"lookup\": {\"url\": \"/b\", \"match\": [1]}}}}",
	    "on_status.409.lookup.match must map");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"409\":"
	    " {\"lookup\": {\"url\": \"/b\", \"match\": {\"a.\": 1}}}}}",
	    "'a.' is not a dotted path");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"409\":"
	    " {\"lookup\": {\"url\": \"/b\", \"results\": {\"x\": 1}}}}}",
	    "on_status.409.lookup.results.x must be");
	check_bad("{\"url\": \"/a\", \"on_status\": {\"409\":"
	    " {\"lookup\": {\"url\": \"/b\", \"set\": \"x\"}}}}",
	    "on_status.409.lookup.set must be an object");
}

static void
decide(const json_t *cfg, long status, enum http_action act,
    const char *key, struct http_rule *r)
{
	http_rules_decide(cfg, status, r);
	if (r->action != act)
		fail_msg("status %ld: action %d, want %d", status,
		    (int)r->action, (int)act);
	if (key == NULL && r->key != NULL)
		fail_msg("status %ld: rule '%s', want the classes", status,
		    r->key);
	if (key != NULL && (r->key == NULL || strcmp(r->key, key) != 0))
		fail_msg("status %ld: rule '%s', want '%s'", status,
		    r->key != NULL ? r->key : "(classes)", key);
}

/* An exact code beats a class, a class beats httpclass. */
static void
test_decide_precedence(void **state)
{
	json_t			*cfg;
	struct http_rule	 r;

	(void)state;
	cfg = parse("{\"url\": \"/a\", \"results\": {\"id\": \"id\"},"
	    " \"set\": {\"outcome\": \"created\"}, \"on_status\": {"
	    "\"4xx\": \"retryable\", \"402\": \"permanent\","
	    "\"409\": {\"lookup\": {\"url\": \"/b\", \"results\":"
	    " {\"id\": \"users.0.id\"}, \"set\": {\"o\": 1}}},"
	    "\"503\": {\"outcome\": \"success\", \"set\": {\"d\": true}}}}");
	decide(cfg, 402, HTTP_ACT_PERMANENT, "402", &r);
	decide(cfg, 404, HTTP_ACT_RETRYABLE, "4xx", &r);
	decide(cfg, 422, HTTP_ACT_RETRYABLE, "4xx", &r);
	decide(cfg, 409, HTTP_ACT_LOOKUP, "409", &r);
	assert_ptr_equal(r.lookup, json_object_get(json_object_get(
	    json_object_get(cfg, "on_status"), "409"), "lookup"));
	assert_ptr_equal(r.results, json_object_get(r.lookup, "results"));
	assert_ptr_equal(r.set, json_object_get(r.lookup, "set"));
	/* No 5xx class: 500 falls through to the status classes. */
	decide(cfg, 500, HTTP_ACT_RETRYABLE, NULL, &r);
	decide(cfg, 503, HTTP_ACT_SUCCESS, "503", &r);
	/* A success rule extracts with the top-level map, sets its own. */
	assert_ptr_equal(r.results, json_object_get(cfg, "results"));
	assert_ptr_equal(r.set, json_object_get(json_object_get(
	    json_object_get(cfg, "on_status"), "503"), "set"));
	/* A plain success carries the top-level set. */
	decide(cfg, 201, HTTP_ACT_SUCCESS, NULL, &r);
	assert_ptr_equal(r.results, json_object_get(cfg, "results"));
	assert_ptr_equal(r.set, json_object_get(cfg, "set"));
	assert_null(r.lookup);
	decide(cfg, 301, HTTP_ACT_PERMANENT, NULL, &r);
	decide(cfg, 0, HTTP_ACT_PERMANENT, NULL, &r);
	decide(cfg, 777, HTTP_ACT_PERMANENT, NULL, &r);
	json_decref(cfg);

	/* Without rules: httpclass, 409 permanent. */
	cfg = parse("{\"url\": \"/a\"}");
	decide(cfg, 200, HTTP_ACT_SUCCESS, NULL, &r);
	assert_null(r.results);
	assert_null(r.set);
	decide(cfg, 409, HTTP_ACT_PERMANENT, NULL, &r);
	decide(cfg, 429, HTTP_ACT_RETRYABLE, NULL, &r);
	decide(cfg, 404, HTTP_ACT_PERMANENT, NULL, &r);
	json_decref(cfg);
}

/* The old conflict key is on_status {"409": value}: above the classes. */
static void
test_decide_conflict(void **state)
{
	json_t			*cfg;
	struct http_rule	 r;

	(void)state;
	cfg = parse("{\"url\": \"/a\", \"conflict\": \"success\","
	    " \"set\": {\"x\": 1}, \"on_status\": {\"4xx\": \"retryable\"}}");
	decide(cfg, 409, HTTP_ACT_SUCCESS, "conflict", &r);
	/* Not a plain success: the top-level set is not claimed. */
	assert_null(r.set);
	decide(cfg, 408, HTTP_ACT_RETRYABLE, "4xx", &r);
	json_decref(cfg);

	cfg = parse("{\"url\": \"/a\", \"conflict\": \"retryable\"}");
	decide(cfg, 409, HTTP_ACT_RETRYABLE, "conflict", &r);
	json_decref(cfg);
	cfg = parse("{\"url\": \"/a\", \"conflict\": \"permanent\"}");
	decide(cfg, 409, HTTP_ACT_PERMANENT, "conflict", &r);
	json_decref(cfg);
}

/* "success" and {"outcome": "success"} mean the same; only the object can
 * carry a set. */
static void
test_decide_string_vs_object(void **state)
{
	json_t			*cfg;
	struct http_rule	 r;

	(void)state;
	cfg = parse("{\"url\": \"/a\", \"results\": {\"i\": \"id\"},"
	    " \"on_status\": {\"409\": \"success\","
	    " \"410\": {\"outcome\": \"success\", \"set\": {\"gone\": true}},"
	    " \"411\": {\"outcome\": \"retryable\"},"
	    " \"412\": \"retryable\","
	    " \"404\": {\"outcome\": \"success\", \"results\": {}}}}");
	decide(cfg, 409, HTTP_ACT_SUCCESS, "409", &r);
	assert_null(r.set);
	assert_ptr_equal(r.results, json_object_get(cfg, "results"));
	decide(cfg, 410, HTTP_ACT_SUCCESS, "410", &r);
	assert_non_null(r.set);
	assert_true(json_is_true(json_object_get(r.set, "gone")));
	decide(cfg, 411, HTTP_ACT_RETRYABLE, "411", &r);
	assert_null(r.results);
	decide(cfg, 412, HTTP_ACT_RETRYABLE, "412", &r);
	/* A rule's own map, here an empty one, stands for the top-level's
	 * (a 404's body is not the 2xx's shape). */
	decide(cfg, 404, HTTP_ACT_SUCCESS, "404", &r);
	assert_non_null(r.results);
	assert_int_equal(json_object_size(r.results), 0);
	json_decref(cfg);
}

static void
test_match(void **state)
{
	json_t	*scope, *doc, *match;
	char	 err[512];

	(void)state;
	scope = scope_new();
	doc = parse("{\"users\": [{\"id\": 7, \"first_name\": \"John\","
	    " \"last_name\": \"Doe\", \"age\": 42.0, \"tags\": [1, {\"a\": 2}]}"
	    "], \"count\": 1}");

	match = parse("{\"users.0.first_name\": "
	    "\"{{context.user_info.first_name}}\","
	    " \"users.0.last_name\": \"{{context.user_info.last_name}}\"}");
	assert_int_equal(http_rules_match(match, doc, scope, err,
	    sizeof(err)), 1);
	json_decref(match);

	/* Type-preserving render; 42 and 42.0 are one number; nested values
	 * compare deeply; literal values need no placeholder. */
	match = parse("{\"users.0.age\": \"{{context.user_info.age}}\","
	    " \"users.0.tags\": [1.0, {\"a\": 2}], \"count\": 1}");
	assert_int_equal(http_rules_match(match, doc, scope, err,
	    sizeof(err)), 1);
	json_decref(match);

	/* No match at all: any 2xx will do. */
	assert_int_equal(http_rules_match(NULL, doc, scope, err,
	    sizeof(err)), 1);

	/* The first mismatch, in template order, with both values. */
	match = parse("{\"users.0.first_name\": \"{{context.user_info."
	    "first_name}}\", \"users.0.last_name\": \"Smith\","
	    " \"users.0.id\": 8}");
	err[0] = '\0';
	assert_int_equal(http_rules_match(match, doc, scope, err,
	    sizeof(err)), 0);
	assert_string_equal(err, "match 'users.0.last_name': expected "
	    "\"Smith\", got \"Doe\"");
	json_decref(match);

	/* Strings compare exactly: no case folding, no coercion. */
	match = parse("{\"users.0.first_name\": \"john\"}");
	assert_int_equal(http_rules_match(match, doc, scope, err,
	    sizeof(err)), 0);
	json_decref(match);
	match = parse("{\"users.0.id\": \"7\"}");
	assert_int_equal(http_rules_match(match, doc, scope, err,
	    sizeof(err)), 0);
	assert_string_equal(err, "match 'users.0.id': expected \"7\", got 7");
	json_decref(match);

	/* No path of match there (no user found) is no record, not an
	 * error; some there and one missing is a different record. */
	match = parse("{\"users.1.first_name\": \"John\","
	    " \"users.1.last_name\": \"Doe\"}");
	assert_int_equal(http_rules_match(match, doc, scope, err,
	    sizeof(err)), 2);
	assert_string_equal(err, "match 'users.1.first_name': no such path");
	json_decref(match);
	match = parse("{\"users.0.first_name\": \"John\","
	    " \"users.0.nickname\": \"Jo\"}");
	assert_int_equal(http_rules_match(match, doc, scope, err,
	    sizeof(err)), 0);
	assert_string_equal(err, "match 'users.0.nickname': expected \"Jo\", "
	    "got nothing (no such path)");
	json_decref(match);
	json_decref(doc);
	doc = parse("{\"users\": []}");
	match = parse("{\"users.0.first_name\": \"John\"}");
	assert_int_equal(http_rules_match(match, doc, scope, err,
	    sizeof(err)), 2);
	json_decref(match);
	json_decref(doc);

	/* A placeholder naming nothing in the scope is a render error. */
	doc = parse("{}");
	match = parse("{\"a\": \"{{context.user_info.nickname}}\"}");
	assert_int_equal(http_rules_match(match, doc, scope, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "context.user_info.nickname"));
	json_decref(match);
	json_decref(doc);
	json_decref(scope);
}

static void
test_json_equal(void **state)
{
	json_t	*a, *b;

	(void)state;
	a = parse("{\"x\": [1, 2.5, \"s\", null, true], \"y\": {}}");
	b = parse("{\"y\": {}, \"x\": [1.0, 2.5, \"s\", null, true]}");
	assert_true(http_rules_json_equal(a, b));
	json_decref(b);
	b = parse("{\"y\": {}, \"x\": [1.0, 2.5, \"s\", null, false]}");
	assert_false(http_rules_json_equal(a, b));
	json_decref(b);
	b = parse("{\"y\": {}, \"x\": [1, 2.5, \"s\", null]}");
	assert_false(http_rules_json_equal(a, b));
	json_decref(b);
	b = parse("{\"y\": {}, \"x\": [1, 2.5, \"s\", null, true], \"z\": 1}");
	assert_false(http_rules_json_equal(a, b));
	json_decref(b);
	json_decref(a);
	a = parse("\"\\u00e9\"");
	b = parse("\"\\u00e9\"");
	assert_true(http_rules_json_equal(a, b));
	json_decref(b);
	b = parse("\"e\"");
	assert_false(http_rules_json_equal(a, b));
	json_decref(b);
	json_decref(a);
	a = parse("0");
	b = parse("false");
	assert_false(http_rules_json_equal(a, b));
	assert_false(http_rules_json_equal(a, NULL));
	json_decref(b);
	json_decref(a);
}

static void
test_results_and_set(void **state)
{
	json_t		*scope, *map, *set, *r, *want;
	const char	*code;
	char		 err[512];

	(void)state;
	scope = scope_new();

	/* Extraction through array indices, then set rendered over it. */
	map = parse("{\"user_id\": \"users.0.id\", \"email\": "
	    "\"users.0.email\", \"outcome\": \"users.0.status\"}");
	set = parse("{\"outcome\": \"already_exists\", \"who\":"
	    " \"{{context.user_info.first_name}} {{context.user_info."
	    "last_name}}\", \"age\": \"{{context.user_info.age}}\","
	    " \"prev\": \"{{steps.v.results}}\"}");
	r = http_rules_results(parse("{\"users\": [{\"id\": 7, \"email\":"
	    " \"a@example.com\", \"status\": \"active\"}]}"), map, set, scope,
	    &code, err, sizeof(err));
	assert_non_null(r);
	want = parse("{\"user_id\": 7, \"email\": \"a@example.com\","
	    " \"outcome\": \"already_exists\", \"who\": \"John Doe\","
	    " \"age\": 42, \"prev\": {\"ok\": true}}");
	assert_true(json_equal(r, want));
	json_decref(want);
	json_decref(r);

	/* No map: the whole document, set merged into it. */
	json_decref(set);
	set = parse("{\"outcome\": \"created\"}");
	r = http_rules_results(parse("{\"id\": 9}"), NULL, set, scope, &code,
	    err, sizeof(err));
	want = parse("{\"id\": 9, \"outcome\": \"created\"}");
	assert_true(json_equal(r, want));
	json_decref(want);
	json_decref(r);

	/* Neither: the document as it came. */
	r = http_rules_results(parse("[1, 2]"), NULL, NULL, scope, &code,
	    err, sizeof(err));
	assert_int_equal(json_array_size(r), 2);
	json_decref(r);

	/* A set cannot merge into an array. */
	code = NULL;
	r = http_rules_results(parse("[1, 2]"), NULL, set, scope, &code, err,
	    sizeof(err));
	assert_null(r);
	assert_string_equal(code, "extract_error");

	/* A missing path is an extraction error naming it. */
	code = NULL;
	r = http_rules_results(parse("{\"users\": []}"), map, set, scope,
	    &code, err, sizeof(err));
	assert_null(r);
	assert_string_equal(code, "extract_error");
	assert_string_equal(err, "response has no 'users.0.id' for "
	    "results.user_id");

	/* A set naming nothing is a render error. */
	json_decref(set);
	set = parse("{\"x\": \"{{context.nope}}\"}");
	code = NULL;
	r = http_rules_results(parse("{}"), NULL, set, scope, &code, err,
	    sizeof(err));
	assert_null(r);
	assert_string_equal(code, "render_error");
	assert_non_null(strstr(err, "context.nope"));
	json_decref(set);
	json_decref(map);

	/* Too deep for the protocol. */
	code = NULL;
	r = http_rules_results(parse("[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]"
	    "]]]]]]]]]]]]]"), NULL, NULL, scope, &code, err, sizeof(err));
	assert_null(r);
	assert_string_equal(code, "response_too_deep");
	json_decref(scope);
}

/* Every template is rendered before the first request. */
static void
test_render_check(void **state)
{
	json_t	*scope, *cfg;
	char	 err[512];

	(void)state;
	scope = scope_new();
	cfg = parse(onboarding_cfg);
	assert_int_equal(http_rules_render_check(cfg, scope, err,
	    sizeof(err)), 0);
	json_decref(cfg);

	cfg = parse("{\"url\": \"/a\", \"on_status\": {\"409\": {\"lookup\":"
	    " {\"url\": \"/b\", \"match\": {\"a\": \"{{context.user_info."
	    "frist_name}}\"}}}}}");
	assert_int_equal(http_rules_render_check(cfg, scope, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "on_status.409.lookup.match: "));
	assert_non_null(strstr(err, "frist_name"));
	json_decref(cfg);

	cfg = parse("{\"url\": \"/a\", \"set\": {\"a\": \"{{steps.x.y}}\"}}");
	assert_int_equal(http_rules_render_check(cfg, scope, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "set: "));
	json_decref(cfg);

	cfg = parse("{\"url\": \"/a\", \"on_status\": {\"4xx\": {\"outcome\":"
	    " \"success\", \"set\": {\"a\": \"{{context.zz}}\"}}}}");
	assert_int_equal(http_rules_render_check(cfg, scope, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "on_status.4xx.set: "));
	json_decref(cfg);
	json_decref(scope);
}

static void
test_service(void **state)
{
	struct http_service	 svc;
	json_t			*in;
	char			 err[512];

	(void)state;
	in = parse("{\"context\": {}}");
	assert_int_equal(http_rules_service(in, &svc, err, sizeof(err)), 0);
	assert_null(svc.name);
	assert_null(svc.base_url);
	assert_int_equal(svc.timeout_ms, 0);
	json_decref(in);

	in = parse("{\"service\": {\"name\": \"user_service\", \"base_url\":"
	    " \"http://127.0.0.1:3001\", \"timeout_ms\": 5000, \"extra\": 1}}");
	assert_int_equal(http_rules_service(in, &svc, err, sizeof(err)), 0);
	assert_string_equal(svc.name, "user_service");
	assert_string_equal(svc.base_url, "http://127.0.0.1:3001");
	assert_int_equal(svc.timeout_ms, 5000);
	json_decref(in);

	in = parse("{\"service\": \"user_service\"}");
	assert_int_equal(http_rules_service(in, &svc, err, sizeof(err)), -1);
	json_decref(in);
	in = parse("{\"service\": {\"name\": \"s\", \"timeout_ms\": -1}}");
	assert_int_equal(http_rules_service(in, &svc, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "timeout_ms"));
	json_decref(in);
	in = parse("{\"service\": {\"name\": \"s\", \"base_url\": 3}}");
	assert_int_equal(http_rules_service(in, &svc, err, sizeof(err)), -1);
	json_decref(in);
}

static void
check_url(const struct http_service *svc, const char *url, const char *want)
{
	char	*got, err[512];

	err[0] = '\0';
	got = http_rules_url(url, svc, err, sizeof(err));
	if (want == NULL && got != NULL)
		fail_msg("'%s' gave '%s', want an error", url, got);
	if (want != NULL && (got == NULL || strcmp(got, want) != 0))
		fail_msg("'%s' gave '%s' (%s), want '%s'", url,
		    got != NULL ? got : "NULL", err, want);
	free(got);
}

static void
test_url_and_timeout(void **state)
{
	struct http_service	 svc = { "user_service", "http://h:3001", 0 };
	struct http_service	 slash = { "s", "http://h:3001/api//", 2000 };
	struct http_service	 none = { "billing", NULL, 0 };
	struct http_service	 nosvc = { NULL, NULL, 0 };
	struct http_service	 rel = { "s", "h:3001", 0 };
	char			 err[512];

	(void)state;
	check_url(&svc, "/users", "http://h:3001/users");
	check_url(&svc, "/users?email=a%40b", "http://h:3001/users?email=a%40b");
	check_url(&slash, "/users", "http://h:3001/api/users");
	check_url(&svc, "https://other/x", "https://other/x");
	check_url(&svc, "HTTP://other/x", "HTTP://other/x");
	check_url(&svc, "users", NULL);
	check_url(&svc, "ftp://x/", NULL);
	check_url(&rel, "/users", NULL);

	assert_null(http_rules_url("/users", &none, err, sizeof(err)));
	assert_non_null(strstr(err, "service 'billing' has none"));
	assert_null(http_rules_url("/users", &nosvc, err, sizeof(err)));
	assert_non_null(strstr(err, "names no service"));
	/* No base needed for an absolute URL. */
	check_url(&nosvc, "http://x/", "http://x/");

	assert_int_equal(http_rules_timeout_ms(15000, &svc), 15000);
	assert_int_equal(http_rules_timeout_ms(15000, &slash), 2000);
	assert_int_equal(http_rules_timeout_ms(1000, &slash), 1000);
	assert_int_equal(http_rules_timeout_ms(0, &slash), 2000);
	assert_int_equal(http_rules_timeout_ms(0, &svc), 0);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_check_accepts),
		cmocka_unit_test(test_check_refuses),
		cmocka_unit_test(test_decide_precedence),
		cmocka_unit_test(test_decide_conflict),
		cmocka_unit_test(test_decide_string_vs_object),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_json_equal),
		cmocka_unit_test(test_results_and_set),
		cmocka_unit_test(test_render_check),
		cmocka_unit_test(test_service),
		cmocka_unit_test(test_url_and_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
