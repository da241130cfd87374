package dns

import (
	"net/netip"
	"reflect"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func query(t *testing.T, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x4242, RecursionDesired: true})
	b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// decoded is an answer as the test compares it.
type decoded struct {
	rcode dnsmessage.RCode
	data  []string
}

func decode(t *testing.T, msg []byte) decoded {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(msg); err != nil {
		t.Fatalf("unpack: %v", err)
	}
	if m.ID != 0x4242 || !m.Response || len(m.Questions) != 1 {
		t.Fatalf("header: %+v", m.Header)
	}
	d := decoded{rcode: m.RCode}
	for _, a := range m.Answers {
		if a.Header.TTL != TTL {
			t.Errorf("TTL %d", a.Header.TTL)
		}
		switch b := a.Body.(type) {
		case *dnsmessage.AResource:
			d.data = append(d.data, netip.AddrFrom4(b.A).String())
		case *dnsmessage.AAAAResource:
			d.data = append(d.data, netip.AddrFrom16(b.AAAA).String())
		case *dnsmessage.PTRResource:
			d.data = append(d.data, b.PTR.String())
		}
	}
	return d
}

func TestAnswer(t *testing.T) {
	ip := netip.MustParseAddr
	v := &View{
		Upstreams: []string{"192.0.2.53", "[2001:db8::53]:5353", "not-an-address"},
		Containers: []Container{
			{ID: "aaa", Networks: []Attachment{{Network: "front", Names: []string{"web", "www", "aaa"}, IPs: []netip.Addr{ip("10.1.0.2"), ip("fd00::2")}}}},
			{ID: "bbb", Networks: []Attachment{
				{Network: "front", Names: []string{"api", "bbb"}, IPs: []netip.Addr{ip("10.1.0.3")}},
				{Network: "back", Names: []string{"api", "bbb"}, IPs: []netip.Addr{ip("10.2.0.3")}},
			}},
			{ID: "ccc", Networks: []Attachment{{Network: "back", Names: []string{"db", "my.db", "ccc"}, IPs: []netip.Addr{ip("10.2.0.4")}}}},
			{ID: "ddd", Upstreams: []string{"198.51.100.1"}, Networks: []Attachment{{Network: "vault", Internal: true, Names: []string{"secret"}, IPs: []netip.Addr{ip("10.3.0.2")}}}},
			{ID: "eee", Links: map[string]string{"frontpage": "web", "store": "db"}, Networks: []Attachment{{Network: "front", Names: []string{"legacy"}, IPs: []netip.Addr{ip("10.1.0.9")}}}},
		},
	}
	web, api, db, secret, legacy := &v.Containers[0], &v.Containers[1], &v.Containers[2], &v.Containers[3], &v.Containers[4]
	tests := []struct {
		name  string
		self  *Container
		q     string
		typ   dnsmessage.Type
		rcode dnsmessage.RCode
		data  []string
		fwd   []string
	}{
		{"name", api, "web.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.1.0.2"}, nil},
		{"alias, any case", api, "WwW.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.1.0.2"}, nil},
		{"AAAA", api, "web.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, []string{"fd00::2"}, nil},
		{"no AAAA: NODATA, not a forward", web, "api.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, nil, nil},
		{"itself", web, "web.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.1.0.2"}, nil},
		{"both networks' addresses", api, "api.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.1.0.3", "10.2.0.3"}, nil},
		{"seen from front only front's", web, "api.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.1.0.3"}, nil},
		{"NAME.NETWORK", api, "api.back.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.2.0.3"}, nil},
		{"a name with a dot", api, "my.db.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.2.0.4"}, nil},
		{"short ID", web, "bbb.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.1.0.3"}, nil},
		{"another network's name is forwarded", web, "db.", dnsmessage.TypeA, 0, nil, []string{"192.0.2.53:53", "[2001:db8::53]:5353"}},
		{"an outside name is forwarded", db, "example.org.", dnsmessage.TypeA, 0, nil, []string{"192.0.2.53:53", "[2001:db8::53]:5353"}},
		{"internal only: no forward", secret, "example.org.", dnsmessage.TypeA, dnsmessage.RCodeServerFailure, nil, nil},
		{"internal: own names", secret, "secret.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.3.0.2"}, nil},
		{"a link's alias", legacy, "FrontPage.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.1.0.2"}, nil},
		{"a link's alias.NETWORK", legacy, "frontpage.front.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.1.0.2"}, nil},
		{"a link's alias is the linker's only", api, "frontpage.", dnsmessage.TypeA, 0, nil, []string{"192.0.2.53:53", "[2001:db8::53]:5353"}},
		{"a link to a container on no shared network", legacy, "store.", dnsmessage.TypeA, 0, nil, []string{"192.0.2.53:53", "[2001:db8::53]:5353"}},
		{"PTR", api, "2.0.1.10.in-addr.arpa.", dnsmessage.TypePTR, dnsmessage.RCodeSuccess, []string{"web.front."}, nil},
		{"PTR v6", api, "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", dnsmessage.TypePTR, dnsmessage.RCodeSuccess, []string{"web.front."}, nil},
		{"PTR of another network's address", web, "4.0.2.10.in-addr.arpa.", dnsmessage.TypePTR, 0, nil, []string{"192.0.2.53:53", "[2001:db8::53]:5353"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := v.Answer(tt.self, query(t, tt.q, tt.typ))
			if !reflect.DeepEqual(r.forward, tt.fwd) {
				t.Fatalf("forward = %q, want %q", r.forward, tt.fwd)
			}
			if tt.fwd != nil {
				if r.msg != nil {
					t.Fatal("both an answer and a forward")
				}
				return
			}
			d := decode(t, r.msg)
			if d.rcode != tt.rcode || !reflect.DeepEqual(d.data, tt.data) {
				t.Errorf("answer %v %q, want %v %q", d.rcode, d.data, tt.rcode, tt.data)
			}
		})
	}
	// A container's own --dns servers are its upstreams.
	own := &Container{Upstreams: []string{"198.51.100.1"}, Networks: []Attachment{{Network: "front"}}}
	if r := v.Answer(own, query(t, "example.org.", dnsmessage.TypeA)); !reflect.DeepEqual(r.forward, []string{"198.51.100.1:53"}) {
		t.Errorf("forward with --dns = %q", r.forward)
	}
	// Garbage: no answer at all; a response or a bad question: FORMERR.
	if r := v.Answer(web, []byte{1, 2, 3}); r.msg != nil || r.forward != nil {
		t.Errorf("a 3-byte query got %+v", r)
	}
	if r := v.Answer(web, query(t, "web.", dnsmessage.TypeA)[:14]); r.msg == nil {
		t.Error("a truncated question got no FORMERR")
	}
}

func TestReverseIP(t *testing.T) {
	for in, want := range map[string]string{
		"4.3.2.1.in-addr.arpa": "1.2.3.4",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa": "2001:db8::1",
		"3.2.1.in-addr.arpa":   "",
		"x.3.2.1.in-addr.arpa": "",
		"1.0.ip6.arpa":         "",
		"example.org":          "",
	} {
		ip, ok := reverseIP(in)
		if got := map[bool]string{true: ip.String(), false: ""}[ok]; got != want {
			t.Errorf("reverseIP(%q) = %q, want %q", in, got, want)
		}
	}
}
