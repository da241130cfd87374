package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/image/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker media types (OCI ones are in ocispec).
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeDockerSchema1JWS   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
)

// manifestAccept is the Accept header of manifest requests.
var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
	MediaTypeDockerManifestList, MediaTypeDockerManifest,
}, ", ")

// IsManifestMediaType reports whether mt is a supported manifest type.
func IsManifestMediaType(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageManifest, MediaTypeDockerManifest:
		return true
	}
	return false
}

// IsIndexMediaType reports whether mt is a supported index type.
func IsIndexMediaType(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

func repoPath(ref reference.Reference) string { return "/v2/" + ref.Repository() }

func pullScopes(ref reference.Reference) []string {
	return []string{"repository:" + ref.Repository() + ":pull"}
}

// manifestRef is the tag or digest to ask for: the digest when there is one.
func manifestRef(ref reference.Reference) string {
	if d := ref.Digest(); !d.IsZero() {
		return d.String()
	}
	return ref.Tag()
}

func parseDigestHeader(v string) (reference.Digest, bool) {
	d, err := reference.ParseDigest(strings.TrimSpace(v))
	return d, err == nil
}

func notFoundHint(ref reference.Reference) string {
	if ref.Digest().IsZero() {
		return fmt.Sprintf("check the tag exists: GET /v2/%s/tags/list", ref.Repository())
	}
	return "check the digest and the repository name"
}

func contentType(h http.Header) string {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// Resolve finds the descriptor (media type, digest, size) of the manifest
// or index ref names. It HEADs the manifest and falls back to GET when the
// answer lacks Docker-Content-Digest. When ref has a digest, the result has
// that digest or the call fails with ErrInvalid.
func (c *Client) Resolve(ctx context.Context, ref reference.Reference) (ocispec.Descriptor, error) {
	o := opRef{"resolve", ref.String()}
	var desc ocispec.Descriptor
	err := c.onEndpoints(ctx, ref.Registry(), func(ep endpoint) error {
		d, err := c.resolveAt(ctx, o, ep, ref)
		desc = d
		return err
	})
	return desc, err
}

func (c *Client) resolveAt(ctx context.Context, o opRef, ep endpoint, ref reference.Reference) (ocispec.Descriptor, error) {
	rq := &request{method: http.MethodHead, path: repoPath(ref) + "/manifests/" + manifestRef(ref),
		header: http.Header{"Accept": {manifestAccept}}, scopes: pullScopes(ref), replayable: true}
	resp, err := c.do(ctx, o, ep, rq)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return ocispec.Descriptor{}, o.fromResponse(resp, ErrNotFound, "manifest unknown on "+ep.String(), notFoundHint(ref))
	default:
		return ocispec.Descriptor{}, o.fromResponse(resp, nil, "HEAD manifest on "+ep.String(), "")
	}
	resp.Body.Close()
	d, ok := parseDigestHeader(resp.Header.Get("Docker-Content-Digest"))
	mt := contentType(resp.Header)
	if ok && resp.ContentLength > 0 && mt != "" {
		if want := ref.Digest(); !want.IsZero() && d != want {
			return ocispec.Descriptor{}, o.errorf(ErrInvalid, "the registry or a proxy is corrupting content; do not use it",
				"%s claims digest %s for %s", ep, d, want)
		}
		if resp.ContentLength > MaxManifestSize {
			return ocispec.Descriptor{}, o.errorf(ErrInvalid, "", "manifest is %d bytes, over the %d limit", resp.ContentLength, MaxManifestSize)
		}
		return ocispec.Descriptor{MediaType: mt, Digest: digest.Digest(d.String()), Size: resp.ContentLength}, nil
	}
	// No usable headers: GET the manifest and compute.
	data, mt, err := c.getManifest(ctx, o, ep, ref, manifestRef(ref))
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	got := manifestDigest(ref, data)
	if want := ref.Digest(); !want.IsZero() && got != want {
		return ocispec.Descriptor{}, o.errorf(ErrInvalid, "the registry or a proxy is corrupting content; do not use it",
			"manifest from %s has digest %s, want %s", ep, got, want)
	}
	return ocispec.Descriptor{MediaType: mt, Digest: digest.Digest(got.String()), Size: int64(len(data))}, nil
}

// manifestDigest is the digest of manifest data named by ref: in the
// algorithm of ref's digest when it has one, else the canonical one.
func manifestDigest(ref reference.Reference, data []byte) reference.Digest {
	alg := reference.Canonical
	if want := ref.Digest(); !want.IsZero() {
		alg = want.Algorithm()
	}
	return reference.FromBytes(alg, data)
}

// getManifest GETs a manifest (up to MaxManifestSize) and its media type
// (Content-Type, else the body's mediaType), refusing schema 1.
func (c *Client) getManifest(ctx context.Context, o opRef, ep endpoint, ref reference.Reference, tagOrDigest string) ([]byte, string, error) {
	rq := &request{method: http.MethodGet, path: repoPath(ref) + "/manifests/" + tagOrDigest,
		header: http.Header{"Accept": {manifestAccept}}, scopes: pullScopes(ref), replayable: true}
	resp, err := c.do(ctx, o, ep, rq)
	if err != nil {
		return nil, "", err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, "", o.fromResponse(resp, ErrNotFound, "manifest unknown on "+ep.String(), notFoundHint(ref))
	default:
		return nil, "", o.fromResponse(resp, nil, "GET manifest on "+ep.String(), "")
	}
	defer resp.Body.Close()
	if resp.ContentLength > MaxManifestSize {
		return nil, "", o.errorf(ErrInvalid, "", "manifest on %s is %d bytes, over the %d limit", ep, resp.ContentLength, MaxManifestSize)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return nil, "", &Error{Op: o.op, Ref: o.ref, Kind: ErrUnavailable, Msg: "reading manifest from " + ep.String(), Err: err, Hint: "try again"}
	}
	if len(data) > MaxManifestSize {
		return nil, "", o.errorf(ErrInvalid, "", "manifest on %s is over the %d-byte limit", ep, MaxManifestSize)
	}
	mt, err := manifestMediaType(contentType(resp.Header), data)
	if err != nil {
		return nil, "", &Error{Op: o.op, Ref: o.ref, Kind: ErrInvalid, Msg: err.Error(), Hint: hintFor(err)}
	}
	return data, mt, nil
}

var errSchema1 = errors.New("schema 1 manifests are not supported")

func hintFor(err error) string {
	if errors.Is(err, errSchema1) {
		return "re-push the image with a current docker or berth to convert it"
	}
	return ""
}

// manifestMediaType decides the media type of a manifest from its
// Content-Type and body, refusing schema 1 and unknown types.
func manifestMediaType(ct string, data []byte) (string, error) {
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		Config        json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return "", fmt.Errorf("manifest is not valid JSON: %v", err)
	}
	if ct == MediaTypeDockerSchema1 || ct == MediaTypeDockerSchema1JWS || probe.SchemaVersion == 1 {
		return "", fmt.Errorf("%w; re-push the image", errSchema1)
	}
	if probe.SchemaVersion != 2 {
		return "", fmt.Errorf("manifest has schemaVersion %d, want 2", probe.SchemaVersion)
	}
	mt := probe.MediaType
	if mt == "" {
		mt = ct
	}
	if mt == "" || mt == "application/json" || mt == "text/plain" || mt == "application/octet-stream" {
		// OCI allows mediaType to be absent: guess from the shape.
		if probe.Manifests != nil {
			mt = ocispec.MediaTypeImageIndex
		} else {
			mt = ocispec.MediaTypeImageManifest
		}
	}
	if probe.MediaType != "" && ct != "" && ct != probe.MediaType &&
		(IsManifestMediaType(ct) || IsIndexMediaType(ct)) {
		return "", fmt.Errorf("registry serves media type %s but the manifest says %s", ct, probe.MediaType)
	}
	if !IsManifestMediaType(mt) && !IsIndexMediaType(mt) {
		return "", fmt.Errorf("unsupported manifest media type %q", mt)
	}
	return mt, nil
}

// FetchManifest gets the manifest or index desc describes (by its digest,
// in ref's repository) and checks its digest, size and media type.
func (c *Client) FetchManifest(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor) ([]byte, error) {
	o := opRef{"pull", ref.Name() + "@" + string(desc.Digest)}
	want, err := reference.ParseDigest(string(desc.Digest))
	if err != nil {
		return nil, &Error{Op: o.op, Ref: o.ref, Kind: ErrInvalid, Msg: "bad descriptor digest", Err: err}
	}
	if desc.Size > MaxManifestSize {
		return nil, o.errorf(ErrInvalid, "", "manifest is %d bytes, over the %d limit", desc.Size, MaxManifestSize)
	}
	var out []byte
	err = c.onEndpoints(ctx, ref.Registry(), func(ep endpoint) error {
		data, mt, err := c.getManifest(ctx, o, ep, ref, want.String())
		if err != nil {
			return err
		}
		if got := reference.FromBytes(want.Algorithm(), data); got != want {
			return o.errorf(ErrInvalid, "the registry or a proxy is corrupting content; do not use it",
				"manifest from %s has digest %s, want %s", ep, got, want)
		}
		if desc.Size > 0 && int64(len(data)) != desc.Size {
			return o.errorf(ErrInvalid, "", "manifest from %s is %d bytes, want %d", ep, len(data), desc.Size)
		}
		if desc.MediaType != "" && desc.MediaType != mt {
			return o.errorf(ErrInvalid, "", "manifest from %s has media type %s, want %s", ep, mt, desc.MediaType)
		}
		out = data
		return nil
	})
	return out, err
}

// FetchBlob streams the blob desc from offset to its end, from ref's
// repository (its tag and digest are ignored). When the connection drops,
// errors, ends early or stalls for Options.StallTimeout, the stream is
// resumed transparently with a Range request at the current position (a
// server answering 200 instead of 206 has the bytes before it skipped); up
// to Options.Retries consecutive resumptions without progress are made,
// with exponential backoff.
//
// FetchBlob does not verify the digest: with offset > 0 it cannot, and the
// caller who has the earlier bytes hashes the whole. It never yields more
// than desc.Size - offset bytes; a blob longer than desc.Size ends in
// ErrInvalid. For a verified stream from the start use VerifyReader or
// ReadBlob.
func (c *Client) FetchBlob(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	o := opRef{"fetch blob", ref.Name() + "@" + string(desc.Digest)}
	d, err := reference.ParseDigest(string(desc.Digest))
	if err != nil {
		return nil, &Error{Op: o.op, Ref: o.ref, Kind: ErrInvalid, Msg: "bad descriptor digest", Err: err}
	}
	if desc.Size < 0 || offset < 0 || (desc.Size > 0 && offset > desc.Size) {
		return nil, o.errorf(ErrInvalid, "", "offset %d outside the blob's %d bytes", offset, desc.Size)
	}
	if offset == desc.Size {
		// Nothing left to fetch (descriptors always carry a size; zero
		// means empty).
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	b := &blobReader{c: c, o: o, ref: ref, digest: d, size: desc.Size, pos: offset}
	b.ctx, b.cancel = context.WithCancel(ctx)
	err = c.onEndpoints(ctx, ref.Registry(), func(ep endpoint) error {
		b.ep = ep
		return b.open()
	})
	if err != nil {
		b.cancel()
		return nil, err
	}
	return b, nil
}

// blobReader is a resuming blob stream.
type blobReader struct {
	c      *Client
	o      opRef
	ref    reference.Reference
	digest reference.Digest
	size   int64
	ep     endpoint

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	body     io.ReadCloser
	reqStop  context.CancelFunc // cancels the current request
	stall    *time.Timer
	stalled  bool
	pos      int64 // absolute offset of the next byte
	failures int   // consecutive failed resumptions
	lastErr  error
	done     bool
	closed   bool

	// Ranges counts the Range requests made (for tests and logs).
	ranges int
}

// open starts a request at b.pos.
func (b *blobReader) open() error {
	reqCtx, stop := context.WithCancel(b.ctx)
	hdr := http.Header{}
	if b.pos > 0 {
		hdr.Set("Range", "bytes="+strconv.FormatInt(b.pos, 10)+"-")
		b.ranges++
	}
	rq := &request{method: http.MethodGet, path: repoPath(b.ref) + "/blobs/" + b.digest.String(),
		header: hdr, scopes: pullScopes(b.ref), stream: true, replayable: true}
	resp, err := b.c.do(reqCtx, b.o, b.ep, rq)
	if err != nil {
		stop()
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if b.pos > 0 {
			// The server ignored Range: skip what we already have.
			if _, err := io.CopyN(io.Discard, resp.Body, b.pos); err != nil {
				resp.Body.Close()
				stop()
				return &Error{Op: b.o.op, Ref: b.o.ref, Kind: ErrUnavailable, Msg: "skipping to offset " + strconv.FormatInt(b.pos, 10) + " on " + b.ep.String(), Err: err}
			}
		}
	case http.StatusPartialContent:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != b.pos {
			resp.Body.Close()
			stop()
			return b.o.errorf(ErrInvalid, "", "%s answered range %q to a request from byte %d", b.ep, resp.Header.Get("Content-Range"), b.pos)
		}
	case http.StatusNotFound:
		stop()
		return b.o.fromResponse(resp, ErrNotFound, "blob unknown on "+b.ep.String(), "the image is incomplete on the registry; re-push it")
	default:
		stop()
		return b.o.fromResponse(resp, nil, "GET blob on "+b.ep.String(), "")
	}
	b.body, b.reqStop = resp.Body, stop
	b.stalled = false
	b.stall = time.AfterFunc(b.c.opts.StallTimeout, func() {
		b.mu.Lock()
		b.stalled = true
		b.mu.Unlock()
		stop()
	})
	return nil
}

func contentRangeStart(v string) (int64, bool) {
	v = strings.TrimSpace(v)
	v, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(v, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	return n, err == nil
}

func (b *blobReader) closeBody() {
	if b.stall != nil {
		b.stall.Stop()
	}
	if b.body != nil {
		b.body.Close()
		b.body = nil
	}
	if b.reqStop != nil {
		b.reqStop()
	}
}

// Read reads from the current connection, resuming as needed.
func (b *blobReader) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errors.New("read from closed blob stream")
	}
	if b.done {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if rem := b.size - b.pos; int64(len(p)) > rem {
		p = p[:rem]
	}
	for {
		if b.body == nil {
			if err := b.resume(); err != nil {
				return 0, err
			}
		}
		n, err := b.body.Read(p)
		if n > 0 {
			b.stall.Reset(b.c.opts.StallTimeout)
			b.pos += int64(n)
			b.failures = 0
			if b.pos == b.size {
				b.done = true
				err := b.checkTrailing()
				b.closeBody()
				if err != nil {
					return n, err
				}
			}
			return n, nil
		}
		if err == nil {
			continue
		}
		if b.ctx.Err() != nil {
			b.closeBody()
			return 0, &Error{Op: b.o.op, Ref: b.o.ref, Kind: ErrUnavailable, Msg: "interrupted", Err: b.ctx.Err()}
		}
		b.mu.Lock()
		stalled := b.stalled
		b.mu.Unlock()
		if stalled {
			err = fmt.Errorf("no data for %v", b.c.opts.StallTimeout)
		} else if err == io.EOF {
			err = fmt.Errorf("connection ended at byte %d of %d", b.pos, b.size)
		}
		b.lastErr = err
		b.closeBody()
	}
}

// checkTrailing fails the stream if the server has more bytes than the
// descriptor's size.
func (b *blobReader) checkTrailing() error {
	var one [1]byte
	n, _ := io.ReadFull(b.body, one[:])
	if n > 0 {
		return b.o.errorf(ErrInvalid, "the descriptor's size is wrong or the registry is corrupting content",
			"blob from %s is longer than its %d-byte descriptor size", b.ep, b.size)
	}
	return nil
}

// resume reopens the stream at b.pos after a failure, with backoff.
func (b *blobReader) resume() error {
	for {
		if b.failures >= b.c.opts.Retries {
			return &Error{Op: b.o.op, Ref: b.o.ref, Kind: ErrUnavailable,
				Msg:  fmt.Sprintf("download from %s failed at byte %d of %d after %d resumptions", b.ep, b.pos, b.size, b.failures),
				Err:  b.lastErr,
				Hint: "try again: the download resumes where it stopped"}
		}
		b.failures++
		wait := b.c.opts.Backoff << (b.failures - 1)
		if err := sleep(b.ctx, min(wait, b.c.opts.MaxBackoff)); err != nil {
			return &Error{Op: b.o.op, Ref: b.o.ref, Kind: ErrUnavailable, Msg: "interrupted", Err: err}
		}
		err := b.open()
		if err == nil {
			return nil
		}
		var e *Error
		if errors.As(err, &e) && (e.Kind == ErrNotFound || e.Kind == ErrUnauthorized || e.Kind == ErrInvalid) {
			return err
		}
		b.lastErr = err
	}
}

// Close ends the stream.
func (b *blobReader) Close() error {
	if !b.closed {
		b.closed = true
		b.closeBody()
		b.cancel()
	}
	return nil
}

// RangeRequests returns how many Range requests a stream from FetchBlob has
// made (0 for other readers).
func RangeRequests(rc io.ReadCloser) int {
	if b, ok := rc.(*blobReader); ok {
		return b.ranges
	}
	return 0
}

// VerifyReader wraps a stream of the whole of desc's content (from offset
// 0): at its end, if the size or digest differ from desc, Read returns an
// ErrInvalid error instead of io.EOF. Callers must read to io.EOF before
// trusting the bytes.
func VerifyReader(rc io.ReadCloser, desc ocispec.Descriptor) io.ReadCloser {
	d, err := reference.ParseDigest(string(desc.Digest))
	return &verifyReader{rc: rc, desc: desc, v: d.Verifier(), err: err}
}

type verifyReader struct {
	rc   io.ReadCloser
	desc ocispec.Descriptor
	v    *reference.Verifier
	err  error
}

func (r *verifyReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, &Error{Op: "verify", Ref: string(r.desc.Digest), Kind: ErrInvalid, Msg: "bad digest", Err: r.err}
	}
	n, err := r.rc.Read(p)
	r.v.Write(p[:n])
	if r.v.Size() > r.desc.Size {
		return n, &Error{Op: "verify", Ref: string(r.desc.Digest), Kind: ErrInvalid,
			Msg: fmt.Sprintf("content is longer than its %d-byte size", r.desc.Size)}
	}
	if err == io.EOF {
		if r.v.Size() != r.desc.Size {
			return n, &Error{Op: "verify", Ref: string(r.desc.Digest), Kind: ErrInvalid,
				Msg: fmt.Sprintf("content is %d bytes, want %d", r.v.Size(), r.desc.Size)}
		}
		if !r.v.Verified() {
			return n, &Error{Op: "verify", Ref: string(r.desc.Digest), Kind: ErrInvalid,
				Msg: "content has digest " + r.v.Digest().String(), Hint: "the registry or a proxy is corrupting content"}
		}
	}
	return n, err
}

func (r *verifyReader) Close() error { return r.rc.Close() }

// ReadBlob fetches a small blob whole (a config: at most max bytes) and
// verifies it.
func (c *Client) ReadBlob(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor, max int64) ([]byte, error) {
	if desc.Size > max {
		return nil, &Error{Op: "fetch blob", Ref: ref.Name() + "@" + string(desc.Digest), Kind: ErrInvalid,
			Msg: fmt.Sprintf("blob is %d bytes, over the %d limit", desc.Size, max)}
	}
	rc, err := c.FetchBlob(ctx, ref, desc, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(VerifyReader(rc, desc))
}

// ListTags returns the tags of repo's repository, following Link
// pagination.
func (c *Client) ListTags(ctx context.Context, repo reference.Reference) ([]string, error) {
	o := opRef{"list tags", repo.Name()}
	var tags []string
	err := c.onEndpoints(ctx, repo.Registry(), func(ep endpoint) error {
		tags = nil
		path := repoPath(repo) + "/tags/list"
		var next *url.URL
		for page := 0; page < 10000; page++ {
			rq := &request{method: http.MethodGet, path: path, url: next, scopes: pullScopes(repo), replayable: true}
			resp, err := c.do(ctx, o, ep, rq)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return o.fromResponse(resp, nil, "GET tags on "+ep.String(), "check the repository name")
			}
			var body struct {
				Tags []string `json:"tags"`
			}
			err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body)
			resp.Body.Close()
			if err != nil {
				return o.errorf(ErrInvalid, "", "bad tag list from %s: %v", ep, err)
			}
			tags = append(tags, body.Tags...)
			link := nextLink(resp.Header.Get("Link"))
			if link == "" {
				return nil
			}
			base := resp.Request.URL
			lu, err := base.Parse(link)
			if err != nil || lu.Host != base.Host {
				return o.errorf(ErrInvalid, "", "bad Link header %q from %s", link, ep)
			}
			next = lu
		}
		return nil
	})
	return tags, err
}

// nextLink extracts the URL of `<url>; rel="next"`.
func nextLink(h string) string {
	for _, part := range strings.Split(h, ",") {
		u, params, ok := strings.Cut(part, ";")
		if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
			continue
		}
		u = strings.TrimSpace(u)
		if strings.HasPrefix(u, "<") && strings.HasSuffix(u, ">") {
			return u[1 : len(u)-1]
		}
	}
	return ""
}
