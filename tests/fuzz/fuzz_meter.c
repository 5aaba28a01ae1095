/*
 * libFuzzer target for the meter (src/device/): the first byte picks what the
 * rest is fed to.
 *   0  the NVM decoder: what decodes must re-encode to exactly the same bytes
 *      (one encoding per state);
 *   1  a running meter (memory only, registered, two keys): every request is
 *      answered, with an answer that decodes; an accepted get-info answers a
 *      state body that decodes; the meter's state stays one that encodes;
 *   2  the get-info body decoder (no key bytes): decode, re-encode, same bytes;
 *   3  the get-report answer decoder: decode, re-encode, same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "device/device_int.h"
#include "meterkey/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The meter every request of kind 1 is run against. */
static void base_state(struct mk_meter_nvm *s)
{
	memset(s, 0, sizeof(*s));
	strcpy(s->info.product_code, "EA1234");
	strcpy(s->info.mfg_seq, "MSN000017");
	strcpy(s->info.indicia_serial, "0401234567");
	strcpy(s->info.country, "US");
	s->info.registered = 1700000000;
	s->info.state = MK_METER_REGISTERED;
	s->info.nkeys = 2;
	strcpy(s->info.keys[0].domain, "EARTH");
	s->info.keys[0].key_id = 42;
	strcpy(s->info.keys[1].domain, "VE");
	s->info.keys[1].key_id = 7;
	for (int i = 0; i < MK_MASTER_KEY_LEN; i++) {
		s->keys[0][i] = (uint8_t)i;
		s->keys[1][i] = (uint8_t)(0xf0 ^ i);
	}
}

static void same_or_abort(const struct mk_buf *b, const uint8_t *p, size_t n)
{
	if (mk_buf_len(b) != n || (n > 0 && memcmp(mk_buf_data(b), p, n) != 0))
		abort();
}

static void run_request(const uint8_t *p, size_t n, struct mk_buf *b)
{
	struct mk_meter_nvm s;
	struct mk_meter *m = NULL;
	struct mk_msg_response a;
	struct mk_tlv_reader r;

	base_state(&s);
	if (mk_meter_new(NULL, &s, &m) != MK_OK)
		abort();
	/* twice: the second sees the state the first left */
	for (int k = 0; k < 2; k++) {
		mk_buf_reset(b);
		if (mk_meter_handle(m, p, n, b) != MK_OK ||
		    mk_msg_response_decode(mk_buf_data(b), mk_buf_len(b), &a) != MK_OK)
			abort();
		if (a.code == MK_OK && a.command == MK_METER_CMD_GET_INFO) {
			mk_tlv_reader_init(&r, a.result, a.result_len);
			if (mk_meter_state_decode(&r, false, &s) != MK_OK)
				abort();
		}
	}
	mk_meter_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mk_meter_nvm s;
	struct mk_meter_get_report_res rep;
	struct mk_tlv_reader r;
	struct mk_tlv_writer w;
	struct mk_buf *b;
	uint8_t kind;

	if (size < 1)
		return 0;
	kind = data[0];
	data++;
	size--;
	if ((b = mk_buf_new(MK_MSG_MAX + 64)) == NULL)
		abort();
	switch (kind % 4) {
	case 0:
		if (mk_meter_nvm_decode(data, size, &s) == MK_OK) {
			if (mk_meter_nvm_encode(&s, b) != MK_OK)
				abort();
			same_or_abort(b, data, size);
		}
		break;
	case 1:
		run_request(data, size, b);
		break;
	case 2:
		mk_tlv_reader_init(&r, data, size);
		if (mk_meter_state_decode(&r, false, &s) == MK_OK) {
			mk_tlv_writer_init(&w, b);
			if (mk_meter_state_encode(&s, false, &w) != MK_OK)
				abort();
			same_or_abort(b, data, size);
		}
		break;
	default:
		/* get-report's answer: what decodes encodes back to the same bytes */
		if (mk_meter_get_report_res_decode(data, size, &rep) == MK_OK) {
			if (mk_meter_get_report_res_encode(&rep, b) != MK_OK)
				abort();
			same_or_abort(b, data, size);
		}
		break;
	}
	mk_buf_free(b);
	return 0;
}
