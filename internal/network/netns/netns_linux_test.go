package netns

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creating network namespaces and mounts")
	}
}

func inode(t *testing.T, p string) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func testDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "netns")
	t.Cleanup(func() {
		names, _ := List(dir)
		for _, n := range names {
			Remove(dir, n)
		}
		CleanStale(dir)
		unix.Unmount(dir, unix.MNT_DETACH)
	})
	return dir
}

func TestNamespaceLifecycle(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := inode(t, "/proc/thread-self/ns/net")
	p, err := New(dir, "sandbox-1")
	if err != nil {
		t.Fatal(err)
	}
	if after := inode(t, "/proc/thread-self/ns/net"); after != before {
		t.Fatal("New moved the calling thread into the new namespace")
	}
	if ok, err := IsPinned(p); !ok || err != nil {
		t.Fatalf("IsPinned(%s) = %v, %v", p, ok, err)
	}
	if inode(t, p) == before {
		t.Fatal("the pinned namespace is the host's")
	}
	if _, err := New(dir, "sandbox-1"); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second New of one name: %v", err)
	}
	// Entered by path, it holds only a loopback device.
	if nsenter, err := exec.LookPath("nsenter"); err == nil {
		out, err := exec.Command(nsenter, "--net="+p, "ip", "-o", "link").CombinedOutput()
		if err != nil {
			t.Fatalf("nsenter: %v %s", err, out)
		}
		if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "lo:") {
			t.Fatalf("links in a new namespace:\n%s", out)
		}
	} else {
		t.Log("nsenter not installed: entering by path not checked")
	}
	if names, _ := List(dir); len(names) != 1 || names[0] != "sandbox-1" {
		t.Fatalf("List = %v", names)
	}
	if err := Remove(dir, "sandbox-1"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := IsPinned(p); ok {
		t.Fatal("namespace still pinned after Remove")
	}
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("pin file left after Remove: %v", err)
	}
	if err := Remove(dir, "sandbox-1"); err != nil {
		t.Fatalf("Remove of a removed namespace: %v", err)
	}
}

func TestLeftoversOfAKilledNewAreCleaned(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	if _, err := New(dir, "keep"); err != nil {
		t.Fatal(err)
	}
	// What a kill between create and mount leaves: a file with no pin.
	old, fresh := filepath.Join(dir, "dead"), filepath.Join(dir, "in-progress")
	os.WriteFile(old, nil, 0o444)
	os.WriteFile(fresh, nil, 0o444)
	past := time.Now().Add(-2 * staleAge)
	os.Chtimes(old, past, past)
	if names, _ := List(dir); len(names) != 1 || names[0] != "keep" {
		t.Fatalf("List shows unpinned files: %v", names)
	}
	if err := CleanStale(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stale leftover not removed: %v", err)
	}
	if _, err := os.Lstat(fresh); err != nil {
		t.Fatal("CleanStale removed a file a New may still be mounting on")
	}
	if ok, _ := IsPinned(filepath.Join(dir, "keep")); !ok {
		t.Fatal("CleanStale unpinned a live namespace")
	}
	if err := Remove(dir, "in-progress"); err != nil {
		t.Fatalf("Remove of an unpinned leftover: %v", err)
	}
}

func TestNamesStayInTheDirectory(t *testing.T) {
	for _, n := range []string{"", ".", "..", "a/b", "../up", strings.Repeat("n", 201)} {
		if _, err := New(t.TempDir(), n); err == nil || !strings.Contains(err.Error(), "invalid name") {
			t.Errorf("New(%q): %v", n, err)
		}
	}
}

func TestIsPinnedRejectsOtherFiles(t *testing.T) {
	requireRoot(t)
	if ok, err := IsPinned("/proc/self/ns/mnt"); ok || err != nil {
		t.Fatalf("a mount namespace passed as a network one: %v %v", ok, err)
	}
	f := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(f, nil, 0o644)
	if ok, _ := IsPinned(f); ok {
		t.Fatal("a plain file passed as a namespace")
	}
	if ok, err := IsPinned(filepath.Join(t.TempDir(), "missing")); ok || err != nil {
		t.Fatalf("missing: %v %v", ok, err)
	}
}

// Dial reaches a port that listens only inside the namespace, and the
// connection it returns keeps working from the caller's goroutine.
func TestDialInside(t *testing.T) {
	requireRoot(t)
	dir := testDir(t)
	p, err := New(dir, "dial")
	if err != nil {
		t.Fatal(err)
	}
	if err := LoopbackUp(p); err != nil {
		t.Fatal(err)
	}
	var l net.Listener
	if err := inside(p, func() (err error) {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := netip.MustParseAddrPort(l.Addr().String())
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, p, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo through the namespace: %q %v", buf, err)
	}
	l.Close()
	if _, err := Dial(ctx, p, "tcp", addr); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("dial %s in the namespace after its listener closed: %v, want connection refused", addr, err)
	}
	if _, err := Dial(ctx, filepath.Join(dir, "missing"), "tcp", addr); err == nil {
		t.Error("dial in a namespace that does not exist succeeded")
	}
}
