//go:build linux

package dockerapi

import (
	"context"
	"net/http"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/image/reference"
	mobyimage "github.com/moby/moby/api/types/image"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
)

// listImages is GET /images/json: one row per image ID with its tags and
// digests, newest first, filtered as docker filters them (reference,
// label, dangling, before, since; another key is refused).
func (s *Server) listImages(w http.ResponseWriter, r *http.Request) error {
	f, err := filters(r)
	if err != nil {
		return err
	}
	if err := checkFilterKeys(f, imageFilterKeys); err != nil {
		return err
	}
	for _, p := range f["reference"] {
		if _, err := path.Match(p, ""); err != nil {
			return httpError{http.StatusBadRequest, "invalid reference pattern " + strconv.Quote(p) + ": " + err.Error()}
		}
	}
	dangling, err := boolFilter(f, "dangling") // -1: either
	if err != nil {
		return err
	}
	out, err := s.imageSummariesMatching(r.Context(), f["reference"])
	if err != nil {
		return err
	}
	// before and since name images (by reference or ID): the rows
	// created before, or after, each.
	var before, since []int64
	for key, at := range map[string]*[]int64{"before": &before, "since": &since} {
		for _, ref := range f[key] {
			rec, err := s.e.Images().Get(r.Context(), ref)
			if err != nil {
				return httpError{http.StatusNotFound, "No such image: " + ref}
			}
			*at = append(*at, rec[0].Created.Unix())
		}
	}
	kept := out[:0]
	for _, sum := range out {
		untagged := len(sum.RepoTags) == 0
		switch {
		case dangling == 1 && !untagged, dangling == 0 && untagged:
		case !matchLabels(sum.Labels, f["label"]):
		case slices.ContainsFunc(before, func(t int64) bool { return sum.Created >= t }):
		case slices.ContainsFunc(since, func(t int64) bool { return sum.Created <= t }):
		default:
			kept = append(kept, sum)
		}
	}
	return writeJSON(w, http.StatusOK, kept)
}

// imageSummaries are docker's image rows.
func (s *Server) imageSummaries(ctx context.Context) ([]mobyimage.Summary, error) {
	return s.imageSummariesMatching(ctx, nil)
}

// familiarMatch is docker's reference filter: the pattern (path.Match)
// against the familiar reference (busybox:latest), or against its name
// alone (busybox).
func familiarMatch(pattern string, ref reference.Reference) bool {
	full := ref.FamiliarName()
	if t := ref.Tag(); t != "" {
		full += ":" + t
	}
	if ok, _ := path.Match(pattern, full); ok {
		return true
	}
	ok, _ := path.Match(pattern, ref.FamiliarName())
	return ok
}

// imageSummariesMatching are docker's image rows; with patterns, only
// the names that match one (familiarMatch), and only the images with
// such a name.
func (s *Server) imageSummariesMatching(ctx context.Context, patterns []string) ([]mobyimage.Summary, error) {
	svc := s.e.Images()
	recs, err := svc.List(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]*mobyimage.Summary{}
	var order []string
	for _, rec := range recs {
		ref, refErr := reference.Parse(rec.Name)
		if len(patterns) > 0 && (refErr != nil || !slices.ContainsFunc(patterns, func(p string) bool { return familiarMatch(p, ref) })) {
			continue
		}
		sum, ok := byID[rec.ID()]
		if !ok {
			sum = &mobyimage.Summary{ID: rec.ID(), Created: rec.Created.Unix(), Size: svc.Size(rec), SharedSize: -1,
				Containers: -1, RepoTags: []string{}, RepoDigests: []string{}, Labels: map[string]string{}}
			if cfg, err := svc.Config(rec); err == nil && cfg.Config.Labels != nil {
				sum.Labels = cfg.Config.Labels
			}
			byID[rec.ID()] = sum
			order = append(order, rec.ID())
		}
		if refErr != nil {
			continue
		}
		if t := ref.Tag(); t != "" {
			sum.RepoTags = append(sum.RepoTags, ref.FamiliarName()+":"+t)
		}
		if d := rec.Target.Digest; d != "" {
			sum.RepoDigests = append(sum.RepoDigests, ref.FamiliarName()+"@"+d.String())
		}
	}
	out := []mobyimage.Summary{}
	for _, id := range order {
		out = append(out, *byID[id])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created > out[j].Created })
	return out, nil
}

// imageGet serves GET /images/{name}/json (names hold slashes).
func (s *Server) imageGet(w http.ResponseWriter, r *http.Request) error {
	rest := r.PathValue("rest")
	if rest == "get" {
		return s.saveImages(w, r, r.URL.Query()["names"])
	}
	if name, ok := strings.CutSuffix(rest, "/history"); ok {
		return s.imageHistory(w, r, name)
	}
	if name, ok := strings.CutSuffix(rest, "/get"); ok {
		return s.saveImages(w, r, []string{name})
	}
	name, ok := strings.CutSuffix(rest, "/json")
	if !ok {
		return httpError{http.StatusNotFound, "page not found"}
	}
	in, err := s.views.Image(r.Context(), s.e.Images(), name)
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			return httpError{http.StatusNotFound, "No such image: " + name}
		}
		return err
	}
	return writeJSON(w, http.StatusOK, in)
}

func (s *Server) listNetworks(w http.ResponseWriter, r *http.Request) error {
	m, err := s.e.Networks()
	if err != nil {
		return err
	}
	nets, err := m.List(r.Context())
	if err != nil {
		return err
	}
	f, err := filters(r)
	if err != nil {
		return err
	}
	if err := checkFilterKeys(f, networkFilterKeys); err != nil {
		return err
	}
	dangling, err := boolFilter(f, "dangling")
	if err != nil {
		return err
	}
	for _, v := range f["type"] {
		if v != "custom" && v != "builtin" {
			return httpError{http.StatusBadRequest, "invalid filter: 'type'='" + v + "'"}
		}
	}
	out := []mobynet.Inspect{}
	for _, n := range nets {
		typ := "custom"
		if n.Default {
			typ = "builtin"
		}
		if !matchLabels(n.Labels, f["label"]) || !anyOf(f["name"], func(v string) bool { return nameMatches(v, n.Name) }) ||
			!anyOf(f["id"], func(v string) bool { return strings.HasPrefix(n.ID, v) }) || !anyOf(f["driver"], func(v string) bool { return v == n.Driver }) ||
			!anyOf(f["type"], func(v string) bool { return v == typ }) || !anyOf(f["scope"], func(v string) bool { return v == "local" }) {
			continue
		}
		if dangling >= 0 {
			// Dangling: a network of the user's that no container uses
			// (the default one never is).
			users, err := s.e.NetworkUsers(r.Context(), n.Name)
			if err != nil {
				return err
			}
			if (dangling == 1) != (!n.Default && len(users) == 0) {
				continue
			}
		}
		out = append(out, s.views.Network(r.Context(), s.e, n))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) inspectNetwork(w http.ResponseWriter, r *http.Request) error {
	m, err := s.e.Networks()
	if err != nil {
		return err
	}
	n, err := m.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		// By ID (or a prefix of one) as well as by name.
		nets, lerr := m.List(r.Context())
		if lerr != nil {
			return err
		}
		for _, cand := range nets {
			if strings.HasPrefix(cand.ID, r.PathValue("id")) {
				n, err = cand, nil
				break
			}
		}
		if err != nil {
			return httpError{http.StatusNotFound, "network " + r.PathValue("id") + " not found"}
		}
	}
	return writeJSON(w, http.StatusOK, s.views.Network(r.Context(), s.e, n))
}

func (s *Server) listVolumes(w http.ResponseWriter, r *http.Request) error {
	vols, users, err := s.e.Volumes(r.Context())
	if err != nil {
		return err
	}
	f, err := filters(r)
	if err != nil {
		return err
	}
	if err := checkFilterKeys(f, volumeFilterKeys); err != nil {
		return err
	}
	dangling, err := boolFilter(f, "dangling")
	if err != nil {
		return err
	}
	out := volume.ListResponse{Volumes: []volume.Volume{}, Warnings: []string{}}
	for _, v := range vols {
		unused := len(users[v.Name]) == 0
		if !matchLabels(v.Labels, f["label"]) || !anyOf(f["name"], func(x string) bool { return nameMatches(x, v.Name) }) ||
			dangling >= 0 && (dangling == 1) != unused || !anyOf(f["driver"], func(x string) bool { return x == v.Driver || x == "local" && v.Driver == "" }) {
			continue
		}
		out.Volumes = append(out.Volumes, s.views.Volume(v))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) inspectVolume(w http.ResponseWriter, r *http.Request) error {
	v, err := s.e.GetVolume(r.Context(), r.PathValue("name"))
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			return httpError{http.StatusNotFound, "get " + r.PathValue("name") + ": no such volume"}
		}
		return err
	}
	return writeJSON(w, http.StatusOK, s.views.Volume(v))
}

// anyOf: no values, or one of them matches.
func anyOf(vals []string, ok func(string) bool) bool {
	if len(vals) == 0 {
		return true
	}
	for _, v := range vals {
		if ok(v) {
			return true
		}
	}
	return false
}

// nameMatches is docker's name filter: a regular expression (a plain
// name matches where it appears; ^web$ only web); one that does not
// compile matches nothing, as docker's.
func nameMatches(pattern, name string) bool {
	ok, err := regexp.MatchString(pattern, name)
	return err == nil && ok
}

// matchLabels: every "k" or "k=v" holds.
func matchLabels(labels map[string]string, want []string) bool {
	for _, l := range want {
		k, v, hasV := strings.Cut(l, "=")
		got, ok := labels[k]
		if !ok || hasV && got != v {
			return false
		}
	}
	return true
}
