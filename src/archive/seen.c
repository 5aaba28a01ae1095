/*
 * The duplicate index (include/meterkey/archive.h; docs/internals/archive.md,
 * "The duplicate index"): per postal domain, the indicia its verifiers found
 * good, built for the stream. A sighting is one integer, the device's number
 * in the domain (seen_devices, each number an audit entry) and the piece
 * count, in the partition of the indicium's date, beside the audit entry of
 * the batch that noted it. A batch's first sightings of one day get one
 * audit entry whose Merkle root covers them all (archive_sightings_root), so
 * that any of them can be proven and none removed unseen; a partition past
 * the domain's window is dropped whole, with an entry saying so.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_int.h"
#include "meterkey/ids.h"

/* ---- Noting a batch ----------------------------------------------------------------------- */

/* One sighting of the batch as the transaction sorts it. */
struct item {
	int64_t key;  /* device number << 32 | piece count */
	uint32_t day;
	uint32_t i;   /* its place in the caller's array */
};

/* A device number given in the transaction: remembered once it commits. */
struct note {
	const struct mk_sighting *s;
	size_t n;
	int64_t time;
	const char *site;
	bool *dups;
	struct mk_first_sighting *first;
	/* scratch, sized n */
	struct item *it;
	int64_t *keys;
	uint8_t *fresh;
	uint32_t *didx; /* a duplicate's place in the caller's array */
	int64_t *ent;   /* its first sighting's entry */
	struct seen_cache st; /* the numbers this transaction gave or read (hashed: a fleet's first
	                       * batch meets thousands of devices) */
	const char **doms; /* the distinct domains, in ID order */
	size_t ndoms;
	int legacy_now[16]; /* per domain of doms (the first 16): 1 has rows before schema 7 */
};

static int item_cmp(const void *a, const void *b)
{
	const struct item *x = a, *y = b;

	if (x->day != y->day)
		return x->day < y->day ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The device's number in the domain: remembered, given earlier in this
 * transaction, in seen_devices, or the next one (with its audit entry). */
static enum mk_err device_no(struct mk_archive *a, struct note *b, const char *domain, struct domain_state *ds,
                             int64_t *next, const char *device, int64_t *nop)
{
	char name[DEVNAME_MAX];
	size_t len = archive_devname(name, domain, device);
	struct mk_db_val p[3] = { MK_DB_TEXT_VAL(domain), MK_DB_TEXT_VAL(device) };
	struct row_copy rc;
	enum mk_err r;

	if ((*nop = archive_seen_cache_get(a->seen, name, len)) != 0 ||
	    (*nop = archive_seen_cache_get(&b->st, name, len)) != 0)
		return MK_OK;
	if ((r = archive_query_row(a, S_SEENDEV_GET, p, 2, &rc)) != MK_OK)
		return r;
	if (rc.found) {
		*nop = archive_col_int(&rc, 0);
	} else {
		if (*next == 0) {
			if ((r = archive_query_row(a, S_SEENDEV_MAX, p, 1, &rc)) != MK_OK)
				return r;
			*next = archive_col_int(&rc, 0) + 1;
		}
		if (*next > INT32_MAX)
			return MK_ERR_DB; /* 2^31 devices in one domain */
		*nop = (*next)++;
		p[1] = MK_DB_INT_VAL(*nop);
		p[2] = MK_DB_TEXT_VAL(device);
		{
			const struct mk_db_val c[2] = { p[2], p[1] }; /* as audit.c reads it back */

			if ((r = archive_query(a, S_SEENDEV_INSERT, p, 3, NULL, NULL, NULL)) != MK_OK ||
			    (r = archive_audit_append(a, domain, ds, b->time, A_DEVICE, device, *nop, 0, c, 2)) != MK_OK)
				return r;
		}
	}
	return archive_seen_cache_put(&b->st, name, len, *nop);
}

/* When and where the first sighting of entry was (its audit entry). */
static enum mk_err first_of(struct mk_archive *a, const char *domain, int64_t entry, struct mk_first_sighting *f)
{
	struct mk_db_val p[2] = { MK_DB_TEXT_VAL(domain), MK_DB_INT_VAL(entry) };
	struct row_copy rc;
	enum mk_err r;

	memset(f, 0, sizeof(*f));
	if (entry == 0 || (r = archive_query_row(a, S_AUDIT_GET, p, 2, &rc)) != MK_OK || !rc.found)
		return entry == 0 ? MK_ERR_DB : r == MK_OK ? MK_ERR_DB : r; /* a row without its entry: archive verify says more */
	f->time = archive_col_int(&rc, 0);
	if (rc.v[1].type == MK_DB_TEXT)
		snprintf(f->site, sizeof(f->site), "%.*s", (int)rc.v[1].n, (const char *)rc.v[1].p);
	return MK_OK;
}

/* A sighting noted before schema 7 (table indicia_seen): its time in *tp. */
static enum mk_err legacy_seen(struct mk_archive *a, const char *domain, const char *device, uint32_t piece,
                               int64_t *tp)
{
	struct mk_db_val p[3] = { MK_DB_TEXT_VAL(domain), MK_DB_TEXT_VAL(device), MK_DB_INT_VAL(piece) };
	struct row_copy rc;
	enum mk_err r;

	*tp = 0;
	if ((r = archive_query_row(a, S_SEEN_GET, p, 3, &rc)) != MK_OK)
		return r;
	if (rc.found)
		*tp = archive_col_int(&rc, 0) > 0 ? archive_col_int(&rc, 0) : 1;
	return MK_OK;
}

static int legacy_known(const struct mk_archive *a, const char *domain, bool *has)
{
	for (size_t k = 0; a->seen != NULL && k < a->seen->nleg; k++)
		if (strcmp(a->seen->leg[k].domain, domain) == 0) {
			*has = a->seen->leg[k].has;
			return 1;
		}
	return 0;
}

/* One day's sightings of one domain, it[0..m) sorted by key: inserted,
 * the first ones covered by one audit entry, the others duplicates. */
static enum mk_err note_day(struct mk_archive *a, struct note *b, const char *domain, struct domain_state *ds,
                            bool legacy, struct item *it, size_t m)
{
	uint32_t day = it[0].day;
	int64_t entry = ds->audit_seq + 1;
	size_t nk = 0, nfresh = 0;
	enum mk_err r;

	/* a piece noted before schema 7 is a duplicate, not a new row */
	for (size_t t = 0; t < m; t++) {
		int64_t old = 0;

		if (legacy && (r = legacy_seen(a, domain, b->s[it[t].i].device, b->s[it[t].i].piece_count, &old)) != MK_OK)
			return r;
		if (old != 0) {
			b->dups[it[t].i] = true;
			if (b->first != NULL) {
				memset(&b->first[it[t].i], 0, sizeof(b->first[0]));
				b->first[it[t].i].time = old;
			}
			it[t].i |= 0x80000000u; /* settled */
			continue;
		}
		b->keys[nk++] = it[t].key;
	}
	if ((r = a->ops->seen_insert(a->db, domain, day, b->keys, nk, entry, b->fresh)) != MK_OK)
		return r;
	/* the fresh keys, ascending and distinct: the entry's Merkle root */
	for (size_t t = 0; t < nk; t++)
		if (b->fresh[t])
			b->keys[nfresh++] = b->keys[t];
	if (nfresh > 0) {
		uint8_t root[HASH_LEN];
		struct mk_db_val c[3] = { MK_DB_INT_VAL(day), MK_DB_INT_VAL(nfresh), MK_DB_BLOB_VAL(root, HASH_LEN) };

		if ((r = archive_sightings_root(day, b->keys, nfresh, root)) != MK_OK ||
		    (r = archive_audit_append(a, domain, ds, b->time, A_SIGHTINGS, b->site, day, (int64_t)nfresh, c, 3)) !=
		        MK_OK)
			return r;
	}
	/* the rest are duplicates: of this batch, or of an earlier one; their
	 * first sightings' entries in one call, each entry read once */
	size_t nd = 0;

	for (size_t t = 0, k = 0; t < m; t++) {
		if (it[t].i & 0x80000000u)
			continue;
		b->dups[it[t].i] = !b->fresh[k++];
		if (b->dups[it[t].i] && b->first != NULL) {
			b->keys[nd] = it[t].key;
			b->didx[nd++] = it[t].i;
		}
	}
	if (nd == 0)
		return MK_OK;
	if ((r = a->ops->seen_get(a->db, domain, day, b->keys, nd, b->ent)) != MK_OK)
		return r;
	for (size_t t = 0; t < nd; t++) {
		if (t > 0 && b->ent[t] == b->ent[t - 1]) {
			b->first[b->didx[t]] = b->first[b->didx[t - 1]];
			continue;
		}
		for (size_t u = 0; u < t; u++) /* the same entry met before (a few per batch) */
			if (b->ent[u] == b->ent[t] && u + 64 > t) {
				b->first[b->didx[t]] = b->first[b->didx[u]];
				goto next;
			}
		if ((r = first_of(a, domain, b->ent[t], &b->first[b->didx[t]])) != MK_OK)
			return r;
	next:;
	}
	return MK_OK;
}

/* The whole batch, one domain after the other (in ID order, so that two
 * writers lock them in the same order). All or nothing: a retry starts
 * again from scratch. */
static enum mk_err do_note(struct mk_archive *a, void *arg)
{
	struct note *b = arg;
	enum mk_err r;

	archive_seen_cache_clear(&b->st);
	for (size_t d = 0; d < b->ndoms; d++) {
		const char *domain = b->doms[d];
		struct domain_state ds;
		struct row_copy rc;
		struct mk_db_val p = MK_DB_TEXT_VAL(domain);
		int64_t next = 0;
		size_t m = 0;
		bool legacy;

		if ((r = archive_domain_lock(a, domain, &ds)) != MK_OK)
			return r;
		if (!legacy_known(a, domain, &legacy)) {
			if ((r = archive_query_row(a, S_SEEN_LEGACY, &p, 1, &rc)) != MK_OK)
				return r;
			legacy = rc.found;
		}
		if (d < MK_ARRAY_LEN(b->legacy_now))
			b->legacy_now[d] = legacy;
		for (size_t i = 0; i < b->n; i++) {
			int64_t no;

			if (strcmp(b->s[i].domain, domain) != 0)
				continue;
			if ((r = device_no(a, b, domain, &ds, &next, b->s[i].device, &no)) != MK_OK)
				return r;
			b->it[m].key = (int64_t)((uint64_t)no << 32 | b->s[i].piece_count);
			b->it[m].day = b->s[i].day;
			b->it[m++].i = (uint32_t)i;
		}
		qsort(b->it, m, sizeof(*b->it), item_cmp);
		for (size_t t = 0, u; t < m; t = u) {
			for (u = t + 1; u < m && b->it[u].day == b->it[t].day; u++)
				;
			if ((r = note_day(a, b, domain, &ds, legacy, b->it + t, u - t)) != MK_OK)
				return r;
		}
		if ((r = archive_domain_store(a, domain, &ds)) != MK_OK)
			return r;
	}
	return MK_OK;
}

/* After the commit: the numbers given are remembered, and which domains
 * have sightings from before schema 7. */
static void remember(struct mk_archive *a, const struct note *b)
{
	if (a->seen == NULL && (a->seen = calloc(1, sizeof(*a->seen))) == NULL)
		return;
	for (size_t k = 0; k < b->st.cap; k++)
		if (b->st.slot[k].name != NULL &&
		    archive_seen_cache_put(a->seen, b->st.slot[k].name, b->st.slot[k].len, b->st.slot[k].no) != MK_OK)
			return; /* not remembered: looked up again next time */
	for (size_t d = 0; d < b->ndoms && d < MK_ARRAY_LEN(b->legacy_now); d++) {
		bool has;

		if (legacy_known(a, b->doms[d], &has) || a->seen->nleg == MK_ARRAY_LEN(a->seen->leg))
			continue;
		snprintf(a->seen->leg[a->seen->nleg].domain, sizeof(a->seen->leg[0].domain), "%s", b->doms[d]);
		a->seen->leg[a->seen->nleg++].has = b->legacy_now[d];
	}
}

int mk_archive_site_valid(const char *site)
{
	return mk_printable_valid(site, MK_SITE_MAX);
}

enum mk_err mk_archive_note_sightings(struct mk_archive *a, const struct mk_sighting *s, size_t n, int64_t time,
                                      const char *site, bool *dups, struct mk_first_sighting *first)
{
	struct note b = { .s = s, .n = n, .time = time, .site = site, .dups = dups, .first = first };
	enum mk_err r = MK_ERR_NOMEM;

	if (a == NULL || dups == NULL || (n > 0 && s == NULL) || n > MK_SEEN_NOTE_MAX || time < 0 || !mk_archive_site_valid(site))
		return MK_ERR_INVALID_ARG;
	for (size_t i = 0; i < n; i++)
		if (!mk_domain_id_valid(s[i].domain) || s[i].device == NULL || !archive_ident_valid(s[i].device) ||
		    s[i].day == 0)
			return MK_ERR_INVALID_ARG;
	if (n == 0)
		return MK_OK;
	b.it = malloc(n * sizeof(*b.it));
	b.keys = malloc(n * sizeof(*b.keys));
	b.fresh = malloc(n);
	b.doms = malloc(n * sizeof(*b.doms));
	b.didx = malloc(n * sizeof(*b.didx));
	b.ent = malloc(n * sizeof(*b.ent));
	if (b.it == NULL || b.keys == NULL || b.fresh == NULL || b.doms == NULL || b.didx == NULL ||
	    b.ent == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		size_t d;

		for (d = 0; d < b.ndoms && strcmp(b.doms[d], s[i].domain) != 0; d++)
			;
		if (d == b.ndoms)
			b.doms[b.ndoms++] = s[i].domain;
	}
	qsort(b.doms, b.ndoms, sizeof(*b.doms), str_cmp);
	if ((r = archive_write_txn(a, do_note, &b)) == MK_OK)
		remember(a, &b);
out:
	free(b.it);
	free(b.keys);
	free(b.fresh);
	archive_seen_cache_release(&b.st);
	free(b.doms);
	free(b.didx);
	free(b.ent);
	return r;
}

/* ---- Dropping days past the window ----------------------------------------------------------- */

struct drop {
	const char *domain;
	uint32_t before;
	int64_t time;
	unsigned dropped;
};

static enum mk_err do_drop(struct mk_archive *a, void *arg)
{
	struct drop *d = arg;
	struct domain_state ds;
	uint32_t days[512];
	size_t n;
	enum mk_err r;

	d->dropped = 0;
	if ((r = archive_domain_lock(a, d->domain, &ds)) != MK_OK ||
	    (r = a->ops->seen_days(a->db, d->domain, days, MK_ARRAY_LEN(days), &n)) != MK_OK)
		return r;
	for (size_t i = 0; i < n && i < MK_ARRAY_LEN(days) && days[i] < d->before; i++) {
		struct mk_db_val c = MK_DB_INT_VAL(days[i]);

		if ((r = a->ops->seen_drop(a->db, d->domain, days[i])) != MK_OK ||
		    (r = archive_audit_append(a, d->domain, &ds, d->time, A_SEEN_DROP, "", days[i], 0, &c, 1)) != MK_OK)
			return r;
		d->dropped++;
	}
	return d->dropped > 0 ? archive_domain_store(a, d->domain, &ds) : MK_OK;
}

enum mk_err mk_archive_drop_sightings(struct mk_archive *a, const char *domain, uint32_t before, int64_t time,
                                      unsigned *droppedp)
{
	struct drop d = { domain, before, time, 0 };
	enum mk_err r;

	if (a == NULL || !mk_domain_id_valid(domain) || time < 0)
		return MK_ERR_INVALID_ARG;
	if ((r = archive_write_txn(a, do_drop, &d)) == MK_OK && droppedp != NULL)
		*droppedp = d.dropped;
	return r;
}

enum mk_err mk_archive_sighting_days(struct mk_archive *a, const char *domain, uint32_t *days, size_t cap,
                                     size_t *np)
{
	if (a == NULL || !mk_domain_id_valid(domain) || np == NULL || (cap > 0 && days == NULL))
		return MK_ERR_INVALID_ARG;
	return a->ops->seen_days(a->db, domain, days, cap, np);
}
