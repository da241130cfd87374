#!/usr/bin/env bash
# bench-vm.sh: what berth's VM isolation costs over booting its guest
# kernel at all. Interleaved runs, medians, reported as a ratio:
#  - berth: `run --rm --isolation vm IMAGE true` (boot, agent, layer
#    disk, overlay, the process, power-off, the engine's records);
#  - bare: the same QEMU machine and kernel (microvm, same accelerator,
#    memory and kernel command line) booting an initramfs whose /init is
#    busybox powering off at once;
#  - nonet: berth's run with --network none: what the network costs (the
#    CNI attachment, the tap and its redirects, virtio-net in the guest,
#    the guest's addresses and routes) is berth's time over it.
#   BENCH_VM_N   runs of each (default 5: a TCG boot takes seconds)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
N=${BENCH_VM_N:-5}
[ "$(id -u)" = 0 ] || { echo "bench-vm: needs root" >&2; exit 1; }
kernel=${BERTH_VM_KERNEL:-$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -1)}
qemu=${BERTH_VM_QEMU:-$(command -v qemu-system-x86_64 || true)}
if [ -z "$kernel" ] || [ -z "$qemu" ]; then
	echo "bench-vm: skipped: no guest kernel or QEMU (make deps installs them)"
	exit 0
fi
T=$(mktemp -d /tmp/berth-bench-vm.XXXXXX)
BENCH=bench-vm
# shellcheck source=scripts/bench-lib.sh
. "$here/scripts/bench-lib.sh"
berth_in_T
image=berth-demo/busybox:latest
scripts/mkimage.sh "$T/busybox.tar" "$image" >/dev/null
berth load -q -i "$T/busybox.tar" >/dev/null

# The bare guest: busybox as /init, powering off.
mkdir -p "$T/bare/bin" "$T/bare/dev" "$T/bare/proc"
cp /bin/busybox "$T/bare/bin/busybox"
printf '#!/bin/busybox sh\n/bin/busybox poweroff -f\n' >"$T/bare/init"
chmod 755 "$T/bare/init"
(cd "$T/bare" && find . | cpio -o -H newc --quiet >"$T/bare.cpio")

# The first run builds the initramfs and the layer image and probes KVM:
# not measured. Its accelerator is the one the bare boot uses.
berth run --rm --isolation vm "$image" true >/dev/null
accel=$(berth info | awk '/^ vm: available: / { print $3; exit }')
[ "$accel" = kvm ] || accel=tcg
khz=$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)
append="console=ttyS0 quiet loglevel=4 panic=-1 reboot=t"
[ "$accel" = tcg ] && append="$append tsc_early_khz=${khz:-2000000}"
bare() {
	"$qemu" -M microvm -accel "$accel" -m 256 -smp 1 -nodefaults -no-user-config -display none -no-reboot \
		-serial "file:$T/bare-console.log" -kernel "$kernel" -initrd "$T/bare.cpio" -append "$append"
}
: >"$T/results"
for _ in $(seq "$N"); do
	timed bare bare
	timed berth berth run --rm --isolation vm "$image" true
	timed nonet berth run --rm --isolation vm --network none "$image" true
done
b=$(median bare)
v=$(median berth)
nn=$(median nonet)
echo
echo "guest kernel $(basename "$kernel"), $accel, median of $N interleaved runs:"
awk -v b="$b" -v v="$v" 'BEGIN { printf "  bare boot to a powering-off init       %7.0f ms\n  berth run --rm --isolation vm ... true %7.0f ms\n  ratio: %.2fx (%.0f ms over the bare boot)\n", b * 1000, v * 1000, v / b, (v - b) * 1000 }'
awk -v n="$nn" -v v="$v" 'BEGIN { printf "  the same with --network none            %7.0f ms: the network costs %.0f ms (%.2fx)\n", n * 1000, (v - n) * 1000, v / n }'
