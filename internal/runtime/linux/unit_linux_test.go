package linux

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestParseMountOptions(t *testing.T) {
	m := parseMountOptions([]string{"rbind", "ro", "nosuid", "rw", "rslave", "mode=755", "size=1m", "rro", "tmpcopyup"})
	if m.flags != unix.MS_BIND|unix.MS_REC|unix.MS_NOSUID {
		t.Errorf("flags %#x", m.flags)
	}
	if m.clear&unix.MS_RDONLY == 0 {
		t.Errorf("rw did not clear ro")
	}
	if len(m.propagate) != 1 || m.propagate[0] != unix.MS_SLAVE|unix.MS_REC {
		t.Errorf("propagation %v", m.propagate)
	}
	if m.dataString() != "mode=755,size=1m" {
		t.Errorf("data %q", m.dataString())
	}
	if !m.recSet || m.recAttr.Attr_set != unix.MOUNT_ATTR_RDONLY {
		t.Errorf("recursive attrs %+v", m.recAttr)
	}
}

func TestNamespacePlan(t *testing.T) {
	flags, join := namespacePlan([]specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace, Path: "/var/run/netns/x"}, {Type: specs.MountNamespace},
	})
	if flags != unix.CLONE_NEWPID|unix.CLONE_NEWNS {
		t.Errorf("flags %#x", flags)
	}
	if len(join) != 1 || join[0].flag != unix.CLONE_NEWNET || join[0].path != "/var/run/netns/x" {
		t.Errorf("join %+v", join)
	}
}

func TestCapSets(t *testing.T) {
	s, err := newCapSets(&specs.LinuxCapabilities{Bounding: []string{"CAP_KILL", "CAP_CHOWN"}, Ambient: []string{"CAP_NET_RAW"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.bounding != 1<<5|1<<0 || s.ambient != 1<<13 || s.effective != 0 {
		t.Errorf("%+v", s)
	}
	if _, err := newCapSets(&specs.LinuxCapabilities{Effective: []string{"CAP_TEST"}}); err == nil || !strings.Contains(err.Error(), "effective") {
		t.Errorf("unknown capability: %v", err)
	}
}

func TestNamespacedSysctl(t *testing.T) {
	for key, want := range map[string]specs.LinuxNamespaceType{
		"net.ipv4.ip_forward": specs.NetworkNamespace, "kernel.shmmax": specs.IPCNamespace,
		"fs.mqueue.queues_max": specs.IPCNamespace, "kernel.hostname": specs.UTSNamespace,
	} {
		if got, ok := namespacedSysctl(key); !ok || got != want {
			t.Errorf("%s: %s %v", key, got, ok)
		}
	}
	for _, key := range []string{"kernel.core_pattern", "vm.swappiness", "fs.file-max"} {
		if _, ok := namespacedSysctl(key); ok {
			t.Errorf("%s accepted as namespaced", key)
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "data"), []byte("x"), 0o644)
	if p, err := lookPath("tool", []string{"PATH=/nonexistent:" + dir}); err != nil || p != exe {
		t.Errorf("lookPath = %q, %v", p, err)
	}
	if _, err := lookPath("data", []string{"PATH=" + dir}); err == nil {
		t.Errorf("non-executable file found")
	}
	if _, err := lookPath("nope", []string{"PATH=" + dir}); err == nil || !strings.Contains(err.Error(), "not found in $PATH") {
		t.Errorf("missing: %v", err)
	}
	if _, err := lookPath(dir, nil); err == nil {
		t.Errorf("directory accepted")
	}
}

func TestCheckID(t *testing.T) {
	for _, id := range []string{"a", "abc-1.2_3+4", strings.Repeat("x", 200)} {
		if err := CheckID(id); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, id := range []string{"", "..", "a/b", "-x", ".hidden", "a b", strings.Repeat("x", 2000)} {
		if err := CheckID(id); err == nil {
			t.Errorf("%q accepted", id)
		}
	}
}

func TestStateSurvivesRoundTripAndStatus(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "c1")
	os.Mkdir(dir, 0o711)
	start, _, err := procStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	c := &Container{root: root, dir: dir, ID: "c1", State: &State{ID: "c1", Pid: os.Getpid(), PidStartTime: start, Spec: &specs.Spec{}}}
	if err := c.save(); err != nil {
		t.Fatal(err)
	}
	l, err := Load(root, "c1")
	if err != nil || l.Pid != os.Getpid() {
		t.Fatalf("Load: %+v %v", l, err)
	}
	// No fifo, no cgroup: a live pid is running.
	if st := l.Status(); st != StatusRunning {
		t.Errorf("status %s", st)
	}
	// The same pid with another start time is a reused pid: stopped.
	l.PidStartTime++
	if st := l.Status(); st != StatusStopped {
		t.Errorf("reused pid status %s", st)
	}
	os.WriteFile(filepath.Join(dir, stateFile), []byte("{garbage"), 0o600)
	if _, err := Load(root, "c1"); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt state: %v", err)
	}
	if ids, _ := List(root); len(ids) != 1 {
		t.Errorf("List %v", ids)
	}
	// A directory without state.json whose lock is free is a dead create.
	os.Mkdir(filepath.Join(root, "dead"), 0o711)
	if ids, _ := List(root); len(ids) != 1 {
		t.Errorf("List with a dead create %v", ids)
	}
	if _, err := os.Stat(filepath.Join(root, "dead")); !os.IsNotExist(err) {
		t.Errorf("dead create not cleaned")
	}
}

func TestMkdirAllInRootStaysInside(t *testing.T) {
	outside := t.TempDir()
	root := t.TempDir()
	// An image whose /etc is a symlink out (absolute and by ..).
	os.Symlink(outside, filepath.Join(root, "abs"))
	os.Symlink("../../../../../../"+outside, filepath.Join(root, "rel"))
	rootF, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer rootF.Close()
	// Dangling (its target does not exist inside the root): refused.
	if h, err := mkdirAllInRoot(rootF, "/abs/a/b", 0o755); err == nil {
		h.Close()
		t.Fatalf("mkdir through a dangling symlink succeeded")
	}
	// With the target present inside the root, both links lead there.
	os.MkdirAll(filepath.Join(root, outside), 0o755)
	for _, p := range []string{"/abs/a/b", "/rel/c", "/plain/d/e"} {
		h, err := mkdirAllInRoot(rootF, p, 0o755)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		h.Close()
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("directories created outside the root: %v", entries)
	}
	for _, p := range []string{outside + "/a/b", outside + "/c", root + "/plain/d/e"} {
		in := strings.Replace(p, outside, filepath.Join(root, outside), 1)
		if _, err := os.Stat(in); err != nil {
			t.Errorf("%s not created inside the root (%s): %v", p, in, err)
		}
	}
	h, err := openInRoot(rootF, "/abs/../../../..")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var st, rst unix.Stat_t
	unix.Fstat(int(h.Fd()), &st)
	unix.Stat(root, &rst)
	if st.Ino != rst.Ino {
		t.Fatalf("/abs/../../../.. resolved outside the root")
	}
}
