package network

import "testing"

func TestAllocationRange(t *testing.T) {
	for _, c := range []struct{ subnet, iprange, start, end string }{
		{"10.1.0.0/24", "10.1.0.128/25", "10.1.0.128", "10.1.0.254"}, // less the broadcast
		{"10.1.0.0/24", "10.1.0.0/28", "10.1.0.1", "10.1.0.15"},      // less the network
		{"10.1.0.0/16", "10.1.7.0/24", "10.1.7.0", "10.1.7.255"},
		{"fd00:1::/64", "fd00:1::100/120", "fd00:1::100", "fd00:1::1ff"},
	} {
		start, end, err := allocationRange(c.subnet, c.iprange)
		if err != nil || start != c.start || end != c.end {
			t.Errorf("%s in %s: %s-%s %v, want %s-%s", c.iprange, c.subnet, start, end, err, c.start, c.end)
		}
	}
	for _, bad := range [][2]string{{"10.1.0.0/24", "10.2.0.0/25"}, {"10.1.0.0/24", "10.1.0.0/23"}, {"10.1.0.0/24", "fd00::/64"}, {"10.1.0.0/24", "x"}} {
		if _, _, err := allocationRange(bad[0], bad[1]); err == nil {
			t.Errorf("%s in %s accepted", bad[1], bad[0])
		}
	}
}
