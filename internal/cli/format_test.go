//go:build linux

package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/network"
)

func TestPrintList(t *testing.T) {
	rows := []psRow{
		{ID: "abc", Names: "web", Labels: "app=x,tier=front", labels: map[string]string{"app": "x", "com.example.my-key": "v"}, Ports: "0.0.0.0:80->80/tcp"},
		{ID: "def", Names: "db"},
	}
	tests := []struct{ format, want string }{
		{"{{.Names}}", "web\ndb\n"},
		{`{{.Names}}\t{{.ID}}`, "web\tabc\ndb\tdef\n"},
		{`table {{.Names}}\t{{.ID}}`, "NAMES     CONTAINER ID\nweb       abc\ndb        def\n"},
		{`table {{.Label "com.example.my-key"}}|{{.Label "app"}}`, "my key|app\nv|x\n|\n"},
		{`{{upper .Names}} {{lower "AB"}} {{title "ab cd"}} {{pad .Names 1 2}}| {{truncate .Names 2}} {{join (split .Ports ":") "+"}}`,
			"WEB ab Ab Cd  web  | we 0.0.0.0+80->80/tcp\nDB ab Ab Cd  db  | db \n"},
		{`table {{upper .Names}}\t{{pad .ID 1 0}}`, "NAMES      CONTAINER ID\nWEB        abc\nDB         def\n"},
		{`{{json .Ports}}`, "\"0.0.0.0:80->80/tcp\"\n\"\"\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := printList(&b, tt.format, psTable, rows); err != nil {
			t.Errorf("%q: %v", tt.format, err)
			continue
		}
		if b.String() != tt.want {
			t.Errorf("%q:\n got %q\nwant %q", tt.format, b.String(), tt.want)
		}
	}
	var b bytes.Buffer
	if err := printList(&b, "json", psTable, rows[:1]); err != nil {
		t.Fatal(err)
	}
	// docker's rows escape HTML characters; every value is a string but
	// Platform (null).
	want := `{"Command":"","CreatedAt":"","ID":"abc","Image":"","Labels":"app=x,tier=front","LocalVolumes":"","Mounts":"","Names":"web","Networks":"","Platform":null,"Ports":"0.0.0.0:80-\u003e80/tcp","RunningFor":"","Size":"","State":"","Status":""}` + "\n"
	if b.String() != want {
		t.Errorf("json: %s", b.String())
	}
	b.Reset()
	if err := printList(&b, "table", psTable, []psRow{}); err != nil || !strings.HasPrefix(b.String(), "CONTAINER ID   IMAGE     COMMAND") {
		t.Errorf("empty table: %q %v", b.String(), err)
	}
	if err := printList(&b, "{{.Nope}}", psTable, rows); err == nil {
		t.Error("a template naming no field printed")
	}
	if err := printList(&b, "{{.Names", psTable, rows); err == nil {
		t.Error("a broken template parsed")
	}
}

func TestMakePsRow(t *testing.T) {
	now := time.Now()
	c := &engine.Container{ID: strings.Repeat("ab", 32), Name: "web", Path: "sh", Args: []string{"-c", "sleep 1000; echo done and more"},
		Created: now.Add(-2 * time.Minute),
		Mounts:  []engine.MountPoint{{Type: "volume", Name: strings.Repeat("f", 64)}, {Type: "bind", Source: "/srv/data"}}}
	c.Config.Image = "busybox"
	r := makePsRow(c, now, true, "0B")
	if r.ID != strings.Repeat("ab", 6) || r.Command != `"sh -c 'sleep 1000; …"` || r.RunningFor != "2 minutes ago" ||
		r.Mounts != strings.Repeat("f", 14)+"…,/srv/data" || r.LocalVolumes != "1" {
		t.Errorf("row: %+v", r)
	}
	if r := makePsRow(c, now, false, "0B"); r.ID != c.ID || r.Command != `"sh -c 'sleep 1000; echo done and more'"` || !strings.HasPrefix(r.Mounts, strings.Repeat("f", 64)) {
		t.Errorf("--no-trunc row: %+v", r)
	}
}

func TestPsFilters(t *testing.T) {
	c := &engine.Container{ID: "abc", Name: "web", State: engine.State{Status: engine.StatusRunning},
		Mounts: []engine.MountPoint{{Type: "volume", Name: "data", Destination: "/data"}}}
	c.HostConfig.Networks = []engine.NetworkRequest{{Name: "front"}}
	c.Config.ExposedPorts = map[string]struct{}{"90/tcp": {}, "53/udp": {}}
	c.HostConfig.PortBindings = []network.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}
	tests := []struct {
		filters []string
		want    bool
	}{
		{[]string{"volume=data"}, true},
		{[]string{"volume=/data"}, true},
		{[]string{"volume=other"}, false},
		{[]string{"network=front"}, true},
		{[]string{"network=back"}, false},
		{[]string{"network=back", "network=front"}, true},  // one key: alternatives
		{[]string{"network=front", "volume=other"}, false}, // two keys: both
		{[]string{"publish=80"}, false},                    // the host port
		{[]string{"publish=8080"}, true},
		{[]string{"publish=80/udp"}, false},
		{[]string{"publish=8079-8081/tcp"}, true},
		{[]string{"publish=90"}, false},
		{[]string{"expose=90"}, true},
		{[]string{"expose=80"}, true},
		{[]string{"expose=53/udp"}, true},
		{[]string{"expose=53"}, false},
		{[]string{"health=none"}, true},
		{[]string{"health=healthy"}, false},
	}
	for _, tt := range tests {
		pf, err := parsePsFilters(tt.filters, psLookups{network: func(v string) string { return v }})
		if err != nil {
			t.Errorf("%v: %v", tt.filters, err)
			continue
		}
		if got := pf.match(c); got != tt.want {
			t.Errorf("%v: %v, want %v", tt.filters, got, tt.want)
		}
	}
}

func TestTemplateFuncs(t *testing.T) {
	if got := titleCase("hello big-world"); got != "Hello Big-World" {
		t.Errorf("title: %q", got)
	}
	if padSpaces("", 2, 2) != "" || padSpaces("x", 1, 2) != " x  " {
		t.Error("pad")
	}
	if truncateString("abcdef", 3) != "abc" || truncateString("ab", 3) != "ab" {
		t.Error("truncate")
	}
	if labelHeader("com.example.my_key") != "my key" {
		t.Error("labelHeader")
	}
	if humanSize(1984000, 4) != "1.984MB" || humanSize(0, 3) != "0B" || humanSize(999, 3) != "999B" {
		t.Errorf("humanSize: %s %s", humanSize(1984000, 4), humanSize(999, 3))
	}
}

func TestErrorText(t *testing.T) {
	for in, want := range map[string]string{
		"volume pv is used by container(s) 1f72041aadf3: remove them first: volume is in use":              "volume pv is used by container(s) 1f72041aadf3: remove them first",
		`the container name "x" is already in use: container name is already in use (remove or rename it)`: `the container name "x" is already in use (remove or rename it)`,
		"no such volume: a\ninvalid volume name \"b/c\": only these: invalid argument":                     "no such volume: a\ninvalid volume name \"b/c\": only these",
		"open /x: no such file or directory":                                                               "open /x: no such file or directory",
	} {
		if got := errorText(errors.New(in)); got != want {
			t.Errorf("errorText(%q) = %q, want %q", in, got, want)
		}
	}
}
