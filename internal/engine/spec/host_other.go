//go:build !linux

package spec

import (
	"errors"
	"fmt"
	"os"

	securejoin "github.com/cyphar/filepath-securejoin"
)

var errNoHostLimits = errors.New("host limits are only known on Linux")

// hostRlimit reports no limit: nothing is clamped off Linux.
func hostRlimit(int) (uint64, uint64, error) { return ^uint64(0), ^uint64(0), nil }

func hostLastCap() (int, error) { return 0, errNoHostLimits }

func hostBounding() (uint64, error) { return 0, errNoHostLimits }

// hostKernelVersion: no Linux kernel, so no minKernel of a seccomp
// profile is satisfied.
func hostKernelVersion() *kernelVersion { return nil }

func openInRoot(rootfs, name string) (*os.File, error) {
	p, err := securejoin.SecureJoin(rootfs, name)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in %s: %w", name, rootfs, err)
	}
	return os.Open(p)
}

type linuxHost struct{}

func (linuxHost) SwapLimit() bool       { return false }
func (linuxHost) Cpus() string          { return "" }
func (linuxHost) Mems() string          { return "" }
func (linuxHost) OOMScoreAdjFloor() int { return 0 }
func (linuxHost) OOMKillDisable() bool  { return false }
func (linuxHost) BlkioWeight() bool     { return false }

func hostDevices(p, _, _ string) ([]Device, error) {
	return nil, fmt.Errorf("--device %s: devices are only given on Linux", p)
}
