//go:build linux

package cgroup

import (
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/cgroups"
	devices "github.com/opencontainers/cgroups/devices/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ptr[T any](v T) *T { return &v }

// withDefaults returns rules followed by the default device rules.
func withDefaults(rules ...*devices.Rule) []*devices.Rule {
	out := append([]*devices.Rule(nil), rules...)
	for _, d := range defaultDeviceRules {
		d := d
		out = append(out, &d)
	}
	return out
}

func TestToResources(t *testing.T) {
	tests := []struct {
		name string
		res  *specs.LinuxResources
		devs []specs.LinuxDevice
		want *cgroups.Resources
	}{
		{
			name: "nil resources still get the default devices",
			res:  nil,
			want: &cgroups.Resources{Devices: withDefaults()},
		},
		{
			name: "memory",
			res: &specs.LinuxResources{Memory: &specs.LinuxMemory{
				Limit:             ptr(int64(32 << 20)),
				Reservation:       ptr(int64(16 << 20)),
				Swap:              ptr(int64(64 << 20)),
				Kernel:            ptr(int64(1 << 20)), // ignored
				KernelTCP:         ptr(int64(2 << 20)), // Manager extra, not in the result
				Swappiness:        ptr(uint64(60)),
				DisableOOMKiller:  ptr(true),
				UseHierarchy:      ptr(true), // Manager extra
				CheckBeforeUpdate: ptr(true),
			}},
			want: &cgroups.Resources{
				Devices:                 withDefaults(),
				Memory:                  32 << 20,
				MemoryReservation:       16 << 20,
				MemorySwap:              64 << 20,
				MemorySwappiness:        ptr(uint64(60)),
				OomKillDisable:          true,
				MemoryCheckBeforeUpdate: true,
			},
		},
		{
			name: "unlimited memory and swap",
			res:  &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(-1)), Swap: ptr(int64(-1))}},
			want: &cgroups.Resources{Devices: withDefaults(), Memory: -1, MemorySwap: -1},
		},
		{
			name: "cpu",
			res: &specs.LinuxResources{CPU: &specs.LinuxCPU{
				Shares:          ptr(uint64(1024)),
				Quota:           ptr(int64(50000)),
				Burst:           ptr(uint64(10000)),
				Period:          ptr(uint64(100000)),
				RealtimeRuntime: ptr(int64(950000)),
				RealtimePeriod:  ptr(uint64(1000000)),
				Cpus:            "0-1",
				Mems:            "0",
				Idle:            ptr(int64(1)),
			}},
			want: &cgroups.Resources{
				Devices:      withDefaults(),
				CpuShares:    1024,
				CpuWeight:    cgroups.ConvertCPUSharesToCgroupV2Value(1024), // 39 (v2 only)
				CpuQuota:     50000,
				CpuBurst:     ptr(uint64(10000)),
				CpuPeriod:    100000,
				CpuRtRuntime: 950000,
				CpuRtPeriod:  1000000,
				CpusetCpus:   "0-1",
				CpusetMems:   "0",
				CPUIdle:      ptr(int64(1)),
			},
		},
		{
			name: "pids limit 8",
			res:  &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(8))}},
			want: &cgroups.Resources{Devices: withDefaults(), PidsLimit: ptr(int64(8))},
		},
		{
			name: "pids limit -1 (max) is passed through",
			res:  &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(-1))}},
			want: &cgroups.Resources{Devices: withDefaults(), PidsLimit: ptr(int64(-1))},
		},
		{
			name: "pids without limit leaves the limit alone",
			res:  &specs.LinuxResources{Pids: &specs.LinuxPids{}},
			want: &cgroups.Resources{Devices: withDefaults()},
		},
		{
			name: "block io",
			res: &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
				Weight:     ptr(uint16(500)),
				LeafWeight: ptr(uint16(300)),
				WeightDevice: []specs.LinuxWeightDevice{
					{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Weight: ptr(uint16(600)), LeafWeight: ptr(uint16(200))},
					{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 16}, Weight: ptr(uint16(700))},
				},
				ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1 << 20}},
				ThrottleWriteBpsDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 2 << 20}},
				ThrottleReadIOPSDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 100}},
				ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 16}, Rate: 200}},
			}},
			want: &cgroups.Resources{
				Devices:         withDefaults(),
				BlkioWeight:     500,
				BlkioLeafWeight: 300,
				BlkioWeightDevice: []*cgroups.WeightDevice{
					cgroups.NewWeightDevice(8, 0, 600, 200),
					cgroups.NewWeightDevice(8, 16, 700, 0),
				},
				BlkioThrottleReadBpsDevice:   []*cgroups.ThrottleDevice{cgroups.NewThrottleDevice(8, 0, 1<<20)},
				BlkioThrottleWriteBpsDevice:  []*cgroups.ThrottleDevice{cgroups.NewThrottleDevice(8, 0, 2<<20)},
				BlkioThrottleReadIOPSDevice:  []*cgroups.ThrottleDevice{cgroups.NewThrottleDevice(8, 0, 100)},
				BlkioThrottleWriteIOPSDevice: []*cgroups.ThrottleDevice{cgroups.NewThrottleDevice(8, 16, 200)},
			},
		},
		{
			name: "hugepages, network, rdma, unified",
			res: &specs.LinuxResources{
				HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}, {Pagesize: "1GB", Limit: 0}},
				Network: &specs.LinuxNetwork{
					ClassID:    ptr(uint32(0x100001)),
					Priorities: []specs.LinuxInterfacePriority{{Name: "eth0", Priority: 5}, {Name: "lo", Priority: 1}},
				},
				Rdma: map[string]specs.LinuxRdma{
					"mlx5_1": {HcaHandles: ptr(uint32(3)), HcaObjects: ptr(uint32(10000))},
					"mlx4_0": {HcaObjects: ptr(uint32(1000))},
				},
				Unified: map[string]string{"memory.high": "1073741824", "io.weight": "default 100"},
			},
			want: &cgroups.Resources{
				Devices:          withDefaults(),
				HugetlbLimit:     []*cgroups.HugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}, {Pagesize: "1GB", Limit: 0}},
				NetClsClassid:    0x100001,
				NetPrioIfpriomap: []*cgroups.IfPrioMap{{Interface: "eth0", Priority: 5}, {Interface: "lo", Priority: 1}},
				Rdma: map[string]cgroups.LinuxRdma{
					"mlx5_1": {HcaHandles: ptr(uint32(3)), HcaObjects: ptr(uint32(10000))},
					"mlx4_0": {HcaObjects: ptr(uint32(1000))},
				},
				Unified: map[string]string{"memory.high": "1073741824", "io.weight": "default 100"},
			},
		},
		{
			name: "empty unified stays nil (the v1 driver rejects any non-nil map)",
			res:  &specs.LinuxResources{Unified: map[string]string{}},
			want: &cgroups.Resources{Devices: withDefaults()},
		},
		{
			name: "device rules: spec rules to the last deny-all, linux.devices, defaults, the other spec rules",
			res: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
				{Allow: false, Access: "rwm"}, // deny all
				{Allow: true, Type: "c", Major: ptr(int64(10)), Minor: ptr(int64(200)), Access: "rw"},
				{Allow: true, Type: "b", Major: ptr(int64(8)), Access: "mr"},                       // minor wildcard, access reordered
				{Allow: false, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "w"}, // an explicit deny of a default device holds
				{Allow: true, Type: "a", Access: "m"},
			}},
			devs: []specs.LinuxDevice{
				{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
				{Path: "/dev/sda", Type: "b", Major: 8, Minor: 0},
				{Path: "/dev/ttyU", Type: "u", Major: 4, Minor: 64},
				{Path: "/dev/fifo", Type: "p"}, // not a cgroup device: skipped
			},
			want: &cgroups.Resources{Devices: append(append([]*devices.Rule{
				{Type: 'a', Major: -1, Minor: -1, Permissions: "rwm", Allow: false},
				{Type: 'c', Major: 10, Minor: 229, Permissions: "rwm", Allow: true},
				{Type: 'b', Major: 8, Minor: 0, Permissions: "rwm", Allow: true},
				{Type: 'c', Major: 4, Minor: 64, Permissions: "rwm", Allow: true},
			}, withDefaults()...),
				&devices.Rule{Type: 'c', Major: 10, Minor: 200, Permissions: "rw", Allow: true},
				&devices.Rule{Type: 'b', Major: 8, Minor: -1, Permissions: "rm", Allow: true},
				&devices.Rule{Type: 'c', Major: 1, Minor: 3, Permissions: "w", Allow: false},
				&devices.Rule{Type: 'a', Major: -1, Minor: -1, Permissions: "m", Allow: true},
			)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ToResources(tt.res, tt.devs)
			if err != nil {
				t.Fatalf("ToResources: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ToResources mismatch\n got: %s\nwant: %s", dump(got), dump(tt.want))
			}
		})
	}
}

func TestToResourcesDefaultDevicesOrder(t *testing.T) {
	got, err := ToResources(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, d := range got.Devices {
		s = append(s, d.CgroupString())
	}
	want := "c 1:3 rwm|c 1:5 rwm|c 1:7 rwm|c 1:8 rwm|c 1:9 rwm|c 5:0 rwm|c 5:2 rwm|c 136:* rwm|c 5:1 rwm"
	if g := strings.Join(s, "|"); g != want {
		t.Errorf("default device rules\n got: %s\nwant: %s", g, want)
	}
	// DefaultDeviceRules hands out a copy.
	d := DefaultDeviceRules()
	d[0].Allow = false
	if !defaultDeviceRules[0].Allow {
		t.Error("DefaultDeviceRules returned the package's own slice")
	}
}

func TestToResourcesDoesNotAlias(t *testing.T) {
	res := &specs.LinuxResources{
		CPU:     &specs.LinuxCPU{Burst: ptr(uint64(5))},
		Pids:    &specs.LinuxPids{Limit: ptr(int64(8))},
		Unified: map[string]string{"pids.max": "8"},
	}
	got, err := ToResources(res, nil)
	if err != nil {
		t.Fatal(err)
	}
	*res.CPU.Burst = 6
	*res.Pids.Limit = 9
	res.Unified["pids.max"] = "9"
	if *got.CpuBurst != 5 || *got.PidsLimit != 8 || got.Unified["pids.max"] != "8" {
		t.Errorf("result aliases the spec: burst=%d pids=%d unified=%q", *got.CpuBurst, *got.PidsLimit, got.Unified["pids.max"])
	}
}

func TestToResourcesErrors(t *testing.T) {
	tests := []struct {
		name string
		res  *specs.LinuxResources
		devs []specs.LinuxDevice
		want string
	}{
		{"empty access", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true}}}, nil, "devices[0]: empty access"},
		{"bad access", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwx"}}}, nil, `invalid access "rwx"`},
		{"bad type", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "p", Access: "r"}}}, nil, `invalid device type "p"`},
		{"bad major", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: ptr(int64(-2)), Access: "r"}}}, nil, "invalid device number -2:-1"},
		{"bad linux.devices type", nil, []specs.LinuxDevice{{Path: "/dev/x", Type: "z"}}, `linux.devices[0] (/dev/x): invalid device type "z"`},
		{"swap below limit", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(100)), Swap: ptr(int64(50))}}, nil, "must not be less than limit"},
		{"swappiness", &specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: ptr(uint64(101))}}, nil, "swappiness 101 is out of range"},
		{"cpu idle", &specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: ptr(int64(2))}}, nil, "idle must be 0 or 1"},
		{"hugepage size", &specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Limit: 1}}}, nil, "empty pageSize"},
		{"unified key", &specs.LinuxResources{Unified: map[string]string{"../memory.max": "1"}}, nil, `invalid key "../memory.max"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ToResources(tt.res, tt.devs)
			if err == nil {
				t.Fatalf("ToResources succeeded, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestDevicesControllerRegistered(t *testing.T) {
	// Without the blank import of opencontainers/cgroups/devices the
	// library silently cannot program device rules.
	if cgroups.DevicesSetV1 == nil || cgroups.DevicesSetV2 == nil {
		t.Fatal("device controller setters are not registered")
	}
}

func TestExtrasFrom(t *testing.T) {
	x := extrasFrom(&specs.LinuxResources{Memory: &specs.LinuxMemory{KernelTCP: ptr(int64(7)), UseHierarchy: ptr(false)}})
	if x.kernelTCP == nil || *x.kernelTCP != 7 || x.useHierarchy == nil || *x.useHierarchy {
		t.Errorf("extrasFrom = %+v", x)
	}
	if x := extrasFrom(nil); x.kernelTCP != nil || x.useHierarchy != nil {
		t.Errorf("extrasFrom(nil) = %+v", x)
	}
}
