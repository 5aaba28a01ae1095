/*
 * Domains (include/meterkey/archive.h): a domain and its sub-domains, and
 * the two counters its row keeps: key IDs, handed out in order and never
 * reused, and the error log's entries. Each write is one transaction
 * (archive_write_txn) that locks the domain's row first and appends its
 * audit entry.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/archive_int.h"
#include "meterkey/ids.h"

/* ---- Domains ------------------------------------------------------------------------ */

struct domain_args {
	const char *domain, *sub;
	int64_t time;
	uint64_t id;
	uint64_t count; /* key IDs to allocate */
};

static enum mk_err do_put_domain(struct mk_archive *a, void *arg)
{
	struct domain_args *d = arg;
	struct domain_state ds = { .created = d->time };
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(d->domain), MK_DB_INT_VAL(d->time),
		                 MK_DB_BLOB_VAL(ds.head, HASH_LEN) };
	struct mk_db_val content[] = { MK_DB_TEXT_VAL(d->domain), MK_DB_INT_VAL(d->time) };
	enum mk_err r = archive_query(a, S_DOMAIN_INSERT, p, 3, NULL, NULL, NULL);

	if (r == MK_ERR_DB_CONSTRAINT)
		return MK_RC_RECORD_EXISTS;
	if (r != MK_OK ||
	    (r = archive_audit_append(a, d->domain, &ds, d->time, A_DOMAIN, d->domain, 0, 0, content, 2)) != MK_OK)
		return r;
	return archive_domain_store(a, d->domain, &ds);
}

enum mk_err mk_archive_put_domain(struct mk_archive *a, const char *domain, int64_t time)
{
	struct domain_args d = { .domain = domain, .time = time };

	if (a == NULL || !mk_domain_id_valid(domain) || time < 0)
		return MK_ERR_INVALID_ARG;
	return archive_write_txn(a, do_put_domain, &d);
}

static enum mk_err do_put_subdomain(struct mk_archive *a, void *arg)
{
	struct domain_args *d = arg;
	struct domain_state ds;
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(d->domain), MK_DB_TEXT_VAL(d->sub), MK_DB_INT_VAL(d->time) };
	enum mk_err r;

	if ((r = archive_domain_lock(a, d->domain, &ds)) != MK_OK)
		return r;
	if ((r = archive_query(a, S_SUB_INSERT, p, 3, NULL, NULL, NULL)) == MK_ERR_DB_CONSTRAINT)
		return MK_RC_RECORD_EXISTS;
	if (r != MK_OK ||
	    (r = archive_audit_append(a, d->domain, &ds, d->time, A_SUBDOMAIN, d->sub, 0, 0, p + 1, 2)) != MK_OK)
		return r;
	return archive_domain_store(a, d->domain, &ds);
}

enum mk_err mk_archive_put_subdomain(struct mk_archive *a, const char *domain, const char *sub,
                                     int64_t time)
{
	struct domain_args d = { .domain = domain, .sub = sub, .time = time };

	if (a == NULL || !mk_domain_id_valid(domain) || !mk_domain_id_valid(sub) || time < 0)
		return MK_ERR_INVALID_ARG;
	return archive_write_txn(a, do_put_subdomain, &d);
}

enum mk_err mk_archive_has_subdomain(struct mk_archive *a, const char *domain, const char *sub)
{
	struct mk_db_val p[2];
	struct row_copy rc;
	enum mk_err r;

	if (a == NULL || !mk_domain_id_valid(domain) || !mk_domain_id_valid(sub))
		return MK_ERR_INVALID_ARG;
	p[0] = MK_DB_TEXT_VAL(domain);
	p[1] = MK_DB_TEXT_VAL(sub);
	if ((r = archive_query_row(a, S_SUB_GET, p, 2, &rc)) != MK_OK)
		return r;
	return rc.found ? MK_OK : MK_RC_DOMAIN_UNKNOWN;
}

enum mk_err mk_archive_last_key_id(struct mk_archive *a, const char *domain, uint64_t *idp)
{
	struct domain_state ds;
	enum mk_err r;

	if (a == NULL || idp == NULL || !mk_domain_id_valid(domain))
		return MK_ERR_INVALID_ARG;
	if ((r = archive_domain_read(a, S_DOMAIN_GET, domain, &ds)) != MK_OK)
		return r;
	*idp = (uint64_t)ds.last_key_id;
	return MK_OK;
}

/* Allocates d->count IDs in one step: one audit entry names the range
 * (first, count). */
static enum mk_err do_next_key_id(struct mk_archive *a, void *arg)
{
	struct domain_args *d = arg;
	struct domain_state ds;
	struct mk_db_val content[2];
	int64_t first;
	enum mk_err r;

	if ((r = archive_domain_lock(a, d->domain, &ds)) != MK_OK)
		return r;
	if (ds.last_key_id > INT64_MAX - (int64_t)d->count)
		return MK_RC_RESOURCE_UNAVAILABLE;
	first = ds.last_key_id + 1;
	ds.last_key_id += (int64_t)d->count;
	content[0] = MK_DB_INT_VAL(first);
	content[1] = MK_DB_INT_VAL(d->count);
	if ((r = archive_audit_append(a, d->domain, &ds, d->time, A_KEY_ID, "", first, (int64_t)d->count,
	                              content, 2)) != MK_OK ||
	    (r = archive_domain_store(a, d->domain, &ds)) != MK_OK)
		return r;
	d->id = (uint64_t)first;
	return MK_OK;
}

enum mk_err mk_archive_next_key_ids(struct mk_archive *a, const char *domain, uint64_t count,
                                    uint64_t *firstp)
{
	struct domain_args d = { .domain = domain, .time = (int64_t)time(NULL), .count = count };
	enum mk_err r;

	if (a == NULL || firstp == NULL || !mk_domain_id_valid(domain) || count == 0 ||
	    count > MK_ARCHIVE_BATCH_MAX)
		return MK_ERR_INVALID_ARG;
	if ((r = archive_write_txn(a, do_next_key_id, &d)) == MK_OK)
		*firstp = d.id;
	return r;
}

enum mk_err mk_archive_next_key_id(struct mk_archive *a, const char *domain, uint64_t *idp)
{
	return mk_archive_next_key_ids(a, domain, 1, idp);
}

/* ---- Listing ---------------------------------------------------------------------- */

/* The rows of a listing, copied out of the driver's memory: domain IDs
 * (with their creation) or one domain's sub-domains, each checked. */
struct id_rows {
	char (*ids)[MK_DOMAIN_ID_MAX + 1];
	int64_t *created; /* NULL: not asked */
	size_t n, cap;
	int bad;
};

static int id_row(void *ctx, const struct mk_db_val *c, size_t n)
{
	struct id_rows *r = ctx;

	if (n < 1 || c[0].type != MK_DB_TEXT || c[0].n > MK_DOMAIN_ID_MAX || r->n == r->cap ||
	    (r->created != NULL && (n < 2 || c[1].type != MK_DB_INT))) {
		r->bad = 1;
		return 1;
	}
	memcpy(r->ids[r->n], c[0].p, c[0].n);
	r->ids[r->n][c[0].n] = '\0';
	if (!mk_domain_id_valid(r->ids[r->n])) {
		r->bad = 1;
		return 1;
	}
	if (r->created != NULL)
		r->created[r->n] = c[1].i;
	r->n++;
	return 0;
}

enum mk_err mk_archive_list_domains(struct mk_archive *a, int (*fn)(void *ctx, const struct mk_domain_entry *d),
                                    void *ctx)
{
	struct id_rows doms = { .cap = MK_ARCHIVE_DOMAINS_MAX };
	struct mk_domain_entry *d = calloc(1, sizeof(*d));
	enum mk_err r;

	if (a == NULL || fn == NULL) {
		free(d);
		return MK_ERR_INVALID_ARG;
	}
	doms.ids = calloc(doms.cap, sizeof(*doms.ids));
	doms.created = calloc(doms.cap, sizeof(*doms.created));
	if (d == NULL || doms.ids == NULL || doms.created == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	if ((r = archive_query(a, S_DOMAIN_LIST, NULL, 0, id_row, &doms, NULL)) != MK_OK)
		goto out;
	if (doms.bad) {
		r = MK_ERR_DB_RECORD;
		goto out;
	}
	for (size_t i = 0; i < doms.n; i++) {
		struct id_rows subs = { .ids = d->subs, .cap = MK_ARCHIVE_SUBDOMAINS_MAX };
		struct mk_db_val p = MK_DB_TEXT_VAL(doms.ids[i]);

		memset(d, 0, sizeof(*d));
		if ((r = archive_query(a, S_SUB_LIST, &p, 1, id_row, &subs, NULL)) != MK_OK)
			goto out;
		if (subs.bad) {
			r = MK_ERR_DB_RECORD;
			goto out;
		}
		memcpy(d->id, doms.ids[i], sizeof(d->id));
		d->created = doms.created[i];
		d->nsubs = subs.n;
		if (fn(ctx, d) != 0)
			break;
	}
	r = MK_OK;
out:
	free(d);
	free(doms.ids);
	free(doms.created);
	return r;
}

/* ---- Error log ------------------------------------------------------------------- */

struct error_args {
	const char *domain, *box_id, *detail;
	uint64_t key_id;
	int32_t code;
	int64_t time;
};

static enum mk_err do_log_error(struct mk_archive *a, void *arg)
{
	struct error_args *e = arg;
	struct domain_state ds;
	enum mk_err r;

	if ((r = archive_domain_lock(a, e->domain, &ds)) != MK_OK)
		return r;
	ds.last_error_id++;
	{
		struct mk_db_val p[] = {
			MK_DB_TEXT_VAL(e->domain), MK_DB_INT_VAL(ds.last_error_id), MK_DB_INT_VAL(e->time),
			MK_DB_TEXT_VAL(e->box_id), MK_DB_INT_VAL(e->key_id), MK_DB_INT_VAL(e->code),
			MK_DB_TEXT_VAL(e->detail),
		};

		if ((r = archive_query(a, S_ERR_INSERT, p, 7, NULL, NULL, NULL)) != MK_OK ||
		    (r = archive_audit_append(a, e->domain, &ds, e->time, A_ERROR, "", ds.last_error_id, 0,
		                              p + 1, 6)) != MK_OK)
			return r;
	}
	return archive_domain_store(a, e->domain, &ds);
}

enum mk_err mk_archive_log_error(struct mk_archive *a, const char *domain, const char *box_id,
                                 uint64_t key_id, enum mk_err code, const char *detail,
                                 int64_t time)
{
	char clean[MK_ARCHIVE_DETAIL_MAX + 1];
	struct error_args e = { domain, box_id != NULL ? box_id : "", clean, key_id, (int32_t)code, time };
	size_t i = 0;

	if (a == NULL || !mk_domain_id_valid(domain) || time < 0 || key_id > INT64_MAX ||
	    (e.box_id[0] != '\0' && !mk_box_id_valid(e.box_id)))
		return MK_ERR_INVALID_ARG;
	/* Printable ASCII only, so a log line is safe to show anywhere. */
	for (; detail != NULL && detail[i] != '\0' && i < MK_ARCHIVE_DETAIL_MAX; i++)
		clean[i] = detail[i] >= 0x20 && detail[i] <= 0x7e ? detail[i] : '?';
	clean[i] = '\0';
	return archive_write_txn(a, do_log_error, &e);
}

struct error_walk {
	int (*fn)(void *ctx, const struct mk_error_entry *e);
	void *ctx;
	int bad;
};

static void text_to(char *dst, size_t size, const struct mk_db_val *v)
{
	size_t n = v->type == MK_DB_TEXT ? (v->n < size - 1 ? v->n : size - 1) : 0;

	if (n > 0)
		memcpy(dst, v->p, n);
	dst[n] = '\0';
}

static int error_row(void *ctx, const struct mk_db_val *c, size_t n)
{
	struct error_walk *w = ctx;
	struct mk_error_entry e;

	if (n < 6) {
		w->bad = 1;
		return 1;
	}
	memset(&e, 0, sizeof(e));
	e.id = (uint64_t)c[0].i;
	e.time = c[1].i;
	text_to(e.box_id, sizeof(e.box_id), &c[2]);
	e.key_id = (uint64_t)c[3].i;
	e.code = (int32_t)c[4].i;
	text_to(e.detail, sizeof(e.detail), &c[5]);
	return w->fn(w->ctx, &e);
}

enum mk_err mk_archive_list_errors(struct mk_archive *a, const char *domain,
                                   int (*fn)(void *ctx, const struct mk_error_entry *e), void *ctx)
{
	struct error_walk w = { fn, ctx, 0 };
	struct domain_state ds;
	struct mk_db_val p;
	enum mk_err r;

	if (a == NULL || fn == NULL || !mk_domain_id_valid(domain))
		return MK_ERR_INVALID_ARG;
	if ((r = archive_domain_read(a, S_DOMAIN_GET, domain, &ds)) != MK_OK)
		return r;
	p = MK_DB_TEXT_VAL(domain);
	if ((r = archive_query(a, S_ERR_LIST, &p, 1, error_row, &w, NULL)) != MK_OK)
		return r;
	return w.bad ? MK_ERR_DB_RECORD : MK_OK;
}
