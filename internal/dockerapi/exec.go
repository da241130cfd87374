//go:build linux

package dockerapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"
)

// Execs are the daemon's, as dockerd's are: kept in memory from create
// to a while after they end (maxExecs bounds them), never in the store.

// maxExecs bounds the exec records kept; the oldest finished go first,
// then the oldest never started (evictableExec).
const maxExecs = 1024

type execRecord struct {
	id, containerID string
	seq             uint64
	cfg             container.ExecCreateRequest
	mu              sync.Mutex
	running         bool
	started         bool
	pid             int
	exitCode        *int
	master          *os.File // the pty, with Tty, while it runs
	// size is a resize that came before the process had its pty: the
	// CLI resizes as soon as the start answers, while the process may
	// still be starting (it gives up after a few tries, and the
	// terminal would stay 0x0).
	size *unix.Winsize
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) createExec(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	var req container.ExecCreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if len(req.Cmd) == 0 {
		return httpError{http.StatusBadRequest, "No exec command specified"}
	}
	if _, err := engine.ParseDetachKeys(req.DetachKeys); err != nil {
		return httpError{http.StatusBadRequest, err.Error()}
	}
	if !c.Running() || c.State.Status == engine.StatusPaused {
		return httpError{http.StatusConflict, "container " + c.ID + " is not running"}
	}
	rec := &execRecord{id: newID(), containerID: c.ID, cfg: req, seq: execSeq.Add(1)}
	s.mu.Lock()
	if len(s.execs) >= maxExecs {
		if id := evictableExec(s.execs); id != "" {
			delete(s.execs, id)
		}
	}
	s.execs[rec.id] = rec
	s.mu.Unlock()
	return writeJSON(w, http.StatusCreated, container.ExecCreateResponse{ID: rec.id})
}

// execSeq numbers exec records in the order they were made.
var execSeq atomic.Uint64

// evictableExec is the record a full table drops: the oldest finished
// one, else the oldest never started; "" when every one runs.
func evictableExec(execs map[string]*execRecord) string {
	var finished, unstarted *execRecord
	for _, rec := range execs {
		rec.mu.Lock()
		ended, started := rec.exitCode != nil, rec.started
		rec.mu.Unlock()
		switch {
		case ended && (finished == nil || rec.seq < finished.seq):
			finished = rec
		case !started && (unstarted == nil || rec.seq < unstarted.seq):
			unstarted = rec
		}
	}
	if finished != nil {
		return finished.id
	}
	if unstarted != nil {
		return unstarted.id
	}
	return ""
}

func (s *Server) exec(r *http.Request) (*execRecord, error) {
	s.mu.Lock()
	rec := s.execs[r.PathValue("id")]
	s.mu.Unlock()
	if rec == nil {
		return nil, httpError{http.StatusNotFound, "No such exec instance: " + r.PathValue("id")}
	}
	return rec, nil
}

func (s *Server) inspectExec(w http.ResponseWriter, r *http.Request) error {
	rec, err := s.exec(r)
	if err != nil {
		return err
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := container.ExecInspectResponse{
		ID: rec.id, ContainerID: rec.containerID, Running: rec.running, Pid: rec.pid,
		OpenStdin: rec.cfg.AttachStdin, OpenStdout: rec.cfg.AttachStdout, OpenStderr: rec.cfg.AttachStderr,
		ProcessConfig: &container.ExecProcessConfig{Tty: rec.cfg.Tty, User: rec.cfg.User, Entrypoint: rec.cfg.Cmd[0], Arguments: rec.cfg.Cmd[1:]},
	}
	if rec.exitCode != nil {
		code := *rec.exitCode
		out.ExitCode = &code
	}
	return writeJSON(w, http.StatusOK, out)
}

// startExec runs the exec: detached (its stdio /dev/null), or through the
// hijacked connection as an attach does, ending the connection when the
// process's output ends.
func (s *Server) startExec(w http.ResponseWriter, r *http.Request) error {
	rec, err := s.exec(r)
	if err != nil {
		return err
	}
	var req container.ExecStartRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	rec.mu.Lock()
	if rec.started {
		rec.mu.Unlock()
		return httpError{http.StatusConflict, "Exec " + rec.id + " has already been started"}
	}
	rec.started = true
	rec.mu.Unlock()
	cfg := rec.cfg
	o := engine.ExecOptions{ID: rec.id, Cmd: cfg.Cmd, Env: cfg.Env, User: cfg.User, WorkingDir: cfg.WorkingDir, Tty: cfg.Tty, Privileged: cfg.Privileged}
	// The size from the start (API 1.42): the start's, else the create's.
	if req.ConsoleSize != nil {
		o.ConsoleSize = *req.ConsoleSize
	} else if cfg.ConsoleSize != nil {
		o.ConsoleSize = *cfg.ConsoleSize
	}
	if req.Detach {
		p, err := s.e.Exec(r.Context(), rec.containerID, o)
		if err != nil {
			return execError(err)
		}
		if p.Master != nil {
			go io.Copy(io.Discard, p.Master)
		}
		s.track(rec, p)
		w.WriteHeader(http.StatusOK)
		return nil
	}
	// The process's ends of the pipes (or the pty); ours feed the client.
	var closers []*os.File
	pipe := func() (*os.File, *os.File, error) {
		pr, pw, err := os.Pipe()
		if err == nil {
			closers = append(closers, pr, pw)
		}
		return pr, pw, err
	}
	var inR, inW, outR, outW, errR, errW *os.File
	if !cfg.Tty {
		if cfg.AttachStdin {
			if inR, inW, err = pipe(); err != nil {
				return err
			}
			o.Stdin = inR
		}
		if outR, outW, err = pipe(); err != nil {
			return err
		}
		if errR, errW, err = pipe(); err != nil {
			return err
		}
		o.Stdout, o.Stderr = outW, errW
	}
	conn, rw, err := hijack(w, r, cfg.Tty)
	if err != nil {
		for _, f := range closers {
			f.Close()
		}
		return nil
	}
	cl := newClient(conn, rw)
	fw := &frameWriter{w: cl, raw: cfg.Tty}
	p, err := s.e.Exec(r.Context(), rec.containerID, o)
	for _, f := range []*os.File{inR, outW, errW} {
		if f != nil {
			f.Close()
		}
	}
	if err == nil && p.Master != nil {
		if perr := p.PollableMaster(); perr != nil {
			// It runs: serve it as it is (a client that goes is then
			// noticed only when the exec writes).
			s.log.Warn("exec terminal stays blocking", "exec", rec.id, "err", perr)
		}
	}
	if err != nil {
		// As dockerd: the message on the stream, the code in the
		// exec's record (the CLI exits with it).
		for _, f := range closers {
			f.Close()
		}
		code := 126
		var ee *engine.ExecError
		if errors.As(err, &ee) {
			code = ee.Code
		}
		fw.stream(2).Write([]byte(err.Error() + "\n"))
		rec.mu.Lock()
		rec.exitCode = &code
		rec.mu.Unlock()
		cl.end()
		return nil
	}
	var copies sync.WaitGroup
	out := func(dst io.Writer, src *os.File) {
		copies.Add(1)
		go func() {
			defer copies.Done()
			io.Copy(dst, src)
		}()
	}
	var stdin io.WriteCloser // nil: the client's bytes are read and dropped
	detached := make(chan struct{})
	if cfg.Tty {
		out(fw.stream(1), p.Master)
		if cfg.AttachStdin {
			// What the client types, up to its detach keys (as
			// dockerd, a terminal's only).
			keys, _ := engine.ParseDetachKeys(cfg.DetachKeys) // checked at its create
			stdin = &detachWriter{w: keepOpen{p.Master}, keys: keys, detached: detached}
		}
	} else {
		out(fw.stream(1), outR)
		out(fw.stream(2), errR)
		if inW != nil {
			stdin = inW
		}
	}
	go cl.readInput(stdin)
	code := s.track(rec, p)
	copied := make(chan struct{})
	go func() {
		copies.Wait()
		close(copied)
	}()
	go func() {
		select {
		case <-detached:
			// The process runs on with its terminal, as under
			// dockerd; what it writes there is read away until it
			// exits.
			p.Detached()
			cl.end()
			go io.Copy(io.Discard, p.Master)
			<-code
			p.Master.Close()
			return
		case <-code:
			select {
			case <-copied:
			case <-cl.gone:
			}
		case <-cl.gone:
			// The output has nowhere to go: our ends close, and the
			// process meets what a pipeline's or a terminal's reader
			// going means (SIGPIPE at its next write, SIGHUP), as
			// does its stdin's end. One that neither writes nor
			// reads runs on, as under dockerd.
		}
		// Pollable files: closing them wakes the copies.
		for _, f := range []*os.File{p.Master, outR, errR} {
			if f != nil {
				f.Close()
			}
		}
		cl.end()
	}()
	return nil
}

// detachWriter passes what a client types to the exec's terminal until
// the client types its detach keys: those are not passed, detached is
// closed, and later writes fail. A partial match is held until the next
// byte shows whether it is the keys (then passed on with that byte, as
// typed, if not).
type detachWriter struct {
	w        io.WriteCloser
	keys     []byte
	matched  int
	detached chan struct{}
	done     bool
}

func (d *detachWriter) Write(b []byte) (int, error) {
	if d.done {
		return 0, engine.ErrDetached
	}
	out := make([]byte, 0, len(b)+d.matched)
	for _, c := range b {
		if c != d.keys[d.matched] {
			// Not the keys after all: what was held goes on as
			// typed, and c may begin them anew.
			out = append(out, d.keys[:d.matched]...)
			d.matched = 0
			if c != d.keys[0] {
				out = append(out, c)
				continue
			}
		}
		d.matched++
		if d.matched == len(d.keys) {
			d.done = true
			if len(out) > 0 {
				d.w.Write(out)
			}
			close(d.detached)
			return 0, engine.ErrDetached
		}
	}
	if len(out) == 0 {
		return len(b), nil
	}
	if _, err := d.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (d *detachWriter) Close() error { return d.w.Close() }

// keepOpen writes to a file that the writer's end must not close.
type keepOpen struct{ *os.File }

func (keepOpen) Close() error { return nil }

// track records the exec's pid and, when it ends, its exit code; the
// returned channel is closed then.
func (s *Server) track(rec *execRecord, p *engine.ExecProcess) <-chan struct{} {
	rec.mu.Lock()
	rec.running, rec.pid, rec.master = true, p.Pid, p.Master
	if rec.size != nil && p.Master != nil {
		setWinsize(p.Master, rec.size)
	}
	rec.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, err := p.Wait()
		if err != nil {
			code = -1
		}
		rec.mu.Lock()
		rec.running, rec.exitCode, rec.master = false, &code, nil
		rec.mu.Unlock()
	}()
	return done
}

// execError is an exec that could not start: docker answers 500 for a
// command not found or not executable, 409 for a container that stopped.
func execError(err error) error {
	var ee *engine.ExecError
	if errors.As(err, &ee) {
		return httpError{http.StatusInternalServerError, ee.Msg}
	}
	return err
}

// sizeParams reads a resize's h and w.
func sizeParams(r *http.Request) (rows, cols uint16, err error) {
	h, err1 := strconv.Atoi(r.URL.Query().Get("h"))
	w, err2 := strconv.Atoi(r.URL.Query().Get("w"))
	if err1 != nil || err2 != nil || h < 0 || w < 0 || h > 65535 || w > 65535 {
		return 0, 0, httpError{http.StatusBadRequest, "resize: h and w must be numbers from 0 to 65535"}
	}
	return uint16(h), uint16(w), nil
}

// resizeExec sets the window size of an exec's pty.
func (s *Server) resizeExec(w http.ResponseWriter, r *http.Request) error {
	rec, err := s.exec(r)
	if err != nil {
		return err
	}
	rows, cols, err := sizeParams(r)
	if err != nil {
		return err
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	ws := &unix.Winsize{Row: rows, Col: cols}
	switch {
	case rec.master != nil:
		if err := setWinsize(rec.master, ws); err != nil {
			return err
		}
	case rec.cfg.Tty && rec.started && rec.exitCode == nil && !rec.running:
		// Starting: the size is applied when it has its pty.
		rec.size = ws
	default:
		return httpError{http.StatusConflict, "exec " + rec.id + " has no running terminal"}
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// resizeContainer sets the size of a container's terminal, which its
// monitor holds.
func (s *Server) resizeContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	rows, cols, err := sizeParams(r)
	if err != nil {
		return err
	}
	if err := s.e.Resize(r.Context(), c.ID, rows, cols); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// setWinsize sizes a pty. Not through Fd(): that would put the file back
// in blocking mode, and the copies watch it for a client that hung up.
func setWinsize(f *os.File, ws *unix.Winsize) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	if err := raw.Control(func(fd uintptr) { ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) }); err != nil {
		return err
	}
	return ioErr
}
