package linux

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// openConsoleSocket connects to --console-socket; the connection goes to
// the init, which sends the pty master over it.
func openConsoleSocket(opts CreateOptions) (*os.File, error) {
	if opts.Console != nil {
		return opts.Console, nil
	}
	if opts.ConsoleSocket == "" {
		return nil, nil
	}
	return dialConsoleSocket(opts.ConsoleSocket)
}

func dialConsoleSocket(path string) (*os.File, error) {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("connect to --console-socket %s: %w", path, err)
	}
	defer conn.Close()
	f, err := conn.File()
	if err != nil {
		return nil, fmt.Errorf("console socket %s: %w", path, err)
	}
	return f, nil
}

// setupConsole opens a pty in the container's devpts, sends the master to
// the console socket and returns the slave. The slave is opened with
// TIOCGPTPEER, never by its /dev/pts/N path, so a planted symlink cannot
// redirect it; for a new container it also becomes /dev/console.
func setupConsole(cfg *initConfig, r *rootfs) (*os.File, error) {
	if cfg.ConsoleFD == 0 {
		return nil, fmt.Errorf("process.terminal is true but there is no console socket")
	}
	sock := os.NewFile(uintptr(cfg.ConsoleFD), "console-socket")
	defer sock.Close()
	var master *os.File
	var err error
	if r != nil {
		var h *os.File
		h, err = openInRoot(r.root, "/dev/pts/ptmx")
		if err == nil {
			master, err = reopen(h, unix.O_RDWR|unix.O_NOCTTY)
			h.Close()
		}
	} else {
		master, err = os.OpenFile("/dev/pts/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			master, err = os.OpenFile("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open the container's /dev/pts/ptmx (process.terminal needs a devpts mount on /dev/pts): %w", err)
	}
	defer master.Close()
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(master.Fd()), &sfs); err != nil || sfs.Type != unix.DEVPTS_SUPER_MAGIC {
		return nil, fmt.Errorf("the container's /dev/pts/ptmx is not on a devpts filesystem")
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return nil, fmt.Errorf("unlock pty: %w", err)
	}
	// process.consoleSize: the size the process sees from its start.
	if p := cfg.Process; p != nil && p.ConsoleSize != nil && p.ConsoleSize.Height > 0 && p.ConsoleSize.Width > 0 {
		ws := &unix.Winsize{Row: uint16(min(p.ConsoleSize.Height, 65535)), Col: uint16(min(p.ConsoleSize.Width, 65535))}
		if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws); err != nil {
			return nil, fmt.Errorf("set the console size: %w", err)
		}
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, master.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		return nil, fmt.Errorf("open pty peer (TIOCGPTPEER): %w", errno)
	}
	slave := os.NewFile(sfd, "pty-slave")
	if r != nil {
		t, err := r.target("/dev/console", true)
		if err != nil {
			slave.Close()
			return nil, fmt.Errorf("create %s: %w", r.show("/dev/console"), err)
		}
		err = unix.Mount(fdPath(slave), fdPath(t), "", unix.MS_BIND, "")
		t.Close()
		if err != nil {
			slave.Close()
			return nil, fmt.Errorf("bind the pty onto %s: %w", r.show("/dev/console"), err)
		}
	}
	rights := unix.UnixRights(int(master.Fd()))
	if err := unix.Sendmsg(int(sock.Fd()), []byte("/dev/ptmx"), rights, nil, 0); err != nil {
		slave.Close()
		return nil, fmt.Errorf("send the pty master to the console socket: %w", err)
	}
	return slave, nil
}

// useConsole makes the pty slave the controlling terminal and stdio.
func useConsole(slave *os.File) error {
	defer slave.Close()
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	if err := unix.IoctlSetInt(int(slave.Fd()), unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("make the pty the controlling terminal: %w", err)
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(int(slave.Fd()), fd, 0); err != nil {
			return fmt.Errorf("dup pty to fd %d: %w", fd, err)
		}
	}
	return nil
}

// ReceiveConsole reads a pty master sent over a console socket connection.
func ReceiveConsole(conn *net.UnixConn) (*os.File, error) {
	f, err := conn.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(f.Fd()), name, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive pty master: no file descriptor in message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("receive pty master: no file descriptor in message")
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}
