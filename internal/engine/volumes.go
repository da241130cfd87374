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
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/lockfile"
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
	err = e.withVolumes(ctx, func() error {
		v, err = e.createVolume(ctx, name, labels, false)
		return err
	})
	return v, err
}

// createVolume makes a volume or returns the one of that name. The caller
// holds the volumes lock.
func (e *Engine) createVolume(ctx context.Context, name string, labels map[string]string, anonymous bool) (*Volume, error) {
	if name == "" {
		name = newID()
	}
	if !validVolumeName(name) {
		return nil, fmt.Errorf("invalid volume name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed: %w", name, ErrInvalid)
	}
	v := &Volume{Name: name, Driver: "local", Mountpoint: filepath.Join(e.volumeDir(name), "_data"),
		CreatedAt: time.Now().UTC().Truncate(time.Second), Labels: labels, Scope: "local", Anonymous: anonymous}
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
	rows, err := e.db.List(ctx)
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
			return fmt.Errorf("volume %s is used by container(s) %s: remove them first: %w", name, strings.Join(short, ", "), ErrVolumeInUse)
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
			os.RemoveAll(filepath.Join(dir, ent.Name()))
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
	err = os.Rename(e.volumeDir(name), filepath.Join(e.opts.Root, "volumes", removedVolumePrefix+newID()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// PruneVolumes removes the volumes no container uses (with all false,
// only anonymous ones, as docker does).
func (e *Engine) PruneVolumes(ctx context.Context, all bool) ([]string, error) {
	var removed []string
	err := e.withVolumes(ctx, func() error {
		vols, users, err := e.Volumes(ctx)
		if err != nil {
			return err
		}
		for _, v := range vols {
			if len(users[v.Name]) > 0 || !all && !v.Anonymous {
				continue
			}
			if err := e.deleteVolumeLocked(ctx, v.Name); err != nil {
				return err
			}
			removed = append(removed, v.Name)
		}
		return nil
	})
	return removed, err
}

// resolveMounts turns -v entries and the image's declared volumes into
// mount points, creating named and anonymous volumes. Binds are host
// paths; other sources name volumes.
func (e *Engine) resolveMounts(ctx context.Context, c *Container, inherited []MountPoint, binds []string, imageVolumes map[string]struct{}) ([]MountPoint, error) {
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
		rw := true
		if len(parts) == 3 {
			for _, o := range strings.Split(parts[2], ",") {
				switch o {
				case "ro":
					rw = false
				case "rw", "z", "Z", "rprivate", "private", "rslave", "slave", "rshared", "shared", "nocopy":
				default:
					return nil, fmt.Errorf("-v %q: unknown option %q (ro or rw): %w", b, o, ErrInvalid)
				}
			}
		}
		dst = filepath.Clean(dst)
		if taken[dst] {
			out = slices.DeleteFunc(out, func(m MountPoint) bool { return m.Destination == dst })
		}
		taken[dst] = true
		if filepath.IsAbs(src) {
			if _, err := os.Stat(src); err != nil {
				return nil, fmt.Errorf("-v %q: host path: %w", b, err)
			}
			out = append(out, MountPoint{Type: "bind", Source: filepath.Clean(src), Destination: dst, RW: rw})
			continue
		}
		var labels map[string]string
		anon := src == ""
		if anon {
			labels = map[string]string{"berth.container": c.ID}
		}
		v, err := e.createVolume(ctx, src, labels, anon)
		if err != nil {
			return nil, err
		}
		out = append(out, MountPoint{Type: "volume", Name: v.Name, Source: v.Mountpoint, Destination: dst, RW: rw})
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

// copyUp fills an empty volume with what the image has at its mount point,
// as docker does the first time a volume is mounted.
func copyUp(rootfs string, m MountPoint) error {
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
		unix.Lchown(dst, int(st.Uid), int(st.Gid))
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
