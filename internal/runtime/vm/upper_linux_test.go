package vm

import (
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The container's writable disk: a sparse file with an empty ext4 (its
// superblock's magic read from the file, never mounted), made once and
// kept; QEMU gets it read-write, raw, with I/O errors for the guest.
func TestUpperDisk(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4: ", err)
	}
	bundle := t.TempDir()
	disk, err := UpperDisk(context.Background(), bundle)
	if err != nil {
		t.Fatal(err)
	}
	if disk != filepath.Join(bundle, UpperDiskName) {
		t.Errorf("the disk is %s, want it in the bundle", disk)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(disk, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != upperDiskSize || st.Blocks*512 > 64<<20 {
		t.Errorf("disk: %d bytes, %d allocated; want %d, sparse", st.Size, st.Blocks*512, upperDiskSize)
	}
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	sb := make([]byte, 2)
	_, err = f.ReadAt(sb, 1024+0x38) // s_magic
	f.Close()
	if err != nil || binary.LittleEndian.Uint16(sb) != 0xEF53 {
		t.Errorf("no ext4 superblock: %x, %v", sb, err)
	}
	// A second run keeps the same file (the container's writes).
	again, err := UpperDisk(context.Background(), bundle)
	var st2 syscall.Stat_t
	if err != nil || again != disk || syscall.Stat(again, &st2) != nil || st2.Ino != st.Ino {
		t.Errorf("a second UpperDisk: %s, %v, inode %d, want the same file (%d)", again, err, st2.Ino, st.Ino)
	}
	if left, _ := filepath.Glob(filepath.Join(bundle, "*.tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	m := &machine{QEMU: "qemu", Accel: AccelTCG, Kernel: "k", Initrd: "i", MemoryMiB: 256, CPUs: 1, Upper: "/var/lib/a,b/" + UpperDiskName}
	args := strings.Join(m.args(), " ")
	if !strings.Contains(args, "-drive id=u,file=/var/lib/a,,b/"+UpperDiskName+",format=raw,if=none,werror=report,rerror=report -device virtio-blk-device,drive=u,serial="+upperSerial) {
		t.Errorf("QEMU's arguments for the writable disk: %s", args)
	}
}
