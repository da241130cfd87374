package integration

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCRIMetrics: ListPodSandboxMetrics of a running pod gives cadvisor's
// metrics with the values the container has: its processes, the limits it
// was created with, the bytes it wrote to its writable layer, the pod's
// interface; every metric has as many label values as its descriptor has
// keys, and the container's labels name it as the kubelet does.
func TestCRIMetrics(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	crictlPath(t)
	sock := filepath.Join(t.TempDir(), "cri.sock")
	e.serveWith("--cri-socket", sock)
	ok := crictlOK(t, sock)
	dir := t.TempDir()
	podCfg := filepath.Join(dir, "pod.json")
	writeJSON(t, podCfg, map[string]any{
		"metadata": map[string]any{"name": "metered", "namespace": "team", "uid": "uid-metered-1", "attempt": 0},
	})
	ctrCfg := filepath.Join(dir, "ctr.json")
	writeJSON(t, ctrCfg, map[string]any{
		"metadata": map[string]any{"name": "work"},
		"image":    map[string]any{"image": "docker.io/" + demoImage},
		"command":  []string{"sh", "-c", "sleep 1000 & sleep 1001 & wait"},
		"linux": map[string]any{"resources": map[string]any{
			"cpu_shares": 512, "cpu_period": 100000, "cpu_quota": 20000,
			"memory_limit_in_bytes": 64 << 20, "memory_swap_limit_in_bytes": 64 << 20,
		}},
	})
	podID := ok("runp", podCfg)
	cid := ok("create", podID, ctrCfg, podCfg)
	ok("start", cid)
	ok("exec", "-s", cid, "sh", "-c", "dd if=/dev/zero of=/written bs=1024 count=1024 2>/dev/null && sync")

	rt, _ := criClient(t, sock)
	ctx := context.Background()
	descs, err := rt.ListMetricDescriptors(ctx, &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	for _, d := range descs.GetDescriptors() {
		keys[d.Name] = d.LabelKeys
	}
	var pm *runtimeapi.PodSandboxMetrics
	waitFor(t, 10*time.Second, "the container's three processes", func() bool {
		resp, err := rt.ListPodSandboxMetrics(ctx, &runtimeapi.ListPodSandboxMetricsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		pm = nil
		for _, p := range resp.GetPodMetrics() {
			if p.PodSandboxId == podID {
				pm = p
			}
		}
		return pm != nil && len(pm.ContainerMetrics) == 1 && value(pm.ContainerMetrics[0].Metrics, "container_processes", nil) == 3
	})
	if pm.ContainerMetrics[0].ContainerId != cid {
		t.Fatalf("metrics of container %s, want %s", pm.ContainerMetrics[0].ContainerId, cid)
	}
	all := append(append([]*runtimeapi.Metric{}, pm.Metrics...), pm.ContainerMetrics[0].Metrics...)
	for _, m := range all {
		k, found := keys[m.Name]
		if !found || len(k) != len(m.LabelValues) {
			t.Errorf("%s: label values %v for descriptor keys %v (described: %v)", m.Name, m.LabelValues, k, found)
		}
	}
	cm := pm.ContainerMetrics[0].Metrics
	labels := func(m []*runtimeapi.Metric, name string) map[string]string {
		for _, x := range m {
			if x.Name == name {
				out := map[string]string{}
				for i, k := range keys[name] {
					out[k] = x.LabelValues[i]
				}
				return out
			}
		}
		return nil
	}
	if l := labels(cm, "container_processes"); l["container"] != "work" || l["pod"] != "metered" || l["namespace"] != "team" || l["id"] != cid || !strings.Contains(l["image"], demoImage) {
		t.Errorf("a container metric's labels: %v", l)
	}
	for _, c := range []struct {
		name string
		own  []string
		want uint64
	}{
		{"container_spec_cpu_shares", nil, 512},
		{"container_spec_cpu_period", nil, 100000},
		{"container_spec_cpu_quota", nil, 20000},
		{"container_spec_memory_limit_bytes", nil, 64 << 20},
		{"container_cpu_usage_seconds_total", []string{"total"}, 0}, // idle: under a second
	} {
		if got := value(cm, c.name, c.own); got != c.want {
			t.Errorf("%s = %d, want %d", c.name, got, c.want)
		}
	}
	if got := value(cm, "container_threads", nil); got < 3 {
		t.Errorf("container_threads = %d, want at least the 3 processes", got)
	}
	if got := value(cm, "container_file_descriptors", nil); got < 3*3 {
		t.Errorf("container_file_descriptors = %d, want at least stdio of 3 processes", got)
	}
	if got := value(cm, "container_fs_usage_bytes", nil); got < 1<<20 {
		t.Errorf("container_fs_usage_bytes = %d after writing 1 MiB", got)
	}
	if got := value(cm, "container_memory_working_set_bytes", nil); got == 0 || got > 64<<20 {
		t.Errorf("container_memory_working_set_bytes = %d, want within the 64 MiB limit", got)
	}
	if got := int64(value(cm, "container_start_time_seconds", nil)); got < time.Now().Add(-time.Minute).Unix() || got > time.Now().Unix() {
		t.Errorf("container_start_time_seconds = %d, now %d", got, time.Now().Unix())
	}
	if l := labels(pm.Metrics, "container_network_receive_bytes_total"); l["interface"] != "eth0" || l["container"] != "POD" || l["id"] != podID {
		t.Errorf("the pod's network metric's labels: %v", l)
	}
	ok("stopp", podID)
	ok("rmp", podID)
	e.checkNothingLeft()
}

// value is the metric's value with its own labels (after the six every
// metric has) as given; 1<<64-1 if none.
func value(ms []*runtimeapi.Metric, name string, own []string) uint64 {
	for _, m := range ms {
		if m.Name == name && strings.Join(m.LabelValues[min(6, len(m.LabelValues)):], "|") == strings.Join(own, "|") {
			return m.GetValue().GetValue()
		}
	}
	return 1<<64 - 1
}
