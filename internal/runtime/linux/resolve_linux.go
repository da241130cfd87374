package linux

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// In-root path resolution for the rootfs set-up. openat2(2) with
// RESOLVE_IN_ROOT makes the kernel resolve every component, symlinks and
// ".." included, as if root were "/": nothing can lead out of it. The init
// does this dozens of times per container before any process of the
// container exists, so it calls openat2 directly; pathrs-lite (which adds
// procfs checks for long-lived callers facing concurrent attackers) is the
// fallback for kernels without openat2.

const inRootResolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

var errNoOpenat2 = errors.New("openat2 unavailable")

func openat2InRoot(root *os.File, path string, flags int) (*os.File, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: inRootResolve}
	for {
		fd, err := unix.Openat2(int(root.Fd()), path, &how)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), path), nil
		case err == unix.EAGAIN || err == unix.EINTR:
			continue // a concurrent rename or mount: try again
		case err == unix.ENOSYS:
			return nil, errNoOpenat2
		}
		return nil, &os.PathError{Op: "openat2", Path: path, Err: err}
	}
}

// openInRoot returns an O_PATH handle of path resolved inside root.
func openInRoot(root *os.File, path string) (*os.File, error) {
	f, err := openat2InRoot(root, path, unix.O_PATH)
	if err == errNoOpenat2 {
		return pathrs.OpenatInRoot(root, path)
	}
	return f, err
}

// reopen turns an O_PATH handle into a real open file.
func reopen(h *os.File, flags int) (*os.File, error) {
	return pathrs.Reopen(h, flags|unix.O_CLOEXEC)
}

// mkdirAllInRoot makes path (and its missing parents) inside root and
// returns an O_PATH handle of it. Each prefix is resolved from root, so a
// symlink in the image is followed as the container would follow it.
func mkdirAllInRoot(root *os.File, path string, mode uint32) (*os.File, error) {
	f, err := openat2InRoot(root, path, unix.O_PATH|unix.O_DIRECTORY)
	if err == errNoOpenat2 {
		return pathrs.MkdirAllHandle(root, path, os.FileMode(mode))
	}
	if err == nil || !errors.Is(err, unix.ENOENT) {
		return f, err
	}
	parts := strings.Split(strings.Trim(filepath.Clean("/"+path), "/"), "/")
	parent, err := openat2InRoot(root, "/", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	for i, name := range parts {
		prefix := "/" + strings.Join(parts[:i+1], "/")
		next, err := openat2InRoot(root, prefix, unix.O_PATH|unix.O_DIRECTORY)
		if errors.Is(err, unix.ENOENT) {
			if merr := unix.Mkdirat(int(parent.Fd()), name, mode); merr != nil && merr != unix.EEXIST {
				parent.Close()
				return nil, &os.PathError{Op: "mkdirat", Path: prefix, Err: merr}
			}
			next, err = openat2InRoot(root, prefix, unix.O_PATH|unix.O_DIRECTORY)
		}
		parent.Close()
		if err != nil {
			return nil, fmt.Errorf("make directory %s: %w", prefix, err)
		}
		parent = next
	}
	return parent, nil
}
