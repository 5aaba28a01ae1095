#!/usr/bin/env bash
# Franking as an operator meets it (issue 12): a date that does not exist is
# a usage error; the meter takes a mailing date only from its registration
# day to N days after its clock; a --png that cannot be written franks
# nothing; a second registration is refused; a keyless meter in transport
# lock says so. Every refusal leaves the registers as they were.
. "$(dirname "$0")/lib.bash"

export METERKEY_HOME="$T/h"
M=PM100-000001
day() { date -u -d "@$(( $(date -u +%s) + $1 * 86400 ))" +%Y-%m-%d; }
# regs: the meter's NVM (its registers and all), as a digest: a refusal
# leaves it as it was
regs() { sha256sum <"$METERKEY_HOME/meters/$M.nvm"; }
# pieces: the piece count and descending register of the last `--json` frank
pieces() { sed -n 's/.*"piece_count":\([0-9]*\),"ascending":[0-9]*,"descending":\([0-9]*\).*/\1 \2/p' "$T/out"; }
same_regs() {
  local now; now=$(regs)
  [ "$now" = "$1" ] || { echo "FAIL: registers moved: '$1' -> '$now'"; fails=$((fails+1)); }
}

expect 0 "$MK" init
# mail franked up to 3 days ahead (below) is verified: a window that takes it
expect 0 "$MK" domain create VE --country US --ahead-days 3
expect 0 "$MK" domain create USPS --country US --ahead-days 3
expect 0 "$MK" box init --type oak --domain VE --domain USPS
expect 0 "$MK" box init --type steel --domain VE --domain USPS
expect 0 "$MK" box init --type brass --domain VE --domain USPS
# with MK_E2E_BOXES=process (e2e_frank_cli_procs) every box is a process of
# its own from here on
boxes_as_processes "$METERKEY_HOME"
expect 0 "$MK" meter create --product-code PM100 --msn 000001
expect 0 "$MK" meter create --product-code PM100 --msn 000002

# a meter in transport lock without keys: the lock is why it does not frank
expect 1 "$MK" meter frank --meter PM100-000002 --postage 55 --origin 20500
grep_out "transport lock.*(MK_ERR_METER_LOCKED)" "$T/err"

expect 0 "$MK" meter install --meter $M --domain VE
expect 0 "$MK" meter install --meter $M --domain USPS
# a registration date before the keys' events, or after the KMS's clock:
# refused, naming the meter and both times (issue 12)
expect 1 "$MK" meter register --meter $M --indicia US1 --country US --date 2020-01-01
grep_out "^meterkey: registration of meter $M dated 2020-01-01T00:00:00Z, before its keys' last event at 20[0-9-]*T[0-9:]*Z: .*(MK_RC_TIME_NOT_INCREASING)$" "$T/err"
expect 1 "$MK" meter register --meter $M --indicia US1 --country US --date 2099-01-01
grep_out "^meterkey: registration of meter $M dated 2099-01-01T00:00:00Z, after the KMS time 20[0-9-]*T[0-9:]*Z: " "$T/err"
expect 0 "$MK" meter register --meter $M --indicia US1 --country US
grep_out "registered in US as US1" "$T/out"
# the same registration again: refused, naming the meter
expect 1 "$MK" meter register --meter $M --indicia US1 --country US
grep_out "meter $M is registered already (US1 in US)" "$T/err"
expect 0 "$MK" meter credit --meter $M --amount 1000
expect 0 "$MK" meter frank --meter $M --postage 10 --origin 20500
R=$(regs)

# 1. a date that does not exist: a usage error naming the option and the value
expect 2 "$MK" meter frank --meter $M --postage 10 --origin 20500 --date 2026-02-30
grep_out '^meterkey: --date: "2026-02-30" is not a date' "$T/err"
expect 2 "$MK" meter frank --meter $M --postage 10 --origin 20500 --date 2026-04-31
same_regs "$R"
expect 2 "$MK" meter frank --meter $M --postage 10 --origin 20500 --max-days-ahead -1
grep_out '^meterkey: --max-days-ahead: "-1"' "$T/err"

# 2. the meter's bounds: not before its registration day, at most 1 day
# (default) or --max-days-ahead N after its clock
expect 1 "$MK" meter frank --meter $M --postage 10 --origin 20500 --date "$(day -1)"
grep_out "refused the mailing date $(day -1).*(MK_ERR_METER_DATE)" "$T/err"
same_regs "$R"
expect 1 "$MK" meter frank --meter $M --postage 10 --origin 20500 --date 2099-01-01
grep_out "(MK_ERR_METER_DATE)" "$T/err"
expect 1 "$MK" meter frank --meter $M --postage 10 --origin 20500 --date "$(day 2)"
grep_out "MK_ERR_METER_DATE" "$T/err"
expect 1 "$MK" meter frank --meter $M --postage 10 --origin 20500 --date "$(day 1)" --max-days-ahead 0
grep_out "MK_ERR_METER_DATE" "$T/err"
same_regs "$R"
expect 0 "$MK" meter frank --meter $M --postage 10 --origin 20500 --date "$(day 1)"
expect 0 "$MK" meter frank --meter $M --postage 10 --origin 20500 --date "$(day 3)" --max-days-ahead 3
expect 0 "$MK" verify --no-duplicates "$(cat "$T/out")"
R=$(regs)

# 3. a --png that cannot be written: nothing franked, nothing debited
expect 1 "$MK" meter frank --meter $M --postage 10 --origin 20500 --png "$T/missing/dir/x.png"
grep_out "$T/missing/dir/x.png.*nothing franked" "$T/err"
same_regs "$R"
mkdir "$T/ro" && chmod 555 "$T/ro"
if [ ! -w "$T/ro" ]; then # (root writes anywhere)
  expect 1 "$MK" meter frank --meter $M --postage 10 --origin 20500 --count 2 --png "$T/ro/p.png"
  same_regs "$R"
fi
expect 1 "$MK" meter frank --meter $M --postage 10 --origin 20500 --png "$T"
same_regs "$R"
# and the next piece follows the last franked one: piece 4, 1000 - 4 x 10 left
expect 0 "$MK" meter frank --meter $M --postage 10 --origin 20500 --png "$T/ok.png" --json
[ "$(pieces)" = "4 960" ] || { echo "FAIL: piece 4 with 960 left expected: $(pieces)"; fails=$((fails+1)); }
[ -s "$T/ok.png" ] || { echo "FAIL: no ok.png"; fails=$((fails+1)); }
[ -z "$(ls -A "$T" | grep meterkey-png)" ] || { echo "FAIL: probe file left"; fails=$((fails+1)); }

# 4. pieces franked whose text standard output does not take (a full disk:
# /dev/full): exit 1, and the indicia paid for are kept in the home, named
# on stderr, and verify; when even that file cannot be written, stderr says
# they are lost (both once exited 0 with the pieces gone)
"$MK" meter frank --meter $M --postage 10 --origin 20500 --count 2 >/dev/full 2>"$T/err"
st=$?
[ $st = 1 ] || { echo "FAIL: frank into /dev/full exited $st, expected 1"; fails=$((fails+1)); }
grep_out "^meterkey: meter $M franked pieces 5 to 6 (postage debited), but standard output did not take them (No space left on device); their indicia are kept in $METERKEY_HOME/unprinted/$M-5-6.txt (MK_ERR_IO)\$" "$T/err"
[ "$(wc -l <"$METERKEY_HOME/unprinted/$M-5-6.txt")" = 2 ] || { echo "FAIL: 2 kept indicia expected"; fails=$((fails+1)); }
[ "$(stat -c %a "$METERKEY_HOME/unprinted/$M-5-6.txt")" = 600 ] || { echo "FAIL: kept file not 0600"; fails=$((fails+1)); }
expect 0 "$MK" verify --file "$METERKEY_HOME/unprinted/$M-5-6.txt"
grep_out "^good .*piece 6" "$T/out"
rm -rf "$METERKEY_HOME/unprinted" && : >"$METERKEY_HOME/unprinted"
"$MK" meter frank --meter $M --postage 10 --origin 20500 >/dev/full 2>"$T/err"
st=$?
[ $st = 1 ] || { echo "FAIL: frank into /dev/full exited $st, expected 1"; fails=$((fails+1)); }
grep_out "^meterkey: meter $M franked pieces 7 to 7 (postage debited), but standard output did not take them (No space left on device), and $METERKEY_HOME/unprinted/$M-7-7.txt could not be written either: .*; those indicia are lost (MK_ERR_IO)\$" "$T/err"
rm -f "$METERKEY_HOME/unprinted"

# a credit that would pass the descending register's maximum: refused,
# with the amount and the register (it said "resource or record not available")
expect 0 "$MK" meter credit --meter $M --amount 9223372036854775807
R=$(regs)
expect 1 "$MK" meter credit --meter $M --amount 9223372036854775807
grep_out "^meterkey: meter $M refused the credit of 9223372036854775807 cents: its descending register ([0-9]*) would pass its maximum: .*(MK_RC_RESOURCE_UNAVAILABLE)\$" "$T/err"
same_regs "$R"

# 5. retiring a keyless meter says what is true
expect 0 "$MK" meter retire --meter PM100-000002
grep_out "meter PM100-000002 retired: it held no keys" "$T/out"
expect 0 "$MK" meter retire --meter $M
grep_out "its keys are OBSOLETE" "$T/out"
# nor credited, and says why in words
expect 1 "$MK" meter credit --meter $M --amount 100
grep_out "^meterkey: meter $M is retired: it takes no credit: .*(MK_ERR_METER_NOT_REGISTERED)\$" "$T/err"
# a retired meter is not registered again, and the refusal says so (it
# spoke of its keys' status transitions)
expect 1 "$MK" meter register --meter $M --indicia US1 --country US
grep_out "^meterkey: meter $M is retired: a retired meter is never registered again: .*(MK_RC_TRANSITION_FORBIDDEN)\$" "$T/err"
finish
