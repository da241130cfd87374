package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// ip6tablesText is the host's IPv6 rules (every table).
func ip6tablesText(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip6tables-save").Output()
	if err != nil {
		t.Fatalf("ip6tables-save: %v", err)
	}
	return string(out)
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func getURL(url string) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// A dual-stack network: both addresses, traffic over IPv6 between two
// containers, AAAA from the name server, ports published on both
// families (from [::1] too, which the kernel cannot DNAT: the monitor's
// proxy serves it), and no ip6tables rule left after.
func TestNetworkIPv6(t *testing.T) {
	requireCNI(t)
	if _, err := exec.LookPath("ip6tables-save"); err != nil {
		t.Skip("ip6tables not installed")
	}
	const subnet6 = "fd00:b:e:6::/64"
	e := newEngine(t)
	e.loadDemoImage()
	if code, _, errOut := e.exitCode("network", "create", "--subnet", "fd00:b:e:6::/64", "--subnet", "fd00:b:e:7::/64", "bad"); code == 0 || !strings.Contains(errOut, "one subnet per address family") {
		t.Errorf("two IPv6 subnets: exit %d, %s", code, errOut)
	}
	e.run("network", "create", "--ipv6", "--subnet", subnet6, "dual")
	e.serve("a", "--network", "dual")
	var nets map[string]struct {
		IPAddress, GlobalIPv6Address, IPv6Gateway string
		GlobalIPv6PrefixLen                       int
	}
	if err := jsonUnmarshal(e.run("inspect", "-f", "{{json .NetworkSettings.Networks}}", "a"), &nets); err != nil {
		t.Fatal(err)
	}
	a := nets["dual"]
	if !strings.HasPrefix(a.GlobalIPv6Address, "fd00:b:e:6::") || a.GlobalIPv6PrefixLen != 64 || a.IPv6Gateway != "fd00:b:e:6::1" || a.IPAddress == "" {
		t.Fatalf("a's addresses: %+v", a)
	}
	// IPv6 between two containers, by address and by the name's AAAA.
	var out string
	waitFor(t, 10*time.Second, "a reply over IPv6", func() bool {
		out, _, _ = e.try("run", "--rm", "--network", "dual", demoImage, "sh", "-c", "nc -w 2 "+a.GlobalIPv6Address+" 5000 </dev/null")
		return strings.Contains(out, "hello from")
	})
	if out, _, _ := e.try("run", "--rm", "--network", "dual", demoImage, "nslookup", "-type=AAAA", "a"); !strings.Contains(out, a.GlobalIPv6Address) {
		t.Errorf("AAAA of a: %s", out)
	}

	// Published ports: -p P:80 on both families, -p [::1]:Q:80 on ::1.
	p, q := freeTCPPort(t), freeTCPPort(t)
	e.run("run", "-d", "--name", "web", "--network", "dual", "-p", fmt.Sprintf("%d:80", p), "-p", fmt.Sprintf("[::1]:%d:80", q), demoImage, "sh", "-c",
		"mkdir -p /www && echo dual > /www/index.html && httpd -f -p 80 -h /www")
	for _, url := range []string{fmt.Sprintf("http://127.0.0.1:%d/", p), fmt.Sprintf("http://[::1]:%d/", p), fmt.Sprintf("http://[::1]:%d/", q)} {
		var body string
		waitFor(t, 10*time.Second, url, func() bool {
			body, _ = getURL(url)
			return body == "dual\n"
		})
	}
	if got := e.run("port", "web"); !strings.Contains(got, fmt.Sprintf("80/tcp -> [::]:%d", p)) || !strings.Contains(got, fmt.Sprintf("80/tcp -> [::1]:%d", q)) || !strings.Contains(got, fmt.Sprintf("80/tcp -> 0.0.0.0:%d", p)) {
		t.Errorf("port: %s", got)
	}
	// A restart gets a new address; [::1] follows it.
	e.run("restart", "-t", "0", "web")
	url := fmt.Sprintf("http://[::1]:%d/", q)
	waitFor(t, 10*time.Second, url+" after a restart", func() bool {
		body, _ := getURL(url)
		return body == "dual\n"
	})
	// An IPv6 host address on an IPv4-only network is refused.
	if code, _, errOut := e.exitCode("run", "--rm", "-p", "[::1]:8080:80", demoImage, "true"); code != 125 || !strings.Contains(errOut, "dual-stack") {
		t.Errorf("[::1] on the default network: exit %d, %s", code, errOut)
	}

	e.run("rm", "-f", "a", "web")
	for _, u := range []string{fmt.Sprintf("http://[::1]:%d/", p), fmt.Sprintf("http://[::1]:%d/", q)} {
		if body, err := getURL(u); err == nil {
			t.Errorf("%s still answers after rm: %q", u, body)
		}
	}
	if rules := ip6tablesText(t); !strings.Contains(rules, subnet6) {
		t.Errorf("while the network exists, ip6tables has no rule for %s:\n%s", subnet6, rules)
	}
	e.run("network", "rm", "dual")
	if rules := ip6tablesText(t); strings.Contains(rules, subnet6) || strings.Contains(rules, "fd00:b:e:6:") {
		t.Errorf("ip6tables rules left for the removed network:\n%s", rules)
	}
	// The monitors kill their proxies as the containers go (reaped a
	// moment later).
	waitFor(t, 10*time.Second, "no loopback proxy left", func() bool {
		out, _ := exec.Command("pgrep", "berth-proxy").Output()
		return len(out) == 0
	})
	e.checkNetworkClean()
	e.checkNothingLeft()
}
