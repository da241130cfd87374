//go:build linux

package engine

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
	"time"

	"github.com/berth-dev/berth/internal/runtime/linux"
	"github.com/berth-dev/berth/internal/runtime/linux/cgroup"
)

// DefaultTopArgs are the ps options of `berth top` without any: docker's
// columns (UID PID PPID C STIME TTY TIME CMD), with numeric uids (the
// host's user names would be wrong for a container's users).
var DefaultTopArgs = []string{"-o", "uid,pid,ppid,c,stime", "-o", "tty=TTY", "-o", "time,cmd"}

// Top lists a running (or paused) container's processes as the host's ps
// prints them with psArgs (none: DefaultTopArgs): the titles and one row
// per process, its last column holding the rest of the line (the command
// line with its spaces). Only the processes in the container's cgroup are
// listed, as the PID column names them.
func (e *Engine) Top(ctx context.Context, ref string, psArgs []string) ([]string, [][]string, error) {
	c, rc, err := e.runningRuntime(ctx, ref, true)
	if err != nil {
		return nil, nil, err
	}
	pids, err := rc.Processes()
	if err != nil {
		return nil, nil, fmt.Errorf("container %s: list its processes: %w", c.Name, err)
	}
	if len(psArgs) == 0 {
		psArgs = DefaultTopArgs
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
			return nil, nil, fmt.Errorf("ps %s: %v: %s: %w", strings.Join(psArgs, " "), err, strings.TrimSpace(stderr.String()), ErrInvalid)
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
		return nil, nil, fmt.Errorf("ps output has no PID column (keep pid in -o): %w", ErrInvalid)
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

// StatsSample is one reading of a container's resource use. CPU
// percentages need two (CPUPercent).
type StatsSample struct {
	ID, Name string
	// Running is false for a container without a process; everything
	// else is then zero.
	Running bool
	Read    time.Time
	// CPUTotal is the CPU time the container's processes used (ns);
	// SystemCPU the host's CPU time on all CPUs (ns, /proc/stat), as
	// docker samples it; OnlineCPUs the number of CPUs.
	CPUTotal, SystemCPU uint64
	OnlineCPUs          int
	// MemUsage excludes the inactive page cache (as docker's CLI);
	// MemLimit is the cgroup's limit, at most the host's memory.
	MemUsage, MemLimit    uint64
	Pids                  uint64
	NetRx, NetTx          uint64
	BlockRead, BlockWrite uint64
}

// CPUPercent is docker's CPU %: the container's share of the host's CPU
// time between two samples, times the number of CPUs (100% is one CPU).
func CPUPercent(prev, cur *StatsSample) float64 {
	if prev == nil || cur == nil || !prev.Running || !cur.Running || cur.CPUTotal < prev.CPUTotal || cur.SystemCPU <= prev.SystemCPU {
		return 0
	}
	cpu := float64(cur.CPUTotal - prev.CPUTotal)
	sys := float64(cur.SystemCPU - prev.SystemCPU)
	n := cur.OnlineCPUs
	if n < 1 {
		n = 1
	}
	return cpu / sys * float64(n) * 100
}

// MemPercent is the usage as a share of the limit.
func (s *StatsSample) MemPercent() float64 {
	if s.MemLimit == 0 {
		return 0
	}
	return float64(s.MemUsage) / float64(s.MemLimit) * 100
}

// Stats samples a container's cgroup statistics. A container that does
// not run gives a zero sample (Running false), not an error.
func (e *Engine) Stats(ctx context.Context, ref string) (*StatsSample, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	s := &StatsSample{ID: c.ID, Name: c.Name, Read: time.Now()}
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
		return s, nil
	}
	rc, err := linux.Load(e.runtimeRoot(), c.ID)
	if err != nil {
		return s, nil
	}
	if st := rc.Status(); st != linux.StatusRunning && st != linux.StatusPaused {
		return s, nil
	}
	// The host's counter first: the container's CPU time is then never
	// ahead of it.
	s.SystemCPU, s.OnlineCPUs = systemCPU()
	cs, err := rc.Stats()
	if err != nil {
		if rc.Status() == linux.StatusStopped {
			return &StatsSample{ID: c.ID, Name: c.Name, Read: s.Read}, nil
		}
		return nil, fmt.Errorf("container %s: statistics: %w", c.Name, err)
	}
	s.Running = true
	s.CPUTotal = cs.CPU.Usage.Total
	s.MemUsage, s.MemLimit = memoryUsage(cs)
	s.Pids = cs.Pids.Current
	if s.Pids == 0 {
		if pids, err := rc.Processes(); err == nil {
			s.Pids = uint64(len(pids))
		}
	}
	for _, b := range cs.Blkio.IoServiceBytesRecursive {
		switch strings.ToLower(b.Op) {
		case "read":
			s.BlockRead += b.Value
		case "write":
			s.BlockWrite += b.Value
		}
	}
	if c.HostConfig.NetworkMode != "host" {
		s.NetRx, s.NetTx = netDev(rc.Pid)
	}
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

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc/stat.
const clockTicks = 100

// systemCPU reads the host's total CPU time (ns) and the number of CPUs
// from /proc/stat, as docker does: user, nice, system, idle, iowait, irq
// and softirq of the "cpu" line.
func systemCPU() (uint64, int) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 1
	}
	var total uint64
	n := 0
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "cpu" && len(f) >= 8:
			for _, v := range f[1:8] {
				x, _ := strconv.ParseUint(v, 10, 64)
				total += x
			}
		case strings.HasPrefix(f[0], "cpu"):
			n++
		}
	}
	if n == 0 {
		n = 1
	}
	return total * (1e9 / clockTicks), n
}

// netDev sums the bytes received and sent on the interfaces of pid's
// network namespace, loopback excluded.
func netDev(pid int) (rx, tx uint64) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/dev")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		name, rest, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		r, err1 := strconv.ParseUint(f[0], 10, 64)
		t, err2 := strconv.ParseUint(f[8], 10, 64)
		if err1 == nil && err2 == nil {
			rx += r
			tx += t
		}
	}
	return rx, tx
}
