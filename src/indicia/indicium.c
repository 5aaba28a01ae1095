/*
 * The indicium's canonical data, its one rule set, the binary form, the
 * signature and days (include/meterkey/indicium.h; byte by byte in
 * docs/indicium.md). The text form, which goes through the same rule set,
 * is text.c.
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

#include "indicia/indicium_int.h"
#include "meterkey/crypto.h"

/* ---- Field syntax ------------------------------------------------------------- */

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

/* The characters of the classes as bit sets over 0..127 (two words):
 * upper-case letters and digits, and with lower-case letters. */
static const uint64_t chars_upper_digit[2] = { 0x03FF000000000000u, 0x0000000007FFFFFEu };
static const uint64_t chars_any_case[2] = { 0x03FF000000000000u, 0x07FFFFFE07FFFFFEu };

/* The n characters at s are each of their class (a NUL among them is
 * outside every class), and n within its bounds: 1 when so. One test a
 * character: the verifier checks every field of every indicium it
 * encodes. */
static int str_check(const char *s, size_t n, enum str_class cls)
{
	const uint64_t *set = str_rules[cls].lower ? chars_any_case : chars_upper_digit;
	uint64_t ok = 1;

	if (n < str_rules[cls].min || n > str_rules[cls].max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned c = (unsigned char)s[i];

		ok &= c < 128 ? set[c >> 6] >> (c & 63) : 0;
	}
	return (int)(ok & 1);
}

/* The case toggles of an identity field in the text: one wherever the case
 * of a letter differs from the previous one's (the field starts
 * upper-case). */
static size_t case_toggles(const char *s, size_t n)
{
	size_t toggles = 0;
	int lower = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if ((is_lower(c) && !lower) || (is_upper(c) && lower)) {
			lower = !lower;
			toggles++;
		}
	}
	return toggles;
}

static size_t dec_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 10000) {
		v /= 10000;
		n += 4;
	}
	return n + (v >= 10) + (v >= 100) + (v >= 1000);
}

/* Base32 (RFC 4648, no padding) characters of n bytes. */
size_t ind_b32_len(size_t n)
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

/* The fields the one rule set judges, wherever they are read from: a
 * decoded struct (its strings' lengths up to their NUL) or the binary form
 * in place (mk_indicium_view). */
struct body {
	uint8_t version, token_alg;
	const char *str[6]; /* vendor, postal, product, msn, serial, origin */
	size_t len[6];
	uint32_t date, postage, piece_count;
	uint64_t ascending, descending;
	uint8_t vendor_token_len, postal_token_len;
};

static const enum str_class body_class[6] = { STR_DOMAIN, STR_DOMAIN, STR_IDENT, STR_IDENT, STR_IDENT, STR_POSTCODE };

/*
 * The one rule set: every field in its syntax, and the text line short
 * enough. 1 when valid. body_valid is everything but the signature's own
 * fields (what the tokens and the signature are made over); ind_valid and
 * mk_indicium_view add them: version 2, sig_alg 1 and a canonical
 * signature; version 1, both all zero.
 */
static int body_valid(const struct body *f)
{
	size_t text, idents;

	if ((f->version != MK_INDICIUM_VERSION && f->version != MK_INDICIUM_VERSION_SIGNED) ||
	    f->token_alg != MK_TOKEN_ALG_CMAC_AES128)
		return 0;
	for (int i = 0; i < 6; i++)
		if (!str_check(f->str[i], f->len[i], body_class[i]))
			return 0;
	if (f->date > IND_DAY_MAX || f->postage == 0 || f->piece_count == 0)
		return 0;
	if (f->vendor_token_len < MK_TOKEN_LEN_MIN || f->vendor_token_len > MK_TOKEN_LEN_MAX ||
	    f->postal_token_len < MK_TOKEN_LEN_MIN || f->postal_token_len > MK_TOKEN_LEN_MAX)
		return 0;
	/* The line: 15 fields each followed by '/', then two check characters;
	 * the identities take a character more at each case toggle. */
	idents = f->len[2] + f->len[3] + f->len[4];
	/* the numbers at their longest (version and algorithm 3 digits, the
	 * 32-bit ones 10, the registers 20) and a toggle a character of the
	 * identities: when even that fits, the line does, without a division
	 * (the verifier judges every indicium it encodes) */
	text = 3 + 3 + f->len[0] + f->len[1] + idents + 8 + f->len[5] + 10 + 10 + 20 + 20 +
	       ind_b32_len(f->vendor_token_len) + ind_b32_len(f->postal_token_len) + TXT_FIELDS + 2;
	if (text + idents <= TXT_LINE_MAX_V1)
		return 1;
	text = dec_len(f->version) + dec_len(f->token_alg) + f->len[0] + f->len[1] + idents + 8 + f->len[5] +
	       dec_len(f->postage) + dec_len(f->piece_count) + dec_len(f->ascending) + dec_len(f->descending) +
	       ind_b32_len(f->vendor_token_len) + ind_b32_len(f->postal_token_len) + TXT_FIELDS + 2;
	/* at most a toggle a character: counted only when that could matter */
	if (text + idents > TXT_LINE_MAX_V1)
		for (int i = 2; i <= 4; i++)
			text += case_toggles(f->str[i], f->len[i]);
	/* version 2 adds TXT_SIG_CHARS, always: its limit is the same body */
	return text <= TXT_LINE_MAX_V1;
}

/* The struct's fields for body_valid, its strings' lengths in lens[]
 * (vendor, postal, product, msn, serial, origin) for the encoders; 1 when
 * valid. A string that fills its field with no NUL is not valid. */
static int ind_valid_body(const struct mk_indicium *ind, size_t lens[6])
{
	const char *str[6] = { ind->vendor, ind->postal, ind->product_code, ind->mfg_seq, ind->indicia_serial,
		               ind->origin };
	const size_t size[6] = { sizeof(ind->vendor), sizeof(ind->postal), sizeof(ind->product_code),
		                 sizeof(ind->mfg_seq), sizeof(ind->indicia_serial), sizeof(ind->origin) };
	struct body f = { ind->version, ind->token_alg, { NULL }, { 0 }, ind->date, ind->postage, ind->piece_count,
		          ind->ascending, ind->descending, ind->vendor_token_len, ind->postal_token_len };

	for (int i = 0; i < 6; i++) {
		if ((lens[i] = strnlen(str[i], size[i])) == size[i])
			return 0;
		f.str[i] = str[i];
		f.len[i] = lens[i];
	}
	return body_valid(&f);
}

int ind_valid(const struct mk_indicium *ind, size_t lens[6])
{
	if (!ind_valid_body(ind, lens))
		return 0;
	if (ind->version == MK_INDICIUM_VERSION_SIGNED)
		return ind->sig_alg == MK_SIG_ALG_ECDSA_P256 && sig_canonical(ind->sig);
	return ind->sig_alg == 0 && is_zero(ind->sig, sizeof(ind->sig));
}

/* ---- Binary form ---------------------------------------------------------------- */

/* The canonical data's length, of an indicium already known to be valid. */
static size_t data_len(const size_t lens[6])
{
	return 2 + 6 + lens[0] + lens[1] + lens[2] + lens[3] + lens[4] + lens[5] + 4 + 4 + 4 + 8 + 8;
}

static uint8_t *w_str(uint8_t *p, const char *s, size_t n)
{
	*p++ = (uint8_t)n;
	memcpy(p, s, n);
	return p + n;
}

static uint8_t *w_be(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

/* Writes the canonical data of an indicium already known to be valid at p
 * (data_len bytes): the fields in one pass, no call per field. */
static uint8_t *w_data(const struct mk_indicium *ind, const size_t lens[6], uint8_t *p)
{
	*p++ = ind->version;
	*p++ = ind->token_alg;
	p = w_str(p, ind->vendor, lens[0]);
	p = w_str(p, ind->postal, lens[1]);
	p = w_str(p, ind->product_code, lens[2]);
	p = w_str(p, ind->mfg_seq, lens[3]);
	p = w_str(p, ind->indicia_serial, lens[4]);
	p = w_be(p, ind->date, 4);
	p = w_str(p, ind->origin, lens[5]);
	p = w_be(p, ind->postage, 4);
	p = w_be(p, ind->piece_count, 4);
	p = w_be(p, ind->ascending, 8);
	return w_be(p, ind->descending, 8);
}

/* Appends the canonical data of an indicium already known to be valid. */
static enum mk_err put_data(const struct mk_indicium *ind, const size_t lens[6], struct mk_buf *out)
{
	uint8_t *p;
	enum mk_err e;

	if ((e = mk_buf_reserve(out, data_len(lens), &p)) != MK_OK)
		return e;
	(void)w_data(ind, lens, p);
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
/* The length of the part put_signed_part writes. */
static size_t signed_part_len(const struct mk_indicium *ind, const size_t lens[6])
{
	return data_len(lens) + 2u + ind->vendor_token_len + ind->postal_token_len +
	       (ind->version == MK_INDICIUM_VERSION_SIGNED ? 1u : 0u);
}

/* Writes a token of n bytes (MK_TOKEN_LEN_MIN..MK_TOKEN_LEN_MAX, valid)
 * with its length: in two 8-byte words that overlap where n < 16 (4 words
 * of 4 bytes below 8), as a copy of a few bytes of unknown length became
 * a string instruction whose start costs more than the copy (the
 * verifier encodes every indicium). */
static uint8_t *w_token(uint8_t *p, const uint8_t *t, uint8_t n)
{
	_Static_assert(MK_TOKEN_LEN_MIN >= 4 && MK_TOKEN_LEN_MAX <= 16, "w_token's copy");
	*p++ = n;
	if (n >= 8) {
		memcpy(p, t, 8);
		memcpy(p + n - 8, t + n - 8, 8);
	} else {
		memcpy(p, t, 4);
		memcpy(p + n - 4, t + n - 4, 4);
	}
	return p + n;
}

static uint8_t *w_signed_part(const struct mk_indicium *ind, const size_t lens[6], uint8_t sig_alg, uint8_t *p)
{
	p = w_data(ind, lens, p);
	p = w_token(p, ind->vendor_token, ind->vendor_token_len);
	p = w_token(p, ind->postal_token, ind->postal_token_len);
	if (ind->version == MK_INDICIUM_VERSION_SIGNED)
		*p++ = sig_alg;
	return p;
}

/* The bytes a version-2 signature covers: the binary form up to the
 * signature itself (data, tokens, and sig_alg, so the algorithm is bound
 * too). In version 1 the same minus sig_alg: the binary form entire. */
static enum mk_err put_signed_part(const struct mk_indicium *ind, const size_t lens[6], uint8_t sig_alg,
                                   struct mk_buf *out)
{
	uint8_t *p;
	enum mk_err e;

	if ((e = mk_buf_reserve(out, signed_part_len(ind, lens), &p)) != MK_OK)
		return e;
	(void)w_signed_part(ind, lens, sig_alg, p);
	return MK_OK;
}

enum mk_err mk_indicium_encode(const struct mk_indicium *ind, struct mk_buf *out)
{
	size_t lens[6], n;
	uint8_t *p;
	enum mk_err r;

	if (ind == NULL || out == NULL)
		return MK_ERR_INVALID_ARG;
	if (!ind_valid(ind, lens))
		return MK_ERR_INVALID_ARG;
	/* one reservation for the whole form: all of it or nothing */
	n = signed_part_len(ind, lens) + (ind->version == MK_INDICIUM_VERSION_SIGNED ? sizeof(ind->sig) : 0);
	if ((r = mk_buf_reserve(out, n, &p)) != MK_OK)
		return r;
	p = w_signed_part(ind, lens, ind->sig_alg, p);
	if (ind->version == MK_INDICIUM_VERSION_SIGNED)
		memcpy(p, ind->sig, sizeof(ind->sig));
	return MK_OK;
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

/* Big-endian integers of 4 and 8 bytes at p. */
static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/*
 * The binary form framed in place: straight down the layout (the version
 * byte says whether sig_alg and a signature follow the tokens), each
 * length within the bytes, nothing after the postal token (version 1) or
 * the signature (version 2). What the fields hold is not judged here
 * (mk_indicium_view_valid). MK_ERR_INDICIUM_FORMAT leaves *v zero.
 */
enum mk_err mk_indicium_frame(const uint8_t *p, size_t n, struct mk_indicium_view *v)
{
	const uint8_t *start = p, *end;

	if (v == NULL || (p == NULL && n > 0))
		return MK_ERR_INVALID_ARG;
	if (n > MK_INDICIUM_BIN_MAX || n < 2)
		goto fail;
	end = p + n;
	v->version = *p++;
	v->token_alg = *p++;
	for (int i = 0; i < 6; i++) {
		/* five strings, the date, the origin */
		if (i == MK_IV_ORIGIN) {
			if ((size_t)(end - p) < 4)
				goto fail;
			v->date = be32(p);
			p += 4;
		}
		if (p == end || *p > (size_t)(end - p - 1))
			goto fail;
		v->len[i] = *p;
		v->str[i] = (const char *)p + 1;
		p += 1 + *p;
	}
	if ((size_t)(end - p) < 4 + 4 + 8 + 8 + 1)
		goto fail;
	v->postage = be32(p);
	v->piece_count = be32(p + 4);
	v->ascending = be64(p + 8);
	v->descending = be64(p + 16);
	p += 24;
	v->data_len = (size_t)(p - start);
	v->vendor_token_len = *p++;
	if ((size_t)(end - p) < (size_t)v->vendor_token_len + 1) /* and the postal token's length */
		goto fail;
	v->vendor_token = p;
	p += v->vendor_token_len;
	v->postal_token_len = *p++;
	if (v->postal_token_len > (size_t)(end - p))
		goto fail;
	v->postal_token = p;
	p += v->postal_token_len;
	v->sig_alg = 0;
	v->sig = NULL;
	if (v->version == MK_INDICIUM_VERSION_SIGNED) {
		if ((size_t)(end - p) < 1 + MK_ECDSA_SIG_LEN)
			goto fail;
		v->sig_alg = *p;
		v->sig = p + 1;
		p += 1 + MK_ECDSA_SIG_LEN;
	}
	if (p != end)
		goto fail;
	return MK_OK;
fail:
	memset(v, 0, sizeof(*v));
	return MK_ERR_INDICIUM_FORMAT;
}

int mk_indicium_view_valid(const struct mk_indicium_view *v)
{
	struct body f = { v->version, v->token_alg, { NULL }, { 0 }, v->date, v->postage, v->piece_count,
		          v->ascending, v->descending, v->vendor_token_len, v->postal_token_len };

	for (int i = 0; i < 6; i++) {
		f.str[i] = v->str[i];
		f.len[i] = v->len[i];
	}
	if (!body_valid(&f))
		return 0;
	if (v->version == MK_INDICIUM_VERSION_SIGNED)
		return v->sig_alg == MK_SIG_ALG_ECDSA_P256 && sig_canonical(v->sig);
	return 1; /* version 1 has no signature fields */
}

enum mk_err mk_indicium_view(const uint8_t *p, size_t n, struct mk_indicium_view *v)
{
	enum mk_err e;

	if ((e = mk_indicium_frame(p, n, v)) != MK_OK)
		return e;
	if (!mk_indicium_view_valid(v)) {
		memset(v, 0, sizeof(*v));
		return MK_ERR_INDICIUM_FORMAT;
	}
	return MK_OK;
}

/* Decodes the binary form: the view (the same reading and rules), copied
 * out. Any failure is MK_ERR_INDICIUM_FORMAT and leaves *ind zero. */
enum mk_err mk_indicium_decode(const uint8_t *p, size_t n, struct mk_indicium *ind)
{
	struct mk_indicium_view v;
	char *str[6];
	enum mk_err e;

	if (ind == NULL || (p == NULL && n > 0))
		return MK_ERR_INVALID_ARG;
	memset(ind, 0, sizeof(*ind));
	if ((e = mk_indicium_view(p, n, &v)) != MK_OK)
		return e;
	str[0] = ind->vendor;
	str[1] = ind->postal;
	str[2] = ind->product_code;
	str[3] = ind->mfg_seq;
	str[4] = ind->indicia_serial;
	str[5] = ind->origin;
	ind->version = v.version;
	ind->token_alg = v.token_alg;
	for (int i = 0; i < 6; i++)
		memcpy(str[i], v.str[i], v.len[i]); /* the rules bound each below its field */
	ind->date = v.date;
	ind->postage = v.postage;
	ind->piece_count = v.piece_count;
	ind->ascending = v.ascending;
	ind->descending = v.descending;
	ind->vendor_token_len = v.vendor_token_len;
	ind->postal_token_len = v.postal_token_len;
	memcpy(ind->vendor_token, v.vendor_token, v.vendor_token_len);
	memcpy(ind->postal_token, v.postal_token, v.postal_token_len);
	if (v.sig != NULL) {
		ind->sig_alg = v.sig_alg;
		memcpy(ind->sig, v.sig, MK_ECDSA_SIG_LEN);
	}
	return MK_OK;
}

/* ---- Days --------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), for years 1970..9999. */
uint32_t ind_days_from_civil(uint32_t y, uint32_t m, uint32_t d)
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
void ind_civil_from_days(uint32_t day, uint32_t *yp, uint32_t *mp, uint32_t *dp)
{
	uint32_t z = day + 719468, era = z / 146097, doe = z - era * 146097;
	uint32_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	uint32_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mq = (5 * doy + 2) / 153;

	*dp = doy - (153 * mq + 2) / 5 + 1;
	*mp = mq < 10 ? mq + 3 : mq - 9;
	*yp = yoe + era * 400 + (*mp <= 2);
}

uint32_t ind_days_in_month(uint32_t y, uint32_t m)
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
void ind_put_digits(char *out, uint32_t v, int n)
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
	ind_civil_from_days(day, &y, &m, &d);
	ind_put_digits(out, y, 4);
	out[4] = '-';
	ind_put_digits(out + 5, m, 2);
	out[7] = '-';
	ind_put_digits(out + 8, d, 2);
	out[10] = '\0';
}
