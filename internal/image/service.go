package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"

	"github.com/berth-dev/berth/internal/events"
	"github.com/berth-dev/berth/internal/image/content"
	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/berth-dev/berth/internal/image/remote"
	"github.com/berth-dev/berth/internal/lockfile"
	"github.com/berth-dev/berth/internal/privdir"
	"github.com/berth-dev/berth/internal/snapshot"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Error categories of the service. Errors wrap one of these (errors.Is)
// besides the lower layer's own error.
var (
	// ErrNotFound: no image has that name, ID or ID prefix.
	ErrNotFound = errors.New("no such image")
	// ErrAmbiguous: an ID prefix matches several images.
	ErrAmbiguous = errors.New("ambiguous image ID prefix")
	// ErrInUse: the image is used by a container (rmi without --force),
	// or is tagged in several repositories (rmi by ID without --force).
	ErrInUse = errors.New("image is in use")
	// ErrInvalid: a manifest, config or archive is malformed, or a digest
	// does not match.
	ErrInvalid = errors.New("invalid image")
)

// Registry is what the service needs of a registry client
// (internal/image/remote implements it).
type Registry interface {
	Resolve(ctx context.Context, ref reference.Reference) (ocispec.Descriptor, error)
	FetchManifest(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor) ([]byte, error)
	FetchBlob(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error)
	PushBlob(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor, open func() (io.ReadCloser, error), mountFrom []reference.Reference) (remote.PushOutcome, error)
	PushManifest(ctx context.Context, ref reference.Reference, mediaType string, data []byte) (ocispec.Descriptor, error)
}

// Options configures a Service.
type Options struct {
	// Root is berth's state root (e.g. /var/lib/berth); the service keeps
	// Root/content, Root/snapshots and Root/images.
	Root string
	// Registry talks to registries; nil refuses pull and push.
	Registry Registry
	// InUse reports the containers that use an image ID, for rmi; nil
	// means none do (no engine yet).
	InUse func(ctx context.Context, imageID string) ([]string, error)
	// MaxConcurrentLayers bounds the layers pulled or pushed at once
	// (default DefaultMaxConcurrentLayers).
	MaxConcurrentLayers int
}

// Service is the image store: blobs, unpacked layers and the names of
// images, and the operations on them. Safe for concurrent use by goroutines
// and processes.
type Service struct {
	opts      Options
	content   *content.Store
	snapshots *snapshot.Store
	records   *records
	gcLock    string
	events    *events.Journal
}

// Open opens (creating if needed) the image store under opts.Root.
func Open(opts Options) (*Service, error) {
	if opts.Root == "" {
		return nil, errors.New("image: no state root given")
	}
	if opts.MaxConcurrentLayers <= 0 {
		opts.MaxConcurrentLayers = DefaultMaxConcurrentLayers()
	}
	if err := privdir.EnsureTop(opts.Root); err != nil {
		return nil, fmt.Errorf("image: state root: %w", err)
	}
	cs, err := content.Open(filepath.Join(opts.Root, "content"))
	if err != nil {
		return nil, err
	}
	ss, err := snapshot.Open(filepath.Join(opts.Root, "snapshots"))
	if err != nil {
		return nil, err
	}
	rs, err := openRecords(filepath.Join(opts.Root, "images"))
	if err != nil {
		return nil, err
	}
	return &Service{opts: opts, content: cs, snapshots: ss, records: rs,
		gcLock: filepath.Join(opts.Root, "images", "gc.lock"), events: events.ForRoot(opts.Root)}, nil
}

// emit records an image event (pull, push, tag, untag, delete, load);
// a lost event never fails the operation.
func (s *Service) emit(action, id, name string) {
	attrs := map[string]string{}
	if name != "" {
		attrs["name"] = name
	}
	s.events.Append(events.New(events.TypeImage, action, id, attrs))
}

func (s *Service) emitRemoval(r RemoveResult) {
	for _, n := range r.Untagged {
		s.emit("untag", n, n)
	}
	for _, id := range r.Deleted {
		s.emit("delete", id, "")
	}
}

// Content is the blob store.
func (s *Service) Content() *content.Store { return s.content }

// Snapshots is the unpacked-layer store.
func (s *Service) Snapshots() *snapshot.Store { return s.snapshots }

// holdGC takes the GC lock shared for an operation that adds references
// (pull, load, tag): the garbage collector, which takes it exclusive, never
// sweeps while blobs are arriving that no record names yet.
func (s *Service) holdGC(ctx context.Context) (func(), error) {
	return lockfile.Lock(ctx, s.gcLock, false)
}

// List returns every image record, sorted by name.
func (s *Service) List(ctx context.Context) ([]Record, error) {
	return s.records.list(ctx)
}

// Get finds an image by name (any form `berth pull` accepts: "busybox" is
// docker.io/library/busybox:latest), by full ID ("sha256:<hex>" or
// "<hex>"), or by a unique ID prefix. For an ID it returns every record of
// that image.
func (s *Service) Get(ctx context.Context, nameOrID string) ([]Record, error) {
	all, err := s.records.list(ctx)
	if err != nil {
		return nil, err
	}
	return find(all, nameOrID)
}

func find(all []Record, nameOrID string) ([]Record, error) {
	if ref, err := reference.Parse(nameOrID); err == nil {
		for _, r := range all {
			if r.Name == ref.String() {
				return []Record{r}, nil
			}
		}
		// REPO@DIGEST also names an image pulled by a tag of REPO
		// that resolved to that digest (its repo digest), as in docker.
		if d := ref.Digest(); !d.IsZero() && ref.Tag() == "" {
			for _, r := range all {
				if rr, err := reference.Parse(r.Name); err == nil && rr.Name() == ref.Name() && r.Target.Digest.String() == d.String() {
					return []Record{r}, nil
				}
			}
		}
	}
	id := nameOrID
	if len(id) > 7 && id[:7] == "sha256:" {
		id = id[7:]
	}
	if len(id) < 1 || !isHexString(id) {
		return nil, fmt.Errorf("image %q: %w", nameOrID, ErrNotFound)
	}
	var match []Record
	ids := map[string]bool{}
	for _, r := range all {
		if hx := r.Config.Digest.Encoded(); len(hx) >= len(id) && hx[:len(id)] == id {
			match = append(match, r)
			ids[r.ID()] = true
		}
	}
	switch {
	case len(match) == 0:
		return nil, fmt.Errorf("image %q: %w", nameOrID, ErrNotFound)
	case len(ids) > 1:
		return nil, fmt.Errorf("image ID prefix %q matches %d images: %w (give more characters)", nameOrID, len(ids), ErrAmbiguous)
	}
	return match, nil
}

func isHexString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Tag gives the image source (a name or ID) the name target.
func (s *Service) Tag(ctx context.Context, source, target string) (Record, error) {
	ref, err := reference.Parse(target)
	if err != nil {
		return Record{}, err
	}
	if !ref.Digest().IsZero() {
		return Record{}, fmt.Errorf("tag %q: a tag cannot contain a digest", target)
	}
	unlock, err := s.holdGC(ctx)
	if err != nil {
		return Record{}, err
	}
	defer unlock()
	var out Record
	err = s.records.update(ctx, func(m map[string]Record) error {
		all := make([]Record, 0, len(m))
		for _, r := range m {
			all = append(all, r)
		}
		src, err := find(all, source)
		if err != nil {
			return err
		}
		out = src[0]
		out.Name = ref.String()
		m[out.Name] = out
		return nil
	})
	if err == nil {
		s.emit("tag", out.ID(), out.Name)
	}
	return out, err
}

// ConfigBytes is an image's config blob as stored (for fields the OCI
// config lacks, such as docker's Healthcheck).
func (s *Service) ConfigBytes(r Record) ([]byte, error) {
	b, err := s.readBlob(r.Config.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", r.Name, err)
	}
	return b, nil
}

// Config reads an image's config from the content store.
func (s *Service) Config(r Record) (ocispec.Image, error) {
	var cfg ocispec.Image
	b, err := s.readBlob(r.Config.Digest.String())
	if err != nil {
		return cfg, fmt.Errorf("image %s: config: %w", r.Name, err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("image %s: config %s: %w: %v", r.Name, r.Config.Digest, ErrInvalid, err)
	}
	return cfg, nil
}

// DefaultMaxConcurrentLayers is one layer more than the CPUs, at least 3
// (docker's default). A pull unpacks while it downloads, so it is
// CPU-bound wherever the network keeps up; one stream more than the CPUs
// keeps them busy while a layer waits on the disk, and more only take CPU
// from the largest layer, which decides when the pull ends (measured on 2
// CPUs: 3 beats 2 and 5). BERTH_MAX_CONCURRENT_LAYERS overrides it.
func DefaultMaxConcurrentLayers() int { return max(3, runtime.NumCPU()+1) }
