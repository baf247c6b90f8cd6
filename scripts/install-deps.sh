#!/usr/bin/env bash
# Installs what the lab and the tests need on a fresh Debian machine: the
# network tools the lab and the e2e suite drive (iproute2 for namespaces,
# nftables for the nodes' kube-proxy-like DNAT, openssl for the lab's PKI,
# arping / ndisc6 / socat / tcpdump / curl as the LAN client's tools, iperf3
# for the unrelated traffic of the speaker bench, shellcheck for make lint,
# and umoci, skopeo and jq, with which make images builds the OCI images
# without a container engine and make images-test reads them). Safe to run
# again: it installs only what is missing.
set -euo pipefail

packages=(iproute2 iputils-ping openssl arping ndisc6 socat tcpdump curl procps util-linux nftables iperf3 shellcheck umoci skopeo jq)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "Debian packages: all present"
  exit 0
fi
echo "Debian packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
