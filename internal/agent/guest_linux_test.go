package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestGuestSpecDropsHostObjects(t *testing.T) {
	s := &specs.Spec{
		Root:    &specs.Root{Path: "/var/lib/berth/containers/x/rootfs", Readonly: true},
		Process: &specs.Process{Terminal: true, Args: []string{"sh"}, ApparmorProfile: "p"},
		Hooks:   &specs.Hooks{},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/etc/hosts", Type: "bind", Source: "/var/lib/berth/containers/x/hosts", Options: []string{"rbind", "ro"}},
			{Destination: "/data", Source: "/srv/data", Options: []string{"bind"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"},
			{Destination: "/vol", Type: "bind", Source: SharedDir + "/m0", Options: []string{"rbind", "rw"}},
			{Destination: "/run/x", Type: "bind", Source: SharedDir + "-not/m1", Options: []string{"rbind"}},
		},
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: "network", Path: "/run/berth/netns/x"}, {Type: "pid"}}},
	}
	guestSpec(s, "/run/berth/rootfs", nil)
	if s.Root.Path != "/run/berth/rootfs" || !s.Root.Readonly || s.Hooks != nil || s.Process.Terminal || s.Process.ApparmorProfile != "" {
		t.Errorf("root, hooks, terminal or LSM label kept: %+v %+v", s.Root, s.Process)
	}
	if len(s.Mounts) != 3 || s.Mounts[0].Destination != "/proc" || s.Mounts[1].Destination != "/tmp" || s.Mounts[2].Destination != "/vol" {
		t.Errorf("mounts: %+v, want /proc, /tmp and the shared /vol only", s.Mounts)
	}
	// The container shares the guest's network namespace: the VM is
	// its network.
	for _, ns := range s.Linux.Namespaces {
		want := ""
		if ns.Type == specs.NetworkNamespace {
			want = "/proc/1/ns/net"
		}
		if ns.Path != want {
			t.Errorf("namespace %s has path %q, want %q", ns.Type, ns.Path, want)
		}
	}
}

func TestWriteFilesStaysInRoot(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	// The image's /etc/hosts is a symlink out of the root: it is
	// replaced, not followed.
	os.Symlink(filepath.Join(outside, "victim"), filepath.Join(root, "etc", "hosts"))
	if err := writeFiles(root, map[string][]byte{"/etc/hosts": []byte("127.0.0.1 localhost\n"), "/etc/hostname": []byte("h\n")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "victim")); err == nil {
		t.Error("the write followed the image's symlink out of the root")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc", "hosts")); string(b) != "127.0.0.1 localhost\n" {
		t.Errorf("/etc/hosts = %q", b)
	}
	if err := writeFiles(root, map[string][]byte{"etc/x": nil}); err == nil {
		t.Error("a relative path was accepted")
	}
}

// A privileged container in a VM gets the guest's devices (docker gives
// the host's): every node of the guest's /dev but the ones the runtime
// makes itself and the agent's port; an unprivileged one none.
func TestPrivilegeGuestDevices(t *testing.T) {
	dev := t.TempDir()
	for _, d := range []struct {
		name  string
		mode  uint32
		major uint32
	}{{"vda", unix.S_IFBLK | 0o660, 254}, {"ttyS0", unix.S_IFCHR | 0o620, 4}, {"vport1p1", unix.S_IFCHR | 0o600, 246}, {"console", unix.S_IFCHR | 0o600, 5}, {"pts/0", unix.S_IFCHR | 0o620, 136}, {"cpu/0/msr", unix.S_IFCHR | 0o600, 202}} {
		os.MkdirAll(filepath.Dir(filepath.Join(dev, d.name)), 0o755)
		if err := unix.Mknod(filepath.Join(dev, d.name), d.mode, int(unix.Mkdev(d.major, 0))); err != nil {
			t.Skipf("mknod: %v (needs root)", err)
		}
	}
	os.WriteFile(filepath.Join(dev, "not-a-device"), nil, 0o644)
	priv := &specs.Spec{Linux: &specs.Linux{Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}}}}
	if !allowsAllDevices(priv) {
		t.Fatal("the engine's --privileged rule is not recognised")
	}
	devs, err := guestDevices(dev, map[string]bool{"vport1p1": true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range devs {
		got = append(got, fmt.Sprintf("%s %s %d", d.Path, d.Type, d.Major))
	}
	if want := "/dev/cpu/0/msr c 202,/dev/ttyS0 c 4,/dev/vda b 254"; strings.Join(got, ",") != want {
		t.Errorf("guest devices: %v, want %s", got, want)
	}
	major := int64(1)
	unpriv := &specs.Spec{Linux: &specs.Linux{Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: &major, Access: "rwm"}}}}}
	if allowsAllDevices(unpriv) {
		t.Error("an unprivileged container's rules read as privileged")
	}
	if err := privilegeGuestDevices(unpriv, dev); err != nil || len(unpriv.Linux.Devices) != 0 {
		t.Errorf("an unprivileged container got devices: %v, %v", unpriv.Linux.Devices, err)
	}
}

// A pod's container joins the pod's IPC, UTS and (shared) PID
// namespaces and keeps the bind of the pod's /dev/shm.
func TestGuestSpecInPod(t *testing.T) {
	s := &specs.Spec{
		Mounts: []specs.Mount{
			{Destination: "/dev/shm", Type: "bind", Source: PodShmDir, Options: []string{"rbind"}},
			{Destination: "/etc/x", Type: "bind", Source: "/var/lib/x", Options: []string{"rbind"}},
		},
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: "network", Path: "/run/berth/netns/p"}, {Type: "ipc", Path: "/run/berth/pods/p/ipc"}, {Type: "uts"}, {Type: "mount"}, {Type: "pid", Path: "/run/berth/pods/p/pid"}}},
	}
	guestSpec(s, SharedDir+"/c.root", &podNamespaces{IPC: "/proc/9/ns/ipc", UTS: "/proc/9/ns/uts", PID: "/proc/9/ns/pid"})
	if len(s.Mounts) != 1 || s.Mounts[0].Source != PodShmDir {
		t.Errorf("mounts %+v, want the pod's /dev/shm only", s.Mounts)
	}
	var got []string
	for _, ns := range s.Linux.Namespaces {
		got = append(got, string(ns.Type)+"="+ns.Path)
	}
	if want := "network=/proc/1/ns/net,ipc=/proc/9/ns/ipc,uts=/proc/9/ns/uts,mount=,pid=/proc/9/ns/pid"; strings.Join(got, ",") != want {
		t.Errorf("namespaces %v, want %s", got, want)
	}
}

func TestPodContainerRoot(t *testing.T) {
	for _, root := range []string{"", "/", SharedDir, SharedDir + "/../etc", SharedDir + "/a/b", "/run/berth/rootfs", SharedDir + "/a/"} {
		if _, err := podContainerRoot(&Create{Root: root, Process: Process{OCI: []byte("{}")}}); err == nil {
			t.Errorf("root %q: no error", root)
		}
	}
}
