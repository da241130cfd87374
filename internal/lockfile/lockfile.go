// Package lockfile takes flock(2) locks on files, shared or exclusive, with
// or without waiting. Locks belong to the open file description, so they
// exclude goroutines of one process as well as other processes, and vanish
// with a killed process. Waiting polls (with back-off to 50 ms) so that a
// context can end it, and wakes at once when a goroutine of the same
// process lets the lock go; nothing here ever blocks in the kernel.
package lockfile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrBusy: TryLock found the lock held by someone else.
var ErrBusy = errors.New("lock is held by another process or goroutine")

// Lock takes the lock on path (creating the file, mode 0600, if needed),
// waiting while it is held, until ctx ends. The returned func releases it.
func Lock(ctx context.Context, path string, exclusive bool) (func(), error) {
	delay := time.Millisecond
	for {
		// Asked for before the try: a release between the try and the
		// wait still wakes it.
		released := releaseOf(path)
		unlock, err := TryLock(path, exclusive)
		if !errors.Is(err, ErrBusy) {
			return unlock, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(delay):
		case <-released:
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// A lock let go by a goroutine of this process wakes this process's
// waiters on the same path at once, instead of at their next poll (up to
// 50 ms later): in a long-lived process (berth serve) two requests that
// take one lock, such as two network removals, are handed it in turn.
// Waiters on another process's lock still poll.
var (
	releasesMu sync.Mutex
	releases   = map[string]chan struct{}{}
)

// releaseOf is closed at the next release of path by this process.
func releaseOf(path string) <-chan struct{} {
	releasesMu.Lock()
	defer releasesMu.Unlock()
	c, ok := releases[path]
	if !ok {
		c = make(chan struct{})
		releases[path] = c
	}
	return c
}

func released(path string) {
	releasesMu.Lock()
	defer releasesMu.Unlock()
	if c, ok := releases[path]; ok {
		close(c)
		delete(releases, path)
	}
}
