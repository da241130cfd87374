package linux

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/linux/cgroup"
)

// The detailed sample (runtime.StatsDetail): the cgroup's statistics as
// cadvisor breaks them down, whichever layout the host has (v1 memory.stat
// names its hierarchical counters total_*, v2 has other names), the
// counters of the container's processes from /proc, and the limits in its
// spec.

// statsDetail fills a detailed sample from the cgroup's statistics, the
// processes in the cgroup and the init's network namespace.
func (dc *container) statsDetail(cs *cgroup.Stats, pids []int, ifaces []runtime.InterfaceStats) *runtime.StatsDetail {
	d := &runtime.StatsDetail{
		CPUUser:             cs.CPU.Usage.User,
		CPUSystem:           cs.CPU.Usage.Kernel,
		CPUPeriods:          cs.CPU.Throttling.Periods,
		CPUThrottledPeriods: cs.CPU.Throttling.ThrottledPeriods,
		CPUThrottledTime:    cs.CPU.Throttling.ThrottledTime,
		Interfaces:          ifaces,
		ThreadsMax:          cs.Pids.Limit,
		OpenFilesSoftLimit:  openFilesSoftLimit(dc.c.Pid),
	}
	memoryDetail(d, &cs.Memory)
	d.Devices = blockDevices(&cs.Blkio)
	for size, h := range cs.Hugetlb {
		d.HugePages = append(d.HugePages, runtime.HugePageStats{PageSize: size, Usage: h.Usage, MaxUsage: h.Max})
	}
	d.Pressure = pressure(cs)
	d.Processes = uint64(len(pids))
	for _, pid := range pids {
		threads, fds, sockets := processCounts(pid)
		d.Threads += threads
		d.FileDescriptors += fds
		d.Sockets += sockets
	}
	if dc.c.Spec != nil && dc.c.Spec.Linux != nil {
		d.Limits = resourceLimits(dc.c.Spec.Linux.Resources)
	}
	return d
}

// memoryDetail maps memory.stat: v1's total_* counters are the
// hierarchy's, its plain ones the cgroup's own; v2's are all hierarchical.
func memoryDetail(d *runtime.StatsDetail, m *cgroup.Memory) {
	raw := m.Raw
	first := func(keys ...string) uint64 {
		for _, k := range keys {
			if v, ok := raw[k]; ok {
				return v
			}
		}
		return 0
	}
	d.MemTotal = m.Usage.Usage
	d.MemMaxUsage = m.Usage.Max
	d.MemFailcnt = m.Usage.Failcnt
	d.MemCache = m.Cache
	d.MemRSS = first("total_rss", "anon", "rss")
	d.MemMappedFile = first("total_mapped_file", "file_mapped", "mapped_file")
	switch {
	case hasKey(raw, "total_swap"), hasKey(raw, "swap"):
		d.MemSwap = first("total_swap", "swap")
	case m.Swap.Usage > m.Usage.Usage:
		// Swap is memory plus swap (see cgroup.Memory).
		d.MemSwap = m.Swap.Usage - m.Usage.Usage
	}
	switch {
	case m.Kernel.Usage > 0:
		d.MemKernel = m.Kernel.Usage
	case hasKey(raw, "kernel"):
		d.MemKernel = raw["kernel"]
	default:
		d.MemKernel = first("kernel_stack") + first("slab")
	}
	d.PageFaults = first("pgfault")
	d.MajorPageFaults = first("pgmajfault")
	d.HierarchyPageFaults = first("total_pgfault", "pgfault")
	d.HierarchyMajorPageFaults = first("total_pgmajfault", "pgmajfault")
}

func hasKey(m map[string]uint64, k string) bool {
	_, ok := m[k]
	return ok
}

// blockDevices sums the recursive byte and operation counters per device.
func blockDevices(b *cgroup.Blkio) []runtime.BlockDeviceStats {
	var out []runtime.BlockDeviceStats
	index := map[[2]uint64]int{}
	device := func(e cgroup.BlkioEntry) *runtime.BlockDeviceStats {
		k := [2]uint64{e.Major, e.Minor}
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, runtime.BlockDeviceStats{Major: e.Major, Minor: e.Minor, Name: blockDeviceName(e.Major, e.Minor)})
		}
		return &out[i]
	}
	for _, e := range b.IoServiceBytesRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			device(e).ReadBytes += e.Value
		case "write":
			device(e).WriteBytes += e.Value
		}
	}
	for _, e := range b.IoServicedRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			device(e).Reads += e.Value
		case "write":
			device(e).Writes += e.Value
		}
	}
	return out
}

// blockDeviceName is the device's node as its uevent names it.
func blockDeviceName(major, minor uint64) string {
	data, err := os.ReadFile("/sys/dev/block/" + strconv.FormatUint(major, 10) + ":" + strconv.FormatUint(minor, 10) + "/uevent")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(data), "\n") {
		if name, ok := strings.CutPrefix(l, "DEVNAME="); ok {
			return "/dev/" + name
		}
	}
	return ""
}

// pressure converts the cgroup's PSI totals (microseconds) to ns.
func pressure(cs *cgroup.Stats) *runtime.PressureStats {
	if cs.CPU.PSI == nil && cs.Memory.PSI == nil && cs.Blkio.PSI == nil {
		return nil
	}
	p := &runtime.PressureStats{}
	if s := cs.CPU.PSI; s != nil {
		p.CPUSome, p.CPUFull = s.Some.Total*1000, s.Full.Total*1000
	}
	if s := cs.Memory.PSI; s != nil {
		p.MemorySome, p.MemoryFull = s.Some.Total*1000, s.Full.Total*1000
	}
	if s := cs.Blkio.PSI; s != nil {
		p.IOSome, p.IOFull = s.Some.Total*1000, s.Full.Total*1000
	}
	return p
}

// processCounts reads one process's thread count and open descriptors
// (sockets among them); a process that is gone counts nothing.
func processCounts(pid int) (threads, fds, sockets uint64) {
	dir := "/proc/" + strconv.Itoa(pid)
	if data, err := os.ReadFile(dir + "/status"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "Threads:"); ok {
				threads, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				break
			}
		}
	}
	entries, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return threads, 0, 0
	}
	for _, e := range entries {
		fds++
		if target, err := os.Readlink(dir + "/fd/" + e.Name()); err == nil && strings.HasPrefix(target, "socket:") {
			sockets++
		}
	}
	return threads, fds, sockets
}

// openFilesSoftLimit is the process's soft RLIMIT_NOFILE from
// /proc/<pid>/limits (-1: unlimited; 0: unreadable).
func openFilesSoftLimit(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Max open files")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0
		}
		if fields[0] == "unlimited" {
			return -1
		}
		v, _ := strconv.ParseInt(fields[0], 10, 64)
		return v
	}
	return 0
}

// resourceLimits reads the limits of the spec (Update keeps it current);
// the OCI's -1 (unlimited) is zero.
func resourceLimits(r *specs.LinuxResources) runtime.ResourceLimits {
	var l runtime.ResourceLimits
	if r == nil {
		return l
	}
	if c := r.CPU; c != nil {
		if c.Shares != nil {
			l.CPUShares = *c.Shares
		}
		if c.Period != nil {
			l.CPUPeriod = *c.Period
		}
		if c.Quota != nil && *c.Quota > 0 {
			l.CPUQuota = *c.Quota
		}
	}
	positive := func(v *int64) uint64 {
		if v == nil || *v <= 0 {
			return 0
		}
		return uint64(*v)
	}
	if m := r.Memory; m != nil {
		l.MemLimit = positive(m.Limit)
		l.MemReservation = positive(m.Reservation)
		l.MemSwapLimit = positive(m.Swap)
	}
	return l
}

// netDevices reads the counters of the namespace's interfaces but
// loopback from /proc/<pid>/net/dev.
func netDevices(pid int) []runtime.InterfaceStats {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/dev")
	if err != nil {
		return nil
	}
	var out []runtime.InterfaceStats
	for _, l := range strings.Split(string(data), "\n") {
		name, rest, ok := strings.Cut(l, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			continue
		}
		var v [16]uint64
		valid := true
		for i := range v {
			var err error
			if v[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
				valid = false
				break
			}
		}
		if !valid {
			continue
		}
		// Receive: bytes packets errs drop fifo frame compressed
		// multicast; transmit: bytes packets errs drop ...
		out = append(out, runtime.InterfaceStats{Name: name,
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDropped: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDropped: v[11]})
	}
	return out
}
