//go:build linux

package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Image mounts: an image's root filesystem mounted read-only into a
// container (the CRI's image volumes; podman's --mount type=image). The
// image's layers are mounted once per container at
// <state>/containers/<id>/images/<n> (a bind of a one-layer image, an
// overlay without an upper directory otherwise: read-only either way)
// when the container's root is, and unmounted with it; the container
// binds that directory, or a path inside it (Subpath, resolved within
// the image: a symbolic link there cannot lead out).

// ImageMount asks for an image at Destination (Subpath: a path in it).
type ImageMount struct {
	Image, Destination, Subpath string
}

func (e *Engine) imageMountDir(id string, n int) string {
	return filepath.Join(e.stateDir(id), "images", strconv.Itoa(n))
}

// resolveImageMounts turns the requests into the container's mount
// points (Type "image"), mounting each to check its subpath.
func (e *Engine) resolveImageMounts(ctx context.Context, c *Container, ims []ImageMount) ([]MountPoint, error) {
	var out []MountPoint
	for i, im := range ims {
		if !path.IsAbs(im.Destination) {
			return nil, fmt.Errorf("image mount of %s: the container path %q must be absolute: %w", im.Image, im.Destination, ErrInvalid)
		}
		recs, err := e.images.Get(ctx, im.Image)
		if err != nil {
			return nil, fmt.Errorf("image mount at %s: %w (pull it first)", im.Destination, err)
		}
		rec := recs[0]
		mp := MountPoint{Type: "image", Name: rec.ID(), Destination: path.Clean(im.Destination), Subpath: im.Subpath,
			Layers: rec.DiffIDs, Source: e.imageMountDir(c.ID, i)}
		if err := e.mountImage(mp); err != nil {
			return nil, err
		}
		if im.Subpath != "" {
			p, err := securejoin.SecureJoin(mp.Source, im.Subpath)
			if err == nil {
				_, err = os.Stat(p)
			}
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("image mount of %s at %s: the subpath %q does not exist in the image: %w", im.Image, im.Destination, im.Subpath, ErrInvalid)
			}
			if err != nil {
				return nil, fmt.Errorf("image mount of %s: subpath %q: %w", im.Image, im.Subpath, err)
			}
			mp.Source = p
		}
		out = append(out, mp)
	}
	return out, nil
}

func (e *Engine) mountImage(mp MountPoint) error {
	dir := mp.Source
	// A bind of a layer is on the layers' file system: st_dev cannot
	// tell it, the mount table can.
	if ok, _ := mountinfo.Mounted(dir); ok {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return e.snapshots.MountReadOnly(mp.Layers, dir)
}

// mountImagesOf mounts the container's image mounts (before each start).
func (e *Engine) mountImagesOf(c *Container) error {
	n := 0
	for _, m := range c.Mounts {
		if m.Type != "image" {
			continue
		}
		mp := m
		mp.Source = e.imageMountDir(c.ID, n)
		n++
		if err := e.mountImage(mp); err != nil {
			return err
		}
	}
	return nil
}

// unmountImagesOf unmounts them (at the container's exit and removal).
func (e *Engine) unmountImagesOf(id string) {
	ents, _ := os.ReadDir(filepath.Join(e.stateDir(id), "images"))
	for _, ent := range ents {
		p := filepath.Join(e.stateDir(id), "images", ent.Name())
		for unix.Unmount(p, unix.MNT_DETACH) == nil {
		}
	}
}
