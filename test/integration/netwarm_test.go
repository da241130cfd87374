//go:build linux

package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// warmSpare says whether id is a warm network namespace's: journaled
// under <root>/netwarm.
func (e *engineEnv) warmSpare(id string) bool {
	_, err := os.Stat(filepath.Join(e.root, "netwarm", id+".json"))
	return err == nil
}

// warmSpareHeld says whether id is the warm network namespace of a berth
// serve that runs: its journal is flocked by that serve.
func (e *engineEnv) warmSpareHeld(id string) bool {
	f, err := os.Open(filepath.Join(e.root, "netwarm", id+".json"))
	if err != nil {
		return false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}
	return errors.Is(err, syscall.EWOULDBLOCK)
}

// warmSpares are the IDs of the warm network namespaces journaled now.
func (e *engineEnv) warmSpares() []string {
	m, _ := filepath.Glob(filepath.Join(e.root, "netwarm", "*.json"))
	var ids []string
	for _, p := range m {
		ids = append(ids, strings.TrimSuffix(filepath.Base(p), ".json"))
	}
	return ids
}

// warmReady is the spare the berth serve on sock says is ready (crictl
// info: the CRI's verbose Status), "" for none.
func warmReady(t *testing.T, sock string) string {
	out, _, err := crictl(t, sock, "info")
	if err != nil {
		return ""
	}
	var info struct {
		Config struct {
			PodNetwork struct {
				Warm struct{ ID, IP string }
			}
		}
	}
	json.Unmarshal([]byte(out), &info)
	return info.Config.PodNetwork.Warm.ID
}

// waitWarm waits for the berth serve on sock to have a spare ready, and
// returns its ID.
func waitWarm(t *testing.T, sock string) string {
	t.Helper()
	var id string
	waitFor(t, 30*time.Second, "a warm network namespace", func() bool {
		id = warmReady(t, sock)
		return id != ""
	})
	return id
}

// TestCRIWarmPodNetwork: berth serve keeps a network namespace attached
// to the default network for the next CRI pod on it, under the ID that
// pod then has.
//   - None before a pod is made on the default network; one after
//     (journaled, its address leased, its namespace pinned).
//   - A pod that publishes a port does not take it; nor a retried
//     RunPodSandbox of a live pod (AlreadyExists), which gives it back:
//     it stays the one spare. The next plain pod takes it: its ID is the
//     spare's, its address the spare's lease, seen on eth0 inside its
//     container; a new spare follows.
//   - serve killed: the spare's journal, lease and namespace stay; the
//     next serve releases them at its start, before any pod is made.
//   - serve stopped after a pod's record was written with the spare and
//     before the journal went, then killed: the next serve releases the
//     namespace and the address at its start, and the pod, whose
//     creation was cut short, is undone when read.
//   - SIGTERM: serve releases its spare.
func TestCRIWarmPodNetwork(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	crictlPath(t)
	const leaseDir = "/var/lib/cni/networks/berth"
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	os.MkdirAll(logDir, 0o755)
	sock := filepath.Join(dir, "cri.sock")
	pod := func(name string, ports bool) string {
		cfg := map[string]any{
			"metadata":      map[string]any{"name": name, "namespace": "default", "uid": "uid-" + name, "attempt": 0},
			"log_directory": logDir,
		}
		if ports {
			cfg["port_mappings"] = []any{map[string]any{"container_port": 80, "host_port": freePort(t), "protocol": 0}}
		}
		p := filepath.Join(dir, name+".json")
		writeJSON(t, p, cfg)
		return p
	}
	pinned := func(id string) bool {
		mounts, _ := os.ReadFile("/proc/self/mountinfo")
		return strings.Contains(string(mounts), " "+filepath.Join(e.state, "netns", id)+" ")
	}
	held := func(id string) bool {
		return e.warmSpare(id) && len(leasesOf(t, leaseDir, id)) == 1 && pinned(id)
	}
	released := func(id string) bool {
		return !e.warmSpare(id) && len(leasesOf(t, leaseDir, id)) == 0 && !pinned(id)
	}
	ready := func() string { return warmReady(t, sock) }
	oneSpare := func() string {
		t.Helper()
		id := waitWarm(t, sock)
		if ids := e.warmSpares(); len(ids) != 1 || ids[0] != id || !held(id) {
			t.Fatalf("serve's spare %s: journals %q, leases %q, pinned %v", id, ids, leasesOf(t, leaseDir, id), pinned(id))
		}
		return id
	}

	serve := e.serveToKill(sock, nil, "--cri-socket", sock)
	ok := crictlOK(t, sock)
	time.Sleep(500 * time.Millisecond)
	if ids := e.warmSpares(); len(ids) != 0 || ready() != "" {
		t.Fatalf("warm network namespaces before any pod: %q", ids)
	}
	firstCfg := pod("first", false)
	ok("runp", firstCfg)
	spare := oneSpare()
	ok("runp", pod("ported", true))
	if !held(spare) || ready() != spare {
		t.Fatalf("a pod publishing a port took the spare %s", spare)
	}
	if _, errOut, err := crictl(t, sock, "runp", firstCfg); err == nil || !strings.Contains(errOut, "AlreadyExists") {
		t.Fatalf("a retried RunPodSandbox of a live pod: %v: %s", err, errOut)
	}
	time.Sleep(time.Second) // the refill that taking it began
	if ids := e.warmSpares(); len(ids) != 1 || ids[0] != spare || ready() != spare || !held(spare) {
		t.Fatalf("after a spare was given back: journals %q, ready %q; want the one spare %s", ids, ready(), spare)
	}
	taker := ok("runp", pod("taker", false))
	if taker != spare {
		t.Fatalf("the plain pod's ID is %s, not the spare's %s", taker, spare)
	}
	if e.warmSpare(taker) {
		t.Fatalf("the spare's journal is left after its pod took it")
	}
	leases := leasesOf(t, leaseDir, taker)
	var st struct {
		Status struct {
			State   string `json:"state"`
			Network struct {
				IP string `json:"ip"`
			} `json:"network"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(ok("inspectp", "-o", "json", taker)), &st); err != nil {
		t.Fatal(err)
	}
	if len(leases) != 1 || st.Status.Network.IP != leases[0] || st.Status.State != "SANDBOX_READY" {
		t.Fatalf("the pod that took the spare: %s with IP %q; the spare's leases %q", st.Status.State, st.Status.Network.IP, leases)
	}
	ctrCfg := filepath.Join(dir, "ctr.json")
	writeJSON(t, ctrCfg, map[string]any{
		"metadata": map[string]any{"name": "c"},
		"image":    map[string]any{"image": "docker.io/" + demoImage},
		"command":  []string{"sleep", "3600"},
		"log_path": "c.log",
	})
	cid := ok("create", taker, ctrCfg, filepath.Join(dir, "taker.json"))
	ok("start", cid)
	if out := ok("exec", cid, "ip", "-4", "addr", "show", "eth0"); !strings.Contains(out, "inet "+st.Status.Network.IP+"/") {
		t.Fatalf("eth0 in the pod that took the spare has not its address %s:\n%s", st.Status.Network.IP, out)
	}
	next := oneSpare()
	if next == spare {
		t.Fatal("no new spare after one was taken")
	}

	// Killed: the spare stays as it was, and the next serve releases it.
	serve.Process.Kill()
	serve.Wait()
	if !held(next) {
		t.Fatalf("serve killed: the spare %s is not as it was (journal %v, leases %q, pinned %v)", next, e.warmSpare(next), leasesOf(t, leaseDir, next), pinned(next))
	}
	serve = e.serveToKill(sock, []string{"_BERTH_TEST_STOP_AT=pod-warm-taken"}, "--cri-socket", sock)
	waitFor(t, 20*time.Second, "the next serve to release the spare of the killed one", func() bool { return released(next) })

	// Stopped with a pod's record written and the spare's journal not
	// yet removed, then killed.
	ok("runp", pod("second", false)) // cold: its spare follows
	spare = oneSpare()
	cut := exec.Command(crictlPath(t), "--config", "/dev/null", "--runtime-endpoint", "unix://"+sock, "--timeout", "60s", "runp", pod("cut", false))
	if err := cut.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cut.Process.Kill()
		cut.Wait()
	}()
	waitStopped(t, 20*time.Second, "serve to stop with a pod made from the spare", serve.Process.Pid)
	serve.Process.Kill()
	serve.Wait()
	if !e.warmSpare(spare) || len(leasesOf(t, leaseDir, spare)) != 1 {
		t.Fatalf("serve killed with the spare taken: journal %v, leases %q; want both", e.warmSpare(spare), leasesOf(t, leaseDir, spare))
	}
	serve = e.serveToKill(sock, nil, "--cri-socket", sock)
	waitFor(t, 20*time.Second, "the next serve to undo the pod that took the spare", func() bool { return released(spare) })
	if out := ok("pods", "-q", "--name", "cut"); out != "" {
		t.Fatalf("the pod whose creation was cut short is listed: %s", out)
	}
	if out := e.run("--namespace", "k8s", "pod", "ls", "-q"); strings.Contains(out, spare[:12]) {
		t.Fatalf("the pod whose creation was cut short is left: %s", out)
	}

	// SIGTERM releases serve's spare.
	ok("runp", pod("third", false))
	spare = oneSpare()
	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()
	if !released(spare) || len(e.warmSpares()) != 0 {
		t.Fatalf("serve ended by SIGTERM left its spare: journals %q, leases %q, pinned %v", e.warmSpares(), leasesOf(t, leaseDir, spare), pinned(spare))
	}
}

// TestCRIWarmPodNetworkCNI: with --pod-network cni and a configuration of
// the reference plugins (bridge with ipMasq, host-local, portmap), serve
// keeps the spare on that configuration: a plain pod takes it (its ID,
// its address in the configuration's subnet with host-local's lease, the
// bridge's masquerade rule naming it); after the file is rewritten the
// spare made for the old file is not taken but released, and the next is
// made for the new one; SIGTERM releases it.
func TestCRIWarmPodNetworkCNI(t *testing.T) {
	const bridge = "bwarm0"
	e, dir := cniTest(t, bridge)
	e.loadDemoImage()
	confDir, ipamDir := filepath.Join(dir, "net.d"), filepath.Join(dir, "ipam")
	os.MkdirAll(confDir, 0o755)
	confFile := filepath.Join(confDir, "10-wpods.conflist")
	writeConf := func(bridge, subnet string) {
		t.Helper()
		conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"wpods","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}`, bridge, subnet, ipamDir)
		if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConf(bridge, "10.133.9.0/24")
	sock := filepath.Join(dir, "cri.sock")
	serve := e.serveToKill(sock, nil, "--cri-socket", sock, "--pod-network", "cni", "--cni-conf-dir", confDir, "--cni-bin-dir", "/usr/lib/cni")
	ok := crictlOK(t, sock)
	leases := func(id string) []string { return leasesOf(t, filepath.Join(ipamDir, "wpods"), id) }
	oneSpare := func() string {
		t.Helper()
		id := waitWarm(t, sock)
		if ids := e.warmSpares(); len(ids) != 1 || ids[0] != id || len(leases(id)) != 1 {
			t.Fatalf("serve's spare %s: journals %q, leases %q", id, ids, leases(id))
		}
		return id
	}

	ok("runp", cniPodConfig(t, dir, "first"))
	spare := oneSpare()
	taker := ok("runp", cniPodConfig(t, dir, "taker"))
	if taker != spare {
		t.Fatalf("the plain pod's ID is %s, not the spare's %s", taker, spare)
	}
	_, sn, _ := net.ParseCIDR("10.133.9.0/24")
	if ip := podIPOf(t, ok, taker); net.ParseIP(ip) == nil || !sn.Contains(net.ParseIP(ip)) || !slices.Equal(leases(taker), []string{ip}) {
		t.Fatalf("the pod that took the spare has address %q; leases %q", ip, leases(taker))
	}
	if natRulesNaming(taker) == "" {
		t.Errorf("no masquerade rule names the pod that took the spare")
	}

	// The network add-on rewrites its configuration (a bridge keeps its
	// subnet: a new one).
	stale := oneSpare()
	t.Cleanup(func() { exec.Command("ip", "link", "del", "bwarm1").Run() })
	writeConf("bwarm1", "10.133.10.0/24")
	fresh := ok("runp", cniPodConfig(t, dir, "fresh"))
	if fresh == stale {
		t.Fatalf("a pod took the spare made for the configuration before it was rewritten")
	}
	_, sn2, _ := net.ParseCIDR("10.133.10.0/24")
	if ip := podIPOf(t, ok, fresh); !sn2.Contains(net.ParseIP(ip)) {
		t.Fatalf("the pod made after the rewrite has address %q, not of the new subnet", ip)
	}
	waitFor(t, 20*time.Second, "the stale spare's release", func() bool { return len(leases(stale)) == 0 && !e.warmSpare(stale) })
	next := oneSpare()
	if next == stale {
		t.Fatal("no spare made for the rewritten configuration")
	}

	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()
	if len(e.warmSpares()) != 0 || len(leases(next)) != 0 {
		t.Fatalf("serve ended by SIGTERM left its spare: journals %q, leases %q", e.warmSpares(), leases(next))
	}
	if natRulesNaming(next) != "" {
		t.Errorf("serve ended by SIGTERM left its spare's masquerade rule")
	}
}
