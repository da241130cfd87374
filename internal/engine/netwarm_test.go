//go:build linux

package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/network"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A pod takes a warm network namespace only when its attachment is the
// one the spare's ADD made: the default network, nothing of its own.
func TestWarmable(t *testing.T) {
	plain := func() *Pod {
		return &Pod{NetworkMode: "bridge", Networks: []NetworkRequest{{Name: network.DefaultName}}}
	}
	if !warmable(plain()) {
		t.Fatal("a plain pod on the default network may not take a spare")
	}
	for what, change := range map[string]func(p *Pod){
		"host network":    func(p *Pod) { p.NetworkMode, p.Networks = "host", nil },
		"no network":      func(p *Pod) { p.NetworkMode, p.Networks = "none", nil },
		"a named network": func(p *Pod) { p.NetworkMode, p.Networks[0].Name = "front", "front" },
		"a CNI file": func(p *Pod) {
			p.NetworkMode, p.Networks[0].CNI = "cni", &network.CNIRef{File: "/etc/cni/net.d/10.conflist", Name: "berth"}
		},
		"an address": func(p *Pod) { p.Networks[0].IP = "10.88.0.9" },
		"a MAC":      func(p *Pod) { p.Networks[0].MAC = "02:42:ac:11:00:02" },
		"aliases":    func(p *Pod) { p.Networks[0].Aliases = []string{"web"} },
		"a published port": func(p *Pod) {
			p.PortBindings = []network.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}
		},
		"a user namespace": func(p *Pod) { p.IDMap = &IDMap{UIDs: []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}} },
		"a VM":             func(p *Pod) { p.Isolation = "vm" },
		"two networks":     func(p *Pod) { p.Networks = append(p.Networks, NetworkRequest{Name: "front"}) },
	} {
		p := plain()
		change(p)
		if warmable(p) {
			t.Errorf("a pod with %s may take a spare", what)
		}
	}
}

// The journal of a spare is flocked from before it has its name, so that
// a sweep never takes a live engine's spare for a dead one's.
func TestWriteFileAtomicLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.json")
	f, err := writeFileAtomicLocked(path, []byte(`{"container":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tryLockFile(path); got != nil || err != nil {
		t.Fatalf("a held journal could be locked again (%v, %v)", got, err)
	}
	if b, _ := os.ReadFile(path); string(b) != `{"container":"x"}` {
		t.Fatalf("journal holds %q", b)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temp file left: %v", err)
	}
	f.Close()
	got, err := tryLockFile(path)
	if got == nil || err != nil {
		t.Fatalf("a journal whose holder is gone could not be locked (%v)", err)
	}
	got.Close()
	os.Remove(path)
	if got, err := tryLockFile(path); got != nil || err != nil {
		t.Fatalf("a journal gone: %v, %v", got, err)
	}
}
