//go:build linux

// Package cri serves the Kubernetes Container Runtime Interface (CRI v1,
// k8s.io/cri-api) over berth's engine and image store: what `berth serve`
// listens with on its CRI socket, so that a kubelet, crictl and critest
// can use berth as a node's runtime. There is one image store: an image the
// kubelet pulls is the one `berth images` lists.
//
// The image service is whole. Of the runtime service, pods and
// containers (sandbox.go, containers.go) are the engine's pods and
// containers in the engine's CRI namespace; stats, metrics, events and the
// streaming server (exec, attach, port-forward) are served too; what is
// not (checkpoints, pod resource updates) answers codes.Unimplemented with
// a message, never a hang.
//
// Invariants: every error leaves a handler through grpcError, which maps
// berth's error categories (wrapped with %w below) onto the codes
// containerd's CRI plugin gives for them; a handler holds no lock of its
// own across an engine call.
package cri

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/berth-dev/berth/internal/image/remote"
	"github.com/berth-dev/berth/internal/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Server is the CRI over one engine.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	e       *engine.Engine
	version string // berth's
	log     *slog.Logger
	net     PodNetwork
	streams *StreamServer // Exec, Attach, PortForward (streaming.go)

	mu      sync.Mutex
	podCIDR string // from UpdateRuntimeConfig
}

// New returns a CRI server over e whose pods join the network pn
// chooses; version is berth's.
func New(e *engine.Engine, version string, log *slog.Logger, pn PodNetwork) *Server {
	return &Server{e: e, version: version, log: log, net: pn}
}

// Register adds both CRI services to g.
func (s *Server) Register(g *grpc.Server) {
	runtimeapi.RegisterRuntimeServiceServer(g, s)
	runtimeapi.RegisterImageServiceServer(g, s)
}

// grpcError maps an error onto the code containerd's CRI plugin gives for
// its category; an error that is already a status keeps its code.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, image.ErrNotFound), errors.Is(err, remote.ErrNotFound), errors.Is(err, store.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, reference.ErrInvalid), errors.Is(err, reference.ErrInvalidDigest),
		errors.Is(err, image.ErrInvalid), errors.Is(err, remote.ErrInvalid), errors.Is(err, engine.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, remote.ErrUnauthorized):
		code = codes.PermissionDenied
	case errors.Is(err, remote.ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, image.ErrInUse), errors.Is(err, engine.ErrInvalidState):
		code = codes.FailedPrecondition
	}
	return status.Error(code, err.Error())
}

// UnaryLogger logs each call's failure (and, at debug, each call) with its
// method, code and the time it took.
func (s *Server) UnaryLogger(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	if trace.On {
		trace.Phase("cri " + info.FullMethod)
		defer trace.Phase("cri-done " + info.FullMethod)
	}
	resp, err := handler(ctx, req)
	took := time.Since(start)
	if err != nil && ctx.Err() != nil {
		// The caller's deadline or cancel came first, and is the answer:
		// a pull cut short by it otherwise reads as the registry being
		// unreachable (critest's 1 ms pull wants DeadlineExceeded).
		code := codes.Canceled
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			code = codes.DeadlineExceeded
		}
		if st, _ := status.FromError(err); st.Code() != code {
			err = status.Error(code, err.Error())
		}
	}
	if err != nil {
		st, _ := status.FromError(err)
		if st.Code() == codes.Unimplemented {
			s.log.Debug("cri", "method", info.FullMethod, "code", st.Code(), "err", st.Message())
		} else {
			s.log.Warn("cri", "method", info.FullMethod, "code", st.Code(), "err", st.Message(), "took", took)
		}
	} else {
		s.log.Debug("cri", "method", info.FullMethod, "took", took)
	}
	return resp, err
}
