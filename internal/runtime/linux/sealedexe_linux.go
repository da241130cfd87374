package linux

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The container init and exec processes run the berth binary inside the
// container's pid namespace before they execve the user's program. While
// they do, a process in the container can reach the binary through
// /proc/<pid>/exe and, if it could write it, replace the runtime on the host
// (CVE-2019-5736). So those processes never run the installed binary: they
// run a read-only bind mount of it under sealedExeDir, where every open for
// writing fails with EROFS whatever the caller's privileges, because the
// read-only flag belongs to a mount the container's mount namespace does
// not contain and so cannot remount. The mount is made once per binary
// (keyed by device, inode, size and mtime) and reused: no copy per container.
// Where the mount cannot be made, a sealed memfd copy is used instead.
const sealedExeDir = "/run/berth/exe"

var sealedExe = sync.OnceValues(func() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	var st unix.Stat_t
	if err := unix.Stat(self, &st); err != nil {
		return "", err
	}
	key := fmt.Sprintf("berth-%x-%x-%x-%x", st.Dev, st.Ino, st.Size, st.Mtim.Nano())
	target := filepath.Join(sealedExeDir, key)
	if sealedOK(target, &st) {
		return target, nil
	}
	if err := makeSealedExe(self, target, &st); err != nil {
		return "", err
	}
	return target, nil
})

// sealedOK reports whether target is our binary on a read-only mount.
func sealedOK(target string, self *unix.Stat_t) bool {
	var st unix.Stat_t
	if unix.Stat(target, &st) != nil || st.Dev != self.Dev || st.Ino != self.Ino {
		return false
	}
	var sfs unix.Statfs_t
	return unix.Statfs(target, &sfs) == nil && sfs.Flags&unix.ST_RDONLY != 0
}

func makeSealedExe(self, target string, st *unix.Stat_t) error {
	if err := os.MkdirAll(sealedExeDir, 0o700); err != nil {
		return err
	}
	l, err := os.OpenFile(filepath.Join(sealedExeDir, ".lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := unix.Flock(int(l.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	if sealedOK(target, st) {
		return nil
	}
	unix.Unmount(target, unix.MNT_DETACH)
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|unix.O_CLOEXEC, 0o500)
	if err != nil {
		return err
	}
	f.Close()
	if err := unix.Mount(self, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s to %s: %w", self, target, err)
	}
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		unix.Unmount(target, unix.MNT_DETACH)
		return fmt.Errorf("make %s read-only: %w", target, err)
	}
	// Forget the seals of binaries that were replaced or removed (their
	// inode has no link left); running processes keep theirs
	// (MNT_DETACH). Another binary that still exists (a second
	// installation, a build beside the installed one) keeps its seal:
	// removing it would fail that binary's next container start.
	entries, _ := os.ReadDir(sealedExeDir)
	for _, e := range entries {
		p := filepath.Join(sealedExeDir, e.Name())
		if p == target || !strings.HasPrefix(e.Name(), "berth-") {
			continue
		}
		var pst unix.Stat_t
		var pfs unix.Statfs_t
		if unix.Stat(p, &pst) == nil && pst.Nlink > 0 && unix.Statfs(p, &pfs) == nil && pfs.Flags&unix.ST_RDONLY != 0 {
			continue
		}
		unix.Unmount(p, unix.MNT_DETACH)
		os.Remove(p)
	}
	return nil
}

// initExecutable is what spawn executes: the sealed binary, or a sealed
// memfd copy when no mount could be made (an fd the child inherits, so the
// path is only valid in the child: /proc/self/fd/N).
func initExecutable() (path string, memfd *os.File, err error) {
	if p, err := sealedExe(); err == nil {
		return p, nil, nil
	}
	f, err := memfdCopy()
	if err != nil {
		return "", nil, fmt.Errorf("cannot protect the runtime binary from the container (CVE-2019-5736): %w", err)
	}
	return "", f, nil
}

func memfdCopy() (*os.File, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("berth-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, err
	}
	dst := os.NewFile(uintptr(fd), "berth-init")
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		dst.Close()
		return nil, err
	}
	for off := int64(0); off < st.Size; {
		n, err := unix.Sendfile(fd, int(src.Fd()), nil, int(st.Size-off))
		if err != nil {
			dst.Close()
			return nil, err
		}
		if n == 0 {
			break
		}
		off += int64(n)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		dst.Close()
		return nil, err
	}
	return dst, nil
}
