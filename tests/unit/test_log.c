/* test_log.c - log lines stay logfmt whatever the values hold. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"

static void
test_plain_values_stay_bare(void **state)
{
	(void)state;
	assert_string_equal(log_quote("timeout"), "timeout");
	assert_string_equal(log_quote("/var/lib/taskerd"), "/var/lib/taskerd");
	assert_string_equal(log_quote("a.b:c-d_e"), "a.b:c-d_e");
	assert_string_equal(log_quote(NULL), "-");
}

static void
test_other_values_are_quoted(void **state)
{
	(void)state;
	assert_string_equal(log_quote(""), "\"\"");
	assert_string_equal(log_quote("connection refused"),
	    "\"connection refused\"");
	assert_string_equal(log_quote("relation \"tasks\" does not exist"),
	    "\"relation \\\"tasks\\\" does not exist\"");
	assert_string_equal(log_quote("C:\\dir"), "\"C:\\\\dir\"");
	assert_string_equal(log_quote("a=b"), "\"a=b\"");
	assert_string_equal(log_quote("line one\nline\ttwo"),
	    "\"line one line two\"");
	assert_string_equal(log_quote("\x7f"), "\" \"");
}

static void
test_several_in_one_call(void **state)
{
	const char	*a, *b, *c, *d;

	(void)state;
	a = log_quote("one value");
	b = log_quote("two value");
	c = log_quote("three value");
	d = log_quote("four value");
	assert_string_equal(a, "\"one value\"");
	assert_string_equal(b, "\"two value\"");
	assert_string_equal(c, "\"three value\"");
	assert_string_equal(d, "\"four value\"");
}

static void
test_long_value_is_cut_and_closed(void **state)
{
	char		 in[3000];
	const char	*out;
	size_t		 n;

	(void)state;
	memset(in, '"', sizeof(in) - 1);
	in[sizeof(in) - 1] = '\0';
	out = log_quote(in);
	n = strlen(out);
	assert_true(n < 1024);
	assert_true(n > 1000);
	assert_int_equal(out[0], '"');
	assert_int_equal(out[n - 1], '"');
	/* Escaped pairs only: the cut never leaves a lone backslash that
	 * would escape the closing quote. */
	assert_int_equal((n - 2) % 2, 0);
	assert_string_equal(out + n - 3, "\\\"\"");
}

/* The line log_warnx writes, read back from a file stderr was sent to. */
static char *
logged(const char *err, const char *code)
{
	static char	 line[8192];
	FILE		*f = tmpfile();
	int		 saved = dup(STDERR_FILENO);
	size_t		 n;

	assert_non_null(f);
	fflush(stderr);
	assert_int_not_equal(dup2(fileno(f), STDERR_FILENO), -1);
	log_warnx("apply failed \"now\" count=%d error=%s code=%s", 3,
	    log_quote(err), log_quote(code));
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(f);
	n = fread(line, 1, sizeof(line) - 1, f);
	line[n] = '\0';
	fclose(f);
	return line;
}

static void
test_line_reads_back(void **state)
{
	const char	*line;

	(void)state;
	line = logged("relation \"tasks\" does not exist\nHINT: x", "e_1");
	assert_non_null(strstr(line, " level=warn "));
	assert_non_null(strstr(line, " msg=\"apply failed \\\"now\\\"\" "
	    "count=3 error=\"relation \\\"tasks\\\" does not exist HINT: x\" "
	    "code=e_1\n"));
	/* One event, one line. */
	assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_values_stay_bare),
		cmocka_unit_test(test_other_values_are_quoted),
		cmocka_unit_test(test_several_in_one_call),
		cmocka_unit_test(test_long_value_is_cut_and_closed),
		cmocka_unit_test(test_line_reads_back),
	};

	unsetenv("JOURNAL_STREAM");
	log_init("test", LOG_LVL_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
