package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Active layers: the writable top of a container's root filesystem.
//
//	<root>/active/<key>/upper/   what the container wrote (overlayfs upperdir)
//	<root>/active/<key>/work/    overlayfs's workdir
//
// A key names one container (the engine's container ID). Prepare makes
// the directories; MountOverlay stacks them over committed layers; Release
// removes them (through trash/, so a half-removed layer is never mistaken
// for a live one). Whether a committed layer is still used by an active one
// is the caller's (the engine's) question, as for images.

// validKey refuses keys that could name anything but one directory.
func validKey(key string) error {
	if key == "" || len(key) > 128 || strings.ContainsAny(key, "/\\\x00") || key == "." || key == ".." {
		return fmt.Errorf("snapshot: invalid active layer key %q (want 1-128 characters, no slashes)", key)
	}
	return nil
}

// ActiveDir is the directory of an active layer.
func (s *Store) ActiveDir(key string) (string, error) {
	if err := validKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, "active", key), nil
}

// Prepare makes the active layer key (empty upper and work directories).
// It fails if key exists.
func (s *Store) Prepare(key string) (string, error) {
	dir, err := s.ActiveDir(key)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(s.root, "active"), 0o711); err != nil {
		return "", fmt.Errorf("snapshot: prepare %s: %w", key, err)
	}
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("snapshot: active layer %q exists already: %w", key, fs.ErrExist)
		}
		return "", fmt.Errorf("snapshot: prepare %s: %w", key, err)
	}
	for _, d := range []string{"upper", "work"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("snapshot: prepare %s: %w", key, err)
		}
	}
	return dir, nil
}

// Release removes the active layer key (it must not be mounted). A missing
// one wraps ErrNotFound.
func (s *Store) Release(key string) error {
	dir, err := s.ActiveDir(key)
	if err != nil {
		return err
	}
	trash := filepath.Join(s.root, "trash", "active-"+randomSuffix())
	if err := os.Rename(dir, trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("snapshot: active layer %s: %w", key, ErrNotFound)
		}
		return fmt.Errorf("snapshot: release %s: %w", key, err)
	}
	if err := removeAll(trash); err != nil {
		return fmt.Errorf("snapshot: active layer %s released; deleting its files: %w", key, err)
	}
	return nil
}

// lowerDirs returns the fs directories of diffIDs (bottom layer first, as
// in an image config) in overlayfs's order: top-most first.
func (s *Store) lowerDirs(diffIDs []string) ([]string, error) {
	if len(diffIDs) == 0 {
		return nil, errors.New("snapshot: an overlay needs at least one layer")
	}
	out := make([]string, len(diffIDs))
	for i, d := range diffIDs {
		dir, err := s.Dir(d)
		if err != nil {
			return nil, err
		}
		out[len(diffIDs)-1-i] = dir
	}
	return out, nil
}
