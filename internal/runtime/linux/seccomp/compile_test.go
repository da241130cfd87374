//go:build linux && cgo

package seccomp

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

func mustCompile(t *testing.T, p *specs.LinuxSeccomp) *Filter {
	t.Helper()
	f, err := Compile(p)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	t.Cleanup(f.Release)
	return f
}

func compileAndRelease(p *specs.LinuxSeccomp) error {
	f, err := Compile(p)
	f.Release()
	return err
}

// compileErr compiles p, which must fail with an error wrapping kind and
// mentioning every string in want.
func compileErr(t *testing.T, p *specs.LinuxSeccomp, kind error, want ...string) error {
	t.Helper()
	f, err := Compile(p)
	if err == nil {
		f.Release()
		t.Fatalf("Compile succeeded, want an error mentioning %q", want)
	}
	if f != nil {
		t.Errorf("Compile returned a Filter along with the error %v", err)
	}
	if !errors.Is(err, kind) {
		t.Errorf("error %q does not wrap %v", err, kind)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	return err
}

func TestCompileNil(t *testing.T) {
	compileErr(t, nil, ErrInvalidProfile, "linux.seccomp")
}

func TestCompileUnknownAction(t *testing.T) {
	compileErr(t, &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_EXPLODE"},
		ErrInvalidProfile, `"SCMP_ACT_EXPLODE"`, "linux.seccomp.defaultAction", "SCMP_ACT_ALLOW")
	compileErr(t, &specs.LinuxSeccomp{DefaultAction: ""},
		ErrInvalidProfile, "linux.seccomp.defaultAction")
	compileErr(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getpid"}, Action: specs.ActErrno},
			{Names: []string{"mkdirat"}, Action: "SCMP_ACT_allow"},
		},
	}, ErrInvalidProfile, `"SCMP_ACT_allow"`, "linux.seccomp.syscalls[1].action")
}

func TestCompileUnknownArch(t *testing.T) {
	compileErr(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86, "SCMP_ARCH_VAX"},
	}, ErrInvalidProfile, `"SCMP_ARCH_VAX"`, "linux.seccomp.architectures[1]")
}

func TestCompileUnknownOperator(t *testing.T) {
	compileErr(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{
			Names:  []string{"personality"},
			Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 1, Op: specs.OpEqualTo},
				{Index: 1, Value: 1, Op: "SCMP_CMP_APPROX"},
			},
		}},
	}, ErrInvalidProfile, `"SCMP_CMP_APPROX"`, "linux.seccomp.syscalls[0].args[1].op", "SCMP_CMP_MASKED_EQ")
}

func TestCompileUnknownFlag(t *testing.T) {
	compileErr(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Flags:         []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_FAST"},
	}, ErrInvalidProfile, `"SECCOMP_FILTER_FLAG_FAST"`, "linux.seccomp.flags[0]", flagTsync)
}

func TestCompileWaitKillableRecvNeedsNotify(t *testing.T) {
	compileErr(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Flags:         []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv},
	}, ErrNotSupported, flagWaitKillableRecv, "linux.seccomp.flags[0]", "SCMP_ACT_NOTIFY")
}

func TestCompileNotify(t *testing.T) {
	err := compileErr(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		ListenerPath:  "/run/agent.sock",
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mount"}, Action: specs.ActNotify}},
	}, ErrNotSupported)
	want := `seccomp: action SCMP_ACT_NOTIFY (syscall "mount") is not supported yet by berth; remove it from linux.seccomp or use SCMP_ACT_ERRNO`
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}
	compileErr(t, &specs.LinuxSeccomp{DefaultAction: specs.ActNotify},
		ErrNotSupported, "SCMP_ACT_NOTIFY", "linux.seccomp.defaultAction")
}

func TestCompileListenerMetadataNeedsPath(t *testing.T) {
	compileErr(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerMetadata: "x"},
		ErrInvalidProfile, "listenerMetadata", "listenerPath")
	// listenerPath alone is ignored without SCMP_ACT_NOTIFY.
	mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/agent.sock", ListenerMetadata: "x",
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActErrno}}})
}

func TestCompileErrnoRetRules(t *testing.T) {
	compileErr(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, DefaultErrnoRet: uintp(1)},
		ErrInvalidProfile, "linux.seccomp.defaultErrnoRet", "SCMP_ACT_ALLOW")
	compileErr(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActKillProcess, ErrnoRet: uintp(1)}},
	}, ErrInvalidProfile, "linux.seccomp.syscalls[0].errnoRet", "SCMP_ACT_KILL_PROCESS")
	compileErr(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActErrno, ErrnoRet: uintp(70000)}},
	}, ErrInvalidProfile, "linux.seccomp.syscalls[0].errnoRet", "70000")

	// Defaults: EPERM for both ERRNO and TRACE; explicit values kept.
	f := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read"}, Action: specs.ActAllow},
			{Names: []string{"mkdirat"}, Action: specs.ActTrace},
			{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uintp(42)},
		},
	})
	if f.defaultAction != libseccomp.ActErrno.SetReturnCode(int16(unix.EPERM)) {
		t.Errorf("default action = %v, want ERRNO(EPERM)", f.defaultAction)
	}
	want := map[string]libseccomp.ScmpAction{
		"read":    libseccomp.ActAllow,
		"mkdirat": libseccomp.ActTrace.SetReturnCode(int16(unix.EPERM)),
		"getppid": libseccomp.ActErrno.SetReturnCode(42),
	}
	if len(f.rules) != len(want) {
		t.Fatalf("got %d rules, want %d: %+v", len(f.rules), len(want), f.rules)
	}
	for _, r := range f.rules {
		if r.action != want[r.name] {
			t.Errorf("rule %s: action %v, want %v", r.name, r.action, want[r.name])
		}
	}
}

func TestCompileBadArgIndex(t *testing.T) {
	compileErr(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{
			Names: []string{"personality"}, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{{Index: 6, Value: 1, Op: specs.OpEqualTo}},
		}},
	}, ErrInvalidProfile, "linux.seccomp.syscalls[0].args[0].index", "6")
}

func TestCompileEmptyNames(t *testing.T) {
	compileErr(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Action: specs.ActErrno}},
	}, ErrInvalidProfile, "linux.seccomp.syscalls[0].names")
}

func TestCompileSkipsUnknownSyscalls(t *testing.T) {
	f := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"berth_no_such_syscall", "mkdirat", "another_fake_call"}, Action: specs.ActErrno},
		},
	})
	if !slices.Equal(f.skipped, []string{"berth_no_such_syscall", "another_fake_call"}) {
		t.Errorf("skipped = %q, want the two unknown names", f.skipped)
	}
	if len(f.rules) != 1 || f.rules[0].name != "mkdirat" {
		t.Errorf("rules = %+v, want one rule for mkdirat", f.rules)
	}
	if len(f.prog) == 0 {
		t.Error("no BPF program was generated")
	}
}

func TestCompileSkipsDefaultAction(t *testing.T) {
	f := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: uintp(uint(unix.EPERM)),
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read"}, Action: specs.ActAllow},
			// Same as the default (ERRNO defaults to EPERM): skipped,
			// args or not.
			{Names: []string{"mkdirat"}, Action: specs.ActErrno},
			{Names: []string{"personality"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EPERM)),
				Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}}},
			// Different errno: a different action, kept.
			{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uintp(42)},
		},
	})
	if !slices.Equal(f.redundant, []int{1, 2}) {
		t.Errorf("redundant entries = %v, want [1 2]", f.redundant)
	}
	var names []string
	for _, r := range f.rules {
		names = append(names, r.name)
	}
	if !slices.Equal(names, []string{"read", "getppid"}) {
		t.Errorf("rules for %q, want read and getppid", names)
	}

	// SCMP_ACT_KILL and SCMP_ACT_KILL_THREAD are the same action.
	f = mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActKill,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"exit_group"}, Action: specs.ActAllow},
			{Names: []string{"mkdirat"}, Action: specs.ActKillThread},
		},
	})
	if !slices.Equal(f.redundant, []int{1}) {
		t.Errorf("KILL_THREAD under default KILL: redundant = %v, want [1]", f.redundant)
	}
}

func TestCompileSplitsSameIndexArgs(t *testing.T) {
	eq := func(idx uint, v uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: idx, Value: v, Op: specs.OpEqualTo}
	}
	cond := func(idx uint, v uint64) libseccomp.ScmpCondition {
		return libseccomp.ScmpCondition{Argument: idx, Op: libseccomp.CompareEqual, Operand1: v}
	}
	tests := []struct {
		name string
		args []specs.LinuxSeccompArg
		want [][]libseccomp.ScmpCondition
	}{
		{"no args", nil, [][]libseccomp.ScmpCondition{nil}},
		{"distinct indexes stay in one rule", []specs.LinuxSeccompArg{eq(0, 1), eq(1, 2)},
			[][]libseccomp.ScmpCondition{{cond(0, 1), cond(1, 2)}}},
		{"same index splits, other index kept in each", []specs.LinuxSeccompArg{eq(0, 1), eq(1, 9), eq(0, 2)},
			[][]libseccomp.ScmpCondition{{cond(0, 1), cond(1, 9)}, {cond(0, 2), cond(1, 9)}}},
		{"two repeated indexes: cartesian product", []specs.LinuxSeccompArg{eq(0, 1), eq(0, 2), eq(2, 3), eq(2, 4)},
			[][]libseccomp.ScmpCondition{
				{cond(0, 1), cond(2, 3)}, {cond(0, 1), cond(2, 4)},
				{cond(0, 2), cond(2, 3)}, {cond(0, 2), cond(2, 4)},
			}},
		{"exact duplicates collapse", []specs.LinuxSeccompArg{eq(0, 1), eq(0, 1)},
			[][]libseccomp.ScmpCondition{{cond(0, 1)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustCompile(t, &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Syscalls:      []specs.LinuxSyscall{{Names: []string{"getpriority"}, Action: specs.ActErrno, Args: tt.args}},
			})
			var got [][]libseccomp.ScmpCondition
			for _, r := range f.rules {
				got = append(got, r.conds)
			}
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("rule conditions:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestCompileMaskedEqualOperands(t *testing.T) {
	f := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{
			Names: []string{"clone"}, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x7e020000, ValueTwo: 0, Op: specs.OpMaskedEqual}},
		}},
	})
	want := libseccomp.ScmpCondition{Argument: 0, Op: libseccomp.CompareMaskedEqual, Operand1: 0x7e020000, Operand2: 0}
	if len(f.rules) != 1 || len(f.rules[0].conds) != 1 || f.rules[0].conds[0] != want {
		t.Fatalf("rules = %+v, want one rule with %+v", f.rules, want)
	}
}

func TestCompileArchitectures(t *testing.T) {
	native, err := libseccomp.GetNativeArch()
	if err != nil {
		t.Fatal(err)
	}
	var addable []specs.Arch
	for _, a := range []specs.Arch{specs.ArchX86, specs.ArchX32, specs.ArchARM, specs.ArchAARCH64} {
		if slices.Contains(SupportedArchs(), string(a)) {
			addable = append(addable, a)
		}
	}
	f := mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: addable,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActErrno}}})
	present, err := f.ctx.IsArchPresent(native)
	if err != nil || !present {
		t.Errorf("native architecture %s not in the filter (err %v)", archName(native), err)
	}
	for _, a := range addable {
		e, _ := lookupArch(a)
		if slices.Contains(f.skippedArchs, string(a)) {
			continue
		}
		if present, err := f.ctx.IsArchPresent(e.lib); err != nil || !present {
			t.Errorf("%s not in the filter (err %v)", a, err)
		}
	}
	// Without architectures the filter still holds the native one.
	f = mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow})
	if present, err := f.ctx.IsArchPresent(native); err != nil || !present {
		t.Errorf("native architecture missing from a filter without architectures (err %v)", err)
	}
}

func TestCompileForeignByteOrderArchSkipped(t *testing.T) {
	// One of these has the other byte order than any host this runs on.
	f := mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchS390X, specs.ArchX86_64}})
	if len(f.skippedArchs) != 1 {
		t.Fatalf("skippedArchs = %q, want exactly one of s390x / x86_64", f.skippedArchs)
	}
}

func TestCompileFlags(t *testing.T) {
	f := mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow})
	if f.flags != 0 {
		t.Errorf("flags without linux.seccomp.flags = %#x, want 0 (no TSYNC unless asked)", f.flags)
	}
	for _, fl := range SupportedFlags() {
		f := mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlag(fl)}})
		want := map[string]uintptr{
			flagTsync:     unix.SECCOMP_FILTER_FLAG_TSYNC,
			flagLog:       unix.SECCOMP_FILTER_FLAG_LOG,
			flagSpecAllow: unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
		}[fl]
		if f.flags != want {
			t.Errorf("%s: flags = %#x, want %#x", fl, f.flags, want)
		}
	}
	// libseccomp's no_new_privs attribute must be off.
	nnp, err := f.ctx.GetNoNewPrivsBit()
	if err != nil || nnp {
		t.Errorf("libseccomp NNP attribute = %v (err %v), want false", nnp, err)
	}
}

func TestCompileDockerLikeProfile(t *testing.T) {
	// A deny-by-default profile with several hundred names, args and
	// several architectures, roughly the shape of Docker's default one.
	allow := []string{
		"accept", "accept4", "access", "alarm", "bind", "brk", "capget", "capset", "chdir", "chmod",
		"chown", "clock_getres", "clock_gettime", "clock_nanosleep", "close", "connect", "copy_file_range",
		"creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait",
		"epoll_wait", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat",
		"faccessat2", "fadvise64", "fallocate", "fchdir", "fchmod", "fchmodat", "fchown", "fchownat",
		"fcntl", "fdatasync", "flock", "fork", "fstat", "fstatfs", "fsync", "ftruncate", "futex",
		"getcwd", "getdents", "getdents64", "getegid", "geteuid", "getgid", "getgroups", "getpid",
		"getppid", "getrandom", "getrlimit", "gettid", "gettimeofday", "getuid", "ioctl", "kill",
		"lseek", "lstat", "madvise", "mkdir", "mkdirat", "mmap", "mprotect", "munmap", "nanosleep",
		"newfstatat", "open", "openat", "openat2", "pipe", "pipe2", "poll", "ppoll", "prctl", "pread64",
		"prlimit64", "pwrite64", "read", "readlink", "readlinkat", "recvfrom", "recvmsg", "rename",
		"renameat", "renameat2", "rmdir", "rseq", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
		"sched_getaffinity", "sched_yield", "select", "sendmsg", "sendto", "set_robust_list",
		"set_tid_address", "setgid", "setgroups", "setuid", "sigaltstack", "socket", "socketcall",
		"stat", "statfs", "statx", "symlink", "symlinkat", "tgkill", "umask", "uname", "unlink",
		"unlinkat", "vfork", "wait4", "write", "writev", "ipc", "arm_fadvise64_64", "s390_pci_mmio_read",
	}
	p := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: uintp(uint(unix.EPERM)),
		Architectures:   []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{
			{Names: allow, Action: specs.ActAllow},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0, Op: specs.OpEqualTo}}},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 8, Op: specs.OpEqualTo}}},
			{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x7e020000, Op: specs.OpMaskedEqual}}},
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.ENOSYS))},
		},
	}
	f := mustCompile(t, p)
	if len(f.prog) < len(allow) {
		t.Errorf("BPF program has %d instructions for %d allowed syscalls", len(f.prog), len(allow))
	}
}

func TestSupportedLists(t *testing.T) {
	acts := SupportedActions()
	for _, want := range []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_TRAP", "SCMP_ACT_TRACE"} {
		if !slices.Contains(acts, want) {
			t.Errorf("SupportedActions() = %q lacks %s", acts, want)
		}
	}
	if slices.Contains(acts, string(specs.ActNotify)) {
		t.Errorf("SupportedActions() lists SCMP_ACT_NOTIFY, which Compile rejects")
	}
	// Every listed action compiles as a default action.
	for _, a := range acts {
		if err := compileAndRelease(&specs.LinuxSeccomp{DefaultAction: specs.LinuxSeccompAction(a)}); err != nil {
			t.Errorf("listed action %s does not compile: %v", a, err)
		}
	}

	native, err := libseccomp.GetNativeArch()
	if err != nil {
		t.Fatal(err)
	}
	arches := SupportedArchs()
	if !slices.Contains(arches, archName(native)) {
		t.Errorf("SupportedArchs() = %q lacks the native %s", arches, archName(native))
	}
	for _, a := range arches {
		if err := compileAndRelease(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.Arch(a)}}); err != nil {
			t.Errorf("listed architecture %s does not compile: %v", a, err)
		}
	}

	for _, fl := range SupportedFlags() {
		if err := compileAndRelease(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlag(fl)}}); err != nil {
			t.Errorf("listed flag %s does not compile: %v", fl, err)
		}
	}
	if slices.Contains(SupportedFlags(), flagWaitKillableRecv) {
		t.Errorf("SupportedFlags() lists %s, which Compile rejects", flagWaitKillableRecv)
	}

	ops := SupportedOperators()
	if len(ops) != 7 || !slices.Contains(ops, "SCMP_CMP_MASKED_EQ") || !slices.Contains(ops, "SCMP_CMP_NE") {
		t.Errorf("SupportedOperators() = %q, want the 7 runtime-spec operators", ops)
	}

	// Callers get copies.
	acts[0] = "mutated"
	if SupportedActions()[0] == "mutated" {
		t.Error("SupportedActions returns its internal slice")
	}
}

func TestEnabled(t *testing.T) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	if !strings.Contains(string(status), "\nSeccomp:") {
		t.Skip("kernel without CONFIG_SECCOMP")
	}
	if !Enabled() {
		t.Fatal("Enabled() = false on a kernel that reports Seccomp in /proc/self/status")
	}
}

func TestReleaseAndNilSafety(t *testing.T) {
	f, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow})
	if err != nil {
		t.Fatal(err)
	}
	f.Release()
	f.Release() // idempotent
	if f.ctx != nil {
		t.Error("Release left the libseccomp context in place")
	}
	if len(f.prog) == 0 {
		t.Error("Release dropped the compiled program; Load must still work")
	}
	var nilFilter *Filter
	nilFilter.Release()
	if err := nilFilter.Load(); err == nil {
		t.Error("Load on a nil *Filter succeeded")
	}
	if err := (&Filter{}).Load(); err == nil {
		t.Error("Load on a zero Filter succeeded")
	}
}
