//go:build linux

package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/engine"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1024", 1024},
		{"512k", 512 << 10},
		{"512K", 512 << 10},
		{"64m", 64 << 20},
		{"64M", 64 << 20},
		{"1g", 1 << 30},
		{"2t", 2 << 40},
		{"1.5g", 3 << 29},
		{"0.5k", 512},
		{"10mb", 10 << 20},
		{"10MB", 10 << 20},
		{"1kb", 1 << 10},
		{"100b", 100},
		{" 64m ", 64 << 20},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if err != nil {
			t.Errorf("parseSize(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("parseSize(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestParseSizeErrors(t *testing.T) {
	for _, in := range []string{"", " ", "b", "k", "x", "-1", "-1m", "12q", "1.2.3m", "m64", "1 g"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseSizeNonFinite(t *testing.T) {
	for _, in := range []string{"inf", "+Inf", "nan", "1e30g", "1e19"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseMount(t *testing.T) {
	tests := []struct {
		in          string
		bind, tmpfs string
	}{
		{"type=bind,source=/tmp,target=/ctr", "/tmp:/ctr", ""},
		{"type=bind,src=/tmp,dst=/ctr,readonly", "/tmp:/ctr:ro", ""},
		{"type=bind,source=/tmp,destination=/ctr,ro", "/tmp:/ctr:ro", ""},
		{"type=bind,source=/tmp,target=/ctr,readonly=true", "/tmp:/ctr:ro", ""},
		{"type=bind,source=/tmp,target=/ctr,readonly=1", "/tmp:/ctr:ro", ""},
		{"type=bind,source=/tmp,target=/ctr,readonly=false", "/tmp:/ctr", ""},
		{"type=bind,source=/tmp,target=/ctr,bind-propagation=rshared", "/tmp:/ctr:rshared", ""},
		{"type=bind,source=/tmp,target=/ctr,ro,bind-propagation=slave,bind-recursive=enabled,consistency=cached", "/tmp:/ctr:ro,slave", ""},
		{"type=volume,source=data,target=/data,volume-nocopy", "data:/data:nocopy", ""},
		{"type=volume,source=data,target=/data,volume-nocopy=false", "data:/data", ""},
		{"type=volume,target=/data,volume-nocopy=true,ro", ":/data:ro,nocopy", ""},
		{"source=data,target=/data", "data:/data", ""},
		{"target=/ctr,source=/tmp,type=bind", "/tmp:/ctr", ""},
		{"type=tmpfs,target=/tmp", "", "/tmp"},
		{"type=tmpfs,dst=/run,tmpfs-size=64m", "", "/run:size=67108864"},
		{"type=tmpfs,target=/run,tmpfs-mode=1770", "", "/run:mode=1770"},
		{"type=tmpfs,target=/run,tmpfs-size=1024,tmpfs-mode=700,readonly", "", "/run:size=1024,mode=700,ro"},
		{"type=volume,source=data,target=/data", "data:/data", ""},
		{"type=volume,src=data,target=/data,ro", "data:/data:ro", ""},
		{"type=volume,target=/data", "/data", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			bind, tmpfs, _, err := parseMount(tt.in)
			if err != nil {
				t.Fatalf("parseMount(%q): %v", tt.in, err)
			}
			if bind != tt.bind || tmpfs != tt.tmpfs {
				t.Errorf("parseMount(%q) = (%q, %q), want (%q, %q)", tt.in, bind, tmpfs, tt.bind, tt.tmpfs)
			}
		})
	}
}

func TestParseMountErrors(t *testing.T) {
	tests := []struct{ in, errPart string }{
		{"type=bind,source=/tmp", "target= is required"},
		{"type=tmpfs", "target= is required"},
		{"", "empty field"},
		{"type=bind,source=/nonexistent-berth,target=/ctr", "does not exist"},
		{"type=bind,source=/tmp,target=/ctr,foo=bar", `unknown key "foo"`},
		{"type=bind,source=/tmp,target=/ctr,tmpfs-size=1m", "tmpfs-size is for type=tmpfs"},
		{"type=bind,source=/tmp,target=/ctr,bind-propagation=weird", "bind-propagation"},
		{"type=bind,source=/tmp,target=/ctr,bind-recursive=sometimes", "bind-recursive"},
		{"type=bind,source=/tmp,target=/ctr,bind-recursive=readonly", "needs readonly"},
		{"type=volume,source=d,target=/ctr,volume-nocopy=maybe", "true or false"},
		{"type=volume,target=/ctr,volume-subpath=x", "needs a named volume"},
		{"type=volume,source=d,target=/ctr,volume-opt=type", "volume-opt=KEY=VALUE"},
		{"type=volume,source=d,target=/ctr,volume-label=a=b", "volume-label"},
		{`type=volume,source=d,target=/ctr,"volume-opt=o=size=1m`, "--mount"},
		{"type=bind,target=/ctr", "source= is required"},
		{"type=volume,source=/tmp,target=/ctr", "not a path"},
		{"type=npipe,source=x,target=/ctr", "type must be"},
		{"type=BIND,source=/tmp,target=/ctr", "type must be"},
		{"type=bind,source=/tmp,target=/ctr,bogus", `unknown key "bogus"`},
		{"type=bind,source=/tmp,target=/ctr,bind-propagation", "not key=value"},
		{"type=tmpfs,target=/run,tmpfs-size=lots", "tmpfs-size"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			bind, tmpfs, _, err := parseMount(tt.in)
			if err == nil {
				t.Fatalf("parseMount(%q) = (%q, %q), want an error", tt.in, bind, tmpfs)
			}
			if !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("parseMount(%q): error %q, want it to mention %q", tt.in, err, tt.errPart)
			}
		})
	}
}

// volumeSpec reads a -v value as the engine does (resolveMounts): one
// field is an anonymous volume's path, else SOURCE:DEST[:OPTIONS].
func volumeSpec(v string) (src, dst, opts string) {
	parts := strings.Split(v, ":")
	switch len(parts) {
	case 1:
		return "", parts[0], ""
	case 2:
		return parts[0], parts[1], ""
	}
	return parts[0], parts[1], strings.Join(parts[2:], ":")
}

func TestParseMountAnonymousReadonlyVolume(t *testing.T) {
	bind, _, _, err := parseMount("type=volume,target=/data,readonly")
	if err != nil {
		t.Fatal(err)
	}
	if src, dst, opts := volumeSpec(bind); src != "" || dst != "/data" || opts != "ro" {
		t.Errorf("parseMount = %q: source %q, destination %q, options %q; want an anonymous volume at /data, ro", bind, src, dst, opts)
	}
}

func writeEnvFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadEnvFile(t *testing.T) {
	t.Setenv("BERTH_TEST_ENV_SET", "from the environment")
	t.Setenv("BERTH_TEST_ENV_EMPTY", "")
	t.Setenv("BERTH_TEST_ENV_UNSET", "")
	os.Unsetenv("BERTH_TEST_ENV_UNSET") // t.Setenv puts it back afterwards

	tests := []struct {
		name, content string
		want          []string
	}{
		{"empty file", "", nil},
		{"comments and blank lines", "# a comment\n\n   \n\t# indented comment\nA=1\n", []string{"A=1"}},
		{"value with spaces kept verbatim", "MSG=hello  world  \n", []string{"MSG=hello  world  "}},
		{"leading whitespace trimmed", "  \tKEY=v\n", []string{"KEY=v"}},
		{"value with = and #", "URL=a=b#c\n", []string{"URL=a=b#c"}},
		{"empty value", "EMPTY=\n", []string{"EMPTY="}},
		{"quotes are kept", "Q=\"x y\"\n", []string{"Q=\"x y\""}},
		{"CRLF line ends", "A=1\r\nB=2\r\n", []string{"A=1", "B=2"}},
		{"no final newline", "A=1\nB=2", []string{"A=1", "B=2"}},
		{"bare key from the environment", "BERTH_TEST_ENV_SET\n", []string{"BERTH_TEST_ENV_SET=from the environment"}},
		{"bare key set but empty", "BERTH_TEST_ENV_EMPTY\n", []string{"BERTH_TEST_ENV_EMPTY="}},
		{"bare key not in the environment is dropped", "A=1\nBERTH_TEST_ENV_UNSET\nB=2\n", []string{"A=1", "B=2"}},
		{"order kept, duplicates kept", "B=1\nA=2\nB=3\n", []string{"B=1", "A=2", "B=3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readEnvFile(writeEnvFile(t, tt.content))
			if err != nil {
				t.Fatalf("readEnvFile(%q): %v", tt.content, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("readEnvFile(%q) = %q, want %q", tt.content, got, tt.want)
			}
		})
	}
}

func TestReadEnvFileErrors(t *testing.T) {
	tests := []struct{ name, content, errPart string }{
		{"space in key", "A=1\nBAD KEY=x\n", "line 2"},
		{"tab in key", "BAD\tKEY=x\n", "line 1"},
		{"no key", "# header\n\nA=1\n=value\n", "line 4"},
		{"bare key with trailing space", "A=1\n\n\nNAME \n", "line 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readEnvFile(writeEnvFile(t, tt.content))
			if err == nil {
				t.Fatalf("readEnvFile(%q) = %q, want an error", tt.content, got)
			}
			if !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("readEnvFile(%q): error %q, want it to mention %q", tt.content, err, tt.errPart)
			}
			if got != nil {
				t.Errorf("readEnvFile(%q) returned %q with its error", tt.content, got)
			}
		})
	}
	if _, err := readEnvFile(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "--env-file") {
		t.Errorf("readEnvFile(missing file): error %v, want an --env-file error", err)
	}
}

func TestReadEnvFileBOM(t *testing.T) {
	got, err := readEnvFile(writeEnvFile(t, "\ufeffA=1\nB=2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"A=1", "B=2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("readEnvFile = %q, want %q", got, want)
	}
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Hour, "Less than a second"},
		{0, "Less than a second"},
		{999 * time.Millisecond, "Less than a second"},
		{time.Second, "1 second"},
		{1900 * time.Millisecond, "1 second"},
		{2 * time.Second, "2 seconds"},
		{59 * time.Second, "59 seconds"},
		{60 * time.Second, "About a minute"},
		{119 * time.Second, "About a minute"},
		{2 * time.Minute, "2 minutes"},
		{59 * time.Minute, "59 minutes"},
		{time.Hour, "About an hour"},
		{2 * time.Hour, "2 hours"},
		{47 * time.Hour, "47 hours"},
		{48 * time.Hour, "2 days"},
		{13 * 24 * time.Hour, "13 days"},
		{14 * 24 * time.Hour, "2 weeks"},
		{20 * 24 * time.Hour, "2 weeks"},
		{21 * 24 * time.Hour, "3 weeks"},
	}
	for _, tt := range tests {
		if got := humanDuration(tt.d); got != tt.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestHumanDurationDockerLongForms(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{90 * time.Minute, "2 hours"},
		{60 * 24 * time.Hour, "2 months"},
		{365 * 24 * time.Hour, "12 months"},
		{3 * 365 * 24 * time.Hour, "3 years"},
	}
	for _, tt := range tests {
		if got := humanDuration(tt.d); got != tt.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestStatusText(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	tests := []struct {
		name  string
		state engine.State
		want  string
	}{
		{"running", engine.State{Status: engine.StatusRunning, StartedAt: now.Add(-5 * time.Minute)}, "Up 5 minutes"},
		{"running just now", engine.State{Status: engine.StatusRunning, StartedAt: now}, "Up Less than a second"},
		{"paused", engine.State{Status: engine.StatusPaused, StartedAt: now.Add(-3 * time.Hour)}, "Up 3 hours (Paused)"},
		{"restarting", engine.State{Status: engine.StatusRestarting, ExitCode: 1, FinishedAt: now.Add(-3 * time.Second)}, "Restarting (1) 3 seconds ago"},
		{"exited", engine.State{Status: engine.StatusExited, ExitCode: 137, FinishedAt: now.Add(-2 * time.Hour), StartedAt: now.Add(-5 * time.Hour)}, "Exited (137) 2 hours ago"},
		{"exited 0", engine.State{Status: engine.StatusExited, FinishedAt: now.Add(-72 * time.Hour)}, "Exited (0) 3 days ago"},
		{"created", engine.State{Status: engine.StatusCreated}, "Created"},
		{"removing", engine.State{Status: engine.StatusRemoving}, "Removal In Progress"},
		{"dead", engine.State{Status: engine.StatusDead}, "Dead"},
		{"other statuses as they are", engine.State{Status: engine.StatusCreating}, "creating"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := statusText(&engine.Container{State: tt.state}, now); got != tt.want {
				t.Errorf("statusText = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMatchFilter(t *testing.T) {
	exited := &engine.Container{
		ID:        "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
		Name:      "web-1",
		Image:     "sha256:0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd",
		ImageName: "docker.io/library/nginx:latest",
		State:     engine.State{Status: engine.StatusExited, ExitCode: 2},
		Config:    engine.Config{Image: "nginx:latest", Labels: map[string]string{"app": "web", "tier": ""}},
	}
	running := &engine.Container{
		ID:    "fedcba9876543210",
		Name:  "db",
		State: engine.State{Status: engine.StatusRunning},
	}
	tests := []struct {
		c      *engine.Container
		filter string
		want   bool
	}{
		{exited, "id=abcdef", true},
		{exited, "id=" + exited.ID, true},
		{exited, "id=bcdef0", false},
		{exited, "id=ABCDEF", false},
		{exited, "name=web-1", true},
		{exited, "name=/web-1", true},
		{exited, "name=web", true},
		{exited, "name=b-", true},
		{exited, "name=db", false},
		{exited, "status=exited", true},
		{exited, "status=running", false},
		{running, "status=running", true},
		{exited, "exited=2", true},
		{exited, "exited=0", false},
		{running, "exited=0", false},
		{exited, "label=app", true},
		{exited, "label=app=web", true},
		{exited, "label=app=db", false},
		{exited, "label=app=", false},
		{exited, "label=tier", true},
		{exited, "label=tier=", true},
		{exited, "label=missing", false},
		{running, "label=app", false},
		{exited, "ancestor=nginx:latest", true},
		{exited, "ancestor=docker.io/library/nginx:latest", true},
		{exited, "ancestor=0123abcd", true},
		{exited, "ancestor=sha256:0123abcd", true},
		{exited, "ancestor=redis", false},
		{exited, "ancestor=nginx", true},
		{exited, "ancestor=123abcd", false},
		{running, "ancestor=nginx:latest", false},
	}
	for _, tt := range tests {
		got, err := matchFilter(tt.c, tt.filter)
		if err != nil {
			t.Errorf("matchFilter(%s, %q): %v", tt.c.Name, tt.filter, err)
			continue
		}
		if got != tt.want {
			t.Errorf("matchFilter(%s, %q) = %v, want %v", tt.c.Name, tt.filter, got, tt.want)
		}
	}
}

func TestMatchFilterErrors(t *testing.T) {
	c := &engine.Container{ID: "abc", Name: "x", State: engine.State{Status: engine.StatusExited}}
	tests := []struct{ filter, errPart string }{
		{"colour=blue", "invalid filter 'colour'"},
		{"health=sick", "unrecognised filter value for health: sick"},
		{"=x", "invalid filter"},
		{"status", "bad format of filter"},
		{"", "bad format of filter"},
		{"status=sleeping", "invalid filter 'status=sleeping'"},
		{"exited=x", "invalid filter 'exited=x'"},
		{"exited=", "invalid filter 'exited='"},
		{"publish=http", "invalid port filter"},
		{"expose=90-80", "invalid port filter"},
	}
	for _, tt := range tests {
		got, err := matchFilter(c, tt.filter)
		if err == nil {
			t.Errorf("matchFilter(%q) = %v, want an error", tt.filter, got)
			continue
		}
		if !strings.Contains(err.Error(), tt.errPart) {
			t.Errorf("matchFilter(%q): error %q, want it to mention %q", tt.filter, err, tt.errPart)
		}
		if got {
			t.Errorf("matchFilter(%q) matched with its error", tt.filter)
		}
	}
}

func TestParseMountExtra(t *testing.T) {
	for in, want := range map[string]engine.MountExtra{
		"type=bind,source=/tmp,target=/c/,bind-recursive=disabled":                    {NonRecursive: true},
		"type=bind,source=/tmp,target=/c,ro,bind-recursive=readonly":                  {ReadOnlyRecursive: true},
		"type=volume,source=v,target=/c,volume-subpath=a/b":                           {Subpath: "a/b"},
		`type=volume,target=/c,volume-opt=type=tmpfs,"volume-opt=o=size=1m,mode=700"`: {VolumeOptions: map[string]string{"type": "tmpfs", "o": "size=1m,mode=700"}},
	} {
		_, _, got, err := parseMount(in)
		if err != nil || got == nil || got.dst != "/c" || !reflect.DeepEqual(got.MountExtra, want) {
			t.Errorf("parseMount(%q): extra %+v %v, want %+v", in, got, err, want)
		}
	}
	if _, _, got, _ := parseMount("type=bind,source=/tmp,target=/c,bind-recursive=writable"); got != nil {
		t.Errorf("bind-recursive=writable: extra %+v, want none (berth's ro is top-level)", got)
	}
}

func TestAbsBind(t *testing.T) {
	wd, _ := os.Getwd()
	for in, want := range map[string]string{
		"./a:/x":     wd + "/a:/x",
		".:/x:ro":    wd + ":/x:ro",
		"../b:/x":    filepath.Dir(wd) + "/b:/x",
		"/abs:/x":    "/abs:/x",
		"name:/x":    "name:/x",
		"/only":      "/only",
		".hidden:/x": ".hidden:/x",
	} {
		if got, err := absBind(in); err != nil || got != want {
			t.Errorf("absBind(%q) = %q %v, want %q", in, got, err, want)
		}
	}
}
