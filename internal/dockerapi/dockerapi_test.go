//go:build linux

package dockerapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/image/remote"
	"github.com/berth-dev/berth/internal/network"
	"github.com/moby/moby/api/types/container"
)

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		less bool
	}{{"1.24", "1.47", true}, {"1.47", "1.47", false}, {"1.9", "1.10", true}, {"2.0", "1.99", false}} {
		if got := versionLess(tc.a, tc.b); got != tc.less {
			t.Errorf("versionLess(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"10m": 10 << 20, "1g": 1 << 30, "512k": 512 << 10, "10mb": 10 << 20, "123": 123, "7b": 7} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "m", "-1m", "ten"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) took it", bad)
		}
	}
}

// The create request the docker CLI sends maps onto the engine's options.
func TestCreateOptions(t *testing.T) {
	body := `{"Image":"busybox","Cmd":["sh","-c","true"],"Env":["A=1"],"Labels":{"k":"v"},"Tty":true,"OpenStdin":true,
	 "ExposedPorts":{"9000/tcp":{}},"Healthcheck":{"Test":["CMD","curl","-f","http://x/"],"Interval":1000000000,"Retries":2},
	 "HostConfig":{"Binds":["/a:/b:ro"],"NetworkMode":"default","PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}],"53/udp":[{"HostPort":""}]},
	  "RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},"AutoRemove":true,"Memory":1048576,"NanoCpus":1500000000,
	  "Mounts":[{"Type":"volume","Source":"data","Target":"/data"},{"Type":"tmpfs","Target":"/tmp"}],
	  "LogConfig":{"Type":"json-file","Config":{"max-size":"10m","max-file":"2"}},"CpuShares":512,"Dns":["192.0.2.1"]},
	 "NetworkingConfig":{"EndpointsConfig":{"bridge":{"Aliases":["web"]}}}}`
	var req container.CreateRequest
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	o, err := createOptions("named", &req)
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != "named" || o.Image != "busybox" || !reflect.DeepEqual(o.Cmd, []string{"sh", "-c", "true"}) || !o.Tty || !o.OpenStdin || o.Labels["k"] != "v" {
		t.Errorf("config: %+v", o)
	}
	if o.NetworkMode != "bridge" || !reflect.DeepEqual(o.Aliases, []string{"web"}) || !reflect.DeepEqual(o.DNS, []string{"192.0.2.1"}) {
		t.Errorf("network: %q %q %q", o.NetworkMode, o.Aliases, o.DNS)
	}
	wantPorts := []network.PortMapping{{ContainerPort: 53, Protocol: "udp"}, {HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}
	if !reflect.DeepEqual(o.Ports, wantPorts) {
		t.Errorf("ports %+v, want %+v", o.Ports, wantPorts)
	}
	if !reflect.DeepEqual(o.Binds, []string{"/a:/b:ro", "data:/data"}) || !reflect.DeepEqual(o.Tmpfs, []string{"/tmp"}) {
		t.Errorf("mounts: %q %q", o.Binds, o.Tmpfs)
	}
	if o.Restart.Name != "on-failure" || o.Restart.MaximumRetryCount != 3 || !o.AutoRemove || o.Memory != 1<<20 || o.CPUs != 1.5 {
		t.Errorf("host: %+v", o)
	}
	if o.LogMaxSize != 10<<20 || o.LogMaxFiles != 2 || o.Resources.CPUShares != 512 || !reflect.DeepEqual(o.Expose, []string{"9000/tcp"}) {
		t.Errorf("logs/resources: %d %d %+v %q", o.LogMaxSize, o.LogMaxFiles, o.Resources, o.Expose)
	}
	if o.HealthCmd != "'curl' '-f' 'http://x/'" || o.HealthRetries != 2 {
		t.Errorf("healthcheck: %q %d", o.HealthCmd, o.HealthRetries)
	}
	// Refused by name, never dropped.
	for _, bad := range []string{
		`{"Image":"x","HostConfig":{"Links":["a:b"]}}`,
		`{"Image":"x","HostConfig":{"LogConfig":{"Type":"syslog"}}}`,
		`{"Image":"x","HostConfig":{"Mounts":[{"Type":"npipe","Target":"/x"}]}}`,
		`{"Image":"x","NetworkingConfig":{"EndpointsConfig":{"other":{}}}}`,
	} {
		var req container.CreateRequest
		if err := json.Unmarshal([]byte(bad), &req); err != nil {
			t.Fatal(err)
		}
		if _, err := createOptions("", &req); err == nil {
			t.Errorf("%s was taken", bad)
		}
	}
}

// FuzzCreateRequest: no body makes the decoding and mapping panic.
func FuzzCreateRequest(f *testing.F) {
	f.Add(`{"Image":"busybox","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"1-2"}]}}}`)
	f.Add(`{"Image":"x","Healthcheck":{"Test":["CMD"]},"HostConfig":{"Tmpfs":{"/t":""},"Ulimits":[{"Name":"nofile","Soft":1,"Hard":2}]}}`)
	f.Add(`{"Image":"x","HostConfig":{"LogConfig":{"Config":{"max-size":"k"}}}}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/containers/create", strings.NewReader(body))
		var req container.CreateRequest
		if err := decodeBody(r, &req); err != nil || req.Config == nil {
			return
		}
		createOptions("", &req)
	})
}

func TestRequestCredentials(t *testing.T) {
	fallback := remote.StaticCredentials{"reg.example:5000": {"fall", "back"}}
	c := RequestCredentials{Fallback: fallback}
	auth := func(a registryAuth) context.Context {
		b, _ := json.Marshal(a)
		r := httptest.NewRequest("POST", "/images/create", nil)
		r.Header.Set("X-Registry-Auth", base64.URLEncoding.EncodeToString(b))
		ctx, err := withRegistryAuth(r)
		if err != nil {
			t.Fatal(err)
		}
		return ctx
	}
	for _, tc := range []struct {
		ctx            context.Context
		registry, user string
	}{
		{context.Background(), "reg.example:5000", "fall"},
		{auth(registryAuth{Username: "alice", Password: "pw", ServerAddress: "reg.example:5000"}), "reg.example:5000", "alice"},
		{auth(registryAuth{Username: "alice", Password: "pw", ServerAddress: "other.example"}), "reg.example:5000", "fall"},
		{auth(registryAuth{Username: "bob", Password: "pw"}), "reg.example:5000", "bob"},
		{auth(registryAuth{Username: "hub", Password: "pw", ServerAddress: "https://index.docker.io/v1/"}), "registry-1.docker.io", "hub"},
		{auth(registryAuth{}), "reg.example:5000", "fall"},
	} {
		if user, _, _ := c.Get(tc.ctx, tc.registry); user != tc.user {
			t.Errorf("credentials for %s: %q, want %q", tc.registry, user, tc.user)
		}
	}
	r := httptest.NewRequest("POST", "/images/create", nil)
	r.Header.Set("X-Registry-Auth", "!!!")
	if _, err := withRegistryAuth(r); err == nil {
		t.Error("a header that is not base64 was taken")
	}
}

// The engine's error categories map to docker's statuses at the edge.
func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("x: %w", store.ErrNameInUse), 409},
		{fmt.Errorf("x: %w", store.ErrNotFound), 404},
		{fmt.Errorf("x: %w", engine.ErrInvalidState), 409},
		{fmt.Errorf("x: %w", engine.ErrAlreadyRunning), 304},
		{fmt.Errorf("x: %w", engine.ErrInvalid), 400},
		{errors.New("x"), 500},
	} {
		if got := statusOf(tc.err); got != tc.want {
			t.Errorf("statusOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// The CLI resizes an exec's terminal as soon as its start answers, while
// the process may still be starting: the size is kept for its pty, not
// refused (the CLI gives up after a few refusals, leaving it 0x0). An
// exec that never started or has ended is refused.
func TestResizeExecBeforeItsPty(t *testing.T) {
	s := &Server{execs: map[string]*execRecord{}}
	starting := &execRecord{id: "starting", started: true, cfg: container.ExecCreateRequest{Tty: true, Cmd: []string{"sh"}}}
	created := &execRecord{id: "created", cfg: container.ExecCreateRequest{Tty: true, Cmd: []string{"sh"}}}
	code := 0
	ended := &execRecord{id: "ended", started: true, exitCode: &code, cfg: container.ExecCreateRequest{Tty: true, Cmd: []string{"sh"}}}
	for _, rec := range []*execRecord{starting, created, ended} {
		s.execs[rec.id] = rec
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /exec/{id}/resize", func(w http.ResponseWriter, r *http.Request) {
		if err := s.resizeExec(w, r); err != nil {
			writeError(w, err)
		}
	})
	resize := func(id string) int {
		rr := httptest.NewRecorder()
		mux.ServeHTTP(rr, httptest.NewRequest("POST", "/exec/"+id+"/resize?h=26&w=91", nil))
		return rr.Code
	}
	if got := resize("starting"); got != http.StatusOK || starting.size == nil || starting.size.Row != 26 || starting.size.Col != 91 {
		t.Errorf("resize of a starting exec: %d, kept %+v", got, starting.size)
	}
	for _, id := range []string{"created", "ended"} {
		if got := resize(id); got != http.StatusConflict {
			t.Errorf("resize of the %s exec: %d, want 409", id, got)
		}
	}
	if got := resize("nope"); got != http.StatusNotFound {
		t.Errorf("resize of no exec: %d", got)
	}
}
