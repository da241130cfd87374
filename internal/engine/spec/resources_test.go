package spec

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

type fakeHost struct {
	swap       bool
	cpus, mems string
	floor      int
	v2         bool // no OOM-killer switch, no blkio weight
}

func (h fakeHost) SwapLimit() bool       { return h.swap }
func (h fakeHost) Cpus() string          { return h.cpus }
func (h fakeHost) Mems() string          { return h.mems }
func (h fakeHost) OOMScoreAdjFloor() int { return h.floor }
func (h fakeHost) OOMKillDisable() bool  { return !h.v2 }
func (h fakeHost) BlkioWeight() bool     { return !h.v2 }

func TestApplyResources(t *testing.T) {
	host := fakeHost{swap: true, cpus: "0-3", mems: "0"}
	r := &specs.LinuxResources{}
	o := Options{Memory: 64 << 20, Resources: Resources{CPUShares: 512, CPUPeriod: 50000, CPUQuota: 25000,
		CpusetCpus: "1,3", CpusetMems: "0", MemoryReservation: 32 << 20, OomKillDisable: true, BlkioWeight: 300}}
	if err := SetLimits(r, o.Memory, 0, 0); err != nil {
		t.Fatal(err)
	}
	warns, err := applyResources(r, o, host)
	if err != nil || len(warns) != 0 {
		t.Fatalf("%v %v", err, warns)
	}
	if *r.CPU.Shares != 512 || *r.CPU.Period != 50000 || *r.CPU.Quota != 25000 || r.CPU.Cpus != "1,3" || r.CPU.Mems != "0" {
		t.Errorf("cpu: %+v", r.CPU)
	}
	// docker's default swap: as much again as the memory limit.
	if *r.Memory.Limit != 64<<20 || *r.Memory.Swap != 128<<20 || *r.Memory.Reservation != 32<<20 || !*r.Memory.DisableOOMKiller {
		t.Errorf("memory: %+v", r.Memory)
	}
	if *r.BlockIO.Weight != 300 {
		t.Errorf("blkio: %+v", r.BlockIO)
	}
	// Without swap accounting there is no default swap limit, and an
	// explicit one is dropped with a warning.
	r = &specs.LinuxResources{}
	SetLimits(r, 64<<20, 0, 0)
	if warns, err := applyResources(r, Options{Memory: 64 << 20, Resources: Resources{MemorySwap: -1}}, fakeHost{}); err != nil || len(warns) != 1 || r.Memory.Swap != nil {
		t.Errorf("no swap accounting: %v %v %+v", err, warns, r.Memory)
	}
	// What the host cannot do is discarded with a warning.
	r = &specs.LinuxResources{}
	SetLimits(r, 64<<20, 0, 0)
	if warns, err := applyResources(r, Options{Memory: 64 << 20, Resources: Resources{OomKillDisable: true, BlkioWeight: 100}}, fakeHost{v2: true}); err != nil || len(warns) != 2 || r.Memory.DisableOOMKiller != nil || r.BlockIO != nil {
		t.Errorf("v2 host: %v %v %+v %+v", err, warns, r.Memory, r.BlockIO)
	}
	// Shares are clamped as docker clamps them.
	r = &specs.LinuxResources{}
	if warns, _ := applyResources(r, Options{Resources: Resources{CPUShares: 1}}, host); len(warns) != 1 || *r.CPU.Shares != 2 {
		t.Errorf("shares 1: %v %v", warns, *r.CPU.Shares)
	}
	for _, bad := range []struct {
		o    Options
		want string
	}{
		{Options{CPUs: 1, Resources: Resources{CPUQuota: 5000}}, "conflicting"},
		{Options{CPUs: 1, Resources: Resources{CPUPeriod: 5000}}, "conflicting"},
		{Options{Resources: Resources{CPUPeriod: 999}}, "period"},
		{Options{Resources: Resources{CPUQuota: 999}}, "quota"},
		{Options{Resources: Resources{CpusetCpus: "4"}}, "not available"},
		{Options{Resources: Resources{CpusetCpus: "x"}}, "invalid"},
		{Options{Resources: Resources{CpusetMems: "1"}}, "not available"},
		{Options{Resources: Resources{MemorySwap: 1 << 20}}, "memory limit"},
		{Options{Memory: 2 << 20, Resources: Resources{MemorySwap: 1 << 20}}, "larger than memory"},
		{Options{Memory: 2 << 20, Resources: Resources{MemoryReservation: 4 << 20}}, "reservation"},
		{Options{Resources: Resources{BlkioWeight: 5}}, "10 to 1000"},
	} {
		if _, err := applyResources(&specs.LinuxResources{}, bad.o, host); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want %q", bad.o.Resources, err, bad.want)
		}
	}
}

func TestOOMScoreAdj(t *testing.T) {
	v := -500
	got, warns, err := oomScoreAdj(&v, fakeHost{floor: 0})
	if err != nil || *got != 0 || len(warns) != 1 {
		t.Errorf("clamp: %v %v %v", *got, warns, err)
	}
	got, warns, _ = oomScoreAdj(&v, fakeHost{floor: -1000})
	if *got != -500 || len(warns) != 0 {
		t.Errorf("with CAP_SYS_RESOURCE: %v %v", *got, warns)
	}
	v = 1001
	if _, _, err := oomScoreAdj(&v, fakeHost{}); err == nil {
		t.Error("1001 accepted")
	}
}

func TestParseDevice(t *testing.T) {
	for in, want := range map[string][3]string{
		"/dev/fuse":             {"/dev/fuse", "/dev/fuse", "rwm"},
		"/dev/fuse:r":           {"/dev/fuse", "/dev/fuse", "r"},
		"/dev/sda:/dev/xvda":    {"/dev/sda", "/dev/xvda", "rwm"},
		"/dev/sda:/dev/xvda:rw": {"/dev/sda", "/dev/xvda", "rw"},
	} {
		h, c, p, err := ParseDevice(in)
		if err != nil || [3]string{h, c, p} != want {
			t.Errorf("%s: %s %s %s %v", in, h, c, p, err)
		}
	}
	for _, bad := range []string{"/dev/a:/dev/b:x", "dev/a", "/dev/a:b", "/a:/b:r:w", "vendor.com/gpu=all"} {
		if _, _, _, err := ParseDevice(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	d, err := parseDeviceRule("c 1:3 rwm")
	if err != nil || d.Type != "c" || *d.Major != 1 || *d.Minor != 3 || d.Access != "rwm" {
		t.Errorf("c 1:3 rwm: %+v %v", d, err)
	}
	d, err = parseDeviceRule("a *:* m")
	if err != nil || d.Type != "" || d.Major != nil || d.Minor != nil {
		t.Errorf("a *:* m: %+v %v", d, err)
	}
	for _, bad := range []string{"x 1:3 r", "c 1:3", "c 1:3 rwx", "c a:3 r"} {
		if _, err := parseDeviceRule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCheckSysctls(t *testing.T) {
	ok := map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "1", "fs.mqueue.msg_max": "10"}
	if err := checkSysctls(ok, nil, false); err != nil {
		t.Error(err)
	}
	if err := checkSysctls(map[string]string{"kernel.panic": "1"}, nil, false); err == nil {
		t.Error("kernel.panic accepted")
	}
	if err := checkSysctls(map[string]string{"net.ipv4.ip_forward": "1"}, nil, true); err == nil {
		t.Error("net.* accepted with the host's network")
	}
	if err := checkSysctls(map[string]string{"kernel.sem": "1"}, map[specs.LinuxNamespaceType]string{specs.IPCNamespace: "host"}, false); err == nil {
		t.Error("kernel.sem accepted with the host's IPC namespace")
	}
}
