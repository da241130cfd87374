// Package dns is the name server of berth's user-defined networks: what
// docker calls the embedded DNS server.
//
// One server process runs per berth state directory, started by the first
// command that needs it (see Sync) and gone when no container needs it.
// It answers at 127.0.0.11:53 (UDP and TCP) inside each container's own
// network namespace, on sockets it opens there itself: the socket a query
// arrives on tells which container asks, so each container sees the names
// of exactly the networks it is on. Names are answered from a View, which
// the engine derives from its records; everything else is forwarded, from
// the host's namespace, to the container's --dns servers or else the
// host's resolvers (loopback ones included, which a container could not
// reach itself).
//
// Invariants: the server holds no state of its own that the records do
// not have, so a killed server loses nothing and the next one rebuilds
// the same sockets from the same View. A View is immutable once built.
package dns

import (
	"net/netip"
	"slices"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// Address is where containers find the server, as docker's.
var Address = netip.MustParseAddr("127.0.0.11")

// TTL of the answers about containers, in seconds (docker's).
const TTL = 600

// View is what the server knows: the containers on user-defined networks.
type View struct {
	Containers []Container
	// Upstreams are the host's resolvers ("IP" or "IP:port"), for the
	// containers without --dns.
	Upstreams []string
}

// Container is one container with its own network namespace on at least
// one user-defined network.
type Container struct {
	ID    string
	NetNS string // the namespace's pinned path
	// Networks are its user-defined networks (never the default one:
	// docker's default bridge has no names).
	Networks []Attachment
	// Upstreams are its --dns servers, if any.
	Upstreams []string
	// Links are its legacy links (--link, compose's links:), alias (in
	// lower case) to the linked container's name: names only it
	// resolves, as docker's embedded server answers them on a user
	// network, wherever the linked container is now.
	Links map[string]string
}

// Attachment is a container's place on one network.
type Attachment struct {
	Network  string
	Internal bool
	// Names are the container's name, its aliases on this network and
	// its short ID.
	Names []string
	IPs   []netip.Addr
}

// answerer resolves queries for one asking container.
type answerer struct {
	view *View
	self *Container
}

// reply is the outcome of one query: a message to send back, or the
// servers to forward the query to (when the name is not a container's).
type reply struct {
	msg     []byte
	forward []string
}

// Answer resolves one query from container self. A query that names no
// container is forwarded, unless self is only on internal networks
// (answered SERVFAIL: nothing outside is reachable from there).
func (v *View) Answer(self *Container, req []byte) reply {
	a := answerer{view: v, self: self}
	return a.answer(req)
}

func (a *answerer) answer(req []byte) reply {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return reply{} // not even a header: nothing to answer
	}
	q, err := p.Question()
	if err != nil || h.Response || h.OpCode != 0 {
		return reply{msg: build(h, nil, dnsmessage.RCodeFormatError, nil)}
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	var rrs []dnsmessage.Resource
	found := false
	switch {
	case q.Class != dnsmessage.ClassINET && q.Class != dnsmessage.ClassANY:
	case q.Type == dnsmessage.TypePTR:
		if ip, ok := reverseIP(name); ok {
			for _, n := range a.namesOf(ip) {
				found = true
				rrs = append(rrs, dnsmessage.Resource{
					Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypePTR, Class: dnsmessage.ClassINET, TTL: TTL},
					Body:   &dnsmessage.PTRResource{PTR: mustName(n + ".")},
				})
			}
		}
	default:
		ips, ok := a.lookup(name)
		found = ok
		for _, ip := range ips {
			hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: TTL}
			switch {
			case ip.Is4() && (q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeALL):
				hdr.Type = dnsmessage.TypeA
				rrs = append(rrs, dnsmessage.Resource{Header: hdr, Body: &dnsmessage.AResource{A: ip.As4()}})
			case ip.Is6() && (q.Type == dnsmessage.TypeAAAA || q.Type == dnsmessage.TypeALL):
				hdr.Type = dnsmessage.TypeAAAA
				rrs = append(rrs, dnsmessage.Resource{Header: hdr, Body: &dnsmessage.AAAAResource{AAAA: ip.As16()}})
			}
		}
	}
	if found {
		// A container's name with no address of the asked type is an
		// empty answer (NODATA), never a forward: the name is ours.
		return reply{msg: build(h, &q, dnsmessage.RCodeSuccess, rrs)}
	}
	if up := a.upstreams(); len(up) > 0 {
		return reply{forward: up}
	}
	return reply{msg: build(h, &q, dnsmessage.RCodeServerFailure, nil)}
}

// lookup finds name among the containers on self's networks: NAME, or
// NAME.NETWORK for one network only.
func (a *answerer) lookup(name string) ([]netip.Addr, bool) {
	var ips []netip.Addr
	found := false
	for _, mine := range a.self.Networks {
		// Names may hold dots themselves: NAME.NETWORK is a second try.
		wanted := []string{name}
		if s, ok := strings.CutSuffix(name, "."+strings.ToLower(mine.Network)); ok {
			wanted = append(wanted, s)
		}
		for _, w := range wanted {
			if target, ok := a.self.Links[w]; ok {
				wanted = append(wanted, strings.ToLower(target))
			}
		}
		for i := range a.view.Containers {
			o := &a.view.Containers[i]
			for _, at := range o.Networks {
				if at.Network != mine.Network || !slices.ContainsFunc(at.Names, func(n string) bool { return slices.Contains(wanted, strings.ToLower(n)) }) {
					continue
				}
				found = true
				for _, ip := range at.IPs {
					if !slices.Contains(ips, ip) {
						ips = append(ips, ip)
					}
				}
			}
		}
	}
	return ips, found
}

// namesOf is the reverse lookup: the names of the container that has ip
// on one of self's networks.
func (a *answerer) namesOf(ip netip.Addr) []string {
	for _, mine := range a.self.Networks {
		for i := range a.view.Containers {
			for _, at := range a.view.Containers[i].Networks {
				if at.Network == mine.Network && slices.Contains(at.IPs, ip) && len(at.Names) > 0 {
					return []string{at.Names[0] + "." + at.Network}
				}
			}
		}
	}
	return nil
}

func (a *answerer) upstreams() []string {
	internal := true
	for _, at := range a.self.Networks {
		internal = internal && at.Internal
	}
	if internal {
		return nil
	}
	up := a.self.Upstreams
	if len(up) == 0 {
		up = a.view.Upstreams
	}
	out := make([]string, 0, len(up))
	for _, s := range up {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			out = append(out, ap.String())
		} else if ip, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.AddrPortFrom(ip, 53).String())
		}
	}
	return out
}

// reverseIP parses an in-addr.arpa or ip6.arpa name.
func reverseIP(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		parts := strings.Split(rest, ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		slices.Reverse(parts)
		ip, err := netip.ParseAddr(strings.Join(parts, "."))
		return ip, err == nil && ip.Is4()
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		nib := strings.Split(rest, ".")
		if len(nib) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, n := range nib {
			if len(n) != 1 {
				return netip.Addr{}, false
			}
			v := strings.IndexByte("0123456789abcdef", n[0])
			if v < 0 {
				return netip.Addr{}, false
			}
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= byte(v) << 4
			} else {
				b[pos/2] |= byte(v)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

func mustName(s string) dnsmessage.Name {
	n, err := dnsmessage.NewName(s)
	if err != nil {
		return dnsmessage.MustNewName(".")
	}
	return n
}

// build makes a response to a query with header h (and question q, if it
// had one).
func build(h dnsmessage.Header, q *dnsmessage.Question, rcode dnsmessage.RCode, rrs []dnsmessage.Resource) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{
		ID: h.ID, Response: true, OpCode: h.OpCode, Authoritative: rcode == dnsmessage.RCodeSuccess,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: rcode,
	})
	b.EnableCompression()
	if q != nil {
		b.StartQuestions()
		b.Question(*q)
	}
	b.StartAnswers()
	for _, rr := range rrs {
		switch body := rr.Body.(type) {
		case *dnsmessage.AResource:
			b.AResource(rr.Header, *body)
		case *dnsmessage.AAAAResource:
			b.AAAAResource(rr.Header, *body)
		case *dnsmessage.PTRResource:
			b.PTRResource(rr.Header, *body)
		}
	}
	msg, err := b.Finish()
	if err != nil {
		return nil
	}
	return msg
}
