//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
)

// decodeStrict decodes inspect output (a JSON array of one object) into
// docker's type, failing on any field the type lacks.
func decodeStrict[T any](out string) (T, error) {
	var objs []T
	d := json.NewDecoder(strings.NewReader(out))
	d.DisallowUnknownFields()
	if err := d.Decode(&objs); err != nil {
		var zero T
		return zero, err
	}
	if len(objs) != 1 {
		var zero T
		return zero, fmt.Errorf("%d objects, want 1", len(objs))
	}
	return objs[0], nil
}

func mustDecodeStrict[T any](t *testing.T, what, out string) T {
	t.Helper()
	v, err := decodeStrict[T](out)
	if err != nil {
		t.Fatalf("%s is not docker's schema: %v\n%s", what, err, out)
	}
	return v
}

var sha256ID = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// parseTime parses an inspect time (RFC 3339, nanoseconds optional).
func parseTime(t *testing.T, what, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Errorf("%s %q: %v", what, s, err)
	}
	return tm
}

// `inspect` of a container, an image, a network and a volume is docker's
// schema: each decodes strictly (no unknown field, docker's JSON types)
// into the moby API types, and the everyday templates work.
func TestInspectDockerSchema(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()

	// The strict decoding does fail on a field docker lacks, at the top
	// and nested (no custom unmarshaler lets one through).
	for _, bad := range []string{`[{"Id":"x","Bogus":1}]`, `[{"State":{"Status":"running","Bogus":1}}]`,
		`[{"NetworkSettings":{"Networks":{"n":{"IPAddress":"10.0.0.2","Bogus":1}}}}]`, `[{"HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":80}]}}}]`} {
		if _, err := decodeStrict[container.InspectResponse](bad); err == nil {
			t.Fatalf("strict decoding accepted %s", bad)
		}
	}
	for _, bad := range []string{`[{"Id":"x","Manifest":{}}]`, `[{"Config":{"Cmd":["sh"],"Bogus":1}}]`} {
		if _, err := decodeStrict[image.InspectResponse](bad); err == nil {
			t.Fatalf("strict image decoding accepted %s", bad)
		}
	}
	if _, err := decodeStrict[network.Inspect](`[{"Name":"n","Subnet":"10.0.0.0/24"}]`); err == nil {
		t.Fatal("strict network decoding accepted a Subnet field")
	}
	if _, err := decodeStrict[volume.Volume](`[{"Name":"v","Anonymous":true}]`); err == nil {
		t.Fatal("strict volume decoding accepted an Anonymous field")
	}

	e.run("network", "create", "--label", "tier=test", "schemanet")
	e.run("volume", "create", "--label", "k=v", "schemavol")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	bind := t.TempDir()
	start := time.Now()
	id := strings.TrimSpace(e.run("run", "-d", "--name", "schema", "--network", "schemanet",
		"-v", "schemavol:/data", "-v", bind+":/host:ro", "-p", fmt.Sprintf("127.0.0.1:%d:80", port),
		"-e", "FOO=bar", "--label", "team=infra", "--restart", "on-failure:2",
		"--health-cmd", "true", "--health-interval", "1s", demoImage, "sleep", "300"))
	waitFor(t, 15*time.Second, "the healthcheck to pass", func() bool {
		return strings.TrimSpace(e.run("inspect", "-f", "{{.State.Health.Status}}", "schema")) == "healthy"
	})

	// The container.
	raw := e.run("inspect", "schema")
	c := mustDecodeStrict[container.InspectResponse](t, "container inspect", raw)
	if c.ID != id || c.Name != "/schema" || c.Path != "sleep" || !slices.Equal(c.Args, []string{"300"}) {
		t.Errorf("Id %s Name %q Path %q Args %q", c.ID, c.Name, c.Path, c.Args)
	}
	if created := parseTime(t, "Created", c.Created); created.Before(start.Add(-time.Minute)) || created.After(time.Now()) {
		t.Errorf("Created %s, the run started at %s", c.Created, start)
	}
	if !sha256ID.MatchString(c.Image) {
		t.Errorf("Image %q, want sha256:<64 hex digits>", c.Image)
	}
	s := c.State
	if s == nil || s.Status != container.StateRunning || !s.Running || s.Pid <= 0 || s.Health == nil || s.Health.Status != container.Healthy {
		t.Fatalf("State: %+v", s)
	}
	parseTime(t, "StartedAt", s.StartedAt)
	if s.FinishedAt != "0001-01-01T00:00:00Z" {
		t.Errorf("FinishedAt of a running container %q, want docker's zero time", s.FinishedAt)
	}
	if len(s.Health.Log) == 0 || s.Health.Log[0].ExitCode != 0 || s.Health.Log[0].End.IsZero() {
		t.Errorf("Health.Log: %+v", s.Health.Log)
	}
	cfg := c.Config
	if cfg.Image != demoImage || cfg.Labels["team"] != "infra" || !slices.Contains(cfg.Env, "FOO=bar") ||
		!slices.Equal(cfg.Cmd, []string{"sleep", "300"}) || cfg.Hostname != id[:12] {
		t.Errorf("Config: %+v", cfg)
	}
	if hc := cfg.Healthcheck; hc == nil || !slices.Equal(hc.Test, []string{"CMD-SHELL", "true"}) || hc.Interval != time.Second {
		t.Errorf("Config.Healthcheck: %+v", hc)
	}
	p80 := network.MustParsePort("80/tcp")
	if _, ok := cfg.ExposedPorts[p80]; !ok {
		t.Errorf("Config.ExposedPorts %v lacks the published 80/tcp", cfg.ExposedPorts)
	}
	hc := c.HostConfig
	wantBinding := []network.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: fmt.Sprint(port)}}
	if hc.RestartPolicy.Name != container.RestartPolicyOnFailure || hc.RestartPolicy.MaximumRetryCount != 2 ||
		hc.NetworkMode != "schemanet" || !slices.Equal(hc.PortBindings[p80], wantBinding) || hc.LogConfig.Type != "json-file" {
		t.Errorf("HostConfig: RestartPolicy %+v NetworkMode %q PortBindings %v LogConfig %+v", hc.RestartPolicy, hc.NetworkMode, hc.PortBindings, hc.LogConfig)
	}
	if !slices.Equal(c.NetworkSettings.Ports[p80], wantBinding) {
		t.Errorf("NetworkSettings.Ports: %v", c.NetworkSettings.Ports)
	}
	ep := c.NetworkSettings.Networks["schemanet"]
	if ep == nil || !ep.IPAddress.IsValid() || !ep.Gateway.IsValid() || ep.IPPrefixLen == 0 || len(ep.MacAddress) != 6 ||
		!hexID.MatchString(ep.NetworkID) || !hexID.MatchString(ep.EndpointID) || !slices.Contains(ep.DNSNames, "schema") {
		t.Fatalf("NetworkSettings.Networks: %+v", c.NetworkSettings.Networks)
	}
	if g := c.GraphDriver; g == nil || g.Name == "" || g.Data["MergedDir"] == "" {
		t.Errorf("GraphDriver: %+v", g)
	}

	// The volume and the network.
	v := mustDecodeStrict[volume.Volume](t, "volume inspect", e.run("volume", "inspect", "schemavol"))
	if v.Name != "schemavol" || v.Driver != "local" || v.Scope != "local" || v.Labels["k"] != "v" || v.Mountpoint == "" {
		t.Errorf("volume: %+v", v)
	}
	parseTime(t, "volume CreatedAt", v.CreatedAt)
	var volMount, bindMount *container.MountPoint
	for i, m := range c.Mounts {
		switch m.Type {
		case mount.TypeVolume:
			volMount = &c.Mounts[i]
		case mount.TypeBind:
			bindMount = &c.Mounts[i]
		}
	}
	if volMount == nil || volMount.Name != "schemavol" || volMount.Source != v.Mountpoint || volMount.Destination != "/data" ||
		!volMount.RW || volMount.Driver != "local" {
		t.Errorf("volume mount: %+v", c.Mounts)
	}
	if bindMount == nil || bindMount.Source != bind || bindMount.Destination != "/host" || bindMount.RW {
		t.Errorf("bind mount: %+v", c.Mounts)
	}
	n := mustDecodeStrict[network.Inspect](t, "network inspect", e.run("network", "inspect", "schemanet"))
	if n.Name != "schemanet" || n.ID != ep.NetworkID || n.Driver != "bridge" || n.Scope != "local" || n.Created.IsZero() ||
		n.Labels["tier"] != "test" || len(n.IPAM.Config) != 1 || !n.IPAM.Config[0].Subnet.Contains(ep.IPAddress) ||
		n.IPAM.Config[0].Gateway != ep.Gateway {
		t.Errorf("network: %+v", n)
	}
	if r, ok := n.Containers[id]; !ok || r.Name != "schema" || r.IPv4Address.Addr() != ep.IPAddress || r.EndpointID != ep.EndpointID {
		t.Errorf("network Containers: %+v", n.Containers)
	}

	// The image.
	img := mustDecodeStrict[image.InspectResponse](t, "image inspect", e.run("image", "inspect", demoImage))
	if img.ID != c.Image || !slices.Contains(img.RepoTags, demoImage) || len(img.RepoDigests) == 0 ||
		!strings.Contains(img.RepoDigests[0], "@sha256:") || img.Os != "linux" || img.Architecture == "" || img.Size <= 0 {
		t.Errorf("image: %+v", img)
	}
	parseTime(t, "image Created", img.Created)
	if img.RootFS.Type != "layers" || len(img.RootFS.Layers) == 0 || !sha256ID.MatchString(img.RootFS.Layers[0]) {
		t.Errorf("image RootFS: %+v", img.RootFS)
	}
	if img.Config == nil || len(img.Config.Cmd) == 0 || img.Descriptor == nil || !sha256ID.MatchString(img.Descriptor.Digest.String()) {
		t.Errorf("image Config %+v Descriptor %+v", img.Config, img.Descriptor)
	}
	// `berth inspect` of an image is image inspect's object.
	mustDecodeStrict[image.InspectResponse](t, "inspect of an image", e.run("inspect", "--type", "image", demoImage))

	// Where docker emits an empty array or object, not null.
	var generic []map[string]any
	json.Unmarshal([]byte(raw), &generic)
	for _, k := range []string{"Args", "Mounts"} {
		if _, ok := generic[0][k].([]any); !ok {
			t.Errorf("%s is %v, want an array", k, generic[0][k])
		}
	}

	// The everyday templates.
	tmpl := "{{.State.Status}}|{{.NetworkSettings.Networks.schemanet.IPAddress}}|{{range .Mounts}}{{.Source}};{{end}}|" +
		"{{.Config.Image}}|{{json .Config.Labels}}|{{.HostConfig.RestartPolicy.Name}}|{{.Name}}|{{.Image}}"
	want := fmt.Sprintf("running|%s|%s;%s;|%s|{\"org.opencontainers.image.title\":\"berth demo busybox\",\"team\":\"infra\"}|on-failure|/schema|%s", ep.IPAddress, c.Mounts[0].Source, c.Mounts[1].Source, demoImage, c.Image)
	if got := strings.TrimSpace(e.run("inspect", "-f", tmpl, "schema")); got != want {
		t.Errorf("templates:\n got %s\nwant %s", got, want)
	}
	if got := strings.TrimSpace(e.run("image", "inspect", "-f", "{{.Id}} {{index .RepoTags 0}}", demoImage)); got != img.ID+" "+img.RepoTags[0] {
		t.Errorf("image template: %s", got)
	}
	if got := strings.TrimSpace(e.run("network", "inspect", "-f", "{{.Name}} {{range .IPAM.Config}}{{.Subnet}}{{end}}", "schemanet")); got != "schemanet "+n.IPAM.Config[0].Subnet.String() {
		t.Errorf("network template: %s", got)
	}
	if got := strings.TrimSpace(e.run("volume", "inspect", "-f", "{{.Mountpoint}} {{.Labels.k}}", "schemavol")); got != v.Mountpoint+" v" {
		t.Errorf("volume template: %s", got)
	}

	// A created and a stopped container are docker's schema too.
	e.run("create", "--name", "fresh", "--network", "none", demoImage, "true")
	fresh := mustDecodeStrict[container.InspectResponse](t, "inspect of a created container", e.run("inspect", "fresh"))
	if fresh.State.Status != container.StateCreated || fresh.State.StartedAt != "0001-01-01T00:00:00Z" || fresh.Config.Labels == nil {
		t.Errorf("created container: State %+v Labels %v", fresh.State, fresh.Config.Labels)
	}
	if _, ok := fresh.NetworkSettings.Networks["none"]; !ok || len(fresh.NetworkSettings.Networks) != 1 {
		t.Errorf("--network none: Networks %+v, docker has one named none", fresh.NetworkSettings.Networks)
	}
	e.run("stop", "-t", "1", "schema")
	c = mustDecodeStrict[container.InspectResponse](t, "inspect of a stopped container", e.run("inspect", "schema"))
	if c.State.Status != container.StateExited || c.State.Running {
		t.Errorf("stopped container: State %+v", c.State)
	}
	if parseTime(t, "FinishedAt", c.State.FinishedAt).Before(parseTime(t, "StartedAt", c.State.StartedAt)) {
		t.Errorf("FinishedAt %s before StartedAt %s", c.State.FinishedAt, c.State.StartedAt)
	}
	if n := mustDecodeStrict[network.Inspect](t, "network inspect", e.run("network", "inspect", "schemanet")); len(n.Containers) != 0 {
		t.Errorf("network Containers after stop: %+v", n.Containers)
	}
}
