/*
 * sdnotify.h - systemd notifications without #ifdef in the logic: when
 * built without libsystemd these are no-ops.
 */
#ifndef TASKERD_SDNOTIFY_H
#define TASKERD_SDNOTIFY_H

#include "autoconf.h"	/* the build configuration: HAVE_SYSTEMD */

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#else
#define sd_notify(unset, state)		0
#define sd_notifyf(unset, ...)		0
#define sd_watchdog_enabled(unset, usec) 0
#endif

#endif
