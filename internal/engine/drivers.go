//go:build linux

package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/berth-dev/berth/internal/runtime"
)

// drivers are the isolations the engine was given: the default one and
// the others a container names (--isolation). A container's record
// names its isolation; Load and Delete, which get only an id, ask every
// driver (a driver knows its own containers and answers ErrNotExist, or
// nothing to delete, cheaply for the others').
type drivers struct {
	def    runtime.Driver
	byName map[string]runtime.Driver
	order  []runtime.Driver
}

func newDrivers(def runtime.Driver, more []runtime.Driver) *drivers {
	d := &drivers{def: def, byName: map[string]runtime.Driver{def.Name(): def}, order: []runtime.Driver{def}}
	for _, m := range more {
		if m == nil || d.byName[m.Name()] != nil {
			continue
		}
		d.byName[m.Name()] = m
		d.order = append(d.order, m)
	}
	return d
}

// Isolations lists the isolations this engine can run, the default first.
func (e *Engine) Isolations() []string {
	out := make([]string, 0, len(e.driver.order))
	for _, d := range e.driver.order {
		out = append(out, d.Name())
	}
	return out
}

// isolation validates an --isolation value ("" and "default" mean the
// default driver) and returns the driver's name.
func (d *drivers) isolation(name string) (string, error) {
	if name == "" || name == "default" {
		return d.def.Name(), nil
	}
	if d.byName[name] == nil {
		names := make([]string, 0, len(d.order))
		for _, x := range d.order {
			names = append(names, x.Name())
		}
		slices.Sort(names)
		return "", fmt.Errorf("--isolation/--runtime %q: this berth runs %s: %w", name, strings.Join(names, ", "), ErrInvalid)
	}
	return name, nil
}

// named returns the driver of a container's recorded isolation (records
// made before there was a choice say "linux" or nothing).
func (d *drivers) named(name string) (runtime.Driver, error) {
	if name == "" || name == "default" {
		return d.def, nil
	}
	if x := d.byName[name]; x != nil {
		return x, nil
	}
	return nil, fmt.Errorf("isolation %q is not available in this berth: %w", name, ErrInvalid)
}

// Load finds the container in whichever driver made it.
func (d *drivers) Load(ctx context.Context, id string) (runtime.Container, error) {
	var first error
	for _, x := range d.order {
		c, err := x.Load(ctx, id)
		if err == nil {
			return c, nil
		}
		if first == nil || !errors.Is(err, runtime.ErrNotExist) && errors.Is(first, runtime.ErrNotExist) {
			first = err
		}
	}
	return nil, first
}

// Delete removes the container from every driver that knows it.
func (d *drivers) Delete(ctx context.Context, id string) error {
	var errs []error
	for _, x := range d.order {
		errs = append(errs, x.Delete(ctx, id))
	}
	return errors.Join(errs...)
}

// layers returns a container's image layers as directories, lowest first,
// for a driver that makes its own root file system (a VM).
func (e *Engine) layers(c *Container) ([]runtime.Layer, error) {
	out := make([]runtime.Layer, 0, len(c.DiffIDs))
	for _, id := range c.DiffIDs {
		dir, err := e.snapshots.Dir(id)
		if err != nil {
			return nil, err
		}
		out = append(out, runtime.Layer{Digest: id, Dir: dir})
	}
	return out, nil
}
