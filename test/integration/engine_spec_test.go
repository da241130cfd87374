package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/engine/spec"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestGeneratedSpecRuns runs the spec the engine generates from an image
// config (docker's defaults: capabilities, mounts, masks, clamped rlimits,
// a user from the image's /etc/passwd) under berth's own runtime, and
// checks what the process sees.
func TestGeneratedSpecRuns(t *testing.T) {
	bin := berthBin(t)
	r := newRuntime(t)
	b := newBundle(t, bin, "true")
	os.WriteFile(b.rootfs("etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(b.rootfs("etc/group"), []byte("root:x:0:\napp:x:1000:\nextra:x:2000:app\n"), 0o644)
	os.MkdirAll(b.rootfs("home/app"), 0o755)
	img := ocispec.Image{Config: ocispec.ImageConfig{
		Entrypoint: []string{"/bin/sh", "-c"},
		Cmd:        []string{`id; echo "HOME=$HOME"; ulimit -n; grep CapEff /proc/self/status; hostname; cat /proc/kcore >/dev/null 2>&1 || echo kcore-masked`},
		User:       "app",
		Env:        []string{"FROM_IMAGE=1"},
		WorkingDir: "/home/app",
	}}
	s, warnings, err := spec.Generate(img, filepath.Join(b.Dir, "rootfs"), spec.Options{Hostname: "c0ffee", NetworkMode: "none"})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings {
		t.Logf("warning: %s", w)
	}
	b.Spec = s
	b.save(t)
	stdout, stderr, code := r.runOutput(b, uniqueID(t))
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, want := range []string{"uid=1000(app) gid=1000(app)", "2000(extra)", "HOME=/home/app", "c0ffee", "kcore-masked",
		// docker's 14 default capabilities: 0x00000000a80425fb
		"CapEff:\t0000000000000000"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	// The process runs as uid 1000: its effective set is empty, as with
	// docker for a non-root user; the bounding set is docker's.
	if !strings.Contains(stdout, "20000") && !strings.Contains(stdout, "1048576") {
		t.Errorf("ulimit -n is neither the clamped host limit nor docker's default:\n%s", stdout)
	}
}

func TestGeneratedSpecRootHasDockersCapabilities(t *testing.T) {
	bin := berthBin(t)
	r := newRuntime(t)
	b := newBundle(t, bin, "true")
	img := ocispec.Image{Config: ocispec.ImageConfig{Cmd: []string{"grep", "-E", "^Cap(Eff|Bnd)", "/proc/self/status"}}}
	s, _, err := spec.Generate(img, filepath.Join(b.Dir, "rootfs"), spec.Options{Hostname: "c0ffee", CapDrop: []string{"NET_RAW"}})
	if err != nil {
		t.Fatal(err)
	}
	b.Spec = s
	b.save(t)
	stdout, stderr, code := r.runOutput(b, uniqueID(t))
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	// docker's 14 default capabilities are 0xa80425fb; without NET_RAW
	// (bit 13) 0xa80405fb.
	for _, want := range []string{"CapEff:\t00000000a80405fb", "CapBnd:\t00000000a80405fb"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}
