//go:build linux && cgo

package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

const (
	// maxArgs is the number of syscall arguments seccomp can inspect.
	maxArgs = 6
	// maxSplitRules bounds how many rules one syscalls[] entry may expand
	// to when conditions share an argument index.
	maxSplitRules = 256
	// bpfMaxInsns is the kernel's BPF_MAXINSNS limit for one filter.
	bpfMaxInsns = 4096
)

// Filter is a compiled profile, ready to load.
type Filter struct {
	mu sync.Mutex
	// ctx is libseccomp's filter context; nil after Release.
	ctx *libseccomp.ScmpFilter
	// prog is the BPF program generated from ctx; Load installs it.
	prog []unix.SockFilter
	// flags are the seccomp(2) SECCOMP_FILTER_FLAG_* bits to load with.
	flags uintptr

	// What Compile decided, kept for diagnostics and tests.
	defaultAction libseccomp.ScmpAction
	rules         []rule
	skipped       []string // syscall names libseccomp does not know
	skippedArchs  []string // architectures of the other byte order
	redundant     []int    // syscalls[] indexes skipped (action == default)
}

// rule is one libseccomp rule: a syscall, an action and ANDed conditions.
type rule struct {
	name   string
	call   libseccomp.ScmpSyscall
	entry  int // index in cfg.Syscalls, for error messages
	action libseccomp.ScmpAction
	conds  []libseccomp.ScmpCondition
}

// Compile validates and compiles cfg. Unknown syscall names are skipped
// (like runc), but an unknown action, arch, operator or flag is an error that
// names the offending value and the field. The returned Filter holds
// libseccomp memory until Release.
func Compile(cfg *specs.LinuxSeccomp) (*Filter, error) {
	if cfg == nil {
		return nil, invalidf("linux.seccomp is nil; pass a profile or do not call Compile")
	}

	defAct, err := parseAction(cfg.DefaultAction, cfg.DefaultErrnoRet,
		"linux.seccomp.defaultAction", "linux.seccomp.defaultErrnoRet", "")
	if err != nil {
		return nil, err
	}

	if cfg.ListenerMetadata != "" && cfg.ListenerPath == "" {
		return nil, invalidf("linux.seccomp.listenerMetadata is set but linux.seccomp.listenerPath is not; " +
			"the spec forbids metadata without a listener, remove listenerMetadata")
	}

	flags, wantLog, wantSpecAllow, err := parseFlags(cfg.Flags)
	if err != nil {
		return nil, err
	}

	arches := make([]libseccomp.ScmpArch, 0, len(cfg.Architectures))
	for i, a := range cfg.Architectures {
		e, ok := lookupArch(a)
		if !ok {
			return nil, invalidf("linux.seccomp.architectures[%d]: unknown architecture %q (valid: %s)", i, string(a), archNames())
		}
		arches = append(arches, e.lib)
	}

	f := &Filter{flags: flags, defaultAction: defAct}
	for i := range cfg.Syscalls {
		if err := f.planEntry(i, &cfg.Syscalls[i]); err != nil {
			return nil, err
		}
	}

	if err := f.build(arches, cfg.Architectures, wantLog, wantSpecAllow); err != nil {
		f.Release()
		return nil, err
	}
	return f, nil
}

// parseAction converts a runtime-spec action and its optional errno into a
// libseccomp action. field and errnoField name the JSON fields for errors;
// syscall (may be empty) names the entry for the SCMP_ACT_NOTIFY message.
func parseAction(name specs.LinuxSeccompAction, errnoRet *uint, field, errnoField, syscall string) (libseccomp.ScmpAction, error) {
	if name == specs.ActNotify {
		where := field
		if syscall != "" {
			where = fmt.Sprintf("syscall %q", syscall)
		}
		return libseccomp.ActInvalid, unsupportedf("action SCMP_ACT_NOTIFY (%s) is not supported yet by berth; "+
			"remove it from linux.seccomp or use SCMP_ACT_ERRNO", where)
	}
	if name == "" {
		return libseccomp.ActInvalid, invalidf("%s is empty; it is required (valid: %s)", field, actionNames())
	}
	e, ok := lookupAction(name)
	if !ok {
		return libseccomp.ActInvalid, invalidf("%s: unknown action %q (valid: %s)", field, string(name), actionNames())
	}
	if !e.takesData {
		if errnoRet != nil {
			return libseccomp.ActInvalid, invalidf("%s is set to %d but %s is %s, which takes no errno; "+
				"remove it or use SCMP_ACT_ERRNO or SCMP_ACT_TRACE", errnoField, *errnoRet, field, string(name))
		}
		return e.lib, nil
	}
	code := uint(unix.EPERM)
	if errnoRet != nil {
		code = *errnoRet
	}
	if code > 0xffff {
		return libseccomp.ActInvalid, invalidf("%s is %d, which does not fit the 16-bit seccomp return data; use a value from 0 to 65535 (errno values are at most 4095)",
			errnoField, code)
	}
	return e.lib.SetReturnCode(int16(uint16(code))), nil
}

// parseFlags returns the seccomp(2) flags to load with and whether the LOG
// and SPEC_ALLOW attributes must be set on the libseccomp context.
func parseFlags(names []specs.LinuxSeccompFlag) (flags uintptr, log, specAllow bool, err error) {
	for i, fl := range names {
		field := fmt.Sprintf("linux.seccomp.flags[%d]", i)
		switch string(fl) {
		case flagTsync:
			if !kernelHasFlag(unix.SECCOMP_FILTER_FLAG_TSYNC) {
				return 0, false, false, unsupportedf("%s: %s is not supported by this kernel (needs Linux 3.17); remove it", field, flagTsync)
			}
			flags |= unix.SECCOMP_FILTER_FLAG_TSYNC
		case flagLog:
			flags |= unix.SECCOMP_FILTER_FLAG_LOG
			log = true
		case flagSpecAllow:
			flags |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
			specAllow = true
		case flagWaitKillableRecv:
			return 0, false, false, unsupportedf("%s: %s only applies to SCMP_ACT_NOTIFY listeners, which berth does not support yet; remove it",
				field, flagWaitKillableRecv)
		default:
			return 0, false, false, invalidf("%s: unknown flag %q (valid: %s)", field, string(fl), strings.Join(knownFlags, ", "))
		}
	}
	return flags, log, specAllow, nil
}

// planEntry validates syscalls[i] and appends its rules to f.rules.
func (f *Filter) planEntry(i int, sc *specs.LinuxSyscall) error {
	field := fmt.Sprintf("linux.seccomp.syscalls[%d]", i)
	if len(sc.Names) == 0 {
		return invalidf("%s.names is empty; the spec requires at least one syscall name", field)
	}
	for j, n := range sc.Names {
		if n == "" {
			return invalidf("%s.names[%d] is an empty string; remove it", field, j)
		}
	}
	act, err := parseAction(sc.Action, sc.ErrnoRet, field+".action", field+".errnoRet", strings.Join(sc.Names, ","))
	if err != nil {
		return err
	}

	condSets, err := conditionSets(field, sc.Args)
	if err != nil {
		return err
	}

	if act == f.defaultAction {
		// libseccomp rejects a rule whose action is the default one, and
		// such a rule would not change anything.
		f.redundant = append(f.redundant, i)
		return nil
	}

	for _, name := range sc.Names {
		call, err := libseccomp.GetSyscallFromName(name)
		if err != nil {
			if errors.Is(err, libseccomp.ErrSyscallDoesNotExist) {
				f.skipped = append(f.skipped, name)
				continue
			}
			return fmt.Errorf("seccomp: %s: resolving syscall %q: %w", field, name, err)
		}
		for _, conds := range condSets {
			f.rules = append(f.rules, rule{name: name, call: call, entry: i, action: act, conds: conds})
		}
	}
	return nil
}

// conditionSets turns args into the condition lists of the rules to add.
// Conditions on distinct indexes are ANDed inside one rule. libseccomp
// accepts a single condition per argument index in a rule, so conditions
// sharing an index become alternatives: one rule per condition on that
// index (the cartesian product when several indexes repeat). With no args
// the result is one empty list (an unconditional rule).
func conditionSets(field string, args []specs.LinuxSeccompArg) ([][]libseccomp.ScmpCondition, error) {
	var byIndex [maxArgs][]libseccomp.ScmpCondition
	var order []uint // indexes in order of first appearance
	for j, a := range args {
		afield := fmt.Sprintf("%s.args[%d]", field, j)
		if a.Index >= maxArgs {
			return nil, invalidf("%s.index is %d; syscall arguments are numbered 0 to %d", afield, a.Index, maxArgs-1)
		}
		op, ok := lookupOperator(a.Op)
		if !ok {
			return nil, invalidf("%s.op: unknown operator %q (valid: %s)", afield, string(a.Op), operatorNames())
		}
		var cond libseccomp.ScmpCondition
		var err error
		if op.lib == libseccomp.CompareMaskedEqual {
			// value is the mask, valueTwo what (arg & mask) must equal.
			cond, err = libseccomp.MakeCondition(a.Index, op.lib, a.Value, a.ValueTwo)
		} else {
			cond, err = libseccomp.MakeCondition(a.Index, op.lib, a.Value)
		}
		if err != nil {
			return nil, fmt.Errorf("seccomp: %s: %w", afield, err)
		}
		if len(byIndex[a.Index]) == 0 {
			order = append(order, a.Index)
		}
		dup := false
		for _, c := range byIndex[a.Index] {
			if c == cond {
				dup = true
				break
			}
		}
		if !dup {
			byIndex[a.Index] = append(byIndex[a.Index], cond)
		}
	}

	sets := [][]libseccomp.ScmpCondition{nil}
	for _, idx := range order {
		alts := byIndex[idx]
		if len(sets)*len(alts) > maxSplitRules {
			return nil, invalidf("%s.args: conditions sharing argument indexes would expand to more than %d rules; "+
				"split the entry into several syscalls[] entries", field, maxSplitRules)
		}
		next := make([][]libseccomp.ScmpCondition, 0, len(sets)*len(alts))
		for _, s := range sets {
			for _, c := range alts {
				n := make([]libseccomp.ScmpCondition, len(s), len(s)+1)
				copy(n, s)
				next = append(next, append(n, c))
			}
		}
		sets = next
	}
	return sets, nil
}

// build creates the libseccomp context, adds architectures and rules, and
// exports the BPF program into f.prog.
func (f *Filter) build(arches []libseccomp.ScmpArch, archNamesCfg []specs.Arch, wantLog, wantSpecAllow bool) error {
	ctx, err := libseccomp.NewFilter(f.defaultAction)
	if err != nil {
		return fmt.Errorf("seccomp: creating filter with linux.seccomp.defaultAction %s: %w", describeAction(f.defaultAction), err)
	}
	f.ctx = ctx

	// The runtime, not libseccomp, decides about no_new_privs.
	if err := ctx.SetNoNewPrivsBit(false); err != nil {
		return fmt.Errorf("seccomp: clearing libseccomp's no_new_privs attribute: %w", err)
	}
	if wantLog {
		if err := ctx.SetLogBit(true); err != nil {
			return &wrapError{msg: fmt.Sprintf("seccomp: linux.seccomp.flags: %s is not supported by this kernel or libseccomp (needs Linux 4.14 and libseccomp 2.4); remove it", flagLog),
				kind: ErrNotSupported, err: err}
		}
	}
	if wantSpecAllow {
		if err := ctx.SetSSB(true); err != nil {
			return &wrapError{msg: fmt.Sprintf("seccomp: linux.seccomp.flags: %s is not supported by this kernel or libseccomp (needs Linux 4.17 and libseccomp 2.5); remove it", flagSpecAllow),
				kind: ErrNotSupported, err: err}
		}
	}

	for i, a := range arches {
		if err := ctx.AddArch(a); err != nil {
			if errors.Is(err, syscall.EDOM) {
				// libseccomp cannot mix byte orders in one filter; a kernel
				// of the native byte order can never run that ABI, so there
				// is nothing to filter.
				f.skippedArchs = append(f.skippedArchs, string(archNamesCfg[i]))
				continue
			}
			return &wrapError{msg: fmt.Sprintf("seccomp: linux.seccomp.architectures[%d]: %s is not supported by the linked libseccomp %s; remove it",
				i, string(archNamesCfg[i]), libVersion()), kind: ErrNotSupported, err: err}
		}
	}

	for _, r := range f.rules {
		var err error
		if len(r.conds) == 0 {
			err = ctx.AddRule(r.call, r.action)
		} else {
			err = ctx.AddRuleConditional(r.call, r.action, r.conds)
		}
		if err != nil {
			return fmt.Errorf("seccomp: linux.seccomp.syscalls[%d]: adding rule %s for syscall %q%s: %w",
				r.entry, describeAction(r.action), r.name, describeConds(r.conds), err)
		}
	}

	prog, err := exportBPF(ctx)
	if err != nil {
		return err
	}
	if len(prog) > bpfMaxInsns {
		return invalidf("the profile compiles to %d BPF instructions, more than the kernel limit of %d; "+
			"shorten linux.seccomp.syscalls or linux.seccomp.architectures", len(prog), bpfMaxInsns)
	}
	f.prog = prog
	return nil
}

// wrapError is a profileError that also wraps the underlying cause.
type wrapError struct {
	msg  string
	kind error
	err  error
}

func (e *wrapError) Error() string   { return e.msg + ": " + e.err.Error() }
func (e *wrapError) Unwrap() []error { return []error{e.kind, e.err} }

// exportBPF returns the BPF program libseccomp generates for ctx.
func exportBPF(ctx *libseccomp.ScmpFilter) ([]unix.SockFilter, error) {
	// libseccomp >= 2.6 can export to memory; older versions need a file.
	raw, err := ctx.ExportBPFMem()
	if err != nil {
		raw, err = exportBPFFile(ctx)
		if err != nil {
			return nil, fmt.Errorf("seccomp: exporting the BPF program from libseccomp: %w", err)
		}
	}
	const insnSize = 8 // sizeof(struct sock_filter)
	if len(raw) == 0 || len(raw)%insnSize != 0 {
		return nil, fmt.Errorf("seccomp: libseccomp exported a malformed BPF program (%d bytes)", len(raw))
	}
	prog := make([]unix.SockFilter, len(raw)/insnSize)
	for i := range prog {
		b := raw[i*insnSize:]
		prog[i] = unix.SockFilter{
			Code: binary.NativeEndian.Uint16(b[0:2]),
			Jt:   b[2],
			Jf:   b[3],
			K:    binary.NativeEndian.Uint32(b[4:8]),
		}
	}
	return prog, nil
}

func exportBPFFile(ctx *libseccomp.ScmpFilter) ([]byte, error) {
	var file *os.File
	if fd, err := unix.MemfdCreate("berth-seccomp-bpf", unix.MFD_CLOEXEC); err == nil {
		file = os.NewFile(uintptr(fd), "memfd:berth-seccomp-bpf")
	} else {
		tmp, err := os.CreateTemp("", "berth-seccomp-bpf-")
		if err != nil {
			return nil, err
		}
		_ = os.Remove(tmp.Name())
		file = tmp
	}
	defer file.Close()
	if err := ctx.ExportBPF(file); err != nil {
		return nil, err
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(file)
}

// Release frees libseccomp resources. It is safe to call more than once and
// on a nil Filter. The compiled program is kept: Load still works after
// Release.
func (f *Filter) Release() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctx != nil {
		f.ctx.Release()
		f.ctx = nil
	}
}

func describeAction(a libseccomp.ScmpAction) string {
	base := a & 0xffff
	for _, e := range actions {
		if e.lib == base {
			if e.takesData {
				return fmt.Sprintf("%s(%d)", e.name, uint16(a>>16))
			}
			if base == libseccomp.ActKillThread {
				return string(specs.ActKillThread)
			}
			return string(e.name)
		}
	}
	return a.String()
}

func describeConds(conds []libseccomp.ScmpCondition) string {
	if len(conds) == 0 {
		return ""
	}
	parts := make([]string, 0, len(conds))
	for _, c := range conds {
		op := c.Op.String()
		for _, o := range operators {
			if o.lib == c.Op {
				op = string(o.name)
			}
		}
		if c.Op == libseccomp.CompareMaskedEqual {
			parts = append(parts, fmt.Sprintf("arg%d %s mask %#x value %#x", c.Argument, op, c.Operand1, c.Operand2))
		} else {
			parts = append(parts, fmt.Sprintf("arg%d %s %#x", c.Argument, op, c.Operand1))
		}
	}
	return " when " + strings.Join(parts, " && ")
}

func libVersion() string {
	maj, minor, micro := libseccomp.GetLibraryVersion()
	return fmt.Sprintf("%d.%d.%d", maj, minor, micro)
}
