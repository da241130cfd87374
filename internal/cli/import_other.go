//go:build !linux

package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// newImportCommand: an import goes through the engine, which needs Linux.
func newImportCommand(*globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "import [OPTIONS] FILE|- [REPOSITORY[:TAG]]",
		Short: "Make an image of a root file system tarball (plain, gzip or zstd)",
		RunE:  func(*cobra.Command, []string) error { return errors.New("import needs Linux") },
	}
}
