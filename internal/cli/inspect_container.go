//go:build linux

package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/storage"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/engine/spec"
	"github.com/berth-dev/berth/internal/network"
)

// inspectContainer is `inspect`'s container: docker's InspectResponse
// (the moby API type, so that names, nesting and JSON types are docker's),
// filled from the record. Berth's own record fields (the monitor, the
// network requests, the log limits as numbers) are not shown; what docker
// has a field for is shown in that field.
func inspectContainer(ctx context.Context, e *engine.Engine, c *engine.Container) container.InspectResponse {
	p := e.ContainerPaths(c.ID)
	out := container.InspectResponse{
		ID:             c.ID,
		Created:        rfc3339(c.Created),
		Path:           c.Path,
		Args:           nonNil(c.Args),
		State:          inspectState(c.State),
		Image:          c.Image,
		ResolvConfPath: filepath.Join(p.Dir, "resolv.conf"),
		HostnamePath:   filepath.Join(p.Dir, "hostname"),
		HostsPath:      filepath.Join(p.Dir, "hosts"),
		LogPath:        c.LogPath,
		Name:           "/" + c.Name,
		RestartCount:   c.RestartCount,
		Driver:         "overlay",
		Platform:       "linux",
		HostConfig:     inspectHostConfig(c),
		GraphDriver: &storage.DriverData{Name: "overlay", Data: map[string]string{
			"MergedDir": p.Rootfs, "UpperDir": p.Upper, "WorkDir": p.Work,
		}},
		Mounts:          inspectMounts(c.Mounts),
		Config:          inspectConfig(c),
		NetworkSettings: inspectNetworkSettings(ctx, e, c),
	}
	return out
}

// rfc3339 is docker's time format in inspect output: RFC 3339 with
// nanoseconds, UTC; the zero time is 0001-01-01T00:00:00Z, as docker
// prints a container that never started.
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func inspectState(s engine.State) *container.State {
	st := &container.State{
		Status:     container.ContainerState(s.Status),
		Running:    s.Running,
		Paused:     s.Paused,
		Restarting: s.Restarting,
		OOMKilled:  s.OOMKilled,
		Dead:       s.Dead,
		Pid:        s.Pid,
		ExitCode:   s.ExitCode,
		Error:      s.Error,
		StartedAt:  rfc3339(s.StartedAt),
		FinishedAt: rfc3339(s.FinishedAt),
	}
	if s.Status == engine.StatusCreating {
		// Berth's record is written before the container's files; docker
		// has no such state, and the container is not running yet.
		st.Status = container.StateCreated
	}
	if h := s.Health; h != nil {
		st.Health = &container.Health{Status: container.HealthStatus(h.Status), FailingStreak: h.FailingStreak,
			Log: []*container.HealthcheckResult{}}
		for _, r := range h.Log {
			st.Health.Log = append(st.Health.Log, &container.HealthcheckResult{Start: r.Start, End: r.End, ExitCode: r.ExitCode, Output: r.Output})
		}
	}
	return st
}

func inspectConfig(c *engine.Container) *container.Config {
	cc := c.Config
	out := &container.Config{
		Hostname:    cc.Hostname,
		Domainname:  cc.Domainname,
		User:        cc.User,
		Tty:         cc.Tty,
		OpenStdin:   cc.OpenStdin,
		Env:         nonNil(cc.Env),
		Cmd:         cc.Cmd,
		Image:       cc.Image,
		Volumes:     cc.Volumes,
		WorkingDir:  cc.WorkingDir,
		Entrypoint:  cc.Entrypoint,
		Labels:      cc.Labels,
		StopSignal:  cc.StopSignal,
		StopTimeout: cc.StopTimeout,
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	// Docker's ExposedPorts has the image's and the published ports.
	ports := mobynet.PortSet{}
	for k := range cc.ExposedPorts {
		if p, err := mobynet.ParsePort(k); err == nil {
			ports[p] = struct{}{}
		}
	}
	for _, pm := range c.HostConfig.PortBindings {
		if p, ok := mobynet.PortFrom(uint16(pm.ContainerPort), mobynet.IPProtocol(pm.Protocol)); ok {
			ports[p] = struct{}{}
		}
	}
	if len(ports) > 0 {
		out.ExposedPorts = ports
	}
	if h := cc.Healthcheck; h != nil {
		out.Healthcheck = &container.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries}
	}
	return out
}

func inspectHostConfig(c *engine.Container) *container.HostConfig {
	h := c.HostConfig
	out := &container.HostConfig{
		Binds:           h.Binds,
		LogConfig:       container.LogConfig{Type: logDriverName(h.LogDriver), Config: map[string]string{}},
		NetworkMode:     container.NetworkMode(h.NetworkMode),
		PortBindings:    mobynet.PortMap{},
		RestartPolicy:   container.RestartPolicy{Name: container.RestartPolicyMode(h.RestartPolicy.Name), MaximumRetryCount: h.RestartPolicy.MaximumRetryCount},
		AutoRemove:      h.AutoRemove,
		ConsoleSize:     h.ConsoleSize,
		CapAdd:          h.CapAdd,
		CapDrop:         h.CapDrop,
		CgroupnsMode:    container.CgroupnsModePrivate,
		DNS:             []netip.Addr{},
		DNSOptions:      nonNil(h.DNSOptions),
		DNSSearch:       nonNil(h.DNSSearch),
		ExtraHosts:      h.ExtraHosts,
		IpcMode:         container.IPCModePrivate,
		Privileged:      h.Privileged,
		PublishAllPorts: h.PublishAllPorts,
		ReadonlyRootfs:  h.ReadonlyRootfs,
		SecurityOpt:     h.SecurityOpt,
		ShmSize:         64 << 20, // /dev/shm, as spec makes it
		Isolation:       container.Isolation(h.Isolation),
		Resources: container.Resources{
			Memory:   h.Memory,
			NanoCPUs: h.NanoCPUs,
			Ulimits:  []*container.Ulimit{},
		},
		MaskedPaths:   []string{},
		ReadonlyPaths: []string{},
	}
	for _, l := range h.Links {
		// docker's form: /TARGET:/CONTAINER/ALIAS.
		out.Links = append(out.Links, "/"+l.Name+":/"+c.Name+"/"+l.Alias)
	}
	if out.RestartPolicy.Name == "" {
		out.RestartPolicy.Name = container.RestartPolicyDisabled
	}
	if h.LogMaxSize > 0 {
		out.LogConfig.Config["max-size"] = sizeOption(h.LogMaxSize)
	}
	if h.LogMaxFiles > 0 {
		out.LogConfig.Config["max-file"] = strconv.Itoa(h.LogMaxFiles)
	}
	if h.LogTag != "" {
		out.LogConfig.Config["tag"] = h.LogTag
	}
	for _, pm := range h.PortBindings {
		p, ok := mobynet.PortFrom(uint16(pm.ContainerPort), mobynet.IPProtocol(pm.Protocol))
		if !ok {
			continue
		}
		b := mobynet.PortBinding{}
		b.HostIP, _ = netip.ParseAddr(pm.HostIP)
		if pm.HostPort != 0 {
			b.HostPort = strconv.Itoa(pm.HostPort)
		}
		out.PortBindings[p] = append(out.PortBindings[p], b)
	}
	for _, s := range h.DNS {
		if a, err := netip.ParseAddr(s); err == nil {
			out.DNS = append(out.DNS, a)
		}
	}
	if len(h.Tmpfs) > 0 {
		out.Tmpfs = map[string]string{}
		for _, t := range h.Tmpfs {
			dst, opts, _ := strings.Cut(t, ":")
			out.Tmpfs[dst] = opts
		}
	}
	if h.PidsLimit > 0 {
		out.PidsLimit = &h.PidsLimit
	}
	for _, u := range h.Ulimits {
		if l, err := units.ParseUlimit(u); err == nil {
			out.Ulimits = append(out.Ulimits, l)
		}
	}
	for _, m := range h.Mounts {
		out.Mounts = append(out.Mounts, parseMountSpec(m))
	}
	if !h.Privileged && !h.SystemPathsUnconfined {
		out.MaskedPaths, out.ReadonlyPaths = spec.MaskedPaths(), spec.ReadonlyPaths()
	}
	if h.CgroupnsMode != "" {
		out.CgroupnsMode = container.CgroupnsMode(h.CgroupnsMode)
	}
	if h.IpcMode != "" {
		out.IpcMode = container.IpcMode(h.IpcMode)
	}
	out.PidMode, out.UTSMode, out.UsernsMode = container.PidMode(h.PidMode), container.UTSMode(h.UTSMode), container.UsernsMode(h.UsernsMode)
	if h.ShmSize > 0 {
		out.ShmSize = h.ShmSize
	}
	out.OomScoreAdj, out.Sysctls, out.GroupAdd = h.OomScoreAdj, h.Sysctls, h.GroupAdd
	out.VolumesFrom, out.Annotations, out.Runtime = h.VolumesFrom, h.Annotations, h.Isolation
	r := &out.Resources
	r.CPUShares, r.CPUPeriod, r.CPUQuota, r.CpusetCpus, r.CpusetMems = h.CPUShares, h.CPUPeriod, h.CPUQuota, h.CpusetCpus, h.CpusetMems
	r.MemorySwap, r.MemoryReservation, r.BlkioWeight, r.CgroupParent = h.MemorySwap, h.MemoryReservation, h.BlkioWeight, h.CgroupParent
	if h.OomKillDisable {
		t := true
		r.OomKillDisable = &t
	}
	r.DeviceCgroupRules = h.DeviceCgroupRules
	for _, d := range h.Devices {
		if hostPath, ctrPath, perms, err := spec.ParseDevice(d); err == nil {
			r.Devices = append(r.Devices, container.DeviceMapping{PathOnHost: hostPath, PathInContainer: ctrPath, CgroupPermissions: perms})
		}
	}
	if h.Init {
		t := true
		out.Init = &t
	}
	return out
}

// sizeOption writes n bytes as docker's log options do: 20m, 512k, or a
// plain number.
func sizeOption(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// parseMountSpec is a --mount value (type=...,source=...,target=...) as
// docker's HostConfig.Mounts entry.
func parseMountSpec(s string) mount.Mount {
	var m mount.Mount
	for _, f := range strings.Split(s, ",") {
		k, v, hasValue := strings.Cut(f, "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = mount.Type(v)
		case "source", "src":
			m.Source = v
		case "target", "destination", "dst":
			m.Target = v
		case "readonly", "ro":
			m.ReadOnly = !hasValue || v == "true" || v == "1"
		}
	}
	return m
}

// inspectMounts are docker's Mounts: a volume has the local driver and
// mode z, a bind its propagation (rprivate unless -v or --mount said).
func inspectMounts(ms []engine.MountPoint) []container.MountPoint {
	out := []container.MountPoint{}
	for _, m := range ms {
		mp := container.MountPoint{Type: mount.Type(m.Type), Name: m.Name, Source: m.Source, Destination: m.Destination, RW: m.RW}
		switch mp.Type {
		case mount.TypeVolume:
			mp.Driver, mp.Mode = "local", "z"
		case mount.TypeBind:
			mp.Propagation = mount.PropagationRPrivate
			if m.Propagation != "" {
				mp.Propagation = mount.Propagation(m.Propagation)
			}
			if !m.RW {
				mp.Mode = "ro"
			}
		}
		out = append(out, mp)
	}
	return out
}

// inspectNetworkSettings is docker's NetworkSettings: networks keyed by
// name (so {{.NetworkSettings.Networks.NAME.IPAddress}} works), ports as
// a map of "80/tcp" to the host bindings (null for a port exposed only).
func inspectNetworkSettings(ctx context.Context, e *engine.Engine, c *engine.Container) *container.NetworkSettings {
	ns := &container.NetworkSettings{SandboxKey: c.NetworkSettings.SandboxKey, Ports: mobynet.PortMap{},
		Networks: map[string]*mobynet.EndpointSettings{}}
	if c.State.Running {
		for k := range c.Config.ExposedPorts {
			if p, err := mobynet.ParsePort(k); err == nil {
				ns.Ports[p] = nil
			}
		}
		for _, pm := range c.NetworkSettings.Ports() {
			p, ok := mobynet.PortFrom(uint16(pm.ContainerPort), mobynet.IPProtocol(pm.Protocol))
			if !ok {
				continue
			}
			ip := pm.HostIP
			if ip == "" {
				ip = "0.0.0.0"
			}
			b := mobynet.PortBinding{HostPort: strconv.Itoa(pm.HostPort)}
			b.HostIP, _ = netip.ParseAddr(ip)
			ns.Ports[p] = append(ns.Ports[p], b)
		}
	}
	if ns.SandboxKey != "" {
		ns.SandboxID = derivedID("sandbox", c.ID)
	}
	m, _ := e.Networks()
	for _, req := range c.HostConfig.Networks {
		name := network.Canonical(req.Name)
		ev := &mobynet.EndpointSettings{Aliases: req.Aliases}
		ev.MacAddress = parseMAC(req.MAC)
		if ip, err := netip.ParseAddr(req.IP); err == nil {
			ev.IPAMConfig = &mobynet.EndpointIPAMConfig{IPv4Address: ip}
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
			ev.IPAddress, _ = netip.ParseAddr(ep.IP)
			ev.Gateway, _ = netip.ParseAddr(ep.Gateway)
			ev.IPPrefixLen = ep.PrefixLen
			ev.GlobalIPv6Address, _ = netip.ParseAddr(ep.IPv6)
			ev.IPv6Gateway, _ = netip.ParseAddr(ep.Gateway6)
			ev.GlobalIPv6PrefixLen = ep.PrefixLen6
			ev.MacAddress = parseMAC(ep.MAC)
			ev.EndpointID = endpointID(c.ID, name)
			if name != network.DefaultName {
				ev.DNSNames = append([]string{c.Name, engine.ShortID(c.ID)}, ep.Aliases...)
			}
		}
		ns.Networks[name] = ev
	}
	if mode := c.HostConfig.NetworkMode; len(ns.Networks) == 0 && (mode == "host" || mode == "none") {
		// Docker shows the host's or no network as a network of that name.
		ns.Networks[mode] = &mobynet.EndpointSettings{}
	}
	return ns
}

// derivedID is a stable 64-hex-digit ID for something berth does not
// number (docker's sandbox and endpoint IDs): the same container and
// network have the same one in every inspect.
func derivedID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])
}

// endpointID is the container's endpoint on a network (the canonical name).
func endpointID(containerID, network string) string {
	return derivedID("endpoint", containerID, network)
}

func parseMAC(s string) mobynet.HardwareAddr {
	var hw mobynet.HardwareAddr
	if hw.UnmarshalText([]byte(s)) != nil {
		return nil
	}
	return hw
}

// logDriverName is the driver as docker names it ("" is json-file).
func logDriverName(d string) string {
	if d == "" {
		return engine.LogJSONFile
	}
	return d
}
