//go:build !linux || !cgo

package monitor

import "os"

const (
	EnvFlags    = "_BERTH_MONITOR"
	EnvLog      = "_BERTH_MONITOR_LOG"
	EnvExitFile = "_BERTH_MONITOR_EXIT"
	EnvLogMax   = "_BERTH_MONITOR_LOGMAX"
	EnvLogFiles = "_BERTH_MONITOR_LOGFILES"
	EnvLogAttrs = "_BERTH_MONITOR_LOGATTRS"
	EnvHealth   = "_BERTH_MONITOR_HEALTH"
	EnvDetach   = "_BERTH_MONITOR_DETACH"
	EnvSocket   = "_BERTH_MONITOR_SOCKET"
)

const (
	RoleNone   = 0
	RoleStart  = 1
	RoleExit   = 2
	RoleHealth = 3
	RoleProxy  = 4
	RoleParked = 5
)

const FlagsParked = "P"

// AwaitAssignment is never called where there is no monitor.
func AwaitAssignment() error { return nil }

const ProbeStillStarting = 3

// Role is always RoleNone where there is no monitor.
func Role() int { return RoleNone }

// ExitCode is unused where there is no monitor.
func ExitCode() int { return 0 }

// Pid is 0 where there is no monitor.
func Pid() int { return 0 }

// HeldPorts is nil where there is no monitor.
func HeldPorts() []*os.File { return nil }

// ProxyTo is always nil where there is no monitor.
func ProxyTo() []string { return nil }

// SyncEnv does nothing where there is no monitor.
func SyncEnv() {}
