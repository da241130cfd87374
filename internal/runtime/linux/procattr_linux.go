package linux

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// unsupportedFeatures refuses settings berth does not implement yet, by
// name, instead of running the container without them.
func unsupportedFeatures(spec *specs.Spec) error {
	var what string
	switch {
	case spec.Linux.IntelRdt != nil:
		what = "linux.intelRdt"
	case spec.Linux.MemoryPolicy != nil:
		what = "linux.memoryPolicy"
	case len(spec.Linux.NetDevices) > 0:
		what = "linux.netDevices"
	case spec.Process != nil && spec.Process.Scheduler != nil:
		what = "process.scheduler"
	case spec.Process != nil && spec.Process.ExecCPUAffinity != nil:
		what = "process.execCPUAffinity"
	default:
		return nil
	}
	return fmt.Errorf("%s is not supported by berth yet: remove it from config.json", what)
}

const (
	personalityLinux32 = 0x0008
	ioprioClassShift   = 13
	ioprioWhoProcess   = 1
)

// setPersonality applies linux.personality (LINUX or LINUX32).
func setPersonality(p *specs.LinuxPersonality) error {
	if p == nil {
		return nil
	}
	var persona uintptr
	switch p.Domain {
	case specs.PerLinux:
	case specs.PerLinux32:
		persona = personalityLinux32
	default:
		return fmt.Errorf("linux.personality.domain %q: use LINUX or LINUX32", p.Domain)
	}
	if len(p.Flags) > 0 {
		return fmt.Errorf("linux.personality.flags %v: no flags are defined; remove them", p.Flags)
	}
	if _, _, errno := unix.Syscall(unix.SYS_PERSONALITY, persona, 0, 0); errno != 0 {
		return fmt.Errorf("personality %s: %w", p.Domain, errno)
	}
	return nil
}

// setIOPriority applies process.ioPriority to this process (inherited at
// execve).
func setIOPriority(p *specs.LinuxIOPriority) error {
	if p == nil {
		return nil
	}
	var class uintptr
	switch p.Class {
	case specs.IOPRIO_CLASS_RT:
		class = 1
	case specs.IOPRIO_CLASS_BE:
		class = 2
	case specs.IOPRIO_CLASS_IDLE:
		class = 3
	default:
		return fmt.Errorf("process.ioPriority.class %q: use IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE", p.Class)
	}
	if p.Priority < 0 || p.Priority > 7 {
		return fmt.Errorf("process.ioPriority.priority %d: use 0 (highest) to 7", p.Priority)
	}
	prio := class<<ioprioClassShift | uintptr(p.Priority)
	if _, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, prio); errno != 0 {
		return fmt.Errorf("set process.ioPriority %s/%d: %w", p.Class, p.Priority, errno)
	}
	return nil
}
