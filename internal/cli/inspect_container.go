//go:build linux

package cli

import (
	"context"
	"strconv"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/network"
)

// containerView is `inspect`'s container: the record, with docker's
// NetworkSettings (networks keyed by name, ports as a map), so that
// templates such as {{.NetworkSettings.Networks.NAME.IPAddress}} work as
// with docker.
type containerView struct {
	*engine.Container
	NetworkSettings netSettingsView `json:"NetworkSettings"`
}

type portBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

type ipamConfig struct {
	IPv4Address string `json:"IPv4Address,omitempty"`
}

// endpointView is docker's EndpointSettings.
type endpointView struct {
	IPAMConfig          *ipamConfig       `json:"IPAMConfig"`
	Links               []string          `json:"Links"`
	Aliases             []string          `json:"Aliases"`
	MacAddress          string            `json:"MacAddress"`
	DriverOpts          map[string]string `json:"DriverOpts"`
	NetworkID           string            `json:"NetworkID"`
	EndpointID          string            `json:"EndpointID"`
	Gateway             string            `json:"Gateway"`
	IPAddress           string            `json:"IPAddress"`
	IPPrefixLen         int               `json:"IPPrefixLen"`
	IPv6Gateway         string            `json:"IPv6Gateway"`
	GlobalIPv6Address   string            `json:"GlobalIPv6Address"`
	GlobalIPv6PrefixLen int               `json:"GlobalIPv6PrefixLen"`
	DNSNames            []string          `json:"DNSNames"`
}

// netSettingsView is docker's NetworkSettings. The top-level addresses
// are the default network's, as docker's are the default bridge's.
type netSettingsView struct {
	Bridge                 string                   `json:"Bridge"`
	SandboxID              string                   `json:"SandboxID"`
	SandboxKey             string                   `json:"SandboxKey"`
	Ports                  map[string][]portBinding `json:"Ports"`
	HairpinMode            bool                     `json:"HairpinMode"`
	LinkLocalIPv6Address   string                   `json:"LinkLocalIPv6Address"`
	LinkLocalIPv6PrefixLen int                      `json:"LinkLocalIPv6PrefixLen"`
	SecondaryIPAddresses   []string                 `json:"SecondaryIPAddresses"`
	SecondaryIPv6Addresses []string                 `json:"SecondaryIPv6Addresses"`
	EndpointID             string                   `json:"EndpointID"`
	Gateway                string                   `json:"Gateway"`
	GlobalIPv6Address      string                   `json:"GlobalIPv6Address"`
	GlobalIPv6PrefixLen    int                      `json:"GlobalIPv6PrefixLen"`
	IPAddress              string                   `json:"IPAddress"`
	IPPrefixLen            int                      `json:"IPPrefixLen"`
	IPv6Gateway            string                   `json:"IPv6Gateway"`
	MacAddress             string                   `json:"MacAddress"`
	Networks               map[string]*endpointView `json:"Networks"`
}

// inspectContainer is the view of c.
func inspectContainer(ctx context.Context, e *engine.Engine, c *engine.Container) containerView {
	ns := netSettingsView{SandboxKey: c.NetworkSettings.SandboxKey, Ports: map[string][]portBinding{}, Networks: map[string]*endpointView{}}
	for p := range c.Config.ExposedPorts {
		ns.Ports[p] = nil // exposed, not published: null, as docker has it
	}
	for _, p := range c.NetworkSettings.Ports() {
		key := strconv.Itoa(p.ContainerPort) + "/" + p.Protocol
		ip := p.HostIP
		if ip == "" {
			ip = "0.0.0.0"
		}
		ns.Ports[key] = append(ns.Ports[key], portBinding{HostIP: ip, HostPort: strconv.Itoa(p.HostPort)})
	}
	m, _ := e.Networks()
	for _, req := range c.HostConfig.Networks {
		name := network.Canonical(req.Name)
		ev := &endpointView{Aliases: req.Aliases, MacAddress: req.MAC}
		if req.IP != "" {
			ev.IPAMConfig = &ipamConfig{IPv4Address: req.IP}
		}
		if m != nil {
			if n, err := m.Get(ctx, name); err == nil {
				ev.NetworkID = n.ID
			}
		}
		for _, ep := range c.NetworkSettings.Endpoints {
			if ep.Network != name {
				continue
			}
			ev.IPAddress, ev.IPPrefixLen, ev.Gateway, ev.MacAddress = ep.IP, ep.PrefixLen, ep.Gateway, ep.MAC
			ev.GlobalIPv6Address, ev.GlobalIPv6PrefixLen, ev.IPv6Gateway = ep.IPv6, ep.PrefixLen6, ep.Gateway6
			if name != network.DefaultName {
				ev.DNSNames = append([]string{c.Name, engine.ShortID(c.ID)}, ep.Aliases...)
			}
			if name == network.DefaultName {
				ns.IPAddress, ns.IPPrefixLen, ns.Gateway, ns.MacAddress = ep.IP, ep.PrefixLen, ep.Gateway, ep.MAC
			}
		}
		ns.Networks[name] = ev
	}
	return containerView{Container: c, NetworkSettings: ns}
}
