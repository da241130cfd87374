//go:build linux

package cri

import (
	"net"
	"testing"
)

// Session URLs name the listener's address, and an unspecified one by
// its family's loopback address (what the kubelet on the node reaches).
func TestStreamBaseURL(t *testing.T) {
	for _, c := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}, "http://127.0.0.1:4242"},
		{&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 10010}, "http://10.1.2.3:10010"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 80}, "http://127.0.0.1:80"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 80}, "http://[::1]:80"},
		{&net.TCPAddr{IP: net.ParseIP("fd00::5"), Port: 81}, "http://[fd00::5]:81"},
		{&net.TCPAddr{Port: 82}, "http://127.0.0.1:82"},
	} {
		u, err := streamBaseURL(c.addr)
		if err != nil || u.String() != c.want {
			t.Errorf("streamBaseURL(%v) = %v, %v; want %s", c.addr, u, err, c.want)
		}
	}
	if _, err := streamBaseURL(&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}); err == nil {
		t.Error("streamBaseURL of a unix socket: no error")
	}
}
