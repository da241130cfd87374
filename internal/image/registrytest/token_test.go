package registrytest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/image/registrytest"
)

func TestTokenAuth(t *testing.T) {
	t.Parallel()
	r := registrytest.Start(t, registrytest.Options{Token: true, Users: map[string]string{"alice": "s3cret"}})
	if r.TokenURL() == "" || r.Username != "alice" {
		t.Fatalf("TokenURL %q Username %q", r.TokenURL(), r.Username)
	}
	c := r.Client()
	// Helpers mint tokens themselves.
	_, layer, man, manifest := seed(t, r, "tok/app", "v1")

	// Anonymous: a Bearer challenge naming the realm and service.
	resp, _ := get(t, c, http.MethodGet, r.URL+"/v2/tok/app/manifests/v1", nil, "", "")
	ch := resp.Header.Get("Www-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(ch, `realm="`+r.TokenURL()+`"`) || !strings.Contains(ch, `scope="repository:tok/app:pull"`) {
		t.Fatalf("anonymous GET: %s %q", resp.Status, ch)
	}

	// Token server: right password grants the scope; the registry accepts it.
	tokenFor := func(user, pass string) (int, string) {
		u := r.TokenURL() + "?service=berth-registrytest&scope=" + url.QueryEscape("repository:tok/app:pull")
		resp, body := get(t, c, http.MethodGet, u, nil, user, pass)
		var tok struct {
			Token string `json:"token"`
		}
		json.Unmarshal(body, &tok)
		return resp.StatusCode, tok.Token
	}
	code, tok := tokenFor("alice", "s3cret")
	if code != http.StatusOK || tok == "" {
		t.Fatalf("token request: %d %q", code, tok)
	}
	hdr := map[string]string{"Authorization": "Bearer " + tok, "Accept": mtManifest}
	resp, body := get(t, c, http.MethodGet, r.URL+"/v2/tok/app/manifests/v1", hdr, "", "")
	if resp.StatusCode != http.StatusOK || string(body) != string(manifest) || resp.Header.Get("Docker-Content-Digest") != man {
		t.Fatalf("GET with token: %s %s\n%s", resp.Status, body, r.Logs())
	}
	resp, _ = get(t, c, http.MethodGet, r.URL+"/v2/tok/app/blobs/"+layer, hdr, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET blob with token: %s", resp.Status)
	}
	// Wrong password: 401 from the token server.
	if code, _ := tokenFor("alice", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	// Anonymous token: no access.
	_, anon := tokenFor("", "")
	hdr["Authorization"] = "Bearer " + anon
	resp, _ = get(t, c, http.MethodGet, r.URL+"/v2/tok/app/manifests/v1", hdr, "", "")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("Www-Authenticate"), "insufficient_scope") {
		t.Fatalf("anonymous token: %s %q", resp.Status, resp.Header.Get("Www-Authenticate"))
	}
	if r.TokenRequests() != 3 {
		t.Fatalf("TokenRequests = %d, want 3", r.TokenRequests())
	}
}
