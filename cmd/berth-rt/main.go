//go:build linux

// The runtime has no use for Go's cgroup-aware GOMAXPROCS.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Command berth-rt is berth's OCI runtime alone: the runtime CLI
// (internal/runtimecli) and the container init and exec process
// (internal/runtime/linux), without the engine, the APIs and the engine's
// CLI. `make build` embeds it in berth; the first container writes it,
// sealed, to /run/berth/exe/rt-<key of the berth binary>. Every container
// and exec starts it as its init, and berth-runtime (or `berth runtime`)
// re-executes into it before Go starts (nsexec/trampoline.c): its start-up
// is about half the whole binary's, paid twice per container
// (docs/architecture.md, "Start-up cost"). It only wires.
package main

import (
	"fmt"
	"os"

	"github.com/berth-dev/berth/internal/runtime/linux"
	_ "github.com/berth-dev/berth/internal/runtime/linux/nsexec" // the namespace-entry and cgroup warm-up constructors
	"github.com/berth-dev/berth/internal/runtimecli"
)

func main() {
	if linux.IsInit() {
		linux.Init()
		return
	}
	linux.TracePhase("main")
	if code, ok := runtimecli.Dispatch(os.Args); ok {
		os.Exit(code)
	}
	what := "no command"
	if len(os.Args) > 1 {
		what = fmt.Sprintf("unknown command %q", os.Args[1])
	}
	fmt.Fprintf(os.Stderr, "berth-rt: %s: this is berth's runtime, run as berth-runtime or berth runtime\n", what)
	os.Exit(2)
}
