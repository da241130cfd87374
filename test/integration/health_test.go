//go:build linux

package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

type healthState struct {
	Status        string
	FailingStreak int
	Log           []struct {
		ExitCode int
		Output   string
	}
}

func (e *engineEnv) health(ref string) healthState {
	e.t.Helper()
	var h healthState
	out := e.run("inspect", "-f", "{{json .State.Health}}", ref)
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		e.t.Fatalf("inspect %s: State.Health %q: %v", ref, out, err)
	}
	return h
}

// Healthchecks run with no daemon: the container's monitor forks a probe
// at every interval. A check turns a container unhealthy and back, ps
// shows and filters it, inspect keeps the last five results, a probe
// that hangs is killed at its timeout, and an image's HEALTHCHECK applies
// unless --no-healthcheck.
func TestEngineHealthcheck(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("run", "-d", "--name", "hc", "--health-cmd", "test -f /tmp/ok && echo fine", "--health-interval", "200ms",
		"--health-retries", "2", "--health-timeout", "2s", demoImage, "sh", "-c", "touch /tmp/ok; exec sleep 100")
	waitFor(t, 10*time.Second, "healthy", func() bool { return e.health("hc").Status == "healthy" })
	if st := e.run("ps", "--format", "{{.Status}}", "--filter", "name=hc"); !strings.Contains(st, "(healthy)") {
		t.Errorf("ps status of a healthy container: %q", st)
	}
	e.run("exec", "hc", "rm", "/tmp/ok")
	waitFor(t, 10*time.Second, "unhealthy", func() bool { return e.health("hc").Status == "unhealthy" })
	if ids := strings.Fields(e.run("ps", "-q", "--filter", "health=unhealthy")); len(ids) != 1 {
		t.Errorf("ps --filter health=unhealthy: %q", ids)
	}
	if ids := strings.Fields(e.run("ps", "-q", "--filter", "health=healthy")); len(ids) != 0 {
		t.Errorf("ps --filter health=healthy lists an unhealthy container: %q", ids)
	}
	time.Sleep(time.Second)
	h := e.health("hc")
	if len(h.Log) != 5 || h.FailingStreak < 2 || h.Log[4].ExitCode != 1 {
		t.Errorf("inspect State.Health: %+v, want the last 5 results, failing", h)
	}
	e.run("exec", "hc", "touch", "/tmp/ok")
	waitFor(t, 10*time.Second, "healthy again", func() bool { return e.health("hc").Status == "healthy" })
	if h := e.health("hc"); h.FailingStreak != 0 || h.Log[len(h.Log)-1].Output != "fine\n" {
		t.Errorf("after recovery: %+v", h)
	}
	evs := readEvents(t, e.run("events", "--since", "1h", "--until", "0s", "--filter", "event=health_status", "--format", "json"))
	var statuses []string
	for _, m := range evs {
		statuses = append(statuses, strings.TrimPrefix(m.Action, "health_status: "))
	}
	if strings.Join(statuses, ",") != "healthy,unhealthy,healthy" {
		t.Errorf("health_status events: %v", statuses)
	}

	// A probe that hangs is killed at its timeout and counts as failed;
	// the hung processes do not pile up.
	e.run("run", "-d", "--name", "hang", "--health-cmd", "sleep 1000; true", "--health-interval", "100ms",
		"--health-timeout", "300ms", "--health-retries", "1", demoImage, "sleep", "100")
	waitFor(t, 10*time.Second, "a hanging probe to make it unhealthy", func() bool { return e.health("hang").Status == "unhealthy" })
	if h := e.health("hang"); !strings.Contains(h.Log[len(h.Log)-1].Output, "exceeded timeout") {
		t.Errorf("a timed-out probe's result: %+v", h.Log)
	}
	time.Sleep(time.Second)
	// At most the probe in flight (its shell and its sleep).
	if top := e.run("top", "hang"); strings.Count(top, " sleep 1000\n") > 1 {
		t.Errorf("hung probes pile up in the container:\n%s", top)
	}

	// A probe that leaves a child in the background: its output still
	// counts, and the child does not stay.
	e.run("run", "-d", "--name", "bg", "--health-cmd", "sleep 30 & echo hi", "--health-interval", "300ms", demoImage, "sleep", "100")
	waitFor(t, 10*time.Second, "the background probe's result", func() bool {
		h := e.health("bg")
		return h.Status == "healthy" && len(h.Log) > 0 && h.Log[0].Output == "hi\n"
	})
	time.Sleep(2 * time.Second)
	// One may belong to the probe in flight; earlier ones are gone.
	if top := e.run("top", "bg"); strings.Count(top, "sleep 30") > 1 {
		t.Errorf("probes' background children pile up:\n%s", top)
	}

	// The image's HEALTHCHECK, and --no-healthcheck.
	tarPath := filepath.Join(t.TempDir(), "hc.tar")
	script, _ := filepath.Abs("../../scripts/mkimage.sh")
	cmd := exec.Command(script, tarPath, "berth-test/health:1")
	cmd.Env = append(os.Environ(), `MKIMAGE_HEALTHCHECK={"Test":["CMD-SHELL","echo from-image"],"Interval":200000000,"Retries":1}`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkimage: %v %s", err, out)
	}
	e.run("load", "-q", "-i", tarPath)
	e.run("run", "-d", "--name", "img", "berth-test/health:1", "sleep", "100")
	waitFor(t, 10*time.Second, "the image's healthcheck", func() bool {
		h := e.health("img")
		return h.Status == "healthy" && len(h.Log) > 0 && h.Log[0].Output == "from-image\n"
	})
	e.run("run", "-d", "--name", "none", "--no-healthcheck", "berth-test/health:1", "sleep", "100")
	time.Sleep(500 * time.Millisecond)
	if out := strings.TrimSpace(e.run("inspect", "-f", "{{json .State.Health}}", "none")); out != "null" {
		t.Errorf("--no-healthcheck: State.Health %s", out)
	}
	if ids := strings.Fields(e.run("ps", "-q", "--filter", "health=none")); len(ids) != 1 {
		t.Errorf("ps --filter health=none: %q", ids)
	}
	if code, _, errOut := e.exitCode("run", "--rm", "--health-interval", "1s", demoImage, "true"); code != 125 || !strings.Contains(errOut, "health command") {
		t.Errorf("--health-interval without a command: %d %s", code, errOut)
	}
	if code, _, _ := e.exitCode("run", "--rm", "--no-healthcheck", "--health-retries", "2", demoImage, "true"); code != 125 {
		t.Errorf("--no-healthcheck with --health-retries: exit %d", code)
	}
	e.run("rm", "-f", "hc", "hang", "bg", "img", "none")
	e.checkNothingLeft()
}

// kill -9 of a monitor while its probe runs: the probe goes with it
// (nothing of it stays), and the next command reconciles the container.
func TestEngineHealthcheckMonitorKilled(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	for i := range 3 {
		name := "k" + strconv.Itoa(i)
		e.run("run", "-d", "--name", name, "--health-cmd", "sleep 30", "--health-timeout", "60s", "--health-interval", "100ms", demoImage, "sleep", "100")
		probe := e.stoppedOrRunning("berth-health")
		mon := e.monitorOf(e.inspect(name).ID)
		syscall.Kill(mon, syscall.SIGKILL)
		waitFor(t, 5*time.Second, "the probe to go with its monitor", func() bool {
			st, err := os.ReadFile("/proc/" + strconv.Itoa(probe) + "/stat")
			return err != nil || strings.Contains(string(st), ") Z ")
		})
		e.run("ps", "-a")
		if c := e.inspect(name); c.State.Status != "exited" || c.State.ExitCode != 137 {
			t.Errorf("%s after its monitor was killed: %+v", name, c.State)
		}
	}
	e.run("rm", "k0", "k1", "k2")
	e.checkNothingLeft()
	if p := e.findProcess("berth-health"); p != 0 {
		t.Errorf("a probe of this test still runs: %d", p)
	}
}

// stoppedOrRunning waits for a process of this engine with that comm.
func (e *engineEnv) stoppedOrRunning(comm string) int {
	e.t.Helper()
	var pid int
	waitFor(e.t, 10*time.Second, comm+" to run", func() bool {
		pid = e.findProcess(comm)
		return pid != 0
	})
	return pid
}

// findProcess is a live process of this engine (by its environment) with
// that comm, or 0.
func (e *engineEnv) findProcess(comm string) int {
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		p, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		st, _ := os.ReadFile("/proc/" + ent.Name() + "/stat")
		env, _ := os.ReadFile("/proc/" + ent.Name() + "/environ")
		if strings.Contains(string(st), "("+comm+") ") && !strings.Contains(string(st), ") Z ") && strings.Contains(string(env), e.state) {
			return p
		}
	}
	return 0
}
