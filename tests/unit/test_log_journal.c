/*
 * test_log_journal.c - the fields of an entry sent to the journal, as
 * journalctl shows them: one MESSAGE, one PRIORITY, one SYSLOG_IDENTIFIER,
 * whatever the event's fields are called.
 */
#include <sys/stat.h>
#include <sys/uio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"

#define MAX_FIELDS	40

static char	sent[MAX_FIELDS][600];
static int	nsent;

int	sd_journal_sendv(const struct iovec *, int);

/* Stands for libsystemd's: keeps the entry log.c would send. */
int
sd_journal_sendv(const struct iovec *iov, int n)
{
	int	i;

	for (nsent = 0, i = 0; i < n && i < MAX_FIELDS; i++, nsent++)
		snprintf(sent[i], sizeof(sent[i]), "%.*s",
		    (int)iov[i].iov_len, (const char *)iov[i].iov_base);
	return 0;
}

/* The one field named name ("MESSAGE"), or a failure if not one. */
static const char *
field(const char *name)
{
	const char	*found = NULL;
	size_t		 len = strlen(name);
	int		 i;

	for (i = 0; i < nsent; i++)
		if (strncmp(sent[i], name, len) == 0 && sent[i][len] == '=') {
			if (found != NULL)
				fail_msg("two %s fields: %s, %s", name, found,
				    sent[i]);
			found = sent[i] + len + 1;
		}
	if (found == NULL)
		fail_msg("no %s field", name);
	return found;
}

static void
test_fields(void **state)
{
	(void)state;
	log_warnx("step attempt failed task_id=%d step=%s", 5,
	    log_quote("a b"));
	assert_string_equal(field("MESSAGE"), "step attempt failed");
	assert_string_equal(field("PRIORITY"), "4");
	assert_string_equal(field("SYSLOG_IDENTIFIER"), "test");
	assert_string_equal(field("TASK_ID"), "5");
	assert_string_equal(field("STEP"), "a b");
}

static void
test_a_message_field_goes_into_the_message(void **state)
{
	(void)state;
	/* As libevent's messages and the database's notices are logged:
	 * a second MESSAGE= hid the text behind "libevent". */
	log_warnx("libevent message=%s", log_quote("accept: Too many open "
	    "files"));
	assert_string_equal(field("MESSAGE"),
	    "libevent: accept: Too many open files");
	log_info("database notice conn=%d message=%s", 2, log_quote("x"));
	assert_string_equal(field("MESSAGE"), "database notice: x");
	assert_string_equal(field("CONN"), "2");
	/* The others keep their value under a name of their own. */
	log_info("odd priority=%s syslog_identifier=%s", "high", "me");
	assert_string_equal(field("PRIORITY"), "6");
	assert_string_equal(field("SYSLOG_IDENTIFIER"), "test");
	assert_string_equal(field("TASKERD_PRIORITY"), "high");
	assert_string_equal(field("TASKERD_SYSLOG_IDENTIFIER"), "me");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_a_message_field_goes_into_the_message),
	};
	struct stat	st;
	char		stream[64];

	/* stderr is the journal's stream: log.c sends entries there. */
	if (fstat(STDERR_FILENO, &st) == -1)
		return 1;
	snprintf(stream, sizeof(stream), "%llu:%llu",
	    (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", stream, 1);
	log_init("test", LOG_LVL_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
