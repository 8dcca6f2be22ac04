/*
 * duration.c - human durations and sizes.
 *
 * Both are "digits, then an optional unit", nothing else: no sign, no
 * spaces, no fractions.  A value that would not fit in int64_t is an error
 * rather than a wrapped number, since a wrapped timeout or limit is worse
 * than a refused config.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "duration.h"

struct unit {
	const char	*name;
	int64_t		 mult;
};

static const struct unit duration_units[] = {
	{ "",	1 },			/* Tasker's `timeout: 5000` */
	{ "ms",	1 },
	{ "s",	1000 },
	{ "m",	60 * 1000 },
	{ "h",	3600 * 1000 },
	{ "d",	24 * 3600 * 1000 },
};

/* Sizes are binary whatever the spelling: "1MB" is 1 MiB, as in nginx. */
static const struct unit size_units[] = {
	{ "",	1 },
	{ "b",	1 },
	{ "k",	1LL << 10 }, { "kb", 1LL << 10 }, { "kib", 1LL << 10 },
	{ "m",	1LL << 20 }, { "mb", 1LL << 20 }, { "mib", 1LL << 20 },
	{ "g",	1LL << 30 }, { "gb", 1LL << 30 }, { "gib", 1LL << 30 },
	{ "t",	1LL << 40 }, { "tb", 1LL << 40 }, { "tib", 1LL << 40 },
};

static int
unit_parse(const char *s, const struct unit *units, size_t nunits,
    int icase, int64_t *out)
{
	const char	*p;
	int64_t		 n = 0;
	size_t		 i;
	int		 d;

	if (s == NULL)
		return -1;
	for (p = s; *p >= '0' && *p <= '9'; p++) {
		d = *p - '0';
		if (n > (INT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	if (p == s)
		return -1;
	for (i = 0; i < nunits; i++) {
		if ((icase ? strcasecmp(p, units[i].name) :
		    strcmp(p, units[i].name)) != 0)
			continue;
		if (n > INT64_MAX / units[i].mult)
			return -1;
		*out = n * units[i].mult;
		return 0;
	}
	return -1;
}

int
duration_parse_ms(const char *s, int64_t *ms)
{
	/* Case matters: "m" is minutes and "M" would read like months. */
	return unit_parse(s, duration_units,
	    sizeof(duration_units) / sizeof(duration_units[0]), 0, ms);
}

int
size_parse(const char *s, int64_t *bytes)
{
	return unit_parse(s, size_units,
	    sizeof(size_units) / sizeof(size_units[0]), 1, bytes);
}

int64_t
duration_ms_since(const struct timespec *t)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t->tv_sec) * 1000 +
	    (now.tv_nsec - t->tv_nsec) / 1000000;
}
