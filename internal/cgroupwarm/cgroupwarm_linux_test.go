//go:build linux

package cgroupwarm

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
	if fd, _ := ownProcs(); os.Geteuid() != 0 || fd < 0 {
		t.Skip("needs a cgroup.procs of our own we can write (root)")
	} else {
		unix.Close(fd)
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

// Only a cgroup.procs that lists this process is taken as ours: writing
// "0" to another cgroup's would move the process there.
func TestListsSelf(t *testing.T) {
	dir := t.TempDir()
	self := strconv.Itoa(os.Getpid())
	for content, want := range map[string]bool{
		"1\n" + self + "\n77\n": true,
		self + "\n":             true,
		"1\n2\n" + self + "0\n": false,
		"":                      false,
	} {
		p := filepath.Join(dir, "cgroup.procs")
		os.WriteFile(p, []byte(content), 0o644)
		if got := listsSelf(p); got != want {
			t.Errorf("listsSelf(%q) = %v, want %v", content, got, want)
		}
	}
	if listsSelf(filepath.Join(dir, "missing")) {
		t.Error("a missing file lists us")
	}
}
