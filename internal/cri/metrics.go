//go:build linux

package cri

import (
	"cmp"
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/runtime"
)

// Metrics: ListMetricDescriptors and ListPodSandboxMetrics serve the
// container metrics the kubelet's cadvisor exports (its names, types and
// labels), so that a kubelet with PodAndContainerStatsFromCRI gets them
// from the runtime. The values come from the engine's samples
// (engine.Stats, the driver's runtime.StatsDetail) and, for the writable
// layer's filesystem, from its upper directory.
//
// Invariants: every metric has the label keys of its descriptor, the six
// of every container (metricLabelKeys) then its own, and one value for
// each key; the descriptors are fixed, and a metric whose data a host or
// driver lacks (pressure on cgroup v1, huge pages without the controller,
// all of StatsDetail from the VM driver) has no values rather than zeros.
// Values are whole numbers (the CRI's Metric carries a uint64): seconds
// are truncated, as CRI-O does.

// metricLabelKeys are every metric's first labels, as cadvisor names
// them: the kubelet's container name, the runtime's ID, the image as the
// kubelet named it, berth's name of the container, the pod's namespace
// and name. The pod's own metrics (its network) have the container "POD".
var metricLabelKeys = []string{"container", "id", "image", "name", "namespace", "pod"}

// podContainerName is the container label of a pod's own metrics.
const podContainerName = "POD"

// metricSource is what one container's (or pod's) values come from.
type metricSource struct {
	sample *engine.StatsSample
	// detail is the driver's finer sample; nil when it takes none.
	detail  *runtime.StatsDetail
	started time.Time
	// layer is the writable layer's filesystem; nil if unknown.
	layer *layerFilesystem
}

// metricValue is one value of a metric with its own labels (those after
// metricLabelKeys).
type metricValue struct {
	labels []string
	value  uint64
}

// metricDef is one metric: its descriptor's parts and its values.
type metricDef struct {
	name, help string
	kind       runtimeapi.MetricType
	// labels are its own label keys, after metricLabelKeys.
	labels []string
	// pod: the metric is the pod's (its network namespace's), not each
	// container's.
	pod    bool
	values func(*metricSource) []metricValue
}

// one is a value without labels of its own.
func one(v uint64) []metricValue { return []metricValue{{value: v}} }

// detailed is a metric of StatsDetail alone: none without it.
func detailed(f func(*runtime.StatsDetail) []metricValue) func(*metricSource) []metricValue {
	return func(m *metricSource) []metricValue {
		if m.detail == nil {
			return nil
		}
		return f(m.detail)
	}
}

func gauge(name, help string, f func(*runtime.StatsDetail) uint64) metricDef {
	return metricDef{name: name, help: help, kind: runtimeapi.MetricType_GAUGE,
		values: detailed(func(d *runtime.StatsDetail) []metricValue { return one(f(d)) })}
}

func counter(name, help string, f func(*runtime.StatsDetail) uint64) metricDef {
	return metricDef{name: name, help: help, kind: runtimeapi.MetricType_COUNTER,
		values: detailed(func(d *runtime.StatsDetail) []metricValue { return one(f(d)) })}
}

func seconds(ns uint64) uint64 { return ns / uint64(time.Second) }

// interfaceCounter is a per-interface counter of the pod's network.
func interfaceCounter(name, help string, f func(*runtime.InterfaceStats) uint64) metricDef {
	return metricDef{name: name, help: help, kind: runtimeapi.MetricType_COUNTER, labels: []string{"interface"}, pod: true,
		values: detailed(func(d *runtime.StatsDetail) []metricValue {
			var out []metricValue
			for i := range d.Interfaces {
				out = append(out, metricValue{labels: []string{d.Interfaces[i].Name}, value: f(&d.Interfaces[i])})
			}
			return out
		})}
}

// deviceCounter is a per-block-device counter.
func deviceCounter(name, help string, f func(*runtime.BlockDeviceStats) uint64) metricDef {
	return metricDef{name: name, help: help, kind: runtimeapi.MetricType_COUNTER, labels: []string{"device"},
		values: detailed(func(d *runtime.StatsDetail) []metricValue {
			var out []metricValue
			for i := range d.Devices {
				out = append(out, metricValue{labels: []string{blockDeviceLabel(&d.Devices[i])}, value: f(&d.Devices[i])})
			}
			return out
		})}
}

// layerGauge is a gauge of the writable layer's filesystem.
func layerGauge(name, help string, f func(*layerFilesystem) uint64) metricDef {
	return metricDef{name: name, help: help, kind: runtimeapi.MetricType_GAUGE, labels: []string{"device"},
		values: func(m *metricSource) []metricValue {
			if m.layer == nil {
				return nil
			}
			return []metricValue{{labels: []string{m.layer.device}, value: f(m.layer)}}
		}}
}

// hugePageGauge is a gauge per huge page size.
func hugePageGauge(name, help string, f func(*runtime.HugePageStats) uint64) metricDef {
	return metricDef{name: name, help: help, kind: runtimeapi.MetricType_GAUGE, labels: []string{"pagesize"},
		values: detailed(func(d *runtime.StatsDetail) []metricValue {
			var out []metricValue
			for i := range d.HugePages {
				out = append(out, metricValue{labels: []string{d.HugePages[i].PageSize}, value: f(&d.HugePages[i])})
			}
			return out
		})}
}

// pressureCounter is a stall time, present where the host keeps PSI.
func pressureCounter(name, help string, f func(*runtime.PressureStats) uint64) metricDef {
	return metricDef{name: name, help: help, kind: runtimeapi.MetricType_COUNTER,
		values: detailed(func(d *runtime.StatsDetail) []metricValue {
			if d.Pressure == nil {
				return nil
			}
			return one(seconds(f(d.Pressure)))
		})}
}

// Kernel defaults a container without its own CPU settings runs with.
const (
	defaultCPUShares = 1024
	defaultCPUPeriod = 100000
)

// metricDefs are the metrics served, in cadvisor's names.
var metricDefs = []metricDef{
	// CPU.
	{name: "container_cpu_usage_seconds_total", help: "Cumulative CPU time consumed, in seconds.",
		kind: runtimeapi.MetricType_COUNTER, labels: []string{"cpu"},
		values: func(m *metricSource) []metricValue {
			return []metricValue{{labels: []string{"total"}, value: seconds(m.sample.CPUTotal)}}
		}},
	counter("container_cpu_user_seconds_total", "Cumulative user CPU time consumed, in seconds.",
		func(d *runtime.StatsDetail) uint64 { return seconds(d.CPUUser) }),
	counter("container_cpu_system_seconds_total", "Cumulative system CPU time consumed, in seconds.",
		func(d *runtime.StatsDetail) uint64 { return seconds(d.CPUSystem) }),
	counter("container_cpu_cfs_periods_total", "Number of elapsed CFS enforcement periods.",
		func(d *runtime.StatsDetail) uint64 { return d.CPUPeriods }),
	counter("container_cpu_cfs_throttled_periods_total", "Number of CFS periods in which the container was throttled.",
		func(d *runtime.StatsDetail) uint64 { return d.CPUThrottledPeriods }),
	counter("container_cpu_cfs_throttled_seconds_total", "Total time the container was throttled, in seconds.",
		func(d *runtime.StatsDetail) uint64 { return seconds(d.CPUThrottledTime) }),

	// Memory.
	{name: "container_memory_working_set_bytes", help: "Current working set (usage less the inactive page cache), in bytes.",
		kind: runtimeapi.MetricType_GAUGE, values: func(m *metricSource) []metricValue { return one(m.sample.MemUsage) }},
	gauge("container_memory_usage_bytes", "Current memory usage, page cache included, in bytes.",
		func(d *runtime.StatsDetail) uint64 { return d.MemTotal }),
	gauge("container_memory_max_usage_bytes", "Highest memory usage recorded, in bytes.",
		func(d *runtime.StatsDetail) uint64 { return d.MemMaxUsage }),
	gauge("container_memory_cache", "Page cache, in bytes.",
		func(d *runtime.StatsDetail) uint64 { return d.MemCache }),
	gauge("container_memory_rss", "Anonymous memory (RSS), in bytes.",
		func(d *runtime.StatsDetail) uint64 { return d.MemRSS }),
	gauge("container_memory_mapped_file", "Memory-mapped files, in bytes.",
		func(d *runtime.StatsDetail) uint64 { return d.MemMappedFile }),
	gauge("container_memory_swap", "Swap in use, in bytes.",
		func(d *runtime.StatsDetail) uint64 { return d.MemSwap }),
	gauge("container_memory_kernel_usage", "Kernel memory in use, in bytes.",
		func(d *runtime.StatsDetail) uint64 { return d.MemKernel }),
	counter("container_memory_failcnt", "Number of times memory usage hit its limit.",
		func(d *runtime.StatsDetail) uint64 { return d.MemFailcnt }),
	{name: "container_memory_failures_total", help: "Cumulative count of page faults, by type and scope.",
		kind: runtimeapi.MetricType_COUNTER, labels: []string{"failure_type", "scope"},
		values: detailed(func(d *runtime.StatsDetail) []metricValue {
			return []metricValue{
				{labels: []string{"pgfault", "container"}, value: d.PageFaults},
				{labels: []string{"pgfault", "hierarchy"}, value: d.HierarchyPageFaults},
				{labels: []string{"pgmajfault", "container"}, value: d.MajorPageFaults},
				{labels: []string{"pgmajfault", "hierarchy"}, value: d.HierarchyMajorPageFaults},
			}
		})},
	{name: "container_oom_events_total", help: "Count of the container's processes the OOM killer killed.",
		kind: runtimeapi.MetricType_COUNTER, values: func(m *metricSource) []metricValue { return one(m.sample.OOMKills) }},

	// Network, the pod's.
	interfaceCounter("container_network_receive_bytes_total", "Cumulative count of bytes received.",
		func(i *runtime.InterfaceStats) uint64 { return i.RxBytes }),
	interfaceCounter("container_network_receive_packets_total", "Cumulative count of packets received.",
		func(i *runtime.InterfaceStats) uint64 { return i.RxPackets }),
	interfaceCounter("container_network_receive_errors_total", "Cumulative count of errors while receiving.",
		func(i *runtime.InterfaceStats) uint64 { return i.RxErrors }),
	interfaceCounter("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.",
		func(i *runtime.InterfaceStats) uint64 { return i.RxDropped }),
	interfaceCounter("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.",
		func(i *runtime.InterfaceStats) uint64 { return i.TxBytes }),
	interfaceCounter("container_network_transmit_packets_total", "Cumulative count of packets transmitted.",
		func(i *runtime.InterfaceStats) uint64 { return i.TxPackets }),
	interfaceCounter("container_network_transmit_errors_total", "Cumulative count of errors while transmitting.",
		func(i *runtime.InterfaceStats) uint64 { return i.TxErrors }),
	interfaceCounter("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.",
		func(i *runtime.InterfaceStats) uint64 { return i.TxDropped }),

	// The writable layer's filesystem and block I/O.
	layerGauge("container_fs_usage_bytes", "Bytes the container's writable layer uses on its filesystem.",
		func(l *layerFilesystem) uint64 { return l.usage }),
	layerGauge("container_fs_limit_bytes", "Size of the filesystem holding the writable layer, in bytes.",
		func(l *layerFilesystem) uint64 { return l.size }),
	layerGauge("container_fs_inodes_total", "Inodes of the filesystem holding the writable layer.",
		func(l *layerFilesystem) uint64 { return l.inodes }),
	layerGauge("container_fs_inodes_free", "Free inodes of the filesystem holding the writable layer.",
		func(l *layerFilesystem) uint64 { return l.inodesFree }),
	deviceCounter("container_fs_reads_bytes_total", "Cumulative count of bytes read from the device.",
		func(b *runtime.BlockDeviceStats) uint64 { return b.ReadBytes }),
	deviceCounter("container_fs_writes_bytes_total", "Cumulative count of bytes written to the device.",
		func(b *runtime.BlockDeviceStats) uint64 { return b.WriteBytes }),
	deviceCounter("container_fs_reads_total", "Cumulative count of reads completed on the device.",
		func(b *runtime.BlockDeviceStats) uint64 { return b.Reads }),
	deviceCounter("container_fs_writes_total", "Cumulative count of writes completed on the device.",
		func(b *runtime.BlockDeviceStats) uint64 { return b.Writes }),
	{name: "container_blkio_device_usage_total", help: "Block I/O bytes, by device and operation.",
		kind: runtimeapi.MetricType_COUNTER, labels: []string{"device", "major", "minor", "operation"},
		values: detailed(func(d *runtime.StatsDetail) []metricValue {
			var out []metricValue
			for i := range d.Devices {
				b := &d.Devices[i]
				major, minor := strconv.FormatUint(b.Major, 10), strconv.FormatUint(b.Minor, 10)
				out = append(out,
					metricValue{labels: []string{blockDeviceLabel(b), major, minor, "Read"}, value: b.ReadBytes},
					metricValue{labels: []string{blockDeviceLabel(b), major, minor, "Write"}, value: b.WriteBytes})
			}
			return out
		})},

	// Huge pages and pressure.
	hugePageGauge("container_hugetlb_usage_bytes", "Huge page usage, in bytes.",
		func(h *runtime.HugePageStats) uint64 { return h.Usage }),
	hugePageGauge("container_hugetlb_max_usage_bytes", "Highest huge page usage recorded, in bytes.",
		func(h *runtime.HugePageStats) uint64 { return h.MaxUsage }),
	pressureCounter("container_pressure_cpu_waiting_seconds_total", "Total time some tasks waited for CPU, in seconds.",
		func(p *runtime.PressureStats) uint64 { return p.CPUSome }),
	pressureCounter("container_pressure_cpu_stalled_seconds_total", "Total time all tasks stalled on CPU, in seconds.",
		func(p *runtime.PressureStats) uint64 { return p.CPUFull }),
	pressureCounter("container_pressure_memory_waiting_seconds_total", "Total time some tasks waited for memory, in seconds.",
		func(p *runtime.PressureStats) uint64 { return p.MemorySome }),
	pressureCounter("container_pressure_memory_stalled_seconds_total", "Total time all tasks stalled on memory, in seconds.",
		func(p *runtime.PressureStats) uint64 { return p.MemoryFull }),
	pressureCounter("container_pressure_io_waiting_seconds_total", "Total time some tasks waited for I/O, in seconds.",
		func(p *runtime.PressureStats) uint64 { return p.IOSome }),
	pressureCounter("container_pressure_io_stalled_seconds_total", "Total time all tasks stalled on I/O, in seconds.",
		func(p *runtime.PressureStats) uint64 { return p.IOFull }),

	// Processes.
	gauge("container_processes", "Number of processes in the container.",
		func(d *runtime.StatsDetail) uint64 { return d.Processes }),
	gauge("container_threads", "Number of threads in the container.",
		func(d *runtime.StatsDetail) uint64 { return d.Threads }),
	gauge("container_threads_max", "Most threads the container may have (0: no limit).",
		func(d *runtime.StatsDetail) uint64 { return d.ThreadsMax }),
	gauge("container_file_descriptors", "Number of file descriptors the container's processes hold open.",
		func(d *runtime.StatsDetail) uint64 { return d.FileDescriptors }),
	gauge("container_sockets", "Number of sockets the container's processes hold open.",
		func(d *runtime.StatsDetail) uint64 { return d.Sockets }),
	{name: "container_ulimits_soft", help: "Soft resource limits of the container's first process (unlimited: none given).",
		kind: runtimeapi.MetricType_GAUGE, labels: []string{"ulimit"},
		values: detailed(func(d *runtime.StatsDetail) []metricValue {
			if d.OpenFilesSoftLimit <= 0 {
				return nil // unlimited, or unreadable: a uint64 cannot say -1
			}
			return []metricValue{{labels: []string{"max_open_files"}, value: uint64(d.OpenFilesSoftLimit)}}
		})},

	// The limits it was given.
	gauge("container_spec_cpu_shares", "CPU shares of the container.",
		func(d *runtime.StatsDetail) uint64 { return cmp.Or(d.Limits.CPUShares, defaultCPUShares) }),
	gauge("container_spec_cpu_period", "CFS period of the container, in microseconds.",
		func(d *runtime.StatsDetail) uint64 { return cmp.Or(d.Limits.CPUPeriod, defaultCPUPeriod) }),
	{name: "container_spec_cpu_quota", help: "CFS quota of the container, in microseconds per period.",
		kind: runtimeapi.MetricType_GAUGE,
		values: detailed(func(d *runtime.StatsDetail) []metricValue {
			if d.Limits.CPUQuota <= 0 {
				return nil // none: cadvisor gives no value either
			}
			return one(uint64(d.Limits.CPUQuota))
		})},
	gauge("container_spec_memory_limit_bytes", "Memory limit of the container, in bytes (0: none).",
		func(d *runtime.StatsDetail) uint64 { return d.Limits.MemLimit }),
	gauge("container_spec_memory_reservation_limit_bytes", "Memory reservation (soft limit) of the container, in bytes (0: none).",
		func(d *runtime.StatsDetail) uint64 { return d.Limits.MemReservation }),
	gauge("container_spec_memory_swap_limit_bytes", "Memory plus swap limit of the container, in bytes (0: none).",
		func(d *runtime.StatsDetail) uint64 { return d.Limits.MemSwapLimit }),

	// Times.
	{name: "container_start_time_seconds", help: "Start time of the container, in seconds since the Unix epoch.",
		kind: runtimeapi.MetricType_GAUGE, values: func(m *metricSource) []metricValue {
			if m.started.IsZero() {
				return nil
			}
			return one(uint64(m.started.Unix()))
		}},
	{name: "container_last_seen", help: "Last time the container was sampled, in seconds since the Unix epoch.",
		kind: runtimeapi.MetricType_GAUGE, values: func(m *metricSource) []metricValue { return one(uint64(m.sample.Read.Unix())) }},
}

// blockDeviceLabel names a device by its node, else major:minor.
func blockDeviceLabel(b *runtime.BlockDeviceStats) string {
	if b.Name != "" {
		return b.Name
	}
	return strconv.FormatUint(b.Major, 10) + ":" + strconv.FormatUint(b.Minor, 10)
}

// metricDescriptors are metricDefs' descriptors.
func metricDescriptors() []*runtimeapi.MetricDescriptor {
	out := make([]*runtimeapi.MetricDescriptor, len(metricDefs))
	for i, d := range metricDefs {
		out[i] = &runtimeapi.MetricDescriptor{Name: d.name, Help: d.help, LabelKeys: slices.Concat(metricLabelKeys, d.labels)}
	}
	return out
}

// metricsOf gives the metrics with pod set as they are (the pod's or
// each container's) for one source, labelled base then their own.
func metricsOf(src *metricSource, base []string, pod bool) []*runtimeapi.Metric {
	ts := src.sample.Read.UnixNano()
	var out []*runtimeapi.Metric
	for _, d := range metricDefs {
		if d.pod != pod {
			continue
		}
		for _, v := range d.values(src) {
			out = append(out, &runtimeapi.Metric{Name: d.name, Timestamp: ts, MetricType: d.kind,
				LabelValues: slices.Concat(base, v.labels), Value: &runtimeapi.UInt64Value{Value: v.value}})
		}
	}
	return out
}

// ListMetricDescriptors lists the metrics ListPodSandboxMetrics gives.
func (s *Server) ListMetricDescriptors(context.Context, *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	return &runtimeapi.ListMetricDescriptorsResponse{Descriptors: metricDescriptors()}, nil
}

// ListPodSandboxMetrics samples every CRI pod: each running container's
// metrics, and the pod's network from one of them (they share its
// namespace).
func (s *Server) ListPodSandboxMetrics(ctx context.Context, _ *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	pods, err := s.e.PodList(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	list, err := s.e.List(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	out := []*runtimeapi.PodSandboxMetrics{}
	for _, p := range pods {
		meta, ok := sandboxMetaOf(p)
		if !ok {
			continue
		}
		pm, err := s.podMetrics(ctx, p, meta, list)
		if err != nil {
			return nil, grpcError(err)
		}
		out = append(out, pm)
	}
	return &runtimeapi.ListPodSandboxMetricsResponse{PodMetrics: out}, nil
}

func (s *Server) podMetrics(ctx context.Context, p *engine.Pod, meta *sandboxMeta, list []*engine.Container) (*runtimeapi.PodSandboxMetrics, error) {
	pm := &runtimeapi.PodSandboxMetrics{PodSandboxId: p.ID, Metrics: []*runtimeapi.Metric{}, ContainerMetrics: []*runtimeapi.ContainerMetrics{}}
	var network *metricSource
	for _, c := range list {
		m, ok := containerMetaOf(c)
		if c.Pod != p.ID || !ok {
			continue
		}
		sample, err := s.e.Stats(ctx, c.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		if !sample.Running {
			continue // cadvisor, too, has nothing of a container that ended
		}
		src := &metricSource{sample: sample, detail: sample.Detail, started: c.State.StartedAt}
		if upper := s.e.ContainerPaths(c.ID).Upper; upper != "" {
			src.layer = writableLayerFilesystem(upper)
		}
		base := []string{m.Metadata.GetName(), c.ID, m.Image, c.Name, meta.Metadata.GetNamespace(), meta.Metadata.GetName()}
		pm.ContainerMetrics = append(pm.ContainerMetrics, &runtimeapi.ContainerMetrics{ContainerId: c.ID, Metrics: metricsOf(src, base, false)})
		if network == nil && !meta.HostNetwork {
			network = src
		}
	}
	if network != nil {
		base := []string{podContainerName, p.ID, "", p.Name, meta.Metadata.GetNamespace(), meta.Metadata.GetName()}
		pm.Metrics = metricsOf(network, base, true)
	}
	return pm, nil
}

// layerFilesystem is a writable layer's use of the filesystem holding it.
type layerFilesystem struct {
	device             string
	usage, size        uint64
	inodes, inodesFree uint64
}

// writableLayerFilesystem measures the upper directory and its
// filesystem; nil if it cannot be read.
func writableLayerFilesystem(upper string) *layerFilesystem {
	var st unix.Stat_t
	var fs unix.Statfs_t
	if unix.Stat(upper, &st) != nil || unix.Statfs(upper, &fs) != nil {
		return nil
	}
	return &layerFilesystem{
		device:     filesystemDevice(unix.Major(st.Dev), unix.Minor(st.Dev)),
		usage:      uint64(max(engine.DirSize(upper), 0)),
		size:       fs.Blocks * uint64(fs.Bsize),
		inodes:     fs.Files,
		inodesFree: fs.Ffree,
	}
}

// filesystemDevice names a filesystem's device by its node, as its
// uevent names it, else major:minor (a filesystem without a block device).
func filesystemDevice(major, minor uint32) string {
	id := strconv.FormatUint(uint64(major), 10) + ":" + strconv.FormatUint(uint64(minor), 10)
	data, err := os.ReadFile("/sys/dev/block/" + id + "/uevent")
	if err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if name, ok := strings.CutPrefix(l, "DEVNAME="); ok {
				return "/dev/" + name
			}
		}
	}
	return id
}
