//go:build linux

package dockerapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/berth-dev/berth/internal/image/remote"
	"github.com/moby/moby/api/types/registry"
)

// registryAuth is docker's X-Registry-Auth, decoded.
type registryAuth struct {
	Username      string `json:"username"`
	Password      string `json:"password"`
	ServerAddress string `json:"serveraddress"`
	IdentityToken string `json:"identitytoken"`
}

// withRegistryAuth reads the request's X-Registry-Auth into its context
// (remote.WithRequestCredentials): the server's registry client uses it
// for that request before the server's own credentials.
func withRegistryAuth(r *http.Request) (context.Context, error) {
	h := r.Header.Get("X-Registry-Auth")
	if h == "" {
		return r.Context(), nil
	}
	data, err := base64.URLEncoding.DecodeString(h)
	if err != nil {
		if data, err = base64.StdEncoding.DecodeString(h); err != nil {
			return nil, httpError{http.StatusBadRequest, "X-Registry-Auth: not base64"}
		}
	}
	var a registryAuth
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, httpError{http.StatusBadRequest, "X-Registry-Auth: not docker's auth object"}
	}
	switch {
	case a.IdentityToken != "":
		return remote.WithRequestCredentials(r.Context(), a.ServerAddress, "", a.IdentityToken), nil
	case a.Username != "":
		return remote.WithRequestCredentials(r.Context(), a.ServerAddress, a.Username, a.Password), nil
	}
	return r.Context(), nil // docker sends "{}" for anonymous
}

// pullImage is POST /images/create?fromImage=NAME&tag=TAG: a pull with
// docker's JSON progress messages, one a line; an error after the headers
// went is an errorDetail message (the CLI prints it and fails).
func (s *Server) pullImage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	from := q.Get("fromImage")
	if from == "" {
		if q.Get("fromSrc") != "" {
			return s.importImage(w, r)
		}
		return httpError{http.StatusBadRequest, "fromImage is required"}
	}
	name := from
	if tag := q.Get("tag"); tag != "" {
		if strings.HasPrefix(tag, "sha256:") {
			name += "@" + tag
		} else {
			name += ":" + tag
		}
	}
	ref, err := reference.Parse(name)
	if err != nil {
		return httpError{http.StatusBadRequest, err.Error()}
	}
	ctx, err := withRegistryAuth(r)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	out := &jsonStream{w: w}
	out.send(map[string]any{"status": "Pulling from " + ref.FamiliarName(), "id": tagOrDigest(ref)})
	seen := map[string]image.Phase{}
	var mu sync.Mutex
	last := map[string]time.Time{}
	progress := func(e image.Event) {
		mu.Lock()
		defer mu.Unlock()
		id := shortDigest(e.ID)
		prev := seen[id]
		seen[id] = e.Phase
		switch e.Phase {
		case image.PhaseWaiting:
			if prev == "" {
				out.send(map[string]any{"status": "Waiting", "progressDetail": map[string]any{}, "id": id})
			}
		case image.PhaseDownloading:
			if prev == "" || prev == image.PhaseWaiting {
				out.send(map[string]any{"status": "Pulling fs layer", "progressDetail": map[string]any{}, "id": id})
			}
			// Docker's clients redraw; a line every 100 ms is plenty.
			if time.Since(last[id]) > 100*time.Millisecond {
				last[id] = time.Now()
				out.send(map[string]any{"status": "Downloading", "progressDetail": map[string]any{"current": e.Current, "total": e.Total}, "id": id})
			}
		case image.PhaseExtracting:
			if prev != image.PhaseExtracting {
				out.send(map[string]any{"status": "Download complete", "progressDetail": map[string]any{}, "id": id})
				out.send(map[string]any{"status": "Extracting", "progressDetail": map[string]any{"current": e.Current, "total": e.Total}, "id": id})
			}
		case image.PhaseExists:
			out.send(map[string]any{"status": "Already exists", "progressDetail": map[string]any{}, "id": id})
		case image.PhaseDone:
			out.send(map[string]any{"status": "Pull complete", "progressDetail": map[string]any{}, "id": id})
		}
	}
	had := map[string]bool{}
	if recs, err := s.e.Images().Get(ctx, ref.String()); err == nil {
		for _, rec := range recs {
			had[rec.Target.Digest.String()] = true
		}
	}
	rec, err := s.e.Images().Pull(ctx, ref.String(), image.PullOptions{Platform: q.Get("platform"), Progress: progress})
	if err != nil {
		msg := err.Error()
		out.send(map[string]any{"errorDetail": map[string]any{"message": msg}, "error": msg})
		return nil
	}
	out.send(map[string]any{"status": "Digest: " + rec.Target.Digest.String()})
	status := "Downloaded newer image for "
	if had[rec.Target.Digest.String()] {
		status = "Image is up to date for "
	}
	out.send(map[string]any{"status": "Status: " + status + ref.Familiar()})
	return nil
}

func tagOrDigest(ref reference.Reference) string {
	if t := ref.Tag(); t != "" {
		return t
	}
	return ref.String()
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// jsonStream writes one JSON object a line, flushed, from any goroutine.
type jsonStream struct {
	mu sync.Mutex
	w  http.ResponseWriter
}

func (j *jsonStream) send(v any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"error":%q}`, err.Error()))
	}
	j.w.Write(append(b, '\r', '\n'))
	if fl, ok := j.w.(http.Flusher); ok {
		fl.Flush()
	}
}

// importImage is POST /images/create?fromSrc=-: the body, a root file
// system tarball (plain, gzip or zstd), made an image of one layer, named
// repo[:tag] if given, its config edited by the changes (Dockerfile
// instructions); the answer is docker's: one status message with the
// new image's ID. A URL as fromSrc (dockerd fetches it) is refused.
func (s *Server) importImage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if src := q.Get("fromSrc"); src != "-" {
		return httpError{http.StatusNotImplemented, "berth does not fetch " + src + ": import the tarball as the request's body (fromSrc=-; docker import FILE)"}
	}
	name := q.Get("repo")
	if name != "" {
		if tag := q.Get("tag"); tag != "" {
			name += ":" + tag
		}
		if _, err := reference.Parse(name); err != nil {
			return httpError{http.StatusBadRequest, err.Error()}
		}
	}
	id, err := s.e.Import(r.Context(), r.Body, engine.ImportOptions{Reference: name, Message: q.Get("message"), Changes: q["changes"], Platform: q.Get("platform")})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	(&jsonStream{w: w}).send(map[string]any{"status": id})
	return nil
}

// distributionInspect is GET /distribution/{name}/json: what the
// registry holds under name (its descriptor and platforms), asked with
// the request's X-Registry-Auth, nothing pulled (compose's
// --resolve-image-digests and publish use it).
func (s *Server) distributionInspect(w http.ResponseWriter, r *http.Request) error {
	name, ok := strings.CutSuffix(r.PathValue("rest"), "/json")
	if !ok || name == "" {
		return httpError{http.StatusNotFound, "page not found"}
	}
	ctx, err := withRegistryAuth(r)
	if err != nil {
		return err
	}
	desc, platforms, err := s.e.Images().Distribution(ctx, name)
	if err != nil {
		switch {
		case errors.Is(err, remote.ErrUnauthorized):
			return httpError{http.StatusUnauthorized, err.Error()}
		case errors.Is(err, remote.ErrNotFound):
			return httpError{http.StatusNotFound, err.Error()}
		}
		return err
	}
	return writeJSON(w, http.StatusOK, registry.DistributionInspect{Descriptor: desc, Platforms: platforms})
}
