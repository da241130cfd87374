//go:build linux

package dockerapi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// client is a hijacked connection (attach, exec start) and whether the
// client at its other end is still there. Nothing else tells: the HTTP
// server has let go of the connection, and a container or exec that
// writes nothing would otherwise hold its pipes, goroutines and process
// for as long as it runs.
//
// The client is gone when a write to it fails, when reading from it
// fails, or when it hangs up entirely after a half-close: docker's CLI
// half-closes as soon as its stdin ends (at once without -i) and keeps
// reading the output, so the end of its input alone means nothing.
type client struct {
	conn net.Conn
	in   io.Reader
	gone chan struct{}
	once sync.Once
	// ended: gone because the output ended (end), not the client.
	ended atomic.Bool
}

// newClient takes over a hijacked connection. Its input is what the HTTP
// server read ahead with the request, then the connection itself: read
// through the server's reader, the client's half-close would cancel the
// request's context under the handler still using it.
func newClient(conn net.Conn, rw *bufio.ReadWriter) *client {
	var in io.Reader = conn
	if n := rw.Reader.Buffered(); n > 0 {
		ahead, _ := rw.Reader.Peek(n)
		in = io.MultiReader(bytes.NewReader(bytes.Clone(ahead)), conn)
	}
	return &client{conn: conn, in: in, gone: make(chan struct{})}
}

// hangUp marks the client gone and closes the connection.
func (c *client) hangUp() {
	c.once.Do(func() {
		close(c.gone)
		c.conn.Close()
	})
}

// Write sends to the client; a write that fails means it went.
func (c *client) Write(p []byte) (int, error) {
	n, err := c.conn.Write(p)
	if err != nil {
		c.hangUp()
	}
	return n, err
}

// end closes the connection from our side once the output is over: the
// client reads to its end, then we are done with it too.
func (c *client) end() {
	c.ended.Store(true)
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.hangUp()
}

// readInput copies what the client sends to stdin (discarded when stdin
// is nil, or once stdin stops taking it) until the client's input ends,
// closes stdin, and then watches for the client hanging up. It returns
// when the client is gone, or, where a hang-up cannot be seen, at the end
// of its input. It runs for every hijacked connection: it is what notices
// a client that went while the output is quiet.
func (c *client) readInput(stdin io.WriteCloser) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.in.Read(buf)
		if n > 0 && stdin != nil {
			if _, werr := stdin.Write(buf[:n]); werr != nil {
				// The container closed its stdin; the client may
				// still read the output.
				stdin.Close()
				stdin = nil
			}
		}
		if err == nil {
			continue
		}
		if stdin != nil {
			stdin.Close()
		}
		if errors.Is(err, io.EOF) && !waitHangUp(c.conn) {
			return
		}
		c.hangUp()
		return
	}
}

// waitHangUp waits, after the client's half-close, until it closes its
// end entirely (or until our side is closed); false if this kind of
// connection cannot tell. A unix socket reports POLLHUP once both
// directions are shut, which a half-close alone does not do. The wait
// parks in the runtime's poller: it wakes on the socket's events only.
func waitHangUp(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok || conn.LocalAddr().Network() != "unix" {
		// TCP: a peer's FIN looks the same whether it half-closed
		// or went; a write to a peer that went fails instead.
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	raw.Read(func(fd uintptr) bool {
		p := []unix.PollFd{{Fd: int32(fd)}} // POLLHUP and POLLERR are always reported
		n, err := unix.Poll(p, 0)
		if err != nil {
			return !errors.Is(err, unix.EINTR)
		}
		return n > 0
	})
	return true
}
