/*
 * childenv.c - the environment of a program taskerd starts.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "childenv.h"
#include "xmalloc.h"

extern char	**environ;

/* Whether entry ("NAME=value") names one of list's entries' names.  An
 * entry without '=' names nothing (setenv takes no notice of one). */
static bool
named_in(const char *entry, const char *const *list)
{
	size_t	n = strcspn(entry, "=");

	if (entry[n] != '=')
		return false;
	for (; list != NULL && *list != NULL; list++)
		if (strncmp(entry, *list, n) == 0 && ((*list)[n] == '=' ||
		    (*list)[n] == '\0'))
			return true;
	return false;
}

char **
childenv(const char *const *set, const char *const *deflt)
{
	static const char *const drop[] = { "NOTIFY_SOCKET", "WATCHDOG_USEC",
	    "WATCHDOG_PID", NULL };
	char		**env;
	size_t		  n = 0, i;

	for (i = 0; environ[i] != NULL; i++)
		n++;
	for (i = 0; set != NULL && set[i] != NULL; i++)
		n++;
	for (i = 0; deflt != NULL && deflt[i] != NULL; i++)
		n++;
	env = xcalloc(n + 1, sizeof(*env));
	n = 0;
	for (i = 0; environ[i] != NULL; i++)
		if (!named_in(environ[i], drop) && !named_in(environ[i], set))
			env[n++] = xstrdup(environ[i]);
	for (i = 0; set != NULL && set[i] != NULL; i++)
		env[n++] = xstrdup(set[i]);
	for (i = 0; deflt != NULL && deflt[i] != NULL; i++) {
		const char *const one[] = { deflt[i], NULL };
		size_t		  j;

		for (j = 0; environ[j] != NULL; j++)
			if (named_in(environ[j], one))
				break;
		if (environ[j] == NULL)
			env[n++] = xstrdup(deflt[i]);
	}
	return env;
}

void
childenv_free(char **env)
{
	size_t	i;

	for (i = 0; env != NULL && env[i] != NULL; i++)
		free(env[i]);
	free(env);
}
