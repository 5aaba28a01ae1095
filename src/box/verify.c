/*
 * Verifying indicia inside a box (Fig. 28; claims 5-8): the checks a Brass
 * box (with the archived master key record) and a Tin box (with a temporal
 * token key record) share, and the bounded cache of keys each keeps while it
 * is open. docs/internals/verify.md.
 *
 * A Verify request carries up to MK_VERIFY_KEYS_MAX key records (tag 01,
 * nested, tags 01.. in order) and up to MK_VERIFY_BATCH_MAX items (tag 02,
 * nested, tags 01.. in order, each nested: 01 the index of its key record,
 * 1-based, 0 for none; 02 the binary indicium). The result (tag 01) is one
 * byte per item, an enum mk_verify_result.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/crypto.h>

#include "box/box_int.h"
#include "meterkey/msg_box.h"

/* Entries of the cache a box keeps while open: a verified key record's
 * facts and its key (master key in Brass, token key in Tin), and the token
 * key of one period with its CMAC subkeys and its cipher context, keyed
 * once (mk_cmac_key; the context and its key schedule on OpenSSL's heap,
 * docs/internals/box-process.md). One a device and domain: a box
 * serving two domains holds a fleet of up to 32,767 meters (bench_verify's
 * 10,000 meters thrashed a cache of 16,384, each record checked and its
 * key unwrapped again at every sighting); past it, split the fleet across
 * boxes. The most an entry index (uint16_t) can name. */
#define VCACHE_MAX 65535
/* Buckets of the index of cached entries by their record's bytes (a power
 * of two): a request names each key by its whole record, and finding the
 * entry by those bytes spares decoding the record of every item. */
#define VCACHE_BUCKETS 65536
#define VCACHE_NONE UINT16_MAX

struct vkey {
	/* What each item reads (its reference found, its checks, its token),
	 * together at the front: a fleet's entries are cold in the caches. */
	uint8_t hash[MK_VERIFY_REF_LEN]; /* SHA-256 of rec: what a reference names */
	uint64_t proven;                 /* the signed head its record was shown newest under (0: none) */
	uint16_t hchain;                 /* the next entry of hash's bucket, or VCACHE_NONE */
	char domain[MK_DOMAIN_ID_MAX + 1];
	uint8_t used, active;
	uint8_t token_key;               /* key is the token key of period (Tin) */
	uint32_t first_day, end_day;     /* registration day (or period start), period end */
	uint32_t last_day;               /* an OBSOLETE key's retirement day, else UINT32_MAX */
	uint32_t period;                 /* of tkey */
	uint32_t tfirst, tend;           /* Brass: period's days (first, the day after the last) */
	int64_t fresh_until;             /* Tin: the token key record's freshness end */
	struct mk_cmac_key tkey;         /* the token key of period (x NULL: none yet) */
	char product_code[MK_IDENT_MAX + 1], mfg_seq[MK_IDENT_MAX + 1];
	char indicia_serial[MK_IDENT_MAX + 1];
	/* the rest: read when a record is checked or its entry replaced */
	uint64_t key_id;
	uint8_t sig[MK_ECDSA_SIG_LEN];   /* identifies the record version */
	uint8_t master[32];              /* Tin: SHA-256 of the master key record its status is from */
	uint8_t key[MK_MASTER_KEY_LEN];
	uint8_t *rec;                    /* the record's bytes as the request carried them */
	size_t rec_len;
	uint32_t bucket;                 /* of rec in the index */
	uint16_t chain;                  /* the next entry of the bucket, or VCACHE_NONE */
	uint16_t kchain;                 /* the next entry of key_id's bucket (used entries), or VCACHE_NONE */
};

/* A Brass or Tin box's state (b->ks): the cache, made at its first Verify. */
#define VC(b) ((struct vcache *)(b)->ks)

struct vcache {
	size_t next;
	size_t taken; /* entries ever taken, e[0..taken): the rest were never written */
	struct box_verified *ver; /* the records verified in earlier sessions (Brass; NULL until read) */
	int ver_read;             /* read (or tried) */
	size_t checked, remembered; /* record signatures verified, and found in ver instead */
	struct mk_keymap_nodes *nodes; /* of the key maps, under the heads' roots its proofs gave */
	struct mk_cmac_keys *cm; /* the ciphers the token keys' contexts are made of */
	uint16_t head[VCACHE_BUCKETS]; /* first entry of each bucket, or VCACHE_NONE */
	uint16_t hhead[VCACHE_BUCKETS]; /* the same by the record's hash (references) */
	uint16_t khead[VCACHE_BUCKETS]; /* the same by key ID (records not seen in these bytes) */
	struct vkey e[VCACHE_MAX];
};

/* The cache holds clear keys: its pages are kept out of core dumps and, as
 * far as the memory lock limit allows, out of swap: locked as they are
 * first written (MLOCK_ONFAULT), not all 20 MiB at once, so that a box
 * opened for a few batches (meterkeyd's verifier per batch, a CLI run)
 * pays for the entries it fills, not for the whole cache. (With the test build's
 * MK_BOX_TEST_DUMPABLE=2 they are kept in, so that the core-dump test
 * shows its search finds a key.) */
static struct vcache *vcache_new(void)
{
	struct vcache *c = mmap(NULL, sizeof(*c), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (c == MAP_FAILED)
		return NULL;
	if (box_test_dumpable() < 2)
		(void)madvise(c, sizeof(*c), MADV_DONTDUMP);
	if (mlock2(c, sizeof(*c), MLOCK_ONFAULT) != 0)
		(void)mlock(c, sizeof(*c)); /* best effort: RLIMIT_MEMLOCK (a kernel without ONFAULT: all now) */
	for (size_t i = 0; i < VCACHE_BUCKETS; i++)
		c->head[i] = c->hhead[i] = c->khead[i] = VCACHE_NONE;
	if (mk_cmac_keys_new(&c->cm) != MK_OK) {
		(void)munlock(c, sizeof(*c));
		munmap(c, sizeof(*c));
		return NULL;
	}
	return c;
}

/* The bucket of a record's bytes: its last 16 bytes (the signature ends
 * every record) and its length, mixed. Only a hint: a hit is the same
 * bytes, compared in full. */
static uint32_t rec_bucket(const uint8_t *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
	size_t from = n > 16 ? n - 16 : 0;

	for (size_t i = from; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return (uint32_t)(h ^ (h >> 29)) & (VCACHE_BUCKETS - 1);
}

/* The bucket of a record's hash. */
static uint32_t hash_bucket(const uint8_t h[MK_VERIFY_REF_LEN])
{
	return ((uint32_t)h[0] << 8 | h[1]) & (VCACHE_BUCKETS - 1);
}

/* The bucket of a key ID. */
static uint32_t key_bucket(uint64_t key_id)
{
	return (uint32_t)((key_id * 0x9e3779b97f4a7c15ull) >> 40) & (VCACHE_BUCKETS - 1);
}

/* Unlinks entry k from its buckets: by key ID (a used entry), by its
 * record's bytes and hash (when it kept them). */
static void vcache_unlink(struct vcache *c, struct vkey *k)
{
	uint16_t idx = (uint16_t)(k - c->e);

	if (k->used)
		for (uint16_t *pp = &c->khead[key_bucket(k->key_id)]; *pp != VCACHE_NONE; pp = &c->e[*pp].kchain)
			if (*pp == idx) {
				*pp = k->kchain;
				break;
			}
	if (k->rec == NULL)
		return;
	for (uint16_t *pp = &c->head[k->bucket]; *pp != VCACHE_NONE; pp = &c->e[*pp].chain)
		if (*pp == idx) {
			*pp = k->chain;
			break;
		}
	for (uint16_t *pp = &c->hhead[hash_bucket(k->hash)]; *pp != VCACHE_NONE; pp = &c->e[*pp].hchain)
		if (*pp == idx) {
			*pp = k->hchain;
			break;
		}
}

static void vkey_clear(struct vkey *k)
{
	if (k->rec != NULL) {
		OPENSSL_cleanse(k->rec, k->rec_len);
		free(k->rec);
	}
	mk_cmac_key_clear(&k->tkey);
	OPENSSL_cleanse(k, sizeof(*k));
}

static void vcache_free(struct vcache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->taken; i++) /* the entries never taken hold nothing */
		vkey_clear(&c->e[i]);
	mk_cmac_keys_free(c->cm);
	mk_keymap_nodes_free(c->nodes);
	(void)munlock(c, sizeof(*c));
	munmap(c, sizeof(*c));
}

static int verified_path(const struct mk_box *b, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s.verified", b->store_dir, b->id);

	return n > 0 && (size_t)n < cap;
}

/* The session ends: the records it verified are written for the next
 * (a failure only costs that session time). */
void box_vcache_free(struct mk_box *b)
{
	struct vcache *c = VC(b);
	char path[PATH_MAX];

	if (c != NULL && c->ver != NULL) {
		if (b->enabled && b->store_dir != NULL && verified_path(b, path, sizeof(path)))
			(void)!box_verified_save(c->ver, path, b->id, b->oc);
		box_verified_free(c->ver);
		c->ver = NULL;
	}
	vcache_free(c);
	b->ks = NULL;
}

/* Whether two domain IDs are the same: a few characters, compared here
 * rather than through a call to strcmp for every reference of a request. */
static inline int id_eq(const char *a, const char *b)
{
	while (*a != '\0' && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

/* The entry cached from exactly these record bytes for domain, if any: the
 * entry cache_find would give after decoding them, as the bytes decoded to
 * its domain, key ID and signature when it was made. */
static struct vkey *cache_find_bytes(struct vcache *c, const char *domain, const uint8_t *p, size_t n)
{
	for (uint16_t i = c->head[rec_bucket(p, n)]; i != VCACHE_NONE; i = c->e[i].chain) {
		struct vkey *k = &c->e[i];

		if (k->rec_len == n && memcmp(k->rec, p, n) == 0 && id_eq(k->domain, domain))
			return k;
	}
	return NULL;
}

/* The entry whose record has this SHA-256, for domain, if any: what a
 * reference in a request names (request_keys). */
static struct vkey *cache_find_hash(struct vcache *c, const char *domain, const uint8_t *h)
{
	for (uint16_t i = c->hhead[hash_bucket(h)]; i != VCACHE_NONE; i = c->e[i].hchain) {
		struct vkey *k = &c->e[i];

		/* a record's hash is public, as the record is: no need of a
		 * constant-time compare on every item's reference */
		if (memcmp(k->hash, h, MK_VERIFY_REF_LEN) == 0 && id_eq(k->domain, domain))
			return k;
	}
	return NULL;
}

/* Indexes a new entry by its key ID, keeps its record bytes and indexes
 * it by them and by their hash (hash, when the caller has it; else
 * computed). A failure of the latter leaves it found by decoding only (a
 * reference to it is refused, and the host sends it whole). */
static void cache_index(struct vcache *c, struct vkey *k, const uint8_t *p, size_t n, const uint8_t *hash)
{
	k->kchain = c->khead[key_bucket(k->key_id)];
	c->khead[key_bucket(k->key_id)] = (uint16_t)(k - c->e);
	if (hash != NULL)
		memcpy(k->hash, hash, MK_VERIFY_REF_LEN);
	else if (mk_sha256(p, n, k->hash) != MK_OK)
		return;
	if ((k->rec = malloc(n)) == NULL)
		return;
	memcpy(k->rec, p, n);
	k->rec_len = n;
	k->bucket = rec_bucket(p, n);
	k->chain = c->head[k->bucket];
	c->head[k->bucket] = (uint16_t)(k - c->e);
	k->hchain = c->hhead[hash_bucket(k->hash)];
	c->hhead[hash_bucket(k->hash)] = (uint16_t)(k - c->e);
}

/* The entry of this version of record key_id (its signature) for domain,
 * if any. */
static struct vkey *cache_find(struct vcache *c, const char *domain, uint64_t key_id,
                               const uint8_t *sig)
{
	for (uint16_t i = c->khead[key_bucket(key_id)]; i != VCACHE_NONE; i = c->e[i].kchain) {
		struct vkey *k = &c->e[i];

		if (k->key_id == key_id && id_eq(k->domain, domain) &&
		    memcmp(k->sig, sig, MK_ECDSA_SIG_LEN) == 0)
			return k;
	}
	return NULL;
}

/* A free entry, or the oldest replaced (round robin): bounded memory. An
 * entry never taken holds nothing and is not read: its page's first touch
 * is then a write (a page first read is the zero page, its first write a
 * second fault and a TLB flush of every CPU the process runs on). */
static struct vkey *cache_slot(struct vcache *c)
{
	struct vkey *k = &c->e[c->next];
	int fresh = c->next >= c->taken;

	if (fresh)
		c->taken = c->next + 1;
	c->next = (c->next + 1) % VCACHE_MAX;
	if (!fresh) {
		if (k->used || k->rec != NULL)
			vcache_unlink(c, k);
		vkey_clear(k);
	}
	k->used = 1;
	return k;
}

/* The record's master key, under the domain secret key (INSTALLED) or its
 * country's (ACTIVE, OBSOLETE), the header bound in. */
static enum mk_err master_key(const struct box_domain *d, const struct mk_key_record *rec,
                              uint8_t out[static MK_MASTER_KEY_LEN])
{
	const struct mk_secret *k = box_record_secret(d, rec);
	struct mk_secret *key = NULL;
	enum mk_err e;

	if (k == NULL)
		return MK_RC_DECRYPT_FAILED;
	if ((e = box_open_blob(rec, k, &key)) == MK_OK)
		memcpy(out, mk_secret_cdata(key), MK_MASTER_KEY_LEN);
	mk_secret_free(key);
	return e;
}

/* Whether rec (its bytes' SHA-256 rec_hash, NULL when it could not be
 * had) is signed by a Brass box of d: verified with d's key, or found
 * verified in an earlier session (verified.c). */
static enum mk_err brass_signed(struct mk_box *b, const struct box_domain *d, const uint8_t *rec_hash,
                                const struct mk_key_record *rec)
{
	struct vcache *c = VC(b);
	char path[PATH_MAX];
	uint8_t dg[32];
	int have;

	if (rec->signer[0] != MK_BOX_BRASS)
		return MK_RC_SIGNATURE_INVALID;
	if (!c->ver_read) {
		c->ver_read = 1;
		if (b->enabled && b->store_dir != NULL && verified_path(b, path, sizeof(path)))
			(void)!box_verified_load(path, b->id, b->oc, &c->ver);
	}
	have = c->ver != NULL && rec_hash != NULL && box_verified_digest(d->sign_pub, rec_hash, dg) == MK_OK;
	if (have && box_verified_has(c->ver, dg)) {
		c->remembered++;
		return MK_OK;
	}
	c->checked++;
	if (box_verify_record(d->sign, rec) != MK_OK)
		return MK_RC_SIGNATURE_INVALID;
	if (have)
		(void)!box_verified_add(c->ver, dg); /* no memory: checked again next session */
	return MK_OK;
}

void box_verify_counts(const struct mk_box *b, size_t *checked, size_t *remembered)
{
	const struct vcache *c = VC(b);

	*checked = c != NULL ? c->checked : 0;
	*remembered = c != NULL ? c->remembered : 0;
}

/* Brass: a key record of the domain, verified once per version (its
 * signature identifies it) and cached with its master key when ACTIVE or
 * OBSOLETE. A
 * record that does not verify refuses the whole request: the archive was
 * changed behind the boxes' back. */
static enum mk_err brass_key(struct mk_box *b, const struct box_domain *d, const uint8_t *p, size_t n,
                             struct vkey **kp)
{
	struct mk_key_record *rec;
	uint8_t hash[MK_VERIFY_REF_LEN];
	int have_hash;
	struct vkey *k;
	enum mk_err e;

	if ((*kp = cache_find_bytes(VC(b), d->id, p, n)) != NULL)
		return MK_OK;
	if ((rec = calloc(1, sizeof(*rec))) == NULL)
		return MK_ERR_NOMEM;
	if (mk_key_record_decode(p, n, rec) != MK_OK) {
		e = MK_RC_PARAM_MISMATCH;
		goto out;
	}
	if (strcmp(rec->domain, d->id) != 0) {
		e = MK_RC_WRONG_DOMAIN;
		goto out;
	}
	if (rec->sig_len != MK_ECDSA_SIG_LEN) {
		e = MK_RC_SIGNATURE_INVALID;
		goto out;
	}
	if ((*kp = cache_find(VC(b), d->id, rec->key_id, rec->sig)) != NULL) {
		e = MK_OK;
		goto out;
	}
	/* a version no box of the domain signed, or one Oak signed (NEW); the
	 * bytes hashed once, for the remembered records and the cache's index */
	have_hash = mk_sha256(p, n, hash) == MK_OK;
	if ((e = brass_signed(b, d, have_hash ? hash : NULL, rec)) != MK_OK)
		goto out;
	k = cache_slot(VC(b));
	memcpy(k->domain, rec->domain, sizeof(k->domain));
	k->key_id = rec->key_id;
	memcpy(k->sig, rec->sig, sizeof(k->sig));
	memcpy(k->product_code, rec->product_code, sizeof(k->product_code));
	memcpy(k->mfg_seq, rec->mfg_seq, sizeof(k->mfg_seq));
	memcpy(k->indicia_serial, rec->indicia_serial, sizeof(k->indicia_serial));
	k->first_day = mk_indicium_day(rec->times.meter_registration);
	k->end_day = UINT32_MAX;
	/* mail in the stream: an OBSOLETE key still verifies indicia dated on
	 * or before its retirement day, which its signed record carries (the
	 * time of its last status change); later ones are refused below */
	k->active = rec->status == MK_KEY_ACTIVE || rec->status == MK_KEY_OBSOLETE;
	k->last_day = rec->status == MK_KEY_OBSOLETE ? mk_indicium_day(rec->status_time) : UINT32_MAX;
	if (k->active && (e = master_key(d, rec, k->key)) != MK_OK) {
		vkey_clear(k);
		goto out;
	}
	cache_index(VC(b), k, p, n, have_hash ? hash : NULL);
	*kp = k;
	e = MK_OK;
out:
	OPENSSL_cleanse(rec, sizeof(*rec));
	free(rec);
	return e;
}

/* Tin: a token key record of the domain, signed by its Brass boxes, the
 * token key unwrapped with the domain's Tin confidentiality key. */
static enum mk_err tin_key(struct mk_box *b, const struct box_domain *d, const uint8_t *p, size_t n,
                           struct vkey **kp)
{
	struct mk_token_key_record *rec = NULL;
	struct mk_buf *tbs = NULL, *info = NULL;
	struct mk_secret *tk = NULL;
	const char *dash;
	struct vkey *k;
	enum mk_err e;

	if ((*kp = cache_find_bytes(VC(b), d->id, p, n)) != NULL)
		return MK_OK;
	rec = calloc(1, sizeof(*rec));
	tbs = mk_buf_new(4096);
	info = mk_buf_new(256);
	if (rec == NULL || tbs == NULL || info == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if (mk_token_key_record_decode(p, n, rec) != MK_OK || (dash = strchr(rec->device, '-')) == NULL ||
	    rec->period_start < 0 || rec->period_end > (int64_t)UINT32_MAX * 86400) {
		e = MK_RC_PARAM_MISMATCH;
		goto out;
	}
	if (strcmp(rec->domain, d->id) != 0) {
		e = MK_RC_WRONG_DOMAIN;
		goto out;
	}
	if (rec->sig_len != MK_ECDSA_SIG_LEN) {
		e = MK_RC_SIGNATURE_INVALID;
		goto out;
	}
	if ((*kp = cache_find(VC(b), d->id, rec->key_id, rec->sig)) != NULL) {
		e = MK_OK;
		goto out;
	}
	if (rec->signer[0] != MK_BOX_BRASS || mk_token_key_record_encode_tbs(rec, tbs) != MK_OK ||
	    mk_ecdsa_verify(d->brass_auth, mk_buf_data(tbs), mk_buf_len(tbs), rec->sig) != MK_OK) {
		e = MK_RC_SIGNATURE_INVALID;
		goto out;
	}
	if ((e = box_wrap_info(info, "token key", d->id, rec->key_id, rec->device)) != MK_OK)
		goto out;
	if (mk_ec_unwrap(d->conf, mk_buf_data(info), mk_buf_len(info), rec->blob, rec->blob_len, &tk) != MK_OK ||
	    mk_secret_len(tk) != MK_MASTER_KEY_LEN) {
		e = MK_RC_DECRYPT_FAILED;
		goto out;
	}
	k = cache_slot(VC(b));
	memcpy(k->domain, rec->domain, sizeof(k->domain));
	k->key_id = rec->key_id;
	memcpy(k->sig, rec->sig, sizeof(k->sig));
	snprintf(k->product_code, sizeof(k->product_code), "%.*s", (int)(dash - rec->device), rec->device);
	snprintf(k->mfg_seq, sizeof(k->mfg_seq), "%s", dash + 1);
	k->first_day = mk_indicium_day(rec->period_start);
	k->end_day = mk_indicium_day(rec->period_end + 86399); /* the day after the last */
	k->active = 1;
	k->last_day = UINT32_MAX;
	k->fresh_until = rec->fresh_until; /* 0 in a record made before freshness: stale */
	k->token_key = 1;
	k->period = mk_token_period(k->first_day);
	memcpy(k->key, mk_secret_cdata(tk), MK_MASTER_KEY_LEN);
	if ((e = mk_cmac_key_set(VC(b)->cm, k->key, MK_MASTER_KEY_LEN, &k->tkey)) != MK_OK) {
		vkey_clear(k);
		goto out;
	}
	cache_index(VC(b), k, p, n, NULL);
	*kp = k;
	e = MK_OK;
out:
	mk_secret_free(tk);
	free(rec);
	mk_buf_free(tbs);
	mk_buf_free(info);
	return e;
}

/* The n bytes at s (not NUL-terminated) are the string z. */
static int str_is(const char *s, size_t n, const char *z)
{
	/* strncmp(s, z, n) == 0, inline: the fields are a few characters,
	 * four of them an item, where the library call's set-up costs more
	 * than the compare */
	for (size_t i = 0; i < n; i++) {
		if (s[i] != z[i])
			return 0;
		if (z[i] == '\0')
			break;
	}
	return z[n] == '\0';
}

/* One item against its key: the checks in the order of Fig. 28. now is the
 * box's own clock, read once for the request (the date window, Tin
 * freshness). The indicium is read in place, framed (mk_indicium_frame):
 * its tokens cover p[0..data_len). */
static enum mk_verify_result check_framed(const struct box_domain *d, struct mk_cmac_keys *cm, struct vkey *k,
                                          const uint8_t *p, const struct mk_indicium_view *v, int64_t now)
{
	const struct mk_indicium_view ind = *v;
	const uint8_t *token;
	uint8_t len;
	uint32_t period;

	/* one domain in both roles: its second token would never be checked */
	if (ind.len[MK_IV_VENDOR] == ind.len[MK_IV_POSTAL] &&
	    memcmp(ind.str[MK_IV_VENDOR], ind.str[MK_IV_POSTAL], ind.len[MK_IV_VENDOR]) == 0)
		return MK_VR_MALFORMED;
	if (str_is(ind.str[MK_IV_VENDOR], ind.len[MK_IV_VENDOR], d->id)) {
		token = ind.vendor_token;
		len = ind.vendor_token_len;
	} else if (str_is(ind.str[MK_IV_POSTAL], ind.len[MK_IV_POSTAL], d->id)) {
		token = ind.postal_token;
		len = ind.postal_token_len;
	} else {
		return MK_VR_MALFORMED; /* no token of this domain */
	}
	if (len != d->token_len)
		return MK_VR_MALFORMED;
	/* the domain's date window around the box's clock, whatever the key
	 * (docs/indicium.md §7b): today - verify days to today + ahead days */
	if ((uint64_t)ind.date + d->verify_days < mk_indicium_day(now) ||
	    ind.date > (uint64_t)mk_indicium_day(now) + d->ahead_days)
		return MK_VR_DATE_OUT_OF_RANGE;
	if (k == NULL || !str_is(ind.str[MK_IV_PRODUCT], ind.len[MK_IV_PRODUCT], k->product_code) ||
	    !str_is(ind.str[MK_IV_MSN], ind.len[MK_IV_MSN], k->mfg_seq) ||
	    (!k->token_key && !str_is(ind.str[MK_IV_SERIAL], ind.len[MK_IV_SERIAL], k->indicia_serial)))
		return MK_VR_UNKNOWN_DEVICE;
	/* Tin: a token key record past its freshness vouches for nothing (a
	 * retirement reaches Tin at the next record, never later) */
	if (k->token_key && now >= k->fresh_until)
		return MK_VR_STATUS_STALE;
	if (!k->active || ind.date > k->last_day)
		return MK_VR_KEY_NOT_ACTIVE;
	if (ind.date < k->first_day)
		return MK_VR_BEFORE_REGISTRATION;
	if (ind.date >= k->end_day)
		return MK_VR_UNKNOWN_DEVICE; /* a token key of another period */
	/* Brass: the token key of the indicium's period (its month), derived
	 * when the one held is of another (its days kept beside it: the date
	 * compared, the month not computed per item) */
	if (!k->token_key && (k->tkey.x == NULL || ind.date < k->tfirst || ind.date >= k->tend)) {
		uint8_t tk[MK_MASTER_KEY_LEN];

		period = mk_token_period(ind.date);
		if (mk_token_key_derive(k->key, d->id, k->product_code, k->mfg_seq, period, tk) != MK_OK ||
		    mk_cmac_key_set(cm, tk, sizeof(tk), &k->tkey) != MK_OK) {
			OPENSSL_cleanse(tk, sizeof(tk));
			return MK_VR_BAD_TOKEN;
		}
		OPENSSL_cleanse(tk, sizeof(tk));
		k->period = period;
		mk_token_period_days(period, &k->tfirst, &k->tend);
	}
	/* The tokens cover the canonical data, which the binary form carries
	 * first. */
	/* Tin: a token key whose context a failure dropped, set again */
	if (k->token_key && k->tkey.x == NULL && mk_cmac_key_set(cm, k->key, MK_MASTER_KEY_LEN, &k->tkey) != MK_OK)
		return MK_VR_BAD_TOKEN;
	return mk_cmac_keys_verify(&k->tkey, p, ind.data_len, token, len) == MK_OK ? MK_VR_GOOD : MK_VR_BAD_TOKEN;
}

/*
 * One item: framed, checked (check_framed), and judged by the indicium's
 * rules (mk_indicium_view_valid, what mk_indicium_decode applies) for any
 * verdict but good: an item that breaks them is malformed, whatever else
 * is wrong with it, as when it was decoded first. A good token over bytes
 * that break them would take the device's key (its meter encodes only
 * valid indicia), and the verifier validated each indicium when it
 * encoded it: the rules are judged once per indicium, not once per token.
 */
static enum mk_verify_result check_item(const struct box_domain *d, struct mk_cmac_keys *cm, struct vkey *k,
                                        const uint8_t *p, size_t n, int64_t now)
{
	struct mk_indicium_view ind;
	enum mk_verify_result r;

	if (mk_indicium_frame(p, n, &ind) != MK_OK)
		return MK_VR_MALFORMED;
	r = check_framed(d, cm, k, p, &ind, now);
	return r != MK_VR_GOOD && !mk_indicium_view_valid(&ind) ? MK_VR_MALFORMED : r;
}

/* ---- The newest version, under the signed head --------------------------------------------- */

/* p[0..n) (record key_id) is the newest version under head h: its leaf,
 * with the proof, gives the head's map root. Climbed up to the first node
 * a proof climbed before under that root (c->nodes, mk_keymap_check): a
 * fleet's records share all but the lowest nodes of their paths. */
static enum mk_err newest(struct vcache *c, uint64_t key_id, const uint8_t *p, size_t n, const uint8_t *proof,
                          size_t pn, const struct mk_head *h)
{
	uint8_t leaf[32], root[32];

	if (mk_keymap_leaf(key_id, p, n, leaf) != MK_OK)
		return MK_RC_NOT_NEWEST;
	if (c->nodes != NULL || mk_keymap_nodes_new(&c->nodes) == MK_OK)
		return mk_keymap_check(c->nodes, key_id, leaf, proof, pn, h->map_root) == MK_OK ? MK_OK : MK_RC_NOT_NEWEST;
	if (mk_keymap_root(key_id, leaf, proof, pn, root) != MK_OK || CRYPTO_memcmp(root, h->map_root, 32) != 0)
		return MK_RC_NOT_NEWEST; /* no memory for the nodes: the whole path */
	return MK_OK;
}

/* Tin: the status of k's key from its master key record p[0..n), which
 * a Brass box of the domain signed and which is the newest version under
 * h: ACTIVE verifies, OBSOLETE up to its retirement day, nothing else. */
static enum mk_err tin_status(struct vcache *c, const struct box_domain *d, struct vkey *k, const uint8_t *p,
                              size_t n, const uint8_t *proof, size_t pn, const struct mk_head *h)
{
	struct mk_key_record *rec;
	uint8_t hash[32];
	enum mk_err e;

	if (mk_sha256(p, n, hash) != MK_OK)
		return MK_ERR_CRYPTO;
	if (k->proven == h->seq && CRYPTO_memcmp(hash, k->master, 32) == 0)
		return MK_OK;
	if ((rec = calloc(1, sizeof(*rec))) == NULL)
		return MK_ERR_NOMEM;
	if (mk_key_record_decode(p, n, rec) != MK_OK || rec->key_id != k->key_id ||
	    strcmp(rec->product_code, k->product_code) != 0 || strcmp(rec->mfg_seq, k->mfg_seq) != 0) {
		e = MK_RC_PARAM_MISMATCH;
		goto out;
	}
	if (strcmp(rec->domain, d->id) != 0) {
		e = MK_RC_WRONG_DOMAIN;
		goto out;
	}
	if (rec->signer[0] != MK_BOX_BRASS || rec->sig_len != MK_ECDSA_SIG_LEN ||
	    box_verify_record(d->brass_auth, rec) != MK_OK) {
		e = MK_RC_SIGNATURE_INVALID;
		goto out;
	}
	if ((e = newest(c, rec->key_id, p, n, proof, pn, h)) != MK_OK)
		goto out;
	k->active = rec->status == MK_KEY_ACTIVE || rec->status == MK_KEY_OBSOLETE;
	k->last_day = rec->status == MK_KEY_OBSOLETE ? mk_indicium_day(rec->status_time) : UINT32_MAX;
	memcpy(k->master, hash, 32);
	k->proven = h->seq;
out:
	free(rec);
	return e;
}

/* Fetches the entries a request's references name towards the cache: the
 * buckets' heads, then their first entries' front (what the lookup and
 * the items read, up to the identities). With a fleet each is a cache miss that
 * cache_find_hash would take one after the other; asked for together they
 * overlap. Only a hint: the list is read again, and checked, by
 * request_keys, which finds the same entries without it. */
static void prefetch_refs(const struct vcache *c, const uint8_t *keys, size_t keys_len)
{
	uint32_t bk[MK_VERIFY_KEYS_MAX];
	struct mk_tlv_reader r;
	const uint8_t *p;
	size_t n, count = 0, nb = 0;

	mk_tlv_reader_init(&r, keys, keys_len);
	while (mk_msg_list_next(&r, &count, MK_VERIFY_KEYS_MAX, &p, &n) == MK_OK && p != NULL)
		if (n == MK_VERIFY_REF_LEN) {
			bk[nb] = hash_bucket(p);
			__builtin_prefetch(&c->hhead[bk[nb++]]);
		}
	for (size_t i = 0; i < nb; i++) {
		uint16_t at = c->hhead[bk[i]];

		if (at != VCACHE_NONE) {
			const char *from = (const char *)&c->e[at], *to = (const char *)&c->e[at].indicia_serial[MK_IDENT_MAX];

			for (; from < to; from += 64)
				__builtin_prefetch(from);
			__builtin_prefetch(to);
		}
	}
}

/* The key records of a request, each with its proof (and Tin's master key
 * record) under the request's head: any that fails refuses the request. */
static enum mk_err request_keys(struct mk_box *b, struct box_domain *d, const struct mk_box_verify_req *in,
                                struct vkey **keys, size_t *nkeysp)
{
	struct mk_tlv_reader kl, pl, ml;
	struct mk_head h;
	const uint8_t *p, *pr, *m = NULL;
	size_t n, prn, mn = 0, nkeys = 0, np, nm;
	int tin = b->type == MK_BOX_TIN;
	enum mk_err e;

	prefetch_refs(VC(b), in->keys, in->keys_len);
	mk_tlv_reader_init(&kl, in->keys, in->keys_len);
	mk_tlv_reader_init(&pl, in->has_proofs ? in->proofs : NULL, in->has_proofs ? in->proofs_len : 0);
	mk_tlv_reader_init(&ml, in->has_records ? in->records : NULL, in->has_records ? in->records_len : 0);
	for (;;) {
		size_t at = nkeys;

		if ((e = mk_msg_list_next(&kl, &at, MK_VERIFY_KEYS_MAX, &p, &n)) != MK_OK)
			return e;
		if (p == NULL)
			break;
		if (n == 0)
			return MK_ERR_TLV_VALUE; /* a record of 1 byte or more */
		/* a key record counts only under a signed head no older than the
		 * newest this box knows, with its proof beside it */
		if (nkeys == 0) {
			if (!in->has_head || !in->has_proofs || (tin && !in->has_records))
				return MK_RC_NOT_NEWEST;
			if ((e = box_head_check(d, tin ? d->brass_auth : d->sign, in->head, in->head_len, &h, 0)) != MK_OK)
				return e;
		}
		np = nm = nkeys;
		if ((e = mk_msg_list_next(&pl, &np, MK_VERIFY_KEYS_MAX, &pr, &prn)) != MK_OK ||
		    (tin && (e = mk_msg_list_next(&ml, &nm, MK_VERIFY_KEYS_MAX, &m, &mn)) != MK_OK))
			return e;
		if (pr == NULL || (tin && m == NULL))
			return MK_RC_NOT_NEWEST;
		if (n == MK_VERIFY_REF_LEN) {
			/* A reference: a record this box verified, and showed newest
			 * under a head of this number, earlier in the session (its
			 * proof and Tin's master key record stay empty). Any other is
			 * refused as unknown, and the host sends the record whole. */
			keys[nkeys] = cache_find_hash(VC(b), d->id, p);
			if (keys[nkeys] == NULL || keys[nkeys]->proven != h.seq || prn != 0 || (tin && mn != 0))
				return MK_RC_RECORD_UNKNOWN;
			nkeys++;
			continue;
		}
		e = tin ? tin_key(b, d, p, n, &keys[nkeys]) : brass_key(b, d, p, n, &keys[nkeys]);
		if (e != MK_OK)
			return e;
		if (tin)
			e = tin_status(VC(b), d, keys[nkeys], m, mn, pr, prn, &h);
		else if (keys[nkeys]->proven != h.seq &&
		         (e = newest(VC(b), keys[nkeys]->key_id, p, n, pr, prn, &h)) == MK_OK)
			keys[nkeys]->proven = h.seq;
		if (e != MK_OK)
			return e;
		nkeys++;
	}
	*nkeysp = nkeys;
	return MK_OK;
}

/* How many keys past an item's own have their cipher contexts asked
 * towards the cache. */
#define KEYS_AHEAD 8

/* Asks for the cipher contexts of the keys up to KEYS_AHEAD past key ki
 * (1-based; 0 none) towards the cache, those not asked for yet (*pf of
 * them were). A host sends a request's items grouped by key, the keys in
 * order of first use, so these are the next items' keys: in a fleet each
 * is a cache miss, which asked for a few items ahead overlaps with this
 * item's work rather than stalling the next one. Only a hint. */
static void prefetch_keys(struct vkey *const *keys, size_t nkeys, size_t ki, size_t *pf)
{
	while (*pf < nkeys && *pf < ki + KEYS_AHEAD)
		mk_cmac_key_prefetch(&keys[(*pf)++]->tkey);
}

/* Verify (Brass and Tin): the keys first (any bad one refuses the request),
 * then each item; one result byte per item. */
enum mk_err box_cmd_verify(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *params,
                           struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct box_domain *d = box_find_domain(b, req->domain);
	struct vkey *keys[MK_VERIFY_KEYS_MAX];
	uint8_t out[MK_VERIFY_BATCH_MAX];
	struct mk_box_verify_req in;
	struct mk_box_verify_res res;
	struct mk_msg_verify_item item;
	struct mk_tlv_reader il;
	const uint8_t *p;
	size_t n, nkeys = 0, nitems = 0, pf = 0;
	int64_t now = box_clock();
	enum mk_err e;

	if (VC(b) == NULL && (b->ks = vcache_new()) == NULL)
		return MK_ERR_NOMEM;
	if ((e = mk_box_verify_req_get(params, &in)) != MK_OK)
		return e;
	if ((e = request_keys(b, d, &in, keys, &nkeys)) != MK_OK)
		return e;
	/* A newer head than the box knew is kept in its sealed state, so that
	 * an archive rolled back behind it is refused after a restart too
	 * (a box that cannot write its state still refuses it until then). */
	if (d->head_new && box_save(b) == MK_OK)
		d->head_new = 0;
	mk_tlv_reader_init(&il, in.items, in.items_len);
	if (in.has_packed) {
		/* the items packed (msg_box.h), the list 02 then empty */
		const uint8_t *q = in.packed, *end = in.packed + in.packed_len;

		if (in.items_len != 0) {
			e = MK_ERR_CMD_PARAM_COUNT;
			goto out;
		}
		while (q != end) {
			size_t ki, len;

			if (nitems == MK_VERIFY_BATCH_MAX) {
				e = MK_ERR_CMD_PARAM_COUNT;
				goto out;
			}
			if ((size_t)(end - q) < MK_VERIFY_PACKED_HEADER) {
				e = MK_ERR_CMD_PARAM_SYNTAX;
				goto out;
			}
			ki = (size_t)q[0] << 8 | q[1];
			len = (size_t)q[2] << 8 | q[3];
			q += MK_VERIFY_PACKED_HEADER;
			if (len == 0 || len > MK_INDICIUM_BIN_MAX || len > (size_t)(end - q) || ki > nkeys) {
				e = MK_ERR_CMD_PARAM_SYNTAX;
				goto out;
			}
			prefetch_keys(keys, nkeys, ki, &pf);
			out[nitems++] = (uint8_t)check_item(d, VC(b)->cm, ki == 0 ? NULL : keys[ki - 1], q, len, now);
			q += len;
		}
	}
	for (;;) {
		size_t at = nitems;

		if ((e = mk_msg_list_next(&il, &at, MK_VERIFY_BATCH_MAX, &p, &n)) != MK_OK)
			goto out;
		if (p == NULL)
			break;
		if ((e = mk_msg_verify_item_decode(p, n, &item)) != MK_OK)
			goto out;
		if (item.key_index > nkeys) {
			e = MK_ERR_CMD_PARAM_SYNTAX;
			goto out;
		}
		prefetch_keys(keys, nkeys, item.key_index, &pf);
		out[nitems++] = (uint8_t)check_item(d, VC(b)->cm, item.key_index == 0 ? NULL : keys[item.key_index - 1],
		                                    item.indicium, item.indicium_len, now);
	}
	res.results = out;
	res.results_len = nitems;
	e = mk_box_verify_res_put(result, &res);
out:
	return e;
}
