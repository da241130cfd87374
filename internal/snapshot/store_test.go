package snapshot

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const diffA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func writeFile(name, body string) Filler {
	return func(ctx context.Context, dir string) (int64, int, error) {
		return int64(len(body)), 1, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
}

func TestUnpackCommitsOnce(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	var wg sync.WaitGroup
	created := make([]bool, 8)
	for i := range created {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := s.Unpack(context.Background(), diffA, func(ctx context.Context, dir string) (int64, int, error) {
				calls.Add(1)
				time.Sleep(20 * time.Millisecond)
				return writeFile("f", "hello")(ctx, dir)
			})
			if err != nil {
				t.Error(err)
			}
			created[i] = c
		}()
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("filled %d times, want once", calls.Load())
	}
	n := 0
	for _, c := range created {
		if c {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d callers say they created the layer", n)
	}
	dir, err := s.Dir(diffA)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "hello" {
		t.Fatalf("layer content %q", b)
	}
	info, err := s.Stat(diffA)
	if err != nil || info.Size != 5 || info.Entries != 1 || info.DiffID != diffA {
		t.Fatalf("info %+v %v", info, err)
	}
	if list, _ := s.List(); len(list) != 1 {
		t.Fatalf("list %v", list)
	}
}

func TestFailedFillLeavesNothing(t *testing.T) {
	s, _ := Open(t.TempDir())
	boom := errors.New("digest mismatch")
	_, err := s.Unpack(context.Background(), diffA, func(ctx context.Context, dir string) (int64, int, error) {
		os.WriteFile(filepath.Join(dir, "partial"), []byte("x"), 0o644)
		return 0, 0, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if ok, _ := s.Exists(diffA); ok {
		t.Fatal("a failed unpack is visible")
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "tmp")); len(ents) != 0 {
		t.Fatalf("tmp left: %v", ents)
	}
}

func TestLeftoversOfAKilledUnpackAreCleaned(t *testing.T) {
	s, _ := Open(t.TempDir())
	// What a kill -9 mid-unpack leaves: a tmp dir, a half-removed trash dir.
	leftover := filepath.Join(s.Root(), "tmp", "sha256-"+strings.TrimPrefix(diffA, "sha256:")+"-deadbeef")
	os.MkdirAll(filepath.Join(leftover, "fs", "usr"), 0o555)
	trash := filepath.Join(s.Root(), "trash", "cafe")
	os.MkdirAll(trash, 0o755)
	if err := s.Clean(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{leftover, trash} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s survived Clean", p)
		}
	}
	// And the next Unpack of that layer works.
	if _, err := s.Unpack(context.Background(), diffA, writeFile("f", "x")); err != nil {
		t.Fatal(err)
	}
}

func TestRemove(t *testing.T) {
	s, _ := Open(t.TempDir())
	ctx := context.Background()
	if _, err := s.Unpack(ctx, diffA, func(ctx context.Context, dir string) (int64, int, error) {
		os.MkdirAll(filepath.Join(dir, "ro/sub"), 0o755)
		os.Chmod(filepath.Join(dir, "ro"), 0o555)
		return 0, 0, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, diffA); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Exists(diffA); ok {
		t.Fatal("removed layer still there")
	}
	if err := s.Remove(ctx, diffA); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "trash")); len(ents) != 0 {
		t.Fatalf("trash left: %v", ents)
	}
}

func TestInvalidDiffIDs(t *testing.T) {
	s, _ := Open(t.TempDir())
	for _, d := range []string{"", "sha256:../../etc", "md5:abc", "sha256:" + strings.Repeat("A", 64), "sha256:" + strings.Repeat("a", 63)} {
		if _, err := s.Unpack(context.Background(), d, writeFile("f", "x")); err == nil || !strings.Contains(err.Error(), "invalid diffID") {
			t.Errorf("diffID %q: %v", d, err)
		}
	}
}

func TestUnpackWaitHonoursContext(t *testing.T) {
	s, _ := Open(t.TempDir())
	started, release, first := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(first)
		s.Unpack(context.Background(), diffA, func(ctx context.Context, dir string) (int64, int, error) {
			close(started)
			<-release
			return 0, 0, nil
		})
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.Unpack(ctx, diffA, writeFile("f", "x"))
	close(release)
	// The first Unpack finishes its snapshot before the test's
	// directory is removed (it raced that removal: "directory not
	// empty").
	<-first
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting Unpack: %v", err)
	}
}

func TestTmpIsATopDirectory(t *testing.T) {
	s, _ := Open(t.TempDir())
	out, err := exec.Command("lsattr", "-d", filepath.Join(s.Root(), "tmp")).CombinedOutput()
	if err != nil {
		t.Skipf("lsattr cannot read flags here (not ext2/3/4, or e2fsprogs missing): %v %s", err, out)
	}
	if attrs := strings.Fields(string(out))[0]; !strings.Contains(attrs, "T") {
		t.Fatalf("snapshots/tmp flags %q lack T (the Orlov top-directory flag)", attrs)
	}
}
