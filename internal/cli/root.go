// Package cli holds berth's command lines: the engine CLI (berth ...) and
// the runc-compatible runtime CLI (berth runtime ..., or berth-runtime).
// It only parses flags and prints; the work is done in internal/runtime and
// (later) internal/engine.
package cli

import (
	"errors"
	"fmt"
	"os"
	"syscall"

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
	addContainerCommands(root, &g)
	refuseUnknownSubcommands(root)
	return root
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
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(os.Stderr, "berth: %v\n", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(os.Stderr, "berth: %v\n", err)
	return 125
}
