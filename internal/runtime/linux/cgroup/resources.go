//go:build linux

package cgroup

import (
	"fmt"
	"maps"
	"strings"

	"github.com/opencontainers/cgroups"
	devices "github.com/opencontainers/cgroups/devices/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultDeviceRules are the devices every container may use, whatever its
// linux.resources.devices says. They are appended after the spec's own rules
// and after the linux.devices entries, so a spec cannot deny them.
var defaultDeviceRules = []devices.Rule{
	{Type: devices.CharDevice, Major: 1, Minor: 3, Permissions: "rwm", Allow: true},                  // /dev/null
	{Type: devices.CharDevice, Major: 1, Minor: 5, Permissions: "rwm", Allow: true},                  // /dev/zero
	{Type: devices.CharDevice, Major: 1, Minor: 7, Permissions: "rwm", Allow: true},                  // /dev/full
	{Type: devices.CharDevice, Major: 1, Minor: 8, Permissions: "rwm", Allow: true},                  // /dev/random
	{Type: devices.CharDevice, Major: 1, Minor: 9, Permissions: "rwm", Allow: true},                  // /dev/urandom
	{Type: devices.CharDevice, Major: 5, Minor: 0, Permissions: "rwm", Allow: true},                  // /dev/tty
	{Type: devices.CharDevice, Major: 5, Minor: 2, Permissions: "rwm", Allow: true},                  // /dev/ptmx
	{Type: devices.CharDevice, Major: 136, Minor: devices.Wildcard, Permissions: "rwm", Allow: true}, // /dev/pts/*
	{Type: devices.CharDevice, Major: 5, Minor: 1, Permissions: "rwm", Allow: true},                  // /dev/console
}

// DefaultDeviceRules returns (a copy of) the device rules every container
// gets, in the order they are applied: null 1:3, zero 1:5, full 1:7,
// random 1:8, urandom 1:9, tty 5:0, ptmx 5:2, pts 136:*, console 5:1, all
// character devices with "rwm".
func DefaultDeviceRules() []devices.Rule {
	return append([]devices.Rule(nil), defaultDeviceRules...)
}

// ToResources converts the spec's linux.resources (res, may be nil) plus the
// spec's linux.devices (devs) into the library's resources.
//
// Device rules come out in this exact order, which is the order they are
// applied in (later rules win):
//
//  1. linux.resources.devices up to and including its last deny-everything
//     rule (type "" means "a", a nil major/minor means the -1 wildcard,
//     access must be a non-empty combination of r, w, m);
//  2. an "rwm" allow rule for each linux.devices entry, in spec order
//     (type "u" is treated as "c"; "p" fifos are skipped because the device
//     controller does not govern them);
//  3. DefaultDeviceRules;
//  4. the rest of linux.resources.devices, in spec order: the spec's own
//     specific rules come last, so they are listed in the order the spec
//     gives (runtime-spec: "in the listed order") and an explicit deny of a
//     default device holds.
//
// Fields with no library equivalent are not in the result and are handled by
// the Manager: memory.kernelTCP and memory.useHierarchy are written by the
// Manager itself on cgroup v1 (and ignored on v2, which has neither knob);
// memory.kernel is ignored everywhere (deprecated by the runtime spec;
// kernels since 5.16 accept and ignore memory.kmem.limit_in_bytes).
// cpu.shares is also converted to the cgroup v2 cpu.weight (used only on v2).
func ToResources(res *specs.LinuxResources, devs []specs.LinuxDevice) (*cgroups.Resources, error) {
	r := &cgroups.Resources{}
	if res == nil {
		res = &specs.LinuxResources{}
	}

	// Order: the spec's rules up to its last deny-everything rule, then
	// linux.devices and the defaults every container needs, then the rest
	// of the spec's rules, which therefore still win (an explicit deny of
	// a default device holds) and stay in the order the spec lists them.
	var specRules []*devices.Rule
	lastDenyAll := -1
	for i, d := range res.Devices {
		rule, err := deviceCgroupRule(d)
		if err != nil {
			return nil, fmt.Errorf("linux.resources.devices[%d]: %w", i, err)
		}
		specRules = append(specRules, rule)
		if !rule.Allow && (rule.Type == devices.WildcardDevice || (rule.Major == devices.Wildcard && rule.Minor == devices.Wildcard)) {
			lastDenyAll = i
		}
	}
	r.Devices = append(r.Devices, specRules[:lastDenyAll+1]...)
	for i, d := range devs {
		rule, ok, err := linuxDeviceRule(d)
		if err != nil {
			return nil, fmt.Errorf("linux.devices[%d] (%s): %w", i, d.Path, err)
		}
		if ok {
			r.Devices = append(r.Devices, rule)
		}
	}
	for _, d := range defaultDeviceRules {
		rule := d
		r.Devices = append(r.Devices, &rule)
	}
	r.Devices = append(r.Devices, specRules[lastDenyAll+1:]...)

	if m := res.Memory; m != nil {
		if m.Limit != nil {
			r.Memory = *m.Limit
		}
		if m.Reservation != nil {
			r.MemoryReservation = *m.Reservation
		}
		if m.Swap != nil {
			r.MemorySwap = *m.Swap
		}
		if r.Memory > 0 && r.MemorySwap > 0 && r.MemorySwap < r.Memory {
			return nil, fmt.Errorf("linux.resources.memory: swap (memory+swap total, %d) must not be less than limit (%d)", r.MemorySwap, r.Memory)
		}
		if m.Swappiness != nil {
			if *m.Swappiness > 100 {
				return nil, fmt.Errorf("linux.resources.memory.swappiness %d is out of range 0-100", *m.Swappiness)
			}
			v := *m.Swappiness
			r.MemorySwappiness = &v
		}
		if m.DisableOOMKiller != nil {
			r.OomKillDisable = *m.DisableOOMKiller
		}
		if m.CheckBeforeUpdate != nil {
			r.MemoryCheckBeforeUpdate = *m.CheckBeforeUpdate
		}
	}

	if c := res.CPU; c != nil {
		if c.Shares != nil {
			r.CpuShares = *c.Shares
			r.CpuWeight = cgroups.ConvertCPUSharesToCgroupV2Value(*c.Shares)
		}
		if c.Quota != nil {
			r.CpuQuota = *c.Quota
		}
		if c.Burst != nil {
			v := *c.Burst
			r.CpuBurst = &v
		}
		if c.Period != nil {
			r.CpuPeriod = *c.Period
		}
		if c.RealtimeRuntime != nil {
			r.CpuRtRuntime = *c.RealtimeRuntime
		}
		if c.RealtimePeriod != nil {
			r.CpuRtPeriod = *c.RealtimePeriod
		}
		r.CpusetCpus = c.Cpus
		r.CpusetMems = c.Mems
		if c.Idle != nil {
			if *c.Idle != 0 && *c.Idle != 1 {
				return nil, fmt.Errorf("linux.resources.cpu.idle must be 0 or 1, got %d", *c.Idle)
			}
			v := *c.Idle
			r.CPUIdle = &v
		}
	}

	if p := res.Pids; p != nil && p.Limit != nil {
		v := *p.Limit
		r.PidsLimit = &v
	}

	if b := res.BlockIO; b != nil {
		if b.Weight != nil {
			r.BlkioWeight = *b.Weight
		}
		if b.LeafWeight != nil {
			r.BlkioLeafWeight = *b.LeafWeight
		}
		for _, wd := range b.WeightDevice {
			var w, lw uint16
			if wd.Weight != nil {
				w = *wd.Weight
			}
			if wd.LeafWeight != nil {
				lw = *wd.LeafWeight
			}
			r.BlkioWeightDevice = append(r.BlkioWeightDevice, cgroups.NewWeightDevice(wd.Major, wd.Minor, w, lw))
		}
		r.BlkioThrottleReadBpsDevice = throttleDevices(b.ThrottleReadBpsDevice)
		r.BlkioThrottleWriteBpsDevice = throttleDevices(b.ThrottleWriteBpsDevice)
		r.BlkioThrottleReadIOPSDevice = throttleDevices(b.ThrottleReadIOPSDevice)
		r.BlkioThrottleWriteIOPSDevice = throttleDevices(b.ThrottleWriteIOPSDevice)
	}

	for i, h := range res.HugepageLimits {
		if h.Pagesize == "" {
			return nil, fmt.Errorf("linux.resources.hugepageLimits[%d]: empty pageSize", i)
		}
		r.HugetlbLimit = append(r.HugetlbLimit, &cgroups.HugepageLimit{Pagesize: h.Pagesize, Limit: h.Limit})
	}

	if n := res.Network; n != nil {
		if n.ClassID != nil {
			r.NetClsClassid = *n.ClassID
		}
		for _, p := range n.Priorities {
			r.NetPrioIfpriomap = append(r.NetPrioIfpriomap, &cgroups.IfPrioMap{Interface: p.Name, Priority: int64(p.Priority)})
		}
	}

	if len(res.Rdma) > 0 {
		r.Rdma = make(map[string]cgroups.LinuxRdma, len(res.Rdma))
		for dev, l := range res.Rdma {
			var out cgroups.LinuxRdma
			if l.HcaHandles != nil {
				v := *l.HcaHandles
				out.HcaHandles = &v
			}
			if l.HcaObjects != nil {
				v := *l.HcaObjects
				out.HcaObjects = &v
			}
			r.Rdma[dev] = out
		}
	}

	// Leave Unified nil when empty: the v1 driver rejects any non-nil map.
	if len(res.Unified) > 0 {
		for k := range res.Unified {
			if k == "" || strings.ContainsAny(k, "/\x00") {
				return nil, fmt.Errorf("linux.resources.unified: invalid key %q: must be a cgroup interface file name", k)
			}
		}
		r.Unified = maps.Clone(res.Unified)
	}
	return r, nil
}

func throttleDevices(in []specs.LinuxThrottleDevice) []*cgroups.ThrottleDevice {
	var out []*cgroups.ThrottleDevice
	for _, t := range in {
		out = append(out, cgroups.NewThrottleDevice(t.Major, t.Minor, t.Rate))
	}
	return out
}

// deviceCgroupRule converts one linux.resources.devices entry.
func deviceCgroupRule(d specs.LinuxDeviceCgroup) (*devices.Rule, error) {
	var t devices.Type
	switch d.Type {
	case "", "a":
		t = devices.WildcardDevice
	case "c":
		t = devices.CharDevice
	case "b":
		t = devices.BlockDevice
	default:
		return nil, fmt.Errorf("invalid device type %q (want a, c or b)", d.Type)
	}
	major, minor := int64(devices.Wildcard), int64(devices.Wildcard)
	if d.Major != nil {
		major = *d.Major
	}
	if d.Minor != nil {
		minor = *d.Minor
	}
	if major < devices.Wildcard || minor < devices.Wildcard {
		return nil, fmt.Errorf("invalid device number %d:%d (use -1 or omit for a wildcard)", major, minor)
	}
	perms, err := normalizeAccess(d.Access)
	if err != nil {
		return nil, err
	}
	return &devices.Rule{Type: t, Major: major, Minor: minor, Permissions: perms, Allow: d.Allow}, nil
}

// normalizeAccess checks that access is a non-empty combination of r, w and m
// and returns it in canonical "rwm" order.
func normalizeAccess(access string) (devices.Permissions, error) {
	if access == "" {
		return "", fmt.Errorf("empty access (want a combination of r, w and m)")
	}
	var r, w, m bool
	for _, c := range access {
		switch c {
		case 'r':
			r = true
		case 'w':
			w = true
		case 'm':
			m = true
		default:
			return "", fmt.Errorf("invalid access %q (want a combination of r, w and m)", access)
		}
	}
	var b strings.Builder
	if r {
		b.WriteByte('r')
	}
	if w {
		b.WriteByte('w')
	}
	if m {
		b.WriteByte('m')
	}
	return devices.Permissions(b.String()), nil
}

// linuxDeviceRule converts one linux.devices entry into the allow rule that
// lets the container use the node the runtime creates for it. ok is false for
// device types the device controller does not govern (fifos).
func linuxDeviceRule(d specs.LinuxDevice) (rule *devices.Rule, ok bool, err error) {
	var t devices.Type
	switch d.Type {
	case "c", "u":
		t = devices.CharDevice
	case "b":
		t = devices.BlockDevice
	case "p":
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("invalid device type %q (want c, u, b or p)", d.Type)
	}
	if d.Major < 0 || d.Minor < 0 {
		return nil, false, fmt.Errorf("invalid device number %d:%d", d.Major, d.Minor)
	}
	return &devices.Rule{Type: t, Major: d.Major, Minor: d.Minor, Permissions: "rwm", Allow: true}, true, nil
}

// v1Extras are the spec knobs the library cannot express; the Manager writes
// them itself on cgroup v1.
type v1Extras struct {
	kernelTCP    *int64 // memory.kmem.tcp.limit_in_bytes
	useHierarchy *bool  // memory.use_hierarchy
}

func extrasFrom(res *specs.LinuxResources) v1Extras {
	var x v1Extras
	if res != nil && res.Memory != nil {
		x.kernelTCP = res.Memory.KernelTCP
		x.useHierarchy = res.Memory.UseHierarchy
	}
	return x
}
