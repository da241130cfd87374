//go:build linux

package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/engine/tinit"
	"github.com/berth-dev/berth/internal/image/archive"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/userns"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// cp and export.
//
// A container's files are reached through a handle of its root and every
// path inside it is resolved in-root (openat2 RESOLVE_IN_ROOT, or
// pathrs-lite where openat2 is missing): a symlink in the container, even
// one planted while the copy runs, cannot lead to a host file. Below the
// resolved path the tree is walked with *at(2) calls that never follow a
// symlink, regular files are opened O_PATH first and reopened only once
// they are known to be regular (a device or FIFO is never opened), and
// writes go through archive.Apply, the confined applier of image layers,
// rooted at the destination directory's handle.
//
// A running container is copied as its processes see it
// (/proc/<pid>/root: its volumes and binds included); a stopped one's
// overlay is mounted for the copy when it is not mounted, and unmounted
// after, with the container's lock held throughout so that it cannot
// start meanwhile. export always reads the overlay (image layers plus the
// container's writes, no volumes, no /proc or /sys contents).

// CopyOptions are `berth cp`'s flags.
type CopyOptions struct {
	// FollowLink (-L) follows a symlink named as the source.
	FollowLink bool
	// Archive (-a) keeps the source's uids and gids; without it the
	// copies belong to the container's root (into a container) or to the
	// caller (out of one), as with docker. Out of a container it also
	// keeps device nodes, setuid and setgid bits and file capabilities,
	// which are otherwise left out (see hostSafety).
	Archive bool
	// Warn, if set, receives what a copy left out.
	Warn func(msg string)
}

// hostSafety is what a copy out of a container to the host leaves out
// unless archive mode asks for everything: a container can make device
// nodes (MKNOD is a default capability) and setuid-root files, and a copy
// that recreated them on the host would hand the host's disks, or root,
// to whoever can reach the destination.
type hostSafety struct {
	devices []string // device nodes not copied (their archive names)
	cleared []string // files whose setuid/setgid bits or capabilities were dropped
	// where names an archive entry as the user knows it (CONTAINER:PATH).
	where func(tarName string) string
}

func (h *hostSafety) warn(warn func(string)) {
	if h == nil || warn == nil {
		return
	}
	list := func(names []string) string {
		var out []string
		for _, n := range names[:min(len(names), 3)] {
			if h.where != nil {
				n = h.where(n)
			}
			out = append(out, n)
		}
		if len(names) > 3 {
			out = append(out, fmt.Sprintf("%d more", len(names)-3))
		}
		return strings.Join(out, ", ")
	}
	if len(h.devices) > 0 {
		warn(fmt.Sprintf("left out %d device node(s) (%s): use cp -a to copy them", len(h.devices), list(h.devices)))
	}
	if len(h.cleared) > 0 {
		warn(fmt.Sprintf("cleared setuid/setgid bits or file capabilities on %d file(s) (%s): use cp -a to keep them", len(h.cleared), list(h.cleared)))
	}
}

// tree is a directory tree paths are resolved in: a container's root
// (confined) or the host's.
type tree struct {
	root     *os.File // O_PATH handle of the tree's "/"
	confined bool
	// idmap is the mapping of a container in a user namespace of its
	// own: its files show host IDs, which are the container's IDs
	// mapped, and its root file system (and volumes) are idmapped
	// mounts, where the host's root is no one and cannot create files.
	idmap *IDMap
}

// apply extracts the tar stream r into the directory dir of the tree,
// the entries' owners mapped by idmap (nil: kept). Into a container in
// a user namespace the owners, container IDs, are written as the host IDs
// they are, by a thread whose file system IDs are the container's root's
// (userns.AsMapped), as the container's root would write them.
func (t *tree) apply(ctx context.Context, dir *os.File, r io.Reader, idmap archive.IDMapFunc) (archive.Stats, error) {
	if t.idmap == nil {
		return archive.Apply(ctx, procFd(int(dir.Fd()), ""), r, applyOptions(idmap))
	}
	m := t.idmap
	toHost := func(uid, gid int) (int, int, error) {
		if idmap != nil {
			var err error
			if uid, gid, err = idmap(uid, gid); err != nil {
				return 0, 0, err
			}
		}
		hu, ok1 := m.HostUID(uint32(uid))
		hg, ok2 := m.HostGID(uint32(gid))
		if uid < 0 || gid < 0 || !ok1 || !ok2 {
			return 0, 0, fmt.Errorf("owner %d:%d is outside the container's user namespace (%s): %w", uid, gid, m, ErrInvalid)
		}
		return int(hu), int(hg), nil
	}
	var st archive.Stats
	rootUID, rootGID := m.Root()
	err := userns.AsMapped(rootUID, rootGID, func() error {
		var err error
		st, err = archive.Apply(ctx, procFd(int(dir.Fd()), ""), r, applyOptions(toHost))
		return err
	})
	return st, err
}

const inRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// open resolves the absolute, clean path p in the tree, following every
// symlink (inside the tree when confined), and opens it with flags
// (O_PATH, perhaps with O_DIRECTORY).
func (t *tree) open(p string, flags int) (*os.File, error) {
	if !t.confined {
		fd, err := unix.Open(p, flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: p, Err: err}
		}
		return os.NewFile(uintptr(fd), p), nil
	}
	rel := strings.TrimLeft(p, "/")
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: inRoot}
	for {
		fd, err := unix.Openat2(int(t.root.Fd()), rel, &how)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), p), nil
		case err == unix.EAGAIN || err == unix.EINTR:
			continue
		case err == unix.ENOSYS:
			return t.openFallback(p, flags)
		}
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
}

// openFallback is open for kernels without openat2.
func (t *tree) openFallback(p string, flags int) (*os.File, error) {
	f, err := pathrs.OpenatInRoot(t.root, p)
	if err != nil {
		return nil, err
	}
	if flags&unix.O_DIRECTORY != 0 {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			f.Close()
			return nil, &os.PathError{Op: "open", Path: p, Err: unix.ENOTDIR}
		}
	}
	return f, nil
}

// node is one file of a tree: the entry name of the directory fd, or,
// with name "", the file fd itself (an O_PATH handle).
type node struct {
	f    *os.File
	name string
	st   unix.Stat_t
}

func (n *node) fd() int        { return int(n.f.Fd()) }
func (n *node) close()         { n.f.Close() }
func (n *node) isDir() bool    { return n.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (n *node) isLink() bool   { return n.st.Mode&unix.S_IFMT == unix.S_IFLNK }
func (n *node) typeOf() string { return fileType(n.st.Mode) }

// lookup finds p; with follow a symlink that p names is followed too.
// source finds what a copy reads: docker's "could not find" when it is
// missing, and a refusal when "path/" names something that is no
// directory. where names the path in messages.
func (t *tree) source(src cpPath, follow bool, where func(string) string) (*node, error) {
	n, err := t.lookup(src.clean, follow || src.dirOnly)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, notFound(fmt.Sprintf("could not find %s", where(src.clean)))
		}
		return nil, err
	}
	if src.dirOnly && !n.isDir() {
		n.close()
		return nil, fmt.Errorf("source %s is not a directory: %w", where(src.clean), ErrInvalid)
	}
	return n, nil
}

func (t *tree) lookup(p string, follow bool) (*node, error) {
	if follow || p == "/" {
		f, err := t.open(p, unix.O_PATH)
		if err != nil {
			return nil, err
		}
		n := &node{f: f}
		if err := unix.Fstat(n.fd(), &n.st); err != nil {
			f.Close()
			return nil, &os.PathError{Op: "stat", Path: p, Err: err}
		}
		return n, nil
	}
	d, err := t.open(path.Dir(p), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	n := &node{f: d, name: path.Base(p)}
	if err := unix.Fstatat(n.fd(), n.name, &n.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		d.Close()
		return nil, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	return n, nil
}

// resolveLinks follows the symlinks that p itself names (its parents are
// followed by every lookup anyway) and returns the path of what they lead
// to, which may not exist.
func (t *tree) resolveLinks(p string) (string, error) {
	for range 40 {
		n, err := t.lookup(p, false)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return p, nil
			}
			return "", err
		}
		if !n.isLink() {
			n.close()
			return p, nil
		}
		target, err := readlinkAt(n.fd(), n.name)
		n.close()
		if err != nil {
			return "", err
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = path.Clean(target)
	}
	return "", &os.PathError{Op: "resolve", Path: p, Err: unix.ELOOP}
}

func readlinkAt(fd int, name string) (string, error) {
	for size := 256; size <= 1<<20; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
	return "", errors.New("symlink target too long")
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFREG:
		return "file"
	case unix.S_IFLNK:
		return "symlink"
	}
	return "special file"
}

func procFd(fd int, name string) string {
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	if name != "" {
		p += "/" + name
	}
	return p
}

// archiver writes files as a tar stream: numeric owners, modes, mtimes
// (seconds), symlinks, hard links (by inode), device nodes, FIFOs and the
// xattrs keepXattr accepts. Sockets are left out.
type archiver struct {
	ctx       context.Context
	tw        *tar.Writer
	links     map[[2]uint64]string
	keepXattr func(string) bool
	// descend says whether a directory's contents are written (rel is
	// its name in the archive).
	descend func(rel string, d *os.File, st *unix.Stat_t) bool
	zeros   []byte
	// safety, if set, leaves out device nodes and setuid/setgid bits and
	// file capabilities, and records what it left out.
	safety *hostSafety
	// idmap, if set, is the mapping of the container whose files are
	// read: the host IDs they show are written as the container's.
	idmap *IDMap
}

func newArchiver(ctx context.Context, w io.Writer, keepXattr func(string) bool) *archiver {
	return &archiver{ctx: ctx, tw: tar.NewWriter(w), links: map[[2]uint64]string{}, keepXattr: keepXattr}
}

// paxXattr prefixes an xattr's name in a PAX record.
const paxXattr = "SCHILY.xattr."

// onlyCapability keeps security.capability, the one xattr docker's cp
// carries (file capabilities of a binary).
func onlyCapability(name string) bool { return name == "security.capability" }

// allXattrs keeps every xattr but overlayfs's own (which the merged view
// hides anyway, and which could forge whiteouts where the tar is applied).
func allXattrs(name string) bool {
	return !strings.HasPrefix(name, "trusted.overlay.") && !strings.HasPrefix(name, "user.overlay.")
}

// mqueueMagic is mqueue's statfs type (x/sys does not name it).
const mqueueMagic = 0x19800202

// pseudoFS reports a file system whose contents are not files to copy.
func pseudoFS(d *os.File) bool {
	var s unix.Statfs_t
	if unix.Fstatfs(int(d.Fd()), &s) != nil {
		return false
	}
	switch s.Type {
	case unix.PROC_SUPER_MAGIC, unix.SYSFS_MAGIC, unix.CGROUP_SUPER_MAGIC, unix.CGROUP2_SUPER_MAGIC,
		unix.DEVPTS_SUPER_MAGIC, unix.DEBUGFS_MAGIC, unix.TRACEFS_MAGIC, unix.SECURITYFS_MAGIC,
		unix.BPF_FS_MAGIC, mqueueMagic, unix.NSFS_MAGIC:
		return true
	}
	return false
}

func (a *archiver) header(st *unix.Stat_t, name string) *tar.Header {
	uid, gid := st.Uid, st.Gid
	if a.idmap != nil {
		uid, gid = a.idmap.ContainerUID(uid), a.idmap.ContainerGID(gid)
	}
	return &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(uid),
		Gid:     int(gid),
		ModTime: time.Unix(st.Mtim.Sec, 0),
		Format:  tar.FormatPAX,
	}
}

func (a *archiver) xattrs(hdr *tar.Header, fd int, name string) error {
	if a.keepXattr == nil {
		return nil
	}
	p := procFd(fd, name)
	list, get := unix.Llistxattr, unix.Lgetxattr
	if name == "" {
		list, get = unix.Listxattr, unix.Getxattr
	}
	var names []byte
	for size := 1024; ; size *= 4 {
		buf := make([]byte, size)
		n, err := list(p, buf)
		if err == unix.ERANGE && size < 1<<20 {
			continue
		}
		if err == unix.ENOTSUP || err == unix.ENODATA {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list xattrs of %s: %w", hdr.Name, err)
		}
		names = buf[:n]
		break
	}
	for _, k := range strings.Split(string(names), "\x00") {
		if k == "" || !a.keepXattr(k) {
			continue
		}
		for size := 256; size <= 1<<20; size *= 4 {
			buf := make([]byte, size)
			n, err := get(p, k, buf)
			if err == unix.ERANGE {
				continue
			}
			if err == unix.ENODATA || err == unix.ENOTSUP {
				break
			}
			if err != nil {
				return fmt.Errorf("read xattr %s of %s: %w", k, hdr.Name, err)
			}
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords[paxXattr+k] = string(buf[:n])
			break
		}
	}
	return nil
}

// openDir opens the directory name of fd (fd itself when name is "") for
// reading, never following a symlink.
func openDir(fd int, name string) (*os.File, error) {
	var nfd int
	var err error
	if name == "" {
		nfd, err = unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		nfd, err = unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(nfd), name), nil
}

// openRegular opens name of fd (fd itself when name is "") for reading if
// it is a regular file, and returns nil (no error) if it is not: an O_PATH
// handle is checked first, so a device or FIFO swapped in is never opened.
func openRegular(fd int, name string) (*os.File, *unix.Stat_t, error) {
	h := fd
	if name != "" {
		var err error
		if h, err = unix.Openat(fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err != nil {
			return nil, nil, err
		}
		defer unix.Close(h)
	}
	var st unix.Stat_t
	if err := unix.Fstat(h, &st); err != nil {
		return nil, nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil, nil
	}
	rfd, err := unix.Open(procFd(h, ""), unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(rfd), name), &st, nil
}

// node writes the file name of fd (fd itself when name is "") as tarName,
// a directory with its contents.
func (a *archiver) node(fd int, name string, st *unix.Stat_t, tarName string) error {
	if err := a.ctx.Err(); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		d, err := openDir(fd, name)
		if err != nil {
			if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
				return nil // changed while the copy runs
			}
			return fmt.Errorf("open %s: %w", tarName, err)
		}
		defer d.Close()
		var dst unix.Stat_t
		if err := unix.Fstat(int(d.Fd()), &dst); err != nil {
			return err
		}
		hdr := a.header(&dst, tarName+"/")
		hdr.Typeflag = tar.TypeDir
		if err := a.xattrs(hdr, fd, name); err != nil {
			return err
		}
		if err := a.tw.WriteHeader(hdr); err != nil {
			return err
		}
		if a.descend != nil && !a.descend(tarName, d, &dst) {
			return nil
		}
		return a.children(d, tarName)
	case unix.S_IFREG:
		key := [2]uint64{st.Dev, st.Ino}
		if st.Nlink > 1 {
			if first, ok := a.links[key]; ok {
				hdr := a.header(st, tarName)
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				return a.tw.WriteHeader(hdr)
			}
		}
		f, fst, err := openRegular(fd, name)
		if err != nil {
			if err == unix.ENOENT {
				return nil
			}
			return fmt.Errorf("open %s: %w", tarName, err)
		}
		if f == nil {
			return nil // no longer a regular file
		}
		defer f.Close()
		hdr := a.header(fst, tarName)
		hdr.Typeflag, hdr.Size = tar.TypeReg, fst.Size
		if err := a.xattrs(hdr, fd, name); err != nil {
			return err
		}
		if a.safety != nil {
			_, caps := hdr.PAXRecords[paxXattr+"security.capability"]
			if hdr.Mode&0o6000 != 0 || caps {
				hdr.Mode &^= 0o6000
				delete(hdr.PAXRecords, paxXattr+"security.capability")
				a.safety.cleared = append(a.safety.cleared, tarName)
			}
		}
		if err := a.tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fst.Nlink > 1 {
			a.links[[2]uint64{fst.Dev, fst.Ino}] = tarName
		}
		return a.contents(f, fst.Size)
	case unix.S_IFLNK:
		target, err := readlinkAt(fd, name)
		if err != nil {
			if err == unix.ENOENT || err == unix.EINVAL {
				return nil
			}
			return fmt.Errorf("readlink %s: %w", tarName, err)
		}
		hdr := a.header(st, tarName)
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		if err := a.xattrs(hdr, fd, name); err != nil {
			return err
		}
		return a.tw.WriteHeader(hdr)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if a.safety != nil && st.Mode&unix.S_IFMT != unix.S_IFIFO {
			a.safety.devices = append(a.safety.devices, tarName)
			return nil
		}
		hdr := a.header(st, tarName)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			hdr.Typeflag = tar.TypeChar
		case unix.S_IFBLK:
			hdr.Typeflag = tar.TypeBlock
		default:
			hdr.Typeflag = tar.TypeFifo
		}
		if hdr.Typeflag != tar.TypeFifo {
			hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		}
		if err := a.xattrs(hdr, fd, name); err != nil {
			return err
		}
		return a.tw.WriteHeader(hdr)
	}
	return nil // a socket: tar has no such entry
}

// contents copies size bytes of f; a file that shrank meanwhile is padded
// with zeros, one that grew is cut at size (the header is written).
func (a *archiver) contents(f *os.File, size int64) error {
	n, err := io.Copy(a.tw, io.LimitReader(f, size))
	if err != nil {
		return err
	}
	for n < size {
		if a.zeros == nil {
			a.zeros = make([]byte, 32<<10)
		}
		k := int64(len(a.zeros))
		if size-n < k {
			k = size - n
		}
		if _, err := a.tw.Write(a.zeros[:k]); err != nil {
			return err
		}
		n += k
	}
	return nil
}

// children writes a directory's entries, sorted, named under prefix ("":
// at the top of the archive).
func (a *archiver) children(d *os.File, prefix string) error {
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read directory %s: %w", prefix, err)
	}
	sort.Strings(names)
	fd := int(d.Fd())
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue // removed while the copy runs
			}
			return fmt.Errorf("lstat %s: %w", path.Join(prefix, n), err)
		}
		child := n
		if prefix != "" {
			child = prefix + "/" + n
		}
		if err := a.node(fd, n, &st, child); err != nil {
			return err
		}
	}
	return nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeArchive writes n as name (its contents only, when name is "" and
// n is a directory) to w.
func writeArchive(ctx context.Context, n *node, name string, w io.Writer, safety *hostSafety, idmap *IDMap) error {
	a := newArchiver(ctx, w, onlyCapability)
	a.safety = safety
	a.idmap = idmap
	a.descend = func(_ string, d *os.File, _ *unix.Stat_t) bool { return !pseudoFS(d) }
	if name == "" {
		d, err := openDir(n.fd(), n.name)
		if err != nil {
			return err
		}
		defer d.Close()
		if !pseudoFS(d) {
			if err := a.children(d, ""); err != nil {
				return err
			}
		}
	} else if err := a.node(n.fd(), n.name, &n.st, name); err != nil {
		return err
	}
	return a.tw.Close()
}

// cpPath is a cp argument: the clean path and what its spelling says
// (docker's rules: "dir/." copies dir's contents, a trailing "/" demands a
// directory).
type cpPath struct {
	clean        string
	contentsOnly bool // ends in "/."
	dirOnly      bool // ends in "/" or "/."
}

func parseCpPath(p string) cpPath {
	cp := cpPath{clean: path.Clean("/" + p)}
	cp.contentsOnly = p == "." || strings.HasSuffix(p, "/.")
	cp.dirOnly = cp.contentsOnly || strings.HasSuffix(p, "/")
	return cp
}

// hostCpPath makes a host path absolute (against the working directory),
// keeping its trailing "/" or "/.".
func hostCpPath(p string) (cpPath, error) {
	if !filepath.IsAbs(p) {
		wd, err := os.Getwd()
		if err != nil {
			return cpPath{}, err
		}
		p = wd + "/" + p
	}
	return parseCpPath(p), nil
}

// hostSide is a host path of cp (relative to the working directory) and
// the host's tree it is resolved in; the caller closes the tree's root.
func hostSide(p string) (cpPath, *tree, error) {
	cp, err := hostCpPath(p)
	if err != nil {
		return cpPath{}, nil, err
	}
	t, err := hostTree()
	if err != nil {
		return cpPath{}, nil, err
	}
	return cp, t, nil
}

// archiveTopName is the name of a copy's top entry in its tar stream, by
// docker's rules: the source's base name, none for a directory's contents
// ("dir/." or "/").
func archiveTopName(sp cpPath, isDir bool) string {
	if isDir && (sp.contentsOnly || sp.clean == "/") {
		return ""
	}
	return path.Base(sp.clean)
}

// copyTree copies src of the tree from to dst of the tree to, with
// docker's rules for what dst names, and returns the bytes of the tar
// stream in between.
// srcWhere and dstWhere name a path of either side in messages.
func copyTree(ctx context.Context, from *tree, src cpPath, to *tree, dst cpPath, o CopyOptions, idmap archive.IDMapFunc, safety *hostSafety, srcWhere, dstWhere func(string) string) (int64, error) {
	sn, err := from.source(src, o.FollowLink, srcWhere)
	if err != nil {
		return 0, err
	}
	defer sn.close()
	into, name, err := destination(to, sn.isDir(), src, dst, srcWhere, dstWhere)
	if err != nil {
		return 0, err
	}
	dd, err := to.open(into, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return 0, err
	}
	defer dd.Close()
	if safety != nil {
		safety.where = func(t string) string {
			if name != "" {
				t = strings.TrimPrefix(strings.TrimPrefix(t, name), "/")
			}
			return srcWhere(path.Join(src.clean, t))
		}
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	cw := &countingWriter{w: pw}
	go func() {
		err := writeArchive(ctx, sn, name, cw, safety, from.idmap)
		pw.CloseWithError(err)
		done <- err
	}()
	_, aerr := to.apply(ctx, dd, pr, idmap)
	if aerr != nil {
		pr.CloseWithError(aerr)
	} else {
		pr.Close()
	}
	werr := <-done
	switch {
	case aerr == nil && werr == nil:
		return cw.n, nil
	case aerr == nil, errors.Is(aerr, werr):
		// Reading failed (the applier saw the reader's error).
		return cw.n, werr
	}
	return cw.n, writeError(aerr)
}

// destination applies docker's rules for what dst names to a copy of
// src (a directory or not) into the tree to: the directory the copy
// goes into and the name its top entry gets there ("" for the contents
// of a directory).
func destination(to *tree, srcIsDir bool, src, dst cpPath, srcWhere, dstWhere func(string) string) (into, name string, err error) {
	contents := src.contentsOnly || src.clean == "/"
	dp, err := to.resolveLinks(dst.clean)
	if err != nil {
		return "", "", err
	}
	dn, err := to.lookup(dp, false)
	switch {
	case err == nil && dn.isDir():
		dn.close()
		into = dp
		if !srcIsDir || !contents {
			name = path.Base(src.clean)
		}
	case err == nil:
		dn.close()
		if srcIsDir {
			return "", "", fmt.Errorf("cannot copy a directory to a file: %s is a %s: %w", dstWhere(dst.clean), dn.typeOf(), ErrInvalid)
		}
		if dst.dirOnly {
			return "", "", fmt.Errorf("destination %s is not a directory: %w", dstWhere(dst.clean), ErrInvalid)
		}
		into, name = path.Dir(dp), path.Base(dp)
	case errors.Is(err, os.ErrNotExist):
		if dst.dirOnly && !srcIsDir {
			return "", "", notFound(fmt.Sprintf("destination directory %s does not exist", dstWhere(dst.clean)))
		}
		pn, err := to.lookup(path.Dir(dp), true)
		if err != nil {
			return "", "", notFound(fmt.Sprintf("destination directory %s does not exist", dstWhere(path.Dir(dp))))
		}
		isDir := pn.isDir()
		pn.close()
		if !isDir {
			return "", "", fmt.Errorf("destination %s is not a directory: %w", dstWhere(path.Dir(dp)), ErrInvalid)
		}
		into, name = path.Dir(dp), path.Base(dp)
	default:
		return "", "", err
	}
	if name == "/" {
		name = ""
	}
	dd, err := to.open(into, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return "", "", err
	}
	defer dd.Close()
	if name != "" {
		// docker refuses to replace a directory by a non-directory and
		// the reverse (the applier would remove what is there).
		var st unix.Stat_t
		if unix.Fstatat(int(dd.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
			switch {
			case isDir && !srcIsDir:
				return "", "", fmt.Errorf("cannot overwrite directory %s with non-directory %s: %w", dstWhere(path.Join(into, name)), srcWhere(src.clean), ErrInvalid)
			case !isDir && srcIsDir:
				return "", "", fmt.Errorf("cannot overwrite non-directory %s with directory %s: %w", dstWhere(path.Join(into, name)), srcWhere(src.clean), ErrInvalid)
			}
		}
	}
	return into, name, nil
}

func applyOptions(idmap archive.IDMapFunc) archive.Options {
	return archive.Options{Whiteouts: archive.ApplyWhiteouts, IDMap: idmap, NoSync: true}
}

// writeError says what EROFS means to a user of cp.
func writeError(err error) error {
	if errors.Is(err, unix.EROFS) {
		return fmt.Errorf("container rootfs is marked read-only (%v): %w", err, ErrInvalidState)
	}
	return err
}

// extractInto applies a tar stream to dst, which must be a directory.
func extractInto(ctx context.Context, to *tree, dst cpPath, r io.Reader, idmap archive.IDMapFunc, where func(string) string) (int64, error) {
	dp, err := to.resolveLinks(dst.clean)
	if err != nil {
		return 0, err
	}
	dd, err := to.open(dp, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("destination %s must be a directory that exists: %w", where(dst.clean), ErrInvalid)
		}
		return 0, err
	}
	defer dd.Close()
	// Apply counts what it read, failed or not.
	st, err := to.apply(ctx, dd, r, idmap)
	if err != nil {
		return st.StreamBytes, writeError(err)
	}
	return st.StreamBytes, nil
}

func hostWhere(p string) string { return p }

func hostTree() (*tree, error) {
	f, err := os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &tree{root: f}, nil
}

// notFoundError is a missing path, in docker's words; it is
// os.ErrNotExist.
type notFoundError string

func (e notFoundError) Error() string        { return string(e) }
func (e notFoundError) Is(target error) bool { return target == os.ErrNotExist }

func notFound(msg string) error { return notFoundError(msg) }

// errStopped: the container stopped while its root was being opened.
var errStopped = errors.New("container stopped")

// openRunningRoot opens a running container's root: as its processes see
// it (live), or the overlay mount in the host's namespace.
func (e *Engine) openRunningRoot(ctx context.Context, c *Container, live bool) (*os.File, error) {
	rc, err := e.driver.Load(ctx, c.ID)
	if err != nil {
		return nil, errStopped
	}
	if st := rc.Status(); st != runtime.StatusRunning && st != runtime.StatusPaused {
		return nil, errStopped
	}
	f, err := rc.OpenRoot()
	if errors.Is(err, runtime.ErrNotSupported) {
		return nil, filesInVM(c, err)
	}
	if live {
		if err != nil {
			return nil, errStopped
		}
		return f, nil
	}
	if f != nil {
		f.Close()
	}
	p := e.rootfs(c.ID)
	if !mounted(p) {
		return nil, errStopped
	}
	f, err = os.OpenFile(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, errStopped
	}
	if rc.Status() == runtime.StatusStopped {
		f.Close()
		return nil, errStopped
	}
	return f, nil
}

// filesInVM refuses diff (and cp or export that found no way to the
// guest) of a running container whose files its driver cannot show on the
// host (a VM's: its writes live in the guest; the host's overlay holds
// only the image's files, so using it would silently miss them). See docs/architecture.md, "cp and export of
// a VM container".
func filesInVM(c *Container, err error) error {
	return fmt.Errorf("container %s runs in a VM (isolation %s) whose changes diff cannot list yet (cp and export reach a running one's files): %w", c.Name, c.HostConfig.Isolation, err)
}

// containerRoot opens a container's root for cp (live: a running
// container's as its processes see it) or export (the overlay). A
// container that does not run has its overlay mounted if it is not, and
// its lock held until release, which unmounts what it mounted. write
// refuses a read-only root filesystem (a running container's mounts
// refuse by themselves).
func (e *Engine) containerRoot(ctx context.Context, ref string, live, write bool) (*Container, *os.File, func(), error) {
	for attempt := 0; ; attempt++ {
		c, err := e.Get(ctx, ref)
		if err != nil {
			return nil, nil, nil, err
		}
		switch c.State.Status {
		case StatusCreating, StatusRemoving, StatusDead:
			return nil, nil, nil, fmt.Errorf("container %s is %s: %w", c.Name, c.State.Status, ErrInvalidState)
		case StatusRunning, StatusPaused:
			f, err := e.openRunningRoot(ctx, c, live)
			if err == nil {
				return c, f, func() { f.Close() }, nil
			}
			if !errors.Is(err, errStopped) {
				return nil, nil, nil, err
			}
		}
		unlock, err := e.lock(ctx, c.ID)
		if err != nil {
			return nil, nil, nil, err
		}
		if c, err = e.get(ctx, c.ID); err != nil {
			unlock()
			return nil, nil, nil, err
		}
		if (c.State.Status == StatusRunning || c.State.Status == StatusPaused) && alive(c.State.MonitorPid, c.State.MonitorStart) {
			if rc, err := e.driver.Load(ctx, c.ID); err == nil && rc.Status() != runtime.StatusStopped {
				// It started meanwhile.
				unlock()
				if attempt < 3 {
					continue
				}
				return nil, nil, nil, fmt.Errorf("container %s keeps changing state: %w", c.Name, ErrInvalidState)
			}
		}
		switch c.State.Status {
		case StatusCreating, StatusRemoving, StatusDead:
			unlock()
			return nil, nil, nil, fmt.Errorf("container %s is %s: %w", c.Name, c.State.Status, ErrInvalidState)
		}
		if write && c.HostConfig.ReadonlyRootfs {
			unlock()
			return nil, nil, nil, fmt.Errorf("container rootfs is marked read-only: %w", ErrInvalidState)
		}
		target := e.rootfs(c.ID)
		mountedHere := false
		if !mounted(target) {
			if err := e.mountRootfs(c); err != nil {
				unlock()
				return nil, nil, nil, fmt.Errorf("container %s: mount its root filesystem: %w", c.Name, err)
			}
			mountedHere = true
		}
		release := func() {
			if mountedHere {
				unmountRootfs(target)
			}
			unlock()
		}
		f, err := os.OpenFile(target, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			release()
			return nil, nil, nil, err
		}
		return c, f, func() { f.Close(); release() }, nil
	}
}

// containerCpPath is a container path of cp: relative ones are relative
// to the container's "/", as with docker.
func containerCpPath(p string) cpPath {
	if p == "" {
		p = "/"
	}
	return parseCpPath(p)
}

// CopyToContainer copies the host path src (or, when src is "-", the tar
// stream r, extracted into the directory dst) to dst in the container,
// with docker's rules, and returns the bytes copied (the tar stream's).
func (e *Engine) copyToContainer(ctx context.Context, ref, src, dst string, o CopyOptions, r io.Reader) (int64, error) {
	if c, err := e.Get(ctx, ref); err == nil {
		// A read-only root file system refuses first, whatever runs it
		// and wherever its files are.
		if c.HostConfig.ReadonlyRootfs && e.inVM(c) {
			return 0, fmt.Errorf("container rootfs is marked read-only: %w", ErrInvalidState)
		}
		var n int64
		if handled, err := e.withGuestFiles(ctx, c, []string{dst}, func(gf runtime.GuestFiles) (err error) {
			n, err = e.copyToGuest(ctx, c, gf, src, dst, o, r)
			return err
		}); handled {
			return n, err
		}
	}
	c, root, release, err := e.containerRoot(ctx, ref, true, true)
	if err != nil {
		return 0, err
	}
	defer release()
	ct := &tree{root: root, confined: true, idmap: c.IDMap}
	where := func(p string) string { return c.Name + ":" + p }
	var idmap archive.IDMapFunc
	if !o.Archive {
		idmap = func(int, int) (int, int, error) { return 0, 0, nil }
	}
	if src == "-" {
		return extractInto(ctx, ct, containerCpPath(dst), r, idmap, where)
	}
	sp, ht, err := hostSide(src)
	if err != nil {
		return 0, err
	}
	defer ht.root.Close()
	return copyTree(ctx, ht, sp, ct, containerCpPath(dst), o, idmap, nil, hostWhere, where)
}

// CopyFromContainer copies src in the container to the host path dst
// (or, when dst is "-", writes it to w as a tar stream), with docker's
// rules, and returns the bytes copied (the tar stream's).
func (e *Engine) copyFromContainer(ctx context.Context, ref, src, dst string, o CopyOptions, w io.Writer) (int64, error) {
	if c, err := e.Get(ctx, ref); err == nil {
		var n int64
		if handled, err := e.withGuestFiles(ctx, c, []string{src}, func(gf runtime.GuestFiles) (err error) {
			n, err = e.copyFromGuest(ctx, c, gf, containerCpPath(src), src, dst, o, w)
			return err
		}); handled {
			return n, err
		}
	}
	c, root, release, err := e.containerRoot(ctx, ref, true, false)
	if err != nil {
		return 0, err
	}
	defer release()
	ct := &tree{root: root, confined: true, idmap: c.IDMap}
	sp := containerCpPath(src)
	where := func(p string) string { return c.Name + ":" + p }
	if dst == "-" {
		sn, err := ct.source(sp, o.FollowLink, where)
		if err != nil {
			return 0, err
		}
		defer sn.close()
		name := archiveTopName(sp, sn.isDir())
		cw := &countingWriter{w: w}
		err = writeArchive(ctx, sn, name, cw, nil, c.IDMap)
		return cw.n, err
	}
	dp, ht, err := hostSide(dst)
	if err != nil {
		return 0, err
	}
	defer ht.root.Close()
	var idmap archive.IDMapFunc
	var safety *hostSafety
	if !o.Archive {
		uid, gid := os.Getuid(), os.Getgid()
		idmap = func(int, int) (int, int, error) { return uid, gid, nil }
		safety = &hostSafety{}
	}
	n, err := copyTree(ctx, ct, sp, ht, dp, o, idmap, safety, where, hostWhere)
	safety.warn(o.Warn)
	return n, err
}

// Export writes a container's root filesystem as a tar stream, as docker
// export does: the overlay's merged view (image layers and the
// container's writes, so no whiteouts), without the contents of /proc,
// /sys or anything mounted over it, with numeric owners, modes, mtimes,
// symlinks, hard links, device nodes and xattrs.
func (e *Engine) export(ctx context.Context, ref string, w io.Writer) error {
	if c, err := e.Get(ctx, ref); err == nil {
		if handled, err := e.withGuestFiles(ctx, c, nil, func(gf runtime.GuestFiles) error {
			return guestCall(ctx, gf, []string{"export"}, nil, w)
		}); handled {
			return err
		}
	}
	c, root, release, err := e.containerRoot(ctx, ref, false, false)
	if err != nil {
		return err
	}
	defer release()
	return exportRoot(ctx, root, c.IDMap, w)
}

// exportRoot writes the tree under root as export does.
func exportRoot(ctx context.Context, root *os.File, idmap *IDMap, w io.Writer) error {
	d, err := openDir(int(root.Fd()), "")
	if err != nil {
		return err
	}
	defer d.Close()
	var rst unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &rst); err != nil {
		return err
	}
	a := newArchiver(ctx, w, allXattrs)
	a.idmap = idmap
	a.descend = func(rel string, _ *os.File, st *unix.Stat_t) bool {
		return rel != "proc" && rel != "sys" && st.Dev == rst.Dev
	}
	if err := a.children(d, ""); err != nil {
		return err
	}
	return a.tw.Close()
}

// Change is one difference of a container's filesystem from its image
// (docker diff): Kind 0 changed, 1 added, 2 deleted, as docker's API
// numbers them.
type Change struct {
	Path string `json:"Path"`
	Kind int    `json:"Kind"`
}

// KindLetter is docker diff's letter for a change.
func (c Change) KindLetter() string { return [...]string{"C", "A", "D"}[c.Kind] }

// Diff lists the files a container added, changed or deleted.
func (e *Engine) Diff(ctx context.Context, ref string) ([]Change, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	switch c.State.Status {
	case StatusCreating, StatusRemoving, StatusDead:
		return nil, fmt.Errorf("container %s is %s: %w", c.Name, c.State.Status, ErrInvalidState)
	}
	var changes []snapshot.Change
	if e.inVM(c) {
		// Its changes are on its VM's disk: the file helper lists them
		// in the guest, the running VM's or one booted for its files.
		diff := func(gf runtime.GuestFiles) error {
			var buf bytes.Buffer
			if err := guestCall(ctx, gf, []string{"diff"}, nil, &buf); err != nil {
				return err
			}
			return json.Unmarshal(buf.Bytes(), &changes)
		}
		if _, err = e.withGuestFiles(ctx, c, nil, diff); err != nil {
			return nil, fmt.Errorf("container %s: %w", c.Name, err)
		}
	} else if changes, err = e.snapshots.Changes(c.ID, c.DiffIDs); err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Name, err)
	}
	// The mount points berth made in the writable layer (its /etc files,
	// --init, volumes and binds) are not the container's changes: docker
	// makes them in a layer of its own that diff does not show. So go
	// the directories that changed only by holding them.
	ours := ownMountPoints(c)
	var kept []snapshot.Change
	for _, ch := range changes {
		if !ours[ch.Path] {
			kept = append(kept, ch)
		}
	}
	out := []Change{}
	for i, ch := range kept {
		if ch.Kind == 'C' && ch.Dir && !slices.ContainsFunc(kept[i+1:], func(o snapshot.Change) bool { return strings.HasPrefix(o.Path, ch.Path+"/") }) {
			continue
		}
		out = append(out, Change{Path: ch.Path, Kind: map[byte]int{'C': 0, 'A': 1, 'D': 2}[ch.Kind]})
	}
	return out, nil
}

// ownMountPoints are the paths berth bind-mounts into a container, whose
// mount points it made in the writable layer: its /etc files, --init,
// volumes and binds. diff and commit leave them out.
func ownMountPoints(c *Container) map[string]bool {
	ours := map[string]bool{"/etc/hosts": true, "/etc/hostname": true, "/etc/resolv.conf": true, tinit.Path: true}
	for _, m := range c.Mounts {
		ours[path.Clean(m.Destination)] = true
	}
	return ours
}

// upperDir is a container's writable layer.
func (e *Engine) upperDir(id string) string {
	dir, _ := e.snapshots.ActiveDir(id)
	return filepath.Join(dir, "upper")
}

// CopyToContainer is copyToContainer with docker's event
// (extract-to-dir) for a copy that went in.
func (e *Engine) CopyToContainer(ctx context.Context, ref, src, dst string, o CopyOptions, r io.Reader) (int64, error) {
	n, err := e.copyToContainer(ctx, ref, src, dst, o, r)
	if err == nil {
		e.emitRef(ctx, ref, "extract-to-dir", map[string]string{"path": dst})
	}
	return n, err
}

// CopyFromContainer is copyFromContainer with docker's event
// (archive-path).
func (e *Engine) CopyFromContainer(ctx context.Context, ref, src, dst string, o CopyOptions, w io.Writer) (int64, error) {
	n, err := e.copyFromContainer(ctx, ref, src, dst, o, w)
	if err == nil {
		e.emitRef(ctx, ref, "archive-path", map[string]string{"path": src})
	}
	return n, err
}

// Export is export with docker's event (export).
func (e *Engine) Export(ctx context.Context, ref string, w io.Writer) error {
	err := e.export(ctx, ref, w)
	if err == nil {
		e.emitRef(ctx, ref, "export", nil)
	}
	return err
}
