/*
 * meterkeyd's idempotency keys (docs/api.md): a state-changing call's key
 * claimed for its client (role and name) with the digest of the call and
 * its body, its answer kept before it is given, or the key let go when
 * the call was not made. Every use of the key comes before the answer,
 * which frees the request and its headers (who->idem among them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meterkey/crypto.h"

#include "daemon.h"

/* The key's owner: its client's role and name, so that the same name in
 * another role's certificate is another client. */
static const char *idem_client(const struct svc_client *who, char out[static 32 + MK_CERT_CN_MAX])
{
	snprintf(out, 32 + MK_CERT_CN_MAX, "%s:%s", mk_cert_role_name(who->role), who->cn);
	return out;
}

/* SHA-256 of "METHOD PATH\n" and the body: a key used again on another
 * call with the same body is another request (422), not its replay. */
static enum mk_err request_digest(const char *call, const char *body, size_t n, uint8_t digest[static MK_SHA256_LEN])
{
	size_t cl = strlen(call);
	uint8_t *p = malloc(cl + 1 + n + 1);
	enum mk_err e;

	if (p == NULL)
		return MK_ERR_NOMEM;
	memcpy(p, call, cl);
	p[cl] = '\n';
	if (n > 0)
		memcpy(p + cl + 1, body, n);
	e = mk_sha256(p, cl + 1 + n, digest);
	free(p);
	return e;
}

int svc_idem_claim(struct svc *s, struct evhttp_request *c, const struct svc_client *who, const char *call,
                   const char *body, size_t n)
{
	struct mk_buf *kept = mk_buf_new(MK_IDEM_ANSWER_MAX);
	uint8_t first[MK_SHA256_LEN], digest[MK_SHA256_LEN];
	char client[32 + MK_CERT_CN_MAX];
	int status = 0;
	enum mk_err e;

	if (kept == NULL || request_digest(call, body, n, digest) != MK_OK) {
		mk_buf_free(kept);
		svc_answer_error(s, c, MK_ERR_NOMEM, NULL);
		return 1;
	}
	e = mk_archive_idem_claim(mk_kms_archive(s->kms), idem_client(who, client), who->idem, digest, (int64_t)time(NULL),
	                          &status, first, kept);
	if (e == MK_OK) {
		mk_buf_free(kept);
		return 0;
	}
	if (e == MK_ERR_INVALID_ARG)
		svc_answer_error(s, c, MK_ERR_SVC_REQUEST, "the Idempotency-Key is 1 to 128 printable characters");
	else if (e != MK_RC_RECORD_EXISTS)
		svc_answer_error(s, c, e, NULL);
	else if (memcmp(first, digest, sizeof(first)) != 0)
		svc_answer_error(s, c, MK_ERR_SVC_IDEM_MISMATCH, NULL);
	else if (status == 0)
		svc_answer_error(s, c, MK_ERR_SVC_IDEM_PENDING, NULL);
	else
		svc_answer_body(s, c, status, (const char *)mk_buf_data(kept), mk_buf_len(kept), 1);
	mk_buf_free(kept);
	return 1;
}

void svc_idem_release(struct svc *s, const struct svc_client *who)
{
	char client[32 + MK_CERT_CN_MAX];

	/* a key that could not be let go stays in progress: a retry is told so
	 * (409), never acts twice */
	if (who->idem != NULL && mk_archive_idem_release(mk_kms_archive(s->kms), idem_client(who, client), who->idem) != MK_OK)
		svc_log("error", "an idempotency key could not be let go", json_pack("{s:s}", "client", who->cn));
}

void svc_answer_kept(struct svc *s, struct evhttp_request *r, const struct svc_client *who, int status, json_t *o)
{
	char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	svc_answer_kept_text(s, r, who, status, text, text != NULL ? strlen(text) : 0);
	free(text);
}

void svc_answer_kept_text(struct svc *s, struct evhttp_request *r, const struct svc_client *who, int status,
                          const char *text, size_t len)
{
	char client[32 + MK_CERT_CN_MAX];
	enum mk_err e;

	if (text == NULL) {
		svc_idem_release(s, who);
		if (r != NULL)
			svc_answer_error(s, r, MK_ERR_NOMEM, NULL);
		return;
	}
	if (who->idem != NULL &&
	    (e = mk_archive_idem_answer(mk_kms_archive(s->kms), idem_client(who, client), who->idem, status,
	                                (const uint8_t *)text, len)) != MK_OK) {
		/* an answer too large to keep is given, its key let go (a retry
		 * makes the call again); one the archive could not keep is
		 * withheld, its key let go too */
		svc_idem_release(s, who);
		if (r == NULL)
			return;
		if (e == MK_ERR_INVALID_ARG) {
			svc_log("error", "an answer too large to keep for its idempotency key, given without",
			        json_pack("{s:s,s:I}", "client", who->cn, "bytes", (json_int_t)len));
			svc_answer_body(s, r, status, text, len, 0);
		} else {
			svc_answer_error(s, r, e, "the call was made but its answer could not be kept for its idempotency "
			                          "key: the answer is withheld");
		}
		return;
	}
	if (r != NULL)
		svc_answer_body(s, r, status, text, len, 0);
}
