/*
 * The KMS computer (DESIGN.md §2): runs the flows of the first document
 * between the boxes, the domain archive and the meters of one home
 * directory. It stores and forwards records but only ever sees master keys
 * encrypted for a box; each box is opened with its operators' shares for the
 * step that needs it and wiped afterwards.
 *
 * The home directory (docs/internals/kms.md):
 *   archive.db             the default archive (sqlite:)
 *   boxes.conf             the boxes and the domains each serves (public)
 *   boxes/<ID>.box         each box's sealed state
 *   shares/<ID>.<i>.share  operator shares (by default; --shares elsewhere)
 *   trust/anchors          the Manufacturing Box's public startup keys
 *   domains/<D>.keys       domain keys under the Domain Key Set
 *   domains/<D>.<S>.cert   Steel certificates signed by the Domain Key Set
 *   kdc/<D>.<key ID>.mi4   install records waiting at the Key Distribution Computer
 *   kdc/<D>.<key ID>.mi7   installation evidence waiting for its confirmation
 *   confirmations/         MI10 and MR4, the boxes' signed confirmations
 *   meters/<ID>.nvm        simulated meters' NVM
 *   certs/<ID>.pem         registered meters' operation certificates (for verifiers)
 *   trust/root.pem         the provider root certificate (device PKI)
 *   domains/<D>.pem        each domain's certificate (postal authority key)
 */
#ifndef MK_KMS_H
#define MK_KMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meterkey/archive.h"
#include "meterkey/msg.h"
#include "meterkey/err.h"
#include "meterkey/indicium.h"
#include "meterkey/meter.h"
#include "meterkey/pki.h"

#define MK_KMS_DETAIL_MAX 512

struct mk_kms;
struct mk_box;

struct mk_kms_opts {
	const char *home;        /* required; see create */
	const char *archive_url; /* NULL: sqlite:<home>/archive.db */
	const char *shares_dir;  /* NULL: <home>/shares */
	int64_t time;            /* the KMS's time stamps; 0: the clock */
	int create;              /* 1: make the home if missing (init, the demo);
	                          * 0: it must exist */
	char *detail;            /* NULL, or where a failure's reason goes in
	                          * words (the archive named by its URL, never
	                          * with its password), detail_cap bytes */
	size_t detail_cap;
	const char *boxes_dir;   /* NULL: every box is opened in this process
	                          * with the shares (the embedded default); else
	                          * each box is reached as a process of its own at
	                          * <boxes_dir>/<ID>.sock (meterkey box serve) */
};

/*
 * Opens the home and its archive. *kp freed with mk_kms_close; NULL on
 * failure. A home is a directory holding boxes/ (every home opened once
 * does). Without o->create a missing home is MK_ERR_NOT_FOUND and nothing
 * is made, neither the home nor its archive: a mistyped path must not
 * become an empty KMS. With it, the home and its folders are made (the
 * parent must exist). Either way the folders an existing home lacks are
 * made again.
 */
MK_WUR enum mk_err mk_kms_open(const struct mk_kms_opts *o, struct mk_kms **kp);
void mk_kms_close(struct mk_kms *k);

/* What the last failure was, in words an operator can act on: which box or
 * meter, which step, which check ("" after success). Never a secret. */
const char *mk_kms_detail(const struct mk_kms *k);
/* Forgets the last failure's words: a KMS that serves one call after
 * another (meterkeyd) clears them before each, so that a refusal never
 * carries an earlier call's. */
void mk_kms_detail_clear(struct mk_kms *k);
struct mk_archive *mk_kms_archive(struct mk_kms *k);
/* A second connection to k's archive, for another thread (the verifier's
 * index writer): the caller's to close with mk_archive_close. A failure is
 * explained in k's detail (the URL shown without its password). */
MK_WUR enum mk_err mk_kms_archive_open_another(struct mk_kms *k, struct mk_archive **ap);
/* The home directory, as opened (owned by k; valid until mk_kms_close). */
const char *mk_kms_home(const struct mk_kms *k);
int64_t mk_kms_now(const struct mk_kms *k);

/* Initialises the first Manufacturing Box (Set First Secure Box ID): its
 * operator shares (k of n), the Domain Key Set and its shares, the trust
 * anchors. k = n = 0: the defaults. MK_RC_NOT_INITIALISED when done already. */
MK_WUR enum mk_err mk_kms_init(struct mk_kms *k, unsigned kshares, unsigned nshares,
                               char id[static MK_BOX_ID_LEN + 1]);

/* Creates a security domain with its country sub-domains, in the
 * Manufacturing Box and the archive. */
MK_WUR enum mk_err mk_kms_domain_create(struct mk_kms *k, const char *domain,
                                        const char *const *countries, size_t n);
/* The same, with the domain's token length (MK_TOKEN_LEN_MIN..MAX; 0: the
 * default), kept by the boxes and in domains/<D>.policy. */
MK_WUR enum mk_err mk_kms_domain_create_len(struct mk_kms *k, const char *domain,
                                            const char *const *countries, size_t n, unsigned token_len);

/* A domain's policy, fixed at its creation, kept by its boxes and in
 * domains/<D>.policy: the token length (MK_TOKEN_LEN_MIN..MAX bytes);
 * how long a token key record the domain's Brass boxes sign stays fresh
 * for its Tin boxes (MK_TIN_FRESH_MIN..MAX seconds); the date window of
 * verification, days after an indicium's date (MK_VERIFY_DAYS_MIN..MAX)
 * and days ahead of the verifier's clock (MK_AHEAD_DAYS_MIN..MAX).
 * MK_DOMAIN_POLICY_DEFAULT: the defaults. */
struct mk_domain_policy {
	unsigned token_len, tin_fresh, verify_days, ahead_days;
};
#define MK_DOMAIN_POLICY_DEFAULT                                                                 \
	{ MK_TOKEN_LEN_DEFAULT, MK_TIN_FRESH_DEFAULT, MK_VERIFY_DAYS_DEFAULT, MK_AHEAD_DAYS_DEFAULT }

/* The same, with the domain's policy (NULL: the defaults). A value out of
 * its range is MK_ERR_INVALID_ARG, said in mk_kms_detail. */
MK_WUR enum mk_err mk_kms_domain_create_policy(struct mk_kms *k, const char *domain,
                                               const char *const *countries, size_t n,
                                               const struct mk_domain_policy *policy);

/* The date window of domain's verification, as domains/<D>.policy holds
 * it (what its Brass and Tin boxes were given at its creation): an
 * indicium dated date is inside when today - *verify_days <= date <=
 * today + *ahead_days. A home made before the window was kept (no file,
 * or no such lines): the defaults, MK_OK. MK_ERR_INVALID_ARG for a
 * domain ID that is not one (2-8 of A-Z, 0-9); a file that cannot be read
 * (MK_ERR_IO, MK_ERR_BUF_FULL, ...) or does not parse (a damaged home:
 * MK_ERR_STATE), never a default; the reason in mk_kms_detail. It reads
 * the file only: it does not ask the archive whether the domain exists.
 * Nothing is written to *verify_days and *ahead_days on a refusal. */
MK_WUR enum mk_err mk_kms_domain_window(struct mk_kms *k, const char *domain, unsigned *verify_days,
                                        unsigned *ahead_days);

/* Initialises a new Oak, Steel or Brass box and gives it the domain process
 * of each of domains[0..n). */
MK_WUR enum mk_err mk_kms_box_init(struct mk_kms *k, enum mk_box_type t, const char *const *domains,
                                   size_t n, unsigned kshares, unsigned nshares,
                                   char id[static MK_BOX_ID_LEN + 1]);
/*
 * The same key ceremony for a factory-fresh box in a process of its own
 * (mk_box_serve_fresh, `meterkey box new`) listening at socket: fingerprint
 * is the SHA-256 of its identity key as its operator read it on the box's
 * own console, which the Manufacturing Box checks at Accept Box
 * (MK_RC_BOX_IDENTITY when the key that answers is another). The box
 * writes its sealed state into its home's boxes/ and its shares where it
 * was told; once done, or refused, its process is told to end (Disable).
 * Oak, Steel, Brass or Tin.
 */
MK_WUR enum mk_err mk_kms_box_enrol(struct mk_kms *k, enum mk_box_type t, const char *const *domains,
                                    size_t n, unsigned kshares, unsigned nshares, const char *socket,
                                    const uint8_t fingerprint[static MK_SHA256_LEN],
                                    char id[static MK_BOX_ID_LEN + 1]);
/*
 * A factory-fresh box of type t (Oak, Steel, Brass, Tin) made in this
 * process with home's trust anchor (trust/anchors): its sealed state will
 * go to home/boxes, its shares to shares_dir; fingerprint is the SHA-256 of
 * its identity key (what its console shows). For `meterkey box new`, after
 * mk_box_process_protect. MK_RC_NOT_INITIALISED when the home has no
 * anchors.
 */
MK_WUR enum mk_err mk_kms_fresh_box(const char *home, const char *shares_dir, enum mk_box_type t,
                                    struct mk_box **bp, uint8_t fingerprint[static MK_SHA256_LEN]);
/*
 * A box of type t born as a process of its own, as `meterkey box new` and
 * `box init --socket --fingerprint` do it, for the demo and tests: a child
 * makes the fresh box (mk_kms_fresh_box) and writes its fingerprint on its
 * console (a pipe); this process reads it there, as the operator does, and
 * runs the ceremony (mk_kms_box_enrol) at <run_dir>/new-<t>.sock; the child
 * ends with it. fingerprint and id are then the box's.
 */
MK_WUR enum mk_err mk_kms_box_born(struct mk_kms *k, enum mk_box_type t, const char *run_dir,
                                   const char *const *domains, size_t n,
                                   uint8_t fingerprint[static MK_SHA256_LEN],
                                   char id[static MK_BOX_ID_LEN + 1]);
/* Gives an initialised box the domain process of one more domain. */
MK_WUR enum mk_err mk_kms_box_add_domain(struct mk_kms *k, const char *box_id, const char *domain);

/*
 * Starts the boxes of the home (only the box `only` when not NULL) as
 * processes of their own: a child a box serving it on <run_dir>/<ID>.sock
 * (mk_box_serve; confined with mk_box_sandbox in the home's boxes/ when
 * confine is set, with no change of user), enabled with the box's share
 * files from the shares folder one Enter Share at a time. From then on k
 * reaches its boxes there (as with mk_kms_opts.boxes_dir). *pp collects
 * the processes (NULL the first time; a later call adds to it) and is
 * given to mk_kms_boxes_stop, also after a failure. Said in the detail.
 */
struct mk_box_procs;
MK_WUR enum mk_err mk_kms_boxes_start(struct mk_kms *k, const char *run_dir, const char *only, int confine,
                                      struct mk_box_procs **pp);
/* Stops them (SIGTERM: each wipes its keys) and waits; k (may be NULL)
 * opens its boxes in its own process again. */
void mk_kms_boxes_stop(struct mk_kms *k, struct mk_box_procs *p);

/* Opens a box with the shares found for it, runs its self-tests and closes
 * it: MK_OK when it would be enabled, else the shares' or seal's error. */
MK_WUR enum mk_err mk_kms_box_check(struct mk_kms *k, const char *box_id);

/* A box process's state, as `meterkey box status` shows it: never a
 * secret. */
struct mk_kms_box_state {
	bool enabled;
	uint64_t generation;      /* of its sealed state; 0 while disabled */
	unsigned entered, needed; /* shares entered so far, and how many open it */
	uint32_t pid;             /* of the process */
	bool has_fingerprint;     /* once enabled: its identity key's SHA-256 */
	uint8_t fingerprint[MK_SHA256_LEN];
	char at[4096];            /* where it was reached: its socket (or tls:HOST:PORT) */
};
/* Asks the process of box id (the home's boxes as processes:
 * mk_kms_opts.boxes_dir or mk_kms_boxes_start) for its state (Box Process
 * State, which a box answers enabled or not); nothing is opened or written.
 * MK_ERR_BOX_GONE when no process answers, MK_RC_BOX_ID_INVALID when
 * another box does, MK_ERR_NOT_FOUND for a box not of the home,
 * MK_ERR_STATE when the boxes run in this process (mk_kms_box_check says
 * whether those would open). Said in the detail. */
MK_WUR enum mk_err mk_kms_box_state(struct mk_kms *k, const char *id, struct mk_kms_box_state *sp);
/* Has the process of box id disable itself (Seal: its clear keys wiped,
 * the shares entered dropped) and says its state after, as
 * mk_kms_box_state, with the same refusals. */
MK_WUR enum mk_err mk_kms_box_seal(struct mk_kms *k, const char *id, struct mk_kms_box_state *sp);

/* Calls fn for each box of the home: its ID and the domains it serves. */
MK_WUR enum mk_err mk_kms_box_list(struct mk_kms *k,
                                   int (*fn)(void *ctx, const char *id, const char *const *domains,
                                             size_t n),
                                   void *ctx);

/* Key request (MI0-MI4): a key ID from the archive, a master key from the
 * domain's Oak box for the Steel box steel_id ("" for the first Steel box
 * of the domain), its NEW record archived, the install record written to
 * kdc/ (its path in path, of at least PATH_MAX bytes). */
MK_WUR enum mk_err mk_kms_key_request(struct mk_kms *k, const char *domain, const char *steel_id,
                                      uint64_t *key_idp, char *path, size_t pathsize);

/* Runs the confirmation (MI8-MI10) of key domain/key_id again, from the
 * installation evidence kept in kdc/ when it could not run (Brass disabled,
 * the archive unreachable, ...). MK_ERR_NOT_FOUND when none waits. */
MK_WUR enum mk_err mk_kms_key_confirm(struct mk_kms *k, const char *domain, uint64_t key_id,
                                      struct mk_key_record *recp);

/* A NEW key whose installation was attempted and will never be confirmed
 * (its evidence lost, the meter gone): the domain's Brass box signs it BAD
 * with MK_RC_ABANDONED. Only a NEW key (MK_RC_TRANSITION_FORBIDDEN). */
MK_WUR enum mk_err mk_kms_key_abandon(struct mk_kms *k, const char *domain, uint64_t key_id,
                                      struct mk_key_record *recp);

/* A new simulated meter in meters/: its NVM with the factory label, then
 * manufactured by the factory station (a Steel box; station NULL or "": the
 * first of the home) as mk_kms_meter_manufacture does. A meter whose
 * manufacture fails is not kept. */
MK_WUR enum mk_err mk_kms_meter_create(struct mk_kms *k, const char *product_code,
                                       const char *mfg_seq, const char *station,
                                       char id[static MK_METER_ID_MAX + 1]);

/*
 * Manufacture (the second document, Figs. 2-3) of a meter in BLANK state:
 * the provider root (trust/root.pem) loaded into it, its transport key made
 * inside it, its request certified by the station (Steel box station; NULL
 * or "": the home's first), the manufacturing and transport certificates
 * verified by the meter, which enters TRANSPORT LOCK. The meter's refusal
 * or the station's is returned, with mk_kms_detail saying which.
 */
MK_WUR enum mk_err mk_kms_meter_manufacture(struct mk_kms *k, const char *meter_id,
                                           const char *station);

/* Writes the certificates meter_id holds, as PEM, into dir (made if
 * missing, once the meter is found: an unknown meter makes nothing): root.pem, manufacturing.pem and transport.pem (while in
 * transport lock), domain.pem and operation.pem (once registered); a file
 * of a certificate the meter no longer holds is removed. *writtenp: the
 * bit 1 << role of each written. */
MK_WUR enum mk_err mk_kms_meter_cert_export(struct mk_kms *k, const char *meter_id, const char *dir,
                                           unsigned *writtenp);

/* Installation (MI4'-MI10) of a key of domain into meter_id by steel_id (""
 * for the domain's first): the install record at record_path, or a new one
 * requested first when record_path is NULL. domain may be NULL with a
 * record_path (the record's own). On MK_OK *recp is the INSTALLED record;
 * a key found BAD is archived BAD and its reason returned. */
MK_WUR enum mk_err mk_kms_meter_install(struct mk_kms *k, const char *meter_id, const char *domain,
                                        const char *steel_id, const char *record_path,
                                        struct mk_key_record *recp);

/* Registration: first the device PKI's (Figs. 4-7: mutual authentication
 * with the registration service of the meter's postal domain, its
 * operation certificate, transport lock lifted; skipped when done already),
 * then MR1-MR4: sets the meter's indicia serial number and country and
 * registers each of its keys in the country sub-domain. date 0: the KMS
 * time. A registered meter is refused (MK_ERR_STATE, "registered already"),
 * unless a registration was interrupted after MR1 (a key still INSTALLED),
 * which the same serial number and country finish. */
MK_WUR enum mk_err mk_kms_meter_register(struct mk_kms *k, const char *meter_id,
                                         const char *indicia_serial, const char *country,
                                         int64_t date);

/* The device PKI's part of the registration alone (Figs. 4-7): a meter in
 * transport lock holding a key of its postal domain is authenticated by
 * that domain's registration service and gets its operation certificate;
 * MK_OK at once for a meter done already. MK_ERR_METER_LOCKED for a meter
 * never manufactured; the meter's or the Brass box's refusal otherwise. */
MK_WUR enum mk_err mk_kms_meter_authenticate(struct mk_kms *k, const char *meter_id);

/* Takes a meter out of service: its ACTIVE records OBSOLETE, then the meter
 * retired (one that never held a key has none to make OBSOLETE). */
MK_WUR enum mk_err mk_kms_meter_retire(struct mk_kms *k, const char *meter_id);

/* One meter as `meter list` shows it. */
struct mk_kms_meter {
	char id[MK_METER_ID_MAX + 1];
	struct mk_meter_info info;
	enum mk_key_status status[MK_METER_MAX_KEYS]; /* of info.keys[i] in the archive; 0 unknown */
};

/* Calls fn for each meter of the home, in ID order. */
MK_WUR enum mk_err mk_kms_meter_list(struct mk_kms *k,
                                     int (*fn)(void *ctx, const struct mk_kms_meter *m), void *ctx);

/* The NVM path of meter_id (for tests and `meter show`). */
MK_WUR enum mk_err mk_kms_meter_path(struct mk_kms *k, const char *meter_id, char *path,
                                     size_t pathsize);

/* ---- For the verifier and the franking (issue 5) ---------------------------- */

/* The first box of type t serving domain (its ID in id), and opening a box
 * with its shares for a session of several requests (mk_box_free closes it;
 * one session per box at a time). */
MK_WUR enum mk_err mk_kms_domain_box(struct mk_kms *k, enum mk_box_type t, const char *domain,
                                     char id[static MK_BOX_ID_LEN + 1]);
MK_WUR enum mk_err mk_kms_open_box(struct mk_kms *k, const char *id, struct mk_box **bp);
MK_WUR enum mk_err mk_kms_open_domain_box(struct mk_kms *k, enum mk_box_type t, const char *domain,
                                          struct mk_box **bp);

/* Closes a box opened with mk_kms_open_domain_box: its record of its
 * sealed state's generation goes into the archive first (what an older
 * state put back is refused against), then it is freed. */
void mk_kms_close_box(struct mk_kms *k, struct mk_box *b);

/* One command to an open box at the KMS's time: *rq is the command's
 * request struct (msg_box.h), *rs its result struct, whose BYTES point into
 * ans (the caller's buffer; freeing it wipes it). A refusal is the box's
 * code, with mk_kms_detail saying which box and step. */
MK_WUR enum mk_err mk_kms_box_call(struct mk_kms *k, struct mk_box *b, const struct mk_msg_cmd_spec *cmd,
                                   const char *domain, const void *rq, void *rs, struct mk_buf *ans);

/* The service's TLS certificates (docs/internals/service.md): the home's
 * Manufacturing Box (the provider CA) certifies public key pub for role
 * (MK_ROLE_SERVER, or a client's: MK_ROLE_FACTORY to MK_ROLE_OPERATOR)
 * with common name name, valid for days (1 to 825); its DER into der. */
MK_WUR enum mk_err mk_kms_service_cert(struct mk_kms *k, enum mk_cert_role role, const char *name, uint32_t days,
                                       const uint8_t pub[static MK_EC_PUB_LEN], struct mk_buf *der);

/* Signed heads (docs/internals/archive.md, "Signed heads"). The newest
 * head the domain's Brass box knows (the first Brass box serving it; box
 * may be NULL) into head, left empty when it knows none:
 * MK_RC_RESOURCE_UNAVAILABLE when no Brass box serves the domain. And the
 * signing of the versions that wait for a head (a failure between a write
 * and its head): MK_OK when none wait. */
MK_WUR enum mk_err mk_kms_box_head(struct mk_kms *k, const char *domain, char box[MK_BOX_ID_LEN + 1],
                                   struct mk_buf *head);
MK_WUR enum mk_err mk_kms_sign_heads(struct mk_kms *k, const char *domain);

/* The domain's token length (domains/<D>.policy; the default when absent). */
uint8_t mk_kms_token_len(struct mk_kms *k, const char *domain);

/* Franks count mailpieces with meter_id: vendor domain (NULL: VE) and the
 * meter's other key's domain as postal; out[0..count). With sign, each
 * indicium also carries the meter's ECDSA signature with its operation key
 * (public-key indicia; a registered meter only). Stops at the first refusal
 * (the ones before it are franked: *donep says how many). */
MK_WUR enum mk_err mk_kms_meter_frank(struct mk_kms *k, const char *meter_id, const char *vendor,
                                      uint32_t postage, const char *origin, uint32_t day, bool sign,
                                      size_t count,
                                      struct mk_indicium *out, size_t *donep);
/* mk_kms_meter_frank with the frank request's max_ahead (0-65535: how many
 * days after the meter's clock, the KMS's time, day may be; negative: the
 * meter's default, 1). A date before the meter's registration day or beyond
 * that is refused by the meter (MK_ERR_METER_DATE), nothing franked. */
MK_WUR enum mk_err mk_kms_meter_frank_ahead(struct mk_kms *k, const char *meter_id, const char *vendor,
                                            uint32_t postage, const char *origin, uint32_t day, bool sign,
                                            int max_ahead, size_t count, struct mk_indicium *out,
                                            size_t *donep);
/* A postage reset of amount cents. */
MK_WUR enum mk_err mk_kms_meter_credit(struct mk_kms *k, const char *meter_id, uint64_t amount);

/* Token key distribution (claims 5-8): for every meter of the home with an
 * ACTIVE key in domain (or only meter_id), the domain's Brass box makes the
 * token key record of period, and the archive keeps it. *countp: how many.
 * A meter_id not in the home: MK_ERR_NOT_FOUND; one without an ACTIVE key
 * of domain: MK_ERR_STATE. */
MK_WUR enum mk_err mk_kms_distribute(struct mk_kms *k, const char *domain, uint32_t period,
                                     const char *meter_id, size_t *countp);

#endif
