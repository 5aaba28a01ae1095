/*
 * Test vectors read from docs/formats.md and docs/indicium.md, so that the document and the code
 * cannot drift apart. A vector in the document is
 *
 *     <!-- vector: NAME -->            or
 *     <!-- vector: NAME rejects: MK_ERR_SOMETHING -->
 *     ```
 *     01 04 00 00 00 2a
 *     ```
 *
 * (hex, two digits per byte, any whitespace between bytes, any number of
 * lines). The file is found through $MK_SOURCE_DIR, which CTest sets.
 * Test support only: failures print why and return -1.
 */
#ifndef MK_TEST_VECTORS_H
#define MK_TEST_VECTORS_H

#include <stddef.h>
#include <stdint.h>

#define VEC_MAX_NAME 64
#define VEC_MAX_ERR 64

/* Finds vector name: its bytes into out[0..outsize) and *lenp; the error name
 * after "rejects:" into err (or "" when the vector is valid). Returns 0, or -1
 * if the document, the vector or its block is missing or malformed. */
int vec_get(const char *name, uint8_t *out, size_t outsize, size_t *lenp, char err[VEC_MAX_ERR]);

/* Like vec_get for a text vector: its block holds exactly one line, copied
 * into out (NUL-terminated, without the newline). */
int vec_get_text(const char *name, char *out, size_t outsize, char err[VEC_MAX_ERR]);

/* Stores into names[0..max) the names of the vectors that start with prefix,
 * in document order; returns how many there are (possibly more than max), or
 * -1 if the document cannot be read. */
int vec_names(const char *prefix, char names[][VEC_MAX_NAME], size_t max);

/* The hex string s (no blank) as bytes into out[0..cap): their count, or
 * -1 when s is not whole pairs of hex digits or does not fit. */
long vec_unhex(const char *s, uint8_t *out, size_t cap);

#endif
