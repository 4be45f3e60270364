#!/usr/bin/env bash
# Build the CPU image without a Docker daemon and check it: buildah (chroot isolation, vfs
# storage, as root) on a Debian base made with debootstrap from Debian packages, so no
# registry of images is needed. Needs the Debian packages buildah and debootstrap, a
# reachable Debian mirror (DEBIAN_MIRROR) and PyPI. Usage: deploy/build-cpu-image.sh
# Then: tests/deploy/test_deploy_images.py::test_cpu_image_builds_and_runs_as_non_root
# builds the image from ./Dockerfile on that base and runs `probcast --version` as uid 10001.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${PROBCAST_IMAGE_BASE:-localhost/debian-python:3.11-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
S=(--storage-driver vfs)
if ! buildah "${S[@]}" inspect --type image "$base" >/dev/null 2>&1; then
  start=$(date +%s)
  ctr=$(buildah "${S[@]}" from scratch)
  mnt=$(buildah "${S[@]}" mount "$ctr")
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$mnt" "$mirror" >/dev/null
  # Behind an intercepting TLS proxy the host's CA bundle holds the proxy's CA: the build
  # inside the image needs it too (uv reads the system bundle with UV_NATIVE_TLS).
  if [ -f "${SSL_CERT_FILE:-}" ]; then cp "$SSL_CERT_FILE" "$mnt/etc/ssl/certs/ca-certificates.crt"; fi
  buildah "${S[@]}" config --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --env UV_NATIVE_TLS=1 "$ctr"
  buildah "${S[@]}" umount "$ctr" >/dev/null
  buildah "${S[@]}" commit --quiet "$ctr" "$base" >/dev/null
  buildah "${S[@]}" rm "$ctr" >/dev/null
  echo "base image $base: $(( $(date +%s) - start )) s"
fi
start=$(date +%s)
PROBCAST_IMAGE_BASE=$base .venv/bin/pytest -q -p no:cacheprovider -m slow \
  tests/deploy/test_deploy_images.py -k builds_and_runs
echo "image: $(( $(date +%s) - start )) s; $(buildah "${S[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep -v debian-python || true)"
buildah "${S[@]}" rmi --force localhost/probcast:test >/dev/null 2>&1 || true  # 2 GB in vfs
