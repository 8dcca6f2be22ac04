/* test_schema.c - the JSON Schema subset: checks, assertions, defaults. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include "schema.h"

static json_t *
jparse(const char *text)
{
	json_error_t	 jerr;
	json_t		*j;

	j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (j == NULL)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	return j;
}

/* Violations of instance text against schema text (which must check). */
static json_t *
violations(const char *schema_text, const char *inst_text)
{
	json_t	*schema, *inst, *v;
	char	 err[256];

	schema = jparse(schema_text);
	if (schema_check(schema, err, sizeof(err)) != 0)
		fail_msg("schema %s refused: %s", schema_text, err);
	inst = jparse(inst_text);
	v = schema_validate(schema, inst);
	assert_non_null(v);
	assert_true(json_is_array(v));
	json_decref(inst);
	json_decref(schema);
	return v;
}

static size_t
nviol(const char *schema_text, const char *inst_text)
{
	json_t	*v;
	size_t	 n;

	v = violations(schema_text, inst_text);
	n = json_array_size(v);
	json_decref(v);
	return n;
}

#define VALID(s, i)	assert_int_equal(nviol((s), (i)), 0)
#define INVALID(s, i)	assert_int_not_equal(nviol((s), (i)), 0)

/* Is there a violation at path whose message contains msg? */
static int
has(const json_t *v, const char *path, const char *msg)
{
	const json_t	*e;
	size_t		 i;

	json_array_foreach(v, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "path")),
		    path) == 0 && strstr(json_string_value(json_object_get(e,
		    "message")), msg) != NULL)
			return 1;
	}
	return 0;
}

/* Exactly one violation, at path, mentioning msg. */
static void
one(const char *schema_text, const char *inst_text, const char *path,
    const char *msg)
{
	json_t	*v;
	char	*dump;

	v = violations(schema_text, inst_text);
	if (json_array_size(v) != 1 || !has(v, path, msg)) {
		dump = json_dumps(v, JSON_COMPACT);
		fail_msg("%s against %s: got %s, wanted one at %s (%s)",
		    inst_text, schema_text, dump, path, msg);
	}
	json_decref(v);
}

/* schema_check refuses the schema with an error starting with want. */
static void
refused(const char *schema_text, const char *want)
{
	json_t	*schema;
	char	 err[256];

	schema = jparse(schema_text);
	memset(err, 'x', sizeof(err));
	if (schema_check(schema, err, sizeof(err)) != -1)
		fail_msg("schema %s was accepted", schema_text);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("schema %s: error \"%s\", wanted \"%s...\"",
		    schema_text, err, want);
	json_decref(schema);
}

static void
accepted(const char *schema_text)
{
	json_t	*schema;
	char	 err[256];

	schema = jparse(schema_text);
	if (schema_check(schema, err, sizeof(err)) != 0)
		fail_msg("schema %s refused: %s", schema_text, err);
	json_decref(schema);
}

static void
test_type(void **state)
{
	(void)state;
	VALID("{\"type\":\"string\"}", "\"x\"");
	one("{\"type\":\"string\"}", "1", "$", "expected string, got integer");
	VALID("{\"type\":\"integer\"}", "-7");
	VALID("{\"type\":\"integer\"}", "1.0");	/* draft 7 */
	VALID("{\"type\":\"integer\"}", "1e3");
	one("{\"type\":\"integer\"}", "1.5", "$", "got number");
	INVALID("{\"type\":\"integer\"}", "\"1\"");
	INVALID("{\"type\":\"integer\"}", "true");
	VALID("{\"type\":\"number\"}", "1");
	VALID("{\"type\":\"number\"}", "1.5");
	INVALID("{\"type\":\"number\"}", "\"1.5\"");
	VALID("{\"type\":\"boolean\"}", "false");
	INVALID("{\"type\":\"boolean\"}", "0");
	VALID("{\"type\":\"null\"}", "null");
	INVALID("{\"type\":\"null\"}", "false");
	INVALID("{\"type\":\"null\"}", "\"\"");
	VALID("{\"type\":\"object\"}", "{}");
	INVALID("{\"type\":\"object\"}", "[]");
	VALID("{\"type\":\"array\"}", "[]");
	INVALID("{\"type\":\"array\"}", "{}");
	VALID("{\"type\":[\"integer\",\"string\"]}", "\"a\"");
	VALID("{\"type\":[\"integer\",\"string\"]}", "3");
	one("{\"type\":[\"integer\",\"string\"]}", "null", "$",
	    "expected integer or string, got null");
}

static void
test_required(void **state)
{
	json_t	*v;

	(void)state;
	VALID("{\"required\":[\"a\"]}", "{\"a\":null}");
	one("{\"required\":[\"a\"]}", "{\"b\":1}", "$.a",
	    "required property is missing");
	VALID("{\"required\":[\"a\"]}", "[]");	/* objects only */
	VALID("{\"required\":[]}", "{}");
	v = violations("{\"required\":[\"a\",\"b\",\"c\"]}", "{\"b\":1}");
	assert_int_equal(json_array_size(v), 2);
	assert_true(has(v, "$.a", "missing"));
	assert_true(has(v, "$.c", "missing"));
	json_decref(v);
	/* Keys that are not identifiers are quoted in the path. */
	one("{\"required\":[\"user id\"]}", "{}", "$['user id']", "missing");
	one("{\"required\":[\"it's\"]}", "{}", "$['it\\'s']", "missing");
	one("{\"required\":[\"a\\nb\"]}", "{}", "$['a\\u000ab']", "missing");
	one("{\"required\":[\"1st\"]}", "{}", "$['1st']", "missing");
}

static void
test_properties(void **state)
{
	(void)state;
	VALID("{\"properties\":{\"a\":{\"type\":\"string\"}}}",
	    "{\"a\":\"x\",\"b\":1}");
	VALID("{\"properties\":{\"a\":{\"type\":\"string\"}}}", "{}");
	VALID("{\"properties\":{\"a\":{\"type\":\"string\"}}}", "7");
	one("{\"properties\":{\"a\":{\"type\":\"string\"}}}", "{\"a\":1}",
	    "$.a", "expected string");
	one("{\"properties\":{\"a\":{\"properties\":{\"b\":{\"type\":"
	    "\"integer\"}}}}}", "{\"a\":{\"b\":\"x\"}}", "$.a.b",
	    "expected integer, got string");
	one("{\"properties\":{\"user_info\":{\"properties\":{\"email\":"
	    "{\"format\":\"email\"}}}}}",
	    "{\"user_info\":{\"email\":\"nope\"}}", "$.user_info.email",
	    "email");
	VALID("{\"properties\":{\"a\":true,\"b\":false}}", "{\"a\":1}");
	one("{\"properties\":{\"a\":true,\"b\":false}}", "{\"b\":1}", "$.b",
	    "no value is allowed");
}

static void
test_additional(void **state)
{
	json_t	*v;

	(void)state;
	VALID("{\"properties\":{\"a\":{}},\"additionalProperties\":false}",
	    "{\"a\":1}");
	v = violations("{\"properties\":{\"a\":{}},"
	    "\"additionalProperties\":false}", "{\"a\":1,\"x\":2,\"y\":3}");
	assert_int_equal(json_array_size(v), 2);
	assert_true(has(v, "$.x", "not allowed"));
	assert_true(has(v, "$.y", "not allowed"));
	json_decref(v);
	VALID("{\"additionalProperties\":{\"type\":\"boolean\"}}",
	    "{\"x\":true}");
	one("{\"properties\":{\"a\":{}},"
	    "\"additionalProperties\":{\"type\":\"boolean\"}}",
	    "{\"a\":1,\"x\":1}", "$.x", "expected boolean");
	VALID("{\"additionalProperties\":true}", "{\"x\":1}");
	VALID("{\"additionalProperties\":false}", "[1]");
}

static void
test_enum_const(void **state)
{
	(void)state;
	VALID("{\"enum\":[\"a\",\"b\"]}", "\"b\"");
	one("{\"enum\":[\"a\",\"b\"]}", "\"c\"", "$", "allowed values");
	VALID("{\"enum\":[1,2]}", "2.0");
	VALID("{\"enum\":[1.0]}", "1");
	INVALID("{\"enum\":[1]}", "true");
	INVALID("{\"enum\":[false]}", "0");
	INVALID("{\"enum\":[null]}", "0");
	VALID("{\"enum\":[{\"a\":1,\"b\":[1,2]}]}", "{\"b\":[1,2.0],\"a\":1}");
	INVALID("{\"enum\":[{\"a\":1}]}", "{\"a\":1,\"b\":2}");
	INVALID("{\"enum\":[[1,2]]}", "[2,1]");
	INVALID("{\"enum\":[\"a\\u0000b\"]}", "\"a\"");
	VALID("{\"enum\":[\"a\\u0000b\"]}", "\"a\\u0000b\"");

	VALID("{\"const\":{\"x\":[1,{\"y\":null}]}}",
	    "{\"x\":[1.0,{\"y\":null}]}");
	one("{\"const\":{\"x\":1}}", "{\"x\":2}", "$", "constant");
	VALID("{\"const\":9007199254740992}", "9007199254740992.0");
	INVALID("{\"const\":9007199254740993}", "9007199254740992.0");
	INVALID("{\"const\":0}", "false");
	INVALID("{\"const\":\"\"}", "null");
}

static void
test_length(void **state)
{
	(void)state;
	VALID("{\"minLength\":2}", "\"ab\"");
	one("{\"minLength\":2}", "\"a\"", "$", "shorter than 2");
	VALID("{\"maxLength\":2}", "\"ab\"");
	one("{\"maxLength\":2}", "\"abc\"", "$", "longer than 2");
	VALID("{\"minLength\":2}", "1");
	VALID("{\"maxLength\":0}", "[1]");
	/* Code points, not bytes: "héllo" is 6 bytes, "日本" 6. */
	VALID("{\"maxLength\":5}", "\"h\\u00e9llo\"");
	INVALID("{\"minLength\":3}", "\"\\u65e5\\u672c\"");
	VALID("{\"maxLength\":2}", "\"\\u65e5\\u672c\"");
	/* A surrogate pair is one code point. */
	VALID("{\"maxLength\":1}", "\"\\ud83d\\ude00\"");
	VALID("{\"minLength\":2.0}", "\"ab\"");
}

static void
test_pattern(void **state)
{
	(void)state;
	VALID("{\"pattern\":\"^a*$\"}", "\"aaa\"");
	one("{\"pattern\":\"^a*$\"}", "\"abc\"", "$", "does not match");
	VALID("{\"pattern\":\"a+\"}", "\"xxaxx\"");	/* unanchored */
	INVALID("{\"pattern\":\"a+\"}", "\"xyz\"");
	VALID("{\"pattern\":\"^[0-9]{3}-[[:alpha:]]+$\"}", "\"123-abc\"");
	INVALID("{\"pattern\":\"^[0-9]{3}$\"}", "\"1234\"");
	VALID("{\"pattern\":\"^a\\\\.b$\"}", "\"a.b\"");
	INVALID("{\"pattern\":\"^a\\\\.b$\"}", "\"axb\"");
	VALID("{\"pattern\":\"^x\"}", "12");	/* strings only */
	/* Characters, not bytes, as maxLength counts them. */
	VALID("{\"pattern\":\"^.{2}$\",\"maxLength\":2}", "\"\\u00e9\\u00e9\"");
	INVALID("{\"pattern\":\"^.{3}$\"}", "\"\\u00e9\\u00e9\"");
	VALID("{\"pattern\":\"^[[:alpha:]]+$\"}", "\"\\u00e9t\\u00e9\"");
	VALID("{\"pattern\":\"^[\\u00e8\\u00e9]$\"}", "\"\\u00e9\"");
	INVALID("{\"pattern\":\"^[\\u00e8\\u00e9]$\"}", "\"\\u00c3\"");
	VALID("{\"pattern\":\"^.$\"}", "\"\\ud83d\\ude00\"");
	/* A match anywhere, top-level alternatives and anchors kept. */
	VALID("{\"pattern\":\"a|^b\"}", "\"xa\"");
	VALID("{\"pattern\":\"a|^b\"}", "\"bx\"");
	INVALID("{\"pattern\":\"a|^b\"}", "\"xb\"");
	VALID("{\"pattern\":\"b$|^c\"}", "\"ab\"");
	INVALID("{\"pattern\":\"b$|^c\"}", "\"abc\"");
#ifdef REG_STARTEND
	/* The whole string is searched, past a NUL character. */
	VALID("{\"pattern\":\"b$\"}", "\"a\\u0000b\"");
#endif
}

/* A long string that does not match an unanchored pattern is refused in
 * one pass: from each position in turn, it took the square of its length
 * (the seconds of a 40,000-character string on the supervisor's loop). */
static void
test_pattern_long_string(void **state)
{
	json_t	*schema, *inst, *v;
	char	*digits, err[256];
	size_t	 n = 4 * 1024 * 1024;

	(void)state;
	digits = malloc(n + 1);
	assert_non_null(digits);
	memset(digits, '7', n);
	digits[n] = '\0';
	schema = jparse("{\"pattern\":\"[0-9]+-[0-9]+\"}");
	assert_int_equal(schema_check(schema, err, sizeof(err)), 0);
	inst = json_string(digits);
	v = schema_validate(schema, inst);
	assert_int_equal(json_array_size(v), 1);
	json_decref(v);
	digits[n / 2] = '-';
	json_string_set(inst, digits);
	v = schema_validate(schema, inst);
	assert_int_equal(json_array_size(v), 0);
	json_decref(v);
	json_decref(inst);
	json_decref(schema);
	free(digits);
}

/* A context wrong in many places answers the first violations and how
 * many more there are, not one entry for each. */
static void
test_violations_capped(void **state)
{
	json_t	*schema, *inst, *v;
	char	 err[256];
	int	 i;

	(void)state;
	schema = jparse("{\"items\":{\"type\":\"string\"}}");
	assert_int_equal(schema_check(schema, err, sizeof(err)), 0);
	inst = json_array();
	for (i = 0; i < 250; i++)
		json_array_append_new(inst, json_integer(i));
	v = schema_validate(schema, inst);
	assert_int_equal(json_array_size(v), 101);
	assert_true(has(v, "$[99]", "string"));
	assert_false(has(v, "$[100]", "string"));
	assert_true(has(v, "$", "150 more violations not listed"));
	json_decref(v);
	json_array_remove(inst, 249);
	for (i = 0; i < 148; i++)
		json_array_remove(inst, 0);
	v = schema_validate(schema, inst);	/* 101 left */
	assert_true(has(v, "$", "1 more violation not listed"));
	json_decref(v);
	json_decref(inst);
	json_decref(schema);
}

/* Compiled patterns are kept by their text: many patterns (the cache
 * fills and is emptied), each seen again, still match what they say. */
static void
test_pattern_cache(void **state)
{
	char	schema[64], yes[32], no[32];
	int	round, n;

	(void)state;
	for (round = 0; round < 2; round++)
		for (n = 1; n <= 300; n++) {
			snprintf(schema, sizeof(schema),
			    "{\"pattern\":\"^p%dq$\"}", n);
			snprintf(yes, sizeof(yes), "\"p%dq\"", n);
			snprintf(no, sizeof(no), "\"p%dq\"", n + 1);
			VALID(schema, yes);
			INVALID(schema, no);
		}
}

static void
test_numbers(void **state)
{
	(void)state;
	VALID("{\"minimum\":1}", "1");
	VALID("{\"minimum\":1}", "1.0");
	one("{\"minimum\":1}", "0.5", "$", "at least 1");
	one("{\"minimum\":1.1}", "1", "$", "at least 1.1");
	VALID("{\"maximum\":3}", "3");
	one("{\"maximum\":3.0}", "3.5", "$", "at most 3");
	VALID("{\"exclusiveMinimum\":1}", "1.0001");
	one("{\"exclusiveMinimum\":1}", "1", "$", "greater than 1");
	one("{\"exclusiveMinimum\":1}", "1.0", "$", "greater than 1");
	VALID("{\"exclusiveMaximum\":3.0}", "2");
	one("{\"exclusiveMaximum\":3.0}", "3", "$", "less than 3");
	VALID("{\"minimum\":-2}", "-2");
	INVALID("{\"minimum\":-2}", "-3");
	VALID("{\"maximum\":1}", "\"big\"");	/* numbers only */
	/* Exact across integer and real, past 2^53. */
	INVALID("{\"maximum\":9007199254740992.0}", "9007199254740993");
	VALID("{\"maximum\":9007199254740992.0}", "9007199254740992");
	INVALID("{\"exclusiveMaximum\":9223372036854775807}", "1e19");
	VALID("{\"minimum\":-1e300}", "-9223372036854775808");
	VALID("{\"maximum\":1e300}", "9223372036854775807");
}

static void
test_items(void **state)
{
	json_t	*v;

	(void)state;
	VALID("{\"items\":{\"type\":\"integer\"}}", "[1,2,3]");
	one("{\"items\":{\"type\":\"integer\"}}", "[1,2,\"x\"]", "$[2]",
	    "expected integer");
	one("{\"properties\":{\"items\":{\"items\":{\"minimum\":0}}}}",
	    "{\"items\":[0,1,-1]}", "$.items[2]", "at least 0");
	one("{\"items\":{\"properties\":{\"n\":{\"type\":\"string\"}}}}",
	    "[{\"n\":\"a\"},{\"n\":1}]", "$[1].n", "expected string");
	VALID("{\"items\":[{\"type\":\"integer\"},{\"type\":\"string\"}]}",
	    "[1,\"a\",null,{}]");	/* the rest is free */
	VALID("{\"items\":[{\"type\":\"integer\"},{\"type\":\"string\"}]}",
	    "[1]");
	one("{\"items\":[{\"type\":\"integer\"},{\"type\":\"string\"}]}",
	    "[\"a\",\"b\"]", "$[0]", "expected integer");
	VALID("{\"items\":false}", "[]");
	one("{\"items\":[true,false]}", "[1,2]", "$[1]", "no value");
	VALID("{\"items\":{\"type\":\"integer\"}}", "{\"0\":\"x\"}");
	VALID("{\"minItems\":1,\"maxItems\":2}", "[1]");
	one("{\"minItems\":1}", "[]", "$", "fewer than 1");
	one("{\"maxItems\":2}", "[1,2,3]", "$", "more than 2");
	VALID("{\"maxItems\":0}", "\"abc\"");
	v = violations("{\"items\":{\"type\":\"integer\"}}", "[\"a\",2,\"c\"]");
	assert_int_equal(json_array_size(v), 2);
	assert_true(has(v, "$[0]", "integer"));
	assert_true(has(v, "$[2]", "integer"));
	json_decref(v);
}

static void
test_boolean_schema(void **state)
{
	(void)state;
	VALID("true", "{\"a\":[1]}");
	one("false", "null", "$", "no value is allowed");
	VALID("{}", "\"anything\"");
}

/* Every violation is reported, in every corner of the instance. */
static void
test_all_violations(void **state)
{
	json_t	*v;

	(void)state;
	v = violations(
	    "{\"type\":\"object\","
	    " \"required\":[\"name\",\"age\",\"id\"],"
	    " \"additionalProperties\":false,"
	    " \"properties\":{"
	    "  \"name\":{\"type\":\"string\",\"minLength\":2,"
	    "   \"pattern\":\"^[a-z]+$\"},"
	    "  \"age\":{\"type\":\"integer\",\"minimum\":0},"
	    "  \"tags\":{\"type\":\"array\",\"maxItems\":2,"
	    "   \"items\":{\"enum\":[\"a\",\"b\"]}},"
	    "  \"user\":{\"properties\":{\"email\":{\"format\":\"email\"},"
	    "   \"since\":{\"format\":\"date-time\"}}}}}",
	    "{\"name\":\"X\",\"age\":-1.5,\"tags\":[\"a\",\"z\",\"q\"],"
	    " \"user\":{\"email\":\"a@\",\"since\":\"yesterday\"},"
	    " \"extra\":1}");
	assert_true(has(v, "$.id", "missing"));
	assert_true(has(v, "$.extra", "not allowed"));
	assert_true(has(v, "$.name", "shorter than 2"));
	assert_true(has(v, "$.name", "does not match"));
	assert_true(has(v, "$.age", "expected integer"));
	assert_true(has(v, "$.age", "at least 0"));
	assert_true(has(v, "$.tags", "more than 2"));
	assert_true(has(v, "$.tags[1]", "allowed values"));
	assert_true(has(v, "$.tags[2]", "allowed values"));
	assert_true(has(v, "$.user.email", "email"));
	assert_true(has(v, "$.user.since", "date-time"));
	assert_int_equal(json_array_size(v), 11);
	json_decref(v);
}

static void
test_defaults(void **state)
{
	json_t	*schema, *inst, *v, *want;

	(void)state;
	schema = jparse(
	    "{\"required\":[\"retries\"],"
	    " \"properties\":{"
	    "  \"retries\":{\"type\":\"integer\",\"default\":3},"
	    "  \"mode\":{\"enum\":[\"fast\",\"slow\"],\"default\":\"slow\"},"
	    "  \"opts\":{\"type\":\"object\",\"default\":{},"
	    "   \"properties\":{\"level\":{\"default\":1},"
	    "    \"tags\":{\"default\":[\"x\"]}}},"
	    "  \"jobs\":{\"items\":{\"properties\":{"
	    "   \"prio\":{\"default\":5}}}},"
	    "  \"pair\":{\"items\":[{\"properties\":"
	    "   {\"k\":{\"default\":0}}}]}}}");
	assert_int_equal(schema_check(schema, NULL, 0), 0);
	inst = jparse("{\"mode\":\"fast\",\"jobs\":[{},{\"prio\":1},7],"
	    "\"pair\":[{},{}]}");
	v = schema_validate(schema, inst);
	assert_int_equal(json_array_size(v), 0);	/* required is met */
	json_decref(v);
	want = jparse("{\"retries\":3,\"mode\":\"fast\","
	    "\"opts\":{\"level\":1,\"tags\":[\"x\"]},"
	    "\"jobs\":[{\"prio\":5},{\"prio\":1},7],"
	    "\"pair\":[{\"k\":0},{}]}");
	assert_true(json_equal(inst, want));
	json_decref(want);

	/* Deep copies: changing the context leaves the schema alone. */
	json_array_append_new(json_object_get(json_object_get(inst, "opts"),
	    "tags"), json_string("y"));
	json_decref(inst);
	inst = jparse("{}");
	json_decref(schema_validate(schema, inst));
	want = jparse("[\"x\"]");
	assert_true(json_equal(json_object_get(json_object_get(inst, "opts"),
	    "tags"), want));
	json_decref(want);
	json_decref(inst);

	/* Present values win, null included; non-objects get nothing. */
	inst = jparse("{\"retries\":0,\"opts\":{\"level\":null}}");
	v = schema_validate(schema, inst);
	assert_int_equal(json_array_size(v), 0);
	json_decref(v);
	assert_int_equal(json_integer_value(json_object_get(inst, "retries")),
	    0);
	assert_true(json_is_null(json_object_get(json_object_get(inst,
	    "opts"), "level")));
	json_decref(inst);
	inst = jparse("[1]");
	v = schema_validate(schema, inst);
	assert_int_equal(json_array_size(v), 0);
	assert_int_equal(json_array_size(inst), 1);
	json_decref(v);
	json_decref(inst);
	json_decref(schema);

	/* Inserted values are validated like the rest. */
	one("{\"properties\":{\"a\":{\"default\":1}},\"const\":{}}", "{}",
	    "$", "constant");
	VALID("{\"properties\":{\"a\":{\"default\":{}}},"
	    "\"const\":{\"a\":{}}}", "{}");
}

static void
test_check_unknown(void **state)
{
	(void)state;
	refused("{\"$ref\":\"#/definitions/a\"}", "/$ref: unsupported keyword");
	refused("{\"properties\":{\"a\":{\"oneOf\":[{}]}}}",
	    "/properties/a/oneOf: unsupported keyword");
	refused("{\"items\":[{},{\"allOf\":[]}]}",
	    "/items/1/allOf: unsupported keyword");
	refused("{\"items\":{\"anyOf\":[]}}", "/items/anyOf: unsupported");
	refused("{\"additionalProperties\":{\"not\":{}}}",
	    "/additionalProperties/not: unsupported");
	refused("{\"properties\":{\"a/b~c\":{\"if\":{}}}}",
	    "/properties/a~1b~0c/if: unsupported");
	refused("{\"patternProperties\":{}}",
	    "/patternProperties: unsupported");
	refused("{\"additionalItems\":false}", "/additionalItems: unsupported");
	refused("{\"definitions\":{}}", "/definitions: unsupported");
	refused("{\"multipleOf\":2}", "/multipleOf: unsupported");
	refused("{\"uniqueItems\":true}", "/uniqueItems: unsupported");
	refused("{\"Type\":\"string\"}", "/Type: unsupported");
}

static void
test_check_regex(void **state)
{
	(void)state;
	refused("{\"properties\":{\"email\":{\"pattern\":\"(a\"}}}",
	    "/properties/email/pattern: invalid regular expression");
	refused("{\"pattern\":\"[a-\"}", "/pattern: invalid regular");
	refused("{\"pattern\":\"a{2,1}\"}", "/pattern: invalid regular");
	/* glibc has no order for a range between characters past ASCII (in
	 * bytes, which it used to match, it meant something else). */
	refused("{\"pattern\":\"[\\u00e0-\\u00ff]\"}",
	    "/pattern: invalid regular expression: Invalid collation "
	    "character (a range with an end past ASCII: write its characters "
	    "out");
	/* ECMA escapes POSIX would read as letters. */
	refused("{\"pattern\":\"^\\\\d+$\"}", "/pattern: escape \\d is not");
	refused("{\"pattern\":\"[\\\\w]\"}", "/pattern: escape \\w is not");
	refused("{\"pattern\":\"a\\u0000b\"}", "/pattern: pattern contains");
	refused("{\"pattern\":1}", "/pattern: must be a string");
	accepted("{\"pattern\":\"^a\\\\.b\\\\\\\\d$\"}");	/* \. and \\ */
	accepted("{\"pattern\":\"^[[:digit:]]+(\\\\.[0-9]+)?$\"}");
}

static void
test_check_values(void **state)
{
	(void)state;
	refused("3", "(root): a schema must be an object or a boolean");
	refused("null", "(root): a schema must be");
	refused("{\"properties\":{\"a\":3}}", "/properties/a: a schema");
	refused("{\"type\":\"strin\"}", "/type: unknown type \"strin\"");
	refused("{\"type\":[]}", "/type: must be a type name or a non-empty");
	refused("{\"type\":[\"string\",1]}", "/type/1: must be one of");
	refused("{\"type\":[\"string\",\"string\"]}",
	    "/type/1: type \"string\" is listed twice");
	refused("{\"type\":3}", "/type: must be");
	refused("{\"required\":\"a\"}", "/required: must be an array");
	refused("{\"required\":[\"a\",2]}", "/required/1: must be a string");
	refused("{\"required\":[\"a\",\"a\"]}", "/required/1: \"a\" is listed");
	refused("{\"properties\":[]}", "/properties: must be an object");
	refused("{\"additionalProperties\":1}",
	    "/additionalProperties: a schema must be");
	refused("{\"enum\":[]}", "/enum: must be a non-empty array");
	refused("{\"enum\":\"a\"}", "/enum: must be a non-empty array");
	refused("{\"minLength\":-1}", "/minLength: must be a non-negative");
	refused("{\"maxLength\":1.5}", "/maxLength: must be a non-negative");
	refused("{\"minItems\":\"3\"}", "/minItems: must be a non-negative");
	refused("{\"maxItems\":null}", "/maxItems: must be a non-negative");
	refused("{\"minimum\":\"1\"}", "/minimum: must be a number");
	refused("{\"maximum\":true}", "/maximum: must be a number");
	refused("{\"exclusiveMinimum\":true}", "/exclusiveMinimum: must be a");
	refused("{\"exclusiveMaximum\":[]}", "/exclusiveMaximum: must be a");
	refused("{\"items\":3}", "/items: a schema must be");
	refused("{\"items\":[{},null]}", "/items/1: a schema must be");
	refused("{\"format\":3}", "/format: must be a string");
	refused("{\"title\":3}", "/title: must be a string");
	refused("{\"description\":{}}", "/description: must be a string");
	refused("{\"$comment\":1}", "/$comment: must be a string");
	refused("{\"$schema\":1}", "/$schema: must be a string");
	refused("{\"$id\":1}", "/$id: must be a string");
	refused("{\"examples\":{}}", "/examples: must be an array");
	/* The first problem in document order is the one reported. */
	refused("{\"title\":\"t\",\"properties\":{\"a\":{\"minimum\":\"x\"}},"
	    "\"oneOf\":[]}", "/properties/a/minimum: must be a number");

	accepted("true");
	accepted("false");
	accepted("{}");
	accepted("{\"$schema\":\"http://json-schema.org/draft-07/schema#\","
	    "\"$id\":\"x\",\"title\":\"t\",\"description\":\"d\","
	    "\"$comment\":\"c\",\"examples\":[1,\"a\"],\"type\":\"object\","
	    "\"required\":[],\"properties\":{},\"additionalProperties\":{},"
	    "\"enum\":[{}],\"const\":{},\"minLength\":0,\"maxLength\":2.0,"
	    "\"pattern\":\"\",\"format\":\"hostname\",\"minimum\":-1.5,"
	    "\"maximum\":1e9,\"exclusiveMinimum\":-2,\"exclusiveMaximum\":2e9,"
	    "\"items\":[true,{}],\"minItems\":0,\"maxItems\":9}");
}

static void
test_check_default(void **state)
{
	(void)state;
	refused("{\"properties\":{\"n\":{\"type\":\"integer\","
	    "\"default\":\"x\"}}}",
	    "/properties/n/default: the default does not satisfy its schema "
	    "($: expected integer, got string)");
	refused("{\"properties\":{\"o\":{\"default\":{\"a\":1},"
	    "\"properties\":{\"a\":{\"maximum\":0}}}}}",
	    "/properties/o/default: the default does not satisfy its schema "
	    "($.a: value must be at most 0)");
	/* A default whose own nested defaults make it valid is fine. */
	accepted("{\"properties\":{\"o\":{\"default\":{},\"required\":[\"a\"],"
	    "\"properties\":{\"a\":{\"default\":1}}}}}");
	accepted("{\"properties\":{\"n\":{\"type\":\"integer\","
	    "\"default\":4}}}");
}

static json_t *
nested(int levels)
{
	json_t	*s, *outer;
	int	 i;

	s = json_pack("{s:s}", "type", "integer");
	for (i = 0; i < levels; i++) {
		outer = json_pack("{s:{s:o}}", "properties", "a", s);
		s = outer;
	}
	return s;
}

static void
test_check_depth(void **state)
{
	json_t	*schema, *inst, *v;
	char	 err[256];
	int	 i;

	(void)state;
	schema = nested(64);
	assert_int_equal(schema_check(schema, err, sizeof(err)), 0);
	inst = json_integer(1);
	for (i = 0; i < 64; i++)
		inst = json_pack("{s:o}", "a", inst);
	v = schema_validate(schema, inst);
	assert_int_equal(json_array_size(v), 0);
	json_decref(v);
	json_decref(inst);
	json_decref(schema);

	schema = nested(200);
	assert_int_equal(schema_check(schema, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nest more than 64 levels"));
	assert_int_equal(strncmp(err, "/properties/a/properties/a/", 27), 0);
	/* Validating it anyway stops at the limit and says so. */
	inst = json_integer(1);
	for (i = 0; i < 200; i++)
		inst = json_pack("{s:o}", "a", inst);
	v = schema_validate(schema, inst);
	assert_int_equal(json_array_size(v), 1);
	assert_non_null(strstr(json_string_value(json_object_get(
	    json_array_get(v, 0), "message")), "too deep"));
	json_decref(v);
	json_decref(inst);
	json_decref(schema);
}

static void
fmt_cases(const char *format, const char *const *good, size_t ngood,
    const char *const *bad, size_t nbad)
{
	json_t	*schema, *inst, *v;
	size_t	 i;

	schema = json_pack("{s:s}", "format", format);
	for (i = 0; i < ngood + nbad; i++) {
		inst = json_string(i < ngood ? good[i] : bad[i - ngood]);
		assert_non_null(inst);
		v = schema_validate(schema, inst);
		if ((json_array_size(v) == 0) != (i < ngood))
			fail_msg("format %s: \"%s\" should be %s", format,
			    json_string_value(inst),
			    i < ngood ? "valid" : "invalid");
		json_decref(v);
		json_decref(inst);
	}
	json_decref(schema);
}

#define FMT(f, g, b)	fmt_cases((f), (g), sizeof(g) / sizeof((g)[0]), \
			    (b), sizeof(b) / sizeof((b)[0]))

static void
test_format_email(void **state)
{
	static const char *const good[] = { "joe.bloggs@example.com",
	    "a@b", "root@localhost", "x+tag@mail.example.co.uk",
	    "te~st@example.com", "o'brien@x-y.org", "A_B-9@EXAMPLE.COM",
	    "!#$%&'*+-/=?^_`{|}~@example.com" };
	static const char *const bad[] = { "", "2962", "@example.com",
	    "joe@", "joe", ".joe@example.com", "joe.@example.com",
	    "jo..e@example.com", "joe@@example.com", "jo e@example.com",
	    "joe@exa mple.com", "joe@example..com", "joe@.example.com",
	    "joe@example.com.", "joe@-example.com", "joe@example-.com",
	    "joe@ex_ample.com", "j\xc3\xb6@example.com", "a@b@c",
	    "joe@example.com\n" };

	(void)state;
	FMT("email", good, bad);
}

static void
test_format_uri(void **state)
{
	static const char *const good[] = { "http://foo.bar/?baz=qux#quux",
	    "https://example.com", "https://user:pw@example.com:8443/a/b?c=d",
	    "http://[2001:db8::7]/c=GB?objectClass?one",
	    "http://223.255.255.254", "file:///etc/passwd",
	    "mailto:John.Doe@example.com", "urn:isbn:0451450523",
	    "tel:+1-816-555-1212", "x-custom+v1.2:thing",
	    "http://example.com/%20a%2Fb", "http://example.com:",
	    "http://e.com/#frag/with?q" };
	static const char *const bad[] = { "", "abc", "/abc", "//foo.bar/x",
	    "\\\\WINDOWS\\fileshare", "http:// shouldfail.com",
	    ":// should fail", "bar,baz:foo", "1http://example.com",
	    "http://example.com/a b", "http://example.com/%2",
	    "http://ex%zz.com",
	    "http://example.com/#a#b", "http://[::1/x", "http://a:80x/",
	    "http://a@b@c/", "http://ex\xc3\xa4mple.com/", "http://e.com/<x>" };

	(void)state;
	FMT("uri", good, bad);
}

static void
test_format_date_time(void **state)
{
	static const char *const good[] = { "1963-06-19T08:30:06.283185Z",
	    "1963-06-19T08:30:06Z", "1937-01-01T12:00:27.87+00:20",
	    "1990-12-31T15:59:50.123-08:00", "1998-12-31T23:59:60Z",
	    "1998-12-31T15:59:60.123-08:00", "1963-06-19t08:30:06.283185z",
	    "2000-02-29T00:00:00Z", "2024-02-29T23:59:59+23:59",
	    "1999-01-01T00:59:60+01:00", "0000-01-01T00:00:00Z" };
	static const char *const bad[] = { "", "1998-12-31T23:59:61Z",
	    "1998-12-31T23:58:60Z", "1998-12-31T22:59:60Z",
	    "1990-02-31T15:59:59.123-08:00", "1990-12-31T15:59:59-24:00",
	    "1963-06-19T08:30:06.28123+01:00Z", "06/19/1963 08:30:06 PST",
	    "2013-350T01:01:01", "1963-6-19T08:30:06.283185Z",
	    "1963-06-1T08:30:06.283185Z", "1963-06-1\xe0\xa7\xaaT00:00:00Z",
	    "1900-02-29T00:00:00Z", "2023-02-29T00:00:00Z",
	    "2023-13-01T00:00:00Z", "2023-00-01T00:00:00Z",
	    "2023-01-00T00:00:00Z", "2023-01-01T24:00:00Z",
	    "2023-01-01T00:60:00Z", "2023-01-01 00:00:00Z",
	    "2023-01-01T00:00:00", "2023-01-01T00:00:00.Z",
	    "2023-01-01T00:00:00+0100", "2023-01-01T00:00:00+01:60",
	    "2023-01-01T00:00Z", "2023-01-01", "2023-01-01T00:00:00Zjunk",
	    "2023-01-01T00:00:00+01:00 " };

	(void)state;
	FMT("date-time", good, bad);
}

static void
test_format_other(void **state)
{
	(void)state;
	/* The other formats taskerd checks (the suite has all but uuid). */
	INVALID("{\"format\":\"hostname\"}", "\"not a hostname!\"");
	VALID("{\"format\":\"hostname\"}", "\"api.example.com\"");
	VALID("{\"format\":\"date\"}", "\"2024-02-29\"");
	INVALID("{\"format\":\"date\"}", "\"2023-02-29\"");
	VALID("{\"format\":\"time\"}", "\"08:30:00+02:00\"");
	INVALID("{\"format\":\"time\"}", "\"08:30\"");
	VALID("{\"format\":\"ipv4\"}", "\"192.168.0.1\"");
	INVALID("{\"format\":\"ipv4\"}", "\"192.168.0.1\\u0000\"");
	VALID("{\"format\":\"ipv6\"}", "\"::ffff:192.168.0.1\"");
	INVALID("{\"format\":\"ipv6\"}", "\"fe80::1%eth0\"");
	VALID("{\"format\":\"uuid\"}",
	    "\"2EB8AA08-AA98-11EA-B4AA-73B441D16380\"");
	INVALID("{\"format\":\"uuid\"}",
	    "\"2eb8aa08aa9811eab4aa73b441d16380\"");
	INVALID("{\"format\":\"uuid\"}",
	    "\"2eb8aa08-aa98-11ea-b4aa-73b441d1638g\"");
	/* Formats it does not know are not asserted, as JSON Schema says. */
	VALID("{\"format\":\"no-such-format\"}", "\"x\"");
	VALID("{\"format\":\"email\"}", "12");
	VALID("{\"format\":\"date-time\"}", "null");
	VALID("{\"format\":\"uri\"}", "{}");
}

static void
test_null_arguments(void **state)
{
	json_t	*inst, *v;
	char	 err[64];

	(void)state;
	inst = jparse("{\"a\":1}");
	v = schema_validate(NULL, inst);
	assert_int_equal(json_array_size(v), 0);
	json_decref(v);
	json_decref(inst);
	v = schema_validate(json_true(), NULL);
	assert_int_equal(json_array_size(v), 1);
	json_decref(v);
	assert_int_equal(schema_check(NULL, err, sizeof(err)), -1);
	/* A short buffer is truncated, not overrun. */
	inst = jparse("{\"properties\":{\"abcdefgh\":{\"$ref\":\"x\"}}}");
	assert_int_equal(schema_check(inst, err, 8), -1);
	assert_int_equal(strlen(err), 7);
	json_decref(inst);
}

/* Found by fuzz_schema: objects of one size with other keys. */
static void
test_const_enum_objects_with_other_keys(void **state)
{
	json_t	*schema, *inst, *viol;
	char	 err[256];

	(void)state;
	schema = json_loads("{\"const\": {\"a\": 1}}", 0, NULL);
	inst = json_loads("{\"b\": 1}", 0, NULL);
	assert_int_equal(schema_check(schema, err, sizeof(err)), 0);
	viol = schema_validate(schema, inst);
	assert_int_equal(json_array_size(viol), 1);
	json_decref(viol);
	json_decref(schema);
	schema = json_loads("{\"enum\": [{\"a\": 1}]}", 0, NULL);
	viol = schema_validate(schema, inst);
	assert_int_equal(json_array_size(viol), 1);
	json_decref(viol);
	json_decref(schema);
	/* A default that is an object with other keys than the const's. */
	schema = json_loads("{\"const\": {\"a\": 1}, \"default\": "
	    "{\"b\": 1}}", 0, NULL);
	assert_int_equal(schema_check(schema, err, sizeof(err)), -1);
	json_decref(schema);
	json_decref(inst);
}

/* Found by fuzz_schema: patterns whose compilation explodes. */
static void
test_costly_patterns_refused(void **state)
{
	static const char *const bad[] = { "a+++++++++++++++++++++", "a*?",
	    "(a{0,255}){0,255}", "a{101}", "a{1,500}", "(x(a{2}))*{3}",
	    "((a{2})){2}",
	    /* Found in review: nested repeated groups, seconds and GBs. */
	    "((((((((((((((((a{100})+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+",
	    "(((((((((((((((((((((((a)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+"
	    ")+)+)+)+", "(((((a)*)+)?)+)+",
	    /* Found in review: a ')' inside a bracket expression's class
	     * hid a group's end from the count. */
	    "((a{100})[[:alpha:])](b)){100}",
	    "((a{100})[^])](b)){100}", "((a{100})[])](b)){100}",
	    "((((((a[[:alpha:])])+)+)+)+)+)+", "(((((a[[.).]])+)+)+)+)+" };
	static const char *const good[] = { "^[a-z]+$", "a{2,100}", "(ab)+",
	    "[+*]+", "\\++", "(a|b){3}",
	    "^[a-z]+(\\.[a-z]+)*@[a-z]+(\\.[a-z]+)+$", "((((a)+)+)+)+",
	    "(((((a)))))+", "([[:alpha:]]+)+", "[]()]+", "[^]]{3}",
	    "([(]a[)]){2}" };
	json_t	*schema;
	char	 err[256];
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		schema = json_pack("{s:s}", "pattern", bad[i]);
		if (schema_check(schema, err, sizeof(err)) != -1)
			fail_msg("accepted costly pattern %s", bad[i]);
		json_decref(schema);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		schema = json_pack("{s:s}", "pattern", good[i]);
		if (schema_check(schema, err, sizeof(err)) != 0)
			fail_msg("refused %s: %s", good[i], err);
		json_decref(schema);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_type),
		cmocka_unit_test(test_required),
		cmocka_unit_test(test_properties),
		cmocka_unit_test(test_additional),
		cmocka_unit_test(test_enum_const),
		cmocka_unit_test(test_length),
		cmocka_unit_test(test_pattern),
		cmocka_unit_test(test_pattern_long_string),
		cmocka_unit_test(test_violations_capped),
		cmocka_unit_test(test_pattern_cache),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_items),
		cmocka_unit_test(test_boolean_schema),
		cmocka_unit_test(test_all_violations),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_check_unknown),
		cmocka_unit_test(test_check_regex),
		cmocka_unit_test(test_check_values),
		cmocka_unit_test(test_check_default),
		cmocka_unit_test(test_check_depth),
		cmocka_unit_test(test_format_email),
		cmocka_unit_test(test_format_uri),
		cmocka_unit_test(test_format_date_time),
		cmocka_unit_test(test_format_other),
		cmocka_unit_test(test_null_arguments),
		cmocka_unit_test(test_const_enum_objects_with_other_keys),
		cmocka_unit_test(test_costly_patterns_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
