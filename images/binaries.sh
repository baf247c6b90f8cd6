#!/usr/bin/env bash
# Builds ironlb-operator and ironlb-speaker as static release binaries and
# copies them to OUT_DIR. Both images/Dockerfile and `make images` build
# through this script, so the image holds the same binary whichever way it was
# made.
#
# Static: glibc linked in (crt-static), no program interpreter, no shared
# library, so the binary runs alone in an image without a libc. That holds
# because neither binary loads anything at run time: TLS is rustls (no
# OpenSSL), and the in-cluster API server address is an IP.
#
# usage: images/binaries.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: images/binaries.sh OUT_DIR}
cargo=${CARGO:-cargo}
binaries=(ironlb-operator ironlb-speaker)

# The explicit --target matters: with it cargo applies RUSTFLAGS to the
# binaries only, not to build scripts and proc macros, which are loaded by the
# compiler and must stay dynamic. It also keeps these artifacts apart from the
# debug and test builds (target/<triple>/release), so neither invalidates the
# other.
triple=$(rustc -vV | sed -n 's/^host: //p')
target_dir=$("$cargo" metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
echo "images: cargo build --release --target $triple (static: -C target-feature=+crt-static)"
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
  "$cargo" build --release --locked --target "$triple" \
  -p ironlb-operator -p ironlb-speaker --bin ironlb-operator --bin ironlb-speaker

mkdir -p "$out"
for bin in "${binaries[@]}"; do
  built="$target_dir/$triple/release/$bin"
  # A dynamic ELF names its loader in a PT_INTERP header and its libraries in
  # DT_NEEDED entries; a static one (static-pie included) has neither.
  if readelf --program-headers --wide "$built" | grep -q 'INTERP' ||
    readelf --dynamic --wide "$built" | grep -q '(NEEDED)'; then
    echo "images: $built is dynamically linked; it would not run in the image:" >&2
    readelf --program-headers --dynamic --wide "$built" | grep -E 'INTERP|interpreter|NEEDED' >&2
    exit 1
  fi
  install -m 0755 "$built" "$out/$bin"
  echo "images: $out/$bin ($(du -h "$out/$bin" | cut -f1), static)"
done
