/*
 * fuzz.h - helpers shared by the libFuzzer harnesses (see tests/fuzz/run).
 *
 * A harness checks more than "does not crash": each has an oracle (a round
 * trip, an invariant of the API's contract), and a broken oracle is reported
 * through FUZZ_CHECK, which prints what failed and aborts so that libFuzzer
 * saves the input as a reproducer.  Nothing here keeps state between inputs.
 */
#ifndef TASKERD_FUZZ_H
#define TASKERD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define FUZZ_CHECK(cond, ...) do {					\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz oracle failed at %s:%d: %s: ",	\
		    __FILE__, __LINE__, #cond);				\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		abort();						\
	}								\
} while (0)

/* Two inputs in one: the bytes before the first NUL and those after it
 * (none when there is no NUL).  Neither part contains the separator. */
static inline void
fuzz_split(const uint8_t *data, size_t size, const uint8_t **a, size_t *alen,
    const uint8_t **b, size_t *blen)
{
	const uint8_t	*nul;

	nul = size > 0 ? memchr(data, '\0', size) : NULL;
	*a = data;
	if (nul == NULL) {
		*alen = size;
		*b = data + size;
		*blen = 0;
		return;
	}
	*alen = (size_t)(nul - data);
	*b = nul + 1;
	*blen = size - *alen - 1;
}

/* A NUL-terminated copy of n bytes (which may hold NULs of their own). */
static inline char *
fuzz_strndup(const uint8_t *p, size_t n)
{
	char	*s;

	if ((s = malloc(n + 1)) == NULL)
		abort();
	if (n > 0)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* An error buffer a failing call must have filled: non-empty and
 * terminated within its size. */
static inline int
fuzz_err_ok(const char *err, size_t errlen)
{
	return err[0] != '\0' && memchr(err, '\0', errlen) != NULL;
}

/* Quiet logging: a harness runs millions of inputs, and log lines would
 * only slow it down.  Called from LLVMFuzzerInitialize. */
static inline void
fuzz_quiet(void)
{
	log_setlevel(LOG_LVL_ERROR);
}

#endif
