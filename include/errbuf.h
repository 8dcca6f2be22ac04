/*
 * errbuf.h - the "char *err, size_t errlen" convention: a function that
 * can fail describes why in a caller's buffer, which may be NULL.
 */
#ifndef TASKERD_ERRBUF_H
#define TASKERD_ERRBUF_H

#include <stddef.h>

/* Format the reason into err (truncated to errlen); nothing when err is
 * NULL or errlen 0. */
void	errbuf_set(char *err, size_t errlen, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/* Append line to *lines, lines joined by "\n" (NULL: none yet); nothing
 * when lines is NULL. */
void	errbuf_line(char **lines, const char *line);

#endif
