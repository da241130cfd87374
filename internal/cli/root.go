// Package cli holds berth's engine command line (berth ...); the
// runc-compatible runtime CLI (berth runtime ..., or berth-runtime) is
// internal/runtimecli.
// It only parses flags and prints; the work is done in internal/runtime and
// (later) internal/engine.
package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/runtimecli"
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
	root.AddCommand(runtimecli.NewCommand("runtime"))
	root.AddCommand(newVersionCommand())
	addImageCommands(root, &g)
	addContainerCommands(root, &g)
	replaceSystemDf(root, &g)
	refuseUnknownSubcommands(root)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &ExitError{Code: 125, Err: err} })
	markArgErrors(root)
	for _, c := range []*cobra.Command{findCommand(root, "create"), findCommand(root, "container", "create"),
		findCommand(root, "start"), findCommand(root, "container", "start")} {
		exitsOne(c)
	}
	return root
}

// findCommand is the command at path under root, or nil.
func findCommand(root *cobra.Command, path ...string) *cobra.Command {
	c, rest, err := root.Find(path)
	if err != nil || len(rest) > 0 || c == root {
		return nil
	}
	return c
}

// exitsOne gives create's and start's own errors docker's status, 1:
// they share run's code, where a failure is 125, 126 or 127 (a
// container's own exit, which start -a passes on, carries no error).
func exitsOne(c *cobra.Command) {
	if c == nil || c.RunE == nil {
		return
	}
	run := c.RunE
	c.RunE = func(cmd *cobra.Command, args []string) error {
		err := run(cmd, args)
		var ee *ExitError
		if errors.As(err, &ee) && ee.Err != nil && ee.Code >= 125 {
			return &ExitError{Code: 1, Err: ee.Err}
		}
		return err
	}
}

// usageError is a command line with the wrong arguments (their number, or
// an unknown command): exit status 1, as docker's.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// markArgErrors makes each command's argument check fail with a
// usageError that names the command, as docker's does.
func markArgErrors(c *cobra.Command) {
	for _, sub := range c.Commands() {
		markArgErrors(sub)
	}
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageError{fmt.Errorf("%q: %w\nSee '%s --help'", cmd.CommandPath(), err, cmd.CommandPath())}
			}
			return nil
		}
	}
}

// exitCode is docker's exit status for err, returned by cmd: a flag
// error 125 (any command), run's own errors 125 (its 126, 127 and the
// container's code come as ExitError), anything else 1.
func exitCode(cmd *cobra.Command, err error) int {
	var ee *ExitError
	var ue usageError
	switch {
	case errors.As(err, &ee):
		return ee.Code
	case errors.As(err, &ue):
		return 1
	case cmd == nil || strings.HasPrefix(err.Error(), "unknown command"):
		return 1
	case cmd.Name() == "run" && cmd.HasParent() && (!cmd.Parent().HasParent() || cmd.Parent().Name() == "container"):
		return 125
	}
	return 1
}

// refuseUnknownSubcommands makes every command group (system, image,
// volume, ...) refuse an argument that names none of its commands; cobra
// would print the group's help and exit 0.
func refuseUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if c.HasParent() && c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for %q; see %q", args[0], cmd.CommandPath(), cmd.CommandPath()+" --help")
			}
			return nil
		}
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
}

// ExitError makes berth exit with Code (a container's exit code, or
// docker's 125/126/127) after printing Err, if any.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Main runs the engine CLI and returns the process's exit code.
func Main(args []string) int {
	// The files berth makes for containers (upper layers, volume
	// directories, /etc/hosts and resolv.conf) must be readable by a
	// container's non-root users whatever the caller's umask: a daemon
	// has 022, a daemonless CLI inherits the shell's (077 on hardened
	// hosts, where a non-root container could not even enter "/").
	// Private directories get their modes explicitly (see privdir).
	syscall.Umask(0o022)
	root := NewRootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(os.Stderr, "berth: %s\n", errorText(ee.Err))
		}
		return ee.Code
	}
	fmt.Fprintf(os.Stderr, "berth: %s\n", errorText(err))
	return exitCode(cmd, err)
}

// kindSuffixes are the generic kinds errors carry for errors.Is (the
// engine's, the network manager's), which the message before them
// already says: "volume pv is used by container(s) ...: volume is in
// use" is printed without its last part.
var kindSuffixes = []string{": invalid argument", ": invalid container state", ": invalid network configuration",
	": volume is in use", ": network is in use", ": container name is already in use"}

// errorText is err's message as berth prints it: each line without a
// kind its words already give.
func errorText(err error) string {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		for _, k := range kindSuffixes {
			l = strings.ReplaceAll(l, k+" (", " (")
			l = strings.TrimSuffix(l, k)
		}
		lines[i] = l
	}
	return strings.Join(lines, "\n")
}
