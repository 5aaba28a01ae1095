/*
 * meterkey demo — what the foundation does, end to end, with every refusal
 * shown beside the success it guards. Later parts replace this with the full
 * life of a fleet of meters.
 *
 * Steps: self-tests; operator shares for a Manufacturing Box (k-1 shares and a
 * corrupted share refused); key pairs for an Oak and a Brass box; a master key
 * wrapped to Brass inside a canonical TLV message signed by Oak (a changed
 * byte refused); the message sent over the framed link to a simulated meter,
 * a separate process, through a noisy line that flips a bit in the first
 * frame (NAK, resend, ACK). A step whose check fails ends the demo with exit
 * status 1.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli/cli.h"
#include "meterkey/archive.h"
#include "meterkey/crypto.h"
#include "meterkey/frame.h"
#include "meterkey/rng.h"
#include "meterkey/shares.h"
#include "meterkey/tlv.h"

static const char usage[] =
	"usage: meterkey demo [--dir DIR] [--archive URL]\n"
	"  Runs the foundation end to end: self-tests, operator shares, keys, a signed\n"
	"  TLV message carrying a wrapped master key, the framed link to a simulated\n"
	"  meter over a noisy line, and the key's life in the domain archive. Share\n"
	"  files and the archive (sqlite:DIR/archive.db unless --archive names\n"
	"  another, e.g. postgresql://...) go to DIR (default: a temporary directory,\n"
	"  removed afterwards). Exit status 0 when every step and every refusal it\n"
	"  shows behaves as it should.\n";

/* Tags of the demo's key delivery message (docs/formats.md §1 gives the TLV). */
enum { T_BODY = 0x01, T_SIG = 0x02 };
enum { T_DOMAIN = 0x01, T_KEY_ID = 0x02, T_STEEL_ID = 0x03, T_WRAPPED_KEY = 0x04 };
#define MASTER_KEY_LEN 16
#define MSG_CAP 1024

static int step_no;

__attribute__((format(printf, 1, 2))) static void step(const char *fmt, ...)
{
	va_list ap;

	printf("\n%d. ", ++step_no);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* Prints one line of result; returns 0 when got == want, else 1. */
static int check(const char *what, enum mk_err got, enum mk_err want)
{
	int ok = got == want;

	if (want == MK_OK)
		printf("   %-58s %s\n", what, ok ? "ok" : mk_strerror(got));
	else if (ok)
		printf("   %-58s refused: %s\n", what, mk_strerror(got));
	else
		printf("   %-58s %s\n", what, got == MK_OK ? "ACCEPTED (wrong)" : mk_strerror(got));
	return ok ? 0 : 1;
}

static void hex_line(const char *label, const uint8_t *p, size_t n, size_t max)
{
	printf("   %s (%zu bytes):", label, n);
	for (size_t i = 0; i < n && i < max; i++)
		printf("%s%02x", i % 32 == 0 ? "\n     " : " ", p[i]);
	printf("%s\n", n > max ? " ..." : "");
}

static int demo_selftest(void)
{
	step("Self-tests, as every box runs them at start");
	return check("known-answer tests (AES, CMAC, KWP, GCM, ECDSA, KDFs, ECDH)", mk_selftest_run(),
	             MK_OK);
}

/* Splits a fresh Operation Combination 3 of 3 and shows what rebuilds it. */
static int demo_shares(struct mk_rng *rng, const char *dir)
{
	static const char box[] = "M00000001";
	struct mk_share *sh[3] = { NULL }, *bad = NULL;
	uint8_t secret[32], rebuilt[MK_SHARE_SECRET_MAX];
	char path[3][PATH_MAX];
	size_t len = 0;
	int fails = 0;
	enum mk_err r;

	step("Operator shares: Manufacturing Box %s, Operation Combination 3 of 3", box);
	/* Split, write one file per operator, then read them back as operators would. */
	if ((r = mk_rng_bytes(rng, secret, sizeof(secret))) != MK_OK ||
	    (r = mk_share_split(rng, box, secret, sizeof(secret), 3, 3, sh)) != MK_OK) {
		fails = check("split", r, MK_OK);
		goto out;
	}
	for (int i = 0; i < 3 && r == MK_OK; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/%s-share-%d-of-3", dir, box, i + 1);
		r = mk_share_write_file(sh[i], path[i]);
	}
	mk_share_free_array(sh, 3);
	fails |= check("three share files written (mode 0600, never overwritten)", r, MK_OK);
	if (r != MK_OK)
		goto out;
	printf("     %s\n     %s\n     %s\n", path[0], path[1], path[2]);
	for (int i = 0; i < 3 && r == MK_OK; i++)
		r = mk_share_read_file(path[i], &sh[i]);
	fails |= check("read back", r, MK_OK);
	if (r != MK_OK)
		goto out;
	r = mk_share_combine((const struct mk_share *const *)sh, 3, box, rebuilt, sizeof(rebuilt), &len);
	fails |= check("all three shares rebuild the secret", r, MK_OK);
	fails |= check("  ... and it is the secret that was split",
	               len == sizeof(secret) && mk_ct_equal(rebuilt, secret, len) ? MK_OK
	                                                                          : MK_ERR_VERIFY,
	               MK_OK);
	r = mk_share_combine((const struct mk_share *const *)sh, 2, box, rebuilt, sizeof(rebuilt), &len);
	fails |= check("two shares (one operator absent)", r, MK_ERR_SHARE_TOO_FEW);
	r = mk_share_combine((const struct mk_share *const *)sh, 3, "O00000001", rebuilt,
	                     sizeof(rebuilt), &len);
	fails |= check("the shares offered to another box (O00000001)", r, MK_ERR_SHARE_FOREIGN);

	/* One byte of share 2 changed on its medium. */
	{
		FILE *f = fopen(path[1], "r+b");
		int c;

		if (f == NULL || fseek(f, 60, SEEK_SET) != 0 || (c = fgetc(f)) == EOF ||
		    fseek(f, 60, SEEK_SET) != 0 || fputc(c ^ 0x01, f) == EOF || fclose(f) != 0) {
			fails = 1;
			goto out;
		}
	}
	r = mk_share_read_file(path[1], &bad);
	fails |= check("share 2 with one bit changed on its medium", r, MK_ERR_SHARE_CORRUPT);
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(rebuilt, sizeof(rebuilt));
	mk_share_free_array(sh, 3);
	mk_share_free(bad);
	return fails;
}

/*
 * Builds the delivery message: body = {domain, key ID, Steel ID, master key
 * wrapped to Brass}, signed by Oak over the body's exact bytes.
 */
static enum mk_err build_message(struct mk_rng *rng, EVP_PKEY *oak, EVP_PKEY *brass,
                                 const uint8_t key[static MASTER_KEY_LEN], struct mk_buf *msg,
                                 uint8_t wrapped_out[static MK_EC_WRAPPED_LEN(MASTER_KEY_LEN)])
{
	struct mk_buf *wrapped = mk_buf_new(MK_EC_WRAPPED_LEN(MASTER_KEY_LEN));
	struct mk_tlv_writer w, body;
	struct mk_tlv_reader rd;
	const uint8_t *bp;
	size_t bn;
	uint8_t sig[MK_ECDSA_SIG_LEN];
	enum mk_err r = MK_ERR_NOMEM;

	if (wrapped == NULL)
		goto out;
	if ((r = mk_ec_wrap(rng, brass, "VE", 2, key, MASTER_KEY_LEN, wrapped)) != MK_OK)
		goto out;
	{
		struct mk_buf copy;

		mk_buf_init_view(&copy, mk_buf_data(wrapped), mk_buf_len(wrapped));
		if ((r = mk_buf_get_bytes(&copy, wrapped_out, MK_EC_WRAPPED_LEN(MASTER_KEY_LEN))) != MK_OK)
			goto out;
	}
	mk_tlv_writer_init(&w, msg);
	if ((r = mk_tlv_begin(&w, T_BODY, &body)) != MK_OK ||
	    (r = mk_tlv_put_string(&body, T_DOMAIN, "VE")) != MK_OK ||
	    (r = mk_tlv_put_u64(&body, T_KEY_ID, 1)) != MK_OK ||
	    (r = mk_tlv_put_string(&body, T_STEEL_ID, "S00000001")) != MK_OK ||
	    (r = mk_tlv_put_bytes(&body, T_WRAPPED_KEY, mk_buf_data(wrapped), mk_buf_len(wrapped))) != MK_OK ||
	    (r = mk_tlv_end(&w, &body)) != MK_OK)
		goto out;
	/* Sign the body element exactly as encoded. */
	mk_tlv_reader_init(&rd, mk_buf_data(msg), mk_buf_len(msg));
	if ((r = mk_tlv_get_bytes(&rd, T_BODY, 1, MSG_CAP, &bp, &bn)) != MK_OK ||
	    (r = mk_ecdsa_sign(oak, bp, bn, sig)) != MK_OK)
		goto out;
	r = mk_tlv_put_bytes(&w, T_SIG, sig, sizeof(sig));
out:
	mk_buf_free(wrapped);
	return r;
}

/*
 * What Brass does with the message: decode it by its schema, check Oak's
 * signature over the body's bytes, unwrap the key. *keyp is set only on MK_OK.
 */
static enum mk_err open_message(EVP_PKEY *oak, EVP_PKEY *brass, const uint8_t *p, size_t n,
                                uint64_t *key_idp, struct mk_secret **keyp)
{
	struct mk_tlv_reader rd, body;
	const uint8_t *bp, *sig, *wk;
	size_t bn, sn, wn;
	char domain[8], steel[MK_BOX_ID_LEN + 1];
	enum mk_err r;

	mk_tlv_reader_init(&rd, p, n);
	if ((r = mk_tlv_get_bytes(&rd, T_BODY, 1, MSG_CAP, &bp, &bn)) != MK_OK ||
	    (r = mk_tlv_get_bytes(&rd, T_SIG, MK_ECDSA_SIG_LEN, MK_ECDSA_SIG_LEN, &sig, &sn)) != MK_OK ||
	    (r = mk_tlv_reader_end(&rd)) != MK_OK)
		return r;
	if (mk_ecdsa_verify(oak, bp, bn, sig) != MK_OK)
		return MK_RC_SIGNATURE_INVALID;
	mk_tlv_reader_init(&body, bp, bn);
	if ((r = mk_tlv_get_string(&body, T_DOMAIN, 1, sizeof(domain) - 1, domain, sizeof(domain))) != MK_OK ||
	    (r = mk_tlv_get_u64(&body, T_KEY_ID, key_idp)) != MK_OK ||
	    (r = mk_tlv_get_string(&body, T_STEEL_ID, MK_BOX_ID_LEN, MK_BOX_ID_LEN, steel, sizeof(steel))) != MK_OK ||
	    (r = mk_tlv_get_bytes(&body, T_WRAPPED_KEY, 1, MSG_CAP, &wk, &wn)) != MK_OK ||
	    (r = mk_tlv_reader_end(&body)) != MK_OK)
		return r;
	if (mk_ec_unwrap(brass, domain, strlen(domain), wk, wn, keyp) != MK_OK)
		return MK_RC_DECRYPT_FAILED;
	return MK_OK;
}

/* What the archive step needs from the keys step. */
struct demo_keys {
	EVP_PKEY *oak, *brass;
	uint8_t wrapped[MK_EC_WRAPPED_LEN(MASTER_KEY_LEN)];
};

static int demo_keys_and_message(struct mk_rng *rng, struct mk_buf *msg, struct demo_keys *dk)
{
	EVP_PKEY *oak = NULL, *brass = NULL;
	struct mk_secret *key = NULL, *got = NULL;
	uint8_t kcv[3], kcv2[3], zero[16] = { 0 };
	uint64_t key_id = 0;
	int fails = 0;
	enum mk_err r;

	step("Keys: Oak O00000001 signs, Brass B00000001 receives (P-256, from the RNG)");
	if ((r = mk_ec_keygen(rng, &oak)) != MK_OK || (r = mk_ec_keygen(rng, &brass)) != MK_OK ||
	    (r = mk_secret_new(MASTER_KEY_LEN, &key)) != MK_OK ||
	    (r = mk_rng_bytes(rng, mk_secret_data(key), MASTER_KEY_LEN)) != MK_OK) {
		fails = check("key generation", r, MK_OK);
		goto out;
	}
	fails |= check("two key pairs and a 128-bit master key generated", MK_OK, MK_OK);
	/* The key check value, the usual way to name a key without showing it. */
	if ((r = mk_cmac_once(mk_secret_cdata(key), MASTER_KEY_LEN, zero, sizeof(zero), kcv,
	                      sizeof(kcv))) != MK_OK) {
		fails = check("key check value", r, MK_OK);
		goto out;
	}
	printf("   master key check value (CMAC of a zero block): %02x%02x%02x\n", kcv[0], kcv[1], kcv[2]);

	step("A message in canonical TLV: the master key wrapped to Brass, signed by Oak");
	if ((r = build_message(rng, oak, brass, mk_secret_cdata(key), msg, dk->wrapped)) != MK_OK) {
		fails = check("encode, wrap and sign", r, MK_OK);
		goto out;
	}
	hex_line("message", mk_buf_data(msg), mk_buf_len(msg), 64);
	r = open_message(oak, brass, mk_buf_data(msg), mk_buf_len(msg), &key_id, &got);
	fails |= check("Brass decodes it, checks Oak's signature, unwraps the key", r, MK_OK);
	if (r == MK_OK) {
		r = mk_cmac_once(mk_secret_cdata(got), mk_secret_len(got), zero, sizeof(zero), kcv2,
		                 sizeof(kcv2));
		fails |= check("  ... same key (check values agree)",
		               r == MK_OK && memcmp(kcv, kcv2, sizeof(kcv)) == 0 ? MK_OK : MK_ERR_VERIFY,
		               MK_OK);
	}
	mk_secret_free(got);
	got = NULL;
	{
		struct mk_buf *t = mk_buf_new(MSG_CAP);
		/* The key ID's last byte: body header (2), domain (4), key ID tag and
		 * length (2), 8 value bytes; then inside the wrapped key; the last
		 * byte of the signature. */
		size_t at[3] = { 2 + 4 + 2 + 7, mk_buf_len(msg) - 70, mk_buf_len(msg) - 1 };
		static const char *what[3] = { "the message with its key ID changed",
			                       "the message with a wrapped-key byte changed",
			                       "the message with a signature byte changed" };

		for (int i = 0; t != NULL && i < 3; i++) {
			uint8_t *p;

			mk_buf_reset(t);
			if (mk_buf_put_bytes(t, mk_buf_data(msg), mk_buf_len(msg)) != MK_OK)
				break;
			p = (uint8_t *)mk_buf_data(t);
			p[at[i]] ^= 0x01;
			r = open_message(oak, brass, p, mk_buf_len(t), &key_id, &got);
			fails |= check(what[i], r, MK_RC_SIGNATURE_INVALID);
			mk_secret_free(got);
			got = NULL;
		}
		fails |= t == NULL;
		mk_buf_free(t);
	}
	r = open_message(brass, brass, mk_buf_data(msg), mk_buf_len(msg), &key_id, &got);
	fails |= check("the message checked against another box's key", r, MK_RC_SIGNATURE_INVALID);
out:
	mk_secret_free(got);
	mk_secret_free(key);
	dk->oak = oak;
	dk->brass = brass;
	return fails;
}

/* One direction of the line, parsed just enough to tell a control byte
 * between frames from the same value inside one. */
struct line_dir {
	uint8_t hdr[3]; /* class, length */
	size_t hn;      /* header bytes seen, when in_frame */
	size_t rest;    /* payload, CRC and ETX (or an ACK's CRC) still to pass */
	int in_frame;
};

/* Returns ACK or NAK when c is one, sent between frames; else 0. An ACK is
 * followed by the CRC it names (MK_FRAME_ACK_LEN bytes in all): those bytes
 * are passed over like the rest of a frame, so a CRC byte that happens to
 * equal ACK or NAK is not reported as one. */
static int line_feed(struct line_dir *d, uint8_t c)
{
	if (d->rest > 0) {
		d->in_frame = --d->rest > 0;
		return 0;
	}
	if (d->in_frame) {
		d->hdr[d->hn++] = c;
		if (d->hn == 3) {
			d->rest = (size_t)((d->hdr[1] << 8) | d->hdr[2]) + 5; /* CRC, ETX */
			d->hn = 0;
		}
		return 0;
	}
	if (c == MK_FRAME_STX)
		d->in_frame = 1;
	if (c == MK_FRAME_ACK) {
		d->rest = MK_FRAME_ACK_LEN - 1; /* its CRC, then between frames again */
		d->in_frame = 1;
	}
	return c == MK_FRAME_ACK || c == MK_FRAME_NAK ? c : 0;
}

/*
 * The noisy line: copies bytes both ways between host and meter, flips one bit
 * of the first frame's payload, and reports the acknowledgements it carries.
 * Ends when either side closes.
 */
static void noisy_line(int from_host, int to_host, int to_meter, int from_meter)
{
	struct pollfd pfd[2] = { { from_host, POLLIN, 0 }, { from_meter, POLLIN, 0 } };
	int out[2] = { to_meter, to_host };
	static const char *who[2] = { "host", "meter" };
	struct line_dir dir[2] = { { { 0 }, 0, 0, 0 }, { { 0 }, 0, 0, 0 } };
	uint8_t b[512];
	size_t seen = 0;

	for (;;) {
		if (poll(pfd, 2, 5000) <= 0)
			_exit(1);
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (!pfd[i].revents)
				continue;
			if ((n = read(pfd[i].fd, b, sizeof(b))) <= 0)
				_exit(0);
			for (ssize_t j = 0; j < n; j++) {
				int c = line_feed(&dir[i], b[j]);

				if (c)
					printf("   line: %s answered %s\n", who[i],
					       c == MK_FRAME_NAK ? "NAK" : "ACK");
				if (i == 0 && seen++ == 10) { /* a payload byte of the first frame */
					b[j] ^= 0x10;
					printf("   line: one bit flipped in the first transmission\n");
				}
			}
			fflush(stdout);
			if (write(out[i], b, (size_t)n) != n)
				_exit(1);
		}
	}
}

/* The simulated meter: receives one meter command, answers with its length. */
static void meter(int rfd, int wfd)
{
	struct mk_link l;
	struct mk_buf *in = mk_buf_new(MK_FRAME_MAX_PAYLOAD);
	struct mk_buf out;
	uint8_t resp[16], cls;
	struct mk_tlv_writer w;

	mk_link_init(&l, rfd, wfd);
	mk_buf_init_fixed(&out, resp, sizeof(resp));
	mk_tlv_writer_init(&w, &out);
	if (in == NULL || mk_link_recv(&l, 5000, &cls, in) != MK_OK || cls != MK_FRAME_METER_COMMAND ||
	    mk_tlv_put_u32(&w, 0x01, (uint32_t)mk_buf_len(in)) != MK_OK ||
	    mk_link_send(&l, MK_FRAME_METER_RESPONSE, mk_buf_data(&out), mk_buf_len(&out)) != MK_OK)
		_exit(1);
	mk_buf_free(in);
	_exit(0);
}

static int demo_link(const struct mk_buf *msg)
{
	int h2l[2], l2h[2], l2m[2], m2l[2], fails = 0, st;
	pid_t line, mtr;
	struct mk_link l;
	struct mk_buf *resp = mk_buf_new(MK_FRAME_MAX_PAYLOAD);
	struct mk_tlv_reader rd;
	uint8_t cls = 0;
	uint32_t got = 0;
	enum mk_err r;

	step("The framed link (STX | class | length | payload | CRC-32 | ETX) to a meter");
	if (resp == NULL || pipe(h2l) || pipe(l2h) || pipe(l2m) || pipe(m2l)) {
		mk_buf_free(resp);
		return check("pipes", MK_ERR_IO, MK_OK);
	}
	fflush(stdout);
	if ((mtr = fork()) == 0) {
		close(h2l[0]), close(h2l[1]), close(l2h[0]), close(l2h[1]);
		close(l2m[1]), close(m2l[0]);
		meter(l2m[0], m2l[1]);
	}
	if ((line = fork()) == 0) {
		close(h2l[1]), close(l2h[0]), close(l2m[0]), close(m2l[1]);
		noisy_line(h2l[0], l2h[1], l2m[1], m2l[0]);
	}
	close(h2l[0]), close(l2h[1]), close(l2m[0]), close(l2m[1]), close(m2l[0]), close(m2l[1]);
	mk_link_init(&l, l2h[0], h2l[1]);
	l.ack_timeout_ms = 300;
	r = mk_link_send(&l, MK_FRAME_METER_COMMAND, mk_buf_data(msg), mk_buf_len(msg));
	fails |= check("host sent the message; the meter acknowledged it intact", r, MK_OK);
	if (r == MK_OK) {
		r = mk_link_recv(&l, 5000, &cls, resp);
		mk_tlv_reader_init(&rd, mk_buf_data(resp), mk_buf_len(resp));
		if (r == MK_OK)
			r = mk_tlv_get_u32(&rd, 0x01, &got);
		fails |= check("meter's response received", r, MK_OK);
		printf("   meter: received %u bytes, the host sent %zu\n", got, mk_buf_len(msg));
		fails |= got != mk_buf_len(msg);
	}
	close(h2l[1]);
	close(l2h[0]);
	fails |= waitpid(mtr, &st, 0) != mtr || !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	fails |= waitpid(line, &st, 0) != line || !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	mk_buf_free(resp);
	return fails;
}

/* Signs rec's to-be-signed form with key on behalf of box signer. */
static enum mk_err sign_record(struct mk_key_record *rec, EVP_PKEY *key, const char *signer)
{
	struct mk_buf *tbs = mk_buf_new(4096);
	enum mk_err r = MK_ERR_NOMEM;

	if (tbs != NULL && (r = mk_key_record_encode_tbs(rec, tbs)) == MK_OK &&
	    (r = mk_ecdsa_sign(key, mk_buf_data(tbs), mk_buf_len(tbs), rec->sig)) == MK_OK) {
		rec->sig_len = MK_ECDSA_SIG_LEN;
		snprintf(rec->signer, sizeof(rec->signer), "%s", signer);
	}
	mk_buf_free(tbs);
	return r;
}

static int count_version(void *ctx, const struct mk_key_history_entry *e)
{
	printf("     version %u: %-9s at %lld, %zu bytes as signed\n", e->seq,
	       mk_key_status_name(e->status), (long long)e->time, e->record_len);
	(*(int *)ctx)++;
	return 0;
}

/*
 * The archive: the wrapped key becomes a NEW record signed by Oak, is
 * installed and registered, and the archive refuses what the lifecycle and
 * the audit times forbid; then the history and the audit chain.
 */
static int demo_archive(const char *url, struct demo_keys *dk)
{
	struct mk_archive *a = NULL;
	struct mk_key_record rec, probe;
	struct mk_audit_result res;
	int64_t now = (int64_t)time(NULL);
	uint64_t id = 0;
	int fails = 0, versions = 0;
	enum mk_err r;

	step("The domain archive: the key's life, each version signed, every write chained");
	printf("   archive %s\n", url);
	if ((r = mk_archive_open(url, &a)) != MK_OK)
		return check("open (schema created or migrated)", r, MK_OK);
	r = mk_archive_put_domain(a, "VE", now);
	fails |= check("security domain VE", r == MK_RC_RECORD_EXISTS ? MK_OK : r, MK_OK);
	r = mk_archive_put_subdomain(a, "VE", "US", now);
	fails |= check("country sub-domain US", r == MK_RC_RECORD_EXISTS ? MK_OK : r, MK_OK);
	fails |= check("key ID from the domain's counter", mk_archive_next_key_id(a, "VE", &id), MK_OK);
	printf("   key ID %llu\n", (unsigned long long)id);

	memset(&rec, 0, sizeof(rec));
	snprintf(rec.domain, sizeof(rec.domain), "VE");
	rec.key_id = id;
	rec.status = MK_KEY_NEW;
	rec.status_time = rec.times.kms_request = now;
	rec.key_alg = rec.wrap_alg = rec.sig_alg = 1;
	snprintf(rec.product_code, sizeof(rec.product_code), "PC7");
	snprintf(rec.mfg_seq, sizeof(rec.mfg_seq), "%06llu", (unsigned long long)id);
	snprintf(rec.oak_id, sizeof(rec.oak_id), "O00000001");
	snprintf(rec.steel_id, sizeof(rec.steel_id), "S00000001");
	snprintf(rec.blob_box, sizeof(rec.blob_box), "B00000001");
	memcpy(rec.blob, dk->wrapped, sizeof(dk->wrapped));
	rec.blob_len = sizeof(dk->wrapped);
	if ((r = sign_record(&rec, dk->oak, "O00000001")) == MK_OK)
		r = mk_archive_put_key(a, &rec);
	fails |= check("NEW record (key wrapped to Brass, signed by Oak)", r, MK_OK);

	probe = rec;
	probe.status = MK_KEY_ACTIVE;
	fails |= check("NEW -> ACTIVE, skipping installation", mk_archive_update_key(a, &probe),
	               MK_RC_TRANSITION_FORBIDDEN);
	probe = rec;
	probe.key_id = id + 1000;
	fails |= check("a record with a key ID the counter never gave",
	               mk_archive_put_key(a, &probe), MK_RC_KEY_ID_UNALLOCATED);

	rec.status = MK_KEY_INSTALLED;
	rec.times.psr_install = now + 1;
	rec.status_time = rec.times.kms_install = now + 2;
	if ((r = sign_record(&rec, dk->brass, "B00000001")) == MK_OK)
		r = mk_archive_update_key(a, &rec);
	fails |= check("NEW -> INSTALLED (install times, signed by Brass)", r, MK_OK);

	rec.status = MK_KEY_ACTIVE;
	rec.times.meter_registration = now + 3;
	rec.status_time = rec.times.kms_key_registration = now + 4;
	snprintf(rec.indicia_serial, sizeof(rec.indicia_serial), "IS%06llu", (unsigned long long)id);
	snprintf(rec.subdomain, sizeof(rec.subdomain), "US");
	if ((r = sign_record(&rec, dk->brass, "B00000001")) == MK_OK)
		r = mk_archive_update_key(a, &rec);
	fails |= check("INSTALLED -> ACTIVE (registered in US)", r, MK_OK);

	probe = rec;
	probe.status = MK_KEY_OBSOLETE;
	probe.status_time = now + 1;
	fails |= check("ACTIVE -> OBSOLETE dated before the registration",
	               mk_archive_update_key(a, &probe), MK_RC_TIME_NOT_INCREASING);

	fails |= check("history", mk_archive_get_history(a, "VE", id, count_version, &versions), MK_OK);
	fails |= versions != 3;
	r = mk_archive_audit_verify(a, "VE", &res);
	fails |= check("audit chain of domain VE verifies", r, MK_OK);
	printf("   %llu audit entries; see: meterkey archive history --archive %s --domain VE --key %llu\n",
	       (unsigned long long)res.entries, url, (unsigned long long)id);
	mk_archive_close(a);
	return fails;
}

int mk_cli_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' }, { "archive", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },      { NULL, 0, NULL, 0 },
	};
	char tmpl[] = "/tmp/meterkey-demo-XXXXXX", url_buf[PATH_MAX + 16];
	const char *dir = NULL, *url = NULL;
	struct demo_keys dk = { NULL, NULL, { 0 } };
	struct mk_rng *rng = NULL;
	struct mk_buf *msg = NULL;
	int c, fails = 0;
	enum mk_err r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'a': url = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: return mk_cli_usage_error(usage, NULL);
		}
	}
	if (optind != argc)
		return mk_cli_usage_error(usage, "unexpected argument");
	if (dir == NULL && (dir = mkdtemp(tmpl)) == NULL) {
		perror("meterkey: mkdtemp");
		return 1;
	}
	if (url == NULL) {
		snprintf(url_buf, sizeof(url_buf), "sqlite:%s/archive.db", dir);
		url = url_buf;
	}
	signal(SIGPIPE, SIG_IGN);
	printf("meterkey demo: the foundation (encoding, framing, crypto, RNG, operator shares)\n"
	       "and the domain archive\n");
	fails |= demo_selftest();
	if ((r = mk_rng_new(&rng)) != MK_OK) {
		fails |= check("RNG start-up health tests", r, MK_OK);
		goto out;
	}
	fails |= check("RNG start-up health tests (getrandom XOR OpenSSL DRBG)", MK_OK, MK_OK);
	fails |= demo_shares(rng, dir);
	if ((msg = mk_buf_new(MSG_CAP)) == NULL)
		goto out;
	fails |= demo_keys_and_message(rng, msg, &dk);
	if (mk_buf_len(msg) > 0)
		fails |= demo_link(msg);
	if (dk.oak != NULL && dk.brass != NULL)
		fails |= demo_archive(url, &dk);
out:
	EVP_PKEY_free(dk.oak);
	EVP_PKEY_free(dk.brass);
	mk_buf_free(msg);
	mk_rng_free(rng);
	if (dir == tmpl) {
		for (int i = 1; i <= 3; i++) {
			char p[PATH_MAX];

			snprintf(p, sizeof(p), "%s/M00000001-share-%d-of-3", dir, i);
			unlink(p);
		}
		for (int i = 0; i < 3; i++) {
			static const char *const suffix[] = { "", "-wal", "-shm" };
			char p[PATH_MAX];

			snprintf(p, sizeof(p), "%s/archive.db%s", dir, suffix[i]);
			unlink(p);
		}
		rmdir(dir);
	}
	printf("\n%s\n", fails ? "demo FAILED: a step did not behave as it should"
	                       : "demo complete: every step and every refusal behaved as it should");
	return fails ? 1 : 0;
}
