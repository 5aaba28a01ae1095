# bash completion for meterkey. The commands and options are read from the
# program's own --help (the same texts docs/cli.md and the man pages carry),
# so the completion never disagrees with the program it completes.
# Installed by `cmake --install` into share/bash-completion/completions.

# The commands a help text lists ("commands:" block), one per line.
_meterkey_commands() {
	"${MK_PROG:-meterkey}" "$@" --help 2>/dev/null |
		sed -n '/^commands:/,/^$/{s/^  \([a-z][a-z-]*\) .*/\1/p}'
}

# The options a help text names (--name), one per line.
_meterkey_options() {
	"${MK_PROG:-meterkey}" "$@" --help 2>/dev/null | grep -o -- '--[a-z][a-z0-9-]*' | sort -u
}

_meterkey() {
	# called by compgen -F (no COMP_WORDS): complete the word $2 after "meterkey"
	if ((${COMP_CWORD:--1} < 0)); then
		local -a COMP_WORDS=(meterkey "$2")
		local COMP_CWORD=1
	fi
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local -a path=() cands
	local i w subs

	# the command words so far (meterkey meter frank ...), up to the first option
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		[[ $w == -* ]] && break
		subs=$(_meterkey_commands "${path[@]}")
		[[ -n $subs ]] && grep -qx -- "$w" <<<"$subs" || break
		path+=("$w")
	done
	case $prev in
	--home | --out | --file | --image | --png | --record | --shares | --boxes | --share | --socket)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(_meterkey_options "${path[@]}")" -- "$cur"))
		return
	fi
	subs=$(_meterkey_commands "${path[@]}")
	if [[ -n $subs && $i -eq $COMP_CWORD ]]; then
		COMPREPLY=($(compgen -W "$subs" -- "$cur"))
	fi
}
complete -F _meterkey meterkey
