package linux

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/runtime/oci"
	"github.com/berth-dev/berth/internal/sigrelay"

	"golang.org/x/sys/unix"
)

// RunOptions are create's options plus run's own.
type RunOptions struct {
	CreateOptions
	Detach bool
	Keep   bool // keep the container after it exits (run --keep)
}

// Run creates and starts a container. Detached, it returns once the
// process runs. Attached, it forwards signals, waits, deletes the container
// (unless Keep) and returns the exit code the way a shell reports it.
func Run(ctx context.Context, root, id string, opts RunOptions) (int, error) {
	// Catch the signals to forward before the container exists, so none
	// meant for it can end us first (a C handler: see internal/sigrelay
	// for why not os/signal).
	var sigs <-chan syscall.Signal
	if !opts.Detach {
		rl, err := sigrelay.Start(sigrelay.Forwarded...)
		if err != nil {
			return 0, err
		}
		defer rl.Stop()
		sigs = rl.C
	}
	// One decode of config.json serves the terminal check and create.
	if err := CheckID(id); err != nil {
		DiscardUnusedPrefork()
		return 0, err
	}
	spec, rootfs, err := oci.LoadBundle(opts.Bundle)
	if err != nil {
		DiscardUnusedPrefork()
		return 0, err
	}
	opts.loaded = &loadedBundle{spec, rootfs}
	var ptyMaster chan *os.File
	var closeConsole func()
	if !opts.Detach && opts.ConsoleSocket == "" {
		if spec.Process != nil && spec.Process.Terminal {
			ours, theirs, err := ConsolePair()
			if err != nil {
				return 0, err
			}
			opts.Console = theirs
			closeConsole = func() { theirs.Close() }
			ptyMaster = make(chan *os.File, 1)
			go func() {
				defer ours.Close()
				m, err := ReceiveConsole(ours)
				if err != nil {
					ptyMaster <- nil
					return
				}
				ptyMaster <- m
			}()
		}
	}
	c, sp, err := create(ctx, root, id, opts.CreateOptions)
	if closeConsole != nil {
		closeConsole()
	}
	if err != nil {
		return 0, err
	}
	sp.conn.f.Close()
	if err := c.Start(ctx); err != nil {
		c.Delete(ctx, true)
		return 0, err
	}
	if opts.Detach {
		if sp.cmd != nil {
			sp.cmd.Process.Release()
		}
		return 0, nil
	}
	if ptyMaster != nil {
		if m := <-ptyMaster; m != nil {
			restore := proxyTerminal(m)
			defer restore()
		}
	}
	pid := c.Pid
	type exit struct {
		code int
		err  error
	}
	done := make(chan exit, 1)
	go func() {
		code, err := WaitExit(pid)
		done <- exit{code, err}
	}()
	var res exit
wait:
	for {
		select {
		case s := <-sigs:
			unix.Kill(pid, s)
		case res = <-done:
			break wait
		}
	}
	if res.err != nil {
		return 0, res.err
	}
	code := res.code
	tracePhase("exited")
	if !opts.Keep {
		if lc, unlock, err := relock(c); err == nil {
			lc.Delete(ctx, true)
			unlock()
			tracePhase("deleted")
		}
	}
	return code, nil
}

// WaitExit waits for a child (or CLONE_PARENT grandchild) and returns its
// exit code as a shell reports it.
func WaitExit(pid int) (int, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for pid %d: %w", pid, err)
		}
		return exitCode(ws), nil
	}
}

// exitCode reports a wait status as a shell would: 128+n for signal n.
func exitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// ConsolePair makes a connected pair of sockets for a pty master: ours
// for ReceiveConsole, theirs for CreateOptions.Console.
func ConsolePair() (*net.UnixConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	ours := os.NewFile(uintptr(fds[0]), "console-ours")
	defer ours.Close()
	conn, err := net.FileConn(ours)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return conn.(*net.UnixConn), os.NewFile(uintptr(fds[1]), "console-theirs"), nil
}

// ProxyTerminal connects our stdio to a pty master until the returned
// function is called (after the process exited).
func ProxyTerminal(master *os.File) func() { return proxyTerminal(master) }

// proxyTerminal copies between our stdio and the pty, with our terminal in
// raw mode, and keeps the pty's size in step with ours.
func proxyTerminal(master *os.File) func() {
	in := int(os.Stdin.Fd())
	var restore func()
	if old, err := unix.IoctlGetTermios(in, unix.TCGETS); err == nil {
		raw := *old
		raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		raw.Oflag &^= unix.OPOST
		raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		raw.Cflag &^= unix.CSIZE | unix.PARENB
		raw.Cflag |= unix.CS8
		raw.Cc[unix.VMIN] = 1
		raw.Cc[unix.VTIME] = 0
		unix.IoctlSetTermios(in, unix.TCSETS, &raw)
		restore = func() { unix.IoctlSetTermios(in, unix.TCSETS, old) }
		if ws, err := unix.IoctlGetWinsize(in, unix.TIOCGWINSZ); err == nil {
			unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, unix.SIGWINCH)
		go func() {
			for range winch {
				if ws, err := unix.IoctlGetWinsize(in, unix.TIOCGWINSZ); err == nil {
					unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
				}
			}
		}()
	}
	go io.Copy(master, os.Stdin)
	copied := make(chan struct{})
	go func() {
		io.Copy(os.Stdout, master)
		close(copied)
	}()
	return func() {
		// Drain what the process wrote before it exited.
		select {
		case <-copied:
		case <-time.After(time.Second):
		}
		if restore != nil {
			restore()
		}
	}
}
