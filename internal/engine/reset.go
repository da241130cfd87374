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
	"github.com/berth-dev/berth/internal/log"
	"github.com/berth-dev/berth/internal/network/dns"
	"github.com/berth-dev/berth/internal/network/netns"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Reset removes every container and pod of every namespace (running
// containers are killed), every volume
// and every network, the default one with its bridge and the root's
// firewall chains included. It stops at the first container it cannot
// remove (its volumes and networks are still in use). The caller then
// closes the engine and calls RemoveLayout.
func (e *Engine) Reset(ctx context.Context) error {
	list, err := e.listAll(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list {
		if err := e.Remove(ctx, c.ID, RemoveOptions{Force: true, Volumes: true}); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	pods, err := e.podsDB().ListAll(ctx)
	if err != nil {
		return err
	}
	for _, p := range pods {
		err := e.PodRemove(ctx, p.ID, PodRemoveOptions{Force: true})
		if err != nil {
			// Once more, and then without its networks' DELs if they
			// still fail (a plugin gone for good must not keep a reset
			// from ending): what they held is named in a warning.
			err = e.PodRemove(ctx, p.ID, PodRemoveOptions{Force: true, IgnoreNetworkErrors: true})
		}
		if errors.Is(err, ErrNetworkLeft) {
			log.From(ctx).Warn(err.Error())
		} else if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := e.withVolumes(ctx, func() error {
		vols, _, err := e.Volumes(ctx)
		if err != nil {
			return err
		}
		var errs []error
		for _, v := range vols {
			errs = append(errs, e.deleteVolumeLocked(ctx, v.Name))
		}
		return errors.Join(errs...)
	}); err != nil {
		return err
	}
	if err := dns.Stop(ctx, e.dnsDir()); err != nil {
		return err
	}
	// Deferred DELs and warm pod networks (a serve's) before their
	// networks go; one that fails must not keep the reset from ending:
	// it is named. (A running serve's spare is its own, and left.)
	if err := e.SweepDeferredDels(ctx); err != nil {
		log.From(ctx).Warn("deferred network DELs failed; what they held is left", "err", err)
	}
	m, err := e.networks()
	if err != nil {
		return err
	}
	return m.RemoveAll(ctx)
}

// CheckLayoutDirs refuses a root or state directory that system reset
// must not empty: the file system's root.
func CheckLayoutDirs(dirs ...string) error {
	for _, d := range dirs {
		real, err := filepath.EvalSymlinks(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if real == "/" {
			return fmt.Errorf("%s is the root of the file system: berth will not reset it: %w", d, ErrInvalid)
		}
	}
	return nil
}

// RemoveLayout deletes what berth made in root and state (RootDirs,
// StateDirs), after unmounting whatever is mounted there (the namespaces'
// shared mount point, a container root left by a crash), and then root and
// state themselves if that left them empty and they are not mount points.
// Nothing else in them is touched: a root or state named by mistake keeps
// its other files. A directory where an unmount failed is not deleted (it
// could still show another file system).
func RemoveLayout(root, state string) error {
	var errs []error
	for _, top := range []struct {
		dir  string
		subs []string
	}{{root, RootDirs}, {state, StateDirs}} {
		real, err := filepath.EvalSymlinks(top.dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if real == "/" {
			errs = append(errs, fmt.Errorf("%s is the root of the file system: not reset", top.dir))
			continue
		}
		for _, sub := range top.subs {
			p := filepath.Join(real, sub)
			if err := unmountUnder(p); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
			}
		}
		if mounted, _ := mountinfo.Mounted(real); mounted {
			continue
		}
		if os.Remove(real) == nil && real != top.dir {
			os.Remove(top.dir) // the symbolic link to it
		}
	}
	return errors.Join(errs...)
}

// unmountUnder unmounts every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	points := make([]string, len(infos))
	for i, m := range infos {
		points[i] = m.Mountpoint
	}
	slices.SortStableFunc(points, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, m := range points {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			return fmt.Errorf("unmount %s: %w", m, err)
		}
	}
	return nil
}

// Images is the engine's image service.
func (e *Engine) Images() *image.Service { return e.images }

// ReleaseNetnsDir unmounts the namespaces' shared mount points (the
// network namespaces', the pods') when no container and no pod is left
// (system prune), so that nothing is mounted under the state directory.
func (e *Engine) ReleaseNetnsDir(ctx context.Context) error {
	rows, err := e.db.ListAll(ctx)
	if err != nil || len(rows) > 0 {
		return err
	}
	pods, err := e.podsDB().ListAll(ctx)
	if err != nil || len(pods) > 0 {
		return err
	}
	if _, err = netns.ReleaseDir(e.netnsDir()); err != nil {
		return err
	}
	_, err = netns.ReleaseDir(filepath.Join(e.opts.State, "pods"))
	return err
}
