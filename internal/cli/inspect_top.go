//go:build linux

package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/image"
	"github.com/spf13/cobra"
)

func newContainerInspectCommand(g *globalOptions) *cobra.Command {
	var format string
	var size bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Show details of containers (JSON)",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return inspectEach(args, format, func(a string) (any, error) {
				c, err := e.Get(ctx, a)
				if err != nil {
					return nil, err
				}
				return containerInspect(ctx, e, c, size), nil
			})
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "a Go template over each object")
	cmd.Flags().BoolVarP(&size, "size", "s", false, "show the sizes: the writable layer (SizeRw) and with the image (SizeRootFs)")
	return cmd
}

// containerInspect is c's inspect object, with its sizes if asked.
func containerInspect(ctx context.Context, e *engine.Engine, c *engine.Container, size bool) any {
	o := inspectContainer(ctx, e, c)
	if size {
		rw, root := e.ContainerSizes(ctx, c)
		o.SizeRw, o.SizeRootFs = &rw, &root
	}
	return o
}

// newTopInspectCommand is `berth inspect`: a container, else an image,
// a volume, a network (docker's order), or only the --type asked for.
func newTopInspectCommand(g *globalOptions) *cobra.Command {
	var format, typ string
	var size bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Show details of containers, images, volumes or networks (JSON)",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			switch typ {
			case "", "container", "image", "volume", "network":
			default:
				return fmt.Errorf("%q is not a valid value for --type", typ)
			}
			var imgs *image.Service // opened at the first image asked for
			return inspectEach(args, format, func(a string) (any, error) {
				o, err := inspectAny(ctx, g, e, &imgs, typ, a, size)
				if err != nil && typ == "" {
					return nil, fmt.Errorf("no such object: %s", a)
				}
				return o, err
			})
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "a Go template over each object")
	cmd.Flags().StringVar(&typ, "type", "", "container, image, volume or network")
	cmd.Flags().BoolVarP(&size, "size", "s", false, "a container's sizes too (SizeRw, SizeRootFs)")
	return cmd
}

// inspectAny finds a of kind typ (any kind: "") and gives its inspect
// object; a kind's own "not found" error when typ names it.
func inspectAny(ctx context.Context, g *globalOptions, e *engine.Engine, imgs **image.Service, typ, a string, size bool) (any, error) {
	var last error
	if typ == "" || typ == "container" {
		c, err := e.Get(ctx, a)
		if err == nil {
			return containerInspect(ctx, e, c, size), nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		last = err
	}
	if typ == "" || typ == "image" {
		if *imgs == nil {
			s, err := g.images()
			if err != nil {
				return nil, err
			}
			*imgs = s
		}
		o, err := imageInspect(ctx, *imgs, a)
		if err == nil {
			return o, nil
		}
		last = err
	}
	if typ == "" || typ == "volume" {
		v, err := e.GetVolume(ctx, a)
		if err == nil {
			return inspectVolume(v), nil
		}
		last = err
	}
	if typ == "" || typ == "network" {
		m, err := e.Networks()
		if err != nil {
			return nil, err
		}
		n, err := m.Get(ctx, a)
		if err == nil {
			return inspectNetwork(ctx, e, n), nil
		}
		last = err
	}
	return nil, last
}
