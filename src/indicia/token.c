/*
 * Temporal token keys (claims 5-8 of the first document): what the tokens of
 * an indicium are made with, derived from the master key for one device, one
 * domain and one period, so that a remote verifier can be given the key of a
 * period without the master key. docs/indicium.md.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "meterkey/crypto.h"
#include "meterkey/indicium.h"

#define TOKEN_KEY_LABEL "meterkey token key"

/* Days from civil date (Howard Hinnant's algorithm), and back, for months. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m)
{
	int64_t era, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	*y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	if (*m <= 2)
		(*y)++;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

uint32_t mk_token_period(uint32_t day)
{
	int64_t y;
	unsigned m;

	civil_from_days(day, &y, &m);
	return (uint32_t)((y - 1970) * 12 + (m - 1));
}

void mk_token_period_days(uint32_t period, uint32_t *firstp, uint32_t *endp)
{
	int64_t y = 1970 + period / 12;
	unsigned m = period % 12 + 1;

	*firstp = (uint32_t)days_from_civil(y, m, 1);
	*endp = (uint32_t)(m == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, m + 1, 1));
}

enum mk_err mk_token_key_derive(const uint8_t master[static 16], const char *domain,
                                const char *product_code, const char *mfg_seq, uint32_t period,
                                uint8_t out[static 16])
{
	uint8_t ctx[3 * (MK_IDENT_MAX + 1) + 4];
	size_t n = 0, l;
	const char *parts[3] = { domain, product_code, mfg_seq };
	enum mk_err e;

	for (int i = 0; i < 3; i++) {
		if (parts[i] == NULL || (l = strnlen(parts[i], MK_IDENT_MAX + 1)) == 0 || l > MK_IDENT_MAX)
			return MK_ERR_INVALID_ARG;
		memcpy(ctx + n, parts[i], l); /* our own strings, bounded above: not wire data */
		n += l;
		ctx[n++] = 0;
	}
	ctx[n++] = (uint8_t)(period >> 24);
	ctx[n++] = (uint8_t)(period >> 16);
	ctx[n++] = (uint8_t)(period >> 8);
	ctx[n++] = (uint8_t)period;
	e = mk_kdf_derive(master, 16, TOKEN_KEY_LABEL, sizeof(TOKEN_KEY_LABEL) - 1, ctx, n, out, 16);
	OPENSSL_cleanse(ctx, sizeof(ctx));
	return e;
}
