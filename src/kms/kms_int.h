/*
 * Private to the KMS (src/kms): the KMS's state and the helpers its flows
 * share. One file per flow (docs/internals/kms.md, "Where the code is"):
 *
 *   home.c      the home: opening and closing, paths and small files,
 *               boxes.conf, opening boxes and the box call, the archive's
 *               refusal log, reaching meters; everything below
 *   init.c      initialisation: the first M box, domains, box init, add
 *               domain, check, list
 *   keys.c      key request (MI0-MI4), installation (MI4'-MI10), confirm,
 *               abandon
 *   register.c  registration (MR1-MR4), retirement, the meter list
 *   pki.c       the device PKI: meter create and manufacture (Figs. 2-3),
 *               its registration (Figs. 4-7), cert export, authenticate
 *   frank.c     franking, credit, token key distribution and the helpers
 *               the verifier uses (verify.c)
 *
 * A flow file calls what this header declares, the public API and the
 * library's private helpers (core/file_int.h); what two flows need goes
 * here. The messages these helpers carry are wrapped, sealed or public
 * (docs/internals/kms.md, "What the KMS never sees"); the exception that
 * note names is kms_open_box, whose box holds its keys in this process
 * until mk_box_free wipes them. Every helper that reports a failure leaves
 * its sentence in k->detail through kms_fail, as the public functions do.
 */
#ifndef MK_KMS_INT_H
#define MK_KMS_INT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "meterkey/boxes.h"
#include "meterkey/kms.h"

/* The most boxes boxes.conf may list (the file's size: MK_CONF_MAX). */
#define KMS_MAX_BOXES 256

/* One line of boxes.conf: a box and the domains it serves. */
struct kms_box {
	char id[MK_BOX_ID_LEN + 1];
	size_t ndomains;
	char domains[MK_BOX_MAX_DOMAINS][MK_DOMAIN_ID_MAX + 1];
};

struct mk_kms {
	char home[PATH_MAX];
	char shares[PATH_MAX];
	char boxes_dir[PATH_MAX]; /* "": boxes in this process; else their sockets */
	int64_t time;
	struct mk_archive *archive;
	char *archive_url; /* as opened (may hold a password: never shown; wiped on close) */
	char detail[MK_KMS_DETAIL_MAX];
	size_t nboxes;
	struct kms_box boxes[KMS_MAX_BOXES]; /* boxes.conf, as loaded and kept in step */
	/* The verifiers' (verify_seen.c), kept per handle (a process's, in
	 * meterkeyd and the CLI) rather than per verifier, so that a verifier
	 * made afresh (meterkeyd's per batch with --cache-idle 0) does not
	 * drop a domain's past again the same day: the day each postal
	 * domain's sightings past its window were last dropped (or are being
	 * dropped by an index writer) through this handle. */
	struct {
		char domain[MK_DOMAIN_ID_MAX + 1];
		uint32_t day;
	} dropped[8];
	unsigned ndropped;
	/* verify_pipe.c: the index writer (its thread and its own archive
	 * connection) of the last verifier freed, idle, for the next verifier
	 * to take instead of starting its own; let go by spare_free at close
	 * (a pointer, so that this part's lower files call nothing above). */
	void *spare_writer;
	void (*spare_free)(void *);
};

/* ---- Failures (home.c) ---------------------------------------------------------------- */

/* Writes the sentence fmt, followed by ": <e's text> (<e's name>)", into
 * k->detail and returns e, so that `return kms_fail(k, e, ...)` reports and
 * fails in one. The sentence names boxes, meters, domains and paths, never
 * a secret. */
__attribute__((format(printf, 3, 4))) enum mk_err kms_fail(struct mk_kms *k, enum mk_err e,
                                                           const char *fmt, ...);

/* Adds the words fmt to the sentence kms_fail wrote for e, before its
 * ": <e's text> (<e's name>)" (so the name stays last; at the end when
 * there is none). Returns e. */
__attribute__((format(printf, 3, 4))) enum mk_err kms_fail_more(struct mk_kms *k, enum mk_err e,
                                                                const char *fmt, ...);

/* Reports the archive's failure to give the record of key domain/key_id:
 * none there, one that does not decode (damaged or altered), or the
 * database's error. Returns e. */
enum mk_err kms_key_fail(struct mk_kms *k, enum mk_err e, const char *domain, uint64_t key_id);

/* Reports a meter's failure to answer: its NVM damaged or gone (named by its
 * path), or no answer at all. Returns e. */
enum mk_err kms_meter_fail(struct mk_kms *k, enum mk_err e, const char *meter_id);

/* ---- Paths and small files (home.c) ---------------------------------------------------- */

/* Writes "<home>/" followed by fmt into out[0..cap). Returns 1, or 0 when it
 * does not fit (out then holds a truncated path: the caller must not use
 * it). */
__attribute__((format(printf, 4, 5))) int kms_pathf(const struct mk_kms *k, char *out, size_t cap,
                                                    const char *fmt, ...);

/* Where a key's step evidence waits (dir "kdc") or its confirmation is kept
 * ("confirmations"): <home>/<dir>/<domain>.<key ID>.<ext>. 1, or 0 when it
 * does not fit (as kms_pathf). */
int kms_step_path(const struct mk_kms *k, char *out, size_t cap, const char *dir, const char *domain,
                  uint64_t key_id, const char *ext);

/* Makes the folder path (mode 0700) unless it is there as a folder; what
 * stops it (a missing parent, a file of that name, permissions) is reported,
 * naming the path: MK_ERR_IO. */
MK_WUR enum mk_err kms_ensure_dir(struct mk_kms *k, const char *path);

/* Replaces the small file path by p[0..n) atomically (mk_file_replace). For
 * public or wrapped bytes only: the file is not wiped. */
MK_WUR enum mk_err kms_write_file(const char *path, const uint8_t *p, size_t n);

/* Writes a certificate given in DER to path as PEM (atomically).
 * MK_ERR_CERT_FORMAT when the DER is not one certificate; MK_ERR_IO,
 * MK_ERR_NOMEM. */
MK_WUR enum mk_err kms_write_cert_pem(const uint8_t *der, size_t n, const char *path);

/* Reads a small file of the home (path under k->home) of at most max bytes
 * into out. A failure is reported (kms_fail) with the path relative to the
 * home; a missing file is MK_ERR_NOT_FOUND. */
MK_WUR enum mk_err kms_read_home_file(struct mk_kms *k, const char *path, size_t max, struct mk_buf *out);

/* Keeps a box's signed confirmation (the signed message of a record-signed
 * result: MI10, MR4) in confirmations/<domain>.<key ID>.<ext>. Best effort:
 * losing it loses no state, the archive holds the record it confirms. */
void kms_keep_confirmation(struct mk_kms *k, const struct mk_box_record_signed_res *res, const char *domain,
                           uint64_t key_id, const char *ext);

/* ---- boxes.conf: the public configuration table (home.c) ------------------------------- */

/* Reads <home>/boxes.conf into k->boxes (a missing or empty file: no
 * boxes, unless boxes/ holds box states: MK_ERR_STATE). Each line is a box
 * ID and the domains it serves, separated by spaces, and ends in '\n'.
 * MK_ERR_STATE for a malformed line (empty, a bad box ID or domain, too many
 * domains), a box listed twice or a domain twice on its line, more than
 * KMS_MAX_BOXES lines, a NUL byte, or a last line without its '\n' (the
 * file was cut short); MK_ERR_BUF_FULL for a file over MK_CONF_MAX bytes;
 * MK_ERR_UNSUPPORTED when it is not a regular file; MK_ERR_IO, MK_ERR_NOMEM.
 * Each failure but NOMEM is reported (kms_fail) with the file, and for a
 * bad line its number and what is wrong with it. On failure k->nboxes
 * counts the lines read before the bad one: the caller treats the home as
 * damaged. */
MK_WUR enum mk_err kms_conf_load(struct mk_kms *k);

/* Writes k->boxes to <home>/boxes.conf (atomically) in the form
 * kms_conf_load reads. MK_ERR_BUF_FULL, MK_ERR_IO, MK_ERR_NOMEM,
 * MK_ERR_INVALID_ARG (the path does not fit). */
MK_WUR enum mk_err kms_conf_store(struct mk_kms *k);

/* The line of box id in k->boxes, or NULL (owned by k; valid until the
 * table changes). */
/* Adds box id (when missing) and domain (when not NULL and not served yet)
 * to boxes.conf: under the home's lock (boxes.conf.lock), read again,
 * changed and written whole, so that concurrent commands lose nothing; k's
 * table is then the file's. */
/* The meter line of mc handed to Steel box s for its next request: the
 * descriptor itself to a box process (given away: mc no longer talks to
 * the meter, and a box over TCP takes none), the line to a box in this
 * process (detach it with mk_box_attach_meter(s, NULL)). Said on failure. */
MK_WUR enum mk_err kms_hand_meter_line(struct mk_kms *k, struct mk_box *s, struct mk_meter_conn *mc);
MK_WUR enum mk_err kms_conf_add(struct mk_kms *k, const char *id, const char *domain);
struct kms_box *kms_conf_find(struct mk_kms *k, const char *id);

/* 1 when box x (not NULL) serves domain, else 0. */
int kms_serves(const struct kms_box *x, const char *domain);

/* The first box of type t serving domain (any domain when NULL) into id;
 * want names the box ("" or NULL: the first one found). Reported:
 * MK_RC_BOX_ID_INVALID when want is not a box of that type serving domain,
 * MK_RC_RESOURCE_UNAVAILABLE when there is no such box at all. */
MK_WUR enum mk_err kms_pick_box(struct mk_kms *k, enum mk_box_type t, const char *domain, const char *want,
                                char id[static MK_BOX_ID_LEN + 1]);

/* ---- Boxes (home.c) ------------------------------------------------------------------- */

/* Opens box id with every share file <id>.<i>.share found in the shares
 * directory. *bp: the open box (the caller frees it with mk_box_free, which
 * wipes it), NULL on failure. A failure is the shares' or the seal's own
 * code, reported with the box's ID. */
MK_WUR enum mk_err kms_open_box(struct mk_kms *k, const char *id, struct mk_box **bp);
/* Frees box b (NULL: nothing) once its generation record is in the archive
 * (a failure there changes nothing of k->detail). Every box a flow opened
 * with kms_open_box is closed so. */
void kms_close_box(struct mk_kms *k, struct mk_box *b);

/* One command to open box b, as encoded messages (mk_msg_call over
 * mk_box_call): *rq is the command's request struct (msg_box.h), *rs its
 * result struct, whose BYTES point into ans (the caller's buffer, emptied
 * first; the caller frees it, which wipes it). A refusal is the box's code,
 * reported with the box's kind and ID, the command's name and the domain. */
MK_WUR enum mk_err kms_call(struct mk_kms *k, struct mk_box *b, const struct mk_msg_cmd_spec *cmd,
                            const char *domain, int64_t time, const void *rq, void *rs, struct mk_buf *ans);

/* kms_call typed per command (the flows use these): kms_call_<name>(k, b,
 * domain, time, &request, &result, ans), the structs checked by the
 * compiler against the command's spec. */
#define KMS_CALL_STUB(code, NAME, name, rq, rs, text)                                            \
	static inline __attribute__((unused)) MK_WUR enum mk_err kms_call_##name(                \
		struct mk_kms *k, struct mk_box *b, const char *domain, int64_t time,            \
		const struct mk_box_##rq *q, struct mk_box_##rs *a, struct mk_buf *ans)          \
	{                                                                                        \
		return kms_call(k, b, &mk_box_cmd_##name, domain, time, q, a, ans);              \
	}
MK_BOX_COMMANDS(KMS_CALL_STUB)

/* ---- The archive (home.c) ------------------------------------------------------------- */

/* MK_OK when each of domains[0..n) is a domain of the archive; otherwise
 * MK_RC_DOMAIN_UNKNOWN, reported with the first unknown one. */
MK_WUR enum mk_err kms_check_domains(struct mk_kms *k, const char *const *domains, size_t n);

/* Writes k->detail, with box_id, key_id and code, to domain's error log in
 * the archive (the auditor's record of refusals). Best effort: a failure to
 * log does not hide the refusal, which the caller reports. */
void kms_log_refusal(struct mk_kms *k, const char *domain, const char *box_id, uint64_t key_id,
                     enum mk_err code);

/* Archives next, a record box signed, over the key's current version, then
 * has Brass box b (open; NULL: not now, the caller does it with
 * kms_sign_heads) sign the domain's next head over it. The archive's
 * refusal is reported and logged against box; a head not signed is
 * reported with the version archived. */
MK_WUR enum mk_err kms_archive_update(struct mk_kms *k, const struct mk_key_record *next, const char *box,
                                      struct mk_box *b);

/* heads.c (kms_archive_update too): has Brass box b (open) sign the domain's heads over the
 * versions written since its newest (mk_archive_sign_head). A failure is
 * reported: the versions stay in the archive, waiting. */
MK_WUR enum mk_err kms_sign_heads(struct mk_kms *k, struct mk_box *b, const char *domain);

/* ---- Meters (home.c) ------------------------------------------------------------------ */

/* 1 when s is 1-MK_IDENT_MAX ASCII letters and digits (a product code, a
 * sequence or indicia serial number: safe in a file name), else 0. */
int kms_ident_safe(const char *s);

/* Connects to the simulated meter meter_id (its NVM in meters/), its clock
 * set to the KMS's. *cp: the caller disconnects it (mk_meter_disconnect).
 * A malformed ID, a missing meter or a failed connection is reported. */
MK_WUR enum mk_err kms_connect_meter(struct mk_kms *k, const char *meter_id, struct mk_meter_conn **cp);

/* kms_connect_meter, then the meter's state into *info. On failure *cp may
 * be set all the same: the caller disconnects it. */
MK_WUR enum mk_err kms_connect_meter_info(struct mk_kms *k, const char *meter_id, struct mk_meter_conn **cp,
                                          struct mk_meter_info *info);

/* ---- Shared between flows ------------------------------------------------------------- */

/* pki.c: the device PKI's registration (Figs. 4-7) of the connected meter
 * mc (in transport lock, state in *info) with the registration service of
 * its postal domain; its operation certificate kept in certs/<meter>.pem.
 * Used by mk_kms_meter_register and mk_kms_meter_authenticate. The meter's
 * or the Brass box's refusal, reported. */
MK_WUR enum mk_err kms_pki_register(struct mk_kms *k, struct mk_meter_conn *mc, const char *meter_id,
                                    const struct mk_meter_info *info);

#endif
