package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

type hostileCase struct {
	name   string
	ents   func(s *sandbox) []te
	lower  func(t *testing.T, s *sandbox) // pre-populate root (apply mode)
	mode   WhiteoutMode
	unsafe bool              // error must wrap ErrUnsafeEntry
	ok     bool              // must succeed
	files  map[string]string // inside root, checked on success ("" = exists)
}

func hostileCases() []hostileCase {
	mirror := func(s *sandbox) string { return strings.TrimPrefix(s.tmp, "/") }
	canary := fmt.Sprintf("berth-archive-test-canary-%d", os.Getpid())
	return []hostileCase{
		{name: "dotdot", ents: func(*sandbox) []te { return []te{reg("../outside", "pwned")} }, unsafe: true},
		{name: "dotdot-new", ents: func(*sandbox) []te { return []te{reg("../new", "pwned")} }, unsafe: true},
		{name: "inner-dotdot", ents: func(*sandbox) []te { return []te{dir("a/"), reg("a/../../outside", "pwned")} }, unsafe: true},
		{name: "dotdot-dir", ents: func(*sandbox) []te { return []te{dir("../evil/")} }, unsafe: true},
		{name: "dotdot-symlink-name", ents: func(*sandbox) []te { return []te{sym("../evil", "/")} }, unsafe: true},
		{name: "root-as-file", ents: func(*sandbox) []te { return []te{reg(".", "x")} }, unsafe: true},
		{name: "whiteout-dot", ents: func(*sandbox) []te { return []te{reg(".wh..", "")} }, unsafe: true},
		{name: "whiteout-dotdot", ents: func(*sandbox) []te { return []te{reg("a/.wh...", "")} }, unsafe: true},
		{name: "whiteout-dotdot-apply", ents: func(*sandbox) []te { return []te{reg(".wh...", "")} }, mode: ApplyWhiteouts, unsafe: true},
		{name: "absolute-name", ok: true, ents: func(s *sandbox) []te { return []te{reg(s.outside, "in root")} },
			files: map[string]string{"": ""}}, // filled below
		{name: "abs-symlink-dir", ok: true,
			ents: func(s *sandbox) []te {
				return []te{dir(mirror(s) + "/"), sym("evil", s.tmp), reg("evil/outside", "pwned"), reg("evil/new", "x")}
			}},
		{name: "abs-symlink-dir-missing", ents: func(s *sandbox) []te { return []te{sym("evil", s.tmp), reg("evil/outside", "pwned")} }},
		{name: "abs-symlink-etc", ents: func(s *sandbox) []te { return []te{sym("etc2", "/etc"), reg("etc2/"+canary, "pwned")} }},
		{name: "abs-symlink-etc-present", ok: true,
			ents:  func(s *sandbox) []te { return []te{dir("etc/"), sym("etc2", "/etc"), reg("etc2/"+canary, "in")} },
			files: map[string]string{"etc/" + canary: "in"}},
		{name: "relative-up", ok: true,
			ents: func(*sandbox) []te {
				return []te{dir("a/b/"), sym("a/b/up", "../../../.."), reg("a/b/up/outside", "in"), dir("a/b/up/d/")}
			},
			files: map[string]string{"outside": "in", "d": ""}},
		{name: "relative-up-missing", ents: func(*sandbox) []te { return []te{sym("up", "../../../../nonexistent"), reg("up/x", "pwned")} }},
		{name: "file-over-escaping-symlink", ok: true,
			ents:  func(*sandbox) []te { return []te{sym("up2", "../outside"), reg("up2", "replaced")} },
			files: map[string]string{"up2": "replaced"}},
		{name: "device-over-escaping-symlink", ok: true,
			ents: func(*sandbox) []te {
				return []te{sym("up2", "../outside"), {h: tar.Header{Typeflag: tar.TypeFifo, Name: "up2", Mode: 0o600}}}
			},
			files: map[string]string{"up2": ""}},
		{name: "dir-over-escaping-symlink", ok: true,
			ents:  func(s *sandbox) []te { return []te{sym("p", s.tmp), dir("p/"), reg("p/outside", "in")} },
			files: map[string]string{"p/outside": "in"}},
		{name: "hardlink-etc-passwd", ents: func(*sandbox) []te { return []te{hard("l", "/etc/passwd")} }},
		{name: "hardlink-dotdot", ents: func(*sandbox) []te { return []te{hard("l", "../outside")} }, unsafe: true},
		{name: "hardlink-abs-sandbox", ents: func(s *sandbox) []te { return []te{hard("l", s.outside)} }},
		{name: "hardlink-via-symlink", ents: func(s *sandbox) []te { return []te{sym("t", "../../.."), hard("l", "t/outside")} }},
		{name: "hardlink-via-abs-symlink", ents: func(s *sandbox) []te { return []te{sym("t", s.tmp), hard("l", "t/outside")} }},
		{name: "hardlink-to-symlink", ok: true,
			ents:  func(s *sandbox) []te { return []te{sym("t", s.outside), hard("l", "t"), reg("l2", "x")} },
			files: map[string]string{"l2": "x"}},
		{name: "symlink-chain", ok: true,
			ents: func(*sandbox) []te {
				return []te{sym("c1", "c2"), sym("c2", "c3"), sym("c3", "/"), sym("c4", "../../../../.."),
					reg("c1/etc/x", "in"), dir("c4/d/"), reg("c4/c1/outside", "in2")}
			},
			files: map[string]string{"etc/x": "in", "d": "", "outside": "in2"}},
		{name: "symlink-loop", ents: func(*sandbox) []te { return []te{sym("l1", "l2"), sym("l2", "l1"), reg("l1/x", "x")} }},
		{name: "symlinked-parent", ok: true,
			ents:  func(*sandbox) []te { return []te{dir("usr/lib/"), sym("lib", "usr/lib"), reg("lib/libc.so", "c")} },
			files: map[string]string{"usr/lib/libc.so": "c"}},
		{name: "symlink-to-file-as-parent", ents: func(s *sandbox) []te { return []te{sym("f", s.outside), reg("f/x", "x")} }},
		{name: "replace-dir-holding-escaping-symlink", ok: true,
			ents: func(s *sandbox) []te {
				return []te{dir("x/"), sym("x/s", s.tmp), sym("x/o", s.outside), hard("x/h", "x/o"), reg("x", "f")}
			},
			files: map[string]string{"x": "f"}},
		{name: "overlay-xattr-through-symlink", ok: true,
			ents: func(s *sandbox) []te {
				return []te{sym("o", s.tmp), {h: tar.Header{Typeflag: tar.TypeDir, Name: "o/", Mode: 0o755,
					PAXRecords: map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.trusted.test": "x"}}}}
			},
			files: map[string]string{"o": ""}},
		{name: "xattr-on-symlink-to-outside", ok: true,
			ents: func(s *sandbox) []te {
				return []te{{h: tar.Header{Typeflag: tar.TypeSymlink, Name: "s", Linkname: s.outside,
					PAXRecords: map[string]string{"SCHILY.xattr.trusted.test": "x"}}}}
			},
			files: map[string]string{"s": ""}},
		{name: "opaque-through-symlink-overlay", ents: func(s *sandbox) []te { return []te{sym("w", s.tmp), reg("w/.wh..wh..opq", "")} }},
		{name: "whiteout-through-symlink-overlay", ents: func(s *sandbox) []te { return []te{sym("w", s.tmp), reg("w/.wh.outside", "")} }},
		{name: "whiteout-through-symlink-apply", mode: ApplyWhiteouts, ok: true,
			ents: func(s *sandbox) []te {
				return []te{sym("w", s.tmp), reg("w/.wh.outside", ""), reg("w/.wh..wh..opq", "")}
			}},
		{name: "whiteout-through-up-symlink-apply", mode: ApplyWhiteouts, ok: true,
			ents: func(s *sandbox) []te {
				return []te{sym("w", "../../../../.."), reg("w/.wh.outside", ""), reg("keep", "k"), reg("w/w/.wh..wh..opq", "")}
			}},
		{name: "lower-symlink-apply", mode: ApplyWhiteouts, ok: true,
			lower: func(t *testing.T, s *sandbox) {
				if err := os.Symlink(s.tmp, filepath.Join(s.root, "ll")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("..", filepath.Join(s.root, "up")); err != nil {
					t.Fatal(err)
				}
			},
			ents: func(s *sandbox) []te {
				return []te{reg("ll/.wh.outside", ""), reg("ll/.wh..wh..opq", ""), reg("up/.wh.outside", ""), reg("up/.wh.root", ""),
					reg("ll/.wh.root", "")}
			}},
	}
}

func runHostile(t *testing.T, walk bool) {
	requireRoot(t)
	old := forceWalk
	forceWalk = walk
	defer func() { forceWalk = old }()
	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) {
			s := newSandbox(t)
			if c.lower != nil {
				c.lower(t, s)
			}
			files := c.files
			if c.name == "absolute-name" {
				files = map[string]string{strings.TrimPrefix(s.outside, "/"): "in root"}
			}
			if c.name == "abs-symlink-dir" {
				files = map[string]string{strings.TrimPrefix(s.outside, "/"): "pwned", strings.TrimPrefix(s.tmp, "/") + "/new": "x"}
			}
			_, err := applyBytes(t, s.root, tarBytes(t, c.ents(s)...), Options{Whiteouts: c.mode})
			t.Logf("err = %v", err)
			s.check(t)
			for _, p := range []string{"/etc", "/"} {
				if exists(filepath.Join(p, fmt.Sprintf("berth-archive-test-canary-%d", os.Getpid()))) {
					os.Remove(filepath.Join(p, fmt.Sprintf("berth-archive-test-canary-%d", os.Getpid())))
					t.Fatalf("canary written on the host in %s", p)
				}
			}
			switch {
			case c.unsafe:
				if !errors.Is(err, ErrUnsafeEntry) {
					t.Fatalf("err = %v, want ErrUnsafeEntry", err)
				}
				var ee *EntryError
				if !errors.As(err, &ee) || ee.Path == "" {
					t.Fatalf("err %v is not an *EntryError naming the entry", err)
				}
			case c.ok:
				if err != nil {
					t.Fatalf("err = %v, want success", err)
				}
			}
			if err == nil {
				for p, want := range files {
					full := filepath.Join(s.root, p)
					var st unix.Stat_t
					if err := unix.Lstat(full, &st); err != nil {
						t.Fatalf("%s missing in root: %v", p, err)
					}
					if want != "" {
						if b, _ := os.ReadFile(full); string(b) != want {
							t.Fatalf("%s = %q, want %q", p, b, want)
						}
					}
				}
			}
		})
	}
}

func TestHostileOpenat2(t *testing.T) { runHostile(t, false) }

// TestHostileWalk runs the same layers through the resolver used when
// openat2(2) is unavailable.
func TestHostileWalk(t *testing.T) { runHostile(t, true) }

func TestResolversAgree(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	b := tarBytes(t, dir("usr/lib/x/"), sym("lib", "usr/lib"), sym("abs", "/usr/lib"), sym("up", "../../.."),
		sym("usr/lib/back", "../.."), sym("loop", "loop"), reg("file", "f"), sym("viafile", "file"))
	if _, err := applyBytes(t, s.root, b, Options{}); err != nil {
		t.Fatal(err)
	}
	rfd, err := unix.Open(s.root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rfd)
	for _, p := range []string{".", "lib", "abs", "up", "up/lib/x", "abs/back/abs/x", "usr/lib/back/up/usr",
		"loop", "file", "viafile", "missing", "lib/x/../../..", "abs/../../../../usr"} {
		r1 := &rootFS{fd: rfd}
		r2 := &rootFS{fd: rfd, useWalk: true}
		fd1, e1 := r1.open(p, unix.O_PATH)
		fd2, e2 := r2.open(p, unix.O_PATH)
		if (e1 == nil) != (e2 == nil) {
			t.Errorf("%q: openat2 err %v, walk err %v", p, e1, e2)
		}
		if e1 == nil && e2 == nil {
			var a, b unix.Stat_t
			unix.Fstat(fd1, &a)
			unix.Fstat(fd2, &b)
			if a.Ino != b.Ino {
				t.Errorf("%q: openat2 and walk resolve to different dirs", p)
			}
		}
		if e1 == nil {
			unix.Close(fd1)
		}
		if e2 == nil {
			unix.Close(fd2)
		}
	}
	s.check(t)
}
