#!/usr/bin/env bash
# Builds the lab's control plane from the Go module proxy into e2e/bin:
#   kube-apiserver, kube-controller-manager, kubectl  (Kubernetes, ./kubernetes)
#   etcd                                               (./etcd)
#   helm                                               (./helm)
# The releases are pinned by the wrapper modules' go.mod/go.sum; this script only
# adds the version stamps the upstream release builds put in with -ldflags, so
# `kube-apiserver --version`, `/version` and `helm version` say what they are.
#
# It does nothing when e2e/bin already holds binaries built from the current
# wrapper modules (a stamp file records their hash), so `make controlplane` is
# cheap to call before every lab start.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${BIN_DIR:-$(cd "$here/.." && pwd)/bin}
mkdir -p "$bin"

kube_version=v1.37.2
helm_version=v3.22.0

# Everything that decides what gets built goes into the stamp.
stamp=$(cat "$0" "$here"/*/go.mod "$here"/*/go.sum "$here"/etcd/main.go | sha256sum | cut -d' ' -f1)
binaries=(kube-apiserver kube-controller-manager kubectl etcd helm)
current=yes
for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || current=no; done
if [ "$current" = yes ] && [ "$(cat "$bin/.controlplane-stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "control plane in $bin is current ($kube_version, etcd $(sed -n 's/.*etcd\/server\/v3 \(v[0-9.]*\).*/\1/p' "$here/etcd/go.mod"), helm $helm_version)"
  exit 0
fi

export CGO_ENABLED=0
export GOFLAGS=-mod=mod
# Two cores: let Go use both, but do not start more compilers than cores.
export GOMAXPROCS=${GOMAXPROCS:-$(nproc)}

build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
major=${kube_version#v}; major=${major%%.*}
minor=${kube_version#v*.}; minor=${minor%%.*}
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

echo "building Kubernetes $kube_version (kube-apiserver, kube-controller-manager, kubectl) into $bin"
(cd "$here/kubernetes" && go build -trimpath -ldflags "$kube_ldflags" -o "$bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl)

echo "building etcd into $bin"
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd" .)

echo "building helm $helm_version into $bin"
(cd "$here/helm" && go build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
  -o "$bin/helm" helm.sh/helm/v3/cmd/helm)

echo "$stamp" > "$bin/.controlplane-stamp"
"$bin/kube-apiserver" --version
# Only etcd's first line; no `| head`, which would kill etcd with SIGPIPE under pipefail.
etcd_version=$("$bin/etcd" --version)
echo "${etcd_version%%$'\n'*}"
"$bin/helm" version --short
