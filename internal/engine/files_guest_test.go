//go:build linux

package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The file helper's operations on a directory standing for a guest's
// container root: what cp and export of a VM container run in the guest.
func TestGuestFilesOperations(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "made", "sub"), 0o755)
	os.WriteFile(filepath.Join(root, "made", "sub", "f"), []byte("guest\n"), 0o644)
	os.Symlink("/made", filepath.Join(root, "link"))
	ctx := context.Background()
	call := func(in io.Reader, args ...string) (string, error) {
		var out bytes.Buffer
		err := guestFiles(ctx, args, in, &out)
		return out.String(), err
	}
	names := func(data string) []string {
		var n []string
		tr := tar.NewReader(strings.NewReader(data))
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			n = append(n, h.Name)
		}
		return n
	}
	// stat: the link as itself, or followed; a missing path by name.
	if out, err := call(nil, "stat", root, "c", "/link", "0"); err != nil || out != "other" {
		t.Errorf("stat /link: %q %v", out, err)
	}
	if out, err := call(nil, "stat", root, "c", "/link/", "0"); err != nil || out != "dir" {
		t.Errorf("stat /link/: %q %v", out, err)
	}
	if _, err := call(nil, "stat", root, "c", "/nope", "0"); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "c:/nope") {
		t.Errorf("stat /nope: %v", err)
	}
	// archive under a name, and a directory's contents.
	if out, err := call(nil, "archive", root, "c", "/made", "0", "copy", "0"); err != nil || !slices.Equal(names(out), []string{"copy/", "copy/sub/", "copy/sub/f"}) {
		t.Errorf("archive /made as copy: %q %v", names(out), err)
	}
	if out, err := call(nil, "archive", root, "c", "/made/.", "0", "", "0"); err != nil || !slices.Equal(names(out), []string{"sub/", "sub/f"}) {
		t.Errorf("archive /made/.: %q %v", names(out), err)
	}
	// dest: into an existing directory, to a new name, refusals.
	if out, err := call(nil, "dest", root, "c", "/host/x", "0", "/made"); err != nil || out != "/made\nx\n" {
		t.Errorf("dest of a file into /made: %q %v", out, err)
	}
	if out, err := call(nil, "dest", root, "c", "/host/x", "0", "/made/new"); err != nil || out != "/made\nnew\n" {
		t.Errorf("dest of a file to /made/new: %q %v", out, err)
	}
	if _, err := call(nil, "dest", root, "c", "/host/d", "1", "/made/sub/f"); !errors.Is(err, ErrInvalid) {
		t.Errorf("dest of a directory over a file: %v", err)
	}
	// extract into a directory (owners the container's root's without
	// -a), and not into a file.
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "in.txt", Mode: 0o600, Size: 4, Typeflag: tar.TypeReg})
	tw.Write([]byte("host"))
	tw.Close()
	if _, err := call(bytes.NewReader(tb.Bytes()), "extract", root, "c", "/link", "0"); err != nil {
		t.Errorf("extract into /link: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "made", "in.txt")); err != nil || string(b) != "host" {
		t.Errorf("extracted through /link: %q %v", b, err)
	}
	if _, err := call(strings.NewReader(""), "extract", root, "c", "/made/sub/f", "0"); !errors.Is(err, ErrInvalid) {
		t.Errorf("extract into a file: %v", err)
	}
	// export: the whole tree; an unknown operation is refused.
	if out, err := call(nil, "export", root); err != nil || !slices.Contains(names(out), "made/sub/f") || !slices.Contains(names(out), "link") {
		t.Errorf("export: %q %v", names(out), err)
	}
	if _, err := call(nil, "bogus", root, "c"); !errors.Is(err, ErrInvalid) {
		t.Errorf("an unknown operation: %v", err)
	}
}

func TestInMount(t *testing.T) {
	c := &Container{Mounts: []MountPoint{{Type: "volume", Destination: "/data"}, {Type: "bind", Destination: "/etc/app/"}}}
	for p, want := range map[string]string{"/data": "/data", "data/x": "/data", "/data/../data/y": "/data", "/etc/app/conf": "/etc/app", "/datax": "", "/etc": "", "/": ""} {
		got, ok := inMount(c, p)
		if got != want || ok != (want != "") {
			t.Errorf("inMount(%q) = %q, %v; want %q", p, got, ok, want)
		}
	}
	root := &Container{Mounts: []MountPoint{{Type: "bind", Destination: "/"}}}
	if _, ok := inMount(root, "/anything"); !ok {
		t.Error("a bind over / holds every path")
	}
}
