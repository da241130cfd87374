//go:build linux

package cri

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/berth-dev/berth/internal/image/remote"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListImages lists the store's images, one entry an image ID with all of
// its names; a filter keeps the image its reference resolves to.
func (s *Server) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	svc := s.e.Images()
	recs, err := svc.List(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	if ref := req.GetFilter().GetImage().GetImage(); ref != "" {
		match, err := svc.Get(ctx, ref)
		if errors.Is(err, image.ErrNotFound) {
			return &runtimeapi.ListImagesResponse{}, nil
		}
		if err != nil {
			return nil, grpcError(err)
		}
		keep := map[string]bool{}
		for _, m := range match {
			keep[m.ID()] = true
		}
		recs = filterRecords(recs, func(r image.Record) bool { return keep[r.ID()] })
	}
	return &runtimeapi.ListImagesResponse{Images: s.criImages(recs)}, nil
}

// ImageStatus describes one image; an unknown one is no error but an
// empty answer, as the CRI asks.
func (s *Server) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, status.Error(codes.InvalidArgument, "ImageStatus: the image spec names no image")
	}
	svc := s.e.Images()
	match, err := svc.Get(ctx, ref)
	if errors.Is(err, image.ErrNotFound) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, grpcError(err)
	}
	// Every name of the image, not only the one asked by.
	all, err := svc.List(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	id := match[0].ID()
	imgs := s.criImages(filterRecords(all, func(r image.Record) bool { return r.ID() == id }))
	if len(imgs) == 0 {
		return &runtimeapi.ImageStatusResponse{}, nil // removed meanwhile
	}
	resp := &runtimeapi.ImageStatusResponse{Image: imgs[0]}
	if req.GetVerbose() {
		cfg, err := svc.Config(match[0])
		if err != nil {
			return nil, grpcError(err)
		}
		info, err := json.Marshal(map[string]any{"imageSpec": cfg, "manifest": match[0].Manifest, "target": match[0].Target, "diffIDs": match[0].DiffIDs})
		if err != nil {
			return nil, grpcError(err)
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// PullImage pulls with the request's credentials (the kubelet's, from
// image pull secrets or a credential provider) before berth's own, and
// answers the image ID.
func (s *Server) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	name := req.GetImage().GetImage()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "PullImage: the image spec names no image")
	}
	ctx, err := withAuth(ctx, req.GetAuth())
	if err != nil {
		return nil, err
	}
	start := time.Now()
	rec, err := s.e.Images().Pull(ctx, name, image.PullOptions{})
	if err != nil {
		return nil, grpcError(fmt.Errorf("pull %s: %w", name, err))
	}
	s.log.Info("cri: pulled", "image", rec.Name, "id", rec.ID(), "took", time.Since(start).Round(time.Millisecond))
	return &runtimeapi.PullImageResponse{ImageRef: rec.ID()}, nil
}

// RemoveImage removes an image with every name it has, as the CRI asks
// (by one tag removes all); an image already gone is no error.
func (s *Server) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, status.Error(codes.InvalidArgument, "RemoveImage: the image spec names no image")
	}
	svc := s.e.Images()
	match, err := svc.Get(ctx, ref)
	if errors.Is(err, image.ErrNotFound) {
		return &runtimeapi.RemoveImageResponse{}, nil
	}
	if err != nil {
		return nil, grpcError(err)
	}
	// By ID and forced: all names go, and containers that still use it
	// keep their snapshots (the kubelet removes only unused images).
	if _, err := svc.Remove(ctx, match[0].ID(), true); err != nil && !errors.Is(err, image.ErrNotFound) {
		return nil, grpcError(fmt.Errorf("remove image %s: %w", ref, err))
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}

// ImageFsInfo reports the store's usage: blobs and unpacked layers, and
// the layers' entries as inodes. Containers' writable layers live on the
// same filesystem under the same root.
func (s *Server) ImageFsInfo(ctx context.Context, _ *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	svc := s.e.Images()
	u, err := svc.DiskUsage(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	layers, err := svc.Snapshots().List()
	if err != nil {
		return nil, grpcError(err)
	}
	var inodes uint64
	for _, l := range layers {
		inodes += uint64(l.Entries)
	}
	usage := &runtimeapi.FilesystemUsage{
		Timestamp:  time.Now().UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: svc.Snapshots().Root()},
		UsedBytes:  &runtimeapi.UInt64Value{Value: uint64(u.BlobBytes + u.LayerBytes)},
		InodesUsed: &runtimeapi.UInt64Value{Value: inodes},
	}
	return &runtimeapi.ImageFsInfoResponse{
		ImageFilesystems:     []*runtimeapi.FilesystemUsage{usage},
		ContainerFilesystems: []*runtimeapi.FilesystemUsage{usage},
	}, nil
}

func filterRecords(recs []image.Record, keep func(image.Record) bool) []image.Record {
	var out []image.Record
	for _, r := range recs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// criImages folds records (one a name) into CRI images (one an ID), with
// fully qualified tags and digests as containerd gives them, in a stable
// order.
func (s *Server) criImages(recs []image.Record) []*runtimeapi.Image {
	svc := s.e.Images()
	byID := map[string]*runtimeapi.Image{}
	var order []string
	for _, rec := range recs {
		img, ok := byID[rec.ID()]
		if !ok {
			img = &runtimeapi.Image{Id: rec.ID(), Size: uint64(svc.Size(rec)), Spec: &runtimeapi.ImageSpec{Image: rec.ID()}}
			if cfg, err := svc.Config(rec); err == nil {
				img.Uid, img.Username = imageUser(cfg.Config.User)
			}
			byID[rec.ID()] = img
			order = append(order, rec.ID())
		}
		ref, err := reference.Parse(rec.Name)
		if err != nil {
			continue
		}
		if ref.Tag() != "" {
			img.RepoTags = appendNew(img.RepoTags, ref.Name()+":"+ref.Tag())
		}
		if d := rec.Target.Digest; d != "" {
			img.RepoDigests = appendNew(img.RepoDigests, ref.Name()+"@"+d.String())
		}
	}
	sort.Strings(order)
	out := make([]*runtimeapi.Image, 0, len(order))
	for _, id := range order {
		sort.Strings(byID[id].RepoTags)
		sort.Strings(byID[id].RepoDigests)
		out = append(out, byID[id])
	}
	return out
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// imageUser splits an image config's User as the kubelet wants it: a
// numeric user (with or without a group) is a uid, anything else a name
// (which the kubelet refuses for runAsNonRoot, as it cannot check it).
func imageUser(user string) (*runtimeapi.Int64Value, string) {
	u, _, _ := strings.Cut(user, ":")
	if u == "" {
		return nil, ""
	}
	if n, err := strconv.ParseInt(u, 10, 64); err == nil {
		return &runtimeapi.Int64Value{Value: n}, ""
	}
	return nil, u
}

// withAuth puts a pull's credentials into its context.
func withAuth(ctx context.Context, a *runtimeapi.AuthConfig) (context.Context, error) {
	if a == nil {
		return ctx, nil
	}
	username, secret := a.GetUsername(), a.GetPassword()
	switch {
	case a.GetIdentityToken() != "":
		username, secret = "", a.GetIdentityToken()
	case a.GetAuth() != "" && username == "":
		dec, err := base64.StdEncoding.DecodeString(a.GetAuth())
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, "PullImage: auth.auth is not base64 of user:password")
		}
		u, p, ok := strings.Cut(string(dec), ":")
		if !ok {
			return nil, status.Error(codes.InvalidArgument, "PullImage: auth.auth is not base64 of user:password")
		}
		username, secret = u, p
	case a.GetRegistryToken() != "" && username == "":
		return nil, status.Error(codes.InvalidArgument, "PullImage: auth.registry_token (a raw bearer token) is not supported by berth; give username/password or identity_token")
	}
	if username == "" && secret == "" {
		return ctx, nil
	}
	return remote.WithRequestCredentials(ctx, a.GetServerAddress(), username, secret), nil
}
