// Package linux is berth's OCI runtime driver for Linux: namespaces,
// mounts, pivot_root, cgroups, seccomp and capabilities.
//
// Processes. `create` (the parent) starts the container init by re-executing
// the berth binary with _BERTH_NSEXEC set. The C constructor in package
// nsexec enters and creates namespaces before the Go runtime starts, then the
// Go init (init_linux.go) sets up the root filesystem and the process and
// blocks on the exec fifo until `start` opens it. The parent and the init
// talk over one socketpair (the sync socket): the constructor's text lines
// first, then JSON messages (see message in protocol_linux.go).
//
// State. Each container has a directory <root>/<id> holding state.json
// (written atomically by rename) and, while the container is created but not
// started, exec.fifo. The directory is flock'ed exclusively by every command
// that changes the container; readers never lock, because state.json is only
// ever replaced whole. A directory without state.json is a create in
// progress, or the leftover of one that died: it is cleaned when its lock
// can be taken.
//
// Invariants. The init process runs with its OS thread locked from Go's
// init() until execve, because capabilities, seccomp and no_new_privs are
// per-thread. Every fd the runtime opens is O_CLOEXEC, and the init marks
// every inherited fd above the preserved ones close-on-exec before execve,
// so no host fd reaches the container (CVE-2024-21626). Paths inside the
// rootfs are resolved with openat2-style in-root resolution and mounted
// through /proc/self/fd, so symlinks planted in an image cannot redirect a
// mount out of the rootfs (CVE-2021-30465 class).
package linux
