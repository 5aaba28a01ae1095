/*
 * Operator shares: split and combine (include/meterkey/shares.h).
 *
 * A secret of len bytes is shared byte by byte: for byte i a polynomial
 * f_i(x) = secret[i] + c_1 x + ... + c_{k-1} x^{k-1} over GF(2^8) with
 * coefficients from the project RNG, and share j (j = 1..n) holds f_i(j) for
 * every i. Any k shares give f_i(0) by Lagrange interpolation; k - 1 give no
 * information, because every candidate secret byte fits them equally well.
 * The scheme and its arithmetic: docs/internals/shares.md.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "shares/shares_int.h"

/* The MAC input's label; the split ID and box ID follow it. */
static const char check_label[] = "meterkey share check";

/*
 * HMAC-SHA256 keyed by the secret over label || split ID || box ID, cut to
 * MK_SHARE_CHECK_LEN bytes. Binding the split and box IDs means the value
 * says nothing linkable across splits even for the same secret.
 */
enum mk_err mk_share_check_value(const uint8_t *secret, size_t len,
                                 const uint8_t split_id[static MK_SHARE_SPLIT_ID_LEN],
                                 const char *box_id, uint8_t checkp[static MK_SHARE_CHECK_LEN])
{
	enum mk_err r = MK_ERR_CRYPTO;
	EVP_MAC *mac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	uint8_t tag[EVP_MAX_MD_SIZE];
	size_t taglen = 0;
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};

	if ((mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
	    (ctx = EVP_MAC_CTX_new(mac)) == NULL ||
	    !EVP_MAC_init(ctx, secret, len, params) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)check_label, strlen(check_label)) ||
	    !EVP_MAC_update(ctx, split_id, MK_SHARE_SPLIT_ID_LEN) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)box_id, MK_BOX_ID_LEN) ||
	    !EVP_MAC_final(ctx, tag, &taglen, sizeof(tag)) || taglen < MK_SHARE_CHECK_LEN)
		goto out;
	for (size_t i = 0; i < MK_SHARE_CHECK_LEN; i++)
		checkp[i] = tag[i];
	r = MK_OK;
out:
	if (r != MK_OK)
		OPENSSL_cleanse(checkp, MK_SHARE_CHECK_LEN);
	OPENSSL_cleanse(tag, sizeof(tag));
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return r;
}

void mk_share_free(struct mk_share *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

void mk_share_free_array(struct mk_share *shares[], size_t n)
{
	if (shares == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		mk_share_free(shares[i]);
		shares[i] = NULL;
	}
}

/*
 * Draws the split ID and the (k - 1) * len coefficients from the RNG, then
 * evaluates every byte's polynomial at x = 1..n by Horner's rule. Shares are
 * allocated before the RNG is asked, so that a failure anywhere leaves only
 * wiped memory behind and an all-NULL output.
 */
enum mk_err mk_share_split(struct mk_rng *rng, const char *box_id, const uint8_t *secret,
                           size_t len, unsigned k, unsigned n, struct mk_share *sharesp[])
{
	enum mk_err r = MK_ERR_INTERNAL;
	uint8_t split_id[MK_SHARE_SPLIT_ID_LEN];
	uint8_t check[MK_SHARE_CHECK_LEN];
	uint8_t *coef = NULL;
	size_t ncoef = 0;

	if (sharesp == NULL)
		return MK_ERR_INVALID_ARG;
	/* The caller's array has n entries; never write more than 255. */
	for (size_t j = 0; j < n && j < MK_SHARE_COUNT_MAX; j++)
		sharesp[j] = NULL;
	if (k < 2 || k > n || n > MK_SHARE_COUNT_MAX)
		return MK_ERR_SHARE_PARAMS;
	if (rng == NULL || secret == NULL || len == 0 || len > MK_SHARE_SECRET_MAX ||
	    !mk_box_id_valid(box_id))
		return MK_ERR_INVALID_ARG;

	for (unsigned j = 0; j < n; j++) {
		if ((sharesp[j] = calloc(1, sizeof(*sharesp[j]))) == NULL) {
			r = MK_ERR_NOMEM;
			goto out;
		}
	}
	ncoef = (size_t)(k - 1) * len;
	if ((coef = malloc(ncoef)) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	if ((r = mk_rng_bytes(rng, split_id, sizeof(split_id))) != MK_OK ||
	    (r = mk_rng_bytes(rng, coef, ncoef)) != MK_OK)
		goto out;
	if ((r = mk_share_check_value(secret, len, split_id, box_id, check)) != MK_OK)
		goto out;

	for (unsigned j = 0; j < n; j++) {
		struct mk_share *s = sharesp[j];
		uint8_t x = (uint8_t)(j + 1);

		memcpy(s->box_id, box_id, MK_BOX_ID_LEN + 1);
		memcpy(s->split_id, split_id, sizeof(split_id));
		memcpy(s->check, check, sizeof(check));
		s->index = x;
		s->k = (uint8_t)k;
		s->n = (uint8_t)n;
		s->len = (uint8_t)len;
		for (size_t i = 0; i < len; i++) {
			uint8_t acc = 0;

			/* coef[(d - 1) * len + i] is byte i's coefficient of x^d. */
			for (size_t d = k - 1; d >= 1; d--)
				acc = (uint8_t)(mk_gf256_mul(acc, x) ^ coef[(d - 1) * len + i]);
			s->y[i] = (uint8_t)(mk_gf256_mul(acc, x) ^ secret[i]);
		}
	}
	r = MK_OK;
out:
	if (coef != NULL) {
		OPENSSL_cleanse(coef, ncoef);
		free(coef);
	}
	OPENSSL_cleanse(check, sizeof(check));
	OPENSSL_cleanse(split_id, sizeof(split_id));
	if (r != MK_OK)
		mk_share_free_array(sharesp, n);
	return r;
}

/*
 * Checks that the shares belong together before any arithmetic, so the error
 * names the real problem (foreign, duplicate, too few); then interpolates over
 * ALL of them and accepts the result only if its check value matches every
 * share's. A forged or altered share y value therefore gives MISMATCH, never a
 * wrong secret.
 */
enum mk_err mk_share_combine(const struct mk_share *const *shares, size_t count,
                             const char *expected_box_id, uint8_t *out, size_t out_size,
                             size_t *lenp)
{
	enum mk_err r = MK_ERR_INTERNAL;
	uint8_t xs[MK_SHARE_COUNT_MAX];
	const uint8_t *ys[MK_SHARE_COUNT_MAX];
	uint8_t seen[MK_SHARE_COUNT_MAX + 1] = { 0 };
	uint8_t check[MK_SHARE_CHECK_LEN] = { 0 };
	const struct mk_share *first;
	int differ = 0;

	if (out == NULL || lenp == NULL)
		return MK_ERR_INVALID_ARG;
	*lenp = 0;
	if ((shares == NULL && count > 0) || !mk_box_id_valid(expected_box_id)) {
		r = MK_ERR_INVALID_ARG;
		goto out;
	}
	if (count == 0) {
		r = MK_ERR_SHARE_TOO_FEW;
		goto out;
	}
	for (size_t j = 0; j < count; j++) {
		if (shares[j] == NULL) {
			r = MK_ERR_INVALID_ARG;
			goto out;
		}
	}
	first = shares[0];
	for (size_t j = 0; j < count; j++) {
		const struct mk_share *s = shares[j];

		if (strcmp(s->box_id, expected_box_id) != 0 ||
		    memcmp(s->split_id, first->split_id, sizeof(s->split_id)) != 0 ||
		    s->k != first->k || s->n != first->n || s->len != first->len) {
			r = MK_ERR_SHARE_FOREIGN;
			goto out;
		}
	}
	for (size_t j = 0; j < count; j++) {
		if (seen[shares[j]->index]) {
			r = MK_ERR_SHARE_DUPLICATE;
			goto out;
		}
		seen[shares[j]->index] = 1;
	}
	/* Distinct indexes in 1..n, so count <= n <= 255 from here on. */
	if (count < first->k) {
		r = MK_ERR_SHARE_TOO_FEW;
		goto out;
	}
	if (out_size < first->len) {
		r = MK_ERR_INVALID_ARG;
		goto out;
	}
	for (size_t j = 0; j < count; j++) {
		xs[j] = shares[j]->index;
		ys[j] = shares[j]->y;
	}
	if ((r = mk_share_interpolate(xs, ys, count, first->len, out)) != MK_OK ||
	    (r = mk_share_check_value(out, first->len, first->split_id, first->box_id, check)) !=
	        MK_OK)
		goto out;
	for (size_t j = 0; j < count; j++)
		differ |= CRYPTO_memcmp(check, shares[j]->check, sizeof(check));
	if (differ) {
		r = MK_ERR_SHARE_MISMATCH;
		goto out;
	}
	*lenp = first->len;
	r = MK_OK;
out:
	OPENSSL_cleanse(check, sizeof(check));
	if (r != MK_OK && out_size > 0)
		OPENSSL_cleanse(out, out_size);
	return r;
}

const char *mk_share_box_id(const struct mk_share *s) { return s->box_id; }
unsigned mk_share_index(const struct mk_share *s) { return s->index; }
unsigned mk_share_threshold(const struct mk_share *s) { return s->k; }
unsigned mk_share_count(const struct mk_share *s) { return s->n; }
size_t mk_share_secret_len(const struct mk_share *s) { return s->len; }
const uint8_t *mk_share_split_id(const struct mk_share *s) { return s->split_id; }
