/*
 * errbuf.c - see errbuf.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "errbuf.h"
#include "xmalloc.h"

void
errbuf_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void
errbuf_line(char **lines, const char *line)
{
	char	*s;

	if (lines == NULL)
		return;
	if (*lines == NULL) {
		*lines = xstrdup(line);
		return;
	}
	xasprintf(&s, "%s\n%s", *lines, line);
	free(*lines);
	*lines = s;
}
