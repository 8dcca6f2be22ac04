/*
 * utf8.c - see utf8.h.
 */
#include <stdint.h>
#include <string.h>

#include "utf8.h"
#include "xmalloc.h"

/*
 * Length of the well-formed UTF-8 sequence at s (n > 0 bytes available), or
 * 0 if there is none: a stray continuation byte, a truncated sequence, an
 * overlong form, a surrogate or a code point past U+10FFFF.
 */
static size_t
utf8_seqlen(const unsigned char *s, size_t n)
{
	uint32_t	 cp;
	size_t		 len, i;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

int
utf8_valid(const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 off, n;

	for (off = 0; off < len; off += n)
		if ((n = utf8_seqlen(p + off, len - off)) == 0)
			return 0;
	return 1;
}

/* At most 3 bytes out per byte in, and the NUL. */
char *
utf8_repair(const char *s, size_t len, size_t *outlen)
{
	static const char	 fffd[] = "\xef\xbf\xbd";
	const unsigned char	*p = (const unsigned char *)s;
	char			*out;
	size_t			 off, o, n;

	out = xreallocarray(NULL, len + 1, 3);
	for (off = o = 0; off < len; off += n) {
		if ((n = utf8_seqlen(p + off, len - off)) == 0) {
			memcpy(out + o, fffd, 3);
			o += 3;
			n = 1;
		} else {
			memcpy(out + o, p + off, n);
			o += n;
		}
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}
