//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// qemusOf lists the QEMU processes working in this test's state
// directory (each VM's QEMU works in its VM's directory).
func (e *engineEnv) qemusOf() []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "qemu-system") && strings.HasPrefix(readCwd(p), e.state+"/") {
			var pid int
			fmt.Sscan(filepath.Base(filepath.Dir(p)), &pid)
			out = append(out, pid)
		}
	}
	return out
}

// freePort is a TCP port of loopback that nothing listens on now.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestVMPod: a pod under --isolation vm is one VM holding its
// containers: they share its kernel (one boot_id, not the host's), its
// network (loopback between them, its published port from the host)
// and its hostname, with one QEMU for the pod whatever the number of
// containers. Each container keeps its own exit codes, exec, stop,
// restart (its writes kept), volumes from the host, and leaves the VM
// when it ends. A kill -9 of the pod's QEMU ends its containers (255)
// and the pod reports stopped; pod start brings both back; pod rm -f
// leaves nothing. What cannot hold is refused by name.
func TestVMPod(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	e.requireVM()
	port := freePort(t)
	vol := t.TempDir()
	os.WriteFile(filepath.Join(vol, "from-host"), []byte("host file\n"), 0o644)

	// Refused: what a VM pod cannot be, and a container of another
	// isolation in it.
	for _, args := range [][]string{
		{"pod", "create", "--isolation", "vm", "--network", "host"},
		{"pod", "create", "--isolation", "bogus"},
	} {
		if _, errOut, err := e.try(args...); err == nil || !strings.Contains(errOut, "isolation") {
			t.Errorf("berth %s: %v %q, want a refusal naming the isolation", strings.Join(args, " "), err, errOut)
		}
	}
	e.run("pod", "create", "--isolation", "vm", "--name", "vp", "--hostname", "vmpod", "-p", fmt.Sprintf("%d:8080", port))
	if got := strings.TrimSpace(e.run("pod", "inspect", "--format", "{{.Isolation}}", "vp")); got != "vm" {
		t.Errorf("pod inspect Isolation: %q", got)
	}
	qemus := e.qemusOf()
	if len(qemus) != 1 {
		t.Fatalf("QEMUs after pod create: %v, want the pod's one", qemus)
	}
	if _, errOut, err := e.try("run", "--rm", "--pod", "vp", "--isolation", "linux", demoImage, "true"); err == nil || !strings.Contains(errOut, "a pod's containers are of its isolation") {
		t.Errorf("a linux container in a VM pod: %v %q", err, errOut)
	}

	e.run("run", "-d", "--name", "web", "--pod", "vp", "-v", vol+":/data", demoImage,
		"sh", "-c", "echo served > /www; mkdir -p /w && cp /www /w/index.html && exec httpd -f -p 8080 -h /w")
	e.run("run", "-d", "--name", "side", "--pod", "vp", demoImage, "sh", "-c", "trap 'exit 7' TERM; while true; do sleep 1; done")
	if q := e.qemusOf(); len(q) != 1 || q[0] != qemus[0] {
		t.Errorf("QEMUs with two containers: %v, want the pod's one %v", q, qemus)
	}
	hostBoot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	webBoot := e.run("exec", "web", "cat", "/proc/sys/kernel/random/boot_id")
	sideBoot := e.run("exec", "side", "cat", "/proc/sys/kernel/random/boot_id")
	if webBoot != sideBoot || webBoot == string(hostBoot) || strings.TrimSpace(webBoot) == "" {
		t.Errorf("boot ids: web %q, side %q, host %q: want the pod's kernel, shared, not the host's", webBoot, sideBoot, hostBoot)
	}
	if got := strings.TrimSpace(e.run("exec", "side", "hostname")); got != "vmpod" {
		t.Errorf("hostname in the pod's container: %q", got)
	}
	// Each container has its own PID namespace and root.
	if out := e.run("exec", "side", "ps"); strings.Contains(out, "httpd") {
		t.Errorf("side sees web's processes:\n%s", out)
	}
	if _, _, err := e.try("exec", "side", "test", "-e", "/www"); err == nil {
		t.Error("side sees web's root file system")
	}
	waitFor(t, 20*time.Second, "web on the pod's loopback", func() bool {
		out, _, err := e.try("exec", "side", "wget", "-qO-", "http://127.0.0.1:8080/")
		return err == nil && out == "served\n"
	})
	waitFor(t, 10*time.Second, "the pod's published port", func() bool { return httpGet(port) == "served\n" })
	if got := e.run("exec", "web", "cat", "/data/from-host"); got != "host file\n" {
		t.Errorf("the volume in the pod's container: %q", got)
	}
	e.run("exec", "web", "sh", "-c", "echo from-guest > /data/from-guest")
	if b, _ := os.ReadFile(filepath.Join(vol, "from-guest")); string(b) != "from-guest\n" {
		t.Errorf("the guest's write to the volume, on the host: %q", b)
	}
	// A read-only volume stays read-only to the guest's root, remount or
	// not (read-only on the host before it reached virtiofsd).
	e.try("run", "--rm", "--pod", "vp", "--privileged", "-v", vol+":/ro:ro", demoImage, "sh", "-c", "mount -o remount,rw /ro; touch /ro/from-ro")
	if _, err := os.Stat(filepath.Join(vol, "from-ro")); err == nil {
		t.Error("a read-only volume of a VM pod's container was written")
	}
	// Exit codes, stop (the TERM reaches its trap), restart with its
	// writes kept, kill.
	if code, _, _ := e.exitCode("run", "--rm", "--pod", "vp", demoImage, "sh", "-c", "exit 3"); code != 3 {
		t.Errorf("run --rm in the pod: exit %d, want 3", code)
	}
	if code, _, errOut := e.exitCode("run", "--rm", "--pod", "vp", demoImage, "no-such-command"); code != 127 {
		t.Errorf("a missing command in the pod: exit %d (%q), want 127", code, errOut)
	}
	e.run("stop", "side")
	if in := e.inspect("side"); in.State.ExitCode != 7 {
		t.Errorf("side after stop: exit %d, want its trap's 7", in.State.ExitCode)
	}
	e.run("exec", "web", "sh", "-c", "echo kept > /kept")
	e.run("restart", "-t", "1", "web")
	if got := e.run("exec", "web", "cat", "/kept"); got != "kept\n" {
		t.Errorf("web's write after its restart: %q", got)
	}
	if _, errOut, err := e.try("pause", "web"); err == nil || !strings.Contains(errOut, "not supported") {
		t.Errorf("pause of a pod VM's container: %v %q", err, errOut)
	}
	e.run("kill", "web")
	if in := e.inspect("web"); in.State.ExitCode != 137 {
		t.Errorf("web after kill: exit %d, want 137", in.State.ExitCode)
	}
	if q := e.qemusOf(); len(q) != 1 || q[0] != qemus[0] {
		t.Errorf("the pod's VM after its containers ended: %v, want %v still", q, qemus)
	}

	// kill -9 of the pod's QEMU: its containers end, the pod is
	// stopped, and pod start boots a new VM for both.
	e.run("start", "web", "side")
	syscall.Kill(qemus[0], syscall.SIGKILL)
	waitFor(t, 15*time.Second, "the pod's containers to end", func() bool {
		return e.inspect("web").State.Status == "exited" && e.inspect("side").State.Status == "exited"
	})
	if pods := e.pods(); len(pods) != 1 || pods[0].Status != "Stopped" {
		t.Errorf("the pod after kill -9 of its QEMU: %+v", pods)
	}
	e.run("pod", "start", "vp")
	if q := e.qemusOf(); len(q) != 1 || q[0] == qemus[0] {
		t.Errorf("QEMUs after pod start: %v (the old one %d)", q, qemus[0])
	}
	waitFor(t, 20*time.Second, "web again through the pod's port", func() bool { return httpGet(port) == "served\n" })

	e.run("pod", "rm", "-f", "vp")
	if q := e.qemusOf(); len(q) != 0 {
		t.Errorf("QEMUs after pod rm: %v", q)
	}
	e.checkNothingLeft()
	e.checkNoVMLeft()
}

// TestCRIVMPod: the CRI's "vm" runtime handler makes a pod one VM that
// holds its containers (a RuntimeClass's handler, as Kata's): crictl
// runp --runtime vm, containers created and started in it share its
// kernel, network and (the CRI's pid POD) one PID namespace, exec
// works, and stopp and rmp leave nothing.
func TestCRIVMPod(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	e.requireVM()
	crictlPath(t)
	sock := e.serveAPI("--cri-socket").sock
	ok := crictlOK(t, sock)
	var info struct {
		RuntimeHandlers []struct{ Name string } `json:"runtimeHandlers"`
	}
	if err := json.Unmarshal([]byte(ok("info", "-o", "json")), &info); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fmt.Sprint(info.RuntimeHandlers), "{vm}") {
		t.Errorf("crictl info: no vm handler in %+v", info.RuntimeHandlers)
	}
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	os.MkdirAll(logDir, 0o755)
	pod := func(name string, pid int) string {
		p := filepath.Join(dir, name+".json")
		writeJSON(t, p, map[string]any{
			"metadata": map[string]any{"name": name, "namespace": "default", "uid": "uid-" + name, "attempt": 0},
			"hostname": name, "log_directory": logDir,
			"linux": map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"pid": pid}},
				"sysctls": map[string]string{"kernel.shm_rmid_forced": "1", "net.ipv4.ip_unprivileged_port_start": "80"}},
		})
		return p
	}
	// pid 0 is POD: one PID namespace for the pod.
	podCfg := pod("vmpod", 0)
	podID := ok("runp", "--runtime", "vm", podCfg)
	var pst struct {
		Status struct {
			RuntimeHandler string `json:"runtimeHandler"`
			State          string `json:"state"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(ok("inspectp", podID)), &pst); err != nil || pst.Status.RuntimeHandler != "vm" || pst.Status.State != "SANDBOX_READY" {
		t.Errorf("crictl inspectp: %+v %v", pst.Status, err)
	}
	ctr := func(name string, cmd ...string) string {
		p := filepath.Join(dir, name+".ctr.json")
		writeJSON(t, p, map[string]any{
			"metadata": map[string]any{"name": name},
			"image":    map[string]any{"image": "docker.io/" + demoImage},
			"command":  cmd,
			"log_path": name + "/0.log",
		})
		id := ok("create", podID, p, podCfg)
		ok("start", id)
		return id
	}
	srv := ctr("srv", "sh", "-c", "echo started; echo hi > /i; exec httpd -f -p 8080 -h /")
	cli := ctr("cli", "sleep", "1000")
	if q := e.qemusOf(); len(q) != 1 {
		t.Errorf("QEMUs of a VM pod with two containers: %v, want one", q)
	}
	b1, b2 := ok("exec", "-s", srv, "cat", "/proc/sys/kernel/random/boot_id"), ok("exec", "-s", cli, "cat", "/proc/sys/kernel/random/boot_id")
	host, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if b1 != b2 || b1 == strings.TrimSpace(string(host)) {
		t.Errorf("boot ids: %q, %q (host %q): want the pod's VM's, shared", b1, b2, host)
	}
	if got := ok("exec", "-s", cli, "hostname"); got != "vmpod" {
		t.Errorf("the pod's hostname in its VM: %q", got)
	}
	// The pod's sysctls, namespaced to it in its VM (IPC and network).
	for k, want := range map[string]string{"kernel/shm_rmid_forced": "1", "net/ipv4/ip_unprivileged_port_start": "80"} {
		if got := ok("exec", "-s", cli, "cat", "/proc/sys/"+k); got != want {
			t.Errorf("sysctl %s in the pod's container: %q, want %q", k, got, want)
		}
	}
	// An exec past its timeout is killed and answered, not waited for.
	start := time.Now()
	if out, errOut, err := crictl(t, sock, "exec", "-s", "--timeout", "2", cli, "sleep", "60"); err == nil || !strings.Contains(out+errOut, "timed out") {
		t.Errorf("crictl exec --timeout 2 sleep 60: %v %q %q", err, out, errOut)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("crictl exec --timeout 2 took %v", d)
	}
	waitFor(t, 10*time.Second, "the timed-out exec's process to go", func() bool {
		return !strings.Contains(ok("exec", "-s", cli, "ps", "-o", "args"), "sleep 60")
	})
	// One PID namespace: cli sees srv's httpd, and neither is its PID 1
	// (the pod's holder is).
	if out := ok("exec", "-s", cli, "ps", "-o", "pid,args"); !strings.Contains(out, "httpd -f -p 8080") || strings.Contains(out, "    1 sleep") || strings.Contains(out, "    1 httpd") {
		t.Errorf("ps in a pod sharing its PID namespace:\n%s", out)
	}
	waitFor(t, 20*time.Second, "srv from cli over the pod's loopback", func() bool {
		out, _, err := crictl(t, sock, "exec", "-s", cli, "wget", "-qO-", "http://127.0.0.1:8080/i")
		return err == nil && strings.TrimSpace(out) == "hi"
	})
	// Port-forward reaches the guest (the pod's address from the host's
	// namespace: the pod's namespace there is wired to the VM).
	crictlForward(t, sock, podID, func(get func(string) (string, error)) {
		if b, err := get("/i"); err != nil || b != "hi\n" {
			t.Errorf("GET through crictl port-forward to the VM pod: %q %v", b, err)
		}
	})
	waitFor(t, 10*time.Second, "srv's log at the kubelet's path", func() bool {
		b, _ := os.ReadFile(filepath.Join(logDir, "srv", "0.log"))
		return strings.Contains(string(b), " stdout F started")
	})
	ok("stop", "-t", "1", cli)
	ok("stopp", podID)
	if q := e.qemusOf(); len(q) != 0 {
		t.Errorf("QEMUs after stopp: %v", q)
	}
	ok("rmp", podID)
	if got := ok("pods", "-q"); got != "" {
		t.Errorf("pods left: %q", got)
	}
	e.checkNothingLeft()
	e.checkNoVMLeft()
}
