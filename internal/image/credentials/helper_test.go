//go:build !windows

package credentials

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeHelperScript is docker-credential-testhelper: it keeps one file per
// server address under STORE and logs each call to STORE/log.
const fakeHelperScript = `#!/bin/sh
store='STORE'
op="$1"
key() { printf '%s' "$1" | tr '/:' '__'; }
case "$op" in
get|erase)
	server=$(cat)
	echo "$op $server" >> "$store/log"
	f="$store/$(key "$server")"
	if [ ! -f "$f" ]; then
		echo "credentials not found in native keychain"
		exit 1
	fi
	if [ "$op" = get ]; then cat "$f"; else rm "$f"; fi
	;;
store)
	in=$(cat)
	server=$(printf '%s' "$in" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p')
	echo "store $server" >> "$store/log"
	printf '%s' "$in" > "$store/$(key "$server")"
	;;
*)
	echo "unknown op $op" >&2
	exit 2
	;;
esac
`

// installHelper writes an executable docker-credential-<name> into dir.
func installHelper(t *testing.T, dir, name, script string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, HelperPrefix+name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// fakeHelper installs the test helper and returns its bin dir and store.
func fakeHelper(t *testing.T) (bin, store string) {
	t.Helper()
	dir := t.TempDir()
	bin, store = filepath.Join(dir, "bin"), filepath.Join(dir, "store")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	installHelper(t, bin, "testhelper", strings.ReplaceAll(fakeHelperScript, "STORE", store))
	return bin, store
}

func helperLog(t *testing.T, store string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(store, "log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(string(b), " ", "|"))
}

func TestHelperStoreGetErase(t *testing.T) {
	ctx := context.Background()
	bin, store := fakeHelper(t)
	k, auth, _ := newTestKeychain(t, bin)
	// A stale plaintext secret beside the helper config, with a field to keep.
	writeFile(t, auth, `{"credsStore": "testhelper", "auths": {"r.example": {"auth": "`+b64("stale:stale")+`", "email": "e@x"}}}`)

	want := Credential{Username: "alice", Password: "pw"}
	if err := k.Store(ctx, "r.example", want); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(store, "r.example")); err != nil {
		t.Fatalf("helper did not store: %v", err)
	}
	e := authsOf(t, auth)["r.example"].(map[string]any)
	if _, ok := e["auth"]; ok || e["email"] != "e@x" {
		t.Fatalf("the file's entry after a helper store = %v, want the secret gone and email kept", e)
	}
	c, src, err := k.Find(ctx, "r.example")
	if err != nil || c != want {
		t.Fatalf("Find = %v, %v", c, err)
	}
	if src.Helper != "testhelper" || src.File != auth || !strings.Contains(src.String(), "docker-credential-testhelper") {
		t.Fatalf("source = %+v (%s)", src, src)
	}

	// Identity tokens go as "<token>" both ways.
	if err := k.Store(ctx, "t.example", Credential{IdentityToken: "idtok"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(store, "t.example")); !strings.Contains(string(b), `"Username":"<token>"`) {
		t.Fatalf("stored token message %s", b)
	}
	if u, s, err := k.Lookup(ctx, "t.example"); err != nil || u != "" || s != "idtok" {
		t.Fatalf("Lookup token = %q %q %v", u, s, err)
	}

	// Docker Hub uses docker's server address.
	if err := k.Store(ctx, "docker.io", want); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(store, "https___index.docker.io_v1_")); err != nil {
		t.Fatalf("docker hub not stored under docker's address: %v", err)
	}
	if got := mustGet(t, k, "index.docker.io"); got != want {
		t.Fatalf("Get docker hub via helper = %v", got)
	}

	// Not found: zero and nil, after asking.
	if c := mustGet(t, k, "none.example"); !c.IsZero() {
		t.Fatalf("Get not found = %v", c)
	}
	if log := helperLog(t, store); log[len(log)-1] != "get|none.example" {
		t.Fatalf("helper not asked: %v", log)
	}

	if err := k.Erase(ctx, "r.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(store, "r.example")); !os.IsNotExist(err) {
		t.Fatalf("helper entry not erased: %v", err)
	}
	if c := mustGet(t, k, "r.example"); !c.IsZero() {
		t.Fatalf("Get after erase = %v", c)
	}
	if err := k.Erase(ctx, "r.example"); !errors.Is(err, ErrNotLoggedIn) || !strings.Contains(err.Error(), "r.example") {
		t.Fatalf("Erase not logged in = %v", err)
	}
}

func TestHelperLookupOrder(t *testing.T) {
	ctx := context.Background()
	bin, store := fakeHelper(t)
	k, auth, docker := newTestKeychain(t, bin)
	// Seed the helper store directly.
	seed := func(server, user, secret string) {
		key := strings.NewReplacer("/", "_", ":", "_").Replace(server)
		writeFile(t, filepath.Join(store, key), `{"ServerURL":"`+server+`","Username":"`+user+`","Secret":"`+secret+`"}`)
	}
	seed("ghcr.io", "helperuser", "helperpass")
	seed("docker.io", "podmanstyle", "p") // only under "docker.io", as other tools store it

	// berth: credHelpers for ghcr.io, plaintext otherwise.
	writeFile(t, auth, `{"credHelpers": {"https://ghcr.io": "testhelper"},
		"auths": {"ghcr.io": {"auth": "`+b64("fileuser:filepass")+`"}, "quay.io": {"auth": "`+b64("q:q")+`"}}}`)
	if got := mustGet(t, k, "ghcr.io"); got.Username != "helperuser" {
		t.Errorf("credHelpers did not come before auths: %v", got)
	}
	if got := mustGet(t, k, "quay.io"); got.Username != "q" {
		t.Errorf("auths = %v", got)
	}
	// A helper that holds nothing falls through to the auths entry.
	os.Remove(filepath.Join(store, "ghcr.io"))
	if got := mustGet(t, k, "ghcr.io"); got.Username != "fileuser" {
		t.Errorf("no fall-through from helper to auths: %v", got)
	}

	// docker's config with a credsStore: Docker Hub found under the alias.
	writeFile(t, docker, `{"credsStore": "testhelper"}`)
	c, src, err := k.Find(ctx, "docker.io")
	if err != nil || c.Username != "podmanstyle" || !src.Docker || src.Helper != "testhelper" {
		t.Errorf("docker credsStore lookup = %v %+v %v", c, src, err)
	}
	log := helperLog(t, store)
	if len(log) < 2 || log[len(log)-2] != "get|https://index.docker.io/v1/" || log[len(log)-1] != "get|docker.io" {
		t.Errorf("helper calls %v, want docker's address, then docker.io", log)
	}
}

func TestHelperMissing(t *testing.T) {
	k, auth, _ := newTestKeychain(t, "")
	writeFile(t, auth, `{"credsStore": "desktop"}`)
	_, err := k.Get(context.Background(), "r.example")
	if !errors.Is(err, ErrHelperNotInstalled) || !strings.Contains(err.Error(), "docker-credential-desktop") || !strings.Contains(err.Error(), auth) {
		t.Fatalf("Get with a missing helper = %v", err)
	}
	err = k.Store(context.Background(), "r.example", Credential{Username: "u", Password: "p"})
	if !errors.Is(err, ErrHelperNotInstalled) {
		t.Fatalf("Store with a missing helper = %v", err)
	}
	writeFile(t, auth, `{"credsStore": "../evil"}`)
	if _, err := k.Get(context.Background(), "r.example"); err == nil || !strings.Contains(err.Error(), "invalid helper name") {
		t.Fatalf("helper name with a path = %v", err)
	}
}

func TestHelperFailureReportsStderr(t *testing.T) {
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "bin")
	installHelper(t, bin, "broken", "#!/bin/sh\ncat >/dev/null\necho '{\"Username\":\"u\",\"Secret\":\"leaked-secret\"}'\necho 'keyring is locked' >&2\nexit 3\n")
	installHelper(t, bin, "garbled", "#!/bin/sh\ncat >/dev/null\necho 'not json garbled-secret'\n")
	k, auth, _ := newTestKeychain(t, bin)

	writeFile(t, auth, `{"credsStore": "broken"}`)
	_, err := k.Get(ctx, "r.example")
	var he *HelperError
	if !errors.As(err, &he) || he.Op != "get" || he.Helper != "docker-credential-broken" {
		t.Fatalf("Get = %v, want a HelperError", err)
	}
	if !strings.Contains(err.Error(), "keyring is locked") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("error lacks the helper's stderr or status: %v", err)
	}
	if strings.Contains(err.Error(), "leaked-secret") {
		t.Errorf("error quotes get's stdout: %v", err)
	}
	err = k.Store(ctx, "r.example", Credential{Username: "u", Password: "store-secret"})
	if !errors.As(err, &he) || he.Op != "store" || strings.Contains(err.Error(), "store-secret") {
		t.Errorf("Store = %v", err)
	}

	writeFile(t, auth, `{"credsStore": "garbled"}`)
	_, err = k.Get(ctx, "r.example")
	if !errors.As(err, &he) || strings.Contains(err.Error(), "garbled-secret") || !strings.Contains(err.Error(), "ServerURL") {
		t.Errorf("Get with garbled output = %v", err)
	}
}

func TestHelperTimeout(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bin")
	installHelper(t, bin, "hang", "#!/bin/sh\necho 'about to hang' >&2\nsleep 60\n")
	dir := t.TempDir()
	auth := filepath.Join(dir, "auth.json")
	writeFile(t, auth, `{"credsStore": "hang"}`)
	k := New(Options{AuthFile: auth, NoDockerConfig: true, HelperPath: bin, HelperTimeout: 300 * time.Millisecond, Getenv: env{}.get})
	start := time.Now()
	_, err := k.Get(context.Background(), "r.example")
	elapsed := time.Since(start)
	var he *HelperError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &he) {
		t.Fatalf("Get with a hanging helper = %v, want a timeout HelperError", err)
	}
	if !strings.Contains(err.Error(), "300ms") || !strings.Contains(err.Error(), "about to hang") {
		t.Errorf("timeout error lacks the limit or stderr: %v", err)
	}
	if elapsed > 10*time.Second {
		t.Errorf("Get took %v despite a 300ms timeout", elapsed)
	}

	// A cancelled caller context is reported as such.
	ctx, cancel := context.WithCancel(context.Background())
	k2 := New(Options{AuthFile: auth, NoDockerConfig: true, HelperPath: bin, HelperTimeout: time.Minute, Getenv: env{}.get})
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	if _, err := k2.Get(ctx, "r.example"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context = %v", err)
	}
}
