/*
 * meterkey — the random number generator every key comes from.
 *
 * Two independent sources, by default the kernel's getrandom() and OpenSSL's
 * private DRBG (RAND_priv_bytes), are read separately, each watched
 * continuously by the SP 800-90B health tests (repetition count test and
 * adaptive proportion test), and combined by XOR, as the source document's
 * "Key Generation" section asks of the boxes that make keys. A health-test
 * failure in either source puts the generator in its error state: from then on
 * mk_rng_bytes() fails and delivers only zeros, until mk_rng_reset() succeeds.
 * Cutoffs and how they were computed: docs/internals/rng.md.
 */
#ifndef MK_RNG_H
#define MK_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "meterkey/err.h"

struct mk_rng;

/* A source of random bytes: read() fills out[0..n) or fails. Tests inject
 * stuck or biased sources through this. */
struct mk_rng_source {
	const char *name;
	enum mk_err (*read)(void *ctx, uint8_t *out, size_t n);
	void *ctx;
};

/* Makes a generator over getrandom() XOR OpenSSL's DRBG and runs the start-up
 * health tests on both. *rngp is set only on MK_OK. */
MK_WUR enum mk_err mk_rng_new(struct mk_rng **rngp);

/* The same over two caller-supplied sources (copied; their ctx must outlive
 * the generator). */
MK_WUR enum mk_err mk_rng_new_with_sources(const struct mk_rng_source *a,
                                           const struct mk_rng_source *b,
                                           struct mk_rng **rngp);

/* Wipes and frees. NULL is a no-op. */
void mk_rng_free(struct mk_rng *rng);

/* Fills out[0..n) with random bytes. On any failure out is zeroed, the
 * generator enters (or stays in) its error state, and the health test that
 * failed is returned (MK_ERR_RNG_REPETITION, MK_ERR_RNG_PROPORTION,
 * MK_ERR_RNG_SOURCE) or MK_ERR_RNG_FAILED if it was already in error. */
MK_WUR enum mk_err mk_rng_bytes(struct mk_rng *rng, void *out, size_t n);

/* MK_OK, or the error that put the generator in its error state. */
enum mk_err mk_rng_status(const struct mk_rng *rng);

/* Leaves the error state after re-running the start-up health tests on fresh
 * output of both sources; fails, and stays in error, if they fail again. */
MK_WUR enum mk_err mk_rng_reset(struct mk_rng *rng);

#endif
