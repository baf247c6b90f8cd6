#!/usr/bin/env bash
# Inspects the images `make images` built (images/build.sh) the way a
# registry and a container runtime would, without either: reads them with
# skopeo and umoci, checks the config (entrypoint, user, platform, labels
# against Cargo.toml and git) and the layer, checks images/Dockerfile says the
# same, then unpacks each image and runs its entrypoint from the bare rootfs as
# the image's user: that proves the binary is static and works alone there.
# Then it checks the chart pulls these images and runs them as the same users,
# and last builds the images once more and expects the same digests.
#
# Needs root (chroot), skopeo, umoci and jq (scripts/install-deps.sh); not the
# lab. Ends with "N passed, N failed" and fails if any check did.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib.sh
. images/lib.sh

if [ "$(id -u)" -ne 0 ]; then
  echo "images-test: needs root, to run each entrypoint in its unpacked rootfs with chroot" >&2
  exit 1
fi
for tool in skopeo umoci jq chroot; do
  command -v "$tool" >/dev/null || { echo "images-test: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done

chroot=$(command -v chroot) # env -i leaves no PATH to find it by
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

# expect WHAT EXPECTED ACTUAL
expect() {
  if [ "$2" = "$3" ]; then
    passed=$((passed + 1))
    printf '  ok    %s: %s\n' "$1" "$3"
  else
    failed=$((failed + 1))
    printf '  FAIL  %s: want %s, got %s\n' "$1" "$2" "$3"
  fi
}

# The final stage STAGE of images/Dockerfile with the stage "common" it is
# built on, continuation lines joined.
dockerfile_stage() {
  sed -e ':a' -e '/\\$/N; s/\\\n//; ta' images/Dockerfile |
    awk -v stage="$1" '/^FROM /{on = ($NF == stage || $NF == "common")} on'
}

# inspect NAME STAGE UID GID
inspect() {
  local name=$1 stage=$2 uid=$3 gid=$4
  local layout="$images_dir/$name" ref="$images_dir/$name:$version"
  echo "$name:$version"
  if ! skopeo inspect "oci:$ref" >"$work/$name.inspect.json"; then
    expect "$name: image $ref" "present (make images)" "missing"
    return
  fi
  skopeo inspect --config "oci:$ref" >"$work/$name.config.json"
  local config="$work/$name.config.json" inspected="$work/$name.inspect.json"

  # The config, as a registry client reads it.
  expect "entrypoint" "[\"/$name\"]" "$(jq -c '.config.Entrypoint' "$config")"
  expect "cmd" "null" "$(jq -c '.config.Cmd' "$config")"
  expect "user" "$uid:$gid" "$(jq -r '.config.User' "$config")"
  expect "platform" "linux/$arch" "$(jq -r '"\(.os)/\(.architecture)"' "$config")"
  label() { jq -r --arg key "org.opencontainers.image.$1" '.Labels[$key] // "(none)"' "$inspected"; }
  expect "label version (Cargo.toml)" "$version" "$(label version)"
  expect "label revision (git HEAD)" "$revision" "$(label revision)"
  expect "label title" "$name" "$(label title)"
  expect "label source (Cargo.toml)" "$source_url" "$(label source)"
  expect "label licenses (Cargo.toml)" "$license" "$(label licenses)"
  expect "label description" "set" "$([ "$(label description)" != "(none)" ] && echo set || echo unset)"

  # images/Dockerfile builds the same image: compare what it states literally.
  local stage_text
  stage_text=$(dockerfile_stage "$stage")
  expect "Dockerfile --target $stage: USER" "$(jq -r '.config.User' "$config")" "$(sed -n 's/^USER //p' <<<"$stage_text")"
  expect "Dockerfile --target $stage: ENTRYPOINT" "$(jq -c '.config.Entrypoint' "$config")" \
    "$(sed -n 's/^ENTRYPOINT //p' <<<"$stage_text")"
  local pair key value
  while read -r pair; do
    key=${pair%%=*} value=${pair#*=} value=${value#\"} value=${value%\"}
    # A build argument (${VERSION}) is checked above against its source.
    [[ $value == *"\${"* ]] && continue
    expect "Dockerfile --target $stage: LABEL ${key#org.opencontainers.image.}" "$value" \
      "$(jq -r --arg key "$key" '.Labels[$key] // "(none)"' "$inspected")"
  done < <(grep -o 'org\.opencontainers\.image\.[a-z]*="[^"]*"' <<<"$stage_text")

  # One layer, a complete tar (GNU tar refuses a truncated one) holding
  # exactly the binary and the two account files.
  expect "layers" "1" "$(jq '.Layers | length' "$inspected")"
  local layer files
  layer="$layout/blobs/sha256/$(jq -r '.Layers[0]' "$inspected" | cut -d: -f2)"
  files=$(gzip -dc "$layer" | tar -tvf - --numeric-owner 2>&1 | awk '{print $1, $2, $NF}' | sort | tr '\n' ' ') || true
  expect "layer contents" \
    "-rw-r--r-- 0/0 etc/group -rw-r--r-- 0/0 etc/passwd -rwxr-xr-x 0/0 $name drwxr-xr-x 0/0 . drwxr-xr-x 0/0 etc/ " \
    "$files"

  # The oci-archive loads as skopeo copy would push it, to the same manifest.
  local digest copied
  digest=$(jq -r '.Digest' "$inspected")
  copied=$(skopeo copy --quiet "oci-archive:$images_dir/$name.tar:$version" "oci:$work/$name-copy:$version" >/dev/null &&
    skopeo inspect "oci:$work/$name-copy:$version" | jq -r '.Digest') || copied="(copy failed)"
  expect "oci-archive copies to the same manifest" "$digest" "$copied"

  # Unpack as a runtime would (umoci writes the runtime-spec config.json) and
  # run the entrypoint from the rootfs alone, as the image's user, with an
  # empty environment.
  local bundle="$work/$name-bundle"
  umoci unpack --image "$ref" "$bundle" >/dev/null
  expect "runtime user" "$uid:$gid" "$(jq -r '"\(.process.user.uid):\(.process.user.gid)"' "$bundle/config.json")"
  expect "user $uid in the image's /etc/passwd" "yes" \
    "$(awk -F: -v uid="$uid" '$3 == uid {found = 1} END {print found ? "yes" : "no"}' "$bundle/rootfs/etc/passwd")"
  local -a args
  mapfile -t args < <(jq -r '.process.args[]' "$bundle/config.json")
  local out rc
  out=$(env -i "$chroot" --userspec="$uid:$gid" "$bundle/rootfs" "${args[@]}" --version 2>&1) || out="exit $?: $out"
  expect "runs: ${args[*]} --version" "$name $version" "$out"
  # Started for real out of a cluster, it gets through flags, logging and the
  # async runtime to the client setup, and stops there with a clear error.
  rc=0
  out=$(timeout 30 env -i POD_NAME=images-test NODE_NAME=images-test \
    "$chroot" --userspec="$uid:$gid" "$bundle/rootfs" "${args[@]}" 2>&1) || rc=$?
  expect "runs: ${args[*]} with no cluster stops with" "exit 1, cannot reach the API server" \
    "exit $rc, $(grep -o 'cannot reach the API server' <<<"$out" | head -1)"

  echo "  size: $(du -h "$images_dir/$name.tar" | cut -f1) archive, $(du -h "$bundle/rootfs/$name" | cut -f1) binary, digest $digest"
}

inspect ironlb-operator operator 65532 65532
inspect ironlb-speaker speaker 0 0

# The chart pulls these images by default, and runs them as the same users.
echo "charts/ironlb"
expect "appVersion (the default image tag)" "$version" \
  "$(sed -n 's/^appVersion: "\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/ironlb/Chart.yaml)"
for name in ironlb-operator ironlb-speaker; do
  expect "values.yaml names the image $name" "ghcr.io/ironlb/$name" \
    "$(grep -o "repository: ghcr.io/ironlb/$name\$" charts/ironlb/values.yaml | cut -d' ' -f2)"
done
expect "operator runAsUser" "65532" "$(sed -n 's/^ *runAsUser: //p' charts/ironlb/templates/operator.yaml)"
expect "speaker runAsUser" "0" "$(sed -n 's/^ *runAsUser: //p' charts/ironlb/templates/speaker.yaml)"

# Reproducible: the same commit and binaries give the same images.
echo "rebuilt into $work/rebuild"
if ! IMAGES_DIR="$work/rebuild" images/build.sh >"$work/rebuild.log" 2>&1; then
  cat "$work/rebuild.log"
fi
for name in ironlb-operator ironlb-speaker; do
  expect "$name: a second build has the same digest" \
    "$(skopeo inspect "oci:$images_dir/$name:$version" 2>/dev/null | jq -r '.Digest')" \
    "$(skopeo inspect "oci:$work/rebuild/$name:$version" 2>/dev/null | jq -r '.Digest')"
done

echo
echo "images: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
