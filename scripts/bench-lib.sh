# bench-lib.sh: what the bench scripts share. Source it after setting T
# (the run's temp directory) and BENCH (the script's name, for messages).

# umount_under DIR: every mount at or below DIR, deepest first.
umount_under() {
	local d=$1 m
	[ -n "$d" ] || return 0
	findmnt -rn -o TARGET | awk -v d="$d" '$0 == d || index($0, d "/") == 1' | sort -r |
		while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}

now() { echo "${EPOCHREALTIME/,/.}"; }

# containerd_conf FILE: containerd's own configuration, nothing outside $T.
containerd_conf() {
	cat >"$1" <<CONF
version = 2
root = "$T/ctd"
state = "$T/ctd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$T/ctd.sock"
[ttrpc]
  address = "$T/ctd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$T/ctd-opt"
CONF
}

# timed NAME CMD...: run CMD, append "NAME seconds" to $T/results; a
# failure ends the benchmark with CMD's output.
timed() {
	local name=$1 t0 t1
	shift
	t0=$(now)
	if ! "$@" >"$T/$name.out" 2>&1; then
		echo "$BENCH: $name failed: $*" >&2
		tail -3 "$T/$name.out" >&2
		exit 1
	fi
	t1=$(now)
	echo "$name $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')" >>"$T/results"
}

# median NAME: the median of NAME's seconds in $T/results.
median() {
	grep "^$1 " "$T/results" | cut -d' ' -f2 | sort -n |
		awk '{a[NR]=$1} END { if (NR % 2) m = a[(NR+1)/2]; else m = (a[NR/2] + a[NR/2+1]) / 2; printf "%.6f", m }'
}

# pss_of PID...: their total Pss in kB.
pss_of() {
	local tot=0 p v
	for p in "$@"; do
		v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
		tot=$((tot + ${v:-0}))
	done
	echo "$tot"
}

# parked PID: PID is berth serve's parked monitor or its waiting start
# child (engine/spare.go): its command line names no container. A fixed
# cost of serve, not one of any container.
parked() {
	local args
	mapfile -d '' -t args <"/proc/$1/cmdline" 2>/dev/null || return 1
	[ "${#args[@]}" -ge 2 ] && [ "${args[0]}" = berth-monitor ] && [ -z "${args[1]// /}" ]
}

# berth_in_T: berth over a root and state under $T, and a clean-up at exit
# that removes them (containers, networks with their firewall chains,
# mounts) and $T.
berth_in_T() {
	berth() { bin/berth --root "$T/root" --state "$T/state" "$@"; }
	berth_cleanup() {
		set +e
		berth system reset -f >/dev/null 2>&1
		rm -rf "$T"
	}
	trap berth_cleanup EXIT
	trap 'exit 130' INT TERM
}

# start_private_dockerd [FLAGS...]: Debian's dockerd beside the host's,
# never touching it: its own data root, exec root, pidfile, socket
# ($T/dockerd.sock) and cgroup parent (/$(basename $T)), in network and
# mount namespaces of its own with a fresh /run (its plugins, containerd)
# and /etc/docker (20.10 writes a key.json there). FLAGS go to dockerd.
# Sets dockerd_pid, the leader of its process group.
start_private_dockerd() {
	echo '{}' >"$T/daemon.json"
	setsid unshare --net --mount --propagation private -- sh -c \
		'mount -t tmpfs tmpfs /run && { [ ! -d /etc/docker ] || mount -t tmpfs tmpfs /etc/docker; } && ip link set lo up && exec "$@"' sh \
		dockerd --config-file "$T/daemon.json" --data-root "$T/dockerd" --exec-root "$T/dockerd-exec" \
		--pidfile "$T/dockerd.pid" --host "unix://$T/dockerd.sock" --cgroup-parent "/$(basename "$T")" \
		--storage-driver overlay2 --log-level warn "$@" >"$T/dockerd.log" 2>&1 &
	dockerd_pid=$!
}

# stop_private_dockerd: ends it (SIGTERM, then its whole process group:
# the containerd it started, shims) and removes the cgroup parent it
# leaves, empty, in every hierarchy.
stop_private_dockerd() {
	if [ -n "${dockerd_pid:-}" ]; then
		kill "$dockerd_pid" 2>/dev/null
		for _ in $(seq 200); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$dockerd_pid" 2>/dev/null
		wait "$dockerd_pid" 2>/dev/null
	fi
	local cg
	cg=$(basename "$T")
	for d in /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/"$cg"; do
		[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	return 0
}
