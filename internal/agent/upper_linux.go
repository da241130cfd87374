package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// ModuleSetUpper: ext4 and what it needs, for the container's writable
// disk, when the guest kernel has it as a module.
const ModuleSetUpper = "ext4"

// mountUpper mounts the root overlay's writable layer at upperDir, with
// its upper and work directories: the container's disk (serial) when the
// host gave one, so that its writes outlive the VM, else a tmpfs.
func mountUpper(serial string) error {
	if err := os.MkdirAll(upperDir, 0o700); err != nil {
		return err
	}
	if serial == "" {
		if err := unix.Mount("tmpfs", upperDir, "tmpfs", unix.MS_NODEV, "mode=0700"); err != nil {
			return err
		}
	} else {
		// No list when the guest kernel has ext4 built in (Debian's
		// cloud kernel does): nothing to load.
		if err := loadModules(ModuleSetOrder(ModuleSetUpper)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		disks, err := findDisks([]string{serial}, 10*time.Second)
		if err != nil {
			return err
		}
		// noinit_itable: the host made it with lazy_itable_init; left
		// on, the kernel would zero the inode tables in the background
		// and fill the sparse file on the host with zeroes.
		if err := unix.Mount(disks[0], upperDir, "ext4", unix.MS_NODEV, "noinit_itable"); err != nil {
			return fmt.Errorf("mount the container's disk (%s): %w", disks[0], err)
		}
	}
	for _, d := range []string{"upper", "work"} {
		if err := os.Mkdir(filepath.Join(upperDir, d), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return nil
}
