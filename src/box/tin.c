/*
 * The Tin Box (claims 5-8): remote verification with temporal token key
 * records only. It holds the domain's Tin confidentiality key (to unwrap
 * token keys) and the Brass authentication key (to check the records), and
 * never a master key. Verify is shared with Brass (verify.c).
 */
#include "box/box_int.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define E MK_BOX_CMD_ENABLED
static const struct mk_box_cmd cmds[] = {
	{ MK_CMD_SET_BOX_ID, "Set Secure Box ID", 0, box_p_signed, 1, box_cmd_set_id },
	{ MK_CMD_ADD_DOMAIN, "Add Domain", E, box_p_signed, 1, box_cmd_add_domain },
	{ MK_CMD_STATUS, "Status", E, NULL, 0, box_cmd_status },
	{ MK_CMD_TIN_VERIFY, "Verify", E | MK_BOX_CMD_DOMAIN, box_p_verify, 2, box_cmd_verify },
};

const struct mk_box_table mk_tin_table = {
	"Tin", cmds, ARRAY_LEN(cmds), box_domain_known, box_enabled,
};
