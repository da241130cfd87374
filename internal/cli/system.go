//go:build linux

package cli

import (
	"bufio"
	"context"
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
		Short: "Remove every container, image, volume and network, and what berth made in the root and state directories",
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
			if err := engine.CheckLayoutDirs(g.root, g.state); err != nil {
				return err
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
			return engine.RemoveLayout(g.root, g.state)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not ask for confirmation")
	return cmd
}

// newDNSServerCommand is the name server of user-defined networks, which
// berth starts itself when a container needs it (see internal/network/dns).
func newDNSServerCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:    "dns-server",
		Short:  "Serve the names of the containers on user-defined networks (started by berth itself)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			return e.ServeDNS(ctx)
		}),
	}
}

// newPodReaperCommand is PID 1 of a pod's shared PID namespace, which
// berth starts itself (see internal/engine/pod_reaper_linux.go).
func newPodReaperCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "pod-reaper",
		Short:  "Hold a pod's PID namespace and reap its orphans (started by berth itself)",
		Hidden: true,
		Args:   cobra.NoArgs,
		Run:    func(*cobra.Command, []string) { engine.PodReaper() },
	}
}

func newSystemPruneCommand(g *globalOptions) *cobra.Command {
	var all, volumes, force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove stopped containers, unused networks, unused images and (with --volumes) unused volumes",
		Args:  cobra.NoArgs,
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			_ = force // berth does not prompt
			var errs []error
			containers, reclaimed, failed, err := e.PruneContainers(ctx, nil)
			errs = append(errs, failed, err)
			printDeleted("Containers", containers)
			networks, err := e.PruneNetworks(ctx, nil)
			errs = append(errs, err)
			printDeleted("Networks", networks)
			if volumes {
				// docker's system prune --volumes: anonymous volumes only,
				// unless -a.
				vols, volBytes, err := e.PruneVolumes(ctx, all, nil)
				errs = append(errs, err)
				reclaimed += volBytes
				printDeleted("Volumes", vols)
			}
			res, err := e.Images().Prune(ctx, all)
			errs = append(errs, err)
			g.pruneVMLayers(e.Images())
			g.pruneVMTemplates()
			if len(res.Removed) > 0 {
				fmt.Println("Deleted Images:")
				for _, r := range res.Removed {
					for _, u := range r.Untagged {
						fmt.Printf("untagged: %s\n", familiar(u))
					}
					for _, d := range r.Deleted {
						fmt.Printf("deleted: %s\n", d)
					}
				}
			}
			errs = append(errs, e.ReleaseNetnsDir(ctx))
			fmt.Printf("Total reclaimed space: %s\n", humanBytes(reclaimed+res.Reclaimed))
			return errors.Join(errs...)
		}),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every image no container uses, not only dangling ones (and named volumes with --volumes)")
	cmd.Flags().BoolVar(&volumes, "volumes", false, "prune volumes too")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt (berth never does)")
	return cmd
}
