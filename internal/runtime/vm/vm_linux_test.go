package vm

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/agent"
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
		"file=/a.img,format=raw,if=none,readonly=on", "serial=berth-l1", "BERTH_AGENT=1", "tsc_early_khz=2000000", "name=berth.agent",
		"-accel tcg,tb-size=32 ", "-device virtio-balloon-device,free-page-reporting=on"} {
		if !strings.Contains(a, want) {
			t.Errorf("QEMU args lack %q: %s", want, a)
		}
	}
	// The code buffer's size is TCG's option: KVM refuses tb-size.
	m.Accel = AccelKVM
	if k := strings.Join(m.args(), " "); !strings.Contains(k, "-accel kvm ") {
		t.Errorf("KVM's QEMU args: want a plain -accel kvm: %s", k)
	}
	// Known to hang TCG guests here: see docs/architecture.md.
	for _, bad := range []string{"pit=off", "pic=off", "rtc=off", "x-option-roms=off"} {
		if strings.Contains(a, bad) {
			t.Errorf("QEMU args hold %q: %s", bad, a)
		}
	}
}

func TestMachineArgsNetworkAndShare(t *testing.T) {
	m := &machine{QEMU: "q", Accel: AccelTCG, Kernel: "k", Initrd: "i", MemoryMiB: 300, CPUs: 1,
		NICs: []string{"02:00:00:00:00:01", "02:00:00:00:00:02"}, Share: true}
	a := strings.Join(m.args(), " ")
	for _, want := range []string{
		// Each tap is QEMU's fd 3+i, with the interface's MAC.
		"-netdev tap,id=n0,fd=3 -device virtio-net-device,netdev=n0,mac=02:00:00:00:00:01",
		"-netdev tap,id=n1,fd=4 -device virtio-net-device,netdev=n1,mac=02:00:00:00:00:02",
		// virtiofsd needs shared guest memory of the machine's size and
		// modern virtio-mmio.
		"memory-backend-memfd,id=mem,size=300M,share=on", "-numa node,memdev=mem", "virtio-mmio.force-legacy=false",
		"vhost-user-fs-device,chardev=fs,tag=berth",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("QEMU args lack %q: %s", want, a)
		}
	}
	if a := strings.Join((&machine{MemoryMiB: 256}).args(), " "); strings.Contains(a, "force-legacy") || strings.Contains(a, "memfd") || strings.Contains(a, "netdev") {
		t.Errorf("a machine without NICs or a share: %s", a)
	}
	// Too many devices for microvm's transports: refused before QEMU.
	m = &machine{QEMU: "/bin/true", Disks: make([]string, 22), NICs: []string{"02:00:00:00:00:01"}, Share: true}
	if _, err := m.start(t.TempDir(), []*os.File{nil}); err == nil || !strings.Contains(err.Error(), "transports") {
		t.Errorf("22 layers, a NIC and a share: %v, want a refusal", err)
	}
}

func TestLoopbackNameservers(t *testing.T) {
	got := loopbackNameservers([]byte("search x\nnameserver 127.0.0.11\nnameserver 10.0.0.1\nnameserver ::1\n#nameserver 127.0.0.2\nnameserver bogus\noptions ndots:0\n"))
	if !slices.Equal(got, []string{"127.0.0.11", "::1"}) {
		t.Errorf("loopbackNameservers = %v", got)
	}
}

// TestShareMounts: every bind mount but the engine's small files is
// shared, its source in the guest's spec pointing into the share; a
// device is refused by its destination.
func TestShareMounts(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	spec := &specs.Spec{Mounts: []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/data", Type: "bind", Source: dir, Options: []string{"rbind", "rw"}},
		{Destination: "/etc/hosts", Type: "bind", Source: file, Options: []string{"rbind"}},
		{Destination: "/etc/f", Source: file, Options: []string{"bind", "ro"}},
	}}
	shares, err := shareMounts(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := []share{{Source: dir, Name: "m0", Dir: true}, {Source: file, Name: "m1", ReadOnly: true}}
	if !slices.Equal(shares, want) {
		t.Errorf("shares %+v, want %+v", shares, want)
	}
	if s := spec.Mounts; s[1].Source != agent.SharedDir+"/m0" || s[2].Source != file || s[3].Source != agent.SharedDir+"/m1" || s[0].Source != "proc" {
		t.Errorf("sources in the guest's spec: %+v", s)
	}
	_, err = shareMounts(&specs.Spec{Mounts: []specs.Mount{{Destination: "/null", Type: "bind", Source: "/dev/null"}}})
	if err == nil || !strings.Contains(err.Error(), "/null") {
		t.Errorf("a device: %v, want a refusal naming /null", err)
	}
}

func TestGuestSize(t *testing.T) {
	spec := func(mem int64, quota int64, period uint64) *specs.Spec {
		r := &specs.LinuxResources{}
		if mem != 0 {
			r.Memory = &specs.LinuxMemory{Limit: &mem}
		}
		if quota != 0 {
			r.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
		}
		return &specs.Spec{Linux: &specs.Linux{Resources: r}}
	}
	for _, tc := range []struct {
		spec      *specs.Spec
		mem, cpus int
		what      string
	}{
		{&specs.Spec{}, 256, 1, "no limits"},
		{spec(32<<20, 0, 0), 256, 1, "a small limit: the default size"},
		{spec(512<<20, 0, 0), 576, 1, "--memory 512m: plus the guest's 64 MiB"},
		{spec(0, 150000, 100000), 256, 2, "--cpus 1.5: two vCPUs"},
		{spec(0, 50000, 100000), 256, 1, "--cpus 0.5: one"},
		{spec(0, 900000, 100000), 256, 4, "--cpus 9: at most the host's 4"},
	} {
		if mem, cpus := guestSize(tc.spec, 4); mem != tc.mem || cpus != tc.cpus {
			t.Errorf("%s: %d MiB, %d vCPUs; want %d, %d", tc.what, mem, cpus, tc.mem, tc.cpus)
		}
	}
}
