package image

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/image/archive"
	"github.com/berth-dev/berth/internal/image/content"
	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/berth-dev/berth/internal/image/remote"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// LoadOptions configures a Load.
type LoadOptions struct {
	// Name names what the archive leaves unnamed. An OCI index.json entry
	// whose only name is a bare tag (org.opencontainers.image.ref.name
	// "v1") gets Name's repository with that tag; an image with no name at
	// all gets "<Name's repository>@<manifest digest>". Without Name, an
	// archive holding such an image is refused (ErrInvalid) before any
	// layer is unpacked or any record written.
	Name string
	// Platform ("os/arch[/variant]", "" for the host's) selects the
	// manifest of an index.json entry that is itself an index.
	Platform string
}

// Limits of Load against hostile archives.
const (
	// maxArchiveEntries bounds the tar entries of an archive.
	maxArchiveEntries = 1 << 16
	// maxLinkHops bounds chains of links inside an archive.
	maxLinkHops = 16
)

// metadataFiles are the top-level files Load keeps in memory (at most
// maxMetadataSize each); every other file goes to the content store.
var metadataFiles = map[string]bool{
	"manifest.json":         true,
	"index.json":            true,
	ocispec.ImageLayoutFile: true,
	"repositories":          true,
}

// loadedFile is a file of the archive: stored as a blob, or (metadata) in
// memory.
type loadedFile struct {
	digest string // the blob's digest; "" for in-memory metadata
	size   int64
	data   []byte
	fresh  bool // committed by this load (not already in the store)
}

type loadState struct {
	s     *Service
	nonce string
	files map[string]*loadedFile
	links map[string]string // link path → target path, both cleaned
}

// Load reads an image archive from r — an OCI archive (oci-layout,
// index.json, blobs/...) or a docker-archive (manifest.json), either
// possibly gzip- or zstd-compressed — and records its images, returning
// their records. The tar is read once, streaming: every file except the
// small top-level metadata goes straight into the content store, a file
// under blobs/<alg>/<hex> checked against that digest (a mismatch is
// ErrInvalid and the blob never becomes visible), any other file (a
// docker-archive's <hex>/layer.tar, <hex>.json) stored under the digest
// its bytes have. When the tar has ended the manifests are resolved, every
// referenced blob checked, a docker-archive image given an OCI manifest
// (its layers uncompressed, application/vnd.oci.image.layer.v1.tar, unless
// the archive held them compressed), every layer unpacked into its
// snapshot with its diffID verified, and only then are records written.
//
// Names come from RepoTags (docker-archive) or from the
// io.containerd.image.name annotation, else org.opencontainers.image.ref.name
// (OCI), normalised as `berth pull` does; see LoadOptions.Name for images
// without one.
//
// Hostile archives are refused with ErrInvalid: entries that are absolute
// or hold "..", devices and other special files, links that point outside
// the archive, metadata files over 8 MiB, more than 65536 entries.
// Symlinks and hard links whose target stays inside the archive are read as
// aliases of that file (docker save writes them for repeated layers);
// nothing of the archive is ever created outside the content and snapshot
// stores. A failed Load writes no record and no partial layer; blobs it
// committed stay, unreferenced, until the next garbage collection.
func (s *Service) Load(ctx context.Context, r io.Reader, opts LoadOptions) ([]Record, error) {
	var base reference.Reference
	if opts.Name != "" {
		var err error
		if base, err = reference.Parse(opts.Name); err != nil {
			return nil, fmt.Errorf("load: --name: %w", err)
		}
	}
	plat, err := remote.ParsePlatform(opts.Platform)
	if err != nil {
		return nil, err
	}
	unlock, err := s.holdGC(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()

	var nb [8]byte
	rand.Read(nb[:])
	ls := &loadState{s: s, nonce: hex.EncodeToString(nb[:]), files: map[string]*loadedFile{}, links: map[string]string{}}
	if err := ls.read(ctx, r); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var recs []Record
	switch {
	case ls.files["index.json"] != nil:
		recs, err = ls.resolveOCI(ctx, plat, base)
	case ls.files["manifest.json"] != nil:
		recs, err = ls.resolveDocker(ctx, base)
	default:
		err = fmt.Errorf("%w: the archive has neither index.json (OCI) nor manifest.json (docker save)", ErrInvalid)
	}
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("load: %w: the archive holds no image", ErrInvalid)
	}
	if err := ls.unpack(ctx, recs); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	now := time.Now().UTC()
	for i := range recs {
		recs[i].Pulled = now
	}
	if err := s.records.update(ctx, func(m map[string]Record) error {
		for _, rec := range recs {
			m[rec.Name] = rec
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for _, rec := range recs {
		s.emit("load", rec.ID(), rec.Name)
	}
	return recs, nil
}

// cleanArchivePath checks an entry name and returns it cleaned, without a
// leading "./" ("." for the root).
func cleanArchivePath(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty entry name", ErrInvalid)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: entry %q is an absolute path", ErrInvalid, name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: entry %q leaves the archive (\"..\")", ErrInvalid, name)
		}
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: entry %q holds a NUL byte", ErrInvalid, name)
	}
	return path.Clean(name), nil
}

// blobPathDigest returns the digest that the path blobs/<alg>/<hex> names.
func blobPathDigest(p string) (string, bool) {
	parts := strings.Split(p, "/")
	if len(parts) != 3 || parts[0] != "blobs" {
		return "", false
	}
	d := digest.Digest(parts[1] + ":" + parts[2])
	if d.Validate() != nil {
		return "", false
	}
	return d.String(), true
}

// read takes in the whole tar.
func (ls *loadState) read(ctx context.Context, r io.Reader) error {
	dr, _, err := archive.DecompressStream(ctxReader{ctx, r})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	defer dr.Close()
	tr := tar.NewReader(dr)
	buf := make([]byte, 1<<20)
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: reading the archive (truncated, or not a tar?): %v", ErrInvalid, err)
		}
		if n >= maxArchiveEntries {
			return fmt.Errorf("%w: more than %d entries in the archive", ErrInvalid, maxArchiveEntries)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := cleanArchivePath(h.Name)
		if err != nil {
			return err
		}
		if ls.files[name] != nil || ls.links[name] != "" {
			return fmt.Errorf("%w: entry %q appears twice in the archive", ErrInvalid, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeSymlink, tar.TypeLink:
			if err := ls.addLink(name, h); err != nil {
				return err
			}
		case tar.TypeReg, '\x00':
			if err := ls.addFile(ctx, name, h, tr, buf); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: entry %q is of tar type %q: an image archive holds only files and directories",
				ErrInvalid, h.Name, string(h.Typeflag))
		}
	}
}

// addLink records a link as an alias of its target, which must stay inside
// the archive.
func (ls *loadState) addLink(name string, h *tar.Header) error {
	target := h.Linkname
	if target == "" || strings.HasPrefix(target, "/") {
		return fmt.Errorf("%w: link %q points to %q, outside the archive", ErrInvalid, h.Name, target)
	}
	if h.Typeflag == tar.TypeSymlink {
		target = path.Join(path.Dir(name), target)
	} else {
		target = path.Clean(target)
	}
	if target == ".." || strings.HasPrefix(target, "../") || target == "." {
		return fmt.Errorf("%w: link %q points to %q, outside the archive", ErrInvalid, h.Name, h.Linkname)
	}
	ls.links[name] = target
	return nil
}

func (ls *loadState) addFile(ctx context.Context, name string, h *tar.Header, r io.Reader, buf []byte) error {
	if h.Size < 0 {
		return fmt.Errorf("%w: entry %q has a negative size", ErrInvalid, h.Name)
	}
	if metadataFiles[name] {
		if h.Size > maxMetadataSize {
			return fmt.Errorf("%w: %s is %d bytes, more than the %d allowed", ErrInvalid, name, h.Size, maxMetadataSize)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("%w: reading %s: %v", ErrInvalid, name, err)
		}
		ls.files[name] = &loadedFile{size: int64(len(b)), data: b}
		return nil
	}
	expected, _ := blobPathDigest(name)
	w, err := ls.s.content.Writer(ctx, "load-"+ls.nonce+"-"+name, expected, h.Size)
	if content.IsAlreadyExists(err) {
		info, err := ls.s.content.Info(expected)
		if err != nil {
			return err
		}
		if info.Size != h.Size {
			return fmt.Errorf("%w: %s is %d bytes, blob %s has %d", ErrInvalid, name, h.Size, expected, info.Size)
		}
		if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
			return fmt.Errorf("%w: reading %s: %v", ErrInvalid, name, err)
		}
		ls.files[name] = &loadedFile{digest: expected, size: h.Size}
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(w, r, buf); err != nil {
		w.Abort()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, content.ErrSizeMismatch) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: reading %s: %v", ErrInvalid, name, err)
		}
		return fmt.Errorf("reading %s: %w", name, err)
	}
	dg := w.Digest()
	fresh := true
	if err := w.Commit(ctx); err != nil {
		switch {
		case content.IsAlreadyExists(err):
			fresh = false
		case errors.Is(err, content.ErrDigestMismatch), errors.Is(err, content.ErrSizeMismatch):
			return fmt.Errorf("%w: %s: %v", ErrInvalid, name, err)
		default:
			w.Abort()
			return err
		}
	}
	ls.files[name] = &loadedFile{digest: dg, size: h.Size, fresh: fresh}
	return nil
}

// lookup finds the file at p (a path from manifest.json), following links.
func (ls *loadState) lookup(p string) (*loadedFile, error) {
	clean, err := cleanArchivePath(p)
	if err != nil {
		return nil, err
	}
	for range maxLinkHops {
		if f := ls.files[clean]; f != nil {
			return f, nil
		}
		t, ok := ls.links[clean]
		if !ok {
			return nil, fmt.Errorf("%w: the archive has no file %q", ErrInvalid, p)
		}
		clean = t
	}
	return nil, fmt.Errorf("%w: too many links from %q", ErrInvalid, p)
}

// metadata returns the stored manifest or config desc, checking its size.
func (ls *loadState) metadata(desc ocispec.Descriptor) ([]byte, error) {
	if err := ls.checkBlob(desc); err != nil {
		return nil, err
	}
	if desc.Size > maxMetadataSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than the %d allowed for a manifest or config",
			ErrInvalid, desc.Digest, desc.Size, maxMetadataSize)
	}
	return ls.s.readBlob(desc.Digest.String())
}

// checkBlob makes sure desc is in the store (the archive put it there, its
// digest verified, or it was there already) with desc's size.
func (ls *loadState) checkBlob(desc ocispec.Descriptor) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("%w: digest %q: %v", ErrInvalid, desc.Digest, err)
	}
	info, err := ls.s.content.Info(desc.Digest.String())
	if err != nil {
		return fmt.Errorf("%w: blob %s is missing from the archive", ErrInvalid, desc.Digest)
	}
	if info.Size != desc.Size {
		return fmt.Errorf("%w: blob %s is %d bytes, its descriptor says %d", ErrInvalid, desc.Digest, info.Size, desc.Size)
	}
	return nil
}

// imageName turns an archive's name into a record name.
func imageName(s string) (string, error) {
	ref, err := reference.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: image name %q in the archive: %v", ErrInvalid, s, err)
	}
	return ref.String(), nil
}

// unnamed names an image the archive gives no name, from LoadOptions.Name.
func unnamed(base reference.Reference, manifest digest.Digest) (string, error) {
	if base.IsZero() {
		return "", fmt.Errorf("%w: image %s in the archive has no name: give one to load it under (LoadOptions.Name)", ErrInvalid, manifest)
	}
	d, err := reference.ParseDigest(manifest.String())
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	ref, err := base.WithDigest(d)
	if err == nil {
		ref, err = ref.WithoutTag()
	}
	if err != nil {
		return "", err
	}
	return ref.String(), nil
}

func (ls *loadState) resolveOCI(ctx context.Context, plat remote.Platform, base reference.Reference) ([]Record, error) {
	if lf := ls.files[ocispec.ImageLayoutFile]; lf != nil {
		var layout ocispec.ImageLayout
		if err := json.Unmarshal(lf.data, &layout); err != nil {
			return nil, fmt.Errorf("%w: oci-layout: %v", ErrInvalid, err)
		}
		if !strings.HasPrefix(layout.Version, "1.") {
			return nil, fmt.Errorf("%w: oci-layout version %q (berth reads 1.x)", ErrInvalid, layout.Version)
		}
	}
	var idx ocispec.Index
	if err := json.Unmarshal(ls.files["index.json"].data, &idx); err != nil {
		return nil, fmt.Errorf("%w: index.json: %v", ErrInvalid, err)
	}
	var recs []Record
	for _, m := range idx.Manifests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := ""
		switch full, refName := m.Annotations[AnnotationImageName], m.Annotations[AnnotationRefName]; {
		case full != "":
			n, err := imageName(full)
			if err != nil {
				return nil, err
			}
			name = n
		case refName != "" && !strings.ContainsAny(refName, "/:@"):
			// A bare tag, as containerd writes ("v1").
			if base.IsZero() {
				return nil, fmt.Errorf("%w: image %s in the archive is named only by the tag %q: give a repository to load it under (LoadOptions.Name)",
					ErrInvalid, m.Digest, refName)
			}
			ref, err := reference.Parse(base.Name() + ":" + refName)
			if err != nil {
				return nil, fmt.Errorf("%w: tag %q: %v", ErrInvalid, refName, err)
			}
			name = ref.String()
		case refName != "":
			n, err := imageName(refName)
			if err != nil {
				return nil, err
			}
			name = n
		}
		target := m
		target.Annotations = nil
		rec := Record{Target: target, Manifest: target}
		if remote.IsIndexMediaType(m.MediaType) {
			b, err := ls.metadata(m)
			if err != nil {
				return nil, err
			}
			sub, err := remote.ParseIndex(b)
			if err != nil {
				return nil, fmt.Errorf("index %s: %w: %v", m.Digest, ErrInvalid, err)
			}
			if rec.Manifest, err = remote.SelectPlatform(sub, plat); err != nil {
				return nil, fmt.Errorf("index %s: %w", m.Digest, err)
			}
			rec.Manifest.Annotations = nil
		}
		if !remote.IsManifestMediaType(rec.Manifest.MediaType) {
			return nil, fmt.Errorf("%w: %s has the unsupported media type %q", ErrInvalid, rec.Manifest.Digest, rec.Manifest.MediaType)
		}
		mb, err := ls.metadata(rec.Manifest)
		if err != nil {
			return nil, err
		}
		var man ocispec.Manifest
		if err := json.Unmarshal(mb, &man); err != nil {
			return nil, fmt.Errorf("manifest %s: %w: %v", rec.Manifest.Digest, ErrInvalid, err)
		}
		rec.Config = man.Config
		cb, err := ls.metadata(man.Config)
		if err != nil {
			return nil, err
		}
		if err := rec.fillFromConfig(man, cb); err != nil {
			return nil, err
		}
		for _, l := range man.Layers {
			if err := ls.checkLayer(l); err != nil {
				return nil, err
			}
		}
		if name == "" {
			if name, err = unnamed(base, rec.Target.Digest); err != nil {
				return nil, err
			}
		}
		rec.Name = name
		recs = append(recs, rec)
	}
	return recs, nil
}

func (ls *loadState) checkLayer(l ocispec.Descriptor) error {
	if _, err := archive.MediaTypeCompression(l.MediaType); err != nil {
		return fmt.Errorf("layer %s: %w: %v", l.Digest, ErrInvalid, err)
	}
	return ls.checkBlob(l)
}

func (ls *loadState) resolveDocker(ctx context.Context, base reference.Reference) ([]Record, error) {
	var entries []dockerManifestEntry
	if err := json.Unmarshal(ls.files["manifest.json"].data, &entries); err != nil {
		return nil, fmt.Errorf("%w: manifest.json: %v", ErrInvalid, err)
	}
	var recs []Record
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cf, err := ls.lookup(e.Config)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if cf.digest == "" {
			return nil, fmt.Errorf("%w: config %q is not an image config", ErrInvalid, e.Config)
		}
		man := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Layers: []ocispec.Descriptor{}}
		man.SchemaVersion = 2
		man.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.Digest(cf.digest), Size: cf.size}
		cb, err := ls.metadata(man.Config)
		if err != nil {
			return nil, err
		}
		var cfg ocispec.Image
		if err := json.Unmarshal(cb, &cfg); err != nil {
			return nil, fmt.Errorf("config %s: %w: %v", cf.digest, ErrInvalid, err)
		}
		if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
			return nil, fmt.Errorf("config %s: %w: %d diff_ids for %d layers in manifest.json",
				cf.digest, ErrInvalid, len(cfg.RootFS.DiffIDs), len(e.Layers))
		}
		for i, lp := range e.Layers {
			lf, err := ls.lookup(lp)
			if err != nil {
				return nil, fmt.Errorf("layer: %w", err)
			}
			if lf.digest == "" {
				return nil, fmt.Errorf("%w: layer %q is not a layer", ErrInvalid, lp)
			}
			mt := ocispec.MediaTypeImageLayer
			if lf.digest != cfg.RootFS.DiffIDs[i].String() {
				if mt, err = ls.sniffLayer(lf.digest); err != nil {
					return nil, err
				}
			}
			man.Layers = append(man.Layers, ocispec.Descriptor{MediaType: mt, Digest: digest.Digest(lf.digest), Size: lf.size})
		}
		mb, err := json.Marshal(man)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(mb)
		mdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest,
			Digest: digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(sum[:])), Size: int64(len(mb))}
		rec := Record{Target: mdesc, Manifest: mdesc, Config: man.Config}
		if err := rec.fillFromConfig(man, cb); err != nil {
			return nil, err
		}
		if err := ls.s.putBlob(ctx, mdesc, mb); err != nil {
			return nil, err
		}
		var names []string
		for _, t := range e.RepoTags {
			n, err := imageName(t)
			if err != nil {
				return nil, err
			}
			names = append(names, n)
		}
		if len(names) == 0 {
			n, err := unnamed(base, mdesc.Digest)
			if err != nil {
				return nil, fmt.Errorf("%w (config %s)", err, cf.digest)
			}
			names = []string{n}
		}
		for _, n := range names {
			r := rec
			r.Name = n
			recs = append(recs, r)
		}
	}
	return recs, nil
}

// sniffLayer returns the media type of a docker-archive layer stored
// compressed.
func (ls *loadState) sniffLayer(dgst string) (string, error) {
	f, err := ls.s.content.Open(dgst)
	if err != nil {
		return "", err
	}
	defer f.Close()
	peek := make([]byte, 8)
	n, _ := io.ReadFull(f, peek)
	switch archive.DetectCompression(peek[:n]) {
	case archive.Gzip:
		return ocispec.MediaTypeImageLayerGzip, nil
	case archive.Zstd:
		return ocispec.MediaTypeImageLayerZstd, nil
	}
	// Uncompressed, but not the diffID: the unpack will say so.
	return ocispec.MediaTypeImageLayer, nil
}

// unpack makes every layer's snapshot, verifying diffIDs. A snapshot that
// exists already is trusted, but a compressed blob this load brought is
// still checked against its diffID, so that no record names a blob that
// does not match its config.
func (ls *loadState) unpack(ctx context.Context, recs []Record) error {
	fresh := map[string]bool{}
	for _, f := range ls.files {
		if f.fresh {
			fresh[f.digest] = true
		}
	}
	done := map[string]bool{}
	for _, rec := range recs {
		for i, l := range rec.Layers {
			diffID := rec.DiffIDs[i]
			key := l.Digest.String() + " " + diffID
			if done[key] {
				continue
			}
			done[key] = true
			created, err := ls.s.snapshots.Unpack(ctx, diffID, func(ctx context.Context, dir string) (int64, int, error) {
				f, err := ls.s.content.Open(l.Digest.String())
				if err != nil {
					return 0, 0, err
				}
				defer f.Close()
				return applyLayer(ctx, f, l, diffID, dir)
			})
			if err != nil {
				return fmt.Errorf("image %s: %w", rec.Name, err)
			}
			if !created && fresh[l.Digest.String()] && l.Digest.String() != diffID {
				if _, err := ls.s.uncompressed(ctx, l, diffID, io.Discard); err != nil {
					return fmt.Errorf("image %s: %w", rec.Name, err)
				}
			}
		}
	}
	return nil
}
