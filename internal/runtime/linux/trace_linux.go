package linux

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// BERTH_TRACE=1 prints the time of each lifecycle phase to stderr, to find
// where a create spends its time.
var traceOn = os.Getenv("BERTH_TRACE") != ""

func tracePhase(name string) {
	if traceOn {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		fmt.Fprintf(os.Stderr, "trace %d %.3f %s minflt=%d\n", os.Getpid(), float64(time.Now().UnixNano()%1e11)/1e6, name, ru.Minflt)
	}
}

// TracePhase is tracePhase for main, which marks when Go's start-up ended.
func TracePhase(name string) { tracePhase(name) }
