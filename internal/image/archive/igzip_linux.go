package archive

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// unprivileged runs the decoder as nobody, killed with its parent.
func unprivileged() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		attr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}
	}
	return attr
}

func setPipeSize(f *os.File) {
	unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, pipeSize) // best effort: the default works too
}

func isBrokenPipe(err error) bool { return errors.Is(err, syscall.EPIPE) }
