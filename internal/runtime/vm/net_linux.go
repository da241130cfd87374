package vm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/agent"
)

// A VM joins the container's network namespace on the host as Kata's
// "tcfilter" model does: for each interface the engine attached there
// (eth0 from CNI: its address, routes and MAC), a tap device beside it,
// whose fd QEMU gets for a virtio-net device with the same MAC, and tc
// ingress filters (u32 match-all, mirred egress redirect) both ways, so
// every frame arriving on eth0 goes out of the tap to the guest and every
// frame the guest sends goes out of eth0. The namespace's own stack sees
// none of it; the guest takes eth0's address, routes and MTU. Bridges,
// published ports (portmap's DNAT to the container's address) and the
// firewall work unchanged, as nothing outside the namespace changed.

// nic is one wired interface: the tap's fd for QEMU and the MAC the
// guest's virtio-net device gets.
type nic struct {
	tap *os.File
	mac string
}

// tapFlags: a tap without packet information, with the virtio-net
// header (QEMU probes it and passes the guest's offloads through).
const tapFlags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR

// wireNetns wires every interface of the network namespace at path to a
// new tap there and returns the taps and the guest's interfaces and
// routes. A namespace with only loopback (--network none) gives none.
func wireNetns(path string) (nics []nic, ifs []agent.Interface, routes []agent.Route, err error) {
	err = inNetns(path, func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return fmt.Errorf("list interfaces: %w", err)
		}
		wired := map[int]string{}
		for _, l := range links {
			a := l.Attrs()
			if a.Flags&net.FlagLoopback != 0 || l.Type() == "tuntap" || len(a.HardwareAddr) != 6 {
				continue
			}
			ifc, tap, err := wire(l, len(nics))
			if err != nil {
				unwire(links)
				closeNICs(nics)
				return fmt.Errorf("interface %s: %w", a.Name, err)
			}
			nics = append(nics, nic{tap: tap, mac: a.HardwareAddr.String()})
			ifs = append(ifs, ifc)
			wired[a.Index] = a.Name
		}
		if len(wired) == 0 {
			return nil
		}
		rs, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
		if err != nil {
			unwire(links)
			closeNICs(nics)
			return fmt.Errorf("list routes: %w", err)
		}
		for _, r := range rs {
			dev, ok := wired[r.LinkIndex]
			// The kernel's own routes (an address's prefix, IPv6
			// link-local) come back in the guest with the addresses.
			if !ok || r.Protocol == unix.RTPROT_KERNEL || r.Type != unix.RTN_UNICAST {
				continue
			}
			dst := "0.0.0.0/0"
			if r.Family == unix.AF_INET6 {
				dst = "::/0"
			}
			if r.Dst != nil {
				dst = r.Dst.String()
			}
			gw := ""
			if r.Gw != nil {
				gw = r.Gw.String()
			}
			routes = append(routes, agent.Route{Dst: dst, Gw: gw, Dev: dev})
		}
		return nil
	})
	return nics, ifs, routes, err
}

// wire makes tap number i beside l (in the current thread's namespace)
// and redirects each one's ingress out of the other.
func wire(l netlink.Link, i int) (agent.Interface, *os.File, error) {
	a := l.Attrs()
	ifc := agent.Interface{Name: a.Name, MAC: a.HardwareAddr.String(), MTU: a.MTU}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return ifc, nil, err
	}
	for _, ad := range addrs {
		// Link-local IPv6 the guest's kernel makes from the same MAC.
		if ad.Scope != unix.RT_SCOPE_UNIVERSE {
			continue
		}
		ifc.Addrs = append(ifc.Addrs, ad.IPNet.String())
	}
	name := "tap" + strconv.Itoa(i) + "_vm"
	tap, err := openTap(name)
	if err != nil {
		return ifc, nil, err
	}
	t, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetMTU(t, a.MTU)
	}
	if err == nil {
		err = netlink.LinkSetUp(t)
	}
	if err == nil {
		err = redirect(a.Index, t.Attrs().Index)
	}
	if err == nil {
		err = redirect(t.Attrs().Index, a.Index)
	}
	if err != nil {
		tap.Close()
		return ifc, nil, fmt.Errorf("tap %s: %w", name, err)
	}
	return ifc, tap, nil
}

// openTap creates a tap named name in the current thread's network
// namespace (a tun device belongs to the namespace it was opened in) and
// returns its queue. It is not persistent: it goes when the last holder
// of the fd (QEMU) does.
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	var req struct {
		name  [unix.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(req.name[:unix.IFNAMSIZ-1], name)
	req.flags = tapFlags
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("create tap %s: %w", name, errno)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// redirect sends every frame arriving on link from out of link to.
func redirect(from, to int) error {
	ingress := netlink.MakeHandle(0xffff, 0)
	if err := netlink.QdiscReplace(&netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: from, Handle: ingress, Parent: netlink.HANDLE_INGRESS,
	}}); err != nil {
		return fmt.Errorf("ingress qdisc: %w", err)
	}
	// u32 with an empty key matches every frame (this kernel has no
	// matchall classifier).
	if err := netlink.FilterAdd(&netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: from, Parent: ingress, Priority: 1, Protocol: unix.ETH_P_ALL},
		Actions:     []netlink.Action{netlink.NewMirredAction(to)},
	}); err != nil {
		return fmt.Errorf("redirect filter: %w", err)
	}
	return nil
}

// unwire removes the ingress qdiscs (and with them the redirects) a
// failed wiring left, so the namespace's interfaces carry frames again.
func unwire(links []netlink.Link) {
	for _, l := range links {
		netlink.QdiscDel(&netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS,
		}})
	}
}

func closeNICs(nics []nic) {
	for _, n := range nics {
		n.tap.Close()
	}
}

// inNetns runs fn on a locked OS thread inside the network namespace at
// path; the thread is thrown away afterwards (its goroutine ends locked),
// so no other goroutine ever runs in that namespace. (internal/network's
// netns has the same dance; the runtime does not import the network
// layer above it.)
func inNetns(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("network namespace: %w", err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("enter the network namespace %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// loopbackNameservers returns the loopback name servers of a resolv.conf
// (the engine's 127.0.0.11): they answer only inside the container's
// network namespace on the host, so the guest relays to them.
func loopbackNameservers(resolvConf []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(resolvConf))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil && a.IsLoopback() && a.Zone() == "" {
			out = append(out, a.String())
		}
	}
	return out
}

// nsDialer makes sockets in the container's network namespace for the
// DNS relay: one locked thread there for the shim's life, which only
// dials (loopback: no wait) and hands the connection back.
type nsDialer struct {
	reqs chan dialReq
}

type dialReq struct {
	network, addr string
	res           chan dialRes
}

type dialRes struct {
	c   net.Conn
	err error
}

// newNSDialer enters the namespace at path on a thread of its own.
func newNSDialer(path string) (*nsDialer, error) {
	d := &nsDialer{reqs: make(chan dialReq)}
	ready := make(chan error, 1)
	go inNetns(path, func() error {
		ready <- nil
		for r := range d.reqs {
			c, err := net.DialTimeout(r.network, r.addr, time.Second)
			r.res <- dialRes{c, err}
		}
		return nil
	})
	select {
	case err := <-ready:
		return d, err
	case <-time.After(5 * time.Second):
		return nil, errors.New("the DNS relay could not enter the network namespace")
	}
}

func (d *nsDialer) dial(network, addr string) (net.Conn, error) {
	r := dialReq{network, addr, make(chan dialRes, 1)}
	d.reqs <- r
	res := <-r.res
	return res.c, res.err
}

// dnsExchange sends one DNS message to server:53 in the namespace, over
// UDP or TCP as the guest's client asked, and returns the answer.
func (d *nsDialer) dnsExchange(q *agent.DNSQuery, msg []byte) ([]byte, error) {
	a, err := netip.ParseAddr(q.Server)
	if err != nil || !a.IsLoopback() {
		return nil, fmt.Errorf("the DNS relay serves loopback name servers only, not %q", q.Server)
	}
	network := "udp"
	if q.TCP {
		network = "tcp"
	}
	c, err := d.dial(network, net.JoinHostPort(a.String(), "53"))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if !q.TCP {
		if _, err := c.Write(msg); err != nil {
			return nil, err
		}
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	if len(msg) > 65535 {
		return nil, errors.New("DNS message too long")
	}
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)); err != nil {
		return nil, err
	}
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	ans := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c, ans); err != nil {
		return nil, err
	}
	return ans, nil
}
