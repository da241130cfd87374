package events

import (
	"context"
	"testing"
	"time"
)

// A Watcher wakes at each append, by this process or another, and a
// change before the call to Next is not mistaken for a later one.
func TestWatchWakesAtAppend(t *testing.T) {
	j := Open(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := j.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		next := w.Next()
		select {
		case <-next:
			t.Fatalf("round %d: woken before the append", i)
		default:
		}
		if err := j.Append(New(TypeContainer, "die", "c", nil)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-next:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: no wake after an append", i)
		}
	}
	// The watch ends with its context; its last waiters are woken.
	last := w.Next()
	cancel()
	select {
	case <-last:
	case <-time.After(10 * time.Second):
		t.Fatal("waiters left asleep after the watch ended")
	}
}
