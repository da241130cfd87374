package network

import (
	"sync/atomic"
	"testing"
	"time"
)

// Work left for later runs in a goroutine that Wait waits for; once Wait
// has begun, none is started (a WaitGroup's Add must not race its Wait)
// and the caller is told so.
func TestGoLaterAndWait(t *testing.T) {
	m := &Manager{}
	var ran atomic.Int32
	release := make(chan struct{})
	if !m.goLater(func() { <-release; ran.Add(1) }) {
		t.Fatal("goLater before Wait did not start the work")
	}
	waited := make(chan struct{})
	go func() { m.Wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("Wait returned with work in flight")
	case <-time.After(50 * time.Millisecond):
	}
	// Wait has begun (it is blocked): nothing more is started.
	for !func() bool { m.laterMu.Lock(); defer m.laterMu.Unlock(); return m.waiting }() {
		time.Sleep(time.Millisecond)
	}
	if m.goLater(func() { ran.Add(10) }) {
		t.Error("goLater started work after Wait began")
	}
	close(release)
	<-waited
	if got := ran.Load(); got != 1 {
		t.Errorf("ran %d, want the first work's 1 and not the second's", got)
	}
}
