// Package integration runs the built berth binary as a user would:
// privileged, with real namespaces, cgroups and mounts. Tests need root and
// BERTH_BIN (make unit sets it); without them they skip and say why.
package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// berthBin is the binary under test.
func berthBin(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("integration tests need root (real namespaces, mounts and cgroups)")
	}
	bin := os.Getenv("BERTH_BIN")
	if bin == "" {
		abs, _ := filepath.Abs("../../bin/berth")
		bin = abs
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("berth binary %s not built (run make build, or set BERTH_BIN): %v", bin, err)
	}
	return bin
}

// runtimeEnv is a private --root and helpers to run `berth runtime`.
type runtimeEnv struct {
	t    testing.TB
	bin  string
	root string
}

func newRuntime(t testing.TB) *runtimeEnv {
	t.Helper()
	bin := berthBin(t)
	root := t.TempDir()
	r := &runtimeEnv{t: t, bin: bin, root: root}
	t.Cleanup(func() {
		// Leave nothing running, whatever the test did.
		out, _ := exec.Command(bin, "runtime", "--root", root, "list", "-q").Output()
		for _, id := range strings.Fields(string(out)) {
			exec.Command(bin, "runtime", "--root", root, "delete", "--force", id).Run()
		}
	})
	return r
}

// cmd builds a `berth runtime --root R args...` command.
func (r *runtimeEnv) cmd(args ...string) *exec.Cmd {
	return berthCommand(r.bin, append([]string{"runtime", "--root", r.root}, args...)...)
}

// run runs a runtime command and returns stdout, failing the test on error.
// Output goes through files, not pipes: a detached container inherits the
// command's stdio, and a pipe would keep the command "running" until the
// container exits.
func (r *runtimeEnv) run(args ...string) string {
	r.t.Helper()
	stdout, stderr, err := r.runFiles(args...)
	if err != nil {
		r.t.Fatalf("berth runtime %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout
}

func (r *runtimeEnv) runFiles(args ...string) (string, string, error) {
	if len(args) > 0 && (args[0] == "run" || args[0] == "create") {
		// Registered after the bundle's TempDir, so it runs before it.
		id := args[len(args)-1]
		r.t.Cleanup(func() { r.cmd("delete", "--force", id).Run() })
	}
	dir := r.t.TempDir()
	outF, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		r.t.Fatal(err)
	}
	errF, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		r.t.Fatal(err)
	}
	c := r.cmd(args...)
	c.Stdout, c.Stderr = outF, errF
	runErr := c.Run()
	outF.Close()
	errF.Close()
	stdout, _ := os.ReadFile(outF.Name())
	stderr, _ := os.ReadFile(errF.Name())
	return string(stdout), string(stderr), runErr
}

// try runs a runtime command and returns stdout+stderr and the error.
func (r *runtimeEnv) try(args ...string) (string, error) {
	stdout, stderr, err := r.runFiles(args...)
	return stdout + stderr, err
}

type ociState struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Pid    int    `json:"pid"`
	Bundle string `json:"bundle"`
}

func (r *runtimeEnv) state(id string) ociState {
	r.t.Helper()
	var st ociState
	if err := json.Unmarshal([]byte(r.run("state", id)), &st); err != nil {
		r.t.Fatalf("state %s: %v", id, err)
	}
	return st
}

// waitStatus polls until the container reaches want.
func (r *runtimeEnv) waitStatus(id, want string) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		out, err := r.try("state", id)
		var st ociState
		if err == nil && json.Unmarshal([]byte(out), &st) == nil {
			if st.Status == want {
				return
			}
			last = st.Status
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.t.Fatalf("container %s did not become %s (last: %q)", id, want, last)
}

// bundle is an OCI bundle whose rootfs is Debian's static busybox.
type bundle struct {
	Dir  string
	Spec *specs.Spec
}

// newBundle builds a busybox rootfs and the default spec (from `berth
// runtime spec`), with terminal off and process.args = args.
func newBundle(t testing.TB, bin string, args ...string) *bundle {
	t.Helper()
	const busybox = "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("%s missing (apt-get install busybox-static): %v", busybox, err)
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(list)) {
		os.Symlink("busybox", filepath.Join(rootfs, "bin", applet))
	}
	os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc/group"), []byte("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"), 0o644)
	if out, err := exec.Command(bin, "runtime", "spec", "--bundle", dir).CombinedOutput(); err != nil {
		t.Fatalf("runtime spec: %v: %s", err, out)
	}
	b := &bundle{Dir: dir}
	data, err = os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &b.Spec); err != nil {
		t.Fatal(err)
	}
	b.Spec.Process.Terminal = false
	b.Spec.Process.Args = args
	b.Spec.Root.Readonly = false
	b.save(t)
	return b
}

func (b *bundle) save(t testing.TB) {
	t.Helper()
	data, err := json.MarshalIndent(b.Spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.Dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// rootfs returns the path of a file in the bundle's rootfs.
func (b *bundle) rootfs(rel string) string { return filepath.Join(b.Dir, "rootfs", rel) }

// runOutput runs the bundle to completion with `run` and returns stdout,
// stderr and the exit code.
func (r *runtimeEnv) runOutput(b *bundle, id string) (string, string, int) {
	r.t.Helper()
	stdout, stderr, err := r.runFiles("run", "--bundle", b.Dir, id)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatalf("run %s: %v", id, err)
	}
	return stdout, stderr, code
}

func uniqueID(t testing.TB) string {
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return fmt.Sprintf("%s-%d", strings.ToLower(name), time.Now().UnixNano()%1000000)
}

// jsonLines decodes docker's listing JSON (`ps --format json` and the
// like): one object a line.
func jsonLines[T any](out string) ([]T, error) {
	var rows []T
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r T
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("%v: %q", err, line)
		}
		rows = append(rows, r)
	}
	return rows, nil
}
