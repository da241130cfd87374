package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/proc"
	"github.com/berth-dev/berth/internal/runtime"
)

// A pod as one VM (the CRI's "vm" runtime handler, `berth pod create
// --isolation vm`): the pod's VM boots when the pod is made, in the
// pod's network namespace, with no container; each container of the
// pod then runs in that VM.
//
// What runs where:
//
//	host                                             guest (one per pod)
//	 berth-vmm POD-DIR (the pod's shim, its own session)
//	  ├ qemu-system-x86_64 ── virtio-serial ───────> the agent (PID 1)
//	  └ virtiofsd: POD-DIR/shared ── virtio-fs ────> /run/berth/shared
//	 berth-monitor (per container)                     ├ <id>: the container's root
//	  └ berth-vmm DIR (the container's shim) ─┐        └ <id>.m0 ...: its volumes
//	     pod.sock: its frames, multiplexed ───┘
//
// A container's root file system and volumes cannot come as disks: the
// VM's virtio-mmio transports are fixed at boot and microvm has no
// hot-plug. They come over the pod's share instead. Its directory on
// the host, POD-DIR/shared, is a bind mount of itself made shared before
// virtiofsd starts, so virtiofsd's mount namespace (a slave of it) sees
// what the host mounts there later: each container's shim, as it
// starts, bind-mounts the root file system the engine mounted for it
// (its bundle's rootfs, an overlay of the image's layers and the
// container's writable layer, as for a linux container) at
// shared/<id>, and each volume at shared/<id>.mN; it unmounts them when
// it ends, and the driver's Delete unmounts what a killed shim left.
// The guest sees the whole share: a pod is one trust domain.
//
// The container's shim is the same shim as a VM container's, with its
// conversation going to the pod's shim (pod.sock) instead of a VM of its
// own: it joins under the container's ID, then speaks the agent's
// protocol; the pod's shim names the container in every frame it
// forwards (agent.Frame.Container), gives each forwarded request an ID
// of the VM's channel and routes the reply back, and routes the
// container's output and exit frames to it. So create, start, stdio,
// terminals, signals, exec, stats and top work for a pod's container as
// for a VM container. When the container's shim goes (its container
// exited, or it was killed), the pod's shim has the agent delete the
// container in the guest; a container of that name may then join again
// (a restart).
//
// Lock order in the pod's shim: podMux.mu alone (never held across a
// write to the agent or a member).

// Files in a pod VM's directory.
const podSocket = "pod.sock"

// typeJoin is a container shim's first frame to the pod's shim (a
// host-side frame: the agent never sees it).
const typeJoin = "join"

// memberRequests are the requests a pod's container may make of the
// agent: never the VM's own (hello, sandbox, resume, poweroff).
var memberRequests = map[string]bool{
	agent.TypeCreate: true, agent.TypeStart: true, agent.TypeExec: true, agent.TypeSignal: true,
	agent.TypeStdin: true, agent.TypeCloseStdin: true, agent.TypeResize: true,
	agent.TypeStats: true, agent.TypeTop: true, agent.TypeDelete: true,
}

// member is one container shim connected to the pod's shim.
type member struct {
	name string
	conn *agent.Conn
	// deleted: it asked for its container's delete itself.
	deleted atomic.Bool
	// out holds what the VM sends it, written by a goroutine of its
	// own: a container whose shim reads slowly (its log consumer
	// stalls) holds up the VM's channel only once memberQueue frames
	// wait for it, not at once (and two containers feeding each other,
	// exec A | exec -i B, do not deadlock). done ends the writer.
	out  chan *agent.Frame
	done chan struct{}
}

// memberQueue bounds the frames waiting for one container's shim (at
// most agent.ChunkSize of output each).
const memberQueue = 256

func newMember(name string, conn *agent.Conn) *member {
	m := &member{name: name, conn: conn, out: make(chan *agent.Frame, memberQueue), done: make(chan struct{})}
	go func() {
		for {
			select {
			case f := <-m.out:
				m.conn.Write(f)
			case <-m.done:
				return
			}
		}
	}()
	return m
}

// send queues f for the member; once it left, f is dropped.
func (m *member) send(f *agent.Frame) {
	select {
	case m.out <- f:
	case <-m.done:
	}
}

type route struct {
	m  *member
	id uint64
}

// podMux is the pod's shim's table of its containers' conversations.
type podMux struct {
	mu      sync.Mutex
	members map[string]*member
	routes  map[uint64]route
}

// joinWait bounds how long a container waits for its name to be free
// (its previous run's delete still going on).
var joinWait = 10 * time.Second

func (p *podMux) add(m *member) error {
	deadline := time.Now().Add(joinWait)
	for {
		p.mu.Lock()
		if p.members[m.name] == nil {
			p.members[m.name] = m
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			return fmt.Errorf("container %s is in the pod's VM already", m.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reply hands a reply to the member whose request it answers, under the
// member's own ID; false if it answers none.
func (p *podMux) reply(f *agent.Frame) bool {
	p.mu.Lock()
	r, ok := p.routes[f.ID]
	delete(p.routes, f.ID)
	p.mu.Unlock()
	if !ok {
		return false
	}
	f.ID = r.id
	r.m.send(f)
	return true
}

// event hands an output or exit frame to its container's shim.
func (p *podMux) event(f *agent.Frame) {
	p.mu.Lock()
	m := p.members[f.Container]
	p.mu.Unlock()
	if m != nil {
		m.send(f)
	}
}

// runPod is the pod's shim: it boots the VM with the pod's network and
// share, reports ready and serves the pod's containers until it is told
// to stop (SIGTERM, SIGINT or SIGHUP: the VM powers off) or the VM ends.
func (s *shim) runPod(ctl *os.File, sigs <-chan os.Signal, fail func(error) int) int {
	s.pod = &podMux{members: map[string]*member{}, routes: map[uint64]route{}}
	// Its own record at once: a creator killed before it wrote it must
	// not leave a VM its deletion cannot find.
	if st, err := json.Marshal(state{ShimPid: os.Getpid(), ShimStart: proc.StartTime(os.Getpid())}); err == nil {
		os.WriteFile(stateFile, st, 0o600)
	}
	if err := s.boot(); err != nil {
		s.kill()
		return fail(err)
	}
	defer s.kill()
	os.Remove(podSocket)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: podSocket, Net: "unix"})
	if err != nil {
		s.poweroff()
		return fail(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			go s.serveMember(c)
		}
	}()
	os.WriteFile(runningFile, nil, 0o600)
	fmt.Fprintf(ctl, "%s\n", ctlReady)
	ctl.Close()
	for {
		select {
		case sig := <-sigs:
			if sig == unix.SIGTERM || sig == unix.SIGINT || sig == unix.SIGHUP {
				log.Printf("%v: powering the pod's VM off", sig)
				l.Close()
				s.poweroff()
				return 0
			}
		case <-s.gone:
			l.Close()
			return s.vmGone()
		}
	}
}

// serveMember forwards one container's frames to the agent, named as
// its, until its shim goes; then has the agent delete the container
// (unless it asked itself).
func (s *shim) serveMember(c *net.UnixConn) {
	defer c.Close()
	conn := agent.NewConn(c, c)
	f, err := conn.Read()
	if err != nil {
		return
	}
	refuse := func(f *agent.Frame, err error) {
		conn.Write(&agent.Frame{Type: agent.TypeReply, ID: f.ID, Error: err.Error()})
	}
	if f.Type != typeJoin || f.Container == "" || agent.CheckContainerName(f.Container) != nil {
		refuse(f, fmt.Errorf("%w: a pod's container joins first, by a name of its own", agent.ErrMalformed))
		return
	}
	m := newMember(f.Container, conn)
	if err := s.pod.add(m); err != nil {
		close(m.done)
		refuse(f, err)
		return
	}
	conn.Write(&agent.Frame{Type: agent.TypeReply, ID: f.ID})
	log.Printf("container %s joined", m.name)
	defer s.leave(m)
	for {
		f, err := conn.Read()
		if err != nil {
			if agent.Recoverable(err) {
				refuse(&agent.Frame{}, err)
				continue
			}
			return
		}
		if !memberRequests[f.Type] || f.ID == 0 {
			refuse(f, fmt.Errorf("%w: request %q from a pod's container", agent.ErrMalformed, f.Type))
			continue
		}
		if f.Type == agent.TypeDelete {
			m.deleted.Store(true)
		}
		id := s.nextID.Add(1)
		s.pod.mu.Lock()
		s.pod.routes[id] = route{m: m, id: f.ID}
		s.pod.mu.Unlock()
		own := f.ID
		f.ID, f.Container = id, m.name
		if err := s.conn.Write(f); err != nil {
			s.pod.mu.Lock()
			delete(s.pod.routes, id)
			s.pod.mu.Unlock()
			f.ID = own
			refuse(f, err)
		}
	}
}

// leave forgets a container whose shim went, after the agent deleted it.
func (s *shim) leave(m *member) {
	if !m.deleted.Load() {
		if err := s.request(&agent.Frame{Type: agent.TypeDelete, Container: m.name}); err != nil {
			log.Printf("delete container %s: %v", m.name, err)
		}
	}
	s.pod.mu.Lock()
	delete(s.pod.members, m.name)
	for id, r := range s.pod.routes {
		if r.m == m {
			delete(s.pod.routes, id)
		}
	}
	s.pod.mu.Unlock()
	close(m.done)
	log.Printf("container %s left", m.name)
}

// joinPod is a pod's container's boot: its root and volumes bound into
// the pod's share, then its conversation through the pod's shim, which
// has the agent make the container.
func (s *shim) joinPod() error {
	if err := bindShares(filepath.Join(s.cfg.PodDir, sharedDir), s.cfg.Shares); err != nil {
		unbindShares(filepath.Join(s.cfg.PodDir, sharedDir), s.cfg.Shares)
		return err
	}
	c, err := dialIn("unix", s.cfg.PodDir, podSocket)
	if err != nil {
		unbindShares(filepath.Join(s.cfg.PodDir, sharedDir), s.cfg.Shares)
		return fmt.Errorf("the pod's VM: %w (is the pod running?)", err)
	}
	conn := agent.NewConn(c, c)
	if err := conn.Write(&agent.Frame{Type: typeJoin, ID: 1, Container: s.cfg.Member}); err != nil {
		c.Close()
		return fmt.Errorf("the pod's VM: %w", err)
	}
	c.SetReadDeadline(time.Now().Add(joinWait + 5*time.Second))
	r, err := conn.Read()
	c.SetReadDeadline(time.Time{})
	if err == nil && r.Error != "" {
		err = errors.New(r.Error)
	}
	if err != nil {
		c.Close()
		return fmt.Errorf("join the pod's VM: %w", err)
	}
	s.nextID.Store(1)
	s.conn, s.sock, s.gone = conn, c, make(chan struct{})
	go s.readLoop()
	cr := s.cfg.Create
	return s.request(&agent.Frame{Type: agent.TypeCreate, Create: &cr})
}

// leavePod ends a pod's container's run: the agent deletes the container
// (bounded: a pod's VM that does not answer is going away), the
// conversation closes, the binds go.
func (s *shim) leavePod() {
	s.leaveOnce.Do(func() {
		if s.conn != nil {
			done := make(chan struct{})
			go func() {
				defer close(done)
				if err := s.request(&agent.Frame{Type: agent.TypeDelete}); err != nil {
					log.Printf("delete in the pod's VM: %v", err)
				}
			}()
			select {
			case <-done:
			case <-time.After(poweroffTimeout):
				log.Printf("no answer to the delete after %v", poweroffTimeout)
			}
			s.sock.Close()
		}
		unbindShares(filepath.Join(s.cfg.PodDir, sharedDir), s.cfg.Shares)
	})
}

// dialIn connects to the unix socket name in dir (network "unix" or
// "unixpacket"), through the directory's fd: the socket's full path may
// not fit in sun_path.
func dialIn(network, dir, name string) (*net.UnixConn, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return net.DialUnix(network, nil, &net.UnixAddr{Name: fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), name), Net: network})
}

// bindShares attaches each share's source at its stub in dir, the
// pod's share, in the calling process's mount namespace. The guest
// writes that directory (through virtiofsd), so nothing there is
// trusted: dir must be the share's mount (never the directory under it
// once a pod's deletion unmounted it), each stub is made afresh
// (whatever the guest left at its name is removed, never followed), and
// the bind is made detached (open_tree), read-only there first when the
// share is, then moved onto the stub through its fd: a copy that reaches
// virtiofsd's namespace is already as it must be (a remount would not
// propagate).
func bindShares(dir string, shares []share) error {
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("the pod's share: %w", err)
	}
	defer unix.Close(dfd)
	var stx unix.Statx_t
	if err := unix.Statx(dfd, "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS, &stx); err != nil {
		return fmt.Errorf("the pod's share: %w", err)
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 || stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return fmt.Errorf("the pod's share %s is not mounted (the pod's VM is going): %w", dir, runtime.ErrInvalidStatus)
	}
	for _, sh := range shares {
		if err := bindShareAt(dfd, sh); err != nil {
			return err
		}
	}
	return nil
}

// bindShareAt makes sh's stub in the directory dfd and moves a detached
// bind of its source onto it.
func bindShareAt(dfd int, sh share) error {
	name := sh.Name
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return fmt.Errorf("share entry %q: %w", name, runtime.ErrInvalidArgument)
	}
	// What is there goes: a guest's file, link or empty directory (a
	// directory it filled is an error, not followed).
	if err := unix.Unlinkat(dfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		if err := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("share entry %s: clear its name: %w", name, err)
		}
	}
	want := uint32(unix.S_IFREG)
	if sh.Dir {
		want = unix.S_IFDIR
		if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
			return fmt.Errorf("share entry %s: %w", name, err)
		}
	} else {
		fd, err := unix.Openat(dfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("share entry %s: %w", name, err)
		}
		unix.Close(fd)
	}
	stub, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("share entry %s: %w", name, err)
	}
	defer unix.Close(stub)
	var st unix.Stat_t
	if err := unix.Fstat(stub, &st); err != nil || st.Mode&unix.S_IFMT != want {
		return fmt.Errorf("share entry %s: replaced under the host (mode %o): %w", name, st.Mode, runtime.ErrInvalidStatus)
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, sh.Source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("bind %s: %w", sh.Source, err)
	}
	defer unix.Close(tree)
	// Private (a clone stays a peer of its source: what the host mounts
	// under the source later would reach the guest, writable), and
	// read-only when the share is.
	attr := unix.MountAttr{Propagation: unix.MS_PRIVATE}
	if sh.ReadOnly {
		attr.Attr_set = unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return fmt.Errorf("bind %s: make it private%s: %w", sh.Source, map[bool]string{true: " and read-only"}[sh.ReadOnly], err)
	}
	if err := unix.MoveMount(tree, "", stub, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("bind %s into the pod's share: %w", sh.Source, err)
	}
	return nil
}

// bindShare binds a share's source onto its stub, read-only if it says
// so (in virtiofsd's own namespace, before it starts: nothing of the
// guest's is there yet).
func bindShare(sh share, stub string) error {
	if err := unix.Mount(sh.Source, stub, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", sh.Source, err)
	}
	if sh.ReadOnly {
		// A bind's remount keeps the flags of the mount it came from
		// (nosuid, nodev, noexec may be locked).
		var st unix.Statfs_t
		unix.Statfs(stub, &st)
		flags := uintptr(unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY) | uintptr(st.Flags)&(unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_NOATIME|unix.MS_RELATIME)
		if err := unix.Mount("", stub, "", flags, ""); err != nil {
			return fmt.Errorf("make %s read-only: %w", sh.Source, err)
		}
	}
	return nil
}

// unbindShares undoes bindShares: every mount on each stub goes (never
// through a link: a mount point cannot be replaced, and a name that is
// not one is left to the removal), then the stub, whatever it is now
// (never what was mounted on it).
func unbindShares(dir string, shares []share) error {
	var errs []error
	for _, sh := range shares {
		stub := filepath.Join(dir, sh.Name)
		for i := 0; i < 16 && isMountPoint(stub); i++ {
			if err := unix.Unmount(stub, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w", stub, err))
				break
			}
		}
		if !isMountPoint(stub) {
			if err := unix.Unlink(stub); err != nil {
				unix.Rmdir(stub)
			}
		}
	}
	return errors.Join(errs...)
}

// isMountPoint reports whether p is a mount point of this mount
// namespace.
func isMountPoint(p string) bool {
	return len(mountsUnder(p, true)) > 0
}

// mountsUnder lists the mount points at or under dir (exact: only dir
// itself) in this mount namespace.
func mountsUnder(dir string, exact bool) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || !exact && strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// podDir is the pod VM's directory.
func (d *Driver) podDir(id string) (string, error) {
	if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
		return "", fmt.Errorf("pod id %q: %w", id, runtime.ErrInvalidArgument)
	}
	return filepath.Join(d.State, "pods", id), nil
}

// CreateSandbox boots the pod's VM in the pod's network namespace, with
// its host name and the pod's share, and returns once its agent is
// ready; what a killed earlier attempt left is removed first. The VM
// lives in a session of its own, apart from the caller's.
func (d *Driver) CreateSandbox(ctx context.Context, id string, o runtime.SandboxOptions) (retErr error) {
	dir, err := d.podDir(id)
	if err != nil {
		return err
	}
	if _, err := FindVirtiofsd(); err != nil {
		return err
	}
	spec := &specs.Spec{Linux: &specs.Linux{Resources: o.Resources, CgroupsPath: o.CgroupsPath}}
	m, err := d.machine(ctx, spec)
	if err != nil {
		return err
	}
	m.RunAs = o.HelperUser
	m.Share = true
	create := agent.Create{Hostname: o.Hostname, Share: shareTag, SharePID: o.SharePID, ShmSize: o.ShmSize}
	if relay := loopbackNameservers(o.ResolvConf); len(relay) > 0 && o.Netns != "" {
		create.Network = &agent.Network{DNSRelay: relay}
	}
	if err := d.DeleteSandbox(ctx, id); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			d.DeleteSandbox(context.WithoutCancel(ctx), id)
		}
	}()
	timeout := tcgBootTimeout
	if m.Accel == AccelKVM {
		timeout = kvmBootTimeout
	}
	vc := &vmConfig{Machine: *m, Create: create, BootTimeout: timeout, Netns: o.Netns, Pod: true, Cgroup: newHostCgroup("pod-"+id, spec, m)}
	cfg, err := json.Marshal(vc)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, configFile), cfg, 0o600); err != nil {
		return err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	theirs := os.NewFile(uintptr(fds[1]), "ctl")
	ours := os.NewFile(uintptr(fds[0]), "ctl")
	defer ours.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		theirs.Close()
		return err
	}
	defer devnull.Close()
	cmd := &exec.Cmd{
		Path:        shimExecutable(ctx),
		Args:        []string{ShimName, dir},
		Stdin:       devnull,
		Stdout:      devnull,
		Stderr:      devnull,
		ExtraFiles:  []*os.File{theirs},
		Env:         []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		return fmt.Errorf("pod %s: start its VM's shim: %w", id, err)
	}
	// Reaped here while this process lives (a daemon's); it outlives a
	// CLI that made it.
	go cmd.Wait()
	st, _ := json.Marshal(state{ShimPid: cmd.Process.Pid, ShimStart: proc.StartTime(cmd.Process.Pid)})
	if err := os.WriteFile(filepath.Join(dir, stateFile), st, 0o600); err != nil {
		cmd.Process.Kill()
		return err
	}
	ours.SetReadDeadline(time.Now().Add(timeout + 10*time.Second))
	line, err := bufio.NewReader(ours).ReadString('\n')
	if msg, ok := strings.CutPrefix(line, ctlError+" "); ok {
		return fmt.Errorf("pod %s: its VM: %s", id, strings.TrimSpace(msg))
	}
	if strings.TrimSpace(line) != ctlReady {
		return fmt.Errorf("pod %s: its VM's shim ended before the guest came up (%v); see %s", id, err, filepath.Join(dir, shimLog))
	}
	return nil
}

// SandboxReady reports whether the pod's VM runs.
func (d *Driver) SandboxReady(_ context.Context, id string) bool {
	dir, err := d.podDir(id)
	if err != nil {
		return false
	}
	st, err := readState(dir)
	if err != nil || st.ShimPid <= 0 || proc.StartTime(st.ShimPid) != st.ShimStart {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, runningFile))
	return err == nil
}

func readState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// sandboxStopWait bounds a pod VM's clean power-off before its shim is
// killed.
const sandboxStopWait = poweroffTimeout + 2*time.Second

// DeleteSandbox powers the pod's VM off (its containers end with it),
// kills what is left, and removes its directory; a pod without a VM is
// no error. Nothing mounted under the directory is ever removed: a
// mount that will not go is an error.
func (d *Driver) DeleteSandbox(_ context.Context, id string) error {
	dir, err := d.podDir(id)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	// Not ready from here on: a container's start finds the pod going
	// (and its binds find the share unmounted).
	os.Remove(filepath.Join(dir, runningFile))
	if st, err := readState(dir); err == nil && st.ShimPid > 0 && proc.StartTime(st.ShimPid) == st.ShimStart {
		unix.Kill(st.ShimPid, unix.SIGTERM)
		deadline := time.Now().Add(sandboxStopWait)
		for proc.StartTime(st.ShimPid) == st.ShimStart && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if proc.StartTime(st.ShimPid) == st.ShimStart {
			unix.Kill(st.ShimPid, unix.SIGKILL)
			for i := 0; i < 250 && proc.StartTime(st.ShimPid) == st.ShimStart; i++ {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "qemu.pid")); err == nil {
		var pid int
		fmt.Sscan(string(b), &pid)
		if pid > 0 && isQEMU(pid, dir) {
			unix.Kill(pid, unix.SIGKILL)
		}
		// Gone before anything is removed: the guest writes the share
		// through it (and virtiofsd, which dies with the shim) until
		// then.
		for i := 0; i < 250 && pid > 0 && isQEMU(pid, dir); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	shared := filepath.Join(dir, sharedDir)
	for i := 0; i < 16 && isMountPoint(shared); i++ {
		if err := unix.Unmount(shared, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("pod %s: unmount its share: %w", id, err)
		}
	}
	if left := mountsUnder(dir, false); len(left) > 0 {
		return fmt.Errorf("pod %s: still mounted under its VM's directory: %s", id, strings.Join(left, ", "))
	}
	if err := destroyHostCgroup(dir); err != nil {
		return fmt.Errorf("pod %s: %w", id, err)
	}
	// No mount can appear under it now (binds refuse a share that is
	// not mounted, and land in the detached one if it went after their
	// check), and nothing of the guest's writes there: RemoveAll
	// neither follows links nor fails on depth.
	return os.RemoveAll(dir)
}

// memberConfig is the shim's configuration of a container of a pod's
// VM: its root file system (the bundle's, which the engine mounted) and
// its volumes bound into the pod's share under names of its own, the
// pod's /dev/shm the VM's.
func (d *Driver) memberConfig(id string, spec *specs.Spec, o runtime.CreateOptions, process agent.Process) (*vmConfig, error) {
	podDir, err := d.podDir(o.Sandbox)
	if err != nil {
		return nil, err
	}
	if o.FilesOnly {
		return nil, fmt.Errorf("container %s of a pod's VM: its files without its pod: %w", id, runtime.ErrNotSupported)
	}
	if !d.SandboxReady(context.Background(), o.Sandbox) {
		return nil, fmt.Errorf("container %s: its pod's VM is not running: start the pod: %w", id, runtime.ErrInvalidStatus)
	}
	for i := range spec.Mounts {
		if m := &spec.Mounts[i]; m.Destination == "/dev/shm" && isBind(m) {
			m.Source = agent.PodShmDir
		}
	}
	shares, err := shareMountsNamed(spec, id+".m")
	if err != nil {
		return nil, err
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return nil, fmt.Errorf("bundle %s: no root file system: %w", o.Bundle, runtime.ErrInvalidArgument)
	}
	root := spec.Root.Path
	if !filepath.IsAbs(root) {
		root = filepath.Join(o.Bundle, root)
	}
	shares = append([]share{{Source: root, Name: id, Dir: true}}, shares...)
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	process.OCI = b
	create := agent.Create{Root: agent.SharedDir + "/" + id, Process: process, Files: engineFiles(spec)}
	return &vmConfig{Create: create, BootTimeout: 30 * time.Second, PodDir: podDir, Member: id, Shares: shares}, nil
}
