/*
 * The Tin Box (claims 5-8): remote verification with temporal token key
 * records only. It holds the domain's Tin confidentiality key (to unwrap
 * token keys) and the Brass authentication key (to check the records), and
 * never a master key. Verify is shared with Brass (verify.c).
 */
#include "box/box_int.h"

#define E MK_MSG_CMD_ENABLED
static const struct mk_msg_cmd cmds[] = {
	{ &mk_box_cmd_set_box_id, 0, box_cmd_set_id },
	{ &mk_box_cmd_add_domain, E, box_cmd_add_domain },
	{ &mk_box_cmd_status, E, box_cmd_status },
	{ &mk_box_cmd_generation, E, box_cmd_generation },
	{ &mk_box_cmd_identity, 0, box_cmd_identity },
	{ &mk_box_cmd_tin_verify, E | MK_MSG_CMD_DOMAIN, box_cmd_verify },
	{ &mk_box_cmd_head, E | MK_MSG_CMD_DOMAIN, box_cmd_head },
};

static const struct mk_msg_table table = {
	"Tin", cmds, MK_ARRAY_LEN(cmds), box_domain_known, box_enabled,
};

/* A Tin box keeps, while open, the keys Verify checked (verify.c). */
const struct box_kind box_kind_tin = { .type = MK_BOX_TIN, .table = &table, .state_free = box_vcache_free };
