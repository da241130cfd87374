//go:build linux

package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/internal/engine/spec"
	"github.com/berth-dev/berth/internal/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ExecOptions are `berth exec`'s settings.
type ExecOptions struct {
	// Cmd is the command and its arguments (PATH of the process's
	// environment resolves a bare name).
	Cmd []string
	// Env entries are KEY=VALUE, set over the container's environment
	// (the CLI resolves bare KEYs).
	Env []string
	// User is user[:group] by name or number, resolved in the
	// container's /etc/passwd and /etc/group; empty: the container's.
	User string
	// WorkingDir must be absolute; empty: the container's.
	WorkingDir string
	// Tty gives the process a new pty; ExecProcess.Master is its master.
	Tty bool
	// ConsoleSize is the pty's height and width from the start (zero:
	// none, until the caller resizes it).
	ConsoleSize [2]uint
	// Stdio of the process (without Tty); nil ones get /dev/null.
	Stdin, Stdout, Stderr *os.File
	// Privileged gives the process every capability berth holds (its
	// bounding, permitted and effective sets), whatever the container's;
	// the container's seccomp filter and no_new_privs still apply, as
	// with docker exec --privileged.
	Privileged bool
	// ID names the exec in its events (execID): the caller's own (the
	// Docker API's exec ID); empty: a new one.
	ID string
}

// ExecError is an exec whose process could not be started, with docker's
// exit code: 127 when the command was not found, 126 otherwise (it is not
// executable, the user or working directory is wrong, ...).
type ExecError struct {
	Msg  string
	Code int
}

func (e *ExecError) Error() string { return e.Msg }

// ExecProcess is a process started by Exec. It is a child of the caller.
type ExecProcess struct {
	Pid int
	// Master is the pty master with ExecOptions.Tty; the caller closes it.
	Master *os.File
	proc   runtime.Process
	// done records exec_die.
	done func(code int)
	// detached records exec_detach.
	detached func()
}

// Detached records that the caller left the process running, detached
// from it by its detach keys (docker's exec_detach event).
func (p *ExecProcess) Detached() {
	if p.detached != nil {
		p.detached()
	}
}

// Signal sends the process sig through its driver (Pid may be 0: no host
// process stands for a VM's).
func (p *ExecProcess) Signal(sig syscall.Signal) error { return p.proc.Signal(sig) }

// Wait waits for the process and returns its exit code as a shell reports
// it (128+n for signal n).
func (p *ExecProcess) Wait() (int, error) {
	code, err := p.proc.Wait()
	if err == nil && p.done != nil {
		p.done(code)
	}
	return code, err
}

// PollableMaster moves the pty master (opened blocking by the runtime)
// into Go's poller, so that a deadline or Close wakes a goroutine blocked
// reading it: a blocking read would hold the master open, and keep the
// process from its hang-up, for as long as it writes nothing. For servers
// whose clients may go while the terminal is quiet. On failure Master is
// left as it was.
func (p *ExecProcess) PollableMaster() error {
	if p.Master == nil {
		return nil
	}
	raw, err := p.Master.SyscallConn()
	if err != nil {
		return err
	}
	dup := -1
	var derr error
	if err := raw.Control(func(fd uintptr) { dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return err
	}
	if derr != nil {
		return fmt.Errorf("exec terminal: %w", derr)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return fmt.Errorf("exec terminal: %w", err)
	}
	name := p.Master.Name()
	p.Master.Close()
	p.Master = os.NewFile(uintptr(dup), name)
	return nil
}

// notRunning is docker's refusal of an exec (or top, cp ...) into a
// container whose process does not run.
func notRunning(c *Container, status string) error {
	switch status {
	case StatusPaused:
		return fmt.Errorf("container %s is paused, unpause the container before exec: %w", c.Name, ErrInvalidState)
	case StatusRestarting:
		return fmt.Errorf("container %s is restarting, wait until the container is running: %w", c.Name, ErrInvalidState)
	}
	return fmt.Errorf("container %s is not running: %w", c.Name, ErrInvalidState)
}

// runningRuntime returns the runtime's view of a container the record says
// is running, refusing one that is not (paused too, unless paused is
// allowed).
func (e *Engine) runningRuntime(ctx context.Context, ref string, allowPaused bool) (*Container, runtime.Container, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	switch c.State.Status {
	case StatusRunning:
	case StatusPaused:
		if !allowPaused {
			return nil, nil, notRunning(c, StatusPaused)
		}
	default:
		return nil, nil, notRunning(c, c.State.Status)
	}
	rc, err := e.driver.Load(ctx, c.ID)
	if err != nil {
		if errors.Is(err, runtime.ErrNotExist) {
			return nil, nil, notRunning(c, StatusExited)
		}
		return nil, nil, err
	}
	switch st := rc.Status(); st {
	case runtime.StatusRunning:
	case runtime.StatusPaused:
		if !allowPaused {
			return nil, nil, notRunning(c, StatusPaused)
		}
	default:
		return nil, nil, notRunning(c, StatusExited)
	}
	return c, rc, nil
}

// Exec starts a process in a running container: the container's
// namespaces, cgroup, capabilities, seccomp profile and rlimits, with
// the container's environment plus o.Env, and o's user and working
// directory. The caller waits for it (ExecProcess.Wait) or lets it run
// on its own.
func (e *Engine) Exec(ctx context.Context, ref string, o ExecOptions) (*ExecProcess, error) {
	if len(o.Cmd) == 0 || o.Cmd[0] == "" {
		return nil, fmt.Errorf("exec: no command given: %w", ErrInvalid)
	}
	if o.WorkingDir != "" && !path.IsAbs(o.WorkingDir) {
		return nil, fmt.Errorf("the working directory %q is invalid, it needs to be an absolute path: %w", o.WorkingDir, ErrInvalid)
	}
	for _, kv := range o.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("environment variable %q: want KEY=VALUE: %w", kv, ErrInvalid)
		}
	}
	c, rc, err := e.runningRuntime(ctx, ref, false)
	if err != nil {
		return nil, err
	}
	base := rc.Process()
	if base == nil {
		return nil, fmt.Errorf("container %s: the runtime state has no process", ShortID(c.ID))
	}
	p := *base
	p.Args = slices.Clone(o.Cmd)
	p.Terminal = o.Tty
	p.ConsoleSize = nil
	if o.Tty && o.ConsoleSize[0] > 0 && o.ConsoleSize[1] > 0 {
		p.ConsoleSize = &specs.Box{Height: o.ConsoleSize[0], Width: o.ConsoleSize[1]}
	}
	env := slices.Clone(c.Config.Env)
	if len(env) == 0 {
		env = slices.Clone(base.Env)
	}
	var rootf *os.File
	var rootErr error
	if o.User != "" {
		rootf, rootErr = rc.OpenRoot()
	}
	if o.User != "" && errors.Is(rootErr, runtime.ErrNotSupported) {
		// The container's files are not on this host (a VM): numeric
		// ids only, which need no lookup.
		u, ok := numericUser(o.User)
		if !ok {
			return nil, fmt.Errorf("exec -u %s: this container's isolation takes a numeric uid[:gid] only: %w", o.User, ErrInvalid)
		}
		p.User = specs.User{UID: u[0], GID: u[1], Umask: base.User.Umask}
	} else if o.User != "" {
		// The running container's files, as its processes see them
		// (a volume over /etc included), resolved inside its root.
		if rootErr != nil {
			return nil, notRunning(c, StatusExited)
		}
		defer rootf.Close()
		root := "/proc/self/fd/" + strconv.Itoa(int(rootf.Fd()))
		u, err := spec.ResolveUser(root, o.User)
		if err != nil {
			return nil, &ExecError{Msg: "exec failed: " + err.Error(), Code: 126}
		}
		p.User = specs.User{UID: u.UID, GID: u.GID, AdditionalGids: u.AdditionalGids, Umask: base.User.Umask}
		// HOME follows the user unless it was set on purpose: the value
		// Generate filled in is the container user's home.
		if home, ok := envValue(env, "HOME"); ok {
			if cu, err := spec.ResolveUser(root, c.Config.User); err == nil && cu.Home == home {
				env = setEnvVar(env, "HOME="+u.Home)
			}
		} else {
			env = append(env, "HOME="+u.Home)
		}
	}
	for _, kv := range o.Env {
		env = setEnvVar(env, kv)
	}
	if o.Tty {
		if _, ok := envValue(env, "TERM"); !ok {
			env = append(env, "TERM=xterm")
		}
	}
	p.Env = env
	if o.WorkingDir != "" {
		p.Cwd = path.Clean(o.WorkingDir)
	}
	if o.Privileged {
		all, _ := spec.PrivilegedCapabilities()
		p.Capabilities = &specs.LinuxCapabilities{Bounding: all, Permitted: all, Effective: all}
	}
	var closers []*os.File
	defer func() {
		for _, f := range closers {
			f.Close()
		}
	}()
	orNull := func(f *os.File, flag int) (*os.File, error) {
		if f != nil {
			return f, nil
		}
		n, err := os.OpenFile(os.DevNull, flag, 0)
		if err != nil {
			return nil, err
		}
		closers = append(closers, n)
		return n, nil
	}
	var stdio runtime.Stdio
	if stdio.Stdin, err = orNull(o.Stdin, os.O_RDONLY); err != nil {
		return nil, err
	}
	if stdio.Stdout, err = orNull(o.Stdout, os.O_WRONLY); err != nil {
		return nil, err
	}
	if stdio.Stderr, err = orNull(o.Stderr, os.O_WRONLY); err != nil {
		return nil, err
	}
	execID := o.ID
	if execID == "" {
		execID = newID()
	}
	e.emit(c, execAction("exec_create", o.Cmd), map[string]string{"execID": execID})
	res, err := rc.Exec(ctx, runtime.ExecOptions{Process: &p, Stdio: stdio})
	if err != nil {
		if errors.Is(err, runtime.ErrInvalidStatus) {
			return nil, notRunning(c, StatusExited)
		}
		return nil, execError(o.Cmd[0], strings.Replace(err.Error(), "exec in container "+c.ID+": ", "", 1))
	}
	if o.Tty && res.Console() == nil {
		return nil, fmt.Errorf("container %s: exec -t: no pty from the runtime", ShortID(c.ID))
	}
	e.emit(c, execAction("exec_start", o.Cmd), map[string]string{"execID": execID})
	done := func(code int) {
		attrs := exitCodeAttr(code)
		attrs["execID"] = execID
		e.emit(c, "exec_die", attrs)
	}
	detached := func() { e.emit(c, "exec_detach", map[string]string{"execID": execID}) }
	return &ExecProcess{Pid: res.Pid(), Master: res.Console(), proc: res, done: done, detached: detached}, nil
}

// numericUser parses "uid" or "uid:gid" (gid defaults to uid's own 0,
// as docker does without a passwd entry).
func numericUser(s string) ([2]uint32, bool) {
	us, gs, hasG := strings.Cut(s, ":")
	u, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return [2]uint32{}, false
	}
	var g uint64
	if hasG {
		if g, err = strconv.ParseUint(gs, 10, 32); err != nil {
			return [2]uint32{}, false
		}
	}
	return [2]uint32{uint32(u), uint32(g)}, true
}

// execError gives a failed exec docker's exit code: 127 for a command
// that does not exist, 126 for everything else that kept it from running.
func execError(cmd, msg string) *ExecError {
	low := strings.ToLower(msg)
	lcmd := strings.ToLower(cmd)
	code := 126
	missing := strings.Contains(low, "no such file or directory") || strings.Contains(low, "not a directory")
	switch {
	case strings.Contains(low, "executable file not found"):
		code = 127
	case missing && strings.Contains(low, lcmd) && !strings.Contains(low, "chdir") && !strings.Contains(low, "process.cwd"):
		// docker's rule: the message names the command.
		code = 127
	}
	return &ExecError{Msg: "exec failed: " + msg, Code: code}
}

func envValue(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// setEnvVar sets KEY=VALUE in env, replacing every earlier entry of KEY.
func setEnvVar(env []string, kv string) []string {
	key, _, _ := strings.Cut(kv, "=")
	out := env[:0:0]
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k != key {
			out = append(out, e)
		}
	}
	return append(out, kv)
}

// ProcessUser is the user the container's process runs as (its bundle's
// process.user: uid, gid and supplementary groups as resolved at create).
func (e *Engine) ProcessUser(ctx context.Context, ref string) (specs.User, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return specs.User{}, err
	}
	data, err := os.ReadFile(filepath.Join(e.containerDir(c.ID), "config.json"))
	if err != nil {
		return specs.User{}, err
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil || s.Process == nil {
		return specs.User{}, fmt.Errorf("container %s: its config.json has no process: %v", c.Name, err)
	}
	return s.Process.User, nil
}
