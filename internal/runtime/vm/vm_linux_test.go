package vm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/runtime"
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
	m := &machine{QEMU: "q", Accel: AccelTCG, Kernel: "k", Initrd: "i", Disks: []string{"/a.img", "/b.img"}, MemoryMiB: 256, CPUs: 1, Sandbox: true, TSCkHz: 2000000, Balloon: true}
	a := strings.Join(m.args(), " ")
	for _, want := range []string{"-M microvm ", "-accel tcg", "-serial stdio", "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		"file=/a.img,format=raw,if=none,readonly=on", "serial=berth-l1", "BERTH_AGENT=1", "tsc_early_khz=2000000", "name=berth.agent",
		"-accel tcg,tb-size=32 ", "-device virtio-balloon-device,free-page-reporting=on"} {
		if !strings.Contains(a, want) {
			t.Errorf("QEMU args lack %q: %s", want, a)
		}
	}
	// A template's and a clone's machine has no balloon (QEMU 7.2 would
	// punch its freed pages out of the file every clone maps), and so
	// is eligible.
	m.Balloon = false
	if b := strings.Join(m.args(), " "); strings.Contains(b, "balloon") || templateEligible(m) != "" {
		t.Errorf("a machine without a balloon: %s (eligible: %q)", b, templateEligible(m))
	}
	m.Balloon = true
	if templateEligible(m) == "" {
		t.Errorf("a machine with a balloon is eligible for a template")
	}
	// The code buffer's size is TCG's option: KVM refuses tb-size.
	m.TCGCodeMiB = 16
	if b := strings.Join(m.args(), " "); !strings.Contains(b, "-accel tcg,tb-size=16 ") {
		t.Errorf("a 16 MiB code buffer: %s", b)
	}
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

// With a user of its own, QEMU drops to it (-runas) and its sandbox
// allows the set*id calls of that drop; without, it stays root and the
// sandbox denies them.
func TestMachineArgsRunAs(t *testing.T) {
	m := &machine{QEMU: "q", Accel: AccelTCG, Kernel: "k", Initrd: "i", MemoryMiB: 256, CPUs: 1, Sandbox: true,
		RunAs: &runtime.HostUser{UID: 3000123, GID: 3000456}}
	a := strings.Join(m.args(), " ")
	if !strings.Contains(a, "-runas 3000123:3000456") || !strings.Contains(a, "elevateprivileges=allow,spawn=deny") {
		t.Errorf("QEMU args with a user of its own: %s", a)
	}
	m.RunAs = nil
	if a := strings.Join(m.args(), " "); strings.Contains(a, "-runas") || !strings.Contains(a, "elevateprivileges=deny") {
		t.Errorf("QEMU args without a user of its own: %s", a)
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

// A template is found by what its clones must share with it: the device
// shape and the identity of QEMU, the kernel and the initramfs; never by
// a clone's own backends (its disks' files, its NICs' MACs).
func TestTemplateKey(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := machine{QEMU: file("qemu", "q"), Kernel: file("vmlinuz", "k"), Initrd: file("initrd", "i"), Accel: AccelTCG,
		Disks: []string{"/a.img"}, NICs: []string{"02:00:00:00:00:01"}, MemoryMiB: 256, CPUs: 1, TSCkHz: 2000000}
	key := func(m machine) string {
		t.Helper()
		k, err := templateKey(&m)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k0 := key(base)
	if k0 != key(base) {
		t.Fatal("the key of one machine changes")
	}
	same := map[string]func(*machine){
		"other disk files": func(m *machine) { m.Disks = []string{"/b.img"} },
		"other MACs":       func(m *machine) { m.NICs = []string{"02:00:00:00:00:99"} },
		"another TSC rate": func(m *machine) { m.TSCkHz = 2100000 },
		"no sandbox":       func(m *machine) { m.Sandbox = !m.Sandbox },
	}
	for what, change := range same {
		m := base
		change(&m)
		if key(m) != k0 {
			t.Errorf("%s: another template, want the same", what)
		}
	}
	other := map[string]func(*machine){
		"memory":   func(m *machine) { m.MemoryMiB = 512 },
		"vCPUs":    func(m *machine) { m.CPUs = 2 },
		"a disk":   func(m *machine) { m.Disks = append(m.Disks, "/b.img") },
		"no NIC":   func(m *machine) { m.NICs = nil },
		"KVM":      func(m *machine) { m.Accel = AccelKVM },
		"initrd":   func(m *machine) { m.Initrd = file("initrd2", "i") },
		"a kernel": func(m *machine) { m.Kernel = file("vmlinuz", "a rebuilt kernel") },
	}
	for what, change := range other {
		m := base
		change(&m)
		if key(m) == k0 {
			t.Errorf("%s changed: the same template", what)
		}
	}
	base.QEMU = filepath.Join(dir, "missing")
	if _, err := templateKey(&base); err == nil {
		t.Error("a missing QEMU gave a key")
	}
}

// What QEMU gets for a template and for its clones: the template's
// memory shared with the file, a clone's private over it and loaded
// from the template's state; a template's NICs have no backend.
func TestTemplateArgs(t *testing.T) {
	m := machine{QEMU: "q", Kernel: "k", Initrd: "i", Accel: AccelTCG, NICs: []string{templateMAC(0)}, MemoryMiB: 256, CPUs: 1}
	m.Template = &templateRun{RAM: "/t/ram", Make: true}
	made := strings.Join(m.args(), " ")
	for _, want := range []string{"memory-backend-file,id=mem,size=256M,mem-path=/t/ram,share=on", "-numa node,memdev=mem", "-qmp unix:qmp.sock", "virtio-net-device,mac=02:be:e7:00:00:00"} {
		if !strings.Contains(made, want) {
			t.Errorf("template's args %q lack %q", made, want)
		}
	}
	if strings.Contains(made, "-incoming") || strings.Contains(made, "-netdev") {
		t.Errorf("template's args %q load state or have a netdev", made)
	}
	if m.templateFiles()+len(m.NICs) != 0 {
		t.Errorf("a template takes %d files, want none", m.templateFiles()+len(m.NICs))
	}
	m.Template = &templateRun{RAM: "/t/ram", StateFD: 4}
	clone := strings.Join(m.args(), " ")
	for _, want := range []string{"mem-path=/t/ram,share=off", "-incoming defer", "-netdev tap,id=n0,fd=3"} {
		if !strings.Contains(clone, want) {
			t.Errorf("clone's args %q lack %q", clone, want)
		}
	}
	if m.templateFiles() != 1 {
		t.Errorf("a clone takes %d files beyond its taps, want its state", m.templateFiles())
	}
	m.Template = nil
	if cold := strings.Join(m.args(), " "); strings.Contains(cold, "memory-backend") || strings.Contains(cold, "-qmp") {
		t.Errorf("a cold boot's args %q have a template's", cold)
	}
	if why := templateEligible(&machine{Accel: AccelTCG, Share: true}); why == "" {
		t.Error("a VM with volumes (shared memory for virtiofsd) may start from a template")
	}
	// QEMU 7.2 punches holes in a private file mapping's file when the
	// guest gives memory back: never for a clone.
	if !discardsRAM([]string{"-device", "virtio-balloon-device,free-page-reporting=on"}) || !discardsRAM([]string{"-device", "virtio-mem-pci"}) {
		t.Error("a balloon or virtio-mem is not seen to discard guest memory")
	}
	if discardsRAM(m.args()) {
		t.Errorf("the machine's own args %q are seen to discard guest memory", m.args())
	}
	if why := templateEligible(&machine{Accel: AccelTCG}); why != "" {
		t.Errorf("a plain TCG VM may not start from a template: %s", why)
	}
}

// A template made from a QEMU, kernel or initramfs that changed since is
// removed when another is made; system prune's PruneTemplates removes
// every template, and a shim's leftover older than an hour.
func TestPruneTemplates(t *testing.T) {
	cache := t.TempDir()
	root := filepath.Join(cache, "templates")
	kernel := filepath.Join(cache, "vmlinuz")
	os.WriteFile(kernel, []byte("k"), 0o600)
	id, err := fileID(kernel)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(key string, inputs map[string]string) string {
		dir := filepath.Join(root, key)
		os.MkdirAll(dir, 0o700)
		for _, f := range []string{templateRAM, templateState} {
			os.WriteFile(filepath.Join(dir, f), nil, 0o600)
		}
		b, _ := json.Marshal(templateMetaData{Inputs: inputs})
		os.WriteFile(filepath.Join(dir, templateMeta), b, 0o600)
		return dir
	}
	fresh := mk("fresh", map[string]string{kernel: id})
	stale := mk("stale", map[string]string{kernel: id + "0"})
	gone := mk("gone", map[string]string{filepath.Join(cache, "missing"): "x"})
	pruneStaleTemplates(root)
	if _, err := readTemplate(fresh); err != nil {
		t.Errorf("a template whose inputs match was removed: %v", err)
	}
	for _, d := range []string{stale, gone} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("stale template %s kept", filepath.Base(d))
		}
	}
	leftover := filepath.Join(root, ".making-1")
	os.Mkdir(leftover, 0o700)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(leftover, old, old)
	n, err := (&Driver{Cache: cache}).PruneTemplates()
	if err != nil || n != 1 {
		t.Errorf("PruneTemplates = %d, %v; want the one template", n, err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("left after PruneTemplates: %v", ents)
	}
	if n, err := (&Driver{Cache: t.TempDir()}).PruneTemplates(); n != 0 || err != nil {
		t.Errorf("PruneTemplates without templates = %d, %v", n, err)
	}
}

// A clone loads the kernel's boot header and setup alone: setup_sects
// (0 meaning 4) sectors after the boot sector, then a page of zeros; a
// kernel that is not a bzImage gets no stub and clones load it whole.
func TestKernelStub(t *testing.T) {
	dir := t.TempDir()
	bz := func(sects byte) string {
		k := make([]byte, 100<<10)
		for i := range k {
			k[i] = byte(i%251) + 1
		}
		k[0x1f1] = sects
		copy(k[0x202:], "HdrS")
		p := filepath.Join(dir, "vmlinuz-"+strconv.Itoa(int(sects)))
		os.WriteFile(p, k, 0o644)
		return p
	}
	for sects, setup := range map[byte]int{30: 31 * 512, 0: 5 * 512} {
		k := bz(sects)
		tdir := t.TempDir()
		if err := writeKernelStub(k, filepath.Join(tdir, templateKernel)); err != nil {
			t.Fatal(err)
		}
		stub, err := os.ReadFile(cloneKernel(tdir, k))
		if err != nil {
			t.Fatal(err)
		}
		whole, _ := os.ReadFile(k)
		if len(stub) != setup+4096 || string(stub[:setup]) != string(whole[:setup]) || strings.Trim(string(stub[setup:]), "\x00") != "" {
			t.Errorf("setup_sects %d: a stub of %d bytes, want the first %d of the kernel and 4096 zeros", sects, len(stub), setup)
		}
	}
	elf := filepath.Join(dir, "vmlinux")
	os.WriteFile(elf, append([]byte("\x7fELF"), make([]byte, 8192)...), 0o644)
	tdir := t.TempDir()
	if err := writeKernelStub(elf, filepath.Join(tdir, templateKernel)); err != nil {
		t.Fatal(err)
	}
	if got := cloneKernel(tdir, elf); got != elf {
		t.Errorf("an ELF kernel's clones load %s, want the kernel itself", got)
	}
	if err := writeKernelStub(filepath.Join(dir, "missing"), filepath.Join(tdir, templateKernel)); err == nil {
		t.Error("a missing kernel gave no error")
	}
}

// BERTH_VM_TCG_CODE_MIB sizes TCG's code buffer; a bad value is refused by
// name.
func TestTCGCodeSize(t *testing.T) {
	for v, want := range map[string]int{"": tcgCodeMiB, "16": 16, "1024": 1024} {
		t.Setenv(EnvTCGCode, v)
		if n, err := TCGCodeSize(); err != nil || n != want {
			t.Errorf("%s=%q: %d, %v; want %d", EnvTCGCode, v, n, err, want)
		}
	}
	for _, v := range []string{"2", "big", "-1", "4096"} {
		t.Setenv(EnvTCGCode, v)
		if _, err := TCGCodeSize(); err == nil || !strings.Contains(err.Error(), EnvTCGCode) {
			t.Errorf("%s=%q: %v, want an error naming it", EnvTCGCode, v, err)
		}
	}
}
