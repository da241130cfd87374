//go:build linux

package integration

// The local-user adversary (docs/threat-model.md): an unprivileged user on
// the host must not reach container or image files through berth's
// directories. Each test also asserts that what it hunts for exists.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/image/registrytest"
)

const nobodyID = 65534

// asNobody makes cmd run as nobody:nogroup, with no supplementary groups.
func asNobody(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyID, Gid: nobodyID, Groups: []uint32{}}}
	return cmd
}

// setuidFiles walks dirs as root and returns every setuid or setgid file.
func setuidFiles(t *testing.T, dirs ...string) []string {
	t.Helper()
	var out []string
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if info, err := de.Info(); err == nil && info.Mode().IsRegular() && info.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

// checkUnreachable asserts that nobody can traverse into root or state
// (find, as nobody, sees nothing below them) and cannot execute any of
// the given files.
func checkUnreachable(t *testing.T, phase, root, state string, files []string) {
	t.Helper()
	out, _ := asNobody(exec.Command("find", root, state)).Output()
	for _, p := range strings.Fields(string(out)) {
		if p == root || p == state {
			continue
		}
		// In a root open to everyone, nobody sees the names of berth's
		// directories there, which must be private: no further.
		if d := filepath.Dir(p); d == root || d == state {
			if st, err := os.Lstat(p); err == nil && st.IsDir() && st.Mode().Perm() == 0o700 {
				continue
			}
		}
		t.Errorf("%s: nobody reaches %s", phase, p)
	}
	for _, f := range files {
		err := asNobody(exec.Command(f, "-c", "id")).Run()
		if !errors.Is(err, fs.ErrPermission) {
			t.Errorf("%s: nobody executing %s: got %v, want permission denied", phase, f, err)
		}
	}
}

func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	if st, err := os.Stat(dir); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o700 {
		t.Errorf("%s: mode %v, want 0700", dir, st.Mode())
	}
}

func TestLocalUserCannotReachContainerOrImageFiles(t *testing.T) {
	// t.TempDir is 0700 itself, which would hide everything below it
	// whatever berth did: the roots go into a directory anyone can enter,
	// as /var/lib and /run are.
	dir, err := os.MkdirTemp("", "berth-localuser-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEngineIn(t, dir)
	// A root an administrator made by hand, open to everyone: berth
	// leaves it as it is (it may be shared by mistake) and makes its own
	// directories in it private.
	if err := os.Mkdir(e.root, 0o755); err != nil {
		t.Fatal(err)
	}

	reg := registrytest.Start(t, registrytest.Options{})
	featureImage(t).Push(t, reg, "feature", "v1")
	e.run("pull", "-q", reg.Ref("feature", "v1"))
	e.loadDemoImage()
	if st, err := os.Stat(e.root); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("the existing root was changed: %v %v", err, st.Mode())
	}
	layerSetuid := setuidFiles(t, e.root)
	if len(layerSetuid) == 0 {
		t.Fatal("the pulled image's setuid bin/app is in no layer: the test hunts for nothing")
	}
	checkUnreachable(t, "after pull", e.root, e.state, layerSetuid)

	e.run("run", "-d", "--name", "suid", "-v", "data:/data", demoImage, "sh", "-c",
		"cp /bin/busybox /tmp/.x && chmod 4755 /tmp/.x && cp /bin/busybox /data/.y && chmod 6755 /data/.y && touch /tmp/ready && exec sleep 1000")
	waitFor(t, 10*time.Second, "the container's setuid copies", func() bool {
		_, _, err := e.try("exec", "suid", "test", "-f", "/tmp/ready")
		return err == nil
	})
	running := setuidFiles(t, e.root, e.state)
	var inRootfs, inUpper, inVolume bool
	for _, f := range running {
		inRootfs = inRootfs || strings.HasPrefix(f, e.state) && strings.HasSuffix(f, "/rootfs/tmp/.x")
		inUpper = inUpper || strings.HasPrefix(f, e.root) && strings.HasSuffix(f, "/upper/tmp/.x")
		inVolume = inVolume || strings.HasSuffix(f, "/_data/.y")
	}
	if !inRootfs || !inUpper || !inVolume {
		t.Fatalf("setuid copies not found where expected (rootfs %v, upper %v, volume %v): %q", inRootfs, inUpper, inVolume, running)
	}
	checkPrivate(t, e.state)
	checkUnreachable(t, "while running", e.root, e.state, running)

	e.run("stop", "-t", "0", "suid")
	stopped := setuidFiles(t, e.root, e.state)
	if !slices.ContainsFunc(stopped, func(f string) bool { return strings.HasSuffix(f, "/upper/tmp/.x") }) {
		t.Fatalf("a stopped container's writable layer keeps its files, but none found: %q", stopped)
	}
	checkUnreachable(t, "after stop", e.root, e.state, stopped)

	e.run("rm", "suid")
	checkUnreachable(t, "after rm", e.root, e.state, setuidFiles(t, e.root, e.state))
	e.run("volume", "rm", "data")
}

// A container with a tty gets its pty master over a socket pair, never a
// listening socket: an abstract one is listed in /proc/net/unix for every
// host user, who could connect first and hand the monitor a pty of their
// own (then read what is typed into the container's terminal). The test
// watches /proc/net/unix while tty containers start.
func TestLocalUserSeesNoConsoleSocket(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	stop := make(chan struct{})
	seen := make(chan string, 1)
	go func() {
		defer close(seen)
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, _ := os.ReadFile("/proc/net/unix")
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); len(f) >= 8 && strings.HasPrefix(f[7], "@berth") {
					seen <- f[7]
					return
				}
			}
		}
	}()
	for i := range 15 {
		e.run("run", "-d", "-t", "--name", fmt.Sprintf("tty%d", i), demoImage, "sleep", "100")
	}
	close(stop)
	if s, ok := <-seen; ok {
		t.Errorf("a berth socket other users can connect to: %s", s)
	}
	if c := e.inspect("tty0"); !c.State.Running {
		t.Fatalf("tty container: %+v", c.State)
	}
	out := strings.Fields(e.run("ps", "-aq"))
	e.run(append([]string{"rm", "-f"}, out...)...)
}

// A hardened host's umask (077) in the caller's shell must not leak into
// what berth makes for a container: a non-root container user can enter
// "/", read /etc/hosts and resolv.conf, and enter a volume.
func TestEngineUnderRestrictiveUmask(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	args := append([]string{"--root", e.root, "--state", e.state}, "run", "--rm", "-u", "1000", "-v", "umaskvol:/data", demoImage,
		"sh", "-c", "cat /etc/hosts /etc/resolv.conf >/dev/null && ls /data && echo ok")
	cmd := exec.Command("sh", append([]string{"-c", `umask 077; exec "$0" "$@"`, e.bin}, args...)...)
	cmd.Env = e.env
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("a non-root container under umask 077: %v: %s", err, out)
	}
}
