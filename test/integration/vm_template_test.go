//go:build linux

package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestVMTemplate: VMs start from a template of their shape (a booted
// guest's saved state) instead of booting. The first VM of a shape makes
// it; later ones are restored from it and still run their command with
// its output and exit code, each with randomness of its own and the
// host's clock, a NIC with the host's MAC that reaches the gateway;
// another shape makes another template; BERTH_VM_TEMPLATE=0 boots;
// system prune drops the templates; nothing is left running.
func TestVMTemplate(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.requireVM()
	templates := func() []string {
		m, _ := filepath.Glob(filepath.Join(e.root, "vm", "templates", "*", "template.json"))
		return m
	}
	// shimLog runs a detached VM container, waits for its output to
	// hold want, and returns its output and its shim's log.
	shimLog := func(name, want string, args ...string) (string, string) {
		t.Helper()
		e.run(append([]string{"run", "-d", "--isolation", "vm", "--name", name}, args...)...)
		var logs string
		waitFor(t, 120*time.Second, name+"'s output", func() bool {
			logs, _, _ = e.try("logs", name)
			return strings.Contains(logs, want)
		})
		b, err := os.ReadFile(filepath.Join(e.state, "vm", e.inspect(name).ID, "shim.log"))
		if err != nil {
			t.Fatalf("%s's shim log: %v", name, err)
		}
		return logs, string(b)
	}

	// The first VM of its shape makes the template, then starts from it.
	code, out, errOut := e.exitCode("run", "--rm", "--isolation", "vm", "--network", "none", demoImage, "sh", "-c", "echo first; exit 3")
	if code != 3 || out != "first\n" {
		t.Fatalf("the first VM: exit %d, %q (%s)", code, out, errOut)
	}
	if n := len(templates()); n != 1 {
		t.Fatalf("%d templates after the first VM, want 1", n)
	}

	// Two clones: each its own randomness, the host's clock.
	probe := `head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; echo; cat /proc/sys/kernel/random/uuid; date +%s; echo done; sleep 600`
	var outs [2][]string
	for i := range outs {
		before := time.Now().Unix()
		logs, slog := shimLog("clone"+strconv.Itoa(i), "done", "--network", "none", demoImage, "sh", "-c", probe)
		after := time.Now().Unix()
		if !strings.Contains(slog, "from VM template") {
			t.Errorf("clone %d was not started from the template: %s", i, slog)
		}
		outs[i] = strings.Fields(logs)
		if len(outs[i]) != 4 {
			t.Fatalf("clone %d printed %q", i, logs)
		}
		guest, err := strconv.ParseInt(outs[i][2], 10, 64)
		if err != nil || guest < before-5 || guest > after+5 {
			t.Errorf("clone %d's clock reads %s, the host's was %d-%d", i, outs[i][2], before, after)
		}
	}
	if outs[0][0] == outs[1][0] || len(outs[0][0]) != 32 {
		t.Errorf("two clones read the same bytes from /dev/urandom: %s, %s", outs[0][0], outs[1][0])
	}
	if outs[0][1] == outs[1][1] {
		t.Errorf("two clones made the same uuid: %s", outs[0][1])
	}
	// exec in a clone.
	if out := e.run("exec", "clone0", "echo", "exec"); out != "exec\n" {
		t.Errorf("exec in a clone: %q", out)
	}
	e.run("rm", "-f", "clone0", "clone1")
	if n := len(templates()); n != 1 {
		t.Errorf("%d templates after clones of one shape, want 1", n)
	}

	// A NIC: another shape (a template of its own). The clone's device
	// has the host's MAC (its template's until the agent sets it) and
	// reaches its gateway.
	e.run("run", "--rm", "--isolation", "vm", demoImage, "true")
	if n := len(templates()); n != 2 {
		t.Errorf("%d templates after a VM with a NIC, want 2", n)
	}
	netProbe := `cat /sys/class/net/eth0/address; gw=$(ip route | awk '/^default/ {print $3}'); ping -c 1 -W 10 "$gw" >/dev/null && echo reached; echo done; sleep 600`
	logs, slog := shimLog("netclone", "done", demoImage, "sh", "-c", netProbe)
	if !strings.Contains(slog, "from VM template") {
		t.Errorf("the VM with a NIC was not started from the template: %s", slog)
	}
	var mac string
	for _, n := range e.netInfo("netclone").NetworkSettings.Networks {
		mac = n.MacAddress
	}
	if f := strings.Fields(logs); len(f) != 3 || f[0] != mac || f[1] != "reached" {
		t.Errorf("a clone's NIC: %q, want its MAC %s and its gateway reached", logs, mac)
	}
	e.run("rm", "-f", "netclone")

	// More memory (a 256 MiB limit: a 320 MiB guest): another shape, another template.
	if code, out, _ := e.exitCode("run", "--rm", "--isolation", "vm", "--network", "none", "-m", "256m", demoImage, "echo", "bigger"); code != 0 || out != "bigger\n" {
		t.Errorf("a VM of another size: exit %d, %q", code, out)
	}
	if n := len(templates()); n != 3 {
		t.Errorf("%d templates after a VM of another size, want 3", n)
	}

	// Templates off: a cold boot, no template made or used.
	e.env = append(e.env, "BERTH_VM_TEMPLATE=0")
	logs, slog = shimLog("cold", "done", "--network", "none", "--cpus", "2", demoImage, "sh", "-c", "echo cold; echo done; sleep 600")
	if strings.Contains(slog, "template") || !strings.Contains(logs, "cold") {
		t.Errorf("BERTH_VM_TEMPLATE=0: %q; shim log: %s", logs, slog)
	}
	e.run("rm", "-f", "cold")
	if n := len(templates()); n != 3 {
		t.Errorf("%d templates after a VM with templates off, want still 3", n)
	}
	e.env = e.env[:len(e.env)-1]

	// system prune drops them; the next VM makes one again.
	e.run("system", "prune", "-f")
	if n := len(templates()); n != 0 {
		t.Errorf("%d templates after system prune, want 0", n)
	}
	e.loadDemoImage()
	if code, out, _ := e.exitCode("run", "--rm", "--isolation", "vm", "--network", "none", demoImage, "echo", "again"); code != 0 || out != "again\n" {
		t.Errorf("a VM after the prune: exit %d, %q", code, out)
	}
	if n := len(templates()); n != 1 {
		t.Errorf("%d templates after a VM after the prune, want 1", n)
	}

	e.checkNothingLeft()
	e.checkNoVMLeft()
}
