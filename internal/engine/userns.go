//go:build linux

package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/userns"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// User namespaces (--userns=auto[:size=N]).
//
// The container's root is a host user no one else is: each container gets
// a block of host IDs of its own from the subordinate ranges of the user
// "berth" (/etc/subuid, /etc/subgid; berth adds them once when missing),
// recorded in its record and in the store's allocation table, freed with
// the record. Its files are seen through that mapping (idmapped layers,
// idmapped volumes), so nothing on disk is chowned or copied and the
// container's writes are stored with container IDs, as without a user
// namespace. Binds of host paths are not idmapped: the host's files are
// no one's inside (nobody:nogroup), and only their "other" permissions
// apply. The network namespace stays the engine's (made by the host's
// root), so the container's root has no privilege over it: it cannot
// change addresses, routes or firewall rules, and the engine sets the
// sysctls that let it bind low ports and ping (and any --sysctl net.*)
// from outside.

// usernsMode checks --userns: "" or host (the host's user namespace), or
// auto[:size=N]; it returns the size of the block for auto (0 otherwise).
func usernsMode(o CreateOptions, isolation, defaultIsolation string) (uint32, error) {
	size, auto, err := userns.ParseMode(o.UsernsMode)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", err, ErrInvalid)
	}
	if !auto {
		if o.UsernsMode != "" && o.UsernsMode != "host" {
			return 0, fmt.Errorf("--userns %q: use host (the host's user namespace), or auto[:size=N] (one of the container's own, mapped onto a free block of the host IDs of the user %s in /etc/subuid and /etc/subgid): %w", o.UsernsMode, userns.User, ErrInvalid)
		}
		return 0, nil
	}
	switch {
	case o.Privileged:
		return 0, fmt.Errorf("--userns %s: privileged mode is incompatible with user namespaces; you must run the container in the host's user namespace (--userns host) when running privileged mode: %w", o.UsernsMode, ErrInvalid)
	case o.NetworkMode == "host":
		return 0, fmt.Errorf("--userns %s: cannot share the host's network namespace when user namespaces are enabled (use --userns host): %w", o.UsernsMode, ErrInvalid)
	case o.PidMode == "host":
		return 0, fmt.Errorf("--userns %s: cannot share the host PID namespace when user namespaces are enabled (use --userns host): %w", o.UsernsMode, ErrInvalid)
	case strings.HasPrefix(o.PidMode, "container:"), o.IpcMode == "host", strings.HasPrefix(o.IpcMode, "container:"):
		// Their namespace belongs to another user namespace: this
		// container's root could not mount its /proc or /dev/mqueue.
		flag, mode := "--ipc", o.IpcMode
		if o.PidMode != "" {
			flag, mode = "--pid", o.PidMode
		}
		return 0, fmt.Errorf("--userns %s: cannot join another PID or IPC namespace (%s %s) from a user namespace of its own: its root could not mount their /proc or /dev/mqueue (use --userns host): %w", o.UsernsMode, flag, mode, ErrInvalid)
	case isolation != defaultIsolation:
		return 0, fmt.Errorf("--userns %s: the %s isolation has no user namespaces (a VM is its own): %w", o.UsernsMode, isolation, ErrInvalid)
	}
	return size, nil
}

// allocateIDMap gives container id a block of size host IDs, adding the
// berth user's subordinate ranges to the system's files first if they
// have none (added is then the line written).
func (e *Engine) allocateIDMap(ctx context.Context, id string, size uint32) (_ *IDMap, added string, _ error) {
	files := userns.SystemFiles
	pool, err := files.Ensure(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("--userns auto: %w (or add a line such as %s:%d:%d to both by hand)", err, userns.User, 2147483648, 2147483648-65536)
	}
	r, err := e.db.AllocateIDRange(ctx, id, func(taken []store.IDRange) (store.IDRange, error) {
		var tu, tg []userns.Range
		for _, t := range taken {
			tu = append(tu, userns.Range{Start: t.UIDStart, Size: t.Size})
			tg = append(tg, userns.Range{Start: t.GIDStart, Size: t.Size})
		}
		u, err := userns.Allocate(pool.UIDs, tu, size)
		if err != nil {
			return store.IDRange{}, exhausted(files.UID, pool.UIDs, size, len(taken))
		}
		g, err := userns.Allocate(pool.GIDs, tg, size)
		if err != nil {
			return store.IDRange{}, exhausted(files.GID, pool.GIDs, size, len(taken))
		}
		return store.IDRange{UIDStart: u.Start, GIDStart: g.Start, Size: size}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return &IDMap{UIDStart: r.UIDStart, GIDStart: r.GIDStart, Size: r.Size}, pool.Added, nil
}

func exhausted(file string, pool []userns.Range, size uint32, holders int) error {
	var have []string
	for _, r := range pool {
		have = append(have, fmt.Sprintf("%s:%d:%d", userns.User, r.Start, r.Size))
	}
	return fmt.Errorf("--userns auto: no block of %d IDs is free in the %s user's ranges in %s (%s; %d container(s) hold blocks): remove containers, ask for a smaller auto:size=N, or add a range to the %s user in %s: %w",
		size, userns.User, file, strings.Join(have, ", "), holders, userns.User, file, ErrInvalid)
}

// mappings are the runtime-spec forms of the block: container IDs 0..Size-1.
func (m *IDMap) mappings() (uids, gids []specs.LinuxIDMapping) {
	return []specs.LinuxIDMapping{{ContainerID: 0, HostID: m.UIDStart, Size: m.Size}},
		[]specs.LinuxIDMapping{{ContainerID: 0, HostID: m.GIDStart, Size: m.Size}}
}

// addedSubIDsWarning is what create says when it added berth's ranges.
func addedSubIDsWarning(line string) string {
	return fmt.Sprintf("added %q to %s and %s: the host IDs berth maps --userns=auto containers onto (done once; edit both lines to choose others while no such container exists)",
		line, userns.SystemFiles.UID, userns.SystemFiles.GID)
}

// netSysctlsOutside are the sysctls of a userns container's network
// namespace that the engine writes from outside (the container's root has
// no privilege over a namespace the host's root made): docker's defaults
// that let a process bind ports below 1024 and send pings without
// CAP_NET_BIND_SERVICE and CAP_NET_RAW there, then the container's own
// net.* ones.
func netSysctlsOutside(c *Container) map[string]string {
	out := map[string]string{
		"net.ipv4.ip_unprivileged_port_start": "0",
		"net.ipv4.ping_group_range":           "0 2147483647",
	}
	for k, v := range c.HostConfig.Sysctls {
		if strings.HasPrefix(k, "net.") {
			out[k] = v
		}
	}
	return out
}
