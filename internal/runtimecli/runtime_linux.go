package runtimecli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/log"
	"github.com/berth-dev/berth/internal/runtime/linux"
	"github.com/berth-dev/berth/internal/runtime/linux/seccomp"
	"github.com/berth-dev/berth/internal/runtime/oci"
)

// DefaultRuntimeRoot is where `berth runtime` keeps container state, like
// runc's /run/runc.
const DefaultRuntimeRoot = "/run/berth/runtime"

// exitError carries an exit status through cobra without printing.
type exitError struct{ code int }

func (e exitError) Error() string { return "exit status " + strconv.Itoa(e.code) }

type runtimeGlobals struct {
	root          string
	log           string
	logFormat     string
	debug         bool
	systemdCgroup bool
	rootless      string
	criu          string
	logger        *slog.Logger
	logFile       *os.File
}

// NewCommand builds the runc-compatible command tree. name is
// "runtime" under berth, or the program name when invoked as berth-runtime.
func NewCommand(name string) *cobra.Command {
	g := &runtimeGlobals{}
	cmd := &cobra.Command{
		Use:           name,
		Short:         "The OCI runtime, with runc's command line",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			// Containers sharing our pid namespace must not reach this
			// binary through /proc/<pid>/exe.
			unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
			if err := g.setupLog(); err != nil {
				return err
			}
			cmd.SetContext(log.With(cmd.Context(), g.logger))
			return nil
		},
	}
	f := cmd.PersistentFlags()
	f.StringVar(&g.root, "root", DefaultRuntimeRoot, "directory for container state (tmpfs recommended)")
	f.StringVar(&g.log, "log", "", "write errors and debug logs to this file (default stderr)")
	f.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	f.BoolVar(&g.debug, "debug", false, "log debug messages")
	f.BoolVar(&g.systemdCgroup, "systemd-cgroup", false, "manage cgroups through systemd (not supported: berth uses cgroupfs)")
	f.StringVar(&g.rootless, "rootless", "auto", "ignored: berth detects rootless mode itself")
	f.StringVar(&g.criu, "criu", "criu", "ignored: checkpoint/restore is not supported")
	// runc's --version layout: engines (Podman) read the first line.
	cmd.SetVersionTemplate(fmt.Sprintf("%s version {{.Version}}\nspec: %s\ngo: %s\nlibseccomp: %s\n",
		strings.Fields(name)[0]+map[bool]string{true: "-runtime", false: ""}[name == "berth runtime"], specs.Version, runtime.Version(), seccomp.LibraryVersion()))
	cmd.AddCommand(
		g.createCmd(), g.startCmd(), g.runCmd(), g.stateCmd(), g.killCmd(), g.deleteCmd(),
		g.listCmd(), g.execCmd(), g.psCmd(), g.pauseCmd(), g.resumeCmd(), g.eventsCmd(),
		g.updateCmd(), specCmd(), featuresCmd(),
	)
	return cmd
}

func (g *runtimeGlobals) setupLog() error {
	var w io.Writer = os.Stderr
	if g.log != "" {
		f, err := os.OpenFile(g.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return fmt.Errorf("open --log %s: %w", g.log, err)
		}
		g.logFile = f
		w = f
	}
	level := slog.LevelWarn
	if g.debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		// runc's log lines use lower-case levels; containerd reads "msg".
		if a.Key == slog.LevelKey {
			a.Value = slog.StringValue(strings.ToLower(a.Value.String()))
		}
		return a
	}}
	switch g.logFormat {
	case "json":
		g.logger = slog.New(slog.NewJSONHandler(w, opts))
	case "text":
		g.logger = slog.New(slog.NewTextHandler(w, opts))
	default:
		return fmt.Errorf("--log-format %q: use text or json", g.logFormat)
	}
	return nil
}

// Execute runs the runtime CLI and returns the process exit code.
func Execute(cmd *cobra.Command, args []string) int {
	cmd.SetArgs(args)
	err := cmd.Execute()
	// A create or run whose flags or arguments failed before it ran still
	// had its init forked ahead, maybe with cgroup leaves made for it.
	linux.DiscardUnusedPrefork()
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", cmd.Name(), err)
	return 1
}

// logErr also records the error in --log, where engines look for it.
func (g *runtimeGlobals) fail(err error) error {
	if err == nil {
		return nil
	}
	var ee exitError
	if errors.As(err, &ee) {
		return err
	}
	if g.logger != nil && g.log != "" {
		g.logger.Error(err.Error())
	}
	return err
}

// locked runs fn on a container with its lock held.
func (g *runtimeGlobals) locked(id string, fn func(*linux.Container) error) error {
	c, unlock, err := linux.LoadLocked(g.root, id)
	if err != nil {
		return g.fail(err)
	}
	defer unlock()
	return g.fail(fn(c))
}

func exactID(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%q requires exactly one argument, the container id", cmd.CommandPath())
	}
	return nil
}

type createFlags struct {
	bundle, consoleSocket, pidFile string
	noPivot, noNewKeyring          bool
	preserveFDs                    int
}

func (cf *createFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&cf.bundle, "bundle", "b", ".", "path to the bundle directory")
	f.StringVar(&cf.consoleSocket, "console-socket", "", "unix socket that receives the pty master when process.terminal is true")
	f.StringVar(&cf.pidFile, "pid-file", "", "write the init's pid to this file")
	f.BoolVar(&cf.noPivot, "no-pivot", false, "do not use pivot_root (for a rootfs on ramfs)")
	f.BoolVar(&cf.noNewKeyring, "no-new-keyring", false, "keep the caller's session keyring")
	f.IntVar(&cf.preserveFDs, "preserve-fds", 0, "pass this many fds (from 3) to the container")
}

func (cf *createFlags) options(g *runtimeGlobals) linux.CreateOptions {
	return linux.CreateOptions{
		Bundle: cf.bundle, PidFile: cf.pidFile, ConsoleSocket: cf.consoleSocket,
		NoPivot: cf.noPivot, NoNewKeyring: cf.noNewKeyring, PreserveFDs: cf.preserveFDs,
		SystemdCgroup: g.systemdCgroup,
	}
}

func (g *runtimeGlobals) createCmd() *cobra.Command {
	var cf createFlags
	cmd := &cobra.Command{
		Use:   "create [flags] <container-id>",
		Short: "Create a container; its process waits for start",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := linux.Create(cmd.Context(), g.root, args[0], cf.options(g))
			return g.fail(err)
		},
	}
	cf.add(cmd)
	return cmd
}

func (g *runtimeGlobals) runCmd() *cobra.Command {
	var cf createFlags
	var detach, keep bool
	cmd := &cobra.Command{
		Use:   "run [flags] <container-id>",
		Short: "Create and start a container, and wait for it unless --detach",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := linux.Run(cmd.Context(), g.root, args[0], linux.RunOptions{CreateOptions: cf.options(g), Detach: detach, Keep: keep})
			if err != nil {
				return g.fail(err)
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "do not wait for the container")
	cmd.Flags().BoolVar(&keep, "keep", false, "do not delete the container after it exits")
	return cmd
}

func (g *runtimeGlobals) startCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "start <container-id>",
		Short: "Start the process of a created container",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.locked(args[0], func(c *linux.Container) error { return c.Start(cmd.Context()) })
		},
	}
}

func (g *runtimeGlobals) stateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "state <container-id>",
		Short: "Print a container's state as JSON",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := linux.Load(g.root, args[0])
			if err != nil {
				return g.fail(err)
			}
			return printJSON(c.OCIState(), true)
		},
	}
}

func printJSON(v any, indent bool) error {
	enc := json.NewEncoder(os.Stdout)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

func (g *runtimeGlobals) killCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "kill [flags] <container-id> [signal]",
		Short: "Send a signal (default SIGTERM) to a container's init",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig := unix.SIGTERM
			if len(args) == 2 {
				n, err := oci.ParseSignal(args[1])
				if err != nil {
					return g.fail(err)
				}
				sig = unix.Signal(n)
			}
			c, err := linux.Load(g.root, args[0])
			if err != nil {
				return g.fail(err)
			}
			return g.fail(c.Signal(sig, all))
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "send the signal to every process of the container")
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func (g *runtimeGlobals) deleteCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete [flags] <container-id>",
		Short: "Delete a stopped container (any container with --force)",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, unlock, err := linux.LoadLocked(g.root, args[0])
			if err != nil {
				if force && linux.IsNotExist(err) {
					return nil
				}
				return g.fail(err)
			}
			defer unlock()
			return g.fail(c.Delete(cmd.Context(), force))
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill the container first if it is running")
	return cmd
}

func (g *runtimeGlobals) listCmd() *cobra.Command {
	var format string
	var quiet bool
	cmd := &cobra.Command{
		Use:     "list [flags]",
		Aliases: []string{"ls"},
		Short:   "List containers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := linux.List(g.root)
			if err != nil {
				return g.fail(err)
			}
			states := []*linux.OCIState{}
			for _, id := range ids {
				c, err := linux.Load(g.root, id)
				if err != nil {
					continue // deleted meanwhile
				}
				states = append(states, c.OCIState())
			}
			if quiet {
				for _, s := range states {
					fmt.Println(s.ID)
				}
				return nil
			}
			switch format {
			case "json":
				return printJSON(states, false)
			case "table":
				w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
				fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
				for _, s := range states {
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
				}
				return w.Flush()
			}
			return g.fail(fmt.Errorf("--format %q: use table or json", format))
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the ids")
	return cmd
}

func (g *runtimeGlobals) execCmd() *cobra.Command {
	var (
		processFile, consoleSocket, cwd, user, pidFile, processLabel, apparmor string
		env, caps                                                              []string
		additionalGids                                                         []int
		tty, detach, noNewPrivs, ignorePaused                                  bool
		preserveFDs                                                            int
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] <container-id> [command [args...]]",
		Short: "Run a new process in a running container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := linux.Load(g.root, args[0])
			if err != nil {
				return g.fail(err)
			}
			var p *specs.Process
			if processFile != "" {
				data, err := os.ReadFile(processFile)
				if err != nil {
					return g.fail(fmt.Errorf("--process: %w", err))
				}
				p = &specs.Process{}
				if err := json.Unmarshal(data, p); err != nil {
					return g.fail(fmt.Errorf("--process %s: %w", processFile, err))
				}
			} else {
				if len(args) < 2 {
					return g.fail(fmt.Errorf("exec needs a command or --process"))
				}
				base := *c.Spec.Process
				p = &base
				p.Args = args[1:]
				p.Terminal = tty
				p.Env = append(append([]string(nil), base.Env...), env...)
				if cwd != "" {
					p.Cwd = cwd
				}
				if user != "" {
					u, err := parseUser(user)
					if err != nil {
						return g.fail(err)
					}
					p.User.UID, p.User.GID = u.UID, u.GID
				}
				for _, gid := range additionalGids {
					p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(gid))
				}
				if noNewPrivs {
					p.NoNewPrivileges = true
				}
				if len(caps) > 0 && p.Capabilities != nil {
					cp := *p.Capabilities
					for _, cap := range caps {
						cp.Bounding = append(cp.Bounding, cap)
						cp.Effective = append(cp.Effective, cap)
						cp.Permitted = append(cp.Permitted, cap)
					}
					p.Capabilities = &cp
				}
			}
			_ = processLabel
			_ = apparmor
			_ = ignorePaused
			res, err := c.Exec(cmd.Context(), linux.ExecOptions{
				Process: p, PidFile: pidFile, ConsoleSocket: consoleSocket, PreserveFDs: preserveFDs,
				AttachTerminal: !detach,
			})
			if err != nil {
				return g.fail(err)
			}
			if detach {
				return nil
			}
			if res.Master != nil {
				restore := linux.ProxyTerminal(res.Master)
				defer restore()
			}
			code, err := linux.WaitExit(res.Pid)
			if err != nil {
				return g.fail(err)
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&processFile, "process", "p", "", "path to a process.json")
	f.StringVar(&consoleSocket, "console-socket", "", "unix socket that receives the pty master")
	f.StringVar(&cwd, "cwd", "", "working directory in the container")
	f.StringArrayVarP(&env, "env", "e", nil, "set an environment variable")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a pseudo-TTY")
	f.StringVarP(&user, "user", "u", "", "uid[:gid]")
	f.IntSliceVarP(&additionalGids, "additional-gids", "g", nil, "additional gids")
	f.StringArrayVarP(&caps, "cap", "c", nil, "add a capability")
	f.BoolVarP(&detach, "detach", "d", false, "do not wait for the process")
	f.StringVar(&pidFile, "pid-file", "", "write the process's pid to this file")
	f.StringVar(&processLabel, "process-label", "", "ignored: SELinux is not supported")
	f.StringVar(&apparmor, "apparmor", "", "ignored: AppArmor is not supported")
	f.BoolVar(&noNewPrivs, "no-new-privs", false, "set no_new_privs")
	f.BoolVar(&ignorePaused, "ignore-paused", false, "accepted for runc compatibility")
	f.IntVar(&preserveFDs, "preserve-fds", 0, "pass this many fds (from 3) to the process")
	f.SetInterspersed(false)
	return cmd
}

func parseUser(s string) (specs.User, error) {
	var u specs.User
	uidStr, gidStr, hasGid := strings.Cut(s, ":")
	uid, err := strconv.ParseUint(uidStr, 10, 32)
	if err != nil {
		return u, fmt.Errorf("--user %q: use numeric uid[:gid]", s)
	}
	u.UID = uint32(uid)
	if hasGid {
		gid, err := strconv.ParseUint(gidStr, 10, 32)
		if err != nil {
			return u, fmt.Errorf("--user %q: use numeric uid[:gid]", s)
		}
		u.GID = uint32(gid)
	}
	return u, nil
}

func (g *runtimeGlobals) psCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ps [flags] <container-id> [ps options]",
		Short: "List a container's processes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := linux.Load(g.root, args[0])
			if err != nil {
				return g.fail(err)
			}
			pids, err := c.Processes()
			if err != nil {
				return g.fail(err)
			}
			if format == "json" {
				if pids == nil {
					pids = []int{}
				}
				return printJSON(pids, false)
			}
			if format != "table" {
				return g.fail(fmt.Errorf("--format %q: use table or json", format))
			}
			psArgs := args[1:]
			if len(psArgs) == 0 {
				psArgs = []string{"-ef"}
			}
			out, err := exec.Command("ps", psArgs...).Output()
			if err != nil {
				return g.fail(fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err))
			}
			return printPsFiltered(string(out), pids)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func printPsFiltered(out string, pids []int) error {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 {
		return nil
	}
	col := -1
	for i, h := range strings.Fields(lines[0]) {
		if h == "PID" {
			col = i
		}
	}
	if col < 0 {
		return fmt.Errorf("ps output has no PID column")
	}
	in := map[int]bool{}
	for _, p := range pids {
		in[p] = true
	}
	fmt.Println(lines[0])
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) <= col {
			continue
		}
		if p, err := strconv.Atoi(f[col]); err == nil && in[p] {
			fmt.Println(l)
		}
	}
	return nil
}

func (g *runtimeGlobals) pauseCmd() *cobra.Command {
	return &cobra.Command{
		Use: "pause <container-id>", Short: "Freeze every process of a container", Args: exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.locked(args[0], func(c *linux.Container) error { return c.Pause() })
		},
	}
}

func (g *runtimeGlobals) resumeCmd() *cobra.Command {
	return &cobra.Command{
		Use: "resume <container-id>", Short: "Thaw a paused container", Args: exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.locked(args[0], func(c *linux.Container) error { return c.Resume() })
		},
	}
}

func (g *runtimeGlobals) eventsCmd() *cobra.Command {
	var stats bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use: "events [flags] <container-id>", Short: "Print container statistics as JSON events", Args: exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return g.fail(fmt.Errorf("--interval must be positive"))
			}
			enc := json.NewEncoder(os.Stdout)
			for {
				c, err := linux.Load(g.root, args[0])
				if err != nil {
					return g.fail(err)
				}
				if c.Status() == linux.StatusStopped {
					return g.fail(fmt.Errorf("container %s is stopped", args[0]))
				}
				s, err := c.Stats()
				if err != nil {
					return g.fail(err)
				}
				if err := enc.Encode(map[string]any{"type": "stats", "id": c.ID, "data": s}); err != nil {
					return err
				}
				if stats {
					return nil
				}
				select {
				case <-time.After(interval):
				case <-cmd.Context().Done():
					return nil
				}
			}
		},
	}
	cmd.Flags().BoolVar(&stats, "stats", false, "print statistics once and exit")
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "interval between statistics")
	return cmd
}

func specCmd() *cobra.Command {
	var bundle string
	var rootless bool
	cmd := &cobra.Command{
		Use: "spec [flags]", Short: "Write a default config.json into the bundle", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := bundle + "/config.json"
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s already exists: remove it first", path)
			}
			s := oci.DefaultSpec(rootless, uint32(os.Getuid()), uint32(os.Getgid()))
			data, err := json.MarshalIndent(s, "", "\t")
			if err != nil {
				return err
			}
			return os.WriteFile(path, append(data, '\n'), 0o666)
		},
	}
	cmd.Flags().StringVarP(&bundle, "bundle", "b", ".", "bundle directory")
	cmd.Flags().BoolVar(&rootless, "rootless", false, "write a config for a rootless container")
	return cmd
}
