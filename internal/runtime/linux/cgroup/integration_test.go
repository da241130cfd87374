//go:build linux

package cgroup_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/linux/cgroup"
)

const helperEnv = "BERTH_CGROUP_TEST_HELPER"

// TestMain doubles as the entry point of helper children: the test binary
// re-executes itself with helperEnv set.
func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "alloc":
		helperAlloc()
	default:
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// helperAlloc waits for a byte on stdin (sent once it is in the cgroup and
// the limit is set), then allocates and touches ~200 MiB.
func helperAlloc() {
	var b [1]byte
	if _, err := os.Stdin.Read(b[:]); err != nil {
		os.Exit(3)
	}
	const size = 200 << 20
	buf := make([]byte, size)
	for i := 0; i < size; i += 4096 {
		buf[i] = byte(i)
	}
	fmt.Println("survived", len(buf))
	os.Exit(0)
}

// requireCgroups skips the test unless this process can create cgroups.
func requireCgroups(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("skipping: creating cgroups needs root (euid %d)", os.Geteuid())
	}
	root := "/sys/fs/cgroup"
	if cgroup.DetectMode() != cgroup.ModeV2 {
		root = "/sys/fs/cgroup/memory"
	}
	dir, err := os.MkdirTemp(root, "berth-probe-")
	if err != nil {
		t.Skipf("skipping: cgroups are not writable here (%v)", err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatalf("remove probe cgroup: %v", err)
	}
}

var nameRE = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// testPath is a cgroup path unique to this test and process.
func testPath(t *testing.T) string {
	return fmt.Sprintf("/berth-test-%d/%s", os.Getpid(), nameRE.ReplaceAllString(t.Name(), "_"))
}

// newManager makes a manager for a fresh test cgroup and registers cleanup:
// thaw, kill every process in it, Destroy, remove the per-process parent
// directories if empty.
func newManager(t *testing.T, cfg cgroup.Config) (cgroup.Manager, string) {
	t.Helper()
	requireCgroups(t)
	if cfg.Path == "" {
		cfg.Path = testPath(t)
	}
	if cfg.ID == "" {
		cfg.ID = "test"
	}
	m, err := cgroup.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		killAll(t, m)
		if err := m.Destroy(); err != nil {
			t.Errorf("cleanup Destroy: %v", err)
		}
		for _, p := range m.Paths() {
			_ = os.Remove(filepath.Dir(p)) // /…/berth-test-<pid>, shared: only if empty
		}
	})
	return m, cfg.Path
}

// killAll thaws the cgroup and SIGKILLs its processes until it is empty.
func killAll(t *testing.T, m cgroup.Manager) {
	_ = m.Thaw()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		pids, err := m.Pids()
		if err != nil || len(pids) == 0 {
			return
		}
		for _, p := range pids {
			_ = unix.Kill(p, unix.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("processes still in the cgroup after 10s")
}

// child is a started process gated on stdin.
type child struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	done    chan struct{} // closed once reaped
	waitErr error
	mu      sync.Mutex
	out     strings.Builder
	lines   atomic.Int64
}

// startChild starts cmd with a stdin gate, moves it into m (Apply), and
// registers cleanup (kill and reap).
func startChild(t *testing.T, m cgroup.Manager, cmd *exec.Cmd) *child {
	t.Helper()
	c := &child{cmd: cmd, done: make(chan struct{})}
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			c.mu.Lock()
			c.out.WriteString(s.Text() + "\n")
			c.mu.Unlock()
			c.lines.Add(1)
		}
	}()
	go func() {
		<-readDone
		c.waitErr = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = m.Thaw()
		_ = cmd.Process.Kill()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Errorf("child %d not reaped", cmd.Process.Pid)
		}
	})
	if err := m.Apply(cmd.Process.Pid); err != nil {
		t.Fatalf("Apply(%d): %v", cmd.Process.Pid, err)
	}
	return c
}

func (c *child) release(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
		t.Fatalf("release child: %v", err)
	}
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

func (c *child) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-c.done:
		return c.waitErr
	case <-time.After(d):
		t.Fatalf("child %v still running after %v; output:\n%s", c.cmd.Args, d, c.output())
		return nil
	}
}

func shell(script string, args ...string) *exec.Cmd {
	return exec.Command("/bin/sh", append([]string{"-c", script, "sh"}, args...)...)
}

func i64(v int64) *int64 { return &v }

// controllerDir is where controller's files for m live.
func controllerDir(t *testing.T, m cgroup.Manager, controller string) string {
	t.Helper()
	paths := m.Paths()
	if cgroup.DetectMode() == cgroup.ModeV2 {
		return paths[""]
	}
	dir, ok := paths[controller]
	if !ok {
		t.Skipf("skipping: controller %s not available (paths %v)", controller, paths)
	}
	return dir
}

func readFile(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func assertGone(t *testing.T, paths map[string]string) {
	t.Helper()
	if len(paths) == 0 {
		t.Fatal("no paths to check")
	}
	for k, p := range paths {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %q dir %s still exists after Destroy (stat err %v)", k, p, err)
		}
	}
}

func TestIntegrationNewCreatesNothingApplyCreatesDestroyRemoves(t *testing.T) {
	m, _ := newManager(t, cgroup.Config{})
	paths := m.Paths()
	if len(paths) == 0 {
		t.Fatal("no paths")
	}
	for k, p := range paths {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("New created %q dir %s (stat err %v)", k, p, err)
		}
	}
	if err := m.Apply(-1); err != nil {
		t.Fatalf("Apply(-1): %v", err)
	}
	for k, p := range m.Paths() {
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			t.Errorf("Apply(-1) did not create %q dir %s: %v", k, p, err)
		}
	}
	if err := m.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	assertGone(t, m.Paths())
	if err := m.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
}

func TestIntegrationMemoryLimitOOMKills(t *testing.T) {
	res := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(32 << 20)}}
	mode := cgroup.DetectMode()
	// Forbid swap where swap accounting exists, so the child cannot escape
	// the limit by swapping.
	if mode == cgroup.ModeV2 || fileExists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") {
		res.Memory.Swap = i64(32 << 20)
	}
	m, _ := newManager(t, cgroup.Config{Resources: res})

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=alloc")
	c := startChild(t, m, cmd)
	if err := m.Set(res); err != nil {
		t.Fatalf("Set: %v", err)
	}
	limitFile := "memory.limit_in_bytes"
	if mode == cgroup.ModeV2 {
		limitFile = "memory.max"
	}
	if got := strings.TrimSpace(readFile(t, controllerDir(t, m, "memory"), limitFile)); got != strconv.Itoa(32<<20) {
		t.Fatalf("%s = %s, want %d", limitFile, got, 32<<20)
	}
	c.release(t)

	err = c.wait(t, 60*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child allocating 200 MiB under a 32 MiB limit exited with %v; output:\n%s", err, c.output())
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child status %v, want killed by SIGKILL; output:\n%s", ws, c.output())
	}
	n, err := m.OOMKillCount()
	if err != nil {
		t.Fatalf("OOMKillCount: %v", err)
	}
	if n < 1 {
		t.Errorf("OOMKillCount = %d, want >= 1", n)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.Memory.Usage.Limit != 32<<20 {
		t.Errorf("stats memory limit = %d, want %d", st.Memory.Usage.Limit, 32<<20)
	}
	// The kernel's failcnt bookkeeping varies (with a memory+swap limit
	// neither failcnt moves on recent kernels); the peak usage does not.
	if mode != cgroup.ModeV2 && st.Memory.Usage.Max < 31<<20 {
		t.Errorf("peak memory usage %d after an OOM kill, want close to the 32 MiB limit", st.Memory.Usage.Max)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestIntegrationPidsLimitStopsForks(t *testing.T) {
	res := &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(8)}}
	m, _ := newManager(t, cgroup.Config{Resources: res})
	// Tries to start 30 background sleeps; with pids.max=8 forks fail with
	// EAGAIN once 8 tasks exist.
	c := startChild(t, m, shell(`read x; i=0; while [ $i -lt 30 ]; do sleep 5 & i=$((i+1)); done; wait`))
	if err := m.Set(res); err != nil {
		t.Fatalf("Set: %v", err)
	}
	c.release(t)

	maxSeen := 0
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); {
		pids, err := m.Pids()
		if err != nil {
			t.Fatalf("Pids: %v", err)
		}
		maxSeen = max(maxSeen, len(pids))
		time.Sleep(20 * time.Millisecond)
	}
	if maxSeen > 8 {
		t.Errorf("saw %d processes in the cgroup, limit is 8", maxSeen)
	}
	if maxSeen < 2 {
		t.Errorf("saw at most %d processes: the child did not fork at all (output %q)", maxSeen, c.output())
	}
	events := readFile(t, controllerDir(t, m, "pids"), "pids.events")
	var rejected int
	if _, err := fmt.Sscanf(strings.TrimSpace(events), "max %d", &rejected); err != nil {
		t.Fatalf("parse pids.events %q: %v", events, err)
	}
	if rejected < 1 {
		t.Errorf("pids.events reports %d rejected forks, want >= 1 (30 forks under a limit of 8)", rejected)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.Pids.Limit != 8 || st.Pids.Current > 8 {
		t.Errorf("stats pids = %+v, want limit 8 and current <= 8", st.Pids)
	}
	t.Logf("max processes seen %d, forks rejected %d, shell output %q", maxSeen, rejected, c.output())
}

func TestIntegrationFreezeThawPidsStatsLoad(t *testing.T) {
	m, _ := newManager(t, cgroup.Config{})
	c := startChild(t, m, shell(`read x; while :; do echo tick; sleep 0.05; done`))
	if err := m.Set(nil); err != nil {
		t.Fatalf("Set(nil): %v", err)
	}
	c.release(t)
	waitFor(t, "first tick", func() bool { return c.lines.Load() > 0 })

	pids, err := m.Pids()
	if err != nil {
		t.Fatalf("Pids: %v", err)
	}
	if !slices.Contains(pids, c.cmd.Process.Pid) {
		t.Errorf("Pids() = %v, does not contain child %d", pids, c.cmd.Process.Pid)
	}

	if err := m.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if p, err := m.Paused(); err != nil || !p {
		t.Fatalf("Paused() = %v, %v after Freeze", p, err)
	}
	if cgroup.DetectMode() != cgroup.ModeV2 {
		if s := strings.TrimSpace(readFile(t, controllerDir(t, m, "freezer"), "freezer.state")); s != "FROZEN" {
			t.Errorf("freezer.state = %s after Freeze", s)
		}
	}
	time.Sleep(150 * time.Millisecond) // drain lines written before the freeze
	before := c.lines.Load()
	time.Sleep(400 * time.Millisecond)
	if after := c.lines.Load(); after != before {
		t.Errorf("frozen child kept running: %d -> %d lines", before, after)
	}

	// A manager loaded from the persisted paths sees the same cgroup.
	l, err := cgroup.Load(m.Paths(), false)
	if err != nil {
		t.Fatalf("Load(%v): %v", m.Paths(), err)
	}
	if p, err := l.Paused(); err != nil || !p {
		t.Errorf("loaded Paused() = %v, %v", p, err)
	}
	if err := l.Thaw(); err != nil {
		t.Fatalf("Thaw via loaded manager: %v", err)
	}
	if p, err := m.Paused(); err != nil || p {
		t.Fatalf("Paused() = %v, %v after Thaw", p, err)
	}
	resumed := c.lines.Load()
	waitFor(t, "ticks after thaw", func() bool { return c.lines.Load() > resumed })

	st, err := l.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.Memory.Usage.Usage == 0 {
		t.Errorf("memory usage is 0 with a running child: %+v", st.Memory.Usage)
	}
	if st.Pids.Current < 1 {
		t.Errorf("pids.current = %d with a running child", st.Pids.Current)
	}
	if lp, err := l.Pids(); err != nil || !slices.Contains(lp, c.cmd.Process.Pid) {
		t.Errorf("loaded Pids() = %v, %v", lp, err)
	}

	// Destroy refuses (EBUSY) while processes remain, names the directory,
	// and succeeds once they are gone.
	err = l.Destroy()
	if err == nil {
		t.Fatal("Destroy succeeded with a live process in the cgroup")
	}
	if !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), "destroy") {
		t.Errorf("Destroy error = %v, want an EBUSY naming destroy", err)
	}
	killAll(t, l)
	if err := l.Destroy(); err != nil {
		t.Fatalf("Destroy after kill: %v", err)
	}
	assertGone(t, m.Paths())
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIntegrationHybridUnifiedHierarchy(t *testing.T) {
	if cgroup.DetectMode() != cgroup.ModeHybrid {
		t.Skipf("skipping: host is %s, not hybrid", cgroup.DetectMode())
	}
	m, path := newManager(t, cgroup.Config{})
	want := filepath.Join("/sys/fs/cgroup/unified", path)
	if got := m.Paths()[""]; got != want {
		t.Fatalf("Paths()[\"\"] = %q, want %q (paths %v)", got, want, m.Paths())
	}
	c := startChild(t, m, shell(`read x; sleep 30`))
	pid := c.cmd.Process.Pid
	procs := readFile(t, want, "cgroup.procs")
	if !slices.Contains(strings.Fields(procs), strconv.Itoa(pid)) {
		t.Errorf("child %d not in %s/cgroup.procs (%q)", pid, want, procs)
	}
	self := readFile(t, "/proc/"+strconv.Itoa(pid), "cgroup")
	if !strings.Contains(self, "\n0::"+path+"\n") && !strings.HasPrefix(self, "0::"+path+"\n") {
		t.Errorf("/proc/%d/cgroup lacks 0::%s:\n%s", pid, path, self)
	}
	if !strings.Contains(self, ":memory:"+path+"\n") {
		t.Errorf("/proc/%d/cgroup lacks memory:%s:\n%s", pid, path, self)
	}
	killAll(t, m)
	if err := m.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	assertGone(t, m.Paths())
}

func TestIntegrationDevices(t *testing.T) {
	res := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
	devs := []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}}
	m, _ := newManager(t, cgroup.Config{Resources: res, Devices: devs})

	// Device nodes outside the cgroup's reach: null (default), fuse
	// (linux.devices) and kmsg (denied).
	dir := t.TempDir()
	for name, dev := range map[string][2]uint32{"null": {1, 3}, "fuse": {10, 229}, "kmsg": {1, 11}} {
		if err := unix.Mknod(filepath.Join(dir, name), unix.S_IFCHR|0o600, int(unix.Mkdev(dev[0], dev[1]))); err != nil {
			t.Skipf("skipping: mknod %s: %v", name, err)
		}
	}
	c := startChild(t, m, shell(`read x; for n in null fuse kmsg; do
		if dd if="$1/$n" of=/dev/null bs=1 count=0 2>/dev/null; then echo "$n ok"; else echo "$n denied"; fi
	done`, dir))
	if err := m.Set(res); err != nil {
		t.Fatalf("Set: %v", err)
	}
	var list string
	if cgroup.DetectMode() != cgroup.ModeV2 {
		list = readFile(t, controllerDir(t, m, "devices"), "devices.list")
		for _, want := range []string{"c 1:3 rwm", "c 10:229 rwm", "c 136:* rwm", "c 5:1 rwm"} {
			if !strings.Contains(list, want+"\n") {
				t.Errorf("devices.list lacks %q:\n%s", want, list)
			}
		}
		if strings.Contains(list, "a *:* rwm") || strings.Contains(list, "c 1:11") {
			t.Errorf("devices.list still allows everything or kmsg:\n%s", list)
		}
	}
	c.release(t)
	if err := c.wait(t, 10*time.Second); err != nil {
		t.Fatalf("child: %v; output:\n%s", err, c.output())
	}
	if got, want := c.output(), "null ok\nfuse ok\nkmsg denied\n"; got != want {
		t.Errorf("device access inside the cgroup:\n got %q\nwant %q", got, want)
	}

	// An update without device rules leaves them alone.
	if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20)}}); err != nil {
		t.Fatalf("update Set: %v", err)
	}
	if list != "" {
		if after := readFile(t, controllerDir(t, m, "devices"), "devices.list"); after != list {
			t.Errorf("update without devices changed devices.list:\nbefore:\n%s\nafter:\n%s", list, after)
		}
		if lim := strings.TrimSpace(readFile(t, controllerDir(t, m, "memory"), "memory.limit_in_bytes")); lim != strconv.Itoa(64<<20) {
			t.Errorf("memory.limit_in_bytes = %s after update, want %d", lim, 64<<20)
		}
	}
}

func TestIntegrationSetErrorNamesFile(t *testing.T) {
	m, _ := newManager(t, cgroup.Config{})
	if err := m.Apply(-1); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	// The kernel refuses CFS quotas below 1ms.
	err := m.Set(&specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(500)}})
	if err == nil {
		t.Fatal("Set with a 500us quota succeeded")
	}
	file, dir := "cpu.max", controllerDir(t, m, "cpu")
	if cgroup.DetectMode() != cgroup.ModeV2 {
		file = "cpu.cfs_quota_us"
	}
	t.Logf("Set error: %v", err)
	want := fmt.Sprintf("cgroup %s: set %s: ", dir, file)
	if !strings.HasPrefix(err.Error(), want) || !errors.Is(err, unix.EINVAL) {
		t.Errorf("Set error = %q; want prefix %q and EINVAL", err, want)
	}
	var ce *cgroup.Error
	if !errors.As(err, &ce) || ce.File != file {
		t.Errorf("errors.As *cgroup.Error: %+v", ce)
	}
}

func TestIntegrationUnifiedRefusedOffV2(t *testing.T) {
	if cgroup.DetectMode() == cgroup.ModeV2 {
		t.Skip("skipping: host is cgroup v2")
	}
	_, err := cgroup.New(cgroup.Config{ID: "x", Resources: &specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}}})
	if !errors.Is(err, cgroup.ErrUnifiedNeedsV2) {
		t.Errorf("New with unified on %s = %v, want ErrUnifiedNeedsV2", cgroup.DetectMode(), err)
	}
}

func TestSystemdUnavailable(t *testing.T) {
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		t.Skip("skipping: systemd is running here")
	}
	_, err := cgroup.New(cgroup.Config{ID: "x", Systemd: true})
	if !errors.Is(err, cgroup.ErrSystemdUnavailable) || !strings.Contains(err.Error(), "systemd cgroup driver is not supported: systemd is not running") {
		t.Errorf("New(systemd) = %v", err)
	}
	_, err = cgroup.Load(map[string]string{"": "/sys/fs/cgroup/system.slice/berth-x.scope", "devices": "/sys/fs/cgroup/devices/system.slice/berth-x.scope"}, true)
	if !errors.Is(err, cgroup.ErrSystemdUnavailable) {
		t.Errorf("Load(systemd) = %v", err)
	}
}

func TestLoadValidatesPaths(t *testing.T) {
	for _, paths := range []map[string]string{
		nil,
		{"devices": "relative/path"},
		{"devices": "/sys/fs/cgroup/devices/a/../b"},
	} {
		if _, err := cgroup.Load(paths, false); err == nil {
			t.Errorf("Load(%v) succeeded", paths)
		}
	}
}

func TestDetectMode(t *testing.T) {
	var st unix.Statfs_t
	want := cgroup.ModeV1
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		want = cgroup.ModeV2
	} else if unix.Statfs("/sys/fs/cgroup/unified", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		want = cgroup.ModeHybrid
	}
	if got := cgroup.DetectMode(); got != want {
		t.Errorf("DetectMode() = %q, want %q", got, want)
	}
}

func TestIntegrationV1MemoryExtras(t *testing.T) {
	if cgroup.DetectMode() == cgroup.ModeV2 {
		t.Skip("skipping: kernelTCP/useHierarchy are cgroup v1 knobs")
	}
	m, _ := newManager(t, cgroup.Config{})
	if err := m.Apply(-1); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	dir := controllerDir(t, m, "memory")
	if !fileExists(filepath.Join(dir, "memory.kmem.tcp.limit_in_bytes")) {
		t.Skip("skipping: kernel has no memory.kmem.tcp.limit_in_bytes")
	}
	yes := true
	err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{KernelTCP: i64(16 << 20), UseHierarchy: &yes}})
	if err != nil {
		t.Fatalf("Set: %v", err)
	}
	if got := strings.TrimSpace(readFile(t, dir, "memory.kmem.tcp.limit_in_bytes")); got != strconv.Itoa(16<<20) {
		t.Errorf("memory.kmem.tcp.limit_in_bytes = %s, want %d", got, 16<<20)
	}
	if got := strings.TrimSpace(readFile(t, dir, "memory.use_hierarchy")); got != "1" {
		t.Errorf("memory.use_hierarchy = %s, want 1", got)
	}
	// Kernels since 5.x refuse non-hierarchical mode; if this one does,
	// the error must say which file refused.
	no := false
	if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{UseHierarchy: &no}}); err != nil {
		t.Logf("useHierarchy=false: %v", err)
		want := fmt.Sprintf("cgroup %s: set memory.use_hierarchy: ", dir)
		if !strings.HasPrefix(err.Error(), want) {
			t.Errorf("useHierarchy=false error %q, want prefix %q", err, want)
		}
	} else if got := strings.TrimSpace(readFile(t, dir, "memory.use_hierarchy")); got != "0" {
		t.Errorf("useHierarchy=false accepted but memory.use_hierarchy = %s", got)
	}
}

// TestPathRulesOnThisHost checks where New would put absolute, default and
// relative cgroups, without creating anything.
func TestPathRulesOnThisHost(t *testing.T) {
	own := map[string]string{} // controller (or "" for cgroup2) -> own cgroup
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			own[c] = parts[2]
		}
	}
	mode := cgroup.DetectMode()
	check := func(cfg cgroup.Config, want map[string]string) {
		t.Helper()
		m, err := cgroup.New(cfg)
		if err != nil {
			t.Fatalf("New(%+v): %v", cfg, err)
		}
		got := m.Paths()
		for k, w := range want {
			if got[k] != w {
				t.Errorf("cgroupsPath %q: Paths()[%q] = %q, want %q", cfg.Path, k, got[k], w)
			}
			if _, err := os.Stat(w); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("New created %s", w)
			}
		}
	}
	suffix := fmt.Sprintf("berth-pathrule-%d", os.Getpid())
	switch mode {
	case cgroup.ModeV2:
		check(cgroup.Config{ID: suffix}, map[string]string{"": "/sys/fs/cgroup/berth/" + suffix})
		check(cgroup.Config{ID: "x", Path: "/abs/" + suffix}, map[string]string{"": "/sys/fs/cgroup/abs/" + suffix})
		check(cgroup.Config{ID: "x", Path: "rel/" + suffix}, map[string]string{"": filepath.Join("/sys/fs/cgroup", filepath.Dir(own[""]), "rel", suffix)})
	default:
		check(cgroup.Config{ID: suffix}, map[string]string{"memory": "/sys/fs/cgroup/memory/berth/" + suffix, "devices": "/sys/fs/cgroup/devices/berth/" + suffix})
		check(cgroup.Config{ID: "x", Path: "/abs/" + suffix}, map[string]string{"memory": "/sys/fs/cgroup/memory/abs/" + suffix, "pids": "/sys/fs/cgroup/pids/abs/" + suffix})
		rel := map[string]string{
			"memory":  filepath.Join("/sys/fs/cgroup/memory", own["memory"], "rel", suffix),
			"devices": filepath.Join("/sys/fs/cgroup/devices", own["devices"], "rel", suffix),
		}
		if mode == cgroup.ModeHybrid {
			check(cgroup.Config{ID: suffix}, map[string]string{"": "/sys/fs/cgroup/unified/berth/" + suffix})
			rel[""] = filepath.Join("/sys/fs/cgroup/unified", own[""], "rel", suffix)
		}
		check(cgroup.Config{ID: "x", Path: "rel/" + suffix}, rel)
	}
}
