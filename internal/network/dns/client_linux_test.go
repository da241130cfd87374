package dns

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"testing"
)

// fakeServer listens on dir's control socket and answers every request
// "ok", as a server that loaded the View.
func fakeServer(t *testing.T, dir string) {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(dir, controlFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			c.Write([]byte("ok\n"))
			c.Close()
		}
	}()
}

// A server Sync started that ends before it listens (killed at once) is
// started again at once, not waited for until the timeout.
func TestSyncSpawnsAgainWhenTheServerEnds(t *testing.T) {
	dir := t.TempDir()
	spawns := 0
	spawn := func() (func() bool, error) {
		spawns++
		if spawns == 1 {
			return func() bool { return false }, nil // killed before it listened
		}
		fakeServer(t, dir)
		return func() bool { return true }, nil
	}
	if err := Sync(context.Background(), dir, spawn); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if spawns != 2 {
		t.Errorf("%d spawns, want 2", spawns)
	}
}

// One that never comes up, started again and again, fails with what
// happened rather than looping.
func TestSyncGivesUpOnAServerThatAlwaysEnds(t *testing.T) {
	dir := t.TempDir()
	spawns := 0
	err := Sync(context.Background(), dir, func() (func() bool, error) {
		spawns++
		return func() bool { return false }, nil
	})
	if err == nil || spawns != 3 {
		t.Errorf("Sync: %v after %d spawns, want an error after 3", err, spawns)
	}
}
