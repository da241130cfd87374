//go:build linux

// Package cgroup manages a container's control groups for the berth
// runtime. It is a thin, opinionated layer over
// github.com/opencontainers/cgroups (runc's cgroup library): it converts the
// runtime spec's linux.resources, decides where the cgroup lives, and gives
// errors that name the cgroup directory and interface file involved.
//
// # Host layouts
//
// DetectMode tells the three layouts apart. On a v2 host the fs2 (or
// systemd unified) driver is used. On v1 and hybrid hosts the v1 fs (or
// systemd legacy) driver is used: on hybrid hosts all controllers are bound
// to v1, and the driver additionally joins the container to a cgroup of the
// same name in the controller-less cgroup2 hierarchy at
// /sys/fs/cgroup/unified (key "" in Paths), so tools that look at the
// unified hierarchy (systemd, PSI readers) see the container in its own
// cgroup there too. That directory is created, joined, persisted and
// removed exactly like the v1 ones.
//
// # Cgroup path rules (runtime-spec config-linux.md "Cgroups path")
//
//   - Empty linux.cgroupsPath: "/berth/<id>" below every mount root
//     (/sys/fs/cgroup/<controller>/berth/<id> on v1,
//     /sys/fs/cgroup/berth/<id> on v2).
//   - Absolute path: taken relative to each cgroup mount root, never
//     relative to the runtime's own cgroup.
//   - Relative path: taken relative to the runtime's own cgroup, as read
//     from /proc/self/cgroup: per controller on v1; on hybrid hosts also for
//     the cgroup2 directory; on v2 relative to the *parent* of the runtime's
//     own cgroup (the library's rule: the runtime's own cgroup has processes
//     in it, so it cannot delegate controllers to children).
//   - Paths containing ".." or NUL, and paths that name a mount root ("/"),
//     are rejected.
//   - With the systemd driver the path is "slice:prefix:name" (default
//     "system.slice:berth:<id>", i.e. unit berth-<id>.scope). New and Load
//     fail with ErrSystemdUnavailable when systemd is not running.
//
// # Invariants
//
//   - Nothing is written to cgroupfs by New or Load; Apply creates and
//     joins, Set writes limits, Destroy removes.
//   - Device rules are applied in this order, later rules winning: the
//     spec's linux.resources.devices up to its last deny-everything rule,
//     an "rwm" allow rule per linux.devices entry, DefaultDeviceRules (null,
//     zero, full, random, urandom, tty, ptmx, pts/*, console), then the rest
//     of the spec's rules. The usual "deny all, allow these" spec thus keeps
//     the defaults, and an explicit later deny of one still holds. With no
//     linux.resources.devices at all the result is "deny everything else".
//   - The first Set of a manager made by New always writes device rules
//     (even for nil resources). Later Sets, and every Set of a loaded
//     manager, only write them when res.Devices is non-empty, so `runtime
//     update` never loosens or tightens device access by accident.
//   - The device controller package is linked in (blank import), so v1
//     devices.allow/deny and the v2 eBPF filter really are programmed;
//     TestDevicesControllerRegistered guards this.
//   - linux.resources.unified is refused on v1 and hybrid hosts
//     (ErrUnifiedNeedsV2) instead of being silently dropped.
//   - Every error returned by a Manager is an *Error naming the cgroup
//     directory and, when known, the interface file; the errno is
//     reachable with errors.Is.
//   - Paths returns a copy; Destroy is idempotent and treats missing
//     directories as success, but never kills processes.
//
// # Version-specific knobs
//
// memory.kernel is ignored (deprecated by the spec; kernels since 5.16
// ignore memory.kmem.limit_in_bytes). memory.kernelTCP and
// memory.useHierarchy are written on v1 only (modern kernels reject
// useHierarchy=false with EINVAL, which is reported). On v2 the following
// v1-only settings are ignored, as runc does: kernelTCP, useHierarchy,
// swappiness, disableOOMKiller, cpu realtime runtime/period, blkio leaf
// weights and network classID/priorities. checkBeforeUpdate is enforced by
// the library on v2; on v1 the kernel itself refuses (EBUSY) a memory limit
// below current usage. A pids limit of 0 is written as 1 (the library's
// choice, matching systemd); a container's init is always in the cgroup, so
// both forbid any fork.
package cgroup
