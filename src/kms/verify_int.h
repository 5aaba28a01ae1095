/*
 * Private to the verifier (src/kms/verify*.c): its state and the
 * functions its files share. One file per responsibility
 * (docs/internals/verify.md, "Where the code is"), each calling only
 * files listed after it:
 *
 *   verify.c        the result names; a verifier's life (new, free, the
 *                   preferred box, the site)
 *   verify_text.c   mk_verify_text: a text line, and the correction of one
 *                   misread character; many lines, pipelined or not
 *   verify_pipe.c   mk_verify_submit and _finish: the index writer thread
 *   verify_batch.c  mk_verify_batch: the key record cache, the requests to
 *                   the boxes
 *   verify_seen.c   a batch's sightings in the duplicate index
 *   verify_sig.c    a signed indicium's signature: the certificate chain
 *                   from the home, the operation key cache
 *   verify_domain.c a domain's state, its box opened on first use
 *
 * Apart from kms_int.h because the verifier is a client of the KMS's
 * public API (kms.h: mk_kms_box_call, mk_kms_open_box, mk_kms_archive, ...)
 * and never of struct mk_kms, as a verifier in another program would be;
 * and the flows have no business with its caches (a domain's is about a
 * megabyte). What the hot path calls per indicium (the key record lookup,
 * the binary forms, the request building) stays static beside its caller
 * in verify_batch.c; what crosses a file here is called once per domain,
 * per batch or, for the signature, per indicium beside an ECDSA check.
 */
#ifndef MK_VERIFY_INT_H
#define MK_VERIFY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "meterkey/boxes.h"
#include "meterkey/kms.h"
#include "meterkey/verify.h"

#define LOOKUP_MAX 16384 /* devices remembered per domain while the verifier lives */
#define LOOKUP_BUCKETS 32768 /* of the index of those by device (a power of two): a fleet's
                             * entries are cold, each one passed on a chain a cache miss */
#define LOOKUP_NONE UINT16_MAX
/* Operation keys remembered (direct-mapped by meter and postal domain). */
#define SIGKEY_SLOTS 4096

/* An operation key whose chain held, for one meter in one postal domain,
 * and the times [from, to] at which every certificate of the chain is
 * valid: inside them the chain's verdict cannot change (signatures, roles
 * and names do not depend on the time), outside them it is checked again. */
struct sigkey {
	char meter[MK_METER_ID_MAX + 1];
	char postal[MK_DOMAIN_ID_MAX + 1];
	EVP_PKEY *pub; /* NULL: the slot is empty */
	int64_t from, to;
};

/* A device's key record as the archive gave it (encoded), or none. */
struct lookup {
	char device[2 * MK_IDENT_MAX + 2];
	uint32_t first_day, end_day; /* Tin: the days the token key record covers */
	int found;
	int loading;                 /* Brass: made by the group being resolved, its record to be
	                              * read with the group's other new devices (load_group) */
	struct mk_buf *rec;
	uint32_t bucket;             /* of device in the index */
	uint32_t dhash;              /* device's hash (device_hash): most other entries of a
	                              * bucket are passed without comparing names */
	uint16_t chain;              /* the next entry of the bucket, or LOOKUP_NONE */
	struct mk_buf *proof;        /* the record's proof (Tin: its master key record's) under
	                              * the domain's head head_seq */
	struct mk_buf *mrec;         /* Tin: the master key record the token key record is of */
	uint64_t head_seq;
	uint64_t boxed;              /* head_seq when the domain's box holds rec verified and
	                              * proven (sent whole and answered): then sent by reference */
	uint8_t rec_hash[MK_VERIFY_REF_LEN]; /* SHA-256 of rec, the reference (with boxed) */
	uint64_t pin;                /* in use by the group being sent: not replaced */
	uint16_t gfirst, glast;      /* the group's first and last item (while grouping) */
	uint64_t gserial;            /* the grouping these belong to */
	uint64_t rserial;            /* the request its index rkey is in (box_batch) */
	uint16_t rkey;
};

struct vdomain {
	char id[MK_DOMAIN_ID_MAX + 1];
	struct mk_box *box;
	int shared; /* box is another domain's (the same box serves both) */
	size_t nlook, next;
	uint16_t head[LOOKUP_BUCKETS]; /* first entry of each bucket, or LOOKUP_NONE */
	struct lookup look[LOOKUP_MAX];
	struct mk_buf *signed_head;    /* the domain's newest signed head, as the lookups found it */
	uint64_t head_seq;             /* its number (0: none read yet) */
};

/* verify_domain.c: frees what a remembered record holds; forgets every record
 * remembered of d (a newer head makes them stale). */
void verifier_lookup_free(struct lookup *l);
void verifier_forget(struct vdomain *d);

/* "product code-MSN" */
#define VDEV_LEN (2 * MK_IDENT_MAX + 2)

/*
 * verify_prefetch.c: one job of the prefetcher, the key records and
 * proofs of up to VPF_MAX devices of one domain read on its own connection
 * (mk_archive_device_proofs) while the caller's thread goes on: the new
 * devices of the group after the one being sent (verify_batch.c,
 * send_group), for that group's load_group. The caller fills d, items,
 * domain, m, the identities (ids: dp[i].product_code and mfg_seq point
 * there for good) and slot, then starts it; the prefetcher fills head,
 * dp[i].rec, proof, key_id, rc and the job's rc.
 */
#define VPF_MAX 1024 /* devices a job: a group's items at most (GROUP_MAX) */

struct vpf_job {
	const struct vdomain *d; /* the domain and the group (the caller's items array) it is for */
	const size_t *items;
	char domain[MK_DOMAIN_ID_MAX + 1];
	size_t m;
	char ids[VPF_MAX][2][MK_IDENT_MAX + 1]; /* each device's product code and MSN */
	struct mk_device_proof dp[VPF_MAX];
	uint16_t slot[VPF_MAX]; /* item t of the group: its device's index in dp, or LOOKUP_NONE */
	struct mk_buf *head;     /* the head they were read under */
	enum mk_err rc;          /* mk_archive_device_proofs's */
};

/* The prefetcher's job to fill, emptied (the prefetcher made, its thread
 * started, on first use); NULL when there is none to be had (no thread,
 * memory, another process's, its connection failed). */
struct vpf_job *verifier_prefetch_job(struct mk_verifier *v);
/* Starts the job verifier_prefetch_job gave, filled. */
void verifier_prefetch_start(struct mk_verifier *v);
/* The job for d's group items, once done: NULL when there is none for
 * them, or it failed. Taken: the caller reads it until its next job. */
struct vpf_job *verifier_prefetch_done(struct mk_verifier *v, const struct vdomain *d, const size_t *items);
/* A job not taken is waited for and let go (the end of a batch's role:
 * the group it was for is gone). */
void verifier_prefetch_drop(struct mk_verifier *v);
/* Ends the thread, closes its connection, frees all. */
void verifier_prefetch_free(struct mk_verifier *v);
/* Tests: called on the prefetcher's thread with each job it has read,
 * before the job can be taken (NULL: none). */
extern void (*verifier_prefetch_hook)(struct vpf_job *j);

/* A batch's sightings, made from its good outcomes (verifier_sight_make),
 * what the archive answers of them, and the outcome each is of. */
struct vsight {
	struct mk_sighting *s;
	char (*dev)[VDEV_LEN];
	size_t *idx;
	bool *dups;
	struct mk_first_sighting *first;
	size_t m, cap;
	bool mixed; /* the sightings are of more than one postal domain */
};

struct vpipe;

/* verify_text.c: a chunk of lines decoded (mk_decode_lines), in flight
 * once submitted: the lines that decoded (m of them), their outcomes, the
 * line each is of. */
struct mk_decoded_lines {
	const char *const *lines;
	struct mk_verify_outcome *out; /* the caller's, one per line, each line's indicium in it */
	size_t n, m; /* m == n: every line decoded, verified in out itself (inds, batch, map unused) */
	struct mk_indicium *inds;        /* m < n: those that decoded, packed, */
	struct mk_verify_outcome *batch; /* their outcomes, */
	size_t *map;                     /* and the line each is of */
	size_t cap;                      /* of inds, batch and map (made for the first chunk with m < n) */
};

/* Clears outcome o but its indicium (which a decoder wrote in place). */
static inline void verifier_outcome_clear(struct mk_verify_outcome *o)
{
	size_t at = offsetof(struct mk_verify_outcome, ind), end = at + sizeof(o->ind);

	memset(o, 0, at);
	memset((uint8_t *)o + end, 0, sizeof(*o) - end);
}

struct mk_verifier {
	struct mk_kms *kms;
	int tin;
	bool duplicates;
	char prefer[MK_BOX_ID_LEN + 1]; /* the box to use where it serves ("": the first) */
	size_t ndomains;
	struct vdomain *domains[MK_BOX_MAX_DOMAINS];
	struct mk_buf *keys, *items, *res; /* one Verify request's lists, its answer */
	struct mk_buf *proofs, *mrecs;     /* its lists beside the keys (signed heads) */
	struct mk_buf *scratch; /* one indicium's binary form */
	uint64_t serial; /* of the current group, for pins */
	uint64_t rserial; /* of the current request, for its records' indices */
	/* the current batch's binary forms, each encoded once for both roles */
	uint8_t *bins;     /* the binary forms, one after the other (bins_used bytes of bins_size) */
	size_t bins_used, bins_size;
	uint32_t *bin_off; /* indicium i's at bins + bin_off[i] */
	uint16_t *bin_len; /* 0: not encoded yet */
	size_t bin_cap;
	struct sigkey *sigkeys; /* SIGKEY_SLOTS, allocated on the first signed indicium */
	char site[MK_SITE_MAX + 1]; /* kept with its first sightings (mk_verifier_set_site) */
	struct vsight sight;        /* the synchronous path's sightings (verifier_sightings) */
	struct vpipe *pipe;         /* verify_pipe.c: the index writer, made on the first submit */
	struct vprefetch *prefetch; /* verify_prefetch.c: made on the first group with many new devices */
	size_t prefetch_taken;      /* groups whose new devices' records a job gave (tests) */
	struct mk_decoded_lines *vl[MK_VERIFY_INFLIGHT]; /* verify_text.c: lines in flight, a ring */
	struct mk_decoded_lines own[MK_VERIFY_INFLIGHT]; /* mk_verify_lines_submit's, own[k] at vl[k] */
	unsigned vl_head, vl_count;
};

/* verify_domain.c: the state of domain id in v (owned by v, freed with it), made
 * and its box opened on first use: the preferred box (mk_verifier_prefer_box)
 * when it serves the domain, else the first of the verifier's kind; a box
 * serving several domains is opened once. NULL on failure, with *ep:
 * MK_RC_DOMAIN_UNKNOWN for a malformed ID or one domain too many,
 * MK_RC_RESOURCE_UNAVAILABLE (or the KMS's code) when no box of the kind
 * serves it, MK_ERR_NOMEM, or the failure to open the box. The box holds
 * its keys in this process until mk_verifier_free wipes them. */
struct vdomain *verifier_domain_of(struct mk_verifier *v, const char *id, enum mk_err *ep);

/* verify_batch.c: every indicium's outcome but its sighting: the tokens in
 * each domain's box, the signature (mk_verify_batch without duplicates).
 * inds NULL: each indicium is in its outcome already (out[i].ind, as
 * mk_decode_lines leaves it), the rest of the outcome is cleared. */
MK_WUR enum mk_err verifier_judge(struct mk_verifier *v, const struct mk_indicium *inds, size_t n,
                                  struct mk_verify_outcome *out);

/* verify_pipe.c: mk_verify_submit, its arguments checked by the caller;
 * inds NULL as verifier_judge takes it. */
MK_WUR enum mk_err verifier_submit(struct mk_verifier *v, const struct mk_indicium *inds, size_t n,
                                   struct mk_verify_outcome *out);

/* verify_seen.c: the sightings of out[0..n)'s good indicia (each in its
 * postal domain's index) into vs, sized to n; their duplicates back into
 * out (the postal result and the overall one duplicate, with when and
 * where it was first seen); vs's memory freed. */
MK_WUR enum mk_err verifier_sight_make(struct vsight *vs, const struct mk_verify_outcome *out, size_t n);
void verifier_sight_apply(const struct vsight *vs, struct mk_verify_outcome *out);
void verifier_sight_free(struct vsight *vs);

/* One postal domain's sightings dated before day `before`, to be dropped
 * from its duplicate index (verifier_drops_due). */
struct vdrop {
	char domain[MK_DOMAIN_ID_MAX + 1];
	uint32_t before;
};
#define VDROP_MAX 8

/* verify_seen.c: the drops due for vs's sightings, once a day per postal
 * domain and KMS handle (struct mk_kms's dropped: not again for a verifier
 * made afresh), into d[0..*np) (at most VDROP_MAX; a domain past them is
 * due with a later batch), each marked done today: whoever makes them
 * (the index writer, on its connection, before its batch's sightings)
 * calls verifier_drops_undo for those that failed, so that they are due
 * again. Reads each domain's window (mk_kms_domain_window) through the
 * KMS, nothing written. */
MK_WUR enum mk_err verifier_drops_due(struct mk_verifier *v, const struct vsight *vs, struct vdrop *d,
                                      unsigned *np);
void verifier_drops_undo(struct mk_verifier *v, const struct vdrop *d, unsigned n);

/* verify_seen.c: the drops d[0..n) made through archive a (at time),
 * stopping at the first failure, whose domain is then *whichp (for the
 * caller's words). */
MK_WUR enum mk_err verifier_drops_make(struct mk_archive *a, const struct vdrop *d, unsigned n, int64_t time,
                                       const char **whichp);

/* verify_seen.c: notes out[0..n)'s good indicia in the archive's
 * duplicate index through the KMS's connection, MK_SEEN_BATCH_MAX a
 * transaction, and marks the duplicates. MK_OK, MK_ERR_NOMEM or the
 * archive's failure (explained in the KMS's detail). */
MK_WUR enum mk_err verifier_sightings(struct mk_verifier *v, struct mk_verify_outcome *out, size_t n);

/* verify_pipe.c: stops the index writer and frees it (mk_verifier_free);
 * batches submitted and not finished are finished first. */
void verifier_pipe_free(struct mk_verifier *v);

/* verify_sig.c: o->sig and o->sig_err for the indicium o->ind, whose tokens
 * are judged (o->result set): MK_SIG_NONE for version 1 or a malformed one,
 * else the operation key's verdict, the key taken from v's cache or from the
 * home's certificates (public data only). Missing or refused certificates
 * are verdicts, not failures: only MK_ERR_NOMEM is returned. */
MK_WUR enum mk_err verifier_check_sig(struct mk_verifier *v, struct mk_verify_outcome *o);

/* verify_text.c: d's buffers freed (d itself is the caller's). */
void verifier_lines_clear(struct mk_decoded_lines *d);

#endif
