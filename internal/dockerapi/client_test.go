//go:build linux

package dockerapi

import (
	"bufio"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// unixPair is a connected pair of unix stream sockets: the client's end
// and the server's.
func unixPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.UnixConn), s.(*net.UnixConn)
}

// A half-close is not a going: the client still reads. Its close is.
func TestClientHangUp(t *testing.T) {
	peer, conn := unixPair(t)
	cl := newClient(conn, bufio.NewReadWriter(bufio.NewReader(conn), bufio.NewWriter(conn)))
	stdin := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		cl.readInput(stdin)
	}()
	peer.Write([]byte("typed"))
	peer.CloseWrite()
	// The input's end reached readInput: stdin is closed before it
	// looks for a hang-up.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if _, closed := stdin.get(); closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the client's half-close did not end its stdin")
		}
	}
	// What the half-closed client reads still arrives.
	if _, err := cl.Write([]byte("out")); err != nil {
		t.Fatalf("write after the half-close: %v", err)
	}
	buf := make([]byte, 3)
	if _, err := peer.Read(buf); err != nil || string(buf) != "out" {
		t.Fatalf("the half-closed client read %q, %v", buf, err)
	}
	select {
	case <-cl.gone:
		t.Fatal("a half-close was taken for the client's going")
	default:
	}
	peer.Close()
	select {
	case <-cl.gone:
	case <-time.After(time.Minute):
		t.Fatal("the client's close went unnoticed")
	}
	<-done
	if got, closed := stdin.get(); got != "typed" || !closed {
		t.Errorf("stdin got %q (closed %v), want the typed bytes and its end", got, closed)
	}
}

// recorder is a stdin that keeps what it was given.
type recorder struct {
	mu     sync.Mutex
	b      []byte
	closed bool
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.b = append(r.b, p...)
	return len(p), nil
}

func (r *recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

func (r *recorder) get() (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.b), r.closed
}
