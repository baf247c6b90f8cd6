#!/usr/bin/env bash
# Faults and chores for the lab's speakers (one per node, daemon speaker-<node>):
#   e2e/lab/speaker.sh start <node>     start it (as up.d/30-speakers.sh does) and wait until ready; running: nothing
#   e2e/lab/speaker.sh stop <node>      SIGTERM, and wait until it has exited (an orderly goodbye)
#   e2e/lab/speaker.sh kill <node>      SIGKILL: a crash, no goodbye
#   e2e/lab/speaker.sh restart <node>   stop, then start
#   e2e/lab/speaker.sh status <node>    running or not, and its /readyz (exit 0 only when ready)
# <node> is a Node name, e.g. ironlb-node-1 (LAB_NODES).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export PATH="$LAB_BIN:$PATH" KUBECONFIG="$LAB_KUBECONFIG"

usage() { sed -n '2,8p' "$0" >&2; exit 2; }
command=${1:-}; node=${2:-}
[ $# -eq 2 ] || usage
lab_is_node "$node" || { echo "speaker.sh: '$node' is not a lab node ($LAB_NODES)" >&2; usage; }
case "$command" in
  start) lab_alive "speaker-$node" || lab_start_speaker "$node" ;;  # already running: nothing to do
  stop) lab_stop "speaker-$node" 20 ;;
  kill) lab_signal "speaker-$node" KILL ;;
  restart) lab_stop "speaker-$node" 20; lab_start_speaker "$node" ;;
  status)
    if ! pid=$(lab_pidfile_pid "speaker-$node"); then
      echo "speaker-$node: not running"; exit 1
    fi
    if ready=$(ip netns exec "$node" curl -fsS --max-time 5 "http://127.0.0.1:$LAB_SPEAKER_METRICS_PORT/readyz" 2>&1); then
      echo "speaker-$node: running, pid $pid, ready (/readyz: $ready)"
    else
      echo "speaker-$node: running, pid $pid, NOT ready (/readyz: $ready)"; exit 1
    fi ;;
  *) usage ;;
esac
