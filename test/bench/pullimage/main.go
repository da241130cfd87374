// Command pullimage is the tooling of the image-pull benchmark
// (scripts/bench-pull.sh):
//
//	pullimage build -out DIR dir1 dir2 ...   OCI layout: busybox + one gzip layer per dir
//	pullimage floor -layout DIR              decompress all layers in parallel to /dev/null
//	pullimage info -layout DIR               sizes and layer digests of the layout
//	pullimage verify -layout DIR -registry HOST:PORT -repo NAME -tag TAG
//	                                         the pushed manifest has the layout's digests
//	pullimage freeport                       a free TCP port on 127.0.0.1
//	pullimage wait -url URL [-timeout D]     wait until GET URL answers (any status)
//	pullimage report -results FILE [-json OUT] [-compressed N] [-tar N] [-files N]
//	                                         medians, min, max and ratios of the timings
package main

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
)

const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	refName       = "latest"
	// Annotations of the manifest: what the layout was built from (a
	// changed input list rebuilds it) and sizes for the report.
	annInputs = "dev.berth.bench.inputs"
	annTar    = "dev.berth.bench.tar-bytes"
	annFiles  = "dev.berth.bench.file-bytes"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        descriptor        `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType,omitempty"`
	Manifests     []descriptor `json:"manifests"`
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "build":
		err = cmdBuild(args)
	case "floor":
		err = cmdFloor(args)
	case "info":
		err = cmdInfo(args)
	case "verify":
		err = cmdVerify(args)
	case "freeport":
		err = cmdFreeport()
	case "wait":
		err = cmdWait(args)
	case "report":
		err = cmdReport(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pullimage:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pullimage build|floor|info|verify|freeport|report ... (see the package comment)")
	os.Exit(2)
}

// ---- build ----

// layerSpec is one layer to build: a directory tree, or busybox.
type layerSpec struct {
	dir     string // absolute; "" = the busybox layer
	created string
}

type layerResult struct {
	desc      descriptor
	diffID    string
	tarBytes  int64
	fileBytes int64
	took      time.Duration
	err       error
}

func cmdBuild(args []string) error {
	fset := flag.NewFlagSet("build", flag.ExitOnError)
	out := fset.String("out", "", "output OCI layout directory")
	busybox := fset.String("busybox", "/bin/busybox", "static busybox binary for the first layer")
	force := fset.Bool("force", false, "rebuild even if a complete layout is there")
	fset.Parse(args)
	if *out == "" || fset.NArg() == 0 {
		return errors.New("usage: build -out DIR dir1 dir2 ...")
	}
	specs := []layerSpec{{dir: "", created: "busybox " + *busybox}}
	var inputs []string
	for _, d := range fset.Args() {
		abs, err := filepath.Abs(d)
		if err != nil {
			return err
		}
		// Resolve /bin -> usr/bin style links so the walk sees a directory,
		// but store entries under the path as given.
		st, err := os.Stat(abs)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return fmt.Errorf("%s: not a directory", abs)
		}
		specs = append(specs, layerSpec{dir: abs, created: "dir " + abs})
		inputs = append(inputs, abs)
	}
	inputKey := strings.Join(append([]string{*busybox}, inputs...), ":")
	if !*force {
		if m, err := loadLayout(*out); err == nil && m.Annotations[annInputs] == inputKey {
			if err := checkBlobs(*out, m); err == nil {
				fmt.Printf("build: reusing %s (%d layers, %s compressed)\n", *out, len(m.Layers), mb(compressedSum(m)))
				return nil
			} else {
				fmt.Printf("build: %s incomplete (%v), rebuilding\n", *out, err)
			}
		}
	}

	tmp := *out + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	blobs := filepath.Join(tmp, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	start := time.Now()
	results := make([]layerResult, len(specs))
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			results[i] = buildLayer(blobs, s, *busybox)
			results[i].took = time.Since(t)
		}()
	}
	wg.Wait()
	var tarSum, fileSum int64
	for i, r := range results {
		if r.err != nil {
			return fmt.Errorf("layer %d (%s): %w", i, specs[i].created, r.err)
		}
		tarSum += r.tarBytes
		fileSum += r.fileBytes
		fmt.Printf("build: layer %d %-28s %9s gzip %9s tar  %5.1fs  %s\n", i, specs[i].created, mb(r.desc.Size), mb(r.tarBytes), r.took.Seconds(), r.desc.Digest)
	}

	now := time.Now().UTC().Format(time.RFC3339)
	type history struct {
		Created   string `json:"created"`
		CreatedBy string `json:"created_by"`
	}
	cfg := struct {
		Created      string `json:"created"`
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Config       struct {
			Env []string `json:"Env"`
			Cmd []string `json:"Cmd"`
		} `json:"config"`
		RootFS struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
		History []history `json:"history"`
	}{Created: now, Architecture: runtime.GOARCH, OS: "linux"}
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin"}
	cfg.Config.Cmd = []string{"/bin/sh"}
	cfg.RootFS.Type = "layers"
	m := manifest{SchemaVersion: 2, MediaType: mediaManifest, Annotations: map[string]string{
		annInputs: inputKey,
		annTar:    strconv.FormatInt(tarSum, 10),
		annFiles:  strconv.FormatInt(fileSum, 10),
	}}
	for i, r := range results {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, r.diffID)
		cfg.History = append(cfg.History, history{Created: now, CreatedBy: "pullimage build: " + specs[i].created})
		m.Layers = append(m.Layers, r.desc)
	}
	cfgDesc, err := writeJSONBlob(blobs, mediaConfig, cfg)
	if err != nil {
		return err
	}
	m.Config = cfgDesc
	mDesc, err := writeJSONBlob(blobs, mediaManifest, m)
	if err != nil {
		return err
	}
	mDesc.Annotations = map[string]string{"org.opencontainers.image.ref.name": refName}
	idx := index{SchemaVersion: 2, MediaType: "application/vnd.oci.image.index.v1+json", Manifests: []descriptor{mDesc}}
	if err := writeJSON(filepath.Join(tmp, "index.json"), idx); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(*out); err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	fmt.Printf("build: %s: %d layers, %s gzip, %s tar, %s file data, %.1fs\n", *out, len(m.Layers), mb(compressedSum(&m)), mb(tarSum), mb(fileSum), time.Since(start).Seconds())
	return nil
}

// countingHash is a hash that also counts the bytes written.
type countingHash struct {
	hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) { c.n += int64(len(p)); return c.Hash.Write(p) }

func buildLayer(blobs string, s layerSpec, busybox string) (r layerResult) {
	f, err := os.CreateTemp(blobs, ".layer-")
	if err != nil {
		r.err = err
		return
	}
	defer func() {
		f.Close()
		if r.err != nil {
			os.Remove(f.Name())
		}
	}()
	blobHash := &countingHash{Hash: sha256.New()}
	bw := bufio.NewWriterSize(io.MultiWriter(f, blobHash), 1<<20)
	zw, err := gzip.NewWriterLevel(bw, gzip.DefaultCompression)
	if err != nil {
		r.err = err
		return
	}
	diffHash := &countingHash{Hash: sha256.New()}
	tw := tar.NewWriter(io.MultiWriter(zw, diffHash))
	if s.dir == "" {
		r.fileBytes, r.err = writeBusybox(tw, busybox)
	} else {
		r.fileBytes, r.err = writeTree(tw, s.dir)
	}
	if r.err != nil {
		return
	}
	for _, c := range []func() error{tw.Close, zw.Close, bw.Flush, f.Sync} {
		if r.err = c(); r.err != nil {
			return
		}
	}
	dgst := hex.EncodeToString(blobHash.Sum(nil))
	if r.err = os.Rename(f.Name(), filepath.Join(blobs, dgst)); r.err != nil {
		return
	}
	r.desc = descriptor{MediaType: mediaLayer, Digest: "sha256:" + dgst, Size: blobHash.n}
	r.diffID = "sha256:" + hex.EncodeToString(diffHash.Sum(nil))
	r.tarBytes = diffHash.n
	return
}

// writeBusybox writes bin/, bin/busybox and a bin/APPLET -> busybox symlink
// for every applet (sh among them).
func writeBusybox(tw *tar.Writer, busybox string) (int64, error) {
	st, err := os.Stat(busybox)
	if err != nil {
		return 0, err
	}
	mtime := st.ModTime().Truncate(time.Second)
	for _, d := range []string{"bin/", "dev/", "etc/", "proc/", "sys/", "tmp/", "usr/", "usr/bin/", "usr/sbin/", "sbin/", "var/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode, ModTime: mtime}); err != nil {
			return 0, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: st.Size(), ModTime: mtime}); err != nil {
		return 0, err
	}
	if err := copyFile(tw, busybox, st.Size()); err != nil {
		return 0, err
	}
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return 0, fmt.Errorf("%s --list: %w", busybox, err)
	}
	applets := strings.Fields(string(out))
	if len(applets) == 0 {
		applets = []string{"sh"}
	}
	for _, a := range applets {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: mtime}); err != nil {
			return 0, err
		}
	}
	return st.Size(), nil
}

func copyFile(tw *tar.Writer, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyN(tw, f, size)
	if err != nil {
		return fmt.Errorf("%s: copied %d of %d bytes: %w", path, n, size, err)
	}
	return nil
}

// writeTree writes root's parent directories and then the tree under root,
// named by absolute path minus the leading "/". Hard links within the tree
// become tar hard links; sockets are skipped.
func writeTree(tw *tar.Writer, root string) (int64, error) {
	// Parent directories first (usr/, usr/local/ for /usr/local/go).
	rel := strings.TrimPrefix(filepath.Clean(root), "/")
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		p := "/" + strings.Join(parts[:i], "/")
		fi, err := os.Stat(p)
		if err != nil {
			return 0, err
		}
		h, err := header(p, fi, "")
		if err != nil {
			return 0, err
		}
		if err := tw.WriteHeader(h); err != nil {
			return 0, err
		}
	}
	type inode struct{ dev, ino uint64 }
	seen := map[inode]string{}
	var fileBytes int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSocket != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		h, err := header(path, fi, link)
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			k := inode{uint64(st.Dev), uint64(st.Ino)}
			if first, ok := seen[k]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
				return tw.WriteHeader(h)
			}
			seen[k] = h.Name
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			fileBytes += h.Size
			return copyFile(tw, path, h.Size)
		}
		return nil
	})
	return fileBytes, err
}

func header(path string, fi fs.FileInfo, link string) (*tar.Header, error) {
	h, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	h.Name = strings.TrimPrefix(path, "/")
	if fi.IsDir() {
		h.Name += "/"
	}
	// Numeric owners only, whole-second mtimes, no atime/ctime: USTAR
	// headers where the name fits, as image builders write them.
	h.Uname, h.Gname = "", ""
	h.ModTime = h.ModTime.Truncate(time.Second)
	h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
	h.Format = tar.FormatUnknown
	return h, nil
}

func writeJSONBlob(blobs, mediaType string, v any) (descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return descriptor{}, err
	}
	sum := sha256.Sum256(b)
	dgst := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(blobs, dgst), b, 0o644); err != nil {
		return descriptor{}, err
	}
	return descriptor{MediaType: mediaType, Digest: "sha256:" + dgst, Size: int64(len(b))}, nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// ---- layout reading ----

func blobPath(layout, dgst string) string {
	return filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(dgst, "sha256:"))
}

// loadLayout reads the manifest tagged "latest" of the layout.
func loadLayout(layout string) (*manifest, error) {
	var idx index
	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	if _, err := os.Stat(filepath.Join(layout, "oci-layout")); err != nil {
		return nil, err
	}
	for _, d := range idx.Manifests {
		if d.Annotations["org.opencontainers.image.ref.name"] != refName {
			continue
		}
		b, err := os.ReadFile(blobPath(layout, d.Digest))
		if err != nil {
			return nil, err
		}
		if int64(len(b)) != d.Size {
			return nil, fmt.Errorf("manifest %s: size %d, want %d", d.Digest, len(b), d.Size)
		}
		var m manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		return &m, nil
	}
	return nil, fmt.Errorf("%s: no manifest named %q", layout, refName)
}

// checkBlobs checks that the config and layer blobs are there with their
// sizes (not their digests: that would read 350 MB).
func checkBlobs(layout string, m *manifest) error {
	for _, d := range append([]descriptor{m.Config}, m.Layers...) {
		st, err := os.Stat(blobPath(layout, d.Digest))
		if err != nil {
			return err
		}
		if st.Size() != d.Size {
			return fmt.Errorf("blob %s: size %d, want %d", d.Digest, st.Size(), d.Size)
		}
	}
	return nil
}

func compressedSum(m *manifest) int64 {
	var n int64
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// ---- floor ----

func cmdFloor(args []string) error {
	fset := flag.NewFlagSet("floor", flag.ExitOnError)
	layout := fset.String("layout", "", "OCI layout directory")
	fset.Parse(args)
	m, err := loadLayout(*layout)
	if err != nil {
		return err
	}
	largest := 0
	for i, l := range m.Layers {
		if l.Size > m.Layers[largest].Size {
			largest = i
		}
	}
	start := time.Now()
	errs := make([]error, len(m.Layers))
	var wg sync.WaitGroup
	for i, l := range m.Layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = gunzip(blobPath(*layout, l.Digest))
		}()
	}
	wg.Wait()
	parallel := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The largest layer alone (now from the page cache): the lower bound
	// of any pull that decompresses each layer in one stream.
	start = time.Now()
	n, err := gunzip(blobPath(*layout, m.Layers[largest].Digest))
	if err != nil {
		return err
	}
	single := time.Since(start)
	// The same with ISA-L's igzip, the decoder berth uses when installed:
	// the floor for any pull that decompresses with it.
	if bin, err := exec.LookPath("igzip"); err == nil {
		start = time.Now()
		for i, l := range m.Layers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
				if err != nil {
					errs[i] = err
					return
				}
				defer null.Close()
				cmd := exec.Command(bin, "-d", "-c", blobPath(*layout, l.Digest))
				cmd.Stdout = null // a file: no pipe for Go to copy
				errs[i] = cmd.Run()
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("igzip floor: %w", err)
		}
		fmt.Printf("floor_igzip_parallel_s %.3f\n", time.Since(start).Seconds())
	}
	fmt.Printf("floor_parallel_s %.3f\n", parallel.Seconds())
	fmt.Printf("largest_layer_s %.3f (layer %d, %s gzip, %s tar)\n", single.Seconds(), largest, mb(m.Layers[largest].Size), mb(n))
	return nil
}

func gunzip(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	n, err := io.Copy(io.Discard, zr)
	if err != nil {
		return n, fmt.Errorf("%s: %w", path, err)
	}
	return n, zr.Close()
}

// ---- info, verify, freeport ----

func cmdInfo(args []string) error {
	fset := flag.NewFlagSet("info", flag.ExitOnError)
	layout := fset.String("layout", "", "OCI layout directory")
	fset.Parse(args)
	m, err := loadLayout(*layout)
	if err != nil {
		return err
	}
	fmt.Printf("layers %d\n", len(m.Layers))
	fmt.Printf("compressed_bytes %d\n", compressedSum(m))
	fmt.Printf("tar_bytes %s\n", m.Annotations[annTar])
	fmt.Printf("file_bytes %s\n", m.Annotations[annFiles])
	for _, l := range m.Layers {
		fmt.Printf("layer %s %d\n", l.Digest, l.Size)
	}
	return nil
}

func cmdVerify(args []string) error {
	fset := flag.NewFlagSet("verify", flag.ExitOnError)
	layout := fset.String("layout", "", "OCI layout directory")
	registry := fset.String("registry", "", "HOST:PORT (plain HTTP)")
	repo := fset.String("repo", "bench", "repository")
	tag := fset.String("tag", "latest", "tag")
	fset.Parse(args)
	m, err := loadLayout(*layout)
	if err != nil {
		return err
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/v2/%s/manifests/%s", *registry, *repo, *tag), nil)
	req.Header.Set("Accept", mediaManifest+", application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET manifest: %s: %s", resp.Status, b)
	}
	var pushed manifest
	if err := json.Unmarshal(b, &pushed); err != nil {
		return err
	}
	if len(pushed.Layers) != len(m.Layers) {
		return fmt.Errorf("pushed manifest has %d layers, layout %d", len(pushed.Layers), len(m.Layers))
	}
	for i := range m.Layers {
		if pushed.Layers[i].Digest != m.Layers[i].Digest || pushed.Layers[i].Size != m.Layers[i].Size {
			return fmt.Errorf("layer %d: pushed %s (%d bytes), layout %s (%d bytes): recompressed on push", i,
				pushed.Layers[i].Digest, pushed.Layers[i].Size, m.Layers[i].Digest, m.Layers[i].Size)
		}
	}
	fmt.Printf("verify: pushed manifest (%s) has the layout's %d layer digests\n", pushed.MediaType, len(m.Layers))
	return nil
}

func cmdFreeport() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	return nil
}

func cmdWait(args []string) error {
	fset := flag.NewFlagSet("wait", flag.ExitOnError)
	url := fset.String("url", "", "URL to GET")
	timeout := fset.Duration("timeout", 30*time.Second, "give up after")
	fset.Parse(args)
	deadline := time.Now().Add(*timeout)
	for {
		resp, err := http.Get(*url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no answer within %s: %w", *url, *timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---- report ----

type toolStats struct {
	Tool        string    `json:"tool"`
	Runs        []float64 `json:"runs_s"`
	Median      float64   `json:"median_s"`
	Min         float64   `json:"min_s"`
	Max         float64   `json:"max_s"`
	VsPodman    float64   `json:"ratio_to_podman,omitempty"`
	VsFloor     float64   `json:"ratio_to_floor,omitempty"`
	StoreBytes  int64     `json:"store_bytes,omitempty"`
	Description string    `json:"description,omitempty"`
}

// cmdReport reads lines "TOOL SECONDS" (and "store TOOL BYTES", "note
// TOOL TEXT...") and prints the table; -json writes it as JSON too.
func cmdReport(args []string) error {
	fset := flag.NewFlagSet("report", flag.ExitOnError)
	results := fset.String("results", "", "results file")
	jsonOut := fset.String("json", "", "write JSON here too")
	layout := fset.String("layout", "", "OCI layout (for the image sizes)")
	extra := fset.String("meta", "", "KEY=VALUE,... added to the JSON")
	fset.Parse(args)
	b, err := os.ReadFile(*results)
	if err != nil {
		return err
	}
	byTool := map[string]*toolStats{}
	var order []string
	get := func(t string) *toolStats {
		if s, ok := byTool[t]; ok {
			return s
		}
		s := &toolStats{Tool: t}
		byTool[t] = s
		order = append(order, t)
		return s
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "store" && len(f) == 3:
			n, _ := strconv.ParseInt(f[2], 10, 64)
			get(f[1]).StoreBytes = n
		case f[0] == "note" && len(f) >= 3:
			s := get(f[1])
			if s.Description != "" {
				s.Description += "; "
			}
			s.Description += strings.Join(f[2:], " ")
		case len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return fmt.Errorf("results: %q: %w", line, err)
			}
			s := get(f[0])
			s.Runs = append(s.Runs, v)
		default:
			return fmt.Errorf("results: bad line %q", line)
		}
	}
	for _, s := range byTool {
		if len(s.Runs) == 0 {
			continue
		}
		r := append([]float64(nil), s.Runs...)
		sort.Float64s(r)
		s.Min, s.Max = r[0], r[len(r)-1]
		if len(r)%2 == 1 {
			s.Median = r[len(r)/2]
		} else {
			s.Median = (r[len(r)/2-1] + r[len(r)/2]) / 2
		}
	}
	podman, floor := byTool["podman"], byTool["floor"]
	for _, s := range byTool {
		if podman != nil && podman.Median > 0 && s.Median > 0 {
			s.VsPodman = s.Median / podman.Median
		}
		if floor != nil && floor.Median > 0 && s.Median > 0 {
			s.VsFloor = s.Median / floor.Median
		}
	}
	out := map[string]any{}
	if *layout != "" {
		if m, err := loadLayout(*layout); err == nil {
			tarB, _ := strconv.ParseInt(m.Annotations[annTar], 10, 64)
			fileB, _ := strconv.ParseInt(m.Annotations[annFiles], 10, 64)
			out["image"] = map[string]any{"layers": len(m.Layers), "compressed_bytes": compressedSum(m), "tar_bytes": tarB, "file_bytes": fileB}
			fmt.Printf("image: %d layers, %s gzip (sum of blobs), %s tar, %s file data\n", len(m.Layers), mb(compressedSum(m)), mb(tarB), mb(fileB))
		}
	}
	fmt.Printf("%-13s %5s %9s %9s %9s %10s %9s %10s\n", "tool", "runs", "median_s", "min_s", "max_s", "/podman", "/floor", "store")
	var list []*toolStats
	for _, t := range order {
		s := byTool[t]
		list = append(list, s)
		ratio := func(v float64) string {
			if v == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2fx", v)
		}
		store := "-"
		if s.StoreBytes > 0 {
			store = mb(s.StoreBytes)
		}
		if len(s.Runs) == 0 {
			fmt.Printf("%-13s %5d %9s %9s %9s %10s %9s %10s  %s\n", t, 0, "-", "-", "-", "-", "-", store, s.Description)
			continue
		}
		fmt.Printf("%-13s %5d %9.2f %9.2f %9.2f %10s %9s %10s  %s\n", t, len(s.Runs), s.Median, s.Min, s.Max, ratio(s.VsPodman), ratio(s.VsFloor), store, s.Description)
	}
	if berth := byTool["berth"]; berth != nil && berth.Median > 0 {
		verdict := func(ok bool) string {
			if ok {
				return "met"
			}
			return "NOT met"
		}
		if berth.VsFloor > 0 {
			fmt.Printf("target berth <= 1.5x floor: %.3fx, %s\n", berth.VsFloor, verdict(berth.VsFloor <= 1.5))
		}
		if f := byTool["floor-igzip"]; f != nil && f.Median > 0 {
			fmt.Printf("berth / igzip floor (the decoder berth uses): %.3fx\n", berth.Median/f.Median)
		}
		if berth.VsPodman > 0 {
			fmt.Printf("target berth <= 0.3x podman: %.3fx, %s\n", berth.VsPodman, verdict(berth.VsPodman <= 0.3))
		}
	}
	if *jsonOut != "" {
		out["tools"] = list
		if *extra != "" {
			for _, kv := range strings.Split(*extra, ",") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					out[k] = v
				}
			}
		}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
