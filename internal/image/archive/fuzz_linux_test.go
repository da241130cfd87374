package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

func FuzzApply(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("skipping: applying layers needs root (chown, mknod, trusted.* xattrs)")
	}
	// Hostile seeds use a fixed fake sandbox path; the sandbox of each run
	// differs, but the seeds still exercise the symlink/dotdot machinery.
	fake := &sandbox{tmp: "/tmp/fuzzsandbox", root: "/tmp/fuzzsandbox/root", outside: "/tmp/fuzzsandbox/outside"}
	for _, c := range hostileCases() {
		f.Add(tarBytes(f, c.ents(fake)...), uint8(c.mode))
	}
	f.Add(tarBytes(f, dir("a/"), reg("a/f", "x"), hard("a/h", "a/f"), sym("a/s", "../../../outside"),
		te{h: tar.Header{Typeflag: tar.TypeChar, Name: "a/c", Devmajor: 1, Devminor: 3, Mode: 0o666}},
		reg("a/.wh.f", ""), reg("a/.wh..wh..opq", ""), reg("a", "replaces")), uint8(0))
	f.Add(tarBytes(f, sym("up", "../../.."), sym("up2", "up/.."), reg("up2/up/outside", "p"), hard("x", "up2/outside"),
		reg("up/.wh.outside", ""), reg("up/.wh..wh..opq", "")), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		s := newSandbox(t)
		opts := Options{Whiteouts: WhiteoutMode(mode % 2), NoDevices: mode&2 != 0, NoSync: true}
		st, err := Apply(context.Background(), s.root, bytes.NewReader(data), opts)
		s.check(t)
		if err == nil && st.StreamBytes != int64(len(data)) {
			t.Fatalf("success but only %d of %d bytes read", st.StreamBytes, len(data))
		}
		// Nothing inside root may be a hard link to the sentinel (checked
		// by its nlink in check) nor a device when NoDevices was set.
		if opts.NoDevices && opts.Whiteouts == ApplyWhiteouts {
			filepath.Walk(s.root, func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode()&os.ModeDevice != 0 {
					t.Fatalf("device %s created despite NoDevices", p)
				}
				return nil
			})
		}
	})
}
