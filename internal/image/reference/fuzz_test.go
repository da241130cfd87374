package reference

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error wraps
// ErrInvalid and quotes the input, and that whatever Parse accepts is valid
// and round-trips through String and Familiar.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"busybox", "busybox:1.36", "library/busybox", "docker.io/library/busybox:latest",
		"index.docker.io/busybox", "user/app:1", "localhost", "localhost:5000", "localhost/x",
		"localhost:5000/a/b:tag", "127.0.0.1:5000/x@" + dg256, "ghcr.io/o/r:tag@" + dg256,
		"[::1]:5000/x:y", "[fe80::1]/x", "docker.io/a.b/c", "docker.io/localhost/x", "a/b.c_d__e-f--g:T_1.-",
		"x@" + dg512, hex64, hex64 + ":x", "Busybox", "x:", "x@", ":x", "@", "/", "a//b", "a..b",
		"busybox:1.36/foo", "https://ghcr.io/x", "[::1/x", "a:1:2/x", "localhost:99999/x", "café",
		strings.Repeat("a", 240), "x:" + strings.Repeat("t", 129), "x@sha256:" + strings.ToUpper(hex64),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q): %v does not wrap ErrInvalid", s, err)
			}
			if !strings.HasPrefix(err.Error(), "reference "+quote(s)+": ") {
				t.Fatalf("Parse(%q): %q does not quote the input", s, err)
			}
			if !r.IsZero() {
				t.Fatalf("Parse(%q) returned %#v with its error", s, r)
			}
			return
		}
		// Each part is valid on its own.
		if why := checkRegistry(r.Registry()); why != "" {
			t.Fatalf("Parse(%q): registry %q %s", s, r.Registry(), why)
		}
		if r.Registry() == legacyRegistry {
			t.Fatalf("Parse(%q): registry not normalised", s)
		}
		if why := checkPath(r.Repository()); why != "" {
			t.Fatalf("Parse(%q): repository %q: %s", s, r.Repository(), why)
		}
		if r.Tag() != "" {
			if why := checkTag(r.Tag()); why != "" {
				t.Fatalf("Parse(%q): %s", s, why)
			}
		}
		if d := r.Digest(); !d.IsZero() {
			if back, err := ParseDigest(d.String()); err != nil || back != d {
				t.Fatalf("Parse(%q): digest %v does not round-trip: %v", s, d, err)
			}
		}
		if len(r.Name()) > MaxNameLength {
			t.Fatalf("Parse(%q): name of %d characters", s, len(r.Name()))
		}
		if r.Registry() == DefaultRegistry && !strings.Contains(r.Repository(), "/") {
			t.Fatalf("Parse(%q): docker.io name without a namespace: %v", s, r)
		}
		checkRoundTrip(t, r)
		// Parse is idempotent on its canonical form, which any tag can
		// replace.
		if r.Tag() != "" {
			if w, err := r.WithTag(r.Tag()); err != nil || w != r {
				t.Fatalf("WithTag(%q) of %v = %v, %v", r.Tag(), r, w, err)
			}
		}
	})
}

// FuzzDigest checks that ParseDigest never panics and round-trips what it
// accepts.
func FuzzDigest(f *testing.F) {
	for _, s := range []string{dg256, dg512, "", "sha256:", "SHA256:" + hex64, "md5:x", hex64} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidDigest) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseDigest(%q): %v", s, err)
			}
			return
		}
		if d.String() != s || len(d.Hex()) != 2*d.Algorithm().Size() {
			t.Fatalf("ParseDigest(%q) = %v", s, d)
		}
	})
}
