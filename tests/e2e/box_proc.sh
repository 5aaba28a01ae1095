#!/usr/bin/env bash
# Every box a process of its own (issue 13): box serve starts it disabled,
# box unseal enters the operators' shares one at a time, the KMS commands
# given --boxes reach it there (a whole meter's life, the Steel box speaking
# to the meter over the line handed to it), box seal wipes it, and a box
# that is gone, disabled or handed a wrong share is said so.
. "$(dirname "$0")/lib.bash"

H="$T/home"
R="$T/run"
expect 0 "$MK" demo --home "$H"
mkdir "$R"
export METERKEY_HOME="$H"
S="$H/shares"
BOXES="M00000001 O00000001 S00000001 B00000001 T00000001"

# serve BOX: starts its process in the background, waits for its line
serve() {
  "$MK" box serve --box "$1" --boxes "$R" >"$T/serve.$1" 2>&1 &
  BOX_PIDS+=($!)
  for _ in $(seq 100); do grep -q "serving at" "$T/serve.$1" && return; sleep 0.05; done
  echo "FAIL: box $1 did not start:"; sed 's/^/  | /' "$T/serve.$1"; fails=$((fails+1))
}
for b in $BOXES; do serve "$b"; done
grep_out "^box O00000001 serving at $R/O00000001.sock (process [0-9]*, user [0-9]*, state [^)]*): disabled until its operators enter their shares" "$T/serve.O00000001"

# privilege separation: started as root, each box process runs as a user
# of its own, its state in a folder of its own (0700, moved out of the
# home's boxes/), and cannot exec or read a file outside it
if [ "$(id -u)" = 0 ]; then
  for b in $BOXES; do
    pid=$(sed -n 's/.*(process \([0-9]*\),.*/\1/p' "$T/serve.$b")
    u=$(ps -o uid= -p "$pid" | tr -d ' ')
    [ -n "$u" ] && [ "$u" != 0 ] || { echo "FAIL: box $b runs as uid '$u'"; fails=$((fails+1)); }
    [ "$(stat -c '%u %a' "$H/boxes/$b")" = "$u 700" ] || { echo "FAIL: $H/boxes/$b is not its own, 0700: $(stat -c '%u %a' "$H/boxes/$b")"; fails=$((fails+1)); }
    [ ! -e "$H/boxes/$b.box" ] || { echo "FAIL: the state of $b is left in the shared boxes/"; fails=$((fails+1)); }
    grep -q "^NoNewPrivs:[[:space:]]*1" /proc/"$pid"/status && grep -q "^Seccomp:[[:space:]]*2" /proc/"$pid"/status ||
      { echo "FAIL: box $b is not confined"; fails=$((fails+1)); }
    # under its user's finite memory lock limit it locks only OpenSSL's
    # secure heap (one mapping locked as touched: the smaps flag lf) and,
    # once it verifies, its key cache: not all its memory, as later
    # allocations would fail once the limit is reached
    lf=$(grep -c "^VmFlags:.* lf" /proc/"$pid"/smaps)
    [ "$lf" -le 1 ] || { echo "FAIL: box $b locked $lf mappings under a finite limit"; fails=$((fails+1)); }
  done
  ids=$(for b in $BOXES; do ps -o uid= -p "$(sed -n 's/.*(process \([0-9]*\),.*/\1/p' "$T/serve.$b")"; done | sort -u | wc -l)
  [ "$ids" = 5 ] || { echo "FAIL: the five boxes run as $ids users, not five"; fails=$((fails+1)); }
  # and a KMS command without --boxes is told where the state went
  expect 1 "$MK" key request --domain VE
  grep_out "its state is in $H/boxes/O00000001, its own as a process (meterkey box serve): reach it with --boxes DIR" "$T/err"
  expect 0 "$MK" box serve --box T00000001 --socket "$T/try.sock" --try-exec
  grep_out "^box T00000001 (user 65001, state $H/boxes/T00000001): exec refused (Operation not permitted); /etc/passwd refused (Permission denied); socket refused; dumpable again refused\$" "$T/out"
  # the socket is the home owner's, the KMS's (as under systemd: the home
  # meterkeyd's user's, the box started as root): that user reaches the
  # box, another is refused at the socket
  [ "$(stat -c '%u %a' "$R/O00000001.sock")" = "0 700" ] || { echo "FAIL: a root home's socket: $(stat -c '%u %a' "$R/O00000001.sock")"; fails=$((fails+1)); }
  H2="$T/h2"
  expect 0 "$MK" init --home "$H2"
  chown -R 4242:4242 "$H2"
  chmod 711 "$T"
  mkdir "$T/r2"
  "$MK" box serve --home "$H2" --box M00000001 --boxes "$T/r2" >"$T/serve.h2" 2>&1 &
  BOX_PIDS+=($!)
  for _ in $(seq 100); do grep -q "serving at" "$T/serve.h2" && break; sleep 0.05; done
  [ "$(stat -c '%u %g %a' "$T/r2/M00000001.sock")" = "4242 4242 700" ] || { echo "FAIL: the socket is not the home owner's: $(stat -c '%u %g %a' "$T/r2/M00000001.sock")"; fails=$((fails+1)); }
  expect 1 setpriv --reuid 4242 --regid 4242 --clear-groups "$MK" box status --home "$H2" --box M00000001 --boxes "$T/r2"
  grep_out "^box M00000001 (process [0-9]* at $T/r2/M00000001.sock): disabled, no share entered\$" "$T/out"
  expect 1 setpriv --reuid 4243 --regid 4243 --clear-groups "$MK" box status --home "$H2" --box M00000001 --boxes "$T/r2"
  grep_out "no process answers at $T/r2/M00000001.sock" "$T/err"
  # a box whose memory lock nothing bounds (here CAP_IPC_LOCK, given to a
  # user's process; under systemd, LimitMEMLOCK=infinity) locks all its
  # memory as it is touched, now and later: OpenSSL's heap holds the token
  # keys' schedules. Its mappings flagged lf, the binary's and the heap's
  # (all but the kernel's few: vdso, vvar, vsyscall)
  H3="$T/h3"
  expect 0 "$MK" init --home "$H3"
  chown -R 4242:4242 "$H3"
  mkdir "$T/r3"
  chown 4242:4242 "$T/r3"
  setpriv --reuid 4242 --regid 4242 --clear-groups --inh-caps +ipc_lock --ambient-caps +ipc_lock \
    "$MK" box serve --home "$H3" --box M00000001 --boxes "$T/r3" >"$T/serve.h3" 2>&1 &
  BOX_PIDS+=($!)
  for _ in $(seq 100); do grep -q "serving at" "$T/serve.h3" && break; sleep 0.05; done
  pid=$(sed -n 's/.*(process \([0-9]*\),.*/\1/p' "$T/serve.h3")
  maps=$(grep -c "^VmFlags:" /proc/"$pid"/smaps 2>/dev/null)
  lf=$(grep -c "^VmFlags:.* lf" /proc/"$pid"/smaps 2>/dev/null)
  [ -n "$pid" ] && [ "$lf" -gt $((maps / 2)) ] && grep -q "^VmFlags:.* lo lf" /proc/"$pid"/smaps ||
    { echo "FAIL: a box with CAP_IPC_LOCK locked $lf of $maps mappings:"; sed 's/^/  | /' "$T/serve.h3"; fails=$((fails+1)); }
fi

# a second process for the same box is refused
expect 1 "$MK" box serve --box O00000001 --boxes "$R"
grep_out "a process serves box O00000001 at $R/O00000001.sock already" "$T/err"
# a box the home does not have
expect 1 "$MK" box serve --box O00000009 --boxes "$R"
grep_out "no box O00000009 in the home $H" "$T/err"

# disabled: status says so (exit 1), and the KMS is refused, naming it
expect 1 "$MK" box status --box O00000001 --boxes "$R"
grep_out "^box O00000001 (process [0-9]* at $R/O00000001.sock): disabled, no share entered\$" "$T/out"
expect 1 "$MK" key request --domain VE --boxes "$R"
grep_out "box O00000001 (process [0-9]* at $R/O00000001.sock) is disabled: 0 of 0 shares entered .*(MK_RC_BOX_DISABLED)\$" "$T/err"

# shares: another box's is refused and named; one at a time; the same
# twice is refused; the box opens when there are enough
expect 1 "$MK" box unseal --box O00000001 --boxes "$R" --share "$S/S00000001.1.share"
grep_out "box O00000001 refused the share $S/S00000001.1.share (another box's, or another split's than those entered): .*(MK_ERR_SHARE_FOREIGN)\$" "$T/err"
expect 0 "$MK" box unseal --box O00000001 --boxes "$R" --share "$S/O00000001.1.share"
grep_out "^share $S/O00000001.1.share entered: 1 of 2\$" "$T/out"
grep_out "disabled, 1 of 2 shares entered" "$T/out"
expect 1 "$MK" box unseal --box O00000001 --boxes "$R" --share "$S/O00000001.1.share"
grep_out "(entered already): .*(MK_ERR_SHARE_DUPLICATE)\$" "$T/err"
expect 0 "$MK" box unseal --box O00000001 --boxes "$R" --share "$S/O00000001.2.share" --json
grep_out '"box":"O00000001".*"enabled":true' "$T/out"
expect 1 "$MK" box unseal --box O00000001 --boxes "$R" --share "$S/O00000001.2.share"
grep_out "(the box is enabled already)" "$T/err"
for b in M00000001 S00000001 B00000001 T00000001; do
  expect 0 "$MK" box unseal --box $b --boxes "$R" $(for f in "$S/$b".*.share; do printf -- '--share %s ' "$f"; done)
  grep_out "box $b (process [0-9]* at $R/$b.sock): enabled, sealed state generation [0-9]*" "$T/out"
done
expect 0 "$MK" box status --box O00000001 --boxes "$R" --json
grep_out '"enabled":true' "$T/out"
# once open, the fingerprint of its identity key: the same after a seal
# and a new unseal, another for another box
expect 0 "$MK" box status --box O00000001 --boxes "$R"
grep_out "^  identity fingerprint [0-9a-f]\{4\}\(:[0-9a-f]\{4\}\)\{15\}\$" "$T/out"
fo=$(sed -n 's/^  identity fingerprint //p' "$T/out")
expect 0 "$MK" box status --box S00000001 --boxes "$R"
fs=$(sed -n 's/^  identity fingerprint //p' "$T/out")
[ -n "$fs" ] && [ "$fo" != "$fs" ] || { echo "FAIL: O and S show the same fingerprint '$fo'"; fails=$((fails+1)); }

# a meter's whole life with every box a process: Oak makes the key, the
# Steel process installs it over the meter line handed to it, Brass
# confirms and registers, Tin verifies
export METERKEY_BOXES="$R"
expect 0 "$MK" meter create --product-code PM100 --msn 000077
expect 0 "$MK" meter install --meter PM100-000077 --domain VE
grep_out "key VE/[0-9]* INSTALLED (Steel S00000001, confirmed by Brass B00000001)" "$T/out"
expect 0 "$MK" meter install --meter PM100-000077 --domain USPS
expect 0 "$MK" meter register --meter PM100-000077 --indicia US00000077 --country US
expect 0 "$MK" meter credit --meter PM100-000077 --amount 1000
expect 0 "$MK" meter frank --meter PM100-000077 --postage 55 --origin 20500
cp "$T/out" "$T/line"
expect 0 "$MK" verify --file "$T/line"
grep_out "^good .*PM100-000077 piece 1" "$T/out"
expect 0 "$MK" tokens distribute --domain VE --month "$(date -u +%Y-%m)" --meter PM100-000077
expect 0 "$MK" tokens distribute --domain USPS --month "$(date -u +%Y-%m)" --meter PM100-000077
expect 0 "$MK" verify --tin --no-duplicates --file "$T/line"
grep_out "^good" "$T/out"
# the boxes' state was written by their processes: a new generation
expect 0 "$MK" box status --box S00000001 --json
grep_out '"enabled":true' "$T/out"

# sealed: its clear keys wiped, refused until enabled again
expect 0 "$MK" box seal --box B00000001
grep_out "^disabled: its clear keys wiped" "$T/out"
expect 1 "$MK" verify --no-duplicates --file "$T/line"
grep_out "box B00000001 (process [0-9]* at $R/B00000001.sock) is disabled" "$T/err"
expect 0 "$MK" box unseal --box B00000001 --share "$S/B00000001.1.share" --share "$S/B00000001.2.share"
expect 0 "$MK" verify --no-duplicates --file "$T/line"
expect 0 "$MK" box status --box O00000001
grep_out "^  identity fingerprint $fo\$" "$T/out"

# gone: a process killed is said so, naming where it was
kill -9 "${BOX_PIDS[1]}"
wait "${BOX_PIDS[1]}" 2>/dev/null
expect 1 "$MK" key request --domain VE
grep_out "box O00000001: no process answers at $R/O00000001.sock (\`meterkey box serve --box O00000001\` runs it): .*(MK_ERR_BOX_GONE)\$" "$T/err"
expect 1 "$MK" box status --box O00000001
grep_out "(MK_ERR_BOX_GONE)" "$T/err"
# started again (a socket file left behind is taken over), enabled again
serve O00000001
expect 0 "$MK" box unseal --box O00000001 --share "$S/O00000001.1.share" --share "$S/O00000001.2.share"
expect 0 "$MK" key request --domain VE

# a stop (SIGTERM) wipes and says so
kill -TERM "${BOX_PIDS[0]}"
wait "${BOX_PIDS[0]}" 2>/dev/null
grep_out "^box M00000001 stopped: its clear keys wiped" "$T/serve.M00000001"
# (a confined process cannot remove its socket: the next serve takes it over)
if [ "$(id -u)" != 0 ]; then
  [ ! -e "$R/M00000001.sock" ] || { echo "FAIL: the socket of a stopped box is left"; fails=$((fails+1)); }
fi
serve M00000001
expect 1 "$MK" box status --box M00000001
grep_out "disabled, no share entered" "$T/out"

# usage
expect 2 "$MK" box unseal --box O00000001
grep_out "^meterkey: --share is needed; see 'meterkey box unseal --help'" "$T/err"
expect 2 "$MK" box serve
expect 2 "$MK" box status --box X1
expect 0 "$MK" box serve --help
finish
