/* backoff.c - retry delays: exponential with jitter, or the service's word. */
#include <string.h>

#include "backoff.h"

int64_t
backoff_delay_ms(const struct backoff *b, uint32_t attempt,
    int64_t retry_after_ms, double rnd)
{
	int64_t		exp;
	uint32_t	i;

	if (retry_after_ms >= 0) {
		if (retry_after_ms < RETRY_AFTER_MIN_MS)
			return RETRY_AFTER_MIN_MS;
		if (retry_after_ms > RETRY_AFTER_MAX_MS)
			return RETRY_AFTER_MAX_MS;
		return retry_after_ms;
	}
	if (attempt < 1)
		attempt = 1;
	if (rnd < 0.0)
		rnd = 0.0;
	if (rnd >= 1.0)
		rnd = 0.999999;

	/* Double step by step so a large attempt count cannot overflow. */
	exp = b->base_ms > 0 ? b->base_ms : 0;
	for (i = 1; i < attempt && exp < b->max_ms; i++)
		exp *= 2;
	if (exp > b->max_ms)
		exp = b->max_ms;

	switch (b->jitter) {
	case JITTER_FULL:
		return (int64_t)(rnd * (double)(exp + 1));
	case JITTER_EQUAL:
		return exp / 2 + (int64_t)(rnd * (double)(exp - exp / 2 + 1));
	case JITTER_NONE:
	default:
		return exp;
	}
}

int
backoff_parse_jitter(const char *s, enum backoff_jitter *out)
{
	if (strcmp(s, "full") == 0)
		*out = JITTER_FULL;
	else if (strcmp(s, "equal") == 0)
		*out = JITTER_EQUAL;
	else if (strcmp(s, "none") == 0)
		*out = JITTER_NONE;
	else
		return -1;
	return 0;
}
