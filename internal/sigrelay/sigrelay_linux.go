//go:build linux && cgo

// Package sigrelay catches the asynchronous signals a process passes on
// (the runtime's attached `run`, the CLI's attached `run` and `start -a`)
// with a plain C handler that writes each signal's number to a pipe, which
// a goroutine turns into a channel.
//
// Why not os/signal: Notify enables each signal with a round trip to the Go
// runtime's signal thread (a channel send to a goroutine locked to its own
// thread, and the reply), and Stop disables each the same way. For the 53
// signals a run forwards that is 4-5 ms for Notify and 1-4 ms for Stop on
// this 2-core machine, against about 50 µs of sigaction(2) calls here.
//
// Invariants. Only the signals in Async can be relayed: never a
// synchronous fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, whose
// kernel-made instances the Go runtime must see), SIGPROF or SIGURG (the
// Go runtime's own), SIGCHLD or SIGPIPE (which the Go runtime relies on
// seeing), or glibc's 32 and 33 (thread cancellation, setxid). One relay
// at a time per process. The handler is installed with SA_ONSTACK, as the
// Go runtime requires of a handler not its own. A signal caught while the
// pipe is full is dropped, as os/signal drops one when its channel is
// full. Handlers do not survive execve, so children start with the
// default actions as before.
package sigrelay

// #cgo CFLAGS: -Wall -Wextra -Wno-unused-parameter -O2
// int berth_sigrelay_start(int fd, unsigned char gen, const int *sigs, int n);
// void berth_sigrelay_stop(void);
import "C"

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Async lists the signals a relay may catch: every catchable asynchronous
// signal but SIGCHLD, SIGPIPE and SIGURG (see the package comment). It
// includes SIGWINCH, which a caller drops unless it has a terminal.
var Async = func() []syscall.Signal {
	var out []syscall.Signal
	for s := syscall.Signal(1); s <= 64; s++ {
		if relayable(s) {
			out = append(out, s)
		}
	}
	return out
}()

// Forwarded is what an attached run passes on to its container (as
// runc's and docker's do): Async but SIGWINCH, which is about our own
// terminal.
var Forwarded = func() []syscall.Signal {
	var out []syscall.Signal
	for _, s := range Async {
		if s != unix.SIGWINCH {
			out = append(out, s)
		}
	}
	return out
}()

func relayable(s syscall.Signal) bool {
	switch s {
	case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGPIPE, unix.SIGURG,
		unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP, unix.SIGPROF, unix.SIGSYS,
		32, 33:
		return false
	}
	return s >= 1 && s <= 64
}

// Relay delivers the signals it catches on C until Stop.
type Relay struct {
	// C receives each caught signal; it is closed by Stop.
	C   <-chan syscall.Signal
	ch  chan syscall.Signal
	gen byte
}

// The pipe and its reader are made once and kept for the life of the
// process: a handler already running on another thread when Stop restores
// the old ones may still write, and must never find the descriptor closed
// (or reused by another open).
var (
	pipeOnce sync.Once
	pipeW    int
	pipeErr  error

	mu      sync.Mutex
	current *Relay // the running relay, nil when none
	lastGen byte
)

func startPipe() {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		pipeErr = fmt.Errorf("sigrelay: pipe: %w", err)
		return
	}
	pipeW = p[1]
	r := os.NewFile(uintptr(p[0]), "sigrelay")
	go func() {
		// Each write is two bytes, signal and generation, written
		// atomically; reads of an even size keep them paired.
		var buf [64]byte
		for {
			n, err := r.Read(buf[:])
			mu.Lock()
			if rl := current; rl != nil {
				for i := 0; i+1 < n; i += 2 {
					if buf[i+1] != rl.gen {
						continue // caught by a relay that has stopped
					}
					select {
					case rl.ch <- syscall.Signal(buf[i]):
					default: // full: dropped, as os/signal does
					}
				}
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
}

// Start catches sigs (each must be in Async) until Stop.
func Start(sigs ...syscall.Signal) (*Relay, error) {
	if len(sigs) == 0 {
		return nil, errors.New("sigrelay: no signals to relay")
	}
	nums := make([]C.int, 0, len(sigs))
	seen := map[syscall.Signal]bool{}
	for _, s := range sigs {
		if !relayable(s) {
			return nil, fmt.Errorf("sigrelay: %v cannot be relayed (only asynchronous signals the Go runtime does not use)", s)
		}
		// Once each: a second sigaction would save the relay's own
		// handler as the one to restore, and Stop would leave it.
		if !seen[s] {
			seen[s] = true
			nums = append(nums, C.int(s))
		}
	}
	pipeOnce.Do(startPipe)
	if pipeErr != nil {
		return nil, pipeErr
	}
	mu.Lock()
	defer mu.Unlock()
	if current != nil {
		return nil, errors.New("sigrelay: a relay is already running in this process")
	}
	ch := make(chan syscall.Signal, 64)
	lastGen++
	rl := &Relay{C: ch, ch: ch, gen: lastGen}
	current = rl
	if rc := C.berth_sigrelay_start(C.int(pipeW), C.uchar(rl.gen), (*C.int)(unsafe.Pointer(&nums[0])), C.int(len(nums))); rc != 0 {
		C.berth_sigrelay_stop()
		current = nil
		return nil, fmt.Errorf("sigrelay: sigaction: %w", syscall.Errno(-rc))
	}
	return rl, nil
}

// Stop gives the signals their earlier handlers back (the Go runtime's)
// and closes C; a signal still in the pipe then is dropped.
func (rl *Relay) Stop() {
	mu.Lock()
	defer mu.Unlock()
	if current != rl {
		return
	}
	C.berth_sigrelay_stop()
	current = nil
	close(rl.ch)
}
