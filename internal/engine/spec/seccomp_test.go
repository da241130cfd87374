package spec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// verdict is what a seccomp filter built from sc does with a call: the
// action and, for SCMP_ACT_ERRNO, the errno.
type verdict struct {
	action specs.LinuxSeccompAction
	errno  uint
}

var (
	allowed = verdict{specs.ActAllow, 0}
	eperm   = verdict{specs.ActErrno, 1}
	enosys  = verdict{specs.ActErrno, 38}
)

// actionRank orders actions as the kernel does when several apply, most
// restrictive first.
var actionRank = []specs.LinuxSeccompAction{
	specs.ActKillProcess, specs.ActKillThread, specs.ActKill, specs.ActTrap,
	specs.ActErrno, specs.ActTrace, specs.ActLog, specs.ActAllow,
}

// argsMatch evaluates args as the runtime compiles them: conditions on
// the same index are alternatives, different indexes are ANDed.
func argsMatch(args []specs.LinuxSeccompArg, call []uint64) bool {
	byIndex := map[uint][]specs.LinuxSeccompArg{}
	for _, a := range args {
		byIndex[a.Index] = append(byIndex[a.Index], a)
	}
	for idx, conds := range byIndex {
		var v uint64
		if int(idx) < len(call) {
			v = call[idx]
		}
		if !slices.ContainsFunc(conds, func(a specs.LinuxSeccompArg) bool {
			switch a.Op {
			case specs.OpEqualTo:
				return v == a.Value
			case specs.OpNotEqual:
				return v != a.Value
			case specs.OpLessThan:
				return v < a.Value
			case specs.OpLessEqual:
				return v <= a.Value
			case specs.OpGreaterThan:
				return v > a.Value
			case specs.OpGreaterEqual:
				return v >= a.Value
			case specs.OpMaskedEqual:
				return v&a.Value == a.ValueTwo
			}
			panic("unknown op " + a.Op)
		}) {
			return false
		}
	}
	return true
}

// judge returns what sc does with syscall name called with args.
func judge(sc *specs.LinuxSeccomp, name string, args ...uint64) verdict {
	var matches []verdict
	for _, s := range sc.Syscalls {
		if slices.Contains(s.Names, name) && argsMatch(s.Args, args) {
			v := verdict{action: s.Action}
			if s.Action == specs.ActErrno {
				v.errno = 1
				if s.ErrnoRet != nil {
					v.errno = *s.ErrnoRet
				}
			}
			matches = append(matches, v)
		}
	}
	if len(matches) == 0 {
		v := verdict{action: sc.DefaultAction}
		if sc.DefaultAction == specs.ActErrno {
			v.errno = 1
			if sc.DefaultErrnoRet != nil {
				v.errno = *sc.DefaultErrnoRet
			}
		}
		return v
	}
	return slices.MinFunc(matches, func(a, b verdict) int {
		return slices.Index(actionRank, a.action) - slices.Index(actionRank, b.action)
	})
}

const (
	cloneThread = 0x00000100 | 0x00000200 | 0x00000400 | 0x00000800 | 0x00010000 | 0x00040000 | 0x00080000 | 0x00100000 | 0x00200000 // VM FS FILES SIGHAND THREAD SYSVSEM SETTLS PARENT_SETTID CHILD_CLEARTID
	sigchld     = 17
	cloneNewNS  = 0x00020000
	cloneNewNet = 0x40000000
	afInet      = 2
)

var hostAMD64 = seccompHost{goarch: "amd64", kernel: &kernelVersion{6, 1, 0}}

// defaultFor resolves the default profile for a container with the given
// cap flags on host.
func defaultFor(t *testing.T, host seccompHost, add, drop []string) *specs.LinuxSeccomp {
	t.Helper()
	caps, err := capabilities(false, add, drop, lastCap40)
	if err != nil {
		t.Fatal(err)
	}
	sc, warns, err := seccompConfig(Options{CapAdd: add, CapDrop: drop}, caps, host)
	if err != nil || len(warns) != 0 || sc == nil {
		t.Fatalf("seccompConfig = %v, %v, %v", sc, warns, err)
	}
	return sc
}

func expect(t *testing.T, sc *specs.LinuxSeccomp, want verdict, name string, args ...uint64) {
	t.Helper()
	if got := judge(sc, name, args...); got != want {
		t.Errorf("%s(%#x) = %v, want %v", name, args, got, want)
	}
}

func TestSeccompDefaultProfile(t *testing.T) {
	sc := defaultFor(t, hostAMD64, nil, nil)
	if sc.DefaultAction != specs.ActErrno || sc.DefaultErrnoRet == nil || *sc.DefaultErrnoRet != 1 {
		t.Fatalf("default action %s errno %v", sc.DefaultAction, sc.DefaultErrnoRet)
	}
	if want := []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}; !slices.Equal(sc.Architectures, want) {
		t.Errorf("architectures %q, want %q", sc.Architectures, want)
	}
	for _, name := range []string{
		"read", "write", "openat", "openat2", "close", "mmap", "futex", "execve", "exit_group", "pipe", "pipe2",
		"statx", "faccessat2", "close_range", "epoll_pwait2", "pidfd_open", "pidfd_send_signal",
		"rseq", "membarrier", "copy_file_range", "preadv2", "pwritev2", "memfd_create",
		"getrandom", "mlock2", "pkey_alloc", "pkey_mprotect", "process_mrelease", "futex_waitv",
		"landlock_create_ruleset", "sendmmsg", "recvmmsg", "io_setup", "io_submit", "seccomp",
		"socketcall", "ipc", "fstat64", "mmap2", "chown32", "clock_gettime64", "vfork", "fork",
		"arch_prctl", "modify_ldt", "chroot", "adjtimex", "capset", "setresuid", "prctl",
	} {
		expect(t, sc, allowed, name)
	}
	for _, name := range []string{
		"kexec_load", "kexec_file_load", "keyctl", "add_key", "request_key", "userfaultfd",
		"mount", "umount", "umount2", "unshare", "setns", "pivot_root", "fsopen", "open_tree",
		"move_mount", "bpf", "perf_event_open", "io_uring_setup", "io_uring_enter",
		"io_uring_register", "reboot", "init_module", "finit_module", "delete_module", "acct",
		"open_by_handle_at", "name_to_handle_at", "swapon", "swapoff", "vm86", "vm86old",
		"nfsservctl", "lookup_dcookie", "create_module", "get_kernel_syms", "query_module",
		"uselib", "ustat", "sysfs", "_sysctl", "afs_syscall", "quotactl", "clock_settime",
		"settimeofday", "stime", "syslog", "iopl", "ioperm", "pidfd_getfd", "kcmp",
		"process_madvise", "mbind", "set_mempolicy", "vhangup", "sethostname",
		"arm_fadvise64_64", "s390_runtime_instr", "riscv_flush_icache",
	} {
		expect(t, sc, eperm, name)
	}

	// clone: threads and plain forks, but no new namespaces.
	expect(t, sc, allowed, "clone", cloneThread)
	expect(t, sc, allowed, "clone", sigchld)
	expect(t, sc, eperm, "clone", sigchld|cloneNewNS)
	expect(t, sc, eperm, "clone", cloneNewNet)
	expect(t, sc, eperm, "clone", 0x10000000) // CLONE_NEWUSER
	// On amd64 the s390 rule (flags in argument 1) is not part of it.
	expect(t, sc, eperm, "clone", cloneNewNS, 0)
	expect(t, sc, enosys, "clone3")
	// personality: the usual personas and the query only.
	for _, v := range personalities {
		expect(t, sc, allowed, "personality", v)
	}
	expect(t, sc, eperm, "personality", 0x0400000) // READ_IMPLIES_EXEC
	expect(t, sc, eperm, "personality", 0x1)
	// socket: everything but AF_VSOCK.
	expect(t, sc, allowed, "socket", afInet)
	expect(t, sc, eperm, "socket", afVsock)
	// ptrace on a kernel that is safe with it.
	expect(t, sc, allowed, "ptrace")
	expect(t, sc, allowed, "process_vm_readv")
}

func TestSeccompCapabilityGates(t *testing.T) {
	admin := defaultFor(t, hostAMD64, []string{"SYS_ADMIN"}, nil)
	for _, name := range []string{"mount", "umount2", "unshare", "setns", "fsopen", "bpf", "perf_event_open", "quotactl", "name_to_handle_at", "sethostname", "syslog", "fanotify_init"} {
		expect(t, admin, allowed, name)
	}
	expect(t, admin, allowed, "clone", sigchld|cloneNewNS|cloneNewNet)
	expect(t, admin, allowed, "clone3")
	expect(t, admin, eperm, "pivot_root")
	expect(t, admin, eperm, "kexec_load")
	expect(t, admin, eperm, "open_by_handle_at")

	for _, tc := range []struct {
		cap   string
		names []string
	}{
		{"SYS_PTRACE", []string{"kcmp", "pidfd_getfd", "process_madvise"}},
		{"SYS_MODULE", []string{"init_module", "finit_module", "delete_module"}},
		{"SYS_BOOT", []string{"reboot"}},
		{"SYS_TIME", []string{"settimeofday", "clock_settime", "stime"}},
		{"SYS_PACCT", []string{"acct"}},
		{"SYS_RAWIO", []string{"iopl", "ioperm"}},
		{"SYSLOG", []string{"syslog"}},
		{"DAC_READ_SEARCH", []string{"open_by_handle_at"}},
		{"SYS_NICE", []string{"mbind", "set_mempolicy", "get_mempolicy"}},
		{"SYS_TTY_CONFIG", []string{"vhangup"}},
		{"BPF", []string{"bpf"}},
		{"PERFMON", []string{"perf_event_open"}},
	} {
		sc := defaultFor(t, hostAMD64, []string{tc.cap}, nil)
		for _, name := range tc.names {
			expect(t, sc, allowed, name)
		}
		// None of them opens what CAP_SYS_ADMIN gates.
		expect(t, sc, eperm, "mount")
		expect(t, sc, eperm, "clone", cloneNewNS)
	}

	// Without CAP_SYS_CHROOT (a default capability) chroot is denied.
	expect(t, defaultFor(t, hostAMD64, nil, []string{"SYS_CHROOT"}), eperm, "chroot")
	// --cap-drop ALL keeps the ordinary calls and the clone filter.
	none := defaultFor(t, hostAMD64, nil, []string{"ALL"})
	expect(t, none, allowed, "read")
	expect(t, none, eperm, "chroot")
	expect(t, none, allowed, "clone", sigchld)
	expect(t, none, eperm, "clone", sigchld|cloneNewNS)
}

func TestSeccompHostDependence(t *testing.T) {
	old := defaultFor(t, seccompHost{goarch: "amd64", kernel: &kernelVersion{4, 4, 0}}, nil, nil)
	expect(t, old, eperm, "ptrace")
	expect(t, old, eperm, "process_vm_writev")
	expect(t, defaultFor(t, seccompHost{goarch: "amd64", kernel: &kernelVersion{4, 4, 0}}, []string{"SYS_PTRACE"}, nil), allowed, "ptrace")
	expect(t, defaultFor(t, seccompHost{goarch: "amd64", kernel: &kernelVersion{4, 8, 0}}, nil, nil), allowed, "ptrace")
	// An unknown kernel satisfies no minKernel.
	expect(t, defaultFor(t, seccompHost{goarch: "amd64"}, nil, nil), eperm, "ptrace")

	arm := defaultFor(t, seccompHost{goarch: "arm64", kernel: &kernelVersion{6, 1, 0}}, nil, nil)
	if want := []specs.Arch{specs.ArchAARCH64, specs.ArchARM}; !slices.Equal(arm.Architectures, want) {
		t.Errorf("arm64 architectures %q, want %q", arm.Architectures, want)
	}
	expect(t, arm, eperm, "arch_prctl")
	expect(t, arm, allowed, "cacheflush")
	expect(t, arm, allowed, "clone", sigchld)

	s390 := defaultFor(t, seccompHost{goarch: "s390x", kernel: &kernelVersion{6, 1, 0}}, nil, nil)
	// The flags are argument 1 there.
	expect(t, s390, allowed, "clone", cloneNewNS, sigchld)
	expect(t, s390, eperm, "clone", 0, sigchld|cloneNewNS)
	expect(t, s390, allowed, "s390_runtime_instr")

	// ppc64le has no archMap entry: the native architecture only.
	if ppc := defaultFor(t, seccompHost{goarch: "ppc64le", kernel: &kernelVersion{6, 1, 0}}, nil, nil); len(ppc.Architectures) != 0 {
		t.Errorf("ppc64le architectures %q", ppc.Architectures)
	}
}

// The default profile is well formed, and no call gets two different
// verdicts from two of its entries for any capability set (the runtime
// would then depend on rule order).
func TestSeccompDefaultWellFormed(t *testing.T) {
	p := defaultSeccompProfile()
	if err := p.validate(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, n := range allowedSyscalls {
		if seen[n] {
			t.Errorf("%s listed twice", n)
		}
		seen[n] = true
	}
	for _, c := range capSyscalls {
		for _, n := range c.names {
			if seen[n] {
				t.Errorf("%s is gated on %s but always allowed", n, c.cap)
			}
		}
	}
	for _, add := range [][]string{nil, {"ALL"}, {"SYS_ADMIN"}, {"SYS_PTRACE"}} {
		for _, goarch := range []string{"amd64", "arm64", "s390x", "riscv64"} {
			sc := defaultFor(t, seccompHost{goarch: goarch, kernel: &kernelVersion{6, 1, 0}}, add, nil)
			uncond := map[string]specs.LinuxSeccompAction{}
			cond := map[string]bool{}
			for _, s := range sc.Syscalls {
				for _, n := range s.Names {
					if len(s.Args) == 0 {
						if a, ok := uncond[n]; ok && a != s.Action {
							t.Errorf("%s %v: %s has actions %s and %s", goarch, add, n, a, s.Action)
						}
						uncond[n] = s.Action
					} else {
						cond[n] = true
					}
				}
			}
			for n := range cond {
				if _, ok := uncond[n]; ok {
					t.Errorf("%s %v: %s has conditional and unconditional rules", goarch, add, n)
				}
			}
		}
	}
}

func TestSeccompGenerate(t *testing.T) {
	root := testRootfs(t)
	img := image(nil, []string{"sh"})

	s, _ := gen(t, img, root, baseOpts())
	sc := s.Linux.Seccomp
	if sc == nil {
		t.Fatal("no seccomp profile by default")
	}
	// The host's architecture and its compat ones when the archMap
	// knows it, else none (the runtime adds the native one).
	var wantArch []specs.Arch
	for _, m := range defaultSeccompArchMap {
		if m.Arch == nativeSeccompArch[runtime.GOARCH] {
			wantArch = append([]specs.Arch{m.Arch}, m.SubArches...)
		}
	}
	if !slices.Equal(sc.Architectures, wantArch) {
		t.Errorf("architectures %q on %s, want %q", sc.Architectures, runtime.GOARCH, wantArch)
	}
	expect(t, sc, eperm, "kexec_load")
	expect(t, sc, eperm, "keyctl")
	expect(t, sc, eperm, "mount")
	expect(t, sc, allowed, "read")
	expect(t, sc, allowed, "openat")
	expect(t, sc, allowed, "clone", sigchld)
	expect(t, sc, eperm, "clone", sigchld|cloneNewNS)

	o := baseOpts()
	o.Seccomp = SeccompBuiltin
	if s, _ := gen(t, img, root, o); !reflect.DeepEqual(s.Linux.Seccomp, sc) {
		t.Error("builtin differs from the default")
	}

	o = baseOpts()
	o.CapAdd = []string{"SYS_ADMIN"}
	s, _ = gen(t, img, root, o)
	expect(t, s.Linux.Seccomp, allowed, "mount")
	expect(t, s.Linux.Seccomp, allowed, "clone", cloneNewNS)

	o = baseOpts()
	o.Seccomp = "unconfined"
	if s, w := gen(t, img, root, o); s.Linux.Seccomp != nil || len(w) != 0 {
		t.Errorf("unconfined: seccomp %+v, warnings %v", s.Linux.Seccomp, w)
	}

	o = baseOpts()
	o.Privileged = true
	if s, w := gen(t, img, root, o); s.Linux.Seccomp != nil || len(w) != 0 {
		t.Errorf("privileged: seccomp %+v, warnings %v", s.Linux.Seccomp, w)
	}
	// A profile given to a privileged container is not even read.
	o.Seccomp = filepath.Join(t.TempDir(), "missing.json")
	s, w := gen(t, img, root, o)
	if s.Linux.Seccomp != nil || len(w) != 1 || w[0].Topic != "seccomp" || !strings.Contains(w[0].Message, o.Seccomp) {
		t.Errorf("privileged with a profile: seccomp %+v, warnings %v", s.Linux.Seccomp, w)
	}

	// A bad profile fails Generate.
	o = baseOpts()
	o.Seccomp = filepath.Join(t.TempDir(), "missing.json")
	if _, _, err := Generate(img, root, o); err == nil || !strings.Contains(err.Error(), o.Seccomp) {
		t.Errorf("missing profile: %v", err)
	}
}

const testProfile = `{
	"defaultAction": "SCMP_ACT_ERRNO",
	"defaultErrnoRet": 13,
	"archMap": [
		{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
		{"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
	],
	"flags": ["SECCOMP_FILTER_FLAG_LOG"],
	"syscalls": [
		{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "always"},
		{"name": "getpid", "action": "SCMP_ACT_ALLOW"},
		{"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
		{"names": ["reboot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_BOOT", "sys_admin"]}},
		{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
		 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
		 "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
		{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
		{"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
		{"names": ["cacheflush"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["aarch64"]}},
		{"names": ["uname"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["x86_64"]}},
		{"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
		{"names": ["kcmp"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"minKernel": "5.10.5"}},
		{"names": ["kill"], "action": "SCMP_ACT_LOG", "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}
	]
}`

func writeProfile(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "profile.json")
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSeccompProfileFile(t *testing.T) {
	path := writeProfile(t, testProfile)
	u := func(v uint) *uint { return &v }
	maskedClone := specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActAllow,
		Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x7E020000, Op: specs.OpMaskedEqual}}}
	kill := specs.LinuxSyscall{Names: []string{"kill"}, Action: specs.ActLog,
		Args: []specs.LinuxSeccompArg{{Index: 1, Value: 9, Op: specs.OpEqualTo}}}
	base := []specs.LinuxSyscall{
		{Names: []string{"read", "write"}, Action: specs.ActAllow},
		{Names: []string{"getpid"}, Action: specs.ActAllow},
	}
	tests := []struct {
		name string
		host seccompHost
		add  []string
		want []specs.LinuxSyscall
		arch []specs.Arch
	}{
		{"amd64 default caps old kernel", seccompHost{goarch: "amd64", kernel: &kernelVersion{4, 4, 0}}, nil,
			append(slices.Clone(base), maskedClone,
				specs.LinuxSyscall{Names: []string{"arch_prctl"}, Action: specs.ActAllow},
				specs.LinuxSyscall{Names: []string{"kcmp"}, Action: specs.ActErrno, ErrnoRet: u(38)},
				kill),
			[]specs.Arch{specs.ArchX86_64, specs.ArchX86}},
		{"amd64 sys_admin new kernel", seccompHost{goarch: "amd64", kernel: &kernelVersion{5, 10, 5}}, []string{"SYS_ADMIN"},
			append(slices.Clone(base),
				specs.LinuxSyscall{Names: []string{"mount"}, Action: specs.ActAllow},
				specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActAllow},
				specs.LinuxSyscall{Names: []string{"arch_prctl"}, Action: specs.ActAllow},
				specs.LinuxSyscall{Names: []string{"ptrace"}, Action: specs.ActAllow},
				kill),
			[]specs.Arch{specs.ArchX86_64, specs.ArchX86}},
		{"arm64 sys_admin and sys_boot", seccompHost{goarch: "arm64", kernel: &kernelVersion{5, 10, 4}}, []string{"SYS_ADMIN", "SYS_BOOT"},
			append(slices.Clone(base),
				specs.LinuxSyscall{Names: []string{"mount"}, Action: specs.ActAllow},
				specs.LinuxSyscall{Names: []string{"reboot"}, Action: specs.ActAllow},
				specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActAllow},
				specs.LinuxSyscall{Names: []string{"cacheflush"}, Action: specs.ActAllow},
				specs.LinuxSyscall{Names: []string{"uname"}, Action: specs.ActAllow},
				specs.LinuxSyscall{Names: []string{"ptrace"}, Action: specs.ActAllow},
				specs.LinuxSyscall{Names: []string{"kcmp"}, Action: specs.ActErrno, ErrnoRet: u(38)},
				kill),
			[]specs.Arch{specs.ArchAARCH64, specs.ArchARM}},
		{"riscv64 not in the archMap", seccompHost{goarch: "riscv64"}, []string{"SYS_BOOT"},
			append(slices.Clone(base), maskedClone,
				specs.LinuxSyscall{Names: []string{"uname"}, Action: specs.ActAllow},
				specs.LinuxSyscall{Names: []string{"kcmp"}, Action: specs.ActErrno, ErrnoRet: u(38)},
				kill),
			nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			caps, err := capabilities(false, tc.add, nil, lastCap40)
			if err != nil {
				t.Fatal(err)
			}
			sc, _, err := seccompConfig(Options{Seccomp: path}, caps, tc.host)
			if err != nil {
				t.Fatal(err)
			}
			want := &specs.LinuxSeccomp{
				DefaultAction: specs.ActErrno, DefaultErrnoRet: u(13),
				Architectures: tc.arch,
				Flags:         []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog},
				Syscalls:      tc.want,
			}
			if !reflect.DeepEqual(sc, want) {
				got, _ := json.MarshalIndent(sc, "", " ")
				exp, _ := json.MarshalIndent(want, "", " ")
				t.Fatalf("got\n%s\nwant\n%s", got, exp)
			}
		})
	}

	// Through Generate: the file is used, not the default profile.
	o := baseOpts()
	o.Seccomp = path
	s, _ := gen(t, image(nil, []string{"sh"}), testRootfs(t), o)
	if sc := s.Linux.Seccomp; sc == nil || *sc.DefaultErrnoRet != 13 || judge(sc, "openat") != (verdict{specs.ActErrno, 13}) || judge(sc, "read") != allowed {
		t.Fatalf("Generate with a profile file: %+v", s.Linux.Seccomp)
	}
}

func TestSeccompProfileErrors(t *testing.T) {
	tests := []struct {
		name, data string
		want       []string
	}{
		{"not json", "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  syscalls: []\n}", []string{"invalid JSON", "line 3"}},
		{"empty", "  \n", []string{"the file is empty"}},
		{"array", `[]`, []string{"JSON object", "an array"}},
		{"unknown top field", `{"defaultAction": "SCMP_ACT_ERRNO", "syscall": []}`, []string{`syscall: unknown field`}},
		{"unknown nested field", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "vaule": 1, "op": "SCMP_CMP_EQ"}]}]}`,
			[]string{"syscalls[1].args[0].vaule: unknown field"}},
		{"misspelt excludes", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ALLOW", "exclude": {"caps": ["CAP_SYS_ADMIN"]}}]}`,
			[]string{"syscalls[0].exclude: unknown field"}},
		{"unknown filter field", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"cap": ["CAP_SYS_ADMIN"]}}]}`,
			[]string{"syscalls[0].includes.cap: unknown field"}},
		{"wrong type", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": "0", "value": 1, "op": "SCMP_CMP_EQ"}]}]}`,
			[]string{"syscalls", ".args.", "index", "non-negative integer", "string", "line 1"}},
		{"negative errno", `{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}`, []string{"defaultErrnoRet", "non-negative integer"}},
		{"missing default action", `{"syscalls": []}`, []string{"defaultAction is missing"}},
		{"unknown default action", `{"defaultAction": "SCMP_ACT_DENY"}`, []string{"defaultAction", `"SCMP_ACT_DENY"`, "SCMP_ACT_ERRNO"}},
		{"notify", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_NOTIFY"}]}`, []string{"syscalls[0].action", "SCMP_ACT_NOTIFY"}},
		{"listener", `{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}`, []string{"listenerPath"}},
		{"errno on allow", `{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}`, []string{"defaultErrnoRet is set", "SCMP_ACT_ALLOW"}},
		{"errno too big", `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}`, []string{"syscalls[0].errnoRet", "70000"}},
		{"bad op", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQUAL"}]}]}`,
			[]string{"syscalls[0].args[0].op", `"SCMP_CMP_EQUAL"`, "SCMP_CMP_MASKED_EQ"}},
		{"missing op", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1}]}]}`,
			[]string{"syscalls[0].args[0].op is missing"}},
		{"bad index", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}`,
			[]string{"syscalls[0].args[0].index is 6"}},
		{"name and names", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}`, []string{"syscalls[0]", "both name and names"}},
		{"no names", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}`, []string{"syscalls[0]", "names is missing"}},
		{"empty name", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", ""], "action": "SCMP_ACT_ALLOW"}]}`, []string{"syscalls[0].names[1] is empty"}},
		{"missing action", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"]}]}`, []string{"syscalls[0].action is missing"}},
		{"bad arch", `{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AMD64"]}`, []string{"architectures[1]", `"SCMP_ARCH_AMD64"`}},
		{"bad sub arch", `{"defaultAction": "SCMP_ACT_ERRNO", "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["x86"]}]}`, []string{"archMap[0].subArchitectures[0]", `"x86"`}},
		{"both arch forms", `{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}`, []string{"architectures and archMap"}},
		{"bad flag", `{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}`, []string{"flags[0]", "SECCOMP_FILTER_FLAG_FAST"}},
		{"bad cap", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN", "CAP_FLY"]}}]}`, []string{"syscalls[0].excludes.caps[1]", "CAP_FLY"}},
		{"bad kernel", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.x"}}]}`, []string{"syscalls[0].includes.minKernel", `"4.x"`}},
		{"kernel without minor", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5"}}]}`, []string{"syscalls[0].includes.minKernel"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeProfile(t, tc.data)
			_, _, err := seccompConfig(Options{Seccomp: path}, defaultCaps, hostAMD64)
			if err == nil {
				t.Fatal("accepted")
			}
			msg, ok := strings.CutPrefix(err.Error(), "seccomp profile "+path+": ")
			if !ok {
				t.Errorf("error %q does not start with the file's name", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}

	dir := t.TempDir()
	for _, p := range []string{filepath.Join(dir, "missing.json"), dir} {
		if _, _, err := seccompConfig(Options{Seccomp: p}, defaultCaps, hostAMD64); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v", p, err)
		}
	}
	big := writeProfile(t, `{"defaultAction": "SCMP_ACT_ALLOW", "comment": "`+strings.Repeat("x", maxProfileSize)+`"}`)
	if _, _, err := seccompConfig(Options{Seccomp: big}, defaultCaps, hostAMD64); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big profile: err = %v", err)
	}
}

func TestParseKernelVersion(t *testing.T) {
	for _, tc := range []struct {
		in    string
		loose bool
		want  kernelVersion
		ok    bool
	}{
		{"4.8", false, kernelVersion{4, 8, 0}, true},
		{"5.10.2", false, kernelVersion{5, 10, 2}, true},
		{"6.1.0-18-amd64", true, kernelVersion{6, 1, 0}, true},
		{"6.18.44-fc-v669", true, kernelVersion{6, 18, 44}, true},
		{"5.15-rc1", true, kernelVersion{5, 15, 0}, true},
		{"5.15-rc1", false, kernelVersion{}, false},
		{"5", false, kernelVersion{}, false},
		{"5.", true, kernelVersion{}, false},
		{"", true, kernelVersion{}, false},
		{"v5.4", true, kernelVersion{}, false},
	} {
		got, ok := parseKernelVersion(tc.in, tc.loose)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseKernelVersion(%q, %v) = %v, %v; want %v, %v", tc.in, tc.loose, got, ok, tc.want, tc.ok)
		}
	}
	if !(kernelVersion{4, 8, 0}).atLeast(kernelVersion{4, 8, 0}) || (kernelVersion{4, 7, 9}).atLeast(kernelVersion{4, 8, 0}) || !(kernelVersion{5, 0, 0}).atLeast(kernelVersion{4, 8, 1}) {
		t.Error("atLeast")
	}
}
