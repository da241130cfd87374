package spec

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultPath is the PATH a container gets when neither the image nor the
// options set one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// cpuPeriod is the CFS period, in microseconds, --cpus is expressed in.
const cpuPeriod = 100000

var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// MaskedPaths and ReadonlyPaths are what an unprivileged container has
// masked and read-only (inspect's HostConfig shows them, as docker's does).
func MaskedPaths() []string   { return slices.Clone(maskedPaths) }
func ReadonlyPaths() []string { return slices.Clone(readonlyPaths) }

// defaultDevices are the device cgroup rules of an unprivileged container:
// deny everything, then allow mknod and the usual character devices.
func defaultDevices() []specs.LinuxDeviceCgroup {
	c := func(major, minor int64, access string) specs.LinuxDeviceCgroup {
		d := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Access: access}
		if major >= 0 {
			d.Major = &major
		}
		if minor >= 0 {
			d.Minor = &minor
		}
		return d
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		c(-1, -1, "m"),
		{Allow: true, Type: "b", Access: "m"},
		c(1, 3, "rwm"),    // null
		c(1, 5, "rwm"),    // zero
		c(1, 7, "rwm"),    // full
		c(1, 8, "rwm"),    // random
		c(1, 9, "rwm"),    // urandom
		c(5, 0, "rwm"),    // tty
		c(5, 1, "rwm"),    // console
		c(5, 2, "rwm"),    // ptmx
		c(136, -1, "rwm"), // pts/*
	}
}

// Generate returns the OCI runtime config of a container made from img
// whose root filesystem is rootfs, with opts applied over the image's
// config and docker's defaults. The warnings say what was granted
// differently from what was asked, or ignored.
func Generate(img ocispec.Image, rootfs string, opts Options) (*specs.Spec, []Warning, error) {
	if rootfs == "" {
		return nil, nil, errors.New("spec: no rootfs given")
	}
	cfg := img.Config
	var warns []Warning

	args, err := command(cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	cwd := "/"
	switch {
	case opts.WorkingDir != "":
		cwd = opts.WorkingDir
	case cfg.WorkingDir != "":
		cwd = cfg.WorkingDir
	}
	if !path.IsAbs(cwd) {
		return nil, nil, fmt.Errorf("working directory %q must be an absolute path", cwd)
	}
	cwd = path.Clean(cwd)

	userSpec := opts.User
	if userSpec == "" {
		userSpec = cfg.User
	}
	u, err := resolveUser(rootfs, userSpec)
	if err != nil {
		return nil, nil, err
	}
	if opts.StrictGroups {
		// Only the groups asked for (GroupAdd), not the user's
		// memberships in the image's /etc/group (the CRI's Strict
		// supplemental groups policy).
		u.sgids = nil
	}

	env, err := environment(cfg.Env, opts, u.home)
	if err != nil {
		return nil, nil, err
	}

	lastCap := opts.HostLastCap
	if lastCap == nil {
		lastCap = hostLastCap
	}
	caps, err := capabilities(opts.Privileged, opts.CapAdd, opts.CapDrop, lastCap)
	if err != nil {
		return nil, nil, err
	}
	bounding := opts.HostBounding
	switch {
	case bounding == nil && opts.HostLastCap != nil:
		// A described host (tests) without a bounding set: all of it.
		bounding = func() (uint64, error) { return ^uint64(0), nil }
	case bounding == nil:
		bounding = hostBounding
	}
	caps, capWarns, err := clampToBounding(caps, opts.CapAdd, bounding)
	if err != nil {
		return nil, nil, err
	}
	warns = append(warns, capWarns...)

	sc, scWarn, err := seccompConfig(opts, caps, seccompHost{goarch: runtime.GOARCH, kernel: hostKernelVersion()})
	if err != nil {
		return nil, nil, err
	}
	warns = append(warns, scWarn...)

	hostRl := opts.HostRlimit
	if hostRl == nil {
		hostRl = hostRlimit
	}
	rl, rlWarn, err := rlimits(opts.Ulimits, hostRl)
	if err != nil {
		return nil, nil, err
	}
	warns = append(warns, rlWarn...)

	mnts, err := mounts(opts)
	if err != nil {
		return nil, nil, err
	}
	if len(cfg.Volumes) > 0 {
		vols := slices.Sorted(maps.Keys(cfg.Volumes))
		warns = append(warns, Warning{Topic: "volume", Message: fmt.Sprintf(
			"the image declares volumes %s; berth does not create anonymous volumes, so they are part of the container's root filesystem",
			strings.Join(vols, ", "))})
	}

	host := opts.Host
	if host == nil {
		host = linuxHost{}
	}
	res, err := resources(opts)
	if err != nil {
		return nil, nil, err
	}
	resWarn, err := applyResources(res, opts, host)
	if err != nil {
		return nil, nil, err
	}
	warns = append(warns, resWarn...)
	oomAdj, oomWarn, err := oomScoreAdj(opts.OOMScoreAdj, host)
	if err != nil {
		return nil, nil, err
	}
	warns = append(warns, oomWarn...)
	for _, rule := range opts.DeviceCgroupRules {
		d, err := parseDeviceRule(rule)
		if err != nil {
			return nil, nil, err
		}
		res.Devices = append(res.Devices, d)
	}
	var devices []specs.LinuxDevice
	for _, dv := range opts.Devices {
		hostPath, ctrPath, perms, err := ParseDevice(dv)
		if err != nil {
			return nil, nil, err
		}
		found, err := hostDevices(hostPath, path.Clean(ctrPath), perms)
		if err != nil {
			return nil, nil, err
		}
		for _, d := range found {
			mode := os.FileMode(d.Mode)
			uid, gid := d.UID, d.GID
			major, minor := d.Major, d.Minor
			devices = append(devices, specs.LinuxDevice{Path: d.Path, Type: d.Type, Major: d.Major, Minor: d.Minor, FileMode: &mode, UID: &uid, GID: &gid})
			res.Devices = append(res.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Major: &major, Minor: &minor, Access: d.Perms})
			if deny := strings.Map(func(r rune) rune {
				if strings.ContainsRune(d.Perms, r) {
					return -1
				}
				return r
			}, "rw"); deny != "" {
				// The runtime allows every linux.devices node in full;
				// the permissions not asked for are taken back after
				// it (mknod stays: every container may make any node,
				// docker's default rule c *:* m).
				res.Devices = append(res.Devices, specs.LinuxDeviceCgroup{Allow: false, Type: d.Type, Major: &major, Minor: &minor, Access: deny})
			}
		}
	}
	if len(opts.GroupAdd) > 0 {
		gids, err := resolveGroups(rootfs, opts.GroupAdd)
		if err != nil {
			return nil, nil, err
		}
		for _, g := range gids {
			if g != u.gid && !slices.Contains(u.sgids, g) {
				u.sgids = append(u.sgids, g)
			}
		}
	}

	var ns []specs.LinuxNamespace
	for _, t := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace} {
		switch v := opts.Namespaces[t]; v {
		case "":
			ns = append(ns, specs.LinuxNamespace{Type: t})
		case "host":
		default:
			ns = append(ns, specs.LinuxNamespace{Type: t, Path: v})
		}
	}
	switch opts.NetworkMode {
	case "", "none":
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	case "host":
	default:
		return nil, nil, fmt.Errorf("network mode %q is not supported: use none or host", opts.NetworkMode)
	}
	switch v := opts.Namespaces[specs.CgroupNamespace]; v {
	case "":
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	case "host":
	default:
		return nil, nil, fmt.Errorf("a cgroup namespace is private or the host's, not %q", v)
	}
	if len(opts.UIDMappings) > 0 || len(opts.GIDMappings) > 0 {
		if len(opts.UIDMappings) == 0 || len(opts.GIDMappings) == 0 {
			return nil, nil, errors.New("a user namespace needs both uid and gid mappings")
		}
		if err := checkMapped(u, opts.UIDMappings, opts.GIDMappings); err != nil {
			return nil, nil, err
		}
		ns = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace})
	}
	hostname, domainname := opts.Hostname, opts.Domainname
	if opts.Namespaces[specs.UTSNamespace] != "" {
		if domainname != "" {
			return nil, nil, errors.New("conflicting options: --domainname and a shared UTS namespace (--uts)")
		}
		hostname = ""
	}
	if err := checkSysctls(opts.Sysctls, opts.Namespaces, opts.NetworkMode == "host"); err != nil {
		return nil, nil, err
	}
	if opts.ShmSize < 0 {
		return nil, nil, fmt.Errorf("--shm-size %d: SHM size can not be less than 0", opts.ShmSize)
	}
	for i := range mnts {
		if mnts[i].Destination != "/dev/shm" || mnts[i].Type != "tmpfs" || mnts[i].Source != "shm" {
			continue
		}
		switch {
		case opts.NoShm:
			mnts = slices.Delete(mnts, i, i+1)
		case opts.ShmSource != "":
			mnts[i] = specs.Mount{Destination: "/dev/shm", Type: "bind", Source: opts.ShmSource, Options: []string{"rbind", "rprivate"}}
		case opts.ShmSize > 0:
			mnts[i].Options = append(slices.DeleteFunc(slices.Clone(mnts[i].Options), func(o string) bool { return strings.HasPrefix(o, "size=") }),
				fmt.Sprintf("size=%d", opts.ShmSize))
		}
		break
	}

	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: rootfs, Readonly: opts.ReadOnly},
		Process: &specs.Process{
			Terminal: opts.Tty,
			User:     specs.User{UID: u.uid, GID: u.gid, AdditionalGids: u.additionalGids()},
			Args:     args,
			Env:      env,
			Cwd:      cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: slices.Clone(caps),
				Permitted: slices.Clone(caps),
			},
			Rlimits:         rl,
			NoNewPrivileges: opts.NoNewPrivileges,
			OOMScoreAdj:     oomAdj,
		},
		Hostname:   hostname,
		Domainname: domainname,
		Mounts:     mnts,
		Linux: &specs.Linux{
			Resources:   res,
			CgroupsPath: opts.CgroupsPath,
			Namespaces:  ns,
			Seccomp:     sc,
			Devices:     devices,
		},
	}
	if len(opts.Sysctls) > 0 {
		s.Linux.Sysctl = maps.Clone(opts.Sysctls)
	}
	if len(opts.UIDMappings) > 0 {
		s.Linux.UIDMappings = slices.Clone(opts.UIDMappings)
		s.Linux.GIDMappings = slices.Clone(opts.GIDMappings)
	}
	if !opts.Privileged && !opts.SystemPathsUnconfined {
		s.Linux.MaskedPaths = slices.Clone(maskedPaths)
		s.Linux.ReadonlyPaths = slices.Clone(readonlyPaths)
		if opts.MaskedPaths != nil {
			s.Linux.MaskedPaths = slices.Clone(opts.MaskedPaths)
		}
		if opts.ReadonlyPaths != nil {
			s.Linux.ReadonlyPaths = slices.Clone(opts.ReadonlyPaths)
		}
	}
	if len(cfg.Labels) > 0 || len(opts.Labels) > 0 || len(opts.Annotations) > 0 {
		s.Annotations = map[string]string{}
		maps.Copy(s.Annotations, cfg.Labels)
		maps.Copy(s.Annotations, opts.Labels)
		maps.Copy(s.Annotations, opts.Annotations)
	}
	return s, warns, nil
}

// mapped says whether id is inside the container's side of m.
func mapped(m []specs.LinuxIDMapping, id uint32) bool {
	for _, e := range m {
		if id >= e.ContainerID && id-e.ContainerID < e.Size {
			return true
		}
	}
	return false
}

// checkMapped refuses a process user or group the user namespace does not
// map: setuid to it would fail at start, with a less helpful message.
func checkMapped(u execUser, uids, gids []specs.LinuxIDMapping) error {
	size := func(m []specs.LinuxIDMapping) string {
		var out []string
		for _, e := range m {
			out = append(out, fmt.Sprintf("%d-%d", e.ContainerID, uint64(e.ContainerID)+uint64(e.Size)-1))
		}
		return strings.Join(out, ", ")
	}
	if !mapped(uids, u.uid) {
		return fmt.Errorf("the container's user %d is outside its user namespace's uids (%s): give --userns auto:size=N a larger N, or run as another user", u.uid, size(uids))
	}
	for _, g := range append([]uint32{u.gid}, u.sgids...) {
		if !mapped(gids, g) {
			return fmt.Errorf("the container's group %d is outside its user namespace's gids (%s): give --userns auto:size=N a larger N", g, size(gids))
		}
	}
	return nil
}

// command applies docker's rule for the process's argv.
func command(cfg ocispec.ImageConfig, o Options) ([]string, error) {
	entry, cmd := cfg.Entrypoint, cfg.Cmd
	if o.Entrypoint != nil {
		entry, cmd = *o.Entrypoint, nil
	}
	if len(o.Args) > 0 {
		cmd = o.Args
	}
	args := append(slices.Clone(entry), cmd...)
	if len(args) == 0 {
		if o.Entrypoint != nil {
			return nil, errors.New("no command specified: --entrypoint was given empty and without a command (an entrypoint override also drops the image's CMD)")
		}
		return nil, errors.New("no command specified: the image has no CMD or ENTRYPOINT; give a command after the image name")
	}
	return args, nil
}

// setEnv replaces KEY's entry in env, or appends it.
func setEnv(env []string, kv string) []string {
	key, _, _ := strings.Cut(kv, "=")
	for i, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

func unsetEnv(env []string, key string) []string {
	return slices.DeleteFunc(env, func(e string) bool {
		k, _, _ := strings.Cut(e, "=")
		return k == key
	})
}

func hasEnv(env []string, key string) bool {
	return slices.ContainsFunc(env, func(e string) bool {
		k, _, _ := strings.Cut(e, "=")
		return k == key
	})
}

// environment layers docker's base (PATH, HOSTNAME, TERM), the image's
// Env and the options' Env, each replacing earlier values by key; then
// PATH and HOME are filled in when absent.
func environment(image []string, o Options, home string) ([]string, error) {
	env := []string{"PATH=" + DefaultPath}
	if o.Hostname != "" {
		env = append(env, "HOSTNAME="+o.Hostname)
	}
	if o.Tty {
		env = append(env, "TERM=xterm")
	}
	for _, e := range image {
		if k, _, ok := strings.Cut(e, "="); ok && k != "" {
			env = setEnv(env, e)
		}
	}
	lookup := o.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	for _, e := range o.Env {
		k, _, ok := strings.Cut(e, "=")
		if k == "" {
			return nil, fmt.Errorf("environment variable %q has no name", e)
		}
		if ok {
			env = setEnv(env, e)
		} else if v, found := lookup(k); found {
			env = setEnv(env, k+"="+v)
		} else {
			env = unsetEnv(env, k)
		}
	}
	if !hasEnv(env, "PATH") {
		env = append([]string{"PATH=" + DefaultPath}, env...)
	}
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME="+home)
	}
	return env, nil
}

func resources(o Options) (*specs.LinuxResources, error) {
	r := &specs.LinuxResources{}
	if o.Privileged {
		r.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	} else {
		r.Devices = defaultDevices()
	}
	if err := SetLimits(r, o.Memory, o.CPUs, o.PidsLimit); err != nil {
		return nil, err
	}
	return r, nil
}

// SetLimits sets r's memory limit (bytes), CPU quota (CPUs) and pids
// limit (-1 unlimited) as --memory, --cpus and --pids-limit give them; 0
// means none. Create and update both use it; other settings in r stay.
func SetLimits(r *specs.LinuxResources, memory int64, cpus float64, pids int64) error {
	if err := SetMemory(r, memory); err != nil {
		return err
	}
	if err := SetCPUs(r, cpus); err != nil {
		return err
	}
	return SetPids(r, pids)
}

// SetMemory sets r's memory limit (0: none).
func SetMemory(r *specs.LinuxResources, memory int64) error {
	if memory < 0 {
		return fmt.Errorf("memory limit %d is negative", memory)
	}
	if r.Memory != nil {
		r.Memory.Limit = nil
	}
	if memory > 0 {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		r.Memory.Limit = &memory
	}
	return nil
}

// SetCPUs sets r's CPU quota and period from a number of CPUs (0: none).
func SetCPUs(r *specs.LinuxResources, cpus float64) error {
	if cpus < 0 || math.IsNaN(cpus) || math.IsInf(cpus, 0) {
		return fmt.Errorf("--cpus %v must be a positive number", cpus)
	}
	if r.CPU != nil {
		r.CPU.Quota, r.CPU.Period = nil, nil
	}
	if cpus > 0 {
		quota := int64(math.Round(cpus * cpuPeriod))
		if quota < 1000 {
			return fmt.Errorf("--cpus %v is below the minimum of 0.01", cpus)
		}
		period := uint64(cpuPeriod)
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		r.CPU.Quota, r.CPU.Period = &quota, &period
	}
	return nil
}

// SetPids sets r's pids limit (0: none, -1: unlimited).
func SetPids(r *specs.LinuxResources, pids int64) error {
	r.Pids = nil
	switch {
	case pids < -1:
		return fmt.Errorf("pids limit %d: use a positive number, or -1 for unlimited", pids)
	case pids != 0:
		r.Pids = &specs.LinuxPids{Limit: &pids}
	}
	return nil
}
