package image_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/archive"
	"github.com/berth-dev/berth/internal/image/imagetest"
	"github.com/berth-dev/berth/internal/image/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func requireSkopeo(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("needs skopeo")
	}
}

func skopeo(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("skopeo", append([]string{"--insecure-policy"}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// pulled is the test image pushed to a fresh registry and pulled into a
// fresh service.
type pulled struct {
	reg  *registrytest.Registry
	img  imagetest.Image
	s    *image.Service
	rec  image.Record
	name string
}

func pullTestImage(t *testing.T) pulled {
	t.Helper()
	reg := registrytest.Start(t, registrytest.Options{})
	img := testImage(t, "amd64")
	img.Push(t, reg, "test/app", "v1")
	s := newService(t, t.TempDir(), nil)
	rec, err := s.Pull(context.Background(), reg.Ref("test/app", "v1"), image.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pulled{reg: reg, img: img, s: s, rec: rec, name: reg.Ref("test/app", "v1")}
}

func saveFile(t *testing.T, s *image.Service, format image.ArchiveFormat, names ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.Save(context.Background(), f, names, format); err != nil {
		t.Fatal(err)
	}
	return p
}

func loadFile(t *testing.T, s *image.Service, p string, opts image.LoadOptions) ([]image.Record, error) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return s.Load(context.Background(), f, opts)
}

// checkUnpacked checks a loaded record against testImage's layers and the
// files in their snapshots.
func checkUnpacked(t *testing.T, s *image.Service, rec image.Record, img imagetest.Image) {
	t.Helper()
	if rec.ID() != img.ConfigDesc.Digest.String() {
		t.Fatalf("image ID %s, want the config digest %s", rec.ID(), img.ConfigDesc.Digest)
	}
	if len(rec.DiffIDs) != len(img.Layers) || len(rec.Layers) != len(img.Layers) {
		t.Fatalf("%d diffIDs, %d layers; want %d", len(rec.DiffIDs), len(rec.Layers), len(img.Layers))
	}
	for i, l := range img.Layers {
		if rec.DiffIDs[i] != l.DiffID.String() {
			t.Errorf("diffID %d: %s, want %s", i, rec.DiffIDs[i], l.DiffID)
		}
		if _, err := s.Content().Info(rec.Layers[i].Digest.String()); err != nil {
			t.Errorf("layer blob %d: %v", i, err)
		}
	}
	if rec.Platform != "linux/amd64" {
		t.Errorf("platform %q", rec.Platform)
	}
	dir := func(i int) string {
		d, err := s.Snapshots().Dir(rec.DiffIDs[i])
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if b, err := os.ReadFile(filepath.Join(dir(0), "bin/tool")); err != nil || !strings.Contains(string(b), "amd64") {
		t.Errorf("bin/tool: %q %v", b, err)
	}
	wi, err := os.Lstat(filepath.Join(dir(1), "etc/old.conf"))
	if err != nil || wi.Mode()&os.ModeCharDevice == 0 || wi.Sys().(*syscall.Stat_t).Rdev != 0 {
		t.Errorf("etc/old.conf whiteout: %v %v", wi, err)
	}
	if st, _ := os.Stat(filepath.Join(dir(2), "data/blob")); st == nil || st.Size() != 300<<10 {
		t.Errorf("data/blob: %v", st)
	}
}

// tarNames lists the entries of a tar file.
func tarNames(t *testing.T, p string) []string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

func tarFile(t *testing.T, p, name string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s in the archive (%v)", p, name, err)
		}
		if h.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

type skopeoInspect struct {
	Digest   string
	RepoTags []string
	Layers   []string
}

func inspect(t *testing.T, src string) skopeoInspect {
	t.Helper()
	var out skopeoInspect
	b := skopeo(t, "inspect", src)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", src, err, b)
	}
	return out
}

func TestSaveArchivesReadBySkopeo(t *testing.T) {
	requireRoot(t)
	requireSkopeo(t)
	p := pullTestImage(t)
	t.Logf("%s", bytes.TrimSpace(skopeo(t, "--version")))

	// A second image sharing the base layer, so that the archive holds
	// two images and one blob shared by both.
	extra := imagetest.NewLayer(t, imagetest.Gzip, []imagetest.Entry{{Name: "two", Body: "2"}})
	two := imagetest.NewImage(t, "linux", "amd64", ocispec.ImageConfig{}, p.img.Layers[0], extra)
	two.Push(t, p.reg, "test/two", "v2")
	if _, err := p.s.Pull(context.Background(), p.reg.Ref("test/two", "v2"), image.PullOptions{}); err != nil {
		t.Fatal(err)
	}

	oci := saveFile(t, p.s, image.OCIArchive, p.name, p.reg.Ref("test/two", "v2"))
	names := tarNames(t, oci)
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("entry %s written twice", n)
		}
		seen[n] = true
	}
	if !seen["oci-layout"] || !seen["index.json"] || !seen["blobs/sha256/"+p.img.Layers[0].Desc.Digest.Encoded()] {
		t.Fatalf("OCI archive entries %v", names)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(tarFile(t, oci, "index.json"), &idx); err != nil || len(idx.Manifests) != 2 {
		t.Fatalf("index.json: %+v %v", idx, err)
	}
	if a := idx.Manifests[0].Annotations; a[ocispec.AnnotationRefName] != "v1" || a["io.containerd.image.name"] != p.rec.Name {
		t.Errorf("index.json annotations %v", a)
	}

	got := inspect(t, "oci-archive:"+oci+":v1")
	if got.Digest != p.img.ManifestDesc.Digest.String() {
		t.Errorf("skopeo sees manifest %s, want %s", got.Digest, p.img.ManifestDesc.Digest)
	}
	if len(got.Layers) != 3 {
		t.Fatalf("skopeo sees layers %v", got.Layers)
	}
	for i, l := range p.img.Layers {
		if got.Layers[i] != l.Desc.Digest.String() {
			t.Errorf("skopeo layer %d: %s, want %s", i, got.Layers[i], l.Desc.Digest)
		}
	}
	if got := inspect(t, "oci-archive:"+oci+":v2"); got.Digest != two.ManifestDesc.Digest.String() {
		t.Errorf("second image: skopeo sees %s, want %s", got.Digest, two.ManifestDesc.Digest)
	}
	dst := filepath.Join(t.TempDir(), "layout")
	skopeo(t, "copy", "oci-archive:"+oci+":v1", "oci:"+dst+":copied")
	// (skopeo compresses the uncompressed layer on the way.)
	if _, err := os.Stat(filepath.Join(dst, "blobs/sha256", p.img.Layers[0].Desc.Digest.Encoded())); err != nil {
		t.Errorf("skopeo copy to oci: %v", err)
	}
	// A single-image archive needs no tag.
	single := saveFile(t, p.s, image.OCIArchive, p.rec.ID()[7:19])
	if got := inspect(t, "oci-archive:"+single); got.Digest != p.img.ManifestDesc.Digest.String() {
		t.Errorf("archive saved by ID prefix: %s", got.Digest)
	}

	dock := saveFile(t, p.s, image.DockerArchive, p.name, p.reg.Ref("test/two", "v2"))
	var man []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(tarFile(t, dock, "manifest.json"), &man); err != nil || len(man) != 2 {
		t.Fatalf("manifest.json: %+v %v", man, err)
	}
	if len(man[0].RepoTags) != 1 || man[0].RepoTags[0] != p.reg.Addr+"/test/app:v1" {
		t.Errorf("RepoTags %v", man[0].RepoTags)
	}
	t.Logf("docker-archive entries: %v", tarNames(t, dock))
	got = inspect(t, "docker-archive:"+dock+":"+p.reg.Addr+"/test/app:v1")
	if len(got.Layers) != 3 {
		t.Fatalf("skopeo sees docker-archive layers %v", got.Layers)
	}
	for i, l := range p.img.Layers {
		// Uncompressed in a docker archive: the layer digest is the diffID.
		if got.Layers[i] != l.DiffID.String() {
			t.Errorf("docker-archive layer %d: %s, want %s", i, got.Layers[i], l.DiffID)
		}
	}
	// skopeo reads every layer (and checks it against the config).
	skopeo(t, "copy", "docker-archive:"+dock+":"+p.reg.Addr+"/test/two:v2", "oci:"+filepath.Join(t.TempDir(), "d")+":x")
	var cfg []byte
	if cfg = skopeo(t, "inspect", "--config", "--raw", "docker-archive:"+dock+":"+p.reg.Addr+"/test/app:v1"); !bytes.Equal(bytes.TrimSpace(cfg), p.img.Config) {
		t.Errorf("docker-archive config differs:\n%s", cfg)
	}
}

func TestLoadSkopeoArchives(t *testing.T) {
	requireRoot(t)
	requireSkopeo(t)
	reg := registrytest.Start(t, registrytest.Options{})
	img := gzipOnly(t, testImage(t, "amd64"))
	img.Push(t, reg, "test/app", "v1")
	src := "docker://" + reg.Addr + "/test/app:v1"
	dir := t.TempDir()
	ociTar, dockTar := filepath.Join(dir, "x.tar"), filepath.Join(dir, "y.tar")
	skopeo(t, "copy", "--src-tls-verify=false", src, "oci-archive:"+ociTar+":test/app:v1")
	skopeo(t, "copy", "--src-tls-verify=false", src, "docker-archive:"+dockTar+":test/app:v1")

	for _, tc := range []struct{ name, file string }{{"oci", ociTar}, {"docker", dockTar}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newService(t, t.TempDir(), nil)
			recs, err := loadFile(t, s, tc.file, image.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || recs[0].Name != "docker.io/test/app:v1" {
				t.Fatalf("records %+v", recs)
			}
			checkUnpacked(t, s, recs[0], img)
			// (skopeo gzips the uncompressed layer into an oci-archive, so
			// the manifest is its own.)
			if tc.name == "oci" && recs[0].Layers[2].MediaType != ocispec.MediaTypeImageLayerGzip {
				t.Errorf("oci-archive layer media type %s", recs[0].Layers[2].MediaType)
			}
			if tc.name == "docker" && recs[0].Layers[1].MediaType != ocispec.MediaTypeImageLayer {
				t.Errorf("docker-archive layer media type %s", recs[0].Layers[1].MediaType)
			}
			list, err := s.Get(context.Background(), "test/app:v1")
			if err != nil || len(list) != 1 || list[0].ID() != img.ConfigDesc.Digest.String() {
				t.Fatalf("Get: %v %v", list, err)
			}
			if ing, _ := s.Content().Ingests(); len(ing) != 0 {
				t.Errorf("ingests left: %v", ing)
			}
		})
	}
}

// gzipOnly is img with its zstd layers recompressed with gzip: skopeo 1.9
// refuses to write zstd layers into a docker-archive.
func gzipOnly(t *testing.T, img imagetest.Image) imagetest.Image {
	t.Helper()
	var layers []imagetest.Layer
	for _, l := range img.Layers {
		if l.Desc.MediaType == ocispec.MediaTypeImageLayerZstd {
			dr, _, err := archive.DecompressStream(bytes.NewReader(l.Blob))
			if err != nil {
				t.Fatal(err)
			}
			tb, err := io.ReadAll(dr)
			dr.Close()
			if err != nil {
				t.Fatal(err)
			}
			l = imagetest.LayerFromTar(t, imagetest.Gzip, tb)
		}
		layers = append(layers, l)
	}
	var cfg ocispec.Image
	json.Unmarshal(img.Config, &cfg)
	return imagetest.NewImage(t, cfg.OS, cfg.Architecture, cfg.Config, layers...)
}

func TestSaveLoadRoundTrip(t *testing.T) {
	requireRoot(t)
	p := pullTestImage(t)
	for _, tc := range []struct {
		name   string
		format image.ArchiveFormat
		gzip   bool
	}{{"oci", image.OCIArchive, false}, {"docker", image.DockerArchive, false}, {"oci-gzip", image.OCIArchive, true}, {"docker-gzip", image.DockerArchive, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			var w io.Writer = &buf
			var zw *gzip.Writer
			if tc.gzip {
				zw = gzip.NewWriter(&buf)
				w = zw
			}
			if err := p.s.Save(context.Background(), w, []string{p.name}, tc.format); err != nil {
				t.Fatal(err)
			}
			if zw != nil {
				zw.Close()
			}
			s := newService(t, t.TempDir(), nil)
			recs, err := s.Load(context.Background(), &buf, image.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || recs[0].Name != p.rec.Name {
				t.Fatalf("records %+v", recs)
			}
			checkUnpacked(t, s, recs[0], p.img)
			if tc.format == image.OCIArchive && recs[0].Manifest.Digest != p.rec.Manifest.Digest {
				t.Errorf("manifest %s, want %s", recs[0].Manifest.Digest, p.rec.Manifest.Digest)
			}
			// Loading again finds everything there and changes nothing.
			var again bytes.Buffer
			if err := s.Save(context.Background(), &again, []string{recs[0].Name}, tc.format); err != nil {
				t.Fatal(err)
			}
			recs2, err := s.Load(context.Background(), &again, image.LoadOptions{})
			if err != nil || recs2[0].Manifest.Digest != recs[0].Manifest.Digest || recs2[0].ID() != recs[0].ID() {
				t.Fatalf("second load: %+v %v", recs2, err)
			}
		})
	}
}

// tarEntry is one entry of a hand-made archive.
type tarEntry struct {
	name, link string
	typ        byte
	body       []byte
	size       int64 // header size, when not len(body) (a lying header)
}

func makeTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: 0o644}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if len(e.body) > 0 {
			tw.Write(e.body)
		}
	}
	tw.Close()
	return buf.Bytes()
}

// ociTar makes a valid one-image OCI archive of img plus extra entries
// (before the blobs).
func ociEntries(t *testing.T, img imagetest.Image, name string) []tarEntry {
	desc := img.ManifestDesc
	desc.Annotations = map[string]string{"io.containerd.image.name": name}
	index := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{desc}}
	index.SchemaVersion = 2
	idx, _ := json.Marshal(index)
	es := []tarEntry{
		{name: "oci-layout", body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{name: "index.json", body: idx},
		{name: "blobs/sha256/" + img.ManifestDesc.Digest.Encoded(), body: img.Manifest},
		{name: "blobs/sha256/" + img.ConfigDesc.Digest.Encoded(), body: img.Config},
	}
	for _, l := range img.Layers {
		es = append(es, tarEntry{name: "blobs/sha256/" + l.Desc.Digest.Encoded(), body: l.Blob})
	}
	return es
}

func checkNothingLoaded(t *testing.T, s *image.Service) {
	t.Helper()
	if recs, _ := s.List(context.Background()); len(recs) != 0 {
		t.Errorf("records after a failed load: %v", recs)
	}
	if ing, _ := s.Content().Ingests(); len(ing) != 0 {
		t.Errorf("ingests after a failed load: %v", ing)
	}
}

func TestLoadRefusesHostileArchives(t *testing.T) {
	requireRoot(t)
	img := testImage(t, "amd64")
	good := ociEntries(t, img, "example.com/app:v1")
	base := t.TempDir()
	root := filepath.Join(base, "a", "b", "root")

	// A blob whose bytes are not those its path names.
	forged := append([]tarEntry{}, good...)
	forged[len(forged)-1] = tarEntry{name: forged[len(forged)-1].name, body: []byte("not the layer you are looking for")}
	// Same, of the right size.
	sameSize := append([]tarEntry{}, good...)
	evil := bytes.Clone(img.Layers[2].Blob)
	evil[len(evil)/2] ^= 1
	sameSize[len(sameSize)-1] = tarEntry{name: sameSize[len(sameSize)-1].name, body: evil}

	cases := []struct {
		name    string
		entries []tarEntry
	}{
		{"dotdot", append([]tarEntry{{name: "../../evil", body: []byte("x")}}, good...)},
		{"dotdot-inside", append([]tarEntry{{name: "blobs/../../evil", body: []byte("x")}}, good...)},
		{"absolute", append([]tarEntry{{name: "/tmp/evil-berth-load", body: []byte("x")}}, good...)},
		{"symlink-out", append([]tarEntry{{name: "evil", typ: tar.TypeSymlink, link: "../../../etc/passwd"}}, good...)},
		{"symlink-abs", append([]tarEntry{{name: "evil", typ: tar.TypeSymlink, link: "/etc/passwd"}}, good...)},
		{"hardlink-out", append([]tarEntry{{name: "evil", typ: tar.TypeLink, link: "../evil"}}, good...)},
		{"device", append([]tarEntry{{name: "evil", typ: tar.TypeChar}}, good...)},
		{"forged-blob", forged},
		{"forged-blob-same-size", sameSize},
		{"huge-index", []tarEntry{{name: "oci-layout", body: []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {name: "index.json", body: bytes.Repeat([]byte(" "), 9<<20)}}},
		{"huge-manifest-json", []tarEntry{{name: "manifest.json", body: bytes.Repeat([]byte(" "), 9<<20)}}},
		{"not-an-archive", nil},
		{"missing-blob", good[:len(good)-1]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newService(t, root, nil)
			data := makeTar(t, tc.entries...)
			if tc.entries == nil {
				data = []byte("this is not a tar file, not even close; it is just words.")
			}
			_, err := s.Load(context.Background(), bytes.NewReader(data), image.LoadOptions{})
			if !errors.Is(err, image.ErrInvalid) {
				t.Fatalf("load: %v, want ErrInvalid", err)
			}
			t.Logf("%v", err)
			checkNothingLoaded(t, s)
			for _, p := range []string{filepath.Join(base, "evil"), filepath.Join(base, "a", "evil"), filepath.Join(root, "evil"), "/tmp/evil-berth-load"} {
				if _, err := os.Lstat(p); err == nil {
					t.Fatalf("%s was written", p)
				}
			}
			if strings.HasPrefix(tc.name, "forged") {
				if _, err := s.Content().Info(img.Layers[2].Desc.Digest.String()); err == nil {
					t.Error("the forged blob is visible under the digest it claimed")
				}
				if ok, _ := s.Snapshots().Exists(img.Layers[2].DiffID.String()); ok {
					t.Error("the forged layer was unpacked")
				}
			}
		})
	}

	// Links that stay inside are aliases (docker save writes them).
	t.Run("internal-links", func(t *testing.T) {
		s := newService(t, t.TempDir(), nil)
		cfgPath := "blobs/sha256/" + img.ConfigDesc.Digest.Encoded()
		man, _ := json.Marshal([]map[string]any{{"Config": "cfg.json", "RepoTags": []string{"example.com/linked:v1"},
			"Layers": []string{"l0/layer.tar", "l1/layer.tar", "l2/layer.tar"}}})
		es := []tarEntry{{name: "manifest.json", body: man}, {name: cfgPath, body: img.Config},
			{name: "cfg.json", typ: tar.TypeLink, link: cfgPath}}
		for i, l := range img.Layers {
			es = append(es, tarEntry{name: "real" + string(rune('0'+i)) + ".tar", body: l.Blob},
				tarEntry{name: "l" + string(rune('0'+i)) + "/layer.tar", typ: tar.TypeSymlink, link: "../real" + string(rune('0'+i)) + ".tar"})
		}
		recs, err := s.Load(context.Background(), bytes.NewReader(makeTar(t, es...)), image.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Name != "example.com/linked:v1" {
			t.Fatalf("records %+v", recs)
		}
		// Compressed layers in a docker archive keep their compression.
		if recs[0].Layers[0].MediaType != ocispec.MediaTypeImageLayerGzip || recs[0].Layers[1].MediaType != ocispec.MediaTypeImageLayerZstd {
			t.Errorf("layer media types %s %s", recs[0].Layers[0].MediaType, recs[0].Layers[1].MediaType)
		}
		checkUnpacked(t, s, recs[0], img)
	})

	// Unnamed images need LoadOptions.Name.
	t.Run("unnamed", func(t *testing.T) {
		s := newService(t, t.TempDir(), nil)
		es := ociEntries(t, img, "")
		var idx ocispec.Index
		json.Unmarshal(es[1].body, &idx)
		idx.Manifests[0].Annotations = nil
		es[1].body, _ = json.Marshal(idx)
		data := makeTar(t, es...)
		if _, err := s.Load(context.Background(), bytes.NewReader(data), image.LoadOptions{}); !errors.Is(err, image.ErrInvalid) {
			t.Fatalf("unnamed image: %v, want ErrInvalid", err)
		}
		checkNothingLoaded(t, s)
		recs, err := s.Load(context.Background(), bytes.NewReader(data), image.LoadOptions{Name: "example.com/named"})
		if err != nil {
			t.Fatal(err)
		}
		if want := "example.com/named@" + img.ManifestDesc.Digest.String(); len(recs) != 1 || recs[0].Name != want {
			t.Fatalf("records %+v, want the name %s", recs, want)
		}
	})
}

func TestLoadTruncatedArchive(t *testing.T) {
	requireRoot(t)
	p := pullTestImage(t)
	for _, format := range []image.ArchiveFormat{image.OCIArchive, image.DockerArchive} {
		var buf bytes.Buffer
		if err := p.s.Save(context.Background(), &buf, []string{p.name}, format); err != nil {
			t.Fatal(err)
		}
		full := buf.Bytes()
		// Cuts inside the last (300 KiB) layer, inside the first blobs,
		// and inside a header.
		for _, cut := range []int{len(full) - 100<<10, len(full) / 3, 2048 + 100} {
			t.Run(format.String(), func(t *testing.T) {
				s := newService(t, t.TempDir(), nil)
				_, err := s.Load(context.Background(), bytes.NewReader(full[:cut]), image.LoadOptions{})
				if !errors.Is(err, image.ErrInvalid) {
					t.Fatalf("load of %d of %d bytes: %v, want ErrInvalid", cut, len(full), err)
				}
				t.Logf("cut at %d/%d: %v", cut, len(full), err)
				checkNothingLoaded(t, s)
				if ok, _ := s.Snapshots().Exists(p.img.Layers[2].DiffID.String()); ok {
					t.Error("the cut layer was unpacked")
				}
			})
		}
	}
}

// podman (when installed) loads both formats, in throw-away storage.
func TestSavedArchivesLoadInPodman(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("needs podman")
	}
	p := pullTestImage(t)
	for _, format := range []image.ArchiveFormat{image.DockerArchive, image.OCIArchive} {
		t.Run(format.String(), func(t *testing.T) {
			file := saveFile(t, p.s, format, p.name)
			// podman wants a run root under 50 characters.
			dir, err := os.MkdirTemp("", "bp")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			podman := func(args ...string) ([]byte, error) {
				cmd := exec.Command("podman", append([]string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
					"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}, args...)...)
				cmd.Env = append(os.Environ(), "TMPDIR="+dir)
				return cmd.CombinedOutput()
			}
			defer podman("system", "reset", "--force")
			out, err := podman("load", "-i", file)
			if err != nil {
				t.Fatalf("podman load: %v\n%s", err, out)
			}
			t.Logf("podman load: %s", bytes.TrimSpace(out))
			out, err = podman("image", "inspect", "--format", "{{.Id}}", p.name)
			if err != nil || strings.TrimSpace(string(out)) != p.rec.Config.Digest.Encoded() {
				t.Fatalf("podman image inspect: %q %v, want ID %s", out, err, p.rec.Config.Digest.Encoded())
			}
		})
	}
}
