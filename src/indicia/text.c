/*
 * The indicium's text form (include/meterkey/indicium.h; docs/indicium.md):
 * the line a printer writes and a scanner reads, its check characters
 * (ISO/IEC 7064 MOD 1271-36), the decoder that says what is wrong with a
 * line, and the single-substitution candidates of a misread one. It goes
 * through the one rule set of indicium.c (ind_valid), so the text and the
 * binary form describe the same indicia.
 */
#include <string.h>

#include "indicia/indicium_int.h"
#include "meterkey/crypto.h"

/* ISO/IEC 7064 MOD 1271-36 (pure system, two check characters); '/' and '-'
 * take the values 36 and 37 (docs/indicium.md §4 says why that keeps every
 * single substitution and adjacent transposition detected). */
#define CHK_MOD 1271u
#define CHK_RADIX 36u
#define CHK_VALUES 38 /* 0-9, A-Z, '/', '-' */

static const char chk_alphabet[CHK_VALUES + 1] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ/-";
static const char b32_alphabet[33] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* ---- Check characters ------------------------------------------------------------ */

/* The check value of each byte, plus one (0: outside the alphabet): a
 * table, not tests, as a line mixes digits and letters at random for the
 * branch predictor (the check is computed over every line verified). */
static const uint8_t chk_v1[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
	['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16, ['G'] = 17, ['H'] = 18, ['I'] = 19,
	['J'] = 20, ['K'] = 21, ['L'] = 22, ['M'] = 23, ['N'] = 24, ['O'] = 25, ['P'] = 26, ['Q'] = 27, ['R'] = 28,
	['S'] = 29, ['T'] = 30, ['U'] = 31, ['V'] = 32, ['W'] = 33, ['X'] = 34, ['Y'] = 35, ['Z'] = 36,
	[TXT_SEP] = 37, [TXT_TOGGLE] = 38,
};

/* The check value of a character: 0-9 → 0..9, A-Z → 10..35, '/' → 36,
 * '-' → 37; -1 for anything else. Only upper-case: callers fold first. */
static int chk_value(int c)
{
	return c >= 0 && c < 256 ? (int)chk_v1[c] - 1 : -1;
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
	const unsigned char *u = (const unsigned char *)s;
	uint64_t p = 0;
	uint32_t c;
	size_t i = 0;

	/* four characters a step: their value (below 36^4) made apart from
	 * the chain, which then takes one multiply-add for four; reduced
	 * every two steps, below 1272 * 36^8 < 2^52 in between (the verifier
	 * computes this over every line it reads) */
	for (; i + 3 < n; i += 4) {
		uint32_t q = (((uint32_t)(chk_v1[u[i]] - 1) * CHK_RADIX + (uint32_t)(chk_v1[u[i + 1]] - 1)) * CHK_RADIX +
		              (uint32_t)(chk_v1[u[i + 2]] - 1)) *
		                 CHK_RADIX +
		             (uint32_t)(chk_v1[u[i + 3]] - 1);

		p = p * (CHK_RADIX * CHK_RADIX * CHK_RADIX * CHK_RADIX) + q;
		if (i & 4)
			p %= CHK_MOD;
	}
	for (; i < n; i++)
		p = p * CHK_RADIX + (uint32_t)(chk_v1[u[i]] - 1);
	p = p % CHK_MOD * CHK_RADIX * CHK_RADIX % CHK_MOD;
	c = (uint32_t)((1 + CHK_MOD - p) % CHK_MOD);
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
	ind_civil_from_days(ind->date, &y, &m, &d);
	ind_put_digits(date, y, 4);
	ind_put_digits(date + 4, m, 2);
	ind_put_digits(date + 6, d, 2);
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
	if (v[0] < 1970 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > ind_days_in_month(v[0], v[1]))
		return 0;
	*dayp = ind_days_from_civil(v[0], v[1], v[2]);
	return 1;
}

/* The value of each base32 character, plus one (0: outside base32). */
static const uint8_t b32_v1[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8, ['I'] = 9,
	['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
	['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26,
	['2'] = 27, ['3'] = 28, ['4'] = 29, ['5'] = 30, ['6'] = 31, ['7'] = 32,
};

/* A token (min..max bytes, into out[0..max)) or the signature (exactly
 * 64): exactly the base32 length of its bytes, the unused low bits 0.
 * Eight characters at a time are five whole bytes; a character outside
 * base32 is noted as it goes and judged once, at the end. */
static int parse_b32(struct txt_field f, size_t min, size_t max, uint8_t *lenp, uint8_t *out)
{
	const unsigned char *u = (const unsigned char *)f.s;
	size_t n = f.n * 5 / 8, k = 0, i = 0;
	unsigned bad = 0, bits = 0;
	uint32_t acc = 0;

	if (n < min || n > max || ind_b32_len(n) != f.n)
		return 0;
	for (; i + 8 <= f.n; i += 8, k += 5) {
		uint64_t g = 0;

		for (size_t j = 0; j < 8; j++) {
			unsigned v = b32_v1[u[i + j]];

			bad |= v == 0;
			g = g << 5 | ((v - 1) & 31);
		}
		for (size_t j = 0; j < 5; j++)
			out[k + j] = (uint8_t)(g >> (32 - 8 * j));
	}
	for (; i < f.n; i++) {
		unsigned v = b32_v1[u[i]];

		bad |= v == 0;
		acc = (acc << 5 | ((v - 1) & 31)) & 0xfff;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			out[k++] = (uint8_t)(acc >> bits);
		}
	}
	if (bad || (acc & ((1u << bits) - 1)) != 0)
		return 0;
	if (lenp != NULL)
		*lenp = (uint8_t)n;
	return 1;
}

/*
 * A line's separators, found in the pass that judges whether it is as a
 * printer writes it: every byte upper case, a digit, '/' or '-' (the check
 * alphabet), so that it is parsed where it lies, with no folded copy. The
 * positions of the '/' before the two check characters into sep[0..*kp)
 * (each position written, the count moved on at a separator: no branch a
 * character on where a field ends). 0 when a byte is outside the
 * alphabet or lower case: the line is then folded first (txt_fold).
 */
static int txt_scan(const char *s, size_t n, uint16_t sep[MK_INDICIUM_TEXT_MAX], size_t *kp)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned bad = 0;
	size_t k = 0;

	for (size_t i = 0; i < n - 2; i++) {
		sep[k] = (uint16_t)i;
		k += u[i] == TXT_SEP;
		bad |= chk_v1[u[i]] == 0;
	}
	bad |= chk_v1[u[n - 2]] == 0 || chk_v1[u[n - 1]] == 0;
	*kp = k;
	return !bad;
}

/*
 * Parses a folded line s[0..n) whose characters are all in the alphabet and
 * whose check characters have been checked, its k separators at sep
 * (txt_scan): 15 fields (version 1) or 17 (version 2) each ended by '/',
 * then the two check characters. 1 and *ind filled when it is a valid
 * indicium; else 0 and *why says which field or rule failed.
 */
static int txt_parse(const char *s, size_t n, const uint16_t *sep, size_t k, struct mk_indicium *ind,
                     const char **why)
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
	size_t start = 0, lens[6], bad = TXT_FIELDS_MAX;
	uint64_t v;

	memset(ind, 0, sizeof(*ind));
	if (k > TXT_FIELDS_MAX) {
		*why = "more fields than any indicium has";
		return 0;
	}
	for (size_t j = 0; j < k; j++) {
		f[j].s = s + start;
		f[j].n = sep[j] - start;
		start = (size_t)sep[j] + 1;
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
	char folded[MK_INDICIUM_TEXT_MAX];
	uint16_t sep[MK_INDICIUM_TEXT_MAX]; /* the separators' positions (txt_scan) */
	const char *s = line, *why = NULL;
	size_t n, k, nbad = 0, bad = 0;

	if (line == NULL || ind == NULL)
		return MK_ERR_INVALID_ARG;
	/* *ind is zeroed by txt_parse, or at out on a failure */
	if ((n = strnlen(line, MK_INDICIUM_TEXT_MAX)) > TXT_LINE_MAX || n < 2) {
		why = n > TXT_LINE_MAX ? "longer than any indicium" : "too short to be an indicium";
		r = MK_ERR_INDICIUM_FORMAT;
		goto out;
	}
	/* a line as printed is read where it lies; any other is folded to
	 * upper case first, and judged on its characters outside the alphabet */
	if (!txt_scan(line, n, sep, &k)) {
		(void)txt_fold(line, folded, &n, &nbad, &bad);
		if (nbad > 0) {
			why = nbad > 1 ? MK_INDICIUM_WHY_ALPHABET_MANY : MK_INDICIUM_WHY_ALPHABET;
			r = MK_ERR_INDICIUM_CHECK;
			goto out;
		}
		s = folded;
		(void)txt_scan(s, n, sep, &k);
	}
	if (!txt_check_ok(s, n)) {
		why = MK_INDICIUM_WHY_CHECK;
		r = MK_ERR_INDICIUM_CHECK;
		goto out;
	}
	if (!txt_parse(s, n, sep, k, ind, &why)) {
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
			uint16_t sep[MK_INDICIUM_TEXT_MAX];
			size_t k;

			/* every character is in the alphabet now: the scan finds the separators */
			if (txt_check_ok(s, n) && txt_scan(s, n, sep, &k) && txt_parse(s, n, sep, k, &cand, &why)) {
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
