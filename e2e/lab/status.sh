#!/usr/bin/env bash
# What of the ironlb test lab is running. Exit 0 when the lab is up and healthy, 1 otherwise.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

echo "lab dir: $LAB_DIR $([ -d "$LAB_DIR" ] && echo "(exists)" || echo "(absent)")"

echo "daemons:"
found=0
while read -r n; do
  [ -n "$n" ] || continue
  found=1
  if pid=$(lab_pidfile_pid "$n"); then
    printf '  %-28s running  pid %s\n' "$n" "$pid"
  else
    printf '  %-28s DEAD     (stale PID file %s)\n' "$n" "$LAB_PIDS/$n.pid"
  fi
done < <(lab_daemons)
[ "$found" = 1 ] || echo "  (none)"

echo "network namespaces:"
for ns in $LAB_ALL_NETNSES; do
  if lab_netns_exists "$ns"; then
    if [ "$ns" = "$LAB_LAN_NETNS" ]; then
      ports=$(ip -n "$ns" -br link show master "$LAB_BRIDGE" 2>/dev/null | awk '{ sub(/@.*/, "", $1); printf "%s(%s) ", $1, $2 }')
      printf '  %-16s bridge %s, ports: %s\n' "$ns" "$LAB_BRIDGE" "${ports:-none}"
    else
      addrs=$(ip -n "$ns" -br addr show dev "$LAB_IFACE" 2>/dev/null | awk '{ $1 = ""; print }')
      printf '  %-16s %s:%s\n' "$ns" "$LAB_IFACE" "${addrs:- (missing)}"
    fi
  else
    printf '  %-16s absent\n' "$ns"
  fi
done

if [ -f "$LAB_PKI/admin.crt" ]; then
  printf 'kube-apiserver %s /readyz: %s\n' "$LAB_APISERVER_URL" "$(lab_curl_api /readyz 2>&1 | head -1)"
  printf 'kube-controller-manager 127.0.0.1:%s /healthz: %s\n' "$LAB_KCM_PORT" \
    "$(curl -sS --max-time 5 --cacert "$LAB_PKI/ca.crt" "https://127.0.0.1:$LAB_KCM_PORT/healthz" 2>&1 | head -1)"
  if lab_apiserver_ready; then
    echo "nodes:"
    lab_kubectl get nodes -o wide 2>&1 | sed 's/^/  /'
  fi
fi

if lab_healthy quiet; then
  echo "lab: up and healthy. Use: . $LAB_ENV && kubectl get nodes"
  exit 0
fi
if lab_anything_up; then
  lab_healthy || true
  echo "lab: NOT healthy (make lab-up repairs it by starting clean; make lab-down removes it)"
else
  echo "lab: down"
fi
exit 1
