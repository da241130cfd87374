//go:build linux

package engine

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/berth-dev/berth/internal/runtime"
)

// stoppedVMFiles reaches the files of a VM container that does not run,
// for cp and export: its changes are on its VM's writable disk (a file
// system its guest wrote, which berth never mounts in the host's kernel:
// a hostile container could have crafted it to attack the host's ext4
// code), and the host's overlay of its layers would show the image's
// files as if they were the container's. So its VM is booted with its
// disks and volumes but without its network, terminal or input, its
// process never started (runtime.CreateOptions.FilesOnly), the file
// helper runs in the guest as for a running one, and the VM is deleted.
// The container's lock is held throughout: a start waits for it. It
// returns nil, nil for a container whose files are on the host (or whose
// VM runs: guestFilesOf's).
func (e *Engine) stoppedVMFiles(ctx context.Context, ref string) (gf runtime.GuestFiles, done func(), err error) {
	c, err := e.Get(ctx, ref)
	if err != nil || !e.inVM(c) {
		return nil, nil, nil
	}
	unlock, err := e.lock(ctx, c.ID)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	if c, err = e.get(ctx, c.ID); err != nil {
		return nil, nil, err
	}
	switch c.State.Status {
	case StatusCreated, StatusExited:
	default:
		// It started (or is going) meanwhile: the caller's other way.
		return nil, nil, fmt.Errorf("container %s is %s: %w", c.Name, c.State.Status, ErrInvalidState)
	}
	drv, err := e.driver.named(c.HostConfig.Isolation)
	if err != nil {
		return nil, nil, err
	}
	layers, err := e.layers(c)
	if err != nil {
		return nil, nil, err
	}
	helper, err := e.helperUser(ctx, c.ID)
	if err != nil {
		return nil, nil, err
	}
	if err := e.mountVolumesOf(ctx, c); err != nil {
		return nil, nil, err
	}
	if err := e.mountImagesOf(c); err != nil {
		e.unmountVolumesOf(context.WithoutCancel(ctx), c.ID, false)
		return nil, nil, err
	}
	id := c.ID
	var rc runtime.Container
	cleanup := func() {
		ctx := context.WithoutCancel(ctx)
		// A clean power-off first: the guest syncs what cp wrote
		// to its disk.
		if cl, ok := rc.(io.Closer); ok {
			cl.Close()
		}
		drv.Delete(ctx, id)
		e.unmountImagesOf(id)
		e.unmountVolumesOf(ctx, id, false)
	}
	rc, err = drv.Create(ctx, id, runtime.CreateOptions{
		Bundle:     e.containerDir(id),
		Layers:     layers,
		HelperUser: helper,
		FilesOnly:  true,
	})
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("container %s: boot its VM to reach its files: %w", c.Name, err)
	}
	gf, ok := rc.(runtime.GuestFiles)
	if !ok {
		cleanup()
		return nil, nil, fmt.Errorf("container %s runs in a VM (isolation %s) whose files its driver cannot reach: %w", c.Name, c.HostConfig.Isolation, runtime.ErrNotSupported)
	}
	return gf, func() { cleanup(); unlock() }, nil
}

// withGuestFiles runs fn on the files of container c where they are in a
// guest: its running VM's (guestFilesOf), or else one booted for them
// (withStoppedVM, which paths are for); handled is false for a container
// whose files are on this host.
func (e *Engine) withGuestFiles(ctx context.Context, c *Container, paths []string, fn func(runtime.GuestFiles) error) (handled bool, err error) {
	if gf := e.guestFilesOf(ctx, c); gf != nil {
		return true, fn(gf)
	}
	return e.withStoppedVM(ctx, c.ID, paths, fn)
}

// withStoppedVM runs fn on the files of a VM container that does not run
// (stoppedVMFiles); handled is false for a container whose files are on
// the host. paths are the container paths fn reaches (cp's): one in a
// volume or bind mount is refused, since the VM booted for its files
// does not mount them (its process is what sets its mounts up inside);
// export, which leaves mounts out, passes none.
func (e *Engine) withStoppedVM(ctx context.Context, ref string, paths []string, fn func(runtime.GuestFiles) error) (handled bool, err error) {
	if c, err := e.Get(ctx, ref); err == nil && e.inVM(c) {
		for _, p := range paths {
			if dst, ok := inMount(c, p); ok {
				return true, fmt.Errorf("container %s runs in a VM (isolation %s) and is not running: %s is in its mount %s, which only its running VM has; start it, or copy to the mount's source: %w",
					c.Name, c.HostConfig.Isolation, p, dst, runtime.ErrNotSupported)
			}
		}
	}
	gf, done, err := e.stoppedVMFiles(ctx, ref)
	if err != nil {
		return true, err
	}
	if gf == nil {
		return false, nil
	}
	defer done()
	return true, fn(gf)
}

// inVM reports whether c runs under a driver other than the default (a
// VM), whose files are not on the host.
func (e *Engine) inVM(c *Container) bool {
	d, err := e.driver.named(c.HostConfig.Isolation)
	return err == nil && d != e.driver.def
}

// inMount returns the destination of c's volume or bind mount that the
// container path p is at or under.
func inMount(c *Container, p string) (string, bool) {
	p = path.Clean("/" + p)
	for _, m := range c.Mounts {
		if m.Type != "volume" && m.Type != "bind" {
			continue
		}
		d := path.Clean("/" + m.Destination)
		if p == d || d == "/" || strings.HasPrefix(p, d+"/") {
			return d, true
		}
	}
	return "", false
}
