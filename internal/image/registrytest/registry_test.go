package registrytest_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/image/registrytest"
)

const (
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtConfig   = "application/vnd.oci.image.config.v1+json"
	mtLayer    = "application/vnd.oci.image.layer.v1.tar"
)

// seed pushes a config, a layer and an OCI manifest tagged tag, and returns
// the three digests and the manifest bytes.
func seed(t *testing.T, r *registrytest.Registry, repo, tag string) (cfg, layer, man string, manifest []byte) {
	t.Helper()
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	data := []byte("layer bytes for " + repo + ":" + tag)
	cfg = r.PushBlob(t, repo, config)
	layer = r.PushBlob(t, repo, data)
	manifest = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,`+
		`"config":{"mediaType":%q,"digest":%q,"size":%d},`+
		`"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
		mtManifest, mtConfig, cfg, len(config), mtLayer, layer, len(data)))
	man = r.PushManifest(t, repo, tag, mtManifest, manifest)
	return cfg, layer, man, manifest
}

// get performs method on path with c, optionally as user:pass, and returns
// the response with its body read.
func get(t *testing.T, c *http.Client, method, url string, hdr map[string]string, user, pass string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// checkContent reads back what seed pushed, with plain net/http.
func checkContent(t *testing.T, r *registrytest.Registry, c *http.Client, user, pass, repo, tag string, layer, man string, manifest []byte) {
	t.Helper()
	data := []byte("layer bytes for " + repo + ":" + tag)
	base := r.URL + "/v2/" + repo

	resp, body := get(t, c, http.MethodHead, base+"/blobs/"+layer, nil, user, pass)
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Fatalf("HEAD blob: %s, %d body bytes", resp.Status, len(body))
	}
	if resp.ContentLength != int64(len(data)) || resp.Header.Get("Docker-Content-Digest") != layer {
		t.Fatalf("HEAD blob: length %d digest %q, want %d %q", resp.ContentLength, resp.Header.Get("Docker-Content-Digest"), len(data), layer)
	}
	resp, body = get(t, c, http.MethodGet, base+"/blobs/"+layer, nil, user, pass)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET blob: %s %q, want %q", resp.Status, body, data)
	}
	if got := registrytest.Digest(body); got != layer {
		t.Fatalf("GET blob digest %s, want %s", got, layer)
	}

	accept := map[string]string{"Accept": mtManifest}
	for _, ref := range []string{tag, man} {
		resp, body = get(t, c, http.MethodGet, base+"/manifests/"+ref, accept, user, pass)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, manifest) {
			t.Fatalf("GET manifest %s: %s %s", ref, resp.Status, body)
		}
		if ct, dg := resp.Header.Get("Content-Type"), resp.Header.Get("Docker-Content-Digest"); ct != mtManifest || dg != man {
			t.Fatalf("GET manifest %s: Content-Type %q digest %q, want %q %q", ref, ct, dg, mtManifest, man)
		}
		resp, _ = get(t, c, http.MethodHead, base+"/manifests/"+ref, accept, user, pass)
		if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(manifest)) {
			t.Fatalf("HEAD manifest %s: %s length %d", ref, resp.Status, resp.ContentLength)
		}
	}

	resp, body = get(t, c, http.MethodGet, base+"/tags/list", nil, user, pass)
	var tags struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET tags/list: %s %s", resp.Status, body)
	}
	if err := json.Unmarshal(body, &tags); err != nil {
		t.Fatalf("tags/list %s: %v", body, err)
	}
	if tags.Name != repo || len(tags.Tags) != 1 || tags.Tags[0] != tag {
		t.Fatalf("tags/list = %+v, want %s [%s]", tags, repo, tag)
	}
}

func TestPlainHTTP(t *testing.T) {
	t.Parallel()
	r := registrytest.Start(t, registrytest.Options{})
	if !strings.HasPrefix(r.URL, "http://127.0.0.1:") || r.URL != "http://"+r.Addr {
		t.Fatalf("URL %q Addr %q", r.URL, r.Addr)
	}
	if r.CAPool != nil || r.CAPEM != nil || r.CAFile != "" || r.Username != "" {
		t.Fatalf("TLS/auth fields set without TLS/auth: %+v", r)
	}
	c := r.Client()

	resp, body := get(t, c, http.MethodGet, r.URL+"/v2/", nil, "", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Distribution-Api-Version") != "registry/2.0" {
		t.Fatalf("GET /v2/: %s %v %s", resp.Status, resp.Header, body)
	}

	repo := "library/busybox"
	_, layer, man, manifest := seed(t, r, repo, "v1")
	checkContent(t, r, c, "", "", repo, "v1", layer, man, manifest)
	if got, want := r.Ref(repo, "v1"), r.Addr+"/library/busybox:v1"; got != want {
		t.Errorf("Ref = %q, want %q", got, want)
	}
	if got, want := r.Ref(repo, man), r.Addr+"/library/busybox@"+man; got != want {
		t.Errorf("Ref = %q, want %q", got, want)
	}

	// Absent content is a 404 with the registry's error code.
	resp, body = get(t, c, http.MethodGet, r.URL+"/v2/"+repo+"/blobs/"+registrytest.Digest([]byte("nope")), nil, "", "")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "BLOB_UNKNOWN") {
		t.Fatalf("GET unknown blob: %s %s", resp.Status, body)
	}
	resp, body = get(t, c, http.MethodGet, r.URL+"/v2/"+repo+"/manifests/nope", nil, "", "")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "MANIFEST_UNKNOWN") {
		t.Fatalf("GET unknown manifest: %s %s", resp.Status, body)
	}

	// delete: enabled is on.
	resp, body = get(t, c, http.MethodDelete, r.URL+"/v2/"+repo+"/manifests/"+man, nil, "", "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE manifest: %s %s", resp.Status, body)
	}
	resp, _ = get(t, c, http.MethodGet, r.URL+"/v2/"+repo+"/manifests/"+man, map[string]string{"Accept": mtManifest}, "", "")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET deleted manifest: %s", resp.Status)
	}

	// An index referencing the manifest needs the manifest to exist: the
	// registry validates what it stores.
	_, _, man2, _ := seed(t, r, repo, "v2")
	index := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",`+
		`"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"platform":{"architecture":"amd64","os":"linux"}}]}`,
		mtManifest, man2, len(manifestFor(t, r, c, repo, man2))))
	idx := r.PushManifest(t, repo, "multi", "application/vnd.oci.image.index.v1+json", index)
	if idx != registrytest.Digest(index) {
		t.Fatalf("index digest %s", idx)
	}
}

func manifestFor(t *testing.T, r *registrytest.Registry, c *http.Client, repo, ref string) []byte {
	t.Helper()
	resp, body := get(t, c, http.MethodGet, r.URL+"/v2/"+repo+"/manifests/"+ref, map[string]string{"Accept": mtManifest}, r.Username, r.Password)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest %s: %s", ref, resp.Status)
	}
	return body
}

func TestTLSAuth(t *testing.T) {
	t.Parallel()
	users := map[string]string{"alice": "s3cret", "bob": "hunter2:with:colons"}
	r := registrytest.Start(t, registrytest.Options{TLS: true, Auth: true, Users: users})
	if !strings.HasPrefix(r.URL, "https://127.0.0.1:") {
		t.Fatalf("URL %q", r.URL)
	}
	if r.Username != "alice" || r.Password != "s3cret" {
		t.Fatalf("helper credentials %q/%q, want alice", r.Username, r.Password)
	}
	c := r.Client()

	// Unauthenticated: 401 with a Basic challenge.
	for _, path := range []string{"/v2/", "/v2/some/repo/tags/list"} {
		resp, body := get(t, c, http.MethodGet, r.URL+path, nil, "", "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET %s unauthenticated: %s %s", path, resp.Status, body)
		}
		if got, want := resp.Header.Get("WWW-Authenticate"), `Basic realm="berth-registrytest"`; got != want {
			t.Fatalf("GET %s: WWW-Authenticate %q, want %q", path, got, want)
		}
	}
	// Wrong password, unknown user: 401.
	for _, up := range [][2]string{{"alice", "wrong"}, {"mallory", "s3cret"}} {
		resp, _ := get(t, c, http.MethodGet, r.URL+"/v2/", nil, up[0], up[1])
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET /v2/ as %s/%s: %s", up[0], up[1], resp.Status)
		}
	}
	// Every user gets in.
	for u, p := range users {
		resp, body := get(t, c, http.MethodGet, r.URL+"/v2/", nil, u, p)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v2/ as %s: %s %s", u, resp.Status, body)
		}
		if resp.TLS == nil {
			t.Fatal("no TLS on an https response")
		}
	}
	// The helpers push with credentials; another user reads back.
	repo := "team/app"
	_, layer, man, manifest := seed(t, r, repo, "latest")
	checkContent(t, r, c, "bob", users["bob"], repo, "latest", layer, man, manifest)
	// Unauthenticated reads of that content are refused too.
	if resp, _ := get(t, c, http.MethodGet, r.URL+"/v2/"+repo+"/blobs/"+layer, nil, "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated blob GET: %s", resp.Status)
	}
	// NewRequest carries the credentials.
	resp, err := c.Do(r.NewRequest(t, http.MethodGet, "/v2/"+repo+"/tags/list", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("NewRequest tags/list: %s", resp.Status)
	}

	// The CA validates the server's certificate, for every name it serves.
	resp, _ = get(t, c, http.MethodGet, r.URL+"/v2/", nil, "bob", users["bob"])
	leaf := resp.TLS.PeerCertificates[0]
	for _, name := range []string{"127.0.0.1", "localhost", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: r.CAPool}); err != nil {
			t.Errorf("server certificate does not verify for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: r.CAPool}); err == nil {
		t.Error("server certificate verifies for example.com")
	}
	// CAPEM and CAFile hold the same CA, and a pool built from them works.
	onDisk, err := os.ReadFile(r.CAFile)
	if err != nil || !bytes.Equal(onDisk, r.CAPEM) {
		t.Fatalf("CAFile %s: %v, equal to CAPEM: %v", r.CAFile, err, bytes.Equal(onDisk, r.CAPEM))
	}
	blk, _ := pem.Decode(r.CAPEM)
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || !ca.IsCA {
		t.Fatalf("CAPEM: %v (IsCA %v)", err, ca != nil && ca.IsCA)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(r.CAPEM) {
		t.Fatal("CAPEM does not load into a pool")
	}
	own := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer own.CloseIdleConnections()
	if resp, _ := get(t, own, http.MethodGet, r.URL+"/v2/", nil, "alice", "s3cret"); resp.StatusCode != http.StatusOK {
		t.Fatalf("client with pool from CAPEM: %s", resp.Status)
	}
	// Without the CA (system roots only) the handshake fails.
	sys := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	defer sys.CloseIdleConnections()
	_, err = sys.Get(r.URL + "/v2/")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("GET without the CA: err = %v, want x509.UnknownAuthorityError", err)
	}
}

func TestAuthDefaultUser(t *testing.T) {
	t.Parallel()
	r := registrytest.Start(t, registrytest.Options{Auth: true})
	if r.Username != "berth" || len(r.Password) < 16 {
		t.Fatalf("default user %q password %q", r.Username, r.Password)
	}
	c := r.Client()
	if resp, _ := get(t, c, http.MethodGet, r.URL+"/v2/", nil, "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated: %s", resp.Status)
	}
	_, layer, man, manifest := seed(t, r, "x", "t")
	checkContent(t, r, c, r.Username, r.Password, "x", "t", layer, man, manifest)
}

func TestTwoRegistries(t *testing.T) {
	t.Parallel()
	a := registrytest.Start(t, registrytest.Options{})
	b := registrytest.Start(t, registrytest.Options{TLS: true})
	if a.Addr == b.Addr || a.Dir == b.Dir {
		t.Fatalf("registries share %s / %s", a.Addr, a.Dir)
	}
	repo := "shared/name"
	_, la, ma, mfa := seed(t, a, repo, "a")
	_, lb, mb, mfb := seed(t, b, repo, "b")
	checkContent(t, a, a.Client(), "", "", repo, "a", la, ma, mfa)
	checkContent(t, b, b.Client(), "", "", repo, "b", lb, mb, mfb)
	// Storage is separate: a's layer is unknown to b, and the reverse.
	if resp, _ := get(t, b.Client(), http.MethodHead, b.URL+"/v2/"+repo+"/blobs/"+la, nil, "", ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a's blob on b: %s", resp.Status)
	}
	if resp, _ := get(t, a.Client(), http.MethodHead, a.URL+"/v2/"+repo+"/blobs/"+lb, nil, "", ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("b's blob on a: %s", resp.Status)
	}
}

// TestParallelStarts starts registries from parallel subtests at once.
func TestParallelStarts(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	addrs := map[string]bool{}
	for i := range 4 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			r := registrytest.Start(t, registrytest.Options{TLS: i%2 == 1, Auth: i >= 2})
			mu.Lock()
			if addrs[r.Addr] {
				t.Errorf("address %s handed out twice", r.Addr)
			}
			addrs[r.Addr] = true
			mu.Unlock()
			r.PushBlob(t, "p/"+strconv.Itoa(i), []byte(r.Addr))
		})
	}
}

// TestCleanup checks that cleanup stops the process and removes storage.
func TestCleanup(t *testing.T) {
	t.Parallel()
	var r *registrytest.Registry
	t.Run("run", func(t *testing.T) {
		r = registrytest.Start(t, registrytest.Options{TLS: true, Auth: true})
		r.PushBlob(t, "gone", []byte("soon gone"))
		if _, err := os.Stat(filepath.Join(r.Dir, "storage", "docker")); err != nil {
			t.Fatalf("storage not under Dir: %v", err)
		}
	})
	if r == nil {
		t.Fatal("subtest did not start a registry")
	}
	if conn, err := net.DialTimeout("tcp", r.Addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after cleanup", r.Addr)
	}
	if _, err := os.Stat(r.Dir); !os.IsNotExist(err) {
		t.Fatalf("%s still there after cleanup: %v", r.Dir, err)
	}
	if !strings.Contains(r.Logs(), "listening on "+r.Addr) {
		t.Fatalf("Logs() lacks the listening line:\n%s", r.Logs())
	}
}

// fakeTB records Fatal and Skip (ending the goroutine like testing does) so
// Start's failure paths can be checked. Everything else goes to the real T.
type fakeTB struct {
	testing.TB
	mu      sync.Mutex
	fatal   string
	skipped string
}

func (f *fakeTB) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }
func (f *fakeTB) Fatal(args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Skip(args ...any) {
	f.mu.Lock()
	f.skipped = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Failed() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.fatal != "" }

func runFake(t *testing.T, opts registrytest.Options) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		registrytest.Start(f, opts)
	}()
	<-done
	return f
}

// Not parallel: it sets the environment.
func TestMissingBinarySkips(t *testing.T) {
	t.Setenv("BERTH_TEST_REGISTRY_BINARY", filepath.Join(t.TempDir(), "absent"))
	t.Setenv("BERTH_TEST_REQUIRE_REGISTRY", "") // make test sets it
	f := runFake(t, registrytest.Options{})
	if !strings.Contains(f.skipped, "apt-get install docker-registry") || f.fatal != "" {
		t.Fatalf("skip %q fatal %q", f.skipped, f.fatal)
	}
	t.Setenv("BERTH_TEST_REQUIRE_REGISTRY", "1")
	f = runFake(t, registrytest.Options{})
	if !strings.Contains(f.fatal, "apt-get install docker-registry") || f.skipped != "" {
		t.Fatalf("skip %q fatal %q", f.skipped, f.fatal)
	}
}

// Not parallel: it sets the environment.
func TestRegistryDyingReportsOutput(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fake-registry")
	script := "#!/bin/sh\necho \"fake registry: cannot parse $2\" >&2\nexit 3\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_TEST_REGISTRY_BINARY", bin)
	f := runFake(t, registrytest.Options{})
	for _, want := range []string{"exited before listening", "exit status 3", "fake registry: cannot parse", "config.yml"} {
		if !strings.Contains(f.fatal, want) {
			t.Errorf("failure message lacks %q:\n%s", want, f.fatal)
		}
	}
}
