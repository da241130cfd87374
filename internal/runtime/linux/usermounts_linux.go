package linux

import (
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/userns"
)

// A container in a new user namespace sets its root filesystem up as the
// root of that namespace, which owns nothing of the host's: it may not
// look up a path through a directory only the host's root may enter
// (berth keeps its rootfs, volumes and /etc files in 0700 ones; any user
// may keep a bind's source in one), and a descriptor the parent opened is
// of the host's mount namespace, from which mount(2) refuses to bind.
// So the parent does the looking up: the init starts in the rootfs (the
// constructor's chdir, which a new mount namespace carries into its copy)
// and gets every bind mount as a detached copy (open_tree(2)), which
// move_mount(2) attaches in any namespace. The same copies carry idmapped
// mounts (options idmap and ridmap, or a mount's uidMappings), for any
// container: mount_setattr(2) can idmap only a mount not yet attached.

// isBind says whether m is a bind mount, and a recursive one.
func isBind(m specs.Mount) (bind, recursive bool) {
	o := parseMountOptions(m.Options)
	return m.Type == "bind" || o.flags&unix.MS_BIND != 0, o.flags&unix.MS_REC != 0
}

// wantsIDMap says whether m asks for an idmapped mount, and a recursive
// one.
func wantsIDMap(m specs.Mount) (idmap, recursive bool) {
	r := hasOption(m.Options, "ridmap")
	return r || hasOption(m.Options, "idmap") || len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0, r
}

// prepareMountTrees makes the detached mounts of spec.Mounts the init
// attaches (see above): with a new user namespace every bind mount, else
// only idmapped ones. The caller closes them.
func prepareMountTrees(spec *specs.Spec, newUserNS bool) (_ map[int]*os.File, retErr error) {
	trees := map[int]*os.File{}
	var containerNS *os.File
	defer func() {
		if containerNS != nil {
			containerNS.Close()
		}
		if retErr != nil {
			closeTrees(trees)
		}
	}()
	for i, m := range spec.Mounts {
		bind, recursive := isBind(m)
		idmap, idmapRecursive := wantsIDMap(m)
		if !idmap && !(bind && newUserNS) {
			continue
		}
		where := fmt.Sprintf("mount %s on %s", m.Source, m.Destination)
		if !bind {
			return nil, fmt.Errorf("%s: idmap applies to bind mounts only", where)
		}
		var ns *os.File
		if idmap {
			uids, gids := m.UIDMappings, m.GIDMappings
			switch {
			case len(uids) > 0 && len(gids) > 0:
				mine, err := userns.Open(uids, gids)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", where, err)
				}
				defer mine.Close()
				ns = mine
			case len(uids) > 0 || len(gids) > 0:
				return nil, fmt.Errorf("%s: an idmapped mount needs both uidMappings and gidMappings", where)
			case len(spec.Linux.UIDMappings) == 0 || len(spec.Linux.GIDMappings) == 0:
				return nil, fmt.Errorf("%s: idmap without the mount's own uidMappings needs the container's (linux.uidMappings and gidMappings)", where)
			default:
				if containerNS == nil {
					var err error
					if containerNS, err = userns.Open(spec.Linux.UIDMappings, spec.Linux.GIDMappings); err != nil {
						return nil, fmt.Errorf("%s: %w", where, err)
					}
				}
				ns = containerNS
			}
		}
		tree, err := userns.Clone(unix.AT_FDCWD, m.Source, recursive)
		if err != nil {
			return nil, fmt.Errorf("bind mount %s on %s: %w", m.Source, m.Destination, err)
		}
		trees[i] = tree
		if ns != nil {
			if err := userns.IDMap(tree, ns, idmapRecursive); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
		}
	}
	return trees, nil
}

func closeTrees(trees map[int]*os.File) {
	for _, t := range trees {
		t.Close()
	}
}

// chownStdioForUserns gives the container's root (its host IDs) the pipes
// and sockets among the init's stdio that are ours: a process in the
// container may reopen its stdio (/dev/stdout, /proc/self/fd/1), which
// takes permission on the pipe itself, and nothing of the host's root is
// the container's (fixStdioOwnership then hands them on to the process's
// user, inside). Terminals, devices and files are left alone, and so is
// what belongs to someone else (a shim's FIFOs, made for the container
// already).
func chownStdioForUserns(stdio Stdio, spec *specs.Spec) {
	uid, ok1 := hostIDOf(spec.Linux.UIDMappings, 0)
	gid, ok2 := hostIDOf(spec.Linux.GIDMappings, 0)
	if !ok1 || !ok2 {
		return
	}
	self := uint32(os.Geteuid())
	for _, f := range []*os.File{stdio.Stdin, stdio.Stdout, stdio.Stderr} {
		if f == nil {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(int(f.Fd()), &st) != nil || st.Uid != self {
			continue
		}
		if t := st.Mode & unix.S_IFMT; t != unix.S_IFIFO && t != unix.S_IFSOCK {
			continue
		}
		unix.Fchown(int(f.Fd()), int(uid), int(gid))
	}
}

func hostIDOf(m []specs.LinuxIDMapping, id uint32) (uint32, bool) {
	for _, e := range m {
		if id >= e.ContainerID && id-e.ContainerID < e.Size {
			return e.HostID + id - e.ContainerID, true
		}
	}
	return 0, false
}

// attachTree attaches the detached mount tree (prepareMountTrees) at dest,
// made in the rootfs if missing, as the bind mount m.
func (r *rootfs) attachTree(m specs.Mount, dest string, opts mountOptions, tree *os.File) error {
	defer tree.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(tree.Fd()), &st); err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", m.Source, r.show(dest), err)
	}
	t, err := r.target(dest, st.Mode&unix.S_IFMT != unix.S_IFDIR)
	if err != nil {
		return fmt.Errorf("bind mount %s on %s: create mount point: %w", m.Source, r.show(dest), err)
	}
	defer t.Close()
	if err := unix.MoveMount(int(tree.Fd()), "", int(t.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("bind mount %s on %s: attach: %w", m.Source, r.show(dest), err)
	}
	return r.finishMount(dest, opts, true)
}
