#!/usr/bin/env bash
# demo.sh: load the image that ships with the project (built from Debian's
# busybox-static by scripts/mkimage.sh) into a throw-away berth root and run
# a container from it with `berth run --rm`. No network needed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
berth() { "$here/bin/berth" --root "$work/root" --state "$work/state" "$@"; }
cleanup() {
	# Containers, networks and their firewall chains, mounts, the root.
	berth system reset -f >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
"$here/scripts/mkimage.sh" "$work/busybox.tar" berth-demo/busybox:latest
echo "+ berth load -i busybox.tar"
berth load -i "$work/busybox.tar"
echo "+ berth run --rm berth-demo/busybox sh -c ..."
berth run --rm --name demo berth-demo/busybox sh -c 'echo "hello from a berth container: $(hostname), pid $$, $(id)"; echo "root filesystem:"; ls /'
echo "+ berth run -d, logs, stop, rm"
id=$(berth run -d --name demo berth-demo/busybox sh -c 'trap "echo bye; exit 0" TERM; echo "up as $(hostname)"; while :; do sleep 0.1; done')
sleep 0.5
berth ps
berth logs demo
berth stop demo >/dev/null
berth logs --tail 1 demo
berth ps -a --format '{{.Names}} {{.Status}}'
berth rm demo >/dev/null
echo "demo container ${id:0:12} removed"
