package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Pod namespaces besides the network one. A pod's IPC and UTS namespaces
// live without a process, as its network namespace does: made by a
// thrown-away thread, pinned by bind mounts of their nsfs files onto
// dir/ipc and dir/uts, joined by path by every container of the pod.

// PinIPCUTS makes a new IPC and a new UTS namespace, sets the UTS one's
// hostname, and pins them at parent/name/ipc and parent/name/uts. parent
// is made a shared mount point of its own (as New does for its
// directory), so that the pins reach mount namespaces made later and
// leave them at an unpin. On failure nothing is left pinned.
func PinIPCUTS(parent, name, hostname string) (retErr error) {
	if err := validName(name); err != nil {
		return err
	}
	dir := filepath.Join(parent, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pin namespaces: %w", err)
	}
	if err := ensureSharedMounts(parent); err != nil {
		return err
	}
	targets := map[string]string{"ipc": filepath.Join(dir, "ipc"), "uts": filepath.Join(dir, "uts")}
	for _, t := range targets {
		if err := removePath(t); err != nil {
			return err
		}
		f, err := os.OpenFile(t, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
		if err != nil {
			return fmt.Errorf("pin namespaces: %w", err)
		}
		f.Close()
	}
	defer func() {
		if retErr != nil {
			UnpinIPCUTS(dir)
		}
	}()
	errc := make(chan error, 1)
	go func() {
		// Left in the new namespaces: the thread ends with this
		// goroutine, locked (see New).
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWIPC | unix.CLONE_NEWUTS); err != nil {
			errc <- fmt.Errorf("pin namespaces: unshare: %w", err)
			return
		}
		if hostname != "" {
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				errc <- fmt.Errorf("pin namespaces: hostname %q: %w", hostname, err)
				return
			}
		}
		tid := unix.Gettid()
		for _, kind := range []string{"ipc", "uts"} {
			self := fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, kind)
			if err := unix.Mount(self, targets[kind], "", unix.MS_BIND, ""); err != nil {
				errc <- fmt.Errorf("pin namespaces: pin %s: %w", targets[kind], err)
				return
			}
		}
		errc <- nil
	}()
	return <-errc
}

// UnpinIPCUTS unpins and removes what PinIPCUTS made in dir; missing
// pins are no error.
func UnpinIPCUTS(dir string) error {
	var errs []error
	for _, kind := range []string{"ipc", "uts"} {
		errs = append(errs, removePath(filepath.Join(dir, kind)))
	}
	return errors.Join(errs...)
}

// IPCUTSPinned reports whether both of dir's pins hold a namespace.
func IPCUTSPinned(dir string) (bool, error) {
	for kind, typ := range map[string]int{"ipc": unix.CLONE_NEWIPC, "uts": unix.CLONE_NEWUTS} {
		ok, err := pinnedAs(filepath.Join(dir, kind), typ)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// pinnedAs reports whether path is a mount of an nsfs file of the
// namespace type typ (a CLONE_NEW* flag).
func pinnedAs(path string, typ int) (bool, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("netns: %w", err)
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return false, fmt.Errorf("netns: %w", err)
	}
	if st.Type != unix.NSFS_MAGIC {
		return false, nil
	}
	t, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		return false, fmt.Errorf("netns: %s: %w", path, err)
	}
	return t == typ, nil
}

// PinPID pins the PID namespace of process pid at parent/name/pid. A PID
// namespace outlives its init only as a husk (no process can be made in
// it), so the pin serves while that process lives; the caller keeps it
// alive and checks it (PIDPinned).
func PinPID(parent, name string, pid int) error { return PinOf(parent, name, pid, "pid") }

// PinUser pins the user namespace of process pid at parent/name/user
// (unlike a PID namespace, a pinned user namespace lives on by itself).
func PinUser(parent, name string, pid int) error { return PinOf(parent, name, pid, "user") }

// PinOf pins the namespace kind (pid, user, ipc, uts) of process pid at
// parent/name/kind.
func PinOf(parent, name string, pid int, kind string) error {
	if err := validName(name); err != nil {
		return err
	}
	if _, ok := nsKinds[kind]; !ok {
		return fmt.Errorf("pin namespaces: unknown kind %q", kind)
	}
	if err := os.MkdirAll(filepath.Join(parent, name), 0o700); err != nil {
		return fmt.Errorf("pin namespaces: %w", err)
	}
	if err := ensureSharedMounts(parent); err != nil {
		return err
	}
	target := filepath.Join(parent, name, kind)
	if err := removePath(target); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("pin namespaces: %w", err)
	}
	f.Close()
	if err := unix.Mount(fmt.Sprintf("/proc/%d/ns/%s", pid, kind), target, "", unix.MS_BIND, ""); err != nil {
		os.Remove(target)
		return fmt.Errorf("pin namespaces: pin %s: %w", target, err)
	}
	return nil
}

var nsKinds = map[string]int{"pid": unix.CLONE_NEWPID, "user": unix.CLONE_NEWUSER, "ipc": unix.CLONE_NEWIPC, "uts": unix.CLONE_NEWUTS}

// SetHostname sets the hostname of the UTS namespace pinned at path, from
// a thrown-away thread that joins it (the host's root may, whichever user
// namespace owns it).
func SetHostname(path, hostname string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("hostname: %w", err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWUTS); err != nil {
			errc <- fmt.Errorf("hostname: enter %s: %w", path, err)
			return
		}
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			errc <- fmt.Errorf("hostname %q: %w", hostname, err)
			return
		}
		errc <- nil
	}()
	return <-errc
}

// UnpinUser removes what PinUser made in dir; a missing pin is no error.
func UnpinUser(dir string) error { return removePath(filepath.Join(dir, "user")) }

// UserPinned reports whether dir's user pin holds a user namespace.
func UserPinned(dir string) (bool, error) {
	return pinnedAs(filepath.Join(dir, "user"), unix.CLONE_NEWUSER)
}

// UnpinPID removes what PinPID made in dir; a missing pin is no error.
func UnpinPID(dir string) error { return removePath(filepath.Join(dir, "pid")) }

// PIDPinned reports whether dir's PID pin holds a PID namespace.
func PIDPinned(dir string) (bool, error) {
	return pinnedAs(filepath.Join(dir, "pid"), unix.CLONE_NEWPID)
}
