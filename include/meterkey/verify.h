/*
 * Verification of indicia (DESIGN.md §6, Fig. 28 and claims 5-8): central by
 * the Brass box of each domain from the archived master key record, or
 * distributed by a Tin box from signed temporal token key records; each
 * domain's result apart, duplicates found through the archive's index. A
 * signed indicium (version 2) has its signature checked beside the tokens,
 * with the meter's operation certificate through its domain certificate to
 * the provider root (docs/indicium.md §7c).
 */
#ifndef MK_VERIFY_H
#define MK_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meterkey/archive.h"
#include "meterkey/err.h"
#include "meterkey/indicium.h"
#include "meterkey/msg_box.h"

/* enum mk_verify_result, one domain's result and an indicium's: msg_box.h
 * (the Verify answer's values). */

/* "good", "bad token", "unknown device", "key not active",
 * "date before registration", "malformed", "duplicate", "signature refused",
 * "status stale". */
const char *mk_verify_result_name(enum mk_verify_result r);
/* The same as one word for JSON and scripts: "good", "bad_token", ... */
const char *mk_verify_result_key(enum mk_verify_result r);

/* MK_VERIFY_BATCH_MAX, MK_VERIFY_KEYS_MAX: msg_box.h. */

/* A signed indicium's signature, beside the tokens. */
enum mk_sig_result {
	MK_SIG_NONE = 0,    /* version 1 (no signature), or a malformed indicium (not checked) */
	MK_SIG_GOOD = 1,    /* the chain holds at the mailing date and the signature verifies */
	MK_SIG_BAD = 2,     /* the chain holds, the signature does not verify */
	MK_SIG_NO_CERT = 3, /* the meter's operation certificate, the domain certificate
	                     * or the root is not in the home */
	MK_SIG_CHAIN = 4,   /* the certificates are there, the chain is refused (.sig_err) */
};
#define MK_SIG_COUNT 5

/* "none", "good", "bad signature", "no certificate",
 * "certificate chain refused". */
const char *mk_sig_result_name(enum mk_sig_result r);
/* The same as one word: "none", "good", "bad_signature", "no_certificate",
 * "chain_refused". */
const char *mk_sig_result_key(enum mk_sig_result r);

struct mk_kms;
struct mk_verifier;

/* One indicium's outcome. */
struct mk_verify_outcome {
	enum mk_verify_result result;         /* good only when every domain is good and,
	                                       * if signed, the signature too */
	enum mk_verify_result vendor, postal; /* each domain's own (tokens) */
	enum mk_sig_result sig;               /* the signature's */
	enum mk_err sig_err;                  /* MK_OK, or why sig is not good: NO_CERT
	                                       * MK_ERR_NOT_FOUND / MK_ERR_IO, CHAIN the
	                                       * mk_cert_verify error or MK_ERR_INDICIUM_CERT
	                                       * (another meter's) / MK_ERR_CERT_DOMAIN
	                                       * (another postal domain's), BAD
	                                       * MK_ERR_INDICIUM_SIGNATURE */
	int corrected;                        /* one misread character was corrected */
	const char *why;                      /* malformed: what is wrong with the line, in
	                                       * words (static text; mk_verify_text and
	                                       * mk_indicium_text_decode_why); else NULL */
	struct mk_indicium ind;               /* as verified (after a correction) */
	int64_t first_time;                   /* duplicate: when the piece was first seen
	                                       * (0: not known), and by which verifier's
	                                       * site ("": not known) */
	char first_site[MK_SITE_MAX + 1];
};

/*
 * A verifier on a KMS home: central (the domains' Brass boxes, with the
 * archived master key records) or, with tin, distributed (the domains' Tin
 * boxes, with the token key records in the archive; no master key). Boxes
 * are opened on first use and kept open, with their bounded key caches,
 * until mk_verifier_free wipes them. Signed indicia are checked the same
 * way in both kinds, with the certificates of the home: certs/<product
 * code>-<MSN>.pem (the meter's operation certificate), domains/<postal>.pem
 * and trust/root.pem; an operation key whose chain held is remembered per
 * meter and postal domain (public keys only) with the times its chain holds. With duplicates, every good indicium
 * is recorded in each domain's duplicate index in the archive, and a second
 * sighting of the device's piece count is a duplicate (across processes
 * sharing the archive).
 */
MK_WUR enum mk_err mk_verifier_new(struct mk_kms *k, bool tin, bool duplicates, struct mk_verifier **vp);
void mk_verifier_free(struct mk_verifier *v);

/* Whether v notes the good indicia of its next batches as sightings (the
 * duplicates of mk_verifier_new), for a caller that keeps one verifier,
 * with its caches, across requests that ask either way (meterkeyd). */
void mk_verifier_set_duplicates(struct mk_verifier *v, bool duplicates);

/*
 * Names the box (box_id, of the verifier's kind: Brass, or Tin) to use for
 * every domain it serves, instead of the first box of the home serving the
 * domain; a domain it does not serve still gets its first box. For several
 * verifiers at once (threads, processes), each on its own box: a box is open
 * in one session at a time. Applies to the domains whose box is not open yet
 * (call it before the first verification). MK_ERR_INVALID_ARG for a
 * malformed box ID or one of another kind.
 */
MK_WUR enum mk_err mk_verifier_prefer_box(struct mk_verifier *v, const char *box_id);

/* Names the verifier's site (1 to MK_SITE_MAX printable ASCII
 * characters: a mail centre, a machine), which the duplicate index keeps
 * with each batch's first sightings and a duplicate's answer shows; by
 * default the host's name. MK_ERR_INVALID_ARG for a malformed one. */
MK_WUR enum mk_err mk_verifier_set_site(struct mk_verifier *v, const char *site);

/* The batch API: out[i] for inds[i]. The error is for the run (a box that
 * cannot be opened, the archive, memory); each indicium's own verdict is in
 * out: the tokens per domain, then, for version 2, the signature, checked
 * for every indicium that is not malformed. Only an indicium good overall
 * is recorded as a sighting. */
MK_WUR enum mk_err mk_verify_batch(struct mk_verifier *v, const struct mk_indicium *inds, size_t n,
                                   struct mk_verify_outcome *out);

/*
 * The same, pipelined (docs/internals/verify.md, "The pipeline"): with
 * duplicates on, mk_verify_submit verifies inds[0..n) (the tokens and
 * signatures, in this thread) and hands their sightings to the verifier's
 * index writer, a thread with its own connection to the archive, then
 * returns at once; mk_verify_finish waits for the oldest batch submitted
 * and not finished to be durable in the archive and completes its
 * outcomes (duplicates), setting *outp to its out array and *np to its n.
 * So the next batch's cryptography runs while the writer commits this
 * one. At most MK_VERIFY_INFLIGHT batches are submitted and not finished
 * (MK_ERR_STATE past that); out (and inds, until submit returns) stay the
 * caller's. No outcome may be taken as final before its batch is
 * finished: a result good before then is not yet a sighting. Without
 * duplicates, finish only hands the batches back. n at most
 * MK_SEEN_BATCH_MAX (all of a batch's sightings in one transaction; the
 * writer notes the batches waiting for it in one transaction, up to
 * MK_SEEN_NOTE_MAX sightings). An error of the writer is returned by the
 * finish of each batch of the transaction that failed.
 */
#define MK_VERIFY_INFLIGHT 8
MK_WUR enum mk_err mk_verify_submit(struct mk_verifier *v, const struct mk_indicium *inds, size_t n,
                                    struct mk_verify_outcome *out);
MK_WUR enum mk_err mk_verify_finish(struct mk_verifier *v, struct mk_verify_outcome **outp, size_t *np);

/* For a caller with an event loop of its own (meterkeyd), which must not
 * wait in mk_verify_finish: mk_verify_ready tells, without waiting,
 * whether the oldest batch submitted and not finished is ready to be
 * finished at once (false: none in flight, or its sightings not yet
 * written); fn(arg) (NULL: none) is called from the index writer's
 * thread each time it has written (or failed to write) a batch, with the
 * pipeline's lock held: it may only wake the caller's thread (a write to
 * a pipe), never call the verifier. A batch without sightings to write
 * (duplicates off, none good) is ready when its submit returns, with no
 * call. */
MK_WUR enum mk_err mk_verifier_set_notify(struct mk_verifier *v, void (*fn)(void *), void *arg);
bool mk_verify_ready(struct mk_verifier *v);

/* One text line: the blanks around it (spaces, tabs, CR, LF) left out, check
 * characters checked, one misread character corrected when exactly one
 * candidate verifies its tokens and has no bad signature (formats:
 * docs/indicium.md). */
MK_WUR enum mk_err mk_verify_text(struct mk_verifier *v, const char *line, struct mk_verify_outcome *out);

/* n text lines (a file's, a service's batch): out[i] for lines[i]. The
 * lines that decode go together through mk_verify_batch; those whose
 * check characters fail, one by one through mk_verify_text (the
 * correction); the others are malformed, out[i].why saying why. The
 * error is for the run, as mk_verify_batch's. */
MK_WUR enum mk_err mk_verify_lines(struct mk_verifier *v, const char *const *lines, size_t n,
                                   struct mk_verify_outcome *out);

/* mk_verify_lines, pipelined as mk_verify_submit and mk_verify_finish are
 * (what `meterkey verify --file` streams through): submit decodes the
 * lines and submits those that decode; finish waits for the oldest batch,
 * fills its out[] (a line's outcome, as mk_verify_lines gives it: the
 * lines whose check characters fail are corrected there, one by one),
 * and gives back its out and n. lines and out stay the caller's, unchanged,
 * until the batch is finished. */
MK_WUR enum mk_err mk_verify_lines_submit(struct mk_verifier *v, const char *const *lines, size_t n,
                                          struct mk_verify_outcome *out);
MK_WUR enum mk_err mk_verify_lines_finish(struct mk_verifier *v, struct mk_verify_outcome **outp, size_t *np);

/*
 * mk_verify_lines_submit in two steps, for a caller that decodes the next
 * chunk of lines on a thread of its own while the verifier's thread
 * verifies this one (meterkey verify --file): mk_decode_lines needs no
 * verifier and may run on any thread (one at a time on a given d); it
 * decodes lines[0..n) into d (n at most MK_SEEN_BATCH_MAX), marking out[]
 * as submit would (each line's indicium decoded into its outcome, where
 * the verifier takes it). mk_verify_decoded_submit then submits d exactly as
 * mk_verify_lines_submit submits the lines, and mk_verify_lines_finish
 * finishes it. d, its lines and out stay the caller's, unchanged, until
 * the batch is finished; d may then decode the next chunk. Only memory
 * fails a decode (MK_ERR_NOMEM); a line's verdict is its outcome's.
 */
struct mk_decoded_lines;
MK_WUR enum mk_err mk_decoded_lines_new(struct mk_decoded_lines **dp);
void mk_decoded_lines_free(struct mk_decoded_lines *d);
MK_WUR enum mk_err mk_decode_lines(struct mk_decoded_lines *d, const char *const *lines, size_t n,
                                   struct mk_verify_outcome *out);
MK_WUR enum mk_err mk_verify_decoded_submit(struct mk_verifier *v, struct mk_decoded_lines *d);

#endif
