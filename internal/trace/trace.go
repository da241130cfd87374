// Package trace prints, with BERTH_TRACE set in the environment, the time
// of each phase of a container's start to stderr, one line each:
//
//	trace <pid> <ms, the wall clock modulo 100 s> <phase> minflt=<minor faults so far>
//
// With BERTH_TRACE an absolute path, the lines are appended to that file.
// The runtime (internal/runtime/linux), its C pre-Go code (nsexec.c) and
// the engine print in this one format, so that the lines of every process
// of a start sort into one timeline. It costs one environment lookup at
// package initialisation when off.
package trace

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// On says whether BERTH_TRACE is set.
var On = os.Getenv("BERTH_TRACE") != ""

// out is where the lines go: stderr, or the file BERTH_TRACE names when
// it is an absolute path (appended to, so that processes whose stderr is
// a container's log or a monitor's file add to one timeline).
var out = func() *os.File {
	if p := os.Getenv("BERTH_TRACE"); len(p) > 1 && p[0] == '/' {
		if f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			return f
		}
	}
	return os.Stderr
}()

// Phase prints that this process reached phase now.
func Phase(name string) {
	if !On {
		return
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Fprintf(out, "trace %d %.3f %s minflt=%d\n", os.Getpid(), float64(time.Now().UnixNano()%1e11)/1e6, name, ru.Minflt)
}
