// Package spec turns an image config and `docker run`-style options into
// the OCI runtime config (config.json) of a container, with docker's
// defaults: its default capability set, pseudo-filesystem mounts, masked
// and read-only /proc and /sys paths, namespaces and RLIMIT_NOFILE.
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
//   - Nothing is written: Generate reads the rootfs and host limits only.
//
// Out of scope, reported as warnings where an image asks for them:
// anonymous volumes from the image's Volumes. Host devices are not added
// to linux.devices for privileged containers.
package spec
