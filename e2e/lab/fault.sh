#!/usr/bin/env bash
# Fault injection for the lab: every fault the failover tests and benchmarks use, as a command a
# person can run too. <node> is a Node name (ironlb-node-1, ...).
#   e2e/lab/fault.sh kill <node>            SIGKILL the node's speaker: a crash, no goodbye
#   e2e/lab/fault.sh stop <node>            SIGTERM it and wait: the graceful hand-over
#   e2e/lab/fault.sh start <node>           start it again (and wait until ready)
#   e2e/lab/fault.sh restart <node>         stop, then start
#   e2e/lab/fault.sh link-down <node>       take the node's LAN interface (eth0) down
#   e2e/lab/fault.sh link-up <node>         bring it back
#   e2e/lab/fault.sh cut-api <node>         cut the node off the API server (its API relay stops;
#                                           the LAN is untouched, so peers still hear it)
#   e2e/lab/fault.sh restore-api <node>     give it its API path back
#   e2e/lab/fault.sh control-plane-stop     stop kube-apiserver and etcd (speakers stay up)
#   e2e/lab/fault.sh control-plane-start    start them again, wait until the API is ready, and restart
#                                           an operator replica that exited meanwhile (as a kubelet would)
#   e2e/lab/fault.sh etcd-stall <seconds>  freeze etcd (SIGSTOP) for <seconds>, then thaw it: the API
#                                           server hangs on every write, as with a stalled disk
#   e2e/lab/fault.sh foreign-claim <ip>     a host that is not a speaker joins the LAN, puts <ip> on
#                                           its interface and announces it (gratuitous ARP for IPv4;
#                                           the kernel's DAD solicitation and answers for IPv6)
#   e2e/lab/fault.sh foreign-flood <ip> [seconds] [rate]
#                                           that host floods the LAN with gratuitous ARP for <ip>
#                                           from 8 alternating fake MACs (02:0f:00:00:00:01-08), at
#                                           about <rate> frames/s (1000) for <seconds> (10), and
#                                           returns when it is over (IPv4 only; at most 60 s, 5000/s)
#   e2e/lab/fault.sh foreign-release        that host leaves the LAN
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export PATH="$LAB_BIN:$PATH" KUBECONFIG="$LAB_KUBECONFIG"

usage() { sed -n '2,26p' "$0" >&2; exit 2; }
command=${1:-}
node_arg() {
  [ $# -eq 1 ] || usage
  lab_is_node "$1" || { echo "fault.sh: '$1' is not a lab node ($LAB_NODES)" >&2; usage; }
}

case "$command" in
  kill | stop | start | restart)
    node_arg "${@:2}"
    exec "$LAB_SCRIPTS/speaker.sh" "$command" "$2" ;;
  link-down | link-up)
    node_arg "${@:2}"
    ip -n "$2" link set "$LAB_IFACE" "${command#link-}" ;;
  cut-api)
    node_arg "${@:2}"
    lab_stop "apirelay-$2" 5 ;;
  restore-api)
    node_arg "${@:2}"
    lab_alive "apirelay-$2" || lab_respawn "apirelay-$2" ;;
  control-plane-stop)
    lab_stop kube-apiserver 20
    lab_stop etcd 20 ;;
  control-plane-start)
    lab_alive etcd || lab_respawn etcd
    lab_alive kube-apiserver || lab_respawn kube-apiserver
    # Generous: on two shared cores a restarted API server re-lists everything before it is ready.
    lab_wait_for "kube-apiserver /readyz" 180 lab_apiserver_ready ||
      { lab_tail kube-apiserver 30; lab_die "kube-apiserver did not come back"; }
    lab_wait_for "kube-controller-manager /healthz" 60 lab_kcm_healthy ||
      { lab_tail kube-controller-manager 30; lab_die "kube-controller-manager did not recover"; }
    # A replica that crashed meanwhile is restarted, as a kubelet would. Losing the leader
    # Lease is not a crash: the replica stands by and campaigns again by itself.
    for replica in 0 1; do
      lab_alive "operator-$replica" || lab_start_operator "$replica"
    done ;;
  etcd-stall)
    if [ $# -ne 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then usage; fi
    lab_signal etcd STOP
    # Thaw even if this script is interrupted: a frozen etcd would wedge every later test.
    trap 'lab_signal etcd CONT' EXIT
    sleep "$2" ;;
  foreign-claim)
    [ $# -eq 2 ] || usage
    ip=$2 host=$LAB_FOREIGN
    if ! lab_netns_exists "$host"; then
      lab_add_host "$host"
      # Unlike the lab's own hosts, this one checks an IPv6 address before it uses it (DAD): the
      # speaker announcing it sees that probe and reports the conflict.
      ip netns exec "$host" sysctl -qw net.ipv6.conf.eth0.accept_dad=1
    fi
    case "$ip" in
      *:*) ip -n "$host" addr add "$ip/128" dev "$LAB_IFACE" ;;  # the kernel probes it (DAD) and answers for it
      *)
        ip -n "$host" addr add "$ip/32" dev "$LAB_IFACE"
        # Announce it, as a host configured with the address does when it comes up.
        ip netns exec "$host" arping -q -U -c 3 -w 3 -i "$LAB_IFACE" -S "$ip" "$ip" || true ;;
    esac
    lab_log "$host (${LAB_MAC[$host]}) claims $ip" ;;
  foreign-flood)
    if [ $# -lt 2 ] || [ $# -gt 4 ]; then usage; fi
    ip=$2 seconds=${3:-10} rate=${4:-1000} host=$LAB_FOREIGN senders=8
    [[ "$ip" =~ ^[0-9.]+$ ]] || { echo "fault.sh: foreign-flood floods IPv4 addresses only" >&2; usage; }
    if ! [[ "$seconds" =~ ^[0-9]+$ && "$seconds" -ge 1 && "$seconds" -le 60 ]]; then
      echo "fault.sh: <seconds> must be 1-60" >&2; usage
    fi
    if ! [[ "$rate" =~ ^[0-9]+$ && "$rate" -ge "$senders" && "$rate" -le 5000 ]]; then
      echo "fault.sh: <rate> must be $senders-5000 frames/s" >&2; usage
    fi
    lab_netns_exists "$host" || lab_add_host "$host"
    # One arping per fake MAC, each sending rate/8 gratuitous requests (sender = target = <ip>,
    # Ethernet source the fake MAC) a second. Bounded twice: a frame count (-c) and a deadline
    # (-w), so the flood stops by itself even if this script is interrupted. arping sleeps -W
    # after each frame, so the real rate comes out somewhat lower than asked.
    per_sender=$(( rate * seconds / senders ))
    interval=$(awk -v s="$senders" -v r="$rate" 'BEGIN { printf "%.6f", s / r }')
    lab_log "$host floods the LAN with gratuitous ARP for $ip: ${rate}/s for ${seconds}s from $senders MACs"
    pids=()
    for n in $(seq 1 "$senders"); do
      ip netns exec "$host" arping -q -U -c "$per_sender" -w "$seconds" -W "$interval" \
        -s "02:0f:00:00:00:0$n" -i "$LAB_IFACE" -S "$ip" "$ip" &
      pids+=("$!")
    done
    # arping exits non-zero when nothing answers, which nothing does: the flood asks nothing.
    for pid in "${pids[@]}"; do wait "$pid" || true; done
    lab_log "the flood for $ip is over" ;;
  foreign-release)
    if lab_netns_exists "$LAB_FOREIGN"; then ip netns del "$LAB_FOREIGN"; fi ;;
  *) usage ;;
esac
