package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/log"
	"github.com/berth-dev/berth/internal/proc"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/linux"
)

// Driver runs each container in its own QEMU microVM. Cache keeps what
// VMs share and is made once (the initramfs, the layers' EROFS images,
// the KVM verdict); State keeps one directory per VM.
type Driver struct {
	Cache, State string
}

// NewDriver returns the VM driver with its caches under cache (on
// persistent storage: <root>/vm) and its VMs' state under state.
func NewDriver(cache, state string) *Driver { return &Driver{Cache: cache, State: state} }

var _ runtime.Driver = (*Driver)(nil)

// Name is "vm".
func (d *Driver) Name() string { return "vm" }

// Guest sizes for step 1 (a memory limit in the spec raises the memory).
const (
	defaultMemoryMiB = 256
	tcgBootTimeout   = 90 * time.Second
	kvmBootTimeout   = 20 * time.Second
)

// Availability says whether VMs can run here, and with which accelerator.
type Availability struct {
	// Available is false when the kernel or QEMU is missing (Reason).
	Available bool
	// Accel is "kvm" or "tcg"; Reason says why not KVM, or why nothing.
	Accel, Reason string
	Kernel, QEMU  string
}

// Available reports what the driver would use, probing KVM (once: the
// verdict is cached) only when probe is set.
func (d *Driver) Available(ctx context.Context, probe bool) Availability {
	q, err := FindQEMU()
	if err != nil {
		return Availability{Reason: err.Error()}
	}
	k, err := FindKernel()
	if err != nil {
		return Availability{Reason: err.Error(), QEMU: q}
	}
	a := Availability{Available: true, Kernel: k.Path, QEMU: q}
	if !probe {
		return a
	}
	if err := os.MkdirAll(d.Cache, 0o700); err != nil {
		return Availability{Reason: err.Error()}
	}
	initrd, err := Initramfs(d.Cache, k)
	if err != nil {
		return Availability{Reason: err.Error(), Kernel: k.Path, QEMU: q}
	}
	p := chooseAccel(ctx, d.Cache, q, k, initrd)
	a.Accel, a.Reason = p.Accel, p.Reason
	return a
}

func (d *Driver) dir(id string) (string, error) {
	if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
		return "", fmt.Errorf("container id %q: %w", id, runtime.ErrInvalidArgument)
	}
	return filepath.Join(d.State, id), nil
}

// state is the driver's record of a VM (state.json).
type state struct {
	ShimPid   int    `json:"shimPid"`
	ShimStart uint64 `json:"shimStart"`
}

// Create boots the container's VM with its layers as disks, and has the
// agent make its root file system and prepare its process; Start runs it.
func (d *Driver) Create(ctx context.Context, id string, o runtime.CreateOptions) (_ runtime.Container, retErr error) {
	dir, err := d.dir(id)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(o.Bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", o.Bundle, err)
	}
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return nil, fmt.Errorf("bundle %s: no process: %w", o.Bundle, runtime.ErrInvalidArgument)
	}
	terminal := o.Terminal || spec.Process.Terminal
	if o.FilesOnly {
		// Booted for its files alone: no terminal or input.
		terminal = false
		o.Stdio.Stdin = nil
	}
	if o.Sandbox != "" {
		// A container of a pod's VM (pod_linux.go).
		vc, err := d.memberConfig(id, &spec, o, agent.Process{
			Args: spec.Process.Args, Env: spec.Process.Env, Cwd: spec.Process.Cwd,
			UID: spec.Process.User.UID, GID: spec.Process.User.GID, Groups: spec.Process.User.AdditionalGids,
			Stdin:    terminal || o.Stdio.Stdin != nil && !isDevNull(o.Stdio.Stdin),
			Terminal: terminal,
		})
		if err != nil {
			return nil, err
		}
		return d.launch(ctx, id, dir, vc, &spec, o, terminal)
	}
	// Volumes and bind mounts: shared over virtio-fs, their sources in
	// the spec the guest gets pointing into the share.
	shares, err := shareMounts(&spec)
	if err != nil {
		return nil, err
	}
	if len(shares) > 0 {
		if _, err := FindVirtiofsd(); err != nil {
			return nil, err
		}
		if b, err = json.Marshal(&spec); err != nil {
			return nil, err
		}
	}
	if len(o.Layers) == 0 {
		return nil, fmt.Errorf("vm isolation needs the image's layers: %w", runtime.ErrInvalidArgument)
	}
	netnsPath, err := networkNamespace(&spec)
	if err != nil {
		return nil, err
	}
	if o.FilesOnly {
		// No network: the namespace the engine attached went with the
		// container's run; a new, empty one.
		netnsPath = ""
	}
	m, err := d.machine(ctx, &spec)
	if err != nil {
		return nil, err
	}
	m.RunAs = o.HelperUser
	create := agent.Create{Hostname: spec.Hostname, Process: agent.Process{
		Args: spec.Process.Args, Env: spec.Process.Env, Cwd: spec.Process.Cwd,
		UID: spec.Process.User.UID, GID: spec.Process.User.GID, Groups: spec.Process.User.AdditionalGids,
		Stdin:    terminal || o.Stdio.Stdin != nil && !isDevNull(o.Stdio.Stdin),
		Terminal: terminal,
		// Confined twice: the guest runs it under berth's linux runtime.
		OCI: b,
	}}
	create.Files = engineFiles(&spec)
	if len(shares) > 0 {
		create.Share = shareTag
		m.Share = true
	}
	if relay := loopbackNameservers(create.Files["/etc/resolv.conf"]); len(relay) > 0 && netnsPath != "" {
		create.Network = &agent.Network{DNSRelay: relay}
	}
	if m.Disks, err = LayerDisks(ctx, d.Cache, o.Layers); err != nil {
		return nil, err
	}
	for i := range m.Disks {
		create.Layers = append(create.Layers, diskSerial(i))
	}
	if m.Upper, err = UpperDisk(ctx, o.Bundle); err != nil {
		return nil, err
	}
	create.Upper = upperSerial
	timeout := tcgBootTimeout
	if m.Accel == AccelKVM {
		timeout = kvmBootTimeout
	}
	vc := &vmConfig{Machine: *m, Create: create, BootTimeout: timeout, Netns: netnsPath, Shares: shares, Cgroup: newHostCgroup(id, &spec, m), FilesOnly: o.FilesOnly}
	if templatesEnabled() {
		vc.Templates = d.Cache
	}
	return d.launch(ctx, id, dir, vc, &spec, o, terminal)
}

// launch starts the shim of a VM container (or of a pod's container)
// with its configuration and returns once it reports its container made.
func (d *Driver) launch(ctx context.Context, id, dir string, vc *vmConfig, spec *specs.Spec, o runtime.CreateOptions, terminal bool) (_ runtime.Container, retErr error) {
	// What a killed create left is removed first.
	d.Delete(ctx, id)
	if err := os.MkdirAll(d.State, 0o700); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(dir)
		}
	}()
	cfg, err := json.Marshal(vc)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, configFile), cfg, 0o600); err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	theirs := os.NewFile(uintptr(fds[1]), "ctl")
	defer theirs.Close()
	of := os.NewFile(uintptr(fds[0]), "ctl")
	nc, err := net.FileConn(of)
	of.Close()
	if err != nil {
		return nil, err
	}
	ctl := nc.(*net.UnixConn)
	cmd := &exec.Cmd{
		Path:       shimExecutable(ctx),
		Args:       []string{ShimName, dir},
		Stdin:      o.Stdio.Stdin,
		Stdout:     o.Stdio.Stdout,
		Stderr:     o.Stdio.Stderr,
		ExtraFiles: []*os.File{theirs},
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}
	var master *os.File
	if terminal {
		// A host pty: its master is the container's console (the
		// monitor's), its slave the shim's controlling terminal, so that
		// a resize reaches the shim as SIGWINCH and goes to the guest.
		var slave *os.File
		if master, slave, err = openPty(); err != nil {
			ctl.Close()
			return nil, err
		}
		defer slave.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}
	if err := cmd.Start(); err != nil {
		ctl.Close()
		if master != nil {
			master.Close()
		}
		return nil, fmt.Errorf("start the VM shim: %w", err)
	}
	theirs.Close()
	c := &container{d: d, id: id, dir: dir, spec: spec, pid: cmd.Process.Pid, start: proc.StartTime(cmd.Process.Pid), ctl: ctl, cmd: cmd, console: master, member: vc.PodDir != ""}
	defer func() {
		if retErr != nil && master != nil {
			master.Close()
		}
	}()
	st, _ := json.Marshal(state{ShimPid: c.pid, ShimStart: c.start})
	if err := os.WriteFile(filepath.Join(dir, stateFile), st, 0o600); err != nil {
		c.abort()
		return nil, err
	}
	ctl.SetReadDeadline(time.Now().Add(vc.BootTimeout + 10*time.Second))
	c.rd = bufio.NewReader(ctl)
	line, err := c.rd.ReadString('\n')
	if msg, ok := strings.CutPrefix(line, ctlError+" "); ok {
		c.abort()
		return nil, fmt.Errorf("vm: %s", strings.TrimSpace(msg))
	}
	if strings.TrimSpace(line) != ctlReady {
		c.abort()
		return nil, fmt.Errorf("vm: the shim ended before the guest came up (%v); see %s", err, filepath.Join(dir, shimLog))
	}
	return c, nil
}

// networkNamespace returns the path of the spec's network namespace,
// which the VM joins (the engine made it and attached its networks), or
// "" for a new, empty one. A spec without a network namespace shares the
// host's, which a VM cannot: its network is its own devices.
func networkNamespace(spec *specs.Spec) (string, error) {
	if spec.Linux != nil {
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				return ns.Path, nil
			}
		}
	}
	return "", fmt.Errorf("the host's network (--network host) in a vm-isolated container: a VM has its own network devices; use a bridge network: %w", runtime.ErrNotSupported)
}

// guestFiles are the bind mounts of small host files the guest gets as
// copies: the engine's name-resolution files.
var guestFiles = []string{"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"}

// engineFiles reads the engine's files the spec bind-mounts.
func engineFiles(spec *specs.Spec) map[string][]byte {
	files := map[string][]byte{}
	for _, m := range spec.Mounts {
		if !slices.Contains(guestFiles, m.Destination) {
			continue
		}
		f, err := os.Open(m.Source)
		if err != nil {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(f, agent.MaxFileSize+1))
		f.Close()
		if err == nil && len(b) <= agent.MaxFileSize {
			files[m.Destination] = b
		}
	}
	return files
}

// openPty opens a new pty pair (the slave through TIOCGPTPEER, never by
// name).
func openPty() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, err
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, m.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		m.Close()
		return nil, nil, fmt.Errorf("open the pty's peer: %w", errno)
	}
	return m, os.NewFile(uintptr(sfd), "pty-slave"), nil
}

// mmioTransports: QEMU 7.2's microvm has 24 virtio-mmio transports (a
// 25th device finds no bus); one holds the agent's port, one a cold-booted
// VM's balloon (machine.Balloon), the others the layer disks (at most
// maxLayerDisks), the writable disk, network interfaces and the share (the
// shim checks the sum).
const mmioTransports = 24

func isDevNull(f *os.File) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(os.DevNull, &b) != nil {
		return false
	}
	return a.Rdev == b.Rdev && a.Mode&unix.S_IFMT == unix.S_IFCHR
}

// machine sizes the VM and finds its kernel, initramfs and accelerator.
func (d *Driver) machine(ctx context.Context, spec *specs.Spec) (*machine, error) {
	q, err := FindQEMU()
	if err != nil {
		return nil, err
	}
	k, err := FindKernel()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(d.Cache, 0o700); err != nil {
		return nil, err
	}
	initrd, err := Initramfs(d.Cache, k)
	if err != nil {
		return nil, err
	}
	acc := chooseAccel(ctx, d.Cache, q, k, initrd)
	m := &machine{QEMU: q, Accel: acc.Accel, Kernel: k.Path, Initrd: initrd, Sandbox: sandboxWorks()}
	m.MemoryMiB, m.CPUs = guestSize(spec, goruntime.NumCPU())
	if m.Accel == AccelTCG {
		m.TSCkHz = hostTSCkHz()
		if m.TCGCodeMiB, err = TCGCodeSize(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// guestOverheadMiB is the guest kernel's and agent's share of a VM's
// memory, on top of the container's limit.
const guestOverheadMiB = 64

// guestSize sizes the VM from the container's limits (--memory,
// --cpus): the memory limit plus guestOverheadMiB (at least
// defaultMemoryMiB), and as many vCPUs as the CPU quota needs, rounded
// up, at most the host's hostCPUs (one without a quota). The limits also
// apply inside: the guest's runtime sets them on the container's cgroup.
func guestSize(spec *specs.Spec, hostCPUs int) (memMiB, cpus int) {
	memMiB, cpus = defaultMemoryMiB, 1
	if spec.Linux == nil || spec.Linux.Resources == nil {
		return memMiB, cpus
	}
	r := spec.Linux.Resources
	if r.Memory != nil && r.Memory.Limit != nil && *r.Memory.Limit > 0 {
		memMiB = max(memMiB, int(*r.Memory.Limit>>20)+guestOverheadMiB)
	}
	if c := r.CPU; c != nil && c.Quota != nil && *c.Quota > 0 && c.Period != nil && *c.Period > 0 {
		n := int((uint64(*c.Quota) + *c.Period - 1) / *c.Period)
		cpus = max(1, min(n, hostCPUs))
	}
	return memMiB, cpus
}

// Load finds a VM the driver made.
func (d *Driver) Load(_ context.Context, id string) (runtime.Container, error) {
	dir, err := d.dir(id)
	if err != nil {
		return nil, err
	}
	st, err := readState(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container %s: %w", id, runtime.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	var cfg vmConfig
	if b, err := os.ReadFile(filepath.Join(dir, configFile)); err == nil {
		json.Unmarshal(b, &cfg)
	}
	p := cfg.Create.Process
	spec := &specs.Spec{Process: &specs.Process{Args: p.Args, Env: p.Env, Cwd: p.Cwd, User: specs.User{UID: p.UID, GID: p.GID}}}
	if p.OCI != nil {
		// The whole process (capabilities, rlimits, profile): exec
		// starts from it.
		var full specs.Spec
		if json.Unmarshal(p.OCI, &full) == nil && full.Process != nil {
			spec = &full
		}
	}
	return &container{d: d, id: id, dir: dir, spec: spec, pid: st.ShimPid, start: st.ShimStart, member: cfg.PodDir != ""}, nil
}

// Delete kills the VM's shim (QEMU dies with it) and removes its state.
func (d *Driver) Delete(ctx context.Context, id string) error {
	dir, err := d.dir(id)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	c, err := d.Load(ctx, id)
	if err == nil {
		vc := c.(*container)
		vc.killAndWait()
	}
	// QEMU dies with the shim (pdeathsig); one left by a shim killed
	// between its fork and that setting is killed here.
	if b, err := os.ReadFile(filepath.Join(dir, "qemu.pid")); err == nil {
		var pid int
		fmt.Sscan(string(b), &pid)
		if pid > 0 && isQEMU(pid, dir) {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	var cfg vmConfig
	if b, err := os.ReadFile(filepath.Join(dir, configFile)); err == nil && json.Unmarshal(b, &cfg) == nil && cfg.PodDir != "" {
		// A pod's container: what its killed shim left bound in the
		// pod's share.
		if err := unbindShares(filepath.Join(cfg.PodDir, sharedDir), cfg.Shares); err != nil {
			return fmt.Errorf("vm %s: %w", id, err)
		}
	}
	if err := destroyHostCgroup(dir); err != nil {
		return fmt.Errorf("vm %s: %w", id, err)
	}
	return os.RemoveAll(dir)
}

// isQEMU reports whether pid is a QEMU working in dir.
func isQEMU(pid int, dir string) bool {
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	return err == nil && cwd == dir
}

// container is a handle on one VM.
type container struct {
	d       *Driver
	id, dir string
	spec    *specs.Spec
	pid     int
	start   uint64
	ctl     *net.UnixConn // the creator's: Start goes through it
	console *os.File      // the host pty master of a -t container
	rd      *bufio.Reader
	cmd     *exec.Cmd
	// member: a container of a pod's VM (pod_linux.go).
	member bool
}

func (c *container) ID() string              { return c.id }
func (c *container) Pid() int                { return c.pid }
func (c *container) Process() *specs.Process { return c.spec.Process }
func (c *container) Console() *os.File       { return c.console }

// alive reports whether the shim still runs.
func (c *container) alive() bool {
	return c.pid > 0 && c.start != 0 && proc.StartTime(c.pid) == c.start
}

func (c *container) Status() runtime.Status {
	if !c.alive() {
		return runtime.StatusStopped
	}
	if _, err := os.Stat(filepath.Join(c.dir, runningFile)); err == nil {
		if pid := c.qemuPid(); pid != 0 {
			if _, st, err := proc.Stat(pid); err == nil && (st == 'T' || st == 't') {
				return runtime.StatusPaused
			}
		}
		return runtime.StatusRunning
	}
	return runtime.StatusCreated
}

// Start has the agent run the container's process.
func (c *container) Start(ctx context.Context) error {
	if c.ctl == nil {
		return fmt.Errorf("container %s: a VM is started by the process that created it: %w", c.id, runtime.ErrInvalidStatus)
	}
	defer func() {
		c.ctl.Close()
		c.ctl = nil
		if c.cmd != nil {
			// Its parent is about to be the monitor (a subreaper) or
			// this process, which waits for it through the engine.
			c.cmd.Process.Release()
		}
	}()
	if _, err := fmt.Fprintf(c.ctl, "%s\n", ctlStart); err != nil {
		return fmt.Errorf("container %s: start: %w", c.id, err)
	}
	c.ctl.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := c.rd.ReadString('\n')
	if msg, ok := strings.CutPrefix(line, ctlError+" "); ok {
		return errors.New(strings.TrimSpace(msg))
	}
	if strings.TrimSpace(line) != ctlStarted {
		return fmt.Errorf("container %s: the VM ended before its process started (%v)", c.id, err)
	}
	return nil
}

// Signal sends sig to the shim, which forwards it to the container's
// process in the guest; SIGKILL (which cannot be forwarded) ends the shim
// and with it the VM. With all, SIGKILL does the same; other signals go
// to the container's process only (step 1).
func (c *container) Signal(sig syscall.Signal, all bool) error {
	if !c.alive() {
		return fmt.Errorf("container %s is not running: %w", c.id, runtime.ErrInvalidStatus)
	}
	return unix.Kill(c.pid, sig)
}

func (c *container) killAndWait() {
	if !c.alive() {
		return
	}
	unix.Kill(c.pid, unix.SIGKILL)
	if c.cmd != nil {
		c.cmd.Wait()
		return
	}
	for i := 0; i < 500 && c.alive(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// abort ends a VM whose create failed.
// Close ends a VM this process created and never started: it closes the
// control socket, on which the shim powers the guest off cleanly (the
// agent syncs its disks first: a FilesOnly VM's writes are kept), and
// waits for the shim, which is this process's child. Delete then
// removes what is left.
func (c *container) Close() error {
	if c.ctl == nil || c.cmd == nil {
		return nil
	}
	c.ctl.Close()
	c.ctl = nil
	done := make(chan struct{})
	go func() {
		c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(poweroffTimeout + 10*time.Second):
		c.cmd.Process.Kill()
		<-done
	}
	return nil
}

func (c *container) abort() {
	if c.ctl != nil {
		c.ctl.Close()
	}
	if c.cmd != nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
		return
	}
	c.killAndWait()
}

// qemuPid is the VM's QEMU, if it runs (checked by its working
// directory, so a reused pid is never signalled).
func (c *container) qemuPid() int {
	b, err := os.ReadFile(filepath.Join(c.dir, "qemu.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !isQEMU(pid, c.dir) {
		return 0
	}
	return pid
}

// Pause stops the whole VM: QEMU's threads, vCPUs included, stop as one
// process (SIGSTOP), which no guest code can notice or refuse.
func (c *container) Pause() error {
	if c.member {
		return c.unsupported("pause of one container of a pod's VM")
	}
	return c.stopCont(unix.SIGSTOP, 'T')
}

// Resume lets a paused VM run on.
func (c *container) Resume() error {
	if c.member {
		return c.unsupported("unpause of one container of a pod's VM")
	}
	return c.stopCont(unix.SIGCONT, 0)
}

func (c *container) stopCont(sig unix.Signal, want byte) error {
	if !c.alive() {
		return fmt.Errorf("container %s is not running: %w", c.id, runtime.ErrInvalidStatus)
	}
	pid := c.qemuPid()
	if pid == 0 {
		return fmt.Errorf("container %s: its VM is not running: %w", c.id, runtime.ErrInvalidStatus)
	}
	if err := unix.Kill(pid, sig); err != nil {
		return err
	}
	for i := 0; i < 200; i++ {
		_, st, err := proc.Stat(pid)
		if err != nil || (want == 'T') == (st == 'T' || st == 't') {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("container %s: QEMU did not %s", c.id, map[bool]string{true: "stop", false: "continue"}[want == 'T'])
}
func (c *container) Update(context.Context, *specs.LinuxResources) error {
	return c.unsupported("update")
}

// Stats samples the container's cgroup in the guest through the agent.
// A paused VM cannot answer: it gets the last sample taken (its values
// do not move while QEMU is stopped). A container that ended gives the
// OOM kill count its guest reported with the exit (the engine's
// OOMKilled), until Delete.
func (c *container) Stats(ctx context.Context) (*runtime.Stats, error) {
	switch c.Status() {
	case runtime.StatusStopped:
		var r exitRecord
		b, err := os.ReadFile(filepath.Join(c.dir, exitFile))
		if err != nil || json.Unmarshal(b, &r) != nil {
			return nil, fmt.Errorf("container %s is not running: %w", c.id, runtime.ErrInvalidStatus)
		}
		return &runtime.Stats{OOMKills: r.OOMKills}, nil
	case runtime.StatusPaused:
		var st runtime.Stats
		if b, err := os.ReadFile(filepath.Join(c.dir, lastStatsFile)); err == nil {
			json.Unmarshal(b, &st)
		}
		return &st, nil
	case runtime.StatusCreated:
		return nil, fmt.Errorf("container %s is not started: %w", c.id, runtime.ErrInvalidStatus)
	}
	var a agent.Stats
	if err := c.ask(ctx, execRequest{Op: opStats}, &a); err != nil {
		return nil, err
	}
	st := &runtime.Stats{CPUTotal: a.CPUTotal, MemUsage: a.MemUsage, MemLimit: a.MemLimit, Pids: a.Pids,
		NetRx: a.NetRx, NetTx: a.NetTx, BlockRead: a.BlockRead, BlockWrite: a.BlockWrite, OOMKills: a.OOMKills, Detail: a.Detail}
	if b, err := json.Marshal(st); err == nil {
		os.WriteFile(filepath.Join(c.dir, lastStatsFile), b, 0o600)
	}
	return st, nil
}

// lastStatsFile keeps the last sample, for a paused VM.
const lastStatsFile = "stats.json"

// Top lists the processes of the container's cgroup in the guest, as
// the agent formats them (the guest has no ps; agent.ParsePsArgs says
// which options it takes). Their PIDs are the guest's.
func (c *container) Top(ctx context.Context, psArgs []string) ([]string, [][]string, error) {
	if _, err := agent.ParsePsArgs(psArgs); err != nil {
		return nil, nil, fmt.Errorf("%v: %w", err, runtime.ErrInvalidArgument)
	}
	switch c.Status() {
	case runtime.StatusPaused:
		return nil, nil, fmt.Errorf("container %s: its VM is paused (its processes are listed by its agent, which a paused VM stops): unpause it first: %w", c.id, runtime.ErrInvalidStatus)
	case runtime.StatusRunning:
	default:
		return nil, nil, fmt.Errorf("container %s is not running: %w", c.id, runtime.ErrInvalidStatus)
	}
	var t agent.Top
	if err := c.ask(ctx, execRequest{Op: opTop, PsArgs: psArgs}, &t); err != nil {
		return nil, nil, err
	}
	return t.Titles, t.Rows, nil
}

func (c *container) OpenRoot() (*os.File, error) { return nil, c.unsupported("its files") }

func (c *container) unsupported(what string) error {
	return fmt.Errorf("container %s: %s: %w yet", c.id, what, runtime.ErrNotSupported)
}

// shimExecutable is what a VM's shim runs: the embedded cmd/berth-vmm,
// sealed once per berth binary (a few MB whose pages every shim shares,
// instead of faulting in the whole binary's: host memory per idle VM),
// found once per process (as the runtime's init is: a binary replaced
// under a running process keeps that process's shim); or this binary
// itself in a build without it, or where the seal cannot be made (the
// shim runs on the host, outside any container: the seal saves memory,
// it confines nothing).
func shimExecutable(ctx context.Context) string {
	p, err := shimSeal()
	if err != nil {
		log.From(ctx).Warn("VM shims run the whole berth binary: the small shim could not be sealed", "error", err)
		return "/proc/self/exe"
	}
	return p
}

var shimSeal = sync.OnceValues(func() (string, error) {
	if len(embeddedShim) == 0 {
		return "/proc/self/exe", nil
	}
	return linux.SealedEmbedded(linux.EmbeddedPrefixShim, embeddedShim)
})
