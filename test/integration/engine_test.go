//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const demoImage = "berth-demo/busybox:latest"

var (
	demoTarOnce sync.Once
	demoTarPath string
	demoTarErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	watchPackageTimeout()
	code := m.Run()
	if demoTarPath != "" {
		os.RemoveAll(filepath.Dir(demoTarPath))
	}
	reportHangs()
	os.Exit(code)
}

// loadDemoImage loads the busybox image scripts/mkimage.sh builds (the
// one `make demo` uses) into e's store.
func (e *engineEnv) loadDemoImage() {
	e.t.Helper()
	demoTarOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-demo-image-")
		if err != nil {
			demoTarErr = err
			return
		}
		demoTarPath = filepath.Join(dir, "busybox.tar")
		script, _ := filepath.Abs("../../scripts/mkimage.sh")
		if out, err := exec.Command(script, demoTarPath, demoImage).CombinedOutput(); err != nil {
			demoTarErr = fmt.Errorf("mkimage.sh: %v: %s", err, out)
		}
	})
	if demoTarErr != nil {
		e.t.Fatal(demoTarErr)
	}
	e.run("load", "-q", "-i", demoTarPath)
}

// exitCode runs berth and returns its exit status and output.
func (e *engineEnv) exitCode(args ...string) (int, string, string) {
	e.t.Helper()
	out, errOut, err := e.try(args...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out, errOut
	case errors.As(err, &ee):
		return ee.ExitCode(), out, errOut
	}
	e.t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	return 0, "", ""
}

type inspected struct {
	ID    string `json:"Id"`
	Name  string
	State struct {
		Status     string
		Running    bool
		Pid        int
		ExitCode   int
		OOMKilled  bool
		Error      string
		StartedAt  time.Time
		FinishedAt time.Time
	}
	RestartCount int
	LogPath      string
	HostConfig   struct {
		LogConfig struct {
			Type   string
			Config map[string]string
		}
	}
	Config struct {
		Labels map[string]string
		Env    []string
	}
}

func (e *engineEnv) inspect(ref string) inspected {
	e.t.Helper()
	var out []inspected
	if err := json.Unmarshal([]byte(e.run("inspect", ref)), &out); err != nil || len(out) != 1 {
		e.t.Fatalf("inspect %s: %v (%d objects)", ref, err, len(out))
	}
	return out[0]
}

// waitStopped waits up to d for process pid to be stopped (a test's
// _BERTH_TEST_STOP_AT point: its SIGSTOP).
func waitStopped(t testing.TB, d time.Duration, what string, pid int) {
	t.Helper()
	waitFor(t, d, what, func() bool {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return strings.Contains(string(st), ") T ")
	})
}

// waitFor polls cond for up to d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkNothingLeft asserts that no container of e left a mount, a runtime
// state directory, an active layer, a monitor or a record.
func (e *engineEnv) checkNothingLeft() {
	e.t.Helper()
	if out := e.run("ps", "-aq"); strings.TrimSpace(out) != "" {
		e.t.Errorf("containers left: %s", out)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && (f[4] == filepath.Join(e.state, "netns") || f[4] == filepath.Join(e.state, "pods")) {
			continue // the namespaces' shared mount points themselves, as /run/netns
		}
		if len(f) > 4 && filepath.Dir(f[4]) == filepath.Join(e.state, "netns") && e.warmSpareHeld(filepath.Base(f[4])) {
			// The network namespace a running berth serve keeps
			// attached for its next pod names no pod: it is serve's,
			// and goes with it (TestCRIWarmPodNetwork).
			continue
		}
		if strings.Contains(l, e.state) || strings.Contains(l, e.root) {
			e.t.Errorf("mount left: %s", l)
		}
	}
	for _, dir := range []string{filepath.Join(e.state, "runtime"), filepath.Join(e.state, "containers"), filepath.Join(e.root, "containers"), filepath.Join(e.root, "snapshots", "active")} {
		ents, _ := os.ReadDir(dir)
		for _, ent := range ents {
			if ent.Name() == ".seccomp" {
				continue // the runtime's cache of compiled filters, no container's
			}
			e.t.Errorf("left in %s: %s", dir, ent.Name())
		}
	}
	if out, _ := exec.Command("pgrep", "-f", "berth-monitor .*").Output(); len(out) > 0 {
		for _, pid := range strings.Fields(string(out)) {
			env, _ := os.ReadFile("/proc/" + pid + "/environ")
			// A monitor that berth serve keeps parked, and its
			// child, name no container: they are serve's, and go
			// with it (TestServeSpareMonitorEnds).
			if strings.Contains(string(env), e.state) && !parkedMonitorOrChild(pid) {
				e.t.Errorf("monitor %s of this test still runs", pid)
			}
		}
	}
}

func TestEngineLifecycle(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	id := strings.TrimSpace(e.run("create", "--name", "life", "--label", "tier=test", demoImage, "sh", "-c", `trap 'echo got TERM; exit 0' TERM; echo started; while :; do sleep 0.05; done`))
	if len(id) != 64 {
		t.Fatalf("create printed %q, want a 64-digit ID", id)
	}
	if st := e.inspect("life").State.Status; st != "created" {
		t.Fatalf("after create: status %q", st)
	}
	// Names are unique.
	if code, _, errOut := e.exitCode("create", "--name", "life", demoImage, "true"); code != 1 || !strings.Contains(errOut, "already in use") {
		t.Fatalf("second create of a name: exit %d, %s", code, errOut)
	}
	e.run("start", "life")
	waitFor(t, 5*time.Second, "the container's first line", func() bool { return strings.Contains(e.run("logs", "life"), "started") })
	c := e.inspect(id[:5]) // a unique ID prefix resolves
	if c.State.Status != "running" || !c.State.Running || c.State.Pid <= 0 || c.Config.Labels["tier"] != "test" {
		t.Fatalf("running container inspects as %+v", c)
	}
	if out := e.run("ps", "--format", "{{.Names}} {{.State}}"); strings.TrimSpace(out) != "life running" {
		t.Fatalf("ps: %q", out)
	}
	rows, err := jsonLines[map[string]any](e.run("ps", "--format", "json"))
	if err != nil || len(rows) != 1 || rows[0]["Names"] != "life" {
		t.Fatalf("ps --format json: %v %v", rows, err)
	}
	if code, _, errOut := e.exitCode("rm", "life"); code == 0 || !strings.Contains(errOut, "stop it first") {
		t.Fatalf("rm of a running container: exit %d, %s", code, errOut)
	}
	e.run("stop", "life")
	c = e.inspect("life")
	if c.State.Status != "exited" || c.State.ExitCode != 0 || c.State.FinishedAt.Before(c.State.StartedAt) {
		t.Fatalf("after stop: %+v", c.State)
	}
	if !strings.Contains(e.run("logs", "life"), "got TERM") {
		t.Errorf("the stop signal did not reach the process: %s", e.run("logs", "life"))
	}
	// The root filesystem is unmounted while stopped and back at start;
	// what the container wrote stays.
	e.run("start", "life")
	waitFor(t, 5*time.Second, "running again", func() bool { return e.inspect("life").State.Status == "running" })
	e.run("rename", "life", "life2")
	if e.inspect("life2").ID != id {
		t.Fatal("rename lost the container")
	}
	e.run("pause", "life2")
	if st := e.inspect("life2").State.Status; st != "paused" {
		t.Fatalf("after pause: %s", st)
	}
	e.run("unpause", "life2")
	e.run("rm", "-f", "life2")
	if code, _, _ := e.exitCode("inspect", "life2"); code == 0 {
		t.Fatal("inspect of a removed container succeeded")
	}
	e.checkNothingLeft()
}

func TestEngineExitCodes(t *testing.T) { forEachIsolation(t, testExitCodes) }

func testExitCodes(t *testing.T, e *engineEnv) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"run", "--rm", demoImage, "sh", "-c", "exit 3"}, 3},
		{[]string{"run", "--rm", demoImage, "true"}, 0},
		{[]string{"run", "--rm", demoImage, "no-such-command"}, 127},
		{[]string{"run", "--rm", demoImage, "/etc/passwd"}, 126},
		{[]string{"run", "--rm", "--no-such-flag", demoImage, "true"}, 125},
		{[]string{"run", "--rm", "no-such-image", "true"}, 125},
		// A process killed by signal n exits 128+n.
		{[]string{"run", "--rm", demoImage, "sh", "-c", "sleep 10 & kill -USR1 $!; wait $!; exit $?"}, 128 + 10},
	} {
		code, _, errOut := e.exitCode(tc.args...)
		if code != tc.want {
			t.Errorf("berth %s: exit %d, want %d (%s)", strings.Join(tc.args, " "), code, tc.want, errOut)
		}
	}
	// Killed from outside.
	e.run("run", "-d", "--name", "victim", demoImage, "sleep", "100")
	e.run("kill", "-s", "KILL", "victim")
	if out := strings.TrimSpace(e.run("wait", "victim")); out != "137" {
		t.Errorf("wait after kill -s KILL printed %q, want 137", out)
	}
	e.run("rm", "victim")
	e.checkNothingLeft()
}

// patience is how long to wait for what takes d with linux containers:
// longer under vm, where each start boots a VM (seconds under TCG, more
// on a loaded host).
func (e *engineEnv) patience(d time.Duration) time.Duration {
	if e.isolation == "vm" {
		return 10 * d
	}
	return d
}

// stoppedProcess finds a process of this test's engine that stopped
// itself at a _BERTH_TEST_STOP_AT point.
func (e *engineEnv) stoppedProcess(comm string) int {
	e.t.Helper()
	var pid int
	waitFor(e.t, 10*time.Second, comm+" to stop at its test point", func() bool {
		ents, _ := os.ReadDir("/proc")
		for _, ent := range ents {
			p, err := strconv.Atoi(ent.Name())
			if err != nil {
				continue
			}
			st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
			env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p))
			if strings.Contains(string(st), "("+comm+") T ") && bytes.Contains(env, []byte(e.state)) {
				pid = p
				return true
			}
		}
		return false
	})
	return pid
}

// wait returns only once the exit is recorded, so that rm after it
// finds an exited container. The monitor's exit handler is held before it
// records the exit; before the fix, wait answered from the exit file at
// once and the rm that followed said "it is running".
func TestEngineWaitThenRm(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	run := e.command("run", "-d", "--name", "w", demoImage, "sh", "-c", "exit 3")
	run.Env = append(run.Env, "_BERTH_TEST_STOP_AT=exit-handler")
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("run: %v: %s", err, out)
	}
	handler := e.stoppedProcess("berth-exit")
	wait := e.command("wait", "w")
	var out bytes.Buffer
	wait.Stdout = &out
	if err := wait.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- wait.Wait() }()
	select {
	case err := <-waited:
		code, _, errOut := e.exitCode("rm", "w")
		t.Fatalf("wait returned (%v, %q) before the exit was recorded; rm then: exit %d %s", err, out.String(), code, errOut)
	case <-time.After(500 * time.Millisecond):
	}
	syscall.Kill(handler, syscall.SIGCONT)
	if err := <-waited; err != nil || strings.TrimSpace(out.String()) != "3" {
		t.Fatalf("wait: %v, printed %q, want 3", err, out.String())
	}
	e.run("rm", "w")

	// inspect reports the exit from the exit file while the handler is
	// held; an rm after it waits for the record instead of refusing "it
	// is running".
	run = e.command("run", "-d", "--name", "w2", demoImage, "sh", "-c", "exit 4")
	run.Env = append(run.Env, "_BERTH_TEST_STOP_AT=exit-handler")
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("run: %v: %s", err, out)
	}
	handler = e.stoppedProcess("berth-exit")
	if st := e.inspect("w2").State; st.Status != "exited" || st.ExitCode != 4 {
		t.Fatalf("inspect while the exit is being recorded: %s %d, want exited 4", st.Status, st.ExitCode)
	}
	rm := e.command("rm", "w2")
	var rmErr bytes.Buffer
	rm.Stderr = &rmErr
	if err := rm.Start(); err != nil {
		t.Fatal(err)
	}
	removed := make(chan error, 1)
	go func() { removed <- rm.Wait() }()
	select {
	case err := <-removed:
		syscall.Kill(handler, syscall.SIGCONT)
		t.Fatalf("rm of a container inspect showed exited, while its exit was being recorded: %v %s", err, rmErr.String())
	case <-time.After(500 * time.Millisecond):
	}
	syscall.Kill(handler, syscall.SIGCONT)
	if err := <-removed; err != nil {
		t.Fatalf("rm after the exit was recorded: %v %s", err, rmErr.String())
	}

	// The same script line, many times, beside busy loops.
	stop := make(chan struct{})
	defer close(stop)
	for range 4 {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	for i := range 20 {
		name := fmt.Sprintf("wr%d", i)
		e.run("run", "-d", "--name", name, demoImage, "sleep", "100")
		e.run("kill", name)
		if got := strings.TrimSpace(e.run("wait", name)); got != "137" {
			t.Errorf("wait %s printed %q, want 137", name, got)
		}
		if code, _, errOut := e.exitCode("rm", name); code != 0 {
			t.Fatalf("rm right after wait, round %d: exit %d: %s", i, code, errOut)
		}
	}
	e.checkNothingLeft()
}

func TestEngineRunOptions(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "in.txt"), []byte("from the host\n"), 0o644)
	envFile := filepath.Join(t.TempDir(), "env")
	os.WriteFile(envFile, []byte("# comment\nFROM_FILE=yes\n\nSPACED=a b\n"), 0o644)
	out := e.run("run", "--rm",
		"-e", "A=1", "--env-file", envFile, "-w", "/tmp", "-u", "www:nogroup", "--hostname", "box",
		"-v", host+":/data:ro", "--tmpfs", "/scratch:size=1m", "--ulimit", "nofile=1024:2048",
		"--cap-drop", "ALL", "--cap-add", "CHOWN", "--read-only", "--pids-limit", "64",
		demoImage, "sh", "-c", `echo "A=$A F=$FROM_FILE S=$SPACED"; pwd; id; hostname; cat /data/in.txt;
touch /data/x 2>/dev/null || echo data-ro; touch /rootfile 2>/dev/null || echo root-ro; touch /scratch/ok && echo scratch-rw;
ulimit -n; ulimit -Hn; grep CapBnd /proc/self/status; cat /etc/hostname; grep -c localhost /etc/hosts`)
	for _, want := range []string{"A=1 F=yes S=a b", "/tmp\n", "uid=33(www) gid=65534(nogroup)", "box\n", "from the host",
		"data-ro", "root-ro", "scratch-rw", "1024\n2048\n", "CapBnd:\t0000000000000001"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// --entrypoint replaces the image's command; the arguments follow it.
	if out := e.run("run", "--rm", "--entrypoint", "echo", demoImage, "via", "entrypoint"); out != "via entrypoint\n" {
		t.Errorf("--entrypoint: %q", out)
	}
	// --network none has only loopback, host the host's interfaces.
	if out := e.run("run", "--rm", "--network", "none", demoImage, "ls", "/sys/class/net"); strings.TrimSpace(out) != "lo" {
		t.Errorf("--network none: interfaces %q", out)
	}
	hostIfs, _ := os.ReadDir("/sys/class/net")
	if out := e.run("run", "--rm", "--network", "host", demoImage, "ls", "/sys/class/net"); len(strings.Fields(out)) != len(hostIfs) {
		t.Errorf("--network host: interfaces %q, host has %d", out, len(hostIfs))
	}
	// -i passes stdin and closes it at its end.
	cmd := e.command("run", "--rm", "-i", demoImage, "sh", "-c", "wc -l")
	cmd.Stdin = strings.NewReader("a\nb\nc\n")
	if b, err := cmd.Output(); err != nil || strings.TrimSpace(string(b)) != "3" {
		t.Errorf("run -i: %q %v", b, err)
	}
	// A container that stops reading its stdin does not stop its monitor.
	yes := e.command("run", "--rm", "-i", demoImage, "head", "-1")
	yes.Stdin = &endless{}
	done := make(chan error, 1)
	var yesOut []byte
	go func() {
		var err error
		yesOut, err = yes.Output()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil || string(yesOut) != "y\n" {
			t.Errorf("run -i head -1 fed forever: %q %v", yesOut, err)
		}
	case <-time.After(20 * time.Second):
		yes.Process.Kill()
		t.Error("run -i of a container that stops reading stdin hung")
	}
	// --memory lands in the cgroup.
	id := strings.TrimSpace(e.run("run", "-d", "--memory", "64m", demoImage, "sleep", "100"))
	pid := e.inspect(id).State.Pid
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if !strings.Contains(string(cg), id) {
		t.Errorf("the container's process is not in a cgroup named after it: %s", cg)
	}
	e.run("rm", "-f", id)
	if code, _, errOut := e.exitCode("run", "--rm", "--restart", "always", demoImage, "true"); code != 125 || !strings.Contains(errOut, "conflict") {
		t.Errorf("--rm with --restart: exit %d %s", code, errOut)
	}
	e.checkNothingLeft()
}

func TestEngineLogs(t *testing.T) { forEachIsolation(t, testLogs) }

func testLogs(t *testing.T, e *engineEnv) {
	// About 30 KB of log at a pace logs -f keeps up with, rotated
	// every 4 KB into at most 3 files.
	e.run("run", "-d", "--name", "talker", "--log-opt", "max-size=4k", "--log-opt", "max-file=3", demoImage, "sh", "-c",
		`i=0; while [ $i -lt 400 ]; do echo "out $i"; i=$((i+1)); [ $((i % 8)) = 0 ] && usleep 20000; done; sleep 0.3; echo last; sleep 0.3`)
	// Follow from the start: every line arrives in order, and logs -f
	// ends when the container does.
	f := e.command("logs", "-f", "talker")
	stdout, _ := f.StdoutPipe()
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var got []string
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	done := make(chan error, 1)
	go func() { done <- f.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("logs -f: %v", err)
		}
	case <-time.After(e.patience(20 * time.Second)):
		f.Process.Kill()
		t.Fatal("logs -f did not end after the container exited")
	}
	if len(got) == 0 || got[len(got)-1] != "last" {
		t.Fatalf("logs -f ended with %q (of %d lines), want the last line", got[max(0, len(got)-1):], len(got))
	}
	// Rotation kept at most 3 files of about 4k: the oldest lines are
	// gone, what is left is in order and complete.
	c := e.inspect("talker")
	matches, _ := filepath.Glob(c.LogPath + "*")
	if len(matches) < 2 || len(matches) > 3 {
		t.Errorf("log files %v: want rotation into 2-3 files", matches)
	}
	// What -f printed is in order; what is left in the files is
	// complete from its first line to the end.
	inOrder := func(lines []string, contiguous bool) {
		t.Helper()
		prev := -1
		for _, l := range lines {
			n, err := strconv.Atoi(strings.TrimPrefix(l, "out "))
			if err != nil || n <= prev || contiguous && prev != -1 && n != prev+1 {
				t.Fatalf("stdout lines out of order or with a gap at %q after %d", l, prev)
			}
			prev = n
		}
		if prev != 399 {
			t.Errorf("last stdout line out %d, want 399", prev)
		}
	}
	inOrder(got[:len(got)-1], true)
	if got[0] != "out 0" {
		t.Errorf("logs -f started at %q, want out 0", got[0])
	}
	all := strings.Split(strings.TrimSuffix(e.run("logs", "talker"), "\n"), "\n")
	inOrder(all[:len(all)-1], true)
	if out := e.run("logs", "--tail", "2", "talker"); out != "out 399\nlast\n" {
		t.Errorf("logs --tail 2: %q", out)
	}
	// Bytes that are not UTF-8 are logged as U+FFFD: every line is JSON.
	raw := e.command("run", "--name", "bytes", "-i", demoImage, "cat")
	raw.Stdin = strings.NewReader("a\xffb\x01\n")
	raw.Run()
	logPath := e.inspect("bytes").LogPath
	data, err := os.ReadFile(logPath)
	if err != nil || !json.Valid(bytes.TrimSpace(data)) || !strings.Contains(string(data), `a\ufffdb\u0001\n`) {
		t.Errorf("log of invalid UTF-8: %q %v", data, err)
	}
	e.run("rm", "bytes")
	// Streams stay apart.
	e.run("run", "--name", "streams", demoImage, "sh", "-c", "echo to-out; echo to-err >&2")
	if out, errOut, err := e.try("logs", "streams"); err != nil || out != "to-out\n" || errOut != "to-err\n" {
		t.Errorf("logs of two streams: %q / %q (%v)", out, errOut, err)
	}
	e.run("rm", "streams")
	ts := e.run("logs", "-t", "--tail", "1", "talker")
	stamp, rest, _ := strings.Cut(strings.TrimSpace(ts), " ")
	if at, err := time.Parse(time.RFC3339Nano, stamp); err != nil || rest != "last" || time.Since(at) > time.Minute {
		t.Errorf("logs -t: %q", ts)
	}
	if out := e.run("logs", "--since", time.Now().Add(time.Minute).Format(time.RFC3339), "talker"); out != "" {
		t.Errorf("logs --since the future printed %q", out)
	}
	e.run("rm", "talker")
	e.checkNothingLeft()
}

func TestEngineStopEscalatesToKill(t *testing.T) { forEachIsolation(t, testStopEscalatesToKill) }

func testStopEscalatesToKill(t *testing.T, e *engineEnv) {
	// A process that ignores the stop signal is killed after the timeout.
	e.run("run", "-d", "--name", "stubborn", demoImage, "sh", "-c", `trap '' TERM; while :; do sleep 0.05; done`)
	start := time.Now()
	e.run("stop", "-t", "1", "stubborn")
	took := time.Since(start)
	c := e.inspect("stubborn")
	if c.State.Status != "exited" || c.State.ExitCode != 137 {
		t.Errorf("after stop -t 1: %s, exit %d; want exited 137", c.State.Status, c.State.ExitCode)
	}
	if took < time.Second {
		t.Errorf("stop -t 1 returned after %s, before the timeout", took)
	}
	// --stop-signal is what stop sends.
	// Stopped once its trap is set: a signal before that would find
	// no handler (under vm the shell starts seconds after run -d
	// returns).
	e.run("run", "-d", "--name", "usr1", "--stop-signal", "USR1", demoImage, "sh", "-c", `trap 'echo got USR1; exit 0' USR1; echo ready; while :; do sleep 0.05; done`)
	waitFor(t, e.patience(5*time.Second), "usr1's trap", func() bool { return strings.Contains(e.run("logs", "usr1"), "ready") })
	e.run("stop", "-t", "5", "usr1")
	if c := e.inspect("usr1"); c.State.ExitCode != 0 || !strings.Contains(e.run("logs", "usr1"), "got USR1") {
		t.Errorf("--stop-signal USR1: exit %d, logs %q", c.State.ExitCode, e.run("logs", "usr1"))
	}
	e.run("rm", "stubborn", "usr1")
	e.checkNothingLeft()
}

func TestEngineRestartPolicies(t *testing.T) { forEachIsolation(t, testRestartPolicies) }

func testRestartPolicies(t *testing.T, e *engineEnv) {
	e.run("run", "-d", "--name", "onfail", "--restart", "on-failure:2", demoImage, "sh", "-c", "echo run; exit 4")
	e.run("run", "-d", "--name", "always", "--restart", "always", demoImage, "sh", "-c", "echo run; sleep 0.2")
	// Under vm (a boot each run: seconds under TCG) the subset is
	// on-failure:N with its count, always with stop, and no restart
	// of a clean exit or a failure without a policy; unless-stopped,
	// the attached run and a start by hand run under linux only.
	vm := e.isolation == "vm"
	if !vm {
		e.run("run", "-d", "--name", "unless", "--restart", "unless-stopped", demoImage, "sh", "-c", "echo run; exit 0")
	}
	e.run("run", "-d", "--name", "okexit", "--restart", "on-failure", demoImage, "true")
	e.run("run", "-d", "--name", "never", demoImage, "sh", "-c", "exit 1")
	waitFor(t, e.patience(15*time.Second), "on-failure:2 to give up", func() bool {
		c := e.inspect("onfail")
		return c.State.Status == "exited" && c.RestartCount == 2
	})
	if n := strings.Count(e.run("logs", "onfail"), "run"); n != 3 {
		t.Errorf("on-failure:2 ran %d times, want 3", n)
	}
	if !vm {
		// A start by hand begins the policy afresh (docker resets the count).
		e.run("start", "onfail")
		waitFor(t, e.patience(15*time.Second), "on-failure:2 to give up again", func() bool {
			return strings.Count(e.run("logs", "onfail"), "run") == 6 && e.inspect("onfail").State.Status == "exited"
		})
		// An attached run with a restart policy returns at the first exit and
		// lets go of our stdout: the restarts' output is only in the log.
		fg := e.command("run", "--name", "fgpolicy", "--restart", "on-failure:2", demoImage, "sh", "-c", "echo attempt; exit 3")
		fgDone := make(chan struct{})
		var fgOut []byte
		go func() { fgOut, _ = fg.Output(); close(fgDone) }()
		select {
		case <-fgDone:
			if string(fgOut) != "attempt\n" {
				t.Errorf("attached run with a policy printed %q, want one attempt", fgOut)
			}
		case <-time.After(20 * time.Second):
			fg.Process.Kill()
			t.Error("an attached run with a restart policy kept our stdout open")
		}
		if fg.ProcessState == nil || fg.ProcessState.ExitCode() != 3 {
			t.Errorf("attached run with a policy: exit %v, want 3", fg.ProcessState)
		}
		waitFor(t, e.patience(15*time.Second), "fgpolicy's restarts", func() bool { return strings.Count(e.run("logs", "fgpolicy"), "attempt") == 3 })
	}
	waitFor(t, e.patience(15*time.Second), "always to restart twice", func() bool { return e.inspect("always").RestartCount >= 2 })
	if !vm {
		waitFor(t, e.patience(15*time.Second), "unless-stopped to restart after a clean exit", func() bool { return e.inspect("unless").RestartCount >= 2 })
		e.run("stop", "unless")
		if c := e.inspect("unless"); c.State.Status != "exited" {
			t.Errorf("unless-stopped after stop: %s", c.State.Status)
		}
	}
	for _, n := range []string{"okexit", "never"} {
		waitFor(t, e.patience(5*time.Second), n+" to exit", func() bool { return e.inspect(n).State.Status == "exited" })
		if c := e.inspect(n); c.RestartCount != 0 {
			t.Errorf("%s restarted %d times", n, c.RestartCount)
		}
	}
	// A stopped container is not restarted.
	e.run("stop", "always")
	count := e.inspect("always").RestartCount
	time.Sleep(time.Second)
	if c := e.inspect("always"); c.State.Status != "exited" || c.RestartCount != count {
		t.Errorf("after stop, always is %s with %d restarts (was %d)", c.State.Status, c.RestartCount, count)
	}
	if !vm {
		e.run("rm", "-f", "fgpolicy", "unless")
	}
	e.run("rm", "-f", "onfail", "always", "okexit", "never")
	e.checkNothingLeft()
}

// monitorOf returns the pid of the monitor of container id.
func (e *engineEnv) monitorOf(id string) int {
	e.t.Helper()
	out, _ := exec.Command("pgrep", "-f", "berth-monitor "+id).Output()
	// The monitor's children (start, exit handler, probe) share its
	// command line; only the monitor keeps its name.
	var f []string
	for _, p := range strings.Fields(string(out)) {
		if comm, _ := os.ReadFile("/proc/" + p + "/comm"); strings.TrimSpace(string(comm)) == "berth-monitor" {
			f = append(f, p)
		}
	}
	if len(f) != 1 {
		e.t.Fatalf("monitors of %s: %q", id, f)
	}
	pid, _ := strconv.Atoi(f[0])
	return pid
}

// A container whose monitor dies is stopped (it cannot stay
// unsupervised), recorded, and restarted if its policy says so, by the
// next berth command.
func TestEngineMonitorKilled(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	plain := strings.TrimSpace(e.run("run", "-d", demoImage, "sleep", "100"))
	always := strings.TrimSpace(e.run("run", "-d", "--restart", "always", demoImage, "sleep", "100"))
	oldPid := e.inspect(always).State.Pid
	for _, id := range []string{plain, always} {
		syscall.Kill(e.monitorOf(id), syscall.SIGKILL)
	}
	time.Sleep(100 * time.Millisecond)
	e.run("ps", "-a") // reconciles
	c := e.inspect(plain)
	if c.State.Status != "exited" || c.State.ExitCode != 137 || !strings.Contains(c.State.Error, "monitor died") {
		t.Errorf("container of a killed monitor: %+v", c.State)
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", oldPid)); err == nil && !strings.Contains(string(st), ") Z") {
		t.Errorf("the unsupervised process %d still runs: %s", oldPid, st)
	}
	a := e.inspect(always)
	if a.State.Status != "running" || a.RestartCount != 1 || a.State.Pid == oldPid {
		t.Errorf("restart=always after its monitor died: %+v, %d restarts", a.State, a.RestartCount)
	}
	e.monitorOf(always) // a new monitor supervises it
	e.run("rm", "-f", plain, always)
	e.checkNothingLeft()
}

// Killing the CLI at any moment of run -d leaves each container either
// complete or gone once the next command ran, and everything removable.
func TestEngineKilledCLI(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := range 24 {
		cmd := e.command("run", "-d", "--name", fmt.Sprintf("k%d", i), demoImage, "sleep", "100")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Intn(40)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
	}
	// The monitor killed at any moment of its start.
	for i := range 12 {
		cmd := e.command("run", "-d", "--name", fmt.Sprintf("m%d", i), demoImage, "sleep", "100")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rng.Intn(30)) * time.Millisecond
		deadline := time.Now().Add(delay)
		for killed := false; !killed && time.Now().Before(deadline.Add(time.Second)); {
			if time.Now().After(deadline) {
				for _, pid := range e.monitors() {
					syscall.Kill(pid, syscall.SIGKILL)
					killed = true
				}
			}
			time.Sleep(time.Millisecond)
		}
		cmd.Wait()
	}
	// A foreground run whose CLI dies: the container goes on, and its
	// exit is recorded by its monitor.
	fg := e.command("run", "--name", "fg", demoImage, "sh", "-c", "sleep 0.5; echo finished")
	fg.Start()
	waitFor(t, 5*time.Second, "fg to run", func() bool {
		out, _, _ := e.try("inspect", "-f", "{{.State.Status}}", "fg")
		return strings.TrimSpace(out) == "running"
	})
	fg.Process.Kill()
	fg.Wait()
	waitFor(t, 10*time.Second, "fg's exit to be recorded", func() bool {
		c := e.inspect("fg")
		return c.State.Status == "exited" && c.State.ExitCode == 0
	})
	if !strings.Contains(e.run("logs", "fg"), "finished") {
		t.Error("the output after the CLI died is not in the log")
	}
	rows, err := jsonLines[struct{ Names, State string }](e.run("ps", "-a", "--format", "json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		switch r.State {
		case "created", "running", "exited":
		default:
			t.Errorf("container %s is %q after its CLI was killed", r.Names, r.State)
		}
	}
	out := strings.Fields(e.run("ps", "-aq", "--no-trunc"))
	if len(out) > 0 {
		e.run(append([]string{"rm", "-f"}, out...)...)
	}
	e.checkNothingLeft()
	checkCgroupsGone(t, out)
}

// The CLI killed after it started the monitor and before it recorded it:
// the monitor's child records it as it marks the container running, so the
// next command sees a supervised container and leaves it alone. Before,
// the record said running with no monitor, and the next ps killed it.
func TestEngineCLIKilledBeforeRecordingMonitor(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	cmd := e.command("run", "-d", "--name", "window", demoImage, "sh", "-c", "echo up; exec sleep 100")
	cmd.Env = append(cmd.Env, "_BERTH_TEST_STOP_AT=monitor-started")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitStopped(t, 10*time.Second, "the CLI to stop after starting the monitor", cmd.Process.Pid)
	// The container starts meanwhile (the CLI holds its lock, so a berth
	// command could wait here: its log says when it runs).
	waitFor(t, 10*time.Second, "the container's output", func() bool {
		logs, _ := filepath.Glob(filepath.Join(e.root, "containers", "*", "*-json.log"))
		for _, l := range logs {
			if b, _ := os.ReadFile(l); strings.Contains(string(b), "up") {
				return true
			}
		}
		return false
	})
	cmd.Process.Kill()
	cmd.Wait()
	e.run("ps", "-a")
	c := e.inspect("window")
	if c.State.Status != "running" || c.State.Error != "" {
		t.Fatalf("after its CLI was killed in the window, the next ps left it %+v", c.State)
	}
	time.Sleep(200 * time.Millisecond)
	if c2 := e.inspect("window"); c2.State.Status != "running" || c2.State.Pid != c.State.Pid || syscall.Kill(c.State.Pid, 0) != nil {
		t.Fatalf("the container did not keep running: %+v", c2.State)
	}
	e.monitorOf(c.ID)
	e.run("rm", "-f", "window")
	e.checkNothingLeft()
}

// A stop records the exit itself: it claims it from the monitor (the
// attach socket's "H"), which then runs no exit handler. A stopper killed
// after its claim and before the exit must leave the exit to the handler
// again: with nobody reading the record, the run ends (its root
// filesystem unmounted, the monitor gone) all the same. And an uncut stop
// records the exit and its code as before.
func TestEngineStopperKilledAfterClaim(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	id := strings.TrimSpace(e.run("run", "-d", "--name", "claimed", demoImage, "sleep", "100"))
	c := e.inspect("claimed")
	monitor := e.monitorOf(id)
	cmd := e.command("stop", "-t", "100", "claimed")
	cmd.Env = append(cmd.Env, "_BERTH_TEST_STOP_AT=exit-claimed")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitStopped(t, 10*time.Second, "the stop to claim the exit and stop itself", cmd.Process.Pid)
	cmd.Process.Kill()
	cmd.Wait()
	if err := syscall.Kill(c.State.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the container's process: %v", err)
	}
	rootfs := filepath.Join(e.state, "containers", id, "rootfs")
	waitFor(t, 20*time.Second, "the monitor's exit handler to end the run (no berth command reads the record meanwhile)", func() bool {
		mounts, _ := os.ReadFile("/proc/self/mountinfo")
		return syscall.Kill(monitor, 0) != nil && !strings.Contains(string(mounts), " "+rootfs+" ")
	})
	if got := e.inspect("claimed"); got.State.Status != "exited" || got.State.ExitCode != 137 {
		t.Errorf("after the claiming stop was killed and the container too: %+v, want exited 137", got.State)
	}
	// A stop that is not cut short records the exit itself, with its code.
	e.run("start", "claimed")
	e.run("stop", "-t", "100", "-s", "KILL", "claimed")
	if got := e.inspect("claimed"); got.State.Status != "exited" || got.State.ExitCode != 137 {
		t.Errorf("after stop -s KILL: %+v, want exited 137", got.State)
	}
	e.run("rm", "claimed")
	e.checkNothingLeft()
}

// monitors returns the pids of this engine's monitors.
func (e *engineEnv) monitors() []int {
	out, _ := exec.Command("pgrep", "-x", "berth-monitor").Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		env, _ := os.ReadFile("/proc/" + f + "/environ")
		if strings.Contains(string(env), e.state) {
			pid, _ := strconv.Atoi(f)
			pids = append(pids, pid)
		}
	}
	return pids
}

// checkCgroupsGone asserts no cgroup of the containers ids is left.
func checkCgroupsGone(t *testing.T, ids []string) {
	t.Helper()
	for _, id := range ids {
		matches, _ := filepath.Glob("/sys/fs/cgroup/*/berth/" + id)
		more, _ := filepath.Glob("/sys/fs/cgroup/berth/" + id)
		for _, m := range append(matches, more...) {
			t.Errorf("cgroup left: %s", m)
		}
	}
}

func TestEngineConcurrent(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, errOut, err := e.try("run", "-d", "--name", fmt.Sprintf("c%02d", i), demoImage, "sleep", "300"); err != nil {
				errs <- fmt.Errorf("run c%02d: %v: %s", i, err, errOut)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rows, err := jsonLines[struct{ ID, Names, State string }](e.run("ps", "--format", "json"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, r := range rows {
		if r.State != "running" {
			t.Errorf("%s is %s", r.Names, r.State)
		}
		names[r.Names] = true
	}
	if len(rows) != n || len(names) != n {
		t.Fatalf("%d containers running (%d names), want %d", len(rows), len(names), n)
	}
	errs = make(chan error, n)
	for _, r := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, errOut, err := e.try("rm", "-f", r.ID); err != nil {
				errs <- fmt.Errorf("rm -f %s: %v: %s", r.Names, err, errOut)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	e.checkNothingLeft()
}

// endless is an stdin that never ends: "y\n" forever.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = "y\n"[i%2]
	}
	return len(p) - len(p)%2, nil
}

// openPty returns a pty master and its slave.
func openPty(t *testing.T) (*os.File, *os.File) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

func TestEngineTTY(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	m, s := openPty(t)
	defer m.Close()
	unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 111})
	cmd := e.command("run", "--rm", "-it", demoImage, "sh", "-c", `tty; stty size; read line; echo "read:$line"; stty size; exit 6`)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	var buf strings.Builder
	readDone := make(chan struct{})
	go func() {
		io.Copy(&buf, m)
		close(readDone)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "33 111") {
		if time.Now().After(deadline) {
			t.Fatalf("no tty output with the size within 10s: %q", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A resize of our terminal reaches the container's (SIGWINCH to the
	// CLI, passed to the monitor).
	unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 100})
	time.Sleep(300 * time.Millisecond)
	m.Write([]byte("typed\r"))
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 6 {
		t.Errorf("run -it exit: %v, want 6", err)
	}
	select {
	case <-readDone:
	case <-time.After(2 * time.Second):
	}
	out := buf.String()
	for _, want := range []string{"/dev/pts/", "33 111", "read:typed", "40 100"} {
		if !strings.Contains(out, want) {
			t.Errorf("tty output lacks %q: %q", want, out)
		}
	}
	e.checkNothingLeft()
}

// volume rm in the instant after a create resolved a volume and before it
// recorded the use: the rm waits (or comes first), and the create gets a
// volume that exists. Before, the rm deleted the volume under the create,
// whose copy-up then failed on the missing directory.
func TestEngineVolumeRemovedDuringCreate(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("volume", "create", "shared")
	create := e.command("create", "--name", "vc", "-v", "shared:/data", demoImage, "true")
	create.Env = append(create.Env, "_BERTH_TEST_STOP_AT=volumes-resolved")
	var createErr bytes.Buffer
	create.Stderr = &createErr
	if err := create.Start(); err != nil {
		t.Fatal(err)
	}
	defer create.Process.Kill()
	waitStopped(t, 10*time.Second, "create to stop after resolving its volumes", create.Process.Pid)
	rm := e.command("volume", "rm", "shared")
	var rmOut bytes.Buffer
	rm.Stdout, rm.Stderr = &rmOut, &rmOut
	if err := rm.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the rm runs, or waits for the lock
	create.Process.Signal(syscall.SIGCONT)
	if err := create.Wait(); err != nil {
		t.Fatalf("create with a volume removed meanwhile: %v: %s", err, createErr.String())
	}
	rmErr := rm.Wait()
	if rmErr == nil || !strings.Contains(rmOut.String(), "in use") && !strings.Contains(rmOut.String(), "used by") {
		t.Errorf("volume rm of a volume a create took: %v: %s", rmErr, rmOut.String())
	}
	var vols []struct{ Name, Mountpoint string }
	if err := json.Unmarshal([]byte(e.run("volume", "inspect", "shared")), &vols); err != nil || len(vols) != 1 {
		t.Fatalf("volume inspect shared: %v %+v", err, vols)
	}
	if _, err := os.Stat(vols[0].Mountpoint); err != nil {
		t.Errorf("the volume's directory: %v", err)
	}
	e.run("rm", "vc")
	e.run("volume", "rm", "shared")
}

func TestEngineVolumes(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	if out := strings.TrimSpace(e.run("volume", "create", "--label", "k=v", "data")); out != "data" {
		t.Fatalf("volume create printed %q", out)
	}
	e.run("run", "--rm", "-v", "data:/data", demoImage, "sh", "-c", "echo kept > /data/f")
	out := e.run("run", "--rm", "--mount", "type=volume,source=data,target=/d,readonly", demoImage, "sh", "-c", "cat /d/f; touch /d/g 2>/dev/null || echo read-only")
	if out != "kept\nread-only\n" {
		t.Errorf("a named volume across containers: %q", out)
	}
	// A volume in use cannot be removed.
	e.run("run", "-d", "--name", "user", "-v", "data:/data", demoImage, "sleep", "100")
	if code, _, errOut := e.exitCode("volume", "rm", "data"); code == 0 || !strings.Contains(errOut, "in use by container") {
		t.Errorf("volume rm of a volume in use: exit %d %s", code, errOut)
	}
	e.run("rm", "-f", "user")
	var vols []struct {
		Name      string
		Labels    map[string]string
		Anonymous bool
	}
	if err := json.Unmarshal([]byte(e.run("volume", "inspect", "data")), &vols); err != nil || len(vols) != 1 || vols[0].Labels["k"] != "v" {
		t.Errorf("volume inspect: %v %+v", err, vols)
	}
	e.run("volume", "rm", "data")

	// The image's declared volume becomes an anonymous volume filled with
	// the image's files; rm -v removes it, rm alone leaves it to prune.
	tarPath := filepath.Join(t.TempDir(), "vol.tar")
	script, _ := filepath.Abs("../../scripts/mkimage.sh")
	cmd := exec.Command(script, tarPath, "berth-test/volumes:1")
	cmd.Env = append(os.Environ(), "MKIMAGE_VOLUMES=/var/lib/app")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkimage: %v %s", err, out)
	}
	e.run("load", "-q", "-i", tarPath)
	for _, rmArgs := range [][]string{{"rm", "-v"}, {"rm"}} {
		e.run("run", "--name", "anon", "berth-test/volumes:1", "sh", "-c", "cat /var/lib/app/seed; grep /var/lib/app /proc/self/mountinfo >/dev/null && echo mounted")
		if out := e.run("logs", "anon"); out != "from the image\nmounted\n" {
			t.Errorf("anonymous volume: %q", out)
		}
		names := strings.Fields(e.run("volume", "ls", "-q"))
		if len(names) != 1 {
			t.Fatalf("volumes after a run with an image volume: %q", names)
		}
		e.run(append(rmArgs, "anon")...)
		left := strings.Fields(e.run("volume", "ls", "-q"))
		if len(rmArgs) == 2 && len(left) != 0 {
			t.Errorf("rm -v left volumes %q", left)
		}
		if len(rmArgs) == 1 && (len(left) != 1 || strings.TrimSpace(e.run("volume", "ls", "-q", "--filter", "dangling=true")) != names[0]) {
			t.Errorf("rm without -v: volumes %q, want %s kept and dangling", left, names[0])
		}
	}
	if out := e.run("volume", "prune"); !strings.Contains(out, "Deleted Volumes") || strings.TrimSpace(e.run("volume", "ls", "-q")) != "" {
		t.Errorf("volume prune left %q", e.run("volume", "ls", "-q"))
	}
	// --rm removes the anonymous volumes too.
	e.run("run", "--rm", "berth-test/volumes:1", "true")
	if left := e.run("volume", "ls", "-q"); strings.TrimSpace(left) != "" {
		t.Errorf("run --rm left volumes %q", left)
	}
	e.checkNothingLeft()
}

func TestEngineInit(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	code, out, _ := e.exitCode("run", "--rm", "--init", demoImage, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 9")
	if code != 9 || !strings.HasPrefix(out, "/sbin/berth-init -- sh -c") {
		t.Errorf("--init: exit %d, pid 1 is %q", code, out)
	}
	// As PID 1 a shell ignores SIGTERM; behind the init it gets it and
	// stop does not need to escalate.
	e.run("run", "-d", "--name", "inited", "--init", demoImage, "sleep", "100")
	start := time.Now()
	e.run("stop", "-t", "5", "inited")
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("stop of an --init container took %s: the signal was not forwarded", took)
	}
	if c := e.inspect("inited"); c.State.ExitCode != 128+15 {
		t.Errorf("--init container stopped with %d, want 143", c.State.ExitCode)
	}
	e.run("rm", "inited")
	var info map[string]any
	if err := json.Unmarshal([]byte(e.run("info", "--format", "json")), &info); err != nil || info["Images"] != float64(1) || info["OSType"] != "linux" {
		t.Errorf("info --format json: %v %v", info, err)
	}
	e.checkNothingLeft()
}

// A host that died: the run directory is gone (it is a tmpfs), and with it
// every monitor, container process, mount and namespace. The next berth
// command records the exits and restarts what the policies say.
func TestEngineHostRestart(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	always := strings.TrimSpace(e.run("run", "-d", "--restart", "always", demoImage, "sleep", "100"))
	plain := strings.TrimSpace(e.run("run", "-d", demoImage, "sleep", "100"))
	stopped := strings.TrimSpace(e.run("run", "-d", "--restart", "unless-stopped", demoImage, "sleep", "100"))
	e.run("stop", "-t", "0", stopped)
	// "Power off": kill everything of this engine, undo its mounts, wipe
	// the run directory.
	var pids []int
	for _, id := range []string{always, plain} {
		if pid := e.inspect(id).State.Pid; pid > 0 {
			pids = append(pids, pid)
		}
	}
	for _, pid := range append(e.monitors(), pids...) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	time.Sleep(100 * time.Millisecond)
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	var points []string
	for _, l := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], e.state+"/") {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		syscall.Unmount(p, syscall.MNT_DETACH)
	}
	if err := os.RemoveAll(e.state); err != nil {
		t.Fatal(err)
	}
	e.run("ps", "-a")
	if c := e.inspect(always); c.State.Status != "running" || c.RestartCount != 1 {
		t.Errorf("restart=always after a host restart: %s, %d restarts", c.State.Status, c.RestartCount)
	}
	if c := e.inspect(plain); c.State.Status != "exited" || c.RestartCount != 0 {
		t.Errorf("no restart policy after a host restart: %s, %d restarts", c.State.Status, c.RestartCount)
	}
	if c := e.inspect(stopped); c.State.Status != "exited" {
		t.Errorf("a stopped unless-stopped container after a host restart: %s", c.State.Status)
	}
	// The image is in use: rmi refuses it.
	if code, _, errOut := e.exitCode("rmi", demoImage); code == 0 || !strings.Contains(errOut, "in use") {
		t.Errorf("rmi of an image in use: exit %d, %s", code, errOut)
	}
	e.run("rm", "-f", always, plain, stopped)
	e.checkNothingLeft()
}

// system prune removes what nothing uses and, with no container left,
// leaves nothing mounted under the root and state directories: they can
// then be removed like any directory (before, the network namespaces'
// mount point kept rm -rf from the state directory).
func TestEngineSystemPrune(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("network", "create", "unused")
	e.run("run", "--name", "done", "-v", "pv:/data", demoImage, "true")
	e.run("run", "-d", "--name", "up", demoImage, "sleep", "100")
	out := e.run("system", "prune", "--volumes", "-a")
	for _, want := range []string{"Deleted Containers:", "Deleted Networks:\nunused", "Deleted Volumes:", "Total reclaimed space:"} {
		if !strings.Contains(out, want) {
			t.Errorf("system prune printed no %q:\n%s", want, out)
		}
	}
	if ids := strings.Fields(e.run("ps", "-aq")); len(ids) != 1 {
		t.Errorf("after system prune: containers %q, want the running one", ids)
	}
	if imgs := e.images(); len(imgs) != 1 {
		t.Errorf("the running container's image was pruned: %+v", imgs)
	}
	e.run("rm", "-f", "up")
	e.run("volume", "prune", "-a")
	e.run("system", "prune", "-a")
	if imgs := e.images(); len(imgs) != 0 {
		t.Errorf("images left after system prune -a with no container: %+v", imgs)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, e.state) || strings.Contains(l, e.root) {
			t.Errorf("mounted after system prune: %s", l)
		}
	}
	if err := os.RemoveAll(e.state); err != nil {
		t.Errorf("rm -rf of the state directory after system prune: %v", err)
	}
}

// system reset removes what berth made and nothing else: a root or state
// directory named by mistake keeps its other files, a symbolic link to a
// state directory goes with it, and the file system's root is refused.
func TestEngineSystemResetRemovesOnlyBerths(t *testing.T) {
	dir := t.TempDir()
	e := newEngineIn(t, dir)
	if err := os.MkdirAll(e.root, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(e.root, "keep.txt"), []byte("mine"), 0o644)
	real := filepath.Join(dir, "real-state")
	os.Mkdir(real, 0o700)
	if err := os.Symlink(real, e.state); err != nil {
		t.Fatal(err)
	}
	e.loadDemoImage()
	e.run("run", "-d", "--name", "r", "-v", "rv:/v", demoImage, "sleep", "100")
	e.run("system", "reset", "-f")
	if b, err := os.ReadFile(filepath.Join(e.root, "keep.txt")); err != nil || string(b) != "mine" {
		t.Errorf("a file of the user's in the root: %v %q", err, b)
	}
	ents, _ := os.ReadDir(e.root)
	if len(ents) != 1 {
		t.Errorf("left in the root besides keep.txt: %v", ents)
	}
	for _, p := range []string{real, e.state} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s after reset: %v", p, err)
		}
	}
	bad := exec.Command(e.bin, "--root", "/", "--state", filepath.Join(dir, "s2"), "system", "reset", "-f")
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "root of the file system") {
		t.Errorf("system reset of --root /: %v: %s", err, out)
	}
}

// -it with no terminal on stdin fails at once with docker's message and
// exit code (it used to start and hang); a missing object is named once,
// by its kind.
func TestEngineNotATTYAndMissingObjects(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	if code, _, errOut := e.exitCode("run", "-it", "--rm", demoImage, "true"); code != 1 || !strings.Contains(errOut, "the input device is not a TTY") {
		t.Errorf("run -it without a terminal: exit %d: %s", code, errOut)
	}
	e.run("run", "-d", "--name", "x", demoImage, "sleep", "100")
	if code, _, errOut := e.exitCode("exec", "-it", "x", "true"); code != 1 || !strings.Contains(errOut, "the input device is not a TTY") {
		t.Errorf("exec -it without a terminal: exit %d: %s", code, errOut)
	}
	if out := e.run("run", "-t", "--rm", demoImage, "echo", "ok"); !strings.Contains(out, "ok") {
		t.Errorf("run -t without -i needs no terminal: %q", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rm", "nosuch"}, "berth: no such container: nosuch\n"},
		{[]string{"volume", "rm", "nosuch"}, "berth: no such volume: nosuch\n"},
		{[]string{"network", "rm", "nosuch"}, "berth: no such network: nosuch (berth network ls lists them)\n"},
	} {
		if _, _, errOut := e.exitCode(tc.args...); errOut != tc.want {
			t.Errorf("berth %s: %q, want %q", strings.Join(tc.args, " "), errOut, tc.want)
		}
	}
	e.run("rm", "-f", "x")
}
