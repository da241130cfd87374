package image

import "testing"

func TestSamePlatform(t *testing.T) {
	for _, tt := range []struct {
		want, have string
		same       bool
	}{
		{"linux/amd64", "linux/amd64", true},
		{"amd64", "linux/amd64", true},
		{"linux/x86_64", "linux/amd64", true},
		{"linux/arm64", "linux/arm64/v8", true},
		{"linux/arm/v7", "linux/arm/v6", false},
		{"linux/arm", "linux/arm/v7", true},
		{"linux/arm64", "linux/amd64", false},
		{"windows/amd64", "linux/amd64", false},
	} {
		if got := SamePlatform(tt.want, tt.have); got != tt.same {
			t.Errorf("SamePlatform(%q, %q) = %v", tt.want, tt.have, got)
		}
	}
}
