package main

import (
	"github.com/berth-dev/berth/internal/runtime/linux"
	_ "github.com/berth-dev/berth/internal/runtime/linux/nsexec" // the namespace-entry constructor
	"github.com/berth-dev/berth/internal/runtime/vm"
)

func isInit() bool { return linux.IsInit() }

func runInit() { linux.Init() }

// warmUp starts, as early as possible, the kernel wait that creating a
// container will pay (see linux.WarmCgroupMigration).
func warmUp(args []string) {
	linux.TracePhase("main")
	for _, a := range args {
		if a == "create" || a == "run" {
			go linux.WarmCgroupMigration()
			return
		}
	}
}

// vmShimName is the argv[0] of a VM's shim (see internal/runtime/vm).
const vmShimName = vm.ShimName

func runVMShim(args []string) int { return vm.ShimMain(args) }
