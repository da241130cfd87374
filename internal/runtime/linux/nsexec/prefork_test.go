//go:build linux && cgo

package nsexec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestConfigFlags checks prefork.c's reading of linux.namespaces: the
// flags it forks with for what it understands, and no prefork (ok false)
// for anything else. A wrong answer would only waste a fork (the Go side
// compares), but a refusal of the common case would lose the gain.
func TestConfigFlags(t *testing.T) {
	const all = unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWNS | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP
	cases := []struct {
		name   string
		config string
		flags  uintptr
		ok     bool
	}{
		{"runc spec", `{"ociVersion":"1.0.2","process":{"terminal":true,"args":["sh"],"env":["A=\"b\\n"]},
			"linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]},
			"namespaces":[{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"cgroup"}],
			"maskedPaths":["/proc/kcore"],"uidMappings":null}}`, all, true},
		{"empty path is create", `{"linux":{"namespaces":[{"type":"pid","path":""},{"path":"","type":"mount"}]}}`, unix.CLONE_NEWPID | unix.CLONE_NEWNS, true},
		{"no namespaces", `{"linux":{"namespaces":[]}}`, 0, true},
		{"namespaces missing", `{"linux":{}}`, 0, true},
		{"numbers and literals", `{"a":[1,-2.5e3,true,false,null,{"b":{}}],"linux":{"x":0,"namespaces":[{"type":"uts"}]},"z":"}"}`, unix.CLONE_NEWUTS, true},
		{"whitespace", " \n{ \"linux\" :\t{ \"namespaces\" : [ { \"type\" : \"ipc\" } ] } }\n", unix.CLONE_NEWIPC, true},
		{"long key skipped", `{"annotations":{"an.annotation.name.longer.than.thirty.two.bytes":"v"},"linux":{"namespaces":[{"type":"pid"}]}}`, unix.CLONE_NEWPID, true},

		{"join by path", `{"linux":{"namespaces":[{"type":"network","path":"/var/run/netns/x"}]}}`, 0, false},
		{"user namespace", `{"linux":{"namespaces":[{"type":"user"},{"type":"pid"}]}}`, 0, false},
		{"time namespace", `{"linux":{"namespaces":[{"type":"time"}]}}`, 0, false},
		{"unknown type", `{"linux":{"namespaces":[{"type":"net"}]}}`, 0, false},
		{"type missing", `{"linux":{"namespaces":[{"path":""}]}}`, 0, false},
		{"type twice", `{"linux":{"namespaces":[{"type":"pid","type":"user"}]}}`, 0, false},
		{"escaped type", `{"linux":{"namespaces":[{"type":"p\u0069d"}]}}`, 0, false},
		{"linux twice", `{"linux":{"namespaces":[{"type":"pid"}]},"linux":{}}`, 0, false},
		{"namespaces twice", `{"linux":{"namespaces":[],"namespaces":[{"type":"pid"}]}}`, 0, false},
		{"no linux", `{"process":{}}`, 0, false},
		{"linux null", `{"linux":null}`, 0, false},
		{"truncated", `{"linux":{"namespaces":[{"type":"pid"}`, 0, false},
		{"trailing garbage", `{"linux":{"namespaces":[]}} {}`, 0, false},
		{"unterminated string", `{"linux":{"namespaces":[{"type":"pid}]}}`, 0, false},
		{"control character", "{\"linux\":{\"namespaces\":[{\"type\":\"pi\x01d\"}]}}", 0, false},
		{"not an object", `[]`, 0, false},
		{"empty", ``, 0, false},
		{"too deep", `{"a":` + repeat("[", 100) + repeat("]", 100) + `,"linux":{}}`, 0, false},
	}
	for _, c := range cases {
		flags, ok := ConfigFlags([]byte(c.config))
		if ok != c.ok || flags != c.flags {
			t.Errorf("%s: got flags 0x%x ok %v, want 0x%x ok %v", c.name, flags, ok, c.flags, c.ok)
		}
	}
}

// TestConfigFlagsNeverOverreads feeds every prefix of a config: the reader
// must stop at the end it was given (each prefix is a refusal but the
// whole).
func TestConfigFlagsNeverOverreads(t *testing.T) {
	config := `{"linux":{"namespaces":[{"type":"pid"},{"type":"mount","path":""}]},"process":{"args":["a\"b"]}}`
	for i := 1; i < len(config); i++ {
		if _, ok := ConfigFlags([]byte(config[:i])); ok {
			t.Errorf("prefix of %d bytes read as whole: %q", i, config[:i])
		}
	}
	if flags, ok := ConfigFlags([]byte(config)); !ok || flags != unix.CLONE_NEWPID|unix.CLONE_NEWNS {
		t.Errorf("whole config: 0x%x %v", flags, ok)
	}
}

func repeat(s string, n int) string {
	out := ""
	for i := 0; i < n; i++ {
		out += s
	}
	return out
}

// TestConfigCgroupsPath checks prefork.c's reading of linux.cgroupsPath:
// the path when it is a plain string (or absent), no path (the Go side
// places the init) for anything else. The namespaces are read either way.
func TestConfigCgroupsPath(t *testing.T) {
	cases := []struct {
		name, config, path string
		ok                 bool
	}{
		{"absent", `{"linux":{"namespaces":[{"type":"pid"}]}}`, "", true},
		{"absolute", `{"linux":{"cgroupsPath":"/kubepods/pod1/c1","namespaces":[]}}`, "/kubepods/pod1/c1", true},
		{"after namespaces", `{"linux":{"namespaces":[],"cgroupsPath":"a/b"}}`, "a/b", true},
		{"systemd form", `{"linux":{"cgroupsPath":"system.slice:berth:x"}}`, "system.slice:berth:x", true},
		{"escaped", `{"linux":{"cgroupsPath":"/a\/b"}}`, "", false},
		{"null", `{"linux":{"cgroupsPath":null}}`, "", false},
		{"a number", `{"linux":{"cgroupsPath":1}}`, "", false},
		{"twice", `{"linux":{"cgroupsPath":"/a","cgroupsPath":"/b"}}`, "", false},
		{"too long", `{"linux":{"cgroupsPath":"/` + repeat("x", 5000) + `"}}`, "", false},
	}
	for _, c := range cases {
		path, ok := ConfigCgroupsPath([]byte(c.config))
		if ok != c.ok || path != c.path {
			t.Errorf("%s: got %q ok %v, want %q ok %v", c.name, path, ok, c.path, c.ok)
		}
		if _, nsOK := ConfigFlags([]byte(c.config)); !nsOK {
			t.Errorf("%s: a cgroupsPath it does not take refused the prefork", c.name)
		}
	}
}

// TestCgroupInner checks where cgroupfork.c puts a container's cgroup
// below each mount root, and what it leaves to the Go side. (That it
// agrees with the cgroup package is TestForkedCgroupMatchesGo, in the
// runtime's package.)
func TestCgroupInner(t *testing.T) {
	cases := []struct {
		path, id, inner string
		ok              bool
	}{
		{"", "abc", "/berth/abc", true},
		{"/a/b", "x", "/a/b", true},
		{"//a/./b//", "x", "/a/b", true},
		{"/a/b/.", "x", "/a/b", true},
		{"a/b", "x", "", false},
		{"/a/../b", "x", "", false},
		{"/..", "x", "", false},
		{"/", "x", "", false},
		{"/./", "x", "", false},
		{"", "", "", false},
		{"", ".", "", false},
		{"", "..", "", false},
		{"", "a/b", "", false},
		{"", "-a", "", false},
		{"", "a\nb", "", false},
		{"", "a b", "", false},
		{"/a\nb", "x", "", false},
		{"", "a.b+c_d-1", "/berth/a.b+c_d-1", true},
		{"/" + repeat("x", 5000), "x", "", false},
	}
	for _, c := range cases {
		inner, ok := CgroupInner(c.path, c.id)
		if ok != c.ok || inner != c.inner {
			t.Errorf("CgroupInner(%q, %q) = %q %v, want %q %v", c.path, c.id, inner, ok, c.inner, c.ok)
		}
	}
}

// TestConfigCgroupsPathAmbiguous: where Go's decoder could find a
// cgroupsPath prefork.c does not read (a name in another case, an escaped
// name, another "linux"), it takes none.
func TestConfigCgroupsPathAmbiguous(t *testing.T) {
	for name, config := range map[string]string{
		"other case":        `{"linux":{"cgroupsPath":"/a","CgroupsPath":"/b"}}`,
		"escaped name":      `{"linux":{"cgroupsPath":"/a","cgroups\u0050ath":"/b"}}`,
		"another linux":     `{"linux":{"cgroupsPath":"/a"},"Linux":{"cgroupsPath":"/b"}}`,
		"escaped top-level": `{"linux":{"cgroupsPath":"/a"},"l\u0069nux":{}}`,
	} {
		if path, ok := ConfigCgroupsPath([]byte(config)); ok {
			t.Errorf("%s: took cgroupsPath %q", name, path)
		}
	}
}

// TestUnforkedJoinClosesCgroupDir: an exec that does not fork cannot be
// placed in its cgroup2 directory, which the C side opened (a host
// directory) before joining the container: it must be closed before the
// process goes on into the container, or a path through
// /proc/self/fd/N would reach the host's tree until execve.
func TestUnforkedJoinClosesCgroupDir(t *testing.T) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	own := ""
	for _, l := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			own = p
		}
	}
	dir := filepath.Join("/sys/fs/cgroup/unified", own)
	if own == "" {
		t.Skip("no cgroup2 membership to join")
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
		t.Skipf("no hybrid cgroup2 hierarchy at /sys/fs/cgroup/unified: %v", err)
	}
	if joinUnforked([]string{dir}) {
		t.Error("said in its cgroup2 directory without the fork that places it there")
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		// A directory: a path can go on through it (the Go runtime's own
		// open cgroup files cannot be gone through).
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if fi, serr := os.Stat(filepath.Join("/proc/self/fd", fd.Name())); err == nil && serr == nil && fi.IsDir() && strings.HasPrefix(target, "/sys/fs/cgroup") {
			t.Errorf("descriptor %s still open on the directory %s", fd.Name(), target)
		}
	}
}
