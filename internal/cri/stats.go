//go:build linux

package cri

import (
	"context"
	"errors"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/engine/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Stats: the engine's cgroup samples (engine.Stats) in the CRI's shapes,
// for containers and, summed, for pods; the writable layer's bytes from
// its upper directory.

func (s *Server) containerStats(ctx context.Context, c *engine.Container, m *containerMeta) (*runtimeapi.ContainerStats, error) {
	sample, err := s.e.Stats(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	ts := sample.Read.UnixNano()
	st := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: c.ID, Metadata: m.Metadata, Labels: m.Labels, Annotations: m.Annotations},
		Cpu:        &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: sample.CPUTotal}},
		Memory: &runtimeapi.MemoryUsage{Timestamp: ts, WorkingSetBytes: &runtimeapi.UInt64Value{Value: sample.MemUsage},
			UsageBytes: &runtimeapi.UInt64Value{Value: sample.MemUsage}},
	}
	if sample.MemLimit > sample.MemUsage {
		st.Memory.AvailableBytes = &runtimeapi.UInt64Value{Value: sample.MemLimit - sample.MemUsage}
	}
	if upper := s.e.ContainerPaths(c.ID).Upper; upper != "" {
		st.WritableLayer = &runtimeapi.FilesystemUsage{Timestamp: ts, FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: upper},
			UsedBytes: &runtimeapi.UInt64Value{Value: uint64(max(engine.DirSize(upper), 0))}}
	}
	return st, nil
}

// ContainerStats samples one container.
func (s *Server) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	c, m, err := s.container(ctx, req.GetContainerId())
	if err != nil {
		return nil, grpcError(err)
	}
	st, err := s.containerStats(ctx, c, m)
	if err != nil {
		return nil, grpcError(err)
	}
	return &runtimeapi.ContainerStatsResponse{Stats: st}, nil
}

// ListContainerStats samples the containers the filter keeps (ID or
// prefix, pod, labels).
func (s *Server) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	list, err := s.criContainers(ctx, containerFilter{id: f.GetId(), pod: f.GetPodSandboxId(), labels: f.GetLabelSelector()})
	if err != nil {
		return nil, grpcError(err)
	}
	out := []*runtimeapi.ContainerStats{}
	for _, x := range list {
		st, err := s.containerStats(ctx, x.c, x.m)
		if errors.Is(err, store.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, grpcError(err)
		}
		out = append(out, st)
	}
	return &runtimeapi.ListContainerStatsResponse{Stats: out}, nil
}

// podStats sums the pod's containers' samples.
func (s *Server) podStats(ctx context.Context, p *engine.Pod, meta *sandboxMeta) (*runtimeapi.PodSandboxStats, error) {
	list, err := s.e.List(ctx)
	if err != nil {
		return nil, err
	}
	var cpu, mem uint64
	var rx, tx uint64
	var ts int64
	var cs []*runtimeapi.ContainerStats
	for _, c := range list {
		m, ok := containerMetaOf(c)
		if c.Pod != p.ID || !ok {
			continue
		}
		st, err := s.containerStats(ctx, c, m)
		if err != nil {
			continue
		}
		cs = append(cs, st)
		cpu += st.GetCpu().GetUsageCoreNanoSeconds().GetValue()
		mem += st.GetMemory().GetWorkingSetBytes().GetValue()
		ts = max(ts, st.GetCpu().GetTimestamp())
		if sample, err := s.e.Stats(ctx, c.ID); err == nil && sample.Running {
			// One network namespace: any running container's counters
			// are the pod's.
			rx, tx = sample.NetRx, sample.NetTx
		}
	}
	return &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: p.ID, Metadata: meta.Metadata, Labels: criLabels(p.Labels), Annotations: p.Annotations},
		Linux: &runtimeapi.LinuxPodSandboxStats{
			Cpu:        &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: cpu}},
			Memory:     &runtimeapi.MemoryUsage{Timestamp: ts, WorkingSetBytes: &runtimeapi.UInt64Value{Value: mem}},
			Network:    &runtimeapi.NetworkUsage{Timestamp: ts, DefaultInterface: &runtimeapi.NetworkInterfaceUsage{Name: "eth0", RxBytes: &runtimeapi.UInt64Value{Value: rx}, TxBytes: &runtimeapi.UInt64Value{Value: tx}}},
			Containers: cs,
		},
	}, nil
}

// PodSandboxStats samples one pod.
func (s *Server) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	p, err := s.sandbox(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, grpcError(err)
	}
	meta, ok := sandboxMetaOf(p)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "pod %s was not made through the CRI", p.Name)
	}
	st, err := s.podStats(ctx, p, meta)
	if err != nil {
		return nil, grpcError(err)
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: st}, nil
}

// ListPodSandboxStats samples the pods the filter keeps.
func (s *Server) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	pods, err := s.criPods(ctx, f.GetId(), f.GetLabelSelector())
	if err != nil {
		return nil, grpcError(err)
	}
	out := []*runtimeapi.PodSandboxStats{}
	for _, x := range pods {
		st, err := s.podStats(ctx, x.p, x.meta)
		if err != nil {
			return nil, grpcError(err)
		}
		out = append(out, st)
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: out}, nil
}

// ReopenContainerLog has the container's monitor write to a new file at
// its log path (the kubelet moved the old one away to rotate it).
func (s *Server) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	c, _, err := s.container(ctx, req.GetContainerId())
	if err != nil {
		return nil, grpcError(err)
	}
	if err := s.e.ReopenLog(ctx, c.ID); err != nil {
		return nil, grpcError(err)
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}
