package vm

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cavaliergopher/cpio"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/agent"
)

// Environment that configures the guest kernel (else the newest Debian
// cloud kernel under /boot, with its modules under /lib/modules).
const (
	EnvKernel  = "BERTH_VM_KERNEL"
	EnvModules = "BERTH_VM_MODULES"
	EnvQEMU    = "BERTH_VM_QEMU"
	// EnvAccel forces "tcg" or "kvm" instead of the cached probe.
	EnvAccel = "BERTH_VM_ACCEL"
	// EnvTCGCode sizes TCG's buffer of translated code in MiB (each
	// VM's host memory against its speed; see tcgCodeMiB).
	EnvTCGCode = "BERTH_VM_TCG_CODE_MIB"
)

// guestModules are the modules the agent loads at boot, by name; their
// dependencies come from the kernel's modules.dep. No device's driver but
// the agent's port and the balloon's: a VM template is saved once the
// agent is up, and its clones must probe their own disks and NICs
// (agent.ModuleSetDisk); virtio_balloon finds no device in a template or
// a clone (machine.Balloon) and costs nothing there.
var guestModules = []string{"virtio_mmio", "virtio_console", "erofs", "overlay", "virtio_balloon"}

// guestModuleSets are loaded only for a container that needs them (see
// agent.ModuleSetNet); each set lists what it adds to the boot's.
var guestModuleSets = map[string][]string{
	agent.ModuleSetNet:   {"virtio_net"},
	agent.ModuleSetShare: {"virtiofs"},
	agent.ModuleSetUpper: {"ext4"},
	agent.ModuleSetDisk:  {"virtio_blk"},
	// Bridges for a container with CAP_NET_ADMIN (loaded only then).
	agent.ModuleSetNetAdmin: {"bridge"},
}

// moduleSets returns each set's modules not among boot's, in load order.
func moduleSets(modDir string, boot []string) (map[string][]string, error) {
	sets := map[string][]string{}
	for name, want := range guestModuleSets {
		all, err := moduleOrder(modDir, append(slices.Clone(guestModules), want...))
		if err != nil {
			return nil, err
		}
		for _, m := range all {
			if !slices.Contains(boot, m) {
				sets[name] = append(sets[name], m)
			}
		}
	}
	return sets, nil
}

// Kernel is a guest kernel and the directory of its modules.
type Kernel struct {
	Path, Modules, Release string
}

// FindKernel returns the configured guest kernel, or the newest Debian
// cloud kernel.
func FindKernel() (*Kernel, error) {
	if p := os.Getenv(EnvKernel); p != "" {
		rel := strings.TrimPrefix(filepath.Base(p), "vmlinuz-")
		mods := os.Getenv(EnvModules)
		if mods == "" {
			mods = filepath.Join("/lib/modules", rel)
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("guest kernel %s (%s): %w", p, EnvKernel, err)
		}
		return &Kernel{Path: p, Modules: mods, Release: rel}, nil
	}
	ks, _ := filepath.Glob("/boot/vmlinuz-*-cloud-amd64")
	if len(ks) == 0 {
		return nil, errors.New("no guest kernel: install linux-image-cloud-amd64 or set " + EnvKernel)
	}
	sort.Slice(ks, func(i, j int) bool { return versionLess(ks[i], ks[j]) })
	p := ks[len(ks)-1]
	rel := strings.TrimPrefix(filepath.Base(p), "vmlinuz-")
	mods := filepath.Join("/lib/modules", rel)
	if _, err := os.Stat(filepath.Join(mods, "modules.dep")); err != nil {
		return nil, fmt.Errorf("guest kernel %s has no modules: %w", p, err)
	}
	return &Kernel{Path: p, Modules: mods, Release: rel}, nil
}

// versionLess orders kernel file names by their numeric parts.
func versionLess(a, b string) bool {
	num := func(s string) []int {
		var out []int
		n, in := 0, false
		for _, r := range s {
			if r >= '0' && r <= '9' {
				n, in = n*10+int(r-'0'), true
			} else if in {
				out, n, in = append(out, n), 0, false
			}
		}
		if in {
			out = append(out, n)
		}
		return out
	}
	return slices.Compare(num(a), num(b)) < 0
}

// moduleOrder returns the module files to load (relative to the modules
// directory), every dependency before its user, from modules.dep (whose
// dependency lists name the farthest last, as modprobe loads them in
// reverse). Built-in modules are skipped.
func moduleOrder(modDir string, want []string) ([]string, error) {
	deps := map[string][]string{}
	byName := map[string]string{}
	f, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		byName[modName(mod)] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[modName(l)] = true
		}
	}
	var order []string
	seen := map[string]bool{}
	add := func(m string) {
		if !seen[m] {
			seen[m] = true
			order = append(order, m)
		}
	}
	for _, name := range want {
		mod, ok := byName[name]
		if !ok {
			if builtin[name] {
				continue
			}
			return nil, fmt.Errorf("guest kernel modules %s: no module %s", modDir, name)
		}
		d := deps[mod]
		for i := len(d) - 1; i >= 0; i-- {
			add(d[i])
		}
		add(mod)
	}
	return order, nil
}

// modName is a module's name from its path: dashes read as underscores.
func modName(p string) string {
	b := filepath.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// exeDigest is the sha256 of the running binary, remembered per file
// identity (device, inode, size, mtime) so a 40 MB binary is hashed once.
func exeDigest(cache string) (string, error) {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return "", err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	memo := filepath.Join(cache, fmt.Sprintf("exe-%x-%x-%x-%d.%d.sha256", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec))
	if b, err := os.ReadFile(memo); err == nil && len(b) == 64 {
		return string(b), nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	writeAtomic(memo, []byte(sum), 0o600)
	pruneOld(cache, ".sha256", memo)
	return sum, nil
}

// Initramfs returns the guest's initramfs for kernel k, building it into
// cache (named by the digest of everything in it) on first use: the
// embedded guest binary (cmd/berth-guest; this whole binary in a build
// without it) as /init and the modules the agent loads. The digest is
// this binary's, which covers the guest binary embedded in it.
func Initramfs(cache string, k *Kernel) (string, error) {
	dir := filepath.Join(cache, "initrd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	exe, err := exeDigest(dir)
	if err != nil {
		return "", err
	}
	mods, err := moduleOrder(k.Modules, guestModules)
	if err != nil {
		return "", err
	}
	sets, err := moduleSets(k.Modules, mods)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "berth-initramfs v3\nexe %s\nguest %d\n", exe, len(embeddedGuest))
	hashMods := func(mods []string) error {
		for _, m := range mods {
			st, err := os.Stat(filepath.Join(k.Modules, m))
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "mod %s %d %d\n", m, st.Size(), st.ModTime().UnixNano())
		}
		return nil
	}
	if err := hashMods(mods); err != nil {
		return "", err
	}
	for _, name := range slices.Sorted(maps.Keys(sets)) {
		fmt.Fprintf(h, "set %s\n", name)
		if err := hashMods(sets[name]); err != nil {
			return "", err
		}
	}
	name := filepath.Join(dir, hex.EncodeToString(h.Sum(nil))[:32]+".cpio")
	if _, err := os.Stat(name); err == nil {
		return name, nil
	}
	unlock, err := lockFile(name + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(name); err == nil {
		return name, nil
	}
	tmp := fmt.Sprintf("%s.tmp-%d", name, os.Getpid())
	defer os.Remove(tmp)
	if err := writeInitramfs(tmp, k.Modules, mods, sets); err != nil {
		return "", fmt.Errorf("build the guest initramfs: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return "", err
	}
	pruneOld(dir, ".cpio", name)
	return name, nil
}

// writeInitramfs writes an uncompressed newc archive: the kernel copies
// it in place, where a compressed one costs a decompression emulated
// instruction by instruction under TCG (see docs/architecture.md).
func writeInitramfs(path, modDir string, mods []string, sets map[string][]string) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	bw := bufio.NewWriterSize(out, 1<<20)
	w := cpio.NewWriter(bw)
	now := time.Unix(0, 0)
	for _, d := range []string{"dev", "proc", "sys", "run", "lib", "lib/modules"} {
		if err := w.WriteHeader(&cpio.Header{Name: d, Mode: cpio.TypeDir | 0o755, ModTime: now}); err != nil {
			return err
		}
	}
	addFile := func(name, src string, mode cpio.FileMode) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if err := w.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeReg | mode, Size: st.Size(), ModTime: now}); err != nil {
			return err
		}
		_, err = io.Copy(w, f)
		return err
	}
	if len(embeddedGuest) > 0 {
		if err := w.WriteHeader(&cpio.Header{Name: "init", Mode: cpio.TypeReg | 0o755, Size: int64(len(embeddedGuest)), ModTime: now}); err != nil {
			return err
		}
		if _, err := io.WriteString(w, embeddedGuest); err != nil {
			return err
		}
	} else if err := addFile("init", "/proc/self/exe", 0o755); err != nil {
		return err
	}
	writeOrder := func(name string, mods []string) error {
		var order strings.Builder
		for _, m := range mods {
			dst := "lib/modules/" + filepath.Base(m)
			if err := addFile(dst, filepath.Join(modDir, m), 0o644); err != nil {
				return err
			}
			order.WriteString("/" + dst + "\n")
		}
		ord := []byte(order.String())
		if err := w.WriteHeader(&cpio.Header{Name: strings.TrimPrefix(name, "/"), Mode: cpio.TypeReg | 0o644, Size: int64(len(ord)), ModTime: now}); err != nil {
			return err
		}
		_, err := w.Write(ord)
		return err
	}
	if err := writeOrder(agent.ModulesOrder, mods); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(sets)) {
		if err := writeOrder(agent.ModuleSetOrder(name), sets[name]); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return out.Sync()
}

// pruneOld removes the other files of a cache directory with the same
// suffix (builds for binaries or kernels no longer current), unless a
// process still holds their lock.
func pruneOld(dir, suffix, keep string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if p == keep || !strings.HasSuffix(e.Name(), suffix) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.Remove(p)
			os.Remove(p + ".lock")
		}
	}
}

// lockFile takes an exclusive flock on path.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// writeAtomic writes a small file by rename.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := fmt.Sprintf("%s.tmp-%d", path, os.Getpid())
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
