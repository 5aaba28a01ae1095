#!/usr/bin/env bash
# The service load benchmark (issue 15): batch verification through
# meterkeyd against the in-process rate of the same verification, measured
# in the same run on the same fleet, and the latency of single-indicium
# requests. Usage: bench/bench_service.sh [BUILD, default build/release]
#   [S indicia a part, default 40000] [M meters, default 200]
#   [BATCH items a request, default 1000] [NS singles, default 20000]
# Environment: CONNS (wrk's connections for the batches, default 4),
# ROUNDS (default 4), SINGLE_SECS (seconds of each single-indicium run,
# default 5), KEEP=1
# (keep the work directory: logs, wrk's output). scripts/bench runs it on
# the Release build. Needs wrk and haproxy (scripts/install-deps).
#
#   1. bench_service setup (C) sets up the fleet of bench/fleet.h in a
#      home on disk ($TMPDIR, else /tmp) and franks 3 S + S/4 + NS indicia
#      as text lines in files: 2 S for the in-process runs, S for the
#      service's, the rest for step 3.
#   2. meterkeyd serves the home (its boxes in its process; its audit log
#      on the same disk), and haproxy, in front of it on loopback, takes
#      plain HTTP and speaks TLS with a verifier's client certificate to
#      it, keeping its connections alive: wrk cannot present a client
#      certificate. Then ROUNDS rounds (default 4), each of S/ROUNDS
#      indicia a run, so that both sides meet the same load of the shared
#      machine: in process (bench_service run) through mk_verify_batch
#      (bench_verify's run with duplicates), in process through
#      mk_verify_lines (what meterkeyd calls for a request), and through
#      the service, wrk (one thread, CONNS connections) posting batches of
#      BATCH (bench_service.lua). Every indicium once, duplicates on: first
#      sightings, all good, each noted in both domains' duplicate index;
#      each side warmed first (its boxes open, its caches full) with a
#      batch of duplicates off, nothing noted: the steady state. The rates
#      are the rounds' indicia over their time; the CPU meterkeyd and
#      haproxy used during the service's runs.
#   3. single-indicium requests (new indicia too) for SINGLE_SECS on 1
#      connection and on 16: their latency percentiles. Then meterkeyd
#      again with --cache-idle 0 (a verifier per batch, cold caches, as
#      before it was kept): S/4 indicia in batches, single indicia on 1
#      connection.
#
# Prints, in bench.h's style, the service's rate beside the in-process one
# and their ratio (issue 15's acceptance: at least 0.5 of mk_verify_batch).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build/release}
S=${2:-40000}
M=${3:-200}
BATCH=${4:-1000}
NS=${5:-20000}
CONNS=${CONNS:-4}
SINGLE_SECS=${SINGLE_SECS:-5}
ROUNDS=${ROUNDS:-4}
LUA=bench/bench_service.lua
for p in wrk haproxy curl; do
  command -v $p >/dev/null || { echo "bench_service: $p is missing (scripts/install-deps)" >&2; exit 1; }
done
for p in bench_service meterkey meterkeyd; do
  [ -x "$B/$p" ] || { echo "bench_service: $B/$p is missing: build first" >&2; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/meterkey-bench-XXXXXX")
DPID= HPID=
stop_service() {
  for p in $HPID $DPID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  DPID= HPID=
}
cleanup() {
  stop_service
  if [ -n "${KEEP:-}" ]; then echo "bench_service: kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT

# start_service ARGS... : meterkeyd with ARGS, haproxy in front of it on a
# free port ($HPORT)
start_service() {
  "$B/meterkeyd" --cert "$W/svc/localhost.pem" --key "$W/svc/localhost.key" --port 0 \
    --max-items "$BATCH" --max-body $((BATCH * 512 + 4096)) --audit "$W/audit.log" \
    --rate 0 --max-connections 1024 "$@" 2>"$W/meterkeyd.err" &
  DPID=$!
  for _ in $(seq 100); do grep -q listening "$W/meterkeyd.err" && break; sleep 0.1; done
  DPORT=$(sed -n 's/.*"msg":"listening","url":"https:\/\/127.0.0.1:\([0-9]*\)".*/\1/p' "$W/meterkeyd.err")
  [ -n "$DPORT" ] || { echo "bench_service: meterkeyd did not start:" >&2; cat "$W/meterkeyd.err" >&2; exit 1; }
  # haproxy in the foreground (-db), one thread, on a port that is free (tried)
  HPORT=
  for _ in $(seq 20); do
    local port=$((20000 + RANDOM % 40000))
    cat >"$W/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 256
  log stderr format raw local0 info
defaults
  mode http
  log global
  option httplog
  option dontlognull
  timeout connect 5s
  timeout client 300s
  timeout server 300s
frontend bench
  bind 127.0.0.1:$port
  default_backend meterkeyd
backend meterkeyd
  http-reuse always
  server d 127.0.0.1:$DPORT ssl crt $W/svc/bench-client.pem ca-file $W/svc/ca.pem verify required verifyhost localhost sni str(localhost)
CFG
    haproxy -db -f "$W/haproxy.cfg" >>"$W/haproxy.log" 2>&1 &
    HPID=$!
    for _ in $(seq 50); do
      [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/health" || true)" = 200 ] && { HPORT=$port; break; }
      kill -0 $HPID 2>/dev/null || break
      sleep 0.1
    done
    [ -n "$HPORT" ] && return 0
    kill $HPID 2>/dev/null || true
    wait $HPID 2>/dev/null || true
    HPID=
  done
  echo "bench_service: haproxy did not start:" >&2; cat "$W/haproxy.log" >&2; exit 1
}

# drive NAME FILE ITEMS CONNS SECS [FIRST COUNT] : wrk's run, its output in
# $W/wrk-NAME.txt; every item it sent answered good, else the benchmark stops
drive() {
  local name=$1 file=$2 items=$3 conns=$4 secs=$5 first=${6:-1} count=${7:-0} f="$W/wrk-$1.txt"
  wrk -t1 -c"$conns" -d"${secs}s" --timeout 300s -s "$LUA" "http://127.0.0.1:$HPORT/v1/verify" -- \
    "$file" "$items" "$first" "$count" >"$f"
  if [ "$(result "$f" errors)" != 0 ] || [ "$(result "$f" good)" != "$(result "$f" items)" ]; then
    echo "bench_service: $name: not every item answered good:" >&2; cat "$f" >&2; exit 1
  fi
}
cpu() { # PID : its CPU seconds so far (user and system)
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}
# warm FILE FIRST : the service's verifier warmed with BATCH lines from
# FIRST, duplicates off (nothing noted)
warm() {
  awk -v first="$2" -v n="$BATCH" 'NR >= first && NR < first + n {
      gsub(/[\\"]/, "\\\\&"); printf "%s{\"text\":\"%s\"}", (NR > first ? "," : "{\"items\":["), $0 }
    END { print "],\"duplicates\":false}" }' "$1" >"$W/warm.json"
  [ "$(curl -s -o "$W/warm.out" -w '%{http_code}' --data-binary @"$W/warm.json" "http://127.0.0.1:$HPORT/v1/verify")" = 200 ] ||
    { echo "bench_service: the warm-up batch was not all good:" >&2; head -c 600 "$W/warm.out" >&2; exit 1; }
}
result() { # FILE KEY : a figure of wrk's RESULT line (bench_service.lua)
  sed -n "s/^RESULT .*\\b$2 \\([0-9.]*\\).*/\\1/p" "$1"
}
rate() { # FILE : items per second
  awk -v n="$(result "$1" items)" -v t="$(result "$1" seconds)" 'BEGIN { printf "%.0f", (t > 0 ? n / t : 0) }'
}
report() { # WHAT UNIT OURS RAW-NAME RAW : bench.h's bench_report_vs line
  awk -v w="$1" -v u="$2" -v o="$3" -v rn="$4" -v r="$5" \
    'BEGIN { printf "%-40s meterkey %12.0f %s/s   raw %-8s %12.0f %s/s   ratio %.2f\n", w, o, u, rn, r, u, (r > 0 ? o / r : 0) }'
}
latency() { # WHAT FILE : a single-indicium run's percentiles
  local f=$2
  awk -v w="$1" -v n="$(result "$f" items)" -v t="$(result "$f" seconds)" -v p50="$(result "$f" p50)" \
    -v p90="$(result "$f" p90)" -v p99="$(result "$f" p99)" -v mx="$(result "$f" max)" \
    'BEGIN { printf "  %-36s p50 %7.2f ms  p90 %7.2f ms  p99 %7.2f ms  max %7.2f ms  (%d, %.0f/s)\n", w, p50, p90, p99, mx, n, (t > 0 ? n / t : 0) }'
}

# 1. the fleet
"$B/bench_service" setup "$W/home" "$W" "$S" "$M" "$NS" | tee "$W/setup.txt"

# 2. rounds: in process, then through the service
export METERKEY_HOME="$W/home"
"$B/meterkey" service cert --role server --name localhost --out "$W/svc" >/dev/null
"$B/meterkey" service cert --role verifier --name bench --out "$W/svc" >/dev/null
cat "$W/svc/bench.pem" "$W/svc/bench.key" >"$W/svc/bench-client.pem"
start_service
C=$((S / ROUNDS))
T_BATCH=0 T_LINES=0 T_SVC=0 CPU_D=0 CPU_H=0
for r in $(seq 0 $((ROUNDS - 1))); do
  first=$((r * C + 1))
  rb=$("$B/bench_service" run "$W/home" "$W/inprocess.txt" "$first" "$C" "$BATCH" batch | sed -n 's/^rate //p')
  rl=$("$B/bench_service" run "$W/home" "$W/inprocess.txt" $((S + first)) "$C" "$BATCH" lines | sed -n 's/^rate //p')
  warm "$W/service.txt" "$first"
  d0=$(cpu "$DPID"); h0=$(cpu "$HPID")
  drive "round$r" "$W/service.txt" "$BATCH" "$CONNS" 600 "$first" "$C"
  rs=$(rate "$W/wrk-round$r.txt")
  read -r T_BATCH T_LINES T_SVC CPU_D CPU_H < <(awk -v c="$C" -v a="$T_BATCH" -v b="$T_LINES" -v s="$T_SVC" \
    -v rb="$rb" -v rl="$rl" -v rs="$rs" -v cd="$CPU_D" -v ch="$CPU_H" -v d0="$d0" -v d="$(cpu "$DPID")" \
    -v h0="$h0" -v h="$(cpu "$HPID")" \
    'BEGIN { print a + c / rb, b + c / rl, s + c / rs, cd + d - d0, ch + h - h0 }')
  awk -v r="$r" -v rb="$rb" -v rl="$rl" -v rs="$rs" \
    'BEGIN { printf "  round %d: in process %6.0f (lines %6.0f), service %6.0f indicia/s: ratio %.2f\n", r + 1, rb, rl, rs, rs / rb }' |
    tee -a "$W/rounds.txt"
done

# 3. single indicia; then a verifier per batch
third=$((NS / 3))
drive single1 "$W/singles.txt" 1 1 "$SINGLE_SECS" 1 "$third"
drive single16 "$W/singles.txt" 1 16 "$SINGLE_SECS" $((third + 1)) "$third"
stop_service
start_service --cache-idle 0
drive cold "$W/service-cold.txt" "$BATCH" "$CONNS" 600
drive cold-single1 "$W/singles.txt" 1 1 "$SINGLE_SECS" $((2 * third + 1)) "$third"
stop_service

N=$((C * ROUNDS))
echo "through meterkeyd (its boxes in its process): wrk -> haproxy -> TLS with a client certificate -> meterkeyd;"
echo "$CONNS connections, batches of $BATCH, duplicates on, each indicium once (first sightings, all good), warm;"
echo "raw: the same work in process, in $ROUNDS rounds alternating with the service's ($N indicia each, $M meters)"
report "service vs mk_verify_batch:" ind "$(awk -v n="$N" -v t="$T_SVC" 'BEGIN { print n / t }')" in-proc \
  "$(awk -v n="$N" -v t="$T_BATCH" 'BEGIN { print n / t }')"
report "service vs mk_verify_lines:" ind "$(awk -v n="$N" -v t="$T_SVC" 'BEGIN { print n / t }')" in-proc \
  "$(awk -v n="$N" -v t="$T_LINES" 'BEGIN { print n / t }')"
report "a verifier per batch vs mk_verify_batch:" ind "$(rate "$W/wrk-cold.txt")" in-proc \
  "$(awk -v n="$N" -v t="$T_BATCH" 'BEGIN { print n / t }')"
awk -v d="$CPU_D" -v h="$CPU_H" -v t="$T_SVC" \
  'BEGIN { printf "  CPU during the service runs: meterkeyd %.2f s, haproxy %.2f s, in %.2f s (wrk the rest)\n", d, h, t }'
echo "single-indicium requests, latency through haproxy (new indicia, duplicates on):"
latency "1 connection:" "$W/wrk-single1.txt"
latency "16 connections:" "$W/wrk-single16.txt"
latency "1 connection, a verifier per batch:" "$W/wrk-cold-single1.txt"
