package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/lockfile"
	"github.com/berth-dev/berth/internal/privdir"
)

// ErrNotFound: no committed layer has that diffID.
var ErrNotFound = errors.New("not found")

// Info describes a committed layer.
type Info struct {
	DiffID   string    `json:"diffID"`
	Size     int64     `json:"size"`    // bytes of regular files
	Entries  int       `json:"entries"` // tar entries applied
	Unpacked time.Time `json:"unpacked"`
}

// Store is a directory of unpacked layers. It is safe for concurrent use by
// goroutines and processes.
type Store struct {
	root string
}

// Open opens the store at root, creating its directories if needed.
func Open(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("snapshot: empty store root")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("snapshot: store root %q: %w", root, err)
	}
	s := &Store{root: abs}
	if err := privdir.Ensure(abs); err != nil {
		return nil, fmt.Errorf("snapshot: open store: %w", err)
	}
	for _, d := range []string{"layers/sha256", "layers/sha512", "tmp", "trash", "locks"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o711); err != nil {
			return nil, fmt.Errorf("snapshot: open store: %w", err)
		}
	}
	markTopDir(filepath.Join(abs, "tmp"))
	return s, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// splitDigest checks a diffID ("sha256:<hex>") well enough to build paths
// from it: a known algorithm and lower-case hex of the right length.
func splitDigest(d string) (alg, hx string, err error) {
	alg, hx, ok := strings.Cut(d, ":")
	want := map[string]int{"sha256": 64, "sha512": 128}[alg]
	if !ok || want == 0 || len(hx) != want {
		return "", "", fmt.Errorf("snapshot: invalid diffID %q (want sha256:<64 hex> or sha512:<128 hex>)", d)
	}
	for i := 0; i < len(hx); i++ {
		if c := hx[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", "", fmt.Errorf("snapshot: invalid diffID %q: not lower-case hex", d)
		}
	}
	return alg, hx, nil
}

func (s *Store) lockPath(alg, hx string) string { return filepath.Join(s.root, "locks", alg+"-"+hx) }

func (s *Store) layerDir(alg, hx string) string { return filepath.Join(s.root, "layers", alg, hx) }

// Dir returns the fs directory of a committed layer (for overlay lowerdirs),
// or an error wrapping ErrNotFound.
func (s *Store) Dir(diffID string) (string, error) {
	alg, hx, err := splitDigest(diffID)
	if err != nil {
		return "", err
	}
	d := filepath.Join(s.layerDir(alg, hx), "fs")
	if _, err := os.Lstat(d); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("snapshot: layer %s: %w", diffID, ErrNotFound)
		}
		return "", fmt.Errorf("snapshot: layer %s: %w", diffID, err)
	}
	return d, nil
}

// Exists reports whether the layer is committed.
func (s *Store) Exists(diffID string) (bool, error) {
	_, err := s.Dir(diffID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Stat returns a committed layer's info.
func (s *Store) Stat(diffID string) (Info, error) {
	alg, hx, err := splitDigest(diffID)
	if err != nil {
		return Info{}, err
	}
	return s.readInfo(alg, hx)
}

func (s *Store) readInfo(alg, hx string) (Info, error) {
	diffID := alg + ":" + hx
	b, err := os.ReadFile(filepath.Join(s.layerDir(alg, hx), "info.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("snapshot: layer %s: %w", diffID, ErrNotFound)
	}
	if err != nil {
		return Info{}, fmt.Errorf("snapshot: layer %s: %w", diffID, err)
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return Info{}, fmt.Errorf("snapshot: layer %s: corrupt info.json: %w", diffID, err)
	}
	return info, nil
}

// Filler writes a layer's files into dir (an empty directory) and returns
// the counts for its Info. It must verify what it wrote (digests) before it
// returns nil: what it leaves becomes the committed layer.
type Filler func(ctx context.Context, dir string) (size int64, entries int, err error)

// Unpack commits the layer diffID, filling it with fill unless it is
// committed already. created says whether this call did the work. When
// another Unpack of the same layer is running (here or in another process)
// it waits for it and then, normally, finds the layer committed.
func (s *Store) Unpack(ctx context.Context, diffID string, fill Filler) (created bool, err error) {
	alg, hx, err := splitDigest(diffID)
	if err != nil {
		return false, err
	}
	unlock, err := lockfile.Lock(ctx, s.lockPath(alg, hx), true)
	if err != nil {
		return false, err
	}
	defer unlock()
	if _, err := os.Lstat(s.layerDir(alg, hx)); err == nil {
		return false, nil
	}
	if err := s.cleanTmp(alg, hx); err != nil {
		return false, err
	}
	tmp := filepath.Join(s.root, "tmp", alg+"-"+hx+"-"+randomSuffix())
	if err := os.MkdirAll(filepath.Join(tmp, "fs"), 0o755); err != nil {
		return false, fmt.Errorf("snapshot: layer %s: %w", diffID, err)
	}
	size, entries, err := fill(ctx, filepath.Join(tmp, "fs"))
	if err != nil {
		os.RemoveAll(tmp)
		return false, err
	}
	info, _ := json.Marshal(Info{DiffID: diffID, Size: size, Entries: entries, Unpacked: time.Now().UTC()})
	if err := writeSynced(filepath.Join(tmp, "info.json"), info); err != nil {
		os.RemoveAll(tmp)
		return false, fmt.Errorf("snapshot: layer %s: %w", diffID, err)
	}
	if err := os.Rename(tmp, s.layerDir(alg, hx)); err != nil {
		os.RemoveAll(tmp)
		return false, fmt.Errorf("snapshot: commit layer %s: %w", diffID, err)
	}
	if err := syncDir(filepath.Join(s.root, "layers", alg)); err != nil {
		return true, fmt.Errorf("snapshot: layer %s committed, but fsync of its parent failed: %w", diffID, err)
	}
	return true, nil
}

// Remove deletes a committed layer: first out of sight (a rename into
// trash/), then from the disk. Removing a missing layer wraps ErrNotFound.
// Whether anything still uses the layer is the caller's question.
func (s *Store) Remove(ctx context.Context, diffID string) error {
	alg, hx, err := splitDigest(diffID)
	if err != nil {
		return err
	}
	unlock, err := lockfile.Lock(ctx, s.lockPath(alg, hx), true)
	if err != nil {
		return err
	}
	defer unlock()
	trash := filepath.Join(s.root, "trash", randomSuffix())
	if err := os.Rename(s.layerDir(alg, hx), trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("snapshot: layer %s: %w", diffID, ErrNotFound)
		}
		return fmt.Errorf("snapshot: remove layer %s: %w", diffID, err)
	}
	if err := syncDir(filepath.Join(s.root, "layers", alg)); err != nil {
		return fmt.Errorf("snapshot: remove layer %s: %w", diffID, err)
	}
	if err := removeAll(trash); err != nil {
		return fmt.Errorf("snapshot: layer %s removed from view; deleting its files: %w", diffID, err)
	}
	return nil
}

// List returns every committed layer.
func (s *Store) List() ([]Info, error) {
	var out []Info
	for _, alg := range []string{"sha256", "sha512"} {
		ents, err := os.ReadDir(filepath.Join(s.root, "layers", alg))
		if err != nil {
			return nil, fmt.Errorf("snapshot: list: %w", err)
		}
		for _, e := range ents {
			info, err := s.readInfo(alg, e.Name())
			if err != nil {
				return nil, err
			}
			out = append(out, info)
		}
	}
	return out, nil
}

// Clean removes what killed unpacks and removals left: tmp/ entries whose
// layer lock is free, and everything in trash/.
func (s *Store) Clean() error {
	var errs []error
	ents, err := os.ReadDir(filepath.Join(s.root, "tmp"))
	if err != nil {
		return fmt.Errorf("snapshot: clean: %w", err)
	}
	for _, e := range ents {
		parts := strings.SplitN(e.Name(), "-", 3)
		if len(parts) != 3 {
			errs = append(errs, removeAll(filepath.Join(s.root, "tmp", e.Name())))
			continue
		}
		unlock, err := lockfile.TryLock(s.lockPath(parts[0], parts[1]), true)
		if err != nil {
			continue // an unpack is running
		}
		errs = append(errs, s.cleanTmp(parts[0], parts[1]))
		unlock()
	}
	trash, err := os.ReadDir(filepath.Join(s.root, "trash"))
	if err != nil {
		return fmt.Errorf("snapshot: clean: %w", err)
	}
	for _, e := range trash {
		errs = append(errs, removeAll(filepath.Join(s.root, "trash", e.Name())))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("snapshot: clean: %w", err)
	}
	return nil
}

// cleanTmp removes the leftovers of earlier unpacks of one layer. The
// caller holds the layer's lock.
func (s *Store) cleanTmp(alg, hx string) error {
	matches, err := filepath.Glob(filepath.Join(s.root, "tmp", alg+"-"+hx+"-*"))
	if err != nil {
		return err
	}
	for _, m := range matches {
		if err := removeAll(m); err != nil {
			return fmt.Errorf("snapshot: remove leftover %s: %w", m, err)
		}
	}
	return nil
}

func randomSuffix() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// removeAll removes a tree, first making directories writable (a layer may
// hold read-only directories, which os.RemoveAll cannot empty as root only
// thanks to CAP_DAC_OVERRIDE, absent in some deployments).
func removeAll(p string) error {
	err := os.RemoveAll(p)
	if err == nil {
		return nil
	}
	filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(path, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
