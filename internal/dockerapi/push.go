//go:build linux

package dockerapi

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/credentials"
	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/moby/moby/api/types/registry"
)

// pushImage is POST /images/{name}/push?tag=TAG: the image's layers, then
// its manifest, with docker's JSON progress lines; the request's
// X-Registry-Auth is used before the server's own credentials, as for a
// pull. Without a tag, every local tag of the repository is pushed
// (dockerd's rule; current CLIs send "latest" unless --all-tags).
func (s *Server) pushImage(w http.ResponseWriter, r *http.Request, name string) error {
	ref, err := reference.Parse(name)
	if err != nil {
		return httpError{http.StatusBadRequest, err.Error()}
	}
	ctx, err := withRegistryAuth(r)
	if err != nil {
		return err
	}
	// reference.Parse gives a name without a tag "latest": whether it
	// named one is in what the client sent.
	named := strings.Contains(name[strings.LastIndex(name, "/")+1:], ":")
	var targets []string
	switch tag := r.URL.Query().Get("tag"); {
	case tag != "" && named && ref.Tag() != tag:
		return httpError{http.StatusBadRequest, fmt.Sprintf("push: %s names a tag and the request another (%s); give the tag once", name, tag)}
	case tag != "":
		targets = []string{ref.Name() + ":" + tag}
	case named:
		targets = []string{ref.String()}
	default:
		recs, err := s.e.Images().List(ctx)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if rr, err := reference.Parse(rec.Name); err == nil && rr.Name() == ref.Name() && rr.Tag() != "" {
				targets = append(targets, rr.String())
			}
		}
	}
	var recs []image.Record
	for _, t := range targets {
		got, err := s.e.Images().Get(ctx, t)
		if err != nil {
			return httpError{http.StatusNotFound, "No such image: " + familiar(t)}
		}
		recs = append(recs, got[0])
	}
	if len(recs) == 0 {
		return httpError{http.StatusNotFound, "An image does not exist locally with the tag: " + ref.FamiliarName()}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	out := &jsonStream{w: w}
	out.send(map[string]any{"status": "The push refers to repository [" + ref.FamiliarName() + "]"})
	for i, rec := range recs {
		target, _ := reference.Parse(targets[i])
		layers := map[string]bool{}
		for _, l := range rec.Layers {
			layers[l.Digest.String()] = true
			out.send(map[string]any{"status": "Preparing", "progressDetail": map[string]any{}, "id": shortDigest(l.Digest.String())})
		}
		var mu sync.Mutex
		last := map[string]time.Time{}
		progress := func(e image.Event) {
			if !layers[e.ID] {
				return // the config: docker shows layers only
			}
			mu.Lock()
			defer mu.Unlock()
			id := shortDigest(e.ID)
			switch e.Phase {
			case image.PhaseDownloading:
				if time.Since(last[id]) > 100*time.Millisecond {
					last[id] = time.Now()
					out.send(map[string]any{"status": "Pushing", "progressDetail": map[string]any{"current": e.Current, "total": e.Total}, "id": id})
				}
			case image.PhaseExists:
				out.send(map[string]any{"status": "Layer already exists", "progressDetail": map[string]any{}, "id": id})
			case image.PhaseDone:
				out.send(map[string]any{"status": "Pushed", "progressDetail": map[string]any{}, "id": id})
			}
		}
		desc, err := s.e.Images().Push(ctx, rec.Name, target.String(), progress)
		if err != nil {
			msg := err.Error()
			out.send(map[string]any{"errorDetail": map[string]any{"message": msg}, "error": msg})
			return nil
		}
		out.send(map[string]any{"status": fmt.Sprintf("%s: digest: %s size: %d", target.Tag(), desc.Digest, desc.Size)})
		out.send(map[string]any{"progressDetail": map[string]any{}, "aux": map[string]any{"Tag": target.Tag(), "Digest": desc.Digest.String(), "Size": desc.Size}})
	}
	return nil
}

// checkAuth is POST /auth: the credentials are checked against the
// registry they name, as dockerd does for `docker login`; nothing is
// stored (the CLI keeps them and sends them with each pull and push).
func (s *Server) checkAuth(w http.ResponseWriter, r *http.Request) error {
	var req registry.AuthConfig
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	server := reference.DefaultRegistry
	if req.ServerAddress != "" {
		server = credentials.NormalizeRegistry(req.ServerAddress)
	}
	if _, err := reference.ParseRegistry(server); err != nil {
		return httpError{http.StatusBadRequest, fmt.Sprintf("login: %q is not a registry address: %v", req.ServerAddress, err)}
	}
	secret := req.Password
	if req.IdentityToken != "" {
		secret = req.IdentityToken
	}
	if err := s.e.Images().CheckLogin(r.Context(), server, req.Username, secret); err != nil {
		// dockerd's status for refused credentials; the CLI prints the
		// message.
		return httpError{http.StatusUnauthorized, fmt.Sprintf("login to %s: %v", server, err)}
	}
	return writeJSON(w, http.StatusOK, registry.AuthResponse{Status: "Login Succeeded"})
}
