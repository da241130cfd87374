//go:build linux && cgo

// Package nsexec links in the C constructor (nsexec.c) that enters and
// creates namespaces before the Go runtime starts threads. Importing it is
// all that is needed; the constructor is inert unless _BERTH_NSEXEC is set.
// A second constructor (cgroupwarm.c) starts, in a create or run, the
// kernel wait that the container's cgroup move would otherwise pay, and a
// third (prefork.c) forks a create's init ahead, so that its Go start-up
// overlaps ours; that init's intermediate forks it into its cgroup
// without a migration where it can (cgroupfork.c), and then the warm-up
// does not start.
//
// This is the only cgo in the runtime besides libseccomp; keep it here.
package nsexec

// #cgo CFLAGS: -Wall -Wextra -O2
// #include <stdlib.h>
// extern volatile int berth_cgroup_warm_stop;
// extern int berth_prefork_fd;
// extern int berth_prefork_pid;
// extern unsigned long berth_prefork_flags;
// extern int berth_prefork_child_fd;
// extern int berth_prefork_init_fd;
// extern int berth_prefork_cgroup_planned;
// int berth_prefork_config(const char *buf, size_t len, unsigned long *flags, char *cgpath, size_t cgcap, int *cg_ok);
// int berth_cgroup_inner(const char *cgpath, const char *id, char *out, size_t cap);
// int berth_cgroup_join_add(const char *dir);
// int berth_cgroup_join_now(void);
// int berth_cgroup_unforked(void);
import "C"

import (
	"sync"
	"unsafe"
)

// StopCgroupWarm ends the cgroup lock warm-up (cgroupwarm.c) once the
// container's init is in its cgroup.
func StopCgroupWarm() { C.berth_cgroup_warm_stop = 1 }

// EnvSyncFD names the environment variable that carries the number of the
// sync socket to the constructor.
const EnvSyncFD = "_BERTH_NSEXEC"

// Prefork is a create's init that prefork.c forked before the Go runtime
// started: Pid is the process that says "pid" on the socket FD (the init
// itself, or an intermediate that forked it into a new pid namespace), and
// Flags the CLONE_NEW* namespaces it created. ChildFD is the number of its
// end of the socket, in the init.
type Prefork struct {
	FD      int
	Pid     int
	Flags   uintptr
	ChildFD int
}

var preforkTaken sync.Mutex

// TakePrefork returns the forked init, once; nil when there is none.
func TakePrefork() *Prefork {
	preforkTaken.Lock()
	defer preforkTaken.Unlock()
	if C.berth_prefork_fd < 0 {
		return nil
	}
	p := &Prefork{FD: int(C.berth_prefork_fd), Pid: int(C.berth_prefork_pid), Flags: uintptr(C.berth_prefork_flags), ChildFD: int(C.berth_prefork_child_fd)}
	C.berth_prefork_fd = -1
	return p
}

// PreforkCgroupPlanned says whether the forked init's intermediate makes
// the container's cgroup leaves and forks the init into them
// (cgroupfork.c), until it says "pid".
func PreforkCgroupPlanned() bool { return C.berth_prefork_cgroup_planned != 0 }

// PreforkedInit is, in an init that prefork.c forked, its end of the sync
// socket; -1 in any other process.
func PreforkedInit() int { return int(C.berth_prefork_init_fd) }

// ConfigFlags is prefork.c's reading of a config.json: the CLONE_NEW*
// flags of linux.namespaces, or ok false where it would not prefork.
func ConfigFlags(config []byte) (flags uintptr, ok bool) {
	flags, _, _, ok = readConfig(config)
	return flags, ok
}

// ConfigCgroupsPath is prefork.c's reading of a config.json's
// linux.cgroupsPath; ok false where it would not take one (then the Go
// side places the init).
func ConfigCgroupsPath(config []byte) (path string, ok bool) {
	_, path, pathOK, ok := readConfig(config)
	return path, ok && pathOK
}

func readConfig(config []byte) (flags uintptr, cgroupsPath string, cgroupsPathOK, ok bool) {
	if len(config) == 0 {
		return 0, "", false, false
	}
	cs := C.CBytes(config)
	defer C.free(cs)
	var f C.ulong
	var cgOK C.int
	buf := (*C.char)(C.malloc(4096))
	defer C.free(unsafe.Pointer(buf))
	if C.berth_prefork_config((*C.char)(cs), C.size_t(len(config)), &f, buf, 4096, &cgOK) < 0 {
		return 0, "", false, false
	}
	return uintptr(f), C.GoString(buf), cgOK != 0, true
}

// CgroupInner is cgroupfork.c's cgroup below each mount root for a
// cgroupsPath and container id; ok false where it leaves the cgroup to the
// Go side.
func CgroupInner(cgroupsPath, id string) (inner string, ok bool) {
	cp, ci := C.CString(cgroupsPath), C.CString(id)
	defer C.free(unsafe.Pointer(cp))
	defer C.free(unsafe.Pointer(ci))
	buf := (*C.char)(C.malloc(4096))
	defer C.free(unsafe.Pointer(buf))
	if C.berth_cgroup_inner(cp, ci, buf, 4096) < 0 {
		return "", false
	}
	return C.GoString(buf), true
}

// joinUnforked runs cgroupfork.c's join of an exec that does not fork, in
// this process (tests: only with directories it is in already).
func joinUnforked(dirs []string) bool {
	for _, d := range dirs {
		cs := C.CString(d)
		C.berth_cgroup_join_add(cs)
		C.free(unsafe.Pointer(cs))
	}
	C.berth_cgroup_join_now()
	return C.berth_cgroup_unforked() != 0
}
