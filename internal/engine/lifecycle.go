//go:build linux

package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/snapshot"
	"golang.org/x/sys/unix"
)

// Get resolves a name, ID or unique ID prefix and returns the record as
// it is now (reconciled with the monitor and the runtime).
func (e *Engine) Get(ctx context.Context, ref string) (*Container, error) {
	c, err := e.get(ctx, ref)
	if err != nil {
		return nil, err
	}
	return e.refresh(ctx, c)
}

// List returns every container of the engine's namespace, oldest first,
// reconciled.
func (e *Engine) List(ctx context.Context) ([]*Container, error) {
	return e.list(ctx, e.db.List)
}

// listAll is List over every namespace.
func (e *Engine) listAll(ctx context.Context) ([]*Container, error) {
	return e.list(ctx, e.db.ListAll)
}

func (e *Engine) list(ctx context.Context, rowsOf func(context.Context) ([]store.Row, error)) ([]*Container, error) {
	rows, err := rowsOf(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, r := range rows {
		c, err := decode(r)
		if err != nil {
			return nil, err
		}
		c, err = e.refresh(ctx, c)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	e.ensureDNS(ctx, out)
	return out, nil
}

// refresh derives what is true now. A record whose process (monitor,
// creator or remover) died is reconciled under the container's lock: the
// exit recorded, the restart policy applied, a half-made create undone, a
// half-done remove finished. A record that is gone wraps ErrNotFound.
// exitBeingRecorded says whether running record c's process has exited
// (its exit file is of this run) while its monitor's handler has not
// recorded it yet; a restart in progress is not an exit.
func (e *Engine) exitBeingRecorded(c *Container) bool {
	if c.State.Status == StatusRestarting {
		return false
	}
	_, at, ok := e.readExitFile(c.ID)
	return ok && !at.Before(c.State.StartedAt)
}

func (e *Engine) refresh(ctx context.Context, c *Container) (*Container, error) {
	switch c.State.Status {
	case StatusRunning, StatusPaused, StatusRestarting:
		if alive(c.State.MonitorPid, c.State.MonitorStart) {
			if e.exitBeingRecorded(c) {
				// It exited; the monitor's handler is recording it.
				code, at, _ := e.readExitFile(c.ID)
				c.State.setStatus(StatusExited)
				c.State.ExitCode, c.State.FinishedAt, c.State.Pid = code, at, 0
			}
			return c, nil
		}
	case StatusCreating, StatusRemoving:
		if alive(c.State.OwnerPid, c.State.OwnerStart) {
			return c, nil
		}
	default:
		return c, nil
	}
	unlock, err := e.lock(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	c, err = e.get(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	switch c.State.Status {
	case StatusCreating, StatusRemoving:
		if alive(c.State.OwnerPid, c.State.OwnerStart) {
			return c, nil
		}
		status := c.State.Status
		e.destroy(ctx, c.ID)
		if status == StatusCreating {
			e.removeVolumesMadeFor(ctx, c.ID)
		}
		return nil, store.NotFound("no such container: %s", c.ID)
	case StatusRunning, StatusPaused, StatusRestarting:
		if alive(c.State.MonitorPid, c.State.MonitorStart) {
			return c, nil
		}
	default:
		return c, nil
	}
	// The monitor is gone (killed, or the host restarted): the container
	// cannot stay unsupervised, so it is stopped and its exit recorded.
	code, at, ok := e.readExitFile(c.ID)
	if !ok || at.Before(c.State.StartedAt) {
		code, at = 255, time.Now().UTC()
		if rc, err := e.driver.Load(ctx, c.ID); err == nil && rc.Status() != runtime.StatusStopped {
			rc.Signal(unix.SIGKILL, true)
			waitCtx(ctx, rc, 5*time.Second)
			code = 128 + int(unix.SIGKILL)
		}
		e.update(ctx, c.ID, func(r *Container) error {
			r.State.Error = "the container's monitor died; berth stopped the container"
			return nil
		})
	}
	restart, rec, err := e.finishExitLocked(ctx, c.ID, code, at, nil)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return e.get(ctx, c.ID)
	}
	if restart {
		if _, err := e.startLocked(ctx, rec, nil); err != nil {
			e.update(ctx, c.ID, func(r *Container) error {
				r.State.setStatus(StatusExited)
				r.State.Error = err.Error()
				return nil
			})
		}
		return e.get(ctx, c.ID)
	}
	if rec.HostConfig.AutoRemove {
		e.markRemoving(ctx, c.ID)
		if e.destroyWith(ctx, c.ID, rec) == nil {
			e.emit(rec, "destroy", nil)
		}
		return nil, store.NotFound("no such container: %s", c.ID)
	}
	return rec, nil
}

// RemoveOptions are rm's.
type RemoveOptions struct {
	Force   bool
	Volumes bool
}

// Remove deletes a container: record, writable layer, log and runtime
// state. A running one is refused unless Force, which kills it first.
func (e *Engine) Remove(ctx context.Context, ref string, o RemoveOptions) error {
	c, err := e.get(ctx, ref)
	if err != nil {
		return err
	}
	id := c.ID
	unlock, err := e.lock(ctx, id)
	if err != nil {
		return err
	}
	c, err = e.get(ctx, id)
	if err != nil {
		unlock()
		return err
	}
	running := isRunning(c) && alive(c.State.MonitorPid, c.State.MonitorStart)
	if running && !o.Force && e.exitBeingRecorded(c) {
		// Its process exited and its monitor's handler is recording
		// that (which needs this lock): what `wait` and `inspect`
		// report already. A caller that saw it exit may remove it:
		// let the handler finish, then look again.
		unlock()
		if err := e.waitExitRecorded(ctx, id, c.State.StartedAt); err != nil {
			return err
		}
		if unlock, err = e.lock(ctx, id); err != nil {
			return err
		}
		if c, err = e.get(ctx, id); err != nil {
			unlock()
			return err
		}
		running = isRunning(c) && alive(c.State.MonitorPid, c.State.MonitorStart)
	}
	if running && !o.Force {
		unlock()
		return fmt.Errorf("cannot remove container %s: it is %s; stop it first or remove it with -f: %w", c.Name, c.State.Status, ErrInvalidState)
	}
	if running {
		if err := e.markRemoving(ctx, id); err != nil {
			unlock()
			return err
		}
		mpid, mstart := c.State.MonitorPid, c.State.MonitorStart
		unlock()
		if rc, err := e.driver.Load(ctx, id); err == nil {
			if rc.Status() == runtime.StatusPaused {
				rc.Resume()
			}
			rc.Signal(unix.SIGKILL, true)
			e.emit(c, "kill", map[string]string{"signal": strconv.Itoa(int(unix.SIGKILL))})
		}
		// The monitor records the exit and leaves; a container removed
		// meanwhile is no surprise to it.
		deadline := time.Now().Add(10 * time.Second)
		for alive(mpid, mstart) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if alive(mpid, mstart) {
			unix.Kill(mpid, unix.SIGKILL)
		}
		if unlock, err = e.lock(ctx, id); err != nil {
			return err
		}
		// Its exit handler leaves a container being removed to this
		// removal: the exit is reported here, as dockerd's rm -f does.
		code, _, ok := e.readExitFile(id)
		if !ok {
			code = 128 + int(unix.SIGKILL)
		}
		e.emit(c, "die", exitCodeAttr(code))
		e.emitVolumeMounts(c, "unmount")
	} else if err := e.markRemoving(ctx, id); err != nil {
		unlock()
		return err
	}
	defer unlock()
	var volumesOf *Container
	if o.Volumes {
		volumesOf = c
	}
	if err := e.destroyWith(ctx, id, volumesOf); err != nil {
		return err
	}
	e.emit(c, "destroy", nil)
	return nil
}

func (e *Engine) markRemoving(ctx context.Context, id string) error {
	_, err := e.update(ctx, id, func(r *Container) error {
		r.State.setStatus(StatusRemoving)
		r.State.StopRequested = true
		r.State.OwnerPid = os.Getpid()
		r.State.OwnerStart = procStart(r.State.OwnerPid)
		return nil
	})
	return err
}

// destroy removes everything of a container, record last. Each step
// tolerates what an earlier, interrupted destroy already removed.
func (e *Engine) destroy(ctx context.Context, id string) error { return e.destroyWith(ctx, id, nil) }

// destroyWith is destroy that also deletes volumesOf's anonymous volumes
// (rm -v, --rm), before the record, as dockerd does: a client that
// waits for the removal (docker run --rm, wait's "removed") finds them
// gone with it.
func (e *Engine) destroyWith(ctx context.Context, id string, volumesOf *Container) error {
	var errs []error
	if err := e.deleteRuntime(ctx, id); err != nil {
		errs = append(errs, err)
	}
	if err := e.teardownNetworkFor(ctx, id, true); err != nil {
		errs = append(errs, err)
	}
	unmountRootfs(e.rootfs(id))
	unmountRootfs(e.shmDir(id))
	e.unmountVolumesOf(ctx, id, false)
	e.unmountImagesOf(id)
	if err := e.snapshots.Release(id); err != nil && !errors.Is(err, snapshot.ErrNotFound) {
		errs = append(errs, err)
	}
	for _, d := range []string{e.containerDir(id), e.stateDir(id)} {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove container %s: %w", ShortID(id), errors.Join(errs...))
	}
	if volumesOf != nil {
		e.removeAnonymousVolumes(ctx, volumesOf)
	}
	os.Remove(e.opts.State + "/locks/" + id)
	return e.db.Delete(ctx, id)
}

// Running says whether the record says the container runs (running,
// paused or restarting between runs).
func (c *Container) Running() bool { return isRunning(c) }

func isRunning(c *Container) bool {
	switch c.State.Status {
	case StatusRunning, StatusPaused, StatusRestarting:
		return true
	}
	return false
}

// Stop sends the stop signal, then SIGKILL after timeout (nil: the
// container's StopTimeout, else 10 s), and returns when the exit is
// recorded. The restart policy does not apply to a stopped container.
func (e *Engine) Stop(ctx context.Context, ref string, timeout *int) error {
	return e.StopWith(ctx, ref, StopOptions{Timeout: timeout})
}

// StopOptions are stop's and restart's: Timeout as Stop's; Signal, when
// set, is sent instead of the container's stop signal (-s/--signal).
type StopOptions struct {
	Timeout *int
	Signal  string
}

// StopWith is Stop with a signal of the caller's choosing.
func (e *Engine) StopWith(ctx context.Context, ref string, o StopOptions) error {
	timeout := o.Timeout
	var asked unix.Signal
	if o.Signal != "" {
		s, err := ParseSignal(o.Signal)
		if err != nil {
			return err
		}
		asked = s
	}
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	// An exit its monitor has not recorded yet reads as exited, but the
	// exit handler may be about to restart it: with the monitor alive the
	// stop must still mark it.
	if !isRunning(c) && !alive(c.State.MonitorPid, c.State.MonitorStart) {
		return nil
	}
	sig := unix.SIGTERM
	if c.Config.StopSignal != "" {
		if s, err := ParseSignal(c.Config.StopSignal); err == nil {
			sig = s
		}
	}
	if asked != 0 {
		sig = asked
	}
	t := 10
	if c.Config.StopTimeout != nil {
		t = *c.Config.StopTimeout
	}
	if timeout != nil {
		t = *timeout
	}
	// Under the lock: an exit handler about to restart the container
	// (it checks StopRequested under the same lock) either sees the flag
	// or has finished starting it, and then the signal finds it.
	unlock, err := e.lock(ctx, c.ID)
	if err != nil {
		return err
	}
	_, err = e.update(ctx, c.ID, func(r *Container) error { r.State.StopRequested = true; return nil })
	rc, lerr := e.driver.Load(ctx, c.ID)
	unlock()
	if err != nil {
		return err
	}
	var rec *exitRecorder
	if lerr == nil {
		// The exit is ours to record, sparing the monitor's handler
		// (a process start) on the way to stop's answer.
		rec = e.takeExit(c)
		defer rec.close()
		if rec != nil {
			stopAtForTest("exit-claimed")
		}
	}
	if lerr == nil {
		if rc.Status() == runtime.StatusPaused {
			rc.Resume()
		}
		if rc.Signal(sig, false) == nil {
			e.emit(c, "kill", map[string]string{"signal": strconv.Itoa(int(sig))})
		}
		if t < 0 {
			// docker's -1: wait as long as it takes.
			waitCtx(ctx, rc, time.Duration(1<<62))
		} else {
			waitCtx(ctx, rc, time.Duration(t)*time.Second)
		}
		if rc.Status() != runtime.StatusStopped {
			if rc.Signal(unix.SIGKILL, true) == nil {
				e.emit(c, "kill", map[string]string{"signal": strconv.Itoa(int(unix.SIGKILL))})
			}
			waitCtx(ctx, rc, 30*time.Second)
		}
	}
	if code, ok := rec.exitCode(30 * time.Second); ok {
		// Recorded whatever becomes of the caller: the monitor counts
		// on it. Killed before it is, the next command that reads the
		// record reconciles it from the exit file.
		ctx := context.WithoutCancel(ctx)
		recorded, err := e.recordExit(ctx, c.ID, code, runOf{monitorPid: c.State.MonitorPid, monitorStart: c.State.MonitorStart})
		if err != nil {
			return err
		}
		if recorded != nil {
			e.emit(c, "stop", nil)
			return e.removeIfAuto(ctx, recorded)
		}
		// Recorded by another (an attached caller), or the record is
		// another run's: as without a claim.
	}
	if err := e.waitRecorded(ctx, c.ID, 30*time.Second); err != nil {
		return err
	}
	e.emit(c, "stop", nil)
	return nil
}

// exitRecorder is a stop's claim on the monitor's report of the exit
// (the attach socket's "H"): the monitor sends it "X <code>" and runs no
// exit handler, so the stopper records the exit itself. A claim that
// ends without the code (closed, the monitor gone) leaves the exit to
// the handler, or to the reconciliation of a record whose monitor died.
type exitRecorder struct {
	conn *os.File
	r    *bufio.Reader
}

// takeExit claims the exit of running container c; nil where the monitor
// declines (a restart policy or a watching caller: its handler records;
// another stop claimed it) or cannot be reached.
func (e *Engine) takeExit(c *Container) *exitRecorder {
	conn, err := e.dialMonitor(c)
	if err != nil {
		return nil
	}
	x := &exitRecorder{conn: conn, r: bufio.NewReader(conn)}
	if _, err := conn.Write([]byte("H\n")); err != nil {
		x.close()
		return nil
	}
	line, err := x.readLine(5 * time.Second)
	if err != nil || !strings.HasPrefix(line, "S ") {
		x.close()
		return nil
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(line[2:])); err != nil || pid != c.State.Pid {
		// Another run than the one this stop read (it exited and was
		// started again meanwhile): let go at once, its handler records.
		x.close()
		return nil
	}
	return x
}

// readLine reads the monitor's next line, waiting at most d.
func (x *exitRecorder) readLine(d time.Duration) (string, error) {
	tv := unix.NsecToTimeval(d.Nanoseconds())
	if err := unix.SetsockoptTimeval(int(x.conn.Fd()), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return "", err
	}
	return x.r.ReadString('\n')
}

// exitCode waits at most d for the exit's code; false without one.
func (x *exitRecorder) exitCode(d time.Duration) (int, bool) {
	if x == nil || x.conn == nil {
		return 0, false
	}
	defer x.close()
	line, err := x.readLine(d)
	if err != nil || !strings.HasPrefix(line, "X ") {
		return 0, false
	}
	code, err := strconv.Atoi(strings.TrimSpace(line[2:]))
	return code, err == nil
}

func (x *exitRecorder) close() {
	if x != nil && x.conn != nil {
		x.conn.Close()
		x.conn = nil
	}
}

func waitCtx(ctx context.Context, rc runtime.Container, d time.Duration) {
	deadline := time.Now().Add(d)
	for rc.Status() != runtime.StatusStopped && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// waitRecorded waits until the record no longer says running (the monitor
// or whoever reconciles has recorded the exit).
func (e *Engine) waitRecorded(ctx context.Context, id string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		changed := e.Changed()
		c, err := e.get(ctx, id)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}
		if !isRunning(c) || !alive(c.State.MonitorPid, c.State.MonitorStart) {
			_, err := e.refresh(ctx, c)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("container %s: the exit was not recorded within %s: %w", ShortID(id), d, ErrInvalidState)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Kill sends a signal to the container's main process.
func (e *Engine) Kill(ctx context.Context, ref string, sig unix.Signal) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
		return fmt.Errorf("cannot kill container %s: it is not running: %w", c.Name, ErrInvalidState)
	}
	switch sig {
	case unix.SIGKILL, unix.SIGTERM, unix.SIGINT, unix.SIGQUIT:
		if _, err := e.update(ctx, c.ID, func(r *Container) error { r.State.StopRequested = true; return nil }); err != nil {
			return err
		}
	}
	rc, err := e.driver.Load(ctx, c.ID)
	if err != nil {
		return err
	}
	if err := rc.Signal(sig, false); err != nil {
		return err
	}
	e.emit(c, "kill", map[string]string{"signal": strconv.Itoa(int(sig))})
	return nil
}

// Wait blocks until the container is not running and returns its exit
// code (a container removed meanwhile: the last code seen).
func (e *Engine) Wait(ctx context.Context, ref string) (int, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return 0, err
	}
	id, last := c.ID, c.State.ExitCode
	sleep := time.Millisecond
	for {
		changed := e.Changed()
		c, err := e.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return last, nil
		}
		if err != nil {
			return 0, err
		}
		last = c.State.ExitCode
		if c.State.Status == StatusExited || c.State.Status == StatusDead {
			// refresh derives an exit from the exit file while the
			// monitor's handler may still be recording it: wait for the
			// record, so that every verb after wait sees the container
			// exited (`docker wait X && docker rm X`).
			if err := e.waitExitRecorded(ctx, id, c.State.StartedAt); err != nil {
				return 0, err
			}
			return c.State.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-changed:
		case <-time.After(sleep):
		}
		sleep = min(2*sleep, 50*time.Millisecond)
	}
}

// waitExitRecorded waits until the record no longer says that the run
// that started at startedAt goes on: its exit is recorded (exited,
// restarting, or a new run), the record is gone, or its monitor died (and
// refresh reconciles it).
func (e *Engine) waitExitRecorded(ctx context.Context, id string, startedAt time.Time) error {
	for {
		changed := e.Changed()
		c, err := e.get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case c.State.Status != StatusRunning && c.State.Status != StatusPaused, !c.State.StartedAt.Equal(startedAt):
			return nil
		case !alive(c.State.MonitorPid, c.State.MonitorStart):
			_, err := e.refresh(ctx, c)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Restart stops (if running) and starts a container, detached.
func (e *Engine) Restart(ctx context.Context, ref string, timeout *int) error {
	return e.RestartWith(ctx, ref, StopOptions{Timeout: timeout})
}

// RestartWith is Restart with stop's options. Its events are docker's:
// those of the stop and the start, then "restart" (compose's event
// monitor tells a restart from an exit by it).
func (e *Engine) RestartWith(ctx context.Context, ref string, o StopOptions) error {
	if err := e.StopWith(ctx, ref, o); err != nil {
		return err
	}
	st, err := e.Start(ctx, ref, nil)
	if err != nil {
		return err
	}
	e.emit(st.Container, "restart", nil)
	return nil
}

// Rename gives a container a new name.
func (e *Engine) Rename(ctx context.Context, ref, name string) error {
	name = strings.TrimPrefix(name, "/")
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed: %w", name, ErrInvalid)
	}
	c, err := e.get(ctx, ref)
	if err != nil {
		return err
	}
	renamed, err := e.update(ctx, c.ID, func(r *Container) error { r.Name = name; return nil })
	if err != nil {
		return err
	}
	e.emit(renamed, "rename", map[string]string{"oldName": "/" + c.Name})
	if len(renamed.NetworkSettings.Endpoints) > 0 && onUserNetwork(renamed) {
		return e.syncDNS(ctx, isRunning(renamed))
	}
	return nil
}

// Pause freezes a running container; Unpause thaws it.
func (e *Engine) Pause(ctx context.Context, ref string) error { return e.setPaused(ctx, ref, true) }

// Unpause thaws a paused container.
func (e *Engine) Unpause(ctx context.Context, ref string) error { return e.setPaused(ctx, ref, false) }

func (e *Engine) setPaused(ctx context.Context, ref string, pause bool) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	want := StatusRunning
	if pause {
		want = StatusPaused
	}
	if pause && c.State.Status != StatusRunning || !pause && c.State.Status != StatusPaused {
		return fmt.Errorf("container %s is %s: %w", c.Name, c.State.Status, ErrInvalidState)
	}
	rc, err := e.driver.Load(ctx, c.ID)
	if err != nil {
		return err
	}
	if pause {
		err = rc.Pause()
	} else {
		err = rc.Resume()
	}
	if err != nil {
		return err
	}
	_, err = e.update(ctx, c.ID, func(r *Container) error {
		if isRunning(r) {
			r.State.setStatus(want)
		}
		return nil
	})
	if err == nil {
		e.emit(c, map[bool]string{true: "pause", false: "unpause"}[pause], nil)
	}
	return err
}

// deleteRuntime removes the driver's state of a container, killing what
// still runs (and what a create its creator never finished left).
func (e *Engine) deleteRuntime(ctx context.Context, id string) error {
	return e.driver.Delete(ctx, id)
}
