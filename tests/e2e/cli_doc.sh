#!/usr/bin/env bash
# docs/cli.md holds every command's --help text; it must be the program's.
. "$(dirname "$0")/lib.bash"
doc=$(dirname "$0")/../../docs/cli.md
n=0
while IFS= read -r cmd; do
  n=$((n+1))
  awk -v c="$cmd" '$0 == "<!-- help: " c " -->" {f=1; next} f && /^```$/ {if (in_) exit; in_=1; next} f && in_' "$doc" >"$T/want"
  [ "$cmd" = meterkey ] && args=() || read -ra args <<<"$cmd"
  "$MK" "${args[@]}" --help >"$T/got" 2>&1
  diff -u "$T/want" "$T/got" >"$T/diff" || { echo "FAIL: docs/cli.md differs for '$cmd':"; cat "$T/diff"; fails=$((fails+1)); }
done < <(sed -n 's/^<!-- help: \(.*\) -->$/\1/p' "$doc")
[ "$n" -ge 6 ] || { echo "FAIL: only $n help blocks found in docs/cli.md"; fails=$((fails+1)); }
finish
