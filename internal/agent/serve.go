package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// System is what the agent needs of the machine it runs on: the real
// guest (guest_linux.go) or a test's fake.
type System interface {
	// PrepareSandbox sets up a pod's VM: its host name, network and the
	// host's share (Create without a process).
	PrepareSandbox(c *Create) error
	// PrepareRoot makes the root filesystem of the container (""
	// for a VM's one container, else a pod's container's name) and
	// returns its path.
	PrepareRoot(container string, c *Create) (string, error)
	// StartProcess starts p of the container in root with the given
	// stdio and returns its pid; with p.Terminal, the stdio are
	// /dev/null and it returns the master of the pty it gave the
	// process.
	StartProcess(container, root string, p *Process, stdio [3]*os.File) (int, *os.File, error)
	// RemoveContainer kills what still runs of a pod's container and
	// removes what the guest kept of it.
	RemoveContainer(container string) error
	// Resize sets a pty's size.
	Resize(console *os.File, size WinSize) error
	// Signal sends sig to the process pid.
	Signal(pid, sig int) error
	// Poweroff turns the machine off; it returns only if that failed.
	Poweroff() error
	// ListenDNS opens a name server's sockets at addr (port 53, UDP
	// and TCP) in the guest, for the relay (Network.DNSRelay).
	ListenDNS(addr string) (net.PacketConn, net.Listener, error)
	// Stats samples the container's resource use (its cgroup; readable
	// after its process exits, until the guest powers off or removes
	// it).
	Stats(container string) (*Stats, error)
	// Top lists the container's processes as ps would with psArgs
	// (ParsePsArgs' forms).
	Top(container string, psArgs []string) (*Top, error)
	// Resume gives a VM restored from a template its own randomness and
	// the current time (TypeResume).
	Resume(r *Resume) error
}

// Agent serves one connection to the host.
type Agent struct {
	conn Channel
	sys  System

	mu sync.Mutex
	// procs are by procKey: a container's name and the process's.
	procs map[string]*process
	// sandbox: a pod's VM (the sandbox request came).
	sandbox bool
	// removing are the pod's containers being deleted (off the reading
	// loop), each closed when done: a create of that name waits.
	removing map[string]chan struct{}
	// exited holds the codes of processes reaped before Start recorded
	// their pid (a very short-lived process).
	exited map[int]int

	// DNS queries relayed to the host, by the guest's own request ID.
	dnsSeq     atomic.Uint64
	dnsMu      sync.Mutex // not mu: that is held while a process starts
	dnsPending map[uint64]chan *Frame
}

type process struct {
	container string
	name      string
	spec      Process
	root      string
	pid       int
	stdin     *os.File
	stdinq    chan *Frame
	// console is the pty master of a process with a terminal.
	console *os.File
	outs    sync.WaitGroup
	exited  chan int
	// removed: its container was deleted; its exit is not reported
	// (the host may have made a container of that name since).
	removed atomic.Bool
	// replied is closed once the request that started it was answered:
	// its exit is reported after that.
	replied   chan struct{}
	replyOnce sync.Once
	// reaped: its exit was recorded (under Agent.mu); a later exit of
	// its pid is a reused pid's.
	reaped bool
	// gone is closed when the agent forgets it (forget).
	gone       chan struct{}
	forgetOnce sync.Once
}

// forget marks p forgotten: its stdin writer ends.
func (p *process) forget() { p.forgetOnce.Do(func() { close(p.gone) }) }

// New returns an agent answering the requests of conn (whose handshake
// chose the protocol version).
func New(conn Channel, sys System) *Agent {
	return &Agent{conn: conn, sys: sys, procs: map[string]*process{}, exited: map[int]int{}, dnsPending: map[uint64]chan *Frame{}, removing: map[string]chan struct{}{}}
}

// Serve answers the host's requests until the channel ends or the host
// asks for a power-off. A malformed or oversized frame is answered with
// an error and the agent reads on.
func (a *Agent) Serve() error {
	for {
		f, err := a.conn.Read()
		if err != nil {
			if Recoverable(err) {
				a.conn.Write(&Frame{Type: TypeReply, Error: err.Error()})
				continue
			}
			return err
		}
		if f.Type == TypeDNSAnswer {
			// The answer to a request of ours: no reply.
			a.dnsAnswer(f)
			continue
		}
		if f.Type == TypeStats || f.Type == TypeTop {
			// Answered with data, off the reading loop (a top reads
			// /proc for every process).
			go a.answerQuery(f)
			continue
		}
		if f.Type == TypePoweroff {
			a.reply(f, nil)
			return a.sys.Poweroff()
		}
		if err := a.handle(f); err != errQueued {
			a.reply(f, err)
		}
	}
}

// answerQuery answers a stats or top request with its data.
func (a *Agent) answerQuery(f *Frame) {
	r := &Frame{Type: TypeReply, ID: f.ID}
	var err error
	switch {
	case f.ID == 0:
		err = fmt.Errorf("%w: request %q without an ID", ErrMalformed, f.Type)
	case CheckContainerName(f.Container) != nil:
		err = CheckContainerName(f.Container)
	case f.Type == TypeStats:
		r.Stats, err = a.sys.Stats(f.Container)
	default:
		r.Top, err = a.sys.Top(f.Container, f.PsArgs)
	}
	if err != nil {
		r.Error = err.Error()
	}
	a.conn.Write(r)
}

// errQueued: the request was handed on and will be answered later.
var errQueued = errors.New("queued")

// writeStdin writes the process's stdin frames in order, answering each.
func (a *Agent) writeStdin(p *process) {
	for {
		var f *Frame
		select {
		case f = <-p.stdinq:
		case <-p.gone:
			// Forgotten (its exit sent, or its container deleted): the
			// pipe's end goes with it.
			if p.console == nil {
				p.stdin.Close()
			}
			return
		}
		var err error
		if f.Type == TypeCloseStdin {
			if p.console != nil {
				// The end of what was typed: the pty stays, as a
				// terminal does when its keyboard goes quiet.
				a.reply(f, nil)
				continue
			}
			err = p.stdin.Close()
		} else {
			_, err = p.stdin.Write(f.Data)
		}
		a.reply(f, err)
		if f.Type == TypeCloseStdin {
			// Later frames find a closed pipe and say so.
			for {
				select {
				case f := <-p.stdinq:
					a.reply(f, os.ErrClosed)
				case <-p.gone:
					return
				}
			}
		}
	}
}

func (a *Agent) reply(f *Frame, err error) {
	r := &Frame{Type: TypeReply, ID: f.ID, Proc: f.Proc, Container: f.Container}
	if err != nil {
		r.Error = err.Error()
	}
	a.conn.Write(r)
}

func (a *Agent) handle(f *Frame) error {
	if f.ID == 0 {
		return fmt.Errorf("%w: request %q without an ID", ErrMalformed, f.Type)
	}
	name := f.Proc
	if name == "" {
		name = "init"
	}
	if err := CheckContainerName(f.Container); err != nil {
		return err
	}
	ctr := f.Container
	switch f.Type {
	case TypeSandbox:
		return a.prepareSandbox(f.Create)
	case TypeDelete:
		// Off the reading loop: a container's processes may take a
		// while to die (a read stuck on the share), the others' requests
		// go on.
		go func() { a.reply(f, a.remove(ctr)) }()
		return errQueued
	case TypeResume:
		if err := f.Resume.Check(); err != nil {
			return err
		}
		return a.sys.Resume(f.Resume)
	case TypeCreate:
		return a.create(ctr, name, f.Create)
	case TypeStart, TypeExec:
		// Replied to here: the process's exit, which may come at once,
		// is written after the reply that started it. (On the agent
		// channel the two travel on different HTTP/2 streams and may
		// reach the host in either order; the host registers a process
		// before it asks for it.)
		var err error
		if f.Type == TypeStart {
			err = a.start(ctr, name)
		} else {
			err = a.exec(ctr, name, f.Exec)
		}
		a.reply(f, err)
		if err == nil {
			if p, _ := a.proc(ctr, name, true); p != nil {
				p.replyOnce.Do(func() { close(p.replied) })
			}
		}
		return errQueued
	case TypeSignal:
		p, err := a.proc(ctr, name, true)
		if err != nil {
			return err
		}
		if f.Signal <= 0 || f.Signal > 64 {
			return fmt.Errorf("%w: signal %d", ErrMalformed, f.Signal)
		}
		a.mu.Lock()
		reaped := p.reaped
		a.mu.Unlock()
		if reaped {
			// Its pid may be another process's by now.
			return fmt.Errorf("process %q has exited", name)
		}
		return a.sys.Signal(p.pid, f.Signal)
	case TypeResize:
		p, err := a.proc(ctr, name, true)
		if err != nil {
			return err
		}
		if p.console == nil || f.Size == nil {
			return fmt.Errorf("%w: resize of a process without a terminal", ErrMalformed)
		}
		return a.sys.Resize(p.console, *f.Size)
	case TypeStdin, TypeCloseStdin:
		p, err := a.proc(ctr, name, true)
		if err != nil {
			return err
		}
		if p.stdinq == nil {
			return fmt.Errorf("process %s has no stdin", name)
		}
		// Written in order by the process's stdin writer, which replies
		// once the bytes are in the pipe: a process not reading its
		// stdin must not stop the agent reading the channel (signals
		// come on it too), and the host sends the next chunk only after
		// that reply.
		select {
		case p.stdinq <- f:
			return errQueued
		default:
			return fmt.Errorf("process %s: stdin is busy: wait for the reply before the next chunk", name)
		}
	}
	return fmt.Errorf("%w: unknown request %q", ErrMalformed, f.Type)
}

// procKey is a process's key in Agent.procs: container names hold no
// "/".
func procKey(container, name string) string { return container + "/" + name }

func (a *Agent) proc(container, name string, started bool) (*process, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.procs[procKey(container, name)]
	if p == nil {
		return nil, fmt.Errorf("no process %q", name)
	}
	if started && p.pid == 0 {
		return nil, fmt.Errorf("process %q is not started", name)
	}
	return p, nil
}

func (a *Agent) create(container, name string, c *Create) error {
	if c == nil || len(c.Process.Args) == 0 {
		return fmt.Errorf("%w: create without a process", ErrMalformed)
	}
	if name != "init" {
		return fmt.Errorf("only the container's own process is supported")
	}
	a.mu.Lock()
	removing := a.removing[container]
	a.mu.Unlock()
	if removing != nil {
		// Its previous run's delete is still going on.
		select {
		case <-removing:
		case <-time.After(removeWait):
			return fmt.Errorf("container %q is still being removed", container)
		}
	}
	a.mu.Lock()
	sandbox := a.sandbox
	exists := a.procs[procKey(container, name)] != nil
	a.mu.Unlock()
	switch {
	case exists:
		return fmt.Errorf("container %q exists", container)
	case container != "" && !sandbox:
		return fmt.Errorf("%w: container %q of a pod before the pod's sandbox request", ErrMalformed, container)
	case container == "" && sandbox:
		return fmt.Errorf("%w: a pod's VM runs named containers only", ErrMalformed)
	case container != "" && (c.Root == "" || len(c.Layers) > 0 || c.Upper != ""):
		return fmt.Errorf("%w: a pod's container takes its root from the share (Root), not disks", ErrMalformed)
	}
	root, err := a.sys.PrepareRoot(container, c)
	if err != nil {
		return err
	}
	if container == "" {
		if err := a.startRelays(c.Network); err != nil {
			return err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.procs[procKey(container, name)] != nil {
		return fmt.Errorf("container %q exists", container)
	}
	a.procs[procKey(container, name)] = &process{container: container, name: name, spec: c.Process, root: root, exited: make(chan int, 1), replied: make(chan struct{}), gone: make(chan struct{})}
	return nil
}

// prepareSandbox makes this VM a pod's: its host name, network and
// share, once.
func (a *Agent) prepareSandbox(c *Create) error {
	if c == nil {
		return fmt.Errorf("%w: sandbox without its settings", ErrMalformed)
	}
	a.mu.Lock()
	busy := a.sandbox || len(a.procs) > 0
	a.mu.Unlock()
	if busy {
		return fmt.Errorf("%w: a second sandbox request, or one after a container", ErrMalformed)
	}
	if err := a.sys.PrepareSandbox(c); err != nil {
		return err
	}
	if err := a.startRelays(c.Network); err != nil {
		return err
	}
	a.mu.Lock()
	a.sandbox = true
	a.mu.Unlock()
	return nil
}

// startRelays listens for the network's DNS relays.
func (a *Agent) startRelays(n *Network) error {
	if n == nil {
		return nil
	}
	for _, addr := range n.DNSRelay {
		pc, l, err := a.sys.ListenDNS(addr)
		if err != nil {
			return fmt.Errorf("the name server relay at %s: %w", addr, err)
		}
		go a.relayUDP(addr, pc)
		go a.relayTCP(addr, l)
	}
	return nil
}

// removeWait bounds how long a create waits for its name's removal.
const removeWait = 30 * time.Second

// remove deletes a pod's container: what still runs of it is killed,
// and the agent forgets its processes (their exits, if any come, are
// not reported).
func (a *Agent) remove(container string) error {
	if container == "" {
		return fmt.Errorf("%w: delete names no container", ErrMalformed)
	}
	var gone []*process
	done := make(chan struct{})
	a.mu.Lock()
	if prev := a.removing[container]; prev != nil {
		a.mu.Unlock()
		<-prev // one removal at a time
		a.mu.Lock()
	}
	a.removing[container] = done
	for k, p := range a.procs {
		if p.container == container {
			p.removed.Store(true)
			p.replyOnce.Do(func() { close(p.replied) })
			p.forget()
			gone = append(gone, p)
			delete(a.procs, k)
		}
	}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		if a.removing[container] == done {
			delete(a.removing, container)
		}
		a.mu.Unlock()
		close(done)
	}()
	err := a.sys.RemoveContainer(container)
	for _, p := range gone {
		// Its waiter ends (the reaper no longer finds it).
		select {
		case p.exited <- 137:
		default:
		}
	}
	return err
}

// exec starts a process in the running container under its own name.
func (a *Agent) exec(container, name string, p *Process) error {
	if p == nil || len(p.Args) == 0 {
		return fmt.Errorf("%w: exec without a process", ErrMalformed)
	}
	if name == "init" {
		return fmt.Errorf("%w: exec needs a name of its own", ErrMalformed)
	}
	// The file helper may run before the container's process (a VM
	// booted for its files alone); any other process needs it started.
	init, err := a.proc(container, "init", !p.Files)
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	if p.Files {
		// The container's root as its processes see it (volumes and
		// binds included) while its process runs; else, and for
		// export, its root file system alone.
		root := init.root
		if init.pid != 0 && p.Args[0] != "export" {
			root = fmt.Sprintf("/proc/%d/root", init.pid)
		}
		p.Args = append([]string{p.Args[0], root}, p.Args[1:]...)
	}
	key := procKey(container, name)
	a.mu.Lock()
	if a.procs[key] != nil {
		a.mu.Unlock()
		return fmt.Errorf("process %q exists", name)
	}
	a.procs[key] = &process{container: container, name: name, spec: *p, root: init.root, exited: make(chan int, 1), replied: make(chan struct{}), gone: make(chan struct{})}
	a.mu.Unlock()
	if err := a.start(container, name); err != nil {
		a.mu.Lock()
		delete(a.procs, key)
		a.mu.Unlock()
		return err
	}
	return nil
}

func (a *Agent) start(container, name string) error {
	p, err := a.proc(container, name, false)
	if err != nil {
		return err
	}
	if p.pid != 0 {
		return fmt.Errorf("process %q is started", name)
	}
	var stdio [3]*os.File
	var ours []*os.File
	defer func() {
		for _, f := range stdio {
			if f != nil {
				f.Close()
			}
		}
	}()
	if p.spec.Stdin && !p.spec.Terminal {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		stdio[0], p.stdin = r, w
	} else if stdio[0], err = os.Open(os.DevNull); err != nil {
		return err
	}
	for i := 1; i <= 2; i++ {
		if p.spec.Terminal {
			if stdio[i], err = os.OpenFile(os.DevNull, os.O_WRONLY, 0); err != nil {
				return err
			}
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(ours)
			return err
		}
		stdio[i] = w
		ours = append(ours, r)
	}
	a.mu.Lock() // the reaper looks up the pid under the lock
	pid, console, err := a.sys.StartProcess(container, p.root, &p.spec, stdio)
	if err != nil {
		a.mu.Unlock()
		closeAll(ours)
		if p.stdin != nil {
			p.stdin.Close()
		}
		return err
	}
	p.pid = pid
	if console != nil {
		p.console = console
		ours = append(ours, console)
		if p.spec.Stdin {
			p.stdin = console
		}
	}
	code, early := a.exited[pid]
	delete(a.exited, pid)
	if early {
		p.reaped = true
		p.exited <- code
	}
	a.mu.Unlock()
	if p.stdin != nil {
		p.stdinq = make(chan *Frame, 4)
		go a.writeStdin(p)
	}
	for i, r := range ours {
		p.outs.Add(1)
		go a.copyOut(p, i+1, r)
	}
	go a.waitExit(p)
	return nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// copyOut sends what the process writes on one stream.
func (a *Agent) copyOut(p *process, stream int, r *os.File) {
	defer p.outs.Done()
	defer r.Close()
	name := p.name
	buf := make([]byte, ChunkSize)
	for {
		n, err := r.Read(buf)
		if n > 0 && !p.removed.Load() {
			// (A deleted container's output would reach a new one of
			// its name.)
			a.conn.Write(&Frame{Type: TypeOutput, Container: p.container, Proc: name, Stream: stream, Data: buf[:n]})
		}
		if err != nil {
			// A pty master reads EIO once the last slave is closed.
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.EIO) {
				fmt.Fprintf(os.Stderr, "agent: read the output of %s: %v\n", name, err)
			}
			return
		}
	}
}

// outputGrace is how long, after the process exits, its output may still
// drain (a child it left behind may hold the pipes open).
const outputGrace = time.Second

func (a *Agent) waitExit(p *process) {
	code := <-p.exited
	<-p.replied
	done := make(chan struct{})
	go func() { p.outs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(outputGrace):
	}
	if p.removed.Load() {
		return
	}
	f := &Frame{Type: TypeExit, Container: p.container, Proc: p.name, Exit: &code}
	if p.name == "init" {
		// The host records OOMKilled from it: the cgroup goes with the
		// guest (or the container's removal).
		if st, err := a.sys.Stats(p.container); err == nil {
			f.OOMKills = st.OOMKills
		}
	}
	a.conn.Write(f)
	if p.name != "init" {
		// An exec is done with: its name may be used again, and its pid
		// is the kernel's to reuse.
		a.mu.Lock()
		if k := procKey(p.container, p.name); a.procs[k] == p {
			delete(a.procs, k)
		}
		a.mu.Unlock()
		p.forget()
	}
}

// Reaped records the exit of a child the reaper collected; code is as a
// shell reports it. Unknown pids (orphans reparented to PID 1) are kept
// in case Start has yet to record them, bounded.
func (a *Agent) Reaped(pid, code int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.procs {
		if p.pid == pid && !p.reaped {
			p.reaped = true
			p.exited <- code // its first: the buffer is free
			return
		}
	}
	if len(a.exited) > 1024 {
		clear(a.exited)
	}
	a.exited[pid] = code
}

// ExitCode maps a wait status as a shell does.
func ExitCode(exited bool, status int, signaled bool, sig int) int {
	if signaled {
		return 128 + sig
	}
	if exited {
		return status
	}
	return 255
}

// lookPathDirs is runc's default PATH when the process has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// PathOf returns the process's PATH.
func PathOf(env []string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			return v
		}
	}
	return defaultPath
}

// dnsTimeout bounds one relayed query: a resolver retries after its own
// timeout (5 s by default), so a lost one is dropped, not kept.
const dnsTimeout = 5 * time.Second

// askHost relays one DNS message to the host, which sends it to server
// in the container's network namespace there, and returns the answer.
func (a *Agent) askHost(server string, tcp bool, msg []byte) ([]byte, error) {
	id := a.dnsSeq.Add(1)
	ch := make(chan *Frame, 1)
	a.dnsMu.Lock()
	a.dnsPending[id] = ch
	a.dnsMu.Unlock()
	defer func() {
		a.dnsMu.Lock()
		delete(a.dnsPending, id)
		a.dnsMu.Unlock()
	}()
	if err := a.conn.Write(&Frame{Type: TypeDNSQuery, ID: id, DNS: &DNSQuery{Server: server, TCP: tcp}, Data: msg}); err != nil {
		return nil, err
	}
	select {
	case f := <-ch:
		if f.Error != "" {
			return nil, errors.New(f.Error)
		}
		return f.Data, nil
	case <-time.After(dnsTimeout):
		return nil, errors.New("no answer from the host")
	}
}

func (a *Agent) dnsAnswer(f *Frame) {
	a.dnsMu.Lock()
	ch := a.dnsPending[f.ID]
	a.dnsMu.Unlock()
	if ch != nil {
		select {
		case ch <- f:
		default:
		}
	}
}

// relayUDP answers each datagram with the host's answer; a query the
// host cannot answer gets none (the client retries or gives up, as with
// a lost datagram).
func (a *Agent) relayUDP(server string, pc net.PacketConn) {
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		msg := append([]byte(nil), buf[:n]...)
		go func() {
			ans, err := a.askHost(server, false, msg)
			if err == nil {
				pc.WriteTo(ans, from)
			}
		}()
	}
}

// relayTCP serves DNS over TCP: two-byte length-prefixed messages, each
// relayed in turn, until the client closes or goes quiet.
func (a *Agent) relayTCP(server string, l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var hdr [2]byte
			for {
				c.SetDeadline(time.Now().Add(2 * dnsTimeout))
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				ans, err := a.askHost(server, true, msg)
				if err != nil || len(ans) > 65535 {
					return
				}
				out := binary.BigEndian.AppendUint16(nil, uint16(len(ans)))
				if _, err := c.Write(append(out, ans...)); err != nil {
					return
				}
			}
		}()
	}
}
