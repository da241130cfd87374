//go:build linux

package cgroup

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/cgroups"
	// Registers cgroups.DevicesSetV1/DevicesSetV2 (devices.allow/deny
	// writer and the v2 eBPF device filter). Without it the library
	// refuses every device rule with ErrDevicesUnsupported.
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/cgroups/systemd"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Host cgroup layouts reported by DetectMode.
const (
	ModeV1     = "v1"     // only cgroup v1 hierarchies
	ModeV2     = "v2"     // cgroup2 mounted at /sys/fs/cgroup
	ModeHybrid = "hybrid" // v1 controllers plus a controller-less cgroup2 at /sys/fs/cgroup/unified
)

// Manager is what the runtime needs from a container's cgroup. The real one
// wraps opencontainers/cgroups; cgrouptest.Recorder records calls for unit
// tests.
type Manager interface {
	// Apply creates the cgroup(s) and moves pid in. pid -1 only creates
	// them.
	Apply(pid int) error
	// Set applies or updates limits (used at create and by `runtime
	// update`). Device rules are written by the first Set of a manager made
	// by New, and afterwards only when res.Devices is non-empty.
	Set(res *specs.LinuxResources) error
	Freeze() error
	Thaw() error
	Paused() (bool, error)
	// Pids returns every process in the cgroup, including sub-cgroups.
	Pids() ([]int, error)
	Stats() (*Stats, error)
	// Destroy removes the cgroup directories (sub-cgroups first), retrying
	// busy (EBUSY) ones for up to 2 seconds.
	// It does not kill processes; a cgroup that still has some is not
	// removed and an error is returned. Already-removed directories are
	// not an error, so Destroy may be called repeatedly.
	Destroy() error
	// Paths returns the cgroup directories, to persist in the container
	// state and pass to Load later. v1/hybrid: controller name -> directory
	// ("" is the cgroup2 directory on hybrid hosts, "name=systemd" the
	// named hierarchy); v2: the single key "".
	Paths() map[string]string
	// OOMKillCount returns how many processes the kernel OOM killer killed
	// in the cgroup (memory.oom_control's oom_kill on v1, kernel >= 4.13;
	// memory.events' oom_kill on v2). It is a cheap single-file read.
	OOMKillCount() (uint64, error)
}

// Config says where the container's cgroup is.
type Config struct {
	// ID is the container ID; it names the default cgroup "/berth/<id>".
	ID string
	// Path is the spec's linux.cgroupsPath. See the package documentation
	// for how it is interpreted.
	Path string
	// Systemd selects the systemd driver; Path is then "slice:prefix:name".
	Systemd bool
	// Resources is the spec's linux.resources (may be nil). New uses it to
	// create the cgroups (cpuset parents need it); limits are only written
	// by Set.
	Resources *specs.LinuxResources
	// Devices is the spec's linux.devices: these are always allowed.
	Devices []specs.LinuxDevice
}

// DetectMode reports the host's cgroup layout: ModeV1, ModeV2 or ModeHybrid.
func DetectMode() string {
	switch {
	case cgroups.IsCgroup2UnifiedMode():
		return ModeV2
	case cgroups.IsCgroup2HybridMode():
		return ModeHybrid
	default:
		return ModeV1
	}
}

// libManager implements Manager on top of opencontainers/cgroups.
type libManager struct {
	mu      sync.Mutex
	lib     cgroups.Manager
	name    string // what error messages call the cgroup when no single directory is involved
	unified bool   // cgroup v2 host
	systemd bool   // systemd driver
	devices []specs.LinuxDevice
	// devicesDone is set once device rules have been written (always true
	// for loaded managers: the container was configured at create).
	devicesDone bool
	paths       map[string]string
}

// New returns a Manager for a container that is being created. Nothing is
// created on disk until Apply.
func New(cfg Config) (Manager, error) {
	name := cfg.Path
	if name == "" {
		name = path.Join(DefaultParent, cfg.ID)
	}
	fail := func(err error) (Manager, error) { return nil, &Error{Op: "new", Path: name, Err: err} }

	if cfg.Systemd && !systemd.IsRunningSystemd() {
		return fail(ErrSystemdUnavailable)
	}
	res, err := ToResources(cfg.Resources, cfg.Devices)
	if err != nil {
		return fail(err)
	}
	unified := cgroups.IsCgroup2UnifiedMode()
	if !unified && len(res.Unified) > 0 {
		return fail(fmt.Errorf("%w (this host is %s)", ErrUnifiedNeedsV2, DetectMode()))
	}

	cg := &cgroups.Cgroup{Resources: res, Systemd: cfg.Systemd}
	inner := ""
	if cfg.Systemd {
		u, err := parseSystemdPath(cfg.ID, cfg.Path)
		if err != nil {
			return fail(err)
		}
		cg.Parent, cg.ScopePrefix, cg.Name = u.Slice, u.Prefix, u.Name
		name = u.Slice + ":" + u.Prefix + ":" + u.Name
	} else {
		inner, err = fsPath(cfg.ID, cfg.Path)
		if err != nil {
			return fail(err)
		}
		cg.Path = inner
		name = inner
	}

	lib, err := manager.New(cg)
	if err != nil {
		return fail(err)
	}
	if !cfg.Systemd && !unified && !path.IsAbs(inner) {
		// Hybrid host, relative path: keep the cgroup2 directory next to
		// the v1 ones (below the runtime's own cgroup).
		paths := maps.Clone(lib.GetPaths())
		if _, ok := paths[""]; ok {
			f, err := os.Open("/proc/self/cgroup")
			if err != nil {
				return fail(err)
			}
			own, err := ownUnifiedCgroup(f)
			f.Close()
			if err != nil {
				return fail(err)
			}
			paths[""] = hybridUnifiedPath(hybridUnifiedMount, own, inner)
			if lib, err = manager.NewWithPaths(cg, paths); err != nil {
				return fail(err)
			}
		}
	}

	m := &libManager{lib: lib, name: name, unified: unified, systemd: cfg.Systemd, devices: slices.Clone(cfg.Devices)}
	m.paths = maps.Clone(lib.GetPaths())
	if unified {
		if dir := m.paths[""]; dir != "" {
			m.name = dir
		}
	}
	return m, nil
}

// Load returns a Manager for an existing container from the paths its
// Manager's Paths returned. The directories need not exist any more (Destroy
// then succeeds; other methods fail). A loaded manager does not know the
// container's linux.devices; Set leaves device rules alone unless
// res.Devices is non-empty, in which case the result is res.Devices followed
// by DefaultDeviceRules (include linux.devices entries as allow rules in
// res.Devices to keep them).
func Load(paths map[string]string, systemdDriver bool) (Manager, error) {
	fail := func(name string, err error) (Manager, error) { return nil, &Error{Op: "load", Path: name, Err: err} }
	if len(paths) == 0 {
		return fail("(none)", errors.New("no cgroup paths to load"))
	}
	for k, p := range paths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return fail(p, fmt.Errorf("controller %q: path %q is not a clean absolute path", k, p))
		}
	}
	if systemdDriver && !systemd.IsRunningSystemd() {
		return fail(anyPath(paths), ErrSystemdUnavailable)
	}
	unified := cgroups.IsCgroup2UnifiedMode()
	name := paths[""]
	if unified {
		if _, ok := paths[""]; !ok || len(paths) != 1 {
			return fail(anyPath(paths), fmt.Errorf("cgroup v2 host wants exactly one path with key \"\", got %v", paths))
		}
	} else {
		dev, ok := paths["devices"]
		if !ok {
			return fail(anyPath(paths), fmt.Errorf("cgroup v1 paths lack the devices controller: %v", paths))
		}
		name = dev
		if mnt, err := cgroups.FindCgroupMountpoint("", "devices"); err == nil {
			if rel, err := filepath.Rel(mnt, dev); err == nil && filepath.IsLocal(rel) {
				name = "/" + rel
			}
		}
	}

	cg := &cgroups.Cgroup{Resources: &cgroups.Resources{}, Systemd: systemdDriver}
	if systemdDriver {
		dir := paths[""]
		if !unified {
			dir = paths["devices"]
		}
		u := systemdUnitFromPath(dir)
		cg.Parent, cg.ScopePrefix, cg.Name = u.Slice, u.Prefix, u.Name
	}
	lib, err := manager.NewWithPaths(cg, maps.Clone(paths))
	if err != nil {
		return fail(name, err)
	}
	return &libManager{lib: lib, name: name, unified: unified, systemd: systemdDriver, devicesDone: true, paths: maps.Clone(paths)}, nil
}

func anyPath(paths map[string]string) string {
	for _, k := range []string{"", "devices", "memory"} {
		if p, ok := paths[k]; ok {
			return p
		}
	}
	for _, p := range paths {
		return p
	}
	return "(none)"
}

func (m *libManager) Apply(pid int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.lib.Apply(pid); err != nil {
		return wrapError("apply", m.name, err)
	}
	m.paths = maps.Clone(m.lib.GetPaths())
	return nil
}

func (m *libManager) Set(res *specs.LinuxResources) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := ToResources(res, m.devices)
	if err != nil {
		return &Error{Op: "set", Path: m.name, Err: err}
	}
	if !m.unified && len(r.Unified) > 0 {
		return &Error{Op: "set", Path: m.name, Err: fmt.Errorf("%w (this host is %s)", ErrUnifiedNeedsV2, DetectMode())}
	}
	applyDevices := !m.devicesDone || (res != nil && len(res.Devices) > 0)
	r.SkipDevices = !applyDevices
	if err := m.lib.Set(r); err != nil {
		return wrapError("set", m.name, err)
	}
	if applyDevices {
		m.devicesDone = true
	}
	if !m.unified {
		if err := m.setV1Extras(extrasFrom(res)); err != nil {
			return wrapError("set", m.name, err)
		}
	}
	return nil
}

// setV1Extras writes the v1 memory knobs the library has no field for.
func (m *libManager) setV1Extras(x v1Extras) error {
	if x.kernelTCP == nil && x.useHierarchy == nil {
		return nil
	}
	dir := m.paths["memory"]
	if dir == "" {
		return errors.New("memory.kernelTCP/useHierarchy set but the memory controller is not available")
	}
	if x.useHierarchy != nil {
		v := "0"
		if *x.useHierarchy {
			v = "1"
		}
		if err := cgroups.WriteFile(dir, "memory.use_hierarchy", v); err != nil {
			return err
		}
	}
	if x.kernelTCP != nil {
		if err := cgroups.WriteFile(dir, "memory.kmem.tcp.limit_in_bytes", strconv.FormatInt(*x.kernelTCP, 10)); err != nil {
			return err
		}
	}
	return nil
}

func (m *libManager) Freeze() error {
	return wrapError("freeze", m.name, m.lib.Freeze(cgroups.Frozen))
}

func (m *libManager) Thaw() error {
	return wrapError("thaw", m.name, m.lib.Freeze(cgroups.Thawed))
}

func (m *libManager) Paused() (bool, error) {
	st, err := m.lib.GetFreezerState()
	if err != nil {
		return false, wrapError("paused", m.name, err)
	}
	return st == cgroups.Frozen, nil
}

func (m *libManager) Pids() ([]int, error) {
	pids, err := m.lib.GetAllPids()
	if err != nil {
		return nil, wrapError("pids", m.name, err)
	}
	return pids, nil
}

func (m *libManager) Stats() (*Stats, error) {
	st, err := m.lib.GetStats()
	if err != nil {
		return nil, wrapError("stats", m.name, err)
	}
	return convertStats(st), nil
}

// destroyTimeout bounds how long Destroy keeps retrying directories that
// are busy (EBUSY: processes still exiting, or a racing sub-cgroup).
const destroyTimeout = 2 * time.Second

func (m *libManager) Destroy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var libErr error
	if m.systemd {
		// Stops the transient unit; directories are removed below.
		libErr = m.lib.Destroy()
	}
	remaining := make([]string, 0, len(m.paths))
	for _, dir := range m.paths {
		if dir != "" && !slices.Contains(remaining, dir) {
			remaining = append(remaining, dir)
		}
	}
	slices.Sort(remaining)
	errs := map[string]error{}
	deadline := time.Now().Add(destroyTimeout)
	delay := 5 * time.Millisecond
	for {
		next := remaining[:0]
		for _, dir := range remaining {
			err := removeCgroupTree(dir)
			if err == nil {
				delete(errs, dir)
				continue
			}
			errs[dir] = err
			if errors.Is(err, unix.EBUSY) {
				next = append(next, dir)
			}
		}
		remaining = next
		if len(remaining) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(delay)
		delay = min(2*delay, 200*time.Millisecond)
	}
	var out []error
	for _, dir := range slices.Sorted(maps.Keys(errs)) {
		out = append(out, wrapError("destroy", dir, errs[dir]))
	}
	if len(out) == 0 && libErr != nil {
		out = append(out, wrapError("destroy", m.name, libErr))
	}
	return errors.Join(out...)
}

// removeCgroupTree removes dir and any sub-cgroups below it (deepest first).
// A directory that does not exist is not an error. Cgroup directories only
// contain interface files, which rmdir ignores, and sub-cgroup directories.
func removeCgroupTree(dir string) error {
	err := unix.Rmdir(dir)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.ENOTEMPTY) {
		return &os.PathError{Op: "rmdir", Path: dir, Err: err}
	}
	entries, rerr := os.ReadDir(dir)
	if rerr != nil {
		if errors.Is(rerr, os.ErrNotExist) {
			return nil
		}
		return rerr
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "rmdir", Path: dir, Err: err}
	}
	return nil
}

func (m *libManager) Paths() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.paths)
}

func (m *libManager) OOMKillCount() (uint64, error) {
	n, err := m.lib.OOMKillCount()
	if err != nil {
		return 0, wrapError("oom-kill-count", m.name, err)
	}
	return n, nil
}
