// Package spec turns an image config and `docker run`-style options into
// the OCI runtime config (config.json) of a container, with docker's
// defaults: its default capability set, pseudo-filesystem mounts, masked
// and read-only /proc and /sys paths, namespaces, RLIMIT_NOFILE and
// seccomp profile.
//
// Generate is the single entry point. Its invariants:
//
//   - The process command follows docker's rule: the entrypoint (the
//     image's unless Options.Entrypoint overrides it) followed by
//     Options.Args, or the image's Cmd when no Args are given. Overriding
//     the entrypoint discards the image's Cmd. An empty command is an
//     error, never a guessed shell.
//   - Files of the image (/etc/passwd, /etc/group) are read with every path
//     component resolved inside the rootfs (openat2 RESOLVE_IN_ROOT), so a
//     hostile image's symlinks cannot make berth read a host file. Only
//     regular files are read, and only their first few MiB.
//   - Every rlimit asked for (docker's default and each --ulimit) is clamped
//     to the host's hard limit, which an unprivileged runtime can always
//     set; each clamp is reported as a Warning, never silently dropped.
//   - Every capability name in the result is one internal/runtime/oci
//     knows, and the spec passes oci.Validate.
//   - linux.seccomp is berth's default profile (seccomp_default.go,
//     equivalent in effect to docker's: EPERM for whatever is not
//     allowed, system calls gated on the capabilities that make them
//     meaningful), or the docker-format profile file Options.Seccomp
//     names, with its includes/excludes resolved against the bounding
//     set, GOARCH and the host kernel; none for unconfined or privileged
//     containers. Every action, operator, architecture and flag in it is
//     one internal/runtime/linux/seccomp accepts; syscall names it does
//     not know are skipped there.
//   - Nothing is written: Generate reads the rootfs, host limits and the
//     seccomp profile file only.
//
// Out of scope, reported as warnings where an image asks for them:
// anonymous volumes from the image's Volumes. Host devices are not added
// to linux.devices for privileged containers.
package spec
