/*
 * meterkey — CRC-32 (IEEE 802.3, the zlib/PNG/gzip CRC).
 *
 * Parameters (the "CRC-32" entry of the catalogue of parametrised CRC
 * algorithms): width 32, reflected polynomial 0xEDB88320 (0x04C11DB7 normal),
 * init 0xFFFFFFFF, reflected input and output, xorout 0xFFFFFFFF, check value
 * of "123456789" = 0xCBF43926.
 *
 * A CRC detects line noise; it is not a MAC and protects nothing against an
 * attacker. The framing layer uses it; anything that needs integrity against
 * tampering signs or MACs its bytes.
 */
#ifndef MK_CRC32_H
#define MK_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* The CRC-32 check value of the nine ASCII bytes "123456789". */
#define MK_CRC32_CHECK 0xCBF43926u

/* Returns the CRC-32 of p[0..n) continued from crc, the value returned for the
 * bytes before it (0 to start, as in zlib's crc32()): so
 * mk_crc32_update(mk_crc32_update(0, a, na), b, nb) == CRC of a || b.
 * p may be NULL when n is 0. Touches no secret (reads bytes only). */
uint32_t mk_crc32_update(uint32_t crc, const void *p, size_t n);

/* Returns the CRC-32 of p[0..n); the same as mk_crc32_update(0, p, n). */
uint32_t mk_crc32(const void *p, size_t n);

#endif
