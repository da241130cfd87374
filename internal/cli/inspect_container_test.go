//go:build linux

package cli

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	mobynet "github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/network"
)

// The record's berth-shaped fields map onto docker's: port bindings as a
// map with string host ports, log limits as json-file options, tmpfs as a
// map, ulimits parsed, restart policy "no" when unset, times RFC 3339.
func TestInspectMapping(t *testing.T) {
	c := &engine.Container{
		Created: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600)),
		State:   engine.State{Status: engine.StatusCreating},
		Config:  engine.Config{ExposedPorts: map[string]struct{}{"53/udp": {}}},
		HostConfig: engine.HostConfig{
			PortBindings: []network.PortMapping{{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, {ContainerPort: 81, Protocol: "tcp"}},
			LogMaxSize:   20 << 20, LogMaxFiles: 3, Tmpfs: []string{"/run:size=64m", "/tmp"},
			Ulimits: []string{"nofile=1024:2048"}, DNS: []string{"1.1.1.1"}, Mounts: []string{"type=volume,source=v,target=/d,readonly"},
			PidsLimit: 50,
		},
		Mounts: []engine.MountPoint{{Type: "bind", Source: "/a", Destination: "/b"}, {Type: "volume", Name: "v", Source: "/v", Destination: "/d", RW: true}},
	}
	if got := rfc3339(c.Created); got != "2026-01-02T02:04:05.000000006Z" {
		t.Errorf("Created %s", got)
	}
	if got := rfc3339(time.Time{}); got != "0001-01-01T00:00:00Z" {
		t.Errorf("the zero time %s", got)
	}
	if st := inspectState(c.State); st.Status != container.StateCreated {
		t.Errorf("a creating record's Status %q", st.Status)
	}
	h := inspectHostConfig(c)
	p80, p81 := mobynet.MustParsePort("80/tcp"), mobynet.MustParsePort("81/tcp")
	if b := h.PortBindings[p80]; len(b) != 1 || b[0].HostIP.String() != "127.0.0.1" || b[0].HostPort != "8080" {
		t.Errorf("PortBindings 80: %+v", b)
	}
	if b := h.PortBindings[p81]; len(b) != 1 || b[0].HostIP.IsValid() || b[0].HostPort != "" {
		t.Errorf("PortBindings 81 (any address, a free port): %+v", b)
	}
	if h.LogConfig.Config["max-size"] != "20m" || h.LogConfig.Config["max-file"] != "3" || h.RestartPolicy.Name != "no" {
		t.Errorf("LogConfig %+v RestartPolicy %+v", h.LogConfig, h.RestartPolicy)
	}
	if h.Tmpfs["/run"] != "size=64m" || len(h.Tmpfs) != 2 || len(h.Ulimits) != 1 || h.Ulimits[0].Hard != 2048 ||
		len(h.DNS) != 1 || h.PidsLimit == nil || *h.PidsLimit != 50 || len(h.MaskedPaths) == 0 {
		t.Errorf("Tmpfs %v Ulimits %v DNS %v PidsLimit %v MaskedPaths %v", h.Tmpfs, h.Ulimits, h.DNS, h.PidsLimit, h.MaskedPaths)
	}
	if len(h.Mounts) != 1 || h.Mounts[0] != (mount.Mount{Type: mount.TypeVolume, Source: "v", Target: "/d", ReadOnly: true}) {
		t.Errorf("Mounts %+v", h.Mounts)
	}
	cfg := inspectConfig(c)
	if len(cfg.ExposedPorts) != 3 || cfg.Labels == nil || cfg.Env == nil {
		t.Errorf("ExposedPorts (the image's and the published) %v Labels %v Env %v", cfg.ExposedPorts, cfg.Labels, cfg.Env)
	}
	ms := inspectMounts(c.Mounts)
	if ms[0].Propagation != mount.PropagationRPrivate || ms[0].Mode != "ro" || ms[1].Driver != "local" || ms[1].Mode != "z" {
		t.Errorf("Mounts %+v", ms)
	}
	if inspectMounts(nil) == nil {
		t.Error("no mounts: null, docker has []")
	}
	// The JSON names are docker's (HostConfig's keys as the API has them).
	b, _ := json.Marshal(h)
	var keys map[string]any
	json.Unmarshal(b, &keys)
	for _, k := range []string{"PortBindings", "RestartPolicy", "NanoCpus", "Dns", "LogConfig", "PidsLimit"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("HostConfig JSON lacks %s: %s", k, b)
		}
	}
	if pb, _ := json.Marshal(h.PortBindings[p80]); string(pb) != `[{"HostIp":"127.0.0.1","HostPort":"8080"}]` {
		t.Errorf("a port binding's JSON: %s", pb)
	}
	if !slices.Equal([]string{sizeOption(512 << 10), sizeOption(1 << 30), sizeOption(1000)}, []string{"512k", "1g", "1000"}) {
		t.Error("sizeOption")
	}
}
