#!/usr/bin/env bash
# bench-dockerapi.sh: the docker CLI against `berth serve` and against
# Debian's dockerd, side by side in one run: `docker run --rm IMAGE true`
# with the busybox image scripts/mkimage.sh builds loaded into both,
# bridge networking on both, interleaved, medians, spread and ratio; then
# the memory of each daemon at rest and with 50 running containers.
# dockerd runs on its own data root, exec-root, pidfile, socket and cgroup
# parent, in a network and mount namespace of its own (its bridge and
# firewall rules never reach the host's); berth serve on its own root,
# state and socket, with berth's default bridge network.
#   BENCH_DAPI_N         runs of each (default 21)
#   BENCH_DAPI_DETACHED  running containers for the memory figures (default 50)
#   BENCH_DAPI_DOCKER    the docker CLI (default /usr/bin/docker, Debian's)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
N=${BENCH_DAPI_N:-21}
D=${BENCH_DAPI_DETACHED:-50}
DOCKER=${BENCH_DAPI_DOCKER:-/usr/bin/docker}
if [ "$(id -u)" != 0 ]; then
	echo "bench-dockerapi: needs root" >&2
	exit 1
fi
for tool in dockerd unshare "$DOCKER"; do
	command -v "$tool" >/dev/null || { echo "bench-dockerapi: $tool not installed (apt-get install docker.io util-linux)" >&2; exit 1; }
done
# A short path: the sockets' must fit a sockaddr_un.
T=$(mktemp -d /tmp/bdapi.XXXXXX)
serve_pid=
dockerd_pid=
BENCH=bench-dockerapi
# shellcheck source=scripts/bench-lib.sh
. "$here/scripts/bench-lib.sh"
berth() { bin/berth --root "$T/berth" --state "$T/berth-state" "$@"; }
onberth() { DOCKER_CONFIG="$T/cli" "$DOCKER" -H "unix://$T/berth.sock" "$@"; }
ondockerd() { DOCKER_CONFIG="$T/cli" "$DOCKER" -H "unix://$T/dockerd.sock" "$@"; }
cleanup() {
	set +e
	if [ -n "$dockerd_pid" ]; then
		ids=$(ondockerd ps -aq 2>/dev/null)
		# shellcheck disable=SC2086
		[ -z "$ids" ] || ondockerd rm -f $ids >/dev/null 2>&1
	fi
	stop_private_dockerd
	if [ -n "$serve_pid" ]; then
		kill "$serve_pid" 2>/dev/null
		wait "$serve_pid" 2>/dev/null
	fi
	berth system reset -f >/dev/null 2>&1
	umount_under "$T"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

image=berth-demo/busybox:latest
scripts/mkimage.sh "$T/busybox.tar" "$image"
mkdir -p "$T/cli"

berth load -q -i "$T/busybox.tar" >/dev/null
# Not through the function: $! must be serve's own pid.
bin/berth --root "$T/berth" --state "$T/berth-state" serve --docker-socket "$T/berth.sock" >"$T/serve.log" 2>&1 &
serve_pid=$!

start_private_dockerd

for _ in $(seq 300); do onberth version >/dev/null 2>&1 && ondockerd version >/dev/null 2>&1 && break; sleep 0.1; done
onberth version >/dev/null || { echo "bench-dockerapi: berth serve does not answer:" >&2; tail -5 "$T/serve.log" >&2; exit 1; }
ondockerd version >/dev/null || { echo "bench-dockerapi: dockerd does not answer:" >&2; tail -5 "$T/dockerd.log" >&2; exit 1; }
ondockerd load -q -i "$T/busybox.tar" >/dev/null
dversion=$(ondockerd version --format '{{.Server.Version}}')
cversion=$("$DOCKER" version --format '{{.Client.Version}}' 2>/dev/null || true)

# mem PID: "RSS PSS ANON" in kB. Most of a Go daemon's RSS is its
# binary's pages (clean, file-backed, shared with every process of the
# same file); its anonymous memory is what it costs on its own.
mem() {
	echo "$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status") $(pss_of "$1") $(awk '/^RssAnon:/ {print $2}' "/proc/$1/status")"
}
# The daemons' own processes: serve, and dockerd with the containerd it
# started (the shims are per container, counted apart).
dockerd_main=$(cat "$T/dockerd.pid")
containerd_of() { pgrep -P "$dockerd_main" -x containerd | head -1; }

# At rest: after one container has come and gone on each, so that both
# have paged in their run path.
onberth run --rm "$image" true
ondockerd run --rm "$image" true
sleep 1
read -r s_rss0 s_pss0 s_anon0 <<<"$(mem "$serve_pid")"
read -r d_rss0 d_pss0 d_anon0 <<<"$(mem "$dockerd_main")"
ctd=$(containerd_of)
read -r c_rss0 c_pss0 c_anon0 <<<"$(mem "${ctd:-$dockerd_main}")"

: >"$T/results"
for _ in $(seq "$N"); do
	timed berth "$DOCKER" -H "unix://$T/berth.sock" run --rm "$image" true
	timed dockerd "$DOCKER" -H "unix://$T/dockerd.sock" run --rm "$image" true
done

# quantile NAME Q: the Q-quantile (nearest rank) of NAME's seconds, in ms.
quantile() {
	grep "^$1 " "$T/results" | cut -d' ' -f2 | sort -n |
		awk -v q="$2" '{a[NR]=$1} END { i = int(q * (NR - 1) + 0.5) + 1; printf "%.1f", a[i] * 1000 }'
}
b=$(quantile berth 0.5)
d=$(quantile dockerd 0.5)
echo
echo "docker $cversion CLI: run --rm $image true, median of $N interleaved runs (bridge network on both)"
printf '  %-34s %8s ms   (p25 %s, p75 %s, min %s, max %s)\n' \
	"against berth serve" "$b" "$(quantile berth 0.25)" "$(quantile berth 0.75)" "$(quantile berth 0)" "$(quantile berth 1)" \
	"against dockerd $dversion" "$d" "$(quantile dockerd 0.25)" "$(quantile dockerd 0.75)" "$(quantile dockerd 0)" "$(quantile dockerd 1)"
awk -v b="$b" -v d="$d" 'BEGIN { printf "  berth/dockerd %.2f   (goal: <= 0.30)\n", b / d }'

# D running containers on each, started through the API.
for _ in $(seq "$D"); do onberth run -d "$image" sleep 100000 >/dev/null; done
for _ in $(seq "$D"); do ondockerd run -d "$image" sleep 100000 >/dev/null; done
# A listing and an inspect of each, as a client polling them would.
onberth ps -q | xargs "$DOCKER" -H "unix://$T/berth.sock" inspect >/dev/null
ondockerd ps -q | xargs "$DOCKER" -H "unix://$T/dockerd.sock" inspect >/dev/null
sleep 1
n_berth=$(onberth ps -q | wc -l)
n_dockerd=$(ondockerd ps -q | wc -l)
read -r s_rss1 s_pss1 s_anon1 <<<"$(mem "$serve_pid")"
read -r d_rss1 d_pss1 d_anon1 <<<"$(mem "$dockerd_main")"
ctd=$(containerd_of)
read -r c_rss1 c_pss1 c_anon1 <<<"$(mem "${ctd:-$dockerd_main}")"
mapfile -t shims < <(pgrep -f "containerd-shim.*$T/dockerd-exec" || true)
shim_pss=$(pss_of "${shims[@]}")
mapfile -t mons < <(pgrep -x berth-monitor | while read -r p; do grep -qF "$T/berth-state" "/proc/$p/environ" 2>/dev/null && ! parked "$p" && echo "$p"; done)
mon_pss=$(pss_of "${mons[@]}")
# serve's parked monitor and its start child: serve's fixed cost.
mapfile -t spare < <(pgrep -f berth-monitor | while read -r p; do grep -qF "$T/berth-state" "/proc/$p/environ" 2>/dev/null && parked "$p" && echo "$p"; done)
spare_pss=$(pss_of "${spare[@]}")

echo
echo "the daemons' memory (kB): at rest, and with $D running containers (berth $n_berth, dockerd $n_dockerd)"
printf '  %-22s RSS %7s -> %7s   PSS %7s -> %7s   anonymous %7s -> %7s\n' \
	"berth serve" "$s_rss0" "$s_rss1" "$s_pss0" "$s_pss1" "$s_anon0" "$s_anon1" \
	"dockerd" "$d_rss0" "$d_rss1" "$d_pss0" "$d_pss1" "$d_anon0" "$d_anon1" \
	"dockerd's containerd" "$c_rss0" "$c_rss1" "$c_pss0" "$c_pss1" "$c_anon0" "$c_anon1"
printf '  per-container supervision PSS: berth monitors %d kB total (%d), dockerd shims %d kB total (%d)\n' \
	"$mon_pss" "${#mons[@]}" "$shim_pss" "${#shims[@]}"
printf '  berth serve'"'"'s parked monitor and its start child (one, whatever the containers): PSS %d kB\n' "$spare_pss"
awk -v s="$s_pss1" -v d="$d_pss1" -v c="$c_pss1" -v sa="$s_anon1" -v da="$d_anon1" -v ca="$c_anon1" \
	'BEGIN { printf "  serve/(dockerd+containerd) with containers: PSS %.3f, anonymous %.3f\n", s / (d + c), sa / (da + ca) }'
