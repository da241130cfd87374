//go:build linux

package dockerapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/timespec"
	"github.com/moby/moby/api/types/container"
)

// Filter keys each list and prune accepts, docker's; another key is a 400
// ("invalid filter 'KEY'"), as dockerd answers, never a filter silently
// ignored.
var (
	imageFilterKeys          = []string{"reference", "label", "dangling", "before", "since"}
	containerFilterKeys      = []string{"ancestor", "before", "exited", "expose", "health", "id", "isolation", "is-task", "label", "name", "network", "publish", "since", "status", "volume"}
	networkFilterKeys        = []string{"dangling", "driver", "id", "label", "name", "scope", "type"}
	volumeFilterKeys         = []string{"dangling", "driver", "label", "name"}
	containerPruneFilterKeys = []string{"label", "label!", "until"}
	imagePruneFilterKeys     = []string{"dangling", "label", "label!", "until"}
	networkPruneFilterKeys   = []string{"label", "label!", "until"}
	volumePruneFilterKeys    = []string{"all", "label", "label!"}
)

// checkFilterKeys refuses a key not in keys.
func checkFilterKeys(f map[string][]string, keys []string) error {
	for k := range f {
		if !slices.Contains(keys, k) {
			return httpError{http.StatusBadRequest, "invalid filter '" + k + "'"}
		}
	}
	return nil
}

// boolFilter reads a filter whose values must be true/1 or false/0: -1
// absent, else 0 or 1.
func boolFilter(f map[string][]string, key string) (int, error) {
	v := -1
	for _, s := range f[key] {
		switch strings.ToLower(s) {
		case "true", "1":
			v = 1
		case "false", "0":
			v = 0
		default:
			return 0, httpError{http.StatusBadRequest, "invalid filter '" + key + "=" + s + "'"}
		}
	}
	return v, nil
}

// containerFilter is a container list's filters, parsed and checked once
// per request. Keys are ANDed, a key's values ORed, except label, whose
// values must all hold (docker's MatchKVList).
type containerFilter struct {
	f      map[string][]string
	exited []int
	// publish and expose are "PORT/PROTO" sets (ranges expanded); they
	// match the listing's ports (a published host port, an exposed
	// container port), so a container that does not run has none.
	publish, expose map[string]bool
	// images are the image IDs ancestor names; nil without ancestor.
	images map[string]bool
	// networks are the canonical names of the networks network names
	// (by name, or by a prefix of their ID); nil without network.
	networks map[string]bool
	// before and since are container IDs.
	before, since string
	isTask        int
	// defaultIsolation is the engine's default driver's name.
	defaultIsolation string
}

var (
	validStatus = []string{"created", "restarting", "running", "removing", "paused", "exited", "dead"}
	validHealth = []string{"starting", "healthy", "unhealthy", "none"}
)

func (s *Server) containerFilter(ctx context.Context, f map[string][]string) (*containerFilter, error) {
	if err := checkFilterKeys(f, containerFilterKeys); err != nil {
		return nil, err
	}
	cf := &containerFilter{f: f}
	if isos := s.e.Isolations(); len(isos) > 0 {
		cf.defaultIsolation = isos[0]
	}
	for _, v := range f["exited"] {
		code, err := strconv.Atoi(v)
		if err != nil {
			return nil, httpError{http.StatusBadRequest, "invalid filter 'exited=" + v + "': an exit code is a number"}
		}
		cf.exited = append(cf.exited, code)
	}
	for _, v := range f["status"] {
		if !slices.Contains(validStatus, v) {
			return nil, httpError{http.StatusBadRequest, "invalid filter 'status=" + v + "' (one of " + strings.Join(validStatus, ", ") + ")"}
		}
	}
	for _, v := range f["health"] {
		if !slices.Contains(validHealth, v) {
			return nil, httpError{http.StatusBadRequest, "invalid filter 'health=" + v + "' (one of " + strings.Join(validHealth, ", ") + ")"}
		}
	}
	var err error
	if cf.isTask, err = boolFilter(f, "is-task"); err != nil {
		return nil, err
	}
	for key, dst := range map[string]*map[string]bool{"publish": &cf.publish, "expose": &cf.expose} {
		for _, v := range f[key] {
			if *dst == nil {
				*dst = map[string]bool{}
			}
			if err := addPorts(*dst, key, v); err != nil {
				return nil, err
			}
		}
	}
	for key, dst := range map[string]*string{"before": &cf.before, "since": &cf.since} {
		for _, v := range f[key] {
			c, err := s.e.Get(ctx, v)
			if err != nil {
				return nil, noSuchContainer(v, err)
			}
			*dst = c.ID
		}
	}
	if _, ok := f["network"]; ok {
		cf.networks = map[string]bool{}
		var nets []*network.Config
		if m, err := s.e.Networks(); err == nil {
			nets, _ = m.List(ctx)
		}
		for _, v := range f["network"] {
			cf.networks[network.Canonical(v)] = true
			for _, n := range nets {
				if strings.HasPrefix(n.ID, v) {
					cf.networks[network.Canonical(n.Name)] = true
				}
			}
		}
	}
	if _, ok := f["ancestor"]; ok {
		// An image named by reference or ID; one that does not exist
		// matches nothing, as docker's.
		cf.images = map[string]bool{}
		for _, v := range f["ancestor"] {
			if recs, err := s.e.Images().Get(ctx, v); err == nil && len(recs) > 0 {
				cf.images[recs[0].ID()] = true
			}
		}
	}
	return cf, nil
}

// addPorts adds a publish or expose value, PORT[-END][/PROTO] (tcp when
// no protocol is given), to set.
func addPorts(set map[string]bool, key, v string) error {
	if strings.Contains(v, ":") {
		return httpError{http.StatusBadRequest, fmt.Sprintf("filter for '%s' should not contain ':': %s", key, v)}
	}
	ports, proto, _ := strings.Cut(v, "/")
	if proto == "" {
		proto = "tcp"
	}
	first, last, isRange := strings.Cut(ports, "-")
	start, err1 := strconv.ParseUint(first, 10, 16)
	end := start
	var err2 error
	if isRange {
		end, err2 = strconv.ParseUint(last, 10, 16)
	}
	if err1 != nil || err2 != nil || end < start || start == 0 {
		return httpError{http.StatusBadRequest, fmt.Sprintf("invalid filter '%s=%s': use PORT[-END][/PROTO]", key, v)}
	}
	for p := start; p <= end; p++ {
		set[strconv.FormatUint(p, 10)+"/"+strings.ToLower(proto)] = true
	}
	return nil
}

// filterAction is what a container list does with one container.
type filterAction int

const (
	include filterAction = iota
	exclude
	stop
)

// position applies before and since, as dockerd does: first, on every
// container listed newest first, whatever the other filters and whether
// it runs. Those created after before's container (and it) are left out;
// the list ends at since's.
func (cf *containerFilter) position(c *engine.Container) filterAction {
	if cf.before != "" {
		if c.ID == cf.before {
			cf.before = ""
		}
		return exclude
	}
	if cf.since != "" && c.ID == cf.since {
		return stop
	}
	return include
}

// record decides on what the record says.
func (cf *containerFilter) record(c *engine.Container) bool {
	f := cf.f
	if !anyOf(f["name"], func(v string) bool { return nameMatches(v, "/"+c.Name) || nameMatches(v, c.Name) }) ||
		!anyOf(f["id"], func(v string) bool { return strings.HasPrefix(c.ID, v) }) ||
		!matchLabels(c.Config.Labels, f["label"]) ||
		!anyOf(f["isolation"], func(v string) bool { return cf.isolationIs(c.HostConfig.Isolation, v) }) {
		return false
	}
	if len(cf.exited) > 0 && (c.Running() || c.State.StartedAt.IsZero() || !slices.Contains(cf.exited, c.State.ExitCode)) {
		return false
	}
	if cf.images != nil && !cf.images[c.Image] {
		return false
	}
	if cf.isTask == 1 { // no container of berth's is a swarm task
		return false
	}
	if !anyOf(f["volume"], func(v string) bool {
		return slices.ContainsFunc(c.Mounts, func(m engine.MountPoint) bool {
			return m.Destination == v || m.Name == v || m.Name == "" && m.Source == v
		})
	}) {
		return false
	}
	if cf.networks != nil && !slices.ContainsFunc(c.HostConfig.Networks, func(n engine.NetworkRequest) bool { return cf.networks[network.Canonical(n.Name)] }) {
		return false
	}
	return true
}

// listing decides on what the listing shows: its state, health and
// ports.
func (cf *containerFilter) listing(sum container.Summary) bool {
	health := "none"
	if sum.Health != nil {
		health = string(sum.Health.Status)
	}
	if !anyOf(cf.f["status"], func(v string) bool { return string(sum.State) == v }) || !anyOf(cf.f["health"], func(v string) bool { return health == v }) {
		return false
	}
	if cf.publish == nil && cf.expose == nil {
		return true
	}
	return slices.ContainsFunc(sum.Ports, func(p container.PortSummary) bool {
		return cf.publish[fmt.Sprintf("%d/%s", p.PublicPort, p.Type)] || cf.expose[fmt.Sprintf("%d/%s", p.PrivatePort, p.Type)]
	})
}

// isolationIs says whether a container's recorded isolation is the one
// a filter names: by its name, or as "default" (docker's only value on
// Linux) when it is the engine's default.
func (cf *containerFilter) isolationIs(recorded, name string) bool {
	if recorded == "" || recorded == "default" {
		recorded = cf.defaultIsolation
	}
	return strings.EqualFold(name, recorded) || strings.EqualFold(name, "default") && recorded == cf.defaultIsolation
}

// pruneFilter is a prune's filters: label (every one holds), label! (not
// all of them hold) and until (created at or before; a time in any form
// docker takes, a duration before now included).
type pruneFilter struct {
	f     map[string][]string
	until time.Time
}

func parsePruneFilter(r *http.Request, keys []string) (pruneFilter, error) {
	f, err := filters(r)
	if err != nil {
		return pruneFilter{}, err
	}
	if err := checkFilterKeys(f, keys); err != nil {
		return pruneFilter{}, err
	}
	pf := pruneFilter{f: f}
	switch u := f["until"]; len(u) {
	case 0:
	case 1:
		if pf.until, err = timespec.Parse(u[0], time.Now()); err != nil {
			return pruneFilter{}, httpError{http.StatusBadRequest, "invalid filter 'until=" + u[0] + "': " + err.Error()}
		}
	default:
		return pruneFilter{}, httpError{http.StatusBadRequest, "more than one until filter specified"}
	}
	return pf, nil
}

// match: created is the object's creation (zero where it has none to
// compare: until then does not apply).
func (pf pruneFilter) match(labels map[string]string, created time.Time) bool {
	if !pf.until.IsZero() && !created.IsZero() && created.After(pf.until) {
		return false
	}
	if !matchLabels(labels, pf.f["label"]) {
		return false
	}
	return len(pf.f["label!"]) == 0 || !matchLabels(labels, pf.f["label!"])
}
