//go:build linux

package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/network/netns"
	"golang.org/x/sys/unix"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// streamRuntime runs the streaming server's sessions over the engine.
// Each call returns when its session is over, having ended every
// goroutine it started except those blocked reading the client's
// streams, which the library's closing of the connection ends.
type streamRuntime struct {
	e   *engine.Engine
	log *slog.Logger
	// stop ends when the streaming server stops (a port-forward's
	// context from the library never ends).
	stop context.Context
}

// pipes holds the files of a session's stdio: the process's ends go to
// it, ours are closed once the session is over.
type pipes struct {
	theirs, ours []*os.File
}

// pipe makes a pipe; toProcess: the process reads it (its stdin).
func (p *pipes) pipe(toProcess bool) (ourEnd, theirEnd *os.File, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	if toProcess {
		ourEnd, theirEnd = w, r
	} else {
		ourEnd, theirEnd = r, w
	}
	p.ours = append(p.ours, ourEnd)
	p.theirs = append(p.theirs, theirEnd)
	return ourEnd, theirEnd, nil
}

func (p *pipes) closeTheirs() {
	for _, f := range p.theirs {
		f.Close()
	}
	p.theirs = nil
}

func (p *pipes) closeAll() {
	p.closeTheirs()
	for _, f := range p.ours {
		f.Close()
	}
}

// output copies the process's output to the client; done counts the
// copies.
func output(done *sync.WaitGroup, dst io.Writer, src *os.File) {
	done.Go(func() {
		io.Copy(dst, src)
	})
}

// input copies the client's input to the process and closes w at its
// end (the process reads EOF); closeAtEnd false leaves w open (a pty
// master, which is also the output).
func input(w *os.File, src io.Reader, closeAtEnd bool) {
	go func() {
		io.Copy(w, src)
		if closeAtEnd {
			w.Close()
		}
	}()
}

// waitOutput waits for the output copies to reach the end of the
// process's output, or for ctx to end; then cuts them short (the files
// are pollable: a deadline wakes a read).
func waitOutput(ctx context.Context, copies *sync.WaitGroup, files ...*os.File) {
	copied := make(chan struct{})
	go func() {
		copies.Wait()
		close(copied)
	}()
	select {
	case <-copied:
		return
	case <-ctx.Done():
	}
	for _, f := range files {
		if f != nil {
			f.SetReadDeadline(time.Now())
		}
	}
	<-copied
}

// resizeTerminal gives the pty master f each size the client sends,
// until the channel closes. Control keeps f from being closed (and its
// number reused) during the ioctl.
func resizeTerminal(f *os.File, sizes <-chan remotecommand.TerminalSize) {
	if sizes == nil {
		return
	}
	raw, err := f.SyscallConn()
	if err != nil {
		for range sizes {
		}
		return
	}
	for size := range sizes {
		if size.Width == 0 || size.Height == 0 {
			continue
		}
		raw.Control(func(fd uintptr) {
			unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Height, Col: size.Width})
		})
	}
}

// Exec runs cmd in the container through the engine's exec, with a pty
// when tty is set, and returns at its exit once its output is out: nil
// for 0, a CodeExitError with the code otherwise (what the library
// reports as the command's exit code). A command that cannot be started
// is reported so too, with docker's codes (127 not found, 126 otherwise)
// and the reason on the client's stderr. When the session's context ends
// first (the client went, serve stops) the process is killed.
func (r *streamRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	o := engine.ExecOptions{Cmd: cmd, Tty: tty}
	var p pipes
	defer p.closeAll()
	var inW, outR, errR *os.File
	var err error
	if !tty {
		if in != nil {
			if inW, o.Stdin, err = p.pipe(true); err != nil {
				return err
			}
		}
		if out != nil {
			if outR, o.Stdout, err = p.pipe(false); err != nil {
				return err
			}
		}
		if errOut != nil {
			if errR, o.Stderr, err = p.pipe(false); err != nil {
				return err
			}
		}
	}
	proc, err := r.e.Exec(ctx, id, o)
	p.closeTheirs()
	if err != nil {
		var ee *engine.ExecError
		if !errors.As(err, &ee) {
			return err
		}
		if w := firstWriter(errOut, out); w != nil {
			fmt.Fprintln(w, ee.Msg)
		}
		return utilexec.CodeExitError{Err: err, Code: ee.Code}
	}
	var copies sync.WaitGroup
	if tty {
		if err := proc.PollableMaster(); err != nil {
			r.log.Warn("cri: exec terminal stays blocking", "container", id, "err", err)
		}
		master := proc.Master
		p.ours = append(p.ours, master)
		if out != nil {
			output(&copies, out, master)
		} else {
			output(&copies, io.Discard, master)
		}
		if in != nil {
			input(master, in, false)
		}
		go resizeTerminal(master, resize)
		outR = master
	} else {
		if outR != nil {
			output(&copies, out, outR)
		}
		if errR != nil {
			output(&copies, errOut, errR)
		}
		if inW != nil {
			input(inW, in, true)
		}
	}
	type exit struct {
		code int
		err  error
	}
	exited := make(chan exit, 1)
	go func() {
		code, err := proc.Wait()
		exited <- exit{code, err}
	}()
	var x exit
	select {
	case x = <-exited:
	case <-ctx.Done():
		// Through its driver: a VM's has no host pid.
		proc.Signal(unix.SIGKILL)
		x = <-exited
	}
	// A child of the command may hold its output open after it: that
	// output is the command's too, until the session ends.
	waitOutput(ctx, &copies, outR, errR)
	switch {
	case x.err != nil:
		return x.err
	case x.code != 0:
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", x.code), Code: x.code}
	}
	return nil
}

// firstWriter is the first of the client's streams it asked for.
func firstWriter(ws ...io.WriteCloser) io.Writer {
	for _, w := range ws {
		if w != nil {
			return w
		}
	}
	return nil
}

// Attach connects the client's streams to a running container through
// its monitor (engine.Attach), resizes its pty, and returns when the
// container exits or the session's context ends (the container then runs
// on). With the container's StdinOnce, the end of the client's stdin
// closes the container's (without a tty), as containerd does; the
// container's exit is recorded by its monitor either way.
func (r *streamRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	c, err := r.e.Get(ctx, id)
	if err != nil {
		return err
	}
	stdinOnce := false
	if m, ok := containerMetaOf(c); ok {
		stdinOnce = m.StdinOnce
	}
	var p pipes
	defer p.closeAll()
	a := &engine.Attach{MonitorRecordsExit: true, StdinOnce: stdinOnce}
	var inW, outR, errR *os.File
	if in != nil && c.Config.OpenStdin {
		if inW, a.Stdin, err = p.pipe(true); err != nil {
			return err
		}
	}
	if out != nil {
		if outR, a.Stdout, err = p.pipe(false); err != nil {
			return err
		}
	}
	if errOut != nil && !c.Config.Tty {
		if errR, a.Stderr, err = p.pipe(false); err != nil {
			return err
		}
	}
	for _, f := range []**os.File{&a.Stdout, &a.Stderr} {
		if *f == nil {
			null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			p.theirs = append(p.theirs, null)
			*f = null
		}
	}
	st, err := r.e.Attach(ctx, id, a)
	p.closeTheirs()
	if err != nil {
		return err
	}
	var copies sync.WaitGroup
	if outR != nil {
		output(&copies, out, outR)
	}
	if errR != nil {
		output(&copies, errOut, errR)
	}
	switch {
	case inW != nil:
		input(inW, in, true)
	case in != nil:
		// The container reads no stdin: the client's is dropped.
		go io.Copy(io.Discard, in)
	}
	if resize != nil {
		go func() {
			for size := range resize {
				if size.Width == 0 || size.Height == 0 || !c.Config.Tty {
					continue
				}
				if err := r.e.Resize(r.stop, id, size.Height, size.Width); err != nil {
					r.log.Debug("cri: attach resize", "container", id, "err", err)
				}
			}
		}()
	}
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		st.Wait()
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		st.Detach()
		<-waited
	}
	// The monitor closes its copies of our pipes as it lets go of us.
	waitOutput(ctx, &copies, outR, errR)
	return nil
}

// PortForward connects to port on the loopback of the pod's network
// namespace (the host's for a pod on the host's network), from a thread
// that entered it, and copies both ways: the client's end of its input
// half-closes the connection, the port's end of output ends the session,
// and so does the server's stop.
func (r *streamRuntime) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("port %d is not a TCP port (1-65535)", port)
	}
	p, err := r.e.PodGet(ctx, podID)
	if err != nil {
		return err
	}
	if p.State != engine.PodReady {
		return fmt.Errorf("pod %s is %s, not ready", p.Name, p.State)
	}
	path := p.NetworkSettings.SandboxKey
	if p.NetworkMode == "host" {
		path = ""
	}
	dctx, cancel := context.WithTimeout(r.stop, 30*time.Second)
	defer cancel()
	targets := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	if p.Isolation != "" {
		// A pod that is one VM: its namespace here is wired to the VM
		// (what arrives on its interfaces goes to the guest) and its
		// loopback is not the guest's; its addresses, from this host's
		// namespace, reach the guest.
		path, targets = "", nil
		for _, ep := range p.NetworkSettings.Endpoints {
			for _, a := range []string{ep.IP, ep.IPv6} {
				if ip, err := netip.ParseAddr(a); err == nil {
					targets = append(targets, ip)
				}
			}
		}
		if len(targets) == 0 {
			return fmt.Errorf("port-forward to pod %s: its VM has no address to reach it at", p.Name)
		}
	}
	var conn net.Conn
	for _, ip := range targets {
		conn, err = netns.Dial(dctx, path, "tcp", netip.AddrPortFrom(ip, uint16(port)))
		if err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("connect to port %d in pod %s: %w", port, p.Name, err)
	}
	defer conn.Close()
	fromPort := make(chan error, 1)
	go func() {
		_, err := io.Copy(stream, conn)
		fromPort <- err
	}()
	go func() {
		_, err := io.Copy(conn, stream)
		if err == nil {
			// The client's input ended: so does the port's.
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.CloseWrite()
				return
			}
		}
		conn.Close()
	}()
	select {
	case err = <-fromPort:
	case <-r.stop.Done():
		conn.Close()
		err = <-fromPort
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
