#!/usr/bin/env bash
# Two commands on one home lose nothing (issue 14): ten parallel franks of
# one meter give ten distinct piece counts and move its registers by ten
# pieces exactly; ten parallel installs of one meter and domain leave
# exactly one INSTALLED key, the one in its NVM; ten parallel box inits
# leave ten boxes in boxes.conf.
. "$(dirname "$0")/lib.bash"

H="$T/home"
expect 0 "$MK" demo --home "$H"
export METERKEY_HOME="$H"
M=PM100-000002

# ten franks at once
expect 0 "$MK" meter frank --meter $M --postage 10 --origin 10001
before=$(cut -d/ -f11,12 "$T/out") # piece count / ascending register
for i in $(seq 10); do "$MK" meter frank --meter $M --postage 10 --origin 10001 >"$T/frank.$i" 2>&1 & done
wait
for i in $(seq 10); do
  grep -q "^1/1/" "$T/frank.$i" || { echo "FAIL: frank $i:"; sed 's/^/  | /' "$T/frank.$i"; fails=$((fails+1)); }
done
pieces=$(cat "$T"/frank.* | cut -d/ -f11 | sort -n | uniq)
[ "$(wc -l <<<"$pieces")" = 10 ] || { echo "FAIL: ten franks gave the pieces $(echo $pieces)"; fails=$((fails+1)); }
p0=${before%/*}; r0=${before#*/}
[ "$(echo $pieces)" = "$(seq -s ' ' $((p0 + 1)) $((p0 + 10)))" ] ||
  { echo "FAIL: pieces $(echo $pieces) after $p0"; fails=$((fails+1)); }
expect 0 "$MK" meter frank --meter $M --postage 10 --origin 10001
after=$(cut -d/ -f11,12 "$T/out")
[ "$after" = "$((p0 + 11))/$((r0 + 110))" ] ||
  { echo "FAIL: after ten franks of 10 and one more: $after, not $((p0 + 11))/$((r0 + 110))"; fails=$((fails+1)); }

# ten installs at once of one meter and domain
expect 0 "$MK" meter create --product-code PM100 --msn 000077
for i in $(seq 10); do "$MK" meter install --meter PM100-000077 --domain VE >"$T/inst.$i" 2>&1 & done
wait
live=$(sqlite3 "$H/archive.db" "SELECT key_id FROM keys WHERE domain = 'VE' AND product_code = 'PM100' AND mfg_seq = '000077' AND status IN (2, 4)")
[ "$(wc -w <<<"$live")" = 1 ] || { echo "FAIL: keys INSTALLED or ACTIVE of PM100-000077 in VE: '$live'"; cat "$T"/inst.*; fails=$((fails+1)); }
expect 0 "$MK" meter list
grep_out "^PM100-000077 .* VE/$live:INSTALLED" "$T/out"
[ "$(grep -l "key VE/[0-9]* INSTALLED" "$T"/inst.* | wc -l)" = 1 ] ||
  { echo "FAIL: more than one install said INSTALLED"; grep -h "" "$T"/inst.*; fails=$((fails+1)); }

# ten box inits at once
n0=$("$MK" box list | wc -l)
for i in $(seq 10); do "$MK" box init --type oak --domain VE >"$T/box.$i" 2>&1 & done
wait
for i in $(seq 10); do
  grep -q "^box O[0-9]* initialised" "$T/box.$i" || { echo "FAIL: box init $i:"; sed 's/^/  | /' "$T/box.$i"; fails=$((fails+1)); }
done
expect 0 "$MK" box list
[ "$(wc -l <"$T/out")" = $((n0 + 10)) ] || { echo "FAIL: $((n0 + 10)) boxes expected:"; sed 's/^/  | /' "$T/out"; fails=$((fails+1)); }
[ "$(grep -c '^O' "$T/out")" = 11 ] || { echo "FAIL: eleven Oak boxes expected"; fails=$((fails+1)); }
finish
