/*
 * CMAC benchmark: mk_cmac_compute with a 16-byte key on a 64-byte message,
 * truncated to 8 bytes (the indicia verification hot loop), in messages/s,
 * beside the raw OpenSSL EVP_MAC cost of the same work in the same run:
 *
 *   per-key context   mk_cmac_compute  vs  EVP_MAC_init(ctx, NULL key) +
 *                                          update + final on a keyed ctx;
 *   dup of a template mk_cmac_compute  vs  EVP_MAC_CTX_dup of a keyed ctx +
 *                                          update + final + free (the other
 *                                          way to reuse a key, for the choice
 *                                          made in src/crypto/cmac.c);
 *   one-shot          mk_cmac_once     vs  fetch + new + init(key) + update
 *                                          + final + free, per message.
 *
 * Usage: bench_cmac [seconds per measurement, default 1]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "bench.h"
#include "meterkey/crypto.h"

#define MSG_LEN 64
#define TAG_LEN 8
#define BATCH 256

static const uint8_t key[16] = { 0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
	                         0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c };
static uint8_t msg[MSG_LEN];
static volatile uint8_t sink;

/* Each message differs from the last (a counter in its first bytes). */
static void vary(uint64_t i)
{
	memcpy(msg, &i, sizeof(i));
}

static void die(const char *what)
{
	fprintf(stderr, "bench_cmac: %s failed\n", what);
	exit(1);
}

static EVP_MAC_CTX *keyed_ctx(EVP_MAC *mac)
{
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
	OSSL_PARAM params[2];

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, (char *)"AES-128-CBC", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (ctx == NULL || EVP_MAC_init(ctx, key, sizeof(key), params) != 1)
		die("EVP_MAC_init");
	return ctx;
}

static double rate_ours_ctx(double secs)
{
	struct mk_cmac *c = NULL;
	uint8_t tag[TAG_LEN];
	double t0, t;
	uint64_t n = 0;

	if (mk_cmac_new(key, sizeof(key), &c) != MK_OK)
		die("mk_cmac_new");
	t0 = bench_now();
	do {
		for (int i = 0; i < BATCH; i++, n++) {
			vary(n);
			if (mk_cmac_compute(c, msg, MSG_LEN, tag, TAG_LEN) != MK_OK)
				die("mk_cmac_compute");
			sink ^= tag[0];
		}
	} while ((t = bench_now() - t0) < secs);
	mk_cmac_free(c);
	return (double)n / t;
}

static double rate_ours_once(double secs)
{
	uint8_t tag[TAG_LEN];
	double t0 = bench_now(), t;
	uint64_t n = 0;

	do {
		for (int i = 0; i < BATCH; i++, n++) {
			vary(n);
			if (mk_cmac_once(key, sizeof(key), msg, MSG_LEN, tag, TAG_LEN) != MK_OK)
				die("mk_cmac_once");
			sink ^= tag[0];
		}
	} while ((t = bench_now() - t0) < secs);
	return (double)n / t;
}

/* Raw: one keyed context, re-initialised without a key for each message. */
static double rate_raw_reinit(double secs)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
	EVP_MAC_CTX *ctx;
	uint8_t full[16];
	size_t len;
	double t0, t;
	uint64_t n = 0;

	if (mac == NULL)
		die("EVP_MAC_fetch");
	ctx = keyed_ctx(mac);
	t0 = bench_now();
	do {
		for (int i = 0; i < BATCH; i++, n++) {
			vary(n);
			if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(ctx, msg, MSG_LEN) != 1 ||
			    EVP_MAC_final(ctx, full, &len, sizeof(full)) != 1)
				die("raw reinit");
			sink ^= full[0];
		}
	} while ((t = bench_now() - t0) < secs);
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return (double)n / t;
}

/* Raw: a keyed template duplicated for each message. */
static double rate_raw_dup(double secs)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
	EVP_MAC_CTX *tmpl, *ctx;
	uint8_t full[16];
	size_t len;
	double t0, t;
	uint64_t n = 0;

	if (mac == NULL)
		die("EVP_MAC_fetch");
	tmpl = keyed_ctx(mac);
	t0 = bench_now();
	do {
		for (int i = 0; i < BATCH; i++, n++) {
			vary(n);
			if ((ctx = EVP_MAC_CTX_dup(tmpl)) == NULL || EVP_MAC_update(ctx, msg, MSG_LEN) != 1 ||
			    EVP_MAC_final(ctx, full, &len, sizeof(full)) != 1)
				die("raw dup");
			EVP_MAC_CTX_free(ctx);
			sink ^= full[0];
		}
	} while ((t = bench_now() - t0) < secs);
	EVP_MAC_CTX_free(tmpl);
	EVP_MAC_free(mac);
	return (double)n / t;
}

/* Raw: everything per message, as a naive caller would. */
static double rate_raw_full(double secs)
{
	uint8_t full[16];
	size_t len;
	double t0 = bench_now(), t;
	uint64_t n = 0;

	do {
		for (int i = 0; i < BATCH; i++, n++) {
			EVP_MAC *mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
			EVP_MAC_CTX *ctx;

			vary(n);
			if (mac == NULL)
				die("EVP_MAC_fetch");
			ctx = keyed_ctx(mac);
			if (EVP_MAC_update(ctx, msg, MSG_LEN) != 1 ||
			    EVP_MAC_final(ctx, full, &len, sizeof(full)) != 1)
				die("raw full");
			EVP_MAC_CTX_free(ctx);
			EVP_MAC_free(mac);
			sink ^= full[0];
		}
	} while ((t = bench_now() - t0) < secs);
	return (double)n / t;
}

/* The machine may be shared: each figure is the best of ROUNDS short runs,
 * ours and raw interleaved, so that a burst of load hits both alike. */
#define ROUNDS 5

static double best(double a, double b)
{
	return a > b ? a : b;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	double ctx = 0, reinit = 0, dup = 0, once = 0, full = 0;

	if (secs <= 0)
		return 1;
	if (mk_selftest_run() != MK_OK)
		die("mk_selftest_run");
	secs /= ROUNDS;
	for (int r = 0; r < ROUNDS; r++) {
		ctx = best(ctx, rate_ours_ctx(secs));
		reinit = best(reinit, rate_raw_reinit(secs));
		dup = best(dup, rate_raw_dup(secs));
		once = best(once, rate_ours_once(secs));
		full = best(full, rate_raw_full(secs));
	}
	printf("AES-128 CMAC, %d-byte message, tag truncated to %d bytes (best of %d)\n", MSG_LEN,
	       TAG_LEN, ROUNDS);
	bench_report("cmac: per-key context (re-init)", "msgs", ctx, reinit);
	bench_report("cmac: per-key context vs dup template", "msgs", ctx, dup);
	bench_report("cmac: one-shot (fetch+key per msg)", "msgs", once, full);
	return 0;
}
