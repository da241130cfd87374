package vm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/internal/runtime"
)

// LayerImage returns the EROFS image of one unpacked layer, made once
// with mkfs.erofs from its snapshot directory and kept under cache by the
// layer's digest: every VM using the layer attaches the same file,
// read-only.
func LayerImage(ctx context.Context, cache string, l runtime.Layer) (string, error) {
	alg, hx, ok := strings.Cut(l.Digest, ":")
	if !ok || alg == "" || hx == "" || strings.ContainsAny(l.Digest, "/.") {
		return "", fmt.Errorf("layer %q: not a digest: %w", l.Digest, runtime.ErrInvalidArgument)
	}
	dir := filepath.Join(cache, "erofs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	img := filepath.Join(dir, alg+"-"+hx+".img")
	if _, err := os.Stat(img); err == nil {
		return img, nil
	}
	unlock, err := lockFile(img + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(img); err == nil {
		return img, nil
	}
	mkfs, err := exec.LookPath("mkfs.erofs")
	if err != nil {
		return "", fmt.Errorf("make the block image of layer %s: mkfs.erofs (erofs-utils) is not installed", l.Digest)
	}
	tmp := fmt.Sprintf("%s.tmp-%d", img, os.Getpid())
	defer os.Remove(tmp)
	// Uncompressed: the guest reads it in place (lz4 would cost CPU that
	// TCG emulates); owners, modes, times and xattrs (overlay whiteouts
	// and opaque markers) are kept as unpacked.
	cmd := exec.CommandContext(ctx, mkfs, "--quiet", tmp, l.Dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mkfs.erofs of layer %s: %v: %s", l.Digest, err, strings.TrimSpace(out.String()))
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp, img); err != nil {
		return "", err
	}
	return img, nil
}

// PruneLayerImages removes the EROFS images of layers for which keep
// (given the layer's digest) says no: the layer is gone from the
// snapshot store. A VM still running on one keeps its open file.
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
		alg, hx, ok := strings.Cut(name, "-")
		if !ok || keep(alg+":"+hx) {
			continue
		}
		img := filepath.Join(dir, e.Name())
		unlock, err := lockFile(img + ".lock")
		if err != nil {
			return removed, err
		}
		if !keep(alg + ":" + hx) {
			if os.Remove(img) == nil {
				removed++
			}
			os.Remove(img + ".lock")
		}
		unlock()
	}
	return removed, nil
}
