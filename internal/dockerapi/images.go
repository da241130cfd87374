//go:build linux

package dockerapi

import (
	"net/http"
	"strings"

	"github.com/berth-dev/berth/internal/image"
	mobyimage "github.com/moby/moby/api/types/image"
)

// imageHistory is GET /images/{name}/history: the config's history, newest
// first, with each layer's unpacked size; only the newest step names the
// image (docker's "<missing>" for the others).
func (s *Server) imageHistory(w http.ResponseWriter, r *http.Request, name string) error {
	svc := s.e.Images()
	recs, err := svc.Get(r.Context(), name)
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			return httpError{http.StatusNotFound, "No such image: " + name}
		}
		return err
	}
	rec := recs[0]
	cfg, err := svc.Config(rec)
	if err != nil {
		return err
	}
	out := []mobyimage.HistoryResponseItem{}
	layer := len(rec.DiffIDs) - 1
	for i := len(cfg.History) - 1; i >= 0; i-- {
		h := cfg.History[i]
		item := mobyimage.HistoryResponseItem{ID: "<missing>", CreatedBy: h.CreatedBy, Comment: h.Comment, Tags: []string{}}
		if !h.EmptyLayer && layer >= 0 {
			if info, err := svc.Snapshots().Stat(rec.DiffIDs[layer]); err == nil {
				item.Size = info.Size
			}
			layer--
		}
		if i == len(cfg.History)-1 {
			item.ID = rec.ID()
		}
		if h.Created != nil {
			item.Created = h.Created.Unix()
		}
		out = append(out, item)
	}
	return writeJSON(w, http.StatusOK, out)
}

// saveImages is GET /images/get?names=… and GET /images/{name}/get: a
// docker-archive (what docker load reads) of the images.
func (s *Server) saveImages(w http.ResponseWriter, r *http.Request, names []string) error {
	if len(names) == 0 {
		return httpError{http.StatusBadRequest, "names is required"}
	}
	for _, n := range names {
		if _, err := s.e.Images().Get(r.Context(), n); err != nil {
			if statusOf(err) == http.StatusNotFound {
				return httpError{http.StatusNotFound, "No such image: " + n}
			}
			return err
		}
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := s.e.Images().Save(r.Context(), w, names, image.DockerArchive); err != nil && r.Context().Err() == nil {
		s.log.Warn("save", "images", names, "err", err)
	}
	return nil
}

// loadImages is POST /images/load: a docker or OCI archive, answered with
// docker's JSON stream of what was loaded.
func (s *Server) loadImages(w http.ResponseWriter, r *http.Request) error {
	recs, err := s.e.Images().Load(r.Context(), r.Body, image.LoadOptions{})
	if err != nil {
		return httpError{http.StatusBadRequest, err.Error()}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	out := &jsonStream{w: w}
	for _, rec := range recs {
		out.send(map[string]any{"stream": "Loaded image: " + familiar(rec.Name) + "\n"})
	}
	return nil
}

func familiar(name string) string {
	name = strings.TrimPrefix(name, "docker.io/")
	return strings.TrimPrefix(name, "library/")
}
