//go:build linux

package engine

import (
	"fmt"

	"github.com/berth-dev/berth/internal/runtime"
)

// filesOnVMDisk refuses to read or write a VM container's files on the
// host when its VM does not run: its changes are on its VM's writable
// disk (a file system its guest wrote, which berth never mounts in the
// host's kernel: a hostile container could have crafted it to attack the
// host's ext4 code), and the host's overlay of its layers would show the
// image's files as if they were the container's. A running one's go
// through its guest (guestFilesOf) instead. nil for a container whose
// files are on the host.
func (e *Engine) filesOnVMDisk(c *Container, what string) error {
	if !e.inVM(c) {
		return nil
	}
	return fmt.Errorf("container %s runs in a VM (isolation %s) and is not running: its files are on its VM's disk, which is never mounted on the host; start it to %s: %w",
		c.Name, c.HostConfig.Isolation, what, runtime.ErrNotSupported)
}

// inVM reports whether c runs under a driver other than the default (a
// VM), whose files are not on the host.
func (e *Engine) inVM(c *Container) bool {
	d, err := e.driver.named(c.HostConfig.Isolation)
	return err == nil && d != e.driver.def
}
