// Package tinit is the init `berth run --init` puts in front of the
// container's command (docker's docker-init, tini): as PID 1 of the
// container it forwards the signals it gets to the command, reaps every
// orphan that the kernel re-parents to it, and exits with the command's
// exit status (128+n when a signal n killed it). The berth binary is
// bind-mounted read-only at Path and runs it when invoked under that name.
package tinit

import (
	"fmt"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// Path is where the engine mounts berth inside a container for --init.
const Path = "/sbin/berth-init"

// Name is the argv[0] base that selects this entry point.
const Name = "berth-init"

// Main runs args (after a leading "--") as the child and returns the exit
// code to leave with.
func Main(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "berth-init: no command to run")
		return 127
	}
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs)
	path := args[0]
	if lp, err := lookPath(path); err == nil {
		path = lp
	}
	proc, err := os.StartProcess(path, args, &os.ProcAttr{Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}, Env: os.Environ()})
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-init: %v\n", err)
		if os.IsNotExist(err) {
			return 127
		}
		return 126
	}
	child := proc.Pid
	exited := make(chan int, 1)
	go func() {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, 0, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				exited <- 255
				return
			}
			if pid == child {
				if ws.Signaled() {
					exited <- 128 + int(ws.Signal())
				} else {
					exited <- ws.ExitStatus()
				}
				return
			}
		}
	}()
	for {
		select {
		case code := <-exited:
			return code
		case s := <-sigs:
			sig, ok := s.(unix.Signal)
			if !ok || sig == unix.SIGCHLD || sig == unix.SIGURG {
				continue
			}
			unix.Kill(child, sig)
		}
	}
}

// lookPath finds a command in PATH as execvp would.
func lookPath(file string) (string, error) {
	for _, c := range file {
		if c == '/' {
			return file, nil
		}
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	start := 0
	for i := 0; i <= len(path); i++ {
		if i == len(path) || path[i] == ':' {
			dir := path[start:i]
			start = i + 1
			if dir == "" {
				dir = "."
			}
			p := dir + "/" + file
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", os.ErrNotExist
}
