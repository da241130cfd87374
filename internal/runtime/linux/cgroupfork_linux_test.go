package linux

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/linux/cgroup"
	"github.com/berth-dev/berth/internal/runtime/linux/nsexec"
)

// TestForkedCgroupMatchesGo checks that where nsexec/cgroupfork.c places a
// forked init's cgroup is where the cgroup package puts the container's:
// every directory the package computes is a cgroup mount root followed by
// the C side's path. A disagreement would not misplace a container (the
// Go side compares the directories and moves the init if they differ), but
// it would lose the gain for that form of cgroupsPath.
func TestForkedCgroupMatchesGo(t *testing.T) {
	cases := []struct{ path, id string }{
		{"", "abc"},
		{"", "a.b-c_d"},
		{"/kubepods/burstable/pod1/c1", "x"},
		{"//a/./b//", "x"},
		{"/a/b/.", "x"},
	}
	for _, c := range cases {
		inner, ok := nsexec.CgroupInner(c.path, c.id)
		if !ok {
			t.Errorf("CgroupInner(%q, %q) refused a path the forked init should take", c.path, c.id)
			continue
		}
		m, err := cgroup.New(cgroup.Config{ID: c.id, Path: c.path})
		if err != nil {
			t.Fatalf("cgroup.New(%q): %v", c.path, err)
		}
		paths := m.Paths()
		if len(paths) == 0 {
			t.Fatalf("cgroup.New(%q): no paths", c.path)
		}
		for key, dir := range paths {
			root, found := strings.CutSuffix(dir, inner)
			var fs unix.Statfs_t
			if !found || unix.Statfs(root, &fs) != nil || (fs.Type != unix.CGROUP_SUPER_MAGIC && fs.Type != unix.CGROUP2_SUPER_MAGIC) {
				t.Errorf("cgroupsPath %q id %q: %s is %s, not a cgroup mount root followed by %s", c.path, c.id, key, dir, inner)
			}
		}
	}
}

// TestSameDirs checks the comparison that decides whether a forked init's
// cgroup leaves are the container's.
func TestSameDirs(t *testing.T) {
	paths := map[string]string{"cpu": "/c/cpu/x", "cpuacct": "/c/cpuacct/x", "": "/c/unified/x"}
	cases := []struct {
		made []string
		want bool
	}{
		{[]string{"/c/cpu/x", "/c/cpuacct/x", "/c/unified/x"}, true},
		{[]string{"/c/unified/x", "/c/cpu/x", "/c/cpuacct/x"}, true},
		{[]string{"/c/cpu/x", "/c/cpuacct/x"}, false},
		{[]string{"/c/cpu/x", "/c/cpuacct/x", "/c/unified/x", "/c/pids/x"}, false},
		{[]string{"/c/cpu/x", "/c/cpu/x", "/c/unified/x"}, false},
		{nil, false},
	}
	for _, c := range cases {
		if got := sameDirs(c.made, paths); got != c.want {
			t.Errorf("sameDirs(%q) = %v, want %v", c.made, got, c.want)
		}
	}
	// A combined hierarchy (cpu,cpuacct) is one directory for two keys.
	combined := map[string]string{"cpu": "/c/cpu,cpuacct/x", "cpuacct": "/c/cpu,cpuacct/x"}
	if !sameDirs([]string{"/c/cpu,cpuacct/x"}, combined) {
		t.Error("a directory shared by two controllers did not match once")
	}
}
