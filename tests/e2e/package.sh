#!/usr/bin/env bash
# The Debian package (scripts/package, issue 15) in a clean Debian 12: built
# from this tree while debootstrap makes a minbase chroot (with systemd)
# from this machine's apt mirror; installed there with apt, its
# dependencies from the mirror. Then as docs/operations.md says: the
# first ceremony as the user meterkey (in the chroot); Debian booted there
# (systemd-nspawn, a network of its own), every box's unit started (each
# box a user of its own, confined) and unsealed by the user meterkey,
# meterkeyd's unit started (the user meterkey, no capability), and GET
# /v1/health with a verifier's certificate: 200 ready, every box enabled.
# Twins: no client certificate, no HTTP answer; a box sealed, 503 naming
# it; a box stopped, 503 unreachable, twice. Purged: nothing of the package is left but the operators' data
# (/var/lib/meterkey, /etc/meterkey) and the user meterkey, which Debian
# keeps; purged with no data, those folders go too. Needs root and the
# mirror: skipped (77) without.
. "$(dirname "$0")/lib.bash"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
start=$(date +%s)
if [ "$(id -u)" != 0 ]; then echo "skipped: needs root (debootstrap, chroot)"; exit 77; fi
. /etc/os-release
SUITE=$VERSION_CODENAME
# the machine's own apt sources for this release (its updates and security
# too): the first is debootstrap's mirror, all go into the chroot
mapfile -t repos < <(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' |
  awk -v s="$SUITE" '$2 == s || index($2, s "-") == 1' | sort -u | sort -s -k2,2)
MIRROR=${repos[0]%% *}
if [ -z "$MIRROR" ] || ! curl -sfI --max-time 10 "${MIRROR%/}/dists/$SUITE/Release" >/dev/null; then
  echo "skipped: the apt mirror of $SUITE (${MIRROR:-none configured}) does not answer"; exit 77
fi
ROOT=$T/root

# Cleaning up, even after a failure: the container shut down (or its PID 1
# killed), every process whose root is the chroot (started here) ended by
# its ID, /proc unmounted, and the tree removed only once nothing is
# mounted under it.
cleanup() {
  local p left
  if [ -n "${NSPAWN:-}" ] && kill -0 "$NSPAWN" 2>/dev/null; then
    kill "$NSPAWN"
    for _ in $(seq 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$NSPAWN" 2>/dev/null; then
      # its children (the container's PID 1: the whole container goes), then it
      for p in $(pgrep -P "$NSPAWN"); do kill -9 "$p" 2>/dev/null; done
      kill -9 "$NSPAWN" 2>/dev/null
    fi
    wait "$NSPAWN" 2>/dev/null
  fi
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && kill "${p#/proc/}" 2>/dev/null
  done
  sleep 0.2
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && kill -9 "${p#/proc/}" 2>/dev/null
  done
  wait 2>/dev/null
  mountpoint -q "$ROOT/proc" && umount "$ROOT/proc"
  left=$(awk -v t="$T/" 'index($2, t) == 1 { print $2 }' /proc/mounts)
  if [ -n "$left" ]; then
    echo "package.sh: still mounted, $T left in place: $left" >&2
  else
    rm -rf --one-file-system "$T"
  fi
}
trap cleanup EXIT

# the package and the chroot, side by side (one takes the processors, the
# other the network)
"$SRC/scripts/package" --out "$T/pkg" --no-lintian >"$T/package.log" 2>&1 &
pkg=$!
debootstrap --variant=minbase --include=systemd "$SUITE" "$ROOT" "$MIRROR" >"$T/debootstrap.log" 2>&1 ||
  { echo "FAIL: debootstrap:"; tail -20 "$T/debootstrap.log"; exit 1; }
wait "$pkg" || { echo "FAIL: scripts/package:"; tail -30 "$T/package.log"; exit 1; }
DEB=$(tail -1 "$T/package.log")
[ -f "$DEB" ] || { echo "FAIL: no package ($DEB)"; exit 1; }
echo "package and chroot made in $(( $(date +%s) - start )) s"

mount -t proc proc "$ROOT/proc"
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d" # no service starts during apt
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
printf 'deb %s\n' "${repos[@]}" >"$ROOT/etc/apt/sources.list"
cp "$DEB" "$ROOT/tmp/"
PKG=/tmp/${DEB##*/}
ENV=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C)
inroot() { chroot "$ROOT" "${ENV[@]}" "$@"; }
# as_mk CMD... : CMD in the chroot as the user meterkey over its home
as_mk() { chroot "$ROOT" setpriv --reuid=meterkey --regid=meterkey --init-groups "${ENV[@]}" METERKEY_HOME=/var/lib/meterkey "$@"; }
expect 0 inroot apt-get update -qq
expect 0 inroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$PKG"

# what it installed
for f in /usr/bin/meterkey /usr/bin/meterkeyd; do
  [ -x "$ROOT$f" ] || { echo "FAIL: $f not installed"; fails=$((fails+1)); }
done
U=$ROOT/lib/systemd/system
grep -qx 'ExecStart=/usr/bin/meterkeyd .*' "$U/meterkeyd.service" &&
  grep -qx 'ExecStart=/usr/bin/meterkey box serve .*' "$U/meterkey-box@.service" &&
  ! grep -q @BINDIR@ "$U/meterkeyd.service" "$U/meterkey-box@.service" ||
  { echo "FAIL: the units are not in $U with /usr/bin"; fails=$((fails+1)); }
for page in meterkey meterkeyd meterkey-service-cert meterkey-box-serve; do
  MANWIDTH=80 expect 0 man -l "$ROOT/usr/share/man/man1/$page.1.gz"
  grep_out "^NAME" "$T/out"
done
IFS=: read -r _ _ uid gid _ home shell < <(inroot getent passwd meterkey)
[ -n "$uid" ] && [ "$uid" -lt 1000 ] && [ "$home" = /var/lib/meterkey ] && [ "$shell" = /usr/sbin/nologin ] ||
  { echo "FAIL: no system user meterkey ($uid $home $shell)"; fails=$((fails+1)); }
for d in /var/lib/meterkey /etc/meterkey; do
  [ "$(stat -c '%u %g %a' "$ROOT$d")" = "$uid $gid 700" ] ||
    { echo "FAIL: $d is $(stat -c '%u %g %a' "$ROOT$d"), not meterkey's ($uid $gid) 700"; fails=$((fails+1)); }
done

# the first ceremony, as the user meterkey (docs/operations.md)
expect 0 as_mk meterkey init
expect 0 as_mk meterkey domain create VE --country US
for t in oak steel brass; do expect 0 as_mk meterkey box init --type $t --domain VE; done
expect 0 as_mk meterkey service cert --role server --name localhost --out /etc/meterkey
expect 0 inroot ln -s localhost.pem /etc/meterkey/server.pem
expect 0 inroot ln -s localhost.key /etc/meterkey/server.key
expect 0 as_mk meterkey service cert --role verifier --name scan1 --out /tmp/clients
BOXES=$(as_mk meterkey box list | cut -d' ' -f1)
[ "$(echo $BOXES)" = "M00000001 O00000001 S00000001 B00000001" ] || { echo "FAIL: boxes '$BOXES'"; fails=$((fails+1)); }

# Debian 12 booted in the chroot (systemd-nspawn, a network of its own):
# the units run by systemd with their sandbox. nspawn's own seccomp filter
# refuses Landlock's calls unless let through (a box would not confine
# itself: "Landlock: Operation not permitted"); on a host they pass.
umount "$ROOT/proc"
systemd-nspawn --quiet --register=no --keep-unit --private-network --machine="mk-package-$$" \
  --system-call-filter='landlock_create_ruleset landlock_add_rule landlock_restrict_self' \
  -D "$ROOT" --boot </dev/null >"$T/boot.log" 2>&1 &
NSPAWN=$!
# its PID 1 (nspawn's child once it runs systemd): where nsenter goes
for _ in $(seq 100); do LEADER=$(pgrep -P "$NSPAWN" -x systemd); [ -n "$LEADER" ] && break; sleep 0.1; done
[ -n "$LEADER" ] || { echo "FAIL: the container did not start:"; cat "$T/boot.log"; exit 1; }
# in_c CMD... : in the container as root; as_c: as the user meterkey
in_c() { nsenter -t "$LEADER" -a "${ENV[@]}" "$@"; }
as_c() { nsenter -t "$LEADER" -a setpriv --reuid=meterkey --regid=meterkey --init-groups "${ENV[@]}" METERKEY_HOME=/var/lib/meterkey "$@"; }
for _ in $(seq 300); do # (its manager answers once it has started)
  state=$(in_c systemctl is-system-running 2>/dev/null)
  case $state in running|degraded) break;; esac
  sleep 0.1
done
case $state in running|degraded) ;; *) echo "FAIL: systemd in the container is '$state':"; tail -20 "$T/boot.log"; exit 1;; esac
# status PID : its uid, no_new_privs, seccomp mode and effective capabilities
status() { in_c awk '{ v[$1] = $2 } END { print v["Uid:"], v["NoNewPrivs:"], v["Seccomp:"], v["CapEff:"] }' "/proc/$1/status"; }

# the boxes: their units started, each a user of its own, confined
for b in $BOXES; do expect 0 in_c systemctl enable --now "meterkey-box@$b"; done
for b in $BOXES; do
  pid=$(in_c systemctl show -P MainPID "meterkey-box@$b")
  for _ in $(seq 50); do in_c journalctl -q -o cat -u "meterkey-box@$b" | grep -q "serving at" && break; sleep 0.1; done
  in_c journalctl -q -o cat -u "meterkey-box@$b" >"$T/serve.$b"
  grep_out "^box $b serving at /run/meterkey/$b.sock (process $pid, user 6[1-4]00[0-9], " "$T/serve.$b"
  read -r u nnp sc _ <<<"$(status "$pid")"
  [ "$u" -ge 61000 ] && [ "$nnp" = 1 ] && [ "$sc" = 2 ] || { echo "FAIL: box $b runs as uid $u, no_new_privs $nnp, seccomp $sc"; fails=$((fails+1)); }
  # its unit's LimitMEMLOCK=infinity: its memory all locked as touched
  # (OpenSSL's heap holds the token keys' schedules). systemd sets the
  # closest limit it may: in a container without CAP_SYS_RESOURCE, the
  # host's finite one, under which the box locks only its secure heap
  lim=$(in_c awk '/^Max locked memory/ { print $4 }' "/proc/$pid/limits")
  lo=$(in_c grep -c "^VmFlags:.* lo lf" "/proc/$pid/smaps")
  maps=$(in_c grep -c "^VmFlags:" "/proc/$pid/smaps")
  if [ "$lim" = unlimited ]; then
    [ "$lo" -gt $((maps / 2)) ] || { echo "FAIL: box $b, its lock unbounded, locked $lo of its $maps mappings"; fails=$((fails+1)); }
  else
    [ "$lo" -le 1 ] || { echo "FAIL: box $b, under a lock limit of $lim bytes, locked $lo mappings"; fails=$((fails+1)); }
    [ "$b" = M00000001 ] && echo "note: the boxes' memory lock limit is $lim bytes here (LimitMEMLOCK=infinity not granted), so they do not lock all their memory"
  fi
  # its operators enter their shares, as the user meterkey
  for f in "$ROOT"/var/lib/meterkey/shares/"$b".[0-9].share; do
    expect 0 as_c meterkey box unseal --box "$b" --boxes /run/meterkey --share "${f#"$ROOT"}"
  done
  grep_out "enabled, sealed state generation" "$T/out"
done

# meterkeyd: its unit, as the user meterkey, no capability, on 8443 of the
# container's own network
expect 0 in_c systemctl enable --now meterkeyd
for _ in $(seq 50); do in_c journalctl -q -o cat -u meterkeyd | grep -q listening && break; sleep 0.1; done
in_c journalctl -q -o cat -u meterkeyd >"$T/d.err"
grep_out '"msg":"listening","url":"https://0.0.0.0:8443"' "$T/d.err"
[ "$(status "$(in_c systemctl show -P MainPID meterkeyd)")" = "$uid 1 2 0000000000000000" ] ||
  { echo "FAIL: meterkeyd is not uid $uid, no_new_privs, seccomp, no capability: $(status "$(in_c systemctl show -P MainPID meterkeyd)")"; fails=$((fails+1)); }
C=$ROOT/tmp/clients
health() { CODE=$(nsenter -t "$LEADER" -n curl -s -o "$T/out" -w '%{http_code}' --cacert "$C/ca.pem" "$@" https://localhost:8443/v1/health); }
health --cert "$C/scan1.pem" --key "$C/scan1.key"
[ "$CODE" = 200 ] || { echo "FAIL: health $CODE"; fails=$((fails+1)); }
grep_out '^{"status":"ready","archive":"reachable","boxes":{"M00000001":"enabled","O00000001":"enabled","S00000001":"enabled","B00000001":"enabled"}}$' "$T/out"
# twins: no client certificate, no answer at all (the handshake refuses);
# a box sealed, 503 naming it
health
[ "$CODE" = 000 ] || { echo "FAIL: a client without a certificate got HTTP $CODE"; fails=$((fails+1)); }
expect 0 as_c meterkey box seal --box B00000001 --boxes /run/meterkey
health --cert "$C/scan1.pem" --key "$C/scan1.key"
[ "$CODE" = 503 ] || { echo "FAIL: health with Brass sealed $CODE"; fails=$((fails+1)); }
grep_out '"status":"sealed".*"B00000001":"sealed"' "$T/out"
# a box's process stopped (its unit): unreachable, and the service still
# answers the next call (a failed connect once closed its descriptor 0)
expect 0 in_c systemctl stop meterkey-box@B00000001
for _ in 1 2; do
  health --cert "$C/scan1.pem" --key "$C/scan1.key"
  [ "$CODE" = 503 ] || { echo "FAIL: health with Brass stopped $CODE"; fails=$((fails+1)); }
  grep_out '"status":"sealed".*"B00000001":"unreachable"' "$T/out"
done
# the container shut down (the units stopped with it)
kill "$NSPAWN"
for _ in $(seq 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
wait "$NSPAWN" 2>/dev/null
mount -t proc proc "$ROOT/proc"

# purged: nothing of the package remains but the operators' data and the
# user (Debian keeps both); dpkg forgets it
# left : paths under the chroot naming meterkey, but /tmp, /proc, /run and
# the data
# (/run: the boxes' sockets, in a tmpfs on a real system, gone at boot)
left() { find "$ROOT" -xdev \( -path "$ROOT/tmp" -o -path "$ROOT/proc" -o -path "$ROOT/run" -o -path "$ROOT/var/lib/meterkey" -o -path "$ROOT/etc/meterkey" \) -prune -o -name '*meterkey*' -print; }
inroot dpkg -L meterkey | while read -r f; do [ -d "$ROOT$f" ] || echo "$f"; done >"$T/files"
[ "$(wc -l <"$T/files")" -gt 40 ] || { echo "FAIL: the package lists $(wc -l <"$T/files") files"; fails=$((fails+1)); }
expect 0 inroot env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq meterkey
expect 1 inroot dpkg-query -W -f '${db:Status-Abbrev}' meterkey # not even config-files (rc)
while read -r f; do [ ! -e "$ROOT$f" ] || echo "FAIL: $f is left"; done <"$T/files" >"$T/kept"
[ ! -s "$T/kept" ] || { cat "$T/kept"; fails=$((fails+1)); }
left >"$T/left"
empty "$T/left"
[ -f "$ROOT/var/lib/meterkey/archive.db" ] && [ -f "$ROOT/etc/meterkey/localhost.key" ] ||
  { echo "FAIL: a purge removed the operators' data"; fails=$((fails+1)); }
inroot getent passwd meterkey >/dev/null || { echo "FAIL: the user meterkey went with the purge"; fails=$((fails+1)); }
# with the data gone (the operators' decision): installed again, purged, and
# the two folders go with it
inroot rm -rf /var/lib/meterkey /etc/meterkey
expect 0 inroot dpkg -i "$PKG"
[ -d "$ROOT/var/lib/meterkey" ] || { echo "FAIL: no home made again"; fails=$((fails+1)); }
expect 0 inroot dpkg --purge meterkey
[ ! -e "$ROOT/var/lib/meterkey" ] && [ ! -e "$ROOT/etc/meterkey" ] ||
  { echo "FAIL: empty /var/lib/meterkey or /etc/meterkey left by a purge"; fails=$((fails+1)); }
left >"$T/left"
empty "$T/left"
echo "package test: $(( $(date +%s) - start )) s"
finish
