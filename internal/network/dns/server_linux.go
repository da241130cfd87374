package dns

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
)

// The server's files, in its directory (<state>/dns):
//
//	server.pid    flock'd by the live server, which wrote its pid in it
//	control.sock  "sync\n" → the server reloads its View, "ok\n" once
//	              every container's sockets are open; "stop\n" → it exits
const (
	pidFile     = "server.pid"
	controlFile = "control.sock"
)

// Reload and idle timing: a reload at least this often catches a change
// whose sync was lost with a killed CLI; a server without containers for
// idleExit exits.
var (
	reloadEvery = 5 * time.Second
	idleExit    = 10 * time.Second
)

// Loader builds the current View (from the engine's records).
type Loader func(ctx context.Context) (*View, error)

// Server serves the containers of one View.
//
// Lock order: mu only; no I/O under it but the opening and closing of
// sockets during a reload.
type Server struct {
	dir  string
	load Loader
	log  *slog.Logger

	mu    sync.Mutex
	view  *View
	ends  map[string]*endpoint // by container ID
	empty time.Time            // when the view last became empty; zero while not
}

// endpoint is the server's sockets inside one container's namespace.
type endpoint struct {
	id   string
	ino  uint64 // the namespace's inode: a restarted container has a new one
	udp  *net.UDPConn
	tcp  *net.TCPListener
	self *Container // replaced at each reload, read under Server.mu
	// busy bounds the queries and TCP connections one container has in
	// flight: a container that floods the server (or names an upstream
	// that never answers) takes at most this many goroutines; beyond,
	// UDP queries are dropped (the client retries) and connections
	// closed.
	busy chan struct{}
}

// maxInFlight is each container's bound (see endpoint.busy).
const maxInFlight = 64

// Serve runs the server of directory dir until ctx ends, the directory
// goes, "stop" is asked, or nothing needs it any more. It returns nil at
// once if another server of dir runs.
func Serve(ctx context.Context, dir string, load Loader, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, pidFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil // another server has it
	}
	lock.Truncate(0)
	lock.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	var lockStat unix.Stat_t
	unix.Fstat(int(lock.Fd()), &lockStat)

	sock := filepath.Join(dir, controlFile)
	os.Remove(sock) // a killed server's; we hold the lock
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return err
	}
	ln.SetUnlinkOnClose(false)
	s := &Server{dir: dir, load: load, log: log, ends: map[string]*endpoint{}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer s.closeAll()
	defer func() {
		// Unlink before close: a client that finds no socket starts a
		// new server, which waits for nothing (our lock goes with us).
		os.Remove(sock)
		ln.Close()
	}()
	if err := s.reload(ctx); err != nil {
		s.log.Warn("dns: first load", "err", err)
	}
	go func() {
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				cancel()
				return
			}
			go s.control(ctx, c, cancel)
		}
	}()
	tick := time.NewTicker(reloadEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, pidFile), &st); err != nil || st.Ino != lockStat.Ino {
			return nil // the state directory went (system reset, rm -rf)
		}
		if err := s.reload(ctx); err != nil {
			s.log.Warn("dns: reload", "err", err)
		}
		s.mu.Lock()
		idle := !s.empty.IsZero() && time.Since(s.empty) >= idleExit
		s.mu.Unlock()
		if idle {
			return nil
		}
	}
}

// control answers one client connection.
func (s *Server) control(ctx context.Context, c *net.UnixConn, stop func()) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch line {
		case "sync\n":
			if err := s.reload(ctx); err != nil {
				fmt.Fprintf(c, "error: %v\n", err)
			} else {
				io.WriteString(c, "ok\n")
			}
		case "stop\n":
			io.WriteString(c, "ok\n")
			stop()
			return
		default:
			fmt.Fprintf(c, "error: unknown request %q\n", line)
		}
	}
}

// reload loads the View and opens and closes sockets to match it.
func (s *Server) reload(ctx context.Context) error {
	v, err := s.load(ctx)
	if err != nil {
		return err
	}
	// Only containers whose namespace is there: one whose detach failed
	// keeps its endpoints in its record (for rm to retry), not its names.
	inos := map[string]uint64{}
	live := &View{Upstreams: v.Upstreams}
	for _, c := range v.Containers {
		if ino, err := nsInode(c.NetNS); err == nil {
			inos[c.ID] = ino
			live.Containers = append(live.Containers, c)
		}
	}
	v = live
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	seen := map[string]bool{}
	for i := range v.Containers {
		c := &v.Containers[i]
		ino := inos[c.ID]
		ep := s.ends[c.ID]
		if ep != nil && ep.ino != ino {
			ep.close()
			ep = nil
		}
		if ep == nil {
			var err error
			if ep, err = listenIn(c.NetNS, ino); err != nil {
				errs = append(errs, fmt.Errorf("container %.12s: %w", c.ID, err))
				continue
			}
			ep.id = c.ID
			s.ends[c.ID] = ep
			go s.serveUDP(ep)
			go s.serveTCP(ep)
		}
		seen[c.ID] = true
		ep.self = c
	}
	for id, ep := range s.ends {
		if !seen[id] {
			ep.close()
			delete(s.ends, id)
		}
	}
	s.view = v
	switch {
	case len(s.ends) > 0:
		s.empty = time.Time{}
	case s.empty.IsZero():
		s.empty = time.Now()
	}
	return errors.Join(errs...)
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ep := range s.ends {
		ep.close()
		delete(s.ends, id)
	}
}

func (ep *endpoint) close() {
	ep.udp.Close()
	ep.tcp.Close()
}

// resolve answers req for the container of ep, forwarding if need be.
func (s *Server) resolve(ep *endpoint, req []byte, tcp bool) []byte {
	s.mu.Lock()
	v, self := s.view, ep.self
	s.mu.Unlock()
	if v == nil || self == nil {
		return nil
	}
	r := v.Answer(self, req)
	if r.msg != nil || len(r.forward) == 0 {
		return r.msg
	}
	if resp := forward(r.forward, req, tcp); resp != nil {
		return resp
	}
	return servfail(req)
}

// servfail is the answer when no upstream answered.
func servfail(req []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return build(h, nil, dnsmessage.RCodeServerFailure, nil)
	}
	return build(h, &q, dnsmessage.RCodeServerFailure, nil)
}

func (s *Server) serveUDP(ep *endpoint) {
	buf := make([]byte, 65535)
	for {
		n, from, err := ep.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		select {
		case ep.busy <- struct{}{}:
		default:
			continue
		}
		req := append([]byte(nil), buf[:n]...)
		go func() {
			defer func() { <-ep.busy }()
			if resp := s.resolve(ep, req, false); resp != nil {
				ep.udp.WriteToUDPAddrPort(resp, from)
			}
		}()
	}
}

func (s *Server) serveTCP(ep *endpoint) {
	for {
		c, err := ep.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		select {
		case ep.busy <- struct{}{}:
		default:
			c.Close()
			continue
		}
		go func() {
			defer func() { <-ep.busy }()
			defer c.Close()
			for {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := readTCP(c)
				if err != nil {
					return
				}
				resp := s.resolve(ep, req, true)
				if resp == nil || writeTCP(c, resp) != nil {
					return
				}
			}
		}()
	}
}

func readTCP(c net.Conn) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err := io.ReadFull(c, msg)
	return msg, err
}

func writeTCP(c net.Conn, msg []byte) error {
	out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(msg)), uint16(len(msg)))
	_, err := c.Write(append(out, msg...))
	return err
}

// forward asks the upstream servers in turn (from the host's namespace)
// and returns the first answer.
func forward(servers []string, req []byte, tcp bool) []byte {
	deadline := time.Now().Add(5 * time.Second)
	per := 5 * time.Second / time.Duration(len(servers))
	for _, srv := range servers {
		if time.Now().After(deadline) {
			break
		}
		network := "udp"
		if tcp {
			network = "tcp"
		}
		c, err := net.DialTimeout(network, srv, per)
		if err != nil {
			continue
		}
		c.SetDeadline(time.Now().Add(per))
		var resp []byte
		if tcp {
			if writeTCP(c, req) == nil {
				resp, _ = readTCP(c)
			}
		} else if _, err := c.Write(req); err == nil {
			buf := make([]byte, 65535)
			if n, err := c.Read(buf); err == nil {
				resp = buf[:n]
			}
		}
		c.Close()
		if len(resp) >= 12 && resp[0] == req[0] && resp[1] == req[1] {
			return resp
		}
	}
	return nil
}

func nsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	if st.Dev == 0 || !isNsfs(path) {
		return 0, fmt.Errorf("%s: not a network namespace", path)
	}
	return st.Ino, nil
}

func isNsfs(path string) bool {
	var fs unix.Statfs_t
	return unix.Statfs(path, &fs) == nil && fs.Type == unix.NSFS_MAGIC
}

// listenIn opens the server's UDP and TCP sockets at Address:53 inside
// the network namespace at path. The sockets stay in that namespace
// whichever thread uses them later.
func listenIn(path string, ino uint64) (*endpoint, error) {
	type result struct {
		ep  *endpoint
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// A thread whose namespace could not be put back is never
		// unlocked: it ends with this goroutine.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter %s: %w", path, err)}
			return
		}
		addr := netip.AddrPortFrom(Address, 53)
		udp, uerr := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
		var tcp *net.TCPListener
		var terr error
		if uerr == nil {
			if tcp, terr = net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(addr)); terr != nil {
				udp.Close()
			}
		}
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			if udp != nil && terr == nil && uerr == nil {
				udp.Close()
				tcp.Close()
			}
			ch <- result{err: fmt.Errorf("return from %s: %w", path, err)}
			return
		}
		runtime.UnlockOSThread()
		if err := errors.Join(uerr, terr); err != nil {
			ch <- result{err: fmt.Errorf("listen at %s:53 in %s: %w", Address, path, err)}
			return
		}
		ch <- result{ep: &endpoint{ino: ino, udp: udp, tcp: tcp, busy: make(chan struct{}, maxInFlight)}}
	}()
	r := <-ch
	return r.ep, r.err
}
