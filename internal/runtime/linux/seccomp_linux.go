package linux

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/linux/seccomp"
)

type seccompFilter interface{ load() error }

type compiledSeccomp struct{ f *seccomp.Filter }

func (c compiledSeccomp) load() error { return c.f.Load() }

// compileSeccomp gives the init its filter: the program the parent
// compiled when there is one, else a compile here.
func compileSeccomp(cfg *specs.LinuxSeccomp, prog *seccomp.Program) (seccompFilter, error) {
	if prog != nil {
		f, err := seccomp.FromProgram(*prog)
		if err != nil {
			return nil, err
		}
		return compiledSeccomp{f}, nil
	}
	f, err := seccomp.Compile(cfg)
	if err != nil {
		return nil, err
	}
	return compiledSeccomp{f}, nil
}

// seccompProgram compiles the profile in the parent, so that a bad one
// fails create before any process exists, and returns the program for the
// init. Programs are cached under the runtime root by a hash of the
// profile, the binary, libseccomp's version and the kernel (what the
// compile depends on): libseccomp's compile of a docker-sized profile
// costs ~15 ms here, at every container otherwise. The root is a tmpfs, so
// the cache goes with a reboot, and a new kernel or binary misses it.
func seccompProgram(root string, cfg *specs.LinuxSeccomp) (*seccomp.Program, error) {
	key, keyErr := seccompCacheKey(cfg)
	dir := filepath.Join(root, ".seccomp")
	path := filepath.Join(dir, key)
	if keyErr == nil {
		if data, err := os.ReadFile(path); err == nil {
			var p seccomp.Program
			if json.Unmarshal(data, &p) == nil {
				if _, err := seccomp.FromProgram(p); err == nil {
					return &p, nil
				}
			}
		}
	}
	f, err := seccomp.Compile(cfg)
	if err != nil {
		return nil, err
	}
	defer f.Release()
	p := f.Program()
	if keyErr == nil {
		if data, err := json.Marshal(p); err == nil && os.MkdirAll(dir, 0o700) == nil {
			writeFileAtomic(path, data, 0o600)
		}
	}
	return &p, nil
}

func seccompCacheKey(cfg *specs.LinuxSeccomp) (string, error) {
	prof, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	exe, err := os.Stat("/proc/self/exe")
	if err != nil {
		return "", err
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "v1\x00%s\x00%d\x00%d\x00%s\x00%s\x00", seccomp.LibraryVersion(), exe.Size(), exe.ModTime().UnixNano(),
		unix.ByteSliceToString(uts.Release[:]), unix.ByteSliceToString(uts.Version[:]))
	h.Write(prof)
	return hex.EncodeToString(h.Sum(nil)), nil
}
