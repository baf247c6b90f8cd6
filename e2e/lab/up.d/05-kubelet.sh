# shellcheck shell=bash
# 05-kubelet.sh: the lab's kubelet and scheduler stand-in, ironlb-lab-kubelet (see
# lab_start_kubelet): it keeps the Nodes Ready (Lease and status every 10 s), binds Pods to them
# and reports bound Pods Running with the node's addresses, so kube-controller-manager writes
# EndpointSlices as in a real cluster. Waits until every lab Node is Ready. The chart's own Pods
# are left alone: the other hooks run those binaries out of cluster.
lab_start_kubelet
