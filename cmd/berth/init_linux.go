package main

import (
	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/engine"
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

// guestFilesName is the argv[0] of the file helper the guest agent starts
// for cp and export of a VM container (see internal/engine/files_guest.go).
const guestFilesName = agent.FilesHelperName

func runGuestFiles(args []string) int { return engine.GuestFilesMain(args) }
