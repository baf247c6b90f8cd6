#!/usr/bin/env bash
# `make demo`: the MetalLB layer-2 tutorial (../shared/seed) walked with ironlb
# in the local lab, printing every command a user would type and its real
# output. The lab stays up afterwards so you can carry on by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

bold=$'\e[1m'; dim=$'\e[2m'; reset=$'\e[0m'
[ -t 1 ] || { bold=; dim=; reset=; }

say() { printf '\n%s# %s%s\n' "$dim" "$*" "$reset"; }
# Prints a command as typed, then runs it.
# Both output streams go to stdout, so a refusal reads in its place.
show() { printf '%s$ %s%s\n' "$bold" "$*" "$reset"; "$@" 2>&1; }
show_input() { # show_input <stdin> <cmd...>
  local input=$1; shift
  printf '%s$ %s <<EOF%s\n%s\n%sEOF%s\n' "$bold" "$*" "$reset" "$input" "$bold" "$reset"
  "$@" <<<"$input" 2>&1
}

scripts/install-deps.sh >/dev/null
e2e/lab/up.sh
# shellcheck source=/dev/null
. e2e/.lab/env

say "The lab: a real kube-apiserver $(kube-apiserver --version | cut -d' ' -f2), and one Node per node network namespace."
show kubectl get nodes -o wide

say "The tutorial's guestbook frontend (the lab's kubelet stand-in runs its Pods on the lab's nodes)"
say "and its Service: type LoadBalancer, and nothing hands out external IPs yet."
show_input "$(cat e2e/demo/guestbook-frontend.yaml)" kubectl apply -f -
show_input "$(cat e2e/demo/load-balancer-service.yaml)" kubectl apply -f -
show kubectl get service load-balancer-service -o wide

say "ironlb's chart is installed with helm; it brings the ironlb.io API."
show helm list --namespace ironlb-system
show kubectl get crd ipaddresspools.ironlb.io l2advertisements.ironlb.io

say "The tutorial's address pool, as an IPAddressPool instead of MetalLB's ConfigMap, and an"
say "L2Advertisement (the ConfigMap's protocol: layer2): answer ARP/NDP for its addresses."
show_input "$(cat e2e/demo/tutorial-pool.yaml)" kubectl apply -f -
show_input "$(cat e2e/demo/l2-advertisement.yaml)" kubectl apply -f -

say "ironlb-operator (two replicas, one leading) assigns the Service the pool's first address:"
for _ in $(seq 1 100); do
  [ -n "$(kubectl get service load-balancer-service -o jsonpath='{.status.loadBalancer.ingress[0].ip}')" ] && break
  sleep 0.2
done
show kubectl get service load-balancer-service -o wide
show kubectl get ipaddresspools

say "The pool's status records every allocation, and the node that announces it (one speaker per node"
say "picks the same node with the same function):"
for _ in $(seq 1 100); do
  [ -n "$(kubectl get ipaddresspool default -o jsonpath='{.status.allocations[0].node}')" ] && break
  sleep 0.2
done
show kubectl describe ipaddresspool default
node=$(kubectl get ipaddresspool default -o jsonpath='{.status.allocations[0].node}')

say "And the Service says where its address came from, and who announces it:"
for _ in $(seq 1 100); do
  kubectl get events --field-selector involvedObject.name=load-balancer-service,reason=Announcing -o name | grep -q . && break
  sleep 0.2
done
show kubectl get events --field-selector involvedObject.name=load-balancer-service

say "A bad pool is refused by the API server, naming the bad entry:"
show_input "$(sed 's/192.168.2.10-192.168.2.49/192.168.2.49-192.168.2.10/; s/name: default/name: reversed/' e2e/demo/tutorial-pool.yaml)" \
  kubectl apply -f - || true

say "Every field is documented:"
show kubectl explain ipaddresspool.spec.addresses

say "From a client on the LAN (the ironlb-client namespace), ARP for 192.168.2.10 is answered by"
say "exactly one MAC, the one of $node's LAN interface:"
show ip netns exec "$LAB_CLIENT" arping -c 3 -i eth0 192.168.2.10 || true
show ip netns exec "$node" cat /sys/class/net/eth0/address
say "and the Service answers over HTTP (each node's HTTP server replies with its name):"
show ip netns exec "$LAB_CLIENT" curl -sS --max-time 5 http://192.168.2.10/

cat <<TXT

${bold}The lab keeps running.${reset} Use it from this shell with:
  . e2e/.lab/env
  kubectl get ipaddresspools
  ip netns exec \$LAB_CLIENT arping -c1 -i eth0 192.168.2.10   # the client namespace on the lab's LAN
  ip netns exec \$LAB_CLIENT curl http://192.168.2.10/
Tear it down with:
  make lab-down
TXT
