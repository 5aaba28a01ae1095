#!/usr/bin/env bash
# meterkeyd's limits (issue 15), each answered explicitly with its status
# and the error object, counted in /metrics, and changing nothing; each
# with its twin just under the limit, which passes:
#   a body over --max-body (Content-Length, chunked, or announced with
#   Expect: 100-continue and never sent): 413 before it is read;
#   a head the service does not frame: 400;
#   a client over --rate/--burst: 429 with Retry-After, another client not;
#   a connection over --max-connections: 503 with Retry-After, and at
#   twice the limit none accepted until one closes;
#   a client that stalls in its head or body: 408 after --timeout and
#   closed, while another client is answered meanwhile; an idle one closed.
. "$(dirname "$0")/lib.bash"
BUILD=${2:?usage: $0 meterkey build-dir}
MKD=$BUILD/meterkeyd
export METERKEY_HOME="$T/h"
M=PM100-000001
S="$T/svc"

expect 0 "$MK" init
kms_home
meter_ready 1
expect 0 "$MK" meter frank --meter $M --postage 55 --origin 20500 --count 4
mapfile -t lines <"$T/out"
for r in "server localhost" "verifier scan1" "verifier scan2" "auditor aud1"; do
  set -- $r
  expect 0 "$MK" service cert --role "$1" --name "$2" --out "$S"
done

start() { # ARGS... : meterkeyd on a free port, its port in $PORT
  meterkeyd_start "$MKD" "$S" "$@"
}
stop() { # and nothing the sanitizers or libevent complained of
  kill -TERM "$DPID"; wait "$DPID"
  ! grep -Eq 'ERROR: |runtime error|\[(warn|err)\]' "$T/d.err" || { echo "FAIL: meterkeyd's errors:"; sed 's/^/  | /' "$T/d.err"; fails=$((fails+1)); }
}
# call NAME METHOD PATH [CURL-ARGS...] : status in $CODE, body in $T/out, headers in $T/hdr
call() {
  local who=$1 method=$2 path=$3; shift 3
  CODE=$(curl -s -D "$T/hdr" -o "$T/out" -w '%{http_code}' --max-time 10 --cacert "$S/ca.pem" --cert "$S/$who.pem" \
    --key "$S/$who.key" -X "$method" "$@" "https://localhost:$PORT$path")
}
want() { [ "$CODE" = "$1" ] || { echo "FAIL: status $CODE, expected $1:"; sed 's/^/  | /' "$T/out"; fails=$((fails+1)); }; }
metric() { # NAME-AND-LABELS VALUE : /metrics (as aud1, in $T/metrics) shows it (VALUE "": fetched only)
  curl -s --cacert "$S/ca.pem" --cert "$S/aud1.pem" --key "$S/aud1.key" "https://localhost:$PORT/metrics" >"$T/metrics"
  [ -z "$2" ] || grep -qxF "$1 $2" "$T/metrics" || { echo "FAIL: not '$1 $2' in /metrics:"; grep -F "${1%%\{*}" "$T/metrics" | sed 's/^/  | /'; fails=$((fails+1)); }
}
# raw CLIENT-NAME : a TLS client (openssl s_client) that sends what it reads
# on standard input as it comes and prints what the server answers
raw() {
  timeout 15 openssl s_client -connect "127.0.0.1:$PORT" -cert "$S/$1.pem" -key "$S/$1.key" -CAfile "$S/ca.pem" -quiet \
    -nocommands 2>/dev/null
}
seen() { sightings "$T/h/archive.db"; } # indicia seen
audited() { wc -l <"$T/h/service-audit.log"; }
# body FILE SIZE LINE : a verification request of exactly SIZE bytes (white space after the JSON)
body() {
  printf '{"items":[{"reference":"r","text":"%s"}]}' "$3" >"$1"
  local pad=$(( $2 - $(stat -c %s "$1") ))
  head -c "$pad" /dev/zero | tr '\0' ' ' >>"$1"
}

# ---- the body: --max-body 4096 --------------------------------------------------------------
start --max-body 4096
before=$(seen); logged=$(audited)
body "$T/over" 4097 "${lines[0]}"
call scan1 POST /v1/verify --data-binary @"$T/over"; want 413
grep_out '^{"error":{"code":1404,"name":"MK_ERR_SVC_TOO_LARGE","message":"a request body is at most 4096 bytes, not 4097"}}$' "$T/out"
call scan1 POST /v1/verify --data-binary @"$T/over" -H 'Transfer-Encoding: chunked'; want 413
grep_out '"name":"MK_ERR_SVC_TOO_LARGE","message":"a request body is at most 4096 bytes, not ' "$T/out"
# announced far over the limit, nothing of it sent: refused at the head
raw scan1 < <(printf 'POST /v1/verify HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000000\r\n\r\n'
               sleep 10) >"$T/raw"
grep_out '^HTTP/1.1 413 ' "$T/raw"
grep_out '"message":"a request body is at most 4096 bytes, not 1000000000"' "$T/raw"
! grep -q '100 Continue' "$T/raw" || { echo "FAIL: 100 Continue for a body over the limit"; fails=$((fails+1)); }
# heads the service does not frame: 400 with the error object
for h in 'Content-Length: 5\r\nTransfer-Encoding: chunked' 'Content-Length: 5x' 'X-A: 1\r\n folded' \
         'Transfer-Encoding: gzip'; do
  raw scan1 < <(printf "POST /v1/verify HTTP/1.1\r\nHost: x\r\n$h\r\n\r\nhello"; sleep 10) >"$T/raw"
  grep_out '^HTTP/1.1 400 ' "$T/raw"
  grep_out '"code":1400,"name":"MK_ERR_SVC_REQUEST"' "$T/raw"
done
[ "$(seen)" = "$before" ] && [ "$(audited)" = "$logged" ] ||
  { echo "FAIL: a refused body recorded sightings or audit lines"; fails=$((fails+1)); }
metric 'meterkey_limit_refusals_total{limit="body"}' 3
metric 'meterkey_limit_refusals_total{limit="http"}' 4
metric 'meterkey_requests_total{call="/v1/verify",code="413"}' 3
# just under: 4096 bytes, whole or chunked, and with Expect: verified
body "$T/under" 4096 "${lines[0]}"
call scan1 POST /v1/verify --data-binary @"$T/under"; want 200
grep_out '"reference":"r","result":"good"' "$T/out"
body "$T/under" 4096 "${lines[1]}"
call scan1 POST /v1/verify --data-binary @"$T/under" -H 'Transfer-Encoding: chunked'; want 200
body "$T/under" 4096 "${lines[2]}"
call scan1 POST /v1/verify --data-binary @"$T/under" -H 'Expect: 100-continue'; want 200
grep_out '"result":"good"' "$T/out"
[ "$(seen)" = $((before + 3)) ] || { echo "FAIL: the bodies under the limit were not all verified ($before -> $(seen))"; fails=$((fails+1)); }
# the client's Connection: close is honoured and its answer still arrives whole
call scan1 GET /v1/health -H 'Connection: close'; want 200
grep_out '"status":"ready"' "$T/out"
stop

# ---- the rate: --rate 1 --burst 3 -------------------------------------------------------
start --rate 1 --burst 3
U="https://localhost:$PORT/v1/verify"
printf '{"items":[{"text":"x"}]}' >"$T/junk"
codes=$(curl -s -D "$T/hdr" -w '%{http_code} ' --cacert "$S/ca.pem" --cert "$S/scan1.pem" --key "$S/scan1.key" \
  --data-binary @"$T/junk" -o "$T/r1" "$U" -o "$T/r2" "$U" -o "$T/r3" "$U" -o "$T/r4" "$U" -o "$T/out" "$U")
# one connection, five calls within a second: a burst of three, then refused
[ "$codes" = "207 207 207 429 429 " ] || { echo "FAIL: rate: statuses $codes"; fails=$((fails+1)); }
grep_out '^{"error":{"code":1408,"name":"MK_ERR_SVC_RATE","message":"client scan1 is over 1 requests a second (a burst of 3); retry after 1 s"}}$' "$T/out"
grep -qix 'Retry-After: 1.' "$T/hdr" || { echo "FAIL: no Retry-After: 1"; cat "$T/hdr"; fails=$((fails+1)); }
call scan2 POST /v1/verify --data-binary @"$T/junk"; want 207 # another client: its own bucket
! grep -qi '^Retry-After' "$T/hdr" || { echo "FAIL: Retry-After on a 207"; fails=$((fails+1)); }
# health is not limited (as Vault's sys/health): monitoring is never throttled
H="https://localhost:$PORT/v1/health"
codes=$(curl -s -w '%{http_code} ' --cacert "$S/ca.pem" --cert "$S/scan1.pem" --key "$S/scan1.key" \
  -o /dev/null "$H" -o /dev/null "$H" -o /dev/null "$H")
[ "$codes" = "200 200 200 " ] || { echo "FAIL: health was rate limited: $codes"; fails=$((fails+1)); }
sleep 1.2
call scan1 POST /v1/verify --data-binary @"$T/junk"; want 207 # a token again after Retry-After
metric 'meterkey_limit_refusals_total{limit="rate"}' 2
metric 'meterkey_requests_total{call="/v1/verify",code="429"}' 2
stop

# ---- connections: --max-connections 2 --------------------------------------------------------
start --max-connections 2 --timeout 20
hold() { # a connection held open, idle
  timeout 30 openssl s_client -connect "127.0.0.1:$PORT" -cert "$S/$1.pem" -key "$S/$1.key" -CAfile "$S/ca.pem" \
    -quiet -nocommands < <(sleep 30) >/dev/null 2>&1 &
  HELD+=($!); BOX_PIDS+=($!)
}
HELD=()
hold scan2; hold scan2
sleep 0.5
call scan1 GET /v1/health; want 503
grep_out '^{"error":{"code":1409,"name":"MK_ERR_SVC_BUSY","message":"the service is at its limit of 2 connections"}}$' "$T/out"
grep -qix 'Retry-After: 1.' "$T/hdr" || { echo "FAIL: no Retry-After on 503"; cat "$T/hdr"; fails=$((fails+1)); }
# twice the limit open (two held, two more held over it): none accepted
hold scan2; hold scan2
sleep 0.5
call scan1 GET /v1/health --max-time 2
[ "$CODE" = 000 ] || { echo "FAIL: a connection at twice the limit was answered ($CODE)"; fails=$((fails+1)); }
kill "${HELD[3]}" "${HELD[2]}" "${HELD[1]}"; sleep 0.5
call scan1 GET /v1/health; want 200 # one held, one free
metric 'meterkey_limit_refusals_total{limit="connections"}' 1
# paused at least once (again if the connection curl gave up on, still in the
# kernel's queue, is accepted before the others' ends are seen)
metric 'meterkey_accept_paused_total' ""
v=$(sed -n 's/^meterkey_accept_paused_total //p' "$T/metrics")
[ "${v:-0}" -ge 1 ] || { echo "FAIL: accepting never paused ($v)"; fails=$((fails+1)); }
kill "${HELD[0]}"
stop

# ---- slow clients: --timeout 1 ---------------------------------------------------------------
start --timeout 1
before=$(seen); logged=$(audited)
# a head that stalls: 408 after a second; meanwhile another client is served
t0=$(date +%s%N)
raw scan2 < <(printf 'POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Le'; sleep 10) >"$T/slow" & slow=$!
BOX_PIDS+=($slow)
sleep 0.2
call aud1 GET /v1/health; want 200
[ ! -s "$T/slow" ] || { echo "FAIL: the stalled client was answered before the other"; fails=$((fails+1)); }
wait "$slow"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -ge 900 ] && [ "$ms" -lt 5000 ] || { echo "FAIL: the stalled client was cut after $ms ms"; fails=$((fails+1)); }
grep_out '^HTTP/1.1 408 ' "$T/slow"
grep_out '^{"error":{"code":1410,"name":"MK_ERR_SVC_TIMEOUT","message":"the request did not arrive whole within 1 s"}}$' "$T/slow"
# a body that stalls (its head whole, a good indicium's line half sent)
printf '{"items":[{"text":"%s"}]}' "${lines[3]}" >"$T/b"
n=$(stat -c %s "$T/b")
raw scan2 < <(printf 'POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n\r\n' "$n"; head -c 40 "$T/b"; sleep 10) >"$T/slow"
grep_out '^HTTP/1.1 408 ' "$T/slow"
grep_out '"name":"MK_ERR_SVC_TIMEOUT"' "$T/slow"
[ "$(seen)" = "$before" ] && [ "$(audited)" = "$logged" ] ||
  { echo "FAIL: a cut request recorded sightings or audit lines"; fails=$((fails+1)); }
# just under: the same request sent slowly but whole within the second
raw scan2 < <(printf 'POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n\r\n' "$n"; sleep 0.3
              head -c 40 "$T/b"; sleep 0.3; tail -c +41 "$T/b"; sleep 2) >"$T/slow"
grep_out '^HTTP/1.1 200 ' "$T/slow"
grep_out '"result":"good"' "$T/slow"
# an idle connection: closed without an answer
t0=$(date +%s%N)
raw scan2 < <(sleep 10) >"$T/slow"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ ! -s "$T/slow" ] && [ "$ms" -lt 5000 ] || { echo "FAIL: an idle connection: $ms ms, answered '$(cat "$T/slow")'"; fails=$((fails+1)); }
metric 'meterkey_limit_refusals_total{limit="timeout"}' 2
metric 'meterkey_requests_total{call="/v1/verify",code="408"}' 2
metric 'meterkey_connections_idle_closed_total' 2 # that one, and the one answered just under once idle
stop

# ---- the statuses met here are documented for every call (docs/openapi.json) --------------
SPEC="$(dirname "$0")/../../docs/openapi.json"
for code in 400 408 413 429 503; do
  jq -e --arg c "$code" '[.paths[][] | .responses | has($c)] | all' "$SPEC" >/dev/null ||
    { echo "FAIL: status $code is not documented for every call in docs/openapi.json"; fails=$((fails+1)); }
done
for code in 429 503; do # with Retry-After (a $ref followed)
  jq -e --arg c "$code" '. as $d | [.paths[][] | .responses[$c] |
      if has("$ref") then $d.components.responses[."$ref" | split("/") | last] else . end |
      .headers | has("Retry-After")] | all' "$SPEC" >/dev/null ||
    { echo "FAIL: Retry-After is not documented with $code for every call"; fails=$((fails+1)); }
done

# usage errors
expect 2 "$MKD" --cert "$S/localhost.pem" --key "$S/localhost.key" --max-connections 0
expect 2 "$MKD" --cert "$S/localhost.pem" --key "$S/localhost.key" --rate -1
expect 2 "$MKD" --cert "$S/localhost.pem" --key "$S/localhost.key" --burst 0
expect 0 "$MKD" --help
grep_out "--max-connections N" "$T/out"
grep_out "--rate N" "$T/out"
finish
