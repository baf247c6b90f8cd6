# shellcheck shell=bash
# 30-speakers.sh: one ironlb-speaker per node, inside the node's namespace, as the chart's
# DaemonSet would run them (see lab_start_speaker; e2e/lab/speaker.sh stops, kills and restarts
# them). LAB_SPEAKERS=0 is a developer switch: bring the lab up without speakers, e.g. to run one
# by hand; such a lab is not reused by an up.sh without it (see lab_fingerprint).
if [ "${LAB_SPEAKERS:-1}" = 0 ]; then
  lab_log "LAB_SPEAKERS=0: no speakers started (start one with: e2e/lab/speaker.sh start <node>)"
  return 0
fi
for node in $LAB_NODES; do
  lab_start_speaker "$node"
done
