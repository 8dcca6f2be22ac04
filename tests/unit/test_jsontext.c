/*
 * test_jsontext.c - our JSON text is jansson's compact text, reals aside;
 * reals are the shortest text that reads back as the same double.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "jsontext.h"

/* jansson's own text of v, for the comparison, with each of our flags
 * and jansson's that does the same. */
static void
same_as_jansson(const json_t *v)
{
	static const struct {
		int	ours;
		size_t	theirs;
	} flags[] = {
		{ 0, 0 },
		{ JSONTEXT_ASCII, JSON_ENSURE_ASCII },
		{ JSONTEXT_SORTED, JSON_SORT_KEYS },
	};
	char	*ours, *theirs;
	size_t	 i;

	for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		ours = jsontext(v, flags[i].ours);
		theirs = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
		    flags[i].theirs);
		assert_non_null(ours);
		assert_non_null(theirs);
		assert_string_equal(ours, theirs);
		free(ours);
		free(theirs);
	}
}

static void
test_like_jansson(void **state)
{
	json_t	*v;

	(void)state;
	v = json_loads("{\"b\": [1, -2, 9223372036854775807, "
	    "-9223372036854775808, true, false, null, {}, []],"
	    " \"a\": \"quote \\\" backslash \\\\ slash / nl \\n tab \\t "
	    "cr \\r bs \\b ff \\f nul-less \\u0001 \\u001f \\u007f\","
	    " \"\\u00e9t\\u00e9\": \"\\u20ac \\ud83d\\ude00 \\u2028\","
	    " \"\": {\"nested\": {\"deep\": [[[]]]}}}", 0, NULL);
	assert_non_null(v);
	same_as_jansson(v);
	json_decref(v);

	/* Keys stay in the order they were added. */
	v = json_object();
	json_object_set_new(v, "z", json_integer(1));
	json_object_set_new(v, "a", json_integer(2));
	json_object_set_new(v, "m", json_string(""));
	same_as_jansson(v);
	json_decref(v);

	v = json_string("bare");
	same_as_jansson(v);
	json_decref(v);
	assert_null(jsontext(NULL, 0));
}

/* A small deterministic generator of documents without reals. */
static uint64_t	rng = 0x9e3779b97f4a7c15ull;

static unsigned
next(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static json_t *
random_string(void)
{
	static const char *const pieces[] = { "a", "\"", "\\", "\x01", "\n",
	    "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
	    "/", " ", "\t", "Z" };
	char	buf[128];
	size_t	len = 0, i, n = next(12);
	const char *p;

	for (i = 0; i < n; i++) {
		p = pieces[next(sizeof(pieces) / sizeof(pieces[0]))];
		memcpy(buf + len, p, strlen(p));
		len += strlen(p);
	}
	return json_stringn(buf, len);
}

static json_t *
random_value(int depth)
{
	json_t	*v;
	char	 key[8];
	unsigned i, n;

	switch (next(depth > 4 ? 5 : 7)) {
	case 0:
		return json_integer((json_int_t)(rng >> next(64)) *
		    (next(2) ? 1 : -1));
	case 1:
		return random_string();
	case 2:
		return json_boolean(next(2));
	case 3:
		return json_null();
	case 4:
		return json_integer(next(100));
	case 5:
		v = json_array();
		for (i = 0, n = next(5); i < n; i++)
			json_array_append_new(v, random_value(depth + 1));
		return v;
	default:
		v = json_object();
		for (i = 0, n = next(5); i < n; i++) {
			snprintf(key, sizeof(key), "k%u\x01", next(50));
			json_object_set_new(v, key, random_value(depth + 1));
		}
		return v;
	}
}

static void
test_like_jansson_random(void **state)
{
	json_t	*v;
	int	 i;

	(void)state;
	for (i = 0; i < 3000; i++) {
		v = random_value(0);
		same_as_jansson(v);
		json_decref(v);
	}
}

static void
check_real(double d, const char *want)
{
	json_t	*v = json_real(d);
	char	*s = jsontext(v, 0);

	assert_string_equal(s, want);
	free(s);
	json_decref(v);
}

static void
test_reals(void **state)
{
	json_t	*v;
	char	*s;

	(void)state;
	check_real(19.99, "19.99");
	check_real(0.1, "0.1");
	check_real(1.0, "1.0");
	check_real(100.0, "100.0");
	check_real(-0.0, "-0.0");
	check_real(-2.5, "-2.5");
	check_real(1e21, "1e+21");
	check_real(1e300, "1e+300");
	check_real(5e-324, "5e-324");
	check_real(0.1 + 0.2, "0.30000000000000004");
	check_real(1.7976931348623157e308, "1.7976931348623157e+308");
	check_real(123456789.125, "123456789.125");
	/* Written out where jansson writes it out, in exponent form where
	 * jansson uses one. */
	check_real(150000.0, "150000.0");
	check_real(1e16, "10000000000000000.0");
	check_real(0.0001, "0.0001");
	check_real(0.00001, "1e-05");
	/* Inside documents too. */
	v = json_pack("{s:f, s:[f, i]}", "amount", 19.99, "list", 0.5, 3);
	s = jsontext(v, 0);
	assert_string_equal(s, "{\"amount\":19.99,\"list\":[0.5,3]}");
	free(s);
	json_decref(v);
}

/* The fewest significant digits that read back as d, found the slow way:
 * every precision from 1 up. */
static int
shortest_digits(double d, char *buf, size_t len)
{
	int	prec;

	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, len, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			return prec;
	}
	snprintf(buf, len, "%.17g", d);
	return 17;
}

/* Every finite double reads back as itself, in no more text than
 * jansson's 17 digits, and with no more digits than it needs (which
 * jsontext_real finds without trying every precision). */
static void
test_reals_round_trip(void **state)
{
	char	 ours[40], theirs[40], slow[40];
	double	 d;
	uint64_t bits;
	int	 i;
	char	*e;

	(void)state;
	for (i = 0; i < 200000; i++) {
		bits = ((uint64_t)next(1u << 31) << 33) ^
		    ((uint64_t)next(1u << 31) << 2) ^ next(4);
		memcpy(&d, &bits, sizeof(d));
		if (d != d || d - d != 0)	/* NaN, infinities */
			continue;
		jsontext_real(d, ours, sizeof(ours));
		assert_true(strtod(ours, NULL) == d);
		snprintf(theirs, sizeof(theirs), "%.17g", d);
		if (strlen(ours) > strlen(theirs) + 2)
			fail_msg("%s longer than %s", ours, theirs);
		assert_non_null(strpbrk(ours, ".eE"));
		/* The slow search's digits, written out (as test_reals
		 * shows) where jansson writes the number out. */
		shortest_digits(d, slow, sizeof(slow));
		if ((e = strchr(slow, 'e')) != NULL &&
		    strchr(ours, 'e') == NULL)
			snprintf(slow, sizeof(slow), "%.*g", atoi(e + 1) + 1,
			    d);
		if (strpbrk(slow, ".eEn") == NULL)
			strcat(slow, ".0");
		if (strcmp(ours, slow) != 0)
			fail_msg("%.17g: %s, not %s", d, ours, slow);
	}
}

/* Read back as ours: what PostgreSQL prints of a jsonb real of 2^63 or
 * more is an integer jansson refuses; it is read as that real. */
static void
test_load(void **state)
{
	const char	*text;
	json_error_t	 e;
	json_t		*v;
	char		*s;

	(void)state;
	v = jsontext_load("10000000000000000000", 20, JSON_DECODE_ANY, &e);
	assert_non_null(v);
	assert_true(json_is_real(v) && json_real_value(v) == 1e19);
	json_decref(v);

	/* Only such integers: strings (escaped quotes too), int64's own
	 * range and reals are read as json_loadb reads them. */
	text = "{\"s\": \"x\\\" 10000000000000000000\", \"n\": "
	    "-10000000000000000000, \"a\": [9223372036854775807, "
	    "-9223372036854775808, 92233720368547758080, 2.5, 1e19, "
	    "123456789012345678901234567890123]}";
	v = jsontext_load(text, strlen(text), 0, &e);
	assert_non_null(v);
	s = jsontext(v, 0);
	assert_string_equal(s, "{\"s\":\"x\\\" 10000000000000000000\","
	    "\"n\":-1e+19,\"a\":[9223372036854775807,"
	    "-9223372036854775808,9.223372036854776e+19,2.5,1e+19,"
	    "1.2345678901234569e+32]}");
	free(s);
	json_decref(v);

	/* The length is the end, not a NUL. */
	v = jsontext_load("[10000000000000000000]xyz", 22, 0, &e);
	assert_non_null(v);
	assert_true(json_real_value(json_array_get(v, 0)) == 1e19);
	json_decref(v);

	/* Errors stay errors: malformed text, a real out of double's range,
	 * and an integer too big for a double too. */
	assert_null(jsontext_load("[1, 10000000000000000000", 24, 0, &e));
	assert_null(jsontext_load("[1e400]", 7, 0, &e));
	assert_int_equal(json_error_code(&e), json_error_numeric_overflow);
	assert_null(jsontext_load("{\"a\": 10000000000000000000,}", 28, 0,
	    &e));
	assert_int_equal(json_error_code(&e), json_error_invalid_syntax);
}

/* Another service's JSON: such an integer becomes a string of all its
 * digits; everything else is read as json_loadb reads it. */
static void
test_load_exact(void **state)
{
	const char	*text;
	json_error_t	 e;
	json_t		*v;
	char		*s;

	(void)state;
	text = "{\"id\": 123456789012345678901234567, \"s\": "
	    "\"99999999999999999999\", \"a\": [9223372036854775807, "
	    "-92233720368547758080, 2.5, 1e19]}";
	v = jsontext_load_exact(text, strlen(text), 0, &e);
	assert_non_null(v);
	s = jsontext(v, JSONTEXT_SORTED);
	assert_string_equal(s, "{\"a\":[9223372036854775807,"
	    "\"-92233720368547758080\",2.5,1e+19],"
	    "\"id\":\"123456789012345678901234567\","
	    "\"s\":\"99999999999999999999\"}");
	free(s);
	json_decref(v);
	v = jsontext_load_exact("18446744073709551616", 20, JSON_DECODE_ANY,
	    &e);
	assert_true(json_is_string(v));
	assert_string_equal(json_string_value(v), "18446744073709551616");
	json_decref(v);
	assert_null(jsontext_load_exact("[1e400]", 7, 0, &e));
	assert_null(jsontext_load_exact("[1, 10000000000000000000", 24, 0,
	    &e));
}

/* An answer's text with such integers made reals, and nothing else
 * changed. */
static void
test_big_ints_as_reals(void **state)
{
	char	*s;

#define AS_REALS(text)	jsontext_big_ints_as_reals(text, strlen(text))
	(void)state;
	s = AS_REALS("{\"n\":10000000000000000000,\"x\":1.50,"
	    "\"m\":[-9223372036854775809]}");
	assert_string_equal(s, "{\"n\":10000000000000000000e0,\"x\":1.50,"
	    "\"m\":[-9223372036854775809e0]}");
	free(s);
	assert_null(AS_REALS("[-9223372036854775808, 9223372036854775807, "
	    "1.0000000000000000000, 1e19, 10000000000000000000e0]"));
	/* In a string it is no number, nor past the length. */
	assert_null(AS_REALS("{\"s\":\"10000000000000000000\"}"));
	assert_null(AS_REALS("[\"\\\" 10000000000000000000\"]"));
	assert_null(jsontext_big_ints_as_reals("[1]10000000000000000000", 3));
	assert_null(AS_REALS(""));
#undef AS_REALS
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_like_jansson),
		cmocka_unit_test(test_big_ints_as_reals),
		cmocka_unit_test(test_load_exact),
		cmocka_unit_test(test_like_jansson_random),
		cmocka_unit_test(test_reals),
		cmocka_unit_test(test_reals_round_trip),
		cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
