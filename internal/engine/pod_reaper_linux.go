package engine

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/berth-dev/berth/internal/network/netns"
	"golang.org/x/sys/unix"
)

// A pod that shares one PID namespace among its containers needs a
// process to hold it: a PID namespace ends with its init. That process
// is the pod's reaper, this binary as `berth system pod-reaper`, PID 1
// of the new namespace: it reaps the orphans the containers leave (as
// an init must) and does nothing else. It runs in a session of its own,
// so that it outlives the berth command or server that started it; the
// pod's record keeps its pid and start time, and killing it ends every
// process of the namespace (the kernel's rule for a PID namespace's
// init).

// PodReaper is the reaper's body: it never returns.
func PodReaper() {
	// PID 1 of a namespace gets only the signals it handles; it
	// handles none but SIGCHLD, so only SIGKILL from outside ends it.
	signal.Ignore(unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPIPE)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGCHLD)
	for {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if pid <= 0 || err != nil {
				break
			}
		}
		<-ch
	}
}

// startPodReaper starts the pod's reaper in a new PID namespace and pins
// that namespace at <state>/pods/<id>/pid.
func (e *Engine) startPodReaper(p *Pod) (pid int, start uint64, err error) {
	cmd := exec.Command(e.opts.Exe, "system", "pod-reaper")
	cmd.Args[0] = "berth-pod-reaper"
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if p.SharePID {
		cmd.SysProcAttr.Cloneflags |= unix.CLONE_NEWPID
	}
	if p.IDMap != nil {
		// The pod's user namespace: its containers join it, and its
		// PID namespace (if shared) is owned by it, so that their root
		// may mount /proc.
		cmd.SysProcAttr.Cloneflags |= unix.CLONE_NEWUSER | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS
		for _, m := range p.IDMap.UIDs {
			cmd.SysProcAttr.UidMappings = append(cmd.SysProcAttr.UidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		for _, m := range p.IDMap.GIDs {
			cmd.SysProcAttr.GidMappings = append(cmd.SysProcAttr.GidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		cmd.SysProcAttr.GidMappingsEnableSetgroups = true
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("pod %s: start the process that holds its PID namespace: %w", p.Name, err)
	}
	pid = cmd.Process.Pid
	start = procStart(pid)
	if e.opts.Reap {
		reapLater(cmd)
	} else {
		cmd.Process.Release()
	}
	parent := filepath.Join(e.opts.State, "pods")
	if p.SharePID {
		if err := netns.PinPID(parent, p.ID, pid); err != nil {
			unix.Kill(pid, unix.SIGKILL)
			return 0, 0, err
		}
	}
	if p.IDMap != nil {
		for _, kind := range []string{"user", "ipc", "uts"} {
			if err := netns.PinOf(parent, p.ID, pid, kind); err != nil {
				unix.Kill(pid, unix.SIGKILL)
				netns.UnpinPID(e.podStateDir(p.ID))
				netns.UnpinUser(e.podStateDir(p.ID))
				netns.UnpinIPCUTS(e.podStateDir(p.ID))
				return 0, 0, err
			}
		}
	}
	return pid, start, nil
}

// stopPodReaper kills the pod's reaper (and with it whatever still runs
// in its PID namespace) and removes the pin.
func (e *Engine) stopPodReaper(p *Pod) error {
	if p.ReaperPid > 0 && alive(p.ReaperPid, p.ReaperStart) {
		unix.Kill(p.ReaperPid, unix.SIGKILL)
	}
	return errors.Join(netns.UnpinPID(e.podStateDir(p.ID)), netns.UnpinUser(e.podStateDir(p.ID)))
}

// podReaperAlive says whether the pod's PID namespace is usable.
func (e *Engine) podReaperAlive(p *Pod) bool {
	if p.ReaperPid <= 0 || !alive(p.ReaperPid, p.ReaperStart) {
		return false
	}
	if p.SharePID {
		if ok, _ := netns.PIDPinned(e.podStateDir(p.ID)); !ok {
			return false
		}
	}
	if p.IDMap != nil {
		if ok, _ := netns.UserPinned(e.podStateDir(p.ID)); !ok {
			return false
		}
	}
	return true
}
