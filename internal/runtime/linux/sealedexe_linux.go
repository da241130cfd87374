package linux

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

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
	self, st, key, err := exeKey()
	if err != nil {
		return "", err
	}
	if filepath.Dir(self) == sealedExeDir && sealedOK(self, st) {
		// We are a seal (berth-rt, re-executed into by berth-runtime).
		return self, nil
	}
	target := filepath.Join(sealedExeDir, "berth-"+key)
	if sealedOK(target, st) {
		return target, nil
	}
	if err := makeSealedExe(self, target, st); err != nil {
		return "", err
	}
	return target, nil
})

// exeKey names this binary's seals: its device, inode, size and mtime.
func exeKey() (self string, st *unix.Stat_t, key string, err error) {
	self, err = os.Executable()
	if err != nil {
		return "", nil, "", err
	}
	st = new(unix.Stat_t)
	if err := unix.Stat(self, st); err != nil {
		return "", nil, "", err
	}
	return self, st, keyOf(st), nil
}

// keyOf is the key of the file st describes; nsexec/trampoline.c computes
// the same.
func keyOf(st *unix.Stat_t) string {
	return fmt.Sprintf("%x-%x-%x-%x", st.Dev, st.Ino, st.Size, st.Mtim.Nano())
}

// sealedRuntime is the runtime binary embedded in this one
// (cmd/berth-rt: the runtime CLI and the init), written once per berth
// binary to sealedExeDir/rt-<key> and sealed the same way, by a read-only
// bind mount of the file onto itself. It starts in about half the time of
// the whole binary (its package initialisation and page faults are the
// runtime's, not the engine's, APIs' and CLI's): every container and exec
// starts one as its init, and berth-runtime re-executes into it
// (nsexec/trampoline.c, which finds it by the same name).
var sealedRuntime = sync.OnceValues(func() (string, error) {
	if len(embeddedRuntime) == 0 {
		return "", errors.New("no embedded init in this build")
	}
	return SealedEmbedded(embeddedPrefixRuntime, embeddedRuntime)
})

// The prefixes of the binaries embedded in berth's, written to
// sealedExeDir as <prefix><key of the berth binary>: each goes with the
// seal of the binary it came from (makeSealedExe).
const (
	embeddedPrefixRuntime = "rt-"
	// EmbeddedPrefixShim: a VM's shim (internal/runtime/vm, cmd/berth-vmm).
	EmbeddedPrefixShim = "vmm-"
)

// SealedEmbedded is data, a binary embedded in this one, written once
// per berth binary to sealedExeDir/<prefix><key> and sealed as the
// runtime is (sealedRuntime).
func SealedEmbedded(prefix, data string) (string, error) {
	_, _, key, err := exeKey()
	if err != nil {
		return "", err
	}
	target := filepath.Join(sealedExeDir, prefix+key)
	if embeddedSealedOK(target, data) {
		return target, nil
	}
	if err := makeSealedEmbedded(target, data); err != nil {
		return "", err
	}
	return target, nil
}

// embeddedSealedOK reports whether target is the embedded binary data,
// whole, on a read-only mount. Only root writes sealedExeDir (0700), and
// the file is written under a temporary name and renamed whole before it
// is sealed.
func embeddedSealedOK(target, data string) bool {
	var st unix.Stat_t
	if unix.Stat(target, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != int64(len(data)) || st.Uid != 0 {
		return false
	}
	var sfs unix.Statfs_t
	return unix.Statfs(target, &sfs) == nil && sfs.Flags&unix.ST_RDONLY != 0
}

func makeSealedEmbedded(target, data string) error {
	// The binary's own seal is made first (a bind mount): making it
	// removes the seals of binaries that are gone, and the inits that
	// came from them.
	if _, err := sealedExe(); err != nil {
		return err
	}
	l, err := lockSealedExeDir()
	if err != nil {
		return err
	}
	defer l.Close()
	if embeddedSealedOK(target, data) {
		return nil
	}
	unix.Unmount(target, unix.MNT_DETACH)
	tmp := target + ".tmp"
	// No fork while the file is open for writing: a child forked by
	// another goroutine meanwhile (a CNI plugin started beside the
	// runtime, say) would hold the descriptor until its own exec, and our
	// exec of the file would fail with ETXTBSY (golang/go#22315).
	syscall.ForkLock.Lock()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_CLOEXEC, 0o500)
	if err != nil {
		syscall.ForkLock.Unlock()
		return err
	}
	_, err = f.WriteString(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	syscall.ForkLock.Unlock()
	if err == nil {
		err = os.Rename(tmp, target)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write the embedded binary to %s: %w", target, err)
	}
	if err := unix.Mount(target, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s onto itself: %w", target, err)
	}
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		unix.Unmount(target, unix.MNT_DETACH)
		return fmt.Errorf("make %s read-only: %w", target, err)
	}
	return nil
}

func lockSealedExeDir() (*os.File, error) {
	l, err := os.OpenFile(filepath.Join(sealedExeDir, ".lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(l.Fd()), unix.LOCK_EX); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

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
	l, err := lockSealedExeDir()
	if err != nil {
		return err
	}
	defer l.Close()
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
	// inode has no link left) or rewritten in place (the key the seal is
	// named by no longer matches what it shows); running processes keep
	// theirs (MNT_DETACH). Another binary that still exists (a second
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
		if unix.Stat(p, &pst) == nil && pst.Nlink > 0 && e.Name() == "berth-"+keyOf(&pst) && unix.Statfs(p, &pfs) == nil && pfs.Flags&unix.ST_RDONLY != 0 {
			continue
		}
		unix.Unmount(p, unix.MNT_DETACH)
		os.Remove(p)
	}
	// An extracted binary goes with the seal of the binary it came from.
	for _, e := range entries {
		var rest string
		ok := false
		for _, prefix := range []string{embeddedPrefixRuntime, EmbeddedPrefixShim} {
			if rest, ok = strings.CutPrefix(e.Name(), prefix); ok {
				break
			}
		}
		if !ok {
			continue
		}
		if _, err := os.Lstat(filepath.Join(sealedExeDir, "berth-"+strings.TrimSuffix(rest, ".tmp"))); err == nil {
			continue
		}
		p := filepath.Join(sealedExeDir, e.Name())
		unix.Unmount(p, unix.MNT_DETACH)
		os.Remove(p)
	}
	return nil
}

// initExecutable is what spawn executes: the sealed binary, or a sealed
// memfd copy when no mount could be made (an fd the child inherits, so the
// path is only valid in the child: /proc/self/fd/N).
func initExecutable() (path string, memfd *os.File, err error) {
	if p, err := sealedRuntime(); err == nil {
		return p, nil, nil
	}
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
