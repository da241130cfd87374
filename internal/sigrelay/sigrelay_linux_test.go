//go:build linux && cgo

package sigrelay

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

func receive(t *testing.T, c <-chan syscall.Signal, want syscall.Signal) {
	t.Helper()
	select {
	case got, ok := <-c:
		if !ok {
			t.Fatalf("channel closed, want %v", want)
		}
		if got != want {
			t.Fatalf("got %v, want %v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%v not relayed within 5 s", want)
	}
}

func TestRelayDeliversAndStopRestores(t *testing.T) {
	// SIGUSR1 twice: relayed once, and Stop still restores Go's handler.
	rl, err := Start(syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGHUP, syscall.Signal(40), syscall.SIGUSR1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rl.Stop)
	for _, s := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGHUP, syscall.Signal(40)} {
		// SIGTERM and SIGHUP would end the test binary if not caught.
		if err := syscall.Kill(os.Getpid(), s); err != nil {
			t.Fatal(err)
		}
		receive(t, rl.C, s)
	}
	if _, err := Start(syscall.SIGUSR2); err == nil {
		t.Fatal("a second relay started while one runs")
	}
	rl.Stop()
	if _, ok := <-rl.C; ok {
		t.Fatal("C still open after Stop")
	}
	rl.Stop() // twice is no error

	// The Go runtime's handler is back: os/signal sees SIGUSR1 again.
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	defer signal.Stop(ch)
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	select {
	case s := <-ch:
		if s != syscall.SIGUSR1 {
			t.Fatalf("os/signal got %v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("os/signal did not get SIGUSR1 after Stop: the Go runtime's handler was not restored")
	}

	// And a relay can start again.
	rl, err = Start(syscall.SIGUSR2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rl.Stop)
	syscall.Kill(os.Getpid(), syscall.SIGUSR2)
	receive(t, rl.C, syscall.SIGUSR2)
	rl.Stop()
}

func TestRelayRefusesSignalsItMustNotTake(t *testing.T) {
	for _, s := range []syscall.Signal{syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP,
		syscall.SIGSYS, syscall.SIGPROF, syscall.SIGURG, syscall.SIGCHLD, syscall.SIGPIPE, syscall.SIGKILL, syscall.SIGSTOP, 32, 33, 0, 65} {
		if rl, err := Start(syscall.SIGUSR1, s); err == nil {
			rl.Stop()
			t.Errorf("Start accepted %v", s)
		}
	}
	for _, s := range Async {
		if !relayable(s) {
			t.Errorf("Async lists %v, which cannot be relayed", s)
		}
	}
	if _, err := Start(); err == nil {
		t.Error("Start accepted no signals")
	}
}

// A child started while the relay runs gets the default actions back at
// execve: SIGTERM ends it.
func TestRelayChildrenGetDefaultActions(t *testing.T) {
	rl, err := Start(Async...)
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Stop()
	err = exec.Command("/bin/sh", "-c", "kill -TERM $$; sleep 5").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v, want killed by SIGTERM", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("child ended %v, want killed by SIGTERM", ws)
	}
}

// Signals arriving from another process while relays start and stop: each
// one caught while a relay runs is delivered, none crashes the process or
// reaches a closed channel.
func TestRelayStartStopUnderSignals(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			syscall.Kill(os.Getpid(), syscall.SIGUSR2)
		}
	}()
	// SIGUSR2 reaches the Go runtime between relays: subscribe so its
	// handler ignores it instead of the default action.
	keep := make(chan os.Signal, 1)
	signal.Notify(keep, syscall.SIGUSR2)
	defer signal.Stop(keep)
	got := 0
	for i := 0; i < 200; i++ {
		rl, err := Start(syscall.SIGUSR2)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rl.Stop)
		select {
		case s, ok := <-rl.C:
			if ok && s != syscall.SIGUSR2 {
				t.Fatalf("got %v", s)
			}
			if ok {
				got++
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no SIGUSR2 relayed within 5 s")
		}
		rl.Stop()
	}
	close(stop)
	<-done
	if got == 0 {
		t.Fatal("nothing relayed")
	}
}
