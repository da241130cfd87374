package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

func hostRlimit(resource int) (cur, max uint64, err error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(resource, &r); err != nil {
		return 0, 0, err
	}
	return r.Cur, r.Max, nil
}

func hostLastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// hostBounding is this process's capability bounding set.
func hostBounding() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("/proc/self/status has no CapBnd line")
}

// hostKernelVersion is the running kernel's version, nil when unknown.
func hostKernelVersion() *kernelVersion {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return nil
	}
	v, ok := parseKernelVersion(unix.ByteSliceToString(u.Release[:]), true)
	if !ok {
		return nil
	}
	return &v
}

// openInRoot opens name (a path inside the image, such as "/etc/passwd")
// for reading with every component, symlinks included, resolved as if
// rootfs were /.
func openInRoot(rootfs, name string) (*os.File, error) {
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: rootfs, Err: err}
	}
	defer unix.Close(root)
	rel := strings.TrimLeft(filepath.Clean("/"+name), "/")
	how := &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(root, rel, how)
		if err == nil {
			return os.NewFile(uintptr(fd), filepath.Join(rootfs, rel)), nil
		}
		switch {
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			continue
		case errors.Is(err, unix.ENOSYS):
			return openJoined(rootfs, name)
		}
		return nil, &os.PathError{Op: "openat2", Path: filepath.Join(rootfs, rel), Err: err}
	}
}

// openJoined is the fallback for kernels before 5.6: resolve lexically
// inside rootfs, then refuse a symlink in the last component. A concurrent
// writer to the rootfs could race it; berth's own unpacked images have none.
func openJoined(rootfs, name string) (*os.File, error) {
	p, err := securejoin.SecureJoin(rootfs, name)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in %s: %w", name, rootfs, err)
	}
	return os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
}

// linuxHost is the running host's Host.
type linuxHost struct{}

func (linuxHost) SwapLimit() bool {
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err == nil {
		return true
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		// cgroup v2: memory.swap.max comes with the memory controller
		// when the kernel has swap accounting.
		if _, err := os.Stat("/sys/fs/cgroup/init.scope/memory.swap.max"); err == nil {
			return true
		}
		return strings.Contains(string(b), "memory") && swapAccountingV2()
	}
	return false
}

// swapAccountingV2 looks for memory.swap.max in any child cgroup of the
// root (the root itself has none).
func swapAccountingV2() bool {
	ents, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.IsDir() {
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", e.Name(), "memory.swap.max")); err == nil {
				return true
			}
		}
	}
	return false
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (linuxHost) OOMKillDisable() bool {
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.oom_control")
	return err == nil
}

func (linuxHost) BlkioWeight() bool {
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return strings.Contains(" "+strings.TrimSpace(string(b))+" ", " io ")
	}
	// v1: blkio.weight (CFQ) or blkio.bfq.weight (BFQ), which the root
	// cgroup may lack while its children have it.
	dirs := []string{"/sys/fs/cgroup/blkio"}
	if ents, err := os.ReadDir("/sys/fs/cgroup/blkio"); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				dirs = append(dirs, filepath.Join("/sys/fs/cgroup/blkio", e.Name()))
			}
		}
	}
	for _, d := range dirs {
		for _, f := range []string{"blkio.weight", "blkio.bfq.weight"} {
			if _, err := os.Stat(filepath.Join(d, f)); err == nil {
				return true
			}
		}
	}
	return false
}

func (linuxHost) Cpus() string { return readTrim("/sys/devices/system/cpu/online") }

func (linuxHost) Mems() string {
	if s := readTrim("/sys/devices/system/node/online"); s != "" {
		return s
	}
	return "0" // a kernel without NUMA has node 0 only
}

// OOMScoreAdjFloor: without CAP_SYS_RESOURCE a process may not lower an
// oom_score_adj below the value it started with; berth's own is the
// lowest it can be sure of.
func (linuxHost) OOMScoreAdjFloor() int {
	if hasCapSysResource() {
		return -1000
	}
	v, err := strconv.Atoi(readTrim("/proc/self/oom_score_adj"))
	if err != nil {
		return 0
	}
	return min(v, 0)
}

func hasCapSysResource() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SYS_RESOURCE) != 0
}

// hostDevices returns the device node at host path p, or every device
// node below it when it is a directory (docker's --device /dev/snd), with
// their container paths under ctr.
func hostDevices(p, ctr, perms string) ([]Device, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return nil, fmt.Errorf("--device %s: error gathering device information: %w", p, &os.PathError{Op: "stat", Path: p, Err: err})
	}
	dev := func(path string, st *unix.Stat_t) (Device, bool) {
		d := Device{Path: path, Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))),
			Mode: st.Mode &^ unix.S_IFMT, UID: st.Uid, GID: st.Gid, Perms: perms}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			d.Type = "c"
		case unix.S_IFBLK:
			d.Type = "b"
		default:
			return d, false
		}
		return d, true
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		d, ok := dev(ctr, &st)
		if !ok {
			return nil, fmt.Errorf("--device %s: not a device node", p)
		}
		return []Device{d}, nil
	}
	var out []Device
	err := filepath.WalkDir(p, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Type()&os.ModeDevice == 0 {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(path, &st) != nil {
			return nil
		}
		rel, _ := filepath.Rel(p, path)
		if d, ok := dev(filepath.Join(ctr, rel), &st); ok {
			out = append(out, d)
		}
		return nil
	})
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("--device %s: no device nodes in that directory", p)
	}
	return out, err
}
