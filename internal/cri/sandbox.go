//go:build linux

package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/network"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pod sandboxes are the engine's pods (internal/engine/pod.go), in the
// engine's CRI namespace. What the CRI knows of a pod beyond the engine's
// fields (its metadata, its labels and annotations as the kubelet gave
// them, its log directory and runtime handler) is kept in one label of
// the pod, metaLabel, as JSON; the CRI's own labels are answered without
// it.

// metaLabel holds a CRI object's metadata on the engine's record.
const metaLabel = "io.berth.cri.meta"

// sandboxMeta is what a pod's metaLabel holds.
type sandboxMeta struct {
	Metadata       *runtimeapi.PodSandboxMetadata `json:"metadata"`
	Labels         map[string]string              `json:"labels,omitempty"`
	Annotations    map[string]string              `json:"annotations,omitempty"`
	LogDirectory   string                         `json:"logDirectory,omitempty"`
	RuntimeHandler string                         `json:"runtimeHandler,omitempty"`
	HostNetwork    bool                           `json:"hostNetwork,omitempty"`
	HostIPC        bool                           `json:"hostIPC,omitempty"`
	HostPID        bool                           `json:"hostPID,omitempty"`
	// Sysctls are the pod's, set in each of its containers.
	Sysctls map[string]string `json:"sysctls,omitempty"`
}

func sandboxMetaOf(p *engine.Pod) (*sandboxMeta, bool) {
	v, ok := p.Labels[metaLabel]
	if !ok {
		return nil, false
	}
	var m sandboxMeta
	if json.Unmarshal([]byte(v), &m) != nil || m.Metadata == nil {
		return nil, false
	}
	return &m, true
}

// sandboxName is the engine name of a pod: unique per metadata, as
// containerd's (name_namespace_uid_attempt).
func sandboxName(m *runtimeapi.PodSandboxMetadata) string {
	return strings.Join([]string{m.GetName(), m.GetNamespace(), m.GetUid(), strconv.FormatUint(uint64(m.GetAttempt()), 10)}, "_")
}

// handlerIsolation is the engine isolation of a runtime handler: ""
// (the default) for "", "runc" and "linux"; another isolation by its
// name ("vm": the pod is one VM holding its containers).
func (s *Server) handlerIsolation(h string) (string, error) {
	switch h {
	case "", "runc", "linux":
		return "", nil
	}
	for _, iso := range s.e.Isolations() {
		if iso == h {
			return iso, nil
		}
	}
	return "", status.Errorf(codes.InvalidArgument, "no runtime for %q is configured (berth has %s)", h, strings.Join(s.e.Isolations(), ", "))
}

// RunPodSandbox makes a pod: its namespaces pinned, its network attached
// (with hostPort mappings through the portmap plugin), its hostname and
// DNS files. On failure nothing is left (the engine's PodCreate undoes).
func (s *Server) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	cfg := req.GetConfig()
	md := cfg.GetMetadata()
	if md == nil || md.GetName() == "" || md.GetUid() == "" || md.GetNamespace() == "" {
		return nil, status.Error(codes.InvalidArgument, "RunPodSandbox: the sandbox config's metadata needs a name, a namespace and a uid")
	}
	iso, err := s.handlerIsolation(req.GetRuntimeHandler())
	if err != nil {
		return nil, err
	}
	nsOpts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	meta := sandboxMeta{Metadata: md, Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), LogDirectory: cfg.GetLogDirectory(),
		RuntimeHandler: req.GetRuntimeHandler(), HostNetwork: nsOpts.GetNetwork() == runtimeapi.NamespaceMode_NODE,
		HostIPC: nsOpts.GetIpc() == runtimeapi.NamespaceMode_NODE, HostPID: nsOpts.GetPid() == runtimeapi.NamespaceMode_NODE,
		Sysctls: cfg.GetLinux().GetSysctls()}
	uids, gids, err := podUserns(nsOpts.GetUsernsOptions())
	if err != nil {
		return nil, err
	}
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return nil, grpcError(err)
	}
	labels := maps.Clone(cfg.GetLabels())
	if labels == nil {
		labels = map[string]string{}
	}
	labels[metaLabel] = string(metaJSON)
	o := engine.PodOptions{
		Name: sandboxName(md), Hostname: cfg.GetHostname(), Labels: labels, Annotations: cfg.GetAnnotations(),
		CgroupParent: cfg.GetLinux().GetCgroupParent(), UIDMaps: uids, GIDMaps: gids, Isolation: iso,
	}
	if r := cfg.GetLinux().GetResources(); r != nil && iso != "" {
		// The pod's limits size its VM.
		o.Resources = podResources(r)
	}
	if meta.HostNetwork {
		o.NetworkMode = "host"
	} else {
		choice, err := s.net.choose()
		if err != nil {
			return nil, status.Errorf(codes.Unknown, "RunPodSandbox: failed to set up the network of sandbox %s: %v", o.Name, err)
		}
		for _, skipped := range choice.skipped {
			s.log.Warn("a CNI configuration file does not load: skipped", "err", skipped)
		}
		if choice.cni != nil {
			ref := *choice.cni
			// CNI_ARGS as containerd and CRI-O give them (the engine
			// adds K8S_POD_INFRA_CONTAINER_ID, the sandbox's ID).
			ref.Args = [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", md.GetNamespace()}, {"K8S_POD_NAME", md.GetName()}, {"K8S_POD_UID", md.GetUid()}}
			o.CNI = &ref
		} else {
			o.NetworkMode = choice.berth
		}
	}
	if meta.HostIPC {
		o.IpcMode = "host"
	}
	// The CRI's zero value is POD: one PID namespace for the pod.
	o.ShareProcess = nsOpts.GetPid() == runtimeapi.NamespaceMode_POD
	if dns := cfg.GetDnsConfig(); dns != nil {
		o.DNS, o.DNSSearch, o.DNSOptions = dns.GetServers(), dns.GetSearches(), dns.GetOptions()
	}
	for _, pm := range cfg.GetPortMappings() {
		if pm.GetHostPort() <= 0 || meta.HostNetwork {
			continue // the CRI's rule: only a host port is mapped
		}
		proto := strings.ToLower(pm.GetProtocol().String())
		if proto == "sctp" {
			return nil, status.Errorf(codes.InvalidArgument, "RunPodSandbox: port %d/sctp: berth maps tcp and udp ports", pm.GetContainerPort())
		}
		o.Ports = append(o.Ports, network.PortMapping{HostIP: pm.GetHostIp(), HostPort: int(pm.GetHostPort()), ContainerPort: int(pm.GetContainerPort()), Protocol: proto})
	}
	p, err := s.e.PodCreate(ctx, o)
	if err != nil {
		if errors.Is(err, store.ErrNameInUse) {
			return nil, status.Errorf(codes.AlreadyExists, "RunPodSandbox: the sandbox name %q is reserved: %v", o.Name, err)
		}
		return nil, grpcError(err)
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: p.ID}, nil
}

// podUserns checks the pod's user namespace request: NODE (the host's,
// the default) or POD with one uid and one gid mapping, each mapping the
// containers' root (the kubelet's shape; containerd's rules).
func podUserns(u *runtimeapi.UserNamespace) (uids, gids []specs.LinuxIDMapping, err error) {
	if u == nil || u.GetMode() == runtimeapi.NamespaceMode_NODE {
		return nil, nil, nil
	}
	if u.GetMode() != runtimeapi.NamespaceMode_POD {
		return nil, nil, status.Errorf(codes.InvalidArgument, "RunPodSandbox: user namespace mode %s: a pod's is NODE or POD", u.GetMode())
	}
	conv := func(what string, in []*runtimeapi.IDMapping) ([]specs.LinuxIDMapping, error) {
		if len(in) != 1 {
			return nil, status.Errorf(codes.InvalidArgument, "RunPodSandbox: a pod user namespace takes exactly one %s mapping, not %d", what, len(in))
		}
		m := in[0]
		if m.GetContainerId() != 0 || m.GetLength() == 0 {
			return nil, status.Errorf(codes.InvalidArgument, "RunPodSandbox: the %s mapping %d:%d:%d must map the container's root (container ID 0)", what, m.GetContainerId(), m.GetHostId(), m.GetLength())
		}
		return []specs.LinuxIDMapping{{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()}}, nil
	}
	if uids, err = conv("uid", u.GetUids()); err != nil {
		return nil, nil, err
	}
	if gids, err = conv("gid", u.GetGids()); err != nil {
		return nil, nil, err
	}
	return uids, gids, nil
}

// sandbox finds a pod by ID or unique ID prefix.
func (s *Server) sandbox(ctx context.Context, id string) (*engine.Pod, error) {
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "no pod sandbox ID given")
	}
	p, err := s.e.PodGet(ctx, id)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// StopPodSandbox stops the pod's containers (at once, as the kubelet has
// stopped them with their grace periods before) and takes its network
// down; the sandbox stays until RemovePodSandbox. A sandbox that is gone
// is no error (the CRI's rule).
func (s *Server) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	p, err := s.sandbox(ctx, req.GetPodSandboxId())
	if errors.Is(err, store.ErrNotFound) {
		return &runtimeapi.StopPodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, grpcError(err)
	}
	zero := 0
	if _, err := s.e.PodStop(ctx, p.ID, &zero); err != nil {
		return nil, grpcError(err)
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox removes the pod and its containers (killing those
// that run); a sandbox that is gone is no error.
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	p, err := s.sandbox(ctx, req.GetPodSandboxId())
	if errors.Is(err, store.ErrNotFound) {
		return &runtimeapi.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, grpcError(err)
	}
	if err := s.e.PodRemove(ctx, p.ID, engine.PodRemoveOptions{Force: true}); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, grpcError(err)
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func sandboxState(p *engine.Pod) runtimeapi.PodSandboxState {
	if p.State == engine.PodReady {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

// criLabels are a record's labels without berth's own.
func criLabels(l map[string]string) map[string]string {
	out := maps.Clone(l)
	delete(out, metaLabel)
	return out
}

func namespaceMode(host bool) runtimeapi.NamespaceMode {
	if host {
		return runtimeapi.NamespaceMode_NODE
	}
	return runtimeapi.NamespaceMode_POD
}

func pidMode(p *engine.Pod, meta *sandboxMeta) runtimeapi.NamespaceMode {
	switch {
	case meta.HostPID:
		return runtimeapi.NamespaceMode_NODE
	case p.SharePID:
		return runtimeapi.NamespaceMode_POD
	}
	return runtimeapi.NamespaceMode_CONTAINER
}

// PodSandboxStatus describes a pod: its state, addresses, namespaces
// and, verbose, the engine's record.
func (s *Server) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	p, err := s.sandbox(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, grpcError(err)
	}
	meta, ok := sandboxMetaOf(p)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "pod %s was not made through the CRI", p.Name)
	}
	st := &runtimeapi.PodSandboxStatus{
		Id: p.ID, Metadata: meta.Metadata, State: sandboxState(p), CreatedAt: p.Created.UnixNano(),
		Labels: criLabels(p.Labels), Annotations: p.Annotations, RuntimeHandler: meta.RuntimeHandler,
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{
			Network: namespaceMode(meta.HostNetwork), Ipc: namespaceMode(meta.HostIPC),
			Pid: pidMode(p, meta),
		}}},
		Network: &runtimeapi.PodSandboxNetworkStatus{},
	}
	if p.State == engine.PodReady && !meta.HostNetwork {
		for _, ep := range p.NetworkSettings.Endpoints {
			for _, ip := range []string{ep.IP, ep.IPv6} {
				switch {
				case ip == "":
				case st.Network.Ip == "":
					st.Network.Ip = ip
				default:
					st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
				}
			}
		}
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st}
	if req.GetVerbose() {
		info, _ := json.Marshal(p)
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// ListPodSandbox lists the CRI's pods, filtered by ID (or a prefix),
// state and labels.
func (s *Server) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	pods, err := s.criPods(ctx, f.GetId(), f.GetLabelSelector())
	if err != nil {
		return nil, grpcError(err)
	}
	out := []*runtimeapi.PodSandbox{}
	for _, x := range pods {
		p, meta := x.p, x.meta
		if f.GetState() != nil && f.GetState().GetState() != sandboxState(p) {
			continue
		}
		out = append(out, &runtimeapi.PodSandbox{Id: p.ID, Metadata: meta.Metadata, State: sandboxState(p), CreatedAt: p.Created.UnixNano(),
			Labels: criLabels(p.Labels), Annotations: p.Annotations, RuntimeHandler: meta.RuntimeHandler})
	}
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}

// criPod is a CRI pod with its metadata.
type criPod struct {
	p    *engine.Pod
	meta *sandboxMeta
}

// criPods are the CRI's pods whose ID starts with id (any when empty)
// and that carry every label of sel.
func (s *Server) criPods(ctx context.Context, id string, sel map[string]string) ([]criPod, error) {
	pods, err := s.e.PodList(ctx)
	if err != nil {
		return nil, err
	}
	var out []criPod
	for _, p := range pods {
		meta, ok := sandboxMetaOf(p)
		if !ok || id != "" && !strings.HasPrefix(p.ID, id) || !matchLabels(criLabels(p.Labels), sel) {
			continue
		}
		out = append(out, criPod{p, meta})
	}
	return out, nil
}

// matchLabels says whether labels has every key of sel with its value.
func matchLabels(labels, sel map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// errorf is a status with the request's method named.
func errorf(code codes.Code, format string, args ...any) error {
	return status.Error(code, fmt.Sprintf(format, args...))
}

// podResources are a pod's limits (the kubelet's pod-level resources)
// as the size of its sandbox: the memory limit, and the CPU quota and
// period; nil when the pod has neither.
func podResources(r *runtimeapi.LinuxContainerResources) *specs.LinuxResources {
	var out specs.LinuxResources
	if mem := r.GetMemoryLimitInBytes(); mem > 0 {
		out.Memory = &specs.LinuxMemory{Limit: &mem}
	}
	if q, per := r.GetCpuQuota(), r.GetCpuPeriod(); q > 0 && per > 0 {
		p := uint64(per)
		out.CPU = &specs.LinuxCPU{Quota: &q, Period: &p}
	}
	if out.Memory == nil && out.CPU == nil {
		return nil
	}
	return &out
}
