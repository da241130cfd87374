//go:build linux

package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/spf13/cobra"
)

// psRow is one container as docker's ps templates see it: every field a
// string, as docker prints them ({{json .}} gives these keys and types).
type psRow struct {
	Command      string
	CreatedAt    string
	ID           string
	Image        string
	Labels       string
	LocalVolumes string
	Mounts       string
	Names        string
	Networks     string
	// Platform is null: docker's CLI shows the image manifest's platform
	// only from daemons that record it per container; berth does not.
	Platform   any
	Ports      string
	RunningFor string
	Size       string
	State      string
	Status     string

	labels map[string]string
	hdr    bool
}

func (r psRow) MarshalJSON() ([]byte, error) {
	type plain psRow
	return marshalRow(plain(r))
}

// Label is {{.Label "KEY"}}: the value of one label.
func (r psRow) Label(key string) string {
	if r.hdr {
		return labelHeader(key)
	}
	return r.labels[key]
}

func (psRow) header() any {
	return psRow{hdr: true, Command: "COMMAND", CreatedAt: "CREATED AT", ID: "CONTAINER ID", Image: "IMAGE", Labels: "LABELS",
		LocalVolumes: "LOCAL VOLUMES", Mounts: "MOUNTS", Names: "NAMES", Networks: "NETWORKS", Platform: "PLATFORM", Ports: "PORTS",
		RunningFor: "CREATED", Size: "SIZE", State: "STATE", Status: "STATUS"}
}

const (
	psTable     = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
	psTableSize = psTable + "\t{{.Size}}"
)

// makePsRow is c's row; trunc shortens the ID, command and mounts as
// docker's ps does without --no-trunc.
func makePsRow(c *engine.Container, now time.Time, trunc bool, size string) psRow {
	r := psRow{ID: c.ID, Names: c.Name, Image: c.Config.Image, Command: commandText(c),
		CreatedAt: time.Unix(c.Created.Unix(), 0).String(), RunningFor: humanDuration(now.Sub(c.Created)) + " ago",
		Ports: portsText(c), State: c.State.Status, Status: statusText(c, now), Size: size,
		Labels: joinLabels(c.Config.Labels), Networks: networksText(c), labels: c.Config.Labels}
	var mounts []string
	local := 0
	for _, m := range c.Mounts {
		name := m.Name
		if name == "" {
			name = m.Source
		}
		if m.Type == "volume" {
			local++
		}
		if trunc {
			name = ellipsis(name, 15)
		}
		mounts = append(mounts, name)
	}
	r.Mounts, r.LocalVolumes = strings.Join(mounts, ","), strconv.Itoa(local)
	if trunc {
		r.ID = engine.ShortID(r.ID)
		r.Command = ellipsis(r.Command, 20)
	}
	r.Command = strconv.Quote(r.Command)
	return r
}

// ellipsis shortens s to n characters, the last one an ellipsis.
func ellipsis(s string, n int) string {
	rs := []rune(s)
	if len(rs) <= n || n < 1 {
		return s
	}
	return string(rs[:n-1]) + "…"
}

// containerSize is docker's ps -s Size: the writable layer's bytes, and
// with the image's ("virtual").
func containerSize(ctx context.Context, e *engine.Engine, c *engine.Container) string {
	rw, root := e.ContainerSizes(ctx, c)
	if root > 0 {
		return fmt.Sprintf("%s (virtual %s)", humanBytes(rw), humanBytes(root))
	}
	return humanBytes(rw)
}

// dirSize sums the sizes of the files under dir (engine.DirSize).
func dirSize(dir string) int64 { return engine.DirSize(dir) }

func statusText(c *engine.Container, now time.Time) string {
	s := c.State
	switch s.Status {
	case engine.StatusRunning:
		if s.Health != nil {
			h := s.Health.Status
			if h == engine.HealthStarting {
				h = "health: starting"
			}
			return "Up " + humanDuration(now.Sub(s.StartedAt)) + " (" + h + ")"
		}
		return "Up " + humanDuration(now.Sub(s.StartedAt))
	case engine.StatusPaused:
		return "Up " + humanDuration(now.Sub(s.StartedAt)) + " (Paused)"
	case engine.StatusRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", s.ExitCode, humanDuration(now.Sub(s.FinishedAt)))
	case engine.StatusExited:
		return fmt.Sprintf("Exited (%d) %s ago", s.ExitCode, humanDuration(now.Sub(s.FinishedAt)))
	case engine.StatusCreated:
		return "Created"
	case engine.StatusRemoving:
		return "Removal In Progress"
	case engine.StatusDead:
		return "Dead"
	}
	return s.Status
}

// portsText is docker's ps Ports: published ports, and while the
// container runs the ports it exposes without publishing them.
func portsText(c *engine.Container) string {
	var out []string
	published := map[string]bool{}
	for _, p := range c.NetworkSettings.Ports() {
		out = append(out, p.String())
		published[fmt.Sprintf("%d/%s", p.ContainerPort, p.Protocol)] = true
	}
	if c.State.Running {
		var exposed []string
		for ep := range c.Config.ExposedPorts {
			if !strings.Contains(ep, "/") {
				ep += "/tcp"
			}
			if !published[ep] {
				exposed = append(exposed, ep)
			}
		}
		sort.Strings(exposed)
		out = append(exposed, out...)
	}
	return strings.Join(out, ", ")
}

func networksText(c *engine.Container) string {
	var out []string
	for _, n := range c.HostConfig.Networks {
		out = append(out, n.Name)
	}
	if len(out) == 0 {
		return c.HostConfig.NetworkMode
	}
	return strings.Join(out, ",")
}

// commandText is docker's ps Command: the path and arguments, an
// argument with a space in single quotes.
func commandText(c *engine.Container) string {
	parts := []string{c.Path}
	for _, a := range c.Args {
		if strings.Contains(a, " ") {
			a = "'" + a + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// matchFilter applies one ps --filter key=value.

// psFilters are ps's --filter values by key: the values of one key are
// alternatives, and every key must match (docker's rule).
type psFilters struct {
	keys          map[string][]string
	before, since map[string]*engine.Container
	networks      map[string]string // a network value -> the network's name
}

// psLookups resolve what filters name: a container (before=, since=) and
// a network's name (network=, by name or ID).
type psLookups struct {
	container func(string) (*engine.Container, error)
	network   func(string) string
}

// engineLookups resolves through e.
func engineLookups(ctx context.Context, e *engine.Engine) psLookups {
	return psLookups{
		container: func(v string) (*engine.Container, error) { return e.Get(ctx, v) },
		network: func(v string) string {
			if m, err := e.Networks(); err == nil {
				if n, err := m.Get(ctx, v); err == nil {
					return n.Name
				}
			}
			return v
		},
	}
}

// matchFilter applies one filter to c (no before=/since=).
func matchFilter(c *engine.Container, f string) (bool, error) {
	pf, err := parsePsFilters([]string{f}, psLookups{network: func(v string) string { return v }})
	if err != nil {
		return false, err
	}
	return pf.match(c), nil
}

// parsePsFilters checks the filters and resolves the containers and
// networks they name.
func parsePsFilters(filters []string, look psLookups) (*psFilters, error) {
	pf := &psFilters{keys: map[string][]string{}, before: map[string]*engine.Container{}, since: map[string]*engine.Container{}, networks: map[string]string{}}
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("bad format of filter (expected name=value)")
		}
		k = strings.ToLower(k)
		switch k {
		case "id", "name", "label", "ancestor", "volume":
		case "status":
			if !slices.Contains([]string{"created", "restarting", "running", "removing", "paused", "exited", "dead"}, v) {
				return nil, fmt.Errorf("invalid filter 'status=%s'", v)
			}
		case "health":
			if !slices.Contains([]string{engine.HealthStarting, engine.HealthHealthy, engine.HealthUnhealthy, "none"}, v) {
				return nil, fmt.Errorf("unrecognised filter value for health: %s", v)
			}
		case "exited":
			if _, err := strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("invalid filter 'exited=%s'", v)
			}
		case "before", "since":
			if look.container == nil {
				return nil, fmt.Errorf("filter %s: no containers to compare with", k)
			}
			c, err := look.container(v)
			if err != nil {
				return nil, err
			}
			map[string]map[string]*engine.Container{"before": pf.before, "since": pf.since}[k][v] = c
		case "network":
			pf.networks[v] = look.network(v)
			if v == "bridge" {
				pf.networks[v] = "bridge"
			}
		case "publish", "expose":
			if _, _, _, err := parsePortFilter(v); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("invalid filter '%s'", k)
		}
		pf.keys[k] = append(pf.keys[k], v)
	}
	return pf, nil
}

// parsePortFilter reads PORT[-PORT][/PROTO] (tcp by default).
func parsePortFilter(v string) (lo, hi int, proto string, err error) {
	ports, proto, _ := strings.Cut(v, "/")
	if proto == "" {
		proto = "tcp"
	}
	a, b, isRange := strings.Cut(ports, "-")
	if !isRange {
		b = a
	}
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, "", fmt.Errorf("invalid port filter %q (want PORT[-PORT][/PROTO])", v)
	}
	return lo, hi, proto, nil
}

// match says whether c passes every filter.
func (pf *psFilters) match(c *engine.Container) bool {
	for k, vals := range pf.keys {
		ok := false
		for _, v := range vals {
			if pf.matchOne(c, k, v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (pf *psFilters) matchOne(c *engine.Container, k, v string) bool {
	switch k {
	case "id":
		return strings.HasPrefix(c.ID, v)
	case "name":
		return strings.Contains(c.Name, strings.TrimPrefix(v, "/"))
	case "status":
		return c.State.Status == v
	case "health":
		if v == "none" {
			return c.State.Health == nil
		}
		return c.State.Health != nil && c.State.Health.Status == v
	case "exited":
		n, _ := strconv.Atoi(v)
		return c.State.Status == engine.StatusExited && c.State.ExitCode == n
	case "label":
		lk, lv, hasV := strings.Cut(v, "=")
		got, has := c.Config.Labels[lk]
		return has && (!hasV || got == lv)
	case "ancestor":
		if ref, err := reference.Parse(v); err == nil && ref.String() == c.ImageName {
			return true // "busybox" is docker.io/library/busybox:latest
		}
		return c.Config.Image == v || c.ImageName == v || strings.HasPrefix(strings.TrimPrefix(c.Image, "sha256:"), strings.TrimPrefix(v, "sha256:"))
	case "before":
		b := pf.before[v]
		return c.ID != b.ID && c.Created.Before(b.Created)
	case "since":
		s := pf.since[v]
		return c.ID != s.ID && c.Created.After(s.Created)
	case "volume":
		for _, m := range c.Mounts {
			if m.Name == v || m.Destination == v || (m.Type == "bind" && m.Source == v) {
				return true
			}
		}
		return false
	case "network":
		name := pf.networks[v]
		if len(c.HostConfig.Networks) == 0 {
			return c.HostConfig.NetworkMode == name
		}
		for _, n := range c.HostConfig.Networks {
			if n.Name == name || (name == "bridge" && n.Name == "berth") {
				return true
			}
		}
		return false
	case "publish", "expose":
		// publish: the host's side of a published port; expose: the
		// container's, published or only exposed (docker's rule).
		lo, hi, proto, _ := parsePortFilter(v)
		in := func(port int, p string) bool { return port >= lo && port <= hi && p == proto }
		for _, p := range c.HostConfig.PortBindings {
			if k == "publish" && p.HostPort != 0 && in(p.HostPort, p.Protocol) || k == "expose" && in(p.ContainerPort, p.Protocol) {
				return true
			}
		}
		for _, p := range c.NetworkSettings.Ports() {
			if k == "publish" && in(p.HostPort, p.Protocol) || k == "expose" && in(p.ContainerPort, p.Protocol) {
				return true
			}
		}
		if k == "expose" {
			for ep := range c.Config.ExposedPorts {
				port, p, _ := strings.Cut(ep, "/")
				if p == "" {
					p = "tcp"
				}
				if n, err := strconv.Atoi(port); err == nil && in(n, p) {
					return true
				}
			}
		}
		return false
	}
	return false
}

func newPsCommand(g *globalOptions) *cobra.Command {
	var all, quiet, noTrunc, latest, size bool
	var last int
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:     "ps [OPTIONS]",
		Aliases: []string{"ls", "list"},
		Short:   "List containers",
		Args:    cobra.NoArgs,
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			pf, err := parsePsFilters(filters, engineLookups(ctx, e))
			if err != nil {
				return err
			}
			list, err := e.List(ctx)
			if err != nil {
				return err
			}
			now := time.Now()
			var picked []*engine.Container
			for i := len(list) - 1; i >= 0; i-- { // newest first
				c := list[i]
				if !all && !latest && last <= 0 && len(filters) == 0 && c.State.Status != engine.StatusRunning && c.State.Status != engine.StatusPaused && c.State.Status != engine.StatusRestarting {
					continue
				}
				if pf.match(c) {
					picked = append(picked, c)
				}
			}
			if latest {
				last = 1
			}
			if last > 0 && len(picked) > last {
				picked = picked[:last]
			}
			if quiet {
				for _, c := range picked {
					if noTrunc {
						fmt.Println(c.ID)
					} else {
						fmt.Println(engine.ShortID(c.ID))
					}
				}
				return nil
			}
			def := psTable
			// docker's -s: the size column; a template that shows .Size
			// asks for sizes too.
			withSize := size || strings.Contains(format, ".Size")
			if size {
				def = psTableSize
			}
			rows := make([]psRow, 0, len(picked))
			for _, c := range picked {
				sz := "0B"
				if withSize {
					sz = containerSize(ctx, e, c)
				}
				rows = append(rows, makePsRow(c, now, !noTrunc, sz))
			}
			return printList(os.Stdout, format, def, rows)
		}),
	}
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "show all containers (default: running ones)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "print only IDs")
	fl.BoolVar(&noTrunc, "no-trunc", false, "do not truncate")
	fl.BoolVarP(&latest, "latest", "l", false, "show the newest container")
	fl.IntVarP(&last, "last", "n", -1, "show the n newest containers")
	fl.BoolVarP(&size, "size", "s", false, "show sizes (the writable layer, and with the image's)")
	fl.StringVar(&format, "format", "table", "table, json, or a Go template (\"table \" in front for a header and columns)")
	fl.StringArrayVarP(&filters, "filter", "f", nil, "filter: id, name, label, status, exited, health, ancestor, before, since, volume, network, publish, expose")
	return cmd
}
