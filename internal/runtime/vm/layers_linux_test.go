package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime"
)

// An image deeper than maxLayerDisks gets its lowest layers merged into
// one EROFS image (whiteouts and opaque directories applied: nothing
// lies below it) under one image per upper layer; the merged image is
// made once per chain of digests and pruned when one of its layers goes.
func TestLayerDisksMergesTheLowest(t *testing.T) {
	for _, tool := range []string{"mkfs.erofs", "dump.erofs", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s: %v", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("an overlay mount and whiteout nodes need root")
	}
	src, cache := t.TempDir(), t.TempDir()
	n := maxLayerDisks + 4 // 5 merged, 15 on their own
	var layers []runtime.Layer
	for i := 0; i < n; i++ {
		dir := filepath.Join(src, strconv.Itoa(i))
		os.MkdirAll(filepath.Join(dir, "d"), 0o755)
		os.WriteFile(filepath.Join(dir, "f"+strconv.Itoa(i)), []byte("layer "+strconv.Itoa(i)), 0o644)
		switch i {
		case 0:
			os.WriteFile(filepath.Join(dir, "gone"), nil, 0o644)
			os.WriteFile(filepath.Join(dir, "d", "old"), nil, 0o644)
		case 2: // a whiteout and an opaque directory inside the merged part
			if err := unix.Mknod(filepath.Join(dir, "gone"), unix.S_IFCHR, 0); err != nil {
				t.Fatal(err)
			}
			if err := unix.Setxattr(filepath.Join(dir, "d"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
				t.Skipf("trusted xattrs here: %v", err)
			}
			os.WriteFile(filepath.Join(dir, "d", "new"), nil, 0o644)
		}
		layers = append(layers, runtime.Layer{Digest: fmt.Sprintf("sha256:%064x", i), Dir: dir})
	}
	disks, err := LayerDisks(context.Background(), cache, layers)
	if err != nil {
		t.Fatal(err)
	}
	if len(disks) != maxLayerDisks || !strings.HasPrefix(filepath.Base(disks[0]), mergedPrefix) || disks[1] != filepath.Join(cache, "erofs", fmt.Sprintf("sha256-%064x.img", 5)) {
		t.Fatalf("%d disks %v, want %d: the merged lowest 5 then one per layer from the 6th", len(disks), disks, maxLayerDisks)
	}
	ls, err := exec.Command("dump.erofs", "--path=/", "--ls", disks[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("dump.erofs: %v: %s", err, ls)
	}
	root := string(ls)
	for _, want := range []string{"f0", "f4", "d"} {
		if !strings.Contains(root, " "+want+"\n") {
			t.Errorf("the merged image's root lacks %s:\n%s", want, root)
		}
	}
	for _, unwanted := range []string{"f5", "gone"} {
		if strings.Contains(root, " "+unwanted+"\n") {
			t.Errorf("the merged image's root has %s:\n%s", unwanted, root)
		}
	}
	if d, _ := exec.Command("dump.erofs", "--path=/d", "--ls", disks[0]).CombinedOutput(); !strings.Contains(string(d), " new\n") || strings.Contains(string(d), " old\n") {
		t.Errorf("the opaque directory in the merged image:\n%s", d)
	}
	// Made once: the same chain answers the same file.
	st, _ := os.Stat(disks[0])
	again, err := LayerDisks(context.Background(), cache, layers)
	if err != nil || again[0] != disks[0] {
		t.Fatalf("a second call: %v, %v", again, err)
	}
	if st2, _ := os.Stat(again[0]); !os.SameFile(st, st2) {
		t.Error("the merged image was made again")
	}
	// Pruned when one of its layers is gone, kept while all are there.
	d := &Driver{Cache: cache}
	gone := layers[3].Digest
	if removed, err := d.PruneLayerImages(func(dg string) bool { return true }); err != nil || removed != 0 {
		t.Errorf("prune with every layer there: %d removed, %v", removed, err)
	}
	if removed, err := d.PruneLayerImages(func(dg string) bool { return dg != gone }); err != nil || removed != 1 {
		t.Errorf("prune without layer 3: %d removed, %v; want 1 (the merged image holding it)", removed, err)
	}
	if _, err := os.Stat(disks[0]); err == nil {
		t.Error("the merged image outlived its layer")
	}
	left, _ := filepath.Glob(filepath.Join(cache, "erofs", mergedPrefix+"*"))
	if len(left) != 0 {
		t.Errorf("left after pruning the merged image: %v", left)
	}
}
