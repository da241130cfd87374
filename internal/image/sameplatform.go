package image

import "strings"

// SamePlatform compares a --platform value (os/arch[/variant], or arch
// alone for linux) with an image's: a variant given on one side only, and
// arm64's v8, match.
func SamePlatform(want, have string) bool {
	norm := func(p string) []string {
		f := strings.Split(strings.ToLower(p), "/")
		if len(f) == 1 {
			f = []string{"linux", f[0]}
		}
		switch f[1] {
		case "x86_64", "x86-64":
			f[1] = "amd64"
		case "aarch64":
			f[1] = "arm64"
		}
		if f[1] == "arm64" && len(f) == 3 && f[2] == "v8" {
			f = f[:2]
		}
		return f
	}
	w, h := norm(want), norm(have)
	if len(w) < 2 || len(h) < 2 || w[0] != h[0] || w[1] != h[1] {
		return false
	}
	return len(w) < 3 || len(h) < 3 || w[2] == h[2]
}
