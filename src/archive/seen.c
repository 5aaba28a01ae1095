/*
 * The duplicate index (include/meterkey/archive.h): the indicia a domain's
 * verifiers have seen, by device and piece count; a first sighting is a
 * row and an audit entry, a repeated one writes nothing and is a duplicate.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "archive/archive_int.h"
#include "meterkey/ids.h"

/* ---- Duplicate index ---------------------------------------------------------- */

struct seen_batch {
	const char *domain;
	const struct mk_sighting *s;
	size_t n;
	int64_t time;
	bool *dups;
};

/* n sightings of one domain in one transaction: the domain locked once, the
 * chain head stored once. A first sighting is a write like any other, a row
 * and its audit entry; a repeated one writes nothing. All or nothing (a
 * retry runs the whole batch). */
static enum mk_err do_note_batch(struct mk_archive *a, void *arg)
{
	struct seen_batch *b = arg;
	struct domain_state ds;
	enum mk_err r;

	if ((r = archive_domain_lock(a, b->domain, &ds)) != MK_OK)
		return r;
	for (size_t i = 0; i < b->n; i++) {
		struct mk_db_val p[4] = { MK_DB_TEXT_VAL(b->domain), MK_DB_TEXT_VAL(b->s[i].device),
			                  MK_DB_INT_VAL(b->s[i].piece_count), MK_DB_INT_VAL(b->time) };
		uint64_t changed = 0;

		if ((r = archive_query(a, S_SEEN_INSERT, p, 4, NULL, NULL, &changed)) != MK_OK)
			return r;
		b->dups[i] = changed == 0;
		if (!b->dups[i] && (r = archive_audit_append(a, b->domain, &ds, b->time, A_INDICIUM, b->s[i].device,
		                                             p[2].i, 0, p + 1, 3)) != MK_OK)
			return r;
	}
	return archive_domain_store(a, b->domain, &ds);
}

enum mk_err mk_archive_note_indicia(struct mk_archive *a, const char *domain, const struct mk_sighting *s,
                                    size_t n, int64_t time, bool *dups)
{
	struct seen_batch b = { domain, s, n, time, dups };

	if (a == NULL || dups == NULL || (n > 0 && s == NULL) || n > MK_ARCHIVE_BATCH_MAX ||
	    !mk_domain_id_valid(domain) || time < 0)
		return MK_ERR_INVALID_ARG;
	for (size_t i = 0; i < n; i++)
		if (s[i].device == NULL || !archive_ident_valid(s[i].device) || s[i].piece_count > INT64_MAX)
			return MK_ERR_INVALID_ARG;
	if (n == 0)
		return MK_OK;
	return archive_write_txn(a, do_note_batch, &b);
}

enum mk_err mk_archive_note_indicium(struct mk_archive *a, const char *domain, const char *device,
                                     uint64_t piece_count, int64_t time, bool *duplicatep)
{
	struct mk_sighting one = { device, piece_count };

	if (duplicatep == NULL)
		return MK_ERR_INVALID_ARG;
	return mk_archive_note_indicia(a, domain, &one, 1, time, duplicatep);
}
