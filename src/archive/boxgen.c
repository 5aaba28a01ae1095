/*
 * Box generation records (include/meterkey/archive.h): each box's newest
 * record of its sealed state's generation, which it gives the KMS after
 * its state changed and checks when it is opened, so that an older state
 * put back is refused while the archive holds a newer record. The archive
 * only keeps the record; only the box can make or check one (its own CMAC
 * key). The stored generation never goes down.
 */
#include <stdint.h>

#include "archive/archive_int.h"
#include "meterkey/ids.h"

struct boxgen_args {
	const char *id;
	uint64_t generation;
	const uint8_t *rec;
	size_t n;
};

static enum mk_err do_put(struct mk_archive *a, void *arg)
{
	struct boxgen_args *g = arg;
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(g->id), MK_DB_INT_VAL(g->generation), MK_DB_BLOB_VAL(g->rec, g->n) };

	return archive_query(a, S_BOXGEN_INSERT, p, 3, NULL, NULL, NULL);
}

enum mk_err mk_archive_put_box_generation(struct mk_archive *a, const char *box_id, uint64_t generation,
                                          const uint8_t *rec, size_t n)
{
	struct boxgen_args g = { box_id, generation, rec, n };

	if (a == NULL || box_id == NULL || !mk_box_id_valid(box_id) || rec == NULL || n == 0 || n > MK_RECORD_MAX ||
	    generation > INT64_MAX)
		return MK_ERR_INVALID_ARG;
	return archive_write_txn(a, do_put, &g);
}

enum mk_err mk_archive_get_box_generation(struct mk_archive *a, const char *box_id, uint64_t *generationp,
                                          struct mk_buf *out)
{
	struct mk_db_val p;
	struct row_copy rc;
	enum mk_err r;

	if (a == NULL || box_id == NULL || !mk_box_id_valid(box_id) || generationp == NULL || out == NULL)
		return MK_ERR_INVALID_ARG;
	p = MK_DB_TEXT_VAL(box_id);
	if ((r = archive_query_row(a, S_BOXGEN_GET, &p, 1, &rc)) != MK_OK)
		return r;
	if (!rc.found)
		return MK_RC_RECORD_UNKNOWN;
	if (rc.v[0].type != MK_DB_INT || rc.v[0].i < 0 || rc.v[1].type != MK_DB_BLOB)
		return MK_ERR_DB_RECORD;
	*generationp = (uint64_t)rc.v[0].i;
	return mk_buf_put_bytes(out, rc.v[1].p, rc.v[1].n);
}
