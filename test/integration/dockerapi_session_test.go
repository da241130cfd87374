//go:build linux

package integration

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/image/registrytest"
	"github.com/berth-dev/berth/internal/tlstest"
	"golang.org/x/sys/unix"
)

// dockerSession is one docker CLI against berth serve's socket, with one
// client configuration directory (where `docker login` keeps what it
// stored).
type dockerSession struct {
	t            *testing.T
	docker, sock string
	config       string
}

func newDockerSession(t *testing.T, docker, sock string) *dockerSession {
	return &dockerSession{t: t, docker: docker, sock: sock, config: t.TempDir()}
}

func (s *dockerSession) command(args ...string) *exec.Cmd {
	cmd := exec.Command(s.docker, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+s.sock, "DOCKER_CONFIG="+s.config)
	return cmd
}

// d runs docker args and returns its stdout, stderr and exit code.
func (s *dockerSession) d(args ...string) (string, string, int) {
	s.t.Helper()
	return s.dIn("", args...)
}

func (s *dockerSession) dIn(stdin string, args ...string) (string, string, int) {
	s.t.Helper()
	cmd := s.command(args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), exitCodeOf(err)
}

func exitCodeOf(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}

// ok runs docker args, fails the test unless it exits 0, and returns its
// stdout.
func (s *dockerSession) ok(args ...string) string {
	s.t.Helper()
	out, errOut, code := s.d(args...)
	if code != 0 {
		s.t.Fatalf("docker %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// onPty starts docker args on a new pty of rows x cols, its controlling
// terminal, and returns the master and what comes out of it.
func (s *dockerSession) onPty(rows, cols uint16, args ...string) (*exec.Cmd, *os.File, *lockedBuffer) {
	s.t.Helper()
	m, sl := openPty(s.t)
	s.t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetWinsize(int(sl.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		s.t.Fatal(err)
	}
	cmd := s.command(args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = sl, sl, sl
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cmd.Process.Kill() })
	sl.Close()
	out := &lockedBuffer{}
	go io.Copy(out, m)
	return cmd, m, out
}

// typeUntil types line into the terminal until its output shows want
// (a shell may not read it yet, or answer from before a resize).
func typeUntil(t *testing.T, m *os.File, out *lockedBuffer, line, want string) {
	t.Helper()
	var typed time.Time
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out.String(), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the terminal after typing %q for 20s; it shows %s", want, line, visible(out.String()))
		}
		if time.Since(typed) > 300*time.Millisecond {
			typed = time.Now()
			m.Write([]byte(line + "\r"))
		}
	}
}

// resizeTerminal gives the CLI's terminal a new size and waits for the
// container's shell to see it. The CLI listens for SIGWINCH only once it
// has started the container and sent its first resize, and the shell
// may show the first size before that (API 1.42 clients give it at
// create), so a first resize is signalled to the CLI again until it has
// been seen; any later one must get through on the kernel's one signal.
func resizeTerminal(t *testing.T, cli *exec.Cmd, m *os.File, out *lockedBuffer, rows, cols uint16, first bool) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d %d", rows, cols)
	var typed time.Time
	signalled := time.Now()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out.String(), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the container's terminal is not %s after 20s (first resize: %v); it shows %s", want, first, visible(out.String()))
		}
		if time.Since(typed) > 300*time.Millisecond {
			typed = time.Now()
			m.Write([]byte("stty size\r"))
		}
		if first && time.Since(signalled) > time.Second {
			signalled = time.Now()
			cli.Process.Signal(syscall.SIGWINCH)
		}
	}
}

// waitExit waits for cmd and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd, what string) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCodeOf(err)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s did not end", what)
	}
	return -1
}

// dockerTerminalSteps: run -it, exec -it and attach on ptys, with the
// terminal's size (the CLI's resize calls), detach keys and exit codes.
func dockerTerminalSteps(t *testing.T, s *dockerSession) {
	run, m, out := s.onPty(30, 100, "run", "-it", "--name", "tty", demoImage, "sh")
	typeUntil(t, m, out, "stty size", "30 100")
	// Resizes of the CLI's terminal: SIGWINCH to the CLI, which posts
	// the new size to /containers/{id}/resize.
	resizeTerminal(t, run, m, out, 41, 123, true)
	resizeTerminal(t, run, m, out, 42, 124, false)
	typeUntil(t, m, out, "echo typed-$((40+2))", "typed-42")
	// ctrl-p ctrl-q: the CLI detaches, the container runs on.
	m.Write([]byte{16, 17})
	if code := waitExit(t, run, "docker run -it after the detach keys"); code != 0 {
		t.Errorf("docker run -it detached with exit %d, want 0; output %s", code, visible(out.String()))
	}
	if got := s.ok("inspect", "-f", "{{.State.Running}} {{.Config.Tty}} {{.Config.OpenStdin}}", "tty"); strings.TrimSpace(got) != "true true true" {
		t.Fatalf("after the detach: %q", got)
	}

	ex, m2, out2 := s.onPty(25, 90, "exec", "-it", "tty", "sh")
	typeUntil(t, m2, out2, "stty size", "25 90")
	resizeTerminal(t, ex, m2, out2, 26, 91, true)
	resizeTerminal(t, ex, m2, out2, 27, 92, false)
	typeUntil(t, m2, out2, "tty", "/dev/pts/")
	m2.Write([]byte("exit 4\r"))
	if code := waitExit(t, ex, "docker exec -it"); code != 4 {
		t.Errorf("docker exec -it: exit %d, want 4; output %s", code, visible(out2.String()))
	}

	// attach: the shell of the run above, on another terminal.
	at, m3, out3 := s.onPty(33, 111, "attach", "tty")
	typeUntil(t, m3, out3, "echo attached-$((1+2))", "attached-3")
	typeUntil(t, m3, out3, "stty size", "33 111")
	m3.Write([]byte{16, 17})
	if code := waitExit(t, at, "docker attach after the detach keys"); code != 1 {
		t.Errorf("docker attach detached with exit %d, want docker's 1; output %s", code, visible(out3.String()))
	}
	out3.waitFor(t, "read escape sequence")
	if got := s.ok("inspect", "-f", "{{.State.Running}}", "tty"); strings.TrimSpace(got) != "true" {
		t.Fatalf("after attach's detach: %q", got)
	}
	// Custom detach keys do not stop ctrl-p ctrl-q reaching the shell;
	// the shell's exit ends the attach with its code.
	at, m3, out3 = s.onPty(24, 80, "attach", "--detach-keys", "ctrl-x,x", "tty")
	typeUntil(t, m3, out3, "echo again-$((2+2))", "again-4")
	m3.Write([]byte("exit 3\r"))
	if code := waitExit(t, at, "docker attach until the exit"); code != 3 {
		t.Errorf("docker attach of a shell that exits 3: exit %d; output %s", code, visible(out3.String()))
	}
	if got := s.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "tty"); strings.TrimSpace(got) != "exited 3" {
		t.Errorf("after the shell's exit: %q", got)
	}
	s.ok("rm", "tty")

	// API 1.42 and later: the CLI gives the terminal's size with the
	// create (and the exec's start), so the first instruction sees it.
	v := strings.TrimSpace(s.ok("version", "--format", "{{.Client.APIVersion}}"))
	if versionAtLeast(v, "1.42") {
		run, _, out := s.onPty(27, 77, "run", "-it", "--name", "sized", demoImage, "stty", "size")
		if code := waitExit(t, run, "docker run -it stty size"); code != 0 {
			t.Errorf("docker run -it stty size: exit %d", code)
		}
		out.waitFor(t, "27 77")
		if got := s.ok("inspect", "-f", "{{.HostConfig.ConsoleSize}}", "sized"); strings.TrimSpace(got) != "[27 77]" {
			t.Errorf("HostConfig.ConsoleSize: %q", got)
		}
		s.ok("rm", "sized")
		s.ok("run", "-d", "-t", "--name", "sized", demoImage, "sleep", "100")
		ex, _, out := s.onPty(23, 71, "exec", "-it", "sized", "stty", "size")
		if code := waitExit(t, ex, "docker exec -it stty size"); code != 0 {
			t.Errorf("docker exec -it stty size: exit %d", code)
		}
		out.waitFor(t, "23 71")
		s.ok("rm", "-f", "sized")
	} else {
		t.Logf("docker CLI API %s: no console size at create (1.42 and later)", v)
	}
}

// versionAtLeast compares "X.Y" versions.
func versionAtLeast(v, want string) bool {
	var a, b, c, d int
	fmt.Sscanf(v, "%d.%d", &a, &b)
	fmt.Sscanf(want, "%d.%d", &c, &d)
	return a > c || a == c && b >= d
}

// dockerPortRestartHealthSteps: -p and docker port, --restart with the
// restart count, --health-cmd with ps's "(healthy)", and system df.
func dockerPortRestartHealthSteps(t *testing.T, s *dockerSession) {
	s.ok("run", "-d", "--name", "pub", "-p", "127.0.0.1::80", demoImage, "sh", "-c",
		"mkdir -p /www && echo served-through-the-port > /www/index.html && httpd -f -p 80 -h /www")
	portOut := s.ok("port", "pub")
	m := regexp.MustCompile(`^80/tcp -> 127\.0\.0\.1:([0-9]+)\n$`).FindStringSubmatch(portOut)
	if m == nil {
		t.Fatalf("docker port: %q", portOut)
	}
	if got := s.ok("port", "pub", "80"); got != "127.0.0.1:"+m[1]+"\n" {
		t.Errorf("docker port pub 80: %q", got)
	}
	var body string
	waitFor(t, 10*time.Second, "httpd through the port docker port names", func() bool {
		resp, err := http.Get("http://127.0.0.1:" + m[1] + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return true
	})
	if body != "served-through-the-port\n" {
		t.Errorf("through the published port: %q", body)
	}
	if _, errOut, code := s.d("port", "pub", "81"); code == 0 || !strings.Contains(errOut, "81") {
		t.Errorf("docker port of a port not published: exit %d %s", code, errOut)
	}

	// logs -f: what was written, what comes while it follows, and its
	// end at the container's exit.
	s.ok("run", "-d", "--name", "talker", demoImage, "sh", "-c", "echo one; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo two >&2; echo three")
	follow := s.command("logs", "-f", "talker")
	var followed, followedErr lockedBuffer
	follow.Stdout, follow.Stderr = &followed, &followedErr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	followed.waitFor(t, "one\n")
	s.ok("exec", "talker", "touch", "/tmp/go")
	// (stdout and stderr are two streams: no order between them.)
	if code := waitExit(t, follow, "docker logs -f at the container's exit"); code != 0 || followed.String() != "one\nthree\n" || followedErr.String() != "two\n" {
		t.Errorf("docker logs -f: exit %d, stdout %q, stderr %q", code, followed.String(), followedErr.String())
	}
	s.ok("rm", "talker")

	// A container that fails is restarted twice, then left exited.
	s.ok("run", "-d", "--name", "flaky", "--restart", "on-failure:2", demoImage, "sh", "-c", "echo run; exit 7")
	waitFor(t, 30*time.Second, "two restarts and the last exit", func() bool {
		got, _, _ := s.d("inspect", "-f", "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}", "flaky")
		return strings.TrimSpace(got) == "2 exited 7"
	})
	if logs, _, _ := s.d("logs", "flaky"); logs != "run\nrun\nrun\n" {
		t.Errorf("logs of three runs: %q", logs)
	}
	if got := s.ok("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", "flaky"); strings.TrimSpace(got) != "on-failure:2" {
		t.Errorf("restart policy: %q", got)
	}

	s.ok("run", "-d", "--name", "hc", "--health-cmd", "test -e /tmp/ready", "--health-interval", "1s", "--health-retries", "1", demoImage, "sh", "-c", "touch /tmp/ready; sleep 100")
	waitFor(t, 30*time.Second, "docker ps to show the container healthy", func() bool {
		got, _, _ := s.d("ps", "--filter", "name=hc", "--format", "{{.Status}}")
		return strings.Contains(got, "(healthy)")
	})
	if got := s.ok("inspect", "-f", "{{.State.Health.Status}} {{(index .State.Health.Log 0).ExitCode}} {{index .Config.Healthcheck.Test 0}}", "hc"); strings.TrimSpace(got) != "healthy 0 CMD-SHELL" {
		t.Errorf("docker inspect of the health: %q", got)
	}
	s.ok("exec", "hc", "rm", "/tmp/ready")
	waitFor(t, 30*time.Second, "docker ps to show the container unhealthy", func() bool {
		got, _, _ := s.d("ps", "--filter", "health=unhealthy", "--format", "{{.Names}} {{.Status}}")
		return strings.HasPrefix(got, "hc ") && strings.Contains(got, "(unhealthy)")
	})

	// system df: the one image, used by the three containers (two
	// running), no volumes.
	df := s.ok("system", "df", "--format", "{{.Type}}:{{.TotalCount}}:{{.Active}}")
	for _, want := range []string{"Images:1:1\n", "Containers:3:2\n", "Local Volumes:0:0\n"} {
		if !strings.Contains(df, want) {
			t.Errorf("docker system df lacks %q: %q", want, df)
		}
	}
	s.ok("volume", "create", "dfvol")
	s.ok("run", "--rm", "-v", "dfvol:/data", demoImage, "sh", "-c", "head -c 100000 /dev/zero > /data/f")
	if dfv := s.ok("system", "df", "-v"); !regexp.MustCompile(`dfvol\s+0\s+100(\.0)?kB`).MatchString(dfv) {
		t.Errorf("docker system df -v: the volume's size: %q", dfv)
	}
	s.ok("rm", "-f", "pub", "flaky", "hc")
	s.ok("volume", "rm", "dfvol")
}

// docker login (POST /auth) and push (POST /images/{name}/push) against a
// registry with TLS and htpasswd, then a pull of what was pushed.
func TestDockerAPIPushLogin(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	reg := registrytest.Start(t, registrytest.Options{TLS: true, Auth: true, Users: map[string]string{"alice": "s3cret"}})
	cfg := fmt.Sprintf(`{"registries": {%q: {"ca_file": %q}}}`, reg.Addr, reg.CAFile)
	if err := os.WriteFile(envValue(e.env, "BERTH_REGISTRY_CONFIG"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := e.serveDocker()
	for i, docker := range dockerClients(t) {
		t.Run(strings.ReplaceAll(strings.TrimPrefix(docker, "/"), "/", "-"), func(t *testing.T) {
			s := newDockerSession(t, docker, sock)
			// A repository of each CLI's, so that the first push of each
			// uploads its layer.
			repo := fmt.Sprintf("team/bb%d", i)
			ref := reg.Addr + "/" + repo + ":v1"
			s.ok("tag", demoImage, ref)
			// Not logged in: the registry refuses, the CLI says so.
			if out, errOut, code := s.d("push", ref); code == 0 || !strings.Contains(out+errOut, "requires authentication") || !strings.Contains(out+errOut, "docker login "+reg.Addr) {
				t.Errorf("an anonymous push: exit %d %s%s", code, out, errOut)
			}
			if out, errOut, code := s.dIn("wrong\n", "login", "-u", "alice", "--password-stdin", reg.Addr); code == 0 || !strings.Contains(strings.ToLower(errOut), "unauthorized") {
				t.Errorf("docker login with a wrong password: exit %d %s%s", code, out, errOut)
			}
			if out, errOut, code := s.dIn("s3cret\n", "login", "-u", "alice", "--password-stdin", reg.Addr); code != 0 || !strings.Contains(out, "Login Succeeded") {
				t.Fatalf("docker login: exit %d %s%s", code, out, errOut)
			}
			out := s.ok("push", ref)
			if !strings.Contains(out, "The push refers to repository ["+reg.Addr+"/"+repo+"]") || !strings.Contains(out, "Pushed") ||
				!regexp.MustCompile(`v1: digest: sha256:[0-9a-f]{64} size: [0-9]+`).MatchString(out) {
				t.Errorf("docker push: %q", out)
			}
			digest := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(out)
			// The registry has it, under that digest.
			req := reg.NewRequest(t, "HEAD", "/v2/"+repo+"/manifests/v1", nil)
			req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
			resp, err := reg.Client().Do(req)
			if err != nil || resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != digest {
				t.Errorf("the registry's manifest after the push: %v %v, want %s", resp, err, digest)
			}
			if resp != nil {
				resp.Body.Close()
			}
			// The daemon's view of the registry (distribution
			// inspect, as compose's --resolve-image-digests asks),
			// with the client's credentials and without them.
			distribution := func(auth string) (int, string) {
				c, _ := dockerAPIRaw(t, sock)
				req, _ := http.NewRequest("GET", "http://docker/v1.41/distribution/"+ref+"/json", nil)
				if auth != "" {
					req.Header.Set("X-Registry-Auth", base64.URLEncoding.EncodeToString([]byte(auth)))
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			if code, body := distribution(`{"username":"alice","password":"s3cret","serveraddress":"` + reg.Addr + `"}`); code != 200 ||
				!strings.Contains(body, `"digest":"`+digest+`"`) || !strings.Contains(body, `"architecture":"`+runtime.GOARCH+`"`) {
				t.Errorf("distribution inspect: %d %s", code, body)
			}
			if code, body := distribution(""); code != 401 {
				t.Errorf("distribution inspect without credentials: %d %s", code, body)
			}
			// A second tag: its layer is there already.
			ref2 := reg.Addr + "/" + repo + ":v2"
			s.ok("tag", demoImage, ref2)
			if out := s.ok("push", ref2); !strings.Contains(out, "Layer already exists") {
				t.Errorf("a push of layers the registry has: %q", out)
			}
			s.ok("rmi", ref, ref2)
			if out := s.ok("pull", ref); !strings.Contains(out, "Digest: "+digest) {
				t.Errorf("docker pull of what was pushed: %q", out)
			}
			s.ok("rmi", ref)
			s.ok("logout", reg.Addr)
		})
	}
	e.checkNothingLeft()
}

// berth serve on TCP: with TLS and client certificates the docker CLI's
// --tlsverify works and a client without the CA's certificate is refused;
// plain TCP only on loopback with --insecure-loopback.
func TestDockerAPITCP(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	certs := tlstest.Write(t, t.TempDir())
	freePort := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	}
	// Refusals: berth serve exits at once, saying why.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-H", "tcp://127.0.0.1:" + freePort()}, "--tlsverify"},
		{[]string{"-H", "tcp://0.0.0.0:" + freePort(), "--insecure-loopback"}, "plain TCP is refused"},
		{[]string{"-H", "tcp://127.0.0.1:" + freePort(), "--tlsverify", "--tlscert", certs.ServerCert, "--tlskey", certs.ServerKey}, "--tlscacert"},
		{[]string{"-H", "unix://" + filepath.Join(t.TempDir(), "s.sock"), "--tlsverify"}, "for a tcp:// --host"},
	} {
		if _, errOut, err := e.try(append([]string{"serve"}, tc.args...)...); err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("berth serve %s: %v %s, want an error with %q", strings.Join(tc.args, " "), err, errOut, tc.want)
		}
	}
	tlsAddr := "127.0.0.1:" + freePort()
	plainAddr := "127.0.0.1:" + freePort()
	sock := filepath.Join(t.TempDir(), "d.sock")
	e.serveWith("-H", "unix://"+sock, "-H", "tcp://"+tlsAddr, "--tlsverify", "--tlscacert", certs.CA, "--tlscert", certs.ServerCert, "--tlskey", certs.ServerKey)
	e.serveWith("--docker-socket", filepath.Join(t.TempDir(), "p.sock"), "-H", "tcp://"+plainAddr, "--insecure-loopback")
	for _, docker := range dockerClients(t) {
		t.Run(strings.ReplaceAll(strings.TrimPrefix(docker, "/"), "/", "-"), func(t *testing.T) {
			d := func(env []string, args ...string) (string, string, int) {
				cmd := exec.Command(docker, args...)
				cmd.Env = append(append(os.Environ(), "DOCKER_CONFIG="+t.TempDir()), env...)
				var out, errb strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &errb
				err := cmd.Run()
				return out.String(), errb.String(), exitCodeOf(err)
			}
			tlsFlags := []string{"--tlsverify", "--tlscacert", certs.CA, "--tlscert", certs.ClientCert, "--tlskey", certs.ClientKey, "-H", "tcp://" + tlsAddr}
			if out, errOut, code := d(nil, append(tlsFlags, "run", "--rm", demoImage, "echo", "over TLS")...); code != 0 || out != "over TLS\n" {
				t.Errorf("docker --tlsverify run: exit %d %q %s", code, out, errOut)
			}
			// DOCKER_CERT_PATH's file names, as the CLI's environment.
			if out, errOut, code := d([]string{"DOCKER_HOST=tcp://" + tlsAddr, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH=" + certs.Dir}, "version", "--format", "{{.Server.Platform.Name}}"); code != 0 || !strings.HasPrefix(out, "berth") {
				t.Errorf("docker version over TLS from the environment: exit %d %q %s", code, out, errOut)
			}
			// Exec's and attach's hijacked streams over TLS.
			id := ""
			if out, errOut, code := d(nil, append(tlsFlags, "run", "-d", demoImage, "sleep", "100")...); code != 0 {
				t.Fatalf("docker run -d over TLS: %d %s", code, errOut)
			} else {
				id = strings.TrimSpace(out)
			}
			if out, errOut, code := d(nil, append(tlsFlags, "exec", id, "sh", "-c", "echo in-exec; exit 2")...); code != 2 || out != "in-exec\n" {
				t.Errorf("docker exec over TLS: exit %d %q %s", code, out, errOut)
			}
			d(nil, append(tlsFlags, "rm", "-f", id)...)
			// Without a certificate, or with another CA's: no answer.
			noCert := []string{"--tlsverify", "--tlscacert", certs.CA, "-H", "tcp://" + tlsAddr}
			if out, errOut, code := d(nil, append(noCert, "version", "--format", "{{.Server.Version}}")...); code == 0 || strings.TrimSpace(out) != "" {
				t.Errorf("docker without a client certificate: exit %d %q %s", code, out, errOut)
			}
			stranger := []string{"--tlsverify", "--tlscacert", certs.CA, "--tlscert", certs.UntrustedCert, "--tlskey", certs.UntrustedKey, "-H", "tcp://" + tlsAddr}
			if out, errOut, code := d(nil, append(stranger, "version", "--format", "{{.Server.Version}}")...); code == 0 || strings.TrimSpace(out) != "" {
				t.Errorf("docker with another CA's certificate: exit %d %q %s", code, out, errOut)
			}
			// The same objects on every listener.
			if out, _, code := d([]string{"DOCKER_HOST=unix://" + sock}, "images", "--format", "{{.Repository}}"); code != 0 || !strings.Contains(out, "berth-demo/busybox") {
				t.Errorf("docker images on the unix socket beside TCP: %d %q", code, out)
			}
			if out, errOut, code := d([]string{"DOCKER_HOST=tcp://" + plainAddr}, "version", "--format", "{{.Server.Platform.Name}}"); code != 0 || !strings.HasPrefix(out, "berth") {
				t.Errorf("docker over plain TCP on loopback with --insecure-loopback: exit %d %q %s", code, out, errOut)
			}
		})
	}
	e.checkNothingLeft()
}
