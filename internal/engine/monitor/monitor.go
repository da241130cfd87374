//go:build linux && cgo

// Package monitor links in the container monitor (monitor.c), the small
// C process that supervises one container: it holds the container's stdio,
// writes its JSON-lines log, reaps it as its subreaper, writes the exit
// file and forks the engine's short-lived Go children (start, exit
// handler). The constructor is inert unless EnvFlags is set.
//
// Why C: it runs for the container's whole life, one per container; a Go
// process at rest costs ~1.3 MB PSS, this loop a tenth of that (see
// docs/architecture.md, "Supervision"). It never enters the Go runtime.
//
// This file and monitor.c are the engine's only cgo.
package monitor

// #cgo CFLAGS: -Wall -Wextra -O2
// extern char **environ;
// extern int berth_monitor_role;
// extern int berth_monitor_exit_code;
// extern int berth_monitor_pid;
// extern int berth_monitor_held_ports;
// extern const char *berth_monitor_proxy_to;
import "C"

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Environment of the monitor (set by the engine when it starts one).
const (
	EnvFlags    = "_BERTH_MONITOR"
	EnvLog      = "_BERTH_MONITOR_LOG"
	EnvExitFile = "_BERTH_MONITOR_EXIT"
	EnvLogMax   = "_BERTH_MONITOR_LOGMAX"
	EnvLogFiles = "_BERTH_MONITOR_LOGFILES"
	// EnvLogFormat is json (docker's json-file, the default), cri (the
	// CRI's format) or none (output is dropped).
	EnvLogFormat = "_BERTH_MONITOR_LOGFMT"
	// EnvLogAttrs is a JSON object (at most 4 KiB) written as each log
	// line's "attrs", as docker's json-file does for --log-opt tag.
	EnvLogAttrs = "_BERTH_MONITOR_LOGATTRS"
	// EnvHealth is "<interval ms>,<timeout ms>[,<start interval
	// ms>,<start period ms>]" when the container has a healthcheck: the
	// monitor forks a RoleHealth child at every interval while the
	// container runs (every start interval while a probe exits
	// ProbeStillStarting within the start period).
	EnvHealth = "_BERTH_MONITOR_HEALTH"
	// EnvDetach is the attached CLI's detach sequence, in hex: typed on
	// its stdin, the monitor drops the CLI ("Q" on the notify pipe) and
	// the container goes on.
	EnvDetach = "_BERTH_MONITOR_DETACH"
	// EnvSocket is the path of the attach socket the monitor listens on
	// (berth attach; see monitor.c for the protocol).
	EnvSocket = "_BERTH_MONITOR_SOCKET"
)

// Roles of a process forked by the monitor.
const (
	RoleNone   = 0
	RoleStart  = 1 // create and start the container, report its pid
	RoleExit   = 2 // record the exit, apply the restart policy
	RoleHealth = 3 // run one healthcheck probe and record it
	RoleProxy  = 4 // forward [::1]'s connections to published ports
	// RoleParked is a parked monitor's start child: it waits for its
	// container (AwaitAssignment), then starts it as RoleStart does.
	RoleParked = 5
)

// FlagsParked is EnvFlags of a parked monitor: one that a long-lived
// engine starts ahead of need, with its control socket on fd 3 (see
// monitor.c).
const FlagsParked = "P"

// ProbeStillStarting is a RoleHealth child's exit status when the
// container's health is still "starting" after its probe.
const ProbeStillStarting = 3

// Role says whether this process is a child the monitor forked, and for
// what. Zero in every other process.
func Role() int { return int(C.berth_monitor_role) }

// ExitCode is the container's exit code, for RoleExit.
func ExitCode() int { return int(C.berth_monitor_exit_code) }

// Pid is the pid of the monitor that forked this process (0 in every
// other process). Taken before the fork: getppid would name the reaper if
// the monitor had died meanwhile.
func Pid() int { return int(C.berth_monitor_pid) }

// HeldPorts are the sockets holding the container's published ports that
// an exit handler inherited from the monitor (on fds 4 and up): a restart
// reuses them. Nil in every other process.
func HeldPorts() []*os.File {
	n := int(C.berth_monitor_held_ports)
	var out []*os.File
	for i := 0; i < n; i++ {
		out = append(out, os.NewFile(uintptr(4+i), "held-port"))
	}
	return out
}

// ProxyTo are, in the loopback proxy (RoleProxy), the addresses to
// forward to, one per listening socket on fds 3, 4, ...; nil elsewhere.
func ProxyTo() []string {
	if C.berth_monitor_proxy_to == nil {
		return nil
	}
	return strings.Fields(C.GoString(C.berth_monitor_proxy_to))
}

// AwaitAssignment, in a RoleParked child, waits on fd 3 for the container
// its monitor was given: its stdio (for fds 0-2) and the environment the
// engine gave the monitor. Then this process is that container's start
// child (Role is RoleStart). An error means the monitor went first (only
// it holds the other end of fd 3): the child then exits.
func AwaitAssignment() error {
	head := make([]byte, 9)
	oob := make([]byte, unix.CmsgSpace(3*4))
	var n, oobn int
	var err error
	for {
		if n, oobn, _, _, err = unix.Recvmsg(3, head, oob, unix.MSG_CMSG_CLOEXEC); err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("parked start: %w", err)
	}
	if n == 0 {
		return errors.New("parked start: the monitor went")
	}
	var fds []int
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if got, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	if err := readFull3(head[n:]); err != nil {
		return err
	}
	size, err := strconv.ParseUint(string(head[1:]), 16, 32)
	if head[0] != 'G' || err != nil || size > 1<<16 || len(fds) != 3 {
		return fmt.Errorf("parked start: a bad assignment %q with %d files", head, len(fds))
	}
	env := make([]byte, size)
	if err := readFull3(env); err != nil {
		return err
	}
	for i, fd := range fds {
		if err := unix.Dup3(fd, i, 0); err != nil {
			return fmt.Errorf("parked start: take fd %d: %w", i, err)
		}
		unix.Close(fd)
	}
	for _, kv := range strings.Split(string(env), "\x00") {
		setenv(kv)
	}
	C.berth_monitor_role = RoleStart
	return nil
}

// readFull3 fills b from fd 3 (read directly: MonitorChild makes the one
// *os.File of it, whose finalizer closes it).
func readFull3(b []byte) error {
	for len(b) > 0 {
		n, err := unix.Read(3, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("parked start: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("parked start: %w", io.ErrUnexpectedEOF)
		}
		b = b[n:]
	}
	return nil
}

// SyncEnv, in a child the monitor forked, gives Go the monitor's
// environment as the C library has it. Go reads its environment from what
// the kernel passed at exec; a parked monitor set its container's
// variables (setenv) after its exec, and the children it forks from then
// on (exit handler, probes) inherit them only in the C library's copy.
// It only adds and changes: monitor.c sets variables and never unsets
// one.
func SyncEnv() {
	if C.environ == nil {
		return
	}
	at := func(i int) *C.char {
		return *(**C.char)(unsafe.Add(unsafe.Pointer(C.environ), uintptr(i)*unsafe.Sizeof((*C.char)(nil))))
	}
	n := 0
	for at(n) != nil {
		n++
	}
	for _, kv := range unsafe.Slice(C.environ, n) {
		setenv(C.GoString(kv))
	}
}

// setenv sets one "K=V" entry in Go's environment, unless it has it.
func setenv(kv string) {
	if k, v, ok := strings.Cut(kv, "="); ok && k != "" && os.Getenv(k) != v {
		os.Setenv(k, v)
	}
}
