package network

import "testing"

func TestValidNetName(t *testing.T) {
	for name, want := range map[string]bool{
		"berth": true, "front-end": true, "a.b_c-9": true, "0net": true,
		"": false, "-x": false, ".x": false, "_x": false, "a/b": false, "a b": false, "é": false,
		"a234567890123456789012345678901234567890123456789012345678901234":  true,
		"a2345678901234567890123456789012345678901234567890123456789012345": false,
	} {
		if got := validNetName(name); got != want {
			t.Errorf("validNetName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestParseSubnet(t *testing.T) {
	for _, tc := range []struct {
		subnet, gw, wantNet, wantGW string
		ok                          bool
	}{
		{"10.89.3.0/24", "", "10.89.3.0/24", "10.89.3.1", true},
		{"10.89.3.7/24", "10.89.3.254", "10.89.3.0/24", "10.89.3.254", true},
		{"10.89.3.0/24", "10.89.4.1", "", "", false},
		{"10.89.3.0/31", "", "", "", false},
		{"fd00::/64", "", "", "", false},
		{"nonsense", "", "", "", false},
	} {
		n, gw, err := parseSubnet(tc.subnet, tc.gw)
		if (err == nil) != tc.ok {
			t.Errorf("parseSubnet(%q, %q): err %v, want ok=%v", tc.subnet, tc.gw, err, tc.ok)
			continue
		}
		if tc.ok && (n.String() != tc.wantNet || gw.String() != tc.wantGW) {
			t.Errorf("parseSubnet(%q, %q) = %s, %s; want %s, %s", tc.subnet, tc.gw, n, gw, tc.wantNet, tc.wantGW)
		}
	}
}
