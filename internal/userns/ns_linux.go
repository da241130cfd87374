package userns

/*
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>
#include <sys/syscall.h>

// berth_userns_child starts a process that creates a user namespace,
// writes a byte (0: done) to ready and waits to be killed. Nothing but
// system calls runs in it: it is a copy of one thread of a Go program,
// with every descriptor but ready closed and every signal blocked
// (SIGKILL still ends it).
static int berth_userns_child(int ready)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (pid == 0) {
		char c = 0;
		if (ready != 3 && dup2(ready, 3) < 0)
			_exit(1);
		syscall(SYS_close_range, 0, 2, 0);
		syscall(SYS_close_range, 4, ~0U, 0);
		if (unshare(CLONE_NEWUSER) < 0)
			c = 1;
		if (write(3, &c, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	pthread_sigmask(SIG_SETMASK, &old, 0);
	return (int)pid;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Open makes a user namespace with the given mappings and returns a
// handle of it; the process that made it is gone by then (the handle
// keeps the namespace). It is what an idmapped mount is made with: the
// mount takes the namespace's mapping, so a throw-away one with the
// container's mapping gives what the container's own would.
func Open(uids, gids []specs.LinuxIDMapping) (*os.File, error) {
	if len(uids) == 0 || len(gids) == 0 {
		return nil, errors.New("userns: a mapping needs uid and gid ranges")
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyR.Close()
	pid := int(C.berth_userns_child(C.int(readyW.Fd())))
	readyW.Close()
	if pid < 0 {
		return nil, errors.New("userns: start a process for a user namespace: clone failed")
	}
	defer func() {
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
				break
			}
		}
	}()
	b := make([]byte, 1)
	if n, err := readyR.Read(b); n != 1 || err != nil {
		return nil, fmt.Errorf("userns: the process for a user namespace ended: %v", err)
	}
	if b[0] != 0 {
		return nil, errors.New("userns: create a user namespace: unshare(CLONE_NEWUSER) failed (user namespaces off? see /proc/sys/user/max_user_namespaces)")
	}
	base := "/proc/" + strconv.Itoa(pid)
	if err := writeMap(base+"/uid_map", uids); err != nil {
		return nil, err
	}
	if err := writeMap(base+"/gid_map", gids); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(base+"/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("userns: %w", err)
	}
	return f, nil
}

func writeMap(path string, m []specs.LinuxIDMapping) error {
	var b strings.Builder
	for _, e := range m {
		fmt.Fprintf(&b, "%d %d %d\n", e.ContainerID, e.HostID, e.Size)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0); err != nil {
		return fmt.Errorf("userns: write %s: %w", path, err)
	}
	return nil
}

// secbitNoSetuidFixup keeps a thread's capabilities when its fsuid
// leaves 0 (capabilities(7), SECBIT_NO_SETUID_FIXUP).
const secbitNoSetuidFixup = 1 << 2

// AsMapped runs fn on an OS thread of its own whose file system uid and
// gid are uid and gid, with its capabilities kept: files it creates
// belong to them, and on an idmapped mount, where the host's root is no
// one, it can create files at all (the mount stores the mapped IDs:
// base+N as N). The thread is thrown away afterwards. fn must do its work
// on the calling goroutine.
func AsMapped(uid, gid uint32, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, and
		// its credentials with it.
		runtime.LockOSThread()
		bits, err := unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0)
		if err == nil {
			err = unix.Prctl(unix.PR_SET_SECUREBITS, uintptr(bits|secbitNoSetuidFixup), 0, 0, 0)
		}
		if err != nil {
			errc <- fmt.Errorf("userns: keep capabilities across setfsuid: %w", err)
			return
		}
		unix.SetfsgidRetGid(int(gid))
		unix.SetfsuidRetUid(int(uid))
		// setfs[ug]id report the old value, never an error: read back.
		if cur, _ := unix.SetfsgidRetGid(-1); cur != int(gid) {
			errc <- fmt.Errorf("userns: setfsgid %d did not take", gid)
			return
		}
		if cur, _ := unix.SetfsuidRetUid(-1); cur != int(uid) {
			errc <- fmt.Errorf("userns: setfsuid %d did not take", uid)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Clone makes a detached copy of the mount tree at path, relative to
// dirfd ("" for dirfd itself), with its submounts when recursive, and
// returns its handle: attach it with move_mount(2), or give it to
// overlayfs as a layer.
func Clone(dirfd int, path string, recursive bool) (*os.File, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	if path == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	fd, err := unix.OpenTree(dirfd, path, flags)
	if err != nil {
		return nil, &os.PathError{Op: "open_tree", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// IDMap idmaps the detached mount tree (Clone's) with the user namespace
// ns: a file of on-disk ID N is seen as the namespace's host ID of N, and
// written back as N. With recursive its submounts too.
func IDMap(tree, ns *os.File, recursive bool) error {
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
	flags := uint(unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	err := unix.MountSetattr(int(tree.Fd()), "", flags, &attr)
	runtime.KeepAlive(ns)
	if err != nil {
		return &IDMapError{Path: tree.Name(), Err: err}
	}
	return nil
}

// CloneIDMapped is Clone then IDMap of the top mount.
func CloneIDMapped(path string, ns *os.File) (*os.File, error) {
	t, err := Clone(unix.AT_FDCWD, path, false)
	if err != nil {
		return nil, err
	}
	if err := IDMap(t, ns, false); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// IDMapError: the kernel refused to idmap a mount.
type IDMapError struct {
	Path string
	Err  error
}

func (e *IDMapError) Unwrap() error { return e.Err }

func (e *IDMapError) Error() string {
	fsType := ""
	var st unix.Statfs_t
	if unix.Statfs(e.Path, &st) == nil {
		fsType = fmt.Sprintf(" (file system magic 0x%x)", st.Type)
		if n, ok := fsNames[int64(st.Type)]; ok {
			fsType = " (" + n + ")"
		}
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	return fmt.Sprintf("idmap the mount of %s%s: %v: this kernel (%s) or file system cannot make idmapped mounts of it (Linux 5.12 or later, on ext4, xfs, btrfs, tmpfs from 6.3, ...)",
		e.Path, fsType, e.Err, unix.ByteSliceToString(uts.Release[:]))
}

var fsNames = map[int64]string{
	unix.EXT4_SUPER_MAGIC: "ext4", unix.XFS_SUPER_MAGIC: "xfs", unix.BTRFS_SUPER_MAGIC: "btrfs",
	unix.TMPFS_MAGIC: "tmpfs", unix.OVERLAYFS_SUPER_MAGIC: "overlay", unix.NFS_SUPER_MAGIC: "nfs",
	0x2fc12fc1: "zfs", unix.FUSE_SUPER_MAGIC: "fuse", unix.F2FS_SUPER_MAGIC: "f2fs",
}
