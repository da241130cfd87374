//go:build linux

package engine

import (
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/engine/monitor"
)

// A long-lived engine (berth serve, Options.SpareMonitor) keeps one
// container monitor parked ahead of need: its start child's Go runtime
// starts while nothing waits for it (~5 ms here, most of what a monitor
// costs a start), and a detached start hands it the container instead of
// starting a monitor (monitor.c, "Parked"). The next one is parked in the
// background as one is taken. A monitor parked by an engine that is gone
// (closed, killed) sees its control socket end and exits with its child;
// a parked monitor that cannot be used (it died, its message failed) is
// discarded and the start starts a monitor of its own, as without spares.

// spareMonitor is a parked monitor and our end of its control socket.
type spareMonitor struct {
	cmd *exec.Cmd
	ctl *os.File
}

// spares holds an engine's parked monitor; nil (no spares) is valid.
type spares struct {
	exe    string
	env    []string // the parked monitor's: its flags, root and state, and monitorEnv
	mu     sync.Mutex
	ready  *spareMonitor
	making bool
	closed bool
}

// titleWidth is the room a parked monitor gets in argv[1] for the
// container's ID (monitor.c writes it there once given one).
const titleWidth = 64

func newSpares(exe, root, state string) *spares {
	s := &spares{exe: exe, env: append([]string{
		monitor.EnvFlags + "=" + monitor.FlagsParked, EnvRoot + "=" + root, EnvState + "=" + state,
	}, monitorEnv()...)}
	s.refill()
	return s
}

// monitorEnv is what of this process's environment a monitor (and so its
// children) gets besides its own variables: all but berth's internal
// ones, the test hook's excepted.
func monitorEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "_BERTH_") || strings.HasPrefix(kv, EnvStopAt+"=") {
			env = append(env, kv)
		}
	}
	return env
}

// refill parks a monitor in the background unless one is parked or being
// parked.
func (s *spares) refill() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready != nil || s.making || s.closed {
		return
	}
	s.making = true
	go func() {
		sp := s.park()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.making = false
		if sp != nil && s.closed {
			s.discard(sp)
			return
		}
		s.ready = sp
	}()
}

// park starts a parked monitor, and watches it; nil if it cannot.
func (s *spares) park() *spareMonitor {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	// Ours non-blocking, so that a Read waits in the poller and a Close
	// ends it (watch).
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "spare-monitor"), os.NewFile(uintptr(fds[1]), "spare-monitor")
	defer theirs.Close()
	cmd := &exec.Cmd{
		Path:        s.exe,
		Args:        []string{"berth-monitor", strings.Repeat(" ", titleWidth)},
		Env:         s.env,
		ExtraFiles:  []*os.File{theirs},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		ours.Close()
		return nil
	}
	sp := &spareMonitor{cmd: cmd, ctl: ours}
	go s.watch(sp)
	return sp
}

// watch discards sp, and parks another, should it die while parked
// (killed, out of memory): its end of the socket then reads EOF. (The
// monitor never writes to it; taken or discarded, our Close ends the
// Read.)
func (s *spares) watch(sp *spareMonitor) {
	var b [1]byte
	if _, err := sp.ctl.Read(b[:]); err != io.EOF {
		return
	}
	s.mu.Lock()
	died := s.ready == sp
	if died {
		s.ready = nil
		s.discard(sp)
	}
	s.mu.Unlock()
	if died {
		s.refill()
	}
}

// discard ends a parked monitor (the end of its socket ends it) and reaps
// it.
func (s *spares) discard(sp *spareMonitor) {
	sp.ctl.Close()
	go sp.cmd.Wait()
}

// assign gives the parked monitor, if there is one, the container id: its
// environment (the _BERTH_MONITOR variables; the rest it has), its log,
// the notify pipe and, for an attached start, the caller's stdin, stdout
// and stderr. It returns the monitor's process, or nil: then the caller
// starts a monitor itself.
//
// The next one is parked by refill, which the caller calls once its
// start is done: parked beside the start, its Go runtime's start would
// take the CPU that the start needs.
func (s *spares) assign(id string, env []string, log, notify *os.File, attached []*os.File) *exec.Cmd {
	if s == nil || len(id) > titleWidth {
		return nil
	}
	var b strings.Builder
	b.WriteString(id)
	b.WriteByte(0)
	for _, kv := range env {
		b.WriteString(kv)
		b.WriteByte(0)
	}
	if b.Len() > 60<<10 { // monitor.c reads one message of at most 64 KiB
		return nil
	}
	s.mu.Lock()
	sp := s.ready
	s.ready = nil
	s.mu.Unlock()
	if sp == nil {
		return nil
	}
	fds := []int{int(log.Fd()), int(notify.Fd())}
	for _, f := range attached {
		fds = append(fds, int(f.Fd()))
	}
	rights := unix.UnixRights(fds...)
	rc, err := sp.ctl.SyscallConn()
	if err == nil {
		werr := rc.Write(func(fd uintptr) bool {
			err = unix.Sendmsg(int(fd), []byte(b.String()), rights, nil, unix.MSG_NOSIGNAL)
			return err != unix.EAGAIN
		})
		if err == nil {
			err = werr
		}
	}
	if err != nil {
		s.discard(sp)
		return nil
	}
	// It has what it needs: the socket's end is no longer its signal.
	sp.ctl.Close()
	return sp.cmd
}

// close discards the parked monitor and parks no more.
func (s *spares) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.ready != nil {
		s.discard(s.ready)
		s.ready = nil
	}
}
