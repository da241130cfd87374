//go:build linux

package cri

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/engine/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
)

// Streaming. Exec, Attach and PortForward answer the URL of a session on
// berth serve's streaming server, which speaks the kubelet's streaming
// protocols (SPDY and WebSocket, through k8s.io/cri-streaming, as
// containerd's and CRI-O's CRI servers do): `kubectl exec`, `attach` and
// `port-forward` reach it through the kubelet, crictl directly. A URL
// holds a single-use token that lives for a minute; the session runs over
// the engine (stream_runtime.go).
//
// Invariants:
//   - Every session has a context that ends when the client's connection
//     ends or the server stops: net/http stops watching a connection once
//     it is taken over (the upgrade to SPDY or WebSocket), so the server
//     watches it itself (sessionConn). At that end an exec's process is
//     killed, an attach lets go of its container (which runs on) and a
//     port-forward's connection is closed: a client that goes leaves no
//     process, file or goroutine behind.
//   - Stop ends every session and waits for them (a few seconds at most).

// StreamServer is berth serve's streaming server (HTTP, no TLS: bind it
// on loopback unless the network between it and the kubelet is trusted,
// as containerd's stream_server_address).
type StreamServer struct {
	lib  streaming.Server
	http *http.Server
	l    net.Listener
	log  *slog.Logger

	ctx    context.Context // ends at Stop; every session's derives from it
	cancel context.CancelFunc

	mu       sync.Mutex
	stopped  bool
	conns    map[*sessionConn]struct{} // taken over from net/http
	sessions sync.WaitGroup
}

// NewStreamServer makes the streaming server over e (the CRI's engine)
// that serves on l once Serve is called. URLs name l's address; an
// unspecified one (0.0.0.0, ::) is named by the loopback address of its
// family, which the kubelet on this node reaches.
func NewStreamServer(e *engine.Engine, l net.Listener, log *slog.Logger) (*StreamServer, error) {
	base, err := streamBaseURL(l.Addr())
	if err != nil {
		return nil, err
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = base.Host
	cfg.BaseURL = base
	ctx, cancel := context.WithCancel(context.Background())
	ss := &StreamServer{l: l, log: log, ctx: ctx, cancel: cancel, conns: map[*sessionConn]struct{}{}}
	ss.lib, err = streaming.NewServer(cfg, &streamRuntime{e: e, log: log, stop: ctx})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("the CRI's streaming server: %w", err)
	}
	ss.http = &http.Server{Handler: ss, ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return ss, nil
}

// streamBaseURL is the URL sessions are named under for a listener at addr.
func streamBaseURL(addr net.Addr) (*url.URL, error) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("the CRI's streaming server listens on %s %s: want a TCP address", addr.Network(), addr)
	}
	ip := tcp.IP
	switch {
	case ip == nil || ip.Equal(net.IPv4zero):
		ip = net.IPv4(127, 0, 0, 1)
	case ip.Equal(net.IPv6unspecified):
		ip = net.IPv6loopback
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))}, nil
}

// URL is the base URL of the sessions.
func (ss *StreamServer) URL() string {
	u, _ := streamBaseURL(ss.l.Addr())
	return u.String()
}

// Serve serves until Stop; it returns nil after Stop.
func (ss *StreamServer) Serve() error {
	err := ss.http.Serve(ss.l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Stop closes the listener and ends every session: an exec's process is
// killed (its client still hears the exit code), an attach lets go of
// its container, a port-forward's connections close. It waits for them,
// a few seconds at most, then cuts what is left.
func (ss *StreamServer) Stop() {
	ss.mu.Lock()
	ss.stopped = true
	var forwards []*sessionConn
	for c := range ss.conns {
		if c.forward {
			forwards = append(forwards, c)
		}
	}
	ss.mu.Unlock()
	ss.cancel()
	ss.http.Close()
	// A port-forward's session waits for new streams until its
	// connection closes.
	for _, c := range forwards {
		c.Close()
	}
	if ss.waitSessions(5 * time.Second) {
		return
	}
	ss.mu.Lock()
	left := make([]*sessionConn, 0, len(ss.conns))
	for c := range ss.conns {
		left = append(left, c)
	}
	ss.mu.Unlock()
	for _, c := range left {
		c.Close()
	}
	if !ss.waitSessions(time.Second) {
		ss.log.Warn("cri: streaming sessions still ending after their connections were closed; stopping without them")
	}
}

// waitSessions waits for the sessions to end, d at most.
func (ss *StreamServer) waitSessions(d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		ss.sessions.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// ServeHTTP gives each request a context of its own, which ends at Stop
// and, once the connection is taken over, when the client's connection
// ends.
func (ss *StreamServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ss.mu.Lock()
	if ss.stopped {
		ss.mu.Unlock()
		http.Error(w, "berth serve is stopping", http.StatusServiceUnavailable)
		return
	}
	ss.sessions.Add(1)
	ss.mu.Unlock()
	defer ss.sessions.Done()
	ctx, cancel := context.WithCancel(ss.ctx)
	defer cancel()
	forward := strings.Contains(r.URL.Path, "/portforward/")
	ss.lib.ServeHTTP(&sessionWriter{ResponseWriter: w, ss: ss, end: cancel, forward: forward}, r.WithContext(ctx))
}

// sessionWriter hands the library a connection it watches when the
// library takes it over (SPDY and WebSocket both do, through Hijack). It
// has no Unwrap: the library's WebSocket path unwraps writers to the
// first one, which must be this one.
type sessionWriter struct {
	http.ResponseWriter
	ss      *StreamServer
	end     context.CancelFunc
	forward bool // a port-forward's session
}

func (w *sessionWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

func (w *sessionWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	c := &sessionConn{Conn: conn, in: rw.Reader, end: w.end, ss: w.ss, forward: w.forward}
	w.ss.mu.Lock()
	stopped := w.ss.stopped
	if !stopped {
		w.ss.conns[c] = struct{}{}
	}
	w.ss.mu.Unlock()
	if stopped {
		conn.Close()
		w.end()
		return nil, nil, errors.New("berth serve is stopping")
	}
	// Reads go through c (what net/http read ahead first), so that the
	// client's end is seen.
	return c, bufio.NewReadWriter(bufio.NewReader(c), rw.Writer), nil
}

// sessionConn is a taken-over connection: its end (a failed read: the
// client went; or Close) ends the session's context.
type sessionConn struct {
	net.Conn
	in      *bufio.Reader
	end     context.CancelFunc
	ss      *StreamServer
	forward bool
	closed  atomic.Bool
}

func (c *sessionConn) Read(p []byte) (int, error) {
	n, err := c.in.Read(p)
	if err != nil {
		c.end()
		if c.closed.Load() {
			// Closed on this side (the session is over): the end of
			// the stream, not a failure for the library to log.
			err = io.EOF
		}
	}
	return n, err
}

func (c *sessionConn) Close() error {
	c.closed.Store(true)
	c.end()
	c.ss.mu.Lock()
	delete(c.ss.conns, c)
	c.ss.mu.Unlock()
	return c.Conn.Close()
}

// ServeStreams makes Exec, Attach and PortForward answer URLs of ss.
func (s *Server) ServeStreams(ss *StreamServer) { s.streams = ss }

// errNoStreams answers the streaming calls of a server without a
// streaming server.
var errNoStreams = status.Error(codes.Unimplemented, "this CRI server has no streaming server: berth serve starts one with the CRI (--stream-address)")

// streamContainer finds a running CRI container for a session: NotFound
// for one that does not exist, FailedPrecondition for one that does not
// run (containerd's codes).
func (s *Server) streamContainer(ctx context.Context, id string) (*engine.Container, *containerMeta, error) {
	c, m, err := s.container(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, status.Errorf(codes.NotFound, "container %q: %v", id, err)
	}
	if err != nil {
		return nil, nil, grpcError(err)
	}
	if c.State.Status != engine.StatusRunning {
		return nil, nil, status.Errorf(codes.FailedPrecondition, "container %s is %s, not running", c.ID, c.State.Status)
	}
	return c, m, nil
}

// Exec answers the URL of a session that runs a command in a running
// container, with the streams the request names.
func (s *Server) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if s.streams == nil {
		return nil, errNoStreams
	}
	if len(req.GetCmd()) == 0 || req.GetCmd()[0] == "" {
		return nil, status.Error(codes.InvalidArgument, "Exec: no command given")
	}
	c, _, err := s.streamContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return s.streams.lib.GetExec(&runtimeapi.ExecRequest{ContainerId: c.ID, Cmd: req.GetCmd(),
		Tty: req.GetTty(), Stdin: req.GetStdin(), Stdout: req.GetStdout(), Stderr: req.GetStderr()})
}

// Attach answers the URL of a session attached to a running container's
// streams.
func (s *Server) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if s.streams == nil {
		return nil, errNoStreams
	}
	c, _, err := s.streamContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return s.streams.lib.GetAttach(&runtimeapi.AttachRequest{ContainerId: c.ID,
		Tty: req.GetTty(), Stdin: req.GetStdin(), Stdout: req.GetStdout(), Stderr: req.GetStderr()})
}

// PortForward answers the URL of a session that forwards connections to
// ports on the loopback of a ready pod's network namespace.
func (s *Server) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if s.streams == nil {
		return nil, errNoStreams
	}
	p, err := s.sandbox(ctx, req.GetPodSandboxId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "pod sandbox %q: %v", req.GetPodSandboxId(), err)
	}
	if err != nil {
		return nil, grpcError(err)
	}
	if p.State != engine.PodReady {
		return nil, status.Errorf(codes.FailedPrecondition, "pod sandbox %s is %s, not ready", p.ID, p.State)
	}
	for _, port := range req.GetPort() {
		if port <= 0 || port > 65535 {
			return nil, status.Errorf(codes.InvalidArgument, "PortForward: port %d is not a TCP port (1-65535)", port)
		}
	}
	return s.streams.lib.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: p.ID, Port: req.GetPort()})
}
