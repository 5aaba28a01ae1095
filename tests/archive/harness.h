/*
 * The archive suite's harness: each test gets a fresh, empty archive on the
 * backend named by $MK_TEST_BACKEND ("sqlite" or "pg"), so one test file runs
 * unchanged against both. For "pg", $MK_PG_DIR/url holds the test server's
 * maintenance URL (written by tests/archive/pg.sh start).
 */
#ifndef MK_TEST_HARNESS_H
#define MK_TEST_HARNESS_H

#include <stddef.h>

/* "sqlite" or "pg" ($MK_TEST_BACKEND, default "sqlite"). */
const char *mk_test_backend(void);

/* Writes into url[0..n) the URL of a new, empty archive: a new file in a
 * temporary directory (sqlite) or a new database on the test server (pg).
 * Returns 0, or -1 (with a message on stderr). Everything made is removed at
 * process exit. */
int mk_test_archive_url(char *url, size_t n);

#endif
