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

/* The batch API: out[i] for inds[i]. The error is for the run (a box that
 * cannot be opened, the archive, memory); each indicium's own verdict is in
 * out: the tokens per domain, then, for version 2, the signature, checked
 * for every indicium that is not malformed. Only an indicium good overall
 * is recorded as a sighting. */
MK_WUR enum mk_err mk_verify_batch(struct mk_verifier *v, const struct mk_indicium *inds, size_t n,
                                   struct mk_verify_outcome *out);

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

#endif
