/* Private to the RNG and its tests: the SP 800-90B health-test parameters.
 * How they are derived: docs/internals/rng.md. */
#ifndef MK_RNG_INT_H
#define MK_RNG_INT_H

/* Assessed min-entropy per byte sample, and false-positive rate 2^-ALPHA_LOG2. */
#define MK_RNG_H_BITS 8
#define MK_RNG_ALPHA_LOG2 40

/* Repetition count test: fail at this many identical samples in a row. */
#define MK_RNG_RCT_CUTOFF 6u
/* Adaptive proportion test: window and cutoff for non-binary samples. */
#define MK_RNG_APT_WINDOW 512u
#define MK_RNG_APT_CUTOFF 19u
/* Start-up test length, samples per source (SP 800-90B §4.3: at least 1024). */
#define MK_RNG_STARTUP_SAMPLES 1024u

#endif
