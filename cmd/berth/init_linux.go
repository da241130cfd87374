package main

import (
	"github.com/berth-dev/berth/internal/runtime/linux"
	_ "github.com/berth-dev/berth/internal/runtime/linux/nsexec" // the namespace-entry and cgroup warm-up constructors
	"github.com/berth-dev/berth/internal/runtime/vm"
)

func isInit() bool { return linux.IsInit() }

func runInit() { linux.Init() }

// started marks, with BERTH_TRACE, where the Go start-up ends (the C
// constructor traces the exec).
func started() { linux.TracePhase("main") }

// vmShimName is the argv[0] of a VM's shim (see internal/runtime/vm).
const vmShimName = vm.ShimName

func runVMShim(args []string) int { return vm.ShimMain(args) }
