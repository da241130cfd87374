#!/usr/bin/env bash
# bench-net.sh: what berth's networking costs.
#  1. The latency `run --rm IMAGE true` adds on the default bridge network
#     over --network none: interleaved runs, medians.
#  2. Container-to-container throughput over the default bridge against
#     the host's loopback, the same tool (busybox nc fed by dd) on both.
#   BENCH_NET_N      runs of each in (1) (default 21)
#   BENCH_NET_MB     MiB per transfer in (2) (default 1024)
#   BENCH_NET_REPS   transfers of each kind in (2) (default 3)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
N=${BENCH_NET_N:-21}
MB=${BENCH_NET_MB:-1024}
REPS=${BENCH_NET_REPS:-3}
[ "$(id -u)" = 0 ] || { echo "bench-net: needs root" >&2; exit 1; }
T=$(mktemp -d /tmp/berth-bench-net.XXXXXX)
BENCH=bench-net
# shellcheck source=scripts/bench-lib.sh
. "$here/scripts/bench-lib.sh"
berth_in_T
image=berth-demo/busybox:latest
scripts/mkimage.sh "$T/busybox.tar" "$image"
berth load -q -i "$T/busybox.tar" >/dev/null
: >"$T/results"
berth run --rm "$image" true >/dev/null # the default network is made on first use
berth run --rm --network none "$image" true >/dev/null
for _ in $(seq "$N"); do
	timed none berth run --rm --network none "$image" true
	timed bridge berth run --rm "$image" true
done
n=$(median none)
b=$(median bridge)
echo
echo "run --rm $image true, median of $N interleaved runs:"
awk -v n="$n" -v b="$b" 'BEGIN { printf "  --network none   %7.1f ms\n  default bridge   %7.1f ms\n  added by the network: %.1f ms (%.2fx)\n", n * 1000, b * 1000, (b - n) * 1000, b / n }'

# Throughput: the same busybox dd and nc on both paths, timed around the
# whole pipeline. Each transfer gets a fresh listener (busybox nc serves one
# connection); its stdin is held open so that it does not close first.
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
: >"$T/rates"
berth run -d --name cli "$image" sleep 100000 >/dev/null
# The same over a user network with a loopback-sized MTU: busybox nc
# writes in small pieces, so at MTU 1500 the per-segment cost dominates.
berth network create -o mtu=65520 benchjumbo >/dev/null
berth run -d --name clij --network benchjumbo "$image" sleep 100000 >/dev/null
for r in $(seq "$REPS"); do
	port=$((15000 + r))
	rm -f "$T/hold"
	mkfifo "$T/hold"
	/bin/busybox nc -l -p "$port" <"$T/hold" >/dev/null 2>&1 &
	srv=$!
	exec 3>"$T/hold"
	sleep 0.3
	t0=$(now)
	/bin/busybox dd if=/dev/zero bs=1M count="$MB" 2>/dev/null | /bin/busybox nc 127.0.0.1 "$port"
	t1=$(now)
	exec 3>&-
	wait "$srv" 2>/dev/null || true
	echo "loopback $(awk -v s="$(secs "$t0" "$t1")" -v mb="$MB" 'BEGIN { printf "%.0f", mb * 1048576 / s / 1e6 }')" >>"$T/rates"

	berth run -d --name "srv$r" "$image" sh -c 'mkfifo /hold; nc -l -p 5000 </hold >/dev/null & exec 3>/hold; wait' >/dev/null
	ip=$(berth inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "srv$r")
	sleep 0.3
	t0=$(now)
	berth exec cli sh -c "dd if=/dev/zero bs=1M count=$MB 2>/dev/null | nc $ip 5000"
	t1=$(now)
	echo "bridge $(awk -v s="$(secs "$t0" "$t1")" -v mb="$MB" 'BEGIN { printf "%.0f", mb * 1048576 / s / 1e6 }')" >>"$T/rates"
	berth rm -f "srv$r" >/dev/null

	berth run -d --name "srvj$r" --network benchjumbo "$image" sh -c 'mkfifo /hold; nc -l -p 5000 </hold >/dev/null & exec 3>/hold; wait' >/dev/null
	ip=$(berth inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "srvj$r")
	sleep 0.3
	t0=$(now)
	berth exec clij sh -c "dd if=/dev/zero bs=1M count=$MB 2>/dev/null | nc $ip 5000"
	t1=$(now)
	echo "jumbo $(awk -v s="$(secs "$t0" "$t1")" -v mb="$MB" 'BEGIN { printf "%.0f", mb * 1048576 / s / 1e6 }')" >>"$T/rates"
	berth rm -f "srvj$r" >/dev/null
done
berth rm -f cli clij >/dev/null
berth network rm benchjumbo >/dev/null
med() { grep "^$1 " "$T/rates" | cut -d' ' -f2 | sort -n | awk '{a[NR]=$1} END { print a[int((NR+1)/2)] }'; }
lo=$(med loopback)
br=$(med bridge)
jb=$(med jumbo)
echo
echo "throughput, ${MB} MiB per transfer, median of $REPS (busybox dd | nc on both paths):"
printf '  host loopback               %6s MB/s\n  container to container      %6s MB/s (default bridge, MTU 1500)\n  container to container      %6s MB/s (a bridge network with MTU 65520)\n' "$lo" "$br" "$jb"
awk -v a="$br" -v j="$jb" -v b="$lo" 'BEGIN { printf "  bridge/loopback: %.2f (MTU 1500), %.2f (MTU 65520)\n", a / b, j / b }'
