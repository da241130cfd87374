//go:build linux

package engine

import (
	"bufio"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Detach ends a Wait blocked on the monitor's notify file, a pipe (a
// start) or a blocking socket (an attach), with ErrDetached, and the
// monitor's end sees the caller go.
func TestStartedDetach(t *testing.T) {
	for _, kind := range []string{"pipe", "socket"} {
		t.Run(kind, func(t *testing.T) {
			var ours, monitors *os.File
			if kind == "pipe" {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				ours, monitors = r, w
			} else {
				fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				// Blocking, as Attach makes it.
				ours, monitors = os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "monitor's")
			}
			defer monitors.Close()
			st := &Started{Container: &Container{ID: "0123456789ab"}, notify: bufio.NewReader(ours), notifyFile: ours}
			done := make(chan error, 1)
			go func() {
				_, err := st.Wait()
				done <- err
			}()
			st.Detach()
			select {
			case err := <-done:
				if !errors.Is(err, ErrDetached) {
					t.Errorf("Wait after Detach: %v, want ErrDetached", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("Wait did not return after Detach")
			}
			// The monitor's side: its next write fails (the caller is gone).
			if _, err := monitors.Write([]byte("X 0\n")); !errors.Is(err, syscall.EPIPE) {
				t.Errorf("the monitor's write after Detach: %v, want EPIPE", err)
			}
		})
	}
}
