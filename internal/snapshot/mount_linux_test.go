package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/userns"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay mounts, whiteout devices and trusted.* xattrs")
	}
}

func diffID(n int) string { return fmt.Sprintf("sha256:%064x", n+1) }

func commit(t *testing.T, s *Store, id string, fill func(dir string)) {
	t.Helper()
	if _, err := s.Unpack(context.Background(), id, func(_ context.Context, dir string) (int64, int, error) {
		fill(dir)
		return 0, 0, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func mountTarget(t *testing.T) string {
	target := t.TempDir()
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	return target
}

func TestOverlayHonoursTheLayersWhiteouts(t *testing.T) {
	requireRoot(t)
	s, _ := Open(t.TempDir())
	commit(t, s, diffID(0), func(dir string) {
		os.WriteFile(filepath.Join(dir, "a"), []byte("a"), 0o644)
		os.WriteFile(filepath.Join(dir, "b"), []byte("b"), 0o644)
		os.MkdirAll(filepath.Join(dir, "d"), 0o755)
		os.WriteFile(filepath.Join(dir, "d/x"), []byte("x"), 0o644)
	})
	commit(t, s, diffID(1), func(dir string) {
		// The forms archive.Apply writes: a 0/0 device and the opaque xattr.
		if err := unix.Mknod(filepath.Join(dir, "b"), unix.S_IFCHR, 0); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dir, "d"), 0o755)
		if err := unix.Setxattr(filepath.Join(dir, "d"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "d/y"), []byte("y"), 0o644)
	})
	if _, err := s.Prepare("c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare("c1"); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second Prepare of one key: %v", err)
	}
	target := mountTarget(t)
	if err := s.MountOverlay("c1", []string{diffID(0), diffID(1)}, target); err != nil {
		t.Fatal(err)
	}
	exists := func(p string) bool { _, err := os.Lstat(filepath.Join(target, p)); return err == nil }
	if !exists("a") || exists("b") || exists("d/x") || !exists("d/y") {
		t.Fatalf("merged view: a=%v b=%v d/x=%v d/y=%v; want a and d/y only", exists("a"), exists("b"), exists("d/x"), exists("d/y"))
	}
	// Writes land in the active layer; the committed ones never change.
	if err := os.WriteFile(filepath.Join(target, "new"), []byte("n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(target, "a")); err != nil {
		t.Fatal(err)
	}
	active, _ := s.ActiveDir("c1")
	if _, err := os.Stat(filepath.Join(active, "upper", "new")); err != nil {
		t.Fatalf("write did not land in the active layer: %v", err)
	}
	base, _ := s.Dir(diffID(0))
	if _, err := os.Stat(filepath.Join(base, "a")); err != nil {
		t.Fatal("removing a file in the container removed it from the committed layer")
	}
	if err := unix.Unmount(target, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Release("c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(active); !os.IsNotExist(err) {
		t.Fatalf("released active layer still there: %v", err)
	}
	if err := s.Release("c1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Release: %v", err)
	}
}

func TestOverlayOfManyLayers(t *testing.T) {
	requireRoot(t)
	s, _ := Open(t.TempDir())
	const n = 80 // past what one mount(2) option page holds at these path lengths
	var ids []string
	for i := 0; i < n; i++ {
		commit(t, s, diffID(i), func(dir string) {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("layer%02d", i)), []byte("x"), 0o644)
		})
		ids = append(ids, diffID(i))
	}
	s.Prepare("many")
	target := mountTarget(t)
	err := s.MountOverlay("many", ids, target)
	if err != nil && strings.Contains(err.Error(), "6.8 or later") {
		t.Skipf("kernel without lowerdir+: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"layer00", fmt.Sprintf("layer%02d", n-1)} {
		if _, err := os.Stat(filepath.Join(target, f)); err != nil {
			t.Fatalf("%s missing from an overlay of %d layers: %v", f, n, err)
		}
	}
}

func TestActiveKeysAreOneDirectory(t *testing.T) {
	s, _ := Open(t.TempDir())
	for _, k := range []string{"", ".", "..", "a/b", "../x", strings.Repeat("k", 129)} {
		if _, err := s.Prepare(k); err == nil {
			t.Errorf("Prepare(%q) succeeded", k)
		}
	}
	if err := s.MountOverlay("ok", nil, t.TempDir()); err == nil {
		t.Error("an overlay of no layers mounted")
	}
}

// TestOverlayMapped: the idmapped overlay shows the layers' root files as
// the mapped root's, stores the container's writes with container IDs,
// keeps the layers' whiteouts, and refuses the host's root (no one
// there).
func TestOverlayMapped(t *testing.T) {
	requireRoot(t)
	for _, attached := range []bool{false, true} {
		t.Run(fmt.Sprintf("attached=%v", attached), func(t *testing.T) {
			attachLayersForTest = attached
			defer func() { attachLayersForTest = false }()
			testOverlayMapped(t)
			ents, _ := os.ReadDir(filepath.Dir(mountTargetDir))
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".layers-") {
					t.Errorf("left next to the target: %s", e.Name())
				}
			}
		})
	}
}

var mountTargetDir string

func testOverlayMapped(t *testing.T) {
	s, _ := Open(t.TempDir())
	commit(t, s, diffID(0), func(dir string) {
		os.WriteFile(filepath.Join(dir, "a"), []byte("a"), 0o644)
		os.WriteFile(filepath.Join(dir, "gone"), []byte("g"), 0o644)
		os.MkdirAll(filepath.Join(dir, "home/u"), 0o755)
		os.Chown(filepath.Join(dir, "home/u"), 1000, 1000)
	})
	commit(t, s, diffID(1), func(dir string) {
		if err := unix.Mknod(filepath.Join(dir, "gone"), unix.S_IFCHR, 0); err != nil {
			t.Fatal(err)
		}
	})
	s.Prepare("m")
	target := mountTarget(t)
	mountTargetDir = target
	uids := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 500000, Size: 65536}}
	gids := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 600000, Size: 65536}}
	if err := s.MountOverlayMapped("m", []string{diffID(0), diffID(1)}, target, uids, gids); err != nil {
		t.Fatal(err)
	}
	owner := func(p string) string {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err.Error()
		}
		return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
	}
	if got := owner(filepath.Join(target, "a")); got != "500000:600000" {
		t.Errorf("the image's root file: %s", got)
	}
	if got := owner(filepath.Join(target, "home/u")); got != "501000:601000" {
		t.Errorf("the image's uid 1000 directory: %s", got)
	}
	if _, err := os.Lstat(filepath.Join(target, "gone")); !os.IsNotExist(err) {
		t.Errorf("a whited-out file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(target, "host"), nil, 0o644); err == nil {
		t.Error("the host's root wrote to the idmapped overlay")
	}
	err := userns.AsMapped(501000, 601000, func() error {
		if err := os.WriteFile(filepath.Join(target, "home/u/new"), []byte("n"), 0o600); err != nil {
			return err
		}
		return os.Remove(filepath.Join(target, "a"))
	})
	if err != nil {
		t.Fatal(err)
	}
	active, _ := s.ActiveDir("m")
	if got := owner(filepath.Join(active, "upper/home/u/new")); got != "1000:1000" {
		t.Errorf("written by the container's 1000: on disk %s", got)
	}
	if got := owner(filepath.Join(active, "upper/home/u")); got != "1000:1000" {
		t.Errorf("copied up: on disk %s", got)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(active, "upper/a"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 || st.Uid != 0 {
		t.Errorf("the deletion is not a 0/0 whiteout owned by root on disk: %+v %v", st, err)
	}
}
