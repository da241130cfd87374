//go:build linux

package engine

import (
	"context"
	"fmt"

	"github.com/berth-dev/berth/internal/engine/spec"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// UpdateOptions are `berth update`'s: nil leaves a setting as it is.
type UpdateOptions struct {
	Memory    *int64   // bytes, 0 none
	CPUs      *float64 // 0 none
	PidsLimit *int64   // -1 unlimited, 0 none
	Restart   *RestartPolicy
}

// Update changes a container's resource limits (at once when it runs, and
// for its next starts) and its restart policy.
func (e *Engine) Update(ctx context.Context, ref string, o UpdateOptions) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	unlock, err := e.lock(ctx, c.ID)
	if err != nil {
		return err
	}
	defer unlock()
	if c, err = e.get(ctx, c.ID); err != nil {
		return err
	}
	switch c.State.Status {
	case StatusCreating, StatusRemoving, StatusDead:
		return fmt.Errorf("container %s is %s: %w", c.Name, c.State.Status, ErrInvalidState)
	}
	if o.Restart != nil && o.Restart.Name != "no" && c.HostConfig.AutoRemove {
		return fmt.Errorf("--restart %s: the container is removed at exit (--rm) and cannot be restarted: %w", o.Restart.Name, ErrInvalid)
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
		return err
	}
	updated, err := e.update(ctx, c.ID, func(r *Container) error {
		r.HostConfig.Memory, r.HostConfig.NanoCPUs, r.HostConfig.PidsLimit = hc.Memory, hc.NanoCPUs, hc.PidsLimit
		r.HostConfig.RestartPolicy = hc.RestartPolicy
		return nil
	})
	if err == nil {
		e.emit(updated, "update", nil)
	}
	return err
}
