package events

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Watcher tells a long-lived reader (berth serve) that the journal grew:
// every berth process appends to it right after what it reports (an
// exit recorded, a container removed), so a wait for such a change can
// look again at once rather than at its next poll. It says only that
// something was written; what, the reader looks up.
type Watcher struct {
	mu   sync.Mutex
	next chan struct{}
}

// Watch watches the journal's directory (inotify, in Go's poller) until
// ctx ends.
func (j *Journal) Watch(ctx context.Context) (*Watcher, error) {
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("events: watch: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, j.dir, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("events: watch %s: %w", j.dir, err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	w := &Watcher{next: make(chan struct{})}
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
		for {
			_, err := f.Read(buf)
			if err != nil && !errors.Is(err, unix.EINTR) {
				w.wake() // the watch ended: no waiter stays asleep on it
				return
			}
			w.wake()
		}
	}()
	return w, nil
}

// Next is closed at the journal's next change after the call.
func (w *Watcher) Next() <-chan struct{} {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next
}

func (w *Watcher) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.next)
	w.next = make(chan struct{})
}
