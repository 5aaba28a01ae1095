#!/usr/bin/env bash
# A fleet's whole life through meterkeyd (issue 15): on the KMS host only
# the ceremony (init, domains, boxes, the service's certificates); then
# over HTTPS, with curl and with `meterkey --server`, each client in its
# role: the factory makes meters and installs their keys, the post
# registers them and distributes token keys, the meter (the simulator, at
# the mailer) franks, the verifier verifies through Brass and Tin, the post
# retires a meter, the auditor reads the history and the error log. The
# CLI's answers through the service are the same as on the KMS host (text,
# JSON, refusals, exit status). Each role calling what it may not, a
# malformed request, a replayed key with another body and an audit log
# that cannot be written are refused with their status and error object,
# and change nothing.
#
# On the SQLite archive with every box a process of its own (meterkeyd
# --boxes); service_fleet_pg.sh runs it on PostgreSQL (FLEET_PG=1) with
# the boxes in meterkeyd.
. "$(dirname "$0")/lib.bash"
BUILD=${2:?usage: $0 meterkey build-dir}
MKD=$BUILD/meterkeyd
export METERKEY_HOME="$T/h"
S="$T/svc"
ARCH=()
if [ "${FLEET_PG:-}" = 1 ]; then
  PGSH="$(dirname "$0")/../archive/pg.sh"
  bash "$PGSH" start "$T/pgstate" >/dev/null || { echo "FAIL: no PostgreSQL server"; exit 1; }
  trap 'bash "$PGSH" stop "$T/pgstate"; for p in "${BOX_PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait; rm -rf "$T"' EXIT
  ARCH=(--archive "$(cat "$T/pgstate/url")")
fi
mk() { expect "$1" "$MK" "${@:2}" "${ARCH[@]}"; }

# ---- the ceremony, on the KMS host ----
mk 0 init
kms_home "${ARCH[@]}"
mk 0 box init --type tin --domain VE --domain USPS
for r in "server localhost" "factory fac1" "post dc1" "verifier scan1" "auditor aud1" "operator op1"; do
  set -- $r
  mk 0 service cert --role "$1" --name "$2" --out "$S"
done
# a post client named as the factory's (its certificate elsewhere, then copied)
mk 0 service cert --role post --name fac1 --out "$T/svc2"
cp "$T/svc2/fac1.pem" "$S/postfac1.pem"; cp "$T/svc2/fac1.key" "$S/postfac1.key"
BOXES=()
if [ "${FLEET_PG:-}" != 1 ]; then
  MK_E2E_BOXES=process boxes_as_processes "$METERKEY_HOME"
  unset METERKEY_BOXES
  BOXES=(--boxes "$T/run")
fi

start() { # ARGS... : meterkeyd on a free port, $PORT
  meterkeyd_start "$MKD" "$S" "${ARCH[@]}" "${BOXES[@]}" "$@"
}
stop() { kill "$DPID"; wait "$DPID" 2>/dev/null; }
call() { # NAME METHOD PATH [BODY] [IDEMPOTENCY-KEY] : status in $CODE, body in $T/out, headers in $T/hdr
  CODE=$(curl -s -o "$T/out" -D "$T/hdr" -w '%{http_code}' --cacert "$S/ca.pem" --cert "$S/$1.pem" --key "$S/$1.key" \
    -X "$2" ${4:+--data-binary "$4"} ${5:+-H "Idempotency-Key: $5"} "https://localhost:$PORT$3")
  echo "$2 ${3%%\?*} $CODE" >>"$T/met"
}
want() {
  [ "$CODE" = "$1" ] && return
  echo "FAIL: status $CODE, expected $1 ($2):"; sed 's/^/  | /' "$T/out"; fails=$((fails+1))
  # no answer at all: what the service said last (a crash, a refusal to start)
  [ "$CODE" != 000 ] || { echo "  meterkeyd's log ends:"; tail -n 5 "$T/d.err" | sed 's/^/  | /'; }
}
# as NAME ARGS... : meterkey through the service as client NAME (out, err, status in $RC)
as() {
  local who=$1; shift
  "$MK" "$@" --server "https://localhost:$PORT" --tls-cert "$S/$who.pem" --tls-key "$S/$who.key" \
    --tls-ca "$S/ca.pem" >"$T/out" 2>"$T/err"
  RC=$?
}
rc() { [ "$RC" = "$1" ] || { echo "FAIL: exit $RC, expected $1 ($2):"; sed 's/^/  | /' "$T/out" "$T/err"; fails=$((fails+1)); }; }
# same NAME ARGS... : the command through the service as NAME and on the
# KMS host give the same standard output, standard error and exit status
same() {
  local who=$1; shift
  as "$who" "$@"
  cp "$T/out" "$T/r.out"; cp "$T/err" "$T/r.err"; local r=$RC
  "$MK" "$@" "${ARCH[@]}" "${BOXES[@]}" >"$T/l.out" 2>"$T/l.err"
  local l=$?
  if [ "$r" != "$l" ] || ! cmp -s "$T/r.out" "$T/l.out" || ! cmp -s "$T/r.err" "$T/l.err"; then
    echo "FAIL: '$*' through the service (exit $r) and locally (exit $l) differ:"
    diff "$T/l.out" "$T/r.out" | sed 's/^/  | /'; diff "$T/l.err" "$T/r.err" | sed 's/^/  | /'
    fails=$((fails+1))
  fi
}
meters() { "$MK" meter list --json "${ARCH[@]}"; }

start
call aud1 GET /v1/health; want 200 health
if [ "${FLEET_PG:-}" != 1 ]; then grep_out '"B00000001":"enabled"' "$T/out"; fi

# ---- the factory: meters made, keys requested and installed ----
call fac1 POST /v1/meter/create '{"product_code":"PM100","msn":"000001"}' c1; want 200 "meter create"
grep_out '^{"ok":true,"id":"PM100-000001","state":"manufactured","pki":"locked"}$' "$T/out"
# the key again with the same body: the first answer, marked, acted on once
call fac1 POST /v1/meter/create '{"product_code":"PM100","msn":"000001"}' c1; want 200 "meter create replayed"
grep_out '"id":"PM100-000001"' "$T/out"
grep -qi '^Idempotent-Replayed: true' "$T/hdr" || { echo "FAIL: a replay is not marked"; fails=$((fails+1)); }
# the same key with another body: 422, nothing made
call fac1 POST /v1/meter/create '{"product_code":"PM100","msn":"000009"}' c1; want 422 "key reused"
grep_out '"name":"MK_ERR_SVC_IDEM_MISMATCH"' "$T/out"
[ "$(meters | jq length)" = 1 ] || { echo "FAIL: a replayed or refused create made a meter"; fails=$((fails+1)); }
# a key is for one call: the same key and body on another call is another
# request (422), never the first call's answer replayed
call fac1 POST /v1/key/abandon '{"domain":"VE","key_id":99}' k2; want 409 "abandon of no key"
call fac1 POST /v1/key/confirm '{"domain":"VE","key_id":99}' k2; want 422 "the key on another call"
grep_out '"name":"MK_ERR_SVC_IDEM_MISMATCH"' "$T/out"
# a call that reads takes no key: ignored
call fac1 GET /v1/meter/list '' k3; want 200 "a reading call with a key"
call fac1 GET /v1/meter/list '' k3; want 200 "again"
grep -qi '^Idempotent-Replayed' "$T/hdr" && { echo "FAIL: a reading call replayed"; fails=$((fails+1)); }
call fac1 POST /v1/meter/install '{"meter":"PM100-000001","domain":"VE"}'; want 200 "install VE"
grep_out '"status":"INSTALLED","steel":"S00000001","brass":"B00000001"' "$T/out"
# a key requested, then installed from its record by name
call fac1 POST /v1/key/request '{"domain":"USPS"}'; want 200 "key request"
rec=$(jq -r .install_record "$T/out")
call fac1 POST /v1/meter/install "{\"meter\":\"PM100-000001\",\"record\":\"${rec##*/}\"}"; want 200 "install by record"
grep_out '"domain":"USPS"' "$T/out"
# a record named by a path is refused: the service reads its kdc folder only
call fac1 POST /v1/meter/install '{"meter":"PM100-000001","record":"../trust/root.pem"}'; want 400 "record path"
grep_out 'is not a file name of the home' "$T/out"

# the same through meterkey --server (the factory's line computer)
as fac1 meter create --product-code PM100 --msn 000002; rc 0 "meter create --server"
grep_out '^meter PM100-000002 manufactured, in transport lock$' "$T/out"
as fac1 meter install --meter PM100-000002 --domain VE; rc 0 "install --server"
grep_out '^meter PM100-000002: key VE/[0-9]* INSTALLED (Steel S00000001, confirmed by Brass B00000001)$' "$T/out"
as fac1 key request --domain USPS --json; rc 0 "key request --server"
rec=$(jq -r .install_record "$T/out")
as fac1 meter install --meter PM100-000002 --record "$rec"; rc 0 "install --record --server"
as fac1 meter create --product-code PM100 --msn 000003; rc 0
as fac1 meter install --meter PM100-000003 --domain VE; rc 0
as fac1 meter install --meter PM100-000003 --domain USPS; rc 0

# ---- the post: registration, token keys ----
# the name of a client of another role is another client: its keys its own
call postfac1 POST /v1/meter/register '{"meter":"PM100-000001","indicia":"US00000001","country":"US"}' c1
want 200 "register, a key of the same name as another role's"
grep_out '"status":"ACTIVE"' "$T/out"
call dc1 POST /v1/meter/register '{"meter":"PM100-000001","indicia":"US00000001","country":"US"}'; want 409 "registered twice"
grep_out '"name":"MK_ERR_STATE"' "$T/out"
as dc1 meter register --meter PM100-000002 --indicia US00000002 --country US; rc 0 "register --server"
grep_out '^meter PM100-000002 registered in US as US00000002: its keys are ACTIVE$' "$T/out"
as dc1 meter register --meter PM100-000003 --indicia US00000003 --country US; rc 0
month=$(date -u +%Y-%m)
for d in VE USPS; do
  call dc1 POST /v1/tokens/distribute "{\"domain\":\"$d\",\"month\":\"$month\"}"; want 200 "distribute $d"
  grep_out '"records":3' "$T/out"
done

# an auditor keeps today's signed head of VE, fetched through the service
as aud1 archive head --domain VE --out "$T/kept.head"; rc 0 "head --out --server"
grep_out "^domain VE: head [0-9]*$" "$T/out"
grep_out "^  signature checked with $METERKEY_HOME/domains/VE.pem$" "$T/out"

# ---- the meters frank (the simulator, at the mailer) ----
: >"$T/lines"
for n in 1 2 3; do
  mk 0 meter credit --meter PM100-00000$n --amount 1000
  mk 0 meter frank --meter PM100-00000$n --postage 55 --origin 20500 --count 2
  cat "$T/out" >>"$T/lines"
done
mapfile -t L <"$T/lines"
[ "${#L[@]}" = 6 ] || { echo "FAIL: 6 indicia expected, ${#L[@]} franked"; fails=$((fails+1)); }
items() { local i s=""; for i in "$@"; do s+="${s:+,}{\"reference\":\"r$i\",\"text\":\"${L[$i]}\"}"; done; echo "[$s]"; }

# ---- the verifier: Brass, then Tin with the token keys ----
call scan1 POST /v1/verify "{\"items\":$(items 0 1 2 3 4 5)}"; want 200 "verify Brass"
[ "$(jq .good "$T/out")" = 6 ] || { echo "FAIL: not 6 good through Brass"; cat "$T/out"; fails=$((fails+1)); }
call scan1 POST /v1/verify "{\"items\":$(items 0 1 2 3 4 5),\"tin\":true,\"duplicates\":false}"; want 200 "verify Tin"
[ "$(jq .good "$T/out")" = 6 ] || { echo "FAIL: not 6 good through Tin"; cat "$T/out"; fails=$((fails+1)); }
as scan1 verify "${L[0]}" --no-duplicates; rc 0 "verify --server"
grep_out '^good  *vendor VE: good, postal USPS: good; PM100-000001 piece 1$' "$T/out"
# the verifier's answers through the service and on the KMS host: the same
bad=${L[1]:0:20}X${L[1]:21}
same scan1 verify "${L[1]}" "not an indicium" --no-duplicates
same scan1 verify "${L[1]}" "not an indicium" "$bad" --no-duplicates --json
same scan1 verify "${L[2]}" "$bad" --tin --no-duplicates
printf '%s\n' "${L[@]}" >"$T/file"
same scan1 verify --file "$T/file" --no-duplicates
same scan1 verify --file "$T/nofile" --no-duplicates
# bytes past ASCII (a scanner's misread): the same answers, line for line
printf '%s\n' "${L[0]}" "abc$(printf '\351')def" "${L[1]:0:30}$(printf '\303\251')${L[1]:32}" "${L[2]}" >"$T/latin"
same scan1 verify --file "$T/latin" --no-duplicates
same scan1 verify --file "$T/latin" --no-duplicates --json

# the other forms of an indicium: its binary form and its DataMatrix PNG,
# base64 (the binary: indicium-1 of docs/indicium.md, a device of no home,
# dated 2025-03-14: out of the domain's date window, which is checked before
# the device, docs/indicium.md 7b)
bin=$(awk '/<!-- vector: indicium-1-binary -->/ { v = 1; next } v && /^```$/ { if (++f == 2) exit; next } v' \
  "$(dirname "$0")/../../docs/indicium.md" | tr -d ' \n' | perl -pe 's/([0-9a-f]{2})/chr hex $1/gie' | base64 -w0)
[ ${#bin} = 112 ] || { echo "FAIL: the binary vector was not read (${#bin} base64 characters)"; fails=$((fails+1)); }
mk 0 meter frank --meter PM100-000002 --postage 55 --origin 20500 --png "$T/p.png"
png=$(base64 -w0 "$T/p.png")
call scan1 POST /v1/verify "{\"items\":[{\"reference\":\"b\",\"binary\":\"$bin\"},{\"reference\":\"p\",\"png\":\"$png\"},{\"reference\":\"g\",\"binary\":\"aGVsbG8=\"},{\"reference\":\"h\",\"png\":\"aGVsbG8=\"}],\"duplicates\":false}"
want 207 "binary and png items"
jq -e '.results[0] | .result == "date_out_of_range" and .device == "PC7-MSN000017" and .date == "2025-03-14" and .reference == "b"' "$T/out" >/dev/null ||
  { echo "FAIL: the binary form was not read"; cat "$T/out"; fails=$((fails+1)); }
jq -e '.results[1] | .result == "good" and .device == "PM100-000002" and .piece_count == 3' "$T/out" >/dev/null ||
  { echo "FAIL: the PNG was not read"; cat "$T/out"; fails=$((fails+1)); }
jq -e '.results[2].result == "malformed" and (.results[2].why | test("binary form")) and
       .results[3].result == "malformed" and (.results[3].why | test("DataMatrix"))' "$T/out" >/dev/null ||
  { echo "FAIL: undecodable binary or png not malformed with why"; cat "$T/out"; fails=$((fails+1)); }
for it in '{"binary":"@@@@"}' '{"png":"QQ="}' '{"text":"x","png":"QQ=="}' '{"binary":7}' '{}'; do
  call scan1 POST /v1/verify "{\"items\":[$it]}"; want 400 "item $it"
done

# ---- the post retires a meter ----
as dc1 meter retire --meter PM100-000003; rc 0 "retire --server"
grep_out '^meter PM100-000003 retired: its keys are OBSOLETE$' "$T/out"
call dc1 POST /v1/meter/retire '{"meter":"PM100-000003"}'; want 409 "retired twice"
grep_out '"error":{"code":' "$T/out"
mk 1 meter frank --meter PM100-000003 --postage 55 --origin 20500

# ---- the auditor ----
call aud1 GET '/v1/meter/list'; want 200 "meter list"
[ "$(jq '[.[] | .keys[] | select(.status=="OBSOLETE")] | length' "$T/out")" = 2 ] ||
  { echo "FAIL: the retired meter's 2 keys are not OBSOLETE"; cat "$T/out"; fails=$((fails+1)); }
call aud1 GET '/v1/archive/history?domain=VE&key=1'; want 200 history
grep_out '"status":"ACTIVE"' "$T/out"
call aud1 GET '/v1/archive/errors?domain=VE'; want 200 errors
# the CLI's answers through the service and on the KMS host: the same
same aud1 meter list
same aud1 meter list --json
same aud1 archive history --domain VE --key 1
same aud1 archive history --domain VE --key 1 --json
same aud1 archive history --domain VE --key 99
same aud1 archive errors --domain VE
same dc1 meter retire --meter PM100-000003
same dc1 meter retire --meter PM100-000003 --json
same dc1 meter register --meter PM100-000099 --indicia US9 --country US
same fac1 key confirm --domain VE --key-id 99
for d in VE USPS; do mk 0 archive verify --domain "$d"; done
# the heads and the log's proofs through the service, checked by the client
same aud1 archive head --domain VE
same aud1 archive head --domain USPS --seq 1 --json
same aud1 archive head --domain VE --seq 9999
same aud1 archive head --domain VE --check "$T/kept.head"
grep_out '^consistent: head [0-9]* (log [0-9]*) -> head [0-9]* (log [0-9]*), proof of [0-9]* hashes$' "$T/r.out"
cp "$T/kept.head" "$T/bad.head"; invert_byte "$T/bad.head" 40
same aud1 archive head --domain VE --check "$T/bad.head"
as aud1 archive head --domain VE --check "$T/bad.head"; rc 1 "a changed kept head"
as aud1 archive head --domain VE --sign; rc 2 "--sign through a service"
call aud1 GET '/v1/archive/consistency?domain=VE&from=1&to=2'; want 200 "a consistency proof"
grep_out '"proof":\["[0-9a-f]\{64\}"' "$T/out"
call aud1 GET '/v1/archive/consistency?domain=VE&from=2&to=999999'; want 400 "a proof past the log"
call fac1 GET '/v1/archive/head?domain=VE'; want 403 "head as factory"

# ---- the operator: a box's state, a box sealed ----
if [ "${FLEET_PG:-}" != 1 ]; then
  call op1 GET '/v1/box/status?box=B00000001'; want 200 "box status"
  grep_out '"box":"B00000001","socket":"[^"]*/run/B00000001.sock","pid":[0-9]*,"enabled":true' "$T/out"
  same op1 box status --box B00000001
  same op1 box status --box B00000001 --json
  # a box not of the home: the service knows the home's boxes (404); the
  # CLI at a socket knows only that none answers there
  call op1 GET '/v1/box/status?box=T00000009'; want 404 "box status, no such box"
  grep_out 'no box T00000009 in this home' "$T/out"
  call op1 POST /v1/box/seal '{"box":"T00000001"}' s1; want 200 "box seal"
  grep_out '"enabled":false' "$T/out"
  call op1 GET /metrics; want 200 "metrics, a box sealed"
  grep_out '^meterkey_box_enabled{box="T00000001"} 0$' "$T/out"
  grep_out '^meterkey_box_up{box="T00000001"} 1$' "$T/out"
  as op1 box status --box T00000001; rc 1 "status of a sealed box"
  grep_out '^box T00000001 (process [0-9]* at .*/run/T00000001.sock): disabled, no share entered$' "$T/out"
  same op1 box status --box T00000001
  as scan1 verify "${L[0]}" --tin --no-duplicates; rc 1 "Tin sealed"
  grep_out 'MK_RC_BOX_DISABLED' "$T/err"
  # unsealed by its operators at the box's own socket, never through the service
  for f in "$METERKEY_HOME/shares/T00000001".*.share; do
    "$MK" box unseal --box T00000001 --boxes "$T/run" --share "$f" >/dev/null
  done
  as op1 box seal --box T00000001 --json; rc 0 "seal --server"
  grep_out '"enabled":false' "$T/out"
  for f in "$METERKEY_HOME/shares/T00000001".*.share; do
    "$MK" box unseal --box T00000001 --boxes "$T/run" --share "$f" >/dev/null
  done
  as scan1 verify "${L[0]}" --tin --no-duplicates; rc 0 "Tin unsealed again"
  "$MK" box unseal --box T00000001 --server "https://localhost:$PORT" >"$T/out" 2>"$T/err"; RC=$?
  rc 2 "no unseal through the service"
  call op1 GET /metrics; want 200 "metrics with the boxes as processes"
  grep_out '^meterkey_box_enabled{box="B00000001"} 1$' "$T/out"
  grep_out '^meterkey_box_up{box="T00000001"} 1$' "$T/out"
  call fac1 GET '/v1/box/status?box=B00000001'; want 403 "box status as factory"
  call aud1 POST /v1/box/seal '{"box":"B00000001"}'; want 403 "seal as auditor"
  call op1 POST /v1/box/seal '{"box":"B0000001"}'; want 400 "seal a malformed ID"
else
  call op1 GET '/v1/box/status?box=B00000001'; want 409 "box status, boxes in meterkeyd"
  grep_out '"name":"MK_ERR_STATE"' "$T/out"
  # the status right after a batch, its verifier kept with Brass open:
  # every box enabled (the kept verifier let go), not "busy"
  call scan1 POST /v1/verify "{\"items\":$(items 0),\"duplicates\":false}"; want 200 "a batch before the status"
  call op1 GET /v1/status; want 200 "status after a batch"
  jq -e '[.boxes[] | .enabled] | all' "$T/out" >/dev/null ||
    { echo "FAIL: a box not enabled in the status after a batch:"; jq -c '.boxes' "$T/out"; fails=$((fails+1)); }
fi

# ---- refused, each with its status and error object, nothing changed ----
before=$(meters)
for c in "dc1 POST /v1/meter/create {\"product_code\":\"PM100\",\"msn\":\"000008\"}" \
         "fac1 POST /v1/meter/register {\"meter\":\"PM100-000001\",\"indicia\":\"X1\",\"country\":\"US\"}" \
         "scan1 POST /v1/meter/retire {\"meter\":\"PM100-000001\"}" \
         "aud1 POST /v1/meter/retire {\"meter\":\"PM100-000001\"}" \
         "op1 POST /v1/tokens/distribute {\"domain\":\"VE\",\"month\":\"$month\"}" \
         "scan1 GET /v1/meter/list" "op1 GET /v1/archive/errors?domain=VE" \
         "fac1 GET /v1/archive/history?domain=VE&key=1"; do
  set -- $c
  call "$1" "$2" "$3" "${4:-}"; want 403 "$1 $3"
  grep_out '"name":"MK_ERR_SVC_ROLE"' "$T/out"
done
as scan1 meter retire --meter PM100-000001; rc 1 "retire as verifier"
grep_out '^meterkey: role verifier may not call /v1/meter/retire$' "$T/err"
for c in '{"meter":"PM100-000001"' '{"meter":"PM100-000001","x":1}' '{"meter":7}' '[]' '{}' \
         '{"meter":"PM100-000001","meter":"PM100-000002"}' '{"meter":"../../etc"}'; do
  call dc1 POST /v1/meter/retire "$c"; want 400 "malformed $c"
  grep_out '"name":"MK_ERR_SVC_REQUEST"' "$T/out"
done
call dc1 POST '/v1/meter/retire?meter=PM100-000001' ''; want 400 "POST with a query"
call aud1 GET '/v1/archive/history?domain=VE&key=x'; want 400 "key not a number"
call aud1 GET '/v1/archive/history?domain=VE&key=1&key=2'; want 400 "a field twice"
call aud1 GET '/v1/archive/history?domain=VE'; want 400 "a needed field missing"
call aud1 POST '/v1/archive/history' '{}'; want 405 "POST to a reading call"
call aud1 GET '/v1/meter/nothing'; want 404 "no such call"
[ "$(meters)" = "$before" ] || { echo "FAIL: a refused call changed the fleet"; fails=$((fails+1)); }
# the audit log: each state-changing call before it acted and its outcome
grep -q '"phase":"request".*"call":"POST /v1/meter/retire"' "$METERKEY_HOME/service-audit.log" ||
  { echo "FAIL: no audit record of a retire"; fails=$((fails+1)); }
grep -q '"phase":"answer","result":"MK_OK"' "$METERKEY_HOME/service-audit.log" ||
  { echo "FAIL: no audit record of an outcome"; fails=$((fails+1)); }

# the CLI's own refusals: a usage error before any call, a service not there
as fac1 meter create --product-code PM100; rc 2 "a usage error"
"$MK" meter list --server "https://localhost:$PORT" >"$T/out" 2>"$T/err"; RC=$?; rc 2 "--server without TLS files"
grep_out 'needs --tls-cert, --tls-key and --tls-ca' "$T/err"
"$MK" meter list --server "http://localhost:$PORT" --tls-cert x --tls-key x --tls-ca x >"$T/out" 2>"$T/err"; RC=$?
rc 2 "an http URL"
stop
# the log: one JSON object a line, each request with its status and client,
# never a body
jq -e . "$T/d.err" >/dev/null || { echo "FAIL: the log is not JSON lines:"; head -3 "$T/d.err"; fails=$((fails+1)); }
grep -q '"msg":"request","method":"POST","path":"/v1/meter/create","status":200,"client":"fac1"}$' "$T/d.err" ||
  { echo "FAIL: no log line of a meter create by fac1"; fails=$((fails+1)); }
grep -q '"msg":"request","method":"POST","path":"/v1/meter/retire","status":403,"client":"scan1"}$' "$T/d.err" ||
  { echo "FAIL: no log line of a refused retire"; fails=$((fails+1)); }
! grep -q 'US00000001\|product_code' "$T/d.err" || { echo "FAIL: a body in the log"; fails=$((fails+1)); }
grep -q '"msg":"stopped"' "$T/d.err" || { echo "FAIL: no stop in the log"; fails=$((fails+1)); }
as aud1 meter list; rc 1 "the service stopped"
grep_out "^meterkey: cannot reach the service at https://localhost:$PORT" "$T/err"

# an audit log that cannot be written: refused (503), nothing made
start --audit /dev/full
call fac1 POST /v1/meter/create '{"product_code":"PM100","msn":"000007"}' k7; want 503 "audit sink full"
grep_out '"name":"MK_ERR_SVC_AUDIT"' "$T/out"
call scan1 POST /v1/verify "{\"items\":$(items 0)}" v7; want 503 "a batch, audit sink full"
call aud1 GET /v1/meter/list; want 200 "a reading call is not audited"
[ "$(meters)" = "$before" ] || { echo "FAIL: a call whose audit failed made a meter"; fails=$((fails+1)); }
stop
# the calls were not made: their keys are free, a retry with them makes them
start
call fac1 POST /v1/meter/create '{"product_code":"PM100","msn":"000007"}' k7; want 200 "the key of a call never made, retried"
call scan1 POST /v1/verify "{\"items\":$(items 0),\"duplicates\":false}" v7; want 200 "the key of a batch never verified, retried"
call scan1 POST /v1/verify "{\"items\":$(items 0)}" v7; want 422 "then the same key with another body"
stop

# every status met is in the OpenAPI description, under its call (a wrong
# method's 405 under the call's one method)
SPEC="$(dirname "$0")/../../docs/openapi.json"
sort -u "$T/met" | while read -r m p c; do
  case $p in /v1/meter/nothing) continue ;; esac
  jq -e --arg p "$p" --arg m "${m,,}" --arg c "$c" '(.paths[$p][$m] // (.paths[$p] | to_entries[0].value)).responses | has($c)' "$SPEC" >/dev/null ||
    echo "FAIL: $m $p $c is not in docs/openapi.json"
done >"$T/undoc"
[ ! -s "$T/undoc" ] || { cat "$T/undoc"; fails=$((fails+1)); }
finish
