//go:build !linux || !cgo

// Package sigrelay: see sigrelay_linux.go. Without cgo, or off Linux, it
// relays through os/signal, which costs more but behaves the same.
package sigrelay

import (
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// Async lists the signals a relay may catch.
var Async = []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGABRT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGALRM, syscall.SIGTERM, syscall.SIGWINCH}

// Forwarded is what an attached run passes on to its container.
var Forwarded = Async[:len(Async)-1]

// Relay delivers the signals it catches on C until Stop.
type Relay struct {
	// C receives each caught signal; it is closed by Stop.
	C    <-chan syscall.Signal
	in   chan os.Signal
	done chan struct{}
}

// Start catches sigs until Stop.
func Start(sigs ...syscall.Signal) (*Relay, error) {
	if len(sigs) == 0 {
		return nil, errors.New("sigrelay: no signals to relay")
	}
	in := make(chan os.Signal, 64)
	out := make(chan syscall.Signal, 64)
	list := make([]os.Signal, len(sigs))
	for i, s := range sigs {
		list[i] = s
	}
	signal.Notify(in, list...)
	rl := &Relay{C: out, in: in, done: make(chan struct{})}
	go func() {
		defer close(out)
		for {
			select {
			case s := <-in:
				if sig, ok := s.(syscall.Signal); ok {
					out <- sig
				}
			case <-rl.done:
				return
			}
		}
	}()
	return rl, nil
}

// Stop ends the relay and closes C.
func (rl *Relay) Stop() {
	signal.Stop(rl.in)
	close(rl.done)
}
