package dockerapi

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// The API is root-equivalent (it runs containers with host mounts), so a
// TCP listener must know who calls: TLS with client certificates signed
// by a CA the operator names (docker's --tlsverify). Plain TCP is refused,
// except on a loopback address when the operator asks for it by name
// (anyone on the host can then use it, as with a world-writable socket).

// TLSOptions are docker's daemon flags for a TCP listener.
type TLSOptions struct {
	Verify     bool   // --tlsverify: TLS, and a client certificate signed by CACert required
	CACert     string // --tlscacert
	Cert, Key  string // --tlscert, --tlskey: the server's
	PlainLocal bool   // plain TCP allowed on a loopback address
}

// DefaultTLSPort is docker's port for the API over TLS.
const DefaultTLSPort = "2376"

// ParseHost reads a -H value: unix:///path, or tcp://host[:port]
// (port 2376 by default). It returns the network and the address.
func ParseHost(h string) (network, addr string, err error) {
	u, err := url.Parse(h)
	if err != nil || u.Scheme == "" {
		return "", "", fmt.Errorf("--host %q: want unix:///path/to/socket or tcp://host:port", h)
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" || u.Host != "" {
			return "", "", fmt.Errorf("--host %q: want unix:///absolute/path", h)
		}
		return "unix", u.Path, nil
	case "tcp":
		if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return "", "", fmt.Errorf("--host %q: want tcp://host:port", h)
		}
		host, port := u.Hostname(), u.Port()
		if port == "" {
			port = DefaultTLSPort
		}
		return "tcp", net.JoinHostPort(host, port), nil
	}
	return "", "", fmt.Errorf("--host %q: berth serves unix:// and tcp:// only", h)
}

// isLoopback says whether a listen address's host is a loopback address
// (an IP literal in 127.0.0.0/8 or ::1, or localhost).
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ListenTCP listens on addr (host:port) as o allows: with TLS and
// verified client certificates, or plain on loopback when o.PlainLocal.
func ListenTCP(addr string, o TLSOptions) (net.Listener, error) {
	if !o.Verify {
		if o.CACert != "" || o.Cert != "" || o.Key != "" {
			return nil, fmt.Errorf("tcp://%s: --tlscacert, --tlscert and --tlskey need --tlsverify (berth serves TLS only with client certificates)", addr)
		}
		if !o.PlainLocal {
			return nil, fmt.Errorf("tcp://%s: the Docker API is root-equivalent; serve TCP with --tlsverify --tlscacert CA --tlscert CERT --tlskey KEY (clients then need a certificate the CA signed), or, on a loopback address only, allow plain TCP with --insecure-loopback", addr)
		}
		if !isLoopback(addr) {
			return nil, fmt.Errorf("tcp://%s: plain TCP is refused on an address other hosts can reach; give a loopback address (127.0.0.1, ::1) or use --tlsverify", addr)
		}
		return net.Listen("tcp", addr)
	}
	cfg, err := serverTLS(o)
	if err != nil {
		return nil, fmt.Errorf("tcp://%s: %w", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(l, cfg), nil
}

// serverTLS is the TLS configuration of --tlsverify: the server's
// certificate, and client certificates required and verified against the
// CA.
func serverTLS(o TLSOptions) (*tls.Config, error) {
	var missing []string
	for _, f := range []struct{ flag, v string }{{"--tlscacert", o.CACert}, {"--tlscert", o.Cert}, {"--tlskey", o.Key}} {
		if f.v == "" {
			missing = append(missing, f.flag)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("--tlsverify needs %s", strings.Join(missing, ", "))
	}
	pemCA, err := os.ReadFile(o.CACert)
	if err != nil {
		return nil, fmt.Errorf("--tlscacert: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return nil, fmt.Errorf("--tlscacert %s: no PEM certificate in it", o.CACert)
	}
	cert, err := tls.LoadX509KeyPair(o.Cert, o.Key)
	if err != nil {
		return nil, fmt.Errorf("--tlscert %s, --tlskey %s: %w", o.Cert, o.Key, err)
	}
	if cert.Leaf != nil && len(cert.Leaf.ExtKeyUsage) > 0 && !hasUsage(cert.Leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return nil, errors.New("--tlscert " + o.Cert + ": the certificate is not for servers (its extended key usage lacks serverAuth)")
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

func hasUsage(us []x509.ExtKeyUsage, want x509.ExtKeyUsage) bool {
	for _, u := range us {
		if u == want || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}
