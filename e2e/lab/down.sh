#!/usr/bin/env bash
# Removes the ironlb test lab completely: every process it started, every network namespace it
# made, and e2e/.lab. Safe at any time: when nothing is up, twice in a row, and after a crash
# (missing or stale PID files, half-made namespaces).
#   LAB_KEEP_LOGS=<dir>  copy e2e/.lab/logs into <dir> first (after the processes have stopped,
#                        so their last words are in it).
# Processes are only ended by PID and only after verifying the PID still is the lab's process
# (see lib.sh); never by name.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lab_require_root
lab_lock

# iproute2 makes /run/netns a mount point (a bind mount of itself) the first time a namespace is
# named. When no named namespace is left at all, undo that too, so no netns mount remains. A plain
# umount (not lazy) fails rather than hide anything should another namespace appear meanwhile.
unmount_empty_run_netns() {
  local i
  for i in 1 2 3; do
    mountpoint -q /run/netns 2>/dev/null && [ -z "$(ls -A /run/netns 2>/dev/null)" ] || return 0
    umount /run/netns 2>/dev/null || return 0
  done
}

if ! lab_anything_up; then
  unmount_empty_run_netns
  lab_log "nothing to tear down (no $LAB_DIR, no lab namespace, no lab process)"
  exit 0
fi

# 1. Daemons with PID files: first everything that is not control plane (hooks' daemons, relays),
#    newest first, so e.g. speakers can still delete their Leases; then the control plane.
mapfile -t daemons < <(lab_daemons)
ended=()   # "pid starttime" of everything this script ends
for d in "${daemons[@]}"; do
  if pid=$(lab_pidfile_pid "$d"); then ended+=("$pid $(lab_proc_starttime "$pid")"); fi
done
others=()
for ((i = ${#daemons[@]} - 1; i >= 0; i--)); do
  case " $LAB_CONTROL_PLANE " in *" ${daemons[$i]} "*) ;; *) others+=("${daemons[$i]}") ;; esac
done
[ ${#others[@]} -eq 0 ] || lab_stop_many 10 "${others[@]}"
lab_stop_many 15 kube-controller-manager apiserver-socket
lab_stop kube-apiserver 20
lab_stop etcd 20
lab_phase_end "stopped the lab's daemons"

# 2. Lab processes whose PID file was lost (e.g. up.sh crashed): found by the lab marker in
#    their environment, then verified again by start time before every signal.
declare -A stray=()
for pid in $(lab_marked_pids); do stray[$pid]=$(lab_proc_starttime "$pid"); done
# 3. Any process still inside one of the lab's namespaces (e.g. a shell someone started there).
for ns in $LAB_ALL_NETNSES; do
  lab_netns_exists "$ns" || continue
  for pid in $(ip netns pids "$ns" 2>/dev/null); do stray[$pid]=$(lab_proc_starttime "$pid"); done
done
if [ ${#stray[@]} -gt 0 ]; then
  # etcd last, as above: an API server whose etcd vanished takes long to shut down.
  for pass in others etcd; do
    for pid in "${!stray[@]}"; do
      [ -n "${stray[$pid]}" ] || continue
      cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)
      kind=others
      [ "${cmd%% *}" != "$LAB_BIN/etcd" ] || kind=etcd
      [ "$kind" = "$pass" ] || continue
      lab_log "ending leftover lab process $pid: ${cmd:0:100}"
      ended+=("$pid ${stray[$pid]}")
      lab_kill_verified "$pid" "${stray[$pid]}" 10 &
    done
    wait
  done
  lab_phase_end "ended leftover processes"
fi

# 4. Keep the logs if asked.
if [ -n "${LAB_KEEP_LOGS:-}" ] && [ -d "$LAB_LOGS" ]; then
  mkdir -p "$LAB_KEEP_LOGS" && cp -a "$LAB_LOGS/." "$LAB_KEEP_LOGS/" &&
    lab_log "logs copied to $LAB_KEEP_LOGS"
fi

# 5. Namespaces: exactly the lab's names (hosts first, the bridge namespace last). `ip netns del`
#    also unmounts /run/netns/<name>; deleting the bridge namespace removes the bridge and veths.
rc=0
for ns in $LAB_ALL_NETNSES; do
  lab_netns_exists "$ns" || continue
  ip netns del "$ns" || { lab_warn "could not delete netns $ns"; rc=1; }
done
lab_phase_end "deleted the lab's network namespaces"

unmount_empty_run_netns

# 6. The lab directory (PKI, etcd data, logs, PID files).
if [ -d "$LAB_DIR" ]; then
  case $LAB_DIR in
    */e2e/.lab) rm -rf -- "$LAB_DIR" || { lab_warn "could not remove $LAB_DIR"; rc=1; } ;;
    *) lab_warn "refusing to remove unexpected lab dir '$LAB_DIR'"; rc=1 ;;
  esac
fi

# Ended processes are zombies until init reaps them (here that can take a second or two); wait,
# so that `ps` right after this script shows no lab process at all.
deadline=$(( $(date +%s%N) + 5000000000 ))
for s in ${ended[@]+"${ended[@]}"}; do
  read -r pid start <<< "$s"
  while _lab_same "$pid" "$start" && [ "$(date +%s%N)" -lt "$deadline" ]; do sleep 0.05; done
done

# Check what is left.
for ns in $LAB_ALL_NETNSES; do
  if lab_netns_exists "$ns"; then lab_warn "netns $ns still exists"; rc=1; fi
done
if [ -n "$(lab_marked_pids)" ]; then lab_warn "lab processes still running: $(lab_marked_pids | tr '\n' ' ')"; rc=1; fi
lab_phase_end "lab is down"
exit "$rc"
