//go:build linux

package integration

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// guestModule is a module file of the guest kernel's (Debian's cloud
// kernel, whose modules are on the host under /lib/modules/<release>),
// uncompressed so that busybox's insmod loads it: dummy, which makes an
// interface, dummy0, when loaded.
func guestModule(t *testing.T) string {
	t.Helper()
	m, _ := filepath.Glob("/lib/modules/*-cloud-amd64/kernel/drivers/net/dummy.ko")
	if len(m) == 0 {
		t.Skip("no uncompressed dummy.ko of the guest kernel under /lib/modules/*-cloud-amd64")
	}
	slices.Sort(m)
	return m[len(m)-1]
}

// TestVMHostInvisible: from inside a VM container the host's processes,
// files, devices and network interfaces cannot be seen, even with
// --privileged and --pid host (which in a VM mean the guest's root and
// the guest's pid namespace), and a kernel module a privileged container
// loads is loaded in the guest's kernel, not the host's. Markers on the
// host (a file, a process) are looked for from the guest; each search is
// shown to work on a marker of the guest's own. Two boots.
func TestVMHostInvisible(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.requireVM()
	module := guestModule(t)

	// The marker's name reaches the guest split in two environment
	// variables, so that no command line there holds it whole.
	rnd := make([]byte, 6)
	rand.Read(rnd)
	m1, m2 := "bvmmark", hex.EncodeToString(rnd)
	marker := m1 + m2
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, marker+"-host"), []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	proc := exec.Command("sleep", "600")
	proc.Args[0] = marker + "-host"
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { proc.Process.Kill(); proc.Wait() }()
	waitFor(t, 10*time.Second, "the host's marker process to exec", func() bool {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(proc.Process.Pid), "cmdline"))
		return strings.HasPrefix(string(b), marker)
	})
	hostModules, modErr := os.ReadFile("/proc/modules")
	if _, err := os.Stat("/sys/class/net/dummy0"); err == nil {
		t.Skip("the host has a dummy0 already: the test could not tell the guest's from it")
	}

	script := `M="$M1$M2"
touch /tmp/$M-guest
sleep $((700+37)) &
for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < $f; echo; done > /tmp/cmdlines
echo "procs host=$(grep -c "^$M" /tmp/cmdlines) guest=$(grep -c '^sleep 737' /tmp/cmdlines) pid1=$(cat /proc/1/comm)"
echo "files $(find / -path /proc -prune -o -path /sys -prune -o -name "$M*" -print | tr '\n' ' ')"
echo "disks $(for f in /sys/block/*/serial; do echo $(cat $f); done | sort | tr '\n' ' ')"
l=$(grep -l berth-l0 /sys/block/*/serial | cut -d/ -f4)
mkdir /l
mount -o ro /dev/$l /l && echo "layer disk $(ls /l/bin/busybox) $(find /l -name "$M*" | wc -l)"; umount /l
dd if=/dev/zero of=/dev/$l count=1 2>/dev/null && echo "layer disk written"
echo "net $(ls /sys/class/net | tr '\n' ' ')"
insmod /m/dummy.ko && echo "modules $(grep -c '^dummy ' /proc/modules) $(ls /sys/class/net | tr '\n' ' ')"
kill %1`
	out, errOut, err := e.try("run", "--rm", "--isolation", "vm", "--privileged", "--pid", "host", "--network", "none",
		"-e", "M1="+m1, "-e", "M2="+m2, "-v", module+":/m/dummy.ko:ro", demoImage, "sh", "-c", script)
	if err != nil {
		t.Fatalf("a privileged VM container: %v\n%s\n%s", err, out, errOut)
	}
	want := []string{
		// The guest's processes (the agent is its PID 1), its own
		// marker process, none of the host's.
		"procs host=0 guest=1 pid1=init",
		// Its own file, none of the host's (the search covers every
		// file system of the container but /proc and /sys).
		"files /tmp/" + marker + "-guest ",
		// The guest's block devices are its one layer disk, which
		// holds the image (and no host file) and cannot be written
		// (QEMU attaches it read-only: it is shared by every VM of
		// the image), and the container's own writable disk.
		"disks berth-l0 berth-upper ",
		"layer disk /l/bin/busybox 0",
		// Its network interfaces (--network none: lo alone).
		"net lo ",
		// The module, loaded in the guest's kernel, made its
		// interface there.
		"modules 1 dummy0 lo ",
	}
	if got := strings.Split(strings.TrimRight(out, "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("inside a privileged VM container:\n%s\nwant:\n%s\n(stderr %s)", out, strings.Join(want, "\n"), errOut)
	}
	// The host's kernel did not load it: no module, no interface.
	if _, err := os.Stat("/sys/class/net/dummy0"); err == nil {
		t.Error("the host has a dummy0 after the guest loaded dummy")
	}
	if after, err := os.ReadFile("/proc/modules"); (err == nil) != (modErr == nil) || string(after) != string(hostModules) {
		t.Errorf("the host's /proc/modules changed while a guest loaded a module:\nbefore %q (%v)\nafter %q (%v)", hostModules, modErr, after, err)
	}

	// Unprivileged: no device of the guest's, no module loading.
	out, errOut, _ = e.try("run", "--rm", "--isolation", "vm", "--network", "none", "-v", module+":/m/dummy.ko:ro", demoImage, "sh", "-c",
		`ls /dev/vda 2>/dev/null || echo no disk; insmod /m/dummy.ko 2>/dev/null || echo insmod refused; grep -c '^dummy ' /proc/modules`)
	if out != "no disk\ninsmod refused\n0\n" {
		t.Errorf("an unprivileged VM container: %q (%s), want no disk, no module", out, errOut)
	}
	e.checkNothingLeft()
	e.checkNoVMLeft()
}
