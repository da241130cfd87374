package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

func hostRlimit(resource int) (cur, max uint64, err error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(resource, &r); err != nil {
		return 0, 0, err
	}
	return r.Cur, r.Max, nil
}

func hostLastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// hostKernelVersion is the running kernel's version, nil when unknown.
func hostKernelVersion() *kernelVersion {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return nil
	}
	v, ok := parseKernelVersion(unix.ByteSliceToString(u.Release[:]), true)
	if !ok {
		return nil
	}
	return &v
}

// openInRoot opens name (a path inside the image, such as "/etc/passwd")
// for reading with every component, symlinks included, resolved as if
// rootfs were /.
func openInRoot(rootfs, name string) (*os.File, error) {
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: rootfs, Err: err}
	}
	defer unix.Close(root)
	rel := strings.TrimLeft(filepath.Clean("/"+name), "/")
	how := &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(root, rel, how)
		if err == nil {
			return os.NewFile(uintptr(fd), filepath.Join(rootfs, rel)), nil
		}
		switch {
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			continue
		case errors.Is(err, unix.ENOSYS):
			return openJoined(rootfs, name)
		}
		return nil, &os.PathError{Op: "openat2", Path: filepath.Join(rootfs, rel), Err: err}
	}
}

// openJoined is the fallback for kernels before 5.6: resolve lexically
// inside rootfs, then refuse a symlink in the last component. A concurrent
// writer to the rootfs could race it; berth's own unpacked images have none.
func openJoined(rootfs, name string) (*os.File, error) {
	p, err := securejoin.SecureJoin(rootfs, name)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in %s: %w", name, rootfs, err)
	}
	return os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
}
