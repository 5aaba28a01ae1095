#!/usr/bin/env bash
# Franking and verification from the command line: meter frank (text and
# DataMatrix), meter credit, verify (lines, files, images, --tin, --json),
# duplicates, and the refusals with their exit statuses.
. "$(dirname "$0")/lib.bash"

H="$T/home"
expect 0 "$MK" demo --home "$H"
export METERKEY_HOME="$H"
# with MK_E2E_BOXES=process (CTest's e2e_verify_cli_procs) every box is a
# process of its own from here on
boxes_as_processes "$H"
# a new meter on the demo's home, through its whole life up to
# franking (two pieces first, as the demo's meters had)
M=PM100-000007
expect 0 "$MK" meter create --product-code PM100 --msn 000007
expect 0 "$MK" meter install --meter $M --domain VE
expect 0 "$MK" meter install --meter $M --domain USPS
# in transport lock: no credit, no frank
expect 1 "$MK" meter frank --meter $M --postage 55 --origin 20500
grep_out "MK_ERR_METER_LOCKED" "$T/err"
expect 1 "$MK" meter credit --meter $M --amount 100
grep_out "MK_ERR_METER_LOCKED" "$T/err"
expect 0 "$MK" meter register --meter $M --indicia US00000007 --country US
expect 0 "$MK" meter credit --meter $M --amount 10000
expect 0 "$MK" meter frank --meter $M --postage 73 --origin 20500 --count 2
# before the month's token keys are distributed, a Tin box does not know the
# device: the answer says why, and what makes them (issue 12)
P=$(sed -n 1p "$T/out")
expect 1 "$MK" verify --no-duplicates --tin "$P"
grep_out "no token key record of this device for the indicium's month here; 'meterkey tokens distribute" "$T/out"
expect 1 "$MK" verify --no-duplicates --tin --json "$P"
grep_out '"result":"unknown_device".*"hint":"no token key record of this device' "$T/out"
for d in VE USPS; do expect 0 "$MK" tokens distribute --domain $d --month "$(date -u +%Y-%m)" --meter $M; done
# a meter not in the home, or with no ACTIVE key of the domain: refused,
# named (it once exited 0 with "0 token key records")
expect 1 "$MK" tokens distribute --domain VE --month "$(date -u +%Y-%m)" --meter PM100-999999
grep_out "^meterkey: no meter PM100-999999 in this home: .*(MK_ERR_NOT_FOUND)\$" "$T/err"
expect 1 "$MK" tokens distribute --domain VE --month "$(date -u +%Y-%m)" --meter PM100-000001
grep_out "^meterkey: meter PM100-000001 holds no ACTIVE VE key (not registered, retired, or not of domain VE): .*(MK_ERR_STATE)\$" "$T/err"
# a month before the key became ACTIVE: the box's refusal names the record
expect 1 "$MK" tokens distribute --domain VE --month 2020-01 --meter $M
grep_out "^meterkey: Brass box B00000001 refused Distribute Token Key in domain VE, for key VE/[0-9]* of meter $M (the month is before the key became ACTIVE): .*(MK_RC_TIME_NOT_INCREASING)\$" "$T/err"

expect 0 "$MK" meter frank --meter $M --postage 55 --origin 20500 --count 3 --png "$T/p.png"
[ "$(wc -l <"$T/out")" = 3 ] || { echo "FAIL: 3 lines expected"; fails=$((fails+1)); }
cp "$T/out" "$T/lines"
grep_out "^1/1/VE/USPS/PM100/000007/US00000007/[0-9]*/20500/55/3/" "$T/lines"
for i in 3 4 5; do [ -s "$T/p-$i.png" ] || { echo "FAIL: no p-$i.png"; fails=$((fails+1)); }; done

# a file of three: all good, then all duplicates (exit 1)
expect 0 "$MK" verify --file "$T/lines"
[ "$(grep -c '^good' "$T/out")" = 3 ] || { echo "FAIL: 3 good expected"; fails=$((fails+1)); }
expect 1 "$MK" verify --file "$T/lines" --json
# a sighting is the postal domain's: the vendor's result stays good (issue 16)
[ "$(grep -c '"result":"duplicate","vendor":"good","postal":"duplicate"' "$T/out")" = 3 ] || { echo "FAIL: 3 duplicates expected"; fails=$((fails+1)); }
grep_out '"device":"PM100-000007"' "$T/out"
# the image, read by the tool and by dmtxread, and through Tin (this month's keys were distributed)
expect 0 "$MK" verify --no-duplicates --image "$T/p-4.png"
grep_out "PM100-000007 piece 4" "$T/out"
if command -v dmtxread >/dev/null; then
  [ "$(dmtxread "$T/p-5.png")" = "$(sed -n 3p "$T/lines")" ] || { echo "FAIL: dmtxread disagrees"; fails=$((fails+1)); }
fi
expect 0 "$MK" verify --no-duplicates --tin "$(sed -n 1p "$T/lines")"
# one misread character is corrected; two are malformed (never good)
L=$(sed -n 2p "$T/lines")
L1=${L/\/55\//\/56\/}
expect 0 "$MK" verify --no-duplicates "$L1"
grep_out "one misread character corrected, to $L)" "$T/out"
# and the JSON says what it was corrected to (issue 12)
expect 0 "$MK" verify --no-duplicates --json "$L1"
grep_out "\"corrected\":true,\"corrected_to\":\"$L\"" "$T/out"
L2=${L1/\/20500\//\/20509\/}
expect 1 "$MK" verify --no-duplicates --json "$L2"
grep_out '"result":"malformed"' "$T/out"
# blanks around a line (a scanner's) are not part of it; a DataMatrix whose
# text ends in a newline holds the same indicium (issue 12)
expect 0 "$MK" verify --no-duplicates "  $L	"
grep_out "^good" "$T/out"
if command -v dmtxwrite >/dev/null; then
  printf '%s\n' "$L" | dmtxwrite -o "$T/nl.png"
  expect 0 "$MK" verify --no-duplicates --image "$T/nl.png"
  grep_out "^good" "$T/out"
fi
expect 1 "$MK" verify --no-duplicates "not an indicium"
grep_out "^malformed" "$T/out"
# a malformed line says what is wrong with it (issue 12)
grep_out "^malformed  *more than one character outside the indicium alphabet (A-Z, 0-9, '/', '-'): not an indicium\$" "$T/out"
grep_out '"why":"its check characters do not match, and no one-character correction of it verifies"' <(
  "$MK" verify --no-duplicates --json "$L2")
# and its bytes are shown, never sent to the terminal raw: an escape
# sequence, a byte that is not ASCII (the JSON stays valid UTF-8)
printf '1/1/\033[2J\001X\377\n' >"$T/raw"
expect 1 "$MK" verify --no-duplicates --file "$T/raw"
grep_out '^malformed  *more than one .*: 1/1/\\x1b\[2J\\x01X\\xff$' "$T/out"
if grep -q "$(printf '\033')" "$T/out"; then echo "FAIL: an escape byte reached the output"; fails=$((fails+1)); fi
expect 1 "$MK" verify --no-duplicates --json --file "$T/raw"
grep_out '"input":"1/1/\\\\x1b\[2J\\\\x01X\\\\xff"' "$T/out"

# refusals: a retired meter, funds short, then a credit
expect 1 "$MK" meter frank --meter PM100-000001 --postage 55 --origin 20500
grep_out "MK_ERR_METER_NOT_REGISTERED" "$T/err"
expect 1 "$MK" meter frank --meter $M --postage 4000000000 --origin 20500
grep_out "MK_ERR_METER_FUNDS" "$T/err"
expect 0 "$MK" meter credit --meter $M --amount 5000000000
expect 0 "$MK" meter frank --meter $M --postage 4000000000 --origin 20500 --json
grep_out '"piece_count":6' "$T/out"

# public-key indicia: signed with the operation key, checked through
# operation -> domain -> root beside the tokens; a changed signature is refused
expect 0 "$MK" meter frank --meter $M --postage 12 --origin 20500 --sign
S=$(cat "$T/out")
case "$S" in 2/*) ;; *) echo "FAIL: a signed indicium is version 2: $S"; fails=$((fails+1)) ;; esac
expect 0 "$MK" verify --no-duplicates "$S"
grep_out "signature: good" "$T/out"
expect 0 "$MK" verify --no-duplicates --json "$S"
grep_out '"signature":"good"' "$T/out"
rm -f "$H/certs/$M.pem"
expect 1 "$MK" verify --no-duplicates --json "$S"
grep_out '"signature":"no_certificate"' "$T/out"

# usage
expect 2 "$MK" verify
expect 2 "$MK" meter frank --meter $M --postage 0 --origin 20500
expect 2 "$MK" meter frank --meter $M --postage 5 --origin 20500 --count 0
expect 2 "$MK" tokens distribute --domain VE --month 2026-13-01
expect 0 "$MK" verify --help
finish
