// Package network manages berth's container networks: their records and
// CNI configuration lists, the default bridge, and attaching a
// container's network namespace to them (addresses, published ports,
// isolation between networks).
//
// State:
//
//	<root>/networks/<name>.json       a network's record (driver, subnet, bridge, options)
//	<root>/networks/lock              taken while networks are created or removed
//	<root>/networks/ipam/             host-local's leases, one directory per network
//	/var/lib/cni/networks/berth/      the default network's, shared by every root (SharedLeaseDir)
//	<root>/networks/cache/            libcni's results, so DEL works without the namespace
//
// Leases and results live under the persistent root (not /run): after a
// reboot or a killed process, the next detach still finds what to
// release.
//
// Invariants: a network's record is written whole (temp and rename) under
// the lock; its conflist is derived from the record at every use, so a
// change of how berth configures plugins applies to existing networks;
// Detach undoes Attach from libcni's cached result and is safe to repeat.
package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Error categories.
var (
	ErrNotFound    = errors.New("no such network")
	ErrExists      = errors.New("network exists already")
	ErrInUse       = errors.New("network is in use")
	ErrInvalid     = errors.New("invalid network configuration")
	ErrUnsupported = errors.New("not supported by this kernel")
)

// DefaultName is the network `--network bridge` (and the default) means.
const DefaultName = "berth"

// Default network's addresses, as Podman's.
const (
	DefaultBridge  = "berth0"
	DefaultSubnet  = "10.88.0.0/16"
	DefaultGateway = "10.88.0.1"
)

// Drivers.
const (
	DriverBridge = "bridge"
	DriverVLAN   = "vlan"
)

// Config is a network's record.
type Config struct {
	Name     string `json:"Name"`
	ID       string `json:"Id"`
	Driver   string `json:"Driver"`
	Bridge   string `json:"Bridge,omitempty"`
	Subnet   string `json:"Subnet"`
	Gateway  string `json:"Gateway"`
	Internal bool   `json:"Internal"`
	// IPv6: a dual-stack network, with an IPv6 subnet beside the IPv4 one.
	IPv6     bool   `json:"EnableIPv6,omitempty"`
	Subnet6  string `json:"Subnet6,omitempty"`
	Gateway6 string `json:"Gateway6,omitempty"`
	// IPRange and IPRange6 (CIDRs inside the subnets) are where
	// containers' addresses are allocated from (--ip-range).
	IPRange  string            `json:"IPRange,omitempty"`
	IPRange6 string            `json:"IPRange6,omitempty"`
	Default  bool              `json:"Default,omitempty"`
	Labels   map[string]string `json:"Labels,omitempty"`
	Options  map[string]string `json:"Options,omitempty"`
	Created  time.Time         `json:"Created"`
	// VLAN networks: the 802.1Q id and the host interface it rides on.
	VLAN   int    `json:"VLAN,omitempty"`
	Parent string `json:"Parent,omitempty"`
}

// CreateOptions are `network create`'s.
type CreateOptions struct {
	Name     string
	Driver   string // bridge (default) or vlan
	Subnet   string // CIDR; empty picks a free /24 in 10.89.0.0/16
	Gateway  string // empty: the subnet's first address
	Internal bool   // no masquerade, no route out
	// IPv6 makes the network dual-stack; Subnet6 (empty: a random
	// unique local fdXX:XXXX:XXXX::/64) and Gateway6 are its IPv6 side.
	IPv6     bool
	Subnet6  string
	Gateway6 string
	// IPRange and IPRange6 limit the addresses given to containers to a
	// CIDR inside Subnet and Subnet6 (--ip-range).
	IPRange  string
	IPRange6 string
	Labels   map[string]string
	// Options: "vlan" (an 802.1Q id, with driver vlan or on a bridge),
	// "parent" (the host interface of a vlan network), "mtu".
	Options map[string]string
}

// validNetName is [a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}, checked by hand: a
// regexp compiled at package init costs every start of the binary (the
// runtime and the container init included) a quarter of a millisecond.
func validNetName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// PortMapping is one -p: hostIP:hostPort -> containerPort/protocol.
type PortMapping struct {
	HostIP        string `json:"HostIp"`
	HostPort      int    `json:"HostPort"`
	ContainerPort int    `json:"ContainerPort"`
	Protocol      string `json:"Protocol"` // tcp or udp
}

func (p PortMapping) String() string {
	host := p.HostIP
	if host == "" {
		host = "0.0.0.0"
	}
	return fmt.Sprintf("%s->%d/%s", net.JoinHostPort(host, strconv.Itoa(p.HostPort)), p.ContainerPort, p.Protocol)
}

// Endpoint is a container's attachment to one network, as recorded.
type Endpoint struct {
	Network    string        `json:"Network"`
	IfName     string        `json:"IfName"`
	IP         string        `json:"IPAddress"`
	PrefixLen  int           `json:"IPPrefixLen"`
	Gateway    string        `json:"Gateway"`
	IPv6       string        `json:"GlobalIPv6Address,omitempty"`
	PrefixLen6 int           `json:"GlobalIPv6PrefixLen,omitempty"`
	Gateway6   string        `json:"IPv6Gateway,omitempty"`
	MAC        string        `json:"MacAddress"`
	Aliases    []string      `json:"Aliases,omitempty"`
	Ports      []PortMapping `json:"Ports,omitempty"`
	RequestIP  string        `json:"RequestedIP,omitempty"`
	RequestMAC string        `json:"RequestedMAC,omitempty"`
	// CNI: the endpoint is on a network of a CNI configuration file, not
	// one of berth's (Network is then the configuration's name).
	CNI *CNIRef `json:"CNI,omitempty"`
}

// CNIRef is a network that a CNI configuration file defines, outside
// berth's records: the Kubernetes node's pod network (the kubelet's
// /etc/cni/net.d, which a network add-on such as flannel or calico
// writes). berth runs its plugins as written, adds none of its own
// (no name server, no firewall rules, no port reservation) and takes the
// configuration for a DEL from libcni's cache of the ADD, so a file
// changed or removed since still releases what the ADD made.
type CNIRef struct {
	// File is the configuration, as found when the attachment was asked
	// for; Name is its network's name then.
	File string `json:"File"`
	Name string `json:"Name"`
	// BinDirs are where its plugins are looked up (nil: berth's default
	// directories).
	BinDirs []string `json:"BinDirs,omitempty"`
	// Args are CNI_ARGS for its plugins (the Kubernetes pod's
	// K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID; the sandbox's ID is
	// added as K8S_POD_INFRA_CONTAINER_ID at the attachment).
	Args [][2]string `json:"Args,omitempty"`
	// WarmKey, when the attachment may be made ahead of its pod, names
	// the configuration as it was chosen (WarmCNIKey); not recorded.
	WarmKey string `json:"-"`
}

// parseSubnet checks a CIDR and a gateway inside it.
func parseSubnet(subnet, gateway string) (*net.IPNet, net.IP, error) {
	_, n, err := net.ParseCIDR(subnet)
	if err != nil || n.IP.To4() == nil {
		return nil, nil, fmt.Errorf("subnet %q: want an IPv4 CIDR such as 10.89.1.0/24: %w", subnet, ErrInvalid)
	}
	if ones, _ := n.Mask.Size(); ones > 30 {
		return nil, nil, fmt.Errorf("subnet %s is too small (at most /30): %w", subnet, ErrInvalid)
	}
	var gw net.IP
	if gateway == "" {
		gw = make(net.IP, 4)
		copy(gw, n.IP.To4())
		gw[3]++
	} else {
		gw = net.ParseIP(gateway).To4()
		if gw == nil || !n.Contains(gw) {
			return nil, nil, fmt.Errorf("gateway %q is not an address in %s: %w", gateway, subnet, ErrInvalid)
		}
	}
	return n, gw, nil
}

// parseSubnet6 checks an IPv6 CIDR (at most /120) and a gateway in it.
func parseSubnet6(subnet, gateway string) (*net.IPNet, net.IP, error) {
	_, n, err := net.ParseCIDR(subnet)
	if err != nil || n.IP.To4() != nil {
		return nil, nil, fmt.Errorf("subnet %q: want an IPv6 CIDR such as fd00:1:2:3::/64: %w", subnet, ErrInvalid)
	}
	if ones, _ := n.Mask.Size(); ones > 120 {
		return nil, nil, fmt.Errorf("subnet %s is too small (at most /120): %w", subnet, ErrInvalid)
	}
	var gw net.IP
	if gateway == "" {
		gw = make(net.IP, 16)
		copy(gw, n.IP)
		gw[15]++
	} else {
		gw = net.ParseIP(gateway)
		if gw == nil || gw.To4() != nil || !n.Contains(gw) {
			return nil, nil, fmt.Errorf("gateway %q is not an address in %s: %w", gateway, subnet, ErrInvalid)
		}
	}
	return n, gw, nil
}

func overlaps(a, b *net.IPNet) bool { return a.Contains(b.IP) || b.Contains(a.IP) }

// allocationRange is the first and last address host-local may hand out
// in subnet when the allocation is limited to iprange (docker's
// --ip-range): the range's addresses less the subnet's network and
// (IPv4) broadcast addresses.
func allocationRange(subnet, iprange string) (start, end string, err error) {
	sn, err := netip.ParsePrefix(subnet)
	if err != nil {
		return "", "", fmt.Errorf("subnet %q: %w", subnet, err)
	}
	r, err := netip.ParsePrefix(iprange)
	if err != nil {
		return "", "", fmt.Errorf("--ip-range %q: want a CIDR inside the subnet: %w", iprange, ErrInvalid)
	}
	r, sn = r.Masked(), sn.Masked()
	if r.Addr().Is4() != sn.Addr().Is4() || r.Bits() < sn.Bits() || !sn.Contains(r.Addr()) {
		return "", "", fmt.Errorf("--ip-range %s: not inside the subnet %s: %w", iprange, subnet, ErrInvalid)
	}
	first, last := r.Addr(), lastAddr(r)
	if first == sn.Addr() {
		first = first.Next()
	}
	if sn.Addr().Is4() && last == lastAddr(sn) {
		last = last.Prev()
	}
	if !first.IsValid() || !last.IsValid() || last.Less(first) {
		return "", "", fmt.Errorf("--ip-range %s: no address to give in it: %w", iprange, ErrInvalid)
	}
	return first.String(), last.String(), nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
