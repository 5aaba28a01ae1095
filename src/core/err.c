/*
 * mk_strerror() and friends, generated from the one list in err.h. The switches
 * have no default: so that -Wswitch (in -Wall) names any enum value that lacks a
 * case; values outside the enum fall through to the "unknown" return.
 */
#include <string.h>

#include "meterkey/err.h"

const char *mk_strerror(enum mk_err err)
{
	switch (err) {
#define X(name, num, level, text) case name: return text;
	MK_ERR_LIST(X)
#undef X
	case MK_ERR_LAST:
		break;
	}
	return "unknown error";
}

const char *mk_err_name(enum mk_err err)
{
	switch (err) {
#define X(name, num, level, text) case name: return #name;
	MK_ERR_LIST(X)
#undef X
	case MK_ERR_LAST:
		break;
	}
	return "MK_ERR_UNKNOWN";
}

enum mk_err mk_err_by_name(const char *name)
{
#define X(name_, num, level, text)                      \
	if (name != NULL && strcmp(name, #name_) == 0) \
		return name_;
	MK_ERR_LIST(X)
#undef X
	return MK_ERR_LAST;
}

enum mk_err_level mk_err_level(enum mk_err err)
{
	switch (err) {
#define X(name, num, level, text) case name: return level;
	MK_ERR_LIST(X)
#undef X
	case MK_ERR_LAST:
		break;
	}
	return MK_LEVEL_LOCAL;
}
