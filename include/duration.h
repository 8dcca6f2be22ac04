/* duration.h - human durations and sizes as used in config and templates. */
#ifndef TASKERD_DURATION_H
#define TASKERD_DURATION_H

#include <stdint.h>
#include <time.h>

/* "250ms", "5s", "2m", "1h", "1d", or a bare integer meaning milliseconds
 * (Tasker's `timeout: 5000`).  Returns 0 and sets *ms, or -1. */
int	duration_parse_ms(const char *, int64_t *ms);

/* "512", "64KiB"/"64KB"/"64k", "1MiB"/"1MB"/"1m": bytes, binary multiples.
 * Returns 0 and sets *bytes, or -1. */
int	size_parse(const char *, int64_t *bytes);

/* Milliseconds since t, a CLOCK_MONOTONIC reading. */
int64_t	duration_ms_since(const struct timespec *t);

#endif
