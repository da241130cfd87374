package registrytest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
)

// Digest returns the OCI digest ("sha256:<hex>") of data.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// PushBlob uploads data to repo as one monolithic upload (POST to open the
// session, one PUT with the content and its digest) and returns the digest.
// It uses the registry's credentials when auth is on.
func (r *Registry) PushBlob(t testing.TB, repo string, data []byte) string {
	t.Helper()
	dgst := Digest(data)

	resp := r.do(t, http.MethodPost, r.URL+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("registrytest: POST blob upload to %s: %s", repo, describe(resp))
	}
	resp.Body.Close()
	loc, err := r.resolve(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("registrytest: POST blob upload to %s: bad Location: %v", repo, err)
	}
	q := loc.Query()
	q.Set("digest", dgst)
	loc.RawQuery = q.Encode()

	resp = r.do(t, http.MethodPut, loc.String(), "application/octet-stream", data)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("registrytest: PUT blob %s to %s: %s", dgst, repo, describe(resp))
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != dgst {
		t.Fatalf("registrytest: PUT blob to %s: registry says digest %s, want %s", repo, got, dgst)
	}
	return dgst
}

// PushManifest stores data under repo:ref (a tag or a digest) with the given
// media type and returns its digest. The registry validates the manifest:
// push the blobs (and, for an index, the manifests) it references first.
func (r *Registry) PushManifest(t testing.TB, repo, ref, mediaType string, data []byte) string {
	t.Helper()
	dgst := Digest(data)
	resp := r.do(t, http.MethodPut, r.URL+"/v2/"+repo+"/manifests/"+ref, mediaType, data)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("registrytest: PUT manifest %s:%s: %s", repo, ref, describe(resp))
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != dgst {
		t.Fatalf("registrytest: PUT manifest %s:%s: registry says digest %s, want %s", repo, ref, got, dgst)
	}
	return dgst
}

// NewRequest returns a request to the registry (path is relative to URL,
// e.g. "/v2/"), carrying the registry's credentials when auth is on.
func (r *Registry) NewRequest(t testing.TB, method, path string, body []byte) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, r.URL+path, rd)
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	r.authorize(req)
	return req
}

func (r *Registry) do(t testing.TB, method, u, contentType string, body []byte) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	if body != nil {
		req.ContentLength = int64(len(body))
	} else {
		req.Header.Set("Content-Length", "0")
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	r.authorize(req)
	resp, err := r.Client().Do(req)
	if err != nil {
		t.Fatalf("registrytest: %s %s: %v", method, u, err)
	}
	return resp
}

// resolve makes a Location header absolute against the registry's URL.
func (r *Registry) resolve(loc string) (*url.URL, error) {
	if loc == "" {
		return nil, fmt.Errorf("missing Location header")
	}
	base, err := url.Parse(r.URL + "/")
	if err != nil {
		return nil, err
	}
	rel, err := url.Parse(loc)
	if err != nil {
		return nil, err
	}
	return base.ResolveReference(rel), nil
}

// describe reports an unexpected response with the start of its body (the
// registry's JSON error), and closes it.
func describe(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(b))
}
