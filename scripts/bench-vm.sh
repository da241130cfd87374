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
#    the guest's addresses and routes) is berth's time over it;
#  - cold: berth's run with VM templates off (BERTH_VM_TEMPLATE=0): every
#    VM boots its guest; berth (templates on, the default) restores a
#    saved, booted guest of its shape instead;
#  - reads: a BENCH_VM_READ_MIB file (default 1024) read whole (cat to
#    /dev/null) from the image (the VM: an EROFS layer disk on
#    virtio-blk) and from a volume (the VM: virtio-fs), against the same
#    reads in a linux container; each run's time less that of the same
#    isolation's `true`, so the boot is not counted. Under TCG a VM's
#    read of 1 GiB takes minutes: BENCH_VM_READ_N rounds (default 3),
#    BENCH_VM_READ_MIB=0 leaves the reads out.
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
# Each shape's first run makes its VM template: not measured either.
berth run --rm --isolation vm --network none "$image" true >/dev/null
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
	BERTH_VM_TEMPLATE=0 timed cold berth run --rm --isolation vm "$image" true
done
c=$(median cold)
b=$(median bare)
v=$(median berth)
nn=$(median nonet)
echo
echo "guest kernel $(basename "$kernel"), $accel, median of $N interleaved runs:"
awk -v b="$b" -v v="$v" 'BEGIN { printf "  bare boot to a powering-off init       %7.0f ms\n  berth run --rm --isolation vm ... true %7.0f ms\n  ratio: %.2fx (%.0f ms over the bare boot)\n", b * 1000, v * 1000, v / b, (v - b) * 1000 }'
awk -v n="$nn" -v v="$v" 'BEGIN { printf "  the same with --network none            %7.0f ms: the network costs %.0f ms (%.2fx)\n", n * 1000, (v - n) * 1000, v / n }'
awk -v c="$c" -v v="$v" 'BEGIN { printf "  the same booting (BERTH_VM_TEMPLATE=0)  %7.0f ms: from a VM template %.2fx of it (goal <= 0.5x)\n", c * 1000, v / c }'
echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# Reading a big file: from the image and from a volume, VM against linux.
READ_MIB=${BENCH_VM_READ_MIB:-1024}
if [ "$READ_MIB" -gt 0 ]; then
	readimg=berth-bench/bigfile:latest
	berth run --name bigfile "$image" dd if=/dev/zero of=/big bs=1M count="$READ_MIB" >/dev/null 2>&1
	berth commit bigfile "$readimg" >/dev/null
	berth rm bigfile >/dev/null
	mkdir -p "$T/readvol"
	dd if=/dev/zero of="$T/readvol/big" bs=1M count="$READ_MIB" status=none
	# The first VM run makes the layer's EROFS image: not measured.
	berth run --rm --isolation vm "$readimg" true >/dev/null
	READ_N=${BENCH_VM_READ_N:-3}
	for _ in $(seq "$READ_N"); do
		for iso in vm linux; do
			timed "true-$iso" berth run --rm --isolation "$iso" --network none "$readimg" sh -c 'true >/dev/null'
			timed "image-$iso" berth run --rm --isolation "$iso" --network none "$readimg" sh -c 'cat /big >/dev/null'
			timed "volume-$iso" berth run --rm --isolation "$iso" --network none -v "$T/readvol:/data:ro" "$readimg" sh -c 'cat /data/big >/dev/null'
		done
	done
	echo
	echo "reading a ${READ_MIB} MiB file (cat to /dev/null; run time less the same isolation's true; median of $READ_N):"
	for src in image volume; do
		awk -v src="$src" -v mib="$READ_MIB" -v vt="$(median true-vm)" -v v="$(median "$src-vm")" -v lt="$(median true-linux)" -v l="$(median "$src-linux")" 'BEGIN {
			dv = v - vt; dl = l - lt; if (dl < 0.001) dl = 0.001
			printf "  from the %-6s vm %7.0f ms (%5.0f MiB/s), linux %6.0f ms (%6.0f MiB/s): %.1fx\n", src, dv * 1000, mib / (dv > 0.001 ? dv : 0.001), dl * 1000, mib / dl, dv / dl }'
	done
	berth rmi "$readimg" >/dev/null
	rm -f "$T/readvol/big"
fi

# Host memory per idle VM container: the Pss (shared pages split among
# their users) of what stands for it on the host: its monitor, the shim,
# QEMU (the guest's memory that it touched included) and, with a volume,
# virtiofsd's two processes. Each container sleeps after it is up;
# measured once all are running and settled. BENCH_VM_IDLE containers of
# each kind (default 3): without a volume, and with one.
IDLE=${BENCH_VM_IDLE:-3}
# descendants PID: PID and every process under it.
descendants() {
	local p=$1 c
	echo "$p"
	for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do descendants "$c"; done
}
# qemu_parts PID: QEMU's Pss in kB: the guest's memory (the mapping as
# large as -m), the initramfs file QEMU keeps mapped, TCG's buffer of
# translated code (its one anonymous rwx mapping; none under KVM), the
# rest.
qemu_parts() {
	local mib
	mib=$(tr '\0' '\n' </proc/"$1"/cmdline | awk 'p { print; exit } $0 == "-m" { p = 1 }')
	awk -v guest=$((mib * 1024)) '
		/^[0-9a-f]+-[0-9a-f]+ / { name = $6; perm = $2 }
		/^Size:/ { size = $2 }
		/^Pss:/ { if (size == guest) g += $2; else if (name ~ /\.cpio$/) i += $2; else if (perm == "rwxp" && name == "") c += $2; else r += $2 }
		END { printf "%d %d %d %d", g, i, r, c }' /proc/"$1"/smaps
}
idle_pss() { # idle_pss KIND [RUN-FLAGS...]: median kB per container, and its parts
	local kind=$1 i shim mon all q v
	shift
	for i in $(seq "$IDLE"); do
		berth run -d --isolation vm --name "idle-$kind-$i" "$@" "$image" sh -c 'echo up; exec sleep 100000' >/dev/null
	done
	for i in $(seq "$IDLE"); do
		for _ in $(seq 300); do
			if berth logs "idle-$kind-$i" 2>/dev/null | grep up >/dev/null; then break; fi
			sleep 0.2
		done
	done
	sleep 3
	: >"$T/idle-$kind"
	for i in $(seq "$IDLE"); do
		shim=$(berth inspect -f '{{.State.Pid}}' "idle-$kind-$i")
		mon=$(awk '{print $4}' /proc/"$shim"/stat)
		all=$(descendants "$mon")
		q=$(for p in $all; do if grep -q qemu-system /proc/"$p"/cmdline 2>/dev/null; then echo "$p"; fi; done)
		v=$(for p in $all; do if grep -q virtiofsd /proc/"$p"/cmdline 2>/dev/null; then echo "$p"; fi; done)
		# shellcheck disable=SC2086
		echo "$(pss_of $all) $(pss_of $q) $(pss_of $v) $(pss_of "$shim") $(pss_of "$mon") $(qemu_parts "$q")" >>"$T/idle-$kind"
	done
	berth rm -f $(for i in $(seq "$IDLE"); do echo "idle-$kind-$i"; done) >/dev/null
	sort -n "$T/idle-$kind" | awk -v k="$kind" '{ a[NR] = $0 } END {
		split(a[int((NR + 1) / 2)], m, " ")
		printf "  idle VM container, %-10s %6.1f MiB (QEMU %.1f, virtiofsd %.1f, shim %.1f, monitor %.1f; median of %d)\n", k, m[1] / 1024, m[2] / 1024, m[3] / 1024, m[4] / 1024, m[5] / 1024, NR
		printf "    of QEMU: guest memory touched %.1f, the initramfs file %.1f, TCG code %.1f, the rest %.1f\n", m[6] / 1024, m[7] / 1024, m[9] / 1024, m[8] / 1024
		printf "    without TCG code (KVM has none): %.1f MiB\n", (m[1] - m[9]) / 1024 }'
}
shared_dir="$T/shared"
mkdir -p "$shared_dir"
echo
echo "host memory (Pss) per idle VM container (goal <= 64 MiB; Kata budgets 130-320 MiB a pod):"
idle_pss plain
# The same with TCG's code buffer halved (BERTH_VM_TCG_CODE_MIB: memory
# against a clone's speed).
BERTH_VM_TCG_CODE_MIB=16 idle_pss tcg-16
BERTH_VM_TEMPLATE=0 idle_pss plain-cold
# A VM with a volume boots: virtiofsd needs the guest's memory shared.
idle_pss volume -v "$shared_dir:/data"
