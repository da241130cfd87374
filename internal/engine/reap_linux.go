//go:build linux

package engine

import (
	"errors"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// reapLater reaps cmd's process when it ends, for a long-lived caller
// (berth serve) whose children outlive the call that started them: the
// monitors and the name server. cmd.Wait would do it, but blocks an OS
// thread in wait4 for as long as the child lives: one thread (and its
// ~100 KB) per running container. The exit is awaited instead on a pidfd
// through the runtime's poller, and only the reaping is a system call.
func reapLater(cmd *exec.Cmd) {
	fd, err := unix.PidfdOpen(cmd.Process.Pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		// No pidfds (a kernel before 5.3): a thread per child.
		go cmd.Wait()
		return
	}
	pidfd := os.NewFile(uintptr(fd), "pidfd")
	conn, err := pidfd.SyscallConn()
	if err != nil {
		pidfd.Close()
		go cmd.Wait()
		return
	}
	go func() {
		defer pidfd.Close()
		// Called once now, then each time the pidfd turns readable
		// (the process has ended), until it is reaped.
		conn.Read(func(fd uintptr) bool {
			var info unix.Siginfo
			err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG, nil)
			if errors.Is(err, unix.EINTR) {
				return false
			}
			return err != nil || info.Signo != 0
		})
		// Reaped: what os.Process holds of it (its own pidfd) goes.
		cmd.Process.Release()
	}()
}
