#!/usr/bin/env bash
# Starts the ironlb test lab (see e2e/README.md): a real control plane on 127.0.0.1 (etcd,
# kube-apiserver, kube-controller-manager), a LAN of network namespaces joined by a bridge, the
# Node objects, the ironlb Helm chart, and whatever the hooks in up.d/ add.
#
# Idempotent: a lab that is up and healthy (and was made by these same scripts and binaries) is
# reused as it is; a half-made one (a crash, a stopped daemon) is torn down first.
#   LAB_FRESH=1  always tear down and start clean.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lab_require_root
lab_lock
lab_require_binaries

usage_hint() {
  cat <<EOF
lab: use it with:   . $LAB_ENV && kubectl get nodes
lab:                ip netns exec $LAB_CLIENT ping -c1 ${LAB_V4[ironlb-node-1]}
lab: stop it with:  make lab-down   (or e2e/lab/down.sh)
EOF
}

if [ "${LAB_FRESH:-0}" != 1 ] && lab_healthy quiet; then
  lab_phase_end "lab is already up and healthy: reused"
  usage_hint
  exit 0
fi
if lab_anything_up; then
  lab_log "a lab exists but is not (fully) healthy; tearing it down first"
  [ "${LAB_FRESH:-0}" = 1 ] || lab_healthy || true     # say why
  "$LAB_SCRIPTS/down.sh"
  lab_phase_end "tear down of the previous lab"
fi

PHASE="preflight"
on_exit() {
  local rc=$?
  [ "$rc" -ne 0 ] || return 0
  [ -d "$LAB_DIR" ] || return 0   # failed before making anything
  printf 'lab: up.sh failed (exit %s) in phase "%s"; logs are in %s\n' "$rc" "$PHASE" "$LAB_LOGS" >&2
  printf 'lab: the lab is left as it is for inspection; make lab-down removes it, make lab-up starts it clean\n' >&2
}
trap on_exit EXIT

# The lab's loopback ports must be free (another lab checkout, a real cluster...).
for port in "$LAB_ETCD_CLIENT_PORT" "$LAB_ETCD_PEER_PORT" "$LAB_APISERVER_PORT" "$LAB_KCM_PORT"; do
  if busy=$(ss -ltnpH "sport = :$port" 2>/dev/null) && [ -n "$busy" ]; then
    lab_die "port $port is already in use, the lab needs it: $busy"
  fi
done

mkdir -p "$LAB_DIR" "$LAB_PKI" "$LAB_LOGS" "$LAB_PIDS" "$LAB_RUN"
chmod 700 "$LAB_DIR" "$LAB_PKI"

# =============================================================================================
PHASE="pki"
# As kubeadm lays it out: a Kubernetes CA (API clients and the API server), a separate etcd CA,
# and a front-proxy CA (the request-header authentication that kube-controller-manager's secure
# port and aggregated APIs expect); EC P-256 keys; an RSA key pair for ServiceAccount tokens.
(
  cd "$LAB_PKI"
  umask 077
  newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
  ca() {  # ca <name> <CN>
    newkey "$1"
    openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 3650 -sha256 -out "$1.crt" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  }
  cert() {  # cert <name> <subject> <server|client|peer> <ca> [subjectAltName]
    local name=$1 subj=$2 usage=$3 signer=$4 san=${5:-}
    newkey "$name"
    openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr" 2>/dev/null
    {
      echo "basicConstraints=critical,CA:FALSE"
      echo "keyUsage=critical,digitalSignature,keyEncipherment"
      case $usage in
        server) echo "extendedKeyUsage=serverAuth" ;;
        client) echo "extendedKeyUsage=clientAuth" ;;
        peer)   echo "extendedKeyUsage=serverAuth,clientAuth" ;;
      esac
      echo "subjectKeyIdentifier=hash"
      echo "authorityKeyIdentifier=keyid"
      [ -z "$san" ] || echo "subjectAltName=$san"
    } > "$name.ext"
    openssl x509 -req -in "$name.csr" -CA "$signer.crt" -CAkey "$signer.key" \
      -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 -extfile "$name.ext" \
      -out "$name.crt" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
  }
  loop_san="IP:127.0.0.1,IP:::1,DNS:localhost"
  ca ca "ironlb-lab-ca"
  ca etcd-ca "ironlb-lab-etcd-ca"
  ca front-proxy-ca "ironlb-lab-front-proxy-ca"
  cert apiserver "/CN=kube-apiserver" server ca \
    "$loop_san,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1"
  cert kube-controller-manager-serving "/CN=kube-controller-manager" server ca "$loop_san"
  cert admin "/O=system:masters/CN=lab-admin" client ca
  cert kube-controller-manager "/CN=system:kube-controller-manager" client ca
  cert etcd "/CN=etcd" peer etcd-ca "$loop_san"
  cert apiserver-etcd-client "/CN=kube-apiserver-etcd-client" client etcd-ca
  cert front-proxy-client "/CN=front-proxy-client" client front-proxy-ca
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
  openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
)
lab_write_kubeconfig "$LAB_KUBECONFIG" "$LAB_APISERVER_URL" lab-admin \
  --cert "$LAB_PKI/admin.crt" --key "$LAB_PKI/admin.key"
lab_write_kubeconfig "$LAB_DIR/kube-controller-manager.kubeconfig" "$LAB_APISERVER_URL" \
  system:kube-controller-manager \
  --cert "$LAB_PKI/kube-controller-manager.crt" --key "$LAB_PKI/kube-controller-manager.key"
lab_phase_end "PKI and kubeconfigs ($LAB_PKI)"

# =============================================================================================
PHASE="etcd"
# One member, TLS with client-certificate auth on both ports. --unsafe-no-fsync: the lab's data
# is thrown away anyway, and fsync on a busy disk makes the API server slow under load tests.
lab_daemon etcd "$LAB_BIN/etcd" \
  --name lab \
  --data-dir "$LAB_DIR/etcd" \
  --listen-client-urls "https://127.0.0.1:$LAB_ETCD_CLIENT_PORT" \
  --advertise-client-urls "https://127.0.0.1:$LAB_ETCD_CLIENT_PORT" \
  --listen-peer-urls "https://127.0.0.1:$LAB_ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "https://127.0.0.1:$LAB_ETCD_PEER_PORT" \
  --initial-cluster "lab=https://127.0.0.1:$LAB_ETCD_PEER_PORT" \
  --initial-cluster-state new \
  --initial-cluster-token ironlb-lab \
  --cert-file "$LAB_PKI/etcd.crt" --key-file "$LAB_PKI/etcd.key" \
  --trusted-ca-file "$LAB_PKI/etcd-ca.crt" --client-cert-auth \
  --peer-cert-file "$LAB_PKI/etcd.crt" --peer-key-file "$LAB_PKI/etcd.key" \
  --peer-trusted-ca-file "$LAB_PKI/etcd-ca.crt" --peer-client-cert-auth \
  --unsafe-no-fsync
etcd_healthy() {
  curl -sS --max-time 2 --cacert "$LAB_PKI/etcd-ca.crt" --cert "$LAB_PKI/apiserver-etcd-client.crt" \
    --key "$LAB_PKI/apiserver-etcd-client.key" "https://127.0.0.1:$LAB_ETCD_CLIENT_PORT/health" |
    grep -q '"health":"true"'
}
if ! lab_wait_daemon etcd "etcd to be healthy" 30 etcd_healthy; then
  lab_tail etcd; lab_die "etcd did not start (log: $LAB_LOGS/etcd.log)"
fi
lab_phase_end "etcd healthy (127.0.0.1:$LAB_ETCD_CLIENT_PORT)"

# =============================================================================================
PHASE="kube-apiserver"
lab_daemon kube-apiserver "$LAB_BIN/kube-apiserver" \
  --etcd-servers "https://127.0.0.1:$LAB_ETCD_CLIENT_PORT" \
  --etcd-cafile "$LAB_PKI/etcd-ca.crt" \
  --etcd-certfile "$LAB_PKI/apiserver-etcd-client.crt" \
  --etcd-keyfile "$LAB_PKI/apiserver-etcd-client.key" \
  --bind-address 127.0.0.1 \
  --secure-port "$LAB_APISERVER_PORT" \
  --advertise-address 127.0.0.1 \
  --endpoint-reconciler-type none \
  --tls-cert-file "$LAB_PKI/apiserver.crt" \
  --tls-private-key-file "$LAB_PKI/apiserver.key" \
  --client-ca-file "$LAB_PKI/ca.crt" \
  --authorization-mode Node,RBAC \
  --service-account-issuer "$LAB_SA_ISSUER" \
  --service-account-key-file "$LAB_PKI/sa.pub" \
  --service-account-signing-key-file "$LAB_PKI/sa.key" \
  --service-cluster-ip-range "$LAB_SERVICE_CIDRS" \
  --service-node-port-range "$LAB_NODE_PORT_RANGE" \
  --requestheader-client-ca-file "$LAB_PKI/front-proxy-ca.crt" \
  --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User \
  --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$LAB_PKI/front-proxy-client.crt" \
  --proxy-client-key-file "$LAB_PKI/front-proxy-client.key" \
  --allow-privileged \
  --profiling=false
# The root-namespace end of the API relay for the node namespaces (see lib.sh, LAB_APISERVER_SOCK).
# socat forks a process per connection; max-children bounds them (extra connections wait in the
# backlog), so clients reconnecting in a storm against an overloaded API server cannot fork the
# machine to death: a speaker keeps ~10 connections, a node relay allows 64.
lab_daemon apiserver-socket socat \
  "UNIX-LISTEN:$LAB_APISERVER_SOCK,fork,max-children=256,unlink-early,mode=600" "TCP:127.0.0.1:$LAB_APISERVER_PORT"
lab_phase_end "kube-apiserver started"

# =============================================================================================
PHASE="network"
# While the API server starts: the LAN. The bridge namespace has IPv6 disabled and the bridge has no
# address, so the switch itself never sends a frame; it does not snoop multicast (floods it, like a
# dumb switch, so NDP's solicited-node multicast reaches every port), runs no STP and forwards at
# once, and does not hand bridged frames to netfilter.
ip netns add "$LAB_LAN_NETNS"
ip netns exec "$LAB_LAN_NETNS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
# shellcheck disable=SC2016
ip netns exec "$LAB_LAN_NETNS" sh -c \
  'for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -w "$f" ] && echo 0 > "$f"; done; true'
ip -n "$LAB_LAN_NETNS" link set lo up
ip -n "$LAB_LAN_NETNS" link add "$LAB_BRIDGE" address "$LAB_BRIDGE_MAC" type bridge \
  stp_state 0 forward_delay 0 mcast_snooping 0 \
  nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0
ip -n "$LAB_LAN_NETNS" link set "$LAB_BRIDGE" up
for host in $LAB_HOSTS; do
  lab_add_host "$host"
done
# Each node namespace reaches the API server at its own 127.0.0.1:$LAB_APISERVER_PORT through a
# relay (not over the LAN), so in-node processes use the same URL and certificate SANs as the root
# namespace. Stopping a node's relay (lab_stop apirelay-<node>) cuts that node off the API.
for node in $LAB_NODES; do
  lab_daemon_in_netns "$node" "apirelay-$node" socat \
    "TCP-LISTEN:$LAB_APISERVER_PORT,bind=127.0.0.1,reuseaddr,fork,max-children=64" "UNIX-CONNECT:$LAB_APISERVER_SOCK"
done
if command -v ping >/dev/null; then
  for node in $LAB_NODES; do
    ip netns exec "$LAB_CLIENT" ping -q -c1 -W2 "${LAB_V4[$node]}" >/dev/null ||
      lab_die "LAN check: $LAB_CLIENT cannot ping $node at ${LAB_V4[$node]}"
    ip netns exec "$LAB_CLIENT" ping -q -6 -c1 -W2 "${LAB_V6[$node]}" >/dev/null ||
      lab_die "LAN check: $LAB_CLIENT cannot ping $node at ${LAB_V6[$node]}"
  done
  lan_checked=" (client pinged every node, v4 and v6)"
else
  lab_warn "ping is not installed: LAN check skipped"
fi
lab_phase_end "network namespaces and bridge${lan_checked:-}"

# =============================================================================================
PHASE="kube-apiserver-ready"
if ! lab_wait_daemon kube-apiserver "kube-apiserver /readyz" 90 lab_apiserver_ready; then
  lab_tail kube-apiserver 60; lab_tail etcd 20
  lab_die "kube-apiserver did not become ready (log: $LAB_LOGS/kube-apiserver.log)"
fi
lab_phase_end "kube-apiserver ready ($LAB_APISERVER_URL)"

# =============================================================================================
PHASE="kube-controller-manager"
lab_daemon kube-controller-manager "$LAB_BIN/kube-controller-manager" \
  --kubeconfig "$LAB_DIR/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig "$LAB_DIR/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig "$LAB_DIR/kube-controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 \
  --secure-port "$LAB_KCM_PORT" \
  --tls-cert-file "$LAB_PKI/kube-controller-manager-serving.crt" \
  --tls-private-key-file "$LAB_PKI/kube-controller-manager-serving.key" \
  --service-account-private-key-file "$LAB_PKI/sa.key" \
  --root-ca-file "$LAB_PKI/ca.crt" \
  --cluster-signing-cert-file "$LAB_PKI/ca.crt" \
  --cluster-signing-key-file "$LAB_PKI/ca.key" \
  --use-service-account-credentials \
  --service-cluster-ip-range "$LAB_SERVICE_CIDRS" \
  --leader-elect=false \
  --profiling=false
if ! lab_wait_daemon kube-controller-manager "kube-controller-manager /healthz" 60 lab_kcm_healthy; then
  lab_tail kube-controller-manager 60
  lab_die "kube-controller-manager did not become healthy (log: $LAB_LOGS/kube-controller-manager.log)"
fi
lab_phase_end "kube-controller-manager healthy (127.0.0.1:$LAB_KCM_PORT)"

# =============================================================================================
PHASE="nodes"
case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
for node in $LAB_NODES; do
  cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $node
  labels:
    kubernetes.io/hostname: $node
    kubernetes.io/os: linux
    kubernetes.io/arch: $arch
EOF
done | lab_kubectl apply -f - >/dev/null
for node in $LAB_NODES; do
  lab_kubectl patch node "$node" --subresource=status --type=merge -p "$(cat <<EOF
{"status":{"addresses":[
  {"type":"InternalIP","address":"${LAB_V4[$node]}"},
  {"type":"InternalIP","address":"${LAB_V6[$node]}"},
  {"type":"Hostname","address":"$node"}]}}
EOF
)" >/dev/null
done
lab_phase_end "Node objects ($LAB_NODES)"

# =============================================================================================
PHASE="env"
# Written before the chart and the hooks, so a failure there still leaves a usable env file.
{
  echo "# ironlb test lab -- source me:  . $LAB_ENV && kubectl get nodes"
  echo "# Written by e2e/lab/up.sh; see e2e/README.md."
  echo "export PATH=\"$LAB_BIN:\$PATH\""
  echo "export KUBECONFIG=\"$LAB_KUBECONFIG\""
  echo "export LAB_DIR=\"$LAB_DIR\""
  echo "export LAB_BIN=\"$LAB_BIN\""
  echo "export LAB_APISERVER=\"$LAB_APISERVER_URL\""
  echo "export LAB_LAN_NETNS=\"$LAB_LAN_NETNS\""
  echo "export LAB_BRIDGE=\"$LAB_BRIDGE\""
  echo "export LAB_IFACE=\"$LAB_IFACE\""
  echo "export LAB_NODES=\"$LAB_NODES\""
  echo "export LAB_CLIENT=\"$LAB_CLIENT\""
  echo "export LAB_LAN_V4=\"$LAB_LAN_V4\""
  echo "export LAB_LAN_V6=\"$LAB_LAN_V6\""
  echo "# LoadBalancer IP ranges every node DNATs (TCP port 80 -> its HTTP server on port $LAB_HTTP_PORT)"
  echo "export LAB_VIP_RANGE_V4=\"$LAB_VIP_RANGE_V4\""
  echo "export LAB_VIP_RANGE_V6=\"$LAB_VIP_RANGE_V6\""
  echo "# One word per host: <netns = Node name>,<IPv4>,<IPv6>,<MAC of eth0>,<bridge port in $LAB_LAN_NETNS>"
  addrs=""
  for host in $LAB_NODES; do
    addrs+="$host,${LAB_V4[$host]},${LAB_V6[$host]},${LAB_MAC[$host]},${LAB_PORT[$host]} "
  done
  echo "export LAB_NODE_ADDRS=\"${addrs% }\""
  echo "export LAB_CLIENT_ADDRS=\"$LAB_CLIENT,${LAB_V4[$LAB_CLIENT]},${LAB_V6[$LAB_CLIENT]},${LAB_MAC[$LAB_CLIENT]},${LAB_PORT[$LAB_CLIENT]}\""
  echo "export HELM_CACHE_HOME=\"$LAB_DIR/helm/cache\""
  echo "export HELM_CONFIG_HOME=\"$LAB_DIR/helm/config\""
  echo "export HELM_DATA_HOME=\"$LAB_DIR/helm/data\""
} > "$LAB_ENV"
export PATH="$LAB_BIN:$PATH" KUBECONFIG="$LAB_KUBECONFIG" \
  HELM_CACHE_HOME="$LAB_DIR/helm/cache" HELM_CONFIG_HOME="$LAB_DIR/helm/config" HELM_DATA_HOME="$LAB_DIR/helm/data"

# =============================================================================================
PHASE="helm"
if [ -f "$LAB_CHART/Chart.yaml" ]; then
  if ! helm upgrade --install "$LAB_HELM_RELEASE" "$LAB_CHART" --namespace "$LAB_HELM_NAMESPACE" \
      --values "$LAB_SCRIPTS/chart-values.yaml" --create-namespace --wait --timeout 2m > "$LAB_LOGS/helm.log" 2>&1; then
    lab_tail helm 40
    lab_die "helm upgrade --install of $LAB_CHART failed (log: $LAB_LOGS/helm.log)"
  fi
  lab_phase_end "helm chart $LAB_CHART (release $LAB_HELM_RELEASE in $LAB_HELM_NAMESPACE)"
else
  lab_warn "$LAB_CHART/Chart.yaml does not exist yet: helm install skipped"
fi

# =============================================================================================
PHASE="controllers"
# kube-controller-manager answers /healthz at once but starts its controllers one after another
# over several seconds. Wait until the ServiceAccount controller has made default/default (it
# starts after most others) so a test that starts right away finds controllers running.
if ! lab_wait_daemon kube-controller-manager \
    "kube-controller-manager's controllers (ServiceAccount default/default)" 60 \
    lab_kubectl -n default get serviceaccount default; then
  lab_tail kube-controller-manager 40
  lab_die "kube-controller-manager did not start its controllers"
fi
lab_phase_end "kube-controller-manager controllers running"

# =============================================================================================
# Hooks: every up.d/NN-*.sh, in name order, sourced in a subshell with lib.sh's functions and
# variables, PATH and KUBECONFIG set, and `set -euo pipefail`. A failing hook fails up.sh.
for hook in "$LAB_SCRIPTS"/up.d/[0-9]*.sh; do
  [ -e "$hook" ] || continue
  PHASE="hook ${hook##*/}"
  ( set -euo pipefail; trap - EXIT; # shellcheck source=/dev/null
    . "$hook" ) || lab_die "hook $hook failed"
  lab_phase_end "hook ${hook##*/}"
done

PHASE="done"
lab_fingerprint > "$LAB_UP_MARK"
lab_phase_end "lab is up"
usage_hint
