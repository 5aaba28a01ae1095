#!/usr/bin/env bash
# The date window (issue 16): each domain says how many days after its date
# an indicium may be verified (domain create --verify-days, default 90) and
# how far ahead of the box's clock its date may be (--ahead-days, default
# 1). Outside it the domain's Brass and Tin boxes answer date out of range,
# never good, and nothing is recorded. VE here takes a week back and no day
# ahead, USPS the defaults. The boxes' clock is moved by the test build's
# MK_BOX_TEST_CLOCK (boxes in this process); a Tin box's token key records
# are distributed on the clock it verifies by, so that they are fresh.
. "$(dirname "$0")/lib.bash"

export METERKEY_HOME="$T/h"
M=PM100-000001
DAY=86400
day() { date -u -d "@$(( $(date -u +%s) + $1 * DAY ))" +%Y-%m-%d; }
month() { date -u -d "@$(( $(date -u +%s) + $1 * DAY ))" +%Y-%m; }
# distribute SHIFT DAYS... : the token key records of each DAYS' month, on
# the boxes' clock SHIFT seconds ahead
distribute() {
  local shift=$1 d m; shift
  for d in "$@"; do
    m=$(month "$d")
    for dom in VE USPS; do
      MK_BOX_TEST_CLOCK=$shift expect 0 "$MK" tokens distribute --domain $dom --month "$m"
    done
  done
}
# entries DOMAIN : the number of its audit log's entries (each sighting is one)
entries() {
  "$MK" archive verify --domain "$1" | sed -n 's/.*audit log verifies (\([0-9]*\) entries).*/\1/p'
}

# the options' range and words, refused before the home is opened
expect 0 "$MK" init
expect 2 "$MK" domain create VE --country US --verify-days 0
grep_out '^meterkey: --verify-days: "0" is not a number of days, 1 to 3660' "$T/err"
expect 2 "$MK" domain create VE --country US --verify-days 3661
grep_out '^meterkey: --verify-days: "3661" is not a number of days, 1 to 3660' "$T/err"
expect 2 "$MK" domain create VE --country US --ahead-days 32
grep_out '^meterkey: --ahead-days: "32" is not a number of days, 0 to 31' "$T/err"
expect 2 "$MK" domain create VE --country US --ahead-days -1
[ ! -e "$METERKEY_HOME/domains/VE.policy" ] || { echo "FAIL: a refusal left VE.policy"; fails=$((fails+1)); }

expect 0 "$MK" domain create VE --country US --verify-days 7 --ahead-days 0
expect 0 "$MK" domain create USPS --country US
for l in "verify_days 7" "ahead_days 0"; do
  grep -qx "$l" "$METERKEY_HOME/domains/VE.policy" || { echo "FAIL: '$l' not in VE.policy"; fails=$((fails+1)); }
done
for l in "verify_days 90" "ahead_days 1"; do
  grep -qx "$l" "$METERKEY_HOME/domains/USPS.policy" || { echo "FAIL: '$l' not in USPS.policy"; fails=$((fails+1)); }
done
for t in oak steel brass tin; do expect 0 "$MK" box init --type $t --domain VE --domain USPS; done
expect 0 "$MK" meter create --product-code PM100 --msn 000001
expect 0 "$MK" meter install --meter $M --domain VE
expect 0 "$MK" meter install --meter $M --domain USPS
expect 0 "$MK" meter register --meter $M --indicia US00000001 --country US
expect 0 "$MK" meter credit --meter $M --amount 1000
expect 0 "$MK" meter frank --meter $M --postage 55 --origin 20500
cp "$T/out" "$T/today"
expect 0 "$MK" meter frank --meter $M --postage 55 --origin 20500 --date "$(day 1)"
cp "$T/out" "$T/tomorrow"
distribute 0 0 1

# today's piece: good in both, through Brass and Tin
for tin in "" --tin; do
  expect 0 "$MK" verify $tin --no-duplicates --file "$T/today"
  grep_out "^good .*vendor VE: good, postal USPS: good" "$T/out"
done
# tomorrow's: ahead of the clock, out of VE's window (no day ahead), in
# USPS's (one)
for tin in "" --tin; do
  expect 1 "$MK" verify $tin --no-duplicates --file "$T/tomorrow"
  grep_out "^date out of range .*vendor VE: date out of range, postal USPS: good" "$T/out"
  expect 1 "$MK" verify $tin --no-duplicates --json --file "$T/tomorrow"
  grep_out '"result":"date_out_of_range","vendor":"date_out_of_range","postal":"good"' "$T/out"
done
# a day on, by the boxes' clock: good in both
distribute $DAY 0 1
for tin in "" --tin; do
  MK_BOX_TEST_CLOCK=$DAY expect 0 "$MK" verify $tin --no-duplicates --file "$T/tomorrow"
  grep_out "^good .*vendor VE: good, postal USPS: good" "$T/out"
done

# the other side: today's piece 7 days old is in VE's week, 8 days old
# out of it (and in USPS's 90 days)
distribute $((7 * DAY)) 0
for tin in "" --tin; do
  MK_BOX_TEST_CLOCK=$((7 * DAY)) expect 0 "$MK" verify $tin --no-duplicates --file "$T/today"
  grep_out "^good .*vendor VE: good, postal USPS: good" "$T/out"
done
distribute $((8 * DAY)) 0
for tin in "" --tin; do
  MK_BOX_TEST_CLOCK=$((8 * DAY)) expect 1 "$MK" verify $tin --no-duplicates --file "$T/today"
  grep_out "^date out of range .*vendor VE: date out of range, postal USPS: good" "$T/out"
done

# nothing recorded: out of range twice with duplicates on, through both,
# and the audit logs as they were; the twin, the piece verified in its
# window, is a sighting (and a duplicate the next time)
ve=$(entries VE) usps=$(entries USPS)
[ -n "$ve" ] && [ -n "$usps" ] || { echo "FAIL: archive verify gave no entry count"; fails=$((fails+1)); }
for tin in "" --tin "" --tin; do
  MK_BOX_TEST_CLOCK=$((8 * DAY)) expect 1 "$MK" verify $tin --file "$T/today"
  grep_out "^date out of range .*vendor VE: date out of range, postal USPS: good" "$T/out"
done
[ "$(entries VE)" = "$ve" ] || { echo "FAIL: VE's audit log moved: $ve -> $(entries VE)"; fails=$((fails+1)); }
[ "$(entries USPS)" = "$usps" ] || { echo "FAIL: USPS's audit log moved: $usps -> $(entries USPS)"; fails=$((fails+1)); }
expect 0 "$MK" verify --file "$T/today"
grep_out "^good" "$T/out"
[ "$(entries VE)" = "$ve" ] || { echo "FAIL: a sighting in the vendor's index"; fails=$((fails+1)); }
[ "$(entries USPS)" -gt "$usps" ] || { echo "FAIL: a good piece was not recorded in USPS"; fails=$((fails+1)); }
expect 1 "$MK" verify --file "$T/today"
grep_out "^duplicate .*vendor VE: good, postal USPS: duplicate" "$T/out"
expect 0 "$MK" archive verify --domain VE
expect 0 "$MK" archive verify --domain USPS
finish
