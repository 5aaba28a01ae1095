/*
 * Private to the Manufacturing Box (mfg.c, mfg_state.c): its state, the
 * tags of its part of the sealed state and of the domain keys (formats.md
 * §8.3, §8.4), and the codec of that state.
 */
#ifndef MK_MFG_INT_H
#define MK_MFG_INT_H

#include "box/box_int.h"

/* The box types M initialises (M, O, S, B, T, in table order). */
#define NTYPES 5

struct mfg_box {
	char id[MK_BOX_ID_LEN + 1];
	uint8_t nonce[16];
	uint8_t conf[MK_EC_PUB_LEN]; /* its startup confidentiality key, once accepted */
	int accepted;
	uint8_t fingerprint[MK_SHA256_LEN]; /* of its identity key, as its operator read it */
	int has_fingerprint;
};

struct mfg_domain {
	char id[MK_DOMAIN_ID_MAX + 1];
	struct mk_secret *keys; /* the domain keys, formats.md §8.3 (DK) */
};

struct mfg_state {
	EVP_PKEY *startup_auth[NTYPES];
	EVP_PKEY *dks_conf, *dks_auth; /* the Domain Key Set */
	uint32_t next[NTYPES];
	size_t nboxes;
	struct mfg_box boxes[MK_MFG_MAX_BOXES];
	size_t ndomains;
	struct mfg_domain domains[MK_BOX_MAX_DOMAINS];
	/* The provider CA (issue 6): its key and self-signed root certificate,
	 * and the serial of the last certificate it issued. */
	EVP_PKEY *provider;
	X509 *root;
	uint64_t serial;
};

/* Sealed state tags inside S_MFG. */
enum { M_AUTH = 0x01, M_DKS_CONF = 0x02, M_DKS_AUTH = 0x03, M_NEXT = 0x04, M_BOXES = 0x05,
       M_DOMAINS = 0x06, M_PROVIDER = 0x07, M_ROOT = 0x08, M_SERIAL = 0x09 };
enum { MB_ID = 0x01, MB_NONCE = 0x02, MB_CONF = 0x03, MB_FINGERPRINT = 0x04 };
/* Domain keys (DK) tags. */
enum { K_DOMAIN = 0x01, K_OAK = 0x02, K_BRASS_AUTH = 0x03, K_BRASS_CONF = 0x04, K_SECRET = 0x05,
       K_COUNTRIES = 0x06, K_TOKEN_LEN = 0x07, K_TIN_CONF = 0x08, K_AUTHORITY = 0x09,
       K_DOMAIN_CERT = 0x0A, K_TIN_FRESH = 0x0B, K_VERIFY_DAYS = 0x0C, K_AHEAD_DAYS = 0x0D };

/* The Manufacturing Box's own state (b->ks; NULL until Set (First) Secure
 * Box ID makes it). */
#define MFG(b) ((struct mfg_state *)(b)->ks)

/* Wipes and frees m (NULL: nothing). */
void mfg_state_free(struct mfg_state *m);
/* Lookups (mfg_state.c): a type's index in the state's per-type tables
 * (-1 for none), a domain and a box initialised by ID (NULL for none). */
int mfg_type_index(enum mk_box_type t);
struct mfg_domain *mfg_find_domain(struct mfg_state *m, const char *id);
struct mfg_box *mfg_find_box(struct mfg_state *m, const char *id);

/* The domain processes (mfg_process.c): Make Domain Process, and an
 * additional Manufacturing Box taking one (its kind's take_process). */
MK_MSG_HANDLER(mfg_cmd_make_process);
MK_WUR enum mk_err mfg_take_process(struct mk_box *b, const char *domain, const uint8_t *p, size_t n);
/* The Manufacturing Box's part of the sealed state (inside S_MFG): encode
 * appends to w; decode makes b->ks from r. */
MK_WUR enum mk_err mfg_state_encode(const struct mk_box *b, struct mk_tlv_writer *w);
MK_WUR enum mk_err mfg_state_decode(struct mk_box *b, struct mk_tlv_reader *r);
/* The Domain Key Set and startup keys (M_AUTH .. M_DKS_AUTH), in the sealed
 * state and in a Domain Manufacturing Process. */
MK_WUR enum mk_err mfg_key_set_encode(const struct mfg_state *m, struct mk_tlv_writer *w);
MK_WUR enum mk_err mfg_key_set_decode(struct mfg_state *m, struct mk_tlv_reader *r);
/* The domain a domain keys element p[0..n) is of. */
MK_WUR enum mk_err mfg_dk_domain(const uint8_t *p, size_t n, char out[static MK_DOMAIN_ID_MAX + 1]);

#endif
