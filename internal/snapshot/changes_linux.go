package snapshot

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Change is one difference of an active layer from the layers under it
// (docker diff): Kind is 'A' (added), 'C' (changed) or 'D' (deleted).
type Change struct {
	Kind byte
	Path string
	// Dir: the upper directory's entry is a directory.
	Dir bool `json:",omitempty"`
}

// Changes lists how the active layer key differs from the image layers
// diffIDs: every path in its upper directory, as overlayfs reads it (a
// 0/0 character device is a deletion), sorted by path.
func (s *Store) Changes(key string, diffIDs []string) ([]Change, error) {
	dir, err := s.ActiveDir(key)
	if err != nil {
		return nil, err
	}
	lowers, err := s.lowerDirs(diffIDs)
	if err != nil {
		return nil, err
	}
	return ChangesOf(filepath.Join(dir, "upper"), lowers)
}

// ChangesOf lists how an overlay's upper directory differs from its lower
// ones (top-most first): Store.Changes for an active layer of the store,
// and the guest's file helper for a VM's root overlay.
func ChangesOf(upper string, lowers []string) ([]Change, error) {
	var out []Change
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == upper {
				return fs.SkipAll // never started: no changes
			}
			return err
		}
		if p == upper {
			return nil
		}
		rel := "/" + strings.TrimPrefix(p, upper+"/")
		if isWhiteout(p, d) {
			out = append(out, Change{Kind: 'D', Path: rel})
			return nil
		}
		if inLowers(lowers, rel) {
			out = append(out, Change{Kind: 'C', Path: rel, Dir: d.IsDir()})
		} else {
			out = append(out, Change{Kind: 'A', Path: rel, Dir: d.IsDir()})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// isWhiteout: overlayfs's deletion mark, a 0/0 character device.
func isWhiteout(p string, d fs.DirEntry) bool {
	if d.Type()&fs.ModeCharDevice == 0 {
		return false
	}
	var st unix.Stat_t
	return unix.Lstat(p, &st) == nil && st.Rdev == 0
}

// inLowers says whether rel exists in the layers (top-most first), as
// overlayfs would show it: a whiteout hides it below, and so does an
// opaque directory on its way.
func inLowers(lowers []string, rel string) bool {
	for _, l := range lowers {
		p := filepath.Join(l, rel)
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil {
			return !(st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0)
		}
		// An opaque parent in this layer hides every layer below.
		for parent := filepath.Dir(rel); parent != "/"; parent = filepath.Dir(parent) {
			buf := make([]byte, 1)
			if n, err := unix.Lgetxattr(filepath.Join(l, parent), "trusted.overlay.opaque", buf); err == nil && n == 1 && buf[0] == 'y' {
				return false
			}
		}
	}
	return false
}
