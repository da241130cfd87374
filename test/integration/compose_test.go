//go:build linux

package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/image/registrytest"
)

// composeBinary is docker compose as scripts/build-compose.sh builds it
// (the release tools/compose pins): $BERTH_COMPOSE when make gives it,
// else built (or found in the cache) here.
func composeBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BERTH_COMPOSE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("BERTH_COMPOSE: %v", err)
		}
		return p
	}
	script, _ := filepath.Abs("../../scripts/build-compose.sh")
	var out, errb bytes.Buffer
	cmd := exec.Command(script)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Skipf("docker compose could not be built (scripts/build-compose.sh needs Go and the module proxy): %v: %s", err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// composeCommands runs compose on project file against the docker socket
// sock: run gives stdout, stderr and the exit status; ok fails the test
// unless compose succeeds, and gives stdout; command is the command
// line, for the caller to run.
func composeCommands(t *testing.T, compose, sock, file, project string) (run func(...string) (string, string, int), ok func(...string) string, command func(...string) *exec.Cmd) {
	cfg := t.TempDir()
	command = func(args ...string) *exec.Cmd {
		cmd := exec.Command(compose, append([]string{"-f", file, "-p", project}, args...)...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+cfg)
		return cmd
	}
	run = func(args ...string) (string, string, int) {
		t.Helper()
		cmd := command(args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		code := 0
		if err := cmd.Run(); err != nil {
			ee, isExit := err.(*exec.ExitError)
			if !isExit {
				t.Fatalf("compose %s: %v", strings.Join(args, " "), err)
			}
			code = ee.ExitCode()
		}
		return out.String(), errb.String(), code
	}
	ok = func(args ...string) string {
		t.Helper()
		out, errOut, code := run(args...)
		if code != 0 {
			t.Fatalf("compose %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	return run, ok, command
}

// composePS is a line of `docker compose ps --format json`.
type composePS struct {
	Name, Service, State, Health string
	ExitCode                     int
}

// docker compose, unchanged, against `berth serve`: a project of a web
// server, a stand-in database with a named volume and a healthcheck, and a
// worker that waits for the database to be healthy and reaches both by
// service name over two user networks (testdata/compose). Then ps, logs,
// exec, restart, down and up again (the volume keeps the data), down -v:
// no container, network, volume or process is left.
func TestDockerCompose(t *testing.T) {
	compose := composeBinary(t)
	e := newEngine(t)
	e.loadDemoImage()
	sock := e.serveDocker()
	file, err := filepath.Abs("testdata/compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const project = "berthtest"
	run, ok, command := composeCommands(t, compose, sock, file, project)
	ps := func() map[string]composePS {
		t.Helper()
		out := ok("ps", "-a", "--format", "json")
		got := map[string]composePS{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var p composePS
			if err := json.Unmarshal([]byte(line), &p); err != nil {
				t.Fatalf("compose ps --format json: %q: %v", line, err)
			}
			got[p.Service] = p
		}
		return got
	}
	records := regexp.MustCompile(`worker: web=hello-from-web link=hello-from-web put=OK records=([0-9]+)`)
	// lastRecords is the records count of the worker's last good line:
	// it reached web and db by name.
	lastRecords := func() int {
		out := ok("logs", "--no-color", "worker")
		m := records.FindAllStringSubmatch(out, -1)
		if len(m) == 0 {
			return 0
		}
		n, _ := strconv.Atoi(m[len(m)-1][1])
		return n
	}
	count := func() int {
		t.Helper()
		out := strings.TrimSpace(ok("exec", "-T", "db", "sh", "-c", "wc -l </data/records"))
		n, err := strconv.Atoi(out)
		if err != nil {
			t.Fatalf("exec in db: %q", out)
		}
		return n
	}

	ok("up", "-d", "--wait")
	if len(e.dnsServers()) == 0 {
		t.Error("no name server runs for the project's user networks")
	}
	states := ps()
	for _, svc := range []string{"web", "db", "worker"} {
		if p, found := states[svc]; !found || p.State != "running" || p.Name != project+"-"+svc+"-1" {
			t.Errorf("compose ps after up: %s: %+v", svc, p)
		}
	}
	if h := states["db"].Health; h != "healthy" {
		t.Errorf("compose ps: db's health %q after up --wait, want healthy", h)
	}
	if h := states["web"].Health; h != "" {
		t.Errorf("compose ps: web has no healthcheck, health %q", h)
	}
	if n := len(states); n != 3 {
		t.Errorf("compose ps: %d containers, want 3: %+v", n, states)
	}
	// The same binary as a docker CLI plugin (`docker compose`), with
	// each docker CLI here.
	for _, docker := range dockerClients(t) {
		plugins := filepath.Join(t.TempDir(), "cli-plugins")
		if err := os.MkdirAll(plugins, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(compose, filepath.Join(plugins, "docker-compose")); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(docker, "compose", "-f", file, "-p", project, "ps", "--format", "{{.Service}} {{.State}}")
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+filepath.Dir(plugins))
		out, err := cmd.CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		slices.Sort(lines)
		if err != nil || !slices.Equal(lines, []string{"db running", "web running", "worker running"}) {
			t.Errorf("%s compose ps: %v: %q", docker, err, out)
		}
	}
	// One set of objects: berth sees compose's, with its labels.
	if got := strings.Fields(e.run("ps", "-q", "--filter", "label=com.docker.compose.project="+project)); len(got) != 3 {
		t.Errorf("berth ps --filter label=com.docker.compose.project: %q", got)
	}
	nets := e.run("network", "ls", "--format", "{{.Name}}")
	for _, n := range []string{project + "_front", project + "_back"} {
		if !strings.Contains(nets, n+"\n") {
			t.Errorf("network %s missing: %q", n, nets)
		}
	}
	if vols := e.run("volume", "ls", "-q"); strings.TrimSpace(vols) != project+"_dbdata" {
		t.Errorf("berth volume ls: %q, want %s_dbdata", vols, project)
	}

	if links := e.run("inspect", "-f", "{{json .HostConfig.Links}}", project+"-worker-1"); !strings.Contains(links, `"/`+project+`-web-1:/`+project+`-worker-1/frontpage"`) {
		t.Errorf("the worker's links in inspect: %s", links)
	}

	// logs: the worker reached web and db by their service names, and web
	// by its link's alias.
	waitFor(t, 30*time.Second, "the worker's records in its logs", func() bool { return lastRecords() >= 2 })
	if out := ok("logs", "--no-color", "web", "db", "worker"); !strings.Contains(out, "worker-1  | worker: web=hello-from-web link=hello-from-web put=OK") {
		t.Errorf("compose logs: no worker line with its service prefix: %q", out)
	}

	// exec: output and exit status.
	before := count()
	if before < 2 {
		t.Errorf("db holds %d records after the worker wrote 2", before)
	}
	if out := ok("exec", "-T", "db", "grep", " /run/db ", "/proc/mounts"); !strings.Contains(out, "size=1024k") || !strings.Contains(out, "mode=750") {
		t.Errorf("db's tmpfs (size 1m, mode 0750): %q", out)
	}
	if out, errOut, code := run("exec", "-T", "db", "sh", "-c", "echo to-out; echo to-err >&2; exit 3"); out != "to-out\n" || !strings.Contains(errOut, "to-err") || code != 3 {
		t.Errorf("compose exec (exit 3): %q %q %d", out, errOut, code)
	}

	// restart: every service runs again, from a new start, and db is
	// healthy again; the worker carries on where it was.
	started := e.inspect(project + "-db-1").State.StartedAt
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)
	// logs -f follows the worker through its restart (compose asks at
	// the die whether it is restarting).
	follow := command("logs", "-f", "--no-color", "--tail", "0", "worker")
	var followed syncBuffer
	follow.Stdout, follow.Stderr = &followed, &followed
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	followDone := make(chan error, 1)
	go func() { followDone <- follow.Wait() }()
	defer func() {
		follow.Process.Kill()
		<-followDone
	}()
	waitFor(t, 30*time.Second, "logs -f to follow the worker", func() bool { return records.MatchString(followed.String()) })
	ok("restart")
	// docker's events of a restart end with "restart", after the start.
	restarted := strings.Fields(e.run("events", "--since", since, "--until", "0s", "--filter", "event=restart", "--format", "{{.Actor.Attributes.name}}"))
	slices.Sort(restarted)
	if want := []string{project + "-db-1", project + "-web-1", project + "-worker-1"}; !slices.Equal(restarted, want) {
		t.Errorf("restart events: %q, want %q", restarted, want)
	}
	if again := e.inspect(project + "-db-1").State.StartedAt; !again.After(started) {
		t.Errorf("db's StartedAt after restart: %v, before %v", again, started)
	}
	waitFor(t, 30*time.Second, "db healthy after restart", func() bool { return ps()["db"].Health == "healthy" })
	for svc, p := range ps() {
		if p.State != "running" {
			t.Errorf("after restart: %s is %s", svc, p.State)
		}
	}
	waitFor(t, 30*time.Second, "the worker's records after restart", func() bool { return count() > before+1 })
	waitFor(t, 30*time.Second, "logs -f to go on after the restart", func() bool {
		out := followed.String()
		_, after, restarted := strings.Cut(out, "exited with code 0 (restarting)")
		select {
		case err := <-followDone:
			followDone <- err
			t.Fatalf("compose logs -f ended at the restart (%v):\n%s", err, out)
		default:
		}
		return restarted && records.MatchString(after)
	})

	// down keeps the named volume; up again finds db's records there.
	kept := count()
	ok("down")
	if out := e.run("ps", "-aq"); strings.TrimSpace(out) != "" {
		t.Errorf("containers after compose down: %q", out)
	}
	if vols := e.run("volume", "ls", "-q"); strings.TrimSpace(vols) != project+"_dbdata" {
		t.Errorf("compose down (without -v) removed the volume: %q", vols)
	}
	ok("up", "-d", "--wait")
	if n := count(); n < kept {
		t.Errorf("db holds %d records after down and up, %d before: the volume lost them", n, kept)
	}
	var pids []int
	for _, svc := range []string{"web", "db", "worker"} {
		pid := e.inspect(project + "-" + svc + "-1").State.Pid
		if pid <= 0 {
			t.Fatalf("%s has no pid", svc)
		}
		pids = append(pids, pid)
	}

	ok("down", "-v")
	if out, _, _ := run("ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("compose ps after down -v: %q", out)
	}
	if out := e.run("ps", "-aq"); strings.TrimSpace(out) != "" {
		t.Errorf("containers after compose down -v: %q", out)
	}
	if nets := strings.Fields(e.run("network", "ls", "--format", "{{.Name}}")); slices.ContainsFunc(nets, func(n string) bool { return strings.HasPrefix(n, project+"_") }) {
		t.Errorf("networks after compose down -v: %q", nets)
	}
	if vols := e.run("volume", "ls", "-q"); strings.TrimSpace(vols) != "" {
		t.Errorf("volumes after compose down -v: %q", vols)
	}
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
			t.Errorf("process %d (%s) of the project is left", pid, strings.TrimSpace(string(comm)))
		}
	}
	// The name server of the user networks goes once it has no container
	// left to serve (after its idle time).
	waitFor(t, 60*time.Second, "the name server to exit", func() bool { return len(e.dnsServers()) == 0 })
	e.checkNothingLeft()
}

// A healthcheck's start_interval (docker 25, API 1.44): while the
// container is starting within its start period, probes come every start
// interval. With an interval of an hour, `up --wait` is over in time only
// if they do.
func TestDockerComposeStartInterval(t *testing.T) {
	compose := composeBinary(t)
	e := newEngine(t)
	e.loadDemoImage()
	sock := e.serveDocker()
	file := filepath.Join(t.TempDir(), "compose.yaml")
	project := `services:
  slow:
    image: berth-demo/busybox
    command: ["sleep", "1000"]
    stop_signal: SIGKILL
    healthcheck:
      test: ["CMD", "true"]
      interval: 1h
      start_period: 1h
      start_interval: 100ms
`
	if err := os.WriteFile(file, []byte(project), 0o644); err != nil {
		t.Fatal(err)
	}
	_, ok, _ := composeCommands(t, compose, sock, file, "startinterval")
	ok("up", "-d", "--wait", "--wait-timeout", "60")
	if h := e.health("startinterval-slow-1"); h.Status != "healthy" || len(h.Log) == 0 {
		t.Errorf("health after up --wait: %+v", h)
	}
	if got := strings.TrimSpace(e.run("inspect", "-f", "{{.Config.Healthcheck.StartInterval}}", "startinterval-slow-1")); got != "100000000" {
		t.Errorf("inspect: Config.Healthcheck.StartInterval %q, want 100000000 (ns, as docker inspect prints it)", got)
	}
	ok("down")
	e.checkNothingLeft()
}

// An attached `up` (attach streams, events, wait): the services' output
// with their prefixes, and with --abort-on-container-exit --exit-code-from
// the job's exit ends the project: the other service gets its SIGTERM,
// compose exits with the job's code.
func TestDockerComposeAttached(t *testing.T) {
	compose := composeBinary(t)
	e := newEngine(t)
	e.loadDemoImage()
	sock := e.serveDocker()
	file := filepath.Join(t.TempDir(), "compose.yaml")
	project := `services:
  job:
    image: berth-demo/busybox
    command: ["sh", "-c", "echo job-start; sleep 1; echo job-done; exit 7"]
    depends_on: [svc]
  svc:
    image: berth-demo/busybox
    command: ["sh", "-c", "trap 'echo svc-term; exit 0' TERM; echo svc-up; while :; do sleep 0.1; done"]
`
	if err := os.WriteFile(file, []byte(project), 0o644); err != nil {
		t.Fatal(err)
	}
	run, ok, _ := composeCommands(t, compose, sock, file, "attached")
	out, errOut, code := run("up", "--abort-on-container-exit", "--exit-code-from", "job")
	if code != 7 {
		t.Errorf("compose up --exit-code-from job: exit %d, want the job's 7\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, want := range []string{"svc-1  | svc-up", "job-1  | job-start", "job-1  | job-done", "svc-1  | svc-term"} {
		if !strings.Contains(out, want) {
			t.Errorf("compose up's output lacks %q:\n%s", want, out)
		}
	}
	states := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(ok("ps", "-a", "--format", "{{.Service}} {{.State}} {{.ExitCode}}")), "\n") {
		svc, rest, _ := strings.Cut(l, " ")
		states[svc] = rest
	}
	if states["job"] != "exited 7" || states["svc"] != "exited 0" {
		t.Errorf("after the abort: %q", states)
	}
	ok("down")
	e.checkNothingLeft()
}

// compose pulls a service's image from a registry (on loopback), and
// `down --rmi all` removes it again.
func TestDockerComposePull(t *testing.T) {
	compose := composeBinary(t)
	e := newEngine(t)
	e.loadDemoImage()
	sock := e.serveDocker()
	reg := registrytest.Start(t, registrytest.Options{})
	ref := reg.Ref("compose/demo", "v1")
	e.run("tag", demoImage, ref)
	e.run("push", ref)
	e.run("rmi", ref)
	file := filepath.Join(t.TempDir(), "compose.yaml")
	project := `services:
  app:
    image: ` + ref + `
    pull_policy: always
    command: ["sleep", "1000"]
    stop_signal: SIGKILL
`
	if err := os.WriteFile(file, []byte(project), 0o644); err != nil {
		t.Fatal(err)
	}
	_, ok, _ := composeCommands(t, compose, sock, file, "pulled")
	ok("pull")
	if got := e.run("images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(got, ref+"\n") {
		t.Fatalf("berth images after compose pull: %q", got)
	}
	ok("up", "-d", "--wait")
	if got := strings.TrimSpace(e.run("inspect", "-f", "{{.Config.Image}} {{.State.Status}}", "pulled-app-1")); got != ref+" running" {
		t.Errorf("the service's container: %q", got)
	}
	ok("down", "--rmi", "all")
	if got := e.run("images", "--format", "{{.Repository}}:{{.Tag}}"); strings.Contains(got, ref) {
		t.Errorf("compose down --rmi all left the image: %q", got)
	}
	e.checkNothingLeft()
}
