/*
 * The service's idempotency keys (include/meterkey/archive.h): per
 * client and key, the hash of the first request and, once answered, its
 * answer, so that a retried call returns the first answer and acts once,
 * whichever service shares the archive. Service bookkeeping, outside the
 * domains' audit chains (the audit of the calls is the service's log).
 */
#include <stdlib.h>
#include <string.h>

#include "archive/archive_int.h"

static int key_ok(const char *s)
{
	size_t n = strnlen(s, MK_IDEM_KEY_MAX + 1);

	if (n == 0 || n > MK_IDEM_KEY_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return 0;
	return 1;
}

struct claim {
	const char *client, *key;
	const uint8_t *hash;
	int64_t time;
	int *statusp;
	uint8_t *stored;
	struct mk_buf *answer;
	int found;
};

/* The key's row: hash, status and answer (of any size up to the cap). */
static int idem_row(void *ctx, const struct mk_db_val *v, size_t n)
{
	struct claim *c = ctx;

	c->found = n >= 3 && v[0].type == MK_DB_BLOB && v[0].n == 32 && v[1].type == MK_DB_INT &&
	                   (v[2].type == MK_DB_BLOB || v[2].type == MK_DB_NULL) && v[2].n <= MK_IDEM_ANSWER_MAX
	               ? 1
	               : -1;
	if (c->found == 1) {
		memcpy(c->stored, v[0].p, 32);
		*c->statusp = (int)v[1].i;
		mk_buf_reset(c->answer);
		if (v[2].n > 0 && mk_buf_put_bytes(c->answer, v[2].p, v[2].n) != MK_OK)
			c->found = -2;
	}
	return 1;
}

static enum mk_err do_claim(struct mk_archive *a, void *arg)
{
	struct claim *c = arg;
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(c->client), MK_DB_TEXT_VAL(c->key), MK_DB_BLOB_VAL(c->hash, 32),
		                 MK_DB_BLOB_VAL("", 0), MK_DB_INT_VAL(c->time) };
	uint64_t changed = 0;
	enum mk_err r;

	if ((r = archive_query(a, S_IDEM_INSERT, p, 5, NULL, NULL, &changed)) != MK_OK)
		return r;
	if (changed == 1)
		return MK_OK;
	c->found = 0;
	if ((r = archive_query(a, S_IDEM_GET, p, 2, idem_row, c, NULL)) != MK_OK)
		return r;
	return c->found == 1 ? MK_RC_RECORD_EXISTS : c->found == -2 ? MK_ERR_NOMEM : MK_ERR_DB_RECORD;
}

enum mk_err mk_archive_idem_claim(struct mk_archive *a, const char *client, const char *key,
                                  const uint8_t hash[static 32], int64_t time, int *statusp,
                                  uint8_t stored_hash[static 32], struct mk_buf *answer)
{
	struct claim c = { client, key, hash, time, statusp, stored_hash, answer, 0 };
	enum mk_err r;

	if (a == NULL || client == NULL || key == NULL || !key_ok(key) || !key_ok(client) || statusp == NULL ||
	    answer == NULL)
		return MK_ERR_INVALID_ARG;
	r = archive_write_txn(a, do_claim, &c);
	return r;
}

struct answer_args {
	const char *client, *key;
	int status;
	const uint8_t *p;
	size_t n;
};

static enum mk_err do_answer(struct mk_archive *a, void *arg)
{
	struct answer_args *x = arg;
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(x->client), MK_DB_TEXT_VAL(x->key), MK_DB_INT_VAL(x->status),
		                 MK_DB_BLOB_VAL(x->p, x->n) };
	uint64_t changed = 0;
	enum mk_err r = archive_query(a, S_IDEM_SET, p, 4, NULL, NULL, &changed);

	return r != MK_OK ? r : changed == 1 ? MK_OK : MK_RC_RECORD_EXISTS;
}

enum mk_err mk_archive_idem_answer(struct mk_archive *a, const char *client, const char *key, int status,
                                   const uint8_t *answer, size_t n)
{
	struct answer_args x = { client, key, status, answer, n };

	if (a == NULL || client == NULL || key == NULL || !key_ok(key) || status <= 0 || answer == NULL ||
	    n > MK_IDEM_ANSWER_MAX)
		return MK_ERR_INVALID_ARG;
	return archive_write_txn(a, do_answer, &x);
}

static enum mk_err do_release(struct mk_archive *a, void *arg)
{
	struct answer_args *x = arg;
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(x->client), MK_DB_TEXT_VAL(x->key) };

	return archive_query(a, S_IDEM_RELEASE, p, 2, NULL, NULL, NULL);
}

enum mk_err mk_archive_idem_release(struct mk_archive *a, const char *client, const char *key)
{
	struct answer_args x = { client, key, 0, NULL, 0 };

	if (a == NULL || client == NULL || key == NULL || !key_ok(key))
		return MK_ERR_INVALID_ARG;
	return archive_write_txn(a, do_release, &x);
}
