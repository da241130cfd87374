package image

import (
	"errors"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestFindByRepoDigest(t *testing.T) {
	man := digest.Digest("sha256:" + strings.Repeat("a", 64))
	other := digest.Digest("sha256:" + strings.Repeat("b", 64))
	cfg := digest.Digest("sha256:" + strings.Repeat("c", 64))
	all := []Record{
		{Name: "example.com/app:v1", Target: ocispec.Descriptor{Digest: man}, Config: ocispec.Descriptor{Digest: cfg}},
		{Name: "example.com/app:v2", Target: ocispec.Descriptor{Digest: other}, Config: ocispec.Descriptor{Digest: digest.Digest("sha256:" + strings.Repeat("d", 64))}},
	}
	got, err := find(all, "example.com/app@"+man.String())
	if err != nil || len(got) != 1 || got[0].Name != "example.com/app:v1" {
		t.Fatalf("find(app@digest of v1) = %v, %v; want the v1 record", got, err)
	}
	// Another repository with that digest is another image's name.
	if _, err := find(all, "example.com/other@"+man.String()); !errors.Is(err, ErrNotFound) {
		t.Errorf("find(other@digest) = %v, want ErrNotFound", err)
	}
	// A tag and a digest name exactly that reference, nothing else.
	if _, err := find(all, "example.com/app:v3@"+man.String()); !errors.Is(err, ErrNotFound) {
		t.Errorf("find(app:v3@digest) = %v, want ErrNotFound", err)
	}
	if _, err := find(all, "example.com/app@sha256:"+strings.Repeat("e", 64)); !errors.Is(err, ErrNotFound) {
		t.Errorf("find(app@unknown digest) = %v, want ErrNotFound", err)
	}
}
