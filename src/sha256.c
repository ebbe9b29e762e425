/*-------------------------------------------------------------------------
 *
 * sha256.c
 *	  SHA-256 message digest written from FIPS 180-4, section 6.2.
 *
 * The context buffers at most one 64-byte block; every complete block is
 * compressed as soon as it is available, so memory use is constant no
 * matter how much data is hashed.  All arithmetic is on uint32_t, where
 * wrap-around is well defined.
 *
 * IDENTIFICATION
 *	  src/sha256.c
 *
 *-------------------------------------------------------------------------
 */
#include "sha256.h"

#include <string.h>

/* Rotation and the six logical functions of FIPS 180-4 section 4.1.2. */
#define ROTR32(x, n)	(((x) >> (n)) | ((x) << (32 - (n))))
#define CH(x, y, z)		(((x) & (y)) ^ (~(x) & (z)))
#define MAJ(x, y, z)	(((x) & (y)) ^ ((x) & (z)) ^ ((y) & (z)))
#define BSIG0(x)		(ROTR32(x, 2) ^ ROTR32(x, 13) ^ ROTR32(x, 22))
#define BSIG1(x)		(ROTR32(x, 6) ^ ROTR32(x, 11) ^ ROTR32(x, 25))
#define SSIG0(x)		(ROTR32(x, 7) ^ ROTR32(x, 18) ^ ((x) >> 3))
#define SSIG1(x)		(ROTR32(x, 17) ^ ROTR32(x, 19) ^ ((x) >> 10))

/*
 * Round constants: the first 32 bits of the fractional parts of the cube
 * roots of the first 64 prime numbers (FIPS 180-4 section 4.2.2).
 */
static const uint32_t sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5,
	0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
	0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
	0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
	0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

/*
 * Compress one 64-byte block into the running state (FIPS 180-4 section
 * 6.2.2, steps 1 to 4).
 */
static void
sha256_compress(uint32_t state[8], const uint8_t block[SHA256_BLOCK_LENGTH])
{
	uint32_t	w[64];
	uint32_t	a,
				b,
				c,
				d,
				e,
				f,
				g,
				h;
	int			t;

	/* Message schedule: the block read as 16 big-endian words, extended. */
	for (t = 0; t < 16; t++)
		w[t] = ((uint32_t) block[4 * t] << 24) |
			((uint32_t) block[4 * t + 1] << 16) |
			((uint32_t) block[4 * t + 2] << 8) |
			(uint32_t) block[4 * t + 3];
	for (t = 16; t < 64; t++)
		w[t] = SSIG1(w[t - 2]) + w[t - 7] + SSIG0(w[t - 15]) + w[t - 16];

	a = state[0];
	b = state[1];
	c = state[2];
	d = state[3];
	e = state[4];
	f = state[5];
	g = state[6];
	h = state[7];

	for (t = 0; t < 64; t++)
	{
		uint32_t	t1 = h + BSIG1(e) + CH(e, f, g) + sha256_k[t] + w[t];
		uint32_t	t2 = BSIG0(a) + MAJ(a, b, c);

		h = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}

	state[0] += a;
	state[1] += b;
	state[2] += c;
	state[3] += d;
	state[4] += e;
	state[5] += f;
	state[6] += g;
	state[7] += h;
}

/*
 * Set a context to the initial hash value of FIPS 180-4 section 5.3.3,
 * ready to hash a new message.
 */
void
sha256_init(sha256_ctx *ctx)
{
	ctx->state[0] = 0x6a09e667;
	ctx->state[1] = 0xbb67ae85;
	ctx->state[2] = 0x3c6ef372;
	ctx->state[3] = 0xa54ff53a;
	ctx->state[4] = 0x510e527f;
	ctx->state[5] = 0x9b05688c;
	ctx->state[6] = 0x1f83d9ab;
	ctx->state[7] = 0x5be0cd19;
	ctx->total_bytes = 0;
	ctx->buffered = 0;
	memset(ctx->block, 0, sizeof(ctx->block));
}

/*
 * Feed len more bytes of the message into the context.  It may be called
 * any number of times, with any chunk sizes, including zero.
 */
void
sha256_update(sha256_ctx *ctx, const void *data, size_t len)
{
	const uint8_t *p = (const uint8_t *) data;

	if (len == 0)
		return;					/* data may then be NULL */
	ctx->total_bytes += len;

	/* First top up a partially filled block, if there is one. */
	if (ctx->buffered > 0)
	{
		size_t		take = SHA256_BLOCK_LENGTH - ctx->buffered;

		if (take > len)
			take = len;
		memcpy(ctx->block + ctx->buffered, p, take);
		ctx->buffered += take;
		p += take;
		len -= take;
		if (ctx->buffered < SHA256_BLOCK_LENGTH)
			return;
		sha256_compress(ctx->state, ctx->block);
		ctx->buffered = 0;
	}

	/* Then compress whole blocks straight from the caller's memory. */
	while (len >= SHA256_BLOCK_LENGTH)
	{
		sha256_compress(ctx->state, p);
		p += SHA256_BLOCK_LENGTH;
		len -= SHA256_BLOCK_LENGTH;
	}

	/* Keep the tail for later. */
	if (len > 0)
	{
		memcpy(ctx->block, p, len);
		ctx->buffered = len;
	}
}

/*
 * Pad the message as FIPS 180-4 section 5.1.1 requires, compress the last
 * block(s) and write the 32-byte digest.  The context is wiped afterwards
 * and must be initialised again before reuse.
 */
void
sha256_final(sha256_ctx *ctx, uint8_t digest[SHA256_DIGEST_LENGTH])
{
	uint64_t	bit_length = ctx->total_bytes * 8;
	int			i;

	/* A single 1 bit, then zeros up to 8 bytes short of a block end. */
	ctx->block[ctx->buffered++] = 0x80;
	if (ctx->buffered > SHA256_BLOCK_LENGTH - 8)
	{
		memset(ctx->block + ctx->buffered, 0,
			   SHA256_BLOCK_LENGTH - ctx->buffered);
		sha256_compress(ctx->state, ctx->block);
		ctx->buffered = 0;
	}
	memset(ctx->block + ctx->buffered, 0,
		   SHA256_BLOCK_LENGTH - 8 - ctx->buffered);

	/* The message length in bits, big-endian, ends the last block. */
	for (i = 0; i < 8; i++)
		ctx->block[SHA256_BLOCK_LENGTH - 1 - i] =
			(uint8_t) (bit_length >> (8 * i));
	sha256_compress(ctx->state, ctx->block);

	for (i = 0; i < 8; i++)
	{
		digest[4 * i] = (uint8_t) (ctx->state[i] >> 24);
		digest[4 * i + 1] = (uint8_t) (ctx->state[i] >> 16);
		digest[4 * i + 2] = (uint8_t) (ctx->state[i] >> 8);
		digest[4 * i + 3] = (uint8_t) ctx->state[i];
	}

	memset(ctx, 0, sizeof(*ctx));
}

/*
 * Hash len bytes at data in one go and write the digest as 64 lower-case
 * hexadecimal digits followed by a NUL into out.
 */
void
sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LENGTH + 1])
{
	static const char hexdigits[] = "0123456789abcdef";
	sha256_ctx	ctx;
	uint8_t		digest[SHA256_DIGEST_LENGTH];
	int			i;

	sha256_init(&ctx);
	sha256_update(&ctx, data, len);
	sha256_final(&ctx, digest);

	for (i = 0; i < SHA256_DIGEST_LENGTH; i++)
	{
		out[2 * i] = hexdigits[digest[i] >> 4];
		out[2 * i + 1] = hexdigits[digest[i] & 0x0f];
	}
	out[SHA256_HEX_LENGTH] = '\0';
}
