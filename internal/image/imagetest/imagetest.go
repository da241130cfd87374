// Package imagetest builds OCI images in memory for tests: layers from
// lists of tar entries (gzip, zstd or uncompressed), configs, manifests and
// multi-platform indexes, and pushes them to a registrytest registry.
package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/image/archive"
	"github.com/berth-dev/berth/internal/image/registrytest"
	"github.com/berth-dev/berth/internal/image/remote"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Entry is one tar entry of a layer.
type Entry struct {
	Name     string
	Type     byte // tar.TypeReg when 0
	Mode     int64
	Body     string
	Linkname string
	UID, GID int
	Xattrs   map[string]string
	Devmajor int64
	Devminor int64
	ModTime  time.Time
}

// Compression of a built layer.
type Compression int

const (
	Gzip Compression = iota
	Zstd
	Uncompressed
)

// Layer is a built layer: its blob, descriptor and diffID.
type Layer struct {
	Blob   []byte
	Desc   ocispec.Descriptor
	DiffID digest.Digest
}

// Tar builds an uncompressed tar of entries.
func Tar(t testing.TB, entries []Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		mt := e.ModTime
		if mt.IsZero() {
			mt = time.Unix(1700000000, 0)
		}
		h := &tar.Header{Name: e.Name, Typeflag: typ, Mode: mode, Linkname: e.Linkname,
			Uid: e.UID, Gid: e.GID, ModTime: mt, Devmajor: e.Devmajor, Devminor: e.Devminor,
			Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if len(e.Xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("imagetest: tar header %s: %v", e.Name, err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// NewLayer builds a layer of entries with the given compression.
func NewLayer(t testing.TB, c Compression, entries []Entry) Layer {
	t.Helper()
	return LayerFromTar(t, c, Tar(t, entries))
}

// LayerFromTar compresses a tar into a layer.
func LayerFromTar(t testing.TB, c Compression, tarball []byte) Layer {
	t.Helper()
	var blob []byte
	var mt string
	switch c {
	case Gzip:
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(tarball)
		zw.Close()
		blob, mt = buf.Bytes(), ocispec.MediaTypeImageLayerGzip
	case Zstd:
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		blob, mt = enc.EncodeAll(tarball, nil), ocispec.MediaTypeImageLayerZstd
		enc.Close()
	default:
		blob, mt = tarball, ocispec.MediaTypeImageLayer
	}
	return Layer{Blob: blob, Desc: Descriptor(mt, blob), DiffID: digest.FromBytes(tarball)}
}

// Descriptor describes data.
func Descriptor(mediaType string, data []byte) ocispec.Descriptor {
	sum := sha256.Sum256(data)
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.Digest("sha256:" + hex.EncodeToString(sum[:])), Size: int64(len(data))}
}

// Image is a built single-platform image.
type Image struct {
	Layers   []Layer
	Config   []byte
	Manifest []byte
	// ConfigDesc and ManifestDesc describe Config and Manifest.
	ConfigDesc, ManifestDesc ocispec.Descriptor
}

// NewImage builds an image of layers for os/arch with the given process
// config.
func NewImage(t testing.TB, os, arch string, cfg ocispec.ImageConfig, layers ...Layer) Image {
	t.Helper()
	created := time.Unix(1700000000, 0).UTC()
	img := ocispec.Image{Created: &created, Platform: ocispec.Platform{OS: os, Architecture: arch},
		Config: cfg, RootFS: ocispec.RootFS{Type: "layers"}}
	man := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest}
	man.SchemaVersion = 2
	for _, l := range layers {
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, l.DiffID)
		man.Layers = append(man.Layers, l.Desc)
	}
	if man.Layers == nil {
		man.Layers = []ocispec.Descriptor{}
	}
	cb, err := json.Marshal(img)
	if err != nil {
		t.Fatal(err)
	}
	man.Config = Descriptor(ocispec.MediaTypeImageConfig, cb)
	mb, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	md := Descriptor(ocispec.MediaTypeImageManifest, mb)
	md.Platform = &ocispec.Platform{OS: os, Architecture: arch}
	return Image{Layers: layers, Config: cb, Manifest: mb, ConfigDesc: man.Config, ManifestDesc: md}
}

// Push uploads the image's blobs and manifest to repo:tag and returns the
// manifest digest.
func (img Image) Push(t testing.TB, r *registrytest.Registry, repo, tag string) string {
	t.Helper()
	img.PushBlobs(t, r, repo)
	return r.PushManifest(t, repo, tag, ocispec.MediaTypeImageManifest, img.Manifest)
}

// PushBlobs uploads the config and layers.
func (img Image) PushBlobs(t testing.TB, r *registrytest.Registry, repo string) {
	t.Helper()
	for _, l := range img.Layers {
		r.PushBlob(t, repo, l.Blob)
	}
	r.PushBlob(t, repo, img.Config)
}

// Index builds an OCI index of images (their ManifestDesc carry the
// platforms).
func Index(t testing.TB, imgs ...Image) []byte {
	t.Helper()
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for _, img := range imgs {
		idx.Manifests = append(idx.Manifests, img.ManifestDesc)
	}
	b, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// PushIndex pushes every image by digest, then the index as repo:tag, and
// returns the index digest.
func PushIndex(t testing.TB, r *registrytest.Registry, repo, tag string, imgs ...Image) string {
	t.Helper()
	for _, img := range imgs {
		img.PushBlobs(t, r, repo)
		r.PushManifest(t, repo, img.ManifestDesc.Digest.String(), ocispec.MediaTypeImageManifest, img.Manifest)
	}
	return r.PushManifest(t, repo, tag, ocispec.MediaTypeImageIndex, Index(t, imgs...))
}

// Docker's schema-2 media types, as the registry client and the applier
// name them.
const (
	DockerManifest     = remote.MediaTypeDockerManifest
	DockerManifestList = remote.MediaTypeDockerManifestList
	DockerConfig       = remote.MediaTypeDockerConfig
	DockerLayerGzip    = archive.MediaTypeDockerLayerGzip
)

// Docker returns the image re-expressed with Docker schema-2 media types
// (as docker push and most of Docker Hub serve): the same config and
// gzip layers, a new manifest.
func (img Image) Docker(t testing.TB) Image {
	t.Helper()
	var man ocispec.Manifest
	if err := json.Unmarshal(img.Manifest, &man); err != nil {
		t.Fatal(err)
	}
	man.MediaType = DockerManifest
	man.Config.MediaType = DockerConfig
	out := img
	out.Layers = append([]Layer(nil), img.Layers...)
	for i := range man.Layers {
		if man.Layers[i].MediaType != ocispec.MediaTypeImageLayerGzip {
			t.Fatalf("imagetest: Docker schema 2 has no media type for %s layers", man.Layers[i].MediaType)
		}
		man.Layers[i].MediaType = DockerLayerGzip
		out.Layers[i].Desc.MediaType = DockerLayerGzip
	}
	mb, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	out.Manifest = mb
	out.ConfigDesc = man.Config
	out.ManifestDesc = Descriptor(DockerManifest, mb)
	out.ManifestDesc.Platform = img.ManifestDesc.Platform
	return out
}

// PushDocker uploads a Docker-typed image (see Docker) as repo:tag.
func (img Image) PushDocker(t testing.TB, r *registrytest.Registry, repo, tag string) string {
	t.Helper()
	img.PushBlobs(t, r, repo)
	return r.PushManifest(t, repo, tag, DockerManifest, img.Manifest)
}

// PushDockerList pushes Docker-typed images by digest and a manifest list
// of them as repo:tag, and returns the list's digest.
func PushDockerList(t testing.TB, r *registrytest.Registry, repo, tag string, imgs ...Image) string {
	t.Helper()
	list := ocispec.Index{MediaType: DockerManifestList}
	list.SchemaVersion = 2
	for _, img := range imgs {
		img.PushBlobs(t, r, repo)
		r.PushManifest(t, repo, img.ManifestDesc.Digest.String(), DockerManifest, img.Manifest)
		list.Manifests = append(list.Manifests, img.ManifestDesc)
	}
	b, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	return r.PushManifest(t, repo, tag, DockerManifestList, b)
}
