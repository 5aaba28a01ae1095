/*
 * Fuzz target for the crypto layer's decoders of untrusted bytes: a public
 * point (mk_ec_pub_decode), a wrapped key (mk_ec_unwrap), a GCM-sealed record
 * (mk_gcm_open) and an r || s signature (mk_ecdsa_verify). The first input
 * byte picks the decoder; the rest is its input. Nothing may crash, leak or
 * succeed on garbage: an unwrap or open that succeeds on fuzz input aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *key(void)
{
	static EVP_PKEY *k;
	/* RFC 6979 A.2.5's private key: any fixed valid scalar will do. */
	static const uint8_t d[32] = { 0xc9, 0xaf, 0xa9, 0xd8, 0x45, 0xba, 0x75, 0x16,
		                       0x6b, 0x5c, 0x21, 0x57, 0x67, 0xb1, 0xd6, 0x93,
		                       0x4e, 0x50, 0xc3, 0xdb, 0x36, 0xe8, 0x9b, 0x12,
		                       0x7b, 0x8a, 0x62, 0x2b, 0x12, 0x0f, 0x67, 0x21 };

	if (k == NULL && mk_ec_key_from_scalar(d, NULL, &k) != MK_OK)
		abort();
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t gkey[32] = { 1, 2, 3, 4 };
	struct mk_secret *s = NULL;
	EVP_PKEY *pub = NULL;

	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:
		if (size >= 1 + MK_EC_PUB_LEN && mk_ec_pub_decode(data + 1, &pub) == MK_OK)
			EVP_PKEY_free(pub);
		break;
	case 1:
		if (mk_ec_unwrap(key(), "fuzz", 4, data + 1, size - 1, &s) == MK_OK)
			abort(); /* a forgery against a key the fuzzer does not know */
		break;
	case 2:
		if (mk_gcm_open(gkey, "fuzz", 4, data + 1, size - 1, &s) == MK_OK)
			abort();
		break;
	case 3:
		if (size >= 1 + MK_ECDSA_SIG_LEN &&
		    mk_ecdsa_verify(key(), data + 1 + MK_ECDSA_SIG_LEN, size - 1 - MK_ECDSA_SIG_LEN,
		                    data + 1) == MK_OK)
			abort();
		break;
	}
	mk_secret_free(s);
	return 0;
}
