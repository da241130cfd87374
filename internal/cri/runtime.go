//go:build linux

package cri

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The CRI version this server speaks, and the name it gives itself.
const (
	apiVersion  = "v1"
	runtimeName = "berth"
)

// Version answers berth's name and version and the CRI's.
func (s *Server) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: runtimeName, RuntimeVersion: s.version, RuntimeApiVersion: apiVersion}, nil
}

// Status reports the runtime ready, the network ready when CNI can set
// up a pod's network, and the runtime handlers: the default ("" and
// "runc", the linux isolation) and each other isolation by its name.
func (s *Server) Status(_ context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	network := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	choice, err := s.net.choose()
	if err != nil {
		network.Status, network.Reason, network.Message = false, "NetworkPluginNotReady", err.Error()
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true}, network,
		}},
		RuntimeHandlers: s.handlers(),
		Features:        &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	if req.GetVerbose() {
		s.mu.Lock()
		cidr := s.podCIDR
		s.mu.Unlock()
		// stateDir: where the containers' files are (critest probes
		// idmapped mounts on its parent, as for containerd's).
		podNet := map[string]any{"mode": s.net.Mode, "confDir": s.net.ConfDir}
		if err == nil {
			maps.Copy(podNet, choice.describe())
		}
		if id, ip, ok := s.e.WarmPodNetwork(); ok {
			// The namespace attached ahead of the next pod, and
			// that pod's ID and address to be.
			podNet["warm"] = map[string]string{"id": id, "ip": ip}
		}
		info, _ := json.Marshal(map[string]any{"isolations": s.e.Isolations(), "podCIDR": cidr, "apiVersion": apiVersion,
			"stateDir": filepath.Join(s.e.Root(), "snapshots"), "podNetwork": podNet})
		resp.Info = map[string]string{"config": string(info)}
	}
	return resp, nil
}

// handlers are the runtime handlers a RuntimeClass can name, with what
// pods under them honour (the kubelet admits pods by these): recursive
// read-only mounts (mount_setattr, kernel 5.12 and later) and pod user
// namespaces under the linux isolation.
func (s *Server) handlers() []*runtimeapi.RuntimeHandler {
	linux := func(name string) *runtimeapi.RuntimeHandler {
		return &runtimeapi.RuntimeHandler{Name: name, Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true, UserNamespaces: true}}
	}
	out := []*runtimeapi.RuntimeHandler{linux(""), linux("runc")}
	for _, iso := range s.e.Isolations() {
		if iso == "linux" || iso == "runc" {
			continue
		}
		// A VM's pods: one VM each, holding their containers; no
		// user namespaces (the VM is the boundary).
		out = append(out, &runtimeapi.RuntimeHandler{Name: iso, Features: &runtimeapi.RuntimeHandlerFeatures{}})
	}
	return out
}

// RuntimeConfig answers the cgroup driver: berth manages cgroups itself
// (cgroupfs), as the kubelet must then too.
func (s *Server) RuntimeConfig(context.Context, *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS}}, nil
}

// UpdateRuntimeConfig takes the node's pod CIDR, which pod networks will
// allocate from.
func (s *Server) UpdateRuntimeConfig(_ context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	if cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr(); cidr != "" {
		s.mu.Lock()
		s.podCIDR = cidr
		s.mu.Unlock()
		s.log.Info("cri: pod CIDR", "cidr", cidr)
		if s.net.Template != "" {
			wrote, skipped, err := s.net.renderTemplate(cidr)
			for _, sk := range skipped {
				s.log.Warn("cri: a CNI configuration file does not load: the template is rendered beside it", "err", sk)
			}
			if err != nil {
				code := codes.InvalidArgument
				if errors.Is(err, errTemplateWrite) {
					code = codes.Internal
				}
				return nil, status.Errorf(code, "UpdateRuntimeConfig: the CNI configuration from the template: %v", err)
			}
			if wrote {
				s.log.Info("cri: wrote the CNI configuration from the template", "file", filepath.Join(s.net.ConfDir, TemplateFile), "cidr", cidr)
			} else {
				s.log.Info("cri: the CNI configuration directory has a configuration: the template is not rendered", "dir", s.net.ConfDir)
			}
		}
	}
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}
