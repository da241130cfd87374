package agent

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/linux"
)

// ModulesOrder is the initramfs file listing the kernel modules to load,
// one path a line, dependencies first.
const ModulesOrder = "/lib/modules/order"

// Module sets the agent loads only when a container needs them, each
// listed (its modules not loaded at boot) in ModuleSetOrder(set): under
// TCG the network's drivers take 25-35 ms of the boot, the share's
// (fuse, virtiofs) 40-75 ms.
const (
	ModuleSetNet   = "net"
	ModuleSetShare = "virtiofs"
	// ModuleSetDisk is virtio_blk, loaded when the container's layers
	// are made, not at boot: a VM restored from a template then probes
	// its own disks (their sizes, its images' first blocks) instead of
	// finding the template's in the restored kernel.
	ModuleSetDisk = "disk"
	// ModuleSetNetAdmin is what a container that may administer its
	// network (CAP_NET_ADMIN: a privileged one's) may ask the kernel
	// for that the guest has no modprobe to load on demand: bridges.
	ModuleSetNetAdmin = "netadmin"
)

// ModuleSetOrder is the initramfs file listing a module set.
func ModuleSetOrder(set string) string { return ModulesOrder + "." + set }

// IsAgent reports whether this process is the guest agent: PID 1 with
// the kernel command line's marker in its environment. A container's
// PID 1 (in the guest too, later, under berth's linux runtime) gets the
// environment its spec gives, never init's.
func IsAgent() bool {
	return os.Getpid() == 1 && os.Getenv(EnvMarker) == "1"
}

// Main is the agent's entry point; it never returns.
func Main() {
	err := run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth agent: %v\n", err)
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	select {}
}

// debugf writes to the guest console when the kernel command line holds
// BERTH_AGENT_DEBUG=1, each line with the guest's time since its boot
// (where a boot's time goes: docs/architecture.md).
func debugf(format string, args ...any) {
	if os.Getenv("BERTH_AGENT_DEBUG") == "1" {
		var ts unix.Timespec
		unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
		fmt.Fprintf(os.Stderr, "berth agent: [%d.%03d] "+format+"\n", append([]any{ts.Sec, ts.Nsec / 1e6}, args...)...)
	}
}

func run() error {
	os.Unsetenv(EnvMarker)
	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, unix.SIGCHLD)
	if err := setupGuest(); err != nil {
		return err
	}
	debugf("modules loaded")
	port, err := openPort(10 * time.Second)
	if err != nil {
		return err
	}
	debugf("port open")
	defer port.Close()
	ch, err := Accept(FileConn(port), Hello{Min: MinVersion, Max: Version, Agent: "berth"}, AcceptOptions{
		// The port reads its end while no host is connected (a VM
		// restored from a template before its shim connects).
		WaitHost: func() error { time.Sleep(5 * time.Millisecond); return nil },
	})
	if err != nil {
		return fmt.Errorf("the agent channel: %w", err)
	}
	debugf("channel up (protocol version %d)", ch.Version())
	a := New(ch, guest{})
	theReaper.orphan = a.Reaped
	go theReaper.loop(sigc)
	return a.Serve()
}

// setupGuest mounts the guest's own file systems and loads the modules.
func setupGuest() error {
	for _, m := range []struct{ src, dst, fs string }{
		{"devtmpfs", "/dev", "devtmpfs"},
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"tmpfs", "/run", "tmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fs, unix.MS_NOSUID, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
		if m.dst == "/dev" {
			stdioFromConsole()
			debugf("up")
		}
	}
	return loadModules(ModulesOrder)
}

// stdioFromConsole gives init fds 0-2 on the console when the kernel
// found none to open: a file opened later must never land on them (a
// panic message would go into it).
func stdioFromConsole() {
	for fd := 0; fd <= 2; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			continue
		}
		c, err := unix.Open("/dev/console", unix.O_RDWR, 0)
		if err != nil {
			c, err = unix.Open("/dev/null", unix.O_RDWR, 0)
		}
		if err == nil && c != fd {
			unix.Dup2(c, fd)
			unix.Close(c)
		}
	}
}

func loadModules(order string) error {
	f, err := os.Open(order)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" {
			continue
		}
		m, err := os.Open(p)
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(m.Fd()), "", 0)
		m.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("load %s: %w", filepath.Base(p), err)
		}
	}
	return sc.Err()
}

// openPort opens the virtio-serial port named PortName.
func openPort(timeout time.Duration) (*os.File, error) {
	deadline := time.Now().Add(timeout)
	for {
		ents, _ := os.ReadDir("/sys/class/virtio-ports")
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join("/sys/class/virtio-ports", e.Name(), "name"))
			if err == nil && strings.TrimSpace(string(b)) == PortName {
				f, err := os.OpenFile("/dev/"+e.Name(), os.O_RDWR|unix.O_CLOEXEC, 0)
				if err == nil {
					return f, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no virtio-serial port %q", PortName)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reaper collects every child (PID 1 inherits the orphans): the exit of
// a process the agent runs and waits for (the runtime's commands) goes to
// its waiter, any other to the agent (the container's init among them).
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan int
	orphan  func(pid, code int)
}

var theReaper = &reaper{waiters: map[int]chan int{}}

func (r *reaper) loop(ch chan os.Signal) {
	for range ch {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			if !ws.Exited() && !ws.Signaled() {
				continue
			}
			code := ExitCode(ws.Exited(), ws.ExitStatus(), ws.Signaled(), int(ws.Signal()))
			r.mu.Lock()
			w := r.waiters[pid]
			delete(r.waiters, pid)
			r.mu.Unlock()
			if w != nil {
				w <- code
			} else if r.orphan != nil {
				// Not inline: the agent may hold its lock while it
				// waits for a command this loop must reap.
				go r.orphan(pid, code)
			}
		}
	}
}

// run runs argv with the given stdio and returns its exit code and
// stderr, waiting through the reaper (a wait4 of its own would race it).
func (r *reaper) run(argv []string, env []string, stdio [3]*os.File) (int, error) {
	r.mu.Lock()
	p, err := os.StartProcess(argv[0], argv, &os.ProcAttr{Env: env, Files: stdio[:]})
	if err != nil {
		r.mu.Unlock()
		return 0, err
	}
	w := make(chan int, 1)
	r.waiters[p.Pid] = w
	r.mu.Unlock()
	p.Release()
	return <-w, nil
}

// guest is the real machine.
type guest struct{}

const (
	rootDir   = "/run/berth/rootfs"
	layersDir = "/run/berth/layers"
	upperDir  = "/run/berth/rw"
)

// PrepareSandbox sets up a pod's VM: what PrepareRoot sets up for a VM
// of one container before its root, and the pod's /dev/shm.
func (guest) PrepareSandbox(c *Create) error {
	if err := prepareMachine(c); err != nil {
		return err
	}
	if err := os.MkdirAll(PodShmDir, 0o1777); err != nil {
		return err
	}
	size := c.ShmSize
	if size <= 0 {
		size = 64 << 20
	}
	if err := unix.Mount("shm", PodShmDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, fmt.Sprintf("mode=1777,size=%d", size)); err != nil {
		return fmt.Errorf("mount the pod's /dev/shm: %w", err)
	}
	ns, err := startPodHolder(c.SharePID)
	if err != nil {
		return err
	}
	thePodNamespaces = ns
	return mountCgroup()
}

// podNamespaces are the pod's namespaces in its VM that its containers
// join ("/proc/PID/ns/..." of the pod's holder): its IPC and UTS
// namespaces, and its PID namespace when the pod shares one (else
// empty: each container has its own).
type podNamespaces struct {
	IPC, UTS, PID string
}

// thePodNamespaces are this VM's pod's, once the sandbox request made
// them.
var thePodNamespaces *podNamespaces

// startPodHolder starts the holder of the pod's namespaces: this binary
// again, as PodPIDName, in new IPC and UTS namespaces (the host name
// already the pod's), and a new PID namespace when the pod shares one.
// So the containers' namespaced sysctls and IPC are the pod's, apart
// from the agent's. The agent's reaper collects it should it ever end.
func startPodHolder(sharePID bool) (*podNamespaces, error) {
	flags := uintptr(unix.CLONE_NEWIPC | unix.CLONE_NEWUTS)
	if sharePID {
		flags |= unix.CLONE_NEWPID
	}
	p, err := os.StartProcess("/proc/self/exe", []string{PodPIDName}, &os.ProcAttr{
		Env: []string{}, Sys: &syscall.SysProcAttr{Cloneflags: flags},
	})
	if err != nil {
		return nil, fmt.Errorf("the pod's namespaces: %w", err)
	}
	ns := &podNamespaces{IPC: fmt.Sprintf("/proc/%d/ns/ipc", p.Pid), UTS: fmt.Sprintf("/proc/%d/ns/uts", p.Pid)}
	if sharePID {
		ns.PID = fmt.Sprintf("/proc/%d/ns/pid", p.Pid)
	}
	p.Release()
	return ns, nil
}

// PodPIDMain is the holder of a pod's namespaces: deaf to the signals
// its containers may send it and, as PID 1 of a shared PID namespace,
// reaping the processes they orphan.
func PodPIDMain() {
	signal.Ignore(unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPIPE)
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, unix.SIGCHLD)
	for range chld {
		for {
			var ws unix.WaitStatus
			if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}

// mountCgroup mounts the guest's cgroup2 hierarchy, which berth's linux
// runtime needs.
func mountCgroup() error {
	os.MkdirAll("/sys/fs/cgroup", 0o755)
	if err := unix.Mount("cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount cgroup2: %w", err)
	}
	return nil
}

// prepareMachine gives the guest its host name, network and the host's
// share.
func prepareMachine(c *Create) error {
	if c.Hostname != "" {
		unix.Sethostname([]byte(c.Hostname))
	}
	if c.Network != nil && len(c.Network.Interfaces) > 0 {
		if err := loadModules(ModuleSetOrder(ModuleSetNet)); err != nil {
			return err
		}
	}
	if err := configureNetwork(c.Network, 10*time.Second); err != nil {
		return fmt.Errorf("the guest's network: %w", err)
	}
	if c.Share != "" {
		if err := loadModules(ModuleSetOrder(ModuleSetShare)); err != nil {
			return err
		}
		if err := os.MkdirAll(SharedDir, 0o700); err != nil {
			return err
		}
		if err := unix.Mount(c.Share, SharedDir, "virtiofs", unix.MS_NODEV, ""); err != nil {
			return fmt.Errorf("mount the host's share (virtio-fs %q): %w", c.Share, err)
		}
	}
	return nil
}

func (guest) PrepareRoot(container string, c *Create) (string, error) {
	if container != "" {
		return podContainerRoot(c)
	}
	if len(c.Layers) == 0 {
		return "", fmt.Errorf("%w: no layers", ErrMalformed)
	}
	if err := prepareMachine(c); err != nil {
		return "", err
	}
	debugf("create")
	if err := loadModules(ModuleSetOrder(ModuleSetDisk)); err != nil {
		return "", err
	}
	disks, err := findDisks(c.Layers, 10*time.Second)
	if err != nil {
		return "", err
	}
	lowers := make([]string, len(disks))
	for i, d := range disks {
		dir := filepath.Join(layersDir, strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
		if err := unix.Mount(d, dir, "erofs", unix.MS_RDONLY|unix.MS_NODEV, ""); err != nil {
			return "", fmt.Errorf("mount layer %d (%s): %w", i, d, err)
		}
		// overlayfs lists the top layer first.
		lowers[len(disks)-1-i] = dir
	}
	if err := mountUpper(c.Upper); err != nil {
		return "", err
	}
	if err := os.MkdirAll(rootDir, 0o755); err != nil {
		return "", err
	}
	opts := "lowerdir=" + strings.Join(lowers, ":") + ",upperdir=" + upperDir + "/upper,workdir=" + upperDir + "/work"
	if err := unix.Mount("overlay", rootDir, "overlay", 0, opts); err != nil {
		return "", fmt.Errorf("mount the root overlay: %w", err)
	}
	if err := writeFiles(rootDir, c.Files); err != nil {
		return "", err
	}
	if c.Process.OCI != nil {
		// berth's linux runtime makes the container's mounts from its
		// spec; it needs the guest's cgroups.
		return rootDir, mountCgroup()
	}
	return rootDir, mountInRoot(rootDir)
}

// podContainerRoot checks the root a pod's container brings: a
// directory of the host's share, which the host mounted there. It runs
// under berth's linux runtime only.
func podContainerRoot(c *Create) (string, error) {
	root := filepath.Clean(c.Root)
	if root != c.Root || !strings.HasPrefix(root, SharedDir+"/") || strings.Count(root[len(SharedDir)+1:], "/") != 0 {
		return "", fmt.Errorf("%w: a pod's container's root %q is not an entry of %s", ErrMalformed, c.Root, SharedDir)
	}
	if c.Process.OCI == nil {
		return "", fmt.Errorf("%w: a pod's container needs its OCI spec", ErrMalformed)
	}
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return "", fmt.Errorf("the container's root %s from the host: not a directory (%v)", root, err)
	}
	if err := writeFiles(root, c.Files); err != nil {
		return "", err
	}
	return root, nil
}

// mountInRoot gives the container its /proc, /sys, /dev (a tmpfs with the
// usual nodes, not the guest's devtmpfs: the layer disks stay out of
// reach), /dev/pts and /dev/shm. Each target is resolved in the root so a
// symlink in the image cannot point a mount elsewhere.
func mountInRoot(root string) error {
	type mnt struct {
		dst, fs string
		flags   uintptr
		data    string
	}
	for _, m := range []mnt{
		{"/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY, ""},
		{"/dev", "tmpfs", unix.MS_NOSUID | unix.MS_STRICTATIME, "mode=755,size=65536k"},
		{"/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"},
		{"/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "mode=1777,size=65536k"},
	} {
		fd, err := mkdirInRoot(root, m.dst)
		if err != nil {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
		err = unix.Mount(m.fs, fmt.Sprintf("/proc/self/fd/%d", fd), m.fs, m.flags, m.data)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
		if m.dst == "/dev" {
			if err := makeDevices(root); err != nil {
				return err
			}
		}
	}
	return nil
}

// mkdirInRoot makes dst (one level under an existing directory) in root
// and opens it, resolving in root.
func mkdirInRoot(root, dst string) (int, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(rfd)
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(rfd, dst, how)
	if errors.Is(err, unix.ENOENT) {
		pfd, perr := unix.Openat2(rfd, filepath.Dir(dst), how)
		if perr != nil {
			return -1, perr
		}
		err = unix.Mkdirat(pfd, filepath.Base(dst), 0o755)
		unix.Close(pfd)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, err
		}
		fd, err = unix.Openat2(rfd, dst, how)
	}
	return fd, err
}

func makeDevices(root string) error {
	dev := filepath.Join(root, "dev")
	for _, d := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
		if err := unix.Mknod(filepath.Join(dev, d.name), unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			return fmt.Errorf("make /dev/%s: %w", d.name, err)
		}
		os.Chmod(filepath.Join(dev, d.name), 0o666)
	}
	for _, l := range [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}} {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return err
		}
	}
	return nil
}

// findDisks maps the layer disks' serial numbers to device nodes.
func findDisks(serials []string, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		bySerial := map[string]string{}
		ents, _ := os.ReadDir("/sys/block")
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "serial"))
			if err == nil {
				bySerial[strings.TrimSpace(string(b))] = "/dev/" + e.Name()
			}
		}
		out := make([]string, 0, len(serials))
		for _, s := range serials {
			if d, ok := bySerial[s]; ok {
				out = append(out, d)
			}
		}
		if len(out) == len(serials) {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("layer disks %v: found %d of %d", serials, len(out), len(serials))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (guest) StartProcess(container, root string, p *Process, stdio [3]*os.File) (int, *os.File, error) {
	if p.Files {
		return startFilesHelper(container, p, stdio)
	}
	if p.OCI != nil {
		theSharedMounts.set(container, p.OCI)
	}
	path, err := lookPathIn(root, p.Args[0], PathOf(p.Env))
	if err != nil && (p.OCI == nil && p.OCIProcess == nil || !theSharedMounts.provide(container, p.Args[0], PathOf(p.Env))) {
		return 0, nil, err
	}
	if p.OCIProcess != nil {
		return startExec(container, p, stdio)
	}
	if p.OCI != nil {
		return startConfined(container, root, p, stdio)
	}
	if p.Terminal {
		return 0, nil, errors.New("a terminal needs the container's OCI spec")
	}
	pid, err := startChrooted(root, path, p, stdio)
	return pid, nil, err
}

func (guest) Resize(console *os.File, size WinSize) error {
	return unix.IoctlSetWinsize(int(console.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Rows, Col: size.Cols})
}

func startChrooted(root, path string, p *Process, stdio [3]*os.File) (int, error) {
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	proc, err := os.StartProcess(path, p.Args, &os.ProcAttr{
		Dir:   cwd,
		Env:   p.Env,
		Files: stdio[:],
		Sys: &syscall.SysProcAttr{
			Chroot:     root,
			Setsid:     true,
			Credential: &syscall.Credential{Uid: p.UID, Gid: p.GID, Groups: p.Groups},
		},
	})
	if err != nil {
		return 0, fmt.Errorf("exec %q: %w", p.Args[0], err)
	}
	pid := proc.Pid
	proc.Release()
	return pid, nil
}

// lookPathIn finds an executable as the process's PATH would, resolving
// every candidate inside root (absolute symlinks in an image point into
// the image, not the guest).
func lookPathIn(root, file, path string) (string, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(rfd)
	check := func(p string) error {
		fd, err := unix.Openat2(rfd, p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o111 == 0 {
			return unix.EACCES
		}
		return nil
	}
	if strings.Contains(file, "/") {
		if err := check(file); err != nil {
			return "", fmt.Errorf("exec %q: %w", file, err)
		}
		return file, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if !filepath.IsAbs(p) {
			continue
		}
		if check(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", file)
}

func (guest) Signal(pid, sig int) error { return unix.Kill(pid, unix.Signal(sig)) }

func (guest) Poweroff() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// Where berth's linux runtime keeps the container in the guest.
const (
	bundleDir   = "/run/berth/bundle"
	runtimeRoot = "/run/berth/runtime"
	guestID     = "init"
	// podBundles holds a pod's containers' bundles, by name.
	podBundles = "/run/berth/bundles"
)

// runtimeID and bundleOf are the runtime's name and the bundle of a
// container ("" for a VM's one).
func runtimeID(container string) string {
	if container == "" {
		return guestID
	}
	return container
}

func bundleOf(container string) string {
	if container == "" {
		return bundleDir
	}
	return filepath.Join(podBundles, container)
}

// startConfined runs the container's process under berth's own linux
// runtime in the guest (namespaces, cgroups, capabilities, seccomp, as
// the spec says): the VM is the outer boundary, the runtime the inner.
// The runtime's commands are this binary again (berth runtime ...); the
// init they leave behind is reparented to the agent, which reaps it.
func startConfined(container, root string, p *Process, stdio [3]*os.File) (_ int, console *os.File, retErr error) {
	var spec specs.Spec
	if err := json.Unmarshal(p.OCI, &spec); err != nil {
		return 0, nil, fmt.Errorf("%w: the container's spec: %v", ErrMalformed, err)
	}
	var pod *podNamespaces
	if container != "" {
		if pod = thePodNamespaces; pod == nil {
			return 0, nil, fmt.Errorf("%w: container %s of a pod before its sandbox", ErrMalformed, container)
		}
	}
	guestSpec(&spec, root, pod)
	bundleDir := bundleOf(container)
	if spec.Process != nil && spec.Process.Capabilities != nil && slices.Contains(spec.Process.Capabilities.Bounding, "CAP_NET_ADMIN") {
		// A missing set (an older initramfs) leaves the kernel as it is.
		if err := loadModules(ModuleSetOrder(ModuleSetNetAdmin)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, nil, fmt.Errorf("the guest's modules for CAP_NET_ADMIN: %w", err)
		}
	}
	if err := privilegeGuestDevices(&spec, "/dev"); err != nil {
		return 0, nil, fmt.Errorf("the guest's devices: %w", err)
	}
	if spec.Process != nil {
		spec.Process.Terminal = p.Terminal
	}
	b, err := json.Marshal(&spec)
	if err != nil {
		return 0, nil, err
	}
	if err := os.MkdirAll(bundleDir, 0o700); err != nil {
		return 0, nil, err
	}
	if err := os.WriteFile(filepath.Join(bundleDir, "config.json"), b, 0o600); err != nil {
		return 0, nil, err
	}
	var extra []string
	var consoleCh chan *os.File
	if p.Terminal {
		sock := filepath.Join(bundleDir, "console.sock")
		os.Remove(sock)
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			return 0, nil, err
		}
		defer l.Close()
		consoleCh = make(chan *os.File, 1)
		go func() { consoleCh <- receiveConsole(l) }()
		extra = []string{"--console-socket", sock}
		defer func() {
			if retErr != nil && console != nil {
				console.Close()
			}
		}()
	}
	pidFile := filepath.Join(bundleDir, "init.pid")
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	// run --detach: create and start in one command (every start of
	// this binary is emulated under TCG). The init takes these stdio
	// (the runtime's pass-through mode), so the runtime's own complaints
	// land on the container's stderr too.
	argv := append([]string{"/proc/self/exe", "runtime", "--root", runtimeRoot, "run", "--detach", "--bundle", bundleDir, "--no-pivot", "--pid-file", pidFile}, extra...)
	debugf("runtime run")
	pid, console, err := runDetached(append(argv, runtimeID(container)), env, stdio, consoleCh, pidFile, "run the container", "the container's")
	debugf("runtime run done")
	return pid, console, err
}

// runDetached runs a detached command of the guest's runtime (run or
// exec --detach with --pid-file) and returns the pid its pid file names
// and, with consoleCh, the pty master its console socket received;
// what and whose name the command and the stderr in errors.
func runDetached(argv, env []string, stdio [3]*os.File, consoleCh chan *os.File, pidFile, what, whose string) (_ int, console *os.File, retErr error) {
	code, err := theReaper.run(argv, env, stdio)
	if err != nil {
		return 0, nil, fmt.Errorf("the guest's runtime: %w", err)
	}
	if consoleCh != nil {
		select {
		case console = <-consoleCh:
		case <-time.After(10 * time.Second):
		}
	}
	if code != 0 {
		return 0, console, fmt.Errorf("the guest's runtime could not %s (exit %d; its message is on %s stderr)", what, code, whose)
	}
	if consoleCh != nil && console == nil {
		return 0, nil, errors.New("the guest's runtime sent no pty")
	}
	pb, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, console, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pb)))
	if err != nil {
		return 0, console, fmt.Errorf("the guest's runtime pid file: %w", err)
	}
	return pid, console, nil
}

// receiveConsole accepts the runtime's connection on its console socket
// and returns the pty master it passes (nil if none comes).
func receiveConsole(l *net.UnixListener) *os.File {
	l.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := l.AcceptUnix()
	if err != nil {
		return nil
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return nil
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return nil
	}
	for _, fd := range fds[1:] {
		unix.Close(fd)
	}
	unix.CloseOnExec(fds[0])
	return os.NewFile(uintptr(fds[0]), "pty-master")
}

// guestNetns is the guest's own network namespace (the agent's).
const guestNetns = "/proc/1/ns/net"

// guestSpec turns the host's spec of the container into the guest's:
// its root is the overlay of the layer disks; what names host objects
// (bind mounts of host files, namespace paths, hooks, LSM labels) has no
// meaning in the guest and goes; the bind mounts the host shared over
// virtio-fs (their sources under SharedDir) stay.
//
// A pod's container (pod set) joins the pod's IPC and UTS namespaces, and
// its PID namespace if the pod shares one, and binds the pod's /dev/shm
// (PodShmDir).
func guestSpec(s *specs.Spec, root string, pod *podNamespaces) {
	inPod := pod != nil
	if s.Root == nil {
		s.Root = &specs.Root{}
	}
	s.Root.Path = root
	s.Hooks = nil
	if s.Process != nil {
		s.Process.Terminal = false
		s.Process.ApparmorProfile = ""
		s.Process.SelinuxLabel = ""
	}
	mounts := s.Mounts[:0]
	for _, m := range s.Mounts {
		bind := m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
		if bind && !strings.HasPrefix(m.Source, SharedDir+"/") && !(inPod && m.Source == PodShmDir) {
			continue
		}
		mounts = append(mounts, m)
	}
	s.Mounts = mounts
	if s.Linux != nil {
		for i := range s.Linux.Namespaces {
			ns := &s.Linux.Namespaces[i]
			ns.Path = ""
			// The VM is the container's network namespace: the
			// container shares the guest's (where the agent set up the
			// interfaces the host wired to its namespace there).
			if ns.Type == specs.NetworkNamespace {
				ns.Path = guestNetns
			}
			if inPod {
				switch ns.Type {
				case specs.IPCNamespace:
					ns.Path = pod.IPC
				case specs.UTSNamespace:
					ns.Path = pod.UTS
				case specs.PIDNamespace:
					ns.Path = pod.PID
				}
			}
		}
		s.Linux.MountLabel = ""
	}
}

// writeFiles writes the engine's files into the root, each path resolved
// in it (an image's symlink at /etc/hosts cannot send the write out) and
// the file itself opened without following a link.
func writeFiles(root string, files map[string][]byte) error {
	if len(files) == 0 {
		return nil
	}
	for p, data := range files {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" || len(data) > MaxFileSize {
			return fmt.Errorf("%w: file %q (%d bytes)", ErrMalformed, p, len(data))
		}
		dfd, err := mkdirInRoot(root, filepath.Dir(p))
		if err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		// An image's symlink (or directory) there is replaced.
		if err := unix.Unlinkat(dfd, filepath.Base(p), 0); err != nil && !errors.Is(err, unix.ENOENT) {
			unix.Close(dfd)
			return fmt.Errorf("write %s: %w", p, err)
		}
		fd, err := unix.Openat(dfd, filepath.Base(p), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		unix.Close(dfd)
		if err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		f := os.NewFile(uintptr(fd), p)
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

// diffArgs are the file helper's arguments for diff: the root overlay's
// upper directory and its layers' mount points (PrepareRoot), top-most
// first.
func diffArgs() ([]string, error) {
	ents, err := os.ReadDir(layersDir)
	if err != nil {
		return nil, err
	}
	var idx []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			idx = append(idx, n)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(idx)))
	args := []string{"diff", upperDir + "/upper"}
	for _, n := range idx {
		args = append(args, filepath.Join(layersDir, strconv.Itoa(n)))
	}
	return args, nil
}

// startFilesHelper runs this binary as the file helper (cp and export):
// in the guest's namespaces, as root, on the root the agent gave it.
func startFilesHelper(container string, p *Process, stdio [3]*os.File) (int, *os.File, error) {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	args := p.Args
	switch {
	case container != "" && len(args) > 0 && (args[0] == "diff" || args[0] == "layer"):
		// A pod's container's layers are the host's (its root came
		// over the share whole).
		return 0, nil, fmt.Errorf("the file helper's %s: not for a container of a pod's VM", args[0])
	case len(args) > 0 && args[0] == "diff":
		// diff reads the root overlay's layers, not its merged root:
		// the upper directory, then the layers top-most first.
		var err error
		if args, err = diffArgs(); err != nil {
			return 0, nil, fmt.Errorf("the file helper: %w", err)
		}
	case len(args) > 1 && args[0] == "layer":
		// layer (commit) reads the upper directory; the host's
		// arguments after the root are the paths to leave out.
		args = append([]string{"layer", upperDir + "/upper"}, args[2:]...)
	}
	proc, err := os.StartProcess("/proc/self/exe", append([]string{FilesHelperName}, args...), &os.ProcAttr{Env: env, Files: stdio[:]})
	if err != nil {
		return 0, nil, fmt.Errorf("the file helper: %w", err)
	}
	pid := proc.Pid
	proc.Release()
	return pid, nil, nil
}

var execSeq atomic.Uint64

// startExec has berth's runtime start an OCI process in the container
// (exec --detach) and returns the process's own pid: the runtime exits
// once it runs, and the process, reparented to the agent, is reaped by
// it, so a signal (a caller's timeout) reaches the process itself, not a
// runtime waiting for it.
func startExec(container string, p *Process, stdio [3]*os.File) (_ int, console *os.File, retErr error) {
	bundleDir := bundleOf(container)
	n := execSeq.Add(1)
	f := filepath.Join(bundleDir, fmt.Sprintf("exec-%d.json", n))
	if err := os.WriteFile(f, p.OCIProcess, 0o600); err != nil {
		return 0, nil, err
	}
	defer os.Remove(f)
	pidFile := filepath.Join(bundleDir, fmt.Sprintf("exec-%d.pid", n))
	defer os.Remove(pidFile)
	argv := []string{"/proc/self/exe", "runtime", "--root", runtimeRoot, "exec", "--detach", "--pid-file", pidFile, "--process", f}
	var consoleCh chan *os.File
	if p.Terminal {
		sock := filepath.Join(bundleDir, fmt.Sprintf("console-%d.sock", n))
		os.Remove(sock)
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			return 0, nil, err
		}
		defer l.Close()
		defer os.Remove(sock)
		consoleCh = make(chan *os.File, 1)
		go func() { consoleCh <- receiveConsole(l) }()
		argv = append(argv, "--console-socket", sock)
		defer func() {
			if retErr != nil && console != nil {
				console.Close()
			}
		}()
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	return runDetached(append(argv, runtimeID(container)), env, stdio, consoleCh, pidFile, "exec the process", "the exec's")
}

// sharedMounts are the destinations of the container's bind mounts from
// the host's share: the overlay root lacks what they bring (the runtime
// mounts them in the container's mount namespace), so a command found
// under one (--init's /sbin/berth-init, a script in a volume) is left
// to the runtime to find.
type sharedMounts struct {
	mu sync.Mutex
	// dests are by container.
	dests map[string][]string
}

var theSharedMounts = sharedMounts{dests: map[string][]string{}}

func (s *sharedMounts) set(container string, oci []byte) {
	var spec specs.Spec
	if json.Unmarshal(oci, &spec) != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var dests []string
	for _, m := range spec.Mounts {
		if strings.HasPrefix(m.Source, SharedDir+"/") {
			dests = append(dests, filepath.Clean(m.Destination))
		}
	}
	s.dests[container] = dests
}

func (s *sharedMounts) forget(container string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.dests, container)
}

// provide reports whether file, as the process's PATH finds it, lies
// under one of the container's shared mounts.
func (s *sharedMounts) provide(container, file, path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	under := func(p string) bool {
		p = filepath.Clean(p)
		for _, d := range s.dests[container] {
			if p == d || strings.HasPrefix(p, d+"/") {
				return true
			}
		}
		return false
	}
	if strings.Contains(file, "/") {
		return filepath.IsAbs(file) && under(file)
	}
	for _, dir := range filepath.SplitList(path) {
		if filepath.IsAbs(dir) && under(filepath.Join(dir, file)) {
			return true
		}
	}
	return false
}

// Stats samples the container the guest's runtime made: its cgroup in
// the guest, its network namespace's counters (the guest's eth0).
func (guest) Stats(container string) (*Stats, error) {
	c, err := linux.NewDriver(runtimeRoot).Load(context.Background(), runtimeID(container))
	if err != nil {
		return nil, fmt.Errorf("the container in the guest: %w", err)
	}
	s, err := c.Stats(context.Background())
	if err != nil {
		return nil, err
	}
	return &Stats{CPUTotal: s.CPUTotal, MemUsage: s.MemUsage, MemLimit: s.MemLimit, Pids: s.Pids,
		NetRx: s.NetRx, NetTx: s.NetTx, BlockRead: s.BlockRead, BlockWrite: s.BlockWrite, OOMKills: s.OOMKills, Detail: s.Detail}, nil
}

// Top lists the processes of the container's cgroup in the guest as ps
// would (the guest has no ps: ps_linux.go formats /proc).
func (guest) Top(container string, psArgs []string) (*Top, error) {
	cols, err := ParsePsArgs(psArgs)
	if err != nil {
		return nil, err
	}
	c, err := linux.Load(runtimeRoot, runtimeID(container))
	if err != nil {
		return nil, fmt.Errorf("the container in the guest: %w", err)
	}
	pids, err := c.Processes()
	if err != nil {
		return nil, fmt.Errorf("list its processes: %w", err)
	}
	slices.Sort(pids)
	return psTable("/proc", pids, cols, time.Now()), nil
}

// RemoveContainer has the guest's runtime kill and delete a pod's
// container, and removes its bundle.
func (guest) RemoveContainer(container string) error {
	if container == "" {
		return fmt.Errorf("%w: remove names no container", ErrMalformed)
	}
	theSharedMounts.forget(container)
	err := linux.NewDriver(runtimeRoot).Delete(context.Background(), container)
	os.RemoveAll(bundleOf(container))
	return err
}

// Resume gives a guest restored from a VM template its own randomness
// and the current time. Every clone starts from the template's memory,
// its kernel's random generator state included: the host's entropy is
// added to the input pool and credited (RNDADDENTROPY), and the
// generator reseeded from it at once (RNDRESEEDCRNG) rather than at its
// next timed reseed, so that what any process reads from then on differs
// between clones. The wall clock is the template's, stopped when it was
// saved; it is set to the host's.
func (guest) Resume(r *Resume) error {
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	buf := make([]byte, 8+len(r.Entropy))
	binary.NativeEndian.PutUint32(buf[0:], uint32(len(r.Entropy)*8))
	binary.NativeEndian.PutUint32(buf[4:], uint32(len(r.Entropy)))
	copy(buf[8:], r.Entropy)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return fmt.Errorf("resume: add the host's entropy: %w", e)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDRESEEDCRNG, 0); e != 0 {
		return fmt.Errorf("resume: reseed the generator: %w", e)
	}
	ts := unix.NsecToTimespec(r.UnixNano)
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("resume: set the clock: %w", err)
	}
	debugf("resumed: %d bytes of entropy, clock set", len(r.Entropy))
	return nil
}
