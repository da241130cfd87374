// Package registrytest starts a real OCI distribution registry (Debian's
// docker-registry package: the CNCF distribution registry v2, binary
// /usr/bin/docker-registry) on 127.0.0.1 for tests, optionally with TLS from
// a throw-away CA and htpasswd basic auth, and gives minimal helpers to seed
// it with blobs and manifests over the distribution HTTP API.
//
// Each Start gets its own temporary storage directory and its own port (the
// registry binds 127.0.0.1:0 and the bound address is read from its log), so
// parallel tests and parallel packages never collide. t.Cleanup stops the
// process (SIGTERM, then SIGKILL) and removes its storage.
//
// Environment:
//
//	BERTH_TEST_REGISTRY_BINARY=/path    use this registry binary instead
//	BERTH_TEST_REQUIRE_REGISTRY=1       fail instead of skip when it is missing
package registrytest

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// DefaultBinary is where Debian's docker-registry package installs the
// registry.
const DefaultBinary = "/usr/bin/docker-registry"

// Timeouts. Startup is normally well under a second; the bound is generous
// for a loaded 2-core CI machine.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 5 * time.Second
)

// Options configures a registry started by Start.
type Options struct {
	// TLS serves HTTPS with a server certificate for 127.0.0.1, ::1 and
	// localhost, signed by a CA generated for this registry only.
	TLS bool
	// Auth enables htpasswd basic auth (bcrypt) for Users.
	Auth bool
	// Token enables token auth (see token.go): the registry trusts JWTs
	// from a token server started for it, which checks Users' passwords.
	// Exclusive with Auth.
	Token bool
	// Users maps user name to password. With Auth or Token and no Users,
	// one user "berth" with a random password is created. Ignored
	// otherwise.
	Users map[string]string
}

// Registry is a running registry process.
type Registry struct {
	// Addr is host:port, e.g. "127.0.0.1:40519", the form used in image
	// references.
	Addr string
	// URL is the base URL, "http://Addr" or "https://Addr" (no trailing /).
	URL string
	// CAPool trusts the registry's CA; nil without TLS.
	CAPool *x509.CertPool
	// CAPEM is the CA certificate in PEM; nil without TLS.
	CAPEM []byte
	// CAFile is the path of a file holding CAPEM (e.g. for a certs.d
	// directory or a --tls-ca flag); "" without TLS.
	CAFile string
	// Username and Password are the credentials the Push helpers use (the
	// lexically first user); "" without Auth.
	Username, Password string
	// Dir is the registry's private directory (config, certs, htpasswd);
	// storage is Dir/storage. Removed at cleanup.
	Dir string

	opts      Options
	cmd       *exec.Cmd
	out       *logBuffer
	exited    chan struct{} // closed when the process has been waited for
	waitErr   error         // valid after exited is closed
	transport *http.Transport
	token     *tokenServer // nil outside token mode
}

// Start starts a registry for the duration of the test. It skips the test
// when the registry binary is not installed (unless
// BERTH_TEST_REQUIRE_REGISTRY=1), and fails it if the registry does not come
// up.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	bin := findBinary(t)

	// TempDir first: cleanups run last-registered-first, so the process is
	// stopped before its storage is removed.
	dir := t.TempDir()
	r := &Registry{
		Dir:    dir,
		opts:   opts,
		out:    &logBuffer{},
		exited: make(chan struct{}),
	}

	cfg := config{
		storage: filepath.Join(dir, "storage"),
		secret:  randomHex(t, 16),
	}
	if opts.TLS {
		ca, err := writeTLS(dir)
		if err != nil {
			t.Fatalf("registrytest: generating certificates: %v", err)
		}
		r.CAPEM, r.CAPool, r.CAFile = ca.pem, ca.pool, ca.file
		cfg.certFile, cfg.keyFile = ca.certFile, ca.keyFile
	}
	if opts.Auth && opts.Token {
		t.Fatalf("registrytest: Options.Auth and Options.Token are exclusive")
	}
	if opts.Auth || opts.Token {
		users := opts.Users
		if len(users) == 0 {
			users = map[string]string{"berth": randomHex(t, 12)}
		}
		if opts.Token {
			ts, bundle, err := startTokenServer(dir, users)
			if err != nil {
				t.Fatalf("registrytest: token server: %v", err)
			}
			t.Cleanup(ts.srv.Close)
			r.token = ts
			cfg.tokenRealm, cfg.tokenBundle = ts.srv.URL+"/token", bundle
		} else {
			path, err := writeHtpasswd(dir, users)
			if err != nil {
				t.Fatalf("registrytest: %v", err)
			}
			cfg.htpasswd = path
		}
		r.Username = firstKey(users)
		r.Password = users[r.Username]
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.yaml()), 0o600); err != nil {
		t.Fatalf("registrytest: %v", err)
	}

	began := time.Now()
	r.cmd = exec.Command(bin, "serve", cfgPath)
	r.cmd.Dir = dir
	r.cmd.Env = childEnv()
	r.cmd.Stdout = r.out
	r.cmd.Stderr = r.out
	r.cmd.SysProcAttr = sysProcAttr()
	r.cmd.WaitDelay = stopTimeout
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("registrytest: starting %s: %v", bin, err)
	}
	go func() {
		r.waitErr = r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() { r.stop(t) })

	addr, err := r.waitListening()
	if err != nil {
		t.Fatalf("registrytest: %v\n%s", err, r.logsForReport())
	}
	r.Addr = addr
	scheme := "http"
	if opts.TLS {
		scheme = "https"
	}
	r.URL = scheme + "://" + addr
	r.transport = http.DefaultTransport.(*http.Transport).Clone()
	r.transport.Proxy = nil // loopback only, whatever HTTP_PROXY says
	if opts.TLS {
		r.transport.TLSClientConfig.RootCAs = r.CAPool
	}
	if err := r.waitReady(began.Add(startTimeout)); err != nil {
		t.Fatalf("registrytest: %v\n%s", err, r.logsForReport())
	}
	t.Logf("registrytest: %s up in %v (tls=%v auth=%v token=%v)", r.URL, time.Since(began).Round(time.Millisecond), opts.TLS, opts.Auth, opts.Token)
	return r
}

// Client returns an HTTP client for the registry: it trusts the registry's
// CA when TLS is on, bypasses proxies, and adds no credentials.
func (r *Registry) Client() *http.Client {
	return &http.Client{Transport: r.transport, Timeout: 30 * time.Second}
}

// Ref returns an image reference on this registry: "Addr/repo:tag", or
// "Addr/repo@digest" when ref is a digest.
func (r *Registry) Ref(repo, ref string) string {
	if strings.Contains(ref, ":") {
		return r.Addr + "/" + repo + "@" + ref
	}
	return r.Addr + "/" + repo + ":" + ref
}

// Logs returns the registry's output so far.
func (r *Registry) Logs() string { return r.out.String() }

func findBinary(t testing.TB) string {
	t.Helper()
	var msg string
	if bin := os.Getenv("BERTH_TEST_REGISTRY_BINARY"); bin != "" {
		if _, err := os.Stat(bin); err == nil {
			return bin
		}
		msg = "registrytest: BERTH_TEST_REGISTRY_BINARY=" + bin + " not found"
	} else {
		if _, err := os.Stat(DefaultBinary); err == nil {
			return DefaultBinary
		}
		if bin, err := exec.LookPath("docker-registry"); err == nil {
			return bin
		}
		msg = "registrytest: " + DefaultBinary + " not found"
	}
	msg += ": install the OCI registry with `apt-get install docker-registry`"
	if os.Getenv("BERTH_TEST_REQUIRE_REGISTRY") == "1" {
		t.Fatal(msg + " (BERTH_TEST_REQUIRE_REGISTRY=1)")
	}
	t.Skip(msg)
	return ""
}

// childEnv is the test's environment without REGISTRY_* variables, which
// the registry reads as configuration overrides.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	return env
}

// listeningRE matches the line the registry logs once its socket is bound:
// `msg="listening on 127.0.0.1:40519"` (", tls" follows with TLS).
var listeningRE = regexp.MustCompile(`listening on (127\.0\.0\.1:[0-9]+)`)

func (r *Registry) waitListening() (string, error) {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := listeningRE.FindStringSubmatch(r.out.String()); m != nil {
			return m[1], nil
		}
		select {
		case <-r.exited:
			if m := listeningRE.FindStringSubmatch(r.out.String()); m != nil {
				return "", fmt.Errorf("registry exited right after binding %s: %v", m[1], r.waitErr)
			}
			return "", fmt.Errorf("registry exited before listening: %v", r.waitErr)
		case <-deadline.C:
			return "", fmt.Errorf("registry did not report its address within %v", startTimeout)
		case <-tick.C:
		}
	}
}

// waitReady polls GET /v2/ until the registry answers 200, or 401 with a
// Basic challenge when auth is on.
func (r *Registry) waitReady(deadline time.Time) error {
	c := &http.Client{Transport: r.transport, Timeout: time.Second}
	var last string
	for {
		ok, desc := r.probe(c)
		if ok {
			return nil
		}
		last = desc
		if time.Now().After(deadline) {
			return fmt.Errorf("registry at %s not ready within %v: last GET /v2/: %s", r.URL, startTimeout, last)
		}
		select {
		case <-r.exited:
			return fmt.Errorf("registry exited while starting: %v (last GET /v2/: %s)", r.waitErr, last)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (r *Registry) probe(c *http.Client) (bool, string) {
	resp, err := c.Get(r.URL + "/v2/")
	if err != nil {
		return false, err.Error()
	}
	resp.Body.Close()
	switch {
	case !r.opts.Auth && !r.opts.Token && resp.StatusCode == http.StatusOK:
		return true, ""
	case r.opts.Token && resp.StatusCode == http.StatusUnauthorized &&
		strings.HasPrefix(resp.Header.Get("Www-Authenticate"), "Bearer "):
		return true, ""
	case r.opts.Auth && resp.StatusCode == http.StatusUnauthorized &&
		strings.HasPrefix(resp.Header.Get("Www-Authenticate"), "Basic "):
		return true, ""
	}
	return false, fmt.Sprintf("%s (WWW-Authenticate %q)", resp.Status, resp.Header.Get("Www-Authenticate"))
}

// stop ends the process: SIGTERM, then SIGKILL after stopTimeout. A process
// that died on its own before cleanup fails the test, with its output.
func (r *Registry) stop(t testing.TB) {
	select {
	case <-r.exited:
		if !t.Failed() && !t.Skipped() {
			t.Errorf("registrytest: registry exited before cleanup: %v\n%s", r.waitErr, r.logsForReport())
		}
	default:
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(stopTimeout):
			_ = r.cmd.Process.Kill()
			select {
			case <-r.exited:
			case <-time.After(stopTimeout):
				t.Errorf("registrytest: registry pid %d did not exit after SIGKILL", r.cmd.Process.Pid)
			}
		}
	}
	if r.transport != nil {
		r.transport.CloseIdleConnections()
	}
	if t.Failed() {
		t.Logf("registrytest: registry %s (pid %d) output:\n%s", r.URL, r.cmd.Process.Pid, r.logsForReport())
	}
}

func (r *Registry) logsForReport() string {
	s := strings.TrimRight(r.out.String(), "\n")
	if s == "" {
		s = "(no output)"
	}
	return "--- registry output ---\n" + s + "\n--- end registry output ---"
}

// config is the registry's YAML configuration. Paths are absolute and made
// by this package (temp dirs), so they are quoted but never need escaping
// beyond that.
type config struct {
	storage, secret   string
	certFile, keyFile string
	htpasswd          string
	tokenRealm        string
	tokenBundle       string
}

func (c config) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, `version: 0.1
log:
  level: info
  formatter: text
  fields:
    service: registrytest
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:0
  secret: %q
  headers:
    X-Content-Type-Options: [nosniff]
`, c.storage, c.secret)
	if c.certFile != "" {
		fmt.Fprintf(&b, `  tls:
    certificate: %q
    key: %q
`, c.certFile, c.keyFile)
	}
	if c.htpasswd != "" {
		fmt.Fprintf(&b, `auth:
  htpasswd:
    realm: berth-registrytest
    path: %q
`, c.htpasswd)
	}
	if c.tokenRealm != "" {
		fmt.Fprintf(&b, `auth:
  token:
    realm: %q
    service: %q
    issuer: %q
    rootcertbundle: %q
`, c.tokenRealm, tokenService, tokenIssuer, c.tokenBundle)
	}
	b.WriteString(`health:
  storagedriver:
    enabled: false
`)
	return b.String()
}

// writeHtpasswd writes users as bcrypt htpasswd entries. The cost is the
// minimum: the registry checks the hash on every request, and a test's
// passwords protect nothing.
func writeHtpasswd(dir string, users map[string]string) (string, error) {
	var b bytes.Buffer
	for _, name := range sortedKeys(users) {
		if name == "" || strings.ContainsAny(name, ":\r\n") || strings.ContainsAny(users[name], "\r\n") {
			return "", fmt.Errorf("invalid htpasswd user %q", name)
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(users[name]), bcrypt.MinCost)
		if err != nil {
			return "", fmt.Errorf("bcrypt for %q: %w", name, err)
		}
		fmt.Fprintf(&b, "%s:%s\n", name, hash)
	}
	path := filepath.Join(dir, "htpasswd")
	return path, os.WriteFile(path, b.Bytes(), 0o600)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func firstKey(m map[string]string) string { return sortedKeys(m)[0] }

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	return hex.EncodeToString(b)
}

// logBuffer collects the registry's output, keeping at most maxLog bytes.
type logBuffer struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	truncated bool
}

const maxLog = 1 << 20

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := maxLog - l.buf.Len(); len(p) > room {
		if room > 0 {
			l.buf.Write(p[:room])
		}
		l.truncated = true
	} else {
		l.buf.Write(p)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.truncated {
		return l.buf.String() + "\n[registry output truncated]\n"
	}
	return l.buf.String()
}
