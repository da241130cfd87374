//go:build linux

package integration

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// layeredArchive writes a docker-archive of the demo image with layers
// added on top, each a map of path to content ("" for a directory),
// and returns its path.
func layeredArchive(t *testing.T, tag string, layers []map[string]string) string {
	t.Helper()
	files := demoArchiveFiles(t)
	var manifest []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("the demo image's manifest: %v", err)
	}
	var config map[string]any
	if err := json.Unmarshal(files[manifest[0].Config], &config); err != nil {
		t.Fatal(err)
	}
	rootfs := config["rootfs"].(map[string]any)
	diffIDs := rootfs["diff_ids"].([]any)
	history := config["history"].([]any)
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	add := func(name string, b []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		tw.Write(b)
	}
	names := []string{manifest[0].Layers[0]}
	add(names[0], files[manifest[0].Layers[0]])
	for i, l := range layers {
		var lb bytes.Buffer
		lw := tar.NewWriter(&lb)
		paths := make([]string, 0, len(l))
		for p := range l {
			paths = append(paths, p)
		}
		// Parents first (sorted: "d/" before "d/x").
		slices.Sort(paths)
		for _, p := range paths {
			if strings.HasSuffix(p, "/") {
				lw.WriteHeader(&tar.Header{Name: p, Mode: 0o755, Typeflag: tar.TypeDir})
				continue
			}
			lw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: int64(len(l[p])), Typeflag: tar.TypeReg})
			lw.Write([]byte(l[p]))
		}
		lw.Close()
		sum := sha256.Sum256(lb.Bytes())
		name := fmt.Sprintf("layer%d.tar", i)
		add(name, lb.Bytes())
		names = append(names, name)
		diffIDs = append(diffIDs, "sha256:"+hex.EncodeToString(sum[:]))
		history = append(history, map[string]any{"created": "1970-01-01T00:00:00Z", "created_by": "layer " + strconv.Itoa(i+1)})
	}
	rootfs["diff_ids"], config["history"] = diffIDs, history
	cb, _ := json.Marshal(config)
	add("config.json", cb)
	mb, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{tag}, "Layers": names}})
	add("manifest.json", mb)
	tw.Close()
	p := filepath.Join(t.TempDir(), "layered.tar")
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVMDeepImage: an image of 30 layers (more than a microVM has
// transports for) runs in a VM: its lowest 15 layers merged into one
// disk, the other 15 one disk each. The guest sees the files of the
// lowest and the highest layers, and whiteouts in the merged part (a
// file, an opaque directory) and above it (a file of the merged part)
// honoured; rmi removes the merged image with the layers' own. One boot.
func TestVMDeepImage(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.requireVM()
	var layers []map[string]string
	for i := 1; i < 30; i++ {
		l := map[string]string{"deep/": "", "deep/" + strconv.Itoa(i): "layer " + strconv.Itoa(i) + "\n"}
		switch i {
		case 2:
			l["deep/low-gone"], l["deep/mid-gone"] = "x", "x"
		case 4:
			l["deep/dir/"], l["deep/dir/a"] = "", "a"
		case 9: // in the merged part (layers 0-14)
			l["deep/.wh.low-gone"] = ""
		case 12: // an opaque directory in the merged part
			l["deep/dir/"], l["deep/dir/.wh..wh..opq"], l["deep/dir/b"] = "", "", "b"
		case 20: // above the merged image, deleting a file of it
			l["deep/.wh.mid-gone"] = ""
		}
		layers = append(layers, l)
	}
	e.run("load", "-q", "-i", layeredArchive(t, "berth-test/vm-deep:1", layers))
	out, errOut, err := e.try("run", "--rm", "--isolation", "vm", "berth-test/vm-deep:1", "sh", "-c",
		`cat /deep/1 /deep/29; ls /deep/dir; ls /deep/low-gone /deep/mid-gone 2>&1 | grep -c 'No such file'; ls /deep | wc -l; for f in /sys/block/*/serial; do cat $f; echo; done | grep -c '^berth-l'; test -x /bin/busybox && echo busybox`)
	if want := "layer 1\nlayer 29\nb\n2\n30\n16\nbusybox\n"; err != nil || out != want {
		t.Errorf("a 30-layer image in a VM: %q, %v (%s); want %q: the lowest and highest layers' files, the whiteouts honoured, 16 layer disks (the writable disk beside them)", out, err, errOut, want)
	}
	merged, _ := filepath.Glob(filepath.Join(e.root, "vm", "erofs", "merged-*.img"))
	perLayer, _ := filepath.Glob(filepath.Join(e.root, "vm", "erofs", "sha256-*.img"))
	if len(merged) != 1 || len(perLayer) != 15 {
		t.Errorf("layer images after the run: %d merged, %d of single layers; want 1 and 15", len(merged), len(perLayer))
	}
	e.run("rmi", "berth-test/vm-deep:1")
	merged, _ = filepath.Glob(filepath.Join(e.root, "vm", "erofs", "merged-*"))
	perLayer, _ = filepath.Glob(filepath.Join(e.root, "vm", "erofs", "sha256-*.img"))
	if len(merged) != 0 || len(perLayer) != 0 {
		t.Errorf("after rmi: merged files %v, %d single-layer images left", merged, len(perLayer))
	}
	e.checkNothingLeft()
	e.checkNoVMLeft()
}

// TestVMWritesKept: a VM container's writes (a new file, a deleted image
// file) live on its own disk and survive stop and start, as docker keeps
// a container's changes; the disk is sparse and the host never mounts it:
// cp and export of the stopped container boot its VM for its files
// (without its network or process) and see its writes, a file cp puts in
// is there at the next start, diff lists them and commit makes a layer
// of them from the guest, and rm removes the disk.
func TestVMWritesKept(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.requireVM()
	e.run("run", "--isolation", "vm", "--network", "none", "--name", "vmkeep", demoImage, "sh", "-c",
		`if [ -e /kept ]; then cat /kept; cat /in 2>/dev/null; ls /bin/vi 2>&1 || true; else echo kept > /kept; rm /bin/vi; echo first; fi`)
	id := e.inspect("vmkeep").ID
	disk := filepath.Join(e.root, "containers", id, "vm-upper.ext4")
	var st syscall.Stat_t
	if err := syscall.Stat(disk, &st); err != nil {
		t.Fatalf("the VM container's disk: %v", err)
	}
	if st.Size < 1<<30 || st.Blocks*512 > 256<<20 {
		t.Errorf("the VM container's disk: %d bytes, %d allocated; want a sparse file of GiBs", st.Size, st.Blocks*512)
	}
	// cp and export of the stopped container: its writes, from its disk.
	dir := t.TempDir()
	e.run("cp", "vmkeep:/kept", dir)
	if b, err := os.ReadFile(filepath.Join(dir, "kept")); err != nil || string(b) != "kept\n" {
		t.Errorf("cp out of the stopped VM container: %q, %v; want what it wrote", b, err)
	}
	in := filepath.Join(dir, "in")
	if err := os.WriteFile(in, []byte("from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.run("cp", in, "vmkeep:/in")
	tarPath := filepath.Join(dir, "x.tar")
	e.run("export", "-o", tarPath, "vmkeep")
	data, err := os.ReadFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, n := range tarNames(t, data) {
		names[strings.TrimSuffix(strings.TrimPrefix(n, "./"), "/")] = true
	}
	if !names["kept"] || !names["in"] || names["bin/vi"] || !names["bin/sh"] {
		t.Errorf("export of the stopped VM container: kept %v, in %v, bin/vi %v (deleted), bin/sh %v", names["kept"], names["in"], names["bin/vi"], names["bin/sh"])
	}
	if st := e.inspect("vmkeep").State; st.Status != "exited" {
		t.Errorf("after cp and export the container is %q, want exited", st.Status)
	}
	e.checkNoVMLeft()
	// A path in a volume is refused (the VM booted for files does not
	// mount it); no VM is booted to say so.
	e.run("create", "--isolation", "vm", "--network", "none", "-v", "vmkeepvol:/data", "--name", "vmvol", demoImage, "true")
	if _, errOut, err := e.try("cp", in, "vmvol:/data/in"); err == nil || !strings.Contains(errOut, "in its mount /data") {
		t.Errorf("cp into a volume of a stopped VM container: %v (%s), want a refusal naming the mount", err, errOut)
	}
	e.run("rm", "-v", "vmvol")
	e.run("volume", "rm", "vmkeepvol")
	if out := e.run("diff", "vmkeep"); !strings.Contains(out, "A /kept\n") || !strings.Contains(out, "A /in\n") || !strings.Contains(out, "C /bin\nD /bin/vi\n") {
		t.Errorf("diff of the stopped VM container: %q; want its writes, cp's and its deletion", out)
	}
	// commit writes the layer in the guest; the image runs anywhere
	// (here under linux isolation) with the VM container's changes.
	e.run("commit", "vmkeep", "berth-test/vmkeep:1")
	if out, errOut, err := e.try("run", "--rm", "--isolation", "linux", "--network", "none", "berth-test/vmkeep:1", "sh", "-c", "cat /kept /in; ls /bin/vi 2>&1 || true"); err != nil || !strings.HasPrefix(out, "kept\nfrom-host\n") || !strings.Contains(out, "No such file") {
		t.Errorf("the image committed from the stopped VM container: %q, %v (%s); want its writes, cp's and its deletion", out, err, errOut)
	}
	e.run("rmi", "berth-test/vmkeep:1")
	out, errOut, err := e.try("start", "-a", "vmkeep")
	if err != nil || !strings.HasPrefix(out, "kept\nfrom-host\n") || !strings.Contains(out, "No such file") {
		t.Errorf("start of a stopped VM container: %q, %v (%s); want the file it wrote, the one cp put in, and the one it deleted still gone", out, err, errOut)
	}
	if logs := e.run("logs", "vmkeep"); !strings.HasPrefix(logs, "first\nkept\n") {
		t.Errorf("logs of both runs: %q", logs)
	}
	e.run("rm", "vmkeep")
	if _, err := os.Stat(disk); !os.IsNotExist(err) {
		t.Errorf("the VM container's disk after rm: %v", err)
	}
	e.checkNothingLeft()
	e.checkNoVMLeft()
}
