package linux

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/linux/cgroup"
	"github.com/berth-dev/berth/internal/runtime/linux/nsexec"
	"github.com/berth-dev/berth/internal/runtime/oci"
)

// Stdio is the standard streams a container process gets.
type Stdio struct {
	Stdin, Stdout, Stderr *os.File
}

func (s Stdio) orDefault() Stdio {
	if s.Stdin == nil {
		s.Stdin = os.Stdin
	}
	if s.Stdout == nil {
		s.Stdout = os.Stdout
	}
	if s.Stderr == nil {
		s.Stderr = os.Stderr
	}
	return s
}

// spawnRequest describes a process to start inside namespaces.
type spawnRequest struct {
	cfg        *initConfig
	cloneFlags uintptr
	join       []nsJoin
	root       string // exec: chroot here after joining (the init's root)
	// chdir (create in a new user namespace) is the working directory the
	// init gets before it creates its namespaces: the rootfs, which the
	// root of its user namespace may not be allowed to look up.
	chdir string
	// mountTrees (create) are detached mounts the parent made for
	// spec.Mounts, by index: the init attaches them instead of mounting
	// by path (see prepareMountTrees).
	mountTrees  map[int]*os.File
	timeOffsets map[string]specs.LinuxTimeOffset
	uidMaps     []specs.LinuxIDMapping
	gidMaps     []specs.LinuxIDMapping
	cgroup      cgroup.Manager
	// lateCgroup (create) moves the init into its cgroup while it sets up
	// the rootfs, instead of before it creates namespaces: moving a
	// process between cgroups waits for an RCU grace period, several
	// milliseconds that the init's mounts can use. The init waits for the
	// "cgroup" message before anything that depends on the membership:
	// creating its cgroup namespace (unshared then, not in the
	// constructor), mounting cgroupfs, running hooks, exec.
	lateCgroup bool
	// cgroupPrep (with lateCgroup) is the container's cgroup, being made
	// with its limits beside the rest of create; the init is moved in
	// once both exist.
	cgroupPrep *cgroupPrep
	// cgroupInChild (an exec, set by spawn): the child was sent the
	// cgroup's directories to join itself ("cgroup-join").
	cgroupInChild bool
	// cgroupMake (create, exec'd init): the container's cgroup below each
	// hierarchy's root, for the intermediate to make and fork the init
	// into ("cgroup-make"; see forkIntoCgroup). cgroupPrep is gated then.
	cgroupMake  string
	preserve    int      // fds 3..3+preserve-1 of this process go to the child at the same numbers
	fifo        *os.File // O_PATH handle of the exec fifo, or of the state dir when fifoIsDir
	fifoIsDir   bool
	console     *os.File
	stdio       Stdio
	oomScoreAdj *int
}

type nsJoin struct {
	flag uintptr
	path string
}

// spawned is a started init or exec process that has its namespaces.
type spawned struct {
	pid          int
	cgroupJoined chan error // lateCgroup: the result of moving pid into its cgroup
	// cgroupMade are the cgroup leaves a forked init's intermediate made
	// (nsexec/cgroupfork.c); cgroupIn says the init was forked into all
	// of them, so it needs no move if they are the container's.
	cgroupMade []string
	cgroupIn   bool
	conn       *syncConn
	cmd        *exec.Cmd // the process we started (maybe only the intermediate)
}

// spawn starts `berth` again with the nsexec constructor armed, moves it
// into the cgroup (before it creates namespaces, or with lateCgroup while it
// works), answers the constructor, and sends the Go init its config. On
// error nothing is left running.
func spawn(req *spawnRequest) (*spawned, error) {
	if req.lateCgroup && req.cloneFlags&unix.CLONE_NEWCGROUP != 0 {
		req.cloneFlags &^= unix.CLONE_NEWCGROUP
		req.cfg.NewCgroupNS = true
	}
	if sp, ok, err := adoptPrefork(req); ok {
		return sp, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create sync socket: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "sync-parent")
	child := os.NewFile(uintptr(fds[1]), "sync-child")
	defer child.Close()

	exe, memfd, err := initExecutable()
	if err != nil {
		unix.Close(fds[0])
		return nil, err
	}
	if memfd != nil {
		defer memfd.Close()
	}
	stdio := req.stdio.orDefault()
	cmd := &exec.Cmd{
		Path:   exe,
		Args:   []string{"berth", "init"},
		Stdin:  stdio.Stdin,
		Stdout: stdio.Stdout,
		Stderr: stdio.Stderr,
	}
	for i := 0; i < req.preserve; i++ {
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(3+i), "preserved-"+strconv.Itoa(3+i)))
	}
	next := func(f *os.File) int {
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
		return 2 + len(cmd.ExtraFiles)
	}
	syncFD := next(child)
	if memfd != nil {
		cmd.Path = "/proc/self/fd/" + strconv.Itoa(next(memfd))
	}
	req.passFiles(next)
	cmd.Env = []string{
		nsexec.EnvSyncFD + "=" + strconv.Itoa(syncFD),
		envInit + "=" + strconv.Itoa(syncFD),
		// The init does one thing at a time on one locked thread: one P
		// means fewer threads to start (and for setuid to signal).
		"GOMAXPROCS=1",
	}
	if traceOn {
		// An absolute path keeps the init's lines in the one timeline
		// file rather than the container's stderr.
		cmd.Env = append(cmd.Env, "BERTH_TRACE="+os.Getenv("BERTH_TRACE"))
	}
	tracePhase("exec-init")
	if err := cmd.Start(); err != nil {
		parent.Close()
		return nil, fmt.Errorf("start container init: %w", err)
	}
	// The child has its end: without ours, a child that dies (killed
	// with its cgroup, say) reads as EOF here instead of a wait forever.
	child.Close()
	sp := &spawned{pid: cmd.Process.Pid, conn: newSyncConn(parent), cmd: cmd}
	tracePhase("started")
	fail := func(err error) (*spawned, error) {
		sp.kill()
		parent.Close()
		return nil, err
	}
	// An exec joins the container's cgroup in the child's constructor
	// where it can (nsexec/cgroupfork.c: no migration, so no wait for the
	// lock's grace period), else here, before it joins anything.
	req.cgroupInChild = req.cgroup != nil && !req.lateCgroup && joinableCgroup(req.cgroup.Paths())
	if req.cgroup != nil && !req.lateCgroup && !req.cgroupInChild {
		err := req.cgroup.Apply(sp.pid)
		nsexec.StopCgroupWarm()
		if err != nil {
			return fail(fmt.Errorf("join cgroup: %w", err))
		}
		tracePhase("cgroup-applied")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "clone %d\n", req.cloneFlags)
	if req.cgroupInChild {
		for _, dir := range distinctDirs(req.cgroup.Paths()) {
			fmt.Fprintf(&b, "cgroup-join %s\n", dir)
		}
	}
	if req.cgroupMake != "" {
		fmt.Fprintf(&b, "cgroup-make %s\n", req.cgroupMake)
	}
	for _, j := range req.join {
		fmt.Fprintf(&b, "join %d %s\n", j.flag, j.path)
	}
	if req.root != "" {
		fmt.Fprintf(&b, "root %s\n", req.root)
	}
	if req.chdir != "" {
		fmt.Fprintf(&b, "chdir %s\n", req.chdir)
	}
	for clock, off := range req.timeOffsets {
		fmt.Fprintf(&b, "timens %s %d %d\n", clock, off.Secs, off.Nanosecs)
	}
	b.WriteString("end\n")
	if _, err := parent.WriteString(b.String()); err != nil {
		return fail(fmt.Errorf("send namespace config to container init: %w", err))
	}
	return finishSpawn(req, sp, nil)
}

// finishSpawn takes a started init from its namespaces to its config: it
// reads the child's pid (writing its id maps if asked), starts moving it
// into its cgroup (lateCgroup: once cgroupPrep has made it, while the init
// works), sets its limits and sends its config, with inline (a forked
// init's stdio and descriptors) first.
func finishSpawn(req *spawnRequest, sp *spawned, inline []*os.File) (*spawned, error) {
	parent := sp.conn.f
	fail := func(err error) (*spawned, error) {
		req.cgroupPrep.open()
		if sp.cgroupJoined != nil {
			// Killed but not reaped, its pid cannot be anyone else's
			// while the cgroup's goroutine may still move it; the
			// caller cleans up what that goroutine made.
			unix.Kill(sp.pid, unix.SIGKILL)
			<-sp.cgroupJoined
		}
		sp.kill()
		parent.Close()
		return nil, err
	}
	for {
		line, err := sp.conn.readLine()
		if err != nil {
			return fail(fmt.Errorf("%w%s", errChildGone, sp.exitDetail()))
		}
		switch {
		case line == "userns":
			if err := writeIDMaps(sp.pid, req.uidMaps, req.gidMaps); err != nil {
				return fail(err)
			}
			if _, err := parent.WriteString("mapped\n"); err != nil {
				return fail(err)
			}
			continue
		case strings.HasPrefix(line, "pid "):
			pid, err := strconv.Atoi(line[4:])
			if err != nil {
				return fail(fmt.Errorf("container init sent a bad pid line %q", line))
			}
			if pid != sp.pid {
				// The intermediate process forked the real init and exits.
				if sp.cmd != nil {
					sp.cmd.Wait()
					sp.cmd = nil
				} else {
					var ws unix.WaitStatus
					unix.Wait4(sp.pid, &ws, 0, nil)
				}
				sp.pid = pid
			}
		case strings.HasPrefix(line, "cgroup-made "):
			sp.cgroupMade = append(sp.cgroupMade, line[len("cgroup-made "):])
			continue
		case line == "cgroup-in":
			sp.cgroupIn = true
			continue
		case strings.HasPrefix(line, "error "):
			return fail(fmt.Errorf("%s", line[6:]))
		default:
			return fail(fmt.Errorf("container init sent an unexpected line %q", line))
		}
		break
	}
	if sp.cgroupIn && req.cgroupPrep != nil {
		req.cgroupPrep.forkedInto = sp.cgroupMade
	}
	req.cgroupPrep.open()
	if req.cgroupInChild {
		// (A warm-up is started by a "run" or "create" anywhere in an
		// exec's arguments.)
		nsexec.StopCgroupWarm()
		if sp.cgroupIn {
			tracePhase("cgroup-forked-in")
		} else {
			// Not all of it in the child: a move, before the process
			// has its config (its Go runtime may have threads by now;
			// the move takes them all).
			if err := req.cgroup.Apply(sp.pid); err != nil {
				return fail(fmt.Errorf("join cgroup: %w", err))
			}
			tracePhase("cgroup-applied")
		}
	}
	if req.lateCgroup {
		done := make(chan error, 1)
		sp.cgroupJoined = done
		go func(pid int) {
			// The cgroup exists with its limits (cgroupPrep) before the
			// init moves in: only the move waits for the kernel's grace
			// period, and the limits are in force from the moment it is
			// inside. All of it runs beside the init's work, which needs
			// the cgroup's paths only with the "cgroup-paths" message.
			mgr, err := req.cgroupPrep.wait()
			if err != nil {
				done <- err
				return
			}
			if sp.cgroupIn && sameDirs(sp.cgroupMade, mgr.Paths()) {
				// Forked into it: the leaves made ahead are the
				// container's, and its limits are written now.
				tracePhase("cgroup-forked-in")
				done <- nil
				return
			}
			if err = mgr.Apply(pid); err != nil {
				err = fmt.Errorf("join cgroup: %w", err)
			}
			nsexec.StopCgroupWarm()
			if err == nil {
				removeMadeCgroups(sp.cgroupMade, mgr.Paths())
			}
			done <- err
		}(sp.pid)
	}
	if err := applyProcessLimits(sp.pid, req.oomScoreAdj); err != nil {
		return fail(err)
	}
	req.cfg.HostPid = sp.pid
	if inline != nil {
		if err := sendInlineFDs(parent, inline); err != nil {
			return fail(fmt.Errorf("send descriptors to container init: %w", err))
		}
	}
	if err := sp.conn.send(req.cfg); err != nil {
		return fail(fmt.Errorf("send config to container init: %w", err))
	}
	return sp, nil
}

// passFiles hands the init the files req passes (the fifo's handle, the
// console socket, the mount trees), each numbered by next, and records the
// numbers in its config.
func (req *spawnRequest) passFiles(next func(*os.File) int) {
	if req.fifo != nil {
		req.cfg.FifoFD = next(req.fifo)
		req.cfg.FifoIsDir = req.fifoIsDir
	}
	if req.console != nil {
		req.cfg.ConsoleFD = next(req.console)
	}
	if len(req.mountTrees) > 0 {
		req.cfg.MountTrees = map[int]int{}
		for i, f := range req.mountTrees {
			req.cfg.MountTrees[i] = next(f)
		}
	}
	req.cfg.PreserveFDs = req.preserve
}

// kill ends the spawned process (and the intermediate, if any).
func (sp *spawned) kill() {
	unix.Kill(sp.pid, unix.SIGKILL)
	if sp.cmd != nil && sp.cmd.Process != nil {
		sp.cmd.Process.Kill()
		sp.cmd.Wait()
	} else {
		var ws unix.WaitStatus
		unix.Wait4(sp.pid, &ws, 0, nil)
	}
	removeMadeCgroups(sp.cgroupMade, nil)
}

// removeMadeCgroups removes the leaves a forked init's intermediate made
// that are not among keep (a container's cgroup paths), and only those it
// can have made (below /sys/fs/cgroup, on a cgroup filesystem): nothing
// else is removed on its word. rmdir removes only an empty cgroup: one
// that still holds a process stays.
func removeMadeCgroups(made []string, keep map[string]string) {
	kept := distinctDirs(keep)
	for _, dir := range made {
		var fs unix.Statfs_t
		if !slices.Contains(kept, dir) && belowCgroupMounts(dir) && unix.Statfs(dir, &fs) == nil &&
			(fs.Type == unix.CGROUP_SUPER_MAGIC || fs.Type == unix.CGROUP2_SUPER_MAGIC) {
			unix.Rmdir(dir)
		}
	}
}

// belowCgroupMounts says whether dir is a clean path below /sys/fs/cgroup/
// with no newline (a line of the nsexec protocol carries it).
func belowCgroupMounts(dir string) bool {
	return filepath.Clean(dir) == dir && strings.HasPrefix(dir, "/sys/fs/cgroup/") && !strings.ContainsAny(dir, "\n\x00")
}

// joinableCgroup says whether an exec's child can join these cgroup
// directories itself (nsexec/cgroupfork.c): a v1 or hybrid host, every
// directory clean, below /sys/fs/cgroup and without a newline (each is a
// line of the protocol).
func joinableCgroup(paths map[string]string) bool {
	if len(paths) == 0 || cgroup.DetectMode() == cgroup.ModeV2 {
		return false
	}
	dirs := distinctDirs(paths)
	for _, dir := range dirs {
		if !belowCgroupMounts(dir) {
			return false
		}
	}
	return len(dirs) <= 32 // cgroupfork.c's MAX_HIER
}

// distinctDirs lists the directories of paths once each, sorted.
func distinctDirs(paths map[string]string) []string {
	return slices.Compact(slices.Sorted(maps.Values(paths)))
}

// sameDirs says whether made holds exactly the distinct directories of
// paths, each once.
func sameDirs(made []string, paths map[string]string) bool {
	return len(made) > 0 && slices.Equal(slices.Sorted(slices.Values(made)), distinctDirs(paths))
}

// exitDetail waits for a process that closed the socket and describes how
// it ended.
func (sp *spawned) exitDetail() string {
	if sp.cmd == nil {
		return ""
	}
	err := sp.cmd.Wait()
	sp.cmd = nil
	if err != nil {
		return ": " + err.Error()
	}
	return ""
}

func writeIDMaps(pid int, uids, gids []specs.LinuxIDMapping) error {
	format := func(m []specs.LinuxIDMapping) []byte {
		var b strings.Builder
		for _, e := range m {
			fmt.Fprintf(&b, "%d %d %d\n", e.ContainerID, e.HostID, e.Size)
		}
		return []byte(b.String())
	}
	base := "/proc/" + strconv.Itoa(pid)
	if len(uids) > 0 {
		if err := os.WriteFile(base+"/uid_map", format(uids), 0); err != nil {
			return fmt.Errorf("write linux.uidMappings to %s/uid_map: %w", base, err)
		}
	}
	if len(gids) > 0 {
		if err := os.WriteFile(base+"/gid_map", format(gids), 0); err != nil {
			return fmt.Errorf("write linux.gidMappings to %s/gid_map: %w", base, err)
		}
	}
	return nil
}

// applyProcessLimits sets oom_score_adj from outside, before the process
// runs any code of the user's, so errors reach the caller of create.
// (rlimits are set by the init itself: see setRlimits.)
func applyProcessLimits(pid int, oom *int) error {
	if oom != nil {
		path := "/proc/" + strconv.Itoa(pid) + "/oom_score_adj"
		if err := os.WriteFile(path, []byte(strconv.Itoa(*oom)), 0); err != nil {
			hint := ""
			if *oom < 0 {
				hint = ": lowering oom_score_adj needs CAP_SYS_RESOURCE, which this host does not grant"
			}
			return fmt.Errorf("set process.oomScoreAdj %d (%s): %w%s", *oom, path, err, hint)
		}
	}
	return nil
}

// namespacePlan turns linux.namespaces into clone flags and paths to join.
func namespacePlan(nss []specs.LinuxNamespace) (uintptr, []nsJoin) {
	var flags uintptr
	var join []nsJoin
	for _, ns := range nss {
		f := oci.NamespaceFlags[ns.Type]
		if ns.Path == "" {
			flags |= f
		} else {
			join = append(join, nsJoin{flag: f, path: ns.Path})
		}
	}
	return flags, join
}

// cgroupPrep makes a container's cgroup and writes its limits in the
// background, from the moment create holds the container's directory:
// making the directories (a dozen on a v1 host) and writing the limits
// take about as long as the init's own set-up.
type cgroupPrep struct {
	done chan struct{}
	mgr  cgroup.Manager // set even when Apply or Set failed, for cleanup
	err  error
	// gate, when set, holds the directories (not the manager) back
	// until a forked init's intermediate has made its own
	// (nsexec/cgroupfork.c takes only a leaf it made: one made here
	// first would send the init the slow way); open lets them be made.
	gate     chan struct{}
	openGate sync.Once
	// forkedInto (set before open) are the leaves the init was forked
	// into: when they are the container's, they need not be made again.
	forkedInto []string
}

// prepareCgroup starts making the cgroup; with gated, only once open is
// called.
func prepareCgroup(newCgroup func() (cgroup.Manager, error), res *specs.LinuxResources, gated bool) *cgroupPrep {
	p := &cgroupPrep{done: make(chan struct{})}
	if gated {
		p.gate = make(chan struct{})
	}
	go func() {
		defer close(p.done)
		// The manager (its paths read from the mounts, ~1.5 ms here) and
		// the record of them touch no cgroup: made beside the init's
		// start even when the directories must wait for the gate.
		if p.mgr, p.err = newCgroup(); p.err != nil {
			return
		}
		if p.gate != nil {
			<-p.gate
		}
		if p.forkedInto == nil || !sameDirs(p.forkedInto, p.mgr.Paths()) {
			if p.err = p.mgr.Apply(-1); p.err != nil {
				return
			}
		}
		tracePhase("cgroup-made")
		p.err = p.mgr.Set(res)
		tracePhase("cgroup-set")
	}()
	return p
}

// open lets a gated cgroup be made; nil-safe, and any number of times.
func (p *cgroupPrep) open() {
	if p != nil && p.gate != nil {
		p.openGate.Do(func() { close(p.gate) })
	}
}

// wait returns the cgroup once it is made.
func (p *cgroupPrep) wait() (cgroup.Manager, error) {
	p.open()
	<-p.done
	return p.mgr, p.err
}
