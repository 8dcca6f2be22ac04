/* test_childenv.c - the environment a started program gets. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "childenv.h"

/* The value env gives name, or NULL; fails if name is there twice. */
static const char *
lookup(char **env, const char *name)
{
	const char	*found = NULL;
	size_t		 n = strlen(name), i;

	for (i = 0; env[i] != NULL; i++)
		if (strncmp(env[i], name, n) == 0 && env[i][n] == '=') {
			if (found != NULL)
				fail_msg("%s is there twice", name);
			found = env[i] + n + 1;
		}
	return found;
}

static void
test_childenv(void **state)
{
	static const char *const set[] = { "TASKERD_MAX_FRAME=1024",
	    "NEW_ONE=x", NULL };
	static const char *const deflt[] = { "TASKERD_LOG_LEVEL=info",
	    "KEPT=default", NULL };
	char	**env;

	(void)state;
	clearenv();
	setenv("PATH", "/usr/bin:/bin", 1);
	setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
	setenv("WATCHDOG_USEC", "30000000", 1);
	setenv("WATCHDOG_PID", "1", 1);
	setenv("NOTIFY_SOCKETS", "not systemd's", 1);
	setenv("TASKERD_MAX_FRAME", "99", 1);
	setenv("KEPT", "mine", 1);
	setenv("EMPTY", "", 1);

	env = childenv(set, deflt);
	/* systemd's are the supervisor's alone; a longer name is not. */
	assert_null(lookup(env, "NOTIFY_SOCKET"));
	assert_null(lookup(env, "WATCHDOG_USEC"));
	assert_null(lookup(env, "WATCHDOG_PID"));
	assert_string_equal(lookup(env, "NOTIFY_SOCKETS"), "not systemd's");
	/* set replaces or adds; deflt adds only what is not there. */
	assert_string_equal(lookup(env, "TASKERD_MAX_FRAME"), "1024");
	assert_string_equal(lookup(env, "NEW_ONE"), "x");
	assert_string_equal(lookup(env, "TASKERD_LOG_LEVEL"), "info");
	assert_string_equal(lookup(env, "KEPT"), "mine");
	assert_string_equal(lookup(env, "PATH"), "/usr/bin:/bin");
	assert_string_equal(lookup(env, "EMPTY"), "");
	childenv_free(env);

	/* No lists: the environment, less systemd's. */
	env = childenv(NULL, NULL);
	assert_null(lookup(env, "NOTIFY_SOCKET"));
	assert_string_equal(lookup(env, "TASKERD_MAX_FRAME"), "99");
	childenv_free(env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_childenv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
