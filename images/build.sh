#!/usr/bin/env bash
# Builds the ironlb images without a container engine (`make images`): the
# static binaries from images/binaries.sh, then, per binary, an OCI image
# layout and an oci-archive of it, made with umoci:
#
#   $IMAGES_DIR/ironlb-operator/       OCI image layout, tag <version>
#   $IMAGES_DIR/ironlb-operator.tar    the same layout as an oci-archive
#   (and the same two for ironlb-speaker)
#
# IMAGES_DIR defaults to target/images (under CARGO_TARGET_DIR when set).
# The images hold what images/Dockerfile puts in its final stages: the binary,
# /etc/passwd and /etc/group, with the same entrypoint, user and labels
# (images/test.sh checks both agree). One layer each, on no base.
#
# Reproducible: every timestamp (file mtimes, created, history) is
# SOURCE_DATE_EPOCH, by default the time of the last commit, so the same
# commit and binaries give the same digests.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib.sh
. images/lib.sh
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
# umoci records file owners as they are on disk; as root they are 0:0, and an
# unprivileged user gets the same through --rootless.
rootless=()
[ "$(id -u)" -eq 0 ] || rootless=(--rootless)

work="$images_dir/.work"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
images/binaries.sh "$work/bin"

# image NAME USER DESCRIPTION
image() {
  local name=$1 user=$2 description=$3
  local layout="$images_dir/$name" bundle="$work/$name"
  local ref="$layout:$version"
  rm -rf "$layout" "$images_dir/$name.tar"
  umoci init --layout "$layout"
  umoci new --image "$ref"
  # umoci insert would be one call, but umoci 0.4 leaves the tar footer off
  # the layers it inserts (opencontainers/umoci#436), which GNU tar and image
  # scanners refuse; unpack + repack writes a complete tar.
  umoci unpack "${rootless[@]}" --image "$ref" "$bundle"
  install -d -m 0755 "$bundle/rootfs/etc"
  install -m 0644 images/rootfs/etc/passwd images/rootfs/etc/group "$bundle/rootfs/etc/"
  install -m 0755 "$work/bin/$name" "$bundle/rootfs/$name"
  chmod 0755 "$bundle/rootfs"
  find "$bundle/rootfs" -exec touch -h -d "@$epoch" {} +
  umoci repack "${rootless[@]}" --image "$ref" \
    --history.created "$created" --history.created_by "images/build.sh: /$name /etc/passwd /etc/group" "$bundle"
  umoci config --image "$ref" --no-history \
    --created "$created" --architecture "$arch" --os linux \
    --config.entrypoint "/$name" --config.user "$user" --config.workingdir / \
    --config.label "org.opencontainers.image.title=$name" \
    --config.label "org.opencontainers.image.description=$description" \
    --config.label "org.opencontainers.image.version=$version" \
    --config.label "org.opencontainers.image.revision=$revision" \
    --config.label "org.opencontainers.image.source=$source_url" \
    --config.label "org.opencontainers.image.licenses=$license"
  umoci gc --layout "$layout"
  tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner --mode=u+rwX,go+rX,go-w \
    -C "$layout" -cf "$images_dir/$name.tar" oci-layout index.json blobs
  local digest
  digest=$(sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p' "$layout/index.json")
  echo "images: $name:$version $digest  $(du -h "$images_dir/$name.tar" | cut -f1) $images_dir/$name.tar"
}

# The user and why: see docs/images.md. The operator needs no privilege; the
# speaker opens AF_PACKET sockets, which takes CAP_NET_RAW, and a non-root
# process gets that only from file capabilities, which the chart's
# allowPrivilegeEscalation: false (no_new_privs) disables. So the speaker runs
# as root with every capability but NET_RAW dropped (the chart does that).
image ironlb-operator 65532:65532 \
  "Assigns LoadBalancer Services their addresses from ironlb IPAddressPools and records the allocations"
image ironlb-speaker 0:0 \
  "Answers ARP and NDP for the LoadBalancer addresses its node wins (runs as root with only CAP_NET_RAW)"
