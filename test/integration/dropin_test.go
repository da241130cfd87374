package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The drop-in tests run scripts/dropin.sh, which drives real engines with
// berth-runtime in runc's place: a private containerd through its runc v2
// shim (BinaryName), and Podman with --runtime. The script prints a PASS or
// FAIL line per step; a failing run fails the test with all of it.

func TestDropinContainerd(t *testing.T) {
	runDropin(t, "containerd", [][2]string{
		{"containerd", "containerd"},
		{"ctr", "containerd"},
		{"containerd-shim-runc-v2", "containerd"},
	})
}

func TestDropinPodman(t *testing.T) {
	runDropin(t, "podman", [][2]string{
		{"podman", "podman"},
		{"conmon", "conmon"},
	})
}

// dropinTimeout bounds one half; the script gives each engine command
// dropinStepTimeout and gives up on a half after two time-outs.
const (
	dropinTimeout     = 150 * time.Second
	dropinStepTimeout = "15"
)

// runDropin runs `scripts/dropin.sh HALF` against the binary under test. It
// skips only when one of the engine's binaries ({name, Debian package}) is
// missing, besides berthBin's own skips (not root, binary not built).
func runDropin(t *testing.T, half string, engine [][2]string) {
	bin := berthBin(t)
	for _, e := range engine {
		if _, err := exec.LookPath(e[0]); err != nil {
			t.Skipf("%s not installed (apt-get install %s): %v", e[0], e[1], err)
		}
	}
	script, err := filepath.Abs("../../scripts/dropin.sh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("drop-in script: %v", err)
	}
	rt, repro := runtimeLink(t, bin)

	ctx, cancel := context.WithTimeout(context.Background(), dropinTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, half)
	cmd.Env = append(os.Environ(),
		"RUNTIME="+rt,
		"DROPIN_STEP_TIMEOUT="+dropinStepTimeout,
		"DROPIN_KEEP=0",
	)
	// On time-out, SIGTERM lets the script stop the engine and clean up
	// (mounts, cgroups, its temporary directory); SIGKILL only if it hangs.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 45 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start).Round(time.Millisecond)
	if ctx.Err() != nil {
		t.Fatalf("scripts/dropin.sh %s (RUNTIME=%s) did not finish in %s:\n%s", half, rt, dropinTimeout, out.String())
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 2 {
			t.Fatalf("scripts/dropin.sh %s (RUNTIME=%s): set-up failed after %s:\n%s", half, rt, elapsed, out.String())
		}
		t.Fatalf("scripts/dropin.sh %s (RUNTIME=%s) failed after %s (%v); reproduce with\n"+
			"  RUNTIME=%s scripts/dropin.sh %s\nand compare with RUNTIME=runc:\n%s",
			half, rt, elapsed, err, repro, half, out.String())
	}
	if !bytes.Contains(out.Bytes(), []byte("PASS  "+half+":")) {
		t.Fatalf("scripts/dropin.sh %s exited 0 but passed no step:\n%s", half, out.String())
	}
	t.Logf("scripts/dropin.sh %s (RUNTIME=%s), %s:\n%s", half, rt, elapsed, out.String())
}

// runtimeLink returns a path named berth-runtime for bin (the engines run
// the runtime by path, and berth takes runc's command line when invoked
// under that name) and how to name it to reproduce a failure by hand. The
// sibling link `make build` makes is used when it is bin itself; otherwise
// a link is made in a temporary directory.
func runtimeLink(t *testing.T, bin string) (string, string) {
	t.Helper()
	if filepath.Base(bin) == "berth-runtime" {
		return bin, bin
	}
	sibling := filepath.Join(filepath.Dir(bin), "berth-runtime")
	if a, err := os.Stat(sibling); err == nil {
		if b, err := os.Stat(bin); err == nil && os.SameFile(a, b) {
			return sibling, sibling
		}
	}
	dir := t.TempDir()
	// Engines and the container's init (possibly as a user-namespaced
	// uid) must reach it: the test's temporary directory is 0700.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "berth-runtime")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	return link, "<a symlink named berth-runtime to " + bin + ">"
}
