package cni

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/network/netns"
)

func requirePlugins(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, bridges, veths")
	}
	for _, p := range []string{"bridge", "host-local"} {
		found := false
		for _, d := range DefaultPluginDirs {
			if _, err := os.Stat(filepath.Join(d, p)); err == nil {
				found = true
			}
		}
		if !found {
			t.Skipf("CNI plugin %s not installed (apt-get install containernetworking-plugins)", p)
		}
	}
}

// TestTwoNamespacesOnABridge attaches two namespaces the test made to a
// bridge the test made, checks they reach each other (traffic stays in
// those namespaces and the test's bridge), and that detaching leaves no
// veth and no IPAM lease behind.
func TestTwoNamespacesOnABridge(t *testing.T) {
	requirePlugins(t)
	dir := t.TempDir()
	nsDir := filepath.Join(dir, "netns")
	var rnd [3]byte
	rand.Read(rnd[:])
	tag := hex.EncodeToString(rnd[:])
	bridge := "bt" + tag
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", bridge).Run()
		for _, n := range []string{"a", "b"} {
			netns.Remove(nsDir, n)
		}
		exec.Command("umount", "-l", nsDir).Run()
	})
	leases := filepath.Join(dir, "ipam")
	conf, err := BridgeConflist(BridgeOptions{Name: "test-" + tag, Bridge: bridge, Subnet: "10.231.7.0/24", Gateway: "10.231.7.1", IPAMDataDir: leases})
	if err != nil {
		t.Fatal(err)
	}
	n, err := ParseNetwork(conf)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(nil, filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ips := map[string]net.IP{}
	var atts []Attachment
	for _, name := range []string{"a", "b"} {
		p, err := netns.New(nsDir, name)
		if err != nil {
			t.Fatal(err)
		}
		a := Attachment{ContainerID: tag + name, NetNS: p, IfName: "eth0"}
		res, err := c.Attach(ctx, n, a)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.IPs) != 1 {
			t.Fatalf("attach %s: %d addresses", name, len(res.IPs))
		}
		ips[name] = res.IPs[0].Address.IP
		atts = append(atts, a)
	}
	out, err := exec.Command("nsenter", "--net="+atts[0].NetNS, "/bin/busybox", "ping", "-c", "1", "-W", "3", ips["b"].String()).CombinedOutput()
	if err != nil {
		t.Fatalf("a cannot reach b at %s: %v\n%s", ips["b"], err, out)
	}
	// The cached result names the veth's host end, on the bridge.
	cached, err := c.CachedResult(n, Attachment{ContainerID: atts[0].ContainerID, IfName: "eth0"})
	if err != nil || cached == nil {
		t.Fatalf("cached result of a: %v %v", cached, err)
	}
	hostEnd := ""
	for _, i := range cached.Interfaces {
		if i.Sandbox == "" && i.Name != bridge {
			hostEnd = i.Name
		}
	}
	if master, err := os.Readlink(filepath.Join("/sys/class/net", hostEnd, "master")); err != nil || filepath.Base(master) != bridge {
		t.Errorf("cached host end %q: not on %s (%v)", hostEnd, bridge, err)
	}
	for _, a := range atts {
		if err := c.Detach(ctx, n, a); err != nil {
			t.Fatal(err)
		}
		if err := c.Detach(ctx, n, a); err != nil {
			t.Fatalf("second detach: %v", err)
		}
	}
	if cached, err := c.CachedResult(n, Attachment{ContainerID: atts[0].ContainerID, IfName: "eth0"}); err != nil || cached != nil {
		t.Errorf("a result is cached after the detach: %+v %v", cached, err)
	}
	links, _ := exec.Command("ip", "-o", "link", "show", "master", bridge).CombinedOutput()
	if strings.TrimSpace(string(links)) != "" {
		t.Fatalf("veths left on %s after detach:\n%s", bridge, links)
	}
	ents, _ := os.ReadDir(filepath.Join(leases, n.Name()))
	for _, e := range ents {
		if net.ParseIP(e.Name()) != nil {
			t.Fatalf("IPAM lease %s left after detach", e.Name())
		}
	}
}
