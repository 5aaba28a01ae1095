#!/usr/bin/env bash
# meterkeyd, first slice (issue 15): HTTPS with mutual TLS, a role per client
# certificate issued by the home's Manufacturing Box (meterkey service cert),
# GET /v1/health and batch POST /v1/verify, one error object. Each refusal
# has its own status and code and changes nothing: a role calling what it
# may not, no certificate, one of another CA, an expired one (refused in
# the handshake: curl gets no HTTP answer), malformed JSON, an unknown
# field, a wrong type, too many items, a body over the limit, an unknown
# call, a wrong method.
. "$(dirname "$0")/lib.bash"
BUILD=${2:?usage: $0 meterkey build-dir}
MKD=$BUILD/meterkeyd
export METERKEY_HOME="$T/h"
M=PM100-000001
S="$T/svc"

# a home made a year back, so that a certificate can have expired already
expect 0 "$MK" init --time 2025-01-01
kms_home
meter_ready 1
expect 0 "$MK" meter frank --meter $M --postage 55 --origin 20500 --count 5
mapfile -t lines <"$T/out"

for r in "server localhost" "verifier scan1" "verifier scan2" "auditor aud1" "post dc1"; do
  set -- $r
  expect 0 "$MK" service cert --role "$1" --name "$2" --out "$S"
done
[ "$(stat -c %a "$S/scan1.key")" = 600 ] || { echo "FAIL: a client key is not 0600"; fails=$((fails+1)); }
openssl verify -CAfile "$S/ca.pem" "$S/scan1.pem" >/dev/null || { echo "FAIL: openssl verify of a client certificate"; fails=$((fails+1)); }
expect 1 "$MK" service cert --role verifier --name scan1 --out "$S"
grep_out "exists already: nothing is overwritten" "$T/err"
expect 2 "$MK" service cert --role root --name x --out "$S"
expect 2 "$MK" service cert --role verifier --name "-x" --out "$S"
expect 2 "$MK" service cert --role verifier --name x --out "$S" --days 826
# expired (valid for a day, a year and a half ago), and one of another CA
expect 0 "$MK" service cert --role verifier --name old --days 1 --out "$S" --time 2025-06-01
openssl ecparam -name prime256v1 -genkey -noout -out "$T/other.key" 2>/dev/null
openssl req -x509 -new -key "$T/other.key" -subj /CN=other -days 5 -out "$T/other.pem" 2>/dev/null

# start(ARGS...) : meterkeyd on a free port, its port in $PORT
start() {
  meterkeyd_start "$MKD" "$S" "$@"
}
# call NAME METHOD PATH [BODY-FILE] : as client NAME, status in $CODE, body in $T/out
call() {
  local who=$1 method=$2 path=$3 body=${4:-}
  CODE=$(curl -s -o "$T/out" -w '%{http_code}' --cacert "$S/ca.pem" --cert "$S/$who.pem" --key "$S/$who.key" \
    -X "$method" ${body:+--data-binary @"$body"} "https://localhost:$PORT$path")
}
want() { [ "$CODE" = "$1" ] || { echo "FAIL: status $CODE, expected $1:"; sed 's/^/  | /' "$T/out"; fails=$((fails+1)); }; }
batch() { # FILE reference:line ... : a verification request, strings JSON-escaped
  local f=$1 sep="" a; shift
  { printf '{"items":['
    for a in "$@"; do
      printf '%s{"reference":"%s","text":"%s"}' "$sep" "$(esc "${a%%:*}")" "$(esc "${a#*:}")"; sep=,
    done
    printf ']}'; } >"$f"
}
esc() { local s=${1//\\/\\\\}; printf '%s' "${s//\"/\\\"}"; }

start --max-items 3 --max-body 4096
for who in scan1 aud1 dc1; do
  call $who GET /v1/health; want 200
  grep_out '^{"status":"ready","archive":"reachable","boxes":"in this process"}$' "$T/out"
done
batch "$T/b1" "a:${lines[0]}" "b:${lines[1]}"
call scan1 POST /v1/verify "$T/b1"; want 200
grep_out '"reference":"a","result":"good","vendor":"good","postal":"good"' "$T/out"
grep_out '"good":2,"count":2' "$T/out"
# some not good: 207, each item with its reference
batch "$T/b2" "a:${lines[0]}" "c:${lines[2]}" "z:not an indicium"
call scan1 POST /v1/verify "$T/b2"; want 207
grep_out '"reference":"a","result":"duplicate"' "$T/out"
grep_out '"reference":"c","result":"good"' "$T/out"
grep_out '"reference":"z","result":"malformed"' "$T/out"
# each item what `meterkey verify --json` prints for its line, with its reference
grep_out '"reference":"c","result":"good","vendor":"good","postal":"good","signature":"none","vendor_domain":"VE","postal_domain":"USPS","device":"PM100-000001","indicia_serial":"US00000001","piece_count":3,"date":"20[0-9-]*","corrected":false}' "$T/out"
grep_out '"reference":"z","result":"malformed","vendor":"malformed","postal":"malformed","signature":"none","corrected":false,"why":"' "$T/out"

# refused, each with its status and error object, and nothing recorded
before=$(sqlite3 "$T/h/archive.db" "SELECT count(*) FROM indicia_seen")
batch "$T/b3" "x:${lines[1]}"
call aud1 POST /v1/verify "$T/b3"; want 403
grep_out '^{"error":{"code":1401,"name":"MK_ERR_SVC_ROLE","message":"role auditor may not call /v1/verify"}}$' "$T/out"
call dc1 POST /v1/verify "$T/b3"; want 403
printf '{"items":[' >"$T/bad"; call scan1 POST /v1/verify "$T/bad"; want 400
grep_out '"name":"MK_ERR_SVC_REQUEST"' "$T/out"
printf '{"items":[{"reference":"x","text":"y","extra":1}]}' >"$T/bad"; call scan1 POST /v1/verify "$T/bad"; want 400
printf '{"items":[{"reference":7,"text":"y"}]}' >"$T/bad"; call scan1 POST /v1/verify "$T/bad"; want 400
printf '{"items":[],"duplicates":false}' >"$T/bad"; call scan1 POST /v1/verify "$T/bad"; want 400
printf '{"items":{"a":1}}' >"$T/bad"; call scan1 POST /v1/verify "$T/bad"; want 400
batch "$T/b4" "1:${lines[1]}" "2:${lines[1]}" "3:${lines[1]}" "4:${lines[1]}"
call scan1 POST /v1/verify "$T/b4"; want 413
grep_out '"name":"MK_ERR_SVC_TOO_LARGE","message":"a batch holds 1 to 3 items, not 4"' "$T/out"
head -c 5000 /dev/zero | tr '\0' ' ' >"$T/big"; call scan1 POST /v1/verify "$T/big"; want 413
call scan1 GET /v1/nothing; want 404
grep_out '"name":"MK_ERR_SVC_ROUTE"' "$T/out"
call scan1 DELETE /v1/verify; want 405
call scan1 GET /v1/verify; want 405
after=$(sqlite3 "$T/h/archive.db" "SELECT count(*) FROM indicia_seen")
[ "$before" = "$after" ] || { echo "FAIL: a refused call recorded sightings ($before -> $after)"; fails=$((fails+1)); }
# refused in the handshake: no HTTP answer at all
for c in "" "--cert $S/old.pem --key $S/old.key" "--cert $T/other.pem --key $T/other.key" \
         "--cert $S/localhost.pem --key $S/localhost.key"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$S/ca.pem" $c "https://localhost:$PORT/v1/health")
  if [ "$c" = "--cert $S/localhost.pem --key $S/localhost.key" ]; then
    # the server's own certificate chains: the handshake passes, the role does not
    [ "$code" = 403 ] || { echo "FAIL: a server certificate as a client got $code"; fails=$((fails+1)); }
  else
    [ "$code" = 000 ] || { echo "FAIL: '${c:-no certificate}' got an HTTP answer ($code)"; fails=$((fails+1)); }
  fi
done
# a client offering its first connection's TLS session on the next (curl
# with two URLs, no keep-alive): a full handshake, served (OpenSSL
# answered it with an internal error alert while no session context was
# set); TLS 1.2 alike
for v in "" "--tls-max 1.2"; do
  codes=$(curl -s $v -w '%{http_code} ' --cacert "$S/ca.pem" --cert "$S/scan1.pem" --key "$S/scan1.key" \
    -H 'Connection: close' -o /dev/null "https://localhost:$PORT/v1/health" -o /dev/null "https://localhost:$PORT/v1/health")
  [ "$codes" = "200 200 " ] || { echo "FAIL: a resumed TLS session ${v:+($v) }got '$codes'"; fails=$((fails+1)); }
done
# requests on one kept-alive connection are not held by Nagle's algorithm
# waiting for the client's delayed ACK (40 ms each): the median of 9 well
# under it
times=$(curl -s -w '%{time_total}\n' --cacert "$S/ca.pem" --cert "$S/scan1.pem" --key "$S/scan1.key" \
  $(for _ in $(seq 10); do printf -- '-o /dev/null https://localhost:%s/v1/health ' "$PORT"; done) | tail -n 9 | sort -n | sed -n 5p)
awk -v t="$times" 'BEGIN { exit !(t < 0.030) }' || { echo "FAIL: a kept-alive request takes $times s (Nagle?)"; fails=$((fails+1)); }
# an Idempotency-Key: the retry gets the first answer, byte for byte, and
# acts once (not "duplicate"); the key with another body 422; keys are
# per client
icall() { # NAME KEY BODY-FILE
  CODE=$(curl -s -D "$T/hdr" -o "$T/out" -w '%{http_code}' --cacert "$S/ca.pem" --cert "$S/$1.pem" --key "$S/$1.key" \
    -H "Idempotency-Key: $2" --data-binary @"$3" "https://localhost:$PORT/v1/verify")
}
batch "$T/b6" "k:${lines[4]}"
icall scan1 key-0001 "$T/b6"; want 200; cp "$T/out" "$T/first"
grep_out '"result":"good"' "$T/out"
seen=$(sqlite3 "$T/h/archive.db" "SELECT count(*) FROM indicia_seen")
icall scan1 key-0001 "$T/b6"; want 200
cmp -s "$T/out" "$T/first" || { echo "FAIL: the replay is not the first answer"; fails=$((fails+1)); }
grep -qi '^Idempotent-Replayed: true' "$T/hdr" || { echo "FAIL: no Idempotent-Replayed header"; fails=$((fails+1)); }
[ "$(sqlite3 "$T/h/archive.db" "SELECT count(*) FROM indicia_seen")" = "$seen" ] || { echo "FAIL: the replay acted"; fails=$((fails+1)); }
icall scan1 key-0001 "$T/b3"; want 422
grep_out '"code":1406,"name":"MK_ERR_SVC_IDEM_MISMATCH"' "$T/out"
icall scan1 "$(printf 'k%.0s' $(seq 200))" "$T/b6"; want 400
icall scan2 key-0001 "$T/b6"; want 207 # another client's key of the same name: acts (a duplicate now)
grep_out '"result":"duplicate"' "$T/out"
icall scan1 key-0002 "$T/b6"; want 207 # a new key acts again
# the audit log: 0600, each accepted batch there before it acted and after
A="$T/h/service-audit.log"
[ "$(stat -c %a "$A")" = 600 ] || { echo "FAIL: the audit log is not 0600"; fails=$((fails+1)); }
[ "$(grep -c '"phase":"request"' "$A")" = 5 ] || { echo "FAIL: audit requests:"; cat "$A"; fails=$((fails+1)); }
[ "$(grep -c '"phase":"answer"' "$A")" = 5 ] || { echo "FAIL: audit answers:"; cat "$A"; fails=$((fails+1)); }
grep -q '"client":"scan1","role":"verifier","call":"POST /v1/verify","items":3' "$A" || { echo "FAIL: audit fields"; cat "$A"; fails=$((fails+1)); }
! grep -q "${lines[0]:0:40}" "$A" || { echo "FAIL: an indicium in the audit log"; fails=$((fails+1)); }
# metrics: auditor and operator only
call aud1 GET /metrics; want 200
grep_out '^meterkey_verifications_total{result="good"} 4$' "$T/out"
grep_out '^meterkey_verifications_total{result="duplicate"} 3$' "$T/out"
grep_out '^meterkey_domain_verifications_total{domain_role="vendor",result="malformed"} 1$' "$T/out"
grep_out '^meterkey_requests_total{call="/v1/verify",code="207"} 3$' "$T/out"
grep_out '^meterkey_requests_total{call="/v1/verify",code="403"} 2$' "$T/out"
grep_out '^meterkey_verify_batch_items_bucket{le="+Inf"} 5$' "$T/out"
grep_out '^meterkey_audit_failures_total 0$' "$T/out"
# by domain (as the indicium names it; a malformed one names none); a
# duplicate is the postal domain's, its vendor result good (issue 16)
grep_out '^meterkey_domain_results_total{domain="VE",domain_role="vendor",result="good"} 7$' "$T/out"
grep_out '^meterkey_domain_results_total{domain="USPS",domain_role="postal",result="duplicate"} 3$' "$T/out"
! grep -q 'meterkey_domain_results_total{.*result="malformed"' "$T/out" ||
  { echo "FAIL: a malformed indicium counted under a domain"; fails=$((fails+1)); }
grep_out '^meterkey_archive_up 1$' "$T/out"
grep_out '^meterkey_archive_ping_seconds [0-9.]*$' "$T/out"
! grep -q '^meterkey_box_enabled' "$T/out" || { echo "FAIL: box gauges for boxes in this process"; fails=$((fails+1)); }
call scan1 GET /metrics; want 403
# and it still serves, then stops on SIGTERM
call scan1 GET /v1/health; want 200
kill -TERM "$DPID"; wait "$DPID"; st=$?
[ "$st" = 0 ] || { echo "FAIL: meterkeyd exited $st on SIGTERM"; fails=$((fails+1)); }
grep -q '"msg":"stopped"' "$T/d.err" || { echo "FAIL: no stop message"; fails=$((fails+1)); }

# the audit log failing (a full disk) or hanging (a pipe nobody reads):
# the batch refused with its own code, nothing verified, nothing recorded
start --audit /dev/full
before=$(sqlite3 "$T/h/archive.db" "SELECT count(*) FROM indicia_seen")
batch "$T/b5" "n:${lines[3]}"
call scan1 POST /v1/verify "$T/b5"; want 503
grep_out '"code":1405,"name":"MK_ERR_SVC_AUDIT","message":"the batch was not verified: ' "$T/out"
kill -TERM "$DPID"; wait "$DPID"
mkfifo "$T/fifo"; exec 7<>"$T/fifo"
head -c 65536 /dev/zero >&7 # the pipe full: the next write hangs
start --audit "$T/fifo" --audit-timeout 300
call scan1 POST /v1/verify "$T/b5"; want 503
grep_out '"name":"MK_ERR_SVC_AUDIT"' "$T/out"
call scan1 POST /v1/verify "$T/b5"; want 503 # still hanging: refused at once
after=$(sqlite3 "$T/h/archive.db" "SELECT count(*) FROM indicia_seen")
[ "$before" = "$after" ] || { echo "FAIL: a batch the audit refused recorded sightings"; fails=$((fails+1)); }
call aud1 GET /metrics; want 200
grep_out '^meterkey_audit_failures_total 2$' "$T/out"
# the pipe read: the hung write ends, and the next batch goes through
timeout 5 head -c 65536 <&7 >/dev/null
sleep 0.2
call scan1 POST /v1/verify "$T/b5"; want 200
exec 7>&-
kill -TERM "$DPID"; wait "$DPID"

# health with every box a process of its own: ready; one box sealed: 503
# sealed, and a batch refused (the box's own refusal, 409); nothing recorded
MK_E2E_BOXES=process
boxes_as_processes "$T/h"
start --boxes "$T/run"
call aud1 GET /v1/health; want 200
grep_out '^{"status":"ready","archive":"reachable","boxes":{.*"B00000001":"enabled".*}}$' "$T/out"
"$MK" box seal --box B00000001 --boxes "$T/run" >/dev/null 2>&1
call aud1 GET /v1/health; want 503
grep_out '"status":"sealed"' "$T/out"
grep_out '"B00000001":"sealed"' "$T/out"
grep_out '"O00000001":"enabled"' "$T/out"
batch "$T/b7" "s:${lines[3]}"
seen=$(sqlite3 "$T/h/archive.db" "SELECT count(*) FROM indicia_seen")
call scan1 POST /v1/verify "$T/b7"; want 409
grep_out '"name":"MK_RC_BOX_DISABLED"' "$T/out"
[ "$(sqlite3 "$T/h/archive.db" "SELECT count(*) FROM indicia_seen")" = "$seen" ] || { echo "FAIL: a refused batch recorded"; fails=$((fails+1)); }
kill -TERM "$DPID"; wait "$DPID"
boxes_back_in_process "$T/h"
unset MK_E2E_BOXES

# the OpenAPI description (docs/openapi.json) and the server agree: the
# same calls, methods and roles, and every status this test met documented
SPEC="$(dirname "$0")/../../docs/openapi.json"
expect 0 "$MKD" --routes
sort "$T/out" >"$T/routes"
jq -r '.paths | to_entries[] | .key as $p | .value | to_entries[] |
  "\(.key | ascii_upcase) \($p) \(.value["x-meterkey-roles"] | join(","))"' "$SPEC" | sort >"$T/spec" ||
  { echo "FAIL: docs/openapi.json does not parse"; fails=$((fails+1)); }
diff "$T/routes" "$T/spec" >/dev/null || { echo "FAIL: the routes and docs/openapi.json differ:"; diff "$T/routes" "$T/spec"; fails=$((fails+1)); }
for code in 200 207 400 403 405 409 413 422 503; do
  jq -e --arg c "$code" '.paths["/v1/verify"].post.responses | has($c)' "$SPEC" >/dev/null ||
    { echo "FAIL: /v1/verify's $code is not in docs/openapi.json"; fails=$((fails+1)); }
done
for code in 200 503; do
  jq -e --arg c "$code" '.paths["/v1/health"].get.responses | has($c)' "$SPEC" >/dev/null ||
    { echo "FAIL: /v1/health's $code is not in docs/openapi.json"; fails=$((fails+1)); }
done

# usage errors and a bad start
expect 2 "$MKD" --cert "$S/localhost.pem"
expect 2 "$MKD" --cert "$S/localhost.pem" --key "$S/localhost.key" --port 70000
expect 1 "$MKD" --cert "$S/scan1.pem" --key "$S/localhost.key" --port 0
grep_out "does not load" "$T/err"
expect 0 "$MKD" --help
grep_out "usage: meterkeyd" "$T/out"
finish
