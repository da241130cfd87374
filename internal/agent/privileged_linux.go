package agent

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// allowsAllDevices reports whether the spec's device cgroup lets the
// container use every device, as the engine writes it for --privileged
// (one rule: allow, any type, any numbers, rwm).
func allowsAllDevices(s *specs.Spec) bool {
	if s.Linux == nil || s.Linux.Resources == nil {
		return false
	}
	for _, d := range s.Linux.Resources.Devices {
		if d.Allow && (d.Type == "" || d.Type == "a") && d.Major == nil && d.Minor == nil && strings.Contains(d.Access, "r") && strings.Contains(d.Access, "w") && strings.Contains(d.Access, "m") {
			return true
		}
	}
	return false
}

// privilegeGuestDevices gives a privileged container the guest's devices:
// docker's --privileged gives the host's /dev, and in a VM the guest is
// the container's machine, so it gets the nodes of the guest's devtmpfs
// (the layer disks, attached read-only by QEMU, the virtio devices, the
// guest's ttys), never a host device: none exists in the guest. The
// container is then the guest's root in all but name; the VM is the
// boundary, and the host reads nothing of the guest's but the agent's
// frames, each checked.
func privilegeGuestDevices(s *specs.Spec, dev string) error {
	if !allowsAllDevices(s) {
		return nil
	}
	devs, err := guestDevices(dev, agentPorts())
	if err != nil {
		return err
	}
	s.Linux.Devices = append(s.Linux.Devices, devs...)
	return nil
}

// agentPorts are the guest's virtio-serial port nodes (the agent's
// channel): left out of a privileged container's /dev, as the agent holds
// the port and the container has no business on it.
func agentPorts() map[string]bool {
	ports := map[string]bool{}
	ents, _ := os.ReadDir("/sys/class/virtio-ports")
	for _, e := range ents {
		ports[e.Name()] = true
	}
	return ports
}

// skippedDevices are the nodes the runtime makes itself (a container's
// own console, tty and pty multiplexer) and the directories of mounts it
// makes (as docker leaves them out of --privileged's host devices).
var skippedDevices = map[string]bool{"console": true, "ptmx": true, "tty": true, "pts": true, "shm": true, "mqueue": true, "fd": true}

// guestDevices lists the character and block devices under dev, with
// their numbers, modes and owners, leaving out skippedDevices and the
// names in except.
func guestDevices(dev string, except map[string]bool) ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	err := filepath.WalkDir(dev, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dev {
			return nil
		}
		rel, _ := filepath.Rel(dev, p)
		if skippedDevices[rel] || except[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return nil // gone meanwhile
		}
		typ := "b"
		if st.Mode&unix.S_IFMT == unix.S_IFCHR {
			typ = "c"
		}
		mode := os.FileMode(st.Mode & 0o777)
		uid, gid := st.Uid, st.Gid
		out = append(out, specs.LinuxDevice{Path: "/dev/" + rel, Type: typ,
			Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)), FileMode: &mode, UID: &uid, GID: &gid})
		return nil
	})
	return out, err
}
