//go:build linux

package engine

import (
	"context"
	"errors"

	"github.com/berth-dev/berth/internal/events"
	"github.com/berth-dev/berth/internal/network"
)

// PruneContainers removes the containers of the engine's namespace that
// do not run (created, exited, dead) and that pick selects (nil: all),
// returning their IDs and the bytes their writable layers held. A
// container it cannot remove is left and reported in failed; the
// others still go. err is a failure to list.
func (e *Engine) PruneContainers(ctx context.Context, pick func(*Container) bool) (removed []string, reclaimed int64, failed, err error) {
	list, err := e.List(ctx)
	if err != nil {
		return nil, 0, nil, err
	}
	var errs []error
	for _, c := range list {
		if c.State.Status != StatusExited && c.State.Status != StatusCreated && c.State.Status != StatusDead {
			continue
		}
		if pick != nil && !pick(c) {
			continue
		}
		size := DirSize(e.ContainerPaths(c.ID).Upper)
		if err := e.Remove(ctx, c.ID, RemoveOptions{}); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, c.ID)
		reclaimed += size
	}
	e.emitPrune(events.TypeContainer, reclaimed)
	return removed, reclaimed, errors.Join(errs...), nil
}

// PruneNetworks removes the networks no container uses (not the default
// one) that pick selects (nil: all), returning their names. A network
// that cannot be removed (a container joined it meanwhile) is left.
func (e *Engine) PruneNetworks(ctx context.Context, pick func(*network.Config) bool) ([]string, error) {
	m, err := e.networks()
	if err != nil {
		return nil, err
	}
	list, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, n := range list {
		if n.Default || pick != nil && !pick(n) {
			continue
		}
		if users, err := e.NetworkUsers(ctx, n.Name); err != nil || len(users) > 0 {
			continue
		}
		if err := e.RemoveNetwork(ctx, n.Name); err == nil {
			removed = append(removed, n.Name)
		}
	}
	e.emitPrune(events.TypeNetwork, 0)
	return removed, nil
}
