package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/image/archive"
	"github.com/berth-dev/berth/internal/image/content"
	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/berth-dev/berth/internal/image/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxMetadataSize bounds manifests and configs read into memory.
const maxMetadataSize = 8 << 20

// PullOptions configures a pull.
type PullOptions struct {
	// Platform is "os/arch[/variant]"; "" is the host's.
	Platform string
	Progress Progress
}

// Pull fetches the image named by ref from its registry, unpacks its layers
// and records it under ref's name. Layers download and unpack at once, in
// parallel, each streamed from the network through its decompressor into
// its own snapshot directory while its compressed bytes go to the content
// store; each is committed only once both its digest and its diffID check
// out. An interrupted pull leaves resumable ingests and no visible half;
// the next pull resumes them.
func (s *Service) Pull(ctx context.Context, name string, opts PullOptions) (Record, error) {
	if s.opts.Registry == nil {
		return Record{}, errors.New("pull: no registry client configured")
	}
	ref, err := reference.Parse(name)
	if err != nil {
		return Record{}, err
	}
	plat, err := remote.ParsePlatform(opts.Platform)
	if err != nil {
		return Record{}, err
	}
	unlock, err := s.holdGC(ctx)
	if err != nil {
		return Record{}, err
	}
	defer unlock()

	reg := s.opts.Registry
	target, err := reg.Resolve(ctx, ref)
	if err != nil {
		return Record{}, err
	}
	rec := Record{Name: ref.String(), Target: target}
	mdesc := target
	mbytes, err := s.fetchMetadata(ctx, ref, target)
	if err != nil {
		return Record{}, err
	}
	if remote.IsIndexMediaType(target.MediaType) {
		var idx ocispec.Index
		if err := json.Unmarshal(mbytes, &idx); err != nil {
			return Record{}, fmt.Errorf("pull %s: index %s: %w: %v", ref, target.Digest, ErrInvalid, err)
		}
		mdesc, err = remote.SelectPlatform(idx, plat)
		if err != nil {
			return Record{}, fmt.Errorf("pull %s: %w", ref, err)
		}
		if mbytes, err = s.fetchMetadata(ctx, ref, mdesc); err != nil {
			return Record{}, err
		}
	}
	if !remote.IsManifestMediaType(mdesc.MediaType) {
		return Record{}, fmt.Errorf("pull %s: %w: unsupported manifest media type %q", ref, ErrInvalid, mdesc.MediaType)
	}
	rec.Manifest = mdesc
	var man ocispec.Manifest
	if err := json.Unmarshal(mbytes, &man); err != nil {
		return Record{}, fmt.Errorf("pull %s: manifest %s: %w: %v", ref, mdesc.Digest, ErrInvalid, err)
	}
	rec.Config = man.Config
	cbytes, err := s.fetchMetadata(ctx, ref, man.Config)
	if err != nil {
		return Record{}, err
	}
	if err := rec.fillFromConfig(man, cbytes); err != nil {
		return Record{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	// A single-platform image asked for by platform must be that platform
	// (an index was searched for it already), as docker checks.
	if opts.Platform != "" && !remote.IsIndexMediaType(target.MediaType) {
		got, err := remote.ParsePlatform(rec.Platform)
		if err != nil {
			return Record{}, fmt.Errorf("pull %s: config: %w: platform %q: %v", ref, ErrInvalid, rec.Platform, err)
		}
		got, want := remote.Normalize(got), remote.Normalize(plat)
		if got.OS != want.OS || got.Architecture != want.Architecture || (want.Variant != "" && got.Variant != want.Variant) {
			return Record{}, fmt.Errorf("pull %s: %w: the image is for %s, not %s (it is not a multi-platform image)", ref, ErrNotFound, got, want)
		}
	}
	if err := s.pullLayers(ctx, ref, rec, opts.Progress); err != nil {
		return Record{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	rec.Pulled = time.Now().UTC()
	if err := s.records.update(ctx, func(m map[string]Record) error {
		m[rec.Name] = rec
		return nil
	}); err != nil {
		return Record{}, err
	}
	s.emit("pull", rec.Name, rec.Name)
	return rec, nil
}

// fillFromConfig checks the config against the manifest and records the
// diffIDs, platform and creation time.
func (r *Record) fillFromConfig(man ocispec.Manifest, cbytes []byte) error {
	var cfg ocispec.Image
	if err := json.Unmarshal(cbytes, &cfg); err != nil {
		return fmt.Errorf("config %s: %w: %v", man.Config.Digest, ErrInvalid, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(man.Layers) {
		return fmt.Errorf("config %s: %w: %d diff_ids for %d layers in the manifest",
			man.Config.Digest, ErrInvalid, len(cfg.RootFS.DiffIDs), len(man.Layers))
	}
	r.Layers = man.Layers
	r.DiffIDs = nil
	for _, d := range cfg.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return fmt.Errorf("config %s: %w: diff_id %q: %v", man.Config.Digest, ErrInvalid, d, err)
		}
		r.DiffIDs = append(r.DiffIDs, d.String())
	}
	r.Platform = cfg.OS + "/" + cfg.Architecture
	if cfg.Variant != "" {
		r.Platform += "/" + cfg.Variant
	}
	if cfg.Created != nil {
		r.Created = *cfg.Created
	}
	return nil
}

// fetchMetadata returns a manifest or config, from the content store when
// it is there, else from the registry (verified, then stored).
func (s *Service) fetchMetadata(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > maxMetadataSize {
		return nil, fmt.Errorf("pull %s: %s is %d bytes, more than the %d allowed for a manifest or config: %w",
			ref, desc.Digest, desc.Size, maxMetadataSize, ErrInvalid)
	}
	if b, err := s.readBlob(desc.Digest.String()); err == nil {
		return b, nil
	}
	var b []byte
	var err error
	if remote.IsIndexMediaType(desc.MediaType) || remote.IsManifestMediaType(desc.MediaType) {
		b, err = s.opts.Registry.FetchManifest(ctx, ref, desc)
	} else {
		var rc io.ReadCloser
		rc, err = s.opts.Registry.FetchBlob(ctx, ref, desc, 0)
		if err == nil {
			b, err = io.ReadAll(io.LimitReader(rc, maxMetadataSize+1))
			rc.Close()
		}
	}
	if err != nil {
		return nil, err
	}
	if err := s.putBlob(ctx, desc, b); err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return b, nil
}

func (s *Service) readBlob(dgst string) ([]byte, error) {
	f, err := s.content.Open(dgst)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxMetadataSize+1))
}

// putBlob stores small bytes under desc, verifying digest and size.
func (s *Service) putBlob(ctx context.Context, desc ocispec.Descriptor, b []byte) error {
	w, err := s.openIngest(ctx, "put-", desc)
	if content.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		w.Abort()
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := w.Commit(ctx); err != nil && !content.IsAlreadyExists(err) {
		if errors.Is(err, content.ErrDigestMismatch) || errors.Is(err, content.ErrSizeMismatch) {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return err
	}
	return nil
}

// pullLayers brings every layer's blob into the content store and its
// files into its snapshot, at most MaxConcurrentLayers at once, largest
// first: unpacking is CPU-bound, and the largest layer is the critical path
// of the pull, so it must not wait behind small ones or share a core with
// all of them. The first failure cancels the others.
func (s *Service) pullLayers(ctx context.Context, ref reference.Reference, rec Record, progress Progress) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	order := make([]int, len(rec.Layers))
	for i := range order {
		order[i] = i
		progress.send(Event{ID: rec.Layers[i].Digest.String(), Phase: PhaseWaiting, Total: rec.Layers[i].Size})
	}
	sort.SliceStable(order, func(a, b int) bool { return rec.Layers[order[a]].Size > rec.Layers[order[b]].Size })
	queue := make(chan int, len(order))
	for _, i := range order {
		queue <- i
	}
	close(queue)
	errs := make([]error, len(rec.Layers))
	var wg sync.WaitGroup
	for range min(s.opts.MaxConcurrentLayers, len(order)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range queue {
				if err := context.Cause(ctx); err != nil {
					errs[i] = err
					continue
				}
				if err := s.pullLayer(ctx, ref, rec.Layers[i], rec.DiffIDs[i], progress); err != nil {
					errs[i] = err
					cancel(err)
				}
			}
		}()
	}
	wg.Wait()
	// The first real error, not the cancellations it caused.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return errors.Join(errs...)
}

// pullLayer makes sure the layer's blob and its snapshot are both present.
func (s *Service) pullLayer(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor, diffID string, progress Progress) error {
	id := desc.Digest.String()
	if _, err := archive.MediaTypeCompression(desc.MediaType); err != nil {
		return fmt.Errorf("layer %s: %w: %v", id, ErrInvalid, err)
	}
	if desc.Size < 0 {
		return fmt.Errorf("layer %s: %w: negative size", id, ErrInvalid)
	}
	haveSnap, err := s.snapshots.Exists(diffID)
	if err != nil {
		return err
	}
	_, blobErr := s.content.Info(id)
	haveBlob := blobErr == nil
	if haveSnap && haveBlob {
		progress.send(Event{ID: id, Phase: PhaseExists, Current: desc.Size, Total: desc.Size})
		return nil
	}
	created, err := s.snapshots.Unpack(ctx, diffID, func(ctx context.Context, dir string) (int64, int, error) {
		if _, err := s.content.Info(id); err == nil {
			return s.unpackLocal(ctx, desc, diffID, dir, progress)
		}
		return s.fetchAndUnpack(ctx, ref, desc, diffID, dir, progress)
	})
	if err != nil {
		progress.send(Event{ID: id, Phase: PhaseFailed, Err: err})
		return err
	}
	if !created {
		// The snapshot was there (another pull made it meanwhile, or the
		// blob alone was missing): make sure the blob is too.
		if _, err := s.content.Info(id); err != nil {
			if err := s.fetchBlobOnly(ctx, ref, desc, progress); err != nil {
				progress.send(Event{ID: id, Phase: PhaseFailed, Err: err})
				return err
			}
			return nil
		}
		progress.send(Event{ID: id, Phase: PhaseExists, Current: desc.Size, Total: desc.Size})
		return nil
	}
	progress.send(Event{ID: id, Phase: PhaseDone, Current: desc.Size, Total: desc.Size})
	return nil
}

// unpackLocal unpacks a layer whose blob is already stored (loaded from an
// archive, or a snapshot removed by GC).
func (s *Service) unpackLocal(ctx context.Context, desc ocispec.Descriptor, diffID, dir string, progress Progress) (int64, int, error) {
	f, err := s.content.Open(desc.Digest.String())
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	progress.send(Event{ID: desc.Digest.String(), Phase: PhaseExtracting, Current: desc.Size, Total: desc.Size})
	return applyLayer(ctx, f, desc, diffID, dir)
}

// applyLayer decompresses r into dir and checks the diffID.
func applyLayer(ctx context.Context, r io.Reader, desc ocispec.Descriptor, diffID, dir string) (int64, int, error) {
	want, err := reference.ParseDigest(diffID)
	if err != nil {
		return 0, 0, fmt.Errorf("layer %s: %w: diff_id: %v", desc.Digest, ErrInvalid, err)
	}
	dr, _, err := archive.DecompressStream(r)
	if err != nil {
		return 0, 0, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	defer dr.Close()
	v := want.Verifier()
	st, err := archive.Apply(ctx, dir, io.TeeReader(dr, v), archive.Options{})
	if err != nil {
		return 0, 0, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	if !v.Verified() {
		return 0, 0, fmt.Errorf("layer %s: %w: uncompressed digest is %s, the config says %s", desc.Digest, ErrInvalid, v.Digest(), diffID)
	}
	return st.FileBytes, st.Entries, nil
}

// fetchAndUnpack streams a layer from the registry into the content store
// and, at the same time, through the decompressor into dir. An ingest left
// by an interrupted pull is resumed: its bytes are read back from disk for
// the unpack and only the rest is fetched.
func (s *Service) fetchAndUnpack(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor, diffID, dir string, progress Progress) (int64, int, error) {
	id := desc.Digest.String()
	w, err := s.openIngest(ctx, "pull-", desc)
	if content.IsAlreadyExists(err) {
		return s.unpackLocal(ctx, desc, diffID, dir, progress)
	}
	if err != nil {
		return 0, 0, err
	}
	prefix, err := w.Written()
	if err != nil {
		w.Close()
		return 0, 0, err
	}
	resumed := w.Offset()
	progress.send(Event{ID: id, Phase: PhaseDownloading, Current: resumed, Total: desc.Size, Resumed: resumed})
	var body io.ReadCloser
	if resumed < desc.Size {
		body, err = s.opts.Registry.FetchBlob(ctx, ref, desc, resumed)
		if err != nil {
			w.Close()
			return 0, 0, err
		}
	} else {
		body = io.NopCloser(strings.NewReader(""))
	}
	defer body.Close()
	cr := downloadCounter(fillReader{body}, desc, resumed, progress)
	netErr := &firstError{}
	stream := io.MultiReader(prefix, io.TeeReader(&errRecorder{r: cr, rec: netErr}, w))
	size, entries, aerr := applyLayer(ctx, stream, desc, diffID, dir)
	if aerr != nil {
		if netErr.err != nil || ctx.Err() != nil {
			// A transfer that died: keep what arrived for the next pull.
			w.Close()
		} else {
			w.Abort()
		}
		return 0, 0, aerr
	}
	progress.send(Event{ID: id, Phase: PhaseExtracting, Current: desc.Size, Total: desc.Size})
	if err := w.Commit(ctx); err != nil && !content.IsAlreadyExists(err) {
		if errors.Is(err, content.ErrDigestMismatch) || errors.Is(err, content.ErrSizeMismatch) {
			return 0, 0, fmt.Errorf("layer %s: %w: %v", id, ErrInvalid, err)
		}
		w.Close()
		return 0, 0, err
	}
	return size, entries, nil
}

// fetchBlobOnly downloads a layer's blob without unpacking it.
func (s *Service) fetchBlobOnly(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor, progress Progress) error {
	id := desc.Digest.String()
	w, err := s.openIngest(ctx, "pull-", desc)
	if content.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return err
	}
	body, err := s.opts.Registry.FetchBlob(ctx, ref, desc, w.Offset())
	if err != nil {
		w.Close()
		return err
	}
	defer body.Close()
	cr := downloadCounter(fillReader{body}, desc, w.Offset(), progress)
	if _, err := io.CopyBuffer(w, cr, make([]byte, 1<<20)); err != nil {
		w.Close()
		return fmt.Errorf("layer %s: %w", id, err)
	}
	if err := w.Commit(ctx); err != nil && !content.IsAlreadyExists(err) {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	progress.send(Event{ID: id, Phase: PhaseDone, Current: desc.Size, Total: desc.Size})
	return nil
}

// openIngest opens the content writer for a blob, waiting while another
// process holds its ingest (it is pulling the same blob).
func (s *Service) openIngest(ctx context.Context, prefix string, desc ocispec.Descriptor) (*content.Writer, error) {
	delay := 5 * time.Millisecond
	for {
		w, err := s.content.Writer(ctx, prefix+desc.Digest.String(), desc.Digest.String(), desc.Size)
		if !errors.Is(err, content.ErrLocked) {
			return w, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// fillReader fills most of each Read from the network: a socket read
// returns what a few TCP segments held (tens of kB), and each Read here
// turns into a write of the ingest file and of the decoder's pipe.
type fillReader struct{ r io.Reader }

func (f fillReader) Read(p []byte) (int, error) {
	n, err := io.ReadAtLeast(f.r, p, min(len(p), 256<<10))
	if err == io.ErrUnexpectedEOF || (err == io.EOF && n > 0) {
		err = nil // the next Read reports the end
	}
	return n, err
}

// downloadCounter reports the bytes of desc read through r, counting from
// the resumed bytes an earlier pull received.
func downloadCounter(r io.Reader, desc ocispec.Descriptor, resumed int64, progress Progress) *countingReader {
	id := desc.Digest.String()
	return &countingReader{r: r, n: resumed, report: func(n int64) {
		progress.send(Event{ID: id, Phase: PhaseDownloading, Current: n, Total: desc.Size, Resumed: resumed})
	}}
}

type countingReader struct {
	r      io.Reader
	n      int64
	report func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		c.report(c.n)
	}
	return n, err
}

// errRecorder remembers the first non-EOF error of a reader: the unpack
// error it causes tells nothing of whether the network failed.
type errRecorder struct {
	r   io.Reader
	rec *firstError
}

type firstError struct{ err error }

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.rec.err == nil {
		e.rec.err = err
	}
	return n, err
}
