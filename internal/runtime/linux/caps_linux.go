package linux

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/oci"
)

// capSets are the five capability sets of process.capabilities as bit masks.
type capSets struct {
	bounding, effective, permitted, inheritable, ambient uint64
}

var lastCap = sync.OnceValue(func() int {
	data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			return n
		}
	}
	return len(oci.KnownCapabilities()) - 1
})

func newCapSets(c *specs.LinuxCapabilities) (*capSets, error) {
	if c == nil {
		return &capSets{}, nil
	}
	mask := func(field string, names []string) (uint64, error) {
		var m uint64
		for _, n := range names {
			i, ok := oci.CapabilityByName(n)
			if !ok {
				return 0, fmt.Errorf("process.capabilities.%s: unknown capability %q", field, n)
			}
			if i > lastCap() {
				// Known to berth but not to this kernel: skip, as runc does.
				continue
			}
			m |= 1 << uint(i)
		}
		return m, nil
	}
	var s capSets
	var err error
	if s.bounding, err = mask("bounding", c.Bounding); err != nil {
		return nil, err
	}
	if s.effective, err = mask("effective", c.Effective); err != nil {
		return nil, err
	}
	if s.permitted, err = mask("permitted", c.Permitted); err != nil {
		return nil, err
	}
	if s.inheritable, err = mask("inheritable", c.Inheritable); err != nil {
		return nil, err
	}
	if s.ambient, err = mask("ambient", c.Ambient); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *capSets) dropBounding() error {
	for i := 0; i <= lastCap(); i++ {
		if s.bounding&(1<<uint(i)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(i), 0, 0, 0); err != nil {
			if err == unix.EINVAL {
				continue
			}
			return fmt.Errorf("drop %s from the bounding set: %w", oci.CapabilityName(i), err)
		}
	}
	return nil
}

// apply sets effective, permitted and inheritable on the calling thread,
// then the ambient set (which needs each cap in permitted and inheritable).
func (s *capSets) apply() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for i, m := range []uint64{s.effective, s.permitted, s.inheritable} {
		for word := 0; word < 2; word++ {
			v := uint32(m >> (32 * word))
			switch i {
			case 0:
				data[word].Effective = v
			case 1:
				data[word].Permitted = v
			case 2:
				data[word].Inheritable = v
			}
		}
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset (process.capabilities effective/permitted/inheritable): %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	for i := 0; i <= lastCap(); i++ {
		if s.ambient&(1<<uint(i)) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(i), 0, 0); err != nil {
			return fmt.Errorf("raise ambient %s (it must also be permitted and inheritable): %w", oci.CapabilityName(i), err)
		}
	}
	return nil
}
