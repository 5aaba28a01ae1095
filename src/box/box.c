/*
 * The boxes' public API (boxes.h): a box made or opened with its kind,
 * called with encoded requests, freed with its keys wiped.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <string.h>

#include <openssl/crypto.h>

#include "box/box_int.h"
#include "meterkey/seal.h"

/* How long a session waits for another holding the box: 200 x 50 ms. */
#define BOX_LOCK_TRIES 200
#define BOX_LOCK_WAIT_US 50000

/* ---- Creating, opening, freeing ------------------------------------------------------ */

static enum mk_err box_alloc(enum mk_box_type t, const char *store_dir, const char *share_dir,
                             struct mk_box **bp)
{
	struct mk_box *b;
	enum mk_err r;

	*bp = NULL;
	if (store_dir == NULL || share_dir == NULL || box_kind_of(t) == NULL)
		return MK_ERR_INVALID_ARG;
	if ((r = mk_selftest_run()) != MK_OK)
		return r;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return MK_ERR_NOMEM;
	b->type = t;
	b->kind = box_kind_of(t);
	b->lock_fd = -1;
	if ((b->store_dir = strdup(store_dir)) == NULL || (b->share_dir = strdup(share_dir)) == NULL) {
		mk_box_free(b);
		return MK_ERR_NOMEM;
	}
	if ((r = mk_rng_new(&b->rng)) != MK_OK ||
	    (b->kind->state_new != NULL && (r = b->kind->state_new(b)) != MK_OK)) {
		mk_box_free(b);
		return r;
	}
	*bp = b;
	return MK_OK;
}

enum mk_err mk_box_new(enum mk_box_type t, const uint8_t *anchor, const char *store_dir,
                       const char *share_dir, struct mk_box **bp)
{
	struct mk_box *b;
	enum mk_err r;

	if (bp == NULL || (anchor == NULL && t != MK_BOX_MANUFACTURING))
		return MK_ERR_INVALID_ARG;
	if ((r = box_alloc(t, store_dir, share_dir, &b)) != MK_OK)
		return r;
	/* its identity, made inside it as it is made: the key whose
	 * fingerprint its operator reads and the ceremony checks */
	if ((r = mk_box_id_format(t, 0, b->id)) != MK_OK || (r = mk_ec_keygen(b->rng, &b->identity)) != MK_OK) {
		mk_box_free(b);
		return r;
	}
	if (anchor != NULL) {
		memcpy(b->anchor, anchor, MK_EC_PUB_LEN);
		b->has_anchor = 1;
	}
	*bp = b;
	return MK_OK;
}

enum mk_err mk_box_open(const char *store_dir, const char *share_dir, const char *box_id,
                        const struct mk_share *const *shares, size_t nshares, struct mk_box **bp)
{
	char path[PATH_MAX];
	struct mk_secret *state = NULL;
	struct mk_box *b = NULL;
	enum mk_box_type t;
	uint32_t number;
	enum mk_err r;

	if (bp == NULL || box_id == NULL || mk_box_id_parse(box_id, &t, &number) != MK_OK || number == 0)
		return MK_ERR_INVALID_ARG;
	*bp = NULL;
	if ((r = box_alloc(t, store_dir, share_dir, &b)) != MK_OK)
		return r;
	memcpy(b->id, box_id, MK_BOX_ID_LEN + 1);
	if (!box_state_path(b, box_id, path, sizeof(path))) {
		r = MK_ERR_INVALID_ARG;
		goto out;
	}
	/* One session at a time: two processes with the same box open would
	 * each seal their own next generation, and the last-key-ID a replay
	 * check rests on could go back. The lock is held until mk_box_free. */
	{
		char lock[PATH_MAX];

		if (snprintf(lock, sizeof(lock), "%s/%s.lock", store_dir, box_id) >= (int)sizeof(lock) ||
		    (b->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
			r = MK_ERR_IO;
			goto out;
		}
		/* A session waits a while for another to finish, never for ever. */
		for (int tries = 0; flock(b->lock_fd, LOCK_EX | LOCK_NB) != 0; tries++) {
			if (errno != EWOULDBLOCK || tries == BOX_LOCK_TRIES) {
				r = errno == EWOULDBLOCK ? MK_ERR_BOX_BUSY : MK_ERR_IO;
				goto out;
			}
			usleep(BOX_LOCK_WAIT_US);
		}
	}
	if ((r = mk_seal_read_with_shares(path, box_id, shares, nshares, &b->generation, &state)) != MK_OK)
		goto out;
	{
		/* Rebuild the OC the same way the seal did, to reseal later. */
		uint8_t oc[MK_SHARE_SECRET_MAX];
		size_t oclen = 0;

		if ((r = mk_share_combine(shares, nshares, box_id, oc, sizeof(oc), &oclen)) != MK_OK ||
		    oclen != sizeof(b->oc)) {
			OPENSSL_cleanse(oc, sizeof(oc));
			r = r != MK_OK ? r : MK_ERR_SEAL_KEY;
			goto out;
		}
		memcpy(b->oc, oc, sizeof(b->oc));
		OPENSSL_cleanse(oc, sizeof(oc));
	}
	if ((r = box_state_decode(b, mk_secret_cdata(state), mk_secret_len(state))) != MK_OK) {
		r = r == MK_ERR_SEAL_FOREIGN ? r : MK_ERR_SEAL_FORMAT;
		goto out;
	}
	/* an older state put back beside the box's counter */
	if ((r = box_generation_check(b)) != MK_OK)
		goto out;
	b->enabled = 1;
	*bp = b;
	b = NULL;
	r = MK_OK;
out:
	mk_secret_free(state);
	mk_box_free(b);
	return r;
}

const char *mk_box_get_id(const struct mk_box *b)
{
	return b->id;
}

enum mk_box_type mk_box_get_type(const struct mk_box *b)
{
	return b->type;
}

void mk_box_attach_meter(struct mk_box *b, const struct mk_msg_link *line)
{
	if (b->remote != NULL) /* its line is handed over (mk_box_attach_meter_fd) */
		return;
	if (b->kind->attach_meter != NULL)
		b->kind->attach_meter(b, line);
}

void mk_box_free(struct mk_box *b)
{
	if (b == NULL)
		return;
	if (b->remote != NULL) { /* a box in another process: our connection only */
		box_remote_free(b->remote);
		free(b);
		return;
	}
	for (size_t i = 0; i < b->ndomains; i++)
		box_domain_clear(&b->domains[i]);
	EVP_PKEY_free(b->startup_conf);
	EVP_PKEY_free(b->identity);
	if (b->kind != NULL && b->kind->state_free != NULL)
		b->kind->state_free(b);
	if (b->kind != NULL && b->kind->state_destroy != NULL)
		b->kind->state_destroy(b);
	mk_rng_free(b->rng);
	if (b->lock_fd >= 0)
		close(b->lock_fd); /* releases the lock */
	free(b->store_dir);
	free(b->share_dir);
	OPENSSL_cleanse(b, sizeof(*b));
	free(b);
}

const char *mk_box_get_type_name(const struct mk_box *b)
{
	return b->kind->table->name;
}

static enum mk_err link_roundtrip(void *ctx, const uint8_t *req, size_t n, struct mk_buf *resp)
{
	return mk_box_call(ctx, req, n, resp);
}

struct mk_msg_link mk_box_link(struct mk_box *b)
{
	return (struct mk_msg_link){ link_roundtrip, b };
}

enum mk_err mk_box_call(struct mk_box *b, const uint8_t *req, size_t n, struct mk_buf *resp)
{
	if (b == NULL || req == NULL || resp == NULL)
		return MK_ERR_INVALID_ARG;
	if (b->remote != NULL)
		return box_remote_call(b, req, n, resp);
	return mk_msg_dispatch(b->kind->table, b, req, n, resp);
}
