//go:build linux && cgo

// Package nsexec links in the C constructor (nsexec.c) that enters and
// creates namespaces before the Go runtime starts threads. Importing it is
// all that is needed; the constructor is inert unless _BERTH_NSEXEC is set.
// A second constructor (cgroupwarm.c) starts, in a create or run, the
// kernel wait that the container's cgroup move would otherwise pay.
//
// This is the only cgo in the runtime besides libseccomp; keep it here.
package nsexec

// #cgo CFLAGS: -Wall -Wextra -O2
// extern volatile int berth_cgroup_warm_stop;
import "C"

// StopCgroupWarm ends the cgroup lock warm-up (cgroupwarm.c) once the
// container's init is in its cgroup.
func StopCgroupWarm() { C.berth_cgroup_warm_stop = 1 }

// EnvSyncFD names the environment variable that carries the number of the
// sync socket to the constructor.
const EnvSyncFD = "_BERTH_NSEXEC"
