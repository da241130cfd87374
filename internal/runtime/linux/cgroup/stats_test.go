//go:build linux

package cgroup

import (
	"encoding/json"
	"testing"

	"github.com/opencontainers/cgroups"
)

func TestStatsJSONMatchesRuncEvents(t *testing.T) {
	e := func(op string, v uint64) []cgroups.BlkioStatEntry {
		return []cgroups.BlkioStatEntry{{Major: 8, Minor: 0, Op: op, Value: v}}
	}
	in := cgroups.NewStats()
	in.CpuStats.CpuUsage = cgroups.CpuUsage{
		TotalUsage: 1, PercpuUsage: []uint64{2, 3}, PercpuUsageInKernelmode: []uint64{4},
		PercpuUsageInUsermode: []uint64{5}, UsageInKernelmode: 6, UsageInUsermode: 7,
	}
	in.CpuStats.ThrottlingData = cgroups.ThrottlingData{Periods: 8, ThrottledPeriods: 9, ThrottledTime: 10}
	in.CpuStats.PSI = &cgroups.PSIStats{Some: cgroups.PSIData{Avg10: 1.5, Total: 11}}
	in.CPUSetStats = cgroups.CPUSetStats{
		CPUs: []uint16{0, 1}, CPUExclusive: 1, Mems: []uint16{0}, MemHardwall: 2, MemExclusive: 3,
		MemoryMigrate: 4, MemorySpreadPage: 5, MemorySpreadSlab: 6, MemoryPressure: 7,
		SchedLoadBalance: 8, SchedRelaxDomainLevel: -1,
	}
	in.MemoryStats.Cache = 100
	in.MemoryStats.Usage = cgroups.MemoryData{Usage: 150, MaxUsage: 180, Failcnt: 3, Limit: 200}
	in.MemoryStats.SwapUsage = cgroups.MemoryData{Usage: 160, MaxUsage: 190, Limit: 400}
	in.MemoryStats.SwapOnlyUsage = cgroups.MemoryData{Usage: 999} // not part of runc events
	in.MemoryStats.KernelUsage = cgroups.MemoryData{Usage: 10}
	in.MemoryStats.Stats["rss"] = 42
	in.PidsStats = cgroups.PidsStats{Current: 3, Limit: 8}
	in.BlkioStats = cgroups.BlkioStats{
		IoServiceBytesRecursive: e("Read", 4096),
		IoServicedRecursive:     e("Write", 2),
		IoQueuedRecursive:       e("Sync", 3),
		IoServiceTimeRecursive:  e("Async", 4),
		IoWaitTimeRecursive:     e("Total", 5),
		IoMergedRecursive:       e("Discard", 6),
		IoTimeRecursive:         []cgroups.BlkioStatEntry{{Major: 8, Minor: 16, Value: 7}},
		SectorsRecursive:        []cgroups.BlkioStatEntry{{Major: 8, Value: 8}},
	}
	in.HugetlbStats["2MB"] = cgroups.HugetlbStats{Usage: 2 << 20, MaxUsage: 4 << 20, Failcnt: 1}

	got, err := json.Marshal(convertStats(in))
	if err != nil {
		t.Fatal(err)
	}
	// Field names of runc's types.Stats (the "data" of `runc events
	// --stats`), as containerd's go-runc decodes them.
	const want = `{` +
		`"cpu":{"usage":{"total":1,"percpu":[2,3],"percpu_kernel":[4],"percpu_user":[5],"kernel":6,"user":7},` +
		`"throttling":{"periods":8,"throttledPeriods":9,"throttledTime":10},` +
		`"psi":{"some":{"avg10":1.5,"avg60":0,"avg300":0,"total":11},"full":{"avg10":0,"avg60":0,"avg300":0,"total":0}}},` +
		`"cpuset":{"cpus":[0,1],"cpu_exclusive":1,"mems":[0],"mem_hardwall":2,"mem_exclusive":3,"memory_migrate":4,` +
		`"memory_spread_page":5,"memory_spread_slab":6,"memory_pressure":7,"sched_load_balance":8,"sched_relax_domain_level":-1},` +
		`"memory":{"cache":100,"usage":{"limit":200,"usage":150,"max":180,"failcnt":3},` +
		`"swap":{"limit":400,"usage":160,"max":190,"failcnt":0},` +
		`"kernel":{"limit":0,"usage":10,"failcnt":0},"kernelTCP":{"limit":0,"failcnt":0},"raw":{"rss":42}},` +
		`"pids":{"current":3,"limit":8},` +
		`"blkio":{"ioServiceBytesRecursive":[{"major":8,"op":"Read","value":4096}],` +
		`"ioServicedRecursive":[{"major":8,"op":"Write","value":2}],` +
		`"ioQueueRecursive":[{"major":8,"op":"Sync","value":3}],` +
		`"ioServiceTimeRecursive":[{"major":8,"op":"Async","value":4}],` +
		`"ioWaitTimeRecursive":[{"major":8,"op":"Total","value":5}],` +
		`"ioMergedRecursive":[{"major":8,"op":"Discard","value":6}],` +
		`"ioTimeRecursive":[{"major":8,"minor":16,"value":7}],` +
		`"sectorsRecursive":[{"major":8,"value":8}]},` +
		`"hugetlb":{"2MB":{"usage":2097152,"max":4194304,"failcnt":1}}}`
	if string(got) != want {
		t.Errorf("stats JSON\n got: %s\nwant: %s", got, want)
	}
}

func TestStatsJSONEmpty(t *testing.T) {
	got, err := json.Marshal(convertStats(nil))
	if err != nil {
		t.Fatal(err)
	}
	// runc always emits the top-level objects; hugetlb is {} not null.
	const want = `{"cpu":{"usage":{"kernel":0,"user":0},"throttling":{}},` +
		`"cpuset":{"cpu_exclusive":0,"mem_hardwall":0,"mem_exclusive":0,"memory_migrate":0,"memory_spread_page":0,` +
		`"memory_spread_slab":0,"memory_pressure":0,"sched_load_balance":0,"sched_relax_domain_level":0},` +
		`"memory":{"usage":{"limit":0,"failcnt":0},"swap":{"limit":0,"failcnt":0},"kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":0,"failcnt":0}},` +
		`"pids":{},"blkio":{},"hugetlb":{}}`
	if string(got) != want {
		t.Errorf("empty stats JSON\n got: %s\nwant: %s", got, want)
	}
}

func TestConvertStatsCopies(t *testing.T) {
	in := cgroups.NewStats()
	in.CpuStats.CpuUsage.PercpuUsage = []uint64{1}
	in.MemoryStats.Stats["rss"] = 1
	out := convertStats(in)
	in.CpuStats.CpuUsage.PercpuUsage[0] = 2
	in.MemoryStats.Stats["rss"] = 2
	if out.CPU.Usage.Percpu[0] != 1 || out.Memory.Raw["rss"] != 1 {
		t.Error("convertStats result aliases the library's stats")
	}
}
