/*
 * The random number generator (include/meterkey/rng.h): two sources, each
 * health-tested on every byte it delivers, combined by XOR.
 *
 * Health tests, SP 800-90B §4.4, on bytes as samples with an assessed
 * min-entropy of H = 8 bits per byte (both sources are conditioned outputs of
 * cryptographic generators) and a false-positive probability alpha = 2^-40 per
 * test decision:
 *   repetition count test   cutoff C = 1 + ceil(-log2(alpha) / H) = 1 + 40/8 = 6
 *   adaptive proportion     window W = 512 (non-binary samples),
 *                           cutoff C = 1 + CRITBINOM(W, 2^-H, 1 - alpha) = 19
 * docs/internals/rng.md shows the arithmetic; tests/unit/test_rng.c recomputes
 * both cutoffs from alpha and H, so the constants cannot drift from it.
 *
 * The tests are written without branches on the sample values (the counts
 * are updated arithmetically), so their timing says nothing of the output.
 * Start-up tests (§4.3) run 1024 samples of each source through the same
 * tests before the first use and after every reset.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "meterkey/rng.h"
#include "rng/rng_int.h"

struct health {
	uint8_t rct_last;
	uint32_t rct_count; /* identical samples in a row, 0 before the first */
	uint8_t apt_ref;
	uint32_t apt_count; /* samples equal to apt_ref in this window */
	uint32_t apt_pos;   /* position in the window, 0 = next sample starts one */
};

struct mk_rng {
	struct mk_rng_source src[2];
	struct health health[2];
	enum mk_err state; /* MK_OK, or the first failure */
};

/* Bytes read from each source per round (one syscall, one DRBG call); also
 * the unit of the cross-check. */
#define CHUNK 4096

/* 1 if a == b, else 0, without a branch. */
static uint32_t eq8(uint8_t a, uint8_t b)
{
	return ((uint32_t)(a ^ b) - 1u) >> 31;
}

/* 1 if a >= b, else 0, for a, b < 2^31, without a branch. */
static uint32_t ge(uint32_t a, uint32_t b)
{
	return 1u ^ ((a - b) >> 31);
}

/*
 * Runs n samples through both tests. Returns MK_OK, MK_ERR_RNG_REPETITION or
 * MK_ERR_RNG_PROPORTION. The window position is public; the sample values
 * only ever enter arithmetic.
 */
static enum mk_err health_feed(struct health *h, const uint8_t *p, size_t n)
{
	/* Locals, not h->: the input is uint8_t, which may alias h, so fields
	 * behind the pointer would be reloaded for every sample. */
	uint32_t rct_fail = 0, apt_fail = 0;
	uint32_t rct_count = h->rct_count, apt_count = h->apt_count, apt_pos = h->apt_pos;
	uint8_t rct_last = h->rct_last, apt_ref = h->apt_ref;

	for (size_t i = 0; i < n; i++) {
		uint8_t x = p[i];
		uint32_t same = eq8(x, rct_last) & (uint32_t)(rct_count != 0);

		rct_count = rct_count * same + 1;
		rct_last = x;
		rct_fail |= ge(rct_count, MK_RNG_RCT_CUTOFF);

		if (apt_pos == 0) {
			apt_ref = x;
			apt_count = 1;
		} else {
			apt_count += eq8(x, apt_ref);
			apt_fail |= ge(apt_count, MK_RNG_APT_CUTOFF);
		}
		if (++apt_pos == MK_RNG_APT_WINDOW)
			apt_pos = 0;
	}
	h->rct_count = rct_count;
	h->rct_last = rct_last;
	h->apt_count = apt_count;
	h->apt_pos = apt_pos;
	h->apt_ref = apt_ref;
	if (rct_fail)
		return MK_ERR_RNG_REPETITION;
	if (apt_fail)
		return MK_ERR_RNG_PROPORTION;
	return MK_OK;
}

static enum mk_err read_source(const struct mk_rng_source *s, uint8_t *out, size_t n)
{
	if (s->read(s->ctx, out, n) != MK_OK)
		return MK_ERR_RNG_SOURCE;
	return MK_OK;
}

/*
 * Reads n bytes (n <= CHUNK) from both sources, tests each, and refuses two
 * identical outputs: two "independent" sources that agree on CHUNK bytes are
 * the same source, and their XOR would be all zeros.
 */
static enum mk_err draw(struct mk_rng *rng, uint8_t a[static CHUNK], uint8_t b[static CHUNK], size_t n)
{
	enum mk_err r;

	for (int i = 0; i < 2; i++) {
		uint8_t *dst = i == 0 ? a : b;

		if ((r = read_source(&rng->src[i], dst, n)) != MK_OK)
			return r;
		if ((r = health_feed(&rng->health[i], dst, n)) != MK_OK)
			return r;
	}
	if (n >= 16 && CRYPTO_memcmp(a, b, n) == 0)
		return MK_ERR_RNG_SOURCE;
	return MK_OK;
}

/* Start-up tests: MK_RNG_STARTUP_SAMPLES of each source, discarded. */
static enum mk_err startup(struct mk_rng *rng)
{
	uint8_t a[CHUNK], b[CHUNK];
	enum mk_err r;

	_Static_assert(MK_RNG_STARTUP_SAMPLES <= CHUNK, "start-up samples fit one round");
	memset(rng->health, 0, sizeof(rng->health));
	r = draw(rng, a, b, MK_RNG_STARTUP_SAMPLES);
	OPENSSL_cleanse(a, MK_RNG_STARTUP_SAMPLES);
	OPENSSL_cleanse(b, MK_RNG_STARTUP_SAMPLES);
	return r;
}

static enum mk_err read_getrandom(void *ctx, uint8_t *out, size_t n)
{
	(void)ctx;
	while (n > 0) {
		ssize_t got = getrandom(out, n, 0);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			return MK_ERR_RNG_SOURCE;
		}
		out += got;
		n -= (size_t)got;
	}
	return MK_OK;
}

static enum mk_err read_openssl(void *ctx, uint8_t *out, size_t n)
{
	(void)ctx;
	if (n > CHUNK || RAND_priv_bytes(out, (int)n) != 1)
		return MK_ERR_RNG_SOURCE;
	return MK_OK;
}

enum mk_err mk_rng_new_with_sources(const struct mk_rng_source *a, const struct mk_rng_source *b,
                                    struct mk_rng **rngp)
{
	struct mk_rng *rng;
	enum mk_err r;

	if (a == NULL || b == NULL || a->read == NULL || b->read == NULL || rngp == NULL)
		return MK_ERR_INVALID_ARG;
	if ((rng = calloc(1, sizeof(*rng))) == NULL)
		return MK_ERR_NOMEM;
	rng->src[0] = *a;
	rng->src[1] = *b;
	if ((r = startup(rng)) != MK_OK) {
		mk_rng_free(rng);
		return r;
	}
	*rngp = rng;
	return MK_OK;
}

enum mk_err mk_rng_new(struct mk_rng **rngp)
{
	static const struct mk_rng_source kernel = { "getrandom", read_getrandom, NULL };
	static const struct mk_rng_source drbg = { "openssl-drbg", read_openssl, NULL };

	return mk_rng_new_with_sources(&kernel, &drbg, rngp);
}

void mk_rng_free(struct mk_rng *rng)
{
	if (rng == NULL)
		return;
	OPENSSL_cleanse(rng, sizeof(*rng));
	free(rng);
}

enum mk_err mk_rng_bytes(struct mk_rng *rng, void *out, size_t n)
{
	uint8_t a[CHUNK], b[CHUNK], *dst = out;
	size_t used = 0; /* bytes of a and b to wipe */
	enum mk_err r = MK_OK;

	if (rng == NULL || (n > 0 && out == NULL))
		return MK_ERR_INVALID_ARG;
	if (rng->state != MK_OK) {
		r = MK_ERR_RNG_FAILED;
		goto out;
	}
	for (size_t done = 0; done < n;) {
		size_t k = n - done < CHUNK ? n - done : CHUNK;

		used = k > used ? k : used;
		if ((r = draw(rng, a, b, k)) != MK_OK) {
			rng->state = r;
			goto out;
		}
		for (size_t i = 0; i < k; i++)
			dst[done + i] = a[i] ^ b[i];
		done += k;
	}
out:
	OPENSSL_cleanse(a, used);
	OPENSSL_cleanse(b, used);
	if (r != MK_OK && n > 0)
		OPENSSL_cleanse(out, n);
	return r;
}

enum mk_err mk_rng_status(const struct mk_rng *rng)
{
	return rng == NULL ? MK_ERR_INVALID_ARG : rng->state;
}

enum mk_err mk_rng_reset(struct mk_rng *rng)
{
	enum mk_err r;

	if (rng == NULL)
		return MK_ERR_INVALID_ARG;
	if ((r = startup(rng)) != MK_OK) {
		rng->state = r;
		return r;
	}
	rng->state = MK_OK;
	return MK_OK;
}
