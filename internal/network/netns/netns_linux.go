package netns

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// validName refuses names that could leave dir.
func validName(name string) error {
	if name == "" || len(name) > 200 || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return fmt.Errorf("netns: invalid name %q (1-200 characters, no slashes)", name)
	}
	return nil
}

// New creates a network namespace and pins it at dir/name, returning the
// path. The namespace starts with only a loopback device, down (bring it up
// from inside, or through netlink on a handle of the namespace).
func New(dir, name string) (string, error) {
	if err := validName(name); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("netns: %w", err)
	}
	if err := ensureSharedMounts(dir); err != nil {
		return "", err
	}
	target := filepath.Join(dir, name)
	f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return "", fmt.Errorf("netns: %w", err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// This thread is left in the new namespace and must never run
		// another goroutine: exiting while locked makes the runtime
		// destroy it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netns: unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, target, "", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("netns: pin %s: %w", target, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(target)
		return "", err
	}
	return target, nil
}

// ensureSharedMounts makes dir a mount point of its own with shared
// propagation (as `ip netns` does for /run/netns), so that pins made in it
// appear in mount namespaces created later, and are removed from them when
// unmounted here.
func ensureSharedMounts(dir string) error {
	err := unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		return nil
	}
	if err != unix.EINVAL { // EINVAL: dir is not a mount point yet
		return fmt.Errorf("netns: make %s shared: %w", dir, err)
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("netns: bind %s onto itself: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("netns: make %s shared: %w", dir, err)
	}
	return nil
}

// Remove unpins and deletes the namespace at dir/name. The namespace itself
// ends when its last process does. Missing is not an error.
func Remove(dir, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	return removePath(filepath.Join(dir, name))
}

func removePath(p string) error {
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("netns: unpin %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("netns: remove %s: %w", p, err)
	}
	return nil
}

// List returns the names of the namespaces pinned in dir (files without
// a pin, leftovers of a killed New, are not listed).
func List(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	var out []string
	for _, e := range ents {
		if ok, err := IsPinned(filepath.Join(dir, e.Name())); err == nil && ok {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// staleAge is how old an unpinned file must be before CleanStale takes it
// for a leftover rather than a New in progress.
const staleAge = time.Minute

// CleanStale removes what a process killed inside New left: files that
// have been there for a minute without a namespace on them.
func CleanStale(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	var errs []error
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if ok, err := IsPinned(p); err != nil || ok {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) >= staleAge {
			errs = append(errs, removePath(p))
		}
	}
	return errors.Join(errs...)
}

// IsPinned reports whether path holds a network namespace: it is a
// mount of an nsfs file of the network type.
func IsPinned(path string) (bool, error) { return pinnedAs(path, unix.CLONE_NEWNET) }

// inside runs fn in the pinned namespace at path, on a locked OS thread
// that is thrown away afterwards (like New's): a thread that entered
// another namespace must never run another goroutine.
func inside(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netns: enter %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Dial connects to addr over network ("tcp", "udp", ...) from inside the
// pinned network namespace at path ("": the caller's own), on a thread
// of inside's that is thrown away afterwards. The socket belongs to the
// namespace it was made in for its whole life, so the connection is used
// from any goroutine after. addr is a literal address: a name lookup or
// a second address raced in parallel would run on another thread, in
// the caller's namespace.
func Dial(ctx context.Context, path, network string, addr netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	if path == "" {
		return d.DialContext(ctx, network, addr.String())
	}
	var conn net.Conn
	err := inside(path, func() error {
		var err error
		conn, err = d.DialContext(ctx, network, addr.String())
		return err
	})
	return conn, err
}

// LoopbackUp brings up "lo" inside the pinned namespace at path (a new
// namespace has it down).
func LoopbackUp(path string) error {
	return inside(path, func() error {
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("netns: %w", err)
		}
		defer unix.Close(s)
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
			return fmt.Errorf("netns: lo flags: %w", err)
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
			return fmt.Errorf("netns: bring lo up: %w", err)
		}
		return nil
	})
}

// ReleaseDir unmounts dir's shared mount point (see ensureSharedMounts)
// when nothing is pinned in it, so that the directory can be removed like
// any other. It reports whether dir was left unmounted. A New racing with
// it still pins its namespace, in the plain directory.
func ReleaseDir(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("netns: %w", err)
	}
	if len(ents) > 0 {
		return false, nil
	}
	for {
		err := unix.Unmount(dir, unix.MNT_DETACH)
		if err == unix.EINVAL { // not (or no longer) a mount point
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("netns: unmount %s: %w", dir, err)
		}
	}
}

// SetSysctls writes net.* sysctls of the pinned namespace at path, from
// outside it (the host's /proc/sys/net shows the namespace of the thread
// that opens it): for a container whose root has no privilege over its
// network namespace (one of its own user namespace).
func SetSysctls(path string, kv map[string]string) error {
	if len(kv) == 0 {
		return nil
	}
	for k := range kv {
		if !strings.HasPrefix(k, "net.") || strings.Contains(k, "..") || strings.Contains(k, "/") {
			return fmt.Errorf("netns: %s is not a network sysctl", k)
		}
	}
	return inside(path, func() error {
		for k, v := range kv {
			p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(p, []byte(v), 0); err != nil {
				return fmt.Errorf("netns: set sysctl %s=%s: %w", k, v, err)
			}
		}
		return nil
	})
}
