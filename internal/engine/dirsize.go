package engine

import (
	"io/fs"
	"path/filepath"
	"syscall"
)

// DirSize sums the sizes of the files under dir, each inode once; 0 for
// a directory that is not there.
func DirSize(dir string) int64 {
	var n int64
	seen := map[uint64]bool{}
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			if seen[uint64(st.Ino)] {
				return nil
			}
			seen[uint64(st.Ino)] = true
		}
		n += fi.Size()
		return nil
	})
	return n
}
