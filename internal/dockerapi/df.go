//go:build linux

package dockerapi

import (
	"net/http"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/moby/moby/api/types/container"
	mobyimage "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/volume"
)

// diskUsageResponse is GET /system/df in the shape of the API versions
// served (1.24 to APIVersion, 1.47: lists of objects with their sizes;
// the per-type summaries came with 1.52).
type diskUsageResponse struct {
	LayersSize int64
	Images     []mobyimage.Summary
	Containers []container.Summary
	Volumes    []volume.Volume
	BuildCache []any
}

// diskUsage is GET /system/df: images with the containers that use each,
// containers with their writable layers' sizes, volumes with theirs.
func (s *Server) diskUsage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	out := diskUsageResponse{Images: []mobyimage.Summary{}, Containers: []container.Summary{}, Volumes: []volume.Volume{}, BuildCache: []any{}}
	u, err := s.e.Images().DiskUsage(ctx)
	if err != nil {
		return err
	}
	out.LayersSize = u.LayerBytes
	if out.Images, err = s.imageSummaries(ctx); err != nil {
		return err
	}
	list, err := s.e.List(ctx)
	if err != nil {
		return err
	}
	users := map[string]int64{}
	now := time.Now()
	for i := len(list) - 1; i >= 0; i-- {
		c := list[i]
		users[c.Image]++
		sum := s.views.Summary(ctx, s.e, c, now)
		sum.SizeRw = engine.DirSize(s.e.ContainerPaths(c.ID).Upper)
		out.Containers = append(out.Containers, sum)
	}
	for i := range out.Images {
		out.Images[i].Containers = users[out.Images[i].ID]
	}
	vols, volUsers, err := s.e.Volumes(ctx)
	if err != nil {
		return err
	}
	for _, v := range vols {
		dv := s.views.Volume(v)
		dv.UsageData = &volume.UsageData{Size: engine.DirSize(v.Mountpoint), RefCount: int64(len(volUsers[v.Name]))}
		out.Volumes = append(out.Volumes, dv)
	}
	return writeJSON(w, http.StatusOK, out)
}
