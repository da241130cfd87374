package userns

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func mapping(base uint32) []specs.LinuxIDMapping {
	return []specs.LinuxIDMapping{{ContainerID: 0, HostID: base, Size: 65536}}
}

func TestOpenCloneAsMapped(t *testing.T) {
	requireRoot(t)
	ns, err := Open(mapping(300000), mapping(400000))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if typ, err := unix.IoctlRetInt(int(ns.Fd()), unix.NS_GET_NSTYPE); err != nil || typ != unix.CLONE_NEWUSER {
		t.Fatalf("the handle is not a user namespace: %d %v", typ, err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "root-file"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(dir, "five"), 0o755)
	os.Chown(filepath.Join(dir, "five"), 5, 6)
	view := filepath.Join(t.TempDir(), "view")
	os.Mkdir(view, 0o755)
	tree, err := CloneIDMapped(dir, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	if err := unix.MoveMount(int(tree.Fd()), "", unix.AT_FDCWD, view, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(view, unix.MNT_DETACH)
	owner := func(p string) (uint32, uint32) {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Uid, st.Gid
	}
	if u, g := owner(filepath.Join(view, "root-file")); u != 300000 || g != 400000 {
		t.Errorf("root's file through the mapped view: %d:%d", u, g)
	}
	if u, g := owner(filepath.Join(view, "five")); u != 300005 || g != 400006 {
		t.Errorf("5:6's directory through the mapped view: %d:%d", u, g)
	}
	// The host's root is no one there: it cannot create files...
	if err := os.WriteFile(filepath.Join(view, "by-host-root"), nil, 0o644); err == nil {
		t.Error("the host's root created a file on the idmapped mount")
	}
	// ...but as the mapped root it can, and they are root's on disk.
	err = AsMapped(300000, 400000, func() error {
		if err := os.WriteFile(filepath.Join(view, "by-mapped-root"), nil, 0o644); err != nil {
			return err
		}
		// Capabilities are kept: chown to another mapped ID works.
		return os.Lchown(filepath.Join(view, "by-mapped-root"), 300007, 400008)
	})
	if err != nil {
		t.Fatal(err)
	}
	if u, g := owner(filepath.Join(dir, "by-mapped-root")); u != 7 || g != 8 {
		t.Errorf("on disk: %d:%d, want 7:8", u, g)
	}
	// This thread is untouched.
	if u, _ := unix.SetfsuidRetUid(-1); u != 0 {
		t.Errorf("the caller's fsuid is %d", u)
	}
}

func TestEnsureAddsOnceAndKeepsOthers(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	f := Files{UID: filepath.Join(dir, "subuid"), GID: filepath.Join(dir, "subgid")}
	os.WriteFile(f.UID, []byte("alice:100000:65536\n"), 0o640)
	// No subgid file at all.
	var wg sync.WaitGroup
	pools := make([]Pool, 8)
	errs := make([]error, 8)
	for i := range pools {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			pools[i], errs[i] = f.Ensure(context.Background())
		}(i)
	}
	wg.Wait()
	added := 0
	for i := range pools {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if pools[i].Added != "" {
			added++
		}
		if len(pools[i].UIDs) != 1 || pools[i].UIDs[0].Start != 196608 || pools[i].GIDs[0] != pools[i].UIDs[0] {
			t.Errorf("pool %d: %+v", i, pools[i])
		}
	}
	if added != 1 {
		t.Errorf("%d of 8 concurrent calls added an entry, want 1", added)
	}
	uid, _ := os.ReadFile(f.UID)
	gid, _ := os.ReadFile(f.GID)
	if string(uid) != "alice:100000:65536\nberth:196608:67108864\n" || string(gid) != "berth:196608:67108864\n" {
		t.Errorf("files:\n%s--\n%s", uid, gid)
	}
	if st, _ := os.Stat(f.UID); st.Mode().Perm() != 0o640 {
		t.Errorf("subuid's mode changed to %v", st.Mode())
	}
	if st, _ := os.Stat(f.GID); st.Mode().Perm() != 0o644 {
		t.Errorf("the new subgid's mode is %v", st.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("left in the directory: %v", ents)
	}
}

// TestIDMapRefusedSaysWhy: a file system that cannot be idmapped
// (overlayfs itself) fails with its type and the kernel named.
func TestIDMapRefusedSaysWhy(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	for _, d := range []string{"l", "u", "w", "m"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	m := filepath.Join(dir, "m")
	if err := unix.Mount("overlay", m, "overlay", 0, "lowerdir="+dir+"/l,upperdir="+dir+"/u,workdir="+dir+"/w"); err != nil {
		t.Skipf("no overlayfs here: %v", err)
	}
	defer unix.Unmount(m, unix.MNT_DETACH)
	ns, err := Open(mapping(300000), mapping(300000))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	_, err = CloneIDMapped(m, ns)
	if err == nil {
		t.Skip("this kernel idmaps overlayfs mounts: nothing refuses here")
	}
	var ie *IDMapError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "(overlay)") || !strings.Contains(err.Error(), "this kernel (") {
		t.Errorf("the refusal does not name the file system and kernel: %v", err)
	}
	t.Logf("refused: %v", err)
}
