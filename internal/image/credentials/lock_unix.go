//go:build linux || freebsd || darwin || dragonfly || netbsd || openbsd

package credentials

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// lockFile takes an exclusive flock(2) on the lock file at path, creating
// it (mode 0600) if need be, waiting until it is free or ctx is done. flock
// locks belong to open file descriptions, so two Keychains in one process
// exclude each other as two processes do. The lock file is never removed:
// removing it would let a waiter lock an unlinked file.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	delay := time.Millisecond
	for {
		var ferr error
		if err := rc.Control(func(fd uintptr) {
			ferr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
		}); err != nil {
			f.Close()
			return nil, err
		}
		if ferr == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(ferr, syscall.EWOULDBLOCK) && !errors.Is(ferr, syscall.EINTR) {
			f.Close()
			return nil, &os.PathError{Op: "flock", Path: path, Err: ferr}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, context.Cause(ctx)
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}
