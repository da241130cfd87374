package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// UpperDiskName is the container's writable disk in its bundle
// directory (the engine's directory of the container, removed with it).
const UpperDiskName = "vm-upper.ext4"

// upperDiskSize is the writable disk's size: sparse, so the host's disk
// holds only what the container wrote (and ext4's few MB of metadata).
const upperDiskSize = 32 << 30

// upperSerial names the writable disk (virtio-blk serial, read by the
// agent).
const upperSerial = "berth-upper"

// UpperDisk returns the container's writable disk in its bundle
// directory, making it on the container's first run: a sparse file with
// an empty ext4 file system (mkfs.ext4 of e2fsprogs). The guest mounts
// it as the root overlay's upper and work directories, so the
// container's writes survive stop and start, as docker keeps them; it
// goes with the container's directory at rm.
//
// The host never mounts it: once a guest has run on it, it is a file
// system a hostile container could have crafted to attack the host
// kernel's ext4 code. Only the guest's kernel reads it.
func UpperDisk(ctx context.Context, bundle string) (string, error) {
	disk := filepath.Join(bundle, UpperDiskName)
	if _, err := os.Stat(disk); err == nil {
		return disk, nil
	}
	tmp := disk + ".tmp-" + strconv.Itoa(os.Getpid())
	defer os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	err = f.Truncate(upperDiskSize)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("the container's disk: %w", err)
	}
	// Lazy inode tables and journal: nothing of them is written now (the
	// guest mounts with noinit_itable); no reserved blocks, a label for
	// whoever lists the file.
	if err := runQuiet(ctx, "make the container's disk", "mkfs.ext4", "-q", "-F", "-m", "0",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0", "-L", "berth-upper", tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, disk); err != nil {
		return "", err
	}
	return disk, nil
}
