package linux

import "github.com/berth-dev/berth/internal/trace"

// BERTH_TRACE=1 prints the time of each lifecycle phase to stderr, to find
// where a create spends its time (package trace).
var traceOn = trace.On

func tracePhase(name string) { trace.Phase(name) }

// TracePhase is tracePhase for main, which marks when Go's start-up ended.
func TracePhase(name string) { tracePhase(name) }
