//go:build linux

package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// berth serve defers the CNI DELs of a container whose record goes with
// its run (docker run --rm): journaled under <root>/netdel, run after the
// answer. Here serve is stopped right after journaling (before the DEL)
// and killed: the address's lease is still held and the journal is there.
// The next serve runs it at its start, before anything reads the
// container: the journal goes and the lease with it. A --rm run on an
// uncut serve leaves neither journal nor lease.
func TestDeferredNetworkDELs(t *testing.T) {
	docker := dockerClients(t)[0]
	e := newEngine(t)
	e.loadDemoImage()
	e.run("network", "create", "dn")
	leases := func() []string {
		m, _ := filepath.Glob(filepath.Join(e.root, "networks", "ipam", "dn", "*.*.*.*"))
		return m
	}
	journals := func() []string {
		m, _ := filepath.Glob(filepath.Join(e.root, "netdel", "*"))
		return m
	}
	startServe := func(env ...string) (*exec.Cmd, string) {
		sock := filepath.Join(t.TempDir(), "api.sock")
		cmd := e.command("serve", "--docker-socket", sock)
		cmd.Env = append(cmd.Env, env...)
		logf, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("serve's log:\n%s", b)
			}
		})
		waitFor(t, 10*time.Second, "serve's socket", func() bool {
			c, err := net.Dial("unix", sock)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		return cmd, sock
	}
	dockerOn := func(sock string, args ...string) *exec.Cmd {
		cmd := exec.Command(docker, append([]string{"-H", "unix://" + sock}, args...)...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
		return cmd
	}

	// An uncut serve: nothing is left once the run has answered and its
	// background DEL ran.
	serve, sock := startServe()
	if out, err := dockerOn(sock, "run", "--rm", "--network", "dn", demoImage, "true").CombinedOutput(); err != nil {
		t.Fatalf("docker run --rm: %v: %s", err, out)
	}
	waitFor(t, 10*time.Second, "the deferred DEL of a --rm run", func() bool { return len(leases()) == 0 && len(journals()) == 0 })
	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()

	// Stopped between the journal and the DEL, then killed.
	serve, sock = startServe("_BERTH_TEST_STOP_AT=netdel-journaled")
	run := dockerOn(sock, "run", "--rm", "--network", "dn", demoImage, "true")
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		run.Process.Kill()
		run.Wait()
	}()
	waitStopped(t, 20*time.Second, "serve to stop after journaling the DELs", serve.Process.Pid)
	serve.Process.Kill()
	serve.Wait()
	if l, j := leases(), journals(); len(l) != 1 || len(j) != 1 {
		t.Fatalf("after serve was killed before its deferred DEL: leases %q, journals %q; want one of each", l, j)
	}
	// Nothing reads the container before the sweep: the journal's DEL
	// is what releases the lease.
	startServe()
	waitFor(t, 20*time.Second, "the next serve to run the journaled DEL", func() bool { return len(leases()) == 0 && len(journals()) == 0 })
	run.Process.Kill()
	run.Wait()
	if out := e.run("ps", "-aq"); strings.TrimSpace(out) != "" {
		t.Errorf("the --rm container is left: %s", out)
	}
	e.run("network", "rm", "dn")
	e.checkNothingLeft()
}
