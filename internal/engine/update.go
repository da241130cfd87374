//go:build linux

package engine

import (
	"context"
	"fmt"

	"github.com/berth-dev/berth/internal/engine/spec"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// UpdateOptions are `berth update`'s (docker update's): nil leaves a
// setting as it is.
type UpdateOptions struct {
	Memory    *int64   // bytes, 0 none
	CPUs      *float64 // 0 none
	PidsLimit *int64   // -1 unlimited, 0 none
	Restart   *RestartPolicy

	// The other resources a create takes (spec.Resources), with its
	// checks: CPU shares, CFS period and quota, cpusets, memory plus
	// swap, the memory reservation and the block I/O weight.
	CPUShares, CPUPeriod, CPUQuota *int64
	CpusetCpus, CpusetMems         *string
	MemorySwap, MemoryReservation  *int64
	BlkioWeight                    *uint16
}

// resources says whether o changes any of spec.Resources' settings.
func (o UpdateOptions) resources() bool {
	return o.CPUShares != nil || o.CPUPeriod != nil || o.CPUQuota != nil || o.CpusetCpus != nil || o.CpusetMems != nil ||
		o.MemorySwap != nil || o.MemoryReservation != nil || o.BlkioWeight != nil
}

// Update changes a container's resource limits (at once when it runs, and
// for its next starts) and its restart policy.
func (e *Engine) Update(ctx context.Context, ref string, o UpdateOptions) error {
	_, err := e.UpdateWithWarnings(ctx, ref, o)
	return err
}

// UpdateWithWarnings is Update, with docker's warnings about what the
// host could not apply (a CPU share clamped, no swap accounting).
func (e *Engine) UpdateWithWarnings(ctx context.Context, ref string, o UpdateOptions) ([]string, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	unlock, err := e.lock(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if c, err = e.get(ctx, c.ID); err != nil {
		return nil, err
	}
	switch c.State.Status {
	case StatusCreating, StatusRemoving, StatusDead:
		return nil, fmt.Errorf("container %s is %s: %w", c.Name, c.State.Status, ErrInvalidState)
	}
	if o.Restart != nil && o.Restart.Name != "no" && c.HostConfig.AutoRemove {
		return nil, fmt.Errorf("--restart %s: the container is removed at exit (--rm) and cannot be restarted: %w", o.Restart.Name, ErrInvalid)
	}
	hc := c.HostConfig
	if o.Memory != nil {
		hc.Memory = *o.Memory
	}
	if o.CPUs != nil {
		hc.NanoCPUs = int64(*o.CPUs * 1e9)
	}
	if o.PidsLimit != nil {
		hc.PidsLimit = *o.PidsLimit
	}
	if o.Restart != nil {
		hc.RestartPolicy = *o.Restart
	}
	for _, f := range []struct {
		v   *int64
		dst *int64
	}{{o.CPUShares, &hc.CPUShares}, {o.CPUPeriod, &hc.CPUPeriod}, {o.CPUQuota, &hc.CPUQuota}, {o.MemorySwap, &hc.MemorySwap}, {o.MemoryReservation, &hc.MemoryReservation}} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
	if o.CpusetCpus != nil {
		hc.CpusetCpus = *o.CpusetCpus
	}
	if o.CpusetMems != nil {
		hc.CpusetMems = *o.CpusetMems
	}
	if o.BlkioWeight != nil {
		hc.BlkioWeight = *o.BlkioWeight
	}
	var warnings []string
	// The bundle's config.json: the next start runs with the new limits.
	err = e.editBundle(c, func(s *specs.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		r := s.Linux.Resources
		if o.Memory != nil {
			if swap := hc.MemorySwap; hc.Memory > 0 && swap > 0 && hc.Memory > swap {
				// docker's refusal: the memory+swap limit stays as it was.
				return fmt.Errorf("--memory %d: memory limit should be smaller than already set memoryswap limit (%d), update the memoryswap at the same time: %w", hc.Memory, swap, ErrInvalid)
			}
			if err := spec.SetMemory(r, hc.Memory); err != nil {
				return fmt.Errorf("%w: %w", err, ErrInvalid)
			}
		}
		if o.CPUs != nil {
			if err := spec.SetCPUs(r, float64(hc.NanoCPUs)/1e9); err != nil {
				return fmt.Errorf("%w: %w", err, ErrInvalid)
			}
		}
		if o.PidsLimit != nil {
			if err := spec.SetPids(r, hc.PidsLimit); err != nil {
				return fmt.Errorf("%w: %w", err, ErrInvalid)
			}
		}
		if o.resources() {
			x := spec.Resources{CPUShares: hc.CPUShares, CPUPeriod: hc.CPUPeriod, CPUQuota: hc.CPUQuota, CpusetCpus: hc.CpusetCpus, CpusetMems: hc.CpusetMems,
				MemorySwap: hc.MemorySwap, MemoryReservation: hc.MemoryReservation, OomKillDisable: hc.OomKillDisable, BlkioWeight: hc.BlkioWeight}
			warns, err := spec.UpdateResources(r, hc.Memory, float64(hc.NanoCPUs)/1e9, x, nil)
			if err != nil {
				return fmt.Errorf("%w: %w", err, ErrInvalid)
			}
			for _, w := range warns {
				warnings = append(warnings, w.Message)
			}
		}
		if c.State.Status == StatusRunning || c.State.Status == StatusPaused {
			if rc, err := e.driver.Load(ctx, c.ID); err == nil {
				if err := rc.Update(ctx, s.Linux.Resources); err != nil {
					return fmt.Errorf("container %s: update its limits: %w", c.Name, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	updated, err := e.update(ctx, c.ID, func(r *Container) error {
		r.HostConfig.Memory, r.HostConfig.NanoCPUs, r.HostConfig.PidsLimit = hc.Memory, hc.NanoCPUs, hc.PidsLimit
		r.HostConfig.RestartPolicy = hc.RestartPolicy
		r.HostConfig.CPUShares, r.HostConfig.CPUPeriod, r.HostConfig.CPUQuota = hc.CPUShares, hc.CPUPeriod, hc.CPUQuota
		r.HostConfig.CpusetCpus, r.HostConfig.CpusetMems = hc.CpusetCpus, hc.CpusetMems
		r.HostConfig.MemorySwap, r.HostConfig.MemoryReservation, r.HostConfig.BlkioWeight = hc.MemorySwap, hc.MemoryReservation, hc.BlkioWeight
		return nil
	})
	if err == nil {
		e.emit(updated, "update", nil)
	}
	return warnings, err
}
