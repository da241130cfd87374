//go:build linux

package engine

import (
	"bufio"
	"context"
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

// A caller that records the exit (Started.RecordsExit) and lets go after
// the monitor wrote "X" (the exit handed to it, and then lost with the
// notify file) records what the exit file says; one that waited for the
// code records through Finish, and lets go of the container (done) only
// then.
func TestStartedRecordingCallerKeepsTheExit(t *testing.T) {
	t.Run("detach after X", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		lost := 0
		st := &Started{Container: &Container{ID: "0123456789ab"}, notify: bufio.NewReader(r), notifyFile: r,
			finishExit: func(context.Context, int) error { return nil }, recordLostExit: func() { lost++ }}
		if _, err := w.Write([]byte("X 3\n")); err != nil {
			t.Fatal(err)
		}
		st.Detach()
		if lost != 1 {
			t.Errorf("Detach of a recording caller looked for a lost exit %d times, want 1", lost)
		}
	})
	t.Run("wait then finish", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		var recorded []int
		done := 0
		st := &Started{Container: &Container{ID: "0123456789ab"}, notify: bufio.NewReader(r), notifyFile: r,
			done: func() { done++ },
			finishExit: func(_ context.Context, code int) error {
				if done != 0 {
					t.Error("the caller let go of the container before it recorded the exit")
				}
				recorded = append(recorded, code)
				return nil
			}}
		w.Write([]byte("S 42\nX 7\n"))
		code, err := st.Wait()
		if err != nil || code != 7 {
			t.Fatalf("Wait: %d, %v; want 7", code, err)
		}
		if done != 0 {
			t.Errorf("Wait of a recording caller let go of the container before Finish")
		}
		if err := st.Finish(context.Background(), code); err != nil {
			t.Fatal(err)
		}
		if len(recorded) != 1 || recorded[0] != 7 || done != 1 {
			t.Errorf("Finish recorded %v and let go %d times; want [7] and once", recorded, done)
		}
	})
	t.Run("not recording", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		done := 0
		st := &Started{Container: &Container{ID: "0123456789ab"}, notify: bufio.NewReader(r), notifyFile: r, done: func() { done++ }}
		w.Write([]byte("X 0\n"))
		if _, err := st.Wait(); err != nil {
			t.Fatal(err)
		}
		if done != 1 {
			t.Errorf("Wait of a caller that does not record let go %d times, want once", done)
		}
		if err := st.Finish(context.Background(), 0); err != nil || done != 1 {
			t.Errorf("Finish of a caller that does not record: %v, let go %d times", err, done)
		}
	})
}
