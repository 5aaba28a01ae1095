#!/usr/bin/env bash
# The README's main command (scripts/demo runs scripts/demo-service): the
# demo fleet taken through meterkeyd's HTTP API with its box processes, the
# status page answering while it serves, then (--exit) everything stopped;
# and served until interrupted: the status page answers, SIGTERM stops the
# service and its box processes.
. "$(dirname "$0")/lib.bash"
BUILD=${2:?usage: $0 meterkey build-dir}
DEMO="$(dirname "$0")/../../scripts/demo-service"

expect 0 bash "$DEMO" "$BUILD" --home "$T/h" --port 0 --exit
grep_out "^demo complete$" "$T/out"
grep_out "^   the status page answers: 200" "$T/out"
grep_out "^   meter PM100-000004 retired: its keys are OBSOLETE$" "$T/out"
grep_out "^   PM100-000004 *retired .* VE/4:OBSOLETE USPS/4:OBSOLETE$" "$T/out"
[ "$(grep -c '^   good ' "$T/out")" = 16 ] || { echo "FAIL: not 16 good verifications (8 Brass, 8 Tin)"; fails=$((fails+1)); }
[ "$(grep -c '^   duplicate ' "$T/out")" = 8 ] || { echo "FAIL: not 8 duplicates"; fails=$((fails+1)); }
grep_out '"phase":"request".*"call":"POST /v1/meter/register"' "$T/h/service-audit.log"
# a home this script did not make is never removed
mkdir "$T/mine"; echo keep >"$T/mine/file"
expect 2 bash "$DEMO" "$BUILD" --home "$T/mine" --port 0 --exit
grep_out "exists and is not a demo home" "$T/err"
[ -f "$T/mine/file" ] || { echo "FAIL: the demo removed a folder not its own"; fails=$((fails+1)); }

# served until interrupted: the page answers while it serves (SIGTERM: a
# background job of a script ignores SIGINT, which Ctrl-C sends)
bash "$DEMO" "$BUILD" --home "$T/h" --port 0 >"$T/serve.out" 2>&1 &
DEMO_PID=$!
for _ in $(seq 300); do grep -q "serving until interrupted" "$T/serve.out" && break; sleep 0.1; done
url=$(sed -n 's/^   status page: \(https:.*\)\/$/\1/p' "$T/serve.out")
S="$T/h/service"
code=$(curl -s -o "$T/page" -w '%{http_code}' --cacert "$S/ca.pem" --cert "$S/auditor1.pem" --key "$S/auditor1.key" "$url/")
[ "$code" = 200 ] && grep -q "B00000001" "$T/page" && grep -q "OBSOLETE" "$T/page" ||
  { echo "FAIL: the status page did not answer while the demo serves ($code)"; sed 's/^/  | /' "$T/serve.out" | tail -5; fails=$((fails+1)); }
kill -TERM "$DEMO_PID"
wait "$DEMO_PID"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$S/ca.pem" --cert "$S/auditor1.pem" --key "$S/auditor1.key" "$url/")
[ "$code" = 000 ] || { echo "FAIL: the service still answers after SIGTERM ($code)"; fails=$((fails+1)); }
pgrep -f "box serve --box .* --boxes $T/h/run" >/dev/null && { echo "FAIL: box processes left running"; fails=$((fails+1)); }
finish
