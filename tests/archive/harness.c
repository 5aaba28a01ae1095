/* The archive suite's harness (see harness.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "meterkey/caps.h"
#include "archive/harness.h"

static char tmpdir[256];
static char pg_base[1024];
static char made[64][64]; /* pg databases made by this process */
static int nmade;
static pid_t owner;

const char *mk_test_backend(void)
{
	const char *b = getenv("MK_TEST_BACKEND");

	return b != NULL && strcmp(b, "pg") == 0 ? "pg" : "sqlite";
}

/* Runs one SQL command on the server's maintenance database. */
static int pg_admin(const char *sql)
{
	PGconn *c = PQconnectdb(pg_base);
	PGresult *res;
	int ok;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "harness: cannot reach the test server: %s", PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	res = PQexec(c, sql);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "harness: %s: %s", sql, PQerrorMessage(c));
	PQclear(res);
	PQfinish(c);
	return ok ? 0 : -1;
}

/* Removes what this process made; forked children leave it to their parent. */
static void cleanup(void)
{
	char sql[128];

	if (getpid() != owner)
		return;
	for (int i = 0; i < nmade; i++) {
		snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", made[i]);
		(void)pg_admin(sql);
	}
	if (tmpdir[0] != '\0') {
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "harness: could not remove %s\n", tmpdir);
	}
}

static int setup(void)
{
	if (owner != 0)
		return 0;
	owner = getpid();
	atexit(cleanup);
	if (strcmp(mk_test_backend(), "pg") == 0) {
		const char *dir = getenv("MK_PG_DIR");
		char path[512];
		FILE *f;

		if (dir == NULL) {
			fprintf(stderr, "harness: MK_PG_DIR is not set\n");
			return -1;
		}
		snprintf(path, sizeof(path), "%s/url", dir);
		if ((f = fopen(path, "r")) == NULL || fgets(pg_base, sizeof(pg_base), f) == NULL) {
			fprintf(stderr, "harness: no test server URL in %s (is pg.sh start run?)\n", path);
			if (f != NULL)
				fclose(f);
			return -1;
		}
		fclose(f);
		pg_base[strcspn(pg_base, "\n")] = '\0';
	} else {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/meterkey-test-XXXXXX");
		if (mkdtemp(tmpdir) == NULL) {
			perror("harness: mkdtemp");
			tmpdir[0] = '\0';
			return -1;
		}
	}
	return 0;
}

int mk_test_archive_url(char *url, size_t n)
{
	static int counter;

	if (setup() != 0)
		return -1;
	counter++;
	if (strcmp(mk_test_backend(), "sqlite") == 0) {
		snprintf(url, n, "sqlite:%s/archive-%d.db", tmpdir, counter);
		return 0;
	}
	if (nmade >= (int)(MK_ARRAY_LEN(made))) {
		fprintf(stderr, "harness: too many test databases\n");
		return -1;
	}
	snprintf(made[nmade], sizeof(made[0]), "mk_%d_%d", (int)getpid(), counter);
	{
		char sql[128];
		const char *q;

		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", made[nmade]);
		if (pg_admin(sql) != 0)
			return -1;
		/* The base URL is postgresql:///postgres?...: swap the database name. */
		if ((q = strchr(pg_base, '?')) == NULL) {
			fprintf(stderr, "harness: unexpected server URL %s\n", pg_base);
			return -1;
		}
		snprintf(url, n, "postgresql:///%s%s", made[nmade], q);
	}
	nmade++;
	return 0;
}
