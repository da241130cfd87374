package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime/linux"
)

func TestRunOutputAndExitCodes(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "sh", "-c", "echo out; echo err >&2; exit 3")
	stdout, stderr, code := r.runOutput(b, uniqueID(t))
	if stdout != "out\n" || stderr != "err\n" || code != 3 {
		t.Fatalf("run: stdout %q stderr %q code %d; want out, err, 3", stdout, stderr, code)
	}
	// A container killed by signal n makes run exit 128+n.
	b.Spec.Process.Args = []string{"sleep", "60"}
	b.save(t)
	id := uniqueID(t)
	c := r.cmd("run", "--bundle", b.Dir, id)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	r.waitStatus(id, "running")
	r.run("kill", id, "KILL")
	c.Wait()
	if code := c.ProcessState.ExitCode(); code != 137 {
		t.Fatalf("killed by SIGKILL: exit code %d, want 137", code)
	}
	// run deletes the container when it exits.
	if out := r.run("list", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("containers left after run: %q", out)
	}
}

// An attached run passes the signals it gets on to the container's
// process, and, once that has gone, gives the Go runtime its handlers
// back (internal/sigrelay): real-time and job-control signals included.
func TestRunForwardsSignals(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "sh", "-c",
		`trap 'echo got-usr1' USR1; trap 'echo got-hup' HUP; trap 'echo got-int' INT; trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done`)
	c := r.cmd("run", "--bundle", b.Dir, uniqueID(t))
	var out syncBuffer
	c.Stdout = &out
	c.Stderr = &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Process.Kill()
	waitOutput := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q from the container within 20 s; output %q", want, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitOutput("ready")
	for _, s := range []struct {
		sig  syscall.Signal
		want string
	}{{syscall.SIGUSR1, "got-usr1"}, {syscall.SIGHUP, "got-hup"}, {syscall.SIGINT, "got-int"}} {
		if err := c.Process.Signal(s.sig); err != nil {
			t.Fatal(err)
		}
		waitOutput(s.want)
	}
	c.Process.Signal(syscall.SIGTERM)
	err := c.Wait()
	if code := c.ProcessState.ExitCode(); code != 7 || !strings.Contains(out.String(), "got-term") {
		t.Fatalf("after SIGTERM: run %v, exit code %d, output %q; want the container's trap to exit 7", err, code, out.String())
	}
}

func TestLifecycleCreateStartKillDelete(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "sleep", "60")
	id := uniqueID(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	r.run("create", "--bundle", b.Dir, "--pid-file", pidFile, id)
	st := r.state(id)
	if st.Status != "created" || st.Pid <= 0 {
		t.Fatalf("after create: %+v", st)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil || strings.TrimSpace(string(data)) != strconv.Itoa(st.Pid) {
		t.Fatalf("pid file %q (err %v), state pid %d", data, err, st.Pid)
	}
	// The process must not run the user's program before start.
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", st.Pid))
	if strings.TrimSpace(string(comm)) == "sleep" {
		t.Fatalf("process already runs sleep before start")
	}
	if _, err := r.try("create", "--bundle", b.Dir, id); err == nil {
		t.Fatalf("second create with the same id succeeded")
	}
	r.run("start", id)
	r.waitStatus(id, "running")
	if out, err := r.try("start", id); err == nil {
		t.Fatalf("start of a running container succeeded: %s", out)
	}
	var list []ociState
	if err := json.Unmarshal([]byte(r.run("list", "--format", "json")), &list); err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("list json: %+v (err %v)", list, err)
	}
	if out, err := r.try("delete", id); err == nil || !strings.Contains(out, "running") {
		t.Fatalf("delete of a running container: err %v, output %q", err, out)
	}
	r.run("kill", id, "KILL")
	r.waitStatus(id, "stopped")
	if st := r.state(id); st.Pid != 0 {
		t.Fatalf("stopped container reports pid %d", st.Pid)
	}
	r.run("delete", id)
	if _, err := r.try("state", id); err == nil {
		t.Fatalf("state after delete succeeded")
	}
}

func TestDeleteForceAndCreatedContainer(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "sleep", "60")
	id := uniqueID(t)
	r.run("create", "--bundle", b.Dir, id)
	pid := r.state(id).Pid
	// A created container can be deleted without --force; its init dies.
	r.run("delete", id)
	if err := exec.Command("kill", "-0", strconv.Itoa(pid)).Run(); err == nil {
		if stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(stat), ") Z ") {
			t.Fatalf("init %d still alive after deleting the created container", pid)
		}
	}
	id2 := uniqueID(t) + "b"
	r.run("run", "--detach", "--bundle", b.Dir, id2)
	r.run("delete", "--force", id2)
	if _, err := r.try("state", id2); err == nil {
		t.Fatalf("state after delete --force succeeded")
	}
}

func TestExec(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "sleep", "60")
	id := uniqueID(t)
	r.run("run", "-d", "--bundle", b.Dir, id)
	out := r.run("exec", "-e", "FOO=bar", "--cwd", "/tmp", id, "sh", "-c", "echo $FOO; pwd; cat /proc/1/comm")
	if out != "bar\n/tmp\nsleep\n" {
		t.Fatalf("exec output %q", out)
	}
	c := r.cmd("exec", id, "sh", "-c", "exit 7")
	if err := c.Run(); err == nil || c.ProcessState.ExitCode() != 7 {
		t.Fatalf("exec exit code: %v", err)
	}
	proc := b.Spec.Process
	proc.Args = []string{"id", "-u"}
	proc.User.UID = 65534
	data, _ := json.Marshal(proc)
	pf := filepath.Join(t.TempDir(), "process.json")
	os.WriteFile(pf, data, 0o644)
	if out := r.run("exec", "--process", pf, id); out != "65534\n" {
		t.Fatalf("exec --process as uid 65534: %q", out)
	}
	if out, err := r.try("exec", id, "/does/not/exist"); err == nil || !strings.Contains(out, "/does/not/exist") {
		t.Fatalf("exec of a missing binary: err %v, %q", err, out)
	}
}

func TestPauseResumeAndPs(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "sleep", "60")
	id := uniqueID(t)
	r.run("run", "-d", "--bundle", b.Dir, id)
	var pids []int
	if err := json.Unmarshal([]byte(r.run("ps", "--format", "json", id)), &pids); err != nil || len(pids) != 1 || pids[0] != r.state(id).Pid {
		t.Fatalf("ps json %v (err %v), init pid %d", pids, err, r.state(id).Pid)
	}
	r.run("pause", id)
	if st := r.state(id); st.Status != "paused" {
		t.Fatalf("after pause: %s", st.Status)
	}
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pids[0]))
	if !strings.Contains(string(stat), "State:\tD") && !strings.Contains(string(stat), "State:\tS") {
		t.Logf("frozen process state: %s", stat)
	}
	r.run("resume", id)
	if st := r.state(id); st.Status != "running" {
		t.Fatalf("after resume: %s", st.Status)
	}
	if _, err := r.try("resume", id); err == nil {
		t.Fatalf("resume of a running container succeeded")
	}
	// A paused container can be killed.
	r.run("pause", id)
	r.run("kill", "--all", id, "KILL")
	r.waitStatus(id, "stopped")
}

func TestConsoleSocket(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "sh", "-c", "tty; echo tty-ok")
	b.Spec.Process.Terminal = true
	b.save(t)
	sockPath := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sockPath, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan *os.File, 1)
	go func() {
		conn, err := l.AcceptUnix()
		if err != nil {
			got <- nil
			return
		}
		defer conn.Close()
		m, err := linux.ReceiveConsole(conn)
		if err != nil {
			got <- nil
			return
		}
		got <- m
	}()
	id := uniqueID(t)
	r.run("create", "--bundle", b.Dir, "--console-socket", sockPath, id)
	var master *os.File
	select {
	case master = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no pty master received")
	}
	if master == nil {
		t.Fatal("receiving the pty master failed")
	}
	defer master.Close()
	r.run("start", id)
	buf := make([]byte, 4096)
	var out strings.Builder
	master.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !strings.Contains(out.String(), "tty-ok") {
		n, err := master.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(out.String(), "/dev/pts/0") || !strings.Contains(out.String(), "tty-ok") {
		t.Fatalf("console output %q: want the pty name and tty-ok", out.String())
	}
}

func TestCgroupMemoryLimitOOMKills(t *testing.T) {
	r := newRuntime(t)
	// awk doubles a string forever; the shell around it reports how it died.
	b := newBundle(t, r.bin, "sh", "-c", `awk 'BEGIN{s="x"; for(;;) s=s s}'; echo survived $?`)
	limit := int64(32 << 20)
	swap := limit
	b.Spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &swap}
	b.save(t)
	stdout, stderr, code := r.runOutput(b, uniqueID(t))
	if strings.TrimSpace(stdout) != "survived 137" || code != 0 {
		t.Fatalf("output %q (stderr %q, exit %d): want awk OOM-killed (137) and the shell alive", stdout, stderr, code)
	}
}

func TestCgroupPidsLimitStopsForkBomb(t *testing.T) {
	r := newRuntime(t)
	// The inner shell dies when fork fails; the outer one stays to be counted.
	b := newBundle(t, r.bin, "sh", "-c", `sh -c 'for i in $(seq 40); do sleep 30 & done'; sleep 30`)
	limit := int64(10)
	b.Spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: &limit}
	b.save(t)
	id := uniqueID(t)
	r.run("run", "-d", "--bundle", b.Dir, id)
	time.Sleep(500 * time.Millisecond)
	var pids []int
	if err := json.Unmarshal([]byte(r.run("ps", "--format", "json", id)), &pids); err != nil {
		t.Fatal(err)
	}
	if len(pids) > 10 || len(pids) < 2 {
		t.Fatalf("%d processes in a container with pids.limit 10 that tried to start 41", len(pids))
	}
}

func TestUserNamespace(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "sh", "-c", "id -u; cat /proc/self/uid_map; touch /shared/file")
	shared := t.TempDir()
	os.Chmod(shared, 0o777)
	// The mapped root must be able to reach the bundle: TempDir is 0700.
	for d := b.Dir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	b.Spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	b.Spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/shared", Type: "bind", Source: shared, Options: []string{"rbind"}})
	// The rootfs must be reachable by the mapped root.
	filepath.Walk(filepath.Join(b.Dir, "rootfs"), func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			os.Lchown(p, 100000, 100000)
		}
		return nil
	})
	b.save(t)
	stdout, stderr, code := r.runOutput(b, uniqueID(t))
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout, stderr)
	}
	lines := strings.Split(stdout, "\n")
	if lines[0] != "0" || !strings.Contains(lines[1], "100000") {
		t.Fatalf("output %q: want uid 0 mapped from 100000", stdout)
	}
	fi, err := os.Stat(filepath.Join(shared, "file"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscallStat).Uid; uid != 100000 {
		t.Fatalf("file created by container root has host uid %d, want 100000", uid)
	}
}

func TestHooksRunInOrderWithState(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "true")
	logf := filepath.Join(t.TempDir(), "hooks.log")
	hook := func(name string) specs.Hook {
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "read -r s; echo \"" + name + " $s\" >> " + logf}}
	}
	b.Spec.Hooks = &specs.Hooks{
		CreateRuntime:   []specs.Hook{hook("createRuntime")},
		CreateContainer: []specs.Hook{hook("createContainer")},
		Poststart:       []specs.Hook{hook("poststart")},
		Poststop:        []specs.Hook{hook("poststop")},
	}
	b.save(t)
	id := uniqueID(t)
	if _, stderr, code := r.runOutput(b, id); code != 0 {
		t.Fatalf("run: %d %s", code, stderr)
	}
	data, err := os.ReadFile(logf)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		name, state, _ := strings.Cut(line, " ")
		var st ociState
		if err := json.Unmarshal([]byte(state), &st); err != nil || st.ID != id || st.Bundle != b.Dir {
			t.Fatalf("hook %s got state %q (err %v)", name, state, err)
		}
		order = append(order, name)
	}
	if got := strings.Join(order, ","); got != "createRuntime,createContainer,poststart,poststop" {
		t.Fatalf("hook order %s", got)
	}
}

func TestFailedCreateLeavesNothing(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "true")
	b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: "/nonexistent/berth-test-source", Options: []string{"bind"}})
	b.save(t)
	id := uniqueID(t)
	out, err := r.try("create", "--bundle", b.Dir, id)
	if err == nil {
		t.Fatalf("create with a missing bind source succeeded")
	}
	if !strings.Contains(out, "/nonexistent/berth-test-source") {
		t.Fatalf("error does not name the missing path: %q", out)
	}
	if out := r.run("list", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("container left behind: %q", out)
	}
	if entries, _ := os.ReadDir(r.root); len(entries) != 0 {
		t.Fatalf("state left behind in %s: %v", r.root, entries)
	}
	for _, c := range []string{"memory", "pids", "cpu"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", c, "berth", id)); err == nil {
			t.Fatalf("cgroup %s/berth/%s left behind", c, id)
		}
	}
}

func TestJoinNetworkNamespaceByPath(t *testing.T) {
	r := newRuntime(t)
	a := newBundle(t, r.bin, "sleep", "60")
	idA := uniqueID(t)
	r.run("run", "-d", "--bundle", a.Dir, idA)
	pidA := r.state(idA).Pid
	want, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pidA))
	b := newBundle(t, r.bin, "readlink", "/proc/self/ns/net")
	for i, ns := range b.Spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			b.Spec.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/net", pidA)
		}
	}
	b.save(t)
	stdout, stderr, code := r.runOutput(b, idA+"-joiner")
	if code != 0 || strings.TrimSpace(stdout) != want {
		t.Fatalf("joined netns %q (exit %d, %s), want %q", stdout, code, stderr, want)
	}
}

func TestReadonlyRootAndRlimitErrors(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "sh", "-c", "touch /x 2>/dev/null && echo writable; ulimit -n")
	b.Spec.Root.Readonly = true
	b.save(t)
	stdout, _, _ := r.runOutput(b, uniqueID(t))
	if strings.Contains(stdout, "writable") || strings.TrimSpace(stdout) != "1024" {
		t.Fatalf("readonly root: %q (want no write and nofile 1024)", stdout)
	}
	b.Spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1 << 30, Hard: 1 << 30}}
	b.save(t)
	out, err := r.try("run", "--bundle", b.Dir, uniqueID(t))
	if err == nil {
		t.Skip("this host lets root raise RLIMIT_NOFILE to 2^30; nothing to check")
	}
	if !strings.Contains(out, "RLIMIT_NOFILE") {
		t.Fatalf("rlimit error does not name the limit: %q", out)
	}
}

func TestUpdateAndEventsStats(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "sleep", "60")
	id := uniqueID(t)
	r.run("run", "-d", "--bundle", b.Dir, id)
	r.run("update", "--memory", "96m", "--pids-limit", "33", id)
	for file, want := range map[string]string{
		"/sys/fs/cgroup/memory/berth/" + id + "/memory.limit_in_bytes": "100663296",
		"/sys/fs/cgroup/pids/berth/" + id + "/pids.max":                "33",
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Skipf("cgroup v1 file %s not there (not a v1/hybrid host?): %v", file, err)
		}
		if got := strings.TrimSpace(string(data)); got != want {
			t.Fatalf("%s = %s, want %s", file, got, want)
		}
	}
	res := filepath.Join(t.TempDir(), "res.json")
	os.WriteFile(res, []byte(`{"pids": {"limit": 44}}`), 0o644)
	r.run("update", "--resources", res, id)
	if data, _ := os.ReadFile("/sys/fs/cgroup/pids/berth/" + id + "/pids.max"); strings.TrimSpace(string(data)) != "44" {
		t.Fatalf("pids.max after --resources: %s", data)
	}
	var ev struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Data struct {
			Pids struct {
				Current uint64 `json:"current"`
				Limit   uint64 `json:"limit"`
			} `json:"pids"`
			Memory struct {
				Usage struct {
					Usage uint64 `json:"usage"`
				} `json:"usage"`
			} `json:"memory"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.run("events", "--stats", id)), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "stats" || ev.ID != id || ev.Data.Pids.Current != 1 || ev.Data.Pids.Limit != 44 || ev.Data.Memory.Usage.Usage == 0 {
		t.Fatalf("events --stats: %+v", ev)
	}
	if out, err := r.try("update", "--memory", "lots", id); err == nil || !strings.Contains(out, "--memory") {
		t.Fatalf("bad --memory: %v %q", err, out)
	}
}

func TestPersonalityIOPriorityAndUnsupported(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "sh", "-c", "uname -m; cat /proc/self/stat >/dev/null")
	b.Spec.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32}
	b.Spec.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE, Priority: 7}
	b.save(t)
	stdout, stderr, code := r.runOutput(b, uniqueID(t))
	if code != 0 || strings.TrimSpace(stdout) != "i686" {
		t.Fatalf("LINUX32 personality: uname -m %q (exit %d, %s)", stdout, code, stderr)
	}
	b.Spec.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "x"}
	b.save(t)
	if out, err := r.try("run", "--bundle", b.Dir, uniqueID(t)); err == nil || !strings.Contains(out, "linux.intelRdt") {
		t.Fatalf("intelRdt: %v %q", err, out)
	}
}

func TestNonRootUserCanReopenStdout(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "sh", "-c", "echo via-dev-stdout > /dev/stdout")
	b.Spec.Process.User = specs.User{UID: 65534, GID: 65534}
	b.save(t)
	// runFiles gives the container regular files owned by root as stdio.
	stdout, stderr, code := r.runOutput(b, uniqueID(t))
	if code != 0 || stdout != "via-dev-stdout\n" {
		t.Fatalf("non-root reopen of /dev/stdout: %q %q exit %d", stdout, stderr, code)
	}
}

func TestKilledCreateIsCleanedByTheNextCommand(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "true")
	// The create waits in its createRuntime hook: kill -9 it there, when the
	// cgroup and the init exist but no state does.
	b.Spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "30"}}}}
	b.save(t)
	id := uniqueID(t)
	c := r.cmd("create", "--bundle", b.Dir, id)
	c.Stdout, c.Stderr = nil, nil
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	cgroupDir := filepath.Join("/sys/fs/cgroup/pids/berth", id)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if procs, err := os.ReadFile(filepath.Join(cgroupDir, "cgroup.procs")); err == nil && len(procs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Skipf("no v1 pids cgroup %s appeared (not a v1/hybrid host?)", cgroupDir)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // inside the hook now
	c.Process.Kill()
	c.Wait()
	exec.Command("pkill", "-f", "sleep 30").Run() // the hook, our own child
	if _, err := os.Stat(filepath.Join(r.root, id)); err != nil {
		t.Fatalf("the killed create left no directory to recover from: %v", err)
	}
	if out := strings.TrimSpace(r.run("list", "-q")); out != "" {
		t.Fatalf("list shows a half-created container: %q", out)
	}
	for _, dir := range []string{cgroupDir, filepath.Join(r.root, id)} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s left after the next command (err %v)", dir, err)
		}
	}
	// And the id can be used again.
	b.Spec.Hooks = nil
	b.save(t)
	if _, stderr, code := r.runOutput(b, id); code != 0 {
		t.Fatalf("run with the recovered id: %d %s", code, stderr)
	}
}

func TestHookTimeoutAndSystemdCgroupError(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "true")
	one := 1
	b.Spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "20"}, Timeout: &one}}}
	b.save(t)
	start := time.Now()
	out, err := r.try("create", "--bundle", b.Dir, uniqueID(t))
	if err == nil || !strings.Contains(out, "timed out after 1s") {
		t.Fatalf("hook over its timeout: err %v, %q", err, out)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("create waited %v for a hook with a 1 s timeout", d)
	}
	if out := strings.TrimSpace(r.run("list", "-q")); out != "" {
		t.Fatalf("container left after a failed hook: %q", out)
	}
	b.Spec.Hooks = nil
	b.save(t)
	out, err = r.try("--systemd-cgroup", "create", "--bundle", b.Dir, uniqueID(t))
	if err == nil || !strings.Contains(out, "--systemd-cgroup is not supported") {
		t.Fatalf("--systemd-cgroup: err %v, %q", err, out)
	}
}

func TestConcurrentCreatesAndLists(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "sleep", "30")
	const n = 8
	errs := make(chan error, n)
	stop := make(chan struct{})
	listErrs := make(chan string, 1)
	go func() {
		for {
			select {
			case <-stop:
				close(listErrs)
				return
			default:
			}
			if out, err := r.try("list", "-q"); err != nil {
				listErrs <- out
				<-stop
				close(listErrs)
				return
			}
		}
	}()
	base := uniqueID(t)
	for i := 0; i < n; i++ {
		go func(i int) {
			out, err := r.try("run", "-d", "--bundle", b.Dir, fmt.Sprintf("%s-%d", base, i))
			if err != nil {
				err = fmt.Errorf("%v: %s", err, out)
			}
			errs <- err
		}(i)
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Errorf("concurrent run: %v", err)
		}
	}
	close(stop)
	if out, ok := <-listErrs; ok {
		t.Errorf("list failed during creates: %s", out)
	}
	ids := strings.Fields(r.run("list", "-q"))
	if len(ids) != n {
		t.Fatalf("%d containers listed, want %d: %v", len(ids), n, ids)
	}
	for _, id := range ids {
		if st := r.state(id); st.Status != "running" {
			t.Errorf("%s is %s", id, st.Status)
		}
		r.run("delete", "--force", id)
	}
}

// runc 1.1's own `runc spec`, unedited, names ambient capabilities with
// no inheritable set: the runtime spec says a capability that cannot be
// granted is a warning. runc runs it; so must berth, and warn.
func TestRuntimeRuncSpecUnedited(t *testing.T) {
	r := newRuntime(t)
	b := newBundle(t, r.bin, "true")
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not installed (apt-get install runc)")
	}
	os.Remove(filepath.Join(b.Dir, "config.json"))
	if out, err := exec.Command("runc", "spec", "--bundle", b.Dir).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	cfg, _ := os.ReadFile(filepath.Join(b.Dir, "config.json"))
	if !strings.Contains(string(cfg), `"ambient"`) || strings.Contains(string(cfg), `"inheritable"`) {
		t.Skipf("this runc's spec has no ambient capabilities without an inheritable set: nothing to test")
	}
	// The spec asks for a terminal: run gives the container a pty of its
	// own and copies our stdin to it.
	cmd := r.cmd("run", "--bundle", b.Dir, uniqueID(t))
	cmd.Stdin = strings.NewReader("echo inside; exit 7\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 || !strings.Contains(stdout.String(), "inside") {
		t.Fatalf("run of runc's spec: %v, stdout %q, stderr %q; want exit 7 and the output", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "level=warn") || !strings.Contains(stderr.String(), "CAP_KILL") {
		t.Errorf("no warning naming the ambient capabilities not granted: %q", stderr.String())
	}
}
