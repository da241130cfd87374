package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	t1 = time.Unix(1600000000, 123456789)
	t2 = time.Unix(1500000000, 987654321)
)

func TestApplyEntryTypes(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	b := tarBytes(t,
		te{h: tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o751, Uid: 7, Gid: 8, ModTime: t2}},
		te{h: tar.Header{Typeflag: tar.TypeDir, Name: "d/", Mode: 0o2750, Uid: 1000, Gid: 2000, ModTime: t1,
			PAXRecords: map[string]string{"SCHILY.xattr.user.dirattr": "dv"}}},
		te{h: tar.Header{Typeflag: tar.TypeReg, Name: "d/suid", Mode: 0o4755, Uid: 1001, Gid: 2001, ModTime: t1, AccessTime: t2,
			PAXRecords: map[string]string{"SCHILY.xattr.user.foo": "bar", "SCHILY.xattr.trusted.t": "tv"}}, data: "hello world"},
		te{h: tar.Header{Typeflag: tar.TypeReg, Name: "d/sticky", Mode: 0o1777, ModTime: t1}, data: ""},
		te{h: tar.Header{Typeflag: tar.TypeSymlink, Name: "d/link", Linkname: "../etc/nowhere", Uid: 1002, Gid: 2002, ModTime: t2,
			PAXRecords: map[string]string{"SCHILY.xattr.trusted.sl": "sv"}}},
		te{h: tar.Header{Typeflag: tar.TypeLink, Name: "d/hard", Linkname: "d/suid"}},
		te{h: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3, Uid: 5, Gid: 6, ModTime: t1}},
		te{h: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/loop9", Mode: 0o660, Devmajor: 7, Devminor: 9, ModTime: t1,
			PAXRecords: map[string]string{"SCHILY.xattr.trusted.dv": "x"}}},
		te{h: tar.Header{Typeflag: tar.TypeFifo, Name: "/run/fifo", Mode: 0o640, Uid: 3, Gid: 4, ModTime: t1}},
	)
	st, err := applyBytes(t, s.root, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Entries: 9, Dirs: 2, Files: 2, Symlinks: 1, Hardlinks: 1, Devices: 2, FIFOs: 1, FileBytes: 11, StreamBytes: int64(len(b))}
	if st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	r := s.root
	chk := func(p string, kind, perm uint32, uid, gid uint32, mtime time.Time) unix.Stat_t {
		t.Helper()
		st := lstat(t, filepath.Join(r, p))
		if st.Mode&unix.S_IFMT != kind {
			t.Errorf("%s: type %#o, want %#o", p, st.Mode&unix.S_IFMT, kind)
		}
		if perm != ^uint32(0) && st.Mode&0o7777 != perm {
			t.Errorf("%s: mode %#o, want %#o", p, st.Mode&0o7777, perm)
		}
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
		if !mtime.IsZero() && (st.Mtim.Sec != mtime.Unix() || st.Mtim.Nsec != int64(mtime.Nanosecond())) {
			t.Errorf("%s: mtime %v, want %v", p, time.Unix(st.Mtim.Unix()), mtime)
		}
		return st
	}
	chk(".", unix.S_IFDIR, 0o751, 7, 8, t2)
	chk("d", unix.S_IFDIR, 0o2750, 1000, 2000, t1) // set after children were written
	f := chk("d/suid", unix.S_IFREG, 0o4755, 1001, 2001, t1)
	if f.Atim.Sec != t2.Unix() || f.Atim.Nsec != int64(t2.Nanosecond()) {
		t.Errorf("atime = %v, want %v", f.Atim, t2)
	}
	if f.Size != 11 || f.Nlink != 2 {
		t.Errorf("d/suid size %d nlink %d, want 11, 2", f.Size, f.Nlink)
	}
	if c, _ := os.ReadFile(filepath.Join(r, "d/suid")); string(c) != "hello world" {
		t.Errorf("d/suid content %q", c)
	}
	chk("d/sticky", unix.S_IFREG, 0o1777, 0, 0, t1)
	chk("d/link", unix.S_IFLNK, ^uint32(0), 1002, 2002, t2)
	if tg, _ := os.Readlink(filepath.Join(r, "d/link")); tg != "../etc/nowhere" {
		t.Errorf("d/link -> %q", tg)
	}
	h := chk("d/hard", unix.S_IFREG, 0o4755, 1001, 2001, t1)
	if h.Ino != f.Ino {
		t.Errorf("d/hard inode %d, d/suid inode %d: not the same file", h.Ino, f.Ino)
	}
	n := chk("dev/null", unix.S_IFCHR, 0o666, 5, 6, t1)
	if unix.Major(n.Rdev) != 1 || unix.Minor(n.Rdev) != 3 {
		t.Errorf("dev/null rdev %d:%d", unix.Major(n.Rdev), unix.Minor(n.Rdev))
	}
	l := chk("dev/loop9", unix.S_IFBLK, 0o660, 0, 0, t1)
	if unix.Major(l.Rdev) != 7 || unix.Minor(l.Rdev) != 9 {
		t.Errorf("dev/loop9 rdev %d:%d", unix.Major(l.Rdev), unix.Minor(l.Rdev))
	}
	chk("run/fifo", unix.S_IFIFO, 0o640, 3, 4, t1)
	chk("run", unix.S_IFDIR, 0o755, 0, 0, time.Time{}) // implicit parent
	for _, x := range []struct{ p, k, v string }{
		{"d", "user.dirattr", "dv"}, {"d/suid", "user.foo", "bar"}, {"d/suid", "trusted.t", "tv"},
		{"d/link", "trusted.sl", "sv"}, {"dev/loop9", "trusted.dv", "x"},
	} {
		if got := getxattr(t, filepath.Join(r, x.p), x.k); got != x.v {
			t.Errorf("%s xattr %s = %q, want %q", x.p, x.k, got, x.v)
		}
	}
	s.check(t)
}

func TestIDMapAndNoDevices(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	b := tarBytes(t,
		te{h: tar.Header{Typeflag: tar.TypeReg, Name: "f", Mode: 0o644, Uid: 10, Gid: 20}, data: "x"},
		te{h: tar.Header{Typeflag: tar.TypeReg, Name: ".wh.gone", Mode: 0o644}},
	)
	idmap := func(u, g int) (int, int, error) { return u + 100000, g + 100000, nil }
	if _, err := applyBytes(t, s.root, b, Options{IDMap: idmap}); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, filepath.Join(s.root, "f")); st.Uid != 100010 || st.Gid != 100020 {
		t.Errorf("mapped owner %d:%d", st.Uid, st.Gid)
	}
	if st := lstat(t, filepath.Join(s.root, "gone")); st.Uid != 100000 || st.Gid != 100000 || st.Mode != unix.S_IFCHR {
		t.Errorf("mapped whiteout owner %d:%d mode %#o", st.Uid, st.Gid, st.Mode)
	}
	bad := tarBytes(t, te{h: tar.Header{Typeflag: tar.TypeChar, Name: "dev/mem", Mode: 0o600, Devmajor: 1, Devminor: 1}})
	_, err := applyBytes(t, s.root, bad, Options{NoDevices: true})
	if !errors.Is(err, ErrUnsafeEntry) || exists(filepath.Join(s.root, "dev/mem")) {
		t.Errorf("NoDevices: err %v, exists %v", err, exists(filepath.Join(s.root, "dev/mem")))
	}
	fifo := tarBytes(t, te{h: tar.Header{Typeflag: tar.TypeFifo, Name: "p", Mode: 0o600}})
	if _, err := applyBytes(t, s.root, fifo, Options{NoDevices: true}); err != nil {
		t.Errorf("NoDevices refused a FIFO: %v", err)
	}
	s.check(t)
}

func TestOverlayWhiteouts(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	b := tarBytes(t,
		dir("etc/"),
		reg("etc/.wh.shadow", ""),
		reg("usr/lib/.wh..wh..opq", ""), // parent dirs not in tar
		reg("usr/lib/keep", "k"),
		dir("var/"),
		reg("var/.wh..wh..opq", ""),
		reg(".wh..wh.plnk", ""), // aufs metadata: skipped
		te{h: tar.Header{Typeflag: tar.TypeDir, Name: "opt/.wh.dirgone", Mode: 0o755}},
	)
	st, err := applyBytes(t, s.root, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Whiteouts != 2 || st.Opaques != 2 || st.Skipped != 1 {
		t.Errorf("stats %+v", st)
	}
	for _, p := range []string{"etc/shadow", "opt/dirgone"} {
		w := lstat(t, filepath.Join(s.root, p))
		if w.Mode != unix.S_IFCHR || w.Rdev != 0 || w.Uid != 0 || w.Gid != 0 {
			t.Errorf("%s: mode %#o rdev %d owner %d:%d, want 0/0 char device mode 0 root-owned", p, w.Mode, w.Rdev, w.Uid, w.Gid)
		}
	}
	for _, p := range []string{"usr/lib", "var"} {
		if v := getxattr(t, filepath.Join(s.root, p), "trusted.overlay.opaque"); v != "y" {
			t.Errorf("%s opaque xattr %q", p, v)
		}
	}
	if st := lstat(t, filepath.Join(s.root, "usr/lib")); st.Mode&0o7777 != 0o755 {
		t.Errorf("implicit opaque dir mode %#o", st.Mode&0o7777)
	}
	for _, p := range []string{".wh..wh.plnk", "etc/.wh.shadow", "usr/lib/.wh..wh..opq", "plnk"} {
		if exists(filepath.Join(s.root, p)) {
			t.Errorf("%s should not exist", p)
		}
	}
	if _, err := unix.Lgetxattr(filepath.Join(s.root, "etc"), "trusted.overlay.opaque", nil); err == nil {
		t.Errorf("etc must not be opaque")
	}
	s.check(t)
}

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(p, "/") {
			continue
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestApplyWhiteouts(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	writeTree(t, s.root, map[string]string{
		"etc/passwd": "p", "etc/shadow": "s", "etc/ssl/certs/a.pem": "a",
		"usr/lib/old.so": "o", "usr/lib/sub/deep.so": "d", "usr/lib/sub/keep-me-not": "x", "usr/bin/sh": "sh",
		"var/cache/x": "x",
	})
	b := tarBytes(t,
		reg("etc/.wh.shadow", ""),
		reg("etc/.wh.ssl", ""), // recursive removal of a directory
		reg("etc/.wh.absent", ""),
		reg("nodir/.wh.x", ""), // parent missing: nothing to do, nothing created
		dir("usr/lib/"),
		reg("usr/lib/new.so", "n"),
		dir("usr/lib/sub/"),
		reg("usr/lib/sub/deep.so", "new deep"),
		reg("usr/lib/.wh..wh..opq", ""), // after this layer's own entries
		reg("var/.wh..wh..opq", ""),     // before them
		reg("var/fresh", "f"),
		reg("new", "same layer"),
		reg(".wh.new", ""), // same-layer whiteout: must not remove "new"
		reg(".wh..wh.plnk", ""),
	)
	if _, err := applyBytes(t, s.root, b, Options{Whiteouts: ApplyWhiteouts}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"etc/passwd": "p", "usr/lib/new.so": "n", "usr/lib/sub/deep.so": "new deep", "usr/bin/sh": "sh",
		"var/fresh": "f", "new": "same layer",
	}
	got := map[string]string{}
	filepath.Walk(s.root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().IsRegular() {
			c, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(s.root, p)
			got[rel] = string(c)
		} else if !fi.IsDir() {
			t.Errorf("unexpected non-regular %s (%v): apply mode must not create whiteout devices", p, fi.Mode())
		}
		return nil
	})
	if len(got) != len(want) {
		t.Errorf("tree = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (tree %v)", k, got[k], v, got)
		}
	}
	for _, p := range []string{"etc/ssl", "var/cache", "nodir"} {
		if exists(filepath.Join(s.root, p)) {
			t.Errorf("%s should be gone", p)
		}
	}
	if _, err := unix.Lgetxattr(filepath.Join(s.root, "usr/lib"), "trusted.overlay.opaque", nil); err == nil {
		t.Errorf("apply mode must not set the opaque xattr")
	}
	s.check(t)
}

func TestReplace(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	r := s.root
	b := tarBytes(t,
		reg("a", "first"),
		reg("a", "second"), // file over file
		dir("b/"),
		reg("b/inner", "i"),
		reg("b", "file over dir"), // file over a non-empty dir
		reg("c", "file"),
		te{h: tar.Header{Typeflag: tar.TypeDir, Name: "c/", Mode: 0o700}}, // dir over file
		dir("d/"),
		reg("d/kept", "k"),
		te{h: tar.Header{Typeflag: tar.TypeDir, Name: "d/", Mode: 0o711, Uid: 9}}, // dir over dir keeps contents
		reg("e", "e"),
		sym("e", "a"), // symlink over file
		sym("f", "a"),
		reg("f", "regular over symlink"), // must not write through to a
		reg("g", "g"),
		hard("g", "a"), // hardlink over file
		hard("a", "a"), // link to itself: no-op
		sym("h", "d"),
		dir("h/"), // dir over symlink-to-dir: replaces the symlink, d untouched
	)
	if _, err := applyBytes(t, r, b, Options{}); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string { c, _ := os.ReadFile(filepath.Join(r, p)); return string(c) }
	if read("a") != "second" {
		t.Errorf("a = %q", read("a"))
	}
	if read("b") != "file over dir" {
		t.Errorf("b = %q", read("b"))
	}
	if st := lstat(t, filepath.Join(r, "c")); st.Mode != unix.S_IFDIR|0o700 {
		t.Errorf("c mode %#o", st.Mode)
	}
	if st := lstat(t, filepath.Join(r, "d")); st.Mode != unix.S_IFDIR|0o711 || st.Uid != 9 || read("d/kept") != "k" {
		t.Errorf("d mode %#o uid %d kept %q", st.Mode, st.Uid, read("d/kept"))
	}
	if tg, err := os.Readlink(filepath.Join(r, "e")); err != nil || tg != "a" {
		t.Errorf("e -> %q %v", tg, err)
	}
	if st := lstat(t, filepath.Join(r, "f")); st.Mode&unix.S_IFMT != unix.S_IFREG || read("f") != "regular over symlink" {
		t.Errorf("f mode %#o %q", st.Mode, read("f"))
	}
	if ga, gg := lstat(t, filepath.Join(r, "a")), lstat(t, filepath.Join(r, "g")); ga.Ino != gg.Ino || ga.Nlink != 2 {
		t.Errorf("g not a hard link of a (ino %d vs %d, nlink %d)", gg.Ino, ga.Ino, ga.Nlink)
	}
	if st := lstat(t, filepath.Join(r, "h")); st.Mode&unix.S_IFMT != unix.S_IFDIR || read("d/kept") != "k" {
		t.Errorf("h mode %#o", st.Mode)
	}
	s.check(t)
}

func TestHardlinkErrors(t *testing.T) {
	requireRoot(t)
	for name, b := range map[string][]byte{
		"missing": tarBytes(t, hard("l", "nope")),
		"dir":     tarBytes(t, dir("d/"), hard("l", "d")),
		"root":    tarBytes(t, hard("l", "./")),
	} {
		t.Run(name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := applyBytes(t, s.root, b, Options{})
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Path != "l" {
				t.Fatalf("err = %v, want *EntryError for l", err)
			}
			if name == "missing" && !strings.Contains(err.Error(), `"nope"`) {
				t.Errorf("error %q does not name the target", err)
			}
			if exists(filepath.Join(s.root, "l")) {
				t.Errorf("l was created")
			}
			s.check(t)
		})
	}
}

func TestOverlayXattrsSkipped(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	b := tarBytes(t,
		te{h: tar.Header{Typeflag: tar.TypeDir, Name: "d/", Mode: 0o755, PAXRecords: map[string]string{
			"SCHILY.xattr.trusted.overlay.opaque":   "y",
			"SCHILY.xattr.trusted.overlay.redirect": "/etc",
			"SCHILY.xattr.user.overlay.opaque":      "y",
			"SCHILY.xattr.trusted.ok":               "1",
		}}},
	)
	st, err := applyBytes(t, s.root, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.XattrsSkipped != 3 {
		t.Errorf("XattrsSkipped = %d", st.XattrsSkipped)
	}
	for _, x := range []string{"trusted.overlay.opaque", "trusted.overlay.redirect", "user.overlay.opaque"} {
		if _, err := unix.Lgetxattr(filepath.Join(s.root, "d"), x, nil); err == nil {
			t.Errorf("%s was set from the tar", x)
		}
	}
	if getxattr(t, filepath.Join(s.root, "d"), "trusted.ok") != "1" {
		t.Errorf("ordinary trusted xattr lost")
	}
	s.check(t)
}

func TestEntryErrorFormat(t *testing.T) {
	_, err := cleanName("../etc/passwd")
	if err == nil || err.Error() != `archive: entry "../etc/passwd": resolve: unsafe layer entry: path escapes the layer root` {
		t.Errorf("error = %v", err)
	}
	if !errors.Is(err, ErrUnsafeEntry) {
		t.Errorf("not ErrUnsafeEntry")
	}
	for in, want := range map[string]string{"/etc/x": "etc/x", "./a//b/": "a/b", "a/../b": "b", "/": ".", "./": ".", "//a": "a"} {
		got, err := cleanName(in)
		if err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "..", "../", "a/../../x", "a\x00b", "//..", "/../etc"} {
		if _, err := cleanName(in); !errors.Is(err, ErrUnsafeEntry) {
			t.Errorf("cleanName(%q) err = %v", in, err)
		}
	}
}

// TestDrain checks that bytes after the end-of-archive marker are read.
func TestDrain(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	b := append(tarBytes(t, reg("f", "x")), bytes.Repeat([]byte{0}, 10240)...)
	b = append(b, "trailing garbage"...)
	h := sha256.New()
	st, err := applyBytes(t, s.root, nil, Options{}) // empty stream is an empty layer
	if err != nil || st.Entries != 0 {
		t.Fatalf("empty: %+v %v", st, err)
	}
	st, err = Apply(context.Background(), s.root, io.TeeReader(bytes.NewReader(b), h), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.StreamBytes != int64(len(b)) || !bytes.Equal(h.Sum(nil), func() []byte { x := sha256.Sum256(b); return x[:] }()) {
		t.Errorf("StreamBytes %d of %d; hash mismatch means the stream was not drained", st.StreamBytes, len(b))
	}
	s.check(t)
}

type cancelReader struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= n
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestCancel(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Apply(ctx, s.root, bytes.NewReader(tarBytes(t, reg("f", "x"))), Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("pre-cancelled: %v", err)
	}
	if exists(filepath.Join(s.root, "f")) {
		t.Errorf("pre-cancelled apply wrote f")
	}
	var ents []te
	for i := range 200 {
		ents = append(ents, reg("f"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+"/"+"g", strings.Repeat("y", 5000)))
	}
	ents = append(ents, reg("big", strings.Repeat("z", 8<<20)))
	b := tarBytes(t, ents...)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	st, err := Apply(ctx, s.root, &cancelReader{r: bytes.NewReader(b), n: 100000, cancel: cancel}, Options{NoSync: true})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("mid-stream cancel: %v", err)
	}
	if st.Entries >= len(ents) || exists(filepath.Join(s.root, "big")) && st.FileBytes >= 8<<20 {
		t.Errorf("cancel was not prompt: %+v", st)
	}
	s.check(t)
}

func TestApplyRootErrors(t *testing.T) {
	if _, err := Apply(context.Background(), filepath.Join(t.TempDir(), "missing"), bytes.NewReader(nil), Options{}); err == nil {
		t.Errorf("missing root accepted")
	}
	if _, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(nil), Options{Whiteouts: 7}); err == nil {
		t.Errorf("bad whiteout mode accepted")
	}
	s := newSandbox(t)
	_, err := Apply(context.Background(), s.root, bytes.NewReader([]byte("definitely not a tar archive, just some text padding it out to more than enough bytes"+strings.Repeat(".", 600))), Options{})
	if err == nil {
		t.Errorf("garbage accepted as a tar")
	}
}

// TestParentCacheInvalidation: a cached parent fd must not outlive the
// directory it names being replaced or whited out.
func TestParentCacheInvalidation(t *testing.T) {
	requireRoot(t)
	for _, mode := range []WhiteoutMode{OverlayWhiteouts, ApplyWhiteouts} {
		t.Run(mode.String(), func(t *testing.T) {
			s := newSandbox(t)
			ents := []te{
				dir("x/"), reg("x/f1", "1"),
				dir("y/"), sym("x", "y"), reg("x/f2", "2"), // x replaced by a symlink: f2 lands in y
				dir("w/"), reg("w/a", "a"), reg("w", "file now"),
				dir("z/"), reg("z/a", "a"), reg(".wh.z", ""), // same-layer whiteout (apply: ignored)
			}
			if mode == ApplyWhiteouts {
				ents = append(ents, reg("z/b", "b"))
			}
			b := tarBytes(t, ents...)
			if _, err := applyBytes(t, s.root, b, Options{Whiteouts: mode}); err != nil {
				t.Fatal(err)
			}
			read := func(p string) string { c, _ := os.ReadFile(filepath.Join(s.root, p)); return string(c) }
			if read("y/f2") != "2" || exists(filepath.Join(s.root, "y/f1")) {
				t.Errorf("y/f2 = %q, y/f1 exists %v", read("y/f2"), exists(filepath.Join(s.root, "y/f1")))
			}
			if read("w") != "file now" {
				t.Errorf("w = %q", read("w"))
			}
			if mode == ApplyWhiteouts && (read("z/a") != "a" || read("z/b") != "b") {
				t.Errorf("apply mode: z/a %q z/b %q", read("z/a"), read("z/b"))
			}
			if mode == OverlayWhiteouts {
				if st := lstat(t, filepath.Join(s.root, "z")); st.Mode != unix.S_IFCHR || st.Rdev != 0 {
					t.Errorf("overlay mode: z mode %#o rdev %d, want whiteout device", st.Mode, st.Rdev)
				}
				// The cached fd of the old z must not be reused.
				_, err := applyBytes(t, s.root, tarBytes(t, dir("q/"), reg("q/a", "a"), reg(".wh.q", ""), reg("q/b", "b")), Options{})
				if err == nil || !strings.Contains(err.Error(), `"q/b"`) {
					t.Errorf("write under a whited-out dir: err = %v", err)
				}
			}
			s.check(t)
		})
	}
}
