package image_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/imagetest"
	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/berth-dev/berth/internal/image/registrytest"
	"github.com/berth-dev/berth/internal/image/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: layers hold devices, owners and trusted.* xattrs")
	}
}

// testImage is three layers: a gzip base with a directory tree, a hard
// link, a symlink and an owned setuid file; a zstd layer that whites out a
// file and makes a directory opaque; an uncompressed layer.
func testImage(t *testing.T, arch string) imagetest.Image {
	base := imagetest.NewLayer(t, imagetest.Gzip, []imagetest.Entry{
		{Name: "bin/", Type: tar.TypeDir},
		{Name: "bin/tool", Body: "#!/bin/sh\necho " + arch + "\n", Mode: 0o4755, UID: 0, GID: 0},
		{Name: "bin/tool-link", Type: tar.TypeLink, Linkname: "bin/tool"},
		{Name: "bin/sh", Type: tar.TypeSymlink, Linkname: "/bin/tool"},
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/passwd", Body: "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"},
		{Name: "etc/old.conf", Body: "old"},
		{Name: "var/cache/", Type: tar.TypeDir},
		{Name: "var/cache/a", Body: "a", UID: 1000, GID: 1000},
	})
	change := imagetest.NewLayer(t, imagetest.Zstd, []imagetest.Entry{
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/.wh.old.conf", Body: ""},
		{Name: "var/cache/", Type: tar.TypeDir},
		{Name: "var/cache/.wh..wh..opq", Body: ""},
		{Name: "var/cache/b", Body: "b"},
	})
	plain := imagetest.NewLayer(t, imagetest.Uncompressed, []imagetest.Entry{
		{Name: "data/", Type: tar.TypeDir},
		{Name: "data/blob", Body: string(make([]byte, 300<<10))},
	})
	return imagetest.NewImage(t, "linux", arch, ocispec.ImageConfig{Cmd: []string{"/bin/tool"}}, base, change, plain)
}

func newService(t *testing.T, root string, reg image.Registry) *image.Service {
	t.Helper()
	if reg == nil {
		reg = remote.New(remote.Options{Backoff: 1})
	}
	s, err := image.Open(image.Options{Root: root, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type eventLog struct {
	mu     sync.Mutex
	events []image.Event
}

func (l *eventLog) add(e image.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) count(p image.Phase) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.Phase == p {
			n++
		}
	}
	return n
}

func TestPullUnpacksEveryLayer(t *testing.T) {
	requireRoot(t)
	reg := registrytest.Start(t, registrytest.Options{})
	img := testImage(t, "amd64")
	img.Push(t, reg, "test/app", "v1")

	root := t.TempDir()
	s := newService(t, root, nil)
	var log eventLog
	rec, err := s.Pull(context.Background(), reg.Ref("test/app", "v1"), image.PullOptions{Progress: log.add})
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID() != img.ConfigDesc.Digest.String() || rec.Manifest.Digest != img.ManifestDesc.Digest {
		t.Fatalf("record %+v does not match the pushed image (config %s, manifest %s)", rec, img.ConfigDesc.Digest, img.ManifestDesc.Digest)
	}
	if rec.Platform != "linux/amd64" || len(rec.DiffIDs) != 3 {
		t.Fatalf("platform %q, %d diffIDs", rec.Platform, len(rec.DiffIDs))
	}
	if got := log.count(image.PhaseDone); got != 3 {
		t.Fatalf("%d layers reported done, want 3", got)
	}
	// Every blob is in the content store.
	for _, d := range []string{rec.Manifest.Digest.String(), rec.ID(), img.Layers[0].Desc.Digest.String(), img.Layers[1].Desc.Digest.String(), img.Layers[2].Desc.Digest.String()} {
		if _, err := s.Content().Info(d); err != nil {
			t.Errorf("blob %s: %v", d, err)
		}
	}
	dir := func(i int) string {
		d, err := s.Snapshots().Dir(rec.DiffIDs[i])
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// Base layer: setuid mode, hard link, symlink, owner.
	fi, err := os.Lstat(filepath.Join(dir(0), "bin/tool"))
	if err != nil || fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Fatalf("bin/tool: %v %v", fi, err)
	}
	li, _ := os.Lstat(filepath.Join(dir(0), "bin/tool-link"))
	if !os.SameFile(fi, li) {
		t.Error("bin/tool-link is not a hard link of bin/tool")
	}
	if target, _ := os.Readlink(filepath.Join(dir(0), "bin/sh")); target != "/bin/tool" {
		t.Errorf("bin/sh -> %q", target)
	}
	if st, _ := os.Lstat(filepath.Join(dir(0), "var/cache/a")); st.Sys().(*syscall.Stat_t).Uid != 1000 {
		t.Error("var/cache/a lost its owner")
	}
	// Second layer: whiteout device and opaque xattr, as overlayfs wants.
	wi, err := os.Lstat(filepath.Join(dir(1), "etc/old.conf"))
	if err != nil || wi.Mode()&os.ModeCharDevice == 0 || wi.Sys().(*syscall.Stat_t).Rdev != 0 {
		t.Fatalf("etc/old.conf whiteout: %v %v", wi, err)
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(dir(1), "var/cache"), "trusted.overlay.opaque", buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Fatalf("var/cache opaque xattr: %q %v", buf[:n], err)
	}
	if st, _ := os.Stat(filepath.Join(dir(2), "data/blob")); st == nil || st.Size() != 300<<10 {
		t.Fatalf("data/blob: %v", st)
	}

	// Listed under its canonical name, found by ID prefix.
	recs, err := s.Get(context.Background(), rec.ID()[7:19])
	if err != nil || len(recs) != 1 || recs[0].Name != reg.Addr+"/test/app:v1" {
		t.Fatalf("Get by ID prefix: %v %v", recs, err)
	}

	// A second pull finds everything there.
	var again eventLog
	if _, err := s.Pull(context.Background(), reg.Ref("test/app", "v1"), image.PullOptions{Progress: again.add}); err != nil {
		t.Fatal(err)
	}
	if got := again.count(image.PhaseExists); got != 3 {
		t.Fatalf("second pull: %d layers already there, want 3", got)
	}
}

func TestPullSelectsPlatformFromIndex(t *testing.T) {
	requireRoot(t)
	reg := registrytest.Start(t, registrytest.Options{})
	amd, arm := testImage(t, "amd64"), testImage(t, "arm64")
	idx := imagetest.PushIndex(t, reg, "multi", "latest", amd, arm)
	s := newService(t, t.TempDir(), nil)
	rec, err := s.Pull(context.Background(), reg.Ref("multi", "latest"), image.PullOptions{Platform: "linux/arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Target.Digest.String() != idx || rec.Manifest.Digest != arm.ManifestDesc.Digest || rec.Platform != "linux/arm64" {
		t.Fatalf("got target %s manifest %s platform %s; want index %s manifest %s", rec.Target.Digest, rec.Manifest.Digest, rec.Platform, idx, arm.ManifestDesc.Digest)
	}
	_, err = s.Pull(context.Background(), reg.Ref("multi", "latest"), image.PullOptions{Platform: "linux/s390x"})
	if err == nil {
		t.Fatal("pull of a platform the index lacks succeeded")
	}
	t.Logf("missing platform: %v", err)
}

func TestConcurrentPullsDoTheWorkOnce(t *testing.T) {
	requireRoot(t)
	reg := registrytest.Start(t, registrytest.Options{})
	testImage(t, "amd64").Push(t, reg, "test/app", "v1")
	root := t.TempDir()
	var log eventLog
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each its own Service, as separate processes would have.
			_, errs[i] = newService(t, root, nil).Pull(context.Background(), reg.Ref("test/app", "v1"), image.PullOptions{Progress: log.add})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := log.count(image.PhaseDone); got != 3 {
		t.Fatalf("%d layer unpacks for 4 concurrent pulls of 3 layers, want 3", got)
	}
}

// failingRegistry cuts every blob stream after limit bytes, as a killed
// connection or a killed client would.
type failingRegistry struct {
	image.Registry
	limit   int64
	corrupt bool
	cut     atomic.Int32
}

func (f *failingRegistry) FetchBlob(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	rc, err := f.Registry.FetchBlob(ctx, ref, desc, offset)
	if err != nil || desc.MediaType == ocispec.MediaTypeImageConfig {
		return rc, err
	}
	if f.corrupt {
		return &corruptReader{rc}, nil
	}
	f.cut.Add(1)
	return &cutReader{rc, f.limit}, nil
}

type cutReader struct {
	io.ReadCloser
	left int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("connection reset (test)")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= int64(n)
	return n, err
}

type corruptReader struct{ io.ReadCloser }

func (c *corruptReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if n > 0 {
		p[0] ^= 0xff
	}
	return n, err
}

func TestInterruptedPullResumes(t *testing.T) {
	requireRoot(t)
	reg := registrytest.Start(t, registrytest.Options{})
	img := testImage(t, "amd64")
	img.Push(t, reg, "test/app", "v1")
	root := t.TempDir()
	bad := &failingRegistry{Registry: remote.New(remote.Options{Backoff: 1}), limit: 1000}
	_, err := newService(t, root, bad).Pull(context.Background(), reg.Ref("test/app", "v1"), image.PullOptions{})
	if err == nil {
		t.Fatal("a pull whose streams were cut succeeded")
	}
	t.Logf("cut pull: %v", err)
	s := newService(t, root, nil)
	if recs, _ := s.List(context.Background()); len(recs) != 0 {
		t.Fatalf("the failed pull left records %v", recs)
	}
	// Layers smaller than the cut may be complete (and are then kept,
	// unreferenced, for the next pull); the big one must not be visible.
	if ok, _ := s.Snapshots().Exists(img.Layers[2].DiffID.String()); ok {
		t.Fatal("the cut layer was committed")
	}
	var log eventLog
	rec, err := s.Pull(context.Background(), reg.Ref("test/app", "v1"), image.PullOptions{Progress: log.add})
	if err != nil {
		t.Fatal(err)
	}
	resumed := false
	for _, e := range log.events {
		if e.Resumed > 0 {
			resumed = true
		}
	}
	if !resumed {
		t.Error("the second pull did not resume any layer")
	}
	if len(rec.DiffIDs) != 3 || log.count(image.PhaseDone)+log.count(image.PhaseExists) != 3 {
		t.Fatalf("resumed pull: %+v", rec)
	}
	if ing, _ := s.Content().Ingests(); len(ing) != 0 {
		t.Fatalf("ingests left after a complete pull: %v", ing)
	}
}

func TestCorruptLayerIsRefused(t *testing.T) {
	requireRoot(t)
	reg := registrytest.Start(t, registrytest.Options{})
	img := testImage(t, "amd64")
	img.Push(t, reg, "test/app", "v1")
	root := t.TempDir()
	bad := &failingRegistry{Registry: remote.New(remote.Options{Backoff: 1}), corrupt: true}
	s := newService(t, root, bad)
	_, err := s.Pull(context.Background(), reg.Ref("test/app", "v1"), image.PullOptions{})
	if err == nil {
		t.Fatal("a pull of corrupted layers succeeded")
	}
	t.Logf("corrupt pull: %v", err)
	for _, l := range img.Layers {
		if _, err := s.Content().Info(l.Desc.Digest.String()); err == nil {
			t.Errorf("corrupted layer %s became visible", l.Desc.Digest)
		}
	}
	if infos, _ := s.Snapshots().List(); len(infos) != 0 {
		t.Fatalf("corrupted layers committed: %v", infos)
	}
	if recs, _ := s.List(context.Background()); len(recs) != 0 {
		t.Fatalf("records after a failed pull: %v", recs)
	}
}

func TestRemoveCollectsOnlyUnsharedLayers(t *testing.T) {
	requireRoot(t)
	reg := registrytest.Start(t, registrytest.Options{})
	one := testImage(t, "amd64")
	one.Push(t, reg, "one", "v1")
	// two shares the base layer with one.
	extra := imagetest.NewLayer(t, imagetest.Gzip, []imagetest.Entry{{Name: "two", Body: "2"}})
	two := imagetest.NewImage(t, "linux", "amd64", ocispec.ImageConfig{}, one.Layers[0], extra)
	two.Push(t, reg, "two", "v1")
	s := newService(t, t.TempDir(), nil)
	ctx := context.Background()
	for _, n := range []string{reg.Ref("one", "v1"), reg.Ref("two", "v1")} {
		if _, err := s.Pull(ctx, n, image.PullOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Tag(ctx, reg.Ref("one", "v1"), "example.com/one:copy"); err != nil {
		t.Fatal(err)
	}
	// By ID with two names: refused without force.
	if _, err := s.Remove(ctx, one.ConfigDesc.Digest.String(), false); !errors.Is(err, image.ErrInUse) {
		t.Fatalf("rmi by ID of an image with two names: %v, want ErrInUse", err)
	}
	res, err := s.Remove(ctx, "example.com/one:copy", false)
	if err != nil || len(res.Deleted) != 0 {
		t.Fatalf("untag: %+v %v", res, err)
	}
	res, err = s.Remove(ctx, reg.Ref("one", "v1"), false)
	if err != nil || len(res.Deleted) != 1 || res.Reclaimed == 0 {
		t.Fatalf("rmi: %+v %v", res, err)
	}
	if ok, _ := s.Snapshots().Exists(one.Layers[0].DiffID.String()); !ok {
		t.Error("the shared base layer was collected while image two uses it")
	}
	for _, l := range one.Layers[1:] {
		if ok, _ := s.Snapshots().Exists(l.DiffID.String()); ok {
			t.Errorf("layer %s of the removed image was kept", l.DiffID)
		}
		if _, err := s.Content().Info(l.Desc.Digest.String()); err == nil {
			t.Errorf("blob %s of the removed image was kept", l.Desc.Digest)
		}
	}
	if _, err := s.Remove(ctx, "nothing:here", false); !errors.Is(err, image.ErrNotFound) {
		t.Fatalf("rmi of a missing image: %v", err)
	}
}

func TestPullDockerSchema2ManifestList(t *testing.T) {
	requireRoot(t)
	reg := registrytest.Start(t, registrytest.Options{})
	gz := func(arch string) imagetest.Image {
		l := imagetest.NewLayer(t, imagetest.Gzip, []imagetest.Entry{{Name: "arch", Body: arch}})
		return imagetest.NewImage(t, "linux", arch, ocispec.ImageConfig{}, l).Docker(t)
	}
	amd, arm := gz("amd64"), gz("arm64")
	list := imagetest.PushDockerList(t, reg, "docker/list", "v1", amd, arm)
	s := newService(t, t.TempDir(), nil)
	rec, err := s.Pull(context.Background(), reg.Ref("docker/list", "v1"), image.PullOptions{Platform: "linux/arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Target.Digest.String() != list || rec.Target.MediaType != imagetest.DockerManifestList ||
		rec.Manifest.Digest != arm.ManifestDesc.Digest || rec.Manifest.MediaType != imagetest.DockerManifest {
		t.Fatalf("record %+v; want list %s and arm64 manifest %s", rec, list, arm.ManifestDesc.Digest)
	}
	dir, err := s.Snapshots().Dir(rec.DiffIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "arch")); string(b) != "arm64" {
		t.Fatalf("unpacked the %q image, want arm64", b)
	}
	// A single Docker schema-2 manifest, by digest.
	amd.PushDocker(t, reg, "docker/single", "v1")
	rec, err = s.Pull(context.Background(), reg.Addr+"/docker/single@"+amd.ManifestDesc.Digest.String(), image.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Name != reg.Addr+"/docker/single@"+amd.ManifestDesc.Digest.String() || rec.Platform != "linux/amd64" {
		t.Fatalf("pull by digest: %+v", rec)
	}
	// A single-platform image pulled for another platform is refused.
	if _, err := s.Pull(context.Background(), reg.Ref("docker/single", "v1"), image.PullOptions{Platform: "linux/arm64"}); !errors.Is(err, image.ErrNotFound) {
		t.Fatalf("pull of an amd64-only image for linux/arm64: %v, want ErrNotFound", err)
	}
}
