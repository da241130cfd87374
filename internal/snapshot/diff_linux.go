package snapshot

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// WriteDiff writes the active layer key's changes as an OCI layer (an
// uncompressed tar): its upper directory, with overlayfs's deletion marks
// turned into ".wh.NAME" entries and opaque directories into
// ".wh..wh..opq" entries. skip (paths from "/") leaves out what is not
// the container's own (mount points the engine made there), with what is
// below it.
func (s *Store) WriteDiff(key string, w io.Writer, skip func(p string) bool) error {
	dir, err := s.ActiveDir(key)
	if err != nil {
		return err
	}
	return WriteDiffOf(filepath.Join(dir, "upper"), w, skip)
}

// WriteDiffOf writes an overlay's upper directory as a layer tar
// (Store.WriteDiff's; the guest's file helper's for a VM's root overlay).
func WriteDiffOf(upper string, w io.Writer, skip func(p string) bool) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == upper {
			return nil
		}
		rel := strings.TrimPrefix(p, upper+"/")
		if skip != nil && skip("/"+rel) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		hdr := &tar.Header{Name: rel, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid),
			ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec), Format: tar.FormatPAX}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			if st.Rdev == 0 {
				// A deletion.
				return tw.WriteHeader(&tar.Header{Name: path.Join(path.Dir(rel), ".wh."+path.Base(rel)), Typeflag: tar.TypeReg,
					ModTime: hdr.ModTime, Format: tar.FormatPAX})
			}
			hdr.Typeflag, hdr.Devmajor, hdr.Devminor = tar.TypeChar, int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		case unix.S_IFBLK:
			hdr.Typeflag, hdr.Devmajor, hdr.Devminor = tar.TypeBlock, int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		case unix.S_IFIFO:
			hdr.Typeflag = tar.TypeFifo
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case unix.S_IFDIR:
			hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
		case unix.S_IFREG:
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[key]; ok && st.Nlink > 1 {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				return tw.WriteHeader(hdr)
			}
			links[key] = rel
			hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		default:
			return nil // a socket: tar has no such entry
		}
		opaque := false
		if names, err := listXattrs(p); err == nil {
			for _, n := range names {
				if n == "trusted.overlay.opaque" {
					v, _ := getXattr(p, n)
					opaque = v == "y"
					continue
				}
				if strings.HasPrefix(n, "trusted.overlay.") || strings.HasPrefix(n, "user.overlay.") {
					continue
				}
				if v, err := getXattr(p, n); err == nil {
					if hdr.PAXRecords == nil {
						hdr.PAXRecords = map[string]string{}
					}
					hdr.PAXRecords["SCHILY.xattr."+n] = v
				}
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			n, err := io.Copy(tw, io.LimitReader(f, hdr.Size))
			f.Close()
			if err != nil {
				return err
			}
			if n != hdr.Size {
				return fmt.Errorf("snapshot: %s changed size while it was read", rel)
			}
		}
		if opaque {
			return tw.WriteHeader(&tar.Header{Name: rel + "/.wh..wh..opq", Typeflag: tar.TypeReg, ModTime: hdr.ModTime, Format: tar.FormatPAX})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("snapshot: the changes in %s: %w", upper, err)
	}
	return tw.Close()
}

func listXattrs(p string) ([]string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err == unix.ERANGE {
		buf = make([]byte, 1<<20)
		n, err = unix.Llistxattr(p, buf)
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name != "" {
			out = append(out, name)
		}
	}
	return out, nil
}

func getXattr(p, name string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Lgetxattr(p, name, buf)
	if err == unix.ERANGE {
		buf = make([]byte, 64<<10)
		n, err = unix.Lgetxattr(p, name, buf)
	}
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
