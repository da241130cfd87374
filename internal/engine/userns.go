//go:build linux

package engine

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/runtime"
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

// usernsMode checks --userns and --uidmap/--gidmap: "" or host (the
// host's user namespace), auto[:size=N] (size is the block's), or
// explicit maps (a mapping, not from berth's ranges).
func usernsMode(o CreateOptions, isolation, defaultIsolation string) (size uint32, explicit *IDMap, _ error) {
	size, auto, err := userns.ParseMode(o.UsernsMode)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", err, ErrInvalid)
	}
	what := "--userns " + o.UsernsMode
	switch {
	case len(o.UIDMaps) > 0 || len(o.GIDMaps) > 0:
		if o.UsernsMode != "" {
			return 0, nil, fmt.Errorf("--uidmap/--gidmap and --userns %s conflict: the maps are a user namespace of the container's own: %w", o.UsernsMode, ErrInvalid)
		}
		if explicit, err = parseIDMaps(o.UIDMaps, o.GIDMaps); err != nil {
			return 0, nil, err
		}
		what = "--uidmap"
	case !auto:
		if o.UsernsMode != "" && o.UsernsMode != "host" {
			return 0, nil, fmt.Errorf("--userns %q: use host (the host's user namespace), or auto[:size=N] (one of the container's own, mapped onto a free block of the host IDs of the user %s in /etc/subuid and /etc/subgid): %w", o.UsernsMode, userns.User, ErrInvalid)
		}
		return 0, nil, nil
	}
	switch {
	case o.Privileged:
		return 0, nil, fmt.Errorf("%s: privileged mode is incompatible with user namespaces; you must run the container in the host's user namespace (--userns host) when running privileged mode: %w", what, ErrInvalid)
	case o.NetworkMode == "host":
		return 0, nil, fmt.Errorf("%s: cannot share the host's network namespace when user namespaces are enabled (use --userns host): %w", what, ErrInvalid)
	case o.PidMode == "host":
		return 0, nil, fmt.Errorf("%s: cannot share the host PID namespace when user namespaces are enabled (use --userns host): %w", what, ErrInvalid)
	case strings.HasPrefix(o.PidMode, "container:"), o.IpcMode == "host", strings.HasPrefix(o.IpcMode, "container:"):
		// Their namespace belongs to another user namespace: this
		// container's root could not mount its /proc or /dev/mqueue.
		flag, mode := "--ipc", o.IpcMode
		if o.PidMode != "" {
			flag, mode = "--pid", o.PidMode
		}
		return 0, nil, fmt.Errorf("%s: cannot join another PID or IPC namespace (%s %s) from a user namespace of its own: its root could not mount their /proc or /dev/mqueue (use --userns host): %w", what, flag, mode, ErrInvalid)
	case isolation != defaultIsolation:
		return 0, nil, fmt.Errorf("%s: the %s isolation has no user namespaces (a VM is its own): %w", what, isolation, ErrInvalid)
	}
	return size, explicit, nil
}

// parseIDMaps reads --uidmap/--gidmap values, CONTAINER:HOST:SIZE (as
// podman's); the gids default to the uids'. Within each, neither the
// container's nor the host's side may overlap, and the container's root
// must be mapped (its IDs own the root filesystem and volumes).
func parseIDMaps(uidMaps, gidMaps []string) (*IDMap, error) {
	parse := func(flag string, vals []string) ([]specs.LinuxIDMapping, error) {
		var out []specs.LinuxIDMapping
		for _, v := range vals {
			f := strings.Split(v, ":")
			var n [3]uint64
			var err error
			if len(f) == 3 {
				for i := range f {
					if n[i], err = strconv.ParseUint(f[i], 10, 32); err != nil {
						break
					}
				}
			}
			if len(f) != 3 || err != nil || n[2] == 0 || n[0]+n[2] > 1<<32-1 || n[1]+n[2] > 1<<32-1 {
				return nil, fmt.Errorf("%s %q: use CONTAINER:HOST:SIZE, three numbers, SIZE at least 1, both ranges within 0-4294967294: %w", flag, v, ErrInvalid)
			}
			m := specs.LinuxIDMapping{ContainerID: uint32(n[0]), HostID: uint32(n[1]), Size: uint32(n[2])}
			for _, o := range out {
				if overlaps(m.ContainerID, m.Size, o.ContainerID, o.Size) || overlaps(m.HostID, m.Size, o.HostID, o.Size) {
					return nil, fmt.Errorf("%s %q overlaps %d:%d:%d: %w", flag, v, o.ContainerID, o.HostID, o.Size, ErrInvalid)
				}
			}
			out = append(out, m)
		}
		if _, ok := toHost(out, 0); !ok {
			return nil, fmt.Errorf("%s %s: map the container's root (container ID 0), whose IDs own its root filesystem: %w", flag, strings.Join(vals, " "), ErrInvalid)
		}
		if len(out) > 5 {
			return nil, fmt.Errorf("%s: at most 5 ranges (the kernel's limit without a privileged helper is 340, berth keeps it small): %w", flag, ErrInvalid)
		}
		return out, nil
	}
	uids, err := parse("--uidmap", uidMaps)
	if err != nil {
		return nil, err
	}
	if len(gidMaps) == 0 {
		gidMaps = uidMaps
	}
	gids, err := parse("--gidmap", gidMaps)
	if err != nil {
		return nil, err
	}
	return &IDMap{UIDs: uids, GIDs: gids}, nil
}

func overlaps(a, an, b, bn uint32) bool {
	return uint64(a) < uint64(b)+uint64(bn) && uint64(b) < uint64(a)+uint64(an)
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
	r, err := e.db.ReserveIDRanges(ctx, id, func(held store.HeldIDRanges) (store.IDRanges, error) {
		u, err := userns.Allocate(pool.UIDs, ranges(held.UIDs), size)
		if err != nil {
			return store.IDRanges{}, exhausted(files.UID, pool.UIDs, size, len(held.UIDs))
		}
		g, err := userns.Allocate(pool.GIDs, ranges(held.GIDs), size)
		if err != nil {
			return store.IDRanges{}, exhausted(files.GID, pool.GIDs, size, len(held.GIDs))
		}
		return store.IDRanges{UIDs: []store.IDRange{{Start: u.Start, Size: size}}, GIDs: []store.IDRange{{Start: g.Start, Size: size}}}, nil
	})
	if err != nil {
		return nil, "", err
	}
	if len(r.UIDs) != 1 || len(r.GIDs) != 1 {
		return nil, "", fmt.Errorf("container %s holds host IDs of another kind of mapping: %w", ShortID(id), ErrInvalidState)
	}
	return &IDMap{
		UIDs: []specs.LinuxIDMapping{{ContainerID: 0, HostID: r.UIDs[0].Start, Size: r.UIDs[0].Size}},
		GIDs: []specs.LinuxIDMapping{{ContainerID: 0, HostID: r.GIDs[0].Start, Size: r.GIDs[0].Size}},
	}, pool.Added, nil
}

// helperUser is a host user and group of container id's alone for the
// processes its driver runs on the host (a VM's QEMU drops to it): one ID
// of the berth user's subordinate ranges, reserved in the same table as
// --userns=auto's blocks and freed with the record. nil when berth has no
// subordinate ranges: the host's files are not edited for this (running a
// --userns=auto container once adds them), and the helper stays root.
func (e *Engine) helperUser(ctx context.Context, id string) (*runtime.HostUser, error) {
	pool, err := userns.SystemFiles.Read()
	if err != nil || len(pool.UIDs) == 0 || len(pool.GIDs) == 0 {
		return nil, nil
	}
	r, err := e.db.ReserveIDRanges(ctx, id, func(held store.HeldIDRanges) (store.IDRanges, error) {
		u, err := userns.Allocate(pool.UIDs, ranges(held.UIDs), 1)
		if err != nil {
			return store.IDRanges{}, exhausted(userns.SystemFiles.UID, pool.UIDs, 1, len(held.UIDs))
		}
		g, err := userns.Allocate(pool.GIDs, ranges(held.GIDs), 1)
		if err != nil {
			return store.IDRanges{}, exhausted(userns.SystemFiles.GID, pool.GIDs, 1, len(held.GIDs))
		}
		return store.IDRanges{UIDs: []store.IDRange{{Start: u.Start, Size: 1}}, GIDs: []store.IDRange{{Start: g.Start, Size: 1}}}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("container %s: a host user for its driver's processes: %w", ShortID(id), err)
	}
	if len(r.UIDs) == 0 || len(r.GIDs) == 0 {
		return nil, nil
	}
	return &runtime.HostUser{UID: r.UIDs[0].Start, GID: r.GIDs[0].Start}, nil
}

func ranges(held []store.HeldIDRange) []userns.Range {
	out := make([]userns.Range, len(held))
	for i, h := range held {
		out[i] = userns.Range{Start: h.Start, Size: h.Size}
	}
	return out
}

// reserveIDMap records the host IDs of an explicit mapping, refusing any
// another container holds: no two containers share host IDs, whichever
// way they got them.
func (e *Engine) reserveIDMap(ctx context.Context, id string, m *IDMap) error {
	_, err := e.db.ReserveIDRanges(ctx, id, func(held store.HeldIDRanges) (store.IDRanges, error) {
		var r store.IDRanges
		for _, side := range []struct {
			flag string
			m    []specs.LinuxIDMapping
			held []store.HeldIDRange
			out  *[]store.IDRange
		}{{"--uidmap", m.UIDs, held.UIDs, &r.UIDs}, {"--gidmap", m.GIDs, held.GIDs, &r.GIDs}} {
			for _, x := range side.m {
				for _, h := range side.held {
					if overlaps(x.HostID, x.Size, h.Start, h.Size) {
						return store.IDRanges{}, fmt.Errorf("%s %d:%d:%d: host IDs %d-%d are container %s's: choose others: %w",
							side.flag, x.ContainerID, x.HostID, x.Size, h.Start, uint64(h.Start)+uint64(h.Size)-1, ShortID(h.Container), ErrInvalid)
					}
				}
				*side.out = append(*side.out, store.IDRange{Start: x.HostID, Size: x.Size})
			}
		}
		return r, nil
	})
	return err
}

func exhausted(file string, pool []userns.Range, size uint32, holders int) error {
	var have []string
	for _, r := range pool {
		have = append(have, fmt.Sprintf("%s:%d:%d", userns.User, r.Start, r.Size))
	}
	return fmt.Errorf("--userns auto: no block of %d IDs is free in the %s user's ranges in %s (%s; %d block(s) held): remove containers, ask for a smaller auto:size=N, or add a range to the %s user in %s: %w",
		size, userns.User, file, strings.Join(have, ", "), holders, userns.User, file, ErrInvalid)
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

// ParseIDMaps parses --uidmap and --gidmap values (CONTAINER:HOST:SIZE;
// the gid mapping defaults to the uid one).
func ParseIDMaps(uidMaps, gidMaps []string) (*IDMap, error) { return parseIDMaps(uidMaps, gidMaps) }
