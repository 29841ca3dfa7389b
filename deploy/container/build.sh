#!/usr/bin/env bash
# Builds Corral's container image on this machine, without a registry: a self-contained `dotnet publish` of corral,
# a Debian root file system from the Debian mirror (mmdebstrap) imported as the base, and the Containerfile on top.
#   deploy/container/build.sh [TAG]            (default corral:local)
# Environment: CORRAL_IMAGE_WORK (work directory, default artifacts/image), CORRAL_PODMAN_ARGS (e.g. "--root DIR
# --runroot DIR" to keep podman's storage elsewhere), CORRAL_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/../.."
tag="${1:-corral:local}"
work="${CORRAL_IMAGE_WORK:-$PWD/artifacts/image}"
mirror="${CORRAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
read -r -a podman <<< "podman ${CORRAL_PODMAN_ARGS:-}"
base=localhost/corral-base:bookworm

mkdir -p "$work"
rm -rf "$work/context"
mkdir -p "$work/context"
# The image carries no PDB source links (they need a GitHub clone); build output goes to stderr: stdout is the tag.
dotnet publish src/Corral.Cli -c Release -r linux-x64 --self-contained -o "$work/context/corral" --nologo -v quiet \
  -p:EnableSourceLink=false >&2
cp deploy/container/Containerfile "$work/context/Containerfile"

if ! "${podman[@]}" image exists "$base"; then
  if [ ! -s "$work/rootfs.tar" ]; then
    # minbase: Essential packages only (about 180 MB); what a self-contained .NET program needs beyond them, and tini.
    mmdebstrap --quiet --variant=minbase --include=ca-certificates,libssl3,tini bookworm "$work/rootfs.part.tar" "$mirror" </dev/null
    mv "$work/rootfs.part.tar" "$work/rootfs.tar"
  fi
  "${podman[@]}" import --quiet "$work/rootfs.tar" "$base" >/dev/null
fi

# crun fails on hybrid cgroup hosts and runc works everywhere; no network is needed unless an agent CLI is added.
network=none
grep -q 'CLAUDE_CODE_VERSION=[^ ]' <<< "${CORRAL_BUILD_ARGS:-}" && network=host
read -r -a extra <<< "${CORRAL_BUILD_ARGS:-}"
"${podman[@]}" build --quiet --runtime runc --network="$network" --ulimit nofile=1024:1024 --ulimit nproc=1000:1000 \
  --build-arg BASE="$base" "${extra[@]}" -t "$tag" -f "$work/context/Containerfile" "$work/context" >/dev/null
echo "$tag"
