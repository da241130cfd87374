package main

import (
	"github.com/berth-dev/berth/internal/runtime/linux"
	_ "github.com/berth-dev/berth/internal/runtime/linux/nsexec" // the namespace-entry constructor
)

func isInit() bool { return linux.IsInit() }

func runInit() { linux.Init() }

// warmUp starts, as early as possible, the kernel wait that creating a
// container will pay (see linux.WarmCgroupMigration).
func warmUp(args []string) {
	for _, a := range args {
		if a == "create" || a == "run" {
			go linux.WarmCgroupMigration()
			return
		}
	}
}
