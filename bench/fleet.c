/*
 * The fleet the verification benchmarks share (fleet.h): its home, its
 * set-up, the sanity checks before measuring.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "fleet.h"

#define POSTAGE 63
#define KEPT_CREDIT 10000000 /* pieces a kept fleet's meter is credited for, once */

const char *fleet_prog = "bench";

void fleet_die(const char *what, enum mk_err e, struct mk_kms *k)
{
	fprintf(stderr, "%s: %s: %s%s%s\n", fleet_prog, what, mk_err_name(e), k != NULL ? ": " : "",
	        k != NULL ? mk_kms_detail(k) : "");
	exit(1);
}

void fleet_check(enum mk_err e, const char *what, struct mk_kms *k)
{
	if (e != MK_OK)
		fleet_die(what, e, k);
}

struct mk_kms *fleet_open(const struct fleet *f)
{
	struct mk_kms_opts o = { f->home, f->url, NULL, 0, 1, NULL, 0, NULL }; /* the set-up makes it */
	struct mk_kms *k = NULL;

	fleet_check(mk_kms_open(&o, &k), "mk_kms_open", NULL);
	return k;
}

/* ---- temporary directories ------------------------------------------------ */

static char tmp_home[4096], tmp_adir[4096];

static void rm_dir(const char *dir)
{
	char cmd[4096 + 16];

	if (strstr(dir, "/meterkey-bench-") == NULL || strstr(dir, "XXXXXX") != NULL || strchr(dir, '\'') != NULL)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "%s: could not remove %s\n", fleet_prog, dir);
}

static void rm_temp_dirs(void)
{
	rm_dir(tmp_home);
	rm_dir(tmp_adir);
}

void fleet_temp_dirs(struct fleet *f)
{
	const char *tmp = getenv("TMPDIR") != NULL && getenv("TMPDIR")[0] != '\0' ? getenv("TMPDIR") : "/tmp";
	const char *keep = getenv("BENCH_FLEET"), *url = getenv("BENCH_ARCHIVE_URL");

	/* a fleet kept between runs (its meters made once: 10,000 take about
	 * 20 minutes), each run franking fresh indicia */
	if (keep != NULL && keep[0] != '\0') {
		snprintf(f->home, sizeof(f->home), "%s/home", keep);
		if (mkdir(keep, 0700) != 0 && errno != EEXIST) {
			perror(keep);
			exit(1);
		}
		f->kept = 1;
		if (url != NULL && url[0] != '\0')
			snprintf(f->url, sizeof(f->url), "%s", url);
		else
			snprintf(f->url, sizeof(f->url), "sqlite:%s/archive.db", keep);
		printf("home %s (kept), archive %s\n", f->home, url != NULL && url[0] != '\0' ? "given" : f->url);
		fflush(stdout);
		return;
	}

	snprintf(tmp_home, sizeof(tmp_home), "%s/meterkey-bench-XXXXXX",
	         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : tmp);
	snprintf(tmp_adir, sizeof(tmp_adir), "%s/meterkey-bench-XXXXXX", tmp);
	if (mkdtemp(tmp_home) == NULL || mkdtemp(tmp_adir) == NULL) {
		perror("mkdtemp");
		rm_temp_dirs();
		exit(1);
	}
	atexit(rm_temp_dirs);
	snprintf(f->home, sizeof(f->home), "%s", tmp_home);
	snprintf(f->url, sizeof(f->url), "sqlite:%s/archive.db", tmp_adir);
	if (url != NULL && url[0] != '\0') /* PostgreSQL: a database made for the run */
		snprintf(f->url, sizeof(f->url), "%s", url);
	printf("home %s (set-up only), archive %s\n", f->home, url != NULL && url[0] != '\0' ? "given" : f->url);
	fflush(stdout);
}

/* ---- set-up -------------------------------------------------------------- */

struct frank_job {
	struct fleet *f;
	size_t first, step; /* meters first, first + step, ... */
};

static void meter_id(const struct fleet *f, size_t i, char id[static MK_METER_ID_MAX + 1])
{
	snprintf(id, MK_METER_ID_MAX + 1, "PM100-%06u", (unsigned)f->msn[i]);
}

/* One meter made, installed in both domains, registered and credited; the
 * first failure's code (its words on stderr). */
static enum mk_err meter_make(struct fleet *f, struct mk_kms *k, unsigned msn_no)
{
	char msn[24], serial[24], mid[MK_METER_ID_MAX + 1];
	struct mk_key_record rec;
	enum mk_err e;
	const char *what;

	snprintf(msn, sizeof(msn), "%06u", msn_no);
	snprintf(serial, sizeof(serial), "US%08u", msn_no);
	if ((e = mk_kms_meter_create(k, "PM100", msn, NULL, mid)) != MK_OK)
		what = "create";
	else if ((e = mk_kms_meter_install(k, mid, "VE", "", NULL, &rec)) != MK_OK)
		what = "install VE";
	else if ((e = mk_kms_meter_install(k, mid, "USPS", "", NULL, &rec)) != MK_OK)
		what = "install USPS";
	else if ((e = mk_kms_meter_register(k, mid, serial, "US", 0)) != MK_OK)
		what = "register";
	else if ((e = mk_kms_meter_credit(k, mid, (uint64_t)POSTAGE * (f->kept ? KEPT_CREDIT : f->k))) != MK_OK)
		what = "credit";
	else
		return MK_OK;
	fprintf(stderr, "%s: meter %s: %s: %s (%s); another meter instead\n", fleet_prog, msn, what, mk_kms_detail(k),
	        mk_err_name(e));
	return e;
}

/* Franks with meters first, first + step, ... through a KMS handle of its
 * own, their indicia into place (interleaved). */
static void *frank_meters(void *arg)
{
	struct frank_job *j = arg;
	struct fleet *f = j->f;
	struct mk_kms *k = fleet_open(f);
	struct mk_indicium *tmp = calloc(f->k, sizeof(*tmp));

	if (tmp == NULL)
		fleet_die("calloc", MK_ERR_NOMEM, NULL);
	for (size_t i = j->first; i < f->m; i += j->step) {
		char mid[MK_METER_ID_MAX + 1];
		size_t done = 0;

		meter_id(f, i, mid);
		fleet_check(mk_kms_meter_frank(k, mid, "VE", POSTAGE, "20260", f->day, false, f->k, tmp, &done),
		            "mk_kms_meter_frank", k);
		for (size_t p = 0; p < f->k; p++)
			f->inds[p * f->m + i] = tmp[p];
	}
	free(tmp);
	mk_kms_close(k);
	return NULL;
}

/* The home's Brass boxes, the first two by ID, into f->brass. */
static int brass_of(void *ctx, const char *id, const char *const *domains, size_t n)
{
	struct fleet *f = ctx;

	(void)domains;
	(void)n;
	if (id[0] != 'B')
		return 0;
	for (int i = 0; i < 2; i++)
		if (f->brass[i][0] == '\0' || strcmp(id, f->brass[i]) < 0) {
			if (i == 0)
				memcpy(f->brass[1], f->brass[0], sizeof(f->brass[0]));
			snprintf(f->brass[i], sizeof(f->brass[i]), "%s", id);
			break;
		}
	return 0;
}

/* A kept fleet's mark: the number of meters it was made with. */
static int fleet_ready(struct fleet *f)
{
	char path[sizeof(f->home) + 16];
	FILE *fp;
	size_t m = 0;

	snprintf(path, sizeof(path), "%s.ready", f->home);
	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	if (fscanf(fp, "%zu", &m) != 1)
		m = 0;
	for (size_t i = 0; m == f->m && i < m; i++)
		if (fscanf(fp, "%u", &f->msn[i]) != 1)
			m = 0;
	fclose(fp);
	if (m != f->m) {
		fprintf(stderr, "%s: the kept fleet has %zu meters, not %zu: give another BENCH_FLEET\n", fleet_prog, m, f->m);
		exit(2);
	}
	{
		struct mk_kms *k = fleet_open(f);

		fleet_check(mk_kms_box_list(k, brass_of, (void *)f), "mk_kms_box_list", k);
		mk_kms_close(k);
	}
	fprintf(stderr, "set-up: the kept fleet of %zu meters, Brass boxes %s and %s\n", m, f->brass[0], f->brass[1]);
	return 1;
}

static void fleet_mark_ready(const struct fleet *f)
{
	char path[sizeof(f->home) + 16];
	FILE *fp;

	snprintf(path, sizeof(path), "%s.ready", f->home);
	if ((fp = fopen(path, "w")) == NULL || fprintf(fp, "%zu\n", f->m) < 0)
		fleet_die("the kept fleet's mark", MK_ERR_IO, NULL);
	for (size_t i = 0; i < f->m; i++)
		if (fprintf(fp, "%u\n", f->msn[i]) < 0)
			fleet_die("the kept fleet's mark", MK_ERR_IO, NULL);
	if (fclose(fp) != 0)
		fleet_die("the kept fleet's mark", MK_ERR_IO, NULL);
}

void fleet_setup(struct fleet *f)
{
	static const char *const us[] = { "US" }, *const doms[] = { "VE", "USPS" };
	char id[MK_BOX_ID_LEN + 1];
	struct frank_job jobs[2] = { { f, 0, 2 }, { f, 1, 2 } };
	pthread_t t[2];
	struct mk_kms *k;
	double t00 = bench_now(), t0 = t00;

	if ((f->inds = calloc(f->m * f->k, sizeof(*f->inds))) == NULL || (f->msn = calloc(f->m, sizeof(*f->msn))) == NULL)
		fleet_die("calloc", MK_ERR_NOMEM, NULL);
	if (f->kept && fleet_ready(f))
		goto frank;
	k = fleet_open(f);
	fleet_check(mk_kms_init(k, 0, 0, id), "mk_kms_init", k);
	fleet_check(mk_kms_domain_create(k, "VE", us, 1), "domain VE", k);
	fleet_check(mk_kms_domain_create(k, "USPS", us, 1), "domain USPS", k);
	fleet_check(mk_kms_box_init(k, MK_BOX_OAK, doms, 2, 0, 0, id), "Oak", k);
	fleet_check(mk_kms_box_init(k, MK_BOX_STEEL, doms, 2, 0, 0, id), "Steel", k);
	fleet_check(mk_kms_box_init(k, MK_BOX_BRASS, doms, 2, 0, 0, f->brass[0]), "Brass 1", k);
	fleet_check(mk_kms_box_init(k, MK_BOX_BRASS, doms, 2, 0, 0, f->brass[1]), "Brass 2", k);
	fprintf(stderr, "set-up: home, 2 domains, 4 boxes in %.1f s\n", bench_now() - t0);
	/* one at a time: a Steel box takes key IDs in increasing order only */
	t0 = bench_now();
	/* a meter the load made fail (a meter link without its answer in
	 * time) is left, and another made in its place */
	for (size_t i = 0, next = 1, failed = 0; i < f->m; i++) {
		while (meter_make(f, k, (unsigned)next) != MK_OK) {
			next++;
			if (++failed > 20)
				fleet_die("set-up: more than 20 meters failed", MK_ERR_INTERNAL, k);
		}
		f->msn[i] = (uint32_t)next++;
	}
	mk_kms_close(k);
	fprintf(stderr, "set-up: %zu meters installed, registered, credited in %.1f s\n", f->m, bench_now() - t0);
	if (f->kept)
		fleet_mark_ready(f);
frank:
	/* two meters at a time: the meters' NVM writes (fsync) take most of it */
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, frank_meters, &jobs[i]) != 0)
			fleet_die("pthread_create", MK_ERR_INTERNAL, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	printf("set-up: %zu meters installed, registered, credited, franked %zu indicia in %.1f s "
	       "(not measured)\n",
	       f->m, f->m * f->k, bench_now() - t00);
	fflush(stdout);
}

/* ---- correctness, once, before measuring --------------------------------- */

void fleet_sanity(struct mk_verifier *v, const struct fleet *f)
{
	struct mk_indicium bad[3];
	struct mk_verify_outcome o[3];
	static const enum mk_verify_result want[3] = { MK_VR_BAD_TOKEN, MK_VR_BAD_TOKEN,
		                                       MK_VR_UNKNOWN_DEVICE };

	for (int i = 0; i < 3; i++)
		bad[i] = f->inds[(size_t)i];
	bad[0].postage++;
	memcpy(bad[1].vendor_token, f->inds[0].postal_token, sizeof(bad[1].vendor_token));
	memcpy(bad[1].postal_token, f->inds[0].vendor_token, sizeof(bad[1].postal_token));
	snprintf(bad[2].mfg_seq, sizeof(bad[2].mfg_seq), "999999");
	fleet_check(mk_verify_batch(v, bad, 3, o), "mk_verify_batch (sanity)", NULL);
	for (int i = 0; i < 3; i++)
		if (o[i].vendor != want[i] || o[i].postal != want[i]) {
			fprintf(stderr, "%s: sanity case %d: %s/%s, expected %s\n", fleet_prog, i,
			        mk_verify_result_name(o[i].vendor), mk_verify_result_name(o[i].postal),
			        mk_verify_result_name(want[i]));
			exit(1);
		}
}
