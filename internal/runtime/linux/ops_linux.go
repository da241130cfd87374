package linux

import (
	"context"
	"errors"
	"fmt"
	"github.com/berth-dev/berth/internal/runtime/linux/seccomp"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/linux/cgroup"
	"github.com/berth-dev/berth/internal/runtime/oci"
)

func (c *Container) cgroup() (cgroup.Manager, error) {
	if c.mgr != nil {
		return c.mgr, nil
	}
	if len(c.CgroupPaths) == 0 {
		return nil, fmt.Errorf("container %s has no cgroup", c.ID)
	}
	return cgroup.Load(c.CgroupPaths, c.SystemdCgrp)
}

// Start lets a created container's init exec the user's process, then runs
// the poststart hooks. The caller holds the lock (LoadLocked).
func (c *Container) Start(ctx context.Context) error {
	switch st := c.Status(); st {
	case StatusCreated:
	case StatusStopped:
		return fmt.Errorf("container %s: cannot start a stopped container: %w", c.ID, ErrInvalidStatus)
	default:
		return fmt.Errorf("container %s: cannot start a container that is %s: %w", c.ID, st, ErrInvalidStatus)
	}
	if err := c.openFifo(); err != nil {
		return err
	}
	if c.Spec.Hooks != nil {
		// Poststart failures are warnings: the container runs on.
		if err := oci.RunHooks(ctx, "poststart", c.Spec.Hooks.Poststart, c.hookState(StatusRunning)); err != nil {
			fmt.Fprintf(os.Stderr, "berth: warning: %v\n", err)
		}
	}
	return nil
}

// openFifo releases the init blocked on the exec fifo. The open is
// non-blocking so an init that died cannot hang start.
func (c *Container) openFifo() error {
	path := filepath.Join(c.dir, fifoName)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("container %s: open exec fifo: %w", c.ID, err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 1)
	for {
		n, err := unix.Read(fd, buf)
		if n == 1 {
			break
		}
		if err != nil && err != unix.EAGAIN && err != unix.EINTR {
			return fmt.Errorf("container %s: read exec fifo: %w", c.ID, err)
		}
		if !c.initAlive() {
			// The init may have written its byte, exec'd and exited
			// (a short-lived process) since the read above.
			if n, _ := unix.Read(fd, buf); n == 1 {
				break
			}
			return fmt.Errorf("container %s: init process exited before start", c.ID)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		unix.Poll(fds, 100)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("container %s: remove exec fifo: %w", c.ID, err)
	}
	return nil
}

// Signal sends sig to the init, or with all to every process of the
// container.
func (c *Container) Signal(sig unix.Signal, all bool) error {
	status := c.Status()
	if status == StatusStopped {
		if all {
			// Processes may remain in a container without a pid namespace.
			return c.signalAll(sig)
		}
		return fmt.Errorf("container %s: %w", c.ID, errNotRunning)
	}
	if all {
		return c.signalAll(sig)
	}
	if err := unix.Kill(c.Pid, sig); err != nil {
		if err == unix.ESRCH {
			return fmt.Errorf("container %s: %w", c.ID, errNotRunning)
		}
		return fmt.Errorf("container %s: signal %d to pid %d: %w", c.ID, sig, c.Pid, err)
	}
	return nil
}

func (c *Container) signalAll(sig unix.Signal) error {
	mgr, err := c.cgroup()
	if err != nil {
		return err
	}
	// A frozen process does not act on signals: thaw after signalling so
	// SIGKILL takes effect.
	paused, _ := mgr.Paused()
	if paused && sig != unix.SIGKILL {
		mgr.Thaw()
		defer mgr.Freeze()
	}
	pids, err := mgr.Pids()
	if err != nil {
		return fmt.Errorf("container %s: list processes: %w", c.ID, err)
	}
	for _, pid := range pids {
		unix.Kill(pid, sig)
	}
	if paused && sig == unix.SIGKILL {
		mgr.Thaw()
	}
	return nil
}

// Delete removes a stopped container (any container with force): kills what
// is left, removes the cgroup, runs poststop hooks and forgets it.
func (c *Container) Delete(ctx context.Context, force bool) error {
	status := c.Status()
	switch status {
	case StatusStopped:
	case StatusCreated:
		// A created container never ran the user's process: delete it.
	default:
		if !force {
			return fmt.Errorf("container %s: cannot delete a container that is %s; stop it first or use --force: %w", c.ID, status, ErrInvalidStatus)
		}
	}
	if status != StatusStopped {
		c.killAndWait()
	}
	if mgr, err := c.cgroup(); err == nil {
		// Without a pid namespace, processes may outlive the init.
		if pids, err := mgr.Pids(); err == nil && len(pids) > 0 {
			c.signalAll(unix.SIGKILL)
			waitGone(mgr, 2*time.Second)
		}
		if err := mgr.Destroy(); err != nil {
			return fmt.Errorf("container %s: remove cgroup: %w", c.ID, err)
		}
	}
	if c.HostMountNS {
		c.unmountRootfs()
	}
	var hookErr error
	if c.Spec.Hooks != nil {
		hookErr = oci.RunHooks(ctx, "poststop", c.Spec.Hooks.Poststop, c.hookState(StatusStopped))
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("container %s: remove state %s: %w", c.ID, c.dir, err)
	}
	if hookErr != nil {
		// The container is gone; the failure is a warning.
		fmt.Fprintf(os.Stderr, "berth: warning: %v\n", hookErr)
	}
	return nil
}

func (c *Container) killAndWait() {
	if mgr, err := c.cgroup(); err == nil {
		if paused, _ := mgr.Paused(); paused {
			unix.Kill(c.Pid, unix.SIGKILL)
			mgr.Thaw()
		}
	}
	unix.Kill(c.Pid, unix.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for c.initAlive() && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
}

func waitGone(mgr cgroup.Manager, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		pids, err := mgr.Pids()
		if err != nil || len(pids) == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Pause freezes every process of the container.
func (c *Container) Pause() error {
	if st := c.Status(); st != StatusRunning && st != StatusCreated {
		return fmt.Errorf("container %s: cannot pause a container that is %s: %w", c.ID, st, ErrInvalidStatus)
	}
	mgr, err := c.cgroup()
	if err != nil {
		return err
	}
	return mgr.Freeze()
}

// Resume thaws a paused container.
func (c *Container) Resume() error {
	if st := c.Status(); st != StatusPaused {
		return fmt.Errorf("container %s: cannot resume a container that is %s: %w", c.ID, st, ErrInvalidStatus)
	}
	mgr, err := c.cgroup()
	if err != nil {
		return err
	}
	return mgr.Thaw()
}

// Processes lists the host pids of the container's processes.
func (c *Container) Processes() ([]int, error) {
	mgr, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	return mgr.Pids()
}

// Stats reads the container's cgroup statistics.
func (c *Container) Stats() (*cgroup.Stats, error) {
	mgr, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	return mgr.Stats()
}

// OOMKills is how many of the container's processes the kernel's OOM
// killer has killed (its cgroup's count; readable until Delete).
func (c *Container) OOMKills() (uint64, error) {
	mgr, err := c.cgroup()
	if err != nil {
		return 0, err
	}
	return mgr.OOMKillCount()
}

// Update changes the container's resource limits and records them.
func (c *Container) Update(res *specs.LinuxResources) error {
	if c.Status() == StatusStopped {
		return fmt.Errorf("container %s: cannot update a stopped container: %w", c.ID, ErrInvalidStatus)
	}
	mgr, err := c.cgroup()
	if err != nil {
		return err
	}
	if err := mgr.Set(res); err != nil {
		return err
	}
	c.Spec.Linux.Resources = res
	return c.save()
}

// ExecOptions are the flags of `exec`.
type ExecOptions struct {
	Process       *specs.Process
	PidFile       string
	ConsoleSocket string
	PreserveFDs   int
	Stdio         Stdio
	// AttachTerminal: with process.terminal and no console socket, the
	// caller proxies the pty itself (exec -t in the foreground); Exec
	// returns the master in ExecResult.
	AttachTerminal bool
}

// ExecResult is a started exec process.
type ExecResult struct {
	Pid    int
	Master *os.File // the pty master when ExecOptions.AttachTerminal
}

// Exec starts a new process in a running container and returns its pid;
// the process is a child of the caller.
func (c *Container) Exec(ctx context.Context, opts ExecOptions) (*ExecResult, error) {
	if st := c.Status(); st != StatusRunning && st != StatusCreated {
		return nil, fmt.Errorf("container %s: cannot exec in a container that is %s: %w", c.ID, st, ErrInvalidStatus)
	}
	p := opts.Process
	if err := oci.ValidateProcess(p); err != nil {
		return nil, err
	}
	warnUngrantableAmbient(ctx, p)
	var console *os.File
	var masterCh chan *os.File
	if p.Terminal && opts.ConsoleSocket == "" {
		if !opts.AttachTerminal {
			return nil, fmt.Errorf("process.terminal is true but no --console-socket was given")
		}
		ours, theirs, err := ConsolePair()
		if err != nil {
			return nil, err
		}
		defer theirs.Close()
		console = theirs
		masterCh = make(chan *os.File, 1)
		go func() {
			defer ours.Close()
			m, _ := ReceiveConsole(ours)
			masterCh <- m
		}()
	}
	var join []nsJoin
	for _, t := range []specs.LinuxNamespaceType{specs.UserNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.NetworkNamespace, specs.PIDNamespace, specs.CgroupNamespace, specs.TimeNamespace, specs.MountNamespace} {
		if path, ok := c.Namespaces[t]; ok {
			join = append(join, nsJoin{flag: oci.NamespaceFlags[t], path: path})
		}
	}
	if console == nil && opts.ConsoleSocket != "" {
		var err error
		if console, err = dialConsoleSocket(opts.ConsoleSocket); err != nil {
			return nil, err
		}
		defer console.Close()
	}
	mgr, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	if _, ok := c.Namespaces[specs.UserNamespace]; ok && c.Spec.Linux != nil {
		chownStdioForUserns(opts.Stdio.orDefault(), c.Spec)
	}
	var prog *seccomp.Program
	if c.Spec.Linux != nil && c.Spec.Linux.Seccomp != nil {
		if prog, err = seccompProgram(c.root, c.Spec.Linux.Seccomp); err != nil {
			return nil, err
		}
	}
	sp, err := spawn(&spawnRequest{
		cfg: &initConfig{
			Seccomp: prog,
			Kind:    "exec",
			ID:      c.ID,
			Bundle:  c.Bundle,
			Rootfs:  c.Rootfs,
			Spec:    &specs.Spec{Linux: &specs.Linux{Seccomp: c.Spec.Linux.Seccomp, Personality: c.Spec.Linux.Personality}},
			Process: p,
			NoPivot: c.NoPivot,
		},
		join:        join,
		root:        fmt.Sprintf("/proc/%d/root", c.Pid),
		cgroup:      mgr,
		preserve:    opts.PreserveFDs,
		console:     console,
		stdio:       opts.Stdio,
		oomScoreAdj: p.OOMScoreAdj,
	})
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", c.ID, err)
	}
	defer sp.conn.f.Close()
	// EOF means execve succeeded (the socket is close-on-exec).
	var m message
	if err := sp.conn.recv(&m); err == nil && m.Type == "error" {
		sp.kill()
		return nil, fmt.Errorf("exec in container %s: %s", c.ID, m.Msg)
	}
	res := &ExecResult{Pid: sp.pid}
	if masterCh != nil {
		console.Close()
		res.Master = <-masterCh
	}
	if opts.PidFile != "" {
		if err := writePidFile(opts.PidFile, sp.pid); err != nil {
			return res, err
		}
	}
	if sp.cmd != nil {
		sp.cmd.Process.Release()
	}
	return res, nil
}

// IsNotExist reports whether err says the container does not exist.
func IsNotExist(err error) bool { return errors.Is(err, ErrNotExist) }

// unmountRootfs detaches the rootfs bind mount (and everything on it) that
// a container without a mount namespace left in the host's.
func (c *Container) unmountRootfs() {
	// Only our bind mount: what an engine mounted at the rootfs before
	// create (an overlay) stays.
	unix.Unmount(c.Rootfs, unix.MNT_DETACH)
}
