package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// crictlCmd is crictl against sock as a command the test starts itself
// (for its stdin, a terminal, or a signal).
func crictlCmd(t *testing.T, sock string, args ...string) *exec.Cmd {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "crictl.yaml")
	os.WriteFile(cfg, nil, 0o644)
	all := append([]string{"--config", cfg, "--runtime-endpoint", "unix://" + sock, "--image-endpoint", "unix://" + sock, "--timeout", "60s"}, args...)
	return exec.Command(crictlPath(t), all...)
}

// criPod runs a pod through crictl and creates and starts containers in
// it from the given configs (JSON, without metadata); it returns the
// pod's ID and the containers' IDs.
func criPod(t *testing.T, sock, name string, ctrs ...map[string]any) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	pod := map[string]any{"metadata": map[string]any{"name": name, "namespace": "stream-test", "uid": name + "-uid"},
		"log_directory": filepath.Join(dir, "logs"), "linux": map[string]any{}}
	write := func(file string, v any) string {
		b, _ := json.Marshal(v)
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	podFile := write("pod.json", pod)
	ok := crictlOK(t, sock)
	podID := ok("runp", podFile)
	var ids []string
	for i, c := range ctrs {
		c["metadata"] = map[string]any{"name": fmt.Sprintf("c%d", i)}
		c["image"] = map[string]any{"image": demoImage}
		c["linux"] = map[string]any{}
		id := ok("create", podID, write(fmt.Sprintf("c%d.json", i), c), podFile)
		ok("start", id)
		ids = append(ids, id)
	}
	return podID, ids
}

// streamStacks are the goroutines of serve's stack dump that run a
// streaming session: the CRI's own code or the streaming library's.
func streamStacks(dump string) []string {
	var out []string
	for _, g := range strings.Split(dump, "\n\n") {
		if strings.Contains(g, "internal/cri.(*streamRuntime)") || strings.Contains(g, "internal/cri.(*sessionConn)") ||
			strings.Contains(g, "cri-streaming/") || strings.Contains(g, "moby/spdystream") || strings.Contains(g, "k8s.io/streaming/") {
			out = append(out, g)
		}
	}
	return out
}

// procsWithArgs lists the host's processes whose command line is args.
func procsWithArgs(args ...string) []string {
	want := strings.Join(args, "\x00") + "\x00"
	ents, _ := os.ReadDir("/proc")
	var pids []string
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && string(b) == want {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

var forwardingFrom = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 8080`)

// crictlForward runs crictl port-forward of the pod's port 8080 to a
// local one, calls use with a GET through it (the body, or an error
// naming the status), then interrupts it and waits for it to end.
func crictlForward(t *testing.T, sock, podID string, use func(get func(path string) (string, error))) {
	t.Helper()
	cmd := crictlCmd(t, sock, "port-forward", podID, ":8080")
	stdout, _ := cmd.StdoutPipe()
	errOut := &lockedBuffer{}
	cmd.Stderr = errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	port := ""
	for port == "" && lines.Scan() {
		if m := forwardingFrom.FindStringSubmatch(lines.Text()); m != nil {
			port = m[1]
		}
	}
	if port == "" {
		t.Fatalf("crictl port-forward said no local port: %s", errOut)
	}
	go io.Copy(io.Discard, stdout)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	use(func(path string) (string, error) {
		resp, err := client.Get("http://127.0.0.1:" + port + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return string(b), fmt.Errorf("%s", resp.Status)
		}
		return string(b), nil
	})
	cmd.Process.Signal(syscall.SIGINT)
	exitWithin(t, cmd, 30*time.Second, "crictl port-forward")
}

// TestCRIStreaming: crictl's exec (plain, with stdin, on a terminal with
// resizes), attach and port-forward against berth serve over SPDY, and
// the same over WebSocket (the kubelet's v4 channel protocol, from a
// client here: crictl's WebSocket speaks v5 and SPDY tunnelling, which
// the API server, not a runtime, serves): output, exit codes, the
// terminal's size, a pod's own network namespace; and what a client that
// goes, or a serve that stops, leaves: no process in the container, no
// file, goroutine or child in serve.
func TestCRIStreaming(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	crictlPath(t)
	srv := e.serveAPI("--cri-socket")
	sock := srv.sock
	podID, ids := criPod(t, sock, "streams",
		map[string]any{"command": []string{"sh", "-c", "mkdir -p /www && echo served-from-the-pod > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"}})
	web := ids[0]
	rt, _ := criClient(t, sock)

	exitCode := func(err error) int {
		if err == nil {
			return 0
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		t.Fatalf("crictl: %v", err)
		return -1
	}
	execs := func() {
		t.Helper()
		out, errOut, err := crictl(t, sock, "exec", web, "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
		if out != "to-stdout\n" || !strings.Contains(errOut, "to-stderr\n") || !strings.Contains(errOut, "command terminated with exit code 3") || exitCode(err) != 1 {
			t.Errorf("crictl exec exiting 3: %v, stdout %q, stderr %q", err, out, errOut)
		}
		out, errOut, err = crictl(t, sock, "exec", web, "no-such-command")
		if out != "" || !strings.Contains(errOut, "executable file not found") || !strings.Contains(errOut, "exit code 127") || exitCode(err) != 1 {
			t.Errorf("crictl exec of a missing command: %v, stdout %q, stderr %q", err, out, errOut)
		}
		cmd := crictlCmd(t, sock, "exec", "-i", web, "sh", "-c", "cat; echo end-of-input")
		cmd.Stdin = strings.NewReader("line one\nline two\n")
		b, err := cmd.Output()
		if string(b) != "line one\nline two\nend-of-input\n" || err != nil {
			t.Errorf("crictl exec -i: %v, %q", err, b)
		}
	}
	terminal := func() {
		t.Helper()
		m, s := openPty(t)
		defer m.Close()
		unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 31, Col: 97})
		cmd := crictlCmd(t, sock, "exec", "-it", web, "sh")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		out := &lockedBuffer{}
		go io.Copy(out, m)
		out.waitFor(t, "# ") // the shell's prompt: crictl's terminal is raw by now
		io.WriteString(m, "tty; echo size $(stty size)\n")
		out.waitFor(t, "size 31 97")
		if !strings.Contains(out.String(), "/dev/pts/") {
			t.Errorf("exec -it: the command's stdin is no terminal: %q", visible(out.String()))
		}
		// The client's terminal changes size: crictl sees SIGWINCH and
		// sends it on; the exec's terminal follows.
		unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120})
		waitFor(t, 15*time.Second, "the exec's terminal to be 40x120", func() bool {
			io.WriteString(m, "echo size $(stty size)\n")
			time.Sleep(100 * time.Millisecond)
			return strings.Contains(out.String(), "size 40 120")
		})
		io.WriteString(m, "exit 7\n")
		s.Close()
		if code := exitWithin(t, cmd, 30*time.Second, "crictl exec -it"); code != 1 {
			t.Errorf("crictl exec -it exiting 7: crictl exited %d", code)
		}
		out.waitFor(t, "command terminated with exit code 7")
	}
	forward := func() {
		t.Helper()
		crictlForward(t, sock, podID, func(get func(path string) (string, error)) {
			for range 3 {
				if b, err := get("/index.html"); err != nil {
					t.Fatalf("GET through crictl port-forward: %v", err)
				} else if b != "served-from-the-pod\n" {
					t.Errorf("GET through crictl port-forward: %q", b)
				}
			}
		})
	}
	attaches := 0
	attach := func() {
		t.Helper()
		// StdinOnce: the end of the first attach's input ends the
		// container's, and with it the shell.
		attaches++
		pod, ids := criPod(t, sock, fmt.Sprintf("attach-%d", attaches), map[string]any{"command": []string{"sh"}, "stdin": true, "stdin_once": true})
		defer crictl(t, sock, "rmp", "-f", pod)
		cmd := crictlCmd(t, sock, "attach", "-i", ids[0])
		in, _ := cmd.StdinPipe()
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		io.WriteString(in, "echo attached-$((6*7))\n")
		out.waitFor(t, "attached-42\n")
		in.Close()
		if code := exitWithin(t, cmd, 30*time.Second, "crictl attach"); code != 0 {
			t.Errorf("crictl attach: exit %d: %q", code, out.String())
		}
		waitFor(t, 15*time.Second, "the attached container to exit", func() bool {
			o, _, _ := crictl(t, sock, "inspect", "-o", "go-template", "--template", "{{.status.state}}", ids[0])
			return strings.TrimSpace(o) == "CONTAINER_EXITED"
		})
	}
	// Clients that go in the middle of a session: an exec that runs on
	// quietly, on a terminal and not, and a port-forward with an open
	// connection.
	goAway := func() {
		t.Helper()
		for _, args := range [][]string{{"exec", web, "sleep", "98765"}, {"exec", "-i", web, "sleep", "98765"}} {
			cmd := crictlCmd(t, sock, args...)
			cmd.Stdin = strings.NewReader("")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 15*time.Second, "the exec's sleep", func() bool { return len(procsWithArgs("sleep", "98765")) > 0 })
			cmd.Process.Kill()
			cmd.Wait()
			waitFor(t, 15*time.Second, "the exec's sleep to end with its client", func() bool { return len(procsWithArgs("sleep", "98765")) == 0 })
		}
		m, s := openPty(t)
		defer m.Close()
		cmd := crictlCmd(t, sock, "exec", "-it", web, "sleep", "98765")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		s.Close()
		go io.Copy(io.Discard, m)
		waitFor(t, 15*time.Second, "the exec's sleep on a terminal", func() bool { return len(procsWithArgs("sleep", "98765")) > 0 })
		cmd.Process.Kill()
		cmd.Wait()
		waitFor(t, 15*time.Second, "the terminal exec's sleep to end with its client", func() bool { return len(procsWithArgs("sleep", "98765")) == 0 })
	}

	round := func() {
		execs()
		terminal()
		forward()
		attach()
		wsSessions(t, rt, sock, web, podID)
		goAway()
	}
	settled := func(base *serveUse) serveUse {
		t.Helper()
		var u serveUse
		var stacks []string
		deadline := time.Now().Add(60 * time.Second)
		for {
			u = measureServe(t, srv)
			stacks = streamStacks(stackDump(t, srv))
			if len(stacks) == 0 && (base == nil || u.fds <= base.fds && u.goroutines <= base.goroutines && u.children <= base.children) {
				return u
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if base != nil {
			t.Errorf("berth serve holds %d files (%d before), %d goroutines (%d before), %d children (%d before)",
				u.fds, base.fds, u.goroutines, base.goroutines, u.children, base.children)
			t.Logf("its files now:\n%s\nbefore:\n%s", strings.Join(u.fdNames, "\n"), strings.Join(base.fdNames, "\n"))
		}
		for _, g := range stacks {
			t.Errorf("a goroutine of a streaming session is left:\n%s", g)
		}
		t.FailNow()
		return u
	}
	// One round first: what serve sets up once (its store connections,
	// the library's caches) is no leak.
	round()
	base := settled(nil)
	for range 2 {
		round()
	}
	settled(&base)
	// Nothing of the sessions runs on in the container: its processes
	// are the server, this ps and the pod's reaper (when the pod has
	// its own PID namespace).
	out, errOut, err := crictl(t, sock, "exec", web, "ps", "-o", "args")
	if err != nil || !strings.Contains(out, "httpd") {
		t.Errorf("the container's processes after the sessions: %v %q %q", err, out, errOut)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		if !strings.HasPrefix(l, "httpd ") && l != "ps -o args" && !strings.Contains(l, "pod-reaper") {
			t.Errorf("a process of a session is left in the container: %q", l)
		}
	}

	// Sessions that ended, normally or with their client's going, are
	// no error in serve's log.
	if b, err := os.ReadFile(srv.log); err != nil {
		t.Fatal(err)
	} else {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "level=ERROR") {
				t.Errorf("serve logged an error: %s", l)
			}
		}
	}

	// What crictl does not show: the codes of calls that cannot have a
	// session.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "no-such-container", Cmd: []string{"true"}, Stdout: true}); status.Code(err) != codes.NotFound {
		t.Errorf("Exec in a missing container: %v, want NotFound", err)
	}
	if _, err := rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: web, Stdout: true}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Exec without a command: %v, want InvalidArgument", err)
	}
	if _, err := rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: web, Cmd: []string{"true"}, Tty: true, Stderr: true}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Exec with a tty and stderr: %v, want InvalidArgument", err)
	}
	if _, err := rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "no-such-pod"}); status.Code(err) != codes.NotFound {
		t.Errorf("PortForward to a missing pod: %v, want NotFound", err)
	}
	if r, err := rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: web, Cmd: []string{"true"}, Stdout: true}); err != nil || !strings.HasPrefix(r.GetUrl(), "http://127.0.0.1:") {
		t.Errorf("Exec: %v %v, want a URL on loopback", r, err)
	} else if resp, err := http.Get(r.GetUrl()); err != nil {
		t.Errorf("GET %s: %v", r.GetUrl(), err)
	} else {
		// Not an upgrade: refused, and the token is spent.
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("a plain GET of an exec URL: %s", resp.Status)
		}
		if resp, err := http.Get(r.GetUrl()); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("a second GET of an exec URL: %s, want 404 (single use)", resp.Status)
			}
		}
	}
	if _, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ids[0], Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: web, Cmd: []string{"true"}, Stdout: true}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Exec in a stopped container: %v, want FailedPrecondition", err)
	}
}

// A serve that stops ends its sessions: the exec's process is killed and
// the client hears a failure; serve exits in time, with status 0 and no
// socket left (serveWith's cleanup checks those).
func TestCRIStreamingServeStops(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	crictlPath(t)
	srv := e.serveAPI("--cri-socket")
	_, ids := criPod(t, srv.sock, "stops", map[string]any{"command": []string{"sleep", "987654"}})
	cmd := crictlCmd(t, srv.sock, "exec", ids[0], "sleep", "98766")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, 15*time.Second, "the exec's sleep", func() bool { return len(procsWithArgs("sleep", "98766")) > 0 })
	if err := syscall.Kill(srv.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitWithin(t, cmd, 30*time.Second, "crictl exec while serve stops"); code == 0 {
		t.Error("crictl exec ended with 0 when serve stopped under it")
	}
	waitFor(t, 15*time.Second, "the exec's sleep to end with serve", func() bool { return len(procsWithArgs("sleep", "98766")) == 0 })
	// serve exits by itself (a zombie until the harness reaps it, which
	// checks its status).
	waitFor(t, 30*time.Second, "serve to exit", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", srv.pid))
		if err != nil {
			return true
		}
		_, rest, _ := strings.Cut(string(b), ") ")
		return strings.HasPrefix(rest, "Z")
	})
	// The container itself runs on: serve holds none.
	if len(procsWithArgs("sleep", "987654")) == 0 {
		t.Error("the container's own process ended with serve")
	}
}

// wsSession is a client of one streaming session over WebSocket with the
// kubelet's v4 channel protocol: each message is a channel's number and
// its bytes.
type wsSession struct {
	ws   *websocket.Conn
	ch   map[byte]*lockedBuffer
	done chan struct{}
}

func wsDial(t *testing.T, url string) *wsSession {
	t.Helper()
	cfg, err := websocket.NewConfig(strings.Replace(url, "http://", "ws://", 1), "http://127.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Protocol = []string{"v4.channel.k8s.io"}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatalf("WebSocket %s: %v", url, err)
	}
	s := &wsSession{ws: ws, ch: map[byte]*lockedBuffer{}, done: make(chan struct{})}
	for i := range byte(5) {
		s.ch[i] = &lockedBuffer{}
	}
	go func() {
		defer close(s.done)
		for {
			var b []byte
			if websocket.Message.Receive(ws, &b) != nil {
				return
			}
			if len(b) > 0 && s.ch[b[0]] != nil {
				s.ch[b[0]].Write(b[1:])
			}
		}
	}()
	t.Cleanup(func() { ws.Close() })
	return s
}

func (s *wsSession) send(t *testing.T, channel byte, data string) {
	t.Helper()
	if err := websocket.Message.Send(s.ws, append([]byte{channel}, data...)); err != nil {
		t.Fatalf("WebSocket send on channel %d: %v", channel, err)
	}
}

// end waits for the server to end the session and returns its status
// (the error channel's JSON).
func (s *wsSession) end(t *testing.T) (status string, code string) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the WebSocket session did not end; stdout %q", s.ch[1].String())
	}
	var st struct {
		Status  string
		Reason  string
		Details struct {
			Causes []struct{ Reason, Message string }
		}
	}
	json.Unmarshal([]byte(s.ch[3].String()), &st)
	for _, c := range st.Details.Causes {
		if c.Reason == "ExitCode" {
			code = c.Message
		}
	}
	return st.Status, code
}

// wsSessions: exec (with and without a terminal), attach and
// port-forward over WebSocket.
func wsSessions(t *testing.T, rt runtimeapi.RuntimeServiceClient, sock, web, podID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: web, Cmd: []string{"sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"}, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	s := wsDial(t, r.GetUrl())
	if st, code := s.end(t); st != "Failure" || code != "3" || s.ch[1].String() != "to-stdout\n" || s.ch[2].String() != "to-stderr\n" {
		t.Errorf("WebSocket exec exiting 3: status %q code %q, stdout %q, stderr %q", st, code, s.ch[1], s.ch[2])
	}

	r, err = rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: web, Cmd: []string{"sh"}, Tty: true, Stdin: true, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	s = wsDial(t, r.GetUrl())
	s.send(t, 4, `{"Width":91,"Height":21}`)
	s.ch[1].waitFor(t, "# ")
	waitFor(t, 15*time.Second, "the WebSocket exec's terminal to be 21x91", func() bool {
		s.send(t, 0, "echo size $(stty size)\n")
		time.Sleep(100 * time.Millisecond)
		return strings.Contains(s.ch[1].String(), "size 21 91")
	})
	s.send(t, 0, "exit 5\n")
	if st, code := s.end(t); st != "Failure" || code != "5" {
		t.Errorf("WebSocket exec -it exiting 5: status %q code %q, stdout %q", st, code, s.ch[1])
	}

	// Attach: the shell reads what comes on stdin and ends the session
	// with its exit (0: Success).
	pod, ids := criPod(t, sock, fmt.Sprintf("ws-attach-%d", time.Now().UnixNano()), map[string]any{"command": []string{"sh"}, "stdin": true})
	defer crictl(t, sock, "rmp", "-f", pod)
	ar, err := rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: ids[0], Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	s = wsDial(t, ar.GetUrl())
	s.send(t, 0, "echo attached-over-ws; echo to-stderr >&2; exit 0\n")
	if st, _ := s.end(t); st != "Success" || s.ch[1].String() != "attached-over-ws\n" || s.ch[2].String() != "to-stderr\n" {
		t.Errorf("WebSocket attach: status %q, stdout %q, stderr %q", st, s.ch[1], s.ch[2])
	}

	// Port-forward: data on channel 0, errors on 1, each opened by the
	// port's number (2 bytes, little-endian).
	pr, err := rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: podID, Port: []int32{8080}})
	if err != nil {
		t.Fatal(err)
	}
	s = wsDial(t, pr.GetUrl())
	s.send(t, 0, "GET /index.html HTTP/1.0\r\n\r\n")
	s.ch[0].waitFor(t, "served-from-the-pod\n")
	if got := s.ch[0].String(); !strings.HasPrefix(got, "\x90\x1fHTTP/1.") {
		t.Errorf("WebSocket port-forward: %q, want the port (8080) and then the response", got)
	}
	s.ws.Close()
	<-s.done
}
