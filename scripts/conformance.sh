#!/usr/bin/env bash
# conformance.sh - run the OCI runtime-tools v0.9.0 validation suite against
# one or more OCI runtimes (default: runc and berth) and print the results
# side by side.
#
# The suite is pinned by the separate Go module in tools/conformance (its
# go.mod lists every validation program plus runtimetest as `tool`
# directives); berth's own go.mod never depends on it.
#
# Environment:
#   CONFORMANCE_RUNTIMES  runtimes to test, space separated (default "runc berth").
#                         Each is an executable path or a name on PATH; the name
#                         "berth" means <repo>/bin/berth-runtime (`make build`).
#                         A runtime that cannot be found is skipped with a reason.
#   CONFORMANCE_TESTS     only run these validation programs (space separated),
#                         e.g. "default create state". Default: all of them.
#   CONFORMANCE_CACHE     build cache (default <repo>/.cache/conformance). The
#                         binaries are rebuilt only when tools/conformance/go.mod,
#                         go.sum, the Go version or this script's BUILD_REV change.
#   CONFORMANCE_OUT       raw results (default $CONFORMANCE_CACHE/out):
#                         <out>/<runtime>/<program>.tap      TAP from stdout
#                         <out>/<runtime>/<program>.stderr   the program's stderr
#                         <out>/<runtime>/summary.tsv        per program: ok notok raw_ok raw_notok
#                                                            skip todo rc secs note
#   CONFORMANCE_TIMEOUT   per-program timeout in seconds (default 120).
#   CONFORMANCE_STRICT    if 1, exit 1 unless berth's total ok >= runc's and
#                         berth's total not-ok <= runc's (both must have run).
#
# Counting (top-level TAP lines of each program's stdout only; YAML diagnostic
# blocks are indented and never counted):
#   * "ok N ..."                 -> ok
#   * "ok N # SKIP ..."          -> ok   (TAP: a skip is a passing test point);
#                                         also tallied separately as "skip"
#   * "not ok N ..."             -> not-ok
#   * "not ok N # TODO ..."      -> not-ok (counted raw, NOT forgiven as TAP
#                                         harnesses would; runtimetest can emit a
#                                         TODO for the controlling-TTY device
#                                         check); also tallied as "todo"
#   * then at most ONE adjustment per program, noted in the table:
#       - timed out, exited non-zero, or printed "Bail out!"   -> +1 not-ok
#         (e.g. util.Fatal after a failed create, or a *_fail program whose
#         runtime wrongly accepted the config: its TAP is all ok, exit 1)
#       - exit 0, no test points, but a YAML diagnostic block   -> +1 not-ok
#         (the hook programs: prestart, poststart, poststop, hooks, *_fail
#         print "1..0" and report a failure only as a diagnostic "error")
#       - exit 0, no test points, "1..0", no diagnostic         -> +1 ok
#         (the same hook programs when they pass; "hooks" itself cannot:
#         on success it calls err.Error() on a nil error and panics, exit 2)
#       - exit 0, empty stdout, program name ends in _fail      -> +1 ok
#         (process_rlimits_fail / process_capabilities_fail pass by exiting
#         0 silently once create failed -- for ANY reason, a suite limitation)
#       - exit 0, no test points otherwise                      -> +1 not-ok
#         (e.g. default with a runtime that loses the container's stdout:
#         runtimetest's TAP never reaches the program, which exits 0)
#       - test points != the sum of the "1..N" plans           -> +1 not-ok
#     The raw line counts are kept too (summary.tsv, and the footer).
#
# Each program runs as root in a fresh temporary working directory holding
# hard links (or copies; symlinks would be copied as symlinks into the bundle)
# of runtimetest and rootfs-<arch>.tar.gz, with RUNTIME=<absolute runtime path>
# (runtime-tools reads exactly that variable) and TMPDIR pointing into that
# directory so the bundles it creates are removed with it. Containers that
# appear in `<runtime> list -q` during a program are force-deleted afterwards,
# mounts left under the working directory are lazily unmounted, and new empty
# cgroup directories named testdir/cgrouptest (the suite's fixed cgroup
# paths) are removed; each such leak is noted in the table.
#
# Exit status: 0 normally; 1 for a CONFORMANCE_STRICT failure; 2 if the suite
# could not be built or the configuration is invalid.
set -euo pipefail

BUILD_REV=1 # bump to force a rebuild after changing the build commands below

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tooldir=$repo/tools/conformance
cache=${CONFORMANCE_CACHE:-$repo/.cache/conformance}
out=${CONFORMANCE_OUT:-$cache/out}
timeout_s=${CONFORMANCE_TIMEOUT:-120}
read -r -a runtimes <<<"${CONFORMANCE_RUNTIMES:-runc berth}"
strict=${CONFORMANCE_STRICT:-0}

die() {
	echo "conformance: $*" >&2
	exit 2
}
log() { echo "conformance: $*" >&2; }

[[ $timeout_s =~ ^[0-9]+$ ]] || die "CONFORMANCE_TIMEOUT must be a number of seconds"
((${#runtimes[@]} > 0)) || die "CONFORMANCE_RUNTIMES is empty"
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	PATH=$PATH:/usr/local/go/bin
fi
command -v go >/dev/null || die "go not found"
command -v timeout >/dev/null || die "timeout (coreutils) not found"

# The tool module is built on its own: no workspace, and no implicit go.mod
# updates (go.mod/go.sum are committed so CI reproduces the same build).
export GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
goarch=$(cd "$tooldir" && go env GOARCH)

# ---------------------------------------------------------------- build ----

key=$(
	{
		echo "rev $BUILD_REV"
		go version
		echo "arch $goarch"
		cat "$tooldir/go.mod" "$tooldir/go.sum"
	} | sha256sum | cut -c1-16
)
bindir=$cache/bin
if [[ ! -f $bindir/.key || $(<"$bindir/.key") != "$key" ]]; then
	log "building runtime-tools validation suite into $bindir"
	mkdir -p "$cache"
	tmpbin=$(mktemp -d "$cache/bin.tmp.XXXXXX")
	if ! (cd "$tooldir" && go build -trimpath -o "$tmpbin/" tool); then
		rm -rf "$tmpbin"
		die "building the validation suite failed"
	fi
	srcdir=$(cd "$tooldir" && go list -m -f '{{.Dir}}' github.com/opencontainers/runtime-tools) ||
		die "cannot locate the runtime-tools module source"
	[[ -f $srcdir/rootfs-$goarch.tar.gz ]] || die "no rootfs-$goarch.tar.gz in $srcdir"
	install -m 0644 "$srcdir/rootfs-$goarch.tar.gz" "$tmpbin/"
	# Every validation/<name> of the module must be a tool of the module.
	missing=()
	for d in "$srcdir"/validation/*/; do
		n=$(basename "$d")
		[[ $n == util ]] && continue
		[[ -x $tmpbin/$n ]] || missing+=("$n")
	done
	[[ -x $tmpbin/runtimetest ]] || missing+=(runtimetest)
	if ((${#missing[@]} > 0)); then
		rm -rf "$tmpbin"
		die "not built (add them as tool directives in tools/conformance/go.mod): ${missing[*]}"
	fi
	echo "$key" >"$tmpbin/.key"
	rm -rf "$bindir"
	mv "$tmpbin" "$bindir"
fi

all_programs=()
for f in "$bindir"/*; do
	n=$(basename "$f")
	if [[ -x $f && $n != runtimetest && $n != *.tar.gz ]]; then
		all_programs+=("$n")
	fi
done
if [[ -n ${CONFORMANCE_TESTS:-} ]]; then
	read -r -a programs <<<"$CONFORMANCE_TESTS"
	for p in "${programs[@]}"; do
		[[ -x $bindir/$p && $p != runtimetest ]] ||
			die "unknown validation program '$p' (known: ${all_programs[*]})"
	done
else
	programs=("${all_programs[@]}")
fi

# ------------------------------------------------------------- runtimes ----

((EUID == 0)) || die "the validation suite must run as root"

labels=() # column names
paths=()  # absolute runtime executables
for rt in "${runtimes[@]}"; do
	if [[ $rt == berth ]]; then
		p=$repo/bin/berth-runtime
		label=berth
	elif [[ $rt == */* ]]; then
		p=$(realpath -m "$rt")
		label=$(basename "$rt")
	else
		p=$(command -v "$rt" || true)
		label=$rt
	fi
	if [[ -z $p || ! -x $p || -d $p ]]; then
		if [[ $rt == berth ]]; then
			log "skipping berth: $p does not exist (run 'make build')"
		else
			log "skipping $rt: not an executable path or a command on PATH"
		fi
		continue
	fi
	for l in "${labels[@]}"; do
		[[ $l != "$label" ]] || die "two runtimes would both be named '$label'"
	done
	labels+=("$label")
	paths+=("$p")
done
((${#labels[@]} > 0)) || die "no runtime to test"

for l in "${labels[@]}"; do
	rm -rf "${out:?}/$l"
	mkdir -p "$out/$l"
	printf 'program\tok\tnotok\traw_ok\traw_notok\tskip\ttodo\trc\tsecs\tnote\n' >"$out/$l/summary.tsv"
done

# --------------------------------------------------------------- running ----

mounts_under() { # mount points at or below $1, deepest first
	awk -v d="$1" '{ if ($5 == d || index($5, d "/") == 1) print $5 }' /proc/self/mountinfo | sort -r
}

# The suite's fixed cgroup names (runtime-tools cgroups.AbsCgroupPath
# "/cgrouptest" and RelCgroupPath "testdir/cgrouptest/container"); a runtime
# that does not remove the parents of a cgroup it created leaves them behind.
suite_cgroups() { # deepest first
	find /sys/fs/cgroup -mindepth 1 -type d -regextype posix-extended \
		-regex '.*/(testdir|cgrouptest)(/.*)?' 2>/dev/null | sort -r || true
}

# count_tap TAPFILE -> "ok notok skip todo plan bail yaml"
# plan is the sum of all "1..N" lines (some programs print a second, empty
# TAP stream after the first), -1 if none; yaml counts diagnostic blocks.
count_tap() {
	awk '
		/^ok([ \t]|$)/     { ok++; if (/#[ \t]*[Ss][Kk][Ii][Pp]/) skip++; next }
		/^not ok([ \t]|$)/ { nok++; if (/#[ \t]*[Tt][Oo][Dd][Oo]/) todo++; next }
		/^1\.\.[0-9]+/     { sub(/^1\.\./, ""); plan += $1; seen = 1; next }
		/^Bail out!/       { bail = 1; next }
		/^  ---/           { yaml++ }
		END { printf "%d %d %d %d %d %d %d\n", ok, nok, skip, todo, seen ? plan : -1, bail, yaml }
	' "$1"
}

# run_one LABEL RUNTIME PROGRAM: run one program, append to summary.tsv and
# set the globals r_ok r_notok r_note.
run_one() {
	local label=$1 rt=$2 prog=$3
	local tap=$out/$label/$prog.tap errf=$out/$label/$prog.stderr
	local work before after cg_before id rc=0 start secs leftover=() m
	work=$(mktemp -d "${TMPDIR:-/tmp}/berth-conformance.XXXXXX")
	mkdir "$work/tmp"
	# Like /tmp: containers with user namespaces (linux_uid_mappings) must
	# be able to traverse the path to their bundle.
	chmod 0755 "$work"
	chmod 1777 "$work/tmp"
	for f in runtimetest "rootfs-$goarch.tar.gz"; do
		ln "$bindir/$f" "$work/$f" 2>/dev/null || cp "$bindir/$f" "$work/$f"
	done
	before=$("$rt" list -q 2>/dev/null | sort || true)
	cg_before=$(suite_cgroups | sort)
	start=$SECONDS
	(cd "$work" && RUNTIME=$rt TMPDIR=$work/tmp exec timeout -k 10 "$timeout_s" "$bindir/$prog") \
		>"$tap" 2>"$errf" </dev/null || rc=$?
	secs=$((SECONDS - start))

	# Remove containers the program left behind (only ones it created).
	after=$("$rt" list -q 2>/dev/null | sort || true)
	while read -r id; do
		[[ -n $id ]] || continue
		leftover+=("$id")
		"$rt" kill "$id" KILL >/dev/null 2>&1 || true
		"$rt" delete --force "$id" >/dev/null 2>&1 || true
	done < <(comm -13 <(echo "$before") <(echo "$after"))
	local nmounts=0
	while read -r m; do
		[[ -n $m ]] || continue
		nmounts=$((nmounts + 1))
		umount -l "$m" 2>/dev/null || true
	done < <(mounts_under "$work")
	rm -rf "$work" || log "could not remove $work"
	# Remove the suite's cgroups the program left (only new, empty ones).
	local ncg=0 cg
	while read -r cg; do
		[[ -n $cg ]] || continue
		ncg=$((ncg + 1))
		rmdir "$cg" 2>/dev/null || log "could not remove cgroup $cg"
	done < <(comm -13 <(echo "$cg_before") <(suite_cgroups | sort) | sort -r)

	local raw_ok raw_notok skip todo plan bail yaml points note=()
	read -r raw_ok raw_notok skip todo plan bail yaml < <(count_tap "$tap")
	local ok=$raw_ok notok=$raw_notok
	points=$((raw_ok + raw_notok))
	# At most one extra point per program; see "Counting" in the header.
	if ((rc == 124 || rc == 137)); then
		note+=("timed out after ${timeout_s}s (+1 not-ok)")
		notok=$((notok + 1))
	elif ((rc != 0)); then
		note+=("exit status $rc (+1 not-ok)")
		notok=$((notok + 1))
	elif ((bail)); then
		note+=("bailed out (+1 not-ok)")
		notok=$((notok + 1))
	elif ((points == 0 && yaml > 0)); then
		note+=("failed in a diagnostic only (+1 not-ok)")
		notok=$((notok + 1))
	elif ((points == 0 && plan == 0)); then
		note+=("passed with an empty plan (+1 ok)")
		ok=$((ok + 1))
	elif ((points == 0)) && [[ $prog == *_fail && ! -s $tap ]]; then
		note+=("passed silently, config rejected (+1 ok)")
		ok=$((ok + 1))
	elif ((points == 0)); then
		note+=("no test points (+1 not-ok)")
		notok=$((notok + 1))
	elif ((plan >= 0 && points != plan)); then
		note+=("planned $plan, ran $points (+1 not-ok)")
		notok=$((notok + 1))
	fi
	((${#leftover[@]} == 0)) || note+=("left ${#leftover[@]} container(s), deleted")
	((nmounts == 0)) || note+=("left $nmounts mount(s), unmounted")
	((ncg == 0)) || note+=("left $ncg cgroup dir(s), removed")

	local IFS=';'
	r_note="${note[*]}"
	r_ok=$ok r_notok=$notok
	printf '%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n' \
		"$prog" "$ok" "$notok" "$raw_ok" "$raw_notok" "$skip" "$todo" "$rc" "$secs" "$r_note" \
		>>"$out/$label/summary.tsv"
}

mounts_before=$(wc -l </proc/self/mountinfo)
t0=$SECONDS
log "running ${#programs[@]} program(s) against: ${labels[*]} (timeout ${timeout_s}s each)"

declare -A tot_ok tot_notok
header=$(printf '%-32s' program)
for l in "${labels[@]}"; do
	header+=$(printf '  %10s %7s' "$l ok" not-ok)
	tot_ok[$l]=0 tot_notok[$l]=0
done
echo "$header"

for prog in "${programs[@]}"; do
	row=$(printf '%-32s' "$prog")
	notes=""
	for i in "${!labels[@]}"; do
		l=${labels[$i]}
		run_one "$l" "${paths[$i]}" "$prog"
		row+=$(printf '  %10d %7d' "$r_ok" "$r_notok")
		tot_ok[$l]=$((tot_ok[$l] + r_ok))
		tot_notok[$l]=$((tot_notok[$l] + r_notok))
		[[ -z $r_note ]] || notes+="  [$l: ${r_note//;/, }]"
	done
	echo "$row$notes"
done

row=$(printf '%-32s' TOTAL)
for l in "${labels[@]}"; do
	row+=$(printf '  %10d %7d' "${tot_ok[$l]}" "${tot_notok[$l]}")
done
echo "$row"
for l in "${labels[@]}"; do
	awk -F'\t' -v l="$l" '
		NR > 1 { ro += $4; rn += $5; s += $6; t += $7 }
		END { printf "  %s: raw TAP lines %d ok / %d not ok (before the per-program adjustments); ok includes %d SKIP, not-ok %d TODO\n", l, ro, rn, s, t }' \
		"$out/$l/summary.tsv"
done
echo "raw TAP: $out/<runtime>/<program>.tap (stderr: .stderr, per-program: summary.tsv)"
echo "elapsed: $((SECONDS - t0))s"

mounts_after=$(wc -l </proc/self/mountinfo)
if ((mounts_after > mounts_before)); then
	log "warning: $((mounts_after - mounts_before)) more mount(s) than before the run"
fi

if [[ $strict == 1 ]]; then
	if [[ -z ${tot_ok[runc]+x} || -z ${tot_ok[berth]+x} ]]; then
		echo "conformance: STRICT: needs both runc and berth results (got: ${labels[*]})" >&2
		exit 1
	fi
	if ((tot_ok[berth] < tot_ok[runc] || tot_notok[berth] > tot_notok[runc])); then
		echo "conformance: STRICT: berth ${tot_ok[berth]} ok / ${tot_notok[berth]} not-ok is worse than runc ${tot_ok[runc]} ok / ${tot_notok[runc]} not-ok" >&2
		exit 1
	fi
	echo "conformance: STRICT: berth (${tot_ok[berth]} ok / ${tot_notok[berth]} not-ok) matches or beats runc (${tot_ok[runc]} ok / ${tot_notok[runc]} not-ok)"
fi
