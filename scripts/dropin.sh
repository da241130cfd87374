#!/usr/bin/env bash
# dropin.sh [containerd|podman|all]: prove that berth-runtime is a drop-in
# OCI runtime for real engines, offline, with an image built locally from
# Debian's busybox-static.
#
#   containerd  a private containerd (own config, root, state, socket; cgroupfs;
#               CRI off) runs containers through the runc v2 shim
#               (io.containerd.runc.v2) whose options are BinaryName=<runtime>
#               and Root=<tmp>/runc-root (ctr's --runc-binary/--runc-root fill
#               exactly those shim options; the shim adds --log log.json
#               --log-format json): ctr run --rm (output, exit code 3, loopback
#               up, --read-only, --uidmap, -t, the runtime's error for a
#               missing executable), ctr run -d + task ps/exec (exit code 5)/
#               pause/resume + task kill (SIGTERM reaches a trap: exit 0) +
#               task delete, nothing left behind.
#   podman      podman with its own --root/--runroot/--tmpdir/containers.conf/
#               storage.conf, cgroupfs, --runtime <runtime>, --network none,
#               --ulimit nofile/nproc=1024 (the host forbids raising the hard
#               limit): podman info (<runtime> --version), run --rm (output,
#               exit code 3, 127 for a missing executable, loopback up,
#               --read-only = tmpcopyup tmpfs, --uidmap, -t), run -d + exec
#               (exit code 5, -t) + top + pause/unpause + stop (SIGTERM trap:
#               exit 0) + logs + start again + kill -s KILL (137) + rm; the
#               runtime knows none of the containers afterwards.
#   all         both (the default).
#
# Each step prints its command and output when it fails, with the end of
# containerd's log. Compare with RUNTIME=runc to tell an engine or host
# problem from a runtime one.
#
# Environment:
#   RUNTIME       berth (default: <repo>/bin/berth-runtime, `make build`), runc
#                 (runc on PATH, for comparison) or the path of any runc-
#                 compatible binary.
#   DROPIN_KEEP   1: keep the temporary directory (containerd's config and
#                 log, podman's configuration, the image) and print where it
#                 is. Containers, mounts and cgroups are still removed.
#   DROPIN_STEP_TIMEOUT  seconds one engine command may take (default 30).
#   DROPIN_VERBOSE 1: print every step's output, not only a failed one's.
#   DROPIN_DEBUG  1: print the engine's whole log (containerd --log-level
#                 debug log; podman --log-level=debug output) on failure, not
#                 only its tail.
#
# Prints one PASS/FAIL line per step and exits 0 when all passed, 1 when a
# step failed, 2 when the set-up itself failed (missing tools, engine did not
# start), so a failure names the step, the command, its exit code and output.
# Needs root.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
what=${1:-all}
case $what in
containerd | podman | all) ;;
*)
	echo "usage: $0 [containerd|podman|all]" >&2
	exit 2
	;;
esac

case ${RUNTIME:-berth} in
berth) rt=$repo/bin/berth-runtime ;;
runc) rt=$(command -v runc || true) ;;
*) rt=$RUNTIME ;;
esac
if [[ -z $rt || ! -x $rt ]]; then
	echo "dropin: runtime ${RUNTIME:-berth} not found (${rt:-not on PATH}); for berth run make build" >&2
	exit 2
fi
rt=$(cd "$(dirname "$rt")" && pwd)/$(basename "$rt") # absolute; keep the link name (berth-runtime)
if [[ $(id -u) != 0 ]]; then
	echo "dropin: needs root" >&2
	exit 2
fi
busybox=/bin/busybox
if [[ ! -x $busybox ]]; then
	echo "dropin: $busybox missing: apt-get install busybox-static" >&2
	exit 2
fi

step_timeout=${DROPIN_STEP_TIMEOUT:-30}
[[ $step_timeout =~ ^[1-9][0-9]*$ ]] || { echo "dropin: DROPIN_STEP_TIMEOUT must be a number of seconds" >&2; exit 2; }
work=$(mktemp -d /tmp/berth-dropin.XXXXXX)
chmod 0755 "$work"
tag=$$ # container names and cgroups of this run
failures=0
passes=0
engine_log=
engine_pid=
cleanups=()

log() { echo "dropin: $*"; }

# ------------------------------------------------------------- cleanup ----

# pids_matching STRING: processes whose command line contains STRING (the
# shims, conmons and podman cleanup processes this run started; they all
# carry a path under $work on their command line).
pids_matching() {
	local p cmd
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[[ $p == "$$" || $p == "$BASHPID" ]] && continue
		cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
		[[ $cmd == *"$1"* ]] && echo "$p"
	done
}

# wait_gone SECONDS STRING: wait for processes matching STRING to exit, then
# SIGKILL the stragglers (by pid).
wait_gone() {
	local n=$(($1 * 10)) pids
	while ((n-- > 0)); do
		pids=$(pids_matching "$2")
		[[ -z $pids ]] && return 0
		sleep 0.1
	done
	pids=$(pids_matching "$2")
	if [[ -n $pids ]]; then
		log "killing leftover processes: $(echo $pids)"
		for p in $pids; do kill -9 "$p" 2>/dev/null; done
		sleep 0.5
	fi
}

# unmount_under DIR: lazily unmount every mount point under DIR, deepest first.
unmount_under() {
	local m
	awk -v d="$1/" 'index($5, d) == 1 || $5 == substr(d, 1, length(d) - 1) { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r m; do
		m=$(printf '%b' "$m") # mountinfo escapes spaces as \040
		umount -l "$m" 2>/dev/null || true
	done
}

# rm_cgroups NAME: remove the (empty) cgroup directories named NAME at the
# top of every hierarchy, and everything empty below them.
rm_cgroups() {
	local d
	for d in /sys/fs/cgroup/*/"$1" /sys/fs/cgroup/"$1"; do
		[[ -d $d ]] || continue
		find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
		[[ -d $d ]] && log "cgroup $d not empty, left behind"
	done
}

# new_dirs DIR...: print those of DIR... that do not exist yet, for
# rm_new_dirs to remove afterwards (engines create them on their own).
new_dirs() {
	local x
	for x; do [[ -e $x ]] || printf '%s ' "$x"; done
}

# rm_new_dirs DIR...: remove those of DIR... that are empty, deepest first.
rm_new_dirs() {
	local x
	for x in $(printf '%s\n' "$@" | sort -r); do
		rmdir "$x" 2>/dev/null
	done
	return 0
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local i
	for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do
		eval "${cleanups[i]}"
	done
	unmount_under "$work"
	if [[ ${DROPIN_KEEP:-0} == 1 ]]; then
		log "kept $work"
	else
		rm -rf "$work" 2>/dev/null || { sleep 1; unmount_under "$work"; rm -rf "$work"; } ||
			log "could not remove $work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- steps ----

# show_output FILE: indent a step's output.
show_output() {
	if [[ -s $1 ]]; then
		sed 's/^/    | /' "$1" | head -c 20000
		echo
	fi
}

# engine_tail: the end of the engine's own log, where the shim and conmon
# report the runtime's error output.
engine_tail() {
	[[ -n $engine_log && -s $engine_log ]] || return 0
	if [[ ${DROPIN_DEBUG:-0} == 1 ]]; then
		echo "    --- $engine_log:"
		sed 's/^/    | /' "$engine_log"
	else
		echo "    --- last lines of $engine_log (DROPIN_DEBUG=1 for all of it):"
		grep -v 'level=debug' "$engine_log" | tail -n 15 | sed 's/^/    | /'
	fi
}

# check NAME WANT_RC WANT_OUTPUT -- CMD...: run CMD ($step_timeout s at most)
# and pass if it exits WANT_RC and, unless WANT_OUTPUT is empty, its combined
# output contains WANT_OUTPUT. The output is left in $out. Once two steps of
# a half have timed out the engine is taken as hung: the remaining steps fail
# at once rather than wait.
out=
timeouts=0
check() {
	local name=$1 want_rc=$2 want_out=$3
	shift 4
	out=$work/step.out
	: >"$out"
	if ((timeouts >= 2)); then
		echo "FAIL  $section: $name: not run, two steps of this half timed out"
		failures=$((failures + 1))
		return 1
	fi
	# --kill-after: ctr forwards SIGTERM to a container that may ignore it.
	timeout -k 5 "$step_timeout" "$@" >"$out" 2>&1 </dev/null
	local rc=$?
	local why=
	if ((rc == 124 || rc == 137)) && [[ $want_rc != "$rc" ]]; then
		why="timed out after ${step_timeout}s"
		timeouts=$((timeouts + 1))
	elif [[ $rc != "$want_rc" ]]; then
		why="exit code $rc, want $want_rc"
	elif [[ -n $want_out ]] && ! grep -qF -- "$want_out" "$out"; then
		why="output lacks \"$want_out\""
	fi
	if [[ -z $why ]]; then
		echo "PASS  $section: $name"
		[[ ${DROPIN_VERBOSE:-0} == 1 ]] && show_output "$out"
		passes=$((passes + 1))
		return 0
	fi
	echo "FAIL  $section: $name: $why"
	echo "    \$ $*"
	show_output "$out"
	engine_tail
	failures=$((failures + 1))
	return 1
}

# check_none NAME -- CMD...: pass if CMD succeeds and prints nothing on
# stdout (a list of leftovers).
check_none() {
	local name=$1
	shift 2
	local o=$work/none.out e=$work/none.err
	if timeout -k 5 "$step_timeout" "$@" >"$o" 2>"$e" </dev/null && [[ ! -s $o ]]; then
		pass "$name"
		return 0
	fi
	fail "$name: $(cat "$o" "$e" | tr '\n' ' ')"
	echo "    \$ $*"
	return 1
}

pass() {
	echo "PASS  $section: $*"
	passes=$((passes + 1))
}
fail() {
	echo "FAIL  $section: $*"
	failures=$((failures + 1))
}

# ---------------------------------------------------------------- image ----

# make_image: a busybox rootfs, its tar (layer.tar, also what podman
# imports) and an OCI image archive of it (image.tar) written by hand.
make_image() {
	local img=$work/image rootfs=$work/image/rootfs
	mkdir -p "$rootfs"/{bin,sbin,etc,proc,sys,dev,tmp,root,usr/bin,usr/sbin,var,run}
	cp "$busybox" "$rootfs/bin/busybox"
	local applet
	for applet in $("$busybox" --list); do
		[[ -e $rootfs/bin/$applet ]] || ln -s busybox "$rootfs/bin/$applet"
	done
	chmod 1777 "$rootfs/tmp"
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
	printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
	tar -C "$rootfs" --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -cf "$img/layer.tar" . || return 1

	local arch
	arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
	case $arch in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac
	local oci=$img/oci blobs=$img/oci/blobs/sha256
	mkdir -p "$blobs"
	local layer_digest layer_size config_digest config_size manifest_digest manifest_size
	layer_digest=$(sha256sum "$img/layer.tar" | cut -d' ' -f1)
	layer_size=$(stat -c %s "$img/layer.tar")
	cp "$img/layer.tar" "$blobs/$layer_digest"
	printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"scripts/dropin.sh: busybox-static"}]}' \
		"$arch" "$layer_digest" >"$img/config.json"
	config_digest=$(sha256sum "$img/config.json" | cut -d' ' -f1)
	config_size=$(stat -c %s "$img/config.json")
	cp "$img/config.json" "$blobs/$config_digest"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
		"$config_digest" "$config_size" "$layer_digest" "$layer_size" >"$img/manifest.json"
	manifest_digest=$(sha256sum "$img/manifest.json" | cut -d' ' -f1)
	manifest_size=$(stat -c %s "$img/manifest.json")
	cp "$img/manifest.json" "$blobs/$manifest_digest"
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"latest"}}]}' \
		"$manifest_digest" "$manifest_size" "$arch" "$image_ref" >"$oci/index.json"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
	tar -C "$oci" --numeric-owner --owner=0 --group=0 -cf "$img/image.tar" oci-layout index.json blobs
}
image_ref=localhost/berth-busybox:latest

# The container's long-running process: exits 0 on SIGTERM, so a clean exit
# after `kill`/`stop` proves the signal reached it.
long_running='trap "echo got-sigterm; exit 0" TERM; echo ready; while :; do sleep 0.1; done'

# wait_for SECONDS CMD...: retry CMD until it succeeds.
wait_for() {
	local n=$(($1 * 10))
	shift
	while ((n-- > 0)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# ----------------------------------------------------------- containerd ----

containerd_half() {
	section=containerd
	timeouts=0
	local missing=() b
	for b in containerd ctr containerd-shim-runc-v2; do
		command -v "$b" >/dev/null || missing+=("$b")
	done
	if ((${#missing[@]})); then
		echo "SKIP  containerd: not installed: ${missing[*]} (apt-get install containerd)"
		return 0
	fi
	local d=$work/containerd ns=berthtest
	local sock=$d/containerd.sock
	mkdir -p "$d"/{root,state,opt,fifo,runc-root}
	cat >"$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[debug]
  address = "$d/debug.sock"
  level = "debug"

[metrics]
  address = ""

[cgroup]
  path = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
EOF
	# The shims keep their sockets in /run/containerd/s (fixed in 1.6), and
	# the shim's cleanup of a dead task uses /run/containerd/runc/<ns>:
	# remove what this run created there.
	local made
	made=$(new_dirs /run/containerd /run/containerd/s /run/containerd/runc /run/containerd/runc/$ns)
	engine_log=$d/containerd.log
	containerd --config "$d/config.toml" >"$engine_log" 2>&1 &
	engine_pid=$!
	cleanups+=("containerd_stop $engine_pid '$d' $made")
	local c=(ctr --address "$sock" -n "$ns")
	if ! wait_for 20 "${c[@]}" version; then
		fail "containerd did not start"
		engine_tail
		return 2
	fi
	pass "private containerd $("${c[@]}" version 2>/dev/null | awk '/Version/ {print $2; exit}') up ($sock)"

	check "image import" 0 "$image_ref" -- "${c[@]}" image import "$work/image/image.tar" || return 1
	"${c[@]}" image ls >>"$out" 2>&1
	grep -qF "$image_ref" "$out" || { fail "image $image_ref not listed after import"; show_output "$out"; return 1; }

	local rtopts=(--runtime io.containerd.runc.v2 --runc-binary "$rt" --runc-root "$d/runc-root" --fifo-dir "$d/fifo")
	local id=dropin-$tag
	check "ctr run --rm prints the marker" 0 "berth-dropin-marker-$tag" -- \
		"${c[@]}" run --rm "${rtopts[@]}" "$image_ref" "$id-1" sh -c "echo berth-dropin-marker-$tag; id"
	check "ctr run --rm propagates exit code 3" 3 "" -- \
		"${c[@]}" run --rm "${rtopts[@]}" "$image_ref" "$id-2" sh -c 'exit 3'
	# A new network namespace gets its loopback up from the runtime (runc
	# does it; ctr without CNI configures nothing else).
	check "ctr run: loopback up in the new network namespace" 0 "LOOPBACK,UP" -- \
		"${c[@]}" run --rm "${rtopts[@]}" "$image_ref" "$id-6" ip -o link show lo
	check "ctr run --read-only" 0 "Read-only file system" -- \
		"${c[@]}" run --rm --read-only "${rtopts[@]}" "$image_ref" "$id-7" sh -c 'touch /x; exit 0'
	# A user namespace: the container's root is host uid 100000 (the
	# snapshot is chowned by ctr), and must still reach the exec fifo.
	check "ctr run --uidmap/--gidmap (user namespace)" 0 "0 100000 65536" -- \
		"${c[@]}" run --rm --uidmap 0:100000:65536 --gidmap 0:100000:65536 "${rtopts[@]}" "$image_ref" "$id-8" \
		sh -c 'id; cat /proc/self/uid_map | tr -s " " | sed "s/^ //"'
	# process.terminal: the shim passes --console-socket; ctr -t needs a
	# terminal of its own, which script(1) provides.
	if command -v script >/dev/null; then
		check "ctr run -t (console socket) prints the tty" 0 "/dev/pts/" -- \
			script -qec "$(printf '%q ' "${c[@]}" run --rm -t "${rtopts[@]}" "$image_ref" "$id-9" tty)" /dev/null
	fi
	# The shim reads the runtime's error from --log (JSON) and reports it.
	check "ctr run of a missing executable reports the runtime's error" 1 "no-such-cmd-$tag" -- \
		"${c[@]}" run --rm "${rtopts[@]}" "$image_ref" "$id-5" "no-such-cmd-$tag"
	"${c[@]}" container delete "$id-5" >/dev/null 2>&1

	# Detached: exec into it, kill it, delete it.
	if check "ctr run -d" 0 "" -- \
		"${c[@]}" run -d "${rtopts[@]}" "$image_ref" "$id-3" sh -c "$long_running"; then
		if wait_for 10 bash -c "$(printf '%q ' "${c[@]}") task ls | grep -q '^$id-3 .*RUNNING'"; then
			pass "task $id-3 RUNNING"
		else
			fail "task $id-3 not RUNNING: $("${c[@]}" task ls 2>&1 | tr '\n' ' ')"
		fi
		check "ctr task ps lists the init" 0 "" -- "${c[@]}" task ps "$id-3"
		check "ctr task exec prints the marker" 0 "exec-marker-42-$tag" -- \
			"${c[@]}" task exec --fifo-dir "$d/fifo" --exec-id e1 "$id-3" sh -c "echo exec-marker-\$((40 + 2))-$tag"
		check "ctr task exec propagates exit code 5" 5 "" -- \
			"${c[@]}" task exec --fifo-dir "$d/fifo" --exec-id e2 "$id-3" sh -c 'exit 5'
		check "ctr task pause" 0 "" -- "${c[@]}" task pause "$id-3" &&
			if wait_for 5 bash -c "$(printf '%q ' "${c[@]}") task ls | grep -q '^$id-3 .*PAUSED'"; then
				pass "task $id-3 PAUSED"
			else
				fail "task $id-3 not PAUSED: $("${c[@]}" task ls 2>&1 | tr '\n' ' ')"
			fi
		check "ctr task resume" 0 "" -- "${c[@]}" task resume "$id-3" &&
			if wait_for 5 bash -c "$(printf '%q ' "${c[@]}") task ls | grep -q '^$id-3 .*RUNNING'"; then
				pass "task $id-3 RUNNING again"
			else
				fail "task $id-3 not RUNNING after resume: $("${c[@]}" task ls 2>&1 | tr '\n' ' ')"
			fi
		check "ctr task exec after resume" 0 "after-resume-$tag" -- \
			"${c[@]}" task exec --fifo-dir "$d/fifo" --exec-id e3 "$id-3" echo "after-resume-$tag"
		check "ctr task kill (SIGTERM)" 0 "" -- "${c[@]}" task kill "$id-3"
		if wait_for 10 bash -c "$(printf '%q ' "${c[@]}") task ls | grep -q '^$id-3 .*STOPPED'"; then
			pass "task $id-3 STOPPED after SIGTERM"
		else
			fail "task $id-3 not STOPPED 10s after SIGTERM: $("${c[@]}" task ls 2>&1 | tr '\n' ' ')"
			"${c[@]}" task kill -s SIGKILL "$id-3" >/dev/null 2>&1
			sleep 1
		fi
		# ctr task delete warns "exit with non-zero exit code N" unless the
		# task exited 0: 0 (the trap) proves SIGTERM reached the init.
		check "ctr task delete" 0 "" -- "${c[@]}" task delete "$id-3" &&
			if grep -q 'non-zero exit code' "$out"; then
				fail "exit status 0 from the TERM trap: $(cat "$out")"
			else
				pass "exit status 0 from the TERM trap"
			fi
		check "ctr container delete" 0 "" -- "${c[@]}" container delete "$id-3"
	fi
	check_none "no containers left" -- "${c[@]}" container ls -q
	check_none "no tasks left" -- "${c[@]}" task ls -q
	if [[ -d $d/runc-root/$ns ]] && [[ -n $(ls -A "$d/runc-root/$ns") ]]; then
		fail "runtime state left in $d/runc-root/$ns: $(ls -A "$d/runc-root/$ns" | tr '\n' ' ')"
	else
		pass "no runtime state left under --root $d/runc-root/$ns"
	fi
}

# containerd_stop PID DIR [NEW_DIR...]
containerd_stop() {
	local pid=$1 d=$2
	shift 2
	# Bounded: a hung runtime blocks the shim, and so ctr.
	local c=(timeout -k 2 10 ctr --address "$d/containerd.sock" -n berthtest) id
	if kill -0 "$pid" 2>/dev/null; then
		for id in $("${c[@]}" task ls -q 2>/dev/null); do
			"${c[@]}" task kill -s SIGKILL "$id" >/dev/null 2>&1
			sleep 0.5
			"${c[@]}" task delete -f "$id" >/dev/null 2>&1
		done
		for id in $("${c[@]}" container ls -q 2>/dev/null); do
			"${c[@]}" container delete "$id" >/dev/null 2>&1
		done
		kill "$pid" 2>/dev/null
		local n=50
		while kill -0 "$pid" 2>/dev/null && ((n-- > 0)); do sleep 0.1; done
		kill -9 "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	wait_gone 5 "$d/" # shims (their -address names the socket under $d)
	# A shim killed above leaves its socket: /run/containerd/s/<sha256 of
	# "<containerd address>/<namespace>/<id>">.
	local i h
	for i in 1 2 3 4 5 6 7 8 9; do
		h=$(printf '%s' "$d/containerd.sock/berthtest/dropin-$tag-$i" | sha256sum | cut -d' ' -f1)
		rm -f "/run/containerd/s/$h"
	done
	unmount_under "$d"
	rm_cgroups berthtest
	rm_new_dirs "$@"
	log "containerd stopped, cleaned"
}

# --------------------------------------------------------------- podman ----

podman_half() {
	section=podman
	timeouts=0
	local missing=() b
	for b in podman conmon; do
		command -v "$b" >/dev/null || missing+=("$b")
	done
	if ((${#missing[@]})); then
		echo "SKIP  podman: not installed: ${missing[*]} (apt-get install podman)"
		return 0
	fi
	local d=$work/podman
	mkdir -p "$d"/{root,runroot,tmp,vartmp,volumes,net}
	# Own containers.conf and storage.conf keep the host's configuration out.
	printf '[engine]\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n' >"$d/containers.conf"
	printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$d/root" "$d/runroot" >"$d/storage.conf"
	local level=warn
	[[ ${DROPIN_DEBUG:-0} == 1 ]] && level=debug
	local p=(env CONTAINERS_CONF="$d/containers.conf" CONTAINERS_STORAGE_CONF="$d/storage.conf" TMPDIR="$d/vartmp"
		podman --log-level="$level" --root "$d/root" --runroot "$d/runroot" --tmpdir "$d/tmp"
		--volumepath "$d/volumes" --network-config-dir "$d/net" --storage-driver overlay
		--cgroup-manager cgroupfs --events-backend file --runtime "$rt")
	engine_log=
	# Podman leaves the runtime's state in its default --root, and netavark
	# its own in /run/containers/networks: remove those directories
	# afterwards if this run created them (and they are empty).
	local made
	made=$(new_dirs /run/runc /run/berth /run/berth/runtime /run/containers /run/containers/networks)
	cleanups+=("podman_clean '$d' $(printf '%q' "$(printf '%q ' "${p[@]}")") $made")
	local cgparent=/berth-dropin-$tag
	local run=(run --network none --cgroup-parent "$cgparent" --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

	# podman info runs `<runtime> --version` and reports its output.
	check "podman info reports the runtime's version" 0 "version" -- \
		"${p[@]}" info --format '{{.Host.OCIRuntime.Version}}'
	check "podman import" 0 "" -- "${p[@]}" import "$work/image/layer.tar" "$image_ref" || return 1
	local id=dropin-$tag
	check "podman run --rm prints the marker" 0 "berth-dropin-marker-$tag" -- \
		"${p[@]}" "${run[@]}" --rm --name "$id-1" --cidfile "$d/cid-1" "$image_ref" sh -c "echo berth-dropin-marker-$tag; id"
	check "podman run --rm propagates exit code 3" 3 "" -- \
		"${p[@]}" "${run[@]}" --rm --name "$id-2" --cidfile "$d/cid-2" "$image_ref" sh -c 'exit 3'
	# Podman maps the runtime's "executable file not found" / "no such file"
	# error text to exit code 127, as docker does.
	check "podman run of a missing executable: exit code 127" 127 "no-such-cmd-$tag" -- \
		"${p[@]}" "${run[@]}" --rm --name "$id-5" --cidfile "$d/cid-5" "$image_ref" "no-such-cmd-$tag"
	check "podman run: loopback up in the new network namespace" 0 "LOOPBACK,UP" -- \
		"${p[@]}" "${run[@]}" --rm --name "$id-6" --cidfile "$d/cid-6" "$image_ref" ip -o link show lo
	# --read-only mounts tmpfs on /tmp, /var/tmp and /run with "tmpcopyup"
	# (a runc extension: copy the image's files into the new tmpfs).
	check "podman run --read-only (tmpcopyup tmpfs on /tmp /run /var/tmp)" 0 "tmpfs on /tmp" -- \
		"${p[@]}" "${run[@]}" --rm --read-only --name "$id-7" --cidfile "$d/cid-7" "$image_ref" \
		sh -c 'touch /x 2>&1; touch /tmp/x && mount | grep " /tmp "'
	check "podman run --uidmap/--gidmap (user namespace)" 0 "0 100000 65536" -- \
		"${p[@]}" "${run[@]}" --rm --uidmap 0:100000:65536 --gidmap 0:100000:65536 --name "$id-8" --cidfile "$d/cid-8" "$image_ref" \
		sh -c 'id; cat /proc/self/uid_map | tr -s " " | sed "s/^ //"'
	check "podman run --rm -t (console socket) prints the tty" 0 "/dev/pts/" -- \
		"${p[@]}" "${run[@]}" --rm -t --name "$id-4" --cidfile "$d/cid-4" "$image_ref" tty

	if check "podman run -d" 0 "" -- \
		"${p[@]}" "${run[@]}" -d --name "$id-3" --cidfile "$d/cid-3" "$image_ref" sh -c "$long_running"; then
		check "podman exec prints the marker" 0 "exec-marker-42-$tag" -- \
			"${p[@]}" exec "$id-3" sh -c "echo exec-marker-\$((40 + 2))-$tag"
		check "podman exec propagates exit code 5" 5 "" -- \
			"${p[@]}" exec "$id-3" sh -c 'exit 5'
		check "podman exec -t (console socket) prints the tty" 0 "/dev/pts/" -- \
			"${p[@]}" exec -t "$id-3" tty
		check "podman top" 0 "" -- "${p[@]}" top "$id-3"
		check "podman pause" 0 "" -- "${p[@]}" pause "$id-3" &&
			check "status paused" 0 "status=paused" -- "${p[@]}" inspect --format 'status={{.State.Status}}' "$id-3"
		check "podman unpause" 0 "" -- "${p[@]}" unpause "$id-3" &&
			check "status running" 0 "status=running" -- "${p[@]}" inspect --format 'status={{.State.Status}}' "$id-3"
		check "podman stop (SIGTERM, 10s grace)" 0 "$id-3" -- "${p[@]}" stop -t 10 "$id-3"
		check "exit code 0 from the TERM trap" 0 "exit=0" -- \
			"${p[@]}" inspect --format 'exit={{.State.ExitCode}} status={{.State.Status}}' "$id-3"
		check "podman logs" 0 "got-sigterm" -- "${p[@]}" logs "$id-3"
		# Start the stopped container again: the runtime creates it anew
		# under the same id.
		check "podman start (again)" 0 "" -- "${p[@]}" start "$id-3" &&
			check "running again" 0 "status=running" -- "${p[@]}" inspect --format 'status={{.State.Status}}' "$id-3"
		check "podman kill -s KILL" 0 "" -- "${p[@]}" kill -s KILL "$id-3" &&
			check "podman wait: exit code 137" 0 "137" -- "${p[@]}" wait "$id-3"
		check "podman rm" 0 "" -- "${p[@]}" rm "$id-3"
	fi
	check_none "no containers left" -- "${p[@]}" ps -aq
	# Podman keeps the runtime's default --root (podman 4.3 does not pass
	# --runtime-flag to `delete`, so a private root would leak state); ask
	# the runtime about each container podman ran.
	local f cid left=()
	for f in "$d"/cid-*; do
		[[ -s $f ]] || continue
		cid=$(<"$f")
		"$rt" state "$cid" >/dev/null 2>&1 && left+=("$cid")
	done
	if ((${#left[@]})); then
		fail "the runtime still knows containers podman removed: ${left[*]}"
		for cid in "${left[@]}"; do "$rt" delete --force "$cid" >/dev/null 2>&1; done
	else
		pass "the runtime knows none of the containers podman removed ($rt state)"
	fi
}

# podman_clean DIR PODMAN_COMMAND [EMPTY_DIR_TO_REMOVE...]
podman_clean() {
	local p
	eval "p=($2)"
	local d=$1
	shift 2
	# Bounded: a hung runtime keeps podman waiting on the container's lock.
	timeout -k 2 20 "${p[@]}" rm -af -t 0 >/dev/null 2>&1
	wait_gone 10 "$d/" # conmons and `podman container cleanup` exit commands
	timeout -k 2 20 "${p[@]}" rmi -af >/dev/null 2>&1
	timeout -k 2 20 "${p[@]}" system reset -f >/dev/null 2>&1
	wait_gone 2 "$d/"
	unmount_under "$d"
	rm_cgroups "berth-dropin-$tag"
	rm_new_dirs "$@"
	log "podman cleaned"
}

# ----------------------------------------------------------------- main ----

log "runtime $rt ($("$rt" --version 2>/dev/null | head -n 1 || echo "no --version"))"
log "work directory $work"
if ! make_image; then
	echo "FAIL  image: could not build the busybox image"
	exit 2
fi
log "image: $(du -h "$work/image/image.tar" | cut -f1) OCI archive, ref $image_ref"

setup_failed=0
if [[ $what == containerd || $what == all ]]; then
	containerd_half
	[[ $? == 2 ]] && setup_failed=1
	# Stop containerd and clean now, before podman runs.
	if ((${#cleanups[@]})); then
		eval "${cleanups[-1]}"
		unset 'cleanups[-1]'
	fi
	engine_log=
fi
if [[ $what == podman || $what == all ]]; then
	podman_half
	[[ $? == 2 ]] && setup_failed=1
	if ((${#cleanups[@]})); then
		eval "${cleanups[-1]}"
		unset 'cleanups[-1]'
	fi
fi

echo "dropin: $passes passed, $failures failed (runtime $rt)"
((setup_failed)) && exit 2
((failures)) && exit 1
exit 0
