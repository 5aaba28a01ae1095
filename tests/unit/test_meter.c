/*
 * Unit tests for the simulated meter (src/device/meter.c, meter_client.c):
 * real meters in child processes over socketpairs, on NVM files in a
 * temporary directory. Every accepted change has its refused twin, and every
 * refusal is checked to leave the NVM file byte for byte as it was. The
 * vectors of docs/formats.md §7 (from an independent encoder) are checked
 * against the code in both directions. Meters are manufactured (transport
 * lock) before keys go in and registered in the device PKI before they take
 * parameters, by the test playing station and service (meter_pki_fixture.h);
 * the device PKI itself is tested in test_meter_pki.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "device/device_int.h"
#include "meterkey/msg.h"
#include "meterkey/crypto.h"
#include "meterkey/frame.h"
#include "meterkey/meter.h"
#include "meterkey/pki.h"

#include "meter_pki_fixture.h"
#include "vectors.c"

#define NVM_FILE_MAX (MK_METER_NVM_MAX + 64) /* room for one file too large */

static const uint8_t key_a[MK_MASTER_KEY_LEN] = { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	                                          0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f };
static const uint8_t key_b[MK_MASTER_KEY_LEN] = { 0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87,
	                                          0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f };

/* ---- Fixture: the device PKI (meter_pki_fixture.h) and a temporary directory -- */

/* One provider PKI for the whole file (group setup): the tests only sign. */
static struct pki_world world;

static int group_setup(void **state)
{
	(void)state;
	pki_world_init(&world, "meterkey provider root");
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	pki_world_free(&world);
	return 0;
}

static void spit(const char *path, const uint8_t *p, size_t n)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(p, 1, n, fp), n);
	assert_int_equal(fclose(fp), 0);
}

/* The number of entries in dir, besides . and .. */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* A meter made on the factory line and manufactured (root, transport key
 * and certificate: in transport lock), with a running connection. */
static struct mk_meter_conn *fresh_meter(struct fx *f)
{
	struct mk_meter_conn *c = NULL;

	assert_int_equal(mk_meter_nvm_create(f->nvm, "EA1234", "MSN000017"), MK_OK);
	assert_int_equal(mk_meter_connect(f->nvm, &c), MK_OK);
	pki_manufacture(&world, c);
	return c;
}

/* Registers the meter's device PKI with the EARTH domain: unlocked. */
static void unlock(struct mk_meter_conn *c)
{
	X509_free(pki_register(&world, c, "EARTH"));
}

static void install(struct mk_meter_conn *c, const char *domain, uint64_t id, const uint8_t *key)
{
	char msn[MK_IDENT_MAX + 1];
	uint8_t tok[MK_TEST_TOKENS_LEN];

	assert_int_equal(mk_meter_install_key(c, domain, id, key, msn, tok), MK_OK);
}

/* ---- Tests ------------------------------------------------------------------------- */

static void test_state_names(void **state)
{
	(void)state;
	assert_string_equal(mk_meter_state_name(MK_METER_MANUFACTURED), "manufactured");
	assert_string_equal(mk_meter_state_name(MK_METER_REGISTERED), "registered");
	assert_string_equal(mk_meter_state_name(MK_METER_RETIRED), "retired");
	assert_string_equal(mk_meter_state_name((enum mk_meter_state)0), "?");
	assert_string_equal(mk_err_name(MK_ERR_NVM_CORRUPT), "MK_ERR_NVM_CORRUPT");
}

/* The factory label goes in once; the file is private; bad labels are refused. */
static void test_nvm_create(void **state)
{
	struct fx *f = *state;
	struct mk_meter_info info;
	struct stat st;
	uint8_t before[NVM_FILE_MAX], after[NVM_FILE_MAX];
	size_t n;

	assert_int_equal(mk_meter_nvm_info(f->nvm, &info), MK_ERR_NOT_FOUND);
	assert_int_equal(mk_meter_nvm_create(f->nvm, "", "MSN1"), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_meter_nvm_create(f->nvm, "EA1", "MSN\n1"), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_meter_nvm_create(f->nvm, "EA1", "0123456789012345678901234567890123"),
	                 MK_ERR_INVALID_ARG);
	assert_int_equal(mk_meter_nvm_create(f->nvm, "EA1234", "MSN000017"), MK_OK);
	assert_int_equal(stat(f->nvm, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	n = slurp(f->nvm, before, sizeof(before));
	assert_int_equal(mk_meter_nvm_create(f->nvm, "EA9999", "MSN2"), MK_RC_RECORD_EXISTS);
	assert_int_equal(slurp(f->nvm, after, sizeof(after)), n);
	assert_memory_equal(before, after, n);
	assert_int_equal(mk_meter_nvm_info(f->nvm, &info), MK_OK);
	assert_string_equal(info.product_code, "EA1234");
	assert_string_equal(info.mfg_seq, "MSN000017");
	assert_string_equal(info.indicia_serial, "");
	assert_string_equal(info.country, "");
	assert_int_equal(info.registered, 0);
	assert_int_equal(info.state, MK_METER_MANUFACTURED);
	assert_int_equal(info.nkeys, 0);
	/* no temporary file is left behind, by the write or by the refused create */
	assert_int_equal(count_entries(f->dir), 1);
}

/* MI5/MI6: the tokens are those of the key; a second key for the domain is
 * refused and changes nothing. */
static void test_install_key(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = fresh_meter(f);
	struct mk_meter_info info;
	char msn[MK_IDENT_MAX + 1];
	uint8_t tok[MK_TEST_TOKENS_LEN], want[MK_TEST_TOKENS_LEN], before[NVM_FILE_MAX],
		after[NVM_FILE_MAX];
	size_t n;

	assert_int_equal(mk_meter_install_key(c, "EARTH", 42, key_a, msn, tok), MK_OK);
	assert_int_equal(mk_test_tokens(key_a, sizeof(key_a), want), MK_OK);
	assert_memory_equal(tok, want, sizeof(want));
	assert_string_equal(msn, "MSN000017");
	assert_int_equal(mk_test_tokens(key_b, sizeof(key_b), want), MK_OK);
	assert_memory_not_equal(tok, want, sizeof(want));

	n = slurp(f->nvm, before, sizeof(before));
	assert_true(contains(before, n, key_a, sizeof(key_a))); /* the NVM holds it, by design */
	/* a key is installed once: not again, not another one */
	assert_int_equal(mk_meter_install_key(c, "EARTH", 43, key_b, msn, tok), MK_RC_RECORD_EXISTS);
	assert_int_equal(mk_meter_install_key(c, "EARTH", 42, key_a, msn, tok), MK_RC_RECORD_EXISTS);
	/* key ID 0 is refused by the meter (the client sends it as given) */
	assert_int_equal(mk_meter_install_key(c, "VE", 0, key_b, msn, tok), MK_ERR_CMD_PARAM_SYNTAX);
	/* a domain that is not a domain ID never leaves the client */
	assert_int_equal(mk_meter_install_key(c, "ve", 1, key_b, msn, tok), MK_ERR_INVALID_ARG);
	assert_int_equal(slurp(f->nvm, after, sizeof(after)), n);
	assert_memory_equal(before, after, n);

	assert_int_equal(mk_meter_get_info(c, &info), MK_OK);
	assert_int_equal(info.nkeys, 1);
	assert_string_equal(info.keys[0].domain, "EARTH");
	assert_int_equal(info.keys[0].key_id, 42);
	assert_int_equal(info.state, MK_METER_MANUFACTURED);

	/* four slots, then no room */
	install(c, "VE", 7, key_b);
	install(c, "USPS", 8, key_b);
	install(c, "GB", 9, key_b);
	n = slurp(f->nvm, before, sizeof(before));
	assert_int_equal(mk_meter_install_key(c, "DE", 10, key_b, msn, tok),
	                 MK_RC_RESOURCE_UNAVAILABLE);
	assert_int_equal(slurp(f->nvm, after, sizeof(after)), n);
	assert_memory_equal(before, after, n);
	assert_int_equal(mk_meter_get_info(c, &info), MK_OK);
	assert_int_equal(info.nkeys, MK_METER_MAX_KEYS);
	assert_string_equal(info.keys[3].domain, "GB");
	mk_meter_disconnect(c);
	mk_meter_disconnect(NULL);
}

/* What the meter was told survives the meter's process. */
static void test_persists(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = fresh_meter(f);
	struct mk_meter_info info, listed;
	struct mk_meter_report rep;
	uint8_t mac[MK_METER_MAC_LEN];
	struct mk_buf *tbs = mk_buf_new(1024);

	install(c, "EARTH", 42, key_a);
	unlock(c);
	assert_int_equal(mk_meter_set_indicia(c, "0401234567", "US", 1700000000), MK_OK);
	mk_meter_disconnect(c);

	assert_int_equal(mk_meter_nvm_info(f->nvm, &listed), MK_OK);
	assert_int_equal(mk_meter_connect(f->nvm, &c), MK_OK);
	assert_int_equal(mk_meter_get_info(c, &info), MK_OK);
	assert_memory_equal(&info, &listed, sizeof(info));
	assert_int_equal(info.state, MK_METER_REGISTERED);
	assert_int_equal(info.pki, MK_METER_PKI_OPERATIONAL);
	assert_string_equal(info.indicia_serial, "0401234567");
	assert_string_equal(info.country, "US");
	assert_int_equal(info.registered, 1700000000);
	assert_int_equal(info.nkeys, 1);
	/* the reloaded key is the installed one: the report MAC says so */
	assert_int_equal(mk_meter_get_report(c, "EARTH", &rep), MK_OK);
	assert_int_equal(mk_meter_report_encode_tbs(&rep, tbs), MK_OK);
	assert_int_equal(mk_cmac_once(key_a, sizeof(key_a), mk_buf_data(tbs), mk_buf_len(tbs), mac,
	                              sizeof(mac)), MK_OK);
	assert_memory_equal(mac, rep.mac, sizeof(mac));
	/* a second registration is refused after the restart too */
	assert_int_equal(mk_meter_set_indicia(c, "0401234568", "GB", 1700000001), MK_ERR_STATE);
	mk_meter_disconnect(c);
	mk_buf_free(tbs);
}

/* MR1 input: needs a key and an unlocked meter, happens once, checks its
 * arguments. */
static void test_set_indicia(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = fresh_meter(f);
	struct mk_meter_info info;
	uint8_t before[NVM_FILE_MAX], after[NVM_FILE_MAX];
	size_t n;

	n = slurp(f->nvm, before, sizeof(before));
	assert_int_equal(mk_meter_set_indicia(c, "0401234567", "US", 1700000000), MK_ERR_STATE);
	assert_int_equal(slurp(f->nvm, after, sizeof(after)), n);
	assert_memory_equal(before, after, n);
	install(c, "EARTH", 42, key_a);
	assert_int_equal(mk_meter_set_indicia(c, "0401234567", "us", 1700000000), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_meter_set_indicia(c, "0401234567", "US", 0), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_meter_set_indicia(c, "", "US", 1700000000), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_meter_get_info(c, &info), MK_OK);
	assert_int_equal(info.state, MK_METER_MANUFACTURED);
	/* in transport lock the meter takes no parameters, and stays as it was */
	n = slurp(f->nvm, before, sizeof(before));
	assert_int_equal(mk_meter_set_indicia(c, "0401234567", "US", 1700000000), MK_ERR_METER_LOCKED);
	assert_int_equal(slurp(f->nvm, after, sizeof(after)), n);
	assert_memory_equal(before, after, n);
	unlock(c);

	assert_int_equal(mk_meter_set_indicia(c, "0401234567", "US", 1700000000), MK_OK);
	n = slurp(f->nvm, before, sizeof(before));
	/* once registered to a country it never goes back, nor to another */
	assert_int_equal(mk_meter_set_indicia(c, "0401234567", "US", 1700000000), MK_ERR_STATE);
	assert_int_equal(mk_meter_set_indicia(c, "X1", "GB", 1700000005), MK_ERR_STATE);
	assert_int_equal(slurp(f->nvm, after, sizeof(after)), n);
	assert_memory_equal(before, after, n);
	assert_int_equal(mk_meter_get_info(c, &info), MK_OK);
	assert_int_equal(info.state, MK_METER_REGISTERED);
	assert_string_equal(info.country, "US");
	mk_meter_disconnect(c);
}

/* The mailing date (issue 12): the meter itself refuses a day before the
 * day of its registration and one more than max_ahead days (default 1)
 * after its clock, the request's time; a refusal leaves the NVM byte for
 * byte as it was, and the next piece follows the last one franked. */
static void test_frank_dates(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = fresh_meter(f);
	struct mk_meter_frank fr;
	struct mk_indicium ind;
	uint8_t before[NVM_FILE_MAX], after[NVM_FILE_MAX];
	const int64_t reg = 1700000000; /* day 19675 */
	const uint32_t today = 19675 + 10;
	size_t n;

	install(c, "EARTH", 42, key_a);
	install(c, "VE", 7, key_b);
	unlock(c);
	assert_int_equal(mk_meter_set_indicia(c, "0401234567", "US", reg), MK_OK);
	assert_int_equal(mk_meter_credit(c, 1000), MK_OK);
	mk_meter_set_time(c, (int64_t)today * 86400 + 3600);
	memset(&fr, 0, sizeof(fr));
	snprintf(fr.vendor, sizeof(fr.vendor), "VE");
	snprintf(fr.postal, sizeof(fr.postal), "EARTH");
	fr.vendor_token_len = fr.postal_token_len = 8;
	fr.postage = 10;
	snprintf(fr.origin, sizeof(fr.origin), "12345");

	n = slurp(f->nvm, before, sizeof(before));
	fr.day = 19674; /* the day before the registration */
	assert_int_equal(mk_meter_frank(c, &fr, &ind), MK_ERR_METER_DATE);
	fr.day = today + 2; /* beyond the default of 1 day */
	assert_int_equal(mk_meter_frank(c, &fr, &ind), MK_ERR_METER_DATE);
	fr.day = today + 1;
	fr.has_max_ahead = true; /* 0: today at the latest */
	assert_int_equal(mk_meter_frank(c, &fr, &ind), MK_ERR_METER_DATE);
	fr.max_ahead = 5;
	fr.day = today + 6;
	assert_int_equal(mk_meter_frank(c, &fr, &ind), MK_ERR_METER_DATE);
	assert_int_equal(slurp(f->nvm, after, sizeof(after)), n);
	assert_memory_equal(before, after, n);

	fr.day = today + 5;
	assert_int_equal(mk_meter_frank(c, &fr, &ind), MK_OK);
	assert_int_equal(ind.piece_count, 1);
	fr.has_max_ahead = false;
	fr.max_ahead = 0;
	fr.day = 19675; /* the registration day */
	assert_int_equal(mk_meter_frank(c, &fr, &ind), MK_OK);
	fr.day = today + 1;
	assert_int_equal(mk_meter_frank(c, &fr, &ind), MK_OK);
	assert_int_equal(ind.piece_count, 3);
	assert_int_equal(ind.descending, 970);
	mk_meter_disconnect(c);
}

/* MR1 output: the MAC verifies with the domain's key only, over exactly the
 * reported fields. */
static void test_report(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = fresh_meter(f);
	struct mk_meter_report rep, bad;
	uint8_t mac[MK_METER_MAC_LEN];
	struct mk_buf *tbs = mk_buf_new(1024);

	install(c, "EARTH", 42, key_a);
	install(c, "VE", 7, key_b);
	assert_int_equal(mk_meter_get_report(c, "EARTH", &rep), MK_ERR_STATE); /* not yet */
	unlock(c);
	assert_int_equal(mk_meter_get_report(c, "EARTH", &rep), MK_ERR_STATE); /* still not */
	assert_int_equal(mk_meter_set_indicia(c, "0401234567", "US", 1700000000), MK_OK);
	assert_int_equal(mk_meter_get_report(c, "EARTH", &rep), MK_OK);
	assert_string_equal(rep.domain, "EARTH");
	assert_int_equal(rep.key_id, 42);
	assert_string_equal(rep.product_code, "EA1234");
	assert_string_equal(rep.mfg_seq, "MSN000017");
	assert_string_equal(rep.indicia_serial, "0401234567");
	assert_string_equal(rep.country, "US");
	assert_int_equal(rep.date, 1700000000);
	assert_int_equal(mk_meter_report_encode_tbs(&rep, tbs), MK_OK);
	assert_int_equal(mk_cmac_once(key_a, 16, mk_buf_data(tbs), mk_buf_len(tbs), mac, 16), MK_OK);
	assert_true(mk_ct_equal(mac, rep.mac, sizeof(mac)));
	/* not with another key */
	assert_int_equal(mk_cmac_once(key_b, 16, mk_buf_data(tbs), mk_buf_len(tbs), mac, 16), MK_OK);
	assert_false(mk_ct_equal(mac, rep.mac, sizeof(mac)));
	/* not over another indicia number */
	bad = rep;
	bad.indicia_serial[0] = '9';
	mk_buf_reset(tbs);
	assert_int_equal(mk_meter_report_encode_tbs(&bad, tbs), MK_OK);
	assert_int_equal(mk_cmac_once(key_a, 16, mk_buf_data(tbs), mk_buf_len(tbs), mac, 16), MK_OK);
	assert_false(mk_ct_equal(mac, rep.mac, sizeof(mac)));

	/* the VE report is MACed with the VE key */
	assert_int_equal(mk_meter_get_report(c, "VE", &rep), MK_OK);
	assert_int_equal(rep.key_id, 7);
	mk_buf_reset(tbs);
	assert_int_equal(mk_meter_report_encode_tbs(&rep, tbs), MK_OK);
	assert_int_equal(mk_cmac_once(key_b, 16, mk_buf_data(tbs), mk_buf_len(tbs), mac, 16), MK_OK);
	assert_true(mk_ct_equal(mac, rep.mac, sizeof(mac)));

	assert_int_equal(mk_meter_get_report(c, "USPS", &rep), MK_RC_DOMAIN_UNKNOWN);
	assert_int_equal(mk_meter_get_report(c, "usps", &rep), MK_ERR_INVALID_ARG);
	mk_meter_disconnect(c);
	mk_buf_free(tbs);
}

/* The TBS encoder refuses what a report cannot hold, and writes nothing. */
static void test_report_tbs_invalid(void **state)
{
	struct mk_meter_report r = { "EARTH", 42, "EA1234", "MSN000017", "0401234567", "US",
		                     1700000000, { 0 } };
	struct mk_meter_report bad;
	struct mk_buf *b = mk_buf_new(1024);

	(void)state;
	assert_int_equal(mk_meter_report_encode_tbs(&r, b), MK_OK);
	mk_buf_reset(b);
	bad = r;
	bad.key_id = 0;
	assert_int_equal(mk_meter_report_encode_tbs(&bad, b), MK_ERR_INVALID_ARG);
	bad = r;
	bad.indicia_serial[0] = '\0';
	assert_int_equal(mk_meter_report_encode_tbs(&bad, b), MK_ERR_INVALID_ARG);
	bad = r;
	bad.country[0] = 'u';
	assert_int_equal(mk_meter_report_encode_tbs(&bad, b), MK_ERR_INVALID_ARG);
	bad = r;
	bad.date = 0;
	assert_int_equal(mk_meter_report_encode_tbs(&bad, b), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_buf_len(b), 0);
	mk_buf_free(b);
}

/* A retired meter refuses everything that changes it or uses a key, and its
 * NVM no longer holds the key bytes. */
static void test_retire(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = fresh_meter(f);
	struct mk_meter_info info;
	struct mk_meter_report rep;
	char msn[MK_IDENT_MAX + 1];
	uint8_t tok[MK_TEST_TOKENS_LEN], before[NVM_FILE_MAX], after[NVM_FILE_MAX];
	size_t n;

	install(c, "EARTH", 42, key_a);
	unlock(c);
	assert_int_equal(mk_meter_set_indicia(c, "0401234567", "US", 1700000000), MK_OK);
	n = slurp(f->nvm, before, sizeof(before));
	assert_true(contains(before, n, key_a, sizeof(key_a)));
	assert_int_equal(mk_meter_retire(c), MK_OK);
	n = slurp(f->nvm, before, sizeof(before));
	assert_false(contains(before, n, key_a, sizeof(key_a)));

	assert_int_equal(mk_meter_install_key(c, "VE", 7, key_b, msn, tok), MK_ERR_STATE);
	assert_int_equal(mk_meter_set_indicia(c, "0401234567", "US", 1700000000), MK_ERR_STATE);
	assert_int_equal(mk_meter_get_report(c, "EARTH", &rep), MK_ERR_STATE);
	assert_int_equal(mk_meter_retire(c), MK_ERR_STATE);
	assert_int_equal(slurp(f->nvm, after, sizeof(after)), n);
	assert_memory_equal(before, after, n);
	assert_int_equal(mk_meter_get_info(c, &info), MK_OK);
	assert_int_equal(info.state, MK_METER_RETIRED);
	assert_int_equal(info.nkeys, 1);
	assert_int_equal(info.keys[0].key_id, 42);
	mk_meter_disconnect(c);

	/* still retired after a restart */
	assert_int_equal(mk_meter_connect(f->nvm, &c), MK_OK);
	assert_int_equal(mk_meter_install_key(c, "VE", 7, key_b, msn, tok), MK_ERR_STATE);
	mk_meter_disconnect(c);
}

/* A manufactured meter can be retired too (scrapped on the line). */
static void test_retire_unregistered(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = fresh_meter(f);
	struct mk_meter_info info;

	install(c, "EARTH", 42, key_a);
	assert_int_equal(mk_meter_retire(c), MK_OK);
	mk_meter_disconnect(c);
	assert_int_equal(mk_meter_nvm_info(f->nvm, &info), MK_OK);
	assert_int_equal(info.state, MK_METER_RETIRED);
	assert_string_equal(info.indicia_serial, "");
}

/* Any changed byte, and any truncation, of the NVM is refused whole; a meter
 * started on it serves nothing. */
static void test_nvm_corrupt(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = fresh_meter(f);
	struct mk_meter_info info;
	static struct mk_meter_nvm s;
	uint8_t good[NVM_FILE_MAX], p[NVM_FILE_MAX];
	enum mk_err e;
	size_t n;

	install(c, "EARTH", 42, key_a);
	unlock(c);
	assert_int_equal(mk_meter_set_indicia(c, "0401234567", "US", 1700000000), MK_OK);
	mk_meter_disconnect(c);
	n = slurp(f->nvm, good, sizeof(good));
	/* Every byte and every length through the decoder; through the file
	 * (mk_meter_nvm_info) the frame's bytes and every 7th of the rest: with
	 * the device PKI's certificates the NVM is ~2.5 kB, and a file write
	 * per case would make this the slowest test of the suite. */
	for (size_t i = 0; i < n; i++) {
		int by_file = i < MK_METER_NVM_OVERHEAD - 4 || i >= n - 4 || i % 7 == 0;

		for (unsigned bit = 0; bit < 8; bit += 3) {
			memcpy(p, good, n);
			p[i] ^= (uint8_t)(1u << bit);
			assert_int_equal(mk_meter_nvm_decode(p, n, &s), MK_ERR_NVM_CORRUPT);
			assert_int_equal(s.info.nkeys, 0);
			if (!by_file)
				continue;
			spit(f->nvm, p, n);
			assert_int_equal(mk_meter_nvm_info(f->nvm, &info), MK_ERR_NVM_CORRUPT);
			assert_int_equal(info.nkeys, 0);
			assert_string_equal(info.product_code, "");
		}
	}
	for (size_t k = 0; k < n; k++) {
		assert_int_equal(mk_meter_nvm_decode(good, k, &s), MK_ERR_NVM_CORRUPT);
		if (k % 7 != 0)
			continue;
		spit(f->nvm, good, k);
		assert_int_equal(mk_meter_nvm_info(f->nvm, &info), MK_ERR_NVM_CORRUPT);
	}
	/* one byte too many */
	memcpy(p, good, n);
	p[n] = 0;
	spit(f->nvm, p, n + 1);
	assert_int_equal(mk_meter_nvm_info(f->nvm, &info), MK_ERR_NVM_CORRUPT);
	/* a file larger than any NVM is refused without being read whole */
	memset(p, 0, sizeof(p));
	spit(f->nvm, p, MK_METER_NVM_MAX + 1);
	assert_int_equal(mk_meter_nvm_info(f->nvm, &info), MK_ERR_NVM_CORRUPT);

	/* a meter on a damaged NVM answers every command with that fault and
	 * changes nothing; one whose NVM is gone says so */
	memcpy(p, good, n);
	p[n / 2] ^= 0x40;
	spit(f->nvm, p, n);
	assert_int_equal(mk_meter_connect(f->nvm, &c), MK_OK);
	e = mk_meter_get_info(c, &info);
	assert_int_equal(e, MK_ERR_NVM_CORRUPT);
	assert_int_equal(mk_meter_retire(c), MK_ERR_NVM_CORRUPT);
	mk_meter_disconnect(c);
	{
		uint8_t after[MK_METER_NVM_MAX + 1];
		FILE *fp = fopen(f->nvm, "rb");

		assert_non_null(fp);
		assert_int_equal(fread(after, 1, sizeof(after), fp), n);
		fclose(fp);
		assert_memory_equal(after, p, n);
	}
	assert_int_equal(unlink(f->nvm), 0);
	assert_int_equal(mk_meter_connect(f->nvm, &c), MK_OK);
	assert_int_equal(mk_meter_get_info(c, &info), MK_ERR_NOT_FOUND);
	mk_meter_disconnect(c);

	/* the good bytes work again */
	spit(f->nvm, good, n);
	assert_int_equal(mk_meter_nvm_info(f->nvm, &info), MK_OK);
	assert_int_equal(info.state, MK_METER_REGISTERED);
}

/* A change whose NVM write fails is answered MK_ERR_IO and leaves the meter as
 * it was (the directory is removed under the running meter: even root cannot
 * create the temporary file then). */
static void test_write_failure(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = fresh_meter(f);
	struct mk_meter_info info;
	char msn[MK_IDENT_MAX + 1], cmd[160];
	uint8_t tok[MK_TEST_TOKENS_LEN];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(mk_meter_install_key(c, "EARTH", 42, key_a, msn, tok), MK_ERR_IO);
	assert_int_equal(mk_meter_get_info(c, &info), MK_OK);
	assert_int_equal(info.nkeys, 0);
	assert_int_equal(info.state, MK_METER_MANUFACTURED);
	assert_int_equal(info.pki, MK_METER_PKI_LOCKED);
	assert_int_equal(mk_meter_retire(c), MK_ERR_IO);
	assert_int_equal(mk_meter_get_info(c, &info), MK_OK);
	assert_int_equal(info.state, MK_METER_MANUFACTURED);
	mk_meter_disconnect(c);
}

/* Two meters at once: closing the first ends its process even though the
 * second child inherited a copy of the first connection's descriptor, and the
 * second goes on. */
static void test_two_meters(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *a, *b = NULL;
	struct mk_meter_info info;
	char second[160];

	a = fresh_meter(f);
	snprintf(second, sizeof(second), "%s/second.nvm", f->dir);
	assert_int_equal(mk_meter_nvm_create(second, "EA5678", "MSN000018"), MK_OK);
	assert_int_equal(mk_meter_connect(second, &b), MK_OK);
	pki_manufacture(&world, b);
	install(a, "EARTH", 42, key_a);
	mk_meter_disconnect(a); /* returns only once the first meter has exited */
	install(b, "EARTH", 43, key_b);
	assert_int_equal(mk_meter_get_info(b, &info), MK_OK);
	assert_string_equal(info.mfg_seq, "MSN000018");
	assert_int_equal(info.keys[0].key_id, 43);
	mk_meter_disconnect(b);
	assert_int_equal(mk_meter_nvm_info(f->nvm, &info), MK_OK);
	assert_int_equal(info.keys[0].key_id, 42);
}

/* ---- Raw requests on the link ------------------------------------------------------- */

struct raw {
	int fd;
	pid_t pid;
	struct mk_link link;
};

/* A meter serving one end of a socketpair in a child; the test holds the other. */
static void raw_start(struct fx *f, struct raw *r)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	r->pid = fork();
	assert_true(r->pid >= 0);
	if (r->pid == 0) {
		close(sv[0]);
		_exit(mk_meter_serve(f->nvm, sv[1], sv[1]) == MK_OK ? 0 : 1);
	}
	close(sv[1]);
	r->fd = sv[0];
	mk_link_init(&r->link, r->fd, r->fd);
	r->link.per_byte_us = 10;
}

/* Closes the link and returns the meter's exit status. */
static int raw_stop(struct raw *r)
{
	int st;

	close(r->fd);
	assert_int_equal(waitpid(r->pid, &st, 0), r->pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* Sends payload in a frame of class cls and decodes the answer into *a (its
 * result copied to result, if any). */
static void raw_ask(struct raw *r, uint8_t cls, const uint8_t *payload, size_t n,
                    struct mk_msg_response *a, struct mk_buf *ans)
{
	uint8_t rcls;

	mk_buf_reset(ans);
	assert_int_equal(mk_link_send(&r->link, cls, payload, n), MK_OK);
	assert_int_equal(mk_link_recv(&r->link, 10000, &rcls, ans), MK_OK);
	assert_int_equal(rcls, MK_FRAME_METER_RESPONSE);
	assert_int_equal(mk_msg_response_decode(mk_buf_data(ans), mk_buf_len(ans), a), MK_OK);
}

/* Encodes a request with parameters params[0..pn). */
static size_t req(uint16_t cmd, const char *domain, const uint8_t *params, size_t pn,
                  uint8_t *out, size_t max)
{
	struct mk_msg_request q = { .command = cmd, .time = 1700000000, .params = params,
		                    .params_len = pn };
	struct mk_buf b;
	size_t n;

	snprintf(q.domain, sizeof(q.domain), "%s", domain);
	mk_buf_init_fixed(&b, out, max);
	assert_int_equal(mk_msg_request_encode(&q, &b), MK_OK);
	n = mk_buf_len(&b);
	return n;
}

/* Malformed requests get level-2 answers and the meter goes on serving. */
static void test_malformed_requests(void **state)
{
	struct fx *f = *state;
	struct mk_msg_response a;
	struct mk_buf *ans = mk_buf_new(MK_FRAME_MAX_PAYLOAD);
	struct mk_meter_conn *c = NULL;
	struct mk_meter_info info;
	struct raw r;
	uint8_t q[256], before[NVM_FILE_MAX], after[NVM_FILE_MAX];
	static const uint8_t garbage[] = { 0xff, 0x00, 0x13, 0x37 };
	static const uint8_t key[MK_MASTER_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
	/* install-key's parameters: key ID 5 (p_ok), key ID 0 (p_zero), and by
	 * hand what the schema's encoder would not write: a key one byte short
	 * (p_short), and p_ok with an empty element after its last field
	 * (p_extra) */
	struct mk_meter_install_key_req ik = { .key_id = 5, .key = key, .key_len = sizeof(key) };
	struct mk_buf *p_ok = mk_buf_new(64), *p_zero = mk_buf_new(64), *p_short = mk_buf_new(64),
	              *p_extra = mk_buf_new(64), *p_ind = mk_buf_new(64);
	struct mk_tlv_writer w;
	size_t n, fn;

	assert_non_null(p_ok);
	assert_non_null(p_zero);
	assert_non_null(p_short);
	assert_non_null(p_extra);
	assert_non_null(p_ind);
	assert_int_equal(mk_meter_install_key_req_encode(&ik, p_ok), MK_OK);
	ik.key_id = 0;
	assert_int_equal(mk_meter_install_key_req_encode(&ik, p_zero), MK_OK);
	mk_tlv_writer_init(&w, p_short);
	assert_int_equal(mk_tlv_put_u64(&w, mk_meter_install_key_req_tag_key_id, 5), MK_OK);
	assert_int_equal(mk_tlv_put_bytes(&w, mk_meter_install_key_req_tag_key, key, sizeof(key) - 1), MK_OK);
	assert_int_equal(mk_buf_put_bytes(p_extra, mk_buf_data(p_ok), mk_buf_len(p_ok)), MK_OK);
	mk_tlv_writer_init(&w, p_extra);
	assert_int_equal(mk_tlv_put_bytes(&w, mk_meter_install_key_req_tag_key + 1, NULL, 0), MK_OK);

	/* a manufactured meter (in transport lock: it takes keys) */
	c = fresh_meter(f);
	mk_meter_disconnect(c);
	c = NULL;
	fn = slurp(f->nvm, before, sizeof(before));
	raw_start(f, &r);

	raw_ask(&r, MK_FRAME_METER_COMMAND, garbage, sizeof(garbage), &a, ans);
	assert_int_equal(a.level, 2);
	assert_int_equal(mk_err_level((enum mk_err)a.code), MK_LEVEL_COMMAND);

	raw_ask(&r, MK_FRAME_METER_COMMAND, NULL, 0, &a, ans);
	assert_int_equal(a.level, 2);
	assert_int_equal(a.code, MK_ERR_TLV_MISSING);

	n = req(99, "", NULL, 0, q, sizeof(q));
	raw_ask(&r, MK_FRAME_METER_COMMAND, q, n, &a, ans);
	assert_int_equal(a.level, 2);
	assert_int_equal(a.code, MK_ERR_CMD_UNKNOWN);
	assert_int_equal(a.command, 99);

	/* a frame of a class the meter does not take */
	n = req(MK_METER_CMD_GET_INFO, "", NULL, 0, q, sizeof(q));
	raw_ask(&r, MK_FRAME_COMMAND, q, n, &a, ans);
	assert_int_equal(a.level, 2);
	assert_int_equal(a.code, MK_ERR_CMD_UNKNOWN);
	assert_int_equal(a.command, 0);

	/* install-key: no domain; a short key; key ID 0; a parameter too many */
	n = req(MK_METER_CMD_INSTALL_KEY, "", mk_buf_data(p_ok), mk_buf_len(p_ok), q, sizeof(q));
	raw_ask(&r, MK_FRAME_METER_COMMAND, q, n, &a, ans);
	assert_int_equal(a.level, 2);
	assert_int_equal(a.code, MK_ERR_CMD_PARAM_COUNT);
	n = req(MK_METER_CMD_INSTALL_KEY, "VE", mk_buf_data(p_short), mk_buf_len(p_short), q, sizeof(q));
	raw_ask(&r, MK_FRAME_METER_COMMAND, q, n, &a, ans);
	assert_int_equal(a.level, 2);
	assert_int_equal(a.code, MK_ERR_CMD_PARAM_SYNTAX);
	n = req(MK_METER_CMD_INSTALL_KEY, "VE", mk_buf_data(p_zero), mk_buf_len(p_zero), q, sizeof(q));
	raw_ask(&r, MK_FRAME_METER_COMMAND, q, n, &a, ans);
	assert_int_equal(a.level, 2);
	assert_int_equal(a.code, MK_ERR_CMD_PARAM_SYNTAX);
	n = req(MK_METER_CMD_INSTALL_KEY, "VE", mk_buf_data(p_extra), mk_buf_len(p_extra), q, sizeof(q));
	raw_ask(&r, MK_FRAME_METER_COMMAND, q, n, &a, ans);
	assert_int_equal(a.level, 2);
	assert_int_equal(a.code, MK_ERR_CMD_PARAM_COUNT);
	/* get-info names no domain */
	n = req(MK_METER_CMD_GET_INFO, "VE", NULL, 0, q, sizeof(q));
	raw_ask(&r, MK_FRAME_METER_COMMAND, q, n, &a, ans);
	assert_int_equal(a.level, 2);
	/* set-indicia: a country that is not a domain ID; date 0 */
	{
		struct mk_meter_set_indicia_req lower = { .indicia_serial = "X1", .country = "us", .date = 1700000000 },
		                                nodate = { .indicia_serial = "X1", .country = "US", .date = 0 };

		mk_buf_reset(p_ind);
		assert_int_equal(mk_meter_set_indicia_req_encode(&lower, p_ind), MK_OK);
		n = req(MK_METER_CMD_SET_INDICIA, "", mk_buf_data(p_ind), mk_buf_len(p_ind), q, sizeof(q));
		raw_ask(&r, MK_FRAME_METER_COMMAND, q, n, &a, ans);
		assert_int_equal(a.code, MK_ERR_CMD_PARAM_SYNTAX);
		mk_buf_reset(p_ind);
		assert_int_equal(mk_meter_set_indicia_req_encode(&nodate, p_ind), MK_OK);
		n = req(MK_METER_CMD_SET_INDICIA, "", mk_buf_data(p_ind), mk_buf_len(p_ind), q, sizeof(q));
		raw_ask(&r, MK_FRAME_METER_COMMAND, q, n, &a, ans);
		assert_int_equal(a.code, MK_ERR_CMD_PARAM_SYNTAX);
	}
	/* none of it changed the NVM */
	assert_int_equal(slurp(f->nvm, after, sizeof(after)), fn);
	assert_memory_equal(before, after, fn);

	/* and the meter still serves, raw and through the client */
	n = req(MK_METER_CMD_INSTALL_KEY, "VE", mk_buf_data(p_ok), mk_buf_len(p_ok), q, sizeof(q));
	raw_ask(&r, MK_FRAME_METER_COMMAND, q, n, &a, ans);
	assert_int_equal(a.level, 0);
	assert_int_equal(a.code, MK_OK);
	assert_int_equal(mk_meter_conn_from_fds(r.fd, r.fd, &c), MK_OK);
	assert_int_equal(mk_meter_get_info(c, &info), MK_OK);
	assert_int_equal(info.nkeys, 1);
	assert_int_equal(info.keys[0].key_id, 5);
	mk_meter_disconnect(c); /* leaves the descriptors to us */
	assert_int_equal(raw_stop(&r), 0);
	mk_buf_free(ans);
	mk_buf_free(p_ok);
	mk_buf_free(p_zero);
	mk_buf_free(p_short);
	mk_buf_free(p_extra);
	mk_buf_free(p_ind);
}

/* ---- The document's vectors ----------------------------------------------------------- */

/* docs/formats.md §7, produced by an independent encoder: decoded to the
 * values the text gives, re-encoded to the same bytes, and produced by a
 * meter that is sent the document's request. */
static void test_document_vectors(void **state)
{
	struct fx *f = *state;
	uint8_t v[512], w[512], tok[MK_TEST_TOKENS_LEN], mac[MK_METER_MAC_LEN], img[NVM_FILE_MAX];
	struct mk_meter_conn *c;
	char err[VEC_MAX_ERR], names[16][VEC_MAX_NAME];
	struct mk_meter_nvm s;
	struct mk_msg_request q;
	struct mk_msg_response a;
	struct mk_meter_install_key_res ir;
	struct mk_buf *b = mk_buf_new(1024);
	struct mk_meter *m = NULL;
	struct mk_meter_report rep = { "EARTH", 42, "EA1234", "MSN000017", "0401234567", "US",
		                       1700000000, { 0 } };
	size_t n, k;
	int count, rejects = 0;

	/* the NVM images */
	assert_int_equal(vec_get("meter-nvm-manufactured", v, sizeof(v), &n, err), 0);
	assert_int_equal(mk_meter_nvm_decode(v, n, &s), MK_OK);
	assert_string_equal(s.info.product_code, "EA1234");
	assert_string_equal(s.info.mfg_seq, "MSN000017");
	assert_int_equal(s.info.state, MK_METER_MANUFACTURED);
	assert_int_equal(s.info.nkeys, 1);
	assert_string_equal(s.info.keys[0].domain, "EARTH");
	assert_int_equal(s.info.keys[0].key_id, 42);
	assert_memory_equal(s.keys[0], key_a, sizeof(key_a));
	assert_int_equal(mk_meter_nvm_encode(&s, b), MK_OK);
	assert_int_equal(mk_buf_len(b), n);
	assert_memory_equal(mk_buf_data(b), v, n);

	assert_int_equal(vec_get("meter-nvm-registered", v, sizeof(v), &n, err), 0);
	assert_int_equal(mk_meter_nvm_decode(v, n, &s), MK_OK);
	assert_int_equal(s.info.state, MK_METER_REGISTERED);
	assert_string_equal(s.info.indicia_serial, "0401234567");
	assert_string_equal(s.info.country, "US");
	assert_int_equal(s.info.registered, 1700000000);
	mk_buf_reset(b);
	assert_int_equal(mk_meter_nvm_encode(&s, b), MK_OK);
	assert_int_equal(mk_buf_len(b), n);
	assert_memory_equal(mk_buf_data(b), v, n);

	assert_int_equal(vec_get("meter-nvm-retired", v, sizeof(v), &n, err), 0);
	assert_int_equal(mk_meter_nvm_decode(v, n, &s), MK_OK);
	assert_int_equal(s.info.state, MK_METER_RETIRED);
	assert_int_equal(s.info.nkeys, 1);
	memset(w, 0, sizeof(key_a));
	assert_memory_equal(s.keys[0], w, sizeof(key_a));
	mk_buf_reset(b);
	assert_int_equal(mk_meter_nvm_encode(&s, b), MK_OK);
	assert_int_equal(mk_buf_len(b), n);
	assert_memory_equal(mk_buf_data(b), v, n);

	/* the install request, and a meter's two answers to it */
	assert_int_equal(vec_get("meter-install-request", v, sizeof(v), &n, err), 0);
	assert_int_equal(mk_msg_request_decode(v, n, &q), MK_OK);
	assert_int_equal(q.command, MK_METER_CMD_INSTALL_KEY);
	assert_string_equal(q.domain, "EARTH");
	assert_int_equal(q.time, 1700000000);
	/* (keys go into a manufactured meter, in transport lock) */
	c = fresh_meter(f);
	mk_meter_disconnect(c);
	assert_int_equal(mk_meter_new(f->nvm, NULL, &m), MK_OK);
	mk_buf_reset(b);
	assert_int_equal(mk_meter_handle(m, v, n, b), MK_OK);
	assert_int_equal(vec_get("meter-install-response", w, sizeof(w), &k, err), 0);
	assert_int_equal(mk_buf_len(b), k);
	assert_memory_equal(mk_buf_data(b), w, k);
	/* the NVM it wrote is the document's, once the device PKI part (the
	 * state body's fields pki .. challenge, after the key slots) is taken out */
	k = slurp(f->nvm, img, sizeof(img));
	assert_int_equal(mk_meter_nvm_decode(img, k, &s), MK_OK);
	assert_int_equal(s.info.pki, MK_METER_PKI_LOCKED);
	assert_int_not_equal(s.pki.transport.len, 0);
	memset(&s.pki, 0, sizeof(s.pki));
	s.info.pki = MK_METER_PKI_BLANK;
	mk_buf_reset(b);
	assert_int_equal(mk_meter_nvm_encode(&s, b), MK_OK);
	assert_int_equal(vec_get("meter-nvm-manufactured", v + 256, 256, &n, err), 0);
	assert_int_equal(mk_buf_len(b), n);
	assert_memory_equal(mk_buf_data(b), v + 256, n);
	assert_int_equal(vec_get("meter-install-request", v, sizeof(v), &n, err), 0);
	mk_buf_reset(b);
	assert_int_equal(mk_meter_handle(m, v, n, b), MK_OK);
	assert_int_equal(vec_get("meter-install-refused", w, sizeof(w), &k, err), 0);
	assert_int_equal(mk_buf_len(b), k);
	assert_memory_equal(mk_buf_data(b), w, k);
	mk_meter_free(m);
	mk_meter_free(NULL);

	/* the tokens in the answer are meterkey's too */
	assert_int_equal(mk_test_tokens(key_a, sizeof(key_a), tok), MK_OK);
	assert_int_equal(vec_get("meter-install-response", w, sizeof(w), &k, err), 0);
	assert_int_equal(mk_msg_response_decode(w, k, &a), MK_OK);
	assert_int_equal(mk_meter_install_key_res_decode(a.result, a.result_len, &ir), MK_OK);
	assert_int_equal(ir.tokens_len, sizeof(tok));
	assert_memory_equal(ir.tokens, tok, sizeof(tok));

	/* the report: TBS bytes and MAC */
	assert_int_equal(vec_get("meter-report-tbs", v, sizeof(v), &n, err), 0);
	mk_buf_reset(b);
	assert_int_equal(mk_meter_report_encode_tbs(&rep, b), MK_OK);
	assert_int_equal(mk_buf_len(b), n);
	assert_memory_equal(mk_buf_data(b), v, n);
	assert_int_equal(mk_cmac_once(key_a, 16, v, n, mac, sizeof(mac)), MK_OK);
	assert_int_equal(vec_get("meter-report-mac", w, sizeof(w), &k, err), 0);
	assert_int_equal(k, sizeof(mac));
	assert_memory_equal(mac, w, k);

	/* every refused vector fails as it says; none is left unchecked */
	count = vec_names("meter-", names, 16);
	assert_int_equal(count, 12); /* meter-report-answer: test_msg.c */
	for (k = 0; k < (size_t)count; k++) {
		assert_int_equal(vec_get(names[k], v, sizeof(v), &n, err), 0);
		if (err[0] == '\0')
			continue;
		assert_int_equal(strncmp(names[k], "meter-nvm-", 10), 0);
		assert_string_equal(mk_err_name(mk_meter_nvm_decode(v, n, &s)), err);
		rejects++;
	}
	assert_int_equal(rejects, 3);
	OPENSSL_cleanse(&s, sizeof(s));
	mk_buf_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_names),
		cmocka_unit_test_setup_teardown(test_nvm_create, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_install_key, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_persists, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_set_indicia, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_frank_dates, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_report, fx_setup, fx_teardown),
		cmocka_unit_test(test_report_tbs_invalid),
		cmocka_unit_test_setup_teardown(test_retire, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_retire_unregistered, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_nvm_corrupt, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_write_failure, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_two_meters, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_malformed_requests, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_document_vectors, fx_setup, fx_teardown),
	};

	(void)signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
