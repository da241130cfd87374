package linux

import (
	"os"
	"strconv"
	"strings"
)

// WarmCgroupMigration starts, in the background, the wait that the first
// move of a process between cgroups pays: the kernel's cgroup migration
// lock is a per-cpu rwsem whose writer waits for an RCU grace period (a
// jiffy or more, ~10 ms here) unless another writer held it moments ago.
// Re-writing our own pid into our own cgroup takes that lock without moving
// anything; by the time the container's init is moved, the grace period is
// over or under way. Errors are ignored: it is only a head start.
func WarmCgroupMigration() {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		// "N:controllers:/path"; any v1 hierarchy or the v2 one will do.
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || strings.Contains(parts[2], "..") {
			continue
		}
		var dir string
		switch {
		case parts[1] == "":
			dir = "/sys/fs/cgroup/unified"
			if _, err := os.Stat(dir + "/cgroup.procs"); err != nil {
				dir = "/sys/fs/cgroup"
			}
		case parts[1] == "pids" || parts[1] == "freezer":
			dir = "/sys/fs/cgroup/" + parts[1]
		default:
			continue
		}
		f, err := os.OpenFile(dir+parts[2]+"/cgroup.procs", os.O_WRONLY, 0)
		if err != nil {
			continue
		}
		_, err = f.WriteString(strconv.Itoa(os.Getpid()))
		f.Close()
		if err == nil {
			return
		}
	}
}
