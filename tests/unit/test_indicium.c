/*
 * Unit tests for the indicium (src/indicia): the vectors of docs/indicium.md
 * both ways, round trips, the check characters against every single
 * substitution and adjacent transposition, the correction candidates, the
 * refusals, and the DataMatrix PNG against an independent decoder (dmtxread).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <png.h>

#include "meterkey/indicium.h"

#include "vectors.c"

/* The indicia of the vectors, as the document states them. */
static void ind1(struct mk_indicium *ind)
{
	static const uint8_t vt[8] = { 0x92, 0x72, 0x9c, 0x03, 0x44, 0x49, 0x6c, 0x3a };
	static const uint8_t pt[8] = { 0x51, 0xc1, 0x1f, 0x68, 0x26, 0x07, 0x6e, 0x94 };

	memset(ind, 0, sizeof(*ind));
	ind->version = MK_INDICIUM_VERSION;
	ind->token_alg = MK_TOKEN_ALG_CMAC_AES128;
	strcpy(ind->vendor, "VE");
	strcpy(ind->postal, "USPS");
	strcpy(ind->product_code, "PC7");
	strcpy(ind->mfg_seq, "MSN000017");
	strcpy(ind->indicia_serial, "IS0001");
	ind->date = 20161;
	strcpy(ind->origin, "20500");
	ind->postage = 69;
	ind->piece_count = 1;
	ind->ascending = 69;
	ind->descending = 9931;
	ind->vendor_token_len = 8;
	memcpy(ind->vendor_token, vt, 8);
	ind->postal_token_len = 8;
	memcpy(ind->postal_token, pt, 8);
}

static void ind2(struct mk_indicium *ind)
{
	static const uint8_t vt[4] = { 0xb4, 0x02, 0xd6, 0x1d };
	static const uint8_t pt[16] = { 0x1a, 0x8c, 0x46, 0xed, 0xba, 0xcd, 0x53, 0x81,
		                        0x21, 0x44, 0x2c, 0xed, 0xbd, 0x9b, 0x97, 0x94 };

	memset(ind, 0, sizeof(*ind));
	ind->version = MK_INDICIUM_VERSION;
	ind->token_alg = MK_TOKEN_ALG_CMAC_AES128;
	strcpy(ind->vendor, "VENDOR12");
	strcpy(ind->postal, "EARTH");
	strcpy(ind->product_code, "Pc7a");
	strcpy(ind->mfg_seq, "msnX9");
	strcpy(ind->indicia_serial, "iS01");
	ind->date = 2932896;
	strcpy(ind->origin, "ABCDE12345");
	ind->postage = UINT32_MAX;
	ind->piece_count = UINT32_MAX;
	ind->ascending = UINT64_MAX;
	ind->descending = 0;
	ind->vendor_token_len = 4;
	memcpy(ind->vendor_token, vt, 4);
	ind->postal_token_len = 16;
	memcpy(ind->postal_token, pt, 16);
}

static void (*const makers[])(struct mk_indicium *) = { ind1, ind2 };
static const char *const names[] = { "indicium-1", "indicium-2" };

static void get_vec(const char *base, const char *suffix, uint8_t *out, size_t *lenp)
{
	char name[VEC_MAX_NAME], err[VEC_MAX_ERR];

	snprintf(name, sizeof(name), "%s-%s", base, suffix);
	assert_int_equal(vec_get(name, out, 512, lenp, err), 0);
	assert_string_equal(err, "");
}

static void get_text(const char *base, char line[MK_INDICIUM_TEXT_MAX])
{
	char name[VEC_MAX_NAME], err[VEC_MAX_ERR];

	snprintf(name, sizeof(name), "%s-text", base);
	assert_int_equal(vec_get_text(name, line, MK_INDICIUM_TEXT_MAX, err), 0);
	assert_string_equal(err, "");
}

/* ---- vectors ------------------------------------------------------------ */

/* Each vector: the struct encodes to the document's data, binary and text,
 * and both the binary and the text decode to the same struct. */
/* The token key of docs/indicium.md §7a, from an independent KDF; a change
 * of any input gives another key; periods are calendar months. */
static void test_token_key(void **state)
{
	uint8_t want[64], got[16], other[16], master[16];
	char err[VEC_MAX_ERR];
	size_t n;
	uint32_t first, end;

	(void)state;
	for (int i = 0; i < 16; i++)
		master[i] = (uint8_t)i;
	assert_int_equal(vec_get("token-key-derive", want, sizeof(want), &n, err), 0);
	assert_int_equal(n, 16);
	assert_int_equal(mk_token_period(mk_indicium_day(1741910400)), 662); /* 2025-03-14 */
	assert_int_equal(mk_token_key_derive(master, "VE", "PC7", "MSN000017", 662, got), MK_OK);
	assert_memory_equal(got, want, 16);
	assert_int_equal(mk_token_key_derive(master, "VE", "PC7", "MSN000017", 663, other), MK_OK);
	assert_memory_not_equal(got, other, 16);
	assert_int_equal(mk_token_key_derive(master, "USPS", "PC7", "MSN000017", 662, other), MK_OK);
	assert_memory_not_equal(got, other, 16);
	assert_int_equal(mk_token_key_derive(master, "VE", "PC7", "MSN000018", 662, other), MK_OK);
	assert_memory_not_equal(got, other, 16);
	assert_int_equal(mk_token_key_derive(master, "VE", "", "MSN000017", 662, other), MK_ERR_INVALID_ARG);
	/* 2025-03 is days 20148 (03-01) to 20179 (04-01); December wraps */
	mk_token_period_days(662, &first, &end);
	assert_int_equal(first, 20148);
	assert_int_equal(end, 20179);
	assert_int_equal(mk_token_period(first), 662);
	assert_int_equal(mk_token_period(end - 1), 662);
	assert_int_equal(mk_token_period(end), 663);
	mk_token_period_days(671, &first, &end); /* 2025-12 */
	assert_int_equal(mk_token_period(end), 672);
	assert_int_equal(mk_token_period(first - 1), 670);
}

static void test_vectors(void **state)
{
	(void)state;
	for (size_t k = 0; k < MK_ARRAY_LEN(makers); k++) {
		struct mk_indicium want, got;
		uint8_t vec[512], mem[MK_INDICIUM_BIN_MAX];
		size_t n;
		struct mk_buf b;
		char line[MK_INDICIUM_TEXT_MAX], text[MK_INDICIUM_TEXT_MAX];

		makers[k](&want);
		mk_buf_init_fixed(&b, mem, sizeof(mem));
		struct mk_indicium_view view;
		size_t data_n;

		get_vec(names[k], "data", vec, &n);
		assert_int_equal(mk_indicium_encode_data(&want, &b), MK_OK);
		assert_int_equal(mk_buf_len(&b), n);
		assert_memory_equal(mk_buf_data(&b), vec, n);
		data_n = n;
		mk_buf_reset(&b);
		get_vec(names[k], "binary", vec, &n);
		assert_int_equal(mk_indicium_encode(&want, &b), MK_OK);
		assert_int_equal(mk_buf_len(&b), n);
		assert_memory_equal(mk_buf_data(&b), vec, n);
		assert_int_equal(mk_indicium_decode(vec, n, &got), MK_OK);
		assert_memory_equal(&got, &want, sizeof(got));
		/* read in place: the same fields, the data the tokens cover */
		assert_int_equal(mk_indicium_view(vec, n, &view), MK_OK);
		assert_int_equal(view.data_len, data_n);
		assert_int_equal(view.len[MK_IV_MSN], strlen(want.mfg_seq));
		assert_memory_equal(view.str[MK_IV_MSN], want.mfg_seq, view.len[MK_IV_MSN]);
		assert_int_equal(view.len[MK_IV_ORIGIN], strlen(want.origin));
		assert_memory_equal(view.str[MK_IV_ORIGIN], want.origin, view.len[MK_IV_ORIGIN]);
		assert_int_equal(view.date, want.date);
		assert_int_equal(view.piece_count, want.piece_count);
		assert_int_equal(view.descending, want.descending);
		assert_int_equal(view.postal_token_len, want.postal_token_len);
		assert_memory_equal(view.postal_token, want.postal_token, want.postal_token_len);
		assert_true((view.sig != NULL) == (want.version == MK_INDICIUM_VERSION_SIGNED));
		assert_int_equal(mk_indicium_view(vec, n - 1, &view), MK_ERR_INDICIUM_FORMAT);
		get_vec(names[k], "vendor-token", vec, &n);
		assert_int_equal(n, want.vendor_token_len);
		assert_memory_equal(vec, want.vendor_token, n);
		get_vec(names[k], "postal-token", vec, &n);
		assert_int_equal(n, want.postal_token_len);
		assert_memory_equal(vec, want.postal_token, n);
		get_text(names[k], line);
		assert_int_equal(mk_indicium_text_encode(&want, text), MK_OK);
		assert_string_equal(text, line);
		assert_int_equal(mk_indicium_text_decode(line, &got), MK_OK);
		assert_memory_equal(&got, &want, sizeof(got));
		mk_buf_cleanup(&b);
	}
}

/* Every refusal vector of the document is refused with its code, by the
 * decoder of its form. */
static void test_vectors_refused(void **state)
{
	char vn[64][VEC_MAX_NAME], err[VEC_MAX_ERR];
	int nb = vec_names("indicium-bad-", vn, 64), nt;
	struct mk_indicium got;

	(void)state;
	assert_true(nb >= 10 && nb <= 64);
	for (int i = 0; i < nb; i++) {
		uint8_t vec[512];
		size_t n;

		assert_int_equal(vec_get(vn[i], vec, sizeof(vec), &n, err), 0);
		struct mk_indicium_view view;

		assert_string_equal(err, "MK_ERR_INDICIUM_FORMAT");
		assert_int_equal(mk_indicium_decode(vec, n, &got), MK_ERR_INDICIUM_FORMAT);
		assert_int_equal(mk_indicium_view(vec, n, &view), MK_ERR_INDICIUM_FORMAT);
	}
	nt = vec_names("indicium-text-bad-", vn, 64);
	assert_true(nt >= 5 && nt <= 64);
	for (int i = 0; i < nt; i++) {
		char line[MK_INDICIUM_TEXT_MAX];

		assert_int_equal(vec_get_text(vn[i], line, sizeof(line), err), 0);
		assert_string_equal(mk_err_name(mk_indicium_text_decode(line, &got)), err);
	}
}

/* ---- round trips and lower-case input ------------------------------------ */

static void test_round_trip_lengths(void **state)
{
	(void)state;
	for (unsigned vl = MK_TOKEN_LEN_MIN; vl <= MK_TOKEN_LEN_MAX; vl++) {
		struct mk_indicium a, b;
		uint8_t mem[MK_INDICIUM_BIN_MAX];
		struct mk_buf buf;
		char line[MK_INDICIUM_TEXT_MAX];

		ind1(&a);
		a.vendor_token_len = (uint8_t)vl;
		a.postal_token_len = (uint8_t)(MK_TOKEN_LEN_MAX + MK_TOKEN_LEN_MIN - vl);
		for (unsigned i = 0; i < MK_TOKEN_LEN_MAX; i++) {
			a.vendor_token[i] = i < vl ? (uint8_t)(0xa5 ^ (i * 37)) : 0;
			a.postal_token[i] = i < a.postal_token_len ? (uint8_t)(0x3c + i * 11) : 0;
		}
		a.date = vl * 100000;
		a.descending = (uint64_t)vl << 40;
		mk_buf_init_fixed(&buf, mem, sizeof(mem));
		assert_int_equal(mk_indicium_encode(&a, &buf), MK_OK);
		assert_int_equal(mk_indicium_decode(mk_buf_data(&buf), mk_buf_len(&buf), &b), MK_OK);
		assert_memory_equal(&a, &b, sizeof(a));
		assert_int_equal(mk_indicium_text_encode(&a, line), MK_OK);
		assert_int_equal(mk_indicium_text_decode(line, &b), MK_OK);
		assert_memory_equal(&a, &b, sizeof(a));
		mk_buf_cleanup(&buf);
	}
}

/* Lower-case input is folded (OCR); a line the folding changes decodes to
 * the same indicium, mixed-case identities included. */
static void test_text_folding(void **state)
{
	char line[MK_INDICIUM_TEXT_MAX];
	struct mk_indicium want, got;

	(void)state;
	ind2(&want);
	get_text("indicium-2", line);
	for (char *p = line; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	assert_int_equal(mk_indicium_text_decode(line, &got), MK_OK);
	assert_memory_equal(&got, &want, sizeof(got));
	/* Its negative twin: a newline is not part of a line. */
	strcat(line, "\n");
	assert_int_equal(mk_indicium_text_decode(line, &got), MK_ERR_INDICIUM_CHECK);
}

/* ---- the check characters --------------------------------------------------- */

static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ/-";

/* The check characters of body[0..n) by ISO/IEC 7064 MOD 1271-36 as the
 * standard states it, one character at a time: the decoder's own (four
 * at a time) must agree with it at every length. */
static void naive_check(const char *body, size_t n, char out[2])
{
	uint32_t p = 0, c;

	for (size_t i = 0; i < n; i++)
		p = (p * 36 + (uint32_t)(strchr(alphabet, body[i]) - alphabet)) % 1271;
	p = p * 36 % 1271 * 36 % 1271;
	c = (1 + 1271 - p) % 1271;
	out[0] = alphabet[c / 36];
	out[1] = alphabet[c % 36];
}

/* line's last two characters made its check characters again. */
static void recheck(char *line)
{
	size_t n = strlen(line);

	naive_check(line, n - 2, line + n - 2);
}

/* Lines of every length, of random characters of the alphabet, with their
 * check characters: never refused for the check (for their fields, yes);
 * each with a wrong last character: refused for the check. */
static void test_text_check_every_length(void **state)
{
	uint32_t x = 12345;
	struct mk_indicium got;
	const char *why;

	(void)state;
	for (size_t n = 2; n <= MK_INDICIUM_TEXT_MAX - 1; n++)
		for (int rep = 0; rep < 4; rep++) {
			char line[MK_INDICIUM_TEXT_MAX];

			for (size_t i = 0; i < n - 2; i++) {
				x = x * 1103515245u + 12345u;
				line[i] = alphabet[(x >> 16) % 38];
			}
			line[n] = '\0';
			naive_check(line, n - 2, line + n - 2);
			assert_int_not_equal(mk_indicium_text_decode_why(line, &got, &why), MK_ERR_INDICIUM_CHECK);
			line[n - 1] = line[n - 1] == '0' ? '1' : '0';
			assert_int_equal(mk_indicium_text_decode_why(line, &got, &why), MK_ERR_INDICIUM_CHECK);
			assert_string_equal(why, MK_INDICIUM_WHY_CHECK);
		}
}

/* A line as printed is parsed where it lies, any other folded first: the
 * two paths give the same answer, the indicium or the same words for the
 * same fault, field by field. Each line is tried as it is and with one
 * letter lower case. */
static void test_text_printed_and_folded_agree(void **state)
{
	/* each: a field's text replaced (field number, from 1), in a vector line */
	static const struct {
		int field;
		const char *text;
	} faults[] = {
		{ 0, NULL },    { 1, "3" },        { 1, "01" },    { 2, "0" },         { 3, "V" },
		{ 4, "U" },     { 5, "-" },        { 6, "A--B" },  { 7, "" },          { 8, "20251399" },
		{ 9, "A-" },    { 10, "0" },       { 11, "0" },    { 12, "012" },      { 13, "99999999999999999999999" },
		{ 14, "AAAA" }, { 14, "AAAAAAA1AAAAA" }, { 15, "A" }, { 15, "AAAAAAAAAAAAB" }, { 13, "1/2" },
	};
	struct mk_indicium a, b;
	const char *wa, *wb;

	(void)state;
	for (size_t k = 0; k < 2; k++)
		for (size_t f = 0; f < sizeof(faults) / sizeof(faults[0]); f++) {
			char line[MK_INDICIUM_TEXT_MAX], out[2 * MK_INDICIUM_TEXT_MAX], *p = line;
			size_t o = 0;
			int field = 1, lowered = 0;

			get_text(names[k], line);
			/* the fields up to the check characters, one replaced */
			for (; *p != '\0' && p[1] != '\0' && p[2] != '\0'; field++) {
				char *end = strchr(p, '/');

				if (end == NULL)
					break;
				if (field == faults[f].field)
					o += (size_t)sprintf(out + o, "%s/", faults[f].text);
				else
					o += (size_t)sprintf(out + o, "%.*s/", (int)(end - p), p);
				p = end + 1;
			}
			sprintf(out + o, "CC");
			if (strlen(out) > MK_INDICIUM_TEXT_MAX - 1)
				continue;
			recheck(out);
			enum mk_err ra = mk_indicium_text_decode_why(out, &a, &wa);

			assert_true(faults[f].field == 0 ? ra == MK_OK : ra == MK_ERR_INDICIUM_FORMAT);
			/* the same line, one letter lower case: the folded path */
			for (char *q = out; *q != '\0'; q++)
				if (*q >= 'A' && *q <= 'Z') {
					*q = (char)(*q - 'A' + 'a');
					lowered = 1;
					break;
				}
			assert_true(lowered);
			assert_int_equal(mk_indicium_text_decode_why(out, &b, &wb), ra);
			assert_memory_equal(&a, &b, sizeof(a));
			if (ra != MK_OK)
				assert_string_equal(wa, wb);
		}
}


/* Every single substitution, by every character of the alphabet and a few
 * outside it, at every position of both vector lines, is refused; those
 * by an alphabet character are refused by the check characters. */
static void test_every_substitution_detected(void **state)
{
	static const char others[] = "?a *";
	struct mk_indicium got;

	(void)state;
	for (size_t k = 0; k < 2; k++) {
		char line[MK_INDICIUM_TEXT_MAX];
		size_t n;

		get_text(names[k], line);
		n = strlen(line);
		for (size_t i = 0; i < n; i++) {
			char keep = line[i];

			for (const char *c = alphabet; *c; c++) {
				if (*c == keep)
					continue;
				line[i] = *c;
				assert_int_equal(mk_indicium_text_decode(line, &got), MK_ERR_INDICIUM_CHECK);
			}
			for (const char *c = others; *c; c++) {
				line[i] = *c;
				if (*c == 'a' && keep == 'A')
					continue; /* folding: the same line */
				assert_int_not_equal(mk_indicium_text_decode(line, &got), MK_OK);
			}
			line[i] = keep;
		}
		assert_int_equal(mk_indicium_text_decode(line, &got), MK_OK);
	}
}

static void test_every_transposition_detected(void **state)
{
	struct mk_indicium got;
	size_t tried = 0;

	(void)state;
	for (size_t k = 0; k < 2; k++) {
		char line[MK_INDICIUM_TEXT_MAX];
		size_t n;

		get_text(names[k], line);
		n = strlen(line);
		for (size_t i = 0; i + 1 < n; i++) {
			char a = line[i], b = line[i + 1];

			if (a == b)
				continue;
			line[i] = b;
			line[i + 1] = a;
			assert_int_equal(mk_indicium_text_decode(line, &got), MK_ERR_INDICIUM_CHECK);
			line[i] = a;
			line[i + 1] = b;
			tried++;
		}
	}
	assert_true(tried > 150);
}

/* ---- candidates ---------------------------------------------------------------- */

struct cands {
	struct mk_indicium want;
	size_t seen, found;
	int stop_after;
};

static int on_cand(void *ctx, const struct mk_indicium *cand)
{
	struct cands *c = ctx;
	char line[MK_INDICIUM_TEXT_MAX];
	struct mk_indicium again;

	c->seen++;
	/* Every candidate passes the check characters and the syntax. */
	assert_int_equal(mk_indicium_text_encode(cand, line), MK_OK);
	assert_int_equal(mk_indicium_text_decode(line, &again), MK_OK);
	assert_memory_equal(&again, cand, sizeof(again));
	if (memcmp(cand, &c->want, sizeof(*cand)) == 0)
		c->found++;
	return c->stop_after != 0 && (int)c->seen >= c->stop_after;
}

/* A line with one substitution at any position: the candidates include the
 * original, once, and each of them is a valid line. */
static void test_candidates_include_original(void **state)
{
	size_t total = 0;

	(void)state;
	for (size_t k = 0; k < 2; k++) {
		char line[MK_INDICIUM_TEXT_MAX];
		size_t n;

		get_text(names[k], line);
		n = strlen(line);
		for (size_t i = 0; i < n; i++) {
			char keep = line[i];
			struct cands c = { .stop_after = 0 };
			size_t count;

			makers[k](&c.want);
			/* A substitution by the next alphabet character, or by a blot. */
			line[i] = i % 5 == 0 ? '?' : alphabet[(strchr(alphabet, keep) - alphabet + 1) % 38];
			assert_int_equal(mk_indicium_text_candidates(line, on_cand, &c, &count), MK_OK);
			assert_int_equal(c.found, 1);
			assert_int_equal(count, c.seen);
			total += count;
			line[i] = keep;
		}
	}
	assert_true(total > 0);
}

/* Its negative twins: an intact line has no candidates; two blots leave
 * none; fn stopping the search stops it; a line too long is refused. */
static void test_candidates_refusals(void **state)
{
	char line[MK_INDICIUM_TEXT_MAX + 8];
	struct cands c = { .stop_after = 1 };
	size_t count = 99;

	(void)state;
	ind1(&c.want);
	get_text("indicium-1", line);
	assert_int_equal(mk_indicium_text_candidates(line, on_cand, &c, &count), MK_OK);
	assert_int_equal(count, 0);
	assert_int_equal(c.seen, 0);
	line[3] = '?';
	line[9] = '?';
	assert_int_equal(mk_indicium_text_candidates(line, on_cand, &c, &count), MK_OK);
	assert_int_equal(count, 0);
	/* One substitution in a separator-free spot: stop after the first. */
	get_text("indicium-1", line);
	line[20] = line[20] == '0' ? '1' : '0';
	assert_int_equal(mk_indicium_text_candidates(line, on_cand, &c, &count), MK_OK);
	assert_int_equal(count, 1);
	assert_int_equal(mk_indicium_text_candidates(NULL, on_cand, &c, &count), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_indicium_text_candidates(line, NULL, &c, &count), MK_ERR_INVALID_ARG);
	memset(line, 'A', MK_INDICIUM_TEXT_MAX);
	line[MK_INDICIUM_TEXT_MAX] = '\0';
	assert_int_equal(mk_indicium_text_candidates(line, on_cand, &c, &count), MK_ERR_INDICIUM_FORMAT);
}

/* ---- the line's length at its limit ------------------------------------------------ */

/* Whether every encoder takes a (the binary form, the data, the text), and
 * the text's length when they do; 0 when every one refuses it. */
static size_t line_len_or_refused(const struct mk_indicium *a)
{
	uint8_t mem[MK_INDICIUM_BIN_MAX];
	char line[MK_INDICIUM_TEXT_MAX];
	struct mk_buf b;
	enum mk_err e1, e2, e3;

	mk_buf_init_fixed(&b, mem, sizeof(mem));
	e1 = mk_indicium_encode(a, &b);
	mk_buf_reset(&b);
	e2 = mk_indicium_encode_data(a, &b);
	e3 = mk_indicium_text_encode(a, line);
	assert_int_equal(e1, e2);
	assert_int_equal(e1, e3);
	if (e1 != MK_OK) {
		assert_int_equal(e1, MK_ERR_INVALID_ARG);
		return 0;
	}
	return strlen(line);
}

/*
 * The line's limit (255 characters in version 1) decided exactly where a
 * quick bound cannot (the numbers long, the identities long): an MSN that
 * brings the line to 255 is taken, one character more is refused; so is a
 * register one digit longer, and a case toggle (a '-' in the line) past
 * the limit, while the same toggle with a character less fits.
 */
static void test_line_limit(void **state)
{
	struct mk_indicium a, b;
	size_t base, n;

	(void)state;
	ind1(&a);
	strcpy(a.vendor, "VENDOR01");
	strcpy(a.postal, "POSTAL01");
	strcpy(a.origin, "1234567890");
	strcpy(a.product_code, "PRODUCTCODE0123456789ABCDEFGHIJK"); /* 32 */
	strcpy(a.indicia_serial, "SERIAL0123456789ABCDEFGHIJKLMNOP");  /* 32 */
	a.ascending = 1000000000000000000u;                             /* 19 digits */
	a.descending = 9999999999999999999u;                            /* 19 */
	a.postage = 4000000000u;
	a.piece_count = 4000000000u;
	a.vendor_token_len = a.postal_token_len = MK_TOKEN_LEN_MAX;
	strcpy(a.mfg_seq, "M");
	base = line_len_or_refused(&a);
	assert_true(base > 0 && base < 255);
	n = 255 - base + 1; /* the MSN's length for a line of 255 */
	assert_true(n <= MK_IDENT_MAX);
	memset(a.mfg_seq, 0, sizeof(a.mfg_seq));
	memset(a.mfg_seq, '7', n);
	assert_int_equal(line_len_or_refused(&a), 255);
	b = a; /* one character more */
	b.mfg_seq[n] = '7';
	assert_int_equal(line_len_or_refused(&b), 0);
	b = a; /* a register one digit longer (10^19) */
	b.ascending = 10000000000000000000u;
	assert_int_equal(line_len_or_refused(&b), 0);
	b = a; /* a piece count one digit shorter: room for one toggle */
	b.piece_count = 400000000u;
	assert_int_equal(line_len_or_refused(&b), 254);
	b.mfg_seq[n - 1] = 'a'; /* the MSN's last character lower case: "-a" */
	assert_int_equal(line_len_or_refused(&b), 255);
	b.mfg_seq[n - 2] = 'a'; /* two of them: still one toggle */
	assert_int_equal(line_len_or_refused(&b), 255);
	b.mfg_seq[0] = 'a'; /* "a" then "B" at its start: two toggles more */
	b.mfg_seq[1] = 'B';
	assert_int_equal(line_len_or_refused(&b), 0);
	b = a; /* the line at 255: no room for a toggle */
	b.mfg_seq[n - 1] = 'a';
	assert_int_equal(line_len_or_refused(&b), 0);
}

/* ---- refusals: each field's bounds ---------------------------------------------- */

/* Each change makes ind1 invalid: every encoder refuses it, and the bytes
 * of a valid binary with that change are refused by the decoder (the
 * document's indicium-bad-* vectors). */
static void test_encode_refuses_each_field(void **state)
{
	struct mk_indicium a;
	uint8_t mem[MK_INDICIUM_BIN_MAX];
	struct mk_buf b;
	char line[MK_INDICIUM_TEXT_MAX];
	int i;

	(void)state;
	for (i = 0;; i++) {
		ind1(&a);
		switch (i) {
		case 0: a.version = 3; break; /* 2 is the signed form: test_pkindicia.c */
		case 1: a.token_alg = 0; break;
		case 2: strcpy(a.vendor, "V"); break;
		case 3: strcpy(a.vendor, "VENDOR123"); break;
		case 4: strcpy(a.postal, "us"); break;
		case 5: a.product_code[0] = '\0'; break;
		case 6: memset(a.mfg_seq, 'M', MK_IDENT_MAX + 1); break; /* no NUL */
		case 7: a.indicia_serial[0] = '\0'; break;
		case 8: strcpy(a.indicia_serial, "IS-1"); break;
		case 9: a.date = 2932897; break;
		case 10: a.origin[0] = '\0'; break;
		case 11: strcpy(a.origin, "1234567890A"); break;
		case 12: strcpy(a.origin, "ab1"); break;
		case 13: a.postage = 0; break;
		case 14: a.piece_count = 0; break;
		case 15: a.vendor_token_len = MK_TOKEN_LEN_MIN - 1; break;
		case 16: a.postal_token_len = MK_TOKEN_LEN_MAX + 1; break;
		case 18: a.version = 0; break;
		case 17: /* every field at its longest, mixed case: the line would not fit */
			memset(a.product_code, 0, sizeof(a.product_code));
			memset(a.mfg_seq, 0, sizeof(a.mfg_seq));
			memset(a.indicia_serial, 0, sizeof(a.indicia_serial));
			for (int j = 0; j < MK_IDENT_MAX; j++)
				a.product_code[j] = a.mfg_seq[j] = a.indicia_serial[j] = j % 2 ? 'a' : 'A';
			a.ascending = a.descending = UINT64_MAX;
			a.vendor_token_len = a.postal_token_len = MK_TOKEN_LEN_MAX;
			break;
		default: goto done;
		}
		mk_buf_init_fixed(&b, mem, sizeof(mem));
		assert_int_equal(mk_indicium_encode_data(&a, &b), MK_ERR_INVALID_ARG);
		assert_int_equal(mk_indicium_encode(&a, &b), MK_ERR_INVALID_ARG);
		assert_int_equal(mk_buf_len(&b), 0);
		assert_int_equal(mk_indicium_text_encode(&a, line), MK_ERR_INVALID_ARG);
		assert_string_equal(line, "");
		mk_buf_cleanup(&b);
	}
done:
	assert_int_equal(i, 19);
	/* The positive twin: the fields at their bounds are accepted. */
	ind1(&a);
	strcpy(a.vendor, "V1");
	memset(a.product_code, 'z', MK_IDENT_MAX);
	a.product_code[MK_IDENT_MAX] = '\0';
	strcpy(a.origin, "1234567890");
	a.date = 0;
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	assert_int_equal(mk_indicium_encode(&a, &b), MK_OK);
	assert_int_equal(mk_indicium_text_encode(&a, line), MK_OK);
	mk_buf_cleanup(&b);
}

/* Binary: a cap too small leaves the buffer as it was; every truncation of
 * a vector is refused, and a longer input is refused before reading. */
static void test_binary_truncations(void **state)
{
	uint8_t vec[512], small[20];
	size_t n;
	struct mk_indicium a, got;
	struct mk_buf b;

	(void)state;
	ind1(&a);
	mk_buf_init_fixed(&b, small, sizeof(small));
	assert_int_equal(mk_indicium_encode(&a, &b), MK_ERR_BUF_FULL);
	assert_int_equal(mk_buf_len(&b), 0);
	mk_buf_cleanup(&b);
	get_vec("indicium-2", "binary", vec, &n);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(mk_indicium_decode(vec, k, &got), MK_ERR_INDICIUM_FORMAT);
	assert_int_equal(mk_indicium_decode(vec, n, &got), MK_OK);
	/* A NUL inside a string (found by fuzz_indicium): "Pc7a" as "Pc\0a"
	 * would be a second encoding of "Pc". */
	vec[20] = 0;
	assert_int_equal(mk_indicium_decode(vec, n, &got), MK_ERR_INDICIUM_FORMAT);
	memset(vec, 1, sizeof(vec));
	assert_int_equal(mk_indicium_decode(vec, MK_INDICIUM_BIN_MAX + 1, &got), MK_ERR_INDICIUM_FORMAT);
	assert_int_equal(mk_indicium_decode(NULL, 1, &got), MK_ERR_INVALID_ARG);
}

/* ---- days ------------------------------------------------------------------------- */

static void test_days(void **state)
{
	char s[11];

	(void)state;
	assert_int_equal(mk_indicium_day(0), 0);
	assert_int_equal(mk_indicium_day(86399), 0);
	assert_int_equal(mk_indicium_day(1741910400), 20161); /* 2025-03-14T00:00:00Z */
	assert_int_equal(mk_indicium_day(-1), 0);
	mk_indicium_day_format(0, s);
	assert_string_equal(s, "1970-01-01");
	mk_indicium_day_format(20161, s);
	assert_string_equal(s, "2025-03-14");
	mk_indicium_day_format(11016, s);
	assert_string_equal(s, "2000-02-29");
	mk_indicium_day_format(2932896, s);
	assert_string_equal(s, "9999-12-31");
	mk_indicium_day_format(2932897, s);
	assert_string_equal(s, "0000-00-00");
}

/* ---- the DataMatrix PNG -------------------------------------------------------------- */

static void tmp_path(char *out, size_t size, const char *name)
{
	snprintf(out, size, "/tmp/mk_test_indicium_%ld_%s", (long)getpid(), name);
}

/* Written, read back by us and by dmtxread: the same line. */
static void test_png_round_trip(void **state)
{
	char line[MK_INDICIUM_TEXT_MAX], got[MK_INDICIUM_TEXT_MAX], path[256], cmd[600];
	FILE *p;

	(void)state;
	tmp_path(path, sizeof(path), "ind.png");
	for (size_t k = 0; k < 2; k++) {
		get_text(names[k], line);
		assert_int_equal(mk_indicium_png_write(line, path), MK_OK);
		assert_int_equal(mk_indicium_png_read(path, got), MK_OK);
		assert_string_equal(got, line);
		if (system("command -v dmtxread >/dev/null 2>&1") != 0) {
			fprintf(stderr, "test_indicium: dmtxread not on PATH, its check skipped\n");
			continue;
		}
		snprintf(cmd, sizeof(cmd), "dmtxread -n -N1 -m2000 '%s'", path);
		assert_non_null(p = popen(cmd, "r"));
		memset(got, 0, sizeof(got));
		assert_non_null(fgets(got, sizeof(got), p));
		assert_int_equal(pclose(p), 0);
		got[strcspn(got, "\n")] = '\0'; /* -n: dmtxread ends with a newline */
		assert_string_equal(got, line);
	}
	unlink(path);
}

/* A PNG written by dmtxwrite (the independent encoder) is read by us. */
static void test_png_read_dmtxwrite(void **state)
{
	char line[MK_INDICIUM_TEXT_MAX], got[MK_INDICIUM_TEXT_MAX], path[256], cmd[800];

	(void)state;
	if (system("command -v dmtxwrite >/dev/null 2>&1") != 0) {
		skip();
		return;
	}
	tmp_path(path, sizeof(path), "w.png");
	get_text("indicium-1", line);
	snprintf(cmd, sizeof(cmd), "printf '%%s' '%s' | dmtxwrite -o '%s'", line, path);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(mk_indicium_png_read(path, got), MK_OK);
	assert_string_equal(got, line);
	unlink(path);
}

/* A 64x64 white 8-bit gray PNG, written with libpng directly. */
static void write_white_png(const char *path)
{
	uint8_t row[64];
	FILE *f = fopen(path, "wb");
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);

	assert_non_null(f);
	assert_non_null(png);
	assert_non_null(info);
	memset(row, 255, sizeof(row));
	png_init_io(png, f);
	png_set_IHDR(png, info, 64, 64, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
	             PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (int y = 0; y < 64; y++)
		png_write_row(png, row);
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	fclose(f);
}

/* Not a PNG, a PNG without a symbol, a missing file, a truncated PNG, a
 * line the symbol cannot carry. */
static void test_png_refusals(void **state)
{
	char line[MK_INDICIUM_TEXT_MAX], got[MK_INDICIUM_TEXT_MAX], path[256], blank[256];
	FILE *f;
	uint8_t buf[8192];
	size_t n;

	(void)state;
	tmp_path(path, sizeof(path), "bad.png");
	tmp_path(blank, sizeof(blank), "blank.png");
	assert_non_null(f = fopen(path, "w"));
	fputs("this is not a PNG file at all\n", f);
	fclose(f);
	assert_int_equal(mk_indicium_png_read(path, got), MK_ERR_INDICIUM_IMAGE);
	assert_string_equal(got, "");
	unlink(path);
	assert_int_equal(mk_indicium_png_read(path, got), MK_ERR_IO);
	/* A PNG of a valid line, cut short. */
	get_text("indicium-1", line);
	assert_int_equal(mk_indicium_png_write(line, path), MK_OK);
	assert_non_null(f = fopen(path, "rb"));
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	assert_true(n > 100 && n < sizeof(buf));
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(buf, 1, n / 2, f), n / 2);
	fclose(f);
	assert_int_equal(mk_indicium_png_read(path, got), MK_ERR_INDICIUM_IMAGE);
	/* A valid PNG holding no symbol (white), and its twin with one. */
	write_white_png(blank);
	assert_int_equal(mk_indicium_png_read(blank, got), MK_ERR_INDICIUM_IMAGE);
	assert_int_equal(mk_indicium_png_write(" ", blank), MK_OK);
	assert_int_equal(mk_indicium_png_read(blank, got), MK_OK);
	assert_string_equal(got, " ");
	unlink(blank);
	unlink(path);
	assert_int_equal(mk_indicium_png_write("", path), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_indicium_png_write("tab\there", path), MK_ERR_INVALID_ARG);
	assert_int_not_equal(access(path, F_OK), 0);
}

/* ---- what is wrong with a refused line ----------------------------------- */

/* Replaces field f (0-based) of line by val and gives the line check
 * characters that pass, found by trying every pair: the line then reaches
 * the field rules. */
static void set_field(char line[MK_INDICIUM_TEXT_MAX], int f, const char *val)
{
	char out[MK_INDICIUM_TEXT_MAX] = "", *p = line;
	struct mk_indicium got;
	const char *why;
	size_t n;

	for (int i = 0; i < f; i++)
		p = strchr(p, '/') + 1;
	memcpy(out, line, (size_t)(p - line));
	strcat(out, val);
	strcat(out, strchr(p, '/'));
	n = strlen(out);
	for (size_t a = 0; a < sizeof(alphabet) - 1; a++)
		for (size_t b = 0; b < sizeof(alphabet) - 1; b++) {
			out[n - 2] = alphabet[a];
			out[n - 1] = alphabet[b];
			if (mk_indicium_text_decode_why(out, &got, &why) != MK_ERR_INDICIUM_CHECK) {
				strcpy(line, out);
				return;
			}
		}
	fail_msg("no check characters pass for %s", out);
}

/* Each refusal says which rule or field failed; a good line says nothing. */
static void test_text_why(void **state)
{
	static const struct {
		int field;
		const char *val, *why;
	} cases[] = {
		{ 0, "9", "field 1 (version) is not a version" },
		{ 1, "X", "field 2 (token algorithm)" },
		{ 2, "V-E", "field 3 (vendor domain)" },
		{ 7, "20260230", "field 8 (date) is not a date YYYYMMDD that exists" },
		{ 9, "5X", "field 10 (postage) is not a number of cents" },
		{ 10, "", "field 11 (piece count)" },
		{ 13, "1", "field 14 (vendor token)" },
		{ 9, "0", "a field outside its rule" },
	};
	char good[MK_INDICIUM_TEXT_MAX], line[MK_INDICIUM_TEXT_MAX];
	struct mk_indicium ind, got;
	const char *why = "unset";

	(void)state;
	ind1(&ind);
	assert_int_equal(mk_indicium_text_encode(&ind, good), MK_OK);
	assert_int_equal(mk_indicium_text_decode_why(good, &got, &why), MK_OK);
	assert_null(why);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		strcpy(line, good);
		set_field(line, cases[i].field, cases[i].val);
		assert_int_equal(mk_indicium_text_decode_why(line, &got, &why), MK_ERR_INDICIUM_FORMAT);
		if (strstr(why, cases[i].why) == NULL)
			fail_msg("%s: \"%s\", wanted \"%s\"", line, why, cases[i].why);
	}
	/* one field fewer: the count, not a field */
	strcpy(line, good);
	memmove(strchr(line, '/'), strchr(strchr(line, '/') + 1, '/'), strlen(strchr(strchr(line, '/') + 1, '/')) + 1);
	set_field(line, 0, "1");
	assert_int_equal(mk_indicium_text_decode_why(line, &got, &why), MK_ERR_INDICIUM_FORMAT);
	assert_string_equal(why, "not the 15 fields of a version 1 indicium");
	/* refused before the fields: check characters, the alphabet, length */
	strcpy(line, good);
	line[strlen(line) - 1] = line[strlen(line) - 1] == 'A' ? 'B' : 'A';
	assert_int_equal(mk_indicium_text_decode_why(line, &got, &why), MK_ERR_INDICIUM_CHECK);
	assert_string_equal(why, MK_INDICIUM_WHY_CHECK);
	line[3] = '\x1b';
	assert_int_equal(mk_indicium_text_decode_why(line, &got, &why), MK_ERR_INDICIUM_CHECK);
	assert_string_equal(why, MK_INDICIUM_WHY_ALPHABET);
	line[4] = ' ';
	assert_int_equal(mk_indicium_text_decode_why(line, &got, &why), MK_ERR_INDICIUM_CHECK);
	assert_string_equal(why, MK_INDICIUM_WHY_ALPHABET_MANY);
	assert_int_equal(mk_indicium_text_decode_why("1", &got, &why), MK_ERR_INDICIUM_FORMAT);
	assert_string_equal(why, "too short to be an indicium");
	{
		char longer[MK_INDICIUM_TEXT_MAX + 1];

		memset(longer, 'A', sizeof(longer) - 1);
		longer[sizeof(longer) - 1] = '\0';
		assert_int_equal(mk_indicium_text_decode_why(longer, &got, &why), MK_ERR_INDICIUM_FORMAT);
	}
	assert_string_equal(why, "longer than any indicium");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_token_key),
		cmocka_unit_test(test_vectors_refused),
		cmocka_unit_test(test_round_trip_lengths),
		cmocka_unit_test(test_text_folding),
		cmocka_unit_test(test_text_check_every_length),
		cmocka_unit_test(test_text_printed_and_folded_agree),
		cmocka_unit_test(test_every_substitution_detected),
		cmocka_unit_test(test_every_transposition_detected),
		cmocka_unit_test(test_candidates_include_original),
		cmocka_unit_test(test_candidates_refusals),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_encode_refuses_each_field),
		cmocka_unit_test(test_binary_truncations),
		cmocka_unit_test(test_days),
		cmocka_unit_test(test_png_round_trip),
		cmocka_unit_test(test_png_read_dmtxwrite),
		cmocka_unit_test(test_png_refusals),
		cmocka_unit_test(test_text_why),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
