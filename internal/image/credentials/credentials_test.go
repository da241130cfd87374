package credentials

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// env is an injectable environment.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// newTestKeychain returns a Keychain on files in a temp dir, with an empty
// helper path unless path is given.
func newTestKeychain(t *testing.T, helperPath string) (*Keychain, string, string) {
	t.Helper()
	dir := t.TempDir()
	auth := filepath.Join(dir, "berth", "auth.json")
	docker := filepath.Join(dir, "docker", "config.json")
	if helperPath == "" {
		helperPath = filepath.Join(dir, "nohelpers")
	}
	k := New(Options{AuthFile: auth, DockerConfigFile: docker, HelperPath: helperPath, Getenv: env{}.get})
	return k, auth, docker
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	return m
}

func authsOf(t *testing.T, path string) map[string]any {
	t.Helper()
	a, _ := readJSON(t, path)["auths"].(map[string]any)
	return a
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func mustGet(t *testing.T, k *Keychain, reg string) Credential {
	t.Helper()
	c, err := k.Get(context.Background(), reg)
	if err != nil {
		t.Fatalf("Get(%q): %v", reg, err)
	}
	return c
}

func TestNormalizeRegistry(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io":                    "docker.io",
		"index.docker.io":              "docker.io",
		"registry-1.docker.io":         "docker.io",
		"https://index.docker.io/v1/":  "docker.io",
		"HTTPS://Index.Docker.IO/v1/":  "docker.io",
		"http://docker.io":             "docker.io",
		"registry.example.com":         "registry.example.com",
		"https://registry.example.com": "registry.example.com",
		"http://localhost:5000/v2/":    "localhost:5000",
		"host:5000/":                   "host:5000",
		" quay.io ":                    "quay.io",
		"Registry.Example.com":         "Registry.Example.com",
		"[::1]:5000":                   "[::1]:5000",
		"docker.io/library/busybox":    "docker.io",
	} {
		if got := NormalizeRegistry(in); got != want {
			t.Errorf("NormalizeRegistry(%q) = %q, want %q", in, got, want)
		}
	}
	if !SameRegistry("registry.example.com", "https://REGISTRY.example.com/v2/") {
		t.Error("SameRegistry should ignore case, scheme and path")
	}
	if SameRegistry("host:5000", "host") {
		t.Error("different ports are different registries")
	}
	if got := ServerURL("docker.io"); got != "https://index.docker.io/v1/" {
		t.Errorf("ServerURL(docker.io) = %q", got)
	}
	if got := ServerURL("https://ghcr.io/"); got != "ghcr.io" {
		t.Errorf("ServerURL(https://ghcr.io/) = %q", got)
	}
}

func TestStoreGetErase(t *testing.T) {
	ctx := context.Background()
	k, auth, _ := newTestKeychain(t, "")

	if c := mustGet(t, k, "registry.example.com"); !c.IsZero() {
		t.Fatalf("Get before login = %v, want zero", c)
	}
	want := Credential{Username: "alice", Password: "s3cr:et"}
	if err := k.Store(ctx, "registry.example.com", want); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, k, "registry.example.com"); got != want {
		t.Fatalf("Get = %#v, want %#v", got, want)
	}
	// Other key forms find it too.
	if got := mustGet(t, k, "https://registry.example.com/v2/"); got != want {
		t.Fatalf("Get(URL form) = %v", got)
	}
	entry := authsOf(t, auth)["registry.example.com"].(map[string]any)
	if entry["auth"] != b64("alice:s3cr:et") {
		t.Fatalf("auth field = %v", entry["auth"])
	}
	u, s, err := k.Lookup(ctx, "registry.example.com")
	if err != nil || u != "alice" || s != "s3cr:et" {
		t.Fatalf("Lookup = %q, %q, %v", u, s, err)
	}
	_, src, err := k.Find(ctx, "registry.example.com")
	if err != nil || src != (Source{File: auth}) {
		t.Fatalf("Find source = %+v, %v", src, err)
	}

	// A second registry with an identity token.
	tok := Credential{Username: "bob", IdentityToken: "refresh-xyz"}
	if err := k.Store(ctx, "localhost:5000", tok); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, k, "localhost:5000"); got != tok {
		t.Fatalf("Get token = %#v", got)
	}
	u, s, err = k.Lookup(ctx, "localhost:5000")
	if err != nil || u != "" || s != "refresh-xyz" {
		t.Fatalf("Lookup token = %q, %q, %v", u, s, err)
	}
	regs, err := k.Registries()
	if err != nil || !slices.Equal(regs, []string{"localhost:5000", "registry.example.com"}) {
		t.Fatalf("Registries = %v, %v", regs, err)
	}

	// Overwrite keeps one entry.
	want2 := Credential{Username: "alice", Password: "new"}
	if err := k.Store(ctx, "registry.example.com", want2); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, k, "registry.example.com"); got != want2 {
		t.Fatalf("after overwrite Get = %v", got)
	}

	if err := k.Erase(ctx, "registry.example.com"); err != nil {
		t.Fatal(err)
	}
	if c := mustGet(t, k, "registry.example.com"); !c.IsZero() {
		t.Fatalf("Get after Erase = %v", c)
	}
	if got := mustGet(t, k, "localhost:5000"); got != tok {
		t.Fatalf("Erase removed another registry: %v", got)
	}
	err = k.Erase(ctx, "registry.example.com")
	if !errors.Is(err, ErrNotLoggedIn) || !strings.Contains(err.Error(), "registry.example.com") {
		t.Fatalf("second Erase = %v, want ErrNotLoggedIn naming the registry", err)
	}
}

func TestStoreRefuses(t *testing.T) {
	ctx := context.Background()
	k, auth, _ := newTestKeychain(t, "")
	if err := k.Store(ctx, "r.example", Credential{}); err == nil {
		t.Error("storing a zero credential succeeded")
	}
	if err := k.Store(ctx, "r.example", Credential{Username: "a:b", Password: "p"}); err == nil {
		t.Error("a username with ':' was stored")
	}
	if err := k.Store(ctx, "", Credential{Username: "a", Password: "p"}); err == nil {
		t.Error("an empty registry was accepted")
	}
	if err := k.Store(ctx, "bad host", Credential{Username: "a", Password: "p"}); err == nil {
		t.Error("a registry with a space was accepted")
	}
	if _, err := os.Stat(auth); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("refused stores wrote the file: %v", err)
	}
}

func TestDockerHubMapping(t *testing.T) {
	ctx := context.Background()
	k, auth, docker := newTestKeychain(t, "")

	// docker's key is read for docker.io.
	writeFile(t, docker, `{"auths": {"https://index.docker.io/v1/": {"auth": "`+b64("hubuser:hubpass")+`"}}}`)
	for _, reg := range []string{"docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"} {
		if got := mustGet(t, k, reg); got != (Credential{Username: "hubuser", Password: "hubpass"}) {
			t.Errorf("Get(%q) from docker's config = %v", reg, got)
		}
	}
	_, src, _ := k.Find(ctx, "docker.io")
	if src != (Source{File: docker, Docker: true}) {
		t.Errorf("source = %+v", src)
	}

	// berth stores Docker Hub as "docker.io" and it wins over docker's.
	mine := Credential{Username: "me", Password: "pw"}
	if err := k.Store(ctx, "index.docker.io", mine); err != nil {
		t.Fatal(err)
	}
	auths := authsOf(t, auth)
	if _, ok := auths["docker.io"]; !ok || len(auths) != 1 {
		t.Fatalf("berth's auths = %v, want one docker.io key", auths)
	}
	if got := mustGet(t, k, "https://index.docker.io/v1/"); got != mine {
		t.Errorf("Get = %v, want berth's", got)
	}

	// An existing docker-style key in berth's file is updated in place,
	// and duplicates for the registry go.
	writeFile(t, auth, `{"auths": {
		"https://index.docker.io/v1/": {"auth": "`+b64("old:old")+`", "email": "x@y"},
		"index.docker.io": {"auth": "`+b64("dup:dup")+`"},
		"quay.io": {"auth": "`+b64("q:q")+`"}}}`)
	if err := k.Store(ctx, "docker.io", mine); err != nil {
		t.Fatal(err)
	}
	auths = authsOf(t, auth)
	if len(auths) != 2 {
		t.Fatalf("auths = %v, want the docker key and quay.io", auths)
	}
	e := auths["https://index.docker.io/v1/"].(map[string]any)
	if e["auth"] != b64("me:pw") || e["email"] != "x@y" {
		t.Fatalf("docker hub entry = %v", e)
	}
	if err := k.Erase(ctx, "docker.io"); err != nil {
		t.Fatal(err)
	}
	if _, ok := authsOf(t, auth)["https://index.docker.io/v1/"].(map[string]any)["auth"]; ok {
		t.Fatal("erase left the secret")
	}
	// docker's credential is still there, read-only: logout explains.
	err := k.Erase(ctx, "docker.io")
	if !errors.Is(err, ErrNotLoggedIn) || !strings.Contains(err.Error(), "docker logout") || !strings.Contains(err.Error(), docker) {
		t.Fatalf("Erase = %v, want a hint at docker's config", err)
	}
	if got := mustGet(t, k, "docker.io"); got.Username != "hubuser" {
		t.Fatalf("docker's config credential = %v", got)
	}
}

func TestDockerConfigForms(t *testing.T) {
	k, auth, docker := newTestKeychain(t, "")
	writeFile(t, docker, `{
		"auths": {
			"a.example": {"auth": "`+b64("ua:pa")+`"},
			"https://b.example": {"username": "ub", "password": "pb"},
			"http://c.example:5000/v2/": {"auth": "`+b64("uc:")+`", "identitytoken": "tok-c"},
			"d.example": {"identitytoken": "tok-d"},
			"e.example": {"auth": ""},
			"f.example": {"auth": "`+strings.TrimRight(b64("uf:pf"), "=")+`"}
		},
		"HttpHeaders": {"User-Agent": "x"}
	}`)
	for reg, want := range map[string]Credential{
		"a.example":      {Username: "ua", Password: "pa"},
		"b.example":      {Username: "ub", Password: "pb"},
		"c.example:5000": {Username: "uc", IdentityToken: "tok-c"},
		"d.example":      {IdentityToken: "tok-d"},
		"e.example":      {},
		"f.example":      {Username: "uf", Password: "pf"},
		"c.example":      {},
	} {
		if got := mustGet(t, k, reg); got != want {
			t.Errorf("Get(%q) = %#v, want %#v", reg, got, want)
		}
	}
	u, s, err := k.Lookup(context.Background(), "c.example:5000")
	if err != nil || u != "" || s != "tok-c" {
		t.Errorf("Lookup identity token = %q, %q, %v", u, s, err)
	}

	// berth's file comes first.
	writeFile(t, auth, `{"auths": {"a.example": {"auth": "`+b64("mine:mine")+`"}}}`)
	if got := mustGet(t, k, "a.example"); got.Username != "mine" {
		t.Errorf("berth's file did not win: %v", got)
	}
	// ... but falls through to docker's for other registries.
	if got := mustGet(t, k, "b.example"); got.Username != "ub" {
		t.Errorf("no fall-through to docker's config: %v", got)
	}

	// NoDockerConfig leaves it out.
	k2 := New(Options{AuthFile: auth, DockerConfigFile: docker, NoDockerConfig: true, Getenv: env{}.get})
	if got := mustGet(t, k2, "b.example"); !got.IsZero() {
		t.Errorf("NoDockerConfig still read docker's config: %v", got)
	}
}

func TestBadAuthField(t *testing.T) {
	k, _, docker := newTestKeychain(t, "")
	writeFile(t, docker, `{"auths": {"a.example": {"auth": "!!!notbase64"}, "b.example": {"auth": "`+b64("nocolon")+`"}}}`)
	for _, reg := range []string{"a.example", "b.example"} {
		_, err := k.Get(context.Background(), reg)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Path != docker || !strings.Contains(err.Error(), reg) {
			t.Errorf("Get(%q) = %v, want a ConfigError naming %s and the entry", reg, err, docker)
		}
	}
}

func TestCorruptFiles(t *testing.T) {
	ctx := context.Background()
	for _, bad := range []string{`{"auths": {`, `[1,2]`, `{"auths": []}`, `{"auths": {"x": {"auth": 5}}}`, `{"credHelpers": {"x": 1}}`, `{"credsStore": true}`} {
		k, auth, docker := newTestKeychain(t, "")
		writeFile(t, auth, bad)
		_, err := k.Get(ctx, "x")
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Path != auth || !strings.Contains(err.Error(), auth) || !strings.Contains(err.Error(), "berth login") {
			t.Errorf("%s: Get = %v, want a ConfigError naming %s and the fix", bad, err, auth)
		}
		if err := k.Store(ctx, "x", Credential{Username: "u", Password: "p"}); !errors.As(err, &ce) {
			t.Errorf("%s: Store = %v, want a ConfigError", bad, err)
		}
		if b, _ := os.ReadFile(auth); string(b) != bad {
			t.Errorf("%s: Store overwrote the corrupt file: %s", bad, b)
		}
		if err := k.Erase(ctx, "x"); !errors.As(err, &ce) {
			t.Errorf("%s: Erase = %v, want a ConfigError", bad, err)
		}

		// docker's config: the hint is about docker's file.
		os.Remove(auth)
		writeFile(t, docker, bad)
		_, err = k.Get(ctx, "x")
		if !errors.As(err, &ce) || ce.Path != docker || !strings.Contains(err.Error(), "DOCKER_CONFIG") {
			t.Errorf("%s: Get with corrupt docker config = %v", bad, err)
		}
	}
	// Empty files and "null" are empty configs.
	for _, empty := range []string{"", "  \n", "null", `{"auths": null}`} {
		k, auth, _ := newTestKeychain(t, "")
		writeFile(t, auth, empty)
		if c, err := k.Get(ctx, "x"); err != nil || !c.IsZero() {
			t.Errorf("%q: Get = %v, %v", empty, c, err)
		}
		if err := k.Store(ctx, "x", Credential{Username: "u", Password: "p"}); err != nil {
			t.Errorf("%q: Store = %v", empty, err)
		}
	}
}

func TestFileModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	ctx := context.Background()
	dir := t.TempDir()
	auth := filepath.Join(dir, "a", "b", "auth.json")
	k := New(Options{AuthFile: auth, NoDockerConfig: true, Getenv: env{}.get})
	if err := k.Store(ctx, "r.example", Credential{Username: "u", Password: "p"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")} {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, %v; want 0700", d, fi.Mode().Perm(), err)
		}
	}
	fi, err := os.Stat(auth)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("auth file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	// A readable file is tightened on rewrite; nothing temporary is left.
	if err := os.Chmod(auth, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := k.Store(ctx, "s.example", Credential{Username: "u", Password: "p"}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(auth); fi.Mode().Perm() != 0o600 {
		t.Errorf("rewritten file mode %v, want 0600", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(filepath.Dir(auth))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"auth.json", "auth.json.lock"}) {
		t.Errorf("directory holds %v, want the file and its lock", names)
	}
	if fi, _ := os.Stat(auth + ".lock"); fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode %v", fi.Mode().Perm())
	}
}

func TestUnknownFieldsPreserved(t *testing.T) {
	ctx := context.Background()
	k, auth, _ := newTestKeychain(t, "")
	writeFile(t, auth, `{
		"auths": {
			"r.example": {"auth": "`+b64("old:old")+`", "email": "a@b", "x-extra": {"n": [1, 2]}, "username": "legacy", "password": "legacy"},
			"other.example": {"auth": "`+b64("o:o")+`", "registrytoken": "rt"}
		},
		"HttpHeaders": {"User-Agent": "berth-test"},
		"psFormat": "table {{.ID}}",
		"proxies": {"default": {"httpProxy": "http://p:3128"}},
		"number": 1.5e300
	}`)
	if err := k.Store(ctx, "r.example", Credential{Username: "new", Password: "new"}); err != nil {
		t.Fatal(err)
	}
	m := readJSON(t, auth)
	if h := m["HttpHeaders"].(map[string]any); h["User-Agent"] != "berth-test" {
		t.Errorf("HttpHeaders = %v", h)
	}
	if m["psFormat"] != "table {{.ID}}" || m["number"] != 1.5e300 {
		t.Errorf("top-level fields lost: %v", m)
	}
	if p := m["proxies"].(map[string]any)["default"].(map[string]any); p["httpProxy"] != "http://p:3128" {
		t.Errorf("proxies = %v", p)
	}
	auths := m["auths"].(map[string]any)
	e := auths["r.example"].(map[string]any)
	if e["email"] != "a@b" || fmt.Sprint(e["x-extra"]) != "map[n:[1 2]]" {
		t.Errorf("entry's unknown fields lost: %v", e)
	}
	if _, ok := e["username"]; ok {
		t.Errorf("legacy username kept beside the new auth: %v", e)
	}
	if e["auth"] != b64("new:new") {
		t.Errorf("auth = %v", e["auth"])
	}
	if o := auths["other.example"].(map[string]any); o["registrytoken"] != "rt" || o["auth"] != b64("o:o") {
		t.Errorf("other entry changed: %v", o)
	}
	if got := mustGet(t, k, "r.example"); got != (Credential{Username: "new", Password: "new"}) {
		t.Errorf("Get = %v", got)
	}
	// Erase keeps the entry's other fields, without secrets.
	if err := k.Erase(ctx, "r.example"); err != nil {
		t.Fatal(err)
	}
	e = authsOf(t, auth)["r.example"].(map[string]any)
	if _, ok := e["auth"]; ok || e["email"] != "a@b" {
		t.Errorf("after erase entry = %v", e)
	}
	if c := mustGet(t, k, "r.example"); !c.IsZero() {
		t.Errorf("Get after erase = %v", c)
	}
}

func TestSymlinkedAuthFileKept(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks")
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "real", "auth.json")
	writeFile(t, target, `{"auths": {}}`)
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	k := New(Options{AuthFile: link, NoDockerConfig: true, Getenv: env{}.get})
	if err := k.Store(context.Background(), "r.example", Credential{Username: "u", Password: "p"}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("link replaced: %v %v", fi, err)
	}
	if _, ok := authsOf(t, target)["r.example"]; !ok {
		t.Fatal("target not updated")
	}
}

func TestDefaultPaths(t *testing.T) {
	for _, tc := range []struct {
		env        env
		auth, dock string
		authErr    bool
	}{
		{env: env{"HOME": "/h"}, auth: "/h/.config/berth/auth.json", dock: "/h/.docker/config.json"},
		{env: env{"HOME": "/h", "XDG_CONFIG_HOME": "/x"}, auth: "/x/berth/auth.json", dock: "/h/.docker/config.json"},
		{env: env{"HOME": "/h", "XDG_CONFIG_HOME": "rel"}, auth: "/h/.config/berth/auth.json", dock: "/h/.docker/config.json"},
		{env: env{"HOME": "/h", "XDG_CONFIG_HOME": "/x", "BERTH_AUTH_FILE": "/b/a.json", "DOCKER_CONFIG": "/d"}, auth: "/b/a.json", dock: "/d/config.json"},
		{env: env{}, authErr: true},
	} {
		k := New(Options{Getenv: tc.env.get})
		auth, err := k.AuthFile()
		if filepath.FromSlash(tc.auth) != auth || (err != nil) != tc.authErr {
			t.Errorf("%v: AuthFile = %q, %v; want %q", tc.env, auth, err, tc.auth)
		}
		if got := k.DockerConfigFile(); got != filepath.FromSlash(tc.dock) {
			t.Errorf("%v: DockerConfigFile = %q, want %q", tc.env, got, tc.dock)
		}
		if tc.authErr {
			if c, err := k.Get(context.Background(), "r.example"); err != nil || !c.IsZero() {
				t.Errorf("Get without a home = %v, %v; want nothing", c, err)
			}
			if err := k.Store(context.Background(), "r.example", Credential{Username: "u", Password: "p"}); err == nil || !strings.Contains(err.Error(), "BERTH_AUTH_FILE") {
				t.Errorf("Store without a home = %v", err)
			}
		}
	}
	k := New(Options{AuthFile: "/o/a.json", DockerConfigFile: "/o/d.json", Getenv: env{"BERTH_AUTH_FILE": "/b", "DOCKER_CONFIG": "/d"}.get})
	if a, _ := k.AuthFile(); a != "/o/a.json" || k.DockerConfigFile() != "/o/d.json" {
		t.Errorf("options do not override the environment: %q %q", a, k.DockerConfigFile())
	}
}

func TestConcurrentStoreGoroutines(t *testing.T) {
	ctx := context.Background()
	auth := filepath.Join(t.TempDir(), "cfg", "auth.json")
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			k := New(Options{AuthFile: auth, NoDockerConfig: true, Getenv: env{}.get})
			errs <- k.Store(ctx, fmt.Sprintf("r%d.example", i), Credential{Username: fmt.Sprint("u", i), Password: "p"})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	k := New(Options{AuthFile: auth, NoDockerConfig: true, Getenv: env{}.get})
	for i := range n {
		if got := mustGet(t, k, fmt.Sprintf("r%d.example", i)); got.Username != fmt.Sprint("u", i) {
			t.Errorf("r%d lost: %v", i, got)
		}
	}
	if len(authsOf(t, auth)) != n {
		t.Errorf("auths has %d entries, want %d", len(authsOf(t, auth)), n)
	}
}

// TestConcurrentStoreProcesses runs this test binary as several processes,
// each storing its own registries into one file.
func TestConcurrentStoreProcesses(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock")
	}
	if testing.Short() {
		t.Skip("short")
	}
	auth := filepath.Join(t.TempDir(), "auth.json")
	const procs, each = 6, 5
	var wg sync.WaitGroup
	errs := make(chan error, procs)
	for p := range procs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessStore$")
			cmd.Env = append(os.Environ(), "CREDENTIALS_TEST_STORE="+auth, fmt.Sprintf("CREDENTIALS_TEST_PROC=%d", p))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("process %d: %v\n%s", p, err, out)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	auths := authsOf(t, auth)
	for p := range procs {
		for i := range each {
			if _, ok := auths[fmt.Sprintf("p%d-%d.example", p, i)]; !ok {
				t.Errorf("p%d-%d lost", p, i)
			}
		}
	}
}

func TestHelperProcessStore(t *testing.T) {
	auth := os.Getenv("CREDENTIALS_TEST_STORE")
	if auth == "" {
		t.Skip("run by TestConcurrentStoreProcesses")
	}
	k := New(Options{AuthFile: auth, NoDockerConfig: true, Getenv: env{}.get})
	for i := range 5 {
		reg := fmt.Sprintf("p%s-%d.example", os.Getenv("CREDENTIALS_TEST_PROC"), i)
		if err := k.Store(context.Background(), reg, Credential{Username: "u", Password: "p"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLockHonoursContext(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock")
	}
	auth := filepath.Join(t.TempDir(), "auth.json")
	unlock, err := lockFile(context.Background(), auth+".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	k := New(Options{AuthFile: auth, NoDockerConfig: true, Getenv: env{}.get})
	err = k.Store(ctx, "r.example", Credential{Username: "u", Password: "p"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Store with the lock held = %v, want the context's deadline", err)
	}
}

func TestCredentialStringHidesSecrets(t *testing.T) {
	c := Credential{Username: "alice", Password: "hunter2", IdentityToken: "tok-secret"}
	for _, s := range []string{c.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "tok-secret") || !strings.Contains(s, "alice") {
			t.Errorf("formatted credential %q", s)
		}
	}
}
