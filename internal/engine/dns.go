//go:build linux

package engine

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/internal/log"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/network/dns"
)

// The name server of user-defined networks (package dns): one process
// per state directory, started by the command that first needs it and
// told by every command that changes who is on a user network (start,
// exit, connect, disconnect, rename) to load the records again.

func (e *Engine) dnsDir() string { return filepath.Join(e.opts.State, "dns") }

// ServeDNS runs the name server (the hidden `system dns-server`).
func (e *Engine) ServeDNS(ctx context.Context) error {
	return dns.Serve(ctx, e.dnsDir(), e.dnsView, log.From(ctx))
}

// onUserNetwork reports whether c is (or asks to be) on a user-defined
// network, where names are served.
func onUserNetwork(c *Container) bool {
	if !ownsNetns(c) {
		return false
	}
	for _, r := range c.HostConfig.Networks {
		if network.Canonical(r.Name) != network.DefaultName && r.CNI == nil {
			return true
		}
	}
	return false
}

// syncDNS makes the name server see the records as they are now. With
// start, a server that does not run is started (a container on a user
// network is about to need it); without, none is (the next one reads the
// records anyway).
func (e *Engine) syncDNS(ctx context.Context, start bool) error {
	var spawn dns.Spawn
	if start {
		spawn = e.spawnDNS
	}
	return dns.Sync(ctx, e.dnsDir(), spawn)
}

// ensureDNS starts the name server again if a container on a user network
// runs and the server does not (it was killed).
func (e *Engine) ensureDNS(ctx context.Context, list []*Container) {
	if dns.Alive(e.dnsDir()) {
		return
	}
	for _, c := range list {
		if isRunning(c) && onUserNetwork(c) {
			if err := e.syncDNS(ctx, true); err != nil {
				log.From(ctx).Warn(err.Error())
			}
			return
		}
	}
}

// spawnDNS starts a server in a session of its own, detached from the
// caller, from the berth binary this process runs.
func (e *Engine) spawnDNS() (func() bool, error) {
	logf, err := os.OpenFile(filepath.Join(e.dnsDir(), "server.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	if st, err := logf.Stat(); err == nil && st.Size() > 1<<20 {
		logf.Truncate(0)
	}
	cmd := exec.Command(e.opts.Exe, "--root", e.opts.Root, "--state", e.opts.State, "system", "dns-server")
	cmd.Args[0] = "berth"
	cmd.Env = append(os.Environ(), dns.ServerEnv+"=1")
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// Until a waiter reaps it, an ended server is a zombie here, so its
	// pid is not another process's meanwhile.
	pid := cmd.Process.Pid
	running := func() bool {
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return false
		}
		_, rest, _ := strings.Cut(string(st), ") ")
		return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
	}
	// Not waited for: it outlives us (its parent becomes the nearest
	// subreaper, which reaps it); a long-lived caller reaps it itself.
	if e.opts.Reap {
		reapLater(cmd)
		return running, nil
	}
	return running, cmd.Process.Release()
}

// dnsView builds the name server's View from the records: every container
// with endpoints on user-defined networks.
func (e *Engine) dnsView(ctx context.Context) (*dns.View, error) {
	all, err := e.allRecords(ctx)
	if err != nil {
		return nil, err
	}
	all = append(all, e.podNameHolders(ctx)...)
	// Get, not List: listing would make the default network's record.
	internal := map[string]bool{}
	if m, err := e.networks(); err == nil {
		for _, c := range all {
			for _, ep := range c.NetworkSettings.Endpoints {
				if _, seen := internal[ep.Network]; !seen && ep.Network != network.DefaultName && ep.CNI == nil {
					n, err := m.Get(ctx, ep.Network)
					internal[ep.Network] = err == nil && n.Internal
				}
			}
		}
	}
	return viewOf(all, internal, hostResolvers(), e.netnsPath), nil
}

// podNameHolders are the pods on user networks as the name server sees
// them: a holder of the pod's namespace (where the server listens for all
// its containers), named by the pod's name and ID, at the pod's
// addresses. The containers of a pod have no endpoints of their own, so
// their names are not names on the network: the pod's is.
func (e *Engine) podNameHolders(ctx context.Context) []*Container {
	rows, err := e.podsDB().ListAll(ctx)
	if err != nil {
		log.From(ctx).Warn("name server: list the pods", "err", err)
		return nil
	}
	var out []*Container
	for _, r := range rows {
		if p, err := decodePod(r); err == nil && len(p.NetworkSettings.Endpoints) > 0 {
			out = append(out, p.asNetHolder())
		}
	}
	return out
}

// viewOf is the View of the records all: every container with endpoints
// on user-defined networks (they are there from its network's set-up to
// its tear-down, whatever its status says meanwhile).
func viewOf(all []*Container, internal map[string]bool, upstreams []string, netnsPath func(string) string) *dns.View {
	v := &dns.View{Upstreams: upstreams}
	for _, c := range all {
		var atts []dns.Attachment
		for _, ep := range c.NetworkSettings.Endpoints {
			ip, err := netip.ParseAddr(ep.IP)
			if ep.Network == network.DefaultName || ep.CNI != nil || err != nil {
				continue // names are served on berth's user networks
			}
			ips := []netip.Addr{ip}
			if ip6, err := netip.ParseAddr(ep.IPv6); err == nil {
				ips = append(ips, ip6)
			}
			names := append([]string{c.Name}, ep.Aliases...)
			names = append(names, c.ID[:min(12, len(c.ID))])
			atts = append(atts, dns.Attachment{Network: ep.Network, Internal: internal[ep.Network], Names: names, IPs: ips})
		}
		if len(atts) > 0 {
			dc := dns.Container{ID: c.ID, NetNS: netnsPath(c.ID), Networks: atts, Upstreams: c.HostConfig.DNS}
			for _, l := range c.HostConfig.Links {
				if dc.Links == nil {
					dc.Links = map[string]string{}
				}
				dc.Links[strings.ToLower(l.Alias)] = l.Name
			}
			v.Containers = append(v.Containers, dc)
		}
	}
	return v
}

// hostResolvers are the host's name servers, loopback ones included (the
// server forwards from the host's namespace), else docker's fallback.
func hostResolvers() []string {
	data, _ := os.ReadFile("/etc/resolv.conf")
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "nameserver" {
			if _, err := netip.ParseAddr(strings.Split(f[1], "%")[0]); err == nil {
				out = append(out, f[1])
			}
		}
	}
	if len(out) == 0 {
		out = []string{"8.8.8.8", "8.8.4.4"}
	}
	return out
}
