// Package lockfile takes flock(2) locks on files, shared or exclusive, with
// or without waiting. Locks belong to the open file description, so they
// exclude goroutines of one process as well as other processes, and vanish
// with a killed process. Waiting polls (with back-off to 50 ms) so that a
// context can end it; nothing here ever blocks in the kernel.
package lockfile

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrBusy: TryLock found the lock held by someone else.
var ErrBusy = errors.New("lock is held by another process or goroutine")

// Lock takes the lock on path (creating the file, mode 0600, if needed),
// waiting while it is held, until ctx ends. The returned func releases it.
func Lock(ctx context.Context, path string, exclusive bool) (func(), error) {
	delay := time.Millisecond
	for {
		unlock, err := TryLock(path, exclusive)
		if !errors.Is(err, ErrBusy) {
			return unlock, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}
