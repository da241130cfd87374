//go:build unix

package privdir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestEnsureMakesAndCloses(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "a", "b")
	if err := Ensure(fresh); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, fresh); m != 0o700 {
		t.Fatalf("new directory: mode %v, want 0700", m)
	}
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o2775)
	if err := Ensure(open); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, open); m != 0o700 {
		t.Fatalf("existing 2775 directory: mode %v, want 0700", m)
	}
	// Through a symbolic link, the target is closed.
	link := filepath.Join(base, "link")
	target := filepath.Join(base, "target")
	os.Mkdir(target, 0o755)
	os.Symlink(target, link)
	if err := Ensure(link); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, target); m != 0o700 {
		t.Fatalf("symlinked target: mode %v, want 0700", m)
	}
}

func TestEnsureTopLeavesAnExistingDirectory(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o755)
	if err := EnsureTop(open); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, open); m != 0o755 {
		t.Fatalf("an existing --root was changed to %v", m)
	}
	fresh := filepath.Join(base, "fresh")
	if err := EnsureTop(fresh); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, fresh); m != 0o700 {
		t.Fatalf("a new --root: mode %v, want 0700", m)
	}
}

func TestEnsureRefuses(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	var np *ErrNotPrivate
	if err := Ensure(file); err == nil {
		t.Fatal("a file was accepted as a private directory")
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot make a directory owned by another user")
	}
	other := filepath.Join(base, "other")
	os.Mkdir(other, 0o700)
	if err := os.Chown(other, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	for _, ensure := range []func(string) error{Ensure, EnsureTop} {
		err := ensure(other)
		if !errors.As(err, &np) || np.Path != other {
			t.Fatalf("a directory owned by nobody: %v, want ErrNotPrivate naming it", err)
		}
	}
}
