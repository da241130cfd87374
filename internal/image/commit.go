package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/image/archive"
	"github.com/berth-dev/berth/internal/image/content"
	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/berth-dev/berth/internal/image/remote"
)

// CommitOptions describe an image made of a base image and one layer
// more (docker commit).
type CommitOptions struct {
	Base Record
	// Layer is the new layer: an uncompressed tar with OCI whiteouts.
	Layer io.Reader
	// Change edits the config's "config" object (docker's keys: Cmd,
	// Env, ...) in place; nil leaves it as the base's.
	Change func(cfg map[string]any) error
	// Author and Comment go into the config and the new history entry,
	// CreatedBy into the history entry.
	Author, Comment, CreatedBy string
	// Name, if set, names the new image (NAME[:TAG]).
	Name string
	// Platform is a base-less image's (an import's): os/arch[/variant],
	// empty for the host's. An image with a base has the base's.
	Platform string
}

// importRepository names an import given no name, at its manifest's
// digest (localhost/imported@sha256:...): every record has a name, and such an
// image lists untagged, as docker's <none>.
const importRepository = "localhost/imported"

// scratch is a base-less image's empty config and manifest (OCI).
func scratch(platform string) (Record, []byte, []byte, error) {
	p, err := remote.ParsePlatform(platform)
	if err != nil {
		return Record{}, nil, nil, fmt.Errorf("%w: platform %q: %v", ErrInvalid, platform, err)
	}
	cfg := map[string]any{"architecture": p.Architecture, "os": p.OS, "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []any{}}, "history": []any{}}
	if p.Variant != "" {
		cfg["variant"] = p.Variant
	}
	c, _ := json.Marshal(cfg)
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest, "layers": []any{}})
	return Record{Platform: p.String(),
		Config:   ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig},
		Manifest: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest}}, c, m, nil
}

// Commit stores a new image: the layer as a gzip blob and a snapshot, a
// config that is the base's with the layer, the changes and a history
// entry added (docker's own fields, such as Healthcheck, kept), and a
// manifest of the base's kind. Without a base (a zero Base: an import),
// the config and manifest start empty (OCI), for o.Platform. It returns
// the new image's record.
func (s *Service) Commit(ctx context.Context, o CommitOptions) (Record, error) {
	var baseConfig, baseManifest []byte
	op, layerIs := "commit", "the container's changes"
	if o.Base.Config.Digest == "" {
		op, layerIs = "import", "the tarball"
		var err error
		if o.Base, baseConfig, baseManifest, err = scratch(o.Platform); err != nil {
			return Record{}, err
		}
		if o.Name == "" {
			o.Base.Name = importRepository
		}
	}
	var name reference.Reference
	if o.Name != "" {
		ref, err := reference.Parse(o.Name)
		if err != nil {
			return Record{}, fmt.Errorf("%s: %w: %v", op, ErrInvalid, err)
		}
		if ref.Digest().String() != "" {
			return Record{}, fmt.Errorf("%s: %w: name the image with a tag, not a digest", op, ErrInvalid)
		}
		name = ref
	}
	unlock, err := s.holdGC(ctx)
	if err != nil {
		return Record{}, err
	}
	defer unlock()

	// The layer: its uncompressed digest (the diffID) while it is kept
	// in a temporary file, then compressed into the content store.
	tmp, err := os.CreateTemp(s.content.Root(), ".commit-*")
	if err != nil {
		return Record{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), o.Layer); err != nil {
		return Record{}, fmt.Errorf("%s: %s: %w", op, layerIs, err)
	}
	diffID := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return Record{}, err
	}
	w, err := s.content.Writer(ctx, "commit-"+diffID, "", content.UnknownSize)
	if err != nil {
		return Record{}, err
	}
	cw := &countWriter{w: w}
	gz := gzip.NewWriter(cw)
	if _, err := io.Copy(gz, tmp); err != nil {
		w.Abort()
		return Record{}, err
	}
	if err := gz.Close(); err != nil {
		w.Abort()
		return Record{}, err
	}
	layerDigest := w.Digest()
	if err := w.Commit(ctx); err != nil && !content.IsAlreadyExists(err) {
		return Record{}, err
	}
	layerType := ocispec.MediaTypeImageLayerGzip
	if o.Base.Manifest.MediaType == remote.MediaTypeDockerManifest {
		layerType = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	}
	layer := ocispec.Descriptor{MediaType: layerType, Digest: digest.Digest(layerDigest), Size: cw.n}
	if _, err := s.snapshots.Unpack(ctx, diffID, func(ctx context.Context, dir string) (int64, int, error) {
		return s.unpackLocal(ctx, layer, diffID, dir, nil)
	}); err != nil {
		return Record{}, fmt.Errorf("%s: unpack the new layer: %w", op, err)
	}

	// The config, as JSON: fields berth does not model stay as they are.
	base := baseConfig
	if base == nil {
		if base, err = s.readBlob(o.Base.Config.Digest.String()); err != nil {
			return Record{}, err
		}
	}
	var cfg map[string]any
	if err := json.Unmarshal(base, &cfg); err != nil {
		return Record{}, fmt.Errorf("%s: the base config: %w: %v", op, ErrInvalid, err)
	}
	now := time.Now().UTC()
	inner, _ := cfg["config"].(map[string]any)
	if inner == nil {
		inner = map[string]any{}
	}
	if o.Change != nil {
		if err := o.Change(inner); err != nil {
			return Record{}, err
		}
	}
	cfg["config"] = inner
	cfg["created"] = now.Format(time.RFC3339Nano)
	if o.Author != "" {
		cfg["author"] = o.Author
	}
	rootfs, _ := cfg["rootfs"].(map[string]any)
	if rootfs == nil {
		rootfs = map[string]any{"type": "layers"}
	}
	ids, _ := rootfs["diff_ids"].([]any)
	rootfs["diff_ids"] = append(ids, diffID)
	cfg["rootfs"] = rootfs
	hist, _ := cfg["history"].([]any)
	entry := map[string]any{"created": now.Format(time.RFC3339Nano), "created_by": o.CreatedBy}
	if o.Author != "" {
		entry["author"] = o.Author
	}
	if o.Comment != "" {
		entry["comment"] = o.Comment
	}
	cfg["history"] = append(hist, entry)
	cfgBytes, err := json.Marshal(cfg)
	if err != nil {
		return Record{}, err
	}
	cfgDesc := ocispec.Descriptor{MediaType: o.Base.Config.MediaType, Digest: digest.FromBytes(cfgBytes), Size: int64(len(cfgBytes))}
	if err := s.putBlob(ctx, cfgDesc, cfgBytes); err != nil {
		return Record{}, err
	}

	// The manifest, of the base's kind.
	mbase := baseManifest
	if mbase == nil {
		if mbase, err = s.readBlob(o.Base.Manifest.Digest.String()); err != nil {
			return Record{}, err
		}
	}
	var man map[string]any
	if err := json.Unmarshal(mbase, &man); err != nil {
		return Record{}, fmt.Errorf("%s: the base manifest: %w: %v", op, ErrInvalid, err)
	}
	delete(man, "annotations")
	man["config"] = cfgDesc
	layers, _ := man["layers"].([]any)
	man["layers"] = append(layers, layer)
	mBytes, err := json.Marshal(man)
	if err != nil {
		return Record{}, err
	}
	mDesc := ocispec.Descriptor{MediaType: o.Base.Manifest.MediaType, Digest: digest.FromBytes(mBytes), Size: int64(len(mBytes))}
	if err := s.putBlob(ctx, mDesc, mBytes); err != nil {
		return Record{}, err
	}

	rec := Record{Target: mDesc, Manifest: mDesc, Config: cfgDesc,
		Layers:   append(append([]ocispec.Descriptor(nil), o.Base.Layers...), layer),
		DiffIDs:  append(append([]string(nil), o.Base.DiffIDs...), diffID),
		Platform: o.Base.Platform, Created: now, Pulled: now}
	if !name.IsZero() {
		rec.Name = name.String()
	} else {
		// Unnamed: the base's repository at the new manifest's digest,
		// as an image pulled by digest is named.
		base, err := reference.Parse(o.Base.Name)
		if err == nil {
			rec.Name, err = unnamed(base, mDesc.Digest)
		}
		if err != nil {
			return Record{}, fmt.Errorf("%s: name the new image: %w", op, err)
		}
	}
	if err := s.records.update(ctx, func(m map[string]Record) error {
		m[rec.Name] = rec
		return nil
	}); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// countWriter counts what it passes on.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ImportOptions describe an image made of one root file system tarball
// (docker import).
type ImportOptions struct {
	// Tarball is the root file system: a tar, plain, gzip or zstd.
	Tarball io.Reader
	// Change, Comment, Name and Platform are as CommitOptions'.
	Change  func(cfg map[string]any) error
	Comment string
	Name    string
	// Platform: os/arch[/variant] of the new image; empty for the host's.
	Platform string
}

// Import stores an image of one layer, the tarball (its entries checked
// as a pulled layer's are), with an empty config the changes edit, and
// records an "import" event.
func (s *Service) Import(ctx context.Context, o ImportOptions) (Record, error) {
	r, _, err := archive.DecompressStream(o.Tarball)
	if err != nil {
		return Record{}, fmt.Errorf("import: %w: %v", ErrInvalid, err)
	}
	defer r.Close()
	rec, err := s.Commit(ctx, CommitOptions{Layer: r, Change: o.Change, Comment: o.Comment, Name: o.Name, Platform: o.Platform})
	if err != nil {
		return Record{}, err
	}
	s.emit("import", rec.ID(), rec.ID())
	return rec, nil
}
