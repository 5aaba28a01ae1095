/*
 * GF(2^8) arithmetic and Lagrange interpolation for operator shares
 * (src/shares/shares_int.h).
 *
 * Everything here that touches secret bytes runs in constant time: no table
 * is indexed, and no branch is taken, on a secret value. That is why we do not
 * use log/exp tables (as libgfshare does): the table index would be the
 * secret byte, and its cache footprint would leak it. The field is the AES one,
 * polynomial x^8 + x^4 + x^3 + x + 1 (0x11B), so FIPS-197's worked products
 * serve as test vectors.
 */
#include <openssl/crypto.h>

#include "shares/shares_int.h"

/*
 * Shift-and-add multiplication, always eight rounds. In round i, b's bit i
 * selects whether a * x^i is added; the selection is a mask (0x00 or 0xff)
 * made from the bit by negation, not a branch. a * x is "xtime": shift left
 * and, if the top bit fell out, reduce by 0x1B, again through a mask.
 */
uint8_t mk_gf256_mul(uint8_t a, uint8_t b)
{
	unsigned p = 0, x = a, y = b;

	for (int i = 0; i < 8; i++) {
		p ^= (0u - (y & 1u)) & x;
		x = ((x << 1) ^ ((0u - (x >> 7)) & 0x1bu)) & 0xffu;
		y >>= 1;
	}
	return (uint8_t)p;
}

/*
 * a^254 = a^-1 for a != 0 (the multiplicative group has order 255), and
 * 0^254 = 0. The exponent is a public constant, so the square-and-multiply
 * sequence is fixed: a^2, a^3 ... built as 254 = 0b11111110 from the top bit
 * down, 7 squarings and 6 multiplications whatever a is.
 */
uint8_t mk_gf256_inv(uint8_t a)
{
	uint8_t r = a; /* a^1, the top bit of 254 */

	for (int bit = 6; bit >= 1; bit--) /* bits 6..1 of 254 are all 1 */
		r = mk_gf256_mul(mk_gf256_mul(r, r), a);
	return mk_gf256_mul(r, r); /* bit 0 is 0: one last squaring */
}

/*
 * Lagrange at x = 0. In characteristic 2 subtraction is XOR, so the basis
 * value of point j is prod_{m != j} x_m / (x_m ^ x_j). The x's are public,
 * but the basis is computed with the same constant-time routines anyway; the
 * secret y's are then only ever multiplied by it and XORed together.
 */
enum mk_err mk_share_interpolate(const uint8_t *xs, const uint8_t *const *ys, size_t count,
                                 size_t len, uint8_t *out)
{
	enum mk_err r = MK_ERR_INTERNAL;
	uint8_t seen[256] = { 0 };

	if (out == NULL)
		return MK_ERR_INVALID_ARG;
	for (size_t i = 0; i < len; i++)
		out[i] = 0;
	if (xs == NULL || ys == NULL || count == 0) {
		r = MK_ERR_INVALID_ARG;
		goto out;
	}
	for (size_t j = 0; j < count; j++) {
		if (xs[j] == 0 || seen[xs[j]] || ys[j] == NULL) {
			r = MK_ERR_INVALID_ARG;
			goto out;
		}
		seen[xs[j]] = 1;
	}
	for (size_t j = 0; j < count; j++) {
		uint8_t num = 1, den = 1, basis;

		for (size_t m = 0; m < count; m++) {
			if (m == j)
				continue;
			num = mk_gf256_mul(num, xs[m]);
			den = mk_gf256_mul(den, (uint8_t)(xs[m] ^ xs[j]));
		}
		basis = mk_gf256_mul(num, mk_gf256_inv(den));
		for (size_t i = 0; i < len; i++)
			out[i] ^= mk_gf256_mul(basis, ys[j][i]);
	}
	r = MK_OK;
out:
	if (r != MK_OK && len > 0)
		OPENSSL_cleanse(out, len);
	return r;
}
