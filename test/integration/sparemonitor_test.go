package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `berth serve` keeps one container monitor parked (engine/spare.go,
// monitor.c "Parked"): its start child's Go runtime is up before a start
// needs it. A detached start takes it, the next one is parked, and a
// parked monitor never outlives the serve that parked it.

// parkedMonitors returns the monitors of this engine whose command line
// names no container: those parked.
func (e *engineEnv) parkedMonitors() []int {
	var out []int
	for _, pid := range e.monitors() {
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		args := strings.Split(string(cmdline), "\x00")
		if len(args) >= 2 && args[0] == "berth-monitor" && strings.TrimSpace(args[1]) == "" {
			out = append(out, pid)
		}
	}
	return out
}

// parkedMonitorOrChild says whether pid is a parked monitor (named
// berth-monitor, its command line naming no container) or that one's
// start child, still waiting.
func parkedMonitorOrChild(pid string) bool {
	parked := func(pid string) bool {
		cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		args := strings.Split(string(cmdline), "\x00")
		return len(args) >= 2 && args[0] == "berth-monitor" && strings.TrimSpace(args[1]) == ""
	}
	comm := func(pid string) string {
		b, _ := os.ReadFile("/proc/" + pid + "/comm")
		return strings.TrimSpace(string(b))
	}
	if !parked(pid) {
		return false
	}
	if comm(pid) == "berth-monitor" {
		return true
	}
	stat, _ := os.ReadFile("/proc/" + pid + "/stat")
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return comm(pid) == "berth-start" && len(fields) > 1 && parked(fields[1]) && comm(fields[1]) == "berth-monitor"
}

// childrenOf lists pid's children.
func childrenOf(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	for _, task := range tasks {
		data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/children")
		for _, f := range strings.Fields(string(data)) {
			n, _ := strconv.Atoi(f)
			out = append(out, n)
		}
	}
	return out
}

func gone(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	// A zombie is gone too: it waits only for its reaper.
	return err != nil || strings.Contains(string(data), ") Z ")
}

func TestServeSpareMonitor(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	s := e.serveDockerProcess()
	var parked []int
	waitFor(t, 10*time.Second, "a parked monitor", func() bool { parked = e.parkedMonitors(); return len(parked) == 1 })
	// One that dies while parked is reaped (no zombie of serve's) and
	// replaced.
	killed := parked[0]
	syscall.Kill(killed, syscall.SIGKILL)
	waitFor(t, 10*time.Second, "the killed parked monitor reaped and another parked", func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(killed))
		parked = e.parkedMonitors()
		return os.IsNotExist(err) && len(parked) == 1 && parked[0] != killed
	})
	first := parked[0]
	// The parked monitor's start child has started Go and waits.
	var child int
	waitFor(t, 5*time.Second, "the parked monitor's start child", func() bool {
		kids := childrenOf(first)
		if len(kids) != 1 {
			return false
		}
		child = kids[0]
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(child) + "/comm")
		return strings.TrimSpace(string(comm)) == "berth-start"
	})

	_, call := dockerAPI(t, s.sock)
	var created struct{ Id string }
	json.Unmarshal(call("POST", "/containers/create?name=spare1", `{"Image":"berth-demo/busybox","Cmd":["sh","-c","echo out; echo err >&2; exec sleep 100"]}`, http.StatusCreated), &created)
	if len(created.Id) != 64 {
		t.Fatalf("create gave id %q", created.Id)
	}
	call("POST", "/containers/"+created.Id+"/start", "", http.StatusNoContent)

	// The parked monitor took the container: its command line names it,
	// and its start child ran it.
	if got := e.monitorOf(created.Id); got != first {
		t.Errorf("the container's monitor is %d, want the parked %d", got, first)
	}
	waitFor(t, 5*time.Second, "the start child's end", func() bool { return gone(child) })
	waitFor(t, 5*time.Second, "the container's output in its log", func() bool {
		out, errOut, _ := e.try("logs", "spare1")
		return out == "out\n" && errOut == "err\n"
	})
	if st := e.inspect("spare1").State; st.Status != "running" || st.Pid <= 0 {
		t.Fatalf("after its start: %+v", st)
	}
	// A new one is parked for the next start.
	waitFor(t, 10*time.Second, "the next parked monitor", func() bool {
		parked = e.parkedMonitors()
		return len(parked) == 1 && parked[0] != first
	})
	// The taken monitor supervises as any does: a stop records the exit.
	call("POST", "/containers/spare1/stop?t=1", "", http.StatusNoContent)
	if st := e.inspect("spare1").State; st.Status != "exited" || st.ExitCode != 143 && st.ExitCode != 137 {
		t.Errorf("after stop: %+v", st)
	}
	waitFor(t, 5*time.Second, "the taken monitor's end", func() bool { return gone(first) })

	e.run("rm", "-f", "spare1")
}

// A parked monitor goes with the serve that parked it: stopped (it ends
// the monitor's socket) or killed (the kernel ends it).
func TestServeSpareMonitorEnds(t *testing.T) {
	e := newEngine(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "api.sock")
			cmd := e.command("serve", "--docker-socket", sock)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var parked []int
			waitFor(t, 10*time.Second, "a parked monitor", func() bool { parked = e.parkedMonitors(); return len(parked) == 1 })
			procs := append(childrenOf(parked[0]), parked[0])
			if len(procs) != 2 {
				t.Fatalf("the parked monitor and its child: %v", procs)
			}
			cmd.Process.Signal(sig)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("serve did not end on %v", sig)
			}
			waitFor(t, 5*time.Second, "the parked monitor's end with serve's", func() bool {
				for _, p := range procs {
					if !gone(p) {
						return false
					}
				}
				return true
			})
			os.Remove(sock)
		})
	}
	e.checkNothingLeft()
}

// An engine start's init is forked into its cgroup by the exec'd init's
// intermediate ("cgroup-make", nsexec/cgroupfork.c), no migration, as a
// preforked init is; BERTH_CGROUP_FORK=0 moves it as before. Either way
// its threads are in the container's cgroup and nothing is left after.
func TestEngineCgroupForkedIn(t *testing.T) {
	cgroupLeaves(t, "/")
	e := newEngine(t)
	e.loadDemoImage()
	for _, tc := range []struct {
		name string
		env  []string
		fork bool
	}{{"forked", nil, true}, {"moved", []string{"BERTH_CGROUP_FORK=0"}, false}} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := e.command("run", "-d", "--network", "none", demoImage, "sleep", "100")
			cmd.Env = append(append(append([]string{}, e.env...), "BERTH_TRACE=1"), tc.env...)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("run -d: %v %s", err, out)
			}
			id := strings.TrimSpace(string(out))
			// The start child's trace is the container's stderr.
			_, trace, _ := e.try("logs", id)
			if got := strings.Contains(trace, " cgroup-forked-in "); got != tc.fork {
				t.Errorf("cgroup-forked-in traced: %v, want %v:\n%s", got, tc.fork, trace)
			}
			pid := e.inspect(id).State.Pid
			leaves := cgroupLeaves(t, "/berth/"+id)
			if len(existing(leaves)) != len(leaves) {
				t.Errorf("the container's cgroup leaves: %v of %v exist", existing(leaves), leaves)
			}
			for line := range threadCgroups(t, pid) {
				if !strings.HasSuffix(line, "/berth/"+id) && !strings.HasSuffix(line, ":/") {
					t.Errorf("a thread of the init is in %q, not the container's cgroup", line)
				}
			}
			e.run("rm", "-f", id)
			checkCgroupsGone(t, []string{id})
		})
	}
	e.checkNothingLeft()
}
