//go:build linux

package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Networking tests: traffic stays on loopback and on the bridges and
// namespaces the tests create (the default network's berth0 included).

func requireCNI(t *testing.T) {
	t.Helper()
	for _, p := range []string{"bridge", "host-local", "portmap"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", p)); err != nil {
			t.Skipf("CNI plugin %s not installed (apt-get install containernetworking-plugins)", p)
		}
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("iptables not installed")
	}
}

type netInspect struct {
	ID              string `json:"Id"`
	NetworkSettings struct {
		SandboxKey string
		// docker's shape: keyed by network name.
		Networks map[string]struct {
			IPAddress  string
			MacAddress string
			Gateway    string
			NetworkID  string
		}
	}
}

func (e *engineEnv) netInfo(ref string) netInspect {
	e.t.Helper()
	var out []netInspect
	if err := jsonUnmarshal(e.run("inspect", ref), &out); err != nil || len(out) != 1 {
		e.t.Fatalf("inspect %s: %v", ref, err)
	}
	return out[0]
}

func (e *engineEnv) ipOf(ref string) string {
	e.t.Helper()
	n := e.netInfo(ref)
	for _, ep := range n.NetworkSettings.Networks {
		if ep.IPAddress != "" {
			return ep.IPAddress
		}
	}
	e.t.Fatalf("%s has no address: %+v", ref, n)
	return ""
}

// serve starts a container that answers each TCP connection on 5000 with
// its name.
func (e *engineEnv) serve(name string, args ...string) {
	e.t.Helper()
	a := append([]string{"run", "-d", "--name", name}, args...)
	a = append(a, demoImage, "sh", "-c", "while :; do echo \"hello from $(hostname)\" | nc -l -p 5000; done")
	e.run(a...)
}

func TestNetworkDefaultBridge(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	e.serve("srv", "--hostname", "srvhost")
	ip := e.ipOf("srv")
	if !strings.HasPrefix(ip, "10.88.") {
		t.Errorf("default network address %s, want 10.88.0.0/16", ip)
	}
	var out string
	waitFor(t, 10*time.Second, "a reply over the default bridge", func() bool {
		out, _, _ = e.try("run", "--rm", demoImage, "sh", "-c", "nc -w 2 "+ip+" 5000 </dev/null")
		return strings.Contains(out, "hello from srvhost")
	})
	// The container's route out is the bridge's gateway.
	if route := e.run("run", "--rm", demoImage, "ip", "route"); !strings.Contains(route, "default via 10.88.0.1") {
		t.Errorf("route: %s", route)
	}
	// No names on the default network (docker's rule), but its own.
	if hosts := e.run("run", "--rm", "--hostname", "me", demoImage, "cat", "/etc/hosts"); strings.Contains(hosts, "srv") || !strings.Contains(hosts, "\tme\n") {
		t.Errorf("/etc/hosts on the default network:\n%s", hosts)
	}
	e.run("rm", "-f", "srv")
	e.checkNetworkClean()
	e.checkNothingLeft()
}

func TestNetworkUserNamesAndIsolation(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	e.run("network", "create", "--subnet", "10.231.10.0/24", "front")
	e.run("network", "create", "back")
	nets, err := jsonLines[struct{ Name, Driver string }](e.run("network", "ls", "--format", "json"))
	if err != nil || len(nets) != 3 {
		t.Fatalf("network ls: %v %+v", err, nets)
	}
	e.serve("web", "--network", "front", "--network-alias", "www", "--ip", "10.231.10.50", "--mac-address", "02:42:ac:11:00:99")
	e.serve("db", "--network", "back")
	if n := e.netInfo("web").NetworkSettings.Networks; len(n) != 1 || n["front"].IPAddress != "10.231.10.50" || n["front"].MacAddress != "02:42:ac:11:00:99" || n["front"].NetworkID == "" {
		t.Errorf("--ip/--mac-address: %+v", n)
	}
	// By name and by alias on the same network.
	for _, target := range []string{"web", "www"} {
		var out string
		waitFor(t, 10*time.Second, "a reply from "+target, func() bool {
			out, _, _ = e.try("run", "--rm", "--network", "front", demoImage, "sh", "-c", "nc -w 2 "+target+" 5000 </dev/null")
			return strings.Contains(out, "hello from")
		})
	}
	// Not across networks, neither by name nor by address.
	dbIP := e.ipOf("db")
	out, _, _ := e.try("run", "--rm", "--network", "front", demoImage, "sh", "-c", "grep -cw db /etc/hosts; nc -w 2 "+dbIP+" 5000 </dev/null && echo reached")
	if strings.Contains(out, "reached") || strings.Contains(out, "hello") || !strings.HasPrefix(out, "0") {
		t.Errorf("a container on front reached db on back: %q", out)
	}
	// connect: web joins back too and reaches db by name; disconnect undoes it.
	e.run("network", "connect", "back", "web")
	n := e.netInfo("web").NetworkSettings.Networks
	if len(n) != 2 || n["back"].IPAddress == "" {
		t.Fatalf("after connect: %+v", n)
	}
	if out := e.run("exec", "web", "ip", "-o", "-4", "addr", "show", "eth1"); !strings.Contains(out, n["back"].IPAddress+"/") {
		t.Errorf("the connected network is not eth1 with %s: %s", n["back"].IPAddress, out)
	}
	// docker's everyday template.
	if got := e.run("inspect", "-f", "{{.NetworkSettings.Networks.back.IPAddress}}", "web"); strings.TrimSpace(got) != n["back"].IPAddress {
		t.Errorf("{{.NetworkSettings.Networks.back.IPAddress}}: %q", got)
	}
	waitFor(t, 10*time.Second, "web to reach db after connect", func() bool {
		out, _, _ := e.try("exec", "web", "sh", "-c", "nc -w 2 db 5000 </dev/null")
		return strings.Contains(out, "hello from")
	})
	e.run("network", "disconnect", "back", "web")
	// A whole name: container IDs, which are hostnames here, are hex and
	// may hold "db".
	if hosts := e.run("exec", "web", "cat", "/etc/hosts"); slices.Contains(strings.Fields(hosts), "db") {
		t.Errorf("web still has db in /etc/hosts after disconnect:\n%s", hosts)
	}
	// A network in use cannot be removed.
	if code, _, errOut := e.exitCode("network", "rm", "front"); code == 0 || !strings.Contains(errOut, "used by") {
		t.Errorf("network rm of a used network: %d %s", code, errOut)
	}
	// container:NAME shares web's namespace.
	if out := e.run("run", "--rm", "--network", "container:web", demoImage, "ip", "-o", "-4", "addr", "show", "eth0"); !strings.Contains(out, "10.231.10.50") {
		t.Errorf("--network container:web: %s", out)
	}
	e.run("rm", "-f", "web", "db")
	e.run("network", "rm", "front", "back")
	e.checkNetworkClean()
	e.checkNothingLeft()
}

func TestNetworkPublish(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	e.run("run", "-d", "--name", "httpd", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), "-p", "8081", demoImage, "sh", "-c",
		"mkdir -p /www && echo 'served by berth' > /www/index.html && httpd -f -p 80 -h /www")
	var body string
	waitFor(t, 10*time.Second, "httpd through the published port", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	if body != "served by berth\n" {
		t.Errorf("body %q", body)
	}
	out := e.run("port", "httpd")
	if !strings.Contains(out, fmt.Sprintf("80/tcp -> 127.0.0.1:%d", port)) || !strings.Contains(out, "8081/tcp -> 0.0.0.0:") {
		t.Errorf("berth port: %q", out)
	}
	if ps := e.run("ps", "--format", "{{.Ports}}"); !strings.Contains(ps, fmt.Sprintf("127.0.0.1:%d->80/tcp", port)) {
		t.Errorf("ps ports: %q", ps)
	}
	e.run("rm", "-f", "httpd")
	// The port is free again: nothing forwards it any more.
	if resp, err := (&http.Client{Timeout: time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
		resp.Body.Close()
		t.Errorf("port %d still answers after rm", port)
	}
	e.checkNetworkClean()
	e.checkNothingLeft()
}

func TestNetworkDNSOptions(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	out := e.run("run", "--rm", "--dns", "192.0.2.53", "--dns-search", "example.test", "--add-host", "buddy:192.0.2.7", demoImage,
		"sh", "-c", "cat /etc/resolv.conf /etc/hosts")
	for _, want := range []string{"nameserver 192.0.2.53", "search example.test", "192.0.2.7\tbuddy"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range [][]string{{"--dns", "not-an-ip"}, {"--add-host", "nocolon"}, {"--ip", "10.1.2.3", "--network", "none"}, {"-p", "99999"}} {
		if code, _, _ := e.exitCode(append(append([]string{"run", "--rm"}, bad...), demoImage, "true")...); code != 125 {
			t.Errorf("run %v: exit %d, want 125", bad, code)
		}
	}
	e.checkNothingLeft()
}

// VLAN networks need 802.1Q in the kernel (not here: CONFIG_VLAN_8021Q is
// not set); the option exists, its input is checked, and where the kernel
// lacks it the error says so.
func TestNetworkVLAN(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	if code, _, errOut := e.exitCode("network", "create", "--driver", "vlan", "-o", "parent=lo", "-o", "vlan=5000", "v1"); code == 0 || !strings.Contains(errOut, "1 to 4094") {
		t.Errorf("vlan=5000: %d %s", code, errOut)
	}
	if code, _, errOut := e.exitCode("network", "create", "--driver", "vlan", "-o", "vlan=10", "v1"); code == 0 || !strings.Contains(errOut, "parent") {
		t.Errorf("vlan without parent: %d %s", code, errOut)
	}
	probe := exec.Command("unshare", "-n", "sh", "-c", "ip link add d0 type dummy && ip link add link d0 name d0.7 type vlan id 7")
	kernelHas := probe.Run() == nil
	code, _, errOut := e.exitCode("network", "create", "--driver", "vlan", "-o", "parent=lo", "-o", "vlan=10", "v1")
	switch {
	case kernelHas && code != 0:
		t.Errorf("the kernel has 802.1Q but network create failed: %s", errOut)
	case !kernelHas && (code == 0 || !strings.Contains(errOut, "CONFIG_VLAN_8021Q")):
		t.Errorf("without 802.1Q: exit %d, %q; want a clear error naming CONFIG_VLAN_8021Q", code, errOut)
	case !kernelHas:
		t.Logf("this kernel lacks 802.1Q: %s", strings.TrimSpace(errOut))
	}
	if kernelHas {
		e.run("network", "rm", "v1")
	}
}

// After rm, and after the monitor is killed and the next command ran,
// nothing of a container's networking is left: no veth, no namespace pin,
// no lease, no per-container iptables rule.
func TestNetworkCleanupAfterKill(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	e.run("network", "create", "kills")
	// One run to install the networks' chains, then the baseline, once
	// that run's veth has gone with its namespace.
	e.run("run", "--rm", "--network", "kills", demoImage, "true")
	bridge := e.bridgeOf("kills")
	if !waitForOK(10*time.Second, func() bool { all, _ := bridgePorts(t, bridge); return len(all) == 0 }) {
		t.Fatalf("the first run's veth is still on %s", bridge)
	}
	// This root's rules and those about its network: other roots (other
	// tests, other berths on the host) change theirs meanwhile.
	var subnet struct {
		IPAM struct{ Config []struct{ Subnet string } }
	}
	var nets []json.RawMessage
	if err := jsonUnmarshal(e.run("network", "inspect", "kills"), &nets); err != nil || len(nets) != 1 || json.Unmarshal(nets[0], &subnet) != nil || len(subnet.IPAM.Config) != 1 {
		t.Fatalf("network inspect kills: %v", err)
	}
	prefix := strings.TrimSuffix(subnet.IPAM.Config[0].Subnet, "0/24")
	sum := sha256.Sum256([]byte(filepath.Join(e.root, "networks")))
	chain := hex.EncodeToString(sum[:4])
	ours := func() []string {
		return slices.DeleteFunc(iptablesRules(t), func(r string) bool {
			return !strings.Contains(r, "-"+chain+" ") && !strings.Contains(r, prefix) && !strings.Contains(r, bridge) && !strings.Contains(r, `\"kills\"`)
		})
	}
	before := ours()
	if !slices.ContainsFunc(before, func(r string) bool { return strings.Contains(r, "BERTH-FWD-"+chain) }) {
		t.Fatalf("this root's chain BERTH-FWD-%s not among the rules: %v", chain, before)
	}
	links := hostLinks(t, bridge)
	for i := range 3 {
		e.run("run", "-d", "--name", fmt.Sprintf("n%d", i), "--network", "kills", "-p", "8080", demoImage, "sleep", "100")
	}
	if n := len(e.leases("kills")); n != 3 {
		t.Fatalf("%d leases for 3 containers", n)
	}
	if r := ours(); !slices.ContainsFunc(r, func(l string) bool { return strings.Contains(l, prefix) && strings.Contains(l, ":8080") }) {
		t.Fatalf("portmap's rules for the containers are not among those compared: %v", r)
	}
	for _, pid := range e.monitors() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	time.Sleep(100 * time.Millisecond)
	e.run("ps", "-a") // reconciles
	if l := e.leases("kills"); len(l) != 0 {
		t.Errorf("leases left after the monitors died: %v", l)
	}
	e.run("rm", "-f", "n0", "n1", "n2")
	if after := ours(); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("iptables rules changed:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
	// The veths go with their namespaces, in the kernel's deferred
	// cleanup of namespaces that ended.
	var after []string
	waitForOK(10*time.Second, func() bool {
		after = hostLinks(t, bridge)
		return strings.Join(after, ",") == strings.Join(links, ",")
	})
	if strings.Join(after, ",") != strings.Join(links, ",") {
		t.Errorf("host links changed: before %v, after %v", links, after)
	}
	e.run("network", "rm", "kills")
	e.checkNetworkClean()
	e.checkNothingLeft()
}

// waitForOK polls cond until it holds or d passes, and says which.
func waitForOK(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// bridgeOf is a bridge network's bridge.
func (e *engineEnv) bridgeOf(network string) string {
	e.t.Helper()
	var nets []struct{ Options map[string]string }
	if err := jsonUnmarshal(e.run("network", "inspect", network), &nets); err != nil || len(nets) != 1 || nets[0].Options["com.docker.network.bridge.name"] == "" {
		e.t.Fatalf("network inspect %s: %v %+v", network, err, nets)
	}
	return nets[0].Options["com.docker.network.bridge.name"]
}

// bridgePorts lists the interfaces on a bridge, and which of them are up.
func bridgePorts(t *testing.T, bridge string) (all, up []string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("/sys/class/net", bridge, "brif"))
	if err != nil {
		t.Fatalf("bridge %s: %v", bridge, err)
	}
	for _, ent := range ents {
		all = append(all, ent.Name())
		if i, err := net.InterfaceByName(ent.Name()); err == nil && i.Flags&net.FlagUp != 0 {
			up = append(up, ent.Name())
		}
	}
	return all, up
}

// A removed container's address is another's at once. Its lease is given
// back after its namespace is unpinned, and its veth goes later, with the
// namespace, in the kernel's cleanup: by then the veth must carry nothing
// (its host end down, off the bridge's forwarding), or what is left of the
// old namespace could still answer ARP for the address. The test holds
// each old namespace open (as the name server's sockets may), so that its
// veth is surely still there when the next container takes the address
// and when the network is removed.
func TestNetworkAddressReusedAtOnce(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	e.run("network", "create", "--subnet", "10.231.12.0/24", "reuse")
	bridge := e.bridgeOf("reuse")
	const addr = "10.231.12.20"
	var held []*os.File
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	for i := range 3 {
		name := fmt.Sprintf("srv%d", i)
		// At once after the last one's rm: host-local refuses an
		// address still leased.
		e.serve(name, "--network", "reuse", "--ip", addr, "--hostname", name)
		if all, up := bridgePorts(t, bridge); len(up) != 1 || len(all) != i+1 {
			t.Errorf("%s runs on %s beside %d unplugged veths: ports %v, up %v", name, bridge, i, all, up)
		}
		var out string
		if !waitForOK(10*time.Second, func() bool {
			out, _, _ = e.try("run", "--rm", "--network", "reuse", demoImage, "sh", "-c", "nc -w 2 "+addr+" 5000 </dev/null")
			return strings.Contains(out, "hello from")
		}) || !strings.Contains(out, "hello from "+name) {
			t.Errorf("%s at %s: got %q", name, addr, out)
		}
		ns, err := os.Open(e.netInfo(name).NetworkSettings.SandboxKey)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ns)
		e.run("rm", "-f", name)
		if all, up := bridgePorts(t, bridge); len(up) != 0 {
			t.Errorf("after rm -f %s, ports of %s still up: %v (all: %v)", name, bridge, up, all)
		}
	}
	unplugged, _ := bridgePorts(t, bridge)
	if len(unplugged) != 3 {
		t.Errorf("the held namespaces' veths on %s: %v", bridge, unplugged)
	}
	// The network goes at once, its bridge too, whatever unplugged veth
	// is still on it.
	e.run("network", "rm", "reuse")
	if _, err := net.InterfaceByName(bridge); err == nil {
		t.Errorf("bridge %s is left after network rm", bridge)
	}
	// The veths go with their namespaces, in the kernel's cleanup.
	var veths []string
	for _, f := range held {
		f.Close()
	}
	held = nil
	if !waitForOK(10*time.Second, func() bool {
		veths = nil
		for _, v := range unplugged {
			if _, err := net.InterfaceByName(v); err == nil {
				veths = append(veths, v)
			}
		}
		return len(veths) == 0
	}) {
		t.Errorf("veths left after their namespaces ended: %v", veths)
	}
	e.checkNetworkClean()
	e.checkNothingLeft()
}

func (e *engineEnv) leases(network string) []string {
	ents, _ := os.ReadDir(filepath.Join(e.root, "networks", "ipam", network))
	var out []string
	for _, ent := range ents {
		if net.ParseIP(ent.Name()) != nil {
			out = append(out, ent.Name())
		}
	}
	return out
}

// checkNetworkClean: no namespace pinned, no lease held.
func (e *engineEnv) checkNetworkClean() {
	e.t.Helper()
	ents, _ := os.ReadDir(filepath.Join(e.state, "netns"))
	for _, ent := range ents {
		e.t.Errorf("network namespace left: %s", ent.Name())
	}
	dirs, _ := os.ReadDir(filepath.Join(e.root, "networks", "ipam"))
	for _, d := range dirs {
		if l := e.leases(d.Name()); len(l) > 0 {
			e.t.Errorf("leases left on %s: %v", d.Name(), l)
		}
	}
}

func iptablesRules(t *testing.T) []string {
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "-A") {
			rules = append(rules, l)
		}
	}
	sort.Strings(rules)
	return rules
}

// hostLinks lists the host's interfaces but the ports of bridges other
// than own: those are other engines' containers (other tests' roots,
// other berths on the host on berth0), which come and go meanwhile.
func hostLinks(t *testing.T, own string) []string {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range ifs {
		if master, err := os.Readlink(filepath.Join("/sys/class/net", i.Name, "master")); err == nil && filepath.Base(master) != own {
			continue
		}
		out = append(out, i.Name+"#"+strconv.Itoa(i.Index))
	}
	sort.Strings(out)
	return out
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// -P publishes every port the image exposes on a free host port.
func TestNetworkPublishAll(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	tarPath := filepath.Join(t.TempDir(), "exposed.tar")
	script, _ := filepath.Abs("../../scripts/mkimage.sh")
	cmd := exec.Command(script, tarPath, "berth-test/exposed:1")
	cmd.Env = append(os.Environ(), "MKIMAGE_EXPOSE=80/tcp 5353/udp")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkimage: %v %s", err, out)
	}
	e.run("load", "-q", "-i", tarPath)
	e.run("run", "-d", "--name", "all", "-P", "berth-test/exposed:1", "sh", "-c",
		"mkdir -p /www && echo exposed > /www/index.html && httpd -f -p 80 -h /www")
	out := e.run("port", "all", "80/tcp")
	hostPort := strings.TrimSpace(out[strings.LastIndex(out, ":")+1:])
	if _, err := strconv.Atoi(hostPort); err != nil {
		t.Fatalf("berth port all 80/tcp: %q", out)
	}
	if udp := e.run("port", "all"); !strings.Contains(udp, "5353/udp -> 0.0.0.0:") {
		t.Errorf("-P did not publish 5353/udp: %q", udp)
	}
	waitFor(t, 10*time.Second, "the -P port to answer", func() bool {
		resp, err := http.Get("http://127.0.0.1:" + hostPort + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b) == "exposed\n"
	})
	e.run("rm", "-f", "all")
	e.checkNetworkClean()
	e.checkNothingLeft()
}

// Each network's conflist is stored under berth's root, valid CNI.
func TestNetworkConflistStored(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.run("network", "create", "--internal", "stored")
	data, err := os.ReadFile(filepath.Join(e.root, "networks", "stored.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		CNIVersion string `json:"cniVersion"`
		Name       string
		Plugins    []struct {
			Type   string
			Bridge string
			IPMasq bool `json:"ipMasq"`
		}
	}
	if err := json.Unmarshal(data, &conf); err != nil || conf.Name != "stored" || len(conf.Plugins) == 0 || conf.Plugins[0].Type != "bridge" || conf.Plugins[0].Bridge == "" {
		t.Fatalf("conflist: %v %s", err, data)
	}
	e.run("network", "rm", "stored")
	if _, err := os.Stat(filepath.Join(e.root, "networks", "stored.conflist")); err == nil {
		t.Error("the conflist outlived its network")
	}
}

// berth's firewall rules do not pile up: runs after reboots (fresh state
// directories, so the rules' marker is gone) leave exactly the rules the
// first run made, and system reset, which removes the last network,
// leaves the host's rules as they were before the root existed.
func TestFirewallRulesDoNotAccumulate(t *testing.T) {
	requireCNI(t)
	dir := t.TempDir()
	e := newEngineIn(t, dir)
	t.Cleanup(func() { exec.Command("umount", "-l", filepath.Join(dir, "state", "netns")).Run() })
	// This root's chains are BERTH-FWD-<h> and BERTH-NAT-<h>, h a hash of
	// its network directory (docs/architecture.md); only its own rules
	// are compared, so other roots on the host may come and go meanwhile.
	sum := sha256.Sum256([]byte(filepath.Join(e.root, "networks")))
	h := hex.EncodeToString(sum[:4])
	own := func() []string {
		return slices.DeleteFunc(iptablesRules(t), func(r string) bool {
			return !strings.Contains(r, "BERTH-FWD-"+h) && !strings.Contains(r, "BERTH-NAT-"+h)
		})
	}
	if got := own(); len(got) != 0 {
		t.Fatalf("rules of a root that does not exist yet: %q", got)
	}
	e.loadDemoImage()
	e.run("network", "create", "acc")
	runBoth := func() {
		e.run("run", "--rm", "--network", "acc", "-p", "8080", demoImage, "true")
		e.run("run", "--rm", "-p", "8081", demoImage, "true")
	}
	runBoth()
	baseline := own()
	if len(baseline) < 4 {
		t.Fatalf("the root's chains hold %d rules: the test checks nothing: %q", len(baseline), baseline)
	}
	for i := range 4 {
		e.state = filepath.Join(dir, fmt.Sprintf("state%d", i))
		t.Cleanup(func() { exec.Command("umount", "-l", filepath.Join(dir, fmt.Sprintf("state%d", i), "netns")).Run() })
		runBoth()
		if got := own(); strings.Join(got, "\n") != strings.Join(baseline, "\n") {
			t.Fatalf("after a run with fresh state %d the rules changed:\n%s", i, ruleDiff(baseline, got))
		}
	}
	e.run("system", "reset", "--force")
	if got := own(); len(got) != 0 {
		t.Errorf("after system reset the root's rules remain:\n%s", strings.Join(got, "\n"))
	}
	out, _ := exec.Command("iptables-save").Output()
	if strings.Contains(string(out), "BERTH-FWD-"+h) || strings.Contains(string(out), "BERTH-NAT-"+h) {
		t.Errorf("the root's chains remain after system reset")
	}
	for _, d := range []string{e.root, e.state} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s still exists after system reset: %v", d, err)
		}
	}
}

// ruleDiff lists the rules a has more often than b (-) and b more often
// than a (+).
func ruleDiff(a, b []string) string {
	count := map[string]int{}
	for _, r := range a {
		count[r]--
	}
	for _, r := range b {
		count[r]++
	}
	var out []string
	for _, r := range slices.Sorted(maps.Keys(count)) {
		for n := count[r]; n < 0; n++ {
			out = append(out, "- "+r)
		}
		for n := count[r]; n > 0; n-- {
			out = append(out, "+ "+r)
		}
	}
	return strings.Join(out, "\n")
}

// httpGet returns the body served at 127.0.0.1:port, or "" when nothing
// answers within a second.
func httpGet(port int) string {
	resp, err := (&http.Client{Timeout: time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A published host port is the container's alone while it runs: a second
// container, or a port a host program listens on, is refused with docker's
// message and exit code; the port is free again after stop and after the
// monitor is killed; parallel -P runs never share a port.
func TestNetworkPortReservation(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	busy := l.Addr().(*net.TCPAddr).Port
	defer l.Close()
	port := func() int {
		l, err := net.Listen("tcp4", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}()
	serve := func(name, body string) []string {
		return []string{"run", "-d", "--name", name, "-p", fmt.Sprintf("%d:80", port), demoImage, "sh", "-c",
			"mkdir -p /www && echo " + body + " > /www/index.html && exec httpd -f -p 80 -h /www"}
	}
	e.run(serve("first", "first")...)
	waitFor(t, 10*time.Second, "the first container's httpd", func() bool { return httpGet(port) == "first\n" })

	code, _, errOut := e.exitCode(serve("second", "second")...)
	if code != 125 || !strings.Contains(errOut, "port is already allocated") {
		t.Errorf("a second container on port %d: exit %d, %q; want 125 and docker's message", port, code, errOut)
	}
	if got := httpGet(port); got != "first\n" {
		t.Errorf("after the refused second container, the port serves %q", got)
	}
	if c := e.inspect("second"); c.State.Running {
		t.Errorf("the refused container runs: %+v", c.State)
	}
	code, _, errOut = e.exitCode("run", "--rm", "-p", fmt.Sprintf("127.0.0.1:%d:80", busy), demoImage, "true")
	if code != 125 || !strings.Contains(errOut, "port is already allocated") {
		t.Errorf("a port a host program listens on: exit %d, %q", code, errOut)
	}

	// Stopped: the port is free, and the second container can have it.
	e.run("stop", "-t", "0", "first")
	e.run("start", "second")
	waitFor(t, 10*time.Second, "the second container's httpd", func() bool { return httpGet(port) == "second\n" })

	// The monitor killed: the kernel lets go of the port with it.
	syscall.Kill(e.monitorOf(e.inspect("second").ID), syscall.SIGKILL)
	time.Sleep(100 * time.Millisecond)
	e.run("ps", "-a")
	e.run("rm", "first")
	e.run(serve("first", "again")...)
	waitFor(t, 10*time.Second, "a new container on the port after the holder's monitor died", func() bool { return httpGet(port) == "again\n" })

	// A restart policy: the port stays held between an exit and the
	// restart (the restart reuses the sockets), so nobody can take it in
	// between and make the restart fail.
	rp := func() int {
		l, err := net.Listen("tcp4", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}()
	e.run("run", "-d", "--name", "flapping", "--restart", "always", "-p", fmt.Sprintf("%d:80", rp), demoImage, "sh", "-c", "sleep 0.3; exit 3")
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if l, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", rp)); err == nil {
			l.Close()
			t.Fatalf("port %d of a restarting container was free to take", rp)
		}
		time.Sleep(time.Millisecond)
	}
	if c := e.inspect("flapping"); c.RestartCount < 2 || c.State.Error != "" {
		t.Errorf("the flapping container: %d restarts, %+v", c.RestartCount, c.State)
	}
	e.run("rm", "-f", "flapping")
	if l, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", rp)); err != nil {
		t.Errorf("port %d after rm -f of its container: %v", rp, err)
	} else {
		l.Close()
	}

	// -P in parallel: distinct ports, each held.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.run("run", "-d", "--name", fmt.Sprintf("p%d", i), "-p", "80", "-p", "53/udp", demoImage, "sleep", "100")
		}()
	}
	wg.Wait()
	seen := map[string]string{}
	for i := range 8 {
		for _, line := range strings.Split(strings.TrimSpace(e.run("port", fmt.Sprintf("p%d", i))), "\n") {
			proto := strings.Fields(line)[0]
			hp := proto[strings.Index(proto, "/"):] + line[strings.LastIndex(line, ":")+1:]
			if other, ok := seen[hp]; ok {
				t.Errorf("p%d and %s both publish %s", i, other, hp)
			}
			seen[hp] = fmt.Sprintf("p%d", i)
		}
	}
	if len(seen) != 16 {
		t.Errorf("%d distinct published ports for 8 containers with 2 each: %v", len(seen), seen)
	}
	out := strings.Fields(e.run("ps", "-aq"))
	e.run(append([]string{"rm", "-f"}, out...)...)
	e.checkNetworkClean()
	e.checkNothingLeft()
}

// Two roots share the default network's bridge, so they share its
// address pool: their containers never get the same address (they did,
// each root drawing from its own, and traffic went to the wrong one).
func TestNetworkDefaultSharedByRoots(t *testing.T) {
	requireCNI(t)
	a, b := newEngine(t), newEngine(t)
	a.loadDemoImage()
	b.loadDemoImage()
	a.serve("one", "--hostname", "root-a")
	b.serve("two", "--hostname", "root-b")
	ipA, ipB := a.ipOf("one"), b.ipOf("two")
	if ipA == ipB {
		t.Fatalf("both roots' containers have %s", ipA)
	}
	for _, tc := range []struct {
		e    *engineEnv
		ip   string
		want string
	}{{b, ipA, "root-a"}, {a, ipB, "root-b"}} {
		var out string
		waitFor(t, 10*time.Second, "a reply from "+tc.want, func() bool {
			out, _, _ = tc.e.try("run", "--rm", demoImage, "sh", "-c", "nc -w 2 "+tc.ip+" 5000 </dev/null")
			return strings.Contains(out, "hello from")
		})
		if !strings.Contains(out, tc.want) {
			t.Errorf("%s answered as %q, want %s", tc.ip, out, tc.want)
		}
	}
	a.run("rm", "-f", "one")
	b.run("rm", "-f", "two")
	a.checkNetworkClean()
	b.checkNetworkClean()
}

// berth serve installs a created network's firewall chains after it has
// answered, before any container attaches (network.Manager's
// syncRulesLater), so that the first container's start does not wait for
// the iptables processes.
func TestNetworkServeInstallsRulesAfterCreate(t *testing.T) {
	e := newEngine(t)
	sock := e.serveDocker()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	for _, name := range []string{"early1", "early2"} {
		resp, err := client.Post("http://docker/networks/create", "application/json", strings.NewReader(`{"Name":"`+name+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create %s: %s", name, resp.Status)
		}
	}
	for _, name := range []string{"early1", "early2"} {
		var rec struct{ Bridge string }
		data, err := os.ReadFile(filepath.Join(e.root, "networks", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &rec); err != nil || rec.Bridge == "" {
			t.Fatalf("record of %s: %v %s", name, err, data)
		}
		waitFor(t, 10*time.Second, "rules naming "+rec.Bridge, func() bool {
			return slices.ContainsFunc(iptablesRules(t), func(r string) bool { return strings.Contains(r, " "+rec.Bridge+" ") })
		})
	}
}

// A network attachment that fails while the runtime creates the container
// beside it (overlapNetwork): the start fails with the plugin's word, the
// created container is deleted (no runtime state, namespace or lease of
// it left), and the container that holds the address runs on.
func TestNetworkAttachFailsBesideCreate(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	e.run("network", "create", "--subnet", "10.231.14.0/24", "clash")
	const addr = "10.231.14.30"
	e.serve("first", "--network", "clash", "--ip", addr)
	_, errOut, err := e.try("run", "-d", "--name", "second", "--network", "clash", "--ip", addr, demoImage, "sleep", "60")
	if err == nil || !strings.Contains(errOut, addr) || !strings.Contains(errOut, "not available") {
		t.Fatalf("a second container on %s: %v (%s), want the plugin's refusal", addr, err, errOut)
	}
	if st := e.inspect("second").State; st.Running || st.Error == "" {
		t.Errorf("the second container: %+v, want not running, with the error", st)
	}
	id := e.inspect("second").ID
	if _, err := os.Stat(filepath.Join(e.state, "runtime", id)); !os.IsNotExist(err) {
		t.Errorf("the runtime's state of the failed start: %v, want none", err)
	}
	if _, err := os.Stat(filepath.Join(e.state, "netns", id)); !os.IsNotExist(err) {
		t.Errorf("the network namespace of the failed start: %v, want none", err)
	}
	if out, _, _ := e.try("run", "--rm", "--network", "clash", demoImage, "sh", "-c", "nc -w 2 "+addr+" 5000 </dev/null"); !strings.Contains(out, "hello from") {
		t.Errorf("the first container at %s after the failed start: %q", addr, out)
	}
	e.run("rm", "-f", "first", "second")
	e.run("network", "rm", "clash")
	e.checkNothingLeft()
}
