//go:build linux

package cli

import (
	"context"
	"errors"
	"os"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newAttachCommand(g *globalOptions) *cobra.Command {
	var noStdin bool
	var ao attachFlags
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach our stdin, stdout and stderr to a running container",
		Long: `Attach our stdin, stdout and stderr to a running container: its output
from now on comes here, and what we read goes to its stdin if it was
created with -i. berth attach exits with the container's exit code.

With a tty (-t at create) our terminal is raw, and the detach keys
(default ctrl-p,ctrl-q) leave the container running: berth attach then
says "read escape sequence" and exits 1, as docker's does. Without a tty,
the signals berth receives go to the container (--sig-proxy), and
ctrl-c with --sig-proxy=false ends the attach only.

Several clients may attach to a container at once (up to 16, the CLI
that started it included): each sees its output, and what each types
goes to its stdin.`,
		Args: cobra.ExactArgs(1),
		// Not withEngine: its context would catch ^C, which with
		// --sig-proxy=false must end berth.
		RunE: func(_ *cobra.Command, args []string) error {
			keys, err := ao.keys()
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			e, err := g.openEngine(false)
			if err != nil {
				return err
			}
			defer e.Close()
			ctx := context.Background()
			c, err := e.Get(ctx, args[0])
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			if c.Config.Tty && !noStdin && !term.IsTerminal(int(os.Stdin.Fd())) {
				return &ExitError{Code: 1, Err: errNotATTY}
			}
			o := attachOptions{stdin: !noStdin, keys: keys, sigProxy: ao.sigProxy, late: true}
			a := &engine.Attach{Stdout: os.Stdout, Stderr: os.Stderr, DetachKeys: keys}
			if o.stdin {
				a.Stdin = os.Stdin
			}
			sigs, stopSignals, err := notifySignals(c, o)
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			defer stopSignals()
			restore := func() {}
			if o.stdin {
				restore = rawTerminal(c)
			}
			defer restore()
			st, err := e.Attach(ctx, c.ID, a)
			if err != nil {
				restore()
				return &ExitError{Code: 1, Err: err}
			}
			err = followAttached(ctx, e, c, st, sigs, restore)
			if errors.Is(err, engine.ErrDetached) {
				// docker attach: the detach is an error (its message,
				// exit 1); run and start -a return 0.
				return &ExitError{Code: 1, Err: err}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "do not attach our stdin")
	ao.register(cmd, true)
	return cmd
}
