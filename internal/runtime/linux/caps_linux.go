package linux

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/log"
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

// dropUngrantableAmbient removes from c's ambient set what the kernel
// cannot grant (an ambient capability must also be permitted and
// inheritable) and returns the names removed. The runtime spec says such
// a capability is a warning, not a failure; runc 1.1's own `runc spec`
// writes ambient capabilities with no inheritable set.
func dropUngrantableAmbient(c *specs.LinuxCapabilities) []string {
	if c == nil || len(c.Ambient) == 0 {
		return nil
	}
	var kept, dropped []string
	for _, name := range c.Ambient {
		if slices.Contains(c.Permitted, name) && slices.Contains(c.Inheritable, name) {
			kept = append(kept, name)
		} else {
			dropped = append(dropped, name)
		}
	}
	c.Ambient = kept
	return dropped
}

// warnUngrantableAmbient applies dropUngrantableAmbient to p and logs
// what it removed.
func warnUngrantableAmbient(ctx context.Context, p *specs.Process) {
	if p == nil {
		return
	}
	if dropped := dropUngrantableAmbient(p.Capabilities); len(dropped) > 0 {
		log.From(ctx).Warn("process.capabilities.ambient: not granted, as they are not both permitted and inheritable", "capabilities", strings.Join(dropped, ","))
	}
}
