package linux

import (
	"net"
	"os"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/linux/cgroup"
)

func TestMemoryDetailLayouts(t *testing.T) {
	for _, c := range []struct {
		name                    string
		mem                     cgroup.Memory
		rss, mapped, swap, kern uint64
		faults, hierFaults      uint64
	}{
		{"v1", cgroup.Memory{Usage: cgroup.MemoryEntry{Usage: 100}, Swap: cgroup.MemoryEntry{Usage: 130}, Kernel: cgroup.MemoryEntry{Usage: 9},
			Raw: map[string]uint64{"rss": 1, "total_rss": 2, "mapped_file": 3, "total_mapped_file": 4, "total_swap": 30, "pgfault": 5, "total_pgfault": 6}},
			2, 4, 30, 9, 5, 6},
		{"v2", cgroup.Memory{Usage: cgroup.MemoryEntry{Usage: 100}, Swap: cgroup.MemoryEntry{Usage: 120},
			Raw: map[string]uint64{"anon": 7, "file_mapped": 8, "kernel": 11, "pgfault": 12}},
			7, 8, 20, 11, 12, 12},
		{"v2 before kernel's own key", cgroup.Memory{Usage: cgroup.MemoryEntry{Usage: 100}, Swap: cgroup.MemoryEntry{Usage: 100},
			Raw: map[string]uint64{"kernel_stack": 3, "slab": 4}},
			0, 0, 0, 7, 0, 0},
	} {
		d := &runtime.StatsDetail{}
		memoryDetail(d, &c.mem)
		if d.MemRSS != c.rss || d.MemMappedFile != c.mapped || d.MemSwap != c.swap || d.MemKernel != c.kern ||
			d.PageFaults != c.faults || d.HierarchyPageFaults != c.hierFaults || d.MemTotal != 100 {
			t.Errorf("%s: got rss %d mapped %d swap %d kernel %d faults %d/%d total %d", c.name,
				d.MemRSS, d.MemMappedFile, d.MemSwap, d.MemKernel, d.PageFaults, d.HierarchyPageFaults, d.MemTotal)
		}
	}
}

func TestResourceLimits(t *testing.T) {
	shares, period := uint64(512), uint64(50000)
	quota, limit, swap, none := int64(20000), int64(64<<20), int64(-1), int64(0)
	l := resourceLimits(&specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares, Period: &period, Quota: &quota},
		Memory: &specs.LinuxMemory{Limit: &limit, Swap: &swap, Reservation: &none}})
	if l.CPUShares != 512 || l.CPUPeriod != 50000 || l.CPUQuota != 20000 || l.MemLimit != 64<<20 || l.MemSwapLimit != 0 || l.MemReservation != 0 {
		t.Errorf("limits %+v", l)
	}
	if l := resourceLimits(nil); l.CPUShares != 0 || l.MemLimit != 0 {
		t.Errorf("no resources: %+v", l)
	}
}

// The /proc readers, on this process: it holds a socket and a file open.
func TestProcessCounts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	threads, fds, sockets := processCounts(os.Getpid())
	if threads < 1 || fds < 2 || sockets < 1 || sockets >= fds {
		t.Errorf("threads %d fds %d sockets %d", threads, fds, sockets)
	}
	if soft := openFilesSoftLimit(os.Getpid()); soft == 0 {
		t.Error("no RLIMIT_NOFILE soft limit read")
	}
	for _, i := range netDevices(os.Getpid()) {
		if i.Name == "lo" || i.Name == "" {
			t.Errorf("interface %q listed", i.Name)
		}
	}
	if threads, fds, _ := processCounts(1 << 30); threads != 0 || fds != 0 {
		t.Errorf("a process that is gone counts %d threads, %d fds", threads, fds)
	}
}
