//go:build linux

package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/events"
	"github.com/berth-dev/berth/internal/lockfile"
	"github.com/berth-dev/berth/internal/mountopt"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Volume is a named directory that outlives containers: <root>/volumes/
// <name>/_data, bind-mounted where a container asks (-v name:/path) or
// where its image declares a volume (an anonymous volume, removed with
// the container by rm -v and --rm).
type Volume struct {
	Name       string            `json:"Name"`
	Driver     string            `json:"Driver"`
	Mountpoint string            `json:"Mountpoint"`
	CreatedAt  time.Time         `json:"CreatedAt"`
	Labels     map[string]string `json:"Labels"`
	Scope      string            `json:"Scope"`
	// Anonymous: made for one container from its image's Volumes.
	Anonymous bool `json:"Anonymous,omitempty"`
	// Options are the local driver's (-o type=,device=,o=): the volume
	// is then that mount, made at Mountpoint while a container using it
	// runs, as docker's local driver does.
	Options map[string]string `json:"Options,omitempty"`
}

// VolumeOptions are `volume create`'s.
type VolumeOptions struct {
	Name    string
	Driver  string // "" or local
	Labels  map[string]string
	Options map[string]string // type, device, o
}

// checkLocalOptions applies docker's local driver rules: only type,
// device and o, and each with the others it needs.
func checkLocalOptions(opts map[string]string) error {
	for k := range opts {
		switch k {
		case "type", "device", "o":
		case "size":
			return fmt.Errorf("volume option size: quota is not supported by berth's local driver: %w", ErrInvalid)
		default:
			return fmt.Errorf("invalid option: %q (the local driver takes type, device and o): %w", k, ErrInvalid)
		}
	}
	for opt, needs := range map[string][]string{"device": {"type"}, "type": {"device"}, "o": {"device", "type"}} {
		if _, ok := opts[opt]; !ok {
			continue
		}
		for _, n := range needs {
			if _, ok := opts[n]; !ok {
				return fmt.Errorf("missing required option: %q (with %q): %w", n, opt, ErrInvalid)
			}
		}
	}
	if len(opts) > 0 {
		if _, _, err := mountFlags(opts["o"]); err != nil {
			return err
		}
	}
	return nil
}

// mountFlags splits mount(8)-style options into mount(2) flags (the
// runtime's table, mountopt) and the file system's data string. Options
// that would change the mount's kind or propagation are refused.
func mountFlags(o string) (uintptr, string, error) {
	var flags uintptr
	var data []string
	for _, opt := range strings.Split(o, ",") {
		switch opt {
		case "":
			continue
		case "remount", "move", "shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable", "runbindable":
			return 0, "", fmt.Errorf("volume option o=%s: %q is not a mount option a volume can take: %w", o, opt, ErrInvalid)
		}
		if f, ok := mountopt.Flags[opt]; ok {
			if f.Clear {
				flags &^= f.Flag
			} else {
				flags |= f.Flag
			}
			continue
		}
		data = append(data, opt)
	}
	return flags, strings.Join(data, ","), nil
}

// mountVolume mounts a volume with options at its mountpoint unless it
// is mounted. The caller holds the volumes lock.
func mountVolume(v *Volume) error {
	if len(v.Options) == 0 || volumeMounted(v.Mountpoint) {
		return nil
	}
	flags, data, err := mountFlags(v.Options["o"])
	if err != nil {
		return err
	}
	typ := v.Options["type"]
	if typ == "none" {
		typ = ""
	}
	if err := os.MkdirAll(v.Mountpoint, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(v.Options["device"], v.Mountpoint, typ, flags, data); err != nil {
		return fmt.Errorf("volume %s: failed to mount local volume: mount %s:%s, flags: %#x, data: %s: %w", v.Name, v.Options["device"], v.Mountpoint, flags, data, err)
	}
	if flags&unix.MS_BIND != 0 && flags&unix.MS_RDONLY != 0 {
		// A bind mount takes ro only when remounted.
		if err := unix.Mount("", v.Mountpoint, "", flags|unix.MS_REMOUNT, ""); err != nil {
			unix.Unmount(v.Mountpoint, unix.MNT_DETACH)
			return fmt.Errorf("volume %s: make the bind mount read-only: %w", v.Name, err)
		}
	}
	return nil
}

// volumeIsHostBind: a volume that is a bind mount of a host directory
// (-o type=none -o o=bind -o device=DIR) is the host's data, not berth's:
// a container in a user namespace sees it as a bind, unmapped.
func (e *Engine) volumeIsHostBind(ctx context.Context, name string) bool {
	v, err := e.GetVolume(ctx, name)
	if err != nil {
		return false
	}
	for _, o := range strings.Split(v.Options["o"], ",") {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

// volumeHasOptions: a volume that is a mount (-o type=...) is not filled
// with the image's files at create; it is mounted only at start.
func (e *Engine) volumeHasOptions(ctx context.Context, name string) bool {
	v, err := e.GetVolume(ctx, name)
	return err == nil && len(v.Options) > 0
}

// volumeMounted says whether p is a mount point; a bind mount of a
// directory of the same file system counts (mounted() compares devices,
// which would not see it).
func volumeMounted(p string) bool {
	m, err := mountinfo.Mounted(p)
	return err == nil && m
}

// unmountVolume unmounts everything stacked on a volume's mountpoint and
// reports whether it is free of mounts.
func unmountVolume(p string) bool {
	for i := 0; volumeMounted(p); i++ {
		if i == 8 || unix.Unmount(p, unix.MNT_DETACH) != nil {
			return false
		}
	}
	return true
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(dir string) []string {
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return []string{dir} // unknown: assume the worst
	}
	var out []string
	for _, i := range infos {
		out = append(out, i.Mountpoint)
	}
	return out
}

// mountVolumesOf mounts the volumes with options the container uses.
func (e *Engine) mountVolumesOf(ctx context.Context, c *Container) error {
	if !slices.ContainsFunc(c.Mounts, func(m MountPoint) bool { return m.Type == "volume" }) {
		return nil
	}
	return e.withVolumes(ctx, func() error {
		for _, m := range c.Mounts {
			if m.Type != "volume" {
				continue
			}
			v, err := e.GetVolume(ctx, m.Name)
			if err != nil {
				return err
			}
			if err := mountVolume(v); err != nil {
				return err
			}
		}
		e.emitVolumeMounts(c, "mount")
		return nil
	})
}

// emitVolumeMounts records docker's mount or unmount event for each
// volume of c (binds have none), with docker's attributes.
func (e *Engine) emitVolumeMounts(c *Container, action string) {
	for _, m := range c.Mounts {
		if m.Type != "volume" {
			continue
		}
		attrs := map[string]string{"container": c.ID, "driver": "local"}
		if action == "mount" {
			attrs["destination"], attrs["propagation"], attrs["read/write"] = m.Destination, m.Propagation, strconv.FormatBool(m.RW)
		}
		e.events.Append(events.New(events.TypeVolume, action, m.Name, attrs))
	}
}

// unmountVolumesOf unmounts the volumes with options the container used
// that no other running container uses (docker's reference count). With
// event (the end of a run) it writes docker's unmount events.
func (e *Engine) unmountVolumesOf(ctx context.Context, id string, event bool) {
	c, err := e.get(ctx, id)
	if err != nil || !slices.ContainsFunc(c.Mounts, func(m MountPoint) bool { return m.Type == "volume" }) {
		return
	}
	if event {
		defer e.emitVolumeMounts(c, "unmount")
	}
	e.withVolumes(ctx, func() error {
		rows, err := e.db.ListAll(ctx)
		if err != nil {
			return err
		}
		busy := map[string]bool{}
		for _, r := range rows {
			o, err := decode(r)
			if err != nil || o.ID == id || !isRunning(o) && o.State.Status != StatusCreating {
				continue
			}
			for _, m := range o.Mounts {
				busy[m.Name] = true
			}
		}
		for _, m := range c.Mounts {
			if m.Type != "volume" || busy[m.Name] {
				continue
			}
			if v, err := e.GetVolume(ctx, m.Name); err == nil && len(v.Options) > 0 {
				unmountVolume(v.Mountpoint)
			}
		}
		return nil
	})
}

// ErrVolumeInUse: rm of a volume a container uses.
var ErrVolumeInUse = errors.New("volume is in use")

// validVolumeName: docker's rule, [a-zA-Z0-9][a-zA-Z0-9_.-]*.
func validVolumeName(s string) bool {
	if s == "" || len(s) > 128 || strings.ContainsAny(s[:1], "_.-") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func (e *Engine) volumeDir(name string) string { return filepath.Join(e.opts.Root, "volumes", name) }

// CreateVolume makes a volume; an empty name gets a random one. Creating
// an existing name returns it unchanged, as docker does.
func (e *Engine) CreateVolume(ctx context.Context, name string, labels map[string]string) (v *Volume, err error) {
	return e.CreateVolumeWith(ctx, VolumeOptions{Name: name, Labels: labels})
}

// CreateVolumeWith is CreateVolume with a driver and its options.
func (e *Engine) CreateVolumeWith(ctx context.Context, o VolumeOptions) (v *Volume, err error) {
	if o.Driver != "" && o.Driver != "local" {
		return nil, fmt.Errorf("volume driver %q: berth has the local driver only: %w", o.Driver, ErrInvalid)
	}
	if err := checkLocalOptions(o.Options); err != nil {
		return nil, err
	}
	err = e.withVolumes(ctx, func() error {
		v, err = e.createVolumeOpts(ctx, o.Name, o.Labels, false, o.Options)
		return err
	})
	return v, err
}

// createVolume makes a volume or returns the one of that name. The caller
// holds the volumes lock.
func (e *Engine) createVolume(ctx context.Context, name string, labels map[string]string, anonymous bool) (*Volume, error) {
	return e.createVolumeOpts(ctx, name, labels, anonymous, nil)
}

func (e *Engine) createVolumeOpts(ctx context.Context, name string, labels map[string]string, anonymous bool, opts map[string]string) (*Volume, error) {
	if name == "" {
		name = newID()
	}
	if !validVolumeName(name) {
		return nil, fmt.Errorf("invalid volume name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed: %w", name, ErrInvalid)
	}
	v := &Volume{Name: name, Driver: "local", Mountpoint: filepath.Join(e.volumeDir(name), "_data"),
		CreatedAt: time.Now().UTC().Truncate(time.Second), Labels: labels, Scope: "local", Anonymous: anonymous}
	if len(opts) > 0 {
		v.Options = opts
	}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if err := os.MkdirAll(v.Mountpoint, 0o755); err != nil {
		return nil, fmt.Errorf("volume %s: %w", name, err)
	}
	err := e.db.PutVolume(ctx, name, v)
	if errors.Is(err, store.ErrNameInUse) {
		return e.GetVolume(ctx, name)
	}
	if err != nil {
		return nil, err
	}
	e.emitVolume("create", name)
	return v, nil
}

// GetVolume returns a volume by name.
func (e *Engine) GetVolume(ctx context.Context, name string) (*Volume, error) {
	all, err := e.db.Volumes(ctx)
	if err != nil {
		return nil, err
	}
	data, ok := all[name]
	if !ok {
		return nil, store.NotFound("no such volume: %s", name)
	}
	var v Volume
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("volume %s: corrupt record: %w", name, err)
	}
	return &v, nil
}

// Volumes lists volumes by name, with the containers using each.
func (e *Engine) Volumes(ctx context.Context) ([]*Volume, map[string][]string, error) {
	all, err := e.db.Volumes(ctx)
	if err != nil {
		return nil, nil, err
	}
	var out []*Volume
	for _, name := range slices.Sorted(maps.Keys(all)) {
		var v Volume
		if err := json.Unmarshal(all[name], &v); err != nil {
			return nil, nil, fmt.Errorf("volume %s: corrupt record: %w", name, err)
		}
		out = append(out, &v)
	}
	users, err := e.volumeUsers(ctx)
	return out, users, err
}

// volumeUsers maps volume names to the containers that mount them.
func (e *Engine) volumeUsers(ctx context.Context) (map[string][]string, error) {
	rows, err := e.db.ListAll(ctx)
	if err != nil {
		return nil, err
	}
	users := map[string][]string{}
	for _, r := range rows {
		c, err := decode(r)
		if err != nil {
			return nil, err
		}
		for _, m := range c.Mounts {
			if m.Type == "volume" {
				users[m.Name] = append(users[m.Name], c.ID)
			}
		}
	}
	return users, nil
}

// RemoveVolume deletes a volume and its data; one in use is refused.
func (e *Engine) RemoveVolume(ctx context.Context, name string, force bool) error {
	return e.withVolumes(ctx, func() error {
		if _, err := e.GetVolume(ctx, name); err != nil {
			if force && errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}
		users, err := e.volumeUsers(ctx)
		if err != nil {
			return err
		}
		if u := users[name]; len(u) > 0 {
			short := make([]string, len(u))
			for i, id := range u {
				short[i] = ShortID(id)
			}
			return fmt.Errorf("volume %s is in use by container(s) %s: remove them first: %w", name, strings.Join(short, ", "), ErrVolumeInUse)
		}
		return e.deleteVolumeLocked(ctx, name)
	})
}

// withVolumes runs fn under the volumes lock, then deletes the data of
// the volumes fn removed. The lock makes "is it in use?" and "delete it"
// one step against a create that resolves the same volume and records
// its use (see Create). Lock order: a container's lock, then this one,
// then the store; nothing is locked while this one is held.
func (e *Engine) withVolumes(ctx context.Context, fn func() error) error {
	dir := filepath.Join(e.opts.Root, "volumes")
	unlock, err := lockfile.Lock(ctx, filepath.Join(dir, ".lock"), true)
	if err != nil {
		return err
	}
	err = fn()
	unlock()
	// Outside the lock: deleting a large volume's files must not hold up
	// every create that mounts a volume. A killed berth's leftovers go too.
	ents, _ := os.ReadDir(dir)
	for _, ent := range ents {
		if strings.HasPrefix(ent.Name(), removedVolumePrefix) {
			p := filepath.Join(dir, ent.Name())
			for _, m := range mountsUnder(p) {
				unmountVolume(m)
			}
			// Never delete through a mount that is still there.
			if len(mountsUnder(p)) == 0 {
				os.RemoveAll(p)
			}
		}
	}
	return err
}

const removedVolumePrefix = ".removed-"

// deleteVolumeLocked removes a volume's record and moves its directory
// aside for withVolumes to delete. The caller holds the volumes lock.
func (e *Engine) deleteVolumeLocked(ctx context.Context, name string) error {
	// The record goes first: a half-deleted directory of a volume nobody
	// can name any more is only garbage, never a volume with lost files.
	deleted, err := e.db.DeleteVolume(ctx, name)
	if err != nil {
		return err
	}
	if deleted {
		e.emitVolume("destroy", name)
	}
	// A volume that is a mount (a bind of a host directory above all)
	// must be unmounted before its directory is deleted, or the delete
	// would reach through to what it mounts.
	if data := filepath.Join(e.volumeDir(name), "_data"); !unmountVolume(data) {
		return fmt.Errorf("volume %s: %s is still mounted; unmount it and remove the volume again", name, data)
	}
	err = os.Rename(e.volumeDir(name), filepath.Join(e.opts.Root, "volumes", removedVolumePrefix+newID()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// PruneVolumes removes the volumes no container uses (with all false,
// only anonymous ones, as docker does) that pick selects (nil: all),
// returning their names and the bytes their data held (a volume that is
// a mount of something else, -o type=..., holds none of berth's).
func (e *Engine) PruneVolumes(ctx context.Context, all bool, pick func(*Volume) bool) ([]string, int64, error) {
	var removed []string
	var reclaimed int64
	err := e.withVolumes(ctx, func() error {
		vols, users, err := e.Volumes(ctx)
		if err != nil {
			return err
		}
		for _, v := range vols {
			if len(users[v.Name]) > 0 || !all && !v.Anonymous || pick != nil && !pick(v) {
				continue
			}
			var size int64
			if len(v.Options) == 0 {
				size = DirSize(v.Mountpoint)
			}
			if err := e.deleteVolumeLocked(ctx, v.Name); err != nil {
				return err
			}
			removed = append(removed, v.Name)
			reclaimed += size
		}
		return nil
	})
	if err == nil {
		e.emitPrune(events.TypeVolume, reclaimed)
	}
	return removed, reclaimed, err
}

// resolveMounts turns -v entries and the image's declared volumes into
// mount points, creating named and anonymous volumes. Binds are host
// paths; other sources name volumes.
func (e *Engine) resolveMounts(ctx context.Context, c *Container, inherited []MountPoint, binds []string, extras map[string]MountExtra, imageVolumes map[string]struct{}) ([]MountPoint, error) {
	// --volumes-from's mounts come first; a -v on the same path replaces
	// one, as docker's does.
	out := slices.Clone(inherited)
	taken := map[string]bool{}
	for _, m := range inherited {
		taken[m.Destination] = true
	}
	for _, b := range binds {
		parts := strings.Split(b, ":")
		if len(parts) == 1 {
			// -v /path: an anonymous volume there.
			parts = []string{"", parts[0]}
		}
		if len(parts) > 3 {
			return nil, fmt.Errorf("-v %q: use SOURCE:/container/path[:ro|rw]: %w", b, ErrInvalid)
		}
		src, dst := parts[0], parts[1]
		if !filepath.IsAbs(dst) {
			return nil, fmt.Errorf("-v %q: the container path must be absolute: %w", b, ErrInvalid)
		}
		rw, propagation, nocopy := true, "", false
		isBind := filepath.IsAbs(src)
		if len(parts) == 3 {
			mode := ""
			for _, o := range strings.Split(parts[2], ",") {
				switch o {
				case "ro", "rw":
					if mode != "" {
						return nil, fmt.Errorf("-v %q: %s and %s: give one of ro or rw: %w", b, mode, o, ErrInvalid)
					}
					mode, rw = o, o == "rw"
				case "z", "Z":
					if !selinuxEnabled() {
						return nil, fmt.Errorf("-v %q: option %q relabels for SELinux, and this host has no SELinux: drop the :%s: %w", b, o, o, ErrInvalid)
					}
					return nil, fmt.Errorf("-v %q: option %q: berth cannot relabel for SELinux yet: drop the :%s and label the host path yourself: %w", b, o, o, ErrInvalid)
				case "rprivate", "private", "rslave", "slave", "rshared", "shared":
					if !isBind {
						return nil, fmt.Errorf("-v %q: propagation %q is for binds of a host path, not volumes: %w", b, o, ErrInvalid)
					}
					if propagation != "" {
						return nil, fmt.Errorf("-v %q: two propagations, %s and %s: %w", b, propagation, o, ErrInvalid)
					}
					propagation = o
				case "nocopy":
					if isBind {
						return nil, fmt.Errorf("-v %q: nocopy is for volumes, not binds of a host path: %w", b, ErrInvalid)
					}
					nocopy = true
				default:
					return nil, fmt.Errorf("-v %q: unknown option %q (ro, rw, nocopy, or a propagation: [r]private, [r]shared, [r]slave): %w", b, o, ErrInvalid)
				}
			}
		}
		dst = filepath.Clean(dst)
		extra := extras[dst]
		if isBind && (extra.Subpath != "" || extra.VolumeOptions != nil) || !isBind && (extra.NonRecursive || extra.ReadOnlyRecursive) {
			return nil, fmt.Errorf("-v %q: volume-subpath and volume-opt are for volumes, bind-recursive for binds: %w", b, ErrInvalid)
		}
		if extra.ReadOnlyRecursive && rw {
			return nil, fmt.Errorf("-v %q: bind-recursive=readonly needs readonly: %w", b, ErrInvalid)
		}
		if taken[dst] {
			out = slices.DeleteFunc(out, func(m MountPoint) bool { return m.Destination == dst })
		}
		taken[dst] = true
		if isBind {
			// Docker creates a missing host directory for -v (--mount,
			// which refuses a missing source, checks that before).
			if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
				if err := os.MkdirAll(src, 0o755); err != nil {
					return nil, fmt.Errorf("-v %q: create the host directory: %w", b, err)
				}
			} else if err != nil {
				return nil, fmt.Errorf("-v %q: host path: %w", b, err)
			}
			if err := checkHostPropagation(src, propagation); err != nil {
				return nil, fmt.Errorf("-v %q: %w: %w", b, err, ErrInvalid)
			}
			out = append(out, MountPoint{Type: "bind", Source: filepath.Clean(src), Destination: dst, RW: rw, Propagation: propagation,
				NonRecursive: extra.NonRecursive, ReadOnlyRecursive: extra.ReadOnlyRecursive})
			continue
		}
		var labels map[string]string
		anon := src == ""
		if anon {
			labels = map[string]string{"berth.container": c.ID}
		}
		if extra.VolumeOptions != nil {
			if err := checkLocalOptions(extra.VolumeOptions); err != nil {
				return nil, err
			}
			if old, err := e.GetVolume(ctx, src); err == nil && !maps.Equal(old.Options, extra.VolumeOptions) {
				return nil, fmt.Errorf("-v %q: volume %s exists already, with other options: volume-opt is for a new volume (remove it, or drop volume-opt): %w", b, src, ErrInvalid)
			}
		}
		if extra.Subpath != "" {
			// Checked before a volume is made: a new one is empty.
			if !filepath.IsLocal(extra.Subpath) {
				return nil, fmt.Errorf("-v %q: volume-subpath %q must be a relative path inside the volume: %w", b, extra.Subpath, ErrInvalid)
			}
			if _, err := e.GetVolume(ctx, src); src == "" || err != nil {
				return nil, fmt.Errorf("-v %q: volume-subpath needs an existing volume (a new one is empty): %w", b, ErrInvalid)
			}
		}
		v, err := e.createVolumeOpts(ctx, src, labels, anon, extra.VolumeOptions)
		if err != nil {
			return nil, err
		}
		mp := MountPoint{Type: "volume", Name: v.Name, Source: v.Mountpoint, Destination: dst, RW: rw, NoCopy: nocopy}
		if extra.Subpath != "" {
			if len(v.Options) > 0 {
				return nil, fmt.Errorf("-v %q: volume-subpath of a volume with driver options (mounted only at start) is not supported: %w", b, ErrInvalid)
			}
			if mp.Source, err = volumeSubpath(v.Mountpoint, extra.Subpath); err != nil {
				return nil, fmt.Errorf("-v %q: volume-subpath: %w: %w", b, err, ErrInvalid)
			}
			mp.Subpath, mp.NoCopy = extra.Subpath, true
		}
		out = append(out, mp)
	}
	for _, dst := range slices.Sorted(maps.Keys(imageVolumes)) {
		dst = filepath.Clean(dst)
		if taken[dst] || !filepath.IsAbs(dst) {
			continue
		}
		v, err := e.createVolume(ctx, "", map[string]string{"berth.container": c.ID}, true)
		if err != nil {
			return nil, err
		}
		out = append(out, MountPoint{Type: "volume", Name: v.Name, Source: v.Mountpoint, Destination: dst, RW: true})
	}
	return out, nil
}

// volumeSubpath is the path sub names inside a volume's directory: it must
// exist, be relative and stay inside (no .., no symlink out), as docker's.
func volumeSubpath(dir, sub string) (string, error) {
	if filepath.IsAbs(sub) || !filepath.IsLocal(sub) {
		return "", fmt.Errorf("%q must be a relative path inside the volume", sub)
	}
	p := filepath.Join(dir, sub)
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("%q: %w", sub, err)
	}
	if root, err := filepath.EvalSymlinks(dir); err != nil || real != root && !strings.HasPrefix(real, root+"/") {
		return "", fmt.Errorf("%q leads out of the volume", sub)
	}
	return real, nil
}

// selinuxEnabled says whether the host runs SELinux (selinuxfs mounted).
func selinuxEnabled() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
}

// checkHostPropagation refuses, as docker does, a shared bind whose host
// mount is not shared, and a slave bind whose host mount is neither
// shared nor a slave: the container would get a propagation in name
// only, with nothing to receive from the host.
func checkHostPropagation(src, propagation string) error {
	want := ""
	switch propagation {
	case "shared", "rshared":
		want = "shared"
	case "slave", "rslave":
		want = "shared or a slave"
	default:
		return nil
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		return err
	}
	// The longest mount point above the path is its mount.
	var mnt, tags string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 7 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if (real == mp || mp == "/" || strings.HasPrefix(real, mp+"/")) && len(mp) >= len(mnt) {
			mnt, tags = mp, ""
			for _, o := range f[6:] {
				if o == "-" {
					break
				}
				tags += " " + o
			}
		}
	}
	shared, slave := strings.Contains(tags, " shared:"), strings.Contains(tags, " master:")
	if shared || want != "shared" && slave {
		return nil
	}
	return fmt.Errorf("propagation %s: %s is on the mount %s, which is not %s (make it so first: mount --make-shared %s), or drop the option", propagation, src, mnt, want, mnt)
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// copyUp fills an empty volume with what the image has at its mount point,
// as docker does the first time a volume is mounted. The rootfs of a
// container with idmap shows host IDs; the volume keeps container IDs.
func copyUp(rootfs string, m MountPoint, idmap *IDMap) error {
	ents, err := os.ReadDir(m.Source)
	if err != nil || len(ents) > 0 {
		return err
	}
	src := filepath.Join(rootfs, m.Destination)
	// The image's path must be a directory inside the rootfs: resolve no
	// symlinks on the way (a link could point at the host).
	fi, err := os.Lstat(src)
	if err != nil || !fi.IsDir() {
		return nil
	}
	if real, err := filepath.EvalSymlinks(src); err != nil || !strings.HasPrefix(real, filepath.Clean(rootfs)+"/") {
		return nil
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(m.Source, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no owner information", p)
		}
		switch {
		case d.IsDir():
			if rel != "." {
				if err := os.Mkdir(dst, info.Mode().Perm()); err != nil {
					return err
				}
			}
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(dst, data, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil // devices, fifos, sockets: not copied
		}
		uid, gid := st.Uid, st.Gid
		if idmap != nil {
			uid, gid = idmap.ContainerUID(uid), idmap.ContainerGID(gid)
		}
		unix.Lchown(dst, int(uid), int(gid))
		if d.Type()&fs.ModeSymlink == 0 {
			os.Chmod(dst, info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		}
		return nil
	})
}

// removeAnonymousVolumes deletes the anonymous volumes of a container
// being removed (rm -v, --rm).
func (e *Engine) removeAnonymousVolumes(ctx context.Context, c *Container) {
	e.withVolumes(ctx, func() error {
		for _, m := range c.Mounts {
			if m.Type != "volume" {
				continue
			}
			if v, err := e.GetVolume(ctx, m.Name); err == nil && v.Anonymous {
				users, err := e.volumeUsers(ctx)
				if err != nil {
					return err // unknown users: keep the volume
				}
				if others := slices.DeleteFunc(users[m.Name], func(id string) bool { return id == c.ID }); len(others) == 0 {
					e.deleteVolumeLocked(ctx, m.Name)
				}
			}
		}
		return nil
	})
}

// removeVolumesMadeFor deletes the anonymous volumes made for container id
// (its create failed or was killed before the record named them).
func (e *Engine) removeVolumesMadeFor(ctx context.Context, id string) {
	e.withVolumes(ctx, func() error {
		vols, _, err := e.Volumes(ctx)
		if err != nil {
			return err
		}
		for _, v := range vols {
			if v.Anonymous && v.Labels["berth.container"] == id {
				e.deleteVolumeLocked(ctx, v.Name)
			}
		}
		return nil
	})
}
