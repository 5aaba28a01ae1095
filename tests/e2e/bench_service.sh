#!/usr/bin/env bash
# The service load benchmark's smoke run (bench/bench_service.sh, issue
# 15): a fleet of 5 meters, 2 rounds of 400 indicia in batches of 100 in
# process and through wrk, haproxy and meterkeyd, single indicia for a
# second: every indicium answered good (the benchmark stops otherwise) and
# its report there, figures and ratios. Not a measurement (the test build
# runs under sanitizers): that the benchmark still runs. A build without
# the programs is refused.
. "$(dirname "$0")/lib.bash"
BUILD=${2:?usage: $0 meterkey build-dir}
BENCH="$(dirname "$0")/../../bench/bench_service.sh"

expect 0 env SINGLE_SECS=1 ROUNDS=2 TMPDIR="$T" bash "$BENCH" "$BUILD" 800 5 100 300
for re in '^  round 2: in process *[0-9]+ \(lines *[0-9]+\), service *[0-9]+ indicia/s: ratio [0-9.]+$' \
          '^service vs mk_verify_batch: +meterkey +[1-9][0-9]* ind/s +raw in-proc +[1-9][0-9]* ind/s +ratio [0-9.]+$' \
          '^a verifier per batch vs mk_verify_batch: +meterkey +[1-9][0-9]* ind/s' \
          '^  1 connection: +p50 +[0-9.]+ ms +p90 +[0-9.]+ ms +p99 +[0-9.]+ ms' \
          '^  16 connections: +p50 +[0-9.]+ ms'; do
  grep -Eq -- "$re" "$T/out" || { echo "FAIL: '$re' not in the report:"; sed 's/^/  | /' "$T/out" "$T/err"; fails=$((fails+1)); }
done
# nothing left behind in TMPDIR (without KEEP)
[ -z "$(ls -d "$T"/meterkey-bench-* 2>/dev/null)" ] || { echo "FAIL: the work directory was left"; fails=$((fails+1)); }

expect 1 bash "$BENCH" "$T/no-build"
grep_out "is missing: build first" "$T/err"
finish
