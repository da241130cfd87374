//go:build !linux

package snapshot

import (
	"errors"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// MountOverlay needs Linux's overlayfs.
func (s *Store) MountOverlay(key string, diffIDs []string, target string) error {
	return errors.New("snapshot: overlay mounts need Linux")
}

// MountOverlayMapped needs Linux's overlayfs and idmapped mounts.
func (s *Store) MountOverlayMapped(key string, diffIDs []string, target string, uids, gids []specs.LinuxIDMapping) error {
	return errors.New("snapshot: overlay mounts need Linux")
}

// MountReadOnly needs Linux.
func (s *Store) MountReadOnly(diffIDs []string, target string) error {
	return errors.New("snapshot: overlay mounts need Linux")
}
