package vm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/internal/runtime/linux/cgroup"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A VM container's host processes (the shim, QEMU, virtiofsd) run in the
// container's cgroup on the host: the spec's linux.cgroupsPath, the path a
// linux container of the same spec would have (the guest's runtime applies
// the spec's own limits to the container inside the guest). On the host
// that cgroup bounds what the VM as a whole takes: its memory (the guest's
// RAM plus QEMU's own: device models, TCG's translated code, the shim) and
// its number of tasks; its devices are not restricted (QEMU opens
// /dev/kvm and the shim /dev/net/tun and /dev/ptmx).

// vmHostOverheadMiB is what the VM's host processes may take beyond the
// guest's RAM. Measured under TCG with a 256 MiB guest: QEMU's own
// mappings besides guest RAM 125-140 MiB (TCG's code buffer the largest),
// the shim 9 MiB, virtiofsd 2 MiB; KVM needs less.
const vmHostOverheadMiB = 256

// vmHostPidsMax bounds the VM's host tasks: QEMU's threads (a vCPU each,
// its RCU, I/O and worker threads), virtiofsd's thread pool, the shim's.
const vmHostPidsMax = 1024

// hostCgroup is where a VM's host processes run and what bounds them.
type hostCgroup struct {
	ID        string `json:"id"`
	Path      string `json:"path,omitempty"`
	MemoryMax int64  `json:"memoryMax"`
	PidsMax   int64  `json:"pidsMax"`
}

// cgroupPathsFile, in the VM's directory, holds the cgroup's directories
// once the shim made them, for Delete (the shim may be gone by then).
const cgroupPathsFile = "cgroup.json"

func newHostCgroup(id string, spec *specs.Spec, m *machine) *hostCgroup {
	h := &hostCgroup{ID: id, MemoryMax: int64(m.MemoryMiB+vmHostOverheadMiB) << 20, PidsMax: vmHostPidsMax}
	if spec.Linux != nil {
		h.Path = spec.Linux.CgroupsPath
	}
	return h
}

// enter makes the cgroup, sets its bounds and moves the calling process
// (the shim, before it starts QEMU and virtiofsd, which inherit it) in.
func (h *hostCgroup) enter(dir string) error {
	m, err := cgroup.New(cgroup.Config{ID: h.ID, Path: h.Path})
	if err != nil {
		return err
	}
	if err := m.Apply(-1); err != nil {
		return fmt.Errorf("the VM's host cgroup: %w", err)
	}
	// Written before anything runs in it, so that Delete finds it even
	// if the shim dies right after.
	b, err := json.Marshal(m.Paths())
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, cgroupPathsFile), b, 0o600); err != nil {
		return err
	}
	mem, pids := h.MemoryMax, h.PidsMax
	res := &specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: &mem},
		Pids:    &specs.LinuxPids{Limit: &pids},
		Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}},
	}
	if err := m.Set(res); err != nil {
		return fmt.Errorf("the VM's host cgroup: bounds: %w", err)
	}
	if err := m.Apply(os.Getpid()); err != nil {
		return fmt.Errorf("the VM's host cgroup: enter: %w", err)
	}
	return nil
}

// destroyHostCgroup removes the cgroup a VM's shim made (its processes
// are gone by then).
func destroyHostCgroup(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, cgroupPathsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var paths map[string]string
	if err := json.Unmarshal(b, &paths); err != nil {
		return fmt.Errorf("%s: %w", cgroupPathsFile, err)
	}
	m, err := cgroup.Load(paths, false)
	if err != nil {
		return err
	}
	return m.Destroy()
}
