package archive

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: applying layers needs root (chown, mknod, trusted.* xattrs)")
	}
}

// sandbox is tmp/{root,outside}: root receives the layer, outside is a
// sentinel file that must never change, and tmp must never gain entries.
type sandbox struct {
	tmp, root, outside string
	st, tst            unix.Stat_t
}

const sentinel = "sentinel contents\n"

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	tmp := t.TempDir()
	s := &sandbox{tmp: tmp, root: filepath.Join(tmp, "root"), outside: filepath.Join(tmp, "outside")}
	if err := os.Mkdir(s.root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.outside, []byte(sentinel), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1000000000, 0)
	if err := os.Chtimes(s.outside, old, old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(s.outside, &s.st); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(s.tmp, &s.tst); err != nil {
		t.Fatal(err)
	}
	return s
}

// check asserts that nothing outside root was created or changed.
func (s *sandbox) check(t testing.TB) {
	t.Helper()
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) != 2 || names[0] != "outside" || names[1] != "root" {
		t.Fatalf("sandbox %s now holds %q, want only [outside root]", s.tmp, names)
	}
	var st unix.Stat_t
	if err := unix.Lstat(s.outside, &st); err != nil {
		t.Fatalf("sentinel: %v", err)
	}
	if st.Ino != s.st.Ino || st.Mode != s.st.Mode || st.Uid != s.st.Uid || st.Gid != s.st.Gid ||
		st.Nlink != s.st.Nlink || st.Size != s.st.Size || st.Mtim != s.st.Mtim || st.Ctim != s.st.Ctim {
		t.Fatalf("sentinel %s changed: before %+v after %+v", s.outside, s.st, st)
	}
	b, err := os.ReadFile(s.outside)
	if err != nil || string(b) != sentinel {
		t.Fatalf("sentinel contents changed: %q, %v", b, err)
	}
	for _, x := range []string{"trusted.overlay.opaque", "user.test", "trusted.test"} {
		if _, err := unix.Lgetxattr(s.outside, x, make([]byte, 64)); err == nil {
			t.Fatalf("sentinel gained xattr %s", x)
		}
		if _, err := unix.Lgetxattr(s.tmp, x, make([]byte, 64)); err == nil {
			t.Fatalf("sandbox dir gained xattr %s", x)
		}
	}
	var tst unix.Stat_t
	if err := unix.Lstat(s.tmp, &tst); err != nil {
		t.Fatal(err)
	}
	if tst.Mode != s.tst.Mode || tst.Uid != s.tst.Uid || tst.Gid != s.tst.Gid || tst.Mtim != s.tst.Mtim || tst.Ctim != s.tst.Ctim {
		t.Fatalf("sandbox dir %s metadata changed: before %+v after %+v", s.tmp, s.tst, tst)
	}
}

func applyBytes(t testing.TB, root string, b []byte, opts Options) (Stats, error) {
	t.Helper()
	opts.NoSync = true
	return Apply(context.Background(), root, bytes.NewReader(b), opts)
}

func lstat(t testing.TB, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return st
}

func getxattr(t testing.TB, p, name string) string {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		t.Fatalf("lgetxattr %s %s: %v", p, name, err)
	}
	return string(buf[:n])
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

var t0ctx = context.Background()
