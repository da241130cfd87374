package integration

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
)

// upstreamAddr is where the tests' own upstream name server listens: the
// containers' --dns, so that no query leaves the host.
const upstreamAddr = "127.0.0.2"

// startUpstream answers "upstream.test" with 192.0.2.7 and NXDOMAIN for
// every other name, over UDP at upstreamAddr:53.
func startUpstream(t *testing.T) {
	t.Helper()
	c, err := net.ListenPacket("udp4", upstreamAddr+":53")
	if err != nil {
		t.Fatalf("the test's upstream name server cannot listen at %s:53: %v", upstreamAddr, err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			var m dnsmessage.Message
			if m.Unpack(buf[:n]) != nil || len(m.Questions) != 1 {
				continue
			}
			q := m.Questions[0]
			m.Response, m.RecursionAvailable = true, true
			m.Answers = nil
			if strings.EqualFold(q.Name.String(), "upstream.test.") && q.Type == dnsmessage.TypeA {
				m.Answers = []dnsmessage.Resource{{Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
					Body: &dnsmessage.AResource{A: [4]byte{192, 0, 2, 7}}}}
			} else if !strings.EqualFold(q.Name.String(), "upstream.test.") {
				m.RCode = dnsmessage.RCodeNameError
			}
			if out, err := m.Pack(); err == nil {
				c.WriteTo(out, from)
			}
		}
	}()
}

// lookup runs busybox nslookup NAME in a new container on network net
// and returns the addresses it printed for the name (none if it failed).
func (e *engineEnv) lookup(netName, name string) []string {
	e.t.Helper()
	out, _, _ := e.try("run", "--rm", "--network", netName, "--dns", upstreamAddr, demoImage, "nslookup", name)
	return nslookupAddrs(out)
}

func nslookupAddrs(out string) []string {
	var addrs []string
	inAnswer := false
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Name:") {
			inAnswer = true
		}
		if a, ok := strings.CutPrefix(l, "Address:"); ok && inAnswer {
			addrs = append(addrs, strings.TrimSpace(a))
		}
	}
	return addrs
}

// glibcLookup resolves name with glibc's getaddrinfo (getent ahostsv4)
// in a container on netName whose nsswitch.conf says "hosts: dns": the
// host's getent and C library, bound in read-only.
func (e *engineEnv) glibcLookup(netName, name string) string {
	e.t.Helper()
	nss := filepath.Join(e.t.TempDir(), "nsswitch.conf")
	if err := os.WriteFile(nss, []byte("hosts: dns\n"), 0o644); err != nil {
		e.t.Fatal(err)
	}
	out, errOut, err := e.try("run", "--rm", "--network", netName, "--dns", upstreamAddr,
		"-v", "/usr/bin/getent:/usr/bin/getent:ro", "-v", "/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro",
		"-v", "/lib64:/lib64:ro", "-v", nss+":/etc/nsswitch.conf:ro",
		demoImage, "/usr/bin/getent", "ahostsv4", name)
	if err != nil {
		return "error: " + err.Error() + ": " + errOut
	}
	if f := strings.Fields(out); len(f) > 0 {
		return f[0]
	}
	return ""
}

// queryIn asks the name server from inside the network namespace of
// process pid, over TCP when tcp is set, and returns the A records.
func queryIn(t *testing.T, pid int, name string, tcp bool) ([]string, error) {
	t.Helper()
	type result struct {
		addrs []string
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with us
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		network := "udp"
		if tcp {
			network = "tcp"
		}
		c, err := net.DialTimeout(network, "127.0.0.11:53", 2*time.Second)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
		b.StartQuestions()
		b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
		q, _ := b.Finish()
		if tcp {
			q = append([]byte{byte(len(q) >> 8), byte(len(q))}, q...)
		}
		if _, err := c.Write(q); err != nil {
			ch <- result{err: err}
			return
		}
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			ch <- result{err: err}
			return
		}
		resp := buf[:n]
		if tcp {
			resp = resp[2:]
		}
		var m dnsmessage.Message
		if err := m.Unpack(resp); err != nil {
			ch <- result{err: err}
			return
		}
		var addrs []string
		for _, a := range m.Answers {
			if r, ok := a.Body.(*dnsmessage.AResource); ok {
				addrs = append(addrs, netip.AddrFrom4(r.A).String())
			}
		}
		ch <- result{addrs: addrs}
	}()
	r := <-ch
	return r.addrs, r.err
}

// dnsServers are the pids of the name servers of this test's state.
func (e *engineEnv) dnsServers() []int {
	out, _ := exec.Command("pgrep", "-f", "system dns-server").Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, _ := strconv.Atoi(f)
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmdline), "\x00"+e.state+"\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestNetworkDNS(t *testing.T) {
	requireCNI(t)
	startUpstream(t)
	e := newEngine(t)
	e.loadDemoImage()
	e.run("network", "create", "front")
	e.run("network", "create", "back")
	e.serve("web", "--network", "front", "--network-alias", "www", "--dns", upstreamAddr)
	e.serve("db", "--network", "back", "--dns", upstreamAddr)
	webIP, dbIP := e.ipOf("web"), e.ipOf("db")
	webID := strings.TrimSpace(e.run("inspect", "-f", "{{.Id}}", "web"))

	// resolv.conf names the server, as docker's.
	if rc := e.run("exec", "web", "cat", "/etc/resolv.conf"); !strings.Contains(rc, "nameserver 127.0.0.11\n") || strings.Contains(rc, upstreamAddr) {
		t.Errorf("resolv.conf on a user network:\n%s", rc)
	}
	// By name, alias, short ID and NAME.NETWORK, through busybox's
	// resolver (musl-like, DNS only).
	for _, name := range []string{"web", "www", webID[:12], "web.front"} {
		if got := e.lookup("front", name); len(got) != 1 || got[0] != webIP {
			t.Errorf("nslookup %s on front: %q, want %s", name, got, webIP)
		}
	}
	// Through glibc's getaddrinfo with DNS only.
	if got := e.glibcLookup("front", "web"); got != webIP {
		t.Errorf("glibc getent ahostsv4 web: %q, want %s", got, webIP)
	}
	// Reverse.
	if out, _, _ := e.try("run", "--rm", "--network", "front", "--dns", upstreamAddr, demoImage, "nslookup", webIP); !strings.Contains(out, "web.front") {
		t.Errorf("nslookup %s: %s", webIP, out)
	}
	// Not across networks: db is back's.
	if got := e.lookup("front", "db"); len(got) != 0 {
		t.Errorf("db resolved from front: %q", got)
	}
	// Everything else goes upstream (--dns).
	if got := e.lookup("front", "upstream.test"); len(got) != 1 || got[0] != "192.0.2.7" {
		t.Errorf("a forwarded name: %q", got)
	}
	// Over TCP as well as UDP, asked from web's own namespace.
	pid := e.inspect("web").State.Pid
	for _, tcp := range []bool{false, true} {
		if got, err := queryIn(t, pid, "www", tcp); err != nil || len(got) != 1 || got[0] != webIP {
			t.Errorf("query for www (tcp %v): %q %v", tcp, got, err)
		}
	}

	// connect and disconnect: web joins back and finds db, then leaves.
	e.run("network", "connect", "back", "web")
	if out, _, _ := e.try("exec", "web", "nslookup", "db"); !strings.Contains(strings.Join(nslookupAddrs(out), " "), dbIP) {
		t.Errorf("web on back does not find db: %s", out)
	}
	e.run("network", "disconnect", "back", "web")
	if out, _, _ := e.try("exec", "web", "nslookup", "db"); len(nslookupAddrs(out)) != 0 {
		t.Errorf("web still finds db after disconnect: %s", out)
	}
	// rename: the new name answers, the old one does not.
	e.run("rename", "web", "web2")
	if got := e.lookup("front", "web2"); len(got) != 1 || got[0] != webIP {
		t.Errorf("the new name: %q", got)
	}
	if got := e.lookup("front", "web"); len(got) != 0 {
		t.Errorf("the old name still answers: %q", got)
	}
	// stop: the name goes; start: it comes back.
	e.run("stop", "-t", "0", "web2")
	if got := e.lookup("front", "web2"); len(got) != 0 {
		t.Errorf("a stopped container's name answers: %q", got)
	}
	e.run("start", "web2")
	if got := e.lookup("front", "www"); len(got) != 1 {
		t.Errorf("after start: %q", got)
	}

	// An internal network's containers have names, but nothing upstream.
	e.run("network", "create", "--internal", "vault")
	e.serve("secret", "--network", "vault", "--dns", upstreamAddr)
	if got := e.lookup("vault", "secret"); len(got) != 1 {
		t.Errorf("a name on an internal network: %q", got)
	}
	if got := e.lookup("vault", "upstream.test"); len(got) != 0 {
		t.Errorf("an internal network reached upstream: %q", got)
	}

	e.run("rm", "-f", "web2", "db", "secret")
	e.run("network", "rm", "front", "back", "vault")
	e.checkNetworkClean()
	e.checkNothingLeft()
	e.run("system", "reset", "-f")
	if pids := e.dnsServers(); len(pids) > 0 {
		t.Errorf("name servers left after system reset: %v", pids)
	}
}

// TestNetworkDNSKilled kills the name server at random moments, with
// containers starting beside it: after the next command every name
// answers again, and nothing is left at the end.
func TestNetworkDNSKilled(t *testing.T) {
	requireCNI(t)
	startUpstream(t)
	e := newEngine(t)
	e.loadDemoImage()
	e.run("network", "create", "app")
	const n = 4
	for round := range n {
		name := "c" + strconv.Itoa(round)
		done := make(chan struct{})
		go func() {
			defer close(done)
			time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
			for _, pid := range e.dnsServers() {
				syscall.Kill(pid, syscall.SIGKILL)
				// kill -9 is done when the process is: until then it
				// holds its lock, and counts as alive.
				for i := 0; i < 500; i++ {
					st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
					if err != nil || strings.Contains(string(st), ") Z ") {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
		e.run("run", "-d", "--name", name, "--network", "app", "--dns", upstreamAddr, demoImage, "sleep", "600")
		<-done
		// The next command (any: ps here) starts the server again.
		e.run("ps")
		if len(e.dnsServers()) != 1 {
			t.Fatalf("round %d: name servers %v, want one", round, e.dnsServers())
		}
		for i := 0; i <= round; i++ {
			other := "c" + strconv.Itoa(i)
			out, _, _ := e.try("exec", name, "nslookup", other)
			if got := nslookupAddrs(out); len(got) != 1 || got[0] != e.ipOf(other) {
				t.Errorf("round %d: %s cannot find %s: %s", round, name, other, out)
			}
		}
	}
	// Two servers must never serve one state: a second one exits at once.
	before := e.dnsServers()
	cmd := e.command("system", "dns-server")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("a second dns-server: %v %s", err, out)
	}
	if after := e.dnsServers(); len(after) != 1 || after[0] != before[0] {
		t.Errorf("servers before %v, after %v", before, after)
	}
	e.run("system", "reset", "-f")
	if pids := e.dnsServers(); len(pids) > 0 {
		t.Errorf("name servers left after system reset: %v", pids)
	}
}
