#!/usr/bin/env bash
# bench-cri.sh: berth serve's CRI against containerd 1.6's CRI plugin, the
# same CNI plugins (bridge, host-local, portmap, loopback) and the same
# busybox image, through crictl:
#   - pod start: RunPodSandbox + CreateContainer + StartContainer, median
#     of $BENCH_CRI_N (21), interleaved, berth on its default network and
#     again (a second serve, "berth cni") on the node's CNI configuration
#     (--pod-network cni): containerd's own conflist, the same file, so
#     the same plugins with the same rules per pod (the bridge's ipMasq
#     runs iptables at each ADD and DEL; berth's network has its rules
#     per network). Through crictl, as three crictl
#     processes (runp, create, start) and as one (crictl run, the same
#     three calls); and through one kept gRPC connection as the kubelet
#     calls them (test/bench/cripod, with each call's median). Each crictl
#     process costs about 20 ms of its own (its start, its dial, the
#     Version call that validates the endpoint) against either runtime.
#     Both serves keep a warm network namespace for the next pod (serve
#     --warm-pod-network, the default): made in the background after a
#     pod is made, so each start is after a 0.3 s pause, in which that
#     spare (made 150 ms after the take) is ready before the next
#     runtime's start;
#   - memory per pod with $BENCH_CRI_PODS (50) pods running a sleeping
#     container: PSS of everything the runtime runs besides the
#     containers' own processes (berth: serve, the monitors, pod reapers;
#     containerd: containerd itself, its shims, the pause processes),
#     divided by the number of pods;
#   - $BENCH_CRI_PODS concurrent RunPodSandbox calls: all must succeed.
# Both run on roots under one temp directory; nothing of the host's is used
# but the CNI plugin binaries.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
BENCH=bench-cri
N=${BENCH_CRI_N:-21}
PODS=${BENCH_CRI_PODS:-50}
T=$(mktemp -d /tmp/berth-bench-cri.XXXXXX)
. scripts/bench-lib.sh
crictl_bin=$here/.cache/critools/bin/crictl
[ -x "$crictl_bin" ] || scripts/build-critools.sh >/dev/null

ctd_pid=
serve_pid=
serve_cni_pid=
berth() { bin/berth --root "$T/root" --state "$T/state" "$@"; }
berth_cni() { bin/berth --root "$T/root-cni" --state "$T/state-cni" "$@"; }
cleanup() {
	set +e
	for sock in "$T/berth.sock" "$T/berth-cni.sock" "$T/ctd.sock"; do
		[ -S "$sock" ] || continue
		for p in $(cr "$sock" pods -q 2>/dev/null); do
			cr "$sock" stopp "$p" >/dev/null 2>&1
			cr "$sock" rmp -f "$p" >/dev/null 2>&1
		done
	done
	[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
	[ -n "$serve_cni_pid" ] && kill "$serve_cni_pid" 2>/dev/null && wait "$serve_cni_pid" 2>/dev/null
	[ -n "$ctd_pid" ] && kill "$ctd_pid" 2>/dev/null && wait "$ctd_pid" 2>/dev/null
	berth system reset -f >/dev/null 2>&1
	berth_cni system reset -f >/dev/null 2>&1
	ip link del bcri0 2>/dev/null
	iptables-save 2>/dev/null | grep -q "bench-cri" && iptables-save | grep -v "bench-cri" | iptables-restore 2>/dev/null
	umount_under "$T"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cr() {
	local sock=$1
	shift
	"$crictl_bin" --config /dev/null --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" --timeout 120s "$@"
}

# The images: busybox, and a pause stand-in for containerd's sandbox
# (busybox sleeping; berth has no pause container).
scripts/mkimage.sh "$T/busybox.tar" berth-demo/busybox:latest >/dev/null
MKIMAGE_CMD='["sh","-c","trap \"exit 0\" TERM INT; while :; do sleep 3600 & wait; done"]' scripts/mkimage.sh "$T/pause.tar" berth-bench/pause:latest >/dev/null
image=docker.io/berth-demo/busybox:latest

# containerd with its CRI plugin, on its own root, state and CNI config.
mkdir -p "$T/cni" "$T/pods"
cat >"$T/cni/10-bench.conflist" <<CNI
{"cniVersion":"1.0.0","name":"bench-cri","plugins":[
 {"type":"bridge","bridge":"bcri0","isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.123.0.0/16"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":"$T/cni-ipam"}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
CNI
cat >"$T/containerd.toml" <<CONF
version = 2
root = "$T/ctd"
state = "$T/ctd-state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$T/ctd.sock"
[ttrpc]
  address = "$T/ctd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$T/ctd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/berth-bench/pause:latest"
  enable_selinux = false
  # This host denies a negative oom_score_adj (no CAP_SYS_RESOURCE), which
  # the pause container gets: clamp to containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$T/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
CONF
containerd --config "$T/containerd.toml" >"$T/containerd.log" 2>&1 &
ctd_pid=$!
for _ in $(seq 100); do ctr --address "$T/ctd.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
for tarball in busybox pause; do
	ctr --address "$T/ctd.sock" -n k8s.io images import "$T/$tarball.tar" >/dev/null
done

# berth serve's CRI on its own root and state.
berth load -q -i "$T/busybox.tar" >/dev/null
bin/berth --root "$T/root" --state "$T/state" serve --cri-socket "$T/berth.sock" >"$T/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do cr "$T/berth.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
# And on the node's CNI configuration: containerd's conflist.
berth_cni load -q -i "$T/busybox.tar" >/dev/null
bin/berth --root "$T/root-cni" --state "$T/state-cni" serve --cri-socket "$T/berth-cni.sock" --pod-network cni --cni-conf-dir "$T/cni" >"$T/serve-cni.log" 2>&1 &
serve_cni_pid=$!
for _ in $(seq 100); do cr "$T/berth-cni.sock" version >/dev/null 2>&1 && break; sleep 0.1; done

# pod_json NAME, ctr_json: the kubelet's usual shapes (PID per container).
pod_json() {
	printf '{"metadata":{"name":"%s","namespace":"bench","uid":"uid-%s","attempt":0},"log_directory":"%s/pods/%s","linux":{"security_context":{"namespace_options":{"pid":1}}}}\n' "$1" "$1" "$T" "$1" >"$T/pod-$1.json"
	mkdir -p "$T/pods/$1"
}
printf '{"metadata":{"name":"sleeper"},"image":{"image":"%s"},"command":["sleep","3600"],"log_path":"sleeper.log","linux":{"security_context":{"namespace_options":{"pid":1}}}}\n' "$image" >"$T/ctr.json"

# pod_start SOCK NAME: RunPodSandbox, CreateContainer, StartContainer.
pod_start() {
	local sock=$1 name=$2 id cid
	id=$(cr "$sock" runp "$T/pod-$name.json")
	cid=$(cr "$sock" create "$id" "$T/ctr.json" "$T/pod-$name.json")
	cr "$sock" start "$cid" >/dev/null
}
pods_down() {
	local sock=$1 p
	for p in $(cr "$sock" pods -q); do
		cr "$sock" stopp "$p" >/dev/null
		cr "$sock" rmp "$p" >/dev/null
	done
}

: >"$T/results"
ms() { awk -v s="$(median "$1")" 'BEGIN { printf "%.1f", s * 1000 }'; }
pod_json warm
pod_start "$T/berth.sock" warm && pods_down "$T/berth.sock"
pod_start "$T/berth-cni.sock" warm && pods_down "$T/berth-cni.sock"
pod_start "$T/ctd.sock" warm && pods_down "$T/ctd.sock"
# Interleaved, each round in the other order, each start after a pause:
# a runtime's teardown that goes on in the background (containerd's
# shims exit after StopPodSandbox returns) must not fall on the other's
# start.
round() { # round I KIND: a pod start of KIND (pod_start, pod_run) on each
	local i=$1 kind=$2 suffix= sides side
	[ "$kind" = pod_run ] && suffix=-run
	case $((i % 3)) in
	0) sides="berth berth-cni containerd" ;;
	1) sides="containerd berth berth-cni" ;;
	2) sides="berth-cni containerd berth" ;;
	esac
	for side in $sides; do
		sleep 0.3
		case $side in
		berth) timed "berth$suffix" "$kind" "$T/berth.sock" "$3$i" ;;
		berth-cni) timed "berth-cni$suffix" "$kind" "$T/berth-cni.sock" "$3$i" ;;
		containerd) timed "containerd$suffix" "$kind" "$T/ctd.sock" "$3$i" ;;
		esac
	done
	pods_down "$T/berth.sock"
	pods_down "$T/berth-cni.sock"
	pods_down "$T/ctd.sock"
}
for i in $(seq "$N"); do
	pod_json "p$i"
	round "$i" pod_start p
done
# The same three calls from one crictl process: `crictl run` (its image
# present: --no-pull).
pod_run() {
	cr "$1" run --no-pull "$T/ctr.json" "$T/pod-$2.json" >/dev/null
}
for i in $(seq "$N"); do
	pod_json "r$i"
	round "$i" pod_run r
done
b=$(ms berth)
bc=$(ms berth-cni)
c=$(ms containerd)
br=$(ms berth-run)
bcr=$(ms berth-cni-run)
crun=$(ms containerd-run)
echo
echo "CRI pod start (RunPodSandbox + CreateContainer + StartContainer through crictl), median of $N, interleaved"
echo "(berth's pods take the warm network namespace serve keeps: --warm-pod-network):"
echo " three crictl processes (runp, create, start):"
printf '  %-44s %8s ms\n' "berth serve (its default network)" "$b" "berth serve (--pod-network cni, containerd's conflist)" "$bc" "containerd 1.6 (CRI plugin)" "$c"
awk -v b="$b" -v bc="$bc" -v c="$c" 'BEGIN { printf "  berth/containerd: %.2fx; with the same conflist: %.2fx\n", b / c, bc / c }'
echo " one crictl process (crictl run --no-pull):"
printf '  %-44s %8s ms\n' "berth serve (its default network)" "$br" "berth serve (--pod-network cni, containerd's conflist)" "$bcr" "containerd 1.6 (CRI plugin)" "$crun"
awk -v b="$br" -v bc="$bcr" -v c="$crun" 'BEGIN { printf "  berth/containerd: %.2fx; with the same conflist: %.2fx (goal <= 0.3x)\n", b / c, bc / c }'
# The same pod start as the kubelet makes it: one gRPC connection kept
# open (crictl is a new process and connection for each of the three
# calls, the same ~20 ms each against both runtimes).
echo
go build -o "$T/cripod" ./test/bench/cripod
"$T/cripod" -n "$N" -image "$image" -logdir "$T/cripod-logs" "berth serve=unix://$T/berth.sock" "berth serve, CNI conflist=unix://$T/berth-cni.sock" "containerd 1.6 (CRI plugin)=unix://$T/ctd.sock"

# Memory per pod, $PODS pods each running a sleeping container.
mem() {
	local sock=$1 i
	for i in $(seq "$PODS"); do
		pod_json "m$i"
		pod_start "$sock" "m$i"
	done
	sleep 2
}
serve_idle_kb=$(pss_of "$serve_pid")
ctd_idle_kb=$(pss_of "$ctd_pid")
mem "$T/berth.sock"
# ours_named NAME: the processes named NAME whose environment names $T.
# serve's parked monitor and its start child are left out: one per serve,
# whatever the pods (reported apart).
ours_named() {
	local p
	for p in $(pgrep -f "$1" || true); do
		grep -qa "$T/state" "/proc/$p/environ" 2>/dev/null && ! parked "$p" && echo "$p"
	done
	return 0
}
spare_pids=$(for p in $(pgrep -f berth-monitor || true); do grep -qa "$T/state" "/proc/$p/environ" 2>/dev/null && parked "$p" && echo "$p"; done; true)
# shellcheck disable=SC2086
spare_kb=$(pss_of $spare_pids)
berth_pids="$serve_pid $(ours_named berth-monitor) $(ours_named berth-pod-reaper) $spare_pids"
berth_kb=$(pss_of $berth_pids)
monitors_kb=$(pss_of $(ours_named berth-monitor))
serve_kb=$(pss_of "$serve_pid")
pods_down "$T/berth.sock"
mem "$T/ctd.sock"
shim_pids=$(pgrep -f "containerd-shim-runc-v2 .*-address $T/ctd.sock" || true)
pause_pids=$(for s in $shim_pids; do pgrep -P "$s" || true; done | while read -r p; do tr '\0' ' ' <"/proc/$p/cmdline" | grep -q "while :; do sleep 3600" && echo "$p"; done || true)
ctd_kb=$(pss_of "$ctd_pid" $shim_pids $pause_pids)
shim_kb=$(pss_of $shim_pids $pause_pids)
pods_down "$T/ctd.sock"
echo
echo "Memory per pod at $PODS running pods (PSS, the containers' own processes excluded):"
awk -v b="$berth_kb" -v c="$ctd_kb" -v s="$shim_kb" -v n="$PODS" -v m="$monitors_kb" -v sv="$serve_kb" -v si="$serve_idle_kb" -v ci="$ctd_idle_kb" -v sp="$spare_kb" 'BEGIN {
	printf "  %-48s %8.2f MB\n", "berth: all of it (serve, monitors, reapers) / pods", b / n / 1024
	printf "  %-48s %8.2f MB\n", "  the monitors / pods", m / n / 1024
	printf "  %-48s %8.2f MB\n", "  serve growth over its idle PSS / pods", (sv - si) / n / 1024
	printf "  %-48s %8.2f MB\n", "containerd: all of it (containerd, shims, pause) / pods", c / n / 1024
	printf "  %-48s %8.2f MB\n", "  the shims and pause processes / pods", s / n / 1024
	printf "  %-48s %8.2f MB\n", "  containerd growth over its idle PSS / pods", (c - s - ci) / n / 1024
	printf "  %-48s %8.2f MB\n", "berth serve'"'"'s parked monitor and its child (one)", sp / 1024
	printf "  berth per pod (monitors, serve growth) / containerd shim and pause: %.3f (goal <= 0.1)\n", (m + sv - si) / s
	printf "  berth all / containerd all: %.3f\n", b / c
}'

# $PODS concurrent RunPodSandbox calls.
for i in $(seq "$PODS"); do pod_json "c$i"; done
conc() {
	local sock=$1 i pids=() fail=0
	for i in $(seq "$PODS"); do
		cr "$sock" runp "$T/pod-c$i.json" >"$T/conc-$i.out" 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || fail=$((fail + 1)); done
	echo "$fail"
}
t0=$(now)
bfail=$(conc "$T/berth.sock")
t1=$(now)
pods_down "$T/berth.sock"
cfail=$(conc "$T/ctd.sock")
t2=$(now)
pods_down "$T/ctd.sock"
echo
echo "$PODS concurrent RunPodSandbox calls:"
awk -v a="$t0" -v b="$t1" -v c="$t2" -v bf="$bfail" -v cf="$cfail" -v n="$PODS" 'BEGIN {
	printf "  %-32s %6.2f s, %d of %d failed\n", "berth serve", b - a, bf, n
	printf "  %-32s %6.2f s, %d of %d failed\n", "containerd 1.6 (CRI plugin)", c - b, cf, n
}'
[ "$bfail" = 0 ] || { echo "$BENCH: $bfail concurrent RunPodSandbox calls failed on berth" >&2; exit 1; }
