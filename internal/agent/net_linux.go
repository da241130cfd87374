package agent

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// configureNetwork gives the guest the network the host read from the
// container's namespace: loopback up, each interface (a virtio-net device,
// found by its MAC: virtio-mmio probe order is not the command line's)
// renamed as on the host, its MTU, addresses and routes. The container
// shares the guest's namespace, so what it sees is exactly this.
func configureNetwork(n *Network, timeout time.Duration) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	if n == nil {
		return nil
	}
	for _, ifc := range n.Interfaces {
		if err := configureInterface(ifc, timeout); err != nil {
			return fmt.Errorf("interface %s (%s): %w", ifc.Name, ifc.MAC, err)
		}
	}
	for _, r := range n.Routes {
		link, err := netlink.LinkByName(r.Dev)
		if err != nil {
			return fmt.Errorf("route %s: %w", r.Dst, err)
		}
		_, dst, err := net.ParseCIDR(r.Dst)
		if err != nil {
			return fmt.Errorf("%w: route %q", ErrMalformed, r.Dst)
		}
		rt := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst}
		if r.Gw != "" {
			if rt.Gw = net.ParseIP(r.Gw); rt.Gw == nil {
				return fmt.Errorf("%w: gateway %q", ErrMalformed, r.Gw)
			}
		} else {
			rt.Scope = netlink.SCOPE_LINK
		}
		if err := netlink.RouteAdd(rt); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("route %s via %q dev %s: %w", r.Dst, r.Gw, r.Dev, err)
		}
	}
	return nil
}

func configureInterface(ifc Interface, timeout time.Duration) error {
	mac, err := net.ParseMAC(ifc.MAC)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if ifc.Name == "" || len(ifc.Name) > 15 || strings.ContainsAny(ifc.Name, "/ \x00") {
		return fmt.Errorf("%w: interface name %q", ErrMalformed, ifc.Name)
	}
	// A VM restored from a template: its device has the template's MAC
	// until it is given the host's (below).
	find := mac
	if ifc.DeviceMAC != "" {
		if find, err = net.ParseMAC(ifc.DeviceMAC); err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	var link netlink.Link
	for deadline := time.Now().Add(timeout); ; {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if a := l.Attrs().HardwareAddr.String(); a == find.String() || a == mac.String() {
				link = l
			}
		}
		if link != nil {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("no such device in the guest")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if link.Attrs().HardwareAddr.String() != mac.String() {
		// virtio-net takes it as a control command: QEMU's device
		// (its receive filter) then has the host's MAC too.
		if err := netlink.LinkSetHardwareAddr(link, mac); err != nil {
			return fmt.Errorf("set the MAC of %s: %w", link.Attrs().Name, err)
		}
	}
	if link.Attrs().Name != ifc.Name {
		if err := netlink.LinkSetName(link, ifc.Name); err != nil {
			return fmt.Errorf("rename %s: %w", link.Attrs().Name, err)
		}
	}
	if ifc.MTU > 0 && ifc.MTU != link.Attrs().MTU {
		if err := netlink.LinkSetMTU(link, ifc.MTU); err != nil {
			return fmt.Errorf("mtu %d: %w", ifc.MTU, err)
		}
	}
	for _, a := range ifc.Addrs {
		addr, err := netlink.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("%w: address %q", ErrMalformed, a)
		}
		// The host already checked the address for duplicates: no DAD
		// delay before an IPv6 address can be used.
		if addr.IP.To4() == nil {
			addr.Flags |= unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("address %s: %w", a, err)
		}
	}
	return netlink.LinkSetUp(link)
}

func (guest) ListenDNS(addr string) (net.PacketConn, net.Listener, error) {
	hp := net.JoinHostPort(addr, "53")
	pc, err := net.ListenPacket("udp", hp)
	if err != nil {
		return nil, nil, err
	}
	l, err := net.Listen("tcp", hp)
	if err != nil {
		pc.Close()
		return nil, nil, err
	}
	return pc, l, nil
}
