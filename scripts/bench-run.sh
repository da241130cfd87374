#!/usr/bin/env bash
# bench-run.sh: `run --rm IMAGE true` with a cached busybox image (the one
# scripts/mkimage.sh builds), berth side by side with containerd's ctr (its
# daemon running) and podman (--runtime runc --network none, ulimits the
# host allows), interleaved, medians and ratios; then 50 detached sleeping
# containers, berth against podman: wall time and the supervision's PSS
# (berth's monitors, podman's conmons).
#   BENCH_RUN_N   runs of each tool (default 21)
#   BENCH_RUN_DETACHED  containers in the detached test (default 50)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
N=${BENCH_RUN_N:-21}
D=${BENCH_RUN_DETACHED:-50}
if [ "$(id -u)" != 0 ]; then
	echo "bench-run: needs root" >&2
	exit 1
fi
T=$(mktemp -d /tmp/berth-bench-run.XXXXXX)
ctd_pid=
BENCH=bench-run
# shellcheck source=scripts/bench-lib.sh
. "$here/scripts/bench-lib.sh"
cleanup() {
	set +e
	bin/berth --root "$T/berth" --state "$T/berth-state" system reset -f >/dev/null 2>&1
	pod rm -af >/dev/null 2>&1
	[ -n "$ctd_pid" ] && kill "$ctd_pid" 2>/dev/null && wait "$ctd_pid" 2>/dev/null
	for d in "$T"/*; do umount_under "$d"; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

image=berth-demo/busybox:latest
scripts/mkimage.sh "$T/busybox.tar" "$image"

berth() { bin/berth --root "$T/berth" --state "$T/berth-state" "$@"; }
berth load -q -i "$T/busybox.tar" >/dev/null

podman_driver=overlay
if ! podman --root "$T/probe" --runroot "$T/probe-run" --storage-driver overlay info >"$T/probe.log" 2>&1; then
	podman_driver=vfs
fi
umount_under "$T/probe"
umount_under "$T/probe-run"
pod() {
	podman --root "$T/podman" --runroot "$T/podman-run" --tmpdir "$T/podman-tmp" --storage-driver "$podman_driver" \
		--events-backend file --cgroup-manager cgroupfs "$@"
}
pod load -q -i "$T/busybox.tar" >/dev/null
podman_run=(run --rm --network none --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "localhost/$image" true)
if ! pod "${podman_run[@]}" >"$T/podman.err" 2>&1; then
	# Older podman names a loaded docker-archive image without localhost/.
	podman_run=(run --rm --network none --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$image" true)
	pod "${podman_run[@]}" >"$T/podman.err" 2>&1 || { echo "bench-run: podman cannot run the image:" >&2; tail -3 "$T/podman.err" >&2; exit 1; }
fi

containerd_conf "$T/containerd.toml"
containerd --config "$T/containerd.toml" >"$T/containerd.log" 2>&1 &
ctd_pid=$!
for _ in $(seq 100); do ctr --address "$T/ctd.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
ctrc() { ctr --address "$T/ctd.sock" -n bench "$@"; }
ctrc images import "$T/busybox.tar" >/dev/null
ctr_image=docker.io/$image

: >"$T/results"
ms() { awk -v s="$(median "$1")" 'BEGIN { printf "%.1f", s * 1000 }'; }
# Warm up each path once, then interleave.
berth run --rm --network none "$image" true
ctrc run --rm "$ctr_image" warm true
for i in $(seq "$N"); do
	timed berth bin/berth --root "$T/berth" --state "$T/berth-state" run --rm --network none "$image" true
	timed ctr ctr --address "$T/ctd.sock" -n bench run --rm "$ctr_image" "bench-$i" true
	timed podman pod "${podman_run[@]}"
done
b=$(ms berth)
c=$(ms ctr)
p=$(ms podman)
echo
echo "run --rm $image true: median of $N interleaved runs"
printf '  %-26s %8s ms\n' "berth run --rm" "$b" "ctr run --rm (containerd)" "$c" "podman run --rm (runc)" "$p"
awk -v b="$b" -v c="$c" -v p="$p" 'BEGIN { printf "  berth/ctr %.2f   berth/podman %.2f   (target: berth/ctr <= 0.40)\n", b / c, b / p }'

# The runtime's share of berth's run --rm: BERTH_TRACE's phases of the
# same command (one timeline for the CLI, the monitor's child and the
# runtime): the runtime's create and start (create -> runtime-started, in
# the monitor's child) and its delete at the exit (cleanup ->
# runtime-deleted), against the command's wall time; medians of $N.
for i in $(seq "$N"); do
	s=$(now)
	BERTH_TRACE=1 bin/berth --root "$T/berth" --state "$T/berth-state" run --rm --network none "$image" true 2>"$T/trace-$i" >/dev/null
	e=$(now)
	awk -v wall="$(awk -v a="$s" -v b="$e" 'BEGIN { print (b - a) * 1000 }')" '
		$1 == "trace" { t[$4] = $3; at[$2 " " $4] = $3; if ($4 == "runtime-started") child = $2 }
		END {
			# The runtime'"'"'s create is the one of the process that started it.
			rt = (t["runtime-started"] - at[child " create"]) + (t["runtime-deleted"] - t["cleanup"])
			if (rt > 0 && rt < wall) printf "%.3f %.3f %.3f\n", rt, wall, rt / wall
		}' "$T/trace-$i" >>"$T/shares"
done
# Each column's median (sort, not gawk's asort: Debian's awk is mawk).
n=$(wc -l <"$T/shares")
if [ "$n" -eq 0 ]; then
	echo "  the runtime's share: no traced run"
else
	col_median() { cut -d' ' -f"$1" "$T/shares" | sort -g | sed -n "$(((n + 1) / 2))p"; }
	awk -v n="$n" -v rt="$(col_median 1)" -v wall="$(col_median 2)" -v sh="$(col_median 3)" 'BEGIN {
		printf "  the runtime'"'"'s share of berth run --rm (create and start, delete; BERTH_TRACE, median of %d): %.1f of %.1f ms, %.0f%%\n", n, rt, wall, sh * 100 }'
fi

# 50 detached sleeping containers: wall time of the run -d loop and the
# PSS of what supervises them.
t0=$(now)
for i in $(seq "$D"); do berth run -d --network none "$image" sleep 100000 >/dev/null; done
t1=$(now)
sleep 1
mapfile -t mons < <(pgrep -x berth-monitor | while read -r p; do grep -qF "$T/berth-state" "/proc/$p/environ" 2>/dev/null && echo "$p"; done)
bpss=$(pss_of "${mons[@]}")
bwall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
t0=$(now)
for i in $(seq "$D"); do pod run -d --network none --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "${podman_run[-2]}" sleep 100000 >/dev/null; done
t1=$(now)
sleep 1
mapfile -t cons < <(pgrep -x conmon | while read -r p; do grep -qF "$T/podman" "/proc/$p/cmdline" 2>/dev/null && echo "$p"; done)
ppss=$(pss_of "${cons[@]}")
pwall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
echo
echo "$D detached sleeping containers (run -d in a loop):"
printf '  berth:  %6ss wall, %d monitors, supervision PSS %d kB total, %.2f MB per container\n' "$bwall" "${#mons[@]}" "$bpss" "$(awk -v a="$bpss" -v n="$D" 'BEGIN { print a / n / 1024 }')"
printf '  podman: %6ss wall, %d conmons, supervision PSS %d kB total, %.2f MB per container\n' "$pwall" "${#cons[@]}" "$ppss" "$(awk -v a="$ppss" -v n="$D" 'BEGIN { print a / n / 1024 }')"
awk -v bw="$bwall" -v pw="$pwall" -v bp="$bpss" -v pp="$ppss" 'BEGIN { printf "  berth/podman: wall %.2f, supervision PSS %.2f   (target: <= 1.0 MB per container)\n", bw / pw, bp / pp }'
