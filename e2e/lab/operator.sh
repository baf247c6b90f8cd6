#!/usr/bin/env bash
# Faults and chores for the lab's operator replicas (0 and 1):
#   e2e/lab/operator.sh start <replica>    start it (as up.d/20-operator.sh does)
#   e2e/lab/operator.sh stop <replica>     SIGTERM: it releases the leader Lease and exits
#   e2e/lab/operator.sh kill <replica>     SIGKILL: no goodbye; the standby waits out the Lease
#   e2e/lab/operator.sh leader             print the replica holding the leader Lease
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export PATH="$LAB_BIN:$PATH" KUBECONFIG="$LAB_KUBECONFIG"

command=${1:-}; replica=${2:-}
case "$command" in
  start) lab_start_operator "$replica" ;;
  stop) lab_stop "operator-$replica" 20 ;;
  kill) lab_signal "operator-$replica" KILL ;;
  leader)
    holder=$(lab_kubectl -n "$LAB_HELM_NAMESPACE" get lease ironlb-operator -o jsonpath='{.spec.holderIdentity}')
    echo "${holder#ironlb-operator-}" ;;
  *) sed -n '2,6p' "$0" >&2; exit 2 ;;
esac
