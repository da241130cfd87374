//go:build linux

package cli

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newSystemResetCommand(g *globalOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "reset [OPTIONS]",
		Short: "Remove every container, image, volume and network, and the root and state directories",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if !force {
				if !term.IsTerminal(int(os.Stdin.Fd())) {
					return errors.New("system reset deletes everything under " + g.root + " and " + g.state + ": give --force (there is no terminal to confirm on)")
				}
				fmt.Fprintf(os.Stderr, "WARNING! This stops and removes every container and removes every image, volume and network,\nthen deletes %s and %s.\nAre you sure you want to continue? [y/N] ", g.root, g.state)
				answer, _ := bufio.NewReader(os.Stdin).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
					return nil
				}
			}
			e, err := g.openEngine(false)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			err = e.Reset(ctx)
			e.Close()
			if err != nil {
				return fmt.Errorf("system reset: %w (the directories are kept; run it again)", err)
			}
			return engine.RemoveRoots(g.root, g.state)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not ask for confirmation")
	return cmd
}
