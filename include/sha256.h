/*
 * sha256.h - SHA-256 (FIPS 180-4), for bearer tokens stored as hashes.
 * None of the project's dependencies offers a hash, and this one is small
 * enough to own: it is checked against the standard's test vectors.
 */
#ifndef TASKERD_SHA256_H
#define TASKERD_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN	32

struct sha256 {
	uint32_t	h[8];
	uint64_t	len;		/* bytes hashed so far */
	unsigned char	buf[64];
	size_t		nbuf;
};

void	sha256_init(struct sha256 *);
void	sha256_update(struct sha256 *, const void *, size_t);
void	sha256_final(struct sha256 *, unsigned char out[SHA256_LEN]);
/* One call: out = SHA-256(data). */
void	sha256(const void *data, size_t len, unsigned char out[SHA256_LEN]);
/* Compare two digests in time independent of where they differ. */
int	sha256_equal(const unsigned char a[SHA256_LEN],
	    const unsigned char b[SHA256_LEN]);

#endif
