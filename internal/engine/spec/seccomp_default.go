package spec

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Constants of the default profile, spelt out so the package builds off
// Linux too.
const (
	errnoEPERM  = 1
	errnoENOSYS = 38
	afVsock     = 40
	// cloneNewFlags are the namespace flags of clone(2): CLONE_NEWNS,
	// CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER,
	// CLONE_NEWPID and CLONE_NEWNET.
	cloneNewFlags = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
)

// allowedSyscalls are the system calls every container may make: what
// ordinary programs need (files, sockets, memory, signals, threads, time,
// IPC, process control), including the 32-bit and socketcall/ipc variants
// of the compat ABIs and calls newer than the host's libseccomp (the
// runtime skips names it does not know). Absent on purpose, so denied with
// EPERM: kexec_*, *_module, keyctl/add_key/request_key, userfaultfd,
// swapon/swapoff, vm86*, nfsservctl, uselib, ustat, sysfs, _sysctl,
// create_module, get_kernel_syms, query_module, afs_syscall, pivot_root,
// io_uring_* (a large kernel attack surface), and everything below that a
// capability gates.
var allowedSyscalls = []string{
	// Files and directories.
	"access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range",
	"creat", "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
	"fallocate", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
	"fcntl", "fcntl64", "fdatasync", "flock", "fstat", "fstat64", "fstatat64", "fstatfs",
	"fstatfs64", "fsync", "ftruncate", "ftruncate64", "futimesat", "getcwd", "getdents",
	"getdents64", "lchown", "lchown32", "link", "linkat", "_llseek", "lseek", "lstat", "lstat64",
	"mkdir", "mkdirat", "mknod", "mknodat", "newfstatat", "open", "openat", "openat2", "pipe", "pipe2", "pread64",
	"preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
	"readlinkat", "readv", "rename", "renameat", "renameat2", "rmdir", "sendfile", "sendfile64",
	"splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync",
	"sync_file_range", "syncfs", "tee", "truncate", "truncate64", "umask", "unlink", "unlinkat",
	"utime", "utimensat", "utimensat_time64", "utimes", "vmsplice", "write", "writev",
	"cachestat", "ioctl",
	// Extended attributes.
	"fgetxattr", "flistxattr", "fremovexattr", "fsetxattr", "getxattr", "lgetxattr", "listxattr",
	"llistxattr", "lremovexattr", "lsetxattr", "removexattr", "setxattr",
	"getxattrat", "listxattrat", "removexattrat", "setxattrat",
	// Polling, events and notification.
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
	"epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "fanotify_mark", "inotify_add_watch",
	"inotify_init", "inotify_init1", "inotify_rm_watch", "_newselect", "poll", "ppoll",
	"ppoll_time64", "pselect6", "pselect6_time64", "select", "signalfd", "signalfd4",
	"timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
	"timerfd_settime64",
	// Asynchronous I/O (io_uring is not allowed).
	"io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
	"io_setup", "io_submit", "ioprio_get", "ioprio_set",
	// Sockets. socket itself is below: everything but AF_VSOCK.
	"accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen",
	"recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send", "sendmmsg", "sendmsg",
	"sendto", "setsockopt", "shutdown", "socketcall", "socketpair",
	// Memory.
	"brk", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore",
	"mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "mseal", "msync",
	"munlock", "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect",
	"process_mrelease", "remap_file_pages",
	// Processes, threads and scheduling. clone and clone3 are below.
	"capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "getcpu", "getpgid",
	"getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getrlimit", "getrusage", "getsid", "gettid",
	"get_robust_list", "get_thread_area", "kill", "landlock_add_rule", "landlock_create_ruleset",
	"landlock_restrict_self", "pidfd_open", "pidfd_send_signal", "prctl", "prlimit64",
	"restart_syscall", "rseq", "sched_getaffinity", "sched_getattr", "sched_getparam",
	"sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
	"sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
	"sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
	"setpgid", "setpriority", "setrlimit", "set_robust_list", "setsid", "set_thread_area",
	"set_tid_address", "sysinfo", "tgkill", "tkill", "ugetrlimit", "uname", "vfork", "wait4",
	"waitid", "waitpid",
	// Futexes.
	"futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake",
	// Credentials.
	"getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
	"getgroups32", "getresgid", "getresgid32", "getresuid", "getresuid32", "getuid", "getuid32",
	"setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
	"setgroups32", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
	"setresuid32", "setreuid", "setreuid32", "setuid", "setuid32",
	// Signals.
	"pause", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
	"rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
	"sigaltstack", "sigprocmask", "sigreturn",
	// Time and timers. Reading the clock; the kernel only lets
	// CAP_SYS_TIME change it through adjtimex and clock_adjtime.
	"adjtimex", "alarm", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
	"clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "getitimer",
	"gettimeofday", "nanosleep", "setitimer", "time", "timer_create", "timer_delete",
	"timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
	"times",
	// System V and POSIX IPC (namespaced).
	"ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
	"mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd",
	"semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt",
	"shmget",
}

// capSyscalls are allowed only when the container's bounding set has the
// capability, the one the kernel checks for them (or what they expose).
var capSyscalls = []struct {
	cap   string
	names []string
}{
	{"CAP_SYS_ADMIN", []string{
		// Mounts and namespaces.
		"fsconfig", "fsmount", "fsopen", "fspick", "mount", "mount_setattr", "move_mount",
		"open_tree", "setns", "umount", "umount2", "unshare",
		// clone and clone3 with any flags (see seccompDefaultSpecial).
		"clone", "clone3",
		// Tracing, BPF, audit of files, quotas, names, kernel log.
		"bpf", "fanotify_init", "lookup_dcookie", "name_to_handle_at", "perf_event_open",
		"quotactl", "quotactl_fd", "setdomainname", "sethostname", "syslog",
	}},
	{"CAP_SYS_BOOT", []string{"reboot"}},
	{"CAP_SYS_CHROOT", []string{"chroot"}},
	{"CAP_SYS_MODULE", []string{"delete_module", "finit_module", "init_module"}},
	{"CAP_SYS_PACCT", []string{"acct"}},
	{"CAP_SYS_PTRACE", []string{"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"}},
	{"CAP_SYS_RAWIO", []string{"ioperm", "iopl"}},
	{"CAP_SYS_TIME", []string{"clock_settime", "clock_settime64", "settimeofday", "stime"}},
	{"CAP_SYS_TTY_CONFIG", []string{"vhangup"}},
	{"CAP_SYS_NICE", []string{"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"}},
	{"CAP_SYSLOG", []string{"syslog"}},
	{"CAP_DAC_READ_SEARCH", []string{"open_by_handle_at"}},
	{"CAP_BPF", []string{"bpf"}},
	{"CAP_PERFMON", []string{"perf_event_open"}},
}

// archSyscalls are allowed on the listed architectures (GOARCH names, plus
// the compat ABIs they run) only.
var archSyscalls = []struct {
	arches []string
	names  []string
}{
	{[]string{"amd64", "x32"}, []string{"arch_prctl"}},
	{[]string{"amd64", "x32", "x86", "386"}, []string{"modify_ldt"}},
	{[]string{"arm", "arm64"}, []string{"arm_fadvise64_64", "arm_sync_file_range", "breakpoint", "cacheflush", "set_tls", "sync_file_range2"}},
	{[]string{"ppc64le"}, []string{"swapcontext", "sync_file_range2"}},
	{[]string{"s390", "s390x"}, []string{"s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"}},
	{[]string{"riscv64"}, []string{"riscv_flush_icache"}},
}

// personalities are the personality(2) values allowed: PER_LINUX,
// PER_LINUX32, UNAME26, PER_LINUX32|UNAME26 and 0xffffffff (a query).
var personalities = []uint64{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}

// seccompDefaultSpecial are the entries with argument filters or
// conditions beyond one capability.
func seccompDefaultSpecial() []seccompSyscall {
	enosys := uint(errnoENOSYS)
	out := []seccompSyscall{
		// Before Linux 4.8 a tracer could change a system call after
		// seccomp had checked it; since then tracing (and reading the
		// memory of) processes the kernel lets one trace is allowed.
		{Names: []string{"ptrace", "process_vm_readv", "process_vm_writev"}, Action: specs.ActAllow,
			Includes: &seccompFilter{MinKernel: "4.8"}},
		// Any socket family but vsock, which reaches the hypervisor.
		{Names: []string{"socket"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: afVsock, Op: specs.OpNotEqual}}},
		// Without CAP_SYS_ADMIN: clone without namespace flags (the
		// flags are argument 0, but argument 1 on s390), and clone3,
		// whose flags are in memory seccomp cannot read, fails with
		// ENOSYS so that libcs fall back to clone.
		{Names: []string{"clone"}, Action: specs.ActAllow,
			Args:     []specs.LinuxSeccompArg{{Index: 0, Value: cloneNewFlags, ValueTwo: 0, Op: specs.OpMaskedEqual}},
			Excludes: &seccompFilter{Caps: []string{"CAP_SYS_ADMIN"}, Arches: []string{"s390", "s390x"}}},
		{Names: []string{"clone"}, Action: specs.ActAllow,
			Args:     []specs.LinuxSeccompArg{{Index: 1, Value: cloneNewFlags, ValueTwo: 0, Op: specs.OpMaskedEqual}},
			Includes: &seccompFilter{Arches: []string{"s390", "s390x"}},
			Excludes: &seccompFilter{Caps: []string{"CAP_SYS_ADMIN"}}},
		{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys,
			Excludes: &seccompFilter{Caps: []string{"CAP_SYS_ADMIN"}}},
	}
	// One entry per value: conditions on one argument are ANDed.
	for _, v := range personalities {
		out = append(out, seccompSyscall{Names: []string{"personality"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: v, Op: specs.OpEqualTo}}})
	}
	return out
}

// defaultSeccompArchMap: the compat ABIs a native architecture's kernel
// also runs, which the filter must cover (a call through an architecture
// missing from the filter is killed).
var defaultSeccompArchMap = []seccompArchMap{
	{specs.ArchX86_64, []specs.Arch{specs.ArchX86, specs.ArchX32}},
	{specs.ArchAARCH64, []specs.Arch{specs.ArchARM}},
	{specs.ArchMIPS64, []specs.Arch{specs.ArchMIPS, specs.ArchMIPS64N32}},
	{specs.ArchMIPS64N32, []specs.Arch{specs.ArchMIPS, specs.ArchMIPS64}},
	{specs.ArchMIPSEL64, []specs.Arch{specs.ArchMIPSEL, specs.ArchMIPSEL64N32}},
	{specs.ArchMIPSEL64N32, []specs.Arch{specs.ArchMIPSEL, specs.ArchMIPSEL64}},
	{specs.ArchS390X, []specs.Arch{specs.ArchS390}},
	{specs.ArchRISCV64, nil},
}

// defaultSeccompProfile is berth's default profile, equivalent in effect
// to docker's: deny with EPERM, allow the ordinary system calls, gate
// the others on the capabilities that make them meaningful.
func defaultSeccompProfile() *seccompProfile {
	eperm := uint(errnoEPERM)
	p := &seccompProfile{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: &eperm,
		ArchMap:         defaultSeccompArchMap,
		Syscalls:        []seccompSyscall{{Names: allowedSyscalls, Action: specs.ActAllow}},
	}
	p.Syscalls = append(p.Syscalls, seccompDefaultSpecial()...)
	for _, a := range archSyscalls {
		p.Syscalls = append(p.Syscalls, seccompSyscall{Names: a.names, Action: specs.ActAllow,
			Includes: &seccompFilter{Arches: a.arches}})
	}
	for _, c := range capSyscalls {
		p.Syscalls = append(p.Syscalls, seccompSyscall{Names: c.names, Action: specs.ActAllow,
			Includes: &seccompFilter{Caps: []string{c.cap}}})
	}
	return p
}
