//go:build linux

package cgroupwarm

import (
	"os"
	"testing"
	"time"
)

func isRunning() bool {
	mu.Lock()
	defer mu.Unlock()
	return running
}

func waitStopped(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for isRunning() {
		if time.Now().After(deadline) {
			t.Fatal("the warm-up still runs 5 s after its last hold ended")
		}
		time.Sleep(time.Millisecond)
	}
}

// Two holds share one warm-up, which writes while either is out and stops
// with the last.
func TestHoldWarmsUntilTheLastRelease(t *testing.T) {
	if os.Geteuid() != 0 || ownProcs() < 0 {
		t.Skip("needs a cgroup.procs of our own we can write (root)")
	}
	waitStopped(t)
	before := writes.Load()
	r1 := Hold()
	r2 := Hold()
	time.Sleep(50 * time.Millisecond)
	if !isRunning() {
		t.Fatal("not running with two holds out")
	}
	r1()
	r1() // twice is once
	time.Sleep(20 * time.Millisecond)
	if !isRunning() {
		t.Fatal("stopped with one hold still out")
	}
	mid := writes.Load()
	if mid-before < 3 {
		t.Fatalf("%d writes in 70 ms, want several", mid-before)
	}
	r2()
	waitStopped(t)
	after := writes.Load()
	time.Sleep(20 * time.Millisecond)
	if writes.Load() != after {
		t.Fatal("writes after the warm-up stopped")
	}
	// And it starts again.
	r3 := Hold()
	time.Sleep(10 * time.Millisecond)
	r3()
	waitStopped(t)
	if writes.Load() == after {
		t.Fatal("a new hold made no write")
	}
}
