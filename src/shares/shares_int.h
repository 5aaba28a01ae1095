/*
 * meterkey — operator shares, private part: GF(2^8) arithmetic, the share
 * struct and raw Lagrange interpolation. Only src/shares and its tests use it.
 */
#ifndef MK_SHARES_INT_H
#define MK_SHARES_INT_H

#include <stddef.h>
#include <stdint.h>

#include "meterkey/shares.h"

#define MK_SHARE_MAGIC "MKSH"
#define MK_SHARE_MAGIC_LEN 4
#define MK_SHARE_VERSION 1

struct mk_share {
	char box_id[MK_BOX_ID_LEN + 1];
	uint8_t split_id[MK_SHARE_SPLIT_ID_LEN];
	uint8_t index; /* x coordinate, 1..n, public */
	uint8_t k;
	uint8_t n;
	uint8_t len; /* secret length, 1..MK_SHARE_SECRET_MAX */
	uint8_t check[MK_SHARE_CHECK_LEN];
	uint8_t y[MK_SHARE_SECRET_MAX]; /* secret: f_i(index) for each secret byte i */
};

/* Product of a and b in GF(2^8) modulo x^8+x^4+x^3+x+1 (0x11B), in constant
 * time: no branch or memory index depends on a or b. */
uint8_t mk_gf256_mul(uint8_t a, uint8_t b);

/* Multiplicative inverse of a as a^254, in constant time; 0 maps to 0. */
uint8_t mk_gf256_inv(uint8_t a);

/*
 * Raw Lagrange interpolation at x = 0: for every byte position i < len, out[i]
 * is the value at 0 of the polynomial of degree < count through the points
 * (xs[j], ys[j][i]), j < count. xs must be nonzero and distinct (public);
 * ys and out are secret and are processed in constant time.
 * Returns MK_ERR_INVALID_ARG for count 0, a zero or repeated x (out wiped).
 * No check value is verified here: that is mk_share_combine's job.
 */
MK_WUR enum mk_err mk_share_interpolate(const uint8_t *xs, const uint8_t *const *ys, size_t count,
                                        size_t len, uint8_t *out);

/*
 * The check value of a secret for one split: the first MK_SHARE_CHECK_LEN
 * bytes of HMAC-SHA256(key = secret, "meterkey share check" || split ID ||
 * box ID). Returns MK_ERR_CRYPTO on a library failure (checkp wiped).
 */
MK_WUR enum mk_err mk_share_check_value(const uint8_t *secret, size_t len,
                                        const uint8_t split_id[static MK_SHARE_SPLIT_ID_LEN],
                                        const char *box_id,
                                        uint8_t checkp[static MK_SHARE_CHECK_LEN]);

#endif
