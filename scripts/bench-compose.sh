#!/usr/bin/env bash
# bench-compose.sh: docker compose (scripts/build-compose.sh) against
# `berth serve` and against Debian's dockerd 20.10, side by side in one
# run: `compose up -d --wait` of the compose test's project
# (test/integration/testdata/compose: web, a stand-in database with a
# healthcheck on a named volume, a worker that depends on it being
# healthy; two user networks, bridge networking on both engines) until
# every service runs and the database is healthy, then `compose down -v`;
# interleaved, medians, spread (min-max) and the ratio berth / dockerd.
#
# dockerd runs on its own data root, exec-root, pidfile, socket, config
# and cgroup parent, in a network and mount namespace of its own (its
# bridges and firewall rules never reach the host's; --iptables=false as
# the parity test runs it, which spares dockerd the NAT rules berth
# writes), and is stopped at exit with everything it left.
#   BENCH_COMPOSE_N                 rounds (default 10)
#   BENCH_COMPOSE_HEALTH_INTERVAL   the database's healthcheck interval
#                                   (default 200ms: with the project's 1s
#                                   both engines would wait the same probe)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
N=${BENCH_COMPOSE_N:-10}
export BERTH_DB_HEALTH_INTERVAL=${BENCH_COMPOSE_HEALTH_INTERVAL:-200ms}
if [ "$(id -u)" != 0 ]; then
	echo "bench-compose: needs root" >&2
	exit 1
fi
for cmd in dockerd docker unshare; do
	command -v "$cmd" >/dev/null || { echo "bench-compose: $cmd missing (make deps installs docker.io)" >&2; exit 1; }
done
compose=$(scripts/build-compose.sh)
# A short path: the sockets' must fit a sockaddr_un.
T=$(mktemp -d /tmp/bbc.XXXXXX)
BENCH=bench-compose
# shellcheck source=scripts/bench-lib.sh
. "$here/scripts/bench-lib.sh"
project=$here/test/integration/testdata/compose/compose.yaml
serve_pid= dockerd_pid=
berth() { bin/berth --root "$T/berth" --state "$T/berth-state" "$@"; }
cleanup() {
	set +e
	for sock in "$T/berth.sock" "$T/dockerd.sock"; do
		[ -S "$sock" ] && DOCKER_HOST=unix://$sock "$compose" -f "$project" -p bench down -v -t 1 >/dev/null 2>&1
	done
	stop_private_dockerd
	[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
	berth system reset -f >/dev/null 2>&1
	umount_under "$T"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/mkimage.sh "$T/busybox.tar" >/dev/null
berth load -q -i "$T/busybox.tar" >/dev/null
bin/berth --root "$T/berth" --state "$T/berth-state" serve --docker-socket "$T/berth.sock" >"$T/serve.log" 2>&1 &
serve_pid=$!

# Without iptables: compose's networks then cost dockerd no NAT rules,
# which berth's write (the comparison is not tilted its way).
start_private_dockerd --iptables=false --ip6tables=false --ip-masq=false

on() { local sock=$1; shift; DOCKER_HOST=unix://$sock DOCKER_CONFIG=$T/cli "$@"; }
for sock in "$T/berth.sock" "$T/dockerd.sock"; do
	for _ in $(seq 300); do on "$sock" docker version >/dev/null 2>&1 && break; sleep 0.1; done
	on "$sock" docker version >/dev/null 2>&1 || {
		echo "bench-compose: no engine on $sock" >&2
		tail -5 "$T/serve.log" "$T/dockerd.log" >&2
		exit 1
	}
done
on "$T/dockerd.sock" docker load -q -i "$T/busybox.tar" >/dev/null
dockerd_version=$(on "$T/dockerd.sock" docker version --format '{{.Server.Version}}')

up() { on "$1" "$compose" -f "$project" -p bench up -d --wait; }
down() { on "$1" "$compose" -f "$project" -p bench down -v; }
# One round on each, unmeasured, which also checks that the project
# works on both: the worker reached web and db by name.
for side in berth docker; do
	sock=$T/berth.sock
	[ "$side" = berth ] || sock=$T/dockerd.sock
	up "$sock" >"$T/warm.out" 2>&1 || { echo "bench-compose: compose up on $side failed:" >&2; tail -5 "$T/warm.out" >&2; exit 1; }
	ok=
	for _ in $(seq 100); do
		on "$sock" "$compose" -f "$project" -p bench logs worker 2>/dev/null | grep -q 'web=hello-from-web link=hello-from-web put=OK' && { ok=1; break; }
		sleep 0.1
	done
	[ -n "$ok" ] || { echo "bench-compose: on $side the worker did not reach web and db:" >&2; on "$sock" "$compose" -f "$project" -p bench logs >&2; exit 1; }
	down "$sock" >"$T/warm.out" 2>&1 || { echo "bench-compose: compose down on $side failed:" >&2; tail -5 "$T/warm.out" >&2; exit 1; }
done

: >"$T/results"
for _ in $(seq "$N"); do
	timed berth-up up "$T/berth.sock"
	timed berth-down down "$T/berth.sock"
	timed docker-up up "$T/dockerd.sock"
	timed docker-down down "$T/dockerd.sock"
done

ms() { awk -v s="$(median "$1")" 'BEGIN { printf "%.0f", s * 1000 }'; }
spread() { grep "^$1 " "$T/results" | cut -d' ' -f2 | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f-%.0f", lo * 1000, hi * 1000 }'; }
ratio() { awk -v a="$(median "$1")" -v b="$(median "$2")" 'BEGIN { printf "%.2f", a / b }'; }
echo "bench-compose: docker compose $("$compose" version --short) on a 3-service project (db healthcheck every $BERTH_DB_HEALTH_INTERVAL), $N interleaved rounds, ms median (min-max):"
printf '  %-26s %8s (%s)   dockerd %s: %8s (%s)   berth/dockerd %s\n' \
	"up -d --wait (all healthy)" "$(ms berth-up)" "$(spread berth-up)" "$dockerd_version" "$(ms docker-up)" "$(spread docker-up)" "$(ratio berth-up docker-up)"
printf '  %-26s %8s (%s)   dockerd %s: %8s (%s)   berth/dockerd %s\n' \
	"down -v" "$(ms berth-down)" "$(spread berth-down)" "$dockerd_version" "$(ms docker-down)" "$(spread docker-down)" "$(ratio berth-down docker-down)"
