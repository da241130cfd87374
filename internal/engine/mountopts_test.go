package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVolumeSubpath(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755)
	os.Symlink(outside, filepath.Join(dir, "out"))
	os.Symlink("a", filepath.Join(dir, "in"))
	for sub, want := range map[string]string{
		"a/b":  filepath.Join(dir, "a", "b"),
		"in/b": filepath.Join(dir, "a", "b"),
		".":    dir,
	} {
		if got, err := volumeSubpath(dir, sub); err != nil || got != want {
			t.Errorf("volumeSubpath(%q) = %q %v, want %q", sub, got, err, want)
		}
	}
	for sub, errPart := range map[string]string{
		"../x":    "relative path inside",
		"/etc":    "relative path inside",
		"a/../..": "relative path inside",
		"out":     "leads out of the volume",
		"nope":    "no such file",
	} {
		if got, err := volumeSubpath(dir, sub); err == nil || !strings.Contains(err.Error(), errPart) {
			t.Errorf("volumeSubpath(%q) = %q %v, want an error with %q", sub, got, err, errPart)
		}
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", "/plain": "/plain", `/t\011ab\134`: "/t\tab\\", `/short\04`: `/short\04`} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
