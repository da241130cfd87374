package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/runtime"
)

// execSocket is the shim's socket for exec (SOCK_SEQPACKET, in the VM's
// 0700 directory): a berth process sends one request, an OCI process
// with its stdin, stdout and stderr as SCM_RIGHTS, and reads "P" (or "E
// message") and later "X code". The shim writes the process's output
// straight into the passed files.
const execSocket = "exec.sock"

// maxExecRequest bounds one exec request.
const maxExecRequest = 256 << 10

type execRequest struct {
	Process *specs.Process `json:"process,omitempty"`
	Stdin   bool           `json:"stdin,omitempty"`
	// Op, when set, asks a question of the agent instead (opStats,
	// opTop with PsArgs): no stdio comes with it; the answer is "J "
	// and the reply's JSON (or "E message"), in as many messages as it
	// takes, then the end of the stream.
	Op     string   `json:"op,omitempty"`
	PsArgs []string `json:"psArgs,omitempty"`
	// Files: Process.Args are the file helper's (runtime.GuestFiles).
	Files bool `json:"files,omitempty"`
}

// Questions the exec socket answers.
const (
	opStats = "stats"
	opTop   = "top"
)

// execClient is one exec'd process's berth caller.
type execClient struct {
	conn                  *net.UnixConn
	stdin, stdout, stderr *os.File
	// started is closed once the caller was told the process runs: its
	// exit is told after that.
	started chan struct{}
}

func (s *shim) listenExec() error {
	os.Remove(execSocket)
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: execSocket, Net: "unixpacket"})
	if err != nil {
		return err
	}
	s.execs = map[string]*execClient{}
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			go s.serveExec(c)
		}
	}()
	return nil
}

func (s *shim) serveExec(c *net.UnixConn) {
	buf := make([]byte, maxExecRequest)
	oob := make([]byte, unix.CmsgSpace(3*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		c.Close()
		return
	}
	var files []*os.File
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if fds, err := unix.ParseUnixRights(&m); err == nil {
				for i, fd := range fds {
					if i == 0 && len(files) == 0 {
						files = append(files, pollableStdin(fd))
						continue
					}
					files = append(files, os.NewFile(uintptr(fd), "exec-stdio"))
				}
			}
		}
	}
	fail := func(msg string) {
		c.Write([]byte(ctlError + " " + msg))
		c.Close()
		for _, f := range files {
			f.Close()
		}
	}
	var req execRequest
	if err := json.Unmarshal(buf[:n], &req); err == nil && req.Op != "" {
		for _, f := range files {
			f.Close()
		}
		s.answer(c, &req)
		return
	}
	if len(files) != 3 {
		fail("exec: want stdin, stdout and stderr")
		return
	}
	if err := json.Unmarshal(buf[:n], &req); err != nil || req.Process == nil || len(req.Process.Args) == 0 {
		fail("exec: malformed request")
		return
	}
	oci, err := json.Marshal(req.Process)
	if err != nil {
		fail(err.Error())
		return
	}
	s.execMu.Lock()
	s.execSeq++
	name := "exec-" + strconv.Itoa(s.execSeq)
	ec := &execClient{conn: c, stdin: files[0], stdout: files[1], stderr: files[2], started: make(chan struct{})}
	s.execs[name] = ec
	s.execMu.Unlock()
	p := req.Process
	if p.Terminal {
		// The caller's pty slave: bytes only, the guest's pty does the
		// line discipline.
		term.MakeRaw(int(ec.stdin.Fd()))
	}
	err = s.request(&agent.Frame{Type: agent.TypeExec, Proc: name, Exec: &agent.Process{
		Args: p.Args, Env: p.Env, Cwd: p.Cwd, UID: p.User.UID, GID: p.User.GID, Groups: p.User.AdditionalGids,
		Stdin: req.Stdin || p.Terminal, Terminal: p.Terminal, OCIProcess: oci, Files: req.Files,
	}})
	if err != nil {
		s.execMu.Lock()
		delete(s.execs, name)
		s.execMu.Unlock()
		fail(err.Error())
		return
	}
	c.Write([]byte(ctlStarted))
	close(ec.started)
	go s.execSignals(name, c)
	if req.Stdin || p.Terminal {
		go s.copyExecStdin(name, ec.stdin)
	}
	if p.Terminal {
		go s.followSize(name, ec)
	}
}

// ctlSignal, from an exec's caller on its connection: "K n", signal n
// to the process.
const ctlSignal = "K"

// execSignals passes on the signals an exec's caller sends for it,
// until its connection closes (at its exit, execExit closes it).
func (s *shim) execSignals(name string, c *net.UnixConn) {
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if err != nil || n == 0 {
			return
		}
		num, ok := strings.CutPrefix(string(buf[:n]), ctlSignal+" ")
		sig, err := strconv.Atoi(num)
		if !ok || err != nil || sig <= 0 || sig > 64 {
			log.Printf("%s: a bad signal request %q", name, buf[:n])
			continue
		}
		if err := s.request(&agent.Frame{Type: agent.TypeSignal, Proc: name, Signal: sig}); err != nil {
			log.Printf("%s: signal %d: %v", name, sig, err)
		}
	}
}

// pollableStdin turns an exec's stdin fd into a file in Go's poller, so
// that closing it at the exit wakes the read copying it and the file
// goes (a blocked read kept an exec -t's pty slave open, and its caller
// never saw the end). Reopened, not made non-blocking in place: the fd
// shares its open file description with the caller (a user's terminal
// for exec -i), which must not turn non-blocking. What cannot be
// reopened (a socket) stays as it is.
func pollableStdin(fd int) *os.File {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
		// A file's reads never block; reopened it would lose the
		// offset the caller shares.
		return os.NewFile(uintptr(fd), "exec-stdin")
	}
	f, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", fd), os.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return os.NewFile(uintptr(fd), "exec-stdin")
	}
	unix.Close(fd)
	return f
}

// answer asks the agent an exec socket's question and sends the reply.
func (s *shim) answer(c *net.UnixConn, req *execRequest) {
	defer c.Close()
	var f *agent.Frame
	switch req.Op {
	case opStats:
		f = &agent.Frame{Type: agent.TypeStats}
	case opTop:
		f = &agent.Frame{Type: agent.TypeTop, PsArgs: req.PsArgs}
	default:
		c.Write([]byte(ctlError + " unknown question " + strconv.Quote(req.Op)))
		return
	}
	r, err := s.call(f)
	if err != nil {
		c.Write([]byte(ctlError + " " + err.Error()))
		return
	}
	var out any = r.Stats
	if req.Op == opTop {
		out = r.Top
	}
	b, err := json.Marshal(out)
	if err != nil {
		c.Write([]byte(ctlError + " " + err.Error()))
		return
	}
	b = append([]byte(ctlAnswer+" "), b...)
	for len(b) > 0 {
		n := min(len(b), answerChunk)
		if _, err := c.Write(b[:n]); err != nil {
			return
		}
		b = b[n:]
	}
}

// ctlAnswer starts an answer on the exec socket; answerChunk bounds
// one of its messages (a SOCK_SEQPACKET message must fit the socket's
// buffer).
const (
	ctlAnswer   = "J"
	answerChunk = 64 << 10
)

// followSize gives an exec'd process's guest pty the size of the
// caller's, now and whenever it changes (polled: the caller's pty is not
// the shim's controlling terminal, so no SIGWINCH comes), until it exits.
func (s *shim) followSize(name string, ec *execClient) {
	var last agent.WinSize
	start := time.Now()
	for {
		s.execMu.Lock()
		_, running := s.execs[name]
		s.execMu.Unlock()
		if !running {
			return
		}
		if cols, rows, err := term.GetSize(int(ec.stdin.Fd())); err == nil && rows > 0 && cols > 0 {
			if sz := (agent.WinSize{Rows: uint16(rows), Cols: uint16(cols)}); sz != last {
				if s.request(&agent.Frame{Type: agent.TypeResize, Proc: name, Size: &sz}) == nil {
					last = sz
				}
			}
		}
		// Often at first: the caller sizes its pty just after the exec
		// started, and a shell asks at once.
		if time.Since(start) < 2*time.Second {
			time.Sleep(20 * time.Millisecond)
		} else {
			time.Sleep(250 * time.Millisecond)
		}
	}
}

func (s *shim) copyExecStdin(name string, in *os.File) {
	buf := make([]byte, agent.ChunkSize)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if s.request(&agent.Frame{Type: agent.TypeStdin, Proc: name, Data: append([]byte(nil), buf[:n]...)}) != nil {
				return
			}
		}
		if err != nil {
			s.request(&agent.Frame{Type: agent.TypeCloseStdin, Proc: name})
			return
		}
	}
}

func (s *shim) execOutput(f *agent.Frame) {
	s.execMu.Lock()
	ec := s.execs[f.Proc]
	s.execMu.Unlock()
	if ec == nil {
		return
	}
	out := ec.stdout
	if f.Stream == 2 {
		out = ec.stderr
	}
	out.Write(f.Data)
}

func (s *shim) execExit(f *agent.Frame) {
	s.execMu.Lock()
	ec := s.execs[f.Proc]
	delete(s.execs, f.Proc)
	s.execMu.Unlock()
	if ec == nil || f.Exit == nil {
		return
	}
	code := *f.Exit
	// Off the reading loop: the exit may come before serveExec, on the
	// reply it got, told the caller the process started.
	go func() {
		select {
		case <-ec.started:
		case <-s.gone:
			// serveExec saw the VM go (its answer lost): nothing
			// waits for this exit.
		}
		ec.conn.Write([]byte("X " + strconv.Itoa(code)))
		ec.conn.Close()
		ec.stdin.Close()
		ec.stdout.Close()
		ec.stderr.Close()
		log.Printf("%s exited %d", f.Proc, code)
	}()
}

// dialShim connects to the VM's exec socket, through the directory's fd:
// the socket's full path may not fit in sun_path.
func (c *container) dialShim() (*net.UnixConn, error) {
	conn, err := dialIn("unixpacket", c.dir, execSocket)
	if err != nil {
		return nil, fmt.Errorf("container %s: the VM's exec socket: %w", c.id, err)
	}
	return conn, nil
}

// maxAnswer bounds an answer to a question (a top of many processes).
const maxAnswer = 16 << 20

// ask asks the running VM's agent a question through its shim and
// decodes the answer into out.
func (c *container) ask(ctx context.Context, req execRequest, out any) error {
	conn, err := c.dialShim()
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := conn.Write(b); err != nil {
		return fmt.Errorf("container %s: %s: %w", c.id, req.Op, err)
	}
	var answer []byte
	buf := make([]byte, answerChunk)
	for {
		n, err := conn.Read(buf)
		if n == 0 || err != nil {
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("container %s: %s: %w", c.id, req.Op, err)
			}
			break
		}
		if answer = append(answer, buf[:n]...); len(answer) > maxAnswer {
			return fmt.Errorf("container %s: %s: an answer over %d bytes", c.id, req.Op, maxAnswer)
		}
	}
	s := string(answer)
	if msg, ok := strings.CutPrefix(s, ctlError+" "); ok {
		return fmt.Errorf("container %s: %s: %s", c.id, req.Op, msg)
	}
	js, ok := strings.CutPrefix(s, ctlAnswer+" ")
	if !ok {
		return fmt.Errorf("container %s: %s: the VM's shim gave no answer (%q)", c.id, req.Op, s)
	}
	return json.Unmarshal([]byte(js), out)
}

// Exec starts a process in the running VM's container, through its shim.
func (c *container) Exec(ctx context.Context, o runtime.ExecOptions) (runtime.Process, error) {
	if o.Process == nil || len(o.Process.Args) == 0 {
		return nil, fmt.Errorf("exec: no process: %w", runtime.ErrInvalidArgument)
	}
	if c.Status() != runtime.StatusRunning {
		return nil, fmt.Errorf("container %s: %w", c.id, runtime.ErrInvalidStatus)
	}
	conn, err := c.dialShim()
	if err != nil {
		return nil, err
	}
	req, err := json.Marshal(execRequest{Process: o.Process, Stdin: o.Stdio.Stdin != nil && !isDevNull(o.Stdio.Stdin)})
	if err != nil {
		conn.Close()
		return nil, err
	}
	stdio := []*os.File{o.Stdio.Stdin, o.Stdio.Stdout, o.Stdio.Stderr}
	var master *os.File
	if o.Process.Terminal {
		m, slave, err := openPty()
		if err != nil {
			conn.Close()
			return nil, err
		}
		defer slave.Close()
		master = m
		stdio = []*os.File{slave, slave, slave}
	}
	fail := func(err error) (runtime.Process, error) {
		conn.Close()
		if master != nil {
			master.Close()
		}
		return nil, err
	}
	var fds []int
	for _, f := range stdio {
		if f == nil {
			return fail(fmt.Errorf("exec: stdio required: %w", runtime.ErrInvalidArgument))
		}
		fds = append(fds, int(f.Fd()))
	}
	if _, _, err := conn.WriteMsgUnix(req, unix.UnixRights(fds...), nil); err != nil {
		return fail(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		return fail(fmt.Errorf("container %s: exec: %w", c.id, err))
	}
	reply := string(buf[:n])
	if msg, ok := strings.CutPrefix(reply, ctlError+" "); ok {
		return fail(fmt.Errorf("%s", msg))
	}
	if reply != ctlStarted {
		return fail(fmt.Errorf("container %s: exec: unexpected reply %q", c.id, reply))
	}
	return &vmProcess{conn: conn, console: master}, nil
}

// filesOnly reports whether the VM was booted for its files alone and
// serves the file helper.
func (c *container) filesOnly() bool {
	_, err := os.Stat(filepath.Join(c.dir, filesOnlyFile))
	return err == nil
}

// GuestFiles runs the berth binary's file helper in the guest (the
// container's half of cp and export: runtime.GuestFiles), through the
// shim's exec socket as an exec'd process is, with pipes for its stdio.
func (c *container) GuestFiles(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) (int, string, error) {
	if len(args) == 0 {
		return 0, "", fmt.Errorf("the file helper: no operation: %w", runtime.ErrInvalidArgument)
	}
	switch st := c.Status(); {
	case st == runtime.StatusRunning:
	case st == runtime.StatusPaused:
		return 0, "", fmt.Errorf("container %s: its VM is paused (its files are reached through its agent): unpause it first: %w", c.id, runtime.ErrInvalidStatus)
	case st == runtime.StatusCreated && c.filesOnly():
		// Booted for its files (runtime.CreateOptions.FilesOnly).
	default:
		return 0, "", fmt.Errorf("container %s is not running: %w", c.id, runtime.ErrInvalidStatus)
	}
	var ours, theirs []*os.File
	defer func() { closeAll(ours); closeAll(theirs) }()
	for i := 0; i < 3; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			return 0, "", err
		}
		if i == 0 {
			ours, theirs = append(ours, w), append(theirs, r)
		} else {
			ours, theirs = append(ours, r), append(theirs, w)
		}
	}
	conn, err := c.dialShim()
	if err != nil {
		return 0, "", err
	}
	req, err := json.Marshal(execRequest{Process: &specs.Process{Args: args, Cwd: "/"}, Stdin: stdin != nil, Files: true})
	if err != nil {
		conn.Close()
		return 0, "", err
	}
	fds := []int{int(theirs[0].Fd()), int(theirs[1].Fd()), int(theirs[2].Fd())}
	if _, _, err := conn.WriteMsgUnix(req, unix.UnixRights(fds...), nil); err != nil {
		conn.Close()
		return 0, "", err
	}
	closeAll(theirs)
	theirs = nil
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != ctlStarted {
		conn.Close()
		msg, _ := strings.CutPrefix(string(buf[:max(n, 0)]), ctlError+" ")
		return 0, "", fmt.Errorf("container %s: the file helper: %s (%v)", c.id, msg, err)
	}
	p := &vmProcess{conn: conn}
	go func() {
		if stdin != nil {
			io.Copy(ours[0], stdin)
		}
		ours[0].Close()
	}()
	var stderr strings.Builder
	errDone := make(chan struct{})
	go func() { io.Copy(&stderr, io.LimitReader(ours[2], 64<<10)); close(errDone) }()
	_, cerr := io.Copy(stdout, ours[1])
	if cerr != nil {
		// The reader gave up (a failed extraction): the helper ends
		// on a broken pipe.
		ours[1].Close()
	}
	code, err := p.Wait()
	<-errDone
	if err != nil {
		return 0, "", err
	}
	return code, stderr.String(), cerr
}

// vmProcess is an exec'd process in a VM.
type vmProcess struct {
	conn    *net.UnixConn
	console *os.File // the host pty master of exec -t (the caller's)
}

func (p *vmProcess) Pid() int          { return 0 }
func (p *vmProcess) Console() *os.File { return p.console }

// Signal asks the shim to signal the process in the guest ("K n" on
// its exec connection).
func (p *vmProcess) Signal(sig syscall.Signal) error {
	_, err := p.conn.Write([]byte(ctlSignal + " " + strconv.Itoa(int(sig))))
	return err
}

// Wait returns the exit code the shim reports.
func (p *vmProcess) Wait() (int, error) {
	defer p.conn.Close()
	buf := make([]byte, 64)
	n, err := p.conn.Read(buf)
	if err != nil {
		return -1, fmt.Errorf("exec: the VM went away: %w", err)
	}
	code, err := strconv.Atoi(strings.TrimPrefix(string(buf[:n]), "X "))
	if err != nil {
		return -1, fmt.Errorf("exec: unexpected report %q", buf[:n])
	}
	return code, nil
}
