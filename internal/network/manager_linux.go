package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/internal/lockfile"
	"github.com/berth-dev/berth/internal/network/cni"
	"github.com/berth-dev/berth/internal/trace"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"
)

// Manager holds the networks under one root.
type Manager struct {
	dir    string
	runDir string
	cni    *cni.Client
	chains chains // this root's firewall chains

	later   bool           // removed networks' bridges are deleted after Remove returns
	pending sync.WaitGroup // those deletions, and the syncs after Create, in flight
	// laterMu guards waiting: once Wait has begun, work is no longer
	// left running (a WaitGroup's Add must not race its Wait).
	laterMu sync.Mutex
	waiting bool
	// syncQueued: a sync after Create waits for the lock and has not
	// listed the records yet, so it covers any record written meanwhile.
	syncQueued atomic.Bool

	// clients are the CNI clients of CNI configurations' plugin
	// directories (CNIRef.BinDirs, joined by NUL), made once each.
	clientsMu sync.Mutex
	clients   map[string]*cni.Client
}

// Open opens (creating) the network state under root; runDir (under the
// run directory) holds what goes with a reboot.
func Open(root, runDir string) (*Manager, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	dir := filepath.Join(root, "networks")
	if err := os.MkdirAll(filepath.Join(dir, "ipam"), 0o700); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	c, err := cni.New(nil, filepath.Join(dir, "cache"))
	if err != nil {
		return nil, err
	}
	return &Manager{dir: dir, runDir: runDir, cni: c, chains: chainsFor(dir)}, nil
}

func (m *Manager) lock(ctx context.Context) (func(), error) {
	return lockfile.Lock(ctx, filepath.Join(m.dir, "lock"), true)
}

func (m *Manager) recordPath(name string) string { return filepath.Join(m.dir, name+".json") }

// Canonical maps docker's names for the default network to berth's.
func Canonical(name string) string {
	switch name {
	case "", "bridge", "default":
		return DefaultName
	}
	return name
}

// Get returns a network; the default one is created on first use.
func (m *Manager) Get(ctx context.Context, name string) (*Config, error) {
	name = Canonical(name)
	if c, err := m.read(name); err == nil || name != DefaultName || !errors.Is(err, ErrNotFound) {
		return c, err
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if c, err := m.read(name); err == nil {
		return c, nil
	}
	c := &Config{Name: DefaultName, ID: newID(), Driver: DriverBridge, Bridge: DefaultBridge, Subnet: DefaultSubnet,
		Gateway: DefaultGateway, Default: true, Created: time.Now().UTC()}
	if err := m.write(c); err != nil {
		return nil, err
	}
	return c, nil
}

func (m *Manager) read(name string) (*Config, error) {
	if !validNetName(name) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	data, err := os.ReadFile(m.recordPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (berth network ls lists them)", ErrNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("network %s: corrupt record %s: %w", name, m.recordPath(name), err)
	}
	return &c, nil
}

// write stores the record, and beside it the network's full conflist
// (<name>.conflist, every plugin berth may chain) for CNI tools such as
// cnitool; berth itself derives the list from the record at each attach.
func (m *Manager) write(c *Config) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	conf, err := m.conflist(c, true, true)
	if err != nil {
		return err
	}
	for path, b := range map[string][]byte{m.recordPath(c.Name): data, filepath.Join(m.dir, c.Name+".conflist"): conf} {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return nil
}

// List returns every network (the default one included), by name.
func (m *Manager) List(ctx context.Context) ([]*Config, error) {
	if _, err := m.Get(ctx, DefaultName); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		return nil, err
	}
	var out []*Config
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		c, err := m.read(name)
		if errors.Is(err, ErrNotFound) {
			// Removed since the directory was read (docker compose
			// lists while it removes): it is not there to list.
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Create makes a network.
func (m *Manager) Create(ctx context.Context, o CreateOptions) (*Config, error) {
	o.Name = strings.TrimSpace(o.Name)
	if !validNetName(o.Name) {
		return nil, fmt.Errorf("invalid network name %q: [a-zA-Z0-9][a-zA-Z0-9_.-], at most 64: %w", o.Name, ErrInvalid)
	}
	switch o.Name {
	case "bridge", "host", "none", "default", DefaultName:
		return nil, fmt.Errorf("network name %q is reserved: %w", o.Name, ErrInvalid)
	}
	if o.Driver == "" {
		o.Driver = DriverBridge
	}
	c := &Config{Name: o.Name, ID: newID(), Driver: o.Driver, Internal: o.Internal, Labels: o.Labels, Options: o.Options, Created: time.Now().UTC()}
	for k, v := range o.Options {
		switch k {
		case "vlan":
			id, err := strconv.Atoi(v)
			if err != nil || id < 1 || id > 4094 {
				return nil, fmt.Errorf("-o vlan=%s: an 802.1Q id from 1 to 4094: %w", v, ErrInvalid)
			}
			c.VLAN = id
		case "parent":
			c.Parent = v
		case "mtu":
			if n, err := strconv.Atoi(v); err != nil || n < 576 || n > 65535 {
				return nil, fmt.Errorf("-o mtu=%s: a number from 576 to 65535: %w", v, ErrInvalid)
			}
		default:
			return nil, fmt.Errorf("-o %s: berth knows vlan, parent and mtu: %w", k, ErrInvalid)
		}
	}
	switch o.Driver {
	case DriverBridge:
	case DriverVLAN:
		if c.VLAN == 0 || c.Parent == "" {
			return nil, fmt.Errorf("a vlan network needs -o parent=INTERFACE and -o vlan=ID: %w", ErrInvalid)
		}
		if _, err := net.InterfaceByName(c.Parent); err != nil {
			return nil, fmt.Errorf("-o parent=%s: no such host interface: %w", c.Parent, ErrInvalid)
		}
	default:
		return nil, fmt.Errorf("driver %q: berth has bridge and vlan: %w", o.Driver, ErrInvalid)
	}
	if c.VLAN != 0 {
		// 802.1Q needs the kernel's VLAN support (CONFIG_VLAN_8021Q) for
		// a vlan link, and for a bridge's VLAN filtering its bridge
		// support; say so now rather than at the first container.
		if err := probeVLAN(); err != nil {
			return nil, err
		}
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := m.read(o.Name); err == nil {
		return nil, fmt.Errorf("network %s: %w", o.Name, ErrExists)
	}
	// A removed network's bridge still there would hold its subnet and
	// its name.
	if err := m.deleteRemovedBridgesLocked(ctx); err != nil {
		return nil, err
	}
	all, err := m.listLocked()
	if err != nil {
		return nil, err
	}
	if o.Subnet == "" {
		if c.Subnet, err = freeSubnet(all); err != nil {
			return nil, err
		}
	} else {
		c.Subnet = o.Subnet
	}
	sn, gw, err := parseSubnet(c.Subnet, o.Gateway)
	if err != nil {
		return nil, err
	}
	c.Subnet, c.Gateway = sn.String(), gw.String()
	for _, other := range all {
		if _, on, err := net.ParseCIDR(other.Subnet); err == nil && overlaps(sn, on) {
			return nil, fmt.Errorf("subnet %s overlaps network %s (%s): %w", c.Subnet, other.Name, other.Subnet, ErrInvalid)
		}
	}
	if err := hostRouteConflict(sn, all); err != nil {
		return nil, err
	}
	if o.IPv6 || o.Subnet6 != "" {
		if err := setIPv6(c, o, all); err != nil {
			return nil, err
		}
	}
	for _, r := range []struct{ iprange, given, subnet string }{{o.IPRange, o.Subnet, c.Subnet}, {o.IPRange6, o.Subnet6, c.Subnet6}} {
		if r.iprange == "" {
			continue
		}
		if r.given == "" {
			// docker's rule: a range belongs to a subnet one gave.
			return nil, fmt.Errorf("--ip-range %s: no matching subnet (give --subnet too): %w", r.iprange, ErrInvalid)
		}
		if _, _, err := allocationRange(r.subnet, r.iprange); err != nil {
			return nil, err
		}
	}
	c.IPRange, c.IPRange6 = o.IPRange, o.IPRange6
	if o.Driver == DriverBridge {
		c.Bridge = freeBridgeName(all)
	}
	if err := m.write(c); err != nil {
		return nil, err
	}
	if m.later {
		m.syncRulesLater()
	}
	return c, nil
}

// syncRulesLater, in a long-lived process (see DeleteBridgesLater),
// installs a created network's firewall chains after Create has answered,
// rather than at its first container's attach: a client that creates
// networks and then starts containers on them (compose up) has the ~25-45
// ms of iptables processes run while it goes on. The first attach still
// syncs under the lock as before; it finds the chains current (or waits
// for this sync to end). Creates side by side share one sync: one that
// has not listed the records yet covers every record written before it
// does.
func (m *Manager) syncRulesLater() {
	if !m.syncQueued.CompareAndSwap(false, true) {
		return
	}
	if !m.goLater(func() {
		ctx := context.Background()
		unlock, err := m.lock(ctx)
		if err != nil {
			m.syncQueued.Store(false)
			return
		}
		defer unlock()
		m.syncQueued.Store(false)
		m.syncRulesLocked()
	}) {
		// Shutting down (Create holds the lock: no sync here); the
		// first attach syncs.
		m.syncQueued.Store(false)
	}
}

// ensureRules installs the firewall chains for the current networks, under
// the lock: two attaches racing must not leave an older set installed
// behind a marker that says it is current.
func (m *Manager) ensureRules(ctx context.Context) error {
	return m.withNetworks(ctx, m.syncRules)
}

// withNetworks runs fn on every network's record, under the lock.
func (m *Manager) withNetworks(ctx context.Context, fn func([]*Config) error) error {
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	all, err := m.listLocked()
	if err != nil {
		return err
	}
	return fn(all)
}

func (m *Manager) listLocked() ([]*Config, error) {
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		return nil, err
	}
	var out []*Config
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			if c, err := m.read(name); err == nil {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// setIPv6 makes c dual-stack: o's IPv6 subnet, or a random unique local
// /64 (RFC 4193: fd, 40 random bits, subnet 0), checked against the other
// networks and the host's interfaces.
func setIPv6(c *Config, o CreateOptions, all []*Config) error {
	c.IPv6 = true
	subnet := o.Subnet6
	if subnet == "" {
		var b [5]byte
		rand.Read(b[:])
		subnet = fmt.Sprintf("fd%02x:%02x%02x:%02x%02x::/64", b[0], b[1], b[2], b[3], b[4])
	}
	sn, gw, err := parseSubnet6(subnet, o.Gateway6)
	if err != nil {
		return err
	}
	c.Subnet6, c.Gateway6 = sn.String(), gw.String()
	for _, other := range all {
		if _, on, err := net.ParseCIDR(other.Subnet6); err == nil && overlaps(sn, on) {
			return fmt.Errorf("subnet %s overlaps network %s (%s): %w", c.Subnet6, other.Name, other.Subnet6, ErrInvalid)
		}
	}
	return hostRouteConflict(sn, all)
}

// freeSubnet picks the first 10.89.N.0/24 no network and no host
// interface uses.
func freeSubnet(all []*Config) (string, error) {
	for n := 0; n < 256; n++ {
		cand := fmt.Sprintf("10.89.%d.0/24", n)
		_, cn, _ := net.ParseCIDR(cand)
		free := hostRouteConflict(cn, all) == nil
		for _, c := range all {
			if _, on, err := net.ParseCIDR(c.Subnet); err == nil && overlaps(cn, on) {
				free = false
			}
		}
		if free {
			return cand, nil
		}
	}
	return "", fmt.Errorf("no free subnet left in 10.89.0.0/16: give --subnet: %w", ErrInvalid)
}

// hostRouteConflict refuses a subnet that a host interface (other than
// the bridges of these networks) already has.
func hostRouteConflict(sn *net.IPNet, own []*Config) error {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	mine := map[string]bool{}
	for _, c := range own {
		mine[c.Bridge] = true
	}
	for _, i := range ifs {
		if mine[i.Name] {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || (ipn.IP.To4() != nil) != (sn.IP.To4() != nil) || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsLoopback() {
				continue
			}
			if overlaps(sn, &net.IPNet{IP: ipn.IP.Mask(ipn.Mask), Mask: ipn.Mask}) {
				return fmt.Errorf("subnet %s overlaps host interface %s (%s): choose another --subnet: %w", sn, i.Name, ipn, ErrInvalid)
			}
		}
	}
	return nil
}

func freeBridgeName(all []*Config) string {
	used := map[string]bool{DefaultBridge: true}
	for _, c := range all {
		used[c.Bridge] = true
	}
	for n := 1; ; n++ {
		b := "berth" + strconv.Itoa(n)
		if !used[b] {
			if _, err := net.InterfaceByName(b); err != nil {
				return b
			}
		}
	}
}

// Remove deletes a network no container uses (inUse says which do); its
// bridge and isolation rules go with it.
func (m *Manager) Remove(ctx context.Context, name string, inUse []string) error {
	name = Canonical(name)
	c, err := m.read(name)
	if err != nil {
		return err
	}
	if c.Default {
		return fmt.Errorf("network %s is the default network and cannot be removed: %w", name, ErrInvalid)
	}
	if len(inUse) > 0 {
		return fmt.Errorf("network %s is used by container(s) %s: remove them or disconnect them first: %w", name, strings.Join(inUse, ", "), ErrInUse)
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	if err := m.removeLocked(c); err != nil {
		unlock()
		return err
	}
	if m.later {
		unlock()
		deleteBridge := func() {
			ctx := context.WithoutCancel(ctx)
			unlock, err := m.lock(ctx)
			if err != nil {
				return
			}
			err = m.syncRulesLocked()
			unlock()
			if err == nil && c.Bridge != "" {
				m.deleteRemovedBridge(ctx, c.Bridge)
			}
		}
		if !m.goLater(deleteBridge) {
			deleteBridge()
		}
		return nil
	}
	err = m.syncRulesLocked()
	unlock()
	if err != nil || c.Bridge == "" {
		return err
	}
	return m.deleteRemovedBridge(ctx, c.Bridge)
}

// syncRulesLocked makes the firewall chains match the records.
func (m *Manager) syncRulesLocked() error {
	all, err := m.listLocked()
	if err != nil {
		return err
	}
	return m.syncRules(all)
}

// removeLocked removes a network's record and leases, and leaves a note
// that its bridge is to be deleted (deleteRemovedBridgesLocked).
func (m *Manager) removeLocked(c *Config) error {
	if c.Bridge != "" {
		if err := os.MkdirAll(m.removedDir(), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(m.removedDir(), c.Bridge), nil, 0o600); err != nil {
			return err
		}
	}
	if err := os.Remove(m.recordPath(c.Name)); err != nil {
		return err
	}
	os.Remove(filepath.Join(m.dir, c.Name+".conflist"))
	if !c.Default {
		os.RemoveAll(filepath.Join(m.dir, "ipam", c.Name))
	}
	return nil
}

// removedDir holds a note per bridge of a removed network that is still
// to be deleted. Under the run directory: the bridges go with a reboot
// too.
func (m *Manager) removedDir() string { return filepath.Join(m.runDir, "removed-bridges") }

// DeleteBridgesLater is for a long-lived process (berth serve): Remove
// then answers once the network's record is gone, and its firewall rules
// are rewritten and its bridge deleted after, in the background. The
// kernel takes 30-50 ms here to unregister a bridge (RCU grace periods),
// one bridge at a time, a sync of the rules ~25 ms, and a client that
// removes networks (compose down) need not wait for them: the rules of a
// removed network's bridge, with no container on it, pass nothing, and a
// sync after the next record change rewrites them anyway. The note
// Remove leaves under the lock says which bridges are still to go; a
// bridge is deleted only after a sync (its name then cannot come back
// into the rules through a new network while old rules still name it).
// A Create deletes them first, under the lock (a new network may want an
// old one's subnet, which the old bridge's address holds, or its name),
// and so do Remove, RemoveAll and this call, for what an earlier process
// killed in the meantime left. Each deletion holds a lock of its bridge's
// own, so that a Create waits for one in flight, and a bridge a new
// network took over is never deleted by an old note. Wait waits for the
// deletions in flight.
func (m *Manager) DeleteBridgesLater() {
	m.later = true
	m.goLater(func() {
		if notes, _ := m.removedBridges(); len(notes) == 0 {
			return
		}
		ctx := context.Background()
		if unlock, err := m.lock(ctx); err == nil {
			m.deleteRemovedBridgesLocked(ctx)
			unlock()
		}
	}) // at Wait, nothing: the next Create or Remove deletes them
}

// Wait waits for the bridge deletions DeleteBridgesLater left running
// and the syncs after Create. Once it has begun, a Remove deletes its
// bridge itself, and a Create's chains wait for the network's first
// attach.
func (m *Manager) Wait() {
	m.laterMu.Lock()
	m.waiting = true
	m.laterMu.Unlock()
	m.pending.Wait()
}

// goLater runs fn in a goroutine Wait waits for and says so; once Wait
// has begun it runs nothing and says false (the caller then does the
// work itself, if it need be done now).
func (m *Manager) goLater(fn func()) bool {
	m.laterMu.Lock()
	defer m.laterMu.Unlock()
	if m.waiting {
		return false
	}
	m.pending.Add(1)
	go func() {
		defer m.pending.Done()
		fn()
	}()
	return true
}

// deleteRemovedBridge deletes a removed network's bridge if its note is
// still there, under the bridge's own lock.
func (m *Manager) deleteRemovedBridge(ctx context.Context, bridge string) error {
	if !validNetName(bridge) {
		return nil
	}
	note := filepath.Join(m.removedDir(), bridge)
	unlock, err := lockfile.Lock(ctx, note+".lock", true)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(note); err != nil {
		return nil // deleted by another
	}
	deleteBridge(bridge)
	return os.Remove(note)
}

// deleteRemovedBridgesLocked deletes the bridges of removed networks
// that are still there (see DeleteBridgesLater), once the firewall rules
// no longer name them; the caller holds the manager's lock.
func (m *Manager) deleteRemovedBridgesLocked(ctx context.Context) error {
	notes, err := m.removedBridges()
	if err != nil || len(notes) == 0 {
		return err
	}
	if err := m.syncRulesLocked(); err != nil {
		return err
	}
	return m.deleteNoted(ctx, notes)
}

// removedBridges are the bridges noted as still to be deleted.
func (m *Manager) removedBridges() ([]string, error) {
	ents, err := os.ReadDir(m.removedDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var out []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".lock") {
			out = append(out, e.Name())
		}
	}
	return out, err
}

// deleteNoted deletes noted bridges side by side.
func (m *Manager) deleteNoted(ctx context.Context, bridges []string) error {
	errs := make([]error, len(bridges))
	var wg sync.WaitGroup
	for i, b := range bridges {
		wg.Go(func() { errs[i] = m.deleteRemovedBridge(ctx, b) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// deleteBridge deletes a removed network's bridge. A bridge with
// interfaces up on it serves containers of another root (the default
// berth0 is every root's): it stays.
func deleteBridge(name string) {
	if bridgeInUse(name) {
		return
	}
	exec.Command("ip", "link", "del", name).Run()
}

// RemoveAll deletes every network, the default one included, with their
// bridges, leases and the root's firewall chains (system reset). The
// caller has removed every container first.
func (m *Manager) RemoveAll(ctx context.Context) error {
	return m.withNetworks(ctx, func(all []*Config) error {
		var errs []error
		for _, c := range all {
			errs = append(errs, m.removeLocked(c))
		}
		errs = append(errs, m.syncRules(nil))
		notes, err := m.removedBridges()
		return errors.Join(append(errs, err, m.deleteNoted(ctx, notes))...)
	})
}

// SharedLeaseDir holds the default network's leases (host-local's
// dataDir, CNI's conventional one): every root's default network is the
// one bridge berth0 with the one subnet, so they must draw addresses from
// one pool. With a pool per root, two roots (a second installation, tests
// beside each other) handed out the same address on the same bridge, and
// traffic went to whichever container answered ARP first. host-local
// locks the pool for each allocation, across processes.
var SharedLeaseDir = "/var/lib/cni/networks"

// leaseDir is host-local's dataDir for c.
func (m *Manager) leaseDir(c *Config) string {
	if c.Default {
		return SharedLeaseDir
	}
	return filepath.Join(m.dir, "ipam")
}

// conflist is the CNI configuration of a network for one attachment: the
// portmap plugin only when it publishes ports, tuning only for a MAC, so
// that a plain start runs two plugins (the same list serves its DEL).
func (m *Manager) conflist(c *Config, ports, mac bool) ([]byte, error) {
	rng := func(subnet, gateway, iprange string) []map[string]string {
		r := map[string]string{"subnet": subnet, "gateway": gateway}
		if start, end, err := allocationRange(subnet, iprange); iprange != "" && err == nil {
			r["rangeStart"], r["rangeEnd"] = start, end
		}
		return []map[string]string{r}
	}
	ranges := [][]map[string]string{rng(c.Subnet, c.Gateway, c.IPRange)}
	routes := []map[string]string{{"dst": "0.0.0.0/0"}}
	if c.IPv6 {
		ranges = append(ranges, rng(c.Subnet6, c.Gateway6, c.IPRange6))
		routes = append(routes, map[string]string{"dst": "::/0"})
	}
	ipam := map[string]any{"type": "host-local", "ranges": ranges, "dataDir": m.leaseDir(c)}
	if !c.Internal {
		ipam["routes"] = routes
	}
	var first map[string]any
	switch c.Driver {
	case DriverBridge:
		first = map[string]any{
			"type": "bridge", "bridge": c.Bridge, "isGateway": true, "ipMasq": false,
			"hairpinMode": true, "ipam": ipam, "capabilities": map[string]bool{"ips": true},
		}
		if c.VLAN != 0 {
			first["vlan"] = c.VLAN
		}
	case DriverVLAN:
		first = map[string]any{"type": "vlan", "master": c.Parent, "vlanId": c.VLAN, "ipam": ipam, "capabilities": map[string]bool{"ips": true}}
	}
	if mtu, ok := c.Options["mtu"]; ok {
		first["mtu"], _ = strconv.Atoi(mtu)
	}
	plugins := []any{first}
	if ports {
		pm := map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true}
		if c.IPv6 {
			// Connections to [::1] cannot be DNATed to a container (an
			// IPv6 packet from ::1 never leaves the loopback interface):
			// they are left to the socket that holds the port, where the
			// container's monitor proxies them.
			pm["conditionsV6"] = []string{"!", "-d", "::1"}
		}
		plugins = append(plugins, pm)
	}
	if mac {
		plugins = append(plugins, map[string]any{"type": "tuning", "capabilities": map[string]bool{"mac": true}})
	}
	return json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": c.Name, "plugins": plugins})
}

// AttachRequest is one container interface to set up.
type AttachRequest struct {
	ContainerID string
	NetNS       string
	IfName      string
	IP          string // requested address, or ""
	MAC         string // requested MAC, or ""
	Ports       []PortMapping
	Aliases     []string
}

func capabilityArgs(r AttachRequest) map[string]any {
	args := map[string]any{}
	if len(r.Ports) > 0 {
		var pm []map[string]any
		for _, p := range r.Ports {
			pm = append(pm, map[string]any{"hostPort": p.HostPort, "containerPort": p.ContainerPort, "protocol": p.Protocol, "hostIP": p.HostIP})
		}
		args["portMappings"] = pm
	}
	if r.IP != "" {
		args["ips"] = []string{r.IP}
	}
	if r.MAC != "" {
		args["mac"] = r.MAC
	}
	return args
}

// Attach connects a network namespace to a network and returns the
// endpoint (address, gateway, MAC).
func (m *Manager) Attach(ctx context.Context, c *Config, r AttachRequest) (Endpoint, error) {
	if r.IP != "" {
		ip := net.ParseIP(r.IP)
		_, sn, _ := net.ParseCIDR(c.Subnet)
		if ip == nil || ip.To4() == nil || sn == nil || !sn.Contains(ip) {
			return Endpoint{}, fmt.Errorf("--ip %s is not an address of network %s (%s): %w", r.IP, c.Name, c.Subnet, ErrInvalid)
		}
	}
	if r.MAC != "" {
		if _, err := net.ParseMAC(r.MAC); err != nil {
			return Endpoint{}, fmt.Errorf("--mac-address %s: %w", r.MAC, ErrInvalid)
		}
	}
	lc := c
	if r.IP != "" && c.IPRange != "" {
		if _, rn, err := net.ParseCIDR(c.IPRange); err == nil && !rn.Contains(net.ParseIP(r.IP)) {
			// docker's --ip may lie outside the --ip-range, anywhere in
			// the subnet: host-local then needs the whole subnet as its
			// range (its leases are per network, whatever the range).
			cc := *c
			cc.IPRange = ""
			lc = &cc
		}
	}
	conf, err := m.conflist(lc, len(r.Ports) > 0, r.MAC != "")
	if err != nil {
		return Endpoint{}, err
	}
	n, err := cni.ParseNetwork(conf)
	if err != nil {
		return Endpoint{}, err
	}
	if c.Driver == DriverBridge {
		if err := m.ensureRules(ctx); err != nil {
			return Endpoint{}, err
		}
	}
	trace.Phase("cni-add")
	res, err := m.cni.Attach(ctx, n, cni.Attachment{ContainerID: r.ContainerID, NetNS: r.NetNS, IfName: r.IfName, CapabilityArgs: capabilityArgs(r)})
	if err != nil {
		if c.VLAN != 0 && strings.Contains(err.Error(), "not supported") {
			return Endpoint{}, fmt.Errorf("network %s: %v: this kernel lacks 802.1Q VLAN support (CONFIG_VLAN_8021Q): %w", c.Name, err, ErrUnsupported)
		}
		// Half an ADD (a veth, a lease) is undone by a DEL.
		m.cni.Detach(context.WithoutCancel(ctx), n, cni.Attachment{ContainerID: r.ContainerID, NetNS: r.NetNS, IfName: r.IfName, CapabilityArgs: capabilityArgs(r)})
		return Endpoint{}, err
	}
	ep := Endpoint{Network: c.Name, IfName: r.IfName, Gateway: c.Gateway, Aliases: r.Aliases, Ports: r.Ports, RequestIP: r.IP, RequestMAC: r.MAC}
	fillEndpoint(&ep, res)
	return ep, nil
}

// fillEndpoint takes an ADD's addresses, gateways and the interface's MAC
// into ep.
func fillEndpoint(ep *Endpoint, res *types100.Result) {
	for _, ip := range res.IPs {
		if ip.Address.IP.To4() != nil {
			ep.IP = ip.Address.IP.String()
			ep.PrefixLen, _ = ip.Address.Mask.Size()
			if ip.Gateway != nil {
				ep.Gateway = ip.Gateway.String()
			}
		} else if ip.Address.IP.To16() != nil {
			ep.IPv6 = ip.Address.IP.String()
			ep.PrefixLen6, _ = ip.Address.Mask.Size()
			if ip.Gateway != nil {
				ep.Gateway6 = ip.Gateway.String()
			}
		}
	}
	for _, i := range res.Interfaces {
		if i.Name == ep.IfName && i.Sandbox != "" {
			ep.MAC = i.Mac
		}
	}
}

// cniClient runs the plugins of a CNI configuration file's network: from
// its own directories, with results in berth's cache.
func (m *Manager) cniClient(ref *CNIRef) (*cni.Client, error) {
	if ref.BinDirs == nil {
		return m.cni, nil
	}
	key := strings.Join(ref.BinDirs, "\x00")
	m.clientsMu.Lock()
	defer m.clientsMu.Unlock()
	if c := m.clients[key]; c != nil {
		return c, nil
	}
	c, err := cni.New(ref.BinDirs, filepath.Join(m.dir, "cache"))
	if err != nil {
		return nil, err
	}
	if m.clients == nil {
		m.clients = map[string]*cni.Client{}
	}
	m.clients[key] = c
	return c, nil
}

// cniArgs are ref's CNI_ARGS for the attachment of containerID, with the
// sandbox's ID as containerd and CRI-O pass it.
func cniArgs(ref *CNIRef, containerID string) [][2]string {
	if len(ref.Args) == 0 {
		return nil
	}
	return append(slices.Clone(ref.Args), [2]string{"K8S_POD_INFRA_CONTAINER_ID", containerID})
}

// AttachCNI connects a network namespace to the network of a CNI
// configuration file (CNIRef), as the file reads now. Only published
// ports (the portMappings capability) are asked of its plugins: an
// address, a MAC and aliases are berth's networks' features.
func (m *Manager) AttachCNI(ctx context.Context, ref *CNIRef, r AttachRequest) (Endpoint, error) {
	if r.IP != "" || r.MAC != "" || len(r.Aliases) > 0 {
		return Endpoint{}, fmt.Errorf("CNI network %s (%s): an address, a MAC or aliases are given by its own configuration: %w", ref.Name, ref.File, ErrInvalid)
	}
	n, err := cni.LoadFile(ref.File)
	if err != nil {
		return Endpoint{}, fmt.Errorf("CNI network %s: %w", ref.Name, err)
	}
	if n.Name() != ref.Name {
		// Rewritten since it was chosen: the pod's record names the
		// network its DEL looks for, so it must be the ADD's.
		return Endpoint{}, fmt.Errorf("CNI configuration %s changed while the pod was made (network %s, was %s): try again: %w", ref.File, n.Name(), ref.Name, ErrInvalid)
	}
	// Its plugins were looked up when the configuration was chosen
	// (cri.PodNetwork); one removed since fails the ADD by its name.
	client, err := m.cniClient(ref)
	if err != nil {
		return Endpoint{}, err
	}
	a := cni.Attachment{ContainerID: r.ContainerID, NetNS: r.NetNS, IfName: r.IfName, Args: cniArgs(ref, r.ContainerID), CapabilityArgs: capabilityArgs(r)}
	trace.Phase("cni-add")
	res, err := client.Attach(ctx, n, a)
	if err != nil {
		client.Detach(context.WithoutCancel(ctx), n, a)
		return Endpoint{}, err
	}
	ep := Endpoint{Network: n.Name(), IfName: r.IfName, Ports: r.Ports, CNI: ref}
	fillEndpoint(&ep, res)
	return ep, nil
}

// detachCNI undoes AttachCNI with the configuration and arguments of the
// ADD, from libcni's cache; without one (the ADD never finished), with
// the file if it still defines the network, and otherwise there is
// nothing known to undo.
func (m *Manager) detachCNI(ctx context.Context, containerID, netnsPath string, ep Endpoint) error {
	// Not cut short by the caller's end (a kubelet's StopPodSandbox that
	// times out): a plugin killed half-way through its DEL leaves half
	// of what it made.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	client, err := m.cniClient(ep.CNI)
	if err != nil {
		return err
	}
	a := cni.Attachment{ContainerID: containerID, NetNS: netnsPath, IfName: ep.IfName,
		Args: cniArgs(ep.CNI, containerID), CapabilityArgs: capabilityArgs(AttachRequest{Ports: ep.Ports})}
	n, cached, err := client.CachedNetwork(ep.Network, a)
	if err != nil {
		return err
	}
	if n == nil {
		if n, err = cni.LoadFile(ep.CNI.File); err != nil || n.Name() != ep.Network {
			return nil
		}
	} else {
		a = cached
	}
	return client.Detach(ctx, n, a)
}

// Detach undoes Attach. The network may be gone already: then only the
// cached result is used (leases and rules are released by the plugins).
// netnsPath "" says the namespace is gone (CNI's DEL without a
// namespace): the plugins release what they hold on the host, and the
// kernel removed the interfaces with the namespace.
func (m *Manager) Detach(ctx context.Context, containerID, netnsPath string, ep Endpoint) error {
	if ep.CNI != nil {
		return m.detachCNI(ctx, containerID, netnsPath, ep)
	}
	c, err := m.read(ep.Network)
	if err != nil {
		return nil
	}
	conf, err := m.conflist(c, len(ep.Ports) > 0, ep.RequestMAC != "")
	if err != nil {
		return err
	}
	n, err := cni.ParseNetwork(conf)
	if err != nil {
		return err
	}
	return m.cni.Detach(ctx, n, cni.Attachment{ContainerID: containerID, NetNS: netnsPath, IfName: ep.IfName,
		CapabilityArgs: capabilityArgs(AttachRequest{Ports: ep.Ports, IP: ep.RequestIP, MAC: ep.RequestMAC})})
}

// Unplug takes a bridge endpoint out of service from the host's side,
// for a container whose namespace is about to be unpinned, and reports
// whether it did; then the endpoint's DEL may run without the namespace
// (Detach with netnsPath ""). It sets the veth's host end down: a down
// port forwards nothing on the bridge and gives the container's end no
// carrier, so whatever is left of the namespace (it may outlive its pin
// for a while: the kernel ends it in deferred work, the name server's
// sockets hold it until their reload) can no longer answer for an
// address that its DEL gives back, and nothing inside can bring it up
// again. The veth itself goes with the namespace, in the kernel's own
// cleanup. The host end's name is the plugin's cached result's.
//
// It declines, and the endpoint is detached in the namespace as before,
// where the plugins must see the namespace at DEL, or where berth does
// not know them (a CNI configuration file's network: its host ends may
// be anything, a bridge among them): tuning
// (--mac-address) restores the interface in it and only then drops its
// saved copy on the host; a vlan link is left to its plugin.
func (m *Manager) Unplug(containerID string, ep Endpoint) bool {
	if ep.RequestMAC != "" || ep.CNI != nil {
		return false
	}
	c, err := m.read(ep.Network)
	if err != nil || c.Driver != DriverBridge {
		return false
	}
	conf, err := m.conflist(c, len(ep.Ports) > 0, false)
	if err != nil {
		return false
	}
	n, err := cni.ParseNetwork(conf)
	if err != nil {
		return false
	}
	res, err := m.cni.CachedResult(n, cni.Attachment{ContainerID: containerID, IfName: ep.IfName})
	if err != nil || res == nil {
		return false
	}
	for _, i := range res.Interfaces {
		if i.Sandbox == "" && i.Name != c.Bridge {
			return setLinkDown(i.Name) == nil
		}
	}
	return false
}

// setLinkDown sets a host interface down; one that is gone is no error.
func setLinkDown(name string) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err == unix.ENODEV {
		return nil
	} else if err != nil {
		return err
	}
	if ifr.Uint16()&unix.IFF_UP == 0 {
		return nil
	}
	ifr.SetUint16(ifr.Uint16() &^ unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil && err != unix.ENODEV {
		return err
	}
	return nil
}

// Leases lists the addresses host-local holds for a network (for tests
// and cleanup checks).
func (m *Manager) Leases(name string) ([]string, error) {
	dir := filepath.Join(m.dir, "ipam")
	if Canonical(name) == DefaultName {
		dir = SharedLeaseDir
	}
	ents, err := os.ReadDir(filepath.Join(dir, Canonical(name)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var out []string
	for _, e := range ents {
		if net.ParseIP(e.Name()) != nil {
			out = append(out, e.Name())
		}
	}
	return out, err
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// bridgeInUse says whether an interface that is up is attached to the
// bridge. A port that is down belongs to a container that has gone: its
// veth was unplugged (Unplug) and waits for the kernel to end its
// namespace; deleting the bridge under it only detaches it.
func bridgeInUse(bridge string) bool {
	ents, err := os.ReadDir(filepath.Join("/sys/class/net", bridge, "brif"))
	if err != nil {
		return false
	}
	for _, e := range ents {
		if i, err := net.InterfaceByName(e.Name()); err == nil && i.Flags&net.FlagUp != 0 {
			return true
		}
	}
	return false
}
