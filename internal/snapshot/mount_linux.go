package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/berth-dev/berth/internal/userns"
	specs "github.com/opencontainers/runtime-spec/specs-go"
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

// MountOverlayMapped mounts the overlay of MountOverlay for a container in
// a user namespace of its own, whose mapping (container ID -> host ID) is
// uids and gids: its layers, lower and upper, are idmapped mounts made
// with that mapping, so the files the image has as root are the
// container's root's, and what the container writes is stored with the
// container's IDs, as without a user namespace (diff, commit and the
// layers themselves need no translation; no layer is copied or chowned).
//
// overlayfs itself cannot be idmapped (mount_setattr answers EINVAL on
// 6.18), but its layers can (5.19 and later). The overlay is created as
// the mapped root (fsuid/fsgid the host IDs of container 0): overlayfs
// does its own work (the work directory, whiteouts, copy-up) with its
// creator's credentials, which must be mapped in the upper layer's
// idmapping. The layers are handed over as file descriptors of detached
// mounts (6.13 and later); an older kernel gets them attached, for the
// time of the mount, under a directory next to target.
//
// Seen from the host the overlay shows the host IDs (base+N), and the
// host's root, which is no one in the mapping, cannot create files in
// it: host-side writers go through userns.AsMapped.
func (s *Store) MountOverlayMapped(key string, diffIDs []string, target string, uids, gids []specs.LinuxIDMapping) error {
	dir, err := s.ActiveDir(key)
	if err != nil {
		return err
	}
	lowers, err := s.lowerDirs(diffIDs)
	if err != nil {
		return err
	}
	rootUID, ok1 := hostID(uids, 0)
	rootGID, ok2 := hostID(gids, 0)
	if !ok1 || !ok2 {
		return fmt.Errorf("snapshot: mount overlay of %s: the mapping has no root (container ID 0)", key)
	}
	ns, err := userns.Open(uids, gids)
	if err != nil {
		return fmt.Errorf("snapshot: mount overlay of %s: %w", key, err)
	}
	defer ns.Close()
	var trees []*os.File
	defer func() {
		for _, t := range trees {
			t.Close()
		}
	}()
	clone := func(p string) (*os.File, error) {
		t, err := userns.CloneIDMapped(p, ns)
		if err != nil {
			return nil, fmt.Errorf("snapshot: mount overlay of %s: %w", key, err)
		}
		trees = append(trees, t)
		return t, nil
	}
	lowerTrees := make([]*os.File, len(lowers))
	for i, l := range lowers {
		if lowerTrees[i], err = clone(l); err != nil {
			return err
		}
	}
	// upper and work must be on one mount: the active directory's.
	active, err := clone(dir)
	if err != nil {
		return err
	}
	upper, err := openAt(active, "upper")
	if err != nil {
		return err
	}
	defer upper.Close()
	work, err := openAt(active, "work")
	if err != nil {
		return err
	}
	defer work.Close()
	err = unix.EINVAL
	if !attachLayersForTest {
		err = mountOverlayFds(lowerTrees, upper, work, target, rootUID, rootGID)
	}
	if err != unix.EINVAL {
		if err != nil {
			return fmt.Errorf("snapshot: mount the idmapped overlay of %s at %s: %w", key, target, err)
		}
		return nil
	}
	// Before 6.13 overlayfs takes layers by path only.
	return mountOverlayAttached(key, lowerTrees, active, target, rootUID, rootGID)
}

// attachLayersForTest takes the path of kernels before 6.13.
var attachLayersForTest bool

func hostID(m []specs.LinuxIDMapping, id uint32) (uint32, bool) {
	for _, e := range m {
		if id >= e.ContainerID && id-e.ContainerID < e.Size {
			return e.HostID + id - e.ContainerID, true
		}
	}
	return 0, false
}

func openAt(dir *os.File, name string) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("snapshot: open %s of the active layer: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// mountOverlayFds mounts the overlay of layers given as descriptors,
// created as uid/gid; EINVAL: this kernel takes no descriptors.
func mountOverlayFds(lowers []*os.File, upper, work *os.File, target string, uid, gid uint32) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, l := range lowers {
		if err := unix.FsconfigSetFd(fd, "lowerdir+", int(l.Fd())); err != nil {
			return err
		}
	}
	if err := unix.FsconfigSetFd(fd, "upperdir", int(upper.Fd())); err != nil {
		return err
	}
	if err := unix.FsconfigSetFd(fd, "workdir", int(work.Fd())); err != nil {
		return err
	}
	return createAndMove(fd, target, uid, gid)
}

// createAndMove creates the configured overlay as uid/gid (overlayfs keeps
// its creator's credentials) and mounts it at target.
func createAndMove(fd int, target string, uid, gid uint32) error {
	if err := userns.AsMapped(uid, gid, func() error { return unix.FsconfigCreate(fd) }); err != nil {
		if errors.Is(err, unix.EINVAL) {
			// Not "this kernel takes no descriptors": say what failed.
			return fmt.Errorf("create the overlay: %w", errCreate{err})
		}
		return err
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(mfd)
	return unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH)
}

// errCreate wraps a creation's EINVAL so that it is not taken for the
// refusal of a descriptor.
type errCreate struct{ err error }

func (e errCreate) Error() string { return e.err.Error() }

// mountOverlayAttached is MountOverlayMapped for kernels whose overlayfs
// takes layers only by path: the idmapped layers are attached under a
// private directory next to target, named in the mount, and detached
// again at once (the overlay holds its own references to them).
func mountOverlayAttached(key string, lowers []*os.File, active *os.File, target string, uid, gid uint32) error {
	tmp, err := os.MkdirTemp(filepath.Dir(target), ".layers-")
	if err != nil {
		return err
	}
	var attached []string
	defer func() {
		for i := len(attached) - 1; i >= 0; i-- {
			unix.Unmount(attached[i], unix.MNT_DETACH)
			os.Remove(attached[i])
		}
		os.Remove(tmp)
	}()
	attach := func(t *os.File, name string) (string, error) {
		p := filepath.Join(tmp, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			return "", err
		}
		if err := unix.MoveMount(int(t.Fd()), "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			os.Remove(p)
			return "", fmt.Errorf("snapshot: mount overlay of %s: attach a layer: %w", key, err)
		}
		attached = append(attached, p)
		return p, nil
	}
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for i, l := range lowers {
		p, err := attach(l, "l"+strconv.Itoa(i))
		if err != nil {
			return err
		}
		if err := unix.FsconfigSetString(fd, "lowerdir+", p); err != nil {
			return fmt.Errorf("snapshot: mount the idmapped overlay of %s (this kernel's overlayfs takes no lowerdir+: Linux 6.8 or later is needed): %w", key, err)
		}
	}
	a, err := attach(active, "active")
	if err != nil {
		return err
	}
	if err := unix.FsconfigSetString(fd, "upperdir", filepath.Join(a, "upper")); err != nil {
		return err
	}
	if err := unix.FsconfigSetString(fd, "workdir", filepath.Join(a, "work")); err != nil {
		return err
	}
	if err := createAndMove(fd, target, uid, gid); err != nil {
		return fmt.Errorf("snapshot: mount the idmapped overlay of %s at %s: %w", key, target, err)
	}
	return nil
}

// MountReadOnly mounts the image of diffIDs read-only at target: one
// layer is bound, several are stacked by an overlay without an upper
// directory (overlayfs is then read-only). For an image mounted into a
// container as a volume.
func (s *Store) MountReadOnly(diffIDs []string, target string) error {
	lowers, err := s.lowerDirs(diffIDs)
	if err != nil {
		return err
	}
	if len(lowers) == 1 {
		if err := unix.Mount(lowers[0], target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("snapshot: bind %s at %s: %w", lowers[0], target, err)
		}
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("snapshot: make %s read-only: %w", target, err)
		}
		return nil
	}
	opts := "lowerdir=" + joinLowers(lowers)
	if len(opts) >= unix.Getpagesize() {
		return fmt.Errorf("snapshot: a read-only mount of %d layers makes mount options of %d bytes, over the page this kernel allows", len(lowers), len(opts))
	}
	if err := unix.Mount("overlay", target, "overlay", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("snapshot: mount the layers read-only at %s: %w", target, err)
	}
	return nil
}
