//go:build linux

package engine

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func threads(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatal("no Threads in /proc/self/status")
	return 0
}

// state is pid's state letter (Z: ended, not reaped), or "gone" once it
// is reaped.
func state(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "gone"
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return "?"
}

// Children reaped later hold no thread while they run, and none is left a
// zombie when it ends.
func TestReapLater(t *testing.T) {
	const n = 30
	before := threads(t)
	var cmds []*exec.Cmd
	for range n {
		cmd := exec.Command("sleep", "100")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		reapLater(cmd)
	}
	defer func() {
		for _, c := range cmds {
			c.Process.Kill()
		}
	}()
	// A blocked wait4 per child would be n more threads.
	if now := threads(t); now-before >= n/2 {
		t.Errorf("%d threads with %d children waited for, %d before", now, n, before)
	}
	pids := make([]int, len(cmds))
	for i, c := range cmds {
		pids[i] = c.Process.Pid
		if err := c.Process.Signal(os.Kill); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, pid := range pids {
		for state(pid) != "gone" {
			if time.Now().After(deadline) {
				t.Fatalf("child %d not reaped: state %s", pid, state(pid))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
