//go:build linux

// Command berth-vmm is a VM container's shim alone (internal/runtime/vm's
// ShimMain): the host process that stands for the container, runs QEMU
// and virtiofsd and speaks to the guest's agent. It lives as long as the
// container does, one per VM, so its memory is each VM's: `make build`
// embeds this binary in berth (embedvmm) and the VM driver starts it,
// sealed as /run/berth/exe/vmm-<key of the berth binary>, instead of the
// whole berth binary, whose pages the shim would otherwise fault in
// (docs/architecture.md, "VM driver", host memory per idle VM). It only
// wires.
package main

import (
	"os"

	"github.com/berth-dev/berth/internal/runtime/vm"
)

func main() { os.Exit(vm.ShimMain(os.Args[1:])) }
