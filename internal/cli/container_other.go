//go:build !linux

package cli

import (
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/image"
)

// The engine runs Linux containers; other systems get the image commands.
func addContainerCommands(*cobra.Command, *globalOptions) {}

// RunMonitorChild never runs where there is no monitor.
func RunMonitorChild() int { return 1 }

// pruneVMLayers: no VM driver off Linux.
func (g *globalOptions) pruneVMLayers(*image.Service) {}

// pruneVMTemplates: no VM driver off Linux.
func (g *globalOptions) pruneVMTemplates() {}
