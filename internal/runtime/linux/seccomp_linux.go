package linux

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime/linux/seccomp"
)

type seccompFilter interface{ load() error }

type compiledSeccomp struct{ f *seccomp.Filter }

func (c compiledSeccomp) load() error { return c.f.Load() }

func compileSeccomp(cfg *specs.LinuxSeccomp) (seccompFilter, error) {
	f, err := seccomp.Compile(cfg)
	if err != nil {
		return nil, err
	}
	return compiledSeccomp{f}, nil
}

// checkSeccomp compiles the profile in the parent so a bad one fails create
// before any process exists.
func checkSeccomp(cfg *specs.LinuxSeccomp) error {
	f, err := seccomp.Compile(cfg)
	if err != nil {
		return err
	}
	f.Release()
	return nil
}
