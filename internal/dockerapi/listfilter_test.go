//go:build linux

package dockerapi

import (
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/moby/moby/api/types/container"
)

func TestAddPorts(t *testing.T) {
	for v, want := range map[string][]string{
		"80":            {"80/tcp"},
		"80/udp":        {"80/udp"},
		"7000-7002":     {"7000/tcp", "7001/tcp", "7002/tcp"},
		"53-53/UDP":     {"53/udp"},
		"65535/sctp":    {"65535/sctp"},
		"8080-8081/tcp": {"8080/tcp", "8081/tcp"},
	} {
		set := map[string]bool{}
		if err := addPorts(set, "publish", v); err != nil {
			t.Errorf("%s: %v", v, err)
			continue
		}
		got := map[string]bool{}
		for _, p := range want {
			got[p] = true
		}
		if !reflect.DeepEqual(set, got) {
			t.Errorf("%s: %v, want %v", v, set, want)
		}
	}
	for _, v := range []string{"80:80", "", "x", "0", "65536", "90-80", "80-", "-80"} {
		if err := addPorts(map[string]bool{}, "expose", v); err == nil || statusOf(err) != 400 {
			t.Errorf("%q: %v, want a 400", v, err)
		}
	}
}

func TestPruneFilter(t *testing.T) {
	now := time.Now()
	parse := func(q string) (pruneFilter, error) {
		r := httptest.NewRequest("POST", "/containers/prune?filters="+url.QueryEscape(q), nil)
		return parsePruneFilter(r, containerPruneFilterKeys)
	}
	for _, tc := range []struct {
		filters string
		labels  map[string]string
		created time.Time
		want    bool
	}{
		{`{}`, nil, now, true},
		{`{"label":["a=1","b"]}`, map[string]string{"a": "1", "b": "x"}, now, true},
		{`{"label":["a=1","b"]}`, map[string]string{"a": "1"}, now, false},
		{`{"label!":["a=1"]}`, map[string]string{"a": "1"}, now, false},
		{`{"label!":["a=1"]}`, map[string]string{"a": "2"}, now, true},
		// label! excludes only where all of its values hold.
		{`{"label!":["a","b"]}`, map[string]string{"a": "1"}, now, true},
		{`{"label!":["a","b"]}`, map[string]string{"a": "1", "b": "2"}, now, false},
		{`{"until":["1h"]}`, nil, now, false},
		{`{"until":["1h"]}`, nil, now.Add(-2 * time.Hour), true},
		{`{"until":["` + now.Add(-time.Minute).Format(time.RFC3339) + `"]}`, nil, now.Add(-2 * time.Minute), true},
		{`{"until":["1h"]}`, nil, time.Time{}, true}, // nothing to compare
	} {
		pf, err := parse(tc.filters)
		if err != nil {
			t.Fatalf("%s: %v", tc.filters, err)
		}
		if got := pf.match(tc.labels, tc.created); got != tc.want {
			t.Errorf("%s on %v created %s ago: %v, want %v", tc.filters, tc.labels, now.Sub(tc.created).Round(time.Second), got, tc.want)
		}
	}
	for _, q := range []string{`{"until":["1h","2h"]}`, `{"until":["soon"]}`, `{"colour":["red"]}`, `{"dangling":["true"]}`} {
		if _, err := parse(q); err == nil || statusOf(err) != 400 {
			t.Errorf("%s: %v, want a 400", q, err)
		}
	}
}

func TestContainerFilterListing(t *testing.T) {
	cf := &containerFilter{f: map[string][]string{"health": {"none", "healthy"}}, expose: map[string]bool{"7000/tcp": true}, publish: map[string]bool{"8080/tcp": true}}
	exposed := container.Summary{State: "running", Ports: []container.PortSummary{{PrivatePort: 7000, Type: "tcp"}}}
	published := container.Summary{State: "running", Health: &container.HealthSummary{Status: "healthy"}, Ports: []container.PortSummary{{PrivatePort: 80, PublicPort: 8080, Type: "tcp"}}}
	// The container port of a published port is not an exposed match
	// for publish's host port, nor the other way round.
	other := container.Summary{State: "running", Ports: []container.PortSummary{{PrivatePort: 8080, PublicPort: 7000, Type: "tcp"}}}
	unhealthy := container.Summary{State: "running", Health: &container.HealthSummary{Status: "unhealthy"}, Ports: exposed.Ports}
	for name, tc := range map[string]struct {
		s    container.Summary
		want bool
	}{"exposed": {exposed, true}, "published": {published, true}, "other": {other, false}, "unhealthy": {unhealthy, false}} {
		if got := cf.listing(tc.s); got != tc.want {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}

func TestContainerFilterIsolation(t *testing.T) {
	cf := &containerFilter{defaultIsolation: "linux"}
	for _, tc := range []struct {
		recorded, filter string
		want             bool
	}{
		{"", "default", true}, {"linux", "default", true}, {"linux", "linux", true}, {"vm", "default", false},
		{"vm", "vm", true}, {"", "linux", true}, {"linux", "vm", false},
	} {
		if got := cf.isolationIs(tc.recorded, tc.filter); got != tc.want {
			t.Errorf("recorded %q, filter %q: %v, want %v", tc.recorded, tc.filter, got, tc.want)
		}
	}
}

func TestStatsResponseDetail(t *testing.T) {
	c := &engine.Container{ID: "abc", Name: "web"}
	cur := &engine.StatsSample{Running: true, CPUTotal: 500, SystemCPU: 10000, OnlineCPUs: 2, MemUsage: 100, MemLimit: 1000, Pids: 3,
		Detail: &runtime.StatsDetail{CPUUser: 300, CPUSystem: 200, CPUPeriods: 7, MemTotal: 150, MemRSS: 90, MemCache: 60, ThreadsMax: 64,
			Interfaces: []runtime.InterfaceStats{{Name: "eth0", RxBytes: 10, RxPackets: 2}, {Name: "eth1", TxBytes: 5}},
			Devices:    []runtime.BlockDeviceStats{{Major: 8, Minor: 0, ReadBytes: 4096, Reads: 1}}}}
	out := statsResponse(c, nil, cur)
	if out.NumProcs != 0 || out.PidsStats.Limit != 64 || out.PidsStats.Current != 3 {
		t.Errorf("num_procs %d, pids %+v", out.NumProcs, out.PidsStats)
	}
	if u := out.CPUStats.CPUUsage; u.UsageInUsermode != 300 || u.UsageInKernelmode != 200 || out.CPUStats.ThrottlingData.Periods != 7 {
		t.Errorf("cpu %+v", out.CPUStats)
	}
	// The CLI's MEM USAGE is usage less total_inactive_file: berth's
	// MemUsage.
	if m := out.MemoryStats; m.Usage-m.Stats["total_inactive_file"] != 100 || m.Stats["rss"] != 90 {
		t.Errorf("memory %+v", m)
	}
	if len(out.Networks) != 2 || out.Networks["eth0"].RxPackets != 2 || out.Networks["eth1"].TxBytes != 5 {
		t.Errorf("networks %+v", out.Networks)
	}
	if b := out.BlkioStats.IoServiceBytesRecursive; len(b) != 2 || b[0].Major != 8 || b[0].Value != 4096 || b[0].Op != "read" {
		t.Errorf("blkio %+v", out.BlkioStats)
	}
	c.HostConfig.NetworkMode = "host"
	if out := statsResponse(c, nil, cur); out.Networks != nil {
		t.Errorf("a host-network container's networks: %+v", out.Networks)
	}
}
