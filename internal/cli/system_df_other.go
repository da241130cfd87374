//go:build !linux

package cli

import "github.com/spf13/cobra"

// replaceSystemDf: without containers, system df is the image service's.
func replaceSystemDf(*cobra.Command, *globalOptions) {}
