#!/usr/bin/env bash
# bench-pull.sh: the image-pull benchmark. Builds a 5-layer image (busybox
# plus one gzip layer per directory of BENCH_PULL_DIRS) as an OCI layout,
# pushes it to a private docker-registry on 127.0.0.1, and pulls it into an
# empty store with berth, podman and containerd (ctr, overlayfs
# snapshotter), BENCH_PULL_RUNS times each, with the page cache dropped
# before every pull. The floor is every layer decompressed in parallel to
# /dev/null. Prints medians, min, max and ratios; BENCH_OUT=FILE writes
# them as JSON too. Needs root.
#
#   BENCH_PULL_RUNS   runs per tool (default 3)
#   BENCH_PULL_DIRS   directories, one layer each (default below)
#   BENCH_PULL_LAYOUT where the OCI layout is cached (default .cache/bench-image)
#   BENCH_PULL_TOOLS  subset of "berth podman containerd floor"
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export PATH=/usr/local/go/bin:$PATH GOEXPERIMENT=jsonv2 GOFLAGS=${GOFLAGS:--buildvcs=false}

runs=${BENCH_PULL_RUNS:-3}
dirs=${BENCH_PULL_DIRS:-/usr/local/go /usr/lib/gcc /usr/lib/python3 /usr/bin}
layout=${BENCH_PULL_LAYOUT:-$here/.cache/bench-image}
tools=${BENCH_PULL_TOOLS:-berth podman containerd floor}

if [ "$(id -u)" != 0 ]; then
	echo "bench-pull: needs root (podman/containerd stores, drop_caches)" >&2
	exit 1
fi
for t in docker-registry skopeo podman containerd ctr; do
	command -v "$t" >/dev/null || { echo "bench-pull: $t missing (make deps)" >&2; exit 1; }
done
[ -x bin/berth ] || make build

T=$(mktemp -d /tmp/berth-bench-pull.XXXXXX)
registry_pid= ctd_pid=

BENCH=bench-pull
# shellcheck source=scripts/bench-lib.sh
. "$here/scripts/bench-lib.sh"
stop_pid() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
	stop_pid "$ctd_pid"
	stop_pid "$registry_pid"
	umount_under "$T"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export TMPDIR=$T/tmp
mkdir -p "$TMPDIR"

# podman and skopeo, as root, keep a blob-info cache in
# /var/lib/containers/cache whatever --root says: run them in a private
# mount namespace where /var/lib is an overlay whose writes land in $T.
mkdir -p "$T/varlib/upper" "$T/varlib/work"
isolated() {
	unshare -m --propagation private sh -c \
		'mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$1/upper,workdir=$1/work" /var/lib && shift && exec "$@"' \
		sh "$T/varlib" "$@"
}

go build -o "$T/pullimage" ./test/bench/pullimage
pi=$T/pullimage

# shellcheck disable=SC2086
"$pi" build -out "$layout" $dirs

# The registry, on a free loopback port.
port=$("$pi" freeport)
reg=127.0.0.1:$port
mkdir -p "$T/registry"
cat >"$T/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $T/registry
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $reg
EOF
docker-registry serve "$T/registry.yml" >"$T/registry.log" 2>&1 &
registry_pid=$!
"$pi" wait -url "http://$reg/v2/" -timeout 30s || { cat "$T/registry.log" >&2; exit 1; }
echo "bench-pull: registry on $reg, pushing"
isolated skopeo copy -q --dest-tls-verify=false "oci:$layout:latest" "docker://$reg/bench:latest"
"$pi" verify -layout "$layout" -registry "$reg" -repo bench -tag latest
ref=$reg/bench:latest

dropped=no
if sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
	dropped=yes
else
	echo "bench-pull: cannot write /proc/sys/vm/drop_caches: pulls run with a warm page cache" >&2
fi
cold() {
	sync
	[ "$dropped" = yes ] && echo 3 >/proc/sys/vm/drop_caches
	return 0
}

# podman: overlay if this host can, else vfs.
podman_driver=overlay
if ! isolated podman --root "$T/probe" --runroot "$T/probe-run" --storage-driver overlay info >"$T/probe.log" 2>&1; then
	echo "bench-pull: podman overlay driver unusable here, using vfs:" >&2
	tail -3 "$T/probe.log" >&2
	podman_driver=vfs
fi
umount_under "$T/probe"
umount_under "$T/probe-run"
rm -rf "$T/probe" "$T/probe-run"

containerd_conf "$T/containerd.toml"

results=$T/results
: >"$results"
first_store=()

# timed TOOL STOREDIR CMD...: cold cache, run, record the seconds (or the failure).
timed() {
	local tool=$1 store=$2 t0 t1
	shift 2
	cold
	t0=$(now)
	if "$@" >"$T/$tool.out" 2>&1; then
		t1=$(now)
		echo "$tool $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" >>"$results"
		printf '  %-11s %ss\n' "$tool" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
		if [[ " ${first_store[*]} " != *" $tool "* ]] && [ -n "$store" ]; then
			first_store+=("$tool")
			echo "store $tool $(du -sbx "$store" | cut -f1)" >>"$results"
		fi
	else
		echo "  $tool FAILED: $*" >&2
		tail -5 "$T/$tool.out" >&2
		echo "note $tool failed: $(tail -1 "$T/$tool.out" | tr -s '[:space:]' ' ' | cut -c1-200)" >>"$results"
	fi
}

run_berth() {
	timed berth "$T/berth" bin/berth --root "$T/berth" --state "$T/berth-state" pull -q "$ref"
	umount_under "$T/berth"
	rm -rf "$T/berth" "$T/berth-state"
}
run_podman() {
	timed podman "$T/podman" isolated podman --root "$T/podman" --runroot "$T/podman-run" --tmpdir "$T/podman-tmp" \
		--storage-driver "$podman_driver" --events-backend file --cgroup-manager cgroupfs \
		pull --tls-verify=false -q "$ref"
	umount_under "$T/podman"
	umount_under "$T/podman-run"
	rm -rf "$T/podman" "$T/podman-run" "$T/podman-tmp"
}
run_containerd() {
	containerd --config "$T/containerd.toml" --root "$T/ctd" --state "$T/ctd-state" --address "$T/ctd.sock" >"$T/containerd.log" 2>&1 &
	ctd_pid=$!
	for _ in $(seq 100); do
		ctr --address "$T/ctd.sock" version >/dev/null 2>&1 && break
		sleep 0.1
	done
	timed containerd "$T/ctd" ctr --address "$T/ctd.sock" image pull --plain-http "$ref"
	stop_pid "$ctd_pid"
	ctd_pid=
	umount_under "$T/ctd"
	umount_under "$T/ctd-state"
	rm -rf "$T/ctd" "$T/ctd-state" "$T/ctd-opt"
}
run_floor() {
	cold
	if "$pi" floor -layout "$layout" >"$T/floor.out" 2>&1; then
		awk '$1 == "floor_parallel_s" { print "floor", $2 } $1 == "floor_igzip_parallel_s" { print "floor-igzip", $2 } $1 == "largest_layer_s" { print "largest-layer", $2 }' "$T/floor.out" >>"$results"
		printf '  %-11s %ss (largest layer alone, warm: %ss)\n' floor "$(awk '$1 == "floor_parallel_s" { print $2 }' "$T/floor.out")" \
			"$(awk '$1 == "largest_layer_s" { print $2 }' "$T/floor.out")"
	else
		echo "  floor FAILED" >&2
		cat "$T/floor.out" >&2
	fi
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
read -r -a order <<<"$tools"
for ((i = 0; i < runs; i++)); do
	echo "bench-pull: run $((i + 1))/$runs"
	# Rotate the order so that no tool always runs first or last.
	for ((j = 0; j < ${#order[@]}; j++)); do
		t=${order[(i + j) % ${#order[@]}]}
		"run_$t"
	done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

echo "note podman storage driver $podman_driver" >>"$results"
echo "note largest-layer one layer alone, page cache warm" >>"$results"
echo "note floor all layers in parallel, klauspost gzip to /dev/null" >>"$results"
echo "note floor-igzip all layers in parallel, igzip -dc to /dev/null (berth's decoder when isal is installed)" >>"$results"
echo
echo "bench-pull: $runs run(s) per tool, $(nproc) CPUs, page cache dropped before each pull: $dropped;" \
	"load average at start $load_start, at end $load_end"
"$pi" report -results "$results" -layout "$layout" ${BENCH_OUT:+-json "$BENCH_OUT"} \
	-meta "runs=$runs,cpus=$(nproc),drop_caches=$dropped,podman_driver=$podman_driver,load_start=$load_start,load_end=$load_end"

# Issue acceptance: the tree berth unpacks for this image is the one umoci
# unpacks (paths, types, modes, owners, sizes, link targets, content
# hashes), and a container's export is podman's, compared by tests on this
# very image.
if [ "${BENCH_PULL_COMPARE:-1}" = 1 ]; then
	echo
	echo "bench-pull: comparing berth's unpacked tree of this image with umoci's, and its export with podman's"
	if BERTH_BIN="$here/bin/berth" BERTH_TEST_BENCH_LAYOUT="$layout" \
		go test -count=1 -timeout 20m -run '^(TestUnpackMatchesUmoci|TestExportMatchesPodman)$' -v ./test/integration/ >"$T/compare.log" 2>&1; then
		grep -E "entries identical|entries compared" "$T/compare.log" | sed 's/^ *//'
	else
		grep -vE "level=info|HTTP/1.1" "$T/compare.log" | tail -40 >&2
		echo "bench-pull: berth's tree differs from umoci's, or its export from podman's" >&2
		exit 1
	fi
fi
