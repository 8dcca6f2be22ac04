/*
 * httpclass.c - what an HTTP answer means for a step.
 *
 * Pure functions with the clock passed in, so the tests can pin "now".  The
 * date parser is strict and hand-written rather than strptime(3): strptime
 * depends on the locale and happily accepts partial input, and a Retry-After
 * we misread would make taskerd hammer a service that asked it to wait.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "httpclass.h"

enum proto_outcome
httpclass_status(long status, int conflict_retryable)
{
	if (status >= 200 && status <= 299)
		return OUTCOME_SUCCESS;
	/* Asking again later is what each means: the server timed out
	 * waiting for the request (408), will not risk a replay yet (425),
	 * or is rate limiting (429). */
	if (status == 408 || status == 425 || status == 429)
		return OUTCOME_RETRYABLE;
	if (status >= 500 && status <= 599)
		return OUTCOME_RETRYABLE;
	if (status == 409)
		return conflict_retryable ? OUTCOME_RETRYABLE :
		    OUTCOME_PERMANENT;
	/* 1xx, 3xx (redirects are not followed), other 4xx, and anything
	 * outside 100-599: asking again would get the same answer. */
	return OUTCOME_PERMANENT;
}

static const char *const httpclass_months[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};
static const char *const httpclass_wkdays[] = {
	"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"
};
static const char *const httpclass_weekdays[] = {
	"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
	"Sunday"
};

/* A strict cursor: each getter advances *p on success, returns -1 if not. */
static int
httpclass_lit(const char **p, const char *lit)
{
	size_t	n = strlen(lit);

	if (strncmp(*p, lit, n) != 0)
		return -1;
	*p += n;
	return 0;
}

static int
httpclass_digits(const char **p, int ndigits, int *out)
{
	int	i, v = 0;

	for (i = 0; i < ndigits; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += ndigits;
	*out = v;
	return 0;
}

/* Match one name of a table (case-insensitively, as senders vary); the
 * names must be followed by a non-letter so "Sun" does not match "Sunday". */
static int
httpclass_name(const char **p, const char *const *names, int count, int *out)
{
	size_t	n;
	int	i;

	for (i = 0; i < count; i++) {
		n = strlen(names[i]);
		if (strncasecmp(*p, names[i], n) == 0 &&
		    !isalpha((unsigned char)(*p)[n])) {
			*p += n;
			*out = i;
			return 0;
		}
	}
	return -1;
}

/* "HH:MM:SS" */
static int
httpclass_time(const char **p, struct tm *tm)
{
	if (httpclass_digits(p, 2, &tm->tm_hour) == -1 ||
	    httpclass_lit(p, ":") == -1 ||
	    httpclass_digits(p, 2, &tm->tm_min) == -1 ||
	    httpclass_lit(p, ":") == -1 ||
	    httpclass_digits(p, 2, &tm->tm_sec) == -1)
		return -1;
	return 0;
}

/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
static int
httpclass_imf(const char *p, struct tm *tm)
{
	int	wd, year;

	if (httpclass_name(&p, httpclass_wkdays, 7, &wd) == -1 ||
	    httpclass_lit(&p, ", ") == -1 ||
	    httpclass_digits(&p, 2, &tm->tm_mday) == -1 ||
	    httpclass_lit(&p, " ") == -1 ||
	    httpclass_name(&p, httpclass_months, 12, &tm->tm_mon) == -1 ||
	    httpclass_lit(&p, " ") == -1 ||
	    httpclass_digits(&p, 4, &year) == -1 ||
	    httpclass_lit(&p, " ") == -1 ||
	    httpclass_time(&p, tm) == -1 ||
	    httpclass_lit(&p, " GMT") == -1 || *p != '\0')
		return -1;
	tm->tm_year = year - 1900;
	return 0;
}

/* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
static int
httpclass_rfc850(const char *p, struct tm *tm, time_t now)
{
	struct tm	nowtm;
	int		wd, yy, year;

	if (httpclass_name(&p, httpclass_weekdays, 7, &wd) == -1 ||
	    httpclass_lit(&p, ", ") == -1 ||
	    httpclass_digits(&p, 2, &tm->tm_mday) == -1 ||
	    httpclass_lit(&p, "-") == -1 ||
	    httpclass_name(&p, httpclass_months, 12, &tm->tm_mon) == -1 ||
	    httpclass_lit(&p, "-") == -1 ||
	    httpclass_digits(&p, 2, &yy) == -1 ||
	    httpclass_lit(&p, " ") == -1 ||
	    httpclass_time(&p, tm) == -1 ||
	    httpclass_lit(&p, " GMT") == -1 || *p != '\0')
		return -1;
	/* RFC 9110 5.6.7: a two-digit year more than 50 years in the future
	 * means the most recent past year with those digits. */
	if (gmtime_r(&now, &nowtm) == NULL)
		return -1;
	year = (nowtm.tm_year + 1900) / 100 * 100 + yy;
	if (year > nowtm.tm_year + 1900 + 50)
		year -= 100;
	tm->tm_year = year - 1900;
	return 0;
}

/* asctime: "Sun Nov  6 08:49:37 1994" (day padded with a space) */
static int
httpclass_asctime(const char *p, struct tm *tm)
{
	int	wd, year;

	if (httpclass_name(&p, httpclass_wkdays, 7, &wd) == -1 ||
	    httpclass_lit(&p, " ") == -1 ||
	    httpclass_name(&p, httpclass_months, 12, &tm->tm_mon) == -1 ||
	    httpclass_lit(&p, " ") == -1)
		return -1;
	if (*p == ' ') {
		p++;
		if (httpclass_digits(&p, 1, &tm->tm_mday) == -1)
			return -1;
	} else if (httpclass_digits(&p, 2, &tm->tm_mday) == -1)
		return -1;
	if (httpclass_lit(&p, " ") == -1 ||
	    httpclass_time(&p, tm) == -1 ||
	    httpclass_lit(&p, " ") == -1 ||
	    httpclass_digits(&p, 4, &year) == -1 || *p != '\0')
		return -1;
	tm->tm_year = year - 1900;
	return 0;
}

/* Reject what timegm() would silently normalise (Feb 30, 25:00). */
static int
httpclass_tm_valid(const struct tm *tm)
{
	static const int	mdays[] = {
		31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};
	int			year = tm->tm_year + 1900, leap;

	leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	if (tm->tm_mon < 0 || tm->tm_mon > 11 || tm->tm_mday < 1 ||
	    tm->tm_mday > mdays[tm->tm_mon] ||
	    (tm->tm_mon == 1 && !leap && tm->tm_mday > 28))
		return 0;
	/* 60 allows a leap second. */
	if (tm->tm_hour > 23 || tm->tm_min > 59 || tm->tm_sec > 60)
		return 0;
	return 1;
}

int64_t
httpclass_retry_after_ms(const char *value, time_t now)
{
	struct tm	 tm;
	const char	*p, *e;
	char		 buf[64];
	size_t		 n;
	int64_t		 secs;
	time_t		 t;

	if (value == NULL)
		return -1;
	/* Header values may carry optional whitespace around them. */
	for (p = value; *p == ' ' || *p == '\t'; p++)
		;
	for (e = p + strlen(p); e > p && isspace((unsigned char)e[-1]); e--)
		;
	if ((n = (size_t)(e - p)) == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, p, n);
	buf[n] = '\0';

	if (isdigit((unsigned char)buf[0])) {
		secs = 0;
		for (p = buf; *p != '\0'; p++) {
			if (!isdigit((unsigned char)*p))
				return -1;
			/* Saturate: backoff.c clips to a day anyway. */
			if (secs > (INT64_MAX / 1000 - 9) / 10)
				return INT64_MAX / 1000 * 1000;
			secs = secs * 10 + (*p - '0');
		}
		return secs * 1000;
	}

	memset(&tm, 0, sizeof(tm));
	if (httpclass_imf(buf, &tm) == -1) {
		memset(&tm, 0, sizeof(tm));
		if (httpclass_rfc850(buf, &tm, now) == -1) {
			memset(&tm, 0, sizeof(tm));
			if (httpclass_asctime(buf, &tm) == -1)
				return -1;
		}
	}
	if (!httpclass_tm_valid(&tm))
		return -1;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	if (t <= now)
		return 0;
	return ((int64_t)t - (int64_t)now) * 1000;
}
