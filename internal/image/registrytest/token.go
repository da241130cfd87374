package registrytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Token mode: the registry runs with `auth: token` and trusts a signing
// certificate made here; a token server (net/http/httptest on 127.0.0.1,
// plain HTTP) checks the Users' passwords (HTTP Basic on the token request)
// and issues ES256 JWTs with an x5c header holding the signing certificate,
// which the distribution registry 2.8 verifies against its rootcertbundle.
// Authenticated users get every action they ask for on any repository;
// anonymous requests get a token with no access (as Docker Hub does for
// private repositories); a wrong password gets 401.
const (
	tokenService = "berth-registrytest"
	tokenIssuer  = "berth-registrytest-token-issuer"
)

type tokenServer struct {
	srv      *httptest.Server
	key      *ecdsa.PrivateKey
	certDER  []byte
	users    map[string]string
	requests atomic.Int64

	mu     sync.Mutex
	scopes []string // scopes asked, in order
}

// startTokenServer generates the signing key and certificate, writes the
// certificate bundle to dir and starts the token server.
func startTokenServer(dir string, users map[string]string) (*tokenServer, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "berth registrytest token signer"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", fmt.Errorf("token signing certificate: %w", err)
	}
	bundle := filepath.Join(dir, "token-signer.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, "", err
	}
	ts := &tokenServer{key: key, certDER: der, users: users}
	ts.srv = httptest.NewServer(http.HandlerFunc(ts.serve))
	return ts, bundle, nil
}

func (ts *tokenServer) serve(w http.ResponseWriter, req *http.Request) {
	ts.requests.Add(1)
	if req.URL.Path != "/token" {
		http.NotFound(w, req)
		return
	}
	q := req.URL.Query()
	if q.Get("service") != tokenService {
		http.Error(w, `{"errors":[{"code":"DENIED","message":"unknown service"}]}`, http.StatusBadRequest)
		return
	}
	user, pass, ok := req.BasicAuth()
	if ok {
		if want, known := ts.users[user]; !known || want != pass {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication failed"}]}`)
			return
		}
	}
	var access []accessEntry
	for _, s := range q["scope"] {
		ts.mu.Lock()
		ts.scopes = append(ts.scopes, s)
		ts.mu.Unlock()
		if !ok {
			continue // anonymous: no access
		}
		// "repository:name:pull,push" (the name may not contain ':' here).
		parts := strings.Split(s, ":")
		if len(parts) != 3 || parts[0] != "repository" {
			continue
		}
		access = append(access, accessEntry{Type: parts[0], Name: parts[1], Actions: strings.Split(parts[2], ",")})
	}
	tok, err := ts.sign(user, access, 5*time.Minute)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"token": tok, "access_token": tok, "expires_in": 300,
		"issued_at": time.Now().UTC().Format(time.RFC3339),
	})
}

type accessEntry struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// sign makes a JWT (ES256, x5c) for subject with access, valid for ttl.
func (ts *tokenServer) sign(subject string, access []accessEntry, ttl time.Duration) (string, error) {
	if access == nil {
		access = []accessEntry{}
	}
	now := time.Now()
	hdr, err := json.Marshal(map[string]any{
		"typ": "JWT", "alg": "ES256",
		"x5c": []string{base64.StdEncoding.EncodeToString(ts.certDER)},
	})
	if err != nil {
		return "", err
	}
	jti := make([]byte, 12)
	rand.Read(jti)
	claims, err := json.Marshal(map[string]any{
		"iss": tokenIssuer, "sub": subject, "aud": tokenService,
		"exp": now.Add(ttl).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti), "access": access,
	})
	if err != nil {
		return "", err
	}
	input := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(claims)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, ts.key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// TokenURL is the token server's realm ("http://127.0.0.1:N/token"); ""
// outside token mode.
func (r *Registry) TokenURL() string {
	if r.token == nil {
		return ""
	}
	return r.token.srv.URL + "/token"
}

// TokenRequests is how many requests the token server has had.
func (r *Registry) TokenRequests() int {
	if r.token == nil {
		return 0
	}
	return int(r.token.requests.Load())
}

// TokenScopes returns the scopes the token server was asked for, in order.
func (r *Registry) TokenScopes() []string {
	if r.token == nil {
		return nil
	}
	r.token.mu.Lock()
	defer r.token.mu.Unlock()
	return append([]string(nil), r.token.scopes...)
}

// Token mints a token (without a request to the token server) granting
// actions on repo, for helpers and tests.
func (r *Registry) Token(repo string, actions ...string) string {
	if r.token == nil {
		return ""
	}
	tok, err := r.token.sign(r.Username, []accessEntry{{Type: "repository", Name: repo, Actions: actions}}, 5*time.Minute)
	if err != nil {
		panic(err) // crypto/rand and ECDSA signing do not fail
	}
	return tok
}

// repoOfPath extracts NAME from "/v2/NAME/(blobs|manifests|tags)/…".
func repoOfPath(p string) string {
	p = strings.TrimPrefix(p, "/v2/")
	for _, sep := range []string{"/blobs/", "/manifests/", "/tags/"} {
		if i := strings.Index(p, sep); i >= 0 {
			return p[:i]
		}
	}
	return ""
}

// authorize sets the registry's credentials on req: a minted bearer token
// in token mode, basic auth with Auth.
func (r *Registry) authorize(req *http.Request) {
	switch {
	case r.token != nil:
		if repo := repoOfPath(req.URL.Path); repo != "" {
			req.Header.Set("Authorization", "Bearer "+r.Token(repo, "pull", "push", "delete"))
		}
	case r.Username != "":
		req.SetBasicAuth(r.Username, r.Password)
	}
}
