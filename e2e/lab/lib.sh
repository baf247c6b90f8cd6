# shellcheck shell=bash disable=SC2034
# (SC2034: this is a library; its variables are used by the scripts that source it.)
# Shared names, addresses, ports and helpers of the ironlb test lab.
# Sourced by up.sh, down.sh, status.sh and the hooks in up.d/; see e2e/README.md.
#
# Traffic rules this file encodes (never break them):
#   * the root network namespace gets no address in the lab's LAN ranges and never sends to them;
#     all lab traffic stays inside the network namespaces listed in LAB_NETNSES;
#   * everything control-plane listens on 127.0.0.1 only;
#   * processes are ended only by PID, and only after checking that the PID is still the process
#     the lab started (start time recorded in its PID file, or the lab marker in its environment).

# ---------------------------------------------------------------------------------------------
# Paths (absolute, resolved from this file's location so any working directory works).
LAB_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_E2E=$(cd "$LAB_SCRIPTS/.." && pwd)
LAB_REPO=$(cd "$LAB_E2E/.." && pwd)
LAB_BIN=$LAB_E2E/bin
LAB_DIR=$LAB_E2E/.lab
LAB_PKI=$LAB_DIR/pki
LAB_LOGS=$LAB_DIR/logs
LAB_PIDS=$LAB_DIR/pids
LAB_RUN=$LAB_DIR/run
LAB_KUBECONFIG=$LAB_DIR/kubeconfig
LAB_ENV=$LAB_DIR/env
LAB_UP_MARK=$LAB_DIR/up.done
LAB_CHART=${LAB_CHART:-$LAB_REPO/charts/ironlb}   # the chart up.sh installs (overridable for experiments)
# Every process the lab starts carries this variable in its environment; down.sh uses it to find
# lab processes whose PID file was lost (verified by environment, never by name).
LAB_MARKER=IRONLB_LAB_DAEMON
# Where a process inside a node namespace reaches the API server: a relay in each node namespace
# listens on that namespace's 127.0.0.1:$LAB_APISERVER_PORT and forwards over this Unix socket
# (file system sockets are not bound to a network namespace) to the real API server.
LAB_APISERVER_SOCK=$LAB_RUN/apiserver.sock

# ---------------------------------------------------------------------------------------------
# Control plane (loopback only). Ports are chosen away from the usual 2379/6443/10257.
LAB_ETCD_CLIENT_PORT=22379
LAB_ETCD_PEER_PORT=22380
LAB_APISERVER_PORT=16443
LAB_KCM_PORT=16257
LAB_APISERVER_URL=https://127.0.0.1:$LAB_APISERVER_PORT
LAB_SERVICE_CIDRS=10.96.0.0/16,fd00:10:96::/108
LAB_NODE_PORT_RANGE=20000-39999
LAB_SA_ISSUER=https://kubernetes.default.svc.cluster.local
LAB_HELM_RELEASE=ironlb
LAB_HELM_NAMESPACE=ironlb-system

# ---------------------------------------------------------------------------------------------
# The LAN. One bridge (a dumb switch) in a namespace of its own, and one namespace per host.
# A /19 (192.168.0.0-192.168.31.255), not a /24: the scale test's pool of 5,000+ addresses must
# be on the hosts' own subnet, since a speaker announces only addresses of its interface's subnet
# and the client resolves only on-link addresses. The hosts keep their 192.168.2.x addresses.
LAB_LAN_V4=192.168.0.0/19
LAB_LAN_V6=fd6c:6a7e:5f2b:2::/64
LAB_LAN_NETNS=ironlb-lan
LAB_BRIDGE=br0
LAB_BRIDGE_MAC=02:01:c0:a8:02:00
LAB_IFACE=eth0                      # the LAN interface inside every host namespace
LAB_NODES="ironlb-node-1 ironlb-node-2 ironlb-node-3"
LAB_CLIENT=ironlb-client
LAB_HOSTS="$LAB_NODES $LAB_CLIENT"
LAB_NETNSES="$LAB_HOSTS $LAB_LAN_NETNS"   # every namespace the lab makes (deleted in this order)
# A host that is not an ironlb speaker, made only by `fault.sh foreign-claim` (a fault, so it is
# not part of a healthy lab) and removed by `fault.sh foreign-release` or down.sh.
LAB_FOREIGN=ironlb-foreign
LAB_ALL_NETNSES="$LAB_FOREIGN $LAB_NETNSES"   # what down.sh and status.sh look for

# Per host: IPv4, IPv6, MAC of eth0, name and MAC of its bridge port in $LAB_LAN_NETNS.
# MACs are locally administered (02:..); the last four bytes are the host's IPv4 address in hex,
# the second byte says which end: 00 = host's eth0, 01 = switch port.
declare -A LAB_V4=(
  [ironlb-node-1]=192.168.2.101 [ironlb-node-2]=192.168.2.102 [ironlb-node-3]=192.168.2.103
  [ironlb-client]=192.168.2.200 [ironlb-foreign]=192.168.2.250)
declare -A LAB_V6=(
  [ironlb-node-1]=fd6c:6a7e:5f2b:2::101 [ironlb-node-2]=fd6c:6a7e:5f2b:2::102
  [ironlb-node-3]=fd6c:6a7e:5f2b:2::103 [ironlb-client]=fd6c:6a7e:5f2b:2::200
  [ironlb-foreign]=fd6c:6a7e:5f2b:2::250)
declare -A LAB_MAC=(
  [ironlb-node-1]=02:00:c0:a8:02:65 [ironlb-node-2]=02:00:c0:a8:02:66
  [ironlb-node-3]=02:00:c0:a8:02:67 [ironlb-client]=02:00:c0:a8:02:c8 [ironlb-foreign]=02:00:c0:a8:02:fa)
declare -A LAB_PORT=(
  [ironlb-node-1]=node-1 [ironlb-node-2]=node-2 [ironlb-node-3]=node-3 [ironlb-client]=client
  [ironlb-foreign]=foreign)
declare -A LAB_PORT_MAC=(
  [ironlb-node-1]=02:01:c0:a8:02:65 [ironlb-node-2]=02:01:c0:a8:02:66
  [ironlb-node-3]=02:01:c0:a8:02:67 [ironlb-client]=02:01:c0:a8:02:c8 [ironlb-foreign]=02:01:c0:a8:02:fa)

# The data path (up.d/10-dataplane.sh). LoadBalancer IPs ("VIPs") come from these ranges (the e2e
# tests allocate from .10-.49 and ::10-::49); no host holds an address in them. Every node
# namespace DNATs TCP port 80 of any of them, as kube-proxy would, to its own HTTP server on
# $LAB_HTTP_PORT, which answers with the node's name: so `curl http://<VIP>/` from the client says
# which node the VIP's traffic reached. No VIP is on any interface: only the ironlb speakers
# answer ARP/NDP for them.
LAB_VIP_RANGE_V4=192.168.2.1-192.168.2.99
LAB_VIP_RANGE_V6=fd6c:6a7e:5f2b:2::1-fd6c:6a7e:5f2b:2::99
LAB_HTTP_PORT=8080
# Where a speaker serves /metrics, /healthz and /readyz: every address of its node namespace.
LAB_SPEAKER_METRICS_PORT=7473

# Serializes up.sh and down.sh (e.g. several test binaries starting the lab at once). It lives
# outside $LAB_DIR, which down.sh removes; the name is unique per checkout.
LAB_LOCK=/run/lock/ironlb-lab.$(printf '%s' "$LAB_DIR" | sha256sum | cut -c1-12).lock
# The lock is held on file descriptor 207; lab_daemon closes it for the daemons it starts.

# Files (space-separated absolute paths) whose change makes up.sh start a fresh lab instead of
# reusing the running one, beside the lab scripts, the hooks and the control-plane build stamp.
# Hooks that start a binary which changes during development add it here.
LAB_FINGERPRINT_FILES="$LAB_REPO/target/debug/ironlb-operator $LAB_REPO/target/debug/ironlb-speaker"
LAB_FINGERPRINT_FILES+=" $LAB_REPO/target/debug/ironlb-lab-kubelet $LAB_SCRIPTS/chart-values.yaml"

LAB_CONTROL_PLANE="etcd kube-apiserver kube-controller-manager apiserver-socket"
LAB_REQUIRED_BINARIES="etcd kube-apiserver kube-controller-manager kubectl helm"

# ---------------------------------------------------------------------------------------------
# Output helpers.
lab_log()  { printf 'lab: %s\n' "$*"; }
lab_warn() { printf 'lab: WARNING: %s\n' "$*" >&2; }
lab_die()  { printf 'lab: ERROR: %s\n' "$*" >&2; exit 1; }

# lab_tail <name> [lines]: print the end of a daemon's log (for failure messages).
lab_tail() {
  local f=$LAB_LOGS/$1.log
  if [ -f "$f" ]; then
    printf -- '----- last %s lines of %s -----\n' "${2:-40}" "$f" >&2
    tail -n "${2:-40}" "$f" >&2
    printf -- '-----\n' >&2
  fi
}

# Phase timing: lab_phase_start; ...; lab_phase_end "what". Prints the phase's and the total time.
LAB_T0=${EPOCHREALTIME/,/.}
LAB_PHASE_T=$LAB_T0
lab_now() { local t=${EPOCHREALTIME/,/.}; printf '%s' "$t"; }
lab_phase_start() { LAB_PHASE_T=$(lab_now); }
lab_phase_end() {
  local now; now=$(lab_now)
  awk -v a="$LAB_PHASE_T" -v b="$now" -v t0="$LAB_T0" -v what="$1" \
    'BEGIN { printf "lab: %-44s %6.2fs  (total %6.2fs)\n", what, b - a, b - t0 }'
  LAB_PHASE_T=$now
}

lab_require_root() {
  [ "$(id -u)" -eq 0 ] || lab_die "the lab needs root (network namespaces, veths, a bridge); run as root"
}

lab_require_binaries() {
  local b missing=""
  for b in $LAB_REQUIRED_BINARIES; do [ -x "$LAB_BIN/$b" ] || missing+=" $b"; done
  [ -z "$missing" ] || lab_die "missing in $LAB_BIN:$missing -- run 'make controlplane' first (builds them, ~20-30 min once)"
  local t
  for t in openssl ip curl socat; do
    command -v "$t" >/dev/null || lab_die "'$t' is not installed (see e2e/README.md, 'What the lab needs')"
  done
}

# lab_lock: take the lab lock for the rest of this process (waits up to 10 minutes for another
# up.sh/down.sh). Nested calls (up.sh running down.sh) pass LAB_LOCK_HELD=1 in the environment.
lab_lock() {
  [ "${LAB_LOCK_HELD:-}" != 1 ] || return 0
  mkdir -p "${LAB_LOCK%/*}"
  exec 207>>"$LAB_LOCK"
  if ! flock -n 207; then
    lab_log "another up.sh/down.sh holds $LAB_LOCK; waiting"
    flock -w 600 207 || lab_die "timed out waiting for $LAB_LOCK"
  fi
  export LAB_LOCK_HELD=1
}

# lab_wait_for <description> <timeout seconds> <cmd...>: run cmd until it succeeds.
# Returns 1 (after saying what it waited for) when the timeout passes first.
lab_wait_for() {
  local desc=$1 timeout=$2; shift 2
  local deadline; deadline=$(( $(date +%s%N) + timeout * 1000000000 ))
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [ "$(date +%s%N)" -ge "$deadline" ]; then
      printf 'lab: timed out after %ss waiting for %s\n' "$timeout" "$desc" >&2
      return 1
    fi
    sleep 0.1
  done
}

# lab_wait_daemon <name> <description> <timeout seconds> <cmd...>: lab_wait_for, but gives up as
# soon as the daemon <name> has exited (and says so), instead of waiting out the timeout.
lab_wait_daemon() {
  local name=$1 desc=$2 timeout=$3; shift 3
  local deadline; deadline=$(( $(date +%s%N) + timeout * 1000000000 ))
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! lab_alive "$name"; then
      printf 'lab: %s exited while waiting for %s\n' "$name" "$desc" >&2
      return 1
    fi
    if [ "$(date +%s%N)" -ge "$deadline" ]; then
      printf 'lab: timed out after %ss waiting for %s\n' "$timeout" "$desc" >&2
      return 1
    fi
    sleep 0.1
  done
}

# ---------------------------------------------------------------------------------------------
# Processes. A PID file holds "<pid> <start time in clock ticks since boot>"; the start time makes
# a recycled PID harmless: a PID is only signalled while /proc/<pid>/stat still shows that start
# time (or, for a PID file without it, while the process carries the lab marker in its environment).

# lab_proc_starttime <pid>: field 22 of /proc/<pid>/stat (empty if the process is gone).
lab_proc_starttime() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }            # drop "pid (comm) ": comm may hold spaces and parentheses
  # shellcheck disable=SC2086
  set -- $s              # now $1 is field 3 (state), so field 22 is ${20}
  printf '%s' "${20}"
}

# lab_proc_zombie <pid>: the process has exited but was not reaped yet.
lab_proc_zombie() { grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# lab_proc_is_lab <pid>: the process carries the lab marker of this lab directory.
lab_proc_is_lab() { grep -qzxF "$LAB_MARKER=$LAB_DIR" "/proc/$1/environ" 2>/dev/null; }

# lab_pidfile_pid <name>: print the PID of a running, verified lab daemon; fail otherwise.
lab_pidfile_pid() {
  local f=$LAB_PIDS/$1.pid pid start now
  [ -f "$f" ] || return 1
  read -r pid start < "$f" || [ -n "${pid:-}" ] || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  now=$(lab_proc_starttime "$pid") || return 1
  if [ -n "${start:-}" ]; then
    [ "$now" = "$start" ] || return 1
  else
    lab_proc_is_lab "$pid" || return 1
  fi
  ! lab_proc_zombie "$pid" || return 1     # a zombie is not running
  printf '%s' "$pid"
}

# lab_alive <name>: the daemon <name> is running (verified).
lab_alive() { lab_pidfile_pid "$1" >/dev/null; }

# lab_daemons: names of all daemons with a PID file, in start order.
lab_daemons() {
  [ -d "$LAB_PIDS" ] || return 0
  local f
  # .order lists names as they were started; PID files not in it (hand-made) come last.
  if [ -f "$LAB_PIDS/.order" ]; then
    awk '!seen[$0]++' "$LAB_PIDS/.order" | while read -r n; do
      if [ -f "$LAB_PIDS/$n.pid" ]; then echo "$n"; fi
    done
  fi
  for f in "$LAB_PIDS"/*.pid; do
    [ -e "$f" ] || continue
    f=${f##*/}; f=${f%.pid}
    grep -qxF "$f" "$LAB_PIDS/.order" 2>/dev/null || echo "$f"
  done
  return 0
}

# lab_daemon <name> <cmd...>: start cmd detached (own session), stdin from /dev/null, stdout and
# stderr appended to $LAB_LOGS/<name>.log, PID in $LAB_PIDS/<name>.pid. Environment variables for
# the daemon can be given as leading NAME=value words of cmd (they go through env(1)).
# Fails if <name> is already running. Prints nothing; use lab_alive / lab_wait_for to check it.
lab_daemon() { _lab_spawn "" "$@"; }

# lab_daemon_in_netns <netns> <name> <cmd...>: the same, with the process inside network
# namespace <netns> (via `ip netns exec`, which also gives it that namespace's /sys and /etc/netns).
lab_daemon_in_netns() { _lab_spawn "$@"; }

_lab_spawn() {
  local netns=$1 name=$2; shift 2
  [ $# -gt 0 ] || lab_die "lab_daemon $name: no command"
  [[ "$name" =~ ^[A-Za-z0-9_.-]+$ ]] || lab_die "lab_daemon: bad name '$name'"
  mkdir -p "$LAB_LOGS" "$LAB_PIDS"
  if lab_alive "$name"; then lab_die "lab_daemon: '$name' is already running"; fi
  local pidfile=$LAB_PIDS/$name.pid log=$LAB_LOGS/$name.log
  rm -f "$pidfile"
  # How it was started, so lab_respawn can start it again the same way after a fault.
  printf '%q ' "$netns" "$name" "$@" > "$LAB_PIDS/$name.cmd"
  local pre=()
  [ -z "$netns" ] || pre=(ip netns exec "$netns")
  printf '=== %s: starting%s: %s\n' "$(date -u +%FT%TZ)" "${netns:+ in netns $netns}" "$*" >> "$log"
  # setsid --fork: a new session whatever our own process group is; the inner shell writes its own
  # PID and then execs the command, so the PID file names the daemon itself.
  # shellcheck disable=SC2016
  setsid --fork "${pre[@]}" env "$LAB_MARKER=$LAB_DIR" \
    bash -c 'echo $$ > "$0.tmp" && mv "$0.tmp" "$0" && exec env "$@"' "$pidfile" "$@" \
    < /dev/null >> "$log" 2>&1 207>&-
  local pid start
  for _ in $(seq 100); do [ -s "$pidfile" ] && break; sleep 0.02; done
  [ -s "$pidfile" ] || { lab_tail "$name"; lab_die "lab_daemon: '$name' did not start"; }
  read -r pid < "$pidfile"
  start=$(lab_proc_starttime "$pid") || start=""
  if [ -n "$start" ]; then
    printf '%s %s\n' "$pid" "$start" > "$pidfile"
  fi
  echo "$name" >> "$LAB_PIDS/.order"
}

# _lab_same <pid> <starttime|"">: the PID still is the process that was recorded.
_lab_same() {
  local now
  now=$(lab_proc_starttime "$1") || return 1
  if [ -n "$2" ]; then [ "$now" = "$2" ]; else lab_proc_is_lab "$1"; fi
}

# lab_kill_verified <pid> <starttime|""> <timeout seconds>: SIGTERM (to its process group when it
# leads one), wait, then SIGKILL. Only signals while the PID still is the same process.
lab_kill_verified() {
  local pid=$1 start=$2 timeout=${3:-10} pgid
  _lab_same "$pid" "$start" || return 0
  pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')
  if [ "$pgid" = "$pid" ]; then kill -TERM -- "-$pid" 2>/dev/null; else kill -TERM "$pid" 2>/dev/null; fi
  local deadline=$(( $(date +%s%N) + timeout * 1000000000 ))
  while _lab_same "$pid" "$start" && ! lab_proc_zombie "$pid"; do
    if [ "$(date +%s%N)" -ge "$deadline" ]; then
      lab_warn "pid $pid did not exit ${timeout}s after SIGTERM; sending SIGKILL"
      if [ "$pgid" = "$pid" ]; then kill -KILL -- "-$pid" 2>/dev/null; else kill -KILL "$pid" 2>/dev/null; fi
      break
    fi
    sleep 0.05
  done
  return 0
}

# lab_stop <name> [timeout seconds, default 10]: stop a lab daemon (SIGTERM, wait, SIGKILL),
# PID-verified, and remove its PID file. Stopping a daemon that is not running is not an error.
lab_stop() {
  local name=$1 timeout=${2:-10} f=$LAB_PIDS/$1.pid pid start
  [ -f "$f" ] || return 0
  read -r pid start < "$f" || true
  if [[ "${pid:-}" =~ ^[0-9]+$ ]]; then lab_kill_verified "$pid" "${start:-}" "$timeout"; fi
  rm -f "$f"
}

# lab_signal <name> <signal>: send <signal> (e.g. KILL) to the daemon <name> at once, if it is
# the lab's (PID verified); a fault injection, unlike lab_stop's orderly SIGTERM-then-wait.
lab_signal() {
  local name=$1 signal=$2 pid
  pid=$(lab_pidfile_pid "$name") || return 0
  kill "-$signal" "$pid" 2>/dev/null || true
  [ "$signal" != KILL ] || { while kill -0 "$pid" 2>/dev/null && ! lab_proc_zombie "$pid"; do sleep 0.05; done; rm -f "$LAB_PIDS/$name.pid"; }
}

# lab_start_operator <replica>: one ironlb-operator replica as the chart's Deployment would run
# it: a token of the chart's ServiceAccount (so the chart's RBAC is what it has), POD_NAME and
# POD_NAMESPACE as the downward API sets them, metrics and health on 127.0.0.1:(17472+replica).
lab_start_operator() {
  local replica=$1 bin="$LAB_REPO/target/debug/ironlb-operator"
  [ -x "$bin" ] || lab_die "$bin is missing: run 'cargo build -p ironlb-operator' (make lab-up does)"
  [ -f "$LAB_DIR/operator.kubeconfig" ] ||
    lab_sa_kubeconfig "$LAB_HELM_NAMESPACE" ironlb-operator "$LAB_DIR/operator.kubeconfig"
  lab_daemon "operator-$replica" \
    POD_NAME="ironlb-operator-$replica" POD_NAMESPACE="$LAB_HELM_NAMESPACE" \
    KUBECONFIG="$LAB_DIR/operator.kubeconfig" \
    "$bin" --lease-name ironlb-operator --log-level info,ironlb_operator=debug --metrics-address "127.0.0.1:$((17472 + replica))"
  lab_wait_daemon "operator-$replica" "operator-$replica ready (caches synced)" 30 \
    curl -fsS -o /dev/null "http://127.0.0.1:$((17472 + replica))/readyz" \
    || { lab_tail "operator-$replica" 30; lab_die "operator-$replica did not become ready"; }
}

# lab_start_kubelet: the kubelet and scheduler stand-in (ironlb-lab-kubelet, daemon `kubelet`) in
# the root namespace with the admin kubeconfig, for every lab node and its LAN addresses; waits
# until every lab Node is Ready and untainted.
lab_start_kubelet() {
  local bin="$LAB_REPO/target/debug/ironlb-lab-kubelet" node nodes=()
  [ -x "$bin" ] || lab_die "$bin is missing: run 'make bins' (make lab-up does)"
  for node in $LAB_NODES; do nodes+=(--node "$node=${LAB_V4[$node]},${LAB_V6[$node]}"); done
  lab_daemon kubelet KUBECONFIG="$LAB_KUBECONFIG" "$bin" --log-level info "${nodes[@]}"
  lab_wait_daemon kubelet "every lab Node Ready=True, without not-ready/unreachable taints" 60 lab_nodes_ready \
    || { lab_tail kubelet 30; lab_kubectl get nodes >&2 || true; lab_die "the lab's Nodes did not become Ready"; }
}

# lab_nodes_ready: every lab Node has Ready=True and no not-ready/unreachable taint (so new Pods
# are scheduled at once).
lab_nodes_ready() {
  local out node line
  out=$(lab_kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{" "}{.spec.taints[*].key}{"\n"}{end}') || return 1
  for node in $LAB_NODES; do
    line=$(grep "^$node " <<< "$out") || return 1
    case "$line " in "$node True "*) ;; *) return 1 ;; esac
    case $line in *node.kubernetes.io/not-ready* | *node.kubernetes.io/unreachable*) return 1 ;; esac
  done
}

# lab_node_dnat <node>: kube-proxy's part for LoadBalancer IPs, in nftables: in the node's
# namespace, TCP to port 80 of any address in the VIP ranges goes to the node's own address, port
# $LAB_HTTP_PORT. Prerouting for traffic from the LAN, output for a connection made inside the node
# itself (as kube-proxy does). Replaces the table, so it can be run again.
lab_node_dnat() {
  local node=$1 v4 v6 hook rules=""
  lab_is_node "$node" || lab_die "lab_node_dnat: '$node' is not a lab node ($LAB_NODES)"
  v4=${LAB_V4[$node]} v6=${LAB_V6[$node]}
  # Priority -100 is "dstnat" (nft 1.0.6 accepts the name only in prerouting), where kube-proxy's
  # NAT chains hook in too.
  for hook in prerouting output; do
    rules+="
  chain $hook {
    type nat hook $hook priority -100; policy accept;
    ip daddr $LAB_VIP_RANGE_V4 tcp dport 80 counter dnat ip to $v4:$LAB_HTTP_PORT
    ip6 daddr $LAB_VIP_RANGE_V6 tcp dport 80 counter dnat ip6 to [$v6]:$LAB_HTTP_PORT
  }"
  done
  # "table; delete table" first: nft -f applies the whole file atomically, and a table that is
  # already there is replaced instead of getting a second copy of each rule.
  ip netns exec "$node" nft -f - <<EOF
table inet ironlb_lab
delete table inet ironlb_lab
table inet ironlb_lab {$rules
}
EOF
}

# lab_http_reply: one HTTP/1.1 exchange on stdin/stdout (socat runs one per connection, with
# LAB_HTTP_NAME set). It reads the request head first (closing with unread data would reset the
# connection) and answers 200 with the body "$LAB_HTTP_NAME\n" and Connection: close.
lab_http_reply() {
  local line body="$LAB_HTTP_NAME"$'\n'
  while IFS= read -r -t 5 line; do
    line=${line%$'\r'}
    [ -n "$line" ] || break
  done
  printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' \
    "${#body}" "$body"
}

# lab_start_http <node>: the node's HTTP server (daemon `http-<node>`): socat on port
# $LAB_HTTP_PORT of every address of the node's namespace, IPv4 and IPv6, forking a
# `bash -c lab_http_reply` per connection; waits until it answers.
lab_start_http() {
  local node=$1
  lab_is_node "$node" || lab_die "lab_start_http: '$node' is not a lab node ($LAB_NODES)"
  # Exported, so the bash that socat starts per connection finds the function in its environment.
  ( export -f lab_http_reply
    lab_daemon_in_netns "$node" "http-$node" LAB_HTTP_NAME="$node" \
      socat "TCP6-LISTEN:$LAB_HTTP_PORT,ipv6only=0,fork,reuseaddr,backlog=128" "EXEC:bash -c lab_http_reply" ) || exit 1
  lab_wait_daemon "http-$node" "http-$node to answer on port $LAB_HTTP_PORT" 10 \
    lab_http_answers "$node" "http://127.0.0.1:$LAB_HTTP_PORT/" \
    || { lab_tail "http-$node" 20; lab_die "the HTTP server of $node does not answer"; }
}

# lab_http_answers <netns> <url> [expected body, default <netns>]: `curl <url>` run inside <netns>
# prints exactly the expected node name.
lab_http_answers() {
  local got
  got=$(ip netns exec "$1" curl -sS --max-time 5 -g "$2") && [ "$got" = "${3:-$1}" ]
}

# lab_is_node <name>: <name> is one of the lab's nodes.
lab_is_node() { [ -n "$1" ] && case " $LAB_NODES " in *" $1 "*) true ;; *) false ;; esac; }

# lab_start_speaker <node>: one ironlb-speaker, as the chart's DaemonSet would run it on <node>:
# inside the node's namespace (its LAN interface, its API relay), with a token of the chart's
# ServiceAccount ironlb-speaker (one kubeconfig shared by all speakers, made once), NODE_NAME,
# POD_NAME and POD_NAMESPACE as the downward API sets them, metrics and health on
# 0.0.0.0:$LAB_SPEAKER_METRICS_PORT of the node. Waits until /readyz answers.
lab_start_speaker() {
  local node=$1 bin="$LAB_REPO/target/debug/ironlb-speaker" kubeconfig="$LAB_DIR/speaker.kubeconfig"
  lab_is_node "$node" || lab_die "lab_start_speaker: '$node' is not a lab node ($LAB_NODES)"
  [ -x "$bin" ] || lab_die "$bin is missing: run 'cargo build -p ironlb-speaker' (make lab-up does)"
  [ -f "$kubeconfig" ] || lab_sa_kubeconfig "$LAB_HELM_NAMESPACE" ironlb-speaker "$kubeconfig" ||
    lab_die "cannot get a token of the ServiceAccount $LAB_HELM_NAMESPACE/ironlb-speaker (does the chart make it?)"
  lab_daemon_in_netns "$node" "speaker-$node" \
    NODE_NAME="$node" POD_NAME="ironlb-speaker-$node" POD_NAMESPACE="$LAB_HELM_NAMESPACE" KUBECONFIG="$kubeconfig" \
    "$bin" --metrics-address "0.0.0.0:$LAB_SPEAKER_METRICS_PORT" --log-level info,ironlb_speaker=debug
  lab_wait_daemon "speaker-$node" "speaker-$node ready" 30 \
    ip netns exec "$node" curl -fsS -o /dev/null "http://127.0.0.1:$LAB_SPEAKER_METRICS_PORT/readyz" \
    || { lab_tail "speaker-$node" 30; lab_die "speaker-$node did not become ready"; }
}

# lab_add_host <host>: a host namespace on the LAN bridge, with its eth0 addresses and MACs from
# LAB_V4/LAB_V6/LAB_MAC and its bridge port from LAB_PORT/LAB_PORT_MAC. No duplicate address
# detection (addresses usable at once), no router solicitation or autoconfiguration: the only
# frames on the LAN are the ones the tests cause. IPv6 addresses survive a link going down (as
# IPv4 ones do, and as a server's static configuration restores them), so `fault.sh link-down`
# then `link-up` gives the node back both families. DAD stays on for addresses added later with
# `ip addr add` on a host that wants it (fault.sh foreign-claim turns it back on).
lab_add_host() {
  local host=$1
  ip netns add "$host"
  ip netns exec "$host" sysctl -qw \
    net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 \
    net.ipv6.conf.default.accept_ra=0 net.ipv6.conf.all.accept_ra=0 \
    net.ipv6.conf.default.router_solicitations=0 net.ipv6.conf.all.router_solicitations=0 \
    net.ipv6.conf.default.keep_addr_on_down=1 net.ipv6.conf.all.keep_addr_on_down=1
  ip -n "$host" link set lo up
  ip -n "$LAB_LAN_NETNS" link add "${LAB_PORT[$host]}" address "${LAB_PORT_MAC[$host]}" type veth \
    peer name "$LAB_IFACE" address "${LAB_MAC[$host]}" netns "$host"
  ip -n "$LAB_LAN_NETNS" link set "${LAB_PORT[$host]}" master "$LAB_BRIDGE" up
  ip -n "$host" addr add "${LAB_V4[$host]}/${LAB_LAN_V4#*/}" dev "$LAB_IFACE"
  ip -n "$host" addr add "${LAB_V6[$host]}/64" dev "$LAB_IFACE" nodad
  ip -n "$host" link set "$LAB_IFACE" up
}

# lab_respawn <name>: start a stopped daemon again exactly as it was first started (same netns,
# environment and arguments), e.g. after a fault injection stopped it.
lab_respawn() {
  local name=$1 cmd
  [ -f "$LAB_PIDS/$name.cmd" ] || lab_die "lab_respawn: no recorded command for '$name'"
  cmd=$(cat "$LAB_PIDS/$name.cmd")
  eval "_lab_spawn $cmd"
}

# lab_stop_many <timeout> <name...>: SIGTERM all of them at once, then wait for each.
lab_stop_many() {
  local timeout=$1 n; shift
  for n in "$@"; do lab_stop "$n" "$timeout" & done
  wait
}

# ---------------------------------------------------------------------------------------------
# Namespaces.
lab_netns_exists() { [ -e "/run/netns/$1" ]; }
lab_netns_exec() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# ---------------------------------------------------------------------------------------------
# Kubernetes helpers (for hooks and tests).
lab_kubectl() { "$LAB_BIN/kubectl" --kubeconfig "$LAB_KUBECONFIG" "$@"; }

lab_curl_api() {  # lab_curl_api <path>: GET from the API server with the admin certificate.
  curl -sS --max-time 5 --cacert "$LAB_PKI/ca.crt" --cert "$LAB_PKI/admin.crt" \
    --key "$LAB_PKI/admin.key" "$LAB_APISERVER_URL$1"
}
lab_apiserver_ready() { [ "$(lab_curl_api /readyz 2>/dev/null)" = ok ]; }
lab_kcm_healthy() {
  [ "$(curl -sS --max-time 5 --cacert "$LAB_PKI/ca.crt" "https://127.0.0.1:$LAB_KCM_PORT/healthz" 2>/dev/null)" = ok ]
}

# lab_write_kubeconfig <file> <server> <user> (--cert <crt> --key <key> | --token <token>)
# Writes a self-contained kubeconfig (CA and credentials embedded).
lab_write_kubeconfig() {
  local file=$1 server=$2 user=$3 kind=$4 a=$5 b=${7:-}
  local cred
  case $kind in
    --cert) cred="    client-certificate-data: $(base64 -w0 < "$a")
    client-key-data: $(base64 -w0 < "$b")" ;;
    --token) cred="    token: $a" ;;
    *) lab_die "lab_write_kubeconfig: --cert or --token" ;;
  esac
  ( umask 077; cat > "$file" ) <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ironlb-lab
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 < "$LAB_PKI/ca.crt")
users:
- name: $user
  user:
$cred
contexts:
- name: $user@ironlb-lab
  context:
    cluster: ironlb-lab
    user: $user
current-context: $user@ironlb-lab
EOF
}

# lab_sa_kubeconfig <namespace> <serviceaccount> <file> [duration, default 24h]: a kubeconfig that
# authenticates as a ServiceAccount (a bound token from the TokenRequest API), so a binary run by
# the lab gets exactly the RBAC the chart gives that ServiceAccount. The server is 127.0.0.1, which
# also works inside node namespaces through their API relay.
lab_sa_kubeconfig() {
  local ns=$1 sa=$2 file=$3 duration=${4:-24h} token
  token=$(lab_kubectl -n "$ns" create token "$sa" --duration "$duration") || return 1
  lab_write_kubeconfig "$file" "$LAB_APISERVER_URL" "system:serviceaccount:$ns:$sa" --token "$token"
}

# lab_fingerprint: what the running lab was made from. up.sh reuses a running lab only when this
# is unchanged (the lab scripts and hooks, the control-plane build stamp, the chart's files,
# LAB_FINGERPRINT_FILES, and whether LAB_SPEAKERS=0 left the speakers out).
lab_fingerprint() {
  local files=("$LAB_SCRIPTS"/*.sh)
  local h
  for h in "$LAB_SCRIPTS"/up.d/*.sh; do [ -e "$h" ] && files+=("$h"); done
  [ -f "$LAB_BIN/.controlplane-stamp" ] && files+=("$LAB_BIN/.controlplane-stamp")
  if [ -d "$LAB_CHART" ]; then
    while IFS= read -r -d '' h; do files+=("$h"); done < <(find "$LAB_CHART" -type f -print0 | sort -z)
  fi
  # shellcheck disable=SC2206
  [ -z "${LAB_FINGERPRINT_FILES:-}" ] || files+=($LAB_FINGERPRINT_FILES)
  local f
  {
    # cksum (CRC-32 and length) per file: enough to tell a rebuilt binary from the old one, and
    # ~15 times faster than sha256sum over the ~500 MB of debug binaries (a reuse stays fast).
    for f in "${files[@]}"; do
      printf '%s\n' "$f"
      if [ -e "$f" ]; then cksum < "$f"; else echo missing; fi
    done
    # A lab brought up without speakers is not the lab a test run expects.
    [ "${LAB_SPEAKERS:-1}" != 0 ] || echo "LAB_SPEAKERS=0"
  } | sha256sum | cut -d' ' -f1
}

# lab_healthy [quiet]: the lab is fully up, was made by these scripts, and its parts are healthy.
lab_healthy() {
  local q=${1:-} n
  _why() { [ -n "$q" ] || lab_log "not healthy: $*"; }
  [ -f "$LAB_UP_MARK" ] || { _why "no $LAB_UP_MARK (never finished starting)"; return 1; }
  [ "$(cat "$LAB_UP_MARK")" = "$(lab_fingerprint)" ] || { _why "the lab scripts, chart, binaries or LAB_SPEAKERS changed since it started"; return 1; }
  for n in $LAB_NETNSES; do lab_netns_exists "$n" || { _why "netns $n missing"; return 1; }; done
  while read -r n; do
    [ -n "$n" ] || continue
    lab_alive "$n" || { _why "daemon $n is not running"; return 1; }
  done < <(lab_daemons)
  for n in $LAB_CONTROL_PLANE; do lab_alive "$n" || { _why "daemon $n is not running"; return 1; }; done
  lab_apiserver_ready || { _why "kube-apiserver /readyz is not ok"; return 1; }
  lab_kcm_healthy || { _why "kube-controller-manager /healthz is not ok"; return 1; }
  return 0
}

# lab_anything_up: some trace of a lab exists (directory, namespaces or marked processes).
lab_anything_up() {
  [ -e "$LAB_DIR" ] && return 0
  local n
  for n in $LAB_ALL_NETNSES; do lab_netns_exists "$n" && return 0; done
  [ -n "$(lab_marked_pids)" ]
}

# lab_marked_pids: PIDs of processes carrying this lab's marker in their environment (those whose
# PID file was lost, e.g. after a crash of up.sh). Excludes this shell and its ancestors.
lab_marked_pids() {
  local a=$$ ancestors=" " f p
  while [ -n "$a" ] && [ "$a" != 0 ]; do
    ancestors+="$a "
    a=$(awk '/^PPid:/ { print $2 }' "/proc/$a/status" 2>/dev/null)
  done
  grep -lzxF "$LAB_MARKER=$LAB_DIR" /proc/[0-9]*/environ 2>/dev/null | while read -r f; do
    p=${f#/proc/}; p=${p%/environ}
    case $ancestors in *" $p "*) continue ;; esac
    lab_proc_zombie "$p" || echo "$p"
  done
  return 0
}
