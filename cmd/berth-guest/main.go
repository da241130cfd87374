//go:build linux

// The runtime has no use for Go's cgroup-aware GOMAXPROCS.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Command berth-guest is what a berth microVM runs, alone: the guest
// agent (the initramfs's /init, internal/agent), berth's linux runtime
// (`berth-guest runtime ...`, which the agent runs for the container and
// its execs, and the container init it leaves) and the file helper of cp
// and export (berth-guest-files). Not the engine's store, the CLI, the
// CRI or the Docker API: `make build` embeds this binary in berth
// (embedguest), and the VM driver puts it in the initramfs instead of
// the whole berth binary, a fraction of its size, which the guest copies
// and unpacks under emulation at every boot (docs/architecture.md, "VM
// driver"). It only wires.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/runtime/linux"
	_ "github.com/berth-dev/berth/internal/runtime/linux/nsexec" // the namespace-entry and cgroup warm-up constructors
	"github.com/berth-dev/berth/internal/runtimecli"
)

func main() {
	if linux.IsInit() {
		linux.Init()
		return
	}
	if agent.IsAgent() {
		agent.Main()
		return
	}
	name := filepath.Base(os.Args[0])
	if name == agent.FilesHelperName {
		os.Exit(engine.GuestFilesMain(os.Args[1:]))
	}
	if name == agent.PodPIDName {
		agent.PodPIDMain()
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
	fmt.Fprintf(os.Stderr, "berth-guest: %s: this is the guest side of berth's VMs: its agent (PID 1), berth runtime and %s\n", what, agent.FilesHelperName)
	os.Exit(2)
}
