package linux

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/userns"
)

// rootfs sets up a container's root filesystem inside the init's new mount
// namespace. Every path under the rootfs is resolved inside it (symlinks
// cannot point out) and every mount goes to /proc/self/fd/N of the resolved
// handle, never to a path string the image could redirect.
type rootfs struct {
	path     string   // absolute rootfs path on the host (RootfsIsCwd: /proc/self/fd/N of root)
	display  string   // the rootfs as messages name it
	root     *os.File // O_PATH handle of path
	userns   bool     // in a user namespace: devices are bind-mounted
	cgroupNS bool
	cfg      *initConfig
	devNull  *os.File // the host's /dev/null, verified, for masking
	// cgroupPaths waits until the container's cgroup exists and
	// cfg.CgroupPaths names it; cgroup mounts call it first. inCgroup
	// waits until the process is in it (and has its cgroup namespace):
	// a cgroup2 mount in a cgroup namespace and device nodes need that.
	cgroupPaths, inCgroup func() error
	// deferred are cgroup mounts left for finish, so that everything
	// that does not need the cgroup overlaps the wait for it.
	deferred []specs.Mount
}

// canDefer reports whether mounts[i] can be done after everything else:
// nothing mounted later, masked or made read-only lies beneath it.
func canDefer(spec *specs.Spec, i int) bool {
	dest := filepath.Clean("/" + spec.Mounts[i].Destination)
	under := func(p string) bool {
		p = filepath.Clean("/" + p)
		return p == dest || strings.HasPrefix(p, dest+"/")
	}
	for _, m := range spec.Mounts[i+1:] {
		if under(m.Destination) {
			return false
		}
	}
	for _, p := range append(append([]string(nil), spec.Linux.MaskedPaths...), spec.Linux.ReadonlyPaths...) {
		if under(p) {
			return false
		}
	}
	return true
}

// finish does what needs the container's cgroup: the deferred cgroup
// mounts, and device nodes (mknod is checked by the devices cgroup, whose
// rules are in place once the parent says the init joined).
func (r *rootfs) finish() error {
	if err := r.cgroupPaths(); err != nil {
		return err
	}
	for _, m := range r.deferred {
		if err := r.mount(m); err != nil {
			return err
		}
	}
	if err := r.inCgroup(); err != nil {
		return err
	}
	return r.createDevices(r.cfg.Spec.Linux.Devices)
}

func fdPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

func setupRootfs(cfg *initConfig, cgroupPaths, inCgroup func() error) (*rootfs, error) {
	spec := cfg.Spec
	r := &rootfs{path: cfg.Rootfs, display: cfg.Rootfs, cfg: cfg, cgroupPaths: cgroupPaths, inCgroup: inCgroup, userns: cfg.NewUserNS || hasNamespace(spec, specs.UserNamespace, false),
		cgroupNS: hasNamespace(spec, specs.CgroupNamespace, false)}

	if cfg.HostMountNS {
		// Without a mount namespace of its own the container's mounts are
		// the host's: leave the host's propagation alone.
		return r.populate()
	}
	// Keep our mounts from propagating to the host unless asked.
	prop := uintptr(unix.MS_SLAVE | unix.MS_REC)
	if p, ok := propagationOptions[spec.Linux.RootfsPropagation]; ok {
		prop = p | unix.MS_REC
	} else if spec.Linux.RootfsPropagation != "" {
		return nil, fmt.Errorf("linux.rootfsPropagation %q is not one of shared, slave, private, unbindable (r-prefixed too)", spec.Linux.RootfsPropagation)
	}
	if err := unix.Mount("", "/", "", prop, ""); err != nil {
		return nil, fmt.Errorf("set propagation of / to %s: %w", spec.Linux.RootfsPropagation, err)
	}
	// pivot_root refuses a new root whose parent mount is shared (only
	// possible when we just made everything shared).
	if prop&unix.MS_SHARED != 0 {
		if cfg.RootfsIsCwd {
			// The mount we start in is the parent of the root to be,
			// and the path to it may not be ours to look up.
			if err := unix.Mount("", ".", "", unix.MS_PRIVATE, ""); err != nil {
				return nil, fmt.Errorf("make %s private for pivot_root: %w", r.display, err)
			}
		} else if err := makeParentMountPrivate(r.display); err != nil {
			return nil, err
		}
	}
	return r.populate()
}

func (r *rootfs) populate() (*rootfs, error) {
	cfg, spec := r.cfg, r.cfg.Spec
	if cfg.RootfsIsCwd {
		// The rootfs is our working directory (see usermounts_linux.go):
		// a copy of its mount tree attached over it is the root, and
		// everything after goes through its handle.
		tree, err := userns.Clone(unix.AT_FDCWD, ".", true)
		if err != nil {
			return nil, fmt.Errorf("bind mount rootfs %s onto itself: %w", r.display, err)
		}
		if err := unix.MoveMount(int(tree.Fd()), "", unix.AT_FDCWD, ".", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			tree.Close()
			return nil, fmt.Errorf("bind mount rootfs %s onto itself: %w", r.display, err)
		}
		r.root = tree
		r.path = fdPath(tree)
	} else {
		if err := unix.Mount(r.path, r.path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return nil, fmt.Errorf("bind mount rootfs %s onto itself: %w", r.display, err)
		}
		root, err := os.OpenFile(r.path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open rootfs %s: %w", r.display, err)
		}
		r.root = root
	}
	if err := r.openDevNull(); err != nil {
		return nil, err
	}

	for i, m := range spec.Mounts {
		if fd, ok := cfg.MountTrees[i]; ok {
			tree := os.NewFile(uintptr(fd), "mount-tree")
			if err := r.attachTree(m, filepath.Clean("/"+m.Destination), parseMountOptions(m.Options), tree); err != nil {
				return nil, err
			}
			continue
		}
		if (m.Type == "cgroup" || m.Type == "cgroup2") && canDefer(spec, i) {
			r.deferred = append(r.deferred, m)
			continue
		}
		if err := r.mount(m); err != nil {
			return nil, err
		}
	}
	if err := r.devLinks(); err != nil {
		return nil, err
	}
	if cfg.Process != nil && cfg.Process.Cwd != "" {
		d, err := mkdirAllInRoot(r.root, cfg.Process.Cwd, 0o755)
		if err != nil {
			return nil, fmt.Errorf("create process.cwd %s in rootfs %s: %w", cfg.Process.Cwd, r.display, err)
		}
		d.Close()
	}
	return r, nil
}

func (r *rootfs) close() {
	if r.root != nil {
		r.root.Close()
	}
	if r.devNull != nil {
		r.devNull.Close()
	}
}

// openDevNull opens the host's /dev/null now, before anything of the
// container's is mounted, and checks it is the real character device: masks
// bind this inode, so a /dev/null replaced by a symlink or file in the
// container cannot disable or redirect them (CVE-2025-31133).
func (r *rootfs) openDevNull() error {
	f, err := os.OpenFile("/dev/null", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open host /dev/null: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		f.Close()
		return fmt.Errorf("host /dev/null is not the 1:3 character device; refusing to use it for masked paths")
	}
	r.devNull = f
	return nil
}

// makeParentMountPrivate makes the mount that holds path private if it is
// shared, so pivot_root (and a rootfsPropagation of shared) work.
func makeParentMountPrivate(path string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(path))
	if err != nil {
		return err
	}
	var best *mountinfo.Info
	for _, m := range mounts {
		if best == nil || len(m.Mountpoint) > len(best.Mountpoint) {
			best = m
		}
	}
	if best == nil || !strings.Contains(best.Optional, "shared:") {
		return nil
	}
	if err := unix.Mount("", best.Mountpoint, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private for pivot_root: %w", best.Mountpoint, err)
	}
	return nil
}

// target resolves dest inside the rootfs, creating it (a directory, or a
// file when file is true) if it is missing, and returns an O_PATH handle.
func (r *rootfs) target(dest string, file bool) (*os.File, error) {
	h, err := openInRoot(r.root, dest)
	if err == nil {
		return h, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return nil, err
	}
	if !file {
		return mkdirAllInRoot(r.root, dest, 0o755)
	}
	dir, err := mkdirAllInRoot(r.root, filepath.Dir(dest), 0o755)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	fd, err := unix.Openat(int(dir.Fd()), filepath.Base(dest), unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_WRONLY, 0o644)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, err
	}
	if err == nil {
		unix.Close(fd)
	}
	return openInRoot(r.root, dest)
}

func (r *rootfs) show(dest string) string { return filepath.Join(r.display, dest) }

func (r *rootfs) mount(m specs.Mount) error {
	dest := filepath.Clean("/" + m.Destination)
	opts := parseMountOptions(m.Options)
	if idmap, _ := wantsIDMap(m); idmap {
		// The parent makes them (prepareMountTrees): this one it did not.
		return fmt.Errorf("mount %s on %s: an idmapped mount the runtime did not prepare", m.Source, r.show(dest))
	}
	typ := m.Type
	bind := opts.flags&unix.MS_BIND != 0 || typ == "bind"
	if bind {
		return r.bindMount(m, dest, opts)
	}
	switch typ {
	case "cgroup", "cgroup2":
		if err := r.cgroupPaths(); err != nil {
			return err
		}
		return r.mountCgroup(m, dest, opts)
	case "sysfs":
		if r.userns && !hasNamespace(r.cfg.Spec, specs.NetworkNamespace, true) {
			// A user namespace without its own network namespace may not
			// mount sysfs; give it the host's, read-only, as runc does.
			return r.bindMount(specs.Mount{Source: "/sys", Destination: dest, Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}, dest, parseMountOptions([]string{"rbind", "nosuid", "noexec", "nodev", "ro"}))
		}
	}
	t, err := r.target(dest, false)
	if err != nil {
		return fmt.Errorf("mount %s on %s: create mount point: %w", typ, r.show(dest), err)
	}
	defer t.Close()
	if typ == "proc" || typ == "sysfs" {
		// The mount point must be a real directory, not a symlink to
		// somewhere the kernel would then expose.
		var st unix.Stat_t
		if err := unix.Fstat(int(t.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("mount %s on %s: mount point is not a directory", typ, r.show(dest))
		}
	}
	src := m.Source
	if src == "" {
		src = typ
	}
	if err := unix.Mount(src, fdPath(t), typ, opts.flags, opts.dataString()); err != nil {
		if typ == "mqueue" && r.userns && errors.Is(err, unix.EPERM) {
			return r.bindMount(specs.Mount{Source: "/dev/mqueue", Destination: dest}, dest, parseMountOptions([]string{"rbind", "nosuid", "noexec", "nodev"}))
		}
		return fmt.Errorf("mount %s on %s: %w", typ, r.show(dest), err)
	}
	if hasOption(m.Options, "tmpcopyup") {
		if err := r.copyUp(dest); err != nil {
			return err
		}
	}
	return r.finishMount(dest, opts, false)
}

func (r *rootfs) bindMount(m specs.Mount, dest string, opts mountOptions) error {
	var st unix.Stat_t
	if err := unix.Stat(m.Source, &st); err != nil {
		return fmt.Errorf("bind mount %s on %s: source: %w", m.Source, r.show(dest), err)
	}
	t, err := r.target(dest, st.Mode&unix.S_IFMT != unix.S_IFDIR)
	if err != nil {
		return fmt.Errorf("bind mount %s on %s: create mount point: %w", m.Source, r.show(dest), err)
	}
	defer t.Close()
	if err := unix.Mount(m.Source, fdPath(t), "", unix.MS_BIND|(opts.flags&unix.MS_REC), ""); err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", m.Source, r.show(dest), err)
	}
	return r.finishMount(dest, opts, true)
}

// finishMount applies what mount(2) ignores on the first call: read-only
// and other flags of bind mounts, propagation, and recursive attributes.
func (r *rootfs) finishMount(dest string, opts mountOptions, bind bool) error {
	const remountable = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
		unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_STRICTATIME | unix.MS_NOSYMFOLLOW
	needRemount := bind && opts.flags&remountable != 0
	if !needRemount && len(opts.propagate) == 0 && !opts.recSet {
		return nil
	}
	// Reopen: the old handle is the mount point, not the new mount's root.
	t, err := openInRoot(r.root, dest)
	if err != nil {
		return fmt.Errorf("reopen mount %s: %w", r.show(dest), err)
	}
	defer t.Close()
	if needRemount {
		if err := remountBind(t, opts.flags&remountable); err != nil {
			return fmt.Errorf("remount %s with %s: %w", r.show(dest), describeFlags(opts.flags&remountable), err)
		}
	}
	for _, p := range opts.propagate {
		if err := unix.Mount("", fdPath(t), "", p, ""); err != nil {
			return fmt.Errorf("set propagation of %s: %w", r.show(dest), err)
		}
	}
	if opts.recSet {
		if err := unix.MountSetattr(int(t.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &opts.recAttr); err != nil {
			return fmt.Errorf("set recursive mount attributes on %s: %w", r.show(dest), err)
		}
	}
	return nil
}

// remountBind changes a bind mount's flags, keeping the ones the kernel
// locks (nosuid, nodev, noexec, atime) when they came from a mount owned by
// a more privileged user namespace.
func remountBind(t *os.File, flags uintptr) error {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(t.Fd()), &sfs); err == nil {
		for _, f := range []struct{ st, ms uintptr }{
			{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		} {
			if uintptr(sfs.Flags)&f.st != 0 {
				flags |= f.ms
			}
		}
	}
	err := unix.Mount("", fdPath(t), "", unix.MS_BIND|unix.MS_REMOUNT|flags, "")
	if errors.Is(err, unix.EPERM) && sfs.Flags != 0 {
		// Keep the atime flags the source had, which may also be locked.
		for _, f := range []struct{ st, ms uintptr }{
			{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
		} {
			if uintptr(sfs.Flags)&f.st != 0 {
				flags |= f.ms
			}
		}
		err = unix.Mount("", fdPath(t), "", unix.MS_BIND|unix.MS_REMOUNT|flags, "")
	}
	return err
}

func describeFlags(f uintptr) string {
	var out []string
	for name, o := range mountFlagOptions {
		if !o.Clear && o.Flag != 0 && f&o.Flag == o.Flag && name != "defaults" && name != "rbind" && name != "bind" {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return "flags 0x" + strconv.FormatUint(uint64(f), 16)
	}
	return strings.Join(out, ",")
}

// copyUp copies what the image had under dest into the tmpfs just mounted
// on it ("tmpcopyup"). Both trees are walked through directory fds with
// O_NOFOLLOW, so no path component can be swapped for a symlink that leads
// out of either.
func (r *rootfs) copyUp(dest string) error {
	// The image's files are under the tmpfs now; reach them through a
	// second, non-recursive view of the rootfs.
	// The bind goes one level below a 0700 directory: without a mount
	// namespace of its own, it is visible on the host while the copy
	// runs, and the mount point takes the rootfs's mode.
	parent, err := os.MkdirTemp("", "berth-copyup-")
	if err != nil {
		return err
	}
	defer os.Remove(parent)
	tmp := filepath.Join(parent, "rootfs")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := unix.Mount(r.path, tmp, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("tmpcopyup %s: %w", r.show(dest), err)
	}
	defer unix.Unmount(tmp, unix.MNT_DETACH)
	srcH, err := pathrs.OpenInRoot(tmp, dest)
	if err != nil {
		return nil // nothing to copy
	}
	defer srcH.Close()
	src, err := pathrs.Reopen(srcH, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return nil // not a directory: nothing to copy
	}
	defer src.Close()
	dstH, err := openInRoot(r.root, dest)
	if err != nil {
		return fmt.Errorf("tmpcopyup %s: %w", r.show(dest), err)
	}
	defer dstH.Close()
	dst, err := reopen(dstH, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("tmpcopyup %s: %w", r.show(dest), err)
	}
	defer dst.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return err
	}
	if err := unix.Fchmod(int(dst.Fd()), st.Mode&0o7777); err != nil {
		return err
	}
	if err := unix.Fchown(int(dst.Fd()), int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := copyDirAt(int(src.Fd()), int(dst.Fd())); err != nil {
		return fmt.Errorf("tmpcopyup %s: %w", r.show(dest), err)
	}
	return nil
}

// copyDirAt copies the entries of directory src into directory dst,
// keeping modes, owners, symlinks and device nodes.
func copyDirAt(src, dst int) error {
	names, err := readDirNames(src)
	if err != nil {
		return err
	}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(src, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		perm := st.Mode & 0o7777
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := unix.Mkdirat(dst, name, perm); err != nil && err != unix.EEXIST {
				return err
			}
			sfd, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			dfd, err := unix.Openat(dst, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				unix.Close(sfd)
				return err
			}
			err = copyDirAt(sfd, dfd)
			if err == nil {
				err = unix.Fchmod(dfd, perm)
			}
			unix.Close(sfd)
			unix.Close(dfd)
			if err != nil {
				return err
			}
		case unix.S_IFREG:
			if err := copyFileAt(src, dst, name, perm); err != nil {
				return err
			}
		case unix.S_IFLNK:
			buf := make([]byte, unix.PathMax)
			n, err := unix.Readlinkat(src, name, buf)
			if err != nil {
				return err
			}
			if err := unix.Symlinkat(string(buf[:n]), dst, name); err != nil {
				return err
			}
		default:
			if err := unix.Mknodat(dst, name, st.Mode, int(st.Rdev)); err != nil {
				return err
			}
		}
		if err := unix.Fchownat(dst, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}

func copyFileAt(src, dst int, name string, perm uint32) error {
	in, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	inF := os.NewFile(uintptr(in), name)
	defer inF.Close()
	out, err := unix.Openat(dst, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if err != nil {
		return err
	}
	outF := os.NewFile(uintptr(out), name)
	defer outF.Close()
	if _, err := io.Copy(outF, inF); err != nil {
		return err
	}
	return outF.Chmod(os.FileMode(perm&0o777) | unixModeBits(perm))
}

// unixModeBits turns setuid/setgid/sticky bits into os.FileMode bits.
func unixModeBits(perm uint32) os.FileMode {
	var m os.FileMode
	if perm&unix.S_ISUID != 0 {
		m |= os.ModeSetuid
	}
	if perm&unix.S_ISGID != 0 {
		m |= os.ModeSetgid
	}
	if perm&unix.S_ISVTX != 0 {
		m |= os.ModeSticky
	}
	return m
}

// readDirNames lists a directory fd without consuming or closing it.
func readDirNames(fd int) ([]string, error) {
	dup, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), "dir")
	defer f.Close()
	return f.Readdirnames(-1)
}

// mountCgroup gives the container its cgroups. cgroup2 with a cgroup
// namespace is a plain mount; otherwise the container's own cgroup
// directories are bind-mounted, one per v1 hierarchy, under a tmpfs.
func (r *rootfs) mountCgroup(m specs.Mount, dest string, opts mountOptions) error {
	t, err := r.target(dest, false)
	if err != nil {
		return fmt.Errorf("mount cgroup on %s: %w", r.show(dest), err)
	}
	defer t.Close()
	paths := r.cfg.CgroupPaths
	if unified, ok := paths[""]; ok && len(paths) == 1 {
		if r.cgroupNS {
			// Mounted in our cgroup namespace: once we are in the cgroup
			// it is rooted at.
			if err := r.inCgroup(); err != nil {
				return err
			}
			if err := unix.Mount("cgroup2", fdPath(t), "cgroup2", opts.flags, opts.dataString()); err != nil {
				return fmt.Errorf("mount cgroup2 on %s: %w", r.show(dest), err)
			}
			return r.finishMount(dest, opts, false)
		}
		return r.bindMount(specs.Mount{Source: unified, Destination: dest}, dest, parseMountOptions(append([]string{"rbind"}, m.Options...)))
	}
	ro := opts.flags & unix.MS_RDONLY
	if err := unix.Mount("tmpfs", fdPath(t), "tmpfs", (opts.flags&^unix.MS_RDONLY)|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755"); err != nil {
		return fmt.Errorf("mount tmpfs for cgroups on %s: %w", r.show(dest), err)
	}
	// The tmpfs is ours and nothing of the container runs yet: its
	// directories are made and mounted on through its fd directly.
	th, err := openInRoot(r.root, dest)
	if err != nil {
		return fmt.Errorf("mount cgroup on %s: %w", r.show(dest), err)
	}
	defer th.Close()
	dir, err := reopen(th, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("mount cgroup on %s: %w", r.show(dest), err)
	}
	defer dir.Close()
	names := make([]string, 0, len(paths))
	for subsystem := range paths {
		names = append(names, subsystem)
	}
	sort.Strings(names)
	for _, subsystem := range names {
		host := paths[subsystem]
		name := strings.TrimPrefix(subsystem, "name=")
		if name == "" || strings.ContainsAny(name, "/.") {
			continue
		}
		if err := unix.Mkdirat(int(dir.Fd()), name, 0o755); err != nil {
			return fmt.Errorf("mount cgroup on %s: %w", r.show(filepath.Join(dest, name)), err)
		}
		sub := fdPath(dir) + "/" + name
		if err := unix.Mount(host, sub, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // a hierarchy without the container (removed meanwhile)
			}
			return fmt.Errorf("bind cgroup %s on %s: %w", host, r.show(filepath.Join(dest, name)), err)
		}
		if err := unix.Mount("", sub, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|ro, ""); err != nil {
			return fmt.Errorf("remount cgroup %s: %w", r.show(filepath.Join(dest, name)), err)
		}
	}
	if ro != 0 {
		t2, err := openInRoot(r.root, dest)
		if err != nil {
			return err
		}
		defer t2.Close()
		if err := unix.Mount("", fdPath(t2), "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755"); err != nil {
			return fmt.Errorf("remount cgroup tmpfs %s read-only: %w", r.show(dest), err)
		}
	}
	return nil
}

type devSpec struct {
	path         string
	typ          string
	major, minor int64
	mode         os.FileMode
	uid, gid     uint32
}

var defaultDevices = []devSpec{
	{"/dev/null", "c", 1, 3, 0o666, 0, 0},
	{"/dev/zero", "c", 1, 5, 0o666, 0, 0},
	{"/dev/full", "c", 1, 7, 0o666, 0, 0},
	{"/dev/random", "c", 1, 8, 0o666, 0, 0},
	{"/dev/urandom", "c", 1, 9, 0o666, 0, 0},
	{"/dev/tty", "c", 5, 0, 0o666, 0, 0},
}

// createDevices makes the default devices and linux.devices. In a user
// namespace mknod is not allowed, so the host's nodes are bind-mounted.
func (r *rootfs) createDevices(extra []specs.LinuxDevice) error {
	devs := append([]devSpec(nil), defaultDevices...)
	for _, d := range extra {
		ds := devSpec{path: d.Path, typ: d.Type, major: d.Major, minor: d.Minor, mode: 0o666}
		if d.FileMode != nil {
			ds.mode = *d.FileMode
		}
		if d.UID != nil {
			ds.uid = *d.UID
		}
		if d.GID != nil {
			ds.gid = *d.GID
		}
		replaced := false
		for i := range devs {
			if devs[i].path == d.Path {
				devs[i], replaced = ds, true
			}
		}
		if !replaced {
			devs = append(devs, ds)
		}
	}
	for _, d := range devs {
		if err := r.createDevice(d); err != nil {
			return fmt.Errorf("create device %s in %s: %w", d.path, r.display, err)
		}
	}
	return nil
}

func (r *rootfs) createDevice(d devSpec) error {
	dest := filepath.Clean("/" + d.path)
	if !strings.HasPrefix(dest, "/dev/") {
		return fmt.Errorf("device path must be under /dev")
	}
	if r.userns {
		if _, err := os.Stat(d.path); err != nil {
			return err
		}
		return r.bindMount(specs.Mount{Source: d.path, Destination: dest}, dest, parseMountOptions([]string{"bind"}))
	}
	dir, err := mkdirAllInRoot(r.root, filepath.Dir(dest), 0o755)
	if err != nil {
		return err
	}
	defer dir.Close()
	var mode uint32
	switch d.typ {
	case "c", "u":
		mode = unix.S_IFCHR
	case "b":
		mode = unix.S_IFBLK
	case "p":
		mode = unix.S_IFIFO
	default:
		return fmt.Errorf("unknown device type %q (use c, b, u or p)", d.typ)
	}
	base := filepath.Base(dest)
	dfd := int(dir.Fd())
	// Replace whatever the image has there, symlinks included: the node is
	// created in place, never through a link.
	if err := unix.Unlinkat(dfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		if errors.Is(err, unix.EISDIR) {
			return fmt.Errorf("a directory is in the way")
		}
		if !errors.Is(err, unix.EBUSY) {
			return err
		}
		return nil // a bind mount (from config.json mounts) is already there
	}
	if err := unix.Mknodat(dfd, base, mode|uint32(d.mode.Perm()), int(unix.Mkdev(uint32(d.major), uint32(d.minor)))); err != nil {
		return err
	}
	if err := unix.Fchownat(dfd, base, int(d.uid), int(d.gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	return nil
}

// devLinks makes the /dev symlinks every container expects.
func (r *rootfs) devLinks() error {
	links := [][2]string{
		{"/proc/self/fd", "/dev/fd"},
		{"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"},
		{"/proc/self/fd/2", "/dev/stderr"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "/dev/core"})
	}
	dev, err := mkdirAllInRoot(r.root, "/dev", 0o755)
	if err != nil {
		return fmt.Errorf("create /dev in %s: %w", r.display, err)
	}
	defer dev.Close()
	for _, l := range links {
		if err := unix.Symlinkat(l[0], int(dev.Fd()), filepath.Base(l[1])); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink %s -> %s: %w", r.show(l[1]), l[0], err)
		}
	}
	// With a devpts mount, /dev/ptmx must be its multiplexer.
	if pts, err := openInRoot(r.root, "/dev/pts/ptmx"); err == nil {
		pts.Close()
		if err := unix.Unlinkat(int(dev.Fd()), "ptmx", 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove %s: %w", r.show("/dev/ptmx"), err)
		}
		if err := unix.Symlinkat("pts/ptmx", int(dev.Fd()), "ptmx"); err != nil {
			return fmt.Errorf("symlink %s -> pts/ptmx: %w", r.show("/dev/ptmx"), err)
		}
	}
	return nil
}

// maskPaths hides linux.maskedPaths: directories under a read-only tmpfs,
// files under the host's /dev/null (opened and verified before any
// container mount existed).
func (r *rootfs) maskPaths(paths []string) error {
	for _, p := range paths {
		h, err := openInRoot(r.root, p)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("mask %s: %w", r.show(p), err)
		}
		var st unix.Stat_t
		err = unix.Fstat(int(h.Fd()), &st)
		if err == nil {
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				err = unix.Mount("tmpfs", fdPath(h), "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0,mode=0")
			} else {
				err = unix.Mount(fdPath(r.devNull), fdPath(h), "", unix.MS_BIND, "")
			}
		}
		h.Close()
		if err != nil {
			return fmt.Errorf("mask %s: %w", r.show(p), err)
		}
	}
	return nil
}

// readonlyPaths bind-mounts each of linux.readonlyPaths read-only onto
// itself.
func (r *rootfs) readonlyPaths(paths []string) error {
	for _, p := range paths {
		h, err := openInRoot(r.root, p)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("make %s read-only: %w", r.show(p), err)
		}
		err = unix.Mount(fdPath(h), fdPath(h), "", unix.MS_BIND|unix.MS_REC, "")
		h.Close()
		if err != nil {
			return fmt.Errorf("make %s read-only: %w", r.show(p), err)
		}
		h, err = openInRoot(r.root, p)
		if err != nil {
			return fmt.Errorf("make %s read-only: %w", r.show(p), err)
		}
		err = remountBind(h, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
		h.Close()
		if err != nil {
			return fmt.Errorf("make %s read-only: %w", r.show(p), err)
		}
	}
	return nil
}

// enterRoot makes the rootfs the process's root: pivot_root, or with
// --no-pivot, move it over / and chroot. In the host's mount namespace it
// only chroots: moving a mount over / there would change the host.
func (r *rootfs) enterRoot(noPivot bool) error {
	if r.cfg.HostMountNS {
		if err := unix.Chroot(r.path); err != nil {
			return fmt.Errorf("chroot %s: %w", r.display, err)
		}
		return unix.Chdir("/")
	}
	if noPivot {
		if err := unix.Chdir(r.path); err != nil {
			return fmt.Errorf("chdir %s: %w", r.display, err)
		}
		if err := unix.Mount(r.path, "/", "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move rootfs %s to /: %w", r.display, err)
		}
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot %s: %w", r.display, err)
		}
		return unix.Chdir("/")
	}
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldRoot)
	if err := unix.Chdir(r.path); err != nil {
		return fmt.Errorf("chdir %s: %w", r.display, err)
	}
	// pivot_root(".", ".") stacks the old root under the new one; we then
	// detach it without ever needing a directory to put it in.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root to %s: %w (try --no-pivot if the rootfs is on a ramfs)", r.display, err)
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return err
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root a slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}
