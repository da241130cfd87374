//go:build linux

package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/image/imagetest"
	"github.com/berth-dev/berth/internal/image/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// exportTree describes each entry of a container export: type, mode,
// owner, size and content hash or link target; hard links as the path
// they link to (podman may pick another member of the group, so groups
// are compared as sets below).
func exportTree(t *testing.T, path string) (map[string]string, [][]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	groups := map[string][]string{}
	clean := func(n string) string {
		return strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(n, "./"), "/"), "/")
	}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		name := clean(h.Name)
		if name == "" || name == "." {
			continue
		}
		desc := fmt.Sprintf("type=%c mode=%o uid=%d gid=%d", h.Typeflag, h.Mode&0o7777, h.Uid, h.Gid)
		switch h.Typeflag {
		case tar.TypeReg:
			sum := sha256.New()
			io.Copy(sum, tr)
			desc += fmt.Sprintf(" size=%d sha256=%s", h.Size, hex.EncodeToString(sum.Sum(nil))[:16])
			groups[name] = append(groups[name], name)
		case tar.TypeLink:
			target := clean(h.Linkname)
			desc = out[target]
			groups[target] = append(groups[target], name)
		case tar.TypeSymlink:
			desc += " -> " + h.Linkname
		case tar.TypeChar, tar.TypeBlock:
			desc += fmt.Sprintf(" dev=%d:%d", h.Devmajor, h.Devminor)
		}
		out[name] = desc
	}
	var hard [][]string
	for _, g := range groups {
		if len(g) > 1 {
			sort.Strings(g)
			hard = append(hard, g)
		}
	}
	sort.Slice(hard, func(i, j int) bool { return hard[i][0] < hard[j][0] })
	return out, hard
}

// TestExportMatchesPodman exports a container made from the images
// issue's comparison image (Python's standard library plus the layers
// unpackers get wrong; make bench's image when BERTH_TEST_BENCH_LAYOUT is
// set) and compares it with podman's export of a container made from the
// same image.
func TestExportMatchesPodman(t *testing.T) {
	e := newEngine(t)
	for _, tool := range []string{"podman", "skopeo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install %s)", tool, tool)
		}
	}
	reg := registrytest.Start(t, registrytest.Options{})
	ref := reg.Ref("compare", "v1")
	linkEntries := map[string]bool{} // hard links in the image's layers
	if layout := os.Getenv("BERTH_TEST_BENCH_LAYOUT"); layout != "" {
		if out, err := exec.Command("skopeo", "copy", "--dest-tls-verify=false", "oci:"+layout+":latest", "docker://"+ref).CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy of the bench image: %v\n%s", err, out)
		}
	} else {
		layers := featureImage(t).Layers
		for _, l := range layers {
			zr, err := gzip.NewReader(bytes.NewReader(l.Blob))
			if err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(zr)
			for h, err := tr.Next(); err == nil; h, err = tr.Next() {
				if h.Typeflag == tar.TypeLink {
					linkEntries[strings.TrimPrefix(h.Name, "./")] = true
				}
			}
		}
		if fi, err := os.Stat("/usr/lib/python3"); err == nil && fi.IsDir() {
			layers = append([]imagetest.Layer{imagetest.LayerFromTar(t, imagetest.Gzip, tarDir(t, "/usr/lib/python3"))}, layers...)
		}
		imagetest.NewImage(t, "linux", "amd64", ocispec.ImageConfig{Cmd: []string{"/bin/true"}}, layers...).Push(t, reg, "compare", "v1")
	}
	tmp := t.TempDir()
	// berth: pull, create, export.
	e.run("pull", "-q", ref)
	e.run("create", "--name", "exp", ref)
	berthTar := filepath.Join(tmp, "berth.tar")
	e.run("export", "-o", berthTar, "exp")

	// podman, in its own stores; the image comes as an archive (podman
	// pull and load keep a cache under /var/lib/containers whatever
	// --root says: run it in a private mount namespace with that
	// directory on a tmpfs).
	archive := filepath.Join(tmp, "image.tar")
	if out, err := exec.Command("skopeo", "copy", "--src-tls-verify=false", "docker://"+ref, "docker-archive:"+archive+":compare:v1").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy to an archive: %v\n%s", err, out)
	}
	podmanTar := filepath.Join(tmp, "podman.tar")
	// podman refuses a run root path over 50 characters (TMPDIR may be
	// long, as under make bench): its stores go in a short directory.
	pdir, err := os.MkdirTemp("/tmp", "bpx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("rm", "-rf", pdir).Run() })
	script := fmt.Sprintf(`set -e
mount -t tmpfs tmpfs /var/lib/containers 2>/dev/null || { mkdir -p /var/lib/containers && mount -t tmpfs tmpfs /var/lib/containers; }
p() { podman --root %[1]s/proot --runroot %[1]s/prun --tmpdir %[1]s/ptmp --storage-driver vfs --events-backend file --cgroup-manager cgroupfs "$@"; }
p load -q -i %[2]s >/dev/null
p create --name exp --network none localhost/compare:v1 /bin/true >/dev/null 2>&1 || p create --name exp --network none compare:v1 /bin/true >/dev/null
p export -o %[3]s exp
p rm -f exp >/dev/null
`, pdir, archive, podmanTar)
	if out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("podman export: %v\n%s", err, out)
	}

	got, gotLinks := exportTree(t, berthTar)
	want, wantLinks := exportTree(t, podmanTar)
	// What each engine adds at create: podman its /run/.containerenv and
	// mount points; berth nothing. Those are not the image's tree.
	extra := func(p string) bool {
		switch p {
		case "run", "run/.containerenv", "etc", "etc/hosts", "etc/hostname", "etc/resolv.conf", "dev", "proc", "sys", "run/secrets":
			return true
		}
		return false
	}
	// A hard link whose own tar header carries another mode than its
	// target: podman (containers/storage) applies the link's header to the
	// shared inode, berth and umoci (TestUnpackMatchesUmoci) keep the
	// target's, as tar does. Such entries are compared without the mode.
	inGroup := linkEntries
	for _, g := range gotLinks {
		for _, p := range g {
			inGroup[p] = true
		}
	}
	noMode := func(d string) string {
		f := strings.Fields(d)
		var out []string
		for _, x := range f {
			if !strings.HasPrefix(x, "mode=") {
				out = append(out, x)
			}
		}
		return strings.Join(out, " ")
	}
	var diffs, known []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok && !extra(p):
			diffs = append(diffs, "missing in berth's export: "+p)
		case ok && g != w && !extra(p) && inGroup[p] && noMode(g) == noMode(w):
			known = append(known, fmt.Sprintf("%s: berth %s, podman %s", p, g, w))
		case ok && g != w && !extra(p):
			diffs = append(diffs, fmt.Sprintf("%s: berth %s, podman %s", p, g, w))
		}
	}
	for _, k := range known {
		t.Logf("hard link whose mode podman takes from the link's header: %s", k)
	}
	for p := range got {
		if _, ok := want[p]; !ok && !extra(p) {
			diffs = append(diffs, "only in berth's export: "+p)
		}
	}
	if fmt.Sprint(gotLinks) != fmt.Sprint(wantLinks) {
		diffs = append(diffs, fmt.Sprintf("hard-link groups: berth %v, podman %v", gotLinks, wantLinks))
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		if len(diffs) > 30 {
			diffs = append(diffs[:30], fmt.Sprintf("... %d more", len(diffs)-30))
		}
		t.Fatalf("berth's export differs from podman's (%d entries):\n%s", len(want), strings.Join(diffs, "\n"))
	}
	t.Logf("%d entries compared with podman's export: identical but for %d known (%d hard-link groups)", len(want), len(known), len(wantLinks))
}
