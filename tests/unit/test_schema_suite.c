/*
 * test_schema_suite.c - schema.c against the official JSON-Schema-Test-Suite
 * (draft 7), as shipped by Debian's libtest-json-schema-acceptance-perl.
 *
 * One test per file of a supported keyword.  A group whose schema
 * schema_check() refuses (it needs $ref, additionalItems, ...) is skipped;
 * every other case must agree with the suite, and the test fails listing
 * each case that does not.  TASKERD_SCHEMA_SUITE overrides the directory.
 * A missing suite is a failure, not a skip: CI installs the package.
 */
#include <sys/stat.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <setjmp.h>
#include <cmocka.h>

#include "schema.h"

#define SUITE_DIR	"/usr/share/perl5/auto/share/dist/" \
			"Test-JSON-Schema-Acceptance/tests/draft7"

static const char *const suite_files[] = {
	"type.json",
	"required.json",
	"properties.json",
	"additionalProperties.json",
	"enum.json",
	"const.json",
	"minLength.json",
	"maxLength.json",
	"pattern.json",
	"minimum.json",
	"maximum.json",
	"exclusiveMinimum.json",
	"exclusiveMaximum.json",
	"items.json",
	"minItems.json",
	"maxItems.json",
	"boolean_schema.json",
	"default.json",
	"optional/format/email.json",
	"optional/format/date-time.json",
	"optional/format/uri.json",
	"optional/format/date.json",
	"optional/format/time.json",
	"optional/format/hostname.json",
	"optional/format/ipv4.json",
	"optional/format/ipv6.json",
};
#define SUITE_NFILES	(sizeof(suite_files) / sizeof(suite_files[0]))

/* Totals over the files run so far, for the last test. */
static int	total_run, total_skipped;

static const char *
suite_dir(void)
{
	const char	*d;

	if ((d = getenv("TASKERD_SCHEMA_SUITE")) != NULL && *d != '\0')
		return d;
	return SUITE_DIR;
}

static void
suite_need_dir(void)
{
	struct stat	 st;
	const char	*dir = suite_dir();

	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode))
		fail_msg("JSON-Schema-Test-Suite not found at %s: install "
		    "libtest-json-schema-acceptance-perl (or point "
		    "TASKERD_SCHEMA_SUITE at its tests/draft7 directory)", dir);
}

static void
suite_print_mismatch(const char *file, const json_t *group,
    const json_t *test, const json_t *viol)
{
	const json_t	*first;
	char		*data;

	data = json_dumps(json_object_get(test, "data"),
	    JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
	first = json_array_get(viol, 0);
	print_error("%s: \"%s\" / \"%s\": data %s: expected %s, "
	    "got %s%s%s%s%s\n",
	    file, json_string_value(json_object_get(group, "description")),
	    json_string_value(json_object_get(test, "description")),
	    data != NULL ? data : "?",
	    json_is_true(json_object_get(test, "valid")) ? "valid" : "invalid",
	    first == NULL ? "valid" : "invalid (",
	    first == NULL ? "" :
	    json_string_value(json_object_get(first, "path")),
	    first == NULL ? "" : ": ",
	    first == NULL ? "" :
	    json_string_value(json_object_get(first, "message")),
	    first == NULL ? "" : ")");
	free(data);
}

static void
suite_run_file(void **state)
{
	const char	*file = *state;
	const json_t	*group, *schema, *tests, *test;
	json_t		*root, *data, *viol;
	json_error_t	 jerr;
	char		 path[4096], err[256];
	size_t		 g, t;
	int		 run = 0, skipped = 0, gskipped = 0, failed = 0, valid;

	suite_need_dir();
	snprintf(path, sizeof(path), "%s/%s", suite_dir(), file);
	if ((root = json_load_file(path, JSON_DECODE_ANY | JSON_ALLOW_NUL,
	    &jerr)) == NULL)
		fail_msg("%s:%d: %s", path, jerr.line, jerr.text);
	if (!json_is_array(root)) {
		json_decref(root);
		fail_msg("%s: not an array of test groups", path);
	}
	json_array_foreach(root, g, group) {
		schema = json_object_get(group, "schema");
		tests = json_object_get(group, "tests");
		if (schema_check(schema, err, sizeof(err)) == -1) {
			gskipped++;
			skipped += (int)json_array_size(tests);
			print_message("%s: skip group \"%s\": %s\n", file,
			    json_string_value(json_object_get(group,
			    "description")), err);
			continue;
		}
		json_array_foreach(tests, t, test) {
			/* schema_validate() inserts defaults: use a copy. */
			data = json_deep_copy(json_object_get(test, "data"));
			viol = schema_validate(schema, data);
			valid = json_array_size(viol) == 0;
			run++;
			if (valid != json_is_true(json_object_get(test,
			    "valid"))) {
				failed++;
				suite_print_mismatch(file, group, test, viol);
			}
			json_decref(viol);
			json_decref(data);
		}
	}
	print_message("%s: %d cases run, %d skipped (%d of %zu groups), "
	    "%d failed\n", file, run, skipped, gskipped, json_array_size(root),
	    failed);
	json_decref(root);
	total_run += run;
	total_skipped += skipped;
	if (failed > 0)
		fail_msg("%s: %d of %d cases disagree with the suite", file,
		    failed, run);
}

/* Skipping is for groups that need keywords we refuse; if it ever became
 * the rule, the suite would no longer be testing much. */
static void
suite_skips_minority(void **state)
{
	(void)state;
	suite_need_dir();
	print_message("all files: %d cases run, %d skipped\n", total_run,
	    total_skipped);
	assert_true(total_run > 0);
	assert_true(total_skipped * 4 < total_run);
}

int
main(void)
{
	struct CMUnitTest	tests[SUITE_NFILES + 1];
	size_t			i;

	for (i = 0; i < SUITE_NFILES; i++) {
		tests[i] = (struct CMUnitTest){
			.name = suite_files[i],
			.test_func = suite_run_file,
			.initial_state = (void *)(uintptr_t)suite_files[i],
		};
	}
	tests[i] = (struct CMUnitTest){
		.name = "skips are a minority",
		.test_func = suite_skips_minority,
	};
	return _cmocka_run_group_tests("schema_suite", tests, SUITE_NFILES + 1,
	    NULL, NULL);
}
