//go:build linux && cgo

package seccomp

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Loading a filter cannot be undone, so real-load tests re-execute the test
// binary as a child process: TestMain sees childEnv, loads the profile from
// profileEnv on its locked thread, performs the operation from opEnv and
// reports the outcome as its exit status.
const (
	childEnv        = "BERTH_SECCOMP_TEST_CHILD"
	profileEnv      = "BERTH_SECCOMP_TEST_PROFILE"
	opEnv           = "BERTH_SECCOMP_TEST_OP"
	noNNPEnv        = "BERTH_SECCOMP_TEST_NO_NNP"
	releaseFirstEnv = "BERTH_SECCOMP_TEST_RELEASE_FIRST"
	dropSysAdminEnv = "BERTH_SECCOMP_TEST_DROP_SYS_ADMIN"
)

// Exit codes of the child other than an errno (errnos used here are < 100).
const (
	codeCompileFailed = 120
	codeLoadFailed    = 121
	codeBadOp         = 122
	codeSetupFailed   = 123
	// codeNNPSet is added to the errno by the "nnp+mkdirat" operation when
	// no_new_privs is set after Load.
	codeNNPSet = 100
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

func childFail(code int, format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "seccomp test child: "+format+"\n", args...)
	return code
}

// childMain runs in the re-executed test binary. It must stay on one OS
// thread from prctl to the operation, hence LockOSThread (never undone).
func childMain() int {
	runtime.LockOSThread()

	var cfg specs.LinuxSeccomp
	if err := json.Unmarshal([]byte(os.Getenv(profileEnv)), &cfg); err != nil {
		return childFail(codeSetupFailed, "decoding profile: %v", err)
	}
	// No core files from SIGSYS deaths.
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return childFail(codeSetupFailed, "setrlimit: %v", err)
	}
	if os.Getenv(noNNPEnv) == "" {
		// Lets an unprivileged user load filters. Load must not need it
		// otherwise, and must not set it itself (see the nnp test).
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return childFail(codeSetupFailed, "PR_SET_NO_NEW_PRIVS: %v", err)
		}
	}

	if os.Getenv(dropSysAdminEnv) != "" {
		if err := dropCapSysAdmin(); err != nil {
			return childFail(codeSetupFailed, "dropping CAP_SYS_ADMIN: %v", err)
		}
	}

	f, err := Compile(&cfg)
	if err != nil {
		return childFail(codeCompileFailed, "Compile: %v", err)
	}
	if os.Getenv(releaseFirstEnv) != "" {
		f.Release()
	}
	if err := f.Load(); err != nil {
		return childFail(codeLoadFailed, "Load: %v", err)
	}
	// From here on, only make the syscalls the tests are about.
	return childOp(os.Getenv(opEnv))
}

// dropCapSysAdmin removes CAP_SYS_ADMIN from the effective and permitted
// sets of the calling thread (capabilities are per thread).
func dropCapSysAdmin() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	idx, bit := unix.CAP_SYS_ADMIN/32, uint32(1)<<(unix.CAP_SYS_ADMIN%32)
	data[idx].Effective &^= bit
	data[idx].Permitted &^= bit
	data[idx].Inheritable &^= bit
	return unix.Capset(&hdr, &data[0])
}

func errnoCode(err error) int {
	if err == nil {
		return 0
	}
	if e, ok := err.(unix.Errno); ok {
		return int(e)
	}
	return codeBadOp
}

func childOp(op string) int {
	kind, arg, _ := strings.Cut(op, ":")
	switch kind {
	case "none":
		return 0
	case "mkdirat":
		return errnoCode(unix.Mkdirat(unix.AT_FDCWD, arg, 0o700))
	case "mkdirat-other-thread":
		// A goroutine locked to another thread: that thread is filtered
		// only with SECCOMP_FILTER_FLAG_TSYNC. Go creates threads for
		// locked goroutines from its template thread, never from this
		// (filtered) one, so the other thread cannot inherit the filter.
		res := make(chan int)
		go func() {
			runtime.LockOSThread()
			res <- errnoCode(unix.Mkdirat(unix.AT_FDCWD, arg, 0o700))
		}()
		return <-res
	case "personality":
		v, err := strconv.ParseUint(arg, 0, 64)
		if err != nil {
			return codeBadOp
		}
		_, _, e := unix.Syscall(unix.SYS_PERSONALITY, uintptr(v), 0, 0)
		return int(e)
	case "getpriority":
		which, who, _ := strings.Cut(arg, ":")
		w, err1 := strconv.ParseUint(which, 0, 64)
		p, err2 := strconv.ParseUint(who, 0, 64)
		if err1 != nil || err2 != nil {
			return codeBadOp
		}
		_, _, e := unix.Syscall(unix.SYS_GETPRIORITY, uintptr(w), uintptr(p), 0)
		return int(e)
	case "getppid":
		_, _, e := unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
		return int(e)
	case "nnp+mkdirat":
		nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
		if err != nil {
			return codeSetupFailed
		}
		return errnoCode(unix.Mkdirat(unix.AT_FDCWD, arg, 0o700)) + codeNNPSet*nnp
	}
	return codeBadOp
}
