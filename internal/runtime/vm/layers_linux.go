package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/runtime"
)

// maxLayerDisks bounds the read-only disks of a VM's root file system.
// QEMU 7.2's microvm has mmioTransports (24) virtio-mmio transports: one
// is the agent's port, one the container's writable disk, one the share
// of its volumes (virtio-fs), which leaves 5 for network interfaces
// beside these 16. An image of more layers gets its lowest ones merged
// into one image (LayerDisks).
const maxLayerDisks = 16

// LayerDisks returns the EROFS images to attach for the image's layers,
// lowest first: one per layer (LayerImage) while they fit in
// maxLayerDisks, else the lowest len(layers)-maxLayerDisks+1 merged into
// one image (MergedLayerImage) under the other maxLayerDisks-1.
func LayerDisks(ctx context.Context, cache string, layers []runtime.Layer) ([]string, error) {
	var disks []string
	top := layers
	if len(layers) > maxLayerDisks {
		n := len(layers) - maxLayerDisks + 1
		img, err := MergedLayerImage(ctx, cache, layers[:n])
		if err != nil {
			return nil, err
		}
		disks = append(disks, img)
		top = layers[n:]
	}
	for _, l := range top {
		img, err := LayerImage(ctx, cache, l)
		if err != nil {
			return nil, err
		}
		disks = append(disks, img)
	}
	return disks, nil
}

// layerImageName splits a layer's digest into the parts of its image's
// name, refusing anything that could leave the cache directory.
func layerImageName(l runtime.Layer) (alg, hx string, err error) {
	alg, hx, ok := strings.Cut(l.Digest, ":")
	if !ok || alg == "" || hx == "" || strings.ContainsAny(l.Digest, "/.\n") {
		return "", "", fmt.Errorf("layer %q: not a digest: %w", l.Digest, runtime.ErrInvalidArgument)
	}
	return alg, hx, nil
}

// LayerImage returns the EROFS image of one unpacked layer, made once
// with mkfs.erofs from its snapshot directory and kept under cache by the
// layer's digest: every VM using the layer attaches the same file,
// read-only.
func LayerImage(ctx context.Context, cache string, l runtime.Layer) (string, error) {
	alg, hx, err := layerImageName(l)
	if err != nil {
		return "", err
	}
	img := filepath.Join(cache, "erofs", alg+"-"+hx+".img")
	return img, makeImage(img, func(tmp string) error {
		// Uncompressed: the guest reads it in place (lz4 would cost
		// CPU that TCG emulates); owners, modes, times and xattrs
		// (overlay whiteouts and opaque markers) are kept as unpacked.
		return runQuiet(ctx, "mkfs.erofs of layer "+l.Digest, "mkfs.erofs", "--quiet", tmp, l.Dir)
	})
}

// mergedPrefix names the merged images in the cache; each has a
// mergedLayersSuffix file beside it listing its layers' digests, lowest
// first, for PruneLayerImages.
const (
	mergedPrefix       = "merged-"
	mergedLayersSuffix = ".layers"
)

// MergedLayerImage returns one EROFS image of the merged tree of layers
// (lowest first): what an overlay of them shows, whiteouts and opaque
// directories applied, so it needs none of its own (nothing lies below
// it). It is made once per chain of layer digests (the image's name is
// their digest) with mkfs.erofs over a read-only overlay of the layers'
// snapshot directories, mounted in a mount namespace of mkfs's own
// (unshare(1)), so the mount goes with that process however it ends.
// The directories are the engine's own unpacked layers, never a guest's
// writes.
func MergedLayerImage(ctx context.Context, cache string, layers []runtime.Layer) (string, error) {
	if len(layers) < 2 {
		return "", fmt.Errorf("merge %d layers: at least 2: %w", len(layers), runtime.ErrInvalidArgument)
	}
	h := sha256.New()
	var list strings.Builder
	for _, l := range layers {
		if _, _, err := layerImageName(l); err != nil {
			return "", err
		}
		fmt.Fprintln(h, l.Digest)
		fmt.Fprintln(&list, l.Digest)
	}
	img := filepath.Join(cache, "erofs", mergedPrefix+hex.EncodeToString(h.Sum(nil))+".img")
	return img, makeImage(img, func(tmp string) error {
		if err := writeAtomic(strings.TrimSuffix(img, ".img")+mergedLayersSuffix, []byte(list.String()), 0o600); err != nil {
			return err
		}
		work, err := os.MkdirTemp(filepath.Dir(img), "merge-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(work)
		// Short names for the layers (symlinks the kernel follows), so
		// that the overlay's options stay under a page however deep
		// the image: docker's limit of 128 layers fits in 500 bytes.
		lowers := make([]string, len(layers))
		for i, l := range layers {
			name := strconv.Itoa(i)
			if err := os.Symlink(l.Dir, filepath.Join(work, name)); err != nil {
				return err
			}
			lowers[len(layers)-1-i] = name // overlayfs lists the top first
		}
		if err := os.Mkdir(filepath.Join(work, "m"), 0o700); err != nil {
			return err
		}
		mkfs, err := exec.LookPath("mkfs.erofs")
		if err != nil {
			return errNoMkfsErofs
		}
		tmpAbs, err := filepath.Abs(tmp)
		if err != nil {
			return err
		}
		const script = `cd "$1" && mount -t overlay -o "lowerdir=$2" overlay m && exec "$3" --quiet "$4" m`
		return runQuiet(ctx, fmt.Sprintf("merge the lowest %d layers (%s to %s)", len(layers), layers[0].Digest, layers[len(layers)-1].Digest),
			"unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", work, strings.Join(lowers, ":"), mkfs, tmpAbs)
	})
}

var errNoMkfsErofs = errors.New("mkfs.erofs (erofs-utils) is not installed")

// makeImage makes img with build (which writes the temporary file it is
// given) unless it exists, under a lock, renaming the finished file into
// place, so that a reader never sees half an image.
func makeImage(img string, build func(tmp string) error) error {
	if err := os.MkdirAll(filepath.Dir(img), 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(img); err == nil {
		return nil
	}
	unlock, err := lockFile(img + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(img); err == nil {
		return nil
	}
	tmp := fmt.Sprintf("%s.tmp-%d", img, os.Getpid())
	defer os.Remove(tmp)
	if err := build(tmp); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, img)
}

// runQuiet runs a command, returning its output in the error when it
// fails.
func runQuiet(ctx context.Context, what, name string, args ...string) error {
	path, err := exec.LookPath(name)
	if err != nil {
		if name == "mkfs.erofs" {
			return fmt.Errorf("%s: %w", what, errNoMkfsErofs)
		}
		return fmt.Errorf("%s: %s is not installed", what, name)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", what, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// PruneLayerImages removes the EROFS images of layers for which keep
// (given the layer's digest) says no: the layer is gone from the
// snapshot store; and the merged images any of whose layers is gone. A
// VM still running on one keeps its open file.
func (d *Driver) PruneLayerImages(keep func(digest string) bool) (removed int, err error) {
	dir := filepath.Join(d.Cache, "erofs")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return 0, nil
		}
		return 0, err
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".img")
		if !ok {
			continue
		}
		var wanted func() bool
		if strings.HasPrefix(name, mergedPrefix) {
			layers := filepath.Join(dir, name+mergedLayersSuffix)
			wanted = func() bool {
				b, err := os.ReadFile(layers)
				if err != nil {
					return false // unknown layers: made again on use
				}
				for _, dg := range strings.Fields(string(b)) {
					if !keep(dg) {
						return false
					}
				}
				return true
			}
		} else {
			alg, hx, ok := strings.Cut(name, "-")
			if !ok {
				continue
			}
			wanted = func() bool { return keep(alg + ":" + hx) }
		}
		if wanted() {
			continue
		}
		img := filepath.Join(dir, e.Name())
		unlock, err := lockFile(img + ".lock")
		if err != nil {
			return removed, err
		}
		if !wanted() {
			if os.Remove(img) == nil {
				removed++
			}
			if strings.HasPrefix(name, mergedPrefix) {
				os.Remove(filepath.Join(dir, name+mergedLayersSuffix))
			}
			os.Remove(img + ".lock")
		}
		unlock()
	}
	return removed, nil
}
