package integration

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The runtime's create and run fork the container's init before their Go
// runtime starts (nsexec/prefork.c) and adopt it only when it is the init
// they would have exec'd (prefork_linux.go). These tests read which way a
// create went from its BERTH_TRACE lines: "prefork-adopted",
// "prefork-discarded", or neither (nothing forked: an init exec'd).

// traced runs a runtime command with BERTH_TRACE=1, stdin and extra files,
// and returns stdout, the stderr lines that are not trace lines, the trace
// phases and the error.
func (r *runtimeEnv) traced(stdin string, extra []*os.File, env []string, args ...string) (stdout, stderr string, phases []string, err error) {
	r.t.Helper()
	if len(args) > 0 && (args[0] == "run" || args[0] == "create") {
		id := args[len(args)-1]
		r.t.Cleanup(func() { r.cmd("delete", "--force", id).Run() })
	}
	dir := r.t.TempDir()
	outF, _ := os.Create(filepath.Join(dir, "stdout"))
	errF, _ := os.Create(filepath.Join(dir, "stderr"))
	c := r.cmd(args...)
	c.Env = append(append(os.Environ(), "BERTH_TRACE=1"), env...)
	c.Stdin = strings.NewReader(stdin)
	c.Stdout, c.Stderr = outF, errF
	c.ExtraFiles = extra
	err = c.Run()
	outF.Close()
	errF.Close()
	out, _ := os.ReadFile(outF.Name())
	errData, _ := os.ReadFile(errF.Name())
	var rest []string
	for _, line := range strings.Split(string(errData), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "trace" {
			phases = append(phases, f[3])
		} else if line != "" {
			rest = append(rest, line)
		}
	}
	return string(out), strings.Join(rest, "\n"), phases, err
}

func hasPhase(phases []string, want string) bool {
	for _, p := range phases {
		if p == want {
			return true
		}
	}
	return false
}

func TestRuntimePreforkAdopted(t *testing.T) {
	r := newRuntime(t)
	// Seal the runtime first: a prefork needs the sealed binary, which the
	// first container of a build makes.
	warm := newBundle(t, r.bin, "true")
	r.run("run", "--bundle", warm.Dir, uniqueID(t)+"-warm")

	b := newBundle(t, r.bin, "sh", "-c", `echo out; echo err >&2; read line; echo "got $line"; cat <&3; ls /proc/self/fd | sort -n | tr '\n' ' '`)
	extra, err := os.CreateTemp(t.TempDir(), "fd3")
	if err != nil {
		t.Fatal(err)
	}
	extra.WriteString("from fd 3\n")
	extra.Seek(0, 0)
	stdout, stderr, phases, err := r.traced("hello\n", []*os.File{extra}, nil, "run", "--preserve-fds", "1", "--bundle", b.Dir, uniqueID(t))
	if err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, stderr)
	}
	if !hasPhase(phases, "prefork-adopted") {
		t.Fatalf("the forked init was not adopted: phases %v", phases)
	}
	// ls's own directory fd is the 4th: only stdio and the preserved fd
	// reach the container.
	want := "out\ngot hello\nfrom fd 3\n0 1 2 3 4 "
	if stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	if stderr != "err" {
		t.Errorf("stderr %q, want %q", stderr, "err")
	}

	// An attached run relays the signals its caller ignored, and its
	// container gets them at their default, as from an exec'd init: the
	// same ignored set either way (what the caller ignored and the
	// runtime does not relay stays ignored), without HUP, INT and QUIT.
	sigs := newBundle(t, r.bin, "grep", "SigIgn", "/proc/self/status")
	sigIgn := func(env ...string) (string, string) {
		script := fmt.Sprintf(`trap "" INT HUP QUIT; exec %s runtime --root %s run --bundle %s %s`, r.bin, r.root, sigs.Dir, uniqueID(t)+"-sigs")
		c := exec.Command("sh", "-c", script)
		c.Env = append(append(os.Environ(), "BERTH_TRACE=1"), env...)
		var so, se bytes.Buffer
		c.Stdout, c.Stderr = &so, &se
		if err := c.Run(); err != nil {
			t.Fatalf("run with ignored signals: %v\n%s", err, se.String())
		}
		return strings.TrimSpace(strings.TrimPrefix(so.String(), "SigIgn:")), se.String()
	}
	forked, trace := sigIgn()
	if !strings.Contains(trace, " prefork-adopted ") {
		t.Fatalf("not adopted: %s", trace)
	}
	execd, _ := sigIgn("BERTH_PREFORK=0")
	var mask uint64
	if _, err := fmt.Sscanf(forked, "%x", &mask); err != nil || forked != execd || mask&0x7 != 0 {
		t.Errorf("container's ignored signals %q from a forked init, %q from an exec'd one; want equal, without HUP, INT and QUIT", forked, execd)
	}

	// A created init waits, before its execve, in the forked process: it
	// holds none of the caller's environment, as an exec'd one, nor its
	// arguments, nor a descriptor the caller left open without passing
	// it (no --preserve-fds): a reader of a pipe behind one would wait
	// for the container's start to see its end.
	unpassedR, unpassedW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer unpassedR.Close()
	id := uniqueID(t) + "-created"
	_, stderr, phases, err = r.traced("", []*os.File{unpassedW}, []string{"BERTH_TEST_SECRET=s3cr3t"}, "create", "--bundle", b.Dir, id)
	unpassedW.Close()
	if err != nil || !hasPhase(phases, "prefork-adopted") {
		t.Fatalf("create: %v, phases %v\nstderr: %s", err, phases, stderr)
	}
	unpassedR.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := unpassedR.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		held, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", r.state(id).Pid))
		var links []string
		for _, fd := range held {
			to, _ := os.Readlink(fd)
			links = append(links, filepath.Base(fd)+"="+to)
		}
		t.Errorf("a pipe the caller did not pass stays open after create (read: %d, %v); the waiting init holds %v", n, err, links)
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", r.state(id).Pid))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(environ, []byte("s3cr3t")) || bytes.Contains(environ, []byte("PATH=")) {
		t.Errorf("the waiting init shows the caller's environment: %q", environ)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", r.state(id).Pid))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cmdline, []byte(b.Dir)) || bytes.Contains(cmdline, []byte(id)) {
		t.Errorf("the waiting init shows the caller's arguments: %q", cmdline)
	}
}

func TestRuntimePreforkNotTaken(t *testing.T) {
	r := newRuntime(t)
	warm := newBundle(t, r.bin, "true")
	r.run("run", "--bundle", warm.Dir, uniqueID(t)+"-warm")
	hostNet, _ := os.Readlink("/proc/self/ns/net")

	t.Run("user namespace", func(t *testing.T) {
		b := newBundle(t, r.bin, "id", "-u")
		b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		b.Spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		b.Spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		b.save(t)
		// The mapped root must reach the bundle and own the rootfs.
		for d := b.Dir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
			os.Chmod(d, 0o755)
		}
		filepath.Walk(filepath.Join(b.Dir, "rootfs"), func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				os.Lchown(p, 100000, 100000)
			}
			return nil
		})
		stdout, stderr, phases, err := r.traced("", nil, nil, "run", "--bundle", b.Dir, uniqueID(t))
		if err != nil {
			t.Fatalf("run: %v\nstderr: %s", err, stderr)
		}
		if hasPhase(phases, "prefork-adopted") || hasPhase(phases, "prefork-discarded") || !hasPhase(phases, "exec-init") {
			t.Fatalf("a user namespace was forked ahead: phases %v", phases)
		}
		if strings.TrimSpace(stdout) != "0" {
			t.Errorf("id -u in the user namespace: %q", stdout)
		}
	})

	t.Run("turned off", func(t *testing.T) {
		b := newBundle(t, r.bin, "true")
		_, stderr, phases, err := r.traced("", nil, []string{"BERTH_PREFORK=0"}, "run", "--bundle", b.Dir, uniqueID(t))
		if err != nil {
			t.Fatalf("run: %v\nstderr: %s", err, stderr)
		}
		if hasPhase(phases, "prefork-adopted") || !hasPhase(phases, "exec-init") {
			t.Fatalf("BERTH_PREFORK=0 forked ahead: phases %v", phases)
		}
	})

	t.Run("misread config discarded", func(t *testing.T) {
		// Go's JSON decoding matches keys case-insensitively, and the last
		// of "linux" and "LINUX" wins; prefork.c reads "linux" only. So it
		// forks with no network namespace, and the runtime, which wants
		// one, must not adopt that process.
		b := newBundle(t, r.bin, "readlink", "/proc/self/ns/net")
		var keep []specs.LinuxNamespace
		for _, ns := range b.Spec.Linux.Namespaces {
			if ns.Type != specs.NetworkNamespace {
				keep = append(keep, ns)
			}
		}
		data, err := os.ReadFile(filepath.Join(b.Dir, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var nss []string
		for _, ns := range keep {
			nss = append(nss, fmt.Sprintf(`{"type":%q}`, ns.Type))
		}
		decoy := fmt.Sprintf(`{"linux":{"namespaces":[%s]},`, strings.Join(nss, ","))
		data = bytes.Replace(data, []byte(`"linux"`), []byte(`"LINUX"`), 1)
		data = append([]byte(decoy), bytes.TrimPrefix(bytes.TrimSpace(data), []byte("{"))...)
		if err := os.WriteFile(filepath.Join(b.Dir, "config.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, phases, err := r.traced("", nil, nil, "run", "--bundle", b.Dir, uniqueID(t))
		if err != nil {
			t.Fatalf("run: %v\nstderr: %s", err, stderr)
		}
		if !hasPhase(phases, "prefork-discarded") || hasPhase(phases, "prefork-adopted") || !hasPhase(phases, "exec-init") {
			t.Fatalf("a forked init with the wrong namespaces was not discarded: phases %v", phases)
		}
		// The exec'd init's intermediate makes the cgroup and forks the
		// init into it (cgroup-make), unraced by the Go side: its gate
		// stays shut through the discard.
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil && !hasPhase(phases, "cgroup-forked-in") {
			t.Errorf("the init exec'd after a discard was not forked into its cgroup: phases %v", phases)
		}
		if got := strings.TrimSpace(stdout); got == "" || got == hostNet {
			t.Errorf("container's network namespace %q, want its own (host %s)", got, hostNet)
		}
	})

	t.Run("create that fails first", func(t *testing.T) {
		// A create that fails before it needs its init (the id is taken)
		// leaves the forked init to end by itself, quietly.
		b := newBundle(t, r.bin, "sleep", "60")
		id := uniqueID(t)
		r.run("create", "--bundle", b.Dir, id)
		marker := filepath.Join(t.TempDir(), "pid-of-the-failed-create")
		_, stderr, phases, err := r.traced("", nil, nil, "create", "--pid-file", marker, "--bundle", b.Dir, id)
		if err == nil {
			t.Fatal("a second create of the same id succeeded")
		}
		if hasPhase(phases, "prefork-adopted") {
			t.Fatalf("phases %v", phases)
		}
		if strings.Contains(stderr, "berth init") || strings.Count(stderr, "\n") != 0 || !strings.Contains(stderr, id) {
			t.Errorf("stderr is not the one error line about %s: %q", id, stderr)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			left := processesWithArg(t, marker)
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the unused forked init is still there: pids %v", left)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// processesWithArg lists the pids whose command line has arg.
func processesWithArg(t *testing.T, arg string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(data, []byte{0}) {
			if string(a) == arg {
				pids = append(pids, filepath.Base(filepath.Dir(p)))
			}
		}
	}
	return pids
}
