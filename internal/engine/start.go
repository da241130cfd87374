//go:build linux

package engine

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/cgroupwarm"

	"github.com/berth-dev/berth/internal/engine/monitor"
	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/log"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/oci"
	"github.com/berth-dev/berth/internal/trace"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Environment the engine gives the monitor (and so its Go children).
const (
	EnvRoot      = "_BERTH_ENGINE_ROOT"
	EnvState     = "_BERTH_ENGINE_STATE"
	EnvContainer = "_BERTH_ENGINE_CONTAINER"
)

// ErrAlreadyRunning: start of a running container (docker treats it as
// success).
var ErrAlreadyRunning = errors.New("container is already running")

// StartError is a failure to start the container's process, with the
// exit code docker's convention gives it: 127 for a command that was not
// found, 126 for one that cannot be run, 125 otherwise.
type StartError struct {
	ID   string
	Msg  string
	Code int
}

func (e *StartError) Error() string { return e.Msg }

func startError(id, msg string) *StartError {
	code := 125
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "executable file not found") || strings.Contains(low, "no such file or directory") && strings.Contains(low, "exec"):
		code = 127
	case strings.Contains(low, "permission denied") && strings.Contains(low, "exec"), strings.Contains(low, "exec format error"):
		code = 126
	}
	return &StartError{ID: id, Msg: msg, Code: code}
}

// Attach connects a started container's stdio to the caller's.
type Attach struct {
	// Stdin is read only when the container was created with OpenStdin.
	Stdin, Stdout, Stderr *os.File
	// DetachKeys (ParseDetachKeys), typed on Stdin, detach the caller
	// and leave the container running: Wait returns ErrDetached. As with
	// docker, they apply only to a container with a tty.
	DetachKeys []byte
	// MonitorRecordsExit: the monitor's exit handler records the exit
	// (and removes an AutoRemove container), as for a detached start;
	// the caller only watches. Without it (and without a restart
	// policy, which the handler applies) the caller records the exit
	// with Started.Finish, sparing a process start; a caller that lets
	// go first (Detach) leaves it to the handler again.
	MonitorRecordsExit bool
	// StdinOnce: the end of Stdin ends the container's stdin (without a
	// tty), as that of the caller that started it does: the CRI's
	// StdinOnce for an attach to a running container.
	StdinOnce bool
}

// ErrDetached: the attached caller typed its detach keys (docker's
// message).
var ErrDetached = errors.New("read escape sequence")

// Started is a container whose process runs.
type Started struct {
	Container  *Container
	Pid        int
	MonitorPid int
	notify     *bufio.Reader
	notifyFile *os.File
	monitor    *exec.Cmd
	reap       bool
	detached   atomic.Bool
	// keysDetached records docker's detach event when the caller typed
	// its detach keys (nil: no event).
	keysDetached func()
	// done, when set, runs once the caller lets go of the container
	// (Wait returned, or Detach; Finish for a caller that records).
	done     func()
	doneOnce sync.Once
	// finishExit, set where the monitor leaves the exit to this caller
	// (its original one, attached, with no 'h' flag), records Wait's
	// code (Finish); recordLostExit, after a Detach, records an exit the
	// monitor may have left to this caller.
	finishExit     func(ctx context.Context, code int) error
	recordLostExit func()
}

// RecordsExit says whether the caller records the container's exit: the
// code Wait returns goes to Finish. Otherwise the monitor's exit handler
// records it (a restart policy, MonitorRecordsExit, a later attach).
func (s *Started) RecordsExit() bool { return s.finishExit != nil }

// Finish records the exit Wait returned (RecordsExit): the runtime's
// state deleted, the root filesystem unmounted, an AutoRemove container
// removed. It is the caller's last step; ctx should outlive its client.
func (s *Started) Finish(ctx context.Context, code int) error {
	defer s.finish()
	if !s.RecordsExit() {
		return nil
	}
	return s.finishExit(ctx, code)
}

func (s *Started) finish() {
	if s.done != nil {
		s.doneOnce.Do(s.done)
	}
}

// Detach lets go of the container without waiting for its exit, for a
// caller whose own client went: the monitor sees the notify file close
// and drops this caller's streams, and a Wait in progress returns
// ErrDetached (still reaping a monitor this caller started). The
// container runs on; its exit is recorded as for any detached start
// (callers that Detach attach with MonitorRecordsExit).
func (s *Started) Detach() {
	defer s.finish()
	s.detached.Store(true)
	// A blocked read holds the file open past Close: shut an attach
	// socket down under it (a pipe's reader is woken by Close).
	if raw, err := s.notifyFile.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	}
	s.notifyFile.Close()
	if s.RecordsExit() {
		// An exit whose "X" the monitor wrote before it saw us go was
		// left to us, and the close lost it.
		s.recordLostExit()
	}
}

// Wait waits for the first exit of an attached container and returns its
// exit code. The caller then records it (Finish) when RecordsExit; else
// the monitor's exit handler does. ErrDetached: the caller typed its
// detach keys, the container runs on and the exit handler will record
// its exit.
func (s *Started) Wait() (code int, err error) {
	defer func() {
		if !s.RecordsExit() || err != nil {
			s.finish()
		}
	}()
	defer s.notifyFile.Close()
	if s.reap && s.monitor != nil {
		// A long-lived caller reaps the monitor it started (it may
		// outlive this wait: a restart policy).
		defer reapLater(s.monitor)
	}
	for {
		line, err := s.notify.ReadString('\n')
		if strings.HasPrefix(line, "X ") {
			return strconv.Atoi(strings.TrimSpace(line[2:]))
		}
		if line == "Q\n" {
			if s.keysDetached != nil {
				s.keysDetached()
			}
			return -1, ErrDetached
		}
		if err != nil && s.detached.Load() {
			return -1, ErrDetached
		}
		if err != nil {
			return -1, fmt.Errorf("container %s: its monitor ended without reporting the exit: %w", ShortID(s.Container.ID), ErrInvalidState)
		}
	}
}

// Release lets the monitor outlive the caller without a zombie.
func (s *Started) release() {
	if s.monitor != nil && s.monitor.Process != nil {
		if s.reap {
			reapLater(s.monitor)
			return
		}
		s.monitor.Process.Release()
	}
}

// Start starts a created or exited container under a new monitor. With
// attach, the container's output is copied to the given files as well as
// to its log, and the caller Waits for its exit.
func (e *Engine) Start(ctx context.Context, ref string, attach *Attach) (*Started, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	unlock, err := e.lock(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	st, autoRemove, err := e.startByHand(ctx, c.ID, attach)
	unlock()
	if err != nil && autoRemove {
		// As dockerd: a --rm container whose start failed is removed,
		// whichever front end started it; a docker CLI's `run --rm`
		// waits for that removal before it reports the error. Not
		// with the caller's context: a client gone must not leave it.
		if rerr := e.Remove(context.WithoutCancel(ctx), c.ID, RemoveOptions{Force: true, Volumes: true}); rerr != nil && !errors.Is(rerr, store.ErrNotFound) {
			log.From(ctx).Warn("removing a --rm container whose start failed", "container", c.ID, "err", rerr)
		}
	}
	return st, err
}

// startByHand is Start under the container's lock; autoRemove says the
// start itself failed (not a refusal of the container's state) for a
// container that is removed then.
func (e *Engine) startByHand(ctx context.Context, id string, attach *Attach) (_ *Started, autoRemove bool, err error) {
	c, err := e.get(ctx, id)
	if err != nil {
		return nil, false, err
	}
	switch c.State.Status {
	case StatusRunning, StatusPaused, StatusRestarting:
		if alive(c.State.MonitorPid, c.State.MonitorStart) {
			return nil, false, fmt.Errorf("container %s: %w", c.Name, ErrAlreadyRunning)
		}
	case StatusCreating, StatusRemoving, StatusDead:
		return nil, false, fmt.Errorf("container %s is %s: %w", c.Name, c.State.Status, ErrInvalidState)
	}
	// A start by hand begins the restart policy afresh, as with docker.
	if c.RestartCount != 0 || c.State.QuickExits != 0 {
		if c, err = e.update(ctx, c.ID, func(r *Container) error {
			r.RestartCount, r.State.QuickExits = 0, 0
			return nil
		}); err != nil {
			return nil, false, err
		}
	}
	st, err := e.startLocked(ctx, c, attach)
	return st, err != nil && c.HostConfig.AutoRemove, err
}

// startMovesIntoCgroup says whether starting c moves a process into a
// cgroup: a VM's shim does; the linux runtime forks a container's init
// into its cgroup instead on a v1 or hybrid host, unless the init is in a
// user namespace or the host's pid namespace (linux.forkIntoCgroup). (A
// container of a pod with a user namespace moves too; it goes without the
// warm-up, at the cost of one grace period.)
func (e *Engine) startMovesIntoCgroup(c *Container) bool {
	iso, err := e.driver.isolation(c.HostConfig.Isolation)
	return err != nil || iso != e.driver.def.Name() || !cgroupwarm.V1Layout() || os.Getenv(envCgroupFork) == "0" ||
		c.IDMap != nil || c.HostConfig.PidMode == "host"
}

// envCgroupFork is the linux runtime's switch (linux.EnvCgroupFork, a
// driver package the engine does not import): =0, every init is moved.
const envCgroupFork = "BERTH_CGROUP_FORK"

func (e *Engine) startLocked(ctx context.Context, c *Container, attach *Attach) (_ *Started, retErr error) {
	// A start that moves a process into a cgroup (a VM's shim, an init
	// the runtime cannot fork into its own): keep the kernel's migration
	// lock busy from here so the move does not wait a grace period (~10
	// ms) for it.
	if e.startMovesIntoCgroup(c) {
		defer cgroupwarm.Hold()()
	}
	sd := e.stateDir(c.ID)
	if err := os.MkdirAll(sd, 0o700); err != nil {
		return nil, err
	}
	os.Remove(e.exitFile(c.ID))
	trace.Phase("start")
	if err := e.mountRootfs(c); err != nil {
		return nil, err
	}
	nr, nw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer nw.Close()
	flags := "m"
	files := []*os.File{nw}
	if attach != nil {
		flags += "a"
		in := attach.Stdin
		if in == nil || !c.Config.OpenStdin {
			in, err = os.Open(os.DevNull)
			if err != nil {
				return nil, err
			}
			defer in.Close()
		}
		files = append(files, in, attach.Stdout, attach.Stderr)
		if c.HostConfig.RestartPolicy.Name != "no" && c.HostConfig.RestartPolicy.Name != "" || attach.MonitorRecordsExit {
			flags += "h"
		}
	}
	callerRecords := attach != nil && !strings.Contains(flags, "h")
	if c.Config.OpenStdin {
		flags += "i"
	}
	if c.Config.Tty {
		flags += "t"
	}
	logf, err := os.OpenFile(filepath.Join(sd, "monitor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	env := []string{
		monitor.EnvFlags + "=" + flags,
		monitor.EnvLog + "=" + c.LogPath,
		monitor.EnvExitFile + "=" + e.exitFile(c.ID),
		monitor.EnvLogMax + "=" + strconv.FormatInt(c.HostConfig.LogMaxSize, 10),
		monitor.EnvLogFiles + "=" + strconv.Itoa(c.HostConfig.LogMaxFiles),
		monitor.EnvLogFormat + "=" + monitorLogFormat(c.HostConfig.LogDriver),
		monitor.EnvHealth + "=" + healthEnv(c.Config.Healthcheck),
		EnvRoot + "=" + e.opts.Root,
		EnvState + "=" + e.opts.State,
		EnvContainer + "=" + c.ID,
		monitor.EnvSocket + "=" + e.attachSocket(c.ID),
	}
	attrs, err := logAttrs(c)
	if err != nil {
		return nil, err
	}
	if attrs != "" {
		env = append(env, monitor.EnvLogAttrs+"="+attrs)
	}
	if attach != nil && attach.Stdin != nil && c.Config.OpenStdin && c.Config.Tty && len(attach.DetachKeys) > 0 {
		env = append(env, monitor.EnvDetach+"="+hex.EncodeToString(attach.DetachKeys))
	}
	if c.Config.Tty {
		// The container's terminal has the caller's size from its
		// first instruction: the monitor copies it only once the
		// container runs, and a `stty size` before that saw 0x0. A
		// caller without a terminal (the Docker API's) may have given
		// the size at create.
		rows, cols := c.HostConfig.ConsoleSize[0], c.HostConfig.ConsoleSize[1]
		if attach != nil && attach.Stdin != nil {
			if ws, err := unix.IoctlGetWinsize(int(attach.Stdin.Fd()), unix.TIOCGWINSZ); err == nil && ws.Row > 0 && ws.Col > 0 {
				rows, cols = uint(ws.Row), uint(ws.Col)
			}
		}
		if rows > 0 && cols > 0 && rows <= 65535 && cols <= 65535 {
			env = append(env, EnvWinsize+"="+strconv.FormatUint(uint64(rows), 10)+"x"+strconv.FormatUint(uint64(cols), 10))
		}
	}
	// A monitor parked ahead of need (a long-lived engine's), given the
	// attached caller's stdio too, else one started now; the next is
	// parked once this start is done.
	cmd := e.spares.assign(c.ID, env, logf, nw, files[1:])
	refillAtDone := false
	switch {
	case cmd != nil && attach != nil:
		// Parked when the caller lets go of the container: its client
		// waits for the run (and, with --rm, the removal), which the
		// next monitor's start would take CPU from.
		refillAtDone = true
	default:
		// (None parked: one is parked now, so that a start whose
		// caller never let go cannot leave serve without one.)
		defer e.spares.refill()
	}
	if cmd == nil {
		cmd = &exec.Cmd{
			Path:        e.opts.Exe,
			Args:        []string{"berth-monitor", c.ID},
			Env:         append(env, monitorEnv()...),
			Stderr:      logf,
			ExtraFiles:  files,
			SysProcAttr: &syscall.SysProcAttr{Setsid: true},
		}
		if err := cmd.Start(); err != nil {
			nr.Close()
			return nil, fmt.Errorf("start the monitor of %s: %w", ShortID(c.ID), err)
		}
	}
	nw.Close()
	trace.Phase("monitor-spawned")
	stopAtForTest("monitor-started")
	st := &Started{Container: c, MonitorPid: cmd.Process.Pid, notify: bufio.NewReader(nr), notifyFile: nr, monitor: cmd, reap: e.opts.Reap,
		keysDetached: func() { e.emit(c, "detach", nil) }}
	if refillAtDone {
		st.done = e.spares.refill
	}
	defer func() {
		if retErr != nil {
			nr.Close()
			cmd.Wait()
			st.finish()
		} else if attach == nil {
			nr.Close()
			st.release()
		}
	}()
	mstart := procStart(cmd.Process.Pid)
	if callerRecords {
		run := runOf{monitorPid: cmd.Process.Pid, monitorStart: mstart}
		st.finishExit = func(ctx context.Context, code int) error { return e.finishRun(ctx, c.ID, code, run) }
		st.recordLostExit = func() { e.recordLostExit(c.ID, run) }
	}
	if _, err := e.update(ctx, c.ID, func(r *Container) error {
		r.State.MonitorPid, r.State.MonitorStart = cmd.Process.Pid, mstart
		r.State.StopRequested = false
		return nil
	}); err != nil {
		unix.Kill(cmd.Process.Pid, unix.SIGKILL)
		return nil, err
	}
	line, rerr := st.notify.ReadString('\n')
	trace.Phase("monitor-reported")
	switch {
	case strings.HasPrefix(line, "S "):
		st.Pid, _ = strconv.Atoi(strings.TrimSpace(line[2:]))
	case strings.HasPrefix(line, "E "):
		return nil, startError(c.ID, strings.TrimSpace(line[2:]))
	default:
		msg, _ := os.ReadFile(filepath.Join(sd, "monitor.log"))
		return nil, fmt.Errorf("container %s: the monitor ended before the container started (%v): %s", ShortID(c.ID), rerr, strings.TrimSpace(string(msg)))
	}
	if c2, err := e.get(ctx, c.ID); err == nil {
		st.Container = c2
	}
	return st, nil
}

// MonitorChild is the entry point of a Go process the monitor forked
// (monitor.Role() is not RoleNone): it starts the container, or handles
// its exit. It returns the process's exit code.
func MonitorChild(open func(root, state string) (*Engine, error)) int {
	role := monitor.Role()
	monitor.SyncEnv()
	if role == monitor.RoleProxy {
		return runLoopbackProxy()
	}
	var parked *Engine
	if role == monitor.RoleParked {
		// Started ahead of need (spare.go): the engine of serve's root
		// and state opened (and its store read once) while nothing
		// waits, then its container.
		proot, pstate := os.Getenv(EnvRoot), os.Getenv(EnvState)
		if e, err := open(proot, pstate); err == nil {
			e.db.Get(context.Background(), "")
			parked = e
		}
		if err := monitor.AwaitAssignment(); err != nil {
			return 1
		}
		role = monitor.RoleStart
		trace.Phase("parked-assigned")
		if parked != nil && (os.Getenv(EnvRoot) != proot || os.Getenv(EnvState) != pstate) {
			parked.Close()
			parked = nil
		}
	}
	startWinsize = parseWinsize(os.Getenv(EnvWinsize))
	id := os.Getenv(EnvContainer)
	root, state := os.Getenv(EnvRoot), os.Getenv(EnvState)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "_BERTH_") && k != EnvStopAt {
			os.Unsetenv(k)
		}
	}
	// fd 3 is the report socket of the start and exit children; a probe
	// has none (and fd 3 may be any file of its own later).
	var report *os.File
	if role != monitor.RoleHealth {
		report = os.NewFile(3, "report")
	}
	trace.Phase("monitor-child")
	e, err := parked, error(nil)
	if e == nil {
		e, err = open(root, state)
	}
	trace.Phase("engine-opened")
	if err != nil {
		if report != nil {
			fmt.Fprintf(report, "E %v\n", err)
		}
		return 1
	}
	defer e.Close()
	ctx := context.Background()
	switch role {
	case monitor.RoleStart:
		if err := e.runContainer(ctx, id, report, nil); err != nil {
			fmt.Fprintf(report, "E %v\n", oneLine(err))
			return 1
		}
		return 0
	case monitor.RoleExit:
		return e.handleExit(ctx, id, monitor.ExitCode(), report)
	case monitor.RoleHealth:
		status, err := e.RunHealthcheck(ctx, id)
		if err != nil {
			fmt.Fprintf(os.Stderr, "healthcheck of %s: %v\n", ShortID(id), err)
			return 1
		}
		if status == HealthStarting {
			return monitor.ProbeStillStarting
		}
		return 0
	}
	return 1
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// runContainer creates and starts the container's process with this
// process's stdio and reports its pid (and pty master) on report. The
// caller holds the container's lock. inherited are the sockets holding
// the last run's published ports (a restart), reused if they match.
func (e *Engine) runContainer(ctx context.Context, id string, report *os.File, inherited []*os.File) (retErr error) {
	c, err := e.get(ctx, id)
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			e.unmountVolumesOf(context.WithoutCancel(ctx), id, true)
			msg := retErr.Error()
			// docker's record of a start that failed: 127 for a
			// command not found, 126 for one that cannot run, else 128.
			code := startError(id, msg).Code
			if code == 125 {
				code = 128
			}
			e.update(ctx, id, func(r *Container) error {
				r.State.Error = msg
				r.State.ExitCode = code
				if r.State.Status == StatusRestarting {
					r.State.setStatus(StatusExited)
				}
				return nil
			})
		}
	}()
	if err := e.mountRootfs(c); err != nil {
		return err
	}
	trace.Phase("rootfs-mounted")
	e.deleteRuntime(ctx, id)
	if err := e.joinNamespaces(ctx, c); err != nil {
		return err
	}
	if err := e.mountVolumesOf(ctx, c); err != nil {
		return err
	}
	if err := e.mountImagesOf(c); err != nil {
		return err
	}
	trace.Phase("volumes-mounted")
	drv, err := e.driver.named(c.HostConfig.Isolation)
	if err != nil {
		return err
	}
	// The network: set up before the runtime's create, or, where nothing
	// in the create depends on it, its attachments (the CNI ADDs, ~15-20
	// ms) beside the create (~15-20 ms), from the moment the namespace
	// the runtime joins exists. Either way it is whole before the
	// container's process runs. netDone waits for it.
	var held []*os.File
	var proxyTo []string
	defer func() { closeAll(held) }() // the monitor gets its own copies
	netDone := func() error { return nil }
	if overlapNetwork(c, drv == e.driver.def) {
		type result struct {
			held    []*os.File
			proxyTo []string
			err     error
		}
		nsReady := make(chan error, 1)
		done := make(chan result, 1)
		go func() {
			h, p, err := e.setupNetwork(ctx, c, inherited, func(err error) { nsReady <- err })
			done <- result{h, p, err}
		}()
		if err := <-nsReady; err != nil {
			return (<-done).err // it undid its own work
		}
		var once sync.Once
		var netErr error
		netDone = func() error {
			once.Do(func() {
				r := <-done
				held, proxyTo, netErr = r.held, r.proxyTo, r.err
				trace.Phase("network-set-up")
			})
			return netErr
		}
	} else {
		if held, proxyTo, err = e.setupNetwork(ctx, c, inherited, nil); err != nil {
			return err
		}
		trace.Phase("network-set-up")
	}
	// teardownNetwork undoes it, once what runs beside has ended.
	teardownNetwork := func() {
		netDone()
		e.teardownNetwork(context.WithoutCancel(ctx), id)
	}
	var layers []runtime.Layer
	var helper *runtime.HostUser
	var sandbox string
	if _, ok := drv.(runtime.SandboxDriver); ok && c.Pod != "" {
		// It runs in its pod's sandbox, which has the pod's helper
		// processes.
		sandbox = c.Pod
	} else if drv != e.driver.def {
		if layers, err = e.layers(c); err != nil {
			teardownNetwork()
			return err
		}
		if helper, err = e.helperUser(ctx, id); err != nil {
			teardownNetwork()
			return err
		}
	}
	rc, err := drv.Create(ctx, id, runtime.CreateOptions{
		Bundle:     e.containerDir(id),
		Stdio:      runtime.Stdio{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr},
		Terminal:   c.Config.Tty,
		Layers:     layers,
		HelperUser: helper,
		Sandbox:    sandbox,
	})
	if err != nil {
		teardownNetwork()
		return err
	}
	if err := netDone(); err != nil {
		// The attachments undid their own work, as before a create.
		e.deleteRuntime(ctx, id)
		return err
	}
	master := rc.Console()
	if master != nil {
		defer master.Close()
		if startWinsize != nil {
			unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, startWinsize)
		}
	}
	trace.Phase("runtime-created")
	if err := rc.Start(ctx); err != nil {
		e.deleteRuntime(ctx, id)
		e.teardownNetwork(context.WithoutCancel(ctx), id)
		return err
	}
	trace.Phase("runtime-started")
	now := time.Now().UTC()
	// The monitor's identity goes into the same write that makes the
	// record say running: a reader never sees a running container
	// without the monitor that supervises it (the CLI that started the
	// monitor records it too, but it may be killed before it does).
	mpid := monitor.Pid()
	mstart := procStart(mpid)
	if _, err := e.update(ctx, id, func(r *Container) error {
		r.State.setStatus(StatusRunning)
		r.State.MonitorPid, r.State.MonitorStart = mpid, mstart
		r.State.Pid = rc.Pid()
		r.State.StartedAt = now
		r.State.FinishedAt = time.Time{}
		r.State.ExitCode = 0
		r.State.Error = ""
		// A run starts healthy-to-be; the last results stay, as docker
		// keeps them.
		if r.Config.Healthcheck.enabled() {
			log := []HealthResult{}
			if r.State.Health != nil {
				log = r.State.Health.Log
			}
			r.State.Health = &Health{Status: HealthStarting, Log: log}
		} else {
			r.State.Health = nil
		}
		return nil
	}); err != nil {
		// The record is gone (removed meanwhile): so goes the container.
		e.deleteRuntime(ctx, id)
		e.teardownNetwork(context.WithoutCancel(ctx), id)
		return err
	}
	e.emitID(ctx, id, "start", nil)
	if err := sendReservations(report, held, proxyTo); err != nil {
		e.deleteRuntime(ctx, id)
		e.teardownNetwork(context.WithoutCancel(ctx), id)
		return fmt.Errorf("hand the port reservations to the monitor: %w", err)
	}
	trace.Phase("recorded-running")
	msg := []byte(fmt.Sprintf("P %d\n", rc.Pid()))
	var oob []byte
	if master != nil {
		oob = unix.UnixRights(int(master.Fd()))
	}
	if err := unix.Sendmsg(int(report.Fd()), msg, oob, nil, 0); err != nil {
		// No monitor to supervise it: the container cannot run.
		e.deleteRuntime(ctx, id)
		e.teardownNetwork(context.WithoutCancel(ctx), id)
		return fmt.Errorf("report to the monitor: %w", err)
	}
	return nil
}

// EnvWinsize is "ROWSxCOLS", the attached terminal's size when the
// container was started, for the start process to give the container's
// terminal before its process runs.
const EnvWinsize = "_BERTH_WINSIZE"

// startWinsize is EnvWinsize in a monitor's child (nil: none).
var startWinsize *unix.Winsize

func parseWinsize(v string) *unix.Winsize {
	r, c, ok := strings.Cut(v, "x")
	rows, err1 := strconv.Atoi(r)
	cols, err2 := strconv.Atoi(c)
	if !ok || err1 != nil || err2 != nil || rows <= 0 || cols <= 0 || rows > 65535 || cols > 65535 {
		return nil
	}
	return &unix.Winsize{Row: uint16(rows), Col: uint16(cols)}
}

// maxFdsPerMessage stays under the kernel's SCM_MAX_FD (253).
const maxFdsPerMessage = 250

// maxProxied keeps an "X" message (its addresses, ~30 bytes each) within
// the monitor's 4 KiB read.
const maxProxied = 120

// sendReservations hands the sockets that hold the container's published
// ports to the monitor ("R" messages, before "P"), which keeps them until
// the container exits; then those that get [::1]'s connections, with the
// addresses to forward them to ("X"), for its loopback proxy.
func sendReservations(report *os.File, held []*os.File, proxyTo []string) (retErr error) {
	var fds []int
	var to []string
	for i, f := range held {
		if i < len(proxyTo) && proxyTo[i] != "" {
			fds = append(fds, int(f.Fd()))
			to = append(to, proxyTo[i])
		}
	}
	if len(fds) > maxProxied {
		fds, to = fds[:maxProxied], to[:maxProxied]
	}
	defer func() {
		if len(fds) > 0 && retErr == nil {
			retErr = unix.Sendmsg(int(report.Fd()), []byte("X "+strings.Join(to, " ")+"\n"), unix.UnixRights(fds...), nil, 0)
		}
	}()
	for len(held) > 0 {
		n := min(len(held), maxFdsPerMessage)
		fds := make([]int, n)
		for i, f := range held[:n] {
			fds[i] = int(f.Fd())
		}
		if err := unix.Sendmsg(int(report.Fd()), []byte("R\n"), unix.UnixRights(fds...), nil, 0); err != nil {
			return err
		}
		held = held[n:]
	}
	return nil
}

// handleExit records an exit the monitor saw and applies the restart
// policy, reporting "P <pid>" after a restart or "D" when nothing is left
// to supervise.
func (e *Engine) handleExit(ctx context.Context, id string, code int, report *os.File) int {
	done := func() int { fmt.Fprintf(report, "D\n"); return 0 }
	trace.Phase("exit-handler")
	stopAtForTest("exit-handler")
	unlock, err := e.lock(ctx, id)
	if err != nil {
		return done()
	}
	restart, c, err := e.finishExitLocked(ctx, id, code, e.exitTime(id), nil)
	unlock()
	if err != nil || c == nil {
		return done()
	}
	trace.Phase("exit-recorded")
	if !restart {
		if c.HostConfig.AutoRemove {
			e.Remove(ctx, id, RemoveOptions{Force: true, Volumes: true})
			trace.Phase("removed")
		}
		return done()
	}
	delay := restartDelay(c.State.QuickExits)
	deadline := time.Now().Add(delay)
	for time.Now().Before(deadline) {
		time.Sleep(min(100*time.Millisecond, time.Until(deadline)))
		if cur, err := e.get(ctx, id); err != nil || cur.State.StopRequested || cur.State.Status != StatusRestarting {
			return done()
		}
	}
	unlock, err = e.lock(ctx, id)
	if err != nil {
		return done()
	}
	defer unlock()
	if cur, err := e.get(ctx, id); err != nil || cur.State.StopRequested || cur.State.Status != StatusRestarting {
		return done()
	}
	if err := e.runContainer(ctx, id, report, monitor.HeldPorts()); err != nil {
		return done()
	}
	return 0
}

// restartDelay is docker's back-off: 100 ms, doubling for each run in a
// row that lasted under 10 s, at most a minute.
func restartDelay(quick int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < quick && d < time.Minute; i++ {
		d *= 2
	}
	return min(d, time.Minute)
}

// exitTime reads the time the monitor recorded in the exit file.
func (e *Engine) exitTime(id string) time.Time {
	_, at, ok := e.readExitFile(id)
	if !ok {
		return time.Now().UTC()
	}
	return at
}

func (e *Engine) readExitFile(id string) (int, time.Time, bool) {
	data, err := os.ReadFile(e.exitFile(id))
	if err != nil {
		return 0, time.Time{}, false
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return 0, time.Time{}, false
	}
	code, err1 := strconv.Atoi(f[0])
	ns, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, time.Time{}, false
	}
	return code, time.Unix(0, ns).UTC(), true
}

// runOf names one run of a container: its monitor (a start by hand
// makes a new one; a restart policy's runs share it, and are never
// recorded by a caller: see the 'h' flag).
type runOf struct {
	monitorPid   int
	monitorStart uint64
}

// finishRun records the exit of run (Started.Wait's code, or a stop's
// claim) when no exit handler runs: the runtime's state is deleted and
// the root filesystem unmounted; with AutoRemove the container is
// removed. A record that moved on to another run meanwhile (recorded,
// reconciled and started again by another caller) is left alone.
func (e *Engine) finishRun(ctx context.Context, id string, code int, run runOf) error {
	c, err := e.recordExit(ctx, id, code, run)
	if err != nil {
		return err
	}
	return e.removeIfAuto(ctx, c)
}

// recordExit is finishRun but for the removal: it returns the record as
// written (nil: it was recorded, removed or started again by another
// meanwhile).
func (e *Engine) recordExit(ctx context.Context, id string, code int, run runOf) (*Container, error) {
	unlock, err := e.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	_, c, err := e.finishExitLocked(ctx, id, code, e.exitTime(id), &run)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil // reconciled and removed by another command meanwhile
	}
	return c, err
}

// removeIfAuto removes c, an exit recordExit wrote, if it is AutoRemove.
func (e *Engine) removeIfAuto(ctx context.Context, c *Container) error {
	if c == nil || !c.HostConfig.AutoRemove {
		return nil
	}
	if err := e.Remove(ctx, c.ID, RemoveOptions{Force: true, Volumes: true}); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// recordLostExit records the exit of run, whose recording caller let go
// of it (Started.Detach), if it had exited by then: the monitor may have
// handed that exit to the caller (its "X" written before it saw the
// caller go) and so run no handler. An exit the handler records as well
// is recorded once (finishExitLocked), and removed once. A container
// that exits later is the handler's.
func (e *Engine) recordLostExit(id string, run runOf) {
	code, _, ok := e.readExitFile(id)
	if !ok {
		return
	}
	ctx := context.Background()
	if err := e.finishRun(ctx, id, code, run); err != nil {
		log.From(ctx).Warn("recording the exit of a container whose caller went", "container", id, "err", err)
	}
}

// finishExitLocked records an exit once (a record no longer running is
// left alone) and decides the restart policy. It returns the record as
// written, nil if there was nothing to do. With run, only a record of
// that run is recorded (one that moved on to another run meanwhile, a
// start by another caller, is left alone).
func (e *Engine) finishExitLocked(ctx context.Context, id string, code int, at time.Time, run *runOf) (bool, *Container, error) {
	c, err := e.get(ctx, id)
	if err != nil {
		return false, nil, err
	}
	if run != nil && (c.State.MonitorPid != run.monitorPid || c.State.MonitorStart != run.monitorStart) {
		return false, nil, nil
	}
	switch c.State.Status {
	case StatusRunning, StatusPaused, StatusRestarting:
	case StatusRemoving:
		// The removal reports the exit (die, then unmount).
		e.cleanupRun(ctx, id, false)
		return false, nil, nil
	default:
		return false, nil, nil
	}
	// Before the runtime's state (and the cgroup's counters) go.
	trace.Phase("exit-locked")
	oomKilled := e.oomKilled(ctx, id)
	trace.Phase("oom-checked")
	e.cleanupRun(ctx, id, true)
	restart := false
	c, err = e.update(ctx, id, func(r *Container) error {
		r.State.ExitCode = code
		r.State.OOMKilled = oomKilled
		r.State.FinishedAt = at
		r.State.Pid = 0
		if at.Sub(r.State.StartedAt) < 10*time.Second {
			r.State.QuickExits++
		} else {
			r.State.QuickExits = 0
		}
		p := r.HostConfig.RestartPolicy
		stop := r.State.StopRequested
		switch p.Name {
		case "always", "unless-stopped":
			restart = !stop
		case "on-failure":
			restart = !stop && code != 0 && (p.MaximumRetryCount == 0 || r.RestartCount < p.MaximumRetryCount)
		}
		if restart {
			r.State.setStatus(StatusRestarting)
			r.RestartCount++
		} else {
			r.State.setStatus(StatusExited)
		}
		return nil
	})
	if err == nil {
		if oomKilled {
			e.emit(c, "oom", nil)
		}
		e.emit(c, "die", exitCodeAttr(code))
	}
	return restart, c, err
}

// oomKilled says whether the kernel's OOM killer killed a process of the
// container's run that ended (docker's State.OOMKilled).
func (e *Engine) oomKilled(ctx context.Context, id string) bool {
	rc, err := e.driver.Load(ctx, id)
	if err != nil {
		return false
	}
	st, err := rc.Stats(ctx)
	return err == nil && st.OOMKills > 0
}

// cleanupRun deletes the runtime's state of a run that ended and unmounts
// the root filesystem; withEvents: with the volumes' unmount events.
func (e *Engine) cleanupRun(ctx context.Context, id string, withEvents bool) {
	trace.Phase("cleanup")
	// The network's DELs (~11-14 ms) share nothing with the runtime's
	// state and the mounts: they go side by side.
	var wg sync.WaitGroup
	wg.Go(func() {
		e.teardownNetwork(ctx, id)
		trace.Phase("network-released")
	})
	e.deleteRuntime(ctx, id)
	trace.Phase("runtime-deleted")
	unmountRootfs(e.rootfs(id))
	unmountRootfs(e.shmDir(id))
	e.unmountVolumesOf(ctx, id, withEvents)
	e.unmountImagesOf(id)
	trace.Phase("unmounted")
	wg.Wait()
}

// shmDir is where the /dev/shm of an --ipc shareable container is
// mounted on the host (docker's containers/<id>/mounts/shm): the
// container and those that join its IPC namespace bind it.
func (e *Engine) shmDir(id string) string { return filepath.Join(e.stateDir(id), "shm") }

// mountShm mounts the shareable container's /dev/shm tmpfs, unless it is.
func (e *Engine) mountShm(c *Container) error {
	dir := e.shmDir(c.ID)
	if mounted(dir) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	size := c.HostConfig.ShmSize
	if size <= 0 {
		size = 64 << 20
	}
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, fmt.Sprintf("mode=1777,size=%d", size)); err != nil {
		return fmt.Errorf("container %s: mount its /dev/shm: %w", ShortID(c.ID), err)
	}
	return nil
}

// ParseSignal accepts docker's forms: "SIGTERM", "TERM", "15".
func ParseSignal(s string) (unix.Signal, error) {
	n, err := oci.ParseSignal(s)
	if err != nil {
		return 0, fmt.Errorf("invalid signal %q: %w", s, ErrInvalid)
	}
	return unix.Signal(n), nil
}

// joinNamespaces points the bundle's PID and IPC namespaces of
// --pid/--ipc container:NAME at the donor's as it runs now (its init
// changes with each start), and mounts the /dev/shm of an --ipc
// shareable container.
func (e *Engine) joinNamespaces(ctx context.Context, c *Container) error {
	hc := c.HostConfig
	if hc.IpcMode == "shareable" {
		if err := e.mountShm(c); err != nil {
			return err
		}
	}
	if !strings.HasPrefix(hc.PidMode, "container:") && !strings.HasPrefix(hc.IpcMode, "container:") {
		return nil
	}
	donorPid := func(what, mode string) (int, error) {
		other, err := e.get(ctx, strings.TrimPrefix(mode, "container:"))
		if err != nil {
			return 0, fmt.Errorf("--%s %s: %w", what, mode, err)
		}
		if other.State.Status != StatusRunning && other.State.Status != StatusPaused || other.State.Pid <= 0 {
			return 0, fmt.Errorf("cannot join %s of a non running container: %s: %w", strings.ToUpper(what), other.Name, ErrInvalidState)
		}
		return other.State.Pid, nil
	}
	return e.editBundle(c, func(s *specs.Spec) error {
		for _, j := range []struct {
			what, mode string
			typ        specs.LinuxNamespaceType
			ns         string
		}{{"pid", hc.PidMode, specs.PIDNamespace, "pid"}, {"ipc", hc.IpcMode, specs.IPCNamespace, "ipc"}} {
			if !strings.HasPrefix(j.mode, "container:") {
				continue
			}
			pid, err := donorPid(j.what, j.mode)
			if err != nil {
				return err
			}
			for i := range s.Linux.Namespaces {
				if s.Linux.Namespaces[i].Type == j.typ {
					s.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/%s", pid, j.ns)
				}
			}
		}
		return nil
	})
}

// editBundle reads the container's config.json, lets edit change it and
// writes it back atomically; nothing is written when edit fails.
func (e *Engine) editBundle(c *Container, edit func(*specs.Spec) error) error {
	path := filepath.Join(e.containerDir(c.ID), "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("container %s: its config.json: %w", c.Name, err)
	}
	if err := edit(&s); err != nil {
		return err
	}
	out, err := json.MarshalIndent(&s, "", "\t")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, out, 0o600)
}
