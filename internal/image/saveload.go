package image

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/image/archive"
	"github.com/berth-dev/berth/internal/image/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ArchiveFormat is the layout of an image archive (`berth save`/`load`).
type ArchiveFormat int

const (
	// OCIArchive is an OCI image layout (oci-layout, index.json,
	// blobs/<alg>/<hex>) as a tar, as `skopeo copy oci-archive:` and
	// containerd read and write. Blobs are written as stored (layers
	// compressed as pulled).
	OCIArchive ArchiveFormat = iota
	// DockerArchive is the `docker save` format: manifest.json, the
	// configs, every layer as an uncompressed tar, and the legacy
	// repositories file. Paths follow docker 25+ (blobs/sha256/<hex>, the
	// layer's hex being its diffID), which every docker load and
	// `skopeo copy docker-archive:` read.
	DockerArchive
)

// String returns "oci-archive" or "docker-archive".
func (f ArchiveFormat) String() string {
	switch f {
	case OCIArchive:
		return "oci-archive"
	case DockerArchive:
		return "docker-archive"
	}
	return fmt.Sprintf("ArchiveFormat(%d)", int(f))
}

// ParseArchiveFormat reads "oci-archive" (or "oci") and "docker-archive"
// (or "docker").
func ParseArchiveFormat(s string) (ArchiveFormat, error) {
	switch s {
	case "oci-archive", "oci":
		return OCIArchive, nil
	case "docker-archive", "docker":
		return DockerArchive, nil
	}
	return 0, fmt.Errorf("unknown archive format %q: use oci-archive or docker-archive", s)
}

// Annotations of index.json entries naming an image.
const (
	// AnnotationRefName is the OCI one; berth writes the tag ("v1"), as
	// containerd does, so that `skopeo ... oci-archive:FILE:v1` finds it.
	AnnotationRefName = ocispec.AnnotationRefName
	// AnnotationImageName is containerd's: the full name
	// ("docker.io/library/busybox:latest").
	AnnotationImageName = "io.containerd.image.name"
)

// archiveTime is the modification time of every entry Save writes, so that
// saving the same images twice gives the same bytes.
var archiveTime = time.Unix(0, 0).UTC()

// savedImage is one image to save and the names it goes under.
type savedImage struct {
	rec   Record
	names []string // canonical record names
}

// Save writes the images named by names (names or IDs; an ID saves the
// image under every name it has) as one archive to w, each blob once. The
// tar is streamed: entries go to w as they are read from the store, nothing
// is built in memory or in a temporary file. For DockerArchive every
// compressed layer is decompressed twice (once to learn its size for the
// tar header, verifying its diffID, once to write it).
//
// An OCI archive has one index.json entry per name, pointing at the image's
// platform manifest (an index the image was pulled through is not saved:
// the archive holds only what the store has, the one platform).
func (s *Service) Save(ctx context.Context, w io.Writer, names []string, format ArchiveFormat) error {
	if format != OCIArchive && format != DockerArchive {
		return fmt.Errorf("save: %v: unknown format", format)
	}
	if len(names) == 0 {
		return errors.New("save: no image given")
	}
	// Shared GC lock: nothing this save reads is swept under it.
	unlock, err := s.holdGC(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	all, err := s.records.list(ctx)
	if err != nil {
		return err
	}
	var imgs []*savedImage
	byKey := map[string]*savedImage{}
	for _, n := range names {
		match, err := find(all, n)
		if err != nil {
			return fmt.Errorf("save: %w", err)
		}
		for _, r := range match {
			// OCI: one image per manifest; docker: one per image ID.
			key := r.Manifest.Digest.String()
			if format == DockerArchive {
				key = r.ID()
			}
			si := byKey[key]
			if si == nil {
				si = &savedImage{rec: r}
				byKey[key] = si
				imgs = append(imgs, si)
			}
			if !slices.Contains(si.names, r.Name) {
				si.names = append(si.names, r.Name)
			}
		}
	}
	tw := tar.NewWriter(w)
	if format == OCIArchive {
		err = s.saveOCI(ctx, tw, imgs)
	} else {
		err = s.saveDocker(ctx, tw, imgs)
	}
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	for _, si := range imgs {
		s.emit("save", si.rec.ID(), si.names[0])
	}
	return nil
}

func blobPath(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

func writeDirEntry(tw *tar.Writer, name string) error {
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755,
		ModTime: archiveTime, Format: tar.FormatPAX})
}

func writeFileEntry(tw *tar.Writer, name string, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644,
		Size: int64(len(data)), ModTime: archiveTime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// writeBlobEntry copies the stored blob desc to name, checking its size.
func (s *Service) writeBlobEntry(ctx context.Context, tw *tar.Writer, name string, desc ocispec.Descriptor) error {
	info, err := s.content.Info(desc.Digest.String())
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if info.Size != desc.Size {
		return fmt.Errorf("blob %s: %w: %d bytes stored, the descriptor says %d", desc.Digest, ErrInvalid, info.Size, desc.Size)
	}
	f, err := s.content.Open(desc.Digest.String())
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644,
		Size: desc.Size, ModTime: archiveTime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	n, err := io.CopyBuffer(tw, ctxReader{ctx, f}, make([]byte, 1<<20))
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if n != desc.Size {
		return fmt.Errorf("blob %s: %w: read %d bytes of %d", desc.Digest, ErrInvalid, n, desc.Size)
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (s *Service) saveOCI(ctx context.Context, tw *tar.Writer, imgs []*savedImage) error {
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	idx.SchemaVersion = 2
	for _, si := range imgs {
		base := si.rec.Manifest
		base.Annotations = nil
		if base.Platform == nil {
			if p, err := platformOf(si.rec.Platform); err == nil {
				base.Platform = p
			}
		}
		for _, n := range si.names {
			d := base
			d.Annotations = map[string]string{AnnotationImageName: n}
			if ref, err := reference.Parse(n); err == nil && ref.Tag() != "" {
				d.Annotations[AnnotationRefName] = ref.Tag()
			}
			idx.Manifests = append(idx.Manifests, d)
		}
	}
	ib, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := writeFileEntry(tw, ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"`+ocispec.ImageLayoutVersion+`"}`)); err != nil {
		return err
	}
	if err := writeFileEntry(tw, "index.json", ib); err != nil {
		return err
	}
	dirs := map[string]bool{}
	done := map[digest.Digest]bool{}
	put := func(desc ocispec.Descriptor) error {
		if done[desc.Digest] {
			return nil
		}
		done[desc.Digest] = true
		if err := desc.Digest.Validate(); err != nil {
			return fmt.Errorf("%w: digest %q: %v", ErrInvalid, desc.Digest, err)
		}
		for _, d := range []string{"blobs/", "blobs/" + desc.Digest.Algorithm().String() + "/"} {
			if !dirs[d] {
				dirs[d] = true
				if err := writeDirEntry(tw, d); err != nil {
					return err
				}
			}
		}
		return s.writeBlobEntry(ctx, tw, blobPath(desc.Digest), desc)
	}
	for _, si := range imgs {
		for _, d := range append([]ocispec.Descriptor{si.rec.Manifest, si.rec.Config}, si.rec.Layers...) {
			if err := put(d); err != nil {
				return err
			}
		}
	}
	return nil
}

func platformOf(s string) (*ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return nil, fmt.Errorf("platform %q", s)
	}
	p := &ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// dockerManifestEntry is one image of a docker-archive's manifest.json.
type dockerManifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

func (s *Service) saveDocker(ctx context.Context, tw *tar.Writer, imgs []*savedImage) error {
	var man []dockerManifestEntry
	repos := map[string]map[string]string{}
	for _, si := range imgs {
		if len(si.rec.Layers) != len(si.rec.DiffIDs) {
			return fmt.Errorf("image %s: %w: %d layers, %d diffIDs", si.rec.ID(), ErrInvalid, len(si.rec.Layers), len(si.rec.DiffIDs))
		}
		e := dockerManifestEntry{Config: blobPath(si.rec.Config.Digest), RepoTags: []string{}, Layers: []string{}}
		for _, d := range si.rec.DiffIDs {
			dd, err := digest.Parse(d)
			if err != nil {
				return fmt.Errorf("image %s: %w: diffID %q: %v", si.rec.ID(), ErrInvalid, d, err)
			}
			e.Layers = append(e.Layers, blobPath(dd))
		}
		for _, n := range si.names {
			ref, err := reference.Parse(n)
			if err != nil || ref.Tag() == "" {
				continue // a digest-only name has no place in RepoTags
			}
			tagged := ref
			if !ref.Digest().IsZero() {
				if tagged, err = reference.Parse(ref.Name() + ":" + ref.Tag()); err != nil {
					continue
				}
			}
			e.RepoTags = append(e.RepoTags, tagged.Familiar())
			if len(si.rec.DiffIDs) > 0 {
				top, _ := digest.Parse(si.rec.DiffIDs[len(si.rec.DiffIDs)-1])
				fn := tagged.FamiliarName()
				if repos[fn] == nil {
					repos[fn] = map[string]string{}
				}
				repos[fn][tagged.Tag()] = top.Encoded()
			}
		}
		man = append(man, e)
	}
	mb, err := json.Marshal(man)
	if err != nil {
		return err
	}
	if err := writeFileEntry(tw, "manifest.json", mb); err != nil {
		return err
	}
	if len(repos) > 0 {
		rb, err := json.Marshal(repos)
		if err != nil {
			return err
		}
		if err := writeFileEntry(tw, "repositories", rb); err != nil {
			return err
		}
	}
	if err := writeDirEntry(tw, "blobs/"); err != nil {
		return err
	}
	if err := writeDirEntry(tw, "blobs/sha256/"); err != nil {
		return err
	}
	done := map[string]bool{}
	for _, si := range imgs {
		if !done[si.rec.Config.Digest.String()] {
			done[si.rec.Config.Digest.String()] = true
			if si.rec.Config.Digest.Algorithm() != digest.SHA256 {
				return fmt.Errorf("image %s: a docker archive holds only sha256 digests", si.rec.ID())
			}
			if err := s.writeBlobEntry(ctx, tw, blobPath(si.rec.Config.Digest), si.rec.Config); err != nil {
				return err
			}
		}
		for i, l := range si.rec.Layers {
			diffID := si.rec.DiffIDs[i]
			if done[diffID] {
				continue
			}
			done[diffID] = true
			if err := s.writeUncompressedLayer(ctx, tw, l, diffID); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeUncompressedLayer writes the layer desc decompressed, as
// blobs/sha256/<diffID hex>.
func (s *Service) writeUncompressedLayer(ctx context.Context, tw *tar.Writer, desc ocispec.Descriptor, diffID string) error {
	dd, err := digest.Parse(diffID)
	if err != nil || dd.Algorithm() != digest.SHA256 {
		return fmt.Errorf("layer %s: %w: diffID %q is not a sha256 digest", desc.Digest, ErrInvalid, diffID)
	}
	name := blobPath(dd)
	comp, err := archive.MediaTypeCompression(desc.MediaType)
	if err != nil {
		return fmt.Errorf("layer %s: %w: %v", desc.Digest, ErrInvalid, err)
	}
	if comp == archive.None && desc.Digest == dd {
		return s.writeBlobEntry(ctx, tw, name, desc)
	}
	// First pass: the uncompressed size, and the diffID checked.
	size, err := s.uncompressed(ctx, desc, diffID, io.Discard)
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644,
		Size: size, ModTime: archiveTime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	n, err := s.uncompressed(ctx, desc, diffID, tw)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("layer %s: decompressed to %d bytes, then to %d", desc.Digest, size, n)
	}
	return nil
}

// uncompressed copies the decompressed layer to w, verifying its diffID,
// and returns its length.
func (s *Service) uncompressed(ctx context.Context, desc ocispec.Descriptor, diffID string, w io.Writer) (int64, error) {
	f, err := s.content.Open(desc.Digest.String())
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	defer f.Close()
	dr, _, err := archive.DecompressStream(f)
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	defer dr.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, h), ctxReader{ctx, dr}, make([]byte, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffID {
		return 0, fmt.Errorf("layer %s: %w: uncompressed digest is %s, the config says %s", desc.Digest, ErrInvalid, got, diffID)
	}
	return n, nil
}
