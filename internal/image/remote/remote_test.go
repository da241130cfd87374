package remote_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/image/archive"
	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/berth-dev/berth/internal/image/registrytest"
	"github.com/berth-dev/berth/internal/image/remote"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func fast(o remote.Options) remote.Options {
	o.Backoff = time.Millisecond
	o.MaxBackoff = 5 * time.Millisecond
	return o
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func descOf(mt string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(data), Size: int64(len(data))}
}

type image struct {
	config   []byte
	layers   [][]byte
	manifest []byte
	mt       string
	desc     ocispec.Descriptor
}

// newImage makes a random image with a config and two layers, with OCI or
// Docker schema-2 media types.
func newImage(t *testing.T, arch string, docker bool) *image {
	im := &image{
		config: []byte(fmt.Sprintf(`{"architecture":%q,"os":"linux","rootfs":{"type":"layers","diff_ids":[]},"n":%q}`, arch, randBytes(t, 4))),
		layers: [][]byte{randBytes(t, 3000), randBytes(t, 70000)},
	}
	cmt, lmt, mmt := ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageManifest
	if docker {
		cmt, lmt, mmt = remote.MediaTypeDockerConfig, archive.MediaTypeDockerLayerGzip, remote.MediaTypeDockerManifest
	}
	m := ocispec.Manifest{MediaType: mmt, Config: descOf(cmt, im.config)}
	m.SchemaVersion = 2
	for _, l := range im.layers {
		m.Layers = append(m.Layers, descOf(lmt, l))
	}
	im.manifest, _ = json.Marshal(m)
	im.mt = mmt
	im.desc = descOf(mmt, im.manifest)
	return im
}

func (im *image) blobs() []ocispec.Descriptor {
	var m ocispec.Manifest
	json.Unmarshal(im.manifest, &m)
	return append([]ocispec.Descriptor{m.Config}, m.Layers...)
}

func (im *image) data(d ocispec.Descriptor) []byte {
	if d.Digest == digest.FromBytes(im.config) {
		return im.config
	}
	for _, l := range im.layers {
		if d.Digest == digest.FromBytes(l) {
			return l
		}
	}
	return nil
}

func push(t *testing.T, c *remote.Client, ref reference.Reference, im *image) {
	t.Helper()
	for _, d := range im.blobs() {
		if _, err := c.PushBlob(ctx(t), ref, d, remote.BytesOpener(im.data(d)), nil); err != nil {
			t.Fatalf("PushBlob %s: %v", d.Digest, err)
		}
	}
	desc, err := c.PushManifest(ctx(t), ref, im.mt, im.manifest)
	if err != nil {
		t.Fatalf("PushManifest: %v", err)
	}
	if desc.Digest != im.desc.Digest || desc.Size != im.desc.Size {
		t.Fatalf("PushManifest desc %+v, want %+v", desc, im.desc)
	}
}

// pull reads the image back and checks every byte.
func pull(t *testing.T, c *remote.Client, ref reference.Reference, im *image) {
	t.Helper()
	desc, err := c.Resolve(ctx(t), ref)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if desc.Digest != im.desc.Digest || desc.Size != im.desc.Size || desc.MediaType != im.mt {
		t.Fatalf("Resolve = %+v, want %+v", desc, im.desc)
	}
	data, err := c.FetchManifest(ctx(t), ref, desc)
	if err != nil {
		t.Fatalf("FetchManifest: %v", err)
	}
	if !bytes.Equal(data, im.manifest) {
		t.Fatalf("manifest differs")
	}
	for i, d := range im.blobs() {
		if i == 0 {
			got, err := c.ReadBlob(ctx(t), ref, d, 1<<20)
			if err != nil || !bytes.Equal(got, im.config) {
				t.Fatalf("ReadBlob config: %v", err)
			}
			continue
		}
		rc, err := c.FetchBlob(ctx(t), ref, d, 0)
		if err != nil {
			t.Fatalf("FetchBlob: %v", err)
		}
		got, err := io.ReadAll(remote.VerifyReader(rc, d))
		rc.Close()
		if err != nil || !bytes.Equal(got, im.data(d)) {
			t.Fatalf("FetchBlob %s: %v (%d bytes)", d.Digest, err, len(got))
		}
		// From an offset.
		rc, err = c.FetchBlob(ctx(t), ref, d, 1000)
		if err != nil {
			t.Fatalf("FetchBlob offset: %v", err)
		}
		got, err = io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, im.data(d)[1000:]) {
			t.Fatalf("FetchBlob offset 1000: %v (%d bytes)", err, len(got))
		}
	}
}

func mustRef(t *testing.T, s string) reference.Reference {
	t.Helper()
	r, err := reference.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPlainRoundTripAndHTTPFallback(t *testing.T) {
	t.Parallel()
	r := registrytest.Start(t, registrytest.Options{})
	// No configuration: HTTPS first, then plain HTTP because the registry
	// is loopback and answers HTTP to the TLS hello.
	c := remote.New(fast(remote.Options{}))
	ref := mustRef(t, r.Ref("app", "v1"))
	im := newImage(t, "amd64", false)
	push(t, c, ref, im)
	pull(t, c, ref, im)
	// By digest.
	pull(t, c, mustRef(t, r.Ref("app", string(im.desc.Digest))), im)
	// "localhost" is loopback by name.
	port := r.Addr[strings.LastIndex(r.Addr, ":"):]
	pull(t, remote.New(fast(remote.Options{})), mustRef(t, "localhost"+port+"/app:v1"), im)

	tags, err := c.ListTags(ctx(t), ref)
	if err != nil || len(tags) != 1 || tags[0] != "v1" {
		t.Fatalf("ListTags = %v, %v", tags, err)
	}
	// Pushing again finds the blobs there.
	out, err := c.PushBlob(ctx(t), ref, im.blobs()[1], remote.BytesOpener(im.layers[0]), nil)
	if err != nil || out != remote.BlobExisted {
		t.Fatalf("PushBlob again = %v, %v", out, err)
	}
}

func TestMissingTagNotFound(t *testing.T) {
	t.Parallel()
	r := registrytest.Start(t, registrytest.Options{})
	c := remote.New(fast(remote.Options{}))
	push(t, c, mustRef(t, r.Ref("app", "v1")), newImage(t, "amd64", false))
	_, err := c.Resolve(ctx(t), mustRef(t, r.Ref("app", "nope")))
	if !errors.Is(err, remote.ErrNotFound) || !strings.Contains(err.Error(), "GET /v2/app/tags/list") ||
		!strings.Contains(err.Error(), r.Addr+"/app:nope") {
		t.Fatalf("Resolve missing tag: %v", err)
	}
	t.Log(err)
	// A missing blob.
	d := descOf("x", []byte("absent"))
	_, err = c.FetchBlob(ctx(t), mustRef(t, r.Ref("app", "v1")), d, 0)
	if !errors.Is(err, remote.ErrNotFound) || !strings.Contains(err.Error(), "BLOB_UNKNOWN") {
		t.Fatalf("FetchBlob missing: %v", err)
	}
	t.Log(err)
}

func TestTLSBasicAuth(t *testing.T) {
	t.Parallel()
	r := registrytest.Start(t, registrytest.Options{TLS: true, Auth: true})
	regs := map[string]remote.RegistryConfig{r.Addr: {CAPEM: r.CAPEM}}
	c := remote.New(fast(remote.Options{Registries: regs,
		Credentials: remote.StaticCredentials{r.Addr: {r.Username, r.Password}}}))
	ref := mustRef(t, r.Ref("secure/app", "v1"))
	im := newImage(t, "amd64", false)
	push(t, c, ref, im)
	pull(t, c, ref, im)

	bad := remote.New(fast(remote.Options{Registries: regs,
		Credentials: remote.StaticCredentials{r.Addr: {r.Username, "wrong"}}}))
	_, err := bad.Resolve(ctx(t), ref)
	if !errors.Is(err, remote.ErrUnauthorized) || !strings.Contains(err.Error(), "berth login "+r.Addr) {
		t.Fatalf("wrong password: %v", err)
	}
	t.Log(err)
	_, err = remote.New(fast(remote.Options{Registries: regs})).Resolve(ctx(t), ref)
	if !errors.Is(err, remote.ErrUnauthorized) {
		t.Fatalf("no credentials: %v", err)
	}
	// Without the CA: a certificate error, not a fallback to HTTP.
	_, err = remote.New(fast(remote.Options{Retries: -1})).Resolve(ctx(t), ref)
	if !errors.Is(err, remote.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted CA: %v", err)
	}
}

func TestTokenAuth(t *testing.T) {
	t.Parallel()
	r := registrytest.Start(t, registrytest.Options{Token: true})
	c := remote.New(fast(remote.Options{Credentials: remote.StaticCredentials{r.Addr: {r.Username, r.Password}}}))
	ref := mustRef(t, r.Ref("tok/app", "v1"))
	im := newImage(t, "arm64", false)
	push(t, c, ref, im)
	pull(t, c, ref, im)
	scopes := strings.Join(r.TokenScopes(), " ")
	if !strings.Contains(scopes, "repository:tok/app:pull,push") || !strings.Contains(scopes, "repository:tok/app:pull") {
		t.Fatalf("token scopes %q", scopes)
	}
	// Tokens are cached: one for push, one for pull, not one per request.
	if n := r.TokenRequests(); n > 3 {
		t.Fatalf("%d token requests", n)
	}
	bad := remote.New(fast(remote.Options{Credentials: remote.StaticCredentials{r.Addr: {r.Username, "wrong"}}}))
	_, err := bad.Resolve(ctx(t), ref)
	if !errors.Is(err, remote.ErrUnauthorized) || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("wrong password: %v", err)
	}
	t.Log(err)
	// Anonymous: a token without access, then insufficient_scope: ErrUnauthorized.
	_, err = remote.New(fast(remote.Options{})).Resolve(ctx(t), ref)
	if !errors.Is(err, remote.ErrUnauthorized) {
		t.Fatalf("anonymous: %v", err)
	}
	t.Log(err)
}

func pushIndex(t *testing.T, c *remote.Client, ref reference.Reference, docker bool) (*image, *image, ocispec.Descriptor) {
	amd, arm := newImage(t, "amd64", docker), newImage(t, "arm64", docker)
	for _, im := range []*image{amd, arm} {
		push(t, c, mustRef(t, ref.Name()+"@"+string(im.desc.Digest)), im)
	}
	imt := ocispec.MediaTypeImageIndex
	if docker {
		imt = remote.MediaTypeDockerManifestList
	}
	a, b := amd.desc, arm.desc
	a.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	b.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	att := descOf(ocispec.MediaTypeImageManifest, amd.manifest)
	att.Platform = &ocispec.Platform{OS: "unknown", Architecture: "unknown"}
	idx := ocispec.Index{MediaType: imt, Manifests: []ocispec.Descriptor{a, b, att}}
	idx.SchemaVersion = 2
	data, _ := json.Marshal(idx)
	desc, err := c.PushManifest(ctx(t), ref, imt, data)
	if err != nil {
		t.Fatalf("PushManifest index: %v", err)
	}
	return amd, arm, desc
}

func testIndex(t *testing.T, docker bool) {
	r := registrytest.Start(t, registrytest.Options{})
	c := remote.New(fast(remote.Options{}))
	ref := mustRef(t, r.Ref("multi", "latest"))
	amd, arm, _ := pushIndex(t, c, ref, docker)
	desc, err := c.Resolve(ctx(t), ref)
	if err != nil || !remote.IsIndexMediaType(desc.MediaType) {
		t.Fatalf("Resolve index: %+v %v", desc, err)
	}
	data, err := c.FetchManifest(ctx(t), ref, desc)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.ParseIndex(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    string
		want *image
	}{{"linux/amd64", amd}, {"linux/arm64/v8", arm}, {"linux/aarch64", arm}, {"linux/x86_64", amd}} {
		p, err := remote.ParsePlatform(tc.p)
		if err != nil {
			t.Fatal(err)
		}
		d, err := remote.SelectPlatform(idx, p)
		if err != nil || d.Digest != tc.want.desc.Digest {
			t.Fatalf("SelectPlatform(%s) = %v, %v", tc.p, d.Digest, err)
		}
		pull(t, c, mustRef(t, ref.Name()+"@"+string(d.Digest)), tc.want)
	}
	_, err = remote.SelectPlatform(idx, remote.Platform{OS: "linux", Architecture: "s390x"})
	if !errors.Is(err, remote.ErrNotFound) || !strings.Contains(err.Error(), "available: linux/amd64, linux/arm64)") {
		t.Fatalf("SelectPlatform s390x: %v", err)
	}
	t.Log(err)
}

func TestIndexSelectPlatformOCI(t *testing.T)    { t.Parallel(); testIndex(t, false) }
func TestIndexSelectPlatformDocker(t *testing.T) { t.Parallel(); testIndex(t, true) }

func TestCrossRepoMount(t *testing.T) {
	t.Parallel()
	r := registrytest.Start(t, registrytest.Options{TLS: true, Auth: true})
	c := remote.New(fast(remote.Options{Registries: map[string]remote.RegistryConfig{r.Addr: {CAPEM: r.CAPEM}},
		Credentials: remote.StaticCredentials{r.Addr: {r.Username, r.Password}}}))
	src, dst := mustRef(t, r.Ref("src/app", "v1")), mustRef(t, r.Ref("dst/app", "v1"))
	data := randBytes(t, 5000)
	d := descOf(ocispec.MediaTypeImageLayer, data)
	if out, err := c.PushBlob(ctx(t), src, d, remote.BytesOpener(data), nil); err != nil || out != remote.BlobUploaded {
		t.Fatalf("push src: %v %v", out, err)
	}
	opened := false
	open := func() (io.ReadCloser, error) { opened = true; return io.NopCloser(bytes.NewReader(data)), nil }
	out, err := c.PushBlob(ctx(t), dst, d, open, []reference.Reference{mustRef(t, "other.example/x:1"), src})
	if err != nil || out != remote.BlobMounted || opened {
		t.Fatalf("mount: %v %v (opened %v)", out, err, opened)
	}
	got, err := c.ReadBlob(ctx(t), dst, d, 1<<20)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read mounted blob: %v", err)
	}
	// Mount from a repository without the blob: 202, a session, uploaded.
	data2 := randBytes(t, 100)
	d2 := descOf(ocispec.MediaTypeImageLayer, data2)
	out, err = c.PushBlob(ctx(t), dst, d2, remote.BytesOpener(data2), []reference.Reference{src})
	if err != nil || out != remote.BlobUploaded {
		t.Fatalf("mount of absent blob: %v %v", out, err)
	}
}

func TestChunkedUpload(t *testing.T) {
	t.Parallel()
	r := registrytest.Start(t, registrytest.Options{})
	c := remote.New(fast(remote.Options{ChunkSize: 1 << 20}))
	ref := mustRef(t, r.Ref("big", "v1"))
	data := randBytes(t, 10<<20+12345)
	d := descOf(ocispec.MediaTypeImageLayer, data)
	out, err := c.PushBlob(ctx(t), ref, d, remote.BytesOpener(data), nil)
	if err != nil || out != remote.BlobUploadedChunked {
		t.Fatalf("chunked: %v %v", out, err)
	}
	rc, err := c.FetchBlob(ctx(t), ref, d, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(remote.VerifyReader(rc, d))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	// Wrong size in the descriptor: refused.
	bad := d
	bad.Size--
	bad.Digest = digest.FromBytes(data[:len(data)-1])
	if _, err := c.PushBlob(ctx(t), ref, bad, remote.BytesOpener(data), nil); !errors.Is(err, remote.ErrInvalid) {
		t.Fatalf("oversized content: %v", err)
	}
}

// proxy puts an httptest reverse proxy in front of a real registry; modify
// may change responses.
func proxy(t *testing.T, r *registrytest.Registry, modify func(*http.Response) error) *httptest.Server {
	u, _ := url.Parse(r.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = modify
	s := httptest.NewServer(rp)
	t.Cleanup(s.Close)
	return s
}

func hostOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func TestManifestDigestMismatch(t *testing.T) {
	t.Parallel()
	r := registrytest.Start(t, registrytest.Options{})
	c := remote.New(fast(remote.Options{}))
	im := newImage(t, "amd64", false)
	push(t, c, mustRef(t, r.Ref("app", "v1")), im)
	other := newImage(t, "amd64", false)
	p := proxy(t, r, func(resp *http.Response) error {
		if strings.Contains(resp.Request.URL.Path, "/manifests/") {
			// Serve other content under the same digest header.
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(other.manifest))
			resp.ContentLength = int64(len(other.manifest))
			resp.Header.Set("Content-Length", strconv.Itoa(len(other.manifest)))
			if resp.Request.Method == http.MethodHead {
				resp.Header.Set("Docker-Content-Digest", string(other.desc.Digest))
			}
		}
		return nil
	})
	pc := remote.New(fast(remote.Options{}))
	ref := mustRef(t, hostOf(p)+"/app:v1")
	_, err := pc.FetchManifest(ctx(t), ref, im.desc)
	if !errors.Is(err, remote.ErrInvalid) || !strings.Contains(err.Error(), "want "+string(im.desc.Digest)) {
		t.Fatalf("FetchManifest tampered: %v", err)
	}
	t.Log(err)
	_, err = pc.Resolve(ctx(t), mustRef(t, hostOf(p)+"/app@"+string(im.desc.Digest)))
	if !errors.Is(err, remote.ErrInvalid) {
		t.Fatalf("Resolve tampered: %v", err)
	}
	t.Log(err)
}

func TestSchema1Refused(t *testing.T) {
	t.Parallel()
	body := []byte(`{"schemaVersion":1,"name":"app","tag":"v1","fsLayers":[]}`)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", remote.MediaTypeDockerSchema1JWS)
		w.Write(body)
	}))
	defer s.Close()
	c := remote.New(fast(remote.Options{}))
	_, err := c.FetchManifest(ctx(t), mustRef(t, hostOf(s)+"/app:v1"), descOf(remote.MediaTypeDockerSchema1JWS, body))
	if !errors.Is(err, remote.ErrInvalid) || !strings.Contains(err.Error(), "schema 1 manifests are not supported; re-push the image") {
		t.Fatalf("schema1: %v", err)
	}
}

// blobServer serves one blob over the registry API, honouring Range
// unless ignoreRange, and cutting the connection after cut bytes for the
// first drops responses (or, with stall, sleeping instead of cutting).
type blobServer struct {
	data        []byte
	cut         int
	drops       int32
	ignoreRange bool
	stall       time.Duration

	requests, ranges atomic.Int32
}

func (b *blobServer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	n := b.requests.Add(1)
	if !strings.Contains(req.URL.Path, "/blobs/") {
		w.WriteHeader(http.StatusOK)
		return
	}
	start := 0
	if rg := req.Header.Get("Range"); rg != "" {
		b.ranges.Add(1)
		if !b.ignoreRange {
			start, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
		}
	}
	body := b.data[start:]
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if start > 0 {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(b.data)-1, len(b.data)))
		w.WriteHeader(http.StatusPartialContent)
	}
	if n <= b.drops {
		w.Write(body[:min(b.cut, len(body))])
		w.(http.Flusher).Flush()
		if b.stall > 0 {
			select {
			case <-req.Context().Done():
			case <-time.After(b.stall):
			}
			return
		}
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
		return
	}
	w.Write(body)
}

func TestFetchBlobResumes(t *testing.T) {
	t.Parallel()
	data := randBytes(t, 1<<20)
	for _, tc := range []struct {
		name string
		bs   *blobServer
		opts remote.Options
	}{
		{"range", &blobServer{data: data, cut: 100000, drops: 3}, remote.Options{}},
		{"server-ignores-range", &blobServer{data: data, cut: 200000, drops: 3, ignoreRange: true}, remote.Options{}},
		{"stall", &blobServer{data: data, cut: 50000, drops: 2, stall: 5 * time.Second}, remote.Options{StallTimeout: 200 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := httptest.NewServer(tc.bs)
			defer s.Close()
			c := remote.New(fast(tc.opts))
			d := descOf(ocispec.MediaTypeImageLayer, data)
			rc, err := c.FetchBlob(ctx(t), mustRef(t, hostOf(s)+"/app:v1"), d, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(remote.VerifyReader(rc, d))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes: %v", len(got), err)
			}
			if n := remote.RangeRequests(rc); n != int(tc.bs.drops) || tc.bs.ranges.Load() != tc.bs.drops {
				t.Fatalf("%d Range requests (server saw %d), want %d", n, tc.bs.ranges.Load(), tc.bs.drops)
			}
		})
	}
	// Too many drops: ErrUnavailable, after Retries resumptions.
	bs := &blobServer{data: data, cut: 0, drops: 100}
	s := httptest.NewServer(bs)
	defer s.Close()
	c := remote.New(fast(remote.Options{Retries: 2}))
	rc, err := c.FetchBlob(ctx(t), mustRef(t, hostOf(s)+"/app:v1"), descOf("x", data), 0)
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if !errors.Is(err, remote.ErrUnavailable) || !strings.Contains(err.Error(), "resum") {
		t.Fatalf("endless drops: %v", err)
	}
	t.Log(err)
}

func TestMirrorFallback(t *testing.T) {
	t.Parallel()
	r := registrytest.Start(t, registrytest.Options{})
	c := remote.New(fast(remote.Options{}))
	ref := mustRef(t, r.Ref("lib/app", "v1"))
	im := newImage(t, "amd64", false)
	push(t, c, ref, im)

	var hits500, hits404 atomic.Int32
	m500 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hits500.Add(1)
		http.Error(w, `{"errors":[{"code":"UNAVAILABLE","message":"mirror broken"}]}`, http.StatusInternalServerError)
	}))
	defer m500.Close()
	m404 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hits404.Add(1)
		if !strings.HasPrefix(req.URL.Path, "/v2/lib/app/") && req.URL.Path != "/v2/" {
			t.Errorf("mirror asked for %s", req.URL.Path)
		}
		http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not cached"}]}`, http.StatusNotFound)
	}))
	defer m404.Close()
	mc := remote.New(fast(remote.Options{Registries: map[string]remote.RegistryConfig{
		r.Addr: {Mirrors: []string{m500.URL, hostOf(m404)}},
	}}))
	pull(t, mc, ref, im)
	if hits500.Load() == 0 || hits404.Load() == 0 {
		t.Fatalf("mirrors not tried: %d %d", hits500.Load(), hits404.Load())
	}
	// Pushes skip mirrors.
	h5, h4 := hits500.Load(), hits404.Load()
	push(t, mc, mustRef(t, r.Ref("lib/app", "v2")), newImage(t, "amd64", false))
	if hits500.Load() != h5 || hits404.Load() != h4 {
		t.Fatalf("push went to a mirror")
	}
	// All fail: the upstream's error, noting the mirrors.
	_, err := mc.Resolve(ctx(t), mustRef(t, r.Ref("lib/app", "missing")))
	if !errors.Is(err, remote.ErrNotFound) || !strings.Contains(err.Error(), "mirrors failed first") {
		t.Fatalf("all failing: %v", err)
	}
	t.Log(err)
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	r := registrytest.Start(t, registrytest.Options{})
	c := remote.New(fast(remote.Options{}))
	ref := mustRef(t, r.Ref("app", "v1"))
	im := newImage(t, "amd64", false)
	push(t, c, ref, im)

	var n atomic.Int32
	u, _ := url.Parse(r.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, "/manifests/") && n.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, http.StatusTooManyRequests)
			return
		}
		rp.ServeHTTP(w, req)
	}))
	defer s.Close()
	begin := time.Now()
	desc, err := remote.New(fast(remote.Options{})).Resolve(ctx(t), mustRef(t, hostOf(s)+"/app:v1"))
	if err != nil || desc.Digest != im.desc.Digest {
		t.Fatalf("Resolve through 429: %v", err)
	}
	if el := time.Since(begin); el < time.Second {
		t.Fatalf("Retry-After not honoured: %v", el)
	}
	// A Retry-After over the limit fails at once.
	long := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer long.Close()
	_, err = remote.New(fast(remote.Options{})).Resolve(ctx(t), mustRef(t, hostOf(long)+"/app:v1"))
	if !errors.Is(err, remote.ErrUnavailable) || !strings.Contains(err.Error(), "retry after 1h0m0s") {
		t.Fatalf("long Retry-After: %v", err)
	}
	// Persistent 5xx: ErrUnavailable after the retries.
	var m atomic.Int32
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		m.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer bad.Close()
	_, err = remote.New(fast(remote.Options{Retries: 2})).Resolve(ctx(t), mustRef(t, hostOf(bad)+"/app:v1"))
	if !errors.Is(err, remote.ErrUnavailable) || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("5xx: %v", err)
	}
}

func TestRedirectDropsAuthorization(t *testing.T) {
	t.Parallel()
	data := []byte("redirected blob")
	var sawAuth atomic.Value
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sawAuth.Store(req.Header.Get("Authorization"))
		w.Write(data)
	}))
	defer storage.Close()
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, _, ok := req.BasicAuth(); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.Redirect(w, req, storage.URL+"/blob", http.StatusTemporaryRedirect)
	}))
	defer reg.Close()
	c := remote.New(fast(remote.Options{Credentials: remote.StaticCredentials{hostOf(reg): {"u", "p"}}}))
	got, err := c.ReadBlob(ctx(t), mustRef(t, hostOf(reg)+"/app:v1"), descOf("x", data), 100)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadBlob: %q %v", got, err)
	}
	if a := sawAuth.Load().(string); a != "" {
		t.Fatalf("storage got Authorization %q", a)
	}
}

func TestLoadConfigAndCertsDir(t *testing.T) {
	t.Parallel()
	r := registrytest.Start(t, registrytest.Options{TLS: true})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ca.pem"), r.CAPEM, 0o600)
	cfgFile := filepath.Join(dir, "registries.json")
	os.WriteFile(cfgFile, []byte(`{"registries": {"`+r.Addr+`": {"ca_file": "ca.pem"}, "docker.io": {"mirrors": ["mirror.local:5000", "http://127.0.0.1:1"]}}}`), 0o600)
	cfg, err := remote.LoadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Registries[r.Addr].CAFile != filepath.Join(dir, "ca.pem") || len(cfg.Registries["docker.io"].Mirrors) != 2 {
		t.Fatalf("config %+v", cfg)
	}
	ref := mustRef(t, r.Ref("app", "v1"))
	im := newImage(t, "amd64", false)
	c := remote.New(fast(remote.Options{Registries: cfg.Registries}))
	push(t, c, ref, im)
	pull(t, c, ref, im)

	// certs.d layout.
	certs := filepath.Join(t.TempDir(), "certs.d")
	os.MkdirAll(filepath.Join(certs, r.Addr), 0o700)
	os.WriteFile(filepath.Join(certs, r.Addr, "ca.crt"), r.CAPEM, 0o600)
	pull(t, remote.New(fast(remote.Options{CertsDir: certs})), ref, im)

	// Missing file: empty config. Typos and bad mirrors: ErrInvalid.
	if cfg, err := remote.LoadConfig(filepath.Join(dir, "none.json")); err != nil || len(cfg.Registries) != 0 {
		t.Fatalf("missing file: %v %v", cfg, err)
	}
	for _, bad := range []string{`{"registries": {"x": {"mirors": []}}}`, `{"registries": {"x": {"mirrors": ["ftp://h"]}}}`, `[`} {
		os.WriteFile(cfgFile, []byte(bad), 0o600)
		if _, err := remote.LoadConfig(cfgFile); !errors.Is(err, remote.ErrInvalid) {
			t.Fatalf("LoadConfig(%s): %v", bad, err)
		}
	}
}

func TestCheckLogin(t *testing.T) {
	t.Parallel()
	for _, opts := range []registrytest.Options{{TLS: true, Auth: true}, {Token: true}} {
		r := registrytest.Start(t, opts)
		c := remote.New(fast(remote.Options{Registries: map[string]remote.RegistryConfig{r.Addr: {CAPEM: r.CAPEM}}}))
		if err := c.CheckLogin(ctx(t), r.Addr, r.Username, r.Password); err != nil {
			t.Fatalf("CheckLogin (%+v): %v", opts, err)
		}
		err := c.CheckLogin(ctx(t), r.Addr, r.Username, "wrong")
		if !errors.Is(err, remote.ErrUnauthorized) {
			t.Fatalf("CheckLogin wrong password (%+v): %v", opts, err)
		}
		t.Log(err)
	}
}
