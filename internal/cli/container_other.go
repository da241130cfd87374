//go:build !linux

package cli

import "github.com/spf13/cobra"

// The engine runs Linux containers; other systems get the image commands.
func addContainerCommands(*cobra.Command, *globalOptions) {}

// RunMonitorChild never runs where there is no monitor.
func RunMonitorChild() int { return 1 }
