package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCRIPodNetworkCNI: with --pod-network cni, berth serve's pods join
// the network of the node's CNI configuration, as the kubelet's network
// add-ons expect of containerd and CRI-O:
//   - with no configuration the network is not ready (Status) and a pod
//     that needs a network fails with the CRI's "cni plugin not
//     initialized", leaving nothing; a host-network pod runs;
//   - the first file that loads, in lexical order, is the network, read
//     when the pod is made (a file written after serve started is seen);
//     a broken one before it is skipped;
//   - the pod gets the configuration's address, its hostPort works
//     through the configuration's portmap, and its plugins get the pod's
//     CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME, ...);
//   - after a kill -9 of serve and with the configuration file gone (the
//     add-on rewrote it), the pod's removal still releases its address
//     and its rules (the DEL runs with the ADD's configuration, from
//     libcni's cache).
func TestCRIPodNetworkCNI(t *testing.T) {
	const bridge, subnet = "bcnit0", "10.133.7.0/24"
	e, dir := cniTest(t, bridge)
	e.loadDemoImage()
	confDir := filepath.Join(dir, "net.d")
	ipamDir := filepath.Join(dir, "ipam")
	os.MkdirAll(confDir, 0o755)

	sock := filepath.Join(dir, "cri.sock")
	args := []string{"--cri-socket", sock, "--pod-network", "cni", "--cni-conf-dir", confDir, "--cni-bin-dir", "/usr/lib/cni"}
	first := e.serveToKill(sock, nil, args...)
	ok := crictlOK(t, sock)
	rt, _ := criClient(t, sock)
	networkReady := func() *runtimeapi.RuntimeCondition {
		t.Helper()
		st, err := rt.Status(context.Background(), &runtimeapi.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.GetStatus().GetConditions() {
			if c.GetType() == runtimeapi.NetworkReady {
				return c
			}
		}
		t.Fatal("Status has no NetworkReady condition")
		return nil
	}

	// No configuration yet.
	if c := networkReady(); c.GetStatus() || c.GetReason() != "NetworkPluginNotReady" || !strings.Contains(c.GetMessage(), "no network config found in "+confDir) {
		t.Errorf("NetworkReady without a configuration: %v %q %q", c.GetStatus(), c.GetReason(), c.GetMessage())
	}
	podCfg := func(name string, hostNetwork bool, hostPort int) string {
		path := filepath.Join(dir, name+".json")
		ns := map[string]any{"pid": 1}
		if hostNetwork {
			ns["network"] = 2
		}
		cfg := map[string]any{
			"metadata":      map[string]any{"name": name, "namespace": "cnins", "uid": "uid-" + name, "attempt": 0},
			"log_directory": filepath.Join(dir, "logs", name),
			"linux":         map[string]any{"security_context": map[string]any{"namespace_options": ns}},
		}
		if hostPort > 0 {
			cfg["port_mappings"] = []any{map[string]any{"container_port": 8080, "host_port": hostPort, "protocol": 0}}
		}
		writeJSON(t, path, cfg)
		return path
	}
	if out, errOut, err := crictl(t, sock, "runp", podCfg("early", false, 0)); err == nil || !strings.Contains(errOut, "cni plugin not initialized") {
		t.Errorf("runp without a CNI configuration: %v %s%s", err, out, errOut)
	}
	if got := ok("pods", "-q"); got != "" {
		t.Errorf("a pod that failed for want of a network is left: %q", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.state, "netns")); len(ents) != 0 {
		t.Errorf("a network namespace is left: %v", ents)
	}
	hostPod := ok("runp", podCfg("hostnet", true, 0))
	ok("stopp", hostPod)
	ok("rmp", hostPod)

	// The add-on writes its configuration; a broken file sorts first.
	os.WriteFile(filepath.Join(confDir, "05-broken.conflist"), []byte(`{"cniVersion": "1.0.0", "name": `), 0o644)
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"kpods","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}`, bridge, subnet, ipamDir)
	confFile := filepath.Join(confDir, "10-kpods.conflist")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if c := networkReady(); !c.GetStatus() {
		t.Errorf("NetworkReady with a configuration: %q", c.GetMessage())
	}
	var info struct {
		Config struct {
			PodNetwork struct {
				CNI struct{ Name, File string }
			} `json:"podNetwork"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(ok("info")), &info); err != nil || info.Config.PodNetwork.CNI.File != confFile || info.Config.PodNetwork.CNI.Name != "kpods" {
		t.Errorf("crictl info's pod network: %+v %v", info.Config.PodNetwork, err)
	}

	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	webCfg := podCfg("web", false, port)
	podID := ok("runp", webCfg)
	ctrCfg := filepath.Join(dir, "ctr.json")
	writeJSON(t, ctrCfg, map[string]any{
		"metadata": map[string]any{"name": "srv"},
		"image":    map[string]any{"image": "docker.io/" + demoImage},
		"command":  []string{"sh", "-c", "mkdir -p /www && echo via-cni > /www/index.html && exec httpd -f -p 8080 -h /www"},
		"log_path": "srv.log",
	})
	cid := ok("create", podID, ctrCfg, webCfg)
	ok("start", cid)
	podIP := podIPOf(t, ok, podID)
	_, sn, _ := net.ParseCIDR(subnet)
	if ip := net.ParseIP(podIP); ip == nil || !sn.Contains(ip) {
		t.Errorf("the pod's address %q is not of the configuration's subnet %s", podIP, subnet)
	}
	if got := ok("exec", "-s", cid, "ip", "-4", "addr", "show", "eth0"); !strings.Contains(got, podIP+"/24") {
		t.Errorf("eth0 inside the pod: %q", got)
	}
	waitFor(t, 10*time.Second, "the pod's hostPort through the configuration's portmap", func() bool { return httpGet(port) == "via-cni\n" })
	if leases := leasesOf(t, filepath.Join(ipamDir, "kpods"), podID); len(leases) != 1 || leases[0] != podIP {
		t.Errorf("host-local's lease for the pod: %v", leases)
	}
	cached, err := os.ReadFile(filepath.Join(e.root, "networks", "cache", "results", "kpods-"+podID+"-eth0"))
	if err != nil {
		t.Fatalf("libcni's cache of the pod's ADD: %v", err)
	}
	for _, arg := range []string{`"K8S_POD_NAMESPACE","cnins"`, `"K8S_POD_NAME","web"`, `"K8S_POD_UID","uid-web"`, `"K8S_POD_INFRA_CONTAINER_ID","` + podID + `"`} {
		if !strings.Contains(string(cached), arg) {
			t.Errorf("the plugins' CNI_ARGS lack [%s]: %s", arg, cached)
		}
	}
	if natRulesNaming(podID) == "" {
		t.Errorf("no nat rule names the pod (the bridge's ipMasq, portmap's DNAT)")
	}

	// kill -9 of serve; the add-on replaces its file; a new serve.
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	os.Remove(confFile)
	os.WriteFile(filepath.Join(confDir, "10-other.conflist"), []byte(strings.ReplaceAll(conf, `"kpods"`, `"other"`)), 0o644)
	e.serveWith(args...)
	if got := ok("pods", "-q", "--no-trunc"); got != podID {
		t.Errorf("crictl pods after serve's restart: %q, want %s", got, podID)
	}
	ok("stopp", podID)
	ok("rmp", podID)
	if leases := leasesOf(t, filepath.Join(ipamDir, "kpods"), podID); len(leases) != 0 {
		t.Errorf("the removed pod's lease is left: %v", leases)
	}
	if r := natRulesNaming(podID); r != "" {
		t.Errorf("the removed pod's nat rules are left:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(e.root, "networks", "cache", "results", "kpods-"+podID+"-eth0")); !os.IsNotExist(err) {
		t.Errorf("libcni's cache of the removed pod: %v", err)
	}
	e.checkNothingLeft()
}

// TestCRIPodNetworkCNIKilled: a RunPodSandbox on the node's CNI
// configuration whose serve is killed after the ADD and before the pod
// is recorded ready is undone by the kubelet's retry on a new serve: the
// half-made pod's address, its rules and libcni's cache of it are
// released (its DEL runs with the ADD's configuration), and the retry
// makes the pod. The network is named "bridge", as some add-ons name
// theirs, which is also a name berth gives its own default network.
func TestCRIPodNetworkCNIKilled(t *testing.T) {
	const bridge = "bcnik0"
	e, dir := cniTest(t, bridge)
	confDir := filepath.Join(dir, "net.d")
	ipamDir := filepath.Join(dir, "ipam")
	os.MkdirAll(confDir, 0o755)
	os.WriteFile(filepath.Join(confDir, "10-bridge.conflist"), []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"bridge","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.133.8.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}}]}`, bridge, ipamDir)), 0o644)
	sock := filepath.Join(dir, "cri.sock")
	args := []string{"--cri-socket", sock, "--pod-network", "cni", "--cni-conf-dir", confDir, "--cni-bin-dir", "/usr/lib/cni"}
	stopped := e.serveToKill(sock, []string{"_BERTH_TEST_STOP_AT=pod-network-attached"}, args...)
	podCfg := cniPodConfig(t, dir, "halfway")
	first := exec.Command(crictlPath(t), "--config", "/dev/null", "--runtime-endpoint", "unix://"+sock, "--timeout", "60s", "runp", podCfg)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Process.Kill()
	waitStopped(t, 20*time.Second, "serve to stop with the pod's network attached", stopped.Process.Pid)
	ents, _ := os.ReadDir(filepath.Join(ipamDir, "bridge"))
	var halfID, halfIP string
	for _, ent := range ents {
		if net.ParseIP(ent.Name()) != nil {
			data, _ := os.ReadFile(filepath.Join(ipamDir, "bridge", ent.Name()))
			first, _, _ := strings.Cut(string(data), "\n")
			halfID, halfIP = strings.TrimSpace(first), ent.Name()
		}
	}
	if len(halfID) != 64 {
		t.Fatalf("the half-made pod's lease: %v (%q)", ents, halfID)
	}
	stopped.Process.Signal(syscall.SIGKILL)
	stopped.Wait()
	first.Process.Kill()
	first.Wait()

	e.serveWith(args...)
	ok := crictlOK(t, sock)
	podID := ok("runp", podCfg)
	if podID == halfID {
		t.Fatalf("the retry answered the half-made pod %s", podID)
	}
	if leases := leasesOf(t, filepath.Join(ipamDir, "bridge"), halfID); len(leases) != 0 {
		t.Errorf("the half-made pod's address %s is still leased: %v", halfIP, leases)
	}
	if natRulesNaming(halfID) != "" {
		t.Errorf("the half-made pod's nat rules are left")
	}
	if _, err := os.Stat(filepath.Join(e.root, "networks", "cache", "results", "bridge-"+halfID+"-eth0")); !os.IsNotExist(err) {
		t.Errorf("libcni's cache of the half-made pod: %v", err)
	}
	if leases := leasesOf(t, filepath.Join(ipamDir, "bridge"), podID); len(leases) != 1 {
		t.Errorf("the retried pod's lease: %v", leases)
	}
	ok("stopp", podID)
	ok("rmp", podID)
	if leases := leasesOf(t, filepath.Join(ipamDir, "bridge"), podID); len(leases) != 0 {
		t.Errorf("the removed pod's lease: %v", leases)
	}
	e.checkNothingLeft()
}

// TestCRIPodNetworkCNIDelFails: when a CNI configuration's DEL fails at
// StopPodSandbox, the pod's network namespace stays pinned, so the
// kubelet's next StopPodSandbox runs the DEL in it again: the bridge
// plugin's ipMasq rules, which it finds by the addresses of the interface
// inside, are removed then (without the namespace only the lease would
// be). A plugin of the test's own, last in the chain, fails its DEL
// while a file says so.
func TestCRIPodNetworkCNIDelFails(t *testing.T) {
	const bridge = "bcnid0"
	e, dir := cniTest(t, bridge)
	confDir, binDir, ipamDir := filepath.Join(dir, "net.d"), filepath.Join(dir, "bin"), filepath.Join(dir, "ipam")
	os.MkdirAll(confDir, 0o755)
	os.MkdirAll(binDir, 0o755)
	failDel := filepath.Join(dir, "fail-del")
	flakyPlugin(t, binDir, dir)
	os.WriteFile(filepath.Join(confDir, "10-flaky.conflist"), []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"flakynet","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.133.9.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}},
 {"type":"flaky"}]}`, bridge, ipamDir)), 0o644)
	sock := filepath.Join(dir, "cri.sock")
	e.serveWith("--cri-socket", sock, "--pod-network", "cni", "--cni-conf-dir", confDir, "--cni-bin-dir", binDir+",/usr/lib/cni")
	ok := crictlOK(t, sock)
	podID := ok("runp", cniPodConfig(t, dir, "flaky"))
	if ip := podIPOf(t, ok, podID); !strings.HasPrefix(ip, "10.133.9.") {
		t.Fatalf("the pod's address through the chain's result: %q", ip)
	}
	masq := func() bool { return natRulesNaming(podID) != "" }
	if !masq() {
		t.Fatal("no ipMasq rule names the pod")
	}
	os.WriteFile(failDel, nil, 0o644)
	if out, errOut, err := crictl(t, sock, "stopp", podID); err == nil || !strings.Contains(errOut, "flaky DEL") {
		t.Errorf("stopp with a failing DEL: %v %s%s", err, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(e.state, "netns", podID)); err != nil {
		t.Errorf("the pod's namespace went with its DEL failed: %v", err)
	}
	if !masq() {
		t.Errorf("the bridge's rules went, though its DEL (before the failing one) should not have run yet")
	}
	os.Remove(failDel)
	ok("stopp", podID)
	if masq() {
		t.Errorf("the pod's ipMasq rules are left after the DEL's retry")
	}
	if leases := leasesOf(t, filepath.Join(ipamDir, "flakynet"), podID); len(leases) != 0 {
		t.Errorf("the pod's lease is left: %v", leases)
	}
	ok("rmp", podID)
	e.checkNothingLeft()
}

// TestCRIPodNetworkTemplate: with --cni-conf-template, the kubelet's pod
// CIDR (UpdateRuntimeConfig) fills in a conflist template that serve
// writes into the configuration directory, and the node's pods join it
// (containerd's conf_template, for a node without a network add-on).
func TestCRIPodNetworkTemplate(t *testing.T) {
	const bridge = "bcnitp0"
	e, dir := cniTest(t, bridge)
	confDir := filepath.Join(dir, "net.d")
	tmpl := filepath.Join(dir, "template.conflist")
	os.WriteFile(tmpl, []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"templated","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipam":{"type":"host-local","dataDir":%q,
  "ranges":[{{range $i, $r := .PodCIDRRanges}}{{if $i}},{{end}}[{"subnet":"{{$r}}"}]{{end}}],
  "routes":[{{range $i, $r := .Routes}}{{if $i}},{{end}}{"dst":"{{$r}}"}{{end}}]}}]}`, bridge, filepath.Join(dir, "ipam"))), 0o644)

	if code, _, errOut := e.exitCode("serve", "--cri-socket", filepath.Join(dir, "x.sock"), "--cni-conf-template", tmpl); code == 0 || !strings.Contains(errOut, "needs --pod-network cni") {
		t.Errorf("--cni-conf-template without --pod-network cni: exit %d, %s", code, errOut)
	}
	sock := filepath.Join(dir, "cri.sock")
	e.serveWith("--cri-socket", sock, "--pod-network", "cni", "--cni-conf-dir", confDir, "--cni-conf-template", tmpl)
	rt, _ := criClient(t, sock)
	ctx := context.Background()
	if _, err := rt.UpdateRuntimeConfig(ctx, &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.133.10.0/24"}}}); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(confDir, "10-berth-net.conflist")); err != nil || !strings.Contains(string(data), `"subnet":"10.133.10.0/24"`) {
		t.Fatalf("the configuration written from the template: %q %v", data, err)
	}
	ok := crictlOK(t, sock)
	podID := ok("runp", cniPodConfig(t, dir, "templated"))
	if ip := podIPOf(t, ok, podID); !strings.HasPrefix(ip, "10.133.10.") {
		t.Errorf("the pod's address from the templated configuration: %q", ip)
	}
	ok("stopp", podID)
	ok("rmp", podID)
	e.checkNothingLeft()
}

// cniTest is the set-up of a pod network test: an engine, a temporary
// directory, and a bridge of the test's own deleted at the end (the
// plugins make it; nothing else removes it).
func cniTest(t *testing.T, bridge string) (*engineEnv, string) {
	t.Helper()
	requireCNI(t)
	e := newEngine(t)
	crictlPath(t)
	t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	return e, t.TempDir()
}

// cniPodConfig writes a pod's sandbox config (namespace cnins) to
// dir/NAME.json.
func cniPodConfig(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name+".json")
	writeJSON(t, path, map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "cnins", "uid": "uid-" + name, "attempt": 0},
		"log_directory": filepath.Join(dir, "logs", name),
	})
	return path
}

// podIPOf is the pod's address as crictl inspectp reports it.
func podIPOf(t *testing.T, ok func(...string) string, podID string) string {
	t.Helper()
	var insp struct {
		Status struct {
			Network struct{ IP string } `json:"network"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(ok("inspectp", podID)), &insp); err != nil {
		t.Fatal(err)
	}
	return insp.Status.Network.IP
}

// natRulesNaming are the host's nat rules that name id (the CNI plugins'
// comments carry the container ID).
func natRulesNaming(id string) string {
	out, _ := exec.Command("iptables-save", "-t", "nat").Output()
	var mine []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, id) {
			mine = append(mine, l)
		}
	}
	return strings.Join(mine, "\n")
}

// flakyPlugin writes binDir/flaky, a CNI plugin for the end of a chain:
// its ADD passes the previous result on (libcni's config is one line,
// its keys sorted: prevResult comes last but for type) and fails while
// dir/fail-add exists; its DEL fails while dir/fail-del exists.
func flakyPlugin(t *testing.T, binDir, dir string) {
	t.Helper()
	plugin := fmt.Sprintf(`#!/bin/sh
conf=$(cat)
case "$CNI_COMMAND" in
ADD) if [ -e %q ]; then echo '{"code":999,"msg":"flaky ADD"}'; exit 1; fi
	printf '%%s' "$conf" | sed -e 's/.*"prevResult":\(.*\),"type":"flaky"}$/\1/' ;;
DEL) if [ -e %q ]; then echo '{"code":999,"msg":"flaky DEL"}'; exit 1; fi ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}' ;;
esac
`, filepath.Join(dir, "fail-add"), filepath.Join(dir, "fail-del"))
	if err := os.WriteFile(filepath.Join(binDir, "flaky"), []byte(plugin), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestCRIPodNetworkCNIAddFails: a RunPodSandbox whose ADD fails half-way
// (a plugin after the bridge) and whose DEL of it fails too keeps the
// sandbox, stopped, with its namespace and the endpoint, instead of
// leaking the bridge's lease and veth under a record that is gone; the
// kubelet's RemovePodSandbox runs the DEL again and releases it. And an
// operator's `berth pod rm --ignore-network-errors` removes such a pod
// when the DEL can never succeed, with a warning.
func TestCRIPodNetworkCNIAddFails(t *testing.T) {
	const bridge = "bcnia0"
	e, dir := cniTest(t, bridge)
	confDir, binDir, ipamDir := filepath.Join(dir, "net.d"), filepath.Join(dir, "bin"), filepath.Join(dir, "ipam")
	os.MkdirAll(confDir, 0o755)
	os.MkdirAll(binDir, 0o755)
	flakyPlugin(t, binDir, dir)
	os.WriteFile(filepath.Join(confDir, "10-flaky.conflist"), []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"addfails","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.133.11.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}},
 {"type":"flaky"}]}`, bridge, ipamDir)), 0o644)
	sock := filepath.Join(dir, "cri.sock")
	e.serveWith("--cri-socket", sock, "--pod-network", "cni", "--cni-conf-dir", confDir, "--cni-bin-dir", binDir+",/usr/lib/cni")
	ok := crictlOK(t, sock)
	leases := func() []string {
		ents, _ := os.ReadDir(filepath.Join(ipamDir, "addfails"))
		var out []string
		for _, ent := range ents {
			if net.ParseIP(ent.Name()) != nil {
				out = append(out, ent.Name())
			}
		}
		return out
	}

	for _, f := range []string{"fail-add", "fail-del"} {
		os.WriteFile(filepath.Join(dir, f), nil, 0o644)
	}
	if out, errOut, err := crictl(t, sock, "runp", cniPodConfig(t, dir, "halfadd")); err == nil || !strings.Contains(errOut, "flaky ADD") {
		t.Fatalf("runp with a failing ADD: %v %s%s", err, out, errOut)
	}
	kept := ok("pods", "-q", "--no-trunc", "--state", "notready")
	if len(kept) != 64 {
		t.Fatalf("the sandbox whose DEL failed is not kept (stopped): %q", kept)
	}
	if _, err := os.Stat(filepath.Join(e.state, "netns", kept)); err != nil {
		t.Errorf("its namespace went: %v", err)
	}
	if l := leases(); len(l) != 1 {
		t.Errorf("the bridge's lease of the half-done ADD: %v", l)
	}
	os.Remove(filepath.Join(dir, "fail-del"))
	ok("rmp", kept)
	if l := leases(); len(l) != 0 {
		t.Errorf("the lease is left after the retried DEL: %v", l)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.state, "netns")); len(ents) != 0 {
		t.Errorf("namespaces left: %v", ents)
	}

	// A DEL that can never succeed: the operator's way out.
	os.WriteFile(filepath.Join(dir, "fail-del"), nil, 0o644)
	if _, _, err := crictl(t, sock, "runp", cniPodConfig(t, dir, "stuck")); err == nil {
		t.Fatal("runp with a failing ADD succeeded")
	}
	stuck := ok("pods", "-q", "--no-trunc", "--state", "notready")
	if out, errOut, err := crictl(t, sock, "rmp", stuck); err == nil || !strings.Contains(errOut, "flaky DEL") {
		t.Errorf("rmp with a failing DEL: %v %s%s", err, out, errOut)
	}
	if code, _, errOut := e.exitCode("--namespace", "k8s", "pod", "rm", stuck); code == 0 || !strings.Contains(errOut, "--ignore-network-errors") {
		t.Errorf("pod rm with a failing DEL: exit %d, %s", code, errOut)
	}
	code, _, errOut := e.exitCode("--namespace", "k8s", "pod", "rm", "--ignore-network-errors", stuck)
	if code != 0 || !strings.Contains(errOut, "warning:") || !strings.Contains(errOut, "removed without releasing its network") {
		t.Errorf("pod rm --ignore-network-errors: exit %d, %s", code, errOut)
	}
	if got := ok("pods", "-q"); got != "" {
		t.Errorf("pods left: %q", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.state, "netns")); len(ents) != 0 {
		t.Errorf("namespaces left: %v", ents)
	}
	// system reset must end whatever the plugins do: such a pod goes,
	// with a warning.
	if _, _, err := crictl(t, sock, "runp", cniPodConfig(t, dir, "reset")); err == nil {
		t.Fatal("runp with a failing ADD succeeded")
	}
	code, _, errOut = e.exitCode("system", "reset", "--force")
	if code != 0 || !strings.Contains(errOut, "removed without releasing its network") {
		t.Errorf("system reset with a pod whose DEL fails: exit %d, %s", code, errOut)
	}
	if got := ok("pods", "-q"); got != "" {
		t.Errorf("pods left after system reset: %q", got)
	}
	e.checkNothingLeft()
}
