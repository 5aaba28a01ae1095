#!/usr/bin/env bash
# The layer check: every #include "..." in src/ and include/ must point at
# its own part or at a part on a lower layer, in the order written once in
# docs/internals/layers.md (the block between "<!-- layers -->" and
# "<!-- /layers -->": one line per layer, lowest first, "N: part part ...",
# and one line per part that owns public headers, "part: a.h b.h ...").
# Exits 1 and names every upward or sideways include.
#   usage: check.sh [SOURCE_DIR]
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
doc=$root/docs/internals/layers.md
[[ -r $doc ]] || { echo "layers: no $doc" >&2; exit 2; }

declare -A layer owner
in=0
while IFS= read -r line; do
	case $line in
	'<!-- layers -->') in=1; continue ;;
	'<!-- /layers -->') in=0; continue ;;
	esac
	((in)) || continue
	line=${line#    }
	if [[ $line =~ ^([0-9]+):\ (.+)$ ]]; then
		for p in ${BASH_REMATCH[2]}; do layer[$p]=${BASH_REMATCH[1]}; done
	elif [[ $line =~ ^([a-z]+)\ headers:\ (.+)$ ]]; then
		for h in ${BASH_REMATCH[2]}; do owner[meterkey/$h]=${BASH_REMATCH[1]}; done
	fi
done <"$doc"
((${#layer[@]} > 0)) || { echo "layers: no layer block in $doc" >&2; exit 2; }

# The part a file belongs to: src/<part>/..., or the owner of a public header.
part_of() {
	local f=$1
	case $f in
	src/*/*) f=${f#src/}; echo "${f%%/*}" ;;
	include/meterkey/*) echo "${owner[meterkey/${f#include/meterkey/}]:-?}" ;;
	*) echo "?" ;;
	esac
}

bad=0
cd "$root"
while IFS= read -r f; do
	from=$(part_of "$f")
	if [[ -z ${layer[$from]+x} ]]; then
		echo "layers: $f belongs to no part of docs/internals/layers.md"
		bad=1
		continue
	fi
	while IFS= read -r inc; do
		case $inc in
		meterkey/*) to=${owner[$inc]:-?} ;;
		*/*) to=${inc%%/*} ;;
		*) to=$from ;; # a header beside the file (the CLI's own)
		esac
		if [[ -z ${layer[$to]+x} ]]; then
			echo "layers: $f includes \"$inc\", which belongs to no part"
			bad=1
		elif [[ $to != "$from" ]] && ((layer[$to] >= layer[$from])); then
			if ((layer[$to] == layer[$from])); then how="beside it (layer ${layer[$to]})"; else how="above it (layer ${layer[$to]} > ${layer[$from]})"; fi
			echo "layers: $f ($from, layer ${layer[$from]}) includes \"$inc\" of $to, $how"
			bad=1
		fi
	done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done < <(find src include -name '*.[ch]' | sort)
if ((bad)); then
	echo "layers: FAILED (the order is in docs/internals/layers.md)"
	exit 1
fi
echo "layers: every include points down (${#layer[@]} parts)"
