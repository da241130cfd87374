#!/usr/bin/env bash
# bench-health.sh: the cost of healthchecks, which berth's monitors run
# with no daemon: 50 detached containers with a 1 s interval against the
# same 50 without, as host CPU % (all CPUs, /proc/stat) over a window, and
# the monitors' PSS. podman's healthchecks need systemd timers (none
# here) and docker's need its daemon: no peer runs them the same way.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
T=$(mktemp -d /tmp/berth-bench-health.XXXXXX)
BENCH=bench-health
# shellcheck source=scripts/bench-lib.sh
. "$here/scripts/bench-lib.sh"
berth_in_T
N=${BENCH_HEALTH_CONTAINERS:-50}
WINDOW=${BENCH_HEALTH_WINDOW:-20}
scripts/mkimage.sh "$T/busybox.tar" >/dev/null
berth load -q -i "$T/busybox.tar" >/dev/null

# busy%: the share of all CPUs' time not idle over WINDOW seconds.
busy() {
	local a b
	a=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8, $5+$6}' /proc/stat)
	sleep "$WINDOW"
	b=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8, $5+$6}' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[1] - x[1]; i = y[2] - x[2]; printf "%.2f", (t - i) * 100 / t }'
}
monitors() { pgrep -f "^berth-monitor " | while read -r p; do grep -qz "$T/state" "/proc/$p/environ" 2>/dev/null && echo "$p"; done; }

for i in $(seq "$N"); do berth run -d --network none --name "plain$i" berth-demo/busybox sleep 100000 >/dev/null; done
sleep 3
plain=$(busy)
mapfile -t mons < <(monitors)
plain_pss=$(pss_of "${mons[@]}")
berth rm -f $(berth ps -aq) >/dev/null

for i in $(seq "$N"); do
	berth run -d --network none --name "hc$i" --health-cmd true --health-interval 1s berth-demo/busybox sleep 100000 >/dev/null
done
sleep 5
checked=$(busy)
mapfile -t mons < <(monitors)
checked_pss=$(pss_of "${mons[@]}")
healthy=$(berth ps -q --filter health=healthy | wc -l)
probes=$(berth inspect -f '{{len .State.Health.Log}}' hc1)

echo "bench-health: $N containers, host CPU (all $(nproc) CPUs) over one ${WINDOW} s window each:"
printf '  without healthchecks:        %6s%% CPU, monitors PSS %d kB (%.2f MB per container)\n' "$plain" "$plain_pss" "$(awk -v a="$plain_pss" -v n="$N" 'BEGIN { print a / n / 1024 }')"
printf '  healthcheck every 1 s:       %6s%% CPU, monitors PSS %d kB (%.2f MB per container), %d healthy, %d results kept\n' "$checked" "$checked_pss" "$(awk -v a="$checked_pss" -v n="$N" 'BEGIN { print a / n / 1024 }')" "$healthy" "$probes"
awk -v a="$plain" -v b="$checked" -v n="$N" 'BEGIN { printf "  cost: %.2f%% of the host CPU for %d probes a second (%.3f%% per probe per second)\n", b - a, n, (b - a) / n }'
