// Package privdir makes and checks the directories that hold container and
// image files: berth's --root and --state, and the stores under them.
//
// Invariant: every directory berth keeps container or image files in
// belongs to the user berth runs as and no other user can enter it (mode
// 0700). Other users must not traverse into a container's mounted root, a
// writable layer or an unpacked image layer: a setuid file made by a
// container or shipped in an image would run with its owner's (host
// root's) privileges for anyone who can reach its path. Modes inside the
// stores are the images' own and are not changed; the private directories
// above them are the fence.
//
// --root and --state themselves are made private when berth creates them,
// but an existing one is not changed (it may be a directory the user
// named by mistake, /run say): the subdirectories berth makes in them are
// the fence there (Ensure).
package privdir

import (
	"fmt"
	"os"
)

// Ensure makes dir (and any missing parents, private as well) if it does
// not exist, and otherwise takes group and other access away from it: it
// is for directories that are berth's by construction (a store inside the
// root). A directory owned by another user is refused: whoever owns it
// could swap what berth puts there. A symbolic link to a directory is
// followed; the target is checked.
func Ensure(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("make private directory %s: %w", dir, err)
	}
	return check(dir, true)
}

// EnsureTop makes dir private if it does not exist, and otherwise only
// checks that it belongs to berth's user: for --root and --state, whose
// contents berth guards with Ensure.
func EnsureTop(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("make private directory %s: %w", dir, err)
	}
	return check(dir, false)
}

// ErrNotPrivate marks a directory berth cannot make private.
type ErrNotPrivate struct {
	Path   string
	Reason string
}

func (e *ErrNotPrivate) Error() string {
	return fmt.Sprintf("directory %s %s: berth keeps container and image files there and needs it to be its own user's alone; fix its owner or choose another directory", e.Path, e.Reason)
}
