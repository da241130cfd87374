//go:build linux

package dockerapi

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/archive"
	"github.com/berth-dev/berth/internal/network"
	"github.com/moby/moby/api/types/container"
	mobyimage "github.com/moby/moby/api/types/image"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
)

// archiveGet is GET (and HEAD) /containers/{id}/archive?path=P: P as a
// tar stream, with docker's X-Docker-Container-Path-Stat header (the
// first entry's name, size, mode, mtime and link target, base64 JSON),
// which the docker CLI reads before the body to name what it writes.
func (s *Server) archiveGet(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	p := r.URL.Query().Get("path")
	if p == "" {
		return httpError{http.StatusBadRequest, "path is required"}
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := s.e.CopyFromContainer(r.Context(), c.ID, p, "-", engine.CopyOptions{}, pw)
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	// Read the first header through a copy of the bytes it took.
	var seen bytes.Buffer
	tr := tar.NewReader(io.TeeReader(pr, &seen))
	hdr, err := tr.Next()
	if err != nil {
		if strings.Contains(err.Error(), "no such file") || strings.Contains(err.Error(), "not exist") {
			return httpError{http.StatusNotFound, "Could not find the file " + p + " in container " + r.PathValue("id")}
		}
		return err
	}
	stat := map[string]any{"name": strings.TrimSuffix(hdr.Name, "/"), "size": hdr.Size,
		"mode": fileMode(hdr), "mtime": hdr.ModTime.UTC().Format("2006-01-02T15:04:05.999999999Z07:00"), "linkTarget": hdr.Linkname}
	b, _ := json.Marshal(stat)
	w.Header().Set("X-Docker-Container-Path-Stat", base64.StdEncoding.EncodeToString(b))
	w.Header().Set("Content-Type", "application/x-tar")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	w.Write(seen.Bytes())
	io.Copy(w, pr)
	return nil
}

// fileMode is Go's os.FileMode of a tar entry, as docker's stat carries
// it (type bits included).
func fileMode(h *tar.Header) uint32 {
	m := os.FileMode(h.Mode & 0o777)
	switch h.Typeflag {
	case tar.TypeDir:
		m |= os.ModeDir
	case tar.TypeSymlink:
		m |= os.ModeSymlink
	case tar.TypeChar:
		m |= os.ModeDevice | os.ModeCharDevice
	case tar.TypeBlock:
		m |= os.ModeDevice
	case tar.TypeFifo:
		m |= os.ModeNamedPipe
	}
	if h.Mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if h.Mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if h.Mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return uint32(m)
}

// archivePut is PUT /containers/{id}/archive?path=DIR: a tar stream,
// plain or compressed (docker takes gzip, bzip2 and xz; testcontainers
// sends gzip), extracted into DIR, owned by the container's root unless
// copyUIDGID.
func (s *Server) archivePut(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	p := r.URL.Query().Get("path")
	if p == "" {
		return httpError{http.StatusBadRequest, "path is required"}
	}
	tr, err := decompressed(r.Body)
	if err != nil {
		return err
	}
	defer tr.Close()
	if _, err := s.e.CopyToContainer(r.Context(), c.ID, "-", p, engine.CopyOptions{Archive: boolParam(r, "copyUIDGID")}, tr); err != nil {
		if strings.Contains(err.Error(), "no such file") || strings.Contains(err.Error(), "not exist") {
			return httpError{http.StatusNotFound, err.Error()}
		}
		if strings.Contains(err.Error(), "not a directory") {
			return httpError{http.StatusBadRequest, err.Error()}
		}
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) topContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	var args []string
	if a := r.URL.Query().Get("ps_args"); a != "" {
		args = strings.Fields(a)
	}
	titles, rows, err := s.e.Top(r.Context(), c.ID, args)
	if err != nil {
		return err
	}
	if rows == nil {
		rows = [][]string{}
	}
	return writeJSON(w, http.StatusOK, container.TopResponse{Titles: titles, Processes: rows})
}

func (s *Server) containerChanges(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	changes, err := s.e.Diff(r.Context(), c.ID)
	if err != nil {
		return err
	}
	out := []container.FilesystemChange{}
	for _, ch := range changes {
		out = append(out, container.FilesystemChange{Path: ch.Path, Kind: container.ChangeType(ch.Kind)})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) exportContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := s.e.Export(r.Context(), c.ID, w); err != nil && r.Context().Err() == nil {
		s.log.Warn("export", "container", c.ID, "err", err)
	}
	return nil
}

// updateContainer is POST /containers/{id}/update: the resources a
// create takes and the restart policy, at once on a running container;
// what berth cannot change is refused by name.
func (s *Server) updateContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	var req container.UpdateConfig
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	var o engine.UpdateOptions
	if req.Memory != 0 {
		o.Memory = &req.Memory
	}
	if req.NanoCPUs != 0 {
		cpus := float64(req.NanoCPUs) / 1e9
		o.CPUs = &cpus
	}
	if req.PidsLimit != nil {
		o.PidsLimit = req.PidsLimit
	}
	if req.RestartPolicy.Name != "" {
		o.Restart = &engine.RestartPolicy{Name: string(req.RestartPolicy.Name), MaximumRetryCount: req.RestartPolicy.MaximumRetryCount}
	}
	// docker's update: a zero value leaves the setting as it is.
	for _, f := range []struct {
		v   int64
		dst **int64
	}{{req.CPUShares, &o.CPUShares}, {req.CPUPeriod, &o.CPUPeriod}, {req.CPUQuota, &o.CPUQuota}, {req.MemorySwap, &o.MemorySwap}, {req.MemoryReservation, &o.MemoryReservation}} {
		if f.v != 0 {
			v := f.v
			*f.dst = &v
		}
	}
	if req.CpusetCpus != "" {
		o.CpusetCpus = &req.CpusetCpus
	}
	if req.CpusetMems != "" {
		o.CpusetMems = &req.CpusetMems
	}
	if req.BlkioWeight != 0 {
		o.BlkioWeight = &req.BlkioWeight
	}
	var other []string
	if req.CPURealtimePeriod != 0 || req.CPURealtimeRuntime != 0 {
		other = append(other, "CpuRealtime*")
	}
	if len(req.BlkioWeightDevice)+len(req.BlkioDeviceReadBps)+len(req.BlkioDeviceWriteBps)+len(req.BlkioDeviceReadIOps)+len(req.BlkioDeviceWriteIOps) > 0 {
		other = append(other, "BlkioDevice*")
	}
	if req.MemorySwappiness != nil && *req.MemorySwappiness != -1 {
		other = append(other, "MemorySwappiness")
	}
	if len(other) > 0 {
		return httpError{http.StatusBadRequest, "berth does not update " + strings.Join(other, ", ")}
	}
	warnings, err := s.e.UpdateWithWarnings(r.Context(), c.ID, o)
	if err != nil {
		return err
	}
	if warnings == nil {
		warnings = []string{}
	}
	return writeJSON(w, http.StatusOK, container.UpdateResponse{Warnings: warnings})
}

func (s *Server) pruneContainers(w http.ResponseWriter, r *http.Request) error {
	pf, err := parsePruneFilter(r, containerPruneFilterKeys)
	if err != nil {
		return err
	}
	// A container that cannot be removed is left out of the report.
	removed, reclaimed, _, err := s.e.PruneContainers(r.Context(), func(c *engine.Container) bool { return pf.match(c.Config.Labels, c.Created) })
	if err != nil {
		return err
	}
	if removed == nil {
		removed = []string{}
	}
	return writeJSON(w, http.StatusOK, container.PruneReport{ContainersDeleted: removed, SpaceReclaimed: uint64(reclaimed)})
}

func (s *Server) pruneNetworks(w http.ResponseWriter, r *http.Request) error {
	pf, err := parsePruneFilter(r, networkPruneFilterKeys)
	if err != nil {
		return err
	}
	removed, err := s.e.PruneNetworks(r.Context(), func(n *network.Config) bool { return pf.match(n.Labels, n.Created) })
	if err != nil {
		return err
	}
	if removed == nil {
		removed = []string{}
	}
	return writeJSON(w, http.StatusOK, mobynet.PruneReport{NetworksDeleted: removed})
}

func (s *Server) pruneVolumes(w http.ResponseWriter, r *http.Request) error {
	pf, err := parsePruneFilter(r, volumePruneFilterKeys)
	if err != nil {
		return err
	}
	all, err := boolFilter(pf.f, "all")
	if err != nil {
		return err
	}
	if all == -1 && versionLess(requestVersion(r), "1.42") {
		// Before API 1.42 a prune took every unused volume, named ones
		// too, as dockerd still does for such a client.
		all = 1
	}
	names, reclaimed, err := s.e.PruneVolumes(r.Context(), all == 1, func(v *engine.Volume) bool { return pf.match(v.Labels, time.Time{}) })
	if err != nil {
		return err
	}
	if names == nil {
		names = []string{}
	}
	return writeJSON(w, http.StatusOK, volume.PruneReport{VolumesDeleted: names, SpaceReclaimed: uint64(reclaimed)})
}

func (s *Server) pruneImages(w http.ResponseWriter, r *http.Request) error {
	pf, err := parsePruneFilter(r, imagePruneFilterKeys)
	if err != nil {
		return err
	}
	dangling, err := boolFilter(pf.f, "dangling")
	if err != nil {
		return err
	}
	svc := s.e.Images()
	pick := func(rec image.Record) bool {
		var labels map[string]string
		if cfg, err := svc.Config(rec); err == nil {
			labels = cfg.Config.Labels
		}
		return pf.match(labels, rec.Created)
	}
	// dangling=false is prune -a: every image no container uses.
	res, err := svc.PruneMatching(r.Context(), dangling == 0, pick)
	if err != nil {
		return err
	}
	out := mobyimage.PruneReport{ImagesDeleted: []mobyimage.DeleteResponse{}, SpaceReclaimed: uint64(res.Reclaimed)}
	for _, rm := range res.Removed {
		for _, u := range rm.Untagged {
			out.ImagesDeleted = append(out.ImagesDeleted, mobyimage.DeleteResponse{Untagged: u})
		}
		for _, d := range rm.Deleted {
			out.ImagesDeleted = append(out.ImagesDeleted, mobyimage.DeleteResponse{Deleted: d})
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// decompressed is an archive body's tar stream: gzip and zstd through the
// layer decompressor, bzip2 through the standard library's; xz is refused
// by name (no decoder is linked in).
func decompressed(body io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReader(body)
	if magic, _ := br.Peek(3); bytes.Equal(magic, []byte("BZh")) {
		return io.NopCloser(bzip2.NewReader(br)), nil
	}
	rc, _, err := archive.DecompressStream(br)
	if errors.Is(err, archive.ErrUnsupportedCompression) {
		return nil, httpError{http.StatusBadRequest, "archive: " + err.Error() + "; send a plain tar, or gzip, bzip2 or zstd"}
	}
	if err != nil {
		return nil, httpError{http.StatusBadRequest, "archive: " + err.Error()}
	}
	return rc, nil
}

// commitContainer is POST /commit?container=ID: docker commit. The
// repo and tag name the image, comment and author go into its history,
// changes are Dockerfile instructions, pause (default true) freezes a
// running container while its files are read; a config in the body is
// merged into the image's as dockerd merges it (commitMerge).
func (s *Server) commitContainer(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	ref := q.Get("container")
	c, err := s.e.Get(r.Context(), ref)
	if err != nil {
		return noSuchContainer(ref, err)
	}
	var cfg container.Config
	if err := decodeBody(r, &cfg); err != nil {
		return err
	}
	name := q.Get("repo")
	if name != "" {
		if tag := q.Get("tag"); tag != "" {
			name += ":" + tag
		}
	}
	pause := q.Get("pause") == "" || boolParam(r, "pause")
	id, err := s.e.Commit(r.Context(), c.ID, engine.CommitOptions{Reference: name, Author: q.Get("author"), Message: q.Get("comment"),
		Changes: q["changes"], Pause: pause, Edit: commitMerge(&cfg)})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, container.CommitResponse{ID: id})
}

// commitMerge is dockerd's merge of a commit request's config into the
// image's: what the request sets replaces the image's (Cmd, Entrypoint,
// User, WorkingDir, StopSignal, Healthcheck); Env entries replace the
// image's of the same name and add the rest; Labels, ExposedPorts and
// Volumes are added to.
func commitMerge(c *container.Config) func(map[string]any) error {
	b, err := json.Marshal(c)
	if err != nil {
		return func(map[string]any) error { return err }
	}
	var req map[string]any
	json.Unmarshal(b, &req)
	return func(m map[string]any) error {
		for _, k := range []string{"Cmd", "Entrypoint", "User", "WorkingDir", "StopSignal", "Healthcheck"} {
			switch v := req[k].(type) {
			case nil:
			case string:
				if v != "" {
					m[k] = v
				}
			case []any:
				if len(v) > 0 {
					m[k] = v
				}
			default:
				m[k] = v
			}
		}
		if env, _ := req["Env"].([]any); len(env) > 0 {
			old, _ := m["Env"].([]any)
			merged := append([]any(nil), old...)
			for _, e := range env {
				s, _ := e.(string)
				k, _, _ := strings.Cut(s, "=")
				replaced := false
				for i, o := range merged {
					if os, _ := o.(string); strings.HasPrefix(os, k+"=") || os == k {
						merged[i], replaced = s, true
					}
				}
				if !replaced {
					merged = append(merged, s)
				}
			}
			m["Env"] = merged
		}
		for _, k := range []string{"Labels", "ExposedPorts", "Volumes"} {
			add, _ := req[k].(map[string]any)
			if len(add) == 0 {
				continue
			}
			set, _ := m[k].(map[string]any)
			if set == nil {
				set = map[string]any{}
			}
			for key, v := range add {
				set[key] = v
			}
			m[k] = set
		}
		return nil
	}
}
