/*
 * meterkey archive verify | history | errors — an auditor's read-only view of
 * a domain archive. Nothing here writes to the archive.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "cli.h"
#include "meterkey/archive.h"
#include "meterkey/crypto.h"
#include "meterkey/merkle.h"
#include "meterkey/pki.h"

#define ARCHIVE_OPTS                                                                         \
	"options:\n"                                                                           \
	"  --home DIR      the home (default: $METERKEY_HOME): the archive is\n"              \
	"                  sqlite:DIR/archive.db unless --archive names another\n"            \
	"  --archive URL   the archive: sqlite:PATH or postgresql://...\n"                    \
	"                  (one of --home and --archive is needed)\n"                        \
	"  --json          print one JSON object instead of text\n"

static const char verify_usage[] =
	"usage: meterkey archive verify --domain ID [options]\n"
	"  Recomputes the domain's audit chain and checks every row it covers,\n"
	"  then the domain's signed heads: numbered without gaps, signed (with\n"
	"  the domain's certificate: --cert FILE, else HOME/domains/ID.pem when\n"
	"  there is one), each log root the root of the log it covers, the\n"
	"  newest head's key map the one the key rows give. With --box, the\n"
	"  domain's Brass box is asked for the newest head it knows: an archive\n"
	"  whose newest is older was rolled back; one with another head of that\n"
	"  number was forked. Exit status 0 only when all of it verifies;\n"
	"  otherwise the first bad entry or head is named.\n" ARCHIVE_OPTS
	"  --cert FILE     the domain's certificate (PEM) to check signatures with\n"
	"  --box           also ask the domain's Brass box (needs --home)\n";

static const char head_usage[] =
	"usage: meterkey archive head --domain ID [--seq N] [--out FILE] [options]\n"
	"       meterkey archive head --domain ID --check FILE [options]\n"
	"       meterkey archive head --domain ID --sign --home DIR\n"
	"  Prints the domain's newest signed head (or head N): its number, time,\n"
	"  signer, the audit log's size and Merkle root, the key map's root; --out\n"
	"  keeps its bytes in FILE, for an auditor to check later. --check FILE\n"
	"  checks a head kept so against the archive now: its signature, the same\n"
	"  head under its number (else the archive was forked), not newer than the\n"
	"  archive's newest (else it was rolled back), and the log's consistency\n"
	"  proof from that head to the newest (RFC 9162). --sign has the domain's\n"
	"  Brass box sign the versions that wait for a head (after a failure\n"
	"  between a write and its head).\n"
	"  Signatures are checked with the domain's certificate (--cert FILE, else\n"
	"  HOME/domains/ID.pem when there is one).\n" ARCHIVE_OPTS
	"  --seq N         the head numbered N (default: the newest)\n"
	"  --out FILE      write the head's bytes to FILE\n"
	"  --check FILE    check the head kept in FILE against the archive\n"
	"  --cert FILE     the domain's certificate (PEM) to check signatures with\n"
	"  --sign          sign the waiting versions (needs --home and its boxes)\n"
	"  With --server, the heads and the consistency proof come from the service\n"
	"  (an auditor's client); their signatures and the proof are checked here.\n"
	KC_USAGE_REMOTE_OPTS;

static const char history_usage[] =
	"usage: meterkey archive history --domain ID --key KEY_ID [options]\n"
	"  Prints every version of a master key record, oldest first: status,\n"
	"  time, device and signer. Keys are encrypted and are never shown.\n" ARCHIVE_OPTS KC_USAGE_REMOTE_OPTS;

static const char errors_usage[] =
	"usage: meterkey archive errors --domain ID [options]\n"
	"  Prints the domain's error log, oldest first.\n" ARCHIVE_OPTS KC_USAGE_REMOTE_OPTS;

/* A command's run: its options (the table of each command binds them) and
 * the archive they name. */
struct args {
	struct kc c;
	const char *domain, *key; /* --key: history only */
	const char *cert, *seq, *out, *check; /* heads: verify, head */
	int box, sign;
	char url[PATH_MAX + sizeof("sqlite:/archive.db")];
	uint64_t key_id;
	struct mk_archive *ar;
};

/*
 * Parses opts (the common options, --domain and for history --key, bound to
 * a) and settles the archive: --archive, else the home's
 * sqlite:HOME/archive.db (which must exist: an auditor's look never creates
 * an archive). Returns KC_GO to go on, else the exit status (0 after --help,
 * 1 when the home has no archive, 2 on a usage error).
 */
static int parse(int argc, char **argv, const struct kc_opt *opts, const char *usage, int want_key,
                 struct args *a)
{
	int st;

	memset(a, 0, sizeof(*a));
	if ((st = kc_start_call(&a->c, argc, argv, opts, usage, 0, 0)) != KC_GO)
		return st;
	if (a->c.shares != NULL || a->c.time != 0)
		return mk_cli_usage_error(usage, "--shares and --time mean nothing to an archive");
	if (a->domain == NULL || (want_key && a->key == NULL))
		return mk_cli_usage_error(usage, want_key ? "--domain and --key are needed"
		                                          : "--domain is needed");
	/* the values kept their rules as they were read (kc_parse) */
	if (want_key && !kc_parse_key_id(a->key, &a->key_id))
		return mk_cli_bad_value(usage, "--key", a->key, kc_key_id.words);
	if (a->c.server != NULL) /* the service's archive (start opens none) */
		return KC_GO;
	if (a->c.archive != NULL) {
		if (snprintf(a->url, sizeof(a->url), "%s", a->c.archive) >= (int)sizeof(a->url))
			return mk_cli_usage_error(usage, "--archive URL too long");
		return KC_GO;
	}
	if (a->c.home == NULL || a->c.home[0] == '\0')
		return mk_cli_usage_error(usage, "no archive: give --home DIR (or set METERKEY_HOME) "
		                                 "or --archive URL");
	if (snprintf(a->url, sizeof(a->url), "sqlite:%s/archive.db", a->c.home) >= (int)sizeof(a->url))
		return mk_cli_usage_error(usage, "--home path too long");
	if (access(a->url + strlen("sqlite:"), F_OK) != 0) {
		char msg[sizeof(a->url) + 64];

		snprintf(msg, sizeof(msg), "no archive in home %s (%s): %s (%s)", a->c.home, a->url + strlen("sqlite:"),
		         mk_strerror(MK_ERR_NOT_FOUND), mk_err_name(MK_ERR_NOT_FOUND));
		return kc_fail_msg(a->c.json, MK_ERR_NOT_FOUND, msg);
	}
	return KC_GO;
}

/* A refusal: "meterkey: what: why (NAME)" on stderr, or the error object
 * with that message. */
static int fail(const struct args *a, const char *what, enum mk_err r)
{
	char msg[PATH_MAX + 768];

	snprintf(msg, sizeof(msg), "%s%s%s (%s)", what != NULL ? what : "", what != NULL ? ": " : "",
	         mk_strerror(r), mk_err_name(r));
	return kc_fail_msg(a->c.json, r, msg);
}

/* parse, then the archive opened (a->ar, closed by finish). KC_GO, else the
 * exit status, the refusal printed. */
static int start(int argc, char **argv, const struct kc_opt *opts, const char *usage, int want_key,
                 struct args *a)
{
	char why[256];
	enum mk_err r;
	int st = parse(argc, argv, opts, usage, want_key, a);

	if (st != KC_GO || a->c.server != NULL)
		return st;
	if ((r = mk_archive_open_why(a->url, &a->ar, why, sizeof(why))) != MK_OK) {
		char shown[sizeof(a->url)], what[sizeof(a->url) + 320];

		mk_archive_url_shown(a->url, shown, sizeof(shown));
		snprintf(what, sizeof(what), "cannot open the archive %s%s%s", shown, why[0] != '\0' ? ": " : "",
		         why);
		return fail(a, what, r);
	}
	return KC_GO;
}

/* Closes the archive after r, the outcome of a listing into the JSON array
 * list (NULL for text). KC_GO to print the answer, else (list dropped, the
 * refusal printed) 1. */
static int finish(struct args *a, enum mk_err r, json_t *list)
{
	char what[MK_DOMAIN_ID_MAX + 64];

	mk_archive_close(a->ar);
	a->ar = NULL;
	if (r == MK_OK)
		return KC_GO;
	json_decref(list);
	if (a->key != NULL) /* the object looked for: the key of history, else the domain */
		snprintf(what, sizeof(what), "domain %s, key %" PRIu64, a->domain, a->key_id);
	else
		snprintf(what, sizeof(what), "domain %s", a->domain);
	return fail(a, what, r);
}

/* t as ISO 8601 UTC into s; 0 when t is unset or does not convert. */
static int iso_time(int64_t t, char s[static 32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	return t != 0 && gmtime_r(&tt, &tm) != NULL && strftime(s, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) != 0;
}

static void print_time(int64_t t)
{
	char s[32];

	printf("%-20s", iso_time(t, s) ? s : "-");
}

/* The time as a JSON string, or null when unset. */
static json_t *json_time(int64_t t)
{
	char s[32];

	return iso_time(t, s) ? json_string(s) : json_null();
}

/* ---- Signed heads ------------------------------------------------------------------- */

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* The key of the domain's certificate (--cert, else the home's
 * domains/D.cert when there is one) into *pk, its path into used; *pk
 * NULL when there is none. KC_GO, else the exit status (printed). */
static int cert_key(struct args *a, EVP_PKEY **pk, char *used, size_t cap)
{
	X509 *c = NULL;
	enum mk_err r;

	*pk = NULL;
	used[0] = '\0';
	if (a->cert != NULL)
		snprintf(used, cap, "%s", a->cert);
	else if (a->c.home != NULL && a->c.home[0] != '\0' &&
	         snprintf(used, cap, "%s/domains/%s.pem", a->c.home, a->domain) < (int)cap && access(used, F_OK) != 0)
		used[0] = '\0';
	if (used[0] == '\0')
		return KC_GO;
	if ((r = mk_cert_read_pem(used, &c)) != MK_OK) {
		char what[PATH_MAX + 64];

		snprintf(what, sizeof(what), "cannot read the domain certificate %s", used);
		return fail(a, what, r);
	}
	*pk = X509_get_pubkey(c);
	X509_free(c);
	return *pk != NULL ? KC_GO : fail(a, used, MK_ERR_CERT_FORMAT);
}

/* A head's signature by the postal authority key (the domain certificate's). */
static enum mk_err auth_sig(void *ctx, const uint8_t *tbs, size_t n, const struct mk_head *h)
{
	return !h->has_auth_sig ? MK_RC_SIGNATURE_INVALID : mk_ecdsa_verify(ctx, tbs, n, h->auth_sig);
}

/* --box: the newest head the domain's Brass box knows, set beside the
 * archive's newest (seq newest). 0 when they agree (or the box knows
 * none), else 1, why in why. KC_GO-like -1 with the refusal printed. */
static int box_compare(struct args *a, uint64_t newest, char *why, size_t cap)
{
	struct mk_buf *hb = mk_buf_new(MK_HEAD_MAX), *ours = mk_buf_new(MK_HEAD_MAX);
	char box[MK_BOX_ID_LEN + 1] = "";
	struct mk_head h;
	struct mk_archive *ar = NULL;
	enum mk_err r;
	int out = -1;

	if (hb == NULL || ours == NULL) {
		fail(a, NULL, MK_ERR_NOMEM);
		goto done;
	}
	if (!kc_open(&a->c))
		goto done;
	if ((r = mk_kms_box_head(a->c.kms, a->domain, box, hb)) != MK_OK) {
		kc_fail(&a->c, r);
		goto done;
	}
	if (mk_buf_len(hb) == 0 || mk_head_decode(mk_buf_data(hb), mk_buf_len(hb), &h) != MK_OK) {
		snprintf(why, cap, "Brass box %s knows no head of domain %s", box, a->domain);
		out = newest > 0;
		goto done;
	}
	ar = mk_kms_archive(a->c.kms);
	if (h.seq > newest) {
		snprintf(why, cap, "rolled back: Brass box %s knows head %" PRIu64 ", the archive's newest is %" PRIu64, box,
		         h.seq, newest);
		out = 1;
	} else if ((r = mk_archive_get_head(ar, a->domain, h.seq, ours)) != MK_OK || mk_buf_len(ours) != mk_buf_len(hb) ||
	           memcmp(mk_buf_data(ours), mk_buf_data(hb), mk_buf_len(hb)) != 0) {
		snprintf(why, cap, "forked: the archive's head %" PRIu64 " is not the one Brass box %s signed", h.seq, box);
		out = 1;
	} else {
		snprintf(why, cap, "Brass box %s knows head %" PRIu64 ": the archive holds it", box, h.seq);
		out = 0;
	}
done:
	kc_close(&a->c);
	mk_buf_free(hb);
	mk_buf_free(ours);
	return out;
}

static int archive_verify(int argc, char **argv)
{
	struct args a;
	struct mk_audit_result res;
	struct mk_heads_result hr;
	const struct kc_opt opts[] = { KC_COMMON(&a.c), KC_STR("domain", &a.domain, &kc_domain),
		                       KC_STR("cert", &a.cert, &kc_path), KC_FLAG("box", &a.box), KC_END };
	char used[PATH_MAX], boxwhy[256] = "";
	EVP_PKEY *pk = NULL;
	enum mk_err r, hv = MK_OK;
	int st, boxbad = 0;

	if ((st = start(argc, argv, opts, verify_usage, 0, &a)) != KC_GO)
		return st;
	if (a.box && (a.c.home == NULL || a.c.home[0] == '\0')) {
		mk_archive_close(a.ar);
		return mk_cli_usage_error(verify_usage, "--box needs --home");
	}
	if ((st = cert_key(&a, &pk, used, sizeof(used))) != KC_GO) {
		mk_archive_close(a.ar);
		return st;
	}
	memset(&hr, 0, sizeof(hr));
	r = mk_archive_audit_verify(a.ar, a.domain, &res);
	if (r == MK_OK)
		hv = mk_archive_heads_verify(a.ar, a.domain, pk != NULL ? auth_sig : NULL, pk, &hr);
	EVP_PKEY_free(pk);
	/* A chain or a head that does not verify is the answer, not a failure to look. */
	if ((st = finish(&a, r == MK_ERR_AUDIT ? MK_OK : r != MK_OK ? r : hv == MK_ERR_DB_HEAD ? MK_OK : hv, NULL)) !=
	    KC_GO)
		return st;
	if (r == MK_OK && hv == MK_OK && a.box && (boxbad = box_compare(&a, hr.newest, boxwhy, sizeof(boxwhy))) < 0)
		return 1;
	if (r == MK_OK && hv == MK_OK && !boxbad) {
		kc_ok(&a.c,
		      json_pack("{s:b,s:s,s:I,s:{s:I,s:I,s:b,s:s*,s:s*}}", "ok", 1, "domain", a.domain, "entries",
		                (json_int_t)res.entries, "heads", "count", (json_int_t)hr.heads, "waiting",
		                (json_int_t)hr.waiting, "signatures_checked", used[0] != '\0', "cert",
		                used[0] != '\0' ? used : NULL, "box", boxwhy[0] != '\0' ? boxwhy : NULL),
		      "domain %s: audit log verifies (%" PRIu64 " entries)\n"
		      "domain %s: signed heads verify (%" PRIu64 " heads, %" PRIu64 " versions waiting for one; %s%s)\n"
		      "%s%s%s",
		      a.domain, res.entries, a.domain, hr.heads, hr.waiting,
		      used[0] != '\0' ? "signatures checked with " : "signatures not checked: no domain certificate",
		      used, boxwhy[0] != '\0' ? "domain " : "", boxwhy[0] != '\0' ? a.domain : "",
		      boxwhy[0] != '\0' ? ": " : "");
		if (boxwhy[0] != '\0' && !a.c.json)
			printf("%s\n", boxwhy);
		return 0;
	}
	{
		uint64_t first = r != MK_OK ? res.first_bad : hr.first_bad;
		const char *why = r != MK_OK ? res.reason : hv != MK_OK ? hr.reason : boxwhy;
		enum mk_err code = r != MK_OK ? r : MK_ERR_DB_HEAD;

		/* what a bad chain or head is, and the error object every ok:false carries */
		if (a.c.json && r != MK_OK)
			return kc_fail_json(json_pack("{s:b,s:s,s:I,s:I,s:s}", "ok", 0, "domain", a.domain, "entries",
			                              (json_int_t)res.entries, "first_bad", (json_int_t)first, "reason", why),
			                    code, why);
		if (a.c.json)
			return kc_fail_json(json_pack("{s:b,s:s,s:I,s:{s:I,s:I,s:s}}", "ok", 0, "domain", a.domain, "entries",
			                              (json_int_t)res.entries, "heads", "count", (json_int_t)hr.heads,
			                              "first_bad", (json_int_t)first, "reason", why),
			                    code, why);
		if (r != MK_OK)
			printf("domain %s: audit log does NOT verify: first bad entry %" PRIu64 ": %s\n", a.domain, first, why);
		else if (hv != MK_OK)
			printf("domain %s: signed heads do NOT verify: head %" PRIu64 ": %s\n", a.domain, first, why);
		else
			printf("domain %s: signed heads do NOT verify: %s\n", a.domain, why);
	}
	return 1;
}

/* The head's fields, as text or JSON. */
static json_t *head_json(const struct mk_head *h, const char *checked)
{
	char mr[65], lr[65];

	hex(h->map_root, 32, mr);
	hex(h->log_root, 32, lr);
	return json_pack("{s:s,s:I,s:o,s:s,s:I,s:s,s:s,s:s?}", "domain", h->domain, "seq", (json_int_t)h->seq, "time",
	                 json_time(h->time), "signer", h->signer, "log_size", (json_int_t)h->log_size, "log_root", lr,
	                 "map_root", mr, "signature_checked_with", checked);
}

static void head_text(const struct mk_head *h, const char *checked)
{
	char mr[65], lr[65];

	hex(h->map_root, 32, mr);
	hex(h->log_root, 32, lr);
	printf("domain %s: head %" PRIu64 "\n  time      ", h->domain, h->seq);
	print_time(h->time);
	printf("\n  signer    %s\n  log       %" PRIu64 " entries, root %s\n  key map   root %s\n  signature %s%s\n",
	       h->signer, h->log_size, lr, mr, checked != NULL ? "checked with " : "not checked: no domain certificate",
	       checked != NULL ? checked : "");
}

/* A reading call of the service (--server) for archive head: MK_OK with
 * *ans, else the refusal's code (its words are the ones the local run
 * composes); a service that cannot be reached is said here (*said). */
static enum mk_err remote_read(struct args *a, const char *path, json_t **ans, int *said)
{
	json_t *code;
	enum mk_err r = MK_ERR_IO;
	long status;

	*ans = NULL;
	if (kc_service(&a->c, path, NULL, &status, ans) != 0) {
		*said = 1;
		return MK_ERR_IO;
	}
	if (status == 200 && *ans != NULL)
		return MK_OK;
	if (json_is_integer(code = json_object_get(json_object_get(*ans, "error"), "code"))) {
		r = (enum mk_err)json_integer_value(code);
	} else {
		kc_service_refused(&a->c, status, *ans, NULL);
		*said = 1;
	}
	json_decref(*ans);
	*ans = NULL;
	return r;
}

/* The domain's head seq (0: the newest) into hb: from the archive, or
 * from the service (GET /v1/archive/head, its bytes to check here). */
static enum mk_err get_head(struct args *a, uint64_t seq, struct mk_buf *hb, int *said)
{
	char path[128];
	const char *b64;
	json_t *ans;
	uint8_t *raw = NULL;
	size_t n;
	enum mk_err r;

	if (a->c.server == NULL)
		return mk_archive_get_head(a->ar, a->domain, seq, hb);
	if (seq != 0)
		snprintf(path, sizeof(path), "/v1/archive/head?domain=%s&seq=%" PRIu64, a->domain, seq);
	else /* no seq: the newest */
		snprintf(path, sizeof(path), "/v1/archive/head?domain=%s", a->domain);
	if ((r = remote_read(a, path, &ans, said)) != MK_OK)
		return r;
	mk_buf_reset(hb);
	b64 = json_string_value(json_object_get(ans, "head"));
	r = b64 == NULL || mk_base64_decode(b64, &raw, &n) != MK_OK || n > MK_HEAD_MAX ||
	            mk_buf_put_bytes(hb, raw, n) != MK_OK
	            ? MK_ERR_DB_HEAD
	            : MK_OK;
	free(raw);
	json_decref(ans);
	return r;
}

/* The audit log's consistency proof from m to n entries: the archive's,
 * or the service's (GET /v1/archive/consistency), verified here either way. */
static enum mk_err get_consistency(struct args *a, uint64_t m, uint64_t n, uint8_t proof[][32], size_t *len,
                                   int *said)
{
	char path[160];
	json_t *ans, *h;
	size_t i;
	enum mk_err r;

	if (a->c.server == NULL)
		return mk_archive_log_consistency(a->ar, a->domain, m, n, proof, len);
	snprintf(path, sizeof(path), "/v1/archive/consistency?domain=%s&from=%" PRIu64 "&to=%" PRIu64, a->domain, m, n);
	if ((r = remote_read(a, path, &ans, said)) != MK_OK)
		return r;
	*len = 0;
	json_array_foreach(json_object_get(ans, "proof"), i, h) {
		const char *x = json_string_value(h);

		if (i >= MK_MERKLE_PROOF_MAX || x == NULL || strlen(x) != 64 || !kc_fingerprint(x, proof[i])) {
			r = MK_ERR_DB_HEAD;
			break;
		}
		*len = i + 1;
	}
	json_decref(ans);
	return r;
}

/* --check: the kept head h (its bytes p[0..n)) against the archive. 0
 * good, 1 not (why), else a failure to look (-1, printed). */
static int head_check(struct args *a, const uint8_t *p, size_t n, const struct mk_head *h, char *why, size_t cap,
                      size_t *prooflen)
{
	struct mk_buf *nb = mk_buf_new(MK_HEAD_MAX), *same = mk_buf_new(MK_HEAD_MAX);
	uint8_t proof[MK_MERKLE_PROOF_MAX][32];
	struct mk_head newest;
	enum mk_err r;
	int out = -1, said = 0;

	*prooflen = 0;
	if (nb == NULL || same == NULL) {
		fail(a, NULL, MK_ERR_NOMEM);
		goto done;
	}
	if ((r = get_head(a, 0, nb, &said)) != MK_OK && r != MK_RC_RECORD_UNKNOWN) {
		if (!said)
			fail(a, "cannot read the archive's newest head", r);
		goto done;
	}
	if (r != MK_OK || mk_head_decode(mk_buf_data(nb), mk_buf_len(nb), &newest) != MK_OK || newest.seq < h->seq) {
		snprintf(why, cap, "rolled back: the kept head is %" PRIu64 ", the archive's newest %" PRIu64, h->seq,
		         r == MK_OK ? newest.seq : 0);
		out = 1;
		goto done;
	}
	if ((r = get_head(a, h->seq, same, &said)) != MK_OK && r != MK_RC_RECORD_UNKNOWN) {
		if (!said) /* a failure to look is no fork */
			fail(a, "cannot read the archive's head of that number", r);
		goto done;
	}
	if (r != MK_OK || mk_buf_len(same) != n || memcmp(mk_buf_data(same), p, n) != 0) {
		snprintf(why, cap, "forked: the archive's head %" PRIu64 " is not the kept one", h->seq);
		out = 1;
		goto done;
	}
	if (h->log_size > 0 && (r = get_consistency(a, h->log_size, newest.log_size, proof, prooflen, &said)) != MK_OK) {
		if (!said)
			fail(a, "cannot make the log's consistency proof", r);
		goto done;
	}
	if (h->log_size > 0 &&
	    mk_merkle_consistency_verify(h->log_size, h->log_root, newest.log_size, newest.log_root,
	                                 (const mk_merkle_hash *)proof, *prooflen) != MK_OK) {
		snprintf(why, cap, "forked: the log of head %" PRIu64 " is not a prefix of head %" PRIu64 "'s", h->seq,
		         newest.seq);
		out = 1;
		goto done;
	}
	snprintf(why, cap, "consistent: head %" PRIu64 " (log %" PRIu64 ") -> head %" PRIu64 " (log %" PRIu64
	                   "), proof of %zu hashes",
	         h->seq, h->log_size, newest.seq, newest.log_size, *prooflen);
	out = 0;
done:
	mk_buf_free(nb);
	mk_buf_free(same);
	return out;
}

static int archive_head(int argc, char **argv)
{
	struct args a;
	const struct kc_opt opts[] = { KC_COMMON(&a.c), KC_REMOTE(&a.c), KC_STR("domain", &a.domain, &kc_domain),
		                       KC_STR("seq", &a.seq, &kc_key_id), KC_STR("out", &a.out, &kc_path),
		                       KC_STR("check", &a.check, &kc_path), KC_STR("cert", &a.cert, &kc_path),
		                       KC_FLAG("sign", &a.sign), KC_END };
	int said = 0;
	struct mk_buf *hb = NULL;
	struct mk_head h;
	char used[PATH_MAX], why[PATH_MAX + 64];
	EVP_PKEY *pk = NULL;
	uint64_t seq = 0;
	size_t plen = 0;
	enum mk_err r;
	int st, sigok = -1;

	if ((st = start(argc, argv, opts, head_usage, 0, &a)) != KC_GO)
		return st;
	st = (a.sign != 0) + (a.check != NULL) + (a.seq != NULL || a.out != NULL) > 1
	         ? mk_cli_usage_error(head_usage, "--sign, --check and --seq/--out are three uses: one at a time")
	     : a.sign && a.c.server != NULL ? mk_cli_usage_error(head_usage, "--sign runs on the KMS host, not through a service")
	     : a.sign && (a.c.home == NULL || a.c.home[0] == '\0') ? mk_cli_usage_error(head_usage, "--sign needs --home")
	     : a.seq != NULL && !kc_parse_key_id(a.seq, &seq) ? mk_cli_bad_value(head_usage, "--seq", a.seq, kc_key_id.words)
	                                                      : KC_GO;
	if (st == KC_GO && !a.sign)
		st = cert_key(&a, &pk, used, sizeof(used));
	/* from here st is the check's outcome: 0 good, 1 not, -1 a failure to look */
	if (st != KC_GO || (hb = mk_buf_new(MK_HEAD_MAX)) == NULL) {
		mk_archive_close(a.ar);
		EVP_PKEY_free(pk);
		return st != KC_GO ? st : fail(&a, NULL, MK_ERR_NOMEM);
	}
	st = 0;
	if (a.sign) {
		mk_archive_close(a.ar);
		a.ar = NULL;
		mk_buf_free(hb);
		if (!kc_open(&a.c))
			return 1;
		if ((r = mk_kms_sign_heads(a.c.kms, a.domain)) != MK_OK)
			return kc_end(&a.c, r);
		kc_ok(&a.c, json_pack("{s:b,s:s}", "ok", 1, "domain", a.domain),
		      "domain %s: no version waits for a signed head\n", a.domain);
		return kc_end(&a.c, MK_OK);
	}
	if (a.check != NULL) {
		uint8_t buf[MK_HEAD_MAX + 1];
		FILE *f = fopen(a.check, "rb");
		size_t n = f != NULL ? fread(buf, 1, sizeof(buf), f) : 0;

		if (f != NULL)
			fclose(f);
		r = f == NULL ? MK_ERR_IO : n > MK_HEAD_MAX || mk_head_decode(buf, n, &h) != MK_OK ? MK_ERR_TLV_VALUE : MK_OK;
		if (r == MK_OK && strcmp(h.domain, a.domain) != 0)
			r = MK_RC_WRONG_DOMAIN;
		if (r == MK_OK)
			st = head_check(&a, buf, n, &h, why, sizeof(why), &plen);
	} else {
		r = get_head(&a, seq, hb, &said);
		if (r == MK_OK && mk_head_decode(mk_buf_data(hb), mk_buf_len(hb), &h) != MK_OK)
			r = MK_ERR_DB_HEAD;
	}
	if (r == MK_OK && pk != NULL) {
		struct mk_buf *tbs = mk_buf_new(MK_HEAD_MAX);

		sigok = tbs != NULL && mk_head_encode(&h, 0, tbs) == MK_OK &&
		        auth_sig(pk, mk_buf_data(tbs), mk_buf_len(tbs), &h) == MK_OK;
		mk_buf_free(tbs);
	}
	EVP_PKEY_free(pk);
	if (r == MK_OK && a.out != NULL && a.check == NULL) {
		FILE *f = fopen(a.out, "wb");

		if (f == NULL || fwrite(mk_buf_data(hb), 1, mk_buf_len(hb), f) != mk_buf_len(hb) || fclose(f) != 0) {
			if (f != NULL)
				fclose(f);
			mk_buf_free(hb);
			mk_archive_close(a.ar);
			return fail(&a, a.out, MK_ERR_IO);
		}
	}
	mk_buf_free(hb);
	if (r != MK_OK && said) { /* the service could not be reached: said */
		mk_archive_close(a.ar);
		return 1;
	}
	if (r != MK_OK) {
		char what[PATH_MAX + 64];

		snprintf(what, sizeof(what), a.check != NULL ? "the kept head %s" : "domain %s's head",
		         a.check != NULL ? a.check : a.domain);
		mk_archive_close(a.ar);
		return fail(&a, what, r == MK_RC_RECORD_UNKNOWN && seq == 0 ? MK_RC_RECORD_UNKNOWN : r);
	}
	mk_archive_close(a.ar);
	if (st < 0)
		return 1;
	if (sigok == 0) {
		st = 1;
		snprintf(why, sizeof(why), "its signature does not verify with %s", used);
	}
	if (a.c.json) {
		json_t *o = json_pack("{s:b,s:o}", "ok", a.check == NULL ? sigok != 0 : st == 0, "head",
		                      head_json(&h, sigok == 1 ? used : NULL));

		if (a.check != NULL || sigok == 0)
			json_object_set_new(o, "check", json_string(why));
		if (a.check != NULL ? st != 0 : sigok == 0)
			return kc_fail_json(o, MK_ERR_DB_HEAD, why);
		kc_print_json(o);
		return 0;
	}
	head_text(&h, sigok == 1 ? used : NULL);
	if (a.check != NULL || sigok == 0)
		printf("%s%s\n", st == 0 ? "" : "NOT good: ", why);
	return a.check != NULL || sigok == 0 ? st : 0;
}

/* history and errors: a call (src/calls/reading.c) on the archive, or in
 * the service with --server. */
static int archive_call(struct args *a, const char *name, json_t *req)
{
	struct mk_call_ctx x = { NULL, a->ar, 1 };
	int r;

	if (req == NULL)
		r = fail(a, NULL, MK_ERR_NOMEM);
	else if (a->c.server != NULL)
		r = kc_call_remote(&a->c, name, req);
	else
		r = kc_call_with(&a->c, mk_call_find(name), &x, req);
	json_decref(req);
	mk_archive_close(a->ar);
	a->ar = NULL;
	return r;
}

static int archive_history(int argc, char **argv)
{
	struct args a;
	const struct kc_opt opts[] = { KC_COMMON(&a.c), KC_REMOTE(&a.c), KC_STR("domain", &a.domain, &kc_domain),
		                       KC_STR("key", &a.key, &kc_key_id), KC_END };
	int st;

	if ((st = start(argc, argv, opts, history_usage, 1, &a)) != KC_GO)
		return st;
	return archive_call(&a, "archive/history", json_pack("{s:s,s:I}", "domain", a.domain, "key", (json_int_t)a.key_id));
}

static int archive_errors(int argc, char **argv)
{
	struct args a;
	const struct kc_opt opts[] = { KC_COMMON(&a.c), KC_REMOTE(&a.c), KC_STR("domain", &a.domain, &kc_domain), KC_END };
	int st;

	if ((st = start(argc, argv, opts, errors_usage, 0, &a)) != KC_GO)
		return st;
	return archive_call(&a, "archive/errors", json_pack("{s:s}", "domain", a.domain));
}

static const struct mk_cli_cmd archive_cmds[] = {
	{ "verify", "check a domain's audit log and signed heads", archive_verify },
	{ "head", "print, keep or check a domain's signed head", archive_head },
	{ "history", "print every version of a key record", archive_history },
	{ "errors", "print a domain's error log", archive_errors },
};

int mk_cli_archive(int argc, char **argv)
{
	return mk_cli_dispatch("meterkey archive", archive_cmds,
	                       MK_ARRAY_LEN(archive_cmds), argc, argv);
}
