package remote

import (
	"net/url"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseChallenges(t *testing.T) {
	for _, tc := range []struct {
		in     []string
		scheme string
		params map[string]string
	}{
		{[]string{`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"`},
			"bearer", map[string]string{"realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull,push"}},
		{[]string{`Basic realm="x"`, `Bearer realm="r", error="insufficient_scope"`},
			"bearer", map[string]string{"realm": "r", "error": "insufficient_scope"}},
		{[]string{`Basic realm="a \"quoted\", comma"`}, "basic", map[string]string{"realm": `a "quoted", comma`}},
		{[]string{`Negotiate abc==, Basic realm=plain`}, "basic", map[string]string{"realm": "plain"}},
		{[]string{`bearer REALM = "r" , Service=s`}, "bearer", map[string]string{"realm": "r", "service": "s"}},
	} {
		ch := parseChallenges(tc.in)
		if ch == nil || ch.scheme != tc.scheme || len(ch.params) != len(tc.params) {
			t.Fatalf("%q: %+v", tc.in, ch)
		}
		for k, v := range tc.params {
			if ch.params[k] != v {
				t.Fatalf("%q: %s = %q, want %q", tc.in, k, ch.params[k], v)
			}
		}
	}
	if parseChallenges([]string{"", "Digest"}) != nil {
		t.Fatal("unsupported schemes must give nil")
	}
}

func TestCredentialRule(t *testing.T) {
	u := func(s string) *url.URL { x, _ := url.Parse(s); return x }
	remoteHost := &hostState{host: "reg.example:5000"}
	insecure := &hostState{host: "reg.example:5000", cfg: RegistryConfig{Insecure: true}}
	loop := &hostState{host: "127.0.0.1:5000", loopback: true}
	for _, tc := range []struct {
		st   *hostState
		u    string
		want bool
	}{
		{remoteHost, "https://reg.example:5000/v2/", true},
		{remoteHost, "http://reg.example:5000/v2/", false},
		{insecure, "http://reg.example:5000/v2/", true},
		{insecure, "http://auth.example/token", false},
		{loop, "http://127.0.0.1:5000/v2/", true},
		{loop, "http://localhost:9/token", true},
	} {
		if got := tc.st.mayCredential(u(tc.u)); got != tc.want {
			t.Errorf("mayCredential(%s, %s) = %v", tc.st.host, tc.u, got)
		}
	}
	if remoteHost.allowHTTP() || !insecure.allowHTTP() || !loop.allowHTTP() {
		t.Error("allowHTTP")
	}
	if upstreamHost("docker.io") != "registry-1.docker.io" || upstreamHost("ghcr.io") != "ghcr.io" {
		t.Error("upstreamHost")
	}
}

func TestPlatforms(t *testing.T) {
	for in, want := range map[string]string{
		"linux/amd64": "linux/amd64", "linux/x86_64": "linux/amd64", "linux/arm64/v8": "linux/arm64",
		"linux/aarch64": "linux/arm64", "linux/arm": "linux/arm/v7", "linux/armhf": "linux/arm/v7",
		"linux/arm/7": "linux/arm/v7", "linux/armel": "linux/arm/v6", "windows/386": "windows/386",
	} {
		p, err := ParsePlatform(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePlatform(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"linux/", "/amd64", "a/b/c/d"} {
		if _, err := ParsePlatform(bad); err == nil {
			t.Errorf("ParsePlatform(%q) accepted", bad)
		}
	}
	if p, _ := ParsePlatform(""); p != DefaultPlatform() {
		t.Error("default")
	}
}

func TestSelectPlatformVariants(t *testing.T) {
	mk := func(arch, variant, dg string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest(dg),
			Platform: &ocispec.Platform{OS: "linux", Architecture: arch, Variant: variant}}
	}
	idx := ocispec.Index{Manifests: []ocispec.Descriptor{
		mk("arm", "v5", "sha256:a5"), mk("arm", "v6", "sha256:a6"), mk("arm64", "", "sha256:b"), mk("amd64", "", "sha256:c"),
	}}
	for want, p := range map[string]Platform{
		"sha256:a6": {OS: "linux", Architecture: "arm", Variant: "v7"}, // closest lower variant
		"sha256:a5": {OS: "linux", Architecture: "arm", Variant: "v5"},
		"sha256:b":  {OS: "linux", Architecture: "arm64", Variant: "v8"},
		"sha256:c":  {OS: "linux", Architecture: "x86_64"},
	} {
		d, err := SelectPlatform(idx, p)
		if err != nil || string(d.Digest) != want {
			t.Errorf("SelectPlatform(%v) = %s, %v; want %s", p, d.Digest, err, want)
		}
	}
}
