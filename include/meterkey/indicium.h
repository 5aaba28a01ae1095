/*
 * The indicium a meter prints on a mailpiece (DESIGN.md §6): the canonical
 * data (version, algorithm, device identity, date, origin postal code,
 * postage, piece count, registers) and two tokens, a vendor token and a
 * postal token, each the AES-CMAC of the canonical data under that domain's
 * master key, truncated to the length the domain sets.
 *
 * A registered meter may also sign it (version 2, MK_INDICIUM_VERSION_SIGNED):
 * an ECDSA P-256 signature with its operation key over the binary form up to
 * the signature, checked through operation -> domain -> root certificates
 * (src/kms/verify.c). Version 1 (no signature) is unchanged.
 *
 * Three forms of the same indicium, byte by byte in docs/indicium.md with
 * test vectors:
 *   binary  the canonical data followed by the tokens (what the tokens cover
 *           is mk_indicium_encode_data);
 *   text    one printable line with check characters, for people and OCR;
 *   image   a DataMatrix symbol holding the text line, written as PNG.
 */
#ifndef MK_INDICIUM_H
#define MK_INDICIUM_H

#include <stddef.h>
#include <stdint.h>

#include "meterkey/ids.h"
#include "meterkey/buf.h"
#include "meterkey/caps.h"
#include "meterkey/crypto.h" /* MK_ECDSA_SIG_LEN, EVP_PKEY */
#include "meterkey/err.h"

#define MK_INDICIUM_VERSION 1        /* tokens only */
#define MK_INDICIUM_VERSION_SIGNED 2 /* tokens and the operation key's signature */
#define MK_SIG_ALG_ECDSA_P256 1      /* ECDSA P-256 / SHA-256, r || s, s <= (n-1)/2 */
#define MK_TOKEN_ALG_CMAC_AES128 1 /* AES-128-CMAC (SP 800-38B), truncated */
#define MK_TOKEN_LEN_MIN 4
#define MK_TOKEN_LEN_MAX 16
#define MK_TOKEN_LEN_DEFAULT 8
/* How long a token key record stays fresh for a Tin box (issue 14), set per
 * domain at its creation: seconds. */
#define MK_TIN_FRESH_MIN 60
#define MK_TIN_FRESH_MAX (31 * 86400)
#define MK_TIN_FRESH_DEFAULT 86400
/* The date window of verification (issue 16), set per domain at its
 * creation: an indicium may be verified up to verify days after its date,
 * and up to ahead days before it (the verifier's clock being behind the
 * meter's); outside it, date out of range. */
#define MK_VERIFY_DAYS_MIN 1
#define MK_VERIFY_DAYS_MAX 3660
#define MK_VERIFY_DAYS_DEFAULT 90
#define MK_AHEAD_DAYS_MIN 0
#define MK_AHEAD_DAYS_MAX 31
#define MK_AHEAD_DAYS_DEFAULT 1
/* MK_POSTCODE_MAX, the origin postal code's length: ids.h */
/* A text line, NUL included: a version-1 line has at most 255 characters (as
 * it always had), a version-2 line 106 more (the signature's two fields). */
#define MK_INDICIUM_TEXT_MAX 362
/* The binary form: at most 192 bytes in version 1, 257 in version 2
 * (MK_INDICIUM_BIN_MAX, caps.h). */

struct mk_indicium {
	uint8_t version;                         /* MK_INDICIUM_VERSION(_SIGNED) */
	uint8_t token_alg;                       /* MK_TOKEN_ALG_CMAC_AES128 */
	char vendor[MK_DOMAIN_ID_MAX + 1];       /* the vendor domain ("VE") */
	char postal[MK_DOMAIN_ID_MAX + 1];       /* the postal domain ("USPS", "EARTH") */
	char product_code[MK_IDENT_MAX + 1];     /* device identity: product code, */
	char mfg_seq[MK_IDENT_MAX + 1];          /* manufacturing sequence number, */
	char indicia_serial[MK_IDENT_MAX + 1];   /* and indicia serial number */
	uint32_t date;                           /* mailing date: days since 1970-01-01 UTC */
	char origin[MK_POSTCODE_MAX + 1];        /* origin postal code */
	uint32_t postage;                        /* cents */
	uint32_t piece_count;                    /* this piece's number, from 1 */
	uint64_t ascending;                      /* ascending register after this piece, cents */
	uint64_t descending;                     /* descending register after this piece, cents */
	uint8_t vendor_token_len, postal_token_len;
	uint8_t vendor_token[MK_TOKEN_LEN_MAX];
	uint8_t postal_token[MK_TOKEN_LEN_MAX];
	uint8_t sig_alg;                         /* version 2: MK_SIG_ALG_ECDSA_P256; version 1: 0 */
	uint8_t sig[MK_ECDSA_SIG_LEN];           /* version 2: r || s; version 1: all zero */
};

/* The canonical data: every field but the tokens and the signature, the
 * bytes each token is the CMAC of (its first byte is the version). Appends to
 * out; MK_ERR_INVALID_ARG for a field out of its syntax (each field's rules:
 * docs/indicium.md). In version 2 the signature fields are not looked at, so
 * a meter can make its tokens before it signs. */
MK_WUR enum mk_err mk_indicium_encode_data(const struct mk_indicium *ind, struct mk_buf *out);

/* The binary form: the canonical data, then the two tokens, then (version 2)
 * sig_alg and the signature. Decode reads the whole of p[0..n) and refuses
 * anything not canonical (MK_ERR_INDICIUM_FORMAT), a high s included. */
MK_WUR enum mk_err mk_indicium_encode(const struct mk_indicium *ind, struct mk_buf *out);
MK_WUR enum mk_err mk_indicium_decode(const uint8_t *p, size_t n, struct mk_indicium *ind);

/* The binary form read in place, without copying (a box checks every
 * token this way): mk_indicium_view takes p[0..n) exactly when
 * mk_indicium_decode does, by the same rules. The strings are not
 * NUL-terminated: str[i] and len[i] are vendor, postal, product code, MSN,
 * indicia serial and origin, in that order (MK_IV_*); the canonical data
 * the tokens cover is p[0..data_len); sig is the signature (version 2) or
 * NULL. mk_indicium_frame is its first half: the layout only (every length
 * within the bytes, nothing left over), not what the fields hold;
 * mk_indicium_view_valid, the second: 1 when a framed view keeps every rule
 * (mk_indicium_view is the two). */
enum { MK_IV_VENDOR, MK_IV_POSTAL, MK_IV_PRODUCT, MK_IV_MSN, MK_IV_SERIAL, MK_IV_ORIGIN };
struct mk_indicium_view {
	uint8_t version, token_alg;
	const char *str[6];
	uint8_t len[6];
	uint32_t date, postage, piece_count;
	uint64_t ascending, descending;
	uint8_t vendor_token_len, postal_token_len;
	const uint8_t *vendor_token, *postal_token;
	uint8_t sig_alg;
	const uint8_t *sig;
	size_t data_len;
};
MK_WUR enum mk_err mk_indicium_view(const uint8_t *p, size_t n, struct mk_indicium_view *v);
MK_WUR enum mk_err mk_indicium_frame(const uint8_t *p, size_t n, struct mk_indicium_view *v);
int mk_indicium_view_valid(const struct mk_indicium_view *v);

/* The text form: one line of printable ASCII (no newline) ending in check
 * characters; out has MK_INDICIUM_TEXT_MAX bytes. Decode refuses a line
 * whose check characters do not match (MK_ERR_INDICIUM_CHECK) or whose
 * syntax is wrong (MK_ERR_INDICIUM_FORMAT). */
MK_WUR enum mk_err mk_indicium_text_encode(const struct mk_indicium *ind,
                                           char out[static MK_INDICIUM_TEXT_MAX]);
MK_WUR enum mk_err mk_indicium_text_decode(const char *line, struct mk_indicium *ind);
/* As mk_indicium_text_decode, and on failure *why (when why is not NULL)
 * says in words what is wrong with the line: its length, a character
 * outside the alphabet, the check characters, the field count, or the
 * field (by number and name) that breaks its rule. A static string; NULL
 * on success. */
MK_WUR enum mk_err mk_indicium_text_decode_why(const char *line, struct mk_indicium *ind, const char **why);
/* The words of *why for a line refused by its check characters
 * (MK_ERR_INDICIUM_CHECK), which a corrector tells apart. */
#define MK_INDICIUM_WHY_CHECK "its check characters do not match"
#define MK_INDICIUM_WHY_ALPHABET "a character outside the indicium alphabet (A-Z, 0-9, '/', '-')"
#define MK_INDICIUM_WHY_ALPHABET_MANY "more than one character outside the indicium alphabet (A-Z, 0-9, '/', '-')"

/*
 * For a line that fails its check characters: calls fn with every indicium
 * whose text differs from line in exactly one character and passes the
 * check characters and the syntax. The verifier accepts a correction only
 * when exactly one candidate also verifies its tokens. fn returning
 * non-zero stops. *countp: the number of candidates given to fn.
 */
MK_WUR enum mk_err mk_indicium_text_candidates(const char *line,
                                               int (*fn)(void *ctx, const struct mk_indicium *cand),
                                               void *ctx, size_t *countp);

/*
 * Signs a version-2 indicium with a meter's operation key (a P-256 private
 * key; it stays in its EVP_PKEY): ind->version must already be
 * MK_INDICIUM_VERSION_SIGNED and the tokens set (they cover the canonical
 * data, whose version byte says 2). Signs the binary form up to the
 * signature (data, tokens, sig_alg) with ECDSA P-256 / SHA-256, takes the
 * low s of the pair (s and n - s both verify; only s <= (n-1)/2 is
 * canonical), and sets ind->sig_alg and ind->sig, only on MK_OK.
 * MK_ERR_INVALID_ARG (NULL, version 1, a field out of its syntax),
 * MK_ERR_KEY_INVALID (not P-256), MK_ERR_CRYPTO (no private part).
 */
MK_WUR enum mk_err mk_indicium_sign(struct mk_indicium *ind, EVP_PKEY *key);

/*
 * Checks a version-2 indicium's signature with pub (the operation
 * certificate's key; checking that certificate is the caller's, see
 * mk_verifier). MK_OK, or MK_ERR_INDICIUM_SIGNATURE when it does not verify
 * (also: sig_alg not 1, r or s out of range, a high s). MK_ERR_INVALID_ARG
 * for NULL, version 1 or a field out of its syntax; MK_ERR_KEY_INVALID when
 * pub is not a P-256 key. Touches no secret.
 */
MK_WUR enum mk_err mk_indicium_sig_verify(const struct mk_indicium *ind, EVP_PKEY *pub);

/* The DataMatrix symbol of a text line, as a PNG file (libdmtx, libpng). */
MK_WUR enum mk_err mk_indicium_png_write(const char *line, const char *path);
/* Reads a PNG and decodes the first DataMatrix symbol in it into line
 * (MK_INDICIUM_TEXT_MAX bytes). MK_ERR_INDICIUM_IMAGE when none decodes. */
MK_WUR enum mk_err mk_indicium_png_read(const char *path, char line[static MK_INDICIUM_TEXT_MAX]);
/* The same from a PNG's bytes p[0..n) (a service's request), the symbol
 * searched for at most timeout_ms (1 to 2000: a service bounds the time
 * one request's images take). */
MK_WUR enum mk_err mk_indicium_png_decode(const uint8_t *p, size_t n, unsigned timeout_ms,
                                          char line[static MK_INDICIUM_TEXT_MAX]);

/* Days since 1970-01-01 of a unix time, and the date's "YYYY-MM-DD". */
uint32_t mk_indicium_day(int64_t unix_time);
void mk_indicium_day_format(uint32_t day, char out[static 11]);

/* ---- Temporal token keys (claims 5-8; src/indicia/token.c) ----------------- */

/* A token key is valid for one period: a calendar month (UTC). The period of
 * a mailing day, and the days [*firstp, *endp) it covers. */
uint32_t mk_token_period(uint32_t day);
void mk_token_period_days(uint32_t period, uint32_t *firstp, uint32_t *endp);

/*
 * The temporal token key of one device in one domain for one period: the
 * SP 800-108 counter-mode CMAC KDF of the master key with the label
 * "meterkey token key" and the context domain | 0 | product code | 0 | MSN |
 * 0 | period (u32, big-endian). Both tokens of an indicium are CMACs under
 * the token keys of its mailing date's period: the meter derives them from
 * its master keys, a Brass box from the archived master key, a Tin box gets
 * them (and never a master key) in signed token key records. out is wiped on
 * failure.
 */
MK_WUR enum mk_err mk_token_key_derive(const uint8_t master[static 16], const char *domain,
                                       const char *product_code, const char *mfg_seq,
                                       uint32_t period, uint8_t out[static 16]);

#endif
