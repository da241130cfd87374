package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// copyBufSize is the size of the pooled buffer used to copy file contents.
const copyBufSize = 1 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

type applier struct {
	ctx   context.Context
	opts  Options
	root  rootFS
	stats *Stats
	buf   []byte

	// name is the raw tar name of the entry being applied (for errors).
	name string

	// Single-slot cache of the last parent directory, opened O_PATH.
	// It is invalidated (cacheDir = "") whenever anything is removed,
	// because only a removal can change what an existing path resolves
	// to. The stale fd is closed on the next miss, not at invalidation,
	// so a caller still holding it for the current entry stays valid.
	cacheDir string
	cacheFd  int

	// written holds the cleaned paths this layer created or updated;
	// kept only in ApplyWhiteouts mode (for opaque directories and
	// same-layer whiteouts).
	written map[string]struct{}

	// dirTimes holds directory times, applied deepest-first at the end.
	dirTimes map[string][2]unix.Timespec

	// setgidDirs are the directories this layer made setgid: files
	// created in them take the directory's group, not ours.
	setgidDirs map[string]bool

	// euid and egid own what this process creates (read once: each is a
	// syscall).
	euid, egid int
}

func apply(ctx context.Context, root string, r io.Reader, opts Options) (st Stats, err error) {
	rfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return st, fmt.Errorf("archive: opening layer root %q: %w", root, err)
	}
	defer unix.Close(rfd)

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)

	a := &applier{
		ctx:      ctx,
		opts:     opts,
		root:     rootFS{fd: rfd},
		stats:    &st,
		buf:      *bp,
		cacheFd:  -1,
		dirTimes: make(map[string][2]unix.Timespec),
		euid:     os.Geteuid(),
		egid:     os.Getegid(),
	}
	if opts.Whiteouts == ApplyWhiteouts {
		a.written = make(map[string]struct{})
	}
	defer func() {
		if a.cacheFd >= 0 {
			unix.Close(a.cacheFd)
		}
	}()

	cr := &CountingReader{R: r}
	defer func() { st.StreamBytes = cr.N }()
	tr := tar.NewReader(cr)
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return st, fmt.Errorf("archive: reading tar after %d entries: %w", st.Entries, err)
		}
		st.Entries++
		if err := a.entry(hdr, tr); err != nil {
			return st, err
		}
	}
	if err := a.finishDirs(); err != nil {
		return st, err
	}
	// Drain whatever follows the end-of-archive marker so that a caller
	// hashing the stream (the diffID) sees all of it.
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		_, rerr := cr.Read(a.buf)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return st, fmt.Errorf("archive: reading past end of tar: %w", rerr)
		}
	}
	if !opts.NoSync {
		if err := unix.Syncfs(rfd); err != nil {
			return st, fmt.Errorf("archive: syncfs %q: %w", root, err)
		}
	}
	return st, nil
}

func (a *applier) fail(op string, err error) error {
	var ee *EntryError
	if errors.As(err, &ee) {
		return err
	}
	return &EntryError{Path: a.name, Op: op, Err: err}
}

func (a *applier) mark(p string) {
	if a.written != nil {
		a.written[p] = struct{}{}
	}
}

func (a *applier) invalidate() { a.cacheDir = "" }

// parent returns an O_PATH fd of directory dir (resolved in root), using
// and refreshing the cache. With create, missing directories are made
// (mode 0755). The fd belongs to the cache: do not close it, and do not
// call parent again while still using it.
func (a *applier) parent(dir string, create bool) (int, error) {
	if dir == "." {
		return a.root.fd, nil
	}
	if a.cacheDir != "" && dir == a.cacheDir {
		return a.cacheFd, nil
	}
	fd, err := a.root.open(dir, unix.O_PATH)
	if err == unix.ENOENT && create {
		fd, err = a.mkdirAll(dir)
	}
	if err != nil {
		return -1, err
	}
	if a.cacheFd >= 0 {
		unix.Close(a.cacheFd)
	}
	a.cacheDir, a.cacheFd = dir, fd
	return fd, nil
}

// mkdirAll creates dir and its missing ancestors (0755, owned by the
// caller) inside root and returns an O_PATH fd of it.
func (a *applier) mkdirAll(dir string) (int, error) {
	fd, err := a.root.open(dir, unix.O_PATH)
	if err != unix.ENOENT {
		return fd, err
	}
	pdir := path.Dir(dir)
	pfd := a.root.fd
	if pdir != "." {
		if pfd, err = a.mkdirAll(pdir); err != nil {
			return -1, err
		}
		defer unix.Close(pfd)
	}
	switch err := unix.Mkdirat(pfd, path.Base(dir), 0o755); err {
	case nil:
		a.mark(dir)
	case unix.EEXIST:
		// Something that is not a directory (say a dangling symlink)
		// is in the way; the open below reports it.
	default:
		return -1, err
	}
	return a.root.open(dir, unix.O_PATH)
}

// removeAllAt removes name in dirfd, recursively if it is a directory,
// without following symlinks. A missing name is not an error.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := clearDir(fd, nil); err != nil {
		unix.Close(fd)
		return err
	}
	unix.Close(fd)
	err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	if err == unix.ENOENT {
		return nil
	}
	return err
}

// readNames lists a directory opened O_RDONLY, without consuming fd.
func readNames(fd int) ([]string, error) {
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dfd), "dir")
	defer f.Close()
	return f.Readdirnames(-1)
}

// clearDir removes the children of the directory fd; keep, if non-nil,
// is asked about each child and may return true to spare it (the child
// is then not removed; keep may recurse into it itself).
func clearDir(fd int, keep func(name string) (bool, error)) error {
	names, err := readNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if keep != nil {
			k, err := keep(n)
			if err != nil {
				return err
			}
			if k {
				continue
			}
		}
		if err := removeAllAt(fd, n); err != nil {
			return err
		}
	}
	return nil
}

// replaceAt clears the way for creating name in pfd after EEXIST.
func (a *applier) replaceAt(pfd int, name string) error {
	a.invalidate()
	return removeAllAt(pfd, name)
}

func (a *applier) entry(hdr *tar.Header, tr *tar.Reader) error {
	a.name = hdr.Name
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		a.stats.Skipped++
		return nil
	}
	dir, base := path.Dir(name), path.Base(name)
	if strings.HasPrefix(base, whiteoutPrefix) {
		switch {
		case base == whiteoutOpaque:
			a.stats.Opaques++
			return a.opaque(dir)
		case strings.HasPrefix(base, whiteoutMeta):
			// aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not content.
			a.stats.Skipped++
			return nil
		}
		target := base[len(whiteoutPrefix):]
		if target == "" || target == "." || target == ".." {
			return unsafeErr(hdr.Name, "whiteout", "whiteout names no file")
		}
		a.stats.Whiteouts++
		return a.whiteout(dir, target)
	}
	if name == "." && hdr.Typeflag != tar.TypeDir {
		return unsafeErr(hdr.Name, "create", "only a directory may name the layer root")
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		a.stats.Dirs++
		return a.mkdir(name, hdr)
	case tar.TypeReg, '\x00', tar.TypeCont, tar.TypeGNUSparse:
		a.stats.Files++
		return a.file(name, hdr, tr)
	case tar.TypeSymlink:
		a.stats.Symlinks++
		return a.symlink(name, hdr)
	case tar.TypeLink:
		a.stats.Hardlinks++
		return a.hardlink(name, hdr)
	case tar.TypeChar, tar.TypeBlock:
		if a.opts.NoDevices {
			return unsafeErr(hdr.Name, "mknod", "device nodes are refused (Options.NoDevices)")
		}
		a.stats.Devices++
		return a.mknod(name, hdr)
	case tar.TypeFifo:
		a.stats.FIFOs++
		return a.mknod(name, hdr)
	}
	return a.fail("create", fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag))
}

func (a *applier) ids(hdr *tar.Header) (int, int, error) {
	if a.opts.IDMap == nil {
		return hdr.Uid, hdr.Gid, nil
	}
	return a.opts.IDMap(hdr.Uid, hdr.Gid)
}

func toTimespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

func times(hdr *tar.Header) [2]unix.Timespec {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return [2]unix.Timespec{toTimespec(at), toTimespec(hdr.ModTime)}
}

// futimens sets the times of an open (non-O_PATH) fd: utimensat(fd, NULL).
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// xattrs returns the SCHILY.xattr.* records of hdr minus overlayfs ones.
func (a *applier) xattrs(hdr *tar.Header) map[string]string {
	var out map[string]string
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if isOverlayXattr(name) {
			a.stats.XattrsSkipped++
			continue
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[name] = v
	}
	return out
}

// metaFd sets owner, mode and xattrs through an fd open for reading or
// writing (regular files and directories): chown first, since chown
// clears setuid/setgid and file capabilities.
func (a *applier) metaFd(fd int, hdr *tar.Header) error {
	uid, gid, err := a.ids(hdr)
	if err != nil {
		return a.fail("map ids", err)
	}
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return a.fail("chown", err)
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return a.fail("chmod", err)
	}
	for k, v := range a.xattrs(hdr) {
		if err := unix.Fsetxattr(fd, k, []byte(v), 0); err != nil {
			return a.fail("setxattr "+k, err)
		}
	}
	return nil
}

func (a *applier) mkdir(name string, hdr *tar.Header) error {
	var fd int
	var err error
	if name == "." {
		fd, err = unix.Openat(a.root.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return a.fail("open", err)
		}
	} else {
		dir, base := path.Dir(name), path.Base(name)
		pfd, err := a.parent(dir, true)
		if err != nil {
			return a.fail("resolve parent", err)
		}
		err = unix.Mkdirat(pfd, base, 0o700)
		if err == unix.EEXIST {
			var st unix.Stat_t
			if err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				if err = a.replaceAt(pfd, base); err == nil {
					err = unix.Mkdirat(pfd, base, 0o700)
				}
			}
		}
		if err != nil {
			return a.fail("mkdir", err)
		}
		fd, err = unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return a.fail("open", err)
		}
	}
	defer unix.Close(fd)
	if err := a.metaFd(fd, hdr); err != nil {
		return err
	}
	a.dirTimes[name] = times(hdr)
	if hdr.Mode&0o2000 != 0 {
		if a.setgidDirs == nil {
			a.setgidDirs = map[string]bool{}
		}
		a.setgidDirs[name] = true
	}
	a.mark(name)
	return nil
}

// createdFinal reports whether a regular file created with mode
// hdr.Mode&0o777 already has its final owner, mode and xattrs, so that
// fchown and fchmod can be skipped (two of the six syscalls of a typical
// file, which dominate layers of many small files). Only in overlay mode,
// where every directory was made by this layer (so none is setgid
// unknowingly), and only without special bits, which must follow chown.
func (a *applier) createdFinal(dir string, hdr *tar.Header) bool {
	if a.opts.Whiteouts != OverlayWhiteouts || hdr.Mode&0o7000 != 0 || uint32(hdr.Mode)&0o777&processUmask() != 0 || a.setgidDirs[dir] {
		return false
	}
	uid, gid, err := a.ids(hdr)
	if err != nil || uid != a.euid || gid != a.egid {
		return false
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			return false
		}
	}
	return true
}

var (
	umaskOnce sync.Once
	umask     uint32
)

// processUmask reads the umask from /proc/self/status (reading it with
// umask(2) would change it for a moment, for every thread). Unknown: 0o777,
// which turns the fast path off.
func processUmask() uint32 {
	umaskOnce.Do(func() {
		umask = 0o777
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					umask = uint32(n)
				}
			}
		}
	})
	return umask
}

const fileFlags = unix.O_CREAT | unix.O_EXCL | unix.O_WRONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW

func (a *applier) file(name string, hdr *tar.Header, tr *tar.Reader) error {
	dir, base := path.Dir(name), path.Base(name)
	pfd, err := a.parent(dir, true)
	if err != nil {
		return a.fail("resolve parent", err)
	}
	final := a.createdFinal(dir, hdr)
	createMode := uint32(0o600)
	if final {
		createMode = uint32(hdr.Mode & 0o777)
	}
	fd, err := unix.Openat(pfd, base, fileFlags, createMode)
	if err == unix.EEXIST {
		if err = a.replaceAt(pfd, base); err == nil {
			fd, err = unix.Openat(pfd, base, fileFlags, createMode)
		}
	}
	if err != nil {
		return a.fail("create", err)
	}
	err = a.writeFile(fd, hdr, tr, final)
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = a.fail("close", cerr)
	}
	if err != nil {
		return err
	}
	a.mark(name)
	return nil
}

// maxSparseSize caps the logical size of a sparse (GNU sparse) entry:
// its holes cost no input bytes, so without a cap a tiny hostile layer
// could make Apply grind through petabytes of zeros. Layers written by
// docker/buildkit never contain sparse entries.
const maxSparseSize = 16 << 30

var zeroBuf = make([]byte, copyBufSize)

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func (a *applier) writeFile(fd int, hdr *tar.Header, tr *tar.Reader, final bool) error {
	sparse := isSparse(hdr)
	if sparse && hdr.Size > maxSparseSize {
		return a.fail("create", fmt.Errorf("sparse file of logical size %d exceeds the %d-byte limit", hdr.Size, int64(maxSparseSize)))
	}
	var off int64
	for {
		n, rerr := tr.Read(a.buf)
		if sparse && n > 0 && bytes.Equal(a.buf[:n], zeroBuf[:n]) {
			// Leave a hole; the final ftruncate sets the size.
			off += int64(n)
			if _, err := unix.Seek(fd, off, io.SeekStart); err != nil {
				return a.fail("seek", err)
			}
			n = 0
		}
		off += int64(n)
		for b := a.buf[:n]; len(b) > 0; {
			w, err := unix.Write(fd, b)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return a.fail("write", err)
			}
			b = b[w:]
		}
		a.stats.FileBytes += int64(n)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return a.fail("read", rerr)
		}
		if err := a.ctx.Err(); err != nil {
			return err
		}
	}
	if sparse {
		if err := unix.Ftruncate(fd, off); err != nil {
			return a.fail("truncate", err)
		}
	}
	if !final {
		if err := a.metaFd(fd, hdr); err != nil {
			return err
		}
	}
	ts := times(hdr)
	if err := futimens(fd, &ts); err != nil {
		return a.fail("utimes", err)
	}
	return nil
}

func procPath(fd int, name string) string {
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	if name != "" {
		p += "/" + name
	}
	return p
}

func (a *applier) symlink(name string, hdr *tar.Header) error {
	dir, base := path.Dir(name), path.Base(name)
	pfd, err := a.parent(dir, true)
	if err != nil {
		return a.fail("resolve parent", err)
	}
	err = unix.Symlinkat(hdr.Linkname, pfd, base)
	if err == unix.EEXIST {
		if err = a.replaceAt(pfd, base); err == nil {
			err = unix.Symlinkat(hdr.Linkname, pfd, base)
		}
	}
	if err != nil {
		return a.fail("symlink", err)
	}
	uid, gid, err := a.ids(hdr)
	if err != nil {
		return a.fail("map ids", err)
	}
	if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return a.fail("lchown", err)
	}
	// Symlinks are never chmod'ed (their mode is meaningless on Linux).
	// xattrs go through the parent's fd: the kernel follows the magic
	// link of the (in-root) parent and lsetxattr does not follow base.
	for k, v := range a.xattrs(hdr) {
		if err := unix.Lsetxattr(procPath(pfd, base), k, []byte(v), 0); err != nil {
			return a.fail("lsetxattr "+k, err)
		}
	}
	ts := times(hdr)
	if err := unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return a.fail("utimes", err)
	}
	a.mark(name)
	return nil
}

func (a *applier) hardlink(name string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return unsafeErr(hdr.Name, "link", "hard link target %q escapes the layer root", hdr.Linkname)
	}
	if target == "." {
		return unsafeErr(hdr.Name, "link", "hard link target %q is the layer root", hdr.Linkname)
	}
	tfd, err := a.root.open(path.Dir(target), unix.O_PATH)
	if err != nil {
		return a.fail("link", fmt.Errorf("hard link target %q: %w", hdr.Linkname, err))
	}
	defer unix.Close(tfd)
	tbase := path.Base(target)
	var tst unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &tst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return a.fail("link", fmt.Errorf("hard link target %q does not exist (it must precede %q in the layer)", hdr.Linkname, hdr.Name))
		}
		return a.fail("link", fmt.Errorf("hard link target %q: %w", hdr.Linkname, err))
	}
	if tst.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unsafeErr(hdr.Name, "link", "hard link target %q is a directory", hdr.Linkname)
	}
	dir, base := path.Dir(name), path.Base(name)
	pfd, err := a.parent(dir, true)
	if err != nil {
		return a.fail("resolve parent", err)
	}
	err = unix.Linkat(tfd, tbase, pfd, base, 0)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Dev == tst.Dev && st.Ino == tst.Ino {
			err = nil // already that very file
		} else if err = a.replaceAt(pfd, base); err == nil {
			err = unix.Linkat(tfd, tbase, pfd, base, 0)
		}
	}
	if err != nil {
		return a.fail("link", fmt.Errorf("to %q: %w", hdr.Linkname, err))
	}
	a.mark(name)
	return nil
}

func (a *applier) mknod(name string, hdr *tar.Header) error {
	var kind uint32
	switch hdr.Typeflag {
	case tar.TypeChar:
		kind = unix.S_IFCHR
	case tar.TypeBlock:
		kind = unix.S_IFBLK
	default:
		kind = unix.S_IFIFO
	}
	dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	if kind == unix.S_IFIFO {
		dev = 0
	}
	dir, base := path.Dir(name), path.Base(name)
	pfd, err := a.parent(dir, true)
	if err != nil {
		return a.fail("resolve parent", err)
	}
	err = unix.Mknodat(pfd, base, kind|0o600, dev)
	if err == unix.EEXIST {
		if err = a.replaceAt(pfd, base); err == nil {
			err = unix.Mknodat(pfd, base, kind|0o600, dev)
		}
	}
	if err != nil {
		return a.fail("mknod", err)
	}
	// Work on an O_PATH fd of the new node: opening a device or FIFO for
	// real would have side effects. fchownat(AT_EMPTY_PATH) takes O_PATH
	// fds; chmod and setxattr go through its /proc magic link, which
	// names exactly this inode (never a symlink: checked by fstat).
	fd, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return a.fail("open", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return a.fail("stat", err)
	}
	if st.Mode&unix.S_IFMT != kind {
		return a.fail("mknod", fmt.Errorf("node changed type under us (mode %#o)", st.Mode))
	}
	uid, gid, err := a.ids(hdr)
	if err != nil {
		return a.fail("map ids", err)
	}
	if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return a.fail("chown", err)
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, procPath(fd, ""), uint32(hdr.Mode&0o7777), 0); err != nil {
		return a.fail("chmod", err)
	}
	for k, v := range a.xattrs(hdr) {
		if err := unix.Setxattr(procPath(fd, ""), k, []byte(v), 0); err != nil {
			return a.fail("setxattr "+k, err)
		}
	}
	ts := times(hdr)
	if err := unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return a.fail("utimes", err)
	}
	a.mark(name)
	return nil
}

func (a *applier) whiteout(dir, target string) error {
	full := path.Join(dir, target)
	if a.opts.Whiteouts == ApplyWhiteouts {
		if _, ok := a.written[full]; ok {
			// A whiteout only hides lower layers, never its own layer.
			return nil
		}
		pfd, err := a.root.open(dir, unix.O_PATH)
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return nil // nothing below to hide
		}
		if err != nil {
			return a.fail("resolve parent", err)
		}
		defer unix.Close(pfd)
		a.invalidate()
		if err := removeAllAt(pfd, target); err != nil {
			return a.fail("whiteout", err)
		}
		return nil
	}
	pfd, err := a.parent(dir, true)
	if err != nil {
		return a.fail("resolve parent", err)
	}
	err = unix.Mknodat(pfd, target, unix.S_IFCHR, 0)
	if err == unix.EEXIST {
		if err = a.replaceAt(pfd, target); err == nil {
			err = unix.Mknodat(pfd, target, unix.S_IFCHR, 0)
		}
	}
	if err != nil {
		return a.fail("whiteout", err)
	}
	uid, gid := 0, 0
	if a.opts.IDMap != nil {
		if uid, gid, err = a.opts.IDMap(0, 0); err != nil {
			return a.fail("map ids", err)
		}
	}
	if err := unix.Fchownat(pfd, target, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return a.fail("chown", err)
	}
	return nil
}

const opaqueXattr = "trusted.overlay.opaque"

func (a *applier) opaque(dir string) error {
	if a.opts.Whiteouts == ApplyWhiteouts {
		fd, err := a.root.open(dir, unix.O_RDONLY)
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return nil
		}
		if err != nil {
			return a.fail("resolve", err)
		}
		defer unix.Close(fd)
		a.invalidate()
		if err := a.clearLower(fd, dir); err != nil {
			return a.fail("opaque", err)
		}
		return nil
	}
	if dir != "." {
		if _, err := a.parent(dir, true); err != nil {
			return a.fail("resolve", err)
		}
	}
	fd, err := a.root.open(dir, unix.O_RDONLY)
	if err != nil {
		return a.fail("resolve", err)
	}
	defer unix.Close(fd)
	if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
		return a.fail("setxattr "+opaqueXattr, err)
	}
	return nil
}

// clearLower removes, under the directory fd (path dir), everything this
// layer did not write, descending into directories it did write.
func (a *applier) clearLower(fd int, dir string) error {
	return clearDir(fd, func(n string) (bool, error) {
		p := path.Join(dir, n)
		if _, ok := a.written[p]; !ok {
			return false, nil
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return false, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			cfd, err := unix.Openat(fd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return false, err
			}
			defer unix.Close(cfd)
			if err := a.clearLower(cfd, p); err != nil {
				return false, err
			}
		}
		return true, nil
	})
}

// finishDirs sets directory times, deepest first, once nothing more will
// be created inside them.
func (a *applier) finishDirs() error {
	dirs := make([]string, 0, len(a.dirTimes))
	for d := range a.dirTimes {
		dirs = append(dirs, d)
	}
	depth := func(p string) int {
		if p == "." {
			return -1
		}
		return strings.Count(p, "/")
	}
	sort.Slice(dirs, func(i, j int) bool {
		if di, dj := depth(dirs[i]), depth(dirs[j]); di != dj {
			return di > dj
		}
		return dirs[i] < dirs[j]
	})
	for _, d := range dirs {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		ts := a.dirTimes[d]
		a.name = d
		if d == "." {
			if err := unix.UtimesNanoAt(a.root.fd, ".", ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return a.fail("utimes", err)
			}
			continue
		}
		pfd, err := a.root.open(path.Dir(d), unix.O_PATH)
		if err == unix.ENOENT || err == unix.ENOTDIR {
			continue // removed later in the layer
		}
		if err != nil {
			return a.fail("resolve parent", err)
		}
		base := path.Base(d)
		var st unix.Stat_t
		err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
		} else if err == unix.ENOENT || err == nil {
			err = nil // replaced or removed later in the layer
		}
		unix.Close(pfd)
		if err != nil {
			return a.fail("utimes", err)
		}
	}
	return nil
}
