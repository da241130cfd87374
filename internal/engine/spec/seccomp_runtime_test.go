//go:build linux && cgo

package spec

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/linux/seccomp"
)

// A filter cannot be unloaded, so the profiles Generate makes are loaded
// in a re-executed test binary: TestMain sees seccompChildEnv, loads the
// profile from seccompProfileEnv on its locked thread, makes the calls of
// childCalls and prints each one's errno.
const (
	seccompChildEnv   = "BERTH_SPEC_SECCOMP_CHILD"
	seccompProfileEnv = "BERTH_SPEC_SECCOMP_PROFILE"
	testMissingPath   = "/nonexistent-berth-spec-test"
)

func TestMain(m *testing.M) {
	if os.Getenv(seccompChildEnv) != "" {
		os.Exit(seccompChild())
	}
	os.Exit(m.Run())
}

// atFDCWD is AT_FDCWD (-100) as a system call argument.
var atFDCWD = func() uintptr { fd := unix.AT_FDCWD; return uintptr(fd) }()

func cstr(s string) uintptr {
	b, _ := unix.BytePtrFromString(s)
	return uintptr(unsafe.Pointer(b))
}

// childCalls are harmless whether allowed or not: each fails in the
// kernel (bad arguments, missing paths) or only affects the child.
var childCalls = []struct {
	name string
	call func() unix.Errno
}{
	{"getpid", func() unix.Errno { _, _, e := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0); return e }},
	{"read", func() unix.Errno { _, _, e := unix.RawSyscall(unix.SYS_READ, ^uintptr(0), 0, 0); return e }},
	{"openat", func() unix.Errno {
		fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, atFDCWD, cstr("/"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0, 0, 0)
		if e == 0 {
			unix.Close(int(fd))
		}
		return e
	}},
	{"socket-unix", func() unix.Errno {
		fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if e == 0 {
			unix.Close(int(fd))
		}
		return e
	}},
	{"socket-vsock", func() unix.Errno {
		fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if e == 0 {
			unix.Close(int(fd))
		}
		return e
	}},
	// CLONE_SIGHAND without CLONE_VM, and CLONE_NEWNS with CLONE_FS, are
	// refused by the kernel (EINVAL) before anything is created.
	{"clone-plain", func() unix.Errno {
		_, _, e := unix.RawSyscall6(unix.SYS_CLONE, unix.CLONE_SIGHAND, 0, 0, 0, 0, 0)
		return e
	}},
	{"clone-newns", func() unix.Errno {
		_, _, e := unix.RawSyscall6(unix.SYS_CLONE, unix.CLONE_NEWNS|unix.CLONE_FS, 0, 0, 0, 0, 0)
		return e
	}},
	// A NULL clone_args of size 0: EINVAL from the kernel.
	{"clone3", func() unix.Errno { _, _, e := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0); return e }},
	{"unshare", func() unix.Errno { _, _, e := unix.RawSyscall(unix.SYS_UNSHARE, 0, 0, 0); return e }},
	{"mount", func() unix.Errno {
		_, _, e := unix.RawSyscall6(unix.SYS_MOUNT, cstr("none"), cstr(testMissingPath), cstr("tmpfs"), 0, 0, 0)
		return e
	}},
	{"chroot", func() unix.Errno { _, _, e := unix.RawSyscall(unix.SYS_CHROOT, cstr(testMissingPath), 0, 0); return e }},
	// KEYCTL_GET_KEYRING_ID of KEY_SPEC_PROCESS_KEYRING, not created.
	{"keyctl", func() unix.Errno { _, _, e := unix.RawSyscall(unix.SYS_KEYCTL, 0, ^uintptr(1), 0); return e }},
	// Flags no kernel knows: EINVAL after the capability check.
	{"kexec_load", func() unix.Errno {
		_, _, e := unix.RawSyscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0xffff0000, 0, 0)
		return e
	}},
	{"userfaultfd", func() unix.Errno { _, _, e := unix.RawSyscall(unix.SYS_USERFAULTFD, 0xffffffff, 0, 0); return e }},
	{"io_uring_setup", func() unix.Errno { _, _, e := unix.RawSyscall(unix.SYS_IO_URING_SETUP, 0, 0, 0); return e }},
	{"personality-query", func() unix.Errno {
		_, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
		return e
	}},
	{"personality-exec", func() unix.Errno {
		_, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, 0x0400000, 0, 0) // READ_IMPLIES_EXEC
		return e
	}},
	// PTRACE_PEEKDATA of a pid that cannot exist: ESRCH when allowed.
	{"ptrace", func() unix.Errno {
		_, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKDATA, 0x7ffffffe, 0, 0, 0, 0)
		return e
	}},
}

func seccompChild() int {
	runtime.LockOSThread()
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "seccomp child: "+format+"\n", args...)
		return 120
	}
	var cfg specs.LinuxSeccomp
	if err := json.Unmarshal([]byte(os.Getenv(seccompProfileEnv)), &cfg); err != nil {
		return fail("decode profile: %v", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fail("PR_SET_NO_NEW_PRIVS: %v", err)
	}
	f, err := seccomp.Compile(&cfg)
	if err != nil {
		return fail("Compile: %v", err)
	}
	if err := f.Load(); err != nil {
		return fail("Load: %v", err)
	}
	out := make([]unix.Errno, len(childCalls))
	for i, c := range childCalls {
		out[i] = c.call()
	}
	var b strings.Builder
	for i, c := range childCalls {
		fmt.Fprintf(&b, "%s %d\n", c.name, int(out[i]))
	}
	os.Stdout.WriteString(b.String())
	return 0
}

// runFiltered returns the errno of each of childCalls under sc.
func runFiltered(t *testing.T, sc *specs.LinuxSeccomp) map[string]unix.Errno {
	t.Helper()
	data, err := json.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), seccompChildEnv+"=1", seccompProfileEnv+"="+string(data))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	res := map[string]unix.Errno{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, num, _ := strings.Cut(line, " ")
		n, err := strconv.Atoi(num)
		if err != nil {
			t.Fatalf("child output %q", out)
		}
		res[name] = unix.Errno(n)
	}
	if len(res) != len(childCalls) {
		t.Fatalf("child output %q", out)
	}
	return res
}

func genSeccomp(t *testing.T, o Options) *specs.LinuxSeccomp {
	t.Helper()
	s, _ := gen(t, image(nil, []string{"sh"}), testRootfs(t), o)
	if s.Linux.Seccomp == nil {
		t.Fatal("no seccomp profile")
	}
	return s.Linux.Seccomp
}

// Every profile Generate makes compiles with the runtime's seccomp
// package (so every action, operator, architecture and flag is one it
// accepts, and the program fits the kernel's limit), whatever the
// capabilities.
func TestSeccompRuntimeCompiles(t *testing.T) {
	for _, tc := range []struct {
		name      string
		add, drop []string
		file      string
	}{
		{name: "default"},
		{name: "sys_admin", add: []string{"SYS_ADMIN"}},
		{name: "all caps", add: []string{"ALL"}},
		{name: "no caps", drop: []string{"ALL"}},
		{name: "ptrace bpf perfmon syslog", add: []string{"SYS_PTRACE", "BPF", "PERFMON", "SYSLOG", "SYS_TIME"}},
		{name: "profile file", file: testProfile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := baseOpts()
			o.CapAdd, o.CapDrop = tc.add, tc.drop
			if tc.file != "" {
				o.Seccomp = writeProfile(t, tc.file)
			}
			f, err := seccomp.Compile(genSeccomp(t, o))
			if err != nil {
				t.Fatalf("the runtime refuses the profile: %v", err)
			}
			f.Release()
		})
	}
}

// The default profile, loaded for real, denies and allows what docker's
// does.
func TestSeccompRuntimeEnforces(t *testing.T) {
	if !seccomp.Enabled() {
		t.Skip("seccomp filters are not available here")
	}
	if runtime.GOARCH == "s390x" {
		t.Skip("clone's flags are argument 1 on s390x")
	}
	root := os.Geteuid() == 0

	def := runFiltered(t, genSeccomp(t, baseOpts()))
	want := map[string]unix.Errno{
		"getpid": 0, "read": unix.EBADF, "openat": 0, "socket-unix": 0,
		"socket-vsock": unix.EPERM, "clone-plain": unix.EINVAL, "clone-newns": unix.EPERM,
		"clone3": unix.ENOSYS, "unshare": unix.EPERM, "mount": unix.EPERM, "chroot": unix.ENOENT,
		"keyctl": unix.EPERM, "kexec_load": unix.EPERM, "userfaultfd": unix.EPERM,
		"io_uring_setup": unix.EPERM, "personality-query": 0, "personality-exec": unix.EPERM,
		"ptrace": unix.ESRCH,
	}
	if k := hostKernelVersion(); k == nil || !k.atLeast(kernelVersion{4, 8, 0}) {
		want["ptrace"] = unix.EPERM
	}
	for name, w := range want {
		if got := def[name]; got != w {
			t.Errorf("default profile: %s: %v (%d), want %v (%d)", name, got, int(got), w, int(w))
		}
	}

	// With CAP_SYS_ADMIN the namespace calls reach the kernel.
	o := baseOpts()
	o.CapAdd = []string{"SYS_ADMIN"}
	admin := runFiltered(t, genSeccomp(t, o))
	for name, w := range map[string]unix.Errno{"clone-newns": unix.EINVAL, "clone3": unix.EINVAL, "clone-plain": unix.EINVAL} {
		if got := admin[name]; got != w {
			t.Errorf("CAP_SYS_ADMIN: %s: %v, want %v", name, got, w)
		}
	}
	if root {
		// The test runs as root, so the kernel grants these.
		if admin["unshare"] != 0 || admin["mount"] != unix.ENOENT {
			t.Errorf("CAP_SYS_ADMIN: unshare %v, mount %v; want success and ENOENT", admin["unshare"], admin["mount"])
		}
	}
	if admin["kexec_load"] != unix.EPERM || admin["keyctl"] != unix.EPERM {
		t.Errorf("CAP_SYS_ADMIN: kexec_load %v, keyctl %v; want EPERM", admin["kexec_load"], admin["keyctl"])
	}

	// Without CAP_SYS_CHROOT chroot never reaches the kernel.
	o = baseOpts()
	o.CapDrop = []string{"SYS_CHROOT"}
	if got := runFiltered(t, genSeccomp(t, o))["chroot"]; got != unix.EPERM {
		t.Errorf("without CAP_SYS_CHROOT: chroot %v, want EPERM", got)
	}
}
