package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Channel is one end of the agent's conversation as frames: requests
// and their replies, events. The agent channel (GuestChannel in the
// guest, HostChannel in the VM's shim) carries them as gRPC calls; Conn,
// a pod's container shim's socket to the pod's shim, as framed JSON.
type Channel interface {
	Read() (*Frame, error)
	Write(*Frame) error
}

// ServiceName is the agent's gRPC service: one unary method per request
// type (methods), each taking and answering a Frame, and the server
// stream EventsMethod.
const ServiceName = "berth.agent.v2.Agent"

// EventsMethod is the agent's one server stream: its output, exit and
// DNS query frames, in the order it wrote them. The host opens it once,
// right after the handshake.
const EventsMethod = "Events"

// methods are the service's methods by the request type each carries.
var methods = map[string]string{
	TypeCreate: "Create", TypeStart: "Start", TypeExec: "Exec", TypeSignal: "Signal",
	TypeStdin: "Stdin", TypeCloseStdin: "CloseStdin", TypeResize: "Resize",
	TypeStats: "Stats", TypeTop: "Top", TypePoweroff: "Poweroff", TypeResume: "Resume",
	TypeSandbox: "Sandbox", TypeDelete: "Delete",
	// The host's answer to the agent's DNS query (the query's ID): the
	// call's own reply is empty.
	TypeDNSAnswer: "DNSAnswer",
}

// FullMethod is the gRPC path of a request type's method ("" for a type
// that is no request).
func FullMethod(typ string) string {
	if m, ok := methods[typ]; ok {
		return "/" + ServiceName + "/" + m
	}
	return ""
}

// jsonCodec encodes the agent's messages (Frame) as JSON: the messages
// are the Go types of this package, shared by both ends, and gRPC is
// the framing, multiplexing and flow control under them.
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)   { return json.Marshal(v) }
func (jsonCodec) Unmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
func (jsonCodec) Name() string                    { return "json" }
func callOptions() []grpc.CallOption              { return []grpc.CallOption{grpc.ForceCodec(jsonCodec{})} }
func fullEvents() string                          { return "/" + ServiceName + "/" + EventsMethod }
func statusText(err error) string                 { return statusMessage(status.Convert(err)) }
func statusMessage(st *status.Status) string {
	if st.Code() == codes.Unknown {
		// The agent's own failure, in its words.
		return st.Message()
	}
	return fmt.Sprintf("%s (%s)", st.Message(), st.Code())
}

// Flow-control windows, fixed (which also keeps gRPC's bandwidth probes
// off the channel): output streams to the host in large windows, the
// host's requests are small.
const (
	hostWindow  = 1 << 20
	guestWindow = 256 << 10
)

// DNSAnswerTimeout bounds the host's call that answers a relayed DNS
// query: longer than the agent waits for an answer (dnsTimeout).
const DNSAnswerTimeout = dnsTimeout + time.Second

// maxHeaderList bounds one call's headers, each way.
const maxHeaderList = 64 << 10

// The handshake, before gRPC: lines of JSON (a greeting each). The agent
// writes its versions (greeting.Agent); the host answers with the
// version it chose (greeting.Version); the agent confirms it (the same
// Version) or refuses it (greeting.Error) and reads the next choice.
// Only then does either end speak gRPC. So a VM saved as a template
// while its agent waits for the host's choice holds no connection state:
// each clone's host starts a fresh gRPC connection over the restored
// port, with the choice.
type greeting struct {
	Agent   *Hello `json:"agent,omitempty"`
	Version int    `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

// maxGreeting bounds one greeting line.
const maxGreeting = 4096

func writeGreeting(w io.Writer, g greeting) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// readGreeting reads one greeting line a byte at a time: what follows it
// on the stream is gRPC's, which must not be read here. A stream's end
// before any byte calls onEOF (nil: the end is the error) and reads on.
func readGreeting(r io.Reader, onEOF func() error) (greeting, error) {
	var g greeting
	line := make([]byte, 0, 128)
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			if len(line) == maxGreeting {
				return g, fmt.Errorf("%w: a handshake line over %d bytes", ErrMalformed, maxGreeting)
			}
			line = append(line, b[0])
			continue
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			if onEOF == nil || len(line) > 0 {
				return g, io.ErrUnexpectedEOF
			}
			if err := onEOF(); err != nil {
				return g, err
			}
			continue
		}
		if err != nil {
			return g, err
		}
	}
	if err := json.Unmarshal(line, &g); err != nil {
		return g, fmt.Errorf("%w: handshake line %.60q: %v", ErrMalformed, line, err)
	}
	return g, nil
}

// ReadHello reads the agent's greeting: the versions it speaks. The
// agent then waits for Open's choice (a VM template is saved there).
func ReadHello(conn net.Conn, deadline time.Time) (*Hello, error) {
	conn.SetReadDeadline(deadline)
	defer conn.SetReadDeadline(time.Time{})
	g, err := readGreeting(conn, nil)
	if err != nil {
		return nil, fmt.Errorf("the agent's hello: %w", err)
	}
	if g.Agent == nil {
		return nil, fmt.Errorf("%w: the agent's first line is no hello", ErrMalformed)
	}
	return g.Agent, nil
}

// HostChannel is the host's end of the agent channel: a gRPC client on
// the VM's port. Write makes a request's call (off the caller's
// goroutine; its reply, a failure as Frame.Error, comes back through
// Read under the request's ID); Read returns those replies and the
// agent's events as they come. Requests whose order matters (a
// process's stdin chunks) are sent one after the other's reply, as the
// shim does.
type HostChannel struct {
	cc     *grpc.ClientConn
	ctx    context.Context
	cancel context.CancelFunc
	in     chan *Frame
	done   chan struct{} // closed when the event stream ended
	err    error         // why, set before done closes
}

// Open chooses the agent's protocol version v on conn (whose hello
// ReadHello read, here or in the VM a template was saved from), waits
// for the agent's consent and opens gRPC over conn: the connection up
// and the event stream open by deadline.
func Open(conn net.Conn, v int, deadline time.Time) (*HostChannel, error) {
	conn.SetDeadline(deadline)
	if err := writeGreeting(conn, greeting{Version: v}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("the agent handshake: %w", err)
	}
	g, err := readGreeting(conn, nil)
	if err == nil && g.Error != "" {
		err = fmt.Errorf("%w: %s", ErrVersion, g.Error)
	} else if err == nil && g.Version != v {
		err = fmt.Errorf("%w: the agent confirmed version %d, not %d", ErrMalformed, g.Version, v)
	}
	conn.SetDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("the agent handshake: %w", err)
	}
	var used atomic.Bool
	cc, err := grpc.NewClient("passthrough:///berth-agent",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
			// The port is one stream: a connection that ended is not
			// made again.
			if used.Swap(true) {
				return nil, errors.New("the agent channel ended")
			}
			return conn, nil
		}),
		grpc.WithDisableRetry(),
		grpc.WithDisableServiceConfig(),
		grpc.WithIdleTimeout(0),
		grpc.WithInitialWindowSize(hostWindow),
		grpc.WithInitialConnWindowSize(hostWindow),
		// What the guest (untrusted) may make the shim hold of one
		// call's headers.
		grpc.WithMaxHeaderListSize(maxHeaderList),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxFrame), grpc.MaxCallSendMsgSize(MaxFrame)),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	h := &HostChannel{cc: cc, in: make(chan *Frame, 64), done: make(chan struct{})}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	if err := h.start(deadline); err != nil {
		h.Close()
		conn.Close()
		return nil, fmt.Errorf("the agent channel: %w", err)
	}
	return h, nil
}

// start connects and opens the event stream.
func (h *HostChannel) start(deadline time.Time) error {
	ctx, cancel := context.WithDeadline(h.ctx, deadline)
	defer cancel()
	h.cc.Connect()
	for s := h.cc.GetState(); s != connectivity.Ready; s = h.cc.GetState() {
		if s == connectivity.TransientFailure || s == connectivity.Shutdown {
			return fmt.Errorf("gRPC connection %s", s)
		}
		if !h.cc.WaitForStateChange(ctx, s) {
			return fmt.Errorf("gRPC connection still %s at the deadline", s)
		}
	}
	st, err := h.cc.NewStream(h.ctx, &grpc.StreamDesc{StreamName: EventsMethod, ServerStreams: true}, fullEvents(), callOptions()...)
	if err != nil {
		return err
	}
	if err := st.SendMsg(&Frame{}); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	go func() {
		for {
			f := new(Frame)
			if err := st.RecvMsg(f); err != nil {
				h.err = err
				if err == io.EOF {
					h.err = errors.New("the agent ended its event stream")
				}
				close(h.done)
				return
			}
			// Blocking when the reader lags: the stream's flow
			// control then holds the agent's output back, not its
			// replies.
			select {
			case h.in <- f:
			case <-h.ctx.Done():
			}
		}
	}()
	return nil
}

// Write sends a request (its reply comes through Read) or, for a
// TypeDNSAnswer, the answer to the agent's query: that one waits for its
// call (at most DNSAnswerTimeout).
func (h *HostChannel) Write(f *Frame) error {
	method := FullMethod(f.Type)
	if method == "" {
		return fmt.Errorf("%w: %q is no request", ErrMalformed, f.Type)
	}
	select {
	case <-h.done:
		return fmt.Errorf("the agent channel: %w", h.err)
	default:
	}
	req := *f
	if req.Type == TypeDNSAnswer {
		// Made here, not in the background, so that the caller bounds
		// how many are in flight; and bounded in time: the guest
		// (untrusted) need not take it, and the agent's query has
		// timed out by then anyway. No reply frame follows.
		ctx, cancel := context.WithTimeout(h.ctx, DNSAnswerTimeout)
		defer cancel()
		return h.cc.Invoke(ctx, method, &req, new(Frame), callOptions()...)
	}
	go func() {
		r := new(Frame)
		err := h.cc.Invoke(h.ctx, method, &req, r, callOptions()...)
		if err != nil {
			r = &Frame{Container: req.Container, Proc: req.Proc, Error: statusText(err)}
		}
		r.Type, r.ID = TypeReply, req.ID
		select {
		case h.in <- r:
		case <-h.done:
		case <-h.ctx.Done():
		}
	}()
	return nil
}

// Read returns the next reply or event; once the event stream ended (the
// VM went, the channel broke), the reason.
func (h *HostChannel) Read() (*Frame, error) {
	select {
	case f := <-h.in:
		return f, nil
	case <-h.done:
		select {
		case f := <-h.in:
			return f, nil
		default:
		}
		return nil, h.err
	}
}

// Close ends the channel: calls in flight fail, Read reports the end.
func (h *HostChannel) Close() error {
	h.cancel()
	return h.cc.Close()
}

// GuestChannel is the agent's end: a gRPC server on the VM's port whose
// calls become request frames for Read (under IDs of its own; the
// agent's reply frame, written under that ID, answers the call) and
// whose event stream carries the event frames the agent writes.
type GuestChannel struct {
	version int
	srv     *grpc.Server
	in      chan *Frame
	done    chan struct{} // closed when the connection ended

	seq     atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]chan *Frame

	evMu    sync.Mutex // held across a send on the event stream
	events  grpc.ServerStream
	evReady chan struct{} // closed when the host opened the event stream
}

// AcceptOptions tune the agent's end of the handshake.
type AcceptOptions struct {
	// WaitHost is called when the stream reads its end before the
	// host's choice (a virtio-serial port does, while no host is
	// connected to it); nil makes that end an error.
	WaitHost func() error
}

// Accept is the agent's end of the handshake on conn (hello, the host's
// choice, the agent's consent; a choice it does not speak is refused
// and the host may choose again), then serves gRPC on conn.
func Accept(conn net.Conn, hello Hello, opt AcceptOptions) (*GuestChannel, error) {
	if err := writeGreeting(conn, greeting{Agent: &hello}); err != nil {
		return nil, err
	}
	v := 0
	for v == 0 {
		g, err := readGreeting(conn, opt.WaitHost)
		switch {
		case errors.Is(err, ErrMalformed):
			writeGreeting(conn, greeting{Error: err.Error()})
			continue
		case err != nil:
			return nil, err
		case g.Version < max(hello.Min, MinVersion) || g.Version > min(hello.Max, Version):
			writeGreeting(conn, greeting{Error: fmt.Sprintf("version %d: this agent speaks %d-%d", g.Version, hello.Min, hello.Max)})
			continue
		}
		v = g.Version
	}
	if err := writeGreeting(conn, greeting{Version: v}); err != nil {
		return nil, err
	}
	g := &GuestChannel{
		version: v, in: make(chan *Frame, 64), done: make(chan struct{}),
		pending: map[uint64]chan *Frame{}, evReady: make(chan struct{}),
	}
	g.srv = grpc.NewServer(
		grpc.ForceServerCodec(jsonCodec{}),
		grpc.MaxRecvMsgSize(MaxFrame),
		grpc.MaxSendMsgSize(MaxFrame),
		grpc.InitialWindowSize(guestWindow),
		grpc.InitialConnWindowSize(guestWindow),
		grpc.MaxHeaderListSize(maxHeaderList),
	)
	g.srv.RegisterService(g.serviceDesc(), g)
	wc := &watchedConn{Conn: conn, closed: g.done}
	go g.srv.Serve(&oneConnListener{conn: wc, closed: make(chan struct{})})
	go func() {
		<-g.done
		g.srv.Stop()
	}()
	return g, nil
}

// Version is the protocol version the host chose.
func (g *GuestChannel) Version() int { return g.version }

func (g *GuestChannel) serviceDesc() *grpc.ServiceDesc {
	sd := &grpc.ServiceDesc{ServiceName: ServiceName, HandlerType: (*any)(nil)}
	for typ, name := range methods {
		sd.Methods = append(sd.Methods, grpc.MethodDesc{MethodName: name, Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			f := new(Frame)
			if err := dec(f); err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "%v: %s request: %s", ErrMalformed, name, status.Convert(err).Message())
			}
			return srv.(*GuestChannel).request(ctx, typ, f)
		}})
	}
	sd.Streams = []grpc.StreamDesc{{StreamName: EventsMethod, ServerStreams: true, Handler: func(srv any, st grpc.ServerStream) error {
		return srv.(*GuestChannel).serveEvents(st)
	}}}
	return sd
}

// request hands a call's frame to the agent and answers with its reply.
func (g *GuestChannel) request(ctx context.Context, typ string, f *Frame) (*Frame, error) {
	f.Type = typ
	if typ == TypeDNSAnswer {
		select {
		case g.in <- f:
			return &Frame{}, nil
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	f.ID = g.seq.Add(1)
	ch := make(chan *Frame, 1)
	g.mu.Lock()
	g.pending[f.ID] = ch
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.pending, f.ID)
		g.mu.Unlock()
	}()
	select {
	case g.in <- f:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	select {
	case r := <-ch:
		if r.Error != "" {
			return nil, status.Error(codes.Unknown, r.Error)
		}
		r.ID = 0
		return r, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// serveEvents holds the host's event stream open until the connection
// ends.
func (g *GuestChannel) serveEvents(st grpc.ServerStream) error {
	var f Frame
	if err := st.RecvMsg(&f); err != nil {
		return err
	}
	g.evMu.Lock()
	if g.events != nil {
		g.evMu.Unlock()
		return status.Error(codes.AlreadyExists, "the event stream is open already")
	}
	g.events = st
	close(g.evReady)
	g.evMu.Unlock()
	select {
	case <-st.Context().Done():
	case <-g.done:
	}
	return nil
}

// Read returns the host's next request; io.EOF once the connection
// ended.
func (g *GuestChannel) Read() (*Frame, error) {
	select {
	case f := <-g.in:
		return f, nil
	case <-g.done:
		return nil, io.EOF
	}
}

// Write answers a request (TypeReply, under the ID Read gave it) or
// sends an event on the host's event stream, waiting for the host to
// open it and for its flow control.
func (g *GuestChannel) Write(f *Frame) error {
	if f.Type == TypeReply {
		g.mu.Lock()
		ch := g.pending[f.ID]
		g.mu.Unlock()
		if ch != nil {
			ch <- f
		}
		return nil
	}
	select {
	case <-g.evReady:
	case <-g.done:
		return io.ErrClosedPipe
	}
	g.evMu.Lock()
	defer g.evMu.Unlock()
	return g.events.SendMsg(f)
}

// watchedConn closes closed when gRPC closes the connection.
type watchedConn struct {
	net.Conn
	closed chan struct{}
	once   sync.Once
}

func (c *watchedConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// oneConnListener hands gRPC the one connection, then blocks until
// closed.
type oneConnListener struct {
	mu     sync.Mutex
	conn   net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return portAddr{} }

// FileConn makes a net.Conn of the guest's virtio-serial port.
func FileConn(f *os.File) net.Conn { return fileConn{f} }

type fileConn struct{ *os.File }

func (fileConn) LocalAddr() net.Addr  { return portAddr{} }
func (fileConn) RemoteAddr() net.Addr { return portAddr{} }

type portAddr struct{}

func (portAddr) Network() string { return "virtio-serial" }
func (portAddr) String() string  { return PortName }
