/*
 * What the indicium's forms share (src/indicia): the one rule set and the
 * text line's layout (indicium.c), used by the text form (text.c).
 */
#ifndef MK_INDICIA_INDICIUM_INT_H
#define MK_INDICIA_INDICIUM_INT_H

#include <stddef.h>
#include <stdint.h>

#include "meterkey/indicium.h"

/* 9999-12-31: the last day whose YYYYMMDD has four year digits. */
#define IND_DAY_MAX 2932896u

/* The text line: fields separated by '/', a case toggle '-' inside the
 * identity fields, two check characters at the end. */
#define TXT_SEP '/'
#define TXT_TOGGLE '-'
#define TXT_FIELDS 15   /* fields before the check characters (version 1) */
#define TXT_FIELDS_SIGNED 17 /* version 2: sig_alg and the signature too */
#define TXT_FIELDS_MAX 17
#define TXT_LINE_MAX (MK_INDICIUM_TEXT_MAX - 1) /* the longest line of any version */
#define TXT_LINE_MAX_V1 255                     /* version 1, as it always was */
/* The signature's characters: sig_alg "1", its '/', the base32 of 64 bytes
 * (103 characters) and its '/'. */
#define TXT_SIG_CHARS (1 + 1 + ((MK_ECDSA_SIG_LEN * 8 + 4) / 5) + 1)
_Static_assert(TXT_LINE_MAX == TXT_LINE_MAX_V1 + TXT_SIG_CHARS, "MK_INDICIUM_TEXT_MAX");

static inline int is_upper(int c) { return c >= 'A' && c <= 'Z'; }
static inline int is_lower(int c) { return c >= 'a' && c <= 'z'; }
static inline int is_digit(int c) { return c >= '0' && c <= '9'; }

/* The one rule set: every field in its syntax, and the text line short
 * enough; the string lengths into lens[] (vendor, postal, product, msn,
 * serial, origin). 1 when valid. */
int ind_valid(const struct mk_indicium *ind, size_t lens[6]);
/* Base32 (RFC 4648, no padding) characters of n bytes. */
size_t ind_b32_len(size_t n);
/* Days since 1970-01-01 of a date, for years 1970..9999; the inverse (day
 * <= IND_DAY_MAX); a month's days. */
uint32_t ind_days_from_civil(uint32_t y, uint32_t m, uint32_t d);
void ind_civil_from_days(uint32_t day, uint32_t *yp, uint32_t *mp, uint32_t *dp);
uint32_t ind_days_in_month(uint32_t y, uint32_t m);
/* Writes n decimal digits of v, zero-padded. */
void ind_put_digits(char *out, uint32_t v, int n);

#endif
