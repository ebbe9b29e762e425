/*-------------------------------------------------------------------------
 *
 * sha256.h
 *	  SHA-256 message digest (FIPS 180-4), used to fingerprint the
 *	  canonical text of stellapack manifests.
 *
 * This is a small self-contained implementation with no dependency on
 * PostgreSQL or any crypto library, so that the manifest module can be
 * unit-tested and fuzzed on its own.  It is not meant to be fast.
 *
 * IDENTIFICATION
 *	  src/sha256.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef STELLAPACK_SHA256_H
#define STELLAPACK_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_BLOCK_LENGTH		64
#define SHA256_DIGEST_LENGTH	32
#define SHA256_HEX_LENGTH		64	/* not counting the terminating NUL */

typedef struct sha256_ctx
{
	uint32_t	state[8];		/* intermediate hash value H0..H7 */
	uint64_t	total_bytes;	/* message length so far, in bytes */
	size_t		buffered;		/* bytes waiting in block[] */
	uint8_t		block[SHA256_BLOCK_LENGTH];
} sha256_ctx;

extern void sha256_init(sha256_ctx *ctx);
extern void sha256_update(sha256_ctx *ctx, const void *data, size_t len);
extern void sha256_final(sha256_ctx *ctx,
						 uint8_t digest[SHA256_DIGEST_LENGTH]);
extern void sha256_hex(const void *data, size_t len,
					   char out[SHA256_HEX_LENGTH + 1]);

#endif							/* STELLAPACK_SHA256_H */
