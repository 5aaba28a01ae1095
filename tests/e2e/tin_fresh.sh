#!/usr/bin/env bash
# Tin freshness (issue 14): each domain says how long a token key record its
# Brass boxes sign stays good for its Tin boxes (domain create --tin-fresh,
# default a day). Past it, a Tin box answers status stale for the domain,
# never good; tokens distribute refreshes the record. The boxes' clock is
# moved by the test build's MK_BOX_TEST_CLOCK (boxes in this process).
. "$(dirname "$0")/lib.bash"

export METERKEY_HOME="$T/h"
M=PM100-000001

expect 0 "$MK" init
expect 0 "$MK" domain create VE --country US --tin-fresh 120
expect 0 "$MK" domain create USPS --country US
grep -qx "tin_fresh 120" "$METERKEY_HOME/domains/VE.policy" || { echo "FAIL: VE.policy"; fails=$((fails+1)); }
grep -qx "tin_fresh 86400" "$METERKEY_HOME/domains/USPS.policy" || { echo "FAIL: USPS.policy"; fails=$((fails+1)); }
for t in oak steel brass tin; do expect 0 "$MK" box init --type $t --domain VE --domain USPS; done
expect 0 "$MK" meter create --product-code PM100 --msn 000001
expect 0 "$MK" meter install --meter $M --domain VE
expect 0 "$MK" meter install --meter $M --domain USPS
expect 0 "$MK" meter register --meter $M --indicia US00000001 --country US
expect 0 "$MK" meter credit --meter $M --amount 1000
expect 0 "$MK" meter frank --meter $M --postage 55 --origin 20500
cp "$T/out" "$T/line"
month=$(date -u +%Y-%m)
expect 0 "$MK" tokens distribute --domain VE --month "$month"
expect 0 "$MK" tokens distribute --domain USPS --month "$month"

# fresh: good at Tin
expect 0 "$MK" verify --tin --no-duplicates --file "$T/line"
grep_out "^good .*vendor VE: good, postal USPS: good" "$T/out"
# VE's two minutes are over (USPS's day is not): status stale in VE, never good
MK_BOX_TEST_CLOCK=121 expect 1 "$MK" verify --tin --no-duplicates --file "$T/line"
grep_out "^status stale .*vendor VE: status stale, postal USPS: good" "$T/out"
MK_BOX_TEST_CLOCK=121 expect 1 "$MK" verify --tin --file "$T/line" --json
grep_out '"result":"status_stale","vendor":"status_stale","postal":"good"' "$T/out"
# and recorded nothing: the first sighting is still to come
expect 0 "$MK" verify --tin --file "$T/line"
grep_out "^good" "$T/out"
expect 1 "$MK" verify --tin --file "$T/line"
grep_out "^duplicate" "$T/out"
# a day on: both domains stale
MK_BOX_TEST_CLOCK=86401 expect 1 "$MK" verify --tin --no-duplicates --file "$T/line"
grep_out "vendor VE: status stale, postal USPS: status stale" "$T/out"
# Brass is not Tin: its key records do not go stale
MK_BOX_TEST_CLOCK=86401 expect 0 "$MK" verify --no-duplicates --file "$T/line"
# the next distribution refreshes: good again, by the same clock
MK_BOX_TEST_CLOCK=86401 expect 0 "$MK" tokens distribute --domain VE --month "$month"
MK_BOX_TEST_CLOCK=86401 expect 0 "$MK" tokens distribute --domain USPS --month "$month"
MK_BOX_TEST_CLOCK=86401 expect 0 "$MK" verify --tin --no-duplicates --file "$T/line"
grep_out "^good .*vendor VE: good, postal USPS: good" "$T/out"
expect 0 "$MK" archive verify --domain VE
expect 0 "$MK" archive verify --domain USPS

# the bound's range, refused before the home is opened
expect 2 "$MK" domain create EARTH --country US --tin-fresh 59
grep_out "^meterkey: --tin-fresh: \"59\" is not a number of seconds, 60 to 2678400 (31 days)" "$T/err"
expect 2 "$MK" domain create EARTH --country US --tin-fresh 2678401
expect 2 "$MK" domain create EARTH --country US --tin-fresh 1d
finish
