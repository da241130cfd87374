package dockerapi

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/tlstest"
)

func TestParseHost(t *testing.T) {
	for _, tc := range []struct{ in, network, addr, err string }{
		{"unix:///run/x.sock", "unix", "/run/x.sock", ""},
		{"tcp://127.0.0.1:2375", "tcp", "127.0.0.1:2375", ""},
		{"tcp://127.0.0.1", "tcp", "127.0.0.1:2376", ""},
		{"tcp://[::1]:9", "tcp", "[::1]:9", ""},
		{"unix://relative", "", "", "unix:///absolute/path"},
		{"tcp://", "", "", "tcp://host:port"},
		{"tcp://h:1/path", "", "", "tcp://host:port"},
		{"ssh://host", "", "", "unix:// and tcp:// only"},
		{"/run/x.sock", "", "", "want unix:///path"},
	} {
		network, addr, err := ParseHost(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseHost(%q): %v, want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || network != tc.network || addr != tc.addr {
			t.Errorf("ParseHost(%q) = %q %q %v, want %q %q", tc.in, network, addr, err, tc.network, tc.addr)
		}
	}
}

// Plain TCP only on loopback, and only when asked for; the TLS flags only
// with --tlsverify, all three.
func TestListenTCPRefusals(t *testing.T) {
	certs := tlstest.Write(t, t.TempDir())
	for _, tc := range []struct {
		addr string
		o    TLSOptions
		err  string
	}{
		{"127.0.0.1:0", TLSOptions{}, "--insecure-loopback"},
		{"0.0.0.0:0", TLSOptions{PlainLocal: true}, "plain TCP is refused"},
		{"[::]:0", TLSOptions{PlainLocal: true}, "plain TCP is refused"},
		{"127.0.0.1:0", TLSOptions{Cert: certs.ServerCert, Key: certs.ServerKey}, "need --tlsverify"},
		{"127.0.0.1:0", TLSOptions{Verify: true, Cert: certs.ServerCert, Key: certs.ServerKey}, "--tlsverify needs --tlscacert"},
		{"127.0.0.1:0", TLSOptions{Verify: true}, "--tlsverify needs --tlscacert, --tlscert, --tlskey"},
		{"127.0.0.1:0", TLSOptions{Verify: true, CACert: certs.ServerKey, Cert: certs.ServerCert, Key: certs.ServerKey}, "no PEM certificate"},
		{"127.0.0.1:0", TLSOptions{Verify: true, CACert: certs.CA, Cert: certs.ServerCert, Key: certs.ClientKey}, "--tlscert"},
		{"127.0.0.1:0", TLSOptions{Verify: true, CACert: certs.CA + ".missing", Cert: certs.ServerCert, Key: certs.ServerKey}, "--tlscacert"},
	} {
		l, err := ListenTCP(tc.addr, tc.o)
		if err == nil {
			l.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ListenTCP(%s, %+v): %v, want an error with %q", tc.addr, tc.o, err, tc.err)
		}
	}
	l, err := ListenTCP("127.0.0.1:0", TLSOptions{PlainLocal: true})
	if err != nil {
		t.Fatalf("plain TCP on loopback, asked for: %v", err)
	}
	l.Close()
}

// Over TLS only a client whose certificate the CA signed gets an answer.
func TestListenTCPClientCertificates(t *testing.T) {
	certs := tlstest.Write(t, t.TempDir())
	l, err := ListenTCP("127.0.0.1:0", TLSOptions{Verify: true, CACert: certs.CA, Cert: certs.ServerCert, Key: certs.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "OK") })}
	go srv.Serve(l)
	defer srv.Close()
	caPEM, _ := os.ReadFile(certs.CA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	get := func(certFile, keyFile string) (string, error) {
		cfg := &tls.Config{RootCAs: pool}
		if certFile != "" {
			c, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{c}
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := client.Get("https://" + l.Addr().String() + "/_ping")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if body, err := get(certs.ClientCert, certs.ClientKey); err != nil || body != "OK" {
		t.Errorf("a client with the CA's certificate: %q %v", body, err)
	}
	if body, err := get("", ""); err == nil {
		t.Errorf("a client without a certificate got an answer: %q", body)
	}
	if body, err := get(certs.UntrustedCert, certs.UntrustedKey); err == nil {
		t.Errorf("a client with another CA's certificate got an answer: %q", body)
	}
	// Plain HTTP to the TLS port gets nothing useful either.
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /_ping HTTP/1.0\r\n\r\n")
	b, _ := io.ReadAll(c)
	if strings.Contains(string(b), "OK") {
		t.Errorf("plain HTTP to the TLS listener: %q", b)
	}
}
