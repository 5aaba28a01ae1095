/*
 * Private to src/box: the state every box type shares, the domain process,
 * and the helpers the four box types use. docs/internals/boxes.md.
 */
#ifndef MK_BOX_INT_H
#define MK_BOX_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "meterkey/archive.h"
#include "meterkey/boxes.h"
#include "meterkey/msg_box.h"
#include "meterkey/indicium.h"
#include "meterkey/rng.h"
#include "meterkey/tlv.h"

/* The sealed state's tags (formats.md §8.3): what every box seals, then
 * each kind's own part (Steel: 06, 07; Manufacturing: 10). */
enum {
	S_TYPE = 0x01, S_ID = 0x02, S_ANCHOR = 0x03, S_STARTUP_CONF = 0x04, S_DOMAINS = 0x05,
	S_STATION = 0x06, S_STATION_CERT = 0x07, S_MFG = 0x10,
	S_IDENTITY = 0x20, /* after the kind's part: the box's identity key */
};
/* A domain process package's tags (formats.md §8.5): the Manufacturing Box
 * writes it (mfg.c), the box it is for reads it (domain.c). */
enum {
	P_DOMAIN = 0x01, P_BOX_ID = 0x02, P_DKS = 0x03, P_SIGN = 0x04, P_CONF = 0x05, P_OAK = 0x06,
	P_BRASS_CONF = 0x07, P_SECRET = 0x08, P_COUNTRIES = 0x09, P_TOKEN_LEN = 0x0A,
	P_BRASS_AUTH = 0x0B, P_TIN_CONF = 0x0C, P_AUTHORITY = 0x0D, P_DOMAIN_CERT = 0x0E,
	P_ROOT = 0x0F, P_TIN_FRESH = 0x10, P_VERIFY_DAYS = 0x11, P_AHEAD_DAYS = 0x12,
};

/* One country sub-domain of a domain and its secret key (Brass only). */
struct box_country {
	char id[MK_DOMAIN_ID_MAX + 1];
	struct mk_secret *key; /* 32 bytes; NULL in boxes other than Brass */
};

/*
 * A domain process: what one box holds for one domain (formats.md §8.3).
 * Which keys are present depends on the box type:
 *   Oak:   sign = Oak authentication, brass_conf = Brass confidentiality (pub);
 *   Steel: sign = this Steel's authentication, conf = its confidentiality,
 *          oak = Oak authentication (pub);
 *   Brass: sign = Brass authentication, conf = Brass confidentiality,
 *          oak = Oak authentication (pub), secret, countries with keys.
 *   Tin:   conf = the domain's Tin confidentiality key, brass_auth (pub).
 * dks (the Domain Key Set authentication key, pub) and the domain's token
 * length are in every one; Brass also has tin_conf (pub) when the domain has
 * Tin keys.
 */
/* A server challenge the Brass box gave and has not yet seen answered
 * (registration, Fig. 5): single use, kept in the sealed state. */
#define BOX_REG_PENDING_MAX 16
#define BOX_REG_CHALLENGE_LIFE (24 * 3600) /* seconds a challenge stays good */
struct box_reg_pending {
	uint8_t server[MK_EC_PUB_LEN];     /* the challenge: an ephemeral public key */
	struct mk_secret *eph;             /* its private scalar (32 bytes) */
	uint8_t transport_fp[32];          /* SHA-256 of the transport certificate it answered */
	int64_t time;                      /* when it was given */
};

struct box_domain {
	char id[MK_DOMAIN_ID_MAX + 1];
	struct mk_secret *package; /* the decrypted package, kept for resealing */
	EVP_PKEY *dks, *sign, *conf, *oak, *brass_conf;
	uint8_t sign_pub[MK_EC_PUB_LEN]; /* sign's public key, encoded (when sign is set) */
	EVP_PKEY *brass_auth; /* Tin: checks token key records */
	EVP_PKEY *tin_conf;   /* Brass: token keys are wrapped to it */
	uint8_t token_len;    /* the domain's token length */
	uint32_t tin_fresh;   /* Brass: how long a token key record it signs is fresh (s) */
	uint16_t verify_days; /* Brass and Tin: the date window, days after an indicium's date */
	uint8_t ahead_days;   /* and days before it (MK_VERIFY_DAYS_*, MK_AHEAD_DAYS_*) */
	struct mk_secret *secret;
	size_t ncountries;
	struct box_country countries[MK_DOMAIN_MAX_COUNTRIES];
	uint64_t last_key_id; /* Oak and Steel: the last key ID processed */
	uint8_t *last_mi7;    /* Steel: the MI7 of key last_mi7_key, kept to give again */
	size_t last_mi7_len;
	uint64_t last_mi7_key;
	/* Brass, the registration service of the device PKI: the postal
	 * authority key, its domain certificate and the provider root */
	EVP_PKEY *authority;
	X509 *domain_cert, *root;
	size_t npending;
	struct box_reg_pending pending[BOX_REG_PENDING_MAX];
	/* Brass and Tin: the newest signed head of the domain's archive this
	 * box knows (heads.c): the one it signed last (Brass, kept in its
	 * sealed state), or a newer one it was shown since */
	uint8_t *head;
	size_t head_len;
	struct mk_head head_dec;
	int head_new; /* known since the state was last saved */
};

struct mk_box;

/*
 * A box kind (Manufacturing, Oak, Steel, Brass, Tin), defined in its own
 * file (mfg.c, oak.c, steel.c, brass.c, tin.c) and listed in kinds.c: its
 * type, its command table (whose name is the kind's name) and what it adds
 * to what every box does. The common code (common.c, state.c) calls a
 * kind only through these pointers, so no file of src/box calls one above
 * it. Every hook may be NULL (the kind adds nothing there). b->ks is the
 * kind's own state: its file alone knows its type.
 */
struct box_kind {
	enum mk_box_type type;
	const struct mk_msg_table *table;
	/* The kind's part of the sealed state, after the domains (formats.md
	 * §8.3): written when there is one, read whole (r may hold nothing). */
	enum mk_err (*state_encode)(const struct mk_box *b, struct mk_tlv_writer *w);
	enum mk_err (*state_decode)(struct mk_box *b, struct mk_tlv_reader *r);
	/* Makes b->ks when the box is made or opened (NULL: the kind makes its
	 * state later, or has none). */
	enum mk_err (*state_new)(struct mk_box *b);
	/* Wipes and frees what b->ks holds (the box back to its factory state;
	 * also a failed Set Secure Box ID). */
	void (*state_free)(struct mk_box *b);
	/* Frees b->ks itself when the box is freed (NULL: state_free does). */
	void (*state_destroy)(struct mk_box *b);
	/* Set Secure Box ID: what the kind makes when the box gets its ID
	 * (before it seals); a public key it adds to the answer goes to
	 * station (*has_station set). Undone by state_free on failure. */
	enum mk_err (*set_id)(struct mk_box *b, uint8_t station[static MK_EC_PUB_LEN], bool *has_station);
	/* Add Domain for a kind whose domain process is its own (M): the
	 * decrypted package p[0..n) of domain. NULL: a domain process of
	 * formats.md §8.5, loaded by the common code. */
	enum mk_err (*take_process)(struct mk_box *b, const char *domain, const uint8_t *p, size_t n);
	/* Status: the kind's own list of domains (M). NULL: the domain
	 * processes. */
	enum mk_err (*list_domains)(const struct mk_box *b, struct mk_tlv_writer *list);
	/* The station's meter line (Steel; mk_box_attach_meter). */
	void (*attach_meter)(struct mk_box *b, const struct mk_msg_link *line);
};

/* The kind of type t (kinds.c), or NULL for no box type. */
const struct box_kind *box_kind_of(enum mk_box_type t);
extern const struct box_kind box_kind_mfg, box_kind_oak, box_kind_steel, box_kind_brass, box_kind_tin;

struct mk_box {
	enum mk_box_type type;
	char id[MK_BOX_ID_LEN + 1];
	char *store_dir, *share_dir;
	struct mk_rng *rng;
	uint8_t anchor[MK_EC_PUB_LEN]; /* M's startup authentication key for this type */
	int has_anchor;
	uint8_t oc[32];                /* the Operation Combination; valid when enabled */
	int enabled;
	uint64_t generation;           /* of the sealed state last written or read */
	EVP_PKEY *startup_conf;        /* made at Set Secure Box ID */
	EVP_PKEY *identity;            /* made when the box is made (mk_box_new): what
	                                * its operator's fingerprint names */
	size_t ndomains;
	struct box_domain domains[MK_BOX_MAX_DOMAINS];
	int lock_fd;                   /* store_dir/<id>.lock, held while open; -1 none */
	const struct box_kind *kind;
	void *ks;                      /* the kind's own state (NULL until it makes one) */
	struct box_remote *remote;     /* a box in another process (remote.c): only
	                                * type, id and kind are set besides */
};

/* The connection to a box in another process (remote.c): a call sent and
 * answered there; freed with the struct mk_box that holds it. */
struct box_remote;
MK_WUR enum mk_err box_remote_call(struct mk_box *b, const uint8_t *req, size_t n, struct mk_buf *resp);
void box_remote_free(struct box_remote *r);

/* The signed bodies (MI4, MI7, MI10/MR4, Set Secure Box ID, domain
 * processes, Steel certificates) are declared in msg_box.h. */

/* The commands every box has (common.c), and the dispatcher's two questions. */
MK_MSG_HANDLER(box_cmd_set_id);
MK_MSG_HANDLER(box_cmd_add_domain);
MK_MSG_HANDLER(box_cmd_status);
int box_domain_known(void *box, const char *domain);
int box_enabled(void *box);

/* Verify (Brass, Tin; verify.c), and the key cache it keeps in b->ks while
 * the box is open, wiped and freed by box_vcache_free (their state_free). */
MK_MSG_HANDLER(box_cmd_verify);
void box_vcache_free(struct mk_box *b);
/* Of the session's key records (Brass), the signatures verified, and
 * those found verified in an earlier session instead (verified.c). */
void box_verify_counts(const struct mk_box *b, size_t *checked, size_t *remembered);

/* The domain process of domain id, or NULL. */
struct box_domain *box_find_domain(struct mk_box *b, const char *id);
/* heads.c: checks a signed head p[0..n) of d shown to the box: of d,
 * signed by key (the domain's Brass authentication key), and not older
 * than the newest d knows, nor another of the same number; a newer one
 * becomes the newest known. With older_ok, an older one is let through
 * (Sign Head's answer again). MK_RC_PARAM_MISMATCH (malformed),
 * MK_RC_WRONG_DOMAIN, MK_RC_SIGNATURE_INVALID, MK_RC_HEAD_STALE. */
MK_WUR enum mk_err box_head_check(struct box_domain *d, EVP_PKEY *key, const uint8_t *p, size_t n,
                                  struct mk_head *h, int older_ok);
enum mk_err box_cmd_sign_head(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *params,
                              struct mk_tlv_writer *result);
enum mk_err box_cmd_head(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *params,
                         struct mk_tlv_writer *result);
/* The key of country in d, or NULL. */
const struct box_country *box_find_country(const struct box_domain *d, const char *country);

/* Seals the box's state (a new generation) into store_dir/<id>.box, then
 * records the generation in store_dir/<id>.gen (state.c). */
MK_WUR enum mk_err box_save(struct mk_box *b);
/* The counter file store_dir/<id>.gen: written with b's generation;
 * checked at open: MK_ERR_SEAL_ROLLBACK when it holds a newer generation
 * than the state read (an older state put back), MK_OK when there is none,
 * MK_ERR_SEAL_FORMAT when it does not read as a number. */
MK_WUR enum mk_err box_generation_write(const struct mk_box *b);
MK_WUR enum mk_err box_generation_check(const struct mk_box *b);
/* The proof of a new box's answer (common.c): with check NULL, signs the
 * accept body (msg_box.h, kind MK_SIGNED_ACCEPT) of id, conf, nonce (16
 * bytes) and station (NULL but for Steel) with identity into sig; else
 * verifies check against it (MK_ERR_VERIFY when it does not hold). */
MK_WUR enum mk_err box_accept_proof(EVP_PKEY *identity, const char *id, const uint8_t conf[static MK_EC_PUB_LEN],
                                    const uint8_t *nonce, const uint8_t *station,
                                    uint8_t sig[static MK_ECDSA_SIG_LEN], const uint8_t *check);
/* Generation Record, Identity (common.c). */
MK_MSG_HANDLER(box_cmd_generation);
MK_MSG_HANDLER(box_cmd_identity);
/* The sealed file of box id under b's store_dir into out: 0 when it does
 * not fit. */
int box_state_path(const struct mk_box *b, const char *id, char *out, size_t cap);
/* Reads a decrypted state p[0..n) into b (of its type and ID, else
 * MK_ERR_SEAL_FOREIGN), the kind's part through its hook. */
MK_WUR enum mk_err box_state_decode(struct mk_box *b, const uint8_t *p, size_t n);

/* Generates a new OC, splits it into k of n shares written to share_dir as
 * <id>.<i>.share, and marks the box enabled. */
MK_WUR enum mk_err box_make_shares(struct mk_box *b, unsigned k, unsigned n);
/* Splits secret[0..len) for box b into k of n share files named
 * <id>-<what>.<i>.share in share_dir. */
MK_WUR enum mk_err box_write_shares(struct mk_box *b, const char *what, const uint8_t *secret,
                                   size_t len, unsigned k, unsigned n);

/* Removes share files 1..n of box b's secret what (a failed initialisation). */
void box_remove_shares(struct mk_box *b, const char *what, unsigned n);


/* Parses a decrypted domain process package into d (formats.md §8.3); a
 * package made for another box than owner is refused. */
MK_WUR enum mk_err box_domain_load(struct box_domain *d, const char *owner, const uint8_t *p, size_t n);
void box_domain_clear(struct box_domain *d);

/* TLV helpers for keys (helpers.c); the optional ones leave *kp / *cp NULL
 * when the element is absent. */
MK_WUR enum mk_err box_put_priv(struct mk_tlv_writer *w, uint8_t tag, const EVP_PKEY *k);
MK_WUR enum mk_err box_get_priv(struct mk_tlv_reader *r, uint8_t tag, EVP_PKEY **kp);
MK_WUR enum mk_err box_put_pub(struct mk_tlv_writer *w, uint8_t tag, const EVP_PKEY *k);
MK_WUR enum mk_err box_get_pub(struct mk_tlv_reader *r, uint8_t tag, EVP_PKEY **kp);
MK_WUR enum mk_err box_put_secret(struct mk_tlv_writer *w, uint8_t tag, const struct mk_secret *s);
MK_WUR enum mk_err box_get_secret(struct mk_tlv_reader *r, uint8_t tag, size_t len,
                                  struct mk_secret **sp);
MK_WUR enum mk_err box_get_opt_key(struct mk_tlv_reader *r, uint8_t tag, int priv, EVP_PKEY **kp);
MK_WUR enum mk_err box_get_opt_cert(struct mk_tlv_reader *r, uint8_t tag, X509 **cp);

/* The associated data of a Brass-encrypted record blob: the record header
 * (formats.md §8.6). */
MK_WUR enum mk_err box_record_aad(const struct mk_key_record *rec, struct mk_buf *out);

/* The secret key a Brass-encrypted record's blob is under: its country's
 * (ACTIVE, OBSOLETE) or the domain's (INSTALLED); NULL when this domain
 * process has no such country. */
const struct mk_secret *box_record_secret(const struct box_domain *d, const struct mk_key_record *rec);

/* The master key of a Brass-encrypted record (wrap_alg GCM) under k, the
 * record header as associated data: MK_OK with *keyp (freed by the caller),
 * or MK_RC_DECRYPT_FAILED (also for k NULL) with *keyp NULL. */
MK_WUR enum mk_err box_open_blob(const struct mk_key_record *rec, const struct mk_secret *k,
                                 struct mk_secret **keyp);

/* Signs rec (signer = box ID) with key into rec->sig. */
MK_WUR enum mk_err box_sign_record(struct mk_box *b, EVP_PKEY *key, struct mk_key_record *rec);
/* Verifies rec's signature with key: MK_RC_SIGNATURE_INVALID when missing or bad. */
MK_WUR enum mk_err box_verify_record(EVP_PKEY *key, const struct mk_key_record *rec);

/* verified.c: the records a Brass box verified, remembered across its
 * sessions in <store>/<id>.verified (docs/formats.md, "Verified
 * records"): digests, each binding a record's bytes to the key that
 * verified its signature, authenticated under a key of the box's OC. */
struct box_verified;
#define BOX_VERIFIED_MAX ((size_t)1 << 18) /* the newest kept in the file */
/* The digest of a record (rec_hash: the SHA-256 of its bytes) verified
 * with the public key pub (encoded). */
MK_WUR enum mk_err box_verified_digest(const uint8_t pub[static MK_EC_PUB_LEN], const uint8_t rec_hash[static 32],
                                       uint8_t out[static 32]);
/* The digests of the file at path when it is box_id's, whole and
 * authentic, else none (box_verified_refused says a file was there):
 * MK_OK with *vp, or MK_ERR_NOMEM. */
MK_WUR enum mk_err box_verified_load(const char *path, const char *box_id, const uint8_t oc[static 32],
                                     struct box_verified **vp);
int box_verified_has(const struct box_verified *v, const uint8_t d[static 32]);
MK_WUR enum mk_err box_verified_add(struct box_verified *v, const uint8_t d[static 32]);
size_t box_verified_count(const struct box_verified *v);
int box_verified_refused(const struct box_verified *v);
/* Writes v to path (atomically, durable) when it gained digests since it
 * was loaded or the file there was refused; else nothing. */
MK_WUR enum mk_err box_verified_save(const struct box_verified *v, const char *path, const char *box_id,
                                     const uint8_t oc[static 32]);
void box_verified_free(struct box_verified *v);

/* Decodes a Steel certificate (signed by the Domain Key Set) for domain d,
 * verifying it: MK_RC_SIGNATURE_INVALID, MK_RC_WRONG_DOMAIN. */
MK_WUR enum mk_err box_steel_cert_open(const struct box_domain *d, const uint8_t *p, size_t n,
                                       char steel_id[static MK_BOX_ID_LEN + 1],
                                       EVP_PKEY **authp, EVP_PKEY **confp);

/* The device PKI: Brass's registration service (registrar.c). */
MK_MSG_HANDLER(box_cmd_reg_challenge);
MK_MSG_HANDLER(box_cmd_reg_complete);
/* Issues (helpers.c) a certificate of role for subject (cn, domain or NULL) under
 * issuer/issuer_key, valid from now for life seconds but not past the
 * issuer's end, with serial (0: a random 63-bit one from b's RNG); the DER
 * appended to der_out. */
MK_WUR enum mk_err box_issue_cert(struct mk_box *b, X509 *issuer, EVP_PKEY *issuer_key,
                                  EVP_PKEY *subject, int role, const char *cn, const char *domain,
                                  uint64_t serial, int64_t now, int64_t life, struct mk_buf *der_out);
/* The pending challenges of d, sealed with the domain (box.c). */
void box_reg_pending_drop(struct box_domain *d, size_t i);

/* A box process's memory kept out of core dumps (src/box/sandbox.c): not
 * dumpable, and no anonymous memory in a core (/proc/self/coredump_filter),
 * so that OpenSSL's contexts holding expanded keys in the ordinary heap are
 * not in one either. Once; before a user change (why says what failed). */
MK_WUR enum mk_err box_keep_out_of_dumps(char *why, size_t cap);
/* The test build's MK_BOX_TEST_DUMPABLE (0 without it): 1 dumpable, 2 its
 * anonymous memory and key cache in the core too. */
int box_test_dumpable(void);

/* The box's own clock (unix seconds), for what it must not take from a
 * request: a token key record's freshness. The test build's
 * MK_BOX_TEST_CLOCK (seconds, MK_TEST_HOOKS only) moves it ahead. */
int64_t box_clock(void);

/* ---- A box over TCP: mutual TLS 1.3 (tls.c) ----------------------------------------- */

/* fd non-blocking (what a TLS link needs). */
MK_WUR enum mk_err box_tls_nonblocking(int fd);
/* The CAs whose clients a box process takes (PEM, one or more). */
MK_WUR enum mk_err box_tls_clients(const uint8_t *ca_pem, size_t n, X509_STORE **out);
/* The server context of an enabled box: its identity certificate (DER)
 * with its identity key (MK_RC_BOX_IDENTITY when they do not match), a
 * client's certificate required and checked against clients. */
MK_WUR enum mk_err box_tls_server(EVP_PKEY *identity, const uint8_t *cert_der, size_t cert_len,
                                  X509_STORE *clients, SSL_CTX **out);
/* The handshake of an accepted client fd (made non-blocking), by
 * timeout_ms: MK_ERR_BOX_TLS, MK_ERR_TIMEOUT. */
MK_WUR enum mk_err box_tls_accept(SSL_CTX *ctx, int fd, int timeout_ms, SSL **out);
/* A client's connection to the box process id at host_port: TCP, then TLS
 * with c's certificate, the box's checked against c's root (role box, CN
 * "meterkey box <id>": MK_RC_BOX_ID_INVALID for another box's).
 * MK_ERR_BOX_GONE (nothing answers in MK_BOX_CONNECT_TIMEOUT_MS),
 * MK_ERR_BOX_TLS, MK_ERR_CERT_FORMAT (c's files). */
MK_WUR enum mk_err box_tls_connect(const char *host_port, const char *id, const struct mk_box_tls_client *c,
                                   int *fdp, SSL **sslp);

/* Info strings binding a wrapped key to its context. */
MK_WUR enum mk_err box_wrap_info(struct mk_buf *out, const char *what, const char *domain,
                                 uint64_t key_id, const char *box_id);

#endif
