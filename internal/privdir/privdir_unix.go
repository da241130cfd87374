//go:build unix

package privdir

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func check(dir string, closeIt bool) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("private directory %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return &ErrNotPrivate{Path: dir, Reason: "is not a directory"}
	}
	if uid := uint32(os.Geteuid()); st.Uid != uid {
		return &ErrNotPrivate{Path: dir, Reason: fmt.Sprintf("is owned by uid %d, not %d", st.Uid, uid)}
	}
	if closeIt && (st.Mode&0o077 != 0 || st.Mode&0o700 != 0o700) {
		if err := unix.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("private directory %s: take away other users' access: %w", dir, err)
		}
	}
	return nil
}
