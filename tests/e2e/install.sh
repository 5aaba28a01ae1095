#!/usr/bin/env bash
# `cmake --install` of the build tree into a temporary prefix: the tool, its
# man pages (help2man, from the tool's own --help texts) and its bash
# completion; the pages render with man, and the completion completes
# commands and options (bash's compgen, through the completion function).
. "$(dirname "$0")/lib.bash"
B=${2:?usage: install.sh path/to/meterkey BUILD_DIR}
P=$T/prefix

expect 0 cmake --install "$B" --prefix "$P"
[ -x "$P/bin/meterkey" ] || { echo "FAIL: no bin/meterkey"; fails=$((fails+1)); }
C=$P/share/bash-completion/completions/meterkey
[ -f "$C" ] || { echo "FAIL: no completion"; fails=$((fails+1)); }
for page in meterkey meterkey-verify meterkey-meter-frank meterkey-shares-split; do
  [ -f "$P/share/man/man1/$page.1" ] || { echo "FAIL: no man page $page.1"; fails=$((fails+1)); continue; }
  MANWIDTH=80 expect 0 man -l "$P/share/man/man1/$page.1"
  grep_out "^NAME" "$T/out"
done
MANWIDTH=80 expect 0 man -l "$P/share/man/man1/meterkey-verify.1"
grep_out "meterkey-verify - verify indicia" "$T/out"
grep_out "no-duplicates" "$T/out"

# completion: MK_PROG is the installed tool
complete_to() { # WANT WORDS...: the completions of the last word are WANT
  local want=$1; shift
  local got
  got=$(MK_PROG="$P/bin/meterkey" bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _meterkey; echo "${COMPREPLY[*]}"' _ "$C" "$@")
  [ "$got" = "$want" ] || { echo "FAIL: completing '$*' gave '$got', want '$want'"; fails=$((fails+1)); }
}
complete_to "meter" meterkey me
complete_to "frank" meterkey meter fr
complete_to "--postage" meterkey meter frank --po
complete_to "--time --tin --tls-ca --tls-cert --tls-key" meterkey verify --t
complete_to "" meterkey nosuch
# and as bash itself runs it: compgen with the function
got=$(MK_PROG="$P/bin/meterkey" bash -c 'source "$1"; compgen -F _meterkey -- me 2>/dev/null' _ "$C")
[ "$got" = meter ] || { echo "FAIL: compgen -F _meterkey gave '$got'"; fails=$((fails+1)); }
finish
