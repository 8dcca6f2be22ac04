/*
 * fuzz_schema - the JSON Schema subset (common/schema.c).
 *
 * The input split at its first NUL byte is a schema and an instance, both
 * JSON (the instance defaults to {} when the second part does not parse:
 * a task context is always an object).  A schema that schema_check accepts
 * is validated against the instance, which must give an array of
 * {"path": "$...", "message": "..."} objects; validating the instance again
 * (its defaults now filled in) must give the same answer.  A schema that
 * schema_check refuses must come with a reason.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "schema.h"
#include "fuzz.h"

static void
check_violations(const json_t *viol)
{
	const json_t	*item, *path, *msg;
	size_t		 i;

	FUZZ_CHECK(json_is_array(viol), "violations are not an array");
	json_array_foreach(viol, i, item) {
		FUZZ_CHECK(json_is_object(item) && json_object_size(item) == 2,
		    "violation %zu is not a two-member object", i);
		path = json_object_get(item, "path");
		msg = json_object_get(item, "message");
		FUZZ_CHECK(json_is_string(path) &&
		    json_string_value(path)[0] == '$',
		    "violation %zu: path is not a '$...' string", i);
		FUZZ_CHECK(json_is_string(msg) && json_string_length(msg) > 0,
		    "violation %zu: message is not a non-empty string", i);
	}
}

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t	*a, *b;
	size_t		 alen, blen;
	json_error_t	 jerr;
	json_t		*schema, *inst, *viol, *again;
	char		 err[256];

	fuzz_split(data, size, &a, &alen, &b, &blen);
	schema = json_loadb((const char *)a, alen, JSON_DECODE_ANY, &jerr);
	if (schema == NULL)
		return 0;
	memset(err, 'x', sizeof(err));
	if (schema_check(schema, err, sizeof(err)) == -1) {
		FUZZ_CHECK(fuzz_err_ok(err, sizeof(err)),
		    "schema refused without a reason");
		json_decref(schema);
		return 0;
	}
	FUZZ_CHECK(err[0] == '\0', "schema accepted with a reason: %.100s",
	    err);

	if ((inst = json_loadb((const char *)b, blen, JSON_DECODE_ANY,
	    &jerr)) == NULL)
		inst = json_object();
	viol = schema_validate(schema, inst);
	check_violations(viol);
	again = schema_validate(schema, inst);
	check_violations(again);
	FUZZ_CHECK(json_equal(viol, again),
	    "validating the filled-in instance again gave other violations");
	json_decref(again);
	json_decref(viol);
	json_decref(inst);
	json_decref(schema);
	return 0;
}
