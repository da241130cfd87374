package integration

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A forked init's intermediate makes the container's cgroup leaves and
// forks the init into them (nsexec/cgroupfork.c): v1 hierarchies joined
// through "tasks", the cgroup2 one with CLONE_INTO_CGROUP, neither a
// migration that waits for an RCU grace period. The runtime's Go side
// keeps that only when the leaves are exactly the container's cgroup;
// "cgroup-forked-in" in BERTH_TRACE says it did.

// cgroupLeaves lists, for a cgroup path below the mount roots, the
// directory in every hierarchy this process is in (v1 and hybrid hosts),
// or skips where the host is cgroup v2 only, which cgroupfork.c leaves to
// the Go side.
func cgroupLeaves(t *testing.T, inner string) []string {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		t.Skip("cgroup v2 host: the forked init is joined by the Go side there (cgroupfork.c takes v1 and hybrid hosts)")
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var dirs []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && (fields[i+1] == "cgroup" || fields[i+1] == "cgroup2") &&
				strings.HasPrefix(fields[4], "/sys/fs/cgroup/") {
				dirs = append(dirs, fields[4]+inner)
			}
		}
	}
	if len(dirs) == 0 {
		t.Skip("no cgroup hierarchies mounted below /sys/fs/cgroup")
	}
	return dirs
}

// threadCgroups returns every distinct "hierarchy:path" line of the
// threads of pid.
func threadCgroups(t *testing.T, pid int) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "cgroup"))
	if err != nil || len(files) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	lines := map[string]bool{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			_, rest, _ := strings.Cut(l, ":")
			lines[rest] = true
		}
	}
	return lines
}

func existing(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			out = append(out, d)
		}
	}
	return out
}

func TestRuntimeCgroupForkedIn(t *testing.T) {
	r := newRuntime(t)
	warm := newBundle(t, r.bin, "true")
	r.run("run", "--bundle", warm.Dir, uniqueID(t)+"-warm")

	t.Run("limits and every thread in the leaves", func(t *testing.T) {
		id := uniqueID(t)
		parent := "/berth-test-" + id
		inner := parent + "/c"
		leaves := cgroupLeaves(t, inner)
		t.Cleanup(func() {
			for _, d := range leaves {
				os.Remove(d)
				os.Remove(filepath.Dir(d))
			}
		})
		b := newBundle(t, r.bin, "sleep", "60")
		b.Spec.Linux.CgroupsPath = inner
		// The init's Go runtime counts against pids.max from the moment
		// the limit is written (while it starts, inside): 3 left it
		// without a thread it wanted under CPU load (pthread_create
		// EAGAIN, a SIGABRT), so a handful more.
		limit, pids := int64(64<<20), int64(16)
		b.Spec.Linux.Resources = &specs.LinuxResources{
			Memory:  &specs.LinuxMemory{Limit: &limit},
			Pids:    &specs.LinuxPids{Limit: &pids},
			Devices: b.Spec.Linux.Resources.Devices,
		}
		b.save(t)
		_, stderr, phases, err := r.traced("", nil, nil, "create", "--bundle", b.Dir, id)
		if err != nil {
			t.Fatalf("create: %v\nstderr: %s", err, stderr)
		}
		if !hasPhase(phases, "prefork-adopted") || !hasPhase(phases, "cgroup-forked-in") {
			t.Fatalf("the init was not forked into its cgroup: phases %v", phases)
		}
		pid := r.state(id).Pid
		got := threadCgroups(t, pid)
		for line := range got {
			_, path, _ := strings.Cut(line, ":")
			if path != inner {
				t.Errorf("a thread of the init is in %q, want every one in %s", line, inner)
			}
		}
		if len(got) != len(leaves) {
			t.Errorf("the init's threads are in %d hierarchies (%v), the host has %d", len(got), got, len(leaves))
		}
		for _, d := range leaves {
			switch filepath.Base(filepath.Dir(filepath.Dir(d))) {
			case "memory":
				if v := readTrim(t, filepath.Join(d, "memory.limit_in_bytes")); v != strconv.FormatInt(limit, 10) {
					t.Errorf("memory.limit_in_bytes %s, want %d", v, limit)
				}
			case "pids":
				if v := readTrim(t, filepath.Join(d, "pids.max")); v != strconv.FormatInt(pids, 10) {
					t.Errorf("pids.max %s, want %d", v, pids)
				}
			case "cpuset":
				if v := readTrim(t, filepath.Join(d, "cpuset.cpus")); v == "" {
					t.Error("cpuset.cpus of a new cpuset cgroup is empty")
				}
			}
		}
		r.run("delete", "--force", id)
		if left := existing(leaves); len(left) > 0 {
			t.Errorf("delete left cgroups: %v", left)
		}
	})

	t.Run("a leaf that exists is joined by a move", func(t *testing.T) {
		id := uniqueID(t)
		leaves := cgroupLeaves(t, "/berth/"+id)
		pre := ""
		for _, d := range leaves {
			if strings.Contains(d, "/pids/") {
				pre = d
			}
		}
		if pre == "" {
			t.Skip("no pids hierarchy to make a leaf in first")
		}
		if err := os.MkdirAll(pre, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(pre) })
		b := newBundle(t, r.bin, "sh", "-c", "cat /proc/self/cgroup")
		stdout, stderr, phases, err := r.traced("", nil, nil, "run", "--bundle", b.Dir, id)
		if err != nil {
			t.Fatalf("run: %v\nstderr: %s", err, stderr)
		}
		if hasPhase(phases, "cgroup-forked-in") || !hasPhase(phases, "cgroup-joined") {
			t.Fatalf("phases %v: want a move into a cgroup that existed", phases)
		}
		if !strings.Contains(stdout, "pids:/") {
			t.Errorf("the container's /proc/self/cgroup has no pids line: %q", stdout)
		}
		if left := existing(leaves); len(left) > 0 {
			t.Errorf("the run left cgroups: %v", left)
		}
	})

	t.Run("a relative path is left to the Go side", func(t *testing.T) {
		id := uniqueID(t)
		b := newBundle(t, r.bin, "true")
		b.Spec.Linux.CgroupsPath = "berth-test-rel-" + id
		b.save(t)
		_, stderr, phases, err := r.traced("", nil, nil, "run", "--bundle", b.Dir, id)
		if err != nil {
			t.Fatalf("run: %v\nstderr: %s", err, stderr)
		}
		if hasPhase(phases, "cgroup-forked-in") || !hasPhase(phases, "cgroup-joined") {
			t.Fatalf("phases %v: a relative cgroupsPath was taken by the forked init", phases)
		}
	})

	t.Run("a create refused after the fork leaves no cgroup", func(t *testing.T) {
		id := uniqueID(t)
		leaves := cgroupLeaves(t, "/berth/"+id)
		b := newBundle(t, r.bin, "true")
		b.Spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOT_ONE", Hard: 1, Soft: 1}}
		b.save(t)
		_, stderr, _, err := r.traced("", nil, nil, "run", "--bundle", b.Dir, id)
		if err == nil || !strings.Contains(stderr, "RLIMIT_NOT_ONE") {
			t.Fatalf("run of a config with an unknown rlimit: %v, stderr %q", err, stderr)
		}
		if left := existing(leaves); len(left) > 0 {
			t.Errorf("the refused create left cgroups: %v", left)
		}
	})
}

func TestRuntimeCgroupForkedInRefusedCommand(t *testing.T) {
	// A create whose flags fail before it runs (a bad --log-format) had
	// its init forked ahead at exec, and its cgroup leaves made.
	r := newRuntime(t)
	warm := newBundle(t, r.bin, "true")
	r.run("run", "--bundle", warm.Dir, uniqueID(t)+"-warm")
	id := uniqueID(t)
	leaves := cgroupLeaves(t, "/berth/"+id)
	b := newBundle(t, r.bin, "true")
	out, err := r.try("--log-format=xml", "create", "--bundle", b.Dir, id)
	if err == nil {
		t.Fatalf("create with --log-format=xml succeeded: %s", out)
	}
	if left := existing(leaves); len(left) > 0 {
		t.Errorf("the refused command left cgroups: %v (output %q)", left, out)
	}
}

// An exec joins the container's cgroup in its child's constructor: v1
// through "tasks" before it joins the namespaces, cgroup2 by the fork into
// the pid namespace (nsexec/cgroupfork.c), without a migration.
func TestRuntimeExecJoinsCgroupInChild(t *testing.T) {
	r := newRuntime(t)
	cgroupLeaves(t, "/") // skips on a cgroup v2 host, where the Go side moves it
	for _, hostPID := range []bool{false, true} {
		name := "own pid namespace"
		if hostPID {
			name = "host pid namespace"
		}
		t.Run(name, func(t *testing.T) {
			id := uniqueID(t)
			b := newBundle(t, r.bin, "sleep", "60")
			if hostPID {
				var keep []specs.LinuxNamespace
				for _, ns := range b.Spec.Linux.Namespaces {
					if ns.Type != specs.PIDNamespace {
						keep = append(keep, ns)
					}
				}
				b.Spec.Linux.Namespaces = keep
			}
			b.save(t)
			r.run("run", "--detach", "--bundle", b.Dir, id)
			t.Cleanup(func() { r.cmd("delete", "--force", id).Run() })
			initPid := r.state(id).Pid
			pidFile := filepath.Join(t.TempDir(), "exec.pid")
			_, stderr, phases, err := r.traced("", nil, nil, "exec", "--detach", "--pid-file", pidFile, id, "sleep", "30")
			if err != nil {
				t.Fatalf("exec: %v\nstderr: %s", err, stderr)
			}
			// Without a fork the cgroup2 membership of a hybrid host
			// needs a move; a pure v1 host has none to make.
			want := "cgroup-forked-in"
			if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); hostPID && err == nil {
				want = "cgroup-applied"
			}
			if !hasPhase(phases, want) {
				t.Errorf("exec phases %v, want %s", phases, want)
			}
			pid, err := strconv.Atoi(readTrim(t, pidFile))
			if err != nil {
				t.Fatal(err)
			}
			got, init := threadCgroups(t, pid), threadCgroups(t, initPid)
			if len(got) != len(init) {
				t.Errorf("exec'd process in %v, the init in %v", got, init)
			}
			for line := range init {
				if !got[line] {
					t.Errorf("the init is in %q, the exec'd process is not (it is in %v)", line, got)
				}
			}
		})
	}
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
	}
	return strings.TrimSpace(string(data))
}
