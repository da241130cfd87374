//go:build linux

package cli

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/berth-dev/berth/internal/dockerapi"
	"github.com/berth-dev/berth/internal/engine"
	"github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"
)

// The docker-shaped views of berth's objects that the Docker API serves
// (internal/dockerapi) are the CLI's inspect mapping: one mapping, so the
// two doors cannot disagree.
func dockerViews() dockerapi.Views {
	return dockerapi.Views{Container: inspectContainer, Summary: dockerSummary, Image: imageInspect, Network: inspectNetwork, Volume: inspectVolume}
}

// dockerSummary is docker's row of a container listing (GET
// /containers/json), with the Status text `berth ps` prints.
func dockerSummary(ctx context.Context, e *engine.Engine, c *engine.Container, now time.Time) container.Summary {
	in := inspectContainer(ctx, e, c)
	s := container.Summary{
		ID: c.ID, Names: []string{"/" + c.Name}, Image: c.Config.Image, ImageID: c.Image,
		Command: commandText(c), Created: c.Created.Unix(),
		Labels: c.Config.Labels, State: container.ContainerState(in.State.Status), Status: statusText(c, now),
		Ports: []container.PortSummary{}, Mounts: in.Mounts,
	}
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.HostConfig.NetworkMode = c.HostConfig.NetworkMode
	for _, p := range c.NetworkSettings.Ports() {
		ps := container.PortSummary{PrivatePort: uint16(p.ContainerPort), PublicPort: uint16(p.HostPort), Type: p.Protocol}
		ip := p.HostIP
		if ip == "" {
			ip = "0.0.0.0"
		}
		ps.IP, _ = netip.ParseAddr(ip)
		s.Ports = append(s.Ports, ps)
	}
	if c.Running() {
		// An exposed port that is not published is listed by itself
		// (docker ps's "7000/tcp").
		for _, p := range exposedOnly(c) {
			s.Ports = append(s.Ports, p)
		}
	}
	if in.NetworkSettings != nil {
		s.NetworkSettings = &container.NetworkSettingsSummary{Networks: in.NetworkSettings.Networks}
	}
	if in.State.Health != nil {
		s.Health = &container.HealthSummary{Status: in.State.Health.Status, FailingStreak: in.State.Health.FailingStreak}
	}
	return s
}

// exposedOnly are c's exposed ports that no published port maps, as
// docker's listing shows them: the container's port and protocol alone.
func exposedOnly(c *engine.Container) []container.PortSummary {
	published := map[string]bool{}
	for _, p := range c.NetworkSettings.Ports() {
		published[fmt.Sprintf("%d/%s", p.ContainerPort, p.Protocol)] = true
	}
	var out []container.PortSummary
	for k := range c.Config.ExposedPorts {
		p, err := mobynet.ParsePort(k)
		if err != nil || published[p.String()] {
			continue
		}
		out = append(out, container.PortSummary{PrivatePort: p.Num(), Type: string(p.Proto())})
	}
	slices.SortFunc(out, func(a, b container.PortSummary) int { return int(a.PrivatePort) - int(b.PrivatePort) })
	return out
}
