// berth sizes nothing by CPU quota and starts twice per container: skip
// reading cgroup limits at every start.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Command berth is the one binary: the engine CLI, the OCI runtime (as
// `berth runtime` or when invoked as berth-runtime) and the hidden container
// init entry point. It only wires; see internal/.
package main

import (
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/cli"
	"github.com/berth-dev/berth/internal/engine/monitor"
	"github.com/berth-dev/berth/internal/engine/tinit"
	"github.com/berth-dev/berth/internal/runtimecli"
)

func main() {
	if isInit() {
		runInit()
		return
	}
	if agent.IsAgent() {
		// PID 1 of a berth microVM (see internal/agent).
		agent.Main()
		return
	}
	if monitor.Role() != monitor.RoleNone {
		// A process the container monitor forked (it never returns to Go
		// itself): start the container or handle its exit.
		os.Exit(cli.RunMonitorChild())
	}
	name := filepath.Base(os.Args[0])
	if name == tinit.Name {
		os.Exit(tinit.Main(os.Args[1:]))
	}
	if name == vmShimName {
		os.Exit(runVMShim(os.Args[1:]))
	}
	if name == guestFilesName {
		os.Exit(runGuestFiles(os.Args[1:]))
	}
	if name == agent.PodPIDName {
		// A pod's shared PID namespace in its VM (see internal/agent).
		agent.PodPIDMain()
		return
	}
	started()
	if code, ok := runtimecli.Dispatch(os.Args); ok {
		os.Exit(code)
	}
	// Built only here: the runtime (started twice per container) never
	// pays for the engine's command tree.
	os.Exit(cli.Main(os.Args[1:]))
}
