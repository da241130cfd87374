//go:build linux

// The init has no use for Go's cgroup-aware GOMAXPROCS.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Command berth-containerinit is the container init and exec process alone:
// the Go side of internal/runtime/linux between the namespace constructor
// and the container's execve, without the engine, the APIs and the CLI.
// `make build` embeds it in berth, which runs it (sealed under
// /run/berth/exe) for every container and exec: its start-up, paid at each
// one, is a fraction of the whole binary's (docs/architecture.md,
// "Start-up cost"). It only wires; see internal/runtime/linux.
package main

import (
	"fmt"
	"os"

	"github.com/berth-dev/berth/internal/runtime/linux"
	_ "github.com/berth-dev/berth/internal/runtime/linux/nsexec" // the namespace-entry constructor
)

func main() {
	if !linux.IsInit() {
		what := "no command"
		if len(os.Args) > 1 {
			what = fmt.Sprintf("unknown command %q", os.Args[1])
		}
		fmt.Fprintf(os.Stderr, "berth-containerinit: %s: this is berth's container init, which only berth starts\n", what)
		os.Exit(2)
	}
	linux.Init()
}
