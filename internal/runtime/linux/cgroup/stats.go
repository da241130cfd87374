//go:build linux

package cgroup

import (
	"maps"
	"slices"

	"github.com/opencontainers/cgroups"
)

// Stats is a container's cgroup statistics. Its JSON encoding is the "data"
// object of runc's `runc events --stats` (runc's types.Stats), which
// containerd's runc shim decodes; field names and omitempty choices follow
// it exactly. runc's "intel_rdt" and "network_interfaces" members are not
// produced.
type Stats struct {
	CPU     CPU                `json:"cpu"`
	CPUSet  CPUSet             `json:"cpuset"`
	Memory  Memory             `json:"memory"`
	Pids    Pids               `json:"pids"`
	Blkio   Blkio              `json:"blkio"`
	Hugetlb map[string]Hugetlb `json:"hugetlb"`
}

// PSIData is one line of a cgroup v2 *.pressure file.
type PSIData struct {
	Avg10  float64 `json:"avg10"`
	Avg60  float64 `json:"avg60"`
	Avg300 float64 `json:"avg300"`
	Total  uint64  `json:"total"`
}

// PSIStats is a cgroup v2 *.pressure file.
type PSIStats struct {
	Some PSIData `json:"some,omitempty"`
	Full PSIData `json:"full,omitempty"`
}

// Hugetlb is the usage of one huge page size.
type Hugetlb struct {
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// BlkioEntry is one per-device, per-operation block I/O counter.
type BlkioEntry struct {
	Major uint64 `json:"major,omitempty"`
	Minor uint64 `json:"minor,omitempty"`
	Op    string `json:"op,omitempty"`
	Value uint64 `json:"value,omitempty"`
}

// Blkio is the block I/O statistics (blkio on v1, io on v2).
type Blkio struct {
	IoServiceBytesRecursive []BlkioEntry `json:"ioServiceBytesRecursive,omitempty"`
	IoServicedRecursive     []BlkioEntry `json:"ioServicedRecursive,omitempty"`
	IoQueuedRecursive       []BlkioEntry `json:"ioQueueRecursive,omitempty"`
	IoServiceTimeRecursive  []BlkioEntry `json:"ioServiceTimeRecursive,omitempty"`
	IoWaitTimeRecursive     []BlkioEntry `json:"ioWaitTimeRecursive,omitempty"`
	IoMergedRecursive       []BlkioEntry `json:"ioMergedRecursive,omitempty"`
	IoTimeRecursive         []BlkioEntry `json:"ioTimeRecursive,omitempty"`
	SectorsRecursive        []BlkioEntry `json:"sectorsRecursive,omitempty"`
	PSI                     *PSIStats    `json:"psi,omitempty"`
}

// Pids is the pids controller's statistics.
type Pids struct {
	Current uint64 `json:"current,omitempty"`
	Limit   uint64 `json:"limit,omitempty"`
}

// Throttling is CFS bandwidth throttling statistics.
type Throttling struct {
	Periods          uint64 `json:"periods,omitempty"`
	ThrottledPeriods uint64 `json:"throttledPeriods,omitempty"`
	ThrottledTime    uint64 `json:"throttledTime,omitempty"`
}

// CPUUsage is CPU time consumed, in nanoseconds.
type CPUUsage struct {
	Total        uint64   `json:"total,omitempty"`
	Percpu       []uint64 `json:"percpu,omitempty"`
	PercpuKernel []uint64 `json:"percpu_kernel,omitempty"`
	PercpuUser   []uint64 `json:"percpu_user,omitempty"`
	Kernel       uint64   `json:"kernel"`
	User         uint64   `json:"user"`
}

// CPU is the cpu/cpuacct statistics.
type CPU struct {
	Usage      CPUUsage   `json:"usage,omitempty"`
	Throttling Throttling `json:"throttling,omitempty"`
	PSI        *PSIStats  `json:"psi,omitempty"`
}

// CPUSet is the cpuset statistics (cgroup v1 only).
type CPUSet struct {
	CPUs                  []uint16 `json:"cpus,omitempty"`
	CPUExclusive          uint64   `json:"cpu_exclusive"`
	Mems                  []uint16 `json:"mems,omitempty"`
	MemHardwall           uint64   `json:"mem_hardwall"`
	MemExclusive          uint64   `json:"mem_exclusive"`
	MemoryMigrate         uint64   `json:"memory_migrate"`
	MemorySpreadPage      uint64   `json:"memory_spread_page"`
	MemorySpreadSlab      uint64   `json:"memory_spread_slab"`
	MemoryPressure        uint64   `json:"memory_pressure"`
	SchedLoadBalance      uint64   `json:"sched_load_balance"`
	SchedRelaxDomainLevel int64    `json:"sched_relax_domain_level"`
}

// MemoryEntry is one memory counter with its limit.
type MemoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// Memory is the memory controller's statistics. Swap is memory+swap, as in
// runc (on v2 the library synthesises it from memory.swap.current).
type Memory struct {
	Cache     uint64            `json:"cache,omitempty"`
	Usage     MemoryEntry       `json:"usage,omitempty"`
	Swap      MemoryEntry       `json:"swap,omitempty"`
	Kernel    MemoryEntry       `json:"kernel,omitempty"`
	KernelTCP MemoryEntry       `json:"kernelTCP,omitempty"`
	Raw       map[string]uint64 `json:"raw,omitempty"`
	PSI       *PSIStats         `json:"psi,omitempty"`
}

// convertStats maps the library's statistics onto the runc events layout.
func convertStats(in *cgroups.Stats) *Stats {
	if in == nil {
		in = cgroups.NewStats()
	}
	s := &Stats{}

	cu := in.CpuStats.CpuUsage
	s.CPU.Usage = CPUUsage{
		Total:        cu.TotalUsage,
		Percpu:       slices.Clone(cu.PercpuUsage),
		PercpuKernel: slices.Clone(cu.PercpuUsageInKernelmode),
		PercpuUser:   slices.Clone(cu.PercpuUsageInUsermode),
		Kernel:       cu.UsageInKernelmode,
		User:         cu.UsageInUsermode,
	}
	td := in.CpuStats.ThrottlingData
	s.CPU.Throttling = Throttling{Periods: td.Periods, ThrottledPeriods: td.ThrottledPeriods, ThrottledTime: td.ThrottledTime}
	s.CPU.PSI = convertPSI(in.CpuStats.PSI)

	cs := in.CPUSetStats
	s.CPUSet = CPUSet{
		CPUs:                  slices.Clone(cs.CPUs),
		CPUExclusive:          cs.CPUExclusive,
		Mems:                  slices.Clone(cs.Mems),
		MemHardwall:           cs.MemHardwall,
		MemExclusive:          cs.MemExclusive,
		MemoryMigrate:         cs.MemoryMigrate,
		MemorySpreadPage:      cs.MemorySpreadPage,
		MemorySpreadSlab:      cs.MemorySpreadSlab,
		MemoryPressure:        cs.MemoryPressure,
		SchedLoadBalance:      cs.SchedLoadBalance,
		SchedRelaxDomainLevel: cs.SchedRelaxDomainLevel,
	}

	ms := in.MemoryStats
	s.Memory = Memory{
		Cache:     ms.Cache,
		Usage:     memoryEntry(ms.Usage),
		Swap:      memoryEntry(ms.SwapUsage),
		Kernel:    memoryEntry(ms.KernelUsage),
		KernelTCP: memoryEntry(ms.KernelTCPUsage),
		Raw:       maps.Clone(ms.Stats),
		PSI:       convertPSI(ms.PSI),
	}

	s.Pids = Pids{Current: in.PidsStats.Current, Limit: in.PidsStats.Limit}

	bs := in.BlkioStats
	s.Blkio = Blkio{
		IoServiceBytesRecursive: blkioEntries(bs.IoServiceBytesRecursive),
		IoServicedRecursive:     blkioEntries(bs.IoServicedRecursive),
		IoQueuedRecursive:       blkioEntries(bs.IoQueuedRecursive),
		IoServiceTimeRecursive:  blkioEntries(bs.IoServiceTimeRecursive),
		IoWaitTimeRecursive:     blkioEntries(bs.IoWaitTimeRecursive),
		IoMergedRecursive:       blkioEntries(bs.IoMergedRecursive),
		IoTimeRecursive:         blkioEntries(bs.IoTimeRecursive),
		SectorsRecursive:        blkioEntries(bs.SectorsRecursive),
		PSI:                     convertPSI(bs.PSI),
	}

	// Always a (possibly empty) object, as runc emits it.
	s.Hugetlb = make(map[string]Hugetlb, len(in.HugetlbStats))
	for size, h := range in.HugetlbStats {
		s.Hugetlb[size] = Hugetlb{Usage: h.Usage, Max: h.MaxUsage, Failcnt: h.Failcnt}
	}
	return s
}

func memoryEntry(d cgroups.MemoryData) MemoryEntry {
	return MemoryEntry{Limit: d.Limit, Usage: d.Usage, Max: d.MaxUsage, Failcnt: d.Failcnt}
}

func blkioEntries(in []cgroups.BlkioStatEntry) []BlkioEntry {
	if len(in) == 0 {
		return nil
	}
	out := make([]BlkioEntry, len(in))
	for i, e := range in {
		out[i] = BlkioEntry{Major: e.Major, Minor: e.Minor, Op: e.Op, Value: e.Value}
	}
	return out
}

func convertPSI(p *cgroups.PSIStats) *PSIStats {
	if p == nil {
		return nil
	}
	return &PSIStats{
		Some: PSIData{Avg10: p.Some.Avg10, Avg60: p.Some.Avg60, Avg300: p.Some.Avg300, Total: p.Some.Total},
		Full: PSIData{Avg10: p.Full.Avg10, Avg60: p.Full.Avg60, Avg300: p.Full.Avg300, Total: p.Full.Total},
	}
}
