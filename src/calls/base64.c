/*
 * Base64 (RFC 4648, the standard alphabet, padded): the binary parts of a
 * call's request or answer (an indicium's binary form or PNG, a signed
 * head), through OpenSSL's EVP_EncodeBlock and EVP_DecodeBlock, held to
 * the strict form first (EVP_DecodeBlock takes blanks and stray padding).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "meterkey/calls.h"

enum mk_err mk_base64_decode(const char *s, uint8_t **outp, size_t *np)
{
	size_t len = strlen(s), pad = 0;
	uint8_t *out;
	int n;

	*outp = NULL;
	*np = 0;
	/* whole groups of four of the standard alphabet, '=' only at the end */
	if (len == 0 || len % 4 != 0 || len > INT_MAX || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                                                         "0123456789+/") < len - 2)
		return MK_ERR_INVALID_ARG;
	pad = s[len - 1] == '=' ? (s[len - 2] == '=' ? 2 : 1) : 0;
	if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") != len - pad)
		return MK_ERR_INVALID_ARG;
	if ((out = malloc(len / 4 * 3 + 1)) == NULL)
		return MK_ERR_NOMEM;
	if ((n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len)) < 0 || (size_t)n < pad) {
		free(out);
		return MK_ERR_INVALID_ARG;
	}
	*outp = out;
	*np = (size_t)n - pad;
	return MK_OK;
}

char *mk_base64_encode(const uint8_t *p, size_t n)
{
	char *out;

	if (n > (size_t)INT_MAX / 4 * 3 - 3 || (out = malloc((n + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}
