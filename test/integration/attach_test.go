//go:build linux

package integration

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lockedBuffer collects what a pty master or a pipe gives while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	waitFor(t, 15*time.Second, "output "+visible(want)+", have "+visible(b.String()), func() bool { return strings.Contains(b.String(), want) })
}

func visible(s string) string {
	return strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(s, "\r", `\r`), "\n", `\n`))
}

// onPty starts berth args with a new pty as its controlling terminal and
// returns the master and what comes out of it.
func (e *engineEnv) onPty(t *testing.T, args ...string) (*exec.Cmd, *os.File, *lockedBuffer) {
	t.Helper()
	m, s := openPty(t)
	t.Cleanup(func() { m.Close() })
	cmd := e.command(args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	s.Close()
	out := &lockedBuffer{}
	go io.Copy(out, m)
	return cmd, m, out
}

// monitorsGone waits for the monitors of e's containers to end: the exit
// handler of a container whose attached CLI did not record the exit may
// still run for a moment after rm.
func (e *engineEnv) monitorsGone() {
	e.t.Helper()
	waitFor(e.t.(*testing.T), 10*time.Second, "the monitors to end", func() bool { return len(e.monitors()) == 0 })
}

// exitWithin waits for cmd and returns its exit code (-1: killed by a
// signal), failing the test if it runs on.
func exitWithin(t *testing.T, cmd *exec.Cmd, d time.Duration, what string) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err == nil {
			return 0
		}
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		t.Fatalf("%s: %v", what, err)
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s: still running after %s", what, d)
	}
	return 0
}

// run -it: ctrl-p ctrl-q detaches the CLI (exit 0, as docker's run) and
// leaves the container running; a ctrl-p followed by another key reaches
// the container as typed. berth attach then takes the terminal again, with
// its own --detach-keys, and detaches with docker's message and exit 1.
func TestAttachDetachKeys(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	cmd, m, out := e.onPty(t, "run", "-it", "--name", "dk", demoImage, "cat")
	waitFor(t, 15*time.Second, "dk running", func() bool {
		c, out, _ := e.exitCode("inspect", "-f", "{{.State.Running}}", "dk")
		return c == 0 && strings.TrimSpace(out) == "true"
	})
	m.Write([]byte("first\r"))
	out.waitFor(t, "first")
	// A partial sequence then something else: both bytes reach the
	// container (its pty echoes ctrl-p as ^P).
	m.Write([]byte("\x10z\r"))
	out.waitFor(t, "^Pz")
	// A second client on another terminal, alongside run's: what it types
	// shows on both; its detach leaves run attached.
	cmd2, m2, out2 := e.onPty(t, "attach", "dk")
	time.Sleep(300 * time.Millisecond)
	m2.Write([]byte("both\r"))
	out.waitFor(t, "both")
	out2.waitFor(t, "both")
	m2.Write([]byte{16, 17})
	if code := exitWithin(t, cmd2, 10*time.Second, "the second client after ctrl-p ctrl-q"); code != 1 {
		t.Errorf("attach detached with exit %d, want 1 (docker's); output %q", code, out2.String())
	}
	m.Write([]byte("still\r"))
	out.waitFor(t, "still")
	m.Write([]byte{16, 17})
	if code := exitWithin(t, cmd, 10*time.Second, "run -it after ctrl-p ctrl-q"); code != 0 {
		t.Errorf("run -it detached with exit %d, want 0 (docker's); output %q", code, out.String())
	}
	if s := e.inspect("dk").State; !s.Running {
		t.Fatalf("container after the detach: %+v, want running", s)
	}

	// Attach again, with other keys: the default ones are then plain
	// input.
	cmd, m, out = e.onPty(t, "attach", "--detach-keys", "ctrl-a,x", "dk")
	time.Sleep(300 * time.Millisecond)
	m.Write([]byte("second\r"))
	out.waitFor(t, "second")
	// (The pty takes ctrl-q for itself: IXON.)
	m.Write([]byte{16, 17, 'Q', '\r'})
	out.waitFor(t, "^PQ")
	m.Write([]byte{1, 'x'})
	if code := exitWithin(t, cmd, 10*time.Second, "attach after ctrl-a x"); code != 1 {
		t.Errorf("attach detached with exit %d, want 1 (docker's); output %q", code, out.String())
	}
	out.waitFor(t, "read escape sequence")
	if s := e.inspect("dk").State; !s.Running {
		t.Fatalf("container after the attach detached: %+v, want running", s)
	}

	// A third attach sees the container's exit, and its code.
	cmd, m, out = e.onPty(t, "attach", "dk")
	time.Sleep(300 * time.Millisecond)
	m.Write([]byte("third\r"))
	out.waitFor(t, "third")
	m.Write([]byte{4}) // ^D: cat ends, 0
	if code := exitWithin(t, cmd, 10*time.Second, "attach until the exit"); code != 0 {
		t.Errorf("attach exit %d, want the container's 0; output %q", code, out.String())
	}
	waitFor(t, 10*time.Second, "dk exited", func() bool { return !e.inspect("dk").State.Running })
	e.run("rm", "dk")
	// Each detach by keys is docker's detach event: three of them.
	if got := e.run("events", "--since", "0", "--until", "0s", "--filter", "container=dk", "--filter", "event=detach", "--format", "{{.Action}}"); got != "detach\ndetach\ndetach\n" {
		t.Errorf("detach events: %q, want three", got)
	}
	e.monitorsGone()
	e.checkNothingLeft()
}

// start -ai takes --detach-keys too, and detaching from it is success.
func TestAttachStartDetachKeys(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("create", "-it", "--name", "sk", demoImage, "cat")
	cmd, m, out := e.onPty(t, "start", "-ai", "--detach-keys", "ctrl-a,x", "sk")
	waitFor(t, 15*time.Second, "sk running", func() bool {
		c, out, _ := e.exitCode("inspect", "-f", "{{.State.Running}}", "sk")
		return c == 0 && strings.TrimSpace(out) == "true"
	})
	// ctrl-a then a key other than x: both reach the container.
	m.Write([]byte("in\x01y\r"))
	out.waitFor(t, "in^Ay")
	m.Write([]byte{1, 'x'})
	if code := exitWithin(t, cmd, 10*time.Second, "start -ai after ctrl-a x"); code != 0 {
		t.Errorf("start -ai detached with exit %d, want 0; output %q", code, out.String())
	}
	if strings.Contains(out.String(), "escape sequence") {
		t.Errorf("start -ai printed %q: docker's start says nothing on a detach", out.String())
	}
	if s := e.inspect("sk").State; !s.Running {
		t.Fatalf("container after the detach: %+v, want running", s)
	}
	e.run("rm", "-f", "sk")
	e.monitorsGone()
	e.checkNothingLeft()
}

// attach gives the container's pty the size of the attaching terminal,
// and follows the resizes of each attached terminal (from the CLI that
// passed the SIGWINCH on).
func TestAttachResize(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("run", "-d", "-it", "--name", "sz", demoImage, "sh", "-c", `while read l; do echo "size:$(stty size)"; done`)
	attach := func(rows, cols uint16) (*exec.Cmd, *os.File, *lockedBuffer) {
		m, s := openPty(t)
		t.Cleanup(func() { m.Close() })
		unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
		cmd := e.command("attach", "sz")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		s.Close()
		out := &lockedBuffer{}
		go io.Copy(out, m)
		time.Sleep(300 * time.Millisecond)
		return cmd, m, out
	}
	resize := func(m *os.File, rows, cols uint16) {
		unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
		time.Sleep(300 * time.Millisecond)
	}
	cmd1, m1, out1 := attach(44, 120)
	m1.Write([]byte("\r"))
	out1.waitFor(t, "size:44 120")
	cmd2, m2, out2 := attach(30, 70)
	m2.Write([]byte("\r"))
	out2.waitFor(t, "size:30 70")
	resize(m1, 50, 90)
	m1.Write([]byte("\r"))
	out1.waitFor(t, "size:50 90")
	resize(m2, 33, 77)
	m2.Write([]byte("\r"))
	out2.waitFor(t, "size:33 77")
	m1.Write([]byte{16, 17})
	m2.Write([]byte{16, 17})
	exitWithin(t, cmd1, 10*time.Second, "attach 1 after ctrl-p ctrl-q")
	exitWithin(t, cmd2, 10*time.Second, "attach 2 after ctrl-p ctrl-q")
	e.run("rm", "-f", "sz")
}

// A --rm container left running by a detach is still removed at its
// exit: the monitor's exit handler does it, the CLI being gone.
func TestAttachDetachRm(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	cmd, m, out := e.onPty(t, "run", "-it", "--rm", "--name", "rmme", demoImage, "cat")
	waitFor(t, 15*time.Second, "rmme running", func() bool {
		c, out, _ := e.exitCode("inspect", "-f", "{{.State.Running}}", "rmme")
		return c == 0 && strings.TrimSpace(out) == "true"
	})
	m.Write([]byte{16, 17})
	if code := exitWithin(t, cmd, 10*time.Second, "run -it --rm after ctrl-p ctrl-q"); code != 0 {
		t.Errorf("run -it --rm detached with exit %d, want 0; output %q", code, out.String())
	}
	e.run("stop", "-t", "1", "rmme")
	waitFor(t, 10*time.Second, "rmme removed", func() bool {
		c, _, _ := e.exitCode("inspect", "rmme")
		return c != 0
	})
	e.monitorsGone()
	e.checkNothingLeft()
}

// After a restart the new monitor takes attaches, and killing an attach
// CLI leaves the container running. (The old monitor may end just after
// the new one bound its socket, and must not unlink it: this did not
// happen here without the guard either, so the test only may catch it.)
func TestAttachAfterRestart(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("run", "-d", "-i", "--name", "rs", demoImage, "cat")
	for i := range 3 {
		e.run("restart", "-t", "0", "rs")
		time.Sleep(300 * time.Millisecond)
		cmd := e.command("attach", "rs")
		in, _ := cmd.StdinPipe()
		var stdout lockedBuffer
		cmd.Stdout = &stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		io.WriteString(in, "round\n")
		stdout.waitFor(t, "round")
		cmd.Process.Kill()
		cmd.Wait()
		in.Close()
		if s := e.inspect("rs").State; !s.Running {
			t.Fatalf("round %d: killing the attach CLI stopped the container: %+v", i, s)
		}
	}
	e.run("rm", "-f", "rs")
	e.monitorsGone()
	e.checkNothingLeft()
}

// attach to a container started with -i and no tty: our stdin goes to
// its stdin, its output comes here, and attach exits with its code.
func TestAttachStdinAndExitCode(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("run", "-d", "-i", "--name", "echo", demoImage, "sh", "-c", `echo started; read line; echo "got:$line"; echo "err:$line" >&2; exit 3`)
	waitFor(t, 10*time.Second, "echo started", func() bool { return strings.Contains(e.run("logs", "echo"), "started") })
	cmd := e.command("attach", "echo")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "hello\n")
	code := exitWithin(t, cmd, 15*time.Second, "attach")
	in.Close()
	if code != 3 {
		t.Errorf("attach exit %d, want the container's 3; stdout %q stderr %q", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "got:hello") || strings.Contains(stdout.String(), "started") {
		t.Errorf("attach stdout %q: want got:hello, and nothing from before the attach", stdout.String())
	}
	if !strings.Contains(stderr.String(), "err:hello") {
		t.Errorf("attach stderr %q: want err:hello", stderr.String())
	}
	if s := e.inspect("echo").State; s.Running || s.ExitCode != 3 {
		t.Errorf("after attach: %+v, want exited 3", s)
	}
	e.run("rm", "echo")
	e.monitorsGone()
	e.checkNothingLeft()
}

// Without a tty, a signal berth attach receives goes to the container
// (--sig-proxy, the default); with --sig-proxy=false it ends the attach
// only.
func TestAttachSigProxy(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("run", "-d", "--name", "sig", demoImage, "sh", "-c", `trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done`)
	waitFor(t, 10*time.Second, "sig ready", func() bool { return strings.Contains(e.run("logs", "sig"), "ready") })

	cmd := e.command("attach", "--sig-proxy=false", "sig")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(unix.SIGTERM)
	exitWithin(t, cmd, 10*time.Second, "attach --sig-proxy=false after SIGTERM")
	time.Sleep(300 * time.Millisecond)
	if s := e.inspect("sig").State; !s.Running {
		t.Fatalf("with --sig-proxy=false the container got the signal: %+v", s)
	}

	cmd = e.command("attach", "sig")
	var stdout lockedBuffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(unix.SIGTERM)
	if code := exitWithin(t, cmd, 10*time.Second, "attach after SIGTERM"); code != 7 {
		t.Errorf("attach exit %d, want 7 (the container trapped the TERM it passed on); stdout %q", code, stdout.String())
	}
	if !strings.Contains(stdout.String(), "got-term") {
		t.Errorf("attach stdout %q: want got-term", stdout.String())
	}
	e.run("rm", "-f", "sig")

	// A foreground run passes on what it gets too: an asynchronous
	// signal, a real-time one and one the kernel also sends for faults
	// (here from kill).
	cmd = e.command("run", "--rm", "--name", "sigrun", demoImage, "sh", "-c",
		`trap 'echo got-usr1' USR1; trap 'echo got-rt' 40; trap 'echo got-segv' SEGV; trap 'echo got-term; exit 9' TERM; echo ready; while true; do sleep 0.05; done`)
	var runOut lockedBuffer
	cmd.Stdout = &runOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "sigrun ready", func() bool { return strings.Contains(runOut.String(), "ready") })
	for _, s := range []struct {
		sig  unix.Signal
		want string
	}{{unix.SIGUSR1, "got-usr1"}, {unix.Signal(40), "got-rt"}, {unix.SIGSEGV, "got-segv"}} {
		cmd.Process.Signal(s.sig)
		waitFor(t, 10*time.Second, s.want, func() bool { return strings.Contains(runOut.String(), s.want) })
	}
	cmd.Process.Signal(unix.SIGTERM)
	if code := exitWithin(t, cmd, 10*time.Second, "run after SIGTERM"); code != 9 {
		t.Errorf("run exit %d, want 9 (the container trapped the TERM it passed on); stdout %q", code, runOut.String())
	}
}

// attach refuses a container that does not run and an invalid
// --detach-keys (naming it); several clients attach at once.
func TestAttachErrors(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("create", "--name", "created", demoImage, "true")
	e.run("run", "--name", "exited", demoImage, "true")
	for _, name := range []string{"created", "exited"} {
		code, _, stderr := e.exitCode("attach", name)
		if code != 1 || !strings.Contains(stderr, "You cannot attach to a stopped container, start it first") {
			t.Errorf("attach %s: exit %d, stderr %q; want 1 and docker's message", name, code, stderr)
		}
	}
	if code, _, stderr := e.exitCode("attach", "nosuch"); code != 1 || !strings.Contains(stderr, "nosuch") {
		t.Errorf("attach nosuch: exit %d, stderr %q", code, stderr)
	}

	e.run("run", "-d", "-i", "--name", "up", demoImage, "cat")
	if code, _, stderr := e.exitCode("attach", "--detach-keys", "ctrl-1", "up"); code != 1 || !strings.Contains(stderr, "ctrl-1") {
		t.Errorf("attach --detach-keys ctrl-1: exit %d, stderr %q; want 1, naming the key", code, stderr)
	}
	if code, _, stderr := e.exitCode("run", "--rm", "--detach-keys", "ctrl-p,bad", demoImage, "true"); code != 125 || !strings.Contains(stderr, "ctrl-p,bad") {
		t.Errorf("run --detach-keys ctrl-p,bad: exit %d, stderr %q; want 125, naming the spec", code, stderr)
	}

	// Several clients at once: both see the output, and either's input
	// reaches the container.
	first := e.command("attach", "up")
	firstIn, _ := first.StdinPipe()
	var firstOut lockedBuffer
	first.Stdout = &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(firstIn, "one\n")
	firstOut.waitFor(t, "one")
	second := e.command("attach", "up")
	secondIn, _ := second.StdinPipe()
	var secondOut lockedBuffer
	second.Stdout = &secondOut
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	io.WriteString(secondIn, "two\n")
	firstOut.waitFor(t, "two")
	secondOut.waitFor(t, "two")
	if strings.Contains(secondOut.String(), "one") {
		t.Errorf("the second client got output from before it attached: %q", secondOut.String())
	}
	// The end of one client's stdin closes neither the container's nor
	// the other's.
	secondIn.Close()
	time.Sleep(200 * time.Millisecond)
	io.WriteString(firstIn, "three\n")
	firstOut.waitFor(t, "three")
	secondOut.waitFor(t, "three")
	e.run("stop", "-t", "1", "up")
	for i, c := range []*exec.Cmd{first, second} {
		if code := exitWithin(t, c, 15*time.Second, "attach while the container stops"); code != 143 && code != 137 {
			t.Errorf("attach %d: exit %d after stop, want the container's 143 or 137", i+1, code)
		}
	}
	firstIn.Close()
	e.run("rm", "-f", "up", "created", "exited")
	e.monitorsGone()
	e.checkNothingLeft()
}
