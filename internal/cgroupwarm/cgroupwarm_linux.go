//go:build linux

// Package cgroupwarm keeps the kernel's cgroup migration lock from going
// idle while container starts are in flight, so that moving a container's
// process into its cgroup does not wait for an RCU grace period.
//
// Moving a process between cgroups (a write to cgroup.procs) takes
// cgroup_threadgroup_rwsem for writing, a per-cpu rwsem: a writer that finds
// it idle waits for an RCU grace period (~10 ms, sometimes 20, here) while
// holding cgroup_mutex, so cgroup mkdirs wait too; it goes idle again one
// grace period after its last writer. Writing "0" (ourselves) into our own
// cgroup.procs takes the lock without moving anything. While a Hold is
// out, a goroutine does that every 2 ms, so a start's moves (the runtime's,
// in the monitor's child; a VM shim's) find the lock busy and pass at once.
// The runtime's own `create` and `run` do the same from a C constructor
// before Go starts (internal/runtime/linux/nsexec/cgroupwarm.c); this one is
// for long-lived callers (`berth serve`) and for starts that do not go
// through those commands (`berth start`, the Docker API, the CRI).
//
// Lock order: mu only; never held across the write.
package cgroupwarm

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const (
	interval = 2 * time.Millisecond
	// maxHold ends a warm-up that outlives its holds' purpose: this long
	// after the latest Hold it stops, released or not.
	maxHold = time.Second
)

var (
	mu       sync.Mutex
	holds    int
	running  bool
	deadline time.Time
	// writes counts the writes made, for tests.
	writes atomic.Int64
)

// V1Layout says whether the host's cgroups are v1 or hybrid (a tmpfs at
// /sys/fs/cgroup). There the linux runtime makes a container's cgroup in
// its init's intermediate and forks the init into it, no migration
// (internal/runtime/linux/nsexec/cgroupfork.c), so a start of such an
// init gains nothing from a warm-up, whose first write, waiting out a
// grace period while holding cgroup_mutex, would only hold up that mkdir.
func V1Layout() bool {
	var fs unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &fs) == nil && fs.Type == unix.TMPFS_MAGIC
}

// Hold starts the warm-up, if it is not running, and returns the function
// that ends this hold; the warm-up ends with the last hold (or maxHold
// after the latest one). Where our cgroup cannot be written it does
// nothing: there is only no head start.
func Hold() (release func()) {
	mu.Lock()
	holds++
	deadline = time.Now().Add(maxHold)
	if !running {
		running = true
		go warm()
	}
	mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			holds--
			mu.Unlock()
		})
	}
}

func warm() {
	fd, where := ownProcs()
	for fd >= 0 {
		if _, err := unix.Write(fd, []byte("0")); err != nil {
			break
		}
		writes.Add(1)
		mu.Lock()
		done := holds <= 0 || time.Now().After(deadline)
		if done {
			running = false
		}
		mu.Unlock()
		if done {
			unix.Close(fd)
			return
		}
		time.Sleep(interval)
		// A write moves this process into the file's cgroup: should
		// another process have moved us since ownProcs looked, stop
		// rather than move us back.
		if now, err := os.ReadFile("/proc/self/cgroup"); err != nil || string(now) != where {
			break
		}
	}
	if fd >= 0 {
		unix.Close(fd)
	}
	mu.Lock()
	running = false
	mu.Unlock()
}

// ownProcs opens, for writing, the cgroup.procs of our cgroup in a
// hierarchy every host has (the v2 one, or pids or freezer on v1), or
// returns -1; and /proc/self/cgroup as it read it. A file that does not
// list this process is not ours, whatever its path (a cgroup namespace
// of our own with the host's hierarchy mounted: /proc/self/cgroup says
// "/", the mount's root is the host's): writing "0" there would move us.
func ownProcs() (int, string) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return -1, ""
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		// "N:controllers:/path"
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || strings.Contains(parts[2], "..") {
			continue
		}
		var candidates []string
		switch parts[1] {
		case "":
			candidates = []string{"/sys/fs/cgroup/unified" + parts[2], "/sys/fs/cgroup" + parts[2]}
		case "pids", "freezer":
			candidates = []string{"/sys/fs/cgroup/" + parts[1] + parts[2]}
		}
		for _, dir := range candidates {
			procs := strings.TrimSuffix(dir, "/") + "/cgroup.procs"
			if !listsSelf(procs) {
				continue
			}
			fd, err := unix.Open(procs, unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err == nil {
				return fd, string(data)
			}
		}
	}
	return -1, ""
}

// listsSelf reports whether the cgroup.procs file lists this process.
func listsSelf(procs string) bool {
	data, err := os.ReadFile(procs)
	if err != nil {
		return false
	}
	self := strconv.Itoa(os.Getpid())
	for _, l := range strings.Split(string(data), "\n") {
		if l == self {
			return true
		}
	}
	return false
}
