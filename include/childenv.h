/*
 * childenv.h - the environment of a program taskerd starts, made before
 * the fork: between fork and exec only async-signal-safe calls are safe
 * (taskerd has threads: db.c), and setenv and unsetenv are not.
 */
#ifndef TASKERD_CHILDENV_H
#define TASKERD_CHILDENV_H

/* environ without systemd's notification variables (NOTIFY_SOCKET,
 * WATCHDOG_USEC, WATCHDOG_PID: the supervisor's alone), with set's
 * "NAME=value" entries replacing or adding to it and deflt's added
 * where the name is not there.  Either list may be NULL; both end in
 * NULL.  childenv_free() it (in the parent). */
char	**childenv(const char *const *set, const char *const *deflt);
void	  childenv_free(char **);

#endif
