//go:build linux

package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/network/dns"
	"github.com/berth-dev/berth/internal/network/netns"
	"github.com/berth-dev/berth/internal/trace"
	"golang.org/x/sys/unix"
)

// Networking of a container. Every container that does not share the
// host's (or another container's) network namespace gets one of its own,
// created before the container, pinned at <state>/netns/<id>, attached to
// its networks through CNI at start and detached and removed at exit, so
// the namespace's life is the engine's to decide, not the container
// process's.

func (e *Engine) netnsDir() string           { return filepath.Join(e.opts.State, "netns") }
func (e *Engine) netnsPath(id string) string { return filepath.Join(e.netnsDir(), id) }

// netsHolder is the engine's network manager, opened at first use, once
// for the engine and its InNamespace copies (serve's requests race to
// it).
type netsHolder struct {
	mu sync.Mutex
	m  *network.Manager
}

func (h *netsHolder) opened() *network.Manager {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.m
}

func (e *Engine) networks() (*network.Manager, error) {
	e.nets.mu.Lock()
	defer e.nets.mu.Unlock()
	if e.nets.m == nil {
		m, err := network.Open(e.opts.Root, filepath.Join(e.opts.State, "networks"))
		if err != nil {
			return nil, err
		}
		if e.opts.Reap {
			// Long-lived: a removed network's bridge is deleted after
			// the answer (see DeleteBridgesLater).
			m.DeleteBridgesLater()
		}
		e.nets.m = m
	}
	return e.nets.m, nil
}

// Networks is the engine's network manager.
func (e *Engine) Networks() (*network.Manager, error) { return e.networks() }

// ownsNetns says whether the container has a network namespace of its
// own (not the host's, not another container's).
func ownsNetns(c *Container) bool {
	m := c.HostConfig.NetworkMode
	return m != "host" && !strings.HasPrefix(m, "container:") && !strings.HasPrefix(m, podModePrefix)
}

// ParsePorts parses -p values: [ip:][hostPort:]containerPort[/tcp|udp],
// with hostPort and containerPort ranges of equal length (8000-8001:80-81).
// A missing hostPort is 0: a free port is chosen at start.
func ParsePorts(specs []string) ([]network.PortMapping, error) {
	var out []network.PortMapping
	for _, s := range specs {
		rest, proto, _ := strings.Cut(s, "/")
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			return nil, fmt.Errorf("-p %s: protocol %q: tcp or udp: %w", s, proto, ErrInvalid)
		}
		var ip, host, ctr string
		if v6, after, ok := strings.Cut(strings.TrimPrefix(rest, "["), "]:"); ok && strings.HasPrefix(rest, "[") {
			// [IPv6]:hostPort:containerPort, or [IPv6]::containerPort.
			addr := net.ParseIP(v6)
			if addr == nil || addr.To4() != nil {
				return nil, fmt.Errorf("-p %s: %q is not an IPv6 address: %w", s, v6, ErrInvalid)
			}
			ip, rest = addr.String(), after
			if host, ctr, ok = strings.Cut(rest, ":"); !ok {
				return nil, fmt.Errorf("-p %s: use [ipv6]:[hostPort]:containerPort[/proto]: %w", s, ErrInvalid)
			}
			rest = ""
		}
		parts := strings.Split(rest, ":")
		if rest == "" {
			parts = nil
		}
		switch len(parts) {
		case 0: // [IPv6] form, parsed above
		case 1:
			ctr = parts[0]
		case 2:
			host, ctr = parts[0], parts[1]
		case 3:
			ip, host, ctr = parts[0], parts[1], parts[2]
			if net.ParseIP(ip).To4() == nil {
				return nil, fmt.Errorf("-p %s: %q is not an IPv4 address: %w", s, ip, ErrInvalid)
			}
		default:
			return nil, fmt.Errorf("-p %s: use [ip:][hostPort:]containerPort[/proto]: %w", s, ErrInvalid)
		}
		c0, c1, err := portRange(ctr)
		if err != nil {
			return nil, fmt.Errorf("-p %s: container port: %w", s, err)
		}
		h0, h1 := 0, 0
		if host != "" {
			if h0, h1, err = portRange(host); err != nil {
				return nil, fmt.Errorf("-p %s: host port: %w", s, err)
			}
			if h1-h0 != c1-c0 {
				return nil, fmt.Errorf("-p %s: the host and container ranges differ in length: %w", s, ErrInvalid)
			}
		}
		for i := 0; i <= c1-c0; i++ {
			hp := 0
			if host != "" {
				hp = h0 + i
			}
			out = append(out, network.PortMapping{HostIP: ip, HostPort: hp, ContainerPort: c0 + i, Protocol: proto})
		}
	}
	return out, nil
}

func portRange(s string) (int, int, error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := strconv.Atoi(a)
	if err != nil || lo < 1 || lo > 65535 {
		return 0, 0, fmt.Errorf("%q is not a port (1-65535): %w", s, ErrInvalid)
	}
	hi := lo
	if isRange {
		if hi, err = strconv.Atoi(b); err != nil || hi < lo || hi > 65535 {
			return 0, 0, fmt.Errorf("%q is not a port range: %w", s, ErrInvalid)
		}
	}
	return lo, hi, nil
}

// namedNetwork resolves --network NAME (flag names the option in errors)
// for a container or a pod: the mode to record ("bridge" for the default
// network, else the network's canonical name) and req for that network.
func (e *Engine) namedNetwork(ctx context.Context, flag, name string, req NetworkRequest) (string, NetworkRequest, error) {
	m, err := e.networks()
	if err != nil {
		return "", req, err
	}
	cfg, err := m.Get(ctx, name)
	if err != nil {
		return "", req, fmt.Errorf("%s %s: %w", flag, name, err)
	}
	req.Name = cfg.Name
	if cfg.Default {
		return "bridge", req, nil
	}
	return cfg.Name, req, nil
}

// ErrPortAllocated: a host port the container publishes is taken, by
// another container (of any root or engine) or a host program.
var ErrPortAllocated = errors.New("port is already allocated")

// reservePort binds ip:port (port 0: one the kernel picks) for proto and
// returns the socket, which holds the port for as long as it is open, and
// the port. The container's monitor keeps it while the container runs
// (podman's conmon does the same): another container, another root or a
// host program asking for the port then fails to bind it, and a port held
// by a host program fails here. TCP sockets listen, as a host program's
// would, so that a later bind with SO_REUSEADDR is refused too; nothing
// reaches them, since the port's traffic is DNATed to the container first.
func reservePort(ip, proto string, port int) (*os.File, int, error) {
	if ip == "" {
		ip = "0.0.0.0"
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	v6 := net.ParseIP(ip).To4() == nil
	var f *os.File
	var got int
	var err error
	if proto == "udp" {
		// Without SO_REUSEADDR (Go sets it only for multicast): any
		// other bind of the port fails.
		var c net.PacketConn
		if c, err = net.ListenPacket(map[bool]string{false: "udp4", true: "udp6"}[v6], addr); err == nil {
			got = c.LocalAddr().(*net.UDPAddr).Port
			f, err = c.(*net.UDPConn).File()
			c.Close()
		}
	} else {
		// tcp6 on [::] is IPV6_V6ONLY (Go's rule for "tcp6"): it holds
		// the IPv6 side only, beside the IPv4 socket.
		var l net.Listener
		if l, err = net.Listen(map[bool]string{false: "tcp4", true: "tcp6"}[v6], addr); err == nil {
			got = l.Addr().(*net.TCPAddr).Port
			f, err = l.(*net.TCPListener).File()
			l.Close()
		}
	}
	if errors.Is(err, unix.EADDRINUSE) {
		return nil, 0, fmt.Errorf("Bind for %s/%s failed: %w (another container publishes it, or a host program listens on it)", addr, proto, ErrPortAllocated)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("publish %s/%s: %w", addr, proto, err)
	}
	return f, got, nil
}

// reservation is one socket to bind for a published port: a mapping
// with no host address on a dual-stack network has two, 0.0.0.0 and [::]
// (docker binds both), on the same port.
type reservation struct {
	ip, proto string
	mapping   int // index in the port mappings
}

func reservationsOf(ports []network.PortMapping, dual bool) []reservation {
	var out []reservation
	for i, p := range ports {
		if p.HostIP == "" && dual {
			out = append(out, reservation{"0.0.0.0", p.Protocol, i}, reservation{"::", p.Protocol, i})
		} else {
			out = append(out, reservation{p.HostIP, p.Protocol, i})
		}
	}
	return out
}

// loopback6 says whether a reservation's socket gets the connections to
// [::1]: the kernel cannot DNAT those to a container (an IPv6 packet from
// ::1 never leaves the loopback interface), so the container's monitor
// runs a proxy on that socket (see proxy.go).
func (r reservation) loopback6() bool { return r.proto == "tcp" && (r.ip == "::" || r.ip == "::1") }

// wantedPorts is what the container publishes: -p, and with -P every
// exposed port not published already, on free host ports. Every host
// port is reserved: the returned files hold them (see reservePort), in
// the order of reservationsOf. dual says whether the container's first
// network is dual-stack. inherited are the sockets of the container's
// last run, which a restart reuses when they match (the same ports, so
// never free in between).
func wantedPorts(c *Container, inherited []*os.File, dual bool) (_ []network.PortMapping, _ []reservation, held []*os.File, retErr error) {
	ports := slices.Clone(c.HostConfig.PortBindings)
	if c.HostConfig.PublishAllPorts {
		for _, ep := range slices.Sorted(maps.Keys(c.Config.ExposedPorts)) {
			p, proto, _ := strings.Cut(ep, "/")
			if proto == "" {
				proto = "tcp"
			}
			n, err := strconv.Atoi(p)
			if err != nil {
				continue
			}
			if slices.ContainsFunc(ports, func(m network.PortMapping) bool { return m.ContainerPort == n && m.Protocol == proto }) {
				continue
			}
			ports = append(ports, network.PortMapping{ContainerPort: n, Protocol: proto})
		}
	}
	for _, p := range ports {
		if ip := net.ParseIP(p.HostIP); ip != nil && ip.To4() == nil && !dual {
			return nil, nil, nil, fmt.Errorf("-p %s: an IPv6 host address needs a dual-stack network (network create --ipv6): %w", p, ErrInvalid)
		}
	}
	res := reservationsOf(ports, dual)
	if reused, ok := reuseReservations(ports, res, inherited); ok {
		return ports, res, reused, nil
	}
	closeAll(inherited)
	defer func() {
		if retErr != nil {
			closeAll(held)
			held = nil
		}
	}()
	for i := 0; i < len(res); {
		// The reservations of one mapping: res[i:j].
		j := i + 1
		for j < len(res) && res[j].mapping == res[i].mapping {
			j++
		}
		m := res[i].mapping
		auto := ports[m].HostPort == 0
		for attempt := 0; ; attempt++ {
			got, err := reserveAll(res[i:j], &ports[m])
			if err == nil {
				held = append(held, got...)
				break
			}
			// The kernel's pick for 0.0.0.0 may be taken on [::]: pick
			// again, for both.
			if !auto || j-i == 1 || attempt == 20 || !errors.Is(err, ErrPortAllocated) {
				return nil, nil, held, err
			}
			ports[m].HostPort = 0
		}
		i = j
	}
	return ports, res, held, nil
}

// reserveAll binds the sockets of one mapping, the first one choosing
// the port when p has none.
func reserveAll(rs []reservation, p *network.PortMapping) ([]*os.File, error) {
	var got []*os.File
	for _, r := range rs {
		f, hp, err := reservePort(r.ip, r.proto, p.HostPort)
		if err != nil {
			closeAll(got)
			return nil, err
		}
		got = append(got, f)
		p.HostPort = hp
	}
	return got, nil
}

// reuseReservations takes inherited as the reservations res of ports when
// they match one to one, in order (as the last run made them): the same
// protocol, address and, unless chosen by the kernel, port. It fills in
// the ports the kernel chose.
func reuseReservations(ports []network.PortMapping, res []reservation, inherited []*os.File) ([]*os.File, bool) {
	if len(inherited) == 0 || len(inherited) != len(res) {
		return nil, false
	}
	chosen := make([]int, len(ports))
	for i, f := range inherited {
		r := res[i]
		typ, err := unix.GetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, unix.SO_TYPE)
		if err != nil || (typ == unix.SOCK_DGRAM) != (r.proto == "udp") {
			return nil, false
		}
		sa, err := unix.Getsockname(int(f.Fd()))
		if err != nil {
			return nil, false
		}
		var addr net.IP
		var port int
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			addr, port = net.IP(sa.Addr[:]), sa.Port
		case *unix.SockaddrInet6:
			addr, port = net.IP(sa.Addr[:]), sa.Port
		default:
			return nil, false
		}
		want := net.ParseIP(r.ip)
		if r.ip == "" {
			want = net.IPv4zero
		}
		if !addr.Equal(want) || (want.To4() == nil) != (addr.To4() == nil) {
			return nil, false
		}
		if ports[r.mapping].HostPort != 0 && ports[r.mapping].HostPort != port || chosen[r.mapping] != 0 && chosen[r.mapping] != port {
			return nil, false
		}
		chosen[r.mapping] = port
	}
	for i := range ports {
		ports[i].HostPort = chosen[i]
	}
	return inherited, true
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// setupNetwork makes and attaches the container's network namespace, and
// writes its /etc/hosts and /etc/resolv.conf. On failure nothing is left.
//
// It returns the sockets that hold the published host ports, for the
// container's monitor to keep (the caller closes its copies), and for
// each the address its loopback proxy forwards to, or "" (see proxy.go).
func (e *Engine) setupNetwork(ctx context.Context, c *Container, inherited []*os.File, nsReady func(error)) (held []*os.File, proxyTo []string, retErr error) {
	// nsReady hears once, as soon as the namespace the runtime joins
	// exists (or why it will not): what remains, the attachments, may go
	// on beside the runtime's create (see runContainer).
	ready := func(error) {}
	if nsReady != nil {
		var once sync.Once
		ready = func(err error) { once.Do(func() { nsReady(err) }) }
	}
	defer func() { ready(retErr) }()
	if !ownsNetns(c) {
		if c.Pod != "" {
			p, err := e.getPod(ctx, c.Pod)
			if err != nil {
				return nil, nil, fmt.Errorf("the container's pod: %w", err)
			}
			if !e.podPinned(p) {
				return nil, nil, fmt.Errorf("pod %s is stopped: start it (berth pod start %s): %w", p.Name, p.Name, ErrInvalidState)
			}
		}
		if other, ok := strings.CutPrefix(c.HostConfig.NetworkMode, "container:"); ok {
			oc, err := e.get(ctx, other)
			if err != nil {
				return nil, nil, fmt.Errorf("--network container:%s: %w", other, err)
			}
			if ownsNetns(oc) {
				if pinned, _ := netns.IsPinned(e.netnsPath(oc.ID)); !pinned {
					return nil, nil, fmt.Errorf("--network container:%s: that container is not running: %w", other, ErrInvalidState)
				}
			}
		}
		return nil, nil, nil
	}
	var ports []network.PortMapping
	var res []reservation
	var first *network.Config
	if len(c.HostConfig.Networks) > 0 {
		m, err := e.networks()
		if err != nil {
			return nil, nil, err
		}
		if first, err = m.Get(ctx, c.HostConfig.Networks[0].Name); err != nil {
			return nil, nil, err
		}
		if ports, res, held, err = wantedPorts(c, inherited, first.IPv6); err != nil {
			return nil, nil, err
		}
	}
	path := e.netnsPath(c.ID)
	defer func() {
		if retErr != nil {
			closeAll(held)
			held, proxyTo = nil, nil
		}
	}()
	var sysctls map[string]string
	if c.IDMap != nil {
		sysctls = netSysctlsOutside(c)
	}
	eps, err := e.plumbNetns(ctx, c.ID, c.HostConfig.Networks, ports, sysctls, ready)
	if err != nil {
		return held, proxyTo, err
	}
	defer func() {
		if retErr != nil {
			e.releaseNetns(context.WithoutCancel(ctx), c.ID, eps)
		}
	}()
	if len(eps) > 0 {
		// The loopback proxy forwards straight to this run's address
		// (see proxy.go).
		for _, r := range res {
			to := ""
			if r.loopback6() && eps[0].IPv6 != "" {
				to = net.JoinHostPort(eps[0].IPv6, strconv.Itoa(ports[r.mapping].ContainerPort))
			}
			proxyTo = append(proxyTo, to)
		}
	}
	updated, err := e.update(ctx, c.ID, func(r *Container) error {
		r.NetworkSettings = NetworkSettings{SandboxKey: path, Endpoints: eps}
		return nil
	})
	if err == nil {
		e.emitEndpoints(ctx, "connect", c.ID, eps)
	}
	if err != nil || len(eps) == 0 {
		// Without networks the files create wrote are already right.
		return held, proxyTo, err
	}
	if err := e.refreshEtcFiles(ctx, updated); err != nil {
		return held, proxyTo, err
	}
	if onUserNetwork(updated) {
		// Before the container's process runs, so that its first
		// query finds the server listening.
		if err := e.syncDNS(ctx, true); err != nil {
			return held, proxyTo, err
		}
	}
	return held, proxyTo, nil
}

// overlapNetwork says whether a start may attach the container's networks
// beside the runtime's create rather than before it: with the linux
// driver (a VM's create wires its NICs to the attachments), for a
// namespace of the container's own with networks to attach, and without
// net.* sysctls (the init writes those inside the namespace, which the
// plugins configure meanwhile; their order stays as it was).
func overlapNetwork(c *Container, linuxDriver bool) bool {
	if !linuxDriver || !ownsNetns(c) || len(c.HostConfig.Networks) == 0 {
		return false
	}
	for k := range c.HostConfig.Sysctls {
		if strings.HasPrefix(k, "net.") || strings.HasPrefix(k, "net/") {
			return false
		}
	}
	return true
}

// plumbNetns makes the network namespace pinned at netnsPath(id), brings
// its loopback up, writes sysctls from outside, and attaches it to nets
// in order (eth0, eth1, ...), the first with ports. On failure nothing is
// left: endpoints made are detached and the namespace removed. nsReady
// (never nil) hears once the namespace is made, before the attachments.
func (e *Engine) plumbNetns(ctx context.Context, id string, nets []NetworkRequest, ports []network.PortMapping, sysctls map[string]string, nsReady func(error)) (eps []network.Endpoint, retErr error) {
	path := e.netnsPath(id)
	defer func() {
		if retErr != nil {
			e.releaseNetns(context.WithoutCancel(ctx), id, eps)
			eps = nil
		}
	}()
	netns.Remove(e.netnsDir(), id)
	if _, err := netns.New(e.netnsDir(), id); err != nil {
		return nil, err
	}
	if err := netns.LoopbackUp(path); err != nil {
		return nil, err
	}
	if err := netns.SetSysctls(path, sysctls); err != nil {
		return nil, err
	}
	trace.Phase("netns-made")
	nsReady(nil)
	if len(nets) == 0 {
		return nil, nil
	}
	m, err := e.networks()
	if err != nil {
		return nil, err
	}
	if err := e.finishDeferredDels(ctx, id); err != nil {
		return nil, err
	}
	for i, req := range nets {
		var cfg *network.Config
		if req.CNI == nil {
			if cfg, err = m.Get(ctx, req.Name); err != nil {
				return eps, err
			}
		}
		ar := network.AttachRequest{ContainerID: id, NetNS: path, IfName: "eth" + strconv.Itoa(i), IP: req.IP, MAC: req.MAC, Aliases: req.Aliases}
		if i == 0 {
			ar.Ports = ports
		}
		var ep network.Endpoint
		if req.CNI != nil {
			if ep, err = m.AttachCNI(ctx, req.CNI, ar); err != nil {
				// Released with the others (the deferred
				// releaseNetns): a DEL of its half-done ADD that fails
				// keeps the namespace for the retry there.
				return append(eps, network.Endpoint{Network: req.Name, IfName: ar.IfName, Ports: ar.Ports, CNI: req.CNI}), err
			}
		} else if ep, err = m.Attach(ctx, cfg, ar); err != nil {
			return eps, err
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

// detachAll detaches endpoints from the container's pinned namespace
// (which stays) and returns those whose DEL failed (kept in the record,
// so that the next attempt, at rm, releases them).
func (e *Engine) detachAll(ctx context.Context, id string, eps []network.Endpoint) ([]network.Endpoint, error) {
	if len(eps) == 0 {
		return nil, nil
	}
	m, err := e.networks()
	if err != nil {
		return eps, err
	}
	return detachFrom(ctx, m, id, e.netnsPath(id), eps)
}

// detachFrom runs the endpoints' DELs, each network's on its own (they
// share nothing: each has its plugins, its leases and its interface),
// and returns the endpoints whose DEL failed, in eps's order. path is the
// namespace's, "" when it is gone.
func detachFrom(ctx context.Context, m *network.Manager, id, path string, eps []network.Endpoint) ([]network.Endpoint, error) {
	errs := make([]error, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() { errs[i] = m.Detach(ctx, id, path, ep) })
	}
	wg.Wait()
	var failed []network.Endpoint
	for i, err := range errs {
		if err != nil {
			failed = append(failed, eps[i])
		}
	}
	return failed, errors.Join(errs...)
}

// releaseNetns detaches the endpoints of a container whose namespace
// goes, and removes the namespace; it returns the endpoints whose DEL
// failed.
//
// The namespace is unpinned before the DELs, not after: deleting a veth
// waits for the kernel's RCU grace periods (~20 ms here, the most of a
// bridge DEL), while a namespace that ends takes its interfaces with it
// in the kernel's own cleanup work, off this path and batched with other
// namespaces that end. What the plugins hold on the host (the lease,
// portmap's rules) is released by container ID, with no namespace (CNI's
// DEL allows none). Each endpoint is first taken out of service from the
// host's side (network.Manager.Unplug), so that its address may be given
// to another container at once; one that cannot be is detached in the
// namespace, as before. Killed in between, the record still lists the
// endpoints: the next teardown runs their DELs (the veths went with the
// namespace).
func (e *Engine) releaseNetns(ctx context.Context, id string, eps []network.Endpoint) ([]network.Endpoint, error) {
	return e.releaseNetnsFor(ctx, id, eps, false)
}

// releaseNetnsFor is releaseNetns; goingAway: the container's record goes
// away with this run, so a long-lived engine defers the DELs it may
// (netdefer.go).
func (e *Engine) releaseNetnsFor(ctx context.Context, id string, eps []network.Endpoint, goingAway bool) ([]network.Endpoint, error) {
	path := e.netnsPath(id)
	if len(eps) == 0 {
		netns.Remove(e.netnsDir(), id)
		return nil, nil
	}
	m, err := e.networks()
	if err != nil {
		if !slices.ContainsFunc(eps, isCNIEndpoint) {
			netns.Remove(e.netnsDir(), id)
		}
		return eps, err
	}
	pinned, _ := netns.IsPinned(path)
	var inside, outside []network.Endpoint
	for _, ep := range eps {
		if !pinned || m.Unplug(id, ep) {
			outside = append(outside, ep)
		} else {
			inside = append(inside, ep)
		}
	}
	failed, err1 := detachFrom(ctx, m, id, path, inside)
	if !slices.ContainsFunc(failed, isCNIEndpoint) {
		netns.Remove(e.netnsDir(), id)
	}
	if goingAway && e.netdel != nil {
		if later, now := splitDeferrable(outside); e.deferDels(ctx, id, later) {
			outside = now
		}
	}
	f, err2 := detachFrom(ctx, m, id, "", outside)
	return append(failed, f...), errors.Join(err1, err2)
}

// isCNIEndpoint: an endpoint on a CNI configuration file's network. When
// its DEL fails, the namespace stays pinned for the next attempt, as
// containerd keeps it: such plugins may need it to find what to undo
// (the bridge plugin's ipMasq rules go by the addresses of the interface
// inside; without the namespace only the lease would be released).
// berth's own networks have no such rules (their chains are per
// network), so their namespace goes whatever the DEL did.
func isCNIEndpoint(ep network.Endpoint) bool { return ep.CNI != nil }

// teardownNetwork detaches a container that stopped and removes its
// namespace; the name server forgets it.
func (e *Engine) teardownNetwork(ctx context.Context, id string) error {
	return e.teardownNetworkFor(ctx, id, false)
}

// teardownNetworkFor is teardownNetwork; goingAway: the record goes with
// this run (a removal), as it does for an AutoRemove container.
func (e *Engine) teardownNetworkFor(ctx context.Context, id string, goingAway bool) error {
	c, err := e.get(ctx, id)
	if err != nil {
		netns.Remove(e.netnsDir(), id)
		return nil
	}
	failed, err := e.releaseNetnsFor(ctx, id, c.NetworkSettings.Endpoints, goingAway || c.HostConfig.AutoRemove)
	e.emitEndpoints(ctx, "disconnect", id, slices.DeleteFunc(slices.Clone(c.NetworkSettings.Endpoints), func(ep network.Endpoint) bool {
		return slices.ContainsFunc(failed, func(f network.Endpoint) bool { return f.Network == ep.Network })
	}))
	if len(c.NetworkSettings.Endpoints) > 0 {
		_, uerr := e.update(ctx, id, func(r *Container) error {
			r.NetworkSettings.Endpoints = failed
			return nil
		})
		if uerr == nil && onUserNetwork(c) {
			e.syncDNS(ctx, false)
		}
	}
	return err
}

// hostsFile is a container's /etc/hosts: localhost, itself and its
// --add-host entries. Other containers' names are the name server's
// (docker's hosts files do not list them either).
func hostsFile(c *Container) string {
	var b strings.Builder
	if c.HostConfig.NetworkMode == "host" {
		if h, err := os.ReadFile("/etc/hosts"); err == nil {
			b.Write(h)
		}
	} else {
		b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	}
	self := "127.0.0.1"
	if len(c.NetworkSettings.Endpoints) > 0 && c.NetworkSettings.Endpoints[0].IP != "" {
		self = c.NetworkSettings.Endpoints[0].IP
	}
	if c.HostConfig.NetworkMode != "host" {
		fmt.Fprintf(&b, "%s\t%s\n", self, c.Config.Hostname)
	}
	for _, h := range c.HostConfig.ExtraHosts {
		name, ip, _ := strings.Cut(h, ":")
		fmt.Fprintf(&b, "%s\t%s\n", ip, name)
	}
	return b.String()
}

// resolvConf is a container's /etc/resolv.conf. On a user-defined
// network it names the name server (its --dns servers are the server's
// upstreams, as with docker); elsewhere the host's servers, or --dns.
func resolvConf(c *Container) []byte {
	if c.HostConfig.NetworkMode == "host" && len(c.HostConfig.DNS) == 0 && len(c.HostConfig.DNSSearch) == 0 && len(c.HostConfig.DNSOptions) == 0 {
		data, _ := os.ReadFile("/etc/resolv.conf")
		return data
	}
	host, _ := os.ReadFile("/etc/resolv.conf")
	var servers, search, other []string
	for _, l := range strings.Split(string(filterResolv(host)), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "nameserver":
			servers = append(servers, f[1])
		case len(f) >= 2 && (f[0] == "search" || f[0] == "domain"):
			search = append(search, f[1:]...)
		case len(f) > 0 && !strings.HasPrefix(f[0], "#"):
			other = append(other, l)
		}
	}
	if len(c.HostConfig.DNS) > 0 {
		servers = c.HostConfig.DNS
	}
	if len(c.HostConfig.DNSSearch) > 0 {
		search = c.HostConfig.DNSSearch
	}
	if len(c.HostConfig.DNSOptions) > 0 {
		// --dns-option replaces the host's options, as docker's does.
		other = slices.DeleteFunc(other, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), "options") })
		other = append(other, "options "+strings.Join(c.HostConfig.DNSOptions, " "))
	}
	if len(servers) == 0 && len(c.HostConfig.Networks) > 0 {
		// The host's resolver is on its loopback, which the container
		// cannot reach: docker's fallback.
		servers = []string{"8.8.8.8", "8.8.4.4"}
	}
	if onUserNetwork(c) {
		servers = []string{dns.Address.String()}
		// Every name is tried as it is first: the server knows
		// names without dots.
		if !slices.ContainsFunc(other, func(l string) bool { return strings.Contains(l, "ndots:") }) {
			other = append(other, "options ndots:0")
		}
	}
	var b strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for _, o := range other {
		b.WriteString(o + "\n")
	}
	return []byte(b.String())
}

// writeInPlace rewrites a file that is bind-mounted into a container:
// the same inode, so the container sees the new content.
func writeInPlace(path string, data []byte) error {
	return os.WriteFile(path, data, 0o644)
}

// refreshEtcFiles rewrites c's /etc/hosts and /etc/resolv.conf (under
// c's lock, or before c runs).
func (e *Engine) refreshEtcFiles(ctx context.Context, c *Container) error {
	dir := e.containerDir(c.ID)
	if err := writeInPlace(filepath.Join(dir, "hosts"), []byte(hostsFile(c))); err != nil {
		return err
	}
	return writeInPlace(filepath.Join(dir, "resolv.conf"), resolvConf(c))
}

func (e *Engine) allRecords(ctx context.Context) ([]*Container, error) {
	rows, err := e.db.ListAll(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, r := range rows {
		if c, err := decode(r); err == nil {
			out = append(out, c)
		}
	}
	return out, nil
}

// Connect attaches a container to one more network: at once if it runs
// (a new interface), else at its next start.
func (e *Engine) Connect(ctx context.Context, ref, name string, req NetworkRequest) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	if !ownsNetns(c) || c.HostConfig.NetworkMode == "none" {
		return fmt.Errorf("container %s uses --network %s: it cannot join networks: %w", c.Name, c.HostConfig.NetworkMode, ErrInvalid)
	}
	m, err := e.networks()
	if err != nil {
		return err
	}
	cfg, err := m.Get(ctx, name)
	if err != nil {
		return err
	}
	req.Name = cfg.Name
	unlock, err := e.lock(ctx, c.ID)
	if err != nil {
		return err
	}
	defer unlock()
	if c, err = e.get(ctx, c.ID); err != nil {
		return err
	}
	for _, r := range c.HostConfig.Networks {
		if network.Canonical(r.Name) == cfg.Name {
			return fmt.Errorf("container %s is already on network %s: %w", c.Name, cfg.Name, ErrInvalid)
		}
	}
	var ep *network.Endpoint
	if c.State.Status == StatusRunning || c.State.Status == StatusPaused {
		if err := e.fixedInterfaces(c, "connect"); err != nil {
			return err
		}
		got, err := m.Attach(ctx, cfg, network.AttachRequest{ContainerID: c.ID, NetNS: e.netnsPath(c.ID),
			IfName: freeIfName(c.NetworkSettings.Endpoints), IP: req.IP, MAC: req.MAC, Aliases: req.Aliases})
		if err != nil {
			return err
		}
		ep = &got
	}
	c, err = e.update(ctx, c.ID, func(r *Container) error {
		r.HostConfig.Networks = append(r.HostConfig.Networks, req)
		if ep != nil {
			r.NetworkSettings.Endpoints = append(r.NetworkSettings.Endpoints, *ep)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if ep == nil {
		return nil
	}
	e.emitEndpoints(ctx, "connect", c.ID, []network.Endpoint{*ep})
	if err := e.refreshEtcFiles(ctx, c); err != nil {
		return err
	}
	return e.syncDNS(ctx, onUserNetwork(c))
}

// fixedInterfaces refuses a change of a running container's networks
// when its isolation wires them once at start (a VM: a device per
// interface, made before it boots, which microvm cannot hot-plug).
func (e *Engine) fixedInterfaces(c *Container, what string) error {
	if d, err := e.driver.named(c.HostConfig.Isolation); err == nil && d != e.driver.def {
		return fmt.Errorf("network %s: container %s runs in a %s: its interfaces are fixed at its start; stop it first: %w", what, c.Name, d.Name(), ErrInvalidState)
	}
	return nil
}

// Disconnect detaches a container from a network.
func (e *Engine) Disconnect(ctx context.Context, ref, name string) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	name = network.Canonical(name)
	unlock, err := e.lock(ctx, c.ID)
	if err != nil {
		return err
	}
	defer unlock()
	if c, err = e.get(ctx, c.ID); err != nil {
		return err
	}
	if !slices.ContainsFunc(c.HostConfig.Networks, func(r NetworkRequest) bool { return network.Canonical(r.Name) == name }) {
		return fmt.Errorf("container %s is not on network %s: %w", c.Name, name, ErrInvalid)
	}
	var detach []network.Endpoint
	for _, ep := range c.NetworkSettings.Endpoints {
		if ep.Network == name {
			detach = append(detach, ep)
		}
	}
	if len(detach) > 0 && (c.State.Status == StatusRunning || c.State.Status == StatusPaused) {
		if err := e.fixedInterfaces(c, "disconnect"); err != nil {
			return err
		}
	}
	if _, err := e.detachAll(ctx, c.ID, detach); err != nil {
		return err
	}
	e.emitEndpoints(ctx, "disconnect", c.ID, detach)
	c, err = e.update(ctx, c.ID, func(r *Container) error {
		r.HostConfig.Networks = slices.DeleteFunc(r.HostConfig.Networks, func(n NetworkRequest) bool { return network.Canonical(n.Name) == name })
		r.NetworkSettings.Endpoints = slices.DeleteFunc(r.NetworkSettings.Endpoints, func(ep network.Endpoint) bool { return ep.Network == name })
		return nil
	})
	if err != nil {
		return err
	}
	if len(detach) > 0 {
		if err := e.refreshEtcFiles(ctx, c); err != nil {
			return err
		}
		return e.syncDNS(ctx, false)
	}
	return nil
}

// freeIfName is the lowest ethN no endpoint uses (after a disconnect the
// names have gaps; reusing a live one would have the plugin delete it).
func freeIfName(eps []network.Endpoint) string {
	for n := 0; ; n++ {
		name := "eth" + strconv.Itoa(n)
		if !slices.ContainsFunc(eps, func(ep network.Endpoint) bool { return ep.IfName == name }) {
			return name
		}
	}
}

// NetworkUsers returns the containers on a network (by record).
func (e *Engine) NetworkUsers(ctx context.Context, name string) ([]string, error) {
	all, err := e.allRecords(ctx)
	if err != nil {
		return nil, err
	}
	name = network.Canonical(name)
	var out []string
	for _, c := range all {
		for _, r := range c.HostConfig.Networks {
			if network.Canonical(r.Name) == name {
				out = append(out, c.Name)
			}
		}
	}
	return out, nil
}
