//go:build linux

package dockerapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/trace"
)

// Attach through the hijacked connection (POST /containers/{id}/attach):
// the client's request is answered "101 UPGRADED" and the connection then
// carries the container's output (docker's frames without a tty, raw
// bytes with one) and, with stdin=1, the client's input. The docker CLI
// attaches before it starts a container, so that no output is lost: an
// attach to a container that does not run is held (pending) until the
// start, which starts the container with the attached streams; an attach
// to a running one goes through its monitor's attach socket.
//
// Either way the streams reach the monitor as pipes. The start's own
// attach records the exit itself when the container has no restart
// policy (Started.Finish, in serve's process, off the client's context):
// a docker run --rm waits for that, and a monitor's exit handler would
// be one more process to start on its way. Every other attach leaves
// the exit to the handler. The client may go at any moment without the
// exit going unrecorded: when it goes (client: a failed write, or its
// hang-up), everything of its attach goes with it at once, however
// quiet the container: the copies, our pipe ends, a held attach, and the
// monitor's hold on its streams (Started.Detach), which hands the exit
// back to the handler.

// maxPending bounds the attaches held for one container.
const maxPending = 16

// attachment is one client's attached streams, as pipes.
type attachment struct {
	client *client
	tty    bool
	stdin  *os.File // the container's end of the client's input, or nil
	stdout *os.File // our ends the container writes to
	stderr *os.File
	// out frames what goes to the client (the live output and a replay
	// of the past one, one frame at a time).
	out *frameWriter
	// detachKeys, typed on a tty container's stdin, detach the client
	// (detachKeys, ctrl-p,ctrl-q by default, as dockerd): for clients
	// that do not look for them themselves, as the docker CLI does.
	detachKeys []byte
	once       sync.Once
}

// files hands the container's ends to the engine; closeOurs drops our
// copies once the monitor has its own.
// starting: the attach the container starts with, which may record its
// exit (above).
func (a *attachment) files(starting bool) *engine.Attach {
	return &engine.Attach{Stdin: a.stdin, Stdout: a.stdout, Stderr: a.stderr, MonitorRecordsExit: !starting, DetachKeys: a.detachKeys}
}

func (a *attachment) closeOurs() {
	a.once.Do(func() {
		for _, f := range []*os.File{a.stdin, a.stdout, a.stderr} {
			if f != nil {
				f.Close()
			}
		}
	})
}

func (s *Server) attachContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	wantIn, wantOut, wantErr := boolParam(r, "stdin"), boolParam(r, "stdout"), boolParam(r, "stderr")
	logs := boolParam(r, "logs")
	keys, err := engine.ParseDetachKeys(r.URL.Query().Get("detachKeys"))
	if err != nil {
		return httpError{http.StatusBadRequest, err.Error()}
	}
	if !boolParam(r, "stream") {
		// The past output alone (logs=1), or nothing, then the end: an
		// attach that follows nothing, as dockerd answers it.
		conn, rw, err := takeOver(w)
		if err != nil {
			return err
		}
		defer conn.Close()
		if answerUpgrade(rw, r, c.Config.Tty) == nil && logs {
			cl := newClient(conn, rw)
			s.replayLogs(r.Context(), c, &frameWriter{w: cl, raw: c.Config.Tty}, wantOut, wantErr)
			cl.end()
		}
		return nil
	}
	if c.State.Status == engine.StatusPaused {
		return httpError{http.StatusConflict, "You cannot attach to a paused container, unpause it first"}
	}
	s.mu.Lock()
	n := len(s.pending[c.ID])
	s.mu.Unlock()
	if !c.Running() && n >= maxPending {
		return httpError{http.StatusConflict, "too many attaches wait for this container's start"}
	}
	conn, rw, err := takeOver(w)
	if err != nil {
		return err
	}
	a, err := s.wire(conn, rw, c, wantIn, wantOut, wantErr)
	if err != nil {
		conn.Close()
		return nil
	}
	a.detachKeys = keys
	if c.Running() {
		if err := answerUpgrade(rw, r, c.Config.Tty); err != nil {
			a.closeOurs()
			a.client.hangUp()
			return nil
		}
		if logs {
			s.replayLogs(r.Context(), c, a.out, wantOut, wantErr)
		}
		s.attachRunning(r, c.ID, a)
		return nil
	}
	// Held before the client hears the upgrade: it starts the container
	// once it has, and the start must find this attach.
	s.mu.Lock()
	s.pending[c.ID] = append(s.pending[c.ID], a)
	s.mu.Unlock()
	if err := answerUpgrade(rw, r, c.Config.Tty); err != nil {
		s.dropPending(c.ID, a)
		a.closeOurs()
		a.client.hangUp()
		return nil
	}
	if logs {
		// Earlier runs' output; a start meanwhile interleaves its first
		// frames with these, whole frames each.
		s.replayLogs(r.Context(), c, a.out, wantOut, wantErr)
	}
	// A client that goes before the start takes its attach back.
	go func() {
		<-a.client.gone
		if s.dropPending(c.ID, a) {
			a.closeOurs()
		}
	}()
	// Started meanwhile by someone else: attach to it as it runs.
	if cur, err := s.e.Get(r.Context(), c.ID); err == nil && cur.Running() && s.dropPending(c.ID, a) {
		s.attachRunning(r, c.ID, a)
	}
	return nil
}

// attachRunning hands a's streams to the running container's monitor.
func (s *Server) attachRunning(r *http.Request, id string, a *attachment) {
	st, err := s.e.Attach(r.Context(), id, a.files(false))
	a.closeOurs()
	if err != nil {
		a.client.hangUp()
		return
	}
	s.follow(st, a.client)
}

// follow waits for the container's exit, and records it when the start
// left that to us, or lets go of it when the client goes first.
func (s *Server) follow(st *engine.Started, cl *client) {
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		code, err := st.Wait()
		trace.Phase("exit-reported")
		if err != nil {
			return
		}
		// (Nothing to record where the monitor's handler does.)
		if err := st.Finish(context.Background(), code); err != nil {
			s.log.Warn("recording a container's exit", "container", st.Container.ID, "err", err)
		}
	}()
	go func() {
		select {
		case <-exited:
		case <-cl.gone:
			if cl.ended.Load() {
				// The output ended, not the client: the container's
				// exit or a detach by its keys, which the monitor
				// reports at once (and the wait records, the detach
				// event with it). Letting go now could lose that.
				select {
				case <-exited:
					return
				case <-time.After(5 * time.Second):
				}
			}
			st.Detach()
		}
	}()
}

// dropPending forgets a held attach; false if a start took it already.
func (s *Server) dropPending(id string, a *attachment) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := s.pending[id]
	found := false
	for i, h := range held {
		if h == a {
			s.pending[id] = append(held[:i:i], held[i+1:]...)
			found = true
			break
		}
	}
	if len(s.pending[id]) == 0 {
		delete(s.pending, id)
	}
	return found
}

// hijack takes the connection over and answers the upgrade.
func hijack(w http.ResponseWriter, r *http.Request, tty bool) (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := takeOver(w)
	if err != nil {
		return nil, nil, err
	}
	if err := answerUpgrade(rw, r, tty); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, rw, nil
}

// takeOver takes the connection from the HTTP server.
// replayLogs writes a container's logged output so far (attach's
// logs=1) to fw, the streams asked for.
func (s *Server) replayLogs(ctx context.Context, c *engine.Container, fw *frameWriter, wantOut, wantErr bool) {
	var out, errw io.Writer = io.Discard, io.Discard
	if wantOut {
		out = fw.stream(1)
	}
	if wantErr {
		errw = fw.stream(2)
	}
	if err := s.e.Logs(ctx, c.ID, engine.LogOptions{Tail: -1}, out, errw); err != nil && ctx.Err() == nil {
		s.log.Warn("attach: logs", "container", c.ID, "err", err)
	}
}

func takeOver(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be taken over")
	}
	return hj.Hijack()
}

// answerUpgrade writes "101 UPGRADED" (or, for a client that asked for no
// upgrade, 200) with the stream's content type.
func answerUpgrade(rw *bufio.ReadWriter, r *http.Request, tty bool) error {
	ct := "application/vnd.docker.multiplexed-stream"
	if tty {
		ct = "application/vnd.docker.raw-stream"
	}
	if r.Header.Get("Upgrade") != "" {
		fmt.Fprintf(rw, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", ct)
	} else {
		fmt.Fprintf(rw, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n\r\n", ct)
	}
	return rw.Flush()
}

// wire makes the pipes between the connection and the container and the
// goroutines that copy: output to the connection (framed unless tty),
// the connection's bytes to stdin (closed at the client's half-close).
// The connection is closed when the container's output ends; the copies
// end when the client goes.
func (s *Server) wire(conn net.Conn, rw *bufio.ReadWriter, c *engine.Container, wantIn, wantOut, wantErr bool) (*attachment, error) {
	cl := newClient(conn, rw)
	fw := &frameWriter{w: cl, raw: c.Config.Tty}
	a := &attachment{client: cl, tty: c.Config.Tty, out: fw}
	var copies sync.WaitGroup
	var readEnds []*os.File
	pipeOut := func(stream byte, want bool) (*os.File, error) {
		if !want {
			return nil, nil // the engine gives the monitor /dev/null's place
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		readEnds = append(readEnds, pr)
		copies.Add(1)
		go func() {
			defer copies.Done()
			defer pr.Close()
			io.Copy(fw.stream(stream), pr)
		}()
		return pw, nil
	}
	var err error
	if a.stdout, err = pipeOut(1, wantOut); err != nil {
		return nil, err
	}
	if c.Config.Tty {
		// One stream: the pty's.
		a.stderr = nil
	} else if a.stderr, err = pipeOut(2, wantErr); err != nil {
		a.closeOurs()
		return nil, err
	}
	if a.stdout == nil {
		if a.stdout, err = os.OpenFile(os.DevNull, os.O_WRONLY, 0); err != nil {
			return nil, err
		}
	}
	if a.stderr == nil {
		if a.stderr, err = os.OpenFile(os.DevNull, os.O_WRONLY, 0); err != nil {
			return nil, err
		}
	}
	var stdin io.WriteCloser // nil: the client's bytes are read and dropped
	if wantIn && c.Config.OpenStdin {
		pr, pw, err := os.Pipe()
		if err != nil {
			a.closeOurs()
			return nil, err
		}
		a.stdin, stdin = pr, pw
	}
	go cl.readInput(stdin)
	copied := make(chan struct{})
	go func() {
		copies.Wait()
		close(copied)
	}()
	go func() {
		select {
		case <-copied:
			cl.end()
		case <-cl.gone:
			// Cut the copies short: the container may say nothing
			// for a long time. Their read ends close as they return.
			for _, f := range readEnds {
				f.SetReadDeadline(time.Now())
			}
		}
	}()
	return a, nil
}

// takePending removes and returns the attaches held for id.
func (s *Server) takePending(id string) []*attachment {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending[id]
	delete(s.pending, id)
	return p
}

// startAttached starts a container with the first held attach's streams
// (the monitor copies output to one set of files: the others get the
// output through the attach socket once it runs).
func (s *Server) startAttached(r *http.Request, id string, held []*attachment) error {
	first := held[0]
	st, err := s.e.Start(r.Context(), id, first.files(true))
	first.closeOurs()
	if err != nil {
		for _, a := range held {
			a.closeOurs()
			a.client.hangUp()
		}
		return err
	}
	s.follow(st, first.client)
	for _, a := range held[1:] {
		s.attachRunning(r, id, a)
	}
	return nil
}
