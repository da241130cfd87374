package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/events"
	"github.com/berth-dev/berth/internal/image/content"
	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/berth-dev/berth/internal/image/remote"
	"github.com/berth-dev/berth/internal/lockfile"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// RemoveResult says what a Remove did, in docker's terms.
type RemoveResult struct {
	Untagged []string `json:"untagged,omitempty"`
	Deleted  []string `json:"deleted,omitempty"` // image IDs no name refers to any more
	// Reclaimed is the bytes the garbage collection freed.
	Reclaimed int64 `json:"reclaimed"`
	// GCDeferred is set when a pull or load was running, so unreferenced
	// blobs and layers stay until the next rmi or prune.
	GCDeferred bool `json:"gcDeferred,omitempty"`
}

// Remove removes images by name or ID, as `docker rmi` does: a name loses
// that name; an ID loses every name, which without force is refused when
// there are several. An image that a container uses is refused without
// force. Blobs and layers that no image references any more are then
// garbage-collected.
func (s *Service) Remove(ctx context.Context, nameOrID string, force bool) (RemoveResult, error) {
	var res RemoveResult
	err := s.records.update(ctx, func(m map[string]Record) error {
		all := make([]Record, 0, len(m))
		for _, r := range m {
			all = append(all, r)
		}
		match, err := find(all, nameOrID)
		if err != nil {
			return err
		}
		byName := false
		if ref, err := reference.Parse(nameOrID); err == nil && match[0].Name == ref.String() {
			byName = true
		}
		id := match[0].ID()
		var names []string
		for _, r := range all {
			if r.ID() == id {
				names = append(names, r.Name)
			}
		}
		sort.Strings(names)
		remove := names
		if byName {
			remove = []string{match[0].Name}
		} else if len(names) > 1 && !force {
			return fmt.Errorf("image %s is referenced by %d names (%v): %w; remove them by name or use --force",
				short(id), len(names), names, ErrInUse)
		}
		if len(remove) == len(names) && s.opts.InUse != nil {
			users, err := s.opts.InUse(ctx, id)
			if err != nil {
				return err
			}
			if len(users) > 0 && !force {
				ids := make([]string, len(users))
				for i, u := range users {
					ids[i] = u[:min(len(u), 12)]
				}
				return fmt.Errorf("image %s is used by container(s) %s: %w; remove them first or use --force",
					short(id), strings.Join(ids, ", "), ErrInUse)
			}
		}
		for _, n := range remove {
			delete(m, n)
			res.Untagged = append(res.Untagged, n)
		}
		if len(remove) == len(names) {
			res.Deleted = append(res.Deleted, id)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	s.emitRemoval(res)
	if len(res.Deleted) > 0 {
		n, deferred, err := s.collect(ctx, false)
		res.Reclaimed, res.GCDeferred = n, deferred
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

func short(id string) string {
	if len(id) > 7+12 {
		return id[7 : 7+12]
	}
	return id
}

// PruneResult says what Prune removed.
type PruneResult struct {
	Removed   []RemoveResult `json:"removed,omitempty"`
	Reclaimed int64          `json:"reclaimed"`
}

// Prune garbage-collects unreferenced blobs, layers and the ingests of
// interrupted pulls; with all, it first removes every image no container
// uses.
func (s *Service) Prune(ctx context.Context, all bool) (PruneResult, error) {
	return s.PruneMatching(ctx, all, nil)
}

// PruneMatching is Prune whose all removes only the images pick selects
// (nil: every one); the unreferenced content goes either way.
func (s *Service) PruneMatching(ctx context.Context, all bool, pick func(Record) bool) (PruneResult, error) {
	var res PruneResult
	if all {
		recs, err := s.List(ctx)
		if err != nil {
			return res, err
		}
		for _, r := range recs {
			if pick != nil && !pick(r) {
				continue
			}
			if s.opts.InUse != nil {
				users, err := s.opts.InUse(ctx, r.ID())
				if err != nil {
					return res, err
				}
				if len(users) > 0 {
					continue
				}
			}
			rr, err := s.Remove(ctx, r.Name, false)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return res, err
			}
			res.Removed = append(res.Removed, rr)
			res.Reclaimed += rr.Reclaimed
		}
	}
	n, deferred, err := s.collect(ctx, true)
	res.Reclaimed += n
	s.events.Append(events.New(events.TypeImage, "prune", "", map[string]string{"reclaimed": strconv.FormatInt(res.Reclaimed, 10)}))
	if err == nil && deferred {
		err = errors.New("prune: a pull or load is running; run prune again when it ends")
	}
	return res, err
}

// references is what the records keep alive.
func (s *Service) references(recs []Record) (blobs, layers map[string]bool) {
	blobs, layers = map[string]bool{}, map[string]bool{}
	for _, r := range recs {
		blobs[r.Target.Digest.String()] = true
		blobs[r.Manifest.Digest.String()] = true
		blobs[r.Config.Digest.String()] = true
		for _, l := range r.Layers {
			blobs[l.Digest.String()] = true
		}
		for _, d := range r.DiffIDs {
			layers[d] = true
		}
		// An index target keeps the manifests it lists that are stored
		// (save writes them back).
		if remote.IsIndexMediaType(r.Target.MediaType) {
			if b, err := s.readBlob(r.Target.Digest.String()); err == nil {
				var idx ocispec.Index
				if json.Unmarshal(b, &idx) == nil {
					for _, m := range idx.Manifests {
						blobs[m.Digest.String()] = true
					}
				}
			}
		}
	}
	return blobs, layers
}

// collect removes blobs and layers no record references, under the GC lock
// taken exclusive. When a pull holds it, nothing is swept (deferred).
// ingests also removes every unlocked ingest (prune); otherwise only those
// untouched for a day.
func (s *Service) collect(ctx context.Context, ingests bool) (reclaimed int64, deferred bool, err error) {
	unlock, err := lockfile.TryLock(s.gcLock, true)
	if errors.Is(err, lockfile.ErrBusy) {
		return 0, true, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer unlock()
	recs, err := s.records.list(ctx)
	if err != nil {
		return 0, false, err
	}
	blobs, layers := s.references(recs)
	var errs []error
	err = s.content.Walk(func(info content.Info) error {
		if !blobs[info.Digest] {
			if err := s.content.Delete(info.Digest); err != nil && !content.IsNotFound(err) {
				errs = append(errs, err)
			} else {
				reclaimed += info.Size
			}
		}
		return nil
	})
	errs = append(errs, err)
	infos, err := s.snapshots.List()
	errs = append(errs, err)
	for _, info := range infos {
		if !layers[info.DiffID] {
			if err := s.snapshots.Remove(ctx, info.DiffID); err != nil {
				errs = append(errs, err)
			} else {
				reclaimed += info.Size
			}
		}
	}
	errs = append(errs, s.snapshots.Clean())
	age := 24 * time.Hour
	if ingests {
		age = 0
	}
	errs = append(errs, s.content.CleanIngests(age))
	return reclaimed, false, errors.Join(errs...)
}

// Usage is what `system df` prints for images.
type Usage struct {
	Images      int   `json:"images"`
	BlobBytes   int64 `json:"blobBytes"`   // compressed, in the content store
	LayerBytes  int64 `json:"layerBytes"`  // unpacked, in snapshots
	Reclaimable int64 `json:"reclaimable"` // referenced by nothing
}

// DiskUsage sums the store's sizes.
func (s *Service) DiskUsage(ctx context.Context) (Usage, error) {
	var u Usage
	recs, err := s.records.list(ctx)
	if err != nil {
		return u, err
	}
	ids := map[string]bool{}
	for _, r := range recs {
		ids[r.ID()] = true
	}
	u.Images = len(ids)
	blobs, layers := s.references(recs)
	err = s.content.Walk(func(info content.Info) error {
		u.BlobBytes += info.Size
		if !blobs[info.Digest] {
			u.Reclaimable += info.Size
		}
		return nil
	})
	if err != nil {
		return u, err
	}
	infos, err := s.snapshots.List()
	if err != nil {
		return u, err
	}
	for _, info := range infos {
		u.LayerBytes += info.Size
		if !layers[info.DiffID] {
			u.Reclaimable += info.Size
		}
	}
	return u, nil
}

// Size is the unpacked size of an image: the sum of its layers' files.
func (s *Service) Size(r Record) int64 {
	var n int64
	for _, d := range r.DiffIDs {
		if info, err := s.snapshots.Stat(d); err == nil {
			n += info.Size
		}
	}
	return n
}
