//go:build linux

package engine

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/events"
	"github.com/berth-dev/berth/internal/network"
)

// Events is the root's event journal (berth events).
func (e *Engine) Events() *events.Journal { return e.events }

// Changed is closed at the event journal's next change after the call,
// when the engine watches it (Options.Reap); else it never is. A wait for
// what another process records takes it before looking, and looks again
// when it is closed or at its poll, whichever comes first: every berth
// process appends its event right after what it records.
func (e *Engine) Changed() <-chan struct{} { return e.changes.Next() }

func openJournal(root string) *events.Journal { return events.ForRoot(root) }

// emit records an event about c, with docker's attributes (name, image,
// the container's labels) and extra. A lost event never fails the
// operation it reports.
func (e *Engine) emit(c *Container, action string, extra map[string]string) {
	attrs := make(map[string]string, len(c.Config.Labels)+len(extra)+2)
	for k, v := range c.Config.Labels {
		attrs[k] = v
	}
	attrs["name"], attrs["image"] = c.Name, c.Config.Image
	if c.Namespace != "" {
		attrs[events.AttrNamespace] = c.Namespace
	}
	for k, v := range extra {
		attrs[k] = v
	}
	e.events.Append(events.New(events.TypeContainer, action, c.ID, attrs))
}

// emitID records an event about the container id, whose record may be
// gone or half made.
func (e *Engine) emitID(ctx context.Context, id, action string, extra map[string]string) {
	c, err := e.get(ctx, id)
	if err != nil {
		c = &Container{ID: id}
	}
	e.emit(c, action, extra)
}

// emitRef records an event about the container ref names, if it is
// still there.
func (e *Engine) emitRef(ctx context.Context, ref, action string, extra map[string]string) {
	if c, err := e.get(ctx, ref); err == nil {
		e.emit(c, action, extra)
	}
}

// emitPrune records a prune of typ (events.TypeContainer, ...), as docker
// does: no actor, the space reclaimed as an attribute.
func (e *Engine) emitPrune(typ string, reclaimed int64) {
	e.events.Append(events.New(typ, "prune", "", map[string]string{"reclaimed": strconv.FormatInt(reclaimed, 10)}))
}

func (e *Engine) emitNetwork(action string, n *network.Config, containerID string) {
	attrs := map[string]string{"name": n.Name, "type": n.Driver}
	if containerID != "" {
		attrs["container"] = containerID
	}
	e.events.Append(events.New(events.TypeNetwork, action, n.ID, attrs))
}

// emitEndpoints records a container joining (connect) or leaving
// (disconnect) the networks of eps.
func (e *Engine) emitEndpoints(ctx context.Context, action, containerID string, eps []network.Endpoint) {
	if len(eps) == 0 {
		return
	}
	m, err := e.networks()
	if err != nil {
		return
	}
	for _, ep := range eps {
		if ep.CNI != nil {
			continue // not a network of berth's
		}
		if n, err := m.Get(ctx, ep.Network); err == nil {
			e.emitNetwork(action, n, containerID)
		}
	}
}

func (e *Engine) emitVolume(action, name string) {
	e.events.Append(events.New(events.TypeVolume, action, name, map[string]string{"driver": "local"}))
}

// execAction is docker's exec event action: "exec_start: cmd args".
func execAction(action string, cmd []string) string {
	return action + ": " + strings.Join(cmd, " ")
}

func exitCodeAttr(code int) map[string]string {
	return map[string]string{"exitCode": strconv.Itoa(code)}
}

// CreateNetwork makes a network.
func (e *Engine) CreateNetwork(ctx context.Context, o network.CreateOptions) (*network.Config, error) {
	m, err := e.networks()
	if err != nil {
		return nil, err
	}
	c, err := m.Create(ctx, o)
	if err == nil {
		e.emitNetwork("create", c, "")
	}
	return c, err
}

// RemoveNetwork deletes a network no container uses.
func (e *Engine) RemoveNetwork(ctx context.Context, name string) error {
	m, err := e.networks()
	if err != nil {
		return err
	}
	users, err := e.NetworkUsers(ctx, name)
	if err != nil {
		return err
	}
	// The DELs deferred on it need its configuration: they go first.
	if err := e.runDeferredDels(ctx, name); err != nil {
		return fmt.Errorf("network %s: the deferred DELs of removed containers: %w", name, err)
	}
	c, err := m.Get(ctx, name)
	if err != nil {
		return err
	}
	if err := m.Remove(ctx, name, users); err != nil {
		return err
	}
	e.emitNetwork("destroy", c, "")
	return nil
}
