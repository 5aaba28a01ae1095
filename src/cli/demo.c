/*
 * meterkey demo — the life of a small fleet, end to end, through the same
 * KMS flows the other commands run: the first Manufacturing Box, domains VE,
 * USPS and EARTH (sub-domains US and DE), an Oak, a Steel and a Brass box,
 * five meters manufactured, their vendor and postal keys installed and
 * registered (two through EARTH), one retired, the others franking and
 * their indicia verified, every domain's audit chain verified, and the fleet
 * read back from the archive. Any step that fails ends the demo with exit
 * status 1. With --home the home stays for a person to explore.
 */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "meterkey/boxes.h"
#include "meterkey/crypto.h"
#include "meterkey/verify.h"

static const char usage[] =
	"usage: meterkey demo [--home DIR] [--archive URL] [--json]\n"
	"  Runs the life of a fleet of meters through the KMS: initialises the first\n"
	"  Manufacturing Box; creates domains VE (countries US, DE), USPS (US) and\n"
	"  EARTH (US, DE); initialises an Oak, a Steel, a Brass and a Tin box for\n"
	"  them; starts every box as a process of its own (confined, enabled with\n"
	"  its shares, reached over a socket in DIR/run; stopped at the end);\n"
	"  manufactures five meters at the Steel box's factory station (provider\n"
	"  root, transport key and certificate: each leaves in transport lock and\n"
	"  refuses to frank); installs each one's vendor (VE) and postal key (USPS\n"
	"  for three, EARTH for two); registers them (mutual authentication with\n"
	"  the postal domain's registration service, operation certificate, the\n"
	"  lock lifted; then MR1-MR4, the EARTH meters into DE and US); retires\n"
	"  one; franks with the four others (some indicia signed with the operation\n"
	"  key) and verifies everything; verifies every domain's audit chain; and\n"
	"  reads the fleet back from the archive, whose figures end the output.\n"
	"  Each meter's certificate chain is exported as PEM under\n"
	"  DIR/chains/<meter>/locked (root, manufacturing, transport) and\n"
	"  DIR/chains/<meter>/registered (root, domain, operation); the first\n"
	"  indicium franked is DIR/indicium-1.png, a DataMatrix symbol.\n"
	"  The home must be new or empty. With --home DIR it stays, with four meters\n"
	"  registered and in credit, for the other commands to explore (the output\n"
	"  ends with three to try); without, it is a temporary directory, removed\n"
	"  afterwards. The archive is sqlite:DIR/archive.db unless --archive names\n"
	"  another. With --json prints one JSON object: meters, meters_registered,\n"
	"  meters_retired, keys_installed, keys_active, keys_obsolete, audit_ok,\n"
	"  indicia, verified_good_brass, verified_good_tin, duplicates, archive and\n"
	"  meter_list (each meter as `meter list --json` shows it). Exit status 0\n"
	"  when every step succeeds and every audit chain verifies.\n";

static int quiet;
static int keep_home; /* --home given: the demo's home stays */

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
	va_list ap;

	if (quiet)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

struct fleet {
	const char *product, *msn, *postal, *indicia, *country;
};

static const struct fleet fleet[] = {
	{ "PM100", "000001", "USPS", "US00000001", "US" },
	{ "PM100", "000002", "USPS", "US00000002", "US" },
	{ "PM100", "000003", "USPS", "US00000003", "US" },
	{ "EA200", "000004", "EARTH", "DE00000004", "DE" },
	{ "EA200", "000005", "EARTH", "US00000005", "US" },
};
#define NFLEET (MK_ARRAY_LEN(fleet))

struct tally {
	json_t *meters;
	int n, registered, retired, installed, active, obsolete;
	size_t franked, good_brass, good_tin, duplicates;
};

static int count_meter(void *ctx, const struct mk_kms_meter *m)
{
	struct tally *t = ctx;

	t->n++;
	t->registered += m->info.state == MK_METER_REGISTERED;
	t->retired += m->info.state == MK_METER_RETIRED;
	say("   %-14s %-12s %-11s %-3s", m->id, mk_meter_state_name(m->info.state),
	    m->info.indicia_serial[0] != '\0' ? m->info.indicia_serial : "-",
	    m->info.country[0] != '\0' ? m->info.country : "-");
	for (size_t i = 0; i < m->info.nkeys; i++) {
		enum mk_key_status s = m->status[i];

		say(" %s/%llu %s", m->info.keys[i].domain, (unsigned long long)m->info.keys[i].key_id,
		    s != 0 ? mk_key_status_name(s) : "UNKNOWN");
		t->installed += s == MK_KEY_INSTALLED || s == MK_KEY_ACTIVE || s == MK_KEY_OBSOLETE;
		t->active += s == MK_KEY_ACTIVE;
		t->obsolete += s == MK_KEY_OBSOLETE;
	}
	say("\n");
	json_array_append_new(t->meters, mk_call_meter_json(m));
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The home must not hold a KMS already: the demo makes its own. */
static int home_usable(const char *home)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/boxes.conf", home);
	return access(path, F_OK) != 0;
}

#define PIECES 2

/* Prints and counts a batch's outcomes; *goodp: how many were good. */
static void outcomes(const struct mk_verify_outcome *o, size_t n, size_t *goodp, size_t *dupp)
{
	*goodp = *dupp = 0;
	for (size_t i = 0; i < n; i++) {
		*goodp += o[i].result == MK_VR_GOOD;
		*dupp += o[i].result == MK_VR_DUPLICATE;
	}
}

/*
 * Every active meter gets a postage credit and franks PIECES mailpieces;
 * the retired one is refused. Token keys of the month go to the Tin box.
 * Everything franked is verified by the Brass boxes (recorded in the
 * duplicate index), again (every one a duplicate now), and by the Tin box.
 */
static enum mk_err frank_and_verify(struct kc *c, struct tally *t)
{
	struct mk_kms *k = c->kms;
	struct mk_indicium inds[NFLEET * PIECES], refused;
	struct mk_verify_outcome o[NFLEET * PIECES];
	struct mk_verifier *brass = NULL, *tin = NULL;
	char mid[MK_METER_ID_MAX + 1], line[MK_INDICIUM_TEXT_MAX], png[4200];
	uint32_t day = mk_indicium_day(mk_kms_now(k));
	size_t n = 0, done, records;
	enum mk_err e;

	say("8. Franking: each active meter credited with $100.00 and franking %d pieces\n", PIECES);
	for (size_t i = 0; i < NFLEET; i++) {
		snprintf(mid, sizeof(mid), "%s-%s", fleet[i].product, fleet[i].msn);
		if (i == 0) {
			e = mk_kms_meter_frank(k, mid, NULL, 73, "10001", day, false, 1, &refused, &done);
			say("   %s (retired) refuses: %s\n", mid, mk_strerror(e));
			if (e != MK_ERR_METER_NOT_REGISTERED)
				return e == MK_OK ? MK_ERR_INTERNAL : e;
			continue;
		}
		if ((e = mk_kms_meter_credit(k, mid, 10000)) != MK_OK ||
		    (e = mk_kms_meter_frank(k, mid, NULL, 73, i < 3 ? "10001" : "10117", day, i % 2 == 0, PIECES, &inds[n],
		                            &done)) != MK_OK)
			return e;
		for (size_t j = 0; j < done; j++) {
			if ((e = mk_indicium_text_encode(&inds[n + j], line)) != MK_OK)
				return e;
			say("   %s\n", line);
		}
		n += done;
	}
	if (keep_home) {
		snprintf(png, sizeof(png), "%s/indicium-1.png", c->home);
		if ((e = mk_indicium_text_encode(&inds[0], line)) != MK_OK || (e = mk_indicium_png_write(line, png)) != MK_OK)
			return e;
		say("   the first as a DataMatrix symbol: %s\n", png);
	}
	t->franked = n;
	say("9. Token keys of this month for the Tin box (it never holds a master key):");
	for (size_t d = 0; d < 3; d++) {
		static const char *const doms[] = { "VE", "USPS", "EARTH" };

		if ((e = mk_kms_distribute(k, doms[d], mk_token_period(day), NULL, &records)) != MK_OK)
			return e;
		say(" %s %zu", doms[d], records);
	}
	say("\n10. Verification of all %zu indicia, each domain apart:\n", n);
	if ((e = mk_verifier_new(k, false, true, &brass)) != MK_OK || (e = mk_verify_batch(brass, inds, n, o)) != MK_OK)
		goto out;
	outcomes(o, n, &t->good_brass, &done);
	say("   by the Brass boxes: %zu good\n", t->good_brass);
	if ((e = mk_verify_batch(brass, inds, n, o)) != MK_OK)
		goto out;
	outcomes(o, n, &done, &t->duplicates);
	say("   the same again: %zu duplicates\n", t->duplicates);
	if ((e = mk_verifier_new(k, true, false, &tin)) != MK_OK || (e = mk_verify_batch(tin, inds, n, o)) != MK_OK)
		goto out;
	outcomes(o, n, &t->good_tin, &done);
	say("   by the Tin box, with token keys only: %zu good\n", t->good_tin);
	if (t->good_brass != n || t->good_tin != n || t->duplicates != n)
		e = MK_ERR_VERIFY;
out:
	mk_verifier_free(brass);
	mk_verifier_free(tin);
	return e;
}

/* The meter's certificates as PEM files in HOME/chains/<meter>/<stage>. */
static enum mk_err export_chain(struct kc *c, const char *mid, const char *stage)
{
	char dir[4096];
	unsigned written;

	snprintf(dir, sizeof(dir), "%s/chains", c->home);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return MK_ERR_IO;
	snprintf(dir, sizeof(dir), "%s/chains/%s", c->home, mid);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return MK_ERR_IO;
	snprintf(dir, sizeof(dir), "%s/chains/%s/%s", c->home, mid, stage);
	return mk_kms_meter_cert_export(c->kms, mid, dir, &written);
}

static enum mk_err run(struct kc *c, struct tally *t, int *audit_ok, struct mk_box_procs **procs)
{
	static const char *const ve[] = { "US", "DE" }, *const usps[] = { "US" }, *const earth[] = { "US", "DE" };
	static const char *const domains[] = { "VE", "USPS", "EARTH" };
	char id[MK_BOX_ID_LEN + 1], mid[MK_METER_ID_MAX + 1];
	struct mk_kms *k = c->kms;
	enum mk_err e;

	say("1. Self-tests (known answers, RNG health)\n");
	if ((e = mk_selftest_run()) != MK_OK)
		return e;
	if ((e = mk_kms_init(k, 0, 0, id)) != MK_OK)
		return e;
	say("2. First Manufacturing Box %s: operator shares (3 of 3), Domain Key Set and its\n"
	    "   shares, startup authentication keys; trust anchors in trust/anchors\n", id);
	if ((e = mk_kms_domain_create(k, "VE", ve, 2)) != MK_OK ||
	    (e = mk_kms_domain_create(k, "USPS", usps, 1)) != MK_OK ||
	    (e = mk_kms_domain_create(k, "EARTH", earth, 2)) != MK_OK)
		return e;
	say("3. Domains VE (US, DE), USPS (US), EARTH (US, DE): domain keys made by %s\n", id);
	say("4. Boxes, each born a process of its own: it makes its identity key inside\n"
	    "   itself and shows the fingerprint on its console; the key ceremony gives\n"
	    "   that fingerprint to %s, which takes the box only if the key that\n"
	    "   answers is that one and certifies it (boxes/ID.cert); then the box's own\n"
	    "   operator shares (2 of 2) and the domain processes\n",
	    id);
	/* from here on every box is a process of its own, as in the document
	 * the boxes are devices of their own: the KMS reaches them by messages */
	{
		char run[PATH_MAX];

		if (snprintf(run, sizeof(run), "%s/run", mk_kms_home(k)) >= (int)sizeof(run))
			return MK_ERR_INVALID_ARG;
		if (mkdir(run, 0700) != 0 && errno != EEXIST)
			return MK_ERR_IO;
		for (int bt = 0; bt < 4; bt++) {
			static const enum mk_box_type types[] = { MK_BOX_OAK, MK_BOX_STEEL, MK_BOX_BRASS, MK_BOX_TIN };
			uint8_t fp[MK_SHA256_LEN];

			if ((e = mk_kms_box_born(k, types[bt], run, domains, 3, fp, id)) != MK_OK)
				return e;
			say("   %s for VE, USPS, EARTH; identity %02x%02x:%02x%02x:%02x%02x:%02x%02x...\n", id, fp[0],
			    fp[1], fp[2], fp[3], fp[4], fp[5], fp[6], fp[7]);
		}
		if ((e = mk_kms_boxes_start(k, run, NULL, 1, procs)) != MK_OK)
			return e;
		say("   each box now a process of its own (confined: its state folder only, no exec,\n"
		    "   not dumpable), enabled by entering its operators' shares one at a time;\n"
		    "   the KMS reaches them only by messages over their sockets in %s\n", run);
	}
	say("5. Meters manufactured at the factory station (the Steel box): the provider\n"
	    "   root loaded, a transport key made inside each and certified by the station,\n"
	    "   the meter in TRANSPORT LOCK; keys requested (MI0-MI4) and installed (MI4'-MI10)\n");
	for (size_t i = 0; i < NFLEET; i++) {
		struct mk_key_record rec;
		struct mk_indicium no;
		size_t done;

		if ((e = mk_kms_meter_create(k, fleet[i].product, fleet[i].msn, NULL, mid)) != MK_OK ||
		    (e = export_chain(c, mid, "locked")) != MK_OK)
			return e;
		say("   %s:", mid);
		for (int d = 0; d < 2; d++) {
			const char *dom = d == 0 ? "VE" : fleet[i].postal;

			if ((e = mk_kms_meter_install(k, mid, dom, NULL, NULL, &rec)) != MK_OK)
				return e;
			say(" %s/%llu %s", rec.domain, (unsigned long long)rec.key_id, mk_key_status_name(rec.status));
		}
		say("\n");
		if (i == 0) {
			e = mk_kms_meter_frank(k, mid, NULL, 73, "10001", mk_indicium_day(mk_kms_now(k)), false, 1,
			                       &no, &done);
			say("   %s, keys in but still in transport lock, refuses to frank: %s\n", mid, mk_strerror(e));
			if (e != MK_ERR_METER_LOCKED)
				return e == MK_OK ? MK_ERR_INTERNAL : e;
		}
	}
	say("6. Registration: each meter and the registration service of its postal domain\n"
	    "   (KMS and Brass) authenticate each other (ephemeral ECDH challenges, SP 800-56A\n"
	    "   key proofs); Brass issues the operation certificate with the postal authority\n"
	    "   key; the meter deletes its transport key and certificates and unlocks. Then\n"
	    "   MR1-MR4: indicia serial number and country into each meter, its registration\n"
	    "   reports checked by Brass against the archived keys\n");
	for (size_t i = 0; i < NFLEET; i++) {
		snprintf(mid, sizeof(mid), "%s-%s", fleet[i].product, fleet[i].msn);
		if ((e = mk_kms_meter_register(k, mid, fleet[i].indicia, fleet[i].country, 0)) != MK_OK ||
		    (e = export_chain(c, mid, "registered")) != MK_OK)
			return e;
		say("   %s as %s in %s/%s and VE/%s\n", mid, fleet[i].indicia, fleet[i].postal, fleet[i].country,
		    fleet[i].country);
	}
	snprintf(mid, sizeof(mid), "%s-%s", fleet[0].product, fleet[0].msn);
	if ((e = mk_kms_meter_retire(k, mid)) != MK_OK)
		return e;
	say("7. %s taken out of service: its VE and USPS records OBSOLETE\n", mid);
	if ((e = frank_and_verify(c, t)) != MK_OK)
		return e;
	say("11. Audit chains:\n");
	*audit_ok = 1;
	for (size_t i = 0; i < 3; i++) {
		struct mk_audit_result res;

		e = mk_archive_audit_verify(mk_kms_archive(k), domains[i], &res);
		say("   %-6s %s (%llu entries)\n", domains[i], e == MK_OK ? "verifies" : "does NOT verify",
		    (unsigned long long)res.entries);
		if (e != MK_OK)
			*audit_ok = 0;
	}
	if (!*audit_ok)
		return MK_ERR_AUDIT;
	/* last: the figures the demo ends with are what the archive holds now */
	say("12. The fleet, read back from the archive:\n");
	return mk_kms_meter_list(k, count_meter, t);
}

/* s as one shell word: as it is when every byte is plain, else in single
 * quotes (a quote inside becoming '\''); "" when it does not fit in cap. */
static const char *sh_word(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	if (s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._-+,:@=%")] == '\0' &&
	    *s != '\0')
		return s;
	out[n++] = '\'';
	for (; *s != '\0' && n + 5 < cap; s++) {
		if (*s == '\'') {
			memcpy(out + n, "'\\''", 4);
			n += 4;
		} else {
			out[n++] = *s;
		}
	}
	if (*s != '\0')
		return "";
	out[n++] = '\'';
	out[n] = '\0';
	return out;
}

/* What to try next on the home the demo leaves (text output only): the
 * program as it was found (relative to the working directory when under
 * it, so that scripts/demo's build/release/meterkey reads as that). */
static void next_steps(const char *home)
{
	char exe[4096], cwd[4096], png[4200], qx[8400], qh[8400], qp[8400];
	const char *prog = "meterkey", *h, *p;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	size_t lc;

	if (!keep_home) {
		printf("\nThe home was temporary and is gone; 'meterkey demo --home DIR' keeps one to\n"
		       "explore (see 'meterkey demo --help').\n");
		return;
	}
	if (n > 0) {
		exe[n] = '\0';
		prog = exe;
		if (getcwd(cwd, sizeof(cwd)) != NULL && (lc = strlen(cwd)) > 1 && strncmp(exe, cwd, lc) == 0 &&
		    exe[lc] == '/' && strchr(exe + lc + 1, '/') != NULL)
			prog = exe + lc + 1; /* build/release/meterkey; not a bare name */
		prog = sh_word(prog, qx, sizeof(qx));
	}
	snprintf(png, sizeof(png), "%s/piece.png", home);
	h = sh_word(home, qh, sizeof(qh));
	p = sh_word(png, qp, sizeof(qp));
	printf("\nThe home %s stays, with four meters registered and in credit. Try:\n"
	       "  %s meter list --home %s\n"
	       "  %s meter frank --home %s --meter PM100-000002 --postage 55 --origin 10001 --png %s\n"
	       "  %s verify --home %s --image %s\n"
	       "(every command: %s --help; export METERKEY_HOME=%s saves the --home)\n",
	       home, prog, h, prog, h, p, prog, h, p, prog, h);
}

int mk_cli_demo(int argc, char **argv)
{
	char tmp[] = "/tmp/meterkey-demo-XXXXXX";
	struct tally t = { NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	struct mk_box_procs *procs = NULL;
	int audit_ok = 0, temp = 0, r = 0;
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_END };
	enum mk_err e;

	if ((r = kc_start(&c, argc, argv, opts, usage, 0, KC_MAX_POS)) != KC_GO)
		return r;
	r = 0;
	if (c.npos != 0)
		return mk_cli_usage_error(usage, "the demo takes no arguments");
	if (c.shares != NULL || c.time != 0)
		return mk_cli_usage_error(usage, "the demo keeps its shares in its home and uses the clock");
	if (c.home == NULL) {
		if (mkdtemp(tmp) == NULL) {
			fprintf(stderr, "meterkey: cannot make a temporary directory: %s\n", strerror(errno));
			return 1;
		}
		c.home = tmp;
		temp = 1;
	} else if (!home_usable(c.home)) {
		fprintf(stderr, "meterkey: %s holds a KMS already; the demo needs a new or empty home\n", c.home);
		return 1;
	}
	quiet = c.json;
	keep_home = !temp;
	c.create = 1; /* the demo makes its own home */
	if (!kc_open(&c)) {
		r = 1;
		goto out;
	}
	say("meterkey demo: home %s, archive %s\n\n", temp ? "(temporary)" : c.home,
	    mk_archive_backend(mk_kms_archive(c.kms)));
	t.meters = json_array();
	e = run(&c, &t, &audit_ok, &procs);
	/* the box processes stop (each wipes its keys); the home's boxes open
	 * in the process of whoever uses it next */
	mk_kms_boxes_stop(c.kms, procs);
	if (e != MK_OK) {
		r = kc_fail(&c, e);
		if (!c.json)
			printf("\ndemo FAILED\n");
	} else if (c.json) {
		kc_print_json(json_pack("{s:b,s:i,s:i,s:i,s:i,s:i,s:i,s:b,s:I,s:I,s:I,s:I,s:s,s:O}", "ok", 1,
		                        "meters", t.n,
		                        "meters_registered", t.registered, "meters_retired", t.retired,
		                        "keys_installed", t.installed, "keys_active", t.active, "keys_obsolete",
		                        t.obsolete, "audit_ok", audit_ok, "indicia", (json_int_t)t.franked,
		                        "verified_good_brass", (json_int_t)t.good_brass, "verified_good_tin",
		                        (json_int_t)t.good_tin, "duplicates", (json_int_t)t.duplicates, "archive",
		                        mk_archive_backend(mk_kms_archive(c.kms)), "meter_list", t.meters));
	} else {
		printf("\n%d meters (%d registered, %d retired), %d keys installed, %d active, %d obsolete;\n"
		       "%zu indicia franked, %zu good by Brass, %zu good by Tin, %zu duplicates found;\n"
		       "audit chains verify\ndemo complete\n",
		       t.n, t.registered, t.retired, t.installed, t.active, t.obsolete, t.franked, t.good_brass,
		       t.good_tin, t.duplicates);
		next_steps(c.home);
	}
	json_decref(t.meters);
	kc_close(&c);
out:
	if (temp)
		nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return r;
}
