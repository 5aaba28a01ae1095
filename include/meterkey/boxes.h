/*
 * The secure boxes of the first document: Manufacturing, Oak, Steel and
 * Brass, each a message handler over its own sealed state (DESIGN.md §2).
 *
 * A box takes one encoded request (box.h: command, domain, time, parameters)
 * and returns one encoded response; it shares no memory with its caller, so
 * the same code can later run in a process of its own. Its state at rest is
 * sealed (seal.h) under its Operation Combination, rebuilt only from enough
 * operator shares; without them the box cannot be opened.
 *
 * Every command, its parameters and its result are specified byte by byte
 * in docs/formats.md §8; docs/internals/boxes.md says why they are so.
 */
#ifndef MK_BOXES_H
#define MK_BOXES_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "meterkey/buf.h"
#include "meterkey/crypto.h"
#include "meterkey/err.h"
#include "meterkey/ids.h"
#include "meterkey/msg_box.h"
#include "meterkey/shares.h"

/* The command codes and their messages: msg_box.h. */

/* The kind byte that opens every signed body, so that no signed message can
 * be taken for another. */
enum mk_signed_kind {
	MK_SIGNED_SET_ID = 1,        /* Set Secure Box ID */
	MK_SIGNED_PROCESS = 2,       /* a domain process for one box */
	MK_SIGNED_STEEL_CERT = 3,    /* a Steel box's public keys for one domain */
	MK_SIGNED_INSTALL = 4,       /* MI4: the install key record */
	MK_SIGNED_INSTALLED = 5,     /* MI7: key installed (or not) */
	MK_SIGNED_CONFIRM = 6,       /* MI10: installation confirmed */
	MK_SIGNED_REGISTERED = 7,    /* MR4: key registered */
	MK_SIGNED_DOMAIN_KEYS = 8,   /* domain keys under the Domain Key Set */
	MK_SIGNED_ACCEPT = 9,        /* a new box's answer, signed by its identity key */
};

/* Algorithm identifiers carried in records (docs/formats.md §4). */
#define MK_ALG_KEY_AES128 1      /* master key: AES-128, tokens AES-CMAC */
#define MK_ALG_WRAP_ECDH_KWP 1   /* ECDH-ES P-256, X9.63 KDF, AES-256 KWP */
#define MK_ALG_WRAP_GCM 2        /* AES-256-GCM under a Brass secret key, header as AAD */
#define MK_ALG_SIG_ECDSA_P256 1  /* ECDSA P-256 SHA-256, r || s */

/* Default operator shares: all of them needed. */
#define MK_MFG_SHARES_DEFAULT 3
#define MK_BOX_SHARES_DEFAULT 2
/* Most domains one box serves and countries one domain has. */
#define MK_BOX_MAX_DOMAINS 32
#define MK_DOMAIN_MAX_COUNTRIES 16
/* Most boxes one Manufacturing Box initialises (one table entry each). */
#define MK_MFG_MAX_BOXES 254
/* A signed message (body, signer, signature) is at most MK_SIGNED_MAX
 * bytes (caps.h). */

/* The domain-wide holder of a NEW record's key: every Domain Brass Process
 * of the domain holds the Brass confidentiality key it is encrypted for. */
#define MK_BOX_ID_DOMAIN_BRASS "B00000000"
/* The same for a token key record: the domain's Tin confidentiality key. */
#define MK_BOX_ID_DOMAIN_TIN "T00000000"

struct mk_box;

/*
 * A new box of type t as it leaves the factory: ID t00000000, no state yet.
 * anchor is the Manufacturing Box's public startup authentication key for
 * type t (the trust anchor written into the box's software); NULL only for
 * the first Manufacturing Box. The box seals its state into
 * store_dir/<ID>.box and writes its operator shares into share_dir when it
 * is initialised. *bp is freed with mk_box_free.
 */
MK_WUR enum mk_err mk_box_new(enum mk_box_type t, const uint8_t *anchor, const char *store_dir,
                              const char *share_dir, struct mk_box **bp);

/*
 * Opens the initialised box box_id from store_dir/<box_id>.box with the
 * operators' shares. Runs the start-up self-tests first (MK_ERR_SELFTEST).
 * The shares' and the sealed file's own errors are returned unchanged
 * (MK_ERR_SHARE_TOO_FEW, _FOREIGN, _MISMATCH, _CORRUPT, MK_ERR_SEAL_KEY, ...):
 * the box stays disabled and *bp is NULL. On MK_OK the box is enabled.
 */
MK_WUR enum mk_err mk_box_open(const char *store_dir, const char *share_dir, const char *box_id,
                               const struct mk_share *const *shares, size_t nshares,
                               struct mk_box **bp);

/*
 * Handles one encoded request req[0..n) and appends the encoded response to
 * resp. Refusals travel in the response (level 2 or 3 with their code); the
 * return value is MK_OK unless the response itself could not be written.
 * A command that changes the box's state seals it before answering.
 */
MK_WUR enum mk_err mk_box_call(struct mk_box *b, const uint8_t *req, size_t n,
                               struct mk_buf *resp);

/* The message layer's line to b (msg.h): each round trip is mk_box_call,
 * in this process or to b's process alike. Lives as long as b. */
struct mk_msg_link mk_box_link(struct mk_box *b);

/* The box's ID ("O00000000" before initialisation). */
const char *mk_box_get_id(const struct mk_box *b);
enum mk_box_type mk_box_get_type(const struct mk_box *b);
/* Its kind's name for operators ("Oak", "Manufacturing"), from its table. */
const char *mk_box_get_type_name(const struct mk_box *b);

/*
 * A Steel box's line to the meter on its station, handed to the box for the
 * installation it runs (NULL detaches; the box does not own it). The box
 * speaks the meter's commands (msg_meter.h) over it itself, because MI5
 * carries the clear master key, which must go from the box to the meter and
 * never through the KMS: the KMS only connects the line (a meter client's
 * mk_meter_line), it never sees what passes on it.
 */
void mk_box_attach_meter(struct mk_box *b, const struct mk_msg_link *line);

/* Wipes every key and frees (a box in another process: closes the
 * connection; the box stays as it is). NULL is a no-op. */
void mk_box_free(struct mk_box *b);

/* ---- The box process (serve.c, remote.c; docs/internals/box-process.md) -- */

/* How long a client waits for a box process's answer to a request. */
#define MK_BOX_RESPONSE_TIMEOUT_MS 60000

/*
 * Runs box box_id (initialised, its sealed state in store_dir) as a process
 * of its own on listen_fd (a listening Unix socket; not closed here) until
 * *stop becomes non-zero (checked at least once a second; NULL: for ever)
 * or the socket fails (MK_ERR_IO). The box starts disabled: Enter Share
 * (MK_CMD_UNSEAL) takes one operator share at a time and opens the box
 * when there are enough; Disable (MK_CMD_SEAL) wipes its clear keys; Box
 * Process State (MK_CMD_PROCESS) says which, with the generation and the
 * shares entered. Every other command is the box's own, answered as by
 * mk_box_call once enabled and refused MK_RC_BOX_DISABLED before. Clients
 * are served one request at a time, in turn. A meter line passed with a
 * request (mk_box_attach_meter_fd) is attached for that request only.
 * Shares are held in memory only, wiped when the box opens or is disabled.
 * WARNING: ignore SIGPIPE in the serving process.
 */
MK_WUR enum mk_err mk_box_serve(const char *store_dir, const char *box_id, int listen_fd,
                                volatile sig_atomic_t *stop);

/*
 * What a box process does before it holds a key (mk_box_serve and
 * mk_box_serve_fresh do it; call it before making a fresh box): its memory
 * out of core dumps (not dumpable; no anonymous memory in a core, through
 * /proc/self/coredump_filter, so before a user change) and OpenSSL's
 * secure heap set up for its secrets. MK_ERR_IO, said in why.
 */
MK_WUR enum mk_err mk_box_process_protect(char *why, size_t cap);

/*
 * Serves fresh, a factory-fresh box (mk_box_new, in this process, after
 * mk_box_process_protect), for its key ceremony: its commands are answered
 * as mk_box_serve answers an enabled box's (Set Secure Box ID, Add Domain,
 * Station Certificate, Box Process State), Enter Share is refused
 * MK_RC_NOT_INITIALISED, and Disable wipes it and ends the serving. fresh
 * is taken (freed here). id is then the ID the box took ("X00000000" when
 * it took none). Returns as mk_box_serve.
 */
MK_WUR enum mk_err mk_box_serve_fresh(struct mk_box *fresh, int listen_fd, volatile sig_atomic_t *stop,
                                      char id[static MK_BOX_ID_LEN + 1]);

/*
 * A box process on another host: besides its Unix socket (where its
 * operators enter their shares), it listens on TCP (fd, bound and
 * listening) with mutual TLS 1.3. Only while it is enabled: it presents
 * its identity certificate (cert_der: boxes/<ID>.cert, role box, issued by
 * the provider root at its key ceremony) with its identity key, and takes
 * a client only with a certificate chaining to one in client_ca_pem (PEM,
 * read before the process confines itself). Disabled, it takes no TCP
 * client and cuts those it had. No descriptor crosses TCP: a Steel box's
 * meter line is local. docs/internals/box-process.md.
 */
struct mk_box_tcp {
	int fd;
	const uint8_t *cert_der;
	size_t cert_len;
	const uint8_t *client_ca_pem;
	size_t client_ca_len;
};
/* mk_box_serve with a TCP listener too (tcp NULL: mk_box_serve).
 * MK_ERR_INVALID_ARG for a tcp without its certificate or a CA. */
MK_WUR enum mk_err mk_box_serve_tcp(const char *store_dir, const char *box_id, int listen_fd,
                                    const struct mk_box_tcp *tcp, volatile sig_atomic_t *stop);

/* A listening TCP socket at host_port ("HOST:PORT", "[V6]:PORT"; close-on-
 * exec, SO_REUSEADDR) for mk_box_tcp's fd: MK_ERR_INVALID_ARG when it is
 * not that or does not resolve, MK_ERR_IO (errno kept) when nothing
 * resolved can be bound. */
MK_WUR enum mk_err mk_box_listen_tcp(const char *host_port, int *fdp);

/* How long a client waits to reach a box process over TCP (connection and
 * TLS handshake). */
#define MK_BOX_CONNECT_TIMEOUT_MS 10000

/* What a client of a box process over TCP presents and trusts: paths of
 * PEM files. */
struct mk_box_tls_client {
	const char *root_pem; /* the provider root (a home's trust/root.pem) */
	const char *cert_pem; /* this client's certificate (and its chain) */
	const char *key_pem;  /* its private key */
};

/*
 * mk_box_connect for a box process listening on TCP at host_port
 * ("HOST:PORT", "[V6]:PORT"): TLS 1.3 with c's certificate; the box's must
 * be the provider root's, of role box, for box_id (MK_RC_BOX_ID_INVALID:
 * another box answers there). MK_ERR_BOX_GONE when nothing answers (or a
 * disabled box, which takes no TCP client), MK_ERR_BOX_TLS when a
 * certificate is refused on either side, MK_ERR_CERT_FORMAT (c's files),
 * MK_ERR_NOT_FOUND (the root's file). WARNING: ignore SIGPIPE in the
 * calling process (a box that cuts the connection makes a write fail).
 */
MK_WUR enum mk_err mk_box_connect_tls(const char *host_port, const char *box_id,
                                      const struct mk_box_tls_client *c, struct mk_box **bp);

/*
 * Connects to the box process serving box_id at address ("unix:PATH", or a
 * path, of its socket): *bp is then a box whose calls go to that process
 * (mk_box_call, and every typed call over it). Nothing is asked yet: a
 * process serving another box, or disabled, answers its first call so.
 * MK_ERR_BOX_GONE when nothing listens there; MK_ERR_INVALID_ARG for a bad
 * ID or a path too long for a socket. A call whose process stops, dies or
 * does not answer within MK_BOX_RESPONSE_TIMEOUT_MS fails MK_ERR_BOX_GONE
 * and the connection is closed.
 */
MK_WUR enum mk_err mk_box_connect(const char *address, const char *box_id, struct mk_box **bp);

/*
 * Confines the calling process, a box process about to serve (OpenSSH's
 * sandboxed children): makes dir (its state) the working directory, so
 * that the box then names its files relative to "."; when uid is not -1
 * and the process is root, becomes uid:gid with no supplementary groups,
 * for good; no new privileges; not dumpable; the file system narrowed to
 * dir (Landlock, where the kernel has it: read, write, make and remove
 * files there, nothing else anywhere); and a seccomp filter refusing
 * (EPERM) exec, a new process, a new socket or connection, ptrace, identity
 * and privilege changes, mounts and modules. What stops it is said in
 * why; MK_ERR_IO. Call it after the listening socket is made and OpenSSL
 * initialised (mk_selftest_run), before the first share is entered.
 */
MK_WUR enum mk_err mk_box_sandbox(const char *dir, uid_t uid, gid_t gid, char *why, size_t cap);

/* Whether b is a box in another process (mk_box_connect). */
bool mk_box_is_remote(const struct mk_box *b);

/* A Steel box process's meter line: the descriptor fd (a connected Unix
 * socket to the meter, mk_meter_conn_give_fd) is given to b: it travels
 * with the next request (SCM_RIGHTS), is the box's line for that request,
 * and is closed on this side as soon as it is sent (or when b is freed),
 * so that the caller keeps no copy to read MI5 on. MK_ERR_INVALID_ARG for a
 * box in this process (mk_box_attach_meter). */
MK_WUR enum mk_err mk_box_attach_meter_fd(struct mk_box *b, int fd);

/* ---- Signed messages (docs/formats.md §8.1) ----------------------------- */

/* Appends {01 body, 02 signer, 03 ECDSA(key, body)} to out. */
MK_WUR enum mk_err mk_signed_encode(EVP_PKEY *key, const char *signer, const uint8_t *body,
                                    size_t n, struct mk_buf *out);

/* Splits a signed message without verifying it: *bodyp points into p. */
MK_WUR enum mk_err mk_signed_split(const uint8_t *p, size_t n, const uint8_t **bodyp,
                                   size_t *bodylenp, char signer[static MK_BOX_ID_LEN + 1],
                                   const uint8_t **sigp);

/* Verifies a signed message with key: MK_OK or MK_RC_SIGNATURE_INVALID (also
 * for a malformed one). *bodyp points into p. */
MK_WUR enum mk_err mk_signed_verify(EVP_PKEY *key, const uint8_t *p, size_t n,
                                    const uint8_t **bodyp, size_t *bodylenp);

#endif
