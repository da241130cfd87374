package snapshot

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// MountOverlay mounts at target the committed layers diffIDs (bottom
// first) under the active layer key: writes go to key's upper directory.
// It uses the mount API (fsopen/fsconfig, one "lowerdir+" per layer, Linux
// 6.8 and later), which has no limit on the number of layers; older kernels
// get one mount(2) whose option string must fit in a page (about 40 layers
// at berth's path lengths), refused clearly beyond that.
func (s *Store) MountOverlay(key string, diffIDs []string, target string) error {
	dir, err := s.ActiveDir(key)
	if err != nil {
		return err
	}
	lowers, err := s.lowerDirs(diffIDs)
	if err != nil {
		return err
	}
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	err = mountOverlayFsconfig(lowers, upper, work, target)
	if err == nil {
		return nil
	}
	if err != unix.EINVAL && err != unix.ENOSYS && err != unix.EPERM {
		return fmt.Errorf("snapshot: mount overlay of %s at %s: %w", key, target, err)
	}
	opts := "lowerdir=" + joinLowers(lowers) + ",upperdir=" + upper + ",workdir=" + work
	if len(opts) >= unix.Getpagesize() {
		return fmt.Errorf("snapshot: mount overlay of %s: %d layers make mount options of %d bytes, over the page this kernel allows (a kernel of 6.8 or later has no limit)", key, len(lowers), len(opts))
	}
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("snapshot: mount overlay of %s at %s: %w", key, target, err)
	}
	return nil
}

func joinLowers(dirs []string) string {
	s := ""
	for i, d := range dirs {
		if i > 0 {
			s += ":"
		}
		s += d
	}
	return s
}

// mountOverlayFsconfig mounts with the new mount API, one layer per
// fsconfig call.
func mountOverlayFsconfig(lowers []string, upper, work, target string) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, l := range lowers {
		if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
			return err
		}
	}
	if err := unix.FsconfigSetString(fd, "upperdir", upper); err != nil {
		return err
	}
	if err := unix.FsconfigSetString(fd, "workdir", work); err != nil {
		return err
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return err
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(mfd)
	return unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH)
}
