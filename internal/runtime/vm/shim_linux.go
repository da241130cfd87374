package vm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/berth-dev/berth/internal/agent"
)

// ShimName is the argv[0] of a VM's shim (cmd/berth-vmm, or the whole
// berth binary in a build without it, which the name selects): the
// host process that stands for the container (its pid is the one the
// engine's monitor waits for). It runs QEMU as its child, speaks to the
// guest agent, copies the container's stdio between its own and the
// agent's, forwards the signals it gets to the container's process, and
// exits with the container's exit code.
const ShimName = "berth-vmm"

// vmConfig is what the driver hands the shim (config.json in the VM's
// directory).
type vmConfig struct {
	Machine machine      `json:"machine"`
	Create  agent.Create `json:"create"`
	// BootTimeout bounds the wait for the guest agent.
	BootTimeout time.Duration `json:"bootTimeout"`
	// Netns is the container's network namespace on the host (the
	// engine's, with its CNI attachments), which the VM joins; empty
	// for none.
	Netns string `json:"netns,omitempty"`
	// Shares are the sources of the container's volumes and bind
	// mounts, which virtiofsd shares with the guest.
	Shares []share `json:"shares,omitempty"`
	// Cgroup is the container's cgroup on the host, which the shim
	// enters before it starts QEMU and virtiofsd (cgroup_linux.go).
	Cgroup *hostCgroup `json:"cgroup,omitempty"`
	// Templates is the driver's cache: the VM starts from the template
	// of its shape there (made first if there is none) instead of
	// booting; empty when templates are off (EnvTemplate).
	Templates string `json:"templates,omitempty"`
	// FilesOnly: booted only for the container's files (cp and export of
	// a stopped container, runtime.CreateOptions.FilesOnly): the exec
	// socket serves the file helper at once, the process never starts,
	// and the VM powers off when the driver's side of the control socket
	// closes (or the driver deletes it).
	FilesOnly bool `json:"filesOnly,omitempty"`
	// Pod: this shim holds a pod's VM (pod_linux.go): it boots with
	// no container (Create holds the sandbox's settings) and serves the
	// pod's containers' shims on its pod socket.
	Pod bool `json:"pod,omitempty"`
	// PodDir, for a container of a pod's VM, is that VM's directory:
	// the shim binds Shares (its root first) into the pod's share and
	// speaks to the agent through the pod's shim, as Member.
	PodDir string `json:"podDir,omitempty"`
	Member string `json:"member,omitempty"`
}

// Files in a VM's directory.
const (
	configFile  = "config.json"
	stateFile   = "state.json"
	runningFile = "running"
	// filesOnlyFile marks a VM booted for its files alone (FilesOnly),
	// once its exec socket serves the file helper.
	filesOnlyFile = "files-only"
	shimLog       = "shim.log"
	exitFile      = "exit.json"
)

// Messages on the control socket (fd 3) between the driver and the shim.
const (
	ctlReady   = "R" // the shim -> the guest is up, the container made
	ctlStart   = "S" // the driver -> start it
	ctlStarted = "P" // the shim -> its process runs
	ctlError   = "E" // the shim -> "E message": failed
)

// forwarded are the signals the shim passes on to the container's process.
var forwarded = []os.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGALRM, unix.SIGWINCH, unix.SIGPWR, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU}

// ShimMain is the shim's entry point: args are the VM's directory. It
// returns the exit code.
func ShimMain(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: berth-vmm DIR")
		return 125
	}
	dir := args[0]
	ctl := os.NewFile(3, "ctl")
	unix.CloseOnExec(3) // QEMU must not hold it
	fail := func(err error) int {
		fmt.Fprintf(ctl, "%s %s\n", ctlError, strings.ReplaceAll(err.Error(), "\n", "; "))
		log.Printf("%v", err)
		return 125
	}
	if lf, err := os.OpenFile(filepath.Join(dir, shimLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o600); err == nil {
		log.SetOutput(lf)
	} else {
		log.SetOutput(io.Discard)
	}
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	if err := os.Chdir(dir); err != nil {
		return fail(err)
	}
	// Caught from the start: a stop before the guest is up must not kill
	// the shim and leave QEMU to pdeathsig alone.
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, forwarded...)
	signal.Notify(make(chan os.Signal, 1), unix.SIGPIPE)
	b, err := os.ReadFile(configFile)
	if err != nil {
		return fail(err)
	}
	var cfg vmConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fail(err)
	}
	s := &shim{dir: dir, cfg: &cfg, pending: map[uint64]chan *agent.Frame{}, exit: make(chan int, 1), dnsSlots: make(chan struct{}, maxDNSRelays)}
	if cfg.Pod {
		return s.runPod(ctl, sigs, fail)
	}
	if err := s.boot(); err != nil {
		s.kill()
		return fail(err)
	}
	defer s.kill()
	if cfg.FilesOnly {
		if err := s.listenExec(); err != nil {
			s.poweroff()
			return fail(err)
		}
		os.WriteFile(filesOnlyFile, nil, 0o600)
		fmt.Fprintf(ctl, "%s\n", ctlReady)
		io.Copy(io.Discard, ctl) // until the driver closes it
		log.Printf("files only: done, powering off")
		s.poweroff()
		return 0
	}
	fmt.Fprintf(ctl, "%s\n", ctlReady)
	line, err := bufio.NewReader(ctl).ReadString('\n')
	if strings.TrimSpace(line) != ctlStart {
		// The driver went away or gave up: nothing is to run.
		log.Printf("no start (%q, %v): powering off", line, err)
		s.poweroff()
		return 125
	}
	if err := s.request(&agent.Frame{Type: agent.TypeStart}); err != nil {
		s.poweroff()
		return fail(err)
	}
	log.Printf("process started")
	if err := s.listenExec(); err != nil {
		log.Printf("exec socket: %v", err)
	}
	os.WriteFile(runningFile, nil, 0o600)
	fmt.Fprintf(ctl, "%s\n", ctlStarted)
	ctl.Close()
	terminal := cfg.Create.Process.Terminal
	if terminal {
		// The host pty carries bytes only: the guest's pty does the
		// line discipline.
		if _, err := term.MakeRaw(0); err != nil {
			log.Printf("raw mode: %v", err)
		}
		s.resize()
	}
	if cfg.Create.Process.Stdin {
		go s.copyStdin()
	}
	for {
		select {
		case sig := <-sigs:
			if terminal && sig == unix.SIGWINCH {
				go s.resize()
				continue
			}
			n := int(sig.(syscall.Signal))
			go func() {
				if err := s.request(&agent.Frame{Type: agent.TypeSignal, Signal: n}); err != nil {
					log.Printf("signal %d: %v", n, err)
				}
			}()
		case code := <-s.exit:
			log.Printf("exit %d (OOM kills %d)", code, s.oomKills.Load())
			writeExit(exitRecord{Code: code, OOMKills: s.oomKills.Load()})
			s.poweroff()
			return code
		case <-s.gone:
			select {
			case code := <-s.exit:
				// The exit came just before the channel closed (the
				// reader hands it over before it reports the end).
				writeExit(exitRecord{Code: code, OOMKills: s.oomKills.Load()})
				s.poweroff()
				return code
			default:
			}
			code := s.vmGone()
			writeExit(exitRecord{Code: code})
			return code
		}
	}
}

// exitRecord is what the shim leaves in exitFile when the container's
// process ended: the engine reads OOMKilled from it (Stats) after the
// guest, and its cgroup, are gone.
type exitRecord struct {
	Code     int    `json:"code"`
	OOMKills uint64 `json:"oomKills"`
}

func writeExit(r exitRecord) {
	b, _ := json.Marshal(r)
	if err := os.WriteFile(exitFile+".tmp", b, 0o600); err == nil {
		os.Rename(exitFile+".tmp", exitFile)
	}
}

// vmGone is the exit code of a container whose guest went away without
// reporting one: as a process killed by the signal that killed QEMU
// (kill -9 of QEMU gives 137, as a kill -9 of a container's process),
// 255 when QEMU ended otherwise.
func (s *shim) vmGone() int {
	if s.cfg.PodDir != "" {
		log.Printf("the pod's VM went away without an exit status")
		return 255
	}
	select {
	case <-s.exited:
	case <-time.After(poweroffTimeout):
		log.Printf("the agent's channel closed but QEMU runs on: killing it")
		s.kill()
	}
	if ps := s.qemu.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			log.Printf("the guest went away: QEMU killed by signal %d", ws.Signal())
			return 128 + int(ws.Signal())
		}
	}
	log.Printf("the guest went away without an exit status")
	return 255
}

type shim struct {
	dir    string
	cfg    *vmConfig
	qemu   *exec.Cmd
	exited chan struct{} // closed when QEMU exits
	// conn is the agent channel (agent.HostChannel) or, for a pod's
	// container, the conversation with the pod's shim (agent.Conn).
	conn agent.Channel
	sock io.Closer
	gone chan struct{} // closed when the agent's stream ends

	nextID  atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]chan *agent.Frame
	exit    chan int
	// oomKills is the guest's count at the container's exit.
	oomKills atomic.Uint64

	// virtiofsdExited is closed when virtiofsd ends (nil without one).
	virtiofsdExited chan struct{}
	// dns relays the guest's DNS queries to the loopback name servers
	// of the container's namespace (nil without one); dnsSlots bounds
	// the relays at once (maxDNSRelays), dnsDropped counts the queries
	// dropped past them.
	dns        *nsDialer
	dnsSlots   chan struct{}
	dnsDropped atomic.Uint64

	execMu  sync.Mutex
	execs   map[string]*execClient
	execSeq int

	// pod: the containers of the pod's VM this shim holds (cfg.Pod).
	pod *podMux
	// leaveOnce: a pod's container leaves its pod's VM once.
	leaveOnce sync.Once
}

// boot starts QEMU, greets the agent and has it make the container.
func (s *shim) boot() error {
	if s.cfg.PodDir != "" {
		return s.joinPod()
	}
	t0 := time.Now()
	if s.cfg.Cgroup != nil {
		if err := s.cfg.Cgroup.enter(s.dir); err != nil {
			return err
		}
	}
	if len(s.cfg.Shares) > 0 || s.cfg.Pod {
		s.virtiofsdExited = make(chan struct{})
		if err := s.startVirtiofsd(s.virtiofsdExited); err != nil {
			return err
		}
		log.Printf("virtiofsd up after %v (%d shares)", time.Since(t0).Round(time.Millisecond), len(s.cfg.Shares))
	}
	taps, err := s.joinNetns()
	if err != nil {
		return err
	}
	defer closeAll(taps) // QEMU holds them; the taps go when it ends
	restored := false
	if s.cfg.Templates != "" {
		if why := templateEligible(&s.cfg.Machine); why != "" {
			log.Printf("no VM template: %s", why)
		} else if err := s.restore(taps, t0); err != nil {
			log.Printf("VM template: %v: booting instead", err)
		} else {
			restored = true
		}
	}
	if !restored {
		if err := s.coldBoot(taps, t0); err != nil {
			return err
		}
	}
	cr := s.cfg.Create
	if s.cfg.Pod {
		if err := s.request(&agent.Frame{Type: agent.TypeSandbox, Create: &cr}); err != nil {
			return err
		}
		log.Printf("pod's VM ready after %v", time.Since(t0).Round(time.Millisecond))
		return nil
	}
	if err := s.request(&agent.Frame{Type: agent.TypeCreate, Create: &cr}); err != nil {
		return err
	}
	log.Printf("container made after %v", time.Since(t0).Round(time.Millisecond))
	return nil
}

// coldBoot starts QEMU and greets the agent once it is up.
func (s *shim) coldBoot(taps []*os.File, t0 time.Time) error {
	var err error
	// Its own RAM, not a template's file: the guest may give freed
	// pages back.
	s.cfg.Machine.Balloon = true
	s.qemu, err = s.cfg.Machine.start(s.dir, taps)
	if err != nil {
		return err
	}
	s.watchQEMU()
	deadline := t0.Add(s.cfg.BootTimeout)
	c, hello, err := dialAgent(s.dir, deadline, s.exited)
	if err != nil {
		return s.withLog(err)
	}
	log.Printf("agent up after %v (%s)", time.Since(t0).Round(time.Millisecond), s.cfg.Machine.Accel)
	v, err := agent.ChooseVersion(hello)
	if err != nil {
		c.Close()
		return err
	}
	ch, err := agent.Open(c, v, deadline)
	if err != nil {
		return s.withLog(err)
	}
	s.conn, s.sock, s.gone = ch, ch, make(chan struct{})
	go s.readLoop()
	return nil
}

// watchQEMU records QEMU's pid and closes s.exited when it ends.
func (s *shim) watchQEMU() {
	os.WriteFile("qemu.pid", []byte(strconv.Itoa(s.qemu.Process.Pid)), 0o600)
	s.exited = make(chan struct{})
	qemu, exited := s.qemu, s.exited
	go func() {
		err := qemu.Wait()
		log.Printf("QEMU exited: %v", err)
		close(exited)
	}()
}

// restore starts the VM from the template of its shape (making it
// first when there is none): QEMU loads the template's device state,
// maps its memory privately, and runs on from the agent's hello; the
// host answers that hello and resumes the agent (fresh entropy, the
// time). On failure nothing of the attempt is left running.
func (s *shim) restore(taps []*os.File, t0 time.Time) (retErr error) {
	m := s.cfg.Machine
	tdir, meta, err := templateFor(s.cfg.Templates, &m, s.cfg.BootTimeout)
	if err != nil {
		return err
	}
	tReady := time.Since(t0)
	// The restore's own deadline: the wait for another VM's making of
	// the template is not the restore's time.
	deadline := time.Now().Add(s.cfg.BootTimeout)
	state, err := os.Open(filepath.Join(tdir, templateState))
	if err != nil {
		return err
	}
	defer state.Close()
	m.Template = &templateRun{RAM: filepath.Join(tdir, templateRAM), StateFD: 3 + len(taps)}
	m.Kernel = cloneKernel(tdir, m.Kernel)
	if s.qemu, err = m.start(s.dir, append(slices.Clone(taps), state)); err != nil {
		s.qemu = nil
		return err
	}
	s.watchQEMU()
	state.Close()
	defer func() {
		if retErr != nil {
			// Perhaps the template is bad: the next VM makes a new
			// one (a running clone keeps its mapping of the old).
			os.RemoveAll(tdir)
			s.kill()
			s.qemu, s.conn, s.sock = nil, nil, nil
			retErr = s.withLog(retErr)
		}
	}()
	if err := loadTemplate(s.dir, m.Template.StateFD, deadline); err != nil {
		return err
	}
	c, err := connectAgent(s.dir, deadline, s.exited)
	if err != nil {
		return err
	}
	v, err := agent.ChooseVersion(&meta.Hello)
	if err != nil {
		c.Close()
		return err
	}
	ch, err := agent.Open(c, v, deadline)
	if err != nil {
		return err
	}
	s.conn, s.sock, s.gone = ch, ch, make(chan struct{})
	go s.readLoop()
	r, err := resumeRequest()
	if err != nil {
		return err
	}
	if err := s.request(&agent.Frame{Type: agent.TypeResume, Resume: r}); err != nil {
		return err
	}
	if n := s.cfg.Create.Network; n != nil {
		for i, mac := range s.cfg.Machine.NICs {
			for j := range n.Interfaces {
				if n.Interfaces[j].MAC == mac {
					n.Interfaces[j].DeviceMAC = templateMAC(i)
				}
			}
		}
	}
	log.Printf("agent up after %v (%s, from VM template %s, ready after %v)", time.Since(t0).Round(time.Millisecond), m.Accel, filepath.Base(tdir), tReady.Round(time.Millisecond))
	return nil
}

// withLog adds the tail of the guest's console to a boot failure.
func (s *shim) withLog(err error) error {
	b, _ := os.ReadFile(filepath.Join(s.dir, "console.log"))
	q, _ := os.ReadFile(filepath.Join(s.dir, "qemu.log"))
	tail := strings.TrimSpace(string(q) + "\n" + string(b))
	if len(tail) > 600 {
		tail = "..." + tail[len(tail)-600:]
	}
	if tail == "" {
		return err
	}
	return fmt.Errorf("%w: %s", err, tail)
}

// request sends a request and waits for its reply.
func (s *shim) request(f *agent.Frame) error {
	_, err := s.call(f)
	return err
}

// call sends a request and returns its reply (a failure as an error).
func (s *shim) call(f *agent.Frame) (*agent.Frame, error) {
	f.ID = s.nextID.Add(1)
	ch := make(chan *agent.Frame, 1)
	s.mu.Lock()
	s.pending[f.ID] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, f.ID)
		s.mu.Unlock()
	}()
	if err := s.conn.Write(f); err != nil {
		return nil, fmt.Errorf("agent %s: %w", f.Type, err)
	}
	select {
	case r := <-ch:
		if r.Error != "" {
			return nil, errors.New(r.Error)
		}
		return r, nil
	case <-s.gone:
		return nil, fmt.Errorf("agent %s: the guest went away", f.Type)
	}
}

// readLoop dispatches what the agent sends: replies to their requests,
// output to the shim's stdout and stderr, the exit status.
func (s *shim) readLoop() {
	// This conversation's channel, read once: a failed template restore
	// clears s.conn (and a cold boot sets a new one) while this loop
	// may still be reading the old.
	conn := s.conn
	defer close(s.gone)
	for {
		f, err := conn.Read()
		if err != nil {
			if agent.Recoverable(err) {
				log.Printf("agent: %v", err)
				continue
			}
			log.Printf("agent stream: %v", err)
			return
		}
		switch f.Type {
		case agent.TypeReply:
			s.mu.Lock()
			ch := s.pending[f.ID]
			s.mu.Unlock()
			if ch != nil {
				ch <- f
			} else if s.pod != nil && s.pod.reply(f) {
				continue
			} else if f.Error != "" {
				log.Printf("agent: %s", f.Error)
			}
		case agent.TypeDNSQuery:
			// At most maxDNSRelays at once: the guest is untrusted, and
			// a query past them goes unanswered (its resolver asks
			// again) rather than holding more of the host.
			select {
			case s.dnsSlots <- struct{}{}:
				go func() {
					defer func() { <-s.dnsSlots }()
					s.relayDNS(f)
				}()
			default:
				if s.dnsDropped.Add(1) == 1 {
					log.Printf("agent: over %d DNS queries at once: dropping the rest", maxDNSRelays)
				}
			}
		case agent.TypeOutput:
			if s.pod != nil {
				s.pod.event(f)
				continue
			}
			if f.Proc != "" && f.Proc != "init" {
				s.execOutput(f)
				continue
			}
			out := os.Stdout
			if f.Stream == 2 {
				out = os.Stderr
			}
			out.Write(f.Data)
		case agent.TypeExit:
			if s.pod != nil {
				s.pod.event(f)
				continue
			}
			if f.Proc != "" && f.Proc != "init" {
				s.execExit(f)
				continue
			}
			if f.Exit != nil {
				s.oomKills.Store(f.OOMKills)
				select {
				case s.exit <- *f.Exit:
				default:
				}
			}
		}
	}
}

func (s *shim) copyStdin() {
	buf := make([]byte, agent.ChunkSize)
	for {
		n, err := os.Stdin.Read(buf)
		if n > 0 {
			if s.request(&agent.Frame{Type: agent.TypeStdin, Data: append([]byte(nil), buf[:n]...)}) != nil {
				return
			}
		}
		if err != nil {
			s.request(&agent.Frame{Type: agent.TypeCloseStdin})
			return
		}
	}
}

// resize gives the guest's pty the host pty's size.
func (s *shim) resize() {
	cols, rows, err := term.GetSize(0)
	if err != nil || rows <= 0 || cols <= 0 {
		return
	}
	if err := s.request(&agent.Frame{Type: agent.TypeResize, Size: &agent.WinSize{Rows: uint16(rows), Cols: uint16(cols)}}); err != nil {
		log.Printf("resize: %v", err)
	}
}

// poweroffTimeout bounds a clean power-off before QEMU is killed.
const poweroffTimeout = 3 * time.Second

// poweroff asks the guest to power off and waits for QEMU to end.
func (s *shim) poweroff() {
	if s.cfg.PodDir != "" {
		s.leavePod()
		return
	}
	if s.conn != nil {
		go s.request(&agent.Frame{Type: agent.TypePoweroff})
	}
	select {
	case <-s.exited:
	case <-time.After(poweroffTimeout):
		log.Printf("no power-off after %v: killing QEMU", poweroffTimeout)
	}
	s.kill()
}

// kill ends QEMU (if still there) and waits for it.
func (s *shim) kill() {
	if s.cfg.PodDir != "" {
		s.leavePod()
		return
	}
	if s.qemu == nil || s.qemu.Process == nil {
		return
	}
	s.qemu.Process.Kill()
	<-s.exited
	if s.sock != nil {
		s.sock.Close()
	}
	os.Remove(agentSocket)
}

// joinNetns wires the container's network namespace to the VM (see
// net_linux.go): it returns the taps for QEMU and fills in the machine's
// NICs and the guest's network.
func (s *shim) joinNetns() ([]*os.File, error) {
	if s.cfg.Netns == "" {
		return nil, nil
	}
	t0 := time.Now()
	nics, ifs, routes, err := wireNetns(s.cfg.Netns)
	if err != nil {
		return nil, fmt.Errorf("the container's network: %w", err)
	}
	if s.cfg.Create.Network == nil {
		s.cfg.Create.Network = &agent.Network{}
	}
	n := s.cfg.Create.Network
	n.Interfaces, n.Routes = ifs, routes
	var taps []*os.File
	s.cfg.Machine.NICs = nil
	for _, c := range nics {
		taps = append(taps, c.tap)
		s.cfg.Machine.NICs = append(s.cfg.Machine.NICs, c.mac)
	}
	if len(n.DNSRelay) > 0 {
		if s.dns, err = newNSDialer(s.cfg.Netns); err != nil {
			closeAll(taps)
			return nil, err
		}
	}
	log.Printf("network: %d interfaces wired in %v", len(nics), time.Since(t0).Round(time.Microsecond))
	return taps, nil
}

// maxDNSRelays bounds the guest's DNS queries relayed at once (each a
// goroutine, a socket in the container's namespace and an answering
// call of at most agent.DNSAnswerTimeout).
const maxDNSRelays = 64

// relayDNS answers a guest's DNS query with the answer of the name
// server it names, asked in the container's namespace.
func (s *shim) relayDNS(f *agent.Frame) {
	a := &agent.Frame{Type: agent.TypeDNSAnswer, ID: f.ID}
	switch {
	case s.dns == nil || f.DNS == nil:
		a.Error = "no DNS relay for this VM"
	default:
		ans, err := s.dns.dnsExchange(f.DNS, f.Data)
		if err != nil {
			a.Error = err.Error()
		}
		a.Data = ans
	}
	s.conn.Write(a)
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
