// Package cli holds berth's command lines: the engine CLI (berth ...) and
// the runc-compatible runtime CLI (berth runtime ..., or berth-runtime).
// It only parses flags and prints; the work is done in internal/runtime and
// (later) internal/engine.
package cli

import (
	"github.com/spf13/cobra"
)

// Version is set at build time.
var Version = "dev"

// NewRootCommand builds `berth`.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "berth",
		Short:         "Run OCI workloads at the isolation each one needs",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var g globalOptions
	g.register(root)
	root.AddCommand(NewRuntimeCommand("runtime"))
	addImageCommands(root, &g)
	return root
}
