//go:build linux

package cli

import (
	"context"
	"net/netip"
	"strconv"
	"time"

	mobynet "github.com/moby/moby/api/types/network"
	mobyvolume "github.com/moby/moby/api/types/volume"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/network"
)

// inspectNetwork is `network inspect`'s object: docker's network.Inspect.
// The subnet and gateway are in IPAM.Config, the bridge's name in the
// option docker names it with, and Containers are the containers with an
// endpoint on the network now (docker's: running ones), keyed by ID.
func inspectNetwork(ctx context.Context, e *engine.Engine, n *network.Config) mobynet.Inspect {
	out := mobynet.Inspect{
		Network: mobynet.Network{
			Name: n.Name, ID: n.ID, Created: n.Created.UTC(), Scope: "local", Driver: n.Driver,
			EnableIPv4: true, EnableIPv6: n.IPv6, Internal: n.Internal,
			IPAM:    mobynet.IPAM{Driver: "default", Options: map[string]string{}, Config: []mobynet.IPAMConfig{}},
			Options: map[string]string{}, Labels: map[string]string{},
		},
		Containers: map[string]mobynet.EndpointResource{},
	}
	for k, v := range n.Options {
		out.Options[k] = v
	}
	for k, v := range n.Labels {
		out.Labels[k] = v
	}
	if n.Bridge != "" {
		out.Options["com.docker.network.bridge.name"] = n.Bridge
	}
	if n.Parent != "" {
		out.Options["parent"] = n.Parent
	}
	if n.VLAN != 0 {
		out.Options["vlan"] = strconv.Itoa(n.VLAN)
	}
	var ipc mobynet.IPAMConfig
	ipc.Subnet, _ = netip.ParsePrefix(n.Subnet)
	ipc.Gateway, _ = netip.ParseAddr(n.Gateway)
	ipc.IPRange, _ = netip.ParsePrefix(n.IPRange)
	if ipc.Subnet.IsValid() {
		out.IPAM.Config = append(out.IPAM.Config, ipc)
	}
	var ipc6 mobynet.IPAMConfig
	ipc6.Subnet, _ = netip.ParsePrefix(n.Subnet6)
	ipc6.Gateway, _ = netip.ParseAddr(n.Gateway6)
	ipc6.IPRange, _ = netip.ParsePrefix(n.IPRange6)
	if ipc6.Subnet.IsValid() {
		out.IPAM.Config = append(out.IPAM.Config, ipc6)
	}
	list, _ := e.List(ctx)
	for _, c := range list {
		for _, ep := range c.NetworkSettings.Endpoints {
			if ep.Network != n.Name || ep.IP == "" {
				continue
			}
			r := mobynet.EndpointResource{Name: c.Name, EndpointID: endpointID(c.ID, n.Name), MacAddress: parseMAC(ep.MAC)}
			if ip, err := netip.ParseAddr(ep.IP); err == nil {
				r.IPv4Address = netip.PrefixFrom(ip, ep.PrefixLen)
			}
			if ip, err := netip.ParseAddr(ep.IPv6); err == nil {
				r.IPv6Address = netip.PrefixFrom(ip, ep.PrefixLen6)
			}
			out.Containers[c.ID] = r
		}
	}
	return out
}

// inspectVolume is `volume inspect`'s object: docker's volume.Volume. An
// anonymous volume has docker's label for one.
func inspectVolume(v *engine.Volume) mobyvolume.Volume {
	out := mobyvolume.Volume{Name: v.Name, Driver: v.Driver, Mountpoint: v.Mountpoint, Scope: v.Scope,
		Labels: map[string]string{}}
	if out.Driver == "" {
		out.Driver = "local"
	}
	if out.Scope == "" {
		out.Scope = "local"
	}
	if !v.CreatedAt.IsZero() {
		out.CreatedAt = v.CreatedAt.Local().Format(time.RFC3339)
	}
	if len(v.Options) > 0 {
		out.Options = map[string]string{}
	}
	for k, val := range v.Options {
		out.Options[k] = val
	}
	for k, val := range v.Labels {
		out.Labels[k] = val
	}
	if v.Anonymous {
		out.Labels[anonymousVolumeLabel] = ""
	}
	return out
}

// anonymousVolumeLabel is docker's label on an anonymous volume.
const anonymousVolumeLabel = "com.docker.volume.anonymous"
