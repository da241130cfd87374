package linux

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/linux/cgroup"
)

// Driver is the Linux isolation behind the runtime.Driver seam: this
// package's runtime with its state under Root.
type Driver struct {
	Root string
}

// NewDriver returns the Linux driver keeping its state under root.
func NewDriver(root string) *Driver { return &Driver{Root: root} }

var _ runtime.Driver = (*Driver)(nil)

// Name is "linux".
func (d *Driver) Name() string { return "linux" }

// consoleTimeout bounds the wait for a new container's pty master.
const consoleTimeout = 10 * time.Second

// Create makes the container; with a terminal, its pty master comes over
// a socket pair (never a listening socket another user could reach).
func (d *Driver) Create(ctx context.Context, id string, o runtime.CreateOptions) (runtime.Container, error) {
	opts := CreateOptions{Bundle: o.Bundle, Stdio: Stdio(o.Stdio)}
	var masterc chan *os.File
	if o.Terminal {
		ours, theirs, err := ConsolePair()
		if err != nil {
			return nil, err
		}
		defer theirs.Close() // a second Close after the one below is harmless
		opts.Console = theirs
		masterc = make(chan *os.File, 1)
		go func() {
			defer ours.Close()
			m, _ := ReceiveConsole(ours)
			masterc <- m
		}()
	}
	c, err := Create(ctx, d.Root, id, opts)
	if opts.Console != nil {
		// Ours: the init has its own copy; without this one, a pty that
		// never comes reads as EOF instead of a wait.
		opts.Console.Close()
	}
	if err != nil {
		return nil, err
	}
	dc := &container{c: c}
	if masterc != nil {
		select {
		case dc.console = <-masterc:
		case <-time.After(consoleTimeout):
		}
		if dc.console == nil {
			c.Delete(ctx, true)
			return nil, fmt.Errorf("container %s: no pty from the runtime", id)
		}
	}
	return dc, nil
}

// Load finds a container.
func (d *Driver) Load(_ context.Context, id string) (runtime.Container, error) {
	c, err := Load(d.Root, id)
	if err != nil {
		return nil, err
	}
	return &container{c: c}, nil
}

// Delete removes a container's state, killing what still runs. A create
// that never finished (its creator was killed) is undone by the runtime's
// own sweep of abandoned directories.
func (d *Driver) Delete(ctx context.Context, id string) error {
	c, unlock, err := LoadLocked(d.Root, id)
	if err == nil {
		defer unlock()
		return c.Delete(ctx, true)
	}
	if _, serr := os.Stat(d.Root + "/" + id); serr == nil {
		List(d.Root)
	}
	return nil
}

// container adapts a Container to runtime.Container.
type container struct {
	c       *Container
	console *os.File
}

func (dc *container) ID() string                      { return dc.c.ID }
func (dc *container) Status() runtime.Status          { return runtime.Status(dc.c.Status()) }
func (dc *container) Pid() int                        { return dc.c.Pid }
func (dc *container) Console() *os.File               { return dc.console }
func (dc *container) Start(ctx context.Context) error { return dc.c.Start(ctx) }
func (dc *container) Pause() error                    { return dc.c.Pause() }
func (dc *container) Resume() error                   { return dc.c.Resume() }

func (dc *container) Signal(sig syscall.Signal, all bool) error { return dc.c.Signal(sig, all) }

func (dc *container) Update(_ context.Context, r *specs.LinuxResources) error { return dc.c.Update(r) }

func (dc *container) Process() *specs.Process {
	if dc.c.Spec == nil {
		return nil
	}
	return dc.c.Spec.Process
}

// OpenRoot opens the container's root as its processes see it, through
// its init's /proc entry, checked to be still the init's afterwards.
func (dc *container) OpenRoot() (*os.File, error) {
	if st := dc.c.Status(); st != StatusRunning && st != StatusPaused {
		return nil, fmt.Errorf("container %s is %s: %w", dc.c.ID, st, ErrInvalidStatus)
	}
	f, err := os.OpenFile("/proc/"+strconv.Itoa(dc.c.Pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("container %s: open its root: %w", dc.c.ID, err)
	}
	// The pid was the init's when it was opened: its start time is still
	// the init's.
	if dc.c.Status() == StatusStopped {
		f.Close()
		return nil, fmt.Errorf("container %s stopped: %w", dc.c.ID, ErrInvalidStatus)
	}
	return f, nil
}

// Exec starts a process; with a terminal, its pty master comes back.
func (dc *container) Exec(ctx context.Context, o runtime.ExecOptions) (runtime.Process, error) {
	res, err := dc.c.Exec(ctx, ExecOptions{Process: o.Process, Stdio: Stdio(o.Stdio), AttachTerminal: o.Process != nil && o.Process.Terminal})
	if err != nil {
		return nil, err
	}
	return &process{pid: res.Pid, console: res.Master}, nil
}

// process is an exec'd process, a child of the caller.
type process struct {
	pid     int
	console *os.File
}

func (p *process) Pid() int           { return p.pid }
func (p *process) Console() *os.File  { return p.console }
func (p *process) Wait() (int, error) { return WaitExit(p.pid) }
func (p *process) Signal(sig syscall.Signal) error {
	if p.pid <= 0 {
		return fmt.Errorf("exec: no process to signal: %w", runtime.ErrInvalidStatus)
	}
	return syscall.Kill(p.pid, sig)
}

// Stats reads the container's cgroup, its processes and its network
// namespace's counters.
func (dc *container) Stats(context.Context) (*runtime.Stats, error) {
	cs, err := dc.c.Stats()
	if err != nil {
		return nil, err
	}
	s := &runtime.Stats{CPUTotal: cs.CPU.Usage.Total, Pids: cs.Pids.Current}
	s.MemUsage, s.MemLimit = memoryUsage(cs)
	pids, _ := dc.c.Processes()
	if s.Pids == 0 {
		s.Pids = uint64(len(pids))
	}
	for _, b := range cs.Blkio.IoServiceBytesRecursive {
		switch strings.ToLower(b.Op) {
		case "read":
			s.BlockRead += b.Value
		case "write":
			s.BlockWrite += b.Value
		}
	}
	ifaces := netDevices(dc.c.Pid)
	for _, i := range ifaces {
		s.NetRx += i.RxBytes
		s.NetTx += i.TxBytes
	}
	s.OOMKills, _ = dc.c.OOMKills()
	s.Detail = dc.statsDetail(cs, pids, ifaces)
	return s, nil
}

// memoryUsage is docker's: the usage less the inactive file cache (v1
// total_inactive_file, v2 inactive_file), and the limit capped at the
// host's memory (an unlimited cgroup reports a huge number, or none).
func memoryUsage(cs *cgroup.Stats) (uint64, uint64) {
	usage := cs.Memory.Usage.Usage
	for _, k := range []string{"total_inactive_file", "inactive_file"} {
		if v, ok := cs.Memory.Raw[k]; ok {
			if v < usage {
				usage -= v
			}
			break
		}
	}
	limit := cs.Memory.Usage.Limit
	if host := hostMemory(); host > 0 && (limit == 0 || limit > host) {
		limit = host
	}
	return usage, limit
}

// hostMemory is MemTotal of /proc/meminfo in bytes.
func hostMemory() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// Top runs the host's ps over the processes in the container's cgroup.
func (dc *container) Top(ctx context.Context, psArgs []string) ([]string, [][]string, error) {
	pids, err := dc.c.Processes()
	if err != nil {
		return nil, nil, fmt.Errorf("list its processes: %w", err)
	}
	var out []byte
	if len(pids) > 0 {
		list := make([]string, len(pids))
		for i, p := range pids {
			list[i] = strconv.Itoa(p)
		}
		// Selecting the pids makes ps read only their /proc entries;
		// options that do not combine with -p are retried without it.
		out, err = exec.CommandContext(ctx, "ps", append(slices.Clone(psArgs), "-p", strings.Join(list, ","))...).Output()
	}
	if len(pids) == 0 || err != nil {
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, "ps", psArgs...)
		cmd.Stderr = &stderr
		if out, err = cmd.Output(); err != nil {
			return nil, nil, fmt.Errorf("ps %s: %v: %s: %w", strings.Join(psArgs, " "), err, strings.TrimSpace(stderr.String()), runtime.ErrInvalidArgument)
		}
	}
	return parsePs(out, pids)
}

// parsePs keeps the lines of ps output whose PID column is one of pids.
func parsePs(out []byte, pids []int) ([]string, [][]string, error) {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) == 0 || strings.TrimSpace(lines[0]) == "" {
		return nil, nil, fmt.Errorf("ps printed nothing")
	}
	titles := strings.Fields(lines[0])
	col := slices.Index(titles, "PID")
	if col < 0 {
		return nil, nil, fmt.Errorf("ps output has no PID column (keep pid in -o): %w", runtime.ErrInvalidArgument)
	}
	in := make(map[int]bool, len(pids))
	for _, p := range pids {
		in[p] = true
	}
	procs := [][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) <= col {
			continue
		}
		p, err := strconv.Atoi(f[col])
		if err != nil || !in[p] {
			continue
		}
		if len(f) > len(titles) {
			f = append(f[:len(titles)-1], strings.Join(f[len(titles)-1:], " "))
		}
		procs = append(procs, f)
	}
	return titles, procs, nil
}
