//go:build linux

package engine

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// EnvStopAt names a point at which a berth process stops itself with
// SIGSTOP. Tests use it to kill a CLI inside a window too short to hit by
// timing (between starting a monitor and recording it, say). It is the
// one _BERTH_ variable a monitor passes on to its children (the exit
// handler has a stop point), and unused by the runtime and containers.
const EnvStopAt = "_BERTH_TEST_STOP_AT"

// stopAtForTest stops the process at point, before the caller's next
// instruction. The signal goes to the calling thread: kill(2) of the
// process lets the kernel hand SIGSTOP to another thread, and until that
// one ran the group stop the caller went on, into the next store
// transaction, where a test then found it stopped holding the write lock
// (TestEngineCLIKilledBeforeRecordingMonitor, 1 run in 20 under load).
// Sent to this thread, it is taken on the return from tgkill(2).
func stopAtForTest(point string) {
	if os.Getenv(EnvStopAt) == point {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		unix.Tgkill(os.Getpid(), unix.Gettid(), unix.SIGSTOP)
	}
}
