/*
 * utf8.h - well-formed UTF-8, which everything that reaches PostgreSQL
 * text columns or a JSON answer must be: no stray continuation bytes,
 * truncated sequences, overlong forms, surrogates or code points past
 * U+10FFFF.
 */
#ifndef TASKERD_UTF8_H
#define TASKERD_UTF8_H

#include <stddef.h>

/* 1 when the len bytes at s are well-formed UTF-8, else 0. */
int	 utf8_valid(const char *s, size_t len);

/* A copy of s (len bytes) where every byte that does not start a
 * well-formed sequence becomes U+FFFD; *outlen gets its length, and the
 * copy is NUL-terminated.  The caller frees it. */
char	*utf8_repair(const char *s, size_t len, size_t *outlen);

#endif
