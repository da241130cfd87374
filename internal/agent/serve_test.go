package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type fakeSystem struct {
	poweredOff     bool
	resumed        []*Resume
	dnsUDP, dnsTCP string // where ListenDNS listened
	sandboxes      int
	removed        []string
}

func (f *fakeSystem) PrepareSandbox(*Create) error { f.sandboxes++; return nil }
func (f *fakeSystem) PrepareRoot(container string, c *Create) (string, error) {
	if container != "" {
		return c.Root, nil
	}
	return "/nonexistent", nil
}
func (f *fakeSystem) RemoveContainer(container string) error {
	f.removed = append(f.removed, container)
	return nil
}
func (f *fakeSystem) StartProcess(string, string, *Process, [3]*os.File) (int, *os.File, error) {
	return 0, nil, errors.New("not in a test")
}
func (f *fakeSystem) Resize(*os.File, WinSize) error { return nil }
func (f *fakeSystem) Signal(int, int) error          { return nil }
func (f *fakeSystem) Poweroff() error                { f.poweredOff = true; return nil }
func (f *fakeSystem) Resume(r *Resume) error         { f.resumed = append(f.resumed, r); return nil }
func (f *fakeSystem) Stats(container string) (*Stats, error) {
	return &Stats{Pids: 3 + uint64(len(container)), OOMKills: 1}, nil
}
func (f *fakeSystem) Top(_ string, args []string) (*Top, error) {
	cols, err := ParsePsArgs(args)
	if err != nil {
		return nil, err
	}
	return &Top{Titles: []string{cols[0].Title}, Rows: [][]string{{"1"}}}, nil
}
func (f *fakeSystem) ListenDNS(string) (net.PacketConn, net.Listener, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pc.Close()
		return nil, nil, err
	}
	f.dnsUDP, f.dnsTCP = pc.LocalAddr().String(), l.Addr().String()
	return pc, l, nil
}

// socketPair is a connected pair of unix stream sockets.
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = c
		t.Cleanup(func() { c.Close() })
	}
	return out[0], out[1]
}

// pipeAgent runs an agent over the agent channel on a socket pair and
// returns the host's end, after the handshake.
func pipeAgent(t *testing.T) (*HostChannel, chan error, *fakeSystem) {
	t.Helper()
	hostEnd, agentEnd := socketPair(t)
	sys := &fakeSystem{}
	done := make(chan error, 1)
	go func() {
		ch, err := Accept(agentEnd, Hello{Min: MinVersion, Max: Version, Agent: "test"}, AcceptOptions{})
		if err != nil {
			done <- err
			return
		}
		done <- New(ch, sys).Serve()
	}()
	deadline := time.Now().Add(10 * time.Second)
	hello, err := ReadHello(hostEnd, deadline)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ChooseVersion(hello)
	if err != nil {
		t.Fatal(err)
	}
	host, err := Open(hostEnd, v, deadline)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	return host, done, sys
}

func read(t *testing.T, c Channel) *Frame {
	t.Helper()
	ch := make(chan *Frame, 1)
	go func() {
		f, err := c.Read()
		if err != nil {
			t.Errorf("read: %v", err)
		}
		ch <- f
	}()
	select {
	case f := <-ch:
		if f == nil {
			t.FailNow()
		}
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame from the agent")
	}
	return nil
}

// rawCodec sends a call's bytes as they are: what a broken or hostile
// host could send.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error)   { return v.([]byte), nil }
func (rawCodec) Unmarshal(b []byte, v any) error { *(v.(*[]byte)) = b; return nil }
func (rawCodec) Name() string                    { return "json" }

// The handshake refuses a version the agent does not speak (the host may
// choose again) and a line that is no JSON; gRPC starts only after it.
func TestAgentHandshake(t *testing.T) {
	hostEnd, agentEnd := socketPair(t)
	acc := make(chan error, 1)
	go func() {
		_, err := Accept(agentEnd, Hello{Min: MinVersion, Max: Version}, AcceptOptions{})
		acc <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	hello, err := ReadHello(hostEnd, deadline)
	if err != nil || hello.Min != MinVersion || hello.Max != Version {
		t.Fatalf("hello %+v, %v", hello, err)
	}
	for _, line := range []string{`{"version":99}`, `{not json`, `{}`} {
		hostEnd.Write([]byte(line + "\n"))
		g, err := readGreeting(hostEnd, nil)
		if err != nil || g.Error == "" || g.Version != 0 {
			t.Fatalf("after %s the agent said %+v, %v; want a refusal", line, g, err)
		}
	}
	select {
	case err := <-acc:
		t.Fatalf("Accept ended after refusals: %v", err)
	default:
	}
	h, err := Open(hostEnd, Version, deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := <-acc; err != nil {
		t.Fatalf("Accept: %v", err)
	}
	// Open reports the agent's refusal as ErrVersion.
	h2, a2 := socketPair(t)
	go Accept(a2, Hello{Min: MinVersion, Max: Version}, AcceptOptions{})
	if _, err := ReadHello(h2, deadline); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(h2, Version+1, deadline); !errors.Is(err, ErrVersion) {
		t.Fatalf("Open with version %d: %v", Version+1, err)
	}
	// A handshake line without its end is refused at its bound, not
	// read forever.
	a, b := socketPair(t)
	go func() { a.Write(make([]byte, maxGreeting+1)) }()
	if _, err := readGreeting(b, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("an endless line: %v", err)
	}
}

func TestAgentRefusesBadFramesAndReadsOn(t *testing.T) {
	host, done, sys := pipeAgent(t)
	raw := func(method string, body []byte) error {
		var out []byte
		return host.cc.Invoke(context.Background(), method, body, &out, grpc.ForceCodec(rawCodec{}))
	}
	// Oversized: over MaxFrame, refused by gRPC, the channel goes on.
	if err := raw(FullMethod(TypeStdin), make([]byte, MaxFrame+1)); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("an oversized request: %v", err)
	}
	// What does not decode, and a method there is not.
	for _, body := range []string{"{not json", `{"signal":"x"}`, "\x00\xff"} {
		if err := raw(FullMethod(TypeSignal), []byte(body)); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "malformed") {
			t.Fatalf("request %q: %v", body, err)
		}
	}
	if err := raw("/"+ServiceName+"/Bogus", []byte("{}")); status.Code(err) != codes.Unimplemented {
		t.Fatalf("an unknown method: %v", err)
	}
	if err := host.Write(&Frame{Type: "bogus", ID: 4}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Write of an unknown type: %v", err)
	}
	// The agent's own refusals come back as replies under the request's
	// ID.
	host.Write(&Frame{Type: TypeSignal, ID: 7, Signal: -1})
	if r := read(t, host); r.ID != 7 || r.Type != TypeReply || r.Error == "" {
		t.Fatalf("signal -1: %+v", r)
	}
	// A create without a process, then a good one.
	host.Write(&Frame{Type: TypeCreate, ID: 8})
	if r := read(t, host); r.Error == "" {
		t.Fatalf("empty create: %+v", r)
	}
	host.Write(&Frame{Type: TypeCreate, ID: 9, Create: &Create{Layers: []string{"l0"}, Process: Process{Args: []string{"true"}}}})
	if r := read(t, host); r.ID != 9 || r.Error != "" {
		t.Fatalf("create: %+v", r)
	}
	// Stats and top answer with their data; a ps option the guest
	// cannot show is refused by name.
	host.Write(&Frame{Type: TypeStats, ID: 11})
	if r := read(t, host); r.ID != 11 || r.Error != "" || r.Stats == nil || r.Stats.Pids != 3 || r.Stats.OOMKills != 1 {
		t.Fatalf("stats: %+v", r)
	}
	host.Write(&Frame{Type: TypeTop, ID: 12, PsArgs: []string{"-o", "pid"}})
	if r := read(t, host); r.ID != 12 || r.Error != "" || r.Top == nil || r.Top.Titles[0] != "PID" {
		t.Fatalf("top: %+v", r)
	}
	host.Write(&Frame{Type: TypeTop, ID: 13, PsArgs: []string{"-L"}})
	if r := read(t, host); r.ID != 13 || !strings.Contains(r.Error, `"-L"`) {
		t.Fatalf("top -L: %+v", r)
	}
	// Still serving: power off ends it.
	host.Write(&Frame{Type: TypePoweroff, ID: 10})
	select {
	case err := <-done:
		if err != nil || !sys.poweredOff {
			t.Fatalf("Serve after poweroff: %v (powered off: %v)", err, sys.poweredOff)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after poweroff")
	}
}

// Bytes on the channel that are no HTTP/2 end the conversation (as a
// host that went away does): the agent's Serve returns, it does not
// hang or crash.
func TestAgentChannelGarbageEndsServe(t *testing.T) {
	hostEnd, agentEnd := socketPair(t)
	done := make(chan error, 1)
	go func() {
		ch, err := Accept(agentEnd, Hello{Min: MinVersion, Max: Version}, AcceptOptions{})
		if err != nil {
			done <- err
			return
		}
		done <- New(ch, &fakeSystem{}).Serve()
	}()
	if _, err := ReadHello(hostEnd, time.Now().Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	hostEnd.Write([]byte(fmt.Sprintf(`{"version":%d}`+"\n", Version)))
	if _, err := readGreeting(hostEnd, nil); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, hostEnd)
	hostEnd.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + strings.Repeat("\xff", 4096)))
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Serve ended without an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still running after garbage on its channel")
	}
}

func TestConnWriteRefusesOversized(t *testing.T) {
	c := NewConn(nil, io.Discard)
	if err := c.Write(&Frame{Type: TypeStdin, ID: 1, Data: make([]byte, MaxFrame)}); !errors.Is(err, ErrOversized) {
		t.Fatalf("Write of an oversized frame: %v", err)
	}
}

func TestChooseVersion(t *testing.T) {
	if _, err := ChooseVersion(&Hello{Min: Version + 1, Max: Version + 5}); !errors.Is(err, ErrVersion) {
		t.Fatalf("newer agent only: %v", err)
	}
	if v, err := ChooseVersion(&Hello{Min: 1, Max: Version + 5}); err != nil || v != Version {
		t.Fatalf("overlapping: %d %v", v, err)
	}
}

// TestAgentRelaysDNS: a create with relayed name servers has the agent
// answer DNS over UDP and TCP with what the host answers to the query it
// relays (server and transport named), and a query the host fails gets
// no answer rather than a wrong one.
func TestAgentRelaysDNS(t *testing.T) {
	host, _, sys := pipeAgent(t)
	host.Write(&Frame{Type: TypeCreate, ID: 2, Create: &Create{Layers: []string{"l0"}, Process: Process{Args: []string{"true"}},
		Network: &Network{DNSRelay: []string{"127.0.0.11"}}}})
	if r := read(t, host); r.ID != 2 || r.Error != "" {
		t.Fatalf("create: %+v", r)
	}
	// The host's side: answer each query with "answer:" + the query,
	// fail the one that says "fail".
	go func() {
		for {
			f, err := host.Read()
			if err != nil {
				return
			}
			if f.Type != TypeDNSQuery || f.DNS == nil || f.DNS.Server != "127.0.0.11" {
				t.Errorf("from the agent: %+v, want a DNS query for 127.0.0.11", f)
				continue
			}
			a := &Frame{Type: TypeDNSAnswer, ID: f.ID, Data: append([]byte(fmt.Sprintf("answer tcp=%v:", f.DNS.TCP)), f.Data...)}
			if string(f.Data) == "fail" {
				a = &Frame{Type: TypeDNSAnswer, ID: f.ID, Error: "refused"}
			}
			host.Write(a)
		}
	}()
	u, err := net.Dial("udp", sys.dnsUDP)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(5 * time.Second))
	u.Write([]byte("fail"))
	u.Write([]byte("q1"))
	buf := make([]byte, 100)
	n, err := u.Read(buf)
	if err != nil || string(buf[:n]) != "answer tcp=false:q1" {
		t.Errorf("UDP: %q, %v", buf[:n], err)
	}
	c, err := net.Dial("tcp", sys.dnsTCP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for _, q := range []string{"q2", "q3"} {
		c.Write(append([]byte{0, byte(len(q))}, q...))
		var hdr [2]byte
		io.ReadFull(c, hdr[:])
		ans := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(c, ans); err != nil || string(ans) != "answer tcp=true:"+q {
			t.Errorf("TCP %s: %q, %v", q, ans, err)
		}
	}
}

// A clone of a VM template is resumed before anything else: the agent
// hands the host's entropy and time to the machine only when there is
// enough of both.
func TestAgentResume(t *testing.T) {
	host, _, sys := pipeAgent(t)
	good := &Resume{Entropy: make([]byte, MinResumeEntropy), UnixNano: time.Now().UnixNano()}
	for i, bad := range []*Resume{
		nil,
		{Entropy: make([]byte, MinResumeEntropy-1), UnixNano: 1},
		{Entropy: make([]byte, MaxResumeEntropy+1), UnixNano: 1},
		{Entropy: make([]byte, MinResumeEntropy)},
	} {
		host.Write(&Frame{Type: TypeResume, ID: uint64(10 + i), Resume: bad})
		if r := read(t, host); r.ID != uint64(10+i) || !strings.Contains(r.Error, "malformed") {
			t.Fatalf("resume %d (%+v): %+v", i, bad, r)
		}
	}
	host.Write(&Frame{Type: TypeResume, ID: 20, Resume: good})
	if r := read(t, host); r.ID != 20 || r.Error != "" {
		t.Fatalf("resume: %+v", r)
	}
	if len(sys.resumed) != 1 || sys.resumed[0].UnixNano != good.UnixNano || len(sys.resumed[0].Entropy) != MinResumeEntropy {
		t.Fatalf("the machine got %+v, want the one good resume", sys.resumed)
	}
}

// A pod's VM: a sandbox request first, then containers by name whose
// roots come from the share; a delete frees the name.
func TestAgentPodContainers(t *testing.T) {
	host, _, sys := pipeAgent(t)
	id := uint64(1)
	ask := func(f *Frame) *Frame {
		t.Helper()
		id++
		f.ID = id
		host.Write(f)
		r := read(t, host)
		if r.ID != id {
			t.Fatalf("reply %+v to request %d", r, id)
		}
		return r
	}
	proc := Process{Args: []string{"sh"}, OCI: []byte("{}")}
	// A named container before the sandbox request.
	if r := ask(&Frame{Type: TypeCreate, Container: "a", Create: &Create{Root: SharedDir + "/a", Process: proc}}); !strings.Contains(r.Error, "sandbox") {
		t.Fatalf("create before sandbox: %+v", r)
	}
	if r := ask(&Frame{Type: TypeSandbox, Create: &Create{Hostname: "pod"}}); r.Error != "" || sys.sandboxes != 1 {
		t.Fatalf("sandbox: %+v (%d)", r, sys.sandboxes)
	}
	for _, bad := range []*Frame{
		{Type: TypeSandbox, Create: &Create{}},                                                       // a second one
		{Type: TypeCreate, Create: &Create{Layers: []string{"l0"}, Process: proc}},                   // the VM's own container in a pod's VM
		{Type: TypeCreate, Container: "b", Create: &Create{Layers: []string{"l0"}, Process: proc}},   // disks, no root
		{Type: TypeCreate, Container: "x/y", Create: &Create{Root: SharedDir + "/x", Process: proc}}, // a name with a slash
		{Type: TypeCreate, Container: strings.Repeat("n", MaxContainerName+1), Create: &Create{Root: SharedDir + "/n", Process: proc}},
		{Type: TypeDelete}, // no name
	} {
		if r := ask(bad); r.Error == "" {
			t.Errorf("%s %q: no error", bad.Type, bad.Container)
		}
	}
	for _, name := range []string{"a", "bb"} {
		if r := ask(&Frame{Type: TypeCreate, Container: name, Create: &Create{Root: SharedDir + "/" + name, Process: proc}}); r.Error != "" || r.Container != name {
			t.Fatalf("create %s: %+v", name, r)
		}
	}
	if r := ask(&Frame{Type: TypeCreate, Container: "a", Create: &Create{Root: SharedDir + "/a", Process: proc}}); !strings.Contains(r.Error, "exists") {
		t.Fatalf("a second create of a: %+v", r)
	}
	// Each container's own stats (the fake's pids tell them apart).
	if r := ask(&Frame{Type: TypeStats, Container: "bb"}); r.Error != "" || r.Stats.Pids != 5 {
		t.Fatalf("stats of bb: %+v", r)
	}
	// Exec needs its container started.
	if r := ask(&Frame{Type: TypeExec, Container: "a", Proc: "exec-1", Exec: &Process{Args: []string{"ls"}}}); !strings.Contains(r.Error, "not started") {
		t.Fatalf("exec in a created container: %+v", r)
	}
	if r := ask(&Frame{Type: TypeDelete, Container: "a"}); r.Error != "" || len(sys.removed) != 1 || sys.removed[0] != "a" {
		t.Fatalf("delete a: %+v (%v)", r, sys.removed)
	}
	if r := ask(&Frame{Type: TypeSignal, Container: "a", Signal: 15}); !strings.Contains(r.Error, "no process") {
		t.Fatalf("signal to a deleted container: %+v", r)
	}
	if r := ask(&Frame{Type: TypeCreate, Container: "a", Create: &Create{Root: SharedDir + "/a", Process: proc}}); r.Error != "" {
		t.Fatalf("create a again after its delete: %+v", r)
	}
}
