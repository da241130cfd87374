//go:build linux

package cri

import (
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/runtime"
)

// cadvisorMetrics are the container metrics a kubelet's cadvisor exports
// (critest v1.37's list): each must be served.
var cadvisorMetrics = []string{
	"container_blkio_device_usage_total", "container_cpu_cfs_periods_total", "container_cpu_cfs_throttled_periods_total",
	"container_cpu_cfs_throttled_seconds_total", "container_cpu_system_seconds_total", "container_cpu_usage_seconds_total",
	"container_cpu_user_seconds_total", "container_file_descriptors", "container_fs_inodes_free", "container_fs_inodes_total",
	"container_fs_limit_bytes", "container_fs_reads_bytes_total", "container_fs_reads_total", "container_fs_usage_bytes",
	"container_fs_writes_bytes_total", "container_fs_writes_total", "container_hugetlb_max_usage_bytes",
	"container_hugetlb_usage_bytes", "container_last_seen", "container_memory_cache", "container_memory_failcnt",
	"container_memory_failures_total", "container_memory_kernel_usage", "container_memory_mapped_file",
	"container_memory_max_usage_bytes", "container_memory_rss", "container_memory_swap", "container_memory_usage_bytes",
	"container_memory_working_set_bytes", "container_network_receive_bytes_total", "container_network_receive_errors_total",
	"container_network_receive_packets_dropped_total", "container_network_receive_packets_total",
	"container_network_transmit_bytes_total", "container_network_transmit_errors_total",
	"container_network_transmit_packets_dropped_total", "container_network_transmit_packets_total",
	"container_oom_events_total", "container_pressure_cpu_stalled_seconds_total", "container_pressure_cpu_waiting_seconds_total",
	"container_pressure_io_stalled_seconds_total", "container_pressure_io_waiting_seconds_total",
	"container_pressure_memory_stalled_seconds_total", "container_pressure_memory_waiting_seconds_total",
	"container_processes", "container_sockets", "container_spec_cpu_period", "container_spec_cpu_quota",
	"container_spec_cpu_shares", "container_spec_memory_limit_bytes", "container_spec_memory_reservation_limit_bytes",
	"container_spec_memory_swap_limit_bytes", "container_start_time_seconds", "container_threads", "container_threads_max",
	"container_ulimits_soft",
}

func TestMetricDescriptors(t *testing.T) {
	descs := metricDescriptors()
	byName := map[string]*runtimeapi.MetricDescriptor{}
	for _, d := range descs {
		if byName[d.Name] != nil {
			t.Errorf("%s: described twice", d.Name)
		}
		byName[d.Name] = d
		if d.Help == "" {
			t.Errorf("%s: no help", d.Name)
		}
		if !slices.Equal(d.LabelKeys[:len(metricLabelKeys)], metricLabelKeys) {
			t.Errorf("%s: label keys %v do not start with %v", d.Name, d.LabelKeys, metricLabelKeys)
		}
	}
	for _, name := range cadvisorMetrics {
		if byName[name] == nil {
			t.Errorf("%s: not served", name)
		}
	}
	// cadvisor's own labels, which dashboards select on.
	for name, keys := range map[string][]string{
		"container_network_receive_bytes_total": {"interface"},
		"container_memory_failures_total":       {"failure_type", "scope"},
		"container_fs_usage_bytes":              {"device"},
		"container_blkio_device_usage_total":    {"device", "major", "minor", "operation"},
		"container_cpu_usage_seconds_total":     {"cpu"},
		"container_ulimits_soft":                {"ulimit"},
		"container_hugetlb_usage_bytes":         {"pagesize"},
		"container_processes":                   nil,
	} {
		if got := byName[name].LabelKeys[len(metricLabelKeys):]; !slices.Equal(got, keys) {
			t.Errorf("%s: own label keys %v, want %v", name, got, keys)
		}
	}
}

// fullSource has every counter a linux host may give.
func fullSource() *metricSource {
	read := time.Unix(1_800_000_000, 0)
	return &metricSource{
		sample: &engine.StatsSample{Running: true, Read: read, CPUTotal: 7_900_000_000, MemUsage: 4096, OOMKills: 2},
		detail: &runtime.StatsDetail{
			CPUUser: 5_000_000_000, CPUSystem: 2_900_000_000, CPUPeriods: 10, CPUThrottledPeriods: 3, CPUThrottledTime: 1_500_000_000,
			MemTotal: 8192, MemMaxUsage: 9000, MemCache: 4096, MemRSS: 3000, MemMappedFile: 100, MemSwap: 7, MemKernel: 50, MemFailcnt: 1,
			PageFaults: 11, MajorPageFaults: 1, HierarchyPageFaults: 12, HierarchyMajorPageFaults: 2,
			Interfaces: []runtime.InterfaceStats{{Name: "eth0", RxBytes: 100, TxBytes: 200}, {Name: "eth1", RxBytes: 1}},
			Devices:    []runtime.BlockDeviceStats{{Major: 8, Minor: 0, Name: "/dev/sda", ReadBytes: 512, WriteBytes: 1024, Reads: 1, Writes: 2}, {Major: 253, Minor: 1}},
			HugePages:  []runtime.HugePageStats{{PageSize: "2MB", Usage: 0, MaxUsage: 2 << 20}},
			Pressure:   &runtime.PressureStats{CPUSome: 3_000_000_000},
			Processes:  2, Threads: 3, FileDescriptors: 9, Sockets: 1, ThreadsMax: 100, OpenFilesSoftLimit: 1024,
			Limits: runtime.ResourceLimits{CPUQuota: 20000, MemLimit: 64 << 20, MemSwapLimit: 64 << 20},
		},
		started: read.Add(-time.Minute),
		layer:   &layerFilesystem{device: "/dev/sda1", usage: 40, size: 1 << 30, inodes: 1000, inodesFree: 900},
	}
}

// checkLabels fails for a metric whose label values do not match its
// descriptor's keys, and returns the values by name and labels.
func checkLabels(t *testing.T, metrics []*runtimeapi.Metric, base []string) map[string]map[string]uint64 {
	t.Helper()
	keys := map[string][]string{}
	for _, d := range metricDescriptors() {
		keys[d.Name] = d.LabelKeys
	}
	got := map[string]map[string]uint64{}
	for _, m := range metrics {
		k, ok := keys[m.Name]
		if !ok {
			t.Errorf("%s: no descriptor", m.Name)
			continue
		}
		if len(m.LabelValues) != len(k) {
			t.Errorf("%s: label values %v for keys %v", m.Name, m.LabelValues, k)
			continue
		}
		if !slices.Equal(m.LabelValues[:len(base)], base) {
			t.Errorf("%s: label values %v do not start with %v", m.Name, m.LabelValues, base)
		}
		if m.Timestamp == 0 || m.Value == nil {
			t.Errorf("%s: no timestamp or value", m.Name)
			continue
		}
		if got[m.Name] == nil {
			got[m.Name] = map[string]uint64{}
		}
		got[m.Name][strings.Join(m.LabelValues[len(base):], "|")] = m.Value.Value
	}
	return got
}

func TestMetricValues(t *testing.T) {
	src := fullSource()
	base := []string{"app", "c1", "busybox", "k8s_app", "default", "web"}
	got := checkLabels(t, metricsOf(src, base, false), base)
	pod := checkLabels(t, metricsOf(src, base, true), base)
	for _, d := range metricDescriptors() {
		if got[d.Name] == nil && pod[d.Name] == nil {
			t.Errorf("%s: no value from a full sample", d.Name)
		}
		if got[d.Name] != nil && pod[d.Name] != nil {
			t.Errorf("%s: both the pod's and each container's", d.Name)
		}
	}
	for _, c := range []struct {
		name, labels string
		in           map[string]map[string]uint64
		want         uint64
	}{
		{"container_cpu_usage_seconds_total", "total", got, 7}, // whole seconds
		{"container_cpu_user_seconds_total", "", got, 5},
		{"container_cpu_cfs_throttled_seconds_total", "", got, 1},
		{"container_memory_working_set_bytes", "", got, 4096},
		{"container_memory_usage_bytes", "", got, 8192},
		{"container_memory_failures_total", "pgmajfault|hierarchy", got, 2},
		{"container_oom_events_total", "", got, 2},
		{"container_network_receive_bytes_total", "eth0", pod, 100},
		{"container_network_transmit_bytes_total", "eth0", pod, 200},
		{"container_network_receive_bytes_total", "eth1", pod, 1},
		{"container_fs_usage_bytes", "/dev/sda1", got, 40},
		{"container_fs_inodes_free", "/dev/sda1", got, 900},
		{"container_fs_writes_bytes_total", "/dev/sda", got, 1024},
		{"container_fs_reads_total", "253:1", got, 0}, // no node: major:minor
		{"container_blkio_device_usage_total", "/dev/sda|8|0|Write", got, 1024},
		{"container_pressure_cpu_waiting_seconds_total", "", got, 3},
		{"container_ulimits_soft", "max_open_files", got, 1024},
		{"container_spec_cpu_shares", "", got, defaultCPUShares}, // unset: the kernel's default
		{"container_spec_cpu_period", "", got, defaultCPUPeriod},
		{"container_spec_cpu_quota", "", got, 20000},
		{"container_spec_memory_swap_limit_bytes", "", got, 64 << 20},
		{"container_start_time_seconds", "", got, 1_800_000_000 - 60},
		{"container_last_seen", "", got, 1_800_000_000},
	} {
		v, ok := c.in[c.name][c.labels]
		if !ok || v != c.want {
			t.Errorf("%s{%s} = %d (present %v), want %d", c.name, c.labels, v, ok, c.want)
		}
	}
}

// A driver without the finer sample (the VM's) gives only what the base
// sample and the engine know, never zeros for what it did not measure.
func TestMetricValuesWithoutDetail(t *testing.T) {
	src := fullSource()
	src.detail = nil
	base := []string{"app", "c1", "busybox", "k8s_app", "default", "web"}
	got := checkLabels(t, metricsOf(src, base, false), base)
	if pod := metricsOf(src, base, true); len(pod) != 0 {
		t.Errorf("pod metrics without a detailed sample: %v", pod)
	}
	var names []string
	for n := range got {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"container_cpu_usage_seconds_total", "container_fs_inodes_free", "container_fs_inodes_total",
		"container_fs_limit_bytes", "container_fs_usage_bytes", "container_last_seen", "container_memory_working_set_bytes",
		"container_oom_events_total", "container_start_time_seconds"}
	if !slices.Equal(names, want) {
		t.Errorf("metrics without detail: %v, want %v", names, want)
	}
}
