/* backoff.h - retry delay policy (pure; the caller supplies randomness). */
#ifndef TASKERD_BACKOFF_H
#define TASKERD_BACKOFF_H

#include <stdint.h>

enum backoff_jitter { JITTER_FULL, JITTER_EQUAL, JITTER_NONE };

struct backoff {
	int64_t			base_ms;	/* delay before attempt 2 */
	int64_t			max_ms;		/* cap */
	enum backoff_jitter	jitter;
};

#define RETRY_AFTER_MIN_MS	1000LL
#define RETRY_AFTER_MAX_MS	(24LL * 3600 * 1000)

/*
 * Delay before the next attempt, after `attempt` attempts have failed
 * (attempt >= 1): exp = min(max, base * 2^(attempt-1)); full jitter picks in
 * [0, exp], equal in [exp/2, exp], none gives exp.  rnd is uniform in [0,1).
 * A service's retry_after_ms >= 0 overrides the computation, clipped to
 * [RETRY_AFTER_MIN_MS, RETRY_AFTER_MAX_MS].
 */
int64_t	backoff_delay_ms(const struct backoff *, uint32_t attempt,
	    int64_t retry_after_ms, double rnd);

int	backoff_parse_jitter(const char *, enum backoff_jitter *);

#endif
