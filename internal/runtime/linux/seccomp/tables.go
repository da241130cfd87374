//go:build linux && cgo

package seccomp

import (
	"errors"
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// ErrInvalidProfile is wrapped by the errors Compile returns for a profile
// that is malformed: an unknown action, architecture, operator or flag, an
// argument index out of range, an errnoRet that cannot be used, and so on.
var ErrInvalidProfile = errors.New("invalid seccomp profile")

// ErrNotSupported is wrapped by the errors returned for a profile that is
// valid but asks for something berth, the linked libseccomp or the running
// kernel cannot do (SCMP_ACT_NOTIFY, a flag the kernel lacks, ...).
var ErrNotSupported = errors.New("seccomp feature not supported")

// profileError carries a complete, human-oriented message while still
// matching one of the sentinel errors above with errors.Is.
type profileError struct {
	msg  string
	kind error
}

func (e *profileError) Error() string { return e.msg }
func (e *profileError) Unwrap() error { return e.kind }

func invalidf(format string, args ...any) error {
	return &profileError{msg: "seccomp: " + fmt.Sprintf(format, args...), kind: ErrInvalidProfile}
}

func unsupportedf(format string, args ...any) error {
	return &profileError{msg: "seccomp: " + fmt.Sprintf(format, args...), kind: ErrNotSupported}
}

// Flag names from the runtime-spec. TSYNC has no constant in specs-go.
const (
	flagTsync            = "SECCOMP_FILTER_FLAG_TSYNC"
	flagLog              = string(specs.LinuxSeccompFlagLog)
	flagSpecAllow        = string(specs.LinuxSeccompFlagSpecAllow)
	flagWaitKillableRecv = string(specs.LinuxSeccompFlagWaitKillableRecv)
)

// actionEntry describes one runtime-spec action.
type actionEntry struct {
	name      specs.LinuxSeccompAction
	lib       libseccomp.ScmpAction
	kernelRet uint32 // SECCOMP_RET_* value, for SECCOMP_GET_ACTION_AVAIL
	takesData bool   // errnoRet is meaningful
	since414  bool   // needs Linux 4.14 (older kernels cannot probe actions)
}

// actions lists the actions berth implements, in the order the spec lists
// them. SCMP_ACT_NOTIFY is handled separately (rejected).
var actions = []actionEntry{
	{specs.ActKill, libseccomp.ActKillThread, unix.SECCOMP_RET_KILL_THREAD, false, false},
	{specs.ActKillProcess, libseccomp.ActKillProcess, unix.SECCOMP_RET_KILL_PROCESS, false, true},
	{specs.ActKillThread, libseccomp.ActKillThread, unix.SECCOMP_RET_KILL_THREAD, false, false},
	{specs.ActTrap, libseccomp.ActTrap, unix.SECCOMP_RET_TRAP, false, false},
	{specs.ActErrno, libseccomp.ActErrno, unix.SECCOMP_RET_ERRNO, true, false},
	{specs.ActTrace, libseccomp.ActTrace, unix.SECCOMP_RET_TRACE, true, false},
	{specs.ActAllow, libseccomp.ActAllow, unix.SECCOMP_RET_ALLOW, false, false},
	{specs.ActLog, libseccomp.ActLog, unix.SECCOMP_RET_LOG, false, true},
}

// archEntry maps a runtime-spec architecture name to libseccomp's token.
type archEntry struct {
	name specs.Arch
	lib  libseccomp.ScmpArch
}

var archs = []archEntry{
	{specs.ArchX86, libseccomp.ArchX86},
	{specs.ArchX86_64, libseccomp.ArchAMD64},
	{specs.ArchX32, libseccomp.ArchX32},
	{specs.ArchARM, libseccomp.ArchARM},
	{specs.ArchAARCH64, libseccomp.ArchARM64},
	{specs.ArchMIPS, libseccomp.ArchMIPS},
	{specs.ArchMIPS64, libseccomp.ArchMIPS64},
	{specs.ArchMIPS64N32, libseccomp.ArchMIPS64N32},
	{specs.ArchMIPSEL, libseccomp.ArchMIPSEL},
	{specs.ArchMIPSEL64, libseccomp.ArchMIPSEL64},
	{specs.ArchMIPSEL64N32, libseccomp.ArchMIPSEL64N32},
	{specs.ArchPPC, libseccomp.ArchPPC},
	{specs.ArchPPC64, libseccomp.ArchPPC64},
	{specs.ArchPPC64LE, libseccomp.ArchPPC64LE},
	{specs.ArchS390, libseccomp.ArchS390},
	{specs.ArchS390X, libseccomp.ArchS390X},
	{specs.ArchPARISC, libseccomp.ArchPARISC},
	{specs.ArchPARISC64, libseccomp.ArchPARISC64},
	{specs.ArchRISCV64, libseccomp.ArchRISCV64},
	{specs.ArchLOONGARCH64, libseccomp.ArchLOONGARCH64},
	{specs.ArchM68K, libseccomp.ArchM68K},
	{specs.ArchSH, libseccomp.ArchSH},
	{specs.ArchSHEB, libseccomp.ArchSHEB},
}

type operatorEntry struct {
	name specs.LinuxSeccompOperator
	lib  libseccomp.ScmpCompareOp
}

var operators = []operatorEntry{
	{specs.OpNotEqual, libseccomp.CompareNotEqual},
	{specs.OpLessThan, libseccomp.CompareLess},
	{specs.OpLessEqual, libseccomp.CompareLessOrEqual},
	{specs.OpEqualTo, libseccomp.CompareEqual},
	{specs.OpGreaterEqual, libseccomp.CompareGreaterEqual},
	{specs.OpGreaterThan, libseccomp.CompareGreater},
	{specs.OpMaskedEqual, libseccomp.CompareMaskedEqual},
}

// knownFlags are the flags of the runtime-spec, in its order.
var knownFlags = []string{flagTsync, flagLog, flagSpecAllow, flagWaitKillableRecv}

func lookupAction(name specs.LinuxSeccompAction) (actionEntry, bool) {
	for _, a := range actions {
		if a.name == name {
			return a, true
		}
	}
	return actionEntry{}, false
}

func lookupArch(name specs.Arch) (archEntry, bool) {
	for _, a := range archs {
		if a.name == name {
			return a, true
		}
	}
	return archEntry{}, false
}

func lookupOperator(name specs.LinuxSeccompOperator) (operatorEntry, bool) {
	for _, o := range operators {
		if o.name == name {
			return o, true
		}
	}
	return operatorEntry{}, false
}

func archName(a libseccomp.ScmpArch) string {
	for _, e := range archs {
		if e.lib == a {
			return string(e.name)
		}
	}
	return a.String()
}

func actionNames() string {
	names := make([]string, 0, len(actions))
	for _, a := range actions {
		names = append(names, string(a.name))
	}
	return strings.Join(names, ", ")
}

func archNames() string {
	names := make([]string, 0, len(archs))
	for _, a := range archs {
		names = append(names, string(a.name))
	}
	return strings.Join(names, ", ")
}

func operatorNames() string {
	names := make([]string, 0, len(operators))
	for _, o := range operators {
		names = append(names, string(o.name))
	}
	return strings.Join(names, ", ")
}
