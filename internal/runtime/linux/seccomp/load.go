//go:build linux && cgo

package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Load installs the filter on the calling thread, and on every thread of the
// process only if the profile listed SECCOMP_FILTER_FLAG_TSYNC. It never sets
// no_new_privs: without it the calling thread needs CAP_SYS_ADMIN. The caller
// must hold runtime.LockOSThread and execve from the same thread; see the
// package documentation. Load performs a single system call.
func (f *Filter) Load() error {
	if f == nil {
		return errors.New("seccomp: Load called on a nil *Filter; use the one Compile returned")
	}
	f.mu.Lock()
	prog, flags := f.prog, f.flags
	f.mu.Unlock()
	if len(prog) == 0 {
		return errors.New("seccomp: Load called on a Filter that Compile did not produce; use the one Compile returned")
	}

	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	if errno == unix.ENOSYS && flags == 0 {
		// Linux < 3.17 has no seccomp(2); prctl can load a flagless filter.
		r, _, errno = unix.Syscall(unix.SYS_PRCTL, unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)))
	}
	runtime.KeepAlive(prog)
	runtime.KeepAlive(&fprog)

	switch {
	case errno == unix.EACCES:
		return fmt.Errorf("seccomp: loading the filter: %w: the kernel requires no_new_privs or CAP_SYS_ADMIN; "+
			"set PR_SET_NO_NEW_PRIVS first (process.noNewPrivileges) or load the filter before dropping capabilities", errno)
	case errno == unix.EINVAL:
		return fmt.Errorf("seccomp: loading the filter: %w: the kernel rejected the program or the flags [%s]; "+
			"remove the flags this kernel lacks from linux.seccomp.flags", errno, flagNames(flags))
	case errno == unix.ENOSYS || errno == unix.EOPNOTSUPP:
		return fmt.Errorf("seccomp: loading the filter: %w: this kernel does not support seccomp filters (CONFIG_SECCOMP_FILTER); "+
			"remove linux.seccomp from the configuration", errno)
	case errno != 0:
		return fmt.Errorf("seccomp: loading the filter (flags [%s]): %w", flagNames(flags), errno)
	case flags&unix.SECCOMP_FILTER_FLAG_TSYNC != 0 && r != 0:
		// With TSYNC the kernel returns the id of a thread it could not
		// synchronise (one that runs an unrelated filter).
		return fmt.Errorf("seccomp: loading the filter with %s: thread %d runs an incompatible seccomp filter and cannot be synchronised; "+
			"remove %s from linux.seccomp.flags", flagTsync, r, flagTsync)
	}
	return nil
}

func flagNames(flags uintptr) string {
	var names []string
	for _, fl := range []struct {
		bit  uintptr
		name string
	}{
		{unix.SECCOMP_FILTER_FLAG_TSYNC, flagTsync},
		{unix.SECCOMP_FILTER_FLAG_LOG, flagLog},
		{unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW, flagSpecAllow},
	} {
		if flags&fl.bit != 0 {
			names = append(names, fl.name)
		}
	}
	return strings.Join(names, " ")
}

// kernelHasFlag reports whether the kernel accepts flag for
// SECCOMP_SET_MODE_FILTER. It passes a NULL program: the kernel validates the
// flags first (EINVAL when unknown) and only then faults on the pointer
// (EFAULT), so nothing is ever installed.
func kernelHasFlag(flag uintptr) bool {
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flag, 0)
	return errno == unix.EFAULT
}

// kernelHasFilters reports whether the kernel supports seccomp filter mode,
// with the same NULL-program trick as kernelHasFlag.
func kernelHasFilters() bool {
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, 0)
	if errno == unix.ENOSYS {
		_, _, errno = unix.Syscall(unix.SYS_PRCTL, unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, 0)
	}
	return errno == unix.EFAULT
}

// kernelActionAvail asks the kernel (Linux >= 4.14) whether it knows the
// SECCOMP_RET_* action ret. known is false when the kernel cannot answer.
func kernelActionAvail(ret uint32) (avail, known bool) {
	a := ret
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&a)))
	runtime.KeepAlive(&a)
	switch errno {
	case 0:
		return true, true
	case unix.EOPNOTSUPP:
		return false, true
	default: // EINVAL: kernel < 4.14; ENOSYS: no seccomp(2)
		return false, false
	}
}
