/* The statement table, generated from MK_STMT_LIST in archive_int.h. */
#include "archive/archive_int.h"

const struct mk_db_stmt mk_stmts[MK_STMT_COUNT] = {
#define X(name, sql, flags) [name] = { sql, flags },
	MK_STMT_LIST(X)
#undef X
};
