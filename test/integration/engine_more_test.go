//go:build linux

package integration

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Tests of exec, top, stats, cp and export. They use the busybox image
// of scripts/mkimage.sh (loadDemoImage, built once per test binary).

// moreRun runs berth with stdin and returns stdout, stderr and the exit
// code.
func moreRun(e *engineEnv, stdin io.Reader, args ...string) (string, string, int) {
	e.t.Helper()
	cmd := e.command(args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	}
	e.t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	return "", "", 0
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestEngineMoreExec(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("run", "-d", "--name", "ex", "-e", "FROM_RUN=1", demoImage, "sleep", "1000")

	// Output goes to our stdout and stderr; the exit code is berth's.
	out, errOut, code := moreRun(e, nil, "exec", "ex", "sh", "-c", "echo out; echo err >&2")
	if out != "out\n" || errOut != "err\n" || code != 0 {
		t.Errorf("exec output: stdout %q stderr %q exit %d", out, errOut, code)
	}
	if code, _, errOut := e.exitCode("exec", "ex", "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("exec sh -c 'exit 7': exit %d (%s)", code, errOut)
	}
	// A process killed by signal n: 128+n.
	if code, _, _ := e.exitCode("exec", "ex", "sh", "-c", "kill -TERM $$"); code != 128+15 {
		t.Errorf("exec of a process killed by SIGTERM: exit %d, want 143", code)
	}
	// The container's environment, plus -e; -u by name from the
	// container's passwd (HOME follows); -w.
	out = e.run("exec", "-e", "FOO=bar", "-e", "FROM_RUN=2", "-u", "www", "-w", "/tmp", "ex",
		"sh", "-c", `echo "$FOO $FROM_RUN $PATH"; id -u; id -g; pwd; echo "$HOME"`)
	if want := "bar 2 /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n33\n33\n/tmp\n/var/www\n"; out != want {
		t.Errorf("exec -e -u www -w /tmp: %q, want %q", out, want)
	}
	if out := e.run("exec", "ex", "sh", "-c", `echo "$FROM_RUN $HOME"; id -u; pwd`); out != "1 /root\n0\n/\n" {
		t.Errorf("exec with the container's defaults: %q", out)
	}
	if out := e.run("exec", "-u", "65534:5", "ex", "sh", "-c", "id -u; id -g"); out != "65534\n5\n" {
		t.Errorf("exec -u 65534:5: %q", out)
	}
	// docker's codes for a process that cannot start.
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"exec", "ex", "no-such-command"}, 127, "not found"},
		{[]string{"exec", "ex", "/no/such/file"}, 127, "/no/such/file"},
		{[]string{"exec", "ex", "/etc/passwd"}, 126, "permission denied"},
		{[]string{"exec", "-w", "/no/such/dir", "ex", "true"}, 126, "/no/such/dir"},
		{[]string{"exec", "-u", "nosuchuser", "ex", "true"}, 126, "nosuchuser"},
		{[]string{"exec", "-w", "relative", "ex", "true"}, 1, "absolute"},
		{[]string{"exec", "nosuchcontainer", "true"}, 1, "nosuchcontainer"},
	} {
		code, _, errOut := e.exitCode(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("berth %s: exit %d %q, want %d and %q", strings.Join(tc.args, " "), code, errOut, tc.code, tc.msg)
		}
	}
	// -i passes stdin; without it the process reads nothing.
	if out, _, code := moreRun(e, strings.NewReader("hello\nworld\n"), "exec", "-i", "ex", "sh", "-c", "read l; echo got:$l; wc -l"); out != "got:hello\n1\n" || code != 0 {
		t.Errorf("exec -i: %q exit %d", out, code)
	}
	if out, _, code := moreRun(e, strings.NewReader("not for you\n"), "exec", "ex", "cat"); out != "" || code != 0 {
		t.Errorf("exec without -i read stdin: %q exit %d", out, code)
	}
	// -d returns at once; the process runs on.
	start := time.Now()
	e.run("exec", "-d", "ex", "sh", "-c", "sleep 1.5; echo late > /tmp/late")
	if d := time.Since(start); d > 1200*time.Millisecond {
		t.Errorf("exec -d took %s: it waited for the process", d)
	}
	if out, _, _ := e.try("exec", "ex", "cat", "/tmp/late"); out == "late\n" {
		t.Error("exec -d: the process finished before exec returned")
	}
	waitFor(t, 10*time.Second, "the detached process to write /tmp/late", func() bool {
		out, _, _ := e.try("exec", "ex", "cat", "/tmp/late")
		return out == "late\n"
	})

	// A tty: raw mode, the terminal's size, our input.
	m, s := openPty(t)
	defer m.Close()
	unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 111})
	cmd := e.command("exec", "-it", "ex", "sh", "-c", `tty; sleep 0.3; stty size; echo "TERM=$TERM"; read line; echo "read:$line"; exit 5`)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	var buf syncBuffer
	readDone := make(chan struct{})
	go func() {
		io.Copy(&buf, m)
		close(readDone)
	}()
	waitFor(t, 10*time.Second, "exec -it output with the terminal's size", func() bool { return strings.Contains(buf.String(), "TERM=") })
	m.Write([]byte("typed\r"))
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 5 {
		t.Errorf("exec -it exit: %v, want 5", err)
	}
	select {
	case <-readDone:
	case <-time.After(2 * time.Second):
	}
	for _, want := range []string{"/dev/pts/", "33 111", "TERM=xterm", "read:typed"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("exec -it output lacks %q: %q", want, buf.String())
		}
	}

	// Not running: refused, with docker's words.
	e.run("pause", "ex")
	if code, _, errOut := e.exitCode("exec", "ex", "true"); code != 1 || !strings.Contains(errOut, "is paused") {
		t.Errorf("exec into a paused container: exit %d %q", code, errOut)
	}
	e.run("unpause", "ex")
	e.run("stop", "-t", "0", "ex")
	if code, _, errOut := e.exitCode("exec", "ex", "true"); code != 1 || !strings.Contains(errOut, "is not running") {
		t.Errorf("exec into a stopped container: exit %d %q", code, errOut)
	}
	e.run("create", "--name", "fresh", demoImage, "true")
	if code, _, errOut := e.exitCode("exec", "fresh", "true"); code != 1 || !strings.Contains(errOut, "is not running") {
		t.Errorf("exec into a created container: exit %d %q", code, errOut)
	}
	e.run("rm", "-f", "ex", "fresh")
	e.checkNothingLeft()
}

func TestEngineMoreTop(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("run", "-d", "--name", "topc", demoImage, "sleep", "1001")
	pid := e.inspect("topc").State.Pid
	var lines []string
	waitFor(t, 5*time.Second, "sleep 1001 in top", func() bool {
		lines = strings.Split(strings.TrimSpace(e.run("top", "topc")), "\n")
		return strings.HasSuffix(lines[len(lines)-1], "sleep 1001")
	})
	if h := strings.Fields(lines[0]); strings.Join(h, " ") != "UID PID PPID C STIME TTY TIME CMD" {
		t.Fatalf("top header %q", lines[0])
	}
	if len(lines) != 2 {
		t.Fatalf("top lists %d processes, want the container's one:\n%s", len(lines)-1, strings.Join(lines, "\n"))
	}
	f := strings.Fields(lines[1])
	if f[0] != "0" || f[1] != strconv.Itoa(pid) || !strings.HasSuffix(lines[1], "sleep 1001") {
		t.Errorf("top row %q, want uid 0, pid %d, command sleep 1001", lines[1], pid)
	}
	// ps options, and a second process.
	e.run("exec", "-d", "topc", "sleep", "1002")
	waitFor(t, 5*time.Second, "the exec'd sleep in top", func() bool { return strings.Contains(e.run("top", "topc", "-o", "pid,args"), "sleep 1002") })
	out := e.run("top", "topc", "-o", "pid,comm")
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if strings.Join(strings.Fields(rows[0]), " ") != "PID COMMAND" || len(rows) != 3 || strings.Count(out, "sleep") != 2 {
		t.Errorf("top -o pid,comm:\n%s", out)
	}
	if code, _, errOut := e.exitCode("top", "topc", "-o", "comm"); code != 1 || !strings.Contains(errOut, "PID") {
		t.Errorf("top without a PID column: exit %d %q", code, errOut)
	}
	e.run("stop", "-t", "0", "topc")
	if code, _, errOut := e.exitCode("top", "topc"); code != 1 || !strings.Contains(errOut, "is not running") {
		t.Errorf("top of a stopped container: exit %d %q", code, errOut)
	}
	e.run("rm", "topc")
	e.checkNothingLeft()
}

type statsLine struct {
	BlockIO, CPUPerc, Container, ID, MemPerc, MemUsage, Name, NetIO, PIDs string
}

// parseSize reads docker's sizes ("1.5MiB", "0B", "12kB") as bytes.
func parseDockerSize(t *testing.T, s string) float64 {
	t.Helper()
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		t.Fatalf("size %q", s)
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		t.Fatalf("size %q: %v", s, err)
	}
	mult := map[string]float64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[s[i:]]
	if mult == 0 {
		t.Fatalf("size %q: unknown unit", s)
	}
	return v * mult
}

func parseStats(t *testing.T, out string) map[string]statsLine {
	t.Helper()
	got := map[string]statsLine{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var s statsLine
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("stats line %q: %v", l, err)
		}
		got[s.Name] = s
	}
	return got
}

func TestEngineMoreStats(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("run", "-d", "--name", "busy", demoImage, "sh", "-c", "while :; do :; done")
	e.run("run", "-d", "--name", "idle", "--memory", "64m", demoImage, "sh", "-c", "sleep 1000 & sleep 1001 & wait")
	e.run("create", "--name", "notrunning", demoImage, "true")

	// No names: the running containers.
	got := parseStats(t, e.run("stats", "--no-stream", "--format", "json"))
	if len(got) != 2 || got["busy"].Name == "" || got["idle"].Name == "" {
		t.Fatalf("stats --no-stream of the running containers: %+v", got)
	}
	for name, s := range got {
		pids, err := strconv.Atoi(s.PIDs)
		if err != nil || pids < 1 {
			t.Errorf("%s: PIDs %q", name, s.PIDs)
		}
		usage, limit, ok := strings.Cut(s.MemUsage, " / ")
		if !ok || parseDockerSize(t, usage) <= 0 || parseDockerSize(t, limit) <= 0 {
			t.Errorf("%s: MEM USAGE / LIMIT %q", name, s.MemUsage)
		}
		if len(s.ID) != 12 || s.Container != s.ID {
			t.Errorf("%s: ID %q Container %q", name, s.ID, s.Container)
		}
	}
	if pids, _ := strconv.Atoi(got["idle"].PIDs); pids != 3 {
		t.Errorf("idle runs sh and two sleeps; PIDs %q", got["idle"].PIDs)
	}
	if _, limit, _ := strings.Cut(got["idle"].MemUsage, " / "); limit != "64MiB" {
		t.Errorf("idle has --memory 64m; MEM USAGE / LIMIT %q", got["idle"].MemUsage)
	}
	cpu, err := strconv.ParseFloat(strings.TrimSuffix(got["busy"].CPUPerc, "%"), 64)
	if err != nil || cpu < 5 {
		t.Errorf("a busy loop uses %q CPU", got["busy"].CPUPerc)
	}

	// Named, a template; a container that does not run shows zeros.
	if out := e.run("stats", "--no-stream", "--format", "{{.Container}} {{.PIDs}}", "idle", "notrunning"); out != "idle 3\nnotrunning 0\n" {
		t.Errorf("stats --format template: %q", out)
	}
	out := e.run("stats", "--no-stream", "idle")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "CONTAINER ID") || !strings.Contains(lines[0], "MEM USAGE / LIMIT") || !strings.Contains(lines[1], "idle") {
		t.Errorf("stats table:\n%s", out)
	}
	if code, _, _ := e.exitCode("stats", "--no-stream", "nosuch"); code != 1 {
		t.Errorf("stats of a missing container: exit %d", code)
	}

	// Streaming (not a terminal): a frame a second until interrupted.
	cmd := e.command("stats", "--format", "json", "busy")
	var sout bytes.Buffer
	cmd.Stdout = &sout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2800 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Errorf("stats interrupted: %v", err)
	}
	frames := strings.Split(strings.TrimSpace(sout.String()), "\n")
	if len(frames) < 2 || len(frames) > 4 || strings.Contains(sout.String(), "\x1b[") {
		t.Errorf("stats streamed %d frames in 2.8 s (want 2 to 4, no escapes):\n%s", len(frames), sout.String())
	}
	e.run("rm", "-f", "busy", "idle", "notrunning")
	e.checkNothingLeft()
}

// treeEntry describes a file for comparisons.
type treeEntry struct {
	Type    string
	Mode    os.FileMode
	Size    int64
	Link    string
	Content string
}

// snapshotTree describes every file under dir by its path.
func snapshotTree(t *testing.T, dir string) map[string]treeEntry {
	t.Helper()
	out := map[string]treeEntry{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		ent := treeEntry{Mode: fi.Mode().Perm()}
		switch {
		case fi.Mode().IsDir():
			ent.Type = "dir"
		case fi.Mode()&os.ModeSymlink != 0:
			ent.Type = "symlink"
			ent.Link, _ = os.Readlink(p)
			ent.Mode = 0
		case fi.Mode().IsRegular():
			ent.Type, ent.Size = "file", fi.Size()
			b, _ := os.ReadFile(p)
			ent.Content = string(b)
		default:
			ent.Type = fi.Mode().Type().String()
		}
		out[rel] = ent
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, what string, want, got map[string]treeEntry) {
	t.Helper()
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: %s missing", what, p)
		} else if g != w {
			t.Errorf("%s: %s is %+v, want %+v", what, p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected %s", what, p)
		}
	}
}

// rootfsMounted reports whether a container's overlay is mounted.
func (e *engineEnv) rootfsMounted(id string) bool {
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	return strings.Contains(string(mounts), filepath.Join("containers", id, "rootfs"))
}

// capability is a valid security.capability value: cap_net_bind_service=ep.
var capability = []byte{1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// TestEngineMoreCp: docker's cp rules both ways, tar streams, symlinks
// resolved in the container, owners, a stopped and a read-only one. Under
// vm the copies of the running container go through its agent (the
// container's half runs in the guest); the stopped container's part runs
// under linux only (a VM's writes go with its guest: step 1's upper is in
// guest memory).
func TestEngineMoreCp(t *testing.T) { forEachIsolation(t, testMoreCp) }

func testMoreCp(t *testing.T, e *engineEnv) {
	id := strings.TrimSpace(e.run("run", "-d", "--name", "cpc", demoImage, "sleep", "1000"))
	host := t.TempDir()
	src := filepath.Join(host, "d")
	for _, d := range []string{"d/sub", "d/empty"} {
		os.MkdirAll(filepath.Join(host, d), 0o755)
	}
	os.WriteFile(filepath.Join(src, "a"), []byte("one\n"), 0o640)
	os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\necho ran\n"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "b"), []byte("two\n"), 0o600)
	os.Chmod(filepath.Join(src, "sub"), 0o750)
	os.Symlink("/etc/shadow", filepath.Join(src, "abs"))
	os.Symlink("../../../outside", filepath.Join(src, "rel"))
	os.Link(filepath.Join(src, "a"), filepath.Join(src, "hard"))

	// Host to container: a directory into an existing directory.
	e.run("cp", src, "cpc:/tmp")
	out := e.run("exec", "cpc", "sh", "-c", `cat /tmp/d/a /tmp/d/sub/b; /tmp/d/run.sh; readlink /tmp/d/abs; readlink /tmp/d/rel; stat -c '%a %u:%g' /tmp/d/sub /tmp/d/a; [ /tmp/d/a -ef /tmp/d/hard ] && echo linked`)
	if want := "one\ntwo\nran\n/etc/shadow\n../../../outside\n750 0:0\n640 0:0\nlinked\n"; out != want {
		t.Errorf("the copied tree in the container:\n%s\nwant:\n%s", out, want)
	}
	// Container to host: a missing destination is created as the copy.
	back := t.TempDir()
	e.run("cp", "cpc:/tmp/d", filepath.Join(back, "copy"))
	sameTree(t, "round trip", snapshotTree(t, src), snapshotTree(t, filepath.Join(back, "copy")))
	var sa, sh syscall.Stat_t
	syscall.Stat(filepath.Join(back, "copy", "a"), &sa)
	syscall.Stat(filepath.Join(back, "copy", "hard"), &sh)
	if sa.Ino != sh.Ino {
		t.Error("round trip: the hard link became two files")
	}
	// docker's rules: into an existing directory; "dir/." copies the
	// contents; a file to a new name; a file over a file.
	os.Mkdir(filepath.Join(back, "into"), 0o755)
	e.run("cp", "cpc:/tmp/d", filepath.Join(back, "into"))
	os.Mkdir(filepath.Join(back, "contents"), 0o755)
	e.run("cp", "cpc:/tmp/d/.", filepath.Join(back, "contents"))
	e.run("cp", "cpc:/tmp/d/a", filepath.Join(back, "renamed"))
	os.WriteFile(filepath.Join(back, "over"), []byte("old old old\n"), 0o644)
	e.run("cp", "cpc:/tmp/d/sub/b", filepath.Join(back, "over"))
	for p, want := range map[string]string{"into/d/sub/b": "two\n", "contents/sub/b": "two\n", "renamed": "one\n", "over": "two\n"} {
		if b, err := os.ReadFile(filepath.Join(back, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", p, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(back, "contents", "d")); err == nil {
		t.Error(`cp DIR/. copied the directory itself, not its contents`)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"cp", "cpc:/tmp/d/a", filepath.Join(back, "nodir") + "/"}, "does not exist"},
		{[]string{"cp", "cpc:/tmp/d", filepath.Join(back, "over")}, "directory to a file"},
		{[]string{"cp", "cpc:/tmp/d/a/", back}, "not a directory"},
		{[]string{"cp", "cpc:/no/such", back}, "could not find"},
		{[]string{"cp", filepath.Join(back, "renamed"), "cpc:/tmp/d/sub/b/x"}, "not a directory"},
		{[]string{"cp", back, "cpc:/tmp/d/a"}, "directory to a file"},
		{[]string{"cp", "a", "b"}, "container"},
		{[]string{"cp", "cpc:/a", "cpc:/b"}, "between containers"},
	} {
		if code, _, errOut := e.exitCode(tc.args...); code != 1 || !strings.Contains(errOut, tc.msg) {
			t.Errorf("berth %s: exit %d %q, want 1 and %q", strings.Join(tc.args, " "), code, errOut, tc.msg)
		}
	}

	// Symlinks in the container resolve inside it, never to the host.
	outside := filepath.Join(host, "outside")
	os.Mkdir(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("HOST\n"), 0o644)
	e.run("exec", "cpc", "sh", "-c", fmt.Sprintf(`ln -s %s /abs; ln -s ../../../../../../../../../..%s /rel; mkdir -p %s; echo CONTAINER > %s/secret`, outside, outside, outside, outside))
	os.WriteFile(filepath.Join(host, "f"), []byte("pushed\n"), 0o644)
	for _, link := range []string{"/abs", "/rel"} {
		e.run("cp", filepath.Join(host, "f"), "cpc:"+link+"/f"+strings.TrimPrefix(link, "/"))
		got := filepath.Join(back, "secret"+strings.TrimPrefix(link, "/"))
		e.run("cp", "cpc:"+link+"/secret", got)
		if b, _ := os.ReadFile(got); string(b) != "CONTAINER\n" {
			t.Errorf("cp out through %s read %q, want the container's file", link, b)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("cp through a container's symlink wrote to the host: %v", ents)
	}
	if out := e.run("exec", "cpc", "sh", "-c", "cat "+outside+"/fabs "+outside+"/frel"); out != "pushed\npushed\n" {
		t.Errorf("the files copied through the symlinks are not in the container: %q", out)
	}
	// Without -L a symlink is copied as itself; with -L what it names.
	e.run("cp", "cpc:/abs", filepath.Join(back, "link"))
	if target, err := os.Readlink(filepath.Join(back, "link")); err != nil || target != outside {
		t.Errorf("cp of a symlink: %q %v", target, err)
	}
	e.run("cp", "-L", "cpc:/rel", filepath.Join(back, "followed"))
	if b, _ := os.ReadFile(filepath.Join(back, "followed", "secret")); string(b) != "CONTAINER\n" {
		t.Errorf("cp -L of a symlink to a directory: secret %q", b)
	}

	// Owners: the container's root, or the source's with -a; the file
	// capability travels.
	owned := filepath.Join(host, "owned")
	os.WriteFile(owned, []byte("x"), 0o644)
	os.Chown(owned, 1234, 4321)
	capOK := unix.Setxattr(owned, "security.capability", capability, 0) == nil
	e.run("cp", owned, "cpc:/owned")
	e.run("cp", "-a", owned, "cpc:/owned-a")
	if out := e.run("exec", "cpc", "stat", "-c", "%u:%g", "/owned", "/owned-a"); out != "0:0\n1234:4321\n" {
		t.Errorf("owners in the container: %q, want 0:0 and (with -a) 1234:4321", out)
	}
	e.run("cp", "-a", "cpc:/owned-a", filepath.Join(back, "owned-a"))
	var st syscall.Stat_t
	if syscall.Stat(filepath.Join(back, "owned-a"), &st); st.Uid != 1234 || st.Gid != 4321 {
		t.Errorf("cp -a out of the container: owner %d:%d", st.Uid, st.Gid)
	}
	if capOK {
		buf := make([]byte, 64)
		n, err := unix.Getxattr(filepath.Join(back, "owned-a"), "security.capability", buf)
		if err != nil || !bytes.Equal(buf[:n], capability) {
			t.Errorf("security.capability after a round trip: %x %v", buf[:max(n, 0)], err)
		}
	} else {
		t.Log("the temp directory takes no security.capability; not checked")
	}

	// Tar streams: "-" as the destination or the source.
	tarOut, errOut, code := moreRun(e, nil, "cp", "cpc:/tmp/d/sub", "-")
	if code != 0 {
		t.Fatalf("cp to -: %d %s", code, errOut)
	}
	names := tarNames(t, []byte(tarOut))
	if strings.Join(names, " ") != "sub/ sub/b" {
		t.Errorf("cp CONTAINER:DIR - wrote %v", names)
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "fromtar/x.txt", Mode: 0o600, Size: 3, Typeflag: tar.TypeReg, Uid: 7, Gid: 7})
	tw.Write([]byte("tar"))
	tw.Close()
	if _, errOut, code := moreRun(e, &tb, "cp", "-", "cpc:/tmp"); code != 0 {
		t.Fatalf("cp - CONTAINER:DIR: %d %s", code, errOut)
	}
	if out := e.run("exec", "cpc", "sh", "-c", "cat /tmp/fromtar/x.txt; stat -c ' %a %u' /tmp/fromtar/x.txt"); out != "tar 600 0\n" {
		t.Errorf("extracted from stdin: %q", out)
	}
	if _, errOut, code := moreRun(e, strings.NewReader(""), "cp", "-", "cpc:/etc/passwd"); code != 1 || !strings.Contains(errOut, "directory") {
		t.Errorf("cp - into a file: exit %d %q", code, errOut)
	}

	if e.isolation != "vm" {
		// A stopped container: its overlay is mounted for the copy and
		// unmounted after; what was copied is there at the next start.
		e.run("stop", "-t", "0", "cpc")
		if e.rootfsMounted(id) {
			t.Fatal("the stopped container's rootfs is still mounted")
		}
		os.WriteFile(filepath.Join(host, "late"), []byte("while stopped\n"), 0o644)
		e.run("cp", filepath.Join(host, "late"), "cpc:/tmp/d/late")
		if e.rootfsMounted(id) {
			t.Error("cp into a stopped container left its rootfs mounted")
		}
		e.run("cp", "cpc:/tmp/d", filepath.Join(back, "stopped"))
		if e.rootfsMounted(id) {
			t.Error("cp out of a stopped container left its rootfs mounted")
		}
		want := snapshotTree(t, src)
		want["late"] = treeEntry{Type: "file", Mode: 0o644, Size: 14, Content: "while stopped\n"}
		sameTree(t, "copy out of the stopped container", want, snapshotTree(t, filepath.Join(back, "stopped")))
		e.run("start", "cpc")
		if out := e.run("exec", "cpc", "cat", "/tmp/d/late"); out != "while stopped\n" {
			t.Errorf("after start: %q", out)
		}
	}
	// A read-only root filesystem refuses.
	e.run("create", "--name", "ro", "--read-only", demoImage, "true")
	if code, _, errOut := e.exitCode("cp", filepath.Join(host, "f"), "ro:/f"); code != 1 || !strings.Contains(errOut, "read-only") {
		t.Errorf("cp into a --read-only container: exit %d %q", code, errOut)
	}
	e.run("rm", "-f", "cpc", "ro")
	e.checkNothingLeft()
}

func tarNames(t *testing.T, data []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		names = append(names, h.Name)
	}
	return names
}

// fsEntry is what export is compared on.
type fsEntry struct {
	Type byte
	Mode int64
	Size int64
	Link string
}

// readTarEntries reads a tar into entries by clean path (no "./", no
// trailing "/", the root left out); a hard link takes the attributes of
// its target. links maps each hard link to its target.
func readTarEntries(t *testing.T, r io.Reader) (map[string]fsEntry, map[string]string, map[string]*tar.Header) {
	t.Helper()
	out := map[string]fsEntry{}
	links := map[string]string{}
	hdrs := map[string]*tar.Header{}
	clean := func(n string) string { return strings.TrimSuffix(strings.TrimPrefix(n, "./"), "/") }
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		name := clean(h.Name)
		if name == "" || name == "." {
			continue
		}
		hdrs[name] = h
		ent := fsEntry{Type: h.Typeflag, Mode: h.Mode & 0o7777}
		switch h.Typeflag {
		case tar.TypeReg:
			ent.Size = h.Size
		case tar.TypeSymlink:
			ent.Link = h.Linkname
		case tar.TypeLink:
			target := clean(h.Linkname)
			links[name] = target
			ent = out[target]
		case tar.TypeChar, tar.TypeBlock:
			ent.Link = fmt.Sprintf("%d:%d", h.Devmajor, h.Devminor)
		}
		out[name] = ent
	}
	return out, links, hdrs
}

// demoArchiveFiles reads the demo image's docker-archive: its regular
// files (manifest, config, layers) by name.
func demoArchiveFiles(t *testing.T) map[string][]byte {
	t.Helper()
	f, err := os.Open(demoTarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files[strings.TrimPrefix(h.Name, "./")] = b
		}
	}
	return files
}

// imageFiles reads the files of the demo image's (only) layer.
func imageFiles(t *testing.T) map[string]fsEntry {
	t.Helper()
	files := demoArchiveFiles(t)
	var manifest []struct{ Layers []string }
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 || len(manifest[0].Layers) != 1 {
		t.Fatalf("the demo image's manifest: %v %+v", err, manifest)
	}
	ents, _, _ := readTarEntries(t, bytes.NewReader(files[manifest[0].Layers[0]]))
	return ents
}

// cp out of a container does not recreate on the host what a container
// can make to attack it: device nodes (here the host's first disk, made
// world-writable) and setuid-root files are left out or cleared, with a
// warning, unless -a asks for everything.
func TestEngineMoreCpHostSafety(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("run", "-d", "--name", "dv", demoImage, "sh", "-c",
		"mkdir /data && mknod /data/sda b 254 0 && chmod 666 /data/sda && mkfifo /data/fifo && "+
			"cp /bin/busybox /data/shell && chmod 4755 /data/shell && cp /bin/busybox /data/sgid && chmod 2755 /data/sgid && "+
			"ln /data/shell /data/shell-link && echo plain > /data/plain && touch /tmp/ready && exec sleep 100")
	waitFor(t, 10*time.Second, "the container's files", func() bool {
		_, _, err := e.try("exec", "dv", "test", "-f", "/tmp/ready")
		return err == nil
	})
	out := t.TempDir()
	_, errOut, err := e.try("cp", "dv:/data", filepath.Join(out, "plain"))
	if err != nil {
		t.Fatalf("cp: %v: %s", err, errOut)
	}
	if !strings.Contains(errOut, "left out 1 device node(s) (dv:/data/sda)") || !strings.Contains(errOut, "cleared setuid/setgid") {
		t.Errorf("cp's warnings: %q", errOut)
	}
	dir := filepath.Join(out, "plain")
	if _, err := os.Lstat(filepath.Join(dir, "sda")); !os.IsNotExist(err) {
		t.Errorf("the device node was copied to the host: %v", err)
	}
	for _, f := range []string{"shell", "sgid", "shell-link"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 || st.Mode().Perm() != 0o755 {
			t.Errorf("%s on the host: %v %v, want 0755 without setuid/setgid", f, st.Mode(), err)
		}
	}
	if st, err := os.Lstat(filepath.Join(dir, "fifo")); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("a fifo is harmless and still copied: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "plain")); string(b) != "plain\n" {
		t.Errorf("plain file: %q", b)
	}

	// -a: everything, as documented.
	_, errOut, err = e.try("cp", "-a", "dv:/data", filepath.Join(out, "archive"))
	if err != nil {
		t.Fatalf("cp -a: %v: %s", err, errOut)
	}
	if strings.Contains(errOut, "WARNING") {
		t.Errorf("cp -a warned: %q", errOut)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(out, "archive", "sda"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK || unix.Major(st.Rdev) != 254 {
		t.Errorf("cp -a: the device node: %v %o", err, st.Mode)
	}
	if fi, err := os.Stat(filepath.Join(out, "archive", "shell")); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("cp -a: the setuid bit: %v %v", err, fi.Mode())
	}
	// A tar to stdout is the user's to extract: it carries everything.
	if tarOut := e.run("cp", "dv:/data/sda", "-"); !strings.Contains(tarOut, "sda") {
		t.Errorf("cp to stdout lost the device entry")
	}
	e.run("rm", "-f", "dv")
}

func TestEngineMoreExport(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	image := imageFiles(t)
	if _, ok := image["bin/vi"]; !ok {
		t.Fatal("the demo image has no bin/vi to delete")
	}
	// The container writes, deletes, links, changes a mode, makes a
	// device node and a FIFO, then exits.
	e.run("run", "--name", "exp", demoImage, "sh", "-c",
		`echo hello > /new.txt && ln /new.txt /new-hard && rm /bin/vi && mkdir /data && ln -s /etc/passwd /data/link &&
chmod 600 /etc/group && mknod /data/null c 1 3 && mkfifo /data/fifo && mkdir -p /tmp/deep/er && echo x > /tmp/deep/er/f`)
	id := e.inspect("exp").ID
	// A file with a capability, copied in while it is stopped.
	capFile := filepath.Join(t.TempDir(), "capped")
	os.WriteFile(capFile, []byte("#!/bin/sh\n"), 0o755)
	capOK := unix.Setxattr(capFile, "security.capability", capability, 0) == nil
	e.run("cp", capFile, "exp:/capped")

	want := map[string]fsEntry{}
	for p, ent := range image {
		want[p] = ent
	}
	delete(want, "bin/vi")
	want["etc/group"] = fsEntry{Type: tar.TypeReg, Mode: 0o600, Size: image["etc/group"].Size}
	for p, ent := range map[string]fsEntry{
		"new.txt":       {Type: tar.TypeReg, Mode: 0o644, Size: 6},
		"new-hard":      {Type: tar.TypeReg, Mode: 0o644, Size: 6},
		"data":          {Type: tar.TypeDir, Mode: 0o755},
		"data/link":     {Type: tar.TypeSymlink, Mode: 0o777, Link: "/etc/passwd"},
		"data/null":     {Type: tar.TypeChar, Mode: 0o644, Link: "1:3"},
		"data/fifo":     {Type: tar.TypeFifo, Mode: 0o644},
		"tmp/deep":      {Type: tar.TypeDir, Mode: 0o755},
		"tmp/deep/er":   {Type: tar.TypeDir, Mode: 0o755},
		"tmp/deep/er/f": {Type: tar.TypeReg, Mode: 0o644, Size: 2},
		"capped":        {Type: tar.TypeReg, Mode: 0o755, Size: 10},
	} {
		want[p] = ent
	}
	// The runtime's mount points for the files berth binds in.
	allowed := map[string]bool{"etc/hosts": true, "etc/hostname": true, "etc/resolv.conf": true}

	check := func(what string, data []byte) map[string]*tar.Header {
		got, links, hdrs := readTarEntries(t, bytes.NewReader(data))
		for p, w := range want {
			g, ok := got[p]
			if !ok {
				t.Errorf("%s: %s missing", what, p)
				continue
			}
			if g.Type == tar.TypeSymlink {
				w.Mode, g.Mode = 0, 0 // a symlink's mode means nothing
			}
			if g != w {
				t.Errorf("%s: %s is %+v, want %+v", what, p, g, w)
			}
		}
		for p, g := range got {
			if _, ok := want[p]; ok {
				continue
			}
			if !allowed[p] || g.Type != tar.TypeReg {
				t.Errorf("%s: unexpected %s %+v", what, p, g)
			}
		}
		for p, h := range hdrs {
			if strings.HasPrefix(baseName(p), ".wh.") || strings.HasPrefix(p, "proc/") || strings.HasPrefix(p, "sys/") {
				t.Errorf("%s: %s should not be in an export", what, p)
			}
			if h.Uname != "" || h.Gname != "" {
				t.Errorf("%s: %s has owner names %q:%q, want numeric owners only", what, p, h.Uname, h.Gname)
			}
		}
		// One name of the hard-linked pair is a link to the other.
		if len(links) != 1 || !(links["new.txt"] == "new-hard" || links["new-hard"] == "new.txt") {
			t.Errorf("%s: hard links %v, want new.txt and new-hard linked", what, links)
		}
		return hdrs
	}

	// Stopped: its overlay is mounted for the export and unmounted after.
	if e.rootfsMounted(id) {
		t.Fatal("the exited container's rootfs is mounted")
	}
	stopped, errOut, code := moreRun(e, nil, "export", "exp")
	if code != 0 {
		t.Fatalf("export: %d %s", code, errOut)
	}
	hdrs := check("export of a stopped container", []byte(stopped))
	if e.rootfsMounted(id) {
		t.Error("export of a stopped container left its rootfs mounted")
	}
	if capOK {
		if h := hdrs["capped"]; h == nil || h.PAXRecords["SCHILY.xattr.security.capability"] != string(capability) {
			t.Errorf("export lost security.capability of /capped: %+v", h)
		}
	}

	// Running, to a file: the same files (its /proc and /sys are mounts
	// in its own namespace and stay out).
	e.run("rm", "exp")
	e.run("run", "-d", "--name", "exp2", demoImage, "sh", "-c",
		`echo hello > /new.txt && ln /new.txt /new-hard && rm /bin/vi && mkdir /data && ln -s /etc/passwd /data/link &&
chmod 600 /etc/group && mknod /data/null c 1 3 && mkfifo /data/fifo && mkdir -p /tmp/deep/er && echo x > /tmp/deep/er/f && echo ready > /ready && exec sleep 1000`)
	waitFor(t, 10*time.Second, "the container's changes", func() bool { out, _, _ := e.try("exec", "exp2", "cat", "/ready"); return out == "ready\n" })
	e.run("cp", capFile, "exp2:/capped")
	want["ready"] = fsEntry{Type: tar.TypeReg, Mode: 0o644, Size: 6}
	file := filepath.Join(t.TempDir(), "exp2.tar")
	e.run("export", "-o", file, "exp2")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	check("export -o of a running container", data)
	if out := e.run("exec", "exp2", "cat", "/new.txt"); out != "hello\n" {
		t.Errorf("the running container after its export: %q", out)
	}
	id2 := e.inspect("exp2").ID
	if !e.rootfsMounted(id2) {
		t.Error("export unmounted a running container's rootfs")
	}
	e.run("rm", "-f", "exp2")
	e.checkNothingLeft()
}

// baseName returns the last element of a slash-separated name.
func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// diff lists what the container added, changed and deleted, as docker
// does, and not the mount points berth made for its own files, volumes
// and --init; the same for a VM container (its changes read in the guest,
// its VM booted for them since it has stopped).
func TestEngineMoreDiff(t *testing.T) { forEachIsolation(t, testMoreDiff) }

func testMoreDiff(t *testing.T, e *engineEnv) {
	e.run("run", "--name", "d", "-v", "dv:/data", "--init", demoImage, "sh", "-c",
		"echo x > /tmp/new; rm /etc/group; echo y >> /etc/passwd; mkdir -p /var/x; touch /var/x/z")
	want := "C /etc\nD /etc/group\nC /etc/passwd\nC /tmp\nA /tmp/new\nC /var\nA /var/x\nA /var/x/z\n"
	if got := e.run("diff", "d"); got != want {
		t.Errorf("diff:\n%s\nwant:\n%s", got, want)
	}
	var changes []struct {
		Path string
		Kind int
	}
	if err := json.Unmarshal([]byte(e.run("diff", "--format", "json", "d")), &changes); err != nil || len(changes) != 8 || changes[1].Kind != 2 || changes[4].Kind != 1 || changes[0].Kind != 0 {
		t.Errorf("diff --format json: %v %+v", err, changes)
	}
	e.run("run", "--name", "clean", demoImage, "true")
	if got := e.run("diff", "clean"); got != "" {
		t.Errorf("diff of a container that changed nothing: %q", got)
	}
	e.run("rm", "-v", "d", "clean")
	e.run("volume", "rm", "dv")
}

// image history: the image's steps, newest first, with its ID on the
// newest and each layer's size.
func TestEngineMoreImageHistory(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	out := e.run("history", demoImage)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "IMAGE") || !strings.Contains(lines[1], "scripts/mkimage.sh: Debian busybox-static") {
		t.Fatalf("history:\n%s", out)
	}
	var row struct{ ID, CreatedBy, Size string }
	if err := json.Unmarshal([]byte(e.run("image", "history", "--format", "json", "--no-trunc", "-H=false", demoImage)), &row); err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(e.run("images", "-q", "--no-trunc", demoImage))
	if size, _ := strconv.ParseInt(row.Size, 10, 64); !strings.HasSuffix(id, strings.TrimPrefix(row.ID, "sha256:")) || size < 1<<20 {
		t.Errorf("history --format json: %+v (image %s)", row, id)
	}
	if q := strings.TrimSpace(e.run("history", "-q", demoImage)); len(q) != 12 {
		t.Errorf("history -q: %q", q)
	}
}

// update changes a running container's cgroup limits at once, keeps them
// for its next start, and changes its restart policy.
func TestEngineMoreUpdate(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	id := strings.TrimSpace(e.run("run", "-d", "--name", "u", "-m", "64m", demoImage, "sleep", "100"))
	limit := func() string {
		// The container's own view of its memory cgroup (v1 here, v2 elsewhere).
		out, _, _ := e.try("exec", "u", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")
		return strings.TrimSpace(out)
	}
	if got := limit(); got != "67108864" {
		t.Fatalf("memory limit before update: %q", got)
	}
	if out := e.run("update", "-m", "128m", "--pids-limit", "50", "--restart", "on-failure:3", "u"); strings.TrimSpace(out) != "u" {
		t.Errorf("update printed %q", out)
	}
	if got := limit(); got != "134217728" {
		t.Errorf("memory limit after update: %q", got)
	}
	if pids, _, _ := e.try("exec", "u", "sh", "-c", "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"); strings.TrimSpace(pids) != "50" {
		t.Errorf("pids limit after update: %q", pids)
	}
	if got := e.run("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", id); strings.TrimSpace(got) != "134217728 50 on-failure:3" {
		t.Errorf("inspect after update: %q", got)
	}
	e.run("restart", "-t", "0", "u")
	if got := limit(); got != "134217728" {
		t.Errorf("memory limit after a restart: %q", got)
	}
	if code, _, _ := e.exitCode("update", "--cpus", "-1", "u"); code == 0 {
		t.Error("update --cpus -1 was accepted")
	}
	e.run("rm", "-f", "u")
}

// commit: a container's changes become an image a new container runs,
// with the --change instructions in its config and the commit in its
// history; deletions carry over; a running container is paused for the
// commit and runs on.
func TestEngineMoreCommit(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("run", "--name", "c", "-v", "cv:/data", demoImage, "sh", "-c",
		"echo committed > /committed; rm /etc/group; mkdir -p /opt/x && echo y > /opt/x/f; echo vol > /data/v")
	id := strings.TrimSpace(e.run("commit", "-c", `CMD ["cat", "/committed"]`, "-c", `ENV X=1 Y="two words"`,
		"-c", "LABEL team=infra", "-m", "my change", "-a", "me", "c", "mine:1"))
	if !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
		t.Fatalf("commit printed %q", id)
	}
	if out := e.run("run", "--rm", "mine:1"); out != "committed\n" {
		t.Errorf("the committed image's CMD and file: %q", out)
	}
	out := e.run("run", "--rm", "mine:1", "sh", "-c", `echo "$X|$Y"; test -e /etc/group && echo group; cat /opt/x/f; ls /data 2>/dev/null | wc -l`)
	if out != "1|two words\ny\n0\n" {
		t.Errorf("the committed image's env, deletion, new files and (excluded) volume: %q", out)
	}
	if got := e.run("image", "inspect", "-f", "{{.Config.Labels.team}}", "mine:1"); strings.TrimSpace(got) != "infra" {
		t.Errorf("LABEL: %q", got)
	}
	if h := e.run("history", "mine:1"); !strings.Contains(h, "my change") || !strings.Contains(h, "berth commit c") {
		t.Errorf("history of the committed image:\n%s", h)
	}

	// A running container: paused while read, running after.
	e.run("run", "-d", "--name", "live", demoImage, "sh", "-c", "echo live > /live; exec sleep 100")
	waitFor(t, 5*time.Second, "the live file", func() bool { _, _, err := e.try("exec", "live", "test", "-f", "/live"); return err == nil })
	e.run("commit", "live", "live:1")
	if c := e.inspect("live"); c.State.Status != "running" {
		t.Errorf("after commit the container is %s", c.State.Status)
	}
	if out := e.run("run", "--rm", "live:1", "cat", "/live"); out != "live\n" {
		t.Errorf("the live container's commit: %q", out)
	}
	if code, _, errOut := e.exitCode("commit", "-c", "ONBUILD RUN true", "live"); code != 1 || !strings.Contains(errOut, "ONBUILD") {
		t.Errorf("an unknown --change: %d %s", code, errOut)
	}
	e.run("rm", "-f", "-v", "c", "live")
	e.run("volume", "rm", "cv")
}

// import: a root file system tarball (an export's, plain or gzip, from
// a file or stdin) becomes an image of one layer that runs, with the
// --change instructions, the message in its history, the host's
// platform; unnamed, it lists untagged; a tarball with an entry that
// climbs out of the root, one that is no tar, and a URL are refused and
// leave no image.
func TestEngineMoreImport(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("create", "--name", "src", demoImage, "true")
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs.tar")
	e.run("export", "-o", rootfs, "src")
	e.run("rm", "src")
	id := strings.TrimSpace(e.run("import", "-c", `CMD ["sh", "-c", "echo $GREETING from $(cat /etc/imported)"]`, "-c", "ENV GREETING=hello",
		"-m", "from rootfs.tar", rootfs, "imported:1"))
	if !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
		t.Fatalf("import printed %q", id)
	}
	if out := e.run("run", "--rm", "imported:1", "sh", "-c", "echo here > /etc/imported; echo $GREETING; ls /bin/sh"); out != "hello\n/bin/sh\n" {
		t.Errorf("a container of the imported image: %q", out)
	}
	if got := e.run("image", "inspect", "-f", "{{.Os}}/{{.Architecture}} {{len .RootFS.Layers}} {{.Config.Cmd}}", "imported:1"); strings.TrimSpace(got) != "linux/"+runtime.GOARCH+" 1 [sh -c echo $GREETING from $(cat /etc/imported)]" {
		t.Errorf("the imported image's config: %q", got)
	}
	if h := e.run("history", "imported:1"); !strings.Contains(h, "from rootfs.tar") {
		t.Errorf("the imported image's history:\n%s", h)
	}
	// gzip on stdin, unnamed.
	gz := filepath.Join(dir, "rootfs.tar.gz")
	if out, err := exec.Command("sh", "-c", "gzip -c < "+rootfs+" > "+gz).CombinedOutput(); err != nil {
		t.Fatalf("gzip: %v %s", err, out)
	}
	cmd := e.command("import", "-")
	f, err := os.Open(gz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdin = f
	out, err := cmd.Output()
	unnamed := strings.TrimSpace(string(out))
	if err != nil || !strings.HasPrefix(unnamed, "sha256:") {
		t.Fatalf("import - of a gzip tarball: %q %v", out, err)
	}
	if got := e.run("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=localhost/imported"); strings.TrimSpace(got) != "localhost/imported:<none>" {
		t.Errorf("the unnamed import listed as %q", got)
	}
	if out := e.run("run", "--rm", unnamed, "cat", "/etc/hostname"); strings.TrimSpace(out) == "" {
		t.Errorf("a container of the unnamed import by its ID printed nothing")
	}
	// Refused, leaving nothing.
	before := e.run("images", "-q", "--no-trunc")
	hostile := filepath.Join(dir, "hostile.tar")
	var hb bytes.Buffer
	tw := tar.NewWriter(&hb)
	for _, name := range []string{"ok", "../escape"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
		tw.Write([]byte("out"))
	}
	tw.Close()
	if err := os.WriteFile(hostile, hb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.tar")
	os.WriteFile(junk, bytes.Repeat([]byte("not a tar "), 200), 0o644)
	for _, tc := range []struct{ src, want string }{
		{hostile, "escape"},
		{junk, "tar"},
		{"http://127.0.0.1:9/rootfs.tar", "does not fetch"},
		{filepath.Join(dir, "missing.tar"), "no such file"},
	} {
		if code, _, errOut := e.exitCode("import", tc.src, "refused:1"); code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("import %s: exit %d, %s; want a failure naming %q", filepath.Base(tc.src), code, errOut, tc.want)
		}
	}
	if code, _, errOut := e.exitCode("import", "-c", "ONBUILD RUN true", rootfs); code == 0 || !strings.Contains(errOut, "ONBUILD") {
		t.Errorf("import with an unknown --change: %d %s", code, errOut)
	}
	if after := e.run("images", "-q", "--no-trunc"); after != before {
		t.Errorf("refused imports left images: before %q, after %q", before, after)
	}
	if _, err := os.Stat(filepath.Join(dir, "escape")); err == nil {
		t.Error("the hostile tarball wrote outside its root")
	}
	e.run("rmi", "imported:1", unnamed)
}

// TestEngineOOMKilled: a container whose process the kernel's OOM killer
// ends is recorded OOMKilled (docker's State.OOMKilled, the CRI's reason
// OOMKilled) with 137; one killed with SIGKILL from outside is 137 and
// not OOMKilled. Under both isolations: in a VM the limit is enforced by
// the container's cgroup in the guest, whose count the agent reports with
// the exit.
func TestEngineOOMKilled(t *testing.T) { forEachIsolation(t, testOOMKilled) }

func testOOMKilled(t *testing.T, e *engineEnv) {
	code, _, _ := e.exitCode("run", "--name", "oom", "--memory", "15m", "--memory-swap", "15m", demoImage, "sh", "-c", "dd if=/dev/zero of=/dev/null bs=20M")
	if got := strings.TrimSpace(e.run("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "oom")); code != 137 || got != "true 137" {
		t.Errorf("a container over its memory limit: exit %d, inspect %q; want 137, \"true 137\"", code, got)
	}
	e.run("run", "-d", "--name", "killed", demoImage, "sleep", "100")
	e.run("kill", "killed")
	waitFor(t, 10e9, "the killed container's exit", func() bool {
		return strings.TrimSpace(e.run("inspect", "-f", "{{.State.Status}}", "killed")) == "exited"
	})
	if got := strings.TrimSpace(e.run("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "killed")); got != "false 137" {
		t.Errorf("a container killed with SIGKILL: inspect %q, want \"false 137\"", got)
	}
	e.run("rm", "oom", "killed")
	e.checkNothingLeft()
	if e.isolation == "vm" {
		e.checkNoVMLeft()
	}
}
