package linux

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/linux/nsexec"
	"github.com/berth-dev/berth/internal/runtime/oci"
)

// IsInit reports whether this process was started as a container init or
// exec process; main must then call Init and nothing else.
func IsInit() bool { return os.Getenv(envInit) != "" || nsexec.PreforkedInit() >= 0 }

func init() {
	if IsInit() {
		// Capabilities, seccomp and no_new_privs are per thread: the whole
		// setup and the final execve happen on the main thread.
		runtime.LockOSThread()
		if nsexec.PreforkedInit() >= 0 {
			// An exec'd init gets GOMAXPROCS=1 in its environment; a
			// forked one has the runtime's environment.
			runtime.GOMAXPROCS(1)
		}
	}
}

// errPreforkUnused: the runtime did not adopt this forked init, or went
// away before it did; the init ends quietly.
var errPreforkUnused = errors.New("not adopted")

// Init runs the Go side of a container init or exec process. It never
// returns: it execs the container's process or exits 1 after telling the
// parent why.
func Init() {
	tracePhase("main")
	fd := nsexec.PreforkedInit()
	var inline []int
	if fd >= 0 {
		// Forked by the runtime's constructor: stdio and descriptors come
		// over the socket once the runtime adopts us (prefork_linux.go).
		var err error
		if inline, err = receiveInlineFDs(fd); err != nil {
			if err != errPreforkUnused {
				// The runtime reads messages once it has sent the config.
				newSyncConn(os.NewFile(uintptr(fd), "sync")).send(message{Type: "error", Msg: "container init: " + err.Error()})
			}
			os.Exit(1)
		}
	} else {
		var err error
		if fd, err = strconv.Atoi(os.Getenv(envInit)); err != nil {
			fmt.Fprintf(os.Stderr, "berth init: bad %s: %v\n", envInit, err)
			os.Exit(1)
		}
		os.Unsetenv(envInit)
	}
	conn := newSyncConn(os.NewFile(uintptr(fd), "sync"))
	var cfg initConfig
	if err := conn.recv(&cfg); err != nil {
		fmt.Fprintf(os.Stderr, "berth init: read config: %v\n", err)
		os.Exit(1)
	}
	if cfg.InlineFDs {
		if err := cfg.mapInlineFDs(inline); err != nil {
			conn.send(message{Type: "error", Msg: err.Error()})
			os.Exit(1)
		}
	}
	err := runInit(conn, &cfg)
	// runInit only returns on failure.
	if conn.f != nil {
		conn.send(message{Type: "error", Msg: err.Error()})
	} else {
		fmt.Fprintf(os.Stderr, "berth: container %s: %v\n", cfg.ID, err)
	}
	os.Exit(1)
}

func runInit(conn *syncConn, cfg *initConfig) error {
	tracePhase("init")
	unix.Umask(0)
	p := cfg.Process
	if cfg.Kind == "exec" {
		return initExec(conn, cfg)
	}
	spec := cfg.Spec
	pathsKnown, joined := false, false
	// cgroupPaths waits until the container's cgroup exists, with its
	// limits: its directories can be bound into the rootfs while the
	// parent moves us into it; inCgroup waits for the move.
	cgroupPaths := func() error {
		if pathsKnown {
			return nil
		}
		pathsKnown = true
		m, err := conn.expect("cgroup-paths")
		if err != nil {
			return err
		}
		if m.CgroupPaths != nil {
			cfg.CgroupPaths = m.CgroupPaths
		}
		return nil
	}
	inCgroup := func() error {
		if joined {
			return nil
		}
		joined = true
		if err := cgroupPaths(); err != nil {
			return err
		}
		if _, err := conn.expect("cgroup"); err != nil {
			return err
		}
		if cfg.NewCgroupNS {
			// Only this thread's namespace changes; it is the one that
			// mounts cgroupfs and execs.
			if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
				return fmt.Errorf("create cgroup namespace: %w", err)
			}
		}
		return nil
	}
	var r *rootfs
	{
		var err error
		if r, err = setupRootfs(cfg, cgroupPaths, inCgroup); err != nil {
			return err
		}
		defer r.close()
	}
	tracePhase("rootfs")
	if err := r.maskPaths(spec.Linux.MaskedPaths); err != nil {
		return err
	}
	if err := r.readonlyPaths(spec.Linux.ReadonlyPaths); err != nil {
		return err
	}
	if hasNamespace(spec, specs.NetworkNamespace, true) {
		if err := bringUpLoopback(); err != nil {
			return err
		}
	}
	if err := writeSysctls(spec); err != nil {
		return err
	}
	// Everything above overlapped the parent moving us into our cgroup.
	if err := r.finish(); err != nil {
		return err
	}
	tracePhase("in-cgroup")
	var console *os.File
	if p.Terminal {
		var err error
		if console, err = setupConsole(cfg, r); err != nil {
			return err
		}
	}
	if cfg.RuntimeHooks {
		if err := conn.send(message{Type: "createRuntime"}); err != nil {
			return err
		}
		if _, err := conn.expect("ok"); err != nil {
			return err
		}
	}
	if spec.Hooks != nil && len(spec.Hooks.CreateContainer) > 0 {
		st := &specs.State{Version: specs.Version, ID: cfg.ID, Status: StatusCreated, Pid: cfg.HostPid, Bundle: cfg.Bundle, Annotations: spec.Annotations}
		if err := oci.RunHooks(context.Background(), "createContainer", spec.Hooks.CreateContainer, st); err != nil {
			return err
		}
	}
	{
		if err := r.enterRoot(cfg.NoPivot || cfg.HostMountNS); err != nil {
			return err
		}
		tracePhase("pivot")
		if spec.Root.Readonly {
			if err := remountRootReadonly(); err != nil {
				return err
			}
		}
		if spec.Linux.RootfsPropagation != "" {
			if err := unix.Mount("", "/", "", propagationOptions[spec.Linux.RootfsPropagation], ""); err != nil {
				return fmt.Errorf("set rootfsPropagation %s on /: %w", spec.Linux.RootfsPropagation, err)
			}
		}
	}
	if cfg.NewUTSNS {
		if spec.Hostname != "" {
			if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
				return fmt.Errorf("set hostname %q: %w", spec.Hostname, err)
			}
		}
		if spec.Domainname != "" {
			if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
				return fmt.Errorf("set domainname %q: %w", spec.Domainname, err)
			}
		}
	}
	if !cfg.NoNewKeyring {
		if err := joinSessionKeyring(cfg.ID); err != nil {
			return err
		}
	}
	proc, err := prepareAndSetup(cfg, console)
	if err != nil {
		return err
	}

	// Ready: the parent records the state and returns; we wait for start.
	if err := conn.send(message{Type: "ready"}); err != nil {
		return err
	}
	conn.f.Close()
	conn.f = nil
	if err := waitForStart(cfg.FifoFD, cfg.FifoIsDir); err != nil {
		return err
	}
	tracePhase("started")
	if err := proc.loadLateSeccomp(); err != nil {
		return err
	}
	if spec.Hooks != nil && len(spec.Hooks.StartContainer) > 0 {
		st := &specs.State{Version: specs.Version, ID: cfg.ID, Status: StatusRunning, Pid: cfg.HostPid, Bundle: cfg.Bundle, Annotations: spec.Annotations}
		if err := oci.RunHooks(context.Background(), "startContainer", spec.Hooks.StartContainer, st); err != nil {
			return err
		}
	}
	return proc.exec()
}

func initExec(conn *syncConn, cfg *initConfig) error {
	var console *os.File
	if cfg.Process.Terminal {
		var err error
		if console, err = setupConsole(cfg, nil); err != nil {
			return err
		}
	}
	proc, err := prepareAndSetup(cfg, console)
	if err != nil {
		return err
	}
	if err := proc.loadLateSeccomp(); err != nil {
		return err
	}
	// The parent reads EOF when execve closes the socket (CLOEXEC); an
	// error arrives as a message first.
	return proc.exec()
}

// prepareAndSetup checks the process, makes the console its stdio and
// applies its identity: everything that must succeed before the parent is
// told the process is ready.
func prepareAndSetup(cfg *initConfig, console *os.File) (*preparedProcess, error) {
	proc, err := prepareProcess(cfg)
	if err != nil {
		return nil, err
	}
	if console != nil {
		if err := useConsole(console); err != nil {
			return nil, err
		}
	}
	if err := proc.setup(); err != nil {
		return nil, err
	}
	return proc, nil
}

func remountRootReadonly() error {
	var sfs unix.Statfs_t
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	if err := unix.Statfs("/", &sfs); err == nil {
		for _, f := range []struct{ st, ms uintptr }{
			{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		} {
			if uintptr(sfs.Flags)&f.st != 0 {
				flags |= f.ms
			}
		}
	}
	if err := unix.Mount("", "/", "", flags, ""); err != nil {
		return fmt.Errorf("remount root read-only (root.readonly): %w", err)
	}
	return nil
}

// namespacedSysctl says which namespace a sysctl belongs to; writing one
// that is not namespaced would change the host.
func namespacedSysctl(key string) (specs.LinuxNamespaceType, bool) {
	switch {
	case key == "kernel.sem" || key == "kernel.shmall" || key == "kernel.shmmax" || key == "kernel.shmmni" ||
		key == "kernel.shm_rmid_forced" || key == "kernel.msgmax" || key == "kernel.msgmnb" || key == "kernel.msgmni" ||
		strings.HasPrefix(key, "fs.mqueue."):
		return specs.IPCNamespace, true
	case strings.HasPrefix(key, "net."):
		return specs.NetworkNamespace, true
	case key == "kernel.hostname" || key == "kernel.domainname":
		return specs.UTSNamespace, true
	}
	return "", false
}

// writeSysctls writes linux.sysctl through the host's /proc, which the
// container cannot have over-mounted: the values land in the namespaces
// this process is in.
func writeSysctls(spec *specs.Spec) error {
	for key, value := range spec.Linux.Sysctl {
		ns, ok := namespacedSysctl(key)
		if !ok {
			return fmt.Errorf("linux.sysctl %s is not namespaced: setting it would change the host", key)
		}
		if !hasNamespace(spec, ns, false) {
			return fmt.Errorf("linux.sysctl %s needs a %s namespace in linux.namespaces", key, ns)
		}
		path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
		f, err := os.OpenFile(path, os.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("linux.sysctl %s: %w", key, err)
		}
		_, err = f.WriteString(value)
		f.Close()
		if err != nil {
			return fmt.Errorf("linux.sysctl %s=%s: %w", key, value, err)
		}
	}
	return nil
}

func joinSessionKeyring(id string) error {
	_, err := unix.KeyctlJoinSessionKeyring("_ses." + id)
	if err != nil && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("join session keyring: %w", err)
	}
	return nil
}

// waitForStart blocks until `start` opens the exec fifo. The init holds an
// O_PATH handle of the fifo and reopens it for writing through the
// container's /proc, checking that procfs really is there and that the
// reopened file is the same fifo (so a fake /proc in the image cannot
// redirect the write). Without a /proc it holds the state directory.
func waitForStart(handle int, isDir bool) error {
	var fd int
	var err error
	if isDir {
		fd, err = unix.Openat(handle, fifoName, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	} else {
		fd, err = reopenFifo(handle)
	}
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	if _, err := unix.Write(fd, []byte{0}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("write exec fifo: %w", err)
	}
	unix.Close(fd)
	unix.Close(handle)
	return nil
}

func reopenFifo(handle int) (int, error) {
	var sfs unix.Statfs_t
	if err := unix.Statfs("/proc/self/fd", &sfs); err != nil || sfs.Type != unix.PROC_SUPER_MAGIC {
		return -1, fmt.Errorf("the container's /proc is not procfs")
	}
	var want unix.Stat_t
	if err := unix.Fstat(handle, &want); err != nil {
		return -1, err
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(handle), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var got unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil || got.Dev != want.Dev || got.Ino != want.Ino {
		unix.Close(fd)
		return -1, fmt.Errorf("/proc/self/fd/%d is not the exec fifo", handle)
	}
	return fd, nil
}

// lookPath resolves args[0] with the PATH of the process's environment.
func lookPath(file string, env []string) (string, error) {
	check := func(p string) error {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return unix.EISDIR
		}
		if st.Mode&0o111 == 0 {
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
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			path = e[5:]
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if check(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec %q: executable file not found in $PATH", file)
}

// preparedProcess is everything checked before the container is reported
// created, applied in exec.
type preparedProcess struct {
	cfg  *initConfig
	path string
	caps *capSets
	sc   seccompFilter
}

func prepareProcess(cfg *initConfig) (*preparedProcess, error) {
	p := cfg.Process
	if len(p.Args) == 0 {
		return nil, fmt.Errorf("process.args is empty")
	}
	path, err := lookPath(p.Args[0], p.Env)
	if err != nil {
		return nil, err
	}
	caps, err := newCapSets(p.Capabilities)
	if err != nil {
		return nil, err
	}
	pp := &preparedProcess{cfg: cfg, path: path, caps: caps}
	if cfg.Spec != nil && cfg.Spec.Linux != nil && cfg.Spec.Linux.Seccomp != nil {
		if pp.sc, err = compileSeccomp(cfg.Spec.Linux.Seccomp, cfg.Seccomp); err != nil {
			return nil, err
		}
	}
	return pp, nil
}

// setup applies the process's identity and restrictions; exec then
// replaces this process with it. setup runs before the init reports ready,
// so its errors fail create, as with runc. Order matters: our own fds and limits first (as root,
// before any filter), the bounding set (needs CAP_SETPCAP), then user
// (keeping capabilities across setuid), cwd, the other capability sets,
// no_new_privs, and seccomp as late as possible. Without no_new_privs
// loading a filter needs CAP_SYS_ADMIN, so then it is loaded before the
// user and capabilities change, and the profile must allow what follows
// (setresuid, capset, chdir, execve), as with runc.
func (pp *preparedProcess) setup() error {
	p := pp.cfg.Process
	// Nothing of ours may cross execve: every fd above the preserved ones
	// becomes close-on-exec.
	if err := unix.CloseRange(uint(3+pp.cfg.PreserveFDs), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	if err := setRlimits(p.Rlimits); err != nil {
		return err
	}
	if err := setIOPriority(p.IOPriority); err != nil {
		return err
	}
	if pp.cfg.Spec != nil && pp.cfg.Spec.Linux != nil {
		if err := setPersonality(pp.cfg.Spec.Linux.Personality); err != nil {
			return err
		}
	}
	umask := 0o022
	if p.User.Umask != nil {
		umask = int(*p.User.Umask)
	}
	unix.Umask(umask)
	if err := pp.caps.dropBounding(); err != nil {
		return err
	}
	// Check, as root and before any filter (which may refuse getcwd), that
	// the cwd resolves inside the root; it is entered again as the user.
	if err := unix.Chdir(p.Cwd); err != nil {
		return fmt.Errorf("chdir to process.cwd %s: %w", p.Cwd, err)
	}
	if wd, err := os.Getwd(); err != nil || !strings.HasPrefix(wd, "/") {
		return fmt.Errorf("process.cwd %s is outside the container's root", p.Cwd)
	}
	if pp.sc != nil && !p.NoNewPrivileges {
		if err := pp.sc.load(); err != nil {
			return err
		}
	}
	fixStdioOwnership(p.User)
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_KEEPCAPS): %w", err)
	}
	if err := setUser(p.User); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_KEEPCAPS): %w", err)
	}
	if err := unix.Chdir(p.Cwd); err != nil {
		return fmt.Errorf("chdir to process.cwd %s as uid %d: %w", p.Cwd, p.User.UID, err)
	}
	if err := pp.caps.apply(); err != nil {
		return err
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
		}
	}
	return nil
}

// loadLateSeccomp loads the filter of a no_new_privs process: as late as
// possible, so the profile need not allow the runtime's own setup.
func (pp *preparedProcess) loadLateSeccomp() error {
	if pp.sc != nil && pp.cfg.Process.NoNewPrivileges {
		return pp.sc.load()
	}
	return nil
}

func (pp *preparedProcess) exec() error {
	p := pp.cfg.Process
	for _, r := range p.Rlimits {
		if r.Type == "RLIMIT_NPROC" {
			lim := syscall.Rlimit{Cur: r.Soft, Max: r.Hard}
			if err := syscall.Setrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
				return rlimitError(r, err, 0)
			}
		}
	}
	err := unix.Exec(pp.path, p.Args, p.Env)
	return fmt.Errorf("exec %s: %w", pp.path, err)
}

// fixStdioOwnership hands stdio pipes and files to the process's user, as
// runc does: a non-root process can use fds 0-2 it inherited, but opening
// /dev/stdout (/proc/self/fd/1) again needs permission on the pipe itself.
// /dev/null and terminals are left alone; failures only mean the reopen
// will fail later, as it would have anyway.
func fixStdioOwnership(u specs.User) {
	if u.UID == 0 && u.GID == 0 {
		return
	}
	self := uint32(os.Getuid())
	for fd := 0; fd < 3; fd++ {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Uid != self {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFCHR {
			continue
		}
		unix.Fchown(fd, int(u.UID), int(u.GID))
	}
}

// setRlimits applies process.rlimits to this process, which the container
// process inherits at execve. syscall.Setrlimit, not x/sys: it also stops
// Go from restoring its own startup RLIMIT_NOFILE at exec. RLIMIT_NPROC
// waits for exec: it counts every process of the user, and the Go runtime
// may still start threads until then.
func setRlimits(rlimits []specs.POSIXRlimit) error {
	for _, r := range rlimits {
		res, _ := oci.RlimitByName(r.Type)
		if res == unix.RLIMIT_NPROC {
			var cur syscall.Rlimit
			if err := syscall.Getrlimit(res, &cur); err == nil && r.Hard > cur.Max && !canRaiseHardLimits() {
				return rlimitError(r, unix.EPERM, cur.Max)
			}
			continue
		}
		var cur syscall.Rlimit
		syscall.Getrlimit(res, &cur)
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
			return rlimitError(r, err, cur.Max)
		}
	}
	return nil
}

func rlimitError(r specs.POSIXRlimit, err error, hostMax uint64) error {
	hint := ""
	if errors.Is(err, unix.EPERM) && r.Hard > hostMax {
		hint = fmt.Sprintf(": the host's hard limit is %d and raising it needs CAP_SYS_RESOURCE; ask for at most %d", hostMax, hostMax)
	}
	return fmt.Errorf("set process.rlimits %s to soft=%d hard=%d: %w%s", r.Type, r.Soft, r.Hard, err, hint)
}

// canRaiseHardLimits reports whether CAP_SYS_RESOURCE is effective.
func canRaiseHardLimits() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SYS_RESOURCE) != 0
}

func setUser(u specs.User) error {
	groups := make([]uint32, 0, len(u.AdditionalGids))
	groups = append(groups, u.AdditionalGids...)
	if err := setgroupsThread(groups); err != nil {
		// setgroups is denied in user namespaces with setgroups=deny.
		if !(errors.Is(err, unix.EPERM) && len(groups) == 0) {
			return fmt.Errorf("setgroups %v (process.user.additionalGids): %w", groups, err)
		}
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("setgid %d (process.user.gid): %w", u.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("setuid %d (process.user.uid): %w", u.UID, e)
	}
	return nil
}

// setgroupsThread, and setUser's raw setresgid and setresuid, change the
// credentials of this thread only, as capset and seccomp do: the init
// execs from it (locked since init), and execve gives the program this
// thread's credentials and ends the Go runtime's other threads, which run
// nothing of the container's meanwhile and keep root's credentials and
// capabilities just as they keep the capabilities capset left them. Go's
// syscall.Setgroups, Setresgid and Setresuid apply to every thread of the
// process instead: each call stops the world and signals every thread,
// 0.5-2 ms apiece on this 2-core machine when it is busy.
func setgroupsThread(gids []uint32) error {
	var p unsafe.Pointer
	if len(gids) > 0 {
		p = unsafe.Pointer(&gids[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), uintptr(p), 0); e != 0 {
		return e
	}
	return nil
}
