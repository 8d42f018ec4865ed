#!/bin/sh
# udhcpc's lease script for the lab's DHCP uplinks: applies the lease with `ip`, as a router's
# DHCP client would: the address (replacing the old lease's), and a default route via the
# lease's router in the main table (where nflb learns `gateway: auto` from). udhcpc passes the
# lease in the environment; every value is checked before it reaches `ip`.
set -u
ok_ip() { printf '%s' "$1" | grep -Eq '^[0-9]{1,3}(\.[0-9]{1,3}){3}$'; }
ok_mask() { printf '%s' "$1" | grep -Eq '^[0-9]{1,2}$'; }
case "${1:-}" in
  deconfig)
    ip -4 addr flush dev "$interface" scope global
    ip link set dev "$interface" up
    ;;
  bound | renew)
    ok_ip "${ip:-}" && ok_mask "${mask:-}" || exit 1
    # The old lease's address goes, unless it is the one bound now.
    for old in $(ip -4 -o addr show dev "$interface" scope global | awk '{print $4}'); do
      [ "$old" = "$ip/$mask" ] || ip -4 addr del "$old" dev "$interface"
    done
    ip -4 addr replace "$ip/$mask" dev "$interface"
    for r in ${router:-}; do
      ok_ip "$r" || continue
      ip -4 route replace default via "$r" dev "$interface" metric 100
      break
    done
    ;;
esac
exit 0
