/* httpclass.h - what an HTTP answer means for a step (pure functions). */
#ifndef TASKERD_HTTPCLASS_H
#define TASKERD_HTTPCLASS_H

#include <stdint.h>
#include <time.h>
#include "protocol.h"

/*
 * The outcome class of an HTTP status per DESIGN.md: 2xx success; 408
 * (a timeout), 425, 429, 5xx retryable; 400/401/403/404/422 permanent; 409 as conflict_retryable says
 * (default permanent); other 4xx permanent; 1xx/3xx (after redirects were
 * followed) permanent.
 */
enum proto_outcome httpclass_status(long status, int conflict_retryable);

/*
 * Parse a Retry-After value: delta-seconds or an HTTP-date (IMF-fixdate,
 * RFC 850 and asctime forms), relative to now.  Returns milliseconds >= 0,
 * or -1 when unparseable.  Not clipped here (backoff.c clips).
 */
int64_t	httpclass_retry_after_ms(const char *value, time_t now);

#endif
