//go:build !linux

package snapshot

import "errors"

// MountOverlay needs Linux's overlayfs.
func (s *Store) MountOverlay(key string, diffIDs []string, target string) error {
	return errors.New("snapshot: overlay mounts need Linux")
}
