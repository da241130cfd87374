//go:build linux && cgo

// Package seccomp turns the OCI runtime-spec "linux.seccomp" profile into a
// classic-BPF seccomp filter (with libseccomp, through cgo) and installs it.
//
// # Invariants
//
// Which thread: Load installs the filter on the calling OS thread only. The
// kernel propagates it to every other thread of the process only when the
// profile lists SECCOMP_FILTER_FLAG_TSYNC. The caller must therefore pin its
// goroutine with runtime.LockOSThread before Load and stay pinned until it
// calls execve(2) from that same thread: execve keeps the calling thread's
// filter (the other threads are destroyed), so the container process starts
// filtered. A goroutine that is not pinned may be moved to an unfiltered
// thread and execve from there without any filter.
//
// When: after Load, every system call made by that thread is filtered,
// including the calls the Go runtime makes on it. Load should be the last
// step before execve, and the profile must allow execve itself. Load only
// issues seccomp(2) (plus prctl(2) as a fallback on kernels older than 3.17
// when no flag is set) and calls nothing in libseccomp: all parsing and
// all libseccomp work (BPF generation included) happen in Compile. Release
// may be called before or after Load; the compiled program survives it.
//
// no_new_privs: this package never sets it. libseccomp sets the
// no_new_privs bit by default when it loads a filter (its CtlNNP
// attribute); that attribute is switched off, and the filter is loaded by
// this package rather than by libseccomp anyway. The runtime decides from
// process.noNewPrivileges. Without no_new_privs the kernel only lets a
// thread with CAP_SYS_ADMIN (in its user namespace) load a filter, so:
// when noNewPrivileges is true, set PR_SET_NO_NEW_PRIVS first and call Load
// as late as possible; when it is false, call Load while CAP_SYS_ADMIN is
// still held (before capabilities are dropped), which means the profile also
// filters the calls that drop them.
//
// Stacking: every Load adds one more filter to the thread; filters can never
// be removed. The kernel runs all of them and the most restrictive result
// wins.
//
// Why the filter is loaded by hand: libseccomp-golang switches libseccomp's
// TSYNC attribute on for every filter context it creates and offers no way to
// switch it off, so seccomp_load would always synchronise all threads.
// Compile therefore exports the generated BPF program, and Load hands it to
// seccomp(SECCOMP_SET_MODE_FILTER) with exactly the flags the profile asked
// for.
//
// # Profile semantics
//
//   - defaultAction and syscalls[].action accept SCMP_ACT_KILL (the same as
//     SCMP_ACT_KILL_THREAD), SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD,
//     SCMP_ACT_TRAP, SCMP_ACT_ERRNO, SCMP_ACT_TRACE, SCMP_ACT_ALLOW and
//     SCMP_ACT_LOG. SCMP_ACT_NOTIFY is rejected by Compile (not implemented
//     yet), and so is SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, which only
//     makes sense with it. listenerPath is ignored (the spec says it is only
//     used with SCMP_ACT_NOTIFY); listenerMetadata without listenerPath is an
//     error, as the spec requires.
//   - errnoRet / defaultErrnoRet is the errno for SCMP_ACT_ERRNO and the
//     tracer message for SCMP_ACT_TRACE; when absent it is EPERM. It must fit
//     in 16 bits, and setting it for any other action is an error.
//   - architectures are added to the filter; the native architecture is
//     always present. Syscalls made through an architecture that is not in
//     the filter are killed (libseccomp's default bad-arch action). An
//     architecture of the other byte order (SCMP_ARCH_S390X on an x86_64
//     host, say) cannot share a filter with the native one in libseccomp and
//     can never be executed by this kernel: it is accepted and left out. An
//     architecture the linked libseccomp does not know is an error.
//   - A syscall name libseccomp does not know is skipped, like runc does, so
//     one profile can serve several kernels and architectures.
//   - A syscalls[] entry whose action (errno included) equals the default
//     action is skipped: libseccomp refuses such rules and they would change
//     nothing.
//   - args: conditions on different argument indexes are ANDed in one rule.
//     libseccomp refuses two conditions on the same index in one rule, so
//     when an entry has several conditions on one index they are treated as
//     alternatives: the entry is split into one rule per condition on that
//     index, each keeping the conditions on the other indexes (the cartesian
//     product when several indexes repeat). For SCMP_CMP_MASKED_EQ, value is
//     the mask and valueTwo the value compared with (arg & mask).
//   - Unknown actions, architectures, operators and flags are errors that
//     name the field and the value.
package seccomp
