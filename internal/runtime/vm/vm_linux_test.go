package vm

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestModuleOrder(t *testing.T) {
	dir := t.TempDir()
	dep := `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/lib/libcrc32c.ko:
kernel/fs/erofs/erofs.ko: kernel/lib/libcrc32c.ko
`
	os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644)
	os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/fs/overlayfs/overlay.ko\n"), 0o644)
	got, err := moduleOrder(dir, []string{"virtio_mmio", "virtio_console", "erofs", "overlay"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_mmio.ko",
		"kernel/drivers/char/virtio_console.ko", "kernel/lib/libcrc32c.ko", "kernel/fs/erofs/erofs.ko"}
	if !slices.Equal(got, want) {
		t.Errorf("moduleOrder:\n got %v\nwant %v", got, want)
	}
	if _, err := moduleOrder(dir, []string{"virtio_blk"}); err == nil {
		t.Error("a module missing from modules.dep and modules.builtin: no error")
	}
}

func TestVersionLess(t *testing.T) {
	if !versionLess("/boot/vmlinuz-6.1.0-9-cloud-amd64", "/boot/vmlinuz-6.1.0-57-cloud-amd64") {
		t.Error("6.1.0-9 sorts after 6.1.0-57")
	}
}

func TestMachineArgs(t *testing.T) {
	m := &machine{QEMU: "q", Accel: AccelTCG, Kernel: "k", Initrd: "i", Disks: []string{"/a.img", "/b.img"}, MemoryMiB: 256, CPUs: 1, Sandbox: true, TSCkHz: 2000000}
	a := strings.Join(m.args(), " ")
	for _, want := range []string{"-M microvm ", "-accel tcg", "-serial stdio", "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		"file=/a.img,format=raw,if=none,readonly=on", "serial=berth-l1", "BERTH_AGENT=1", "tsc_early_khz=2000000", "name=berth.agent"} {
		if !strings.Contains(a, want) {
			t.Errorf("QEMU args lack %q: %s", want, a)
		}
	}
	// Known to hang TCG guests here: see docs/architecture.md.
	for _, bad := range []string{"pit=off", "pic=off", "rtc=off", "x-option-roms=off"} {
		if strings.Contains(a, bad) {
			t.Errorf("QEMU args hold %q: %s", bad, a)
		}
	}
}
