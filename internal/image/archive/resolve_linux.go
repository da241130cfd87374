package archive

import (
	"errors"
	"strings"

	"golang.org/x/sys/unix"
)

// forceWalk makes every rootFS use the component-by-component resolver
// instead of openat2(2). Tests set it to exercise the fallback.
var forceWalk bool

// maxSymlinks bounds symlink expansion in the fallback resolver, like the
// kernel's own limit (40).
const maxSymlinks = 40

// rootFS resolves paths strictly inside a directory, given as an open fd.
type rootFS struct {
	fd      int  // O_RDONLY|O_DIRECTORY fd of the layer root
	useWalk bool // openat2 unavailable (ENOSYS) or forced off
}

// open resolves p (clean, relative, "." for the root) inside the root and
// opens the directory it names with flags (O_PATH or O_RDONLY) plus
// O_DIRECTORY|O_CLOEXEC. Every symlink met on the way, absolute or
// relative, is resolved as if root were "/": ".." never climbs above root
// and an absolute target restarts at root. The caller owns the fd.
func (r *rootFS) open(p string, flags int) (int, error) {
	flags |= unix.O_DIRECTORY | unix.O_CLOEXEC
	if p == "." || p == "" {
		return unix.Openat(r.fd, ".", flags, 0)
	}
	if !r.useWalk && !forceWalk {
		how := unix.OpenHow{
			Flags:   uint64(flags),
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		}
		for range 16 {
			fd, err := unix.Openat2(r.fd, p, &how)
			if err == unix.EAGAIN || err == unix.EINTR {
				// RESOLVE_IN_ROOT returns EAGAIN when a concurrent
				// rename might have let ".." escape; retry.
				continue
			}
			if err == unix.ENOSYS {
				r.useWalk = true
				break
			}
			return fd, err
		}
		if !r.useWalk {
			return -1, unix.EAGAIN
		}
	}
	return r.walk(p, flags)
}

// walk is the fallback for kernels without openat2: it opens one
// component at a time with O_PATH|O_NOFOLLOW, keeps a stack of directory
// fds so that ".." pops (and stops at the root), and expands symlinks
// itself by reading them and splicing their target into the remaining
// components, restarting at the root for absolute targets.
func (r *rootFS) walk(p string, flags int) (int, error) {
	stack := []int{r.fd}
	defer func() {
		for _, fd := range stack[1:] {
			unix.Close(fd)
		}
	}()
	comps := strings.Split(p, "/")
	links := 0
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				unix.Close(stack[len(stack)-1])
				stack = stack[:len(stack)-1]
			}
			continue
		}
		cur := stack[len(stack)-1]
		fd, err := unix.Openat(cur, c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			stack = append(stack, fd)
		case unix.S_IFLNK:
			target, err := readlinkFd(fd)
			unix.Close(fd)
			if err != nil {
				return -1, err
			}
			if links++; links > maxSymlinks {
				return -1, unix.ELOOP
			}
			if strings.HasPrefix(target, "/") {
				for _, sfd := range stack[1:] {
					unix.Close(sfd)
				}
				stack = stack[:1]
			}
			comps = append(strings.Split(target, "/"), comps...)
		default:
			unix.Close(fd)
			return -1, unix.ENOTDIR
		}
	}
	return unix.Openat(stack[len(stack)-1], ".", flags, 0)
}

// readlinkFd reads the target of a symlink opened with O_PATH|O_NOFOLLOW.
func readlinkFd(fd int) (string, error) {
	for size := 256; size <= 1<<20; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
	return "", errors.New("symlink target too long")
}
