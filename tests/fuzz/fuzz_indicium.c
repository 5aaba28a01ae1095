/*
 * libFuzzer target for the indicium's binary and text forms
 * (src/indicia/indicium.c).
 *
 * The input is tried three ways:
 *   as the binary form: what decodes must re-encode to the input byte for
 *     byte, and its text line must decode to the same struct;
 *   as a text line (the input up to its first NUL): what decodes must
 *     re-encode to the input folded to upper case, and its binary form must
 *     decode to the same struct;
 *   as a line to correct: every candidate must be a valid indicium whose
 *     line decodes to it again, and a line that decodes has none.
 * Any difference abort()s.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meterkey/indicium.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int cond)
{
	if (!cond)
		abort();
}

/* The text and binary forms of ind decode back to ind. */
static void both_forms(const struct mk_indicium *ind)
{
	char line[MK_INDICIUM_TEXT_MAX];
	uint8_t mem[MK_INDICIUM_BIN_MAX];
	struct mk_buf b;
	struct mk_indicium again;

	must(mk_indicium_text_encode(ind, line) == MK_OK);
	must(mk_indicium_text_decode(line, &again) == MK_OK);
	must(memcmp(&again, ind, sizeof(again)) == 0);
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	must(mk_indicium_encode(ind, &b) == MK_OK);
	must(mk_indicium_decode(mk_buf_data(&b), mk_buf_len(&b), &again) == MK_OK);
	must(memcmp(&again, ind, sizeof(again)) == 0);
	mk_buf_cleanup(&b);
}

static int on_cand(void *ctx, const struct mk_indicium *cand)
{
	size_t *n = ctx;

	both_forms(cand);
	return ++*n >= 64;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mk_indicium ind;
	char line[MK_INDICIUM_TEXT_MAX + 1], folded[MK_INDICIUM_TEXT_MAX + 1];
	uint8_t mem[MK_INDICIUM_BIN_MAX];
	struct mk_buf b;
	size_t n, seen = 0, count = 0;
	enum mk_err e;

	if (mk_indicium_decode(data, size, &ind) == MK_OK) {
		mk_buf_init_fixed(&b, mem, sizeof(mem));
		must(mk_indicium_encode(&ind, &b) == MK_OK);
		must(mk_buf_len(&b) == size && memcmp(mk_buf_data(&b), data, size) == 0);
		mk_buf_cleanup(&b);
		both_forms(&ind);
	}

	n = size < MK_INDICIUM_TEXT_MAX ? size : MK_INDICIUM_TEXT_MAX;
	memcpy(line, data, n);
	line[n] = '\0';
	n = strlen(line);
	if ((e = mk_indicium_text_decode(line, &ind)) == MK_OK) {
		char again[MK_INDICIUM_TEXT_MAX];

		for (size_t i = 0; i <= n; i++)
			folded[i] = (char)(line[i] >= 'a' && line[i] <= 'z' ? line[i] - 'a' + 'A' : line[i]);
		must(mk_indicium_text_encode(&ind, again) == MK_OK);
		must(strcmp(again, folded) == 0);
		both_forms(&ind);
	}

	must(mk_indicium_text_candidates(line, on_cand, &seen, &count) ==
	     (n >= MK_INDICIUM_TEXT_MAX ? MK_ERR_INDICIUM_FORMAT : MK_OK));
	must(count == seen);
	if (e == MK_OK)
		must(count == 0);
	return 0;
}
