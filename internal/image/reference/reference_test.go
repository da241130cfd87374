package reference

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const (
	hex64  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	hex128 = hex64 + "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	dg256  = "sha256:" + hex64
	dg512  = "sha512:" + hex128
)

func TestParse(t *testing.T) {
	tests := []struct {
		in                  string
		registry, repo, tag string
		digest              string
		canonical, familiar string
		loopback            bool
	}{
		// Docker Hub: default registry, library/ and latest.
		{"busybox", "docker.io", "library/busybox", "latest", "",
			"docker.io/library/busybox:latest", "busybox:latest", false},
		{"busybox:1.36", "docker.io", "library/busybox", "1.36", "",
			"docker.io/library/busybox:1.36", "busybox:1.36", false},
		{"library/busybox", "docker.io", "library/busybox", "latest", "",
			"docker.io/library/busybox:latest", "busybox:latest", false},
		{"docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", "",
			"docker.io/library/busybox:latest", "busybox:latest", false},
		{"docker.io/busybox", "docker.io", "library/busybox", "latest", "",
			"docker.io/library/busybox:latest", "busybox:latest", false},
		{"index.docker.io/busybox", "docker.io", "library/busybox", "latest", "",
			"docker.io/library/busybox:latest", "busybox:latest", false},
		{"index.docker.io/library/busybox:musl", "docker.io", "library/busybox", "musl", "",
			"docker.io/library/busybox:musl", "busybox:musl", false},
		{"user/app:1", "docker.io", "user/app", "1", "",
			"docker.io/user/app:1", "user/app:1", false},
		{"docker.io/user/app", "docker.io", "user/app", "latest", "",
			"docker.io/user/app:latest", "user/app:latest", false},
		{"library/a/b", "docker.io", "library/a/b", "latest", "",
			"docker.io/library/a/b:latest", "library/a/b:latest", false},
		{"a/b/c/d", "docker.io", "a/b/c/d", "latest", "",
			"docker.io/a/b/c/d:latest", "a/b/c/d:latest", false},
		{"busybox@" + dg256, "docker.io", "library/busybox", "", dg256,
			"docker.io/library/busybox@" + dg256, "busybox@" + dg256, false},
		{"busybox:1.36@" + dg256, "docker.io", "library/busybox", "1.36", dg256,
			"docker.io/library/busybox:1.36@" + dg256, "busybox:1.36@" + dg256, false},
		{"busybox@" + dg512, "docker.io", "library/busybox", "", dg512,
			"docker.io/library/busybox@" + dg512, "busybox@" + dg512, false},
		// Separators, tag characters.
		{"a/b.c_d__e-f--g:Tag_1.0-rc.1", "docker.io", "a/b.c_d__e-f--g", "Tag_1.0-rc.1", "",
			"docker.io/a/b.c_d__e-f--g:Tag_1.0-rc.1", "a/b.c_d__e-f--g:Tag_1.0-rc.1", false},
		{"x:_", "docker.io", "library/x", "_", "", "docker.io/library/x:_", "x:_", false},
		// Looks like a registry, but nothing follows it: a Hub name (and tag).
		{"localhost", "docker.io", "library/localhost", "latest", "",
			"docker.io/library/localhost:latest", "localhost:latest", false},
		{"localhost:5000", "docker.io", "library/localhost", "5000", "",
			"docker.io/library/localhost:5000", "localhost:5000", false},
		{"ghcr.io", "docker.io", "library/ghcr.io", "latest", "",
			"docker.io/library/ghcr.io:latest", "ghcr.io:latest", false},
		// A 64-hex component is fine where it is not the whole input.
		{hex64 + ":x", "docker.io", "library/" + hex64, "x", "",
			"docker.io/library/" + hex64 + ":x", hex64 + ":x", false},
		// Other registries.
		{"localhost/x", "localhost", "x", "latest", "",
			"localhost/x:latest", "localhost/x:latest", true},
		{"localhost:5000/a/b:tag", "localhost:5000", "a/b", "tag", "",
			"localhost:5000/a/b:tag", "localhost:5000/a/b:tag", true},
		{"127.0.0.1:5000/x@" + dg256, "127.0.0.1:5000", "x", "", dg256,
			"127.0.0.1:5000/x@" + dg256, "127.0.0.1:5000/x@" + dg256, true},
		{"127.8.9.10/x", "127.8.9.10", "x", "latest", "",
			"127.8.9.10/x:latest", "127.8.9.10/x:latest", true},
		{"ghcr.io/o/r:tag@" + dg256, "ghcr.io", "o/r", "tag", dg256,
			"ghcr.io/o/r:tag@" + dg256, "ghcr.io/o/r:tag@" + dg256, false},
		{"ghcr.io/busybox", "ghcr.io", "busybox", "latest", "",
			"ghcr.io/busybox:latest", "ghcr.io/busybox:latest", false},
		{"[::1]:5000/x:y", "[::1]:5000", "x", "y", "",
			"[::1]:5000/x:y", "[::1]:5000/x:y", true},
		{"[::1]/x", "[::1]", "x", "latest", "", "[::1]/x:latest", "[::1]/x:latest", true},
		{"[2001:db8::1]:443/x", "[2001:db8::1]:443", "x", "latest", "",
			"[2001:db8::1]:443/x:latest", "[2001:db8::1]:443/x:latest", false},
		{"registry:5000/x", "registry:5000", "x", "latest", "",
			"registry:5000/x:latest", "registry:5000/x:latest", false},
		{"my-registry.example.com:8443/team/app:v1", "my-registry.example.com:8443", "team/app", "v1", "",
			"my-registry.example.com:8443/team/app:v1", "my-registry.example.com:8443/team/app:v1", false},
		{"10.0.0.1:5000/x", "10.0.0.1:5000", "x", "latest", "",
			"10.0.0.1:5000/x:latest", "10.0.0.1:5000/x:latest", false},
		{"128.0.0.1/x", "128.0.0.1", "x", "latest", "", "128.0.0.1/x:latest", "128.0.0.1/x:latest", false},
		// Registries keep their case (docker does not fold host names).
		{"Example.COM/x", "Example.COM", "x", "latest", "", "Example.COM/x:latest", "Example.COM/x:latest", false},
		{"LOCALHOST:5000/x", "LOCALHOST:5000", "x", "latest", "", "LOCALHOST:5000/x:latest", "LOCALHOST:5000/x:latest", true},
		// docker.io names whose first component reads as a registry keep
		// "docker.io/" in the familiar form.
		{"docker.io/a.b/c", "docker.io", "a.b/c", "latest", "",
			"docker.io/a.b/c:latest", "docker.io/a.b/c:latest", false},
		{"docker.io/localhost/x", "docker.io", "localhost/x", "latest", "",
			"docker.io/localhost/x:latest", "docker.io/localhost/x:latest", false},
		{"docker.io/library/a.b", "docker.io", "library/a.b", "latest", "",
			"docker.io/library/a.b:latest", "a.b:latest", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{r.Registry(), r.Repository(), r.Tag(), r.Digest().String(), r.String(), r.Familiar()}
			want := []string{tt.registry, tt.repo, tt.tag, tt.digest, tt.canonical, tt.familiar}
			for i, name := range []string{"Registry", "Repository", "Tag", "Digest", "String", "Familiar"} {
				if got[i] != want[i] {
					t.Errorf("%s() = %q, want %q", name, got[i], want[i])
				}
			}
			if r.Name() != tt.registry+"/"+tt.repo {
				t.Errorf("Name() = %q", r.Name())
			}
			if r.IsLoopbackRegistry() != tt.loopback {
				t.Errorf("IsLoopbackRegistry() = %v", !tt.loopback)
			}
			checkRoundTrip(t, r)
		})
	}
}

// checkRoundTrip checks the invariants of a parsed reference.
func checkRoundTrip(t testing.TB, r Reference) {
	t.Helper()
	for _, form := range []string{r.String(), r.Familiar()} {
		back, err := Parse(form)
		if err != nil {
			t.Fatalf("Parse(%q) of %#v: %v", form, r, err)
		}
		if back != r {
			t.Fatalf("Parse(%q) = %#v, want %#v", form, back, r)
		}
	}
	if r.Tag() == "" && r.Digest().IsZero() {
		t.Fatalf("%#v has neither tag nor digest", r)
	}
	if r.IsZero() || r.Repository() == "" {
		t.Fatalf("%#v has no registry or repository", r)
	}
	if !strings.HasPrefix(r.Familiar(), r.FamiliarName()) || !strings.HasSuffix(r.String(), strings.TrimPrefix(r.Familiar(), r.FamiliarName())) {
		t.Fatalf("%#v: Familiar %q and String %q disagree past the name", r, r.Familiar(), r.String())
	}
}

func TestRoundTrip(t *testing.T) {
	inputs := []string{
		"busybox", "busybox:1.36", "busybox@" + dg256, "busybox:x@" + dg512, "library/busybox",
		"docker.io/library/busybox", "index.docker.io/busybox:1", "user/app", "user/app/sub:t",
		"library/a/b", "docker.io/library/a/b", "docker.io/a.b/c", "docker.io/localhost/x",
		"localhost", "localhost:5000", "localhost/x", "localhost:5000/x/y:z@" + dg256,
		"127.0.0.1/x", "127.0.0.1:5000/x@" + dg256, "[::1]/x", "[::1]:5000/x:y", "[fe80::1]/x",
		"ghcr.io/o/r:tag@" + dg256, "quay.io/a/b/c/d:v1.2.3", "registry:5000/x", "a.b/c",
		"Example.COM:1/x", "a0/b1/c2", "a-b/c--d/e__f/g.h", strings.Repeat("a", 200) + ":" + strings.Repeat("T", 128),
		hex64 + "/x", "x/" + hex64, "docker.io/" + hex64, "1/2:3",
	}
	for _, in := range inputs {
		r, err := Parse(in)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		checkRoundTrip(t, r)
		// Through JSON, as records will store it.
		b, err := json.Marshal(struct{ Ref Reference }{r})
		if err != nil {
			t.Fatal(err)
		}
		var back struct{ Ref Reference }
		if err := json.Unmarshal(b, &back); err != nil || back.Ref != r {
			t.Errorf("JSON %s: got %#v, %v; want %#v", b, back.Ref, err, r)
		}
	}
}

func TestZeroReference(t *testing.T) {
	var r Reference
	if !r.IsZero() || r.String() != "" || r.Familiar() != "" || r.Name() != "" || r.IsLoopbackRegistry() {
		t.Errorf("zero Reference: %q %q %q", r.String(), r.Familiar(), r.Name())
	}
	if _, err := r.WithTag("x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("WithTag on zero: %v", err)
	}
	if _, err := r.WithDigest(MustParseDigest(dg256)); !errors.Is(err, ErrInvalid) {
		t.Errorf("WithDigest on zero: %v", err)
	}
	b, _ := json.Marshal(struct{ R Reference }{})
	var back struct{ R Reference }
	if err := json.Unmarshal(b, &back); err != nil || !back.R.IsZero() {
		t.Errorf("zero through JSON %s: %#v %v", b, back.R, err)
	}
	if err := json.Unmarshal([]byte(`{"R":"Bad"}`), &back); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad reference in JSON: %v", err)
	}
}

func TestWith(t *testing.T) {
	base := MustParse("ghcr.io/o/r:1")
	d := MustParseDigest(dg256)

	r, err := base.WithTag("2")
	if err != nil || r.String() != "ghcr.io/o/r:2" {
		t.Fatalf("WithTag: %v %v", r, err)
	}
	if base.String() != "ghcr.io/o/r:1" {
		t.Fatalf("WithTag changed its receiver: %v", base)
	}
	r, err = base.WithDigest(d)
	if err != nil || r.String() != "ghcr.io/o/r:1@"+dg256 {
		t.Fatalf("WithDigest: %v %v", r, err)
	}
	r2, err := r.WithTag("3")
	if err != nil || r2.String() != "ghcr.io/o/r:3@"+dg256 {
		t.Fatalf("WithTag keeps the digest: %v %v", r2, err)
	}
	r3, err := r.WithoutTag()
	if err != nil || r3.String() != "ghcr.io/o/r@"+dg256 || r3.Tag() != "" {
		t.Fatalf("WithoutTag: %v %v", r3, err)
	}
	checkRoundTrip(t, r3)
	if r.Tag() != "1" {
		t.Fatalf("WithoutTag changed its receiver")
	}
	hub, _ := MustParse("busybox").WithDigest(d)
	if hub.Familiar() != "busybox:latest@"+dg256 {
		t.Errorf("Familiar = %q", hub.Familiar())
	}
	if rd, _ := hub.WithoutTag(); rd.Familiar() != "busybox@"+dg256 {
		t.Errorf("RepoDigest form = %q", rd.Familiar())
	}

	for _, bad := range []string{"", "-x", ".x", "a b", "a/b", "a:b", "é", strings.Repeat("x", 129)} {
		if _, err := base.WithTag(bad); !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "tag "+quote(bad)+": ") {
			t.Errorf("WithTag(%q): %v", bad, err)
		}
	}
	if _, err := base.WithTag(strings.Repeat("x", 128)); err != nil {
		t.Errorf("WithTag(128 x): %v", err)
	}
	if _, err := base.WithDigest(Digest{}); !errors.Is(err, ErrInvalidDigest) {
		t.Errorf("WithDigest(zero): %v", err)
	}
	if _, err := base.WithoutTag(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "no digest") {
		t.Errorf("WithoutTag without digest: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		in, want string
		digest   bool // also ErrInvalidDigest
	}{
		{"", "empty reference", false},
		{hex64, "image ID, not a repository name", false},

		// Digest.
		{"x@", "digest missing after '@'", true},
		{"x@sha256:abc", `digest "sha256:abc": a sha256 digest has 64 hex characters, this one has 3`, true},
		{"x@sha512:" + hex64, "a sha512 digest has 128 hex characters, this one has 64", true},
		{"x@sha256:" + strings.ToUpper(hex64), `hex must be lower-case: write "` + dg256 + `"`, true},
		{"x@SHA256:" + hex64, `algorithm names are lower-case: write "` + dg256 + `"`, true},
		{"x@md5:d41d8cd98f00b204e9800998ecf8427e", `unsupported algorithm "md5"`, true},
		{"x@" + hex64, `missing algorithm: write "` + dg256 + `"`, true},
		{"x@sha256:" + hex64[:63] + "g", "'g' is not a hex character", true},
		{"x@sha256:" + hex64 + "@" + dg256, "a sha256 digest has 64 hex characters", true},
		{"x@sha256:" + hex64 + ":tag", "a sha256 digest has 64 hex characters", true},

		// Tag.
		{"x:", "empty tag", false},
		{"x:@" + dg256, "empty tag", false},
		{"x:.y", `tag ".y" starts with '.'`, false},
		{"x:-y", `tag "-y" starts with '-'`, false},
		{"x:y$", `tag "y$" contains '$'`, false},
		{"x:y z", `tag "y z" contains ' '`, false},
		{"x:" + long(129), "tag is 129 characters long; the limit is 128", false},

		// Name.
		{":tag", "missing image name", false},
		{"@" + dg256, "missing image name", false},
		{"Busybox", `repository name must be lowercase (try "busybox")`, false},
		{"MyUser/App:V1", `repository name must be lowercase (try "myuser/app:V1")`, false},
		{"ghcr.io/Owner/r", `repository name must be lowercase (try "ghcr.io/owner/r")`, false},
		{"Foo/bar", `repository name must be lowercase (try "foo/bar")`, false},
		{"/x", "repository path starts with '/'", false},
		{"x/", "repository path ends with '/'", false},
		{"a//b", `empty component ("//")`, false},
		{"-a", `path component "-a" starts with "-"`, false},
		{"a_", `path component "a_" ends with "_"`, false},
		{"a/b.", `path component "b." ends with "."`, false},
		{"a..b", `has the separator ".."`, false},
		{"a___b", `has the separator "___"`, false},
		{"a._b", `has the separator "._"`, false},
		{"a-.b", `has the separator "-."`, false},
		{"a$b", `path component "a$b" contains '$'`, false},
		{"café", `path component "café" contains 'é'`, false},
		{"a b", `contains ' '`, false},
		{"a/b:c/d", `path component "b:c" contains ':'`, false},
		{"[::1]:5000", "an IPv6 registry is written [address]:port/repository", false},
		{"[zz]/x", `path component "[zz]" contains '['`, false},
		{"docker.io/a/" + long(244), `the name "docker.io/a/` + long(244) + `" is 256 characters long; the limit is 255`, false},
		{long(238), "is 256 characters long; the limit is 255", false}, // docker.io/library/ counts
		{"ghcr.io/" + long(248), "is 256 characters long; the limit is 255", false},

		// Registry.
		{"https://ghcr.io/o/r:1", `a reference has no URL scheme: write "ghcr.io/o/r:1"`, false},
		{"ghcr.io/", `missing repository name after the registry "ghcr.io"`, false},
		{"localhost/", `missing repository name after the registry "localhost"`, false},
		{"busybox:1.36/foo", `registry "busybox:1.36" has the port "1.36", which is not a number`, false},
		{"localhost:/x", `registry "localhost:" has an empty port`, false},
		{"localhost:0/x", "has the port 0, out of range 1-65535", false},
		{"localhost:65536/x", "has the port 65536, out of range 1-65535", false},
		{":5000/x", `registry ":5000" has no host name`, false},
		{"::1/x", "an IPv6 address goes in brackets", false},
		{"a:1:2/x", "more than one ':'", false},
		{"[::1/x", "without its closing ']'", false},
		{"[::1]x/y", `has "x" after the IPv6 address`, false},
		{"[1.2.3.4]:5/x", `has "1.2.3.4" in brackets, which is not an IPv6 address`, false},
		{"[::ffff:1.2.3.4]:5/x", "which is not an IPv6 address", false},
		{"[fe80::1%eth0]:5/x", "which is not an IPv6 address", false},
		{"[:::]:5/x", "which is not an IPv6 address", false},
		{"[]:5/x", "which is not an IPv6 address", false},
		{"exa_mple.com/x", `registry "exa_mple.com" contains '_'`, false},
		{"a..com/x", "empty label", false},
		{".com/x", "empty label", false},
		{"a.com./x", "empty label", false},
		{"-a.com/x", `the host label "-a"`, false},
		{"a-.com/x", `the host label "a-"`, false},
	}
	// Names at exactly the limit parse.
	if _, err := Parse("docker.io/a/" + long(243)); err != nil {
		t.Errorf("255-character name: %v", err)
	}
	if _, err := Parse(long(237)); err != nil {
		t.Errorf("255-character name after normalisation: %v", err)
	}
	for _, tt := range tests {
		r, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want an error", tt.in, r)
			continue
		}
		msg := err.Error()
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q): %v does not wrap ErrInvalid", tt.in, err)
		}
		if errors.Is(err, ErrInvalidDigest) != tt.digest {
			t.Errorf("Parse(%q): errors.Is(ErrInvalidDigest) = %v", tt.in, !tt.digest)
		}
		if prefix := "reference " + quote(tt.in) + ": "; !strings.HasPrefix(msg, prefix) {
			t.Errorf("Parse(%q): %q does not start with %q", tt.in, msg, prefix)
		}
		if !strings.Contains(msg, tt.want) {
			t.Errorf("Parse(%q): %q does not say %q", tt.in, msg, tt.want)
		}
		if !r.IsZero() {
			t.Errorf("Parse(%q) returned %#v with its error", tt.in, r)
		}
	}
}

func TestErrorQuotesLongInputShort(t *testing.T) {
	in := strings.Repeat("A", 1<<20)
	_, err := Parse(in)
	if err == nil || len(err.Error()) > 2*maxQuoted {
		t.Fatalf("error of %d bytes for a 1 MiB input", len(err.Error()))
	}
	if !strings.Contains(err.Error(), "(1048576 bytes)") {
		t.Errorf("%v", err)
	}
}

func TestLoopback(t *testing.T) {
	tests := map[string]bool{
		"localhost": true, "localhost:5000": true, "LocalHost:1": true,
		"127.0.0.1": true, "127.0.0.1:5000": true, "127.255.255.254:80": true, "127.1.2.3": true,
		"[::1]": true, "[::1]:5000": true, "[0:0:0:0:0:0:0:1]:5000": true, "[::ffff:7f00:1]:5000": true,
		"docker.io": false, "ghcr.io": false, "localhost.example.com": false, "mylocalhost": false,
		"128.0.0.1": false, "10.0.0.1:5000": false, "0.0.0.0": false, "[::]:5000": false, "[::2]": false,
		"127.1": false, "0177.0.0.1": false, "[::1": false, "": false, "localhost:x": true,
	}
	for reg, want := range tests {
		if got := IsLoopback(reg); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", reg, got, want)
		}
	}
	for _, in := range []string{"localhost/x", "localhost:5000/x", "127.0.0.1:5000/x", "127.3.2.1/x", "[::1]/x", "[::1]:5000/x:y"} {
		if !MustParse(in).IsLoopbackRegistry() {
			t.Errorf("%q: not loopback", in)
		}
	}
	for _, in := range []string{"busybox", "localhost", "localhost:5000", "ghcr.io/x", "10.0.0.1/x", "[2001:db8::1]/x"} {
		if MustParse(in).IsLoopbackRegistry() {
			t.Errorf("%q: loopback", in)
		}
	}
}

func TestParseRegistry(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io": "docker.io", "index.docker.io": "docker.io", "localhost": "localhost",
		"localhost:5000": "localhost:5000", "[::1]:5000": "[::1]:5000", "Quay.IO": "Quay.IO",
		"registry": "registry", "1.2.3.4:443": "1.2.3.4:443",
	} {
		if got, err := ParseRegistry(in); err != nil || got != want {
			t.Errorf("ParseRegistry(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"":            `registry "" is empty`,
		"localhost:":  `registry "localhost:" has an empty port`,
		"a_b":         `registry "a_b" contains '_'`,
		"a/b":         `registry "a/b" contains '/'`,
		"https://x.y": `registry "https://x.y" has a URL scheme: write only host[:port], such as "x.y"`,
		"x.y:1:2":     `registry "x.y:1:2" has more than one ':'`,
		"x:99999":     "out of range",
	} {
		_, err := ParseRegistry(in)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRegistry(%q): %v; want %q", in, err, want)
		}
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Error("MustParse(\"Bad\") did not panic")
		}
	}()
	MustParse("Bad")
}

func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		if _, err := Parse("ghcr.io/owner/repo:v1.2.3@" + dg256); err != nil {
			b.Fatal(err)
		}
	}
}
