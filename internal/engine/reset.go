//go:build linux

package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/network/netns"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Reset removes every container (running ones are killed), every volume
// and every network, the default one with its bridge and the root's
// firewall chains included. The caller then closes the engine and calls
// RemoveRoots.
func (e *Engine) Reset(ctx context.Context) error {
	var errs []error
	list, err := e.List(ctx)
	if err != nil {
		return err
	}
	for _, c := range list {
		if err := e.Remove(ctx, c.ID, RemoveOptions{Force: true, Volumes: true}); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, e.withVolumes(ctx, func() error {
		vols, _, err := e.Volumes(ctx)
		if err != nil {
			return err
		}
		var errs []error
		for _, v := range vols {
			errs = append(errs, e.deleteVolumeLocked(ctx, v.Name))
		}
		return errors.Join(errs...)
	}))
	m, err := e.networks()
	if err == nil {
		err = m.RemoveAll(ctx)
	}
	return errors.Join(append(errs, err)...)
}

// Images is the engine's image service.
func (e *Engine) Images() *image.Service { return e.images }

// ReleaseNetnsDir unmounts the network namespaces' shared mount point
// when no container is left (system prune), so that nothing is mounted
// under the state directory.
func (e *Engine) ReleaseNetnsDir(ctx context.Context) error {
	rows, err := e.db.List(ctx)
	if err != nil || len(rows) > 0 {
		return err
	}
	_, err = netns.ReleaseDir(e.netnsDir())
	return err
}

// RemoveRoots unmounts whatever is mounted under the given directories
// (the network namespaces' shared mount point, a container root left by
// a crash), deepest first, and deletes them.
func RemoveRoots(dirs ...string) error {
	var errs []error
	for _, dir := range dirs {
		abs, err := filepath.Abs(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, m := range mountsUnder(abs) {
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
				errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
			}
		}
		if err := os.RemoveAll(abs); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points at or below dir, deepest first (a
// path mounted several times is listed once per mount).
func mountsUnder(dir string) []string {
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil
	}
	out := make([]string, len(infos))
	for i, m := range infos {
		out[i] = m.Mountpoint
	}
	slices.SortStableFunc(out, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return out
}
