/*
 * Unit tests for the KMS's home (src/kms/home.c), through the public API
 * where it reaches and through kms_int.h where it does not: opening a KMS
 * on a missing home; boxes.conf stored and loaded (a round trip; malformed,
 * truncated, oversize and duplicated-entry files refused with their codes);
 * an unknown box; kms_pick_box choosing the box per type and domain and
 * refusing a type or domain with none; kms_pathf and the meter-ID path
 * check refusing what does not fit or is not a meter ID. Each positive test
 * has its negative twin beside it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "kms/kms_int.h"
#include "meterkey/kms.h"

#define assert_rc(expr, want) assert_string_equal(mk_err_name(expr), mk_err_name(want))
#define T_2026 INT64_C(1767225600)

/* ---- Fixture: a fresh home ----------------------------------------------------------- */

struct home {
	char dir[64];
	struct mk_kms *k;
};

static int home_setup(void **state)
{
	struct home *h = calloc(1, sizeof(*h));
	struct mk_kms_opts o = { 0 };

	if (h == NULL)
		return -1;
	snprintf(h->dir, sizeof(h->dir), "/tmp/mk-kmshome-XXXXXX");
	if (mkdtemp(h->dir) == NULL)
		return -1;
	o.home = h->dir;
	o.time = T_2026;
	o.create = 1;
	if (mk_kms_open(&o, &h->k) != MK_OK)
		return -1;
	*state = h;
	return 0;
}

static int home_teardown(void **state)
{
	struct home *h = *state;
	char cmd[128];

	mk_kms_close(h->k);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
	if (system(cmd) != 0)
		return -1;
	free(h);
	return 0;
}

/* Closes h's KMS and opens the home again: the table as read from disk. */
static enum mk_err reopen(struct home *h)
{
	struct mk_kms_opts o = { 0 };

	mk_kms_close(h->k);
	h->k = NULL;
	o.home = h->dir;
	o.time = T_2026;
	return mk_kms_open(&o, &h->k);
}

static void put_file(const struct home *h, const char *rel, const void *p, size_t n)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", h->dir, rel);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void put_conf(const struct home *h, const char *text)
{
	put_file(h, "boxes.conf", text, strlen(text));
}

/* The whole of file rel, NUL-terminated, in a malloc'd string (free it). */
static char *get_file(const struct home *h, const char *rel, size_t *np)
{
	char path[256];
	char *p;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", h->dir, rel);
	assert_non_null(f = fopen(path, "rb"));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	assert_true((n = ftell(f)) >= 0);
	rewind(f);
	assert_non_null(p = malloc((size_t)n + 1));
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	p[n] = '\0';
	fclose(f);
	if (np != NULL)
		*np = (size_t)n;
	return p;
}

/* k's table written out by the test (not by kms_conf_store), one line per
 * box: what a load must have read. */
static void table_text(const struct mk_kms *k, char *out, size_t cap)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < k->nboxes; i++) {
		n += (size_t)snprintf(out + n, cap - n, "%s", k->boxes[i].id);
		for (size_t j = 0; j < k->boxes[i].ndomains; j++)
			n += (size_t)snprintf(out + n, cap - n, " %s", k->boxes[i].domains[j]);
		n += (size_t)snprintf(out + n, cap - n, "\n");
		assert_true(n < cap);
	}
}

static void set_box(struct kms_box *x, const char *id, const char *const *domains, size_t n)
{
	memset(x, 0, sizeof(*x));
	snprintf(x->id, sizeof(x->id), "%s", id);
	for (size_t i = 0; i < n; i++)
		snprintf(x->domains[x->ndomains++], sizeof(x->domains[0]), "%s", domains[i]);
}

static int count_boxes(void *ctx, const char *id, const char *const *domains, size_t n)
{
	(void)id;
	(void)domains;
	(void)n;
	(*(size_t *)ctx)++;
	return 0;
}

static int is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- Opening a KMS ---------------------------------------------------------------- */

/* A missing home is refused, and nothing made, unless create is set: then
 * it is made, with its directories and archive, and holds no box. */
static void test_open_missing_home(void **state)
{
	static const char *const dirs[] = { "", "/boxes", "/trust", "/domains", "/kdc", "/confirmations",
		                            "/meters", "/shares" };
	struct home *h = *state;
	struct mk_kms_opts o = { 0 };
	struct mk_kms *k = NULL;
	char home[128], path[192];
	size_t n = 0;

	snprintf(home, sizeof(home), "%s/new", h->dir);
	assert_false(is_dir(home));
	o.home = home;
	assert_rc(mk_kms_open(&o, &k), MK_ERR_NOT_FOUND);
	assert_null(k);
	assert_false(is_dir(home));
	/* an existing directory that is not a home: nothing made in it */
	assert_int_equal(mkdir(home, 0700), 0);
	assert_rc(mk_kms_open(&o, &k), MK_ERR_NOT_FOUND);
	assert_null(k);
	for (size_t i = 1; i < MK_ARRAY_LEN(dirs); i++) {
		snprintf(path, sizeof(path), "%s%s", home, dirs[i]);
		assert_false(is_dir(path));
	}
	snprintf(path, sizeof(path), "%s/archive.db", home);
	assert_int_not_equal(access(path, F_OK), 0);
	o.create = 1;
	assert_rc(mk_kms_open(&o, &k), MK_OK);
	for (size_t i = 0; i < MK_ARRAY_LEN(dirs); i++) {
		snprintf(path, sizeof(path), "%s%s", home, dirs[i]);
		assert_true(is_dir(path));
	}
	snprintf(path, sizeof(path), "%s/archive.db", home);
	assert_int_equal(access(path, F_OK), 0);
	assert_string_equal(mk_kms_home(k), home);
	assert_string_equal(mk_kms_detail(k), "");
	assert_rc(mk_kms_box_list(k, count_boxes, &n), MK_OK);
	assert_int_equal(n, 0);
	mk_kms_close(k);
	/* opened again, as a home that exists: the same, empty */
	o.create = 0;
	assert_rc(mk_kms_open(&o, &k), MK_OK);
	assert_int_equal(k->nboxes, 0);
	mk_kms_close(k);
}

/* A home that cannot be made is refused and nothing is made on the way. */
static void test_open_home_refused(void **state)
{
	struct home *h = *state;
	struct mk_kms_opts o = { 0 };
	struct mk_kms *k = (struct mk_kms *)h; /* must be cleared */
	char home[128], path[128], *longhome;

	/* its parent is missing: not made either */
	snprintf(home, sizeof(home), "%s/missing/home", h->dir);
	o.home = home;
	o.create = 1;
	assert_rc(mk_kms_open(&o, &k), MK_ERR_IO);
	assert_null(k);
	snprintf(path, sizeof(path), "%s/missing", h->dir);
	assert_false(is_dir(path));
	/* a file where the home should be */
	put_file(h, "file", "x", 1);
	snprintf(home, sizeof(home), "%s/file", h->dir);
	assert_rc(mk_kms_open(&o, &k), MK_ERR_IO);
	assert_null(k);
	/* a path longer than any home */
	assert_non_null(longhome = malloc(PATH_MAX + 1));
	memset(longhome, 'a', PATH_MAX);
	longhome[0] = '/';
	longhome[PATH_MAX] = '\0';
	o.home = longhome;
	assert_rc(mk_kms_open(&o, &k), MK_ERR_INVALID_ARG);
	free(longhome);
	/* no home, no options, a time before 1970 */
	o.home = NULL;
	assert_rc(mk_kms_open(&o, &k), MK_ERR_INVALID_ARG);
	assert_rc(mk_kms_open(NULL, &k), MK_ERR_INVALID_ARG);
	o.home = h->dir;
	o.time = -1;
	assert_rc(mk_kms_open(&o, &k), MK_ERR_INVALID_ARG);
}

/* ---- boxes.conf: store and load ------------------------------------------------------ */

static const char conf4[] = "M00000001 VE USPS\n"
                            "O00000002 VE\n"
                            "S00000003 USPS VE\n"
                            "B00000004\n";

/* The table stored is the file the KMS documents, and reads back as it was. */
static void test_conf_round_trip(void **state)
{
	struct home *h = *state;
	char text[256], *file;
	size_t n = 0;

	set_box(&h->k->boxes[0], "M00000001", (const char *const[]){ "VE", "USPS" }, 2);
	set_box(&h->k->boxes[1], "O00000002", (const char *const[]){ "VE" }, 1);
	set_box(&h->k->boxes[2], "S00000003", (const char *const[]){ "USPS", "VE" }, 2);
	set_box(&h->k->boxes[3], "B00000004", NULL, 0);
	h->k->nboxes = 4;
	assert_rc(kms_conf_store(h->k), MK_OK);
	file = get_file(h, "boxes.conf", NULL);
	assert_string_equal(file, conf4);
	free(file);
	/* loaded by a KMS of its own, through the public API */
	assert_rc(reopen(h), MK_OK);
	table_text(h->k, text, sizeof(text));
	assert_string_equal(text, conf4);
	assert_rc(mk_kms_box_list(h->k, count_boxes, &n), MK_OK);
	assert_int_equal(n, 4);
	/* and loaded again over a changed table */
	h->k->nboxes = 1;
	strcpy(h->k->boxes[0].id, "T00000009");
	assert_rc(kms_conf_load(h->k), MK_OK);
	table_text(h->k, text, sizeof(text));
	assert_string_equal(text, conf4);
	/* a missing or empty file: no boxes */
	put_conf(h, "");
	assert_rc(kms_conf_load(h->k), MK_OK);
	assert_int_equal(h->k->nboxes, 0);
	assert_int_equal(unlink(strcat(strcpy(text, h->dir), "/boxes.conf")), 0);
	assert_rc(kms_conf_load(h->k), MK_OK);
	assert_int_equal(h->k->nboxes, 0);
}

/* A table too large for the file is refused and the file stays as it was. */
static void test_conf_store_refused(void **state)
{
	struct home *h = *state;
	char *before, *after;
	size_t bn, an;

	put_conf(h, conf4);
	assert_rc(kms_conf_load(h->k), MK_OK);
	before = get_file(h, "boxes.conf", &bn);
	for (size_t i = 0; i < KMS_MAX_BOXES; i++) {
		struct kms_box *x = &h->k->boxes[i];

		memset(x, 0, sizeof(*x));
		assert_rc(mk_box_id_format(MK_BOX_BRASS, (uint32_t)i + 1, x->id), MK_OK);
		for (size_t j = 0; j < MK_BOX_MAX_DOMAINS; j++)
			snprintf(x->domains[x->ndomains++], sizeof(x->domains[0]), "DOMAIN%02zu", j);
	}
	h->k->nboxes = KMS_MAX_BOXES;
	assert_rc(kms_conf_store(h->k), MK_ERR_BUF_FULL);
	after = get_file(h, "boxes.conf", &an);
	assert_int_equal(an, bn);
	assert_memory_equal(after, before, bn);
	free(before);
	free(after);
}

/* Each well-formed line is read; its malformed twin is refused with
 * MK_ERR_STATE, by the loader and by opening the home. */
static void test_conf_malformed(void **state)
{
	static const struct {
		const char *good, *bad;
	} cases[] = {
		{ "M00000001 VE\n", "X00000001 VE\n" },           /* no such type */
		{ "M00000001 VE\n", "M0000000A VE\n" },           /* not a number */
		{ "M00000001 VE\n", "M00000000 VE\n" },           /* box number 0 */
		{ "M00000001 VE\n", "M000000001 VE\n" },          /* too long */
		{ "M00000001 VE\n", "M0000001 VE\n" },            /* too short */
		{ "M00000001 VE\n", "m00000001 VE\n" },           /* lower case type */
		{ "M00000001 VE\n", "M00000001 ve\n" },           /* lower case domain */
		{ "M00000001 VE\n", "M00000001 V\n" },            /* domain too short */
		{ "M00000001 ABCDEFGH\n", "M00000001 ABCDEFGHI\n" }, /* domain too long */
		{ "M00000001 VE\n", "M00000001\tVE\n" },          /* a tab is not a space */
		{ "M00000001 VE\n", "M00000001 VE\r\n" },         /* CR LF */
		{ "M00000001 VE\n", "M00000001 VE-US\n" },        /* not a domain ID */
		{ "O00000002 VE\n", " \n" },                      /* a line with no box */
	};
	static const char with_nul[] = "M00000001 VE\n\0O00000002 VE\n";
	struct home *h = *state;
	char text[2048], line[MK_BOX_ID_LEN + 1 + 3 * (MK_BOX_MAX_DOMAINS + 1) + 2];
	size_t n;

	for (size_t i = 0; i < MK_ARRAY_LEN(cases); i++) {
		put_conf(h, cases[i].good);
		assert_rc(kms_conf_load(h->k), MK_OK);
		assert_int_equal(h->k->nboxes, 1);
		table_text(h->k, text, sizeof(text));
		assert_string_equal(text, cases[i].good);
		put_conf(h, cases[i].bad);
		assert_rc(kms_conf_load(h->k), MK_ERR_STATE);
		/* the bad line after a good one: refused all the same */
		snprintf(text, sizeof(text), "B00000007 VE\n%s", cases[i].bad);
		put_conf(h, text);
		assert_rc(kms_conf_load(h->k), MK_ERR_STATE);
	}
	/* a NUL: the text up to it would read as a good file */
	put_file(h, "boxes.conf", with_nul, sizeof(with_nul) - 1);
	assert_rc(kms_conf_load(h->k), MK_ERR_STATE);
	put_file(h, "boxes.conf", with_nul, strlen(with_nul));
	assert_rc(kms_conf_load(h->k), MK_OK);
	/* MK_BOX_MAX_DOMAINS domains on a line; one more is refused */
	n = (size_t)snprintf(line, sizeof(line), "S00000003");
	for (int j = 0; j < MK_BOX_MAX_DOMAINS; j++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %c%c", 'A' + j / 26, 'A' + j % 26);
	snprintf(line + n, sizeof(line) - n, "\n");
	put_conf(h, line);
	assert_rc(kms_conf_load(h->k), MK_OK);
	assert_int_equal(h->k->boxes[0].ndomains, MK_BOX_MAX_DOMAINS);
	snprintf(line + n, sizeof(line) - n, " ZZ\n");
	put_conf(h, line);
	assert_rc(kms_conf_load(h->k), MK_ERR_STATE);
	/* opening the home: refused, no KMS */
	assert_rc(reopen(h), MK_ERR_STATE);
	assert_null(h->k);
	put_conf(h, conf4);
	assert_rc(reopen(h), MK_OK);
	assert_int_equal(h->k->nboxes, 4);
}

/* A file cut anywhere but at the end of a line is refused; cut at the end
 * of a line it is a shorter table (a limit of the format: nothing says how
 * many lines there were). */
static void test_conf_truncated(void **state)
{
	struct home *h = *state;
	char text[256], want[256];
	size_t len = strlen(conf4);

	for (size_t cut = 1; cut <= len; cut++) {
		put_file(h, "boxes.conf", conf4, cut);
		if (conf4[cut - 1] != '\n') {
			assert_rc(kms_conf_load(h->k), MK_ERR_STATE);
			continue;
		}
		assert_rc(kms_conf_load(h->k), MK_OK);
		table_text(h->k, text, sizeof(text));
		snprintf(want, sizeof(want), "%.*s", (int)cut, conf4);
		assert_string_equal(text, want);
	}
	/* "USPS" cut to "USP" reads as a domain ID of its own: refused only
	 * for the missing newline */
	put_file(h, "boxes.conf", "S00000003 USP", 13);
	assert_rc(kms_conf_load(h->k), MK_ERR_STATE);
	put_conf(h, "S00000003 USP\n");
	assert_rc(kms_conf_load(h->k), MK_OK);
	/* and by opening the home */
	put_file(h, "boxes.conf", conf4, len - 1);
	assert_rc(reopen(h), MK_ERR_STATE);
	assert_null(h->k);
}

/* MK_CONF_MAX bytes are read, one more is refused; KMS_MAX_BOXES lines
 * are read, one more is refused. */
static void test_conf_oversize(void **state)
{
	struct home *h = *state;
	char *big = malloc(MK_CONF_MAX + 2);
	size_t n = 0;

	assert_non_null(big);
	/* one line padded with spaces (separators) to the cap */
	memset(big, ' ', MK_CONF_MAX + 1);
	memcpy(big, "B00000001 VE", 12);
	big[MK_CONF_MAX - 1] = '\n';
	put_file(h, "boxes.conf", big, MK_CONF_MAX);
	assert_rc(kms_conf_load(h->k), MK_OK);
	assert_int_equal(h->k->nboxes, 1);
	assert_int_equal(h->k->boxes[0].ndomains, 1);
	big[MK_CONF_MAX - 1] = ' ';
	big[MK_CONF_MAX] = '\n';
	put_file(h, "boxes.conf", big, MK_CONF_MAX + 1);
	assert_rc(kms_conf_load(h->k), MK_ERR_BUF_FULL);
	assert_rc(reopen(h), MK_ERR_BUF_FULL);
	assert_null(h->k);
	assert_rc(reopen(h), MK_ERR_BUF_FULL); /* still damaged: nothing repaired it */
	/* as many boxes as the table holds, then one more */
	for (size_t i = 1; i <= KMS_MAX_BOXES; i++)
		n += (size_t)snprintf(big + n, MK_CONF_MAX - n, "B%08zu VE\n", i);
	put_file(h, "boxes.conf", big, n);
	assert_rc(reopen(h), MK_OK);
	assert_int_equal(h->k->nboxes, KMS_MAX_BOXES);
	n += (size_t)snprintf(big + n, MK_CONF_MAX - n, "B%08d VE\n", KMS_MAX_BOXES + 1);
	put_file(h, "boxes.conf", big, n);
	assert_rc(kms_conf_load(h->k), MK_ERR_STATE);
	free(big);
}

/* Boxes serving the same domains are read; a box listed twice, or a domain
 * twice on a box's line, is refused. */
static void test_conf_duplicate(void **state)
{
	struct home *h = *state;

	put_conf(h, "O00000002 VE USPS\nO00000003 VE USPS\n");
	assert_rc(kms_conf_load(h->k), MK_OK);
	assert_int_equal(h->k->nboxes, 2);
	put_conf(h, "O00000002 VE USPS\nO00000002 VE USPS\n");
	assert_rc(kms_conf_load(h->k), MK_ERR_STATE);
	put_conf(h, "O00000002 VE\nS00000003 USPS\nO00000002 DE\n");
	assert_rc(kms_conf_load(h->k), MK_ERR_STATE);
	put_conf(h, "O00000002 VE USPS\n");
	assert_rc(kms_conf_load(h->k), MK_OK);
	put_conf(h, "O00000002 VE USPS VE\n");
	assert_rc(kms_conf_load(h->k), MK_ERR_STATE);
	assert_rc(reopen(h), MK_ERR_STATE);
	assert_null(h->k);
}

/* boxes.conf that is not a regular file is refused for what it is. */
static void test_conf_not_a_file(void **state)
{
	struct home *h = *state;
	char path[128];

	put_conf(h, conf4);
	assert_rc(kms_conf_load(h->k), MK_OK);
	snprintf(path, sizeof(path), "%s/boxes.conf", h->dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_rc(kms_conf_load(h->k), MK_ERR_UNSUPPORTED);
	assert_rc(reopen(h), MK_ERR_UNSUPPORTED);
	assert_null(h->k);
	assert_int_equal(rmdir(path), 0);
}

/* ---- Boxes: finding and picking -------------------------------------------------------- */

/* The routing table of the picking tests, read from the file. */
static const char route[] = "M00000001 VE USPS\n"
                            "O00000002 VE\n"
                            "O00000003 USPS VE\n"
                            "S00000004 USPS\n"
                            "S00000005 VE USPS\n"
                            "B00000006 VE\n"
                            "T00000007 USPS\n";

static void load_route(struct home *h)
{
	put_conf(h, route);
	assert_rc(reopen(h), MK_OK);
	assert_int_equal(h->k->nboxes, 7);
}

/* A box of the table is found, serving what its line says. */
static void test_box_known(void **state)
{
	struct home *h = *state;
	struct kms_box *x;

	load_route(h);
	assert_non_null(x = kms_conf_find(h->k, "S00000005"));
	assert_string_equal(x->id, "S00000005");
	assert_true(kms_serves(x, "VE"));
	assert_true(kms_serves(x, "USPS"));
	assert_false(kms_serves(x, "DE"));
	assert_false(kms_serves(x, "US")); /* not a prefix match */
	assert_ptr_equal(kms_conf_find(h->k, "M00000001"), &h->k->boxes[0]);
	/* past the table, to the shares (none here) */
	assert_rc(mk_kms_box_check(h->k, "O00000002"), MK_ERR_SHARE_TOO_FEW);
	assert_non_null(strstr(mk_kms_detail(h->k), "box O00000002 stays disabled"));
}

/* A box the table does not list is unknown to every way in. */
static void test_box_unknown(void **state)
{
	struct home *h = *state;
	struct mk_box *b = (struct mk_box *)h; /* must be cleared */

	load_route(h);
	assert_null(kms_conf_find(h->k, "S00000008"));
	assert_null(kms_conf_find(h->k, "S0000000"));
	assert_null(kms_conf_find(h->k, ""));
	assert_rc(mk_kms_box_check(h->k, "S00000008"), MK_ERR_NOT_FOUND); /* no domain is involved */
	assert_non_null(strstr(mk_kms_detail(h->k), "no box S00000008 in this home"));
	assert_rc(mk_kms_box_add_domain(h->k, "S00000008", "VE"), MK_RC_BOX_ID_INVALID);
	assert_rc(mk_kms_box_add_domain(h->k, "M00000001", "VE"), MK_RC_BOX_ID_INVALID); /* the first M */
	assert_rc(mk_kms_box_add_domain(h->k, "O00000002", "VE"), MK_RC_RECORD_EXISTS);  /* known */
	assert_rc(mk_kms_meter_manufacture(h->k, "PM100-000001", "S00000008"), MK_RC_BOX_ID_INVALID);
	assert_rc(mk_kms_meter_manufacture(h->k, "PM100-000001", "O00000002"), MK_RC_BOX_ID_INVALID);
	/* and no shares open it */
	assert_rc(kms_open_box(h->k, "S00000008", &b), MK_ERR_SHARE_TOO_FEW);
	assert_null(b);
	/* the table is as it was */
	{
		char text[256];

		table_text(h->k, text, sizeof(text));
		assert_string_equal(text, route);
	}
}

/* kms_pick_box: the first box of the type serving the domain, or the one
 * asked for. */
static void test_pick_box(void **state)
{
	static const struct {
		enum mk_box_type t;
		const char *domain, *want, *id;
	} cases[] = {
		{ MK_BOX_OAK, "VE", NULL, "O00000002" },
		{ MK_BOX_OAK, "VE", "", "O00000002" },
		{ MK_BOX_OAK, "USPS", NULL, "O00000003" },
		{ MK_BOX_OAK, "VE", "O00000003", "O00000003" },
		{ MK_BOX_OAK, NULL, NULL, "O00000002" }, /* any domain */
		{ MK_BOX_STEEL, "USPS", "", "S00000004" },
		{ MK_BOX_STEEL, "VE", "", "S00000005" },
		{ MK_BOX_STEEL, "USPS", "S00000005", "S00000005" },
		{ MK_BOX_BRASS, "VE", NULL, "B00000006" },
		{ MK_BOX_TIN, "USPS", NULL, "T00000007" },
		{ MK_BOX_MANUFACTURING, "USPS", NULL, "M00000001" },
	};
	struct home *h = *state;
	char id[MK_BOX_ID_LEN + 1];

	load_route(h);
	for (size_t i = 0; i < MK_ARRAY_LEN(cases); i++) {
		memset(id, 0, sizeof(id));
		assert_rc(kms_pick_box(h->k, cases[i].t, cases[i].domain, cases[i].want, id), MK_OK);
		assert_string_equal(id, cases[i].id);
	}
	/* the public way in routes the same */
	assert_rc(mk_kms_domain_box(h->k, MK_BOX_STEEL, "VE", id), MK_OK);
	assert_string_equal(id, "S00000005");
}

/* A type or domain with no box, or a box asked for that is not of the type
 * or does not serve the domain, is refused, and id is left alone. */
static void test_pick_box_refused(void **state)
{
	static const struct {
		enum mk_box_type t;
		const char *domain, *want;
		enum mk_err e;
		const char *detail;
	} cases[] = {
		{ MK_BOX_BRASS, "USPS", NULL, MK_RC_RESOURCE_UNAVAILABLE, "no Brass box serving domain USPS" },
		{ MK_BOX_TIN, "VE", "", MK_RC_RESOURCE_UNAVAILABLE, "no Tin box serving domain VE" },
		{ MK_BOX_OAK, "DE", NULL, MK_RC_RESOURCE_UNAVAILABLE, "no Oak box serving domain DE" },
		{ MK_BOX_STEEL, "VE", "S00000004", MK_RC_BOX_ID_INVALID, "no box S00000004 serving domain VE" },
		{ MK_BOX_STEEL, "VE", "O00000002", MK_RC_BOX_ID_INVALID, "no box O00000002 serving domain VE" },
		{ MK_BOX_STEEL, "VE", "S00000009", MK_RC_BOX_ID_INVALID, "no box S00000009 serving domain VE" },
		{ MK_BOX_OAK, NULL, "O00000009", MK_RC_BOX_ID_INVALID, "no box O00000009 serving domain -" },
	};
	struct home *h = *state;
	char id[MK_BOX_ID_LEN + 1];

	load_route(h);
	for (size_t i = 0; i < MK_ARRAY_LEN(cases); i++) {
		strcpy(id, "untouched");
		assert_rc(kms_pick_box(h->k, cases[i].t, cases[i].domain, cases[i].want, id), cases[i].e);
		assert_string_equal(id, "untouched");
		assert_non_null(strstr(mk_kms_detail(h->k), cases[i].detail));
	}
	assert_rc(mk_kms_domain_box(h->k, MK_BOX_BRASS, "USPS", id), MK_RC_RESOURCE_UNAVAILABLE);
	/* an empty home has no box of any type */
	put_conf(h, "");
	assert_rc(reopen(h), MK_OK);
	assert_rc(kms_pick_box(h->k, MK_BOX_MANUFACTURING, NULL, NULL, id), MK_RC_RESOURCE_UNAVAILABLE);
}

/* ---- Paths ------------------------------------------------------------------------------ */

/* A path that fits is written whole, up to a buffer of exactly its size. */
static void test_pathf(void **state)
{
	struct home *h = *state;
	char out[PATH_MAX], want[PATH_MAX];
	size_t n = (size_t)snprintf(want, sizeof(want), "%s/boxes.conf", h->dir);

	assert_true(kms_pathf(h->k, out, sizeof(out), "boxes.conf"));
	assert_string_equal(out, want);
	assert_true(kms_pathf(h->k, out, n + 1, "boxes.conf"));
	assert_string_equal(out, want);
	assert_true(kms_pathf(h->k, out, sizeof(out), "domains/%s.%s.cert", "VE", "S00000004"));
	snprintf(want, sizeof(want), "%s/domains/VE.S00000004.cert", h->dir);
	assert_string_equal(out, want);
	assert_true(kms_step_path(h->k, out, sizeof(out), "kdc", "VE", 42, "mi4"));
	snprintf(want, sizeof(want), "%s/kdc/VE.42.mi4", h->dir);
	assert_string_equal(out, want);
}

/* One byte short, or arguments longer than any path, is refused. */
static void test_pathf_overlong(void **state)
{
	struct home *h = *state;
	char out[PATH_MAX], *arg = malloc(PATH_MAX + 1);
	size_t n = strlen(h->dir) + strlen("/boxes.conf");

	assert_non_null(arg);
	assert_false(kms_pathf(h->k, out, n, "boxes.conf"));
	assert_false(kms_pathf(h->k, out, strlen(h->dir) + 1, "x")); /* the home alone, no '/' */
	assert_false(kms_pathf(h->k, out, strlen(h->dir) + 2, "x"));
	memset(arg, 'a', PATH_MAX);
	arg[PATH_MAX] = '\0';
	assert_false(kms_pathf(h->k, out, sizeof(out), "meters/%s.nvm", arg));
	assert_false(kms_step_path(h->k, out, sizeof(out), "kdc", arg, 1, "mi7"));
	free(arg);
	/* the meter path into a buffer too small */
	put_file(h, "meters/PM100-000001.nvm", "", 0);
	assert_rc(mk_kms_meter_path(h->k, "PM100-000001", out, n), MK_ERR_INVALID_ARG);
}

/* A meter ID is PRODUCTCODE-SEQUENCE: one that is well formed gives its
 * NVM path (MK_ERR_NOT_FOUND when there is no such meter). */
static void test_meter_path(void **state)
{
	struct home *h = *state;
	char path[PATH_MAX], want[PATH_MAX], id[MK_METER_ID_MAX + 1];

	put_file(h, "meters/PM100-000001.nvm", "", 0);
	assert_rc(mk_kms_meter_path(h->k, "PM100-000001", path, sizeof(path)), MK_OK);
	snprintf(want, sizeof(want), "%s/meters/PM100-000001.nvm", h->dir);
	assert_string_equal(path, want);
	assert_rc(mk_kms_meter_path(h->k, "PM100-000002", path, sizeof(path)), MK_ERR_NOT_FOUND);
	assert_non_null(strstr(mk_kms_detail(h->k), "no meter PM100-000002 in this home"));
	/* the longest ID passes the check */
	memset(id, 'A', MK_METER_ID_MAX);
	id[MK_METER_ID_MAX / 2] = '-';
	id[MK_METER_ID_MAX] = '\0';
	assert_rc(mk_kms_meter_path(h->k, id, path, sizeof(path)), MK_ERR_NOT_FOUND);
}

/* Anything else, and anything that would leave meters/, is refused before
 * the file system is asked. */
static void test_meter_path_refused(void **state)
{
	static const char *const bad[] = {
		"../x", "a/b", "A-B-C", "", "PM100", "../PM100-000001", "PM100-000001/..", "PM100-0000.1",
		"PM100/-000001", "PM100-000001.nvm", "..-..",
	};
	struct home *h = *state;
	char path[PATH_MAX], id[MK_METER_ID_MAX + 2];

	put_file(h, "meters/PM100-000001.nvm", "", 0);
	for (size_t i = 0; i < MK_ARRAY_LEN(bad); i++) {
		strcpy(path, "untouched");
		assert_rc(mk_kms_meter_path(h->k, bad[i], path, sizeof(path)), MK_ERR_INVALID_ARG);
		assert_non_null(strstr(mk_kms_detail(h->k), "is not a meter ID"));
		assert_string_equal(path, "untouched");
	}
	memset(id, 'A', MK_METER_ID_MAX + 1);
	id[MK_METER_ID_MAX / 2] = '-';
	id[MK_METER_ID_MAX + 1] = '\0';
	assert_rc(mk_kms_meter_path(h->k, id, path, sizeof(path)), MK_ERR_INVALID_ARG);
	/* the connection goes the same way */
	{
		struct mk_meter_conn *mc = NULL;

		assert_rc(kms_connect_meter(h->k, "../x", &mc), MK_ERR_INVALID_ARG);
		assert_null(mc);
	}
}

/* Product codes, sequence and indicia serial numbers: 1-MK_IDENT_MAX ASCII
 * letters and digits, and nothing else. */
static void test_ident_safe(void **state)
{
	char s[MK_IDENT_MAX + 2];

	(void)state;
	assert_true(kms_ident_safe("PM100"));
	assert_true(kms_ident_safe("a"));
	assert_true(kms_ident_safe("000001"));
	memset(s, 'Z', MK_IDENT_MAX);
	s[MK_IDENT_MAX] = '\0';
	assert_true(kms_ident_safe(s));
	/* the twins */
	s[MK_IDENT_MAX] = 'Z';
	s[MK_IDENT_MAX + 1] = '\0';
	assert_false(kms_ident_safe(s));
	assert_false(kms_ident_safe(""));
	assert_false(kms_ident_safe("PM-100"));
	assert_false(kms_ident_safe("PM.1"));
	assert_false(kms_ident_safe("PM/1"));
	assert_false(kms_ident_safe("PM 1"));
	assert_false(kms_ident_safe("PM\xc3\xa9"));
}

/* A small file of the home is read; a missing one is MK_ERR_NOT_FOUND, a
 * larger one MK_ERR_BUF_FULL, each named relative to the home. */
static void test_read_home_file(void **state)
{
	struct home *h = *state;
	struct mk_buf *b = mk_buf_new(64);
	char path[PATH_MAX];

	assert_non_null(b);
	put_file(h, "domains/VE.policy", "token_len 8\n", 12);
	assert_true(kms_pathf(h->k, path, sizeof(path), "domains/VE.policy"));
	assert_rc(kms_read_home_file(h->k, path, 12, b), MK_OK);
	assert_int_equal(mk_buf_len(b), 12);
	assert_memory_equal(mk_buf_data(b), "token_len 8\n", 12);
	mk_buf_reset(b);
	assert_rc(kms_read_home_file(h->k, path, 11, b), MK_ERR_BUF_FULL);
	assert_non_null(strstr(mk_kms_detail(h->k), "cannot read domains/VE.policy"));
	mk_buf_reset(b);
	assert_true(kms_pathf(h->k, path, sizeof(path), "domains/DE.policy"));
	assert_rc(kms_read_home_file(h->k, path, 12, b), MK_ERR_NOT_FOUND);
	assert_non_null(strstr(mk_kms_detail(h->k), "cannot read domains/DE.policy"));
	mk_buf_free(b);
}

/* domains/<D>.policy's date window (mk_kms_domain_window): the file as
 * domain create writes it, and the lines it had before the window (or no
 * file: a home made before policies), read; every damaged file refused
 * with the line that is wrong, never read as the defaults; a domain ID
 * that is not one refused before any file is read. */
static void expect_window(struct home *h, const char *text, enum mk_err want, unsigned vd, unsigned ad)
{
	unsigned v = 12345, a = 12345;

	if (text != NULL)
		put_file(h, "domains/VE.policy", text, strlen(text));
	assert_rc(mk_kms_domain_window(h->k, "VE", &v, &a), want);
	if (want == MK_OK) {
		assert_int_equal(v, vd);
		assert_int_equal(a, ad);
	} else { /* nothing given on a refusal, and the reason said */
		assert_int_equal(v, 12345);
		assert_int_equal(a, 12345);
		assert_non_null(strstr(mk_kms_detail(h->k), "domains/VE.policy"));
	}
}

static void test_domain_window(void **state)
{
	static const char *const damaged[] = {
		"verify_days 7",                 /* cut short */
		"",                              /* empty */
		"\n",                            /* an empty line */
		"verify_days seven\n",           /* not a number */
		"verify_days  7\n",              /* two spaces */
		"verify_days 7 \n",              /* trailing blank */
		"verify_days -1\n",              /* a sign */
		"verify_days 07\n",              /* a leading zero */
		"verify_days 0\n",               /* out of range */
		"verify_days 3661\n",
		"verify_days 99999999999\n",     /* too long to be a number of days */
		"ahead_days 32\n",
		"verify_days 7\nverify_days 7\n", /* twice */
		"ahead_days 1\nahead_days 2\n",
		"Verify_days 7\n",               /* not a name of the file */
		"token_len\n",                   /* another line broken */
		"verify_days 7\r\n",             /* a line end not the KMS's */
	};
	struct home *h = *state;
	char big[400];
	unsigned v, a;

	/* no file: a home made before policies were kept */
	expect_window(h, NULL, MK_OK, MK_VERIFY_DAYS_DEFAULT, MK_AHEAD_DAYS_DEFAULT);
	assert_int_equal(MK_VERIFY_DAYS_DEFAULT, 90);
	assert_int_equal(MK_AHEAD_DAYS_DEFAULT, 1);
	/* a file made before the window was kept */
	expect_window(h, "token_len 8\n", MK_OK, 90, 1);
	expect_window(h, "token_len 8\ntin_fresh 86400\n", MK_OK, 90, 1);
	/* as domain create writes it, the defaults and others, at their bounds */
	expect_window(h, "token_len 8\ntin_fresh 86400\nverify_days 90\nahead_days 1\n", MK_OK, 90, 1);
	expect_window(h, "token_len 16\ntin_fresh 2678400\nverify_days 3660\nahead_days 31\n", MK_OK, 3660, 31);
	expect_window(h, "token_len 4\ntin_fresh 60\nverify_days 1\nahead_days 0\n", MK_OK, 1, 0);
	expect_window(h, "verify_days 7\n", MK_OK, 7, 1);
	expect_window(h, "ahead_days 0\n", MK_OK, 90, 0);
	expect_window(h, "ahead_days 3\nverify_days 7\nsome_later_line 5\n", MK_OK, 7, 3);
	/* damaged: refused, never the defaults */
	for (size_t i = 0; i < sizeof(damaged) / sizeof(damaged[0]); i++) {
		print_message("  damaged: \"%s\"\n", damaged[i]);
		expect_window(h, damaged[i], MK_ERR_STATE, 0, 0);
	}
	expect_window(h, "verify_days 3661\n", MK_ERR_STATE, 0, 0);
	assert_non_null(strstr(mk_kms_detail(h->k), "line 1: verify_days out of its range"));
	expect_window(h, "token_len 8\nverify_days 7\nverify_days 8\n", MK_ERR_STATE, 0, 0);
	assert_non_null(strstr(mk_kms_detail(h->k), "line 3: verify_days given twice"));
	put_file(h, "domains/VE.policy", "verify_days 7\0\n", 15);
	expect_window(h, NULL, MK_ERR_STATE, 0, 0);
	assert_non_null(strstr(mk_kms_detail(h->k), "NUL"));
	/* larger than any the KMS writes */
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	big[sizeof(big) - 2] = '\n';
	expect_window(h, big, MK_ERR_BUF_FULL, 0, 0);
	/* a domain ID that is not one: refused, the file never looked for */
	v = a = 12345;
	assert_rc(mk_kms_domain_window(h->k, "ve", &v, &a), MK_ERR_INVALID_ARG);
	assert_non_null(strstr(mk_kms_detail(h->k), "is not 2-8 characters"));
	assert_rc(mk_kms_domain_window(h->k, "../VE", &v, &a), MK_ERR_INVALID_ARG);
	assert_rc(mk_kms_domain_window(h->k, "ABCDEFGHI", &v, &a), MK_ERR_INVALID_ARG);
	assert_rc(mk_kms_domain_window(h->k, "", &v, &a), MK_ERR_INVALID_ARG);
	assert_rc(mk_kms_domain_window(h->k, NULL, &v, &a), MK_ERR_INVALID_ARG);
	assert_int_equal(v, 12345);
	assert_int_equal(a, 12345);
	/* the twin: a valid ID of a domain with no file, the defaults */
	assert_rc(mk_kms_domain_window(h->k, "USPS", &v, &a), MK_OK);
	assert_int_equal(v, 90);
	assert_int_equal(a, 1);
	assert_string_equal(mk_kms_detail(h->k), "");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, home_setup, home_teardown)
	const struct CMUnitTest tests[] = {
		T(test_open_missing_home), T(test_open_home_refused),
		T(test_conf_round_trip),   T(test_conf_store_refused),
		T(test_conf_malformed),    T(test_conf_truncated),
		T(test_conf_oversize),     T(test_conf_duplicate),
		T(test_conf_not_a_file),   T(test_box_known),
		T(test_box_unknown),       T(test_pick_box),
		T(test_pick_box_refused),  T(test_pathf),
		T(test_pathf_overlong),    T(test_meter_path),
		T(test_meter_path_refused), T(test_ident_safe),
		T(test_read_home_file),    T(test_domain_window),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
