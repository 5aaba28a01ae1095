/*
 * PLACEHOLDER, replaced by the PostgreSQL driver (branch h/pg): on merge keep
 * the real driver. Until then a postgresql:// archive is refused.
 */
#include "archive/archive_int.h"

static enum mk_err pg_open(const char *url, void **dbp)
{
	(void)url;
	(void)dbp;
	return MK_ERR_UNSUPPORTED;
}

const struct mk_db_ops mk_db_pg = { .name = "postgresql", .blob_type = "BYTEA", .open = pg_open };
