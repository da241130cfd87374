//go:build linux

package engine

import (
	"os"

	"golang.org/x/sys/unix"
)

// EnvStopAt names a point at which a berth process stops itself with
// SIGSTOP. Tests use it to kill a CLI inside a window too short to hit by
// timing (between starting a monitor and recording it, say). It is the
// one _BERTH_ variable a monitor passes on to its children (the exit
// handler has a stop point), and unused by the runtime and containers.
const EnvStopAt = "_BERTH_TEST_STOP_AT"

func stopAtForTest(point string) {
	if os.Getenv(EnvStopAt) == point {
		unix.Kill(os.Getpid(), unix.SIGSTOP)
	}
}
