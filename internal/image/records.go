package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/berth-dev/berth/internal/lockfile"
	"github.com/berth-dev/berth/internal/privdir"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Record is one name of an image: what `berth images` lists a line for.
type Record struct {
	// Name is the canonical reference ("docker.io/library/busybox:latest",
	// or "name@sha256:..." for an image pulled by digest alone).
	Name string `json:"name"`
	// Target is what the name resolved to at the registry or in an archive:
	// a manifest, or an index whose Manifest entry was selected. Its digest
	// is the image's repo digest.
	Target ocispec.Descriptor `json:"target"`
	// Manifest is the platform manifest (equal to Target unless Target is
	// an index).
	Manifest ocispec.Descriptor `json:"manifest"`
	// Config is the image config; its digest is the image ID.
	Config ocispec.Descriptor `json:"config"`
	// Layers are the manifest's layer descriptors, DiffIDs the config's
	// rootfs.diff_ids, in order (bottom first).
	Layers  []ocispec.Descriptor `json:"layers"`
	DiffIDs []string             `json:"diffIDs"`
	// Platform is os/arch[/variant] of the config.
	Platform string `json:"platform"`
	// Created is the config's creation time, Pulled when the record was
	// written.
	Created time.Time `json:"created,omitzero"`
	Pulled  time.Time `json:"pulled"`
}

// ID is the image ID: the config digest, as docker prints it.
func (r Record) ID() string { return r.Config.Digest.String() }

// recordFile is the on-disk form: every record, keyed by name.
type recordFile struct {
	Version int               `json:"version"`
	Images  map[string]Record `json:"images"`
}

// records keeps the image records in one JSON file, replaced atomically
// (temp, fsync, rename) under an exclusive flock of a lock file beside it;
// readers take the lock shared. Every berth process sees either the old or
// the new file, never a torn one.
type records struct {
	path string
	lock string
}

func openRecords(dir string) (*records, error) {
	if err := privdir.Ensure(dir); err != nil {
		return nil, fmt.Errorf("image records: %w", err)
	}
	return &records{path: filepath.Join(dir, "images.json"), lock: filepath.Join(dir, "images.lock")}, nil
}

func (rs *records) read() (recordFile, error) {
	f := recordFile{Version: 1, Images: map[string]Record{}}
	b, err := os.ReadFile(rs.path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("image records: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("image records %s are corrupt (%v): move the file away and pull or load the images again", rs.path, err)
	}
	if f.Images == nil {
		f.Images = map[string]Record{}
	}
	return f, nil
}

// list returns the records sorted by name.
func (rs *records) list(ctx context.Context) ([]Record, error) {
	unlock, err := lockfile.Lock(ctx, rs.lock, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	f, err := rs.read()
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(f.Images))
	for _, r := range f.Images {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// update runs fn on the records under the exclusive lock and writes the
// result if fn returns nil.
func (rs *records) update(ctx context.Context, fn func(map[string]Record) error) error {
	unlock, err := lockfile.Lock(ctx, rs.lock, true)
	if err != nil {
		return err
	}
	defer unlock()
	f, err := rs.read()
	if err != nil {
		return err
	}
	if err := fn(f.Images); err != nil {
		return err
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(rs.path, b, 0o644)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
