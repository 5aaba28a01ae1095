#!/usr/bin/env bash
# The call check: within one part of the library (src/<part>/), the files
# call each other in one direction only, no circle (a file that needs one
# above it means the function lives in the wrong file). Reads the objects
# the build made for the library: which file defines each symbol (nm), which
# files use it, and lets tsort(1) find a loop.
#   usage: calls.sh OBJECT_DIR SOURCE_DIR
#   (e.g. build/test/CMakeFiles/meterkey.dir .)
set -euo pipefail
objdir=${1:?usage: calls.sh OBJECT_DIR SOURCE_DIR}
srcdir=${2:?usage: calls.sh OBJECT_DIR SOURCE_DIR}
[[ -d $objdir/src ]] || { echo "calls: no objects under $objdir/src" >&2; exit 2; }
bad=0
for part in "$objdir"/src/*/; do
	name=$(basename "$part")
	objs=()
	for o in "$part"*.c.o; do # objects of sources that exist (not a stale one)
		[[ -f $srcdir/src/$name/$(basename "$o" .o) ]] && objs+=("$o")
	done
	((${#objs[@]} > 1)) || continue
	# defined symbols: "symbol file"; used ones: "file symbol"
	defs=$(for o in "${objs[@]}"; do nm --defined-only -g "$o" | awk -v f="$(basename "$o" .c.o)" 'NF == 3 { print $3, f }'; done | sort)
	edges=$(for o in "${objs[@]}"; do nm -u "$o" | awk -v f="$(basename "$o" .c.o)" '{ print $NF, f }'; done | sort |
		join - <(echo "$defs") | awk '$2 != $3 { print $2, $3 }' | sort -u)
	[[ -n $edges ]] || continue
	if ! out=$(echo "$edges" | tsort 2>&1 >/dev/null) || [[ -n $out ]]; then
		echo "calls: src/$name: its files call each other in a circle:"
		echo "$out" | sed 's/^/  /'
		echo "  (who calls whom:)"
		echo "$edges" | awk '{ print "    " $1 " -> " $2 }'
		bad=1
	fi
done
if ((bad)); then
	echo "calls: FAILED"
	exit 1
fi
echo "calls: no circle of calls between the files of any part"
