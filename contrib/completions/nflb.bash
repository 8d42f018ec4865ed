# bash completion for nflb (installed as /usr/share/bash-completion/completions/nflb).
# Verbs and options as in `nflb VERB --help`; uplink and service names come from the config.
_nflb_names() {
  # Top-level keys under uplinks: or services: in the config (no YAML parser needed for names).
  local section=$1 file=${2:-/etc/nflb/nflb.yaml}
  [ -r "$file" ] || return
  awk -v s="$section:" '$0 == s { on = 1; next } /^[^ #]/ { on = 0 } on && /^  [A-Za-z0-9_-]+:/ { sub(/^  /, ""); sub(/:.*/, ""); print }' "$file"
}

_nflb() {
  local cur prev words cword
  _init_completion || return
  local verbs="check plan apply run reload status down uplink backend explain exec cluster lab help"
  local common="-c --config -h --help"
  local cfg=/etc/nflb/nflb.yaml i
  for ((i = 1; i < ${#words[@]} - 1; i++)); do
    case ${words[i]} in -c | --config) cfg=${words[i + 1]} ;; esac
  done

  case $prev in
    -c | --config)
      _filedir '@(yaml|yml)'
      return
      ;;
    --api | --timeout | --node | --iif | --sport) return ;;
    --via)
      mapfile -t COMPREPLY < <(compgen -W "$(_nflb_names uplinks "$cfg")" -- "$cur")
      return
      ;;
  esac

  if ((cword == 1)); then
    mapfile -t COMPREPLY < <(compgen -W "$verbs -V --version -h --help" -- "$cur")
    return
  fi

  local verb=${words[1]} sub=${words[2]:-} opts=""
  case $verb in
    check) opts="$common --offline --json" ;;
    plan) opts="$common --offline --json --diff" ;;
    apply | down) opts="$common --json" ;;
    run) opts="$common --api --node" ;;
    reload) opts="$common --api --timeout --json" ;;
    status) opts="$common --api --json" ;;
    explain) opts="$common --api --iif --sport --local --offline --json" ;;
    exec) opts="$common --via" ;;
    uplink)
      if ((cword == 2)); then
        mapfile -t COMPREPLY < <(compgen -W "disable enable" -- "$cur")
        return
      fi
      if ((cword == 3)); then
        mapfile -t COMPREPLY < <(compgen -W "$(_nflb_names uplinks "$cfg")" -- "$cur")
        return
      fi
      opts="$common --api --json"
      ;;
    backend)
      if ((cword == 2)); then
        mapfile -t COMPREPLY < <(compgen -W "drain maint enable weight" -- "$cur")
        return
      fi
      if ((cword == 3)); then
        mapfile -t COMPREPLY < <(compgen -W "$(_nflb_names services "$cfg")" -- "$cur")
        return
      fi
      opts="$common --api --json"
      [ "$sub" = weight ] || opts="$opts --wait --timeout"
      ;;
    cluster)
      if ((cword == 2)); then
        mapfile -t COMPREPLY < <(compgen -W "push status" -- "$cur")
        return
      fi
      opts="$common --json"
      ;;
    lab)
      if ((cword == 2)); then
        mapfile -t COMPREPLY < <(compgen -W "up down cut restore traffic status" -- "$cur")
        return
      fi
      case $sub in
        cut | restore) mapfile -t COMPREPLY < <(compgen -W "isp1 isp2 isp3" -- "$cur") && return ;;
      esac
      opts="-h --help"
      ;;
    help)
      mapfile -t COMPREPLY < <(compgen -W "$verbs" -- "$cur")
      return
      ;;
  esac
  mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
}
complete -F _nflb nflb
