package image_test

import (
	"context"
	"errors"
	"testing"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/imagetest"
	"github.com/berth-dev/berth/internal/image/registrytest"
	"github.com/berth-dev/berth/internal/image/remote"
)

// Distribution names what the registry holds without pulling it: a
// manifest's descriptor with its config's platform, an index's with each
// entry's; an unknown name is not found; nothing is stored.
func TestDistribution(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	amd, arm := testImage(t, "amd64"), testImage(t, "arm64")
	amd.Push(t, reg, "test/one", "v1")
	idx := imagetest.PushIndex(t, reg, "test/multi", "latest", amd, arm)
	s := newService(t, t.TempDir(), nil)
	ctx := context.Background()

	desc, plats, err := s.Distribution(ctx, reg.Ref("test/one", "v1"))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != amd.ManifestDesc.Digest || len(plats) != 1 || plats[0].OS != "linux" || plats[0].Architecture != "amd64" {
		t.Errorf("one manifest: %+v %+v", desc, plats)
	}
	desc, plats, err = s.Distribution(ctx, reg.Ref("test/multi", "latest"))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != idx || !remote.IsIndexMediaType(desc.MediaType) || len(plats) != 2 || plats[0].Architecture != "amd64" || plats[1].Architecture != "arm64" {
		t.Errorf("an index: %+v %+v", desc, plats)
	}
	if _, _, err := s.Distribution(ctx, reg.Ref("test/none", "v1")); !errors.Is(err, remote.ErrNotFound) {
		t.Errorf("an unknown name: %v", err)
	}
	if _, _, err := s.Distribution(ctx, "Not A Reference"); !errors.Is(err, image.ErrInvalid) {
		t.Errorf("a malformed name: %v", err)
	}
	if recs, _ := s.List(ctx); len(recs) != 0 {
		t.Errorf("distribution stored images: %v", recs)
	}
}
