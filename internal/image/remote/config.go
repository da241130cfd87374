package remote

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RegistryConfig holds the settings of one registry (or mirror) host.
type RegistryConfig struct {
	// Mirrors are tried, in order, before this registry for pulls: each is
	// "host[:port]" (HTTPS first, as for any registry) or a URL
	// "https://host[:port]" / "http://host[:port]" fixing the scheme.
	Mirrors []string `json:"mirrors,omitempty"`
	// Insecure allows plain HTTP (after HTTPS was answered in plain HTTP)
	// and sending credentials over it.
	Insecure bool `json:"insecure,omitempty"`
	// CAFile is a PEM file of extra CA certificates to trust.
	CAFile string `json:"ca_file,omitempty"`
	// CAPEM is extra CA certificates in PEM (not read from JSON).
	CAPEM []byte `json:"-"`
	// SkipVerify turns off TLS certificate verification.
	SkipVerify bool `json:"skip_verify,omitempty"`
}

// Config is the registries configuration file: a JSON object
//
//	{"registries": {"docker.io": {"mirrors": ["mirror.local:5000"]},
//	                "myreg:5000": {"insecure": true, "ca_file": "/etc/berth/myreg.pem"}}}
//
// keyed by registry host[:port] as written in image references.
type Config struct {
	Registries map[string]RegistryConfig `json:"registries"`
}

// LoadConfig reads a Config from path. A missing file is an empty Config
// and no error. Unknown fields are refused (they are probably typos).
// Relative ca_file paths are taken relative to the file's directory.
func LoadConfig(path string) (Config, error) {
	o := opRef{"load registry config", path}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, nil
	}
	if err != nil {
		return Config{}, &Error{Op: o.op, Ref: o.ref, Kind: ErrInvalid, Msg: "cannot read", Err: err}
	}
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, &Error{Op: o.op, Ref: o.ref, Kind: ErrInvalid, Msg: "bad JSON", Err: err,
			Hint: `expected {"registries": {"host:port": {"mirrors": [...], "insecure": true, "ca_file": "...", "skip_verify": false}}}`}
	}
	for name, rc := range cfg.Registries {
		if rc.CAFile != "" && !filepath.IsAbs(rc.CAFile) {
			rc.CAFile = filepath.Join(filepath.Dir(path), rc.CAFile)
			cfg.Registries[name] = rc
		}
		for _, m := range rc.Mirrors {
			if _, err := parseMirror(m); err != nil {
				return Config{}, &Error{Op: o.op, Ref: o.ref, Kind: ErrInvalid,
					Msg: fmt.Sprintf("registry %q: mirror %q", name, m), Err: err}
			}
		}
	}
	return cfg, nil
}

// Credentials supplies credentials for a registry host[:port] (for Docker
// Hub, "docker.io"). An empty username and secret means anonymous; a
// username "" with a secret is an identity token (see the package doc).
type Credentials interface {
	Get(ctx context.Context, registry string) (username, secret string, err error)
}

// StaticCredentials maps registry host[:port] to a username and secret.
type StaticCredentials map[string][2]string

// Get implements Credentials.
func (s StaticCredentials) Get(_ context.Context, registry string) (string, string, error) {
	c := s[registry]
	return c[0], c[1], nil
}

// Defaults for Options.
const (
	DefaultRetries       = 3
	DefaultBackoff       = 250 * time.Millisecond
	DefaultMaxBackoff    = 5 * time.Second
	DefaultMaxRetryAfter = 10 * time.Second
	DefaultStallTimeout  = 30 * time.Second
	DefaultChunkSize     = 16 << 20
	DefaultUserAgent     = "berth"
	// MaxManifestSize is the largest manifest or index accepted.
	MaxManifestSize = 4 << 20
	requestTimeout  = 2 * time.Minute
)

// Options configures a Client. The zero value works: HTTPS, system CAs,
// anonymous access, default retries.
type Options struct {
	// Registries are per-host settings, keyed by host[:port] as in
	// references ("docker.io" for Docker Hub); mirrors look up their own.
	Registries map[string]RegistryConfig
	// CertsDir is a docker-style certificates directory:
	// <CertsDir>/<host[:port]>/*.crt are trusted CAs and
	// client.cert/client.key a client certificate. Optional.
	CertsDir string
	// Credentials, nil for anonymous access only.
	Credentials Credentials
	// UserAgent, DefaultUserAgent when empty.
	UserAgent string
	// LoginCommand is what errors tell the user to run to log in
	// ("berth login" when empty; "docker login" for the Docker API's
	// clients).
	LoginCommand string
	// Transport replaces the HTTP transport of every host (tests); the
	// per-host TLS settings are then not applied.
	Transport http.RoundTripper
	// Retries is how many times a failed request is retried (network
	// errors, 5xx, 429), and how many consecutive resumptions without
	// progress a blob stream makes; 0 means DefaultRetries, <0 none.
	Retries int
	// Backoff is the first wait between retries, doubled each time up to
	// MaxBackoff; defaults when 0.
	Backoff, MaxBackoff time.Duration
	// MaxRetryAfter is the longest Retry-After honoured; a longer one fails
	// the request at once with ErrUnavailable.
	MaxRetryAfter time.Duration
	// StallTimeout: a blob stream that yields no byte for this long is
	// treated as dropped and resumed.
	StallTimeout time.Duration
	// ChunkSize: blobs at least this big are uploaded in chunks of this
	// size; smaller ones in one PUT.
	ChunkSize int64
}

func (o *Options) setDefaults() {
	switch {
	case o.Retries == 0:
		o.Retries = DefaultRetries
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	if o.LoginCommand == "" {
		o.LoginCommand = "berth login"
	}
}

// tlsConfig builds the TLS client configuration for host.
func (o *Options) tlsConfig(host string, rc RegistryConfig) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: rc.SkipVerify}
	var extra [][]byte
	if len(rc.CAPEM) > 0 {
		extra = append(extra, rc.CAPEM)
	}
	if rc.CAFile != "" {
		data, err := os.ReadFile(rc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file for %s: %w", host, err)
		}
		extra = append(extra, data)
	}
	if o.CertsDir != "" {
		dir := filepath.Join(o.CertsDir, strings.ReplaceAll(host, "/", "_"))
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("certs dir for %s: %w", host, err)
		}
		for _, e := range ents { // os.ReadDir sorts by name
			if n := e.Name(); strings.HasSuffix(n, ".crt") {
				data, err := os.ReadFile(filepath.Join(dir, n))
				if err != nil {
					return nil, fmt.Errorf("certs dir for %s: %w", host, err)
				}
				extra = append(extra, data)
			}
		}
		cert, key := filepath.Join(dir, "client.cert"), filepath.Join(dir, "client.key")
		if _, err := os.Stat(cert); err == nil {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("client certificate for %s: %w", host, err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
	}
	if len(extra) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, p := range extra {
			if !pool.AppendCertsFromPEM(p) {
				return nil, fmt.Errorf("CA certificates for %s: no PEM certificate found", host)
			}
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
