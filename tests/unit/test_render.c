/* test_render.c - placeholder rendering (common/render.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "render.h"

static json_t *
scope_new(void)
{
	json_t		*s;
	json_error_t	 e;

	s = json_loads("{"
	    "\"context\": {"
	    "  \"user\": {\"email\": \"a b&c/d@example.com\", \"name\": "
	    "    \"Zo\\u00eb\", \"age\": 42, \"admin\": true, "
	    "    \"nick\": null, \"score\": 1.5},"
	    "  \"items\": [\"zero\", {\"sku\": \"S-1\"}, [10, 20]],"
	    "  \"plan\": {\"id\": \"pro\", \"seats\": 3},"
	    "  \"up\": \"..\", \"here\": \".\", \"ver\": \"1.2\","
	    "  \"dots\": \"...\","
	    "  \"price\": 19.99, \"whole\": 3.0, \"tiny\": 1e-300"
	    "},"
	    "\"steps\": {\"create_user\": {\"results\": {\"id\": 7,"
	    "  \"tags\": [\"x\"]}}},"
	    "\"attempt\": 2"
	    "}", 0, &e);
	if (s == NULL)
		fail_msg("scope: %s", e.text);
	return s;
}

static json_t *
parse(const char *text)
{
	json_t		*v;
	json_error_t	 e;

	v = json_loads(text, JSON_DECODE_ANY, &e);
	if (v == NULL)
		fail_msg("parse %s: %s", text, e.text);
	return v;
}

/* Render tmpl (JSON text) and compare with want (JSON text). */
static void
check_json(const char *tmpl, const char *want)
{
	json_t	*scope, *t, *w, *got;
	char	 err[256] = "", *dump;

	scope = scope_new();
	t = parse(tmpl);
	w = parse(want);
	got = render_json(t, scope, err, sizeof(err));
	if (got == NULL)
		fail_msg("render %s: %s", tmpl, err);
	if (!json_equal(got, w)) {
		dump = json_dumps(got, JSON_ENCODE_ANY);
		fail_msg("render %s: got %s want %s", tmpl, dump, want);
	}
	json_decref(got);
	json_decref(w);
	json_decref(t);
	json_decref(scope);
}

static void
check_string(const char *tmpl, enum render_mode mode, const char *want)
{
	json_t	*scope;
	char	 err[256] = "", *got;

	scope = scope_new();
	got = render_string(tmpl, scope, mode, err, sizeof(err));
	if (got == NULL)
		fail_msg("render %s: %s", tmpl, err);
	assert_string_equal(got, want);
	free(got);
	json_decref(scope);
}

/* Rendering as a URL must fail, the reason containing needle. */
static void
check_url_error(const char *tmpl, const char *needle)
{
	json_t	*scope;
	char	 err[256] = "", *got;

	scope = scope_new();
	got = render_string(tmpl, scope, RENDER_URL, err, sizeof(err));
	assert_null(got);
	if (strstr(err, needle) == NULL)
		fail_msg("render %s: error \"%s\" lacks \"%s\"", tmpl, err,
		    needle);
	json_decref(scope);
}

/* Rendering must fail and the reason must contain needle. */
static void
check_error(const char *tmpl, const char *needle)
{
	json_t	*scope;
	char	 err[256] = "", *got;
	json_t	*t, *r;

	scope = scope_new();
	got = render_string(tmpl, scope, RENDER_TEXT, err, sizeof(err));
	assert_null(got);
	if (strstr(err, needle) == NULL)
		fail_msg("render %s: error \"%s\" lacks \"%s\"", tmpl, err,
		    needle);

	/* The same through render_json, inside a nested value. */
	err[0] = '\0';
	t = json_pack("{s:[i,{s:s}]}", "a", 1, "b", tmpl);
	r = render_json(t, scope, err, sizeof(err));
	assert_null(r);
	if (strstr(err, needle) == NULL)
		fail_msg("render_json %s: error \"%s\" lacks \"%s\"", tmpl,
		    err, needle);
	json_decref(t);
	json_decref(scope);
}

static void
test_whole_value_types(void **state)
{
	(void)state;
	check_json("\"{{context.plan}}\"", "{\"id\": \"pro\", \"seats\": 3}");
	check_json("\"{{context.user.age}}\"", "42");
	check_json("\"{{context.user.score}}\"", "1.5");
	check_json("\"{{context.user.admin}}\"", "true");
	check_json("\"{{context.user.nick}}\"", "null");
	check_json("\"{{context.items}}\"",
	    "[\"zero\", {\"sku\": \"S-1\"}, [10, 20]]");
	check_json("\"{{steps.create_user.results.id}}\"", "7");
	check_json("\"{{attempt}}\"", "2");
	/* Spaces inside the braces do not change anything. */
	check_json("\"{{  context.user.age\\t}}\"", "42");
	check_json("\"{{ context.user.name }}\"", "\"Zo\\u00eb\"");
}

static void
test_whole_value_is_a_copy(void **state)
{
	json_t	*scope, *t, *got;
	char	 err[128];

	(void)state;
	scope = scope_new();
	t = json_string("{{context.plan}}");
	got = render_json(t, scope, err, sizeof(err));
	assert_non_null(got);
	/* Changing the rendered value must not reach back into the scope. */
	json_object_set_new(got, "seats", json_integer(99));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
	    json_object_get(scope, "context"), "plan"), "seats")), 3);
	json_decref(got);
	json_decref(t);
	json_decref(scope);
}

static void
test_interpolation(void **state)
{
	(void)state;
	check_string("Hello {{context.user.name}}!", RENDER_TEXT,
	    "Hello Zo\xc3\xab!");
	check_string("age={{context.user.age}} score={{context.user.score}}",
	    RENDER_TEXT, "age=42 score=1.5");
	/* Reals as their shortest exact text, still reals. */
	check_string("{{context.price}} {{context.whole}} {{context.tiny}}",
	    RENDER_TEXT, "19.99 3.0 1e-300");
	check_string("http://h/?amount={{context.price}}", RENDER_URL,
	    "http://h/?amount=19.99");
	check_string("{{context.user.admin}}/{{context.user.nick}}",
	    RENDER_TEXT, "true/null");
	/* A missing optional value is no text; a present null is "null". */
	check_string("ref={{context.ref?}}&nick={{context.user.nick?}}",
	    RENDER_TEXT, "ref=&nick=null");
	check_string("http://h/?ref={{context.ref?}}", RENDER_URL,
	    "http://h/?ref=");
	check_string("plan: {{context.plan}}", RENDER_TEXT,
	    "plan: {\"id\":\"pro\",\"seats\":3}");
	check_string("{{attempt}}", RENDER_TEXT, "2");
	check_string("{{context.user.age}}{{context.user.age}}", RENDER_TEXT,
	    "4242");
	check_json("\"id-{{steps.create_user.results.id}}\"", "\"id-7\"");
	check_json("\" {{context.user.age}}\"", "\" 42\"");
}

static void
test_url_mode(void **state)
{
	(void)state;
	check_string("http://h/users?email={{context.user.email}}", RENDER_URL,
	    "http://h/users?email=a%20b%26c%2Fd%40example.com");
	check_string("http://h/u/{{context.user.name}}", RENDER_URL,
	    "http://h/u/Zo%C3%AB");
	/* Unreserved characters stay as they are. */
	check_string("http://h/{{context.items.1.sku}}", RENDER_URL,
	    "http://h/S-1");
	check_string("http://h/{{context.user.age}}", RENDER_URL,
	    "http://h/42");
	/* A value of one or two dots in the path would be a dot segment
	 * (a server that normalizes decodes "%2E%2E" to ".."): refused.  In
	 * the query it is a value like any: encoded. */
	check_url_error("http://h/u/{{context.up}}/prefs", "'..'");
	check_url_error("http://h/u/{{context.here}}/prefs", "'.'");
	check_url_error("http://h/u/x{{context.up}}", "'..'");
	check_string("http://h/u?q={{context.up}}", RENDER_URL,
	    "http://h/u?q=%2E%2E");
	check_string("http://h/u#{{context.here}}", RENDER_URL,
	    "http://h/u#%2E");
	check_string("http://h/u/{{context.dots}}/prefs", RENDER_URL,
	    "http://h/u/%2E%2E%2E/prefs");
	check_string("http://h/v/{{context.ver}}", RENDER_URL,
	    "http://h/v/1.2");
	/* Text mode leaves the same value alone. */
	check_string("{{context.user.email}}", RENDER_TEXT,
	    "a b&c/d@example.com");
}

static void
test_url_mode_env(void **state)
{
	(void)state;
	setenv("TASKERD_TEST_TOKEN", "a~b c", 1);
	check_string("http://h/?t={{env.TASKERD_TEST_TOKEN}}", RENDER_URL,
	    "http://h/?t=a~b%20c");
	unsetenv("TASKERD_TEST_TOKEN");
	/* At the start it is the URL's base, as the operator wrote it. */
	setenv("TASKERD_TEST_BASE", "http://svc:3000/api", 1);
	check_string("{{env.TASKERD_TEST_BASE}}/users/{{context.user.name}}",
	    RENDER_URL, "http://svc:3000/api/users/Zo%C3%AB");
	unsetenv("TASKERD_TEST_BASE");
	/* A context value never is: a client does not choose the host. */
	check_string("{{context.user.email}}/x", RENDER_URL,
	    "a%20b%26c%2Fd%40example.com/x");
}

static void
test_nested(void **state)
{
	(void)state;
	check_json("{\"user\": {\"email\": \"{{context.user.email}}\","
	    " \"age\": \"{{context.user.age}}\"},"
	    " \"list\": [\"{{context.items.0}}\", 5, null, false,"
	    "   {\"deep\": [\"{{context.plan.seats}}\"]}],"
	    " \"literal\": 3.25, \"plain\": \"no placeholders\"}",
	    "{\"user\": {\"email\": \"a b&c/d@example.com\", \"age\": 42},"
	    " \"list\": [\"zero\", 5, null, false, {\"deep\": [3]}],"
	    " \"literal\": 3.25, \"plain\": \"no placeholders\"}");
	check_json("[]", "[]");
	check_json("{}", "{}");
}

static void
test_array_index(void **state)
{
	(void)state;
	check_json("\"{{context.items.0}}\"", "\"zero\"");
	check_json("\"{{context.items.1.sku}}\"", "\"S-1\"");
	check_json("\"{{context.items.2.1}}\"", "20");
	check_json("\"{{steps.create_user.results.tags.0}}\"", "\"x\"");
	check_error("{{context.items.3}}", "context.items.3");
	check_error("{{context.items.x}}", "context.items.x");
	check_error("{{context.items.-1}}", "context.items.-1");
}

static void
test_lookup(void **state)
{
	json_t		*scope;
	const json_t	*v;

	(void)state;
	scope = scope_new();
	v = render_lookup(scope, "context.items.2.0");
	assert_non_null(v);
	assert_int_equal(json_integer_value(v), 10);
	assert_null(render_lookup(scope, ""));
	assert_null(render_lookup(scope, "context..user"));
	assert_null(render_lookup(scope, "context.user."));
	assert_null(render_lookup(scope, "context.user.age.more"));
	assert_null(render_lookup(NULL, "context"));
	/* A null value is present, not missing. */
	v = render_lookup(scope, "context.user.nick");
	assert_non_null(v);
	assert_true(json_is_null(v));
	json_decref(scope);
}

/* A key of 256 bytes or more is found as a shorter one is: it never was,
 * and its step failed at each run with "missing path". */
static void
test_lookup_long_key(void **state)
{
	json_t		*scope;
	const json_t	*v;
	char		 key[1001], path[1100];

	(void)state;
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	scope = json_pack("{s:{s:{s:i}}}", "context", key, "n", 7);
	snprintf(path, sizeof(path), "context.%s.n", key);
	v = render_lookup(scope, path);
	assert_non_null(v);
	assert_int_equal(json_integer_value(v), 7);
	/* The same key one byte shorter is another key. */
	snprintf(path, sizeof(path), "context.%.*s.n", 999, key);
	assert_null(render_lookup(scope, path));
	json_decref(scope);
}

static void
test_missing_path(void **state)
{
	(void)state;
	check_error("{{context.user.phone}}", "context.user.phone");
	check_error("x {{steps.nope.results.id}} y", "steps.nope.results.id");
	check_error("{{ context.user.age.more }}", "context.user.age.more");
	check_error("{{context.user.phone}}", "missing");
}

static void
test_malformed(void **state)
{
	(void)state;
	check_error("{{context.user.age", "unterminated");
	check_error("a {{context.user.age}} b {{ c", "unterminated");
	check_error("{{context.user.age}", "unterminated");
	check_error("{{}}", "empty");
	check_error("x {{   }} y", "empty");
	check_error("{{ context.user.nick ? }}", "space before its '?'");
	check_error("{{context.user.nick\t?}}", "space before its '?'");
}

static void
test_env(void **state)
{
	(void)state;
	setenv("TASKERD_TEST_SECRET", "s3cr3t", 1);
	check_string("Bearer {{env.TASKERD_TEST_SECRET}}", RENDER_TEXT,
	    "Bearer s3cr3t");
	check_json("\"{{ env.TASKERD_TEST_SECRET }}\"", "\"s3cr3t\"");
	unsetenv("TASKERD_TEST_SECRET");
	check_error("Bearer {{env.TASKERD_TEST_SECRET}}",
	    "TASKERD_TEST_SECRET");
	check_error("{{env.TASKERD_TEST_SECRET}}", "environment");
	check_error("{{env.}}", "environment");
}

static void
test_untouched(void **state)
{
	(void)state;
	check_string("", RENDER_TEXT, "");
	check_string("plain text", RENDER_TEXT, "plain text");
	check_string("a } b { c }} d", RENDER_TEXT, "a } b { c }} d");
	/* Literal template text is not encoded in URL mode. */
	check_string("http://h/a b?x=1&y=2", RENDER_URL,
	    "http://h/a b?x=1&y=2");
	check_json("\"plain\"", "\"plain\"");
	check_json("17", "17");
	check_json("null", "null");
	check_json("true", "true");
}

static void
test_no_rescan(void **state)
{
	json_t	*scope, *t, *got;
	char	 err[128];

	(void)state;
	/* A value that looks like a placeholder stays text. */
	scope = json_pack("{s:{s:s}}", "context", "evil", "{{env.HOME}}");
	t = json_string("x{{context.evil}}");
	got = render_json(t, scope, err, sizeof(err));
	assert_non_null(got);
	assert_string_equal(json_string_value(got), "x{{env.HOME}}");
	json_decref(got);
	json_decref(t);
	json_decref(scope);
}

static void
test_optional_paths(void **state)
{
	json_t	*scope, *tmpl, *out;
	char	 err[256];

	(void)state;
	scope = json_pack("{s:{s:s}}", "context", "plan", "free");
	tmpl = json_pack("{s:s, s:s, s:[s]}", "plan", "{{context.plan}}",
	    "method", "{{ context.method? }}", "list", "{{context.gone?}}");
	out = render_json(tmpl, scope, err, sizeof(err));
	assert_non_null(out);
	/* The absent member is left out; in an array it stays as null. */
	assert_string_equal(json_string_value(json_object_get(out, "plan")),
	    "free");
	assert_null(json_object_get(out, "method"));
	assert_true(json_is_null(json_array_get(json_object_get(out, "list"),
	    0)));
	json_decref(out);
	json_decref(tmpl);

	/* Without the '?', the same path is an error. */
	tmpl = json_pack("{s:s}", "method", "{{context.method}}");
	assert_null(render_json(tmpl, scope, err, sizeof(err)));
	assert_string_equal(err, "missing path 'context.method'");
	json_decref(tmpl);

	/* A present optional value is used as usual. */
	tmpl = json_pack("{s:s}", "plan", "{{context.plan?}}");
	out = render_json(tmpl, scope, err, sizeof(err));
	assert_string_equal(json_string_value(json_object_get(out, "plan")),
	    "free");
	json_decref(out);
	json_decref(tmpl);
	json_decref(scope);
}

/* Lenient: every missing path is as an optional one, but a member that
 * is a plain placeholder stays, as null (a malformed one still fails). */
static void
test_lenient(void **state)
{
	json_t	*scope, *tmpl, *out, *want;
	char	 err[256];

	(void)state;
	scope = json_pack("{s:{s:s}}", "context", "plan", "free");
	tmpl = json_pack("{s:s, s:s, s:s, s:[s]}", "id", "{{steps.a.results.id}}",
	    "label", "{{context.plan}} #{{steps.a.results.id}}",
	    "note", "{{steps.a.results.note?}}", "list", "{{steps.b}}");
	out = render_json_lenient(tmpl, scope, err, sizeof(err));
	assert_non_null(out);
	want = parse("{\"id\": null, \"label\": \"free #\", "
	    "\"list\": [null]}");
	assert_true(json_equal(out, want));
	json_decref(want);
	json_decref(out);
	json_decref(tmpl);

	/* The strict renderer still refuses the same body. */
	tmpl = json_pack("{s:s}", "id", "{{steps.a.results.id}}");
	assert_null(render_json(tmpl, scope, err, sizeof(err)));
	json_decref(tmpl);
	tmpl = json_pack("{s:s}", "id", "{{steps.a.results.id");
	assert_null(render_json_lenient(tmpl, scope, err, sizeof(err)));
	json_decref(tmpl);
	json_decref(scope);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole_value_types),
		cmocka_unit_test(test_whole_value_is_a_copy),
		cmocka_unit_test(test_interpolation),
		cmocka_unit_test(test_url_mode),
		cmocka_unit_test(test_url_mode_env),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_array_index),
		cmocka_unit_test(test_lookup_long_key),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_missing_path),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_untouched),
		cmocka_unit_test(test_no_rescan),
		cmocka_unit_test(test_optional_paths),
		cmocka_unit_test(test_lenient),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
