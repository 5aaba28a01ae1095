#!/usr/bin/env bash
# meterkeyd's status page (issue 15, item 6): GET / in headless Chromium
# shows what GET /v1/status gives (boxes and whether each is enabled,
# domains with their countries, meters by state and their keys by status,
# the last hour's verifications), and a screenshot of it is saved as
# BUILD/status-page.png. Chromium headless presents no client certificate,
# so haproxy stands in front of meterkeyd: plain HTTP on loopback, TLS to
# the service with an auditor's certificate. Refused: a verifier (403, the
# error object), a POST (405). A string from outside (a path an operator
# chose, in a box's detail) reaches the page as text, never as markup; a
# domain written behind the archive's back is refused, not shown.
. "$(dirname "$0")/lib.bash"
BUILD=${2:?usage: $0 meterkey build-dir}
MKD=$BUILD/meterkeyd
export METERKEY_HOME="$T/h"
S="$T/svc"

for tool in chromium haproxy; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed (scripts/install-deps installs it)"; exit 1; }
done

# the demo's fleet (domains VE, USPS, EARTH; an M, O, S, B and T box; five
# meters, four registered, one retired), one meter more manufactured only
# and one with a key installed but not registered, and indicia franked
expect 0 "$MK" demo --home "$T/h"
expect 0 "$MK" meter create --product-code PM100 --msn 000009
expect 0 "$MK" meter create --product-code PM100 --msn 000010
expect 0 "$MK" meter install --meter PM100-000010 --domain VE
expect 0 "$MK" meter frank --meter PM100-000002 --postage 55 --origin 10001 --count 6
mapfile -t lines <"$T/out"
for r in "server localhost" "auditor aud1" "operator op1" "verifier scan1"; do
  set -- $r
  expect 0 "$MK" service cert --role "$1" --name "$2" --out "$S"
done
cat "$S/aud1.pem" "$S/aud1.key" >"$T/aud1-both.pem" # haproxy's crt: certificate and key
chmod 600 "$T/aud1-both.pem"

# start(ARGS...) : meterkeyd on a free port, its port in $PORT
start() {
  meterkeyd_start "$MKD" "$S" "$@"
}
# call NAME METHOD PATH [BODY-FILE] : as client NAME, status in $CODE, body in $T/out
call() {
  local who=$1 method=$2 path=$3 body=${4:-}
  CODE=$(curl -s -D "$T/hdr" -o "$T/out" -w '%{http_code}' --cacert "$S/ca.pem" --cert "$S/$who.pem" \
    --key "$S/$who.key" -X "$method" ${body:+--data-binary @"$body"} "https://localhost:$PORT$path")
}
want() { [ "$CODE" = "$1" ] || { echo "FAIL: status $CODE, expected $1:"; sed 's/^/  | /' "$T/out"; fails=$((fails+1)); }; }
batch() { # FILE reference:line ... : a verification request
  local f=$1 sep="" a; shift
  { printf '{"items":['
    for a in "$@"; do printf '%s{"reference":"%s","text":"%s"}' "$sep" "${a%%:*}" "${a#*:}"; sep=,; done
    printf ']}'; } >"$f"
}
# proxy : haproxy in the foreground (its config in $T) on a free loopback
# port ($HP), forwarding to meterkeyd at $PORT over TLS as aud1, checking
# the server's certificate against the home's CA
proxy() {
  [ -n "${HPID:-}" ] && { kill "$HPID" 2>/dev/null; wait "$HPID" 2>/dev/null; }
  for _ in 1 2 3 4 5; do
    HP=$((20000 + RANDOM % 40000))
    cat >"$T/haproxy.cfg" <<EOF
global
  log stderr format raw local0 err
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend page
  bind 127.0.0.1:$HP
  default_backend meterkeyd
backend meterkeyd
  server meterkeyd 127.0.0.1:$PORT ssl crt $T/aud1-both.pem ca-file $S/ca.pem verify required verifyhost localhost sni str(localhost)
EOF
    haproxy -f "$T/haproxy.cfg" -db >"$T/haproxy.log" 2>&1 &
    HPID=$!
    BOX_PIDS+=("$HPID")
    for _ in $(seq 50); do
      curl -s -o /dev/null "http://127.0.0.1:$HP/" && return 0
      kill -0 "$HPID" 2>/dev/null || break # the port was taken: another
      sleep 0.1
    done
    kill "$HPID" 2>/dev/null; wait "$HPID" 2>/dev/null
  done
  echo "FAIL: haproxy did not start:"; sed 's/^/  | /' "$T/haproxy.log"; exit 1
}
# chrome ARGS... URL : headless Chromium, a profile of its own in $T
chrome() {
  timeout 90 chromium --headless --no-sandbox --disable-gpu --no-first-run --no-default-browser-check \
    --disable-background-networking --disable-component-update --disable-dev-shm-usage \
    --user-data-dir="$T/chrome" "$@" 2>>"$T/chrome.err"
}
# dom ID : the text of the element with id ID in the DOM Chromium rendered
dom() { grep -o "id=\"$1\"[^>]*>[^<]*" "$T/dom" | head -1 | sed 's/.*>//'; }
# same WHAT PAGE JSON : the page shows what the API says
same() {
  [ "$2" = "$3" ] || { echo "FAIL: $1: the page shows '$2', GET /v1/status says '$3'"; fails=$((fails+1)); }
}
# png FILE : 0 when FILE is a PNG of 1280 x 1800 with something in it
png() {
  [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && [ "$(stat -c %s "$1")" -gt 20000 ] &&
    [ "$(od -An -tu1 -j 16 -N 8 "$1" | tr -s ' ' | sed 's/^ //')" = "0 0 5 0 0 0 7 8" ]
}

start
# verifications in the last hour: five good, a duplicate, a malformed line
batch "$T/b1" "a:${lines[0]}" "b:${lines[1]}" "c:${lines[2]}" "d:${lines[3]}" "e:${lines[0]}" "f:not an indicium"
call scan1 POST /v1/verify "$T/b1"; want 207
batch "$T/b2" "g:${lines[4]}"
call scan1 POST /v1/verify "$T/b2"; want 200

# the API: auditor and operator; what it says of the fleet
call op1 GET /v1/status; want 200
call aud1 GET /v1/status; want 200
cp "$T/out" "$T/status.json"
j() { jq -r "$@" "$T/status.json"; }
[ "$(j '.meters.total')" = 7 ] || { echo "FAIL: meters total $(j .meters.total)"; fails=$((fails+1)); }
[ "$(j '.meters.by_state | [.manufactured, .registered, .retired] | join(" ")')" = "2 4 1" ] ||
  { echo "FAIL: meters by state: $(j -c .meters.by_state)"; fails=$((fails+1)); }
[ "$(j '.meters.keys_by_status | [.NEW, .INSTALLED, .ACTIVE, .OBSOLETE, .BAD] | join(" ")')" = "0 1 8 2 0" ] ||
  { echo "FAIL: keys by status: $(j -c .meters.keys_by_status)"; fails=$((fails+1)); }
[ "$(j '[.boxes[] | "\(.id):\(.state)"] | join(" ")')" = \
  "M00000001:enabled O00000001:enabled S00000001:enabled B00000001:enabled T00000001:enabled" ] ||
  { echo "FAIL: boxes: $(j -c .boxes)"; fails=$((fails+1)); }
[ "$(j '[.domains[] | "\(.id):\(.countries | join(","))"] | join(" ")')" = "EARTH:DE,US USPS:US VE:DE,US" ] ||
  { echo "FAIL: domains: $(j -c .domains)"; fails=$((fails+1)); }
[ "$(j '.verifications | [.total, .results.good, .results.duplicate, .results.malformed] | join(" ")')" = "7 5 1 1" ] ||
  { echo "FAIL: verifications: $(j -c '.verifications | del(.minutes)')"; fails=$((fails+1)); }
[ "$(j '.verifications.minutes | length')" = 60 ] || { echo "FAIL: not sixty minutes"; fails=$((fails+1)); }
[ "$(j '[.verifications.minutes[] | .good] | add')" = 5 ] || { echo "FAIL: the minutes' good do not add up to 5"; fails=$((fails+1)); }
[ "$(j '.client.name')" = aud1 ] || { echo "FAIL: client $(j -c .client)"; fails=$((fails+1)); }

# refused: a verifier (403, the error object) for both; a POST (405); the
# page's own headers run and fetch nothing
call scan1 GET /v1/status; want 403
grep_out '^{"error":{"code":1401,"name":"MK_ERR_SVC_ROLE","message":"role verifier may not call /v1/status"}}$' "$T/out"
call scan1 GET /; want 403
grep_out '^{"error":{"code":1401,"name":"MK_ERR_SVC_ROLE","message":"role verifier may not call /"}}$' "$T/out"
call aud1 POST /; want 405
grep_out '"name":"MK_ERR_SVC_METHOD"' "$T/out"
call aud1 GET /; want 200
grep -qi '^content-type: text/html; charset=utf-8' "$T/hdr" || { echo "FAIL: the page is not text/html"; fails=$((fails+1)); }
grep -qi "^content-security-policy: default-src 'none'; style-src 'unsafe-inline'" "$T/hdr" ||
  { echo "FAIL: no Content-Security-Policy on the page"; fails=$((fails+1)); }
! grep -Eiq '<script|<link|<img|src=|href=|url\(|@import' "$T/out" ||
  { echo "FAIL: the page refers to something to fetch or run:"; grep -Eio '.{20}(<script|<link|<img|src=|href=|url\(|@import).{20}' "$T/out"; fails=$((fails+1)); }

# the page in Chromium, behind haproxy (the auditor's certificate)
proxy
chrome --dump-dom "http://127.0.0.1:$HP/" >"$T/dom" || { echo "FAIL: Chromium did not render the page:"; tail -5 "$T/chrome.err"; fails=$((fails+1)); }
grep -q '<h1>meterkeyd</h1>' "$T/dom" || { echo "FAIL: no page in Chromium's DOM:"; head -c 600 "$T/dom"; fails=$((fails+1)); }
same "client" "$(dom client)" "$(j .client.name)"
same "boxes enabled" "$(dom boxes-enabled)" "$(j '"\([.boxes[] | select(.enabled)] | length) of \(.boxes | length)"')"
same "domains" "$(dom domains-count)" "$(j '.domains | length')"
same "meters" "$(dom meters-total)" "$(j .meters.total)"
for k in manufactured registered retired; do same "meters $k" "$(dom "meters-$k")" "$(j ".meters.by_state.$k")"; done
for k in NEW INSTALLED ACTIVE OBSOLETE BAD; do same "keys $k" "$(dom "keys-$k")" "$(j ".meters.keys_by_status.$k")"; done
for k in $(j '.verifications.results | keys[]'); do same "verified $k" "$(dom "verify-$k")" "$(j ".verifications.results.$k")"; done
same "verified" "$(dom verify-total)" "$(j .verifications.total)"
for id in $(j '.boxes[].id'); do
  same "box $id" "$(grep -o "<tr id=\"box-$id\">.*</tr>" "$T/dom" | grep -o 'class="badge [a-z]*">[a-z]*' | sed 's/.*>//')" \
    "$(j ".boxes[] | select(.id == \"$id\") | .state")"
done
for d in $(j '.domains[].id'); do
  same "domain $d" "$(grep -o "<tr id=\"domain-$d\">.*</tr>" "$T/dom" | sed 's/.*<td>\(.*\)<\/td><\/tr>/\1/')" \
    "$(j ".domains[] | select(.id == \"$d\") | .countries | join(\" \")")"
done
# the page is live: one verification more, and it says so (the twin of the
# figures above: they are read, not fixed)
batch "$T/b3" "h:${lines[5]}"
call scan1 POST /v1/verify "$T/b3"; want 200
chrome --dump-dom "http://127.0.0.1:$HP/" >"$T/dom"
same "verified after one more" "$(dom verify-total)" 8
same "good after one more" "$(dom verify-good)" 6
# the screenshot, in the build folder
rm -f "$BUILD/status-page.png"
chrome --hide-scrollbars --window-size=1280,1800 --screenshot="$BUILD/status-page.png" "http://127.0.0.1:$HP/" >/dev/null
png "$BUILD/status-page.png" || { echo "FAIL: $BUILD/status-page.png is not a 1280 x 1800 PNG with a page in it"; fails=$((fails+1)); }
! png "$T/dom" || { echo "FAIL: the PNG check takes an HTML file"; fails=$((fails+1)); }
kill -TERM "$DPID"; wait "$DPID"

# the boxes as processes, reached through a folder whose name is markup
# (an operator's path): B sealed, T stopped: the page says which, and the
# name comes through as text in T's detail, no element made of it
MK_E2E_BOXES=process
n0=${#BOX_PIDS[@]}
boxes_as_processes "$T/h"
tpid=${BOX_PIDS[$((n0 + 4))]} # the fifth box listed: T00000001
EVIL='<img src=x onerror=alert(1)>'
ln -s "$T/run" "$T/$EVIL"
start --boxes "$T/$EVIL"
"$MK" box seal --box B00000001 --boxes "$T/run" >/dev/null 2>&1
kill "$tpid"; wait "$tpid" 2>/dev/null
call aud1 GET /v1/status; want 200
cp "$T/out" "$T/status.json"
[ "$(j '[.boxes[] | "\(.id):\(.state):\(.enabled)"] | join(" ")')" = \
  "M00000001:enabled:true O00000001:enabled:true S00000001:enabled:true B00000001:sealed:false T00000001:unreachable:false" ] ||
  { echo "FAIL: boxes as processes: $(j -c '[.boxes[] | {id, state, enabled, error}]')"; fails=$((fails+1)); }
[ "$(j '.boxes[] | select(.id == "B00000001") | "\(.shares_entered) \(.generation) \(.pid > 0)"')" = "0 0 true" ] ||
  { echo "FAIL: the sealed box's process state: $(j -c '.boxes[3]')"; fails=$((fails+1)); }
j '.boxes[] | select(.id == "O00000001") | .identity_fingerprint' | grep -Eq '^[0-9a-f]{4}(:[0-9a-f]{4}){15}$' ||
  { echo "FAIL: no identity fingerprint of an enabled box process"; fails=$((fails+1)); }
j '.boxes[] | select(.id == "T00000001") | .detail' | grep -qF "$EVIL/T00000001.sock" ||
  { echo "FAIL: the path is not in T's detail: $(j '.boxes[4].detail')"; fails=$((fails+1)); }
proxy
curl -s -o "$T/page.html" "http://127.0.0.1:$HP/"
grep -qF '&lt;img src=x onerror=alert(1)&gt;/T00000001.sock' "$T/page.html" ||
  { echo "FAIL: the path is not shown escaped:"; head -c 800 "$T/page.html"; cat "$T/haproxy.log" "$T/d.err"; fails=$((fails+1)); }
! grep -qF "$EVIL" "$T/page.html" || { echo "FAIL: the path reached the page as markup"; fails=$((fails+1)); }
chrome --dump-dom "http://127.0.0.1:$HP/" >"$T/dom"
same "boxes enabled (processes)" "$(dom boxes-enabled)" "3 of 5"
grep -qF '&lt;img src=x onerror=alert(1)&gt;/T00000001.sock' "$T/dom" ||
  { echo "FAIL: Chromium does not show the path as text"; fails=$((fails+1)); }
! grep -qi '<img' "$T/dom" || { echo "FAIL: an img element in the rendered page"; fails=$((fails+1)); }
grep -o '<tr id="box-B00000001">.*</tr>' "$T/dom" | grep -q 'class="badge sealed">sealed' ||
  { echo "FAIL: the sealed box is not shown sealed"; fails=$((fails+1)); }
kill -TERM "$DPID"; wait "$DPID"
rm "$T/$EVIL"
boxes_back_in_process "$T/h"
unset MK_E2E_BOXES

# a domain row written behind the archive's back is no domain ID: refused
# (500, MK_ERR_DB_RECORD, on the page too, as text), never shown; gone,
# the status is back
start
sqlite3 "$T/h/archive.db" "INSERT INTO domains (id, created, last_key_id, last_error_id, audit_seq, audit_head)
  VALUES ('<b>X</b>', 0, 0, 0, 0, x'00')"
call aud1 GET /v1/status; want 500
grep_out '"name":"MK_ERR_DB_RECORD","message":"the archive' "$T/out"
call aud1 GET /; want 500
grep_out '<h2 id="error-name">MK_ERR_DB_RECORD' "$T/out"
! grep -q '<b>X' "$T/out" || { echo "FAIL: the row reached the error page"; fails=$((fails+1)); }
sqlite3 "$T/h/archive.db" "DELETE FROM domains WHERE id = '<b>X</b>'"
call aud1 GET /v1/status; want 200
kill -TERM "$DPID"; wait "$DPID"

# the OpenAPI description documents both calls, the page as text/html
SPEC="$(dirname "$0")/../../docs/openapi.json"
jq -e '.paths["/"].get.responses["200"].content | has("text/html")' "$SPEC" >/dev/null ||
  { echo "FAIL: GET / is not text/html in docs/openapi.json"; fails=$((fails+1)); }
for p in / /v1/status; do
  for code in 200 403 405 500; do
    jq -e --arg p "$p" --arg c "$code" '.paths[$p].get.responses | has($c)' "$SPEC" >/dev/null ||
      { echo "FAIL: $p's $code is not in docs/openapi.json"; fails=$((fails+1)); }
  done
done
finish
