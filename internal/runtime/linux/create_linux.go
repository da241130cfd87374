package linux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/linux/cgroup"
	"github.com/berth-dev/berth/internal/runtime/linux/nsexec"
	"github.com/berth-dev/berth/internal/runtime/linux/seccomp"
	"github.com/berth-dev/berth/internal/runtime/oci"
)

// CreateOptions are the flags of `create` and `run`.
type CreateOptions struct {
	Bundle        string
	PidFile       string
	ConsoleSocket string
	NoPivot       bool
	NoNewKeyring  bool
	PreserveFDs   int
	SystemdCgroup bool
	Stdio         Stdio
	// Console, when set, is a connected socket (one end of ConsolePair)
	// the pty master is sent over, instead of dialling ConsoleSocket:
	// run uses it when attached to a terminal, and the engine always,
	// since a listening socket is one other users could connect to first.
	Console *os.File

	// loaded is the bundle when the caller (Run) has read it already.
	loaded *loadedBundle
}

// loadedBundle is a bundle's config.json, read once, and its rootfs.
type loadedBundle struct {
	spec   *specs.Spec
	rootfs string
}

// Create sets up a container and leaves its init waiting for Start. On
// failure it leaves nothing behind: no process, cgroup or state directory.
func Create(ctx context.Context, root, id string, opts CreateOptions) (*Container, error) {
	c, sp, err := create(ctx, root, id, opts)
	if sp != nil {
		sp.conn.f.Close()
		if sp.cmd != nil {
			// The init is our direct child; it outlives us.
			sp.cmd.Process.Release()
		}
	}
	return c, err
}

func create(ctx context.Context, root, id string, opts CreateOptions) (_ *Container, _ *spawned, retErr error) {
	tracePhase("create")
	defer DiscardUnusedPrefork()
	if err := CheckID(id); err != nil {
		return nil, nil, err
	}
	if opts.loaded == nil {
		spec, rootfs, err := oci.LoadBundle(opts.Bundle)
		if err != nil {
			return nil, nil, err
		}
		opts.loaded = &loadedBundle{spec, rootfs}
	}
	spec, rootfs := opts.loaded.spec, opts.loaded.rootfs
	if spec.Process == nil {
		return nil, nil, fmt.Errorf("bundle %s: config.json has no process: %w", opts.Bundle, oci.ErrInvalidConfig)
	}
	if spec.Linux == nil {
		return nil, nil, fmt.Errorf("bundle %s: config.json has no linux section: %w", opts.Bundle, oci.ErrInvalidConfig)
	}
	warnUngrantableAmbient(ctx, spec.Process)
	var seccompProg *seccomp.Program
	var err error
	if err := checkLinuxConfig(spec); err != nil {
		return nil, nil, fmt.Errorf("bundle %s: %w", opts.Bundle, err)
	}
	if spec.Linux.Seccomp != nil {
		if seccompProg, err = seccompProgram(root, spec.Linux.Seccomp); err != nil {
			return nil, nil, fmt.Errorf("bundle %s: %w", opts.Bundle, err)
		}
	}
	if spec.Process.Terminal && opts.ConsoleSocket == "" && opts.Console == nil {
		return nil, nil, fmt.Errorf("process.terminal is true but no --console-socket was given: berth cannot allocate a terminal for a container it detaches from")
	}
	if !spec.Process.Terminal && opts.ConsoleSocket != "" {
		return nil, nil, fmt.Errorf("--console-socket was given but process.terminal is false")
	}
	if opts.SystemdCgroup {
		return nil, nil, fmt.Errorf("--systemd-cgroup is not supported: berth manages cgroups through cgroupfs only")
	}
	bundle, _ := filepath.Abs(opts.Bundle)

	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create runtime root %s: %w", root, err)
	}
	dir := filepath.Join(root, id)
	l, err := makeLockedDir(root, id)
	if err != nil {
		return nil, nil, err
	}
	defer l.Unlock()
	tracePhase("locked")

	c := &Container{root: root, dir: dir, ID: id, State: &State{
		ID:          id,
		Bundle:      bundle,
		Rootfs:      rootfs,
		Created:     time.Now().UTC(),
		Owner:       currentUser(),
		Annotations: spec.Annotations,
		NoPivot:     opts.NoPivot,
		HostMountNS: !hasNamespace(spec, specs.MountNamespace, false),
		Spec:        spec,
	}}
	var sp *spawned
	var prep *cgroupPrep
	defer func() {
		if retErr == nil {
			return
		}
		// A forked init not yet taken sits in the cgroup leaves made
		// for it: gone first, Destroy finds them empty.
		DiscardUnusedPrefork()
		if sp != nil {
			if sp.cgroupJoined != nil {
				// The cgroup's goroutine may still move the init:
				// killed, not reaped, its pid is no one else's.
				unix.Kill(sp.pid, unix.SIGKILL)
				<-sp.cgroupJoined
			}
			sp.kill()
			sp.conn.f.Close()
			sp = nil
		}
		if prep != nil {
			if mgr, _ := prep.wait(); mgr != nil {
				mgr.Destroy()
			}
		}
		if c.HostMountNS {
			c.unmountRootfs()
		}
		os.RemoveAll(dir)
	}()

	newCgroup := func() (cgroup.Manager, error) {
		m, err := cgroup.New(cgroup.Config{
			ID:        id,
			Path:      spec.Linux.CgroupsPath,
			Resources: spec.Linux.Resources,
			Devices:   spec.Linux.Devices,
		})
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		if err := recordCreating(dir, creatingRecord{CgroupPaths: m.Paths(), Rootfs: rootfs, HostMountNS: c.HostMountNS}); err != nil {
			return nil, fmt.Errorf("record create in %s: %w", dir, err)
		}
		return m, nil
	}
	// The cgroup is made beside everything from here to the init's move;
	// or, where the init's intermediate makes it and forks the init into
	// it (nsexec/cgroupfork.c: a preforked init's, or an exec'd one's
	// asked to with cgroupMake), once that has spoken.
	cgroupMake := forkIntoCgroup(spec, id)
	prep = prepareCgroup(newCgroup, spec.Linux.Resources, nsexec.PreforkCgroupPlanned() || cgroupMake != "")

	fifo := filepath.Join(dir, fifoName)
	if err := unix.Mkfifo(fifo, 0o622); err != nil {
		return nil, nil, fmt.Errorf("create exec fifo: %w", err)
	}
	// Whoever the init is by then (a mapped root, another user) must be
	// able to open it for writing; mkfifo applied our umask.
	if err := os.Chmod(fifo, 0o622); err != nil {
		return nil, nil, fmt.Errorf("create exec fifo: %w", err)
	}
	// What the waiting init holds to reach the fifo: the fifo itself when
	// the container will have a /proc to reopen it through, else (rare) the
	// state directory. Either way it is close-on-exec and the init is not
	// dumpable while it waits.
	fifoHandle, fifoIsDir := (*os.File)(nil), !mountsProc(spec)
	if fifoIsDir {
		fifoHandle, err = os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		fifoHandle, err = os.OpenFile(fifo, unix.O_PATH|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, nil, err
	}
	defer fifoHandle.Close()

	console, err := openConsoleSocket(opts)
	if err != nil {
		return nil, nil, err
	}
	if console != nil {
		defer console.Close()
	}

	flags, join := namespacePlan(spec.Linux.Namespaces)
	// In a user namespace (see usermounts_linux.go) the init starts in
	// the rootfs and gets its bind mounts made; idmapped mounts are made
	// for any container.
	inUserNS := hasNamespace(spec, specs.UserNamespace, false)
	rootfsIsCwd := inUserNS && hasNamespace(spec, specs.MountNamespace, true)
	trees, err := prepareMountTrees(spec, rootfsIsCwd)
	if err != nil {
		return nil, nil, err
	}
	defer closeTrees(trees)
	chdir := ""
	if rootfsIsCwd {
		chdir = rootfs
	}
	if hasNamespace(spec, specs.UserNamespace, true) {
		chownStdioForUserns(opts.Stdio.orDefault(), spec)
	}
	cfg := &initConfig{
		Seccomp:      seccompProg,
		Kind:         "create",
		ID:           id,
		Bundle:       bundle,
		Rootfs:       rootfs,
		Spec:         spec,
		Process:      spec.Process,
		NoPivot:      opts.NoPivot,
		NoNewKeyring: opts.NoNewKeyring,
		NewMountNS:   hasNamespace(spec, specs.MountNamespace, true),
		HostMountNS:  c.HostMountNS,
		NewUTSNS:     hasNamespace(spec, specs.UTSNamespace, false),
		NewUserNS:    hasNamespace(spec, specs.UserNamespace, true),
		RuntimeHooks: spec.Hooks != nil && (len(spec.Hooks.Prestart) > 0 || len(spec.Hooks.CreateRuntime) > 0), //nolint:staticcheck // prestart is deprecated but still honoured
		RootfsIsCwd:  rootfsIsCwd,
	}
	sp, err = spawn(&spawnRequest{
		cfg:         cfg,
		cloneFlags:  flags,
		join:        join,
		chdir:       chdir,
		mountTrees:  trees,
		timeOffsets: spec.Linux.TimeOffsets,
		uidMaps:     spec.Linux.UIDMappings,
		gidMaps:     spec.Linux.GIDMappings,
		cgroupPrep:  prep,
		cgroupMake:  cgroupMake,
		lateCgroup:  true,
		preserve:    opts.PreserveFDs,
		fifo:        fifoHandle,
		fifoIsDir:   fifoIsDir,
		console:     console,
		stdio:       opts.Stdio,
		oomScoreAdj: spec.Process.OOMScoreAdj,
	})
	if err != nil {
		return nil, nil, err
	}
	tracePhase("spawned")
	tell := func(m message) error {
		if err := sp.conn.send(m); err != nil {
			// The init failed meanwhile: its message says why.
			if _, rerr := sp.conn.expect("none"); rerr != nil {
				err = rerr
			}
			return fmt.Errorf("create container %s: %w", id, err)
		}
		return nil
	}
	// The cgroup exists with its limits: the init may bind it into the
	// rootfs while it is moved in.
	mgr, err := prep.wait()
	if err != nil {
		return nil, sp, err
	}
	if err := tell(message{Type: "cgroup-paths", CgroupPaths: mgr.Paths()}); err != nil {
		return nil, sp, err
	}
	err = <-sp.cgroupJoined
	sp.cgroupJoined = nil
	if err != nil {
		return nil, sp, err
	}
	tracePhase("cgroup-joined")
	if err := tell(message{Type: "cgroup"}); err != nil {
		return nil, sp, err
	}
	c.Pid = sp.pid
	c.CgroupPaths = mgr.Paths()
	start, _, err := procStat(sp.pid)
	if err != nil {
		return nil, sp, fmt.Errorf("container init %d: %w", sp.pid, err)
	}
	c.PidStartTime = start
	c.Namespaces = map[specs.LinuxNamespaceType]string{}
	for _, ns := range spec.Linux.Namespaces {
		path := ns.Path
		if path == "" {
			path = fmt.Sprintf("/proc/%d/ns/%s", sp.pid, oci.ProcNamespaceFile[ns.Type])
		}
		c.Namespaces[ns.Type] = path
	}
	// The state is whole now; encoding it (the spec with it) takes a
	// while, which the init's last steps can cover. It is written once
	// the init is ready: readers take a state.json as a container.
	type encodedState struct {
		data []byte
		err  error
	}
	encoded := make(chan encodedState, 1)
	go func() {
		data, err := json.Marshal(c.State)
		encoded <- encodedState{data, err}
	}()

	for {
		m, err := sp.conn.expect("")
		if err != nil {
			return nil, sp, fmt.Errorf("create container %s: %w", id, err)
		}
		if m.Type == "ready" {
			break
		}
		if m.Type != "createRuntime" {
			return nil, sp, fmt.Errorf("container init sent unexpected %q", m.Type)
		}
		st := c.hookState(StatusCreated)                             // runtime.md: "created" once the environment exists (after step 2)
		err = oci.RunHooks(ctx, "prestart", spec.Hooks.Prestart, st) //nolint:staticcheck
		if err == nil {
			err = oci.RunHooks(ctx, "createRuntime", spec.Hooks.CreateRuntime, st)
		}
		if err != nil {
			sp.conn.send(message{Type: "error", Msg: err.Error()})
			return nil, sp, err
		}
		if err := sp.conn.send(message{Type: "ok"}); err != nil {
			return nil, sp, err
		}
	}
	state := <-encoded
	if state.err == nil {
		state.err = c.writeState(state.data)
	}
	if state.err != nil {
		return nil, sp, fmt.Errorf("save state of %s: %w", id, state.err)
	}
	c.mgr = mgr
	os.Remove(filepath.Join(dir, creatingFile))
	if opts.PidFile != "" {
		if err := writePidFile(opts.PidFile, sp.pid); err != nil {
			os.Remove(filepath.Join(dir, stateFile))
			return nil, sp, err
		}
	}
	return c, sp, nil
}

func (c *Container) hookState(status string) *specs.State {
	return &specs.State{
		Version:     specs.Version,
		ID:          c.ID,
		Status:      specs.ContainerState(status),
		Pid:         c.Pid,
		Bundle:      c.Bundle,
		Annotations: c.Annotations,
	}
}

func writePidFile(path string, pid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(abs, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("write pid file %s: %w", abs, err)
	}
	return nil
}

// mountsProc reports whether the container gets a procfs at /proc.
func mountsProc(spec *specs.Spec) bool {
	for _, m := range spec.Mounts {
		if m.Type == "proc" && filepath.Clean("/"+m.Destination) == "/proc" {
			return true
		}
	}
	return false
}

// EnvCgroupFork=0 turns off forkIntoCgroup: every exec'd init is moved
// into its cgroup (to measure against, or should a host refuse the fork).
const EnvCgroupFork = "BERTH_CGROUP_FORK"

// forkIntoCgroup is the container's cgroup below each hierarchy's root
// for an exec'd init's intermediate to make and fork the init into
// ("cgroup-make"), as a preforked init's does: that needs no migration, so
// no wait for the cgroup lock's grace period. "" where it cannot be sure
// to work, and the init is moved as before: a cgroup v2 host, a user
// namespace (its root cannot make the host's cgroups), a cgroupsPath
// nsexec does not take (relative, or with ".."), no new or joined pid
// namespace (no fork to place). cgroupfork.c checks the hierarchies and
// the leaves; the Go side (spawn) remains the judge.
func forkIntoCgroup(spec *specs.Spec, id string) string {
	if os.Getenv(EnvCgroupFork) == "0" || cgroup.DetectMode() == cgroup.ModeV2 ||
		hasNamespace(spec, specs.UserNamespace, false) || !hasNamespace(spec, specs.PIDNamespace, false) {
		return ""
	}
	inner, ok := nsexec.CgroupInner(spec.Linux.CgroupsPath, id)
	if !ok {
		return ""
	}
	return inner
}

func hasNamespace(spec *specs.Spec, t specs.LinuxNamespaceType, fresh bool) bool {
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == t {
			return !fresh || ns.Path == ""
		}
	}
	return false
}

func checkLinuxConfig(spec *specs.Spec) error {
	if !hasNamespace(spec, specs.UTSNamespace, false) && (spec.Hostname != "" || spec.Domainname != "") {
		return fmt.Errorf("hostname/domainname need a new uts namespace in linux.namespaces: %w", oci.ErrInvalidConfig)
	}
	if len(spec.Linux.TimeOffsets) > 0 && !hasNamespace(spec, specs.TimeNamespace, true) {
		return fmt.Errorf("linux.timeOffsets need a new time namespace in linux.namespaces: %w", oci.ErrInvalidConfig)
	}
	if hasNamespace(spec, specs.UserNamespace, true) && (len(spec.Linux.UIDMappings) == 0 || len(spec.Linux.GIDMappings) == 0) {
		return fmt.Errorf("a new user namespace needs linux.uidMappings and linux.gidMappings: %w", oci.ErrInvalidConfig)
	}
	if err := unsupportedFeatures(spec); err != nil {
		return err
	}
	return checkLSM(spec)
}

func currentUser() string {
	if os.Getuid() == 0 {
		return "root"
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

var errNotRunning = errors.New("container is not running")
