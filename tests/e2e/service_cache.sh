#!/usr/bin/env bash
# meterkeyd keeps its verifier, with its caches and open boxes, across
# batches (src/daemon/verifiers.c); a key another process retires
# meanwhile is refused all the same. Twice: a meter's indicium dated
# tomorrow verifies good through a warm verifier, the CLI retires the meter
# while meterkeyd runs, and the next batch finds its other indicium of
# tomorrow key not active (its key OBSOLETE since today) while today's is
# still good (mail in the stream, docs/indicium.md §7b).
#  - the boxes in meterkeyd's process: the CLI gets the Brass box once the
#    service let its verifier go (--cache-idle, 1 s): the batch after is a
#    new verifier's (meterkey_verifiers_made_total 2);
#  - each box a process of its own, --cache-idle 60 s: the batch after is
#    the same verifier's (made 1), its records remembered from before the
#    retirement: the signed head it reads each batch moved, and they went.
. "$(dirname "$0")/lib.bash"
BUILD=${2:?usage: $0 meterkey build-dir}
MKD=$BUILD/meterkeyd
export METERKEY_HOME="$T/h"
S="$T/svc"
# today and tomorrow stay what they are for the test's few seconds
[ "$(date -u +%H%M)" = 2359 ] && sleep 70
TOMORROW=$(date -u -d tomorrow +%F)

expect 0 "$MK" init
kms_home
declare -A today tomorrow
for n in 1 2; do
  m=PM100-00000$n
  meter_ready $n
  expect 0 "$MK" meter frank --meter $m --postage 55 --origin 20500 --count 2
  mapfile -t l <"$T/out"; today[$n.1]=${l[0]}; today[$n.2]=${l[1]}
  expect 0 "$MK" meter frank --meter $m --postage 55 --origin 20500 --count 2 --date "$TOMORROW"
  mapfile -t l <"$T/out"; tomorrow[$n.1]=${l[0]}; tomorrow[$n.2]=${l[1]}
done
for r in "server localhost" "verifier scan1" "auditor aud1"; do
  set -- $r
  expect 0 "$MK" service cert --role "$1" --name "$2" --out "$S"
done

start() {
  meterkeyd_start "$MKD" "$S" "$@"
}
# verify LINE WANT : one indicium (duplicates on), its result
verify() {
  printf '{"items":[{"reference":"r","text":"%s"}]}' "$1" >"$T/body"
  curl -s -o "$T/ans" --cacert "$S/ca.pem" --cert "$S/scan1.pem" --key "$S/scan1.key" --data-binary @"$T/body" \
    "https://localhost:$PORT/v1/verify"
  grep -q "\"result\":\"$2\"" "$T/ans" || { echo "FAIL: $3: expected $2:"; sed 's/^/  | /' "$T/ans"; fails=$((fails+1)); }
}

# made WANT WHAT : the verifiers meterkeyd made so far
made() {
  local got
  got=$(curl -s --cacert "$S/ca.pem" --cert "$S/aud1.pem" --key "$S/aud1.key" "https://localhost:$PORT/metrics" |
    sed -n 's/^meterkey_verifiers_made_total //p')
  [ "$got" = "$1" ] || { echo "FAIL: $2: $got verifiers made, expected $1"; fails=$((fails+1)); }
}

# round N MADE WHAT ARGS... : meter N through a meterkeyd started with ARGS;
# MADE verifiers after the retirement
round() {
  local n=$1 after=$2 what=$3; shift 3
  start "$@"
  verify "${today[$n.1]}" good "$what: today's, before"
  verify "${tomorrow[$n.1]}" good "$what: tomorrow's, before (the verifier warm)"
  made 1 "$what: before"
  expect 0 "$MK" meter retire --meter PM100-00000$n
  verify "${tomorrow[$n.2]}" key_not_active "$what: tomorrow's, after the CLI retired the meter"
  verify "${today[$n.2]}" good "$what: today's, after (mail in the stream)"
  made "$after" "$what: after"
  kill -TERM "$DPID"; wait "$DPID"
}
round 1 2 "boxes in meterkeyd"
MK_E2E_BOXES=process
boxes_as_processes "$T/h"
round 2 1 "box processes" --boxes "$T/run" --cache-idle 60000
boxes_back_in_process "$T/h"
finish
