package linux

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/linux/nsexec"
)

// A create's init forked ahead (nsexec/prefork.c): when `create` or `run`
// is the sealed runtime, its C constructor reads linux.namespaces from the
// bundle and forks the init-to-be before our Go runtime starts, so the
// init's Go start-up (~2 ms) runs beside ours instead of after it. Here the
// Go side decides whether to adopt it. It does only when the process is
// exactly what spawn would otherwise exec:
//
//   - a create (not an exec), with the init moved into its cgroup late;
//   - namespaces to create equal to the ones it made, none to join, no
//     user or time namespace, no working directory or root to enter first;
//   - this binary is the init spawn would run (a seal, not a memfd copy);
//   - its end of the socket is above the descriptors the container keeps.
//
// Anything else and it is discarded (killed and reaped) and an init is
// exec'd as before. An adopted init has inherited our descriptors as they
// were at exec, so it gets its stdio and the descriptors spawn passes from
// us over the socket (sendInlineFDs), and maps the numbers in its config.

// adoptPrefork starts req's process from the forked init if there is one
// that fits; ok false means spawn must exec one.
func adoptPrefork(req *spawnRequest) (sp *spawned, ok bool, err error) {
	pre := nsexec.TakePrefork()
	if pre == nil {
		return nil, false, nil
	}
	if why := preforkMismatch(req, pre); why != "" {
		tracePhase("prefork-discarded")
		discardPrefork(pre)
		if req.cgroupMake == "" {
			// No intermediate of the exec'd init makes the leaves
			// either. Where one does, the gate stays shut until it
			// has spoken (finishSpawn): made here meanwhile, they
			// would race its mkdirs, and it takes back a leaf it
			// made when it could not make them all.
			req.cgroupPrep.open()
		}
		return nil, false, nil
	}
	parent := os.NewFile(uintptr(pre.FD), "sync-parent")
	sp = &spawned{pid: pre.Pid, conn: newSyncConn(parent)}
	tracePhase("prefork-adopted")
	stdio := req.stdio.orDefault()
	inline := []*os.File{stdio.Stdin, stdio.Stdout, stdio.Stderr}
	req.cfg.InlineFDs = true
	req.passFiles(func(f *os.File) int {
		inline = append(inline, f)
		return len(inline) - 1
	})
	sp, err = finishSpawn(req, sp, inline)
	return sp, true, err
}

// preforkMismatch says why the forked init is not the one req needs; ""
// when it is.
func preforkMismatch(req *spawnRequest, pre *nsexec.Prefork) string {
	switch {
	case req.cfg.Kind != "create" || !req.lateCgroup || req.cgroup != nil:
		return "not a create"
	case len(req.join) > 0 || req.root != "" || req.chdir != "" || len(req.timeOffsets) > 0:
		return "namespaces to join or enter"
	case req.cloneFlags&(unix.CLONE_NEWUSER|unix.CLONE_NEWTIME) != 0:
		return "a user or time namespace"
	case req.cloneFlags != pre.Flags:
		return fmt.Sprintf("namespaces 0x%x, forked with 0x%x", req.cloneFlags, pre.Flags)
	case pre.ChildFD < 3+req.preserve:
		return "its socket is among the preserved descriptors"
	case 3+2+len(req.mountTrees) > maxInlineFDs:
		return "more descriptors than one message carries"
	}
	exe, memfd, err := initExecutable()
	if memfd != nil {
		memfd.Close()
	}
	if err != nil || memfd != nil {
		return "no sealed init"
	}
	var want, self unix.Stat_t
	if unix.Stat(exe, &want) != nil || unix.Stat("/proc/self/exe", &self) != nil || want.Dev != self.Dev || want.Ino != self.Ino {
		return "this binary is not the init"
	}
	return ""
}

// discardPrefork kills and reaps a forked init that is not adopted: it
// waits for the line that names the init (or the error of the process
// that was to fork it), so nothing is left behind.
func discardPrefork(pre *nsexec.Prefork) {
	f := os.NewFile(uintptr(pre.FD), "sync-prefork")
	defer f.Close()
	conn := newSyncConn(f)
	var made []string
	for {
		line, err := conn.readLine()
		if err != nil {
			break
		}
		if dir, ok := strings.CutPrefix(line, "cgroup-made "); ok {
			made = append(made, dir)
			continue
		}
		if line == "cgroup-in" {
			continue
		}
		if strings.HasPrefix(line, "pid ") {
			if pid, err := strconv.Atoi(line[4:]); err == nil && pid > 0 && pid != pre.Pid {
				unix.Kill(pid, unix.SIGKILL)
				var ws unix.WaitStatus
				unix.Wait4(pid, &ws, 0, nil)
			}
		}
		break
	}
	unix.Kill(pre.Pid, unix.SIGKILL)
	var ws unix.WaitStatus
	unix.Wait4(pre.Pid, &ws, 0, nil)
	// The leaves its intermediate made for the init, empty now.
	removeMadeCgroups(made, nil)
}

// maxInlineFDs is the most descriptors sendInlineFDs passes: the kernel
// takes at most 253 in one message (SCM_MAX_FD).
const maxInlineFDs = 253

// DiscardUnusedPrefork kills and reaps a forked init that nothing took,
// and removes the cgroup leaves made for it: a create that failed before
// it needed its init, a command whose flags failed before it ran (the
// runtime's CLI calls it last), or a command that is not a create after
// all. Without it the process would hold the caller's stdio until we exit.
// A no-op when the forked init was taken or there was none.
func DiscardUnusedPrefork() {
	if pre := nsexec.TakePrefork(); pre != nil {
		discardPrefork(pre)
	}
}

// sendInlineFDs passes files to a forked init: one byte carrying them.
func sendInlineFDs(sock *os.File, files []*os.File) error {
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	return unix.Sendmsg(int(sock.Fd()), []byte{0}, unix.UnixRights(fds...), nil, 0)
}

// receiveInlineFDs is the forked init's side of sendInlineFDs: it makes
// the first three its stdio and returns the others, close-on-exec, in
// order. The end of the socket (the runtime went away or did not adopt
// us) comes back as errPreforkUnused.
func receiveInlineFDs(sock int) ([]int, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(maxInlineFDs*4))
	n, oobn, flags, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if (err == nil && n == 0) || errors.Is(err, unix.ECONNRESET) {
		// The runtime closed its end (with the intermediate's line unread
		// when it exited early): it did not adopt us.
		return nil, errPreforkUnused
	}
	if err != nil {
		return nil, fmt.Errorf("receive descriptors: %w", err)
	}
	if flags&unix.MSG_CTRUNC != 0 {
		return nil, fmt.Errorf("receive descriptors: more than %d", maxInlineFDs)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("receive descriptors: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		rights, err := unix.ParseUnixRights(&m)
		if err != nil {
			return nil, fmt.Errorf("receive descriptors: %w", err)
		}
		fds = append(fds, rights...)
	}
	if len(fds) < 3 {
		return nil, fmt.Errorf("receive descriptors: got %d, want stdio and more", len(fds))
	}
	for i := 0; i < 3; i++ {
		if err := unix.Dup3(fds[i], i, 0); err != nil {
			return nil, fmt.Errorf("make descriptor %d stdio: %w", i, err)
		}
		unix.Close(fds[i])
	}
	return fds[3:], nil
}

// mapInlineFDs replaces the indexes a forked init's config holds with the
// descriptors it received.
func (cfg *initConfig) mapInlineFDs(fds []int) error {
	at := func(i int) (int, error) {
		if i < 3 || i >= 3+len(fds) {
			return -1, fmt.Errorf("config names descriptor %d of %d received", i, 3+len(fds))
		}
		return fds[i-3], nil
	}
	var err error
	if cfg.FifoFD != 0 {
		if cfg.FifoFD, err = at(cfg.FifoFD); err != nil {
			return err
		}
	}
	if cfg.ConsoleFD != 0 {
		if cfg.ConsoleFD, err = at(cfg.ConsoleFD); err != nil {
			return err
		}
	}
	for k, i := range cfg.MountTrees {
		if cfg.MountTrees[k], err = at(i); err != nil {
			return err
		}
	}
	return nil
}
