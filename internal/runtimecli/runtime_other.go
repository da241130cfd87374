//go:build !linux

package runtimecli

import (
	"fmt"
	"os"
	"runtime"

	"github.com/spf13/cobra"
)

// NewCommand on systems without a driver yet explains that.
func NewCommand(name string) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Short:              "The OCI runtime (Linux only for now)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("the OCI runtime is not available on %s yet: the jail driver is planned", runtime.GOOS)
		},
	}
}

// Execute runs the runtime CLI and returns the process exit code.
func Execute(cmd *cobra.Command, args []string) int {
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", cmd.Name(), err)
		return 1
	}
	return 0
}
