package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/berth-dev/berth/internal/image/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PushOutcome says how PushBlob got a blob onto the registry.
type PushOutcome int

const (
	// BlobExisted: the registry had the blob already (HEAD said so).
	BlobExisted PushOutcome = iota + 1
	// BlobMounted: mounted from another repository (201 to the mount POST).
	BlobMounted
	// BlobUploaded: uploaded in one PUT.
	BlobUploaded
	// BlobUploadedChunked: uploaded in PATCH chunks.
	BlobUploadedChunked
)

func (p PushOutcome) String() string {
	switch p {
	case BlobExisted:
		return "existed"
	case BlobMounted:
		return "mounted"
	case BlobUploaded:
		return "uploaded"
	case BlobUploadedChunked:
		return "uploaded in chunks"
	}
	return "PushOutcome(" + strconv.Itoa(int(p)) + ")"
}

func pushScopes(ref reference.Reference) []string {
	return []string{"repository:" + ref.Repository() + ":pull,push"}
}

// PushBlob puts the blob desc into repo's repository on its registry
// (never a mirror). It skips the upload when the registry has it, tries
// to mount it from each of from (same registry only; others are ignored),
// and else uploads what open returns: in one PUT below
// Options.ChunkSize, in chunks of that size otherwise. open may be called
// more than once (retrying after a refused authentication); each call must
// return the content from its start. The registry checks the digest of the
// upload; the size is checked here.
func (c *Client) PushBlob(ctx context.Context, repo reference.Reference, desc ocispec.Descriptor, open func() (io.ReadCloser, error), from []reference.Reference) (PushOutcome, error) {
	o := opRef{"push blob", repo.Name() + "@" + string(desc.Digest)}
	d, err := reference.ParseDigest(string(desc.Digest))
	if err != nil {
		return 0, &Error{Op: o.op, Ref: o.ref, Kind: ErrInvalid, Msg: "bad descriptor digest", Err: err}
	}
	if desc.Size < 0 {
		return 0, o.errorf(ErrInvalid, "", "negative size %d", desc.Size)
	}
	ep := c.upstream(repo.Registry())
	scopes := pushScopes(repo)

	// 1. Present already?
	resp, err := c.do(ctx, o, ep, &request{method: http.MethodHead, path: repoPath(repo) + "/blobs/" + d.String(), scopes: scopes})
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return BlobExisted, nil
	}

	// 2. Mount, or open a session.
	var loc *url.URL
	for _, f := range from {
		if f.Registry() != repo.Registry() || f.Repository() == repo.Repository() {
			continue
		}
		q := url.Values{"mount": {d.String()}, "from": {f.Repository()}}
		sc := append(append([]string(nil), scopes...), "repository:"+f.Repository()+":pull")
		resp, err := c.do(ctx, o, ep, &request{method: http.MethodPost, path: repoPath(repo) + "/blobs/uploads/?" + q.Encode(), scopes: sc})
		if err != nil {
			return 0, err
		}
		switch resp.StatusCode {
		case http.StatusCreated:
			resp.Body.Close()
			return BlobMounted, nil
		case http.StatusAccepted:
			resp.Body.Close()
			loc, err = location(resp)
			if err != nil {
				return 0, o.errorf(ErrInvalid, "", "mount POST on %s: %v", ep, err)
			}
		default:
			return 0, o.fromResponse(resp, nil, "mount POST on "+ep.String(), "")
		}
		break
	}
	if loc == nil {
		resp, err := c.do(ctx, o, ep, &request{method: http.MethodPost, path: repoPath(repo) + "/blobs/uploads/", scopes: scopes})
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusAccepted {
			return 0, o.fromResponse(resp, nil, "starting an upload on "+ep.String(), "check you may push to "+repo.Name())
		}
		resp.Body.Close()
		if loc, err = location(resp); err != nil {
			return 0, o.errorf(ErrInvalid, "", "upload POST on %s: %v", ep, err)
		}
	}

	// 3. Upload.
	if desc.Size < c.opts.ChunkSize {
		put := withQuery(loc, "digest", d.String())
		body := func() (io.ReadCloser, error) {
			rc, err := open()
			if err != nil {
				return nil, err
			}
			return &sizedReader{rc: rc, n: desc.Size}, nil
		}
		resp, err := c.do(ctx, o, ep, &request{method: http.MethodPut, url: put, body: body, size: desc.Size,
			header: http.Header{"Content-Type": {"application/octet-stream"}}, scopes: scopes})
		if err != nil {
			return 0, err
		}
		if err := c.checkPut(o, ep, resp, d); err != nil {
			return 0, err
		}
		return BlobUploaded, nil
	}
	rc, err := open()
	if err != nil {
		return 0, o.errorf(ErrInvalid, "", "opening content: %v", err)
	}
	defer rc.Close()
	buf := make([]byte, c.opts.ChunkSize)
	var sent int64
	for sent < desc.Size {
		n, err := io.ReadFull(rc, buf[:min(int64(len(buf)), desc.Size-sent)])
		if err != nil {
			return 0, o.errorf(ErrInvalid, "", "content ended at byte %d of %d: %v", sent+int64(n), desc.Size, err)
		}
		chunk := buf[:n]
		hdr := http.Header{
			"Content-Type":  {"application/octet-stream"},
			"Content-Range": {fmt.Sprintf("%d-%d", sent, sent+int64(n)-1)},
		}
		resp, err := c.do(ctx, o, ep, &request{method: http.MethodPatch, url: loc, header: hdr, size: int64(n), scopes: scopes,
			body: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(chunk)), nil }})
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusAccepted {
			return 0, o.fromResponse(resp, nil, fmt.Sprintf("uploading bytes %d-%d to %s", sent, sent+int64(n)-1, ep), "try again")
		}
		resp.Body.Close()
		if loc, err = location(resp); err != nil {
			return 0, o.errorf(ErrInvalid, "", "chunk upload on %s: %v", ep, err)
		}
		sent += int64(n)
	}
	var extra [1]byte
	if n, _ := rc.Read(extra[:]); n > 0 {
		return 0, o.errorf(ErrInvalid, "", "content is longer than the descriptor's %d bytes", desc.Size)
	}
	resp, err = c.do(ctx, o, ep, &request{method: http.MethodPut, url: withQuery(loc, "digest", d.String()), scopes: scopes})
	if err != nil {
		return 0, err
	}
	if err := c.checkPut(o, ep, resp, d); err != nil {
		return 0, err
	}
	return BlobUploadedChunked, nil
}

func (c *Client) checkPut(o opRef, ep endpoint, resp *http.Response, d reference.Digest) error {
	if resp.StatusCode != http.StatusCreated {
		return o.fromResponse(resp, nil, "completing the upload on "+ep.String(), "check the content matches its descriptor")
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != d.String() {
		return o.errorf(ErrInvalid, "", "%s stored digest %s, want %s", ep, got, d)
	}
	return nil
}

// location resolves a response's Location against its request URL.
func location(resp *http.Response) (*url.URL, error) {
	l := resp.Header.Get("Location")
	if l == "" {
		return nil, fmt.Errorf("no Location header")
	}
	return resp.Request.URL.Parse(l)
}

func withQuery(u *url.URL, k, v string) *url.URL {
	cp := *u
	q := cp.Query()
	q.Set(k, v)
	cp.RawQuery = q.Encode()
	return &cp
}

// sizedReader fails if its content is shorter or longer than n bytes.
type sizedReader struct {
	rc   io.ReadCloser
	n    int64
	read int64
}

func (s *sizedReader) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	s.read += int64(n)
	if s.read > s.n {
		return n, fmt.Errorf("content is longer than the descriptor's %d bytes", s.n)
	}
	if err == io.EOF && s.read < s.n {
		return n, fmt.Errorf("content is %d bytes, want %d", s.read, s.n)
	}
	return n, err
}

func (s *sizedReader) Close() error { return s.rc.Close() }

// BytesOpener returns an open function for PushBlob over data.
func BytesOpener(data []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
}

// PushManifest stores a manifest or index under ref's tag (or, without a
// tag, its digest) on its registry and returns its descriptor. When ref has
// a digest, data must have it.
func (c *Client) PushManifest(ctx context.Context, ref reference.Reference, mediaType string, data []byte) (ocispec.Descriptor, error) {
	o := opRef{"push", ref.String()}
	if len(data) > MaxManifestSize {
		return ocispec.Descriptor{}, o.errorf(ErrInvalid, "", "manifest is %d bytes, over the %d limit", len(data), MaxManifestSize)
	}
	if !IsManifestMediaType(mediaType) && !IsIndexMediaType(mediaType) {
		return ocispec.Descriptor{}, o.errorf(ErrInvalid, "", "unsupported manifest media type %q", mediaType)
	}
	if _, err := manifestMediaType(mediaType, data); err != nil {
		return ocispec.Descriptor{}, &Error{Op: o.op, Ref: o.ref, Kind: ErrInvalid, Msg: err.Error()}
	}
	d := manifestDigest(ref, data)
	if want := ref.Digest(); !want.IsZero() && want != d {
		return ocispec.Descriptor{}, o.errorf(ErrInvalid, "", "manifest has digest %s, not the reference's", d)
	}
	target := ref.Tag()
	if target == "" {
		target = d.String()
	}
	ep := c.upstream(ref.Registry())
	resp, err := c.do(ctx, o, ep, &request{method: http.MethodPut, path: repoPath(ref) + "/manifests/" + target,
		header: http.Header{"Content-Type": {mediaType}}, size: int64(len(data)), scopes: pushScopes(ref),
		body: BytesOpener(data), replayable: true})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if resp.StatusCode != http.StatusCreated {
		hint := "push the blobs and manifests it references first"
		return ocispec.Descriptor{}, o.fromResponse(resp, nil, "PUT manifest on "+ep.String(), hint)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != d.String() {
		return ocispec.Descriptor{}, o.errorf(ErrInvalid, "", "%s stored digest %s, want %s", ep, got, d)
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.Digest(d.String()), Size: int64(len(data))}, nil
}
