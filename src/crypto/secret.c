/*
 * Secret buffers and constant-time comparison (see include/meterkey/crypto.h).
 *
 * The bytes come from OpenSSL's secure heap (OPENSSL_secure_zalloc), which is
 * mlock()ed and excluded from core dumps when the program has initialised one
 * with CRYPTO_secure_malloc_init(); without one OpenSSL falls back to the
 * ordinary heap. Either way they are wiped by OPENSSL_secure_clear_free.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "crypto/crypto_int.h"

struct mk_secret {
	uint8_t *data;
	size_t len;
};

enum mk_err mk_secret_new(size_t len, struct mk_secret **sp)
{
	struct mk_secret *s;

	if (sp == NULL || len > MK_BUF_MAX_CAP)
		return MK_ERR_INVALID_ARG;
	if ((s = OPENSSL_zalloc(sizeof(*s))) == NULL)
		return MK_ERR_NOMEM;
	/* One byte at least, so that data is never NULL. */
	if ((s->data = OPENSSL_secure_zalloc(len > 0 ? len : 1)) == NULL) {
		OPENSSL_free(s);
		return MK_ERR_NOMEM;
	}
	s->len = len;
	*sp = s;
	return MK_OK;
}

enum mk_err mk_secret_new_copy(const void *p, size_t len, struct mk_secret **sp)
{
	enum mk_err r;

	if (p == NULL && len > 0)
		return MK_ERR_INVALID_ARG;
	if ((r = mk_secret_new(len, sp)) != MK_OK)
		return r;
	if (len > 0)
		memcpy((*sp)->data, p, len);
	return MK_OK;
}

void mk_secret_free(struct mk_secret *s)
{
	if (s == NULL)
		return;
	OPENSSL_secure_clear_free(s->data, s->len > 0 ? s->len : 1);
	OPENSSL_free(s);
}

uint8_t *mk_secret_data(struct mk_secret *s)
{
	return s->data;
}

const uint8_t *mk_secret_cdata(const struct mk_secret *s)
{
	return s->data;
}

size_t mk_secret_len(const struct mk_secret *s)
{
	return s->len;
}

int mk_ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}
