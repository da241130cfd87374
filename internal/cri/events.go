//go:build linux

package cri

import (
	"context"

	"github.com/berth-dev/berth/internal/events"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criEventTypes maps the engine's container events (its journal, which
// every berth process writes) onto the CRI's.
var criEventTypes = map[string]runtimeapi.ContainerEventType{
	"create":  runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT,
	"start":   runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
	"die":     runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
	"destroy": runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT,
}

// GetContainerEvents streams the CRI containers' lifecycle events from
// now on (the stream the kubelet's evented PLEG reads), each with its
// pod's status and its containers' statuses as they are when sent. The
// journal is the engine's, so a container's exit recorded by its
// monitor is seen here too.
func (s *Server) GetContainerEvents(req *runtimeapi.GetEventsRequest, stream grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse]) error {
	ctx := stream.Context()
	err := s.e.Events().Follow(ctx, events.ReadOptions{}, func(m events.Message) error {
		typ, ok := criEventTypes[m.Action]
		if m.Type != events.TypeContainer || !ok {
			return nil
		}
		if _, cri := m.Actor.Attributes[metaLabel]; !cri || !events.InNamespace(m, s.e.Namespace()) {
			return nil
		}
		resp := &runtimeapi.ContainerEventResponse{ContainerId: m.Actor.ID, ContainerEventType: typ, CreatedAt: m.TimeNano}
		s.addPodStatuses(ctx, resp)
		return stream.Send(resp)
	})
	if ctx.Err() != nil {
		return nil
	}
	return grpcError(err)
}

// addPodStatuses fills in the event's pod status and its containers'
// statuses, as far as they still exist.
func (s *Server) addPodStatuses(ctx context.Context, resp *runtimeapi.ContainerEventResponse) {
	c, err := s.e.Get(ctx, resp.ContainerId)
	if err != nil || c.Pod == "" {
		return
	}
	if ps, err := s.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: c.Pod}); err == nil {
		resp.PodSandboxStatus = ps.Status
	}
	list, err := s.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: c.Pod}})
	if err != nil {
		return
	}
	for _, lc := range list.Containers {
		if st, err := s.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: lc.Id}); err == nil {
			resp.ContainersStatuses = append(resp.ContainersStatuses, st.Status)
		}
	}
}
