package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

type podListed struct {
	ID         string `json:"Id"`
	Name       string
	Status     string
	Containers string
}

func (e *engineEnv) pods(args ...string) []podListed {
	e.t.Helper()
	out := e.run(append([]string{"pod", "ls", "--no-trunc", "--format", "json"}, args...)...)
	rows, err := jsonLines[podListed](out)
	if err != nil {
		e.t.Fatalf("pod ls --format json: %v: %q", err, out)
	}
	return rows
}

// TestPods: a pod is namespaces without a process that containers join
// (run --pod): they share its network (one address, loopback between
// them, its published port reached from the host), its IPC namespace and
// /dev/shm, its hostname and /etc files, while each keeps its own PID
// namespace. pod stop stops the containers and takes the pins and the
// network down (the record stays); pod start brings both back; pod rm
// refuses a pod with containers unless -f, and leaves nothing.
func TestPods(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	podID := strings.TrimSpace(e.run("pod", "create", "--name", "pt", "-p", fmt.Sprintf("%d:8080", port),
		"--add-host", "db.example:192.0.2.7", "--dns-search", "pods.example", "--label", "tier=web"))
	if len(podID) != 64 {
		t.Fatalf("pod create printed %q, want an ID", podID)
	}
	if got := e.pods(); len(got) != 1 || got[0].ID != podID || got[0].Name != "pt" || got[0].Status != "Created" || got[0].Containers != "0" {
		t.Fatalf("pod ls after create: %+v", got)
	}
	// A pod of another store namespace is not listed here.
	e.run("--namespace", "k8s", "pod", "create", "--name", "apart", "--network", "none")
	if got := e.pods(); len(got) != 1 {
		t.Errorf("pod ls lists another namespace's pod: %+v", got)
	}
	e.run("--namespace", "k8s", "pod", "rm", "apart")

	web := strings.TrimSpace(e.run("run", "-d", "--name", "pt-web", "--pod", "pt", demoImage, "sh", "-c",
		"echo served-from-pod > /www; mkdir -p /srv && mv /www /srv/index.html; echo shared > /dev/shm/mark; exec httpd -f -p 8080 -h /srv"))
	waitFor(t, 10e9, "the pod's published port", func() bool { return httpGet(port) == "served-from-pod\n" })

	// Another container of the pod: the same network (the web server
	// on its loopback), hostname, /etc files, IPC and /dev/shm; its own
	// PID namespace.
	out := e.run("run", "--rm", "--pod", "pt", demoImage, "sh", "-c",
		`hostname; grep -c db.example /etc/hosts; grep search /etc/resolv.conf; wget -qO- http://127.0.0.1:8080/; cat /dev/shm/mark; `+
			`for n in net ipc uts pid; do readlink /proc/self/ns/$n; done`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 9 || lines[0] != "pt" || lines[1] != "1" || !strings.Contains(lines[2], "pods.example") || lines[3] != "served-from-pod" || lines[4] != "shared" {
		t.Fatalf("a second container of the pod sees:\n%s", out)
	}
	inWeb := strings.Split(strings.TrimSpace(e.run("exec", "pt-web", "sh", "-c", `for n in net ipc uts pid; do readlink /proc/self/ns/$n; done`)), "\n")
	for i, n := range []string{"net", "ipc", "uts"} {
		if inWeb[i] != lines[5+i] {
			t.Errorf("%s namespace: %s in one container, %s in the other", n, inWeb[i], lines[5+i])
		}
	}
	if inWeb[3] == lines[8] {
		t.Errorf("the pod's containers share a PID namespace (%s): each should have its own", inWeb[3])
	}
	host, _ := os.Readlink("/proc/self/ns/net")
	if inWeb[0] == host {
		t.Errorf("the pod's network namespace is the host's")
	}
	if got := e.pods(); len(got) != 1 || got[0].Status != "Running" || got[0].Containers != "1" {
		t.Errorf("pod ls with its container running: %+v", got)
	}
	var inspected []struct {
		ID              string `json:"Id"`
		Labels          map[string]string
		NetworkSettings struct {
			SandboxKey string
			Networks   []struct{ IPAddress string }
		}
		Containers []struct {
			ID string `json:"Id"`
		}
	}
	if err := json.Unmarshal([]byte(e.run("pod", "inspect", "pt")), &inspected); err != nil || len(inspected) != 1 {
		t.Fatalf("pod inspect: %v", err)
	}
	pi := inspected[0]
	if pi.ID != podID || pi.Labels["tier"] != "web" || len(pi.Containers) != 1 || pi.Containers[0].ID != web || len(pi.NetworkSettings.Networks) != 1 {
		t.Errorf("pod inspect: %+v", pi)
	}
	if ip := strings.TrimSpace(e.run("exec", "pt-web", "sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}'")); !strings.HasPrefix(ip, pi.NetworkSettings.Networks[0].IPAddress+"/") {
		t.Errorf("the container's eth0 is %q, the pod's address %s", ip, pi.NetworkSettings.Networks[0].IPAddress)
	}

	// What the pod decides, a container of it cannot set.
	for _, args := range [][]string{
		{"-p", "80"}, {"--network", "none"}, {"--hostname", "other"}, {"--dns", "192.0.2.1"}, {"--ipc", "host"},
	} {
		run := append(append([]string{"run", "--rm", "--pod", "pt"}, args...), demoImage, "true")
		if _, stderr, err := e.try(run...); err == nil || !strings.Contains(stderr, "pod pt decides") {
			t.Errorf("run --pod with %v: %v %q", args, err, stderr)
		}
	}
	if _, stderr, err := e.try("run", "--rm", "--pod", "nosuch", demoImage, "true"); err == nil || !strings.Contains(stderr, "no such pod") {
		t.Errorf("run --pod of a missing pod: %v %q", err, stderr)
	}
	if _, stderr, err := e.try("pod", "create", "--name", "pt"); err == nil || !strings.Contains(stderr, "already in use") {
		t.Errorf("a second pod named pt: %v %q", err, stderr)
	}
	// A pod whose network cannot be set up (an address outside the
	// network's subnet: the IPAM plugin refuses it) leaves nothing.
	if _, stderr, err := e.try("pod", "create", "--name", "badnet", "--ip", "192.0.2.77"); err == nil || !strings.Contains(stderr, "192.0.2.77") {
		t.Errorf("a pod with an address outside its network: %v %q", err, stderr)
	}
	if got := e.pods(); len(got) != 1 {
		t.Errorf("pods after a failed create: %+v", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.state, "netns")); len(ents) != 1 {
		t.Errorf("network namespaces after a failed pod create: %v", ents)
	}

	// stop: the containers stop, the pins and the network go.
	e.run("pod", "stop", "-t", "1", "pt")
	if st := e.inspect("pt-web").State.Status; st != "exited" {
		t.Errorf("after pod stop the container is %s", st)
	}
	if got := e.pods(); len(got) != 1 || got[0].Status != "Stopped" {
		t.Errorf("pod ls after stop: %+v", got)
	}
	if _, err := os.Stat(pi.NetworkSettings.SandboxKey); !os.IsNotExist(err) {
		t.Errorf("the pod's network namespace pin is still there after stop: %v", err)
	}
	if httpGet(port) != "" {
		t.Errorf("the published port answers after pod stop")
	}
	if _, stderr, err := e.try("run", "--rm", "--pod", "pt", demoImage, "true"); err == nil || !strings.Contains(stderr, "pod pt is stopped") {
		t.Errorf("run --pod of a stopped pod: %v %q", err, stderr)
	}
	if _, stderr, err := e.try("start", "pt-web"); err == nil || !strings.Contains(stderr, "is stopped") {
		t.Errorf("start of a container of a stopped pod: %v %q", err, stderr)
	}

	// start: pins, network and containers again.
	e.run("pod", "start", "pt")
	if st := e.inspect("pt-web").State.Status; st != "running" {
		t.Errorf("after pod start the container is %s", st)
	}
	waitFor(t, 10e9, "the published port after pod start", func() bool { return httpGet(port) == "served-from-pod\n" })

	// rm: refused with containers, then -f removes them and everything.
	if _, stderr, err := e.try("pod", "rm", "pt"); err == nil || !strings.Contains(stderr, "has 1 containers") {
		t.Errorf("pod rm of a pod with a container: %v %q", err, stderr)
	}
	e.run("pod", "rm", "-f", "pt")
	if got := e.pods(); len(got) != 0 {
		t.Errorf("pods left: %+v", got)
	}
	for _, dir := range []string{filepath.Join(e.state, "pods"), filepath.Join(e.root, "pods"), filepath.Join(e.state, "netns")} {
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			t.Errorf("left in %s: %v", dir, ents)
		}
	}
	e.checkNothingLeft()
}

// A pod create killed half-way (its network attached, its other
// namespaces not yet pinned) is undone by the next command that finds the
// pod, and its name is free again: what a kubelet's retried
// RunPodSandbox needs after a kill -9 of berth serve.
func TestPodCreateKilled(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	create := e.command("pod", "create", "--name", "halfway")
	create.Env = append(create.Env, "_BERTH_TEST_STOP_AT=pod-network-attached")
	if err := create.Start(); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, 10e9, "pod create to stop with its network attached", create.Process.Pid)
	if ents, _ := os.ReadDir(filepath.Join(e.state, "netns")); len(ents) != 1 {
		t.Fatalf("the stopped create's network namespace: %v", ents)
	}
	// While its creator lives, the pod is left alone.
	got := e.pods()
	if len(got) != 1 || got[0].Status != "Creating" {
		t.Fatalf("pod ls while a create is in progress: %+v", got)
	}
	id := got[0].ID
	if leases := leasesOf(t, "/var/lib/cni/networks/berth", id); len(leases) != 1 {
		t.Errorf("the stopped create's address lease: %v", leases)
	}
	create.Process.Kill()
	create.Wait()
	if got := e.pods(); len(got) != 0 {
		t.Errorf("pod ls after the create was killed: %+v", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.state, "netns")); len(ents) != 0 {
		t.Errorf("the killed create's network namespace is left: %v", ents)
	}
	// Its network was attached but not yet recorded: its address is
	// given back all the same.
	if leases := leasesOf(t, "/var/lib/cni/networks/berth", id); len(leases) != 0 {
		t.Errorf("the killed create's address lease is left: %v", leases)
	}
	e.run("pod", "create", "--name", "halfway")
	e.run("pod", "rm", "halfway")
	e.checkNothingLeft()
}

// A pod removal killed half-way (its containers removed, its namespaces,
// network and reaper still there) leaves a pod that the next removal
// finishes: what a kubelet's retried RemovePodSandbox needs after a kill
// -9 of berth serve.
func TestPodRemoveKilled(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	e.run("pod", "create", "--name", "goner", "--share", "pid", "-p", "127.0.0.1::80")
	// -p without a host port: one chosen at create, kept by the record.
	port := strings.TrimSpace(e.run("pod", "inspect", "-f", "{{(index .PortBindings 0).HostPort}}", "goner"))
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 {
		t.Fatalf("the host port chosen for -p 127.0.0.1::80: %q", port)
	}
	e.run("run", "-d", "--name", "gonerc", "--pod", "goner", demoImage, "sh", "-c", "mkdir /srv; echo chosen > /srv/index.html; exec httpd -f -p 80 -h /srv")
	waitFor(t, 10e9, "the pod's chosen port", func() bool { return httpGet(n) == "chosen\n" })
	rm := e.command("pod", "rm", "-f", "goner")
	rm.Env = append(rm.Env, "_BERTH_TEST_STOP_AT=pod-containers-removed")
	if err := rm.Start(); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, 30e9, "pod rm to stop with its containers removed", rm.Process.Pid)
	rm.Process.Kill()
	rm.Wait()
	if got := e.pods(); len(got) != 1 || got[0].Name != "goner" {
		t.Fatalf("pod ls after its removal was killed half-way: %+v", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.state, "netns")); len(ents) != 1 {
		t.Errorf("the half-removed pod's network namespace: %v", ents)
	}
	if out := e.run("ps", "-aq"); strings.TrimSpace(out) != "" {
		t.Errorf("the pod's containers after its killed removal: %q", out)
	}
	// The retry finishes it: no -f needed, as no container is left.
	e.run("pod", "rm", "goner")
	if got := e.pods(); len(got) != 0 {
		t.Errorf("pod ls after the retried removal: %+v", got)
	}
	e.checkNothingLeft()
}

// TestPodUserNetworkNames: a pod on a user network is a name there, as a
// container is, and its containers resolve the network's names, also
// after the pod's stop and start.
func TestPodUserNetworkNames(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	e.run("network", "create", "podnames")
	e.run("run", "-d", "--name", "peer", "--network", "podnames", demoImage, "sleep", "300")
	e.run("pod", "create", "--name", "named", "--network", "podnames")
	e.run("run", "-d", "--name", "namedweb", "--pod", "named", demoImage, "sh", "-c", "mkdir /srv; echo from-pod > /srv/index.html; exec httpd -f -p 80 -h /srv")
	check := func(when string) {
		t.Helper()
		waitFor(t, 10e9, "the pod's web server", func() bool {
			_, _, err := e.try("exec", "peer", "wget", "-qO-", "http://named/")
			return err == nil
		})
		if out := e.run("exec", "peer", "wget", "-qO-", "http://named/"); out != "from-pod\n" {
			t.Errorf("%s: the pod by name from a container of its network: %q", when, out)
		}
		if out := e.run("run", "--rm", "--pod", "named", demoImage, "sh", "-c", "ping -c1 -W5 peer >/dev/null && echo reached"); out != "reached\n" {
			t.Errorf("%s: a container of the network by name from the pod: %q", when, out)
		}
	}
	check("after create")
	e.run("pod", "stop", "named")
	e.run("pod", "start", "named")
	check("after stop and start")
	e.run("pod", "rm", "-f", "named")
	if _, _, err := e.try("exec", "peer", "nslookup", "named"); err == nil {
		t.Errorf("the removed pod's name still resolves")
	}
	e.run("rm", "-f", "peer")
	e.run("network", "rm", "podnames")
	e.checkNothingLeft()
}

// TestPodUserns: a pod with --uidmap gives its containers one user
// namespace of that mapping (held by the pod's reaper, as the CRI's POD
// user namespace mode asks): root inside is the mapped host ID outside,
// the image's files and the pod's /etc files are root's inside, and the
// pod's IPC namespace is the user namespace's own (mqueue mounts).
func TestPodUserns(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	const host = 2000000000
	e.run("pod", "create", "--name", "upod", "--share", "pid", "--uidmap", fmt.Sprintf("0:%d:65536", host))
	e.run("run", "-d", "--name", "ua", "--pod", "upod", demoImage, "sleep", "100")
	out := e.run("run", "--rm", "--pod", "upod", demoImage, "sh", "-c",
		"cat /proc/self/uid_map; id -u; stat -c %u /bin/busybox /etc/hostname; readlink /proc/self/ns/user; ls -d /dev/mqueue; pidof sleep")
	f := strings.Fields(out)
	if len(f) < 9 || f[0] != "0" || f[1] != fmt.Sprint(host) || f[2] != "65536" || f[3] != "0" || f[4] != "0" || f[5] != "0" || f[7] != "/dev/mqueue" || f[8] == "" {
		t.Fatalf("a container of a pod with a user namespace sees:\n%s", out)
	}
	inA := strings.TrimSpace(e.run("exec", "ua", "readlink", "/proc/self/ns/user"))
	if inA != f[6] {
		t.Errorf("the pod's containers are in different user namespaces: %s and %s", inA, f[6])
	}
	pid := strings.TrimSpace(e.run("inspect", "-f", "{{.State.Pid}}", "ua"))
	st, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil || !strings.Contains(string(st), fmt.Sprintf("Uid:\t%d\t", host)) {
		t.Errorf("the container's root seen from the host: %v\n%s", err, st)
	}
	if _, stderr, err := e.try("pod", "create", "--name", "bad", "--uidmap", fmt.Sprintf("1:%d:10", host)); err == nil || !strings.Contains(stderr, "root") {
		t.Errorf("a pod mapping without root: %v %q", err, stderr)
	}
	e.run("pod", "rm", "-f", "upod")
	e.checkNothingLeft()
}

// leasesOf lists the addresses host-local holds in dir for a container
// (its lease files name the container's ID on their first line).
func leasesOf(t *testing.T, dir, id string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, ent := range ents {
		data, _ := os.ReadFile(filepath.Join(dir, ent.Name()))
		if first, _, _ := strings.Cut(string(data), "\n"); strings.TrimSpace(first) == id {
			out = append(out, ent.Name())
		}
	}
	return out
}
