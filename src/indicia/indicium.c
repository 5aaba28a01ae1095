/*
 * The indicium's canonical data, binary form and text form
 * (include/meterkey/indicium.h; byte by byte in docs/indicium.md).
 *
 * One rule set decides what a valid indicium is (ind_valid), and every form
 * goes through it: encoding refuses what it refuses (MK_ERR_INVALID_ARG),
 * decoding refuses it too (MK_ERR_INDICIUM_FORMAT), so the binary and the
 * text form describe exactly the same set of indicia, each with exactly one
 * encoding. Part of that rule is that the text line fits: 255 characters in
 * version 1, 361 in version 2 (the same fields plus the signature's 106
 * characters): an indicium that cannot be printed is not an indicium.
 *
 * Version 2 appends a signature (sig_alg, r || s) to both forms; its rules
 * (r and s in range, s the low one of the pair) are part of the one rule
 * set, so a signed indicium too has exactly one encoding.
 *
 * mk_indicium_encode_data is on the verifier's hot path (once per token
 * check, hundreds of millions a day): it allocates nothing and formats
 * nothing, it only checks the fields and appends them to the caller's buffer.
 */
#include <string.h>

#include "meterkey/indicium.h"
#include "meterkey/crypto.h"

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

/* ISO/IEC 7064 MOD 1271-36 (pure system, two check characters); '/' and '-'
 * take the values 36 and 37 (docs/indicium.md §4 says why that keeps every
 * single substitution and adjacent transposition detected). */
#define CHK_MOD 1271u
#define CHK_RADIX 36u
#define CHK_VALUES 38 /* 0-9, A-Z, '/', '-' */

static const char chk_alphabet[CHK_VALUES + 1] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ/-";
static const char b32_alphabet[33] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* ---- Field syntax ------------------------------------------------------------- */

static int is_upper(int c) { return c >= 'A' && c <= 'Z'; }
static int is_lower(int c) { return c >= 'a' && c <= 'z'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }

/* The classes of string field, with their bounds. */
enum str_class { STR_DOMAIN, STR_IDENT, STR_POSTCODE };

static const struct {
	size_t min, max;
	int lower; /* lower-case letters allowed */
} str_rules[] = {
	[STR_DOMAIN] = { 2, MK_DOMAIN_ID_MAX, 0 },
	[STR_IDENT] = { 1, MK_IDENT_MAX, 1 },
	[STR_POSTCODE] = { 1, MK_POSTCODE_MAX, 0 },
};

/* Checks the NUL-terminated string in a field of size bytes against its
 * class; returns its length, or 0 when it is not valid (no class allows 0). */
static size_t str_check(const char *s, size_t size, enum str_class cls)
{
	size_t n = strnlen(s, size);

	if (n == size || n < str_rules[cls].min || n > str_rules[cls].max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (!is_upper(c) && !is_digit(c) && !(str_rules[cls].lower && is_lower(c)))
			return 0;
	}
	return n;
}

/* Characters of an identity field in the text: one per character plus one
 * case toggle wherever the case of a letter differs from the previous one's
 * (the field starts upper-case). */
static size_t ident_text_len(const char *s, size_t n)
{
	size_t len = n;
	int lower = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if ((is_lower(c) && !lower) || (is_upper(c) && lower)) {
			lower = !lower;
			len++;
		}
	}
	return len;
}

static size_t dec_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/* Base32 (RFC 4648, no padding) characters of n bytes. */
static size_t b32_len(size_t n)
{
	return (n * 8 + 4) / 5;
}

/* ---- Signature syntax -------------------------------------------------------------- */

/* The order n of P-256 and (n - 1) / 2, big-endian (FIPS 186-4 D.1.2.3). */
static const uint8_t p256_n[32] = {
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};
static const uint8_t p256_half_n[32] = {
	0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
};

static int is_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/*
 * A signature in its one canonical form: 1 <= r < n and 1 <= s <= (n-1)/2.
 * ECDSA accepts (r, s) and (r, n - s) alike, so without the low-s rule
 * every signed indicium would have two valid encodings. memcmp orders
 * big-endian numbers of equal length; the signature is public.
 */
static int sig_canonical(const uint8_t sig[MK_ECDSA_SIG_LEN])
{
	return !is_zero(sig, 32) && memcmp(sig, p256_n, 32) < 0 && !is_zero(sig + 32, 32) &&
	       memcmp(sig + 32, p256_half_n, 32) <= 0;
}

/* s := n - s (for 0 < s < n), big-endian, with the borrow carried. */
static void sig_negate_s(uint8_t s[32])
{
	unsigned borrow = 0;

	for (size_t i = 32; i-- > 0;) {
		unsigned d = (unsigned)p256_n[i] - s[i] - borrow;

		s[i] = (uint8_t)d;
		borrow = (d >> 8) & 1;
	}
}

/*
 * The one rule set: every field in its syntax, and the text line short
 * enough. The string lengths come back in lens[] (vendor, postal, product,
 * msn, serial, origin) for the encoders. 1 when valid. ind_valid_body is
 * everything but the signature's own fields (what the tokens and the
 * signature are made over); ind_valid adds them: version 2, sig_alg 1 and a
 * canonical signature; version 1, both all zero.
 */
static int ind_valid_body(const struct mk_indicium *ind, size_t lens[6])
{
	size_t text;

	if ((ind->version != MK_INDICIUM_VERSION && ind->version != MK_INDICIUM_VERSION_SIGNED) ||
	    ind->token_alg != MK_TOKEN_ALG_CMAC_AES128)
		return 0;
	if ((lens[0] = str_check(ind->vendor, sizeof(ind->vendor), STR_DOMAIN)) == 0 ||
	    (lens[1] = str_check(ind->postal, sizeof(ind->postal), STR_DOMAIN)) == 0 ||
	    (lens[2] = str_check(ind->product_code, sizeof(ind->product_code), STR_IDENT)) == 0 ||
	    (lens[3] = str_check(ind->mfg_seq, sizeof(ind->mfg_seq), STR_IDENT)) == 0 ||
	    (lens[4] = str_check(ind->indicia_serial, sizeof(ind->indicia_serial), STR_IDENT)) == 0 ||
	    (lens[5] = str_check(ind->origin, sizeof(ind->origin), STR_POSTCODE)) == 0)
		return 0;
	if (ind->date > IND_DAY_MAX || ind->postage == 0 || ind->piece_count == 0)
		return 0;
	if (ind->vendor_token_len < MK_TOKEN_LEN_MIN || ind->vendor_token_len > MK_TOKEN_LEN_MAX ||
	    ind->postal_token_len < MK_TOKEN_LEN_MIN || ind->postal_token_len > MK_TOKEN_LEN_MAX)
		return 0;
	/* The line: 15 fields each followed by '/', then two check characters. */
	text = dec_len(ind->version) + dec_len(ind->token_alg) + lens[0] + lens[1] +
	       ident_text_len(ind->product_code, lens[2]) + ident_text_len(ind->mfg_seq, lens[3]) +
	       ident_text_len(ind->indicia_serial, lens[4]) + 8 + lens[5] + dec_len(ind->postage) +
	       dec_len(ind->piece_count) + dec_len(ind->ascending) + dec_len(ind->descending) +
	       b32_len(ind->vendor_token_len) + b32_len(ind->postal_token_len) + TXT_FIELDS + 2;
	/* version 2 adds TXT_SIG_CHARS, always: its limit is the same body */
	return text <= TXT_LINE_MAX_V1;
}

static int ind_valid(const struct mk_indicium *ind, size_t lens[6])
{
	if (!ind_valid_body(ind, lens))
		return 0;
	if (ind->version == MK_INDICIUM_VERSION_SIGNED)
		return ind->sig_alg == MK_SIG_ALG_ECDSA_P256 && sig_canonical(ind->sig);
	return ind->sig_alg == 0 && is_zero(ind->sig, sizeof(ind->sig));
}

/* ---- Binary form ---------------------------------------------------------------- */

static enum mk_err put_str(struct mk_buf *out, const char *s, size_t n)
{
	enum mk_err e;

	if ((e = mk_buf_put_u8(out, (uint8_t)n)) != MK_OK)
		return e;
	return mk_buf_put_bytes(out, s, n);
}

/* Appends the canonical data of an indicium already known to be valid. */
static enum mk_err put_data(const struct mk_indicium *ind, const size_t lens[6], struct mk_buf *out)
{
	enum mk_err e;

	if ((e = mk_buf_put_u8(out, ind->version)) != MK_OK ||
	    (e = mk_buf_put_u8(out, ind->token_alg)) != MK_OK ||
	    (e = put_str(out, ind->vendor, lens[0])) != MK_OK ||
	    (e = put_str(out, ind->postal, lens[1])) != MK_OK ||
	    (e = put_str(out, ind->product_code, lens[2])) != MK_OK ||
	    (e = put_str(out, ind->mfg_seq, lens[3])) != MK_OK ||
	    (e = put_str(out, ind->indicia_serial, lens[4])) != MK_OK ||
	    (e = mk_buf_put_u32(out, ind->date)) != MK_OK ||
	    (e = put_str(out, ind->origin, lens[5])) != MK_OK ||
	    (e = mk_buf_put_u32(out, ind->postage)) != MK_OK ||
	    (e = mk_buf_put_u32(out, ind->piece_count)) != MK_OK ||
	    (e = mk_buf_put_u64(out, ind->ascending)) != MK_OK ||
	    (e = mk_buf_put_u64(out, ind->descending)) != MK_OK)
		return e;
	return MK_OK;
}

enum mk_err mk_indicium_encode_data(const struct mk_indicium *ind, struct mk_buf *out)
{
	enum mk_err r = MK_ERR_INTERNAL;
	size_t lens[6], start;

	if (ind == NULL || out == NULL)
		return MK_ERR_INVALID_ARG;
	if (!ind_valid_body(ind, lens))
		return MK_ERR_INVALID_ARG;
	start = mk_buf_len(out);
	if ((r = put_data(ind, lens, out)) != MK_OK)
		mk_buf_truncate(out, start);
	return r;
}

/* The bytes a version-2 signature covers: the binary form up to the
 * signature itself (data, tokens, and sig_alg, so the algorithm is bound
 * too). In version 1 the same minus sig_alg: the binary form entire. */
static enum mk_err put_signed_part(const struct mk_indicium *ind, const size_t lens[6], uint8_t sig_alg,
                                   struct mk_buf *out)
{
	enum mk_err e;

	if ((e = put_data(ind, lens, out)) != MK_OK || (e = mk_buf_put_u8(out, ind->vendor_token_len)) != MK_OK ||
	    (e = mk_buf_put_bytes(out, ind->vendor_token, ind->vendor_token_len)) != MK_OK ||
	    (e = mk_buf_put_u8(out, ind->postal_token_len)) != MK_OK ||
	    (e = mk_buf_put_bytes(out, ind->postal_token, ind->postal_token_len)) != MK_OK)
		return e;
	if (ind->version == MK_INDICIUM_VERSION_SIGNED)
		return mk_buf_put_u8(out, sig_alg);
	return MK_OK;
}

enum mk_err mk_indicium_encode(const struct mk_indicium *ind, struct mk_buf *out)
{
	enum mk_err r = MK_ERR_INTERNAL;
	size_t lens[6], start;

	if (ind == NULL || out == NULL)
		return MK_ERR_INVALID_ARG;
	if (!ind_valid(ind, lens))
		return MK_ERR_INVALID_ARG;
	start = mk_buf_len(out);
	if ((r = put_signed_part(ind, lens, ind->sig_alg, out)) != MK_OK)
		goto out;
	if (ind->version == MK_INDICIUM_VERSION_SIGNED &&
	    (r = mk_buf_put_bytes(out, ind->sig, sizeof(ind->sig))) != MK_OK)
		goto out;
	r = MK_OK;
out:
	if (r != MK_OK)
		mk_buf_truncate(out, start);
	return r;
}

/*
 * Signing: the body checked as the encoders check it, the signed part
 * encoded into a buffer on the stack, signed, and s brought to the low half
 * (the one canonical form). The indicium is changed only on success.
 */
enum mk_err mk_indicium_sign(struct mk_indicium *ind, EVP_PKEY *key)
{
	enum mk_err r = MK_ERR_INTERNAL;
	uint8_t mem[MK_INDICIUM_BIN_MAX], sig[MK_ECDSA_SIG_LEN];
	struct mk_buf b;
	size_t lens[6];

	if (ind == NULL || key == NULL || ind->version != MK_INDICIUM_VERSION_SIGNED || !ind_valid_body(ind, lens))
		return MK_ERR_INVALID_ARG;
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	if ((r = put_signed_part(ind, lens, MK_SIG_ALG_ECDSA_P256, &b)) != MK_OK ||
	    (r = mk_ecdsa_sign(key, mk_buf_data(&b), mk_buf_len(&b), sig)) != MK_OK)
		goto out;
	if (memcmp(sig + 32, p256_half_n, 32) > 0)
		sig_negate_s(sig + 32);
	if (!sig_canonical(sig)) { /* mk_ecdsa_sign gives 0 < r, s < n */
		r = MK_ERR_INTERNAL;
		goto out;
	}
	ind->sig_alg = MK_SIG_ALG_ECDSA_P256;
	memcpy(ind->sig, sig, sizeof(sig));
	r = MK_OK;
out:
	mk_buf_cleanup(&b);
	return r;
}

enum mk_err mk_indicium_sig_verify(const struct mk_indicium *ind, EVP_PKEY *pub)
{
	enum mk_err r = MK_ERR_INTERNAL;
	uint8_t mem[MK_INDICIUM_BIN_MAX];
	struct mk_buf b;
	size_t lens[6];

	if (ind == NULL || pub == NULL || ind->version != MK_INDICIUM_VERSION_SIGNED || !ind_valid_body(ind, lens))
		return MK_ERR_INVALID_ARG;
	if (ind->sig_alg != MK_SIG_ALG_ECDSA_P256 || !sig_canonical(ind->sig))
		return MK_ERR_INDICIUM_SIGNATURE;
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	if ((r = put_signed_part(ind, lens, ind->sig_alg, &b)) != MK_OK)
		goto out;
	r = mk_ecdsa_verify(pub, mk_buf_data(&b), mk_buf_len(&b), ind->sig);
	if (r == MK_ERR_VERIFY)
		r = MK_ERR_INDICIUM_SIGNATURE;
out:
	mk_buf_cleanup(&b);
	return r;
}

/* Reads a length-prefixed string into a field of size bytes. The syntax of
 * its characters is left to ind_valid, except a NUL: ind_valid sees the
 * string only up to its first NUL, so one inside would make a second
 * encoding of a shorter string. */
static enum mk_err get_str(struct mk_buf *b, char *field, size_t size)
{
	enum mk_err e;
	uint8_t n;

	if ((e = mk_buf_get_u8(b, &n)) != MK_OK)
		return e;
	if (n == 0 || n >= size)
		return MK_ERR_INDICIUM_FORMAT;
	if ((e = mk_buf_get_bytes(b, field, n)) != MK_OK)
		return e;
	field[n] = '\0';
	if (strlen(field) != n)
		return MK_ERR_INDICIUM_FORMAT;
	return MK_OK;
}

/* Reads a token's length and bytes. */
static enum mk_err get_token(struct mk_buf *b, uint8_t *lenp, uint8_t tok[MK_TOKEN_LEN_MAX])
{
	enum mk_err e;

	if ((e = mk_buf_get_u8(b, lenp)) != MK_OK)
		return e;
	if (*lenp < MK_TOKEN_LEN_MIN || *lenp > MK_TOKEN_LEN_MAX)
		return MK_ERR_INDICIUM_FORMAT;
	return mk_buf_get_bytes(b, tok, *lenp);
}

/*
 * Decodes the binary form. Reading is straight down the layout (the version
 * byte says whether a signature follows the tokens); what each field may
 * hold is then judged by ind_valid, and nothing may follow the postal token
 * (version 1) or the signature (version 2). Any failure is
 * MK_ERR_INDICIUM_FORMAT and leaves *ind zero.
 */
enum mk_err mk_indicium_decode(const uint8_t *p, size_t n, struct mk_indicium *ind)
{
	enum mk_err r = MK_ERR_INDICIUM_FORMAT;
	struct mk_buf b;
	size_t lens[6];

	if (ind == NULL || (p == NULL && n > 0))
		return MK_ERR_INVALID_ARG;
	memset(ind, 0, sizeof(*ind));
	if (n > MK_INDICIUM_BIN_MAX)
		return MK_ERR_INDICIUM_FORMAT;
	mk_buf_init_view(&b, p, n);
	if (mk_buf_get_u8(&b, &ind->version) != MK_OK || mk_buf_get_u8(&b, &ind->token_alg) != MK_OK ||
	    get_str(&b, ind->vendor, sizeof(ind->vendor)) != MK_OK ||
	    get_str(&b, ind->postal, sizeof(ind->postal)) != MK_OK ||
	    get_str(&b, ind->product_code, sizeof(ind->product_code)) != MK_OK ||
	    get_str(&b, ind->mfg_seq, sizeof(ind->mfg_seq)) != MK_OK ||
	    get_str(&b, ind->indicia_serial, sizeof(ind->indicia_serial)) != MK_OK ||
	    mk_buf_get_u32(&b, &ind->date) != MK_OK ||
	    get_str(&b, ind->origin, sizeof(ind->origin)) != MK_OK ||
	    mk_buf_get_u32(&b, &ind->postage) != MK_OK ||
	    mk_buf_get_u32(&b, &ind->piece_count) != MK_OK ||
	    mk_buf_get_u64(&b, &ind->ascending) != MK_OK ||
	    mk_buf_get_u64(&b, &ind->descending) != MK_OK ||
	    get_token(&b, &ind->vendor_token_len, ind->vendor_token) != MK_OK ||
	    get_token(&b, &ind->postal_token_len, ind->postal_token) != MK_OK)
		goto out;
	if (ind->version == MK_INDICIUM_VERSION_SIGNED &&
	    (mk_buf_get_u8(&b, &ind->sig_alg) != MK_OK || mk_buf_get_bytes(&b, ind->sig, sizeof(ind->sig)) != MK_OK))
		goto out;
	if (mk_buf_remaining(&b) != 0 || !ind_valid(ind, lens))
		goto out;
	r = MK_OK;
out:
	if (r != MK_OK)
		memset(ind, 0, sizeof(*ind));
	return r;
}

/* ---- Days --------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), for years 1970..9999. */
static uint32_t days_from_civil(uint32_t y, uint32_t m, uint32_t d)
{
	uint32_t era, yoe, doy, doe;

	y -= m <= 2;
	era = y / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The inverse, for day <= IND_DAY_MAX. */
static void civil_from_days(uint32_t day, uint32_t *yp, uint32_t *mp, uint32_t *dp)
{
	uint32_t z = day + 719468, era = z / 146097, doe = z - era * 146097;
	uint32_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	uint32_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mq = (5 * doy + 2) / 153;

	*dp = doy - (153 * mq + 2) / 5 + 1;
	*mp = mq < 10 ? mq + 3 : mq - 9;
	*yp = yoe + era * 400 + (*mp <= 2);
}

static uint32_t days_in_month(uint32_t y, uint32_t m)
{
	static const uint8_t dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return dim[m - 1] + (m == 2 && leap);
}

uint32_t mk_indicium_day(int64_t unix_time)
{
	if (unix_time < 0)
		return 0;
	if (unix_time / 86400 > UINT32_MAX)
		return UINT32_MAX;
	return (uint32_t)(unix_time / 86400);
}

/* Writes n decimal digits of v, zero-padded. */
static void put_digits(char *out, uint32_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		out[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

void mk_indicium_day_format(uint32_t day, char out[static 11])
{
	uint32_t y, m, d;

	if (day > IND_DAY_MAX) {
		memcpy(out, "0000-00-00", 11); /* never a date: the day has no 4-digit year */
		return;
	}
	civil_from_days(day, &y, &m, &d);
	put_digits(out, y, 4);
	out[4] = '-';
	put_digits(out + 5, m, 2);
	out[7] = '-';
	put_digits(out + 8, d, 2);
	out[10] = '\0';
}

/* ---- Check characters ------------------------------------------------------------ */

/* The check value of a character: 0-9 → 0..9, A-Z → 10..35, '/' → 36,
 * '-' → 37; -1 for anything else. Only upper-case: callers fold first. */
static int chk_value(int c)
{
	if (is_digit(c))
		return c - '0';
	if (is_upper(c))
		return c - 'A' + 10;
	if (c == TXT_SEP)
		return 36;
	if (c == TXT_TOGGLE)
		return 37;
	return -1;
}

/*
 * The two check characters of s[0..n) (every character valid): the pair
 * c1 c2 that makes the whole line satisfy sum(v_i * 36^(pos from the right))
 * == 1 (mod 1271), computed the ISO/IEC 7064 way: Horner over the data, two
 * more multiplications by the radix for the check positions, then
 * c = (1 - P) mod 1271, c1 = c / 36, c2 = c % 36.
 */
static void chk_compute(const char *s, size_t n, char out[2])
{
	uint32_t p = 0, c;

	for (size_t i = 0; i < n; i++)
		p = (p * CHK_RADIX + (uint32_t)chk_value((unsigned char)s[i])) % CHK_MOD;
	p = p * CHK_RADIX * CHK_RADIX % CHK_MOD;
	c = (1 + CHK_MOD - p) % CHK_MOD;
	out[0] = chk_alphabet[c / CHK_RADIX];
	out[1] = chk_alphabet[c % CHK_RADIX];
}

/* ---- Text form: encoding ------------------------------------------------------------ */

/* A small writer over the caller's line; the length is known to fit
 * (ind_valid), the asserts-by-abort in mk_buf guard the rest. */
static enum mk_err txt_dec(struct mk_buf *b, uint64_t v)
{
	char d[20];
	size_t n = 0;

	do {
		d[sizeof(d) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return mk_buf_put_bytes(b, d + sizeof(d) - n, n);
}

static enum mk_err txt_ident(struct mk_buf *b, const char *s, size_t n)
{
	enum mk_err e;
	int lower = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if ((is_lower(c) && !lower) || (is_upper(c) && lower)) {
			lower = !lower;
			if ((e = mk_buf_put_u8(b, TXT_TOGGLE)) != MK_OK)
				return e;
		}
		if ((e = mk_buf_put_u8(b, (uint8_t)(is_lower(c) ? c - 'a' + 'A' : c))) != MK_OK)
			return e;
	}
	return MK_OK;
}

static enum mk_err txt_b32(struct mk_buf *b, const uint8_t *p, size_t n)
{
	enum mk_err e;
	uint32_t acc = 0;
	unsigned bits = 0;

	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8 | p[i]) & 0xfff;
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			if ((e = mk_buf_put_u8(b, (uint8_t)b32_alphabet[(acc >> bits) & 31])) != MK_OK)
				return e;
		}
	}
	if (bits > 0)
		return mk_buf_put_u8(b, (uint8_t)b32_alphabet[(acc << (5 - bits)) & 31]);
	return MK_OK;
}

static enum mk_err txt_sep(struct mk_buf *b)
{
	return mk_buf_put_u8(b, TXT_SEP);
}

enum mk_err mk_indicium_text_encode(const struct mk_indicium *ind, char out[static MK_INDICIUM_TEXT_MAX])
{
	enum mk_err r = MK_ERR_INTERNAL;
	struct mk_buf b;
	size_t lens[6], n;
	char date[8];
	uint32_t y, m, d;

	if (ind == NULL)
		return MK_ERR_INVALID_ARG;
	out[0] = '\0';
	if (!ind_valid(ind, lens))
		return MK_ERR_INVALID_ARG;
	civil_from_days(ind->date, &y, &m, &d);
	put_digits(date, y, 4);
	put_digits(date + 4, m, 2);
	put_digits(date + 6, d, 2);
	mk_buf_init_fixed(&b, out, TXT_LINE_MAX);
	if ((r = txt_dec(&b, ind->version)) != MK_OK || (r = txt_sep(&b)) != MK_OK ||
	    (r = txt_dec(&b, ind->token_alg)) != MK_OK || (r = txt_sep(&b)) != MK_OK ||
	    (r = mk_buf_put_bytes(&b, ind->vendor, lens[0])) != MK_OK || (r = txt_sep(&b)) != MK_OK ||
	    (r = mk_buf_put_bytes(&b, ind->postal, lens[1])) != MK_OK || (r = txt_sep(&b)) != MK_OK ||
	    (r = txt_ident(&b, ind->product_code, lens[2])) != MK_OK || (r = txt_sep(&b)) != MK_OK ||
	    (r = txt_ident(&b, ind->mfg_seq, lens[3])) != MK_OK || (r = txt_sep(&b)) != MK_OK ||
	    (r = txt_ident(&b, ind->indicia_serial, lens[4])) != MK_OK || (r = txt_sep(&b)) != MK_OK ||
	    (r = mk_buf_put_bytes(&b, date, sizeof(date))) != MK_OK || (r = txt_sep(&b)) != MK_OK ||
	    (r = mk_buf_put_bytes(&b, ind->origin, lens[5])) != MK_OK || (r = txt_sep(&b)) != MK_OK ||
	    (r = txt_dec(&b, ind->postage)) != MK_OK || (r = txt_sep(&b)) != MK_OK ||
	    (r = txt_dec(&b, ind->piece_count)) != MK_OK || (r = txt_sep(&b)) != MK_OK ||
	    (r = txt_dec(&b, ind->ascending)) != MK_OK || (r = txt_sep(&b)) != MK_OK ||
	    (r = txt_dec(&b, ind->descending)) != MK_OK || (r = txt_sep(&b)) != MK_OK ||
	    (r = txt_b32(&b, ind->vendor_token, ind->vendor_token_len)) != MK_OK ||
	    (r = txt_sep(&b)) != MK_OK ||
	    (r = txt_b32(&b, ind->postal_token, ind->postal_token_len)) != MK_OK ||
	    (r = txt_sep(&b)) != MK_OK)
		goto out;
	if (ind->version == MK_INDICIUM_VERSION_SIGNED &&
	    ((r = txt_dec(&b, ind->sig_alg)) != MK_OK || (r = txt_sep(&b)) != MK_OK ||
	     (r = txt_b32(&b, ind->sig, sizeof(ind->sig))) != MK_OK || (r = txt_sep(&b)) != MK_OK))
		goto out;
	n = mk_buf_len(&b);
	if (n + 2 > TXT_LINE_MAX) { /* ind_valid counted the same characters */
		r = MK_ERR_INTERNAL;
		goto out;
	}
	chk_compute(out, n, out + n);
	out[n + 2] = '\0';
	r = MK_OK;
out:
	if (r != MK_OK)
		memset(out, 0, MK_INDICIUM_TEXT_MAX);
	return r;
}

/* ---- Text form: decoding -------------------------------------------------------------- */

/* One field of the line: s[0..n). */
struct txt_field {
	const char *s;
	size_t n;
};

/* Canonical decimal: digits only, no leading zero (but "0"), at most max. */
static int parse_dec(struct txt_field f, uint64_t max, uint64_t *vp)
{
	uint64_t v = 0;

	if (f.n == 0 || f.n > 20 || (f.s[0] == '0' && f.n > 1))
		return 0;
	for (size_t i = 0; i < f.n; i++) {
		uint64_t dgt;

		if (!is_digit((unsigned char)f.s[i]))
			return 0;
		dgt = (uint64_t)(f.s[i] - '0');
		if (v > (max - dgt) / 10)
			return 0;
		v = v * 10 + dgt;
	}
	*vp = v;
	return 1;
}

/* A string field of upper-case letters and digits, copied as it is. */
static int parse_plain(struct txt_field f, char *field, size_t size)
{
	if (f.n == 0 || f.n >= size)
		return 0;
	for (size_t i = 0; i < f.n; i++)
		if (!is_upper((unsigned char)f.s[i]) && !is_digit((unsigned char)f.s[i]))
			return 0;
	memcpy(field, f.s, f.n);
	field[f.n] = '\0';
	return 1;
}

/* An identity field: '-' switches between upper and lower case and must be
 * followed by a letter (so each string has exactly one spelling). */
static int parse_ident(struct txt_field f, char *field, size_t size)
{
	size_t n = 0;
	int lower = 0;

	for (size_t i = 0; i < f.n; i++) {
		int c = (unsigned char)f.s[i];

		if (c == TXT_TOGGLE) {
			if (i + 1 == f.n || !is_upper((unsigned char)f.s[i + 1]))
				return 0;
			lower = !lower;
			continue;
		}
		if (!is_upper(c) && !is_digit(c))
			return 0;
		if (n + 1 >= size)
			return 0;
		field[n++] = (char)(lower && is_upper(c) ? c - 'A' + 'a' : c);
	}
	field[n] = '\0';
	return n > 0;
}

static int parse_date(struct txt_field f, uint32_t *dayp)
{
	uint32_t v[3] = { 0, 0, 0 };
	static const size_t width[3] = { 4, 2, 2 };
	size_t k = 0;

	if (f.n != 8)
		return 0;
	for (size_t part = 0; part < 3; part++)
		for (size_t i = 0; i < width[part]; i++, k++) {
			if (!is_digit((unsigned char)f.s[k]))
				return 0;
			v[part] = v[part] * 10 + (uint32_t)(f.s[k] - '0');
		}
	if (v[0] < 1970 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > days_in_month(v[0], v[1]))
		return 0;
	*dayp = days_from_civil(v[0], v[1], v[2]);
	return 1;
}

static int b32_value(int c)
{
	if (is_upper(c))
		return c - 'A';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

/* A token (min..max bytes, into out[0..max)) or the signature (exactly
 * 64): exactly the base32 length of its bytes, the unused low bits 0. */
static int parse_b32(struct txt_field f, size_t min, size_t max, uint8_t *lenp, uint8_t *out)
{
	size_t n = f.n * 5 / 8, k = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	if (n < min || n > max || b32_len(n) != f.n)
		return 0;
	for (size_t i = 0; i < f.n; i++) {
		int v = b32_value((unsigned char)f.s[i]);

		if (v < 0)
			return 0;
		acc = (acc << 5 | (uint32_t)v) & 0xfff;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			out[k++] = (uint8_t)(acc >> bits);
		}
	}
	if ((acc & ((1u << bits) - 1)) != 0)
		return 0;
	if (lenp != NULL)
		*lenp = (uint8_t)n;
	return 1;
}

/*
 * Parses a folded line s[0..n) whose characters are all in the alphabet and
 * whose check characters have been checked: 15 fields (version 1) or 17
 * (version 2) each ended by '/', then the two check characters. 1 and *ind
 * filled when it is a valid indicium, else 0.
 */
/* Parses s[0..n) (check characters already checked) into ind. 1 when it is
 * a valid indicium; else 0 and *why says which field or rule failed. */
static int txt_parse(const char *s, size_t n, struct mk_indicium *ind, const char **why)
{
	static const char *const field_why[TXT_FIELDS_MAX] = {
		"field 1 (version) is not a number",
		"field 2 (token algorithm) is not a number",
		"field 3 (vendor domain) is not a domain ID",
		"field 4 (postal domain) is not a domain ID",
		"field 5 (product code) is not a product code",
		"field 6 (MSN) is not a manufacturing sequence number",
		"field 7 (indicia serial) is not a serial",
		"field 8 (date) is not a date YYYYMMDD that exists",
		"field 9 (origin) is not a postcode",
		"field 10 (postage) is not a number of cents",
		"field 11 (piece count) is not a number",
		"field 12 (ascending register) is not a number",
		"field 13 (descending register) is not a number",
		"field 14 (vendor token) is not a token in base 32",
		"field 15 (postal token) is not a token in base 32",
		"field 16 (signature algorithm) is not a number",
		"field 17 (signature) is not a signature in base 32",
	};
	struct txt_field f[TXT_FIELDS_MAX];
	size_t start = 0, k = 0, lens[6], bad = TXT_FIELDS_MAX;
	uint64_t v;

	memset(ind, 0, sizeof(*ind));
	*why = "too short to be an indicium";
	if (n < 2)
		return 0;
	for (size_t i = 0; i < n - 2; i++) {
		if (s[i] != TXT_SEP)
			continue;
		if (k == TXT_FIELDS_MAX) {
			*why = "more fields than any indicium has";
			return 0;
		}
		f[k].s = s + start;
		f[k++].n = i - start;
		start = i + 1;
	}
	if (k == 0 || start != n - 2) {
		*why = "its last field does not end in '/' before the two check characters";
		return 0;
	}
	if (!parse_dec(f[0], UINT8_MAX, &v)) {
		*why = field_why[0];
		return 0;
	}
	ind->version = (uint8_t)v;
	if (ind->version != MK_INDICIUM_VERSION && ind->version != MK_INDICIUM_VERSION_SIGNED) {
		*why = "field 1 (version) is not a version this verifier reads (1 or 2)";
		return 0;
	}
	if (k != (ind->version == MK_INDICIUM_VERSION_SIGNED ? TXT_FIELDS_SIGNED : TXT_FIELDS)) {
		*why = ind->version == MK_INDICIUM_VERSION_SIGNED ? "not the 17 fields of a version 2 indicium"
		                                                   : "not the 15 fields of a version 1 indicium";
		return 0;
	}
	if (!parse_dec(f[1], UINT8_MAX, &v))
		bad = 1;
	ind->token_alg = (uint8_t)v;
	if (bad == TXT_FIELDS_MAX) {
		if (!parse_plain(f[2], ind->vendor, sizeof(ind->vendor)))
			bad = 2;
		else if (!parse_plain(f[3], ind->postal, sizeof(ind->postal)))
			bad = 3;
		else if (!parse_ident(f[4], ind->product_code, sizeof(ind->product_code)))
			bad = 4;
		else if (!parse_ident(f[5], ind->mfg_seq, sizeof(ind->mfg_seq)))
			bad = 5;
		else if (!parse_ident(f[6], ind->indicia_serial, sizeof(ind->indicia_serial)))
			bad = 6;
		else if (!parse_date(f[7], &ind->date))
			bad = 7;
		else if (!parse_plain(f[8], ind->origin, sizeof(ind->origin)))
			bad = 8;
		else if (!parse_dec(f[9], UINT32_MAX, &v))
			bad = 9;
	}
	ind->postage = (uint32_t)v;
	if (bad == TXT_FIELDS_MAX && !parse_dec(f[10], UINT32_MAX, &v))
		bad = 10;
	ind->piece_count = (uint32_t)v;
	if (bad == TXT_FIELDS_MAX) {
		if (!parse_dec(f[11], UINT64_MAX, &ind->ascending))
			bad = 11;
		else if (!parse_dec(f[12], UINT64_MAX, &ind->descending))
			bad = 12;
		else if (!parse_b32(f[13], MK_TOKEN_LEN_MIN, MK_TOKEN_LEN_MAX, &ind->vendor_token_len, ind->vendor_token))
			bad = 13;
		else if (!parse_b32(f[14], MK_TOKEN_LEN_MIN, MK_TOKEN_LEN_MAX, &ind->postal_token_len, ind->postal_token))
			bad = 14;
	}
	if (bad == TXT_FIELDS_MAX && k == TXT_FIELDS_SIGNED) {
		if (!parse_dec(f[15], UINT8_MAX, &v))
			bad = 15;
		ind->sig_alg = (uint8_t)v;
		if (bad == TXT_FIELDS_MAX && !parse_b32(f[16], MK_ECDSA_SIG_LEN, MK_ECDSA_SIG_LEN, NULL, ind->sig))
			bad = 16;
	}
	if (bad != TXT_FIELDS_MAX) {
		*why = field_why[bad];
		return 0;
	}
	*why = "a field outside its rule (token algorithm 1, domains, postage and piece count 1 or more, "
	       "the signature's own fields)";
	return ind_valid(ind, lens);
}

/* Copies line into s folded to upper case; *nbadp: characters outside the
 * alphabet, *badp: the last of them. 0 when the line is too long. */
static int txt_fold(const char *line, char s[MK_INDICIUM_TEXT_MAX], size_t *np, size_t *nbadp,
                    size_t *badp)
{
	size_t n = strnlen(line, MK_INDICIUM_TEXT_MAX);

	if (n > TXT_LINE_MAX)
		return 0;
	*nbadp = 0;
	*badp = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)line[i];

		s[i] = (char)(is_lower(c) ? c - 'a' + 'A' : c);
		if (chk_value((unsigned char)s[i]) < 0) {
			++*nbadp;
			*badp = i;
		}
	}
	s[n] = '\0';
	*np = n;
	return 1;
}

/* The check characters of s[0..n) (all in the alphabet) are the ones the
 * encoder would write. */
static int txt_check_ok(const char *s, size_t n)
{
	char want[2];

	if (n < 2)
		return 0;
	chk_compute(s, n - 2, want);
	return want[0] == s[n - 2] && want[1] == s[n - 1];
}

enum mk_err mk_indicium_text_decode_why(const char *line, struct mk_indicium *ind, const char **whyp)
{
	enum mk_err r = MK_ERR_INTERNAL;
	char s[MK_INDICIUM_TEXT_MAX];
	size_t n, nbad, bad;
	const char *why = NULL;

	if (line == NULL || ind == NULL)
		return MK_ERR_INVALID_ARG;
	memset(ind, 0, sizeof(*ind));
	if (!txt_fold(line, s, &n, &nbad, &bad) || n < 2) {
		why = strnlen(line, MK_INDICIUM_TEXT_MAX) > TXT_LINE_MAX ? "longer than any indicium"
		                                                          : "too short to be an indicium";
		r = MK_ERR_INDICIUM_FORMAT;
		goto out;
	}
	if (nbad > 0 || !txt_check_ok(s, n)) {
		why = nbad > 1 ? MK_INDICIUM_WHY_ALPHABET_MANY : nbad == 1 ? MK_INDICIUM_WHY_ALPHABET : MK_INDICIUM_WHY_CHECK;
		r = MK_ERR_INDICIUM_CHECK;
		goto out;
	}
	if (!txt_parse(s, n, ind, &why)) {
		r = MK_ERR_INDICIUM_FORMAT;
		goto out;
	}
	r = MK_OK;
	why = NULL;
out:
	if (r != MK_OK)
		memset(ind, 0, sizeof(*ind));
	if (whyp != NULL)
		*whyp = why;
	return r;
}

enum mk_err mk_indicium_text_decode(const char *line, struct mk_indicium *ind)
{
	return mk_indicium_text_decode_why(line, ind, NULL);
}

/*
 * The single-substitution candidates of a line that fails its check.
 *
 * The check condition is linear: the line is intact when
 * T = sum(v_i * w_i) == 1 (mod 1271), w_i = 36^(n-1-i). Replacing the
 * character at i by value v changes T by (v - v_i) * w_i, so each of the
 * 37 * n substitutions is judged with one multiplication; only the ~1/1271
 * that pass are parsed. A line holding one character outside the alphabet
 * (an OCR blot) is tried at that position only; with more than one there is
 * no single substitution to find. A line that passes its check has no
 * candidates at all: the scheme detects every single substitution, so
 * none of them can pass.
 */
enum mk_err mk_indicium_text_candidates(const char *line,
                                        int (*fn)(void *ctx, const struct mk_indicium *cand),
                                        void *ctx, size_t *countp)
{
	char s[MK_INDICIUM_TEXT_MAX];
	uint32_t w[MK_INDICIUM_TEXT_MAX], t = 0, acc = 1;
	size_t n, nbad, bad, from, to, count = 0;
	struct mk_indicium cand;

	if (countp != NULL)
		*countp = 0;
	if (line == NULL || fn == NULL)
		return MK_ERR_INVALID_ARG;
	if (!txt_fold(line, s, &n, &nbad, &bad))
		return MK_ERR_INDICIUM_FORMAT;
	if (nbad > 1 || n < 2)
		return MK_OK;
	for (size_t i = n; i-- > 0;) {
		int v = chk_value((unsigned char)s[i]);

		w[i] = acc;
		acc = acc * CHK_RADIX % CHK_MOD;
		if (v >= 0)
			t = (t + (uint32_t)v * w[i]) % CHK_MOD;
	}
	if (nbad == 0 && t == 1)
		return MK_OK;
	from = nbad ? bad : 0;
	to = nbad ? bad + 1 : n;
	for (size_t i = from; i < to; i++) {
		int old = chk_value((unsigned char)s[i]);
		char keep = s[i];
		/* T without position i, kept in 0..1270. */
		uint32_t base = old < 0 ? t : (t + CHK_MOD - (uint32_t)old * w[i] % CHK_MOD) % CHK_MOD;

		for (int v = 0; v < CHK_VALUES; v++) {
			if (v == old || (base + (uint32_t)v * w[i]) % CHK_MOD != 1)
				continue;
			s[i] = chk_alphabet[v];
			const char *why;

			if (txt_check_ok(s, n) && txt_parse(s, n, &cand, &why)) {
				count++;
				if (fn(ctx, &cand) != 0) {
					s[i] = keep;
					goto done;
				}
			}
			s[i] = keep;
		}
	}
done:
	memset(&cand, 0, sizeof(cand));
	if (countp != NULL)
		*countp = count;
	return MK_OK;
}
