#!/usr/bin/env bash
# meterkeyd verifies POST /v1/verify pipelined across requests
# (src/daemon/batches.c): requests that arrive while a batch commits go
# together into the next, each answered once its batch is durable.
#  - eight requests at once, disjoint: each answered right (its own items,
#    by reference), every indicium good exactly once across them, and
#    duplicate in a second round; the negative twin: duplicates off, good
#    in both rounds (so the count would see a second good);
#  - one indicium in two requests sent at once, eight times over: good in
#    one, duplicate in the other, every time; duplicates off, good in both;
#  - a client that closes as soon as its request is written, its batch in
#    flight: the service goes on (no crash; under the sanitizers no leak at
#    its exit), the batch is recorded (its items duplicate after); its
#    answer goes to a closed connection, or, when evhttp saw the close
#    first, is let go (meterkey_verify_answers_gone_total); the negative
#    twin: a client that stays is answered, nothing more gone;
#  - the group commit: requests that arrive while the writer waits go to
#    the verifier together (fewer batches than requests);
#  - SIGTERM with a batch in flight: it is answered before the service ends;
#  - the counters and the audit log count each request and each result
#    once, also when the status page lets the verifier go beside a batch;
#  - a commit that fails (a fault put in the archive): the request answered
#    with the error, none good; good without the fault (its negative twin);
#    the loop serves others while the writer waits for the archive's lock.
. "$(dirname "$0")/lib.bash"
BUILD=${2:?usage: $0 meterkey build-dir}
MKD=$BUILD/meterkeyd
export METERKEY_HOME="$T/h"
S="$T/svc"

expect 0 "$MK" init
kms_home
for n in 1 2; do
  meter_ready $n
  expect 0 "$MK" meter credit --meter PM100-00000$n --amount 20000
done
for n in 1 2; do
  expect 0 "$MK" meter frank --meter PM100-00000$n --postage 55 --origin 20500 --count 120
  cat "$T/out" >>"$T/lines"
done
mapfile -t L <"$T/lines"
[ "${#L[@]}" = 240 ] || { echo "FAIL: ${#L[@]} indicia franked, 240 expected"; exit 1; }
for r in "server localhost" "verifier scan1" "auditor aud1"; do
  set -- $r
  expect 0 "$MK" service cert --role "$1" --name "$2" --out "$S"
done

esc() { local s=${1//\\/\\\\}; printf '%s' "${s//\"/\\\"}"; }
# body FILE DUP FIRST COUNT : a request of lines FIRST..FIRST+COUNT-1, referenced by their index
body() {
  local f=$1 dup=$2 first=$3 count=$4 sep="" i
  { printf '{"items":['
    for ((i = first; i < first + count; i++)); do
      printf '%s{"reference":"%d","text":"%s"}' "$sep" "$i" "$(esc "${L[$i]}")"; sep=,
    done
    printf '],"duplicates":%s}' "$dup"; } >"$f"
}
# post FILE OUT : POST /v1/verify as scan1, the status in OUT.code
post() {
  curl -s -o "$2" -w '%{http_code}' --cacert "$S/ca.pem" --cert "$S/scan1.pem" --key "$S/scan1.key" \
    --data-binary @"$1" "https://localhost:$PORT/v1/verify" >"$2.code"
}
metric() { # NAME{labels} : its value in /metrics (0 when absent)
  curl -s --cacert "$S/ca.pem" --cert "$S/aud1.pem" --key "$S/aud1.key" "https://localhost:$PORT/metrics" >"$T/metrics"
  awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }' "$T/metrics"
}
# results OUT : "reference result" lines of an answer
results() { grep -o '"reference":"[0-9]*","result":"[a-z_]*"' "$1" | sed 's/"reference":"\([0-9]*\)","result":"\([a-z_]*\)"/\1 \2/'; }
check() { # WHAT GOT WANT
  [ "$2" = "$3" ] || { echo "FAIL: $1: $2, expected $3"; fails=$((fails + 1)); }
}

# round DUP TAG : the 240 lines in 8 requests of 30 sent at once; the
# goods counted, each answer checked to hold its own references
round() {
  local dup=$1 tag=$2 k pids=()
  for k in 0 1 2 3 4 5 6 7; do
    body "$T/$tag.$k.json" "$dup" $((k * 30)) 30
  done
  for k in 0 1 2 3 4 5 6 7; do
    post "$T/$tag.$k.json" "$T/$tag.$k.out" &
    pids+=($!)
  done
  wait "${pids[@]}"
  : >"$T/$tag.all"
  for k in 0 1 2 3 4 5 6 7; do
    results "$T/$tag.$k.out" >"$T/$tag.$k.res"
    # its own 30 items, in order
    check "$tag request $k: its references" "$(cut -d' ' -f1 "$T/$tag.$k.res" | tr '\n' ' ')" \
      "$(seq -s' ' $((k * 30)) $((k * 30 + 29))) "
    cat "$T/$tag.$k.res" >>"$T/$tag.all"
    cat "$T/$tag.$k.out.code" >>"$T/$tag.codes"
    echo >>"$T/$tag.codes"
  done
}

meterkeyd_start "$MKD" "$S" --max-items 100 --audit "$T/audit.log"
round true a
check "first round: goods" "$(grep -c ' good$' "$T/a.all")" 240
check "first round: indicia answered" "$(cut -d' ' -f1 "$T/a.all" | sort -u | wc -l)" 240
check "first round: statuses" "$(sort -u "$T/a.codes" | tr '\n' ' ')" "200 "
round true b
check "second round: duplicates" "$(grep -c ' duplicate$' "$T/b.all")" 240
check "second round: goods" "$(grep -c ' good$' "$T/b.all" || true)" 0
check "second round: statuses" "$(sort -u "$T/b.codes" | tr '\n' ' ')" "207 "
check "sightings" "$(sightings "$T/h/archive.db")" 240
# the negative twin: duplicates off, every indicium good again
round false c
check "duplicates off: goods" "$(grep -c ' good$' "$T/c.all")" 240
# each result counted once, each request audited once before and once after
check "counted good" "$(metric 'meterkey_verifications_total{result="good"}')" 480
check "counted duplicate" "$(metric 'meterkey_verifications_total{result="duplicate"}')" 240
check "requests answered" "$(metric 'meterkey_requests_total{call="/v1/verify",code="200"}')" 16
check "audited requests" "$(grep -c '"phase":"request"' "$T/audit.log")" 24
check "audited answers" "$(grep -c '"phase":"answer"' "$T/audit.log")" 24
batches=$(metric meterkey_verify_pipeline_batches_total)
[ "$batches" -ge 1 ] && [ "$batches" -le 24 ] || { echo "FAIL: $batches batches for 24 requests"; fails=$((fails + 1)); }
echo "24 requests in $batches batches"

# an answer written straight (batches.c) is jansson's text (a build with
# assertions compares every item): references that need escaping, one
# with a control character (left to jansson), a malformed line, a binary
# form that does not decode, duplicates
printf '%s' '{"items":[{"reference":"q\"uote","text":"'"$(esc "${L[0]}")"'"},{"reference":"back\\slash/","text":"not an indicium"},{"reference":"\u00e9t\u00e9","binary":"AAAA"},{"reference":"ctl\u0001","text":"'"$(esc "${L[1]}")"'"},{"text":"'"$(esc "${L[2]}")"'"}]}' >"$T/esc.json"
post "$T/esc.json" "$T/esc.out"
check "escaped references: status" "$(cat "$T/esc.out.code")" 207
check "escaped references: each one back" "$(jq -c '[.results[].reference]' "$T/esc.out")" '["q\"uote","back\\slash/","été","ctl\u0001",null]'
check "escaped references: results" "$(jq -c '[.results[].result]' "$T/esc.out")" '["duplicate","malformed","malformed","duplicate","duplicate"]'
check "escaped references: first seen" "$(jq -c '[.results[].first_seen.site | type]' "$T/esc.out")" '["string","null","null","string","string"]'
check "a malformed item written whole" "$(grep -cF '"reference":"back\\slash/","result":"malformed","vendor":"malformed","postal":"malformed","signature":"none","corrected":false,"why":"' "$T/esc.out")" 1

# one indicium in two requests at once: good once, duplicate once. Fresh
# indicia: lines 0..7 of a new franking, one a pair.
expect 0 "$MK" meter frank --meter PM100-000001 --postage 55 --origin 20500 --count 8
mapfile -t F <"$T/out"
pair() { # DUP K : two requests holding F[K] (and each a line of its own already seen), at once
  local dup=$1 k=$2 x
  for x in 1 2; do
    printf '{"items":[{"reference":"own%s","text":"%s"},{"reference":"x","text":"%s"}],"duplicates":%s}' \
      "$x" "$(esc "${L[$x]}")" "$(esc "${F[$k]}")" "$dup" >"$T/p$x.json"
  done
  post "$T/p1.json" "$T/p1.out" & local p1=$!
  post "$T/p2.json" "$T/p2.out" & local p2=$!
  wait $p1 $p2
  cat "$T/p1.out" "$T/p2.out" | grep -o '"reference":"x","result":"[a-z_]*"' | sed 's/.*"result":"//; s/"$//' | sort | tr '\n' ' '
}
for k in 0 1 2 3 4 5 6 7; do
  check "pair $k (duplicates on)" "$(pair true $k)" "duplicate good "
done
# the negative twin: duplicates off, good in both (fresh ones: none of
# these was seen: franked now)
expect 0 "$MK" meter frank --meter PM100-000002 --postage 55 --origin 20500 --count 8
mapfile -t F <"$T/out"
for k in 0 1 2 3; do
  check "pair $k (duplicates off)" "$(pair false $k)" "good good "
done

# a client gone while its batch is in flight: 100 fresh indicia sent on
# a TLS connection closed as soon as the request is written
expect 0 "$MK" meter frank --meter PM100-000002 --postage 55 --origin 20500 --count 100
mapfile -t G <"$T/out"
gone_body() { # FILE : the 100 fresh lines
  local sep="" i
  { printf '{"items":['
    for ((i = 0; i < 100; i++)); do printf '%s{"reference":"%d","text":"%s"}' "$sep" "$i" "$(esc "${G[$i]}")"; sep=,; done
    printf ']}'; } >"$1"
}
gone_body "$T/g.json"
good0=$(metric 'meterkey_verifications_total{result="good"}')
gone0=$(metric meterkey_verify_answers_gone_total)
check "no answer gone before" "$gone0" 0
{ printf 'POST /v1/verify HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n' \
    "$(stat -c %s "$T/g.json")"
  cat "$T/g.json"; } >"$T/g.req"
openssl s_client -quiet -no_ign_eof -connect "127.0.0.1:$PORT" -servername localhost -CAfile "$S/ca.pem" \
  -cert "$S/scan1.pem" -key "$S/scan1.key" <"$T/g.req" >/dev/null 2>&1 || true
# the service goes on; the batch was verified and recorded
for _ in $(seq 50); do [ "$(metric 'meterkey_verifications_total{result="good"}')" -ge $((good0 + 100)) ] && break; sleep 0.1; done
curl -s -o "$T/out" -w '%{http_code}' --cacert "$S/ca.pem" --cert "$S/aud1.pem" --key "$S/aud1.key" \
  "https://localhost:$PORT/v1/health" >"$T/code"
check "health after a client gone" "$(cat "$T/code")" 200
gone1=$(metric meterkey_verify_answers_gone_total)
echo "answers gone: $gone1"
body_g() { sed 's/]}$/],"duplicates":true}/' "$T/g.json" >"$T/g2.json"; }
body_g
post "$T/g2.json" "$T/g2.out"
check "the gone client's batch recorded: duplicates after" "$(results "$T/g2.out" | grep -c ' duplicate$')" 100
# its negative twin: a client that stays is answered, and nothing more is gone
expect 0 "$MK" meter frank --meter PM100-000001 --postage 55 --origin 20500 --count 100
mapfile -t G <"$T/out"
gone_body "$T/s.json"
post "$T/s.json" "$T/s.out"
check "a client that stays: answered" "$(cat "$T/s.out.code")" 200
check "a client that stays: goods" "$(results "$T/s.out" | grep -c ' good$')" 100
check "nothing more gone" "$(metric meterkey_verify_answers_gone_total)" "$gone1"

# the status page opens the boxes in this process, so it lets the
# verifier go, its batch in flight finished and answered first: each
# answer counted against its own call
expect 0 "$MK" meter frank --meter PM100-000002 --postage 55 --origin 20500 --count 100
mapfile -t G <"$T/out"
gone_body "$T/st.json"
v0=$(metric 'meterkey_requests_total{call="/v1/verify",code="200"}')
st0=$(metric 'meterkey_requests_total{call="/v1/status",code="200"}')
post "$T/st.json" "$T/st.out" &
vp=$!
curl -s -o "$T/status.out" -w '%{http_code}' --cacert "$S/ca.pem" --cert "$S/aud1.pem" --key "$S/aud1.key" \
  "https://localhost:$PORT/v1/status" >"$T/status.code"
wait $vp
check "status beside a batch" "$(cat "$T/status.code")" 200
check "the batch beside the status" "$(cat "$T/st.out.code")" 200
check "verify answers counted" "$(metric 'meterkey_requests_total{call="/v1/verify",code="200"}')" $((v0 + 1))
check "status answers counted" "$(metric 'meterkey_requests_total{call="/v1/status",code="200"}')" $((st0 + 1))

# the group commit: while the writer waits (another process holds the
# archive's write lock for 3 s), the requests that arrive meanwhile are
# batches in flight (up to MK_VERIFY_INFLIGHT, more wait in the service's
# queue and go to the verifier together), and the writer notes the batches
# waiting for it in one transaction: one audit entry of sightings (kind 9)
# for their day, not one a request
expect 0 "$MK" meter frank --meter PM100-000001 --postage 55 --origin 20500 --count 60
mapfile -t G <"$T/out"
for k in 0 1 2 3 4 5; do
  sep=""
  { printf '{"items":['; for ((i = k * 10; i < k * 10 + 10; i++)); do printf '%s{"reference":"%d","text":"%s"}' "$sep" "$i" "$(esc "${G[$i]}")"; sep=,; done; printf ']}'; } >"$T/gc$k.json"
done
# the verifier made first (a new one drops the days past the window once,
# a write of its own in the loop's thread), with a batch of indicia seen
post "$T/esc.json" "$T/warm0.out"
check "the warm-up batch" "$(cat "$T/warm0.out.code")" 207
b0=$(metric meterkey_verify_pipeline_batches_total)
e0=$(sqlite3 "$T/h/archive.db" "SELECT count(*) FROM audit WHERE kind = 9")
(echo "BEGIN IMMEDIATE;"; echo "SELECT 'locked';"; sleep 3; echo "COMMIT;") | sqlite3 "$T/h/archive.db" >"$T/lock0.out" &
lp=$!
for _ in $(seq 50); do grep -q locked "$T/lock0.out" && break; sleep 0.1; done
pids=()
for k in 0 1 2 3 4 5; do post "$T/gc$k.json" "$T/gc$k.out" & pids+=($!); done
wait "${pids[@]}" $lp
for k in 0 1 2 3 4 5; do
  check "group commit: request $k" "$(cat "$T/gc$k.out.code") $(results "$T/gc$k.out" | grep -c ' good$')" "200 10"
done
b1=$(metric meterkey_verify_pipeline_batches_total)
e1=$(sqlite3 "$T/h/archive.db" "SELECT count(*) FROM audit WHERE kind = 9")
echo "6 requests while the writer waited: $((b1 - b0)) batches, $((e1 - e0)) transactions of sightings"
[ $((e1 - e0)) -ge 1 ] && [ $((e1 - e0)) -le 2 ] ||
  { echo "FAIL: 6 requests in $((e1 - e0)) transactions of sightings while the writer waited: not noted together"; fails=$((fails + 1)); }

# a commit that fails: a trigger (put in by the test, as a fault) refuses
# every insert into the day's partitions of the duplicate index; the
# batch's request is answered with the error, nothing good, its audit
# record "failed"; without the trigger the same indicia are good (the
# failed batch recorded nothing). Meanwhile another process holds the
# archive's write lock for a while, and the loop goes on serving (health
# answered) while the writer waits for it.
expect 0 "$MK" meter frank --meter PM100-000001 --postage 55 --origin 20500 --count 20
mapfile -t G <"$T/out"
sep=""
{ printf '{"items":['; for ((i = 0; i < 20; i++)); do printf '%s{"reference":"%d","text":"%s"}' "$sep" "$i" "$(esc "${G[$i]}")"; sep=,; done; printf ']}'; } >"$T/fault.json"
# the verifier made first (a new one drops the days past the window once,
# a write of its own in the loop's thread), with a batch of indicia seen
post "$T/esc.json" "$T/warm.out"
check "the warm-up batch" "$(cat "$T/warm.out.code")" 207
for t in $(sqlite3 "$T/h/archive.db" "SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB 'seen_*_[0-9]*'"); do
  sqlite3 "$T/h/archive.db" "CREATE TRIGGER \"fault_$t\" BEFORE INSERT ON \"$t\" BEGIN SELECT RAISE(ABORT, 'a fault of the test'); END;"
done
(echo "BEGIN IMMEDIATE;"; echo "SELECT 'locked';"; sleep 3; echo "COMMIT;") | sqlite3 "$T/h/archive.db" >"$T/lock.out" &
lp=$!
for _ in $(seq 50); do grep -q locked "$T/lock.out" && break; sleep 0.1; done
post "$T/fault.json" "$T/fault1.out" &
vp=$!
sleep 0.5
t0=$(date +%s%N)
curl -s -o /dev/null -w '%{http_code}' --cacert "$S/ca.pem" --cert "$S/aud1.pem" --key "$S/aud1.key" \
  "https://localhost:$PORT/v1/health" >"$T/h.code"
t1=$(date +%s%N)
check "health while a commit waits" "$(cat "$T/h.code")" 200
[ $(((t1 - t0) / 1000000)) -lt 2000 ] || { echo "FAIL: health took $(((t1 - t0) / 1000000)) ms while a commit waited"; fails=$((fails + 1)); }
wait $vp $lp
check "a failed commit: its status" "$(cat "$T/fault1.out.code")" 500
check "a failed commit: its error" "$(jq -r .error.name "$T/fault1.out")" MK_ERR_DB_CONSTRAINT
check "a failed commit: nothing good" "$(grep -c '"good"' "$T/fault1.out" || true)" 0
grep_out '"phase":"failed","error":"MK_ERR_DB_CONSTRAINT"' "$T/audit.log"
for t in $(sqlite3 "$T/h/archive.db" "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name GLOB 'fault_*'"); do
  sqlite3 "$T/h/archive.db" "DROP TRIGGER \"$t\""
done
post "$T/fault.json" "$T/fault2.out"
check "without the fault: status" "$(cat "$T/fault2.out.code")" 200
check "without the fault: goods" "$(results "$T/fault2.out" | grep -c ' good$')" 20

# a clean stop with a batch in flight (its writer waiting for the write
# lock another process holds): SIGTERM answers it first; under the
# sanitizers, no leak of a request let go
expect 0 "$MK" meter frank --meter PM100-000002 --postage 55 --origin 20500 --count 20
mapfile -t G <"$T/out"
sep=""
{ printf '{"items":['; for ((i = 0; i < 20; i++)); do printf '%s{"reference":"%d","text":"%s"}' "$sep" "$i" "$(esc "${G[$i]}")"; sep=,; done; printf ']}'; } >"$T/term.json"
(echo "BEGIN IMMEDIATE;"; echo "SELECT 'locked';"; sleep 2; echo "COMMIT;") | sqlite3 "$T/h/archive.db" >"$T/lock2.out" &
lp=$!
for _ in $(seq 50); do grep -q locked "$T/lock2.out" && break; sleep 0.1; done
post "$T/term.json" "$T/term.out" &
vp=$!
sleep 0.5
kill -TERM "$DPID"
wait $vp $lp
check "the batch in flight at SIGTERM: answered" "$(cat "$T/term.out.code")" 200
check "the batch in flight at SIGTERM: goods" "$(results "$T/term.out" | grep -c ' good$')" 20
wait "$DPID"
check "meterkeyd's exit" "$?" 0
grep -q "LeakSanitizer\|AddressSanitizer" "$T/d.err" && { echo "FAIL: sanitizer report:"; grep -A20 Sanitizer "$T/d.err"; fails=$((fails + 1)); }
finish
