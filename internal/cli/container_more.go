//go:build linux

package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/sigrelay"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// addContainerMoreCommands adds exec, top, stats, cp and export, at the
// top level and under `berth container`.
func addContainerMoreCommands(root, containerCmd *cobra.Command, g *globalOptions) {
	for _, parent := range []*cobra.Command{root, containerCmd} {
		parent.AddCommand(newExecCommand(g), newTopCommand(g), newStatsCommand(g), newCpCommand(g), newExportCommand(g), newDiffCommand(g), newUpdateCommand(g), newCommitCommand(g))
	}
}

// envExecDetached marks the process `exec -d` starts in a new session to
// start the container's process from, so that it does not belong to the
// caller's terminal.
const envExecDetached = "_BERTH_EXEC_DETACHED"

func newExecCommand(g *globalOptions) *cobra.Command {
	var (
		interactive, tty, detach, privileged bool
		env, envFiles                        []string
		user, workdir, detachKeys            string
	)
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Args:  cobra.MinimumNArgs(2),
	}
	run := g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
		if detach && tty {
			return errors.New("exec -d with -t is not supported: a detached process has nobody to hold its terminal; drop -t")
		}
		if tty && interactive && !term.IsTerminal(int(os.Stdin.Fd())) {
			return &ExitError{Code: 1, Err: errNotATTY}
		}
		o := engine.ExecOptions{Cmd: args[1:], User: user, WorkingDir: workdir, Tty: tty, Privileged: privileged}
		for _, file := range envFiles {
			lines, err := readEnvFile(file)
			if err != nil {
				return err
			}
			o.Env = append(o.Env, lines...)
		}
		for _, kv := range env {
			if !strings.Contains(kv, "=") {
				// docker: a bare KEY takes this environment's value, or
				// is left out.
				if v, ok := os.LookupEnv(kv); ok {
					o.Env = append(o.Env, kv+"="+v)
				}
				continue
			}
			o.Env = append(o.Env, kv)
		}
		if detach {
			_, err := e.Exec(ctx, args[0], o)
			return execFailed(err)
		}
		return execAttached(ctx, e, args[0], o, interactive)
	})
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if detach && !tty && os.Getenv(envExecDetached) == "" {
			return execDetached()
		}
		return run(c, args)
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&interactive, "interactive", "i", false, "keep stdin open: pass ours to the process")
	fl.BoolVarP(&tty, "tty", "t", false, "allocate a pseudo-terminal")
	fl.BoolVarP(&detach, "detach", "d", false, "run the command in the background")
	fl.StringArrayVarP(&env, "env", "e", nil, "set an environment variable (KEY=VALUE, or KEY to take it from this environment)")
	fl.StringArrayVar(&envFiles, "env-file", nil, "read environment variables from a file")
	fl.StringVarP(&user, "user", "u", "", "user[:group], by name or number (default: the container's)")
	fl.StringVarP(&workdir, "workdir", "w", "", "working directory inside the container (default: the container's)")
	fl.BoolVar(&privileged, "privileged", false, "give the process every capability berth holds, whatever the container's")
	fl.StringVar(&detachKeys, "detach-keys", "", "accepted for docker compatibility; berth exec has no detach keys (run, start -a and attach do)")
	return cmd
}

// execFailed gives a failed exec docker's exit code.
func execFailed(err error) error {
	if err == nil {
		return nil
	}
	var xe *engine.ExecError
	if errors.As(err, &xe) {
		return &ExitError{Code: xe.Code, Err: err}
	}
	return err
}

// execDetached runs this very command again in a new session (so that
// the container's process belongs to no terminal of ours), with no stdio
// but stderr, and returns once it has started the process.
func execDetached() error {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), envExecDetached+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			// It printed why.
			return &ExitError{Code: ee.ExitCode()}
		}
		return err
	}
	return nil
}

// execSignals are passed on to an attached exec's process.
var execSignals = []unix.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGALRM, unix.SIGCONT}

// execAttached runs the process with our stdio (or, with a tty, proxies
// the pty with our terminal in raw mode and its size passed on), passes
// signals on, and exits with its code.
func execAttached(ctx context.Context, e *engine.Engine, ref string, o engine.ExecOptions, interactive bool) error {
	if !o.Tty {
		o.Stdout, o.Stderr = os.Stdout, os.Stderr
		if interactive {
			o.Stdin = os.Stdin
		}
	}
	relay, err := sigrelay.Start(execSignals...)
	if err != nil {
		return execFailed(err)
	}
	defer relay.Stop()
	p, err := e.Exec(ctx, ref, o)
	if err != nil {
		return execFailed(err)
	}
	var restore func()
	if p.Master != nil {
		defer p.Master.Close()
		restore = proxyExecTerminal(p.Master, interactive)
	}
	// Without a tty the process is in our process group: what the
	// terminal sends (^C, ^\) reached it already.
	fromTerminal := false
	if !o.Tty && term.IsTerminal(int(os.Stdin.Fd())) {
		if pg, err := unix.IoctlGetInt(int(os.Stdin.Fd()), unix.TIOCGPGRP); err == nil && pg == unix.Getpgrp() {
			fromTerminal = true
		}
	}
	go func() {
		for sig := range relay.C {
			if fromTerminal && (sig == unix.SIGINT || sig == unix.SIGQUIT) {
				continue
			}
			p.Signal(sig)
		}
	}()
	code, err := p.Wait()
	if restore != nil {
		restore()
	}
	if err != nil {
		return &ExitError{Code: 125, Err: err}
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

// proxyExecTerminal copies between our stdio and the pty master (our
// stdin only with -i, our terminal then in raw mode) and keeps the pty's
// size in step with our terminal's. The returned function waits for the
// output to drain and restores the terminal.
func proxyExecTerminal(master *os.File, stdin bool) func() {
	in := int(os.Stdin.Fd())
	var restoreTerm func()
	if stdin && term.IsTerminal(in) {
		if old, err := term.MakeRaw(in); err == nil {
			restoreTerm = func() { term.Restore(in, old) }
		}
	}
	mfd := int(master.Fd())
	resize := func() {
		for _, fd := range []int{in, int(os.Stdout.Fd()), int(os.Stderr.Fd())} {
			if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil {
				unix.IoctlSetWinsize(mfd, unix.TIOCSWINSZ, ws)
				return
			}
		}
	}
	resize()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	go func() {
		for range winch {
			resize()
		}
	}()
	if stdin {
		go io.Copy(master, os.Stdin)
	}
	copied := make(chan struct{})
	go func() {
		// Ends with EIO once the process and its children closed the pty.
		io.Copy(os.Stdout, master)
		close(copied)
	}()
	return func() {
		select {
		case <-copied:
		case <-time.After(2 * time.Second):
		}
		signal.Stop(winch)
		if restoreTerm != nil {
			restoreTerm()
		}
	}
}

func newTopCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Display the running processes of a container",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			titles, procs, err := e.Top(ctx, args[0], args[1:])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 20, 1, 3, ' ', 0)
			fmt.Fprintln(tw, strings.Join(titles, "\t"))
			for _, p := range procs {
				fmt.Fprintln(tw, strings.Join(p, "\t"))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// statsRow is one container's line of `berth stats`, docker's fields
// (its JSON keys are docker's, in docker's order).
type statsRow struct {
	BlockIO   string `json:"BlockIO"`
	CPUPerc   string `json:"CPUPerc"`
	Container string `json:"Container"`
	ID        string `json:"ID"`
	MemPerc   string `json:"MemPerc"`
	MemUsage  string `json:"MemUsage"`
	Name      string `json:"Name"`
	NetIO     string `json:"NetIO"`
	PIDs      string `json:"PIDs"`
}

var statsHeader = statsRow{BlockIO: "BLOCK I/O", CPUPerc: "CPU %", Container: "CONTAINER", ID: "CONTAINER ID",
	MemPerc: "MEM %", MemUsage: "MEM USAGE / LIMIT", Name: "NAME", NetIO: "NET I/O", PIDs: "PIDS"}

const defaultStatsFormat = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

// bytesSize is docker's binary size (go-units BytesSize): 1.5MiB.
func bytesSize(n uint64) string {
	return unitSize(float64(n), 1024, []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}, 4)
}

// decimalSize is docker's decimal size with 3 digits (HumanSizeWithPrecision): 1.2kB.
func decimalSize(n uint64) string {
	return unitSize(float64(n), 1000, []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}, 3)
}

func unitSize(v, base float64, units []string, prec int) string {
	i := 0
	for v >= base && i < len(units)-1 {
		v /= base
		i++
	}
	return fmt.Sprintf("%.*g%s", prec, v, units[i])
}

func makeStatsRow(display string, s *engine.StatsSample, cpu float64, noTrunc bool) statsRow {
	id := s.ID
	if !noTrunc {
		id = engine.ShortID(id)
	}
	return statsRow{
		Container: display, ID: id, Name: s.Name,
		CPUPerc:  fmt.Sprintf("%.2f%%", cpu),
		MemUsage: bytesSize(s.MemUsage) + " / " + bytesSize(s.MemLimit),
		MemPerc:  fmt.Sprintf("%.2f%%", s.MemPercent()),
		NetIO:    decimalSize(s.NetRx) + " / " + decimalSize(s.NetTx),
		BlockIO:  decimalSize(s.BlockRead) + " / " + decimalSize(s.BlockWrite),
		PIDs:     fmt.Sprint(s.Pids),
	}
}

// renderStats formats one frame: a table (default), JSON lines, or a Go
// template ("table " in front: aligned, with a header).
func renderStats(rows []statsRow, format string) ([]byte, error) {
	var buf bytes.Buffer
	if format == "json" {
		enc := json.NewEncoder(&buf)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return nil, err
			}
		}
		return buf.Bytes(), nil
	}
	if format == "" || format == "table" {
		format = defaultStatsFormat
	}
	table := strings.HasPrefix(format, "table")
	tf := strings.TrimSpace(strings.TrimPrefix(format, "table"))
	// docker's templates take \t and \n spelled out.
	tf = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(tf)
	t, err := parseFormat("stats", tf)
	if err != nil {
		return nil, err
	}
	var w io.Writer = &buf
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(&buf, 10, 1, 3, ' ', 0)
		w = tw
		if err := t.Execute(w, statsHeader); err != nil {
			return nil, err
		}
		fmt.Fprintln(w)
	}
	for _, r := range rows {
		if err := t.Execute(w, r); err != nil {
			return nil, err
		}
		fmt.Fprintln(w)
	}
	if tw != nil {
		tw.Flush()
	}
	return buf.Bytes(), nil
}

func newStatsCommand(g *globalOptions) *cobra.Command {
	var noStream, all, noTrunc bool
	var format string
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of containers' resource usage (default: the running ones)",
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			if _, err := renderStats(nil, format); err != nil {
				return err
			}
			type target struct{ ref, display string }
			named := make([]target, 0, len(args))
			for _, a := range args {
				c, err := e.Get(ctx, a)
				if err != nil {
					return err
				}
				named = append(named, target{ref: c.ID, display: a})
			}
			targets := func() ([]target, error) {
				if len(args) > 0 {
					return named, nil
				}
				list, err := e.List(ctx)
				if err != nil {
					return nil, err
				}
				var out []target
				for _, c := range list {
					if all || c.State.Status == engine.StatusRunning || c.State.Status == engine.StatusPaused {
						out = append(out, target{ref: c.ID, display: engine.ShortID(c.ID)})
					}
				}
				return out, nil
			}
			prev := map[string]*engine.StatsSample{}
			sample := func() ([]statsRow, error) {
				ts, err := targets()
				if err != nil {
					return nil, err
				}
				rows := []statsRow{}
				seen := map[string]bool{}
				for _, t := range ts {
					s, err := e.Stats(ctx, t.ref)
					if err != nil {
						if len(args) > 0 {
							return nil, err
						}
						continue // removed meanwhile
					}
					seen[s.ID] = true
					rows = append(rows, makeStatsRow(t.display, s, engine.CPUPercent(prev[s.ID], s), noTrunc))
					prev[s.ID] = s
				}
				for id := range prev {
					if !seen[id] {
						delete(prev, id)
					}
				}
				return rows, nil
			}
			if _, err := sample(); err != nil {
				return err
			}
			clear := !noStream && term.IsTerminal(int(os.Stdout.Fd()))
			out := bufio.NewWriter(os.Stdout)
			wait := 500 * time.Millisecond
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
				rows, err := sample()
				if err != nil {
					return err
				}
				frame, err := renderStats(rows, format)
				if err != nil {
					return err
				}
				if clear {
					out.WriteString("\033[2J\033[H")
				}
				out.Write(frame)
				if err := out.Flush(); err != nil {
					return err
				}
				if noStream {
					return nil
				}
				wait = time.Second
			}
		}),
	}
	fl := cmd.Flags()
	fl.BoolVar(&noStream, "no-stream", false, "print one sample and exit")
	fl.BoolVarP(&all, "all", "a", false, "show all containers (default: running ones)")
	fl.BoolVar(&noTrunc, "no-trunc", false, "do not truncate IDs")
	fl.StringVar(&format, "format", "table", "table, json, or a Go template (\"table \" in front for columns)")
	return cmd
}

// splitCpArg splits CONTAINER:PATH as docker does: an absolute path, or
// one whose part before ':' starts with '.', is local.
func splitCpArg(arg string) (container, p string) {
	if filepath.IsAbs(arg) || arg == "-" {
		return "", arg
	}
	c, rest, ok := strings.Cut(arg, ":")
	if !ok || strings.HasPrefix(c, ".") || c == "" {
		return "", arg
	}
	return c, rest
}

func newCpCommand(g *globalOptions) *cobra.Command {
	var o engine.CopyOptions
	var quiet bool
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n  berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files and directories between a container and the host",
		Long: `Copy files and directories between a container and the host, with docker's rules:
a directory is copied into an existing directory (its contents only with SRC/.),
a file over an existing file, and a missing DEST is created. "-" is a tar stream
on stdin (extracted into the directory DEST) or stdout. Copies into a container
belong to its root and copies out of it to the caller, unless -a.`,
		Args: cobra.ExactArgs(2),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			sc, sp := splitCpArg(args[0])
			dc, dp := splitCpArg(args[1])
			var n int64
			var err error
			switch {
			case sc == "" && dc == "":
				return errors.New("cp: name a container on one side (CONTAINER:PATH); copying between local paths is not supported")
			case sc != "" && dc != "":
				return errors.New("cp: copying between containers is not supported")
			case sc != "":
				if sp == "-" {
					return errors.New("cp: a container path cannot be -")
				}
				out := bufio.NewWriterSize(os.Stdout, 256<<10)
				o.Warn = func(msg string) { fmt.Fprintf(os.Stderr, "WARNING: %s\n", msg) }
				n, err = e.CopyFromContainer(ctx, sc, sp, dp, o, out)
				if ferr := out.Flush(); err == nil {
					err = ferr
				}
			default:
				if dp == "-" {
					return errors.New("cp: a container path cannot be -")
				}
				n, err = e.CopyToContainer(ctx, dc, sp, dp, o, bufio.NewReaderSize(os.Stdin, 256<<10))
			}
			if err != nil {
				return err
			}
			if !quiet && args[1] != "-" && term.IsTerminal(int(os.Stderr.Fd())) {
				fmt.Fprintf(os.Stderr, "Successfully copied %s to %s\n", decimalSize(uint64(n)), args[1])
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.BoolVarP(&o.Archive, "archive", "a", false, "keep the uid and gid of the source; out of a container also device nodes, setuid/setgid bits and file capabilities")
	fl.BoolVarP(&o.FollowLink, "follow-link", "L", false, "follow a symlink named as SRC_PATH")
	fl.BoolVarP(&quiet, "quiet", "q", false, "do not print the size copied")
	return cmd
}

func newExportCommand(g *globalOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] CONTAINER",
		Short: "Write a container's root filesystem as a tar archive",
		Args:  cobra.ExactArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			if output == "" || output == "-" {
				if term.IsTerminal(int(os.Stdout.Fd())) {
					return errors.New("cowardly refusing to write a tar archive to a terminal: use -o FILE or redirect")
				}
				out := bufio.NewWriterSize(os.Stdout, 256<<10)
				if err := e.Export(ctx, args[0], out); err != nil {
					return err
				}
				return out.Flush()
			}
			// A temporary file renamed into place: a failed export leaves
			// no partial archive under the name asked for.
			f, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".*")
			if err != nil {
				return err
			}
			defer os.Remove(f.Name())
			defer f.Close()
			out := bufio.NewWriterSize(f, 256<<10)
			if err := e.Export(ctx, args[0], out); err != nil {
				return err
			}
			if err := out.Flush(); err != nil {
				return err
			}
			if err := f.Chmod(0o644); err != nil {
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			return os.Rename(f.Name(), output)
		}),
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to a file instead of stdout")
	return cmd
}

func newDiffCommand(g *globalOptions) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "diff [OPTIONS] CONTAINER",
		Short: "List the files a container added (A), changed (C) or deleted (D)",
		Args:  cobra.ExactArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			changes, err := e.Diff(ctx, args[0])
			if err != nil {
				return err
			}
			if format == "json" {
				if changes == nil {
					changes = []engine.Change{}
				}
				return writeJSON(changes, "")
			}
			w := bufio.NewWriter(os.Stdout)
			for _, c := range changes {
				fmt.Fprintf(w, "%s %s\n", c.KindLetter(), c.Path)
			}
			return w.Flush()
		}),
	}
	cmd.Flags().StringVar(&format, "format", "", "json: docker's API form (Kind 0 changed, 1 added, 2 deleted)")
	return cmd
}

func newUpdateCommand(g *globalOptions) *cobra.Command {
	var memory, restart, memSwap, memReservation, cpusetCpus, cpusetMems string
	var cpus float64
	var pids, cpuShares, cpuPeriod, cpuQuota int64
	var blkioWeight uint16
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Change containers' resource limits (at once when they run) or restart policy",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var o engine.UpdateOptions
			fl := cmd.Flags()
			for _, f := range []struct {
				flag, v string
				dst     **int64
			}{{"memory", memory, &o.Memory}, {"memory-swap", memSwap, &o.MemorySwap}, {"memory-reservation", memReservation, &o.MemoryReservation}} {
				if !fl.Changed(f.flag) {
					continue
				}
				n := int64(-1) // --memory-swap's unlimited
				if f.flag != "memory-swap" || f.v != "-1" {
					var err error
					if n, err = parseSize(f.v); err != nil {
						return fmt.Errorf("--%s: %w", f.flag, err)
					}
				}
				*f.dst = &n
			}
			for _, f := range []struct {
				flag string
				v    *int64
				dst  **int64
			}{{"pids-limit", &pids, &o.PidsLimit}, {"cpu-shares", &cpuShares, &o.CPUShares}, {"cpu-period", &cpuPeriod, &o.CPUPeriod}, {"cpu-quota", &cpuQuota, &o.CPUQuota}} {
				if fl.Changed(f.flag) {
					*f.dst = f.v
				}
			}
			if fl.Changed("cpus") {
				o.CPUs = &cpus
			}
			if fl.Changed("cpuset-cpus") {
				o.CpusetCpus = &cpusetCpus
			}
			if fl.Changed("cpuset-mems") {
				o.CpusetMems = &cpusetMems
			}
			if fl.Changed("blkio-weight") {
				o.BlkioWeight = &blkioWeight
			}
			if fl.Changed("restart") {
				p, err := engine.ParseRestartPolicy(restart)
				if err != nil {
					return err
				}
				o.Restart = &p
			}
			if o == (engine.UpdateOptions{}) {
				return errors.New("update: give at least one setting to change (--memory, --cpus, --cpu-shares, --pids-limit, --restart, ...)")
			}
			return g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
				return eachContainer(args, func(a string) error {
					warnings, err := e.UpdateWithWarnings(ctx, a, o)
					for _, w := range warnings {
						fmt.Fprintln(os.Stderr, "WARNING:", w)
					}
					return err
				})
			})(cmd, args)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&memory, "memory", "m", "", "memory limit (e.g. 64m, 1g)")
	fl.StringVar(&memSwap, "memory-swap", "", "memory plus swap limit (-1: unlimited swap)")
	fl.StringVar(&memReservation, "memory-reservation", "", "memory soft limit")
	fl.Float64Var(&cpus, "cpus", 0, "number of CPUs")
	fl.Int64VarP(&cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fl.Int64Var(&cpuPeriod, "cpu-period", 0, "CPU CFS period (microseconds)")
	fl.Int64Var(&cpuQuota, "cpu-quota", 0, "CPU CFS quota (microseconds per period)")
	fl.StringVar(&cpusetCpus, "cpuset-cpus", "", "CPUs the container may use (0-3, 0,1)")
	fl.StringVar(&cpusetMems, "cpuset-mems", "", "memory nodes the container may use (0-3, 0,1)")
	fl.Uint16Var(&blkioWeight, "blkio-weight", 0, "block I/O weight (10 to 1000)")
	fl.Int64Var(&pids, "pids-limit", 0, "pids limit (-1 unlimited)")
	fl.StringVar(&restart, "restart", "", "restart policy: no, on-failure[:N], always, unless-stopped")
	return cmd
}

func newCommitCommand(g *globalOptions) *cobra.Command {
	var o engine.CommitOptions
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Make an image of a container's changes",
		Args:  cobra.RangeArgs(1, 2),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			if len(args) == 2 {
				o.Reference = args[1]
			}
			id, err := e.Commit(ctx, args[0], o)
			if err != nil {
				return err
			}
			fmt.Println(id)
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.Author, "author", "a", "", "author (e.g. \"Jane <jane@example.com>\")")
	fl.StringArrayVarP(&o.Changes, "change", "c", nil, "apply a Dockerfile instruction: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME, STOPSIGNAL")
	fl.StringVarP(&o.Message, "message", "m", "", "commit message")
	fl.BoolVarP(&o.Pause, "pause", "p", true, "pause the container while its files are read")
	return cmd
}
