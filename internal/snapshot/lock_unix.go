//go:build unix

package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// errBusy: tryLock found the lock held.
var errBusy = errors.New("layer is busy")

// lock takes the layer's flock, waiting (polling, so that ctx can end the
// wait) while another unpack or removal holds it.
func (s *Store) lock(ctx context.Context, alg, hx string) (func(), error) {
	delay := time.Millisecond
	for {
		unlock, err := s.tryLock(alg, hx)
		if !errors.Is(err, errBusy) {
			return unlock, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("snapshot: waiting for layer %s:%s: %w", alg, hx, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

func (s *Store) tryLock(alg, hx string) (func(), error) {
	p := filepath.Join(s.root, "locks", alg+"-"+hx)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("snapshot: lock layer %s:%s: %w", alg, hx, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errBusy
		}
		return nil, fmt.Errorf("snapshot: lock layer %s:%s: %w", alg, hx, err)
	}
	return func() { f.Close() }, nil
}
