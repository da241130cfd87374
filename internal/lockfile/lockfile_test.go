package lockfile

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestExclusiveAndShared(t *testing.T) {
	p := filepath.Join(t.TempDir(), "l")
	unlock, err := TryLock(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TryLock(p, false); !errors.Is(err, ErrBusy) {
		t.Fatalf("shared lock while held exclusive: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := Lock(ctx, p, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting Lock: %v", err)
	}
	unlock()
	s1, err := TryLock(p, false)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := TryLock(p, false)
	if err != nil {
		t.Fatalf("two shared locks: %v", err)
	}
	if _, err := TryLock(p, true); !errors.Is(err, ErrBusy) {
		t.Fatalf("exclusive while shared: %v", err)
	}
	s1()
	s2()
	done := make(chan error)
	hold, _ := TryLock(p, true)
	go func() {
		u, err := Lock(context.Background(), p, true)
		if err == nil {
			u()
		}
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	hold()
	if err := <-done; err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
}

// A release by this process wakes its waiters on the same path (they
// take the lock then, not at their next poll).
func TestReleaseWakesWaiters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "l")
	unlock, err := TryLock(p, true)
	if err != nil {
		t.Fatal(err)
	}
	waiting := releaseOf(p)
	other := releaseOf(p + "-other")
	select {
	case <-waiting:
		t.Fatal("woken while the lock is held")
	default:
	}
	unlock()
	select {
	case <-waiting:
	default:
		t.Fatal("the release did not wake the waiters")
	}
	select {
	case <-other:
		t.Fatal("a release woke the waiters of another path")
	default:
	}
}
