package vm

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/agent"
)

// unixPair is a connected pair of unix stream sockets.
func unixPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = c.(*net.UnixConn)
		t.Cleanup(func() { out[i].Close() })
	}
	return out[0], out[1]
}

// channelPair is the agent channel over a socket pair: the shim's end
// and the agent's.
func channelPair(t *testing.T) (*agent.HostChannel, *agent.GuestChannel) {
	t.Helper()
	hostEnd, agentEnd := unixPair(t)
	type res struct {
		g   *agent.GuestChannel
		err error
	}
	ch := make(chan res, 1)
	go func() {
		g, err := agent.Accept(agentEnd, agent.Hello{Min: agent.MinVersion, Max: agent.Version}, agent.AcceptOptions{})
		ch <- res{g, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	hello, err := agent.ReadHello(hostEnd, deadline)
	if err != nil {
		t.Fatal(err)
	}
	v, err := agent.ChooseVersion(hello)
	if err != nil {
		t.Fatal(err)
	}
	h, err := agent.Open(hostEnd, v, deadline)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return h, r.g
}

func readFrame(t *testing.T, c agent.Channel) *agent.Frame {
	t.Helper()
	ch := make(chan *agent.Frame, 1)
	go func() {
		f, _ := c.Read()
		ch <- f
	}()
	select {
	case f := <-ch:
		if f == nil {
			t.Fatal("the stream ended")
		}
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame")
	}
	return nil
}

// The pod's shim forwards a container's requests named as its, under
// IDs of the VM's channel, routes the replies and the container's own
// events back, refuses the VM's requests and a second join of one
// name, and has the agent delete the container when its shim goes.
func TestPodMux(t *testing.T) {
	defer func(d time.Duration) { joinWait = d }(joinWait)
	joinWait = 200 * time.Millisecond
	host, guest := channelPair(t)
	s := &shim{cfg: &vmConfig{Pod: true}, pending: map[uint64]chan *agent.Frame{}, exit: make(chan int, 1),
		conn: host, gone: make(chan struct{}),
		pod: &podMux{members: map[string]*member{}, routes: map[uint64]route{}}}
	go s.readLoop()

	join := func(name string) (*agent.Conn, *net.UnixConn, *agent.Frame) {
		ours, theirs := unixPair(t)
		go s.serveMember(theirs)
		c := agent.NewConn(ours, ours)
		c.Write(&agent.Frame{Type: typeJoin, ID: 1, Container: name})
		return c, ours, readFrame(t, c)
	}
	m, mraw, r := join("c1")
	if r.ID != 1 || r.Error != "" {
		t.Fatalf("join: %+v", r)
	}
	if _, _, r := join("c1"); !strings.Contains(r.Error, "in the pod's VM already") {
		t.Errorf("a second join of c1: %+v", r)
	}
	if _, _, r := join("../x"); r.Error == "" {
		t.Errorf("a join under a bad name: %+v", r)
	}
	for _, typ := range []string{agent.TypePoweroff, agent.TypeSandbox, "hello", agent.TypeResume} {
		m.Write(&agent.Frame{Type: typ, ID: 5})
		if r := readFrame(t, m); r.ID != 5 || r.Error == "" {
			t.Errorf("%s from a container: %+v", typ, r)
		}
	}
	// A request naming another container is forwarded as its own.
	m.Write(&agent.Frame{Type: agent.TypeStats, ID: 7, Container: "other"})
	f := readFrame(t, guest)
	if f.Type != agent.TypeStats || f.Container != "c1" || f.ID == 7 {
		t.Fatalf("the agent got %+v, want c1's stats under an ID of the channel", f)
	}
	guest.Write(&agent.Frame{Type: agent.TypeReply, ID: f.ID, Stats: &agent.Stats{Pids: 4}})
	if r := readFrame(t, m); r.ID != 7 || r.Stats == nil || r.Stats.Pids != 4 {
		t.Errorf("the reply to c1: %+v", r)
	}
	// Events go to their container only.
	guest.Write(&agent.Frame{Type: agent.TypeOutput, Container: "zz", Proc: "init", Stream: 1, Data: []byte("not c1's")})
	guest.Write(&agent.Frame{Type: agent.TypeOutput, Container: "c1", Proc: "init", Stream: 1, Data: []byte("c1's")})
	if r := readFrame(t, m); string(r.Data) != "c1's" {
		t.Errorf("c1 got output %q", r.Data)
	}
	// c1's shim goes: the agent is asked to delete it, then c1 may join
	// again.
	mraw.Close()
	f = readFrame(t, guest)
	if f.Type != agent.TypeDelete || f.Container != "c1" {
		t.Fatalf("after c1's shim went the agent got %+v, want its delete", f)
	}
	guest.Write(&agent.Frame{Type: agent.TypeReply, ID: f.ID})
	if _, _, r := join("c1"); r.Error != "" {
		t.Errorf("c1 joining again after its delete: %+v", r)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/tab\011x\134`: "/tab\tx\\", `/end\04`: `/end\04`} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// bindShares and unbindShares: a share bound onto its stub read-only,
// what the guest planted at the stub's name removed, not followed, then
// the bind gone with its stub, the source untouched; a share directory
// that is not mounted (a pod going away) is refused.
func TestBindShares(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("binds need root")
	}
	src, dir, victim := t.TempDir(), t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	shares := []share{{Source: src, Name: "c.m0", Dir: true, ReadOnly: true}, {Source: filepath.Join(src, "f"), Name: "c.m1"}}
	if err := bindShares(dir, shares); err == nil {
		t.Fatal("bindShares into a directory that is not the share's mount")
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	// The guest's links where the stubs go.
	os.Symlink(victim, filepath.Join(dir, "c.m0"))
	os.Symlink(filepath.Join(victim, "file"), filepath.Join(dir, "c.m1"))
	if err := bindShares(dir, shares); err != nil {
		t.Fatal(err)
	}
	if isMountPoint(victim) {
		t.Fatal("the bind followed the guest's link")
	}
	if ents, _ := os.ReadDir(victim); len(ents) != 0 {
		t.Errorf("the guest's link target was written: %v", ents)
	}
	stub := filepath.Join(dir, "c.m0")
	if b, err := os.ReadFile(filepath.Join(stub, "f")); err != nil || string(b) != "x" {
		t.Errorf("through the bind: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(stub, "g"), nil, 0o644); err == nil {
		t.Error("a read-only share was writable")
	}
	if !isMountPoint(stub) || len(mountsUnder(dir, false)) != 3 {
		t.Errorf("mounts under %s: %v", dir, mountsUnder(dir, false))
	}
	if err := unbindShares(dir, shares); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stub); !os.IsNotExist(err) || isMountPoint(stub) {
		t.Errorf("the stub after unbind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(src, "f")); err != nil {
		t.Errorf("the source after unbind: %v", err)
	}
}

// A guest (untrusted) that floods DNS queries and never takes the
// answers holds at most maxDNSRelays relays of the shim at once; the rest
// are dropped and counted.
func TestShimBoundsDNSRelays(t *testing.T) {
	host, guest := channelPair(t)
	s := &shim{cfg: &vmConfig{}, pending: map[uint64]chan *agent.Frame{}, exit: make(chan int, 1),
		conn: host, gone: make(chan struct{}), dnsSlots: make(chan struct{}, maxDNSRelays)}
	go s.readLoop()
	before := runtime.NumGoroutine()
	const flood = 2000
	for i := range flood {
		if err := guest.Write(&agent.Frame{Type: agent.TypeDNSQuery, ID: uint64(i + 1), DNS: &agent.DNSQuery{Server: "127.0.0.11"}, Data: []byte("q")}); err != nil {
			t.Fatal(err)
		}
	}
	// The agent's side takes a few answers into its queue, then none:
	// the relays fill up and stay full until their calls time out.
	deadline := time.Now().Add(agent.DNSAnswerTimeout / 2)
	for (len(s.dnsSlots) < maxDNSRelays || s.dnsDropped.Load() == 0) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got, d := len(s.dnsSlots), s.dnsDropped.Load(); got != maxDNSRelays || d == 0 {
		t.Fatalf("%d relays in flight, %d queries dropped; want the bound, %d, and drops", got, d, maxDNSRelays)
	}
	// Each relay holds its goroutine, its call's and gRPC's per stream:
	// a few each, whatever the flood.
	if n := runtime.NumGoroutine() - before; n > 8*maxDNSRelays {
		t.Errorf("%d goroutines more during the flood (bound %d relays)", n, maxDNSRelays)
	}
	if d := s.dnsDropped.Load(); d > flood-maxDNSRelays {
		t.Errorf("%d of %d queries dropped: fewer than the bound relayed", d, flood)
	}
}
