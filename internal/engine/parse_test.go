//go:build linux

package engine

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/network"
	"golang.org/x/sys/unix"
)

func TestParsePorts(t *testing.T) {
	pm := func(ip string, host, ctr int, proto string) network.PortMapping {
		return network.PortMapping{HostIP: ip, HostPort: host, ContainerPort: ctr, Protocol: proto}
	}
	tests := []struct {
		name  string
		specs []string
		want  []network.PortMapping
	}{
		{"none", nil, nil},
		{"container port only", []string{"80"}, []network.PortMapping{pm("", 0, 80, "tcp")}},
		{"host and container", []string{"8080:80"}, []network.PortMapping{pm("", 8080, 80, "tcp")}},
		{"explicit tcp", []string{"8080:80/tcp"}, []network.PortMapping{pm("", 8080, 80, "tcp")}},
		{"empty proto is tcp", []string{"80/"}, []network.PortMapping{pm("", 0, 80, "tcp")}},
		{"ip host container udp", []string{"127.0.0.1:8080:80/udp"}, []network.PortMapping{pm("127.0.0.1", 8080, 80, "udp")}},
		{"ip with empty host port", []string{"127.0.0.1::80"}, []network.PortMapping{pm("127.0.0.1", 0, 80, "tcp")}},
		{"ranges", []string{"8000-8001:80-81"}, []network.PortMapping{pm("", 8000, 80, "tcp"), pm("", 8001, 81, "tcp")}},
		{"container range only", []string{"80-82/udp"}, []network.PortMapping{pm("", 0, 80, "udp"), pm("", 0, 81, "udp"), pm("", 0, 82, "udp")}},
		{"range with ip", []string{"10.0.0.1:9000-9001:9000-9001"}, []network.PortMapping{pm("10.0.0.1", 9000, 9000, "tcp"), pm("10.0.0.1", 9001, 9001, "tcp")}},
		{"single-port range", []string{"80-80"}, []network.PortMapping{pm("", 0, 80, "tcp")}},
		{"bounds", []string{"1:65535"}, []network.PortMapping{pm("", 1, 65535, "tcp")}},
		{"several specs", []string{"80", "53:53/udp"}, []network.PortMapping{pm("", 0, 80, "tcp"), pm("", 53, 53, "udp")}},
		{"IPv6 host address", []string{"[::1]:8080:80"}, []network.PortMapping{pm("::1", 8080, 80, "tcp")}},
		{"IPv6, any host port", []string{"[2001:DB8::5]::80/udp"}, []network.PortMapping{pm("2001:db8::5", 0, 80, "udp")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePorts(tt.specs)
			if err != nil {
				t.Fatalf("ParsePorts(%q): %v", tt.specs, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParsePorts(%q) = %+v, want %+v", tt.specs, got, tt.want)
			}
		})
	}
}

func TestParsePortsErrors(t *testing.T) {
	tests := []struct {
		spec    string
		errPart string
	}{
		{"80/sctp", "protocol"},
		{"8080:80/tcp/x", "protocol"},
		{"0", "not a port"},
		{"65536", "not a port"},
		{"8080:0", "not a port"},
		{"65536:80", "not a port"},
		{"", "not a port"},
		{"http", "not a port"},
		{"8080:", "not a port"},
		{"8000-8001:80", "differ in length"},
		{"8000:80-81", "differ in length"},
		{"8000-8002:80-81", "differ in length"},
		{"81-80", "not a port range"},
		{"80-", "not a port range"},
		{"80-65536", "not a port range"},
		{"[1.2.3.4]:80:80", "not an IPv6 address"},
		{"[fe80::zz]:80:80", "not an IPv6 address"},
		{"[::1]:80", "[ipv6]:[hostPort]:containerPort"},
		{"::1:80:80", "[ip:]"},
		{"1:2:3:4", "[ip:]"},
		{"localhost:80:80", "not an IPv4 address"},
		{"1.2.3:80:80", "not an IPv4 address"},
		{"256.0.0.1:80:80", "not an IPv4 address"},
		{":80:80", "not an IPv4 address"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParsePorts([]string{tt.spec})
			if err == nil {
				t.Fatalf("ParsePorts(%q) = %+v, want an error", tt.spec, got)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("ParsePorts(%q): error %v does not wrap ErrInvalid", tt.spec, err)
			}
			if !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("ParsePorts(%q): error %q, want it to mention %q", tt.spec, err, tt.errPart)
			}
			if got != nil {
				t.Errorf("ParsePorts(%q) returned %+v with its error", tt.spec, got)
			}
		})
	}
	// One bad spec fails the whole list.
	if got, err := ParsePorts([]string{"80", "bad"}); err == nil {
		t.Errorf("ParsePorts([80 bad]) = %+v, want an error", got)
	}
}

func TestParseRestartPolicy(t *testing.T) {
	tests := []struct {
		in   string
		want RestartPolicy
	}{
		{"", RestartPolicy{Name: "no"}},
		{"no", RestartPolicy{Name: "no"}},
		{"always", RestartPolicy{Name: "always"}},
		{"unless-stopped", RestartPolicy{Name: "unless-stopped"}},
		{"on-failure", RestartPolicy{Name: "on-failure"}},
		{"on-failure:0", RestartPolicy{Name: "on-failure"}},
		{"on-failure:3", RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}},
		{"on-failure:100", RestartPolicy{Name: "on-failure", MaximumRetryCount: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRestartPolicy(tt.in)
			if err != nil {
				t.Fatalf("ParseRestartPolicy(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseRestartPolicy(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseRestartPolicyErrors(t *testing.T) {
	for _, in := range []string{
		"always:3", "unless-stopped:1", "no:1", ":1",
		"on-failure:-1", "on-failure:x", "on-failure:", "on-failure:3x", "on-failure:03", "on-failure:+3", "on-failure:1:2",
		"sometimes", "Always", "on_failure",
	} {
		t.Run(in, func(t *testing.T) {
			got, err := ParseRestartPolicy(in)
			if err == nil {
				t.Fatalf("ParseRestartPolicy(%q) = %+v, want an error", in, got)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseRestartPolicy(%q): error %v does not wrap ErrInvalid", in, err)
			}
			if got != (RestartPolicy{}) {
				t.Errorf("ParseRestartPolicy(%q) returned %+v with its error", in, got)
			}
		})
	}
}

func TestRestartDelay(t *testing.T) {
	tests := []struct {
		quick int
		want  time.Duration
	}{
		{-1, 100 * time.Millisecond},
		{0, 100 * time.Millisecond},
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{10, 51200 * time.Millisecond},
		{11, time.Minute},
		{12, time.Minute},
		{1000, time.Minute},
		{1 << 30, time.Minute},
	}
	for _, tt := range tests {
		if got := restartDelay(tt.quick); got != tt.want {
			t.Errorf("restartDelay(%d) = %v, want %v", tt.quick, got, tt.want)
		}
	}
	// Never shorter than the run before it, never over a minute.
	prev := time.Duration(0)
	for q := 0; q < 100; q++ {
		d := restartDelay(q)
		if d < prev || d > time.Minute {
			t.Fatalf("restartDelay(%d) = %v after %v: not monotonic within (0, 1m]", q, d, prev)
		}
		prev = d
	}
}

func TestFilterResolv(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"keeps a real server", "nameserver 10.0.0.2\n", "nameserver 10.0.0.2\n"},
		{"drops 127.0.0.53", "nameserver 127.0.0.53\noptions edns0\n", "options edns0\n"},
		{"drops every 127/8", "nameserver 127.0.0.1\nnameserver 127.1.2.3\nnameserver 1.1.1.1\n", "nameserver 1.1.1.1\n"},
		{"drops ::1", "nameserver ::1\nnameserver 2001:db8::1\n", "nameserver 2001:db8::1\n"},
		{"indented and tabbed", "  nameserver\t127.0.0.53\nsearch example.com\n", "search example.com\n"},
		{"keeps comments and search", "# generated\nsearch a b\nnameserver 127.0.0.53\ndomain c\n", "# generated\nsearch a b\ndomain c\n"},
		{"keeps a nameserver line without address", "nameserver\n", "nameserver\n"},
		{"only matches the nameserver keyword", "options 127.0.0.1\n", "options 127.0.0.1\n"},
		{"no trailing newline", "nameserver 8.8.8.8", "nameserver 8.8.8.8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(filterResolv([]byte(tt.in))); got != tt.want {
				t.Errorf("filterResolv(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// nameservers are the nameserver lines' addresses of a resolv.conf.
func nameservers(data []byte) []string {
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out
}

func TestResolvConfHostMode(t *testing.T) {
	host, _ := os.ReadFile("/etc/resolv.conf")
	c := &Container{HostConfig: HostConfig{NetworkMode: "host"}}
	if got := resolvConf(c); !bytes.Equal(got, host) {
		t.Errorf("host mode: resolvConf = %q, want the host's file %q", got, host)
	}
}

func TestResolvConfOverrides(t *testing.T) {
	bridge := []NetworkRequest{{Name: network.DefaultName}}
	tests := []struct {
		name        string
		hc          HostConfig
		wantServers []string
		wantSearch  string // "" when no search line is wanted at the head
	}{
		{"dns and dns-search", HostConfig{NetworkMode: "bridge", Networks: bridge, DNS: []string{"1.1.1.1", "9.9.9.9"}, DNSSearch: []string{"a.example", "b.example"}},
			[]string{"1.1.1.1", "9.9.9.9"}, "search a.example b.example"},
		{"dns only", HostConfig{NetworkMode: "bridge", Networks: bridge, DNS: []string{"192.0.2.53"}},
			[]string{"192.0.2.53"}, ""},
		{"no networks", HostConfig{NetworkMode: "none", DNS: []string{"192.0.2.1"}, DNSSearch: []string{"x.test"}},
			[]string{"192.0.2.1"}, "search x.test"},
		{"host mode with dns is rewritten", HostConfig{NetworkMode: "host", DNS: []string{"192.0.2.7"}, DNSSearch: []string{"h.test"}},
			[]string{"192.0.2.7"}, "search h.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolvConf(&Container{HostConfig: tt.hc})
			if s := nameservers(got); !reflect.DeepEqual(s, tt.wantServers) {
				t.Errorf("nameservers = %q, want %q (file %q)", s, tt.wantServers, got)
			}
			var head strings.Builder
			for _, s := range tt.wantServers {
				head.WriteString("nameserver " + s + "\n")
			}
			if tt.wantSearch != "" {
				head.WriteString(tt.wantSearch + "\n")
			}
			if !strings.HasPrefix(string(got), head.String()) {
				t.Errorf("resolvConf = %q, want it to start with %q", got, head.String())
			}
			if tt.wantSearch != "" {
				n := 0
				for _, l := range strings.Split(string(got), "\n") {
					if f := strings.Fields(l); len(f) > 0 && (f[0] == "search" || f[0] == "domain") {
						n++
					}
				}
				if n != 1 {
					t.Errorf("resolvConf = %q: %d search/domain lines, want only the --dns-search one", got, n)
				}
			}
		})
	}
}

// Whatever the host has, a container with its own network namespace is
// never handed a loopback resolver.
func TestResolvConfNoLoopbackServers(t *testing.T) {
	for _, hc := range []HostConfig{
		{NetworkMode: "bridge", Networks: []NetworkRequest{{Name: network.DefaultName}}},
		{NetworkMode: "none"},
		{NetworkMode: "bridge", Networks: []NetworkRequest{{Name: network.DefaultName}}, DNSSearch: []string{"s.test"}},
	} {
		got := resolvConf(&Container{HostConfig: hc})
		for _, s := range nameservers(got) {
			if strings.HasPrefix(s, "127.") || s == "::1" {
				t.Errorf("mode %s: resolvConf has loopback nameserver %s: %q", hc.NetworkMode, s, got)
			}
		}
	}
}

func TestResolvConfFallback(t *testing.T) {
	host, _ := os.ReadFile("/etc/resolv.conf")
	if s := nameservers(filterResolv(host)); len(s) > 0 {
		t.Skipf("the host's /etc/resolv.conf has non-loopback nameservers %q: the 8.8.8.8 fallback does not apply here", s)
	}
	tests := []struct {
		name string
		hc   HostConfig
		want []string
	}{
		{"with networks", HostConfig{NetworkMode: "bridge", Networks: []NetworkRequest{{Name: network.DefaultName}}}, []string{"8.8.8.8", "8.8.4.4"}},
		{"without networks", HostConfig{NetworkMode: "none"}, nil},
		{"on a user network: the name server", HostConfig{NetworkMode: "front", Networks: []NetworkRequest{{Name: "front"}}}, []string{"127.0.0.11"}},
		{"user network and --dns: still the name server", HostConfig{NetworkMode: "front", Networks: []NetworkRequest{{Name: "front"}}, DNS: []string{"192.0.2.1"}}, []string{"127.0.0.11"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolvConf(&Container{HostConfig: tt.hc})
			if s := nameservers(got); !reflect.DeepEqual(s, tt.want) {
				t.Errorf("nameservers = %q, want %q (file %q)", s, tt.want, got)
			}
		})
	}
}

func TestHostsFile(t *testing.T) {
	ep := func(net, ip string, aliases ...string) network.Endpoint {
		return network.Endpoint{Network: net, IP: ip, Aliases: aliases}
	}
	ctr := func(id, name, hostname, status string, eps ...network.Endpoint) *Container {
		return &Container{ID: id, Name: name, State: State{Status: status},
			Config: Config{Hostname: hostname}, HostConfig: HostConfig{NetworkMode: "bridge"},
			NetworkSettings: NetworkSettings{Endpoints: eps}}
	}
	const header = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

	self := ctr("self", "web", "webhost", StatusRunning, ep("appnet", "10.1.0.2"), ep(network.DefaultName, "172.30.0.2"))
	self.HostConfig.ExtraHosts = []string{"db.local:10.9.9.9", "v6host:2001:db8::1"}
	self.HostConfig.Links = []Link{{Name: "api", Alias: "Legacy-API"}}
	all := []*Container{
		self,
		ctr("p1", "api", "api", StatusRunning, ep("appnet", "10.1.0.3", "backend", "api.svc")),
		ctr("p2", "cache", "cachehost", StatusPaused, ep("appnet", "10.1.0.4")),
		ctr("p3", "worker", "", StatusRestarting, ep("appnet", "10.1.0.5")),
		ctr("p4", "stopped", "stopped", StatusExited, ep("appnet", "10.1.0.6")),
		ctr("p5", "created", "created", StatusCreated, ep("appnet", "10.1.0.7")),
		ctr("p6", "onbridge", "onbridge", StatusRunning, ep(network.DefaultName, "172.30.0.3")),
		ctr("p7", "elsewhere", "elsewhere", StatusRunning, ep("othernet", "10.2.0.2")),
		ctr("p8", "noip", "noip", StatusRunning, ep("appnet", "")),
	}
	got := hostsFile(self)
	want := header +
		"10.1.0.2\twebhost\n" +
		"10.9.9.9\tdb.local\n" +
		"2001:db8::1\tv6host\n"
	if got != want {
		t.Errorf("hostsFile =\n%s\nwant\n%s", got, want)
	}

	// The names are the name server's: every container with an address
	// on a user network, under its name, aliases and short ID.
	v := viewOf(all, map[string]bool{"othernet": true}, []string{"192.0.2.53"}, func(id string) string { return "/ns/" + id })
	type row struct {
		id, netns, network string
		internal           bool
		names              []string
		ips                string
	}
	var rows []row
	for _, c := range v.Containers {
		for _, at := range c.Networks {
			rows = append(rows, row{c.ID, c.NetNS, at.Network, at.Internal, at.Names, fmt.Sprint(at.IPs)})
		}
	}
	wantRows := []row{
		{"self", "/ns/self", "appnet", false, []string{"web", "self"}, "[10.1.0.2]"},
		{"p1", "/ns/p1", "appnet", false, []string{"api", "backend", "api.svc", "p1"}, "[10.1.0.3]"},
		{"p2", "/ns/p2", "appnet", false, []string{"cache", "p2"}, "[10.1.0.4]"},
		{"p3", "/ns/p3", "appnet", false, []string{"worker", "p3"}, "[10.1.0.5]"},
		{"p4", "/ns/p4", "appnet", false, []string{"stopped", "p4"}, "[10.1.0.6]"},
		{"p5", "/ns/p5", "appnet", false, []string{"created", "p5"}, "[10.1.0.7]"},
		{"p7", "/ns/p7", "othernet", true, []string{"elsewhere", "p7"}, "[10.2.0.2]"},
	}
	if !reflect.DeepEqual(rows, wantRows) || !reflect.DeepEqual(v.Upstreams, []string{"192.0.2.53"}) {
		t.Errorf("viewOf =\n%+v\nwant\n%+v", rows, wantRows)
	}
	// A link's alias is the linker's own, in lower case (DNS names are
	// compared so).
	if got := v.Containers[0].Links; !reflect.DeepEqual(got, map[string]string{"legacy-api": "api"}) {
		t.Errorf("the links of self: %v", got)
	}
	if got := v.Containers[1].Links; got != nil {
		t.Errorf("links of a container without any: %v", got)
	}
}

func TestHostsFileSelfAndModes(t *testing.T) {
	const header = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	tests := []struct {
		name string
		c    *Container
		want string
	}{
		{"no endpoints: loopback", &Container{ID: "a", Config: Config{Hostname: "h1"}, HostConfig: HostConfig{NetworkMode: "none"}},
			header + "127.0.0.1\th1\n"},
		{"first endpoint's ip", &Container{ID: "a", Config: Config{Hostname: "h2"}, HostConfig: HostConfig{NetworkMode: "bridge"},
			NetworkSettings: NetworkSettings{Endpoints: []network.Endpoint{{Network: network.DefaultName, IP: "172.30.0.9"}, {Network: "n2", IP: "10.0.0.9"}}}},
			header + "172.30.0.9\th2\n"},
		{"first endpoint without ip: loopback", &Container{ID: "a", Config: Config{Hostname: "h3"}, HostConfig: HostConfig{NetworkMode: "bridge"},
			NetworkSettings: NetworkSettings{Endpoints: []network.Endpoint{{Network: "n"}}}},
			header + "127.0.0.1\th3\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hostsFile(tt.c); got != tt.want {
				t.Errorf("hostsFile = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("host mode", func(t *testing.T) {
		c := &Container{ID: "a", Config: Config{Hostname: "notlisted"},
			HostConfig: HostConfig{NetworkMode: "host", ExtraHosts: []string{"extra:192.0.2.5"}}}
		got := hostsFile(c)
		hostHosts, _ := os.ReadFile("/etc/hosts")
		if want := string(hostHosts) + "192.0.2.5\textra\n"; got != want {
			t.Errorf("hostsFile = %q, want the host's file and the --add-host line %q", got, want)
		}
	})
}

func TestFreeIfName(t *testing.T) {
	eps := func(names ...string) []network.Endpoint {
		var out []network.Endpoint
		for _, n := range names {
			out = append(out, network.Endpoint{IfName: n})
		}
		return out
	}
	tests := []struct {
		in   []network.Endpoint
		want string
	}{
		{nil, "eth0"},
		{eps("eth0"), "eth1"},
		{eps("eth0", "eth1"), "eth2"},
		{eps("eth1"), "eth0"},
		{eps("eth0", "eth2"), "eth1"},
		{eps("eth2", "eth0", "eth1"), "eth3"},
		{eps("veth0", "eth10"), "eth0"},
	}
	for _, tt := range tests {
		if got := freeIfName(tt.in); got != tt.want {
			t.Errorf("freeIfName(%+v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestSeccompOption(t *testing.T) {
	tests := []struct {
		opts []string
		want string
	}{
		{nil, ""},
		{[]string{"no-new-privileges"}, ""},
		{[]string{"seccomp=unconfined"}, "unconfined"},
		{[]string{"seccomp:unconfined"}, "unconfined"},
		{[]string{"seccomp=/etc/profile.json"}, "/etc/profile.json"},
		{[]string{"seccomp=builtin"}, "builtin"},
		{[]string{"seccomp=/a.json", "label=disable", "seccomp=unconfined"}, "unconfined"},
		{[]string{"seccomp=unconfined", "seccomp=/b.json"}, "/b.json"},
		{[]string{"apparmor=unconfined", "label=disable"}, ""},
	}
	for _, tt := range tests {
		if got := seccompOption(tt.opts); got != tt.want {
			t.Errorf("seccompOption(%q) = %q, want %q", tt.opts, got, tt.want)
		}
	}
}

func TestHasNoNewPrivileges(t *testing.T) {
	tests := []struct {
		opts []string
		want bool
	}{
		{nil, false},
		{[]string{"no-new-privileges"}, true},
		{[]string{"no-new-privileges=true"}, true},
		{[]string{"no-new-privileges:true"}, true},
		{[]string{"no-new-privileges=false"}, false},
		{[]string{"no-new-privileges:false"}, false},
		{[]string{"seccomp=unconfined"}, false},
		{[]string{"seccomp=unconfined", "no-new-privileges"}, true},
		{[]string{"label=disable", "apparmor=foo"}, false},
	}
	for _, tt := range tests {
		if got := hasNoNewPrivileges(tt.opts); got != tt.want {
			t.Errorf("hasNoNewPrivileges(%q) = %v, want %v", tt.opts, got, tt.want)
		}
	}
}

// freeTCPPort is a port nothing on this host listens on now.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestWantedPorts(t *testing.T) {
	fixed := freeTCPPort(t)
	exposed := func(ps ...string) map[string]struct{} {
		m := map[string]struct{}{}
		for _, p := range ps {
			m[p] = struct{}{}
		}
		return m
	}
	pm := func(ip string, host, ctr int, proto string) network.PortMapping {
		return network.PortMapping{HostIP: ip, HostPort: host, ContainerPort: ctr, Protocol: proto}
	}
	tests := []struct {
		name       string
		publishAll bool
		exposed    map[string]struct{}
		bindings   []network.PortMapping
		// want: HostPort 0 means any free port (non-zero) is expected.
		want []network.PortMapping
	}{
		{"nothing", false, nil, nil, nil},
		{"exposed but not -P", false, exposed("80/tcp"), nil, nil},
		{"explicit only", false, exposed("80/tcp", "443/tcp"),
			[]network.PortMapping{pm("", fixed, 80, "tcp")},
			[]network.PortMapping{pm("", fixed, 80, "tcp")}},
		{"explicit with a free host port", false, nil,
			[]network.PortMapping{pm("127.0.0.1", 0, 80, "tcp"), pm("127.0.0.1", 0, 53, "udp"), pm("", 0, 81, "tcp")},
			[]network.PortMapping{pm("127.0.0.1", 0, 80, "tcp"), pm("127.0.0.1", 0, 53, "udp"), pm("", 0, 81, "tcp")}},
		{"-P publishes the rest, sorted", true, exposed("80/tcp", "53/udp", "9000", "bogus/tcp"),
			[]network.PortMapping{pm("", fixed, 80, "tcp")},
			[]network.PortMapping{pm("", fixed, 80, "tcp"), pm("", 0, 53, "udp"), pm("", 0, 9000, "tcp")}},
		{"-P: same port, other protocol", true, exposed("80/udp", "80/tcp"),
			[]network.PortMapping{pm("", fixed, 80, "tcp")},
			[]network.PortMapping{pm("", fixed, 80, "tcp"), pm("", 0, 80, "udp")}},
		{"-P with nothing exposed", true, nil,
			[]network.PortMapping{pm("", fixed, 80, "tcp")},
			[]network.PortMapping{pm("", fixed, 80, "tcp")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Container{Config: Config{ExposedPorts: tt.exposed},
				HostConfig: HostConfig{PublishAllPorts: tt.publishAll, PortBindings: tt.bindings}}
			before := append([]network.PortMapping(nil), tt.bindings...)
			got, _, held, err := wantedPorts(c, nil, false)
			if err != nil {
				t.Fatalf("wantedPorts: %v", err)
			}
			defer closeAll(held)
			if len(held) != len(got) {
				t.Fatalf("%d ports and %d sockets holding them", len(got), len(held))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("wantedPorts = %+v, want %+v", got, tt.want)
			}
			for i, w := range tt.want {
				g := got[i]
				if g.HostIP != w.HostIP || g.ContainerPort != w.ContainerPort || g.Protocol != w.Protocol {
					t.Errorf("port %d = %+v, want %+v", i, g, w)
				}
				if w.HostPort != 0 && g.HostPort != w.HostPort {
					t.Errorf("port %d: host port %d, want %d", i, g.HostPort, w.HostPort)
				}
				if g.HostPort < 1 || g.HostPort > 65535 {
					t.Errorf("port %d: host port %d, want a free port", i, g.HostPort)
				}
				// Held: the same port cannot be had again.
				if _, _, _, err := wantedPorts(&Container{HostConfig: HostConfig{PortBindings: []network.PortMapping{g}}}, nil, false); !errors.Is(err, ErrPortAllocated) {
					t.Errorf("port %d (%+v) while held: %v, want ErrPortAllocated", i, g, err)
				}
			}
			if !reflect.DeepEqual(c.HostConfig.PortBindings, before) {
				t.Errorf("wantedPorts changed the record's bindings: %+v, was %+v", c.HostConfig.PortBindings, before)
			}
		})
	}
}

func TestWantedPortsBadHostIP(t *testing.T) {
	// 192.0.2.1 (TEST-NET-1) is not an address of this machine: no port
	// can be had there.
	c := &Container{HostConfig: HostConfig{PortBindings: []network.PortMapping{{HostIP: "192.0.2.1", ContainerPort: 80, Protocol: "tcp"}}}}
	if got, _, _, err := wantedPorts(c, nil, false); err == nil {
		t.Errorf("wantedPorts = %+v, want an error for a host IP not on this machine", got)
	}
}

func TestShortID(t *testing.T) {
	long := strings.Repeat("0123456789abcdef", 4)
	tests := []struct{ in, want string }{
		{"", ""},
		{"abc", "abc"},
		{"0123456789ab", "0123456789ab"},
		{"0123456789abc", "0123456789ab"},
		{long, "0123456789ab"},
	}
	for _, tt := range tests {
		if got := ShortID(tt.in); got != tt.want {
			t.Errorf("ShortID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStateSetStatus(t *testing.T) {
	tests := []struct {
		status                            string
		running, paused, restarting, dead bool
	}{
		{StatusCreating, false, false, false, false},
		{StatusCreated, false, false, false, false},
		{StatusRunning, true, false, false, false},
		{StatusPaused, true, true, false, false},
		{StatusRestarting, true, false, true, false},
		{StatusRemoving, false, false, false, false},
		{StatusExited, false, false, false, false},
		{StatusDead, false, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			// From every other state, so that stale booleans would show.
			for _, from := range []State{{}, {Running: true, Paused: true, Restarting: true, Dead: true}} {
				s := from
				s.OOMKilled, s.ExitCode, s.Pid = true, 3, 42
				s.setStatus(tt.status)
				if s.Status != tt.status || s.Running != tt.running || s.Paused != tt.paused || s.Restarting != tt.restarting || s.Dead != tt.dead {
					t.Errorf("setStatus(%s) from %+v: Status %s Running %v Paused %v Restarting %v Dead %v, want Running %v Paused %v Restarting %v Dead %v",
						tt.status, from, s.Status, s.Running, s.Paused, s.Restarting, s.Dead, tt.running, tt.paused, tt.restarting, tt.dead)
				}
				if !s.OOMKilled || s.ExitCode != 3 || s.Pid != 42 {
					t.Errorf("setStatus(%s) touched other fields: %+v", tt.status, s)
				}
				if s.Running != isRunning(&Container{State: s}) {
					t.Errorf("setStatus(%s): Running %v disagrees with isRunning", tt.status, s.Running)
				}
			}
		})
	}
}

// A port a host program listens on (with SO_REUSEADDR, as Go's and most
// servers' listeners do) is refused, and so is a port twice in one
// container; a refused set holds nothing.
func TestWantedPortsTaken(t *testing.T) {
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	free := freeTCPPort(t)
	c := &Container{HostConfig: HostConfig{PortBindings: []network.PortMapping{
		{HostPort: free, ContainerPort: 80, Protocol: "tcp"},
		{HostIP: "127.0.0.1", HostPort: busy, ContainerPort: 81, Protocol: "tcp"},
	}}}
	_, _, held, err := wantedPorts(c, nil, false)
	if !errors.Is(err, ErrPortAllocated) || !strings.Contains(err.Error(), fmt.Sprintf("127.0.0.1:%d", busy)) || held != nil {
		t.Fatalf("a port a host program holds: %v (held %d)", err, len(held))
	}
	// The first port was let go again.
	_, _, held, err = wantedPorts(&Container{HostConfig: HostConfig{PortBindings: c.HostConfig.PortBindings[:1]}}, nil, false)
	if err != nil {
		t.Fatalf("the first port after the refused set: %v", err)
	}
	closeAll(held)
	twice := &Container{HostConfig: HostConfig{PortBindings: []network.PortMapping{
		{HostPort: free, ContainerPort: 80, Protocol: "udp"}, {HostPort: free, ContainerPort: 81, Protocol: "udp"},
	}}}
	if _, _, _, err := wantedPorts(twice, nil, false); !errors.Is(err, ErrPortAllocated) {
		t.Fatalf("one udp port published twice: %v", err)
	}
}

// A restart reuses the sockets of the last run when they match, so its
// ports are never free in between; sockets that do not match are closed
// and the ports bound afresh.
func TestWantedPortsReuse(t *testing.T) {
	fixed := freeTCPPort(t)
	c := &Container{HostConfig: HostConfig{PortBindings: []network.PortMapping{
		{HostPort: fixed, ContainerPort: 80, Protocol: "tcp"},
		{HostIP: "127.0.0.1", ContainerPort: 53, Protocol: "udp"},
	}}}
	first, _, held, err := wantedPorts(c, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	again, _, reused, err := wantedPorts(c, held, false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, first) || len(reused) != 2 || reused[0] != held[0] || reused[1] != held[1] {
		t.Fatalf("restart: ports %+v (were %+v), sockets reused %v", again, first, len(reused) == 2 && reused[0] == held[0])
	}
	// Another configuration: the old sockets go, new ones are bound.
	other := &Container{HostConfig: HostConfig{PortBindings: []network.PortMapping{{HostPort: fixed, ContainerPort: 81, Protocol: "udp"}}}}
	ports, _, fresh, err := wantedPorts(other, reused, false)
	if err != nil {
		t.Fatalf("a changed configuration with the old sockets: %v", err)
	}
	defer closeAll(fresh)
	if len(fresh) != 1 || ports[0].HostPort != fixed || ports[0].Protocol != "udp" {
		t.Fatalf("changed configuration: %+v", ports)
	}
	if l, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", fixed)); err != nil {
		t.Errorf("the old tcp reservation was not let go: %v", err)
	} else {
		l.Close()
	}
}

func TestParseChanges(t *testing.T) {
	edit, err := parseChanges([]string{
		`CMD ["a", "b"]`, `ENTRYPOINT echo hi`, `ENV A=1 B="x y"`, `ENV A 2`, `EXPOSE 80 53/udp`,
		`LABEL k=v`, `USER www`, `WORKDIR /srv`, `VOLUME ["/v"]`, `STOPSIGNAL SIGINT`,
	})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{"Env": []any{"PATH=/bin", "A=0"}}
	if err := edit(m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"Cmd": []any{"a", "b"}, "Entrypoint": []any{"/bin/sh", "-c", "echo hi"},
		"Env":          []any{"PATH=/bin", "B=x y", "A=2"},
		"ExposedPorts": map[string]any{"80/tcp": map[string]any{}, "53/udp": map[string]any{}},
		"Labels":       map[string]any{"k": "v"}, "User": "www", "WorkingDir": "/srv",
		"Volumes": map[string]any{"/v": map[string]any{}}, "StopSignal": "SIGINT",
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("config after the changes:\n%#v\nwant\n%#v", m, want)
	}
	for _, bad := range []string{"RUN true", "CMD", `CMD ["unterminated"`, "ENV =x", `LABEL a="open`, "STOPSIGNAL SIGNOPE"} {
		if _, err := parseChanges([]string{bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("--change %q: %v, want ErrInvalid", bad, err)
		}
	}
}

// On a dual-stack network a port without a host address is held on
// 0.0.0.0 and [::] at the same port (docker's), the [::] TCP one being
// where [::1]'s connections land (the loopback proxy's); an IPv6 host
// address needs a dual-stack network.
func TestWantedPortsDualStack(t *testing.T) {
	c := &Container{HostConfig: HostConfig{PortBindings: []network.PortMapping{
		{ContainerPort: 80, Protocol: "tcp"}, {HostIP: "::1", ContainerPort: 81, Protocol: "tcp"}, {ContainerPort: 53, Protocol: "udp"},
	}}}
	ports, res, held, err := wantedPorts(c, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(held)
	if len(res) != 5 || len(held) != 5 {
		t.Fatalf("reservations %+v, %d sockets", res, len(held))
	}
	var got []string
	for i, f := range held {
		sa, err := unix.Getsockname(int(f.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		var addr string
		var port int
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			addr, port = net.IP(sa.Addr[:]).String(), sa.Port
		case *unix.SockaddrInet6:
			addr, port = net.IP(sa.Addr[:]).String(), sa.Port
		}
		if port != ports[res[i].mapping].HostPort {
			t.Errorf("socket %d on port %d, mapping says %d", i, port, ports[res[i].mapping].HostPort)
		}
		got = append(got, fmt.Sprintf("%s/%s lo6=%v", addr, res[i].proto, res[i].loopback6()))
	}
	want := []string{"0.0.0.0/tcp lo6=false", "::/tcp lo6=true", "::1/tcp lo6=true", "0.0.0.0/udp lo6=false", "::/udp lo6=false"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sockets %q, want %q", got, want)
	}
	// A restart reuses them as they are.
	if reused, ok := reuseReservations(slices.Clone(c.HostConfig.PortBindings), res, held); !ok || len(reused) != 5 {
		t.Errorf("the same sockets are not reused: %v", ok)
	}
	if _, _, _, err := wantedPorts(&Container{HostConfig: HostConfig{PortBindings: []network.PortMapping{{HostIP: "::1", ContainerPort: 80, Protocol: "tcp"}}}}, nil, false); !errors.Is(err, ErrInvalid) {
		t.Errorf("[::1] on an IPv4 network: %v", err)
	}
}

func TestParseIDMaps(t *testing.T) {
	m, err := parseIDMaps([]string{"0:100000:1000", "1000:300000:10"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.UIDs) != 2 || len(m.GIDs) != 2 || m.GIDs[1].HostID != 300000 {
		t.Errorf("maps: %+v", m)
	}
	if u, g := m.Root(); u != 100000 || g != 100000 {
		t.Errorf("root: %d:%d", u, g)
	}
	if h, ok := m.HostUID(1005); !ok || h != 300005 {
		t.Errorf("HostUID(1005) = %d %v", h, ok)
	}
	if c := m.ContainerUID(300009); c != 1009 {
		t.Errorf("ContainerUID(300009) = %d", c)
	}
	if c := m.ContainerUID(300010); c != 65534 {
		t.Errorf("an unmapped host ID is %d, want 65534", c)
	}
	m, err = parseIDMaps([]string{"0:100000:1000"}, []string{"0:200000:1000"})
	if err != nil || m.GIDs[0].HostID != 200000 {
		t.Errorf("own gid map: %+v %v", m, err)
	}
	for _, bad := range [][2][]string{
		{{"1:100000:10"}, nil},                 // root unmapped
		{{"0:100000:0"}, nil},                  // size 0
		{{"0:100000"}, nil},                    // two fields
		{{"0:x:10"}, nil},                      // not a number
		{{"0:4294967290:10"}, nil},             // past the ID space
		{{"0:100000:10", "5:200000:10"}, nil},  // container sides overlap
		{{"0:100000:10", "20:100005:10"}, nil}, // host sides overlap
		{{"0:100000:10"}, {"1:100000:10"}},     // gid root unmapped
	} {
		if _, err := parseIDMaps(bad[0], bad[1]); !errors.Is(err, ErrInvalid) {
			t.Errorf("parseIDMaps(%v, %v): %v, want ErrInvalid", bad[0], bad[1], err)
		}
	}
}
