# Sourced by images/build.sh and images/test.sh: what both read about the
# images from Cargo.toml, git and the toolchain, and where the images go.
# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are for the scripts that source this

# One key of Cargo.toml's [workspace.package].
workspace_key() { sed -n "/^\[workspace.package\]/,/^\[/s/^$1 = \"\(.*\)\"/\1/p" Cargo.toml; }

version=$(workspace_key version)
license=$(workspace_key license)
source_url=$(workspace_key repository)
revision=$(git rev-parse HEAD)
git diff --quiet HEAD -- || revision="$revision-dirty"
images_dir=${IMAGES_DIR:-${CARGO_TARGET_DIR:-target}/images}
# The images are for the platform the compiler builds for.
case "$(rustc -vV | sed -n 's/^host: //p')" in
  x86_64-*) arch=amd64 ;;
  aarch64-*) arch=arm64 ;;
  *) echo "images: no OCI architecture name for this host" >&2; exit 1 ;;
esac
