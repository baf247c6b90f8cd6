# shellcheck shell=bash
# 10-dataplane.sh: what answers a LoadBalancer IP once ironlb has drawn its traffic to a node. In
# every node namespace: an HTTP server on port $LAB_HTTP_PORT that answers with the node's name
# (lab_start_http), and kube-proxy-like DNAT of TCP port 80 for the VIP ranges to it
# (lab_node_dnat). No VIP goes on an interface: answering ARP/NDP for them is the speakers' job.
command -v nft >/dev/null || lab_die "'nft' is not installed (Debian package nftables, see scripts/install-deps.sh)"
for node in $LAB_NODES; do
  lab_node_dnat "$node" || lab_die "could not install the DNAT rules in $node (nftables NAT in a network namespace)"
  lab_start_http "$node"
done
# The DNAT works: a connection to the first VIP made inside each node (the output chain, so no
# frame on the LAN) reaches that node's server, in both families.
for node in $LAB_NODES; do
  for url in "http://${LAB_VIP_RANGE_V4%%-*}/" "http://[${LAB_VIP_RANGE_V6%%-*}]/"; do
    lab_http_answers "$node" "$url" || {
      ip netns exec "$node" nft list table inet ironlb_lab >&2 || true
      lab_die "DNAT check: curl $url inside $node did not answer '$node'"
    }
  done
done
