package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/berth-dev/berth/internal/image/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Push uploads the image source (a name or ID) to the registry as dest
// ("" pushes it under source's own name). Blobs the registry has are
// skipped, blobs in another repository of the same registry are mounted
// from there, the rest uploaded (layers in parallel); the manifest goes
// last, so the tag never names an incomplete image. It returns the pushed
// manifest's descriptor.
func (s *Service) Push(ctx context.Context, source, dest string, progress Progress) (ocispec.Descriptor, error) {
	if s.opts.Registry == nil {
		return ocispec.Descriptor{}, errors.New("push: no registry client configured")
	}
	recs, err := s.Get(ctx, source)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	rec := recs[0]
	if dest == "" {
		dest = rec.Name
	}
	ref, err := reference.Parse(dest)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if ref.Tag() == "" {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: give a tag to push to (a digest names content the registry computes)", dest)
	}
	var from []reference.Reference
	for _, r := range recs {
		if src, err := reference.Parse(r.Name); err == nil && src.Registry() == ref.Registry() && src.Repository() != ref.Repository() {
			from = append(from, src)
		}
	}
	blobs := append([]ocispec.Descriptor{rec.Config}, rec.Layers...)
	var wg sync.WaitGroup
	errs := make([]error, len(blobs))
	sem := make(chan struct{}, s.opts.MaxConcurrentLayers)
	for i, desc := range blobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			id := desc.Digest.String()
			if _, err := s.content.Info(id); err != nil {
				errs[i] = fmt.Errorf("push %s: blob %s is not in the store (was the image pulled for another platform only?): %w", ref, id, err)
				return
			}
			progress.send(Event{ID: id, Phase: PhaseDownloading, Total: desc.Size})
			open := func() (io.ReadCloser, error) {
				f, err := s.content.Open(id)
				if err != nil {
					return nil, err
				}
				return struct {
					io.Reader
					io.Closer
				}{&countingReader{r: f, report: func(n int64) {
					progress.send(Event{ID: id, Phase: PhaseDownloading, Current: n, Total: desc.Size})
				}}, f}, nil
			}
			outcome, err := s.opts.Registry.PushBlob(ctx, ref, desc, open, from)
			if err != nil {
				errs[i] = err
				progress.send(Event{ID: id, Phase: PhaseFailed, Err: err})
				return
			}
			phase := PhaseDone
			if outcome == remote.BlobExisted || outcome == remote.BlobMounted {
				phase = PhaseExists
			}
			progress.send(Event{ID: id, Phase: phase, Current: desc.Size, Total: desc.Size})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return ocispec.Descriptor{}, err
	}
	mbytes, err := s.readBlob(rec.Manifest.Digest.String())
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: manifest: %w", ref, err)
	}
	desc, err := s.opts.Registry.PushManifest(ctx, ref, rec.Manifest.MediaType, mbytes)
	if err == nil {
		s.emit("push", ref.String(), ref.String())
	}
	return desc, err
}

// CheckLogin checks that the registry accepts username and secret (as
// `docker login` does), when the service's registry client can say.
func (s *Service) CheckLogin(ctx context.Context, registry, username, secret string) error {
	c, ok := s.opts.Registry.(interface {
		CheckLogin(ctx context.Context, registry, username, secret string) error
	})
	if !ok {
		return errors.New("login: this registry client cannot check credentials")
	}
	return c.CheckLogin(ctx, registry, username, secret)
}
