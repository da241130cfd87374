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
// extern int berth_monitor_role;
// extern int berth_monitor_exit_code;
// extern int berth_monitor_pid;
// extern int berth_monitor_held_ports;
// extern const char *berth_monitor_proxy_to;
import "C"

import (
	"os"
	"strings"
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
)

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
