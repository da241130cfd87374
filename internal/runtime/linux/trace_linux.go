package linux

import (
	"fmt"
	"os"
	"time"
)

// BERTH_TRACE=1 prints the time of each lifecycle phase to stderr, to find
// where a create spends its time.
var traceOn = os.Getenv("BERTH_TRACE") != ""

func tracePhase(name string) {
	if traceOn {
		fmt.Fprintf(os.Stderr, "trace %d %.3f %s\n", os.Getpid(), float64(time.Now().UnixNano()%1e11)/1e6, name)
	}
}
