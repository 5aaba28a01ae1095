/*
 * meterkey — the simulated meter (postal security device, PSD) and its client.
 *
 * A meter is a small process with a persistent NVM file that answers requests
 * on the framed link (frame.h): requests travel in frames of class
 * MK_FRAME_METER_COMMAND, answers in MK_FRAME_METER_RESPONSE. The Steel box and
 * the KMS reach it only through that link, through the client calls below.
 * What it does, from the source document ("Digital Meter Requirements",
 * "Earth Domain Digital Meters", messages MI5, MI6 and MR1):
 *   - it is made with a factory label: product code and manufacturing
 *     sequence number (MSN);
 *   - MI5/MI6: it takes one domain master key per domain, once, and answers
 *     with its MSN and the test tokens it computes from the key it stored;
 *   - MR1: it is given an indicia serial number, a country (sub-domain) and a
 *     date, once (an Earth meter never goes back), and then reports them,
 *     MACed with the master key of a domain it holds;
 *   - it can be retired: its keys are erased and it refuses everything else.
 * Messages and NVM byte by byte: docs/formats.md §7; the design:
 * docs/internals/device.md.
 */
#ifndef MK_METER_H
#define MK_METER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meterkey/caps.h"
#include "meterkey/ids.h"
#include "meterkey/buf.h"
#include "meterkey/err.h"
#include "meterkey/msg_meter.h"

#define MK_METER_KEY_ALG_AES128 1
/* Key slots: one per domain (vendor and postal, with room to spare). */
#define MK_METER_MAX_KEYS 4
/* How long the client waits for the meter's answer once its request was
 * acknowledged (the meter syncs its NVM before it answers). */
#define MK_METER_RESPONSE_TIMEOUT_MS 30000

enum mk_meter_state { MK_METER_MANUFACTURED = 1, MK_METER_REGISTERED = 2, MK_METER_RETIRED = 3 };

/* "manufactured", "registered", "retired"; "?" for anything else. */
const char *mk_meter_state_name(enum mk_meter_state s);

/*
 * Where the meter stands in the device PKI (the second source document):
 *   BLANK        fresh from the line: nothing loaded;
 *   ROOT         the provider's root certificate loaded (Fig. 2, step 105);
 *   KEYED        its transport key pair made, the request given (step 120);
 *   LOCKED       transport certificate stored: TRANSPORT LOCK (step 145): it
 *                takes master keys but no parameters and does not frank;
 *   OPERATIONAL  registered (Fig. 7): operation key and certificate, the
 *                transport key and certificates deleted, unlocked.
 */
enum mk_meter_pki { MK_METER_PKI_BLANK = 0, MK_METER_PKI_ROOT = 1, MK_METER_PKI_KEYED = 2,
                    MK_METER_PKI_LOCKED = 3, MK_METER_PKI_OPERATIONAL = 4 };

/* "blank", "root", "keyed", "locked", "operational"; "?" otherwise. */
const char *mk_meter_pki_name(enum mk_meter_pki p);

/* A key slot as the meter shows it: never the key bytes. */
struct mk_meter_key_info {
	char domain[MK_DOMAIN_ID_MAX + 1];
	uint64_t key_id;
};

struct mk_meter_info {
	char product_code[MK_IDENT_MAX + 1];
	char mfg_seq[MK_IDENT_MAX + 1];
	char indicia_serial[MK_IDENT_MAX + 1]; /* "" until registration (Earth meters) */
	char country[MK_DOMAIN_ID_MAX + 1];    /* the country sub-domain, "" until registered */
	int64_t registered;                    /* registration date (unix time), 0 before */
	enum mk_meter_state state;
	enum mk_meter_pki pki;
	size_t nkeys;
	struct mk_meter_key_info keys[MK_METER_MAX_KEYS]; /* never the key bytes */
	uint32_t piece_count;  /* pieces franked */
	uint64_t ascending;    /* postage used, cents */
	uint64_t descending;   /* postage left, cents */
};

/* ---- The NVM file --------------------------------------------------------------- */

/* Creates a new NVM file at path (mode 0600, written atomically and synced)
 * holding the factory label: product_code and mfg_seq (1..MK_IDENT_MAX
 * printable ASCII each, else MK_ERR_INVALID_ARG), no keys, state
 * MANUFACTURED. MK_RC_RECORD_EXISTS if something exists at path already;
 * MK_ERR_IO. No secret is involved yet. */
MK_WUR enum mk_err mk_meter_nvm_create(const char *path, const char *product_code,
                                       const char *mfg_seq);

/* Reads the identity, state and key slots (domain and key ID only) straight
 * from the NVM file at path into *info, for listing meters without running
 * them. The key bytes are read (the file is checked whole) but wiped at once
 * and never given out. MK_ERR_NOT_FOUND; MK_ERR_NVM_CORRUPT (bad magic,
 * version, CRC, length or content: nothing is half-loaded); MK_ERR_IO. On
 * failure *info is zeroed. */
MK_WUR enum mk_err mk_meter_nvm_info(const char *path, struct mk_meter_info *info);

/* ---- The meter ------------------------------------------------------------------- */

/*
 * Runs the meter whose NVM is at nvm_path on the link rfd/wfd (not closed
 * here) until the peer closes it (MK_OK) or an I/O error (MK_ERR_IO). The NVM
 * is loaded at start; an NVM that is missing, cannot be read or does not
 * decode (as mk_meter_nvm_info) is answered to every command as that error,
 * level 3, and changes nothing: the device says what is wrong with it. Every change is written to the NVM atomically (temporary file, fsync,
 * rename, directory sync) BEFORE the answer is sent; an answer whose write
 * failed says MK_ERR_IO and the meter is unchanged. A malformed request gets a
 * level-2 answer; a frame damaged beyond the link's retries is dropped; neither
 * stops the meter. The master keys live in wiped memory and are wiped when it
 * returns. WARNING: the caller should ignore SIGPIPE (frame.h).
 */
MK_WUR enum mk_err mk_meter_serve(const char *nvm_path, int rfd, int wfd);

/* ---- The client ------------------------------------------------------------------ */

struct mk_meter_conn;

/* Starts a meter: forks a child process that runs mk_meter_serve(nvm_path) on
 * one end of a socketpair and _exit()s (status 0 when it returned MK_OK); the
 * caller keeps the other end, with link timeouts set for a local socket. The
 * NVM is not checked here: a child that cannot load it closes the link, and
 * the first request fails with MK_ERR_EOF (or MK_ERR_IO when the child closed
 * before the request was written). *cp (free with
 * mk_meter_disconnect) is set only on MK_OK. MK_ERR_IO (socketpair, fork),
 * MK_ERR_NOMEM. WARNING: ignore SIGPIPE in the calling process. */
MK_WUR enum mk_err mk_meter_connect(const char *nvm_path, struct mk_meter_conn **cp);

/* Closes the link and, for a connection made by mk_meter_connect, waits for
 * the child to exit. NULL is a no-op. */
void mk_meter_disconnect(struct mk_meter_conn *c);

/* The message layer's line to this meter (framed link, one request and one
 * answer per round trip): what a Steel box speaks the meter's commands over
 * (mk_box_attach_meter). Lives as long as c. */
const struct mk_msg_link *mk_meter_line(struct mk_meter_conn *c);

/* Gives away c's end of the link (the socket to the meter's process): the
 * descriptor is the caller's from now on (to hand a Steel box process as
 * its meter line, mk_box_attach_meter_fd, which closes it once sent), and
 * c can no longer talk to the meter; mk_meter_disconnect then only waits
 * for the meter to stop. -1 when c has none. */
int mk_meter_conn_give_fd(struct mk_meter_conn *c);

/* A connection over an existing link (a socketpair in tests, a serial line):
 * rfd/wfd stay the caller's (mk_meter_disconnect does not close them); the
 * link keeps the defaults of mk_link_init. *cp set only on MK_OK. */
MK_WUR enum mk_err mk_meter_conn_from_fds(int rfd, int wfd, struct mk_meter_conn **cp);

/*
 * Every request below returns MK_OK, the meter's refusal (the code in its
 * answer: MK_ERR_STATE, MK_RC_*, MK_ERR_CMD_*, MK_ERR_IO for its NVM...), a
 * link error (MK_ERR_FRAME_*, MK_ERR_TIMEOUT, MK_ERR_EOF, MK_ERR_IO),
 * MK_ERR_INVALID_ARG for arguments the client refuses before sending, or
 * MK_ERR_TLV_* / MK_ERR_FRAME_CLASS for an answer that does not decode or
 * does not answer the request. Outputs are set only on MK_OK.
 */

/* The meter's identity, state and key slots (no key bytes). */
MK_WUR enum mk_err mk_meter_get_info(struct mk_meter_conn *c, struct mk_meter_info *info);

/*
 * MI5 + MI6: installs key (a secret: sent on the link, which is the meter's
 * secure channel to the Steel box in this simulation, and wiped from every
 * buffer here) for domain with key_id. The meter stores it, reads it back from
 * its NVM and answers with its MSN (mfg_seq_out) and the test tokens
 * mk_test_tokens() of the stored key (tokens_out); the caller compares them
 * with the tokens it expects. Refused, the meter left unchanged: retired meter
 * (MK_ERR_STATE), slot of that domain already holds a key
 * (MK_RC_RECORD_EXISTS: a key is installed once), key_id 0
 * (MK_ERR_CMD_PARAM_SYNTAX), no free slot (MK_RC_RESOURCE_UNAVAILABLE).
 */
MK_WUR enum mk_err mk_meter_install_key(struct mk_meter_conn *c, const char *domain,
                                        uint64_t key_id,
                                        const uint8_t key[static MK_MASTER_KEY_LEN],
                                        char mfg_seq_out[static MK_IDENT_MAX + 1],
                                        uint8_t tokens_out[static MK_TEST_TOKENS_LEN]);

/* MR1 input: sets the indicia serial number (1..MK_IDENT_MAX printable
 * ASCII), the country (sub-domain ID) and the registration date (> 0), and
 * moves the meter to REGISTERED. Refused with MK_ERR_STATE when the meter
 * already has an indicia serial number (once registered to a country it never
 * goes back), is retired, or holds no key. */
MK_WUR enum mk_err mk_meter_set_indicia(struct mk_meter_conn *c, const char *indicia_serial,
                                        const char *country, int64_t date);

/* MR1 output: the registration report of the key of one domain:
 * mac = AES-CMAC(master key of that domain, mk_meter_report_encode_tbs(report)). */
struct mk_meter_report {
	char domain[MK_DOMAIN_ID_MAX + 1];
	uint64_t key_id;
	char product_code[MK_IDENT_MAX + 1];
	char mfg_seq[MK_IDENT_MAX + 1];
	char indicia_serial[MK_IDENT_MAX + 1];
	char country[MK_DOMAIN_ID_MAX + 1];
	int64_t date;
	uint8_t mac[MK_METER_MAC_LEN];
};

/* Asks for the report of domain's key. The client does not verify the MAC (it
 * has no key): the Brass box does, over mk_meter_report_encode_tbs. Refused:
 * MK_ERR_STATE (not REGISTERED: not yet, or retired), MK_RC_DOMAIN_UNKNOWN (no
 * key of that domain). */
MK_WUR enum mk_err mk_meter_get_report(struct mk_meter_conn *c, const char *domain,
                                       struct mk_meter_report *out);

/* The exact bytes the MAC covers: the label MK_METER_REPORT_LABEL (no NUL)
 * followed by the canonical TLV of every field but mac (docs/formats.md §7.3,
 * mk_msg_report_tbs), appended to out (cut back on failure).
 * MK_ERR_INVALID_ARG for a field out of its syntax; the buffer's errors. No
 * secret. */
MK_WUR enum mk_err mk_meter_report_encode_tbs(const struct mk_meter_report *r,
                                              struct mk_buf *out);
/* The report's fields (not its MAC) as the message Register Key carries
 * (msg_meter.h). */
void mk_meter_report_to_msg(const struct mk_meter_report *r, struct mk_msg_report *m);

/* Takes the meter out of service: state RETIRED, the key bytes erased from
 * the NVM (the slots' domains and key IDs stay, for the record). Refused with
 * MK_ERR_STATE when already retired. */
MK_WUR enum mk_err mk_meter_retire(struct mk_meter_conn *c);

/* ---- The device PKI: manufacture and registration (issue 6) ------------------ */

/* The time (unix seconds) the following requests carry, which the meter
 * takes as its clock for certificate validity; 0 (the default): the host's
 * clock at each request. The KMS passes its own time (--time). */
void mk_meter_set_time(struct mk_meter_conn *c, int64_t t);

/*
 * Manufacture, Figs. 2-3 (the station computer's side is mk_kms):
 *   load_root: the provider's self-signed root certificate (DER). The meter
 *     checks the key, the self-signature, the profile (role ROOT) and the
 *     validity at its clock, and stores it. BLANK only (MK_ERR_STATE);
 *     the certificate's errors (pki.h).
 *   gen_transport: makes the transport key pair inside the meter (the
 *     private key stays in its NVM) and answers a PKCS#10 request for it,
 *     signed with it, CN "<product code>-<MSN>" (appended to csr_out). ROOT
 *     or KEYED (a new pair replaces one never certified); else MK_ERR_STATE.
 *   load_transport: the station's manufacturing certificate and the
 *     transport certificate it issued. The meter verifies root ->
 *     manufacturing -> transport at its clock, that the certificate is of its
 *     own transport key (MK_ERR_CERT_KEY) and names it (MK_ERR_CERT_FORMAT),
 *     stores both and enters TRANSPORT LOCK. KEYED only.
 * Every refusal leaves the meter as it was.
 */
MK_WUR enum mk_err mk_meter_load_root(struct mk_meter_conn *c, const uint8_t *der, size_t n);
MK_WUR enum mk_err mk_meter_gen_transport(struct mk_meter_conn *c, struct mk_buf *csr_out);
MK_WUR enum mk_err mk_meter_load_transport(struct mk_meter_conn *c, const uint8_t *mfg, size_t mn,
                                           const uint8_t *transport, size_t tn);

/* A certificate the meter holds, by role (pki.h enum mk_cert_role: root,
 * manufacturing, transport, domain, operation), its DER appended to
 * der_out; MK_ERR_NOT_FOUND when it holds none of that role. Public data. */
MK_WUR enum mk_err mk_meter_get_cert(struct mk_meter_conn *c, int role, struct mk_buf *der_out);

/*
 * Registration, Figs. 5-7 (the host relays between the meter and the
 * registration service, mk_kms):
 *   reg_start: the service's server challenge (an ephemeral P-256 public
 *     key) and its domain certificate. The meter verifies the domain
 *     certificate with its root (the domain must be one it holds a master
 *     key of: MK_RC_WRONG_DOMAIN) and refuses the server challenge it took
 *     last (MK_ERR_CHALLENGE; it remembers one: the single use of every
 *     challenge is the service's, which deletes it when answered); makes its operation key pair and a product
 *     challenge (ephemeral key pair), and answers the operation request
 *     (PKCS#10, appended to csr_out), the transport key's signature over
 *     mk_reg_request_tbs (sig), the product challenge and the product key
 *     proof KC_2_U (crypto.h mk_kc_tags; U = the meter's ID, V = the domain
 *     ID). LOCKED only. The new keys stay in the meter's memory, not its NVM,
 *     until reg_finish; only the challenge's fingerprint is written.
 *   reg_finish: the operation certificate and the server key proof KC_2_V.
 *     The meter checks the proof (MK_ERR_KEY_PROOF), verifies root -> domain
 *     -> operation at its clock, that the certificate is of its operation key
 *     and names it, then stores the operation key and certificate and the
 *     domain certificate, DELETES the transport key, the transport and
 *     manufacturing certificates, and unlocks (OPERATIONAL). Without a
 *     reg_start in this session: MK_ERR_STATE. Any refusal ends the
 *     exchange (a new reg_start is needed) and leaves the meter locked.
 */
MK_WUR enum mk_err mk_meter_reg_start(struct mk_meter_conn *c, const uint8_t server[static 65],
                                      const uint8_t *domain_cert, size_t dn, struct mk_buf *csr_out,
                                      uint8_t sig_out[static 64], uint8_t product_out[static 65],
                                      uint8_t proof_out[static MK_METER_PROOF_LEN]);
MK_WUR enum mk_err mk_meter_reg_finish(struct mk_meter_conn *c, const uint8_t *op_cert, size_t n,
                                       const uint8_t proof[static MK_METER_PROOF_LEN]);

/* ---- Franking (issue 5) ---------------------------------------------------- */

struct mk_indicium;

/* What one frank asks of the meter: the vendor and postal domains whose keys
 * make the two tokens and each token's length (the domains' policy, known to
 * the host), the postage, the origin postal code and the mailing date (days
 * since 1970-01-01; the meter prints the date its host gives). */
struct mk_meter_frank {
	char vendor[MK_DOMAIN_ID_MAX + 1], postal[MK_DOMAIN_ID_MAX + 1];
	uint8_t vendor_token_len, postal_token_len;
	uint32_t postage;
	char origin[16];
	uint32_t day;
	bool sign; /* add the ECDSA signature of the operation key (public-key indicia) */
	/* how many days after the meter's clock (the request's time) day may be;
	 * without has_max_ahead, the meter's MK_METER_DAYS_AHEAD_DEFAULT (1) */
	bool has_max_ahead;
	uint16_t max_ahead;
};

/*
 * Franks one mailpiece: the piece count and the ascending register go up,
 * the descending register down by the postage, written to NVM before the
 * indicium is given. Refused, the meter unchanged: not registered or retired
 * (MK_ERR_METER_NOT_REGISTERED); a mailing date before the registration day
 * or more than max_ahead days after the meter's clock, the day of the
 * request's time (mk_meter_set_time; MK_ERR_METER_DATE); funds short
 * (MK_ERR_METER_FUNDS); no key of either domain (MK_RC_DOMAIN_UNKNOWN); a
 * field out of its syntax (level 2).
 */
MK_WUR enum mk_err mk_meter_frank(struct mk_meter_conn *c, const struct mk_meter_frank *f,
                                  struct mk_indicium *out);

/* Adds amount cents to the descending register (a postage reset; the
 * simulation does not authenticate it). Registered meters only. */
MK_WUR enum mk_err mk_meter_credit(struct mk_meter_conn *c, uint64_t amount);

#endif
