package spec

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Resources are the cgroup settings of `docker run` beyond --memory,
// --cpus and --pids-limit, in docker's units; zero values mean unset.
type Resources struct {
	CPUShares         int64  // --cpu-shares (relative weight)
	CPUPeriod         int64  // --cpu-period, microseconds
	CPUQuota          int64  // --cpu-quota, microseconds per period (-1: none)
	CpusetCpus        string // --cpuset-cpus, e.g. "0-2,4"
	CpusetMems        string // --cpuset-mems
	MemorySwap        int64  // --memory-swap: memory plus swap, bytes (-1: unlimited swap)
	MemoryReservation int64  // --memory-reservation, bytes (a soft limit)
	OomKillDisable    bool   // --oom-kill-disable
	BlkioWeight       uint16 // --blkio-weight, 10 to 1000
}

// Docker's bounds of the CPU settings (daemon/daemon_unix.go).
const (
	minCPUShares = 2
	maxCPUShares = 262144
	minCPUPeriod = 1000
	maxCPUPeriod = 1000000
	minCPUQuota  = 1000
)

// Host says what the host's cgroups can do; Generate asks it through
// Options.Host (nil: the running host's).
type Host interface {
	// SwapLimit reports whether memory+swap can be limited (v1's
	// memory.memsw.*, v2's memory.swap.max).
	SwapLimit() bool
	// Cpus and Mems are the host's online CPUs and memory nodes, in the
	// kernel's list format ("0-3").
	Cpus() string
	Mems() string
	// OOMScoreAdjFloor is the lowest oom_score_adj berth may give a
	// process (0 without CAP_SYS_RESOURCE, -1000 with it).
	OOMScoreAdjFloor() int
	// OOMKillDisable and BlkioWeight report whether the cgroups can
	// turn the OOM killer off (v1 only) and weigh block I/O.
	OOMKillDisable() bool
	BlkioWeight() bool
}

// parseList reads the kernel's list format ("0-2,4") into a set.
func parseList(s string) (map[int]bool, error) {
	set := map[int]bool{}
	s = strings.TrimSpace(s)
	if s == "" {
		return set, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("invalid list %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("invalid list %q", s)
			}
		}
		for i := a; i <= b; i++ {
			set[i] = true
		}
	}
	return set, nil
}

// checkCpuset is docker's check of --cpuset-cpus/--cpuset-mems against
// what the host has.
func checkCpuset(flag, what, want, avail string) error {
	if want == "" {
		return nil
	}
	w, err := parseList(want)
	if err != nil {
		return fmt.Errorf("%s %s: invalid value %q for %s", flag, want, want, what)
	}
	if avail == "" {
		return nil // not known here: the cgroup write decides
	}
	have, err := parseList(avail)
	if err != nil {
		return nil
	}
	for n := range w {
		if !have[n] {
			return fmt.Errorf("%s %s: requested %s are not available - requested %s, available: %s", flag, want, what, want, avail)
		}
	}
	return nil
}

// applyResources validates o's resource options as docker's daemon does
// and sets them in r (whose memory limit, CPU quota from --cpus and pids
// limit SetLimits has already set). It returns docker's warnings.
func applyResources(r *specs.LinuxResources, o Options, host Host) ([]Warning, error) {
	x := o.Resources
	var warns []Warning
	warn := func(format string, a ...any) {
		warns = append(warns, Warning{Topic: "resources", Message: fmt.Sprintf(format, a...)})
	}
	// CPU.
	if o.CPUs > 0 && x.CPUPeriod != 0 {
		return nil, fmt.Errorf("conflicting options: --cpus and --cpu-period cannot both be set")
	}
	if o.CPUs > 0 && x.CPUQuota != 0 {
		return nil, fmt.Errorf("conflicting options: --cpus and --cpu-quota cannot both be set")
	}
	if x.CPUPeriod != 0 && (x.CPUPeriod < minCPUPeriod || x.CPUPeriod > maxCPUPeriod) {
		return nil, fmt.Errorf("--cpu-period %d: CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1 second (i.e. 1000000)", x.CPUPeriod)
	}
	if x.CPUQuota > 0 && x.CPUQuota < minCPUQuota {
		return nil, fmt.Errorf("--cpu-quota %d: CPU cfs quota can not be less than 1ms (i.e. 1000)", x.CPUQuota)
	}
	if x.CPUQuota < -1 {
		return nil, fmt.Errorf("--cpu-quota %d: use a number of microseconds of 1000 or more, or -1 for none", x.CPUQuota)
	}
	shares := x.CPUShares
	switch {
	case shares < 0:
		return nil, fmt.Errorf("--cpu-shares %d: must not be negative", shares)
	case shares > 0 && shares < minCPUShares:
		warn("changing requested CPUShares of %d to minimum allowed of %d", shares, minCPUShares)
		shares = minCPUShares
	case shares > maxCPUShares:
		warn("changing requested CPUShares of %d to maximum allowed of %d", shares, maxCPUShares)
		shares = maxCPUShares
	}
	if err := checkCpuset("--cpuset-cpus", "CPUs", x.CpusetCpus, host.Cpus()); err != nil {
		return nil, err
	}
	if err := checkCpuset("--cpuset-mems", "memory nodes", x.CpusetMems, host.Mems()); err != nil {
		return nil, err
	}
	if shares > 0 || x.CPUPeriod > 0 || x.CPUQuota != 0 || x.CpusetCpus != "" || x.CpusetMems != "" {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		if shares > 0 {
			s := uint64(shares)
			r.CPU.Shares = &s
		}
		if x.CPUPeriod > 0 {
			p := uint64(x.CPUPeriod)
			r.CPU.Period = &p
		}
		if x.CPUQuota != 0 {
			q := x.CPUQuota
			r.CPU.Quota = &q
		}
		r.CPU.Cpus, r.CPU.Mems = x.CpusetCpus, x.CpusetMems
	}

	// Memory.
	swap := x.MemorySwap
	switch {
	case swap < -1:
		return nil, fmt.Errorf("--memory-swap %d: use a size, or -1 for unlimited swap", swap)
	case swap != 0 && o.Memory == 0:
		return nil, fmt.Errorf("--memory-swap: you should always set the memory limit (--memory) when using a memory+swap limit")
	case swap > 0 && swap < o.Memory:
		return nil, fmt.Errorf("--memory-swap %d: minimum memoryswap limit should be larger than memory limit (%d), see usage", swap, o.Memory)
	}
	if x.MemoryReservation < 0 {
		return nil, fmt.Errorf("--memory-reservation %d: must not be negative", x.MemoryReservation)
	}
	if o.Memory > 0 && x.MemoryReservation > o.Memory {
		return nil, fmt.Errorf("--memory-reservation %d: minimum memory limit can not be less than memory reservation limit, see usage", x.MemoryReservation)
	}
	if o.Memory > 0 && swap == 0 {
		// docker's default: as much swap as memory.
		swap = 2 * o.Memory
		if !host.SwapLimit() {
			swap = 0
		}
	} else if swap != 0 && !host.SwapLimit() {
		warn("your kernel does not support swap limit capabilities or the cgroup is not mounted: memory limited without swap")
		swap = 0
	}
	oomKillDisable := x.OomKillDisable
	if oomKillDisable && !host.OOMKillDisable() {
		warn("your kernel does not support OomKillDisable (cgroup v2 has no such switch): --oom-kill-disable discarded")
		oomKillDisable = false
	}
	if oomKillDisable && o.Memory == 0 {
		warn("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources")
	}
	if swap != 0 || x.MemoryReservation > 0 || oomKillDisable {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		if swap != 0 {
			r.Memory.Swap = &swap
		}
		if x.MemoryReservation > 0 {
			res := x.MemoryReservation
			r.Memory.Reservation = &res
		}
		if oomKillDisable {
			t := true
			r.Memory.DisableOOMKiller = &t
		}
	}

	// Block I/O.
	if x.BlkioWeight > 0 {
		if x.BlkioWeight < 10 || x.BlkioWeight > 1000 {
			return nil, fmt.Errorf("--blkio-weight %d: range of blkio weight is from 10 to 1000", x.BlkioWeight)
		}
		if !host.BlkioWeight() {
			warn("your kernel does not support Block I/O weight or the cgroup is not mounted: weight discarded")
		} else {
			w := x.BlkioWeight
			r.BlockIO = &specs.LinuxBlockIO{Weight: &w}
		}
	}
	return warns, nil
}

// UpdateResources sets in r the resources x asks for, on a container
// limited to memory bytes and cpus CPUs (0: none), with the checks and
// warnings of a create (docker update's rules are docker create's);
// host nil is the running host's. It only sets: what x leaves zero is
// left as r has it.
func UpdateResources(r *specs.LinuxResources, memory int64, cpus float64, x Resources, host Host) ([]Warning, error) {
	if host == nil {
		host = linuxHost{}
	}
	return applyResources(r, Options{Memory: memory, CPUs: cpus, Resources: x}, host)
}

// oomScoreAdj checks --oom-score-adj and clamps it to what berth may set.
func oomScoreAdj(v *int, host Host) (*int, []Warning, error) {
	if v == nil {
		return nil, nil, nil
	}
	if *v < -1000 || *v > 1000 {
		return nil, nil, fmt.Errorf("--oom-score-adj %d: invalid value, the range for oom score adj is [-1000, 1000]", *v)
	}
	adj := *v
	var warns []Warning
	if floor := host.OOMScoreAdjFloor(); adj < floor {
		warns = append(warns, Warning{Topic: "resources", Message: fmt.Sprintf(
			"--oom-score-adj %d clamped to %d: lowering it needs CAP_SYS_RESOURCE, which berth lacks here", adj, floor)})
		adj = floor
	}
	return &adj, warns, nil
}

// DeviceRule is docker's --device-cgroup-rule ("c 1:3 rwm", "a *:* m").
var deviceRuleRE = regexp.MustCompile(`^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`)

func parseDeviceRule(s string) (specs.LinuxDeviceCgroup, error) {
	m := deviceRuleRE.FindStringSubmatch(s)
	if m == nil {
		return specs.LinuxDeviceCgroup{}, fmt.Errorf("--device-cgroup-rule %q: invalid device cgroup format (want TYPE MAJOR:MINOR PERMS, such as 'c 1:3 rwm' or 'a *:* m')", s)
	}
	d := specs.LinuxDeviceCgroup{Allow: true, Type: m[1], Access: m[4]}
	if m[2] != "*" {
		n, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			return d, fmt.Errorf("--device-cgroup-rule %q: major %q: %w", s, m[2], err)
		}
		d.Major = &n
	}
	if m[3] != "*" {
		n, err := strconv.ParseInt(m[3], 10, 64)
		if err != nil {
			return d, fmt.Errorf("--device-cgroup-rule %q: minor %q: %w", s, m[3], err)
		}
		d.Minor = &n
	}
	if d.Type == "a" {
		d.Type = ""
	}
	return d, nil
}

// validPerms says whether s is a non-empty subset of "rwm".
func validPerms(s string) bool {
	if s == "" || len(s) > 3 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("rwm", c) {
			return false
		}
	}
	return true
}

// ParseDevice splits docker's --device HOST[:CONTAINER[:PERMS]] (the
// container path defaults to the host's, the permissions to rwm).
func ParseDevice(s string) (host, ctr, perms string, err error) {
	parts := strings.Split(s, ":")
	perms = "rwm"
	switch len(parts) {
	case 1:
		host, ctr = parts[0], parts[0]
	case 2:
		host, ctr = parts[0], parts[1]
		if validPerms(parts[1]) {
			ctr, perms = parts[0], parts[1]
		}
	case 3:
		host, ctr, perms = parts[0], parts[1], parts[2]
	default:
		return "", "", "", fmt.Errorf("--device %q: bad format, want HOST[:CONTAINER[:PERMS]]", s)
	}
	if !validPerms(perms) {
		return "", "", "", fmt.Errorf("--device %q: bad mode specified: %s", s, perms)
	}
	if !strings.HasPrefix(host, "/") {
		return "", "", "", fmt.Errorf("--device %q: the host path %q must be absolute (berth has no CDI devices)", s, host)
	}
	if !strings.HasPrefix(ctr, "/") {
		return "", "", "", fmt.Errorf("--device %q: bad format for path: %s", s, ctr)
	}
	return host, ctr, perms, nil
}

// Device is a host device node given to the container.
type Device struct {
	// Path in the container; Type "c" or "b"; the node's numbers, mode
	// and owner are the host's.
	Path         string
	Type         string
	Major, Minor int64
	Mode         uint32
	UID, GID     uint32
	// Perms are the devices cgroup permissions ("rwm").
	Perms string
}

// dockerSysctls are the sysctls docker lets a container set besides the
// net.* and fs.mqueue.* ones: the IPC namespace's.
var dockerSysctls = []string{
	"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
	"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
}

// checkSysctls applies docker's rules: only namespaced sysctls, and none
// of a namespace the container shares with the host.
func checkSysctls(sysctls map[string]string, ns map[specs.LinuxNamespaceType]string, netHost bool) error {
	for _, k := range slices.Sorted(maps.Keys(sysctls)) {
		switch {
		case slices.Contains(dockerSysctls, k) || strings.HasPrefix(k, "fs.mqueue."):
			if ns[specs.IPCNamespace] == "host" {
				return fmt.Errorf("--sysctl %s is not allowed in the host's IPC namespace", k)
			}
		case strings.HasPrefix(k, "net."):
			if netHost {
				return fmt.Errorf("--sysctl %s is not allowed in the host's network namespace", k)
			}
		default:
			return fmt.Errorf("--sysctl %s is not allowed: only the namespaced net.*, fs.mqueue.* and IPC kernel.* (%s) sysctls can be set", k, strings.Join(dockerSysctls, ", "))
		}
	}
	return nil
}
