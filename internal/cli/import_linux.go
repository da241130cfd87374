//go:build linux

package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
)

func newImportCommand(g *globalOptions) *cobra.Command {
	var o engine.ImportOptions
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] FILE|- [REPOSITORY[:TAG]]",
		Short: "Make an image of a root file system tarball (plain, gzip or zstd)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			if strings.Contains(args[0], "://") {
				return fmt.Errorf("import %s: berth does not fetch URLs: download the tarball, then import the file or pipe it in (-)", args[0])
			}
			r, closeInput, err := openInput(args[0], "import: pipe a tarball to stdin, or name its file")
			if err != nil {
				return err
			}
			defer closeInput()
			if len(args) == 2 {
				o.Reference = args[1]
			}
			id, err := e.Import(ctx, r, o)
			if err != nil {
				return err
			}
			fmt.Println(id)
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&o.Changes, "change", "c", nil, "apply a Dockerfile instruction: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME, STOPSIGNAL")
	fl.StringVarP(&o.Message, "message", "m", "", "the image's history comment")
	fl.StringVar(&o.Platform, "platform", "", "the image's os/arch[/variant] (default: the host's)")
	return cmd
}
