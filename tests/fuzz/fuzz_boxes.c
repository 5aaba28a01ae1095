/*
 * libFuzzer target for the boxes (src/box/box.c, oak.c, steel.c, brass.c):
 * arbitrary bytes as a request to an initialised Oak, Steel and Brass box
 * serving domain VE, which must answer a response that decodes (a refusal
 * is an answer, never a crash); and arbitrary bytes to mk_signed_split and
 * mk_key_record_decode. The first input byte picks the target.
 *
 * The home (a Manufacturing Box, domain VE, the three boxes) is built once
 * in LLVMFuzzerInitialize through the KMS API, in a temporary directory
 * removed at exit. Random input does not get past the signature checks, and
 * a box seals its state only on success, so an input writes nothing.
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meterkey/boxes.h"
#include "meterkey/kms.h"
#include "meterkey/shares.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char home[64];
static struct mk_box *boxes[3];
static struct mk_buf *resp;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void cleanup(void)
{
	for (int i = 0; i < 3; i++)
		mk_box_free(boxes[i]);
	mk_buf_free(resp);
	if (home[0] != '\0')
		(void)nftw(home, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void must(enum mk_err e, const char *what)
{
	if (e != MK_OK) {
		fprintf(stderr, "fuzz_boxes: %s: %s\n", what, mk_strerror(e));
		abort();
	}
}

/* Opens box id of the home with its two share files. */
static struct mk_box *open_box(const char *id)
{
	char path[256], store[128], shares[128];
	struct mk_share *sh[2] = { NULL, NULL };
	struct mk_box *b = NULL;

	snprintf(store, sizeof(store), "%s/boxes", home);
	snprintf(shares, sizeof(shares), "%s/shares", home);
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s.%d.share", shares, id, i + 1);
		must(mk_share_read_file(path, &sh[i]), "share file");
	}
	must(mk_box_open(store, shares, id, (const struct mk_share *const *)sh, 2, &b), "box open");
	mk_share_free_array(sh, 2);
	return b;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const enum mk_box_type types[3] = { MK_BOX_OAK, MK_BOX_STEEL, MK_BOX_BRASS };
	const char *domains[1] = { "VE" }, *countries[1] = { "US" };
	struct mk_kms_opts o = { 0 };
	struct mk_kms *k = NULL;
	char id[MK_BOX_ID_LEN + 1];

	(void)argc;
	(void)argv;
	snprintf(home, sizeof(home), "/tmp/mk-fuzz-boxes-XXXXXX");
	if (mkdtemp(home) == NULL)
		abort();
	atexit(cleanup);
	o.home = home;
	o.time = 1700000000;
	o.create = 1;
	must(mk_kms_open(&o, &k), "kms open");
	must(mk_kms_init(k, 0, 0, id), "init");
	must(mk_kms_domain_create(k, "VE", countries, 1), "domain");
	for (int i = 0; i < 3; i++) {
		must(mk_kms_box_init(k, types[i], domains, 1, 0, 0, id), "box init");
		boxes[i] = open_box(id);
	}
	mk_kms_close(k);
	if ((resp = mk_buf_new(2 * MK_MSG_MAX)) == NULL)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t which;

	if (size < 1)
		return 0;
	which = data[0] % 5;
	data++;
	size--;
	if (which < 3) {
		struct mk_msg_response a;

		mk_buf_reset(resp);
		if (mk_box_call(boxes[which], data, size, resp) != MK_OK ||
		    mk_msg_response_decode(mk_buf_data(resp), mk_buf_len(resp), &a) != MK_OK)
			abort();
		/* a box that answered with a code answered at that code's level */
		if ((a.code == MK_OK) != (a.level == 0))
			abort();
	} else if (which == 3) {
		const uint8_t *body, *sig;
		size_t bn;
		char signer[MK_BOX_ID_LEN + 1];

		if (mk_signed_split(data, size, &body, &bn, signer, &sig) == MK_OK &&
		    (body < data || body + bn > data + size || sig < data ||
		     sig + MK_ECDSA_SIG_LEN > data + size || strlen(signer) != MK_BOX_ID_LEN))
			abort();
	} else {
		static struct mk_key_record rec;
		struct mk_buf *b = mk_buf_new(16384);

		if (b == NULL)
			abort();
		/* what decodes re-encodes to the same bytes (one encoding) */
		if (mk_key_record_decode(data, size, &rec) == MK_OK &&
		    (mk_key_record_encode(&rec, b) != MK_OK || mk_buf_len(b) != size ||
		     memcmp(mk_buf_data(b), data, size) != 0))
			abort();
		mk_buf_free(b);
	}
	return 0;
}
