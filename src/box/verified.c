/*
 * The key records a Brass box has verified, remembered across its sessions
 * (docs/formats.md, "Verified records"; docs/internals/verify.md).
 *
 * A record's signature is checked once per version in a session (the key
 * cache of verify.c); each new session, a new process for a command line
 * verifier, checked every record of the fleet again: an ECDSA verification
 * each, about 0.1 ms, so seconds for a fleet of 10,000 meters in two
 * domains. The box now keeps, beside its sealed state, the digests of the
 * records whose signature it verified, each bound to the key it verified
 * them with; a record found there is not verified again. Everything else a
 * record is checked for (its domain, its signer's type, its proof under
 * the head, its status, its master key opened) is done as before.
 *
 * The file holds no secret (a digest of a public record), so it is not
 * encrypted, but it is authenticated: AES-256-CMAC under a key derived
 * from the box's Operation Combination and ID, a label of its own (not the
 * sealed state's key). Without the OC a digest cannot be added; a file put
 * back from earlier only lacks what was added since; another box's file, a
 * changed or cut one is not used (the records are verified again, and the
 * file written anew at the session's end). A file that cannot be written
 * costs the next session time, nothing else.
 *
 *   off    len  field
 *     0      4  magic "MKVR"
 *     4      1  version (1)
 *     5      9  box ID, ASCII
 *    14      4  n, the digests, u32 big-endian (at most BOX_VERIFIED_MAX)
 *    18   32 n  the digests, oldest first
 * 18+32n    16  AES-256-CMAC of bytes 0 .. 18+32n
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "box/box_int.h"
#include "core/file_int.h"

static const uint8_t magic[4] = { 'M', 'K', 'V', 'R' };
static const char key_label[] = "meterkey box verified records v1";
static const char digest_label[] = "meterkey verified record v1";

#define HEAD_LEN 18
#define TAG_LEN 16
#define FILE_MAX (HEAD_LEN + BOX_VERIFIED_MAX * 32 + TAG_LEN)
#define NONE UINT32_MAX

struct box_verified {
	uint8_t (*d)[32];  /* the digests, oldest first */
	size_t n, cap;
	uint32_t *slot;    /* open addressing over d: an index, or NONE */
	size_t nslots;     /* a power of two, at least twice n */
	size_t loaded;     /* of n, those read from the file */
	int refused;       /* a file was there and was not used */
};

enum mk_err box_verified_digest(const uint8_t pub[static MK_EC_PUB_LEN], const uint8_t rec_hash[static 32],
                                uint8_t out[static 32])
{
	uint8_t in[sizeof(digest_label) + MK_EC_PUB_LEN + MK_SHA256_LEN];

	memcpy(in, digest_label, sizeof(digest_label)); /* its NUL too */
	memcpy(in + sizeof(digest_label), pub, MK_EC_PUB_LEN);
	memcpy(in + sizeof(digest_label) + MK_EC_PUB_LEN, rec_hash, MK_SHA256_LEN);
	return mk_sha256(in, sizeof(in), out);
}

static size_t slot_of(const struct box_verified *v, const uint8_t d[32])
{
	uint64_t h;

	memcpy(&h, d, sizeof(h)); /* a digest: its bytes are as good as any hash */
	return (size_t)h & (v->nslots - 1);
}

static uint32_t *find(const struct box_verified *v, const uint8_t d[32])
{
	size_t i = slot_of(v, d);

	while (v->slot[i] != NONE && memcmp(v->d[v->slot[i]], d, 32) != 0)
		i = (i + 1) & (v->nslots - 1);
	return &v->slot[i];
}

static enum mk_err rehash(struct box_verified *v, size_t nslots)
{
	uint32_t *s = malloc(nslots * sizeof(*s));

	if (s == NULL)
		return MK_ERR_NOMEM;
	free(v->slot);
	v->slot = s;
	v->nslots = nslots;
	for (size_t i = 0; i < nslots; i++)
		s[i] = NONE;
	for (size_t j = 0; j < v->n; j++)
		*find(v, v->d[j]) = (uint32_t)j;
	return MK_OK;
}

int box_verified_has(const struct box_verified *v, const uint8_t d[static 32])
{
	return v != NULL && v->nslots > 0 && *find(v, d) != NONE;
}

enum mk_err box_verified_add(struct box_verified *v, const uint8_t d[static 32])
{
	enum mk_err e;

	if (box_verified_has(v, d))
		return MK_OK;
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 1024;
		uint8_t(*nd)[32] = realloc(v->d, cap * sizeof(*nd));

		if (nd == NULL)
			return MK_ERR_NOMEM;
		v->d = nd;
		v->cap = cap;
	}
	if (2 * (v->n + 1) > v->nslots && (e = rehash(v, v->nslots ? 2 * v->nslots : 2048)) != MK_OK)
		return e;
	memcpy(v->d[v->n], d, 32);
	*find(v, d) = (uint32_t)v->n;
	v->n++;
	return MK_OK;
}

size_t box_verified_count(const struct box_verified *v)
{
	return v != NULL ? v->n : 0;
}

int box_verified_refused(const struct box_verified *v)
{
	return v != NULL && v->refused;
}

void box_verified_free(struct box_verified *v)
{
	if (v == NULL)
		return;
	free(v->d);
	free(v->slot);
	free(v);
}

static enum mk_err file_key(const uint8_t oc[static 32], const char *box_id, uint8_t key[static 32])
{
	return mk_kdf_derive(oc, 32, key_label, sizeof(key_label) - 1, box_id, MK_BOX_ID_LEN, key, 32);
}

static enum mk_err file_tag(const uint8_t oc[static 32], const char *box_id, const uint8_t *p, size_t n,
                            uint8_t tag[static TAG_LEN])
{
	uint8_t key[32];
	enum mk_err e;

	if ((e = file_key(oc, box_id, key)) == MK_OK)
		e = mk_cmac_once(key, sizeof(key), p, n, tag, TAG_LEN);
	OPENSSL_cleanse(key, sizeof(key));
	return e;
}

/* The digests of p[0..n) into v when it is box_id's file, whole and
 * authentic; else MK_ERR_SEAL_FORMAT, v unchanged (every check comes
 * before the first digest is added; only MK_ERR_NOMEM stops half way). */
static enum mk_err parse(struct box_verified *v, const uint8_t *p, size_t n, const char *box_id,
                         const uint8_t oc[static 32])
{
	uint8_t tag[TAG_LEN];
	uint32_t count;
	enum mk_err e = MK_ERR_SEAL_FORMAT;

	if (n < HEAD_LEN + TAG_LEN || memcmp(p, magic, 4) != 0 || p[4] != 1 ||
	    memcmp(p + 5, box_id, MK_BOX_ID_LEN) != 0)
		return e;
	count = (uint32_t)p[14] << 24 | (uint32_t)p[15] << 16 | (uint32_t)p[16] << 8 | p[17];
	if (count > BOX_VERIFIED_MAX || n != HEAD_LEN + (size_t)count * 32 + TAG_LEN)
		return e;
	if (file_tag(oc, box_id, p, n - TAG_LEN, tag) != MK_OK || CRYPTO_memcmp(tag, p + n - TAG_LEN, TAG_LEN) != 0)
		return e;
	for (size_t i = 0; i < count; i++)
		if ((e = box_verified_add(v, p + HEAD_LEN + 32 * i)) != MK_OK)
			return e;
	return MK_OK;
}

enum mk_err box_verified_load(const char *path, const char *box_id, const uint8_t oc[static 32],
                              struct box_verified **vp)
{
	struct box_verified *v = calloc(1, sizeof(*v));
	struct mk_buf *b = NULL;
	enum mk_err e;

	*vp = NULL;
	if (v == NULL)
		return MK_ERR_NOMEM;
	if ((b = mk_buf_new(FILE_MAX + 1)) == NULL) { /* mk_file_read reads one more to see the end */
		free(v);
		return MK_ERR_NOMEM;
	}
	e = mk_file_read(path, FILE_MAX, b);
	if (e == MK_OK) {
		e = parse(v, mk_buf_data(b), mk_buf_len(b), box_id, oc);
		if (e == MK_ERR_NOMEM) {
			mk_buf_free(b);
			box_verified_free(v);
			return e;
		}
		v->refused = e != MK_OK; /* not used */
	} else if (e != MK_ERR_NOT_FOUND) {
		v->refused = 1;
	}
	v->loaded = v->n;
	mk_buf_free(b);
	*vp = v;
	return MK_OK;
}

enum mk_err box_verified_save(const struct box_verified *v, const char *path, const char *box_id,
                              const uint8_t oc[static 32])
{
	size_t from, count, len;
	uint8_t *p;
	enum mk_err e;

	if (v == NULL || (v->n == v->loaded && !v->refused))
		return MK_OK; /* nothing new */
	from = v->n > BOX_VERIFIED_MAX ? v->n - BOX_VERIFIED_MAX : 0; /* the newest kept */
	count = v->n - from;
	len = HEAD_LEN + count * 32 + TAG_LEN;
	if ((p = malloc(len)) == NULL)
		return MK_ERR_NOMEM;
	memcpy(p, magic, 4);
	p[4] = 1;
	memcpy(p + 5, box_id, MK_BOX_ID_LEN);
	p[14] = (uint8_t)(count >> 24);
	p[15] = (uint8_t)(count >> 16);
	p[16] = (uint8_t)(count >> 8);
	p[17] = (uint8_t)count;
	if (count > 0)
		memcpy(p + HEAD_LEN, v->d[from], count * 32);
	if ((e = file_tag(oc, box_id, p, len - TAG_LEN, p + len - TAG_LEN)) == MK_OK)
		e = mk_file_replace(path, p, len, 0, NULL, NULL);
	free(p);
	return e;
}
