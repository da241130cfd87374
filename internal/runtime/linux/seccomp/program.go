//go:build linux && cgo

package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Program is a compiled filter as bytes (struct sock_filter, native byte
// order) and the seccomp(2) flags to load it with: what a parent hands to
// the process that loads it, and what the runtime caches, so that only the
// first container with a given profile pays for libseccomp's compile.
type Program struct {
	BPF   []byte  `json:"bpf"`
	Flags uintptr `json:"flags"`
}

// Program returns f's program.
func (f *Filter) Program() Program {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := make([]byte, 8*len(f.prog))
	for i, in := range f.prog {
		o := b[8*i:]
		binary.NativeEndian.PutUint16(o[0:2], in.Code)
		o[2], o[3] = in.Jt, in.Jf
		binary.NativeEndian.PutUint32(o[4:8], in.K)
	}
	return Program{BPF: b, Flags: f.flags}
}

// FromProgram returns a Filter that loads p (no libseccomp involved).
func FromProgram(p Program) (*Filter, error) {
	if len(p.BPF) == 0 || len(p.BPF)%8 != 0 || len(p.BPF)/8 > bpfMaxInsns {
		return nil, errors.New("seccomp: malformed compiled program")
	}
	prog := make([]unix.SockFilter, len(p.BPF)/8)
	for i := range prog {
		b := p.BPF[8*i:]
		prog[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(b[0:2]), Jt: b[2], Jf: b[3], K: binary.NativeEndian.Uint32(b[4:8])}
	}
	if last := prog[len(prog)-1]; last.Code != unix.BPF_RET|unix.BPF_K && last.Code != unix.BPF_RET|unix.BPF_A {
		return nil, fmt.Errorf("seccomp: compiled program does not end in a return")
	}
	return &Filter{prog: prog, flags: p.Flags}, nil
}
