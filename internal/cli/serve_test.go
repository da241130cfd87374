//go:build linux

package cli

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a log output written from the dumping goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// SIGUSR1 writes every goroutine's stack between the markers, this
// test's own among them, and the process goes on.
func TestDumpStacksOn(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	dumpStacksOn(ctx, syscall.SIGUSR1, &out, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), stackDumpEnd) {
		if time.Now().After(deadline) {
			t.Fatalf("no stack dump after SIGUSR1: %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	dump := out.String()
	if !strings.HasPrefix(dump, stackDumpBegin+"\n") || !strings.Contains(dump, "cli.TestDumpStacksOn(") || !strings.Contains(dump, "\ngoroutine ") {
		t.Errorf("the dump lacks the markers or this test's goroutine:\n%s", dump)
	}
}
