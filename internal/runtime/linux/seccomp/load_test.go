//go:build linux && cgo

package seccomp

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

type childResult struct {
	code   int            // exit status, -1 when killed by a signal
	signal syscall.Signal // the killing signal, 0 when it exited
	stderr string
}

// runChild loads profile in a re-executed test binary and performs op there.
// The child fails the test when it cannot get as far as the operation.
func runChild(t *testing.T, profile *specs.LinuxSeccomp, op string, extraEnv ...string) childResult {
	t.Helper()
	res, err := startChild(t, profile, op, extraEnv...)
	if err != nil {
		t.Fatalf("running child: %v", err)
	}
	if res.code == codeCompileFailed || res.code == codeLoadFailed || res.code == codeSetupFailed || res.code == codeBadOp {
		t.Fatalf("child failed before the operation (exit %d): %s", res.code, res.stderr)
	}
	return res
}

// startChild runs the child and reports how it ended.
func startChild(t *testing.T, profile *specs.LinuxSeccomp, op string, extraEnv ...string) (childResult, error) {
	t.Helper()
	if !Enabled() {
		t.Skip("seccomp filters are not usable here (libseccomp or kernel)")
	}
	js, err := json.Marshal(profile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", profileEnv+"="+string(js), opEnv+"="+op)
	cmd.Env = append(cmd.Env, extraEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	res := childResult{stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		res.code = 0
	case errors.As(err, &exitErr):
		ws := exitErr.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			res.code, res.signal = -1, ws.Signal()
		} else {
			res.code = ws.ExitStatus()
		}
	default:
		return res, err
	}
	return res, nil
}

func uintp(v uint) *uint { return &v }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestLoadErrnoRet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64, specs.ArchARM},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdirat", "mkdir", "berth_no_such_syscall"}, Action: specs.ActErrno, ErrnoRet: uintp(42)},
		},
	}
	res := runChild(t, p, "mkdirat:"+dir)
	if res.code != 42 {
		t.Fatalf("mkdirat under SCMP_ACT_ERRNO(42): child exit %d (signal %v), want errno 42; stderr: %s", res.code, res.signal, res.stderr)
	}
	if exists(dir) {
		t.Fatalf("%s was created although mkdirat was filtered", dir)
	}
}

func TestLoadOtherSyscallsUnaffected(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uintp(42)}},
	}
	if res := runChild(t, p, "mkdirat:"+dir); res.code != 0 {
		t.Fatalf("mkdirat with only getppid filtered: child exit %d (signal %v), want 0; stderr: %s", res.code, res.signal, res.stderr)
	}
	if !exists(dir) {
		t.Fatalf("%s was not created", dir)
	}
	if res := runChild(t, p, "getppid"); res.code != 42 {
		t.Fatalf("getppid: child exit %d, want 42", res.code)
	}
}

func TestLoadDefaultErrnoIsEPERM(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActErrno}},
	}
	if res := runChild(t, p, "mkdirat:"+dir); res.code != int(unix.EPERM) {
		t.Fatalf("SCMP_ACT_ERRNO without errnoRet: child exit %d, want EPERM (%d)", res.code, unix.EPERM)
	}
}

func TestLoadArgsEqual(t *testing.T) {
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{
			Names:    []string{"personality"},
			Action:   specs.ActErrno,
			ErrnoRet: uintp(42),
			Args:     []specs.LinuxSeccompArg{{Index: 0, Value: 0xffffffff, Op: specs.OpEqualTo}},
		}},
	}
	if res := runChild(t, p, "personality:0xffffffff"); res.code != 42 {
		t.Errorf("personality(0xffffffff) with an EQ rule: child exit %d, want 42", res.code)
	}
	if res := runChild(t, p, "personality:0"); res.code != 0 {
		t.Errorf("personality(0) with an EQ 0xffffffff rule: child exit %d, want 0 (allowed)", res.code)
	}
}

func TestLoadArgsSameIndexSplit(t *testing.T) {
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{
			Names:    []string{"personality"},
			Action:   specs.ActErrno,
			ErrnoRet: uintp(42),
			Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 0xffffffff, Op: specs.OpEqualTo},
				{Index: 0, Value: 0x12ab, Op: specs.OpEqualTo},
			},
		}},
	}
	for op, want := range map[string]int{
		"personality:0xffffffff": 42,
		"personality:0x12ab":     42,
		"personality:0":          0,
	} {
		if res := runChild(t, p, op); res.code != want {
			t.Errorf("%s with two EQ conditions on arg0: child exit %d, want %d", op, res.code, want)
		}
	}
}

func TestLoadArgsSameIndexSplitKeepsOtherIndexes(t *testing.T) {
	// Blocked: which == PRIO_PROCESS && (who == 0 || who == 1).
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{
			Names:    []string{"getpriority"},
			Action:   specs.ActErrno,
			ErrnoRet: uintp(42),
			Args: []specs.LinuxSeccompArg{
				{Index: 1, Value: 0, Op: specs.OpEqualTo},
				{Index: 0, Value: unix.PRIO_PROCESS, Op: specs.OpEqualTo},
				{Index: 1, Value: 1, Op: specs.OpEqualTo},
			},
		}},
	}
	for op, blocked := range map[string]bool{
		"getpriority:0:0": true,
		"getpriority:0:1": true,
		"getpriority:0:2": false, // who does not match
		"getpriority:1:0": false, // PRIO_PGRP: which does not match
	} {
		res := runChild(t, p, op)
		if got := res.code == 42; got != blocked {
			t.Errorf("%s: child exit %d, blocked = %v, want %v", op, res.code, got, blocked)
		}
	}
}

func TestLoadArgsAndAcrossIndexes(t *testing.T) {
	// getpriority(PRIO_PROCESS, 0) is blocked only when both args match.
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{
			Names:    []string{"getpriority"},
			Action:   specs.ActErrno,
			ErrnoRet: uintp(42),
			Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: unix.PRIO_PROCESS, Op: specs.OpEqualTo},
				{Index: 1, Value: 0, Op: specs.OpEqualTo},
			},
		}},
	}
	if res := runChild(t, p, "getpriority:0:0"); res.code != 42 {
		t.Errorf("getpriority(0, 0): child exit %d, want 42", res.code)
	}
	// who = 1 (init) does not match arg1 == 0: allowed (ESRCH is fine if
	// pid 1 is not visible, it still proves the call reached the kernel).
	if res := runChild(t, p, "getpriority:0:1"); res.code == 42 {
		t.Errorf("getpriority(0, 1) was blocked; conditions on arg0 and arg1 must be ANDed")
	}
}

func TestLoadMaskedEqual(t *testing.T) {
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{
			Names:    []string{"personality"},
			Action:   specs.ActErrno,
			ErrnoRet: uintp(42),
			// (arg0 & 0xff00) == 0x1200
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0xff00, ValueTwo: 0x1200, Op: specs.OpMaskedEqual}},
		}},
	}
	if res := runChild(t, p, "personality:0x12ab"); res.code != 42 {
		t.Errorf("personality(0x12ab) with MASKED_EQ 0xff00/0x1200: child exit %d, want 42", res.code)
	}
	if res := runChild(t, p, "personality:0x34ab"); res.code != 0 {
		t.Errorf("personality(0x34ab) with MASKED_EQ 0xff00/0x1200: child exit %d, want 0", res.code)
	}
}

func TestLoadTraceWithoutTracerIsENOSYS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActTrace, ErrnoRet: uintp(7)}},
	}
	if res := runChild(t, p, "mkdirat:"+dir); res.code != int(unix.ENOSYS) {
		t.Fatalf("SCMP_ACT_TRACE with no tracer: child exit %d, want ENOSYS (%d)", res.code, unix.ENOSYS)
	}
}

func TestLoadLogAllows(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActLog}},
	}
	if !slices.Contains(SupportedActions(), string(specs.ActLog)) {
		t.Skip("kernel lacks SECCOMP_RET_LOG")
	}
	if res := runChild(t, p, "mkdirat:"+dir); res.code != 0 || !exists(dir) {
		t.Fatalf("SCMP_ACT_LOG: child exit %d, dir created %v; want 0 and created", res.code, exists(dir))
	}
}

func TestLoadKillProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActKillProcess}},
	}
	res := runChild(t, p, "mkdirat:"+dir)
	if res.signal != syscall.SIGSYS {
		t.Fatalf("SCMP_ACT_KILL_PROCESS: child exit %d signal %v, want killed by SIGSYS; stderr: %s", res.code, res.signal, res.stderr)
	}
	if exists(dir) {
		t.Fatalf("%s was created", dir)
	}
}

func TestLoadTrap(t *testing.T) {
	// SIGSYS is delivered to the thread; the Go runtime treats it as fatal
	// and exits with status 2 after printing the signal.
	dir := filepath.Join(t.TempDir(), "d")
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActTrap}},
	}
	res := runChild(t, p, "mkdirat:"+dir)
	if res.code != 2 || !strings.Contains(res.stderr, "SIGSYS") {
		t.Fatalf("SCMP_ACT_TRAP: child exit %d signal %v, want Go's fatal-signal exit 2 mentioning SIGSYS; stderr: %.300s", res.code, res.signal, res.stderr)
	}
}

func TestLoadDefaultErrnoAllowList(t *testing.T) {
	// A deny-by-default profile: everything the Go runtime may need on the
	// way to exit is allowed, the rest fails with defaultErrnoRet.
	allowed := []string{
		"arch_prctl", "brk", "clock_gettime", "clock_nanosleep", "clone", "clone3", "close",
		"epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_wait", "exit", "exit_group", "fcntl",
		"fstat", "futex", "getpid", "getrandom", "getrlimit", "gettid", "gettimeofday", "madvise",
		"mkdirat", "mmap", "mprotect", "munmap", "nanosleep", "newfstatat", "openat", "pipe2",
		"prctl", "prlimit64", "read", "readlinkat", "restart_syscall", "rseq", "rt_sigaction",
		"rt_sigprocmask", "rt_sigreturn", "sched_getaffinity", "sched_yield", "set_robust_list",
		"sigaltstack", "tgkill", "tkill", "uname", "write",
	}
	p := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: uintp(uint(unix.EACCES)),
		Syscalls:        []specs.LinuxSyscall{{Names: allowed, Action: specs.ActAllow}},
	}
	if res := runChild(t, p, "getppid"); res.code != int(unix.EACCES) {
		t.Errorf("getppid under default SCMP_ACT_ERRNO(EACCES): child exit %d signal %v, want %d; stderr: %.300s", res.code, res.signal, unix.EACCES, res.stderr)
	}
	dir := filepath.Join(t.TempDir(), "d")
	if res := runChild(t, p, "mkdirat:"+dir); res.code != 0 || !exists(dir) {
		t.Errorf("allow-listed mkdirat: child exit %d signal %v, want 0; stderr: %.300s", res.code, res.signal, res.stderr)
	}
}

func TestLoadAppliesToCallingThreadOnly(t *testing.T) {
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActErrno, ErrnoRet: uintp(42)}},
	}
	dir := filepath.Join(t.TempDir(), "d")
	if res := runChild(t, p, "mkdirat-other-thread:"+dir); res.code != 0 || !exists(dir) {
		t.Fatalf("without TSYNC another thread must be unfiltered: child exit %d, want 0", res.code)
	}

	if !slices.Contains(SupportedFlags(), flagTsync) {
		t.Skip("kernel lacks SECCOMP_FILTER_FLAG_TSYNC")
	}
	p.Flags = []specs.LinuxSeccompFlag{flagTsync}
	dir = filepath.Join(t.TempDir(), "d")
	if res := runChild(t, p, "mkdirat-other-thread:"+dir); res.code != 42 {
		t.Fatalf("with TSYNC every thread must be filtered: child exit %d, want 42", res.code)
	}
}

func TestLoadWithFlags(t *testing.T) {
	for _, fl := range []string{flagLog, flagSpecAllow} {
		t.Run(fl, func(t *testing.T) {
			p := &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Flags:         []specs.LinuxSeccompFlag{specs.LinuxSeccompFlag(fl)},
				Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActErrno, ErrnoRet: uintp(42)}},
			}
			if !slices.Contains(SupportedFlags(), fl) {
				_, err := Compile(p)
				if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), fl) {
					t.Fatalf("%s is not supported here, Compile should say so; got %v", fl, err)
				}
				return
			}
			dir := filepath.Join(t.TempDir(), "d")
			if res := runChild(t, p, "mkdirat:"+dir); res.code != 42 {
				t.Fatalf("filter loaded with %s: child exit %d, want 42", fl, res.code)
			}
		})
	}
}

func TestLoadAfterRelease(t *testing.T) {
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActErrno, ErrnoRet: uintp(42)}},
	}
	dir := filepath.Join(t.TempDir(), "d")
	if res := runChild(t, p, "mkdirat:"+dir, releaseFirstEnv+"=1"); res.code != 42 {
		t.Fatalf("Load after Release: child exit %d, want 42", res.code)
	}
}

func TestLoadDoesNotSetNoNewPrivs(t *testing.T) {
	// Without no_new_privs, loading needs CAP_SYS_ADMIN.
	if unix.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_ADMIN) to load a filter without no_new_privs")
	}
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActErrno, ErrnoRet: uintp(42)}},
	}
	dir := filepath.Join(t.TempDir(), "d")
	res := runChild(t, p, "nnp+mkdirat:"+dir, noNNPEnv+"=1")
	switch res.code {
	case 42:
	case 42 + codeNNPSet:
		t.Fatal("Load set no_new_privs; that is the runtime's decision")
	default:
		t.Fatalf("child exit %d, want 42 (filter active, no_new_privs clear)", res.code)
	}
}

func TestLoadWithoutNoNewPrivsNeedsCapSysAdmin(t *testing.T) {
	// Load must not set no_new_privs itself, so a thread that has neither
	// it nor CAP_SYS_ADMIN is refused, with an error that says what to do.
	// The child drops CAP_SYS_ADMIN from its own thread first (a no-op
	// when the tests run unprivileged).
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActErrno}},
	}
	res, err := startChild(t, p, "none", noNNPEnv+"=1", dropSysAdminEnv+"=1")
	if err != nil {
		t.Fatalf("running child: %v", err)
	}
	if res.code != codeLoadFailed {
		t.Fatalf("Load without no_new_privs or CAP_SYS_ADMIN: child exit %d, want Load to fail (%d); stderr: %s", res.code, codeLoadFailed, res.stderr)
	}
	for _, want := range []string{"permission denied", "no_new_privs", "CAP_SYS_ADMIN"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("Load error %q does not mention %q", res.stderr, want)
		}
	}
}
