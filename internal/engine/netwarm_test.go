//go:build linux

package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/network/cni"
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
	onCNI := plain()
	onCNI.NetworkMode, onCNI.Networks[0] = "cni", NetworkRequest{Name: "pods", CNI: &network.CNIRef{File: "/etc/cni/net.d/10-pods.conflist", Name: "pods"}}
	if !warmable(onCNI) {
		t.Fatal("a plain pod on a CNI configuration's network may not take a spare")
	}
	for what, change := range map[string]func(p *Pod){
		"host network":    func(p *Pod) { p.NetworkMode, p.Networks = "host", nil },
		"no network":      func(p *Pod) { p.NetworkMode, p.Networks = "none", nil },
		"a named network": func(p *Pod) { p.NetworkMode, p.Networks[0].Name = "front", "front" },
		"a CNI file in bridge mode": func(p *Pod) {
			p.Networks[0].CNI = &network.CNIRef{File: "/etc/cni/net.d/10.conflist", Name: "berth"}
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

// A CNI configuration's attachment is made ahead only for the reference
// plugins, and a spare made for one content of the file is not another's.
func TestWarmKeyCNI(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "10-pods.conflist")
	ref := &network.CNIRef{File: conf, Name: "pods", Args: [][2]string{{"K8S_POD_NAME", "web"}}}
	pod := &Pod{NetworkMode: "cni", Networks: []NetworkRequest{{Name: "pods", CNI: ref}}}
	// chosen: as the CRI's chooser (cri.PodNetwork) names the file it
	// loaded.
	chosen := func() {
		ref.WarmKey = ""
		if n, err := cni.LoadFile(conf); err == nil {
			ref.WarmKey, _ = network.WarmCNIKey(n, ref)
		}
	}
	write := func(plugins string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(`{"cniVersion":"1.0.0","name":"pods","plugins":[`+plugins+`]}`), 0o644); err != nil {
			t.Fatal(err)
		}
		chosen()
	}
	write(`{"type":"bridge","bridge":"cni0","ipam":{"type":"host-local","subnet":"10.77.0.0/16"}},{"type":"portmap","capabilities":{"portMappings":true}}`)
	key, req, ok := warmKey(pod)
	if !ok || req.CNI == nil || req.CNI.File != conf || len(req.CNI.Args) != 0 {
		t.Fatalf("bridge, host-local and portmap: key %q, request %+v, ok %v", key, req, ok)
	}
	write(`{"type":"bridge","bridge":"cni0","ipam":{"type":"host-local","subnet":"10.78.0.0/16"}}`)
	if key2, _, ok := warmKey(pod); !ok || key2 == key {
		t.Fatalf("the file rewritten: key %q (was %q), ok %v", key2, key, ok)
	}
	for what, plugins := range map[string]string{
		"a network add-on":      `{"type":"flannel","delegate":{"isDefaultGateway":true}}`,
		"another IPAM":          `{"type":"bridge","bridge":"cni0","ipam":{"type":"dhcp"}}`,
		"a plugin after bridge": `{"type":"bridge","bridge":"cni0","ipam":{"type":"host-local","subnet":"10.77.0.0/16"}},{"type":"bandwidth"}`,
	} {
		write(plugins)
		if _, _, ok := warmKey(pod); ok {
			t.Errorf("%s may be made ahead", what)
		}
	}
	os.Remove(conf)
	chosen()
	if _, _, ok := warmKey(pod); ok {
		t.Error("a configuration gone may be made ahead")
	}
}
