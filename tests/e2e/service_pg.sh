#!/usr/bin/env bash
# meterkeyd over PostgreSQL (issue 15): a home whose archive is a
# PostgreSQL server of this test's own (tests/archive/pg.sh), the service
# on it: a batch verified and its duplicate found, the idempotency key kept
# in PostgreSQL; then the server stopped: /v1/health 502 archive
# unreachable, and a batch refused (503), never answered good.
. "$(dirname "$0")/lib.bash"
BUILD=${2:?usage: $0 meterkey build-dir}
MKD=$BUILD/meterkeyd
PGSH="$(dirname "$0")/../archive/pg.sh"
PGS="$T/pgstate"
bash "$PGSH" start "$PGS" >/dev/null || { echo "FAIL: no PostgreSQL server"; exit 1; }
trap 'bash "$PGSH" stop "$PGS"; for p in "${BOX_PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait; rm -rf "$T"' EXIT
URL=$(cat "$PGS/url")
export METERKEY_HOME="$T/h"
M=PM100-000001
S="$T/svc"
mk() { expect "$1" "$MK" "${@:2}" --archive "$URL"; }

mk 0 init
kms_home --archive "$URL"
meter_ready 1 --archive "$URL"
mk 0 meter frank --meter $M --postage 55 --origin 20500 --count 2
mapfile -t lines <"$T/out"
for r in "server localhost" "verifier scan1" "auditor aud1"; do
  set -- $r
  mk 0 service cert --role "$1" --name "$2" --out "$S"
done

meterkeyd_start "$MKD" "$S" --archive "$URL"
call() { # NAME METHOD PATH [BODY] [IDEMPOTENCY-KEY]
  CODE=$(curl -s -o "$T/out" -w '%{http_code}' --cacert "$S/ca.pem" --cert "$S/$1.pem" --key "$S/$1.key" \
    -X "$2" ${4:+--data-binary "$4"} ${5:+-H "Idempotency-Key: $5"} "https://localhost:$PORT$3")
}
want() { [ "$CODE" = "$1" ] || { echo "FAIL: status $CODE, expected $1:"; sed 's/^/  | /' "$T/out"; fails=$((fails+1)); }; }

call aud1 GET /v1/health; want 200
grep_out '"status":"ready","archive":"reachable"' "$T/out"
call scan1 POST /v1/verify "{\"items\":[{\"reference\":\"a\",\"text\":\"${lines[0]}\"}]}" k1; want 200
grep_out '"reference":"a","result":"good"' "$T/out"
cp "$T/out" "$T/first"
call scan1 POST /v1/verify "{\"items\":[{\"reference\":\"a\",\"text\":\"${lines[0]}\"}]}" k1; want 200
cmp -s "$T/out" "$T/first" || { echo "FAIL: the replay over PostgreSQL is not the first answer"; fails=$((fails+1)); }
call scan1 POST /v1/verify "{\"items\":[{\"reference\":\"a\",\"text\":\"${lines[0]}\"}]}"; want 207
grep_out '"result":"duplicate"' "$T/out"

# the archive gone
bash "$PGSH" stop "$PGS"
call aud1 GET /v1/health; want 502
grep_out '^{"status":"archive unreachable","archive":"unreachable","boxes":"in this process"}$' "$T/out"
call scan1 POST /v1/verify "{\"items\":[{\"reference\":\"b\",\"text\":\"${lines[1]}\"}]}"; want 503
! grep -q '"result":"good"' "$T/out" || { echo "FAIL: answered good without its archive"; fails=$((fails+1)); }
kill -TERM "$DPID"; wait "$DPID"
finish
