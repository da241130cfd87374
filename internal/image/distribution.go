package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/berth-dev/berth/internal/image/remote"
)

// maxConfigSize bounds an image config read to learn its platform.
const maxConfigSize = 1 << 20

// Distribution is what the registry holds under name, without pulling
// it (docker's distribution inspect): the descriptor name resolves to
// (an index's, for a multi-platform image) and the platforms it has,
// from the index's entries or the one manifest's config.
func (s *Service) Distribution(ctx context.Context, name string) (ocispec.Descriptor, []ocispec.Platform, error) {
	if s.opts.Registry == nil {
		return ocispec.Descriptor{}, nil, errors.New("distribution: no registry client configured")
	}
	ref, err := reference.Parse(name)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	reg := s.opts.Registry
	desc, err := reg.Resolve(ctx, ref)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	data, err := reg.FetchManifest(ctx, ref, desc)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	if remote.IsIndexMediaType(desc.MediaType) {
		var idx ocispec.Index
		if err := json.Unmarshal(data, &idx); err != nil {
			return ocispec.Descriptor{}, nil, fmt.Errorf("%w: the index of %s: %v", ErrInvalid, name, err)
		}
		platforms := []ocispec.Platform{}
		for _, m := range idx.Manifests {
			if m.Platform != nil {
				platforms = append(platforms, *m.Platform)
			}
		}
		return desc, platforms, nil
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(data, &man); err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%w: the manifest of %s: %v", ErrInvalid, name, err)
	}
	if man.Config.Size > maxConfigSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%w: the config of %s is %d bytes, over %d", ErrInvalid, name, man.Config.Size, maxConfigSize)
	}
	rc, err := reg.FetchBlob(ctx, ref, man.Config, 0)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	defer rc.Close()
	var cfg ocispec.Image
	if err := json.NewDecoder(io.LimitReader(rc, maxConfigSize)).Decode(&cfg); err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%w: the config of %s: %v", ErrInvalid, name, err)
	}
	return desc, []ocispec.Platform{cfg.Platform}, nil
}
