// Package testcontainers_test runs testcontainers-go, unchanged, against
// `berth serve`'s Docker API. It is its own module so that
// testcontainers' dependencies never enter berth's go.mod.
package testcontainers_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	"github.com/testcontainers/testcontainers-go/wait"
)

const demoImage = "berth-demo/busybox:latest"

// berth is a private berth root and state, as test/integration's
// harness keeps them: nothing of the host's berth is touched.
type berth struct {
	t                testing.TB
	bin, root, state string
	env              []string
}

func (b *berth) command(args ...string) *exec.Cmd {
	cmd := exec.Command(b.bin, append([]string{"--root", b.root, "--state", b.state}, args...)...)
	cmd.Env = b.env
	return cmd
}

func (b *berth) run(args ...string) string {
	b.t.Helper()
	var out, errb bytes.Buffer
	cmd := b.command(args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		b.t.Fatalf("berth %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func newBerth(t *testing.T) *berth {
	if os.Geteuid() != 0 {
		t.Skip("berth serve runs containers: needs root (real namespaces, mounts and cgroups)")
	}
	bin := os.Getenv("BERTH_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("../../bin/berth")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("berth binary %s not built (run make build, or set BERTH_BIN): %v", bin, err)
	}
	dir := t.TempDir()
	b := &berth{t: t, bin: bin, root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state")}
	b.env = append(os.Environ(),
		"BERTH_AUTH_FILE="+filepath.Join(dir, "auth.json"),
		"DOCKER_CONFIG="+filepath.Join(dir, "docker"),
		"BERTH_REGISTRY_CONFIG="+filepath.Join(dir, "registries.json"),
	)
	t.Cleanup(func() {
		// Whatever the test did: no container, network rule or mount left.
		if _, err := os.Stat(filepath.Join(b.root, "engine")); err != nil {
			return
		}
		if out, err := b.command("system", "reset", "--force").CombinedOutput(); err != nil {
			t.Errorf("berth system reset: %v: %s", err, out)
		}
	})
	return b
}

// loadDemoImage builds the demo busybox image (no network) and loads it.
func (b *berth) loadDemoImage() {
	b.t.Helper()
	tarball := filepath.Join(b.t.TempDir(), "busybox.tar")
	script, _ := filepath.Abs("../../scripts/mkimage.sh")
	if out, err := exec.Command(script, tarball, demoImage).CombinedOutput(); err != nil {
		b.t.Fatalf("mkimage.sh: %v: %s", err, out)
	}
	b.run("load", "-q", "-i", tarball)
}

// serve starts `berth serve` on a socket of the test's; SIGTERM at the
// end must stop it and remove the socket.
func (b *berth) serve() string {
	t := b.t
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	logPath := filepath.Join(t.TempDir(), "serve.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := b.command("serve", "--docker-socket", sock)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("berth serve ended with %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Errorf("berth serve did not end on SIGTERM")
		}
		logf.Close()
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			t.Logf("berth serve's log:\n%s", log)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			return sock
		}
		select {
		case err := <-done:
			t.Fatalf("berth serve ended before it listened: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth serve did not listen on %s: %v", sock, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// isolateClient points testcontainers (and the docker client under it)
// at sock and at nothing of the developer's: its properties file and
// docker's config and contexts are read from HOME and DOCKER_CONFIG,
// both temp here. Ryuk is off, as testcontainers documents for engines
// that cannot run it: the test terminates what it starts.
func isolateClient(t *testing.T, sock string) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, ".docker"))
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	t.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	for _, k := range []string{"DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION",
		"TESTCONTAINERS_HOST_OVERRIDE", "TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE", "TESTCONTAINERS_PROVIDER", "TESTCONTAINERS_HUB_IMAGE_NAME_PREFIX"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
}

func TestTestcontainers(t *testing.T) {
	b := newBerth(t)
	b.loadDemoImage()
	sock := b.serve()
	isolateClient(t, sock)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	index := "served by busybox in berth\n"
	ctr, err := testcontainers.Run(ctx, demoImage,
		// The shell is PID 1, which ignores an untrapped SIGTERM.
		testcontainers.WithCmd("sh", "-c", "trap 'exit 0' TERM; echo booting; echo ready to serve; httpd -f -p 8080 -h /www & wait"),
		testcontainers.WithExposedPorts("8080/tcp"),
		testcontainers.WithLabels(map[string]string{"suite": "berth"}),
		// Copied in before the start, into the created container.
		testcontainers.WithFiles(testcontainers.ContainerFile{Reader: strings.NewReader(index), ContainerFilePath: "/www/index.html", FileMode: 0o644}),
		testcontainers.WithWaitStrategy(
			wait.ForLog("ready to serve"),
			// Execs a shell probe inside and dials the mapped port.
			wait.ForListeningPort("8080/tcp"),
		),
	)
	terminated := false
	defer func() {
		if ctr != nil && !terminated {
			// The net under a failure: terminated below otherwise.
			ctr.Terminate(context.Background())
		}
	}()
	if err != nil {
		t.Fatalf("testcontainers.Run: %v", err)
	}

	info, err := ctr.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Labels["suite"] != "berth" || info.Config.Labels["org.testcontainers"] != "true" {
		t.Errorf("labels: %v", info.Config.Labels)
	}
	if got := strings.TrimSpace(b.run("ps", "-q", "--no-trunc")); got != ctr.GetContainerID() {
		t.Errorf("berth ps: %q, want %s (one set of objects)", got, ctr.GetContainerID())
	}

	// The mapped port from the host, on loopback.
	host, err := ctr.Host(ctx)
	if err != nil {
		t.Fatal(err)
	}
	port, err := ctr.MappedPort(ctx, "8080/tcp")
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) string {
		t.Helper()
		url := fmt.Sprintf("http://%s/%s", net.JoinHostPort(host, port.Port()), path)
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
		}
		return string(body)
	}
	if got := get("index.html"); got != index {
		t.Errorf("index.html (copied before the start) served as %q, want %q", got, index)
	}

	// Copy in while it runs: from memory and from a host file.
	if err := ctr.CopyToContainer(ctx, []byte("copied while running\n"), "/www/live.txt", 0o644); err != nil {
		t.Fatalf("CopyToContainer: %v", err)
	}
	if got := get("live.txt"); got != "copied while running\n" {
		t.Errorf("live.txt served as %q", got)
	}
	hostFile := filepath.Join(t.TempDir(), "in.txt")
	content := "from the host file\nsecond line\n"
	if err := os.WriteFile(hostFile, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ctr.CopyFileToContainer(ctx, hostFile, "/tmp/deep/in.txt", 0o600); err != nil {
		t.Fatalf("CopyFileToContainer: %v", err)
	}

	// Exec: output, exit code, and the mode the copy set.
	code, out, err := ctr.Exec(ctx, []string{"sh", "-c", "stat -c %a /tmp/deep/in.txt; cat /tmp/deep/in.txt; echo to-stderr >&2; exit 3"}, tcexec.Multiplexed())
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	got, _ := io.ReadAll(out)
	if code != 3 || !strings.Contains(string(got), "600\n"+content) || !strings.Contains(string(got), "to-stderr") {
		t.Errorf("Exec: code %d, output %q", code, got)
	}

	// And out again.
	rc, err := ctr.CopyFileFromContainer(ctx, "/tmp/deep/in.txt")
	if err != nil {
		t.Fatalf("CopyFileFromContainer: %v", err)
	}
	back, _ := io.ReadAll(rc)
	rc.Close()
	if string(back) != content {
		t.Errorf("CopyFileFromContainer: %q, want %q", back, content)
	}
	if _, err := ctr.CopyFileFromContainer(ctx, "/no/such/file"); err == nil {
		t.Errorf("CopyFileFromContainer of a missing file succeeded")
	}

	logs, err := ctr.Logs(ctx)
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	logText, _ := io.ReadAll(logs)
	logs.Close()
	if !strings.Contains(string(logText), "booting\nready to serve\n") {
		t.Errorf("Logs: %q", logText)
	}

	terminated = true
	if err := ctr.Terminate(ctx); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	if left := strings.TrimSpace(b.run("ps", "-aq")); left != "" {
		t.Errorf("after Terminate, berth ps -a lists %s", left)
	}
}
