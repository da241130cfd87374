//go:build linux

package engine

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/runtime"
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
	if len(psArgs) == 0 {
		psArgs = DefaultTopArgs
	}
	titles, rows, err := rc.Top(ctx, psArgs)
	if err != nil {
		return nil, nil, fmt.Errorf("container %s: %w", c.Name, err)
	}
	e.emit(c, "top", nil)
	return titles, rows, nil
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
	// OOMKills and Detail are for the CRI's metrics: the processes the
	// OOM killer killed, and the driver's finer sample (nil when the
	// driver takes none; on the host's network it has no interfaces).
	OOMKills uint64
	Detail   *runtime.StatsDetail
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
	rc, err := e.driver.Load(ctx, c.ID)
	if err != nil {
		return s, nil
	}
	if st := rc.Status(); st != runtime.StatusRunning && st != runtime.StatusPaused {
		return s, nil
	}
	// The host's counter first: the container's CPU time is then never
	// ahead of it.
	s.SystemCPU, s.OnlineCPUs = systemCPU()
	cs, err := rc.Stats(ctx)
	if err != nil {
		if rc.Status() == runtime.StatusStopped {
			return &StatsSample{ID: c.ID, Name: c.Name, Read: s.Read}, nil
		}
		return nil, fmt.Errorf("container %s: statistics: %w", c.Name, err)
	}
	s.Running = true
	s.CPUTotal = cs.CPUTotal
	s.MemUsage, s.MemLimit = cs.MemUsage, cs.MemLimit
	s.Pids = cs.Pids
	s.BlockRead, s.BlockWrite = cs.BlockRead, cs.BlockWrite
	if c.HostConfig.NetworkMode != "host" {
		s.NetRx, s.NetTx = cs.NetRx, cs.NetTx
	}
	s.OOMKills = cs.OOMKills
	if d := cs.Detail; d != nil {
		if c.HostConfig.NetworkMode == "host" {
			d.Interfaces = nil
		}
		s.Detail = d
	}
	return s, nil
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
