/*
 * The box kinds, in one list: the only place that names them all. A kind's
 * type, name, command table and state are in its own file.
 */
#include "box/box_int.h"

const struct box_kind *box_kind_of(enum mk_box_type t)
{
	static const struct box_kind *const kinds[] = { &box_kind_mfg, &box_kind_oak, &box_kind_steel,
		                                         &box_kind_brass, &box_kind_tin };

	for (size_t i = 0; i < MK_ARRAY_LEN(kinds); i++)
		if (kinds[i]->type == t)
			return kinds[i];
	return NULL;
}
