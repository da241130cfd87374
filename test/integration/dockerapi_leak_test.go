package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rawConn is a hand-written HTTP exchange on the docker socket: the
// request goes out, the response's head is read, and the connection is
// left to the test to read from and close as a client that goes would.
type rawConn struct {
	net.Conn
	what string
	r    *bufio.Reader
	resp *http.Response
}

func rawRequest(t *testing.T, sock, method, path, body string, upgrade bool) *rawConn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var req strings.Builder
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: docker\r\n", method, path)
	if upgrade {
		req.WriteString("Connection: Upgrade\r\nUpgrade: tcp\r\n")
	}
	if body != "" {
		fmt.Fprintf(&req, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n" + body)
	if _, err := io.WriteString(c, req.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		t.Fatalf("%s %s: %v", method, path, err)
	}
	want := http.StatusOK
	if upgrade {
		want = http.StatusSwitchingProtocols
	}
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		c.Close()
		t.Fatalf("%s %s: %s %s, want %d", method, path, resp.Status, b, want)
	}
	return &rawConn{Conn: c, what: method + " " + path, r: br, resp: resp}
}

// readUntil reads the stream (after an upgrade, the connection; else the
// response's body) until it holds want.
func (c *rawConn) readUntil(t *testing.T, want string) {
	t.Helper()
	var src io.Reader = c.r
	if c.resp.StatusCode != http.StatusSwitchingProtocols {
		src = c.resp.Body
	}
	var seen []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(seen), want) {
		n, err := src.Read(buf)
		seen = append(seen, buf[:n]...)
		if err != nil {
			t.Fatalf("%s: reading the stream for %q: %v (got %q)", c.what, want, err, seen)
		}
	}
}

// serveUse is what a berth serve holds: open files, goroutines (from
// the stack dump it writes on SIGUSR1), child processes.
type serveUse struct {
	fds, goroutines, children int
	fdNames                   []string
	apiStacks                 []string // goroutines in or started by internal/dockerapi
}

var goroutineHead = regexp.MustCompile(`(?m)^goroutine \d+ \[`)

func measureServe(t *testing.T, srv served) serveUse {
	t.Helper()
	var u serveUse
	fdDir := fmt.Sprintf("/proc/%d/fd", srv.pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		target, _ := os.Readlink(filepath.Join(fdDir, ent.Name()))
		u.fdNames = append(u.fdNames, ent.Name()+" -> "+target)
	}
	u.fds = len(ents)
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", srv.pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		u.children += len(strings.Fields(string(b)))
	}
	dump := stackDump(t, srv)
	u.goroutines = len(goroutineHead.FindAllStringIndex(dump, -1))
	for _, g := range strings.Split(dump, "\n\n") {
		if strings.Contains(g, "internal/dockerapi.") {
			u.apiStacks = append(u.apiStacks, g)
		}
	}
	return u
}

// stackDump asks serve for its goroutines' stacks and returns the dump.
func stackDump(t *testing.T, srv served) string {
	t.Helper()
	const begin, end = "=== BEGIN goroutine stack dump ===\n", "=== END goroutine stack dump ==="
	count := func() (int, string) {
		b, _ := os.ReadFile(srv.log)
		return strings.Count(string(b), end), string(b)
	}
	before, _ := count()
	if err := syscall.Kill(srv.pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	var log string
	waitFor(t, 30*time.Second, "the stack dump in serve's log", func() bool {
		var n int
		n, log = count()
		return n > before
	})
	last := log[:strings.LastIndex(log, end)]
	return last[strings.LastIndex(last, begin)+len(begin):]
}

// A client that goes in the middle of a stream leaves nothing behind in
// berth serve: not a goroutine, an open file or a process, whether the
// container talks or keeps quiet, whether the attach was held for a
// start, and whatever the stream (attach, exec, logs, events).
func TestDockerAPIClientGoesAway(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	srv := e.serveDockerProcess()
	client, call := dockerAPI(t, srv.sock)
	defer client.CloseIdleConnections()
	// Started by the CLI: their monitors are not serve's children.
	e.run("run", "-d", "-i", "--name", "talker", demoImage, "sh", "-c", "while :; do echo tick; sleep 0.1; done")
	e.run("run", "-d", "-i", "--name", "quiet", demoImage, "sleep", "100000")
	e.run("create", "-i", "--name", "idle", demoImage, "echo", "started at last")

	execStart := func(cfg string) (string, *rawConn) {
		t.Helper()
		var created struct{ ID string }
		if err := json.Unmarshal(call("POST", "/containers/talker/exec", cfg, http.StatusCreated), &created); err != nil {
			t.Fatal(err)
		}
		return created.ID, rawRequest(t, srv.sock, "POST", "/exec/"+created.ID+"/start", `{"Detach":false}`, true)
	}
	var execIDs, started []string
	round := func() {
		t.Helper()
		// Attached before its start, which the API makes with this
		// attach's streams; the client goes while it runs.
		name := fmt.Sprintf("starter%d", len(started))
		e.run("create", "--name", name, demoImage, "sh", "-c", "while :; do echo started-tick; sleep 0.1; done")
		started = append(started, name)
		c := rawRequest(t, srv.sock, "POST", "/containers/"+name+"/attach?stream=1&stdout=1&stderr=1", "", true)
		call("POST", "/containers/"+name+"/start", "", http.StatusNoContent)
		c.readUntil(t, "started-tick")
		c.Close()
		// Attach mid-stream, stdin too, and go.
		c = rawRequest(t, srv.sock, "POST", "/v1.47/containers/talker/attach?stream=1&stdin=1&stdout=1&stderr=1", "", true)
		c.readUntil(t, "tick")
		c.Close()
		// A half-close (docker's CLI, its stdin at an end) keeps the
		// output coming; the close after it is the going.
		c = rawRequest(t, srv.sock, "POST", "/containers/talker/attach?stream=1&stdout=1", "", true)
		c.Conn.(*net.UnixConn).CloseWrite()
		c.readUntil(t, "tick")
		c.readUntil(t, "tick")
		c.Close()
		// A container that says nothing: only the hang-up tells.
		c = rawRequest(t, srv.sock, "POST", "/containers/quiet/attach?stream=1&stdin=1&stdout=1&stderr=1", "", true)
		c.Close()
		c = rawRequest(t, srv.sock, "POST", "/containers/quiet/attach?stream=1&stdout=1&stderr=1", "", true)
		c.Conn.(*net.UnixConn).CloseWrite()
		c.Close()
		// Held for a start that does not come.
		c = rawRequest(t, srv.sock, "POST", "/containers/idle/attach?stream=1&stdin=1&stdout=1&stderr=1", "", true)
		c.Close()
		// An exec that talks (SIGPIPE once its reader goes), and a quiet
		// one on a terminal (its hang-up).
		id, c := execStart(`{"Cmd":["sh","-c","while :; do echo exec-tick; sleep 0.1; done"],"AttachStdout":true,"AttachStderr":true}`)
		c.readUntil(t, "exec-tick")
		c.Close()
		execIDs = append(execIDs, id)
		id, c = execStart(`{"Cmd":["sleep","100000"],"Tty":true,"AttachStdin":true,"AttachStdout":true}`)
		c.Close()
		execIDs = append(execIDs, id)
		// Following logs and events.
		c = rawRequest(t, srv.sock, "GET", "/containers/talker/logs?follow=1&stdout=1&tail=1", "", false)
		c.readUntil(t, "tick")
		c.Close()
		c = rawRequest(t, srv.sock, "GET", "/events", "", false)
		c.Close()
		// A request body cut off in the middle.
		cut, err := net.Dial("unix", srv.sock)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(cut, "POST /containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"Image\":")
		cut.Close()
	}
	settled := func(base *serveUse) serveUse {
		t.Helper()
		var u serveUse
		deadline := time.Now().Add(60 * time.Second)
		for {
			u = measureServe(t, srv)
			if len(u.apiStacks) == 0 && (base == nil || u.fds <= base.fds && u.goroutines <= base.goroutines && u.children <= base.children) {
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
		for _, g := range u.apiStacks {
			t.Errorf("a goroutine of the Docker API is left:\n%s", g)
		}
		t.FailNow()
		return u
	}
	// One round first: what the server sets up once (its connections to
	// the store, the journal) is no leak. The containers serve started
	// are its monitors' parents until they end: those go before the
	// count, once the API's goroutines are seen gone while they run.
	removeStarted := func() {
		t.Helper()
		e.run(append([]string{"rm", "-f"}, started...)...)
		started = nil
	}
	round()
	settled(nil)
	removeStarted()
	base := settled(nil)
	for range 3 {
		round()
	}
	settled(nil)
	removeStarted()
	settled(&base)

	// The execs ended (a hang-up, a broken pipe), and the containers
	// were left as they were.
	for _, id := range execIDs {
		var st struct {
			Running  bool
			ExitCode *int
		}
		if err := json.Unmarshal(call("GET", "/exec/"+id+"/json", "", http.StatusOK), &st); err != nil {
			t.Fatal(err)
		}
		if st.Running || st.ExitCode == nil {
			t.Errorf("exec %s: running %v, exit code %v, want ended", id, st.Running, st.ExitCode)
		}
	}
	for _, name := range []string{"talker", "quiet"} {
		if got := strings.TrimSpace(e.run("inspect", "-f", "{{.State.Status}}", name)); got != "running" {
			t.Errorf("%s after its clients went: %s", name, got)
		}
	}
	// The attaches held for idle were let go: its start is nobody's.
	call("POST", "/containers/idle/start", "", http.StatusNoContent)
	waitFor(t, 30*time.Second, "idle's exit", func() bool {
		return strings.TrimSpace(e.run("inspect", "-f", "{{.State.Status}}", "idle")) == "exited"
	})
	if got := e.run("logs", "idle"); got != "started at last\n" {
		t.Errorf("idle's log: %q", got)
	}
}
