/*
 * fdlimit.c - the descriptor limit (fdlimit.h): raised for taskerd, given
 * back to its children.
 */
#include <sys/resource.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fdlimit.h"
#include "log.h"

static struct rlimit	given;		/* what taskerd was started with */
static bool		raised;

/* The most a process may open: the hard limit, or the kernel's own
 * ceiling where the hard limit is none (setrlimit refuses infinity). */
static rlim_t
ceiling(rlim_t hard)
{
	unsigned long long	 n;
	FILE			*f;

	if (hard != RLIM_INFINITY)
		return hard;
	if ((f = fopen("/proc/sys/fs/nr_open", "r")) == NULL)
		return 1048576;
	if (fscanf(f, "%llu", &n) != 1)
		n = 1048576;
	fclose(f);
	return (rlim_t)n;
}

void
fdlimit_raise(void)
{
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &given) == -1) {
		log_warn("getrlimit RLIMIT_NOFILE");
		return;
	}
	rl = given;
	rl.rlim_cur = ceiling(given.rlim_max);
	if (rl.rlim_cur <= given.rlim_cur)
		return;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("cannot raise the descriptor limit to %llu",
		    (unsigned long long)rl.rlim_cur);
		return;
	}
	raised = true;
}

rlim_t
fdlimit_current(void)
{
	struct rlimit	rl;

	return getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 0;
}

void
fdlimit_restore(void)
{
	if (raised)
		(void)setrlimit(RLIMIT_NOFILE, &given);
}
