# Sourced by the e2e tests: $MK is the meterkey binary, $T a fresh temporary
# directory removed at exit, and small assertion helpers that name the failure.
set -u
MK=${1:?usage: $0 path/to/meterkey}
T=$(mktemp -d)
BOX_PIDS=()
trap 'for p in "${BOX_PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait; rm -rf "$T"' EXIT
fails=0

# expect STATUS CMD... : runs CMD, output to $T/out and $T/err, checks its status.
expect() {
  local want=$1; shift
  "$@" >"$T/out" 2>"$T/err"
  local got=$?
  if [ "$got" != "$want" ]; then
    echo "FAIL: '$*' exited $got, expected $want"; sed 's/^/  | /' "$T/out" "$T/err"; fails=$((fails+1))
  fi
}

# grep_out PATTERN FILE : FILE ($T/out or $T/err) must contain PATTERN.
grep_out() {
  grep -q -- "$1" "$2" || { echo "FAIL: '$1' not in ${2##*/}:"; sed 's/^/  | /' "$2"; fails=$((fails+1)); }
}

# one_line : with --json, $T/out must be exactly one line, one object.
one_line() {
  if [ "$(wc -l <"$T/out")" != 1 ] || ! grep -q '^{.*}$' "$T/out"; then
    echo "FAIL: stdout is not one JSON object on one line:"; sed 's/^/  | /' "$T/out"; fails=$((fails+1))
  fi
}

# empty FILE : FILE ($T/out or $T/err) must be empty.
empty() {
  [ ! -s "$1" ] || { echo "FAIL: ${1##*/} not empty:"; sed 's/^/  | /' "$1"; fails=$((fails+1)); }
}

finish() {
  if [ "$fails" -eq 0 ]; then echo "all checks passed"; exit 0; fi
  echo "$fails check(s) failed"; exit 1
}

# invert_byte FILE OFFSET : the byte at OFFSET with its bits inverted, so it
# always changes (a fixed byte written there changes nothing when the byte
# was that already: a random signature byte, one run in 256).
invert_byte() {
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "\\$(printf '%03o' $(( b ^ 0xff )))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# boxes_as_processes HOME : with MK_E2E_BOXES=process, every box of HOME is
# started as a process of its own (meterkey box serve, in $T/run), enabled
# with its share files from HOME/shares one at a time (box unseal), and
# METERKEY_BOXES exported, so that every command after reaches its boxes
# only by messages (issue 13). Without it, nothing: boxes stay in-process.
boxes_as_processes() {
  [ "${MK_E2E_BOXES:-}" = process ] || return 0
  local home=$1 id f
  mkdir -p "$T/run"
  for id in $("$MK" box list --home "$home" | cut -d' ' -f1); do
    "$MK" box serve --home "$home" --box "$id" --boxes "$T/run" >"$T/serve.$id" 2>&1 &
    BOX_PIDS+=($!)
    for _ in $(seq 100); do grep -q "serving at" "$T/serve.$id" && break; sleep 0.05; done
    for f in "$home/shares/$id".*.share; do
      "$MK" box unseal --home "$home" --box "$id" --boxes "$T/run" --share "$f" >/dev/null 2>&1
    done
    "$MK" box status --home "$home" --box "$id" --boxes "$T/run" >/dev/null ||
      { echo "FAIL: box $id did not start as a process:"; sed 's/^/  | /' "$T/serve.$id"; fails=$((fails+1)); }
  done
  export METERKEY_BOXES="$T/run"
}

# boxes_back_in_process HOME : the processes boxes_as_processes started are
# stopped (SIGTERM: their keys wiped) and, where each moved its state into
# a folder of its own (started as root), the state comes back to
# HOME/boxes, so that the commands after open the boxes in-process again.
boxes_back_in_process() {
  [ "${MK_E2E_BOXES:-}" = process ] || return 0
  local home=$1 p d
  for p in "${BOX_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${BOX_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  BOX_PIDS=()
  for d in "$home"/boxes/*/; do
    [ -d "$d" ] || continue
    mv "$d"* "$home/boxes/" && rmdir "$d" && chown -R "$(id -u):$(id -g)" "$home/boxes" ||
      { echo "FAIL: the state of $d did not come back"; fails=$((fails+1)); }
  done
  unset METERKEY_BOXES
}

# meterkeyd_start MKD DIR ARGS... : meterkeyd with the server's certificate
# of DIR (meterkey service cert --role server --name localhost --out DIR)
# on a free port, and ARGS; its log in $T/d.err, its process in $DPID, its
# port in $PORT. A service that does not start ends the test.
meterkeyd_start() {
  local mkd=$1 dir=$2
  shift 2
  "$mkd" --cert "$dir/localhost.pem" --key "$dir/localhost.key" --port 0 "$@" 2>"$T/d.err" &
  DPID=$!
  BOX_PIDS+=("$DPID")
  # up to 30 s: a test build under sanitizers starts slowly while other tests load the machine
  for _ in $(seq 300); do grep -q '"msg":"listening"' "$T/d.err" && break; sleep 0.1; done
  PORT=$(sed -n 's/.*"msg":"listening","url":"https:\/\/127.0.0.1:\([0-9]*\)".*/\1/p' "$T/d.err")
  [ -n "$PORT" ] || { echo "FAIL: meterkeyd did not start"; cat "$T/d.err"; exit 1; }
}

# kms_home [ARGS...] : domains VE and USPS (country US) and an Oak, a Steel
# and a Brass box serving both, in the home made before (meterkey init);
# ARGS (--archive URL) to each command
kms_home() {
  local t
  expect 0 "$MK" domain create VE --country US "$@"
  expect 0 "$MK" domain create USPS --country US "$@"
  for t in oak steel brass; do expect 0 "$MK" box init --type $t --domain VE --domain USPS "$@"; done
}

# meter_ready N [ARGS...] : meter PM100-00000N made, its VE and USPS keys
# installed, registered in US as US0000000N and credited 1000; ARGS
# (--archive URL) to each command
meter_ready() {
  local n=$1 d
  shift
  expect 0 "$MK" meter create --product-code PM100 --msn "00000$n" "$@"
  for d in VE USPS; do expect 0 "$MK" meter install --meter "PM100-00000$n" --domain $d "$@"; done
  expect 0 "$MK" meter register --meter "PM100-00000$n" --indicia "US0000000$n" --country US "$@"
  expect 0 "$MK" meter credit --meter "PM100-00000$n" --amount 1000 "$@"
}

# sightings DB : the sightings the SQLite archive DB holds (every day's
# partition of the duplicate index, seen_<domain>_<day>: one row an
# indicium)
sightings() {
  local n=0 t c
  for t in $(sqlite3 "$1" "SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB 'seen_*_[0-9]*'"); do
    c=$(sqlite3 "$1" "SELECT count(*) FROM \"$t\"") || return 1
    n=$((n + c))
  done
  echo "$n"
}
