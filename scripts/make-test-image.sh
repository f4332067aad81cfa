#!/usr/bin/env bash
# The container image the environment tests run jobs in: no registry is reachable from these machines, so
# it is a Debian root filesystem made with debootstrap (from the machine's own Debian mirror) and imported
# into podman as localhost/cairn-test:bookworm. Idempotent: does nothing when the image is there.
set -euo pipefail
IMAGE=localhost/cairn-test:bookworm
command -v podman > /dev/null || { echo "make-test-image: podman is not installed (scripts/install-deps.sh)" >&2; exit 1; }
if podman --runtime runc --cgroup-manager cgroupfs image exists "$IMAGE"; then exit 0; fi
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
root=$(mktemp -d /var/tmp/cairn-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "make-test-image: debootstrap --variant=minbase bookworm from $mirror (about 30 s)" >&2
debootstrap --variant=minbase bookworm "$root" "$mirror" > "$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
tar -C "$root" -c . | podman --runtime runc --cgroup-manager cgroupfs import - "$IMAGE" > /dev/null
echo "make-test-image: $IMAGE imported" >&2
