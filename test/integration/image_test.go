package integration

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/image/imagetest"
	"github.com/berth-dev/berth/internal/image/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// engineEnv runs the engine CLI against its own state root.
type engineEnv struct {
	t     testing.TB
	bin   string
	root  string
	state string
	env   []string
	// isolation, when set, is added to every run and create
	// (forEachIsolation).
	isolation string
}

func newEngine(t testing.TB) *engineEnv { return newEngineIn(t, t.TempDir()) }

// newEngineIn is newEngine with its root, state and config files in dir.
func newEngineIn(t testing.TB, dir string) *engineEnv {
	bin := berthBin(t)
	e := &engineEnv{t: t, bin: bin, root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state")}
	e.env = append(os.Environ(),
		"BERTH_AUTH_FILE="+filepath.Join(dir, "auth.json"),
		"DOCKER_CONFIG="+filepath.Join(dir, "docker"),
		"BERTH_REGISTRY_CONFIG="+filepath.Join(dir, "registries.json"),
	)
	t.Cleanup(func() {
		// Leave no container running and nothing mounted in the temp
		// directory, whatever the test did.
		if _, err := os.Stat(filepath.Join(e.root, "engine")); err != nil {
			return
		}
		// Containers, networks with their firewall chains, mounts.
		if out, err := e.command("system", "reset", "--force").CombinedOutput(); err != nil {
			t.Errorf("system reset: %v: %s", err, out)
		}
	})
	return e
}

func (e *engineEnv) command(args ...string) *exec.Cmd {
	if e.isolation != "" && len(args) > 0 && (args[0] == "run" || args[0] == "create") {
		args = append([]string{args[0], "--isolation", e.isolation}, args[1:]...)
	}
	cmd := berthCommand(e.bin, append([]string{"--root", e.root, "--state", e.state}, args...)...)
	cmd.Env = e.env
	return cmd
}

// try runs berth and returns stdout, stderr and the error.
func (e *engineEnv) try(args ...string) (string, string, error) {
	e.t.Helper()
	cmd := e.command(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (e *engineEnv) run(args ...string) string {
	e.t.Helper()
	out, errOut, err := e.try(args...)
	if err != nil {
		e.t.Fatalf("berth %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// featureImage is a two-layer gzip image with the entries that unpackers
// get wrong: hard links, symlinks, setuid, owners, a whiteout, an opaque
// directory, a fifo, a device node, and empty files.
func featureImage(t testing.TB) imagetest.Image {
	base := imagetest.NewLayer(t, imagetest.Gzip, []imagetest.Entry{
		{Name: "bin/", Type: tar.TypeDir},
		{Name: "bin/app", Body: "#!/bin/sh\necho app\n", Mode: 0o4755},
		{Name: "bin/app-hard", Type: tar.TypeLink, Linkname: "bin/app"},
		{Name: "bin/sh", Type: tar.TypeSymlink, Linkname: "app"},
		{Name: "etc/", Type: tar.TypeDir, Mode: 0o750, UID: 0, GID: 42},
		{Name: "etc/gone", Body: "deleted above"},
		{Name: "etc/kept", Body: "kept", UID: 1000, GID: 1000, Mode: 0o600},
		{Name: "opaque/", Type: tar.TypeDir},
		{Name: "opaque/old", Body: "old"},
		{Name: "dev/", Type: tar.TypeDir},
		{Name: "dev/null", Type: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666},
		{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o600},
		{Name: "empty", Body: ""},
		{Name: "big", Body: strings.Repeat("0123456789abcdef", 64<<10)},
	})
	top := imagetest.NewLayer(t, imagetest.Gzip, []imagetest.Entry{
		{Name: "etc/", Type: tar.TypeDir, Mode: 0o750, UID: 0, GID: 42},
		{Name: "etc/.wh.gone"},
		{Name: "opaque/", Type: tar.TypeDir},
		{Name: "opaque/.wh..wh..opq"},
		{Name: "opaque/new", Body: "new"},
		{Name: "bin/app", Body: "#!/bin/sh\necho app v2\n", Mode: 0o755},
	})
	return imagetest.NewImage(t, "linux", "amd64", ocispec.ImageConfig{Cmd: []string{"/bin/app"}, Labels: map[string]string{"tier": "test"}}, base, top)
}

type imageRow struct {
	Repository, Tag, Digest, ID string
	Size                        string // docker's: "1.98MB"
}

func (e *engineEnv) images() []imageRow {
	e.t.Helper()
	rows, err := jsonLines[imageRow](e.run("images", "--no-trunc", "--format", "json"))
	if err != nil {
		e.t.Fatalf("images --format json: %v", err)
	}
	return rows
}

func TestImageCommands(t *testing.T) {
	e := newEngine(t)
	reg := registrytest.Start(t, registrytest.Options{})
	img := featureImage(t)
	img.Push(t, reg, "feature", "v1")
	ref := reg.Ref("feature", "v1")

	out, errOut, err := e.try("pull", ref)
	if err != nil {
		t.Fatalf("pull: %v\n%s", err, errOut)
	}
	if strings.TrimSpace(out) != ref {
		t.Fatalf("pull printed %q, want the name %q", out, ref)
	}
	// Not a terminal: one line per layer and phase, no escape sequences.
	if strings.Contains(errOut, "\x1b[") || strings.Count(errOut, ": Done (") != 2 {
		t.Fatalf("pull progress in a pipe:\n%s", errOut)
	}
	if out, errOut, _ := e.try("pull", "-q", ref); strings.TrimSpace(out) != ref || errOut != "" {
		t.Fatalf("pull -q: stdout %q stderr %q", out, errOut)
	}

	rows := e.images()
	if len(rows) != 1 || rows[0].Repository != reg.Addr+"/feature" || rows[0].Tag != "v1" || rows[0].ID != img.ConfigDesc.Digest.String() || rows[0].Size == "" || rows[0].Size == "0B" {
		t.Fatalf("images: %+v", rows)
	}
	e.run("tag", ref, "example.com/team/feature:copy")
	if q := strings.Fields(e.run("images", "-q")); len(q) != 1 || !strings.HasPrefix(img.ConfigDesc.Digest.Encoded(), q[0]) {
		t.Fatalf("images -q for one image with two names: %q", q)
	}
	if got := e.run("images", "--filter", "reference=example.com/*/*", "--format", "{{.Repository}}:{{.Tag}}"); strings.TrimSpace(got) != "example.com/team/feature:copy" {
		t.Fatalf("images --filter reference: %q", got)
	}
	if got := e.run("images", "--filter", "label=tier=test", "-q"); strings.TrimSpace(got) == "" {
		t.Fatal("images --filter label=tier=test found nothing")
	}
	if got := e.run("images", "--digests"); !strings.Contains(got, img.ManifestDesc.Digest.String()) {
		t.Fatalf("images --digests lacks the manifest digest:\n%s", got)
	}

	var inspect []struct {
		ID          string `json:"Id"`
		RepoTags    []string
		RepoDigests []string
		Os          string
		Config      struct{ Cmd []string }
		RootFS      struct{ Layers []string }
	}
	if err := json.Unmarshal([]byte(e.run("image", "inspect", "example.com/team/feature:copy")), &inspect); err != nil {
		t.Fatal(err)
	}
	if len(inspect) != 1 || inspect[0].ID != img.ConfigDesc.Digest.String() || len(inspect[0].RepoTags) != 2 ||
		len(inspect[0].RootFS.Layers) != 2 || inspect[0].Config.Cmd[0] != "/bin/app" {
		t.Fatalf("image inspect: %+v", inspect)
	}

	// Push under another repository of the same registry: blobs are
	// mounted, and the pushed image pulls back identical.
	e.run("push", "-q", ref, reg.Ref("pushed", "v2"))
	e2 := newEngine(t)
	e2.run("pull", "-q", reg.Ref("pushed", "v2"))
	if r := e2.images(); len(r) != 1 || r[0].ID != img.ConfigDesc.Digest.String() {
		t.Fatalf("pushed image pulled back as %+v", r)
	}

	// rmi by ID refuses an image with two names; by name it untags.
	if _, errOut, err := e.try("rmi", img.ConfigDesc.Digest.Encoded()[:12]); err == nil || !strings.Contains(errOut, "referenced by 2 names") {
		t.Fatalf("rmi by ID of a twice-named image: %v %s", err, errOut)
	}
	if out := e.run("rmi", "example.com/team/feature:copy"); !strings.Contains(out, "Untagged: example.com/team/feature:copy") || strings.Contains(out, "Deleted") {
		t.Fatalf("rmi of one name: %s", out)
	}
	if df := e.dfImages(); df.TotalCount != "1" || df.Size == "0B" {
		t.Fatalf("system df: %+v", df)
	}
	if out := e.run("rmi", ref); !strings.Contains(out, "Deleted: "+img.ConfigDesc.Digest.String()) {
		t.Fatalf("rmi: %s", out)
	}
	if df := e.dfImages(); df.TotalCount != "0" || df.Size != "0B" {
		t.Fatalf("system df after rmi: %+v", df)
	}
	if _, errOut, err := e.try("rmi", ref); err == nil || !strings.Contains(errOut, "no such image") {
		t.Fatalf("rmi of a removed image: %v %s", err, errOut)
	}
	if _, errOut, err := e.try("pull", reg.Ref("feature", "nope")); err == nil || !strings.Contains(errOut, "manifest unknown") {
		t.Fatalf("pull of a missing tag: %v %s", err, errOut)
	}
}

func TestLoginAndPrivatePull(t *testing.T) {
	e := newEngine(t)
	reg := registrytest.Start(t, registrytest.Options{TLS: true, Token: true, Users: map[string]string{"alice": "s3cret"}})
	featureImage(t).Push(t, reg, "private/app", "v1")
	cfg := fmt.Sprintf(`{"registries": {%q: {"ca_file": %q}}}`, reg.Addr, reg.CAFile)
	if err := os.WriteFile(envValue(e.env, "BERTH_REGISTRY_CONFIG"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := reg.Ref("private/app", "v1")
	if _, errOut, err := e.try("pull", "-q", ref); err == nil || !strings.Contains(strings.ToLower(errOut), "unauthorized") {
		t.Fatalf("anonymous pull of a private image: %v %s", err, errOut)
	}
	login := func(pass string) (string, error) {
		cmd := e.command("login", "-u", "alice", "--password-stdin", reg.Addr)
		cmd.Stdin = strings.NewReader(pass + "\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := login("wrong"); err == nil {
		t.Fatalf("login with a wrong password succeeded: %s", out)
	}
	if _, err := os.Stat(envValue(e.env, "BERTH_AUTH_FILE")); err == nil {
		t.Fatal("a failed login stored credentials")
	}
	if out, err := login("s3cret"); err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("login: %v %s", err, out)
	}
	if fi, err := os.Stat(envValue(e.env, "BERTH_AUTH_FILE")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("auth file: %v %v", fi, err)
	}
	e.run("pull", "-q", ref)
	e.run("logout", reg.Addr)
	e.run("rmi", ref)
	if _, _, err := e.try("pull", "-q", ref); err == nil {
		t.Fatal("pull after logout succeeded")
	}
}

func envValue(env []string, k string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			return v
		}
	}
	return ""
}

// throttle is a reverse proxy to the registry that slows blob bodies down,
// so that a test can kill a pull in the middle of one.
func throttle(t *testing.T, reg *registrytest.Registry, bytesPerSec int) string {
	u, _ := url.Parse(reg.URL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if strings.Contains(resp.Request.URL.Path, "/blobs/") && resp.Request.Method == http.MethodGet {
			resp.Body = &slowBody{resp.Body, bytesPerSec}
		}
		return nil
	}
	srv := &http.Server{Handler: proxy}
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type slowBody struct {
	io.ReadCloser
	rate int
}

func (s *slowBody) Read(p []byte) (int, error) {
	chunk := s.rate / 20
	if len(p) > chunk {
		p = p[:chunk]
	}
	time.Sleep(50 * time.Millisecond)
	return s.ReadCloser.Read(p)
}

func TestPullKilledMidDownloadResumes(t *testing.T) {
	e := newEngine(t)
	reg := registrytest.Start(t, registrytest.Options{})
	// 8 MiB of incompressible data, at 2 MiB/s through the proxy.
	random := make([]byte, 8<<20)
	if _, err := io.ReadFull(randReader(), random); err != nil {
		t.Fatal(err)
	}
	layer := imagetest.NewLayer(t, imagetest.Gzip, []imagetest.Entry{{Name: "random", Body: string(random)}})
	img := imagetest.NewImage(t, "linux", "amd64", ocispec.ImageConfig{}, layer)
	img.Push(t, reg, "big", "v1")
	slow := throttle(t, reg, 2<<20)

	cmd := e.command("pull", slow+"/big:v1")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ingest := filepath.Join(e.root, "content", "ingest")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if n := dirBytes(ingest); n > 1<<20 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no ingest grew past 1 MiB; stderr:\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if rows := e.images(); len(rows) != 0 {
		t.Fatalf("a killed pull left images %+v", rows)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.root, "snapshots", "layers", "sha256")); len(entries) != 0 {
		t.Fatalf("a killed pull left %d committed layers", len(entries))
	}
	// Again, at full speed: it resumes and the image is right.
	_, errOut, err := e.try("pull", slow+"/big:v1")
	if err != nil {
		t.Fatalf("second pull: %v\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "resuming at") {
		t.Errorf("second pull did not resume:\n%s", errOut)
	}
	dir := filepath.Join(e.root, "snapshots", "layers", "sha256", layer.DiffID.Encoded(), "fs", "random")
	got, err := os.ReadFile(dir)
	if err != nil || !bytes.Equal(got, random) {
		t.Fatalf("resumed layer content differs (%d bytes, %v)", len(got), err)
	}
	if rows := e.images(); len(rows) != 1 {
		t.Fatalf("images after the resumed pull: %+v", rows)
	}
}

func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func TestHostileLayerPull(t *testing.T) {
	e := newEngine(t)
	reg := registrytest.Start(t, registrytest.Options{})
	outside := filepath.Join(t.TempDir(), "outside")
	os.MkdirAll(outside, 0o755)
	evil := imagetest.NewLayer(t, imagetest.Gzip, []imagetest.Entry{
		{Name: "escape", Type: tar.TypeSymlink, Linkname: outside},
		{Name: "escape/pwned", Body: "pwned"},
		{Name: "../../../../../../" + strings.TrimPrefix(outside, "/") + "/dotdot", Body: "pwned"},
	})
	imagetest.NewImage(t, "linux", "amd64", ocispec.ImageConfig{}, evil).Push(t, reg, "evil", "v1")
	_, errOut, err := e.try("pull", reg.Ref("evil", "v1"))
	entries, _ := os.ReadDir(outside)
	if len(entries) != 0 {
		t.Fatalf("a hostile layer wrote outside its root: %v", entries)
	}
	if err == nil {
		// Confined rather than refused: the files must be inside the layer.
		t.Logf("hostile layer confined: %s", errOut)
		return
	}
	if !strings.Contains(errOut, "layer") {
		t.Fatalf("hostile layer error does not say which layer: %s", errOut)
	}
	t.Logf("hostile layer refused: %s", errOut)
}

// TestUnpackMatchesUmoci compares the tree berth unpacks (its layers
// stacked by overlayfs, as a container sees them) with umoci's unpack of
// the same image: paths, types, modes, owners, sizes, link targets and
// content hashes.
func TestUnpackMatchesUmoci(t *testing.T) {
	e := newEngine(t)
	for _, tool := range []string{"umoci", "skopeo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install %s)", tool, tool)
		}
	}
	reg := registrytest.Start(t, registrytest.Options{})
	// make bench sets BERTH_TEST_BENCH_LAYOUT to its image (an OCI layout of
	// five big layers of the host's files): compare on that one.
	if layout := os.Getenv("BERTH_TEST_BENCH_LAYOUT"); layout != "" {
		if out, err := exec.Command("skopeo", "copy", "--dest-tls-verify=false", "oci:"+layout+":latest", "docker://"+reg.Ref("bench", "latest")).CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy of the bench image: %v\n%s", err, out)
		}
		compareWithUmoci(t, e, reg.Ref("bench", "latest"))
		return
	}
	// A real tree besides the feature layers: Python's standard library.
	layers := featureImage(t).Layers
	if fi, err := os.Stat("/usr/lib/python3"); err == nil && fi.IsDir() {
		layers = append([]imagetest.Layer{imagetest.LayerFromTar(t, imagetest.Gzip, tarDir(t, "/usr/lib/python3"))}, layers...)
	}
	img := imagetest.NewImage(t, "linux", "amd64", ocispec.ImageConfig{}, layers...)
	img.Push(t, reg, "compare", "v1")
	compareWithUmoci(t, e, reg.Ref("compare", "v1"))
}

func compareWithUmoci(t *testing.T, e *engineEnv, ref string) {
	e.run("pull", "-q", ref)
	tmp := t.TempDir()
	layout := filepath.Join(tmp, "layout")
	if out, err := exec.Command("skopeo", "copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+layout+":img").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	bundle := filepath.Join(tmp, "bundle")
	if out, err := exec.Command("umoci", "unpack", "--image", layout+":img", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	var inspect []struct{ RootFS struct{ Layers []string } }
	json.Unmarshal([]byte(e.run("image", "inspect", ref)), &inspect)
	var lower []string
	for _, d := range inspect[0].RootFS.Layers {
		hx := strings.TrimPrefix(d, "sha256:")
		lower = append([]string{filepath.Join(e.root, "snapshots", "layers", "sha256", hx, "fs")}, lower...)
	}
	merged := filepath.Join(tmp, "merged")
	os.MkdirAll(merged, 0o755)
	if len(lower) == 1 {
		lower = append(lower, t.TempDir()) // overlay wants two lowerdirs without an upper
	}
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(lower, ":")); err != nil {
		t.Fatalf("mount overlay of berth's layers: %v", err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	want := treeOf(t, filepath.Join(bundle, "rootfs"))
	got := treeOf(t, merged)
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, "missing in berth: "+p)
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s: berth %s, umoci %s", p, g, w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "only in berth: "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		if len(diffs) > 30 {
			diffs = append(diffs[:30], fmt.Sprintf("... %d more", len(diffs)-30))
		}
		t.Fatalf("berth's tree differs from umoci's (%d entries compared):\n%s", len(want), strings.Join(diffs, "\n"))
	}
	t.Logf("%d entries identical to umoci's unpack", len(want))
}

// treeOf describes every entry under root: type and mode, owner, size,
// link target or content hash, device number.
func treeOf(t *testing.T, root string) map[string]string {
	out := map[string]string{}
	// Hard links are compared as groups of paths sharing an inode in this
	// view (nlink counts links hidden in lower layers too).
	groups := map[uint64][]string{}
	inodes := map[string]uint64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v uid=%d gid=%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += fmt.Sprintf(" size=%d sha256=%s", fi.Size(), hex.EncodeToString(sum[:8]))
			groups[st.Ino] = append(groups[st.Ino], rel)
			inodes[rel] = st.Ino
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode()&fs.ModeDevice != 0:
			desc += fmt.Sprintf(" dev=%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
		}
		if rel == "." {
			return nil // the roots' own modes differ by who made them
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel, ino := range inodes {
		if g := groups[ino]; len(g) > 1 {
			sort.Strings(g)
			out[rel] += " links=" + strings.Join(g, ",")
		}
	}
	return out
}

// tarDir is a tar of dir with paths relative to /, as an image layer of
// the host's files.
func tarDir(t testing.TB, dir string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&(fs.ModeSocket|fs.ModeDevice|fs.ModeNamedPipe) != 0 {
			return nil
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = strings.TrimPrefix(p, "/")
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uname, h.Gname = "", ""
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return buf.Bytes()
}

func TestSaveLoadCLI(t *testing.T) {
	e := newEngine(t)
	reg := registrytest.Start(t, registrytest.Options{})
	img := featureImage(t)
	img.Push(t, reg, "feature", "v1")
	ref := reg.Ref("feature", "v1")
	e.run("pull", "-q", ref)
	dir := t.TempDir()
	docker, oci := filepath.Join(dir, "docker.tar"), filepath.Join(dir, "oci.tar")
	e.run("save", "-o", docker, ref)
	e.run("save", "--format", "oci-archive", "-o", oci, ref)
	if out, err := exec.Command("skopeo", "inspect", "oci-archive:"+oci+":v1").CombinedOutput(); err != nil || !strings.Contains(string(out), img.ManifestDesc.Digest.String()) {
		t.Fatalf("skopeo inspect of berth's oci-archive: %v\n%s", err, out)
	}
	if out, err := exec.Command("skopeo", "inspect", "docker-archive:"+docker).CombinedOutput(); err != nil {
		t.Fatalf("skopeo inspect of berth's docker-archive: %v\n%s", err, out)
	}
	for _, archive := range []string{docker, oci} {
		e2 := newEngine(t)
		out := e2.run("load", "-i", archive)
		if !strings.Contains(out, "Loaded image: "+reg.Addr+"/feature:v1") {
			t.Fatalf("load %s: %s", filepath.Base(archive), out)
		}
		if rows := e2.images(); len(rows) != 1 || rows[0].ID != img.ConfigDesc.Digest.String() {
			t.Fatalf("after load of %s: %+v", filepath.Base(archive), rows)
		}
	}
	// stdin works too, and a truncated archive is refused with nothing left.
	e3 := newEngine(t)
	b, _ := os.ReadFile(docker)
	cmd := e3.command("load")
	cmd.Stdin = bytes.NewReader(b[:len(b)/2])
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("load of a truncated archive succeeded: %s", out)
	}
	if rows := e3.images(); len(rows) != 0 {
		t.Fatalf("a truncated load left images %+v", rows)
	}
}

// TestKilledRemoveLeavesConsistentStore kills rmi and prune with SIGKILL at
// varying moments and checks, each time, that every image still listed has
// all its blobs and layers, and that the next commands work.
func TestKilledRemoveLeavesConsistentStore(t *testing.T) {
	e := newEngine(t)
	reg := registrytest.Start(t, registrytest.Options{})
	one := featureImage(t)
	one.Push(t, reg, "one", "v1")
	extra := imagetest.NewLayer(t, imagetest.Gzip, []imagetest.Entry{{Name: "two", Body: strings.Repeat("2", 1<<20)}})
	two := imagetest.NewImage(t, "linux", "amd64", ocispec.ImageConfig{}, one.Layers[0], extra)
	two.Push(t, reg, "two", "v1")
	e.run("pull", "-q", reg.Ref("two", "v1"))
	for i := 0; i < 12; i++ {
		e.run("pull", "-q", reg.Ref("one", "v1"))
		args := []string{"rmi", reg.Ref("one", "v1")}
		if i%3 == 2 {
			e.run("rmi", reg.Ref("one", "v1"))
			args = []string{"image", "prune"}
		}
		cmd := e.command(args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i%6) * 3 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		checkStoreConsistent(t, e)
	}
	e.run("image", "prune")
	e.run("rmi", reg.Ref("two", "v1"))
	blobs, _ := filepath.Glob(filepath.Join(e.root, "content", "blobs", "*", "*"))
	if df := e.dfImages(); df.TotalCount != "0" || df.Size != "0B" || len(blobs) != 0 {
		t.Fatalf("after removing everything: %+v, blobs %v", df, blobs)
	}
}

// dfImages is the Images row of `system df --format json`.
func (e *engineEnv) dfImages() (row struct{ TotalCount, Active, Size, Reclaimable string }) {
	e.t.Helper()
	rows, err := jsonLines[struct{ Type, TotalCount, Active, Size, Reclaimable string }](e.run("system", "df", "--format", "json"))
	if err != nil || len(rows) != 4 || rows[0].Type != "Images" {
		e.t.Fatalf("system df --format json: %v %+v", err, rows)
	}
	row.TotalCount, row.Active, row.Size, row.Reclaimable = rows[0].TotalCount, rows[0].Active, rows[0].Size, rows[0].Reclaimable
	return row
}

// checkStoreConsistent asserts that every listed image's blobs and layers
// are present and complete.
func checkStoreConsistent(t *testing.T, e *engineEnv) {
	t.Helper()
	var inspect []struct {
		ID         string `json:"Id"`
		RootFS     struct{ Layers []string }
		Descriptor ocispec.Descriptor
	}
	blob := func(d string) string {
		return filepath.Join(e.root, "content", "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
	}
	for _, row := range e.images() {
		if err := json.Unmarshal([]byte(e.run("image", "inspect", row.Repository+":"+row.Tag)), &inspect); err != nil {
			t.Fatal(err)
		}
		in := inspect[0]
		// Descriptor is what the name resolved to: the manifest, or an
		// index with the image's manifest in it.
		blobs := []string{in.ID, in.Descriptor.Digest.String()}
		var m struct {
			Config    ocispec.Descriptor
			Manifests []ocispec.Descriptor
			Layers    []ocispec.Descriptor
		}
		b, _ := os.ReadFile(blob(in.Descriptor.Digest.String()))
		json.Unmarshal(b, &m)
		for _, md := range m.Manifests {
			var pm struct {
				Config ocispec.Descriptor
				Layers []ocispec.Descriptor
			}
			if b, err := os.ReadFile(blob(md.Digest.String())); err == nil && json.Unmarshal(b, &pm) == nil && pm.Config.Digest.String() == in.ID {
				blobs = append(blobs, md.Digest.String())
				m.Layers = pm.Layers
			}
		}
		if len(m.Layers) == 0 {
			t.Fatalf("image %s:%s: no manifest with layers from %s", row.Repository, row.Tag, in.Descriptor.Digest)
		}
		for _, l := range m.Layers {
			blobs = append(blobs, l.Digest.String())
		}
		for _, b := range blobs {
			if _, err := os.Stat(blob(b)); err != nil {
				t.Fatalf("image %s:%s lost blob %s: %v", row.Repository, row.Tag, b, err)
			}
		}
		for _, d := range in.RootFS.Layers {
			p := filepath.Join(e.root, "snapshots", "layers", "sha256", strings.TrimPrefix(d, "sha256:"), "info.json")
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("image %s:%s lost layer %s: %v", row.Repository, row.Tag, d, err)
			}
		}
	}
}

// run and create pull an image that is not here, as docker does, with
// --pull always|missing|never.
func TestEngineRunPullsMissingImage(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	src := newEngine(t)
	src.loadDemoImage()
	ref := reg.Ref("demo", "v1")
	src.run("push", "-q", demoImage, ref)

	e := newEngine(t)
	if code, _, errOut := e.exitCode("run", "--rm", "--pull", "never", ref, "true"); code != 125 || !strings.Contains(errOut, "--pull never") {
		t.Errorf("--pull never of a missing image: exit %d: %s", code, errOut)
	}
	out, errOut, err := e.try("run", "--rm", "--network", "none", ref, "echo", "ran")
	if err != nil || out != "ran\n" {
		t.Fatalf("run of an image that is not here: %v %q %s", err, out, errOut)
	}
	if !strings.Contains(errOut, "Unable to find image '"+ref+"' locally") || !strings.Contains(errOut, "Status: pulled") {
		t.Errorf("the implicit pull's messages: %q", errOut)
	}
	// Here now: no pull.
	if _, errOut, _ := e.try("run", "--rm", "--network", "none", ref, "true"); strings.Contains(errOut, "Pulling") {
		t.Errorf("a run of an image that is here pulled it: %q", errOut)
	}
	if _, errOut, _ := e.try("create", "--pull", "always", "--name", "c", ref); !strings.Contains(errOut, "Pulling") {
		t.Errorf("--pull always did not pull: %q", errOut)
	}
	if code, _, errOut := e.exitCode("run", "--rm", "--pull", "sometimes", ref, "true"); code != 125 || !strings.Contains(errOut, "always, missing or never") {
		t.Errorf("--pull sometimes: %d %s", code, errOut)
	}
	e.run("rm", "c")
}
