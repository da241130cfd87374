package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/runtime"
)

// Accelerators.
const (
	AccelTCG = "tcg"
	AccelKVM = "kvm"
)

// machine is what one VM is made of.
type machine struct {
	QEMU   string   `json:"qemu"`
	Accel  string   `json:"accel"`
	Kernel string   `json:"kernel"`
	Initrd string   `json:"initrd"`
	Disks  []string `json:"disks,omitempty"`
	// Upper is the container's writable disk (UpperDisk), attached
	// read-write; empty for none.
	Upper string `json:"upper,omitempty"`
	// NICs are the MACs of the virtio-net devices, one per tap fd that
	// start gets, in order.
	NICs []string `json:"nics,omitempty"`
	// Share: a vhost-user-fs device on virtiofsd's socket (the VM's
	// volumes and bind mounts).
	Share bool `json:"share,omitempty"`
	// MemoryMiB and CPUs size the guest.
	MemoryMiB int `json:"memoryMiB"`
	CPUs      int `json:"cpus"`
	// Sandbox: QEMU's seccomp filter is on.
	Sandbox bool `json:"sandbox"`
	// TSCkHz, under TCG, is handed to the guest kernel (tsc_early_khz)
	// so that it skips calibrating its TSC against the emulated PIT: on
	// a busy host that calibration fails and the guest hangs in early
	// boot (seen here about one boot in three under load).
	TSCkHz int `json:"tsckHz,omitempty"`
	// TCGCodeMiB, under TCG, bounds the buffer of translated code
	// (tcgCodeMiB when 0).
	TCGCodeMiB int `json:"tcgCodeMiB,omitempty"`
	// Balloon: a virtio-balloon with free page reporting (cold boots
	// only; see args).
	Balloon bool `json:"balloon,omitempty"`
	// RunAs: QEMU drops to this user once it has opened what its
	// command line names (-runas): no capabilities, no_new_privs, not
	// dumpable. nil: QEMU stays root (no ID of its own was available).
	RunAs *runtime.HostUser `json:"runAs,omitempty"`
	// Template: the machine is made as a VM template or started from
	// one (template_linux.go); nil for a cold boot.
	Template *templateRun `json:"template,omitempty"`
}

// agentSocket is the QEMU chardev socket of the agent's port, relative
// to the VM's directory (the QEMU and shim processes work there: an
// absolute path under a deep state directory overflows sun_path).
const agentSocket = "agent.sock"

// kernelCmdline: quiet (every console byte is an emulated UART write
// under TCG), no reboot loop (panic=-1 with QEMU's -no-reboot ends the
// VM), and the marker that makes /init the agent.
const kernelCmdline = "console=ttyS0 quiet loglevel=4 panic=-1 reboot=t " + agent.CmdlineMarker

// diskSerial names layer disk i (virtio-blk serial, read by the agent).
func diskSerial(i int) string { return "berth-l" + strconv.Itoa(i) }

func (m *machine) cmdline() string {
	if m.TSCkHz > 0 {
		return kernelCmdline + " tsc_early_khz=" + strconv.Itoa(m.TSCkHz)
	}
	return kernelCmdline
}

// hostTSCkHz is the host's CPU clock from /proc/cpuinfo (TCG's guest TSC
// counts the host's), or 2 GHz; an error only skews the guest's clock
// until its clocksource watchdog replaces the TSC.
func hostTSCkHz() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "cpu MHz" {
				if mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && mhz > 100 {
					return int(mhz * 1000)
				}
			}
		}
	}
	return 2000000
}

// tcgCodeMiB bounds TCG's buffer of translated code (QEMU's default is
// 1 GiB, which a guest fills as it runs, each MiB host memory). Measured
// (docs/architecture.md): an idle VM's QEMU holds 112 MiB besides the
// guest's memory with the default, 69 with 32, 52 with 16; 8 doubles a
// run's time (the boot alone outgrows it and QEMU retranslates); 32
// leaves the container's own code room beside the boot's. A clone of a
// VM template fills it too (the agent's, the runtime's and the
// container's code): 16 saves 16 MiB of each idle VM and costs a clone's
// run about a quarter more time (measured: docs/architecture.md), so it
// is the user's choice (EnvTCGCode), not the default.
const tcgCodeMiB = 32

// TCGCodeSize is the MiB of TCG's buffer of translated code each VM
// gets under TCG: EnvTCGCode's, or tcgCodeMiB where it is unset.
func TCGCodeSize() (int, error) {
	v := os.Getenv(EnvTCGCode)
	if v == "" {
		return tcgCodeMiB, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 4 || n > 1024 {
		return 0, fmt.Errorf("%s=%q: want the MiB of TCG's buffer of translated code, 4 to 1024 (default %d): %w", EnvTCGCode, v, tcgCodeMiB, runtime.ErrInvalidArgument)
	}
	return n, nil
}

// accel is -accel's value.
func (m *machine) accel() string {
	if m.Accel == AccelTCG {
		n := m.TCGCodeMiB
		if n == 0 {
			n = tcgCodeMiB
		}
		return m.Accel + ",tb-size=" + strconv.Itoa(n)
	}
	return m.Accel
}

// args is QEMU's command line for m, run in the VM's directory.
func (m *machine) args() []string {
	a := []string{
		"-M", "microvm",
		"-accel", m.accel(),
		"-m", strconv.Itoa(m.MemoryMiB), "-smp", strconv.Itoa(m.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		// The guest's console on QEMU's stdout, which start copies to
		// console.log up to consoleMax: a guest cannot fill the disk.
		"-serial", "stdio",
		"-kernel", m.Kernel, "-initrd", m.Initrd,
		"-append", m.cmdline(),
		"-device", "virtio-serial-device,max_ports=2",
		"-chardev", "socket,id=agent,path=" + agentSocket + ",server=on,wait=off",
		"-device", "virtserialport,chardev=agent,name=" + agent.PortName,
	}
	if m.Accel == AccelKVM {
		a = append(a, "-cpu", "host")
	}
	// Free page reporting: the guest's kernel (virtio_balloon, loaded at
	// boot) hands the pages it frees back to QEMU, which drops them from
	// its memory: the initramfs image once unpacked, a finished process's
	// heap. Without it, each page the guest ever touched stays QEMU's
	// (measured: docs/architecture.md, host memory per idle VM). Only for
	// a cold boot: QEMU 7.2 gives such pages back by punching holes in
	// the RAM's backing file even when the mapping is private, which for
	// a template or its clones is the file every clone maps
	// (templateEligible).
	if m.Balloon {
		a = append(a, "-device", "virtio-balloon-device,free-page-reporting=on")
	}
	for i, d := range m.Disks {
		id := "l" + strconv.Itoa(i)
		a = append(a,
			"-drive", "id="+id+",file="+d+",format=raw,if=none,readonly=on",
			"-device", "virtio-blk-device,drive="+id+",serial="+diskSerial(i))
	}
	if m.Upper != "" {
		// An I/O error (the host's disk full) is the guest's to see:
		// QEMU's default would stop the VM.
		a = append(a,
			"-drive", "id=u,file="+strings.ReplaceAll(m.Upper, ",", ",,")+",format=raw,if=none,werror=report,rerror=report",
			"-device", "virtio-blk-device,drive=u,serial="+upperSerial)
	}
	if m.Share {
		// vhost-user needs the guest's memory shared with virtiofsd,
		// and virtiofsd speaks modern virtio only (on legacy
		// virtio-mmio it panics: "virtio legacy devices aren't
		// supported").
		a = append(a,
			"-object", "memory-backend-memfd,id=mem,size="+strconv.Itoa(m.MemoryMiB)+"M,share=on",
			"-numa", "node,memdev=mem",
			"-global", "virtio-mmio.force-legacy=false",
			"-chardev", "socket,id=fs,path="+virtiofsSocket,
			"-device", "vhost-user-fs-device,chardev=fs,tag="+shareTag)
	}
	for i, mac := range m.NICs {
		if m.Template != nil && m.Template.Make {
			// A template's NIC has no backend: its clones bring theirs.
			a = append(a, "-device", "virtio-net-device,mac="+mac)
			continue
		}
		id := "n" + strconv.Itoa(i)
		// The tap's fd is QEMU's fd 3+i (start's ExtraFiles).
		a = append(a,
			"-netdev", "tap,id="+id+",fd="+strconv.Itoa(3+i),
			"-device", "virtio-net-device,netdev="+id+",mac="+mac)
	}
	elevate := "deny"
	if m.RunAs != nil {
		a = append(a, "-runas", fmt.Sprintf("%d:%d", m.RunAs.UID, m.RunAs.GID))
		// QEMU's own setgid/setuid at -runas would be killed by
		// elevateprivileges=deny ("Bad system call"); after that drop
		// (no capabilities, no_new_privs) a set*id call can regain
		// nothing, so allowing them costs no confinement.
		elevate = "allow"
	}
	a = append(a, m.templateArgs()...)
	if m.Sandbox {
		a = append(a, "-sandbox", "on,obsolete=deny,elevateprivileges="+elevate+",spawn=deny,resourcecontrol=deny")
	}
	return a
}

// FindQEMU returns the QEMU binary.
func FindQEMU() (string, error) {
	if p := os.Getenv(EnvQEMU); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "", errors.New("no QEMU: install qemu-system-x86 or set " + EnvQEMU)
	}
	return p, nil
}

// start runs QEMU for m in dir, its output to dir/qemu.log, with taps
// (one per NIC; then, for a clone of a template, its state file) as its
// fds from 3; it dies with the calling thread's process (the shim).
func (m *machine) start(dir string, taps []*os.File) (*exec.Cmd, error) {
	if want := len(m.NICs) + m.templateFiles(); len(taps) != want {
		return nil, fmt.Errorf("%d network interfaces and %d taps", len(m.NICs), len(taps))
	}
	n := 1 + len(m.Disks) + len(m.NICs)
	if m.Balloon {
		n++
	}
	if m.Share {
		n++
	}
	if m.Upper != "" {
		n++
	}
	if n > mmioTransports {
		return nil, fmt.Errorf("%d layer disks, %d network interfaces, the share of the volumes, the writable disk and the balloon: a microVM has %d virtio-mmio transports, one for the agent", len(m.Disks), len(m.NICs), mmioTransports)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "qemu.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	con, err := os.OpenFile(filepath.Join(dir, "console.log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	cr, cw, err := os.Pipe()
	if err != nil {
		con.Close()
		return nil, err
	}
	defer cw.Close()
	go copyCapped(con, cr, consoleMax)
	cmd := exec.Command(m.QEMU, m.args()...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = cw, logf
	cmd.ExtraFiles = taps
	// Not in a process group of its own: a TCG guest started with
	// Setpgid never got past its first instructions here (measured; the
	// same command in the caller's group boots in 2-4 s).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start QEMU: %w", err)
	}
	return cmd, nil
}

// consoleMax bounds console.log.
const consoleMax = 1 << 20

// copyCapped copies r to w until r ends, keeping the first max bytes and
// reading the rest away (QEMU must never block on its console).
func copyCapped(w, r *os.File, max int64) {
	defer r.Close()
	defer w.Close()
	n, _ := io.CopyN(w, r, max)
	if n == max {
		fmt.Fprintf(w, "\n[berth: console output beyond %d bytes dropped]\n", max)
		io.Copy(io.Discard, r)
	}
}

// dialAgent connects to the agent's socket and reads its hello; it
// gives up at the deadline or when QEMU exits (exited is closed then).
// The agent then waits for the host's choice of version (agent.Open).
func dialAgent(dir string, deadline time.Time, exited <-chan struct{}) (net.Conn, *agent.Hello, error) {
	c, err := connectAgent(dir, deadline, exited)
	if err != nil {
		return nil, nil, err
	}
	type res struct {
		h   *agent.Hello
		err error
	}
	ch := make(chan res, 1)
	go func() { h, err := agent.ReadHello(c, deadline); ch <- res{h, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			c.Close()
			if errors.Is(r.err, os.ErrDeadlineExceeded) {
				return nil, nil, errors.New("the guest agent did not come up in time")
			}
			return nil, nil, fmt.Errorf("the guest agent: %w", r.err)
		}
		return c, r.h, nil
	case <-exited:
		c.Close()
		return nil, nil, errors.New("QEMU exited before the guest agent came up")
	}
}

// connectAgent connects to the agent's socket (QEMU's end of the port).
func connectAgent(dir string, deadline time.Time, exited <-chan struct{}) (net.Conn, error) {
	sock := filepath.Join(dir, agentSocket)
	for {
		c, err := net.Dial("unix", relOrAbs(sock))
		if err == nil {
			return c, nil
		}
		select {
		case <-exited:
			return nil, errors.New("QEMU exited before the guest came up")
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("QEMU's agent socket: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// relOrAbs shortens a socket path to one relative to the working
// directory when it is there (sun_path holds 107 bytes).
func relOrAbs(p string) string {
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") && len(r) < len(p) {
			return r
		}
	}
	return p
}

// probeTimeout bounds the KVM probe: a KVM guest reaches its agent in
// well under a second; a PVM-backed /dev/kvm never does.
const probeTimeout = 4 * time.Second

// accelProbe is a cached verdict on KVM.
type accelProbe struct {
	Accel  string `json:"accel"`
	Reason string `json:"reason,omitempty"`
}

var probeMu sync.Mutex

// chooseAccel returns KVM when /dev/kvm opens and a probe guest comes up
// under it, else TCG with the reason. The verdict is cached under cache
// per kernel, initramfs and QEMU, so only the first VM pays the probe.
func chooseAccel(ctx context.Context, cache, qemu string, k *Kernel, initrd string) accelProbe {
	switch os.Getenv(EnvAccel) {
	case AccelTCG:
		return accelProbe{AccelTCG, EnvAccel + "=tcg"}
	case AccelKVM:
		return accelProbe{AccelKVM, ""}
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return accelProbe{AccelTCG, "no usable /dev/kvm"}
	}
	f.Close()
	h := sha256.New()
	for _, p := range []string{qemu, k.Path, initrd} {
		st, err := os.Stat(p)
		if err != nil {
			return accelProbe{AccelTCG, err.Error()}
		}
		fmt.Fprintf(h, "%s %d %d\n", p, st.Size(), st.ModTime().UnixNano())
	}
	name := filepath.Join(cache, "accel-"+hex.EncodeToString(h.Sum(nil))[:24]+".json")
	probeMu.Lock()
	defer probeMu.Unlock()
	var cached accelProbe
	if b, err := os.ReadFile(name); err == nil && json.Unmarshal(b, &cached) == nil && cached.Accel != "" {
		return cached
	}
	unlock, err := lockFile(name + ".lock")
	if err != nil {
		return accelProbe{AccelTCG, err.Error()}
	}
	defer unlock()
	if b, err := os.ReadFile(name); err == nil && json.Unmarshal(b, &cached) == nil && cached.Accel != "" {
		return cached
	}
	res := probeKVM(ctx, cache, qemu, k, initrd)
	if b, err := json.Marshal(res); err == nil {
		pruneOld(cache, ".json", name)
		writeAtomic(name, b, 0o600)
	}
	return res
}

// probeKVM boots the guest under KVM, with no disks, and waits for its
// agent's hello.
func probeKVM(ctx context.Context, cache, qemu string, k *Kernel, initrd string) accelProbe {
	dir, err := os.MkdirTemp(cache, "probe-")
	if err != nil {
		return accelProbe{AccelTCG, err.Error()}
	}
	defer os.RemoveAll(dir)
	m := &machine{QEMU: qemu, Accel: AccelKVM, Kernel: k.Path, Initrd: initrd, MemoryMiB: 256, CPUs: 1}
	cmd, err := m.start(dir, nil)
	if err != nil {
		return accelProbe{AccelTCG, err.Error()}
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() { cmd.Process.Kill(); <-exited }()
	c, _, err := dialAgent(dir, time.Now().Add(probeTimeout), exited)
	if err != nil {
		return accelProbe{AccelTCG, fmt.Sprintf("a KVM guest did not come up within %v (%v)", probeTimeout, err)}
	}
	c.Close()
	return accelProbe{AccelKVM, ""}
}

// sandboxWorks reports whether this QEMU has its seccomp filter (a build
// without it lists no -sandbox option), asking once per process.
var sandboxWorks = sync.OnceValue(func() bool {
	q, err := FindQEMU()
	if err != nil {
		return false
	}
	out, err := exec.Command(q, "-help").Output()
	return err == nil && strings.Contains(string(out), "\n-sandbox on")
})
