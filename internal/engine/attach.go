//go:build linux

package engine

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// attachSocketName is the monitor's attach socket, in the container's
// state directory (mode 0700: only root reaches it).
const attachSocketName = "attach.sock"

func (e *Engine) attachSocket(id string) string {
	return filepath.Join(e.stateDir(id), attachSocketName)
}

// DefaultDetachKeys is docker's detach sequence: ctrl-p, ctrl-q.
var DefaultDetachKeys = []byte{16, 17}

// maxDetachKeys is what the monitor holds (DETACH_MAX in monitor.c).
const maxDetachKeys = 32

// ParseDetachKeys reads docker's --detach-keys format: comma-separated
// keys, each a single character or ctrl-<c> with c one of a-z, @, [, \,
// ], ^, _ (and DEL). An empty spec is docker's default, ctrl-p,ctrl-q.
func ParseDetachKeys(spec string) ([]byte, error) {
	if spec == "" {
		return DefaultDetachKeys, nil
	}
	var keys []byte
	for _, k := range strings.Split(spec, ",") {
		switch {
		case len(k) == 1:
			keys = append(keys, k[0])
		case k == "DEL":
			keys = append(keys, 127)
		case len(k) == 6 && strings.HasPrefix(k, "ctrl-") && (k[5] >= 'a' && k[5] <= 'z' || strings.IndexByte("@[\\]^_", k[5]) >= 0):
			if k[5] >= 'a' {
				keys = append(keys, k[5]-'a'+1)
			} else {
				keys = append(keys, k[5]-'@')
			}
		default:
			return nil, fmt.Errorf("invalid detach keys %q: unknown key %q (use a single character or ctrl-<a-z, @, [, \\, ], ^ or _>, comma separated): %w", spec, k, ErrInvalid)
		}
	}
	if len(keys) > maxDetachKeys {
		return nil, fmt.Errorf("invalid detach keys %q: at most %d keys: %w", spec, maxDetachKeys, ErrInvalid)
	}
	return keys, nil
}

// attachStateError is docker's refusal to attach to a container that does
// not run; it is an ErrInvalidState.
type attachStateError string

func (e attachStateError) Error() string        { return string(e) }
func (e attachStateError) Is(target error) bool { return target == ErrInvalidState }

var errAttachStopped = attachStateError("You cannot attach to a stopped container, start it first")

// Attach connects the caller's files to a running container: its
// monitor, through the attach socket, takes them as it takes those of a
// foreground run (output copied to them, their stdin to the container's
// when it was created with OpenStdin), and reports on the connection as
// on a run's notify pipe. The caller Waits for the exit code or
// ErrDetached. The exit itself is recorded by the monitor's exit handler
// (or the caller's Finish; recording is once).
func (e *Engine) Attach(ctx context.Context, ref string, a *Attach) (*Started, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	switch c.State.Status {
	case StatusRunning:
	case StatusPaused:
		return nil, attachStateError("You cannot attach to a paused container, unpause it first")
	case StatusRestarting:
		return nil, attachStateError("You cannot attach to a restarting container, wait until it is running")
	default:
		return nil, errAttachStopped
	}
	conn, err := e.dialMonitor(c)
	if err != nil {
		return nil, err
	}
	fd := int(conn.Fd())
	ok := false
	defer func() {
		if !ok {
			conn.Close()
		}
	}()
	flags := "-"
	var files []int
	if a.Stdin != nil && c.Config.OpenStdin {
		flags = "i"
		if a.StdinOnce {
			flags = "io"
		}
		files = append(files, int(a.Stdin.Fd()))
	}
	files = append(files, int(a.Stdout.Fd()), int(a.Stderr.Fd()))
	keys := "-"
	if flags != "-" && c.Config.Tty && len(a.DetachKeys) > 0 {
		keys = hex.EncodeToString(a.DetachKeys)
	}
	msg := fmt.Sprintf("A %s %s\n", flags, keys)
	if err := unix.Sendmsg(fd, []byte(msg), unix.UnixRights(files...), nil, 0); err != nil {
		return nil, fmt.Errorf("attach to %s: %w", c.Name, err)
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	switch {
	case strings.HasPrefix(line, "S "):
	case strings.HasPrefix(line, "E "):
		why := strings.TrimSpace(line[2:])
		if why == "the container is not running" {
			return nil, errAttachStopped
		}
		return nil, attachStateError(fmt.Sprintf("cannot attach to %s: %s", c.Name, why))
	default:
		return nil, fmt.Errorf("attach to %s: the monitor did not answer (%v): %w", c.Name, err, ErrInvalidState)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(line[2:]))
	ok = true
	e.emit(c, "attach", nil)
	return &Started{Container: c, Pid: pid, MonitorPid: c.State.MonitorPid, notify: r, notifyFile: conn,
		keysDetached: func() { e.emit(c, "detach", nil) }}, nil
}

// dialMonitor connects to the monitor's attach socket of c.
func (e *Engine) dialMonitor(c *Container) (*os.File, error) {
	dir, err := unix.Open(e.stateDir(c.ID), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, errAttachStopped
	}
	defer unix.Close(dir)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	conn := os.NewFile(uintptr(fd), "attach")
	// The state directory's path may be longer than a socket address.
	addr := &unix.SockaddrUnix{Name: fmt.Sprintf("/proc/self/fd/%d/%s", dir, attachSocketName)}
	if err := unix.Connect(fd, addr); err != nil {
		conn.Close()
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			// No monitor listens: it is gone (the container with it), or
			// it predates attach sockets.
			return nil, fmt.Errorf("container %s: its monitor does not accept attaches (it is gone, or was started by an older berth): %w", c.Name, ErrInvalidState)
		}
		return nil, fmt.Errorf("attach to %s: %w", c.Name, err)
	}
	return conn, nil
}

// Resize gives a running container's terminal a size, through its
// monitor (which holds the pty): for clients that have no terminal of
// their own for the monitor to copy the size from, as the Docker API's.
func (e *Engine) Resize(ctx context.Context, ref string, rows, cols uint16) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	if !c.Config.Tty {
		return attachStateError(fmt.Sprintf("container %s has no terminal to resize (it was created without a tty)", c.Name))
	}
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
		return attachStateError(fmt.Sprintf("container %s is not running", c.Name))
	}
	conn, err := e.dialMonitor(c)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "W %d %d\n", rows, cols); err != nil {
		return fmt.Errorf("resize %s: %w", c.Name, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	switch {
	case strings.HasPrefix(line, "S "):
		e.emit(c, "resize", map[string]string{"height": strconv.Itoa(int(rows)), "width": strconv.Itoa(int(cols))})
		return nil
	case strings.HasPrefix(line, "E "):
		return attachStateError(fmt.Sprintf("resize %s: %s", c.Name, strings.TrimSpace(line[2:])))
	}
	return fmt.Errorf("resize %s: the monitor did not answer (%v): %w", c.Name, err, ErrInvalidState)
}
