package integration

import (
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/berth-dev/berth/internal/image/registrytest"
)

// serveDocker starts `berth serve` on a Docker API socket of the test's
// and returns the socket's path; see serveAPI.
func (e *engineEnv) serveDocker() string { return e.serveAPI("--docker-socket").sock }

// served is a running `berth serve`: its socket, process and log.
type served struct {
	sock, log string
	pid       int
}

// serveDockerProcess is serveDocker with the process and its log.
func (e *engineEnv) serveDockerProcess() served { return e.serveAPI("--docker-socket") }

// serveAPI starts `berth serve` with flag (--docker-socket, --cri-socket)
// naming a socket of the test's.
func (e *engineEnv) serveAPI(flag string) served {
	e.t.Helper()
	sock := filepath.Join(e.t.TempDir(), "api.sock")
	return e.serveWith(flag, sock)
}

// serveWith starts `berth serve` with args, which name a unix socket
// (--docker-socket, --cri-socket, or -H unix://), and waits for that
// socket to answer; it is stopped (SIGTERM) at the end of the test, which
// must leave no socket behind.
func (e *engineEnv) serveWith(args ...string) served {
	e.t.Helper()
	sock := ""
	for i, a := range args {
		if i > 0 && (args[i-1] == "--docker-socket" || args[i-1] == "--cri-socket") {
			sock = a
		} else if p, ok := strings.CutPrefix(a, "unix://"); ok && sock == "" {
			sock = p
		}
	}
	if sock == "" {
		e.t.Fatal("serveWith: name a unix socket to wait for")
	}
	cmd := e.command(append([]string{"serve"}, args...)...)
	logPath := filepath.Join(e.t.TempDir(), "serve.log")
	logf, err := os.Create(logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		// What serve said, for a test that failed.
		defer func() {
			if b, err := os.ReadFile(logf.Name()); err == nil && e.t.Failed() {
				e.t.Logf("berth serve %s:\n%s", strings.Join(args, " "), b)
			}
		}()
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("berth serve ended with %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			e.t.Errorf("berth serve did not end on SIGTERM")
		}
		if _, err := os.Stat(sock); err == nil {
			e.t.Errorf("the socket %s is left", sock)
		}
	})
	waitFor(e.t, 10*time.Second, "the socket "+sock, func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return served{sock: sock, log: logPath, pid: cmd.Process.Pid}
}

// dockerAPIRaw is an HTTP client of the Docker API on sock, and a call
// through it that returns the status, the headers and the body.
func dockerAPIRaw(t *testing.T, sock string) (*http.Client, func(method, path, body string) (int, http.Header, []byte)) {
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	return client, func(method, path, body string) (int, http.Header, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://docker"+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b
	}
}

// dockerAPI is dockerAPIRaw with a call that returns the body and fails
// the test on any status but wantCode.
func dockerAPI(t *testing.T, sock string) (*http.Client, func(method, path, body string, wantCode int) []byte) {
	client, raw := dockerAPIRaw(t, sock)
	return client, func(method, path, body string, wantCode int) []byte {
		t.Helper()
		code, _, b := raw(method, path, body)
		if code != wantCode {
			t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, wantCode)
		}
		return b
	}
}

// dockerClients are the docker CLIs on this machine: Debian's (20.10)
// and a current one, when present.
func dockerClients(t *testing.T) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range []string{"/usr/local/bin/docker", "/usr/bin/docker"} {
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		out = append(out, p)
	}
	if len(out) == 0 {
		t.Skip("no docker CLI (apt-get install docker.io)")
	}
	return out
}

func TestDockerAPICLI(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	sock := e.serveDocker()
	for _, docker := range dockerClients(t) {
		t.Run(strings.ReplaceAll(strings.TrimPrefix(docker, "/"), "/", "-"), func(t *testing.T) {
			d := func(args ...string) (string, string, int) {
				t.Helper()
				cmd := exec.Command(docker, args...)
				cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+t.TempDir())
				var out, errb strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &errb
				err := cmd.Run()
				code := 0
				if err != nil {
					code = -1
					if ee, ok := err.(*exec.ExitError); ok {
						code = ee.ExitCode()
					}
				}
				return out.String(), errb.String(), code
			}
			ok := func(args ...string) string {
				t.Helper()
				out, errOut, code := d(args...)
				if code != 0 {
					t.Fatalf("docker %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
				}
				return out
			}
			if v := ok("version", "--format", "{{.Server.Platform.Name}} {{.Server.APIVersion}}"); !strings.HasPrefix(v, "berth 1.") {
				t.Errorf("docker version: %q", v)
			}
			id := strings.TrimSpace(ok("run", "-d", "--name", "web", "-l", "tier=front", "-e", "GREETING=hello", "berth-demo/busybox", "sh", "-c", "echo $GREETING; sleep 100"))
			if len(id) != 64 {
				t.Fatalf("docker run -d printed %q", id)
			}
			// One set of objects: berth sees what docker made.
			if got := strings.TrimSpace(e.run("ps", "-q", "--no-trunc")); got != id {
				t.Errorf("berth ps after docker run: %q, want %s", got, id)
			}
			// name is a regular expression, with or without the slash
			// (testcontainers looks containers up by ^NAME$).
			for filter, want := range map[string]string{"name=^web$": "web\n", "name=^/web$": "web\n", "name=^eb": "", "name=we": "web\n"} {
				if got := ok("ps", "--filter", filter, "--format", "{{.Names}}"); got != want {
					t.Errorf("docker ps --filter %s: %q, want %q", filter, got, want)
				}
			}
			if got := ok("ps", "--filter", "label=tier=front", "--format", "{{.Names}} {{.State}}"); strings.TrimSpace(got) != "web running" {
				t.Errorf("docker ps --filter label: %q", got)
			}
			if got := ok("ps", "--filter", "label=tier=back", "-q"); strings.TrimSpace(got) != "" {
				t.Errorf("docker ps with a label nobody has: %q", got)
			}
			waitFor(t, 5*time.Second, "the log line", func() bool { out, _, _ := d("logs", "web"); return out == "hello\n" })
			if got := ok("inspect", "-f", "{{.Name}} {{.State.Status}} {{index .Config.Labels \"tier\"}}", "web"); strings.TrimSpace(got) != "/web running front" {
				t.Errorf("docker inspect: %q", got)
			}
			// exec: output, exit code, stdin, a missing command.
			if out, errOut, code := d("exec", "web", "sh", "-c", "echo in-exec; echo err >&2; exit 5"); out != "in-exec\n" || errOut != "err\n" || code != 5 {
				t.Errorf("docker exec (exit 5): %q %q %d", out, errOut, code)
			}
			ex := exec.Command(docker, "exec", "-i", "web", "tr", "a-z", "A-Z")
			ex.Env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+t.TempDir())
			ex.Stdin = strings.NewReader("piped\n")
			if out, err := ex.Output(); err != nil || string(out) != "PIPED\n" {
				t.Errorf("docker exec -i: %q %v", out, err)
			}
			if _, errOut, code := d("exec", "web", "no-such-command"); code != 127 || !strings.Contains(errOut, "no-such-command") {
				t.Errorf("docker exec of a missing command: exit %d, %s", code, errOut)
			}
			// events: the journal, replayed with since/until and filtered.
			if got := ok("events", "--since", "5m", "--until", fmt.Sprint(time.Now().Add(time.Second).Unix()), "--filter", "container="+id, "--filter", "event=start", "--format", "{{.Action}} {{.Actor.Attributes.name}}"); strings.TrimSpace(got) != "start web" {
				t.Errorf("docker events: %q", got)
			}
			ok("stop", "-t", "1", "web")
			if got := strings.TrimSpace(ok("wait", "web")); got != "137" {
				t.Errorf("docker wait after stop: %q", got)
			}
			if got := ok("ps", "-a", "--format", "{{.Status}}"); !strings.HasPrefix(got, "Exited (137)") {
				t.Errorf("docker ps -a: %q", got)
			}
			// docker's errors and exit codes.
			if _, errOut, code := d("inspect", "nope"); code != 1 || !strings.Contains(errOut, "No such object") {
				t.Errorf("docker inspect nope: exit %d, %s", code, errOut)
			}
			if _, errOut, code := d("rm", "nope"); code != 1 || !strings.Contains(errOut, "No such container: nope") {
				t.Errorf("docker rm nope: exit %d, %s", code, errOut)
			}
			ok("rm", "web")
			session := newDockerSession(t, docker, sock)
			dockerTerminalSteps(t, session)
			dockerPortRestartHealthSteps(t, session)
			// In the foreground: attach before start, output in order,
			// the exit code, stdin, --rm.
			if out, errOut, code := d("run", "--rm", "berth-demo/busybox", "sh", "-c", "echo out; echo err >&2; exit 3"); out != "out\n" || errOut != "err\n" || code != 3 {
				t.Errorf("docker run --rm (exit 3): %q %q %d", out, errOut, code)
			}
			// -v /path: an anonymous volume (Config.Volumes), gone with --rm.
			if out := ok("run", "--rm", "-v", "/anon", "berth-demo/busybox", "sh", "-c", "grep -c ' /anon ' /proc/mounts"); out != "1\n" {
				t.Errorf("docker run -v /anon: %q mounts on /anon", out)
			}
			if vols := e.run("volume", "ls", "-q"); strings.TrimSpace(vols) != "" {
				t.Errorf("volumes after docker run --rm -v /anon: %q", vols)
			}
			// A --rm container whose start fails is removed, as dockerd
			// does: the CLI waits for that removal before it reports
			// the error (it waited forever when the container stayed).
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			failed := exec.CommandContext(ctx, docker, "run", "--rm", "--name", "rmfailed", "berth-demo/busybox", "no-such-command")
			failed.Env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+t.TempDir())
			out, err := failed.CombinedOutput()
			cancel()
			if ee, isExit := err.(*exec.ExitError); !isExit || ee.ExitCode() != 127 || !strings.Contains(string(out), "no-such-command") {
				t.Errorf("docker run --rm of a missing command: %v (want exit 127 naming it; a kill means it hung): %s", err, out)
			}
			if left := e.run("ps", "-aq", "--filter", "name=rmfailed"); strings.TrimSpace(left) != "" {
				t.Errorf("a --rm container whose start failed is still there: %q", left)
			}
			in := exec.Command(docker, "run", "-i", "--rm", "berth-demo/busybox", "sh", "-c", "tr a-z A-Z; echo done")
			in.Env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+t.TempDir())
			in.Stdin = strings.NewReader("from stdin\n")
			if out, err := in.Output(); err != nil || string(out) != "FROM STDIN\ndone\n" {
				t.Errorf("docker run -i: %q %v", out, err)
			}
			if out := ok("run", "--name", "kept", "berth-demo/busybox", "echo", "kept"); out != "kept\n" {
				t.Errorf("docker run in the foreground: %q", out)
			}
			if got := ok("ps", "-a", "--filter", "name=kept", "--format", "{{.Status}}"); !strings.HasPrefix(got, "Exited (0)") {
				t.Errorf("after docker run: %q", got)
			}
			ok("rm", "kept")
			// Networks and volumes: create, use, connect, remove.
			ok("network", "create", "--label", "app=t", "apinet")
			if got := ok("network", "ls", "--filter", "label=app=t", "--format", "{{.Name}}"); strings.TrimSpace(got) != "apinet" {
				t.Errorf("docker network ls --filter label: %q", got)
			}
			ok("volume", "create", "--label", "app=t", "apivol")
			if got := ok("volume", "ls", "--filter", "label=app=t", "--format", "{{.Name}}"); strings.TrimSpace(got) != "apivol" {
				t.Errorf("docker volume ls --filter label: %q", got)
			}
			ok("run", "-d", "--name", "svc", "--network", "apinet", "-v", "apivol:/data", "berth-demo/busybox", "sh", "-c", "echo saved > /data/f; sleep 100")
			ok("run", "-d", "--name", "other", "berth-demo/busybox", "sleep", "100")
			ok("network", "connect", "--alias", "friend", "apinet", "other")
			if out, _, _ := d("exec", "other", "nslookup", "svc"); !strings.Contains(out, "Address") || !strings.Contains(out, "svc") {
				t.Errorf("a connected container does not find svc by name: %q", out)
			}
			ok("network", "disconnect", "apinet", "other")
			if got := ok("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "svc"); !strings.HasPrefix(strings.TrimSpace(got), "svc ") {
				t.Errorf("docker stats --no-stream: %q", got)
			}
			if _, errOut, code := d("network", "rm", "apinet"); code == 0 {
				t.Errorf("docker network rm of a network in use: exit 0 %s", errOut)
			}
			// cp both ways, top, diff, export, update.
			host := t.TempDir()
			os.WriteFile(filepath.Join(host, "in.txt"), []byte("into the container\n"), 0o644)
			ok("cp", filepath.Join(host, "in.txt"), "svc:/tmp/")
			if out, _, _ := d("exec", "svc", "cat", "/tmp/in.txt"); out != "into the container\n" {
				t.Errorf("docker cp into: %q", out)
			}
			ok("cp", "svc:/data/f", filepath.Join(host, "out.txt"))
			if b, _ := os.ReadFile(filepath.Join(host, "out.txt")); string(b) != "saved\n" {
				t.Errorf("docker cp out of: %q", b)
			}
			if _, errOut, code := d("cp", "svc:/no/such", host); code == 0 || !strings.Contains(errOut, "/no/such") {
				t.Errorf("docker cp of a missing path: %d %s", code, errOut)
			}
			if got := ok("top", "svc"); !strings.Contains(got, "sleep 100") || !strings.Contains(got, "PID") {
				t.Errorf("docker top: %q", got)
			}
			if got := ok("diff", "svc"); !strings.Contains(got, "A /tmp/in.txt") {
				t.Errorf("docker diff: %q", got)
			}
			exp := exec.Command(docker, "export", "svc")
			exp.Env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+t.TempDir())
			if tarData, err := exp.Output(); err != nil || !bytes.Contains(tarData, []byte("into the container")) {
				t.Errorf("docker export: %v, %d bytes", err, len(tarData))
			}
			ok("update", "--restart", "on-failure:2", "svc")
			if got := ok("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", "svc"); strings.TrimSpace(got) != "on-failure:2" {
				t.Errorf("after docker update: %q", got)
			}
			ok("rm", "-f", "svc", "other")
			ok("create", "--name", "idle", "berth-demo/busybox", "true")
			// The space reclaimed is the pruned containers' writable
			// layers: here a 3 MB file (docker prints 3.146MB).
			ok("run", "--name", "wrote", "berth-demo/busybox", "dd", "if=/dev/zero", "of=/three", "bs=1048576", "count=3")
			if got := ok("container", "prune", "-f"); !strings.Contains(got, "Total reclaimed space: 3.1") {
				t.Errorf("docker container prune: %q", got)
			}
			// A named volume's: -a where the CLI has it (API 1.42 and
			// later); an older CLI's prune takes named volumes too.
			ok("volume", "create", "--label", "reclaim=1", "filled")
			ok("run", "--rm", "-v", "filled:/v", "berth-demo/busybox", "dd", "if=/dev/zero", "of=/v/two", "bs=1048576", "count=2")
			got, errOut, code := d("volume", "prune", "-a", "-f", "--filter", "label=reclaim=1")
			if code != 0 && strings.Contains(errOut, "unknown shorthand flag: 'a'") {
				got = ok("volume", "prune", "-f", "--filter", "label=reclaim=1")
			}
			if !strings.Contains(got, "filled") || !strings.Contains(got, "Total reclaimed space: 2.09") {
				t.Errorf("docker volume prune: %q %s", got, errOut)
			}
			if got := ok("ps", "-aq"); strings.TrimSpace(got) != "" {
				t.Errorf("after docker container prune: %q", got)
			}
			// serve deletes a removed network's bridge after its
			// answer; a network made at once on the same subnet waits
			// for it, and the last one's goes too.
			subnet := strings.TrimSpace(ok("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "apinet"))
			bridge := strings.TrimSpace(ok("network", "inspect", "-f", `{{index .Options "com.docker.network.bridge.name"}}`, "apinet"))
			ok("network", "rm", "apinet")
			ok("network", "create", "--subnet", subnet, "apinet2")
			if out := ok("run", "--rm", "--network", "apinet2", "berth-demo/busybox", "ip", "-o", "-4", "addr", "show", "eth0"); !strings.Contains(out, strings.TrimSuffix(subnet, "0/24")) {
				t.Errorf("on a network made again on %s: %q", subnet, out)
			}
			ok("network", "rm", "apinet2")
			waitFor(t, 10*time.Second, "the removed networks' bridge "+bridge+" to go", func() bool {
				_, err := net.InterfaceByName(bridge)
				return err != nil
			})
			ok("volume", "rm", "apivol")
			ok("tag", "berth-demo/busybox", "example.test/copy:v1")
			if got := ok("images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(got, "example.test/copy:v1") {
				t.Errorf("after docker tag: %q", got)
			}
			if got := ok("rmi", "example.test/copy:v1"); !strings.Contains(got, "Untagged: example.test/copy:v1") {
				t.Errorf("docker rmi: %q", got)
			}
			if got := ok("images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(got, "berth-demo/busybox:latest") {
				t.Errorf("docker images: %q", got)
			}
			if got := ok("history", "--format", "{{.ID}}", "berth-demo/busybox"); !strings.HasPrefix(got, "sha256:") && len(strings.TrimSpace(got)) != 12 {
				t.Errorf("docker history: %q", got)
			}
			saved := filepath.Join(t.TempDir(), "saved.tar")
			ok("tag", "berth-demo/busybox", "example.test/saved:v1")
			// The image list's filters, on the server's side: a name
			// (the reference filter; only its own tags listed), a
			// pattern, dangling, and a filter docker does not know.
			if got := ok("images", "--format", "{{.Repository}}:{{.Tag}}", "berth-demo/busybox"); got != "berth-demo/busybox:latest\n" {
				t.Errorf("docker images berth-demo/busybox: %q", got)
			}
			if got := ok("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=example.test/*:v1"); got != "example.test/saved:v1\n" {
				t.Errorf("docker images --filter reference=example.test/*:v1: %q", got)
			}
			if got := ok("images", "-q", "no-such-image"); got != "" {
				t.Errorf("docker images of a name no image has: %q", got)
			}
			if got := ok("images", "-q", "--filter", "dangling=true"); got != "" {
				t.Errorf("docker images --filter dangling=true: %q", got)
			}
			if _, errOut, code := d("images", "--filter", "bogus=1"); code == 0 || !strings.Contains(errOut, "invalid filter 'bogus'") {
				t.Errorf("docker images --filter bogus=1: exit %d, %s", code, errOut)
			}
			ok("save", "-o", saved, "example.test/saved:v1")
			ok("rmi", "example.test/saved:v1")
			if got := ok("load", "-i", saved); !strings.Contains(got, "Loaded image: example.test/saved:v1") {
				t.Errorf("docker load: %q", got)
			}
			if got := ok("images", "-q", "example.test/saved:v1"); strings.TrimSpace(got) == "" {
				t.Errorf("the loaded image is not listed")
			}
			ok("rmi", "example.test/saved:v1")
			// import: an exported container's files as an image of
			// one layer, named or not, with changes and a message.
			ok("create", "--name", "toexport", demoImage, "true")
			rootfs := saved + ".rootfs"
			ok("export", "-o", rootfs, "toexport")
			ok("rm", "toexport")
			imported := strings.TrimSpace(ok("import", "-c", "ENV IMPORTED=yes", "-c", `CMD ["sh", "-c", "echo $IMPORTED"]`, "-m", "from a test", rootfs, "example.test/imported:v1"))
			if !strings.HasPrefix(imported, "sha256:") || len(imported) != 71 {
				t.Errorf("docker import printed %q", imported)
			}
			if got := ok("run", "--rm", "example.test/imported:v1"); got != "yes\n" {
				t.Errorf("the imported image's CMD and ENV: %q", got)
			}
			if got := ok("history", "--format", "{{.Comment}}", "example.test/imported:v1"); !strings.Contains(got, "from a test") {
				t.Errorf("the imported image's history: %q", got)
			}
			unnamed := strings.TrimSpace(ok("import", rootfs))
			if got := ok("images", "-q", "--no-trunc", "--filter", "dangling=true"); strings.TrimSpace(got) != unnamed {
				t.Errorf("an unnamed import, %s, listed dangling as %q", unnamed, got)
			}
			if _, errOut, code := d("import", "http://127.0.0.1:9/rootfs.tar"); code == 0 || !strings.Contains(errOut, "does not fetch") {
				t.Errorf("docker import of a URL: exit %d, %s", code, errOut)
			}
			ok("rmi", "example.test/imported:v1", unnamed)
			os.Remove(rootfs)
			// commit: a container's changes, with changes and a
			// message, as an image a new container runs.
			ok("run", "--name", "tocommit", demoImage, "sh", "-c", "echo committed > /c")
			committed := strings.TrimSpace(ok("commit", "-c", "ENV FROM_COMMIT=1", "-m", "api commit", "-a", "tester", "tocommit", "example.test/committed:v1"))
			if !strings.HasPrefix(committed, "sha256:") {
				t.Errorf("docker commit printed %q", committed)
			}
			if got := ok("run", "--rm", "example.test/committed:v1", "sh", "-c", "cat /c; echo $FROM_COMMIT"); got != "committed\n1\n" {
				t.Errorf("the committed image: %q", got)
			}
			if got := ok("history", "--format", "{{.Comment}}", "example.test/committed:v1"); !strings.Contains(got, "api commit") {
				t.Errorf("the committed image's history: %q", got)
			}
			if _, errOut, code := d("commit", "nosuch-container"); code == 0 || !strings.Contains(errOut, "No such container") {
				t.Errorf("docker commit of no container: exit %d, %s", code, errOut)
			}
			ok("rm", "tocommit")
			ok("rmi", "example.test/committed:v1")
			if got := ok("network", "ls", "--format", "{{.Name}} {{.Driver}}"); !strings.Contains(got, "bridge") {
				t.Errorf("docker network ls: %q", got)
			}
			if got := ok("info", "--format", "{{.Containers}} {{.OSType}} {{.Driver}} {{.Swarm.LocalNodeState}}"); strings.TrimSpace(got) != "0 linux overlay inactive" {
				t.Errorf("docker info: %q", got)
			}
			if out := e.run("ps", "-aq"); strings.TrimSpace(out) != "" {
				t.Errorf("containers left: %s", out)
			}
		})
	}
	e.checkNothingLeft()
}

// The API's answers to what clients send wrong, and its version rules.
func TestDockerAPIErrors(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	sock := e.serveDocker()
	e.run("network", "create", "apierr")
	// The status and headers of these answers are what is tested.
	_, raw := dockerAPIRaw(t, sock)
	call := func(method, path, body string) (int, http.Header, string) {
		t.Helper()
		code, h, b := raw(method, path, body)
		return code, h, string(b)
	}
	message := func(body string) string {
		var m struct{ Message string }
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			return "not docker's error body: " + body
		}
		return m.Message
	}
	if code, h, body := call("HEAD", "/_ping", ""); code != 200 || h.Get("Api-Version") == "" || h.Get("Ostype") != "linux" || h.Get("Swarm") != "inactive" || body != "" {
		t.Errorf("HEAD /_ping: %d %v %q", code, h, body)
	}
	if code, _, body := call("GET", "/v1.41/_ping", ""); code != 200 || body != "OK" {
		t.Errorf("GET /v1.41/_ping: %d %q", code, body)
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"GET", "/v9.99/version", "", 400, "is too new"},
		{"GET", "/v1.12/version", "", 400, "is too old"},
		{"GET", "/v1/version", "", 400, "client version 1 is too old"},
		{"POST", "/containers/create", "{not json", 400, "invalid JSON"},
		{"POST", "/containers/create", `{"Image":5}`, 400, "invalid JSON"},
		{"POST", "/containers/create", `{"Image":"x"} and more`, 400, "invalid JSON"},
		{"POST", "/containers/create", `null`, 400, "image is required"},
		{"POST", "/networks/create", `{"Name":["n"]}`, 400, "invalid JSON"},
		{"POST", "/networks/create", `{"Name":"` + strings.Repeat("n", 5<<20) + `"}`, 400, "too large"},
		{"POST", "/volumes/create", `{"Name":`, 400, "invalid JSON"},
		{"POST", "/containers/create", `{"Image":""}`, 400, "image is required"},
		{"POST", "/containers/create", `{"Image":"no/such:image"}`, 404, "No such image: no/such:image"},
		{"POST", "/containers/create", `{"Image":"x","HostConfig":{"DeviceRequests":[{"Count":1}]}}`, 400, "DeviceRequests"},
		{"POST", "/containers/create", `{"Image":"` + demoImage + `","HostConfig":{"Links":["a:b"]}}`, 400, "links on user-defined networks only"},
		// 400, not 404: the docker CLI would pull on a 404.
		{"POST", "/containers/create", `{"Image":"` + demoImage + `","HostConfig":{"NetworkMode":"apierr","Links":["nosuch:x"]}}`, 400, "could not get container for nosuch"},
		// Issue 16: nothing silently ignored.
		{"POST", "/containers/create?platform=linux/arm64", `{"Image":"` + demoImage + `"}`, 404, "does not match the specified platform: wanted linux/arm64, actual: linux/amd64"},
		{"POST", "/containers/create", `{"Image":"` + demoImage + `","HostConfig":{"Mounts":[{"Type":"bind","Source":"/no/such/dir","Target":"/x"}]}}`, 400, "bind source path does not exist"},
		{"POST", "/containers/create", `{"Image":"` + demoImage + `","HostConfig":{"Mounts":[{"Type":"bind","Source":"/tmp","Target":"/x","VolumeOptions":{"NoCopy":true}}]}}`, 400, "VolumeOptions are for volumes"},
		{"POST", "/containers/create", `{"Image":"` + demoImage + `","HostConfig":{"Binds":["/tmp:/x:Z"]}}`, 400, "SELinux"},
		{"POST", "/containers/nope/start", "", 404, "No such container: nope"},
		{"POST", "/containers/nope/wait?condition=sometime", "", 404, "No such container"},
		{"GET", "/containers/nope/json", "", 404, "No such container: nope"},
		{"GET", "/images/no/such/json", "", 404, "No such image: no/such"},
		{"GET", "/no/such/route", "", 404, "page not found"},
		{"GET", "/swarm", "", 503, "not a swarm manager"},
		{"POST", "/containers/create", `{"Image":"` + strings.Repeat("x", 5<<20) + `"}`, 400, "too large"},
	} {
		code, _, body := call(tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(message(body), tc.msg) {
			t.Errorf("%s %s: %d %.200q, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.msg)
		}
	}
}

// docker pull, and docker run of an image that is not here (the CLI pulls
// on the create's 404), from a registry on loopback.
func TestDockerAPIPull(t *testing.T) {
	e := newEngine(t)
	sock := e.serveDocker()
	reg := registrytest.Start(t, registrytest.Options{})
	img := featureImage(t)
	img.Push(t, reg, "feature", "v1")
	ref := reg.Ref("feature", "v1")
	for _, docker := range dockerClients(t) {
		t.Run(strings.ReplaceAll(strings.TrimPrefix(docker, "/"), "/", "-"), func(t *testing.T) {
			d := func(args ...string) (string, string, error) {
				cmd := exec.Command(docker, args...)
				cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+t.TempDir())
				var out, errb strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &errb
				err := cmd.Run()
				return out.String(), errb.String(), err
			}
			out, errOut, err := d("pull", ref)
			if err != nil || !strings.Contains(out, "Pull complete") || !strings.Contains(out, "Digest: sha256:") || !strings.Contains(out, "Status: ") {
				t.Fatalf("docker pull: %v\n%s%s", err, out, errOut)
			}
			if got := e.run("images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(got, reg.Addr+"/feature:v1") {
				t.Errorf("berth images after docker pull: %q", got)
			}
			if out, _, _ := d("pull", ref); !strings.Contains(out, "Image is up to date") {
				t.Errorf("a second pull: %q", out)
			}
			// Not here: the CLI pulls it when the create says 404.
			e.run("rmi", ref)
			out, errOut, err = d("create", "--name", "pulled", ref)
			if err != nil || !strings.Contains(errOut, "Unable to find image") || len(strings.TrimSpace(out)) != 64 {
				t.Errorf("docker create of a missing image: %v %q %q", err, out, errOut)
			}
			e.run("rm", "pulled")
			if _, errOut, err := d("pull", reg.Addr+"/no-such-repo:v1"); err == nil || errOut == "" {
				t.Errorf("a pull of a missing repository: %v %q", err, errOut)
			}
			e.run("rmi", ref)
		})
	}
}
